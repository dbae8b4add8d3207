//! Provider handles, chunks and small blocks are `Send + Sync`: a chunk
//! dropped on another thread goes back to its provider.

use pktmem_hugemem::{Chunk, Provider, SmallBlock};

#[test]
fn handles_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Provider>();
    assert_send_sync::<Chunk>();
    assert_send_sync::<pktmem_hugemem::Zone>();
    assert_send_sync::<pktmem_hugemem::ExternalMem>();
    assert_send_sync::<pktmem_hugemem::ExternalLease>();
    assert_send_sync::<pktmem_hugemem::ExternalHeap>();
    assert_send_sync::<pktmem_hugemem::EventGuard>();
    assert_send_sync::<pktmem_hugemem::ValidatorGuard>();
    assert_send_sync::<SmallBlock>();
    let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    let c = p.alloc(100).unwrap();
    let va = c.as_ptr().as_ptr() as usize;
    let got =
        std::thread::spawn(move || (c.as_ptr().as_ptr() as usize, c.provider().mapped_bytes()))
            .join()
            .unwrap();
    assert_eq!(got, (va, 4096));
    assert_eq!(p.mapped_bytes(), 0, "dropped on the other thread");
}

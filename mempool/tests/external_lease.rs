//! A pool on external memory holds a lease on its registration: while the
//! pool lives, unregistering the memory is refused with a typed error
//! naming the pool, and dropping the registration waits for the pool, so
//! the objects' IOVAs never go stale. Memory that is not registered is
//! refused with a typed error (and its free callback still runs).

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pktmem_hugemem::{Iova, Provider, UnregisterError};
use pktmem_mempool::{Mempool, PopulateError};

const LEN: usize = 4 * 4096;

/// Four zeroed, page-aligned pages, freed on drop.
struct Pages(NonNull<u8>);

impl Pages {
    fn new() -> Self {
        let layout = Layout::from_size_align(LEN, 4096).unwrap();
        // SAFETY: a non-zero-size layout.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        Self(NonNull::new(p).unwrap())
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe {
            std::alloc::dealloc(self.0.as_ptr(), Layout::from_size_align(LEN, 4096).unwrap());
        }
    }
}

fn provider() -> Provider {
    Provider::builder()
        .heap_backed(1 << 20)
        .quiet(true)
        .build()
        .unwrap()
}

const IOVAS: [Iova; 4] = [
    Iova(0x10_0000),
    Iova(0x10_1000),
    Iova(0x10_2000),
    Iova(0x10_3000),
];

#[test]
fn unregistering_memory_under_a_pool_is_refused_naming_the_pool() {
    let provider = provider();
    let mem = Pages::new();
    let ext = provider
        .register_external(mem.0.as_ptr(), LEN, 4096, Some(&IOVAS))
        .unwrap();
    let pool = Mempool::builder(40, 64)
        .name("ext-lease")
        .build_empty()
        .unwrap();
    // SAFETY: `mem` outlives the pool and is used by nothing else.
    let n = unsafe { pool.populate_external(&provider, mem.0, LEN, 4096, None) }.unwrap();
    assert_eq!(n, 40);
    let o = pool.get_default().unwrap();
    let iova = pool.iova(o).unwrap();

    // Refused while the pool lives, with the pool's name.
    match ext.unregister() {
        Err(UnregisterError::InUse { users, .. }) => {
            assert!(users.iter().any(|u| u == "pool 'ext-lease'"), "{users:?}");
        }
        other => panic!("unregister under a live pool: {other:?}"),
    }
    let msg = ext.unregister().unwrap_err().to_string();
    assert!(msg.contains("pool 'ext-lease'"), "{msg}");
    // Still registered: the object's IOVA is still the provider's.
    assert_eq!(provider.virt2iova(o.as_ptr()), Some(iova));
    // SAFETY: given back once.
    unsafe { pool.put_default(o) };
    pool.flush_default_cache();
    assert!(pool.is_full());

    // Once the pool is gone, unregistering succeeds.
    drop(pool);
    ext.unregister().unwrap();
    assert_eq!(provider.virt2iova(mem.0.as_ptr()), None);
}

#[test]
fn dropping_the_registration_waits_for_the_pool() {
    let provider = provider();
    let mem = Pages::new();
    let ext = provider
        .register_external(mem.0.as_ptr(), LEN, 4096, Some(&IOVAS))
        .unwrap();
    let pool = Mempool::builder(8, 64)
        .name("ext-wait")
        .build_empty()
        .unwrap();
    // SAFETY: `mem` outlives the pool and is used by nothing else.
    unsafe { pool.populate_external(&provider, mem.0, LEN, 4096, None) }.unwrap();
    drop(ext);
    // The registration stays while the pool uses it: IOVAs still valid.
    pool.for_each_obj(|o| {
        assert_eq!(o.iova, provider.virt2iova(o.obj.as_ptr()));
        assert!(o.iova.is_some());
    });
    drop(pool);
    assert_eq!(
        provider.virt2iova(mem.0.as_ptr()),
        None,
        "unregistered when the pool went"
    );
}

#[test]
fn unregistered_memory_is_refused() {
    let provider = provider();
    let mem = Pages::new();
    let pool = Mempool::builder(8, 64)
        .name("ext-none")
        .build_empty()
        .unwrap();
    let freed = Arc::new(AtomicUsize::new(0));
    let f = freed.clone();
    // SAFETY: `mem` outlives the pool and is used by nothing else.
    let r = unsafe {
        pool.populate_external(
            &provider,
            mem.0,
            LEN,
            4096,
            Some(Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            })),
        )
    };
    let Err(e @ PopulateError::NotRegistered { .. }) = r else {
        panic!("{r:?}");
    };
    assert!(e.to_string().contains("pool 'ext-none'"), "{e}");
    assert_eq!(freed.load(Ordering::SeqCst), 1, "the chunk's callback ran");
    assert_eq!(pool.populated(), 0);
}

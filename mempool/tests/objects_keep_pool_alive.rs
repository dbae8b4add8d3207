//! Objects out of the backend keep the pool's memory alive: every handle
//! can go while objects are held (by a caller or in a cache), the objects
//! go back later from any thread through `Obj::owner_ref`, and the last one
//! back frees the pool (its hugepages return to the system; its attachment
//! is dropped, once). Default caches: the last handle's drop flushes the
//! dropping thread's own, other threads' keep the pool until they exit or
//! call `flush_thread_caches`.

mod common;

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use common::{huge2m_provider, serial, small_page_provider};
use pktmem_hugemem::process_hugetlb_bytes;
use pktmem_mempool::{flush_thread_caches, Mempool, Obj, PoolRef, TypedPool};
use pktmem_ring::Ring;

/// An attachment that counts its drops: the pool's memory going.
struct Gone(Arc<AtomicUsize>);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A pool of `n` objects of 64 B on anonymous memory with caches of
/// `cache`, and the count of its frees.
fn counted(name: &str, n: usize, cache: usize) -> (Mempool, Arc<AtomicUsize>) {
    let frees = Arc::new(AtomicUsize::new(0));
    let pool = Mempool::builder(n, 64)
        .name(name)
        .cache(cache)
        .attachment(Gone(frees.clone()))
        .build_anonymous()
        .unwrap();
    (pool, frees)
}

fn count(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

/// Gives `objs` back through their own pool reference, in bulks of 7.
///
/// # Safety
/// - every object is out of its pool (one pool for all), given back once.
unsafe fn return_through_owner(objs: &[Obj]) {
    for chunk in objs.chunks(7) {
        // SAFETY: the caller's condition: `chunk[0]` is out of its pool
        // until the put; the `PoolRef` is not used after the put.
        unsafe { chunk[0].owner_ref().put_bulk_default(chunk) };
    }
}

/// The whole story on hugepages: every handle dropped while objects are
/// out (some held, some in this thread's default cache, some in an
/// explicit cache that is dropped too); the memory stays mapped; the held
/// objects travel through a ring to another thread, which returns them
/// through `owner_ref`; the last put frees the pool on that thread, before
/// it exits, and the hugepages go back to the system.
#[test]
fn hugepage_memory_goes_back_when_the_last_object_returns_from_another_thread() {
    let _g = serial();
    let Some(provider) = huge2m_provider("objects_keep_pool_alive (hugepages)", 8) else {
        return;
    };
    let hugetlb_before = process_hugetlb_bytes();
    let mapped_before = provider.mapped_bytes();
    let frees = Arc::new(AtomicUsize::new(0));
    let n = 2048;
    let pool = Mempool::builder(n, 2048)
        .name("keepalive-huge")
        .cache(64)
        .attachment(Gone(frees.clone()))
        .build_on(&provider)
        .unwrap();
    assert!(provider.mapped_bytes() > mapped_before);
    let mut held = Vec::with_capacity(n);
    // Through this thread's default cache (it refills: objects in the slot).
    let mut buf = vec![MaybeUninit::uninit(); 32];
    held.extend_from_slice(pool.get_bulk_default(&mut buf).unwrap());
    // Through an explicit cache, dropped with objects taken through it.
    let mut cache = pool.cache();
    held.extend_from_slice(pool.get_bulk(&mut cache, &mut buf).unwrap());
    drop(cache);
    drop(pool);
    assert_eq!(
        count(&frees),
        0,
        "freed while {} objects are out",
        held.len()
    );
    assert!(
        provider.mapped_bytes() > mapped_before,
        "the pool's memory went with objects out"
    );
    // The objects are still usable: write them, read them on the other side.
    for (i, o) in held.iter().enumerate() {
        // SAFETY: we own the object (2048 B body).
        unsafe { o.cast::<u64>().as_ptr().write(i as u64) };
    }
    let ring = Ring::<Obj>::new(held.len()).unwrap();
    ring.enqueue_bulk(&held).unwrap();
    let freed_in_thread = std::thread::scope(|s| {
        s.spawn(|| {
            let mut got = Vec::new();
            while let Some(o) = ring.dequeue() {
                // SAFETY: the object came through the ring: ours now.
                let v = unsafe { o.cast::<u64>().as_ptr().read() };
                assert_eq!(v, got.len() as u64, "object body changed");
                got.push(o);
            }
            let (last, rest) = got.split_last().unwrap();
            // SAFETY: every object out of its pool, given back once.
            unsafe { return_through_owner(rest) };
            assert_eq!(count(&frees), 0, "freed with one object out");
            // SAFETY: `last` is out of its pool, given back once; the
            // `PoolRef` is not used after.
            unsafe { last.owner_ref().put_default(*last) };
            // This thread has no default cache of the pool (none is claimed
            // once the last handle is gone): the put went to the backend.
            count(&frees)
        })
        .join()
        .unwrap()
    });
    assert_eq!(
        freed_in_thread, 1,
        "the last put freed the pool, before its thread exited"
    );
    assert_eq!(count(&frees), 1, "freed exactly once");
    assert_eq!(
        provider.mapped_bytes(),
        mapped_before,
        "memory back to the provider"
    );
    assert_eq!(
        process_hugetlb_bytes(),
        hugetlb_before,
        "the pool's hugepages went back to the system"
    );
}

/// The same on anonymous memory, from several threads at once: the last of
/// them to put frees the pool, once.
#[test]
fn last_objects_from_several_threads_free_once() {
    for round in 0..20 {
        let (pool, frees_) = counted("keepalive-threads", 256, 16);
        let mut buf = vec![MaybeUninit::uninit(); 4 * 60];
        let objs = pool.get_bulk_default(&mut buf).unwrap().to_vec();
        drop(pool);
        assert_eq!(count(&frees_), 0, "round {round}");
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for part in objs.chunks(60) {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    // SAFETY: this thread's share, each out of the pool once.
                    unsafe { return_through_owner(part) };
                });
            }
        });
        assert_eq!(count(&frees_), 1, "round {round}: freed exactly once");
    }
}

/// Dropping the last handle flushes the dropping thread's default cache:
/// with nothing else out, the pool goes at once (no thread exit needed).
#[test]
fn last_handle_flushes_its_own_threads_default_cache() {
    let (pool, frees_) = counted("keepalive-own-slot", 64, 16);
    let o = pool.get_default().unwrap(); // the refill leaves 8 in this thread's slot
                                         // SAFETY: given back once.
    unsafe { pool.put_default(o) };
    let clone = pool.clone();
    drop(pool);
    assert_eq!(count(&frees_), 0, "a handle is left");
    assert_eq!(clone.avail_count(), 64);
    drop(clone);
    assert_eq!(count(&frees_), 1);
}

/// Objects in another live thread's default cache keep the pool after the
/// last handle is gone, until that thread exits; `flush_thread_caches`
/// releases them earlier, while the thread lives.
#[test]
fn other_threads_default_caches_keep_the_pool_until_exit_or_flush() {
    for early_flush in [false, true] {
        let (pool, frees_) = counted("keepalive-other-slot", 64, 16);
        let worker_pool = pool.clone();
        let (to_worker, worker_rx) = mpsc::channel::<&str>();
        let (to_main, main_rx) = mpsc::channel::<usize>();
        let worker = std::thread::spawn(move || {
            let o = worker_pool.get_default().unwrap();
            // SAFETY: given back once (into this thread's default cache).
            unsafe { worker_pool.put_default(o) };
            drop(worker_pool); // not the last handle: main holds one
            to_main.send(0).unwrap();
            assert_eq!(worker_rx.recv().unwrap(), "handles gone");
            if early_flush {
                flush_thread_caches();
            }
            to_main.send(1).unwrap();
            assert_eq!(worker_rx.recv().unwrap(), "exit");
        });
        assert_eq!(main_rx.recv().unwrap(), 0);
        drop(pool); // the last handle, on this thread: its own slot is empty
        to_worker.send("handles gone").unwrap();
        assert_eq!(main_rx.recv().unwrap(), 1);
        if early_flush {
            assert_eq!(
                count(&frees_),
                1,
                "flush_thread_caches released the worker's slot"
            );
        } else {
            assert_eq!(
                count(&frees_),
                0,
                "the worker's default cache keeps the pool"
            );
        }
        to_worker.send("exit").unwrap();
        worker.join().unwrap();
        assert_eq!(count(&frees_), 1, "early flush {early_flush}: freed once");
    }
}

/// This thread's default cache keeps a pool whose last handle dropped on
/// another thread, until `flush_thread_caches`; the slot is given back, so
/// objects put back afterwards go to the backend and the last one frees.
#[test]
fn flush_thread_caches_gives_the_slots_back() {
    let (pool, frees_) = counted("keepalive-flush", 64, 16);
    let (a, b) = (pool.get_default().unwrap(), pool.get_default().unwrap());
    // SAFETY: given back once (into this thread's default cache).
    unsafe { pool.put_default(a) };
    std::thread::spawn(move || drop(pool)).join().unwrap();
    assert_eq!(count(&frees_), 0);
    flush_thread_caches();
    assert_eq!(count(&frees_), 0, "`b` is still out");
    // SAFETY: `b` is out of its pool until this put; the `PoolRef` is not
    // used after.
    unsafe { b.owner_ref().put_default(b) };
    assert_eq!(
        count(&frees_),
        1,
        "the last object back freed it (no slot kept it)"
    );
}

/// A user cache is a handle; objects in it are counted: the pool lives
/// through the cache after the pool handle drops, and after both drop
/// while an object is out.
#[test]
fn explicit_caches_and_their_objects_keep_the_pool() {
    let (pool, frees_) = counted("keepalive-cache", 64, 16);
    let mut cache = pool.cache();
    let o = pool.get(&mut cache).unwrap();
    drop(pool);
    // The cache's handle still serves.
    let p = cache.pool().clone();
    let o2 = p.get(&mut cache).unwrap();
    // SAFETY: given back once.
    unsafe { p.put(&mut cache, o2) };
    drop(p);
    assert!(!cache.is_empty());
    drop(cache);
    assert_eq!(count(&frees_), 0, "`o` is out");
    // SAFETY: `o` is out of its pool until this put.
    let owner = unsafe { o.owner_ref() };
    assert_eq!((owner.in_use_count(), owner.avail_count()), (1, 63));
    // SAFETY: given back once; `owner` is not used after.
    unsafe { owner.put_default(o) };
    assert_eq!(count(&frees_), 1);
}

/// A typed pool: boxes outlive the `TypedPool` and go back on another
/// thread; the pool's memory returns to the provider when the last drops.
#[test]
fn typed_boxes_keep_the_pool_and_free_it_last() {
    let provider = small_page_provider();
    let before = provider.mapped_bytes();
    let pool = TypedPool::<[u64; 8]>::builder(64)
        .cache(8)
        .build_on(&provider)
        .unwrap();
    let boxes: Vec<_> = (0..40u64)
        .map(|i| pool.alloc([i; 8]).ok().unwrap())
        .collect();
    drop(pool);
    assert!(provider.mapped_bytes() > before, "freed with boxes out");
    let left_mapped = std::thread::spawn(move || {
        let mut boxes = boxes;
        let last = boxes.pop().unwrap();
        for (i, b) in boxes.into_iter().enumerate() {
            assert_eq!(*b, [i as u64; 8]);
        }
        assert_eq!(*last, [39; 8]);
        drop(last);
        provider.mapped_bytes()
    })
    .join()
    .unwrap();
    assert_eq!(left_mapped, before, "the last box freed the pool");
}

/// The attachment: a checked downcast, the unchecked read, none when not
/// given, the last value when given twice, and dropped once, with the
/// pool's memory (not with the last handle).
#[test]
fn attachment_lives_with_the_pools_memory() {
    #[derive(Debug, PartialEq)]
    struct Room(u16);
    let plain = Mempool::builder(4, 64).build_anonymous().unwrap();
    assert_eq!(plain.attachment::<Room>(), None);
    let frees_ = Arc::new(AtomicUsize::new(0));
    let pool = Mempool::builder(4, 64)
        .attachment(Room(1))
        .attachment((Room(2176), Gone(frees_.clone())))
        .build_anonymous()
        .unwrap();
    assert_eq!(
        pool.attachment::<Room>(),
        None,
        "replaced by the second call"
    );
    let (room, _) = pool.attachment::<(Room, Gone)>().unwrap();
    assert_eq!(*room, Room(2176));
    // SAFETY: the attachment is a `(Room, Gone)`.
    let (room2, _) = unsafe { pool.attachment_unchecked::<(Room, Gone)>() };
    assert!(std::ptr::eq(room, room2));
    assert_eq!(
        count(&frees_),
        0,
        "the first value is dropped when replaced, not counted"
    );
    let o = pool.get_default().unwrap();
    drop(pool);
    assert_eq!(count(&frees_), 0);
    // SAFETY: `o` is out of its pool.
    let owner = unsafe { o.owner_ref() };
    assert_eq!(owner.attachment::<(Room, Gone)>().unwrap().0, Room(2176));
    // SAFETY: given back once; `owner` is not used after.
    unsafe { owner.put_default(o) };
    assert_eq!(count(&frees_), 1);
}

/// `owner_unchecked` gives a counted handle: the pool lives while it does,
/// even with every object back.
#[test]
fn owner_unchecked_is_a_counted_handle() {
    let (pool, frees_) = counted("keepalive-owner", 8, 0);
    let o = pool.get_default().unwrap();
    drop(pool);
    // SAFETY: `o` is out of its pool, which is alive.
    let handle = unsafe { o.owner_unchecked() };
    // SAFETY: given back once.
    unsafe { handle.put_default(o) };
    assert_eq!(count(&frees_), 0, "the handle keeps it");
    assert!(handle.is_full());
    drop(handle);
    assert_eq!(count(&frees_), 1);
}

/// What a packet buffer does: it stores the pool's identity
/// (`Mempool::as_ptr`) and reaches the pool through `PoolRef::from_ptr`,
/// here on another thread after every handle is gone, to read the
/// attachment and put the object back.
#[test]
fn pool_ref_from_a_stored_identity() {
    /// The identity as a packet buffer's header keeps it.
    struct Id(*const ());
    // SAFETY: an address, used only through `PoolRef::from_ptr` below.
    unsafe impl Send for Id {}
    let frees_ = Arc::new(AtomicUsize::new(0));
    let pool = Mempool::builder(16, 64)
        .cache(4)
        .attachment((2176u16, Gone(frees_.clone())))
        .build_anonymous()
        .unwrap();
    let objs: Vec<(Obj, Id)> = (0..3)
        .map(|_| (pool.get_default().unwrap(), Id(pool.as_ptr())))
        .collect();
    drop(pool);
    std::thread::spawn(move || {
        for (i, (o, id)) in objs.into_iter().enumerate() {
            // SAFETY: `id` is the pool's identity and `o` is out of it until
            // the put below.
            let r = unsafe { PoolRef::from_ptr(id.0) };
            // SAFETY: the attachment is a `(u16, Gone)`.
            assert_eq!(unsafe { r.attachment_unchecked::<(u16, Gone)>() }.0, 2176);
            assert_eq!(count(&frees_), 0, "object {i}: freed with objects out");
            // SAFETY: given back once; `r` is not used after.
            unsafe { r.put_default(o) };
        }
        assert_eq!(count(&frees_), 1, "the third put freed the pool");
    })
    .join()
    .unwrap();
}

/// A long-lived thread using many short-lived pools through its default
/// caches: each pool goes when its last handle drops (the claim records
/// left behind keep nothing alive).
#[test]
fn short_lived_pools_on_a_long_lived_thread() {
    let frees_ = Arc::new(AtomicUsize::new(0));
    for i in 0..50 {
        let pool = Mempool::builder(32, 64)
            .cache(8)
            .attachment(Gone(frees_.clone()))
            .build_anonymous()
            .unwrap();
        let mut buf = [MaybeUninit::uninit(); 3];
        let objs = pool.get_bulk_default(&mut buf).unwrap();
        // SAFETY: given back once (into this thread's default cache).
        unsafe { pool.put_bulk_default(objs) };
        drop(pool);
        assert_eq!(count(&frees_), i + 1);
    }
}

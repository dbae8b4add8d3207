//! `Mbuf`s through `Ring<Mbuf>` between threads in safe code: singles,
//! bursts and chains go to a worker and back intact; what is left in a
//! ring when its last end goes is freed; every pool full after.

mod common;

use common::{assert_full, chain_of, mbuf_with, provider};
use pktmem_mbuf::{Mbuf, PktPool};
use pktmem_ring::{Ring, Single};

/// A worker gets packets, checks them, changes them (writable: each is the
/// only reference) and sends them back; the main thread checks and frees.
#[test]
fn packets_go_to_a_worker_and_back() {
    const ROUNDS: usize = 200;
    const BURST: usize = 32;
    let pool = PktPool::builder(2 * BURST)
        .cache(8)
        .build_on(provider())
        .unwrap();
    let (to_worker, from_main) = Ring::<Mbuf>::builder(BURST)
        .producer(Single)
        .consumer(Single)
        .build()
        .unwrap()
        .split();
    let (to_main, from_worker) = Ring::<Mbuf>::builder(BURST)
        .producer(Single)
        .consumer(Single)
        .build()
        .unwrap()
        .split();
    let worker_pool = pool.clone();
    let worker = std::thread::spawn(move || {
        let mut seen = 0usize;
        let mut batch: Vec<Mbuf> = Vec::with_capacity(BURST);
        while seen < ROUNDS * BURST {
            from_main.dequeue_burst_into(&mut batch, BURST);
            for m in &mut batch {
                let n = u32::from_le_bytes(m.data()[..4].try_into().unwrap()) as usize;
                assert_eq!(n, seen, "in order, once");
                assert_eq!(m.pkt_len(), 4 + n % 100);
                m.prepend(2).unwrap().copy_from_slice(b"ok");
                seen += 1;
            }
            while !batch.is_empty() {
                to_main.enqueue_burst_from(&mut batch);
                std::hint::spin_loop();
            }
        }
        worker_pool.mempool().flush_default_cache();
    });
    let mut cache = pool.cache();
    let mut seq = 0usize;
    for _ in 0..ROUNDS {
        let mut batch: Vec<Mbuf> = (0..BURST)
            .map(|_| {
                let mut m = pool.alloc(&mut cache).unwrap();
                let d = m.append(4 + seq % 100).unwrap();
                d[..4].copy_from_slice(&(seq as u32).to_le_bytes());
                seq += 1;
                m
            })
            .collect();
        to_worker.enqueue_bulk_from(&mut batch).unwrap();
        let mut back: Vec<Mbuf> = Vec::with_capacity(BURST);
        while back.len() < BURST {
            let want = BURST - back.len();
            from_worker.dequeue_burst_into(&mut back, want);
        }
        for m in &back {
            assert_eq!(&m.data()[..2], b"ok");
        }
        pool.free_bulk(&mut cache, back);
    }
    worker.join().unwrap();
    drop(cache);
    assert_full(&[&pool]);
}

/// Chains and clones cross too: the worker drops them (the clones' last
/// references) on its side.
#[test]
fn chains_and_clones_cross_and_drop_there() {
    let pool = PktPool::builder(256).build_anonymous().unwrap();
    let (tx, rx) = Ring::<Mbuf>::new(64).unwrap().split();
    let originals: Vec<Mbuf> = (0..20)
        .map(|i| chain_of(&pool, &[i + 1, 2 * i + 1, 3]))
        .collect();
    let p2 = pool.clone();
    let expect: Vec<Vec<u8>> = originals.iter().map(Mbuf::to_vec).collect();
    let worker = std::thread::spawn(move || {
        for e in &expect {
            for _ in 0..2 {
                let m = loop {
                    if let Some(m) = rx.dequeue() {
                        break m;
                    }
                    std::thread::yield_now();
                };
                assert_eq!(&m.to_vec(), e);
            }
        }
        p2.mempool().flush_default_cache();
    });
    for m in originals {
        let c = m.clone_in(&pool).unwrap();
        tx.enqueue(c).unwrap();
        tx.enqueue(m).unwrap();
    }
    worker.join().unwrap();
    assert_full(&[&pool]);
}

/// Packets left in a ring are freed with it.
#[test]
fn a_dropped_ring_frees_what_it_holds() {
    let pool = PktPool::builder(16).build_anonymous().unwrap();
    let ring = Ring::<Mbuf>::new(16).unwrap();
    for i in 0..10u8 {
        ring.enqueue(mbuf_with(&pool, &[i; 3])).unwrap();
    }
    let mut head = mbuf_with(&pool, &[0]);
    head.chain(chain_of(&pool, &[4, 4])).unwrap();
    ring.enqueue(head).unwrap();
    assert_eq!(pool.in_use_count(), 13);
    let first = ring.dequeue().unwrap();
    assert_eq!(first.data(), &[0; 3]);
    drop(ring);
    drop(first);
    assert_full(&[&pool]);
}

//! Real threads on real rings, bounded in time.
//!
//! - Circulation: cache-line-sized tokens circulate through a shared ring
//!   (multi-thread, HTS or RTS sides) among three threads; a thread stamps a token's id with its own
//!   number while it holds it (CAS from 0, which fails if another thread
//!   holds the same token) and checks the token's generation and checksum (a
//!   stale duplicate or a torn copy fails). At the end every token is in the
//!   ring exactly once.
//! - Pipelines: single-producer and single-consumer ends with shared ends on
//!   the other side; sequences arrive complete, in per-producer order, once.

// Test code names ends, guards and buffers `p`, `c`, `g`, `v` as the
// crate docs do, and keeps each randomised sequence in one function.
#![allow(
    clippy::many_single_char_names,
    clippy::similar_names,
    clippy::too_many_lines
)]

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Elem, Rng, Zc};
use crossbeam_utils::CachePadded;
use pktmem_ring::{Hts, Multi, Ring, Rts, SharedMode, Single};

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
struct Token {
    id: u32,
    gen: u32,
    check: [u64; 7],
}

impl Elem for Token {
    fn make(i: u64) -> Self {
        Token::new(i as u32, 0)
    }
}

impl Token {
    fn new(id: u32, gen: u32) -> Self {
        let mut check = [0u64; 7];
        for (i, c) in check.iter_mut().enumerate() {
            *c = (u64::from(id) << 32 | u64::from(gen))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15 + i as u64);
        }
        Token { id, gen, check }
    }
    fn intact(&self) -> bool {
        *self == Token::new(self.id, self.gen)
    }
}

const TOKENS: u32 = 40;
const THREADS: u64 = 3;
const RUN: Duration = Duration::from_millis(300);

struct Table {
    /// 0 when the token is in the ring, else the number of its holder.
    holder: Vec<CachePadded<AtomicU64>>,
    /// The generation the token must carry when next taken.
    gen: Vec<CachePadded<AtomicU64>>,
}

impl Table {
    fn take(&self, me: u64, t: &Token) {
        assert!(t.intact(), "torn or corrupt token {t:?}");
        let i = t.id as usize;
        assert!(i < TOKENS as usize, "unknown token id {}", t.id);
        // AcqRel: pairs with the Release swap in `give` by the previous holder.
        let prev = self.holder[i].compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire);
        assert_eq!(
            prev,
            Ok(0),
            "token {i} taken by {me} while held by another thread"
        );
        assert_eq!(
            self.gen[i].load(Ordering::Relaxed),
            u64::from(t.gen),
            "token {i}: stale copy (duplicate) dequeued"
        );
    }

    /// Bumps the generation and releases the stamp; returns the token to put back.
    fn give(&self, me: u64, t: &Token) -> Token {
        let i = t.id as usize;
        self.gen[i].store(u64::from(t.gen) + 1, Ordering::Relaxed);
        // Release: pairs with the AcqRel CAS in `take` by the next holder.
        let prev = self.holder[i].swap(0, Ordering::Release);
        assert_eq!(prev, me, "token {i}: stamp changed while held");
        Token::new(t.id, t.gen + 1)
    }
}

fn circulate<P: SharedMode + Zc, C: SharedMode + Zc>(prod: P, cons: C, dpdk: bool) {
    let mut b = Ring::<Token>::builder(64)
        // Cross the `u32` index wrap while threads contend.
        .initial_index(u32::MAX - 5_000);
    if dpdk {
        b = b.dpdk_sizing();
    }
    let ring = Arc::new(b.producer(prod).consumer(cons).build().unwrap());
    let (prod, cons) = (P::NAME, C::NAME);
    let toks: Vec<Token> = (0..TOKENS).map(|i| Token::new(i, 0)).collect();
    ring.enqueue_bulk(&toks).unwrap();
    let table = Arc::new(Table {
        holder: (0..TOKENS)
            .map(|_| CachePadded::new(AtomicU64::new(0)))
            .collect(),
        gen: (0..TOKENS)
            .map(|_| CachePadded::new(AtomicU64::new(0)))
            .collect(),
    });
    let moved = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (1..=THREADS)
        .map(|me| {
            let (ring, table, moved, start) =
                (ring.clone(), table.clone(), moved.clone(), start.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(me * 0x1234_5678_9ABC_DEF1);
                let mut held: Vec<Token> = Vec::new();
                let mut buf = vec![Token::new(0, 0); 16];
                let mut n_moved = 0usize;
                start.wait();
                let end = Instant::now() + RUN;
                while Instant::now() < end {
                    let k = 1 + rng.below(8) as usize;
                    // Take some.
                    let got = match rng.below(4) {
                        0 => ring.dequeue().map(|t| {
                            buf[0] = t;
                            1
                        }),
                        1 => ring.dequeue_bulk(&mut buf[..k]).ok().map(|()| k),
                        2 => Some(ring.dequeue_burst(&mut buf[..k])),
                        // HTS consumer: peek, check, consume all peeked.
                        _ => C::ring_deq(&ring, &mut buf[..k], usize::MAX)
                            .or_else(|| Some(ring.dequeue_burst(&mut buf[..k]))),
                    }
                    .unwrap_or(0);
                    for t in &buf[..got] {
                        table.take(me, t);
                        held.push(*t);
                    }
                    // Give back everything held (or some of it).
                    let give = if rng.below(3) == 0 {
                        held.len() / 2
                    } else {
                        held.len()
                    };
                    let back: Vec<Token> = held.drain(..give).map(|t| table.give(me, &t)).collect();
                    let mut sent = 0;
                    while sent < back.len() {
                        let rest = &back[sent..];
                        sent += match rng.below(4) {
                            0 => usize::from(ring.enqueue(rest[0]).is_ok()),
                            1 => ring.enqueue_bulk(rest).map_or(0, |()| rest.len()),
                            2 => ring.enqueue_burst(rest),
                            _ => {
                                P::ring_enq(&ring, rest).unwrap_or_else(|| ring.enqueue_burst(rest))
                            }
                        };
                    }
                    n_moved += got;
                }
                // Put back what is still held.
                for t in held.drain(..) {
                    let t = table.give(me, &t);
                    while ring.enqueue(t).is_err() {
                        std::hint::spin_loop();
                    }
                }
                moved.fetch_add(n_moved, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let moved = moved.load(Ordering::Relaxed);
    assert!(moved > 1000, "{prod}/{cons}: only {moved} tokens moved");
    // Every token is back in the ring exactly once, at its latest generation.
    assert_eq!(ring.len(), TOKENS as usize);
    let mut all = vec![Token::new(0, 0); TOKENS as usize];
    ring.dequeue_bulk(&mut all).unwrap();
    assert!(ring.is_empty());
    all.sort_by_key(|t| t.id);
    for (i, t) in all.iter().enumerate() {
        assert_eq!(t.id as usize, i, "token missing or duplicated");
        assert!(t.intact());
        assert_eq!(u64::from(t.gen), table.gen[i].load(Ordering::Relaxed));
        assert_eq!(table.holder[i].load(Ordering::Relaxed), 0);
    }
    eprintln!("{prod}/{cons} dpdk={dpdk}: {moved} tokens moved in {RUN:?}");
}

#[test]
fn mpmc_circulation() {
    circulate(Multi, Multi, true);
}

#[test]
fn hts_circulation() {
    circulate(Hts, Hts, false);
}

#[test]
fn rts_circulation() {
    circulate(Rts, Rts, true);
}

#[test]
fn mixed_circulation() {
    circulate(Multi, Hts, true);
    circulate(Hts, Multi, false);
    circulate(Rts, Hts, false);
}

const SEQ: u64 = 100_000;

/// Value `i` of producer `p`, checkable on arrival.
fn val(p: u64, i: u64) -> [u64; 2] {
    [p << 48 | i, !(p << 48 | i)]
}

#[test]
fn spsc_pipeline_in_order() {
    let (mut p, mut c) = Ring::<[u64; 2]>::builder(256)
        .dpdk_sizing()
        .initial_index(u32::MAX - 50_000)
        .producer(Single)
        .consumer(Single)
        .build()
        .unwrap()
        .split();
    let t = std::thread::spawn(move || {
        let mut rng = Rng(7);
        let mut i = 0u64;
        while i < SEQ {
            let k = (1 + rng.below(40)).min(SEQ - i);
            let v: Vec<[u64; 2]> = (i..i + k).map(|j| val(0, j)).collect();
            i += match rng.below(4) {
                0 => u64::from(p.enqueue(v[0]).is_ok()),
                1 => p.enqueue_bulk(&v).map_or(0, |()| k),
                2 => p.enqueue_burst(&v) as u64,
                _ => {
                    let mut w = p.enqueue_start(v.len());
                    w.extend_from_slice(&v);
                    w.commit() as u64
                }
            };
        }
    });
    let mut rng = Rng(11);
    let mut next = 0u64;
    let mut buf = vec![[0u64; 2]; 64];
    let deadline = Instant::now() + Duration::from_secs(30);
    while next < SEQ {
        assert!(Instant::now() < deadline, "pipeline stalled at {next}");
        let k = 1 + rng.below(64) as usize;
        let n = match rng.below(4) {
            0 => c.dequeue().map(|v| {
                buf[0] = v;
                1
            }),
            1 => c.dequeue_bulk(&mut buf[..k]).ok().map(|()| k),
            2 => Some(c.dequeue_burst(&mut buf[..k])),
            _ => {
                let g = c.dequeue_start(k);
                let n = g.copy_to(&mut buf[..k]);
                // Peek all, consume only part: the rest must come again.
                let take = n / 2 + n % 2;
                g.finish(take);
                Some(take)
            }
        }
        .unwrap_or(0);
        for v in &buf[..n] {
            assert_eq!(*v, val(0, next), "out of order or corrupt");
            next += 1;
        }
    }
    t.join().unwrap();
    assert!(c.is_empty());
}

/// One producer, two consumers: each sees an increasing subsequence,
/// together every value exactly once.
fn sp_mc<C: SharedMode>(cm: C) {
    {
        let (p, c) = Ring::<[u64; 2]>::builder(128)
            .dpdk_sizing()
            .producer(Single)
            .consumer(cm)
            .build()
            .unwrap()
            .split();
        let cm = C::NAME;
        let total = Arc::new(AtomicU64::new(0));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (c, total) = (c.clone(), total.clone());
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut buf = [[0u64; 2]; 16];
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while total.load(Ordering::Relaxed) < SEQ {
                        let n = c.dequeue_burst(&mut buf);
                        for v in &buf[..n] {
                            assert_eq!(v[1], !v[0], "corrupt");
                            if let Some(&last) = seen.last() {
                                assert!(v[0] > last, "consumer saw values out of order");
                            }
                            seen.push(v[0]);
                        }
                        total.fetch_add(n as u64, Ordering::Relaxed);
                        assert!(Instant::now() < deadline, "consumer stalled");
                    }
                    seen
                })
            })
            .collect();
        let mut i = 0;
        while i < SEQ {
            let v: Vec<[u64; 2]> = (i..(i + 16).min(SEQ)).map(|j| val(0, j)).collect();
            i += p.enqueue_burst(&v) as u64;
        }
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all.len() as u64, SEQ, "{cm}: lost or duplicated values");
        assert!(all.iter().enumerate().all(|(i, &v)| v == i as u64));
    }
}

/// Two producers, one consumer: per-producer order kept, nothing lost.
fn mp_sc<P: SharedMode>(pm: P) {
    {
        let (p, c) = Ring::<[u64; 2]>::builder(128)
            .dpdk_sizing()
            .producer(pm)
            .consumer(Single)
            .build()
            .unwrap()
            .split();
        let pm = P::NAME;
        let producers: Vec<_> = (1..=2u64)
            .map(|id| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut i = 0;
                    while i < SEQ {
                        let v: Vec<[u64; 2]> = (i..(i + 8).min(SEQ)).map(|j| val(id, j)).collect();
                        i += if id == 1 {
                            p.enqueue_burst(&v) as u64
                        } else {
                            p.enqueue_bulk(&v).map_or(0, |()| v.len() as u64)
                        };
                    }
                })
            })
            .collect();
        let mut next = [0u64; 3];
        let mut buf = [[0u64; 2]; 32];
        let deadline = Instant::now() + Duration::from_secs(30);
        while next[1] < SEQ || next[2] < SEQ {
            assert!(Instant::now() < deadline, "consumer stalled");
            let n = c.dequeue_burst(&mut buf);
            for v in &buf[..n] {
                let id = (v[0] >> 48) as usize;
                assert_eq!(
                    *v,
                    val(id as u64, next[id]),
                    "{pm}: producer {id} out of order"
                );
                next[id] += 1;
            }
        }
        for h in producers {
            h.join().unwrap();
        }
        assert!(c.is_empty());
    }
}

#[test]
fn sp_mc_and_mp_sc_pipelines() {
    sp_mc(Multi);
    sp_mc(Hts);
    sp_mc(Rts);
    mp_sc(Multi);
    mp_sc(Hts);
    mp_sc(Rts);
}

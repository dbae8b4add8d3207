//! Rows `virt2iova_lookup`, `virt2phys_pagemap`, `hugemem_reserve_touch_free_64m`
//! (the rows the reference's side of the comparison measures too), on the
//! process-wide provider (`Provider::global()`, chosen explicitly: the
//! comparison wants the defaults).

use std::hint::black_box;
use std::time::Instant;

use pktmem::hugemem::{virt2phys, Provider};

use crate::{ns_per, row};

const LEN: usize = 64 << 20;

fn note_fallback(what: &str, page_size: usize) {
    if page_size == 4096 {
        eprintln!("compare/hugemem: {what}: no hugepages available, fell back to 4 KiB pages");
    }
}

// p, c, x, n, a: the provider, the chunk, the random state, counts and an
// address, as in the row descriptions.
#[allow(clippy::many_single_char_names)]
pub fn run(iters: u64) {
    let p = Provider::global();
    let c = match p.alloc(LEN) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("compare/hugemem: cannot allocate 64 MiB: {e}");
            return;
        }
    };
    note_fallback("virt2iova_lookup", c.page_size());
    let base = c.as_ptr().as_ptr().cast_const();
    let mut x: u64 = 88_172_645_463_325_252;
    let mut acc: u64 = 0;
    let n = (iters / 4).max(1);
    let start = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // wrapping_add: the address stays inside the chunk (x % LEN < LEN).
        let iova = p.virt2iova(base.wrapping_add((x % LEN as u64) as usize));
        acc = acc.wrapping_add(iova.map_or(0, |i| i.0));
    }
    row("virt2iova_lookup", ns_per(start, n), "ns/lookup");
    black_box(acc);

    let n = 20_000u64;
    let start = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = base as usize + (x % LEN as u64) as usize;
        acc = acc.wrapping_add(virt2phys(a).unwrap_or(0));
    }
    row("virt2phys_pagemap", ns_per(start, n), "ns/lookup");
    black_box(acc);
    drop(c);

    let rounds = 20u64;
    let mut fell_back = false;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut c = match p.alloc(LEN) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("compare/hugemem: 64 MiB reserve failed: {e}");
                return;
            }
        };
        fell_back |= c.page_size() == 4096;
        c.as_mut_slice().fill(0);
        black_box(c.as_slice().as_ptr());
        drop(c);
    }
    row(
        "hugemem_reserve_touch_free_64m",
        ns_per(start, rounds) / 1e6,
        "ms/op",
    );
    if fell_back {
        note_fallback("hugemem_reserve_touch_free_64m", 4096);
    }
}

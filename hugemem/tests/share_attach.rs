//! A separate process (this test binary re-executed) attaches to an
//! exporter: at the same VA, relocated on request, and relocated by itself
//! when the exporter's range is taken. Every page's translation is checked
//! against the exporter's region table and, as root, against both sides'
//! page maps; bytes written on each side are read on the other.

use std::collections::BTreeMap;

use pktmem_hugemem::share::Exporter;
use pktmem_hugemem::{AllocRequest, IovaMode, PageSize, Provider, SharedChunk};

mod share_common;
use share_common::{
    exportable_provider, is_root, pagemap_pa, skip, sock_path, Peer, ENV_OCCUPY, ENV_PLACE,
    ENV_SOCK,
};

const PEER: &str = "share_peer";

#[test]
#[ignore = "the peer process of this file's tests"]
fn share_peer() {
    share_common::peer_main();
}

/// The value each page's first word holds: a function of its address.
fn pattern(va: u64) -> u64 {
    va.rotate_left(17) ^ 0x5eed_0000_0000_5eed
}

/// A provider with pages in a 2 MiB list (or 4 KiB when no hugepages) and
/// a 4 KiB list, each page's first word set to `pattern`.
fn exported_memory() -> (Provider, Vec<SharedChunk>) {
    let p = exportable_provider();
    let mut chunks = vec![
        p.alloc_shared(&AllocRequest::new(6 << 20)).unwrap(),
        p.alloc_shared(
            &AllocRequest::new(5 * 4096)
                .page_size(PageSize::Small4K)
                .require_page_size(true),
        )
        .unwrap(),
    ];
    let gap = p.alloc_shared(&AllocRequest::new(2 << 20)).unwrap();
    chunks.push(p.alloc_shared(&AllocRequest::new(2 << 20)).unwrap());
    drop(gap); // a hole: the peer's map has runs
    for c in &mut chunks {
        let ps = c.page_size();
        let base = c.as_ptr().as_ptr() as usize;
        for off in (0..c.len()).step_by(ps) {
            // SAFETY: inside our chunk; shared memory is written by raw pointer.
            unsafe { ((base + off) as *mut u64).write_volatile(pattern((base + off) as u64)) };
        }
    }
    (p, chunks)
}

/// What the peer's `pages` command said, by exporter VA.
struct PeerPageLine {
    local: u64,
    len: u64,
    iova: Option<u64>,
    pa: Option<u64>,
    first: u64,
    consistent: bool,
}

fn peer_pages(peer: &mut Peer) -> BTreeMap<u64, PeerPageLine> {
    let mut m = BTreeMap::new();
    for l in peer.cmd("pages") {
        let w: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(w[0], "page", "{l}");
        let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
        let opt = |s: &str| (s != "-").then(|| hex(s));
        m.insert(
            hex(w[2]),
            PeerPageLine {
                local: hex(w[3]),
                len: hex(w[4]),
                iova: opt(w[5]),
                pa: opt(w[6]),
                first: hex(w[7]),
                consistent: w[8] == "true",
            },
        );
    }
    m
}

/// Checks every page the exporter has against the peer's view;
/// `same_va`: whether each list must be at the exporter's VA (by list base).
fn check_every_page(p: &Provider, peer: &mut Peer, same_va: impl Fn(u64) -> Option<bool>) -> usize {
    let seen = peer_pages(peer);
    let lists = p.lists();
    let mut n = 0;
    let mut pa_checked = 0;
    p.walk_pages(|pg| {
        let va = pg.va as u64;
        let got = seen
            .get(&va)
            .unwrap_or_else(|| panic!("page {va:#x} not mapped in the peer"));
        assert_eq!(got.len, pg.size as u64);
        assert_eq!(got.iova, pg.iova.map(|i| i.0), "IOVA of {va:#x}");
        assert!(
            got.consistent,
            "to_local/to_exporter/iova disagree with the walk at {va:#x}"
        );
        if pg.in_use {
            assert_eq!(got.first, pattern(va), "bytes of {va:#x} seen by the peer");
        }
        let base = lists.iter().find(|l| l.id == pg.list).unwrap().va as u64;
        match same_va(base) {
            Some(true) => assert_eq!(got.local, va, "same VA"),
            Some(false) => assert_ne!(got.local, va, "relocated"),
            None => {}
        }
        if let Some(pa) = got.pa {
            // SAFETY: a mapped page of ours, touched by a volatile read.
            let _ = unsafe { (pg.va as *const u64).read_volatile() };
            assert_eq!(
                Some(pa),
                pagemap_pa(pg.va),
                "physical address of {va:#x} on both sides"
            );
            if p.iova_mode() == IovaMode::Pa {
                assert_eq!(Some(pa), pg.iova.map(|i| i.0), "IOVA = PA");
            }
            pa_checked += 1;
        }
        n += 1;
    });
    assert_eq!(seen.len(), n, "the peer maps exactly the exporter's pages");
    if is_root() {
        assert_eq!(pa_checked, n, "as root every page's PA is compared");
    } else {
        skip(format_args!(
            "page map comparison needs root (frames are hidden)"
        ));
    }
    n
}

/// The peer writes a word in each chunk; the exporter reads it.
fn peer_writes(peer: &mut Peer, chunks: &[SharedChunk]) {
    for (i, c) in chunks.iter().enumerate() {
        let va = c.as_ptr().as_ptr() as u64 + 64;
        let v = 0xfeed_0000 + i as u64;
        assert_eq!(peer.cmd(&format!("write {va:x} {v:x}")), ["ok"]);
        // SAFETY: our chunk, read by raw pointer (the peer wrote it).
        assert_eq!(unsafe { (va as *const u64).read_volatile() }, v);
    }
}

#[test]
fn same_va_attach_translates_every_page() {
    let (p, chunks) = exported_memory();
    let path = sock_path("same");
    let exp = Exporter::builder(&p).bind(&path).unwrap();
    let mut peer = Peer::spawn(PEER, &[(ENV_SOCK, path.display().to_string())]);
    assert!(peer.hello.starts_with("attached 1 1"), "{}", peer.hello);
    let places = peer.cmd("placement");
    // Two lists (2 MiB and 4 KiB), or one when there are no hugepages.
    let lists = if chunks[0].page_size() == 4096 { 1 } else { 2 };
    assert_eq!(places.len(), lists, "{places:?}");
    // Same VA wherever the exporter's range is free in the peer; a list
    // whose range the peer's own mappings (its libraries, stacks, heap:
    // ASLR) happen to take moves by itself, and still translates.
    let mut moved = Vec::new();
    for l in &places {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w[7] == "true" {
            continue;
        }
        let why = peer.cmd(&format!("taken {} {}", w[3], w[5]));
        assert!(
            why[0].starts_with("taken "),
            "list {} moved though its range is free: {l} {why:?}",
            w[1]
        );
        skip(format_args!(
            "same VA for list {}: its range is taken in the peer ({})",
            w[1], why[0]
        ));
        moved.push(u64::from_str_radix(w[3], 16).unwrap());
    }
    if moved.len() == places.len() {
        // Every move was explained above (the range is taken in the peer:
        // under AddressSanitizer its allocator sits where the exporter's
        // lists are).
        skip(format_args!(
            "no list at the same VA: every exporter range is taken in the peer"
        ));
    }
    let n = check_every_page(&p, &mut peer, |base| Some(!moved.contains(&base)));
    assert!(n >= 5 + 4, "{n} pages");
    peer_writes(&mut peer, &chunks);
    assert!(peer.quit().success());
    drop(exp);
}

#[test]
fn relocated_attach_translates_every_page() {
    let (p, chunks) = exported_memory();
    let path = sock_path("reloc");
    let _exp = Exporter::builder(&p).bind(&path).unwrap();
    let mut peer = Peer::spawn(
        PEER,
        &[
            (ENV_SOCK, path.display().to_string()),
            (ENV_PLACE, "relocate".into()),
        ],
    );
    assert!(
        peer.hello.starts_with("attached 1 1 false"),
        "{}",
        peer.hello
    );
    check_every_page(&p, &mut peer, |_| Some(false));
    peer_writes(&mut peer, &chunks);
    assert!(peer.quit().success());
}

#[test]
fn occupied_va_falls_back_to_relocation() {
    let (p, chunks) = exported_memory();
    // Take the first 2 MiB list's range (its first page) in the peer.
    let big = p
        .lists()
        .into_iter()
        .find(|l| l.page_size == chunks[0].page_size())
        .unwrap();
    let path = sock_path("occupied");
    let _exp = Exporter::builder(&p).bind(&path).unwrap();
    let occupy = format!("{:x}:{:x}", big.va, big.page_size);
    let mut peer = Peer::spawn(
        PEER,
        &[(ENV_SOCK, path.display().to_string()), (ENV_OCCUPY, occupy)],
    );
    assert!(
        peer.hello.starts_with("attached 1 1 false"),
        "{}",
        peer.hello
    );
    let places = peer.cmd("placement");
    // The taken list moves; the others stay unless the peer's own mappings
    // happen to take their ranges too (ASLR), checked in its maps.
    let mut moved = Vec::new();
    for l in &places {
        let w: Vec<&str> = l.split_whitespace().collect();
        let base = u64::from_str_radix(w[3], 16).unwrap();
        if base == big.va as u64 {
            assert_eq!(w[7], "false", "the taken list moves: {l}");
            moved.push(base);
        } else if w[7] == "false" {
            let why = peer.cmd(&format!("taken {} {}", w[3], w[5]));
            assert!(
                why[0].starts_with("taken "),
                "moved though free: {l} {why:?}"
            );
            moved.push(base);
        }
    }
    check_every_page(&p, &mut peer, |base| Some(!moved.contains(&base)));
    peer_writes(&mut peer, &chunks);
    assert!(peer.quit().success());
}

/// Translation cost, in-process (a thread attached over a socket pair,
/// relocated: the slower mode), beside the provider's own `virt2iova`;
/// every translated address is checked too. The numbers are printed, not
/// asserted (debug builds, shared cores); run with `--release` to read them.
#[test]
fn translation_is_checked_and_timed() {
    use pktmem_hugemem::share::{Attachment, Placement};
    use std::hint::black_box;
    use std::time::Instant;
    const N: usize = 2_000_000;

    let provider = exportable_provider();
    let chunk = provider.alloc_shared(&AllocRequest::new(64 << 20)).unwrap();
    let exp = Exporter::builder(&provider).unbound().unwrap();
    // Growth with nobody attached, as the baseline.
    let median_alloc_us = |check: &dyn Fn(&pktmem_hugemem::SharedChunk)| {
        let mut v: Vec<f64> = (0..15)
            .map(|_| {
                let t = Instant::now();
                let c = provider.alloc_shared(&AllocRequest::new(2 << 20)).unwrap();
                let us = t.elapsed().as_secs_f64() * 1e6;
                check(&c);
                us
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let alone_us = median_alloc_us(&|_| ());
    let fd = exp.connect_pair().unwrap();
    let t = Instant::now();
    let peer = std::thread::spawn(move || {
        Attachment::builder("timing")
            .placement(Placement::Relocate)
            .from_fd(fd)
    })
    .join()
    .unwrap()
    .unwrap();
    let attach_us = t.elapsed().as_secs_f64() * 1e6;
    // Growth and shrink with one peer: Map sent and acked before alloc
    // returns; the free returns at once (held until the Unmap ack).
    let t = Instant::now();
    let grown = provider.alloc_shared(&AllocRequest::new(2 << 20)).unwrap();
    let grow_us = t.elapsed().as_secs_f64() * 1e6;
    assert!(peer
        .to_local(grown.as_ptr().as_ptr() as u64, 2 << 20)
        .is_some());
    drop(grown);
    let base = chunk.as_ptr().as_ptr() as u64;
    let place = peer.placement();
    let list = place
        .iter()
        .find(|l| l.exporter_base <= base && base < l.exporter_base + l.reserve as u64)
        .unwrap();
    assert!(!list.same_va);
    let delta = (list.local_base as u64).wrapping_sub(list.exporter_base);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        base + x % (64 << 20)
    };
    for _ in 0..10_000 {
        let va = next();
        assert_eq!(
            peer.to_local(va, 1).map(|q| q.as_ptr() as u64),
            Some(va.wrapping_add(delta))
        );
        assert_eq!(peer.iova(va), provider.virt2iova(va as *const u8));
        assert_eq!(
            peer.to_exporter(va.wrapping_add(delta) as *const u8),
            Some(va)
        );
    }
    let addrs: Vec<u64> = (0..N).map(|_| next()).collect();
    let t = Instant::now();
    let mut acc = 0u64;
    for &va in &addrs {
        acc = acc.wrapping_add(black_box(peer.iova(va)).map_or(0, |i| i.0));
        acc = acc.wrapping_add(black_box(peer.to_local(va, 1)).map_or(0, |q| q.as_ptr() as u64));
    }
    let peer_ns = t.elapsed().as_nanos() as f64 / N as f64;
    let t = Instant::now();
    for &va in &addrs {
        acc = acc.wrapping_add(black_box(provider.virt2iova(va as *const u8)).map_or(0, |i| i.0));
    }
    let own_ns = t.elapsed().as_nanos() as f64 / N as f64;
    black_box(acc);
    let mut err = std::io::stderr().lock();
    let _ = std::io::Write::write_fmt(
        &mut err,
        format_args!(
            "TIMING peer iova+to_local {peer_ns:.2} ns/lookup, provider virt2iova {own_ns:.2} ns/lookup ({} lists); attach (64 MiB, in-process) {attach_us:.0} us; 2 MiB alloc (median of 15) alone {alone_us:.0} us, with one peer {grow_us:.0} us\n",
            place.len()
        ),
    );
}

#[test]
fn a_one_gib_page_is_shared_too() {
    let p = Provider::builder()
        .exportable()
        .page_sizes(&[PageSize::Huge1G])
        .allow_small_page_fallback(false)
        .quiet(true)
        .build()
        .unwrap();
    let c = match p.alloc_shared(&AllocRequest::new(1 << 30)) {
        Ok(c) => c,
        Err(e) => {
            skip(format_args!(
                "1 GiB page sharing: no 1 GiB page to be had ({e})"
            ));
            return;
        }
    };
    let base = c.as_ptr().as_ptr() as usize;
    // SAFETY: our chunk; shared memory written by raw pointer.
    unsafe { (base as *mut u64).write_volatile(pattern(base as u64)) };
    let path = sock_path("1g");
    let _exp = Exporter::builder(&p).bind(&path).unwrap();
    let mut peer = Peer::spawn(
        PEER,
        &[
            (ENV_SOCK, path.display().to_string()),
            (ENV_PLACE, "relocate".into()),
        ],
    );
    assert!(peer.hello.starts_with("attached"), "{}", peer.hello);
    let places = peer.cmd("placement");
    assert!(places[0].starts_with("place 0 40000000 "), "{places:?}");
    assert_eq!(check_every_page(&p, &mut peer, |_| Some(false)), 1);
    peer_writes(&mut peer, std::slice::from_ref(&c));
    assert!(peer.quit().success());
    drop(c);
}

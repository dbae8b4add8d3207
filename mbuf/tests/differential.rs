//! A differential test of the data operations against a model: the packet
//! as a list of segments, each a `Vec<u8>` of data with its headroom and
//! tailroom and the buffer it lives in, plus how many segments (of the
//! packet and of the other mbufs holding its buffers: clones, attached
//! mbufs) reference each buffer.
//!
//! Random sequences of prepend, append, adj, trim, chain, `data_mut`, read,
//! linearize, copy, clone, attach, detach, `free_first_segment`, drops and
//! replacements run on a real pool (and on a pinned one); after every step
//! the model and the mbufs must agree on the bytes, lengths, segment
//! counts, each segment's rooms, buffer address, refcount and writability,
//! the result of the step (including each error's numbers), and the pools'
//! in-use counts (a leak or a double free shows at the step that made it).
//!
//! Seeds: `PKTMEM_MBUF_DIFF_SEED` (decimal or 0x-hex) runs one; the number
//! of steps is `PKTMEM_MBUF_DIFF_STEPS` (default 3000). A failure prints
//! the seed.

mod common;

use std::collections::{HashMap, HashSet};

use common::{say, with_seeds, Kind, Rng};
use pktmem_mbuf::{
    AttachErrorKind, CopyError, DataError, ExtBuf, Mbuf, PktPool, Segment, HEADROOM,
};

/// The pool a header comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PoolTag {
    Packets,
    Clones,
}

/// How a segment reaches its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// Its own buffer (a pool's direct buffer, or a pinned pool's).
    Own,
    /// Another mbuf's direct buffer (a clone, an attach).
    Indirect,
    /// A shared external buffer (attached, or a clone of an external or
    /// pinned one).
    Shared,
}

#[derive(Clone, Debug)]
struct SegM {
    /// Header address (the segment's identity).
    hdr: usize,
    hdr_pool: PoolTag,
    /// The buffer: its address when it was made.
    buf: usize,
    via: Via,
    headroom: usize,
    data: Vec<u8>,
    tailroom: usize,
}

#[derive(Clone, Debug)]
struct BufM {
    /// The header whose buffer this is, for pool buffers (the header stays
    /// out of its pool while the buffer is referenced).
    owner: Option<(usize, PoolTag)>,
    /// Segments referencing it.
    refs: usize,
    /// An external (pinned or attached) buffer: its shared count is
    /// readable on its segments.
    external: bool,
}

struct World {
    packets: PktPool,
    clones: PktPool,
    pinned: bool,
    bufs: HashMap<usize, BufM>,
    packet: Option<(Mbuf, Vec<SegM>)>,
    holders: Vec<(Mbuf, Vec<SegM>)>,
    rng: Rng,
}

/// Most segments of the packet, most holders.
const MAX_SEGS: usize = 24;
const MAX_HOLDERS: usize = 6;
/// Bytes of data room after the headroom in the packet pool.
const ROOM: usize = 200;

fn bytes_of(segs: &[SegM]) -> Vec<u8> {
    segs.iter().flat_map(|s| s.data.iter().copied()).collect()
}

fn hdr_of(s: &Segment) -> usize {
    std::ptr::from_ref(s) as usize
}

impl World {
    fn new(kind: Kind, seed: u64) -> World {
        let packets = common::pool_of(kind, "diff-packets", 256, 0, HEADROOM + ROOM);
        let clones = PktPool::builder(256)
            .name("diff-clones")
            .build_anonymous()
            .unwrap();
        World {
            pinned: kind.is_pinned(),
            packets,
            clones,
            bufs: HashMap::new(),
            packet: None,
            holders: Vec::new(),
            rng: Rng::new(seed),
        }
    }

    fn writable(&self, s: &SegM) -> bool {
        s.via != Via::Indirect && self.bufs[&s.buf].refs == 1
    }

    /// The model segment of a fresh mbuf of `tag`'s pool (its own buffer).
    fn fresh(&mut self, m: &Mbuf, tag: PoolTag) -> SegM {
        let buf = m.buf_addr().as_ptr() as usize;
        let prev = self.bufs.insert(
            buf,
            BufM {
                owner: Some((hdr_of(m), tag)),
                refs: 1,
                external: tag == PoolTag::Packets && self.pinned,
            },
        );
        assert!(
            prev.map_or(true, |b| b.refs == 0),
            "a live buffer handed out again"
        );
        SegM {
            hdr: hdr_of(m),
            hdr_pool: tag,
            buf,
            via: Via::Own,
            headroom: m.headroom(),
            data: Vec::new(),
            tailroom: m.tailroom(),
        }
    }

    /// A segment's reference goes.
    fn unref(&mut self, s: &SegM) {
        let b = self.bufs.get_mut(&s.buf).unwrap();
        b.refs -= 1;
        if b.refs == 0 {
            self.bufs.remove(&s.buf);
        }
    }

    fn drop_segs(&mut self, segs: &[SegM]) {
        for s in segs {
            self.unref(s);
        }
    }

    /// How a clone of (or an attach to) `s` reaches its buffer.
    fn clone_via(&self, s: &SegM) -> Via {
        if self.bufs[&s.buf].external {
            Via::Shared
        } else {
            Via::Indirect
        }
    }

    fn new_packet(&mut self) {
        if let Some((m, segs)) = self.packet.take() {
            drop(m);
            self.drop_segs(&segs);
        }
        if self.rng.chance(1, 4) {
            // An external buffer owned by a Vec, on a clone-pool mbuf.
            let len = self.rng.range(1, 300);
            let bytes = self.rng.bytes(len);
            let m = self.clones.attach_owned(bytes.clone(), None).unwrap();
            let buf = m.buf_addr().as_ptr() as usize;
            self.bufs.insert(
                buf,
                BufM {
                    owner: None,
                    refs: 1,
                    external: true,
                },
            );
            let seg = SegM {
                hdr: hdr_of(&m),
                hdr_pool: PoolTag::Clones,
                buf,
                via: Via::Shared,
                headroom: 0,
                data: bytes,
                tailroom: 0,
            };
            self.packet = Some((m, vec![seg]));
        } else {
            let mut m = self.packets.alloc_default().unwrap();
            let mut seg = self.fresh(&m, PoolTag::Packets);
            let n = self.rng.range(0, ROOM);
            let bytes = self.rng.bytes(n);
            m.append(n).unwrap().copy_from_slice(&bytes);
            seg.data = bytes;
            seg.tailroom -= n;
            self.packet = Some((m, vec![seg]));
        }
    }

    /// Checks one mbuf against its model.
    fn verify_one(&self, what: &str, m: &Mbuf, segs: &[SegM]) {
        assert_eq!(m.to_vec(), bytes_of(segs), "{what}: bytes");
        assert_eq!(
            m.pkt_len(),
            segs.iter().map(|s| s.data.len()).sum::<usize>(),
            "{what}: pkt_len"
        );
        assert_eq!(m.nb_segs(), segs.len(), "{what}: nb_segs");
        if let Err(e) = m.check() {
            panic!("{what}: sanity check: {e}");
        }
        for (i, (s, sm)) in m.segments().zip(segs).enumerate() {
            let b = &self.bufs[&sm.buf];
            assert_eq!(hdr_of(s), sm.hdr, "{what}: segment {i} header");
            assert_eq!(
                s.buf_addr().as_ptr() as usize,
                sm.buf,
                "{what}: segment {i} buffer"
            );
            assert_eq!(
                (s.headroom(), s.data_len(), s.tailroom()),
                (sm.headroom, sm.data.len(), sm.tailroom),
                "{what}: segment {i} rooms"
            );
            assert_eq!(
                s.is_writable(),
                self.writable(sm),
                "{what}: segment {i} writable"
            );
            assert_eq!(
                s.is_indirect(),
                sm.via == Via::Indirect,
                "{what}: segment {i} indirect"
            );
            assert_eq!(s.is_external(), b.external, "{what}: segment {i} external");
            if b.external {
                assert_eq!(
                    usize::from(s.ext_refcnt().unwrap()),
                    b.refs,
                    "{what}: segment {i} shared count"
                );
            } else if sm.via == Via::Own {
                assert_eq!(
                    usize::from(s.refcnt()),
                    b.refs,
                    "{what}: segment {i} refcount"
                );
            } else {
                assert_eq!(s.refcnt(), 1, "{what}: segment {i} (indirect) own refcount");
            }
        }
    }

    /// Checks everything: the packet, every holder, the pools' counts.
    fn verify(&self) {
        if let Some((m, segs)) = &self.packet {
            self.verify_one("packet", m, segs);
        }
        for (i, (h, segs)) in self.holders.iter().enumerate() {
            self.verify_one(&format!("holder {i}"), h, segs);
        }
        let mut live: HashSet<(usize, PoolTag)> = HashSet::new();
        let all = self.packet.iter().chain(self.holders.iter());
        for (_, segs) in all {
            for s in segs {
                live.insert((s.hdr, s.hdr_pool));
            }
        }
        for b in self.bufs.values() {
            assert!(b.refs > 0);
            if let Some(o) = b.owner {
                live.insert(o);
            }
        }
        for (tag, pool) in [
            (PoolTag::Packets, &self.packets),
            (PoolTag::Clones, &self.clones),
        ] {
            let expect = live.iter().filter(|(_, t)| *t == tag).count();
            assert_eq!(pool.in_use_count(), expect, "{tag:?} pool: mbufs in use");
        }
    }

    /// One random step.
    #[allow(clippy::too_many_lines, clippy::many_single_char_names)]
    fn step(&mut self) -> &'static str {
        if self.packet.is_none() {
            self.new_packet();
            return "new packet";
        }
        let op = self.rng.below(100);
        let (mut m, mut segs) = self.packet.take().unwrap();
        let name = match op {
            0..=11 => {
                let n = if self.rng.chance(1, 30) {
                    usize::MAX
                } else {
                    self.rng.range(0, 140)
                };
                let s0 = segs[0].clone();
                let r = m.prepend(n);
                if n > s0.headroom {
                    assert_eq!(
                        r,
                        Err(DataError::NoHeadroom {
                            len: n,
                            headroom: s0.headroom
                        })
                    );
                    "prepend: no headroom"
                } else if !self.writable(&s0) {
                    assert_eq!(r, Err(DataError::NotWritable));
                    "prepend: not writable"
                } else {
                    let bytes = self.rng.bytes(n);
                    r.unwrap().copy_from_slice(&bytes);
                    let s = &mut segs[0];
                    s.headroom -= n;
                    s.data.splice(0..0, bytes);
                    "prepend"
                }
            }
            12..=23 => {
                let n = if self.rng.chance(1, 30) {
                    usize::MAX
                } else {
                    self.rng.range(0, 220)
                };
                let last = segs.last().unwrap().clone();
                let r = m.append(n);
                if n > last.tailroom {
                    assert_eq!(
                        r,
                        Err(DataError::NoTailroom {
                            len: n,
                            tailroom: last.tailroom
                        })
                    );
                    "append: no tailroom"
                } else if !self.writable(&last) {
                    assert_eq!(r, Err(DataError::NotWritable));
                    "append: not writable"
                } else {
                    let bytes = self.rng.bytes(n);
                    r.unwrap().copy_from_slice(&bytes);
                    let s = segs.last_mut().unwrap();
                    s.tailroom -= n;
                    s.data.extend_from_slice(&bytes);
                    "append"
                }
            }
            24..=31 => {
                let have = segs[0].data.len();
                let n = if self.rng.chance(1, 30) {
                    usize::MAX
                } else {
                    self.rng.range(0, have + 5)
                };
                let r = m.adj(n);
                if n > have {
                    assert_eq!(r, Err(DataError::TooShort { len: n, have }));
                    "adj: too short"
                } else {
                    r.unwrap();
                    let s = &mut segs[0];
                    s.data.drain(..n);
                    s.headroom += n;
                    "adj"
                }
            }
            32..=39 => {
                let have = segs.last().unwrap().data.len();
                let n = if self.rng.chance(1, 30) {
                    usize::MAX
                } else {
                    self.rng.range(0, have + 5)
                };
                let r = m.trim(n);
                if n > have {
                    assert_eq!(r, Err(DataError::TooShort { len: n, have }));
                    "trim: too short"
                } else {
                    r.unwrap();
                    let s = segs.last_mut().unwrap();
                    s.data.truncate(have - n);
                    s.tailroom += n;
                    "trim"
                }
            }
            40..=47 => {
                if segs.len() < MAX_SEGS {
                    let mut t = self.packets.alloc_default().unwrap();
                    let mut seg = self.fresh(&t, PoolTag::Packets);
                    let pre = self.rng.range(0, 20);
                    let bytes = self.rng.bytes(pre);
                    t.prepend(pre).unwrap().copy_from_slice(&bytes);
                    seg.headroom -= pre;
                    seg.data = bytes;
                    let n = self.rng.range(0, ROOM);
                    let bytes = self.rng.bytes(n);
                    t.append(n).unwrap().copy_from_slice(&bytes);
                    seg.tailroom -= n;
                    seg.data.extend_from_slice(&bytes);
                    m.chain(t).unwrap();
                    segs.push(seg);
                }
                "chain"
            }
            48..=51 => {
                let s0 = segs[0].clone();
                let writable = self.writable(&s0);
                if let Some(d) = m.data_mut() {
                    assert!(writable, "data_mut on a shared buffer");
                    if !d.is_empty() {
                        let at = self.rng.below(d.len());
                        let v = self.rng.next_u64() as u8;
                        d[at] = v;
                        segs[0].data[at] = v;
                    }
                    "data_mut"
                } else {
                    assert!(!writable, "data_mut refused on a writable buffer");
                    "data_mut: none"
                }
            }
            52..=59 => {
                let all = bytes_of(&segs);
                let pkt = all.len();
                let off = if self.rng.chance(1, 20) {
                    usize::MAX - self.rng.below(3)
                } else {
                    self.rng.range(0, pkt + 3)
                };
                let len = if self.rng.chance(1, 20) {
                    usize::MAX - self.rng.below(3)
                } else {
                    self.rng.range(0, pkt + 3)
                };
                let short = self.rng.chance(1, 4);
                let mut buf = vec![
                    0u8;
                    if short {
                        len.min(pkt).saturating_sub(1)
                    } else {
                        len.min(pkt + 3)
                    }
                ];
                let got = m.read(off, len, &mut buf).map(<[u8]>::to_vec);
                let expect = match off.checked_add(len) {
                    Some(end) if end <= pkt => {
                        if len == 0 {
                            Some(Vec::new())
                        } else {
                            // In place when inside one segment (skipping
                            // the segments the offset is past).
                            let mut o = off;
                            let mut i = 0;
                            while o >= segs[i].data.len() {
                                o -= segs[i].data.len();
                                i += 1;
                            }
                            if o + len <= segs[i].data.len() || buf.len() >= len {
                                Some(all[off..end].to_vec())
                            } else {
                                None
                            }
                        }
                    }
                    _ => None,
                };
                assert_eq!(
                    got,
                    expect,
                    "read({off}, {len}) with a {}-byte buffer",
                    buf.len()
                );
                if got.is_some() {
                    "read"
                } else {
                    "read: none"
                }
            }
            60..=63 => {
                let r = m.linearize();
                if segs.len() > 1 {
                    let rest: usize = segs[1..].iter().map(|s| s.data.len()).sum();
                    let s0 = segs[0].clone();
                    if rest > s0.tailroom {
                        assert_eq!(
                            r,
                            Err(DataError::NoTailroom {
                                len: rest,
                                tailroom: s0.tailroom
                            })
                        );
                        "linearize: no tailroom"
                    } else if !self.writable(&s0) {
                        assert_eq!(r, Err(DataError::NotWritable));
                        "linearize: not writable"
                    } else {
                        r.unwrap();
                        let tail: Vec<SegM> = segs.drain(1..).collect();
                        let moved = bytes_of(&tail);
                        self.drop_segs(&tail);
                        segs[0].data.extend_from_slice(&moved);
                        segs[0].tailroom -= rest;
                        "linearize"
                    }
                } else {
                    r.unwrap();
                    "linearize (one segment)"
                }
            }
            64..=69 => {
                let all = bytes_of(&segs);
                let pkt = all.len();
                let (off, len) = if self.rng.chance(1, 6) {
                    (self.rng.range(0, pkt + 2), usize::MAX - self.rng.below(2))
                } else {
                    let off = self.rng.range(0, pkt);
                    (off, self.rng.range(0, pkt - off + 1))
                };
                let r = m.copy(&self.packets, off, len);
                if off.checked_add(len).map_or(true, |e| e > pkt) {
                    assert_eq!(
                        r.unwrap_err(),
                        CopyError::OutOfRange {
                            offset: off,
                            len,
                            pkt_len: pkt
                        }
                    );
                    "copy: out of range"
                } else {
                    let c = r.unwrap();
                    assert_eq!(c.to_vec(), &all[off..off + len], "copy({off}, {len})");
                    // The copy's model: fresh buffers filled up to the room.
                    let mut csegs = Vec::new();
                    let mut left = &all[off..off + len];
                    for s in c.segments() {
                        let n = left.len().min(ROOM);
                        let buf = s.buf_addr().as_ptr() as usize;
                        self.bufs.insert(
                            buf,
                            BufM {
                                owner: Some((hdr_of(s), PoolTag::Packets)),
                                refs: 1,
                                external: self.pinned,
                            },
                        );
                        csegs.push(SegM {
                            hdr: hdr_of(s),
                            hdr_pool: PoolTag::Packets,
                            buf,
                            via: Via::Own,
                            headroom: HEADROOM,
                            data: left[..n].to_vec(),
                            tailroom: ROOM - n,
                        });
                        left = &left[n..];
                    }
                    assert_eq!(csegs.len(), len.div_ceil(ROOM).max(1));
                    self.verify_one("copy", &c, &csegs);
                    if self.rng.chance(1, 2) {
                        drop(m);
                        self.drop_segs(&segs);
                        m = c;
                        segs = csegs;
                    } else {
                        drop(c);
                        self.drop_segs(&csegs);
                    }
                    "copy"
                }
            }
            70..=75 => {
                if self.holders.len() < MAX_HOLDERS {
                    let c = m.clone_in(&self.clones).unwrap();
                    let csegs: Vec<SegM> = c
                        .segments()
                        .zip(&segs)
                        .map(|(s, sm)| SegM {
                            hdr: hdr_of(s),
                            hdr_pool: PoolTag::Clones,
                            via: self.clone_via(sm),
                            ..sm.clone()
                        })
                        .collect();
                    for s in &csegs {
                        self.bufs.get_mut(&s.buf).unwrap().refs += 1;
                    }
                    self.holders.push((c, csegs));
                }
                "clone"
            }
            76..=79 => {
                if self.holders.len() < MAX_HOLDERS {
                    let mut i = self.clones.alloc_default().unwrap();
                    let s0 = segs[0].clone();
                    i.attach(&m).unwrap();
                    // Attaching again is refused, unchanged.
                    assert_eq!(i.attach(&m), Err(AttachErrorKind::AlreadyAttached));
                    let seg = SegM {
                        hdr: hdr_of(&i),
                        hdr_pool: PoolTag::Clones,
                        via: self.clone_via(&s0),
                        ..s0
                    };
                    self.bufs.get_mut(&seg.buf).unwrap().refs += 1;
                    self.holders.push((i, vec![seg]));
                }
                "attach"
            }
            80..=83 => {
                // Detach a one-segment holder, or the packet's head.
                let pick = self.holders.iter().position(|(_, s)| s.len() == 1);
                if let (Some(i), true) = (pick, self.rng.chance(2, 3)) {
                    let (mut h, hsegs) = self.holders.swap_remove(i);
                    h.detach();
                    self.drop_segs(&hsegs);
                    assert!(h.is_direct());
                    assert_eq!((h.data_len(), h.buf_len()), (0, self.clones.data_room()));
                    assert_eq!(h.headroom(), HEADROOM);
                    drop(h);
                    "detach holder"
                } else {
                    let s0 = segs[0].clone();
                    m.detach();
                    // Only a head on another's buffer changes (a pool's
                    // direct buffer and a pinned one are its own).
                    if s0.via == Via::Own {
                        "detach packet (own buffer)"
                    } else {
                        // Back to its own (clone-pool) buffer, empty.
                        self.unref(&s0);
                        let mut fresh = self.fresh(&m, s0.hdr_pool);
                        fresh.hdr = s0.hdr;
                        segs[0] = fresh;
                        "detach packet"
                    }
                }
            }
            84..=87 => {
                if segs.len() > 1 {
                    let rest = m.free_first_segment().unwrap();
                    let first = segs.remove(0);
                    self.unref(&first);
                    m = rest;
                    assert_eq!(m.pkt_len(), bytes_of(&segs).len());
                } else {
                    assert!(m.free_first_segment().is_none());
                    self.drop_segs(&segs);
                    return "free_first_segment (last)";
                }
                "free_first_segment"
            }
            88..=91 => {
                if !self.holders.is_empty() {
                    let i = self.rng.below(self.holders.len());
                    let (h, hsegs) = self.holders.swap_remove(i);
                    drop(h);
                    self.drop_segs(&hsegs);
                }
                "drop holder"
            }
            92..=95 => {
                // The packet becomes its own clone (the original dropped).
                let c = m.clone_in(&self.clones).unwrap();
                let csegs: Vec<SegM> = c
                    .segments()
                    .zip(&segs)
                    .map(|(s, sm)| SegM {
                        hdr: hdr_of(s),
                        hdr_pool: PoolTag::Clones,
                        via: self.clone_via(sm),
                        ..sm.clone()
                    })
                    .collect();
                for s in &csegs {
                    self.bufs.get_mut(&s.buf).unwrap().refs += 1;
                }
                drop(m);
                self.drop_segs(&segs);
                m = c;
                segs = csegs;
                "replace by clone"
            }
            _ => {
                self.packet = Some((m, segs));
                self.new_packet();
                return "new packet";
            }
        };
        self.packet = Some((m, segs));
        name
    }

    fn finish(mut self) {
        if let Some((m, segs)) = self.packet.take() {
            drop(m);
            self.drop_segs(&segs);
        }
        for (h, segs) in std::mem::take(&mut self.holders) {
            drop(h);
            self.drop_segs(&segs);
        }
        assert!(self.bufs.is_empty());
        common::assert_full(&[&self.packets, &self.clones]);
    }
}

fn steps() -> usize {
    std::env::var("PKTMEM_MBUF_DIFF_STEPS").map_or(3000, |s| {
        s.parse().expect("PKTMEM_MBUF_DIFF_STEPS: a number")
    })
}

/// Outcomes every default-length run must reach (else the test explores
/// too little to mean much).
const MUST_SEE: [&str; 22] = [
    "prepend",
    "prepend: no headroom",
    "prepend: not writable",
    "append",
    "append: no tailroom",
    "append: not writable",
    "adj",
    "adj: too short",
    "trim",
    "trim: too short",
    "chain",
    "data_mut",
    "data_mut: none",
    "read",
    "read: none",
    "linearize",
    "linearize: no tailroom",
    "copy",
    "copy: out of range",
    "detach holder",
    "detach packet",
    "replace by clone",
];

fn run(kind: Kind, seed: u64) {
    let mut w = World::new(kind, seed);
    let mut last = Vec::new();
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    for i in 0..steps() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let name = w.step();
            w.verify();
            name
        }));
        match r {
            Ok(name) => {
                *outcomes.entry(name).or_default() += 1;
                last.push(name);
                if last.len() > 8 {
                    last.remove(0);
                }
            }
            Err(e) => {
                say(format_args!(
                    "differential ({kind:?} pool): step {i} failed; the steps before: {last:?}"
                ));
                // The world may be half-updated: leak it rather than check
                // it on the way out.
                std::mem::forget(w);
                std::panic::resume_unwind(e);
            }
        }
    }
    w.finish();
    if std::env::var_os("PKTMEM_MBUF_DIFF_STATS").is_some() {
        let mut v: Vec<_> = outcomes.iter().collect();
        v.sort();
        say(format_args!(
            "differential ({kind:?}, seed {seed:#x}): {v:?}"
        ));
    }
    if steps() >= 3000 {
        for o in MUST_SEE {
            assert!(
                outcomes.contains_key(o),
                "seed {seed:#x} never reached {o:?}: {outcomes:?}"
            );
        }
    }
}

const SEEDS: [u64; 4] = [
    0x0123_4567_89ab_cdef,
    0xdead_beef,
    42,
    0x5151_5151_0000_0001,
];

#[test]
fn data_ops_match_the_model() {
    with_seeds("PKTMEM_MBUF_DIFF_SEED", &SEEDS, |seed| {
        run(Kind::Anonymous, seed);
    });
}

#[test]
fn data_ops_match_the_model_on_a_pinned_pool() {
    with_seeds("PKTMEM_MBUF_DIFF_SEED", &SEEDS, |seed| {
        run(Kind::PinnedLeaked, seed);
    });
}

/// The model catches what it must: an external buffer's extra reference
/// (held outside the model) makes the packet unwritable, and the check
/// after the next write sees the difference.
#[test]
fn the_model_notices_a_hidden_reference() {
    let mut w = World::new(Kind::Anonymous, 1);
    let m = w.clones.attach_owned(vec![1u8; 64], None).unwrap();
    let buf = m.buf_addr().as_ptr() as usize;
    w.bufs.insert(
        buf,
        BufM {
            owner: None,
            refs: 1,
            external: true,
        },
    );
    let seg = SegM {
        hdr: hdr_of(&m),
        hdr_pool: PoolTag::Clones,
        buf,
        via: Via::Shared,
        headroom: 0,
        data: vec![1; 64],
        tailroom: 0,
    };
    let hidden: ExtBuf = m.extbuf().unwrap();
    w.packet = Some((m, vec![seg]));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.verify()));
    assert!(
        r.is_err(),
        "a reference the model does not know must fail the check"
    );
    drop(hidden);
    w.verify();
    w.finish();
}

//! Dynamic fields: idempotent registration, mismatches, errors, placement
//! and alignment, get/set touching only the field's bytes, concurrent
//! registration, and running out of room.
//!
//! The registry is process-wide and the tests of this binary run in
//! parallel: each test uses its own names and only a few bytes, and the
//! tests that need more of the 28-byte area (or all of it) run in child
//! processes of their own.

use std::mem::size_of;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

use pktmem_mbuf::dynfield::{self, DynField, DynFieldError, DynFieldValue, RawDynField};
use pktmem_mbuf::{MbufHeader, DYN_AREA_LEN, DYN_AREA_OFFSET, HEADER_SIZE};

/// Set in the environment of the child processes that run the `child_*`
/// tests; without it (e.g. `--include-ignored` in the shared process, whose
/// registry is not empty) those tests do nothing.
const CHILD_ENV: &str = "PKTMEM_MBUF_TEST_CHILD";

fn in_child() -> bool {
    if std::env::var_os(CHILD_ENV).is_some() {
        true
    } else {
        eprintln!("skipped: runs only in the child process its parent test starts");
        false
    }
}

/// The header's 128 bytes.
fn header_bytes(hdr: &MbufHeader) -> [u8; HEADER_SIZE] {
    let mut out = [0u8; HEADER_SIZE];
    // SAFETY: `MbufHeader` is `repr(C)`, 128 bytes, and its fields tile it
    // without padding (offsets asserted in header.rs), so all 128 bytes are
    // initialised; nothing else touches `hdr` while we copy (we hold `&`).
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::from_ref(hdr).cast::<u8>(),
            out.as_mut_ptr(),
            HEADER_SIZE,
        );
    }
    out
}

/// Runs `set` and checks that no header byte outside
/// `offset..offset + size` changed.
fn assert_set_touches_only(
    hdr: &mut MbufHeader,
    offset: usize,
    size: usize,
    set: impl FnOnce(&mut MbufHeader),
) {
    let before = header_bytes(hdr);
    set(hdr);
    let after = header_bytes(hdr);
    for i in 0..HEADER_SIZE {
        if !(offset..offset + size).contains(&i) {
            assert_eq!(
                before[i],
                after[i],
                "byte {i} changed by a set at {offset}..{}",
                offset + size
            );
        }
    }
}

#[test]
fn registration_is_idempotent_by_name() {
    let a = DynField::<u32>::register("dyn_test_idem_a").unwrap();
    assert_eq!(DynField::<u32>::register("dyn_test_idem_a").unwrap(), a);
    assert_eq!(DynField::<u32>::lookup("dyn_test_idem_a"), Some(a));
    assert_eq!(RawDynField::lookup("dyn_test_idem_a"), Some(a.raw()));
    // The raw form with the same layout names the same field.
    assert_eq!(
        RawDynField::register("dyn_test_idem_a", 4, 4).unwrap(),
        a.raw()
    );
    // A raw registration is adopted by a typed one of the same layout.
    let r = RawDynField::register("dyn_test_idem_raw", 2, 2).unwrap();
    let t = DynField::<u16>::register("dyn_test_idem_raw").unwrap();
    assert_eq!(t.offset(), r.offset());
    // ... which then fixes the type.
    assert_eq!(DynField::<i16>::lookup("dyn_test_idem_raw"), None);
    let info = dynfield::registered()
        .into_iter()
        .find(|i| i.name == "dyn_test_idem_raw")
        .unwrap();
    assert_eq!(
        (info.offset, info.size, info.align, info.type_name),
        (r.offset(), 2, 2, Some("u16"))
    );
    assert!(dynfield::dump().contains(&format!(
        "dyn_test_idem_a: offset {}, size 4, align 4, type u32",
        a.offset()
    )));
}

#[test]
fn same_name_other_parameters_is_a_mismatch() {
    let _a = DynField::<u16>::register("dyn_test_mismatch").unwrap();
    assert_eq!(
        DynField::<u32>::register("dyn_test_mismatch"),
        Err(DynFieldError::Mismatch {
            name: "dyn_test_mismatch".into(),
            size: 4,
            align: 4,
            existing_size: 2,
            existing_align: 2,
        })
    );
    assert_eq!(
        RawDynField::register("dyn_test_mismatch", 2, 1),
        Err(DynFieldError::Mismatch {
            name: "dyn_test_mismatch".into(),
            size: 2,
            align: 1,
            existing_size: 2,
            existing_align: 2,
        })
    );
    assert_eq!(
        DynField::<i16>::register("dyn_test_mismatch"),
        Err(DynFieldError::TypeMismatch {
            name: "dyn_test_mismatch".into(),
            ty: "i16",
            existing_ty: "u16"
        })
    );
    // Lookups with the wrong type or layout find nothing.
    assert_eq!(DynField::<u32>::lookup("dyn_test_mismatch"), None);
    assert_eq!(DynField::<[u8; 2]>::lookup("dyn_test_mismatch"), None);
    let e = DynField::<u32>::register("dyn_test_mismatch").unwrap_err();
    assert_eq!(
        e.to_string(),
        "dynamic field 'dyn_test_mismatch' asked with size 4, align 4, but registered with size 2, align 2"
    );
}

#[test]
fn bad_parameters_are_typed_errors() {
    assert_eq!(DynField::<u8>::register(""), Err(DynFieldError::EmptyName));
    assert_eq!(
        DynField::<u8>::register(&"n".repeat(64)),
        Err(DynFieldError::NameTooLong { len: 64, max: 63 })
    );
    assert_eq!(
        RawDynField::register("dyn_test_bad_big", DYN_AREA_LEN + 1, 1),
        Err(DynFieldError::TooLarge { size: 29, max: 28 })
    );
    assert_eq!(
        DynField::<[u64; 4]>::register("dyn_test_bad_big_typed"),
        Err(DynFieldError::TooLarge { size: 32, max: 28 })
    );
    for align in [0, 3, 6, 128, 1 << 20] {
        assert_eq!(
            RawDynField::register("dyn_test_bad_align", 1, align),
            Err(DynFieldError::BadAlign { align, max: 64 })
        );
    }
    assert_eq!(
        RawDynField::register("dyn_test_bad_zero", 0, 1),
        Err(DynFieldError::ZeroSize {
            name: "dyn_test_bad_zero".into()
        })
    );
    // 32- and 64-aligned offsets inside 100..128 do not exist.
    for align in [32, 64] {
        assert!(matches!(
            RawDynField::register("dyn_test_bad_wide", 1, align),
            Err(DynFieldError::NoRoom { size: 1, align: a, .. }) if a == align
        ));
    }
    // Failed registrations leave nothing behind.
    for name in [
        "dyn_test_bad_big",
        "dyn_test_bad_align",
        "dyn_test_bad_zero",
        "dyn_test_bad_wide",
    ] {
        assert_eq!(RawDynField::lookup(name), None);
    }
}

#[test]
#[ignore = "run by fields_are_aligned_inside_the_area in a child process"]
fn child_fields_are_aligned() {
    if !in_child() {
        return;
    }
    let fields = [
        RawDynField::register("dyn_test_align_1", 1, 1).unwrap(),
        DynField::<u16>::register("dyn_test_align_2").unwrap().raw(),
        DynField::<u64>::register("dyn_test_align_8").unwrap().raw(),
    ];
    let hdr = MbufHeader::zeroed_for_tests();
    let base = std::ptr::from_ref(&hdr) as usize;
    assert_eq!(base % 64, 0);
    for f in fields {
        assert!(
            f.offset() >= DYN_AREA_OFFSET && f.offset() + f.size() <= HEADER_SIZE,
            "{f:?}"
        );
        assert_eq!(f.offset() % f.align(), 0, "{f:?}");
        // The address in a header is aligned too (absolute alignment).
        assert_eq!(f.bytes(&hdr).as_ptr() as usize % f.align(), 0, "{f:?}");
        assert_eq!(f.bytes(&hdr).as_ptr() as usize - base, f.offset());
    }
    // No two registered fields overlap.
    let all = dynfield::registered();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert!(a.offset + a.size <= b.offset, "{a} overlaps {b}");
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pair {
    a: u16,
    b: u16,
}
// SAFETY: two u16, no padding, every pattern valid.
unsafe impl DynFieldValue for Pair {}

#[test]
#[ignore = "run by get_set_round_trip_touches_only_the_field in a child process"]
fn child_get_set_round_trip() {
    if !in_child() {
        return;
    }
    let word = DynField::<u32>::register("dyn_test_rt_u32").unwrap();
    let byte_f = DynField::<u8>::register("dyn_test_rt_u8").unwrap();
    let pair = DynField::<Pair>::register("dyn_test_rt_pair").unwrap();
    let float = DynField::<f32>::register("dyn_test_rt_f32").unwrap();
    let mut hdr = MbufHeader::zeroed_for_tests();
    // Every registered field starts with a pattern, so a stray write into a
    // neighbour would show.
    for f in dynfield::registered() {
        let raw = RawDynField::lookup(&f.name).unwrap();
        for (i, byte) in raw.bytes_mut(&mut hdr).iter_mut().enumerate() {
            *byte = 0xA0 ^ (i as u8);
        }
    }
    for v in [0u32, 1, 0xDEAD_BEEF, u32::MAX] {
        assert_set_touches_only(&mut hdr, word.offset(), 4, |h| word.set(h, v));
        assert_eq!(word.get(&hdr), v);
        assert_eq!(word.raw().bytes(&hdr), v.to_ne_bytes());
    }
    for v in [0u8, 0x5A, 0xFF] {
        assert_set_touches_only(&mut hdr, byte_f.offset(), 1, |h| byte_f.set(h, v));
        assert_eq!(byte_f.get(&hdr), v);
    }
    let p = Pair {
        a: 0x1234,
        b: 0xFEDC,
    };
    assert_set_touches_only(&mut hdr, pair.offset(), size_of::<Pair>(), |h| {
        pair.set(h, p);
    });
    assert_eq!(pair.get(&hdr), p);
    assert_set_touches_only(&mut hdr, float.offset(), 4, |h| float.set(h, -1.5));
    assert_eq!(float.get(&hdr).to_bits(), (-1.5f32).to_bits());
    // Every field still reads what was last written to it.
    assert_eq!(
        (word.get(&hdr), byte_f.get(&hdr), pair.get(&hdr)),
        (u32::MAX, 0xFF, p)
    );
    // The raw view writes through to the typed one.
    word.raw()
        .bytes_mut(&mut hdr)
        .copy_from_slice(&7u32.to_ne_bytes());
    assert_eq!(word.get(&hdr), 7);
}

#[test]
fn concurrent_registration_gives_one_offset() {
    // 28 bytes are shared by every test of this process: 4 rounds of 1 byte.
    for round in 0..4 {
        let name = format!("dyn_test_race_{round}");
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (name, barrier) = (name.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    DynField::<u8>::register(&name).map(DynField::offset)
                })
            })
            .collect();
        let offsets: Vec<usize> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        assert_eq!(offsets[0], offsets[1], "round {round}");
        assert_eq!(
            dynfield::registered()
                .iter()
                .filter(|i| i.name == name)
                .count(),
            1
        );
    }
}

/// Runs one `#[ignore]`d child test alone in a fresh process (empty
/// registry) and checks it passed.
fn run_child(test: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by no_room_after_filling in a child process"]
fn child_fill_with_bytes() {
    if !in_child() {
        return;
    }
    assert_eq!(
        dynfield::free_bytes(),
        DYN_AREA_LEN,
        "the child must start empty"
    );
    let offsets: Vec<usize> = (0..DYN_AREA_LEN)
        .map(|i| {
            RawDynField::register(&format!("fill_{i}"), 1, 1)
                .unwrap()
                .offset()
        })
        .collect();
    // First fit: 100, 101, ..., 127.
    assert_eq!(offsets, (DYN_AREA_OFFSET..HEADER_SIZE).collect::<Vec<_>>());
    assert_eq!(dynfield::free_bytes(), 0);
    assert_eq!(
        RawDynField::register("fill_more", 1, 1),
        Err(DynFieldError::NoRoom {
            name: "fill_more".into(),
            size: 1,
            align: 1,
            free: 0
        })
    );
    // Registered names still resolve.
    assert_eq!(RawDynField::register("fill_3", 1, 1).unwrap().offset(), 103);
}

#[test]
#[ignore = "run by no_room_after_filling in a child process"]
fn child_fill_with_alignment_holes() {
    if !in_child() {
        return;
    }
    assert_eq!(
        dynfield::free_bytes(),
        DYN_AREA_LEN,
        "the child must start empty"
    );
    let small = DynField::<u8>::register("hole_u8").unwrap();
    assert_eq!(small.offset(), 100);
    // u64s go to the next multiples of 8: 104, 112, 120.
    let big: Vec<usize> = (0..3)
        .map(|i| {
            DynField::<u64>::register(&format!("hole_u64_{i}"))
                .unwrap()
                .offset()
        })
        .collect();
    assert_eq!(big, [104, 112, 120]);
    assert_eq!(dynfield::free_bytes(), 3); // 101, 102, 103
    assert_eq!(
        DynField::<u32>::register("hole_u32"),
        Err(DynFieldError::NoRoom {
            name: "hole_u32".into(),
            size: 4,
            align: 4,
            free: 3
        })
    );
    assert_eq!(DynField::<u16>::register("hole_u16").unwrap().offset(), 102);
    assert_eq!(DynField::<u8>::register("hole_u8_b").unwrap().offset(), 101);
    assert!(matches!(
        DynField::<u8>::register("hole_u8_c"),
        Err(DynFieldError::NoRoom { free: 0, .. })
    ));
    // A 16-aligned 16-byte field would have fitted at 112 in an empty area.
    assert!(matches!(
        DynField::<u128>::register("hole_u128"),
        Err(DynFieldError::NoRoom { size: 16, .. })
    ));
}

#[test]
#[ignore = "run by no_room_after_filling in a child process"]
fn child_u128_fits_at_112() {
    if !in_child() {
        return;
    }
    assert_eq!(
        dynfield::free_bytes(),
        DYN_AREA_LEN,
        "the child must start empty"
    );
    let f = RawDynField::register("wide_16", 16, 16).unwrap();
    assert_eq!(f.offset(), 112);
    // 100..112 stays usable.
    assert_eq!(
        RawDynField::register("wide_12", 12, 4).unwrap().offset(),
        100
    );
    assert_eq!(dynfield::free_bytes(), 0);
}

// The area is 28 bytes for the whole process: the tests that need more
// than a few bytes, or an empty area, run in a child process each.

#[test]
fn fields_are_aligned_inside_the_area() {
    run_child("child_fields_are_aligned");
}

#[test]
fn get_set_round_trip_touches_only_the_field() {
    run_child("child_get_set_round_trip");
}

#[test]
fn no_room_after_filling() {
    run_child("child_fill_with_bytes");
    run_child("child_fill_with_alignment_holes");
    run_child("child_u128_fits_at_112");
}

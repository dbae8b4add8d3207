//! Bad input, both ways. A fake exporter (this test, writing raw wire
//! messages on a socket pair) sends forged and truncated tables, fds of
//! the wrong size or kind, and versions we do not speak: each attach fails
//! with its typed error, and `/proc/self/maps` and `/proc/self/fd` are
//! unchanged afterwards (nothing mapped, nothing leaked). A fake peer asks
//! a real exporter for a version it does not speak, or a bad role.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use pktmem_hugemem::share::wire::{self, Kind, Message, RefuseReason};
use pktmem_hugemem::share::{AttachError, Attachment, Exporter, ProtocolError};
use pktmem_hugemem::Iova;

mod share_common;
use share_common::{exportable_provider, fds, maps};

/// The tests of this file run one at a time: one compares the process's
/// maps and fds before and after.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the fake exporter says its list is (free in this process, as
/// the same-VA placement then shows).
const BASE: u64 = 0x5a00_0000_0000;

fn pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: both fds are new and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Sends raw `bytes` with `fds` attached (`SCM_RIGHTS`).
fn send_raw(sock: &OwnedFd, bytes: &[u8], fds: &[RawFd]) {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let n = std::mem::size_of_val(fds) as u32;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: a size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(n) } as usize;
        // SAFETY: the buffer holds CMSG_SPACE(n) bytes.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(n) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(c),
                n as usize,
            );
        }
    }
    // SAFETY: `msg` describes live buffers.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    assert_eq!(
        r,
        bytes.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// A memfd of `len` bytes (hugetlb 2 MiB when `huge`).
fn memfd(len: u64, huge: bool) -> Option<OwnedFd> {
    let flags = libc::MFD_CLOEXEC
        | if huge {
            libc::MFD_HUGETLB | libc::MFD_HUGE_2MB
        } else {
            0
        };
    // SAFETY: a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"pktmem-fake".as_ptr(), flags) };
    if fd < 0 {
        return None;
    }
    // SAFETY: new and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain syscall on our fd.
    let r = unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) };
    assert_eq!(r, 0);
    Some(fd)
}

/// One message of a script: bytes and the fds to attach.
struct Msg(Vec<u8>, Vec<OwnedFd>);

fn m(msg: &Message) -> Msg {
    Msg(msg.encode(), Vec::new())
}

fn with_fd(msg: &Message, fd: OwnedFd) -> Msg {
    Msg(msg.encode(), vec![fd])
}

fn welcome(lists: u16) -> Msg {
    welcome_v(wire::VERSION, lists)
}

fn welcome_v(version: u16, lists: u16) -> Msg {
    m(&Message::Welcome {
        version,
        role_slot: 1,
        generation: 1,
        exporter_pid: 1,
        iova_mode: 1,
        lists,
    })
}

fn list(id: u16, page_size: u64, base_va: u64, reserve_len: u64) -> Message {
    Message::List {
        list: id,
        page_size,
        base_va,
        reserve_len,
    }
}

/// A 4 KiB list of `pages` pages at `base`, backed by a fresh memfd.
fn small_list(id: u16, base: u64, pages: u64) -> Msg {
    with_fd(
        &list(id, 4096, base, pages * 4096),
        memfd(pages * 4096, false).unwrap(),
    )
}

fn map(seq: u64, list: u16, first_page: u64, iovas: Vec<u64>) -> Msg {
    m(&Message::Map {
        seq,
        list,
        first_page,
        iovas,
    })
}

/// Plays `script` as the exporter (all written before the attach reads),
/// then attaches over the other end.
fn play(script: Vec<Msg>) -> Result<Attachment, AttachError> {
    let (ours, theirs) = pair();
    for Msg(bytes, fds) in &script {
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        send_raw(&ours, bytes, &raw);
    }
    drop(script); // our copies of the fds
    let r = Attachment::builder("worker")
        .handshake_timeout(Duration::from_millis(300))
        .from_fd(theirs);
    drop(ours);
    r
}

fn protocol(r: Result<Attachment, AttachError>) -> ProtocolError {
    match r {
        Err(AttachError::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

fn good_script() -> (Vec<Msg>, OwnedFd) {
    let fd = memfd(8 * 4096, false).unwrap();
    let keep = fd.try_clone().unwrap();
    let script = vec![
        welcome(1),
        with_fd(&list(0, 4096, BASE, 8 * 4096), fd),
        map(1, 0, 2, vec![0x1234_5000, Iova::BAD.0]),
        m(&Message::Publish {
            seq: 2,
            name: "cfg".into(),
            payload: b"x=1".to_vec(),
        }),
        m(&Message::Ready { seq: 3 }),
    ];
    (script, keep)
}

#[test]
fn a_well_formed_fake_exporter_is_attached() {
    let _serial = serial();
    let (script, fd) = good_script();
    let a = play(script).unwrap();
    assert_eq!((a.role_slot(), a.generation(), a.exporter_pid()), (1, 1, 1));
    assert!(a.same_va(), "{:?}", a.placement());
    assert_eq!(a.lookup("cfg").as_deref(), Some(&b"x=1"[..]));
    let va = BASE + 2 * 4096;
    assert_eq!(a.iova(va + 5), Some(Iova(0x1234_5005)));
    assert_eq!(a.iova(va + 4096), None, "mapped, no IOVA");
    assert!(a.to_local(va + 4096, 10).is_some());
    assert!(
        a.to_local(va, 2 * 4096 + 1).is_none(),
        "page 4 is not mapped"
    );
    assert!(a.to_local(BASE, 1).is_none(), "page 0 is not mapped");
    // The bytes behind the fd are what the attachment maps.
    let local = a.to_local(va + 8, 8).unwrap();
    // 8-aligned (BASE + 2 pages + 8).
    #[allow(clippy::cast_ptr_alignment)]
    let word = local.as_ptr().cast::<u64>();
    // SAFETY: mapped; shared memory written by raw pointer.
    unsafe { word.write_volatile(0xabcd) };
    let mut b = [0u8; 8];
    // SAFETY: reading 8 bytes of our memfd into `b`.
    let n = unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), 8, 2 * 4096 + 8) };
    assert_eq!((n, u64::from_le_bytes(b)), (8, 0xabcd));
    drop(a);
}

/// Runs `f` (attaches that must fail) and checks that it left no fd open
/// and nothing mapped: `/proc/self/maps` and `/proc/self/fd` compared
/// before and after (after a warm-up attach, so that what the first
/// attach sets up once, such as allocator arenas, is there before).
fn leaves_nothing_behind(f: impl FnOnce()) {
    let _serial = serial();
    let _ = play(vec![welcome(1), small_list(0, BASE, 4)]);
    let (maps_before, fds_before) = (maps(), fds());
    f();
    assert_eq!(fds(), fds_before, "no fd left open");
    assert_eq!(maps(), maps_before, "nothing left mapped");
}

#[test]
fn truncated_and_malformed_messages_are_typed_errors() {
    // Truncated and malformed messages.
    leaves_nothing_behind(|| {
        let w = welcome(1).0;
        assert_eq!(
            protocol(play(vec![Msg(w[..7].to_vec(), vec![])])),
            ProtocolError::Short {
                kind: None,
                have: 7,
                need: 12
            }
        );
        let mut bad = w.clone();
        bad[0] = b'X';
        assert!(matches!(
            protocol(play(vec![Msg(bad, vec![])])),
            ProtocolError::BadMagic { .. }
        ));
        let mut lying = w.clone();
        lying[8] += 1; // claims one byte more than there is
        assert!(matches!(
            protocol(play(vec![Msg(lying, vec![])])),
            ProtocolError::BodyLength {
                kind: Kind::Welcome,
                ..
            }
        ));
        assert!(matches!(
            protocol(play(vec![Msg(w[..w.len() - 1].to_vec(), vec![])])),
            ProtocolError::BodyLength { .. } | ProtocolError::Short { .. }
        ));
        let huge = vec![0u8; wire::MAX_MESSAGE + 100];
        assert_eq!(
            protocol(play(vec![Msg(huge, vec![])])),
            ProtocolError::TooLong {
                max: wire::MAX_MESSAGE
            }
        );
        assert!(matches!(
            protocol(play(vec![welcome(9)])),
            ProtocolError::Field {
                kind: Kind::Welcome,
                field: "lists",
                value: 9,
                ..
            }
        ));
    });
}

#[test]
// One case after another.
#[allow(clippy::too_many_lines)]
fn forged_list_tables_are_typed_errors() {
    // Forged list tables.
    leaves_nothing_behind(|| {
        let e = protocol(play(vec![
            welcome(1),
            with_fd(&list(0, 8192, BASE, 8192), memfd(8192, false).unwrap()),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    kind: Kind::List,
                    field: "page_size",
                    value: 8192,
                    ..
                }
            ),
            "{e}"
        );
        let e = protocol(play(vec![
            welcome(1),
            with_fd(&list(0, 4096, BASE + 1, 4096), memfd(4096, false).unwrap()),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    field: "base_va",
                    ..
                }
            ),
            "{e}"
        );
        let e = protocol(play(vec![
            welcome(1),
            with_fd(&list(0, 4096, 1 << 47, 4096), memfd(4096, false).unwrap()),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    field: "reserve_len",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            protocol(play(vec![welcome(1), m(&list(0, 4096, BASE, 4096))])),
            ProtocolError::Fds {
                kind: Some(Kind::List),
                got: 0,
                expected: 1
            }
        );
        let two = vec![memfd(4096, false).unwrap(), memfd(4096, false).unwrap()];
        assert_eq!(
            protocol(play(vec![
                welcome(1),
                Msg(list(0, 4096, BASE, 4096).encode(), two)
            ])),
            ProtocolError::Fds {
                kind: Some(Kind::List),
                got: 2,
                expected: 1
            }
        );
        let Msg(wb, _) = welcome(0);
        assert_eq!(
            protocol(play(vec![Msg(wb, vec![memfd(4096, false).unwrap()])])),
            ProtocolError::Fds {
                kind: Some(Kind::Welcome),
                got: 1,
                expected: 0
            }
        );
        let cases = [
            (
                "overlap",
                vec![
                    welcome(2),
                    small_list(0, BASE, 4),
                    small_list(1, BASE + 3 * 4096, 4),
                ],
                Kind::List,
            ),
            (
                "duplicate",
                vec![
                    welcome(2),
                    small_list(0, BASE, 4),
                    small_list(0, BASE + (1 << 30), 4),
                ],
                Kind::List,
            ),
            (
                "list count",
                vec![
                    welcome(2),
                    small_list(0, BASE, 4),
                    m(&Message::Ready { seq: 1 }),
                ],
                Kind::Ready,
            ),
        ];
        for (what, msgs, want) in cases {
            let e = protocol(play(msgs));
            assert!(
                matches!(e, ProtocolError::Unexpected { kind, .. } if kind == want),
                "{what}: {e}"
            );
        }
    });
}

#[test]
fn fds_that_do_not_match_their_table_are_typed_errors() {
    // Fds that do not match their table.
    leaves_nothing_behind(|| {
        match play(vec![
            welcome(1),
            with_fd(
                &list(3, 4096, BASE, 1 << 21),
                memfd(1 << 20, false).unwrap(),
            ),
        ]) {
            Err(AttachError::FdTooSmall {
                list: 3,
                need,
                have,
            }) => assert_eq!((need, have), (1 << 21, 1 << 20)),
            other => panic!("{other:?}"),
        }
        match play(vec![
            welcome(1),
            with_fd(
                &list(0, 2 << 20, BASE, 2 << 20),
                memfd(2 << 20, false).unwrap(),
            ),
        ]) {
            Err(AttachError::FdPageSize {
                list: 0,
                page_size,
                blksize,
            }) => {
                assert_eq!((page_size, blksize), (2 << 20, 4096));
            }
            other => panic!("{other:?}"),
        }
        if let Some(huge_fd) = memfd(2 << 20, true) {
            // A hugetlb fd announced as a 4 KiB list.
            match play(vec![
                welcome(1),
                with_fd(&list(0, 4096, BASE, 2 << 20), huge_fd),
            ]) {
                Err(AttachError::FdPageSize {
                    page_size: 4096,
                    blksize,
                    ..
                }) => assert_eq!(blksize, 2 << 20),
                other => panic!("{other:?}"),
            }
        }
    });
}

#[test]
// One case after another.
#[allow(clippy::too_many_lines)]
fn maps_that_do_not_fit_the_list_are_typed_errors() {
    // Maps that do not fit the list.
    leaves_nothing_behind(|| {
        let e = protocol(play(vec![
            welcome(1),
            small_list(0, BASE, 4),
            map(1, 7, 0, vec![0]),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Unexpected {
                    kind: Kind::Map,
                    ..
                }
            ),
            "unknown list: {e}"
        );
        let e = protocol(play(vec![
            welcome(1),
            small_list(0, BASE, 4),
            map(1, 0, 3, vec![0, 0]),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    kind: Kind::Map,
                    field: "first_page",
                    value: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = protocol(play(vec![
            welcome(1),
            small_list(0, BASE, 4),
            map(1, 0, u64::MAX, vec![0]),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    field: "first_page",
                    ..
                }
            ),
            "overflow: {e}"
        );
        let e = protocol(play(vec![
            welcome(1),
            small_list(0, BASE, 4),
            map(1, 0, 0, vec![0x1001]),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    field: "iova",
                    value: 0x1001,
                    ..
                }
            ),
            "{e}"
        );
        let e = protocol(play(vec![
            welcome(1),
            small_list(0, BASE, 4),
            map(1, 0, 0, vec![0]),
            m(&Message::Unmap {
                seq: 2,
                list: 0,
                first_page: 2,
                count: 3,
            }),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    kind: Kind::Unmap,
                    ..
                }
            ),
            "{e}"
        );
        let e = protocol(play(vec![
            welcome(1),
            small_list(0, BASE, 4),
            map(2, 0, 0, vec![0]),
            map(2, 0, 1, vec![0]),
        ]));
        assert!(
            matches!(
                e,
                ProtocolError::Field {
                    field: "seq",
                    value: 2,
                    ..
                }
            ),
            "seq: {e}"
        );
        let e = protocol(play(vec![welcome(1), small_list(0, BASE, 4), welcome(1)]));
        assert!(
            matches!(
                e,
                ProtocolError::Unexpected {
                    kind: Kind::Welcome,
                    ..
                }
            ),
            "{e}"
        );
        let mut bad_name = Message::Publish {
            seq: 1,
            name: "ok".into(),
            payload: vec![],
        }
        .encode();
        bad_name[12 + 10] = b' ';
        let e = protocol(play(vec![welcome(0), Msg(bad_name, vec![])]));
        assert!(
            matches!(
                e,
                ProtocolError::Text {
                    kind: Kind::Publish,
                    field: "name",
                    ..
                }
            ),
            "{e}"
        );
    });
}

#[test]
fn versions_refusals_and_stalls_are_typed_errors() {
    // Versions, refusals, an exporter that goes or stalls.
    leaves_nothing_behind(|| {
        match play(vec![welcome_v(2, 0)]) {
            Err(AttachError::VersionMismatch { ours, theirs }) => {
                assert_eq!((ours, theirs), (1..=1, 2..=2));
            }
            other => panic!("{other:?}"),
        }
        let refuse = |reason, lo, hi| {
            m(&Message::Refuse {
                reason,
                ours_min: lo,
                ours_max: hi,
                text: "no".into(),
            })
        };
        match play(vec![refuse(RefuseReason::Version, 2, 3)]) {
            Err(AttachError::VersionMismatch { ours, theirs }) => {
                assert_eq!((ours, theirs), (1..=1, 2..=3));
            }
            other => panic!("{other:?}"),
        }
        match play(vec![refuse(RefuseReason::RoleTaken, 1, 1)]) {
            Err(AttachError::Refused {
                reason: RefuseReason::RoleTaken,
                text,
            }) => assert_eq!(text, "no"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            play(vec![welcome(1), small_list(0, BASE, 4), m(&Message::Bye)]),
            Err(AttachError::ExporterGone { .. })
        ));
        let (ours, theirs) = pair();
        send_raw(&ours, &welcome(0).0, &[]);
        let r = Attachment::builder("worker")
            .handshake_timeout(Duration::from_millis(200))
            .from_fd(theirs);
        assert!(matches!(r, Err(AttachError::Timeout { .. })), "{r:?}");
        drop(ours);
    });
}

/// Receives one message (waiting up to 5 s); `None` when the exporter closed.
fn recv(sock: &OwnedFd) -> Option<Message> {
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd.
    unsafe { libc::poll(&mut p, 1, 5000) };
    let mut buf = vec![0u8; wire::MAX_MESSAGE];
    // SAFETY: `buf` is writable for its length.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n <= 0 {
        return None;
    }
    Some(Message::decode(&buf[..n.unsigned_abs()]).unwrap())
}

#[test]
fn a_real_exporter_refuses_bad_peers() {
    let _serial = serial();
    let p = exportable_provider();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let hello = |lo, hi, role: &str| Message::Hello {
        min_version: lo,
        max_version: hi,
        pid: std::process::id(),
        role: role.into(),
    };

    // A peer that speaks only newer versions.
    let s = exp.connect_pair().unwrap();
    send_raw(&s, &hello(2, 3, "w").encode_version(2), &[]);
    match recv(&s) {
        Some(Message::Refuse {
            reason: RefuseReason::Version,
            ours_min: 1,
            ours_max: 1,
            text,
        }) => {
            assert!(text.contains("2..=3"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(recv(&s), None, "closed after the refusal");

    // A bad role name.
    let s = exp.connect_pair().unwrap();
    let mut bad = hello(1, 1, "ab").encode();
    let at = bad.len() - 1;
    bad[at] = b' ';
    send_raw(&s, &bad, &[]);
    assert!(matches!(
        recv(&s),
        Some(Message::Refuse {
            reason: RefuseReason::BadRole,
            ..
        })
    ));

    // A peer sending an fd, or garbage, is cut off.
    let s = exp.connect_pair().unwrap();
    send_raw(
        &s,
        &hello(1, 1, "w").encode(),
        &[memfd(4096, false).unwrap().as_raw_fd()],
    );
    assert_eq!(recv(&s), None);
    let s = exp.connect_pair().unwrap();
    send_raw(&s, b"garbage!garbage!", &[]);
    assert_eq!(recv(&s), None);

    // An Ack for something never sent.
    let s = exp.connect_pair().unwrap();
    send_raw(&s, &hello(1, 1, "w").encode(), &[]);
    assert!(matches!(recv(&s), Some(Message::Welcome { .. })));
    while let Some(m) = recv(&s) {
        if matches!(m, Message::Ready { .. }) {
            break;
        }
    }
    send_raw(&s, &Message::Ack { seq: 999 }.encode(), &[]);
    assert_eq!(recv(&s), None, "cut off");
    assert!(exp
        .role("w")
        .unwrap()
        .wait_state(Duration::from_secs(5), |st| matches!(
            st,
            pktmem_hugemem::share::RoleState::Gone { .. }
        )));
}

/// Receives one message with its fds (waiting up to 5 s).
fn recv_fds(sock: &OwnedFd) -> Option<(Message, Vec<OwnedFd>)> {
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd.
    unsafe { libc::poll(&mut p, 1, 5000) };
    let mut buf = vec![0u8; wire::MAX_MESSAGE];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: `msg` points at live buffers of the lengths given.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n <= 0 {
        return None;
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control buffer the kernel filled, by its macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..k {
                    let raw = data.add(i * 4).cast::<[u8; 4]>().read_unaligned();
                    fds.push(OwnedFd::from_raw_fd(RawFd::from_ne_bytes(raw)));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some((Message::decode(&buf[..n.unsigned_abs()]).unwrap(), fds))
}

/// F2: a hostile peer cannot change the size of the memfd it was sent
/// (shrinking it would SIGBUS the exporter's next touch of the lost pages).
#[test]
fn a_peer_cannot_truncate_the_memory_it_was_sent() {
    let _serial = serial();
    let p = exportable_provider();
    let c = p
        .alloc_shared(&pktmem_hugemem::AllocRequest::new(64 << 10))
        .unwrap();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let s = exp.connect_pair().unwrap();
    let hello = Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: std::process::id(),
        role: "w".into(),
    };
    send_raw(&s, &hello.encode(), &[]);
    let mut memfds = Vec::new();
    while let Some((m, fds)) = recv_fds(&s) {
        if matches!(m, Message::List { .. }) {
            assert_eq!(fds.len(), 1, "{m:?}");
            memfds.extend(fds);
        }
        if matches!(m, Message::Ready { .. }) {
            break;
        }
    }
    assert!(!memfds.is_empty(), "no list received");
    for fd in &memfds {
        // SAFETY: stat is plain data; zero is valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat on our fd into a live stat.
        let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
        assert_eq!(r, 0);
        for len in [0, st.st_size / 2, st.st_size + (1 << 30)] {
            // SAFETY: plain syscall on our fd.
            let r = unsafe { libc::ftruncate(fd.as_raw_fd(), len) };
            let err = std::io::Error::last_os_error();
            assert_eq!(r, -1, "ftruncate({len}) of a received memfd succeeded");
            assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        }
        // SAFETY: plain syscall on our fd.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(
            seals & (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL),
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            "seals {seals:#x}"
        );
        // The seals themselves cannot be removed or widened.
        // SAFETY: plain syscall on our fd.
        let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_WRITE) };
        assert_eq!(r, -1, "F_SEAL_SEAL is set");
    }
    // The exporter is alive and its memory intact.
    let base = c.as_ptr().as_ptr();
    // SAFETY: inside our live shared chunk; raw volatile accesses only.
    unsafe {
        base.write_volatile(7);
        base.add(c.len() - 1).write_volatile(9);
        assert_eq!(base.read_volatile(), 7);
        assert_eq!(base.add(c.len() - 1).read_volatile(), 9);
    }
    drop(s);
}

#[test]
fn a_directory_flood_is_refused_on_both_sides() {
    let _serial = serial();
    // The exporter publishes at most MAX_ENTRIES names.
    let p = exportable_provider();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let pubs: Vec<_> = (0..wire::MAX_ENTRIES)
        .map(|i| exp.publish(&format!("n/{i}"), b"").unwrap())
        .collect();
    assert_eq!(
        exp.publish("n/more", b"").unwrap_err(),
        pktmem_hugemem::share::PublishError::Full {
            max: wire::MAX_ENTRIES
        }
    );
    drop(pubs);
    // A fake exporter sending more is refused by the peer. (Written from a
    // thread: a socket holds only a few messages.)
    let (ours, theirs) = pair();
    let writer = std::thread::spawn(move || {
        let mut script = vec![welcome(0).0];
        for i in 0..=wire::MAX_ENTRIES as u64 {
            script.push(
                Message::Publish {
                    seq: i + 1,
                    name: format!("n/{i}"),
                    payload: vec![],
                }
                .encode(),
            );
        }
        let drain = |fd: &OwnedFd| {
            // Drain the peer's acks (a real exporter reads them).
            let mut buf = [0u8; 64];
            // SAFETY: reads into `buf`, without waiting.
            while unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    64,
                    libc::MSG_DONTWAIT,
                )
            } > 0
            {}
        };
        'script: for bytes in script {
            loop {
                // SAFETY: writes `bytes` on our socket, without waiting.
                let n = unsafe {
                    libc::send(
                        ours.as_raw_fd(),
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                };
                drain(&ours);
                if n >= 0 {
                    break;
                }
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
                    break 'script; // the peer gave up
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        ours
    });
    let r = Attachment::builder("worker")
        .handshake_timeout(Duration::from_secs(20))
        .from_fd(theirs);
    let e = protocol(r);
    assert!(
        matches!(
            e,
            ProtocolError::Unexpected {
                kind: Kind::Publish,
                ..
            }
        ),
        "{e}"
    );
    drop(writer.join().unwrap());
}

/// F11: an attach that fails after the Hello says `Bye` (once it unmapped
/// and closed everything), so the role is not left held by this process.
#[test]
fn a_failed_attach_says_bye() {
    // Against a fake exporter: after FdTooSmall the next message it reads
    // (after the Hello) is Bye.
    leaves_nothing_behind(|| {
        let (ours, theirs) = pair();
        for Msg(bytes, fds) in [
            welcome(1),
            with_fd(
                &list(3, 4096, BASE, 1 << 21),
                memfd(1 << 20, false).unwrap(),
            ),
        ] {
            let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
            send_raw(&ours, &bytes, &raw);
        }
        let r = Attachment::builder("worker")
            .handshake_timeout(Duration::from_millis(300))
            .from_fd(theirs);
        assert!(matches!(r, Err(AttachError::FdTooSmall { .. })), "{r:?}");
        assert!(matches!(recv(&ours), Some(Message::Hello { .. })));
        assert_eq!(recv(&ours), Some(Message::Bye), "no Bye after the failure");
        assert_eq!(recv(&ours), None, "then closed");
    });
    // Against a real exporter: granted, then the peer gives up (a
    // handshake timeout shorter than anything): the role is free at once
    // for another holder.
    let _serial = serial();
    let p = exportable_provider();
    let _c = p
        .alloc_shared(&pktmem_hugemem::AllocRequest::new(4096))
        .unwrap();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let role = exp.role("w").unwrap();
    let r = Attachment::builder("w")
        .handshake_timeout(Duration::from_nanos(1))
        .from_fd(exp.connect_pair().unwrap());
    assert!(matches!(r, Err(AttachError::Timeout { .. })), "{r:?}");
    let t = std::time::Instant::now();
    while role.generation() == 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        role.wait_state(Duration::from_secs(5), |s| s
            == pktmem_hugemem::share::RoleState::Vacant),
        "{:?}",
        role.state()
    );
    assert_eq!(role.generation(), 1, "it had been granted");
    // Another process (a raw Hello naming another pid) is granted.
    let s = exp.connect_pair().unwrap();
    let hello = Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: 12345,
        role: "w".into(),
    };
    send_raw(&s, &hello.encode(), &[]);
    assert!(
        matches!(recv(&s), Some(Message::Welcome { generation: 2, .. })),
        "the role is still blocked"
    );
}

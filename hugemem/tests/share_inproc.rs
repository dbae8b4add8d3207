//! The exporter and a peer in one process (a thread attached over
//! `connect_pair`), as the shared-pool tests use them: detach and attach
//! again (generation + 1), the directory (publish, update, withdraw,
//! `wait_for`), growth seen at once, the peer limit, and the exporter
//! going away under an attachment.

use std::time::Duration;

use pktmem_hugemem::share::{
    AttachError, Attachment, Exporter, Placement, PublishError, RefuseReason, RoleState,
};
use pktmem_hugemem::{AllocRequest, Provider};

mod share_common;
use share_common::exportable_provider;

fn attach(exp: &Exporter, role: &str) -> Result<Attachment, AttachError> {
    let fd = exp.connect_pair().unwrap();
    let role = role.to_string();
    std::thread::spawn(move || {
        Attachment::builder(&role)
            .placement(Placement::Relocate)
            .from_fd(fd)
    })
    .join()
    .unwrap()
}

#[test]
fn detach_and_attach_again_bumps_the_generation() {
    let p = exportable_provider();
    let _c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let role = exp.role("w").unwrap();
    let me = std::process::id();
    for g in 1..=3 {
        let a = attach(&exp, "w").unwrap();
        assert_eq!(
            (a.generation(), a.role_slot(), a.exporter_pid()),
            (g, 1, me)
        );
        assert_eq!(role.state(), RoleState::Attached { pid: me });
        // While attached, the role is taken.
        match attach(&exp, "w") {
            Err(AttachError::Refused {
                reason: RefuseReason::RoleTaken,
                text,
            }) => assert!(text.contains(&me.to_string()), "{text}"),
            other => panic!("{other:?}"),
        }
        drop(a);
        // Bye: the peer unmapped everything, the role is free.
        assert!(role.wait_state(Duration::from_secs(5), |s| s == RoleState::Vacant));
    }
    assert_eq!(role.generation(), 3);
    let roles = exp.roles();
    assert_eq!(roles.len(), 1);
    assert_eq!((roles[0].name.as_str(), roles[0].generation), ("w", 3));
    // A second role gets the next slot.
    let b = attach(&exp, "other").unwrap();
    assert_eq!(b.role_slot(), 2);
}

#[test]
fn the_directory_follows_publish_update_and_withdraw() {
    let p = exportable_provider();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let before = exp.publish("a/before", b"1").unwrap();
    let a = attach(&exp, "w").unwrap();
    assert_eq!(
        a.lookup("a/before").as_deref(),
        Some(&b"1"[..]),
        "in the snapshot"
    );
    let after = exp.publish("a/after", b"2").unwrap();
    let got = a.wait_for("a/after", Duration::from_secs(5), |_| true);
    assert_eq!(got.as_deref(), Some(&b"2"[..]));
    after.update(b"3").unwrap();
    let got = a.wait_for("a/after", Duration::from_secs(5), |v| v == b"3");
    assert_eq!(got.as_deref(), Some(&b"3"[..]));
    assert!(matches!(
        after.update(&vec![0; pktmem_hugemem::share::wire::MAX_PAYLOAD + 1]),
        Err(PublishError::TooLarge { .. })
    ));
    drop(before);
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while a.lookup("a/before").is_some() {
        assert!(std::time::Instant::now() < end, "withdrawn");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        a.wait_for("never", Duration::from_millis(20), |_| true),
        None
    );
    // The name is free again.
    let _again = exp.publish("a/before", b"4").unwrap();
}

#[test]
fn growth_is_mapped_before_alloc_returns() {
    let p = exportable_provider();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let a = attach(&exp, "w").unwrap();
    assert!(a.placement().is_empty(), "nothing mapped yet");
    for len in [4096, 2 << 20, 6 << 20] {
        let c = p.alloc_shared(&AllocRequest::new(len)).unwrap();
        let va = c.as_ptr().as_ptr() as u64;
        let local = a.to_local(va, len).expect("mapped at once");
        assert_eq!(a.to_exporter(local.as_ptr()), Some(va));
        assert_eq!(a.iova(va), p.virt2iova(va as *const u8));
        // SAFETY: mapped in both views of the same pages; raw accesses.
        unsafe {
            local.as_ptr().add(len - 1).write_volatile(0x5a);
            assert_eq!(c.as_ptr().as_ptr().add(len - 1).read_volatile(), 0x5a);
        }
        drop(c);
        // The free is held until the peer's thread acked the Unmap.
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while a.to_local(va, 1).is_some() {
            assert!(std::time::Instant::now() < end, "unmapped in the peer");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn the_peer_limit_refuses_more() {
    let p = exportable_provider();
    let exp = Exporter::builder(&p).max_peers(1).unbound().unwrap();
    let _a = attach(&exp, "one").unwrap();
    match attach(&exp, "two") {
        Err(AttachError::Refused {
            reason: RefuseReason::TooManyPeers,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_attachment_outlives_its_exporter() {
    let p = exportable_provider();
    let c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let a = attach(&exp, "w").unwrap();
    assert!(a.is_connected());
    drop(exp); // Bye
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while a.is_connected() {
        assert!(std::time::Instant::now() < end, "told");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(a.last_error(), None, "a clean Bye");
    // Still mapped until dropped.
    assert!(a.to_local(c.as_ptr().as_ptr() as u64, 4096).is_some());
    drop(a);
    // A provider that was never exportable is refused.
    let heap = Provider::builder().heap_backed(1 << 20).build().unwrap();
    assert!(Exporter::builder(&heap).unbound().is_err());
}

#[test]
fn a_provider_that_is_not_exportable_is_refused() {
    use pktmem_hugemem::share::ExportError;
    // Its chunks have safe slices: memory a peer writes must not.
    let private = Provider::builder().quiet(true).build().unwrap();
    let _c = private.alloc(4096).unwrap();
    let e = Exporter::builder(&private).unbound().unwrap_err();
    assert!(matches!(e, ExportError::NotExportable), "{e:?}");
    assert!(
        e.to_string().contains("ProviderBuilder::exportable()"),
        "{e}"
    );
    let path = std::env::temp_dir().join(format!("pktmem-notexp-{}.sock", std::process::id()));
    assert!(matches!(
        Exporter::builder(&private).bind(&path),
        Err(ExportError::NotExportable)
    ));
    assert!(!path.exists(), "nothing bound");
    // The same memory source, built exportable, is accepted.
    let shared = exportable_provider();
    assert!(Exporter::builder(&shared).unbound().is_ok());
}

#[test]
fn sockets_by_path_and_abstract_name() {
    use pktmem_hugemem::share::{Backoff, ExportError};
    let p = exportable_provider();
    let _c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    // A stale socket file (nobody listens) is replaced; a live one is not.
    let path =
        std::env::temp_dir().join(format!("pktmem-share-inproc-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "stale file left behind");
    let exp = Exporter::builder(&p).bind(&path).unwrap();
    match Exporter::builder(&p).bind(&path) {
        Err(ExportError::BadAddress { why, .. }) => assert!(why.contains("live"), "{why}"),
        other => panic!("{other:?}"),
    }
    let path2 = path.clone();
    let a = std::thread::spawn(move || Attachment::builder("w").connect(&path2))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(a.generation(), 1);
    drop(a);
    drop(exp);
    assert!(!path.exists(), "removed with the exporter");

    let name = format!("pktmem-share-inproc-{}", std::process::id());
    let exp = Exporter::builder(&p).bind_abstract(&name).unwrap();
    assert_eq!(exp.socket_path(), None);
    let n2 = name.clone();
    let a = std::thread::spawn(move || Attachment::builder("w").connect_abstract(&n2))
        .join()
        .unwrap()
        .unwrap();
    assert!(a.is_connected());
    drop((a, exp));

    // Nobody there: one attempt, or retries until the deadline.
    match Attachment::builder("w").connect_abstract(&name) {
        Err(AttachError::Connect { attempts: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    let t = std::time::Instant::now();
    let r = Attachment::builder("w")
        .retry(Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(20),
            deadline: Some(Duration::from_millis(150)),
        })
        .connect_abstract(&name);
    match r {
        Err(AttachError::Connect { attempts, .. }) => assert!(attempts >= 4, "{attempts}"),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_watcher_that_allocates_does_not_deadlock_the_io_thread() {
    use std::sync::{Arc, Mutex};
    let p = exportable_provider();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let kept: Arc<Mutex<Vec<pktmem_hugemem::SharedChunk>>> = Arc::default();
    let (k2, weak) = (kept.clone(), p.downgrade());
    // Runs on the I/O thread: growth from there is announced without waiting.
    let _w = exp.role("w").unwrap().on_change(move |_| {
        if let Some(p) = weak.upgrade() {
            k2.lock()
                .unwrap()
                .push(p.alloc_shared(&AllocRequest::new(2 << 20)).unwrap());
        }
    });
    let a = attach(&exp, "w").unwrap();
    let va = kept.lock().unwrap()[0].as_ptr().as_ptr() as u64;
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while a.to_local(va, 2 << 20).is_none() {
        assert!(std::time::Instant::now() < end, "announced later");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(a);
    kept.lock().unwrap().clear();
}

#[test]
fn a_peer_that_stops_reading_does_not_stall_the_others() {
    use pktmem_hugemem::share::wire::{Message, MAX_PAYLOAD};
    use std::os::fd::AsRawFd;
    let p = exportable_provider();
    let exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_secs(3))
        .unbound()
        .unwrap();
    // A raw peer: says Hello, then never reads (nor acks) anything.
    let mute = exp.connect_pair().unwrap();
    let hello = Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: std::process::id(),
        role: "mute".into(),
    }
    .encode();
    // SAFETY: writes `hello` on our socket.
    let n = unsafe { libc::send(mute.as_raw_fd(), hello.as_ptr().cast(), hello.len(), 0) };
    assert_eq!(n, hello.len() as isize);
    let mute_role = exp.role("mute").unwrap();
    assert!(mute_role.wait_attached(Duration::from_secs(5)).is_some());
    let a = attach(&exp, "w").unwrap();
    // Far more than the mute peer's socket holds (6 MiB: queued for it,
    // under the 8 MiB a peer may have waiting).
    let t = std::time::Instant::now();
    let big = vec![7u8; MAX_PAYLOAD];
    let mut pubs = Vec::new();
    for i in 0..100 {
        pubs.push(exp.publish(&format!("big/{i}"), &big).unwrap());
    }
    let got = a.wait_for("big/99", Duration::from_secs(20), |v| {
        v.len() == MAX_PAYLOAD
    });
    assert!(
        got.is_some(),
        "the reading peer got everything: {:?}",
        a.last_error()
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "not held up by the mute peer ({:?}; it is cut off only after 3 s)",
        t.elapsed()
    );
    assert_eq!(
        mute_role.state(),
        RoleState::Attached {
            pid: std::process::id()
        }
    );
    // The mute one is cut off once its acks are overdue.
    assert!(mute_role.wait_state(Duration::from_secs(10), |s| matches!(
        s,
        RoleState::Gone { .. }
    )));
    assert!(a.is_connected());
    drop(a);
    // More than a peer may have waiting (a burst the I/O thread may queue
    // at once) cuts it off at once.
    let flooded = exp.connect_pair().unwrap();
    let hello2 = Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: std::process::id(),
        role: "mute2".into(),
    }
    .encode();
    // SAFETY: writes `hello2` on our socket.
    let n = unsafe { libc::send(flooded.as_raw_fd(), hello2.as_ptr().cast(), hello2.len(), 0) };
    assert_eq!(n, hello2.len() as isize);
    let flooded_role = exp.role("mute2").unwrap();
    assert!(flooded_role.wait_attached(Duration::from_secs(5)).is_some());
    let t = std::time::Instant::now();
    for i in 0..140 {
        pubs.push(exp.publish(&format!("more/{i}"), &big).unwrap());
    }
    assert!(
        flooded_role.wait_state(Duration::from_secs(2), |s| matches!(
            s,
            RoleState::Gone { .. }
        ))
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "before its ack timeout"
    );
}

#[test]
fn roles_are_bounded() {
    use pktmem_hugemem::share::{RoleError, MAX_ROLES};
    let p = exportable_provider();
    let exp = Exporter::builder(&p).unbound().unwrap();
    for i in 0..MAX_ROLES {
        assert_eq!(
            usize::from(exp.role(&format!("r{i}")).unwrap().slot()),
            i + 1
        );
    }
    assert_eq!(
        exp.role("r7").unwrap().slot(),
        8,
        "an existing role is found"
    );
    assert_eq!(
        exp.role("one-more").unwrap_err(),
        RoleError::TooMany { max: MAX_ROLES }
    );
    // A peer naming a new role now is refused.
    match attach(&exp, "late") {
        Err(AttachError::Refused {
            reason: RefuseReason::BadRole,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// F8 / F4a: a snapshot far larger than the 8 MiB a peer may have queued
/// (160 publications of the largest payload, 10 MiB) attaches an
/// in-process peer (it used to cut the peer off mid-snapshot and panic the
/// I/O thread), and growth afterwards is not stalled.
#[test]
fn a_snapshot_larger_than_the_queue_cap_attaches() {
    use pktmem_hugemem::share::wire::MAX_PAYLOAD;
    let p = exportable_provider();
    let _c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_secs(2))
        .unbound()
        .unwrap();
    let mut pubs = Vec::new();
    for i in 0..160u8 {
        pubs.push(
            exp.publish(&format!("big/{i}"), &vec![i; MAX_PAYLOAD])
                .unwrap(),
        );
    }
    let role = exp.role("w").unwrap();
    let a = attach(&exp, "w").expect("attached with the whole directory");
    for i in [0u8, 77, 159] {
        let v = a.lookup(&format!("big/{i}")).expect("in the snapshot");
        assert_eq!(v.len(), MAX_PAYLOAD);
        assert!(v.iter().all(|&b| b == i));
    }
    assert_eq!(
        role.state(),
        RoleState::Attached {
            pid: std::process::id()
        }
    );
    assert!(exp.is_running());
    // Growth is acked at once, not waited out.
    let t = std::time::Instant::now();
    let more = p.alloc_shared(&AllocRequest::new(2 << 20)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(a
        .to_local(more.as_ptr().as_ptr() as u64, more.len())
        .is_some());
    assert_eq!(
        role.state(),
        RoleState::Attached {
            pid: std::process::id()
        }
    );
}

/// F4b: ack timers run from when a message was sent, not queued: a peer
/// that reads (and acks) steadily behind a deep queue is not cut off, even
/// though reading all of it takes several ack timeouts.
#[test]
fn a_peer_reading_steadily_behind_a_deep_queue_is_not_cut_off() {
    use pktmem_hugemem::share::wire::{Message, MAX_MESSAGE, MAX_PAYLOAD};
    use std::os::fd::AsRawFd;
    let p = exportable_provider();
    let exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_millis(300))
        .unbound()
        .unwrap();
    let s = exp.connect_pair().unwrap();
    let send = |m: &Message| {
        let b = m.encode();
        // SAFETY: writes `b` on our socket.
        let n = unsafe { libc::send(s.as_raw_fd(), b.as_ptr().cast(), b.len(), 0) };
        assert_eq!(n, b.len() as isize);
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    let recv = |buf: &mut Vec<u8>| -> Option<Message> {
        let mut pfd = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut pfd, 1, 2000) };
        // SAFETY: `buf` is writable for its length.
        let n = unsafe {
            libc::recv(
                s.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        (n > 0).then(|| Message::decode(&buf[..n.unsigned_abs()]).unwrap())
    };
    send(&Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: std::process::id(),
        role: "slow".into(),
    });
    let role = exp.role("slow").unwrap();
    let ack = |m: &Message| {
        if let Some(seq) = m.seq() {
            send(&Message::Ack { seq });
        }
    };
    loop {
        let m = recv(&mut buf).expect("snapshot");
        ack(&m);
        if matches!(m, Message::Ready { .. }) {
            break;
        }
    }
    // 100 x 64 KiB queued at once, far more than the socket holds.
    let big = vec![1u8; MAX_PAYLOAD];
    let pubs: Vec<_> = (0..100)
        .map(|i| exp.publish(&format!("q/{i}"), &big).unwrap())
        .collect();
    let t = std::time::Instant::now();
    let mut got = 0;
    while got < 100 {
        let m = recv(&mut buf).expect("cut off while reading steadily");
        std::thread::sleep(Duration::from_millis(15));
        ack(&m);
        if matches!(m, Message::Publish { .. }) {
            got += 1;
        }
    }
    assert!(
        t.elapsed() > Duration::from_millis(600),
        "read in {:?}",
        t.elapsed()
    );
    assert_eq!(
        role.state(),
        RoleState::Attached {
            pid: std::process::id()
        }
    );
    drop(pubs);
}

/// F6: the peer's mappings are not inherited by a fork (`MADV_DONTFORK`,
/// `dc` in smaps), so a peer's exit means nothing maps its pages any more.
#[test]
fn the_peers_mappings_are_not_inherited_by_fork() {
    let p = exportable_provider();
    let c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let exp = Exporter::builder(&p).unbound().unwrap();
    let a = attach(&exp, "w").unwrap();
    let local = a
        .to_local(c.as_ptr().as_ptr() as u64, 4096)
        .expect("mapped")
        .as_ptr() as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut flags = None;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&local);
                    continue;
                }
            }
        }
        if inside {
            if let Some(f) = line.strip_prefix("VmFlags:") {
                flags = Some(f.to_string());
            }
        }
    }
    let flags = flags.expect("the peer's mapping in smaps");
    assert!(
        flags.split_whitespace().any(|f| f == "dc"),
        "VmFlags:{flags}"
    );
    drop(a);
}

/// F3: a peer over a socket pair names its own pid, unverified; when its
/// connection goes without Bye the role stays Gone (its holds kept) even
/// after a process of that pid exits: never Exited on a guess.
#[test]
fn an_unverified_pid_is_never_declared_exited() {
    use pktmem_hugemem::share::wire::Message;
    use std::os::fd::AsRawFd;
    let p = exportable_provider();
    let _c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let exp = Exporter::builder(&p).unbound().unwrap();
    // A real process whose pid the peer claims, gone soon.
    let mut child = std::process::Command::new("sleep")
        .arg("0.2")
        .spawn()
        .unwrap();
    let claimed = child.id();
    let s = exp.connect_pair().unwrap();
    let hello = Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: claimed,
        role: "liar".into(),
    }
    .encode();
    // SAFETY: writes `hello` on our socket.
    let n = unsafe { libc::send(s.as_raw_fd(), hello.as_ptr().cast(), hello.len(), 0) };
    assert_eq!(n, hello.len() as isize);
    let role = exp.role("liar").unwrap();
    assert!(role.wait_attached(Duration::from_secs(5)).is_some());
    assert_eq!(role.state(), RoleState::Attached { pid: claimed });
    drop(s); // no Bye
    assert!(role.wait_state(Duration::from_secs(5), |st| st
        == RoleState::Gone { pid: claimed }));
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        role.state(),
        RoleState::Gone { pid: claimed },
        "declared exited on the pid the peer claimed"
    );
}

/// F7: only this uid and root may attach unless the builder allows more.
/// Needs root: a thread takes another effective uid (for itself only,
/// the raw `setresuid` system call) while it connects.
#[test]
fn another_user_is_refused_unless_allowed() {
    use pktmem_hugemem::share::ExportBuilder;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIP: another_user_is_refused_unless_allowed needs root (to connect as another uid)"
        );
        return;
    }
    let nobody: u32 = 65534;
    let p = exportable_provider();
    let _c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let attach_as = |name: String, uid: u32| {
        std::thread::spawn(move || {
            let set = |euid: u32| {
                // SAFETY: changes this thread's effective uid only (the raw
                // system call, not libc's process-wide wrapper); the saved
                // uid stays 0, so it can go back.
                let r = unsafe { libc::syscall(libc::SYS_setresuid, -1i32, euid, -1i32) };
                assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
            };
            set(uid);
            let r = Attachment::builder("w").connect_abstract(&name);
            // Its thread (if any) was made with this uid; drop it as such.
            let r = r.map(drop);
            set(0);
            r
        })
        .join()
        .unwrap()
    };
    let run = |b: ExportBuilder, tag: &str| {
        let name = format!("pktmem-uid-{tag}-{}", std::process::id());
        let exp = b.bind_abstract(&name).unwrap();
        let r = attach_as(name, nobody);
        let roles = exp.roles();
        (r, roles)
    };
    let (r, roles) = run(Exporter::builder(&p), "default");
    match r {
        Err(AttachError::Refused {
            reason: RefuseReason::NotAllowed,
            text,
        }) => assert!(text.contains("allow_uid"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(
        roles.is_empty(),
        "a refused stranger declared a role: {roles:?}"
    );
    let (r, _) = run(Exporter::builder(&p).allow_uid(nobody), "allowed");
    assert!(r.is_ok(), "{r:?}");
    let (r, _) = run(Exporter::builder(&p).allow_any_user(), "any");
    assert!(r.is_ok(), "{r:?}");
    // Our own uid (root here) still attaches by default.
    let (r, _) = {
        let name = format!("pktmem-uid-self-{}", std::process::id());
        let exp = Exporter::builder(&p).bind_abstract(&name).unwrap();
        let r = Attachment::builder("w").connect_abstract(&name).map(drop);
        (r, exp.roles())
    };
    assert!(r.is_ok(), "{r:?}");
}

/// F5: pages a peer was told to unmap but has not acked stay held when the
/// exporter drops (they used to be unmapped and punched under the peer).
#[test]
fn pages_a_peer_may_still_map_outlive_the_exporter() {
    use pktmem_hugemem::share::wire::Message;
    use std::os::fd::AsRawFd;
    let p = exportable_provider();
    let exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_secs(30))
        .unbound()
        .unwrap();
    let keep = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let chunk = p.alloc_shared(&AllocRequest::new(16 << 20)).unwrap();
    // A raw peer that reads nothing and acks nothing.
    let mute = exp.connect_pair().unwrap();
    let hello = Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: std::process::id(),
        role: "mute".into(),
    }
    .encode();
    // SAFETY: writes `hello` on our socket.
    let n = unsafe { libc::send(mute.as_raw_fd(), hello.as_ptr().cast(), hello.len(), 0) };
    assert_eq!(n, hello.len() as isize);
    assert!(exp
        .role("mute")
        .unwrap()
        .wait_attached(Duration::from_secs(5))
        .is_some());
    let mapped = p.mapped_bytes();
    drop(chunk); // Unmap sent, never acked: held
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p.mapped_bytes(), mapped, "held while the Unmap is unacked");
    drop(exp);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        p.mapped_bytes(),
        mapped,
        "released under a peer that may map it"
    );
    drop((mute, keep));
}

//! A peer process's life: growth while attached (mapped before the
//! allocation returns), shrink while attached (pages held in the exporter
//! until the peer acks, then unmapped and punched), a peer killed with
//! SIGKILL (role Gone, then Exited, held pages released, re-attached with
//! generation + 1), and a role that is taken.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pktmem_hugemem::share::{Exporter, RoleState};
use pktmem_hugemem::{process_hugetlb_bytes, AllocRequest, PageSize, Provider};

mod share_common;
use share_common::{exportable_provider, skip, sock_path, Peer, ENV_RETRY, ENV_SOCK};

const PEER: &str = "share_peer";
const MB2: usize = 2 << 20;

#[test]
#[ignore = "the peer process of this file's tests"]
fn share_peer() {
    share_common::peer_main();
}

/// The tests of this file run one at a time: one compares the process's
/// `HugetlbPages`, which the others move.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A provider of 2 MiB hugepages only, or `None` (after a SKIP line).
fn huge_provider(what: &str) -> Option<Provider> {
    let free = pktmem_hugemem::inventory()
        .iter()
        .find(|h| h.page_size == MB2)
        .map_or(0, |h| h.free);
    if free < 16 {
        skip(format_args!(
            "{what}: {free} free 2 MiB hugepages, 16 needed"
        ));
        return None;
    }
    Some(
        Provider::builder()
            .exportable()
            .page_sizes(&[PageSize::Huge2M])
            .allow_small_page_fallback(false)
            .quiet(true)
            .build()
            .unwrap(),
    )
}

/// Bytes of backing the provider's fd-backed list at `va` has (its memfd's
/// allocated blocks: what a punched hole gives back).
fn backing_bytes(p: &Provider) -> u64 {
    let r = p.regions();
    let fd = r.first().expect("a mapped region").fd;
    // SAFETY: libc::stat is plain data; fstat writes one.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the provider keeps the fd open.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    st.st_blocks.unsigned_abs() * 512
}

fn wait_until(what: &str, t: Duration, f: impl Fn() -> bool) {
    let end = Instant::now() + t;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn has(peer: &mut Peer, va: usize, len: usize) -> bool {
    match peer.cmd(&format!("has {va:x} {len:x}")).as_slice() {
        [a] if a == "yes" => true,
        [a] if a == "no" => false,
        other => panic!("{other:?}"),
    }
}

#[test]
fn growth_and_shrink_while_attached() {
    let _serial = serial();
    let Some(p) = huge_provider("growth and shrink") else {
        return;
    };
    let first = p.alloc_shared(&AllocRequest::new(MB2)).unwrap();
    let path = sock_path("grow");
    let _exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_secs(20))
        .bind(&path)
        .unwrap();
    let mut peer = Peer::spawn(PEER, &[(ENV_SOCK, path.display().to_string())]);
    assert!(peer.hello.starts_with("attached"), "{}", peer.hello);
    assert!(has(&mut peer, first.as_ptr().as_ptr() as usize, MB2));

    // Growth: mapped in the peer before `alloc` returns.
    let grown = p.alloc_shared(&AllocRequest::new(3 * MB2)).unwrap();
    let gva = grown.as_ptr().as_ptr() as usize;
    assert!(has(&mut peer, gva, 3 * MB2), "the new pages, at once");
    let iovas: Vec<String> = peer
        .cmd("pages")
        .into_iter()
        .filter(|l| {
            let va = usize::from_str_radix(l.split_whitespace().nth(2).unwrap(), 16).unwrap();
            (gva..gva + 3 * MB2).contains(&va)
        })
        .collect();
    assert_eq!(iovas.len(), 3, "{iovas:?}");
    for (i, l) in iovas.iter().enumerate() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let want = p
            .virt2iova((gva + i * MB2) as *const u8)
            .map_or("-".into(), |x| format!("{:x}", x.0));
        assert_eq!(w[5], want, "IOVA of new page {i}");
        assert_eq!(w[8], "true", "translation of new page {i}");
    }

    // Shrink: held in the exporter while the peer cannot ack.
    let hugetlb_before = process_hugetlb_bytes().unwrap();
    let backing_before = backing_bytes(&p);
    peer.stop();
    let t0 = Instant::now();
    drop(grown);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "freeing does not wait for peers"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        p.page_of(gva).is_some(),
        "held: still mapped in the exporter"
    );
    assert_eq!(
        process_hugetlb_bytes().unwrap(),
        hugetlb_before,
        "still mapped here"
    );
    assert_eq!(backing_bytes(&p), backing_before, "no hole punched yet");
    peer.signal(libc::SIGCONT);
    wait_until(
        "the peer's ack releases the pages",
        Duration::from_secs(10),
        || p.page_of(gva).is_none(),
    );
    wait_until("every held page released", Duration::from_secs(10), || {
        backing_bytes(&p) == backing_before - 3 * MB2 as u64
    });
    assert_eq!(process_hugetlb_bytes().unwrap(), hugetlb_before - 3 * MB2);
    assert!(!has(&mut peer, gva, 1), "unmapped in the peer");
    assert!(
        has(&mut peer, first.as_ptr().as_ptr() as usize, MB2),
        "the rest stays"
    );
    assert!(peer.quit().success());
}

#[test]
fn sigkill_peer_goes_gone_then_exited_and_reattaches() {
    let _serial = serial();
    let Some(p) = huge_provider("peer death") else {
        return;
    };
    let _base = p.alloc_shared(&AllocRequest::new(MB2)).unwrap();
    let path = sock_path("kill");
    let exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_millis(500))
        .bind(&path)
        .unwrap();
    let role = exp.role("worker").unwrap();
    let log: Arc<Mutex<Vec<RoleState>>> = Arc::default();
    let l2 = log.clone();
    let _watch = role.on_change(move |i| l2.lock().unwrap().push(i.state));

    let mut peer = Peer::spawn(PEER, &[(ENV_SOCK, path.display().to_string())]);
    let pid = peer.pid();
    assert!(peer.hello.starts_with("attached 1 1"), "{}", peer.hello);
    assert_eq!(role.state(), RoleState::Attached { pid });
    let chunk = p.alloc_shared(&AllocRequest::new(MB2)).unwrap();
    let cva = chunk.as_ptr().as_ptr() as usize;
    assert!(has(&mut peer, cva, MB2));

    // Stopped, it cannot ack the Unmap: cut off after the ack timeout,
    // but alive, so the pages stay held.
    peer.stop();
    drop(chunk);
    assert!(role.wait_state(Duration::from_secs(5), |s| s == RoleState::Gone { pid }));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        p.page_of(cva).is_some(),
        "held while the cut-off peer lives"
    );
    assert_eq!(role.generation(), 1);

    peer.kill(); // SIGKILL, reaped
    assert!(
        role.wait_exited(Duration::from_secs(5)),
        "{:?}",
        role.state()
    );
    assert_eq!(role.state(), RoleState::Exited { pid });
    wait_until(
        "release after the peer's exit",
        Duration::from_secs(5),
        || p.page_of(cva).is_none(),
    );
    // Watchers run after the state is set (and waiters woken).
    wait_until("the watcher saw Exited", Duration::from_secs(5), || {
        log.lock().unwrap().len() >= 3
    });
    assert_eq!(
        *log.lock().unwrap(),
        [
            RoleState::Attached { pid },
            RoleState::Gone { pid },
            RoleState::Exited { pid }
        ]
    );

    // A new process gets the role again, generation 2.
    let mut again = Peer::spawn(PEER, &[(ENV_SOCK, path.display().to_string())]);
    assert!(again.hello.starts_with("attached 1 2"), "{}", again.hello);
    assert_eq!(role.generation(), 2);
    assert_eq!(role.state(), RoleState::Attached { pid: again.pid() });
    assert!(
        !has(&mut again, cva, 1),
        "the released pages are not in the new snapshot"
    );
    assert!(again.cmd("pages").iter().all(|l| l.ends_with(" true")));
    assert!(again.quit().success());
}

#[test]
fn a_taken_role_is_refused_then_granted_once_its_holder_exits() {
    let _serial = serial();
    let p = exportable_provider();
    let _c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let path = sock_path("taken");
    let exp = Exporter::builder(&p).bind(&path).unwrap();
    let env = [(ENV_SOCK, path.display().to_string())];
    let mut first = Peer::spawn(PEER, &env);
    assert!(first.hello.starts_with("attached 1 1"), "{}", first.hello);
    let second = Peer::spawn(PEER, &env);
    assert!(
        second
            .hello
            .starts_with("error the exporter refused (role taken)"),
        "{}",
        second.hello
    );
    drop(second);
    // A third retries until the first has gone and exited.
    let mut third = Peer::start(PEER, &[env[0].clone(), (ENV_RETRY, "1".into())]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(first.cmd("state")[0].split_whitespace().nth(1), Some("1"));
    let first_pid = first.pid();
    assert!(first.quit().success());
    let role = exp.role("worker").unwrap();
    assert!(
        role.wait_exited(Duration::from_secs(5)) || role.generation() == 2,
        "{:?}",
        role.state()
    );
    assert!(
        third.wait_hello().starts_with("attached 1 2"),
        "{}",
        third.hello
    );
    assert_ne!(third.pid(), first_pid);
    assert!(third.quit().success());
}

#[test]
fn a_peer_started_first_retries_until_the_exporter_binds() {
    let _serial = serial();
    let path = sock_path("later");
    let _ = std::fs::remove_file(&path);
    let mut peer = Peer::start(
        PEER,
        &[
            (ENV_SOCK, path.display().to_string()),
            (ENV_RETRY, "1".into()),
        ],
    );
    std::thread::sleep(Duration::from_millis(300)); // several failed connects
    let p = exportable_provider();
    let c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let _exp = Exporter::builder(&p).bind(&path).unwrap();
    assert!(
        peer.wait_hello().starts_with("attached 1 1"),
        "{}",
        peer.hello
    );
    assert!(has(&mut peer, c.as_ptr().as_ptr() as usize, 4096));
    assert!(peer.quit().success());
}

#[test]
fn growth_cuts_off_a_peer_that_does_not_ack() {
    let _serial = serial();
    let Some(p) = huge_provider("growth ack timeout") else {
        return;
    };
    let _base = p.alloc_shared(&AllocRequest::new(MB2)).unwrap();
    let path = sock_path("noack");
    let exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_millis(300))
        .bind(&path)
        .unwrap();
    let role = exp.role("worker").unwrap();
    let peer = Peer::spawn(PEER, &[(ENV_SOCK, path.display().to_string())]);
    let pid = peer.pid();
    assert_eq!(role.state(), RoleState::Attached { pid });
    peer.stop();
    let t = Instant::now();
    let grown = p.alloc_shared(&AllocRequest::new(MB2)).unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "growth waited {waited:?} for the stopped peer, then went on"
    );
    assert_eq!(
        role.state(),
        RoleState::Gone { pid },
        "cut off, still alive"
    );
    // Nobody to wait for now: growth is immediate again.
    let t = Instant::now();
    let more = p.alloc_shared(&AllocRequest::new(MB2)).unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    peer.kill();
    assert!(role.wait_exited(Duration::from_secs(5)));
    drop((grown, more));
}

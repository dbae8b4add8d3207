//! What the I/O thread's death leaves (it cannot be made to panic from
//! outside: a test-only command does it).

use std::time::{Duration, Instant};

use super::Cmd;
use crate::share::{Attachment, Exporter, RoleState};
use crate::{AllocRequest, Provider};

#[test]
fn a_panicking_io_thread_leaves_an_exporter_that_says_so_and_never_stalls_growth() {
    let p = Provider::builder()
        .exportable()
        .quiet(true)
        .build()
        .unwrap();
    let _first = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let exp = Exporter::builder(&p)
        .ack_timeout(Duration::from_secs(2))
        .unbound()
        .unwrap();
    let role = exp.role("w").unwrap();
    let fd = exp.connect_pair().unwrap();
    let a = std::thread::spawn(move || Attachment::builder("w").from_fd(fd))
        .join()
        .unwrap()
        .unwrap();
    assert!(exp.is_running() && role.exporter_running());
    let me = std::process::id();
    assert_eq!(role.state(), RoleState::Attached { pid: me });

    assert!(exp.shared.push(Cmd::Panic).is_ok());
    let t = Instant::now();
    while exp.is_running() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!exp.is_running(), "the exporter still looks alive");
    assert!(!role.exporter_running());
    assert_eq!(role.state(), RoleState::Gone { pid: me });
    assert!(exp.connect_pair().is_err(), "no new peers");
    let t = Instant::now();
    while a.is_connected() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!a.is_connected(), "the peer was told (its socket closed)");

    // Growth is not waited for (it used to stall 2 x ack_timeout + 1 s).
    let t = Instant::now();
    let more = p.alloc_shared(&AllocRequest::new(4 << 20)).unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "growth took {took:?}");
    // Freed pages stay held: a peer may still map them and nobody watches.
    let mapped = p.mapped_bytes();
    drop(more);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        p.mapped_bytes(),
        mapped,
        "pages were unmapped under the peer"
    );
    drop(a);
    drop(exp);
}

//! `audit` catches an overwritten header; debug builds catch a double put.

mod common;

use common::anon;
use pktmem_mempool::{AuditError, BackendKind};

#[test]
fn audit_catches_overwritten_header() {
    let pool = anon("audit", 64, 64, 0, BackendKind::Ring);
    let o = pool.get_default().unwrap();
    // SAFETY: we own the object; we scribble over the 8 bytes before it
    // (the header's cookie) and put them back before returning it.
    let cookie = unsafe { o.cast::<u64>().sub(1).as_ptr() };
    // SAFETY: as above.
    let saved = unsafe { cookie.read() };
    // SAFETY: as above.
    unsafe { cookie.write(0x4141_4141_4141_4141) };
    let e = pool.audit().unwrap_err();
    assert!(
        matches!(
            e,
            AuditError::BadCookie {
                cookie: 0x4141_4141_4141_4141,
                ..
            }
        ),
        "{e}"
    );
    // SAFETY: restore.
    unsafe { cookie.write(saved) };
    pool.audit().unwrap();
    // SAFETY: returned once.
    unsafe { pool.put_default(o) };
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "put back twice")]
fn double_put_is_caught_in_debug() {
    let pool = anon("dbl", 8, 64, 0, BackendKind::Ring);
    let o = pool.get_default().unwrap();
    // SAFETY: the first put is legitimate; the second is the bug under test,
    // caught by the cookie before the object is stored again.
    unsafe {
        pool.put_default(o);
        pool.put_default(o);
    }
}

//! External memory: registered ranges translate by their page IOVAs (or
//! have none), bad registrations are refused with nothing left behind,
//! dropping the registration unregisters, and users' leases keep it
//! registered: explicit unregistering is refused naming them, a dropped
//! registration waits for the last one.

use pktmem_hugemem::{
    EventKind, ExternalMem, Iova, LeaseError, Provider, RegisterError, UnregisterError,
};

mod common;
use common::{heap_provider, Ext};

#[test]
fn external_memory_translation_and_refusals() {
    let p = heap_provider();
    let ext = Ext::new(4 * 4096, 4096);
    let iovas = [
        Iova(0x10_0000),
        Iova(0x30_0000),
        Iova(0x30_1000),
        Iova(0x90_0000),
    ];
    // Bad input first: nothing may stick.
    assert!(matches!(
        p.register_external(ext.ptr, 0, 4096, None),
        Err(RegisterError::ZeroLength)
    ));
    assert!(matches!(
        p.register_external(ext.at(8), 4096, 4096, None),
        Err(RegisterError::Misaligned { .. })
    ));
    assert!(matches!(
        p.register_external(ext.ptr, 4096 + 1, 4096, None),
        Err(RegisterError::Misaligned { .. })
    ));
    assert!(matches!(
        p.register_external(ext.ptr, 4 * 4096, 3000, None),
        Err(RegisterError::BadPageSize { page_size: 3000 })
    ));
    assert!(matches!(
        p.register_external(ext.ptr, 4 * 4096, 4096, Some(&iovas[..3])),
        Err(RegisterError::IovaTableLength {
            expected: 4,
            got: 3
        })
    ));
    let with_bad = [iovas[0], Iova::BAD, iovas[2], iovas[3]];
    assert!(matches!(
        p.register_external(ext.ptr, 4 * 4096, 4096, Some(&with_bad)),
        Err(RegisterError::BadIova { page: 1 })
    ));
    assert_eq!(p.lists().iter().filter(|l| l.external).count(), 0);
    let reg = p
        .register_external(ext.ptr, 4 * 4096, 4096, Some(&iovas))
        .unwrap();
    assert_eq!((reg.as_ptr().as_ptr(), reg.len()), (ext.ptr, 4 * 4096));
    assert!(matches!(
        p.register_external(ext.at(4096), 4096, 4096, None),
        Err(RegisterError::Overlap { .. })
    ));
    for (i, iova) in iovas.iter().enumerate() {
        let a = ext.at(i * 4096 + 17);
        assert_eq!(p.virt2iova(a), Some(iova.offset(17)));
        assert_eq!(p.iova2virt(iova.offset(17)).unwrap().as_ptr(), a);
        let page = p.page_of(a as usize).unwrap();
        assert!(page.external);
        assert_eq!(page.va, ext.ptr as usize + i * 4096);
        assert_eq!(page.iova, Some(*iova));
        assert_eq!(page.node, None);
    }
    reg.unregister().unwrap();
    assert!(
        matches!(reg.unregister(), Err(UnregisterError::NotRegistered { .. })),
        "double unregister"
    );
    assert!(p.virt2iova(ext.ptr).is_none());
    drop(reg); // spent: nothing happens
               // Without a table: no IOVA, but the memory is known.
    let reg = p.register_external(ext.ptr, 4 * 4096, 4096, None).unwrap();
    assert!(p.virt2iova(ext.ptr).is_none());
    let page = p.page_of(ext.ptr as usize).unwrap();
    assert!(page.external && !page.in_use);
    assert_eq!(page.iova, None);
    // Memory that is not the provider's: typed errors, nothing changes.
    let other = Ext::new(4096, 4096);
    assert!(matches!(
        p.lease_external(other.ptr, 1, "x"),
        Err(LeaseError::NotRegistered { .. })
    ));
    assert!(matches!(
        p.lease_external(ext.at(3 * 4096), 4097, "x"),
        Err(LeaseError::NotRegistered { .. })
    ));
    assert!(p.page_of(other.ptr as usize).is_none());
    // A heap does not remove what it does not hold.
    let heap = p.create_heap("h");
    assert!(matches!(
        heap.remove_memory(reg.id()),
        Err(UnregisterError::NotInHeap { heap }) if heap == "h"
    ));
    assert!(p.page_of(ext.ptr as usize).is_some(), "untouched");
    drop(reg);
    assert!(p.page_of(ext.ptr as usize).is_none());
    assert!(p.lists().iter().all(|l| !l.external));
}

/// A user's lease keeps the memory registered: unregistering names the
/// user and changes nothing; dropping the registration waits for the last
/// lease, and the Free event fires then.
#[test]
fn leases_keep_memory_registered() {
    let p = heap_provider();
    let ext = Ext::new(2 * 4096, 4096);
    let frees = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f2 = frees.clone();
    let _events = p.register_event_callback(move |e| {
        if e.kind == EventKind::Free && e.external {
            f2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let reg = p
        .register_external(ext.ptr, 2 * 4096, 4096, Some(&[Iova(0x5000), Iova(0x6000)]))
        .unwrap();
    let rx = reg.lease("pool 'rx'").unwrap();
    let tx = p.lease_external(ext.at(4096), 100, "pool 'tx'").unwrap();
    assert_eq!((rx.user(), tx.user()), ("pool 'rx'", "pool 'tx'"));
    assert_eq!((tx.va(), tx.len()), (ext.ptr as usize, 2 * 4096));
    assert_eq!(reg.users(), vec!["pool 'rx'", "pool 'tx'"]);
    let listed = p.lists().into_iter().find(|l| l.external).unwrap();
    assert_eq!(listed.users, vec!["pool 'rx'", "pool 'tx'"]);
    match reg.unregister() {
        Err(UnregisterError::InUse { addr, len, users }) => {
            assert_eq!((addr, len), (ext.ptr as usize, 2 * 4096));
            assert_eq!(users, vec!["pool 'rx'", "pool 'tx'"]);
        }
        other => panic!("{other:?}"),
    }
    let e = reg.unregister().unwrap_err();
    assert!(e.to_string().contains("pool 'rx', pool 'tx'"), "{e}");
    assert_eq!(p.virt2iova(ext.ptr), Some(Iova(0x5000)), "still registered");
    drop(rx);
    assert!(
        matches!(reg.unregister(), Err(UnregisterError::InUse { users, .. }) if users == ["pool 'tx'"])
    );
    // Dropped while leased: deferred, no new users.
    drop(reg);
    assert_eq!(p.virt2iova(ext.at(4096)), Some(Iova(0x6000)), "deferred");
    assert!(matches!(
        p.lease_external(ext.ptr, 1, "late"),
        Err(LeaseError::Unregistering { .. })
    ));
    assert_eq!(frees.load(std::sync::atomic::Ordering::SeqCst), 0);
    drop(tx);
    assert_eq!(frees.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        p.virt2iova(ext.ptr),
        None,
        "unregistered with the last lease"
    );
    assert!(p.lists().iter().all(|l| !l.external));
}

/// A registration dropped with no user goes at once; a kept one stays for
/// the provider's life; a lease outliving its provider is harmless.
#[test]
fn registration_guards_and_provider_lifetime() {
    let ext = Ext::new(4096, 4096);
    let p = heap_provider();
    let reg: ExternalMem = p.register_external(ext.ptr, 4096, 4096, None).unwrap();
    drop(reg);
    assert!(p.page_of(ext.ptr as usize).is_none());
    p.register_external(ext.ptr, 4096, 4096, None)
        .unwrap()
        .keep();
    assert!(p.page_of(ext.ptr as usize).is_some(), "kept");
    let lease = p.lease_external(ext.ptr, 4096, "late user").unwrap();
    let q: Provider = p.clone();
    drop((p, q));
    drop(lease); // the provider is gone: nothing to release
}

/// A registration and a lease dropped inside a validator (which runs under
/// the provider lock) are released once the lock is: the range goes, its
/// Free event fires after the validator returns.
#[test]
fn registration_and_lease_dropped_inside_a_validator() {
    use std::sync::{Arc, Mutex};
    let p = heap_provider();
    let ext = Ext::new(4096, 4096);
    let reg = p.register_external(ext.ptr, 4096, 4096, None).unwrap();
    let lease = reg.lease("pool 'v'").unwrap();
    let held: Arc<Mutex<Option<(ExternalMem, pktmem_hugemem::ExternalLease)>>> =
        Arc::new(Mutex::new(Some((reg, lease))));
    let h2 = held.clone();
    let freed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f2 = freed.clone();
    let _events = p.register_event_callback(move |e| {
        if e.external && e.kind == EventKind::Free {
            f2.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let _v = p.register_validator(0, move |_| {
        // The registration (deferred: leased), then the lease (the last user).
        drop(h2.lock().unwrap().take());
        true
    });
    let c = p.alloc(4096).unwrap();
    assert!(held.lock().unwrap().is_none());
    assert!(freed.load(std::sync::atomic::Ordering::SeqCst));
    assert!(
        p.page_of(ext.ptr as usize).is_none(),
        "unregistered after the lock"
    );
    drop(c);
}

/// Threads take and drop leases while the registration is dropped: the
/// range is unregistered exactly once, after the last lease, and a lease
/// taken after the drop is refused.
#[test]
fn leases_from_threads_unregister_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    for round in 0..20 {
        let p = heap_provider();
        let ext = Ext::new(2 * 4096, 4096);
        let frees = Arc::new(AtomicUsize::new(0));
        let f2 = frees.clone();
        let _events = p.register_event_callback(move |e| {
            if e.external && e.kind == EventKind::Free {
                f2.fetch_add(1, Ordering::SeqCst);
            }
        });
        let reg = p.register_external(ext.ptr, 2 * 4096, 4096, None).unwrap();
        let barrier = Arc::new(Barrier::new(3));
        let addr = ext.ptr as usize;
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let (p, barrier) = (p.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut held = vec![p
                        .lease_external(addr as *const u8, 1, &format!("t{t}"))
                        .unwrap()];
                    barrier.wait();
                    let mut refused = 0;
                    for i in 0..200 {
                        if i % 3 == 0 {
                            held.pop();
                        } else {
                            match p.lease_external(addr as *const u8, 1, "again") {
                                Ok(l) => held.push(l),
                                Err(
                                    LeaseError::Unregistering { .. }
                                    | LeaseError::NotRegistered { .. },
                                ) => {
                                    refused += 1;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    refused
                })
            })
            .collect();
        barrier.wait();
        drop(reg);
        let refused: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(
            frees.load(Ordering::SeqCst),
            1,
            "round {round}: one Free event"
        );
        assert!(p.page_of(addr).is_none(), "round {round}: unregistered");
        // Informational: how many asks came after the drop.
        eprintln!("round {round}: {refused} lease(s) refused while unregistering");
        assert!(matches!(
            p.lease_external(addr as *const u8, 1, "late"),
            Err(LeaseError::NotRegistered { .. })
        ));
    }
}

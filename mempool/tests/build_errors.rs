//! Bad configuration is a typed `BuildError` (or `CreateError` for the
//! one-call builds) with the numbers in its message; nothing panics.

mod common;

use common::anon;
use pktmem_mempool::{
    BackendKind, BuildError, CreateError, Mempool, MempoolBuilder, MempoolError, PopulateError,
};

fn e(b: MempoolBuilder) -> BuildError {
    b.build_empty().unwrap_err()
}

#[test]
fn bad_input_is_typed() {
    assert!(matches!(
        e(Mempool::builder(0, 64).name("z")),
        BuildError::ZeroObjects { .. }
    ));
    assert!(matches!(
        e(Mempool::builder(10, 0)),
        BuildError::ZeroElementSize { .. }
    ));
    assert!(matches!(
        e(Mempool::builder(10000, 64).cache(513)),
        BuildError::CacheTooLarge {
            cache_size: 513,
            max: 512,
            ..
        }
    ));
    assert!(matches!(
        e(Mempool::builder(10, 64).cache(11)),
        BuildError::CacheTooLarge {
            cache_size: 11,
            max: 10,
            ..
        }
    ));
    assert!(matches!(
        e(Mempool::builder(10, usize::MAX - 10)),
        BuildError::ElementTooLarge { .. }
    ));
    assert!(matches!(
        e(Mempool::builder(usize::MAX / 64, 64).backend_kind(BackendKind::Stack)),
        BuildError::PoolTooLarge { .. }
    ));
    assert!(matches!(
        e(Mempool::builder(1 << 40, 8)),
        BuildError::Ring(_)
    ));
    assert!(matches!(
        e(Mempool::builder(10, 64).private_size(usize::MAX)),
        BuildError::PrivateAreaTooLarge { .. }
    ));
    // Alignments (what flag words used to say) are checked values.
    for bad in [0, 4, 48, 8192] {
        assert!(
            matches!(e(Mempool::builder(10, 64).align(bad)), BuildError::BadAlign { align, .. } if align == bad),
            "align {bad}"
        );
    }
    // Populating a full pool is a typed error; the pool stays usable.
    let pool = anon("full", 10, 64, 0, BackendKind::Ring);
    assert!(matches!(
        pool.populate_anonymous(),
        Err(PopulateError::Full { size: 10, .. })
    ));
    assert!(pool.is_full());
    // Display carries the numbers and the name.
    let msg = e(Mempool::builder(10000, 64).name("rx").cache(600)).to_string();
    assert!(
        msg.contains("600") && msg.contains("512") && msg.contains("'rx'"),
        "{msg}"
    );
    // One-call builds wrap the configuration error; all of them meet at `?`.
    let c = Mempool::builder(0, 64).build_anonymous().unwrap_err();
    assert!(matches!(
        c,
        CreateError::Build(BuildError::ZeroObjects { .. })
    ));
    let m: MempoolError = c.into();
    assert!(matches!(
        m,
        MempoolError::Build(BuildError::ZeroObjects { .. })
    ));
    assert!(std::error::Error::source(&m).is_some());
}

#[test]
fn a_pool_on_an_exportable_provider_is_refused() {
    // Its headers (pool pointer, IOVA) and ring would sit in memory other
    // processes may write: the provider hands out no chunk for them.
    let p = pktmem_hugemem::Provider::builder()
        .exportable()
        .quiet(true)
        .build()
        .unwrap();
    let err = Mempool::builder(64, 64)
        .name("shared")
        .build_on(&p)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, CreateError::Populate(_) | CreateError::Build(_)),
        "{err:?}"
    );
    assert!(msg.contains("exportable"), "{msg}");
    assert_eq!(p.mapped_bytes(), 0, "nothing left mapped");
}

//! The process-wide provider: built on first use, the same handle every time.

use pktmem_hugemem::Provider;

#[test]
fn global_provider_works() {
    let p = Provider::global();
    let c = p.alloc(1 << 20).unwrap();
    assert_eq!(p.virt2iova(c.as_ptr().as_ptr()), c.iova());
    assert!(c.iova().is_some());
    let c2 = Provider::global().alloc(4096).unwrap();
    assert_ne!(c.as_ptr(), c2.as_ptr());
    assert!(std::ptr::eq(p, Provider::global()), "one provider");
    assert!(p.info().init_error.is_none());
}

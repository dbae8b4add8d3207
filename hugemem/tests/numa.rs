//! NUMA: a request naming a node gets pages from that node's own list,
//! allocated under a policy bound to it; the thread's policy is put back;
//! a node that does not exist is refused.

use pktmem_hugemem::{node_of, AllocError, AllocRequest, Node, Provider};

mod common;
use common::{serial, MB2};

#[test]
fn node_request_binds_pages() {
    let _s = serial();
    let p = Provider::builder().quiet(true).build().unwrap();
    let c = p
        .alloc_with(&AllocRequest::new(3 * MB2 / 2).node(Node::new(0)))
        .unwrap();
    for pg in c.pages() {
        assert_eq!(pg.node, Some(Node::new(0)));
        if let Some(n) = node_of(pg.va) {
            assert_eq!(n, Node::new(0), "page {:#x} landed on {n}", pg.va);
        }
    }
    // The calling thread's policy is back to what it was: an unbound
    // allocation after it goes to the default list.
    let d = p.alloc(1).unwrap();
    // Lists tried and left empty (a hugepage list when none are reserved)
    // do not count: exactly two lists hold pages, the node-0 one and the
    // default one.
    let holding = p.lists().iter().filter(|l| l.used_pages > 0).count();
    assert_eq!(holding, 2, "lists: {:?}", p.lists());
    let c_list = c.pages().next().unwrap().list;
    let d_list = d.pages().next().unwrap().list;
    assert_ne!(
        c_list, d_list,
        "the unbound allocation went to the node-0 list"
    );
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(1).node(Node::new(999))),
        Err(AllocError::UnknownNode { node }) if node.id() == 999
    ));
}

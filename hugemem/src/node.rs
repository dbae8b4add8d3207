//! NUMA nodes.

use std::fmt;

/// A NUMA node, by its kernel number (`/sys/devices/system/node/nodeN`).
///
/// Requests name one with [`AllocRequest::node`](crate::AllocRequest::node)
/// (no node: the kernel's default policy); page records carry
/// `Option<Node>` (`None`: not known, e.g. default-policy pages on a
/// machine with several nodes).
///
/// ```
/// use pktmem_hugemem::Node;
/// let n = Node::new(0);
/// assert_eq!(n.id(), 0);
/// assert!(Node::exists(n)); // every Linux machine has node 0
/// assert!(!Node::exists(Node::new(100_000)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node(u32);

impl Node {
    /// Node number `id`.
    pub const fn new(id: u32) -> Node {
        Node(id)
    }

    /// The kernel's number for the node.
    pub const fn id(self) -> u32 {
        self.0
    }

    /// Whether the node exists on this machine.
    pub fn exists(node: Node) -> bool {
        crate::sys::node_exists(node.0)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}

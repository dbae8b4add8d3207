//! Memory shared between processes: export a provider's memory over a
//! Unix socket, attach to it from another process (a separate binary, not
//! a fork), translate addresses both ways in O(1) with no system call.
//!
//! ```text
//!  exporter process                               peer process
//!  Provider (memfd lists: 2M, 1G, 4K)             Attachment
//!  Exporter ── SOCK_SEQPACKET ──────────────────► maps each list's memfd:
//!   I/O thread: accept, roles, directory,  Hello   at the exporter's VA when free
//!   growth (Map, acked), shrink (Unmap,    ◄────   (MAP_FIXED_NOREPLACE), else anywhere
//!   pages held until acked), peer death    Welcome per-page table: exporter VA ↔ IOVA
//!   (socket HUP, then pidfd exit)          List+fd ↔ local VA, lock-free
//!                                          Map, Publish, Ready   directory: lookup(name)
//! ```
//!
//! # The model
//!
//! * **A whole provider is shared, by fd.** Make a provider for what is to
//!   be shared, [`exportable`](crate::ProviderBuilder::exportable), and
//!   export it ([`Exporter::builder`]; a provider that is not exportable is
//!   refused with [`ExportError::NotExportable`]); everything else the
//!   process has stays private. An exportable provider hands out only
//!   [`SharedChunk`](crate::SharedChunk)s
//!   ([`Provider::alloc_shared`](crate::Provider::alloc_shared)): raw
//!   pointers, no slices, no mempools, zones or small heap, because *every*
//!   page of it is peer-writable for as long as a peer holds the memfd
//!   (not only the pages announced so far, and also after the exporter
//!   drops: the peer keeps its fd). Each fd-backed page-size list is one region
//!   (its memfd, file offset = VA offset), so a provider shares as at most
//!   three regions, however much it grows. Peers need no hugetlbfs mount,
//!   no path, no common binary, and may live in other mount or PID
//!   namespaces. Heap-backed and anonymous-hugetlb providers have no fd and
//!   are refused ([`ExportError::NotShareable`]); external memory
//!   registered with the provider is not announced.
//! * **Two translation modes, both O(1).** With [`Placement::SameVaIfFree`]
//!   (the default) a list whose range is free in the peer sits at the
//!   exporter's addresses, and exporter pointers are valid there unchanged;
//!   otherwise (taken by something else, or [`Placement::Relocate`]) it
//!   sits anywhere and [`Attachment::to_local`] / [`Attachment::to_exporter`]
//!   translate: a scan of at most [`wire::MAX_LISTS`] list descriptors, one
//!   bounds compare and one per-page table load (also what says whether
//!   the page is mapped). [`Attachment::iova`] gives the IOVA the exporter
//!   recorded. Attaching never fails because an address is taken.
//! * **Growth is synchronous.** A provider allocation that maps new pages
//!   returns once every attached peer mapped them (acked the `Map`); a peer
//!   that does not ack within [`ExportBuilder::ack_timeout`] is cut off
//!   (its role goes [`RoleState::Gone`]), never the exporter blocked for ever.
//! * **Shrink is gated.** Pages the provider gives back stay mapped in the
//!   exporter, out of use, until every peer that had them acked the
//!   `Unmap` or exited; only then are they unmapped and their hugepages
//!   returned. (A peer that closed its socket but still lives may still
//!   map them: its pages wait for its exit.)
//! * **Roles and generations.** A peer attaches as a role ("worker"); one
//!   live process holds a role at a time, a second is refused
//!   ([`RefuseReason::RoleTaken`]). A peer that leaves with `Bye` (an
//!   [`Attachment`] dropped, or an attach that failed after the exporter
//!   granted it) has unmapped everything: the role is
//!   [`RoleState::Vacant`] at once. When the connection goes without `Bye`
//!   the role is [`RoleState::Gone`]; when the process has exited (its
//!   pidfd, from the socket's `SO_PEERPIDFD`) it is [`RoleState::Exited`],
//!   and a new attach is granted with generation + 1. Upper layers key
//!   what belongs to a peer (rings, lent buffers) on the role, so a
//!   restarted peer finds it again; [`Role::on_change`] tells them when
//!   to reclaim.
//! * **A directory of named payloads** ([`Exporter::publish`] →
//!   [`Publication`], [`Attachment::lookup`], [`Attachment::wait_for`]):
//!   how upper layers tell peers where their structures are.
//! * **The peer is not trusted, nor the exporter.** Everything received is
//!   validated before use ([`wire`] lists the checks); a bad message is a
//!   typed error ([`AttachError`], [`ProtocolError`]) with the numbers,
//!   and an attach that fails leaves nothing mapped and no fd open.
//!   Shared memory is reached only through raw pointers (volatile or
//!   atomic accesses), never through `&`/`&mut` references: the other
//!   side may write it at any time.
//! * **Reconnect with backoff**: [`AttachBuilder::retry`] retries
//!   connecting (10 ms doubling to 1 s by default, for ever unless a
//!   deadline is set), also while the role's previous holder has not been
//!   seen to exit.
//!
//! # What it costs
//!
//! Translation in the peer is a scan of the (one to three) list
//! descriptors and one table load: about 2.5 ns per lookup in a release
//! build (relocated mode, 64 MiB of 2 MiB pages, random addresses;
//! `virt2iova` in the exporter is about 2 ns on the same loop). Growth
//! with peers attached costs one `Map` round trip per peer on top of the
//! allocation (the peer maps with `MAP_POPULATE`): roughly 0.1 ms for one
//! peer. A peer's table takes 8 bytes of VA per page of each list's
//! reservation (16 GiB of 4 KiB pages: 32 MiB of VA, backed only where
//! pages are mapped).
//!
//! # What it cannot do
//!
//! * A peer's view is as fresh as the last message its thread applied.
//!   Growth is waited for (memory handed out after an allocation returns is
//!   mapped in every connected peer); publications are not.
//! * At most [`wire::MAX_LISTS`] lists are announced; pages of further
//!   lists (more NUMA nodes than that) are not shared.
//! * A peer that stops reading is cut off once its acks are overdue
//!   ([`ExportBuilder::ack_timeout`]) or more than 8 MiB waits for it; the
//!   pages it had stay held until its process exits.
//! * Dropping the [`Exporter`] keeps every page it was holding back for a
//!   peer that had not acked its `Unmap` (nor left with `Bye`, nor exited):
//!   those stay mapped in the exporter and out of use for the provider's
//!   life, a leak rather than pages punched under a peer. Pages freed
//!   after the exporter dropped are not held; a peer must stop using
//!   memory once [`Attachment::is_connected`] is false.
//! * A peer's process is known only when the kernel names it: a peer that
//!   connected to the listener is watched through `SO_PEERPIDFD` (Linux
//!   6.5+; else `pidfd_open` of the `SO_PEERCRED` pid). A peer over a
//!   socket pair ([`Exporter::connect_pair`]: its credentials name the
//!   exporter) or in a PID namespace the exporter cannot see (pid 0) is
//!   known only by the pid its `Hello` gives, which is never trusted for
//!   exit: when such a peer's connection goes without `Bye` its role stays
//!   [`RoleState::Gone`] and every page it may map stays held until the
//!   [`Exporter`] drops (never [`RoleState::Exited`] on a guess; the same
//!   claimed pid may attach again). Peers that restart should connect to
//!   the listener, or leave with `Bye`.
//! * The provider's memfds are sealed against shrinking and growing
//!   (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`), so neither side can
//!   truncate them under the other's mappings; a hostile peer's
//!   `ftruncate` fails. Punching holes (`fallocate(PUNCH_HOLE)`) cannot be
//!   sealed off without forbidding writes: a peer that may write the
//!   memory may also zero it, and the exporter's code must treat what it
//!   reads there as untrusted. Hugetlbfs-file providers are not sealed.
//! * Who may attach is checked by user only: a peer whose effective uid
//!   (`SO_PEERCRED`) is neither this process's nor root's is refused
//!   ([`RefuseReason::NotAllowed`], before any role is declared or fd
//!   sent) unless [`ExportBuilder::allow_uid`] /
//!   [`ExportBuilder::allow_any_user`] allow it. Processes of an allowed
//!   user get every list's memfd; an abstract name
//!   ([`ExportBuilder::bind_abstract`]) is reachable from the whole network
//!   namespace, a path socket as its file's permissions say.
//!
//! # Example
//!
//! The peer is usually another process (connect to [`Exporter::socket_path`],
//! or inherit a [`connect_pair`](Exporter::connect_pair) socket); a thread
//! shows the same:
//!
//! ```
//! use pktmem_hugemem::share::{Attachment, Exporter, Placement, RoleState};
//! use pktmem_hugemem::{AllocRequest, Provider};
//! use std::time::Duration;
//!
//! let p = Provider::builder().exportable().quiet(true).build()?;
//! let first = p.alloc_shared(&AllocRequest::new(2 << 20))?;
//! let exp = Exporter::builder(&p).unbound()?;
//! let role = exp.role("worker")?;
//! let _where = exp.publish("rings/worker", &(first.as_ptr().as_ptr() as u64).to_le_bytes())?;
//! let fd = exp.connect_pair().unwrap();
//! let peer = std::thread::spawn(move || Attachment::builder("worker").placement(Placement::Relocate).from_fd(fd));
//! let a = peer.join().unwrap()?;
//! assert_eq!(role.state(), RoleState::Attached { pid: std::process::id() });
//!
//! // The directory says where; the table translates.
//! let va = u64::from_le_bytes(a.lookup("rings/worker").unwrap().try_into().unwrap());
//! let local = a.to_local(va, 64).expect("mapped in the peer");
//! assert_ne!(local.as_ptr() as u64, va, "relocated");
//! assert_eq!(a.iova(va), p.virt2iova(va as *const u8));
//! // SAFETY: mapped, and shared memory is written through a raw pointer.
//! unsafe { local.as_ptr().write_volatile(42) };
//! // SAFETY: the exporter's own chunk, read the same way.
//! assert_eq!(unsafe { first.as_ptr().as_ptr().read_volatile() }, 42);
//!
//! // Growth: the allocation returns once the peer mapped the new pages.
//! let more = p.alloc_shared(&AllocRequest::new(4 << 20))?;
//! assert!(a.to_local(more.as_ptr().as_ptr() as u64, more.len()).is_some());
//! drop(a); // Bye: the role is free for the next holder
//! assert!(role.wait_state(Duration::from_secs(5), |s| s == RoleState::Vacant));
//! # Ok::<(), pktmem_hugemem::HugememError>(())
//! ```

mod attach;
pub mod error;
mod export;
mod io;
mod sys;
mod view;
pub mod wire;

pub use attach::{AttachBuilder, Attachment, Backoff, Placement};
pub use error::{AttachError, ExportError, ProtocolError, PublishError, RoleError, ShareError};
pub use export::{
    ExportBuilder, Exporter, Publication, Role, RoleInfo, RoleState, RoleWatch, MAX_ROLES,
};
pub use view::{ListPlacement, PeerPage};
pub use wire::RefuseReason;

//! The XDP program that sends a queue's frames to an `AF_XDP` socket, loaded
//! and attached through the `bpf(2)` system call — no C compiler, no libbpf.
//!
//! # The model
//!
//! ```text
//!   NIC queue q ──► XDP hook of ifindex ──► RedirectProgram ──► XskMap[q] ──► AF_XDP socket
//!                   (XdpLink: attached                │            (insert/remove)
//!                    while it lives)                  └── slot q empty: XDP_PASS (normal stack)
//! ```
//!
//! Three kernel objects, each owned by one Rust value through its file
//! descriptor ([`OwnedFd`]); dropping the value closes the descriptor and the
//! kernel frees the object once nothing else refers to it:
//!
//! - [`XskMap`]: a `BPF_MAP_TYPE_XSKMAP` with one slot per receive queue
//!   (key: queue index, value: an `AF_XDP` socket). [`XskMap::insert`] puts a
//!   bound socket into a slot, [`XskMap::remove`] empties it; the kernel also
//!   empties the slot itself when the socket is closed.
//! - [`RedirectProgram`]: the six-slot program
//!   `return bpf_redirect_map(&map, ctx->rx_queue_index, XDP_PASS);` written
//!   as raw instructions. A frame arriving on queue `q` goes to the socket in
//!   slot `q`; with the slot empty it takes the default action, `XDP_PASS`,
//!   and continues up the stack as if no program were there. The program
//!   refers to the map inside the kernel, and holds a handle of its own
//!   ([`RedirectProgram::map`]), so the map may be dropped first.
//! - [`XdpLink`]: the program attached to an interface through a BPF link
//!   (`BPF_LINK_CREATE`, attach type `BPF_XDP`), in [`XdpMode::Skb`]
//!   (generic, any device) or [`XdpMode::Driver`] (native, where the driver
//!   supports it). The link detaches the program when dropped, also when the
//!   process dies, so no program is left on an interface by a crash. One
//!   XDP program per interface: a second attach, in either mode, gives
//!   [`BpfError::Busy`].
//!
//! The order for a receive path is: make the map (one slot per queue), load
//! the program, attach it, then insert each socket after binding it to its
//! `(ifindex, queue)`. A socket in a slot receives only frames of the device
//! and queue it is bound to; the kernel drops others.
//!
//! # Privileges and kernels
//!
//! Making the map and loading the program need `CAP_BPF` and
//! `CAP_NET_ADMIN` (or root) when `kernel.unprivileged_bpf_disabled` is set,
//! as it is by default; attaching needs `CAP_NET_ADMIN`. Refusals come back
//! as [`BpfError::NotPermitted`], which a program can report and skip on.
//! The kernel needs XSKMAP (4.18), a default action in `bpf_redirect_map`
//! (5.3) and BPF links for XDP (5.9, so a kernel that attaches also has
//! the default action); a missing feature is [`BpfError::Unsupported`]
//! naming it. There is no netlink (`IFLA_XDP`) fallback for kernels
//! before 5.9.
//!
//! ```no_run
//! // Needs root (CAP_BPF + CAP_NET_ADMIN) and an interface; `eth0` here.
//! use pktmem::net::bpf::{RedirectProgram, XdpAction, XdpMode, XskMap};
//!
//! # fn main() -> Result<(), pktmem::net::bpf::BpfError> {
//! let map = XskMap::new(4)?; // queues 0..4
//! let prog = RedirectProgram::load(&map)?;
//! // No socket in slot 0 yet: a frame passes to the stack.
//! assert_eq!(prog.test_run(&[0u8; 64])?, XdpAction::Pass);
//! let ifindex = 2; // e.g. from if_nametoindex("eth0")
//! let link = prog.attach(ifindex, XdpMode::Skb)?;
//! // ... bind an AF_XDP socket to (ifindex, 0), then: socket.insert_into(&map)?;
//! drop(link); // detached
//! # Ok(()) }
//! ```

use std::ffi::c_void;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

// bpf(2) commands (include/uapi/linux/bpf.h, `enum bpf_cmd`).
const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_LINK_CREATE: u32 = 28;
const BPF_LINK_DETACH: u32 = 34;

/// `BPF_MAP_TYPE_XSKMAP`.
const MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_PROG_TYPE_XDP`.
const PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` (`enum bpf_attach_type`).
const ATTACH_TYPE_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE`.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `BPF_FUNC_redirect_map`.
const FUNC_REDIRECT_MAP: i32 = 51;
/// `BPF_PSEUDO_MAP_FD`: the immediate of a 64-bit load is a map fd.
const PSEUDO_MAP_FD: u8 = 1;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// The program's license: the kernel refuses GPL-only helpers to others,
/// and `bpf_redirect_map` is not GPL-only.
const LICENSE: &std::ffi::CStr = c"BSD-2-Clause";
/// Names shown by `bpftool map` / `bpftool prog` (at most 15 bytes).
const MAP_NAME: &[u8] = b"pktmem_xsks";
const PROG_NAME: &[u8] = b"pktmem_xsk";

/// Bytes of verifier log kept when a load fails (the program's log is a
/// few hundred bytes; this leaves room for a kernel that says more).
const LOG_SIZE: usize = 64 * 1024;

/// The kernel's internal "operation not supported" (`ENOTSUPP`, not
/// `EOPNOTSUPP`), which some commands leak to user space.
const ENOTSUPP: i32 = 524;

/// The smallest frame `BPF_PROG_TEST_RUN` takes: an Ethernet header.
const TEST_FRAME_MIN: usize = 14;

// ---------------------------------------------------------------------------
// bpf_attr prefixes, one per command. The kernel copies `size` bytes into a
// zeroed `union bpf_attr`, so a prefix is enough; every byte we pass is a
// field (explicit padding fields are zero), because the kernel rejects
// non-zero bytes it does not know.

/// `union bpf_attr` for `BPF_MAP_CREATE`, up to `map_ifindex`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
}
const _: () = assert!(size_of::<MapCreateAttr>() == 48);

/// `union bpf_attr` for `BPF_MAP_*_ELEM`.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}
const _: () = assert!(size_of::<MapElemAttr>() == 32);

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}
const _: () = assert!(size_of::<ProgLoadAttr>() == 72);

/// `union bpf_attr` for `BPF_PROG_TEST_RUN`, up to `ctx_out`.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}
const _: () = assert!(size_of::<TestRunAttr>() == 64);

/// `struct xdp_md`, the context of a test run.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}
const _: () = assert!(size_of::<XdpMd>() == 24);
const _: () =
    assert!(std::mem::offset_of!(XdpMd, rx_queue_index) == XDP_MD_RX_QUEUE_INDEX as usize);

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}
const _: () = assert!(size_of::<InfoAttr>() == 16);

/// `union bpf_attr` for `BPF_LINK_CREATE`, up to `flags`.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}
const _: () = assert!(size_of::<LinkCreateAttr>() == 16);

/// `union bpf_attr` for `BPF_LINK_DETACH`.
#[repr(C)]
#[derive(Default)]
struct LinkDetachAttr {
    link_fd: u32,
}
const _: () = assert!(size_of::<LinkDetachAttr>() == 4);

/// `struct bpf_prog_info` up to `id` (the kernel fills `info_len` bytes).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
}
const _: () = assert!(size_of::<ProgInfo>() == 8);

/// `struct bpf_link_info` up to `xdp.ifindex` (the union starts at 16).
#[repr(C)]
#[derive(Default)]
struct LinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    pad: u32,
    ifindex: u32,
    pad2: u32,
}
const _: () = assert!(size_of::<LinkInfo>() == 24);

/// `struct bpf_insn`: opcode, destination register in the low nibble and
/// source register in the high nibble of `regs`, offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}
const _: () = assert!(size_of::<Insn>() == 8);

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// `return bpf_redirect_map(&map, ctx->rx_queue_index, XDP_PASS);`
fn redirect_insns(map_fd: RawFd) -> [Insn; 6] {
    [
        // r2 = *(u32 *)(r1 + 16)   BPF_LDX | BPF_MEM | BPF_W
        insn(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = map (two slots)     BPF_LD | BPF_DW | BPF_IMM, src = PSEUDO_MAP_FD
        insn(0x18, 1, PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        // r3 = XDP_PASS            BPF_ALU64 | BPF_MOV | BPF_K
        insn(0xb7, 3, 0, 0, XdpAction::Pass.code() as i32),
        // call bpf_redirect_map    BPF_JMP | BPF_CALL
        insn(0x85, 0, 0, 0, FUNC_REDIRECT_MAP),
        // exit                     BPF_JMP | BPF_EXIT
        insn(0x95, 0, 0, 0, 0),
    ]
}

/// Calls `bpf(cmd, attr, size_of::<A>())`; returns its non-negative result
/// or the errno.
///
/// # Safety
///
/// - `A` is the `union bpf_attr` prefix for `cmd` (a `#[repr(C)]` struct of
///   the kernel's layout, with no uninitialised padding);
/// - every pointer field of `attr` points to memory valid for what the
///   kernel reads or writes there for the duration of the call.
unsafe fn sys_bpf<A>(cmd: u32, attr: &mut A) -> Result<i64, i32> {
    let size = size_of::<A>() as u32;
    // SAFETY: the caller guarantees `attr` is a valid bpf_attr prefix for
    // `cmd` whose pointers are live; the kernel reads/writes at most `size`
    // bytes of it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(cmd),
            std::ptr::from_mut(attr).cast::<c_void>(),
            libc::c_long::from(size),
        )
    };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Takes ownership of the fd a successful object-creating command returned.
fn owned(fd: i64) -> OwnedFd {
    debug_assert!((0..=i64::from(i32::MAX)).contains(&fd));
    // SAFETY: the kernel just returned this descriptor as a new object's fd;
    // nothing else owns it, and it is closed exactly once, by the OwnedFd.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // A valid descriptor is never negative; u32::MAX would be EBADF.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

fn name16(name: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name[..n]);
    out
}

// ---------------------------------------------------------------------------
// Errors

/// Why a map, program or link could not be made or used.
///
/// | operation | errors besides `NotPermitted`, `Unsupported` and `Sys` |
/// |---|---|
/// | [`XskMap::new`] | `ZeroEntries` |
/// | [`XskMap::insert`] | `QueueOutOfRange`, `NotAnXsk` |
/// | [`XskMap::remove`] | `QueueOutOfRange` |
/// | [`RedirectProgram::load`] | `Verifier` |
/// | [`RedirectProgram::test_run`] | `FrameLength` |
/// | [`RedirectProgram::test_run_on`] | `FrameLength`, `NoSuchDevice`, `NoSuchQueue` |
/// | [`RedirectProgram::attach`] | `Busy`, `NoSuchDevice` |
/// | [`RedirectProgram::id`], [`XdpLink::id`] | — |
#[derive(Debug)]
#[non_exhaustive]
pub enum BpfError {
    /// The kernel (or the interface's driver) lacks a feature this needs.
    Unsupported {
        /// What is missing, with the kernel version that brought it or
        /// what to use instead.
        feature: &'static str,
        /// The errno the kernel gave.
        errno: i32,
    },
    /// The kernel refused for lack of privilege (`EPERM`).
    NotPermitted {
        /// The operation refused.
        call: &'static str,
    },
    /// The verifier rejected the program; its log says why.
    Verifier {
        /// The verifier's log.
        log: String,
    },
    /// The interface already has an XDP program (or link) attached.
    Busy {
        /// The interface.
        ifindex: u32,
        /// The mode the attach asked for.
        mode: XdpMode,
    },
    /// No interface has this index (in this network namespace).
    NoSuchDevice {
        /// The index asked for.
        ifindex: u32,
    },
    /// The interface has no receive queue of this index (a test run on
    /// it).
    NoSuchQueue {
        /// The interface.
        ifindex: u32,
        /// The queue asked for.
        queue: u32,
    },
    /// An XSKMAP needs at least one slot.
    ZeroEntries,
    /// The queue index is not a slot of the map.
    QueueOutOfRange {
        /// The queue asked for.
        queue: u32,
        /// The map's slots (`0..entries`).
        entries: u32,
    },
    /// The descriptor given to [`XskMap::insert`] is not an `AF_XDP`
    /// socket (not a socket, or a socket of another family).
    NotAnXsk {
        /// The slot.
        queue: u32,
        /// The errno the kernel gave (`ENOTSOCK`, `EOPNOTSUPP`, ...).
        errno: i32,
    },
    /// A test frame's length is outside what `BPF_PROG_TEST_RUN` takes.
    FrameLength {
        /// The frame's length.
        len: usize,
        /// The smallest length taken.
        min: usize,
        /// The largest length taken.
        max: usize,
    },
    /// A system call failed for another reason.
    Sys {
        /// The call.
        call: &'static str,
        /// Its error.
        err: io::Error,
    },
}

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl fmt::Display for BpfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BpfError::Unsupported { feature, errno } => {
                write!(f, "not supported here: {feature} ({})", os(*errno))
            }
            BpfError::NotPermitted { call } => write!(
                f,
                "{call} was refused (EPERM): XDP maps, programs and links need root, or \
                 CAP_BPF and CAP_NET_ADMIN (kernel.unprivileged_bpf_disabled is usually set; \
                 before Linux 5.11 also raise RLIMIT_MEMLOCK, `ulimit -l unlimited`)"
            ),
            BpfError::Verifier { log } => write!(
                f,
                "the kernel's verifier rejected the XDP program:\n{}",
                log.trim_end()
            ),
            BpfError::Busy { ifindex, mode } => write!(
                f,
                "interface {ifindex} already has an XDP program, so none can be attached in \
                 {mode} mode; drop the XdpLink holding it, or, if `ip link` attached it, \
                 remove it (`ip link set dev <if> xdpgeneric off`, or `xdp off`)"
            ),
            BpfError::NoSuchDevice { ifindex } => write!(
                f,
                "no interface has index {ifindex} in this network namespace (see `ip link`)"
            ),
            BpfError::NoSuchQueue { ifindex, queue } => write!(
                f,
                "interface {ifindex} has no receive queue {queue} (see \
                 /sys/class/net/<if>/queues/, `ethtool -l <if>`)"
            ),
            BpfError::ZeroEntries => write!(f, "an XSKMAP needs at least one slot (one per queue)"),
            BpfError::QueueOutOfRange { queue, entries } => write!(
                f,
                "queue {queue} is not a slot of this XSKMAP (slots 0..{entries}); make the map \
                 with one slot per receive queue"
            ),
            BpfError::NotAnXsk { queue, errno } => write!(
                f,
                "the descriptor for slot {queue} is not an AF_XDP socket ({}); insert the \
                 socket made by socket(AF_XDP, SOCK_RAW, 0), bound to its (ifindex, queue)",
                os(*errno)
            ),
            BpfError::FrameLength { len, min, max } => write!(
                f,
                "a test frame of {len} bytes cannot be run: the kernel takes {min}..={max} bytes"
            ),
            BpfError::Sys { call, err } => write!(f, "{call}: {err}"),
        }
    }
}

impl std::error::Error for BpfError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BpfError::Sys { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// The errors every command maps the same way.
fn common(call: &'static str, errno: i32) -> BpfError {
    match errno {
        libc::EPERM => BpfError::NotPermitted { call },
        libc::ENOSYS => BpfError::Unsupported {
            feature: "the bpf() system call (a kernel built with CONFIG_BPF_SYSCALL)",
            errno,
        },
        _ => BpfError::Sys {
            call,
            err: os(errno),
        },
    }
}

// ---------------------------------------------------------------------------
// XskMap

/// A `BPF_MAP_TYPE_XSKMAP`: slot `q` holds the `AF_XDP` socket that receives
/// queue `q`'s frames.
///
/// Cloning is cheap and shares the map (one kernel object, one descriptor).
///
/// ```no_run
/// // Needs root (CAP_BPF).
/// use pktmem::net::bpf::{BpfError, XskMap};
///
/// let map = match XskMap::new(4) {
///     Ok(m) => m,
///     Err(e @ BpfError::NotPermitted { .. }) => { eprintln!("skipping: {e}"); return; }
///     Err(e) => panic!("{e}"),
/// };
/// assert_eq!(map.entries(), 4);
/// // A UDP socket is not an AF_XDP socket:
/// let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// use std::os::fd::AsFd;
/// assert!(matches!(map.insert(0, udp.as_fd()), Err(BpfError::NotAnXsk { .. })));
/// map.remove(0).unwrap(); // an empty slot stays empty
/// ```
#[derive(Debug, Clone)]
pub struct XskMap {
    fd: Arc<OwnedFd>,
    entries: u32,
}

impl XskMap {
    /// Makes a map with `entries` slots (queues `0..entries`).
    pub fn new(entries: u32) -> Result<XskMap, BpfError> {
        if entries == 0 {
            return Err(BpfError::ZeroEntries);
        }
        let mut attr = MapCreateAttr {
            map_type: MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: entries,
            map_name: name16(MAP_NAME),
            ..MapCreateAttr::default()
        };
        // SAFETY: a BPF_MAP_CREATE prefix without pointers.
        match unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) } {
            Ok(fd) => Ok(XskMap {
                fd: Arc::new(owned(fd)),
                entries,
            }),
            Err(libc::EINVAL) => Err(BpfError::Unsupported {
                feature: "XSKMAP (BPF_MAP_TYPE_XSKMAP: Linux 4.18+ built with CONFIG_XDP_SOCKETS)",
                errno: libc::EINVAL,
            }),
            Err(e) => Err(common("BPF_MAP_CREATE (XSKMAP)", e)),
        }
    }

    /// The number of slots: queues `0..entries()` can be inserted.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    fn check(&self, queue: u32) -> Result<(), BpfError> {
        if queue < self.entries {
            Ok(())
        } else {
            Err(BpfError::QueueOutOfRange {
                queue,
                entries: self.entries,
            })
        }
    }

    /// Puts the `AF_XDP` socket `xsk` into slot `queue`, replacing what was
    /// there. The socket must be bound (to the interface and queue whose
    /// frames it should get). The map refers to the socket, not to this
    /// descriptor: closing the socket empties the slot.
    pub fn insert(&self, queue: u32, xsk: BorrowedFd<'_>) -> Result<(), BpfError> {
        self.check(queue)?;
        let key = queue;
        let value = fd_u32(xsk);
        let mut attr = MapElemAttr {
            map_fd: fd_u32(self.fd.as_fd()),
            key: std::ptr::from_ref(&key) as u64,
            value: std::ptr::from_ref(&value) as u64,
            flags: 0, // BPF_ANY
            ..MapElemAttr::default()
        };
        // SAFETY: a BPF_MAP_UPDATE_ELEM prefix; `key` and `value` are 4-byte
        // locals (the map's key and value size) live across the call.
        match unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) } {
            Ok(_) => Ok(()),
            Err(e @ (libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EBADF | libc::ENOTCONN)) => {
                Err(BpfError::NotAnXsk { queue, errno: e })
            }
            Err(e) => Err(common("BPF_MAP_UPDATE_ELEM (XSKMAP)", e)),
        }
    }

    /// Empties slot `queue` (frames of that queue then pass to the stack).
    /// Emptying an empty slot is not an error.
    pub fn remove(&self, queue: u32) -> Result<(), BpfError> {
        self.check(queue)?;
        let key = queue;
        let mut attr = MapElemAttr {
            map_fd: fd_u32(self.fd.as_fd()),
            key: std::ptr::from_ref(&key) as u64,
            ..MapElemAttr::default()
        };
        // SAFETY: a BPF_MAP_DELETE_ELEM prefix; `key` is a 4-byte local live
        // across the call.
        match unsafe { sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) | Err(libc::ENOENT) => Ok(()),
            Err(e) => Err(common("BPF_MAP_DELETE_ELEM (XSKMAP)", e)),
        }
    }
}

impl AsFd for XskMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// ---------------------------------------------------------------------------
// XdpAction, XdpMode

/// What an XDP program decided for a frame (`enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XdpAction {
    /// `XDP_ABORTED` (0): dropped, with a trace event.
    Aborted,
    /// `XDP_DROP` (1): dropped.
    Drop,
    /// `XDP_PASS` (2): on to the network stack.
    Pass,
    /// `XDP_TX` (3): back out of the interface it came in on.
    Tx,
    /// `XDP_REDIRECT` (4): to another interface, CPU or `AF_XDP` socket.
    Redirect,
    /// A value no kernel defines (the kernel treats it as `XDP_ABORTED`).
    Other(u32),
}

impl XdpAction {
    /// The action for a program's return value.
    pub fn from_code(code: u32) -> XdpAction {
        match code {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            n => XdpAction::Other(n),
        }
    }

    /// The program return value for this action.
    pub fn code(self) -> u32 {
        match self {
            XdpAction::Aborted => 0,
            XdpAction::Drop => 1,
            XdpAction::Pass => 2,
            XdpAction::Tx => 3,
            XdpAction::Redirect => 4,
            XdpAction::Other(n) => n,
        }
    }
}

impl From<XdpAction> for u32 {
    fn from(a: XdpAction) -> u32 {
        a.code()
    }
}

impl fmt::Display for XdpAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdpAction::Aborted => f.write_str("XDP_ABORTED"),
            XdpAction::Drop => f.write_str("XDP_DROP"),
            XdpAction::Pass => f.write_str("XDP_PASS"),
            XdpAction::Tx => f.write_str("XDP_TX"),
            XdpAction::Redirect => f.write_str("XDP_REDIRECT"),
            XdpAction::Other(n) => write!(f, "XDP action {n}"),
        }
    }
}

/// Where on the receive path the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): after the kernel made an skb,
    /// on any device (veth, loopback, ...); `AF_XDP` then works in copy mode.
    Skb,
    /// Native XDP (`XDP_FLAGS_DRV_MODE`): in the driver, before an skb
    /// exists; needs driver support (veth has it), allows zero copy where
    /// the driver supports that too.
    Driver,
}

impl XdpMode {
    fn flags(self) -> u32 {
        match self {
            XdpMode::Skb => XDP_FLAGS_SKB_MODE,
            XdpMode::Driver => XDP_FLAGS_DRV_MODE,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdpMode::Skb => f.write_str("SKB (generic)"),
            XdpMode::Driver => f.write_str("driver (native)"),
        }
    }
}

// ---------------------------------------------------------------------------
// RedirectProgram

/// The loaded program `bpf_redirect_map(&map, ctx->rx_queue_index,
/// XDP_PASS)`: queue `q`'s frames go to the socket in slot `q` of its map,
/// or on to the stack while that slot is empty.
///
/// ```no_run
/// // Needs root (CAP_BPF + CAP_NET_ADMIN).
/// use pktmem::net::bpf::{RedirectProgram, XdpAction, XskMap};
///
/// # fn main() -> Result<(), pktmem::net::bpf::BpfError> {
/// let map = XskMap::new(1)?;
/// let prog = RedirectProgram::load(&map)?;
/// drop(map); // the program keeps the map
/// assert_eq!(prog.map().entries(), 1);
/// assert_eq!(prog.test_run(&[0xff; 60])?, XdpAction::Pass);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedirectProgram {
    fd: OwnedFd,
    map: XskMap,
}

impl RedirectProgram {
    /// Loads the program over `map`. On a verifier rejection the error
    /// carries the verifier's log.
    pub fn load(map: &XskMap) -> Result<RedirectProgram, BpfError> {
        let fd = load_xdp(&redirect_insns(map.fd.as_raw_fd()))?;
        Ok(RedirectProgram {
            fd,
            map: map.clone(),
        })
    }

    /// The map the program redirects into.
    pub fn map(&self) -> &XskMap {
        &self.map
    }

    /// The program's kernel id (as `bpftool prog` and `ip link` show it).
    pub fn id(&self) -> Result<u32, BpfError> {
        let mut info = ProgInfo::default();
        obj_info(
            self.fd.as_fd(),
            &mut info,
            "BPF_OBJ_GET_INFO_BY_FD (program)",
        )?;
        Ok(info.id)
    }

    /// Runs the program once on `frame` in the kernel
    /// (`BPF_PROG_TEST_RUN`, as if it arrived on queue 0 of the loopback
    /// device) and returns its decision. Nothing is sent or received, and
    /// a redirect goes nowhere.
    ///
    /// Frames of 14 (an Ethernet header) to 3520 bytes (a 4 KiB page less
    /// the kernel's XDP headroom and tail room) are taken: longer ones the
    /// kernel would split into fragments, which this program (not marked
    /// for fragments) never sees on a real interface.
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, BpfError> {
        self.run(frame, None)
    }

    /// Like [`test_run`](Self::test_run), as if `frame` arrived on receive
    /// queue `queue` of interface `ifindex`: the program then picks slot
    /// `queue` of its map.
    ///
    /// ```no_run
    /// // Needs root; interface 2 with at least two receive queues.
    /// use pktmem::net::bpf::{RedirectProgram, XdpAction, XskMap};
    ///
    /// # fn main() -> Result<(), pktmem::net::bpf::BpfError> {
    /// let prog = RedirectProgram::load(&XskMap::new(2)?)?;
    /// assert_eq!(prog.test_run_on(&[0; 64], 2, 1)?, XdpAction::Pass); // slot 1 empty
    /// # Ok(()) }
    /// ```
    pub fn test_run_on(
        &self,
        frame: &[u8],
        ifindex: u32,
        queue: u32,
    ) -> Result<XdpAction, BpfError> {
        self.run(frame, Some((ifindex, queue)))
    }

    fn run(&self, frame: &[u8], on: Option<(u32, u32)>) -> Result<XdpAction, BpfError> {
        let max = test_frame_max();
        if !(TEST_FRAME_MIN..=max).contains(&frame.len()) {
            return Err(BpfError::FrameLength {
                len: frame.len(),
                min: TEST_FRAME_MIN,
                max,
            });
        }
        let len = frame.len() as u32;
        // The kernel wants the context's data window to be the whole frame.
        let ctx = on.map(|(ifindex, queue)| XdpMd {
            data_end: len,
            ingress_ifindex: ifindex,
            rx_queue_index: queue,
            ..XdpMd::default()
        });
        let mut attr = TestRunAttr {
            prog_fd: fd_u32(self.fd.as_fd()),
            data_size_in: len,
            data_in: frame.as_ptr() as u64,
            repeat: 1,
            ..TestRunAttr::default()
        };
        if let Some(ctx) = &ctx {
            attr.ctx_size_in = size_of::<XdpMd>() as u32;
            attr.ctx_in = std::ptr::from_ref(ctx) as u64;
        }
        // SAFETY: a BPF_PROG_TEST_RUN prefix; `data_in` points to
        // `data_size_in` readable bytes of `frame` and `ctx_in` (when set)
        // to `ctx_size_in` bytes of `ctx`, both live across the call; no
        // output buffers are given (data_out, ctx_out are null).
        match unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) } {
            Ok(_) => Ok(XdpAction::from_code(attr.retval)),
            Err(e @ (libc::EOPNOTSUPP | ENOTSUPP)) => Err(BpfError::Unsupported {
                feature: "BPF_PROG_TEST_RUN for XDP (Linux 4.12+)",
                errno: e,
            }),
            Err(libc::ENODEV) if on.is_some() => Err(BpfError::NoSuchDevice {
                ifindex: on.map_or(0, |o| o.0),
            }),
            Err(libc::EINVAL) if on.is_some() => {
                let (ifindex, queue) = on.unwrap_or_default();
                Err(BpfError::NoSuchQueue { ifindex, queue })
            }
            Err(e) => Err(common("BPF_PROG_TEST_RUN (XDP)", e)),
        }
    }

    /// Attaches the program to interface `ifindex` in `mode`; it stays
    /// attached while the returned link lives.
    pub fn attach(&self, ifindex: u32, mode: XdpMode) -> Result<XdpLink, BpfError> {
        let mut attr = LinkCreateAttr {
            prog_fd: fd_u32(self.fd.as_fd()),
            target_ifindex: ifindex,
            attach_type: ATTACH_TYPE_XDP,
            flags: mode.flags(),
        };
        // SAFETY: a BPF_LINK_CREATE prefix without pointers.
        match unsafe { sys_bpf(BPF_LINK_CREATE, &mut attr) } {
            Ok(fd) => Ok(XdpLink {
                fd: owned(fd),
                ifindex,
                mode,
            }),
            Err(libc::EBUSY | libc::EEXIST) => Err(BpfError::Busy { ifindex, mode }),
            Err(libc::ENODEV) => Err(BpfError::NoSuchDevice { ifindex }),
            // The kernel says EINVAL both for a missing device and for an
            // attach it does not know; ask which.
            Err(libc::EINVAL) if !interface_exists(ifindex) => {
                Err(BpfError::NoSuchDevice { ifindex })
            }
            Err(e @ libc::EINVAL) => Err(BpfError::Unsupported {
                feature: "XDP through BPF links (BPF_LINK_CREATE with BPF_XDP: Linux 5.9+)",
                errno: e,
            }),
            Err(e @ libc::EOPNOTSUPP) => Err(BpfError::Unsupported {
                feature: match mode {
                    XdpMode::Driver => {
                        "native (driver-mode) XDP in this interface's driver \
                         (attach in XdpMode::Skb instead)"
                    }
                    XdpMode::Skb => "generic (SKB-mode) XDP on this interface",
                },
                errno: e,
            }),
            Err(e) => Err(common("BPF_LINK_CREATE (XDP)", e)),
        }
    }
}

impl AsFd for RedirectProgram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Loads the program, with the verifier log into `log` when given.
fn prog_load(insns: &[Insn], log: Option<&mut [u8]>) -> Result<OwnedFd, i32> {
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        prog_name: name16(PROG_NAME),
        ..ProgLoadAttr::default()
    };
    // SAFETY: a BPF_PROG_LOAD prefix; `insns` points to `insn_cnt` live
    // instructions, `license` to a NUL-terminated static string, and
    // `log_buf` (when non-null) to `log_size` writable bytes borrowed for
    // the call.
    unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) }.map(owned)
}

/// Loads an XDP program: first without a log (nothing to allocate on
/// success), then, if the kernel refused, again with one to say why.
fn load_xdp(insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    const CALL: &str = "BPF_PROG_LOAD (XDP)";
    let first = match prog_load(insns, None) {
        Ok(fd) => return Ok(fd),
        Err(libc::EPERM) => return Err(BpfError::NotPermitted { call: CALL }),
        Err(e) => e,
    };
    let mut log = vec![0u8; LOG_SIZE];
    match prog_load(insns, Some(&mut log)) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).into_owned();
            if !text.trim().is_empty() {
                return Err(BpfError::Verifier { log: text });
            }
            Err(match first {
                libc::EINVAL => BpfError::Unsupported {
                    feature: "XDP programs (BPF_PROG_TYPE_XDP: Linux 4.8+)",
                    errno: libc::EINVAL,
                },
                _ => common(CALL, e),
            })
        }
    }
}

/// Fills `info` (a `bpf_*_info` prefix) for the object behind `fd`.
fn obj_info<T>(fd: BorrowedFd<'_>, info: &mut T, call: &'static str) -> Result<(), BpfError> {
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(fd),
        info_len: size_of::<T>() as u32,
        info: std::ptr::from_mut(info) as u64,
    };
    // SAFETY: a BPF_OBJ_GET_INFO_BY_FD prefix; `info` points to `info_len`
    // writable bytes of a #[repr(C)] info prefix, live across the call.
    match unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) } {
        Ok(_) => Ok(()),
        Err(e) => Err(common(call, e)),
    }
}

/// The largest frame `BPF_PROG_TEST_RUN` takes for XDP in one buffer: a
/// page less the XDP headroom (256) and the aligned `skb_shared_info`
/// (320 on 64-bit).
fn test_frame_max() -> usize {
    // SAFETY: sysconf has no memory preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .unwrap_or(4096)
        .saturating_sub(256 + 320)
}

fn interface_exists(ifindex: u32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has IF_NAMESIZE bytes, as if_indextoname requires.
    !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null()
}

// ---------------------------------------------------------------------------
// XdpLink

/// A program attached to an interface; dropping it detaches the program.
///
/// ```no_run
/// // Needs root and a network namespace to play in (here a veth pair).
/// use pktmem::net::bpf::{BpfError, RedirectProgram, XdpMode, XskMap};
/// use pktmem::net::netns::VethPair;
///
/// let veth = VethPair::create().unwrap();
/// let prog = RedirectProgram::load(&XskMap::new(1).unwrap()).unwrap();
/// let link = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();
/// // One program per interface:
/// assert!(matches!(prog.attach(veth.host_ifindex(), XdpMode::Skb), Err(BpfError::Busy { .. })));
/// drop(link);
/// let again = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();
/// assert_eq!(again.ifindex(), veth.host_ifindex());
/// ```
#[derive(Debug)]
pub struct XdpLink {
    fd: OwnedFd,
    ifindex: u32,
    mode: XdpMode,
}

impl XdpLink {
    /// The interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode it is attached in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The link's kernel id (as `bpftool link` shows it).
    pub fn id(&self) -> Result<u32, BpfError> {
        let mut info = LinkInfo::default();
        obj_info(self.fd.as_fd(), &mut info, "BPF_OBJ_GET_INFO_BY_FD (link)")?;
        Ok(info.id)
    }
}

impl AsFd for XdpLink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for XdpLink {
    fn drop(&mut self) {
        // Detach explicitly, so the program goes even if the descriptor was
        // duplicated (a dup, or a child process after fork); closing the
        // last descriptor (by OwnedFd) would detach it too.
        let mut attr = LinkDetachAttr {
            link_fd: fd_u32(self.fd.as_fd()),
        };
        // SAFETY: a BPF_LINK_DETACH prefix without pointers.
        let _ = unsafe { sys_bpf(BPF_LINK_DETACH, &mut attr) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_the_documented_bytes() {
        let insns = redirect_insns(0x0403_0201);
        // SAFETY: Insn is #[repr(C)], 8 bytes without padding; six of them
        // are 48 initialised bytes.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(insns.as_ptr().cast::<u8>(), size_of_val(&insns)) };
        let want: [u8; 48] = [
            0x61, 0x12, 0x10, 0, 0, 0, 0, 0, // r2 = *(u32 *)(r1 + 16)
            0x18, 0x11, 0, 0, 1, 2, 3, 4, // r1 = map fd
            0, 0, 0, 0, 0, 0, 0, 0, // (second slot)
            0xb7, 0x03, 0, 0, 2, 0, 0, 0, // r3 = 2
            0x85, 0, 0, 0, 0x33, 0, 0, 0, // call 51
            0x95, 0, 0, 0, 0, 0, 0, 0, // exit
        ];
        assert_eq!(bytes, want);
    }

    #[test]
    fn a_rejected_program_brings_the_verifier_log() {
        // `exit` with r0 never written: the verifier refuses to read it.
        match load_xdp(&[insn(0x95, 0, 0, 0, 0)]) {
            Err(BpfError::Verifier { log }) => {
                assert!(log.contains("R0"), "{log}");
                let e = BpfError::Verifier { log };
                assert!(e.to_string().contains("verifier rejected"), "{e}");
            }
            Err(e @ BpfError::NotPermitted { .. }) => eprintln!("SKIP: {e}"),
            Err(e) => panic!("an invalid program: {e}"),
            Ok(_) => panic!("an invalid program was loaded"),
        }
        // A 64-bit load of a map that is not there: refused with a log too.
        let mut bad = redirect_insns(-1);
        bad[1] = insn(0x18, 1, PSEUDO_MAP_FD, 0, -1);
        match load_xdp(&bad) {
            Err(BpfError::Verifier { log }) => assert!(!log.is_empty()),
            Err(e @ BpfError::NotPermitted { .. }) => eprintln!("SKIP: {e}"),
            other => panic!("a program over fd -1: {other:?}"),
        }
    }

    #[test]
    fn every_error_says_the_numbers_and_what_to_do() {
        let cases: Vec<(BpfError, &[&str])> = vec![
            (
                BpfError::Unsupported {
                    feature: "XSKMAP",
                    errno: libc::EINVAL,
                },
                &["XSKMAP", "os error 22"],
            ),
            (
                BpfError::NotPermitted {
                    call: "BPF_PROG_LOAD",
                },
                &["BPF_PROG_LOAD", "CAP_BPF", "CAP_NET_ADMIN", "root"],
            ),
            (
                BpfError::Verifier {
                    log: "R0 !read_ok\n".into(),
                },
                &["verifier", "R0 !read_ok"],
            ),
            (
                BpfError::Busy {
                    ifindex: 7,
                    mode: XdpMode::Driver,
                },
                &["interface 7", "driver", "XdpLink", "xdp off"],
            ),
            (BpfError::NoSuchDevice { ifindex: 99 }, &["index 99"]),
            (
                BpfError::NoSuchQueue {
                    ifindex: 3,
                    queue: 5,
                },
                &["interface 3", "queue 5"],
            ),
            (BpfError::ZeroEntries, &["at least one slot"]),
            (
                BpfError::QueueOutOfRange {
                    queue: 4,
                    entries: 4,
                },
                &["queue 4", "0..4"],
            ),
            (
                BpfError::NotAnXsk {
                    queue: 2,
                    errno: libc::ENOTSOCK,
                },
                &["slot 2", "AF_XDP", "os error 88"],
            ),
            (
                BpfError::FrameLength {
                    len: 9000,
                    min: 14,
                    max: 3520,
                },
                &["9000", "14..=3520"],
            ),
            (
                BpfError::Sys {
                    call: "BPF_LINK_CREATE",
                    err: io::Error::from_raw_os_error(libc::ENOMEM),
                },
                &["BPF_LINK_CREATE", "os error 12"],
            ),
        ];
        for (e, words) in cases {
            let text = e.to_string();
            for w in words {
                assert!(text.contains(w), "{text:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn actions_round_trip() {
        for code in 0..8 {
            assert_eq!(XdpAction::from_code(code).code(), code);
        }
        assert_eq!(XdpAction::from_code(4), XdpAction::Redirect);
        assert_eq!(u32::from(XdpAction::Pass), 2);
    }

    #[test]
    fn names_fit_and_are_terminated() {
        assert_eq!(&name16(MAP_NAME)[..MAP_NAME.len()], MAP_NAME);
        assert_eq!(name16(PROG_NAME)[15], 0);
    }
}

//! Veth pairs with one end in a network namespace of their own: the set-up
//! tests and examples need to exercise kernel packet rings (`AF_PACKET`,
//! `AF_XDP`) on this machine without touching its real interfaces.
//!
//! [`VethPair::create`] makes a namespace, a veth pair, moves one end into
//! the namespace, gives both ends an IPv4 address and brings them up (IPv6
//! off, so the kernel sends no router solicitations onto the link).
//! Dropping the guard deletes the namespace, which deletes the pair; pairs
//! left by a process that died without dropping its guard (SIGKILL) are
//! removed by the next `create` (even when a live process has its pid
//! now: the name holds the process's start time too). Names are picked so
//! that concurrent processes never take (or delete) each other's. [`VethPair::in_namespace`] runs a closure
//! on a thread that has joined the namespace (to send from the far end).
//!
//! The interfaces are made with `ip` (iproute2), as an administrator would.
//! Without the privilege for it (`CAP_NET_ADMIN`, `CAP_SYS_ADMIN`),
//! `create` returns [`NetnsError::NotPermitted`], which a program can
//! report and skip on.

use std::ffi::CString;
use std::fmt;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace this module makes
/// (`<prefix><pid>-<process start>-<n>`).
const PREFIX: &str = "pktmem-";

/// A veth pair whose far end lives in a network namespace of its own; both
/// are removed when the guard is dropped.
///
/// ```no_run
/// use pktmem::net::netns::VethPair;
/// let veth = match VethPair::create() {
///     Ok(v) => v,
///     Err(e) => { eprintln!("skipping: {e}"); return; }
/// };
/// println!("{} ({}) <-> {} in {}", veth.host_ifname(), veth.host_addr(),
///          veth.peer_ifname(), veth.namespace());
/// let sock = veth.in_namespace(|| std::net::UdpSocket::bind("0.0.0.0:0").map(|s| s.local_addr()));
/// assert!(sock.is_ok());
/// ```
#[derive(Debug)]
pub struct VethPair {
    ns: String,
    host_if: String,
    peer_if: String,
    host_ifindex: u32,
    host_mac: [u8; 6],
    peer_mac: [u8; 6],
    host_addr: Ipv4Addr,
    peer_addr: Ipv4Addr,
}

/// Why a veth pair could not be made or used.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetnsError {
    /// The process lacks the privilege (root, or `CAP_NET_ADMIN` and
    /// `CAP_SYS_ADMIN`).
    NotPermitted {
        /// The command that was refused.
        command: String,
    },
    /// The `ip` tool (iproute2) is not installed.
    NoIpTool,
    /// A command failed for another reason.
    Command {
        /// The command.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A system call failed.
    Sys {
        /// The call.
        call: &'static str,
        /// Its error.
        err: std::io::Error,
    },
}

impl fmt::Display for NetnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsError::NotPermitted { command } => write!(
                f,
                "`{command}` was refused: making network namespaces and veth pairs needs root \
                 (CAP_NET_ADMIN and CAP_SYS_ADMIN)"
            ),
            NetnsError::NoIpTool => write!(
                f,
                "the `ip` tool (iproute2) is not installed: `apt-get install iproute2`"
            ),
            NetnsError::Command { command, stderr } => {
                write!(f, "`{command}` failed: {}", stderr.trim())
            }
            NetnsError::Sys { call, err } => write!(f, "{call}: {err}"),
        }
    }
}

impl std::error::Error for NetnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetnsError::Sys { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Runs `ip <args>`.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NetnsError::NoIpTool
        } else {
            NetnsError::Sys {
                call: "spawn ip",
                err: e,
            }
        }
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        return Err(NetnsError::NotPermitted { command });
    }
    Err(NetnsError::Command { command, stderr })
}

/// Parses `link/ether aa:bb:..` out of `ip link show` output.
fn parse_mac(show: &str) -> Option<[u8; 6]> {
    let rest = show.split("link/ether ").nth(1)?;
    let mut mac = [0u8; 6];
    let mut parts = rest.split_whitespace().next()?.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

/// Whether `e` says a name is taken (`ip` reports `EEXIST` so).
fn exists_error(e: &NetnsError) -> bool {
    matches!(e, NetnsError::Command { stderr, .. } if stderr.contains("File exists"))
}

/// When process `pid` started (clock ticks after boot, `/proc/<pid>/stat`
/// field 22), if it is alive: with its pid, what tells a process from a
/// later one that reuses the pid.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (in parentheses, which may hold
    // anything): field 3 onwards; the start time is field 22.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether namespace `name` was left by a process of this module that is
/// gone. Names are `<prefix><pid>-<start>-<n>` (`start`: the process's
/// start time, so a later process reusing the pid is told apart); older
/// ones `<prefix><pid>-<n>`, gone with the pid only.
fn is_stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.split('-');
    let (Some(pid), Some(second), third) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), second.parse::<u64>()) else {
        return false;
    };
    match third.map(str::parse::<u64>) {
        // `<pid>-<start>-<n>`: stale unless that very process lives.
        Some(Ok(_)) if parts.next().is_none() => second.parse().ok() != start_ticks(pid),
        // `<pid>-<n>`.
        None => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

/// Deletes namespaces of this module whose process is gone (or whose pid
/// a later process reuses).
fn remove_stale() {
    if start_ticks(std::process::id()).is_none() {
        // No /proc to tell by: every process would look gone.
        return;
    }
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if is_stale(name) {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Names tried before `create` gives up on a taken one.
const NAME_TRIES: u32 = 32;

impl VethPair {
    /// Makes a namespace, a veth pair with one end in it, addresses
    /// `10.<a>.<b>.1/30` (here) and `.2` (there), and brings both ends up.
    /// On any failure, what was made is removed again.
    pub fn create() -> Result<VethPair, NetnsError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        remove_stale();
        let pid = std::process::id();
        let start = start_ticks(pid).unwrap_or(0);
        // A namespace of this name exists only if a process with this pid
        // and start made it (ours never repeat a name): one in another pid
        // namespace, never ours to delete; the next name.
        let mut tries = 0;
        let (ns, n) = loop {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let ns = format!("{PREFIX}{pid}-{start}-{n}");
            match ip(&["netns", "add", &ns]) {
                Ok(_) => break (ns, n),
                Err(e) if exists_error(&e) && tries + 1 < NAME_TRIES => tries += 1,
                Err(e) => return Err(e),
            }
        };
        // From here on the guard removes the namespace (and the pair with it).
        let mut pair = VethPair {
            ns,
            host_if: String::new(),
            peer_if: String::new(),
            host_ifindex: 0,
            host_mac: [0; 6],
            peer_mac: [0; 6],
            host_addr: Ipv4Addr::UNSPECIFIED,
            peer_addr: Ipv4Addr::UNSPECIFIED,
        };
        pair.add_link(pid, n)?;
        pair.plumb()?;
        Ok(pair)
    }

    /// Makes the veth pair, named (and addressed) from a tag of `pid` and
    /// `n`; a name another process's pair has (tags of different pids can
    /// meet) is never touched: the next tag is tried.
    fn add_link(&mut self, pid: u32, n: u32) -> Result<(), NetnsError> {
        let mut tag = (pid.wrapping_mul(31).wrapping_add(n)) % 100_000;
        let mut tries = 0;
        loop {
            // Interface names are at most 15 bytes: `pkh` and the tag.
            let (h, p) = (format!("pkh{tag}"), format!("pkp{tag}"));
            match ip(&["link", "add", &h, "type", "veth", "peer", "name", &p]) {
                Ok(_) => {
                    // A /30 in 10.0.0.0/8 picked from the tag (one per pair).
                    let base = 0x0a00_0000u32 | (tag << 4);
                    self.host_addr = Ipv4Addr::from(base | 1);
                    self.peer_addr = Ipv4Addr::from(base | 2);
                    // The guard deletes the host end (only now: ours), as
                    // long as the name has this index.
                    self.host_ifindex = ifindex(&h).inspect_err(|_| {
                        let _ = ip(&["link", "del", &h]);
                    })?;
                    self.host_if = h;
                    self.peer_if = p;
                    return Ok(());
                }
                Err(e) if exists_error(&e) && tries + 1 < NAME_TRIES => {
                    tries += 1;
                    // A stride prime to 100,000: a run of taken tags (one
                    // process's pairs) is left at once.
                    tag = (tag + 7_919) % 100_000;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn plumb(&mut self) -> Result<(), NetnsError> {
        let (ns, h, p) = (
            self.ns.as_str(),
            self.host_if.as_str(),
            self.peer_if.as_str(),
        );
        ip(&["link", "set", p, "netns", ns])?;
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{h}/disable_ipv6"), "1");
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        let disable = format!("net.ipv6.conf.{p}.disable_ipv6=1");
        let _ = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-q", "-w", &disable])
            .output();
        ip(&["addr", "add", &format!("{}/30", self.host_addr), "dev", h])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/30", self.peer_addr),
            "dev",
            p,
        ])?;
        ip(&["link", "set", h, "up"])?;
        ip(&["-n", ns, "link", "set", p, "up"])?;
        self.host_mac = parse_mac(&ip(&["link", "show", h])?).unwrap_or_default();
        self.peer_mac = parse_mac(&ip(&["-n", ns, "link", "show", p])?).unwrap_or_default();
        Ok(())
    }

    /// The namespace's name (as `ip netns list` shows it).
    pub fn namespace(&self) -> &str {
        &self.ns
    }
    /// The end in this process's namespace.
    pub fn host_ifname(&self) -> &str {
        &self.host_if
    }
    /// Its interface index (for `bind`, XDP attach).
    pub fn host_ifindex(&self) -> u32 {
        self.host_ifindex
    }
    /// The end inside the namespace.
    pub fn peer_ifname(&self) -> &str {
        &self.peer_if
    }
    /// The host end's MAC address.
    pub fn host_mac(&self) -> [u8; 6] {
        self.host_mac
    }
    /// The namespace end's MAC address.
    pub fn peer_mac(&self) -> [u8; 6] {
        self.peer_mac
    }
    /// The host end's IPv4 address.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }
    /// The namespace end's IPv4 address.
    pub fn peer_addr(&self) -> Ipv4Addr {
        self.peer_addr
    }

    /// Runs `f` on a new thread that has joined the namespace, and returns
    /// what it returns (sockets made there live in the namespace).
    pub fn in_namespace<R, F>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::scope(|s| {
            s.spawn(move || {
                enter(&path)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Spawns a thread that joins the namespace and runs `f` there.
    pub fn spawn_in_namespace<R, F>(&self, f: F) -> std::thread::JoinHandle<Result<R, NetnsError>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            enter(&path)?;
            Ok(f())
        })
    }
}

/// The index of interface `name` (of this process's namespace).
fn ifindex(name: &str) -> Result<u32, NetnsError> {
    let c = CString::new(name).map_err(|_| NetnsError::Command {
        command: "if_nametoindex".into(),
        stderr: "interface name has a NUL".into(),
    })?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(NetnsError::Sys {
            call: "if_nametoindex",
            err: std::io::Error::last_os_error(),
        }),
        i => Ok(i),
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: &str) -> Result<(), NetnsError> {
    let file = std::fs::File::open(path).map_err(|err| NetnsError::Sys {
        call: "open netns",
        err,
    })?;
    // SAFETY: `file` is an open namespace fd; setns affects only this thread.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetnsError::Sys {
            call: "setns",
            err: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting the namespace deletes the far end and with it the pair
        // (once nothing holds the namespace); the host end is deleted too,
        // in case something does. Only a host end this guard made: a
        // `create` that failed before has none.
        let _ = ip(&["netns", "del", &self.ns]);
        // Still ours only if the name still has our index: once the pair
        // is gone another process's pair may take the name (interface
        // indexes are not reused soon).
        if !self.host_if.is_empty() && ifindex(&self.host_if).ok() == Some(self.host_ifindex) {
            let _ = ip(&["link", "del", &self.host_if]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_mac_from_ip_link_show() {
        let show = "5: pkh1@if4: <BROADCAST> mtu 1500\n    link/ether 0a:1b:2c:3d:4e:5f brd ff:ff:ff:ff:ff:ff";
        assert_eq!(parse_mac(show), Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]));
        assert_eq!(parse_mac("no mac here"), None);
    }
}

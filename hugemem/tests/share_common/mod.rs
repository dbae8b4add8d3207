//! Helpers of the `share_*` tests: a peer process (the test binary
//! re-executed, never a fork) driven over its stdin/stdout, a guard that
//! kills and reaps it, the page map, and snapshots of `/proc/self/maps`
//! and `/proc/self/fd`.
//!
//! Not every test file uses every helper, hence the `dead_code` allowances.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use pktmem_hugemem::share::{Attachment, Backoff, Placement};

/// The environment variables the peer reads.
pub const ENV_SOCK: &str = "PKTMEM_SHARE_SOCK";
pub const ENV_ROLE: &str = "PKTMEM_SHARE_ROLE";
pub const ENV_PLACE: &str = "PKTMEM_SHARE_PLACEMENT";
pub const ENV_OCCUPY: &str = "PKTMEM_SHARE_OCCUPY";
pub const ENV_RETRY: &str = "PKTMEM_SHARE_RETRY";

/// A provider whose memory may be exported (raw-pointer chunks only).
pub fn exportable_provider() -> pktmem_hugemem::Provider {
    pktmem_hugemem::Provider::builder()
        .exportable()
        .quiet(true)
        .build()
        .unwrap()
}

/// Says on the test's stderr (not captured) that a check was skipped.
pub fn skip(what: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "SKIP: {what}");
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A socket path unique to this process and `tag`.
pub fn sock_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("pktmem-share-{}-{tag}.sock", std::process::id()))
}

/// The physical address behind `va` (mapped and touched), from
/// `/proc/self/pagemap`; `None` without the frame (not root).
pub fn pagemap_pa(va: usize) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/pagemap").ok()?;
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, (va / 4096 * 8) as u64).ok()?;
    let e = u64::from_le_bytes(b);
    let pfn = e & ((1 << 55) - 1);
    (e >> 63 == 1 && pfn != 0).then(|| pfn * 4096 + (va % 4096) as u64)
}

/// `/proc/self/maps`, with adjacent anonymous mappings merged into one
/// range whatever their protections (a malloc arena moves the line between
/// its used and reserved parts as it grows), and the heap's end left out.
/// A leaked reservation or table still shows: a new range, or a merged
/// range that grew.
pub fn maps() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut out: Vec<String> = Vec::new();
    let mut anon: Option<(u64, u64)> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (lo, hi) = fields[0].split_once('-').unwrap();
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).unwrap(),
            u64::from_str_radix(hi, 16).unwrap(),
        );
        if fields.len() <= 5 {
            anon = match anon {
                Some((start, end)) if end == lo => Some((start, hi)),
                Some((start, end)) => {
                    out.push(format!("{start:x}-{end:x} anon"));
                    Some((lo, hi))
                }
                None => Some((lo, hi)),
            };
            continue;
        }
        if let Some((start, end)) = anon.take() {
            out.push(format!("{start:x}-{end:x} anon"));
        }
        if !line.ends_with("[heap]") {
            out.push(line.to_string());
        }
    }
    if let Some((s, e)) = anon {
        out.push(format!("{s:x}-{e:x} anon"));
    }
    out
}

/// The open fds of this process.
pub fn fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string());
            format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.unwrap_or_default()
            )
        })
        .collect();
    v.sort();
    // The directory listing's own fd differs from call to call.
    v.retain(|l| !l.contains("/proc/") || !l.contains("/fd"));
    v
}

/// A peer process: killed and reaped when dropped (also when the test
/// panics).
pub struct Peer {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// What the peer said when it started: "attached ..." or "error ...".
    pub hello: String,
}

impl Peer {
    /// Runs `entry` (the `#[ignore]`d peer test of the calling test binary)
    /// in a new process with `env`.
    pub fn spawn(entry: &str, env: &[(&str, String)]) -> Peer {
        let mut p = Peer::start(entry, env);
        p.wait_hello();
        p
    }

    /// Waits for the peer's first line (into `hello`).
    pub fn wait_hello(&mut self) -> &str {
        self.hello = self.next_line(Duration::from_secs(30));
        &self.hello
    }

    /// As [`spawn`](Self::spawn), without waiting for the first line.
    pub fn start(entry: &str, env: &[(&str, String)]) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            entry,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the peer");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness may have printed "test share_peer ... " first.
                if let Some(at) = line.find("@@ ") {
                    if tx.send(line[at + 3..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Peer {
            child: Some(child),
            stdin,
            lines: rx,
            hello: String::new(),
        }
    }

    fn next_line(&mut self, t: Duration) -> String {
        match self.lines.recv_timeout(t) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => panic!("the peer said nothing for {t:?}"),
            Err(RecvTimeoutError::Disconnected) => "eof".to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a command; the lines of its answer (up to "end").
    pub fn cmd(&mut self, c: &str) -> Vec<String> {
        let stdin = self.stdin.as_mut().expect("peer stdin");
        writeln!(stdin, "{c}").unwrap();
        stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let l = self.next_line(Duration::from_secs(30));
            if l == "end" || l == "eof" {
                return out;
            }
            out.push(l);
        }
    }

    /// Sends a signal to the peer.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child, which is not reaped yet.
        let r = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid());
    }

    /// Stops the peer (SIGSTOP) and waits until every thread of it is stopped.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap();
            let all_stopped = tasks.filter_map(Result::ok).all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T'))
            });
            if all_stopped {
                return;
            }
            assert!(
                std::time::Instant::now() < end,
                "peer {} did not stop",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Tells the peer to detach and exit; its exit status.
    pub fn quit(mut self) -> std::process::ExitStatus {
        let _ = self.cmd("quit");
        self.stdin = None;
        self.child.take().unwrap().wait().unwrap()
    }

    /// Kills with SIGKILL and reaps.
    pub fn kill(mut self) {
        let mut c = self.child.take().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "@@ {s}");
    let _ = out.flush();
}

/// The peer's side: attaches as the environment says, then answers
/// commands from stdin until `quit` or EOF. Does nothing when not run by
/// a parent test.
// One arm per command of the little protocol.
#[allow(clippy::too_many_lines)]
pub fn peer_main() {
    let Ok(sock) = std::env::var(ENV_SOCK) else {
        return; // run by hand with --ignored: nothing to do
    };
    let role = std::env::var(ENV_ROLE).unwrap_or_else(|_| "worker".into());
    let placement = match std::env::var(ENV_PLACE).as_deref() {
        Ok("relocate") => Placement::Relocate,
        _ => Placement::SameVaIfFree,
    };
    // Ranges to occupy before attaching (a VA the exporter uses, taken here).
    let mut occupied = Vec::new();
    if let Ok(occ) = std::env::var(ENV_OCCUPY) {
        for r in occ.split(';').filter(|s| !s.is_empty()) {
            let (va, len) = r.split_once(':').unwrap();
            let va = usize::from_str_radix(va, 16).unwrap();
            let len = usize::from_str_radix(len, 16).unwrap();
            // SAFETY: a fresh PROT_NONE mapping that replaces nothing.
            let p = unsafe {
                libc::mmap(
                    va as *mut _,
                    len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST)
            {
                // Something of this process sits there already (under
                // AddressSanitizer, its allocator's regions): taken anyway,
                // which is what the test needs.
                continue;
            }
            assert_eq!(p as usize, va, "occupy {va:#x}+{len:#x}");
            occupied.push((va, len));
        }
    }
    let mut builder = Attachment::builder(&role).placement(placement);
    if std::env::var(ENV_RETRY).is_ok() {
        builder = builder.retry(Backoff {
            deadline: Some(Duration::from_secs(20)),
            ..Backoff::default()
        });
    }
    let a = match builder.connect(&sock) {
        Ok(a) => a,
        Err(e) => {
            say(&format!("error {e}"));
            return;
        }
    };
    say(&format!(
        "attached {} {} {}",
        a.role_slot(),
        a.generation(),
        a.same_va()
    ));
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["pages"] => {
                let mut pages = Vec::new();
                a.walk_pages(|p| pages.push(*p));
                for p in pages {
                    // Touch (a read), then ask the page map.
                    // SAFETY: a mapped page of the attachment, read by raw pointer.
                    let first = unsafe { (p.local_va as *const u64).read_volatile() };
                    let pa = pagemap_pa(p.local_va);
                    // Translation must agree with the walk.
                    let local = a.to_local(p.exp_va, p.len).map(|l| l.as_ptr() as usize);
                    let back = a.to_exporter(p.local_va as *const u8);
                    let iova = a.iova(p.exp_va + 123).map(|i| i.0 - 123);
                    let ok = local == Some(p.local_va)
                        && back == Some(p.exp_va)
                        && iova == p.iova.map(|i| i.0);
                    say(&format!(
                        "page {} {:x} {:x} {:x} {} {} {:x} {}",
                        p.list,
                        p.exp_va,
                        p.local_va,
                        p.len,
                        p.iova.map_or("-".into(), |i| format!("{:x}", i.0)),
                        pa.map_or("-".into(), |x| format!("{x:x}")),
                        first,
                        ok
                    ));
                }
            }
            ["placement"] => {
                for l in a.placement() {
                    say(&format!(
                        "place {} {:x} {:x} {:x} {:x} {} {}",
                        l.list,
                        l.page_size,
                        l.exporter_base,
                        l.local_base,
                        l.reserve,
                        l.mapped_pages,
                        l.same_va
                    ));
                }
            }
            ["write", va, v] => {
                let va = u64::from_str_radix(va, 16).unwrap();
                let v = u64::from_str_radix(v, 16).unwrap();
                match a.to_local(va, 8) {
                    Some(l) => {
                        // Mapped (checked just now), written by raw pointer;
                        // the callers give 8-aligned addresses.
                        #[allow(clippy::cast_ptr_alignment)]
                        let word = l.as_ptr().cast::<u64>();
                        // SAFETY: as above.
                        unsafe { word.write_volatile(v) };
                        say("ok");
                    }
                    None => say("unmapped"),
                }
            }
            ["has", va, len] => {
                let va = u64::from_str_radix(va, 16).unwrap();
                let len = usize::from_str_radix(len, 16).unwrap();
                say(if a.to_local(va, len).is_some() {
                    "yes"
                } else {
                    "no"
                });
            }
            ["taken", va, len] => {
                // What in this process overlaps [va, va + len), if anything.
                let va = u64::from_str_radix(va, 16).unwrap();
                let len = u64::from_str_radix(len, 16).unwrap();
                let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                let hit = maps.lines().find(|l| {
                    let r = l.split_whitespace().next().unwrap();
                    let (lo, hi) = r.split_once('-').unwrap();
                    let (lo, hi) = (
                        u64::from_str_radix(lo, 16).unwrap(),
                        u64::from_str_radix(hi, 16).unwrap(),
                    );
                    lo < va + len && va < hi
                });
                say(&hit.map_or("free".to_string(), |l| format!("taken {l}")));
            }
            ["lookup", name] => match a.lookup(name) {
                Some(v) => say(&format!("val {}", String::from_utf8_lossy(&v))),
                None => say("none"),
            },
            ["state"] => say(&format!(
                "state {} {} {} {:?}",
                a.generation(),
                a.is_connected(),
                a.same_va(),
                a.last_error()
            )),
            ["quit"] => {
                drop(a);
                for (va, len) in occupied {
                    // SAFETY: our own PROT_NONE mapping from above.
                    unsafe { libc::munmap(va as *mut _, len) };
                }
                say("end");
                return;
            }
            _ => say(&format!("unknown {line}")),
        }
        say("end");
    }
}

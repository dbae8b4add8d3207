//! Process plumbing: the peer is a separate exec of a binary (never a
//! fork of this process), watched by a guard that SIGKILLs and reaps it on
//! drop; its stdout is read line by line on a thread (echoed with a prefix,
//! and kept for the caller to parse); the socket lives in a fresh directory
//! that is removed again.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A spawned peer process. Dropping it SIGKILLs the process (if it still
/// runs) and reaps it, so no child outlives its guard, also on a panic.
#[derive(Debug)]
pub struct PeerChild {
    child: Child,
    status: Option<ExitStatus>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl PeerChild {
    /// Spawns `cmd` with its stdout piped (each line echoed as
    /// `  [label] line` when `echo`) and stderr inherited. The child gets
    /// SIGKILL when the spawning thread dies (`PR_SET_PDEATHSIG`), so even
    /// a killed parent leaves nothing running.
    pub fn spawn(mut cmd: Command, label: &str, echo: bool) -> std::io::Result<PeerChild> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes async-signal-safe calls (prctl, getppid), touching no
        // memory of the parent's allocator or locks.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl took effect.
                if libc::getppid() == 1 {
                    return Err(std::io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let out = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            let label = label.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        println!("  [{label}] {line}");
                    }
                    lines
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                }
            })
        };
        Ok(PeerChild {
            child,
            status: None,
            lines,
            reader: Some(reader),
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the child and reaps it.
    pub fn sigkill(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        // An already exited (not reaped) child makes kill a no-op success.
        self.child.kill()?;
        let s = self.child.wait()?;
        self.status = Some(s);
        Ok(s)
    }

    /// Whether it has exited (reaping it if so).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The stdout lines read so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The stdout lines, complete: waits for the pipe to close (the child
    /// exited), at most `timeout`.
    pub fn final_lines(&mut self, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        while self.reader.as_ref().is_some_and(|r| !r.is_finished()) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.reader.as_ref().is_some_and(JoinHandle::is_finished) {
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
        }
        self.lines()
    }

    /// What follows `prefix` in the first line that has it (see
    /// [`find_line`]).
    pub fn line(&self, prefix: &str) -> Option<String> {
        find_line(&self.lines(), prefix).map(str::to_string)
    }
}

impl Drop for PeerChild {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            // The pipe closes with the child (or with the namespace's last
            // process when the child was `unshare -f`'s).
            let _ = r.join();
        }
    }
}

/// What follows `prefix` in the first of `lines` that has it at its start
/// or after a space (a test harness may print its own words before the
/// child's first line).
pub fn find_line<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        l.strip_prefix(prefix).or_else(|| {
            l.find(&format!(" {prefix}"))
                .map(|at| &l[at + 1 + prefix.len()..])
        })
    })
}

/// Parses `key=value` words of a line into a lookup.
#[derive(Debug, Default)]
pub struct Kv(Vec<(String, String)>);

impl Kv {
    /// Splits `line` at spaces; words without `=` are skipped.
    pub fn parse(line: &str) -> Kv {
        Kv(line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// The value of `key` as a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number (0 when absent or not a number).
    pub fn num(&self, key: &str) -> u64 {
        self.str(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// A fresh directory (mode 0700) for the socket; removed with what is in it
/// on drop.
#[derive(Debug)]
pub struct SocketDir {
    dir: PathBuf,
}

impl SocketDir {
    /// Makes `$TMPDIR/pktmem-<what>-<pid>-<n>`.
    pub fn new(what: &str) -> std::io::Result<SocketDir> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        for n in 0..1000u32 {
            let dir = base.join(format!("pktmem-{what}-{pid}-{n}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(SocketDir { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temp directory name"))
    }

    /// The socket's path in it.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("export.sock")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Pins the calling thread to `cpu`; false if the kernel refused.
pub fn pin(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is the empty set; the calls get valid
    // pointers to it and its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The CPUs the calling thread may run on.
pub fn affinity() -> Vec<usize> {
    // SAFETY: as in `pin`; the set is read only after the kernel filled it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

//! The system calls of sharing, in one place: `SOCK_SEQPACKET` sockets,
//! `SCM_RIGHTS`, peer credentials, pidfds, eventfds, `poll`, `fstat`, and
//! the peer's mappings (reservations at a fixed address, shared file maps).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Most fds a received message may carry before the rest are dropped by
/// the kernel (`MSG_CTRUNC`); the protocol allows far fewer.
const CMSG_FDS: usize = 16;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Wraps a fresh fd returned by a syscall.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by the kernel to us and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A connected pair of `SOCK_SEQPACKET` sockets, close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two ints into `fds`.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both fds were just created for us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A Unix socket address: a filesystem path or an abstract name.
pub(crate) fn sockaddr(
    path: &[u8],
    abstract_name: bool,
) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let start = usize::from(abstract_name);
    // A path needs its NUL terminator; an abstract name its leading NUL.
    if path.is_empty() || start + path.len() >= addr.sun_path.len() || path.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket address of {} bytes (1..={} without NUL bytes)",
                path.len(),
                addr.sun_path.len() - 1 - start
            ),
        ));
    }
    for (i, b) in path.iter().enumerate() {
        addr.sun_path[start + i] = *b as libc::c_char;
    }
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let len = base + start + path.len() + usize::from(!abstract_name);
    Ok((addr, len as libc::socklen_t))
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation.
    owned(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })
}

/// A listening `SOCK_SEQPACKET` socket bound to `addr`.
pub(crate) fn listen(addr: &(libc::sockaddr_un, libc::socklen_t)) -> io::Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    // SAFETY: `addr` is a valid sockaddr_un of the length given.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), std::ptr::from_ref(&addr.0).cast(), addr.1) })?;
    // SAFETY: plain syscall on our socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 64) })?;
    Ok(fd)
}

/// Connects a new `SOCK_SEQPACKET` socket to `addr`.
pub(crate) fn connect(addr: &(libc::sockaddr_un, libc::socklen_t)) -> io::Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of the length given.
        let r =
            unsafe { libc::connect(fd.as_raw_fd(), std::ptr::from_ref(&addr.0).cast(), addr.1) };
        if r == 0 {
            return Ok(fd);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Accepts one connection (close-on-exec); `None` when none is pending.
pub(crate) fn accept(listener: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    // SAFETY: accept4 with null address pointers writes nothing.
    let r = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR | libc::ECONNABORTED) => Ok(None),
            _ => Err(e),
        };
    }
    let fd = owned(r)?;
    // Accepted sockets are used blocking (with timeouts), like the others.
    set_nonblocking(&fd, false)?;
    Ok(Some(fd))
}

pub(crate) fn set_nonblocking(fd: &OwnedFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on our fd.
    let fl = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let fl = if on {
        fl | libc::O_NONBLOCK
    } else {
        fl & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl) })?;
    Ok(())
}

/// Sets the socket's send timeout (a peer that stops reading cannot block
/// the sender for longer).
pub(crate) fn set_send_timeout(fd: &OwnedFd, d: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(d.subsec_micros()),
    };
    // SAFETY: SO_SNDTIMEO reads one timeval.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            std::ptr::from_ref(&tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// What the kernel recorded for the other end of a Unix socket
/// (`SO_PEERCRED`): its pid (0 when it lives in a PID namespace we cannot
/// see), uid and gid.
fn peer_cred(fd: &OwnedFd) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes one ucred of at most `len` bytes into `cred`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut cred).cast(),
            &mut len,
        )
    })?;
    Ok(cred)
}

/// The pid the kernel recorded for the other end (`SO_PEERCRED`).
pub(crate) fn peer_pid(fd: &OwnedFd) -> io::Result<u32> {
    peer_cred(fd).map(|c| u32::try_from(c.pid).unwrap_or(0))
}

/// The effective uid of the socket's other end (`SO_PEERCRED`).
pub(crate) fn peer_uid(fd: &OwnedFd) -> io::Result<u32> {
    peer_cred(fd).map(|c| c.uid)
}

/// This process's effective uid.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// A pidfd of the process that made the socket's other end
/// (`SO_PEERPIDFD`, Linux 6.5+): race-free, unlike a pid. `None` when the
/// kernel has no such option or the peer is not visible here.
pub(crate) fn peer_pidfd(fd: &OwnedFd) -> Option<OwnedFd> {
    const SO_PEERPIDFD: libc::c_int = 77;
    let mut pidfd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `pidfd`.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            std::ptr::from_mut(&mut pidfd).cast(),
            &mut len,
        )
    };
    if r != 0 || pidfd < 0 {
        return None;
    }
    // SAFETY: a new fd the kernel just gave us.
    Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
}

/// Sends one message with `fds` attached (`SCM_RIGHTS`); never raises `SIGPIPE`.
pub(crate) fn send(fd: &OwnedFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    send_flags(fd, bytes, fds, false)
}

/// As [`send`]; with `dontwait`, a full socket is `WouldBlock` instead of a wait.
pub(crate) fn send_flags(
    fd: &OwnedFd,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    dontwait: bool,
) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // Room for the fds, as u64 words to keep the cmsg header aligned.
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        if space > std::mem::size_of_val(&cbuf) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the control buffer holds `space` bytes, so the first
        // header and its data fit (CMSG_FIRSTHDR/CMSG_DATA stay inside it).
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            // Written unaligned: no alignment is assumed.
            #[allow(clippy::cast_ptr_alignment)]
            let data = libc::CMSG_DATA(c).cast::<RawFd>();
            for (i, f) in fds.iter().enumerate() {
                data.add(i).write_unaligned(f.as_raw_fd());
            }
        }
    }
    loop {
        let flags = libc::MSG_NOSIGNAL | if dontwait { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `msg` points to live buffers described by their lengths.
        let r = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) };
        if r >= 0 {
            if r.unsigned_abs() != bytes.len() {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// One received message.
pub(crate) struct Received {
    /// Bytes received (0: the other end closed).
    pub len: usize,
    /// Every fd that came with it, owned (closed on drop).
    pub fds: Vec<OwnedFd>,
    /// The message was longer than the buffer (`MSG_TRUNC`).
    pub truncated: bool,
    /// Fds were dropped for lack of room (`MSG_CTRUNC`).
    pub fds_truncated: bool,
}

/// Receives one message into `buf` (fds close-on-exec). `dontwait`: return
/// `WouldBlock` instead of waiting.
pub(crate) fn recv(fd: &OwnedFd, buf: &mut [u8], dontwait: bool) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((CMSG_FDS * std::mem::size_of::<RawFd>()) as u32) };
    let mut cbuf = vec![0u64; (space as usize).div_ceil(8)];
    // SAFETY: msghdr is plain old data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len() * 8;
    let flags = libc::MSG_CMSG_CLOEXEC | if dontwait { libc::MSG_DONTWAIT } else { 0 };
    let n = loop {
        // SAFETY: `msg` describes live buffers of the lengths given.
        let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
        if r >= 0 {
            break r.unsigned_abs();
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_controllen` bytes of well-formed
    // headers; CMSG_FIRSTHDR/NXTHDR stay inside that length, and each
    // SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 fds that are
    // now ours (wrapped at once so every one is closed on any error).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data_len = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
                // Read unaligned: no alignment is assumed.
                #[allow(clippy::cast_ptr_alignment)]
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..data_len / std::mem::size_of::<RawFd>() {
                    let raw = data.add(i).read_unaligned();
                    if raw >= 0 {
                        fds.push(OwnedFd::from_raw_fd(raw));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Received {
        len: n,
        fds,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// A pidfd for `pid` (Linux 5.3), close-on-exec by definition.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pid <= 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned(r as libc::c_int)
}

/// Whether process `pid` exists (`kill(pid, 0)`): the fallback when no
/// pidfd could be had.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A fresh eventfd (close-on-exec, non-blocking).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain eventfd creation.
    owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Adds one to the eventfd's counter (wakes its poller).
pub(crate) fn eventfd_signal(fd: &OwnedFd) {
    let one = 1u64;
    // SAFETY: an eventfd write reads 8 bytes from `one`. A full counter
    // (EAGAIN) still leaves the fd readable, which is all we need.
    let _ = unsafe { libc::write(fd.as_raw_fd(), std::ptr::from_ref(&one).cast(), 8) };
}

/// Resets the eventfd's counter.
pub(crate) fn eventfd_drain(fd: &OwnedFd) {
    let mut v = 0u64;
    // SAFETY: an eventfd read writes 8 bytes into `v`; EAGAIN when zero.
    let _ = unsafe { libc::read(fd.as_raw_fd(), std::ptr::from_mut(&mut v).cast(), 8) };
}

/// `poll` on `fds` for at most `timeout` (`None`: for ever); EINTR is a
/// return with nothing ready.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ms = timeout.map_or(-1, |d| {
        libc::c_int::try_from(d.as_millis().max(u128::from(d > Duration::ZERO)))
            .unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `fds` is a live slice of pollfd of the length given.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(r.unsigned_abs() as usize)
}

pub(crate) fn pollfd(fd: &OwnedFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// What `fstat` says of a received fd: its size and block size.
pub(crate) fn fd_size(fd: &OwnedFd) -> io::Result<(u64, u64)> {
    // SAFETY: libc::stat is plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok((
        u64::try_from(st.st_size).unwrap_or(0),
        u64::try_from(st.st_blksize).unwrap_or(0),
    ))
}

/// Duplicates `fd` (close-on-exec).
pub(crate) fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd the caller keeps open; the new fd is ours.
    owned(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// Reserves `[addr, addr + len)` exactly (`MAP_FIXED_NOREPLACE`,
/// `PROT_NONE`); `Ok(false)` when something is mapped there already.
pub(crate) fn reserve_at(addr: usize, len: usize) -> io::Result<bool> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EEXIST) => Ok(false),
            _ => Err(e),
        };
    }
    if p as usize != addr {
        // A kernel before 4.17 took the flag as a hint and mapped elsewhere.
        // SAFETY: the mapping was just made by us and nothing uses it.
        unsafe { libc::munmap(p, len) };
        return Ok(false);
    }
    Ok(true)
}

/// Reserves `len` bytes anywhere, aligned to `align`.
pub(crate) fn reserve_anywhere(len: usize, align: usize) -> io::Result<usize> {
    crate::sys::reserve_va(len, align).map_err(|e| e.source)
}

/// Gives a reservation back.
///
/// # Safety
/// `[addr, addr + len)` is a reservation of the caller's (with whatever is
/// mapped in it) that no live reference points into.
pub(crate) unsafe fn release(addr: usize, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { crate::sys::release_va(addr, len) };
}

/// Maps `[off, off + len)` of `fd` shared, read-write and populated at
/// `addr`, replacing the reservation there.
///
/// # Safety
/// `[addr, addr + len)` lies inside a reservation of the caller's that no
/// live reference points into.
pub(crate) unsafe fn map_shared_fixed(
    addr: usize,
    len: usize,
    fd: &OwnedFd,
    off: u64,
    hole: &mut bool,
) -> io::Result<()> {
    let off =
        libc::off_t::try_from(off).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: MAP_FIXED replaces only the caller's own reservation.
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            off,
        )
    };
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        // The failed MAP_FIXED may have unmapped the range: reserve it again.
        // SAFETY: the same range, still the caller's.
        if unsafe { crate::sys::unmap_to_reserved(addr, len) }.is_err() {
            *hole = true;
        }
        return Err(e);
    }
    // Not inherited by a fork (F6): once this process exited, nothing
    // maps what it mapped, which is what the exporter's pidfd watch assumes.
    // SAFETY: advice on the mapping just made.
    if unsafe { libc::madvise(addr as *mut _, len, libc::MADV_DONTFORK) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: the same range, still the caller's.
        if unsafe { crate::sys::unmap_to_reserved(addr, len) }.is_err() {
            *hole = true;
        }
        return Err(e);
    }
    Ok(())
}

/// Puts `[addr, addr + len)` back to reserved.
///
/// # Safety
/// As [`map_shared_fixed`].
pub(crate) unsafe fn unmap_to_reserved(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the caller's contract.
    unsafe { crate::sys::unmap_to_reserved(addr, len) }.map_err(|e| e.source)
}

/// Anonymous zeroed memory of `len` bytes (`MAP_NORESERVE`: pages appear
/// when written), for per-page tables; unmapped with [`free_table`].
pub(crate) fn alloc_table(len: usize) -> io::Result<usize> {
    // SAFETY: a fresh anonymous mapping at an address the kernel chooses.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as usize)
}

/// Unmaps a table from [`alloc_table`].
///
/// # Safety
/// `(addr, len)` came from [`alloc_table`] and nothing references it any more.
pub(crate) unsafe fn free_table(addr: usize, len: usize) {
    // SAFETY: the caller's contract.
    unsafe { libc::munmap(addr as *mut _, len) };
}

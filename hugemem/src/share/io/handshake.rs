//! The exporter's side of a peer's messages: Hello (refuse, or grant and
//! send the initial snapshot) and Ack.

use super::{lock, Close, Io, Kind, Message, RefuseReason, RoleState, VERSION};
use crate::share::sys;
use crate::IovaMode;

impl Io {
    pub(super) fn readable(&mut self, id: u64) {
        let Some(c) = self.conns.iter().find(|c| c.id == id) else {
            return;
        };
        let Some(sock) = &c.sock else { return };
        let r = match sys::recv(sock, &mut self.buf, true) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => return self.close(id, Close::Lost),
        };
        if r.len == 0 && r.fds.is_empty() {
            return self.close(id, Close::Lost);
        }
        // Peers send no fds: any that came are closed with `r`.
        if r.truncated || !r.fds.is_empty() || r.fds_truncated {
            return self.close(id, Close::Lost);
        }
        let granted = c.role.is_some();
        let msg = Message::decode(&self.buf[..r.len]);
        match msg {
            Ok(Message::Hello {
                min_version,
                max_version,
                pid,
                role,
            }) if !granted => self.hello(id, min_version, max_version, pid, &role),
            Err(crate::share::error::ProtocolError::Text {
                kind: Kind::Hello,
                field: "role",
                ..
            }) if !granted => {
                self.refuse(
                    id,
                    RefuseReason::BadRole,
                    "role must be 1..=64 of [A-Za-z0-9._-]",
                );
            }
            Ok(Message::Ack { seq }) if granted => self.ack(id, seq),
            Ok(Message::Bye) => self.close(id, Close::Bye),
            _ => self.close(id, Close::Lost),
        }
    }

    pub(super) fn refuse(&mut self, id: u64, reason: RefuseReason, text: &str) {
        let m = Message::Refuse {
            reason,
            ours_min: VERSION,
            ours_max: VERSION,
            text: text.to_string(),
        };
        if let Some(c) = self.conn(id) {
            if let Some(s) = &c.sock {
                let _ = sys::send_flags(s, &m.encode(), &[], true);
            }
        }
        self.conns.retain(|c| c.id != id);
    }

    pub(super) fn hello(&mut self, id: u64, min_v: u16, max_v: u16, hello_pid: u32, role: &str) {
        if !self.conn(id).is_some_and(|c| c.allowed) {
            return self.refuse(
                id,
                RefuseReason::NotAllowed,
                "this user may not attach (ExportBuilder::allow_uid)",
            );
        }
        if !(min_v..=max_v).contains(&VERSION) {
            return self.refuse(
                id,
                RefuseReason::Version,
                &format!("asked for {min_v}..={max_v}, we speak {VERSION}..={VERSION}"),
            );
        }
        let live = self
            .conns
            .iter()
            .filter(|c| c.sock.is_some() && c.role.is_some())
            .count();
        if live >= self.sh.max_peers {
            return self.refuse(
                id,
                RefuseReason::TooManyPeers,
                &format!("{live} peers attached, at most {}", self.sh.max_peers),
            );
        }
        let Ok(r) = self.sh.role_get_or_create(role) else {
            return self.refuse(id, RefuseReason::BadRole, "no role slot left");
        };
        let (pid, verified) = {
            let Some(c) = self.conn(id) else { return };
            // A socket pair made here names this process, a peer in a PID
            // namespace we cannot see is 0: its Hello says who it is,
            // unverified (never watched for exit).
            if !c.verified {
                c.pid = hello_pid;
            }
            (c.pid, c.verified)
        };
        let holder = *lock(&r.state);
        match holder {
            RoleState::Attached { pid: p } => {
                return self.refuse(id, RefuseReason::RoleTaken, &format!("held by pid {p}"))
            }
            RoleState::Gone { pid: p } if p != pid => {
                return self.refuse(
                    id,
                    RefuseReason::RoleTaken,
                    &format!("held by pid {p}, which has not exited"),
                )
            }
            _ => {}
        }
        let pidfd = if verified {
            // SO_PEERPIDFD names the very process; pidfd_open of the
            // kernel's pid is the fallback before Linux 6.5.
            match self.conn(id).and_then(|c| c.peer_pidfd.take()) {
                Some(fd) => Some(fd),
                None => sys::pidfd_open(pid).ok(),
            }
        } else {
            None
        };
        // Every fd-backed list with pages, announced to the other peers
        // (this one is not granted yet: it gets them in its snapshot).
        let mut pages: Vec<crate::PageInfo> = Vec::new();
        self.sh.provider.walk_pages(|p| {
            if !p.external {
                pages.push(*p);
            }
        });
        for p in &pages {
            let _ = self.list_of(p.va);
        }
        let generation = r.grant(pid);
        {
            let Some(c) = self.conn(id) else { return };
            c.role = Some(r.clone());
            c.pidfd = pidfd;
        }
        self.snapshot(id, r.slot, generation, &pages);
    }

    /// The initial snapshot: Welcome, List × n, Map × k, Publish × m, Ready.
    pub(super) fn snapshot(
        &mut self,
        id: u64,
        slot: u16,
        generation: u64,
        pages: &[crate::PageInfo],
    ) {
        let welcome = Message::Welcome {
            version: VERSION,
            role_slot: slot,
            generation,
            exporter_pid: self.own_pid,
            iova_mode: u8::from(self.sh.provider.iova_mode() == IovaMode::Va),
            lists: self.lists.len() as u16,
        };
        // The lists and pages are sent whatever the queue cap.
        if let Some(c) = self.conn(id) {
            c.allowance = usize::MAX;
        }
        if !self.send(id, &welcome, None) {
            return;
        }
        for li in 0..self.lists.len() {
            if !self.send_list(id, li) {
                return;
            }
        }
        // Mapped pages, in runs, less those being released.
        let mut runs: Vec<(usize, usize, usize)> = Vec::new(); // (list index, first, count)
        for p in pages {
            let Some(li) = self
                .lists
                .iter()
                .position(|l| p.va.wrapping_sub(l.base) < l.reserve)
            else {
                continue;
            };
            let l = &self.lists[li];
            let i = (p.va - l.base) >> l.shift;
            if self
                .releases
                .iter()
                .any(|r| r.list == l.id && (r.first..r.first + r.count).contains(&i))
            {
                continue;
            }
            match runs.last_mut() {
                Some((rl, f, c)) if *rl == li && *f + *c == i => *c += 1,
                _ => runs.push((li, i, 1)),
            }
        }
        for (li, first, count) in runs {
            if self.send_map(id, li, first, count).is_none() {
                return;
            }
        }
        // The lists and pages may queue (bounded by the provider's size);
        // the directory (up to MAX_ENTRIES × MAX_PAYLOAD) is produced as
        // the socket drains, then Ready.
        let names: std::collections::VecDeque<String> =
            lock(&self.sh.dir).keys().cloned().collect();
        let Some(c) = self.conn(id) else { return };
        c.allowance = c.out_bytes;
        c.snap = Some(names);
        self.pump(id);
    }

    pub(super) fn ack(&mut self, id: u64, seq: u64) {
        let Some(c) = self.conn(id) else { return };
        if seq <= c.acked || seq >= c.next_seq {
            return self.close(id, Close::Lost);
        }
        c.acked = seq;
        while c.pending.front().is_some_and(|&(s, _)| s <= seq) {
            c.pending.pop_front();
        }
        for w in &mut self.map_waits {
            w.waiting.retain(|&(cid, s)| cid != id || s > seq);
        }
        self.map_waits.retain(|w| {
            let open = !w.waiting.is_empty();
            if !open {
                w.done.set();
            }
            open
        });
        for r in &mut self.releases {
            r.acks.retain(|&(cid, s)| cid != id || s > seq);
        }
        self.finish_releases();
    }
}

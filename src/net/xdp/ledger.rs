//! The socket's accounting: the kernel's counters, ours, and the frame
//! ledger checked after every burst.

use std::fmt;

/// The kernel's counters for the socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KernelStats {
    /// Packets dropped for reasons other than the two below.
    pub rx_dropped: u64,
    /// Invalid descriptors the kernel counted on the RX and fill rings
    /// (not all: on 6.18 a fill entry past the UMEM vanishes uncounted,
    /// which is why the socket only ever posts frame bases it checked).
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors (consumed, never completed).
    pub tx_invalid_descs: u64,
    /// Packets dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty.
    pub tx_ring_empty_descs: u64,
}

/// RX descriptors refused, by why ([`DescError`](super::DescError), plus frames the kernel
/// did not have).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadDescCounts {
    /// Base not a frame start.
    pub not_frame_start: u64,
    /// Base past the UMEM.
    pub outside_umem: u64,
    /// Packet inside the headroom.
    pub offset_below_headroom: u64,
    /// Packet past its frame's end.
    pub past_frame_end: u64,
    /// A frame the socket had not given the kernel.
    pub not_in_kernel: u64,
}

impl BadDescCounts {
    /// All refused descriptors.
    pub fn total(&self) -> u64 {
        self.not_frame_start
            + self.outside_umem
            + self.offset_below_headroom
            + self.past_frame_end
            + self.not_in_kernel
    }
}

/// The socket's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XskCounters {
    /// Packets received and handed out as mbufs.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// RX descriptors refused (none of them handed out).
    pub rx_bad: BadDescCounts,
    /// Frames posted to the fill ring.
    pub fill_posted: u64,
    /// Frames the fill ring had room for and the pool could not give
    /// (all in the application's hands or in flight).
    pub fill_shortfall: u64,
    /// Refills that came up short.
    pub fill_short_refills: u64,
    /// Packets sent by descriptor over their own frame (no copy).
    pub tx_zero_copy: u64,
    /// Packets copied into a fresh frame to be sent (not over this UMEM,
    /// or chains).
    pub tx_copied: u64,
    /// Packets dropped at TX: empty, or longer than a frame's room.
    pub tx_dropped: u64,
    /// Packets not taken because no frame was free for their copy (left
    /// with the caller).
    pub tx_no_frame: u64,
    /// TX completions matched to a frame in flight.
    pub tx_completed: u64,
    /// Completions that matched a frame in flight other than the oldest.
    pub completion_out_of_order: u64,
    /// Completions naming no frame in flight (ignored).
    pub completion_unknown: u64,
    /// `sendto` wake-ups made.
    pub tx_kicks: u64,
    /// Those that said "busy, again" (EAGAIN, EBUSY, ENOBUFS).
    pub tx_kick_busy: u64,
    /// Those that failed otherwise.
    pub tx_kick_errors: u64,
    /// `recvfrom` wake-ups made for the fill ring.
    pub rx_kicks: u64,
    /// Ledger checks made (one after each burst).
    pub ledger_checks: u64,
    /// Ledger checks that failed (see [`XskSocket::first_ledger_violation`](super::XskSocket::first_ledger_violation)).
    pub ledger_violations: u64,
}

/// Where every frame of the UMEM is, from [`XskSocket::ledger`](super::XskSocket::ledger).
///
/// `table` frames were given to the kernel for receiving: in the fill
/// ring, in the kernel's hands, or received into the RX ring and not yet
/// read; `fifo` frames were given to it for sending: in the TX ring, being
/// sent, or completed into the completion ring and not yet read. The rest
/// are `free` in the pool or with the application (`in_app`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ledger {
    /// Frames of the UMEM.
    pub total: usize,
    /// Frames free in the pool (its caches included).
    pub free: usize,
    /// Frames with the application (`total - free - table - fifo`).
    pub in_app: usize,
    /// Frames given to the kernel to receive into.
    pub table: usize,
    /// ... of which still in the fill ring.
    pub in_fill_ring: usize,
    /// ... of which received and waiting in the RX ring.
    pub in_rx_ring: usize,
    /// Frames given to the kernel to send (each once, however many of its
    /// packets are in flight: a frame and its clones sent together).
    pub fifo: usize,
    /// Descriptors still in the TX ring.
    pub in_tx_ring: usize,
    /// Completions waiting in the completion ring.
    pub in_completion_ring: usize,
}

impl Ledger {
    /// Frames with the kernel (to receive into and to send).
    pub fn in_kernel(&self) -> usize {
        self.table + self.fifo
    }

    /// Frames given to the kernel for receiving that it holds itself (taken
    /// from the fill ring, not yet in the RX ring; 0 while a frame shows in
    /// both rings, see [`check`](Self::check)).
    pub fn in_kernel_rx(&self) -> usize {
        self.table
            .saturating_sub(self.in_fill_ring + self.in_rx_ring)
    }

    /// Frames being sent (taken from the TX ring, not yet completed; 0
    /// while a frame shows in both rings).
    pub fn in_kernel_tx(&self) -> usize {
        self.fifo
            .saturating_sub(self.in_tx_ring + self.in_completion_ring)
    }

    /// Checks `in_kernel + in_app + free == total` with no frame counted
    /// twice (more frames free and with the kernel than the UMEM has).
    ///
    /// The per-ring figures are not part of the check: the kernel
    /// publishes a frame in the next ring (RX, completion) before it
    /// releases the slot it came from (fill, TX), so for a moment one
    /// frame shows in both.
    pub fn check(&self) -> Result<(), LedgerError> {
        if self.free + self.table + self.fifo + self.in_app != self.total {
            return Err(LedgerError {
                ledger: *self,
                what: "in_kernel + in_app + free != total (a frame counted twice)",
            });
        }
        Ok(())
    }
}

impl fmt::Display for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames: {} free, {} in app, {} in kernel (rx: {} fill ring + {} kernel + {} rx ring; \
             tx: {} tx ring + {} kernel + {} completion ring)",
            self.total,
            self.free,
            self.in_app,
            self.in_kernel(),
            self.in_fill_ring,
            self.in_kernel_rx(),
            self.in_rx_ring,
            self.in_tx_ring,
            self.in_kernel_tx(),
            self.in_completion_ring
        )
    }
}

/// A [`Ledger`] that does not add up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerError {
    /// The ledger.
    pub ledger: Ledger,
    /// What does not add up.
    pub what: &'static str,
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame ledger: {}: {}", self.what, self.ledger)
    }
}

impl std::error::Error for LedgerError {}

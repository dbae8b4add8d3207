//! The packets of the two-process example: real Ethernet/IPv4/UDP frames
//! (built and parsed with etherparse) whose UDP payload carries a flow tag,
//! the sender's generation, a sequence number and pattern bytes. Every
//! receiver checks the IPv4 header checksum, the UDP checksum (which covers
//! the payload) and every pattern byte.
//!
//! Four flows:
//!
//! ```text
//!  A  exporter allocs ──down──► peer checks, rewrites (headers swapped, pattern inverted)
//!     exporter checks ◄──up──── (flow ARep)
//!  B  peer allocs ──up──► exporter checks ──down (flow BEcho, same buffer)──► peer checks, frees
//!  Fin  exporter ──down──► peer (no more A) ──up──► exporter: every A the peer got is answered
//! ```

use std::net::Ipv4Addr;

use etherparse::{Ethernet2Slice, Ipv4Slice, PacketBuilder, UdpSlice};

/// First bytes of every payload.
pub const MAGIC: [u8; 4] = *b"PK2P";
/// UDP port of the exporter side.
pub const EXP_PORT: u16 = 47_100;
/// UDP port of the peer side.
pub const PEER_PORT: u16 = 47_101;
/// MAC of the exporter side.
pub const EXP_MAC: [u8; 6] = [0x02, 0x70, 0x6b, 0x00, 0x00, 0x01];
/// MAC of the peer side.
pub const PEER_MAC: [u8; 6] = [0x02, 0x70, 0x6b, 0x00, 0x00, 0x02];
/// IPv4 address of the exporter side.
pub const EXP_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// IPv4 address of the peer side.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Frame bytes before the UDP payload: Ethernet, IPv4 (no options), UDP.
pub const HDRS: usize = 14 + 20 + 8;
/// Payload bytes before the pattern: magic, flow, pad, len, seq, gen.
pub const PAYLOAD_HDR: usize = 4 + 1 + 1 + 2 + 8 + 4;
/// Longest frame built (a standard Ethernet frame without FCS).
pub const MAX_FRAME: usize = 1514;
/// TTL of a packet as its originator sends it.
pub const TTL: u8 = 64;

/// Which of the example's flows a packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Exporter → peer, to be answered.
    A,
    /// The peer's answer to an `A` packet (same buffer, rewritten).
    ARep,
    /// Peer → exporter, to be echoed.
    B,
    /// The exporter's echo of a `B` packet (same buffer, rewritten).
    BEcho,
    /// Exporter → peer: no more `A` packets; the peer answers with `FinRep`.
    Fin,
    /// Peer → exporter: every `A` before the `Fin` has been answered.
    FinRep,
}

impl Flow {
    fn tag(self) -> u8 {
        match self {
            Flow::A => 1,
            Flow::ARep => 2,
            Flow::B => 3,
            Flow::BEcho => 4,
            Flow::Fin => 5,
            Flow::FinRep => 6,
        }
    }

    fn from_tag(t: u8) -> Option<Flow> {
        Some(match t {
            1 => Flow::A,
            2 => Flow::ARep,
            3 => Flow::B,
            4 => Flow::BEcho,
            5 => Flow::Fin,
            6 => Flow::FinRep,
            _ => return None,
        })
    }

    /// Whether this flow travels exporter → peer (the down ring).
    pub fn is_down(self) -> bool {
        matches!(self, Flow::A | Flow::BEcho | Flow::Fin)
    }

    /// The pattern of a rewritten packet is the originator's, inverted.
    fn inverted(self) -> bool {
        matches!(self, Flow::ARep | Flow::BEcho | Flow::FinRep)
    }

    /// The flow that originated the packet (`A` for `ARep`, ...).
    fn origin(self) -> Flow {
        match self {
            Flow::ARep => Flow::A,
            Flow::BEcho => Flow::B,
            Flow::FinRep => Flow::Fin,
            f => f,
        }
    }
}

/// What a checked packet says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Its flow.
    pub flow: Flow,
    /// The originator's generation (0 for the exporter).
    pub gen: u32,
    /// The originator's sequence number in that flow.
    pub seq: u64,
    /// Whole frame length.
    pub frame_len: usize,
}

/// Pattern bytes in the payload of an originated packet of `flow` with
/// sequence number `seq`: 18 to 1,448 of them, varying with `seq` (frames
/// of 84 to 1,514 bytes).
pub fn pattern_len(flow: Flow, seq: u64) -> usize {
    let salt = if flow == Flow::B { 577 } else { 0 };
    18 + ((seq as usize).wrapping_mul(97) + salt) % (MAX_FRAME - HDRS - PAYLOAD_HDR - 18 + 1)
}

fn pattern(flow: Flow, gen: u32, seq: u64, i: usize) -> u8 {
    let salt: u8 = match flow.origin() {
        Flow::B => 0x5a,
        Flow::Fin => 0xf1,
        _ => 0x11,
    };
    (seq as u8)
        .wrapping_mul(31)
        .wrapping_add((i as u8).wrapping_mul(7))
        .wrapping_add(gen as u8)
        ^ salt
        ^ (i >> 8) as u8
}

/// The endpoints a packet of `flow` goes from and to: (src MAC, dst MAC,
/// src IP, dst IP, src port, dst port).
fn endpoints(flow: Flow) -> ([u8; 6], [u8; 6], Ipv4Addr, Ipv4Addr, u16, u16) {
    if flow.is_down() {
        (EXP_MAC, PEER_MAC, EXP_IP, PEER_IP, EXP_PORT, PEER_PORT)
    } else {
        (PEER_MAC, EXP_MAC, PEER_IP, EXP_IP, PEER_PORT, EXP_PORT)
    }
}

/// Builds the frame of a packet into `out` (cleared first). `ttl` is
/// [`TTL`] for an originated packet, one less for a rewritten one.
pub fn build(flow: Flow, gen: u32, seq: u64, out: &mut Vec<u8>) {
    let n = pattern_len(flow.origin(), seq);
    let mut payload = Vec::with_capacity(PAYLOAD_HDR + n);
    payload.extend_from_slice(&MAGIC);
    payload.push(flow.tag());
    payload.push(0);
    payload.extend_from_slice(&(n as u16).to_le_bytes());
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.extend_from_slice(&gen.to_le_bytes());
    let inv = if flow.inverted() { 0xff } else { 0 };
    payload.extend((0..n).map(|i| pattern(flow, gen, seq, i) ^ inv));
    let (smac, dmac, sip, dip, sport, dport) = endpoints(flow);
    let ttl = if flow.inverted() { TTL - 1 } else { TTL };
    let b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(sip.octets(), dip.octets(), ttl)
        .udp(sport, dport);
    out.clear();
    out.reserve(b.size(payload.len()));
    b.write(out, &payload)
        .expect("a frame of at most 1514 bytes into a Vec");
}

/// The frame that answers `m` (flow `A` → `ARep`, `B` → `BEcho`,
/// `Fin` → `FinRep`): headers swapped, TTL − 1, pattern inverted,
/// checksums recomputed. Same length as the original.
pub fn answer(m: &Meta, out: &mut Vec<u8>) -> Result<(), String> {
    let to = match m.flow {
        Flow::A => Flow::ARep,
        Flow::B => Flow::BEcho,
        Flow::Fin => Flow::FinRep,
        f => return Err(format!("a {f:?} packet is not answered")),
    };
    build(to, m.gen, m.seq, out);
    if out.len() != m.frame_len {
        return Err(format!(
            "answer of {} B to a frame of {} B",
            out.len(),
            m.frame_len
        ));
    }
    Ok(())
}

/// Checks a frame: Ethernet addresses, IPv4 header checksum, TTL, UDP ports
/// and checksum (over the payload), magic, length and every pattern byte.
pub fn check(frame: &[u8]) -> Result<Meta, String> {
    let eth =
        Ethernet2Slice::from_slice_without_fcs(frame).map_err(|e| format!("ethernet: {e}"))?;
    let ip = Ipv4Slice::from_slice(eth.payload_slice()).map_err(|e| format!("ipv4: {e}"))?;
    let iph = ip.header().to_header();
    if iph.calc_header_checksum() != ip.header().header_checksum() {
        return Err(format!(
            "IPv4 header checksum {:#06x}, computed {:#06x}",
            ip.header().header_checksum(),
            iph.calc_header_checksum()
        ));
    }
    let udp = UdpSlice::from_slice(ip.payload().payload).map_err(|e| format!("udp: {e}"))?;
    let p = udp.payload();
    let sum = udp
        .to_header()
        .calc_checksum_ipv4(&iph, p)
        .map_err(|e| format!("udp checksum: {e}"))?;
    if sum != udp.checksum() {
        return Err(format!(
            "UDP checksum {:#06x}, computed {sum:#06x} over {} payload bytes",
            udp.checksum(),
            p.len()
        ));
    }
    if p.len() < PAYLOAD_HDR || p[..4] != MAGIC {
        return Err(format!("payload of {} B without the magic", p.len()));
    }
    let flow = Flow::from_tag(p[4]).ok_or_else(|| format!("unknown flow tag {}", p[4]))?;
    let n = usize::from(u16::from_le_bytes([p[6], p[7]]));
    let seq = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    let gen = u32::from_le_bytes(p[16..20].try_into().expect("4 bytes"));
    let (smac, dmac, sip, dip, sport, dport) = endpoints(flow);
    let ttl = if flow.inverted() { TTL - 1 } else { TTL };
    if eth.source() != smac
        || eth.destination() != dmac
        || iph.source != sip.octets()
        || iph.destination != dip.octets()
        || udp.source_port() != sport
        || udp.destination_port() != dport
        || iph.time_to_live != ttl
    {
        return Err(format!(
            "{flow:?} packet {gen}/{seq}: addresses, ports or TTL ({}) not those of its direction",
            iph.time_to_live
        ));
    }
    if n != pattern_len(flow.origin(), seq) || p.len() != PAYLOAD_HDR + n {
        return Err(format!(
            "{flow:?} packet {gen}/{seq}: payload of {} B, expected {}",
            p.len(),
            PAYLOAD_HDR + pattern_len(flow.origin(), seq)
        ));
    }
    let inv = if flow.inverted() { 0xff } else { 0 };
    if let Some(i) = p[PAYLOAD_HDR..]
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern(flow, gen, seq, i) ^ inv)
    {
        return Err(format!(
            "{flow:?} packet {gen}/{seq}: payload byte {i} differs"
        ));
    }
    Ok(Meta {
        flow,
        gen,
        seq,
        frame_len: frame.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_answers() {
        let mut f = Vec::new();
        let mut r = Vec::new();
        for seq in [0, 1, 77, 1 << 40] {
            for flow in [Flow::A, Flow::B, Flow::Fin] {
                build(flow, 3, seq, &mut f);
                let m = check(&f).unwrap();
                assert_eq!((m.flow, m.gen, m.seq), (flow, 3, seq));
                answer(&m, &mut r).unwrap();
                let a = check(&r).unwrap();
                assert_eq!((a.gen, a.seq, a.frame_len), (3, seq, f.len()));
                assert_ne!(a.flow, flow);
            }
        }
        build(Flow::A, 0, 5, &mut f);
        let last = f.len() - 1;
        f[last] ^= 1;
        assert!(check(&f).is_err());
    }
}

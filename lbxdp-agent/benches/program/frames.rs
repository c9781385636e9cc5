//! The frames the program is timed on: Ethernet, IPv4 or IPv6, TCP, with
//! valid checksums (the program updates them incrementally, as on the wire).
use std::net::IpAddr;

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;
const IPPROTO_TCP: u8 = 6;

fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A TCP segment without payload from `src:sport` to `dst:dport`; both
/// addresses of one family.
pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Vec<u8> {
    let (s, d) = (octets(src), octets(dst));
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    if flags & TCP_ACK != 0 {
        seg[8..12].copy_from_slice(&0x0a0b_0c0du32.to_be_bytes());
    }
    seg[12] = 5 << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let pseudo = sum16(sum16(0, &s), &d) + u32::from(IPPROTO_TCP) + seg.len() as u32;
    let c = fold(sum16(pseudo, &seg));
    seg[16..18].copy_from_slice(&c.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + seg.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0a]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    if src.is_ipv4() {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, IPPROTO_TCP, 0, 0]);
        ip.extend_from_slice(&s);
        ip.extend_from_slice(&d);
        let c = fold(sum16(0, &ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
    } else {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        f.extend_from_slice(&[IPPROTO_TCP, 64]);
        f.extend_from_slice(&s);
        f.extend_from_slice(&d);
    }
    f.extend_from_slice(&seg);
    f
}

/// Source and destination (address, port) of a frame `tcp` made, as the
/// program left it; None for anything else.
pub fn endpoints(f: &[u8]) -> Option<((IpAddr, u16), (IpAddr, u16))> {
    let port = |at: usize| Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]));
    match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        0x0800 => {
            let a = |at: usize| -> Option<IpAddr> {
                let b: [u8; 4] = f.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            Some(((a(26)?, port(34)?), (a(30)?, port(36)?)))
        }
        0x86dd => {
            let a = |at: usize| -> Option<IpAddr> {
                let b: [u8; 16] = f.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            Some(((a(22)?, port(54)?), (a(38)?, port(56)?)))
        }
        _ => None,
    }
}

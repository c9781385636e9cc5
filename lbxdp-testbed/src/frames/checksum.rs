//! The Internet checksum (RFC 1071), computed from scratch over whole
//! headers and segments, so that it checks the program's incremental updates.
use super::{IPPROTO_TCP, IPPROTO_UDP};

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

/// The checksum of an IPv4 header or an ICMPv4 message: 0 when `data`
/// carries a valid one.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(0, data))
}

/// The checksum of an L4 segment with its pseudo-header (RFC 793, 768,
/// 8200; ICMPv6's too): 0 when `seg` carries a valid one.
pub fn l4_checksum(src: &[u8], dst: &[u8], proto: u8, seg: &[u8]) -> u16 {
    let s = sum16(sum16(0, src), dst) + u32::from(proto) + seg.len() as u32;
    fold(sum16(s, seg))
}

/// Fills in a TCP or UDP checksum when the segment is long enough to hold
/// one (a segment cut short is sent as it is).
pub(super) fn with_l4_checksum(src: &[u8], dst: &[u8], proto: u8, mut seg: Vec<u8>) -> Vec<u8> {
    let at = match proto {
        IPPROTO_TCP if seg.len() >= 20 => 16,
        IPPROTO_UDP if seg.len() >= 8 => 6,
        _ => return seg,
    };
    seg[at..at + 2].copy_from_slice(&[0, 0]);
    let mut c = l4_checksum(src, dst, proto, &seg);
    // UDP's 0 means "no checksum": a computed 0 is sent as its other form.
    if proto == IPPROTO_UDP && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's worked example (section 3): the sum of these words is
    /// 0xddf2, so the checksum is its complement.
    #[test]
    fn rfc1071_example() {
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
    }

    #[test]
    fn a_filled_in_checksum_verifies() {
        let (src, dst) = ([198, 19, 0, 10], [198, 18, 0, 2]);
        for (proto, seg) in [(IPPROTO_TCP, vec![7u8; 21]), (IPPROTO_UDP, vec![0u8; 8])] {
            let seg = with_l4_checksum(&src, &dst, proto, seg);
            assert_eq!(l4_checksum(&src, &dst, proto, &seg), 0, "proto {proto}");
        }
    }
}

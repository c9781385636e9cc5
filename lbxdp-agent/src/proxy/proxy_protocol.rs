//! The PROXY protocol header (`send-proxy`, `send-proxy-v2`), as specified in
//! HAProxy's doc/proxy-protocol.txt: the first bytes on the server connection
//! tell the server who the client is and which address it connected to.
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::config::ProxyProtocol;

/// The 12-byte signature that opens every v2 header.
pub const V2_SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// Both addresses in one family: the spec has no mixed-family form, so when
/// one side is IPv4 and the other IPv6 the IPv4 one is v4-mapped (HAProxy does
/// the same). A v4-mapped pair on both sides is written as plain IPv4.
fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |a: SocketAddr| match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    };
    let (s, d) = (canon(src), canon(dst));
    let to_v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if s.is_ipv4() == d.is_ipv4() {
        (s, d)
    } else {
        (to_v6(s), to_v6(d))
    }
}

/// v1, the text form: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
pub fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(src, dst);
    let proto = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!("PROXY {proto} {} {} {} {}\r\n", s.ip(), d.ip(), s.port(), d.port()).into_bytes()
}

/// v2, the binary form: signature, version 2 + PROXY command, TCP over
/// IPv4/IPv6, the address block length, then addresses and ports in network
/// order. No TLVs: HAProxy sends none for plain TCP unless asked to.
pub fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(src, dst);
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, command PROXY
    match (s.ip(), d.ip()) {
        (IpAddr::V4(si), IpAddr::V4(di)) => {
            out.push(0x11); // AF_INET, STREAM
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&si.octets());
            out.extend_from_slice(&di.octets());
        }
        (si, di) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            };
            let (si, di): (Ipv6Addr, Ipv6Addr) = (v6(si), v6(di));
            out.push(0x21); // AF_INET6, STREAM
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&si.octets());
            out.extend_from_slice(&di.octets());
        }
    }
    out.extend_from_slice(&s.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

/// The header a `server` line asks for.
pub fn header(version: ProxyProtocol, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    match version {
        ProxyProtocol::V1 => v1(src, dst),
        ProxyProtocol::V2 => v2(src, dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_matches_the_spec_examples() {
        // proxy-protocol.txt section 2.1: the longest TCP4 header.
        assert_eq!(
            v1(sa("255.255.255.255:65535"), sa("255.255.255.255:65535")),
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
        );
        assert_eq!(
            v1(sa("192.168.0.1:56324"), sa("192.168.0.11:443")),
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        );
        assert_eq!(
            v1(sa("[2001:db8::1]:1234"), sa("[2001:db8::2]:80")),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n"
        );
        // The spec's bound: at most 107 bytes.
        let longest = v1(
            sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
            sa("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
        );
        assert_eq!(longest.len(), 104);
        assert!(longest.len() <= 107);
    }

    #[test]
    fn v1_mixed_families_are_v4_mapped() {
        assert_eq!(
            v1(sa("10.0.0.1:1000"), sa("[2001:db8::2]:80")),
            b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 1000 80\r\n"
        );
        assert_eq!(
            v1(sa("[::ffff:10.0.0.1]:1000"), sa("10.0.0.2:80")),
            b"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n"
        );
    }

    #[test]
    fn v2_ipv4_layout() {
        let h = v2(sa("192.168.0.1:56324"), sa("192.168.0.11:443"));
        assert_eq!(h.len(), 16 + 12);
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0x00, 0x0C]);
        assert_eq!(&h[16..20], &[192, 168, 0, 1]);
        assert_eq!(&h[20..24], &[192, 168, 0, 11]);
        assert_eq!(&h[24..26], &56324u16.to_be_bytes());
        assert_eq!(&h[26..28], &443u16.to_be_bytes());
    }

    #[test]
    fn v2_ipv6_layout() {
        let h = v2(sa("[2001:db8::1]:1234"), sa("[2001:db8::2]:80"));
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0x00, 0x24]);
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(&h[16..32], &src.octets());
        assert_eq!(&h[48..50], &1234u16.to_be_bytes());
        assert_eq!(&h[50..52], &80u16.to_be_bytes());
    }
}

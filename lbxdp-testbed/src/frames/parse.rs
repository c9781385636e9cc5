//! Reading a frame back as the program left it, every checksum verified
//! from scratch: an error says which one is wrong, or what is cut short.
use std::net::IpAddr;

use anyhow::{Context as _, bail, ensure};

use super::{
    ETH_IP, ETH_IPV6, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
    checksum::{checksum, l4_checksum},
};

/// Where a TCP or UDP packet goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

impl Seen {
    /// ((source, port), (destination, port)).
    pub fn endpoints(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        ((self.src, self.sport), (self.dst, self.dport))
    }
}

/// What an ICMP error says: its outer addresses, type, the 4 bytes after
/// its checksum, and the quoted packet's (source, port, destination, port).
#[derive(Debug, PartialEq, Eq)]
pub struct IcmpSeen {
    pub outer: (IpAddr, IpAddr),
    pub kind: u8,
    pub rest: [u8; 4],
    pub inner: (IpAddr, u16, IpAddr, u16),
}

/// `len` bytes of `f` from `at`, or an error naming `what` was cut short.
fn take<'a>(f: &'a [u8], at: usize, len: usize, what: &str) -> anyhow::Result<&'a [u8]> {
    f.get(at..at + len)
        .with_context(|| format!("{what} cut short ({} bytes): {f:02x?}", f.len()))
}

fn be16(f: &[u8], at: usize, what: &str) -> anyhow::Result<u16> {
    let b = take(f, at, 2, what)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// The address in `b` (4 or 16 bytes, as `take` gave it).
fn addr(b: &[u8]) -> anyhow::Result<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Ok(IpAddr::from(a));
    }
    let a: [u8; 16] = b.try_into().context("an address of 4 or 16 bytes")?;
    Ok(IpAddr::from(a))
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Dissects a well-formed IPv4/IPv6 TCP/UDP frame (no IPv6 extension
/// headers) and checks the IPv4 header checksum and the L4 checksum (but an
/// IPv4 UDP datagram's checksum of 0, "none", as valid).
pub fn dissect(f: &[u8]) -> anyhow::Result<Seen> {
    let (src, dst, proto, l4) = match be16(f, 12, "Ethernet header")? {
        ETH_IP => {
            let ihl = usize::from(take(f, 14, 1, "IPv4 header")?[0] & 0x0f) * 4;
            let tot = usize::from(be16(f, 16, "IPv4 header")?);
            let header = take(f, 14, ihl, "IPv4 header")?;
            ensure!(checksum(header) == 0, "IPv4 header checksum invalid: {f:02x?}");
            (
                addr(&header[12..16])?,
                addr(&header[16..20])?,
                header[9],
                take(f, 14 + ihl, tot.saturating_sub(ihl), "IPv4 payload")?,
            )
        }
        ETH_IPV6 => {
            let plen = usize::from(be16(f, 18, "IPv6 header")?);
            let header = take(f, 14, 40, "IPv6 header")?;
            (
                addr(&header[8..24])?,
                addr(&header[24..40])?,
                header[6],
                take(f, 54, plen, "IPv6 payload")?,
            )
        }
        other => bail!("not IP: EtherType {other:#06x}"),
    };
    let name = match proto {
        IPPROTO_TCP => "TCP",
        IPPROTO_UDP => "UDP",
        other => bail!("neither TCP nor UDP: protocol {other}"),
    };
    let udp_v4_no_csum = proto == IPPROTO_UDP && src.is_ipv4() && take(l4, 6, 2, "UDP header")? == [0, 0];
    if !udp_v4_no_csum {
        ensure!(
            l4_checksum(&octets(src), &octets(dst), proto, l4) == 0,
            "{name} checksum invalid: {f:02x?}"
        );
    }
    Ok(Seen {
        src,
        dst,
        proto,
        sport: be16(l4, 0, name)?,
        dport: be16(l4, 2, name)?,
    })
}

/// Dissects an ICMP error quoting a TCP or UDP packet (no IPv6 extension
/// headers, no IPv4 options), checking the outer IPv4 header's, the ICMP
/// message's and the quoted IPv4 header's checksums.
pub fn dissect_icmp(f: &[u8]) -> anyhow::Result<IcmpSeen> {
    let port = |b: &[u8], at: usize| be16(b, at, "quoted L4 header");
    let (outer, msg) = if be16(f, 12, "Ethernet header")? == ETH_IPV6 {
        let (src, dst) = (take(f, 22, 16, "IPv6 header")?, take(f, 38, 16, "IPv6 header")?);
        let msg = f.get(54..).unwrap_or_default();
        ensure!(
            l4_checksum(src, dst, IPPROTO_ICMPV6, msg) == 0,
            "ICMPv6 checksum invalid: {f:02x?}"
        );
        ((addr(src)?, addr(dst)?), msg)
    } else {
        let header = take(f, 14, 20, "outer IPv4 header")?;
        ensure!(checksum(header) == 0, "outer IPv4 header checksum invalid: {f:02x?}");
        let msg = f.get(34..).unwrap_or_default();
        ensure!(checksum(msg) == 0, "ICMP checksum invalid: {f:02x?}");
        ((addr(&header[12..16])?, addr(&header[16..20])?), msg)
    };
    let head = take(msg, 0, 8, "ICMP header")?;
    let inner = &msg[8..];
    let quoted = if outer.0.is_ipv6() {
        let ip = take(inner, 0, 40, "quoted IPv6 header")?;
        (
            addr(&ip[8..24])?,
            port(inner, 40)?,
            addr(&ip[24..40])?,
            port(inner, 42)?,
        )
    } else {
        let ip = take(inner, 0, 20, "quoted IPv4 header")?;
        ensure!(checksum(ip) == 0, "quoted IPv4 header checksum invalid: {f:02x?}");
        (
            addr(&ip[12..16])?,
            port(inner, 20)?,
            addr(&ip[16..20])?,
            port(inner, 22)?,
        )
    };
    Ok(IcmpSeen {
        outer,
        kind: head[0],
        rest: [head[4], head[5], head[6], head[7]],
        inner: quoted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{
        CLIENT_PORT, CLIENT4, CLIENT6, IPPROTO_TCP, SERVERS4, SNAT4, TCP_ACK, VIP_PORT, VIP4, VIP6, icmp_error, syn4,
        syn6, tcp_frame, udp4, udp6,
    };

    #[test]
    fn built_frames_read_back_with_valid_checksums() {
        for (f, src, dst, proto) in [
            (syn4().frame(), CLIENT4.into(), VIP4.into(), IPPROTO_TCP),
            (udp4().frame(), CLIENT4.into(), VIP4.into(), IPPROTO_UDP),
            (syn6().frame(), CLIENT6.into(), VIP6.into(), IPPROTO_TCP),
            (udp6().frame(), CLIENT6.into(), VIP6.into(), IPPROTO_UDP),
        ] {
            let seen = dissect(&f).expect("a frame the builder made");
            assert_eq!(
                seen,
                Seen {
                    src,
                    dst,
                    proto,
                    sport: CLIENT_PORT,
                    dport: VIP_PORT,
                }
            );
        }
    }

    #[test]
    fn a_wrong_checksum_or_a_cut_frame_is_an_error() {
        let mut f = syn4().frame();
        f[14 + 8] -= 1; // the TTL, as a router would without fixing the checksum
        assert!(format!("{:#}", dissect(&f).unwrap_err()).contains("IPv4 header checksum invalid"));
        let mut f = syn6().frame();
        *f.last_mut().expect("a frame") ^= 1;
        assert!(format!("{:#}", dissect(&f).unwrap_err()).contains("TCP checksum invalid"));
        let f = syn4().frame();
        for len in [0, 13, 20, 14 + 20 + 3] {
            assert!(dissect(&f[..len]).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn icmp_errors_read_back() {
        let sent = tcp_frame(SNAT4.into(), 60000, SERVERS4[0].into(), 8080, TCP_ACK);
        let f = icmp_error(
            SERVERS4[1].into(),
            SNAT4.into(),
            3,
            4,
            [0, 0, 5, 0x78],
            &sent[14..14 + 28],
        );
        assert_eq!(
            dissect_icmp(&f).expect("an ICMP error the builder made"),
            IcmpSeen {
                outer: (SERVERS4[1].into(), SNAT4.into()),
                kind: 3,
                rest: [0, 0, 5, 0x78],
                inner: (SNAT4.into(), 60000, SERVERS4[0].into(), 8080),
            }
        );
        assert!(dissect_icmp(&f[..f.len() - 1]).is_err());
    }
}

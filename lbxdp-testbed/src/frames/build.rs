//! Frame builders: an Ethernet header, TCP and UDP segments, and IPv4 and
//! IPv6 packets around them with every checksum filled in. Each builder
//! makes exactly the bytes asked for, so a test can cut or bend them after.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    CLIENT_PORT, CLIENT4, CLIENT6, ETH_IP, ETH_IPV6, IP_DF, IPPROTO_FRAGMENT, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_TCP, IPPROTO_UDP, LB_MAC, PEER_MAC, TCP_ACK, TCP_SYN, VIP_PORT, VIP4, VIP6,
    checksum::{checksum, l4_checksum, with_l4_checksum},
};

/// An Ethernet header from the peer to the LB.
pub fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&LB_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A TCP segment (no options; an ACK number only with ACK set); its
/// checksum is filled in by the IP packet it goes into.
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    if flags & TCP_ACK != 0 {
        h[8..12].copy_from_slice(&0x0a0b_0c0du32.to_be_bytes());
    }
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A UDP datagram; its checksum is filled in by the IP packet it goes into.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An IPv4 packet in an Ethernet frame; fields public to be bent.
#[derive(Clone)]
pub struct V4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// IP options, a multiple of 4 bytes.
    pub options: Vec<u8>,
    /// Flags and fragment offset.
    pub frag: u16,
    /// The L4 segment; a TCP or UDP one gets its checksum filled in.
    pub seg: Vec<u8>,
}

impl V4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: Vec<u8>) -> Self {
        Self {
            src,
            dst,
            proto,
            options: Vec::new(),
            frag: IP_DF,
            seg,
        }
    }

    /// The frame. Panics if the options are not whole 4-byte words (the
    /// header length could not say how long they are).
    pub fn frame(&self) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0, "IPv4 options come in words");
        let ihl = 20 + self.options.len();
        let seg = with_l4_checksum(&self.src.octets(), &self.dst.octets(), self.proto, self.seg.clone());
        let mut f = eth(ETH_IP);
        f.push(0x40 | (ihl / 4) as u8);
        f.push(0);
        f.extend_from_slice(&((ihl + seg.len()) as u16).to_be_bytes());
        f.extend_from_slice(&0x1234u16.to_be_bytes());
        f.extend_from_slice(&self.frag.to_be_bytes());
        f.push(64);
        f.push(self.proto);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend_from_slice(&self.options);
        let c = checksum(&f[14..14 + ihl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&seg);
        f
    }
}

/// An IPv6 packet in an Ethernet frame; fields public to be bent.
#[derive(Clone)]
pub struct V6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// Extension headers (type, bytes); the builder fills in each one's next-header byte.
    pub ext: Vec<(u8, Vec<u8>)>,
    pub proto: u8,
    /// The L4 segment; a TCP or UDP one gets its checksum filled in.
    pub seg: Vec<u8>,
}

impl V6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, seg: Vec<u8>) -> Self {
        Self {
            src,
            dst,
            ext: Vec::new(),
            proto,
            seg,
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        let seg = with_l4_checksum(&self.src.octets(), &self.dst.octets(), self.proto, self.seg.clone());
        let mut exts = Vec::new();
        for (i, (_, bytes)) in self.ext.iter().enumerate() {
            let mut b = bytes.clone();
            if let Some(next) = b.first_mut() {
                *next = self.ext.get(i + 1).map_or(self.proto, |e| e.0);
            }
            exts.extend_from_slice(&b);
        }
        let mut f = eth(ETH_IPV6);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((exts.len() + seg.len()) as u16).to_be_bytes());
        f.push(self.ext.first().map_or(self.proto, |e| e.0));
        f.push(64);
        f.extend_from_slice(&self.src.octets());
        f.extend_from_slice(&self.dst.octets());
        f.extend_from_slice(&exts);
        f.extend_from_slice(&seg);
        f
    }
}

/// The frame of an IPv4 or IPv6 packet from `src` to `dst`. Panics if the
/// two are of different families: no packet has such addresses.
pub fn ip_frame(src: IpAddr, dst: IpAddr, proto: u8, seg: Vec<u8>) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => V4::new(s, d, proto, seg).frame(),
        (IpAddr::V6(s), IpAddr::V6(d)) => V6::new(s, d, proto, seg).frame(),
        _ => panic!("a packet from {src} to {dst}: one family only"),
    }
}

/// A TCP segment without payload from `src:sport` to `dst:dport`, framed.
pub fn tcp_frame(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Vec<u8> {
    ip_frame(src, dst, IPPROTO_TCP, tcp(sport, dport, flags, &[]))
}

/// An 8-byte hop-by-hop or destination options header (PadN only).
pub fn opts_ext(kind: u8) -> (u8, Vec<u8>) {
    (kind, vec![0, 0, 1, 4, 0, 0, 0, 0])
}

/// A fragment header: offset in 8-byte words, and "more fragments".
pub fn frag_ext(offset_words: u16, more: bool) -> (u8, Vec<u8>) {
    let fo = (offset_words << 3) | u16::from(more);
    let mut b = vec![0, 0];
    b.extend_from_slice(&fo.to_be_bytes());
    b.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    (IPPROTO_FRAGMENT, b)
}

/// An ICMP error frame: `rest` is the 4 bytes after the checksum (the MTU
/// for fragmentation-needed and packet-too-big), `quote` the packet it is
/// about from its IP header on. Panics on addresses of two families.
pub fn icmp_error(outer_src: IpAddr, outer_dst: IpAddr, kind: u8, code: u8, rest: [u8; 4], quote: &[u8]) -> Vec<u8> {
    let mut msg = vec![kind, code, 0, 0];
    msg.extend_from_slice(&rest);
    msg.extend_from_slice(quote);
    let (proto, c) = match (outer_src, outer_dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (IPPROTO_ICMP, checksum(&msg)),
        (IpAddr::V6(s), IpAddr::V6(d)) => (
            IPPROTO_ICMPV6,
            l4_checksum(&s.octets(), &d.octets(), IPPROTO_ICMPV6, &msg),
        ),
        _ => panic!("an ICMP error from {outer_src} to {outer_dst}: one family only"),
    };
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    ip_frame(outer_src, outer_dst, proto, msg)
}

/// The client's SYN to the IPv4 VIP.
pub fn syn4() -> V4 {
    V4::new(CLIENT4, VIP4, IPPROTO_TCP, tcp(CLIENT_PORT, VIP_PORT, TCP_SYN, &[]))
}

/// The client's datagram to the IPv4 VIP.
pub fn udp4() -> V4 {
    V4::new(CLIENT4, VIP4, IPPROTO_UDP, udp(CLIENT_PORT, VIP_PORT, b"ping over udp"))
}

/// The client's SYN to the IPv6 VIP.
pub fn syn6() -> V6 {
    V6::new(CLIENT6, VIP6, IPPROTO_TCP, tcp(CLIENT_PORT, VIP_PORT, TCP_SYN, &[]))
}

/// The client's datagram to the IPv6 VIP.
pub fn udp6() -> V6 {
    V6::new(CLIENT6, VIP6, IPPROTO_UDP, udp(CLIENT_PORT, VIP_PORT, b"ping over udp"))
}

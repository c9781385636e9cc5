//! Packet fixtures for running the XDP program on frames through
//! BPF_PROG_TEST_RUN (a frame in, the frame the program left out, as in
//! Katran's tester): builders of Ethernet frames carrying IPv4 or IPv6 and
//! TCP, UDP or ICMP, parsers that read a rewritten frame back and verify its
//! checksums, and the addresses the balancer under test is programmed with.
//! Shared by the agent's packet tests and its program bench, so that what
//! is timed is what is tested.
//!
//! The frames are built by hand, not with a packet crate: the tests need
//! frames no builder makes (headers cut short, IHL 15, arbitrary IPv6
//! extension headers, fragments), and the checksums are computed here from
//! scratch, independently of the eBPF code's incremental updates.
mod addrs;
mod build;
mod checksum;
mod parse;

pub use addrs::*;
pub use build::{V4, V6, eth, frag_ext, icmp_error, ip_frame, opts_ext, syn4, syn6, tcp, tcp_frame, udp, udp4, udp6};
pub use checksum::{checksum, l4_checksum};
pub use parse::{IcmpSeen, Seen, dissect, dissect_icmp};

pub const ETH_IP: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_ARP: u16 = 0x0806;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// IPv4 "don't fragment": set on every packet the builder makes, as Linux
/// does; it must not be mistaken for a fragment.
pub const IP_DF: u16 = 0x4000;
pub const IP_MF: u16 = 0x2000;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

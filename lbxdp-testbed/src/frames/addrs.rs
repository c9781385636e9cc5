//! The balancer under test's addresses: one IPv4 and one IPv6 VIP, each
//! balanced in full NAT to two servers of its family, and a client of each
//! family; all in the testbeds' ranges (198.18.0.0/15, fd00:198:18::/48).
use std::net::{Ipv4Addr, Ipv6Addr};

pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 2);
/// The LB's own addresses towards the servers: the source of full NAT.
pub const SNAT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const SNAT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 1);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 0x10);
pub const SERVERS4: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 0, 101), Ipv4Addr::new(198, 18, 0, 102)];
pub const SERVERS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x101),
    Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x102),
];

pub const VIP_PORT: u16 = 80;
/// Not the VIP's port, so the destination port rewrite shows in the checksums.
pub const SERVER_PORT: u16 = 8080;
pub const CLIENT_PORT: u16 = 40000;

/// Every frame's destination MAC: the LB's interface the frames come in on.
pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Every frame's source MAC: the client or server side's next hop.
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

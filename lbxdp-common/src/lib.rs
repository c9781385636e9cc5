//! Types shared by the XDP program (`lbxdp-ebpf`, `no_std`) and the agent.
//!
//! Everything here is `#[repr(C)]` and plain old data: the kernel side writes it
//! into BPF maps and userspace reads the same bytes back.
#![no_std]

pub mod freq;
mod lb;
mod rules;
pub use lb::*;
pub use rules::*;

/// What the first-stage program counts, one slot each in the `PROTO_STATS`
/// per-CPU array. A packet is counted once at L3 and, when it has one we parse,
/// once at L4.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Ipv4 = 0,
    Ipv6 = 1,
    Arp = 2,
    /// Any other EtherType.
    OtherL3 = 3,
    Tcp = 4,
    Udp = 5,
    Icmp = 6,
    Icmpv6 = 7,
    /// An IP packet whose L4 we don't parse (or behind too many IPv6 extension headers).
    OtherL4 = 8,
    /// A header was cut short: the packet ends before the header it announces.
    Malformed = 9,
}

impl Proto {
    pub const COUNT: u32 = 10;
    pub const ALL: [Proto; Self::COUNT as usize] = [
        Proto::Ipv4,
        Proto::Ipv6,
        Proto::Arp,
        Proto::OtherL3,
        Proto::Tcp,
        Proto::Udp,
        Proto::Icmp,
        Proto::Icmpv6,
        Proto::OtherL4,
        Proto::Malformed,
    ];

    /// The name used in logs and in the agent's JSON counters.
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Ipv4 => "ipv4",
            Proto::Ipv6 => "ipv6",
            Proto::Arp => "arp",
            Proto::OtherL3 => "other_l3",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Icmpv6 => "icmpv6",
            Proto::OtherL4 => "other_l4",
            Proto::Malformed => "malformed",
        }
    }
}

/// One slot of `PROTO_STATS`: packets and bytes (frame length) seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoStats {
    pub packets: u64,
    pub bytes: u64,
}

/// Name of the per-CPU array map of [`ProtoStats`], indexed by [`Proto`].
pub const PROTO_STATS_MAP: &str = "PROTO_STATS";
/// Name of the XDP program in the object.
pub const XDP_PROGRAM: &str = "lbxdp";

#[cfg(feature = "user")]
mod user {
    // SAFETY: ProtoStats is #[repr(C)], made only of u64s, has no padding and
    // every bit pattern is valid, which is what aya::Pod requires.
    unsafe impl aya::Pod for super::ProtoStats {}

    // SAFETY (all below): #[repr(C)] structs of integers and byte arrays with
    // explicit padding fields, so no implicit padding, and every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::FrontendKey {}
    unsafe impl aya::Pod for super::Frontend {}
    unsafe impl aya::Pod for super::BackendMeta {}
    unsafe impl aya::Pod for super::Server {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::Flow {}
    unsafe impl aya::Pod for super::Reply {}
    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::ServerStats {}
    unsafe impl aya::Pod for super::FrontendStats {}
    unsafe impl aya::Pod for super::MaglevChunk {}
    unsafe impl aya::Pod for super::Rules {}
    unsafe impl aya::Pod for super::NetKey {}
    unsafe impl aya::Pod for super::StickTableConf {}
    unsafe impl aya::Pod for super::StickKey {}
    unsafe impl aya::Pod for super::StickEntry {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_indices_are_dense_and_match_all() {
        for (i, p) in Proto::ALL.iter().enumerate() {
            assert_eq!(*p as u32, i as u32, "{} out of place", p.name());
        }
    }

    #[test]
    fn map_types_have_no_implicit_padding() {
        use core::mem::size_of;
        assert_eq!(size_of::<FrontendKey>(), 16 + 2 + 1 + 1);
        assert_eq!(size_of::<Frontend>(), 12);
        assert_eq!(size_of::<Server>(), 16 + 16 + 2 + 1 + 1);
        assert_eq!(size_of::<FlowKey>(), 16 + 16 + 2 + 2 + 1 + 1 + 2);
        assert_eq!(size_of::<NextHop>(), 4 + 4 + 2 + 6 + 6 + 2);
        assert_eq!(size_of::<Flow>(), 4 + 4 + 2 + 2 + 4 + 8 + 24);
        assert_eq!(size_of::<Reply>(), 16 + 16 + 2 + 2 + 4 + 4 + 2 + 2 + 8 + 24);
        assert_eq!(size_of::<Settings>(), 4 + 4 + 8 * 4 + 2 + 2 + 4);
        assert_eq!(size_of::<FrontendStats>(), 8 * 13);
        assert_eq!(size_of::<RuleExpr>(), 16);
        assert_eq!(size_of::<Rule>(), 4 + 8 + 8 * MAX_RULE_SUITES);
        assert_eq!(
            size_of::<Rules>(),
            24 + 16 * MAX_RULE_EXPRS + 4 * MAX_RULE_ACLS + size_of::<Rule>() * MAX_RULES
        );
        assert_eq!(size_of::<NetKey>(), 20);
        assert_eq!(size_of::<StickKey>(), 20);
        assert_eq!(size_of::<StickEntry>(), 16 + 2 * 12);
        assert_eq!(size_of::<StickTableConf>(), 16);
    }

    #[test]
    fn maglev_slots_of_copies_do_not_overlap() {
        // 7 slots fit one chunk: one entry per copy.
        assert_eq!(maglev_slot(0, 0, 7, 6), (0, 6));
        assert_eq!(maglev_slot(0, 1, 7, 0), (1, 0));
        assert_eq!(maglev_slot(1, 0, 7, 8), (2, 1));
        // 65537 slots take 65 chunks, the last one holding a single slot.
        assert_eq!(maglev_chunks(65537), 65);
        assert_eq!(maglev_slot(0, 1, 65537, 65536), (65 + 64, 0));
        assert_eq!(maglev_slot(2, 0, 65537, 1025), (4 * 65 + 1, 1));
    }

    #[test]
    fn proto_stats_layout_is_two_u64() {
        assert_eq!(core::mem::size_of::<ProtoStats>(), 16);
        assert_eq!(core::mem::align_of::<ProtoStats>(), 8);
    }
}

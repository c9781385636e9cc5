//! The ways to the servers being measured, and their order in a round.
use anyhow::{Context as _, bail};

/// Which way the traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// Straight to one backend (web1), no balancer on the way.
    Direct,
    /// To the VIP, through the agent in native XDP mode.
    XdpNative,
    /// To the VIP, through the agent in generic (skb) XDP mode.
    XdpGeneric,
    /// To the VIP, through the agent's userspace TCP proxy (`--mode proxy`).
    Proxy,
    /// To the VIP, through HAProxy (`haproxy -db -f` the same haproxy.cfg).
    Haproxy,
    /// To the VIP, through the kernel's own balancer on the LB, no agent:
    /// nftables full NAT, `dnat to numgen inc mod 3 map {...}` and masquerade.
    Nftables,
    /// As [`Route::Nftables`], the server picked by
    /// `jhash ip saddr . th sport mod 3` instead of round robin.
    NftablesJhash,
    /// To the VIP on the two-arm testbed (the LB between the client's and the
    /// servers' segments), through the agent in native XDP mode with
    /// destination NAT only (`--nat dnat`): the servers see the client's
    /// address and reply through the LB, which routes them back.
    XdpNativeDnat,
    /// As [`Route::XdpNativeDnat`], in generic (skb) XDP mode.
    XdpGenericDnat,
    /// As [`Route::Nftables`] on the two-arm testbed, without the masquerade:
    /// the kernel's DNAT, the fair peer of the agent's.
    NftablesDnat,
    /// Not a way to the servers: the LB only bounces frames (MACs swapped,
    /// XDP_TX) back to the client. Measured by the UDP workload alone, as the
    /// fastest an XDP balancer could be on this box; never in `--paths`.
    TxFloor,
}

impl Route {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::XdpNative => "xdp-native",
            Self::XdpGeneric => "xdp-generic",
            Self::Proxy => "proxy",
            Self::Haproxy => "haproxy",
            Self::Nftables => "nftables",
            Self::NftablesJhash => "nftables-jhash",
            Self::XdpNativeDnat => "xdp-native-dnat",
            Self::XdpGenericDnat => "xdp-generic-dnat",
            Self::NftablesDnat => "nftables-dnat",
            Self::TxFloor => "xdp-tx-floor",
        }
    }

    /// Whether the path runs on the two-arm testbed (DNAT needs the LB
    /// between the client and the servers) instead of the one-arm one.
    pub(super) fn two_arm(self) -> bool {
        matches!(self, Self::XdpNativeDnat | Self::XdpGenericDnat | Self::NftablesDnat)
    }

    /// Whether the path's balancer is the agent's XDP program.
    pub(super) fn runs_lbxdp(self) -> bool {
        matches!(
            self,
            Self::XdpNative | Self::XdpGeneric | Self::XdpNativeDnat | Self::XdpGenericDnat
        )
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "direct" => Self::Direct,
            "xdp" | "xdp-native" | "native" => Self::XdpNative,
            "xdp-generic" | "generic" => Self::XdpGeneric,
            "proxy" => Self::Proxy,
            "haproxy" => Self::Haproxy,
            "nftables" | "nft" => Self::Nftables,
            "nftables-jhash" | "nft-jhash" | "jhash" => Self::NftablesJhash,
            "xdp-dnat" | "xdp-native-dnat" => Self::XdpNativeDnat,
            "xdp-generic-dnat" => Self::XdpGenericDnat,
            "nftables-dnat" | "nft-dnat" => Self::NftablesDnat,
            _ => bail!(
                "unknown path {s:?} (direct, xdp, xdp-generic, proxy, haproxy, nftables, nftables-jhash, \
                 xdp-dnat, xdp-generic-dnat, nftables-dnat)"
            ),
        })
    }
}

/// `--paths` (and `--generic`), in order, without repeats.
pub(super) fn parse_paths(list: &str, generic: bool) -> anyhow::Result<Vec<Route>> {
    let mut paths = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let path = Route::parse(word).context("--paths")?;
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    if generic && !paths.contains(&Route::XdpGeneric) {
        paths.push(Route::XdpGeneric);
    }
    if paths.is_empty() {
        bail!("--paths names no path");
    }
    Ok(paths)
}

/// The paths in the order of a round: rotated by one every round, so that no
/// path always runs first (after a quiet pause) or last.
pub(super) fn round_order(paths: &[Route], round: u32) -> Vec<Route> {
    let mut order = paths.to_vec();
    if !order.is_empty() {
        let n = (round.saturating_sub(1) as usize) % order.len();
        order.rotate_left(n);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_their_order() {
        let all = parse_paths("direct,xdp,proxy,haproxy", false).unwrap();
        assert_eq!(all, [Route::Direct, Route::XdpNative, Route::Proxy, Route::Haproxy]);
        assert_eq!(
            parse_paths(" haproxy, xdp-native,xdp ", true).unwrap(),
            [Route::Haproxy, Route::XdpNative, Route::XdpGeneric]
        );
        assert!(parse_paths("direct,nginx", false).is_err());
        assert!(parse_paths("xdp-tx-floor", false).is_err());
        assert_eq!(
            parse_paths("nft,nftables-jhash", false).unwrap(),
            [Route::Nftables, Route::NftablesJhash]
        );
        assert!(parse_paths(",", false).is_err());
        let dnat = parse_paths("xdp-dnat,xdp-generic-dnat,nft-dnat,xdp", false).unwrap();
        assert_eq!(
            dnat.iter().map(|p| p.two_arm()).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(dnat[2].name(), "nftables-dnat");
        assert_eq!(round_order(&all, 1), all);
        assert_eq!(
            round_order(&all, 2),
            [Route::XdpNative, Route::Proxy, Route::Haproxy, Route::Direct]
        );
        assert_eq!(round_order(&all, 5), all);
    }
}

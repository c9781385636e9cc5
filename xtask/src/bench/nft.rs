//! The kernel's own balancer as a peer: nftables full NAT on the LB, no agent;
//! or, on the two-arm testbed, its destination NAT alone (no masquerade).
//!
//! The rules are those of the agent's `default_client_full_nat_holds_its_rate_beside_nftables`
//! yardstick (lbxdp-agent/tests/xdp_load.rs), for TCP and UDP to the VIP's
//! port 80, plus the iperf3 port to web1 alone, as the agent's config has it.
use std::time::Duration;

use anyhow::{Context as _, bail};
use lbxdp_testbed::Testbed;
use serde_json::{Value, json};

/// The table the bench adds to the LB's namespace, and deletes after the run.
const TABLE: &str = "lbxdp_bench";

/// The LB's sysctls nftables needs: forwarding (the LB routes the client's
/// packets on to a server) and no ICMP redirects (one arm: packets leave by
/// the interface they came in on, and the kernel would tell the client to go
/// straight to the server).
const SYSCTLS: [(&str, &str); 3] = [
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/eth0/send_redirects", "0"),
];

/// How nftables picks a server for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pick {
    /// `numgen inc mod N`: round robin.
    Numgen,
    /// `jhash ip saddr . sport mod N`: a hash of the client's address and port.
    Jhash,
    /// Round robin as [`Pick::Numgen`], with destination NAT only: no
    /// masquerade, the servers see the client and reply through the LB
    /// (the two-arm testbed routes them so).
    NumgenDnat,
}

impl Pick {
    fn name(self) -> &'static str {
        match self {
            Self::Numgen => "nftables",
            Self::Jhash => "nftables-jhash",
            Self::NumgenDnat => "nftables-dnat",
        }
    }

    /// The selector expression for `dnat to ... map {...}` for one protocol.
    fn expr(self, proto: &str, n: usize) -> String {
        match self {
            Self::Numgen | Self::NumgenDnat => format!("numgen inc mod {n}"),
            Self::Jhash => format!("jhash ip saddr . {proto} sport mod {n}"),
        }
    }
}

/// The rule set: DNAT to a server picked per new connection (TCP and UDP to
/// `vip:80`; `vip:iperf_port` to web1), then masquerade towards the servers
/// (full NAT, as the agent's default; with [`Pick::NumgenDnat`] the rule only
/// counts). The NAT chains see only a connection's first packet, so each
/// server's counter counts new connections.
fn rules(pick: Pick, vip: &str, servers: &[(String, String)], iperf_port: u16) -> String {
    let map: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, (_, addr))| format!("{i} : {addr}"))
        .collect();
    let map = map.join(", ");
    let mut pre = String::new();
    for proto in ["tcp", "udp"] {
        pre.push_str(&format!(
            "    ip daddr {vip} {proto} dport 80 dnat to {} map {{ {map} }}\n",
            pick.expr(proto, servers.len())
        ));
    }
    if let Some((_, web1)) = servers.first() {
        pre.push_str(&format!("    ip daddr {vip} tcp dport {iperf_port} dnat to {web1}\n"));
    }
    let snat = if pick == Pick::NumgenDnat { "" } else { " masquerade" };
    let post: String = servers
        .iter()
        .map(|(name, addr)| format!("    ip saddr != {vip} ip daddr {addr} counter{snat} comment \"{name}\"\n"))
        .collect();
    format!(
        "table ip {TABLE} {{\n  chain pre {{\n    type nat hook prerouting priority dstnat;\n{pre}  }}\n  \
         chain post {{\n    type nat hook postrouting priority srcnat;\n{post}  }}\n}}\n"
    )
}

/// The rule set installed in the LB's namespace, with the sysctls it changed;
/// [`Nft::stop`] (or dropping it) deletes the table and restores them.
pub(super) struct Nft<'a> {
    tb: &'a Testbed,
    pick: Pick,
    /// The sysctls' values before, to restore; empty once restored.
    saved: Vec<(&'static str, String)>,
}

impl<'a> Nft<'a> {
    pub(super) fn install(tb: &'a Testbed, pick: Pick, iperf_port: u16, tag: &str) -> anyhow::Result<Self> {
        let servers: Vec<(String, String)> = tb
            .backends
            .iter()
            .map(|b| (b.name.clone(), b.v4().to_string()))
            .collect();
        let path = tb.dir().join(format!("nft-{tag}.conf"));
        std::fs::write(&path, rules(pick, &tb.lb.v4().to_string(), &servers, iperf_port))
            .with_context(|| format!("writing {}", path.display()))?;
        let saved = tb.in_netns(&tb.lb, || {
            let mut saved = Vec::new();
            for (key, value) in SYSCTLS {
                let file = format!("/proc/sys/{key}");
                let old = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
                std::fs::write(&file, value).with_context(|| format!("writing {file}"))?;
                saved.push((key, old.trim().to_string()));
            }
            Ok(saved)
        })?;
        // From here on, Drop restores the sysctls if nft fails.
        let me = Self { tb, pick, saved };
        me.flush_conntrack()?;
        let out = me
            .nft(&["-f", &path.to_string_lossy()])
            .context("nft (`cargo xtask setup` installs nftables)")?;
        if !out.status.success() {
            bail!(
                "nft -f {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(me)
    }

    /// Forgets the connections the LB's kernel tracks. Deleting the table
    /// leaves them, with their NAT bindings, for minutes (UDP 30-120 s, TCP
    /// TIME_WAIT 120 s): the next nftables run would skip the NAT chains for
    /// every 5-tuple it repeats (trafgen's UDP ports do), and be measured
    /// with the last run's choice of servers.
    fn flush_conntrack(&self) -> anyhow::Result<()> {
        let out = self
            .tb
            .command(&self.tb.lb, "conntrack")
            .arg("-F")
            .output_timeout(Duration::from_secs(10))
            .context("conntrack (`cargo xtask setup` installs it)")?;
        if !out.status.success() {
            bail!("conntrack -F: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    fn nft(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.tb
            .command(&self.tb.lb, "nft")
            .args(args)
            .output_timeout(Duration::from_secs(10))
    }

    /// Reads the counters, deletes the table and restores the sysctls;
    /// returns a report shaped like the agent's (`servers[].new_flows`).
    pub(super) fn stop(&mut self) -> anyhow::Result<Value> {
        let out = self.nft(&["-j", "list", "table", "ip", TABLE])?;
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        self.remove()?;
        if !out.status.success() {
            bail!("nft list table: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let servers = new_connections(&listing).context("nft -j list table")?;
        Ok(json!({
            "mode": self.pick.name(),
            "servers": servers
                .iter()
                .map(|(name, n)| json!({"backend": "nginx-servers", "name": name, "new_flows": n}))
                .collect::<Vec<_>>(),
        }))
    }

    fn remove(&mut self) -> anyhow::Result<()> {
        if self.saved.is_empty() {
            return Ok(());
        }
        let out = self.nft(&["delete", "table", "ip", TABLE]);
        let saved = std::mem::take(&mut self.saved);
        self.tb.in_netns(&self.tb.lb, || {
            for (key, old) in &saved {
                std::fs::write(format!("/proc/sys/{key}"), old).with_context(|| format!("restoring {key}"))?;
            }
            Ok(())
        })?;
        let out = out?;
        if !out.status.success() {
            bail!("nft delete table: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        self.flush_conntrack()
    }
}

impl Drop for Nft<'_> {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// (comment, counter packets) of the rules that carry both, from `nft -j list`.
fn new_connections(listing: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let v: Value = serde_json::from_str(listing.trim())?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let rule = item.get("rule")?;
            let name = rule["comment"].as_str()?;
            let packets = rule["expr"]
                .as_array()?
                .iter()
                .find_map(|e| e["counter"]["packets"].as_u64())?;
            Some((name.to_string(), packets))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_sets() {
        let servers = [
            ("web1".to_string(), "198.18.0.101".to_string()),
            ("web2".to_string(), "198.18.0.102".to_string()),
        ];
        let r = rules(Pick::Jhash, "198.18.0.2", &servers, 5201);
        assert!(r.contains(
            "ip daddr 198.18.0.2 udp dport 80 dnat to jhash ip saddr . udp sport mod 2 map { 0 : 198.18.0.101, 1 : 198.18.0.102 }"
        ));
        assert!(r.contains("ip daddr 198.18.0.2 tcp dport 5201 dnat to 198.18.0.101"));
        assert!(r.contains("ip daddr 198.18.0.102 counter masquerade comment \"web2\""));
        assert!(rules(Pick::Numgen, "198.18.0.2", &servers, 5201).contains("dnat to numgen inc mod 2 map"));
        let dnat = rules(Pick::NumgenDnat, "198.18.1.1", &servers, 5201);
        assert!(dnat.contains("dnat to numgen inc mod 2 map"));
        assert!(
            dnat.contains("ip daddr 198.18.0.102 counter comment \"web2\""),
            "{dnat}"
        );
        assert!(!dnat.contains("masquerade"), "{dnat}");
    }

    #[test]
    fn counters_from_the_listing() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "lbxdp_bench"}},
            {"rule": {"chain": "post", "comment": "web1", "expr": [{"match": {}}, {"counter": {"packets": 12, "bytes": 720}}, {"masquerade": null}]}},
            {"rule": {"chain": "pre", "expr": [{"dnat": {}}]}}]}"#;
        assert_eq!(new_connections(listing).unwrap(), [("web1".to_string(), 12)]);
        assert!(new_connections("not json").is_err());
    }
}

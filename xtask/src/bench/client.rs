//! The client's kernel, tuned as a load generator's.
use anyhow::Context as _;
use lbxdp_testbed::Testbed;

/// The client's kernel as a load generator's: wrk closes its end first through
/// a proxy (haproxy, the agent's proxy), so every such request leaves a
/// TIME_WAIT socket to the VIP on the client for 60 s. Without reuse, some
/// 14,000 of them made the next run to the VIP burn both cores in connect()'s
/// port search (the XDP `close` run fell from ~13k to ~2k req/s whenever it
/// followed the proxies' `close` runs). The same settings hold for every path.
pub(super) const CLIENT_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("net.ipv4.ip_local_port_range", "1024 65535"),
];

pub(super) fn tune_client(tb: &Testbed) -> anyhow::Result<()> {
    let shown: Vec<String> = CLIENT_SYSCTLS.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("    client sysctls: {}", shown.join(", "));
    tb.in_netns(&tb.client, || {
        for (key, value) in CLIENT_SYSCTLS {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, value).with_context(|| format!("sysctl {key}={value} in the client"))?;
        }
        Ok(())
    })
}

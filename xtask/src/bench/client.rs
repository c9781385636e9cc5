//! The client's kernel, tuned as a load generator's, or as Linux sets it up.
use anyhow::Context as _;
use lbxdp_testbed::Testbed;

/// The client's kernel as a load generator's: wrk closes its end first through
/// a proxy (haproxy, the agent's proxy), so every such request leaves a
/// TIME_WAIT socket to the VIP on the client for 60 s. Without reuse, some
/// 14,000 of them made the next run to the VIP burn both cores in connect()'s
/// port search (the XDP `close` run fell from ~13k to ~2k req/s whenever it
/// followed the proxies' `close` runs). The same settings hold for every path;
/// the sustained runs put Linux's defaults back (see [`Sysctls::defaults`]).
pub(super) const CLIENT_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("net.ipv4.ip_local_port_range", "1024 65535"),
];

/// The client's values of [`CLIENT_SYSCTLS`]' keys before the tuning: the
/// kernel's defaults in a fresh namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Sysctls {
    defaults: Vec<(&'static str, String)>,
}

impl Sysctls {
    pub(super) fn defaults(&self) -> &[(&'static str, String)] {
        &self.defaults
    }

    /// `key=value, ...`, for the docs and the progress lines.
    pub(super) fn show(&self) -> String {
        show(self.defaults.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

fn show<'a>(kv: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    kv.map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

fn file(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Tunes the client as a load generator; returns the values it replaced.
pub(super) fn tune_client(tb: &Testbed) -> anyhow::Result<Sysctls> {
    println!("    client sysctls: {}", show(CLIENT_SYSCTLS.iter().copied()));
    let defaults = tb.in_netns(&tb.client, || {
        let mut old = Vec::new();
        for (key, value) in CLIENT_SYSCTLS {
            let f = file(key);
            let was = std::fs::read_to_string(&f).with_context(|| format!("reading {f} in the client"))?;
            // The port range reads back with a tab between its ends.
            old.push((key, was.split_whitespace().collect::<Vec<_>>().join(" ")));
            std::fs::write(&f, value).with_context(|| format!("sysctl {key}={value} in the client"))?;
        }
        Ok(old)
    })?;
    Ok(Sysctls { defaults })
}

/// Sets the client's sysctls to `values`.
pub(super) fn set_client(tb: &Testbed, values: &[(&'static str, String)]) -> anyhow::Result<()> {
    tb.in_netns(&tb.client, || {
        for (key, value) in values {
            std::fs::write(file(key), value).with_context(|| format!("sysctl {key}={value} in the client"))?;
        }
        Ok(())
    })
}

/// Puts the load generator's tuning back (after the sustained runs).
pub(super) fn retune_client(tb: &Testbed) -> anyhow::Result<()> {
    let tuned: Vec<(&'static str, String)> = CLIENT_SYSCTLS.iter().map(|&(k, v)| (k, v.to_string())).collect();
    set_client(tb, &tuned)
}

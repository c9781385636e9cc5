//! 64-byte UDP packets/s through the VIP, with the loss, from trafgen
//! (netsniff-ng) in the client's namespace; and the XDP_TX floor of the box
//! for the same generator.
//!
//! trafgen sends minimum-size frames (60 bytes on the wire without the FCS)
//! from one process, the source port counting up through 16,384 values, so
//! that a run opens 16,384 flows (well inside the full-NAT port range per
//! server) and every later packet hits one. What was sent is the client's
//! eth0 `tx_packets`, what was delivered the servers' eth0 `rx_packets` (the
//! client's own `rx_packets` for the floor), both read from
//! /proc/net/dev around the run; nothing listens on UDP port 80, so the
//! servers only count and drop. The XDP datapath balances UDP to a frontend's
//! (VIP, port) as it does TCP, nftables has a UDP rule; the proxies are TCP
//! only and have no UDP run.
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use lbxdp_testbed::{Host, Testbed};

use super::{
    Bed, Measured, Run,
    balancer::{ANSWER_WITHIN, Lb, wait_answers},
    cpu::with_cpu,
    route::Route,
};

/// The UDP port packets are sent to: the VIP's (and web1's) HTTP port; the
/// floor bounces them, whatever the port.
const UDP_PORT: u16 = 80;
/// Bytes after the UDP header: 14 + 20 + 8 + 18 = 60, the minimum frame.
const PAYLOAD: usize = 18;
/// An upper bound on the packets of one run, whatever the rate: trafgen stops
/// at this count or at SIGINT after the run's seconds, whichever is first.
const MAX_PPS: u64 = 5_000_000;
/// How long in-flight packets get to land before the counters are read.
const DRAIN: Duration = Duration::from_millis(300);

/// What one trafgen run moved.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Udp {
    /// Frames the client's eth0 sent.
    pub(super) sent: u64,
    /// Frames the servers' eth0 received (the client's own for the floor).
    pub(super) delivered: u64,
    /// trafgen's wall time.
    pub(super) secs: f64,
}

impl Udp {
    /// Delivered packets per second.
    pub(super) fn pps(&self) -> f64 {
        self.delivered as f64 / self.secs
    }

    pub(super) fn sent_pps(&self) -> f64 {
        self.sent as f64 / self.secs
    }

    /// Sent but not delivered, in % of sent.
    pub(super) fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return f64::NAN;
        }
        100.0 * self.sent.saturating_sub(self.delivered) as f64 / self.sent as f64
    }
}

/// Whether a path carries UDP (the proxies don't).
pub(super) fn carries_udp(path: Route) -> bool {
    !matches!(path, Route::Proxy | Route::Haproxy)
}

/// One bounded trafgen run over `path`, with a fresh balancer around it.
pub(super) fn run_udp(bed: &Bed<'_>, round: u32, path: Route) -> anyhow::Result<Run> {
    let side = bed.side(path)?;
    let (tb, bin, cfg, args, ns) = (side.tb, bed.bin, &side.cfg, bed.args, &side.ns);
    let tag = format!("r{round}-udp-{}", path.name());
    // Where the frames go: straight to web1, or to the LB's interface.
    let (to, dst) = match path {
        Route::Direct => (&tb.backends[0], tb.backends[0].v4()),
        _ => (&tb.lb, tb.lb.v4()),
    };
    let conf = tb.dir().join(format!("trafgen-{tag}.cfg"));
    let packet = format!(
        "{{\n  eth(da={}, sa={}, type=0x0800),\n  ipv4(saddr={}, daddr={dst}, ttl=64, proto=17, df),\n  \
         udp(sp=dinc(1024, 17407, 1), dp={UDP_PORT}),\n  fill(0x5a, {PAYLOAD})\n}}\n",
        mac(tb, to)?,
        mac(tb, &tb.client)?,
        tb.client.v4()
    );
    std::fs::write(&conf, packet).with_context(|| format!("writing {}", conf.display()))?;

    let mut lb = Lb::start(tb, bin, cfg, path, &tag)?;
    if path != Route::TxFloor {
        // The VIP answers HTTP first: the balancer is up and its maps filled.
        let url = format!("http://{dst}/");
        wait_answers(tb, &url, ANSWER_WITHIN, &mut lb)?;
    }
    let receivers: Vec<&Host> = match path {
        Route::TxFloor => vec![&tb.client],
        _ => tb.backends.iter().collect(),
    };
    let sent_before = eth0(tb, &tb.client)?.tx;
    let delivered_before = delivered(tb, &receivers)?;
    let secs = args.udp_secs;
    let mut cmd = tb.command(&tb.client, "timeout");
    cmd.args(["-s", "INT", &secs.to_string(), "trafgen", "-o", "eth0", "-i"])
        .arg(&conf)
        .args([
            "-n",
            &(secs * MAX_PPS).to_string(),
            "-P",
            "1",
            "--no-sock-mem",
            "-Q",
            "-C",
        ]);
    let ((out, took), cpu) = with_cpu(ns, || {
        let started = Instant::now();
        let out = cmd
            .output_timeout(Duration::from_secs(secs + 15))
            .context("running trafgen (`cargo xtask setup` installs netsniff-ng)")?;
        Ok((out, started.elapsed()))
    })?;
    // timeout(1) exits 124 when it had to send SIGINT: the usual end here.
    if !(out.status.success() || out.status.code() == Some(124)) {
        bail!(
            "`{}` failed: {}\n{}{}",
            cmd.show(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(DRAIN);
    let sent = eth0(tb, &tb.client)?.tx.saturating_sub(sent_before);
    let delivered = delivered(tb, &receivers)?.saturating_sub(delivered_before);
    let report = lb.stop()?;
    Ok(Run {
        round,
        path,
        measured: Measured::Udp(Udp {
            sent,
            delivered,
            secs: took.as_secs_f64(),
        }),
        cpu,
        report,
    })
}

/// Frames received by the hosts' eth0, summed.
fn delivered(tb: &Testbed, hosts: &[&Host]) -> anyhow::Result<u64> {
    hosts.iter().map(|h| Ok(eth0(tb, h)?.rx)).sum()
}

/// Packet counters of an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Packets {
    rx: u64,
    tx: u64,
}

/// `host`'s eth0 counters, from its namespace's /proc/net/dev.
fn eth0(tb: &Testbed, host: &Host) -> anyhow::Result<Packets> {
    // thread-self: /proc/self/net would be the main thread's namespace.
    let text = tb.in_netns(host, || {
        std::fs::read_to_string("/proc/thread-self/net/dev").context("reading /proc/thread-self/net/dev")
    })?;
    parse_dev(&text, "eth0").with_context(|| format!("no eth0 in {}'s /proc/net/dev", host.name))
}

/// One interface's packets from /proc/net/dev: after "name:", rx bytes, rx
/// packets, six more rx fields, tx bytes, tx packets.
fn parse_dev(text: &str, iface: &str) -> Option<Packets> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != iface {
            return None;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        Some(Packets {
            rx: *f.get(1)?,
            tx: *f.get(9)?,
        })
    })
}

/// `host`'s eth0 MAC address (`ip -j link`: sysfs shows the host's own
/// interfaces, not the namespace's).
fn mac(tb: &Testbed, host: &Host) -> anyhow::Result<String> {
    let out = tb
        .command(host, "ip")
        .args(["-j", "link", "show", "dev", "eth0"])
        .output_timeout(Duration::from_secs(5))?;
    if !out.status.success() {
        bail!(
            "ip link in {}: {}",
            host.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("ip -j link")?;
    v[0]["address"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no MAC address for {}'s eth0", host.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_counters() {
        let dev = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 1234567   20000    0    3    0     0          0         0   999999   30000    0    0    0     0       0          0
";
        assert_eq!(parse_dev(dev, "eth0"), Some(Packets { rx: 20000, tx: 30000 }));
        assert_eq!(parse_dev(dev, "eth1"), None);
        let u = Udp {
            sent: 1000,
            delivered: 900,
            secs: 2.0,
        };
        assert_eq!(u.pps(), 450.0);
        assert_eq!(u.sent_pps(), 500.0);
        assert_eq!(u.loss_pct(), 10.0);
    }
}

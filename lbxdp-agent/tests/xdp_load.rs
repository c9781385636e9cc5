//! Sustained load through full NAT: 60 s of short connections at full rate
//! must not sag, from a client with Linux's default settings beside
//! nftables' full NAT on the same testbed, with health checks running (none
//! may fail on a healthy server), and, tuned as a load generator, right after
//! HAProxy itself left TIME_WAITs on the servers (the state an HAProxy user
//! switching to lbxdp starts from). Rates are compared within the run (no
//! absolute speed is asserted).
mod common;

use std::{path::Path, time::Duration};

use common::{Wrk, agent_bin};
use lbxdp_testbed::{Layout, Testbed};

/// The tests here measure rates: run one at a time (the harness runs a
/// file's tests in parallel on 2 cores otherwise).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const CHUNKS: usize = 6;
const CHUNK_SECS: u64 = 10;

/// The tuned test's config: plain servers, no checks.
fn config(tb: &Testbed) -> String {
    common::web_config(tb, "weight 1")
}

/// One bounded wrk run of new connections (`Connection: close`) to the VIP.
fn wrk(tb: &Testbed, secs: u64) -> Wrk {
    wrk_threads(tb, secs, 2)
}

fn wrk_threads(tb: &Testbed, secs: u64, threads: u32) -> Wrk {
    common::wrk_close(tb, &format!("http://{}/", tb.lb.v4()), secs, threads)
}

/// The client as load generators are set up: every port, and reuse of its
/// own TIME_WAIT ports (it closes first half the time). Without this the
/// client runs out of ports after a few seconds whatever the balancer does.
fn load_generator(tb: &Testbed) {
    tb.in_netns(&tb.client, || {
        std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535")?;
        std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "1")?;
        Ok(())
    })
    .expect("client sysctls");
}

fn sustained(tb: &Testbed, label: &str) {
    let chunks: Vec<Wrk> = (0..CHUNKS).map(|_| wrk(tb, CHUNK_SECS)).collect();
    let rates: Vec<String> = chunks.iter().map(|c| format!("{:.0}", c.rate)).collect();
    eprintln!("{label}: new connections/s per {CHUNK_SECS} s: {}", rates.join(" "));
    // The reference is the run's median slice: one 10 s slice alone (the
    // first ones included, which a previous run's TIME_WAITs can slow) is at
    // the mercy of whatever else the 2 cores were doing. The failure this
    // guards against is a collapse (TIME_WAIT stalls cut full NAT to a few
    // percent); slices here swing by about 15% either way on 2 cores, hence
    // 70% (the default client's test below holds the 80%).
    let mut sorted: Vec<f64> = chunks.iter().map(|c| c.rate).collect();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[CHUNKS / 2 - 1] + sorted[CHUNKS / 2]) / 2.0;
    assert!(
        median > 100.0,
        "{label}: hardly any traffic got through ({median:.0}/s)"
    );
    for (i, c) in chunks.iter().enumerate() {
        assert!(
            c.rate >= 0.7 * median,
            "{label}: chunk {i} ran at {:.0}/s, below 70% of the median {median:.0}/s",
            c.rate
        );
        assert_eq!(c.timeout, 0, "{label}: chunk {i} had connect/read timeouts");
        assert_eq!(c.connect, 0, "{label}: chunk {i} had connect errors");
    }
}

#[test]
fn sustained_short_connections_through_full_nat() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut tb) = common::testbed("sustained_short_connections_through_full_nat", Layout::OneArm, 3, true) else {
        return;
    };
    let cfg = tb.dir().join("haproxy.cfg");
    std::fs::write(&cfg, config(&tb)).expect("haproxy.cfg");
    tb.attach_peer_pass(Path::new(agent_bin()), &tb.lb.clone())
        .expect("pass program");
    load_generator(&tb);

    // HAProxy first, as the user ran it before switching: its connections to
    // the servers leave TIME_WAITs there, on the LB's address and ports.
    let mut haproxy = tb
        .command(&tb.lb, "haproxy")
        .args(["-db", "-f", &cfg.to_string_lossy()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("haproxy");
    std::thread::sleep(Duration::from_millis(500));
    let before = wrk(&tb, CHUNK_SECS);
    eprintln!("haproxy: {:.0} new connections/s", before.rate);
    lbxdp_testbed::terminate(&mut haproxy, Duration::from_secs(5)).expect("stopping haproxy");
    let tw = tb
        .command(&tb.backends[0], "ss")
        .args(["-tan", "state", "time-wait"])
        .output_timeout(Duration::from_secs(5));
    let tw = tw
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count().saturating_sub(1))
        .unwrap_or(0);
    eprintln!("TIME_WAITs left on web1 by haproxy: {tw}");
    assert!(
        tw > 1000,
        "HAProxy left too few TIME_WAITs ({tw}) for this test to mean anything"
    );

    let text = config(&tb);
    let agent = common::start_balancing(&mut tb, &text, &[]);
    sustained(&tb, "lbxdp after haproxy");
    sustained(&tb, "lbxdp after lbxdp");
    let report = agent.stop();
    let fe = &report["frontends"][0];
    eprintln!("frontend counters: {fe}");
    // This client uses 64,512 ports; full NAT has the 31,744 the LB's kernel
    // leaves free, so some client ports share a NAT port whose last flow the
    // server still holds in TIME_WAIT, and a few SYNs find all their
    // candidate ports held (the client retransmits them; no request failed,
    // as the slices above checked). With the default client (28,232 ports)
    // the mapping is one to one and the test below asserts none at all.
    let (dropped, flows) = (
        fe["drop_no_port"].as_u64().unwrap_or(u64::MAX),
        fe["new_flows"].as_u64().unwrap_or(0),
    );
    assert!(
        dropped <= flows / 10_000,
        "{dropped} SYNs found no NAT port in {flows} new flows: {fe}"
    );
}

/// nftables' full NAT on the LB for the same VIP and servers: numgen DNAT to
/// the servers, masquerade towards them. Removed again on drop.
struct NftFullNat<'a> {
    tb: &'a Testbed,
}

const NFT_TABLE: &str = "lbxdp_yardstick";

impl<'a> NftFullNat<'a> {
    fn install(tb: &'a Testbed) -> Self {
        let servers: Vec<String> = tb
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i} : {}", b.v4()))
            .collect();
        let rules = format!(
            "table ip {NFT_TABLE} {{\n\
             chain pre {{ type nat hook prerouting priority dstnat; \
             ip daddr {vip} tcp dport 80 dnat to numgen inc mod {n} map {{ {map} }}; }}\n\
             chain post {{ type nat hook postrouting priority srcnat; \
             ip daddr 198.18.0.0/24 ip saddr != {vip} masquerade; }}\n}}\n",
            vip = tb.lb.v4(),
            n = servers.len(),
            map = servers.join(", ")
        );
        let path = tb.dir().join("nft.conf");
        std::fs::write(&path, rules).expect("nft rules");
        tb.in_netns(&tb.lb, || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
            std::fs::write("/proc/sys/net/ipv4/conf/all/send_redirects", "0")?;
            std::fs::write("/proc/sys/net/ipv4/conf/eth0/send_redirects", "0")?;
            Ok(())
        })
        .expect("LB sysctls for nftables");
        let out = tb
            .command(&tb.lb, "nft")
            .args(["-f", &path.to_string_lossy()])
            .output_timeout(Duration::from_secs(10))
            .expect("nft (`cargo xtask setup` installs nftables)");
        assert!(out.status.success(), "nft -f: {}", String::from_utf8_lossy(&out.stderr));
        Self { tb }
    }
}

impl Drop for NftFullNat<'_> {
    fn drop(&mut self) {
        let _ = self
            .tb
            .command(&self.tb.lb, "nft")
            .args(["delete", "table", "ip", NFT_TABLE])
            .output_timeout(Duration::from_secs(10));
    }
}

/// 60 s of slices with a client as Linux sets it up.
fn slices(tb: &Testbed) -> Vec<Wrk> {
    (0..CHUNKS).map(|_| wrk_threads(tb, CHUNK_SECS, 1)).collect()
}

fn show(label: &str, chunks: &[Wrk]) -> f64 {
    let rates: Vec<String> = chunks.iter().map(|c| format!("{:.0}", c.rate)).collect();
    let errors: u64 = chunks.iter().map(|c| c.timeout + c.connect).sum();
    let total: f64 = chunks.iter().map(|c| c.rate).sum();
    eprintln!(
        "{label}: new connections/s per {CHUNK_SECS} s: {} (mean {:.0}; connect errors + timeouts {errors})",
        rates.join(" "),
        total / chunks.len() as f64
    );
    total / chunks.len() as f64
}

/// The defect this guards against: full NAT took the client's own ports,
/// which the LB's kernel also hands to its health checks, so under load a
/// check's SYN-ACK went to a client, checks timed out and healthy servers
/// flapped (and the rate fell to a few percent).
#[test]
fn default_client_full_nat_holds_its_rate_beside_nftables() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = common::plain_testbed(
        "default_client_full_nat_holds_its_rate_beside_nftables",
        Layout::OneArm,
        3,
    ) else {
        return;
    };
    // nftables first: its 60 s fill the servers' TIME_WAIT tables (they
    // keep an entry 60 s), so lbxdp's slices run in that steady state
    // instead of starting fast on empty tables and sagging as they fill,
    // which is the servers' doing, not the balancer's. (It puts nftables at
    // the advantage of the fresh start.) nftables' masquerade keeps the
    // client's ports (32768-60999) and lbxdp's lie below them, so neither
    // meets the other's TIME_WAITs.
    let nft = {
        let _nat = NftFullNat::install(&tb);
        slices(&tb)
    };

    // lbxdp with its default flags.
    let mut agent = common::start_default(&tb, &common::web_config(&tb, "check inter 2000 fall 2 rise 2"));
    let lbxdp = slices(&tb);
    let log = agent.log();
    let report = agent.stop();
    let lbxdp_mean = show("lbxdp (default flags)", &lbxdp);
    let downs: Vec<&str> = log.lines().filter(|l| l.contains(" is DOWN")).collect();
    eprintln!(
        "health checks that failed on healthy servers under load: {}",
        downs.len()
    );
    eprintln!("frontend counters: {}", report["frontends"][0]);

    let nft_mean = show("nftables full NAT", &nft);
    eprintln!("lbxdp / nftables: {:.2}", lbxdp_mean / nft_mean);

    assert!(
        downs.is_empty(),
        "healthy servers went DOWN under load:\n{}",
        downs.join("\n")
    );
    // A collapse guard, not a benchmark (speed is `cargo xtask bench`'s).
    // The yardstick is nftables on the same testbed in the same run: on 2
    // cores shared by wrk, nginx and the kernel, both swing by about 20%
    // between 10 s slices (nftables seen from 13.7k/s to 18.1k/s in one run,
    // lbxdp from 13.4k/s to 19.5k/s; means 0.90 to 1.10 of each other), so
    // the bounds sit below that band and far above the defect's "a few percent".
    assert!(
        nft_mean > 100.0,
        "hardly any traffic got through nftables ({nft_mean:.0}/s)"
    );
    for (i, c) in lbxdp.iter().enumerate() {
        assert!(
            c.rate >= 0.6 * nft_mean,
            "slice {i} ran at {:.0}/s, below 60% of nftables' mean ({nft_mean:.0}/s)",
            c.rate
        );
    }
    assert!(
        lbxdp_mean >= 0.8 * nft_mean,
        "lbxdp's mean {lbxdp_mean:.0}/s is more than 20% below nftables' {nft_mean:.0}/s"
    );
    let fe = &report["frontends"][0];
    assert_eq!(fe["drop_no_port"].as_u64(), Some(0), "{fe}");
}

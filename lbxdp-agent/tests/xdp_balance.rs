//! The XDP balancer end to end: real nginx backends, real curl and socat
//! clients, the agent in the LB's namespace in native mode. Needs root; skips
//! loudly without it.
mod common;

use std::{collections::BTreeMap, time::Duration};

use common::clients::tally;
use lbxdp_testbed::{Host, Layout, Testbed};

const REQUESTS: usize = 3000;
const UDP_FLOWS: u16 = 20;

fn haproxy_cfg(binds: &[String], servers: &[(String, String, u32)]) -> String {
    let mut s = String::from(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n",
    );
    for b in binds {
        s.push_str(&format!("    bind {b}\n"));
    }
    s.push_str("    default_backend pool\n\nbackend pool\n    balance roundrobin\n");
    for (name, addr, weight) in servers {
        s.push_str(&format!("    server {name} {addr} check weight {weight}\n"));
    }
    s
}

fn servers_v4(tb: &Testbed, port: u16, weights: &[u32]) -> Vec<(String, String, u32)> {
    tb.backends
        .iter()
        .zip(weights)
        .map(|(b, w)| (b.name.clone(), format!("{}:{port}", b.v4()), *w))
        .collect()
}

fn curl1(tb: &Testbed, host: &Host, url: &str) -> String {
    let out = tb
        .command(host, "curl")
        .args(["-sS", "-g", "--max-time", "5", url])
        .output_timeout(Duration::from_secs(10))
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn assert_spread(t: &BTreeMap<String, usize>, tb: &Testbed, weights: &[u32]) {
    let total: u32 = weights.iter().sum();
    let got: usize = t.values().sum();
    assert_eq!(got, REQUESTS, "every request gets an answer: {t:?}");
    // Each connection's 5-tuple hashes to a server like a weighted coin toss
    // (roundrobin in proxy mode is exact), so the bound is 5 binomial standard
    // deviations: a false failure is under one in a million, and weights 1,1,1
    // against 1,2,3 differ by ten of them.
    for (b, w) in tb.backends.iter().zip(weights) {
        let p = f64::from(*w) / f64::from(total);
        let expect = REQUESTS as f64 * p;
        let bound = 5.0 * (REQUESTS as f64 * p * (1.0 - p)).sqrt();
        let n = t.get(&b.name).copied().unwrap_or(0) as f64;
        assert!(
            (n - expect).abs() <= bound,
            "{}: {n} requests, expected {expect:.0} ±{bound:.0} (5 sd): {t:?}",
            b.name
        );
    }
}

#[test]
fn weights_spread_3000_requests_xdp() {
    weights_spread_3000_requests("xdp");
}

#[test]
fn weights_spread_3000_requests_proxy() {
    weights_spread_3000_requests("proxy");
}

/// The same config and assertions on balance through XDP and through the
/// userspace proxy; the counters' checks differ by what each one counts.
fn weights_spread_3000_requests(mode: &str) {
    let Some(mut tb) = common::testbed(&format!("weights_spread_3000_requests_{mode}"), Layout::OneArm, 3, true) else {
        return;
    };
    let vip = format!("{}:80", tb.lb.v4());
    for weights in [[1, 1, 1], [1, 2, 3]] {
        let cfg = haproxy_cfg(std::slice::from_ref(&vip), &servers_v4(&tb, 80, &weights));
        let agent = common::start_balancing(&mut tb, &cfg, &["--mode", mode]);
        let t = tally(&tb, &tb.client.clone(), &format!("http://{vip}/"), REQUESTS);
        eprintln!("{mode}, weights {weights:?}: {t:?}");
        let report = agent.stop();
        assert_spread(&t, &tb, &weights);
        if mode == "proxy" {
            assert_eq!(report["mode"], "proxy", "{report}");
            continue;
        }
        assert_eq!(report["mode"], "native");
        let fe = &report["frontends"][0];
        assert_eq!(
            fe["new_flows"].as_u64(),
            Some(REQUESTS as u64),
            "one new flow per request: {fe}"
        );
        assert_eq!(fe["drop_no_neigh"].as_u64(), Some(0), "{fe}");
        for s in report["servers"].as_array().expect("servers") {
            let name = s["name"].as_str().expect("name");
            assert_eq!(
                s["new_flows"].as_u64(),
                t.get(name).map(|n| *n as u64),
                "datapath and nginx agree on {name}"
            );
            assert!(
                s["packets_out"].as_u64().unwrap_or(0) > 0,
                "replies came back through the LB: {s}"
            );
        }
    }
}

#[test]
fn full_nat_hides_the_client_and_ipv6_works() {
    let Some(mut tb) = common::testbed("full_nat_hides_the_client_and_ipv6_works", Layout::OneArm, 3, true) else {
        return;
    };
    let (v4, v6) = (tb.lb.v4(), tb.lb.v6());
    let mut servers = servers_v4(&tb, 80, &[1, 1, 1]);
    let cfg_v4 = haproxy_cfg(&[format!("{v4}:80")], &servers);
    servers = tb
        .backends
        .iter()
        .map(|b| (b.name.clone(), format!("[{}]:80", b.v6()), 1))
        .collect();
    let cfg = format!("{cfg_v4}\nfrontend web6\n    bind [{v6}]:80\n    default_backend pool6\n\nbackend pool6\n")
        + &servers
            .iter()
            .map(|(n, a, w)| format!("    server {n} {a} weight {w}\n"))
            .collect::<String>();
    let agent = common::start_balancing(&mut tb, &cfg, &[]);

    let client = tb.client.clone();
    assert_eq!(
        curl1(&tb, &client, &format!("http://{v4}/ip")),
        v4.to_string(),
        "servers see the LB, not the client"
    );
    assert_eq!(
        curl1(&tb, &client, &format!("http://[{v6}]/ip")),
        v6.to_string(),
        "over IPv6 too"
    );
    let t = tally(&tb, &client, &format!("http://[{v6}]/"), 60);
    eprintln!("IPv6: {t:?}");
    assert_eq!(t.values().sum::<usize>(), 60);
    assert_eq!(t.len(), 3, "all three servers answer over IPv6: {t:?}");
    let report = agent.stop();
    assert_eq!(report["frontends"][1]["name"], "web6");
    assert!(
        report["frontends"][1]["new_flows"].as_u64().unwrap_or(0) >= 61,
        "{report}"
    );
}

#[test]
fn udp_through_the_vip() {
    let Some(mut tb) = common::testbed("udp_through_the_vip", Layout::OneArm, 3, false) else {
        return;
    };
    for b in tb.backends.clone() {
        // Each datagram gets the server's name back, from the port it went to.
        let child = tb
            .command(&b, "socat")
            .args([
                "-T",
                "5",
                "UDP4-RECVFROM:9000,fork,reuseaddr",
                &format!("SYSTEM:read line; echo {}", b.name),
            ])
            .spawn()
            .expect("socat");
        tb.adopt(child);
    }
    // Ready when each answers directly (bounded).
    for b in &tb.backends {
        let script = format!("echo hello | socat -t 0.5 -T 2 - UDP4:{}:9000", b.v4());
        let ready = (0..20).any(|_| {
            let out = tb
                .command(&tb.client, "bash")
                .args(["-c", &script])
                .output_timeout(Duration::from_secs(5));
            out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == b.name)
        });
        assert!(ready, "the UDP echo server on {} never answered", b.name);
    }
    let vip = tb.lb.v4();
    // No `check`: a TCP connect check of a UDP service fails, in HAProxy too.
    let cfg = haproxy_cfg(&[format!("{vip}:9000")], &servers_v4(&tb, 9000, &[1, 1, 1])).replace(" check ", " ");
    let agent = common::start_balancing(&mut tb, &cfg, &[]);
    let mut t: BTreeMap<String, usize> = BTreeMap::new();
    for port in 0..UDP_FLOWS {
        let script = format!(
            "echo hello | socat -t 0.5 -T 2 - UDP4:{vip}:9000,sourceport={}",
            41000 + port
        );
        let out = tb
            .command(&tb.client, "bash")
            .args(["-c", &script])
            .output_timeout(Duration::from_secs(10))
            .expect("socat client");
        *t.entry(String::from_utf8_lossy(&out.stdout).trim().to_string())
            .or_default() += 1;
    }
    eprintln!("UDP: {t:?}");
    let report = agent.stop();
    assert_eq!(
        t.get("").copied().unwrap_or(0),
        0,
        "datagrams without an answer: {t:?}; {report}"
    );
    assert!(t.len() >= 2, "{UDP_FLOWS} flows all on one server: {t:?}");
    assert!(
        report["counters"]["udp"]["packets"].as_u64().unwrap_or(0) >= 2 * u64::from(UDP_FLOWS),
        "{report}"
    );
}

#[test]
fn two_arm_dnat_keeps_the_client_address() {
    let Some(mut tb) = common::testbed("two_arm_dnat_keeps_the_client_address", Layout::TwoArm, 3, true) else {
        return;
    };
    let vip = tb.lb.v4();
    let cfg = haproxy_cfg(&[format!("{vip}:80")], &servers_v4(&tb, 80, &[1, 1, 1]));
    let agent = common::start_balancing(&mut tb, &cfg, &["--nat", "dnat", "-i", "eth0", "-i", "eth1"]);
    let client = tb.client.clone();
    assert_eq!(
        curl1(&tb, &client, &format!("http://{vip}/ip")),
        client.v4().to_string(),
        "DNAT keeps the client's address"
    );
    let t = tally(&tb, &client, &format!("http://{vip}/"), 90);
    eprintln!("two-arm DNAT: {t:?}");
    let report = agent.stop();
    assert_eq!(t.values().sum::<usize>(), 90, "{t:?}");
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(report["iface"], "eth0,eth1");
}

/// The server each source port's connection lands on: one new HTTP/1.0
/// connection per port, the same ports every time. The client closes first
/// and keeps TIME_WAIT, so it binds with SO_REUSEADDR and the namespace
/// allows reusing TIME_WAIT tuples (tcp_tw_reuse).
fn by_port(tb: &Testbed, vip: std::net::Ipv4Addr, port: u16, ports: std::ops::Range<u16>) -> Vec<String> {
    tb.in_netns(&tb.client, || {
        Ok(std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "1")?)
    })
    .expect("tcp_tw_reuse");
    ports
        .map(|p| {
            let script = format!(
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -t 3 -T 5 - TCP:{vip}:{port},sourceport={p},reuseaddr"
            );
            let out = tb
                .command(&tb.client, "bash")
                .args(["-c", &script])
                .output_timeout(Duration::from_secs(10))
                .expect("socat");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn reload_adds_a_server_and_keeps_long_flows() {
    let Some(mut tb) = common::testbed("reload_adds_a_server_and_keeps_long_flows", Layout::OneArm, 4, true) else {
        return;
    };
    common::start_echo_servers(&mut tb, 7000);
    let vip = tb.lb.v4();
    let hosts = tb.backends.clone();
    let servers = move |port: u16, weights: &[u32]| -> Vec<(String, String, u32)> {
        hosts
            .iter()
            .zip(weights)
            .map(|(b, w)| (b.name.clone(), format!("{}:{port}", b.v4()), *w))
            .collect()
    };
    let cfg = |n: usize, weights: &[u32]| {
        let web = haproxy_cfg(&[format!("{vip}:80")], &servers(80, weights)[..n]);
        let echo: String = servers(7000, weights)[..n]
            .iter()
            .map(|(name, addr, w)| format!("    server {name} {addr} weight {w}\n"))
            .collect();
        format!("{web}\nfrontend echo\n    bind {vip}:7000\n    default_backend echo\n\nbackend echo\n{echo}")
    };
    let mut agent = common::start_balancing(&mut tb, &cfg(3, &[1, 1, 1, 1]), &[]);
    let url = format!("http://{vip}/");
    let before = by_port(&tb, vip, 80, 20000..20200);
    let again = by_port(&tb, vip, 80, 20000..20200);
    let differ: Vec<_> = before
        .iter()
        .zip(&again)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .collect();
    assert!(
        differ.is_empty(),
        "the same 5-tuple must land on the same server: {differ:?}\n{}",
        agent.log()
    );

    // A long flow: 80 lines, one every 100 ms, echoed back through the LB.
    let mut long = tb
        .command(&tb.client, "bash")
        .args([
            "-c",
            &format!("for i in $(seq 80); do echo line $i; sleep 0.1; done | socat -t 3 - TCP:{vip}:7000"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("long flow");

    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, cfg(4, &[1, 1, 1, 1])).expect("config with web4");
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    agent.wait_for("configuration reloaded", Duration::from_secs(30));
    let after = by_port(&tb, vip, 80, 20000..20200);
    let moved: Vec<(&String, &String)> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    let to_web4 = moved.iter().filter(|(_, b)| b.as_str() == "web4").count();
    eprintln!(
        "adding web4 moved {} of {} flows, {to_web4} of them to web4",
        moved.len(),
        before.len()
    );
    assert!(
        before.iter().chain(&after).all(|n| n.starts_with("web")),
        "failed requests: {before:?} {after:?}"
    );
    let share = moved.len() as f64 / before.len() as f64;
    assert!(
        (0.12..=0.38).contains(&share),
        "adding 1 server to 3 moved {share:.2} of the flows, not about 1/4"
    );
    assert!(
        to_web4 * 10 >= moved.len() * 9,
        "flows moved between old servers: {moved:?}"
    );

    // A weight change, then a broken config that must change nothing.
    std::fs::write(&path, cfg(4, &[1, 2, 3, 1])).expect("config with new weights");
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    agent.wait_for("configuration reloaded", Duration::from_secs(30));
    std::fs::write(&path, "frontend broken\n    bind nonsense\n").expect("broken config");
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    agent.wait_for("reload failed", Duration::from_secs(30));
    assert!(
        curl1(&tb, &tb.client.clone(), &url).starts_with("web"),
        "a bad reload broke the service"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = long.try_wait().expect("waiting for the long flow") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the long flow did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut echoed = String::new();
    std::io::Read::read_to_string(&mut long.stdout.take().expect("stdout"), &mut echoed).expect("reading the echo");
    assert!(status.success(), "the long flow broke: {status}");
    let lines: Vec<&str> = echoed.lines().collect();
    assert_eq!(lines.len(), 80, "echoed: {echoed}");
    assert_eq!(lines.last().copied(), Some("line 80"));
    let report = agent.stop();
    let web4 = report["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|s| s["name"] == "web4" && s["addr"].as_str().is_some_and(|a| a.ends_with(":80")));
    assert!(
        web4.is_some_and(|s| s["new_flows"].as_u64().unwrap_or(0) > 0),
        "{report}"
    );
}

//! The first XDP program, end to end: a namespace testbed, the agent attached to
//! the LB's interface, real ping and curl traffic from the client, and the
//! counters the agent reports on SIGTERM. Needs root; skips loudly without it.
mod common;

use std::time::Duration;

use common::Agent;
use lbxdp_testbed::Layout;

const PINGS: usize = 5;
const CURLS: usize = 10;
const UDP_DATAGRAMS: usize = 5;

fn counters_see_the_traffic(xdp_mode: &str) {
    let Some(tb) = common::testbed("counters_see_the_traffic", Layout::OneArm, 1, true) else {
        return;
    };
    // A real server on the LB itself, so TCP connections to the LB complete.
    tb.start_nginx(&tb.lb.clone(), "lb", 8080).expect("nginx on the lb");
    let lb4 = tb.lb.v4();
    let lb6 = tb.lb.v6();

    let mut agent = Agent::start(&tb, &["-i", "eth0", "--xdp-mode", xdp_mode, "--stats-interval", "0"]);
    let mode = agent.attached_mode();
    if xdp_mode != "auto" {
        assert_eq!(mode, xdp_mode, "the agent must report the mode it was asked for");
    }
    assert!(
        tb.xdp_attached(&tb.lb, "eth0").expect("netlink link query"),
        "no XDP program on the LB's eth0"
    );

    let out = tb
        .command(&tb.client, "ping")
        .args(["-q", "-c", &PINGS.to_string(), "-i", "0.2", "-W", "2", &lb4.to_string()])
        .output_timeout(Duration::from_secs(20))
        .expect("ping");
    assert!(
        out.status.success(),
        "ping {lb4} failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = tb
        .command(&tb.client, "ping")
        .args([
            "-6",
            "-q",
            "-c",
            &PINGS.to_string(),
            "-i",
            "0.2",
            "-W",
            "2",
            &lb6.to_string(),
        ])
        .output_timeout(Duration::from_secs(20))
        .expect("ping -6");
    assert!(
        out.status.success(),
        "ping {lb6} failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    for i in 0..CURLS {
        let out = tb
            .command(&tb.client, "curl")
            .args(["-sS", "--max-time", "5", &format!("http://{lb4}:8080/")])
            .output_timeout(Duration::from_secs(10))
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "lb\n",
            "curl #{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Datagrams to a closed port: the LB answers with ICMP unreachable, but the
    // XDP program sees them first either way.
    let script = format!("for i in $(seq {UDP_DATAGRAMS}); do echo lbxdp > /dev/udp/{lb4}/9999; done");
    let out = tb
        .command(&tb.client, "bash")
        .args(["-c", &script])
        .output_timeout(Duration::from_secs(10))
        .expect("udp");
    assert!(
        out.status.success(),
        "sending UDP failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report = agent.stop();
    let c = &report["counters"];
    let packets = |p: &str| {
        c[p]["packets"]
            .as_u64()
            .unwrap_or_else(|| panic!("no {p} counter in {report}"))
    };
    eprintln!("mode {mode}, counters: {c}");
    assert!(
        packets("icmp") >= PINGS as u64,
        "icmp {} < {PINGS} pings",
        packets("icmp")
    );
    // Echo requests plus neighbour discovery.
    assert!(
        packets("icmpv6") >= PINGS as u64,
        "icmpv6 {} < {PINGS} pings",
        packets("icmpv6")
    );
    // A completed HTTP exchange shows the LB at least a SYN, an ACK and the request.
    assert!(
        packets("tcp") >= 3 * CURLS as u64,
        "tcp {} < 3 x {CURLS} connections",
        packets("tcp")
    );
    assert!(
        packets("udp") >= UDP_DATAGRAMS as u64,
        "udp {} < {UDP_DATAGRAMS} datagrams",
        packets("udp")
    );
    assert!(
        packets("ipv4") >= packets("icmp") + packets("tcp") + packets("udp"),
        "ipv4 must cover icmp+tcp+udp"
    );
    assert!(packets("ipv6") >= packets("icmpv6"), "ipv6 must cover icmpv6");
    assert!(
        c["tcp"]["bytes"].as_u64().unwrap_or(0) >= 3 * CURLS as u64 * 54,
        "tcp bytes too small"
    );
    assert_eq!(packets("malformed"), 0, "well-formed traffic counted as malformed");

    assert!(
        !tb.xdp_attached(&tb.lb, "eth0").expect("netlink link query"),
        "XDP program left on eth0 after SIGTERM"
    );
}

#[test]
fn counters_see_the_traffic_native() {
    counters_see_the_traffic("native");
}

#[test]
fn counters_see_the_traffic_generic() {
    counters_see_the_traffic("generic");
}

#[test]
fn unknown_interface_is_a_clear_error() {
    let Some(tb) = common::testbed("unknown_interface_is_a_clear_error", Layout::OneArm, 1, false) else {
        return;
    };
    let out = tb
        .command(&tb.lb, common::agent_bin())
        .args(["-i", "nope0"])
        .output_timeout(Duration::from_secs(20))
        .expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains("no network interface named \"nope0\""), "stderr: {err}");
    assert!(!err.contains("panicked"), "stderr: {err}");
}

#[test]
fn without_privilege_the_agent_says_what_to_do() {
    let Some(tb) = common::testbed("without_privilege_the_agent_says_what_to_do", Layout::OneArm, 1, false) else {
        return;
    };
    // nobody, with no capabilities: the kernel refuses to create BPF maps.
    let out = tb
        .command(&tb.lb, "setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            common::agent_bin(),
            "-i",
            "eth0",
        ])
        .output_timeout(Duration::from_secs(20))
        .expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("permission denied") && err.contains("CAP_BPF"),
        "stderr: {err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "one line of error: {err}"
    );
    assert!(!tb.xdp_attached(&tb.lb, "eth0").expect("netlink link query"));
}

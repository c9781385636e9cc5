//! The datapath outlives the agent: SIGKILL under load, a new agent four
//! seconds later, and not one connection fails, because the program, its
//! link and its maps are pinned and the new agent adopts them (the same path
//! serves a binary upgrade). `lbxdp-agent --detach` then removes what a
//! killed agent left.
mod common;

use std::time::Duration;

use common::Agent;
use lbxdp_testbed::{Layout, Testbed};

const LOAD_SECS: u64 = 11;

fn sysctl(tb: &Testbed, path: &'static str) -> String {
    tb.in_netns(&tb.lb, || Ok(std::fs::read_to_string(path)?.trim().to_string()))
        .unwrap_or_else(|e| panic!("reading {path}: {e:#}"))
}

fn reserved_ports(tb: &Testbed) -> String {
    sysctl(tb, "/proc/sys/net/ipv4/ip_local_reserved_ports")
}

const FORWARDING: &str = "/proc/sys/net/ipv4/conf/eth0/forwarding";

#[test]
fn sigkill_and_a_new_agent_lose_no_connection() {
    let Some(tb) = common::plain_testbed("sigkill_and_a_new_agent_lose_no_connection", Layout::OneArm, 3) else {
        return;
    };
    let path = common::write_config(&tb, &common::web_config(&tb, "check inter 2000 fall 2 rise 2"));
    let args = ["-f", path.as_str(), "-i", "eth0", "--stats-interval", "0"];
    assert_eq!(reserved_ports(&tb), "", "a fresh namespace reserves no ports");
    assert_eq!(sysctl(&tb, FORWARDING), "0", "a fresh namespace doesn't forward");

    let mut first = Agent::start(&tb, &args);
    first.wait_for("datapath pinned under", Duration::from_secs(30));
    let url = format!("http://{}/", tb.lb.v4());
    let out = std::thread::scope(|scope| {
        let load = scope.spawn(|| common::wrk_close(&tb, &url, LOAD_SECS, 1));
        std::thread::sleep(Duration::from_secs(3));
        first.kill();
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"),
            "the program stays attached after SIGKILL"
        );
        std::thread::sleep(Duration::from_secs(3));
        let mut second = Agent::start(&tb, &args);
        let line = second.wait_for("attached lbxdp to", Duration::from_secs(30));
        assert!(
            line.contains("adopted"),
            "the new agent adopts the pinned datapath: {line}"
        );
        second.wait_for("balancing", Duration::from_secs(30));
        let out = load.join().expect("wrk thread");
        (out, second)
    });
    let (wrk, second) = out;
    let text = wrk.text;
    eprintln!("{text}");
    let errors = text.lines().find(|l| l.contains("Socket errors")).unwrap_or_default();
    let requests = text.lines().find(|l| l.contains("requests in")).unwrap_or_default();
    eprintln!("across SIGKILL and a new agent 4 s later: {requests}; socket errors: {errors:?}");
    assert!(errors.is_empty(), "connections failed across the restart: {errors}");
    assert!(!text.contains("Non-2xx"), "non-2xx answers across the restart: {text}");

    // A clean stop detaches and removes everything, the port reservation too.
    let report = second.stop();
    assert_eq!(report["mode"], "generic", "{report}");
    assert!(!tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"), "SIGTERM detaches");
    assert_eq!(reserved_ports(&tb), "", "SIGTERM gives the reserved ports back");
    assert_eq!(sysctl(&tb, FORWARDING), "0", "SIGTERM restores forwarding");

    // A killed agent's leftovers go with --detach.
    let mut third = Agent::start(&tb, &args);
    third.wait_for("datapath pinned under", Duration::from_secs(30));
    third.kill();
    assert!(tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"));
    assert_ne!(
        reserved_ports(&tb),
        "",
        "the killed agent's reservation stays while its datapath runs"
    );
    common::clients::detach(&tb);
    assert!(
        !tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"),
        "--detach detaches"
    );
    assert_eq!(reserved_ports(&tb), "", "--detach gives the reserved ports back");
    assert_eq!(sysctl(&tb, FORWARDING), "0", "--detach restores forwarding");
}

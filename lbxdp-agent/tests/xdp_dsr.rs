//! Direct server return on one segment (`--nat dsr`), as an operator sets
//! it up: the servers hold the VIP on `lo` with `arp_ignore=1` and
//! `arp_announce=2`, the agent runs with its default flags otherwise, and
//! the client's veths keep Linux's default offloads. Requests through the
//! VIP are answered by every server, over IPv4 and IPv6, and the answers
//! go from the servers straight to the client: the LB counts packets in,
//! none out. (Over IPv6 this needs the LB's own connections, its health
//! checks, not to come from the VIP, which the servers hold: the agent adds
//! an IPv6 VIP deprecated, so source selection passes it over.) What DSR
//! can't do is refused with the server's line. Needs root; skips loudly
//! without it.
mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{Agent, clients::curl};
use lbxdp_testbed::{Layout, Testbed};

/// A VIP of its own: the LB's address can't be it, since a server holding
/// the LB's address on `lo` would take the LB's health checks for martians.
const VIP: &str = "198.18.0.50";
const VIP6: &str = "fd00:198:18::50";

fn config(tb: &Testbed, port: u16) -> String {
    let mut s = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {VIP}:80\n    default_backend pool\n\nbackend pool\n"
    );
    for b in &tb.backends {
        s.push_str(&format!("    server {} {}:{port} check inter 500\n", b.name, b.v4()));
    }
    // The same over IPv6: XDP doesn't translate families, so its own servers.
    s.push_str(&format!(
        "\nfrontend web6\n    bind [{VIP6}]:80\n    default_backend pool6\n\nbackend pool6\n"
    ));
    for b in &tb.backends {
        s.push_str(&format!("    server {} [{}]:{port} check inter 500\n", b.name, b.v6()));
    }
    s
}

#[test]
fn servers_holding_the_vip_answer_the_client_directly() {
    let Some(tb) = common::plain_testbed("servers_holding_the_vip_answer_the_client_directly", Layout::OneArm, 2)
    else {
        return;
    };
    // What a DSR server needs (README, "Direct server return").
    for b in &tb.backends {
        for vip in [VIP, VIP6] {
            let vip = vip.parse().expect("a VIP");
            tb.add_vip_to_lo(b, vip).expect("the VIP on the server's lo");
        }
    }
    let cfg = common::write_config(&tb, &config(&tb, 80));
    let mut agent = Agent::start(
        &tb,
        &["-f", &cfg, "-i", "eth0", "--nat", "dsr", "--stats-interval", "0"],
    );
    agent.wait_for("direct server return", Duration::from_secs(30));
    agent.wait_for("balancing", Duration::from_secs(30));
    let mut answers = BTreeMap::new();
    for (i, url) in [format!("http://{VIP}/"), format!("http://[{VIP6}]/")]
        .iter()
        .cycle()
        .take(80)
        .enumerate()
    {
        let body = curl(&tb, &tb.client, url).unwrap_or_else(|e| panic!("request {i} through the VIP ({url}): {e:#}"));
        *answers
            .entry((url.contains('['), body.trim().to_string()))
            .or_insert(0u32) += 1;
    }
    let report = agent.stop();
    assert_eq!(
        answers.keys().cloned().collect::<Vec<_>>(),
        [
            (false, "web1".to_string()),
            (false, "web2".into()),
            (true, "web1".into()),
            (true, "web2".into())
        ],
        "every answer from a server, both servers answering over IPv4 and IPv6: {answers:?}"
    );
    for fe in [0, 1] {
        assert_eq!(report["frontends"][fe]["new_flows"].as_u64(), Some(40), "{report}");
    }
    for s in report["servers"].as_array().expect("servers") {
        // Requests came through the LB, answers went around it.
        assert!(s["packets_in"].as_u64().unwrap_or(0) > 0, "{s}");
        assert_eq!(s["packets_out"].as_u64(), Some(0), "replies went through the LB: {s}");
    }
}

#[test]
fn what_direct_server_return_cannot_do_is_refused_with_its_line() {
    let Some(tb) = common::plain_testbed("what_direct_server_return_cannot_do_is_refused", Layout::OneArm, 1) else {
        return;
    };
    // A server on another port: the frame reaches it as the client sent it.
    let cfg = common::write_config(&tb, &config(&tb, 8080));
    let mut agent = Agent::start(&tb, &["-f", &cfg, "-i", "eth0", "--nat", "dsr"]);
    assert!(!agent.wait_exit(Duration::from_secs(30)).success());
    let log = agent.log();
    assert!(
        log.contains("haproxy.cfg:12: server pool/web1 listens on port 8080, but frontend web takes 198.18.0.50:80"),
        "{log}"
    );
    // The proxy can't do it, and says so rather than proxying.
    let cfg = common::write_config(&tb, &config(&tb, 80));
    let mut agent = Agent::start(&tb, &["-f", &cfg, "--mode", "proxy", "--nat", "dsr"]);
    assert!(!agent.wait_exit(Duration::from_secs(30)).success());
    let log = agent.log();
    assert!(log.contains("--nat dsr: only the XDP datapath does it"), "{log}");
}

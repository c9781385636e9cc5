//! Logging into a real rsyslog, configured as the seed configures it
//! (`$ModLoad imudp`, `$UDPServerRun 514`, `local2.* <file>`), with the
//! seed's `log 127.0.0.1 local2`: the proxy's tcplog lines and, in both
//! modes, the health transitions arrive in rsyslog's file. Also `format
//! rfc5424` with a `log-tag`, which rsyslog parses as RFC 5424.
mod common;

use std::time::Duration;

use common::rsyslog::{start_rsyslog, wait_for_line};
use lbxdp_testbed::Layout;

/// The test's haproxy.cfg: `global` lines, `defaults` lines, and a TCP
/// frontend over the testbed's servers, checked fast enough to go DOWN soon.
fn config(tb: &lbxdp_testbed::Testbed, global: &str, defaults: &str) -> String {
    let servers: String = tb
        .backends
        .iter()
        .map(|b| format!("    server {} {}:80 check inter 300 fall 1 rise 1\n", b.name, b.v4()))
        .collect();
    format!(
        "global\n{global}\ndefaults\n    mode tcp\n    log global\n{defaults}    \
         timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {}:80\n    default_backend pool\n\nbackend pool\n{servers}",
        tb.lb.v4()
    )
}

fn seed_logging(mode: &str) {
    let name = format!("seed_logging_{mode}");
    let Some(mut tb) = common::plain_testbed(&name, Layout::OneArm, 2) else {
        return;
    };
    let Some(file) = start_rsyslog(&mut tb) else {
        return;
    };
    let cfg = config(&tb, "    log 127.0.0.1 local2\n", "    option tcplog\n");
    let path = common::write_config(&tb, &cfg);
    let mut args = vec!["-f", path.as_str(), "-i", "eth0", "--mode", mode];
    if mode == "xdp" {
        args.extend(["--xdp-mode", "generic"]);
    }
    let mut agent = common::Agent::start(&tb, &args);
    agent.wait_for("balancing", Duration::from_secs(20));
    let url = format!("http://{}/", tb.lb.v4());
    let body = common::clients::curl(&tb, &tb.client, &url)
        .unwrap_or_else(|e| panic!("curl through the VIP: {e}\n{}", agent.log()));
    assert!(body.starts_with("web"), "{body}");
    if mode == "proxy" {
        // HAProxy's tcplog: "client:port [date] web pool/webN Tw/Tc/Tt bytes --".
        let line = wait_for_line(&file, "tcplog line", |l| {
            l.contains(" web pool/web") && l.contains(" --")
        });
        assert!(
            line.contains(&tb.client.v4().to_string()),
            "the client's address: {line}"
        );
    }
    // Both modes: a health transition, at HAProxy's level, through rsyslog.
    let web2 = tb.backends[1].clone();
    tb.stop_nginx(&web2, 80).expect("stop web2");
    let line = wait_for_line(&file, "DOWN line", |l| l.contains("Server pool/web2 is DOWN"));
    assert!(line.contains("1 active and 0 backup servers left"), "{line}");
    agent.stop();
}

#[test]
fn seed_logging_proxy() {
    seed_logging("proxy");
}

#[test]
fn seed_logging_xdp() {
    seed_logging("xdp");
}

/// `log 127.0.0.1 format rfc5424 local2` and `log-tag lbtest`: rsyslog reads
/// the RFC 5424 header (its file keeps the microseconds of the timestamp,
/// which it drops for RFC 3164 lines, and shows APP-NAME[PROCID] as the tag,
/// as it does for real HAProxy 2.6's rfc5424 lines).
#[test]
fn rfc5424_logging() {
    let Some(mut tb) = common::plain_testbed("rfc5424_logging", Layout::OneArm, 2) else {
        return;
    };
    let Some(file) = start_rsyslog(&mut tb) else {
        return;
    };
    let cfg = config(&tb, "    log 127.0.0.1 format rfc5424 local2\n    log-tag lbtest\n", "");
    let path = common::write_config(&tb, &cfg);
    let mut agent = common::Agent::start(&tb, &["-f", path.as_str(), "-i", "eth0", "--mode", "proxy"]);
    agent.wait_for("balancing", Duration::from_secs(20));
    let pid = agent.pid();
    let web2 = tb.backends[1].clone();
    tb.stop_nginx(&web2, 80).expect("stop web2");
    let line = wait_for_line(&file, "DOWN line", |l| l.contains("Server pool/web2 is DOWN"));
    // "2026-11-29T22:04:53.976486+00:00 - lbtest[1234] Server pool/web2 is DOWN, ..."
    let tag = format!(" lbtest[{pid}] Server pool/web2 is DOWN");
    assert!(line.contains(&tag), "tag and message as rsyslog parsed them: {line}");
    let stamp = line.split(' ').next().unwrap_or_default();
    let fraction = stamp
        .split_once('.')
        .map(|(_, f)| &f[..f.find(['+', '-', 'Z']).unwrap_or(f.len())]);
    assert_eq!(
        fraction.map(str::len),
        Some(6),
        "rsyslog kept the RFC 5424 timestamp's microseconds: {line}"
    );
    assert!(line.contains("1 active and 0 backup servers left"), "{line}");
    agent.stop();
}

//! `tcp-request connection` and `use_backend ... if` rules served by the
//! agent in proxy mode, with real nginx backends and curl as the client: a
//! blocklist read with `-f` (the client's IPv6 address), `use_backend` by
//! destination port, failover by `nbsrv(main) lt 1` once main's only server
//! fails its checks; and `--mode xdp` refusing the same config with file:line,
//! `--mode auto` falling back to the proxy for it. Needs root (the testbed);
//! skips loudly without it.
mod common;

use std::time::{Duration, Instant};

use common::{Agent, agent_bin, clients::curl};
use lbxdp_testbed::{Layout, Testbed};

/// The config and the line of its first rule.
fn write_config(tb: &Testbed) -> (String, usize) {
    let list = tb.dir().join("block.lst");
    std::fs::write(&list, format!("# refused clients\n192.0.2.0/24\n{}\n", tb.client.v6())).expect("block.lst");
    let [web1, web2, web3] = [0, 1, 2].map(|i| tb.backends[i].v4());
    let lb = tb.lb.v4();
    let lb6 = tb.lb.v6();
    let text = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {lb}:80\n    bind [{lb6}]:80\n    bind {lb}:8080\n\
         \x20   acl blocked src -f {list}\n\
         \x20   acl main_down nbsrv(main) lt 1\n\
         \x20   tcp-request connection reject if blocked\n\
         \x20   use_backend spare if main_down\n\
         \x20   use_backend alt if {{ dst_port 8080 }}\n\
         \x20   default_backend main\n\n\
         backend main\n    server web1 {web1}:80 check inter 200 fall 1 rise 1\n\n\
         backend spare\n    server web2 {web2}:80\n\n\
         backend alt\n    server web3 {web3}:80\n",
        list = list.display()
    );
    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, text).expect("haproxy.cfg");
    (path.to_string_lossy().into_owned(), 13)
}

fn get(tb: &Testbed, url: &str) -> Option<String> {
    curl(tb, &tb.client, url).ok().map(|b| b.trim().to_string())
}

#[test]
fn rules_reject_switch_and_fail_over_in_proxy_mode() {
    let Some(tb) = common::testbed(
        "rules_reject_switch_and_fail_over_in_proxy_mode",
        Layout::OneArm,
        3,
        true,
    ) else {
        return;
    };
    let (cfg, rule_line) = write_config(&tb);
    let (web1, web2, web3) = (&tb.backends[0], &tb.backends[1], &tb.backends[2]);

    // XDP doesn't enforce the rules yet: it says where they are and stops.
    let out = tb
        .command(&tb.lb, agent_bin())
        .args(["-f", &cfg, "--mode", "xdp", "-i", "eth0"])
        .output_timeout(Duration::from_secs(30))
        .expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{cfg}:{rule_line}: frontend web: 'tcp-request connection'")),
        "{err}"
    );

    // Auto: the proxy serves it, and says why.
    let mut agent = Agent::start(&tb, &["-f", &cfg, "-i", "eth0"]);
    let line = agent.wait_for("falling back to the userspace proxy", Duration::from_secs(30));
    assert!(line.contains("doesn't enforce ACL rules"), "{line}");
    agent.wait_for("balancing", Duration::from_secs(30));

    let v4 = format!("http://{}/", tb.lb.v4());
    let v6 = format!("http://[{}]/", tb.lb.v6());
    assert_eq!(get(&tb, &v4).as_deref(), Some(web1.name.as_str()));
    // The client's IPv6 address is on the list: refused.
    assert_eq!(get(&tb, &v6), None);
    assert_eq!(
        get(&tb, &format!("http://{}:8080/", tb.lb.v4())).as_deref(),
        Some(web3.name.as_str())
    );

    // main's only server goes away: once its check fails, nbsrv(main) is 0.
    tb.stop_nginx(web1, 80).expect("stop web1's nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = get(&tb, &v4);
        if last.as_deref() == Some(web2.name.as_str()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last.as_deref(), Some(web2.name.as_str()), "no failover to spare");
    let report = agent.stop();
    assert_eq!(report["mode"], "proxy", "{report}");
}

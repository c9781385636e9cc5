//! Health-gated announcement (issue 15): with `--announce-table 100` the
//! agent keeps the VIP's host route in routing table 100 (which bird2's
//! kernel protocol exports by BGP) while the backend has a server up,
//! withdraws it when the last server fails its checks, puts it back when
//! one returns, and withdraws it when the agent stops. The table is read
//! with `ip route`, as an operator (or bird2) sees it. Needs root; skips
//! loudly without it.
mod common;

use std::time::{Duration, Instant};

use common::Agent;
use lbxdp_testbed::{Layout, Testbed};

const TABLE: &str = "100";

/// Table 100's routes, as `ip route` prints them.
fn table(tb: &Testbed) -> String {
    let out = tb
        .command(&tb.lb, "ip")
        .args(["-4", "route", "show", "table", TABLE])
        .output_timeout(Duration::from_secs(5))
        .expect("ip route");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls (bounded) until the VIP's route is there (`present`) or gone.
fn wait_route(tb: &Testbed, present: bool, what: &str) {
    let vip = format!("{} dev eth0 proto static scope link", tb.lb.v4());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let routes = table(tb);
        if routes.contains(&vip) == present {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: table {TABLE} holds:\n{routes}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_vip_is_announced_while_it_has_a_server_up() {
    let Some(tb) = common::testbed("a_vip_is_announced_while_it_has_a_server_up", Layout::OneArm, 1, true) else {
        return;
    };
    let cfg = common::write_config(&tb, &common::web_config(&tb, "check inter 200 fall 1 rise 1"));
    let mut agent = Agent::start(
        &tb,
        &[
            "-f",
            &cfg,
            "-i",
            "eth0",
            "--stats-interval",
            "0",
            "--announce-table",
            TABLE,
        ],
    );
    agent.wait_for("balancing", Duration::from_secs(30));
    wait_route(&tb, true, "announced once serving");
    let url = format!("http://{}/", tb.lb.v4());
    assert_eq!(
        common::clients::curl(&tb, &tb.client, &url)
            .ok()
            .map(|b| b.trim().to_string()),
        Some(tb.backends[0].name.clone())
    );

    let web1 = tb.backends[0].clone();
    tb.stop_nginx(&web1, 80).expect("stop nginx");
    wait_route(&tb, false, "withdrawn with no server up");
    tb.start_nginx(&web1, &web1.name, 80).expect("start nginx");
    wait_route(&tb, true, "announced again once the server is back");

    agent.stop();
    wait_route(&tb, false, "withdrawn when the agent stops");
}

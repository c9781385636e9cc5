//! Health-gated announcement (issue 15): with `--announce-table 100` the
//! agent keeps the VIP's host route in routing table 100 (which bird2's
//! kernel protocol exports by BGP) while the backend has a server up,
//! withdraws it when the last server fails its checks, puts it back when
//! one returns, and withdraws it when the agent stops. The table is read
//! with `ip route`, as an operator sees it; then the same through bird2: the
//! LB node's bird2 exports the table to a bird2 "router" in the client's
//! namespace over BGP, whose routes follow. Needs root; skips loudly
//! without it.
mod common;

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use common::Agent;
use lbxdp_testbed::{Host, Layout, Testbed};

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

/// The agent with `--announce-table` on one nginx backend with fast
/// checks; `check(present, what)` waits for the VIP's route to be there or
/// gone: once serving, with the server down, back up, and after the stop.
fn scenario(tb: &Testbed, check: impl Fn(bool, &str)) {
    let cfg = common::write_config(tb, &common::web_config(tb, "check inter 200 fall 1 rise 1"));
    let args = [
        "-f",
        &cfg,
        "-i",
        "eth0",
        "--stats-interval",
        "0",
        "--announce-table",
        TABLE,
    ];
    let mut agent = Agent::start(tb, &args);
    agent.wait_for("balancing", Duration::from_secs(30));
    check(true, "announced once serving");
    let web1 = tb.backends[0].clone();
    tb.stop_nginx(&web1, 80).expect("stop nginx");
    check(false, "withdrawn with no server up");
    tb.start_nginx(&web1, &web1.name, 80).expect("start nginx");
    check(true, "announced again once the server is back");
    agent.stop();
    check(false, "withdrawn when the agent stops");
}

#[test]
fn a_vip_is_announced_while_it_has_a_server_up() {
    let Some(tb) = common::testbed("a_vip_is_announced_while_it_has_a_server_up", Layout::OneArm, 1, true) else {
        return;
    };
    // Once serving, the client gets an answer through the VIP too.
    let url = format!("http://{}/", tb.lb.v4());
    scenario(&tb, |present, what| {
        wait_route(&tb, present, what);
        if present && what == "announced once serving" {
            assert_eq!(
                common::clients::curl(&tb, &tb.client, &url)
                    .ok()
                    .map(|b| b.trim().to_string()),
                Some(tb.backends[0].name.clone())
            );
        }
    });
}

/// A bird2 daemon in a host's namespace, in the foreground: ended by its
/// pid when dropped.
struct Bird {
    child: Child,
    sock: PathBuf,
}

impl Bird {
    fn start(tb: &Testbed, host: &Host, name: &str, conf: &str) -> Bird {
        let path = tb.dir().join(format!("{name}.conf"));
        std::fs::write(&path, conf).expect("bird config");
        let sock = tb.dir().join(format!("{name}.ctl"));
        let log = std::fs::File::create(tb.dir().join(format!("{name}.log"))).expect("bird log");
        let child = tb
            .command(host, "bird")
            .args(["-f", "-c"])
            .arg(&path)
            .arg("-s")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting bird (`cargo xtask setup` installs bird2)");
        Bird { child, sock }
    }

    /// `birdc ARGS` from `host`'s namespace.
    fn ask(&self, tb: &Testbed, host: &Host, args: &[&str]) -> String {
        let out = tb
            .command(host, "birdc")
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .output_timeout(Duration::from_secs(5))
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = lbxdp_testbed::terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Polls (bounded) until the router's bird2 has (or hasn't) the VIP's /32.
fn wait_bgp(tb: &Testbed, birds: (&Bird, &Bird), present: bool, what: &str) {
    let (router, node) = birds;
    let vip = format!("{}/32", tb.lb.v4());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let routes = router.ask(tb, &tb.client, &["show", "route"]);
        if routes.contains(&vip) == present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the router's bird2 shows:\n{routes}\n{}\nthe node's:\n{}\n{}",
            router.ask(tb, &tb.client, &["show", "protocols", "all"]),
            node.ask(tb, &tb.lb, &["show", "route", "table", "vips"]),
            node.ask(tb, &tb.lb, &["show", "protocols", "all"]),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bird2_announces_the_vip_by_bgp_while_it_can_be_served() {
    let test = "bird2_announces_the_vip_by_bgp_while_it_can_be_served";
    if !std::path::Path::new("/usr/sbin/bird").exists() {
        eprintln!("\n!!! SKIPPED {test}: /usr/sbin/bird is missing (`cargo xtask setup` installs bird2). !!!\n");
        return;
    }
    let Some(tb) = common::testbed(test, Layout::OneArm, 1, true) else {
        return;
    };
    let (lb, router) = (tb.lb.v4(), tb.client.v4());
    // The README's node config, with the test's addresses and short timers.
    let node = format!(
        "router id {lb};\nipv4 table vips;\nprotocol device {{ scan time 1; }}\n\
         protocol kernel lbxdp {{ ipv4 {{ table vips; import all; export none; }}; kernel table {TABLE}; learn; \
         scan time 1; }}\n\
         protocol bgp upstream {{ local {lb} as 65001; neighbor {router} as 65000; hold time 3; \
         connect retry time 1; ipv4 {{ table vips; import none; export all; }}; }}\n"
    );
    let peer = format!(
        "router id {router};\nprotocol device {{ scan time 1; }}\n\
         protocol bgp lb {{ local {router} as 65000; neighbor {lb} as 65001; hold time 3; connect retry time 1; \
         ipv4 {{ import all; export none; }}; }}\n"
    );
    let router_bird = Bird::start(&tb, &tb.client, "router", &peer);
    let node_bird = Bird::start(&tb, &tb.lb, "node", &node);
    scenario(&tb, |present, what| {
        wait_bgp(&tb, (&router_bird, &node_bird), present, what)
    });
}

/// Polls (bounded) until table 100 satisfies `ok`.
fn wait_table(tb: &Testbed, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let routes = table(tb);
        if ok(&routes) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: table {TABLE} holds:\n{routes}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A killed agent can't withdraw: its route stays, as its datapath does,
/// which keeps forwarding. The next agent takes the routes it finds over
/// and withdraws those its config no longer serves (here the frontend
/// moved to another VIP); `--detach` removes them with the datapath, so a
/// node never announces a VIP that nothing serves.
#[test]
fn routes_a_killed_agent_left_are_taken_over_or_detached() {
    let Some(tb) = common::testbed(
        "routes_a_killed_agent_left_are_taken_over_or_detached",
        Layout::OneArm,
        1,
        true,
    ) else {
        return;
    };
    let route = |vip: &str| format!("{vip} dev eth0 proto static scope link");
    let (first, second) = (tb.lb.v4().to_string(), "198.18.0.50".to_string());
    let web = common::web_config(&tb, "check inter 200 fall 1 rise 1");
    let start = |cfg: &str| {
        let path = common::write_config(&tb, cfg);
        let args = [
            "-f",
            &path,
            "-i",
            "eth0",
            "--stats-interval",
            "0",
            "--announce-table",
            TABLE,
        ];
        let mut agent = Agent::start(&tb, &args);
        agent.wait_for("balancing", Duration::from_secs(30));
        agent
    };
    let agent = start(&web);
    wait_table(&tb, "announced", |t| t.contains(&route(&first)));
    agent.kill();
    assert!(table(&tb).contains(&route(&first)), "a killed agent's route stays");
    let url = format!("http://{first}/");
    assert!(
        common::clients::curl(&tb, &tb.client, &url).is_ok(),
        "the datapath the route leads to still serves"
    );

    let agent = start(&web.replace(&format!("bind {first}:80"), &format!("bind {second}:80")));
    wait_table(&tb, "the next agent withdrew what it doesn't serve", |t| {
        t.contains(&route(&second)) && !t.contains(&route(&first))
    });
    agent.kill();
    assert!(table(&tb).contains(&route(&second)));
    let out = tb
        .command(&tb.lb, common::agent_bin())
        .arg("--detach")
        .output_timeout(Duration::from_secs(20))
        .expect("lbxdp-agent --detach");
    assert!(
        out.status.success(),
        "--detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = table(&tb);
    assert!(
        !left.contains("proto static"),
        "--detach left routes in table {TABLE}:\n{left}"
    );
}

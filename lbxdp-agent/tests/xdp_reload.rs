//! Ten reloads under load, with the agent's default flags: a weight change,
//! bad configs, a new server, a new and a removed VIP, a server whose
//! address changed. No request may fail; what the host got (VIP addresses,
//! neighbour entries) follows the config; a bad config changes nothing.
mod common;

use std::time::Duration;

use lbxdp_testbed::{Layout, Testbed};
use nix::sys::signal::Signal;

const LOAD_SECS: u64 = 16;

/// The reload test saturates both cores for 16 s, and the per-CPU backlog
/// queues are shared by every namespace: another test's requests could be
/// dropped meanwhile (a clean-clone run lost one curl that way). One at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
const EXTRA_VIP: &str = "198.18.0.200";

/// One step's config. `servers`: (name, backend index, weight).
fn config(tb: &Testbed, servers: &[(&str, usize, u32)], extra_vip: bool, broken: bool) -> String {
    let mut s = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {}:80\n    default_backend pool\n\n",
        tb.lb.v4()
    );
    if extra_vip {
        s.push_str(&format!(
            "frontend extra\n    bind {EXTRA_VIP}:80\n    default_backend pool\n\n"
        ));
    }
    s.push_str("backend pool\n");
    if broken {
        s.push_str("    frobnicate the servers\n");
    }
    for (name, host, weight) in servers {
        s.push_str(&format!(
            "    server {name} {}:80 weight {weight} check inter 2000 fall 2 rise 2\n",
            tb.backends[*host].v4()
        ));
    }
    s
}

fn lb_has(tb: &Testbed, args: &[&str], needle: &str) -> bool {
    let out = tb
        .command(&tb.lb, "ip")
        .args(args)
        .output_timeout(Duration::from_secs(5))
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).contains(needle)
}

fn managed_neighbour(tb: &Testbed, ip: &str) -> bool {
    lb_has(tb, &["neigh", "show", ip], "managed")
}

/// What `n` requests to `url` answered, and curl's complaints if any.
fn answers(tb: &Testbed, url: &str, n: usize) -> String {
    let out = tb
        .command(&tb.client, "curl")
        .args(["-sS", "--max-time", "5", "-H", "Connection: close"])
        .args(std::iter::repeat_n(url, n))
        .output_timeout(Duration::from_secs(60))
        .expect("curl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn ten_reloads_under_load_lose_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = common::plain_testbed("ten_reloads_under_load_lose_nothing", Layout::OneArm, 4) else {
        return;
    };
    let path = tb.dir().join("haproxy.cfg");
    let write = |text: String| std::fs::write(&path, text).expect("haproxy.cfg");
    let base = [("web1", 0, 1), ("web2", 1, 1)];
    write(config(&tb, &base, false, false));
    let path_s = path.to_string_lossy().into_owned();
    let mut agent = common::Agent::start(&tb, &["-f", &path_s, "-i", "eth0", "--stats-interval", "0"]);
    agent.wait_for("balancing", Duration::from_secs(30));
    let url = format!("http://{}/", tb.lb.v4());
    let web3 = tb.backends[2].v4().to_string();

    type Step<'a> = (&'a str, Vec<(&'a str, usize, u32)>, bool, bool);
    let steps: Vec<Step> = vec![
        ("a weight change", vec![("web1", 0, 1), ("web2", 1, 3)], false, false),
        ("a bad config", vec![("web1", 0, 1)], false, true),
        (
            "a new server",
            vec![("web1", 0, 1), ("web2", 1, 3), ("web3", 2, 1)],
            false,
            false,
        ),
        (
            "a new VIP",
            vec![("web1", 0, 1), ("web2", 1, 3), ("web3", 2, 1)],
            true,
            false,
        ),
        (
            "a changed server address",
            vec![("web1", 0, 1), ("web2", 1, 3), ("web3", 3, 1)],
            true,
            false,
        ),
        (
            "a removed VIP",
            vec![("web1", 0, 1), ("web2", 1, 3), ("web3", 3, 1)],
            false,
            false,
        ),
        ("another bad config", vec![], false, true),
        (
            "weights back",
            vec![("web1", 0, 1), ("web2", 1, 1), ("web3", 3, 1)],
            false,
            false,
        ),
        ("a removed server", vec![("web1", 0, 1), ("web2", 1, 1)], false, false),
        ("the same config", vec![("web1", 0, 1), ("web2", 1, 1)], false, false),
    ];

    let wrk = std::thread::scope(|scope| {
        let load = scope.spawn(|| common::wrk_close(&tb, &url, LOAD_SECS, 1));
        std::thread::sleep(Duration::from_secs(1));
        for (what, servers, extra, broken) in &steps {
            write(config(&tb, servers, *extra, *broken));
            agent.signal(Signal::SIGHUP);
            let line = agent.wait_for("SIGHUP:", Duration::from_secs(10));
            eprintln!("reload with {what}: {line}");
            assert_eq!(
                line.contains("reload failed"),
                *broken,
                "reload with {what}: {line}\n{}",
                agent.log()
            );
            match *what {
                "a new server" => assert!(managed_neighbour(&tb, &web3), "web3's neighbour entry is managed"),
                "a new VIP" => {
                    assert!(lb_has(&tb, &["-br", "addr"], EXTRA_VIP), "the new VIP is on the LB");
                    let got = answers(&tb, &format!("http://{EXTRA_VIP}/"), 3);
                    assert_eq!(got.matches("web").count(), 3, "the new VIP answers: {got:?}");
                }
                "a changed server address" => {
                    let got = answers(&tb, &url, 30);
                    assert!(got.contains("web4"), "web3's new address takes requests: {got:?}");
                    assert!(!got.contains("web3"), "web3's old address takes none: {got:?}");
                }
                "a removed VIP" => {
                    assert!(!lb_has(&tb, &["-br", "addr"], EXTRA_VIP), "the VIP left the LB");
                    // One reload after the address change: its flows have drained.
                    assert!(
                        !managed_neighbour(&tb, &web3),
                        "the old address's managed neighbour entry is gone"
                    );
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
        load.join().expect("wrk thread")
    });
    let text = wrk.text;
    eprintln!("{text}");
    let errors = text.lines().find(|l| l.contains("Socket errors")).unwrap_or_default();
    let non2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .unwrap_or("0")
        .trim()
        .to_string();
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .unwrap_or_default()
        .to_string();
    eprintln!("across 10 reloads: {requests}; {errors}; non-2xx {non2xx}");
    assert!(errors.is_empty(), "socket errors across the reloads: {errors}");
    assert_eq!(non2xx, "0", "non-2xx answers across the reloads");
    let log = agent.log();
    let downs: Vec<&str> = log.lines().filter(|l| l.contains(" is DOWN")).collect();
    assert!(downs.is_empty(), "servers went DOWN:\n{}", downs.join("\n"));
    agent.stop();
}

/// A bind over a port range takes a frontend entry per port and protocol:
/// the maps are sized from the config, so 601 ports load (they used to end
/// the agent with the kernel's E2BIG) and every port serves.
#[test]
fn a_601_port_bind_loads_and_serves() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(tb) = common::plain_testbed("a_601_port_bind_loads_and_serves", Layout::OneArm, 1) else {
        return;
    };
    let cfg = format!(
        "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend many\n    bind {}:8000-8600\n    default_backend pool\n\nbackend pool\n    server web1 {}:80\n",
        tb.lb.v4(),
        tb.backends[0].v4()
    );
    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("haproxy.cfg");
    let path = path.to_string_lossy().into_owned();
    let mut agent = common::Agent::start(
        &tb,
        &["-f", &path, "-i", "eth0", "--mode", "xdp", "--stats-interval", "0"],
    );
    agent.wait_for("balancing", Duration::from_secs(30));
    let failed: Vec<(u16, String)> = [8000, 8300, 8600]
        .into_iter()
        .map(|port| (port, answers(&tb, &format!("http://{}:{port}/", tb.lb.v4()), 1)))
        .filter(|(_, got)| got.trim() != "web1")
        .collect();
    let log = agent.log();
    let report = agent.stop();
    // The counters say where a lost request went (a drop reason, or none).
    assert!(failed.is_empty(), "{failed:?}\n{log}\ncounters: {report:#}");
    assert_eq!(report["mode"], "generic", "{report}");
}

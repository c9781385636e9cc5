//! HAProxy's process model around one agent: `-D` returns once the agent
//! serves and leaves it in the background, and `-sf PID` hands the traffic
//! to a new agent (a copy of the binary, as a package upgrade installs one)
//! under wrk load without one failed connection, in proxy and XDP mode, the
//! old agent finishing its sessions first.
mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use common::{Agent, agent_bin, clients, runtime::KeepAlive};
use lbxdp_testbed::{Layout, Testbed};

const LOAD_SECS: u64 = 10;

/// The testbed's config with a stats socket (the new agent takes it over)
/// and, when given, the global section's extra lines.
fn config(tb: &Testbed, global: &str) -> (String, PathBuf) {
    let sock = tb.dir().join("stats.sock");
    let cfg = format!(
        "global\n    stats socket {} level admin\n{global}\n{}",
        sock.display(),
        common::web_config(tb, "check inter 1000")
    );
    (common::write_config(tb, &cfg), sock)
}

/// `show info`'s Pid line: which agent answers on the stats socket.
fn answering_pid(tb: &Testbed, sock: &Path) -> Option<u32> {
    clients::socat(tb, &tb.lb, sock, "show info")
        .lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .and_then(|p| p.trim().parse().ok())
}

fn upgrade_under_load(name: &str, mode_args: &[&str]) {
    let Some(tb) = common::testbed(name, Layout::OneArm, 3, true) else {
        return;
    };
    let xdp = !mode_args.contains(&"proxy");
    let (cfg, sock) = config(&tb, "");
    let mut args = vec!["-f", cfg.as_str()];
    args.extend_from_slice(mode_args);
    let mut old = Agent::start(&tb, &args);
    old.wait_for("balancing", Duration::from_secs(30));
    let old_pid = old.pid();
    // The upgrade installs a new binary; the old one keeps running from
    // the old inode.
    let new_bin = tb.dir().join("lbxdp-agent.new");
    std::fs::copy(agent_bin(), &new_bin).expect("copying the agent binary");
    let new_bin = new_bin.to_string_lossy().into_owned();

    // A session opened before the upgrade: the old agent must let it finish.
    let vip = SocketAddr::new(tb.lb.v4().into(), 80);
    let mut held = KeepAlive::connect(&tb, vip).expect("connecting to the VIP");
    let first = held.get().expect("GET on the held session");

    let url = format!("http://{}/", tb.lb.v4());
    let pid_text = old_pid.to_string();
    let (wrk, new) = std::thread::scope(|scope| {
        let load = scope.spawn(|| common::wrk_close(&tb, &url, LOAD_SECS, 1));
        std::thread::sleep(Duration::from_secs(3));
        let mut new_args = args.clone();
        new_args.extend_from_slice(&["-sf", &pid_text]);
        let mut new = Agent::start_program(&tb, &new_bin, &new_args);
        new.wait_for("balancing", Duration::from_secs(30));
        old.wait_for("SIGUSR1: soft stop", Duration::from_secs(10));
        (load.join().expect("wrk thread"), new)
    });
    eprintln!("{}", wrk.text);
    eprintln!(
        "across the upgrade ({}): {:.0} requests/s, socket errors {}",
        if xdp { "XDP" } else { "proxy" },
        wrk.rate,
        wrk.socket_errors()
    );
    assert_eq!(
        wrk.socket_errors(),
        0,
        "connections failed across the upgrade:\n{}",
        wrk.text
    );
    assert!(
        !wrk.text.contains("Non-2xx"),
        "non-2xx answers across the upgrade:\n{}",
        wrk.text
    );
    assert_eq!(
        answering_pid(&tb, &sock),
        Some(new.pid()),
        "the new agent answers on the stats socket"
    );

    if xdp {
        // The flows are the kernel's: the old agent leaves at once, and
        // leaves the datapath to the new one.
        let status = old.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "the old agent exited with {status}:\n{}", old.log());
        assert!(
            old.log()
                .contains(&format!("the datapath serves pid {} now", new.pid())),
            "{}",
            old.log()
        );
        assert!(tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"), "still attached");
        assert_eq!(held.get().expect("the held flow after the upgrade"), first);
    } else {
        // The old proxy serves its open session until it ends.
        std::thread::sleep(Duration::from_secs(1));
        assert!(old.running(), "the old agent left with a session open:\n{}", old.log());
        assert_eq!(held.get().expect("the held session after the upgrade"), first);
        drop(held);
        let status = old.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "the old agent exited with {status}:\n{}", old.log());
    }
    let body = clients::curl(&tb, &tb.client, &url).expect("a request after the upgrade");
    assert!(body.starts_with("web"), "{body}");
    new.stop();
    if xdp {
        assert!(
            !tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"),
            "the new agent's SIGTERM detaches"
        );
    }
}

#[test]
fn seamless_upgrade_proxy() {
    upgrade_under_load("seamless_upgrade_proxy", &["--mode", "proxy"]);
}

#[test]
fn seamless_upgrade_xdp() {
    // The flags a user starts it with: the interface from the bind line.
    upgrade_under_load("seamless_upgrade_xdp", &["--stats-interval", "0"]);
}

/// Ends the daemon this test started, by its pid, whatever happens.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn daemon_returns_once_serving() {
    let Some(tb) = common::testbed("daemon_returns_once_serving", Layout::OneArm, 2, true) else {
        return;
    };
    let pidfile = tb.dir().join("lbxdp.pid");
    let (cfg, _) = config(&tb, &format!("    daemon\n    pidfile {}", pidfile.display()));
    let out = tb
        .command(&tb.lb, agent_bin())
        .args(["-f", &cfg, "--mode", "proxy"])
        .output_timeout(Duration::from_secs(60))
        .expect("lbxdp-agent with daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("the pidfile")
        .trim()
        .parse()
        .expect("a pid in the pidfile");
    let daemon = Daemon(pid);
    assert!(
        stderr.contains("balancing"),
        "the start-up lines reach the terminal: {stderr}"
    );
    // Serving when the command returned: no wait.
    let body = clients::curl(&tb, &tb.client, &format!("http://{}/", tb.lb.v4())).expect("a request through the VIP");
    assert!(body.starts_with("web"), "{body}");
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid))).expect("getsid");
    assert_eq!(sid.as_raw(), pid, "the daemon leads a session of its own");

    // A bad configuration: the command fails with the place, nothing stays.
    let bad = tb.dir().join("bad.cfg");
    std::fs::write(&bad, "global\n    daemon\nfrontend f\n    bind :80\n    nonsense\n").expect("bad.cfg");
    let out = tb
        .command(&tb.lb, agent_bin())
        .args(["-f", &bad.to_string_lossy(), "-D", "--mode", "proxy"])
        .output_timeout(Duration::from_secs(60))
        .expect("lbxdp-agent -D with a bad config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad config started: {stderr}");
    assert!(stderr.contains("bad.cfg:5"), "the error names its place: {stderr}");

    // SIGTERM to the pid in the pidfile stops it and removes the pidfile.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pidfile.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pidfile.exists(), "the pidfile stays after SIGTERM");
    drop(daemon);
}

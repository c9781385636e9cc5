//! Running lbxdp as a systemd service: the contrib unit passes
//! `systemd-analyze verify` without a warning, and the agent speaks the
//! `Type=notify` protocol (READY, RELOADING with MONOTONIC_USEC, STOPPING)
//! to a NOTIFY_SOCKET listener, and writes its pidfile. systemd isn't PID 1
//! on these machines, so the test is the service manager's ear.
mod common;

use std::{
    os::unix::net::UnixDatagram,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::Agent;
use lbxdp_testbed::Layout;

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/lbxdp.service"))
        .expect("contrib/lbxdp.service");
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed (Debian's systemd package has it)");
        return;
    };
    assert!(out.status.success());
    // verify checks that the commands exist: point it at the binary built here.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lbxdp.service");
    std::fs::write(&path, unit.replace("/usr/local/sbin/lbxdp-agent", common::agent_bin())).expect("unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It exits 0 on unknown keys and only warns, so any word on stderr fails.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
    for key in [
        "Type=notify",
        "ExecReload=/bin/kill -USR2 $MAINPID",
        "ExecStart=/usr/local/sbin/lbxdp-agent -Ws ",
        "KillMode=mixed",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.contains(key), "the unit lacks {key}");
    }
}

/// The next datagram, within a bound.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).expect("a notify message within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_protocol_and_pidfile() {
    let Some(tb) = common::plain_testbed("notify_protocol_and_pidfile", Layout::OneArm, 1) else {
        return;
    };
    let sock_path = tb.dir().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("NOTIFY_SOCKET listener");
    sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let pidfile = tb.dir().join("lbxdp.pid");
    let cfg = common::write_config(&tb, &common::web_config(&tb, "check inter 1000"));
    let notify = format!("NOTIFY_SOCKET={}", sock_path.display());
    let pid_arg = pidfile.display().to_string();
    let mut agent = Agent::start_program(
        &tb,
        "env",
        &[&notify, common::agent_bin(), "-f", &cfg, "-i", "eth0", "-p", &pid_arg],
    );

    let ready = next(&sock);
    assert_eq!(
        ready,
        "READY=1\nSTATUS=balancing 1 frontend(s) over 1 backend(s)",
        "the first message: {}",
        agent.log()
    );
    let written = std::fs::read_to_string(&pidfile).expect("the pidfile");
    assert_eq!(
        written,
        format!("{}\n", agent.pid()),
        "the pidfile holds the agent's pid"
    );

    // A reload: RELOADING=1 with the monotonic time, then READY=1 again.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.pid()).expect("pid"));
    let before = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    let reloading = next(&sock);
    let mut lines = reloading.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"), "{reloading}");
    let usec: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    let now_usec = u64::try_from(now.tv_sec()).expect("secs") * 1_000_000;
    assert!(
        usec <= now_usec + 1_000_000 && usec + before.elapsed().as_micros() as u64 + 2_000_000 >= now_usec,
        "MONOTONIC_USEC {usec} is not the monotonic clock (now about {now_usec})"
    );
    assert_eq!(next(&sock), "READY=1\nSTATUS=balancing 1 frontend(s) over 1 backend(s)");

    // A bad config: READY=1 still ends the reload, saying so.
    std::fs::write(&cfg, "frontend broken\n    bind :80\n    nonsense here\n").expect("bad config");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    assert!(next(&sock).starts_with("RELOADING=1\n"));
    let after_bad = next(&sock);
    assert!(
        after_bad.starts_with("READY=1\nSTATUS=reload failed, the running configuration stays"),
        "{after_bad}"
    );

    let report = agent.stop();
    assert!(report.get("stats").is_some(), "the final report has the stats table");
    assert_eq!(next(&sock), "STOPPING=1\nSTATUS=stopping");
    assert!(!pidfile.exists(), "the pidfile is removed at exit");
}

//! `--mode auto`: where XDP can't run, the agent says why in one line and
//! serves the same config with the userspace proxy. Needs root (to build the
//! testbed); skips loudly without it.
mod common;

use std::{collections::BTreeSet, os::unix::fs::PermissionsExt as _, time::Duration};

use common::{Agent, agent_bin};
use lbxdp_testbed::{Host, Layout, Testbed};

fn config(tb: &Testbed) -> String {
    config_with(tb, |b| format!("{}:80 check inter 500", b.v4()))
}

/// A VIP on the LB's IPv4 address in front of every backend; `server` gives
/// each server line's address and options.
fn config_with(tb: &Testbed, server: impl Fn(&Host) -> String) -> String {
    let mut s = format!(
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {}:80\n    default_backend pool\n\nbackend pool\n",
        tb.lb.v4()
    );
    for b in &tb.backends {
        s.push_str(&format!("    server {} {}\n", b.name, server(b)));
    }
    s
}

/// 30 requests, each on a new connection; the servers that answered.
fn answers(tb: &Testbed) -> BTreeSet<String> {
    let url = format!("http://{}/", tb.lb.v4());
    let out = tb
        .command(&tb.client, "curl")
        .args(["-sS", "--max-time", "20", "-H", "Connection: close"])
        .args(std::iter::repeat_n(url.as_str(), 30))
        .output_timeout(Duration::from_secs(30))
        .expect("curl");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

fn write_config(tb: &Testbed) -> String {
    // World-readable, for the unprivileged run.
    std::fs::set_permissions(tb.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, config(tb)).expect("haproxy.cfg");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path.to_string_lossy().into_owned()
}

/// setpriv arguments: nobody, keeping only the right to bind port 80, so no BPF.
const UNPRIVILEGED: [&str; 5] = [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all,+net_bind_service",
    "--ambient-caps=+net_bind_service",
];

#[test]
fn mode_xdp_fails_hard_where_auto_would_fall_back() {
    let Some(tb) = common::testbed(
        "mode_xdp_fails_hard_where_auto_would_fall_back",
        Layout::OneArm,
        1,
        true,
    ) else {
        return;
    };
    let cfg = write_config(&tb);
    let out = tb
        .command(&tb.lb, "setpriv")
        .args(UNPRIVILEGED)
        .args([agent_bin(), "-f", &cfg, "--mode", "xdp", "-i", "eth0"])
        .output_timeout(Duration::from_secs(30))
        .expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("permission denied") && !err.contains("falling back"),
        "{err}"
    );
}

#[test]
fn auto_falls_back_without_bpf_privilege() {
    let Some(tb) = common::testbed("auto_falls_back_without_bpf_privilege", Layout::OneArm, 3, true) else {
        return;
    };
    let cfg = write_config(&tb);
    // nobody, keeping only the right to bind port 80: no BPF.
    let mut args: Vec<&str> = UNPRIVILEGED.to_vec();
    args.extend([agent_bin(), "-f", &cfg]);
    let mut agent = Agent::start_program(&tb, "setpriv", &args);
    let line = agent.wait_for("falling back to the userspace proxy", Duration::from_secs(30));
    assert!(line.contains("permission denied"), "{line}");
    agent.wait_for("balancing", Duration::from_secs(30));
    let got = answers(&tb);
    assert_eq!(got.len(), 3, "all three servers answer through the proxy: {got:?}");
    let report = agent.stop();
    assert_eq!(report["mode"], "proxy", "{report}");
}

/// A config XDP can't serve (an IPv4 VIP in front of IPv6-only servers: XDP
/// does not translate between families) is served by the proxy in auto mode,
/// and refused in xdp mode.
#[test]
fn auto_falls_back_for_a_config_xdp_cannot_serve() {
    let Some(tb) = common::testbed("auto_falls_back_for_a_config_xdp_cannot_serve", Layout::OneArm, 3, true) else {
        return;
    };
    let cfg = config_with(&tb, |b| format!("[{}]:80", b.v6()));
    let path = tb.dir().join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("haproxy.cfg");
    let path = path.to_string_lossy().into_owned();

    let out = tb
        .command(&tb.lb, agent_bin())
        .args(["-f", &path, "--mode", "xdp", "-i", "eth0"])
        .output_timeout(Duration::from_secs(30))
        .expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not translate between IPv4 and IPv6"), "{err}");

    let mut agent = Agent::start(&tb, &["-f", &path, "-i", "eth0"]);
    let line = agent.wait_for("falling back to the userspace proxy", Duration::from_secs(30));
    assert!(line.contains("does not translate between IPv4 and IPv6"), "{line}");
    agent.wait_for("balancing", Duration::from_secs(30));
    let got = answers(&tb);
    assert_eq!(
        got.len(),
        3,
        "all three servers answer over IPv6 through the proxy: {got:?}"
    );
    let report = agent.stop();
    assert_eq!(report["mode"], "proxy", "{report}");
}

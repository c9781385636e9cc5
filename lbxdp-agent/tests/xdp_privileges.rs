//! Least privilege: with the seed's `user haproxy` / `group haproxy`, the
//! agent sets the datapath up as root, then runs as haproxy with only
//! CAP_NET_ADMIN, CAP_BPF and CAP_NET_BIND_SERVICE, and still serves, reloads
//! and cleans up after itself (sysctls, port reservation, pins) at exit.
mod common;

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use lbxdp_testbed::{Layout, Testbed};
use nix::sys::signal::Signal;

const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;
const CAP_BPF: u32 = 39;

fn config(tb: &Testbed, weights: [u32; 2], chroot: Option<&std::path::Path>) -> String {
    let jail = chroot
        .map(|d| format!("    chroot {}\n", d.display()))
        .unwrap_or_default();
    let mut s = format!(
        "global\n    user haproxy\n    group haproxy\n{jail}\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {}:80\n    default_backend pool\n\nbackend pool\n",
        tb.lb.v4()
    );
    for (b, w) in tb.backends.iter().zip(weights) {
        s.push_str(&format!(
            "    server {} {}:80 weight {w} check inter 1000 fall 2 rise 2\n",
            b.name,
            b.v4()
        ));
    }
    s
}

fn lb_file(tb: &Testbed, path: &'static str) -> String {
    tb.in_netns(&tb.lb, || Ok(std::fs::read_to_string(path)?.trim().to_string()))
        .unwrap_or_else(|e| panic!("{path}: {e:#}"))
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn answers(tb: &Testbed, n: usize) -> usize {
    let url = format!("http://{}/", tb.lb.v4());
    let out = tb
        .command(&tb.client, "curl")
        .args(["-sS", "--max-time", "5", "-H", "Connection: close"])
        .args(std::iter::repeat_n(url.as_str(), n))
        .output_timeout(Duration::from_secs(60))
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).matches("web").count()
}

#[test]
fn the_agent_runs_as_the_configured_user_with_three_capabilities() {
    runs_as_haproxy(
        "the_agent_runs_as_the_configured_user_with_three_capabilities",
        false,
        false,
    );
}

/// The seed's `chroot /var/lib/haproxy` too: the agent still reloads its
/// config and removes its pins, through directories it opened beforehand.
#[test]
fn the_agent_runs_chrooted_and_still_reloads_and_cleans_up() {
    runs_as_haproxy("the_agent_runs_chrooted_and_still_reloads_and_cleans_up", true, false);
}

/// The userspace proxy too, once its listeners are bound.
#[test]
fn the_proxy_runs_chrooted_as_the_configured_user() {
    runs_as_haproxy("the_proxy_runs_chrooted_as_the_configured_user", true, true);
}

fn runs_as_haproxy(test: &str, chrooted: bool, proxy: bool) {
    let Some(tb) = common::plain_testbed(test, Layout::OneArm, 2) else {
        return;
    };
    let uid: u32 = nix::unistd::User::from_name("haproxy")
        .expect("passwd")
        .expect("the haproxy user (`cargo xtask setup` installs haproxy)")
        .uid
        .as_raw();
    // The user must be able to read its config for reloads, as with HAProxy.
    let dir = tb.dir().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let jail = dir.join("jail");
    std::fs::create_dir(&jail).expect("the chroot directory");
    let chroot = chrooted.then_some(jail.as_path());
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config(&tb, [1, 1], chroot)).expect("haproxy.cfg");
    let path_s = path.to_string_lossy().into_owned();
    let forwarding = "/proc/sys/net/ipv4/conf/eth0/forwarding";
    let (fwd_before, reserved_before) = (
        lb_file(&tb, forwarding),
        lb_file(&tb, "/proc/sys/net/ipv4/ip_local_reserved_ports"),
    );

    let mut args = vec!["-f", path_s.as_str(), "-i", "eth0", "--stats-interval", "0"];
    if proxy {
        args.extend(["--mode", "proxy"]);
    }
    let mut agent = common::Agent::start(&tb, &args);
    agent.wait_for("running as uid", Duration::from_secs(30));
    agent.wait_for("balancing", Duration::from_secs(30));
    let pid = agent.pid();
    let uids = status_field(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "real, effective, saved and fs uid are haproxy's ({uid}): {uids}"
    );
    let want: u64 = (1 << CAP_NET_ADMIN) | (1 << CAP_BPF) | (1 << CAP_NET_BIND_SERVICE);
    for set in ["CapEff", "CapPrm"] {
        let got = u64::from_str_radix(&status_field(pid, set), 16).expect("hex capabilities");
        assert_eq!(got, want, "{set}: {got:#x}, expected {want:#x}");
    }
    assert_eq!(answers(&tb, 20), 20, "serves as haproxy\n{}", agent.log());
    let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("/proc/PID/root");
    if chrooted {
        assert_eq!(root, jail, "the agent's root is the chroot");
    } else {
        assert_eq!(root, std::path::PathBuf::from("/"));
    }

    // A reload as haproxy: the config is re-read, the maps rewritten.
    std::fs::write(&path, config(&tb, [1, 3], chroot)).expect("haproxy.cfg");
    agent.signal(Signal::SIGHUP);
    let line = agent.wait_for("SIGHUP:", Duration::from_secs(10));
    assert!(line.contains("reloaded"), "{line}\n{}", agent.log());
    assert_eq!(answers(&tb, 20), 20, "serves after the reload\n{}", agent.log());
    let log = agent.log();
    assert!(!log.contains(" is DOWN"), "checks keep working as haproxy:\n{log}");

    // At exit it undoes what it did as root.
    let report = agent.stop();
    if proxy {
        assert_eq!(report["mode"], "proxy", "{report}");
        return;
    }
    assert_eq!(report["mode"], "generic", "{report}");
    assert!(!tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"), "detached");
    assert_eq!(lb_file(&tb, forwarding), fwd_before, "forwarding restored");
    assert_eq!(
        lb_file(&tb, "/proc/sys/net/ipv4/ip_local_reserved_ports"),
        reserved_before,
        "port reservation restored"
    );
    let ino = tb
        .in_netns(&tb.lb, || {
            Ok(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(
                "/proc/self/ns/net",
            )?))
        })
        .expect("netns inode");
    let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/lbxdp/net{ino}"));
    let left: Vec<_> = std::fs::read_dir(&pins)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pins left in {}: {left:?}", pins.display());
}

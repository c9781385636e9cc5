//! The seed, end to end, with lbxdp in HAProxy's place: the tutorial's
//! haproxy.cfg (on testbed addresses) with `daemon`, `pidfile`, `chroot`,
//! `user`/`group` of a user made for the test, `stats socket` and `log
//! 127.0.0.1 local2` into a real rsyslog configured as the seed does; started
//! as the unit starts it (`-c` first, then `-Ws -f CONFIG -p PIDFILE
//! $EXTRAOPTS` with the seed's `EXTRAOPTS="-S .../haproxy-master.sock"` and
//! a NOTIFY_SOCKET listener standing in for systemd), a reload through the
//! master socket, requests through the VIP, the log lines in rsyslog's
//! file, `show stat` on the stats socket, and a clean stop.
mod common;

use std::{
    os::unix::net::UnixDatagram,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{
    Agent, agent_bin, clients,
    rsyslog::{start_rsyslog, wait_for_line},
};
use lbxdp_testbed::{Layout, Testbed};

/// A system user and group made for the test, removed on drop.
struct SystemUser(String);

impl SystemUser {
    fn create(name: &str) -> Self {
        // A run that died before its drop left it: start afresh.
        let _ = Command::new("userdel").arg(name).output();
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
            ])
            .args(["--shell", "/usr/sbin/nologin", name])
            .output()
            .expect("useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(name.to_string())
    }

    fn uid(&self) -> u32 {
        nix::unistd::User::from_name(&self.0)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
            .expect("the user just made")
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// The seed's haproxy.cfg, its addresses and paths moved into the testbed.
fn seed_config(tb: &Testbed, user: &str, jail: &Path, pidfile: &Path) -> String {
    let servers: String = tb
        .backends
        .iter()
        .zip(["master01", "master02", "master03"])
        .map(|(b, name)| {
            format!(
                "  server {name} {}:80  check inter 10000 fall 2 rise 2 weight 1\n",
                b.v4()
            )
        })
        .collect();
    format!(
        "global
  log         127.0.0.1 local2
  chroot      {jail}
  pidfile     {pidfile}
  maxconn     4096
  user        {user}
  group       {user}
  daemon
  stats socket {jail}/stats

defaults
  mode             tcp
  log              global
  option           tcplog
  option           dontlognull
  option           redispatch
  retries          3
  timeout queue    1m
  timeout connect  10s
  timeout client   1m
  timeout server   1m
  timeout check    10s
  maxconn          3000

frontend  nginx
bind    0.0.0.0:80
mode               tcp
maxconn            2048
default_backend    nginx-servers

backend nginx-servers
  balance    roundrobin
{servers}",
        jail = jail.display(),
        pidfile = pidfile.display(),
    )
}

/// The next sd_notify datagram, within 30 s.
fn next(sock: &UnixDatagram, agent: &mut Agent) -> String {
    let mut buf = [0u8; 1024];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no sd_notify message: {e}; the agent said:\n{}", agent.log()),
    }
}

/// Waits for READY=1 (other messages, STATUS lines, pass).
fn wait_ready(sock: &UnixDatagram, agent: &mut Agent) -> String {
    loop {
        let msg = next(sock, agent);
        if msg.lines().any(|l| l == "READY=1") {
            return msg;
        }
    }
}

/// The workers' pids in the master CLI's `show proc`.
fn workers(tb: &Testbed, master: &Path) -> Vec<u32> {
    clients::socat(tb, &tb.lb, master, "show proc")
        .lines()
        .take_while(|l| !l.starts_with("# old workers"))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next()?.parse().ok()?;
            (f.next()? == "worker").then_some(pid)
        })
        .collect()
}

fn proc_status_uid(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn seed_end_to_end(name: &str, user: &str, extra: &str) {
    let Some(mut tb) = common::testbed(name, Layout::OneArm, 3, true) else {
        return;
    };
    // Step 6: rsyslog with imudp and `local2.* FILE`.
    let Some(log_file) = start_rsyslog(&mut tb) else {
        return;
    };
    let user = SystemUser::create(user);
    // Step 3: /etc/haproxy/haproxy.cfg and /var/lib/haproxy, moved into the
    // test's directory (readable by the user, for reloads from the chroot).
    let dir = tb.dir().to_path_buf();
    let jail = dir.join("var-lib-haproxy");
    std::fs::create_dir_all(&jail).expect("the chroot directory");
    let pidfile = dir.join("haproxy.pid");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, seed_config(&tb, &user.0, &jail, &pidfile)).expect("haproxy.cfg");
    let cfg = cfg.to_string_lossy().into_owned();
    let master = dir.join("haproxy-master.sock");
    let stats = jail.join("stats");

    // ExecStartPre: `-c -f $CONFIG`.
    let out = tb
        .command(&tb.lb, agent_bin())
        .args(["-c", "-f", &cfg])
        .output_timeout(Duration::from_secs(20))
        .expect("lbxdp-agent -c");
    assert!(out.status.success(), "-c: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Configuration file is valid\n");

    // ExecStart: `-Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS`, systemd listening.
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("NOTIFY_SOCKET listener");
    notify.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let env_notify = format!("NOTIFY_SOCKET={}", notify_path.display());
    let master_arg = master.to_string_lossy().into_owned();
    let pid_arg = pidfile.to_string_lossy().into_owned();
    let mut args = vec![
        env_notify.as_str(),
        agent_bin(),
        "-Ws",
        "-f",
        &cfg,
        "-p",
        &pid_arg,
        "-S",
        &master_arg,
    ];
    args.extend(extra.split_whitespace());
    let mut agent = Agent::start_program(&tb, "env", &args);
    let ready = wait_ready(&notify, &mut agent);
    eprintln!("systemd heard: {ready:?}");
    let master_pid = agent.pid();
    assert_eq!(
        std::fs::read_to_string(&pidfile).expect("the pidfile").trim(),
        master_pid.to_string(),
        "the pidfile holds the master's pid, as HAProxy's in master-worker mode"
    );
    let first = workers(&tb, &master);
    assert_eq!(first.len(), 1, "one worker in show proc");
    assert_eq!(
        proc_status_uid(first[0]),
        Some(user.uid()),
        "the worker runs as {}",
        user.0
    );
    let root = std::fs::read_link(format!("/proc/{}/root", first[0])).expect("the worker's root");
    assert_eq!(root, jail, "the worker is chrooted");

    // Traffic through the VIP, the stats socket's answer.
    let url = format!("http://{}/", tb.lb.v4());
    let body = clients::curl(&tb, &tb.client, &url).expect("a request through the VIP");
    assert!(body.starts_with("web"), "{body}");
    let stat = clients::socat(&tb, &tb.lb, &stats, "show stat");
    for row in ["nginx,FRONTEND,", "nginx-servers,master01,", "nginx-servers,BACKEND,"] {
        assert!(stat.contains(row), "show stat lacks {row}:\n{stat}");
    }

    // `systemctl reload` as HAProxy's unit does it, here through the master
    // CLI: a new worker takes over, the old one leaves.
    let answer = clients::socat(&tb, &tb.lb, &master, "reload");
    eprintln!("master CLI reload: {answer:?}");
    wait_ready(&notify, &mut agent);
    let deadline = Instant::now() + Duration::from_secs(20);
    let second = loop {
        let now = workers(&tb, &master);
        if now.len() == 1 && now[0] != first[0] {
            break now[0];
        }
        assert!(
            Instant::now() < deadline,
            "show proc after reload: {now:?} (before: {first:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(proc_status_uid(second), Some(user.uid()));
    let body = clients::curl(&tb, &tb.client, &url).expect("a request after the reload");
    assert!(body.starts_with("web"), "{body}");
    let info = clients::socat(&tb, &tb.lb, &stats, "show info");
    assert!(
        info.contains(&format!("Pid: {second}\n")),
        "the new worker answers on the stats socket:\n{info}"
    );

    // Step 6's file: the old worker's last words, and in proxy mode the
    // sessions' tcplog lines.
    let stopped = wait_for_line(&log_file, "the old worker's stop line", |l| {
        l.contains(&format!(
            "lbxdp[{}]: Proxy nginx stopped (cumulated conns: FE: ",
            first[0]
        ))
    });
    eprintln!("rsyslog: {stopped}");
    if extra.contains("proxy") {
        let tcplog = wait_for_line(&log_file, "a tcplog line", |l| {
            l.contains(" nginx nginx-servers/master0")
        });
        eprintln!("rsyslog: {tcplog}");
    }

    // `systemctl stop`: SIGTERM to the main pid.
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "the master exited with {status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while next(&notify, &mut agent).lines().all(|l| l != "STOPPING=1") {
        assert!(Instant::now() < deadline, "no STOPPING=1");
    }
    for (what, path) in [
        ("pidfile", &pidfile),
        ("master socket", &master),
        ("stats socket", &stats),
    ] {
        assert!(!path.exists(), "the {what} {} stays after the stop", path.display());
    }
    assert!(
        std::fs::metadata(format!("/proc/{second}")).is_err(),
        "the worker {second} outlived the master"
    );
    if !extra.contains("proxy") {
        assert!(
            !tb.xdp_attached(&tb.lb, "eth0").expect("XDP state"),
            "the stop detaches XDP"
        );
    }
}

/// As the seed's user would run it: the default mode (XDP here).
#[test]
fn seed_end_to_end_xdp() {
    seed_end_to_end("seed_end_to_end_xdp", "lbxdpseedx", "-i eth0");
}

#[test]
fn seed_end_to_end_proxy() {
    seed_end_to_end("seed_end_to_end_proxy", "lbxdpseedp", "--mode proxy");
}

//! The stats socket (runtime API) driven with socat as an operator does,
//! against lbxdp in XDP and proxy mode and against real HAProxy 2.6, whose
//! answers are the spec: every expected text below is what HAProxy 2.6.12
//! printed for the same config. Needs root; skips loudly without it.
mod common;

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use common::{
    clients,
    runtime::{Bed, HAPROXY_INFO_KEYS, HAPROXY_STAT_HEADER, Stat, Target, info_pairs, wait_until},
};

/// Each test builds a testbed and runs a balancer; one at a time keeps the
/// 2-core machine's timing honest.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

each_target!(
    answers,
    state_and_sessions,
    counts_traffic,
    drain_maint_ready,
    disable_health,
    rough_clients
);

/// `show info`, `show stat`, the error texts, weights, levels, prompt mode and `;`.
fn answers(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("answers", target) else {
        return;
    };

    let info = bed.admin("show info");
    let pairs = info_pairs(&info);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, HAPROXY_INFO_KEYS, "show info's keys, in HAProxy's order:\n{info}");
    let value = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    assert!(!value("Name").is_empty(), "{info}");
    assert!(!value("Version").is_empty(), "{info}");
    assert!(!value("node").is_empty(), "{info}");
    assert_eq!(value("Pid"), bed.lb.pid().to_string(), "{info}");
    for k in [
        "Uptime_sec",
        "CurrConns",
        "CumConns",
        "Maxconn",
        "Nbthread",
        "Start_time_sec",
    ] {
        assert!(value(k).parse::<u64>().is_ok(), "{k} is not a number:\n{info}");
    }
    assert!(info.ends_with("\n\n"), "show info ends with an empty line: {info:?}");

    let text = bed.admin("show stat");
    assert_eq!(text.lines().next(), Some(HAPROXY_STAT_HEADER), "show stat's header");
    let stat = Stat::parse(&text);
    for (px, sv) in [
        ("web", "FRONTEND"),
        ("be", "s1"),
        ("be", "s2"),
        ("be", "s3"),
        ("be", "BACKEND"),
        ("stats", "FRONTEND"),
    ] {
        let row = stat
            .row(px, sv)
            .unwrap_or_else(|| panic!("no {px},{sv} row in:\n{text}"));
        assert_eq!(row.len(), stat.header.len(), "{px},{sv} has a cell per column:\n{text}");
        for (i, cell) in row.iter().enumerate().take(51) {
            let field = &stat.header[i];
            if ["pxname", "svname", "status", "check_status"].contains(&field.as_str()) {
                continue;
            }
            assert!(
                cell.is_empty() || cell.parse::<i64>().is_ok(),
                "{px},{sv} {field} = {cell:?} is neither empty nor an integer:\n{text}"
            );
        }
    }
    for s in ["s1", "s2", "s3"] {
        assert_eq!(stat.get("be", s, "status"), Some("UP"), "{text}");
        assert_eq!(stat.get("be", s, "weight"), Some("1"), "{text}");
    }
    assert_eq!(stat.get("web", "FRONTEND", "status"), Some("OPEN"), "{text}");
    assert_eq!(stat.get("be", "BACKEND", "status"), Some("UP"), "{text}");
    assert_eq!(stat.get("be", "BACKEND", "weight"), Some("3"), "{text}");

    // Weights, and HAProxy's words for what it refuses.
    assert_eq!(bed.admin("set weight be/s2 0"), "\n");
    assert_eq!(bed.admin("get weight be/s2"), "0 (initial 1)\n\n");
    assert_eq!(bed.stat().get("be", "s2", "weight"), Some("0"));
    assert_eq!(bed.stat().get("be", "BACKEND", "weight"), Some("2"));
    assert_eq!(
        bed.admin("set server be/s2 weight 300"),
        "Absolute weight can only be between 0 and 256 inclusive.\n\n"
    );
    assert_eq!(
        bed.admin("set weight be/s2 300"),
        "Absolute weight can only be between 0 and 256 inclusive.\n\n"
    );
    assert_eq!(bed.admin("set server be/s2 weight 1"), "\n");
    assert_eq!(bed.admin("get weight be/s2"), "1 (initial 1)\n\n");
    assert_eq!(bed.admin("set server be/nope state drain"), "No such server.\n\n");
    assert_eq!(bed.admin("get weight be/nope"), "No such server.\n\n");
    assert_eq!(
        bed.admin("set server nope state drain"),
        "Require 'backend/server'.\n\n"
    );

    // A `level user` socket reads but changes nothing.
    let user = |line: &str| clients::socat(&bed.tb, &bed.tb.lb, &bed.user, line);
    for line in [
        "disable server be/s1",
        "set server be/s1 state drain",
        "set weight be/s1 2",
        "disable health be/s3",
    ] {
        assert_eq!(user(line), "Permission denied\n\n", "{line} on the user socket");
    }
    assert_eq!(bed.status("s1"), "UP");
    assert_eq!(bed.status("s3"), "UP");
    assert_eq!(user("get weight be/s1"), "1 (initial 1)\n\n");
    assert_eq!(user("show stat").lines().next(), Some(HAPROXY_STAT_HEADER));
    assert!(user("show info").contains("\nPid: "));

    // Interactive mode: two commands on one connection, each answer followed by the prompt.
    let prompt = clients::try_socat(
        &bed.tb,
        &bed.tb.lb,
        &bed.admin,
        "prompt\nget weight be/s1\nget weight be/s3\nquit\n",
    )
    .expect("socat in prompt mode");
    assert_eq!(prompt, "\n> 1 (initial 1)\n\n> 1 (initial 1)\n\n> ");

    // Several commands on one line.
    assert_eq!(
        bed.admin("get weight be/s1; get weight be/s2;get weight be/s3"),
        "1 (initial 1)\n\n1 (initial 1)\n\n1 (initial 1)\n\n"
    );
}

/// Connections through the VIP show up in the servers' counters.
fn counts_traffic(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("counts_traffic", target) else {
        return;
    };
    let before = bed.stat();
    let servers = ["s1", "s2", "s3"];
    let sum = |s: &Stat, field: &str| -> u64 { servers.iter().filter_map(|sv| s.num("be", sv, field)).sum() };
    const N: u64 = 9;
    for i in 0..N {
        let answer = bed.ask();
        assert!(
            answer.as_deref().is_some_and(|a| a.starts_with("web")),
            "request {i} through the VIP: {answer:?}"
        );
    }
    // Counters land when a session ends; give them a moment.
    let mut after = bed.stat();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sum(&after, "stot") < sum(&before, "stot") + N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = bed.stat();
    }
    assert!(
        sum(&after, "stot") >= sum(&before, "stot") + N,
        "{N} connections, servers' stot before:\n{}\nafter:\n{}",
        before.text,
        after.text
    );
    assert!(
        sum(&after, "bin") > sum(&before, "bin"),
        "bin did not grow:\n{}",
        after.text
    );
    for sv in servers {
        let (stot0, stot1) = (before.num("be", sv, "stot"), after.num("be", sv, "stot"));
        if stot1 > stot0 {
            assert!(
                after.num("be", sv, "bin") > before.num("be", sv, "bin"),
                "{sv} took connections but no bytes:\n{}",
                after.text
            );
        }
    }
    assert!(
        after.num("be", "BACKEND", "stot") >= before.num("be", "BACKEND", "stot").map(|n| n + N),
        "BACKEND stot:\n{}",
        after.text
    );
}

/// drain keeps s1's flows and sends it no new one; maint, then ready.
fn drain_maint_ready(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("drain_maint_ready", target) else {
        return;
    };
    let vip = std::net::SocketAddr::new(bed.tb.lb.v4().into(), 80);
    // A flow to s1 (web1): new connections until one lands there (bounded).
    let mut flow = None;
    for _ in 0..60 {
        let mut c = common::runtime::KeepAlive::connect(&bed.tb, vip).expect("connecting to the VIP");
        if c.get().expect("GET on a fresh connection") == "web1" {
            flow = Some(c);
            break;
        }
    }
    let mut flow = flow.expect("no connection out of 60 went to s1");

    assert_eq!(bed.admin("set server be/s1 state drain"), "\n");
    assert_eq!(bed.status("s1"), "DRAIN");
    assert_eq!(bed.stat().get("be", "s1", "weight"), Some("1"));
    for i in 0..15 {
        let answer = bed.ask();
        assert!(
            answer.as_deref().is_some_and(|a| a == "web2" || a == "web3"),
            "new connection {i} while s1 drains answered {answer:?}"
        );
    }
    assert_eq!(
        flow.get().expect("s1's flow after the drain"),
        "web1",
        "the flow to s1 keeps working while it drains"
    );

    assert_eq!(bed.admin("set server be/s1 state maint"), "\n");
    assert_eq!(bed.status("s1"), "MAINT");
    for i in 0..6 {
        let answer = bed.ask();
        assert!(
            answer.as_deref().is_some_and(|a| a != "web1"),
            "new connection {i} with s1 in MAINT answered {answer:?}"
        );
    }

    assert_eq!(bed.admin("set server be/s1 state ready"), "\n");
    bed.wait_status("s1", "UP", Duration::from_secs(5));
    wait_until("s1 taking new connections again", Duration::from_secs(15), || {
        bed.ask().as_deref() == Some("web1")
    });
}

/// `show servers state`, `show backend`, forced health, current sessions
/// (`scur`, `show sess`) and, for lbxdp, a runtime weight kept by a reload.
fn state_and_sessions(target: Target) {
    let _one = serial();
    let Some(mut bed) = Bed::start("state_and_sessions", target) else {
        return;
    };
    let state = bed.admin("show servers state");
    let lines: Vec<&str> = state.lines().collect();
    assert_eq!(lines.first(), Some(&"1"), "{state}");
    assert!(
        lines
            .get(1)
            .is_some_and(|h| h.starts_with("# be_id be_name srv_id srv_name srv_addr srv_op_state")),
        "{state}"
    );
    for sv in ["s1", "s2", "s3"] {
        let line = lines
            .iter()
            .find(|l| l.split(' ').nth(3) == Some(sv))
            .unwrap_or_else(|| panic!("no line for {sv}:\n{state}"));
        let f: Vec<&str> = line.split(' ').collect();
        // be_name, srv_op_state 2 (running), admin 0, uweight 1, iweight 1.
        assert_eq!((f[1], f[5], f[6], f[7], f[8]), ("be", "2", "0", "1", "1"), "{line}");
    }
    assert!(state.ends_with("\n\n"), "{state:?}");
    assert_eq!(bed.admin("show servers state nope"), "Can't find backend.\n\n");
    assert_eq!(bed.admin("show backend"), "# name\nbe\n\n");

    // Forced health: stopping takes no new traffic (NOLB); down is DOWN
    // until the next check, which (nginx being up) brings it back. A check
    // comes every 500 ms, so the state is read in the same command line as
    // the order (`;`): a separate socat round trip could see the check's
    // answer instead (CI once saw HAProxy itself back UP in between).
    for (order, want) in [("stopping", "NOLB"), ("down", "DOWN")] {
        let both = bed.admin(&format!("set server be/s2 health {order}; show stat"));
        let stat = both
            .strip_prefix('\n')
            .unwrap_or_else(|| panic!("`set server be/s2 health {order}` answered more than a blank line:\n{both}"));
        let stat = common::runtime::Stat::parse(stat);
        assert_eq!(stat.get("be", "s2", "status"), Some(want), "{}", stat.text);
    }
    bed.wait_status("s2", "UP", Duration::from_secs(5));

    // A session held open counts on its server until it ends.
    let vip = std::net::SocketAddr::new(bed.tb.lb.v4().into(), 80);
    let mut held = common::runtime::KeepAlive::connect(&bed.tb, vip).expect("connecting to the VIP");
    let web = held.get().expect("GET through the VIP");
    let sv = web.replace("web", "s");
    let scur = |sv: &str| bed.stat().num("be", sv, "scur");
    wait_until(
        &format!("{sv}'s scur to count the open session"),
        Duration::from_secs(5),
        || scur(&sv).is_some_and(|n| n >= 1),
    );
    let fe = bed.stat().num("web", "FRONTEND", "scur");
    assert!(fe.is_some_and(|n| n >= 1), "the frontend's scur: {fe:?}");
    if target != Target::Xdp {
        let sess = bed.admin("show sess");
        assert!(
            sess.lines()
                .any(|l| l.contains("fe=web") && l.contains(&format!("srv={sv}"))),
            "show sess lists the session to {sv}:\n{sess}"
        );
    }
    drop(held);
    wait_until(
        &format!("{sv}'s scur to drop once the session closed"),
        Duration::from_secs(5),
        || scur(&sv) == Some(0),
    );

    // A reload keeps what the runtime API set (lbxdp; HAProxy needs a
    // server-state file for that, which this config doesn't have).
    if target != Target::Haproxy {
        assert_eq!(bed.admin("set weight be/s1 3"), "\n");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(bed.lb.pid()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP to the agent");
        wait_until("the agent to log the reload", Duration::from_secs(10), || {
            bed.lb.log().contains("SIGHUP: configuration reloaded")
        });
        assert_eq!(bed.admin("get weight be/s1"), "3 (initial 1)\n\n");
        assert_eq!(bed.stat().get("be", "s1", "weight"), Some("3"));
    }
}

/// With its checks off, a server whose nginx stopped is not marked down.
fn disable_health(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("disable_health", target) else {
        return;
    };
    assert_eq!(bed.admin("disable health be/s3"), "\n");
    // HAProxy shows a server without checks as "no check" (it stays in the farm).
    assert_eq!(bed.status("s3"), "no check");
    bed.tb.stop_nginx(&bed.host_of("s3"), 80).expect("stopping s3's nginx");
    // Eight check intervals: with checks on it would be DOWN after one.
    std::thread::sleep(Duration::from_secs(4));
    let stat = bed.stat();
    assert_eq!(stat.get("be", "s3", "status"), Some("no check"), "{}", stat.text);
    assert_eq!(stat.get("be", "s1", "status"), Some("UP"), "{}", stat.text);

    // Checks back on: the stopped server goes down.
    assert_eq!(bed.admin("enable health be/s3"), "\n");
    bed.wait_status("s3", "DOWN", Duration::from_secs(5));
}

/// A client that never speaks, a 1 MB line, and 100 clients at once.
fn rough_clients(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start("rough_clients", target) else {
        return;
    };
    // The socket is a file: the test process can hold a connection itself.
    let _hanging = UnixStream::connect(&bed.admin).expect("a silent client");

    let ended = one_mb_line(&bed.admin);
    assert!(
        !ended.contains("Pid:"),
        "a 1 MB `show info` line was run: {:?}",
        &ended[..ended.len().min(200)]
    );
    assert!(bed.admin("show info").contains("\nPid: "), "the socket still answers");

    let start = Instant::now();
    let answers: Vec<anyhow::Result<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|_| s.spawn(|| clients::try_socat(&bed.tb, &bed.tb.lb, &bed.admin, "show info\n")))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client thread panicked")))
            })
            .collect()
    });
    let took = start.elapsed();
    for (i, a) in answers.iter().enumerate() {
        match a {
            Ok(text) => assert!(text.contains("\nPid: "), "client {i} got {text:?}"),
            Err(e) => panic!("client {i}: {e:#}"),
        }
    }
    assert!(took < Duration::from_secs(20), "100 clients took {took:?}");
    assert!(bed.admin("show stat").starts_with(HAPROXY_STAT_HEADER));
}

/// Sends `show info ` and 1 MB on one line; returns what came back before
/// the server closed (HAProxy closes without a word: the line overflows its
/// buffer). Panics if the connection is still open after 10 s.
fn one_mb_line(sock: &std::path::Path) -> String {
    let mut conn = UnixStream::connect(sock).expect("connecting to the admin socket");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut line = b"show info ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 1 << 20));
    line.push(b'\n');
    let mut writer = conn.try_clone().expect("a second handle");
    writer
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    let sender = std::thread::spawn(move || writer.write_all(&line));
    let mut got = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 65536];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!(
                    "the connection of a 1 MB line is still open after {:?}",
                    start.elapsed()
                )
            }
            // A reset is how a server that stops reading mid-line ends it.
            Err(_) => break,
        }
    }
    let _ = sender.join();
    String::from_utf8_lossy(&got).into_owned()
}

//! Health checks driving the XDP datapath: real nginx backends stopped and
//! started, real curl load, the agent's HAProxy-style transition lines.
//! Needs root; skips loudly without it.
mod common;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use common::Agent;
use lbxdp_testbed::{Host, Layout, Testbed};

const INTER_MS: u64 = 200;

fn start(tb: &mut Testbed, cfg: &str) -> Agent {
    start_in(tb, cfg, "xdp")
}

/// The agent in `--mode xdp` (native) or `--mode proxy`, once it is balancing.
fn start_in(tb: &mut Testbed, cfg: &str, mode: &str) -> Agent {
    common::start_balancing(tb, cfg, &["--mode", mode])
}

fn defaults() -> String {
    "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    \
     timeout check 500ms\n\n"
        .to_string()
}

fn pool(name: &str, servers: &[(&Host, u16, &str)]) -> String {
    let mut s = format!("backend {name}\n");
    for (h, port, opts) in servers {
        s.push_str(&format!("    server {} {}:{port} {opts}\n", h.name, h.v4()));
    }
    s
}

fn frontend(name: &str, vip: &Host, port: u16, backend: &str) -> String {
    format!(
        "frontend {name}\n    bind {}:{port}\n    default_backend {backend}\n\n",
        vip.v4()
    )
}

/// One request on a new connection; the answering server's name, or None.
fn ask(tb: &Testbed, url: &str) -> Option<String> {
    let out = tb
        .command(&tb.client, "curl")
        .args(["-s", "--max-time", "3", "-H", "Connection: close", url])
        .output_timeout(Duration::from_secs(5))
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Waits (bounded) until `who` answers, then checks that `n` requests in a
/// row all go to it.
fn settles_on(tb: &Testbed, url: &str, who: &str, n: usize, why: &str) {
    wait_until(&format!("{who} answering"), Duration::from_secs(5), || {
        ask(tb, url).as_deref() == Some(who)
    });
    for _ in 0..n {
        assert_eq!(ask(tb, url).as_deref(), Some(who), "{why}");
    }
}

/// Requests, one after another, until `stop` is set (bounded to 60 s).
fn load(tb: &Testbed, url: &str, stop: &AtomicBool) -> Vec<(Instant, Option<String>)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        out.push((Instant::now(), ask(tb, url)));
    }
    out
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stopped_server_leaves_and_comes_back_xdp() {
    a_stopped_server_leaves_and_comes_back("xdp");
}

#[test]
fn a_stopped_server_leaves_and_comes_back_proxy() {
    a_stopped_server_leaves_and_comes_back("proxy");
}

fn a_stopped_server_leaves_and_comes_back(mode: &str) {
    let name = format!("a_stopped_server_leaves_and_comes_back_{mode}");
    let Some(mut tb) = common::testbed(&name, Layout::OneArm, 3, true) else {
        return;
    };
    let opts = format!("check inter {INTER_MS} fall 2 rise 2 weight 1");
    let servers: Vec<(&Host, u16, &str)> = tb.backends.iter().map(|b| (b, 80, opts.as_str())).collect();
    let cfg = defaults() + &frontend("web", &tb.lb, 80, "pool") + &pool("pool", &servers);
    let mut agent = start_in(&mut tb, &cfg, mode);
    let web2 = tb.backends[1].clone();
    let url = format!("http://{}/", tb.lb.v4());
    let stop = AtomicBool::new(false);

    let (killed, marked_down, restarted, marked_up, answers) = std::thread::scope(|s| {
        let client = s.spawn(|| load(&tb, &url, &stop));
        std::thread::sleep(Duration::from_secs(1));
        let killed = Instant::now();
        tb.stop_nginx(&web2, 80).expect("stopping web2's nginx");
        let line = agent.wait_for("Server pool/web2 is DOWN", Duration::from_secs(10));
        let marked_down = Instant::now();
        eprintln!("{line}");
        std::thread::sleep(Duration::from_secs(2));
        let restarted = Instant::now();
        tb.start_nginx(&web2, "web2", 80).expect("starting web2's nginx again");
        let line = agent.wait_for("Server pool/web2 is UP", Duration::from_secs(10));
        let marked_up = Instant::now();
        eprintln!("{line}");
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let answers = client.join().expect("load thread");
        (killed, marked_down, restarted, marked_up, answers)
    });

    let detect = marked_down - killed;
    let recover = marked_up - restarted;
    eprintln!(
        "detection {detect:?} (fall 2 x inter {INTER_MS} ms), recovery {recover:?} (rise 2 x inter {INTER_MS} ms)"
    );
    let inter = Duration::from_millis(INTER_MS);
    // The first failing check comes within one inter of the stop, the second
    // one inter later; a refused connect takes no time. Slack for the 2 cores.
    assert!(
        detect >= inter * 9 / 10 && detect <= 2 * inter + Duration::from_millis(500) + Duration::from_millis(300),
        "{detect:?}"
    );
    assert!(
        recover <= 2 * inter + Duration::from_millis(500) + Duration::from_millis(300),
        "{recover:?}"
    );

    let count = |from: Instant, to: Instant, who: Option<&str>| {
        answers
            .iter()
            .filter(|(t, a)| *t >= from && *t < to && a.as_deref() == who)
            .count()
    };
    let start = answers.first().map(|a| a.0).unwrap_or(killed);
    let end = Instant::now();
    // A request still in flight when nginx stops belongs to the detection
    // window, not before it: each takes a few ms, so leave it 100 ms.
    let in_flight = Duration::from_millis(100);
    let failed_before = count(start, killed - in_flight, None);
    let failed_window = count(killed - in_flight, marked_down + Duration::from_millis(50), None);
    let failed_after = count(marked_down + Duration::from_millis(50), end, None);
    let web2_while_down = count(marked_down + Duration::from_millis(50), restarted, Some("web2"));
    let web2_after = count(marked_up + Duration::from_millis(50), end, Some("web2"));
    eprintln!(
        "{} requests: {failed_before} failed before the stop, {failed_window} in the detection window, \
         {failed_after} after; web2 answered {web2_while_down} while down, {web2_after} after coming back",
        answers.len()
    );
    let fails: Vec<Duration> = answers.iter().filter(|a| a.1.is_none()).map(|a| a.0 - start).collect();
    eprintln!(
        "failures at {fails:?} after the start; the stop at {:?}",
        killed - start
    );
    let report = agent.stop();
    assert_eq!(failed_before, 0, "requests failed before anything happened: {report}");
    assert_eq!(failed_after, 0, "requests to web1/web3 failed once web2 was out");
    assert_eq!(web2_while_down, 0, "web2 got requests while DOWN");
    assert!(web2_after > 0, "web2 took no share after coming back");
    if mode == "xdp" {
        assert_eq!(report["frontends"][0]["drop_no_server"].as_u64(), Some(0), "{report}");
    }
}

#[test]
fn checks_see_wrong_answers_and_silence() {
    let Some(mut tb) = common::testbed("checks_see_wrong_answers_and_silence", Layout::OneArm, 3, true) else {
        return;
    };
    let (web1, web2, web3) = (tb.backends[0].clone(), tb.backends[1].clone(), tb.backends[2].clone());
    // web2 answers HTTP 500 and a wrong banner; web3 accepts and never answers.
    // The replies are scripts: socat's address syntax mangles quotes and escapes.
    let script = |name: &str, body: &str| {
        let path = tb.dir().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
        path.to_string_lossy().into_owned()
    };
    let http500 = script("http500.sh", "printf 'HTTP/1.0 500 Oops\\r\\n\\r\\n'");
    let ok = script("ok.sh", "printf '+OK ready\\r\\n'");
    let err = script("err.sh", "printf '%s\\r\\n' '-ERR go away'");
    let silent = script("silent.sh", "sleep 30");
    let fake = |host: &Host, port: u16, script: &str| {
        tb.command(host, "socat")
            .args([
                format!("TCP-LISTEN:{port},fork,reuseaddr"),
                format!("SYSTEM:sh {script}"),
            ])
            .spawn()
            .expect("socat")
    };
    let children = vec![
        fake(&web2, 8500, &http500),
        fake(&web1, 8600, &ok),
        fake(&web2, 8600, &err),
        fake(&web3, 8500, &silent),
        fake(&web3, 8600, &silent),
    ];
    for c in children {
        tb.adopt(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let chk = format!("check inter {INTER_MS} fall 2 rise 2");
    let http = format!("{chk} port 8500");
    let banner = format!("{chk} port 8600");
    let web1_http = format!("{chk} port 80");
    let cfg = defaults()
        + &frontend("web", &tb.lb, 80, "httpchk")
        + &frontend("banner", &tb.lb, 81, "tcpchk")
        + "backend httpchk
    option httpchk GET /
    http-check expect status 200
" + &pool(
        "httpchk",
        &[(&web1, 80, &web1_http), (&web2, 80, &http), (&web3, 80, &http)],
    )
    .replacen(
        "backend httpchk
",
        "",
        1,
    ) + "
backend tcpchk
    option tcp-check
    tcp-check connect
    tcp-check expect string +OK
" + &pool(
        "tcpchk",
        &[(&web1, 80, &banner), (&web2, 80, &banner), (&web3, 80, &banner)],
    )
    .replacen(
        "backend tcpchk
",
        "",
        1,
    );
    let mut agent = start(&mut tb, &cfg);
    let expected = [
        ("httpchk", "web2", "Layer7 wrong status"),
        ("httpchk", "web3", "timeout"),
        ("tcpchk", "web2", "TCPCHK did not match"),
        ("tcpchk", "web3", "timeout"),
    ];
    let needles: Vec<String> = expected
        .iter()
        .map(|(b, s, _)| format!("Server {b}/{s} is DOWN"))
        .collect();
    agent.wait_for_all_since_start(
        &needles.iter().map(String::as_str).collect::<Vec<_>>(),
        Duration::from_secs(10),
    );
    let log = agent.log();
    for ((_, _, why), needle) in expected.iter().zip(&needles) {
        let line = log.lines().find(|l| l.contains(needle.as_str())).unwrap_or_default();
        eprintln!("{line}");
        assert!(line.contains(why), "{line}");
    }
    let url = format!("http://{}/", tb.lb.v4());
    settles_on(&tb, &url, "web1", 20, "only web1 passes its HTTP check");
    agent.stop();
}

#[test]
fn backups_take_over_and_hand_back() {
    let Some(mut tb) = common::testbed("backups_take_over_and_hand_back", Layout::OneArm, 3, true) else {
        return;
    };
    let chk = format!("check inter {INTER_MS} fall 2 rise 2");
    let backup = format!("{chk} backup");
    let (web1, web2, web3) = (tb.backends[0].clone(), tb.backends[1].clone(), tb.backends[2].clone());
    // Transitions also go to syslog: a UDP listener in the LB's namespace.
    let syslog = tb
        .in_netns(&tb.lb, || Ok(std::net::UdpSocket::bind("127.0.0.1:5514")?))
        .expect("syslog listener");
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let cfg = "global\n    log 127.0.0.1:5514 local2\n\n".to_string()
        + &defaults().replace("    mode tcp\n", "    mode tcp\n    log global\n")
        + &frontend("web", &tb.lb, 80, "pool")
        + &pool("pool", &[(&web1, 80, &chk), (&web2, 80, &chk), (&web3, 80, &backup)]);
    let mut agent = start(&mut tb, &cfg);
    let url = format!("http://{}/", tb.lb.v4());
    for _ in 0..20 {
        assert_ne!(
            ask(&tb, &url).as_deref(),
            Some("web3"),
            "the backup takes traffic while actives are up"
        );
    }
    tb.stop_nginx(&web1, 80).expect("stop web1");
    tb.stop_nginx(&web2, 80).expect("stop web2");
    agent.wait_for_all(
        &["Server pool/web1 is DOWN", "Server pool/web2 is DOWN"],
        Duration::from_secs(10),
    );
    settles_on(&tb, &url, "web3", 10, "all actives down: the backup serves");
    tb.start_nginx(&web1, "web1", 80).expect("start web1");
    agent.wait_for("Server pool/web1 is UP", Duration::from_secs(10));
    settles_on(&tb, &url, "web1", 10, "an active is back: the backup steps aside");
    agent.stop();
}

#[test]
fn a_long_flow_survives_another_servers_fall_and_rise_xdp() {
    a_long_flow_survives_another_servers_fall_and_rise("xdp");
}

#[test]
fn a_long_flow_survives_another_servers_fall_and_rise_proxy() {
    a_long_flow_survives_another_servers_fall_and_rise("proxy");
}

fn a_long_flow_survives_another_servers_fall_and_rise(mode: &str) {
    let name = format!("a_long_flow_survives_another_servers_fall_and_rise_{mode}");
    let Some(mut tb) = common::testbed(&name, Layout::OneArm, 3, true) else {
        return;
    };
    common::start_echo_servers(&mut tb, 7000);
    let opts = format!("check inter {INTER_MS} fall 2 rise 2");
    let servers: Vec<(&Host, u16, &str)> = tb.backends.iter().map(|b| (b, 80, opts.as_str())).collect();
    let echo: Vec<(&Host, u16, &str)> = tb.backends.iter().map(|b| (b, 7000, "weight 1")).collect();
    let cfg = defaults()
        + &frontend("web", &tb.lb, 80, "pool")
        + &frontend("echo", &tb.lb, 7000, "echo")
        + &pool("pool", &servers)
        + "
" + &pool("echo", &echo);
    let mut agent = start_in(&mut tb, &cfg, mode);
    let vip = tb.lb.v4();
    let mut long = tb
        .command(&tb.client, "bash")
        .args([
            "-c",
            &format!("for i in $(seq 60); do echo line $i; sleep 0.1; done | socat -t 3 - TCP:{vip}:7000"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("long flow");
    std::thread::sleep(Duration::from_millis(500));
    // The HTTP pool's web2 falls and rises; the echo flow lives on whichever
    // echo server it hashed to, and its table doesn't change.
    let web2 = tb.backends[1].clone();
    tb.stop_nginx(&web2, 80).expect("stop web2");
    agent.wait_for("Server pool/web2 is DOWN", Duration::from_secs(10));
    tb.start_nginx(&web2, "web2", 80).expect("start web2");
    agent.wait_for("Server pool/web2 is UP", Duration::from_secs(10));
    let mut status = None;
    wait_until("the long flow's end", Duration::from_secs(30), || {
        status = long.try_wait().ok().flatten();
        status.is_some()
    });
    let mut echoed = String::new();
    std::io::Read::read_to_string(&mut long.stdout.take().expect("stdout"), &mut echoed).expect("echo");
    assert!(status.is_some_and(|s| s.success()), "the long flow broke");
    assert_eq!(echoed.lines().count(), 60, "{echoed}");
    agent.stop();
}

#[test]
fn shutdown_backup_sessions_xdp() {
    shutdown_backup_sessions("xdp");
}

#[test]
fn shutdown_backup_sessions_proxy() {
    shutdown_backup_sessions("proxy");
}

/// `on-marked-up shutdown-backup-sessions`: once the active server is back,
/// a long flow on the backup is closed, not left to run (one rule in the
/// health state, followed by both engines).
fn shutdown_backup_sessions(mode: &str) {
    let name = format!("shutdown_backup_sessions_{mode}");
    let Some(mut tb) = common::testbed(&name, Layout::OneArm, 3, true) else {
        return;
    };
    common::start_echo_servers(&mut tb, 7000);
    let (web1, web3) = (tb.backends[0].clone(), tb.backends[2].clone());
    // Checked on nginx's port, so stopping nginx takes the active down.
    let active = format!("check port 80 inter {INTER_MS} fall 2 rise 2 on-marked-up shutdown-backup-sessions");
    let backup = format!("check port 80 inter {INTER_MS} fall 2 rise 2 backup");
    let cfg = defaults()
        + &frontend("echo", &tb.lb, 7000, "echo")
        + &pool("echo", &[(&web1, 7000, &active), (&web3, 7000, &backup)]);
    let mut agent = start_in(&mut tb, &cfg, mode);
    tb.stop_nginx(&web1, 80).expect("stop web1");
    agent.wait_for("Server echo/web1 is DOWN", Duration::from_secs(10));
    // The DOWN line is logged as the check publishes it; the maps follow a
    // moment later (longer on a busy machine). A flow started in between
    // lands on web1 and is reset when its server leaves the table.
    if mode == "xdp" {
        agent.wait_for(
            "backend echo: tables rebuilt for weights [0, 1]",
            Duration::from_secs(10),
        );
    }
    // 100 lines over 10 s, on the backup (the only server left).
    let vip = tb.lb.v4();
    let mut long = tb
        .command(&tb.client, "bash")
        .args([
            "-c",
            &format!("for i in $(seq 100); do echo line $i; sleep 0.1; done | socat -t 3 - TCP:{vip}:7000"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("long flow");
    // The echoed lines as they come: the active comes back only once the
    // flow is running on the backup, whatever the timing of its connect.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = long.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut echoed = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while echoed < 5 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(_) => echoed += 1,
            Err(_) => {
                let _ = long.kill();
                let mut err = String::new();
                if let Some(mut e) = long.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!(
                    "the flow echoed {echoed} lines from the backup in 10 s; socat: {err}\nagent:\n{}",
                    agent.log()
                );
            }
        }
    }
    tb.start_nginx(&web1, "web1", 80).expect("start web1");
    agent.wait_for("Server echo/web1 is UP", Duration::from_secs(10));
    wait_until("the long flow's end", Duration::from_secs(30), || {
        long.try_wait().ok().flatten().is_some()
    });
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {
        echoed += 1;
    }
    assert!(
        echoed < 100,
        "the backup's flow ran to its end ({echoed} lines echoed) after the active came back"
    );
    agent.stop();
}

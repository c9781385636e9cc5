//! HAProxy's layer-4 connection rules served by lbxdp in XDP mode and in
//! proxy mode, and by real HAProxy 2.6 with the same config as the
//! reference: a blocklist read with `-f` (the client's IPv6 address and an
//! IPv4 network), `silent-drop` by source port, `use_backend` by destination
//! port, failover by `nbsrv(main) lt 1` once main's only server fails its
//! checks, and the frontend's `dcon` in `show stat`. Real nginx backends,
//! curl as the client. Needs root; skips loudly without it.
mod common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::runtime::{Bed, SERVER_OPTS, Stat, Target};
use lbxdp_testbed::{Host, Testbed};

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

each_target!(blocklist_silent_drop_switching_and_failover);

/// Client source ports that `silent-drop` takes.
const QUIET_PORTS: &str = "40100-40199";

fn config(tb: &Testbed, admin: &Path, _user: &Path, servers: &[(String, Host)]) -> String {
    let list = tb.dir().join("block.lst");
    std::fs::write(&list, format!("# refused clients\n192.0.2.0/24\n{}\n", tb.client.v6())).expect("block.lst");
    let [(_, main), (_, spare), (_, alt)] = servers else {
        panic!("three servers")
    };
    let (lb, lb6) = (tb.lb.v4(), tb.lb.v6());
    format!(
        "global\n    stats socket {admin} mode 600 level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {lb}:80\n    bind {lb}:8080\n\
         \x20   acl blocked src -f {list}\n\
         \x20   acl quiet src_port 40100:40199\n\
         \x20   acl main_down nbsrv(main) lt 1\n\
         \x20   tcp-request connection reject if blocked\n\
         \x20   tcp-request connection silent-drop if quiet\n\
         \x20   use_backend spare if main_down\n\
         \x20   use_backend alt if {{ dst_port 8080 }}\n\
         \x20   default_backend main\n\n\
         backend main\n    server s1 {}:80 {SERVER_OPTS}\n\n\
         backend spare\n    server s2 {}:80\n\n\
         backend alt\n    server s3 {}:80\n\n\
         frontend web6\n    bind [{lb6}]:80\n    acl blocked src -f {list}\n\
         \x20   tcp-request connection reject if blocked\n    default_backend six\n\n\
         backend six\n    server s3 [{}]:80\n",
        main.v4(),
        spare.v4(),
        alt.v4(),
        alt.v6(),
        admin = admin.display(),
        list = list.display(),
    )
}

/// curl's outcome: the body, or its exit code and how long it took.
fn curl(bed: &Bed, url: &str, extra: &[&str]) -> (Result<String, i32>, Duration) {
    let started = Instant::now();
    let out = bed
        .tb
        .command(&bed.tb.client, "curl")
        .args(["-sS", "--max-time", "2"])
        .args(extra)
        .arg(url)
        .output_timeout(Duration::from_secs(10))
        .expect("curl");
    let took = started.elapsed();
    if out.status.success() {
        (Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()), took)
    } else {
        (Err(out.status.code().unwrap_or(-1)), took)
    }
}

fn dcon(bed: &Bed, frontend: &str) -> u64 {
    let stat = Stat::parse(&bed.admin("show stat"));
    stat.num(frontend, "FRONTEND", "dcon")
        .unwrap_or_else(|| panic!("no {frontend}/FRONTEND dcon in:\n{}", stat.text))
}

fn blocklist_silent_drop_switching_and_failover(target: Target) {
    let _one = serial();
    let Some(bed) = Bed::start_with("blocklist_silent_drop_switching_and_failover", target, config) else {
        return;
    };
    let t = target.name();
    let v4 = format!("http://{}/", bed.tb.lb.v4());
    let v6 = format!("http://[{}]/", bed.tb.lb.v6());
    assert_eq!(curl(&bed, &v4, &[]).0, Ok("web1".to_string()), "{t}: an allowed client");
    assert_eq!(dcon(&bed, "web"), 0, "{t}");

    // The client's IPv6 address is listed: refused at once, no answer from a server.
    let (got, took) = curl(&bed, &v6, &[]);
    assert!(got.is_err(), "{t}: a listed client got {got:?}");
    assert!(
        took < Duration::from_secs(1),
        "{t}: a reject is immediate, took {took:?}"
    );
    assert_eq!(dcon(&bed, "web6"), 1, "{t}: the reject counts in dcon");

    // From a quiet port: refused without a word. XDP drops the SYN, so
    // curl gives up at its --max-time; HAProxy's reset carries a TTL of 1,
    // which reaches a client on the LB's own segment, as here.
    let (got, took) = curl(&bed, &v4, &["--local-port", QUIET_PORTS]);
    assert!(got.is_err(), "{t}: a silent drop let {got:?} through");
    if target == Target::Xdp {
        assert_eq!(got, Err(28), "{t}: a silent drop times out");
        assert!(took >= Duration::from_millis(1900), "{t}: took {took:?}");
    }
    // HAProxy counts a silent drop in dreq, not dcon; XDP counts each SYN
    // it drops (curl retransmits its SYN after a second).
    let stat = Stat::parse(&bed.admin("show stat"));
    let dreq = stat.num("web", "FRONTEND", "dreq");
    match target {
        Target::Xdp => assert!(matches!(dreq, Some(1..=2)), "{t}: dreq {dreq:?}:\n{}", stat.text),
        _ => assert_eq!(dreq, Some(1), "{t}: a silent drop counts in dreq:\n{}", stat.text),
    }
    assert_eq!(dcon(&bed, "web"), 0, "{t}: a silent drop isn't in dcon");

    assert_eq!(
        curl(&bed, &format!("http://{}:8080/", bed.tb.lb.v4()), &[]).0,
        Ok("web3".to_string()),
        "{t}: use_backend by dst_port"
    );

    // main's only server goes away: once its check fails, nbsrv(main) is 0.
    bed.tb.stop_nginx(&bed.host_of("s1"), 80).expect("stop web1's nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = curl(&bed, &v4, &[]).0.ok();
        if last.as_deref() == Some("web2") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last.as_deref(), Some("web2"), "{t}: no failover to spare");
    // ... and back when it returns.
    let web1 = bed.host_of("s1");
    bed.tb.start_nginx(&web1, &web1.name, 80).expect("start web1's nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        last = curl(&bed, &v4, &[]).0.ok();
        if last.as_deref() == Some("web1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last.as_deref(), Some("web1"), "{t}: main is used again once up");
}

//! Stick tables and connection counters in XDP and proxy mode, side by side
//! with real HAProxy 2.6 on the same config (its answers are the spec): a
//! connection rate limit by `track-sc0 src` + `reject if { sc0_conn_rate gt
//! 3 }`, a concurrent connection limit held open with socat, `show table` /
//! `clear table` on the stats socket, and `use_backend` by `be_conn` and
//! `connslots`. Clients are curl and socat in the testbed's namespaces,
//! servers real nginx. Needs root; skips loudly without it.
mod common;

use std::{
    collections::HashMap,
    process::Child,
    time::{Duration, Instant},
};

use common::{
    clients::{curl, socat},
    runtime::{Lb, Target},
};
use lbxdp_testbed::{Host, Layout, Testbed};

/// One testbed and balancer at a time: the 2-core machine stays honest.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Each scenario against HAProxy (the reference) and lbxdp's proxy, where
/// XDP can't run it (`each_target!` adds XDP).
macro_rules! both {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::common::runtime::Target;
            #[test]
            fn haproxy() {
                super::$scenario(Target::Haproxy);
            }
            #[test]
            fn proxy() {
                super::$scenario(Target::Proxy);
            }
        }
    )*};
}

each_target!(rate_limit_show_and_clear, concurrent_limit);
// XDP keeps no session counts (be_conn, connslots), and its tables share
// one LRU map, so a table's own `size` isn't what evicts.
both!(switch_by_be_conn_and_connslots, size_and_expire);

struct Bed {
    lb: Lb,
    tb: Testbed,
    admin: std::path::PathBuf,
}

/// The testbed (a client, the LB, three nginx) and `target` on the config
/// `body` makes (given the testbed and the admin socket's path).
fn start(test: &str, target: Target, body: impl Fn(&Testbed, &str) -> String) -> Option<Bed> {
    let name = format!("{test}_{}", target.name());
    if target == Target::Haproxy && !std::path::Path::new("/usr/sbin/haproxy").exists() {
        eprintln!("\n!!! SKIPPED {name}: /usr/sbin/haproxy is missing (`cargo xtask setup` installs it). !!!\n");
        return None;
    }
    let mut tb = common::testbed(&name, Layout::OneArm, 3, true)?;
    let admin = tb.dir().join("admin.sock");
    let cfg = format!(
        "global\n    stats socket {} mode 600 level admin\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    \
         timeout client 30s\n    timeout server 30s\n\n{}",
        admin.display(),
        body(&tb, &admin.to_string_lossy())
    );
    let lb = Lb::start(&mut tb, target, &cfg, &admin);
    Some(Bed { lb, tb, admin })
}

impl Bed {
    fn admin(&self, line: &str) -> String {
        socat(&self.tb, &self.tb.lb, &self.admin, line)
    }

    /// curl from `host` to the LB's port: the nginx that answered, or None
    /// when the connection was refused or closed.
    fn get(&self, host: &Host, port: u16) -> Option<String> {
        curl(&self.tb, host, &format!("http://{}:{port}/", self.tb.lb.v4()))
            .ok()
            .map(|b| b.trim().to_string())
    }

    /// A connection from `host` to the LB's port held open (nothing sent)
    /// until the handle is dropped or 30 s pass.
    fn hold(&mut self, host: &Host, port: u16) -> Held {
        let child = self
            .tb
            .command(host, "socat")
            .args([format!("TCP:{}:{port}", self.tb.lb.v4()), "EXEC:sleep 30".to_string()])
            .spawn()
            .expect("socat");
        Held(child)
    }

    /// The entry for `key` in `show table NAME`, as its `name=value` fields.
    fn entry(&self, table: &str, key: &str) -> Option<HashMap<String, String>> {
        let text = self.admin(&format!("show table {table}"));
        entry(&text, key)
    }

    /// Polls `show table` until `key`'s `field` reads `want` (bounded).
    fn wait_field(&mut self, table: &str, key: &str, field: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self.entry(table, key);
            if e.as_ref().and_then(|e| e.get(field)).map(String::as_str) == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{table} {key}: {field} never read {want}: {e:?}\n{}",
                self.lb.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A held client connection; ended (socat killed by its handle) on drop.
struct Held(Child);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `0x...: key=K use=N exp=N a=b ...` into its fields.
fn entry(text: &str, key: &str) -> Option<HashMap<String, String>> {
    text.lines()
        .filter(|l| l.starts_with("0x"))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<String, String>>()
        })
        .find(|f| f.get("key").map(String::as_str) == Some(key))
}

/// The fields that don't depend on timing (no pointer, no exp).
fn counters(e: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = e
        .iter()
        .filter(|(k, _)| k.as_str() != "exp")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort();
    v
}

/// `track-sc0 src table st_src` + `reject if { sc0_conn_rate gt 3 }`: the
/// 4th connection of one client within the period is refused, another
/// client still passes; `show table` lists the entry with its counters,
/// `clear table ... key` drops it and the client passes again.
fn rate_limit_show_and_clear(target: Target) {
    let _one = serial();
    let Some(mut bed) = start("stick_rate", target, |tb, _| {
        format!(
            "frontend web\n    bind {}:80\n    tcp-request connection track-sc0 src table st_src\n    \
             tcp-request connection reject if {{ sc0_conn_rate gt 3 }}\n    default_backend be\n\n\
             backend be\n    server web1 {}:80\n\n\
             backend st_src\n    stick-table type ip size 1k expire 60s store conn_cur,conn_cnt,conn_rate(60s)\n",
            tb.lb.v4(),
            tb.backends[0].v4()
        )
    }) else {
        return;
    };
    let client = bed.tb.client.clone();
    let other = bed.tb.backends[2].clone();
    let answers: Vec<Option<String>> = (0..5).map(|_| bed.get(&client, 80)).collect();
    let web1 = Some("web1".to_string());
    assert_eq!(
        answers,
        [web1.clone(), web1.clone(), web1.clone(), None, None],
        "{}",
        bed.lb.log()
    );
    assert_eq!(bed.get(&other, 80), web1, "another client is not limited");

    let key = client.v4().to_string();
    bed.wait_field("st_src", &key, "conn_cur", "0");
    let list = bed.admin("show table");
    assert!(
        list.contains("# table: st_src, type: ip, size:1024, used:2\n"),
        "{list}"
    );
    let e = bed
        .entry("st_src", &key)
        .unwrap_or_else(|| panic!("no entry for {key}"));
    let want: Vec<(String, String)> = [
        ("conn_cnt", "5"),
        ("conn_cur", "0"),
        ("conn_rate(60000)", "5"),
        ("key", key.as_str()),
        ("use", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(counters(&e), want);
    let exp: u64 = e.get("exp").and_then(|x| x.parse().ok()).unwrap_or(0);
    assert!((50_000..=60_000).contains(&exp), "exp={exp}");

    // Filters: only the limited client has more than 3 connections.
    let filtered = bed.admin("show table st_src data.conn_cnt gt 3");
    assert!(
        entry(&filtered, &key).is_some() && entry(&filtered, &other.v4().to_string()).is_none(),
        "{filtered}"
    );
    assert_eq!(
        bed.admin("show table st_src data.http_req_cnt gt 3"),
        "Filter entry #1: Data type not stored in this table\n\n"
    );
    assert_eq!(bed.admin("show table nope"), "No such table\n\n");

    assert_eq!(bed.admin(&format!("clear table st_src key {key}")), "\n");
    assert!(bed.entry("st_src", &key).is_none());
    assert_eq!(bed.get(&client, 80), web1, "a cleared entry counts from 0");
    bed.wait_field("st_src", &key, "conn_cnt", "1");
    // By data: only what the filter picks goes.
    assert_eq!(bed.admin("clear table st_src data.conn_cnt gt 1"), "\n");
    let text = bed.admin("show table st_src");
    assert!(
        entry(&text, &key).is_some() && entry(&text, &other.v4().to_string()).is_some(),
        "{text}"
    );
    assert_eq!(bed.admin("clear table st_src"), "\n");
    assert_eq!(
        bed.admin("show table"),
        "# table: st_src, type: ip, size:1024, used:0\n\n"
    );
}

/// `reject if { sc0_conn_cur gt 2 }`: two connections held open pass, a
/// third is refused; once they close, the client passes again.
fn concurrent_limit(target: Target) {
    let _one = serial();
    let Some(mut bed) = start("stick_cur", target, |tb, _| {
        format!(
            "frontend web\n    bind {}:80\n    \
             stick-table type ip size 100 expire 30s store conn_cur,gpc0\n    \
             tcp-request connection track-sc1 src\n    \
             tcp-request connection sc-inc-gpc0(1)\n    \
             tcp-request connection reject if {{ sc1_conn_cur gt 2 }}\n    default_backend be\n\n\
             backend be\n    server web1 {}:80\n",
            tb.lb.v4(),
            tb.backends[0].v4()
        )
    }) else {
        return;
    };
    let client = bed.tb.client.clone();
    let key = client.v4().to_string();
    let held = [bed.hold(&client, 80), bed.hold(&client, 80)];
    bed.wait_field("web", &key, "conn_cur", "2");
    assert_eq!(bed.get(&client, 80), None, "a third concurrent connection is refused");
    bed.wait_field("web", &key, "conn_cur", "2");
    let e = bed.entry("web", &key).unwrap_or_else(|| panic!("no entry"));
    assert_eq!(e.get("use").map(String::as_str), Some("2"), "{e:?}");
    assert_eq!(e.get("gpc0").map(String::as_str), Some("3"), "{e:?}");
    // An entry in use stays.
    assert_eq!(
        bed.admin(&format!("clear table web key {key}")),
        "Entry currently in use, cannot remove\n\n"
    );
    drop(held);
    bed.wait_field("web", &key, "conn_cur", "0");
    assert_eq!(bed.get(&client, 80), Some("web1".into()));
}

/// `use_backend spare if { be_conn(main) ge 2 }` and, on another port,
/// `if { connslots(main) lt 14 }` (main: one server, maxconn 10, maxqueue
/// 5: 15 slots free when idle).
fn switch_by_be_conn_and_connslots(target: Target) {
    let _one = serial();
    let Some(mut bed) = start("stick_beconn", target, |tb, _| {
        format!(
            "frontend web\n    bind {lb}:80\n    use_backend spare if {{ be_conn(main) ge 2 }}\n    \
             default_backend main\n\n\
             frontend slots\n    bind {lb}:8080\n    use_backend spare if {{ connslots(main) lt 14 }}\n    \
             default_backend main\n\n\
             backend main\n    server web1 {}:80 maxconn 10 maxqueue 5\n\n\
             backend spare\n    server web2 {}:80\n",
            tb.backends[0].v4(),
            tb.backends[1].v4(),
            lb = tb.lb.v4(),
        )
    }) else {
        return;
    };
    let client = bed.tb.client.clone();
    let (web1, web2) = (Some("web1".to_string()), Some("web2".to_string()));
    assert_eq!(bed.get(&client, 80), web1);
    assert_eq!(bed.get(&client, 8080), web1);
    let _held = [bed.hold(&client, 80), bed.hold(&client, 80)];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = bed.admin("show stat");
        let scur = stat
            .lines()
            .find(|l| l.starts_with("main,BACKEND,"))
            .and_then(|l| l.split(',').nth(4))
            .map(str::to_string);
        if scur.as_deref() == Some("2") {
            break;
        }
        assert!(Instant::now() < deadline, "main never had 2 sessions: {stat}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(bed.get(&client, 80), web2, "be_conn(main) is 2");
    assert_eq!(bed.get(&client, 8080), web2, "connslots(main) is 13");
}

/// `size 2 expire 2s`: a third address pushes out the least recently
/// touched entry; two seconds after their last touch the others are gone.
fn size_and_expire(target: Target) {
    let _one = serial();
    let Some(mut bed) = start("stick_size", target, |tb, _| {
        format!(
            "frontend web\n    bind {}:80\n    stick-table type ip size 2 expire 2s store conn_cur,conn_cnt\n    \
             tcp-request connection track-sc0 src\n    default_backend be\n\n\
             backend be\n    server web1 {}:80\n",
            tb.lb.v4(),
            tb.backends[0].v4()
        )
    }) else {
        return;
    };
    let hosts = [
        bed.tb.client.clone(),
        bed.tb.backends[1].clone(),
        bed.tb.backends[2].clone(),
    ];
    for h in &hosts {
        assert_eq!(bed.get(h, 80), Some("web1".into()));
        // Released (and touched) before the next one comes.
        bed.wait_field("web", &h.v4().to_string(), "conn_cur", "0");
    }
    let text = bed.admin("show table web");
    assert!(text.starts_with("# table: web, type: ip, size:2, used:2\n"), "{text}");
    assert!(
        entry(&text, &hosts[0].v4().to_string()).is_none(),
        "the oldest went: {text}"
    );
    assert!(entry(&text, &hosts[2].v4().to_string()).is_some(), "{text}");
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(bed.admin("show table"), "# table: web, type: ip, size:2, used:0\n\n");
}

/// What XDP can't count is refused with its place (`be_conn`: XDP keeps
/// no sessions), and `--mode auto` serves the config with the proxy.
#[test]
fn xdp_refuses_session_counts_and_auto_falls_back_to_the_proxy() {
    let _one = serial();
    let Some(tb) = common::testbed("stick_xdp_refuses", Layout::OneArm, 1, true) else {
        return;
    };
    let cfg = common::write_config(
        &tb,
        &format!(
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
             frontend web\n    bind {}:80\n    stick-table type ip size 1k store conn_rate(60s)\n    \
             tcp-request connection track-sc0 src\n    \
             tcp-request connection reject if {{ sc0_conn_rate gt 1 }} || {{ fe_conn(web) gt 100 }}\n    \
             default_backend be\n\nbackend be\n    server web1 {}:80\n",
            tb.lb.v4(),
            tb.backends[0].v4()
        ),
    );
    let out = tb
        .command(&tb.lb, common::agent_bin())
        .args(["-f", &cfg, "--mode", "xdp", "-i", "eth0"])
        .output_timeout(Duration::from_secs(30))
        .expect("agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{cfg}:11: frontend web: be_conn, fe_conn and connslots")),
        "{err}"
    );

    let mut agent = common::Agent::start(&tb, &["-f", &cfg, "-i", "eth0", "--stats-interval", "0"]);
    agent.wait_for("falling back to the userspace proxy", Duration::from_secs(30));
    agent.wait_for("balancing", Duration::from_secs(30));
    let url = format!("http://{}/", tb.lb.v4());
    assert_eq!(
        curl(&tb, &tb.client, &url)
            .ok()
            .map(|b| b.trim().to_string())
            .as_deref(),
        Some("web1")
    );
    assert!(
        curl(&tb, &tb.client, &url).is_err(),
        "the second connection within the minute is refused"
    );
    agent.kill();
}

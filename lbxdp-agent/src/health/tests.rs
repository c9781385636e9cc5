//! The monitor and its tasks on a paused clock, with scripted checks: every
//! transition, the interval switching, maintenance, reloads and log lines.
use std::{
    io::Write,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::time::{Instant, sleep};

use super::*;
use crate::config::parse_str;

const TIMEOUTS: &str = "defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n";

fn config(body: &str) -> Config {
    match parse_str(
        "t.cfg",
        &format!("{TIMEOUTS}frontend f\n bind :80\n default_backend be\n{body}"),
    ) {
        Ok((c, _)) => c,
        Err(d) => panic!("config: {d:#?}"),
    }
}

/// A server's scripted check: passes while `up`, and logs when it ran.
#[derive(Default)]
struct Fake {
    up: AtomicBool,
    calls: Mutex<Vec<Instant>>,
}

impl Fake {
    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().expect("lock").clone()
    }
    /// Gaps between consecutive checks, in ms.
    fn gaps(&self) -> Vec<u128> {
        self.calls().windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
    }
}

/// Fakes by the server's check port (each test server has its own).
struct Fakes(Mutex<HashMap<u16, Arc<Fake>>>);

impl Fakes {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(HashMap::new())))
    }
    fn get(&self, port: u16) -> Arc<Fake> {
        self.0.lock().expect("lock").entry(port).or_default().clone()
    }
    fn factory(self: &Arc<Self>) -> ProbeFactory {
        let fakes = self.clone();
        Arc::new(move |spec: CheckSpec| {
            let fake = fakes.get(spec.port.unwrap_or(0));
            Arc::new(move || {
                let fake = fake.clone();
                Box::pin(async move {
                    fake.calls.lock().expect("lock").push(Instant::now());
                    let up = fake.up.load(Ordering::SeqCst);
                    CheckResult {
                        status: if up { CheckStatus::L4Ok } else { CheckStatus::L4Con },
                        code: 0,
                        info: (!up).then(|| "Connection refused".to_string()),
                        duration: Duration::ZERO,
                    }
                })
            })
        })
    }
}

fn st(m: &Monitor, server: &str) -> ServerState {
    m.snapshot()
        .get(&ServerId::new("be", server))
        .cloned()
        .unwrap_or_else(|| panic!("{server} in the snapshot"))
}

/// Log lines (messages only) while the guard lives; tasks run on this
/// thread (current_thread runtime), so a thread-local subscriber sees them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn starts_up_and_the_first_failure_takes_it_down() {
    let fakes = Fakes::new();
    let c = config("backend be\n server s1 127.0.0.1:1001 check inter 2s rise 2 fall 3\n");
    let (m, mut rx) = Monitor::start_with(&c, fakes.factory());
    let s = st(&m, "s1");
    assert_eq!(s.status, Status::GoingDown { remaining: 1, fall: 3 });
    assert_eq!(s.status.to_string(), "UP 1/3");
    assert!(s.takes_traffic() && s.checked);
    rx.borrow_and_update();

    rx.changed().await.expect("a change");
    let s = st(&m, "s1");
    assert_eq!(s.status, Status::Down);
    assert!(!s.takes_traffic());
    assert_eq!((s.marked_down, s.marked_up), (1, 0));
    assert_eq!(
        s.last_reason.as_deref(),
        Some("Layer4 connection problem, info: \"Connection refused\"")
    );
    assert_eq!(fakes.get(1001).calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn intervals_follow_the_state() {
    let fakes = Fakes::new();
    let fake = fakes.get(1001);
    fake.set(true);
    let c = config("backend be\n server s1 127.0.0.1:1001 check inter 2s fastinter 500 downinter 10s rise 2 fall 3\n");
    let (m, _rx) = Monitor::start_with(&c, fakes.factory());
    // t=0 passes: fully up, next at inter.
    sleep(Duration::from_millis(1)).await;
    assert_eq!(st(&m, "s1").status, Status::Up);
    // t=2s fails: UP 2/3, fastinter.
    fake.set(false);
    sleep(Duration::from_millis(2000)).await;
    assert_eq!(st(&m, "s1").status.to_string(), "UP 2/3");
    // t=2.5s: UP 1/3; t=3s: DOWN, then downinter.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(st(&m, "s1").status.to_string(), "UP 1/3");
    sleep(Duration::from_millis(500)).await;
    assert_eq!(st(&m, "s1").status, Status::Down);
    // t=13s passes: DOWN 1/2 at fastinter; t=13.5s: UP, back to inter.
    fake.set(true);
    sleep(Duration::from_millis(10_000)).await;
    assert_eq!(st(&m, "s1").status.to_string(), "DOWN 1/2");
    sleep(Duration::from_millis(500)).await;
    assert_eq!(st(&m, "s1").status, Status::Up);
    sleep(Duration::from_millis(2000)).await;
    assert_eq!(fake.gaps(), vec![2000, 500, 500, 10_000, 500, 2000]);
    let s = st(&m, "s1");
    assert_eq!((s.marked_down, s.marked_up), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_check_switches_to_downinter() {
    let fakes = Fakes::new();
    let fake = fakes.get(1001);
    fake.set(false);
    let c = config("backend be\n server s1 127.0.0.1:1001 check inter 4s fastinter 1s downinter 3s\n");
    let (_m, _rx) = Monitor::start_with(&c, fakes.factory());
    sleep(Duration::from_millis(3500)).await;
    assert_eq!(fake.gaps(), vec![3000], "down after the first check: downinter");
}

#[tokio::test(start_paused = true)]
async fn first_checks_are_staggered() {
    let fakes = Fakes::new();
    let c = config(
        "backend be\n server a 127.0.0.1:1001 check inter 3s\n server b 127.0.0.1:1002 check inter 3s\n \
         server c 127.0.0.1:1003 check inter 3s\n",
    );
    let t0 = Instant::now();
    let (_m, _rx) = Monitor::start_with(&c, fakes.factory());
    sleep(Duration::from_millis(2500)).await;
    let firsts: Vec<u128> = (1001..=1003)
        .map(|p| (fakes.get(p).calls()[0] - t0).as_millis())
        .collect();
    assert_eq!(firsts, vec![0, 1000, 2000]);
}

#[tokio::test(start_paused = true)]
async fn transition_log_lines() {
    let (logs, _g) = Logs::capture();
    let fakes = Fakes::new();
    let c =
        config("backend be\n server web1 127.0.0.1:1001 check inter 1s\n server web2 127.0.0.1:1002 check inter 1s\n");
    fakes.get(1002).set(true);
    let (_m, _rx) = Monitor::start_with(&c, fakes.factory());
    // web1 fails at 0 and passes from 1s (UP at 2s); web2 passes at 0.5s,
    // then fails from 2.5s (DOWN at 4.5s).
    sleep(Duration::from_millis(100)).await;
    fakes.get(1001).set(true);
    sleep(Duration::from_millis(2000)).await;
    fakes.get(1002).set(false);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        logs.lines(),
        vec![
            "Server be/web1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", \
             check duration: 0ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, \
             0 remaining in queue.",
            "Server be/web1 is UP, reason: Layer4 check passed, check duration: 0ms. \
             2 active and 0 backup servers online. 0 sessions requeued, 0 total in queue.",
            "Server be/web2 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", \
             check duration: 0ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, \
             0 remaining in queue.",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn log_health_checks_and_backups() {
    let (logs, _g) = Logs::capture();
    let fakes = Fakes::new();
    let c = config(
        "backend be\n option log-health-checks\n server a 127.0.0.1:1001 check inter 1s rise 2 fall 2\n \
         server b 127.0.0.1:1002 check inter 1s backup\n",
    );
    fakes.get(1002).set(true);
    let (m, _rx) = Monitor::start_with(&c, fakes.factory());
    // a fails at 0; b passes at 0.5s, fails at 1.5s.
    sleep(Duration::from_millis(600)).await;
    fakes.get(1002).set(false);
    sleep(Duration::from_millis(1000)).await;
    let b = st(&m, "b");
    assert_eq!(b.status.to_string(), "UP 2/3");
    assert_eq!(
        logs.lines(),
        vec![
            "Health check for server be/a failed, reason: Layer4 connection problem, info: \"Connection refused\", \
             check duration: 0ms, status: 0/2 DOWN.",
            "Server be/a is DOWN. 0 active and 1 backup servers left. Running on backup. 0 sessions active, \
             0 requeued, 0 remaining in queue.",
            "Health check for backup server be/b succeeded, reason: Layer4 check passed, check duration: 0ms, \
             status: 3/3 UP.",
            "Health check for backup server be/b failed, reason: Layer4 connection problem, info: \
             \"Connection refused\", check duration: 0ms, status: 2/3 UP.",
        ]
    );
    sleep(Duration::from_secs(3)).await;
    let lines = logs.lines();
    assert_eq!(
        lines[lines.len() - 2],
        "Backup Server be/b is DOWN. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, \
         0 remaining in queue."
    );
    // HAProxy quotes the name on stderr (not in the syslog line).
    assert_eq!(lines[lines.len() - 1], "backend 'be' has no server available!");
}

#[tokio::test(start_paused = true)]
async fn unchecked_disabled_and_drain_servers() {
    let fakes = Fakes::new();
    let c = config(
        "backend be\n server plain 127.0.0.1:1001\n server off 127.0.0.1:1002 check disabled\n \
         server w0 127.0.0.1:1003 weight 0\n server w0c 127.0.0.1:1004 check weight 0\n",
    );
    fakes.get(1004).set(true);
    let (m, _rx) = Monitor::start_with(&c, fakes.factory());
    sleep(Duration::from_secs(10)).await;
    assert_eq!(st(&m, "plain").status, Status::Up);
    assert!(!st(&m, "plain").checked);
    assert_eq!(fakes.get(1001).calls().len(), 0);
    assert_eq!(st(&m, "off").status, Status::Maint);
    assert_eq!(st(&m, "off").status.to_string(), "MAINT");
    assert_eq!(fakes.get(1002).calls().len(), 0, "no checks in maintenance");
    assert_eq!(st(&m, "w0").status.to_string(), "DRAIN");
    assert_eq!(st(&m, "w0c").status, Status::Drain);
    assert!(st(&m, "w0c").is_up() && !st(&m, "w0c").takes_traffic());
    assert!(fakes.get(1004).calls().len() > 1, "drained servers are still checked");
}

#[tokio::test(start_paused = true)]
async fn maintenance_at_runtime() {
    let (logs, _g) = Logs::capture();
    let fakes = Fakes::new();
    let c = config("backend be\n server s 127.0.0.1:1001 check inter 2s\n server u 127.0.0.1:1002\n");
    fakes.get(1001).set(true);
    let (m, _rx) = Monitor::start_with(&c, fakes.factory());
    sleep(Duration::from_millis(100)).await;
    let s = ServerId::new("be", "s");
    assert!(m.set_maint(&s, true));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(st(&m, "s").status, Status::Maint);
    assert_eq!(fakes.get(1001).calls().len(), 1, "checks pause");
    // Leaving maintenance: UP at once with the counter at rise, checked at once.
    fakes.get(1001).set(false);
    assert!(m.set_maint(&s, false));
    sleep(Duration::from_millis(1)).await;
    assert_eq!(st(&m, "s").status, Status::Down, "the immediate check failed");
    assert_eq!(fakes.get(1001).calls().len(), 2);

    let u = ServerId::new("be", "u");
    assert!(m.set_maint(&u, true));
    assert_eq!(st(&m, "u").status, Status::Maint);
    assert!(m.set_maint(&u, false));
    assert_eq!(st(&m, "u").status, Status::Up);
    assert!(!m.set_maint(&ServerId::new("be", "nope"), true));
    assert_eq!(
        logs.lines(),
        vec![
            "Server be/s is going DOWN for maintenance. 1 active and 0 backup servers left. 0 sessions active, \
             0 requeued, 0 remaining in queue.",
            "Server be/s is UP/READY (leaving forced maintenance).",
            "Server be/s is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", \
             check duration: 0ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, \
             0 remaining in queue.",
            "Server be/u is going DOWN for maintenance. 0 active and 0 backup servers left. 0 sessions active, \
             0 requeued, 0 remaining in queue.",
            "backend 'be' has no server available!",
            "Server be/u is UP/READY (leaving forced maintenance).",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_servers() {
    let fakes = Fakes::new();
    let c1 = config(
        "backend be\n server keep 127.0.0.1:1001 check inter 1s\n server moved 127.0.0.1:1002 check inter 1s\n \
         server gone 127.0.0.1:1003 check inter 1s\n server w 127.0.0.1:1004 check inter 1s\n",
    );
    fakes.get(1004).set(true);
    let (mut m, mut rx) = Monitor::start_with(&c1, fakes.factory());
    sleep(Duration::from_secs(5)).await;
    assert_eq!(st(&m, "keep").status, Status::Down);
    assert_eq!(st(&m, "moved").status, Status::Down);
    let keep_calls = fakes.get(1001).calls().len();

    let c2 = config(
        "backend be\n server keep 127.0.0.1:1001 check inter 1s\n server moved 127.0.0.1:1005 check inter 1s\n \
         server w 127.0.0.1:1004 check inter 1s weight 7 backup\n server new 127.0.0.1:1006\n",
    );
    rx.borrow_and_update();
    m.reload(&c2);
    assert!(rx.has_changed().expect("open"), "one coalesced change");
    let snap = m.snapshot();
    assert_eq!(snap.len(), 4);
    assert!(!snap.contains_key(&ServerId::new("be", "gone")));
    assert_eq!(st(&m, "keep").status, Status::Down, "state kept");
    assert_eq!(
        st(&m, "moved").status,
        Status::GoingDown { remaining: 1, fall: 3 },
        "restarted"
    );
    let w = st(&m, "w");
    assert_eq!((w.status, w.weight, w.backup), (Status::Up, 7, true));
    assert_eq!(st(&m, "new").status, Status::Up);
    let gone_calls = fakes.get(1003).calls().len();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        fakes.get(1003).calls().len(),
        gone_calls,
        "removed server's task stopped"
    );
    assert!(fakes.get(1001).calls().len() > keep_calls, "kept task still running");
    assert!(!fakes.get(1005).calls().is_empty());

    m.stop();
    let n = fakes.get(1001).calls().len();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(fakes.get(1001).calls().len(), n, "stopped");
}

fn state(status: Status, weight: u32, backup: bool) -> ServerState {
    ServerState {
        status,
        weight,
        initial_weight: weight,
        drain: false,
        checks_enabled: true,
        backup,
        last_reason: None,
        checked: true,
        marked_down: 0,
        marked_up: 0,
        check_failures: 0,
        last_check: None,
        health: None,
        since: std::time::Instant::now(),
    }
}

#[test]
fn effective_weights_apply_the_backup_rules() {
    let text = "backend be\n server a 10.0.0.1:80 weight 3\n server b 10.0.0.2:80 weight 5\n \
                server k1 10.0.0.3:80 backup weight 2\n server k2 10.0.0.4:80 backup weight 4\n";
    let c = config(text);
    let be = c.backend("be").expect("be");
    let snap = |v: [(Status, u32); 4]| -> BTreeMap<ServerId, ServerState> {
        ["a", "b", "k1", "k2"]
            .iter()
            .zip(v)
            .enumerate()
            .map(|(i, (n, (s, w)))| (ServerId::new("be", n), state(s, w, i >= 2)))
            .collect()
    };
    let down = Status::Down;
    let up = Status::Up;
    let going = Status::GoingDown { remaining: 1, fall: 3 };
    // Missing entries read as configured: all up, the actives take it all.
    assert_eq!(effective_weights(be, &BTreeMap::new()), vec![3, 5, 0, 0]);
    assert_eq!(
        effective_weights(be, &snap([(going, 3), (down, 5), (up, 2), (up, 4)])),
        vec![3, 0, 0, 0]
    );
    assert_eq!(
        effective_weights(be, &snap([(down, 3), (down, 5), (up, 2), (up, 4)])),
        vec![0, 0, 2, 0]
    );
    assert_eq!(
        effective_weights(be, &snap([(down, 3), (down, 5), (down, 2), (up, 4)])),
        vec![0, 0, 0, 4]
    );
    // A drained active doesn't count as up: the backup takes over, as in HAProxy.
    let drain = Status::Drain;
    assert_eq!(
        effective_weights(be, &snap([(drain, 0), (Status::Maint, 5), (up, 2), (up, 4)])),
        vec![0, 0, 2, 0]
    );
    assert_eq!(
        effective_weights(be, &snap([(down, 3), (down, 5), (down, 2), (down, 4)])),
        vec![0, 0, 0, 0]
    );

    let c = config(&format!("{text} option allbackups\n"));
    let be = c.backend("be").expect("be");
    assert!(be.allbackups);
    assert_eq!(
        effective_weights(be, &snap([(down, 3), (down, 5), (up, 2), (up, 4)])),
        vec![0, 0, 2, 4]
    );
    assert_eq!(
        effective_weights(be, &snap([(up, 3), (down, 5), (up, 2), (up, 4)])),
        vec![3, 0, 0, 0]
    );
}

#[test]
fn status_display_and_traffic() {
    assert_eq!(Status::GoingUp { passed: 1, rise: 2 }.to_string(), "DOWN 1/2");
    assert_eq!(Status::GoingDown { remaining: 2, fall: 3 }.to_string(), "UP 2/3");
    assert_eq!(Status::Down.to_string(), "DOWN");
    assert!(state(Status::GoingDown { remaining: 1, fall: 2 }, 1, false).takes_traffic());
    assert!(!state(Status::GoingUp { passed: 1, rise: 2 }, 1, false).takes_traffic());
    assert!(!state(Status::Up, 0, false).takes_traffic());
    assert!(!state(Status::Maint, 1, false).takes_traffic());
    assert_eq!(ServerId::new("be", "s").to_string(), "be/s");
}

async fn wait_for(rx: &mut watch::Receiver<Snapshot>, want: Status) {
    let id = ServerId::new("be", "s");
    let seen = rx.wait_for(|s| s.get(&id).is_some_and(|st| st.status == want));
    assert!(
        tokio::time::timeout(Duration::from_secs(5), seen).await.is_ok(),
        "waiting for {want}"
    );
}

/// Real checks on the real clock: refused, then a listener appears.
#[tokio::test]
async fn real_checks_end_to_end() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let c = config(&format!(
        "backend be\n server s 127.0.0.1:{port} check inter 100 rise 1 fall 1\n"
    ));
    let (m, mut rx) = Monitor::start(&c);
    wait_for(&mut rx, Status::Down).await;
    assert_eq!(
        st(&m, "s").last_reason.as_deref(),
        Some("Layer4 connection problem, info: \"Connection refused\"")
    );
    let _l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind");
    wait_for(&mut rx, Status::Up).await;
    assert_eq!(st(&m, "s").last_reason.as_deref(), Some("Layer4 check passed"));
    assert_eq!((st(&m, "s").marked_down, st(&m, "s").marked_up), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn runtime_weight_drain_checks_and_forced_health() {
    let fakes = Fakes::new();
    let c = config(
        "backend be\n server s 127.0.0.1:1101 check inter 2s weight 4\n server b 127.0.0.1:1102 backup\n \
         server u 127.0.0.1:1103\n",
    );
    fakes.get(1101).set(true);
    let (mut m, _rx) = Monitor::start_with(&c, fakes.factory());
    sleep(Duration::from_millis(100)).await;
    let (s, u) = (ServerId::new("be", "s"), ServerId::new("be", "u"));
    let be = c.backend("be").expect("be");

    assert!(m.set_weight(&s, 10));
    assert_eq!((st(&m, "s").weight, st(&m, "s").initial_weight), (10, 4));
    assert_eq!(effective_weights(be, &m.snapshot()), [10, 0, 1]);

    // Drain: up, no new traffic; the backup is not called in while u is usable.
    assert!(m.set_drain(&s, true));
    assert_eq!(st(&m, "s").status, Status::Drain);
    assert_eq!(effective_weights(be, &m.snapshot()), [0, 0, 1]);
    assert!(m.set_drain(&u, true));
    assert_eq!(
        effective_weights(be, &m.snapshot()),
        [0, 1, 0],
        "nothing active left: the backup"
    );
    assert!(m.set_drain(&s, false) && m.set_drain(&u, false));
    assert_eq!(st(&m, "s").status, Status::Up);

    // Checks off: a dead server stays as it was.
    assert!(m.set_checks(&s, false));
    let calls = fakes.get(1101).calls().len();
    fakes.get(1101).set(false);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(st(&m, "s").status, Status::Up);
    assert_eq!(fakes.get(1101).calls().len(), calls, "no check while disabled");
    assert!(!st(&m, "s").checks_enabled);

    // Forced health wins until the next check; with checks off, it stays.
    assert!(m.force_health(&s, ForcedHealth::Down));
    sleep(Duration::from_millis(1)).await;
    assert_eq!(st(&m, "s").status, Status::Down);
    assert!(m.force_health(&s, ForcedHealth::Stopping));
    sleep(Duration::from_millis(1)).await;
    assert_eq!(st(&m, "s").status, Status::Nolb);
    assert!(!st(&m, "s").takes_traffic());
    assert!(m.force_health(&u, ForcedHealth::Down));
    assert_eq!(st(&m, "u").status, Status::Down);
    // Checks back on: the dead server is found dead.
    assert!(m.set_checks(&s, true));
    sleep(Duration::from_secs(10)).await;
    assert_eq!(st(&m, "s").status, Status::Down);
    assert!(!m.set_weight(&ServerId::new("be", "nope"), 1));
}

#[test]
fn backups_are_recalled_while_an_active_server_with_the_option_takes_traffic() {
    let c = config(
        "backend be\n server a 10.0.0.1:80 on-marked-up shutdown-backup-sessions\n server p 10.0.0.2:80\n \
         server k 10.0.0.3:80 backup\n",
    );
    let be = c.backend("be").expect("be");
    assert!(recalls_backups(be, &[1, 1, 0]));
    assert!(
        !recalls_backups(be, &[0, 1, 0]),
        "only the server with the option recalls them"
    );
    assert!(!recalls_backups(be, &[0, 0, 1]), "the backups took over");
    let c = config(
        "backend be\n server a 10.0.0.1:80\n server k 10.0.0.3:80 backup on-marked-up shutdown-backup-sessions\n",
    );
    assert!(
        !recalls_backups(c.backend("be").expect("be"), &[0, 1]),
        "a backup with it recalls nothing"
    );
}

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
        admin_seq: 0,
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
    let (m, _rx) = Monitor::start_with(&c, fakes.factory());
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

/// What a backend's `log 127.0.0.1:PORT format priority local2` target
/// receives, as "<PRI> message" (the way HAProxy's captures below are quoted).
struct Syslog(std::net::UdpSocket);

impl Syslog {
    fn new() -> Self {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        Self(s)
    }

    fn target(&self) -> String {
        let port = self.0.local_addr().expect("addr").port();
        format!(" log 127.0.0.1:{port} format priority local2\n")
    }

    /// Everything received so far (each read waits 50 ms of real time at most).
    fn take(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.0.recv(&mut buf) {
            let line = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
            out.push(line.replacen('>', "> ", 1));
        }
        out
    }
}

impl Logs {
    /// Log lines with their level, e.g. "WARN Server be/s ...".
    fn capture_levels() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .without_time()
            .with_target(false)
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }

    fn take(&self) -> Vec<String> {
        let lines = self.lines();
        self.0.lock().expect("lock").clear();
        lines
    }
}

/// `set server B/S state X` as the agent runs it.
fn cli_state(m: &Monitor, id: &ServerId, state: crate::runtime::AdminState) {
    assert!(m.set_state(id, state));
}

const DOWN_TAIL: &str = "0 sessions active, 0 requeued, 0 remaining in queue.";
const UP_TAIL: &str = "0 sessions requeued, 0 total in queue.";

/// Real HAProxy 2.6.12's datagrams for these commands on two servers
/// without checks (`log 127.0.0.1:15514 local2`, commands through the stats
/// socket), and its stderr: each as `[WARNING]` but the backend's last
/// server gone, `[ALERT]`.
#[tokio::test(start_paused = true)]
async fn runtime_lines_of_unchecked_servers_are_haproxys() {
    let (logs, _g) = Logs::capture_levels();
    let syslog = Syslog::new();
    let c = config(&format!(
        "backend be\n{} server s 127.0.0.1:1201\n server s2 127.0.0.1:1202\n",
        syslog.target()
    ));
    let (m, _rx) = Monitor::start_with(&c, Fakes::new().factory());
    let (s, s2) = (ServerId::new("be", "s"), ServerId::new("be", "s2"));
    use crate::runtime::AdminState::{Drain, Maint, Ready};

    cli_state(&m, &s, Maint);
    let maint = format!("Server be/s is going DOWN for maintenance. 1 active and 0 backup servers left. {DOWN_TAIL}");
    assert_eq!(syslog.take(), [format!("<145> {maint}")]);
    assert_eq!(logs.take(), [format!("WARN {maint}")]);
    cli_state(&m, &s, Ready);
    assert_eq!(
        syslog.take(),
        ["<149> Server be/s is UP/READY (leaving forced maintenance)."]
    );
    cli_state(&m, &s, Drain);
    assert_eq!(
        syslog.take(),
        [format!(
            "<149> Server be/s enters drain state. 1 active and 0 backup servers online. {UP_TAIL}"
        )]
    );
    assert!(m.set_weight(&s, 50));
    assert_eq!(syslog.take(), ["<149> Server be/s remains in forced drain mode."]);
    logs.take();
    assert!(m.force_health(&s2, ForcedHealth::Down));
    let down = format!("Server be/s2 is DOWN, changed from CLI. 0 active and 0 backup servers left. {DOWN_TAIL}");
    assert_eq!(
        syslog.take(),
        [
            format!("<145> {down}"),
            "<144> backend be has no server available!".into()
        ]
    );
    assert_eq!(
        logs.take(),
        [
            format!("WARN {down}"),
            "ERROR backend 'be' has no server available!".into()
        ]
    );
    cli_state(&m, &s2, Maint);
    assert_eq!(
        syslog.take(),
        ["<149> Server be/s2 was DOWN and now enters maintenance."]
    );
    cli_state(&m, &s2, Ready);
    assert_eq!(
        syslog.take(),
        ["<149> Server be/s2 is UP/READY (leaving forced maintenance)."]
    );
    assert_eq!(
        logs.take(),
        [
            "WARN Server be/s2 was DOWN and now enters maintenance.",
            "WARN Server be/s2 is UP/READY (leaving forced maintenance)."
        ]
    );
}

/// More of HAProxy 2.6.12's answers, captured the same way (servers s, s2
/// and the backup b, none checked).
#[tokio::test(start_paused = true)]
async fn runtime_lines_for_drain_weight_stopping_and_backups() {
    let syslog = Syslog::new();
    let c = config(&format!(
        "backend be\n{} server s 127.0.0.1:1211\n server s2 127.0.0.1:1212\n server b 127.0.0.1:1213 backup\n",
        syslog.target()
    ));
    let (m, _rx) = Monitor::start_with(&c, Fakes::new().factory());
    let (s, s2, b) = (
        ServerId::new("be", "s"),
        ServerId::new("be", "s2"),
        ServerId::new("be", "b"),
    );
    use crate::runtime::AdminState::{Drain, Maint, Ready};
    let expect = |what: &str, want: &[&str]| {
        let want: Vec<String> = want
            .iter()
            .map(|l| l.replace("{D}", DOWN_TAIL).replace("{U}", UP_TAIL))
            .collect();
        assert_eq!(syslog.take(), want, "{what}");
    };

    cli_state(&m, &s, Drain);
    expect(
        "drain",
        &["<149> Server be/s enters drain state. 1 active and 1 backup servers online. {U}"],
    );
    cli_state(&m, &s, Drain);
    expect("drain again", &[]);
    cli_state(&m, &s, Ready);
    expect("ready from drain", &["<149> Server be/s is UP (leaving forced drain)."]);
    // HAProxy's maint from drain (flag set, then drain cleared): one line,
    // and no alert.
    cli_state(&m, &s, Drain);
    syslog.take();
    cli_state(&m, &s, Maint);
    assert!(!st(&m, "s").drain);
    expect(
        "maint from drain",
        &["<149> Server be/s is going DOWN for maintenance. 1 active and 1 backup servers left. {D}"],
    );
    cli_state(&m, &s, Drain);
    expect(
        "drain from maint",
        &[
            "<149> Server be/s is UP/DRAIN (leaving forced maintenance).",
            "<149> Server be/s remains in forced drain mode.",
        ],
    );
    cli_state(&m, &s, Ready);
    expect("ready", &["<149> Server be/s is UP (leaving forced drain)."]);
    // Weight: nothing of itself, but the last usable server taken.
    assert!(m.set_weight(&s, 0));
    expect("weight 0", &[]);
    cli_state(&m, &s, Maint);
    cli_state(&m, &s, Ready);
    expect(
        "a weight of 0 is not drain",
        &[
            "<145> Server be/s is going DOWN for maintenance. 1 active and 1 backup servers left. {D}",
            "<149> Server be/s is UP/READY (leaving forced maintenance).",
        ],
    );
    assert!(m.set_weight(&s, 1));
    assert!(m.set_checks(&s, false) && m.set_checks(&s, true));
    expect("weight back, health checks off and on", &[]);
    // Forced health.
    assert!(m.force_health(&s, ForcedHealth::Stopping));
    expect(
        "stopping",
        &["<149> Server be/s is stopping, changed from CLI. 1 active and 1 backup servers online. {U}"],
    );
    assert!(m.force_health(&s, ForcedHealth::Up));
    assert!(m.force_health(&s, ForcedHealth::Up));
    expect(
        "up, then up again",
        &["<149> Server be/s is UP, changed from CLI. 2 active and 1 backup servers online. {U}"],
    );
    // Backups, and running on them.
    cli_state(&m, &s2, Maint);
    assert!(m.force_health(&s, ForcedHealth::Down));
    expect(
        "actives gone",
        &[
            "<145> Server be/s2 is going DOWN for maintenance. 1 active and 1 backup servers left. {D}",
            "<145> Server be/s is DOWN, changed from CLI. 0 active and 1 backup servers left. Running on backup. {D}",
        ],
    );
    assert!(m.force_health(&s, ForcedHealth::Down));
    cli_state(&m, &s, Drain);
    cli_state(&m, &s, Ready);
    expect(
        "drain of a DOWN server",
        &[
            "<149> Server be/s enters drain state. 0 active and 1 backup servers left. Running on backup. {D}",
            "<149> Server be/s is DOWN (leaving forced drain).",
        ],
    );
    cli_state(&m, &b, Drain);
    expect(
        "the last backup drained",
        &[
            "<149> Backup Server be/b enters drain state. 0 active and 0 backup servers online. {U}",
            "<144> backend be has no server available!",
        ],
    );
    assert!(m.force_health(&b, ForcedHealth::Down));
    expect(
        "a drained server forced DOWN: no alert",
        &[
            "<149> Backup Server be/b is DOWN, changed from CLI. 0 active and 0 backup servers left. {D}",
            "<149> Backup Server be/b remains in forced drain mode.",
        ],
    );
    // In maintenance (entered in HAProxy's order: the flag, then drain
    // ends), forced health and weights change nothing that logs.
    assert!(m.set_maint(&b, true));
    assert!(m.force_health(&b, ForcedHealth::Up));
    assert!(m.set_weight(&b, 5));
    cli_state(&m, &b, Maint);
    expect(
        "maintenance",
        &["<149> Backup Server be/b was DOWN and now enters maintenance."],
    );
}

/// A listen section is a "proxy" in HAProxy's line.
#[tokio::test(start_paused = true)]
async fn a_listen_section_is_a_proxy() {
    let syslog = Syslog::new();
    let c = config(&format!(
        "backend be\n server x 127.0.0.1:1222\nlisten l\n bind :81\n{} server s 127.0.0.1:1221\n",
        syslog.target()
    ));
    let (m, _rx) = Monitor::start_with(&c, Fakes::new().factory());
    assert!(m.set_maint(&ServerId::new("l", "s"), true));
    assert_eq!(
        syslog.take(),
        [
            format!("<145> Server l/s is going DOWN for maintenance. 0 active and 0 backup servers left. {DOWN_TAIL}"),
            "<144> proxy l has no server available!".into(),
        ]
    );
}

/// Checked servers, against HAProxy 2.6.12 with `check inter 500` on s
/// and the backup b (both passing), s2 unchecked.
#[tokio::test(start_paused = true)]
async fn runtime_lines_of_checked_servers_are_haproxys() {
    let syslog = Syslog::new();
    let fakes = Fakes::new();
    let c = config(&format!(
        "backend be\n{} server s 127.0.0.1:1231 check inter 500\n server s2 127.0.0.1:1232\n \
         server b 127.0.0.1:1233 backup check inter 500\n",
        syslog.target()
    ));
    fakes.get(1231).set(true);
    fakes.get(1233).set(true);
    let (mut m, _rx) = Monitor::start_with(&c, fakes.factory());
    sleep(Duration::from_secs(2)).await;
    let (s, s2) = (ServerId::new("be", "s"), ServerId::new("be", "s2"));
    use crate::runtime::AdminState::{Drain, Maint, Ready};
    let tick = || sleep(Duration::from_millis(1));
    let expect = |what: &str, want: &[&str]| {
        let want: Vec<String> = want
            .iter()
            .map(|l| l.replace("{D}", DOWN_TAIL).replace("{U}", UP_TAIL))
            .collect();
        assert_eq!(syslog.take(), want, "{what}");
    };
    expect("nothing at start", &[]);

    cli_state(&m, &s, Drain);
    tick().await;
    expect(
        "drain",
        &["<149> Server be/s enters drain state. 1 active and 1 backup servers online. {U}"],
    );
    assert!(m.force_health(&s, ForcedHealth::Down));
    tick().await;
    assert!(m.force_health(&s, ForcedHealth::Up));
    tick().await;
    assert!(m.force_health(&s, ForcedHealth::Stopping));
    tick().await;
    expect(
        "forced while drained",
        &[
            "<149> Server be/s is DOWN, changed from CLI. 1 active and 1 backup servers left. {D}",
            "<149> Server be/s remains in forced drain mode.",
            "<149> Server be/s is UP, changed from CLI. 1 active and 1 backup servers online. {U}",
            "<149> Server be/s remains in forced drain mode.",
            "<149> Server be/s is stopping, changed from CLI. 1 active and 1 backup servers online. {U}",
            "<149> Server be/s remains in forced drain mode.",
        ],
    );
    // The next passing check ends "stopping".
    sleep(Duration::from_millis(600)).await;
    expect(
        "a passing check",
        &[
            "<149> Server be/s is UP, reason: Layer4 check passed, check duration: 0ms. \
             1 active and 1 backup servers online. {U}",
            "<149> Server be/s remains in forced drain mode.",
        ],
    );
    cli_state(&m, &s, Ready);
    cli_state(&m, &s, Maint);
    tick().await;
    cli_state(&m, &s, Ready);
    tick().await;
    expect(
        "ready, maint, ready",
        &[
            "<149> Server be/s is UP (leaving forced drain).",
            "<145> Server be/s is going DOWN for maintenance. 1 active and 1 backup servers left. {D}",
            "<149> Server be/s is UP/READY (leaving forced maintenance).",
        ],
    );
    cli_state(&m, &s2, Maint);
    assert!(m.force_health(&s, ForcedHealth::Down));
    tick().await;
    assert!(m.force_health(&s, ForcedHealth::Stopping));
    tick().await;
    expect(
        "on backup",
        &[
            "<145> Server be/s2 is going DOWN for maintenance. 1 active and 1 backup servers left. {D}",
            "<145> Server be/s is DOWN, changed from CLI. 0 active and 1 backup servers left. Running on backup. {D}",
            "<149> Server be/s is stopping, changed from CLI. 0 active and 1 backup servers online. \
             Running on backup. {U}",
        ],
    );
    // A failing check leaves a stopping server stopping until its counter
    // is spent; then it is DOWN, with no alert.
    fakes.get(1231).set(false);
    sleep(Duration::from_millis(600)).await;
    assert_eq!(st(&m, "s").status, Status::Nolb);
    expect("still stopping", &[]);
    sleep(Duration::from_secs(2)).await;
    assert_eq!(st(&m, "s").status, Status::Down);
    expect(
        "down from stopping",
        &[
            "<149> Server be/s is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", \
             check duration: 0ms. 0 active and 1 backup servers left. Running on backup. {D}",
        ],
    );
    assert!(m.set_checks(&s, false));
    cli_state(&m, &s, Maint);
    tick().await;
    expect(
        "maint of a DOWN server",
        &["<149> Server be/s was DOWN and now enters maintenance."],
    );
    m.stop();
}

/// The checks' own lines reach the log targets too: state changes at
/// alert (DOWN) and notice (UP), `option log-health-checks` steps at notice.
#[tokio::test(start_paused = true)]
async fn check_lines_reach_the_log_targets() {
    let syslog = Syslog::new();
    let fakes = Fakes::new();
    let c = config(&format!(
        "backend be\n{} option log-health-checks\n server s 127.0.0.1:1241 check inter 1s rise 1 fall 1\n",
        syslog.target()
    ));
    let (_m, _rx) = Monitor::start_with(&c, fakes.factory());
    sleep(Duration::from_millis(100)).await;
    fakes.get(1241).set(true);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        syslog.take(),
        [
            "<149> Health check for server be/s failed, reason: Layer4 connection problem, info: \
             \"Connection refused\", check duration: 0ms, status: 0/1 DOWN."
                .to_string(),
            format!("<145> Server be/s is DOWN. 0 active and 0 backup servers left. {DOWN_TAIL}"),
            "<144> backend be has no server available!".into(),
            "<149> Health check for server be/s succeeded, reason: Layer4 check passed, check duration: 0ms, \
             status: 1/1 UP."
                .into(),
            format!("<149> Server be/s is UP. 1 active and 0 backup servers online. {UP_TAIL}"),
        ]
    );
}

/// A reload that changes only the log targets keeps the check task, which
/// logs to the new targets from then on.
#[tokio::test(start_paused = true)]
async fn a_kept_task_logs_to_the_reloaded_targets() {
    let (old, new) = (Syslog::new(), Syslog::new());
    let fakes = Fakes::new();
    let cfg = |log: &Syslog| {
        config(&format!(
            "backend be\n{} server s 127.0.0.1:1251 check inter 1s\n",
            log.target()
        ))
    };
    fakes.get(1251).set(true);
    let (mut m, _rx) = Monitor::start_with(&cfg(&old), fakes.factory());
    sleep(Duration::from_millis(100)).await;
    m.reload(&cfg(&new));
    let calls = fakes.get(1251).calls().len();
    assert!(m.set_maint(&ServerId::new("be", "s"), true));
    sleep(Duration::from_millis(1)).await;
    assert_eq!(fakes.get(1251).calls().len(), calls, "the same task, paused");
    assert!(old.take().is_empty());
    assert_eq!(
        new.take(),
        [
            format!("<145> Server be/s is going DOWN for maintenance. 0 active and 0 backup servers left. {DOWN_TAIL}"),
            "<144> backend be has no server available!".into()
        ]
    );
}

/// A checked server's task takes runtime orders in on its own time; once
/// `settle` returns they are done, without any sleep, so the runtime API's
/// next command sees them (`set server be/s health down; show stat`).
#[tokio::test]
async fn runtime_orders_are_done_once_settled() {
    let fakes = Fakes::new();
    let c = config("backend be\n server s 127.0.0.1:1301 check inter 10s\n");
    fakes.get(1301).set(true);
    let (m, _rx) = Monitor::start_with(&c, fakes.factory());
    let s = ServerId::new("be", "s");
    for (order, want) in [
        (Some(ForcedHealth::Stopping), Status::Nolb),
        (Some(ForcedHealth::Down), Status::Down),
        (Some(ForcedHealth::Up), Status::Up),
        (None, Status::Maint),
    ] {
        match order {
            Some(f) => assert!(m.force_health(&s, f)),
            None => assert!(m.set_maint(&s, true)),
        }
        m.settle().await;
        assert_eq!(st(&m, "s").status, want, "after {order:?}");
    }
    // Nothing pending: settling returns at once.
    tokio::time::timeout(Duration::from_millis(50), m.settle())
        .await
        .expect("settle with nothing pending");
}

use std::sync::Mutex;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::mpsc,
};

use super::*;
use crate::{
    config::{Bind, BindAddr, Origin},
    runtime::Request as LoopRequest,
};

const CFG: &str = "
frontend web
    mode http
    bind 127.0.0.1:18090
    default_backend be
backend be
    mode http
    server s1 127.0.0.1:18081 check
    server s2 127.0.0.1:18082
";

fn page() -> StatsPage {
    StatsPage {
        enabled: true,
        uri: "/st".into(),
        realm: "HAProxy Statistics".into(),
        auth: vec![("admin".into(), "pw".into())],
        admin: Some(AdminCond::Always),
        prometheus_path: Some("/metrics".into()),
        ..StatsPage::default()
    }
}

fn config(page: StatsPage) -> Config {
    let mut config = match crate::config::parse_str("t.cfg", CFG) {
        Ok((c, _)) => c,
        Err(d) => panic!("test config refused: {d:?}"),
    };
    config.frontends[0].id = 2;
    config.backends[0].id = 3;
    config.frontends[0].stats_page = Some(page);
    config.frontends[0].binds = vec![Bind {
        addr: BindAddr {
            ip: Some(IpAddr::from([127, 0, 0, 1])),
            ports: 0..=0,
        },
        interface: None,
        origin: Origin::new("t.cfg", 3),
    }];
    config
}

/// The agent loop's stand-in: records each command, answers with its Debug
/// form, and refuses server s2 as the loop would a missing one.
fn fake_loop() -> (command::Sender, Arc<Mutex<Vec<Command>>>) {
    let (tx, mut rx) = mpsc::channel::<LoopRequest>(16);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let answer = match &req.command {
                Command::SetState(id, _) | Command::SetHealth(id, _) if id.server == "s2" => "No such server.\n".into(),
                Command::SetState(..) | Command::SetHealth(..) | Command::SetChecks(..) => String::new(),
                Command::ShowStat(_) => "# pxname,svname\nbe,s1\n\n".into(),
                other => format!("{other:?}"),
            };
            if let Ok(mut log) = log.lock() {
                log.push(req.command);
            }
            let _ = req.reply.send(answer);
        }
    });
    (tx, seen)
}

struct Site {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Command>>>,
    _config: watch::Sender<Arc<Config>>,
    _task: JoinHandle<()>,
}

async fn serve(page: StatsPage) -> Site {
    let config = config(page);
    let listener = bind(&config.frontends[0])
        .await
        .unwrap_or_else(|e| panic!("bind: {e:#}"));
    let addr = listener.local_addrs()[0];
    let (keep, rx) = watch::channel(Arc::new(config));
    let (tx, seen) = fake_loop();
    Site {
        addr,
        seen,
        _config: keep,
        _task: listener.spawn(tx, rx),
    }
}

struct Answer {
    head: String,
    body: String,
}

impl Answer {
    fn status(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }
}

const AUTH: &str = "Authorization: Basic YWRtaW46cHc=\r\n"; // admin:pw

async fn send(addr: SocketAddr, method: &str, target: &str, headers: &str, body: &str) -> Answer {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Answer {
        head: head.to_string(),
        body: body.to_string(),
    }
}

#[tokio::test]
async fn the_page_needs_basic_auth() {
    let site = serve(page()).await;
    for headers in [
        "",
        "Authorization: Basic YWRtaW46YmFk\r\n",
        "Authorization: Basic !!!\r\n",
    ] {
        let a = send(site.addr, "GET", "/st", headers, "").await;
        assert_eq!(a.status(), "HTTP/1.1 401 Unauthorized");
        assert_eq!(a.header("www-authenticate"), Some("Basic realm=\"HAProxy Statistics\""));
        assert_eq!(a.body, BODY_401);
        assert_eq!(a.body.len(), 112);
    }
    let a = send(site.addr, "GET", "/st", AUTH, "").await;
    assert_eq!(a.status(), "HTTP/1.1 200 OK");
    assert_eq!(a.header("content-type"), Some("text/html"));
    assert_eq!(
        a.body, "StatsPage { section: \"web\", admin: true, notice: None }",
        "the page is the loop's"
    );
}

#[tokio::test]
async fn routes_csv_prometheus_and_the_rest() {
    let site = serve(page()).await;
    let a = send(site.addr, "GET", "/st;csv;norefresh", AUTH, "").await;
    assert_eq!(a.header("content-type"), Some("text/plain"));
    assert_eq!(a.body, "# pxname,svname\nbe,s1\n");
    // No auth for the exporter: HAProxy serves it before `stats auth` is read.
    let a = send(site.addr, "GET", "/metrics", "", "").await;
    assert_eq!(a.status(), "HTTP/1.1 200 OK");
    assert_eq!(a.header("content-type"), Some("text/plain; version=0.0.4"));
    assert_eq!(a.body, "Prometheus");
    for (method, target) in [("GET", "/other"), ("GET", "/"), ("PUT", "/st"), ("DELETE", "/st")] {
        let a = send(site.addr, method, target, AUTH, "").await;
        assert_eq!(a.status(), "HTTP/1.1 503 Service Unavailable", "{method} {target}");
        assert_eq!(a.body, BODY_503);
        assert_eq!(a.body.len(), 107);
    }
    // The URI is a prefix, query and all.
    let a = send(site.addr, "GET", "/stxyz?a=b", AUTH, "").await;
    assert_eq!(a.status(), "HTTP/1.1 200 OK");
    let a = send(site.addr, "GET", "/st;st=PART", AUTH, "").await;
    assert_eq!(
        a.body,
        "StatsPage { section: \"web\", admin: true, notice: Some(\"PART\") }"
    );
    let a = send(site.addr, "GET", "/st;st=WHAT", AUTH, "").await;
    assert_eq!(a.body, "StatsPage { section: \"web\", admin: true, notice: None }");
}

#[tokio::test]
async fn refresh_header_unless_norefresh() {
    let site = serve(StatsPage {
        refresh: Some(Duration::from_secs(5)),
        auth: vec![],
        ..page()
    })
    .await;
    assert_eq!(send(site.addr, "GET", "/st", "", "").await.header("refresh"), Some("5"));
    assert_eq!(
        send(site.addr, "GET", "/st;norefresh", "", "").await.header("refresh"),
        None
    );
}

async fn post(site: &Site, body: &str) -> Answer {
    let headers = format!("{AUTH}Content-Type: application/x-www-form-urlencoded\r\n");
    send(site.addr, "POST", "/st", &headers, body).await
}

fn taken(site: &Site) -> Vec<Command> {
    site.seen
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default()
}

#[tokio::test]
async fn admin_posts_become_commands_and_a_redirect() {
    let site = serve(page()).await;
    let id = |s: &str| ServerId::new("be", s);
    let a = post(&site, "s=s1&action=maint&b=%233").await;
    assert_eq!(a.status(), "HTTP/1.1 303 See Other");
    assert_eq!(a.header("location"), Some("/st;st=DONE"));
    assert_eq!(taken(&site), vec![Command::SetState(id("s1"), AdminState::Maint)]);

    let a = post(&site, "s=s1&s=zz&action=hnolb&b=be").await;
    assert_eq!(a.header("location"), Some("/st;st=PART"));
    assert_eq!(taken(&site), vec![Command::SetHealth(id("s1"), ForcedHealth::Stopping)]);

    // The loop refusing a server counts as it not being changed.
    let a = post(&site, "s=s2&action=drain&b=%233").await;
    assert_eq!(a.header("location"), Some("/st;st=ERRP"));
    assert_eq!(taken(&site), vec![Command::SetState(id("s2"), AdminState::Drain)]);

    // Checks switch only on servers that have checks.
    let a = post(&site, "s=s1&s=s2&action=dhlth&b=%233").await;
    assert_eq!(a.header("location"), Some("/st;st=DONE"));
    assert_eq!(taken(&site), vec![Command::SetChecks(id("s1"), false)]);
    let a = post(&site, "s=s2&action=ehlth&b=%233").await;
    assert_eq!(a.header("location"), Some("/st;st=NONE"));

    for (body, code) in [
        ("s=s1&action=foo&b=%233", "ERRP"),
        ("s=s1&action=ready&b=%2399", "ERRP"),
        ("s=zz&action=ready&b=%233", "ERRP"),
        ("s=s1&action=ready", "NONE"),
        ("action=ready&b=%233", "NONE"),
        ("s=s1&b=%233", "NONE"),
        ("", "NONE"),
        ("s=s1&action=dagent&b=%233", "NONE"),
    ] {
        let a = post(&site, body).await;
        assert_eq!(a.header("location"), Some(&*format!("/st;st={code}")), "{body}");
    }
    assert_eq!(taken(&site), vec![]);
}

#[tokio::test]
async fn posts_without_admin_rights_are_denied() {
    let site = serve(StatsPage {
        admin: Some(AdminCond::Not(Box::new(AdminCond::Localhost))),
        ..page()
    })
    .await;
    let a = post(&site, "s=s1&action=maint&b=%233").await;
    assert_eq!(a.header("location"), Some("/st;st=DENY"));
    assert_eq!(taken(&site), vec![]);
    let a = send(site.addr, "GET", "/st", AUTH, "").await;
    assert_eq!(a.body, "StatsPage { section: \"web\", admin: false, notice: None }");
    let site = serve(StatsPage { admin: None, ..page() }).await;
    let a = post(&site, "s=s1&action=maint&b=%233").await;
    assert_eq!(a.header("location"), Some("/st;st=DENY"));
}

#[tokio::test]
async fn a_form_too_big_is_refused() {
    let site = serve(page()).await;
    let big = format!("s={}&action=maint&b=%233", "x".repeat(MAX_REQUEST));
    let a = post(&site, &big).await;
    assert_eq!(a.header("location"), Some("/st;st=EXCD"));
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let site = serve(page()).await;
    let mut s = TcpStream::connect(site.addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let one = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(format!("{one}{one}").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while String::from_utf8_lossy(&got).matches("HTTP/1.1 200 OK").count() < 2 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert_eq!(String::from_utf8_lossy(&got).matches("HTTP/1.1 200 OK").count(), 2);
}

#[test]
fn admin_conditions() {
    let lo: IpAddr = "127.0.0.5".parse().unwrap_or_else(|e| panic!("{e}"));
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
    let v6lo: IpAddr = "::1".parse().unwrap_or_else(|e| panic!("{e}"));
    let far: IpAddr = "192.0.2.7".parse().unwrap_or_else(|e| panic!("{e}"));
    assert!(admits(&AdminCond::Localhost, lo));
    assert!(admits(&AdminCond::Localhost, mapped));
    assert!(admits(&AdminCond::Localhost, v6lo));
    assert!(!admits(&AdminCond::Localhost, far));
    let net = AdminCond::Src(vec![("192.0.2.0".parse().unwrap_or_else(|e| panic!("{e}")), 24)]);
    assert!(admits(&net, far));
    assert!(!admits(&net, lo));
    assert!(!admits(&AdminCond::Not(Box::new(net)), far));
    assert!(admits(&AdminCond::Src(vec![(IpAddr::from([0, 0, 0, 0]), 0)]), far));
    assert!(admits(&AdminCond::Always, far));
}

#[test]
fn notices_are_haproxys() {
    assert_eq!(
        status_notice("DONE"),
        Some(("active_up", "Action processed successfully."))
    );
    assert_eq!(status_notice("DENY"), Some(("active_down", "<b>Action denied.</b>")));
    assert_eq!(status_notice("FOO"), None);
}

use std::os::unix::fs::PermissionsExt as _;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UnixStream},
    sync::mpsc,
};

use super::*;
use crate::{config::Origin, runtime::Request};

fn config() -> Arc<Config> {
    match crate::config::parse_str(
        "t.cfg",
        "frontend fe\n    bind 127.0.0.1:18080\n    default_backend be\nbackend be\n    server s1 127.0.0.1:18081 weight 10\n    server s2 127.0.0.1:18082\n",
    ) {
        Ok((c, _)) => Arc::new(c),
        Err(d) => panic!("test config refused: {d:?}"),
    }
}

fn stats_socket(address: &str, level: CliLevel) -> StatsSocket {
    StatsSocket {
        level,
        ..StatsSocket::admin(address, Origin::new("t.cfg", 1))
    }
}

/// The agent loop's stand-in: answers each command with its Debug form.
fn fake_loop() -> command::Sender {
    let (tx, mut rx) = mpsc::channel::<Request>(16);
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let _ = req.reply.send(format!("{:?}\n", req.command));
        }
    });
    tx
}

struct Served {
    path: PathBuf,
    task: JoinHandle<()>,
    _config: watch::Sender<Arc<Config>>,
    _dir: tempfile::TempDir,
}

async fn serve_unix(level: CliLevel, edit: impl FnOnce(&mut StatsSocket, &mut Global)) -> Served {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("stats.sock");
    let mut sock = stats_socket(&path.to_string_lossy(), level);
    let mut global = Global::default();
    edit(&mut sock, &mut global);
    let listener = bind(&sock, &global, false)
        .await
        .unwrap_or_else(|e| panic!("bind: {e:#}"));
    let (keep, config) = watch::channel(config());
    let task = listener.spawn(fake_loop(), config);
    Served {
        path,
        task,
        _config: keep,
        _dir: dir,
    }
}

/// Sends `input` and EOF, as socat does, then reads until the server closes.
async fn exchange(path: &Path, input: &[u8]) -> String {
    let mut s = UnixStream::connect(path)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    s.write_all(input).await.unwrap_or_else(|e| panic!("write: {e}"));
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn one_line_of_chained_commands_then_close() {
    let s = serve_unix(CliLevel::Admin, |_, _| {}).await;
    let out = exchange(&s.path, b"show info; get weight be/s1;show cli level\nshow backend\n").await;
    let expected = "ShowInfo\n\nGetWeight(ServerId { backend: \"be\", server: \"s1\" })\n\nadmin\n\n";
    assert_eq!(out, expected);
    // CR LF ends a line too; a line without its newline is never answered.
    assert_eq!(exchange(&s.path, b"show cli level\r\n").await, "admin\n\n");
    assert_eq!(exchange(&s.path, b"show cli level").await, "");
    assert_eq!(
        exchange(&s.path, b"show cli level; quit; show info\n").await,
        "admin\n\n"
    );
}

#[tokio::test]
async fn prompt_mode_answers_each_command_then_prompts() {
    let s = serve_unix(CliLevel::Admin, |_, _| {}).await;
    let out = exchange(&s.path, b"prompt\nshow cli level;show info\n\nprompt\nshow info\n").await;
    assert!(
        out.starts_with("\n> admin\n\n> ShowInfo\n\n> Unknown command. Please enter"),
        "{out:?}"
    );
    // Leaving prompt mode answers, then closes as any non-interactive line does.
    assert!(
        out.ends_with("quit                                    : disconnect\n\n> \n"),
        "{out:?}"
    );
}

#[tokio::test]
async fn levels_are_the_sockets() {
    let s = serve_unix(CliLevel::User, |_, _| {}).await;
    assert_eq!(
        exchange(&s.path, b"disable server be/s1\n").await,
        "Permission denied\n\n"
    );
    assert_eq!(exchange(&s.path, b"show sess\n").await, "Permission denied\n\n");
    assert_eq!(exchange(&s.path, b"show cli level\n").await, "user\n\n");
    let s = serve_unix(CliLevel::Operator, |_, _| {}).await;
    assert_eq!(exchange(&s.path, b"show sess\n").await, "ShowSess\n\n");
    assert_eq!(
        exchange(&s.path, b"set weight be/s1 3\n").await,
        "Permission denied\n\n"
    );
}

#[tokio::test]
async fn a_line_too_long_closes_the_connection_unanswered() {
    let s = serve_unix(CliLevel::Admin, |_, _| {}).await;
    let mut line = b"get weight be/s1 ".to_vec();
    line.resize(cli::MAX_LINE - 1, b'x');
    line.push(b'\n');
    assert_eq!(exchange(&s.path, &line).await, "");
    // One byte shorter is read and answered.
    line.truncate(cli::MAX_LINE - 2);
    line.push(b'\n');
    assert!(exchange(&s.path, &line).await.starts_with("GetWeight"));
    // A megabyte: the server stops reading, closes, and keeps serving.
    let mut s1 = UnixStream::connect(&s.path)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let big = vec![b'x'; 1 << 20];
    let sent = timeout(Duration::from_secs(10), s1.write_all(&big)).await;
    assert!(!matches!(sent, Ok(Ok(()))) || s1.read(&mut [0u8; 16]).await.unwrap_or(0) == 0);
    assert_eq!(exchange(&s.path, b"show cli level\n").await, "admin\n\n");
}

#[tokio::test]
async fn idle_clients_are_closed_after_the_timeout() {
    let s = serve_unix(CliLevel::Admin, |_, g| {
        g.stats_timeout = Some(Duration::from_millis(300))
    })
    .await;
    let mut c = UnixStream::connect(&s.path)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let mut buf = Vec::new();
    let read = timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    // `set timeout cli` changes it for this client.
    let mut c = UnixStream::connect(&s.path)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    c.write_all(b"prompt\nset timeout cli 2\n")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.write_all(b"show cli level\n")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = vec![0u8; 64];
    let n = timeout(Duration::from_secs(5), async {
        let mut n = 0;
        while !got[..n].ends_with(b"admin\n\n> ") {
            n += c.read(&mut got[n..]).await.unwrap_or(0);
        }
        n
    })
    .await;
    assert!(n.is_ok(), "{:?}", String::from_utf8_lossy(&got));
}

#[tokio::test]
async fn a_hung_client_blocks_nobody_and_a_hundred_get_answers() {
    let s = serve_unix(CliLevel::Admin, |sock, _| sock.maxconn = Some(4)).await;
    // Connected, silent, never reading: it holds one slot of four.
    let _hung = UnixStream::connect(&s.path)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let mut half = UnixStream::connect(&s.path)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    half.write_all(b"show in")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let path = s.path.clone();
            tokio::spawn(async move { exchange(&path, format!("get weight be/s{}\n", 1 + i % 2).as_bytes()).await })
        })
        .collect();
    let all = timeout(Duration::from_secs(20), futures::future::join_all(clients)).await;
    let Ok(all) = all else {
        panic!("the clients weren't all answered in time")
    };
    for (i, out) in all.into_iter().enumerate() {
        let out = out.unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert!(
            out.starts_with("GetWeight(ServerId { backend: \"be\", server: \"s"),
            "client {i}: {out:?}"
        );
    }
}

#[tokio::test]
async fn the_socket_file_has_its_mode_and_goes_with_the_listener() {
    let s = serve_unix(CliLevel::Admin, |sock, _| sock.mode = Some(0o600)).await;
    let meta = std::fs::metadata(&s.path).unwrap_or_else(|e| panic!("stat: {e}"));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let s2 = serve_unix(CliLevel::Admin, |sock, _| sock.mode = Some(0o660)).await;
    let meta = std::fs::metadata(&s2.path).unwrap_or_else(|e| panic!("stat: {e}"));
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    s.task.abort();
    let _ = s.task.await;
    assert!(!s.path.exists());
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("stats.sock");
    let sock = stats_socket(&path.to_string_lossy(), CliLevel::Admin);
    // Stale: bound once, its listener gone, the file left behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind: {e}")));
    assert!(path.exists());
    let live = bind(&sock, &Global::default(), false)
        .await
        .unwrap_or_else(|e| panic!("stale: {e:#}"));
    let refused = bind(&sock, &Global::default(), false).await;
    assert!(refused.is_err_and(|e| format!("{e:#}").contains("in use")));
    // An agent taking over replaces it; the old one, stopping, leaves the
    // new one's file in place.
    let new = bind(&sock, &Global::default(), true)
        .await
        .unwrap_or_else(|e| panic!("takeover: {e:#}"));
    drop(live);
    assert!(path.exists(), "the old agent removed its successor's socket");
    drop(new);
    assert!(!path.exists());
    std::fs::write(&path, b"not a socket").unwrap_or_else(|e| panic!("write: {e}"));
    for takeover in [false, true] {
        let refused = bind(&sock, &Global::default(), takeover).await;
        assert!(refused.is_err_and(|e| format!("{e:#}").contains("not a socket")));
    }
}

#[tokio::test]
async fn tcp_sockets_serve_the_same() {
    let sock = stats_socket("ipv4@127.0.0.1:0", CliLevel::Admin);
    let listener = bind(&sock, &Global::default(), false)
        .await
        .unwrap_or_else(|e| panic!("bind: {e:#}"));
    let addr = listener.local_addr().unwrap_or_else(|| panic!("no address"));
    let (_keep, config) = watch::channel(config());
    let _task = listener.spawn(fake_loop(), config);
    let mut c = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    c.write_all(b"show stat\n")
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut out = String::new();
    let _ = timeout(Duration::from_secs(5), c.read_to_string(&mut out)).await;
    assert!(out.starts_with("ShowStat(StatFilter { iid: -1"), "{out:?}");
}

#[test]
fn addresses_parse_as_haproxy_writes_them() {
    let inet = |s: &str| match parse_address(s) {
        Ok(Address::Inet(a)) => a.to_string(),
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(inet("127.0.0.1:9999"), "127.0.0.1:9999");
    assert_eq!(inet("ipv4@127.0.0.1:9999"), "127.0.0.1:9999");
    assert_eq!(inet(":9999"), "0.0.0.0:9999");
    assert_eq!(inet("ipv6@:::9999"), "[::]:9999");
    assert_eq!(inet("ipv6@::1:9999"), "[::1]:9999");
    assert_eq!(inet("ipv6@[::1]:9999"), "[::1]:9999");
    assert_eq!(
        parse_address("/run/x.sock").ok(),
        Some(Address::Path("/run/x.sock".into()))
    );
    assert_eq!(
        parse_address("unix@/run/x.sock").ok(),
        Some(Address::Path("/run/x.sock".into()))
    );
    assert_eq!(parse_address("abns@x").ok(), Some(Address::Abstract("x".into())));
    assert!(parse_address("fd@3").is_err());
    assert!(parse_address("127.0.0.1").is_err());
    assert!(parse_address("127.0.0.1:http").is_err());
}

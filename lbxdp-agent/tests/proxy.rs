//! The userspace proxy, driven in-process on loopback: local backends on
//! ephemeral 127.0.0.1 ports, the proxy started from config text, clients.
//! No root, no namespaces. Tests that count the process's fds or lower its fd
//! limit run in a child process (this binary re-executed), so the other tests
//! running in parallel cannot disturb them.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use lbxdp_agent::{
    config::{self, Config},
    proxy::{self, Engine, Proxy, ProxyOptions, ServerAvailability, SharedAvailability},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpSocket, TcpStream, UdpSocket},
    task::JoinHandle,
};

const CHILD_ENV: &str = "LBXDP_PROXY_TEST_CHILD";

fn parse(text: &str) -> Config {
    let (mut cfg, _warnings) = match config::parse_str("test.cfg", text) {
        Ok(c) => c,
        Err(diags) => panic!("config does not parse: {diags:?}"),
    };
    // Every bind becomes port 0: the proxy picks free ports and tells us.
    for f in &mut cfg.frontends {
        for b in &mut f.binds {
            b.addr.ports = 0..=0;
        }
    }
    cfg
}

async fn start_with(text: &str, avail: Arc<dyn ServerAvailability>, engine: Engine) -> (Proxy, SocketAddr) {
    let cfg = parse(text);
    let opts = ProxyOptions {
        listeners_per_bind: 2,
        engine,
        ..ProxyOptions::from_config(&cfg)
    };
    let p = proxy::start_with(&cfg, avail, opts).await.expect("proxy starts");
    let addr = p.listen_addrs()[0].1;
    (p, addr)
}

async fn start(text: &str) -> (Proxy, SocketAddr) {
    let cfg = parse(text);
    start_with(text, SharedAvailability::from_config(&cfg), Engine::default()).await
}

/// A backend: every connection is handed to `f`.
async fn server<F, Fut>(f: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(f(s));
                }
                // EMFILE in the fd-exhaustion test: keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    (addr, h)
}

/// Says its name on a line, then echoes until EOF, then closes.
async fn named(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    server(move |mut s| async move {
        if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
            return;
        }
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

/// An address nothing listens on: connections are refused.
/// An address that refuses connections for as long as the returned socket
/// lives: its port is bound but never listened on, so no other test (nor a
/// later proxy of the same test) can take the port meanwhile, as it could
/// once a released port went back to the ephemeral pool.
fn dead_addr() -> (SocketAddr, TcpSocket) {
    let s = TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (s.local_addr().unwrap(), s)
}

async fn read_line(s: &mut TcpStream) -> String {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
        .await
        .expect("line in time")
        .expect("line read");
    line.trim_end().to_string()
}

/// Reads until EOF or error; Ok(bytes) on EOF, Err on reset. Bounded.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, std::io::Error> {
    let mut buf = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => panic!("connection not closed within {within:?}"),
    }
}

const DEFAULTS: &str = "
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
";

async fn wait_idle(p: &Proxy) {
    let t = Instant::now();
    while p.stats().actconn > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "sessions stay open: {:?}",
            p.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_by_weight_across_three_servers() {
    let (a, _ha) = named("a").await;
    let (b, _hb) = named("b").await;
    let (c, _hc) = named("c").await;
    let text = format!(
        "{DEFAULTS}
listen fe
    bind 127.0.0.1:1
    balance roundrobin
    server a {a} weight 1
    server b {b} weight 2
    server c {c} weight 3
"
    );
    let (p, addr) = start(&text).await;
    let mut n: HashMap<String, u32> = HashMap::new();
    for _ in 0..60 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        *n.entry(read_line(&mut s).await).or_default() += 1;
    }
    assert_eq!((n["a"], n["b"], n["c"]), (10, 20, 30), "{n:?}");
    let st = p.stats();
    assert_eq!(st.server("fe", "c").unwrap().stot, 30);
    wait_idle(&p).await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_weight_change_and_marked_down_shutdown_sessions() {
    let (a, _ha) = named("a").await;
    let (b, _hb) = named("b").await;
    let text = format!(
        "{DEFAULTS}
listen fe
    bind 127.0.0.1:1
    server a {a} weight 1 on-marked-down shutdown-sessions
    server b {b} weight 1
"
    );
    let cfg = parse(&text);
    let avail = SharedAvailability::from_config(&cfg);
    let (p, addr) = start_with(&text, avail.clone(), Engine::default()).await;
    // Weight change: a gets 3 of 4 from the next connection on.
    avail.set("fe", "a", true, 3);
    let mut n: HashMap<String, u32> = HashMap::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        *n.entry(read_line(&mut s).await).or_default() += 1;
    }
    assert!(n["a"] >= 29 && n["a"] <= 31, "{n:?}");
    // Those sessions may still be closing; only the one held below may be killed.
    wait_idle(&p).await;
    // A session on a; a goes down: the session is closed, new ones go to b.
    let mut held = None;
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if read_line(&mut s).await == "a" {
            held = Some(s);
            break;
        }
    }
    let mut held = held.expect("a session on a");
    avail.set("fe", "a", false, 3);
    read_to_close(&mut held, Duration::from_secs(3)).await.ok();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_line(&mut s).await, "b");
    }
    wait_idle(&p).await;
    assert_eq!(p.stats().server("fe", "a").unwrap().killed, 1);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_maxconn_queues_and_times_out() {
    let (a, _ha) = named("a").await;
    let text = format!(
        "{DEFAULTS}
    timeout queue 400ms
listen fe
    bind 127.0.0.1:1
    server a {a} maxconn 1
"
    );
    let (p, addr) = start(&text).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_line(&mut first).await, "a");
    // Second: queued behind the first, expires after `timeout queue`.
    let t = Instant::now();
    let mut second = TcpStream::connect(addr).await.unwrap();
    let got = read_to_close(&mut second, Duration::from_secs(3))
        .await
        .unwrap_or_default();
    assert!(got.is_empty());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    assert_eq!(p.stats().backends[0].queue_timeouts, 1);
    // Third: queued, served as soon as the first leaves.
    let mut third = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.stats().backends[0].qcur, 1);
    drop(first);
    assert_eq!(read_line(&mut third).await, "a");
    drop(third);
    wait_idle(&p).await;
    assert_eq!(p.stats().server("fe", "a").unwrap().smax, 1);
    p.shutdown().await;
}

/// The counts and timings here are HAProxy 2.6's own, measured with the same
/// config: with `option redispatch`, a non-hashing algorithm and two active
/// servers, a refused connect moves to the other server at once (`wredis`,
/// no retry, no pause); with a hashing one, only the last retry does;
/// without it, the session retries the same server after a turn-around
/// pause each time and gives up with one connection error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_redispatch_to_a_live_server() {
    let (dead, _dead_port) = dead_addr();
    let (live, _h) = named("live").await;
    let text = format!(
        "{DEFAULTS}
    timeout connect 200ms
listen fe
    bind 127.0.0.1:1
    balance first
    retries 2
    option redispatch
    server dead {dead}
    server live {live}
"
    );
    let (p, addr) = start(&text).await;
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_line(&mut s).await, "live");
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "no pause before a redispatch: {:?}",
        t.elapsed()
    );
    drop(s);
    wait_idle(&p).await;
    let st = p.stats();
    let d = st.server("fe", "dead").unwrap();
    assert_eq!((d.econ, d.wretr, d.wredis), (0, 0, 1), "{d:?}");
    assert_eq!(st.server("fe", "live").unwrap().stot, 1);
    p.shutdown().await;

    // A hashing algorithm keeps its server until the last retry (interval -1).
    let text_src = text.replace("balance first", "balance source");
    let (p, addr) = start(&text_src).await;
    let mut answered = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        answered.push((read_line(&mut s).await, t.elapsed()));
    }
    wait_idle(&p).await;
    let st = p.stats();
    let d = st.server("fe", "dead").unwrap();
    // The client's address hashes to one server: either dead, retried once
    // (one pause) then redispatched, or live at once.
    for (who, took) in &answered {
        assert_eq!(who, "live", "{answered:?}");
        if d.wredis > 0 {
            assert!(*took >= Duration::from_millis(180), "{answered:?}");
        }
    }
    assert!(
        (d.econ, d.wretr, d.wredis) == (0, 2, 2) || (d.econ, d.wretr, d.wredis) == (0, 0, 0),
        "{d:?}"
    );
    p.shutdown().await;

    // Without redispatch the client is closed once retries are spent, after
    // a turn-around pause before each retry.
    let text = text.replace("    option redispatch\n", "");
    let (p, addr) = start(&text).await;
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(
        read_to_close(&mut s, Duration::from_secs(3))
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert!(t.elapsed() >= Duration::from_millis(380), "{:?}", t.elapsed());
    wait_idle(&p).await;
    let d = p.stats().server("fe", "dead").unwrap().clone();
    assert_eq!((d.econ, d.wretr, d.wredis, d.stot), (1, 2, 0, 3), "{d:?}");
    p.shutdown().await;
}

/// The server answers only after the client's FIN: the reply must still
/// reach a client that has shut its write side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_keeps_the_other_direction() {
    let (srv, _h) = server(|mut s| async move {
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = s.write_all(format!("got {}", buf.len()).as_bytes()).await;
            let _ = s.shutdown().await;
        }
    })
    .await;
    for engine in [Engine::Buffered, Engine::Splice] {
        let text = format!("{DEFAULTS}\nlisten fe\n    bind 127.0.0.1:1\n    server s {srv}\n");
        let cfg = parse(&text);
        let (p, addr) = start_with(&text, SharedAvailability::from_config(&cfg), engine).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&vec![7u8; 300_000]).await.unwrap();
        c.shutdown().await.unwrap();
        let reply = read_to_close(&mut c, Duration::from_secs(5)).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&reply), "got 300000", "{engine:?}");
        wait_idle(&p).await;
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeouts_client_and_server_but_not_a_busy_download() {
    // A server that never answers; and one that streams for 1.2 s.
    let (hang, _h1) = server(|s| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    })
    .await;
    let (stream, _h2) = server(|mut s| async move {
        for _ in 0..12 {
            if s.write_all(b"tick").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = s.shutdown().await;
    })
    .await;
    let text = format!(
        "{DEFAULTS}
listen silent
    bind 127.0.0.1:1
    timeout client 300ms
    server h {hang}
listen slowsrv
    bind 127.0.0.1:1
    timeout server 300ms
    server h {hang}
listen download
    bind 127.0.0.1:1
    timeout client 300ms
    timeout server 300ms
    server s {stream}
"
    );
    let (p, _) = start(&text).await;
    let addr_of = |fe: &str| p.listen_addrs().into_iter().find(|(f, _)| f == fe).unwrap().1;
    // Client silent: closed by timeout client.
    let t = Instant::now();
    let mut c = TcpStream::connect(addr_of("silent")).await.unwrap();
    let _ = read_to_close(&mut c, Duration::from_secs(3)).await;
    assert!(t.elapsed() >= Duration::from_millis(280) && t.elapsed() < Duration::from_secs(2));
    // Server silent after a request: closed by timeout server.
    let t = Instant::now();
    let mut c = TcpStream::connect(addr_of("slowsrv")).await.unwrap();
    c.write_all(b"request").await.unwrap();
    let _ = read_to_close(&mut c, Duration::from_secs(3)).await;
    assert!(t.elapsed() >= Duration::from_millis(280) && t.elapsed() < Duration::from_secs(2));
    // A download the client never writes to: the client side is active
    // (it acknowledges data), so timeout client does not fire.
    let mut c = TcpStream::connect(addr_of("download")).await.unwrap();
    let got = read_to_close(&mut c, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 48);
    // Closing our side ends the session normally (kept open, timeout client
    // would close it, as HAProxy does after the server's FIN).
    drop(c);
    wait_idle(&p).await;
    let st = p.stats();
    assert_eq!(st.server("silent", "h").unwrap().cli_abrt, 1);
    assert_eq!(st.server("slowsrv", "h").unwrap().srv_abrt, 1);
    let d = st.server("download", "s").unwrap();
    assert_eq!((d.cli_abrt, d.srv_abrt, d.bout), (0, 0, 48));
    p.shutdown().await;
}

/// Position p of the test stream holds PATTERN[p % len]: a length that is
/// no power of two, so a lost, doubled or reordered chunk shows.
fn pattern() -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def0u64;
    (0..1_048_573)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Receives `total` bytes and checks them against the pattern with slice
/// comparisons (memcmp speed even in debug builds); replies "ok N" or "bad N".
async fn pattern_sink() -> (SocketAddr, JoinHandle<()>) {
    let pat = Arc::new(pattern());
    server(move |mut s| {
        let pat = pat.clone();
        async move {
            let mut buf = vec![0u8; 256 * 1024];
            let mut pos = 0u64;
            let mut good = true;
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut off = 0;
                while off < n {
                    let p = (pos % pat.len() as u64) as usize;
                    let take = (n - off).min(pat.len() - p);
                    good &= buf[off..off + take] == pat[p..p + take];
                    off += take;
                    pos += take as u64;
                }
            }
            let _ = s
                .write_all(format!("{} {pos}", if good { "ok" } else { "bad" }).as_bytes())
                .await;
            let _ = s.shutdown().await;
        }
    })
    .await
}

async fn send_pattern(addr: SocketAddr, total: u64) -> (String, Duration) {
    let pat = pattern();
    let t = Instant::now();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut sent = 0u64;
    while sent < total {
        let p = (sent % pat.len() as u64) as usize;
        let take = ((total - sent) as usize).min(pat.len() - p).min(256 * 1024);
        c.write_all(&pat[p..p + take]).await.unwrap();
        sent += take as u64;
    }
    c.shutdown().await.unwrap();
    let reply = read_to_close(&mut c, Duration::from_secs(60)).await.unwrap();
    (String::from_utf8_lossy(&reply).into_owned(), t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gigabyte_byte_exact() {
    const GB: u64 = 1 << 30;
    let (sink, _h) = pattern_sink().await;
    let text = format!("{DEFAULTS}\nlisten fe\n    bind 127.0.0.1:1\n    server s {sink}\n");
    let (p, addr) = start(&text).await;
    let (reply, took) = send_pattern(addr, GB).await;
    assert_eq!(reply, format!("ok {GB}"));
    assert!(took < Duration::from_secs(30), "{took:?}");
    eprintln!(
        "1 GiB through the proxy ({:?}): {:?}, {:.0} MB/s",
        Engine::default(),
        took,
        GB as f64 / took.as_secs_f64() / 1e6
    );
    wait_idle(&p).await;
    assert_eq!(p.stats().server("fe", "s").unwrap().bin, GB);
    p.shutdown().await;
    // The other engine, a quarter of the size.
    let other = if Engine::default() == Engine::Splice {
        Engine::Buffered
    } else {
        Engine::Splice
    };
    let cfg = parse(&text);
    let (p, addr) = start_with(&text, SharedAvailability::from_config(&cfg), other).await;
    let (reply, _) = send_pattern(addr, GB / 4).await;
    assert_eq!(reply, format!("ok {}", GB / 4), "{other:?}");
    p.shutdown().await;
}

/// Not run by default: `cargo test --release --test proxy -- --ignored engines --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn engines_throughput() {
    const SIZE: u64 = 4 << 30;
    let (sink, _h) = pattern_sink().await;
    let text = format!("{DEFAULTS}\nlisten fe\n    bind 127.0.0.1:1\n    server s {sink}\n");
    for round in 0..2 {
        for engine in [Engine::Buffered, Engine::Splice] {
            let cfg = parse(&text);
            let (p, addr) = start_with(&text, SharedAvailability::from_config(&cfg), engine).await;
            let (reply, took) = send_pattern(addr, SIZE).await;
            assert!(reply.starts_with("ok"));
            eprintln!(
                "round {round} {engine:?}: {:.0} MB/s",
                SIZE as f64 / took.as_secs_f64() / 1e6
            );
            p.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections() {
    let (echo, _h) = named("e").await;
    let text = format!("{DEFAULTS}\nlisten fe\n    bind 127.0.0.1:1\n    server e {echo}\n");
    let (p, addr) = start(&text).await;
    // Two rendezvous: all connected; then, once the proxy holds all 1000
    // sessions at once, all talk.
    let connected = Arc::new(tokio::sync::Barrier::new(1001));
    let go = Arc::new(tokio::sync::Barrier::new(1001));
    let clients: Vec<JoinHandle<bool>> = (0..1000)
        .map(|i| {
            let (connected, go) = (connected.clone(), go.clone());
            tokio::spawn(async move {
                let c = TcpStream::connect(addr).await;
                connected.wait().await;
                go.wait().await;
                let Ok(mut c) = c else {
                    return false;
                };
                let msg = format!("client {i}\n");
                if c.write_all(msg.as_bytes()).await.is_err() {
                    return false;
                }
                let mut r = BufReader::new(c);
                let mut l1 = String::new();
                let mut l2 = String::new();
                let ok = r.read_line(&mut l1).await.is_ok() && r.read_line(&mut l2).await.is_ok();
                ok && l1 == "e\n" && l2 == msg
            })
        })
        .collect();
    let t = Instant::now();
    connected.wait().await;
    while p.stats().frontend("fe").unwrap().scur < 1000 {
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", p.stats().frontend("fe"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.stats().server("fe", "e").unwrap().scur, 1000);
    go.wait().await;
    let mut ok = 0;
    for c in clients {
        ok += usize::from(tokio::time::timeout(Duration::from_secs(20), c).await.unwrap().unwrap());
    }
    assert_eq!(ok, 1000);
    eprintln!("1000 concurrent sessions in {:?}", t.elapsed());
    wait_idle(&p).await;
    let st = p.stats();
    assert_eq!(st.cum_conns, 1000);
    assert_eq!(st.frontend("fe").unwrap().smax, 1000);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_proxy_v1_and_v2_reach_the_server() {
    // Replies with the first bytes it got: the header.
    let (srv, _h) = server(|mut s| async move {
        let mut buf = vec![0u8; 256];
        let mut got = Vec::new();
        // v1 ends with CRLF; v2 is 16 + 12 bytes for IPv4.
        while !(got.ends_with(b"\r\n") || got.len() >= 28) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(&got).await;
        let _ = s.shutdown().await;
    })
    .await;
    let text = format!(
        "{DEFAULTS}
listen v1
    bind 127.0.0.1:1
    server s {srv} send-proxy
listen v2
    bind 127.0.0.1:1
    server s {srv} send-proxy-v2
"
    );
    let (p, _) = start(&text).await;
    let addr_of = |fe: &str| p.listen_addrs().into_iter().find(|(f, _)| f == fe).unwrap().1;
    let front = addr_of("v1");
    let mut c = TcpStream::connect(front).await.unwrap();
    let me = c.local_addr().unwrap();
    let got = read_to_close(&mut c, Duration::from_secs(3)).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n", me.port(), front.port())
    );
    let front = addr_of("v2");
    let mut c = TcpStream::connect(front).await.unwrap();
    let me = c.local_addr().unwrap();
    let got = read_to_close(&mut c, Duration::from_secs(3)).await.unwrap();
    assert_eq!(got.len(), 28);
    assert_eq!(&got[..12], &proxy::V2_SIGNATURE);
    assert_eq!(&got[12..16], &[0x21, 0x11, 0, 12]);
    assert_eq!(&got[16..24], &[127, 0, 0, 1, 127, 0, 0, 1]);
    assert_eq!(&got[24..26], &me.port().to_be_bytes());
    assert_eq!(&got[26..28], &front.port().to_be_bytes());
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcplog_line_over_syslog_udp() {
    let syslog = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let log_addr = syslog.local_addr().unwrap();
    let (echo, _h) = named("s1").await;
    let text = format!(
        "global
    log {log_addr} local3
{DEFAULTS}
    log global
    option tcplog
    option dontlognull
frontend fe
    bind 127.0.0.1:1
    default_backend be
backend be
    server s1 {echo}
"
    );
    let (p, addr) = start(&text).await;
    // A null connection first: connects, sends nothing. Not logged.
    let mut null = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_line(&mut null).await, "s1");
    drop(null);
    wait_idle(&p).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    assert_eq!(read_line(&mut c).await, "s1");
    c.write_all(b"hello").await.unwrap();
    let mut five = [0u8; 5];
    c.read_exact(&mut five).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.shutdown().await.unwrap();
    let _ = read_to_close(&mut c, Duration::from_secs(3)).await;
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(3), syslog.recv(&mut buf))
        .await
        .expect("a log line")
        .unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    // HAProxy ends each datagram with an LF.
    let line = line
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no LF at the end: {line:?}"));
    // <PRI>: local3 (19) * 8 + info (6).
    assert!(line.starts_with("<158>"), "{line}");
    let (header, msg) = line.split_once(": ").unwrap();
    assert!(header.ends_with(&format!("lbxdp[{}]", std::process::id())), "{header}");
    let f: Vec<&str> = msg.split(' ').collect();
    assert_eq!(f.len(), 9, "{msg}");
    assert_eq!(f[0], format!("127.0.0.1:{}", me.port()));
    assert!(
        f[1].starts_with('[') && f[1].ends_with(']') && f[1].len() == 26,
        "{}",
        f[1]
    );
    assert_eq!(f[2], "fe");
    assert_eq!(f[3], "be/s1");
    let timers: Vec<i64> = f[4].split('/').map(|t| t.parse().unwrap()).collect();
    assert_eq!(timers.len(), 3);
    assert!(timers[0] >= 0 && timers[1] >= 0 && timers[2] >= 50, "{timers:?}");
    // bytes_read: server to client, the name line and the echo.
    assert_eq!(f[5], "8");
    assert_eq!(f[6], "--");
    // actconn/feconn/beconn/srv_conn/retries, this session included.
    assert_eq!(f[7], "1/1/1/1/0", "{msg}");
    assert_eq!(f[8], "0/0", "{msg}");
    // Nothing else was logged (the null connection was not).
    assert!(
        tokio::time::timeout(Duration::from_millis(200), syslog.recv(&mut buf))
            .await
            .is_err()
    );
    p.shutdown().await;
}

/// Runs one `#[ignore]`d child test of this binary in a fresh process.
fn run_child(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child {name} failed:\n{text}"
    );
    eprintln!("{text}");
}

#[test]
fn fault_storm_leaks_nothing() {
    run_child("child_fault_storm");
}

#[test]
fn fd_exhaustion_backs_off() {
    run_child("child_fd_exhaustion");
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn child_fault_storm() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let (echo, _h1) = named("e").await;
    // Never answers, but notices when the proxy closes (its fd must go too).
    let (hang, _h2) = server(|mut s| async move {
        let mut b = Vec::new();
        let _ = s.read_to_end(&mut b).await;
    })
    .await;
    let (reset, _h3) = server(|s| async move {
        let _ = s.set_zero_linger();
        drop(s);
    })
    .await;
    let (dead, _dead_port) = dead_addr();
    let text = format!(
        "{DEFAULTS}
    timeout client 400ms
    timeout server 400ms
    timeout connect 300ms
    retries 1
listen echo
    bind 127.0.0.1:1
    server e {echo}
listen hang
    bind 127.0.0.1:1
    timeout client 2s
    server h {hang}
listen reset
    bind 127.0.0.1:1
    server r {reset}
listen dead
    bind 127.0.0.1:1
    server d {}
",
        dead
    );
    let (p, _) = start(&text).await;
    let addr_of = |fe: &str| p.listen_addrs().into_iter().find(|(f, _)| f == fe).unwrap().1;
    let (echo_fe, hang_fe, reset_fe, dead_fe) = (addr_of("echo"), addr_of("hang"), addr_of("reset"), addr_of("dead"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let baseline = open_fds();
    let mut tasks = Vec::new();
    for i in 0..200 {
        tasks.push(tokio::spawn(async move {
            match i % 5 {
                // Silent client.
                0 => {
                    if let Ok(mut c) = TcpStream::connect(echo_fe).await {
                        let mut b = Vec::new();
                        let _ = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut b)).await;
                    }
                }
                // Client resets mid-stream.
                1 => {
                    if let Ok(mut c) = TcpStream::connect(echo_fe).await {
                        let _ = c.write_all(&[1u8; 100_000]).await;
                        let _ = c.set_zero_linger();
                        drop(c);
                    }
                }
                // Hanging server.
                2 => {
                    if let Ok(mut c) = TcpStream::connect(hang_fe).await {
                        let _ = c.write_all(b"anyone?").await;
                        let mut b = Vec::new();
                        let _ = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut b)).await;
                    }
                }
                // Resetting server.
                3 => {
                    if let Ok(mut c) = TcpStream::connect(reset_fe).await {
                        let _ = c.write_all(b"hello").await;
                        let mut b = Vec::new();
                        let _ = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut b)).await;
                    }
                }
                // Refused server.
                _ => {
                    if let Ok(mut c) = TcpStream::connect(dead_fe).await {
                        let mut b = Vec::new();
                        let _ = tokio::time::timeout(Duration::from_secs(3), c.read_to_end(&mut b)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    wait_idle(&p).await;
    let t = Instant::now();
    while open_fds() > baseline {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "fds: {} > baseline {baseline}",
            open_fds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = p.stats();
    let e = st.server("echo", "e").unwrap();
    assert!(e.cli_abrt >= 40, "{e:?}");
    assert!(st.server("hang", "h").unwrap().srv_abrt >= 40);
    // One connection error per refused session, after its one retry.
    let d = st.server("dead", "d").unwrap();
    assert!(d.econ >= 40 && d.wretr >= 40, "{d:?}");
    // Still serving.
    let mut c = TcpStream::connect(echo_fe).await.unwrap();
    assert_eq!(read_line(&mut c).await, "e");
    drop(c);
    wait_idle(&p).await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn child_fd_exhaustion() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let (echo, _h) = named("e").await;
    let text =
        format!("global\n    maxconn 100000\n{DEFAULTS}\nlisten fe\n    bind 127.0.0.1:1\n    server e {echo}\n");
    let (p, addr) = start(&text).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // The clients' sockets exist before the limit drops, so that the proxy,
    // not the client side of this same process, is the one that runs out.
    let sockets: Vec<TcpSocket> = (0..40).map(|_| TcpSocket::new_v4().unwrap()).collect();
    // Room for a handful of sessions (3 fds each: accepted, to the server, the server's).
    setrlimit(Resource::RLIMIT_NOFILE, open_fds() as u64 + 30, hard).unwrap();
    let mut clients = Vec::new();
    for s in sockets {
        match s.connect(addr).await {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let st = p.stats();
    let errors = st.frontend("fe").unwrap().accept_errors + st.server("fe", "e").unwrap().econ;
    assert!(errors > 0, "no fd exhaustion reached: {st:?}");
    // Backing off, not spinning: a few tries per second per listener.
    assert!(st.frontend("fe").unwrap().accept_errors < 100, "{st:?}");
    drop(clients);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    wait_idle(&p).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_line(&mut c).await, "e");
    drop(c);
    wait_idle(&p).await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_sessions_and_listeners() {
    let (a, _ha) = named("a").await;
    let (b, _hb) = named("b").await;
    let text = format!("{DEFAULTS}\nlisten fe\n    bind 127.0.0.1:1\n    server a {a}\n");
    let (mut p, addr) = start(&text).await;
    let mut held = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_line(&mut held).await, "a");
    // Same address, new server list.
    let mut cfg = parse(&format!(
        "{DEFAULTS}\nlisten fe\n    bind 127.0.0.1:1\n    server b {b}\n"
    ));
    cfg.frontends[0].binds[0].addr.ports = addr.port()..=addr.port();
    p.reload(&cfg).await.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_line(&mut c).await, "b");
    drop(c);
    // The old session still works.
    held.write_all(b"still\n").await.unwrap();
    assert_eq!(read_line(&mut held).await, "still");
    drop(held);
    wait_idle(&p).await;
    p.shutdown().await;
}

//! `tcp-request connection` and `use_backend ... if` rules in the userspace
//! proxy, in-process on loopback (127.0.0.0/8 gives the clients distinct
//! source addresses): a blocklist read with `-f`, `use_backend` by source and
//! by destination port, and failover by `nbsrv(main) lt 1`.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use lbxdp_agent::{
    config::{self, Config, Source},
    proxy::{self, ServerAvailability, SharedAvailability},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpSocket},
    task::JoinHandle,
};

/// A backend that says its name on a line, then closes.
async fn named(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind a backend");
    let addr = l.local_addr().expect("backend address");
    let h = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, h)
}

/// A port free now on 127.0.0.1, for a bind the rules name.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

fn parse(text: &str, files: &[(&str, &str)]) -> Config {
    let read = |p: &str| files.iter().find(|(n, _)| *n == p).map(|(_, d)| d.as_bytes().to_vec());
    match config::parse_sources_reading(
        &[Source {
            name: "acl.cfg",
            data: text.as_bytes(),
        }],
        &|_| None,
        &read,
    ) {
        Ok((c, _)) => {
            assert!(c.refused.is_empty(), "{:?}", c.refused);
            c
        }
        Err(d) => panic!("config does not parse: {d:?}"),
    }
}

/// What a client from `src` gets at `dst`: the backend's name, or how the
/// connection ended without one.
async fn ask(src: &str, dst: SocketAddr) -> Result<String, std::io::ErrorKind> {
    let s = TcpSocket::new_v4().map_err(|e| e.kind())?;
    s.bind(SocketAddr::new(src.parse().expect("source address"), 0))
        .map_err(|e| e.kind())?;
    let mut c = s.connect(dst).await.map_err(|e| e.kind())?;
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), BufReader::new(&mut c).read_line(&mut line)).await;
    match read {
        Err(_) => Err(std::io::ErrorKind::TimedOut),
        Ok(Err(e)) => Err(e.kind()),
        Ok(Ok(0)) => Err(std::io::ErrorKind::UnexpectedEof),
        Ok(Ok(_)) => Ok(line.trim_end().to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reject_drop_and_switch() {
    let (main, _m) = named("main").await;
    let (spare, _s) = named("spare").await;
    let (alt, _a) = named("alt").await;
    let (p1, p2) = (free_port(), free_port());
    let text = format!(
        "defaults\n timeout client 5s\n timeout connect 2s\n timeout server 5s\n\
         frontend fe\n bind 127.0.0.1:{p1}\n bind 127.0.0.1:{p2}\n\
         \x20acl blocked src -f block.lst\n\
         \x20acl main_down nbsrv(main) lt 1\n\
         \x20tcp-request connection reject if blocked\n\
         \x20tcp-request connection silent-drop if {{ src 127.0.0.9 }}\n\
         \x20use_backend spare if main_down\n\
         \x20use_backend alt if {{ dst_port {p2} }} || {{ src 127.0.0.5 }}\n\
         \x20default_backend main\n\
         backend main\n server m {main}\n\
         backend spare\n server s {spare}\n\
         backend alt\n server a {alt}\n"
    );
    let cfg = parse(&text, &[("block.lst", "# blocked\n127.0.0.2\n127.0.0.3/32\n")]);
    let avail = SharedAvailability::from_config(&cfg);
    let p = proxy::start(&cfg, avail.clone() as Arc<dyn ServerAvailability>)
        .await
        .expect("proxy starts");
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));

    assert_eq!(ask("127.0.0.1", at(p1)).await, Ok("main".into()));
    // Blocked sources: closed before any server is connected to.
    assert!(ask("127.0.0.2", at(p1)).await.is_err());
    assert!(ask("127.0.0.3", at(p1)).await.is_err());
    // silent-drop: a reset, no FIN (on a loaded machine the reset can beat
    // connect()'s own check of the socket, which then reports it).
    let s = TcpSocket::new_v4().expect("socket");
    s.bind("127.0.0.9:0".parse().expect("addr")).expect("bind");
    let reset = match s.connect(at(p1)).await {
        Err(e) => e.kind(),
        Ok(mut c) => {
            let mut buf = Vec::new();
            match tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await {
                Ok(Err(e)) => e.kind(),
                other => panic!("silent-drop closed without a reset: {other:?}"),
            }
        }
    };
    assert_eq!(reset, std::io::ErrorKind::ConnectionReset);
    // use_backend by destination port and by source.
    assert_eq!(ask("127.0.0.1", at(p2)).await, Ok("alt".into()));
    assert_eq!(ask("127.0.0.5", at(p1)).await, Ok("alt".into()));
    // Failover: with main's server down, nbsrv(main) is 0.
    avail.set("main", "m", false, 1);
    let mut moved = false;
    for _ in 0..50 {
        if ask("127.0.0.1", at(p1)).await == Ok("spare".into()) {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "nbsrv(main) lt 1 never sent clients to spare");
    avail.set("main", "m", true, 1);
    let stats = p.stats();
    let fe = stats.frontend("fe").expect("fe's counters");
    // As HAProxy counts them: the two rejects in dcon, the silent drop in dreq.
    assert_eq!((fe.denied_conn, fe.denied), (2, 1), "{fe:?}");
    p.shutdown().await;
}

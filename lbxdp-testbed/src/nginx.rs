//! Debian's nginx as a backend: one per namespace, answering with a fixed body
//! (its host's name; `/ip` answers with the client address it saw), configured in the testbed's temp dir.
use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub fn config(dir: &Path, tag: &str, body: &str, port: u16) -> String {
    let d = dir.display();
    // Everything nginx writes goes to the temp dir. The workers stay root so
    // they can use it; these namespaces are throwaway and root-only anyway.
    format!(
        "daemon off;\nmaster_process on;\nuser root;\nworker_processes 1;\npid {d}/nginx-{tag}.pid;\n\
         error_log {d}/nginx-{tag}.err warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000;\n\
         \x20 client_body_temp_path {d}/nginx-{tag}-body;\n  proxy_temp_path {d}/nginx-{tag}-proxy;\n\
         \x20 fastcgi_temp_path {d}/nginx-{tag}-fastcgi;\n  uwsgi_temp_path {d}/nginx-{tag}-uwsgi;\n\
         \x20 scgi_temp_path {d}/nginx-{tag}-scgi;\n\
         \x20 server {{\n    listen {port} reuseport;\n    listen [::]:{port} reuseport;\n\
         \x20   default_type text/plain;\n    location / {{ return 200 \"{body}\\n\"; }}\n\
         \x20   location /ip {{ return 200 \"$remote_addr\\n\"; }}\n  }}\n}}\n"
    )
}

/// Waits (bounded) until something accepts TCP on `addr`; run inside the namespace.
pub fn wait_listening(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("nothing listening on {addr} after {within:?}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

pub fn check_body(body: &str) -> anyhow::Result<()> {
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
        bail!("nginx body {body:?}: use a short name ([A-Za-z0-9-_.:])");
    }
    Ok(())
}

//! One health check, run once: a TCP connect, an `option tcp-check` script
//! or an `option httpchk` request. Results carry HAProxy 2.6's status, code
//! and info texts (src/check.c `check_statuses[]`, src/tcpcheck.c), so the
//! log lines read like HAProxy's.
//!
//! Time limits follow HAProxy's `timeout check` documentation: with
//! `timeout check` set, the connect is bounded by min(`timeout connect`,
//! `inter`) and what follows the connect by `timeout check`; without it the
//! whole check (connect and read) is bounded by `inter`.
use std::{
    fmt::Write as _,
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use regex_automata::meta::Regex;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout_at},
};

use crate::config::{Backend, ExpectKind, HealthCheck, PortSpec, Server, StatusExpect, TcpCheckStep};

/// HAProxy's `tune.bufsize`: a response this long is all an expect gets.
const BUF_MAX: usize = 16384;

/// HAProxy's check statuses that lbxdp produces (`HCHK_STATUS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    L4Ok,
    L4Tout,
    L4Con,
    L7Ok,
    L7Tout,
    L7Rsp,
    L7Sts,
    SockErr,
}

impl CheckStatus {
    pub fn passed(self) -> bool {
        matches!(self, Self::L4Ok | Self::L7Ok)
    }

    /// HAProxy's description, the log's "reason".
    pub fn reason(self) -> &'static str {
        match self {
            Self::L4Ok => "Layer4 check passed",
            Self::L4Tout => "Layer4 timeout",
            Self::L4Con => "Layer4 connection problem",
            Self::L7Ok => "Layer7 check passed",
            Self::L7Tout => "Layer7 timeout",
            Self::L7Rsp => "Layer7 invalid response",
            Self::L7Sts => "Layer7 wrong status",
            Self::SockErr => "Socket error",
        }
    }

    /// The short name the stats page shows (L4OK, L7STS, ...).
    pub fn short(self) -> &'static str {
        match self {
            Self::L4Ok => "L4OK",
            Self::L4Tout => "L4TOUT",
            Self::L4Con => "L4CON",
            Self::L7Ok => "L7OK",
            Self::L7Tout => "L7TOUT",
            Self::L7Rsp => "L7RSP",
            Self::L7Sts => "L7STS",
            Self::SockErr => "SOCKERR",
        }
    }

    /// HAProxy prints ", code: N" for statuses past HCHK_STATUS_L57DATA.
    fn shows_code(self) -> bool {
        matches!(self, Self::L7Ok | Self::L7Sts)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub status: CheckStatus,
    /// The HTTP status (0 for tcp-check), shown only where HAProxy shows it.
    pub code: u16,
    /// HAProxy's "info": the OS error, the HTTP reason phrase, the tcp-check step.
    pub info: Option<String>,
    pub duration: Duration,
}

impl CheckResult {
    pub fn ok(&self) -> bool {
        self.status.passed()
    }

    pub fn reason(&self) -> &'static str {
        self.status.reason()
    }

    /// `Layer7 wrong status, code: 500, info: "Internal Server Error"`: the
    /// reason, code and info HAProxy's `check_append_info()` writes.
    pub fn summary(&self) -> String {
        let mut s = self.reason().to_string();
        if self.status.shows_code() {
            let _ = write!(s, ", code: {}", self.code);
        }
        if let Some(info) = self.info.as_deref().filter(|i| !i.is_empty()) {
            let _ = write!(s, ", info: \"{}\"", ascii_encode(info));
        }
        s
    }

    /// `, reason: <summary>, check duration: Nms`, as it follows "Server
    /// be/s is DOWN" in HAProxy's log.
    pub fn details(&self) -> String {
        format!(
            ", reason: {}, check duration: {}ms",
            self.summary(),
            self.duration.as_millis()
        )
    }
}

/// HAProxy's `chunk_asciiencode(.., '"')`: quotes and non-printables as \xHH.
fn ascii_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b'"' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02x}");
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Everything one server's check needs, resolved from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: HealthCheck,
    /// `addr` if given, else the server's address.
    pub addr: IpAddr,
    /// `port` if given, else `addr`'s port, else the server's fixed port; None when the server
    /// maps the client's port and has no check port (HAProxy refuses that).
    pub port: Option<u16>,
    pub inter: Duration,
    pub timeout_connect: Option<Duration>,
    pub timeout_check: Option<Duration>,
}

impl CheckSpec {
    /// None for a server without `check`.
    pub fn for_server(backend: &Backend, server: &Server) -> Option<Self> {
        let c = server.check.as_ref()?;
        let fixed = match server.port {
            PortSpec::Fixed(p) if p != 0 => Some(p),
            _ => None,
        };
        Some(Self {
            kind: backend.health_check.clone(),
            addr: c.addr.unwrap_or(server.addr),
            port: c.port.or(c.addr_port).or(fixed),
            inter: c.inter,
            timeout_connect: backend.timeouts.connect.filter(|d| !d.is_zero()),
            timeout_check: backend.timeouts.check.filter(|d| !d.is_zero()),
        })
    }

    fn connect_deadline(&self, start: Instant) -> Instant {
        match self.timeout_check {
            Some(_) => Instant::now() + self.timeout_connect.map_or(self.inter, |c| c.min(self.inter)),
            None => start + self.inter,
        }
    }

    fn io_deadline(&self, start: Instant, connected: Instant) -> Instant {
        match self.timeout_check {
            Some(t) => connected + t,
            None => start + self.inter,
        }
    }
}

/// Runs the check once.
pub async fn run(spec: &CheckSpec) -> CheckResult {
    let start = Instant::now();
    let v = match &spec.kind {
        HealthCheck::Connect => plain_connect(spec, start).await,
        HealthCheck::TcpCheck(steps) => tcp_check(spec, steps, start).await,
        HealthCheck::Http {
            method,
            uri,
            version,
            expect_status,
        } => http_check(spec, start, method, uri, version, expect_status.as_ref()).await,
    };
    CheckResult {
        status: v.status,
        code: v.code,
        info: v.info,
        duration: start.elapsed(),
    }
}

struct Verdict {
    status: CheckStatus,
    code: u16,
    info: Option<String>,
}

fn verdict(status: CheckStatus, info: Option<String>) -> Verdict {
    Verdict { status, code: 0, info }
}

/// The OS's text for an error, without Rust's " (os error N)" suffix.
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

enum ConnErr {
    Timeout,
    Io(io::Error),
}

async fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, ConnErr> {
    match timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => Err(ConnErr::Timeout),
        Ok(Err(e)) => Err(ConnErr::Io(e)),
        Ok(Ok(s)) => Ok(s),
    }
}

const NO_PORT: &str = "server has neither service port nor check port";

/// A connect failure: L4CON with the OS error, L4TOUT without; `suffix` is
/// the tcp-check step text HAProxy appends.
fn conn_failure(e: ConnErr, suffix: &str) -> Verdict {
    match e {
        ConnErr::Timeout => verdict(CheckStatus::L4Tout, Some(suffix.to_string()).filter(|s| !s.is_empty())),
        ConnErr::Io(e) => verdict(CheckStatus::L4Con, Some(format!("{}{suffix}", strerror(&e)))),
    }
}

async fn plain_connect(spec: &CheckSpec, start: Instant) -> Verdict {
    let Some(port) = spec.port else {
        return verdict(CheckStatus::SockErr, Some(NO_PORT.into()));
    };
    match connect(SocketAddr::new(spec.addr, port), spec.connect_deadline(start)).await {
        Ok(_) => verdict(CheckStatus::L4Ok, None),
        Err(e) => conn_failure(e, ""),
    }
}

/// Reads once into `buf`; Ok(false) at end of stream.
async fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Result<bool, ConnErr> {
    let mut chunk = [0u8; 4096];
    let room = BUF_MAX.saturating_sub(buf.len()).min(chunk.len());
    match timeout_at(deadline, s.read(&mut chunk[..room])).await {
        Err(_) => Err(ConnErr::Timeout),
        Ok(Err(e)) => Err(ConnErr::Io(e)),
        Ok(Ok(0)) => Ok(false),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
    }
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02X}");
        s
    })
}

/// One `tcp-check expect` rule, ready to match.
enum Matcher {
    Bytes(Vec<u8>),
    Regex(Regex),
    HexRegex(Regex),
}

impl Matcher {
    fn new(kind: ExpectKind, pattern: &str) -> Result<Self, String> {
        let re = |p: &str| Regex::new(p).map_err(|e| format!("invalid regex '{p}': {e}"));
        Ok(match kind {
            ExpectKind::String => Self::Bytes(pattern.as_bytes().to_vec()),
            ExpectKind::Binary => Self::Bytes(decode_hex(pattern)),
            ExpectKind::Rstring => Self::Regex(re(pattern)?),
            ExpectKind::Rbinary => Self::HexRegex(re(pattern)?),
        })
    }

    /// Bytes needed before a mismatch can mean anything (string and binary).
    fn min_len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            _ => 0,
        }
    }

    fn matches(&self, buf: &[u8]) -> bool {
        match self {
            Self::Bytes(p) => p.is_empty() || buf.windows(p.len()).any(|w| w == p.as_slice()),
            Self::Regex(re) => re.is_match(buf),
            Self::HexRegex(re) => re.is_match(hex_upper(buf).as_bytes()),
        }
    }
}

/// " (expect string '+PONG')": how HAProxy names an expect in a timeout's info.
fn expect_label(kind: ExpectKind, pattern: &str) -> String {
    match kind {
        ExpectKind::String => format!(" (expect string '{pattern}')"),
        ExpectKind::Binary => format!(" (expect binary '{pattern}')"),
        ExpectKind::Rstring => " (expect regex)".into(),
        ExpectKind::Rbinary => " (expect binary regex)".into(),
    }
}

/// "TCPCHK did not match content '+PONG' at step 3", HAProxy's wording.
fn expect_failure(kind: ExpectKind, pattern: &str, matched: bool, empty: bool, step: usize) -> String {
    if empty {
        return format!("TCPCHK got an empty response at step {step}");
    }
    let what = if matched {
        "TCPCHK matched unwanted content"
    } else {
        "TCPCHK did not match content"
    };
    match kind {
        ExpectKind::String => format!("{what} '{pattern}' at step {step}"),
        ExpectKind::Binary => format!("{what} (binary) at step {step}"),
        ExpectKind::Rstring => format!("{what} (regex) at step {step}"),
        ExpectKind::Rbinary => format!("{what} (binary regex) at step {step}"),
    }
}

/// The PROXY protocol v1 line `tcp-check connect send-proxy` sends.
fn proxy_v1(s: &TcpStream) -> Vec<u8> {
    match (s.local_addr(), s.peer_addr()) {
        (Ok(l), Ok(p)) => {
            let fam = if l.is_ipv4() { "TCP4" } else { "TCP6" };
            format!("PROXY {fam} {} {} {} {}\r\n", l.ip(), p.ip(), l.port(), p.port()).into_bytes()
        }
        _ => b"PROXY UNKNOWN\r\n".to_vec(),
    }
}

/// `option tcp-check`: the rules in order on one connection (a `connect`
/// rule opens a new one). Steps are numbered as HAProxy does: the user's
/// rules from 1, the implicit first connect as "initial connection step".
async fn tcp_check(spec: &CheckSpec, steps: &[TcpCheckStep], start: Instant) -> Verdict {
    struct Conn {
        stream: TcpStream,
        deadline: Instant,
        buf: Vec<u8>,
        eof: bool,
    }
    let open = |addr: Option<IpAddr>, port: Option<u16>| {
        let target = port
            .or(spec.port)
            .map(|p| SocketAddr::new(addr.unwrap_or(spec.addr), p));
        async move {
            let target = target.ok_or(None)?;
            let stream = connect(target, spec.connect_deadline(start)).await.map_err(Some)?;
            let deadline = spec.io_deadline(start, Instant::now());
            Ok::<_, Option<ConnErr>>(Conn {
                stream,
                deadline,
                buf: Vec::new(),
                eof: false,
            })
        }
    };
    let mut conn = None;
    if !matches!(steps.first(), Some(TcpCheckStep::Connect { .. })) {
        match open(None, None).await {
            Ok(c) => conn = Some(c),
            Err(None) => return verdict(CheckStatus::SockErr, Some(NO_PORT.into())),
            Err(Some(e)) => return conn_failure(e, " at initial connection step of tcp-check"),
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        match step {
            TcpCheckStep::Connect { port, addr, send_proxy } => {
                drop(conn.take());
                let label = match port {
                    Some(p) => format!(" at step {n} of tcp-check (connect port {p})"),
                    None => format!(" at step {n} of tcp-check (connect)"),
                };
                let mut c = match open(*addr, *port).await {
                    Ok(c) => c,
                    Err(None) => return verdict(CheckStatus::SockErr, Some(format!("{NO_PORT}{label}"))),
                    Err(Some(e)) => return conn_failure(e, &label),
                };
                if *send_proxy {
                    let line = proxy_v1(&c.stream);
                    if let Err(e) = c.stream.write_all(&line).await {
                        return verdict(CheckStatus::SockErr, Some(format!("{}{label}", strerror(&e))));
                    }
                }
                conn = Some(c);
            }
            TcpCheckStep::Send(data) => {
                let Some(c) = conn.as_mut() else {
                    return verdict(CheckStatus::SockErr, Some(format!(" at step {n} of tcp-check (send)")));
                };
                // HAProxy empties its input buffer before each send.
                c.buf.clear();
                match timeout_at(c.deadline, c.stream.write_all(data)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return verdict(
                            CheckStatus::SockErr,
                            Some(format!("{} at step {n} of tcp-check (send)", strerror(&e))),
                        );
                    }
                    Err(_) => {
                        return verdict(CheckStatus::L7Tout, Some(format!(" at step {n} of tcp-check (send)")));
                    }
                }
            }
            TcpCheckStep::Expect { negate, kind, pattern } => {
                let label = format!(" at step {n} of tcp-check{}", expect_label(*kind, pattern));
                let Some(c) = conn.as_mut() else {
                    return verdict(CheckStatus::SockErr, Some(label));
                };
                let m = match Matcher::new(*kind, pattern) {
                    Ok(m) => m,
                    Err(e) => return verdict(CheckStatus::L7Rsp, Some(e)),
                };
                let mut must_read = c.buf.is_empty();
                loop {
                    if must_read && !c.eof {
                        match read_some(&mut c.stream, &mut c.buf, c.deadline).await {
                            Ok(more) => c.eof = !more,
                            Err(ConnErr::Timeout) => return verdict(CheckStatus::L7Tout, Some(label)),
                            // An error after some data: let the data speak, as HAProxy does.
                            Err(ConnErr::Io(_)) if !c.buf.is_empty() => c.eof = true,
                            Err(ConnErr::Io(e)) => {
                                return verdict(CheckStatus::SockErr, Some(format!("{}{label}", strerror(&e))));
                            }
                        }
                    }
                    let last_read = c.eof || c.buf.len() >= BUF_MAX;
                    if !last_read && c.buf.len() < m.min_len() {
                        must_read = true;
                        continue;
                    }
                    let matched = m.matches(&c.buf);
                    // HAProxy waits for more data on a mismatch, negated or not.
                    if !matched && !last_read {
                        must_read = true;
                        continue;
                    }
                    if matched != *negate {
                        break;
                    }
                    let info = expect_failure(*kind, pattern, matched, c.buf.is_empty(), n);
                    return verdict(CheckStatus::L7Rsp, Some(info));
                }
            }
        }
    }
    match steps.last() {
        None => verdict(CheckStatus::L4Ok, None),
        Some(TcpCheckStep::Connect { .. }) => verdict(CheckStatus::L4Ok, Some("(tcp-check)".into())),
        Some(_) => verdict(CheckStatus::L7Ok, Some("(tcp-check)".into())),
    }
}

/// Without `http-check expect status`, HAProxy takes 2xx and 3xx as passing.
fn status_matches(expect: Option<&StatusExpect>, code: u16) -> bool {
    expect.map_or((200..400).contains(&code), |e| e.matches(code))
}

/// The request `option httpchk` sends. The old `HTTP/1.1\r\nHost:\ x` form
/// (headers after the version) still works in HAProxy 2.6, so here too.
fn http_request(method: &str, uri: &str, version: &str) -> Vec<u8> {
    let (vsn, extra) = version.split_once("\r\n").unwrap_or((version, ""));
    let mut req = format!("{method} {uri} {vsn}\r\n");
    let mut has_connection = false;
    // HAProxy 2.6's H1 mux sends header names in lower case.
    for line in extra.split("\r\n").map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim().to_ascii_lowercase();
        has_connection |= name == "connection";
        let _ = write!(req, "{name}: {}\r\n", value.trim());
    }
    if !has_connection {
        req.push_str("connection: close\r\n");
    }
    if !matches!(method, "OPTIONS" | "GET" | "HEAD" | "DELETE") {
        req.push_str("content-length: 0\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

fn headers_end(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

/// "HTTP/1.1 200 OK" into (200, "OK").
fn status_line(buf: &[u8]) -> Option<(u16, String)> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&buf[..end]).ok()?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/") || code.len() != 3 {
        return None;
    }
    let code = code.parse::<u16>().ok().filter(|c| *c >= 100)?;
    Some((code, parts.next().unwrap_or("").trim().to_string()))
}

async fn http_check(
    spec: &CheckSpec,
    start: Instant,
    method: &str,
    uri: &str,
    version: &str,
    expect: Option<&StatusExpect>,
) -> Verdict {
    let Some(port) = spec.port else {
        return verdict(CheckStatus::SockErr, Some(NO_PORT.into()));
    };
    let mut s = match connect(SocketAddr::new(spec.addr, port), spec.connect_deadline(start)).await {
        Ok(s) => s,
        Err(e) => return conn_failure(e, ""),
    };
    let deadline = spec.io_deadline(start, Instant::now());
    match timeout_at(deadline, s.write_all(&http_request(method, uri, version))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return verdict(CheckStatus::SockErr, Some(strerror(&e))),
        Err(_) => return verdict(CheckStatus::L7Tout, None),
    }
    let mut buf = Vec::new();
    while !headers_end(&buf) && buf.len() < BUF_MAX {
        match read_some(&mut s, &mut buf, deadline).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(ConnErr::Timeout) => return verdict(CheckStatus::L7Tout, None),
            Err(ConnErr::Io(_)) if !buf.is_empty() => break,
            Err(ConnErr::Io(e)) => return verdict(CheckStatus::SockErr, Some(strerror(&e))),
        }
    }
    if buf.is_empty() {
        // The expect rule follows the request: step 2 in HAProxy's numbering.
        return verdict(
            CheckStatus::L7Rsp,
            Some("TCPCHK got an empty response at step 2".into()),
        );
    }
    // A response cut before the end of its headers is a parsing error too.
    let parsed = status_line(&buf).filter(|_| headers_end(&buf));
    let Some((code, reason)) = parsed else {
        return verdict(CheckStatus::L7Rsp, None);
    };
    if status_matches(expect, code) {
        Verdict {
            status: CheckStatus::L7Ok,
            code,
            info: None,
        }
    } else {
        Verdict {
            status: CheckStatus::L7Sts,
            code,
            info: Some(reason).filter(|r| !r.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::net::TcpListener;

    use super::*;

    const INTER: Duration = Duration::from_millis(300);

    fn spec(kind: HealthCheck, port: u16) -> CheckSpec {
        CheckSpec {
            kind,
            addr: IpAddr::from([127, 0, 0, 1]),
            port: Some(port),
            inter: INTER,
            timeout_connect: None,
            timeout_check: None,
        }
    }

    #[tokio::test]
    async fn addr_with_a_port_is_where_the_check_goes() {
        let (port, _) = server(b"", false, false).await;
        // The server maps the client's port: only addr's port makes it checkable.
        let text = format!(
            "defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\nfrontend f\n bind :80\n \
             default_backend b\nbackend b\n server s 127.0.0.2 addr 127.0.0.1:{port} check\n"
        );
        let (c, _) = crate::config::parse_str("t.cfg", &text).expect("a valid configuration");
        let b = &c.backends[0];
        let spec = CheckSpec::for_server(b, &b.servers[0]).expect("a checked server");
        assert_eq!((spec.addr, spec.port), (IpAddr::from([127, 0, 0, 1]), Some(port)));
        assert_eq!(run(&spec).await.status, CheckStatus::L4Ok);
    }

    /// A listener answering each connection with `reply` (after reading the
    /// request when `read_first`), then closing, or holding it when `hang`.
    /// Returns the port and what the clients sent.
    async fn server(reply: &'static [u8], read_first: bool, hang: bool) -> (u16, Arc<Mutex<Vec<u8>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = l.accept().await {
                if read_first {
                    let mut b = [0u8; 4096];
                    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await {
                        seen.lock().expect("lock").extend_from_slice(&b[..n]);
                    }
                }
                let _ = s.write_all(reply).await;
                if hang {
                    held.push(s);
                }
            }
        });
        (port, got)
    }

    async fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    }

    fn tcp(steps: Vec<TcpCheckStep>) -> HealthCheck {
        HealthCheck::TcpCheck(steps)
    }

    fn expect(kind: ExpectKind, pattern: &str) -> TcpCheckStep {
        TcpCheckStep::Expect {
            negate: false,
            kind,
            pattern: pattern.into(),
        }
    }

    fn http(expect: Option<&str>) -> HealthCheck {
        HealthCheck::Http {
            method: "GET".into(),
            uri: "/health".into(),
            version: "HTTP/1.1\r\nHost: example.com".into(),
            expect_status: expect.map(|codes| {
                let (negate, codes) = codes.strip_prefix('!').map_or((false, codes), |c| (true, c));
                StatusExpect {
                    negate,
                    codes: codes.to_string(),
                }
            }),
        }
    }

    #[tokio::test]
    async fn connect_refused() {
        let r = run(&spec(HealthCheck::Connect, closed_port().await)).await;
        assert_eq!(r.status, CheckStatus::L4Con);
        assert_eq!(r.info.as_deref(), Some("Connection refused"));
        assert!(!r.ok());
        assert!(
            r.details()
                .starts_with(", reason: Layer4 connection problem, info: \"Connection refused\", check duration: ")
        );
    }

    #[tokio::test]
    async fn connect_passes() {
        let (port, _) = server(b"", false, true).await;
        let r = run(&spec(HealthCheck::Connect, port)).await;
        assert_eq!((r.status, r.info.as_deref()), (CheckStatus::L4Ok, None));
        assert!(
            r.details()
                .starts_with(", reason: Layer4 check passed, check duration: ")
        );
    }

    #[tokio::test]
    async fn tcp_check_banner() {
        let steps = vec![
            TcpCheckStep::Send(b"PING\r\n".to_vec()),
            expect(ExpectKind::String, "+PONG"),
        ];
        let (good, got) = server(b"+PONG\r\n", true, false).await;
        let r = run(&spec(tcp(steps.clone()), good)).await;
        assert_eq!((r.status, r.info.as_deref()), (CheckStatus::L7Ok, Some("(tcp-check)")));
        assert!(
            r.details()
                .contains("Layer7 check passed, code: 0, info: \"(tcp-check)\"")
        );
        assert_eq!(got.lock().expect("lock").as_slice(), b"PING\r\n");

        let (wrong, _) = server(b"-ERR nope\r\n", true, false).await;
        let r = run(&spec(tcp(steps.clone()), wrong)).await;
        assert_eq!(r.status, CheckStatus::L7Rsp);
        assert_eq!(
            r.info.as_deref(),
            Some("TCPCHK did not match content '+PONG' at step 2")
        );

        let (silent, _) = server(b"", true, false).await;
        let r = run(&spec(tcp(steps.clone()), silent)).await;
        assert_eq!(r.info.as_deref(), Some("TCPCHK got an empty response at step 2"));

        // A wrong banner on a connection left open: HAProxy waits for more, then times out.
        let (hang, _) = server(b"-ERR\r\n", true, true).await;
        let r = run(&spec(tcp(steps), hang)).await;
        assert_eq!(r.status, CheckStatus::L7Tout);
        assert_eq!(
            r.info.as_deref(),
            Some(" at step 2 of tcp-check (expect string '+PONG')")
        );
        assert!(r.duration >= INTER, "bounded by inter: {:?}", r.duration);
    }

    #[tokio::test]
    async fn tcp_check_connect_rules_and_patterns() {
        let (port, _) = server(b"+PONG role:master\r\n", false, false).await;
        let steps = vec![
            TcpCheckStep::Connect {
                port: Some(port),
                addr: None,
                send_proxy: false,
            },
            expect(ExpectKind::Rstring, "^\\+PONG .*master"),
            expect(ExpectKind::Binary, "2b504f4e47"),
            expect(ExpectKind::Rbinary, "^2B50"),
            TcpCheckStep::Expect {
                negate: true,
                kind: ExpectKind::String,
                pattern: "slave".into(),
            },
        ];
        // The server's own port is closed: the connect rule's port wins.
        let r = run(&spec(tcp(steps), closed_port().await)).await;
        assert_eq!(r.status, CheckStatus::L7Ok, "{r:?}");

        let refused = closed_port().await;
        let steps = vec![TcpCheckStep::Connect {
            port: Some(refused),
            addr: None,
            send_proxy: false,
        }];
        let r = run(&spec(tcp(steps), port)).await;
        assert_eq!(r.status, CheckStatus::L4Con);
        assert_eq!(
            r.info,
            Some(format!(
                "Connection refused at step 1 of tcp-check (connect port {refused})"
            ))
        );
        let r = run(&spec(tcp(vec![expect(ExpectKind::Rstring, "x")]), refused)).await;
        assert_eq!(
            r.info.as_deref(),
            Some("Connection refused at initial connection step of tcp-check")
        );
        let r = run(&spec(tcp(vec![]), port)).await;
        assert_eq!(
            (r.status, r.info),
            (CheckStatus::L4Ok, None),
            "no rules: the implicit connect"
        );

        let (wrong, _) = server(b"-ERR\r\n", false, false).await;
        let r = run(&spec(tcp(vec![expect(ExpectKind::Rstring, "^\\+PONG")]), wrong)).await;
        assert_eq!(
            r.info.as_deref(),
            Some("TCPCHK did not match content (regex) at step 1")
        );
    }

    #[tokio::test]
    async fn http_statuses() {
        let (ok, got) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, false).await;
        let r = run(&spec(http(None), ok)).await;
        assert_eq!((r.status, r.code, r.info.as_deref()), (CheckStatus::L7Ok, 200, None));
        assert!(
            r.details()
                .starts_with(", reason: Layer7 check passed, code: 200, check duration: ")
        );
        assert_eq!(
            String::from_utf8_lossy(&got.lock().expect("lock")),
            "GET /health HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n\r\n"
        );

        let (bad, _) = server(b"HTTP/1.0 500 Internal Server Error\r\n\r\n", true, false).await;
        let r = run(&spec(http(None), bad)).await;
        assert_eq!((r.status, r.code), (CheckStatus::L7Sts, 500));
        assert!(r.details().starts_with(
            ", reason: Layer7 wrong status, code: 500, info: \"Internal Server Error\", check duration: "
        ));

        let (moved, _) = server(b"HTTP/1.1 301 Moved Permanently\r\n\r\n", true, false).await;
        assert!(run(&spec(http(None), moved)).await.ok(), "3xx passes by default");
        let r = run(&spec(http(Some("200")), moved)).await;
        assert_eq!((r.status, r.code), (CheckStatus::L7Sts, 301));
        assert!(run(&spec(http(Some("200,300-399")), moved)).await.ok());
        assert!(
            run(&spec(http(Some("!500")), moved)).await.ok(),
            "! status: anything but 500"
        );
        assert!(!run(&spec(http(Some("!300-399")), moved)).await.ok());

        let (garbage, _) = server(b"garbage\r\n\r\n", true, false).await;
        let r = run(&spec(http(None), garbage)).await;
        assert_eq!((r.status, r.info), (CheckStatus::L7Rsp, None));

        let (hang, _) = server(b"", true, true).await;
        let r = run(&spec(http(None), hang)).await;
        assert_eq!((r.status, r.info), (CheckStatus::L7Tout, None));

        let r = run(&spec(http(None), closed_port().await)).await;
        assert_eq!(r.status, CheckStatus::L4Con);
    }

    #[tokio::test]
    async fn timeout_check_bounds_the_read_not_inter() {
        let (hang, _) = server(b"", true, true).await;
        let mut s = spec(http(None), hang);
        s.inter = Duration::from_secs(30);
        s.timeout_check = Some(Duration::from_millis(100));
        let r = run(&s).await;
        assert_eq!(r.status, CheckStatus::L7Tout);
        assert!(r.duration < Duration::from_secs(2), "{:?}", r.duration);
    }

    #[test]
    fn requests_and_status_patterns() {
        assert_eq!(
            http_request("OPTIONS", "/", "HTTP/1.0"),
            b"OPTIONS / HTTP/1.0\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            http_request("POST", "/x", "HTTP/1.1\r\nConnection:keep-alive"),
            b"POST /x HTTP/1.1\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        );
        assert!(status_matches(None, 204) && status_matches(None, 399));
        assert!(!status_matches(None, 404) && !status_matches(None, 199));
        let codes = |negate, codes: &str| StatusExpect {
            negate,
            codes: codes.into(),
        };
        assert!(status_matches(Some(&codes(false, "404")), 404));
        assert!(!status_matches(Some(&codes(false, "2xx")), 200));
        assert!(!status_matches(Some(&codes(true, "200-299,404")), 404));
        assert!(status_matches(Some(&codes(true, "200-299,404")), 500));
        assert_eq!(
            status_line(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some((503, "Service Unavailable".into()))
        );
        assert_eq!(status_line(b"HTTP/1.1 200\r\n"), Some((200, String::new())));
        assert_eq!(status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(ascii_encode("a\"b\r"), "a\\x22b\\x0d");
    }
}

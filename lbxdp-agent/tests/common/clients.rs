//! HAProxy's own clients, run as a user runs them inside a testbed namespace:
//! socat on the stats socket, the Prometheus exporter scraping it, hatop in
//! tmux, headless chromium on the stats page; and readers for what they show.
//! Every process is bounded in time and ended by its handle, also on a panic.
use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lbxdp_testbed::{Host, NsCommand, Testbed};

/// Runs `cmd` with `input` on its stdin, stdout and stderr captured, killed
/// past `limit`.
pub fn run_with_input(cmd: &mut NsCommand, input: Vec<u8>, limit: Duration) -> anyhow::Result<Output> {
    let show = cmd.show();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // A writer thread: a peer that stops reading must not block the deadline.
    let stdin = child.stdin.take();
    std::thread::spawn(move || {
        if let Some(mut w) = stdin {
            let _ = w.write_all(&input);
        }
    });
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_bounded(&mut child, limit).with_context(|| show.clone())?;
    let Some(status) = status else {
        bail!("{show} ran longer than {limit:?} and was killed");
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Waits for `child` until `limit`; None (after killing it) when it ran past it.
fn wait_bounded(child: &mut Child, limit: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// `input` sent to the unix socket `sock` by `socat STDIO UNIX-CONNECT:sock`
/// in `host`'s namespace, as the management guide shows; its stdout. An
/// error when socat fails or runs past 20 s.
pub fn try_socat(tb: &Testbed, host: &Host, sock: &Path, input: &str) -> anyhow::Result<String> {
    // -t: after our EOF, how long socat waits for the server to finish
    // answering; a server that closes when done (non-interactive mode) ends
    // it sooner.
    let mut cmd = tb.command(host, "socat");
    cmd.args(["-t", "10", "STDIO"])
        .arg(format!("UNIX-CONNECT:{}", sock.display()));
    let out = run_with_input(&mut cmd, input.as_bytes().to_vec(), Duration::from_secs(20))?;
    if !out.status.success() {
        bail!(
            "socat to {} exited with {}: {}",
            sock.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`try_socat`] with one command line (a newline is added); panics on failure.
pub fn socat(tb: &Testbed, host: &Host, sock: &Path, line: &str) -> String {
    try_socat(tb, host, sock, &format!("{line}\n"))
        .unwrap_or_else(|e| panic!("socat {line:?} on {}: {e:#}", sock.display()))
}

/// `url` fetched with curl from `host`'s namespace (bounded); the body, or
/// an error for a failed transfer or an HTTP error status.
pub fn curl(tb: &Testbed, host: &Host, url: &str) -> anyhow::Result<String> {
    let out = tb
        .command(host, "curl")
        .args(["-sS", "--fail", "--max-time", "10", url])
        .output_timeout(Duration::from_secs(15))?;
    if !out.status.success() {
        bail!("curl {url}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `n` requests, each on a new connection (so a new source port), from one
/// curl in `host`'s namespace (bounded); tallied by answer.
pub fn tally(tb: &Testbed, host: &Host, url: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let out = tb
        .command(host, "curl")
        .args(["-sS", "-g", "--max-time", "120", "-H", "Connection: close"])
        .args(std::iter::repeat_n(url, n))
        .output_timeout(Duration::from_secs(150))
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url} x{n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut t = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        *t.entry(line.to_string()).or_default() += 1;
    }
    t
}

/// `lbxdp-agent --detach` in the LB's namespace, which must succeed.
pub fn detach(tb: &Testbed) {
    let out = tb
        .command(&tb.lb, env!("CARGO_BIN_EXE_lbxdp-agent"))
        .arg("--detach")
        .output_timeout(Duration::from_secs(20))
        .expect("lbxdp-agent --detach");
    assert!(
        out.status.success(),
        "--detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's prometheus-haproxy-exporter scraping a stats socket, serving
/// `/metrics` on 127.0.0.1 of the namespace it runs in; killed on drop.
pub struct Exporter<'a> {
    tb: &'a Testbed,
    host: Host,
    url: String,
    child: Child,
    log: PathBuf,
}

impl<'a> Exporter<'a> {
    /// Starts it in `host`'s namespace on `port`; returns once `/metrics` answers.
    pub fn start(tb: &'a Testbed, host: &Host, sock: &Path, port: u16) -> Self {
        let log = tb.dir().join(format!("exporter-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("exporter log");
        let child = tb
            .command(host, "prometheus-haproxy-exporter")
            .arg(format!("--haproxy.scrape-uri=unix:{}", sock.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--haproxy.timeout=5s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting prometheus-haproxy-exporter (`cargo xtask setup` installs it)");
        let exporter = Self {
            tb,
            host: host.clone(),
            url: format!("http://127.0.0.1:{port}/metrics"),
            child,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while curl(tb, host, &exporter.url).is_err() {
            assert!(
                Instant::now() < deadline,
                "the exporter never served {}; its log:\n{}",
                exporter.url,
                exporter.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        exporter
    }

    /// One scrape: the exporter asks the socket, then answers.
    pub fn metrics(&self) -> String {
        curl(self.tb, &self.host, &self.url).unwrap_or_else(|e| panic!("{e:#}; exporter log:\n{}", self.log()))
    }

    /// What it logged (scrape errors go there).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Scrapes (bounded) until `f` holds for the text; returns it, or panics with the last one.
    pub fn wait_for(&self, what: &str, within: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.metrics();
            if f(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what} not seen within {within:?}; last /metrics:\n{text}\nexporter log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Exporter<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sample's value in Prometheus text: the line named `name` whose labels
/// include every pair of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (head, value) = line.rsplit_once(' ')?;
        let (n, have) = match head.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}')?)),
            None => (head, Vec::new()),
        };
        let all = labels
            .iter()
            .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v));
        (n == name && all).then(|| value.parse().ok())?
    })
}

/// `a="x",b="y"` as pairs (values hold no escaped quotes in HAProxy's names).
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some((value, tail)) = after.split_once('"') else {
            break;
        };
        out.push((key.trim_start_matches(',').trim().to_string(), value.to_string()));
        rest = tail;
    }
    out
}

/// A tmux server on a private socket (never the user's), killed on drop
/// with whatever it runs.
pub struct Tmux<'a> {
    tb: &'a Testbed,
    host: Host,
    sock: PathBuf,
}

impl<'a> Tmux<'a> {
    /// Runs `command` (a shell line) in a detached 180x40 session in `host`'s namespace.
    pub fn start(tb: &'a Testbed, host: &Host, name: &str, command: &str) -> Self {
        let tmux = Self {
            tb,
            host: host.clone(),
            sock: tb.dir().join(format!("tmux-{name}.sock")),
        };
        let out = tmux
            .cmd()
            .args(["new-session", "-d", "-x", "180", "-y", "40", "-s", name, command])
            .output_timeout(Duration::from_secs(10))
            .expect("tmux new-session");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn cmd(&self) -> NsCommand {
        let mut c = self.tb.command(&self.host, "tmux");
        // tmux wants a terminal type even when no terminal is attached (CI has none).
        c.env("TERM", "xterm-256color").arg("-S").arg(&self.sock);
        c
    }

    /// The screen as text (`capture-pane -p`).
    pub fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p"])
            .output_timeout(Duration::from_secs(10))
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Captures (bounded) until `f` holds for the screen; returns it, or panics with the last one.
    pub fn wait_for(&self, what: &str, within: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.capture();
            if f(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what} not on the screen within {within:?}; last screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output_timeout(Duration::from_secs(10));
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// hatop on the stats socket, refreshing every second, in tmux.
pub fn hatop<'a>(tb: &'a Testbed, host: &Host, sock: &Path) -> Tmux<'a> {
    // The trailing sleep keeps the pane (and hatop's last words) on the
    // screen when hatop exits, so a failure shows why.
    Tmux::start(
        tb,
        host,
        "hatop",
        &format!("hatop -i 1 -s {}; sleep 60", sock.display()),
    )
}

/// hatop's line for `server` on its first screen: `NAME W STATUS CHECK ...`;
/// the status column, e.g. "UP", "MAINT", "DRAIN", "DOWN", "no check".
pub fn hatop_status(screen: &str, server: &str) -> Option<String> {
    screen.lines().find_map(|l| {
        let rest = l.strip_prefix(server)?.strip_prefix(' ')?;
        let mut words = rest.split_whitespace();
        let _weight = words.next()?;
        let status = words.next()?;
        // "no check" is the one status of two words.
        Some(if status == "no" {
            "no check".to_string()
        } else {
            status.to_string()
        })
    })
}

/// Headless chromium flags that keep it off the network but for `url`.
fn chromium(tb: &Testbed, host: &Host, profile: &Path) -> NsCommand {
    // `timeout` signals its whole process group: chromium's helpers too.
    let mut c = tb.command(host, "timeout");
    c.args(["-k", "5", "60", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn run_chromium(mut cmd: NsCommand, what: &str) -> Output {
    let out = cmd.output_timeout(Duration::from_secs(75)).expect("chromium");
    assert!(
        out.status.success(),
        "chromium {what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A screenshot of `url` as a user's browser in `host` renders it, to `png`.
pub fn screenshot(tb: &Testbed, host: &Host, url: &str, png: &Path) {
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let mut cmd = chromium(tb, host, profile.path());
    cmd.arg(format!("--screenshot={}", png.display())).arg(url);
    run_chromium(cmd, &format!("screenshot of {url}"));
    let len = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(len > 1000, "chromium wrote no real screenshot of {url} ({len} bytes)");
}

/// The DOM of `url` once chromium has loaded and rendered it.
pub fn dump_dom(tb: &Testbed, host: &Host, url: &str) -> String {
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let mut cmd = chromium(tb, host, profile.path());
    cmd.arg("--dump-dom").arg(url);
    let out = run_chromium(cmd, &format!("--dump-dom of {url}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server's row on HAProxy's stats page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageServer {
    /// The row's class: `active_up`, `active_down`, `maintain`, `active_draining`, ...
    pub class: String,
    /// The Status cell without its leading age: "UP", "DOWN", "MAINT", "DRAIN", "no check", "UP 1/2".
    pub status: String,
}

/// `backend/server`'s row in the stats page's DOM.
pub fn page_server(dom: &str, backend: &str, server: &str) -> Option<PageServer> {
    let anchor = dom.find(&format!("href=\"#{backend}/{server}\""))?;
    let start = dom[..anchor].rfind("<tr class=\"")?;
    let class_start = start + "<tr class=\"".len();
    let class = dom[class_start..].split('"').next()?.to_string();
    // Each server row is a `<tr class=...>`; the rows of the tooltips inside it have no class.
    let end = dom[anchor..].find("<tr class=\"").map_or(dom.len(), |e| anchor + e);
    let cells = row_cells(&dom[start..end]);
    // Checkbox, name, queue (3), session rate (3), sessions (6), bytes (2),
    // denied (2), errors (3), warnings (2), then Status.
    let cell = cells.get(23)?;
    Some(PageServer {
        class,
        status: strip_age(cell).to_string(),
    })
}

/// The text of each `<td>` of a row, tooltips (`<div class="tips">`) left out.
fn row_cells(row: &str) -> Vec<String> {
    let mut text = String::new();
    let mut rest = row;
    while let Some(i) = rest.find("<div class=\"tips\">") {
        text.push_str(&rest[..i]);
        rest = rest[i..].split_once("</div>").map_or("", |(_, after)| after);
    }
    text.push_str(rest);
    text.split("<td")
        .skip(1)
        .map(|cell| {
            let inner = cell.split_once('>').map_or("", |(_, c)| c);
            let inner = inner.split("</td>").next().unwrap_or_default();
            strip_tags(inner).trim().to_string()
        })
        .collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// "5s UP" -> "UP", "1m10s MAINT" -> "MAINT", "no check" stays.
fn strip_age(cell: &str) -> &str {
    match cell.split_once(' ') {
        Some((age, rest)) if age.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => cell,
    }
}

/// trafgen (netsniff-ng) sending `count` frames of `conf` from the client's
/// eth0 at `rate` (e.g. "50000pps"): bounded in count and by a timeout.
pub fn trafgen(tb: &Testbed, conf: &str, count: u64, rate: &str) {
    let out = tb
        .command(&tb.client, "trafgen")
        .args(["--dev", "eth0", "--conf", conf, "-n", &count.to_string()])
        .args(["-b", rate, "-P", "1", "-C", "--no-sock-mem", "--notouch-irq"])
        .output_timeout(Duration::from_secs(30))
        .expect("trafgen (`cargo xtask setup` installs netsniff-ng)");
    assert!(
        out.status.success(),
        "trafgen: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

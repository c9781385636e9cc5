//! The `mode http` sections the agent serves itself: HAProxy's stats page
//! (`stats uri`, `stats auth`, `stats admin`, its CSV export and its admin
//! form) and the Prometheus exporter. HTTP/1.1 with keep-alive, headers
//! bounded; the page's texts come from the agent loop, the status lines,
//! headers and error bodies here are HAProxy's.
use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::{JoinHandle, JoinSet},
};
use tracing::{debug, warn};

use super::command::{self, AdminState, Command, ForcedHealth, StatFilter, ask};
use crate::{
    config::{AdminCond, Backend, Config, Frontend, StatsPage},
    health::ServerId,
};

/// HAProxy reads a request's head and the admin form into a 16 kB buffer.
const MAX_REQUEST: usize = 16 * 1024;
/// Connections served at once when the section sets no `maxconn`.
const DEFAULT_MAXCONN: usize = 256;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const BODY_401: &str = "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n";
const BODY_503: &str =
    "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";

/// The listening sockets of one section, bound and not yet served.
#[derive(Debug)]
pub struct Listener {
    section: String,
    sockets: Vec<TcpListener>,
    maxconn: usize,
}

/// Binds every address and port of `frontend`'s `bind` lines.
pub async fn bind(frontend: &Frontend) -> anyhow::Result<Listener> {
    let mut sockets = Vec::new();
    for b in &frontend.binds {
        let ip = b.addr.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for port in b.addr.ports.clone() {
            let addr = SocketAddr::new(ip, port);
            let socket =
                super::listen_shared(addr).with_context(|| format!("binding {addr} for '{}'", frontend.name))?;
            sockets.push(socket);
        }
    }
    Ok(Listener {
        section: frontend.name.clone(),
        sockets,
        maxconn: frontend.maxconn.map_or(DEFAULT_MAXCONN, |m| m.max(1) as usize),
    })
}

impl Listener {
    /// The bound addresses (tests bind port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// Serves until the task is aborted, which closes every connection.
    /// Each request reads the section's settings from `config` as it is
    /// then, so a reload applies to the next request; a section that is
    /// gone from it (or no longer a stats page) answers 503.
    pub fn spawn(self, tx: command::Sender, config: watch::Receiver<Arc<Config>>) -> JoinHandle<()> {
        tokio::spawn(self.serve(tx, config))
    }

    async fn serve(self, tx: command::Sender, config: watch::Receiver<Arc<Config>>) {
        let slots = Arc::new(Semaphore::new(self.maxconn));
        let mut accepts = JoinSet::new();
        let section: Arc<str> = self.section.into();
        for socket in self.sockets {
            let (tx, config, slots, section) = (tx.clone(), config.clone(), slots.clone(), section.clone());
            accepts.spawn(accept_loop(socket, slots, Site { section, tx, config }));
        }
        while accepts.join_next().await.is_some() {}
    }
}

/// What a request needs to be answered.
#[derive(Clone)]
struct Site {
    section: Arc<str>,
    tx: command::Sender,
    config: watch::Receiver<Arc<Config>>,
}

async fn accept_loop(socket: TcpListener, slots: Arc<Semaphore>, site: Site) {
    let mut connections = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("stats page '{}': accept: {e}", site.section);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let site = site.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(handle(req, peer.ip(), &site).await) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_REQUEST)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!("stats page connection from {peer}: {e}");
            }
            drop(slot);
        });
    }
}

type Reply = Response<Full<Bytes>>;

async fn handle(req: Request<Incoming>, client: IpAddr, site: &Site) -> Reply {
    let config = site.config.borrow().clone();
    let page = config
        .frontends
        .iter()
        .find(|f| *f.name == *site.section)
        .and_then(|f| f.stats_page.as_ref());
    let Some(page) = page else {
        return unavailable();
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    // `use-service` runs in `http-request`, before `stats uri` is looked at.
    if page.prometheus_path.as_deref() == Some(req.uri().path()) {
        let text = ask(&site.tx, Command::Prometheus).await;
        return reply(StatusCode::OK, "text/plain; version=0.0.4", text);
    }
    // HAProxy matches `stats uri` as a prefix of the whole URI, query included.
    let Some(rest) = target.strip_prefix(page.uri.as_str()).filter(|_| page.enabled) else {
        return unavailable();
    };
    if !authorized(&req, page) {
        let mut r = reply(StatusCode::UNAUTHORIZED, "text/html", BODY_401.into());
        let realm = format!("Basic realm=\"{}\"", page.realm);
        if let Ok(v) = HeaderValue::from_str(&realm) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return r;
    }
    let flags = Flags::read(rest, page);
    let admin = page.admin.as_ref().is_some_and(|c| admits(c, client));
    match *req.method() {
        Method::POST => {
            let code = if admin {
                let config = config.clone();
                match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
                    Ok(body) => apply_form(&body.to_bytes(), &config, &site.tx).await,
                    Err(_) => "EXCD",
                }
            } else {
                "DENY"
            };
            redirect(page, &flags, code)
        }
        Method::GET | Method::HEAD if flags.csv => {
            let csv = ask(&site.tx, Command::ShowStat(StatFilter::default())).await;
            // The socket's closing empty line isn't part of the HTTP export.
            let csv = csv
                .strip_suffix('\n')
                .filter(|c| c.ends_with('\n'))
                .unwrap_or(&csv)
                .to_string();
            reply(StatusCode::OK, "text/plain", csv)
        }
        Method::GET | Method::HEAD => {
            let command = Command::StatsPage {
                section: site.section.to_string(),
                admin,
                notice: flags.notice.map(String::from),
            };
            let html = ask(&site.tx, command).await;
            let mut r = reply(StatusCode::OK, "text/html", html);
            if let Some(refresh) = page.refresh.filter(|_| !flags.norefresh) {
                r.headers_mut().insert("refresh", HeaderValue::from(refresh.as_secs()));
            }
            r
        }
        _ => unavailable(),
    }
}

/// The `;csv`, `;up`, `;norefresh`, `;st=XXXX` markers after the page's URI.
#[derive(Debug, Default, PartialEq, Eq)]
struct Flags {
    csv: bool,
    up: bool,
    /// Only with `stats refresh`, as HAProxy reads it.
    norefresh: bool,
    notice: Option<&'static str>,
}

/// HAProxy's `;st=` codes, and the class and text its page shows for them.
const NOTICES: &[(&str, &str, &str)] = &[
    ("DONE", "active_up", "Action processed successfully."),
    (
        "PART",
        "active_going_down",
        "Action partially processed.<br>Some server names are probably unknown or ambiguous (duplicated names in the backend).",
    ),
    (
        "ERRP",
        "active_down",
        "Action not processed because of invalid parameters.<ul><li>The action is maybe unknown.</li><li>Invalid key parameter (empty or too long).</li><li>The backend name is probably unknown or ambiguous (duplicated names).</li><li>Some server names are probably unknown or ambiguous (duplicated names in the backend).</li></ul>",
    ),
    (
        "EXCD",
        "active_down",
        "<b>Action not processed : the buffer couldn't store all the data.<br>You should retry with less servers at a time.</b>",
    ),
    ("DENY", "active_down", "<b>Action denied.</b>"),
    ("NONE", "active_going_down", "Nothing has changed."),
    ("UNKN", "active_no_check", "Unexpected result."),
];

/// For the page's renderer: the CSS class and the HTML text HAProxy 2.6
/// shows (in `<div class=CLASS><a class=lfsb href=URI title="Remove this
/// message">[X]</a> TEXT</div>`) for a [`Command::StatsPage`] notice.
pub fn status_notice(code: &str) -> Option<(&'static str, &'static str)> {
    NOTICES.iter().find(|n| n.0 == code).map(|n| (n.1, n.2))
}

impl Flags {
    fn read(rest: &str, page: &StatsPage) -> Self {
        let notice = rest.find(";st=").and_then(|at| {
            let code = rest.get(at + 4..at + 8)?;
            NOTICES.iter().find(|n| n.0 == code).map(|n| n.0)
        });
        Self {
            csv: rest.contains(";csv"),
            up: rest.contains(";up"),
            norefresh: page.refresh.is_some() && rest.contains(";norefresh"),
            notice,
        }
    }
}

fn authorized(req: &Request<Incoming>, page: &StatsPage) -> bool {
    if page.auth.is_empty() {
        return true;
    }
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
    else {
        return false;
    };
    let Ok(given) = String::from_utf8(given) else {
        return false;
    };
    given
        .split_once(':')
        .is_some_and(|(u, p)| page.auth.iter().any(|(user, pass)| user == u && pass == p))
}

/// `stats admin if|unless <cond>` for this client.
fn admits(cond: &AdminCond, client: IpAddr) -> bool {
    let client = client.to_canonical();
    match cond {
        AdminCond::Always => true,
        AdminCond::Localhost => match client {
            IpAddr::V4(v4) => v4.octets()[0] == 127,
            IpAddr::V6(v6) => v6.is_loopback(),
        },
        AdminCond::Src(nets) => nets.iter().any(|(net, len)| in_network(client, *net, *len)),
        AdminCond::Not(inner) => !admits(inner, client),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let (ip, net, bits) = match (ip, net.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(a.to_bits()), u128::from(b.to_bits()), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
        _ => return false,
    };
    let len = u32::from(len).min(bits);
    if len == 0 {
        return true;
    }
    let shift = bits - len;
    ip >> shift == net >> shift
}

/// The admin form, as HAProxy's `stats_process_http_post()` reads it: the
/// backend (`b`, a name or `#id`), one action, the servers (`s`). The
/// answer is the `;st=` code of the redirect.
async fn apply_form(body: &[u8], config: &Config, tx: &command::Sender) -> &'static str {
    let mut backend = None;
    let mut action = None;
    let mut servers = Vec::new();
    for (key, value) in form_urlencoded::parse(body) {
        match &*key {
            "b" => backend = Some(value.into_owned()),
            "action" => action = Some(value.into_owned()),
            "s" => servers.push(value.into_owned()),
            _ => {}
        }
    }
    let backend = match backend.as_deref().map(|b| find_backend(b, config)) {
        Some(Some(b)) => Some(b),
        Some(None) => return "ERRP",
        None => None,
    };
    let action = match action.as_deref().map(Action::parse) {
        Some(Some(a)) => Some(a),
        Some(None) => return "ERRP",
        None => None,
    };
    let (Some(backend), Some(action)) = (backend, action) else {
        return "NONE";
    };
    let (mut total, mut altered) = (0, 0);
    for name in &servers {
        let Some(server) = backend.servers.iter().find(|s| s.name == *name) else {
            total += 1;
            continue;
        };
        let id = ServerId::new(&backend.name, name);
        let command = match action {
            Action::State(state) => Command::SetState(id, state),
            Action::Health(health) => Command::SetHealth(id, health),
            // Only servers with checks count, as with HAProxy.
            Action::Checks(on) if server.check.is_some() => Command::SetChecks(id, on),
            Action::Checks(_) | Action::Ignored => continue,
        };
        total += 1;
        if ask(tx, command).await.trim().is_empty() {
            altered += 1;
        }
    }
    match (total, altered) {
        (0, _) => "NONE",
        (_, 0) => "ERRP",
        (t, a) if t == a => "DONE",
        _ => "PART",
    }
}

fn find_backend<'c>(name: &str, config: &'c Config) -> Option<&'c Backend> {
    match name.strip_prefix('#') {
        Some(id) => {
            let id: u32 = id.parse().ok()?;
            config.backends.iter().find(|b| b.id == id)
        }
        None => config.backend(name),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    State(AdminState),
    Checks(bool),
    Health(ForcedHealth),
    /// Agent checks and "Kill Sessions": lbxdp has no agents, and the
    /// page's kill switch isn't wired to the engines; nothing changes.
    Ignored,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ready" => Self::State(AdminState::Ready),
            "drain" => Self::State(AdminState::Drain),
            "maint" => Self::State(AdminState::Maint),
            "dhlth" => Self::Checks(false),
            "ehlth" => Self::Checks(true),
            "hrunn" => Self::Health(ForcedHealth::Up),
            "hnolb" => Self::Health(ForcedHealth::Stopping),
            "hdown" => Self::Health(ForcedHealth::Down),
            "dagent" | "eagent" | "arunn" | "adown" | "shutdown" => Self::Ignored,
            _ => return None,
        })
    }
}

fn redirect(page: &StatsPage, flags: &Flags, code: &str) -> Reply {
    let location = format!(
        "{};st={code}{}{}",
        page.uri,
        if flags.up { ";up" } else { "" },
        if flags.norefresh { ";norefresh" } else { "" }
    );
    let mut r = reply(StatusCode::SEE_OTHER, "text/plain", String::new());
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn unavailable() -> Reply {
    reply(StatusCode::SERVICE_UNAVAILABLE, "text/html", BODY_503.into())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests;

//! What the runtime-API tests share: the haproxy.cfg they run (stats
//! sockets, a TCP frontend over three checked nginx servers, a stats page
//! with the Prometheus exporter), the balancer under test (lbxdp in XDP or
//! proxy mode, or real HAProxy as the reference), and readers for `show
//! stat` and `show info`.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use lbxdp_testbed::{Host, Layout, Testbed};

use super::{Agent, clients};

/// HAProxy 2.6.12's `show stat` header, as Debian's haproxy prints it with
/// this config (the stats modules' columns follow the `-`).
pub const HAPROXY_STAT_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,\
eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,\
tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,\
hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,\
lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,\
check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,\
conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,\
qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,\
agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,\
h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,\
h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,\
h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,\
h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,";

/// The keys of HAProxy 2.6.12's `show info`, in its order.
pub const HAPROXY_INFO_KEYS: &[&str] = &[
    "Name",
    "Version",
    "Release_date",
    "Nbthread",
    "Nbproc",
    "Process_num",
    "Pid",
    "Uptime",
    "Uptime_sec",
    "Memmax_MB",
    "PoolAlloc_MB",
    "PoolUsed_MB",
    "PoolFailed",
    "Ulimit-n",
    "Maxsock",
    "Maxconn",
    "Hard_maxconn",
    "CurrConns",
    "CumConns",
    "CumReq",
    "MaxSslConns",
    "CurrSslConns",
    "CumSslConns",
    "Maxpipes",
    "PipesUsed",
    "PipesFree",
    "ConnRate",
    "ConnRateLimit",
    "MaxConnRate",
    "SessRate",
    "SessRateLimit",
    "MaxSessRate",
    "SslRate",
    "SslRateLimit",
    "MaxSslRate",
    "SslFrontendKeyRate",
    "SslFrontendMaxKeyRate",
    "SslFrontendSessionReuse_pct",
    "SslBackendKeyRate",
    "SslBackendMaxKeyRate",
    "SslCacheLookups",
    "SslCacheMisses",
    "CompressBpsIn",
    "CompressBpsOut",
    "CompressBpsRateLim",
    "Tasks",
    "Run_queue",
    "Idle_pct",
    "node",
    "Stopping",
    "Jobs",
    "Unstoppable Jobs",
    "Listeners",
    "ActivePeers",
    "ConnectedPeers",
    "DroppedLogs",
    "BusyPolling",
    "FailedResolutions",
    "TotalBytesOut",
    "TotalSplicdedBytesOut",
    "BytesOutRate",
    "DebugCommandsIssued",
    "CumRecvLogs",
    "Build info",
    "Memmax_bytes",
    "PoolAlloc_bytes",
    "PoolUsed_bytes",
    "Start_time_sec",
    "Tainted",
];

/// The stats page's port (`bind :8404`).
pub const STATS_PORT: u16 = 8404;

/// Which balancer serves the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Real HAProxy: the reference, proving a test can pass (and what it expects).
    Haproxy,
    /// lbxdp-agent `--mode xdp`.
    Xdp,
    /// lbxdp-agent `--mode proxy`.
    Proxy,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Haproxy => "haproxy",
            Target::Xdp => "xdp",
            Target::Proxy => "proxy",
        }
    }
}

/// One `#[test]` per target for a scenario `fn name(target: Target)`, in a
/// module of that name: `name::haproxy`, `name::xdp`, `name::proxy`.
#[macro_export]
macro_rules! each_target {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use $crate::common::runtime::Target;
            #[test]
            fn haproxy() {
                super::$scenario(Target::Haproxy);
            }
            #[test]
            fn xdp() {
                super::$scenario(Target::Xdp);
            }
            #[test]
            fn proxy() {
                super::$scenario(Target::Proxy);
            }
        }
    )*};
}

/// HAProxy's path, when installed (`cargo xtask setup` installs it).
const HAPROXY: &str = "/usr/sbin/haproxy";

/// The server options of every test: a stopped nginx is DOWN within a second.
pub const SERVER_OPTS: &str = "check inter 500 fall 1 rise 1";

/// A testbed with three nginx backends serving the runtime config, and
/// the balancer on it.
pub struct Bed {
    /// Dropped after the balancer (fields drop in order).
    pub lb: Lb,
    pub tb: Testbed,
    pub target: Target,
    /// `stats socket ... level admin`.
    pub admin: PathBuf,
    /// `stats socket ... level user`.
    pub user: PathBuf,
    /// (server name, its backend host): s1 is web1, which answers "web1".
    pub servers: Vec<(String, Host)>,
}

impl Bed {
    /// The testbed and `target` running [`config`]; None (after a loud
    /// message) without root, or for HAProxy when it is not installed.
    pub fn start(test: &str, target: Target) -> Option<Bed> {
        Bed::start_with(test, target, config)
    }

    /// As [`Bed::start`], with the config `cfg` writes (given the testbed,
    /// the admin and user sockets and the servers).
    pub fn start_with(
        test: &str,
        target: Target,
        cfg: impl FnOnce(&Testbed, &Path, &Path, &[(String, Host)]) -> String,
    ) -> Option<Bed> {
        let name = format!("{test}_{}", target.name());
        if target == Target::Haproxy && !Path::new(HAPROXY).exists() {
            eprintln!("\n!!! SKIPPED {name}: {HAPROXY} is missing (`cargo xtask setup` installs it). !!!\n");
            return None;
        }
        let mut tb = super::testbed(&name, Layout::OneArm, 3, true)?;
        let admin = tb.dir().join("admin.sock");
        let user = tb.dir().join("user.sock");
        let servers: Vec<(String, Host)> = tb
            .backends
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("s{}", i + 1), h.clone()))
            .collect();
        let cfg = cfg(&tb, &admin, &user, &servers);
        let lb = Lb::start(&mut tb, target, &cfg, &admin);
        Some(Bed {
            lb,
            tb,
            target,
            admin,
            user,
            servers,
        })
    }

    /// The backend host behind server `name` (s1 -> web1).
    pub fn host_of(&self, server: &str) -> Host {
        self.servers
            .iter()
            .find(|(n, _)| n == server)
            .map(|(_, h)| h.clone())
            .unwrap_or_else(|| panic!("no server {server}"))
    }

    /// One line on the admin socket, from the LB's namespace.
    pub fn admin(&self, line: &str) -> String {
        clients::socat(&self.tb, &self.tb.lb, &self.admin, line)
    }

    /// `show stat` on the admin socket, parsed.
    pub fn stat(&self) -> Stat {
        Stat::parse(&self.admin("show stat"))
    }

    /// `be/server`'s status column.
    pub fn status(&self, server: &str) -> String {
        let stat = self.stat();
        stat.get("be", server, "status")
            .unwrap_or_else(|| panic!("no be/{server} status in:\n{}", stat.text))
            .to_string()
    }

    /// Polls `show stat` (bounded) until be/`server`'s status is `want`.
    pub fn wait_status(&self, server: &str, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.status(server);
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "be/{server} is {now:?}, not {want:?}, after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The VIP's URL, as the client asks it.
    pub fn vip_url(&self) -> String {
        format!("http://{}/", self.tb.lb.v4())
    }

    /// The stats page's URL (with `suffix`, e.g. "/stats", "/stats;csv", "/metrics"), from the client.
    pub fn stats_url(&self, suffix: &str) -> String {
        format!("http://{}:{STATS_PORT}{suffix}", self.tb.lb.v4())
    }

    /// One request through the VIP on a new connection: the answering
    /// server's body ("web1"), or None.
    pub fn ask(&self) -> Option<String> {
        let out = self
            .tb
            .command(&self.tb.client, "curl")
            .args(["-s", "--max-time", "3", "-H", "Connection: close", &self.vip_url()])
            .output_timeout(Duration::from_secs(5))
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// The config every runtime test runs, in HAProxy's words.
pub fn config(tb: &Testbed, admin: &Path, user: &Path, servers: &[(String, Host)]) -> String {
    let mut s = format!(
        "global\n    stats socket {} mode 600 level admin\n    stats socket {} mode 600 level user\n    \
         stats timeout 30s\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n\
         frontend web\n    bind {}:80\n    default_backend be\n\nbackend be\n",
        admin.display(),
        user.display(),
        tb.lb.v4()
    );
    for (name, host) in servers {
        s.push_str(&format!("    server {name} {}:80 {SERVER_OPTS}\n", host.v4()));
    }
    s.push_str(&format!(
        "\nfrontend stats\n    mode http\n    bind :{STATS_PORT}\n    stats enable\n    stats uri /stats\n    \
         stats refresh 5s\n    stats admin if TRUE\n    \
         http-request use-service prometheus-exporter if {{ path /metrics }}\n"
    ));
    s
}

/// The balancer under test; ended by its pid when dropped.
pub enum Lb {
    Agent(Agent),
    Haproxy { child: Child, log: PathBuf },
}

impl Lb {
    /// Starts `target` on `cfg` in the LB's namespace; returns once its
    /// admin socket answers (and, for lbxdp, once it is balancing).
    pub fn start(tb: &mut Testbed, target: Target, cfg: &str, admin: &Path) -> Lb {
        let mut lb = match target {
            Target::Xdp | Target::Proxy => Lb::Agent(super::start_balancing(tb, cfg, &["--mode", target.name()])),
            Target::Haproxy => {
                let path = super::write_config(tb, cfg);
                let log = tb.dir().join("haproxy.log");
                let log_file = std::fs::File::create(&log).expect("haproxy log");
                // -db: in the foreground, so the pid is HAProxy's and ours to end.
                let child = tb
                    .command(&tb.lb, HAPROXY)
                    .args(["-db", "-f", &path])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log_file)
                    .spawn()
                    .expect("starting haproxy");
                Lb::Haproxy { child, log }
            }
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !clients::try_socat(tb, &tb.lb, admin, "show info\n").is_ok_and(|o| o.contains("Pid:")) {
            assert!(
                Instant::now() < deadline,
                "{} never answered `show info` on {}; its log:\n{}",
                target.name(),
                admin.display(),
                lb.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        lb
    }

    pub fn pid(&self) -> u32 {
        match self {
            Lb::Agent(a) => a.pid(),
            Lb::Haproxy { child, .. } => child.id(),
        }
    }

    /// What it logged so far, for failure messages.
    pub fn log(&mut self) -> String {
        match self {
            Lb::Agent(a) => a.log(),
            Lb::Haproxy { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
        }
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if let Lb::Haproxy { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `show stat` (or the page's `;csv`) as a table.
pub struct Stat {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// As received, for messages.
    pub text: String,
}

impl Stat {
    pub fn parse(text: &str) -> Stat {
        let mut lines = text.lines().filter(|l| !l.is_empty());
        let header = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .unwrap_or_else(|| panic!("no `# pxname,...` header in:\n{text}"))
            .split(',')
            .map(str::to_string)
            .collect();
        let rows = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
        Stat {
            header,
            rows,
            text: text.to_string(),
        }
    }

    pub fn row(&self, px: &str, sv: &str) -> Option<&Vec<String>> {
        self.rows
            .iter()
            .find(|r| r.first().map(String::as_str) == Some(px) && r.get(1).map(String::as_str) == Some(sv))
    }

    pub fn get(&self, px: &str, sv: &str, field: &str) -> Option<&str> {
        let i = self.header.iter().position(|h| h == field)?;
        self.row(px, sv)?.get(i).map(String::as_str)
    }

    /// A numeric cell; None when empty or absent, a panic when not a number.
    pub fn num(&self, px: &str, sv: &str, field: &str) -> Option<u64> {
        let cell = self.get(px, sv, field)?;
        if cell.is_empty() {
            return None;
        }
        Some(
            cell.parse()
                .unwrap_or_else(|_| panic!("{px}/{sv} {field} = {cell:?} is not a number")),
        )
    }
}

/// `show info` as (key, value) pairs in their order.
pub fn info_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A keep-alive HTTP/1.1 connection through the VIP from the client's
/// namespace: a flow that outlives a drain.
pub struct KeepAlive {
    stream: TcpStream,
}

impl KeepAlive {
    pub fn connect(tb: &Testbed, to: SocketAddr) -> anyhow::Result<KeepAlive> {
        // A socket belongs to the namespace of the thread that made it.
        let stream = tb.in_netns(&tb.client, || {
            Ok(TcpStream::connect_timeout(&to, Duration::from_secs(3))?)
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(KeepAlive { stream })
    }

    /// `GET /` on this connection; the body (the server's name).
    pub fn get(&mut self) -> anyhow::Result<String> {
        self.stream.write_all(b"GET / HTTP/1.1\r\nHost: lbxdp-test\r\n\r\n")?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("no content-length in {head:?}"))?;
                if buf.len() >= end + 4 + len {
                    return Ok(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).trim().to_string());
                }
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                anyhow::bail!("connection closed after {} bytes", buf.len());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Waits (bounded) until `f` holds.
pub fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what} did not happen within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where a test leaves a file for people to look at: `target/NAME` in the
/// workspace (or under CARGO_TARGET_DIR).
pub fn artifact_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

//! `show info`: the process, in HAProxy 2.6's fields and order.
//!
//! hatop 0.8.2 requires Name, Version, Release_date (each one word),
//! Nbproc, Process_num, Pid, Uptime, Maxconn, CurrConns, Maxpipes,
//! PipesUsed, Tasks, Run_queue (numbers) and a one-word `node`;
//! prometheus-haproxy-exporter 0.14 reads Version and Release_date from the
//! lines before the blank one. So the version keeps HAProxy's shape
//! (the HAProxy release whose interface lbxdp follows, then lbxdp's own).
use std::{fmt::Write, time::Duration};

use super::counters::Counters;
use crate::config::Config;

/// What `show info` names the software.
pub const NAME: &str = "lbxdp";
/// The HAProxy release lbxdp answers like, then lbxdp's version.
pub const VERSION: &str = concat!("2.6.12-lbxdp-", env!("CARGO_PKG_VERSION"));
/// HAProxy 2.6.12's release date, in its format.
pub const RELEASE_DATE: &str = "2023/03/10";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub release_date: String,
    pub nbthread: u32,
    pub pid: u32,
    pub uptime: Duration,
    /// Unix seconds.
    pub start_time: u64,
    pub ulimit_n: Option<u64>,
    pub maxsock: Option<u64>,
    pub maxconn: Option<u64>,
    pub hard_maxconn: Option<u64>,
    pub curr_conns: Option<u64>,
    pub cum_conns: Option<u64>,
    pub conn_rate: Option<u64>,
    pub max_conn_rate: Option<u64>,
    pub sess_rate: Option<u64>,
    pub max_sess_rate: Option<u64>,
    pub tasks: Option<u64>,
    pub run_queue: Option<u64>,
    pub idle_pct: Option<u64>,
    /// `node`, else the host name (HAProxy's default).
    pub node: String,
    pub description: Option<String>,
    pub stopping: bool,
    pub jobs: Option<u64>,
    pub listeners: Option<u64>,
    pub bytes_out: Option<u64>,
}

impl Info {
    /// What the config and the counters say; the agent fills the rest
    /// (limits, tasks, rates) where it knows them.
    pub fn new(
        config: &Config,
        counters: &Counters,
        pid: u32,
        start_time: u64,
        uptime: Duration,
        hostname: &str,
    ) -> Info {
        let maxconn = config.global.maxconn.map(u64::from);
        Info {
            name: NAME.into(),
            version: VERSION.into(),
            release_date: RELEASE_DATE.into(),
            nbthread: config.global.nbthread.unwrap_or(1),
            pid,
            uptime,
            start_time,
            ulimit_n: None,
            maxsock: None,
            maxconn,
            hard_maxconn: maxconn,
            curr_conns: counters.current_conns,
            cum_conns: counters.cum_conns,
            conn_rate: None,
            max_conn_rate: None,
            sess_rate: None,
            max_sess_rate: None,
            tasks: None,
            run_queue: None,
            idle_pct: None,
            node: config.global.node.clone().unwrap_or_else(|| hostname.to_string()),
            description: config.global.description.clone(),
            stopping: false,
            jobs: None,
            listeners: None,
            bytes_out: None,
        }
    }

    /// HAProxy's `Uptime`: `0d 0h00m31s`.
    pub fn uptime_text(&self) -> String {
        human_uptime(self.uptime)
    }

    /// The whole `show info` answer, blank line included.
    pub fn show_info(&self) -> String {
        let o = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        // Features lbxdp doesn't have (TLS, pipes, compression, peers, the
        // resolvers, memory pools) are zeros HAProxy would show as well.
        let fields: Vec<(&str, String)> = vec![
            ("Name", self.name.clone()),
            ("Version", self.version.clone()),
            ("Release_date", self.release_date.clone()),
            ("Nbthread", self.nbthread.to_string()),
            ("Nbproc", "1".into()),
            ("Process_num", "1".into()),
            ("Pid", self.pid.to_string()),
            ("Uptime", self.uptime_text()),
            ("Uptime_sec", self.uptime.as_secs().to_string()),
            ("Memmax_MB", "0".into()),
            ("PoolAlloc_MB", "0".into()),
            ("PoolUsed_MB", "0".into()),
            ("PoolFailed", "0".into()),
            ("Ulimit-n", o(self.ulimit_n)),
            ("Maxsock", o(self.maxsock)),
            ("Maxconn", o(self.maxconn)),
            ("Hard_maxconn", o(self.hard_maxconn)),
            ("CurrConns", o(self.curr_conns)),
            ("CumConns", o(self.cum_conns)),
            ("CumReq", "0".into()),
            ("MaxSslConns", "0".into()),
            ("CurrSslConns", "0".into()),
            ("CumSslConns", "0".into()),
            ("Maxpipes", "0".into()),
            ("PipesUsed", "0".into()),
            ("PipesFree", "0".into()),
            ("ConnRate", o(self.conn_rate)),
            ("ConnRateLimit", "0".into()),
            ("MaxConnRate", o(self.max_conn_rate)),
            ("SessRate", o(self.sess_rate)),
            ("SessRateLimit", "0".into()),
            ("MaxSessRate", o(self.max_sess_rate)),
            ("SslRate", "0".into()),
            ("SslRateLimit", "0".into()),
            ("MaxSslRate", "0".into()),
            ("SslFrontendKeyRate", "0".into()),
            ("SslFrontendMaxKeyRate", "0".into()),
            ("SslFrontendSessionReuse_pct", "0".into()),
            ("SslBackendKeyRate", "0".into()),
            ("SslBackendMaxKeyRate", "0".into()),
            ("SslCacheLookups", "0".into()),
            ("SslCacheMisses", "0".into()),
            ("CompressBpsIn", "0".into()),
            ("CompressBpsOut", "0".into()),
            ("CompressBpsRateLim", "0".into()),
            ("Tasks", o(self.tasks)),
            ("Run_queue", o(self.run_queue)),
            ("Idle_pct", o(self.idle_pct)),
            ("node", self.node.clone()),
            ("description", self.description.clone().unwrap_or_default()),
            ("Stopping", u8::from(self.stopping).to_string()),
            ("Jobs", o(self.jobs)),
            ("Unstoppable Jobs", "0".into()),
            ("Listeners", o(self.listeners)),
            ("ActivePeers", "0".into()),
            ("ConnectedPeers", "0".into()),
            ("DroppedLogs", "0".into()),
            ("BusyPolling", "0".into()),
            ("FailedResolutions", "0".into()),
            ("TotalBytesOut", o(self.bytes_out)),
            ("TotalSplicdedBytesOut", "0".into()),
            ("BytesOutRate", "".into()),
            ("DebugCommandsIssued", "0".into()),
            ("CumRecvLogs", "0".into()),
            ("Build info", self.version.clone()),
            ("Memmax_bytes", "0".into()),
            ("PoolAlloc_bytes", "".into()),
            ("PoolUsed_bytes", "".into()),
            ("Start_time_sec", self.start_time.to_string()),
            ("Tainted", "0".into()),
        ];
        let mut out = String::new();
        for (k, v) in fields {
            // HAProxy leaves `description` out when none is set.
            if k == "description" && v.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{k}: {v}");
        }
        out.push('\n');
        out
    }
}

/// HAProxy's `human_time`-like uptime: days, then hours, then two-digit
/// minutes and seconds.
pub fn human_uptime(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}d {}h{:02}m{:02}s", s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60)
}

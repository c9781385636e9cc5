//! The agent loop, one for both engines: it owns the engine, the health
//! checks and the configuration; health snapshots, reloads and runtime
//! commands reach it here, one at a time, each command with its reply.
use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{
    config::Config,
    engine::Engine,
    health::{Monitor, ServerId},
    runtime::{Command, Request, Weight},
    stats::{self, StatsTable},
    takeover::Stop,
};

/// After the engine follows a health change, how long further changes
/// gather before it follows them.
const HEALTH_COALESCE: Duration = Duration::from_millis(10);

/// How many runtime commands may wait for the loop.
pub const REQUEST_QUEUE: usize = 256;

pub struct Options {
    /// The -f paths, read again on SIGHUP.
    pub config_paths: Vec<PathBuf>,
    /// Seconds between counter logs; 0: only at exit.
    pub stats_interval: u64,
}

/// What the runtime API listeners hear: the loop's side of their channel,
/// and a way to tell the stats pages about a new configuration.
pub struct Runtime {
    pub requests: mpsc::Receiver<Request>,
    pub on_reload: Box<dyn Fn(&Config) + Send>,
    /// The listeners' tasks: stopped (closing clients, removing socket
    /// files) when the loop ends.
    pub listeners: Vec<tokio::task::JoinHandle<()>>,
    /// Installed before anything is set up, so no signal is lost meanwhile.
    pub signals: crate::signals::Signals,
    /// systemd's `Type=notify` messages.
    pub notifier: crate::notify::Notifier,
    /// The agents this one takes over from, dismissed once it serves.
    pub predecessors: crate::takeover::Predecessors,
}

struct Agent<E: Engine> {
    engine: E,
    config: Config,
    monitor: Monitor,
    started: Started,
}

/// What `show info` says of the process that doesn't change.
struct Started {
    at: std::time::Instant,
    unix: u64,
    pid: u32,
    host: String,
}

impl Started {
    fn now() -> Self {
        Self {
            at: std::time::Instant::now(),
            unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            pid: std::process::id(),
            // HAProxy's default `node` is the host name; uname(2), which
            // a chroot doesn't hide as it hides /proc.
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// Serves until SIGINT, SIGTERM or SIGUSR1; returns the final report and
/// how the engine is to stop.
pub async fn serve<E: Engine>(
    engine: E,
    config: Config,
    monitor: Monitor,
    runtime: Runtime,
    opts: &Options,
) -> anyhow::Result<(E, serde_json::Value, Stop)> {
    let mut a = Agent {
        started: Started::now(),
        engine,
        config,
        monitor,
    };
    let Runtime {
        mut requests,
        on_reload,
        listeners,
        signals: mut sig,
        notifier,
        predecessors,
    } = runtime;
    let mut health = a.monitor.subscribe();
    let snapshot = health.borrow_and_update().clone();
    a.engine.apply_health(&a.config, &snapshot)?;
    notifier.ready(&a.serving());
    crate::daemon::leave_terminal();
    predecessors.dismiss();
    let period = Duration::from_secs(opts.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let stop = loop {
        tokio::select! {
            Ok(()) = health.changed() => {
                // At once: a server logged DOWN must not get one more
                // connection. Then a pause, so a burst of changes (a rack
                // going down) becomes one more rewrite, not one each.
                let snapshot = health.borrow_and_update().clone();
                if let Err(e) = a.engine.apply_health(&a.config, &snapshot) {
                    warn!("applying health changes: {e:#}");
                }
                tokio::time::sleep(HEALTH_COALESCE).await;
            }
            Some(req) = requests.recv() => {
                let answer = a.execute(req.command);
                // A check task takes a runtime order in on its own time;
                // the next command must see it done, as in HAProxy.
                a.monitor.settle().await;
                // A client that left doesn't want its answer.
                let _ = req.reply.send(answer);
            }
            _ = sig.interrupt.recv() => { info!("SIGINT: stopping"); break Stop::Hard; }
            _ = sig.terminate.recv() => { info!("SIGTERM: stopping"); break Stop::Hard; }
            _ = sig.usr1.recv() => {
                info!("SIGUSR1: soft stop, no new connections; the open ones may finish");
                break Stop::Soft;
            }
            _ = ticker.tick(), if opts.stats_interval > 0 => a.engine.log_counters(),
            _ = sig.hangup.recv() => {
                notifier.reloading();
                match a.reload(&opts.config_paths).await {
                    Ok(()) => {
                        on_reload(&a.config);
                        info!("SIGHUP: configuration reloaded, {}", a.serving());
                        notifier.ready(&a.serving());
                    }
                    Err(e) => {
                        warn!("SIGHUP: reload failed, the running configuration stays: {e:#}");
                        // READY=1 ends systemd's reloading state either way.
                        notifier.ready(&format!("reload failed, the running configuration stays; {}", a.serving()));
                    }
                }
            }
        }
    };
    notifier.stopping();
    let mut report = a.engine.final_extra();
    if let Ok(table) = a.table() {
        log_proxies_stopped(&a.config, &table);
        if let Some(obj) = report.as_object_mut() {
            obj.insert("stats".into(), table.to_json());
        }
    }
    a.monitor.stop();
    for l in &listeners {
        l.abort();
    }
    for l in listeners {
        let _ = l.await;
    }
    Ok((a.engine, report, stop))
}

/// HAProxy's last words for each proxy, on stderr and to the proxy's `log`
/// targets at `warning`: "Proxy NAME stopped (cumulated conns: FE: n, BE: m)."
/// (after a reload, the old worker says it; the syslog file shows the hand-off).
fn log_proxies_stopped(config: &Config, table: &StatsTable) {
    let count = |px: &str, sv: &str, column: &str| {
        table
            .rows
            .iter()
            .find(|r| r.pxname() == px && r.svname() == sv)
            .and_then(|r| r.int(column))
            .unwrap_or(0)
    };
    let mut proxies: Vec<(&str, &[crate::config::LogTarget])> = Vec::new();
    for (name, logs) in config
        .frontends
        .iter()
        .map(|f| (f.name.as_str(), f.logs.as_slice()))
        .chain(config.backends.iter().map(|b| (b.name.as_str(), b.logs.as_slice())))
    {
        // A listen section is a frontend and a backend of one name.
        if !proxies.iter().any(|(n, _)| *n == name) {
            proxies.push((name, logs));
        }
    }
    for (name, logs) in proxies {
        let line = format!(
            "Proxy {name} stopped (cumulated conns: FE: {}, BE: {}).",
            count(name, "FRONTEND", "conn_tot"),
            count(name, "BACKEND", "stot")
        );
        warn!("{line}");
        if !logs.is_empty() {
            crate::syslog::Logger::new(logs).send(crate::syslog::SEVERITY_WARNING, &line);
        }
    }
}

impl<E: Engine> Agent<E> {
    /// SIGHUP: the config again, from the same files. Any error before the
    /// commit leaves everything as it was.
    async fn reload(&mut self, paths: &[PathBuf]) -> anyhow::Result<()> {
        let loaded = crate::config_files::load(paths)?;
        for d in &loaded.diags {
            warn!("{d}");
        }
        if loaded.refused {
            anyhow::bail!("the new configuration asks for what lbxdp doesn't do (see the [ALERT] lines)");
        }
        let config = loaded
            .config
            .context("the new configuration has errors (see the [ALERT] lines)")?;
        if config.global.stats_sockets != self.config.global.stats_sockets {
            warn!("SIGHUP: 'stats socket' lines changed; the sockets stay as they were bound at start");
        }
        // A stats page's options follow the reload; its addresses don't.
        let pages = |c: &Config| -> Vec<(String, Vec<crate::config::BindAddr>)> {
            c.frontends
                .iter()
                .filter(|f| f.stats_page.is_some() && !f.disabled)
                .map(|f| (f.name.clone(), f.binds.iter().map(|b| b.addr.clone()).collect()))
                .collect()
        };
        if pages(&config) != pages(&self.config) {
            warn!(
                "SIGHUP: stats pages were added, removed or moved; their listeners stay as they were bound at start \
                 (a removed page answers 503; a new one needs a restart)"
            );
        }
        let prepared = self.engine.prepare(&config).await?;
        self.monitor.reload(&config);
        let snapshot = self.monitor.snapshot();
        self.engine.commit(prepared, &config, &snapshot).await?;
        self.config = config;
        Ok(())
    }

    fn table(&self) -> anyhow::Result<StatsTable> {
        Ok(self.table_of(&self.engine.counters()?))
    }

    /// The table from counters already read, so that a view which also
    /// needs them (`show info`'s fields, lbxdp's own metrics) reads the maps once.
    fn table_of(&self, counters: &stats::Counters) -> StatsTable {
        StatsTable::build(
            &self.config,
            &self.monitor.snapshot(),
            counters,
            std::time::Instant::now(),
        )
    }

    /// What is served, for the log and systemd's STATUS.
    fn serving(&self) -> String {
        let balanced = self
            .config
            .frontends
            .iter()
            .filter(|f| f.stats_page.is_none() && !f.disabled);
        format!(
            "balancing {} frontend(s) over {} backend(s)",
            balanced.count(),
            self.config.backends.len()
        )
    }

    /// The process as `show info` and the page's header give it.
    fn info(&self, counters: &stats::Counters) -> stats::Info {
        use nix::sys::resource::{Resource, getrlimit};
        let s = &self.started;
        let mut info = stats::Info::new(&self.config, counters, s.pid, s.unix, s.at.elapsed(), &s.host);
        let nofile = getrlimit(Resource::RLIMIT_NOFILE).ok().map(|(soft, _)| soft);
        info.ulimit_n = nofile;
        info.maxsock = nofile;
        // HAProxy's default maxconn: what the file limit allows, two sockets a session.
        if info.maxconn.is_none() {
            info.maxconn = nofile.map(|n| n / 2);
            info.hard_maxconn = info.maxconn;
        }
        let m = tokio::runtime::Handle::current().metrics();
        info.tasks = u64::try_from(m.num_alive_tasks()).ok();
        info.run_queue = u64::try_from(m.global_queue_depth()).ok();
        info
    }

    /// A runtime API answer, framed as HAProxy's CLI frames it: the output,
    /// then an empty line. HTTP answers are sent as they are.
    fn execute(&mut self, command: Command) -> String {
        let framed = !matches!(command, Command::Prometheus | Command::StatsPage { .. });
        let mut out = match self.try_execute(command) {
            Ok(s) | Err(s) => s,
        };
        if framed {
            // The views already end with HAProxy's empty line.
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
        }
        out
    }

    /// The answer, or HAProxy's error text; both end with a newline when not empty.
    fn try_execute(&mut self, command: Command) -> Result<String, String> {
        let counters = || {
            self.engine
                .counters()
                .map_err(|e| format!("Can't read the counters: {e:#}\n"))
        };
        Ok(match command {
            Command::ShowInfo => {
                let counters = self.engine.counters().unwrap_or_default();
                self.info(&counters).show_info()
            }
            Command::ShowStat(filter) => stats::show_stat(&self.table_of(&counters()?), &filter),
            Command::ShowServersState(be) => stats::show_servers_state(
                &self.config,
                &self.monitor.snapshot(),
                be.as_deref(),
                std::time::Instant::now(),
            ),
            Command::ShowBackend => stats::show_backend(&self.config),
            Command::ShowSess => self.engine.sessions(),
            Command::Table(req) => self.table_command(&req)?,
            Command::Acl(req) => self.acl_command(&req)?,
            Command::SetState(id, state) => {
                self.server(&id)?;
                self.monitor.set_state(&id, state);
                String::new()
            }
            Command::SetWeight(id, w) => {
                let (be, initial) = self.server(&id)?;
                let weight = match w {
                    Weight::Absolute(w) => w,
                    Weight::Percent(p) => initial.saturating_mul(p) / 100,
                };
                if weight > 256 {
                    return Err("Absolute weight can only be between 0 and 256 inclusive.\n".into());
                }
                if be.balance == crate::config::Balance::StaticRr && weight != 0 && weight != initial {
                    return Err(
                        "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n".into(),
                    );
                }
                self.monitor.set_weight(&id, weight);
                String::new()
            }
            Command::GetWeight(id) => {
                self.server(&id)?;
                let snap = self.monitor.snapshot();
                let st = snap.get(&id).ok_or("No such server.\n")?;
                format!("{} (initial {})\n", st.weight, st.initial_weight)
            }
            Command::SetChecks(id, on) => {
                self.server(&id)?;
                self.monitor.set_checks(&id, on);
                String::new()
            }
            Command::SetHealth(id, h) => {
                self.server(&id)?;
                self.monitor.force_health(&id, h);
                String::new()
            }
            Command::Prometheus => {
                let counters = counters()?;
                let info = self.info(&counters);
                stats::exposition(&self.table_of(&counters), &info, counters.xdp.as_ref())
            }
            Command::StatsPage { section, admin, notice } => {
                let page = self
                    .config
                    .frontends
                    .iter()
                    .find(|f| f.name == section)
                    .and_then(|f| f.stats_page.clone())
                    .ok_or("No such stats page.\n")?;
                let counters = counters()?;
                let info = self.info(&counters);
                stats::render(&self.table_of(&counters), &info, &page, admin, notice.as_deref())
            }
        })
    }

    /// `show table` / `clear table`, answered as HAProxy answers them.
    fn table_command(&mut self, req: &crate::runtime::TableRequest) -> Result<String, String> {
        let failed = |e: anyhow::Error| format!("{e:#}\n");
        let name = req.name.as_deref();
        if !req.clear {
            let dumps = self.engine.stick_tables(name).map_err(failed)?;
            if !req.contents {
                let mut out: String = dumps.iter().map(crate::stick::show::header).collect();
                if name.is_some() {
                    out.push_str("# contents not dumped due to insufficient privileges\n");
                }
                return Ok(out);
            }
            return Ok(crate::stick::show::show(&dumps, name.is_some(), &req.select));
        }
        let busy = self
            .engine
            .clear_stick_table(name.unwrap_or_default(), &req.select)
            .map_err(failed)?;
        if req.select.key.is_some() && busy > 0 {
            return Err("Entry currently in use, cannot remove\n".into());
        }
        Ok(String::new())
    }

    /// `show acl`, `add acl`, `del acl`, `clear acl`: the reference
    /// changes, then each address list it feeds, in the configuration's
    /// shared sets (the proxy's rules hold them) and in the engine.
    fn acl_command(&mut self, req: &crate::runtime::acl::AclRequest) -> Result<String, String> {
        use crate::config::patref::nets_of;
        let refs = &mut self.config.pattern_refs;
        let outcome = crate::runtime::acl::execute(refs, req, self.engine.takes_masks())?;
        for at in &outcome.changed {
            let Some(nets) = self
                .config
                .frontends
                .iter()
                .find(|f| f.name == at.proxy)
                .and_then(|f| f.acls.get(at.acl))
                .and_then(|a| a.exprs.get(at.expr))
                .and_then(|e| match &e.patterns {
                    crate::config::acl::Patterns::Nets(n) => Some(n),
                    _ => None,
                })
            else {
                continue;
            };
            let old = nets.list();
            let (list, masks) = nets_of(&self.config.pattern_refs, at);
            nets.replace(list.clone(), masks);
            self.engine
                .update_acl_list(at, &old, &list)
                .map_err(|e| format!("The datapath couldn't follow: {e:#}\n"))?;
        }
        Ok(outcome.answer)
    }

    /// The backend and initial weight of a server the config has, or HAProxy's error.
    fn server(&self, id: &ServerId) -> Result<(&crate::config::Backend, u32), String> {
        let be = self.config.backend(&id.backend).ok_or("No such backend.\n")?;
        let s = be
            .servers
            .iter()
            .find(|s| s.name == id.server)
            .ok_or("No such server.\n")?;
        Ok((be, u32::from(s.weight)))
    }
}

//! From drafts to the resolved model: references between proxies, the checks
//! HAProxy makes once everything is read, and the defaults it fills in.
use std::{collections::HashSet, time::Duration};

use super::{
    diag::{Diags, Origin},
    model::{
        Backend, BackendTimeouts, CheckSettings, Config, Frontend, Global, HealthCheck, LogTarget, PortSpec, Refusal,
        Server, TcpCheckStep,
    },
    parse::{Draft, Kind, LogEntry, Parsed},
};

/// HAProxy's check defaults: `inter 2s`, `rise 2`, `fall 3`.
const DEFAULT_INTER: Duration = Duration::from_secs(2);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;
const DEFAULT_RETRIES: u32 = 3;

/// `log global` in defaults and again in the proxy means the same targets once.
fn logs(entries: &[LogEntry], global: &Global) -> Vec<LogTarget> {
    let mut out: Vec<LogTarget> = Vec::new();
    for t in entries.iter().flat_map(|e| match e {
        LogEntry::Global => global.logs.clone(),
        LogEntry::Target(t) => vec![t.clone()],
    }) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

fn set(d: Option<Duration>) -> bool {
    d.is_some_and(|d| !d.is_zero())
}

/// `fallback` locates whole-configuration alerts when there is no proxy to point at.
pub fn resolve(parsed: Parsed, diags: &mut Diags, fallback: &Origin) -> Config {
    let Parsed {
        global,
        proxies,
        refused: bind_refusals,
    } = parsed;
    let backend_names: HashSet<&str> = proxies
        .iter()
        .filter(|p| p.kind.be())
        .map(|p| p.name.as_str())
        .collect();
    let is_backend = |name: &str| backend_names.contains(name);

    for p in &proxies {
        for (target, _, at) in &p.use_backends {
            if !is_backend(target) {
                diags.alert(
                    at,
                    format!("proxy '{}': unable to find required use_backend: '{target}'", p.name),
                );
            }
        }
        if let Some((target, at)) = &p.default_backend {
            if !is_backend(target) {
                diags.alert(
                    at,
                    format!(
                        "proxy '{}': unable to find required default_backend: '{target}'",
                        p.name
                    ),
                );
            } else if *target == p.name && p.kind.be() {
                diags.alert(
                    at,
                    format!("proxy '{}': loop detected for default_backend: '{target}'", p.name),
                );
            }
        }
        let fe_missing = p.kind.fe() && !set(p.timeouts.client);
        let be_missing = p.kind.be() && (!set(p.timeouts.connect) || !set(p.timeouts.server));
        if fe_missing || be_missing {
            let which: Vec<&str> = [
                (p.kind.fe() && !set(p.timeouts.client), "client"),
                (p.kind.be() && !set(p.timeouts.connect), "connect"),
                (p.kind.be() && !set(p.timeouts.server), "server"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, n)| *n)
            .collect();
            diags.warn(
                &p.origin,
                format!(
                    "missing timeouts for {} '{}' ({}): while not properly invalid, you will certainly encounter \
                     various problems with such a configuration",
                    p.kind.word(),
                    p.name,
                    which.join(", ")
                ),
            );
        }
        check_ports(p, diags);
        if p.kind == Kind::Frontend && p.bind_lines == 0 {
            diags.warn(
                &p.origin,
                format!(
                    "frontend '{}' has no 'bind' directive; declare it as a backend if this was intended",
                    p.name
                ),
            );
        }
    }

    let listeners: usize = proxies.iter().filter(|p| p.kind.fe()).map(|p| p.bind_lines).sum();
    if listeners == 0 {
        let at = proxies.first().map_or_else(|| fallback.clone(), |p| p.origin.clone());
        diags.alert(
            &at,
            "no listener: no frontend or listen section has a 'bind' line, there is nothing to balance \
             (HAProxy says it will not start)",
        );
    }

    let frontends = proxies
        .iter()
        .filter(|p| p.kind.fe())
        .map(|p| frontend(p, &global, diags))
        .collect();
    let backends = proxies
        .iter()
        .filter(|p| p.kind.be())
        .map(|p| backend(p, &global))
        .collect();
    Config {
        global,
        frontends,
        backends,
        refused: refusals(bind_refusals, &proxies),
    }
}

/// Every place the agent refuses to run, once each: `bind` lines, then what
/// each server uses (its TLS keywords, those of the `default-server` lines it
/// inherits, and the `usesrc` / `interface` of the `source` it connects
/// from). A `defaults` line no server inherits refuses nothing.
fn refusals(binds: Vec<Refusal>, proxies: &[Draft]) -> Vec<Refusal> {
    let mut seen: HashSet<&Refusal> = HashSet::new();
    let mut out: Vec<Refusal> = Vec::new();
    let servers = proxies.iter().filter(|p| p.kind.be()).flat_map(|p| {
        p.servers.iter().flat_map(move |s| {
            let source = s.opts.source.as_ref().or(p.source.as_ref());
            s.opts
                .refused
                .iter()
                .chain(source.into_iter().flat_map(|src| &src.refused))
        })
    });
    for r in binds.iter().chain(servers) {
        if seen.insert(r) {
            out.push(r.clone());
        }
    }
    out
}

/// A checked server needs a port to check, as HAProxy 2.6 requires: its own,
/// `port`, or one on every `tcp-check connect` (the first rule being one).
fn check_ports(p: &Draft, diags: &mut Diags) {
    let steps: &[TcpCheckStep] = match &p.health {
        HealthCheck::TcpCheck(steps) => steps,
        _ => &[],
    };
    let first_is_connect_with_port = matches!(steps.first(), Some(TcpCheckStep::Connect { port: Some(_), .. }));
    let a_connect_without_port = steps
        .iter()
        .any(|s| matches!(s, TcpCheckStep::Connect { port: None, .. }));
    for s in p.servers.iter().filter(|s| s.opts.check) {
        if s.opts.port.is_some() || matches!(s.port, PortSpec::Fixed(_)) {
            continue;
        }
        let what = format!(
            "{} '{}': server '{}' has neither service port nor check port",
            p.kind.word(),
            p.name,
            s.name
        );
        let message = if matches!(p.health, HealthCheck::Connect) {
            format!("{what}.")
        } else if !first_is_connect_with_port {
            format!("{what} nor tcp_check rule 'connect' with port information.")
        } else if a_connect_without_port {
            format!("{what}, and a tcp_check rule 'connect' with no port information.")
        } else {
            continue;
        };
        diags.alert(&s.origin, message);
    }
}

fn frontend(p: &Draft, global: &Global, diags: &mut Diags) -> Frontend {
    let backend = p
        .use_backends
        .iter()
        .find(|(_, cond, _)| !cond)
        .map(|(b, _, _)| b.clone())
        .or_else(|| p.default_backend.as_ref().map(|(b, _)| b.clone()))
        .or_else(|| (p.kind == Kind::Listen).then(|| p.name.clone()));
    if backend.is_none() && p.bind_lines > 0 {
        diags.warn(
            &p.origin,
            format!(
                "{} '{}' has no backend (no default_backend): its connections will be refused",
                p.kind.word(),
                p.name
            ),
        );
    }
    Frontend {
        name: p.name.clone(),
        id: 0,
        mode: p.mode,
        binds: p.binds.clone(),
        backend,
        maxconn: p.maxconn,
        timeout_client: p.timeouts.client,
        timeout_client_fin: p.timeouts.client_fin,
        tcplog: p.tcplog,
        dontlognull: p.dontlognull,
        tcpka: p.tcpka,
        logs: logs(&p.logs, global),
        disabled: p.disabled,
        stats_page: None,
        origin: p.origin.clone(),
    }
}

fn backend(p: &Draft, global: &Global) -> Backend {
    let servers = p
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let o = &s.opts;
            let inter = o.inter.unwrap_or(DEFAULT_INTER);
            Server {
                name: s.name.clone(),
                id: u32::try_from(i + 1).unwrap_or(u32::MAX),
                addr: s.addr,
                port: s.port,
                weight: o.weight.unwrap_or(1),
                check: o.check.then(|| CheckSettings {
                    inter,
                    fastinter: o.fastinter.unwrap_or(inter),
                    downinter: o.downinter.unwrap_or(inter),
                    rise: o.rise.unwrap_or(DEFAULT_RISE),
                    fall: o.fall.unwrap_or(DEFAULT_FALL),
                    port: o.port,
                    addr: o.addr,
                }),
                backup: o.backup,
                disabled: o.disabled,
                maxconn: o.maxconn,
                send_proxy: o.send_proxy,
                on_marked_down: o.on_marked_down,
                on_marked_up: o.on_marked_up,
                source: o.source.as_ref().or(p.source.as_ref()).map(|src| src.addr.clone()),
                origin: s.origin.clone(),
            }
        })
        .collect();
    let t = &p.timeouts;
    Backend {
        name: p.name.clone(),
        id: 0,
        mode: p.mode,
        balance: p.balance,
        hash_type: p.hash_type,
        servers,
        health_check: p.health.clone(),
        timeouts: BackendTimeouts {
            connect: t.connect,
            server: t.server,
            queue: t.queue,
            check: t.check,
            tunnel: t.tunnel,
            server_fin: t.server_fin,
        },
        fullconn: p.fullconn,
        retries: p.retries.unwrap_or(DEFAULT_RETRIES),
        redispatch: p.redispatch,
        allbackups: p.allbackups,
        log_health_checks: p.log_health_checks,
        tcpka: p.tcpka,
        logs: logs(&p.logs, global),
        disabled: p.disabled,
        origin: p.origin.clone(),
    }
}

//! From drafts to the resolved model: references between proxies, the checks
//! HAProxy makes once everything is read, and the defaults it fills in.
use std::{
    collections::{BTreeSet, HashSet},
    time::Duration,
};

use super::{
    acl::SwitchRule,
    diag::Diags,
    model::{
        Backend, BackendTimeouts, CheckSettings, Config, Frontend, Global, HealthCheck, LogTarget, Mode, PortSpec,
        Refusal, Server, StatsPage, TcpCheckStep, Unsupported,
    },
    parse::{ArgRef, Draft, Kind, LogEntry, Parsed, RefKind, exporter_only},
};

/// HAProxy's check defaults: `inter 2s`, `rise 2`, `fall 3`.
const DEFAULT_INTER: Duration = Duration::from_secs(2);
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 3;
const DEFAULT_RETRIES: u32 = 3;

/// `log global` in defaults and again in the proxy means the same targets once.
/// Each carries the header HAProxy gives the proxy's lines: its `log-tag`,
/// else the global one, and the global `log-send-hostname`.
fn logs(entries: &[LogEntry], log_tag: Option<&String>, global: &Global) -> Vec<LogTarget> {
    let mut out: Vec<LogTarget> = Vec::new();
    for t in entries.iter().flat_map(|e| match e {
        LogEntry::Global => global.logs.clone(),
        LogEntry::Target(t) => vec![t.clone()],
    }) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    for t in &mut out {
        t.tag = log_tag.or(global.log_tag.as_ref()).cloned();
        t.hostname.clone_from(&global.log_send_hostname);
    }
    out
}

fn set(d: Option<Duration>) -> bool {
    d.is_some_and(|d| !d.is_zero())
}

pub fn resolve(parsed: Parsed, diags: &mut Diags) -> Config {
    let Parsed {
        global,
        proxies,
        refused: bind_refusals,
        cli_slot,
        pattern_files,
        mut pattern_refs,
    } = parsed;
    super::patref::number(&mut pattern_refs);
    let ids = proxy_ids(&proxies, cli_slot);
    let mut stats_refusals = Vec::new();
    let pages: Vec<Option<StatsPage>> = proxies
        .iter()
        .map(|p| stats_page(p, &global, diags, &mut stats_refusals))
        .collect();
    let backend_names: HashSet<&str> = proxies
        .iter()
        .filter(|p| p.kind.be())
        .map(|p| p.name.as_str())
        .collect();
    let is_backend = |name: &str| backend_names.contains(name);

    for p in &proxies {
        for (target, _, at) in &p.use_backends {
            if *target == p.name && p.kind.be() {
                diags.alert(
                    at,
                    format!("Proxy '{}': loop detected for use_backend: '{target}'.", p.name),
                );
            }
            if !is_backend(target) && !target.contains("%[") {
                diags.alert(
                    at,
                    format!("proxy '{}': unable to find required use_backend: '{target}'", p.name),
                );
            }
        }
        for (server, at) in &p.use_servers {
            if !p.servers.iter().any(|s| s.name == *server) {
                diags.alert(
                    at,
                    format!(
                        "{} '{}' : unable to find server '{server}' referenced in a 'use-server' rule.",
                        p.kind.word(),
                        p.name
                    ),
                );
            }
        }
        mode_clashes(p, &proxies, diags);
        for r in &p.arg_refs {
            if let Some(msg) = arg_ref_error(r, &p.name, &proxies) {
                diags.alert(&r.origin, msg);
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

    // None: HAProxy won't start (`-c` exits 2, the agent refuses to run).
    // A global `stats socket` is a listener too (HAProxy's CLI frontend).
    let listeners: usize = proxies
        .iter()
        .filter(|p| p.kind.fe())
        .map(|p| p.bind_lines)
        .sum::<usize>()
        + global.stats_sockets.len();

    let frontends: Vec<Frontend> = proxies
        .iter()
        .zip(&ids)
        .zip(pages)
        .filter(|((p, _), _)| p.kind.fe())
        .map(|((p, &id), page)| frontend(p, id, page, &global, diags))
        .collect();
    let backends = proxies
        .iter()
        .zip(&ids)
        .filter(|(p, _)| p.kind.be())
        .map(|(p, &id)| backend(p, id, &global))
        .collect();
    let tables: Vec<_> = proxies.iter().filter_map(|p| p.stick_table.clone()).collect();
    check_stick_refs(&frontends, &tables, diags);
    Config {
        global,
        frontends,
        backends,
        refused: refusals(bind_refusals, stats_refusals, &proxies),
        pattern_files,
        pattern_refs,
        tables,
        listeners,
    }
}

/// HAProxy refuses an HTTP frontend whose backend is TCP (a TCP frontend
/// may hand its connections to an HTTP backend: HAProxy upgrades them).
/// Worded as HAProxy words it, at the line that names the backend.
fn mode_clashes(p: &Draft, proxies: &[Draft], diags: &mut Diags) {
    if !p.kind.fe() || p.mode != Mode::Http {
        return;
    }
    let named = p
        .use_backends
        .iter()
        .map(|(b, _, at)| (b, at, "in a 'use_backend' rule"))
        .chain(
            p.default_backend
                .iter()
                .map(|(b, at)| (b, at, "as its default backend")),
        );
    for (target, at, how) in named {
        let Some(be) = proxies.iter().find(|b| b.kind.be() && b.name == *target) else {
            continue;
        };
        if be.mode == Mode::Tcp && be.name != p.name {
            diags.alert(
                at,
                format!(
                    "http {} '{}' ({}) tries to use incompatible tcp {} '{}' ({}) {how} (see 'mode').",
                    p.kind.word(),
                    p.name,
                    p.origin,
                    be.kind.word(),
                    be.name,
                    be.origin
                ),
            );
        }
    }
}

/// Every place the agent refuses to run, once each: `bind` lines, then what
/// each server uses (its TLS keywords, those of the `default-server` lines it
/// inherits, and the `usesrc` / `interface` of the `source` it connects
/// from), and the stats pages lbxdp can't serve as asked. A `defaults` line
/// no server inherits refuses nothing.
fn refusals(binds: Vec<Refusal>, stats: Vec<Refusal>, proxies: &[Draft]) -> Vec<Refusal> {
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
    for r in binds.iter().chain(&stats).chain(servers) {
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
        if s.opts.port.or(s.opts.addr_port).is_some() || matches!(s.port, PortSpec::Fixed(_)) {
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

/// HAProxy 2.6's proxy ids: in declaration order, from 1, a proxy's own
/// `id` kept, the others take the first free id from where the count is,
/// and the count moves on by one for every proxy, HAProxy's CLI frontend
/// (made by the first global `stats` line) included, which shows no id.
/// `defaults` sections take none; a listen section is one proxy.
fn proxy_ids(proxies: &[Draft], cli_slot: Option<usize>) -> Vec<u32> {
    let mut used: BTreeSet<u32> = proxies.iter().filter_map(|p| p.id).collect();
    let mut next = 1u32;
    let mut out = Vec::with_capacity(proxies.len());
    for (i, p) in proxies.iter().enumerate() {
        if cli_slot == Some(i) {
            next = next.saturating_add(1);
        }
        out.push(p.id.unwrap_or_else(|| {
            let id = first_free(&used, next);
            used.insert(id);
            next = id;
            id
        }));
        next = next.saturating_add(1);
    }
    out
}

/// HAProxy's `get_next_id()`: the first id from `from` on that isn't used.
fn first_free(used: &BTreeSet<u32>, from: u32) -> u32 {
    let mut id = from;
    for &u in used.range(from..) {
        if u != id {
            break;
        }
        id = id.saturating_add(1);
    }
    id
}

/// The page or exporter a section serves: HTTP mode only (HAProxy warns and
/// ignores both in TCP mode); refused where lbxdp would serve it otherwise.
fn stats_page(p: &Draft, global: &Global, diags: &mut Diags, refused: &mut Vec<Refusal>) -> Option<StatsPage> {
    let exporter_at = p
        .prometheus
        .as_ref()
        .map(|(_, at)| at)
        .or(p.exporter_refused.first().map(|r| &r.origin));
    if p.stats.is_none() && exporter_at.is_none() {
        return None;
    }
    let word = match p.kind {
        Kind::Listen => "proxy",
        k => k.word(),
    };
    if p.mode != Mode::Http {
        if let Some(s) = &p.stats {
            diags.warn(
                &s.origin,
                format!(
                    "'stats' statement ignored for {word} '{}' as it requires HTTP mode.",
                    p.name
                ),
            );
        }
        if let Some(at) = exporter_at {
            diags.warn(
                at,
                format!(
                    "'http-request' rules ignored for {word} '{}' as they require HTTP mode.",
                    p.name
                ),
            );
        }
        return None;
    }
    let at = p.stats.as_ref().map(|s| &s.origin).or(exporter_at).unwrap_or(&p.origin);
    let keyword = if p.stats.is_some() {
        "stats"
    } else {
        "prometheus-exporter"
    };
    let refuse = || Refusal {
        origin: at.clone(),
        directive: format!("{} {}", p.kind.word(), p.name),
        keyword: keyword.to_string(),
        what: Unsupported::StatsBesideTraffic,
    };
    if p.kind == Kind::Backend {
        refused.push(refuse());
        return None;
    }
    let forwards =
        p.default_backend.is_some() || !p.use_backends.is_empty() || (p.kind == Kind::Listen && !p.servers.is_empty());
    if forwards {
        // HAProxy serves the page's URIs and forwards the rest; lbxdp can't split by URI.
        refused.push(refuse());
    }
    refused.extend(p.stats.iter().flat_map(|s| s.refused.iter().cloned()));
    refused.extend(p.exporter_refused.iter().cloned());
    let mut page = match &p.stats {
        Some(s) => {
            let mut page = s.page.clone();
            if s.node_from_global {
                page.show_node = Some(global.node.clone().unwrap_or_default());
            }
            if s.desc_from_global {
                page.show_desc = Some(global.description.clone().unwrap_or_default());
            }
            page
        }
        None => exporter_only(),
    };
    page.prometheus_path = p.prometheus.as_ref().map(|(path, _)| path.clone());
    Some(page)
}

fn frontend(p: &Draft, id: u32, stats_page: Option<StatsPage>, global: &Global, diags: &mut Diags) -> Frontend {
    if let Some(at) = p.mode_http_at.as_ref().filter(|_| stats_page.is_none()) {
        diags.warn(
            at,
            format!(
                "'mode http' in {} '{}': lbxdp balances it as TCP (layer 4)",
                p.kind.word(),
                p.name
            ),
        );
    }
    let backend = p
        .use_backends
        .iter()
        .find(|(_, cond, _)| cond.is_none())
        .map(|(b, _, _)| b.clone())
        .or_else(|| p.default_backend.as_ref().map(|(b, _)| b.clone()))
        .or_else(|| (p.kind == Kind::Listen).then(|| p.name.clone()))
        .filter(|_| stats_page.is_none());
    if backend.is_none() && p.bind_lines > 0 && stats_page.is_none() {
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
        id,
        mode: p.mode,
        binds: p.binds.clone(),
        backend,
        switching: if stats_page.is_none() { switching(p) } else { Vec::new() },
        tcp_rules: p.tcp_rules.clone(),
        acls: p.acls.clone(),
        maxconn: p.maxconn,
        timeout_client: p.timeouts.client,
        timeout_client_fin: p.timeouts.client_fin,
        tcplog: p.tcplog,
        dontlognull: p.dontlognull,
        tcpka: p.tcpka,
        logs: logs(&p.logs, p.log_tag.as_ref(), global),
        disabled: p.disabled,
        stats_page,
        origin: p.origin.clone(),
    }
}

/// The table of `sc_*(N,table)` (its second argument, which the argument
/// checks of `parse` don't look at) must exist, as HAProxy requires.
fn check_stick_refs(frontends: &[Frontend], tables: &[crate::config::stick::StickTable], diags: &mut Diags) {
    use crate::config::{acl::Fetch, stick::StickRef};
    for f in frontends {
        for e in f.acls.iter().flat_map(|a| &a.exprs) {
            if let Fetch::Stick {
                from: StickRef::Tracked { table: Some(t), .. },
                ..
            } = &e.fetch
                && !tables.iter().any(|x| x.name == *t)
            {
                diags.alert(
                    &e.origin,
                    format!(
                        "unable to find table '{t}' referenced by a stick counter fetch in proxy '{}'.",
                        f.name
                    ),
                );
            }
        }
    }
}

/// HAProxy's check of a proxy or table an argument names, worded as it words it.
fn arg_ref_error(r: &ArgRef, proxy: &str, proxies: &[Draft]) -> Option<String> {
    let (kw, target) = (&r.keyword, &r.target);
    let named = |pred: &dyn Fn(&Draft) -> bool| proxies.iter().find(|q| q.name == *target && pred(q));
    match r.kind {
        RefKind::Backend => match named(&|q| q.kind != Kind::Defaults) {
            None => Some(format!(
                "unable to find backend '{target}' referenced in arg 1 of ACL keyword '{kw}' in proxy '{proxy}'."
            )),
            Some(q) if !q.kind.be() => Some(format!(
                "proxy '{target}', referenced in arg 1 of ACL keyword '{kw}' in proxy '{proxy}', has not backend \
                 capability."
            )),
            Some(_) => None,
        },
        RefKind::Frontend => named(&|q| q.kind != Kind::Defaults && q.kind.fe()).is_none().then(|| {
            format!("unable to find frontend '{target}' referenced in arg 1 of ACL keyword '{kw}' in proxy '{proxy}'.")
        }),
        RefKind::Table | RefKind::Track | RefKind::StickRule => {
            named(&|q| q.kind != Kind::Defaults && q.stick_table.is_some())
                .is_none()
                .then(|| match r.kind {
                    RefKind::Track => format!("Proxy '{proxy}': unable to find table '{target}' referenced by {kw}."),
                    RefKind::StickRule => format!("Proxy '{proxy}': unable to find stick-table '{target}'."),
                    _ => format!(
                        "unable to find table '{target}' referenced in arg 1 of ACL keyword '{kw}' in proxy '{proxy}'."
                    ),
                })
        }
    }
}

/// The conditional `use_backend` rules that can run: those before the
/// first unconditional one, which always wins.
fn switching(p: &Draft) -> Vec<SwitchRule> {
    p.use_backends
        .iter()
        .map_while(|(backend, cond, origin)| {
            cond.as_ref().map(|cond| SwitchRule {
                backend: backend.clone(),
                cond: cond.clone(),
                origin: origin.clone(),
            })
        })
        .collect()
}

/// HAProxy's server ids within a backend: as `proxy_ids`, without the CLI.
fn server_ids(p: &Draft) -> Vec<u32> {
    let mut used: BTreeSet<u32> = p.servers.iter().filter_map(|s| s.id).collect();
    let mut next = 1u32;
    p.servers
        .iter()
        .map(|s| {
            let id = s.id.unwrap_or_else(|| {
                let id = first_free(&used, next);
                used.insert(id);
                next = id;
                id
            });
            next = next.saturating_add(1);
            id
        })
        .collect()
}

fn backend(p: &Draft, id: u32, global: &Global) -> Backend {
    let servers = p
        .servers
        .iter()
        .zip(server_ids(p))
        .map(|(s, id)| {
            let o = &s.opts;
            let inter = o.inter.unwrap_or(DEFAULT_INTER);
            Server {
                name: s.name.clone(),
                id,
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
                    addr_port: o.addr_port,
                }),
                backup: o.backup,
                disabled: o.disabled,
                maxconn: o.maxconn,
                maxqueue: o.maxqueue,
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
        id,
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
        logs: logs(&p.logs, p.log_tag.as_ref(), global),
        disabled: p.disabled,
        origin: p.origin.clone(),
    }
}

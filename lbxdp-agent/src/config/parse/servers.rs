//! `server`, `default-server` and `source` lines.
use std::{net::IpAddr, time::Duration};

use super::{Draft, Kind, Parser, arg, atol, refusal_at};
use crate::config::{
    addr,
    diag::Origin,
    keywords::{self as kw, invalid_name_char},
    model::{OnMarkedDown, OnMarkedUp, PortSpec, ProxyProtocol, Refusal, SourceAddr, Unsupported},
    time,
};

/// A `source` line or server keyword: the address, and the `usesrc` /
/// `interface` options that come with it (refused at run time when used).
#[derive(Debug, Clone)]
pub(in crate::config) struct SourceDraft {
    pub(in crate::config) addr: SourceAddr,
    pub(in crate::config) refused: Vec<Refusal>,
}

/// `default-server` settings, and each server's own on top of them.
#[derive(Debug, Clone, Default)]
pub(in crate::config) struct ServerOpts {
    pub(in crate::config) check: bool,
    pub(in crate::config) inter: Option<Duration>,
    pub(in crate::config) fastinter: Option<Duration>,
    pub(in crate::config) downinter: Option<Duration>,
    pub(in crate::config) rise: Option<u32>,
    pub(in crate::config) fall: Option<u32>,
    pub(in crate::config) port: Option<u16>,
    pub(in crate::config) addr: Option<IpAddr>,
    pub(in crate::config) weight: Option<u16>,
    pub(in crate::config) backup: bool,
    pub(in crate::config) disabled: bool,
    pub(in crate::config) maxconn: Option<u32>,
    /// `maxqueue`: read for `connslots`, not enforced (it stays warned about).
    pub(in crate::config) maxqueue: Option<u32>,
    pub(in crate::config) send_proxy: Option<ProxyProtocol>,
    pub(in crate::config) on_marked_down: Option<OnMarkedDown>,
    pub(in crate::config) on_marked_up: Option<OnMarkedUp>,
    pub(in crate::config) source: Option<SourceDraft>,
    /// TLS keywords from the `default-server` lines in force and the server's own.
    pub(in crate::config) refused: Vec<Refusal>,
}

#[derive(Debug, Clone)]
pub(in crate::config) struct ServerDraft {
    /// `id` on the line; None is numbered when resolving, as HAProxy does.
    pub(in crate::config) id: Option<u32>,
    pub(in crate::config) name: String,
    pub(in crate::config) addr: IpAddr,
    pub(in crate::config) port: PortSpec,
    pub(in crate::config) opts: ServerOpts,
    pub(in crate::config) origin: Origin,
}

impl Parser<'_> {
    /// A proxy's `source <addr>[:<port>] [usesrc ...] [interface ...]`
    /// (HAProxy allows no port range here). It replaces the one inherited
    /// from defaults, options included, as in HAProxy.
    pub(super) fn proxy_source(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        // HAProxy warns in a frontend but still reads the line.
        let ignored = self.lacks(p, false, true, "source", at);
        let a1 = arg(w, 1);
        if a1.is_empty() {
            self.diags.alert(
                at,
                "'source' expects <addr>[:<port>], and optionally 'usesrc' <addr>, and 'interface' <name>",
            );
            return;
        }
        let addr = match addr::parse_source(a1, false) {
            Ok((addr, notes)) => {
                for n in notes {
                    self.diags.warn(at, format!("'source {a1}': {n}, as HAProxy does"));
                }
                addr
            }
            Err(e) => {
                self.diags.alert(at, format!("'source {a1}': {e}"));
                return;
            }
        };
        let mut refused = Vec::new();
        let Some(used) = self.source_options(w, 2, &format!("source {a1}"), false, at, &mut refused) else {
            return;
        };
        if let Some(extra) = w.get(2 + used).filter(|x| !x.is_empty()) {
            self.diags.alert(
                at,
                format!("'source' only supports optional keywords 'interface' and 'usesrc' (got '{extra}')"),
            );
            return;
        }
        if !ignored {
            p.source = Some(SourceDraft { addr, refused });
        }
    }

    /// The `usesrc <arg>` and `interface <name>` options after `source <addr>`,
    /// from `w[from]` on, until another word. HAProxy accepts them; lbxdp
    /// records each as refused at run time. Returns the words read, None
    /// after an alert.
    fn source_options(
        &mut self,
        w: &[String],
        from: usize,
        directive: &str,
        server_line: bool,
        at: &Origin,
        refused: &mut Vec<Refusal>,
    ) -> Option<usize> {
        let prefix = if server_line {
            format!("'{directive}': ")
        } else {
            String::new()
        };
        let mut i = from;
        loop {
            let k = arg(w, i);
            let v = arg(w, i + 1);
            let what = match k {
                "usesrc" => {
                    if v.is_empty() {
                        self.diags.alert(
                            at,
                            format!(
                                "{prefix}'usesrc' expects <addr>[:<port>], 'client', 'clientip', or \
                                 'hdr_ip(name,#)' as argument"
                            ),
                        );
                        return None;
                    }
                    let keyword = matches!(v, "client" | "clientip") || v.starts_with("hdr_ip(");
                    if !keyword {
                        match addr::parse_source(v, false) {
                            // HAProxy would resolve the name; the line is refused anyway.
                            Ok(_) | Err(addr::AddrError::SourceHostName(_)) => {}
                            Err(e) => {
                                self.diags.alert(at, format!("{prefix}'usesrc {v}': {e}"));
                                return None;
                            }
                        }
                    }
                    Unsupported::Usesrc
                }
                "interface" => {
                    if v.is_empty() {
                        self.diags
                            .alert(at, format!("{prefix}'source': missing interface name"));
                        return None;
                    }
                    Unsupported::SourceInterface
                }
                _ => return Some(i - from),
            };
            refused.push(refusal_at(at, directive.to_string(), k, what));
            i += 2;
        }
    }

    pub(super) fn server(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let k = w[0].as_str();
        let is_default = k == "default-server";
        if !p.kind.be() {
            self.diags.alert(
                at,
                format!(
                    "'{k}' not allowed because {} '{}' has no backend capability",
                    p.kind.word(),
                    p.name
                ),
            );
            return;
        }
        if !is_default && p.kind == Kind::Defaults {
            self.diags.alert(at, "'server' not allowed in 'defaults' section");
            return;
        }
        let (mut opts, first_kw) = if is_default {
            (p.defsrv.clone(), 1)
        } else {
            (p.defsrv.clone(), 3)
        };
        let mut target = None;
        let mut id = None;
        if !is_default {
            let (name, address) = (arg(w, 1), arg(w, 2));
            if address.is_empty() {
                self.diags
                    .alert(at, "'server' expects <name> and <addr>[:<port>] as arguments");
                return;
            }
            if let Some(c) = invalid_name_char(name) {
                self.diags
                    .alert(at, format!("character '{c}' is not permitted in server name '{name}'"));
                return;
            }
            match addr::parse_server(address) {
                Ok((ip, port, notes)) => {
                    for n in notes {
                        self.diags
                            .warn(at, format!("'server {}/{name}': {n}, as HAProxy does", p.name));
                    }
                    target = Some((name.to_string(), ip, port));
                }
                Err(e) => {
                    self.diags.alert(at, format!("'server {}/{name}': {e}", p.name));
                    return;
                }
            }
        }
        let who = if is_default {
            "default-server".to_string()
        } else {
            format!("server {}/{}", p.name, arg(w, 1))
        };
        let mut i = first_kw;
        while i < w.len() {
            let key = w[i].as_str();
            let v = arg(w, i + 1);
            let mut takes = 0;
            match key {
                "" => {}
                "check" => opts.check = true,
                "no-check" => opts.check = false,
                "backup" => opts.backup = true,
                "no-backup" => opts.backup = false,
                "disabled" => opts.disabled = true,
                "enabled" => opts.disabled = false,
                "send-proxy" => opts.send_proxy = Some(ProxyProtocol::V1),
                "send-proxy-v2" => opts.send_proxy = Some(ProxyProtocol::V2),
                "no-send-proxy" | "no-send-proxy-v2" => opts.send_proxy = None,
                "inter" | "fastinter" | "downinter" => {
                    takes = 1;
                    if v.is_empty() {
                        self.diags
                            .alert(at, format!("'{who}': '{key}' expects a delay as argument"));
                        return;
                    }
                    let d = match time::parse_ms(v) {
                        Ok(t) if t.value.is_zero() => {
                            self.diags.alert(
                                at,
                                format!("'{who}': invalid value 0 for argument '{key}' (must be > 0)"),
                            );
                            return;
                        }
                        Ok(t) => t.value,
                        Err(e) => {
                            self.diags
                                .alert(at, format!("'{who}': {e} in argument '{v}' to '{key}'"));
                            return;
                        }
                    };
                    match key {
                        "inter" => opts.inter = Some(d),
                        "fastinter" => opts.fastinter = Some(d),
                        _ => opts.downinter = Some(d),
                    }
                }
                "rise" | "fall" => {
                    takes = 1;
                    if v.is_empty() {
                        self.diags
                            .alert(at, format!("'{who}': '{key}' expects an integer argument"));
                        return;
                    }
                    let (n, clean) = atol(v);
                    if n <= 0 {
                        self.diags
                            .alert(at, format!("'{who}': '{key}' has to be > 0 (got '{v}')"));
                        return;
                    }
                    if !clean {
                        self.diags.warn(
                            at,
                            format!("'{who}': '{key} {v}' is not a number; HAProxy reads it as {n}"),
                        );
                    }
                    let n = Some(n.min(i64::from(u32::MAX)) as u32);
                    if key == "rise" {
                        opts.rise = n;
                    } else {
                        opts.fall = n;
                    }
                }
                "weight" => {
                    takes = 1;
                    if v.is_empty() {
                        self.diags
                            .alert(at, format!("'{who}': 'weight' expects an integer argument"));
                        return;
                    }
                    let (n, clean) = atol(v);
                    if !(0..=256).contains(&n) {
                        self.diags
                            .alert(at, format!("'{who}': weight is not within 0 and 256 ({v})"));
                        return;
                    }
                    if !clean {
                        self.diags.warn(
                            at,
                            format!("'{who}': 'weight {v}' is not a number; HAProxy reads it as {n}"),
                        );
                    }
                    opts.weight = Some(n as u16);
                }
                "maxconn" => {
                    takes = 1;
                    if v.is_empty() {
                        self.diags
                            .alert(at, format!("'{who}': 'maxconn' expects an integer argument"));
                        return;
                    }
                    let (n, clean) = atol(v);
                    if !clean {
                        self.diags.warn(
                            at,
                            format!("'{who}': 'maxconn {v}' is not a number; HAProxy reads it as {n}"),
                        );
                    }
                    opts.maxconn = Some(n.clamp(0, i64::from(u32::MAX)) as u32);
                }
                "port" => {
                    takes = 1;
                    let (n, clean) = atol(v);
                    if v.is_empty() || !(1..=65535).contains(&n) {
                        self.diags
                            .alert(at, format!("'{who}': invalid check port '{v}' (expects 1-65535)"));
                        return;
                    }
                    if !clean {
                        self.diags
                            .warn(at, format!("'{who}': 'port {v}' read as {n}, as HAProxy does"));
                    }
                    opts.port = Some(n as u16);
                }
                "on-marked-down" | "on-marked-up" => {
                    takes = 1;
                    // HAProxy knows one action for each.
                    let want = if key == "on-marked-down" {
                        "shutdown-sessions"
                    } else {
                        "shutdown-backup-sessions"
                    };
                    if v != want {
                        self.diags
                            .alert(at, format!("'{who}': '{key}' expects '{want}' but got '{v}'"));
                        return;
                    }
                    if key == "on-marked-down" {
                        opts.on_marked_down = Some(OnMarkedDown::ShutdownSessions);
                    } else {
                        opts.on_marked_up = Some(OnMarkedUp::ShutdownBackupSessions);
                    }
                }
                "addr" => {
                    takes = 1;
                    match v.parse::<IpAddr>() {
                        Ok(ip) => opts.addr = Some(ip),
                        Err(_) => {
                            self.diags
                                .alert(at, format!("'{who}': 'addr' expects an IP address, got '{v}'"));
                            return;
                        }
                    }
                }
                "source" => {
                    if v.is_empty() {
                        self.diags.alert(
                            at,
                            format!(
                                "'{who}': 'source' expects <addr>[:<port>[-<port>]], and optionally 'usesrc' <addr>, \
                                 and 'interface' <name> as argument"
                            ),
                        );
                        return;
                    }
                    let addr = match addr::parse_source(v, true) {
                        Ok((addr, notes)) => {
                            for n in notes {
                                self.diags
                                    .warn(at, format!("'{who}': 'source {v}': {n}, as HAProxy does"));
                            }
                            addr
                        }
                        Err(e) => {
                            self.diags.alert(at, format!("'{who}': 'source {v}': {e}"));
                            return;
                        }
                    };
                    // HAProxy's server `source` sets the address and keeps the
                    // `usesrc` / `interface` options inherited from default-server.
                    let mut refused = opts.source.take().map(|s| s.refused).unwrap_or_default();
                    let Some(used) = self.source_options(w, i + 2, &who, true, at, &mut refused) else {
                        return;
                    };
                    takes = 1 + used;
                    opts.source = Some(SourceDraft { addr, refused });
                }
                "usesrc" => {
                    self.diags
                        .alert(at, format!("'{who}': 'usesrc' only allowed after a 'source' statement"));
                    return;
                }
                "id" => {
                    takes = 1;
                    if is_default {
                        // HAProxy says it as an alert but the configuration stays valid.
                        self.diags
                            .warn(at, "'id' option is not accepted in default-server sections; ignored");
                    } else if v.is_empty() {
                        self.diags
                            .alert(at, format!("'{who}': 'id': expects an integer argument."));
                        return;
                    } else {
                        let (n, _) = atol(v);
                        if n <= 0 {
                            self.diags.alert(at, format!("'{who}': 'id': custom id has to be > 0."));
                            return;
                        }
                        id = Some(n.min(i64::from(u32::MAX)) as u32);
                    }
                }
                other => match kw::SERVER_OTHER.iter().find(|(n, _)| *n == other) {
                    Some((_, n)) => {
                        takes = *n;
                        let refusal = kw::SERVER_REFUSED
                            .iter()
                            .find(|(r, _)| *r == other)
                            .map(|(_, what)| *what);
                        if !self.parse_past(&who, other, v, *n, kw::SERVER_FILES, refusal.is_none(), at) {
                            return;
                        }
                        if other == "maxqueue" {
                            opts.maxqueue = Some(atol(v).0.clamp(0, i64::from(u32::MAX)) as u32);
                        }
                        if let Some(what) = refusal {
                            opts.refused.push(refusal_at(at, who.clone(), other, what));
                        }
                    }
                    None => {
                        self.diags.alert(at, format!("'{who}': unknown keyword '{other}'"));
                        return;
                    }
                },
            }
            i += 1 + takes;
        }
        match target {
            None => p.defsrv = opts,
            Some((name, ip, port)) => {
                if let Some(prev) = p.server_index.get(&name).map(|&i| &p.servers[i]) {
                    self.diags.alert(
                        at,
                        format!(
                            "backend '{}': another server named '{name}' was already defined at line {}, please use distinct names",
                            p.name, prev.origin.line
                        ),
                    );
                    return;
                }
                if let Some(id) = id {
                    if let Some(prev) = p.server_ids.get(&id).map(|&i| &p.servers[i]) {
                        self.diags.alert(
                            at,
                            format!(
                                "'server {}/{name}': 'id': custom id {id} already used at {} ('server {}').",
                                p.name, prev.origin, prev.name
                            ),
                        );
                        return;
                    }
                    p.server_ids.insert(id, p.servers.len());
                }
                p.server_index.insert(name.clone(), p.servers.len());
                p.servers.push(ServerDraft {
                    id,
                    name,
                    addr: ip,
                    port,
                    opts,
                    origin: at.clone(),
                });
            }
        }
    }
}

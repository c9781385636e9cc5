//! Sections and keywords: lines in, proxy drafts and the global section out.
//! Like HAProxy, a proxy starts as a copy of the defaults section in force,
//! and its own keywords then override what it inherited.
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use super::{
    Source, addr, cond,
    diag::{Diags, Origin},
    keywords::{self as kw, invalid_name_char},
    lex::{self, LexError, Vars},
    model::{
        Balance, Bind, CliLevel, EnvRef, EnvRefKind, ExpectKind, Global, HashType, HealthCheck, LogTarget, Mode,
        OnMarkedDown, OnMarkedUp, PortSpec, ProxyProtocol, Refusal, SourceAddr, StatsSocket, StatusExpect,
        TcpCheckStep, Unsupported,
    },
    time,
};

/// HAProxy stops reading a file after this many fatal errors.
const MAX_FATAL_PER_FILE: usize = 50;
/// Keeps a huge file of harmless-but-unapplied lines from flooding the output.
const MAX_WARNINGS_PER_FILE: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl Kind {
    pub fn fe(self) -> bool {
        !matches!(self, Kind::Backend)
    }
    pub fn be(self) -> bool {
        !matches!(self, Kind::Frontend)
    }
    pub fn word(self) -> &'static str {
        match self {
            Kind::Defaults => "defaults",
            Kind::Frontend => "frontend",
            Kind::Backend => "backend",
            Kind::Listen => "listen",
        }
    }
}

/// A `source` line or server keyword: the address, and the `usesrc` /
/// `interface` options that come with it (refused at run time when used).
#[derive(Debug, Clone)]
pub struct SourceDraft {
    pub addr: SourceAddr,
    pub refused: Vec<Refusal>,
}

/// `default-server` settings, and each server's own on top of them.
#[derive(Debug, Clone, Default)]
pub struct ServerOpts {
    pub check: bool,
    pub inter: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
    pub weight: Option<u16>,
    pub backup: bool,
    pub disabled: bool,
    pub maxconn: Option<u32>,
    pub send_proxy: Option<ProxyProtocol>,
    pub on_marked_down: Option<OnMarkedDown>,
    pub on_marked_up: Option<OnMarkedUp>,
    pub source: Option<SourceDraft>,
    /// TLS keywords from the `default-server` lines in force and the server's own.
    pub refused: Vec<Refusal>,
}

#[derive(Debug, Clone)]
pub struct ServerDraft {
    pub name: String,
    pub addr: IpAddr,
    pub port: PortSpec,
    pub opts: ServerOpts,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    pub client: Option<Duration>,
    pub client_fin: Option<Duration>,
    pub connect: Option<Duration>,
    pub server: Option<Duration>,
    pub queue: Option<Duration>,
    pub check: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub server_fin: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogEntry {
    Global,
    Target(LogTarget),
}

#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: Kind,
    pub name: String,
    pub origin: Origin,
    pub mode: Mode,
    pub binds: Vec<Bind>,
    /// Any `bind` line, including sockets lbxdp can't balance (UNIX, fd@).
    pub bind_lines: usize,
    pub default_backend: Option<(String, Origin)>,
    /// (backend, has a condition, where).
    pub use_backends: Vec<(String, bool, Origin)>,
    pub balance: Balance,
    pub hash_type: HashType,
    pub maxconn: Option<u32>,
    pub fullconn: Option<u32>,
    pub retries: Option<u32>,
    pub redispatch: Option<i64>,
    pub allbackups: bool,
    pub tcplog: bool,
    pub dontlognull: bool,
    pub tcpka: bool,
    pub log_health_checks: bool,
    pub timeouts: Timeouts,
    pub logs: Vec<LogEntry>,
    pub health: HealthCheck,
    /// tcp-check rules inherited from defaults are replaced, not extended.
    pub checks_inherited: bool,
    pub defsrv: ServerOpts,
    /// The proxy's `source` (its own, else its defaults'); a server's wins.
    pub source: Option<SourceDraft>,
    pub servers: Vec<ServerDraft>,
    /// Server name to its index in `servers`: duplicates are found in O(1).
    server_index: HashMap<String, usize>,
    pub disabled: bool,
}

impl Draft {
    fn new(kind: Kind, name: &str, origin: Origin) -> Self {
        Self {
            kind,
            name: name.to_string(),
            origin,
            mode: Mode::Tcp,
            binds: Vec::new(),
            bind_lines: 0,
            default_backend: None,
            use_backends: Vec::new(),
            balance: Balance::RoundRobin,
            hash_type: HashType::MapBased,
            maxconn: None,
            fullconn: None,
            retries: None,
            redispatch: None,
            allbackups: false,
            tcplog: false,
            dontlognull: false,
            tcpka: false,
            log_health_checks: false,
            timeouts: Timeouts::default(),
            logs: Vec::new(),
            health: HealthCheck::Connect,
            checks_inherited: false,
            defsrv: ServerOpts::default(),
            source: None,
            servers: Vec::new(),
            server_index: HashMap::new(),
            disabled: false,
        }
    }

    /// A new proxy from a defaults section: what HAProxy copies, nothing else
    /// (binds, servers, rules and names stay behind).
    fn inherit(kind: Kind, name: &str, origin: Origin, d: &Draft) -> Self {
        let mut p = Self::new(kind, name, origin);
        p.mode = d.mode;
        if kind.fe() {
            p.default_backend = d.default_backend.clone();
        }
        p.balance = d.balance;
        p.hash_type = d.hash_type;
        p.maxconn = d.maxconn;
        p.fullconn = d.fullconn;
        p.retries = d.retries;
        p.redispatch = d.redispatch;
        p.allbackups = d.allbackups;
        p.tcplog = d.tcplog;
        p.dontlognull = d.dontlognull;
        p.tcpka = d.tcpka;
        p.log_health_checks = d.log_health_checks;
        p.timeouts = d.timeouts.clone();
        p.logs = d.logs.clone();
        p.health = d.health.clone();
        p.checks_inherited = !matches!(d.health, HealthCheck::Connect);
        p.defsrv = d.defsrv.clone();
        p.source = d.source.clone();
        p.disabled = d.disabled;
        p
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub global: Global,
    pub proxies: Vec<Draft>,
    /// `bind` lines that ask for what lbxdp doesn't do (server lines' are
    /// gathered per server when resolving, where inheritance is known).
    pub refused: Vec<Refusal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Global,
    /// Index into `defaults` or `proxies`.
    Defaults(usize),
    Proxy(usize),
    /// A section lbxdp doesn't read, or a broken header: skip its lines.
    Skip,
}

/// Keyword modifier: `no option x`, `default option x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Std,
    No,
    Default,
}

pub struct Parser<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    pub diags: Diags,
    pub out: Parsed,
    defaults: Vec<Draft>,
    /// The defaults new proxies copy: the last `defaults` section.
    last_defaults: Option<usize>,
    /// Named defaults referenced with `from` (HAProxy forbids mixing uses).
    explicit_refs: HashSet<usize>,
    implicit_refs: HashSet<usize>,
    /// Defaults section name to its indexes in `defaults`.
    defaults_index: HashMap<String, Vec<usize>>,
    /// Proxy name to indexes in `out.proxies`, for duplicate checks in O(1).
    proxy_index: HashMap<String, Vec<usize>>,
}

struct LineVars<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: &'a str,
    line: usize,
    section: &'a str,
}

impl Vars for LineVars<'_> {
    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }
    fn pseudo(&self, name: &str) -> Option<String> {
        match name {
            "LINE" => Some(self.line.to_string()),
            "FILE" => Some(self.file.to_string()),
            "SECTION" => Some(self.section.to_string()),
            _ => None,
        }
    }
}

fn arg(words: &[String], i: usize) -> &str {
    words.get(i).map(String::as_str).unwrap_or("")
}

/// HAProxy's `atol()`: optional sign, leading digits, the rest ignored.
fn atol(s: &str) -> (i64, bool) {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    let clean = !n.is_empty() && n.len() == digits.len();
    let v = n.parse::<i64>().unwrap_or(if n.is_empty() { 0 } else { i64::MAX });
    (if neg { -v } else { v }, clean)
}

impl<'e> Parser<'e> {
    pub fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            env,
            diags: Diags::default(),
            out: Parsed::default(),
            defaults: Vec::new(),
            last_defaults: None,
            explicit_refs: HashSet::new(),
            implicit_refs: HashSet::new(),
            defaults_index: HashMap::new(),
            proxy_index: HashMap::new(),
        }
    }

    /// Reads one file. Sections don't continue into the next file, as in
    /// HAProxy; the defaults in force do.
    pub fn feed(&mut self, src: &Source<'_>) {
        let mut section = Section::None;
        let mut section_name = String::new();
        let mut conds = cond::Stack::default();
        let fatal_before = self.diags.alert_count();
        let warn_before = self.diags.list.len() - fatal_before;
        let data = src.data;
        let mut lines = data.split(|&b| b == b'\n').enumerate().peekable();
        while let Some((idx, raw)) = lines.next() {
            let number = idx + 1;
            let at = Origin::new(src.name, number);
            let is_last = lines.peek().is_none();
            if is_last && raw.is_empty() {
                break;
            }
            if self.diags.alert_count() - fatal_before >= MAX_FATAL_PER_FILE {
                self.diags.alert(
                    &at,
                    format!("too many fatal errors ({MAX_FATAL_PER_FILE}), stopping now"),
                );
                break;
            }
            let nul = raw.iter().position(|&b| b == 0);
            let line = &raw[..nul.unwrap_or(raw.len())];
            self.line(src.name, number, line, &mut section, &mut section_name, &mut conds);
            if let Some(p) = nul {
                if is_last {
                    self.diags
                        .alert(&at, format!("NUL character at position {}: not a text file?", p + 1));
                } else {
                    self.diags.alert(
                        &at,
                        format!(
                            "stray NUL character at position {}: not a text file? Stopping this file.",
                            p + 1
                        ),
                    );
                }
                break;
            }
            if is_last {
                self.diags.alert(
                    &at,
                    format!(
                        "missing LF on last line, file might have been truncated at position {} \
                         (HAProxy rejects this too)",
                        line.len() + 1
                    ),
                );
            }
            let warnings = self.diags.list.len() - self.diags.alert_count();
            if warnings - warn_before > MAX_WARNINGS_PER_FILE {
                let last = self.diags.list.pop();
                if let Some(d) = last.filter(|d| d.is_alert()) {
                    self.diags.list.push(d);
                }
            }
        }
        if conds.depth() > 0 {
            let last = data.split(|&b| b == b'\n').count().saturating_sub(1).max(1);
            self.diags
                .alert(&Origin::new(src.name, last), "non-terminated '.if' block");
        }
    }

    fn line(
        &mut self,
        file: &str,
        number: usize,
        line: &[u8],
        section: &mut Section,
        section_name: &mut String,
        conds: &mut cond::Stack,
    ) {
        let at = Origin::new(file, number);
        let trimmed = line
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .map(|p| &line[p..])
            .unwrap_or(&[]);
        if trimmed.first() == Some(&b'[') {
            self.diags.warn(&at, "scope lines ('[...]') are not used by lbxdp");
            return;
        }
        let vars = LineVars {
            env: self.env,
            file,
            line: number,
            section: section_name,
        };
        let words = match lex::split(line, &vars) {
            Ok(w) => w,
            Err(e) => {
                let hint = match e {
                    LexError::UnmatchedQuote(_) => ": close the quote on the same line",
                    _ => "",
                };
                self.diags.alert(&at, format!("{e}{hint}"));
                return;
            }
        };
        if arg(&words, 0).is_empty() {
            return;
        }
        if let Some(directive) = words[0].strip_prefix('.') {
            match directive {
                "if" | "elif" | "else" | "endif" => {
                    let expr = words[1..].join(" ");
                    if let Err(msg) = conds.handle(directive, &expr, self.env) {
                        self.diags.alert(&at, msg);
                    }
                    return;
                }
                _ => {}
            }
        }
        if conds.masked() {
            return;
        }
        if let Some(directive) = words[0].strip_prefix('.') {
            if matches!(directive, "alert" | "warning" | "notice" | "diag") && words.len() > 2 {
                self.diags.alert(
                    &at,
                    format!(
                        "unexpected argument '{}' for '.{directive}'; use quotes if the message should contain spaces",
                        words[2]
                    ),
                );
                return;
            }
            match directive {
                "alert" => self.diags.alert(&at, format!("'{}'", arg(&words, 1))),
                "warning" => self.diags.warn(&at, format!("'{}'", arg(&words, 1))),
                "notice" | "diag" => {}
                _ => self.diags.alert(&at, format!("unknown directive '{}'", words[0])),
            }
            return;
        }

        let mut words = words;
        let mut modifier = Modifier::Std;
        if words[0] == "no" || words[0] == "default" {
            modifier = if words[0] == "no" {
                Modifier::No
            } else {
                Modifier::Default
            };
            words.remove(0);
            if words.is_empty() {
                words.push(String::new());
            }
            let allowed = [
                "option",
                "log",
                "busy-polling",
                "set-dumpable",
                "strict-limits",
                "insecure-fork-wanted",
                "numa-cpu-mapping",
            ];
            if !allowed.contains(&words[0].as_str()) {
                self.diags.alert(
                    &at,
                    "negation/default currently supported only for options, log, busy-polling, set-dumpable, \
                     strict-limits, insecure-fork-wanted and numa-cpu-mapping",
                );
            }
        }

        match words[0].as_str() {
            "global" => {
                *section = Section::Global;
                *section_name = "global".into();
                self.too_many(&words, 0, &at);
                return;
            }
            "defaults" | "frontend" | "backend" | "listen" => {
                *section = self.section_header(&words, &at);
                *section_name = if arg(&words, 1).is_empty() {
                    words[0].clone()
                } else {
                    words[1].clone()
                };
                return;
            }
            s if kw::OTHER_SECTIONS.contains(&s) => {
                self.diags
                    .warn(&at, format!("'{s}' section: parsed past, not used by lbxdp"));
                *section = Section::Skip;
                *section_name = arg(&words, 1).to_string();
                return;
            }
            _ => {}
        }
        match *section {
            Section::None => {
                self.diags
                    .alert(&at, format!("unknown keyword '{}' out of section", words[0]));
            }
            Section::Skip => {}
            Section::Global => self.global_kw(&words, &at, modifier),
            Section::Defaults(i) => {
                let mut p = std::mem::replace(&mut self.defaults[i], Draft::new(Kind::Defaults, "", at.clone()));
                self.proxy_kw(&mut p, &words, &at, modifier);
                self.defaults[i] = p;
            }
            Section::Proxy(i) => {
                let mut p = std::mem::replace(&mut self.out.proxies[i], Draft::new(Kind::Defaults, "", at.clone()));
                self.proxy_kw(&mut p, &words, &at, modifier);
                self.out.proxies[i] = p;
            }
        }
    }

    /// HAProxy's `alertif_too_many_args()`: words past index `max` are an error.
    fn too_many(&mut self, words: &[String], max: usize, at: &Origin) -> bool {
        match words.get(max + 1).filter(|w| !w.is_empty()) {
            Some(extra) => {
                self.diags.alert(
                    at,
                    format!("'{}' cannot handle unexpected argument '{extra}'", words[0]),
                );
                true
            }
            None => false,
        }
    }

    fn section_header(&mut self, words: &[String], at: &Origin) -> Section {
        let kind = match words[0].as_str() {
            "defaults" => Kind::Defaults,
            "frontend" => Kind::Frontend,
            "backend" => Kind::Backend,
            _ => Kind::Listen,
        };
        let (name, from) = if kind == Kind::Defaults {
            match (arg(words, 1), arg(words, 2), arg(words, 3)) {
                ("from", d, "") if !d.is_empty() => ("", Some(d)),
                (n, "from", d) if !d.is_empty() => (n, Some(d)),
                (n, "", _) => (n, None),
                (n, x, _) => {
                    self.diags.alert(
                        at,
                        format!("'defaults {n}': unexpected argument '{x}' (expected 'from NAME')"),
                    );
                    (n, None)
                }
            }
        } else {
            let name = arg(words, 1);
            if name.is_empty() {
                self.diags.alert(at, format!("'{}' expects an <id> argument", words[0]));
                return Section::Skip;
            }
            if let Some(c) = invalid_name_char(name) {
                self.diags.alert(
                    at,
                    format!("character '{c}' is not permitted in '{}' name '{name}'", words[0]),
                );
            }
            let from = match (arg(words, 2), arg(words, 3)) {
                ("", _) => None,
                ("from", d) if !d.is_empty() && arg(words, 4).is_empty() => Some(d),
                (x, _) => {
                    let hint = if kind.fe() {
                        "; please use the 'bind' keyword for listening addresses"
                    } else {
                        ""
                    };
                    self.diags
                        .alert(at, format!("'{} {name}': unexpected argument '{x}'{hint}", words[0]));
                    return Section::Skip;
                }
            };
            self.check_duplicate(kind, name, at);
            (name, from)
        };

        let base = match from {
            Some(d) => {
                if let Some(c) = invalid_name_char(d) {
                    self.diags.alert(
                        at,
                        format!("character '{c}' is not permitted in defaults section name '{d}'"),
                    );
                }
                let found = self.defaults_index.get(d).cloned().unwrap_or_default();
                match found.last() {
                    None => {
                        self.diags.alert(
                            at,
                            format!("defaults section '{d}' not found for {} '{name}'", words[0]),
                        );
                        return Section::Skip;
                    }
                    Some(&i) => {
                        if found.len() > 1 {
                            self.diags.alert(at, format!("ambiguous defaults section name '{d}'"));
                        }
                        self.explicit_refs.insert(i);
                        Some(i)
                    }
                }
            }
            None if kind != Kind::Defaults => {
                if let Some(i) = self.last_defaults {
                    self.implicit_refs.insert(i);
                }
                self.last_defaults
            }
            None => None,
        };
        if let Some(i) = base
            && self.explicit_refs.contains(&i)
            && self.implicit_refs.contains(&i)
            && !self.defaults[i].name.is_empty()
        {
            self.diags.warn(
                at,
                format!(
                    "defaults section '{}' is explicitly referenced by another proxy and implicitly used here; \
                     don't mix both uses",
                    self.defaults[i].name
                ),
            );
        }
        let draft = match base {
            Some(i) => Draft::inherit(kind, name, at.clone(), &self.defaults[i]),
            None => Draft::new(kind, name, at.clone()),
        };
        if kind == Kind::Defaults {
            self.defaults_index
                .entry(draft.name.clone())
                .or_default()
                .push(self.defaults.len());
            self.defaults.push(draft);
            let i = self.defaults.len() - 1;
            self.last_defaults = Some(i);
            Section::Defaults(i)
        } else {
            self.proxy_index
                .entry(draft.name.clone())
                .or_default()
                .push(self.out.proxies.len());
            self.out.proxies.push(draft);
            Section::Proxy(self.out.proxies.len() - 1)
        }
    }

    fn check_duplicate(&mut self, kind: Kind, name: &str, at: &Origin) {
        let proxies = &self.out.proxies;
        let clash = self
            .proxy_index
            .get(name)
            .into_iter()
            .flatten()
            .map(|&i| &proxies[i])
            .find(|p| (kind.fe() && p.kind.fe()) || (kind.be() && p.kind.be()));
        if let Some(p) = clash {
            let msg = format!(
                "{} '{name}' has the same name as {} '{name}' declared at {}",
                kind.word(),
                p.kind.word(),
                p.origin
            );
            self.diags.alert(at, msg);
        }
    }

    fn global_kw(&mut self, w: &[String], at: &Origin, modifier: Modifier) {
        let a1 = arg(w, 1).to_string();
        let k = w[0].as_str();
        match k {
            "daemon" => {
                if !self.too_many(w, 0, at) {
                    self.out.global.daemon = true;
                }
            }
            "master-worker" => {
                if !a1.is_empty() && a1 != "no-exit-on-failure" {
                    self.diags
                        .alert(at, "'master-worker' only supports 'no-exit-on-failure' option");
                } else if !self.too_many(w, 1, at) {
                    self.out.global.master_worker = true;
                }
            }
            "maxconn" | "nbthread" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    self.diags.alert(at, format!("'{k}' expects an integer argument"));
                    return;
                }
                let (v, clean) = atol(&a1);
                if k == "nbthread" {
                    if !clean || !(1..=64).contains(&v) {
                        self.diags
                            .alert(at, format!("'nbthread' value must be between 1 and 64 (was '{a1}')"));
                        return;
                    }
                    self.out.global.nbthread = Some(v as u32);
                } else {
                    if !clean {
                        self.diags
                            .warn(at, format!("'maxconn {a1}' is not a number; HAProxy reads it as {v}"));
                    }
                    if self.out.global.maxconn.is_some() {
                        self.diags.warn(at, "'maxconn' already specified; the last value wins");
                    }
                    self.out.global.maxconn = Some(v.clamp(0, i64::from(u32::MAX)) as u32);
                }
            }
            "pidfile" | "chroot" | "node" | "user" | "group" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    let what = match k {
                        "pidfile" => "a file name",
                        "chroot" => "a directory",
                        "node" => "a non-empty node name",
                        _ => "a name",
                    };
                    self.diags.alert(at, format!("'{k}' expects {what} as an argument"));
                    return;
                }
                let g = &mut self.out.global;
                let (slot, env) = match k {
                    "pidfile" => (&mut g.pidfile, None),
                    "chroot" => (&mut g.chroot, None),
                    "node" => (&mut g.node, None),
                    "user" => (&mut g.user, Some(EnvRefKind::User)),
                    _ => (&mut g.group, Some(EnvRefKind::Group)),
                };
                let dup = slot.is_some();
                *slot = Some(a1.clone());
                if let Some(kind) = env {
                    g.env_refs.push(EnvRef {
                        kind,
                        value: a1,
                        origin: at.clone(),
                    });
                }
                if dup {
                    self.diags
                        .warn(at, format!("'{k}' already specified; the last value wins"));
                }
            }
            "uid" | "gid" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if a1.is_empty() {
                    self.diags.alert(at, format!("'{k}' expects an integer argument"));
                    return;
                }
                let (v, clean) = atol(&a1);
                if !clean {
                    self.diags.warn(
                        at,
                        format!(
                            "{k}: '{a1}' is not a number; use '{}' for a name",
                            if k == "uid" { "user" } else { "group" }
                        ),
                    );
                }
                let v = Some(v.clamp(0, i64::from(u32::MAX)) as u32);
                if k == "uid" {
                    self.out.global.uid = v;
                } else {
                    self.out.global.gid = v;
                }
            }
            "description" => {
                if a1.is_empty() {
                    self.diags.alert(at, "'description' expects a string argument");
                    return;
                }
                self.out.global.description = Some(w[1..].join(" "));
            }
            "log" => {
                if modifier == Modifier::No {
                    self.out.global.logs.clear();
                    return;
                }
                if a1 == "global" {
                    self.diags.alert(at, "log: 'global' is only usable in proxies");
                    return;
                }
                if let Some(t) = self.log_target(w, at) {
                    self.out.global.logs.push(t);
                }
            }
            "stats" => self.global_stats(w, at),
            "spread-checks" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                if self.out.global.spread_checks.is_some_and(|v| v != 0) {
                    // HAProxy says it as an alert but starts anyway: the first value stays.
                    self.diags
                        .warn(at, "spread-checks already specified; the first value stays");
                    return;
                }
                if a1.is_empty() {
                    self.diags
                        .alert(at, "'spread-checks' expects an integer argument (0..50).");
                    return;
                }
                let (v, _) = atol(&a1);
                if !(0..=50).contains(&v) {
                    self.diags
                        .alert(at, "'spread-checks' needs a positive value in range 0..50.");
                    return;
                }
                self.out.global.spread_checks = Some(v as u32);
            }
            "nbproc" => self.diags.alert(
                at,
                "nbproc is not supported any more since HAProxy 2.5; threads are used automatically",
            ),
            other if kw::GLOBAL_OTHER.contains(&other) => {
                self.diags
                    .warn(at, format!("global '{other}': parsed past, not applied by lbxdp"));
            }
            other => self
                .diags
                .alert(at, format!("unknown keyword '{other}' in 'global' section")),
        }
    }

    fn global_stats(&mut self, w: &[String], at: &Origin) {
        match arg(w, 1) {
            "socket" => {
                let addr = arg(w, 2);
                if addr.is_empty() {
                    self.diags.alert(at, "'stats socket' expects an address or a path");
                    return;
                }
                let mut sock = StatsSocket {
                    address: addr.to_string(),
                    mode: None,
                    user: None,
                    group: None,
                    uid: None,
                    gid: None,
                    level: CliLevel::default(),
                    maxconn: None,
                    origin: at.clone(),
                };
                let mut i = 3;
                while i < w.len() {
                    let k = w[i].as_str();
                    let v = arg(w, i + 1);
                    match k {
                        "mode" => match u32::from_str_radix(v, 8) {
                            Ok(m) if !v.is_empty() => sock.mode = Some(m),
                            _ => {
                                self.diags.alert(at, format!("'stats socket': 'mode' expects an octal mode, got '{v}'"));
                                return;
                            }
                        },
                        "level" => {
                            if !matches!(v, "user" | "operator" | "admin") {
                                self.diags.alert(
                                    at,
                                    format!("'stats socket': 'level' only supports 'user', 'operator', and 'admin', got '{v}'"),
                                );
                                return;
                            }
                            sock.level = match v {
                                "user" => CliLevel::User,
                                "operator" => CliLevel::Operator,
                                _ => CliLevel::Admin,
                            };
                        }
                        _ => match kw::BIND_OTHER.iter().find(|(n, _)| *n == k) {
                            Some((_, n)) => {
                                if *n == 1 && v.is_empty() {
                                    self.diags.alert(at, format!("'stats socket': '{k}' expects an argument"));
                                    return;
                                }
                                i += n;
                            }
                            None => {
                                self.diags.alert(at, format!("'stats socket': unknown keyword '{k}'"));
                                return;
                            }
                        },
                    }
                    if matches!(k, "mode" | "level") {
                        i += 1;
                    }
                    i += 1;
                }
                self.out.global.stats_sockets.push(sock);
            }
            "timeout" => {
                let v = arg(w, 2);
                match time::parse_ms(v) {
                    Ok(t) if !t.value.is_zero() => self.out.global.stats_timeout = Some(t.value),
                    Ok(_) => self.diags.alert(at, "'stats timeout' expects a positive delay in milliseconds"),
                    Err(e) => self.diags.alert(at, format!("'stats timeout': {e} in '{v}'")),
                }
            }
            "maxconn" | "bind-process" | "uid" | "gid" | "user" | "group" | "mode" | "level" | "mask" => {
                self.diags.warn(at, format!("'stats {}': parsed past, not applied by lbxdp", arg(w, 1)));
            }
            other => self.diags.alert(
                at,
                format!("'stats' only supports 'socket', 'maxconn', 'bind-process' and 'timeout' in 'global' section (got '{other}')"),
            ),
        }
    }

    /// `log <target> [len N] [format F] [sample R:S] <facility> [level [minlevel]]`.
    fn log_target(&mut self, w: &[String], at: &Origin) -> Option<LogTarget> {
        let address = arg(w, 1).to_string();
        let mut i = 2;
        while let "len" | "format" | "sample" = arg(w, i) {
            i += 2;
        }
        let facility = arg(w, i);
        if address.is_empty() || facility.is_empty() {
            self.diags
                .alert(at, "log: expects <address> and <facility> as arguments");
            return None;
        }
        if !kw::LOG_FACILITIES.contains(&facility) {
            self.diags.alert(at, format!("log: unknown log facility '{facility}'"));
            return None;
        }
        let mut levels = [None, None];
        for (slot, word) in levels.iter_mut().zip([arg(w, i + 1), arg(w, i + 2)]) {
            if word.is_empty() {
                break;
            }
            if !kw::LOG_LEVELS.contains(&word) {
                self.diags.alert(at, format!("log: unknown log level '{word}'"));
                return None;
            }
            *slot = Some(word.to_string());
        }
        if let Some(extra) = w.get(i + 3).filter(|x| !x.is_empty()) {
            self.diags.alert(at, format!("log: unexpected argument '{extra}'"));
            return None;
        }
        let [level, min_level] = levels;
        Some(LogTarget {
            address,
            facility: facility.to_string(),
            level,
            min_level,
        })
    }

    /// HAProxy's `warnifnotcap()`: the keyword is ignored, with a warning.
    fn lacks(&mut self, p: &Draft, need_fe: bool, need_be: bool, what: &str, at: &Origin) -> bool {
        if (need_fe && p.kind.fe()) || (need_be && p.kind.be()) {
            return false;
        }
        let cap = if need_fe { "frontend" } else { "backend" };
        self.diags.warn(
            at,
            format!(
                "'{what}' ignored because {} '{}' has no {cap} capability",
                p.kind.word(),
                p.name
            ),
        );
        true
    }

    fn not_in_defaults(&mut self, p: &Draft, k: &str, at: &Origin) -> bool {
        if p.kind == Kind::Defaults {
            self.diags.alert(at, format!("'{k}' not allowed in 'defaults' section"));
            return true;
        }
        false
    }

    fn int_arg(&mut self, w: &[String], k: &str, at: &Origin) -> Option<u32> {
        let a1 = arg(w, 1);
        if a1.is_empty() {
            self.diags.alert(at, format!("'{k}' expects an integer argument"));
            return None;
        }
        let (v, clean) = atol(a1);
        if !clean {
            self.diags
                .warn(at, format!("'{k} {a1}': not a number; HAProxy reads it as {v}"));
        }
        Some(v.clamp(0, i64::from(u32::MAX)) as u32)
    }

    fn proxy_kw(&mut self, p: &mut Draft, w: &[String], at: &Origin, modifier: Modifier) {
        let k = w[0].as_str();
        let a1 = arg(w, 1).to_string();
        match k {
            "mode" => {
                if self.too_many(w, 1, at) {
                    return;
                }
                match a1.as_str() {
                    "tcp" => p.mode = Mode::Tcp,
                    "http" => {
                        p.mode = Mode::Http;
                        self.diags.warn(
                            at,
                            format!(
                                "'mode http' in {} '{}': lbxdp balances it as TCP (layer 4)",
                                p.kind.word(),
                                p.name
                            ),
                        );
                    }
                    "health" => self.diags.alert(at, "'mode health' doesn't exist anymore"),
                    other => self.diags.alert(at, format!("unknown proxy mode '{other}'")),
                }
            }
            "bind" => self.bind(p, w, at),
            "server" | "default-server" => self.server(p, w, at),
            "default_backend" => {
                // HAProxy warns but keeps it, and still resolves it later.
                self.lacks(p, true, false, k, at);
                if a1.is_empty() {
                    self.diags.alert(at, "'default_backend' expects a backend name");
                    return;
                }
                if self.too_many(w, 1, at) {
                    return;
                }
                p.default_backend = Some((a1, at.clone()));
            }
            "use_backend" => {
                if self.not_in_defaults(p, k, at) {
                    return;
                }
                self.lacks(p, true, false, k, at);
                if a1.is_empty() {
                    self.diags.alert(at, "'use_backend' expects a backend name");
                    return;
                }
                let cond = match arg(w, 2) {
                    "" => false,
                    "if" | "unless" => {
                        if arg(w, 3).is_empty() {
                            self.diags
                                .alert(at, "'use_backend': missing condition after 'if'/'unless'");
                            return;
                        }
                        self.diags.warn(
                            at,
                            "'use_backend' with a condition: ACL conditions are not evaluated at layer 4, \
                             lbxdp ignores this rule",
                        );
                        true
                    }
                    other => {
                        self.diags.alert(
                            at,
                            format!(
                                "unexpected keyword '{other}' after switching rule, only 'if' and 'unless' are allowed"
                            ),
                        );
                        return;
                    }
                };
                p.use_backends.push((a1, cond, at.clone()));
            }
            "balance" => {
                if self.lacks(p, false, true, k, at) {
                    return;
                }
                self.balance(p, w, at);
            }
            "hash-type" => {
                if self.lacks(p, false, true, k, at) {
                    return;
                }
                p.hash_type = match a1.as_str() {
                    "consistent" => HashType::Consistent,
                    "map-based" => HashType::MapBased,
                    _ => {
                        self.diags
                            .alert(at, "'hash-type' only supports 'consistent' and 'map-based'");
                        return;
                    }
                };
                let mut i = 2;
                if matches!(arg(w, i), "sdbm" | "djb2" | "wt6" | "crc32" | "none") {
                    i += 1;
                } else if !arg(w, i).is_empty() && arg(w, i) != "avalanche" {
                    self.diags.alert(
                        at,
                        "'hash-type' only supports 'sdbm', 'djb2', 'wt6', 'crc32' and 'none' as hash functions",
                    );
                    return;
                }
                if arg(w, i) == "avalanche" {
                    i += 1;
                }
                if !arg(w, i).is_empty() {
                    self.diags
                        .alert(at, format!("'hash-type': unexpected argument '{}'", arg(w, i)));
                }
            }
            "maxconn" => {
                if self.lacks(p, true, false, k, at) {
                    return;
                }
                if let Some(v) = self.int_arg(w, k, at)
                    && !self.too_many(w, 1, at)
                {
                    p.maxconn = Some(v);
                }
            }
            "fullconn" | "retries" => {
                if self.lacks(p, false, true, k, at) {
                    return;
                }
                if self.too_many(w, 1, at) {
                    return;
                }
                if let Some(v) = self.int_arg(w, k, at) {
                    if k == "fullconn" {
                        p.fullconn = Some(v);
                    } else {
                        p.retries = Some(v);
                    }
                }
            }
            "timeout" => self.timeout(p, w, at),
            "log" => {
                if modifier == Modifier::No {
                    p.logs.clear();
                    return;
                }
                if a1 == "global" {
                    if self.too_many(w, 1, at) {
                        return;
                    }
                    p.logs.push(LogEntry::Global);
                } else if let Some(t) = self.log_target(w, at) {
                    p.logs.push(LogEntry::Target(t));
                }
            }
            "option" => self.option(p, w, at, modifier),
            "tcp-check" => self.tcp_check(p, w, at),
            "http-check" => self.http_check(p, w, at),
            "disabled" | "enabled" => {
                if !self.too_many(w, 0, at) {
                    p.disabled = k == "disabled";
                }
            }
            "id" | "description" if p.kind == Kind::Defaults => {
                self.diags.alert(at, format!("'{k}' not allowed in 'defaults' section"));
            }
            "description" => {
                if a1.is_empty() {
                    self.diags.alert(at, "'description' expects a string argument");
                }
            }
            "id" => {
                let (v, _) = atol(&a1);
                if a1.is_empty() {
                    self.diags.alert(at, "'id' expects an integer argument");
                } else if v <= 0 {
                    self.diags.alert(at, "custom id has to be > 0");
                }
            }
            "source" => self.proxy_source(p, w, at),
            "usesrc" => self.diags.alert(at, "'usesrc' only allowed after a 'source' statement"),
            "acl" if p.kind == Kind::Defaults && p.name.is_empty() => {
                self.diags
                    .alert(at, "'acl' not allowed in anonymous 'defaults' section");
            }
            other => {
                if let Some((_, why)) = kw::PROXY_REMOVED.iter().find(|(n, _)| *n == other) {
                    self.diags.alert(at, *why);
                } else if kw::PROXY_HTTP.contains(&other) {
                    self.diags.warn(
                        at,
                        format!("'{other}' is an HTTP directive: parsed past, not applied at layer 4"),
                    );
                } else if kw::PROXY_OTHER.contains(&other) {
                    self.diags
                        .warn(at, format!("'{other}': parsed past, not applied by lbxdp"));
                } else {
                    self.diags
                        .alert(at, format!("unknown keyword '{other}' in '{}' section", p.kind.word()));
                }
            }
        }
    }

    fn bind(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        if self.not_in_defaults(p, "bind", at) {
            return;
        }
        let ignored = self.lacks(p, true, false, "bind", at);
        let a1 = arg(w, 1);
        if a1.is_empty() {
            self.diags.alert(
                at,
                "'bind' expects {<path>|[addr1]:port1[-end1]}{,[addr]:port[-end]}... as arguments",
            );
            return;
        }
        let (listens, notes) = match addr::parse_bind(a1) {
            Ok(x) => x,
            Err(e) => {
                self.diags.alert(at, format!("'bind': {e}"));
                return;
            }
        };
        for n in notes {
            self.diags.warn(at, format!("'bind {a1}': {n}, as HAProxy does"));
        }
        let mut interface = None;
        let mut refused = Vec::new();
        let mut i = 2;
        while i < w.len() {
            let k = w[i].as_str();
            let v = arg(w, i + 1);
            if k == "interface" {
                if v.is_empty() {
                    self.diags.alert(at, "'bind': 'interface' expects an interface name");
                    return;
                }
                interface = Some(v.to_string());
                i += 2;
                continue;
            }
            match kw::BIND_OTHER.iter().find(|(n, _)| *n == k) {
                Some((_, n)) => {
                    let directive = format!("bind {a1}");
                    let refusal = kw::BIND_REFUSED.iter().find(|(r, _)| *r == k).map(|(_, what)| *what);
                    if !self.parse_past(&directive, k, v, *n, kw::BIND_FILES, refusal.is_none(), at) {
                        return;
                    }
                    if let Some(what) = refusal {
                        refused.push(refusal_at(at, directive, k, what));
                    }
                    i += 1 + n;
                }
                None => {
                    self.diags.alert(at, format!("'bind {a1}': unknown keyword '{k}'"));
                    return;
                }
            }
        }
        p.bind_lines += 1;
        if ignored {
            return;
        }
        self.out.refused.extend(refused);
        for l in listens {
            match l {
                addr::Listen::Inet(a) => p.binds.push(Bind {
                    addr: a,
                    interface: interface.clone(),
                    origin: at.clone(),
                }),
                addr::Listen::Other(o) => {
                    self.diags.warn(
                        at,
                        format!("'bind {o}': not a TCP/IP address, lbxdp does not balance it"),
                    );
                }
            }
        }
    }

    fn balance(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let a1 = arg(w, 1);
        let algo = a1.split('(').next().unwrap_or("");
        p.balance = match algo {
            "roundrobin" => Balance::RoundRobin,
            "static-rr" => Balance::StaticRr,
            "leastconn" => Balance::LeastConn,
            "first" => Balance::First,
            "source" => Balance::Source,
            "random" => {
                let draws = a1
                    .strip_prefix("random(")
                    .and_then(|r| r.strip_suffix(')'))
                    .map(|d| atol(d).0)
                    .unwrap_or(2);
                if draws < 1 {
                    self.diags.alert(at, "balance: 'random' number of draws must be > 0");
                    return;
                }
                Balance::Random(draws.min(i64::from(u32::MAX)) as u32)
            }
            "uri" | "url_param" | "hdr" | "rdp-cookie" | "hash" => {
                if algo == "hdr" && !a1.contains('(') || algo == "url_param" && arg(w, 2).is_empty() {
                    self.diags.alert(at, format!("balance: '{algo}' expects a name"));
                    return;
                }
                self.diags.warn(
                    at,
                    format!("balance {algo} is a layer-7 algorithm: lbxdp balances round robin"),
                );
                Balance::Layer7
            }
            _ => {
                self.diags.alert(
                    at,
                    "balance only supports 'roundrobin', 'static-rr', 'leastconn', 'first', 'source', 'random', \
                     'uri', 'url_param', 'hdr(name)', 'rdp-cookie(name)' and 'hash' options",
                );
                return;
            }
        };
    }

    fn timeout(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        let name = arg(w, 1);
        let (fe, be) = match name {
            "client" | "client-fin" => (true, false),
            "server" | "connect" | "check" | "queue" | "tunnel" | "server-fin" => (false, true),
            "http-keep-alive" | "http-request" | "tarpit" => (true, true),
            _ => {
                self.diags.alert(
                    at,
                    format!(
                        "'timeout' supports 'client', 'server', 'connect', 'check', 'queue', 'http-keep-alive', \
                         'http-request', 'tunnel', 'tarpit', 'client-fin' and 'server-fin' (got '{name}')"
                    ),
                );
                return;
            }
        };
        let v = arg(w, 2);
        if v.is_empty() {
            self.diags.alert(
                at,
                format!("'timeout {name}' expects an integer value (in milliseconds)"),
            );
            return;
        }
        let t = match time::parse_ms(v) {
            Ok(t) => t,
            Err(time::TimeError::BadChar(c)) => {
                self.diags.alert(
                    at,
                    format!("unexpected character '{c}' in 'timeout {name}' (units: us, ms, s, m, h, d; none is ms)"),
                );
                return;
            }
            Err(e) => {
                self.diags.alert(at, format!("'timeout {name} {v}': {e}"));
                return;
            }
        };
        if let Some(c) = t.trailing_junk {
            self.diags
                .warn(at, format!("unexpected character '{c}' after the timer value '{v}'"));
        }
        if let Some(extra) = w.get(3).filter(|x| !x.is_empty()) {
            self.diags.alert(
                at,
                format!("'timeout {name}': unexpected extra argument '{extra}' after value '{v}'"),
            );
            return;
        }
        if (fe && !be && !p.kind.fe()) || (be && !fe && !p.kind.be()) {
            self.diags.warn(
                at,
                format!(
                    "'timeout {name}' will be ignored because {} '{}' has no {} capability",
                    p.kind.word(),
                    p.name,
                    if be { "backend" } else { "frontend" }
                ),
            );
            return;
        }
        let t = Some(t.value);
        let tm = &mut p.timeouts;
        match name {
            "client" => tm.client = t,
            "client-fin" => tm.client_fin = t,
            "server" => tm.server = t,
            "connect" => tm.connect = t,
            "check" => tm.check = t,
            "queue" => tm.queue = t,
            "tunnel" => tm.tunnel = t,
            "server-fin" => tm.server_fin = t,
            _ => self.diags.warn(
                at,
                format!("'timeout {name}' is an HTTP timeout: not applied at layer 4"),
            ),
        }
    }

    fn option(&mut self, p: &mut Draft, w: &[String], at: &Origin, modifier: Modifier) {
        let name = arg(w, 1);
        if name.is_empty() {
            self.diags.alert(at, "'option' expects an option name");
            return;
        }
        let on = modifier == Modifier::Std;
        let (fe, be) = match name {
            "redispatch" | "allbackups" | "log-health-checks" | "httpchk" | "tcp-check" => (false, true),
            "tcplog" | "dontlognull" => (true, false),
            "tcpka" => (true, true),
            _ => (false, false),
        };
        if (fe || be) && self.lacks(p, fe, be, &format!("option {name}"), at) {
            return;
        }
        match name {
            "redispatch" => {
                let mut after = -1;
                if !arg(w, 2).is_empty() {
                    let (v, clean) = atol(arg(w, 2));
                    if !clean || v == 0 {
                        self.diags.alert(
                            at,
                            "'option redispatch' expects a non-zero integer as its only argument",
                        );
                        return;
                    }
                    after = v;
                }
                if !self.too_many_opt(w, 1, at) {
                    p.redispatch = on.then_some(after);
                }
            }
            "tcplog" | "dontlognull" | "tcpka" | "log-health-checks" | "allbackups" => {
                if self.too_many_opt(w, 0, at) {
                    return;
                }
                match name {
                    "tcplog" => p.tcplog = on,
                    "allbackups" => p.allbackups = on,
                    "dontlognull" => p.dontlognull = on,
                    "tcpka" => p.tcpka = on,
                    _ => p.log_health_checks = on,
                }
            }
            "httpchk" => {
                if modifier != Modifier::Std {
                    p.health = HealthCheck::Connect;
                    return;
                }
                // option httpchk [<method>] [<uri>] [<version>]; a lone word is the URI.
                let rest: Vec<&str> = w[2..].iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
                let (method, uri, version) = match rest.as_slice() {
                    [] => ("OPTIONS", "/", "HTTP/1.0"),
                    [uri] => ("OPTIONS", *uri, "HTTP/1.0"),
                    [m, uri] => (*m, *uri, "HTTP/1.0"),
                    [m, uri, v, ..] => (*m, *uri, *v),
                };
                let expect = match &p.health {
                    HealthCheck::Http { expect_status, .. } => expect_status.clone(),
                    _ => None,
                };
                p.health = HealthCheck::Http {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    version: version.to_string(),
                    expect_status: expect,
                };
                p.checks_inherited = false;
            }
            "tcp-check" => {
                if self.too_many_opt(w, 0, at) {
                    return;
                }
                if modifier != Modifier::Std {
                    p.health = HealthCheck::Connect;
                    return;
                }
                if !matches!(p.health, HealthCheck::TcpCheck(_)) {
                    p.health = HealthCheck::TcpCheck(Vec::new());
                }
            }
            other if kw::OPTIONS_REMOVED.contains(&other) => {
                self.diags
                    .alert(at, format!("option '{other}' is not supported any more"));
            }
            other => match kw::OPTIONS_OTHER.iter().find(|(n, _)| *n == other) {
                Some((_, true)) => {
                    self.diags.warn(
                        at,
                        format!("'option {other}' is an HTTP option: parsed past, not applied at layer 4"),
                    );
                }
                Some((_, false)) => {
                    self.diags
                        .warn(at, format!("'option {other}': parsed past, not applied by lbxdp"));
                }
                None => self.diags.alert(at, format!("unknown option '{other}'")),
            },
        }
    }

    fn too_many_opt(&mut self, w: &[String], max: usize, at: &Origin) -> bool {
        match w.get(max + 2).filter(|x| !x.is_empty()) {
            Some(extra) => {
                self.diags.alert(
                    at,
                    format!("'option {}' cannot handle unexpected argument '{extra}'", w[1]),
                );
                true
            }
            None => false,
        }
    }

    fn tcp_check_rules<'p>(&mut self, p: &'p mut Draft) -> &'p mut Vec<TcpCheckStep> {
        if p.checks_inherited || !matches!(p.health, HealthCheck::TcpCheck(_)) {
            // Rules of a proxy's own replace those from defaults (HAProxy 2.2+).
            if p.checks_inherited || matches!(p.health, HealthCheck::Connect) {
                p.health = HealthCheck::TcpCheck(Vec::new());
            }
            p.checks_inherited = false;
        }
        if !matches!(p.health, HealthCheck::TcpCheck(_)) {
            p.health = HealthCheck::TcpCheck(Vec::new());
        }
        match &mut p.health {
            HealthCheck::TcpCheck(rules) => rules,
            _ => unreachable!("set just above"),
        }
    }

    fn tcp_check(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        if self.lacks(p, false, true, "tcp-check", at) {
            return;
        }
        let action = arg(w, 1);
        let step = match action {
            "connect" => {
                let (mut port, mut addr_, mut send_proxy) = (None, None, false);
                let mut i = 2;
                while i < w.len() {
                    let v = arg(w, i + 1);
                    match w[i].as_str() {
                        "port" => {
                            let (n, clean) = atol(v);
                            if v.is_empty() || !clean || !(1..=65535).contains(&n) {
                                self.diags.alert(at, format!("'tcp-check connect': invalid port '{v}'"));
                                return;
                            }
                            port = Some(n as u16);
                            i += 1;
                        }
                        "addr" => match v.parse::<IpAddr>() {
                            Ok(ip) => {
                                addr_ = Some(ip);
                                i += 1;
                            }
                            Err(_) => {
                                self.diags.alert(
                                    at,
                                    format!("'tcp-check connect': 'addr' expects an IP address, got '{v}'"),
                                );
                                return;
                            }
                        },
                        "send-proxy" => send_proxy = true,
                        "default" | "via-socks4" | "ssl" | "linger" => {}
                        "sni" | "alpn" | "proto" | "comment" => i += 1,
                        other => {
                            self.diags.alert(
                                at,
                                format!("'tcp-check connect': unknown keyword '{other}' (expects 'comment', 'port', 'addr', 'send-proxy', 'via-socks4', 'ssl', 'sni', 'alpn', 'proto', 'linger' or 'default')"),
                            );
                            return;
                        }
                    }
                    i += 1;
                }
                TcpCheckStep::Connect {
                    port,
                    addr: addr_,
                    send_proxy,
                }
            }
            "send" | "send-lf" | "send-binary" | "send-binary-lf" => {
                let data = arg(w, 2);
                if data.is_empty() {
                    self.diags.alert(
                        at,
                        format!(
                            "'tcp-check {action}' expects a {} as argument",
                            if action.contains("binary") {
                                "binary string"
                            } else {
                                "string"
                            }
                        ),
                    );
                    return;
                }
                let mut i = 3;
                while i < w.len() {
                    if w[i] == "comment" {
                        i += 2;
                    } else {
                        self.diags
                            .alert(at, format!("'tcp-check {action}': unexpected argument '{}'", w[i]));
                        return;
                    }
                }
                if action.ends_with("-lf") {
                    self.diags.warn(
                        at,
                        format!("'tcp-check {action}': log-format strings are sent unexpanded by lbxdp"),
                    );
                }
                if action.starts_with("send-binary") {
                    match decode_hex(data) {
                        Some(b) => TcpCheckStep::Send(b),
                        None => {
                            self.diags.alert(
                                at,
                                format!("'tcp-check {action}': '{data}' is not a valid hexadecimal string"),
                            );
                            return;
                        }
                    }
                } else {
                    TcpCheckStep::Send(data.as_bytes().to_vec())
                }
            }
            "expect" => {
                let mut i = 2;
                let mut negate = false;
                let mut kind = None;
                let mut pattern = None;
                while i < w.len() && pattern.is_none() {
                    let k = w[i].as_str();
                    match k {
                        "!" => negate = true,
                        "min-recv" | "error-status" | "tout-status" | "ok-status" | "on-success" | "on-error"
                        | "status-code" | "comment" => {
                            if arg(w, i + 1).is_empty() {
                                self.diags
                                    .alert(at, format!("'tcp-check expect': '{k}' expects an argument"));
                                return;
                            }
                            i += 1;
                        }
                        "string" | "rstring" | "binary" | "rbinary" | "string-lf" | "binary-lf" => {
                            let v = arg(w, i + 1);
                            if v.is_empty() {
                                self.diags
                                    .alert(at, format!("'tcp-check expect {k}' expects <pattern> as an argument"));
                                return;
                            }
                            if (k == "binary") && decode_hex(v).is_none() {
                                self.diags.alert(
                                    at,
                                    format!("'tcp-check expect binary': '{v}' is not a valid hexadecimal string"),
                                );
                                return;
                            }
                            kind = Some(match k {
                                "rstring" => ExpectKind::Rstring,
                                "binary" | "binary-lf" => ExpectKind::Binary,
                                "rbinary" => ExpectKind::Rbinary,
                                _ => ExpectKind::String,
                            });
                            pattern = Some(v.to_string());
                            i += 1;
                        }
                        other => {
                            self.diags.alert(
                                at,
                                format!("'tcp-check expect': unknown keyword '{other}' (expects 'string', 'rstring', 'binary', 'rbinary', 'string-lf', 'binary-lf', 'min-recv', 'comment', 'ok-status', 'error-status', 'tout-status', 'on-success', 'on-error', 'status-code' or '!')"),
                            );
                            return;
                        }
                    }
                    i += 1;
                }
                let (Some(kind), Some(pattern)) = (kind, pattern) else {
                    self.diags.alert(
                        at,
                        "'tcp-check expect': expects a match type ('string', 'rstring', 'binary', ...) and a pattern",
                    );
                    return;
                };
                TcpCheckStep::Expect { negate, kind, pattern }
            }
            "comment" | "set-var" | "set-var-fmt" | "unset-var" => {
                if arg(w, 2).is_empty() {
                    self.diags
                        .alert(at, format!("'tcp-check {action}' expects an argument"));
                }
                return;
            }
            other => {
                self.diags.alert(
                    at,
                    format!("'tcp-check' only supports 'comment', 'connect', 'send', 'send-binary', 'expect', 'set-var' and 'unset-var' (got '{other}')"),
                );
                return;
            }
        };
        self.tcp_check_rules(p).push(step);
    }

    /// A `bind` or `server` keyword that lbxdp knows but does not apply:
    /// its argument is checked, a file it names is checked later as HAProxy
    /// would, and a warning says it is not applied (unless `warn` is false:
    /// a keyword refused at run time says so itself). False: an alert was raised.
    #[allow(clippy::too_many_arguments)]
    fn parse_past(
        &mut self,
        who: &str,
        k: &str,
        v: &str,
        takes: usize,
        files: &[&str],
        warn: bool,
        at: &Origin,
    ) -> bool {
        if takes == 1 && v.is_empty() {
            self.diags.alert(at, format!("'{who}': '{k}' expects an argument"));
            return false;
        }
        if files.contains(&k) {
            self.out.global.env_refs.push(EnvRef {
                kind: EnvRefKind::File,
                value: v.to_string(),
                origin: at.clone(),
            });
        }
        if warn {
            self.diags
                .warn(at, format!("'{who}': '{k}' is parsed past, not applied by lbxdp"));
        }
        true
    }

    /// A proxy's `source <addr>[:<port>] [usesrc ...] [interface ...]`
    /// (HAProxy allows no port range here). It replaces the one inherited
    /// from defaults, options included, as in HAProxy.
    fn proxy_source(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
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

    fn http_check(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
        if self.lacks(p, false, true, "http-check", at) {
            return;
        }
        match arg(w, 1) {
            "expect" => {
                let mut i = 2;
                let negate = arg(w, i) == "!";
                if negate {
                    i += 1;
                }
                let what = arg(w, i);
                let pattern = arg(w, i + 1);
                match what {
                    "status" | "rstatus" | "string" | "rstring" | "hdr" | "fhdr" => {}
                    _ => {
                        self.diags.alert(
                            at,
                            format!("'http-check expect': unknown keyword '{what}' (expects 'status', 'rstatus', 'string', 'rstring', 'hdr' or 'fhdr')"),
                        );
                        return;
                    }
                }
                if pattern.is_empty() {
                    self.diags.alert(at, format!("'http-check expect {what}' expects <pattern> as an argument"));
                    return;
                }
                if what == "status" {
                    let expect = StatusExpect {
                        negate,
                        codes: pattern.to_string(),
                    };
                    if let HealthCheck::Http { expect_status, .. } = &mut p.health {
                        *expect_status = Some(expect);
                    } else {
                        p.health = HealthCheck::Http {
                            method: "OPTIONS".into(),
                            uri: "/".into(),
                            version: "HTTP/1.0".into(),
                            expect_status: Some(expect),
                        };
                        self.diags.warn(at, "'http-check expect' without 'option httpchk': HTTP checks are enabled as HAProxy does");
                    }
                } else {
                    self.diags.warn(at, format!("'http-check expect {what}': only 'status' is applied by lbxdp"));
                }
            }
            "send" | "connect" | "comment" | "set-var" | "set-var-fmt" | "unset-var" | "disable-on-404"
            | "send-state" => {
                self.diags.warn(at, format!("'http-check {}': parsed past, not applied by lbxdp", arg(w, 1)));
            }
            other => self.diags.alert(
                at,
                format!("'http-check' only supports 'comment', 'connect', 'disable-on-404', 'expect', 'send', 'send-state', 'set-var' and 'unset-var' (got '{other}')"),
            ),
        }
    }

    fn server(&mut self, p: &mut Draft, w: &[String], at: &Origin) {
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
                p.server_index.insert(name.clone(), p.servers.len());
                p.servers.push(ServerDraft {
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

fn refusal_at(at: &Origin, directive: String, keyword: &str, what: Unsupported) -> Refusal {
    Refusal {
        origin: at.clone(),
        directive,
        keyword: keyword.to_string(),
        what,
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

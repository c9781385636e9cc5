//! Sections and keywords: lines in, proxy drafts and the global section out.
//! Like HAProxy, a proxy starts as a copy of the defaults section in force,
//! and its own keywords then override what it inherited. The keywords live
//! where HAProxy's manual puts them: `global`, proxies, checks, servers.
mod acl;
mod actions;
mod checks;
mod fetch;
mod global;
mod http_rules;
mod log;
mod proxies;
mod regex;
mod rulesets;
mod sample;
mod servers;
mod stats;
mod stick;
mod tcp_request;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use super::{
    Source,
    acl::{Acl, Cond, TcpRule},
    cond,
    diag::{Diags, Origin},
    keywords::{self as kw, invalid_name_char},
    lex::{self, LexError, Vars},
    model::{Balance, Bind, EnvRef, EnvRefKind, Global, HashType, HealthCheck, LogTarget, Mode, Refusal, Unsupported},
};
use servers::{ServerDraft, ServerOpts, SourceDraft};
pub(super) use stats::{StatsDraft, exporter_only};

/// HAProxy stops reading a file after this many fatal errors.
const MAX_FATAL_PER_FILE: usize = 50;
/// Keeps a huge file of harmless-but-unapplied lines from flooding the output.
const MAX_WARNINGS_PER_FILE: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Defaults,
    Frontend,
    Backend,
    Listen,
}

impl Kind {
    pub(super) fn fe(self) -> bool {
        !matches!(self, Kind::Backend)
    }
    pub(super) fn be(self) -> bool {
        !matches!(self, Kind::Frontend)
    }
    pub(super) fn word(self) -> &'static str {
        match self {
            Kind::Defaults => "defaults",
            Kind::Frontend => "frontend",
            Kind::Backend => "backend",
            Kind::Listen => "listen",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Timeouts {
    pub(super) client: Option<Duration>,
    pub(super) client_fin: Option<Duration>,
    pub(super) connect: Option<Duration>,
    pub(super) server: Option<Duration>,
    pub(super) queue: Option<Duration>,
    pub(super) check: Option<Duration>,
    pub(super) tunnel: Option<Duration>,
    pub(super) server_fin: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum LogEntry {
    Global,
    Target(LogTarget),
}

#[derive(Debug, Clone)]
pub(super) struct Draft {
    pub(super) kind: Kind,
    pub(super) name: String,
    pub(super) origin: Origin,
    pub(super) mode: Mode,
    /// A frontend's or listen's own `mode http` line: warned about when
    /// resolving, unless the agent serves the section itself.
    pub(super) mode_http_at: Option<Origin>,
    pub(super) binds: Vec<Bind>,
    /// Any `bind` line, including sockets lbxdp can't balance (UNIX, fd@).
    pub(super) bind_lines: usize,
    pub(super) default_backend: Option<(String, Origin)>,
    /// (backend, its condition, where), in order.
    pub(super) use_backends: Vec<(String, Option<Cond>, Origin)>,
    /// Named and anonymous ACLs; conditions point into this list.
    pub(super) acls: Vec<Acl>,
    /// Per entry of `acls`, per line: its fetch keyword and where HAProxy can
    /// use it (for HAProxy's "will never match" warnings).
    pub(super) acl_uses: Vec<Vec<(String, u32)>>,
    /// Names of `acls` entries: a new line of a known name adds to it.
    pub(super) acl_names: HashMap<String, usize>,
    /// HAProxy's predefined ACLs (`TRUE`, `LOCALHOST`...) once used.
    pub(super) builtin_acls: HashMap<String, usize>,
    /// `tcp-request connection` rules lbxdp applies, in order.
    pub(super) tcp_rules: Vec<TcpRule>,
    /// `log-format`-like lines (keyword, format, where), own or from
    /// defaults, checked once the mode is known (`finish`).
    pub(super) log_formats: Vec<(String, String, Origin)>,
    /// The servers `use-server` rules name, looked up when resolving.
    pub(super) use_servers: Vec<(String, Origin)>,
    /// Fetch and action arguments that name a proxy or a table, checked when resolving.
    pub(super) arg_refs: Vec<ArgRef>,
    /// The section's `stick-table`.
    pub(super) stick_table: Option<super::stick::StickTable>,
    /// A (named) defaults section with TCP or HTTP rules: HAProxy runs them
    /// before the proxy's own, and lets either frontends or backends
    /// inherit them, never both, nor a listen section.
    pub(super) defines_rules: bool,
    /// Of a defaults section with rules: whether a frontend, a backend inherited it.
    pub(super) rules_inherited: (bool, bool),
    pub(super) balance: Balance,
    pub(super) hash_type: HashType,
    pub(super) maxconn: Option<u32>,
    pub(super) fullconn: Option<u32>,
    pub(super) retries: Option<u32>,
    pub(super) redispatch: Option<i64>,
    pub(super) allbackups: bool,
    pub(super) tcplog: bool,
    pub(super) dontlognull: bool,
    pub(super) tcpka: bool,
    pub(super) log_health_checks: bool,
    pub(super) timeouts: Timeouts,
    pub(super) logs: Vec<LogEntry>,
    /// `log-tag`, own or from defaults.
    pub(super) log_tag: Option<String>,
    pub(super) health: HealthCheck,
    /// tcp-check rules inherited from defaults are replaced, not extended.
    pub(super) checks_inherited: bool,
    pub(super) defsrv: ServerOpts,
    /// The proxy's `source` (its own, else its defaults'); a server's wins.
    pub(super) source: Option<SourceDraft>,
    pub(super) servers: Vec<ServerDraft>,
    /// Server name to its index in `servers`: duplicates are found in O(1).
    server_index: HashMap<String, usize>,
    /// Server `id`s in use, to the server's index: HAProxy refuses duplicates.
    server_ids: HashMap<u32, usize>,
    pub(super) disabled: bool,
    /// The `id` line: HAProxy's proxy id, else one is assigned when resolving.
    pub(super) id: Option<u32>,
    /// `stats` keywords, own or from defaults (see `StatsDraft`).
    pub(super) stats: Option<StatsDraft>,
    /// `http-request use-service prometheus-exporter if { path P }`.
    pub(super) prometheus: Option<(String, Origin)>,
    /// What the section's exporter rules ask that lbxdp can't do;
    /// refused only if the page is served (HAProxy ignores it in TCP mode).
    pub(super) exporter_refused: Vec<Refusal>,
}

impl Draft {
    fn new(kind: Kind, name: &str, origin: Origin) -> Self {
        Self {
            kind,
            name: name.to_string(),
            origin,
            mode: Mode::Tcp,
            mode_http_at: None,
            binds: Vec::new(),
            bind_lines: 0,
            default_backend: None,
            use_backends: Vec::new(),
            acls: Vec::new(),
            acl_uses: Vec::new(),
            acl_names: HashMap::new(),
            builtin_acls: HashMap::new(),
            tcp_rules: Vec::new(),
            log_formats: Vec::new(),
            use_servers: Vec::new(),
            arg_refs: Vec::new(),
            stick_table: None,
            defines_rules: false,
            rules_inherited: (false, false),
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
            log_tag: None,
            health: HealthCheck::Connect,
            checks_inherited: false,
            defsrv: ServerOpts::default(),
            source: None,
            servers: Vec::new(),
            server_index: HashMap::new(),
            server_ids: HashMap::new(),
            disabled: false,
            id: None,
            stats: None,
            prometheus: None,
            exporter_refused: Vec::new(),
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
        p.log_tag = d.log_tag.clone();
        p.health = d.health.clone();
        p.checks_inherited = !matches!(d.health, HealthCheck::Connect);
        p.defsrv = d.defsrv.clone();
        p.source = d.source.clone();
        p.disabled = d.disabled;
        p.log_formats = d.log_formats.clone();
        p.stats = d.stats.clone().map(StatsDraft::inherited);
        // The defaults' rules run first, on the defaults' own ACLs (whose
        // names the proxy doesn't see: `acl_names` stays empty).
        if kind.fe() {
            p.acls = d.acls.clone();
            p.acl_uses = d.acl_uses.clone();
            p.tcp_rules = d.tcp_rules.clone();
        }
        p
    }
}

/// What a fetch's or action's argument names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefKind {
    Backend,
    Frontend,
    Table,
    /// `track-scN [table T]`: a table, worded as HAProxy words it there.
    Track,
    /// `stick on|match|store-* ... [table T]`.
    StickRule,
}

/// A name an argument gives, resolved once every proxy is known.
#[derive(Debug, Clone)]
pub(super) struct ArgRef {
    pub(super) kind: RefKind,
    /// The fetch keyword (`nbsrv`) or action (`track-sc0`).
    pub(super) keyword: String,
    pub(super) target: String,
    pub(super) origin: Origin,
}

#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) global: Global,
    pub(super) proxies: Vec<Draft>,
    /// `bind` lines that ask for what lbxdp doesn't do (server lines' are
    /// gathered per server when resolving, where inheritance is known).
    pub(super) refused: Vec<Refusal>,
    /// The files `acl ... -f` read.
    pub(super) pattern_files: Vec<String>,
    /// HAProxy's pattern references, in the order it makes them.
    pub(super) pattern_refs: Vec<crate::config::patref::PatRef>,
    /// How many proxies were declared before the first global `stats`
    /// line that makes HAProxy's CLI frontend, which takes a proxy id.
    pub(super) cli_slot: Option<usize>,
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

pub(super) struct Parser<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    /// Reads the pattern files `acl ... -f` names.
    read: &'e dyn Fn(&str) -> Option<Vec<u8>>,
    /// Resolves a host name to an IPv4 address, as HAProxy's `str2net()`
    /// does for the patterns of `-m ip` ACLs (`src localhost`).
    resolve: &'e dyn Fn(&str) -> Option<std::net::Ipv4Addr>,
    pub(super) diags: Diags,
    pub(super) out: Parsed,
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
    /// Proxy ids given with `id`, to the proxy that has it: HAProxy refuses duplicates.
    proxy_ids: HashMap<u32, (Kind, String, Origin)>,
    /// A global `expose-experimental-directives` was read: HAProxy then
    /// takes experimental actions (`normalize-uri`) after it.
    experimental: bool,
    /// The sections lbxdp parses past (`userlist`, `resolvers`, `cache`...),
    /// as (kind, name): rules name them, and HAProxy checks the names.
    other_sections: Vec<(String, String)>,
    /// Names rules give to such sections, checked once every line is read.
    section_refs: Vec<SectionRef>,
}

/// A rule's reference to a `userlist`, `resolvers` or `cache` section.
struct SectionRef {
    kind: &'static str,
    name: String,
    /// HAProxy's alert when there is no such section.
    missing: String,
    origin: Origin,
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
    pub(super) fn new(
        env: &'e dyn Fn(&str) -> Option<String>,
        read: &'e dyn Fn(&str) -> Option<Vec<u8>>,
        resolve: &'e dyn Fn(&str) -> Option<std::net::Ipv4Addr>,
    ) -> Self {
        Self {
            env,
            read,
            resolve,
            diags: Diags::default(),
            out: Parsed::default(),
            defaults: Vec::new(),
            last_defaults: None,
            explicit_refs: HashSet::new(),
            implicit_refs: HashSet::new(),
            defaults_index: HashMap::new(),
            proxy_index: HashMap::new(),
            proxy_ids: HashMap::new(),
            experimental: false,
            other_sections: Vec::new(),
            section_refs: Vec::new(),
        }
    }

    /// Reads one file. Sections don't continue into the next file, as in
    /// HAProxy; the defaults in force do.
    pub(super) fn feed(&mut self, src: &Source<'_>) {
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
                self.other_sections.push((s.to_string(), section_name.clone()));
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
        if let Some(d) = base.and_then(|i| self.defaults.get_mut(i)).filter(|d| d.defines_rules) {
            let (fe, be) = &mut d.rules_inherited;
            if kind == Kind::Listen {
                self.diags.alert(
                    at,
                    "a listen section cannot inherit from a defaults section defining TCP/HTTP rules.",
                );
            } else if kind != Kind::Defaults {
                *fe |= kind == Kind::Frontend;
                *be |= kind == Kind::Backend;
                if *fe && *be {
                    let msg = format!(
                        "frontends and backends cannot inherit from the same defaults section if it defines TCP/HTTP \
                         rules (defaults section at {}).",
                        d.origin
                    );
                    self.diags.alert(at, msg);
                }
            }
        }
        let draft = match base {
            Some(i) => Draft::inherit(kind, name, at.clone(), &self.defaults[i]),
            None => Draft::new(kind, name, at.clone()),
        };
        if let Some(d) = base.and_then(|i| self.defaults.get(i))
            && kind.fe()
        {
            // The inherited ACLs keep their places: `add acl` on their
            // references reaches this proxy's copies too.
            let from = acl::expr_owner(d);
            for r in &mut self.out.pattern_refs {
                let heirs: Vec<_> = r
                    .feeds
                    .iter()
                    .filter(|f| f.proxy == from)
                    .map(|f| crate::config::patref::ExprAt {
                        proxy: draft.name.clone(),
                        ..f.clone()
                    })
                    .collect();
                r.feeds.extend(heirs);
            }
        }
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
}

fn refusal_at(at: &Origin, directive: String, keyword: &str, what: Unsupported) -> Refusal {
    Refusal {
        origin: at.clone(),
        directive,
        keyword: keyword.to_string(),
        what,
    }
}

//! HAProxy 2.6's CLI grammar, as the stats socket reads it: a line holds
//! commands separated by `;`, words split on spaces and tabs, a backslash
//! escapes the next character. Answers and errors are HAProxy's texts, byte
//! for byte: scripts and tools (hatop, exporters) match on them.
//!
//! Pure: a [`Session`] turns one command into a [`Step`]; the socket does
//! the I/O and asks the agent loop.
use std::time::Duration;

use super::command::{AdminState, Command, ForcedHealth, StatFilter, Weight};
use crate::{
    config::{CliLevel, Config, time},
    health::ServerId,
};

/// HAProxy reads a request line into a 16 kB buffer: a line of this many
/// bytes or more, newline included, closes the connection unanswered.
pub const MAX_LINE: usize = 16384;

/// HAProxy's MAX_CLI_ARGS: words past this many are dropped.
const MAX_ARGS: usize = 64;

/// HAProxy's CLI_MAX_MATCHES: how many fuzzy suggestions an unknown command gets.
const MAX_MATCHES: usize = 5;

/// HAProxy's `stats timeout` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a command asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The agent loop answers; see [`frame`].
    Ask(Command),
    /// The listener answers this text as is (it ends as HAProxy ends it).
    Answer(String),
    /// Close the connection without a word.
    Quit,
}

/// One client's state: its level, prompt mode and idle timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub level: CliLevel,
    pub interactive: bool,
    pub timeout: Duration,
}

/// A command's keywords and the line `help` shows for it. HAProxy sorts
/// help lines by their text; this table is kept in that order. The master
/// CLI has a table of its own (`master::cli`).
pub(crate) struct Keyword {
    pub(crate) words: &'static [&'static str],
    pub(crate) usage: &'static str,
    /// The level its parser demands; lower levels get "Permission denied".
    pub(crate) level: CliLevel,
}

const KEYWORDS: &[Keyword] = &[
    // HAProxy 2.6 lets every level use the ACL commands.
    Keyword {
        words: &["add", "acl"],
        usage: "add acl [@<ver>] <acl> <pattern>        : add an acl entry",
        level: CliLevel::User,
    },
    Keyword {
        words: &["clear", "acl"],
        usage: "clear acl [@<ver>] <acl>                : clear the contents of this acl",
        level: CliLevel::User,
    },
    Keyword {
        words: &["clear", "table"],
        usage: "clear table <table> [<filter>]*         : remove an entry from a table (filter: data/key)",
        level: CliLevel::User,
    },
    Keyword {
        words: &["del", "acl"],
        usage: "del acl <acl> [<key>|#<ref>]            : delete acl entries matching <key>",
        level: CliLevel::User,
    },
    Keyword {
        words: &["disable", "health"],
        usage: "disable health                          : disable health checks",
        level: CliLevel::Admin,
    },
    Keyword {
        words: &["disable", "server"],
        usage: "disable server (DEPRECATED)             : disable a server for maintenance (use 'set server' instead)",
        level: CliLevel::Admin,
    },
    Keyword {
        words: &["enable", "health"],
        usage: "enable health                           : enable health checks",
        level: CliLevel::Admin,
    },
    Keyword {
        words: &["enable", "server"],
        usage: "enable server  (DEPRECATED)             : enable a disabled server (use 'set server' instead)",
        level: CliLevel::Admin,
    },
    Keyword {
        words: &["get", "weight"],
        usage: "get weight <bk>/<srv>                   : report a server's current weight",
        level: CliLevel::User,
    },
    Keyword {
        words: &["operator"],
        usage: "operator                                : lower the level of the current CLI session to operator",
        level: CliLevel::Operator,
    },
    Keyword {
        words: &["set", "server"],
        usage: "set server <bk>/<srv> [opts]            : change a server's state, weight or health",
        level: CliLevel::Admin,
    },
    Keyword {
        words: &["set", "timeout"],
        usage: "set timeout [cli] <delay>               : change a timeout setting",
        level: CliLevel::User,
    },
    Keyword {
        words: &["set", "weight"],
        usage: "set weight <bk>/<srv>  (DEPRECATED)     : change a server's weight (use 'set server' instead)",
        level: CliLevel::Admin,
    },
    Keyword {
        words: &["show", "acl"],
        usage: "show acl [@<ver>] <acl>]                : report available acls or dump an acl's contents",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "backend"],
        usage: "show backend                            : list backends in the current running config",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "cli", "level"],
        usage: "show cli level                          : display the level of the current CLI session",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "info"],
        usage: "show info                               : report information about the running process",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "servers", "state"],
        usage: "show servers state [<backend>]          : dump volatile server information (all or for a single backend)",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "sess"],
        usage: "show sess                               : report the list of current sessions",
        level: CliLevel::Operator,
    },
    Keyword {
        words: &["show", "stat"],
        usage: "show stat [<px> <type> <sid>] [no-maint|up]*: report counters for each proxy and server",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "table"],
        usage: "show table <table> [<filter>]*          : report table usage stats or dump this table's contents (filter: data/key)",
        level: CliLevel::User,
    },
    Keyword {
        words: &["user"],
        usage: "user                                    : lower the level of the current CLI session to user",
        level: CliLevel::User,
    },
];

/// Keywords without a help line of their own: the help text always ends with them.
const BUILTIN: &[&str] = &["help", "prompt", "quit"];
const BUILTIN_USAGE: &str = "  help [<command>]                        : list matching or all commands\n  prompt                                  : toggle interactive mode with prompt\n  quit                                    : disconnect\n";

impl Session {
    pub fn new(level: CliLevel, timeout: Duration) -> Self {
        Self {
            level,
            interactive: false,
            timeout,
        }
    }

    /// One command (a piece of a line between `;`), already split from its neighbours.
    pub fn step(&mut self, command: &str, config: &Config) -> Step {
        let args = words(command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let first = args.first().copied().unwrap_or("");
        if BUILTIN.contains(&first) {
            return match first {
                "help" => Step::Answer(usage(KEYWORDS, &args, true)),
                "prompt" => {
                    self.interactive = !self.interactive;
                    done()
                }
                _ => Step::Quit,
            };
        }
        let Some(kw) = KEYWORDS
            .iter()
            .find(|k| k.words.len() <= args.len() && k.words.iter().zip(&args).all(|(a, b)| a == b))
        else {
            return Step::Answer(usage(KEYWORDS, &args, false));
        };
        if self.level < kw.level {
            return Step::Answer("Permission denied\n\n".into());
        }
        let rest = &args[kw.words.len()..];
        let arg = |i: usize| rest.get(i).copied().unwrap_or("");
        match kw.words {
            ["operator"] => self.lower(CliLevel::Operator),
            ["user"] => self.lower(CliLevel::User),
            ["show", "cli", "level"] => {
                let name = match self.level {
                    CliLevel::User => "user",
                    CliLevel::Operator => "operator",
                    CliLevel::Admin => "admin",
                };
                Step::Answer(format!("{name}\n\n"))
            }
            ["set", "timeout"] => self.set_timeout(arg(0), arg(1)),
            ["show", "info"] => refuse_formats(rest, "show info").unwrap_or(Step::Ask(Command::ShowInfo)),
            ["show", "stat"] => show_stat(rest, config),
            ["show", "servers", "state"] => match arg(0) {
                "" => Step::Ask(Command::ShowServersState(None)),
                be if config.backend(be).is_some() => Step::Ask(Command::ShowServersState(Some(be.into()))),
                _ => error("Can't find backend."),
            },
            ["show", "backend"] => Step::Ask(Command::ShowBackend),
            ["show", "sess"] => Step::Ask(Command::ShowSess),
            ["show", "table"] => self.table(false, rest, config),
            [verb @ ("show" | "add" | "del" | "clear"), "acl"] => match super::acl::parse(verb, rest) {
                Ok(req) => Step::Ask(Command::Acl(req)),
                Err(e) => Step::Answer(format!("{e}\n")),
            },
            ["clear", "table"] => self.table(true, rest, config),
            ["get", "weight"] => server(arg(0), config).map_or_else(|e| e, |id| Step::Ask(Command::GetWeight(id))),
            ["disable", "server"] => server_then(arg(0), config, |id| Command::SetState(id, AdminState::Maint)),
            ["enable", "server"] => server_then(arg(0), config, |id| Command::SetState(id, AdminState::Ready)),
            ["disable", "health"] => server_then(arg(0), config, |id| Command::SetChecks(id, false)),
            ["enable", "health"] => server_then(arg(0), config, |id| Command::SetChecks(id, true)),
            ["set", "weight"] => match server(arg(0), config) {
                Ok(id) => weight(arg(1)).map_or_else(|e| e, |w| Step::Ask(Command::SetWeight(id, w))),
                Err(e) => e,
            },
            ["set", "server"] => match server(arg(0), config) {
                Ok(id) => set_server(id, arg(1), arg(2)),
                Err(e) => e,
            },
            _ => Step::Answer(usage(KEYWORDS, &args, false)),
        }
    }

    /// HAProxy's `cli_parse_table_req()`: `show|clear table [NAME [key K |
    /// data.<type> <op> <value> ...]]`, checked against the configuration.
    fn table(&self, clear: bool, args: &[&str], config: &Config) -> Step {
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        let misuse = if clear {
            "Required arguments: <table> \"data.<store_data_type>\" <operator> <value> or <table> key <key>"
        } else {
            "Optional argument only supports \"data.<store_data_type>\" <operator> <value> and key <key>"
        };
        let contents = self.level >= CliLevel::Operator;
        let mut select = crate::stick::Select::default();
        let name = arg(0);
        if name.is_empty() {
            if clear {
                return error(misuse);
            }
            return Step::Ask(Command::Table(super::TableRequest {
                clear,
                name: None,
                select,
                contents,
            }));
        }
        let Some(table) = config.table(name) else {
            return error("No such table");
        };
        match arg(1) {
            "key" => {
                if arg(2).is_empty() {
                    return error("Key value expected");
                }
                match crate::stick::show::parse_key(arg(2), table.key) {
                    Ok(k) => select.key = Some(k),
                    Err(e) => return error(e.trim_end()),
                }
                // HAProxy says nothing to a client below operator here.
                if !contents {
                    return done();
                }
            }
            a if a.starts_with("data.") => match crate::stick::show::parse_filters(&args[1..], &table.store) {
                Ok(f) => select.filters = f,
                Err(e) => return error(e.trim_end()),
            },
            "" => {}
            _ => return error(misuse),
        }
        if clear && !contents {
            return done();
        }
        Step::Ask(Command::Table(super::TableRequest {
            clear,
            name: Some(name.to_string()),
            select,
            contents,
        }))
    }

    fn lower(&mut self, to: CliLevel) -> Step {
        // The keyword's own level already refused a raise.
        self.level = self.level.min(to);
        done()
    }

    fn set_timeout(&mut self, what: &str, value: &str) -> Step {
        if what != "cli" {
            return error("'set timeout' only supports 'cli'.");
        }
        if value.is_empty() {
            return error("Expects an integer value.");
        }
        match timeout_secs(value) {
            Some(secs) => {
                self.timeout = Duration::from_secs(secs);
                done()
            }
            None => error("Invalid timeout value."),
        }
    }
}

/// What the listener writes for the loop's answer to a CLI command: HAProxy
/// ends every answer with an empty line (an answer with no text is just that
/// line), so the loop may reply with or without it.
pub fn frame(reply: &str) -> String {
    let mut out = reply.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if out != "\n" && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out
}

/// Splits a request line into its commands at each `;` a backslash doesn't
/// escape (the backslash stays: [`words`] removes it), as HAProxy does.
pub fn split_commands(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            ';' => {
                out.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&line[start..]);
    out
}

/// A command's words: split on spaces and tabs, a backslash makes the next
/// character part of the word (`\ `, `\;`, `\\`).
pub fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = command.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() || out.len() == MAX_ARGS {
            return out;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '\t') {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    word.push(escaped);
                }
            } else {
                word.push(c);
            }
        }
        out.push(word);
    }
}

fn done() -> Step {
    Step::Answer("\n".into())
}

/// HAProxy's `cli_err()`: the message, its newline, the closing empty line.
fn error(message: &str) -> Step {
    Step::Answer(format!("{message}\n\n"))
}

/// `typed` and `json` need HAProxy's field natures and schema, which lbxdp
/// doesn't render: saying so beats answering CSV to a parser expecting JSON.
fn refuse_formats(args: &[&str], what: &str) -> Option<Step> {
    let format = args.iter().find(|a| **a == "typed" || **a == "json")?;
    Some(error(&format!(
        "lbxdp answers '{what}' in its default text format only; '{format}' is not supported."
    )))
}

fn show_stat(args: &[&str], config: &Config) -> Step {
    let mut filter = StatFilter::default();
    let mut flags = args;
    if let [px, types, sid, rest @ ..] = args {
        let iid = proxy_id(px, config).unwrap_or_else(|| atoi(px));
        if iid == 0 {
            return error("No such proxy.");
        }
        filter.iid = iid;
        filter.types = atoi(types);
        filter.sid = atoi(sid);
        flags = rest;
    }
    if let Some(refusal) = refuse_formats(flags, "show stat") {
        return refusal;
    }
    filter.hide_down = flags.contains(&"up");
    filter.hide_maint = flags.contains(&"no-maint");
    Step::Ask(Command::ShowStat(filter))
}

fn proxy_id(name: &str, config: &Config) -> Option<i64> {
    let frontends = config.frontends.iter().map(|f| (&f.name, f.id));
    let backends = config.backends.iter().map(|b| (&b.name, b.id));
    frontends
        .chain(backends)
        .find(|(n, _)| *n == name)
        .map(|(_, id)| i64::from(id))
}

/// C's atoi(): leading blanks, a sign, digits; anything else ends it (0 when none).
fn atoi(text: &str) -> i64 {
    strtol(text).map_or(0, |(v, _)| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)))
}

/// C's strtol() in base 10: the value (saturated) and the unread rest, or
/// None when no digit was read.
fn strtol(text: &str) -> Option<(i64, &str)> {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let magnitude = unsigned[..digits].bytes().fold(0i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some((if negative { -magnitude } else { magnitude }, &unsigned[digits..]))
}

/// HAProxy's `get_backend_server()`: `B/S`, then the backend, then the server.
fn server(arg: &str, config: &Config) -> Result<ServerId, Step> {
    let Some((be, srv)) = arg.split_once('/').filter(|(b, s)| !b.is_empty() && !s.is_empty()) else {
        return Err(error("Require 'backend/server'."));
    };
    let Some(backend) = config.backend(be) else {
        return Err(error("No such backend."));
    };
    if !backend.servers.iter().any(|s| s.name == srv) {
        return Err(error("No such server."));
    }
    Ok(ServerId::new(be, srv))
}

fn server_then(arg: &str, config: &Config, command: impl FnOnce(ServerId) -> Command) -> Step {
    server(arg, config).map_or_else(|e| e, |id| Step::Ask(command(id)))
}

fn set_server(id: ServerId, what: &str, value: &str) -> Step {
    match what {
        "weight" => weight(value).map_or_else(|e| e, |w| Step::Ask(Command::SetWeight(id, w))),
        "state" => match value {
            "ready" => Step::Ask(Command::SetState(id, AdminState::Ready)),
            "drain" => Step::Ask(Command::SetState(id, AdminState::Drain)),
            "maint" => Step::Ask(Command::SetState(id, AdminState::Maint)),
            _ => error("'set server <srv> state' expects 'ready', 'drain' and 'maint'."),
        },
        "health" => match value {
            "up" => Step::Ask(Command::SetHealth(id, ForcedHealth::Up)),
            "stopping" => Step::Ask(Command::SetHealth(id, ForcedHealth::Stopping)),
            "down" => Step::Ask(Command::SetHealth(id, ForcedHealth::Down)),
            _ => error("'set server <srv> health' expects 'up', 'stopping', or 'down'."),
        },
        // HAProxy's text lists addr, agent, fqdn, ssl...: lbxdp names what it does.
        _ => error("usage: set server <backend>/<server> health | state | weight"),
    }
}

/// HAProxy's `server_parse_weight_change_request()`, up to what needs the
/// server (scaling a percentage, static algorithms): the loop does that.
fn weight(text: &str) -> Result<Weight, Step> {
    if text.is_empty() {
        return Err(error("Require <weight> or <weight%>."));
    }
    // Two of HAProxy's messages lack their newline; the closing line follows.
    let Some((w, rest)) = strtol(text) else {
        return Err(Step::Answer(
            "Empty weight string empty or preceded by garbage\n".into(),
        ));
    };
    if rest == "%" {
        if w < 0 {
            return Err(error("Relative weight must be positive."));
        }
        // HAProxy caps the percentage so iweight * w can't overflow.
        return Ok(Weight::Percent(w.min(25_600) as u32));
    }
    if !(0..=256).contains(&w) {
        return Err(error("Absolute weight can only be between 0 and 256 inclusive."));
    }
    if !rest.is_empty() {
        return Err(Step::Answer("Trailing garbage in weight string\n".into()));
    }
    Ok(Weight::Absolute(w as u32))
}

/// `set timeout cli <delay>`: seconds unless a unit says otherwise, at least one.
fn timeout_secs(text: &str) -> Option<u64> {
    let ms = if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().ok()?;
        secs.checked_mul(1000)?
    } else {
        let parsed = time::parse_ms(text).ok()?;
        if parsed.trailing_junk.is_some() {
            return None;
        }
        parsed.value.as_millis() as u64
    };
    (1000..=time::MAX_MS).contains(&ms).then_some(ms / 1000)
}

/// HAProxy's `cli_gen_usage_msg()`: `help [words]`, or the answer to an
/// unknown command. Commands whose first words match are listed; when the
/// words go further than any command, the closest ones by fingerprint are.
pub(crate) fn usage(keywords: &[Keyword], args: &[&str], help: bool) -> String {
    let args = if help { &args[1..] } else { args };
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    let prefix_len = |kw: &Keyword| kw.words.iter().zip(args).take_while(|(a, b)| a == b).count();
    let length = keywords.iter().map(prefix_len).max().unwrap_or(0);
    let mut out = String::from(if help {
        "The following commands are valid at this level:\n"
    } else if length == 0 && arg(0).is_empty() {
        "Unknown command. Please enter one of the following commands only:\n"
    } else {
        "Unknown command, but maybe one of the following ones is a better match:\n"
    });
    // A command whose first `length` words are the ones typed.
    let candidates = keywords.iter().filter(|kw| prefix_len(kw) == length);
    let mut matches: Vec<(usize, &Keyword)> = Vec::new();
    if !arg(length).is_empty() {
        for kw in candidates.clone() {
            let typed = &args[length..];
            let known = &kw.words[length..];
            let total: usize = typed.iter().chain(known).map(|w| w.len()).sum();
            let dist = fingerprint_distance(&fingerprint(typed), &fingerprint(known));
            if dist < 5 * total / 2 && (matches.len() < MAX_MATCHES || matches.last().is_some_and(|m| dist < m.0)) {
                // Stable: an earlier keyword keeps its place on equal distances.
                let at = matches.partition_point(|m| m.0 <= dist);
                matches.insert(at, (dist, kw));
                matches.truncate(MAX_MATCHES);
            }
        }
    }
    let mut entries: Vec<&Keyword> = match matches.first() {
        Some(&(best, _)) => matches
            .iter()
            .take_while(|m| m.0 <= 5 * best / 2)
            .map(|m| m.1)
            .collect(),
        None => candidates.collect(),
    };
    entries.sort_by_key(|kw| kw.usage);
    for kw in entries {
        out.push_str("  ");
        out.push_str(kw.usage);
        out.push('\n');
    }
    out.push_str(BUILTIN_USAGE);
    out.push('\n');
    out
}

/// HAProxy's word fingerprint: counts of letter pairs (digits and other
/// characters folded into two classes), each word framed by start and end.
fn fingerprint(words: &[&str]) -> [u8; 1024] {
    let mut fp = [0u8; 1024];
    for word in words {
        let mut from = 28;
        for c in word.bytes() {
            let to = match c.to_ascii_lowercase() {
                c @ b'a'..=b'z' => usize::from(c - b'a') + 1,
                b'0'..=b'9' => 27,
                _ => 28,
            };
            fp[32 * from + to] = fp[32 * from + to].wrapping_add(1);
            from = to;
        }
        fp[32 * from + 28] = fp[32 * from + 28].wrapping_add(1);
    }
    fp
}

fn fingerprint_distance(a: &[u8; 1024], b: &[u8; 1024]) -> usize {
    a.iter().zip(b).map(|(x, y)| usize::from(x.abs_diff(*y))).sum()
}

#[cfg(test)]
mod tests;

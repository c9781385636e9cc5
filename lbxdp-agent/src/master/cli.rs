//! The master CLI's grammar (HAProxy 2.6's, as `-S` serves it): the
//! master's own commands, and the `@` prefixes that send a command to a
//! worker. Answers are HAProxy's texts, byte for byte (checked against
//! haproxy 2.6.12). Pure: the connection ([`super::listen`]) does the I/O
//! and asks the master's loop for what only it knows.
use std::time::Duration;

use crate::{
    config::CliLevel,
    runtime::cli::{Keyword, usage, words},
};

/// HAProxy's master CLI help, in its order (sorted by text). `show cli
/// sockets` is not served: it isn't listed.
const KEYWORDS: &[Keyword] = &[
    Keyword {
        words: &["@!<pid>"],
        usage: "@!<pid>                                 : send a command to the <pid> process",
        level: CliLevel::User,
    },
    Keyword {
        words: &["@<relative pid>"],
        usage: "@<relative pid>                         : send a command to the <relative pid> process",
        level: CliLevel::User,
    },
    Keyword {
        words: &["@master"],
        usage: "@master                                 : send a command to the master process",
        level: CliLevel::User,
    },
    Keyword {
        words: &["operator"],
        usage: "operator                                : lower the level of the current CLI session to operator",
        level: CliLevel::Operator,
    },
    Keyword {
        words: &["reload"],
        usage: "reload                                  : reload haproxy",
        level: CliLevel::Admin,
    },
    Keyword {
        words: &["show", "cli", "level"],
        usage: "show cli level                          : display the level of the current CLI session",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "proc"],
        usage: "show proc                               : show processes status",
        level: CliLevel::User,
    },
    Keyword {
        words: &["show", "version"],
        usage: "show version                            : show version of the current process",
        level: CliLevel::User,
    },
    Keyword {
        words: &["user"],
        usage: "user                                    : lower the level of the current CLI session to user",
        level: CliLevel::User,
    },
];

/// Who a command is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Master,
    /// `@<n>`: the n-th current worker (there is one: `@1`).
    Relative(u32),
    /// `@!<pid>`: a worker by pid, old ones included.
    Pid(u32),
    /// A prefix that names nobody (`@x`): its text, for the error.
    Nobody(String),
}

/// What a command asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Written as is (empty: nothing at all, as HAProxy's master writes
    /// nothing for `prompt`, `operator`, `@1`).
    Answer(String),
    /// The master's loop answers: its processes.
    ShowProc,
    /// The master's loop reloads; HAProxy 2.6's master re-executes itself
    /// there and the connection is lost, so it closes without a word.
    Reload,
    /// Send `line` to a worker's runtime socket and relay its answer;
    /// `prefix` is what the client typed, for the error when there is no
    /// such worker.
    Route {
        to: Target,
        prefix: String,
        line: String,
    },
    Quit,
}

/// One master CLI client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    pub(super) level: CliLevel,
    pub(super) interactive: bool,
    /// Where commands without a prefix go (`@1` alone changes it).
    pub(super) target: Target,
    /// The prefix that set `target`, for the error.
    prefix: String,
}

impl Session {
    pub(super) fn new(level: CliLevel) -> Self {
        Self {
            level,
            interactive: false,
            target: Target::Master,
            prefix: "@".into(),
        }
    }

    /// One command (a piece of a line between `;`).
    pub(super) fn step(&mut self, command: &str) -> Step {
        let command = command.trim_start_matches([' ', '\t']);
        if let Some(rest) = command.strip_prefix('@') {
            let (word, tail) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            let target = parse_target(word);
            let prefix = format!("@{word}");
            if tail.trim_matches([' ', '\t']).is_empty() {
                // A prefix alone: the session's commands go there from now on.
                self.target = target;
                self.prefix = prefix;
                return Step::Answer(String::new());
            }
            return self.to(target, prefix, tail);
        }
        self.to(self.target.clone(), self.prefix.clone(), command)
    }

    fn to(&mut self, target: Target, prefix: String, command: &str) -> Step {
        if target != Target::Master {
            // The worker's socket is admin-level: a lowered session says so
            // first, and the worker's empty answer to that is dropped.
            let line = match self.level {
                CliLevel::Admin => command.to_string(),
                CliLevel::Operator => format!("operator; {command}"),
                CliLevel::User => format!("user; {command}"),
            };
            return Step::Route {
                to: target,
                prefix,
                line,
            };
        }
        self.master(command)
    }

    fn master(&mut self, command: &str) -> Step {
        let args = words(command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.first().copied().unwrap_or("") {
            "help" => return Step::Answer(usage(KEYWORDS, &args, true)),
            "prompt" => {
                self.interactive = !self.interactive;
                return Step::Answer(String::new());
            }
            "quit" => return Step::Quit,
            _ => {}
        }
        let Some(kw) = KEYWORDS
            .iter()
            .filter(|k| !k.words[0].starts_with('@'))
            .find(|k| k.words.len() <= args.len() && k.words.iter().zip(&args).all(|(a, b)| a == b))
        else {
            return Step::Answer(usage(KEYWORDS, &args, false));
        };
        if self.level < kw.level {
            return Step::Answer("Permission denied\n\n".into());
        }
        match kw.words {
            ["operator"] => self.lower(CliLevel::Operator),
            ["user"] => self.lower(CliLevel::User),
            ["reload"] => Step::Reload,
            ["show", "proc"] => Step::ShowProc,
            ["show", "version"] => Step::Answer(format!("{}\n\n", super::VERSION)),
            _ => Step::Answer(format!("{}\n\n", level_name(self.level))),
        }
    }

    fn lower(&mut self, to: CliLevel) -> Step {
        self.level = self.level.min(to);
        Step::Answer(String::new())
    }

    /// The interactive prompt: `master> `, or `<pid>> ` when commands go to
    /// a worker (`pid` is the worker that target names now, if any).
    pub(super) fn prompt(&self, pid: Option<u32>) -> String {
        match pid {
            Some(pid) if self.target != Target::Master => format!("{pid}> "),
            _ => "master> ".into(),
        }
    }
}

fn level_name(level: CliLevel) -> &'static str {
    match level {
        CliLevel::User => "user",
        CliLevel::Operator => "operator",
        CliLevel::Admin => "admin",
    }
}

/// `@` and `@master` are the master; `@<n>` a relative pid, `@!<pid>` a pid.
fn parse_target(word: &str) -> Target {
    match word {
        "" | "master" => Target::Master,
        _ => {
            let number = |s: &str| s.parse::<u32>().ok().filter(|n| *n > 0);
            let parsed = match word.strip_prefix('!') {
                Some(pid) => number(pid).map(Target::Pid),
                None => number(word).map(Target::Relative),
            };
            parsed.unwrap_or_else(|| Target::Nobody(format!("@{word}")))
        }
    }
}

/// HAProxy's answer when a prefix names no worker.
pub(super) fn no_target(prefix: &str) -> String {
    format!("Can't find the target PID matching the prefix '{prefix}'\n")
}

/// A process's line in `show proc`.
pub(super) struct Proc {
    pub(super) pid: u32,
    pub(super) reloads: u32,
    pub(super) uptime: Duration,
}

/// `show proc` as HAProxy 2.6 writes it: the master (reloads and failed
/// reloads), the current workers, the old ones still finishing (a section
/// only when there are some), and the empty programs section.
pub(super) fn show_proc(master: &Proc, failed: u32, workers: &[Proc], old: &[Proc]) -> String {
    let mut out = format!(
        "#{:<14} {:<15} {:<15} {:<15} {:<15}\n",
        "<PID>", "<type>", "<reloads>", "<uptime>", "<version>"
    );
    let reloads = format!("{} [failed: {failed}]", master.reloads);
    out.push_str(&format!(
        "{:<15} {:<15} {:<15} {:<15} {:<15}\n",
        master.pid,
        "master",
        reloads,
        uptime(master.uptime),
        super::VERSION
    ));
    let line = |p: &Proc| {
        format!(
            "{:<15} {:<15} {:<15} {:<15} {:<15}\n",
            p.pid,
            "worker",
            p.reloads,
            uptime(p.uptime),
            super::VERSION
        )
    };
    out.push_str("# workers\n");
    workers.iter().for_each(|p| out.push_str(&line(p)));
    if !old.is_empty() {
        out.push_str("# old workers\n");
        old.iter().for_each(|p| out.push_str(&line(p)));
    }
    out.push_str("# programs\n\n");
    out
}

/// `0d00h00m09s`.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    format!(
        "{}d{:02}h{:02}m{:02}s",
        s / 86400,
        (s % 86400) / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests;

//! The lines HAProxy 2.6 logs when a server changes state, whether its
//! checks or the runtime API changed it (src/server.c: `srv_update_status()`,
//! `srv_append_status()`, src/backend.c: `set_backend_down()`), checked
//! against HAProxy 2.6.12's own output. Each line goes to stderr, at `warn`
//! where HAProxy writes `[WARNING]` and `error` where it writes `[ALERT]`,
//! and to the backend's `log` targets at HAProxy's syslog severity.
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use super::{ServerId, ServerState, Status};
use crate::syslog::{Logger, SEVERITY_ALERT, SEVERITY_EMERG, SEVERITY_NOTICE};

/// Servers of a backend that take traffic: HAProxy's srv_act and srv_bck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    active: usize,
    backup: usize,
}

impl Counts {
    pub(crate) fn of(map: &BTreeMap<ServerId, ServerState>, backend: &str) -> Self {
        let from = ServerId::new(backend, "");
        let mut c = Counts { active: 0, backup: 0 };
        for (_, st) in map.range(from..).take_while(|(id, _)| id.backend == backend) {
            if st.takes_traffic() {
                if st.backup {
                    c.backup += 1;
                } else {
                    c.active += 1;
                }
            }
        }
        c
    }

    fn any(self) -> bool {
        self.active + self.backup > 0
    }

    /// What `srv_append_status()` appends: ". 1 active and 0 backup servers
    /// left. 0 sessions active, 0 requeued, 0 remaining in queue" for a server
    /// now down, ". 2 active and 0 backup servers online. 0 sessions
    /// requeued, 0 total in queue" otherwise. lbxdp has no queue, so nothing
    /// is requeued; the sessions a server holds are the engines' (XDP can't
    /// count them), so they are written as 0, as HAProxy writes an idle
    /// server's.
    fn tail(self, down: bool) -> String {
        let (a, b) = (self.active, self.backup);
        let on_backup = if b > 0 && a == 0 { " Running on backup." } else { "" };
        if down {
            format!(
                ". {a} active and {b} backup servers left.{on_backup} 0 sessions active, 0 requeued, 0 remaining in queue"
            )
        } else {
            format!(". {a} active and {b} backup servers online.{on_backup} 0 sessions requeued, 0 total in queue")
        }
    }
}

/// One change to a server: its state and its backend's counts, before and after.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub old: ServerState,
    pub new: ServerState,
    pub before: Counts,
    pub after: Counts,
}

/// HAProxy's operational states (`SRV_ST_*`); None in maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Stopped,
    Stopping,
    Running,
}

pub(crate) fn op(st: &ServerState) -> Option<Op> {
    match st.status {
        Status::Maint => None,
        Status::Down | Status::GoingUp { .. } => Some(Op::Stopped),
        Status::Nolb => Some(Op::Stopping),
        Status::Up | Status::GoingDown { .. } | Status::Drain => Some(Op::Running),
    }
}

/// Where one backend's state lines go.
#[derive(Clone)]
pub(crate) struct BackendLog {
    pub syslog: Arc<Logger>,
    /// HAProxy's `proxy_type_str()`: "backend", or "proxy" for a listen section.
    pub kind: &'static str,
}

/// A backend's [`BackendLog`] as the Monitor and its check tasks share it:
/// a reload puts the new targets in place for the tasks it keeps running.
#[derive(Clone)]
pub(crate) struct SharedLog(Arc<RwLock<BackendLog>>);

impl SharedLog {
    pub(crate) fn new(log: BackendLog) -> Self {
        Self(Arc::new(RwLock::new(log)))
    }

    pub(crate) fn set(&self, log: BackendLog) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = log;
    }

    pub(crate) fn get(&self) -> BackendLog {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl BackendLog {
    /// Logs what HAProxy's `srv_update_status()` logs for one step (one
    /// admin flag set or cleared, one operational state change, a weight
    /// set). `reason` follows the state in an operational line: ",
    /// changed from CLI", a check's ", reason: ...", or nothing. The caller
    /// calls it only where HAProxy calls `srv_update_status()`: a forced
    /// or checked state that doesn't change the operational state, an admin
    /// flag already so, log nothing at all.
    pub(crate) fn report(&self, id: &ServerId, c: &Change, reason: &str) {
        let (old, new) = (&c.old, &c.new);
        let p = if new.backup { "Backup " } else { "" };
        // HAProxy's srv_was_stopping: no alert for a server that was
        // taking nothing new already.
        let was_stopping = old.status == Status::Nolb || old.drain;
        let down_severity = if was_stopping { SEVERITY_NOTICE } else { SEVERITY_ALERT };
        let up_or_down = |st: &ServerState| if op(st) == Some(Op::Stopped) { "DOWN" } else { "UP" };
        match (op(old), op(new)) {
            (Some(_), None) => {
                if op(old) == Some(Op::Stopped) {
                    self.send(
                        SEVERITY_NOTICE,
                        &format!("{p}Server {id} was DOWN and now enters maintenance."),
                    );
                } else {
                    self.send(
                        down_severity,
                        &format!("{p}Server {id} is going DOWN for maintenance{}.", c.after.tail(true)),
                    );
                    self.backend_down(id, c);
                }
            }
            (None, Some(_)) => {
                let ready = if new.drain { "DRAIN" } else { "READY" };
                self.send(
                    SEVERITY_NOTICE,
                    &format!(
                        "{p}Server {id} is {}/{ready} (leaving forced maintenance).",
                        up_or_down(new)
                    ),
                );
                if old.drain && new.drain {
                    self.send(
                        SEVERITY_NOTICE,
                        &format!("{p}Server {id} remains in forced drain mode."),
                    );
                }
            }
            (None, None) => {}
            (Some(was), Some(now)) => {
                let tail_down = now == Op::Stopped;
                if was != now {
                    let (word, severity) = match now {
                        Op::Stopped => ("DOWN", down_severity),
                        Op::Stopping => ("stopping", SEVERITY_NOTICE),
                        Op::Running => ("UP", SEVERITY_NOTICE),
                    };
                    self.send(
                        severity,
                        &format!("{p}Server {id} is {word}{reason}{}.", c.after.tail(tail_down)),
                    );
                }
                if !old.drain && new.drain {
                    self.send(
                        SEVERITY_NOTICE,
                        &format!("{p}Server {id} enters drain state{}.", c.after.tail(tail_down)),
                    );
                }
                self.backend_down(id, c);
                if old.drain && !new.drain {
                    self.send(
                        SEVERITY_NOTICE,
                        &format!("{p}Server {id} is {} (leaving forced drain).", up_or_down(new)),
                    );
                } else if old.drain && new.drain {
                    self.send(
                        SEVERITY_NOTICE,
                        &format!("{p}Server {id} remains in forced drain mode."),
                    );
                }
            }
        }
    }

    /// HAProxy's `set_backend_down()`, when the change took the backend's
    /// last usable server.
    fn backend_down(&self, id: &ServerId, c: &Change) {
        if c.before.any() && !c.after.any() {
            let (kind, be) = (self.kind, &id.backend);
            // HAProxy quotes the name on stderr, not in the log line.
            tracing::error!("{kind} '{be}' has no server available!");
            self.syslog
                .send(SEVERITY_EMERG, &format!("{kind} {be} has no server available!"));
        }
    }

    /// A server line: HAProxy writes each with `ha_warning()` and `send_log()`.
    pub(crate) fn send(&self, severity: u8, line: &str) {
        tracing::warn!("{line}");
        self.syslog.send(severity, line);
    }
}

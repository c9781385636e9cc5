//! One server's check loop: wait, check, feed the counter, publish, log.
use std::{
    collections::BTreeMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

use crate::syslog::{Logger, SEVERITY_ALERT, SEVERITY_EMERG, SEVERITY_NOTICE};

use super::{
    CheckResult, Probe, ServerId, ServerState, Snapshot, Status,
    state::{self, Health, Phase, Transition},
};
use crate::config::CheckSettings;

pub(crate) struct ServerTask {
    pub id: ServerId,
    pub settings: CheckSettings,
    pub log_health_checks: bool,
    /// The backend's `log` targets.
    pub syslog: Arc<Logger>,
    /// `spread-checks` percent.
    pub spread: u32,
    pub first_delay: Duration,
    /// Starts in maintenance (`disabled`).
    pub maint: bool,
    pub probe: Probe,
    /// Cleared by the Monitor before it replaces or stops this task: an
    /// aborted task still running on another thread must not write over
    /// its successor's state.
    pub alive: Arc<AtomicBool>,
}

/// The published status for a counter and a weight.
pub(crate) fn status_of(h: &Health, weight: u32) -> Status {
    let s = match h.phase() {
        Phase::Up => Status::Up,
        Phase::Down => Status::Down,
        Phase::GoingDown { remaining, fall } => Status::GoingDown { remaining, fall },
        Phase::GoingUp { passed, rise } => Status::GoingUp { passed, rise },
    };
    with_weight(s, weight)
}

/// An up server with weight 0 shows DRAIN. A DRAIN server given a weight
/// back shows UP until its next check says exactly where its counter is.
pub(crate) fn with_weight(s: Status, weight: u32) -> Status {
    match s {
        Status::Up | Status::GoingDown { .. } if weight == 0 => Status::Drain,
        Status::Drain if weight > 0 => Status::Up,
        s => s,
    }
}

/// Sets the status, and when it changed, the time of the change (lastchg).
pub(crate) fn set_status(st: &mut ServerState, status: Status) {
    if st.status != status {
        st.status = status;
        st.since = std::time::Instant::now();
    }
}

fn counter(h: &Health) -> super::HealthCounter {
    super::HealthCounter {
        health: h.value(),
        rise: h.rise(),
        fall: h.fall(),
    }
}

/// A random u32: std's RandomState is seeded afresh from the OS each time.
pub(crate) fn random(id: &ServerId) -> u32 {
    (RandomState::new().hash_one(id) >> 32) as u32
}

/// Servers of a backend that take traffic: HAProxy's srv_act and srv_bck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    active: usize,
    backup: usize,
}

impl Counts {
    fn of(map: &BTreeMap<ServerId, ServerState>, backend: &str) -> Self {
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

    /// ". 2 active and 0 backup servers left." (HAProxy's `srv_append_more()`
    /// without the session and queue counts, which lbxdp doesn't have).
    fn tail(self, down: bool) -> String {
        let (a, b) = (self.active, self.backup);
        let on_backup = if b > 0 && a == 0 { " Running on backup." } else { "" };
        let word = if down { "left" } else { "online" };
        format!(". {a} active and {b} backup servers {word}.{on_backup}")
    }
}

/// Changes one server's state in a single snapshot change (none when `f`
/// changes nothing). Returns the backend's counts before and after, and
/// the new state; None when the server is no longer in the snapshot or the
/// writer is no longer `alive` (checked under the channel's lock).
fn update(
    tx: &watch::Sender<Snapshot>,
    id: &ServerId,
    alive: Option<&AtomicBool>,
    f: impl FnOnce(&mut ServerState),
) -> Option<(Counts, Counts, ServerState)> {
    let mut out = None;
    tx.send_if_modified(|snap| {
        if alive.is_some_and(|a| !a.load(Ordering::SeqCst)) {
            return false;
        }
        let Some(old) = snap.get(id) else {
            return false;
        };
        let mut new = old.clone();
        f(&mut new);
        let before = Counts::of(snap, &id.backend);
        let changed = new != *old;
        if changed {
            Arc::make_mut(snap).insert(id.clone(), new.clone());
        }
        out = Some((before, Counts::of(snap, &id.backend), new));
        changed
    });
    out
}

fn prefix(st: &ServerState) -> &'static str {
    if st.backup { "Backup " } else { "" }
}

fn no_server_left(id: &ServerId, before: Counts, after: Counts, syslog: Option<&Logger>) {
    if before.any() && !after.any() {
        let line = format!("backend {} has no server available!", id.backend);
        tracing::error!("{line}");
        if let Some(l) = syslog {
            l.send(SEVERITY_EMERG, &line);
        }
    }
}

/// For servers without checks, which have no task: maintenance on and off.
pub(crate) fn set_unchecked_maint(tx: &watch::Sender<Snapshot>, id: &ServerId, maint: bool) {
    let already = tx.borrow().get(id).map(|st| st.status == Status::Maint);
    if already != Some(!maint) {
        return;
    }
    if let Some((before, after, st)) = update(tx, id, None, |st| {
        set_status(
            st,
            if maint {
                Status::Maint
            } else {
                with_weight(Status::Up, st.effective_weight())
            },
        );
    }) {
        log_maint(id, &st, maint, before, after);
    }
}

fn log_maint(id: &ServerId, st: &ServerState, maint: bool, before: Counts, after: Counts) {
    if maint {
        tracing::warn!(
            "{}Server {id} is going DOWN for maintenance{}",
            prefix(st),
            after.tail(true)
        );
        no_server_left(id, before, after, None);
    } else {
        let state = if st.is_up() { "UP" } else { "DOWN" };
        let ready = if st.weight == 0 { "DRAIN" } else { "READY" };
        tracing::info!(
            "{}Server {id} is {state}/{ready} (leaving forced maintenance).",
            prefix(st)
        );
    }
}

/// The loop; ends when the Monitor drops the admin channel or aborts it.
pub(crate) async fn run(t: ServerTask, tx: Arc<watch::Sender<Snapshot>>, mut admin: watch::Receiver<bool>) {
    let s = &t.settings;
    let mut in_maint = t.maint;
    let mut health = if in_maint {
        Health::down(s.rise, s.fall)
    } else {
        Health::starting(s.rise, s.fall)
    };
    let mut prev: Option<super::CheckStatus> = None;
    let mut delay = t.first_delay;
    loop {
        let want = *admin.borrow_and_update();
        if want != in_maint {
            in_maint = want;
            // HAProxy zeroes the counter in maintenance, and on leaving it
            // starts the server as at boot and checks at once.
            health = if in_maint {
                Health::down(s.rise, s.fall)
            } else {
                Health::starting(s.rise, s.fall)
            };
            let h = health;
            let Some((before, after, st)) = update(&tx, &t.id, Some(&t.alive), |st| {
                set_status(
                    st,
                    if want {
                        Status::Maint
                    } else {
                        status_of(&h, st.effective_weight())
                    },
                );
                st.health = Some(counter(&h));
            }) else {
                return;
            };
            log_maint(&t.id, &st, in_maint, before, after);
            delay = Duration::ZERO;
        }
        if in_maint {
            if admin.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            r = admin.changed() => {
                if r.is_err() {
                    return;
                }
                continue;
            }
        }
        // A maintenance change during the check voids its result.
        let res = tokio::select! {
            r = (t.probe)() => r,
            r = admin.changed() => {
                if r.is_err() {
                    return;
                }
                continue;
            }
        };
        let outcome = health.record(res.ok());
        // HAProxy logs a step when the counter moved or the check status changed.
        let report = outcome.counted || prev != Some(res.status);
        prev = Some(res.status);
        let h = health;
        let Some((before, after, st)) = update(&tx, &t.id, Some(&t.alive), |st| {
            set_status(st, status_of(&h, st.effective_weight()));
            st.last_reason = Some(res.summary());
            st.health = Some(counter(&h));
            st.last_check = Some(super::LastCheck {
                status: res.status.short(),
                code: (res.code != 0).then_some(res.code),
                duration: res.duration,
                desc: res.status.reason(),
            });
            if !res.ok() {
                st.check_failures += 1;
            }
            match outcome.transition {
                Some(Transition::WentDown) => st.marked_down += 1,
                Some(Transition::WentUp) => st.marked_up += 1,
                None => {}
            }
        }) else {
            return;
        };
        log_check(&t, &res, &health, &st, report, outcome.transition, before, after);
        delay = state::spread(
            health.interval(s.inter, s.fastinter, s.downinter),
            t.spread,
            random(&t.id),
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn log_check(
    t: &ServerTask,
    res: &CheckResult,
    health: &Health,
    st: &ServerState,
    report: bool,
    transition: Option<Transition>,
    before: Counts,
    after: Counts,
) {
    let id = &t.id;
    if t.log_health_checks && report {
        let (x, y) = health.counts();
        let word = match (health.is_up(), st.weight) {
            (false, _) => "DOWN",
            (true, 0) => "DRAIN",
            (true, _) => "UP",
        };
        let (b, verdict) = (
            if st.backup { "backup " } else { "" },
            if res.ok() { "succeeded" } else { "failed" },
        );
        let line = format!(
            "Health check for {b}server {id} {verdict}{}, status: {x}/{y} {word}.",
            res.details()
        );
        if res.ok() {
            tracing::info!("{line}");
        } else {
            tracing::warn!("{line}");
        }
    }
    // With log-health-checks the step line above carried the reason, so
    // HAProxy leaves it out of the transition line.
    let details = if t.log_health_checks {
        String::new()
    } else {
        res.details()
    };
    match transition {
        // Transitions also go to the backend's `log` targets, at HAProxy's levels.
        Some(Transition::WentDown) => {
            let line = format!("{}Server {id} is DOWN{details}{}", prefix(st), after.tail(true));
            tracing::warn!("{line}");
            t.syslog.send(SEVERITY_ALERT, &line);
            no_server_left(id, before, after, Some(&t.syslog));
        }
        Some(Transition::WentUp) => {
            let line = format!("{}Server {id} is UP{details}{}", prefix(st), after.tail(false));
            tracing::info!("{line}");
            t.syslog.send(SEVERITY_NOTICE, &line);
        }
        None => {}
    }
}

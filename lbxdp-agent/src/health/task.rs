//! One server's check loop: wait, check, feed the counter, publish, log.
use std::{
    hash::{BuildHasher, RandomState},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

use super::{
    CheckResult, Probe, ServerId, ServerState, Snapshot, Status,
    report::{self, BackendLog, Change, Counts, SharedLog},
    state::{self, Health, Phase, Transition},
};
use crate::config::CheckSettings;
use crate::syslog::SEVERITY_NOTICE;

pub(crate) struct ServerTask {
    pub id: ServerId,
    pub settings: CheckSettings,
    pub log_health_checks: bool,
    /// Where its state lines go.
    pub log: SharedLog,
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
        Status::Nolb => s,
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

/// Changes one server's state in a single snapshot change (none when `f`
/// changes nothing): the state and the backend's counts before and after.
/// None when the server is no longer in the snapshot or the writer is no
/// longer `alive` (checked under the channel's lock).
fn update(
    tx: &watch::Sender<Snapshot>,
    id: &ServerId,
    alive: Option<&AtomicBool>,
    f: impl FnOnce(&mut ServerState),
) -> Option<Change> {
    let mut out = None;
    tx.send_if_modified(|snap| {
        if alive.is_some_and(|a| !a.load(Ordering::SeqCst)) {
            return false;
        }
        let Some(old) = snap.get(id) else {
            return false;
        };
        let old = old.clone();
        let mut new = old.clone();
        f(&mut new);
        let before = Counts::of(snap, &id.backend);
        let changed = new != old;
        if changed {
            Arc::make_mut(snap).insert(id.clone(), new.clone());
        }
        out = Some(Change {
            old,
            new,
            before,
            after: Counts::of(snap, &id.backend),
        });
        changed
    });
    out
}

/// Maintenance on or off, for a server without checks (it has no task).
/// Entering maintenance ends drain, as HAProxy's `srv_adm_set_maint()` does.
pub(crate) fn set_unchecked_maint(tx: &watch::Sender<Snapshot>, id: &ServerId, maint: bool, log: &BackendLog) {
    let already = tx.borrow().get(id).map(|st| st.status == Status::Maint);
    if already != Some(!maint) {
        return;
    }
    if let Some(c) = update(tx, id, None, |st| {
        if maint {
            st.drain = false;
            set_status(st, Status::Maint);
        } else {
            set_status(st, with_weight(Status::Up, st.effective_weight()));
        }
    }) {
        log.report(id, &c, "");
    }
}

/// Changes the snapshot for the runtime API (weight, drain, the check
/// switch, forced health of an unchecked server), keeping the status in
/// line with the weight. None when the server is unknown.
pub(crate) fn runtime_update(
    tx: &watch::Sender<Snapshot>,
    id: &ServerId,
    f: impl FnOnce(&mut ServerState),
) -> Option<Change> {
    update(tx, id, None, |st| {
        f(st);
        let status = with_weight(st.status, st.effective_weight());
        set_status(st, status);
    })
}

/// The reason a forced state gives in its line.
pub(crate) const FORCED_REASON: &str = ", changed from CLI";

/// Whether HAProxy's `srv_set_running/stopping/stopped()` would have
/// changed the operational state, and so logged.
pub(crate) fn op_changed(c: &Change) -> bool {
    let (was, now) = (report::op(&c.old), report::op(&c.new));
    was.is_some() && now.is_some() && was != now
}

/// What the runtime API asks of a checked server's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Admin {
    pub maint: bool,
    /// `disable health`: no checks, the state stays where it is.
    pub checks_off: bool,
    /// `set server B/S health ...`, with its order's number: the same
    /// order twice counts twice.
    pub forced: Option<(u64, super::ForcedHealth)>,
    /// The Monitor's number of the last order in here: once the task has
    /// taken it in, it says so in the snapshot (`ServerState::admin_seq`).
    pub seq: u64,
}

/// The counter `set server B/S health` leaves: fully up, or fully down.
fn forced_counter(f: super::ForcedHealth, rise: u32, fall: u32) -> Health {
    match f {
        super::ForcedHealth::Down => Health::down(rise, fall),
        super::ForcedHealth::Up | super::ForcedHealth::Stopping => {
            let mut h = Health::starting(rise, fall);
            h.record(true);
            h
        }
    }
}

/// The status a forced counter shows: `stopping` is up but takes nothing new (NOLB).
fn forced_status(f: super::ForcedHealth, h: &Health, weight: u32) -> Status {
    match f {
        super::ForcedHealth::Stopping => Status::Nolb,
        _ => status_of(h, weight),
    }
}

/// The loop; ends when the Monitor drops the admin channel or aborts it.
pub(crate) async fn run(t: ServerTask, tx: Arc<watch::Sender<Snapshot>>, mut admin: watch::Receiver<Admin>) {
    let s = &t.settings;
    let mut in_maint = t.maint;
    let mut health = if in_maint {
        Health::down(s.rise, s.fall)
    } else {
        Health::starting(s.rise, s.fall)
    };
    let mut prev: Option<super::CheckStatus> = None;
    let mut delay = t.first_delay;
    let mut forced_seen: Option<u64> = None;
    let mut acked = 0;
    loop {
        let a = *admin.borrow_and_update();
        if let Some((seq, f)) = a.forced
            && forced_seen != Some(seq)
        {
            forced_seen = Some(seq);
            if !in_maint {
                health = forced_counter(f, s.rise, s.fall);
                let h = health;
                let Some(c) = update(&tx, &t.id, Some(&t.alive), |st| {
                    set_status(st, forced_status(f, &h, st.effective_weight()));
                    st.health = Some(counter(&h));
                }) else {
                    return;
                };
                if op_changed(&c) {
                    t.log.get().report(&t.id, &c, FORCED_REASON);
                }
                delay = state::spread(
                    health.interval(s.inter, s.fastinter, s.downinter),
                    t.spread,
                    random(&t.id),
                );
            }
        }
        let want = a.maint;
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
            let Some(c) = update(&tx, &t.id, Some(&t.alive), |st| {
                if want {
                    // As HAProxy's srv_adm_set_maint(): maintenance ends drain.
                    st.drain = false;
                    set_status(st, Status::Maint);
                } else {
                    set_status(st, status_of(&h, st.effective_weight()));
                }
                st.health = Some(counter(&h));
            }) else {
                return;
            };
            t.log.get().report(&t.id, &c, "");
            delay = Duration::ZERO;
        }
        // The orders above are done: the runtime API may answer its next
        // command (see Monitor::settle).
        if a.seq != acked {
            acked = a.seq;
            if update(&tx, &t.id, Some(&t.alive), |st| st.admin_seq = a.seq).is_none() {
                return;
            }
        }
        if in_maint || a.checks_off {
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
        let step = outcome.counted || prev != Some(res.status);
        prev = Some(res.status);
        let h = health;
        let Some(c) = update(&tx, &t.id, Some(&t.alive), |st| {
            // A server forced to stopping stays so until a check passes or
            // its counter reaches 0 (HAProxy's check_notify_success/failure).
            if !(st.status == Status::Nolb && h.is_up() && !res.ok()) {
                set_status(st, status_of(&h, st.effective_weight()));
            }
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
        log_check(&t, &res, &health, &c, step);
        delay = state::spread(
            health.interval(s.inter, s.fastinter, s.downinter),
            t.spread,
            random(&t.id),
        );
    }
}

fn log_check(t: &ServerTask, res: &CheckResult, health: &Health, c: &Change, step: bool) {
    let id = &t.id;
    if t.log_health_checks && step {
        let (x, y) = health.counts();
        let word = match (health.is_up(), c.new.weight) {
            (false, _) => "DOWN",
            (true, 0) => "DRAIN",
            (true, _) => "UP",
        };
        let (b, verdict) = (
            if c.new.backup { "backup " } else { "" },
            if res.ok() { "succeeded" } else { "failed" },
        );
        t.log.get().send(
            SEVERITY_NOTICE,
            &format!(
                "Health check for {b}server {id} {verdict}{}, status: {x}/{y} {word}.",
                res.details()
            ),
        );
    }
    if op_changed(c) {
        // With log-health-checks the step line above carried the reason, so
        // HAProxy leaves it out of the state line.
        let details = if t.log_health_checks {
            String::new()
        } else {
            res.details()
        };
        t.log.get().report(id, c, &details);
    }
}

//! The health state machine, pure: HAProxy's check counter and the interval
//! it asks for. No I/O and no clock, so every transition is a plain test.
//!
//! HAProxy keeps one counter, `health`, in `0 ..= rise + fall - 1`
//! (src/check.c, `set_server_check_status`): a server is UP while
//! `health >= rise`. A passed check adds one, and reaching `rise` jumps to
//! the top (fully UP); a failed check removes one, and falling under `rise`
//! drops to 0 (fully DOWN). So from fully UP it takes `fall` failures to go
//! DOWN, and from DOWN `rise` successes to come UP.
use std::time::Duration;

/// HAProxy's per-server check counter. `rise` and `fall` are at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    health: u32,
    rise: u32,
    fall: u32,
}

/// Where the counter stands, as HAProxy's stats show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Fully up: `health == rise + fall - 1`.
    Up,
    /// Up, but `remaining` more failures (of `fall`) take it down: "UP 2/3".
    GoingDown { remaining: u32, fall: u32 },
    /// Down, `passed` successes of the `rise` needed: "DOWN 1/2".
    GoingUp { passed: u32, rise: u32 },
    /// Fully down: `health == 0`.
    Down,
}

/// An UP/DOWN change the check caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    WentUp,
    WentDown,
}

/// What one check result did to the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The counter moved: HAProxy's `report`, which (with a changed check
    /// status) makes `option log-health-checks` log the step.
    pub counted: bool,
    pub transition: Option<Transition>,
}

impl Health {
    /// A server as HAProxy starts it, or takes it out of maintenance: UP with
    /// `health = rise` ("up, but will fall down at first failure",
    /// src/server.c). One failed check takes it DOWN; one success makes it
    /// fully UP. Until then it shows "UP 1/<fall>" and is checked at fastinter.
    pub fn starting(rise: u32, fall: u32) -> Self {
        let (rise, fall) = (rise.max(1), fall.max(1));
        Self {
            health: rise,
            rise,
            fall,
        }
    }

    /// Fully down, as a server in maintenance is kept (`health = 0`).
    pub fn down(rise: u32, fall: u32) -> Self {
        Self {
            health: 0,
            rise: rise.max(1),
            fall: fall.max(1),
        }
    }

    fn top(&self) -> u32 {
        self.rise + self.fall - 1
    }

    pub fn is_up(&self) -> bool {
        self.health >= self.rise
    }

    /// The counter itself, for the stats' check_health.
    pub fn value(&self) -> u32 {
        self.health
    }

    pub fn rise(&self) -> u32 {
        self.rise
    }

    pub fn fall(&self) -> u32 {
        self.fall
    }

    /// Feeds one check result, exactly as `set_server_check_status` does.
    pub fn record(&mut self, passed: bool) -> Outcome {
        let was_up = self.is_up();
        let before = self.health;
        if passed {
            if self.health < self.top() {
                self.health += 1;
                if self.health >= self.rise {
                    self.health = self.top();
                }
            }
        } else if self.health > 0 {
            self.health -= 1;
            if self.health < self.rise {
                self.health = 0;
            }
        }
        let transition = match (was_up, self.is_up()) {
            (false, true) => Some(Transition::WentUp),
            (true, false) => Some(Transition::WentDown),
            _ => None,
        };
        Outcome {
            counted: self.health != before,
            transition,
        }
    }

    pub fn phase(&self) -> Phase {
        if self.health == self.top() {
            Phase::Up
        } else if self.is_up() {
            Phase::GoingDown {
                remaining: self.health - self.rise + 1,
                fall: self.fall,
            }
        } else if self.health == 0 {
            Phase::Down
        } else {
            Phase::GoingUp {
                passed: self.health,
                rise: self.rise,
            }
        }
    }

    /// `option log-health-checks`' "status: x/y": the same numbers the
    /// stats show, including "3/3" when fully up.
    pub fn counts(&self) -> (u32, u32) {
        if self.is_up() {
            (self.health - self.rise + 1, self.fall)
        } else {
            (self.health, self.rise)
        }
    }

    /// The delay before the next check: HAProxy's `srv_getinter()`. `inter`
    /// when fully up, `downinter` when fully down, `fastinter` in between
    /// (going up, going down, and the first check after start). The config
    /// already set unset fastinter/downinter to inter.
    pub fn interval(&self, inter: Duration, fastinter: Duration, downinter: Duration) -> Duration {
        match self.phase() {
            Phase::Up => inter,
            Phase::Down => downinter,
            Phase::GoingDown { .. } | Phase::GoingUp { .. } => fastinter,
        }
    }
}

/// HAProxy's `spread-checks`: moves `interval` by up to `percent` percent
/// either way; `random` is any u32, spread evenly (0 gives the largest
/// advance, u32::MAX the largest delay). Percent is capped at 50, as HAProxy
/// refuses more.
pub fn spread(interval: Duration, percent: u32, random: u32) -> Duration {
    let percent = percent.min(50);
    if percent == 0 {
        return interval;
    }
    let range = interval * percent / 100;
    // The position in [-range, +range], in nanoseconds to stay exact.
    let span = range.as_nanos() * 2;
    let offset = span * u128::from(random) / u128::from(u32::MAX);
    let offset = Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX));
    (interval - range) + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(2);
    const F: Duration = Duration::from_millis(500);
    const D: Duration = Duration::from_secs(10);

    fn fail(h: &mut Health) -> Outcome {
        h.record(false)
    }
    fn pass(h: &mut Health) -> Outcome {
        h.record(true)
    }

    #[test]
    fn starting_server_falls_at_the_first_failure() {
        let mut h = Health::starting(2, 3);
        assert!(h.is_up());
        assert_eq!(h.phase(), Phase::GoingDown { remaining: 1, fall: 3 });
        assert_eq!(h.interval(I, F, D), F, "fastinter until the first result");
        let o = fail(&mut h);
        assert_eq!(o.transition, Some(Transition::WentDown));
        assert!(o.counted);
        assert_eq!(h.phase(), Phase::Down);
        assert_eq!(h.counts(), (0, 2));
        assert_eq!(h.interval(I, F, D), D);
    }

    #[test]
    fn starting_server_is_fully_up_after_one_success() {
        let mut h = Health::starting(2, 3);
        let o = pass(&mut h);
        assert_eq!(
            o,
            Outcome {
                counted: true,
                transition: None
            }
        );
        assert_eq!(h.phase(), Phase::Up);
        assert_eq!(h.counts(), (3, 3));
        assert_eq!(h.interval(I, F, D), I);
        // Fully up: a success changes nothing, and says so.
        assert_eq!(
            pass(&mut h),
            Outcome {
                counted: false,
                transition: None
            }
        );
    }

    #[test]
    fn fall_failures_take_a_full_server_down() {
        let mut h = Health::starting(2, 3);
        pass(&mut h);
        assert_eq!(fail(&mut h).transition, None);
        assert_eq!(h.phase(), Phase::GoingDown { remaining: 2, fall: 3 });
        assert_eq!(h.counts(), (2, 3));
        assert_eq!(h.interval(I, F, D), F);
        assert_eq!(fail(&mut h).transition, None);
        assert_eq!(h.phase(), Phase::GoingDown { remaining: 1, fall: 3 });
        assert_eq!(fail(&mut h).transition, Some(Transition::WentDown));
        assert_eq!(h.phase(), Phase::Down);
        // Down and failing: nothing moves.
        assert_eq!(
            fail(&mut h),
            Outcome {
                counted: false,
                transition: None
            }
        );
    }

    #[test]
    fn a_success_while_going_down_restores_full_health() {
        let mut h = Health::starting(2, 3);
        pass(&mut h);
        fail(&mut h);
        fail(&mut h);
        assert!(pass(&mut h).counted);
        assert_eq!(h.phase(), Phase::Up);
    }

    #[test]
    fn rise_successes_bring_a_down_server_up() {
        let mut h = Health::down(3, 2);
        assert_eq!(h.interval(I, F, D), D);
        assert_eq!(pass(&mut h).transition, None);
        assert_eq!(h.phase(), Phase::GoingUp { passed: 1, rise: 3 });
        assert_eq!(h.counts(), (1, 3));
        assert_eq!(h.interval(I, F, D), F);
        pass(&mut h);
        assert_eq!(h.phase(), Phase::GoingUp { passed: 2, rise: 3 });
        // A failure while going up drops straight back to 0.
        assert!(fail(&mut h).counted);
        assert_eq!(h.phase(), Phase::Down);
        for _ in 0..2 {
            assert_eq!(pass(&mut h).transition, None);
        }
        assert_eq!(pass(&mut h).transition, Some(Transition::WentUp));
        assert_eq!(h.phase(), Phase::Up);
        assert_eq!(h.counts(), (2, 2));
    }

    #[test]
    fn rise_and_fall_of_one() {
        let mut h = Health::starting(1, 1);
        assert_eq!(h.phase(), Phase::Up, "health = rise is the top");
        assert_eq!(h.interval(I, F, D), I);
        assert_eq!(fail(&mut h).transition, Some(Transition::WentDown));
        assert_eq!(pass(&mut h).transition, Some(Transition::WentUp));
        // Zero is read as one rather than dividing the world by it.
        assert_eq!(Health::starting(0, 0), Health::starting(1, 1));
    }

    #[test]
    fn spread_stays_within_the_percentage() {
        let i = Duration::from_secs(10);
        assert_eq!(spread(i, 0, 12345), i);
        assert_eq!(spread(i, 5, 0), Duration::from_millis(9500));
        assert_eq!(spread(i, 5, u32::MAX), Duration::from_millis(10500));
        let mid = spread(i, 5, u32::MAX / 2);
        assert!(mid > Duration::from_millis(9990) && mid < Duration::from_millis(10010));
        assert_eq!(spread(i, 90, 0), Duration::from_secs(5), "capped at 50%");
    }
}

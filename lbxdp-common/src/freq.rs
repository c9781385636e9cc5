//! HAProxy's frequency counters (`struct freq_ctr`, include/haproxy/freq_ctr.h
//! and src/freq_ctr.c in 2.6): a count for the current period and the
//! previous one; a rate is the current count plus the previous one scaled by
//! the part of the period not yet elapsed. Ticks are milliseconds, wrapping
//! at 2^32 as HAProxy's `now_ms` does. Here so that the XDP program and the
//! agent's proxy count with the same code.

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FreqCtr {
    /// Start of the current period (even: HAProxy keeps bit 0 as a lock).
    pub curr_tick: u32,
    pub curr_ctr: u32,
    pub prev_ctr: u32,
}

impl FreqCtr {
    /// `update_freq_ctr_period()`: adds `inc`, rotating the periods when the
    /// current one is over; returns the current period's count.
    pub fn update(&mut self, now: u32, period: u32, inc: u32) -> u32 {
        if now.wrapping_sub(self.curr_tick) < period {
            self.curr_ctr = self.curr_ctr.wrapping_add(inc);
            return self.curr_ctr;
        }
        self.prev_ctr = self.curr_ctr;
        self.curr_ctr = inc;
        let mut tick = self.curr_tick.wrapping_add(period);
        if now.wrapping_sub(tick) >= period {
            // At least two periods went by: nothing of the last one is left.
            self.prev_ctr = 0;
            tick = now;
        }
        self.curr_tick = tick & !1;
        inc
    }

    /// `freq_ctr_total(ctr, period, -1)`: the events over the current and
    /// the previous period, times `period`, with HAProxy's correction for
    /// very low rates (a lone event doesn't flap between 0 and 1).
    pub fn total(&self, now: u32, period: u32) -> u64 {
        let mut curr = u64::from(self.curr_ctr);
        let mut past = u64::from(self.prev_ctr);
        // C: `int remain = tick + period - now` on unsigned ints.
        let mut remain = i64::from(self.curr_tick.wrapping_add(period).wrapping_sub(now) as i32);
        if remain < 0 {
            // Past the current period: part of it may still count as the last one.
            remain += i64::from(period);
            past = if remain >= 0 { curr } else { 0 };
            curr = 0;
        }
        if curr == 0 && past <= 1 {
            return past * u64::from(period);
        }
        past * u64::try_from(remain).unwrap_or(0) + curr * u64::from(period)
    }

    /// `read_freq_ctr_period()`: events per period now.
    pub fn read(&self, now: u32, period: u32) -> u32 {
        if period == 0 {
            return 0;
        }
        u32::try_from(self.total(now, period) / u64::from(period)).unwrap_or(u32::MAX)
    }

    /// `set table ... data.<rate> V`: both halves so the rate reads V for a
    /// whole period, then fades.
    pub fn set(&mut self, now: u32, value: u32) {
        self.curr_tick = now & !1;
        self.prev_ctr = 0;
        self.curr_ctr = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u32 = 10_000;

    #[test]
    fn a_zeroed_counter_starts_its_period_at_the_first_event() {
        let mut f = FreqCtr::default();
        let t0 = 1_000_001;
        assert_eq!(f.read(t0, P), 0);
        assert_eq!(f.update(t0, P, 1), 1);
        assert_eq!(f.curr_tick, t0 & !1);
        assert_eq!(f.prev_ctr, 0);
        assert_eq!(f.update(t0 + 5, P, 1), 2);
        assert_eq!(f.update(t0 + 9_000, P, 1), 3);
        assert_eq!(f.read(t0 + 9_000, P), 3);
    }

    #[test]
    fn the_previous_period_fades_with_the_time_left() {
        let mut f = FreqCtr::default();
        let t0 = 2_000_000;
        for i in 0..10 {
            f.update(t0 + i, P, 1);
        }
        // 10 in the first period; 2.5 s into the next: 10 * 7.5/10 = 7.
        assert_eq!(f.read(t0 + P + 2_500, P), 7);
        assert_eq!(f.update(t0 + P + 2_500, P, 1), 1);
        assert_eq!(f.prev_ctr, 10);
        // 1 + 10 * 0.75 = 8.5 -> 8.
        assert_eq!(f.read(t0 + P + 2_500, P), 8);
        // Two periods later with no event: all gone.
        assert_eq!(f.read(t0 + 3 * P + 1, P), 0);
        // A period later the one event of [t0+P, t0+2P) is the past period's,
        // and a lone event reads as one (no flapping).
        assert_eq!(f.read(t0 + 2 * P + 5_000, P), 1);
    }

    #[test]
    fn low_rates_do_not_flap() {
        let mut f = FreqCtr::default();
        let t0 = 3_000_000;
        f.update(t0, P, 1);
        // A lone event in the last period reads as one for the whole next one.
        assert_eq!(f.read(t0 + P + 9_999, P), 1);
        assert_eq!(f.read(t0 + 2 * P + 1, P), 0);
    }

    #[test]
    fn a_long_silence_resets_the_period_to_now() {
        let mut f = FreqCtr::default();
        let t0 = 4_000_000;
        f.update(t0, P, 5);
        assert_eq!(f.update(t0 + 5 * P + 3, P, 1), 1);
        assert_eq!(f.prev_ctr, 0);
        assert_eq!(f.curr_tick, (t0 + 5 * P + 3) & !1);
    }

    #[test]
    fn ticks_wrap() {
        let mut f = FreqCtr::default();
        let t0 = u32::MAX - 100;
        f.update(t0, P, 1);
        f.update(t0.wrapping_add(200), P, 1);
        assert_eq!(f.read(t0.wrapping_add(300), P), 2);
    }
}

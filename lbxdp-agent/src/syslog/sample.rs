//! `log ... sample <ranges>:<size>`: HAProxy 2.6's `process_send_log()`
//! counting, so the same lines of each run of `size` are sent.
use std::sync::Mutex;

use crate::config::LogSample;

pub struct Sampler {
    ranges: Vec<(u32, u32)>,
    size: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Position in the current run of `size` lines, from 0.
    idx: u32,
    /// The range the next line must fall in.
    range: usize,
    /// Lines of the current range already sent.
    taken: u32,
}

impl Sampler {
    pub fn new(s: &LogSample) -> Sampler {
        Sampler {
            ranges: s.ranges.clone(),
            size: s.size.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether this line is sent; every call counts one line.
    pub fn take(&self) -> bool {
        // A panic elsewhere while holding the lock leaves counters that are
        // still usable: keep sampling rather than stop logging.
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(&(low, high)) = self.ranges.get(s.range) else {
            return true;
        };
        let pos = s.idx + 1;
        let inside = (low..=high).contains(&pos);
        if inside {
            s.taken = (s.taken + 1) % (high - low + 1);
            if s.taken == 0 {
                s.range = (s.range + 1) % self.ranges.len();
            }
        }
        s.idx = (s.idx + 1) % self.size;
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(ranges: &[(u32, u32)], size: u32, lines: usize) -> Vec<usize> {
        let s = Sampler::new(&LogSample {
            ranges: ranges.to_vec(),
            size,
        });
        (1..=lines).filter(|_| s.take()).collect()
    }

    /// HAProxy 2.6.12 with `log 127.0.0.1:PORT sample 1,3-4:5 local2 info
    /// notice` and eight alert/emerg lines (seven servers going DOWN, then
    /// "has no server available!") sent lines 1, 3, 4, 6 and 8 (captured
    /// with socat on the UDP port).
    #[test]
    fn as_haproxy_sampled() {
        assert_eq!(sent(&[(1, 1), (3, 4)], 5, 8), vec![1, 3, 4, 6, 8]);
    }

    #[test]
    fn runs_repeat() {
        assert_eq!(sent(&[(2, 2)], 3, 9), vec![2, 5, 8]);
        assert_eq!(sent(&[(1, 2), (4, 4)], 4, 12), vec![1, 2, 4, 5, 6, 8, 9, 10, 12]);
        assert_eq!(sent(&[(1, 1)], 1, 3), vec![1, 2, 3]);
    }
}

//! The XDP program's own time during a run: the kernel's bpf_stats
//! (run_time_ns and run_cnt) of the loaded programs named `lbxdp`. The
//! kernel keeps them while someone holds BPF_ENABLE_STATS, which the bench
//! does for its whole run (the descriptor closes with the process, and the
//! statistics stop with it). They cost every run of every BPF program two
//! clock reads, a few tens of ns: the XDP paths carry that handicap in
//! every figure of the run.
use std::{os::fd::OwnedFd, time::Duration};

/// The program's name as the kernel keeps it (the object's `lbxdp`).
const PROGRAM: &str = "lbxdp";

/// Turns the kernel's BPF statistics on for as long as the result lives;
/// None (and a note) if the kernel won't.
pub(super) fn enable() -> Option<OwnedFd> {
    match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => Some(fd),
        Err(e) => {
            println!("    (no BPF statistics: {e}; the XDP program's own time is not measured)");
            None
        }
    }
}

/// The sums over every loaded `lbxdp` program.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct ProgTime {
    pub(super) run_time: Duration,
    pub(super) runs: u64,
}

impl ProgTime {
    pub(super) fn now() -> Self {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter(|p| p.name_as_str() == Some(PROGRAM))
            .fold(Self::default(), |acc, p| Self {
                run_time: acc.run_time + p.run_time(),
                runs: acc.runs + p.run_count(),
            })
    }

    /// What ran between `self` and `later`; none if a program went away meanwhile.
    pub(super) fn until(self, later: Self) -> Self {
        Self {
            run_time: later.run_time.saturating_sub(self.run_time),
            runs: later.runs.saturating_sub(self.runs),
        }
    }
}

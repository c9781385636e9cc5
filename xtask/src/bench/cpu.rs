//! The machine's CPUs around each run: busy, softirq, the balancer's share and
//! everyone else's.
use std::{path::Path, time::Duration};

use anyhow::Context as _;
use lbxdp_testbed::Testbed;

use super::{prog_time::ProgTime, route::Route};

/// Above this machine-wide CPU use (%) just before a run, warn about noise.
pub(super) const BUSY_BEFORE: f64 = 15.0;
/// Above this CPU use (% of all cores) by processes outside the testbed during a run, warn about noise.
pub(super) const OTHERS_DURING: f64 = 5.0;

/// The machine's CPUs around one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Cpu {
    /// Busy in the half second before the run (others' load), in % of all cores.
    pub(super) before: f64,
    /// Busy during the run, in % of all cores, and softirq alone.
    pub(super) busy: f64,
    pub(super) softirq: f64,
    /// User processes outside this testbed during the run (someone's build or
    /// tests), in % of all cores.
    pub(super) others: f64,
    /// The processes in the LB's namespace (the agent, haproxy) during the run, in cores.
    pub(super) lb_cores: f64,
    /// Softirq time on all CPUs during the run, in CPU-seconds: every
    /// namespace's packet processing (veths, bridge, TCP/IP, conntrack, XDP).
    pub(super) softirq_s: f64,
    /// CPU-seconds (user + system) of the processes in the LB's namespace.
    pub(super) lb_s: f64,
    /// The XDP program's own time and runs (bpf_stats; zero for other paths).
    pub(super) prog: super::prog_time::ProgTime,
}

/// The clock of /proc/stat and /proc/PID/stat: USER_HZ, 100 on every Linux
/// architecture's ABI (the kernel converts from its own HZ).
const USER_HZ: f64 = 100.0;

impl Cpu {
    /// CPU-seconds that the run cost where a balancer can spend them: softirq
    /// (all of it: the testbed's namespaces share the CPUs, and the kernel
    /// doesn't split softirq time by namespace) plus the LB's processes.
    /// Subtracting the `direct` path's figure per unit of work leaves what
    /// the balancer added (see `report::LbCost`).
    pub(super) fn cost_s(&self) -> f64 {
        self.softirq_s + self.lb_s
    }

    /// Whether something outside the benchmark competed for the CPUs.
    pub(super) fn noisy(&self) -> bool {
        self.before > BUSY_BEFORE || self.others > OTHERS_DURING
    }

    /// For the progress lines.
    pub(super) fn note(&self, path: Route) -> String {
        let mut s = format!("cpu {:>3.0}% (softirq {:>2.0}%", self.busy, self.softirq);
        if path != Route::Direct {
            s.push_str(&format!(", lb {:.2} cores", self.lb_cores));
        }
        if self.others > OTHERS_DURING {
            s.push_str(&format!(", OTHERS {:.0}%", self.others));
        }
        s.push(')');
        s
    }
}

/// The testbed's namespaces as /proc/PID/ns/net links show them: the LB's,
/// and all of them.
pub(super) struct Namespaces {
    lb: String,
    all: Vec<String>,
}

impl Namespaces {
    pub(super) fn of(tb: &Testbed) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let link = |name: &str| -> anyhow::Result<String> {
            let path = Path::new("/run/netns").join(name);
            let ino = std::fs::metadata(&path)
                .with_context(|| format!("stat {}", path.display()))?
                .ino();
            Ok(format!("net:[{ino}]"))
        };
        Ok(Self {
            lb: link(&tb.lb.netns)?,
            all: tb.namespaces().iter().map(|n| link(n)).collect::<anyhow::Result<_>>()?,
        })
    }
}

/// Runs `f` and measures the machine's CPU around it.
pub(super) fn with_cpu<T>(ns: &Namespaces, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Cpu)> {
    // The machine before the run: what else (builds, tests) is using the CPUs.
    // A quarter second is 50 ticks of 2 CPUs: enough to tell a busy machine,
    // and the bench pays it before each of its hundred-odd runs.
    let idle_from = cpu_times()?;
    std::thread::sleep(Duration::from_millis(250));
    let before = cpu_times()?;
    let procs_before = proc_times();
    let prog_before = ProgTime::now();
    let (cpu_before, _) = cpu_use(&idle_from, &before);
    let value = f()?;
    let prog = prog_before.until(ProgTime::now());
    let procs_after = proc_times();
    let after = cpu_times()?;
    let (busy, softirq) = cpu_use(&before, &after);
    let total: u64 = (0..8)
        .map(|i| after.get(i).unwrap_or(&0).saturating_sub(*before.get(i).unwrap_or(&0)))
        .sum();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (lb, others) = proc_delta(&procs_before, &procs_after, ns, std::process::id());
    let share = |ticks: u64| {
        if total == 0 {
            f64::NAN
        } else {
            ticks as f64 / total as f64
        }
    };
    Ok((
        value,
        Cpu {
            before: cpu_before,
            busy,
            softirq,
            others: 100.0 * share(others),
            lb_cores: cpus * share(lb),
            softirq_s: after.get(6).unwrap_or(&0).saturating_sub(*before.get(6).unwrap_or(&0)) as f64 / USER_HZ,
            lb_s: lb as f64 / USER_HZ,
            prog,
        },
    ))
}

/// CPU ticks (user + system, reaped children's included) of every user-space
/// process by pid, with its network namespace link.
fn proc_times() -> std::collections::HashMap<u32, (String, u64)> {
    /// /proc/PID/stat's flags: a kernel thread.
    const PF_KTHREAD: u64 = 0x0020_0000;
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: field 3 (state) is [0].
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // flags is field 9, utime..cstime are fields 14..=17.
        if f.len() < 14 || f[5] & PF_KTHREAD != 0 {
            continue;
        }
        let ticks = f[10..14].iter().sum();
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(pid, (ns, ticks));
    }
    out
}

/// Ticks between two snapshots: (processes in the LB's namespace, processes
/// outside the testbed but this one). Processes that started in between count
/// whole; ones that ended in between count in their parent's reaped time.
fn proc_delta(
    before: &std::collections::HashMap<u32, (String, u64)>,
    after: &std::collections::HashMap<u32, (String, u64)>,
    ns: &Namespaces,
    me: u32,
) -> (u64, u64) {
    let (mut lb, mut others) = (0, 0);
    for (pid, (link, ticks)) in after {
        let d = ticks.saturating_sub(before.get(pid).map_or(0, |(_, t)| *t));
        if *link == ns.lb {
            lb += d;
        } else if *pid != me && !ns.all.contains(link) {
            others += d;
        }
    }
    (lb, others)
}

/// The first line of /proc/stat: jiffies per state, summed over CPUs.
fn cpu_times() -> anyhow::Result<Vec<u64>> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    Ok(line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
}

/// Busy and softirq shares of all CPUs between two samples, in %.
fn cpu_use(before: &[u64], after: &[u64]) -> (f64, f64) {
    let d = |i: usize| after.get(i).unwrap_or(&0).saturating_sub(*before.get(i).unwrap_or(&0)) as f64;
    // user nice system idle iowait irq softirq steal (guest time is in user already).
    let total: f64 = (0..8).map(d).sum();
    if total == 0.0 {
        return (f64::NAN, f64::NAN);
    }
    (100.0 * (total - d(3) - d(4)) / total, 100.0 * d(6) / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ticks_by_namespace() {
        let ns = Namespaces {
            lb: "net:[2]".into(),
            all: vec!["net:[2]".into(), "net:[3]".into()],
        };
        let snap = |v: &[(u32, &str, u64)]| -> std::collections::HashMap<u32, (String, u64)> {
            v.iter().map(|&(pid, l, t)| (pid, (l.to_string(), t))).collect()
        };
        let before = snap(&[
            (10, "net:[2]", 100),
            (11, "net:[1]", 50),
            (12, "net:[3]", 5),
            (99, "net:[1]", 7),
        ]);
        // 13 started during the run, 12 (a testbed backend) doesn't count, 99 is this process.
        let after = snap(&[
            (10, "net:[2]", 130),
            (11, "net:[1]", 60),
            (12, "net:[3]", 500),
            (13, "net:[1]", 4),
            (99, "net:[1]", 70),
        ]);
        assert_eq!(proc_delta(&before, &after, &ns, 99), (30, 14));
        let me = proc_times();
        assert!(me.contains_key(&std::process::id()));
        assert!(!me.contains_key(&2), "kthreadd is a kernel thread");
    }

    #[test]
    fn cpu_shares() {
        let (busy, soft) = cpu_use(&[0; 10], &[10, 0, 20, 50, 0, 0, 20, 0, 0, 0]);
        assert_eq!(busy, 50.0);
        assert_eq!(soft, 20.0);
    }
}

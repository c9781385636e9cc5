//! The targets (issue 13), checked against one run's workloads: each
//! is a ratio of two paths' medians, or an absolute figure, in one workload.
use super::results::{Published, Workload};

/// The XDP path the targets hold to: the mode `--xdp-mode auto` picks, which
/// on the testbed's veth is generic; native where generic wasn't measured.
const XDP: &[&str] = &["xdp-generic", "xdp-native"];
const NFTABLES: &[&str] = &["nftables"];
const HAPROXY: &[&str] = &["haproxy"];
const PROXY: &[&str] = &["proxy"];
/// The DNAT paths (two-arm testbed): XDP as above, and nftables' DNAT.
const XDP_DNAT: &[&str] = &["xdp-generic-dnat", "xdp-native-dnat"];
const NFTABLES_DNAT: &[&str] = &["nftables-dnat"];
/// The XDP_TX floor's row in the UDP workload.
const XDP_TX: &[&str] = &["xdp-tx-floor"];
/// The program alone: an established flow's hit, IPv4.
const PROG_HIT: &[&str] = &["established-v4", "established"];

/// Workload keys the targets read.
const NEW_CONNS: &str = "close_rps";
const DNAT_NEW_CONNS: &str = "dnat_close_rps";
const UDP_PPS: &str = "udp_pps";
const CPU_PER_CONN: &str = "cpu_per_conn";
const PROG_NS: &str = "prog_ns";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
}

impl Want {
    fn met(self, v: f64) -> bool {
        match self {
            Self::AtLeast(t) => v >= t,
            Self::AtMost(t) => v <= t,
            Self::Below(t) => v < t,
        }
    }

    fn show(self, ratio: bool) -> String {
        let (op, t) = match self {
            Self::AtLeast(t) => ("≥", t),
            Self::AtMost(t) => ("≤", t),
            Self::Below(t) => ("<", t),
        };
        if ratio {
            format!("{op} {}×", short(t))
        } else {
            format!("{op} {}", short(t))
        }
    }
}

/// One target, for one workload.
struct Target {
    what: String,
    workload: String,
    num: &'static [&'static str],
    /// None: an absolute figure in the workload's unit.
    den: Option<&'static [&'static str]>,
    want: Want,
}

/// Whether a target was met in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Met,
    Missed,
    NotMeasured,
}

impl Status {
    pub(super) fn word(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "**missed**",
            Self::NotMeasured => "not measured",
        }
    }
}

/// A target checked against a run: a line of the docs' table.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Checked {
    pub(super) what: String,
    /// Which figure: `xdp-generic/nftables in close_rps`.
    pub(super) figure: String,
    pub(super) measured: String,
    pub(super) wanted: String,
    pub(super) status: Status,
}

/// The targets that exist for this run's workloads: the fixed ones always
/// (not measured when their workload or paths are absent), the "every
/// workload" ones for each workload that has both paths.
fn targets(p: &Published) -> Vec<Target> {
    let fixed = |what: &str, workload: &str, num, den, want| Target {
        what: what.into(),
        workload: workload.into(),
        num,
        den,
        want,
    };
    let mut t = vec![
        fixed(
            "XDP ≥ 1.5× nftables' new connections/s",
            NEW_CONNS,
            XDP,
            Some(NFTABLES),
            Want::AtLeast(1.5),
        ),
        fixed(
            "XDP ≥ 2× nftables' UDP packets/s",
            UDP_PPS,
            XDP,
            Some(NFTABLES),
            Want::AtLeast(2.0),
        ),
        fixed(
            "XDP ≤ 1/3 of nftables' CPU per connection",
            CPU_PER_CONN,
            XDP,
            Some(NFTABLES),
            Want::AtMost(1.0 / 3.0),
        ),
        fixed(
            "XDP ≥ 2× HAProxy's new connections/s",
            NEW_CONNS,
            XDP,
            Some(HAPROXY),
            Want::AtLeast(2.0),
        ),
        fixed(
            "UDP packets/s through lbxdp ≥ 60% of the XDP_TX floor",
            UDP_PPS,
            XDP,
            Some(XDP_TX),
            Want::AtLeast(0.6),
        ),
        fixed(
            "Established-flow hit < 100 ns per packet (BPF_PROG_TEST_RUN)",
            PROG_NS,
            PROG_HIT,
            None,
            Want::Below(100.0),
        ),
    ];
    if p.workload(DNAT_NEW_CONNS).is_some() {
        // The same target for DNAT, against the kernel's DNAT: only where the
        // run had the two-arm paths (not every run measures DNAT).
        t.push(fixed(
            "XDP DNAT ≥ 1.5× nftables DNAT's new connections/s",
            DNAT_NEW_CONNS,
            XDP_DNAT,
            Some(NFTABLES_DNAT),
            Want::AtLeast(1.5),
        ));
    }
    let has = |w: &Workload, names: &[&str]| names.iter().any(|n| w.get(n).is_some());
    for w in p.workloads.iter().filter(|w| is_latency(w)) {
        if has(w, XDP) && has(w, HAPROXY) {
            t.push(fixed(
                "XDP's p99 ≤ HAProxy's",
                &w.key,
                XDP,
                Some(HAPROXY),
                Want::AtMost(1.0),
            ));
        }
    }
    for w in p.workloads.iter().filter(|w| has(w, PROXY) && has(w, HAPROXY)) {
        let want = if w.higher_is_better {
            Want::AtLeast(1.0)
        } else {
            Want::AtMost(1.0)
        };
        t.push(fixed(
            "Proxy level with HAProxy or better",
            &w.key,
            PROXY,
            Some(HAPROXY),
            want,
        ));
    }
    t
}

/// A p99 (or other latency percentile) workload: the "p99 on every
/// workload" target covers them.
fn is_latency(w: &Workload) -> bool {
    w.key.contains("p99")
}

/// Every target, checked.
pub(super) fn check(p: &Published) -> Vec<Checked> {
    targets(p)
        .into_iter()
        .map(|t| {
            let w = p.workload(&t.workload);
            let first = |names: &[&str]| -> Option<(String, f64)> {
                names
                    .iter()
                    .find_map(|n| w.and_then(|w| w.get(n)).map(|v| (n.to_string(), v)))
            };
            let num = first(t.num);
            let (figure, value) = match (t.den, num) {
                (None, Some((n, v))) => (format!("{n} in {}", t.workload), Some(v)),
                (Some(den), Some((n, v))) => match first(den) {
                    Some((d, dv)) if dv != 0.0 => (format!("{n}/{d} in {}", t.workload), Some(v / dv)),
                    _ => (format!("{n}/{} in {}", den[0], t.workload), None),
                },
                (den, None) => {
                    // Named as the run's other workloads would have it.
                    let n = t
                        .num
                        .iter()
                        .find(|n| p.workloads.iter().any(|w| w.get(n).is_some()))
                        .unwrap_or(&t.num[0]);
                    let figure = match den {
                        Some(den) => format!("{n}/{} in {}", den[0], t.workload),
                        None => format!("{n} in {}", t.workload),
                    };
                    (figure, None)
                }
            };
            let unit = w.map(|w| w.unit.as_str()).unwrap_or_default();
            Checked {
                what: t.what,
                figure,
                measured: match value {
                    Some(v) if t.den.is_some() => format!("{}×", short(v)),
                    Some(v) => format!("{} {unit}", short(v)).trim_end().to_string(),
                    None => "-".into(),
                },
                wanted: if t.den.is_some() {
                    t.want.show(true)
                } else {
                    format!("{} {unit}", t.want.show(false)).trim_end().to_string()
                },
                status: match value {
                    Some(v) if t.want.met(v) => Status::Met,
                    Some(_) => Status::Missed,
                    None => Status::NotMeasured,
                },
            }
        })
        .collect()
}

/// A ratio or small figure with two decimals, without trailing zeros.
fn short(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::{super::results::fixture, *};

    #[test]
    fn checks_the_fixture() {
        let checked = check(&fixture::published());
        let find = |what: &str, figure: &str| {
            checked
                .iter()
                .find(|c| c.what.starts_with(what) && c.figure.contains(figure))
                .unwrap_or_else(|| panic!("{what} / {figure} in {checked:#?}"))
        };
        // 15000 / 12000 = 1.25 (native: generic wasn't measured).
        let c = find("XDP ≥ 1.5× nftables", "close_rps");
        assert_eq!(
            (c.figure.as_str(), c.measured.as_str(), c.wanted.as_str(), c.status),
            ("xdp-native/nftables in close_rps", "1.25×", "≥ 1.5×", Status::Missed)
        );
        let c = find("XDP ≥ 2× HAProxy", "close_rps");
        assert_eq!((c.measured.as_str(), c.status), ("1.5×", Status::Missed));
        // No nftables row in udp_pps, no cpu_per_conn, no prog_ns: not measured.
        assert_eq!(find("XDP ≥ 2× nftables' UDP", "udp").status, Status::NotMeasured);
        assert_eq!(find("XDP ≤ 1/3", "cpu_per_conn").status, Status::NotMeasured);
        let c = find("Established", "prog_ns");
        assert_eq!((c.measured.as_str(), c.status), ("-", Status::NotMeasured));
        // 2e6 / 3e6.
        let c = find("UDP packets/s through lbxdp", "udp");
        assert_eq!((c.measured.as_str(), c.status), ("0.67×", Status::Met));
        // p99: 4 ms against 5 ms.
        assert_eq!(find("XDP's p99", "close_p99_ms").status, Status::Met);
        // Proxy: 0.9× on req/s (missed), 6 ms against 5 ms p99 (missed; lower is better).
        assert_eq!(find("Proxy", "close_rps").status, Status::Missed);
        let c = find("Proxy", "close_p99_ms");
        assert_eq!((c.wanted.as_str(), c.status), ("≤ 1×", Status::Missed));
        assert!(
            !checked.iter().any(|c| c.what.contains("DNAT")),
            "no DNAT workload, no DNAT target"
        );
        let mut p = fixture::published();
        p.workloads.push(
            Workload::new(DNAT_NEW_CONNS, "New connections/s, two-arm DNAT", "req/s", true, "wrk")
                .row("xdp-generic-dnat", vec![Some(16000.0)])
                .row("nftables-dnat", vec![Some(10000.0)]),
        );
        let c = check(&p).into_iter().find(|c| c.what.contains("DNAT")).unwrap();
        assert_eq!(
            (c.figure.as_str(), c.measured.as_str(), c.status),
            ("xdp-generic-dnat/nftables-dnat in dnat_close_rps", "1.6×", Status::Met)
        );
    }

    #[test]
    fn absolute_targets_use_the_unit() {
        let mut p = fixture::published();
        p.workloads.push(
            Workload::new(PROG_NS, "ns per packet", "ns", false, "BPF_PROG_TEST_RUN")
                .row("established-v4", vec![Some(80.0)]),
        );
        let c = check(&p).into_iter().find(|c| c.figure.contains(PROG_NS)).unwrap();
        assert_eq!(
            (c.measured.as_str(), c.wanted.as_str(), c.status),
            ("80 ns", "< 100 ns", Status::Met)
        );
        assert_eq!(short(1.0 / 3.0), "0.33");
        assert_eq!(short(2.0), "2");
    }
}

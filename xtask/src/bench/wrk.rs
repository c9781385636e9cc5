//! wrk runs (keep-alive and `Connection: close`) and their output, parsed.
//! wrk's `--latency` prints four percentiles; a Lua script's `done()` hook
//! prints many more (`latency:percentile(p)`), for the latency CDF.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};

use lbxdp_testbed::{NsCommand, Testbed};

use super::{
    Bed, BenchArgs, Measured, Run,
    balancer::{ANSWER_WITHIN, Lb, drain_time_wait, wait_answers},
    cpu::with_cpu,
    route::Route,
};

/// How the script's lines start, so that they can't be taken for wrk's own.
const PCT_LINE: &str = "lbxdp-percentile";

/// The percentiles the script prints: every whole one, then the tail.
pub(super) fn script_percentiles() -> Vec<f64> {
    (1..=99).map(f64::from).chain([99.5, 99.9, 99.99]).collect()
}

/// Writes the latency script into `dir`; returns its path.
pub(super) fn write_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let list: Vec<String> = script_percentiles().iter().map(f64::to_string).collect();
    let lua = format!(
        "-- Written by cargo xtask bench: wrk's latency distribution, in microseconds,\n\
         -- at many percentiles (--latency prints four).\n\
         done = function(summary, latency, requests)\n\
         \x20 for _, p in ipairs({{ {} }}) do\n\
         \x20   io.write(string.format(\"{PCT_LINE} %g %d\\n\", p, latency:percentile(p)))\n\
         \x20 end\n\
         end\n",
        list.join(", ")
    );
    let file = dir.join("latency.lua");
    std::fs::write(&file, lua).with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

/// Whether wrk keeps its connections or opens one per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Conn {
    KeepAlive,
    Close,
}

impl Conn {
    pub(super) const ALL: [Self; 2] = [Self::KeepAlive, Self::Close];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::KeepAlive => "keepalive",
            Self::Close => "close",
        }
    }
}

/// What wrk printed, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Wrk {
    pub(super) rps: f64,
    pub(super) requests: u64,
    pub(super) lat_avg_ms: f64,
    pub(super) lat_p99_ms: f64,
    /// The latency distribution: (percentile, ms), from the script when it
    /// ran, else the four `--latency` prints.
    pub(super) percentiles: Vec<(f64, f64)>,
    /// connect, read, write, timeout.
    pub(super) socket_errors: [u64; 4],
    pub(super) non_2xx: u64,
}

impl Wrk {
    pub(super) fn errors(&self) -> u64 {
        self.socket_errors.iter().sum::<u64>() + self.non_2xx
    }
}

/// One bounded wrk run of a scenario, with a fresh balancer around it.
pub(super) fn run_wrk(bed: &Bed<'_>, round: u32, path: Route, conn: Conn) -> anyhow::Result<Run> {
    let side = bed.side(path)?;
    let tb = side.tb;
    let tag = format!("r{round}-{}-{}", conn.name(), path.name());
    let url = url(tb, path);
    drain_time_wait(tb)?;
    let mut lb = Lb::start(tb, bed.bin, &side.cfg, path, &tag)?;
    // One answer first: a broken path fails here in seconds, not after a whole
    // run. The agent attaches before it fills its maps, so the VIP may refuse
    // connections for a moment after the attach.
    wait_answers(tb, &url, ANSWER_WITHIN, &mut lb)?;

    let mut cmd = wrk_command(tb, bed.args, &url, bed.args.duration, conn, Some(&side.script));
    let (wrk, cpu) = with_cpu(&side.ns, || run(&mut cmd, bed.args.duration + bed.args.timeout + 30))?;
    let report = lb.stop()?;
    Ok(Run {
        round,
        path,
        measured: Measured::Wrk(conn, wrk),
        cpu,
        report,
    })
}

/// Where a path's requests go: web1 for direct, else the VIP.
pub(super) fn url(tb: &Testbed, path: Route) -> String {
    match path {
        Route::Direct => format!("http://{}/", tb.backends[0].v4()),
        _ => format!("http://{}/", tb.lb.v4()),
    }
}

/// wrk from the client, as every run calls it, with the latency script or without.
pub(super) fn wrk_command(
    tb: &Testbed,
    args: &BenchArgs,
    url: &str,
    secs: u64,
    conn: Conn,
    script: Option<&Path>,
) -> NsCommand {
    let mut cmd = tb.command(&tb.client, "wrk");
    cmd.arg(format!("-t{}", args.threads))
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg(format!("{}s", args.timeout))
        .arg("--latency");
    if conn == Conn::Close {
        cmd.args(["-H", "Connection: close"]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(url);
    cmd
}

/// Runs wrk (bounded by `limit_secs`) and parses what it printed.
pub(super) fn run(cmd: &mut NsCommand, limit_secs: u64) -> anyhow::Result<Wrk> {
    let out = cmd
        .output_timeout(Duration::from_secs(limit_secs))
        .context("running wrk (`cargo xtask setup` installs it)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "`{}` failed: {}\n{stdout}{}",
            cmd.show(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&stdout).with_context(|| format!("parsing wrk's output:\n{stdout}"))
}

/// Parses wrk's report (run with --latency).
fn parse_wrk(out: &str) -> anyhow::Result<Wrk> {
    let mut w = Wrk {
        lat_avg_ms: f64::NAN,
        lat_p99_ms: f64::NAN,
        ..Wrk::default()
    };
    let mut saw_rps = false;
    // The script's percentiles, when it ran: they replace --latency's four.
    let mut script: Vec<(f64, f64)> = Vec::new();
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&PCT_LINE) {
            let (Some(pct), Some(us)) = (words.get(1), words.get(2)) else {
                bail!("{line:?}: no percentile and time");
            };
            let pct: f64 = pct.parse().with_context(|| format!("{line:?}"))?;
            let us: f64 = us.parse().with_context(|| format!("{line:?}"))?;
            script.push((pct, us / 1000.0));
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().with_context(|| format!("{line:?}"))?;
            saw_rps = true;
        } else if words.first() == Some(&"Latency") && words.len() > 1 && words[1] != "Distribution" {
            w.lat_avg_ms = parse_time_ms(words[1])?;
        } else if let (Some(pct), Some(time)) = (words.first().and_then(|w| w.strip_suffix('%')), words.get(1))
            && words.len() == 2
            && let Ok(pct) = pct.parse::<f64>()
        {
            let ms = parse_time_ms(time)?;
            w.percentiles.push((pct, ms));
            if pct == 99.0 {
                w.lat_p99_ms = ms;
            }
        } else if words.len() > 2 && words[1] == "requests" && words[2] == "in" {
            w.requests = words[0].parse().with_context(|| format!("{line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (i, part) in rest.split(',').enumerate().take(4) {
                let n = part.split_whitespace().nth(1).unwrap_or("0");
                w.socket_errors[i] = n.parse().with_context(|| format!("{line:?}"))?;
            }
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = v.trim().parse().with_context(|| format!("{line:?}"))?;
        }
    }
    if !saw_rps {
        bail!("no \"Requests/sec:\" line");
    }
    if !script.is_empty() {
        w.percentiles = script;
    }
    Ok(w)
}

/// wrk's times ("812.00us", "1.23ms", "2.00s", "1.00m") in milliseconds.
fn parse_time_ms(s: &str) -> anyhow::Result<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().with_context(|| format!("time {s:?}"))?;
    let scale = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => bail!("time {s:?}: unknown unit"),
    };
    Ok(num * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://198.18.0.101/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us  10.00ms   80.00%
    Req/Sec    10.00k     1.00k   12.00k    70.00%
  Latency Distribution
     50%    1.00ms
     75%    1.50ms
     90%    2.00ms
     99%  812.00us
  200000 requests in 10.00s, 30.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  20000.50
Transfer/sec:      3.00MB
";

    #[test]
    fn parses_wrk_output() {
        let w = parse_wrk(WRK).unwrap();
        assert_eq!(w.rps, 20000.5);
        assert_eq!(w.requests, 200_000);
        assert_eq!(w.lat_avg_ms, 1.23);
        assert!((w.lat_p99_ms - 0.812).abs() < 1e-9);
        assert_eq!(w.percentiles.len(), 4);
        assert_eq!(w.percentiles[..3], [(50.0, 1.0), (75.0, 1.5), (90.0, 2.0)]);
        assert_eq!(w.socket_errors, [1, 2, 3, 4]);
        assert_eq!(w.non_2xx, 5);
        assert_eq!(w.errors(), 15);
    }

    #[test]
    fn the_scripts_percentiles_replace_the_four() {
        let out = format!("{WRK}lbxdp-percentile 1 250\nlbxdp-percentile 99.99 12000\n");
        let w = parse_wrk(&out).unwrap();
        assert_eq!(w.percentiles, [(1.0, 0.25), (99.99, 12.0)]);
        assert!((w.lat_p99_ms - 0.812).abs() < 1e-9, "p99 stays --latency's");
        assert!(parse_wrk(&format!("{WRK}lbxdp-percentile 5\n")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let lua = std::fs::read_to_string(write_script(dir.path()).unwrap()).unwrap();
        assert!(lua.contains("ipairs({ 1, 2, 3,"), "{lua}");
        assert!(lua.contains(", 99, 99.5, 99.9, 99.99 })"), "{lua}");
        assert!(
            lua.contains("string.format(\"lbxdp-percentile %g %d\\n\", p, latency:percentile(p))"),
            "{lua}"
        );
    }

    #[test]
    fn wrk_output_without_rate_is_an_error() {
        assert!(parse_wrk("unable to connect to 198.18.0.2:80 Connection refused").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("2.00s").unwrap(), 2000.0);
        assert_eq!(parse_time_ms("1.50m").unwrap(), 90_000.0);
        assert!(parse_time_ms("3.0x").is_err());
    }
}

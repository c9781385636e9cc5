//! iperf3: the server on web1, client runs of one or more parallel streams
//! (`-P`), and their JSON, parsed.
use std::{
    fs::File,
    net::Ipv4Addr,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lbxdp_testbed::Testbed;
use serde_json::Value;

use super::{
    Bed, Measured, Run,
    balancer::{ANSWER_WITHIN, Lb, wait_answers},
    cpu::with_cpu,
    route::Route,
};

/// The iperf3 server's port on web1, and the VIP's second frontend.
pub(super) const IPERF_PORT: u16 = 5201;

/// What iperf3 -J printed, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Iperf {
    /// end.sum_received.bits_per_second.
    pub(super) bps: f64,
    /// end.sum_received.bytes: what the CPU cost per Gbit is divided by.
    pub(super) bytes: u64,
    /// end.sum_sent.retransmits.
    pub(super) retransmits: u64,
    /// The client's (sender's) and the server's (receiver's) CPU use, in %.
    pub(super) sender_cpu: f64,
    pub(super) receiver_cpu: f64,
}

/// An iperf3 server on web1 for the whole bench, kept with the testbed (which
/// ends it); returns once it listens. No probe connects to it: a bare connect
/// is a broken test to iperf3. `--rcv-timeout` frees it from a dead client.
pub(super) fn start_iperf_server(tb: &mut Testbed) -> anyhow::Result<()> {
    let web1 = tb.backends[0].clone();
    let log = File::create(tb.dir().join("iperf3-server.log")).context("creating the iperf3 log")?;
    let child = tb
        .command(&web1, "iperf3")
        // A test whose client went away (a proxy resetting a stream at the
        // end) would hold the one-test server: it gives up on it after these.
        .args([
            "-s",
            "-p",
            &IPERF_PORT.to_string(),
            "--rcv-timeout",
            "5000",
            "--idle-timeout",
            "10",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting iperf3 (`cargo xtask setup` installs it)")?;
    tb.adopt(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = tb
            .command(&web1, "ss")
            .args(["-Hltn", &format!("sport = :{IPERF_PORT}")])
            .output_timeout(Duration::from_secs(5))?;
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(tb.dir().join("iperf3-server.log")).unwrap_or_default();
            bail!("the iperf3 server on {} did not listen within 10 s:\n{log}", web1.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One bounded iperf3 run (`streams` parallel TCP streams, client to
/// server), with a fresh balancer around it.
pub(super) fn run_iperf(bed: &Bed<'_>, round: u32, path: Route, streams: u32) -> anyhow::Result<Run> {
    let side = bed.side(path)?;
    let (tb, bin, cfg, args, ns) = (side.tb, bed.bin, &side.cfg, bed.args, &side.ns);
    let tag = format!("r{round}-iperf3-P{streams}-{}", path.name());
    let target = match path {
        Route::Direct => tb.backends[0].v4(),
        _ => tb.lb.v4(),
    };
    let mut lb = Lb::start(tb, bin, cfg, path, &tag)?;
    // The balancer answers HTTP on the same VIP first: it is up, with both frontends.
    wait_answers(tb, &format!("http://{target}/"), ANSWER_WITHIN, &mut lb)?;
    let (iperf, cpu) = with_cpu(ns, || iperf_client(tb, target, args.iperf_secs, streams))?;
    let report = lb.stop()?;
    Ok(Run {
        round,
        path,
        measured: Measured::Iperf(streams, iperf),
        cpu,
        report,
    })
}

/// `iperf3 -c target -J` from the client (bounded). Errors before the test
/// started (refused, server still busy with the last one) are retried for a
/// few seconds; anything else fails.
fn iperf_client(tb: &Testbed, target: Ipv4Addr, secs: u64, streams: u32) -> anyhow::Result<Iperf> {
    // A server still busy with the last test frees itself within its
    // --rcv-timeout and --idle-timeout: wait that long, and some.
    let deadline = Instant::now() + ANSWER_WITHIN + Duration::from_secs(20);
    loop {
        let mut cmd = tb.command(&tb.client, "iperf3");
        cmd.args(["-c", &target.to_string(), "-p", &IPERF_PORT.to_string()])
            .args(["-t", &secs.to_string(), "-J", "--connect-timeout", "3000"])
            .args(["-P", &streams.to_string()]);
        let out = cmd
            .output_timeout(Duration::from_secs(secs + 30))
            .context("running iperf3 (`cargo xtask setup` installs it)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let why = match parse_iperf(&stdout) {
            Ok(i) if out.status.success() => return Ok(i),
            Ok(_) => format!("exit status {}", out.status),
            Err(e) => format!("{e:#}"),
        };
        let early = why.contains("unable to connect") || why.contains("busy");
        if !early || Instant::now() > deadline {
            bail!(
                "`{}` failed: {why}\n{}",
                cmd.show(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Parses `iperf3 -J` (client side).
fn parse_iperf(out: &str) -> anyhow::Result<Iperf> {
    let v: Value = serde_json::from_str(out.trim()).context("iperf3's JSON")?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let end = &v["end"];
    Ok(Iperf {
        bps: end["sum_received"]["bits_per_second"]
            .as_f64()
            .context("no end.sum_received.bits_per_second")?,
        bytes: end["sum_received"]["bytes"].as_u64().unwrap_or(0),
        retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        sender_cpu: end["cpu_utilization_percent"]["host_total"]
            .as_f64()
            .unwrap_or(f64::NAN),
        receiver_cpu: end["cpu_utilization_percent"]["remote_total"]
            .as_f64()
            .unwrap_or(f64::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iperf_json() {
        let out = r#"{"start": {}, "end": {"sum_sent": {"bits_per_second": 2.1e10, "retransmits": 7},
            "sum_received": {"bits_per_second": 2.0e10, "bytes": 12500000000},
            "cpu_utilization_percent": {"host_total": 55.5, "remote_total": 80.25}}}"#;
        let i = parse_iperf(out).unwrap();
        assert_eq!(i.bps, 2.0e10);
        assert_eq!(i.bytes, 12_500_000_000);
        assert_eq!(i.retransmits, 7);
        assert_eq!(i.sender_cpu, 55.5);
        assert_eq!(i.receiver_cpu, 80.25);
        let err =
            parse_iperf(r#"{"start": {}, "end": {}, "error": "unable to connect to server: Connection refused"}"#);
        assert!(format!("{:#}", err.unwrap_err()).contains("unable to connect"));
        assert!(parse_iperf("iperf3: error").is_err());
    }
}

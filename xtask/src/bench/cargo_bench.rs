//! Running the agent's micro-benchmarks (`cargo bench -p lbxdp-agent`),
//! bounded in time, with the XDP object this run built.
use std::{
    io::Read,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{build, util};

/// `cargo bench -p lbxdp-agent --bench B... -- ARGS` (killed after `within`,
/// compile included), echoing the command; returns the non-empty lines it
/// printed on stdout. Cargo's and the benches' stderr show only on failure.
/// `quick` (a smoke run that times nothing) builds them with the dev
/// profile, whose dependencies the tests already built: the optimised build
/// takes minutes on this machine.
pub(super) fn cargo_bench(
    benches: &[&str],
    args: &[&str],
    within: Duration,
    quick: bool,
) -> anyhow::Result<Vec<String>> {
    let mut cmd = util::cargo();
    cmd.args(["bench", "--locked", "-p", "lbxdp-agent"]);
    if quick {
        cmd.args(["--profile", "dev"]);
    }
    for b in benches {
        cmd.args(["--bench", b]);
    }
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    cmd.env("LBXDP_EBPF_OBJECT", build::ebpf_object())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!(
        "    $ LBXDP_EBPF_OBJECT={} {}",
        build::ebpf_object().display(),
        util::show(&cmd)
    );
    let t = Instant::now();
    let mut child = cmd.spawn().context("starting cargo bench")?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if t.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cargo bench ran longer than {within:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        String::from_utf8_lossy(&h.and_then(|h| h.join().ok()).unwrap_or_default()).into_owned()
    };
    let (stdout, stderr) = (join(stdout), join(stderr));
    if !status.success() {
        bail!("`{}` failed: {status}\n{stdout}{stderr}", util::show(&cmd));
    }
    println!("    [took {:.1?}, compile included]", t.elapsed());
    Ok(stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

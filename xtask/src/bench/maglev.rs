//! The Maglev rebuild micro-benchmark (`cargo bench --bench maglev`).
use std::{
    io::Read,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    build,
    util::{self, step},
};

/// The Maglev micro-benchmark, compile included.
const MAGLEV_WITHIN: Duration = Duration::from_secs(600);

/// `cargo bench -p lbxdp-agent --bench maglev` (bounded), echoing and
/// returning the lines it printed; cargo's own output shows only on failure.
pub(super) fn maglev_bench() -> anyhow::Result<Vec<String>> {
    step("bench: Maglev rebuild micro-benchmark (cargo bench -p lbxdp-agent --bench maglev)");
    let mut cmd = util::cargo();
    cmd.args(["bench", "--locked", "-p", "lbxdp-agent", "--bench", "maglev"])
        .env("LBXDP_EBPF_OBJECT", build::ebpf_object())
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
        if t.elapsed() > MAGLEV_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cargo bench ran longer than {MAGLEV_WITHIN:?} and was killed");
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
    let lines: Vec<String> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    for l in &lines {
        println!("    {l}");
    }
    println!("    [took {:.1?}, compile included]", t.elapsed());
    Ok(lines)
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

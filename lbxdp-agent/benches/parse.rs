//! How long a configuration of 10,000 servers takes to read: the parse
//! alone (`config::parse_str`, text in memory) and the agent's whole load
//! (`config_files::load`: reading the file, parsing, the checks against the
//! machine). Medians over repeated runs; one JSON line on stdout, a readable
//! one on stderr. `--quick` runs it twice, to see that it works. Run by
//! `cargo xtask bench`.
use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, ensure};
use lbxdp_agent::{config, config_files};
use serde_json::json;

/// 100 frontends, each with a backend of 100 checked servers.
const SECTIONS: usize = 100;
const SERVERS_EACH: usize = 100;
const RUNS: usize = 15;
const QUICK_RUNS: usize = 2;
/// Stop taking runs after this long (there is at least one).
const WITHIN: Duration = Duration::from_secs(20);

/// The generated haproxy.cfg: VIPs and servers in the testbeds' range.
fn generated() -> String {
    let mut cfg = String::from(
        "global\n    maxconn 100000\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n",
    );
    for f in 0..SECTIONS {
        let _ = write!(
            cfg,
            "frontend fe{f}\n    bind 198.18.200.{}:80\n    default_backend be{f}\nbackend be{f}\n    balance roundrobin\n",
            f + 1
        );
        for s in 0..SERVERS_EACH {
            let n = f * SERVERS_EACH + s;
            let _ = writeln!(
                cfg,
                "    server s{s} 198.19.{}.{}:8080 check inter 2s weight {}",
                n / 250,
                n % 250 + 1,
                1 + s % 3
            );
        }
    }
    cfg
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d.get(d.len() / 2).copied().unwrap_or_default()
}

/// Runs `f` until there are `runs` timings or the time is up.
fn timed(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<(Duration, usize)> {
    let start = Instant::now();
    let mut times = Vec::with_capacity(runs);
    while times.len() < runs && (times.is_empty() || start.elapsed() < WITHIN) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    let n = times.len();
    Ok((median(times), n))
}

fn main() -> anyhow::Result<()> {
    let runs = if std::env::args().any(|a| a == "--quick") {
        QUICK_RUNS
    } else {
        RUNS
    };
    let text = generated();
    let servers = SECTIONS * SERVERS_EACH;
    let count = |c: &config::Config| c.backends.iter().map(|b| b.servers.len()).sum::<usize>();

    let (parse, n) = timed(runs, || {
        let (c, _) = config::parse_str("10k.cfg", &text).map_err(|d| anyhow!("the generated config: {d:?}"))?;
        ensure!(count(&c) == servers, "parsed {} servers, not {servers}", count(&c));
        std::hint::black_box(c);
        Ok(())
    })?;

    let dir = tempfile::tempdir().context("a temporary directory")?;
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &text).context("writing the generated config")?;
    let paths = [path];
    let (load, _) = timed(runs, || {
        let loaded = config_files::load(&paths)?;
        let c = loaded
            .config
            .ok_or_else(|| anyhow!("the generated config was refused: {:?}", loaded.diags))?;
        ensure!(count(&c) == servers, "loaded {} servers, not {servers}", count(&c));
        std::hint::black_box(c);
        Ok(())
    })?;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "parse: {servers} servers ({} KiB): parse_str median {:.2} ms, config_files::load median {:.2} ms ({n} runs)",
        text.len() / 1024,
        ms(parse),
        ms(load)
    );
    println!(
        "{}",
        json!({
            "kind": "parse",
            "servers": servers,
            "bytes": text.len(),
            "parse_ms": ms(parse),
            "load_ms": ms(load),
            "runs": n,
        })
    );
    Ok(())
}

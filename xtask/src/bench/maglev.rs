//! The Maglev rebuild micro-benchmark (`cargo bench --bench maglev`).
use std::time::Duration;

use super::cargo_bench::cargo_bench;
use crate::util::step;

/// The Maglev micro-benchmark, compile included.
const MAGLEV_WITHIN: Duration = Duration::from_secs(600);

/// `cargo bench -p lbxdp-agent --bench maglev` (bounded), echoing and
/// returning the lines it printed; cargo's own output shows only on failure.
pub(super) fn maglev_bench(quick: bool) -> anyhow::Result<Vec<String>> {
    step("bench: Maglev rebuild micro-benchmark (cargo bench -p lbxdp-agent --bench maglev)");
    let lines = cargo_bench(&["maglev"], &[], MAGLEV_WITHIN, quick)?;
    for l in &lines {
        println!("    {l}");
    }
    Ok(lines)
}

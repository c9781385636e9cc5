//! `cargo xtask setup | build | run | test | bench`: everything a new machine needs
//! to build, demo and test lbxdp, with nothing installed by hand.
mod agent;
mod bench;
mod build;
mod demo;
mod interrupt;
mod scale_out;
mod setup;
mod tests;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, demo and test lbxdp")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make this machine ready: apt packages, Debian's Rust with std sources, bpf-linker.
    Setup,
    /// Build the eBPF object and the agent (release) that embeds it.
    Build(build::BuildArgs),
    /// The demo: a namespace testbed with 3 nginx backends and the agent in front
    /// (or, with -f and --iface, the agent on a real interface; with --scale-out,
    /// three nodes behind a router doing ECMP).
    Run(demo::RunArgs),
    /// Unit tests, then the integration tests in network namespaces (needs root).
    Test(tests::TestArgs),
    /// Side by side in one namespace testbed (needs root): requests/s (wrk,
    /// keep-alive and `Connection: close`) and single-stream throughput (iperf3)
    /// straight to a backend, through XDP, the userspace proxy and HAProxy;
    /// and the Maglev table rebuild time. Results in target/bench/results.json;
    /// --write-docs writes docs/benchmarks.md and its plots; --quick is a smoke run.
    Bench(Box<bench::BenchArgs>),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd.unwrap_or(Cmd::Run(demo::RunArgs::default())) {
        Cmd::Setup => setup::setup().map(|_| ()),
        Cmd::Build(args) => build::build(&args).map(|_| ()),
        Cmd::Run(args) => demo::run(&args),
        Cmd::Test(args) => tests::test(&args),
        Cmd::Bench(args) => bench::bench(&args),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

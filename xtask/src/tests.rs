//! `cargo xtask test`: lints, unit tests, then the integration tests, which
//! build namespace testbeds and need root, then the bench's smoke run.
use clap::Args;

use crate::{
    bench, build, setup,
    util::{self, step},
};

#[derive(Args, Default)]
pub struct TestArgs {
    /// Skip rustfmt and clippy.
    #[arg(long)]
    pub no_lint: bool,
    /// Only the unit tests (no root needed).
    #[arg(long, conflicts_with = "integration")]
    pub unit: bool,
    /// Only the integration tests.
    #[arg(long)]
    pub integration: bool,
    /// Skip the bench's smoke run (`cargo xtask bench --quick`) after the integration tests.
    #[arg(long)]
    pub no_bench: bool,
    /// Passed to the test binaries, e.g. a test name filter.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

pub fn test(args: &TestArgs) -> anyhow::Result<()> {
    let tc = setup::setup()?;
    let obj = build::build_ebpf(&tc)?;
    let cargo = |sub: &[&str]| {
        let mut cmd = util::cargo();
        cmd.args(sub).env("LBXDP_EBPF_OBJECT", &obj);
        cmd
    };
    let with_test_args = |mut cmd: std::process::Command| {
        if !args.test_args.is_empty() {
            cmd.arg("--").args(&args.test_args);
        }
        cmd
    };

    if !args.no_lint {
        step("test: rustfmt");
        util::run(&mut cargo(&["fmt", "--all", "--check"]))?;
        step("test: clippy");
        util::run(&mut cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    if !args.integration {
        step("test: unit tests");
        util::run(&mut with_test_args(cargo(&[
            "test",
            "--workspace",
            "--locked",
            "--lib",
            "--bins",
        ])))?;
    }
    if !args.unit {
        step("test: integration tests (network namespaces, XDP, nginx, curl, ping)");
        if !util::is_root() {
            println!(
                "\n!!! not root: every integration test will SKIP. Run `sudo cargo xtask test` (CI runs as root). !!!\n"
            );
        }
        util::run(&mut with_test_args(cargo(&[
            "test",
            "--workspace",
            "--locked",
            "--test",
            "*",
        ])))?;
        smoke_bench(args)?;
    }
    Ok(())
}

/// `cargo xtask bench --quick`: every part of the bench for a second or two,
/// checking that each ran and gave numbers; it times nothing. Its results and
/// docs go to target/bench/smoke/, never to docs/.
fn smoke_bench(args: &TestArgs) -> anyhow::Result<()> {
    if args.no_bench {
        return Ok(());
    }
    step("test: the bench's smoke run (cargo xtask bench --quick; times nothing)");
    if !args.test_args.is_empty() {
        println!("    SKIPPED: a test filter was given");
        return Ok(());
    }
    if !util::is_root() {
        println!("    SKIPPED: not root");
        return Ok(());
    }
    bench::smoke(&util::target_dir().join("bench/smoke"))
}

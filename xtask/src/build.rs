//! Builds the eBPF object with Debian's cargo, then the agent that embeds it.
use std::{path::PathBuf, process::Command};

use anyhow::Context as _;
use clap::Args;

use crate::{
    setup::{self, Toolchain},
    util::{self, step},
};

#[derive(Args, Default, Clone)]
pub struct BuildArgs {
    /// Build the agent in debug mode (the eBPF object is always release).
    #[arg(long)]
    pub debug: bool,
}

/// Where `cargo xtask build` leaves the eBPF object; the agent's build script
/// reads it from here (or from LBXDP_EBPF_OBJECT).
pub fn ebpf_object() -> PathBuf {
    util::target_dir().join("ebpf/bpfel-unknown-none/release/lbxdp-ebpf")
}

/// The agent binary of a profile.
pub fn agent_binary(debug: bool) -> PathBuf {
    util::target_dir()
        .join(if debug { "debug" } else { "release" })
        .join("lbxdp-agent")
}

pub fn build_ebpf(tc: &Toolchain) -> anyhow::Result<PathBuf> {
    step("build: eBPF object (Debian cargo, -Z build-std=core, bpf-linker, BTF)");
    let path = std::env::var_os("PATH").unwrap_or_default();
    // rustup's proxies must stay off PATH: Debian's cargo would otherwise pick
    // rustup's rustc, which has no std sources for build-std.
    let path: Vec<PathBuf> = std::iter::once(tc.bin_dir.clone())
        .chain(std::env::split_paths(&path).filter(|p| !p.join("rustup").exists()))
        .collect();
    let mut cmd = Command::new(&tc.cargo);
    cmd.current_dir(util::root().join("lbxdp-ebpf"))
        .args(["build", "--release", "--locked"])
        .arg("--target-dir")
        .arg(util::target_dir().join("ebpf"))
        .env("PATH", std::env::join_paths(path).context("building PATH")?)
        .env("RUSTC_BOOTSTRAP", "1")
        // debuginfo feeds bpf-linker's BTF, which the loader and bpftool use.
        .env("CARGO_ENCODED_RUSTFLAGS", "-Cdebuginfo=2\x1f-Clink-arg=--btf");
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let took = util::run(&mut cmd)?;
    let obj = ebpf_object();
    let size = std::fs::metadata(&obj)
        .with_context(|| format!("no eBPF object at {}", obj.display()))?
        .len();
    println!("    {} ({size} bytes) [took {took:.1?}]", obj.display());
    Ok(obj)
}

pub fn build(args: &BuildArgs) -> anyhow::Result<PathBuf> {
    let tc = setup::setup()?;
    let obj = build_ebpf(&tc)?;
    step(&format!(
        "build: lbxdp-agent ({})",
        if args.debug { "debug" } else { "release" }
    ));
    let mut cmd = util::cargo();
    cmd.args(["build", "--locked", "-p", "lbxdp-agent"])
        .env("LBXDP_EBPF_OBJECT", &obj);
    if !args.debug {
        cmd.arg("--release");
    }
    let took = util::run(&mut cmd)?;
    let bin = agent_binary(args.debug);
    println!("    {} [took {took:.1?}]", bin.display());
    Ok(bin)
}

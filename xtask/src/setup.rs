//! Makes a fresh machine of this kind ready, idempotently.
//!
//! rustup here has no `rust-src` and can't fetch one, so `-Z build-std=core` for
//! `bpfel-unknown-none` uses Debian's rustc-web 1.96 with its exactly matching std
//! sources (rust-web-src) and RUSTC_BOOTSTRAP=1. bpf-linker 0.10.x loads libLLVM at
//! run time from `<PATH dir>/../lib`, so we link Debian's libLLVM (the one that
//! rustc-web uses) next to it. See ../shared/toolchain/README.md for how this was proven.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::util::{self, step};

pub const BPF_LINKER_VERSION: &str = "0.10.4";

/// Debian's Rust with std sources: builds the eBPF crate.
const TOOLCHAIN_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src"];
/// What the demo and the integration tests run: real nginx backends, real clients,
/// and HAProxy itself, the reference for the config parser.
const TESTBED_PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "nginx",
    "curl",
    "util-linux",
    "haproxy",
    "rsyslog",
    "ethtool",
    "wrk",
    "socat",
    "iperf3",
    // nftables' full NAT is the yardstick of the load tests; trafgen
    // (netsniff-ng) sends their bounded spoofed floods.
    "nftables",
    "netsniff-ng",
    // The bench flushes the LB's connection tracking around an nftables
    // peer's run, so that no run inherits another's NAT bindings.
    "conntrack",
    // The runtime-API tests drive lbxdp with HAProxy's own clients: hatop on
    // the stats socket (inside tmux, whose capture-pane reads its screen),
    // the Prometheus exporter scraping that socket, and headless chromium
    // rendering the stats page.
    "hatop",
    "prometheus-haproxy-exporter",
    "tmux",
    "chromium",
    // The scale-out tests announce VIPs by BGP: bird2 on a node and on the
    // router, each in its own namespace.
    "bird2",
];

/// What the eBPF build needs, once `setup` has made sure it is there.
pub struct Toolchain {
    /// Debian's cargo 1.96.
    pub cargo: PathBuf,
    /// Holds bpf-linker; goes first on PATH.
    pub bin_dir: PathBuf,
}

pub fn tools_root() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cargo")
    });
    cargo_home.join("lbxdp-tools")
}

pub fn setup() -> anyhow::Result<Toolchain> {
    let start = Instant::now();
    step("setup: apt packages");
    let mut wanted: Vec<&str> = TOOLCHAIN_PACKAGES.to_vec();
    wanted.extend_from_slice(TESTBED_PACKAGES);
    apt_install(&wanted)?;
    let rust_src = Path::new("/usr/lib/rustlib/src/rust/library/core");
    if !rust_src.is_dir() {
        bail!("{} is missing although rust-web-src is installed", rust_src.display());
    }

    step(&format!("setup: bpf-linker {BPF_LINKER_VERSION}"));
    let root = tools_root();
    let bin_dir = root.join("bin");
    let linker = bin_dir.join("bpf-linker");
    if installed_version(&linker).is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        println!("    already installed: {}", linker.display());
    } else {
        println!("    cargo install bpf-linker (about a minute, once)");
        let took = util::run(
            util::cargo()
                .args(["install", "--locked", &format!("bpf-linker@{BPF_LINKER_VERSION}")])
                .arg("--root")
                .arg(&root)
                .arg("--target-dir")
                .arg(root.join("build")),
        )?;
        println!("    [took {:.0?}]", took);
    }
    link_libllvm(&root)?;

    println!("    setup done in {:.1?}", start.elapsed());
    Ok(Toolchain {
        cargo: PathBuf::from("/usr/bin/cargo"),
        bin_dir,
    })
}

fn installed_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs whichever of `packages` is missing, in one apt transaction.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let missing = missing_packages(packages)?;
    if missing.is_empty() {
        println!("    already installed: {}", packages.join(" "));
        return Ok(());
    }
    if !util::is_root() {
        bail!(
            "these Debian packages are missing and installing them needs root: {}",
            missing.join(" ")
        );
    }
    println!("    installing {}", missing.join(" "));
    // Debian's nginx package starts a system nginx on the host's port 80 when it is
    // installed; our nginx runs only inside test namespaces, so keep the package
    // scripts from starting services (invoke-rc.d honours policy-rc.d).
    let _policy = PolicyRcd::install()?;
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(["-o", "DPkg::Lock::Timeout=600", "-q"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    let took = util::run(&mut apt(&["update"]))?;
    println!("    [took {took:.0?}]");
    let took = util::run(apt(&["install", "-y", "--no-install-recommends"]).args(&missing))?;
    println!("    [took {took:.0?}]");
    let still = missing_packages(packages)?;
    if !still.is_empty() {
        bail!("apt-get did not install: {}", still.join(" "));
    }
    Ok(())
}

fn missing_packages(packages: &[&str]) -> anyhow::Result<Vec<String>> {
    // dpkg-query exits 1 when some package is unknown; what it prints is still right.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\n"])
        .args(packages)
        .output()
        .context("running dpkg-query (is this Debian?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("install ok installed"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|p| p.split(':').next().unwrap_or(p))
        .collect();
    Ok(packages
        .iter()
        .filter(|p| !installed.contains(p))
        .map(|p| p.to_string())
        .collect())
}

/// bpf-linker 0.10 dlopens a `libLLVM*` found in `<PATH dir>/../lib`: give it the
/// exact one that Debian's rustc links, so both agree on the LLVM version.
fn link_libllvm(root: &Path) -> anyhow::Result<()> {
    let out = Command::new("ldd")
        .arg("/usr/bin/rustc")
        .output()
        .context("running ldd /usr/bin/rustc")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lib = text
        .lines()
        .filter(|l| l.contains("libLLVM"))
        .find_map(|l| l.split("=>").nth(1)?.split_whitespace().next().map(PathBuf::from))
        .context("ldd /usr/bin/rustc shows no libLLVM")?;
    let real = std::fs::canonicalize(&lib).with_context(|| format!("resolving {}", lib.display()))?;
    let name = lib.file_name().context("libLLVM path has no file name")?;
    let dir = root.join("lib");
    std::fs::create_dir_all(&dir)?;
    let link = dir.join(name);
    if std::fs::read_link(&link).ok().as_deref() == Some(real.as_path()) {
        return Ok(());
    }
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link)
        .with_context(|| format!("linking {} -> {}", link.display(), real.display()))?;
    println!("    linked {} -> {}", link.display(), real.display());
    Ok(())
}

/// A `policy-rc.d` that forbids starting services, removed again on drop. Left
/// alone if the machine already has one.
struct PolicyRcd(Option<PathBuf>);

impl PolicyRcd {
    fn install() -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return Ok(Self(None));
        }
        std::fs::write(
            &path,
            "#!/bin/sh\n# lbxdp xtask: no services during apt-get install\nexit 101\n",
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self(Some(path)))
    }
}

impl Drop for PolicyRcd {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

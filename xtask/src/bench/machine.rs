//! The machine a run measured, as the docs show it: kernel, CPU, the tools'
//! versions, and whether the kernel has IPVS (it is no peer when it hasn't).
use std::{path::Path, time::Duration};

use lbxdp_testbed::Testbed;
use serde::{Deserialize, Serialize};

use crate::util;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Machine {
    /// As `uname -srvm` prints it.
    pub(super) kernel: String,
    pub(super) cpu_model: String,
    /// Online CPUs.
    pub(super) cores: usize,
    pub(super) memory: String,
    /// IPVS (ip_vs) is built in or available as a module.
    pub(super) ipvs: bool,
    /// What says so: the kernel's config, or the modules' lists.
    pub(super) ipvs_evidence: String,
    /// The commit measured (`-dirty` with uncommitted changes).
    pub(super) commit: String,
    /// The first line of each peer tool's version.
    pub(super) tools: Vec<String>,
}

/// The tools whose versions the docs list, and how to ask them.
const TOOLS: [(&str, &[&str]); 5] = [
    ("haproxy", &["-v"]),
    ("nft", &["--version"]),
    ("wrk", &["--version"]),
    ("iperf3", &["--version"]),
    ("trafgen", &["--version"]),
];

/// This machine now. Nothing here fails the bench: what can't be read shows as unknown.
pub(super) fn this_machine(tb: &Testbed) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let release = read("/proc/sys/kernel/osrelease").trim().to_string();
    let kernel = format!(
        "{} {} {} {}",
        read("/proc/sys/kernel/ostype").trim(),
        release,
        read("/proc/sys/kernel/version").trim(),
        std::env::consts::ARCH
    );
    let cpuinfo = read("/proc/cpuinfo");
    let (ipvs, ipvs_evidence) = ipvs(&release);
    Machine {
        kernel,
        cpu_model: cpu_model(&cpuinfo),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory: mem_total(&read("/proc/meminfo")),
        ipvs,
        ipvs_evidence,
        commit: commit(),
        tools: TOOLS
            .iter()
            .filter_map(|(tool, args)| {
                // wrk prints its version with a usage error; any output will do.
                let out = tb
                    .command(&tb.client, tool)
                    .args(*args)
                    .output_timeout(Duration::from_secs(5))
                    .ok()?;
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
                Some(format!("{tool}: {line}"))
            })
            .collect(),
    }
}

/// The CPU's model name from /proc/cpuinfo (x86's `model name`, else the
/// other architectures' names for it).
fn cpu_model(cpuinfo: &str) -> String {
    ["model name", "Model", "Hardware", "cpu model"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total(meminfo: &str) -> String {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the kernel has IPVS, and what says so: loaded (/proc/net/ip_vs),
/// else the kernel's own config (/proc/config.gz), else the modules' lists.
fn ipvs(release: &str) -> (bool, String) {
    if Path::new("/proc/net/ip_vs").exists() {
        return (true, "/proc/net/ip_vs exists".into());
    }
    let config = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Some(config) = config {
        return match config_value(&config, "CONFIG_IP_VS") {
            Some("y") => (true, "CONFIG_IP_VS=y in /proc/config.gz".into()),
            Some("m") => (true, "CONFIG_IP_VS=m in /proc/config.gz".into()),
            _ => (false, "/proc/config.gz: CONFIG_IP_VS is not set".into()),
        };
    }
    let modules = Path::new("/lib/modules").join(release);
    let listed = |file: &str| std::fs::read_to_string(modules.join(file)).unwrap_or_default();
    if lists_module(&listed("modules.builtin"), "ip_vs") || lists_module(&listed("modules.dep"), "ip_vs") {
        (true, format!("{} lists ip_vs", modules.display()))
    } else {
        (false, format!("no ip_vs in {}", modules.display()))
    }
}

/// A kernel config option's value (`y`, `m`, ...); None when it is not set.
fn config_value<'a>(config: &'a str, option: &str) -> Option<&'a str> {
    config
        .lines()
        .find_map(|l| l.strip_prefix(option)?.strip_prefix('='))
        .map(str::trim)
}

/// Whether a modules.builtin or modules.dep lists the module
/// (`kernel/net/netfilter/ipvs/ip_vs.ko` or `.ko.xz`...).
fn lists_module(list: &str, module: &str) -> bool {
    list.lines().any(|l| {
        let path = l.split(':').next().unwrap_or_default();
        let file = path.rsplit('/').next().unwrap_or_default();
        file.split('.').next() == Some(module) && file.contains(".ko")
    })
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(util::root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(head) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{head}-dirty")
        }
        Some(head) => head,
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_memory_and_modules() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(cpu_model(x86), "Intel(R) Xeon(R) CPU @ 2.20GHz");
        assert_eq!(cpu_model("processor : 0\nBogoMIPS : 50\n"), "unknown");
        assert_eq!(mem_total("MemTotal:        4025360 kB\nMemFree: 1 kB\n"), "3.8 GiB");
        let dep = "kernel/net/netfilter/ipvs/ip_vs_rr.ko.xz: kernel/net/netfilter/ipvs/ip_vs.ko.xz\n";
        assert!(
            !lists_module(dep, "ip_vs"),
            "a dependency named on the right isn't the module"
        );
        assert!(lists_module(
            "kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/x.ko\n",
            "ip_vs"
        ));
        assert!(lists_module("kernel/net/netfilter/ipvs/ip_vs.ko\n", "ip_vs"));
        assert!(!lists_module("kernel/net/netfilter/nf_nat.ko\n", "ip_vs"));
        let config = "CONFIG_IP_VS_IPV6=y\n# CONFIG_IP_VS is not set\nCONFIG_NF_NAT=m\n";
        assert_eq!(config_value(config, "CONFIG_IP_VS"), None);
        assert_eq!(config_value(config, "CONFIG_NF_NAT"), Some("m"));
        assert_eq!(config_value("CONFIG_IP_VS=y\n", "CONFIG_IP_VS"), Some("y"));
    }
}

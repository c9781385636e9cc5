//! lbxdp's verdict against real HAProxy 2.6's on every file of the corpus in
//! tests/configs: `valid/` must pass both `haproxy -c` and `lbxdp-agent -c`,
//! `invalid/` must fail both, with a file:line alert from lbxdp. Files whose
//! first line says `# env-dependent:` fail only because of this machine (a
//! missing user or certificate); lbxdp checks the machine too, so they agree.
//! Files whose first line says `# refused:` are valid for both, and lbxdp's
//! `-c` must warn, with file:line, that the agent will refuse to run them
//! (TLS, `accept-proxy`, `usesrc`...); no other file may get that warning.
//! Installs Debian's haproxy when missing and root; otherwise skips loudly.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

const AGENT: &str = env!("CARGO_BIN_EXE_lbxdp-agent");
/// How `-c` ends a warning about what the running agent refuses.
const REFUSAL_WARNING: &str = "lbxdp-agent will refuse to run this configuration";

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    v.sort();
    v
}

fn find_haproxy() -> Option<PathBuf> {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// haproxy, installed with apt when missing and allowed; None means skip.
fn haproxy() -> Option<PathBuf> {
    if let Some(h) = find_haproxy() {
        return Some(h);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "\n!!! SKIPPED config_corpus: haproxy is not installed and this is not root (apt-get install -y haproxy). !!!\n"
        );
        return None;
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !apt(&["install", "-y", "haproxy"]) {
        let _ = apt(&["update"]);
        let _ = apt(&["install", "-y", "haproxy"]);
    }
    let found = find_haproxy();
    if found.is_none() {
        eprintln!("\n!!! SKIPPED config_corpus: `apt-get install -y haproxy` did not give a haproxy binary. !!!\n");
    }
    found
}

struct Verdict {
    valid: bool,
    /// The exit code: 0 valid, 1 errors, 2 valid but nothing listens.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Verdict {
    let out = cmd.output().expect("running a checker");
    Verdict {
        valid: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn haproxy_check(h: &Path, target: &Path) -> Verdict {
    // -q hides the version notices; exit 0 is valid, 1 invalid, 2 "valid but
    // nothing listens", which can't balance anything either.
    run(Command::new(h).args(["-c", "-q", "-f"]).arg(target))
}

fn lbxdp_check(target: &Path) -> Verdict {
    run(Command::new(AGENT).args(["-c", "-f"]).arg(target))
}

#[test]
fn lbxdp_agrees_with_haproxy_on_the_corpus() {
    let valid = files("valid");
    let invalid = files("invalid");
    assert!(
        valid.len() >= 30,
        "the corpus needs at least 30 valid configs, has {}",
        valid.len()
    );
    assert!(
        invalid.len() >= 20,
        "the corpus needs at least 20 invalid configs, has {}",
        invalid.len()
    );
    let Some(h) = haproxy() else { return };

    let mut disagreements = Vec::new();
    let total = valid.len() + invalid.len();
    for (path, expect_valid) in valid
        .iter()
        .map(|p| (p, true))
        .chain(invalid.iter().map(|p| (p, false)))
    {
        let name = path.strip_prefix(corpus()).unwrap_or(path).display().to_string();
        let hv = haproxy_check(&h, path);
        let lv = lbxdp_check(path);
        if hv.valid != expect_valid {
            disagreements.push(format!(
                "{name}: haproxy says valid={} (corpus misfiled?):\n{}",
                hv.valid, hv.stderr
            ));
        }
        if lv.valid != hv.valid {
            disagreements.push(format!(
                "{name}: haproxy valid={}, lbxdp valid={}\n--- haproxy:\n{}--- lbxdp:\n{}",
                hv.valid, lv.valid, hv.stderr, lv.stderr
            ));
        }
        if lv.code != hv.code {
            disagreements.push(format!(
                "{name}: haproxy exits {:?}, lbxdp exits {:?}\n--- lbxdp:\n{}{}",
                hv.code, lv.code, lv.stdout, lv.stderr
            ));
        }
        if lv.valid {
            assert!(
                lv.stdout.contains("Configuration file is valid"),
                "{name}: {}",
                lv.stdout
            );
        } else if lv.code == Some(2) {
            // HAProxy's verdict for a file with no error and no `bind`.
            if !lv
                .stdout
                .contains("Configuration file has no error but will not start (no listener) => exit(2).")
            {
                disagreements.push(format!(
                    "{name}: exit 2 without HAProxy's no-listener line:\n{}",
                    lv.stdout
                ));
            }
        } else {
            let prefix = format!("[ALERT] {}:", path.display());
            let located = lv.stderr.lines().any(|l| {
                l.strip_prefix(&prefix)
                    .and_then(|rest| rest.split(':').next())
                    .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n > 0))
            });
            if !located {
                disagreements.push(format!("{name}: no '[ALERT] file:line:' from lbxdp:\n{}", lv.stderr));
            }
        }
        let first = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let refusals: Vec<&str> = lv.stderr.lines().filter(|l| l.ends_with(REFUSAL_WARNING)).collect();
        if first.starts_with("# refused:") {
            assert!(expect_valid, "{name}: a refused config is one HAProxy finds valid");
            let prefix = format!("[WARNING] {}:", path.display());
            let located = |l: &&str| {
                l.strip_prefix(&prefix)
                    .and_then(|rest| rest.split(':').next())
                    .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n > 0))
            };
            if refusals.is_empty() || !refusals.iter().all(located) {
                disagreements.push(format!(
                    "{name}: wanted '[WARNING] file:line: ...{REFUSAL_WARNING}' from lbxdp -c:\n{}",
                    lv.stderr
                ));
            }
        } else if !refusals.is_empty() {
            disagreements.push(format!(
                "{name}: lbxdp -c says the agent would refuse it, but the file isn't marked '# refused:':\n{}",
                lv.stderr
            ));
        }
        if first.starts_with("# env-dependent:") {
            assert!(
                !expect_valid,
                "{name}: env-dependent configs are the ones HAProxy rejects here"
            );
        }
    }
    let agreed = total
        - disagreements
            .iter()
            .filter(|d| d.contains("lbxdp valid=") || d.contains("lbxdp exits"))
            .count();
    eprintln!("config corpus: lbxdp and haproxy agree on {agreed}/{total} files");
    assert!(
        disagreements.is_empty(),
        "{} problems:\n{}",
        disagreements.len(),
        disagreements.join("\n\n")
    );
}

#[test]
fn seed_is_valid() {
    if haproxy().is_none() {
        // The seed names the haproxy user and group, which the package creates.
        return;
    }
    let v = lbxdp_check(&corpus().join("valid/seed.cfg"));
    assert!(v.valid, "{}", v.stderr);
    assert_eq!(v.stdout.trim(), "Configuration file is valid");
}

#[test]
fn a_directory_is_read_in_name_order_like_haproxy() {
    let Some(h) = haproxy() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // Split across files: defaults first, then the proxies that use them.
    std::fs::write(
        dir.path().join("10-defaults.cfg"),
        "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("20-app.cfg"),
        "listen app\n    bind 127.0.0.1:8080\n    server a 127.0.0.2:80\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("README.txt"), "not a config\n").expect("write");
    let hv = haproxy_check(&h, dir.path());
    let lv = lbxdp_check(dir.path());
    assert!(hv.valid, "haproxy: {}", hv.stderr);
    assert!(lv.valid, "lbxdp: {}", lv.stderr);
    assert!(
        !lv.stderr.contains("missing timeouts"),
        "defaults from 10-defaults.cfg must apply: {}",
        lv.stderr
    );
}

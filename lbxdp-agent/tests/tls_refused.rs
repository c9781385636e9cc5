//! lbxdp doesn't do TLS yet, so a configuration that asks for it must never be
//! served in plaintext: `lbxdp-agent -c` keeps HAProxy's verdict (valid) and
//! warns with file:line; the agent itself refuses to start, in every mode,
//! before it binds anything. No root needed: the refusal comes before XDP.
use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const AGENT: &str = env!("CARGO_BIN_EXE_lbxdp-agent");

const DEFAULTS: &str =
    "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n";

/// A port nothing listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// A self-signed certificate and its key in one PEM, as HAProxy's `crt`
/// wants it, made with the openssl command. None without openssl: then the
/// file is a stand-in that only lbxdp (which checks that it exists) accepts.
fn certificate(dir: &Path) -> (PathBuf, bool) {
    let (crt, key, pem) = (dir.join("crt.pem"), dir.join("key.pem"), dir.join("site.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-subj", "/CN=lbxdp-test", "-days", "2", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let real = made
        && std::fs::read(&crt)
            .and_then(|c| std::fs::read(&key).map(|k| [c, k].concat()))
            .and_then(|both| std::fs::write(&pem, both))
            .is_ok();
    if !real {
        eprintln!("!!! openssl is missing or failed: the certificate is a stand-in, haproxy -c is not compared !!!");
        std::fs::write(&pem, "not a certificate\n").expect("write the stand-in certificate");
    }
    (pem, real)
}

fn find_haproxy() -> Option<PathBuf> {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The two configurations: TLS on the listening side (`bind ... ssl crt`,
/// line 7) and towards the servers (`server ... ssl verify none`, line 10,
/// which needs no file). Both listen on `port` if they are ever served.
fn write_configs(dir: &Path, port: u16, cert: &Path) -> (PathBuf, PathBuf) {
    let bind_tls = dir.join("bind-tls.cfg");
    std::fs::write(
        &bind_tls,
        format!(
            "{DEFAULTS}frontend fe\n    bind 127.0.0.1:{port} ssl crt {}\n    default_backend be\n\
             backend be\n    server s1 127.0.0.1:9\n",
            cert.display()
        ),
    )
    .expect("write bind-tls.cfg");
    let server_tls = dir.join("server-tls.cfg");
    std::fs::write(
        &server_tls,
        format!(
            "{DEFAULTS}frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
             backend be\n    server s1 127.0.0.1:9 ssl verify none\n"
        ),
    )
    .expect("write server-tls.cfg");
    (bind_tls, server_tls)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_keeps_haproxys_verdict_and_warns_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (cert, real_cert) = certificate(dir.path());
    let (bind_tls, server_tls) = write_configs(dir.path(), port, &cert);
    let cases = [
        (
            &bind_tls,
            vec![
                format!(
                    "[WARNING] {}:7: 'bind 127.0.0.1:{port}': 'ssl' asks for TLS, which lbxdp doesn't do yet; \
                     lbxdp-agent will refuse to run this configuration",
                    bind_tls.display()
                ),
                format!(
                    "[WARNING] {}:7: 'bind 127.0.0.1:{port}': 'crt' asks for TLS, which lbxdp doesn't do yet; \
                     lbxdp-agent will refuse to run this configuration",
                    bind_tls.display()
                ),
            ],
            real_cert,
        ),
        (
            &server_tls,
            vec![
                format!(
                    "[WARNING] {}:10: 'server be/s1': 'ssl' asks for TLS, which lbxdp doesn't do yet; \
                     lbxdp-agent will refuse to run this configuration",
                    server_tls.display()
                ),
                format!(
                    "[WARNING] {}:10: 'server be/s1': 'verify' asks for TLS, which lbxdp doesn't do yet; \
                     lbxdp-agent will refuse to run this configuration",
                    server_tls.display()
                ),
            ],
            true,
        ),
    ];
    for (cfg, warnings, compare) in cases {
        let out = Command::new(AGENT)
            .args(["-c", "-f"])
            .arg(cfg)
            .output()
            .expect("run lbxdp-agent -c");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{}: -c must stay valid:\n{stderr}", cfg.display());
        assert_eq!(stdout.trim(), "Configuration file is valid", "{stderr}");
        for w in &warnings {
            assert!(stderr.lines().any(|l| l == w), "wanted\n{w}\nin:\n{stderr}");
        }
        assert!(!stderr.contains("[ALERT]"), "{stderr}");
        match find_haproxy() {
            Some(h) if compare => {
                let hv = Command::new(h)
                    .args(["-c", "-q", "-f"])
                    .arg(cfg)
                    .output()
                    .expect("run haproxy -c");
                assert!(
                    hv.status.success(),
                    "{}: haproxy -c must find it valid too:\n{}",
                    cfg.display(),
                    text(&hv.stderr)
                );
            }
            _ => eprintln!("{}: not compared with haproxy -c", cfg.display()),
        }
    }
}

/// Runs the agent until it exits (at most `within`), trying to connect to
/// `port` all along. Returns its output and whether a connection succeeded.
fn run_and_probe(args: &[&str], cfg: &Path, port: u16, within: Duration) -> (Output, bool) {
    let mut child = Command::new(AGENT)
        .args(args)
        .arg("-f")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lbxdp-agent");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + within;
    let mut listened = false;
    loop {
        listened |= TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok();
        match child.try_wait().expect("wait for lbxdp-agent") {
            Some(_) => break,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                break;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child.wait_with_output().expect("lbxdp-agent's output");
    listened |= TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok();
    (out, listened)
}

#[test]
fn the_agent_refuses_to_start_and_nothing_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (cert, _) = certificate(dir.path());
    let (bind_tls, server_tls) = write_configs(dir.path(), port, &cert);
    let cases = [
        (
            &bind_tls,
            format!(
                "[ALERT] {}:7: 'bind 127.0.0.1:{port}': 'ssl' asks for TLS, which lbxdp doesn't do yet; \
                 lbxdp-agent refuses to run this configuration rather than serve plaintext where TLS is asked for",
                bind_tls.display()
            ),
        ),
        (
            &server_tls,
            format!(
                "[ALERT] {}:10: 'server be/s1': 'ssl' asks for TLS, which lbxdp doesn't do yet; \
                 lbxdp-agent refuses to run this configuration rather than serve plaintext where TLS is asked for",
                server_tls.display()
            ),
        ),
    ];
    // The userspace proxy would listen without root; auto mode would fall
    // back to it here. Neither may.
    for mode in [["--mode", "proxy"], ["--mode", "auto"]] {
        for (cfg, alert) in &cases {
            let (out, listened) = run_and_probe(&mode, cfg, port, Duration::from_secs(20));
            let stderr = text(&out.stderr);
            let what = format!("{} {}", mode.join(" "), cfg.display());
            assert!(!out.status.success(), "{what}: must exit non-zero:\n{stderr}");
            assert!(
                stderr.lines().any(|l| l == alert),
                "{what}: wanted\n{alert}\nin:\n{stderr}"
            );
            assert!(stderr.contains("refusing to start"), "{what}:\n{stderr}");
            assert!(
                !listened,
                "{what}: something accepted a connection on port {port}:\n{stderr}"
            );
            assert!(text(&out.stdout).is_empty(), "{what}: no report, nothing ran");
        }
    }
}

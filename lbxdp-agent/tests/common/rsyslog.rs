//! A real rsyslogd from Debian, configured as the seed configures it
//! (`$ModLoad imudp`, `$UDPServerRun 514`, `local2.* <file>`).
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use lbxdp_testbed::Testbed;

/// rsyslogd in the LB's namespace, on 127.0.0.1:514, `local2.*` into a file.
pub fn start_rsyslog(tb: &mut Testbed) -> Option<std::path::PathBuf> {
    if std::process::Command::new("rsyslogd").arg("-v").output().is_err() {
        eprintln!("SKIPPED: rsyslogd is not installed (`cargo xtask setup` installs Debian's rsyslog)");
        return None;
    }
    let dir = tb.dir().join("rsyslog");
    std::fs::create_dir_all(&dir).expect("rsyslog dir");
    let file = dir.join("haproxy.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "$WorkDirectory {work}\n$ModLoad imudp\n$UDPServerAddress 127.0.0.1\n$UDPServerRun 514\n\
             local2.*    {file}\n",
            work = dir.display(),
            file = file.display()
        ),
    )
    .expect("rsyslog.conf");
    let child = tb
        .command(&tb.lb, "rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rsyslogd");
    tb.adopt(child);
    // Listening once a datagram we send comes out in the file.
    let probe = "lbxdp-test: rsyslog is listening";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = tb.in_netns(&tb.lb, || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
            // <150>: facility local2 (18), severity info (6).
            s.send_to(format!("<150>{probe}").as_bytes(), "127.0.0.1:514")?;
            Ok(())
        });
        if sent.is_ok() && std::fs::read_to_string(&file).is_ok_and(|t| t.contains(probe)) {
            return Some(file);
        }
        assert!(
            Instant::now() < deadline,
            "rsyslogd never wrote the probe to {}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn wait_for_line(file: &std::path::Path, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| f(l)) {
            return l.to_string();
        }
        assert!(Instant::now() < deadline, "no {what} in rsyslog's file:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

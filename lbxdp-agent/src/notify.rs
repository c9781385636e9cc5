//! systemd's readiness protocol (`Type=notify`): READY=1 once serving,
//! RELOADING=1 with MONOTONIC_USEC around a reload, STOPPING=1 at the end,
//! STATUS= lines in between (sd_notify(3)).
//!
//! The socket is connected once, at start: after a `chroot` the path in
//! NOTIFY_SOCKET (usually /run/systemd/notify) is out of sight, and the
//! `sd-notify` crate connects by path at every message, so it can't serve
//! an agent that chroots. A connected datagram socket keeps working.
use std::os::unix::net::UnixDatagram;

use tracing::debug;

pub struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Connects to NOTIFY_SOCKET when the service manager set it; without
    /// it every message is a no-op. An abstract address starts with '@'.
    pub fn from_env() -> Self {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self { socket: None };
        };
        let connected = UnixDatagram::unbound().and_then(|s| {
            let bytes = path.as_encoded_bytes();
            match bytes.strip_prefix(b"@") {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt as _;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                    s.connect_addr(&addr)?;
                }
                None => s.connect(&path)?,
            }
            Ok(s)
        });
        match connected {
            Ok(s) => Self { socket: Some(s) },
            Err(e) => {
                tracing::warn!(
                    "NOTIFY_SOCKET {}: {e}; systemd won't hear from lbxdp",
                    path.to_string_lossy()
                );
                Self { socket: None }
            }
        }
    }

    fn send(&self, lines: &[String]) {
        let Some(s) = &self.socket else { return };
        let msg = lines.join("\n");
        if let Err(e) = s.send(msg.as_bytes()) {
            debug!("sd_notify {msg:?}: {e}");
        }
    }

    /// Serving: READY=1 and what is served.
    pub fn ready(&self, status: &str) {
        self.send(&["READY=1".into(), format!("STATUS={}", one_line(status))]);
    }

    /// A reload begins; systemd 253+ needs the monotonic time with it.
    pub fn reloading(&self) {
        self.send(&[
            "RELOADING=1".into(),
            format!("MONOTONIC_USEC={}", monotonic_usec()),
            "STATUS=reloading the configuration".into(),
        ]);
    }

    pub fn stopping(&self) {
        self.send(&["STOPPING=1".into(), "STATUS=stopping".into()]);
    }
}

/// A STATUS= value is one line.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(std::time::Duration::from(t).as_micros()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_listener() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier {
            socket: Some({
                let s = UnixDatagram::unbound().expect("socket");
                s.connect(&path).expect("connect");
                s
            }),
        };
        let next = || {
            let mut buf = [0u8; 512];
            let n = listener.recv(&mut buf).expect("recv");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        n.ready("balancing 2 frontends\nover 1 backend");
        assert_eq!(next(), "READY=1\nSTATUS=balancing 2 frontends over 1 backend");
        n.reloading();
        let got = next();
        assert!(got.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{got}");
        let usec: u64 = got
            .lines()
            .nth(1)
            .and_then(|l| l.split('=').nth(1))
            .and_then(|v| v.parse().ok())
            .expect("usec");
        assert!(usec > 0);
        n.stopping();
        assert_eq!(next(), "STOPPING=1\nSTATUS=stopping");
        // Without NOTIFY_SOCKET nothing is sent and nothing fails.
        Notifier { socket: None }.ready("x");
    }
}

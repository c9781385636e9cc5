//! Sending log lines to HAProxy-style `log` targets: RFC 3164 syslog over
//! UDP or a unix datagram socket, or stdout/stderr. Used by the proxy's
//! tcplog lines and by the health checks' transition lines. Sending never
//! blocks: a full socket drops the line, as syslog over UDP would anyway.
use std::{
    net::{IpAddr, SocketAddr},
    os::unix::net::UnixDatagram,
    time::SystemTime,
};

use jiff::{Timestamp, tz::TimeZone};
use tracing::warn;

use crate::config::LogTarget;

/// The program name in the syslog header.
pub const LOG_TAG: &str = "lbxdp";
/// Session logs are sent at `info`, as HAProxy's traffic logs are.
pub const SEVERITY_INFO: u8 = 6;
/// Severities (RFC 5424 numbers) for state changes, as HAProxy sends them.
pub const SEVERITY_EMERG: u8 = 0;
pub const SEVERITY_ALERT: u8 = 1;
pub const SEVERITY_NOTICE: u8 = 5;

pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The date and time on the wall in `tz`: (year, month 1..=12, day, h, m,
/// s, ms). HAProxy writes its log dates in local time; the agent uses the
/// system's time zone (`TZ`, else /etc/localtime), as read by jiff.
pub(crate) fn civil(t: SystemTime, tz: &TimeZone) -> (i64, u32, u32, u32, u32, u32, u32) {
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    let dt = tz.to_datetime(ts);
    let n = |v: i16| u32::try_from(v).unwrap_or(0);
    (
        i64::from(dt.year()),
        n(dt.month().into()),
        n(dt.day().into()),
        n(dt.hour().into()),
        n(dt.minute().into()),
        n(dt.second().into()),
        n(dt.millisecond()),
    )
}

/// RFC 3164's timestamp: `Feb  6 12:12:56` (day padded with a space).
pub fn rfc3164_timestamp(t: SystemTime, tz: &TimeZone) -> String {
    let (_, mo, d, h, mi, s, _) = civil(t, tz);
    format!("{} {d:>2} {h:02}:{mi:02}:{s:02}", MONTHS[(mo - 1) as usize])
}

/// syslog facility names to codes (RFC 5424 table, HAProxy's names).
pub fn facility_code(name: &str) -> Option<u8> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2", "ftp", "ntp",
        "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|p| p as u8)
}

pub fn level_code(name: &str) -> Option<u8> {
    const NAMES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
    NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)).map(|p| p as u8)
}

/// `<PRI>Mmm dd hh:mm:ss tag[pid]: msg` — RFC 3164 without the hostname,
/// which is what HAProxy sends unless `log-send-hostname` is set.
pub fn rfc3164(facility: u8, severity: u8, at: SystemTime, tz: &TimeZone, tag: &str, pid: u32, msg: &str) -> String {
    format!(
        "<{}>{} {tag}[{pid}]: {msg}",
        u32::from(facility) * 8 + u32::from(severity),
        rfc3164_timestamp(at, tz)
    )
}

enum Sink {
    Udp(std::net::UdpSocket),
    Unix(UnixDatagram, String),
    Stdout,
    Stderr,
}

struct Target {
    sink: Sink,
    facility: u8,
    /// Messages less important than this are not sent (`log ... <level>`).
    max_level: u8,
    /// Messages more important than this are sent at this level (`<minlevel>`).
    min_level: u8,
}

/// Where the session lines of one frontend go.
pub struct Logger {
    targets: Vec<Target>,
    /// Dates are written in the system's time zone as it was when the logger
    /// was made (at start and at each reload), as HAProxy does.
    tz: TimeZone,
}

/// Parses HAProxy's log address forms: `ip`, `ip:port`, `udp@`, `udp4@`,
/// `udp6@`, `ipv4@`, `ipv6@` prefixes, a `/path` (unix datagram), `stdout`,
/// `stderr`. The default UDP port is 514.
fn sink(address: &str) -> Result<Sink, String> {
    match address {
        "stdout" | "fd@1" => return Ok(Sink::Stdout),
        "stderr" | "fd@2" => return Ok(Sink::Stderr),
        _ => {}
    }
    if address.starts_with('/') || address.starts_with("unix@") {
        let path = address.trim_start_matches("unix@").to_string();
        let sock = UnixDatagram::unbound().map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        return Ok(Sink::Unix(sock, path));
    }
    let bare = ["udp@", "udp4@", "udp6@", "ipv4@", "ipv6@"]
        .iter()
        .find_map(|p| address.strip_prefix(p))
        .unwrap_or(address);
    if bare.contains('@') {
        return Err(format!(
            "log address '{address}': only UDP, unix datagram and stdout/stderr are supported"
        ));
    }
    let to: SocketAddr = if let Ok(sa) = bare.parse::<SocketAddr>() {
        sa
    } else if let Ok(ip) = bare.parse::<IpAddr>() {
        SocketAddr::new(ip, 514)
    } else if let Some((ip, port)) = bare.rsplit_once(':') {
        // HAProxy writes IPv6 with a port as `::1:514`, no brackets.
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("log address '{address}' is not an IP address"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("log address '{address}' has a bad port"))?;
        SocketAddr::new(ip, port)
    } else {
        return Err(format!("log address '{address}' is not an IP address"));
    };
    let local: SocketAddr = if to.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = std::net::UdpSocket::bind(local).map_err(|e| e.to_string())?;
    sock.connect(to).map_err(|e| e.to_string())?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(Sink::Udp(sock))
}

impl Logger {
    /// Opens the targets; one that cannot be used is warned about and skipped,
    /// so a bad log line never stops the proxy.
    pub fn new(targets: &[LogTarget]) -> Logger {
        let mut out = Vec::new();
        for t in targets {
            let Some(facility) = facility_code(&t.facility) else {
                warn!(facility = %t.facility, "log target with an unknown facility, skipped");
                continue;
            };
            let max_level = t.level.as_deref().and_then(level_code).unwrap_or(7);
            let min_level = t.min_level.as_deref().and_then(level_code).unwrap_or(0);
            match sink(&t.address) {
                Ok(sink) => out.push(Target {
                    sink,
                    facility,
                    max_level,
                    min_level,
                }),
                Err(e) => warn!(address = %t.address, "log target skipped: {e}"),
            }
        }
        Logger {
            targets: out,
            tz: TimeZone::system(),
        }
    }

    /// The time zone this logger writes dates in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// Sends one message at `severity` to every target that wants it.
    pub fn send(&self, severity: u8, msg: &str) {
        let now = SystemTime::now();
        let pid = std::process::id();
        for t in &self.targets {
            if severity > t.max_level {
                continue;
            }
            let sev = severity.max(t.min_level);
            let line = rfc3164(t.facility, sev, now, &self.tz, LOG_TAG, pid, msg);
            // Non-blocking sends: a slow or absent syslog loses lines, it does
            // not stall sessions. The error is not worth a log line per line.
            match &t.sink {
                Sink::Udp(s) => {
                    let _ = s.send(line.as_bytes());
                }
                Sink::Unix(s, path) => {
                    let _ = s.send_to(line.as_bytes(), path);
                }
                Sink::Stdout => println!("{msg}"),
                Sink::Stderr => eprintln!("{msg}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_addresses() {
        assert!(matches!(sink("127.0.0.1"), Ok(Sink::Udp(s)) if s.peer_addr().unwrap().port() == 514));
        assert!(matches!(sink("udp@127.0.0.1:5140"), Ok(Sink::Udp(s)) if s.peer_addr().unwrap().port() == 5140));
        assert!(matches!(sink("stdout"), Ok(Sink::Stdout)));
        assert!(matches!(sink("/dev/log"), Ok(Sink::Unix(..))));
        assert!(sink("ring@buf").is_err());
        assert!(sink("nonsense").is_err());
    }
}

//! Sending log lines to HAProxy-style `log` targets: over UDP, a unix
//! datagram socket, or stdout/stderr, in the line's `format`, cut to its
//! `len` and thinned by its `sample`, as HAProxy 2.6 does. Used by the
//! proxy's tcplog lines and by the health checks' transition lines. Sending
//! never blocks on a socket: a full one drops the line, as syslog over UDP
//! would anyway.
pub(crate) mod header;
mod sample;

use std::{
    io::Write as _,
    net::{IpAddr, SocketAddr},
    os::unix::net::UnixDatagram,
    time::SystemTime,
};

use jiff::{Timestamp, tz::TimeZone};
use tracing::warn;

use self::{
    header::{Header, effective},
    sample::Sampler,
};
use crate::config::{LogFormat, LogHostname, LogTarget};

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
    format: LogFormat,
    max_len: usize,
    sample: Option<Sampler>,
    tag: String,
    hostname: Option<String>,
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
            let hostname = match &t.hostname {
                Some(LogHostname::Named(n)) => Some(n.clone()),
                // HAProxy reads the name once at start; so does each logger.
                Some(LogHostname::Machine) => nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .filter(|h| !h.is_empty()),
                None => None,
            };
            match sink(&t.address) {
                Ok(sink) => out.push(Target {
                    sink,
                    facility,
                    max_level,
                    min_level,
                    format: effective(t.format, hostname.as_deref()),
                    max_len: t.max_len,
                    sample: t.sample.as_ref().map(Sampler::new),
                    tag: t.tag.clone().unwrap_or_else(|| LOG_TAG.to_string()),
                    hostname,
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
        // As HAProxy: messages that came with their own line end lose it.
        let msg = msg.trim_end_matches(['\n', '\0']);
        for t in &self.targets {
            if severity > t.max_level || t.sample.as_ref().is_some_and(|s| !s.take()) {
                continue;
            }
            let h = Header {
                facility: t.facility,
                severity: severity.max(t.min_level),
                at: now,
                tz: &self.tz,
                hostname: t.hostname.as_deref(),
                tag: &t.tag,
                pid,
            };
            let line = framed(header::line(t.format, &h, msg), t.max_len, &t.sink);
            // Non-blocking sends: a slow or absent syslog loses lines, it does
            // not stall sessions. The error is not worth a log line per line.
            match &t.sink {
                Sink::Udp(s) => {
                    let _ = s.send(&line);
                }
                Sink::Unix(s, path) => {
                    let _ = s.send_to(&line, path);
                }
                Sink::Stdout => {
                    let _ = std::io::stdout().lock().write_all(&line);
                }
                Sink::Stderr => {
                    let _ = std::io::stderr().lock().write_all(&line);
                }
            }
        }
    }
}

/// The bytes sent: the line cut to `len` and an LF. HAProxy cuts datagrams
/// to `len` before their LF, and lines written to stdout/stderr to `len`
/// with their LF (its `fd_write_frag_line()` keeps one byte for it).
fn framed(line: String, max_len: usize, sink: &Sink) -> Vec<u8> {
    let room = match sink {
        Sink::Stdout | Sink::Stderr => max_len.saturating_sub(1),
        Sink::Udp(_) | Sink::Unix(..) => max_len,
    };
    let mut bytes = line.into_bytes();
    bytes.truncate(room);
    bytes.push(b'\n');
    bytes
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

    #[test]
    fn facility_and_level_names() {
        assert_eq!(facility_code("local0"), Some(16));
        assert_eq!(facility_code("kern"), Some(0));
        assert_eq!(facility_code("bogus"), None);
        assert_eq!(level_code("info"), Some(6));
        assert_eq!(level_code("loud"), None);
    }

    const MSG: &str = "Server pool_with_a_rather_long_name_to_make_lines_longer_than_eighty_bytes/s1 is DOWN";

    fn cut(format: LogFormat, facility: u8, hostname: Option<&str>, tag: &str, len: usize, sink: &Sink) -> String {
        let h = Header {
            facility,
            severity: 1,
            at: std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_989_893_976_561),
            tz: &TimeZone::UTC,
            hostname,
            tag,
            pid: 2458,
        };
        String::from_utf8(framed(header::line(format, &h, MSG), len, sink)).unwrap()
    }

    /// `len` as HAProxy 2.6.12 applied it: over UDP (socat -u UDP-RECV) the
    /// line is `len` bytes before its LF; on stdout it is `len` bytes with
    /// its LF. The expected lines are the captured ones (stdout's were
    /// captured with `log-tag mytag`, `log-send-hostname` on host "vm").
    #[test]
    fn len_cuts_as_haproxy() {
        let udp = sink("127.0.0.1:9").unwrap();
        assert_eq!(
            cut(LogFormat::Unspec, 18, None, "haproxy", 80, &udp),
            "<145>Nov 29 22:04:53 haproxy[2458]: Server pool_with_a_rather_long_name_to_make_\n"
        );
        assert_eq!(
            cut(LogFormat::Rfc5424, 18, None, "haproxy", 100, &udp),
            "<145>1 2026-11-29T22:04:53.976561+00:00 - haproxy 2458 - - Server pool_with_a_rather_long_name_to_ma\n"
        );
        assert_eq!(
            cut(LogFormat::Unspec, 16, Some("vm"), "mytag", 80, &Sink::Stdout),
            "<129>Nov 29 22:04:53 vm mytag[2458]: Server pool_with_a_rather_long_name_to_mak\n"
        );
        assert_eq!(
            cut(LogFormat::Short, 16, Some("vm"), "mytag", 80, &Sink::Stdout),
            "<1>Server pool_with_a_rather_long_name_to_make_lines_longer_than_eighty_bytes/s\n"
        );
        // Shorter lines are whole, with their LF.
        assert_eq!(
            cut(LogFormat::Raw, 16, None, "t", 1024, &Sink::Stderr),
            format!("{MSG}\n")
        );
    }

    fn target(address: &str) -> LogTarget {
        LogTarget {
            address: address.into(),
            max_len: crate::config::DEFAULT_LOG_LEN,
            format: LogFormat::Short,
            sample: None,
            facility: "local2".into(),
            level: None,
            min_level: None,
            tag: None,
            hostname: None,
        }
    }

    /// Level filtering, minlevel, sampling, tag and host name through a real
    /// socket: what a syslog daemon on 127.0.0.1 would receive.
    #[test]
    fn a_logger_sends_what_each_target_asks() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let to = rx.local_addr().unwrap().to_string();
        let filtered = LogTarget {
            level: Some("notice".into()),
            min_level: Some("err".into()),
            ..target(&to)
        };
        let sampled = LogTarget {
            sample: Some(crate::config::LogSample {
                ranges: vec![(2, 2)],
                size: 2,
            }),
            format: LogFormat::Priority,
            ..target(&to)
        };
        let named = LogTarget {
            format: LogFormat::Unspec,
            tag: Some("web".into()),
            hostname: Some(LogHostname::Named("lb1".into())),
            ..target(&to)
        };
        let logger = Logger::new(&[filtered, sampled]);
        for (sev, msg) in [(6, "info"), (1, "alert"), (5, "notice"), (0, "emerg\n")] {
            logger.send(sev, msg);
        }
        Logger::new(&[named]).send(6, "tagged");
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..6 {
            let n = rx.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let pid = std::process::id();
        let tagged = got.pop().unwrap();
        assert!(tagged.starts_with("<150>"), "{tagged}");
        assert!(tagged.ends_with(&format!(" lb1 web[{pid}]: tagged\n")), "{tagged}");
        // `notice` drops info; minlevel `err` (3) lowers alert and emerg to
        // err; every second line reaches the sampled target, at local2 (18 * 8).
        assert_eq!(
            got,
            [
                "<3>alert\n",
                "<145>alert\n",
                "<5>notice\n",
                "<3>emerg\n",
                "<144>emerg\n"
            ]
        );
    }
}

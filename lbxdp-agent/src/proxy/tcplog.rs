//! `option tcplog`: HAProxy's TCP log line, one per session, sent to the
//! `log` targets through [`crate::syslog`].
//!
//! The line formatting is pure and tested field by field.
use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::SystemTime,
};

use jiff::tz::TimeZone;

pub use crate::syslog::{Logger, SEVERITY_INFO};
use crate::syslog::{MONTHS, civil};

/// Everything one tcplog line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub client: SocketAddr,
    pub accept_date: SystemTime,
    /// The names are the proxy's own, shared: a record costs no copy of them.
    pub frontend: Arc<str>,
    pub backend: Arc<str>,
    /// None: no server was assigned (`<NOSRV>`).
    pub server: Option<Arc<str>>,
    /// Time in queues (ms), -1 if the session never reached a queue.
    pub tw: i64,
    /// Time to connect to the server (ms), -1 if it never connected.
    pub tc: i64,
    /// Total session time (ms).
    pub tt: i64,
    /// Bytes sent from the server to the client.
    pub bytes_read: u64,
    pub termination: [u8; 2],
    pub actconn: u64,
    pub feconn: u64,
    pub beconn: u64,
    pub srv_conn: u64,
    pub retries: u32,
    /// The last retry went to another server: HAProxy prefixes retries with '+'.
    pub redispatched: bool,
    pub srv_queue: u64,
    pub backend_queue: u64,
}

/// The line after the syslog header, in HAProxy 2.6's tcplog format:
/// `ip:port [date] frontend backend/server Tw/Tc/Tt bytes state act/fe/be/srv/retries srvq/beq`.
pub fn format_tcplog(r: &LogRecord, tz: &TimeZone) -> String {
    let mut s = String::with_capacity(160);
    // IPv6 clients are written without brackets, as HAProxy's %ci:%cp does.
    let ip = match r.client.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let _ = write!(
        s,
        "{}:{} [{}] {} {}/{} {}/{}/{} {} {} {}/{}/{}/{}/{}{} {}/{}",
        ip,
        r.client.port(),
        accept_date(r.accept_date, tz),
        r.frontend,
        r.backend,
        r.server.as_deref().unwrap_or("<NOSRV>"),
        r.tw,
        r.tc,
        r.tt,
        r.bytes_read,
        String::from_utf8_lossy(&r.termination),
        r.actconn,
        r.feconn,
        r.beconn,
        r.srv_conn,
        if r.redispatched { "+" } else { "" },
        r.retries,
        r.srv_queue,
        r.backend_queue,
    );
    s
}

/// `06/Feb/2009:12:12:51.443`, on the wall clock of `tz`.
pub fn accept_date(t: SystemTime, tz: &TimeZone) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t, tz);
    format!("{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02}.{ms:03}", MONTHS[(mo - 1) as usize])
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::header::rfc3164_timestamp;

    use std::time::{Duration, UNIX_EPOCH};

    const UTC: TimeZone = TimeZone::UTC;

    fn at(secs: u64, ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)
    }

    #[test]
    fn dates() {
        // 2009-02-06 12:12:51 UTC, HAProxy's manual's example date.
        let t = at(1_233_922_371, 443);
        assert_eq!(accept_date(t, &UTC), "06/Feb/2009:12:12:51.443");
        assert_eq!(rfc3164_timestamp(t, &UTC), "Feb  6 12:12:51");
        assert_eq!(accept_date(at(951_782_400, 7), &UTC), "29/Feb/2000:00:00:00.007");
        assert_eq!(accept_date(at(0, 0), &UTC), "01/Jan/1970:00:00:00.000");
        assert_eq!(rfc3164_timestamp(at(1_767_225_599, 0), &UTC), "Dec 31 23:59:59");
        // Local time, with its daylight-saving rules, as HAProxy writes it.
        let new_york = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert_eq!(accept_date(t, &new_york), "06/Feb/2009:07:12:51.443");
        // 2009-07-06 12:12:51 UTC is 08:12:51 EDT.
        assert_eq!(accept_date(at(1_246_882_371, 0), &new_york), "06/Jul/2009:08:12:51.000");
        assert_eq!(rfc3164_timestamp(at(0, 0), &new_york), "Dec 31 19:00:00");
    }

    fn record() -> LogRecord {
        LogRecord {
            client: "10.0.1.2:33313".parse().unwrap(),
            accept_date: at(1_233_922_371, 443),
            frontend: "fnt".into(),
            backend: "bck".into(),
            server: Some("srv1".into()),
            tw: 0,
            tc: 0,
            tt: 5007,
            bytes_read: 212,
            termination: *b"--",
            actconn: 0,
            feconn: 0,
            beconn: 0,
            srv_conn: 0,
            retries: 3,
            redispatched: false,
            srv_queue: 0,
            backend_queue: 0,
        }
    }

    #[test]
    fn the_manuals_example_line() {
        assert_eq!(
            format_tcplog(&record(), &UTC),
            "10.0.1.2:33313 [06/Feb/2009:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0"
        );
    }

    #[test]
    fn nosrv_redispatch_and_ipv6() {
        let mut r = record();
        r.server = None;
        r.tw = -1;
        r.tc = -1;
        r.termination = *b"SC";
        r.redispatched = true;
        r.retries = 1;
        r.client = "[2001:db8::5]:4000".parse().unwrap();
        assert_eq!(
            format_tcplog(&r, &UTC),
            "2001:db8::5:4000 [06/Feb/2009:12:12:51.443] fnt bck/<NOSRV> -1/-1/5007 212 SC 0/0/0/0/+1 0/0"
        );
    }
}

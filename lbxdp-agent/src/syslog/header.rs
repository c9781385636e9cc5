//! The line HAProxy 2.6 writes for each `log ... format` (its
//! `build_log_header()` in src/log.c, followed by the message).
use std::time::SystemTime;

use jiff::{Timestamp, tz::TimeZone};

use super::{MONTHS, civil};
use crate::config::LogFormat;

/// What goes around one message.
pub struct Header<'a> {
    pub facility: u8,
    pub severity: u8,
    pub at: SystemTime,
    pub tz: &'a TimeZone,
    /// `log-send-hostname`; None leaves it out (or `-`, `localhost` where
    /// the format needs one, as HAProxy writes).
    pub hostname: Option<&'a str>,
    pub tag: &'a str,
    pub pid: u32,
}

/// The format used when the `log` line names none: HAProxy picks `rfc3164`
/// when a host name is to be sent, else `local` (its tag is never empty).
pub fn effective(format: LogFormat, hostname: Option<&str>) -> LogFormat {
    match format {
        LogFormat::Unspec if hostname.is_some() => LogFormat::Rfc3164,
        LogFormat::Unspec => LogFormat::Local,
        f => f,
    }
}

/// RFC 3164's timestamp: `Feb  6 12:12:56` (day padded with a space).
pub fn rfc3164_timestamp(t: SystemTime, tz: &TimeZone) -> String {
    let (_, mo, d, h, mi, s, _) = civil(t, tz);
    format!("{} {d:>2} {h:02}:{mi:02}:{s:02}", MONTHS[(mo - 1) as usize])
}

/// HAProxy's `timeofday_as_iso_us()`: `2026-11-29T17:05:02.272272-05:00`,
/// local time with microseconds and the offset in whole minutes.
pub fn iso_timestamp(t: SystemTime, tz: &TimeZone) -> String {
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    let dt = tz.to_datetime(ts);
    let off = tz.to_offset(ts).seconds();
    let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{sign}{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1000,
        off % 86400 / 3600,
        off % 3600 / 60,
    )
}

/// The whole line, without the LF that ends it.
pub fn line(format: LogFormat, h: &Header, msg: &str) -> String {
    let format = effective(format, h.hostname);
    let prival = u32::from(h.facility) * 8 + u32::from(h.severity);
    let (tag, pid) = (h.tag, h.pid);
    match format {
        LogFormat::Unspec | LogFormat::Local => {
            format!("<{prival}>{} {tag}[{pid}]: {msg}", rfc3164_timestamp(h.at, h.tz))
        }
        LogFormat::Rfc3164 => format!(
            "<{prival}>{} {} {tag}[{pid}]: {msg}",
            rfc3164_timestamp(h.at, h.tz),
            h.hostname.unwrap_or("localhost"),
        ),
        // No message id and no structured data: HAProxy's send_log() passes "- ".
        LogFormat::Rfc5424 => format!(
            "<{prival}>1 {} {} {tag} {pid} - - {msg}",
            iso_timestamp(h.at, h.tz),
            h.hostname.unwrap_or("-"),
        ),
        LogFormat::Priority => format!("<{prival}>{msg}"),
        LogFormat::Short => format!("<{}>{msg}", h.severity),
        LogFormat::Timed => format!("<{}>{} {msg}", h.severity, iso_timestamp(h.at, h.tz)),
        LogFormat::Iso => format!("{} {msg}", iso_timestamp(h.at, h.tz)),
        LogFormat::Raw => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// The message, header and date of real HAProxy 2.6.12's line, captured
    /// by running `haproxy -db` with one `log 127.0.0.1:PORT [format F]
    /// local2` line per format (a `socat -u UDP-RECV:PORT` each, written to
    /// a file) and a backend whose server check failed; TZ was UTC.
    const MSG: &str = "Server pool_with_a_rather_long_name_to_make_lines_longer_than_eighty_bytes/s1 is DOWN, \
                       reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. \
                       6 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.";
    /// 2026-11-29T22:04:53.976486Z, the first line's date.
    fn captured_at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_989_893) + Duration::from_micros(976_486)
    }

    fn header<'a>(tz: &'a TimeZone, hostname: Option<&'a str>, tag: &'a str, pid: u32) -> Header<'a> {
        Header {
            facility: 18,
            severity: 1,
            at: captured_at(),
            tz,
            hostname,
            tag,
            pid,
        }
    }

    #[test]
    fn every_format_as_haproxy_wrote_it() {
        let utc = TimeZone::UTC;
        let h = header(&utc, None, "haproxy", 2458);
        for (format, captured) in [
            (LogFormat::Unspec, "<145>Nov 29 22:04:53 haproxy[2458]: "),
            (LogFormat::Local, "<145>Nov 29 22:04:53 haproxy[2458]: "),
            (LogFormat::Rfc3164, "<145>Nov 29 22:04:53 localhost haproxy[2458]: "),
            (
                LogFormat::Rfc5424,
                "<145>1 2026-11-29T22:04:53.976486+00:00 - haproxy 2458 - - ",
            ),
            (LogFormat::Priority, "<145>"),
            (LogFormat::Short, "<1>"),
            (LogFormat::Timed, "<1>2026-11-29T22:04:53.976486+00:00 "),
            (LogFormat::Iso, "2026-11-29T22:04:53.976486+00:00 "),
            (LogFormat::Raw, ""),
        ] {
            assert_eq!(line(format, &h, MSG), format!("{captured}{MSG}"), "{format:?}");
        }
    }

    /// Captured on stdout from HAProxy 2.6.12 run with TZ=America/New_York,
    /// `log-tag mytag`, `log-send-hostname` (the machine is "vm") and
    /// `log stdout local0` / `log stderr format rfc5424 local0`.
    #[test]
    fn hostname_tag_and_offset() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let mut h = header(&ny, Some("vm"), "mytag", 2655);
        h.facility = 16;
        h.at = UNIX_EPOCH + Duration::from_secs(1_795_989_902) + Duration::from_micros(272_272);
        assert_eq!(
            line(LogFormat::Unspec, &h, "x"),
            "<129>Nov 29 17:05:02 vm mytag[2655]: x"
        );
        assert_eq!(
            line(LogFormat::Rfc5424, &h, "x"),
            "<129>1 2026-11-29T17:05:02.272272-05:00 vm mytag 2655 - - x"
        );
        // Half-hour zones keep their minutes.
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        assert!(
            iso_timestamp(h.at, &kolkata).ends_with("+05:30"),
            "{}",
            iso_timestamp(h.at, &kolkata)
        );
    }
}

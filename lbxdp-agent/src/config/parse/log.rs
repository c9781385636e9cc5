//! The `log` line, shared by `global` and the proxies, with HAProxy 2.6's
//! order (`len`, then `format`, then `sample`, then the facility) and its
//! alert words (`parse_logsrv()` in src/log.c).
use super::{Parser, arg, atol};
use crate::config::{
    diag::Origin,
    keywords as kw,
    model::{DEFAULT_LOG_LEN, LogFormat, LogSample, LogTarget},
};

impl Parser<'_> {
    /// `log <target> [len N] [format F] [sample R:S] <facility> [level [minlevel]]`.
    pub(super) fn log_target(&mut self, w: &[String], at: &Origin, in_global: bool) -> Option<LogTarget> {
        match log_target(w) {
            Ok(t) => Some(t),
            Err(e) if e.is_empty() => {
                let or_global = if in_global { "" } else { "or global" };
                self.diags.alert(
                    at,
                    format!("log: expects <address> and <facility> {or_global} as arguments"),
                );
                None
            }
            Err(e) => {
                self.diags.alert(at, format!("log: {e}"));
                None
            }
        }
    }
}

/// The line's target, or HAProxy's words for what is wrong (empty: the
/// address or the facility is missing, which the caller words).
fn log_target(w: &[String]) -> Result<LogTarget, String> {
    let address = arg(w, 1).to_string();
    if address.is_empty() || arg(w, 2).is_empty() {
        return Err(String::new());
    }
    let mut i = 2;
    let mut max_len = DEFAULT_LOG_LEN;
    if arg(w, i) == "len" {
        let v = arg(w, i + 1);
        // HAProxy's atoi(): "abc" is 0, "100x" is 100.
        max_len = match usize::try_from(atol(v).0) {
            Ok(n) if (80..=65535).contains(&n) => n,
            _ => return Err(format!("invalid log length '{v}', must be between 80 and 65535")),
        };
        i += 2;
    }
    let mut format = LogFormat::Unspec;
    if arg(w, i) == "format" {
        let v = arg(w, i + 1);
        format = LogFormat::from_name(v).ok_or_else(|| format!("unknown log format '{v}'"))?;
        i += 2;
    }
    let mut sample = None;
    if arg(w, i) == "sample" {
        sample = Some(log_sample(arg(w, i + 1))?);
        i += 2;
    }
    let facility = arg(w, i);
    if !kw::LOG_FACILITIES.contains(&facility) {
        return Err(format!("unknown log facility '{facility}'"));
    }
    let level = Some(arg(w, i + 1)).filter(|l| !l.is_empty());
    if let Some(l) = level.filter(|l| !kw::LOG_LEVELS.contains(l)) {
        return Err(format!("unknown optional log level '{l}'"));
    }
    let min_level = Some(arg(w, i + 2)).filter(|l| !l.is_empty() && level.is_some());
    if let Some(l) = min_level.filter(|l| !kw::LOG_LEVELS.contains(l)) {
        return Err(format!("unknown optional minimum log level '{l}'"));
    }
    if let Some(extra) = w.get(i + 3).filter(|x| !x.is_empty()) {
        return Err(format!("cannot handle unexpected argument '{extra}'"));
    }
    Ok(LogTarget {
        address,
        max_len,
        format,
        sample,
        facility: facility.to_string(),
        level: level.map(str::to_string),
        min_level: min_level.map(str::to_string),
        tag: None,
        hostname: None,
    })
}

/// HAProxy's `read_uint()`: the leading digits, wrapping as C's unsigned
/// arithmetic does; returns the value and what follows.
fn read_uint(s: &str) -> (u32, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let v = s.as_bytes()[..digits]
        .iter()
        .fold(0u32, |v, d| v.wrapping_mul(10).wrapping_add(u32::from(d - b'0')));
    (v, &s[digits..])
}

/// `sample <ranges>:<size>`, e.g. `1,3-4:5`, checked as HAProxy 2.6 checks it.
fn log_sample(spec: &str) -> Result<LogSample, String> {
    let Some((list, size_text)) = spec.split_once(':') else {
        return Err("Missing sample size".into());
    };
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let bad = || format!("wrong sample range '{rest}'");
        let (this, next) = rest.split_once(',').unwrap_or((rest, ""));
        let (low, after) = read_uint(this);
        let high = match after.strip_prefix('-') {
            _ if low == 0 => return Err(bad()),
            None if after.is_empty() => low,
            None => return Err(bad()),
            Some(h) => match read_uint(h) {
                (high, "") if high > low => high,
                _ => return Err(bad()),
            },
        };
        // HAProxy only asks whether either end falls in an earlier range.
        if ranges
            .iter()
            .any(|&(l, h)| (l..=h).contains(&low) || (l..=h).contains(&high))
        {
            return Err("ranges are overlapping".into());
        }
        ranges.push((low, high));
        rest = next;
    }
    let Some(highest) = ranges.iter().map(|&(_, h)| h).max() else {
        return Err("no sampling ranges given".into());
    };
    let size = match read_uint(size_text) {
        (n, "") if n != 0 => n,
        _ => return Err(format!("wrong sample size '{size_text}' for sample range '{list}'")),
    };
    if size < highest {
        return Err(format!(
            "sample size {size} should be greater or equal to {highest} the maximum of the high ranges limits"
        ));
    }
    ranges.sort_by(|a, b| {
        if a.1 < b.0 {
            std::cmp::Ordering::Less
        } else if a.0 > b.1 {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    Ok(LogSample { ranges, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn parse(line: &str) -> Result<LogTarget, String> {
        log_target(&words(line))
    }

    #[test]
    fn options_in_haproxys_order() {
        let t = parse("log 127.0.0.1 len 100 format rfc5424 sample 1,3-4:5 local2 info notice").unwrap();
        assert_eq!(t.max_len, 100);
        assert_eq!(t.format, LogFormat::Rfc5424);
        assert_eq!(
            t.sample,
            Some(LogSample {
                ranges: vec![(1, 1), (3, 4)],
                size: 5
            })
        );
        assert_eq!(
            (t.facility.as_str(), t.level.as_deref(), t.min_level.as_deref()),
            ("local2", Some("info"), Some("notice"))
        );
        let t = parse("log stdout format raw local0").unwrap();
        assert_eq!((t.max_len, t.format, t.sample), (1024, LogFormat::Raw, None));
        // HAProxy 2.6 takes them in this order only: s.cfg:6 said
        // "log : unknown log facility 'len'" for `format short len 80 local0`.
        assert_eq!(
            parse("log stdout format short len 80 local0").unwrap_err(),
            "unknown log facility 'len'"
        );
    }

    /// What `haproxy -c` (2.6.12) said for each line, after "parsing [e.cfg:N] : log : ".
    #[test]
    fn haproxys_words() {
        for (line, said) in [
            (
                "log 127.0.0.1 len 79 local0",
                "invalid log length '79', must be between 80 and 65535",
            ),
            (
                "log 127.0.0.1 len 65536 local0",
                "invalid log length '65536', must be between 80 and 65535",
            ),
            (
                "log 127.0.0.1 len abc local0",
                "invalid log length 'abc', must be between 80 and 65535",
            ),
            ("log 127.0.0.1 format json local0", "unknown log format 'json'"),
            ("log 127.0.0.1 sample 1-2 local0", "Missing sample size"),
            ("log 127.0.0.1 sample 0:2 local0", "wrong sample range '0'"),
            ("log 127.0.0.1 sample 1,1-2:3 local0", "ranges are overlapping"),
            (
                "log 127.0.0.1 sample 1-3:2 local0",
                "sample size 2 should be greater or equal to 3 the maximum of the high ranges limits",
            ),
            (
                "log 127.0.0.1 sample 1:x local0",
                "wrong sample size 'x' for sample range '1'",
            ),
            ("log 127.0.0.1 sample :3 local0", "no sampling ranges given"),
            ("log 127.0.0.1 sample 2-1:3 local0", "wrong sample range '2-1'"),
            ("log 127.0.0.1 local9", "unknown log facility 'local9'"),
            ("log 127.0.0.1 local0 loud", "unknown optional log level 'loud'"),
            (
                "log 127.0.0.1 local0 info loud",
                "unknown optional minimum log level 'loud'",
            ),
            (
                "log 127.0.0.1 local0 info err x",
                "cannot handle unexpected argument 'x'",
            ),
        ] {
            assert_eq!(parse(line).unwrap_err(), said, "{line}");
        }
        assert_eq!(parse("log 127.0.0.1").unwrap_err(), "");
        // The rest of the list is quoted from the bad range on.
        assert_eq!(log_sample("1,x,3:5").unwrap_err(), "wrong sample range 'x,3'");
    }

    #[test]
    fn sample_ranges_sorted() {
        let s = log_sample("7-9,2,4-5:10").unwrap();
        assert_eq!(s.ranges, vec![(2, 2), (4, 5), (7, 9)]);
        assert_eq!(s.size, 10);
        // HAProxy's overlap test only looks at the new range's ends.
        assert!(log_sample("2,1-3:3").is_ok());
    }
}

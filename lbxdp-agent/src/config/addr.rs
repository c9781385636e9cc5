//! Listening and server addresses as HAProxy's `str2sa_range()` reads them:
//! the port follows the *last* colon unless the address is in brackets, so
//! `fd00::1:80` is fd00::1 port 80; `*` and an empty address mean "any".
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use super::model::{BindAddr, PortSpec, SourceAddr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("missing port specification in '{0}'")]
    MissingPort(String),
    #[error("invalid port '{0}'")]
    BadPort(String),
    #[error("invalid port range '{0}-{1}'")]
    BadRange(u32, u32),
    #[error("port range not permitted here in '{0}'")]
    RangeNotAllowed(String),
    #[error("port offset not permitted here in '{0}'")]
    OffsetNotAllowed(String),
    #[error("invalid character '{0}' in port number '{1}' in '{2}'")]
    BadPortChar(char, String, String),
    #[error("invalid address: '{0}' in '{1}'")]
    BadAddress(String, String),
    #[error(
        "'{0}' is not an IP address: lbxdp does not resolve host names in the configuration, \
         write the server's IP address instead"
    )]
    HostName(String),
    #[error(
        "'{0}' is not an IP address: lbxdp does not resolve host names in the configuration, \
         write the IP address to connect from instead"
    )]
    SourceHostName(String),
    #[error("'{0}' is not an IP address: lbxdp connects to servers from IPv4 or IPv6 addresses only")]
    SourceNotInet(String),
    #[error("unsupported address family in '{0}'")]
    Family(String),
}

/// One listening socket family, as the prefix or the address says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

/// A bind address that lbxdp can't balance: a UNIX socket, an inherited fd...
/// HAProxy accepts them, so lbxdp parses them and says it ignores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Inet(BindAddr),
    Other(String),
}

/// HAProxy's `atoi()`: leading digits, the rest ignored (HAProxy accepts `80x`).
fn atoi(s: &str) -> (u32, bool) {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let clean = digits.len() == s.len();
    (
        digits
            .parse::<u64>()
            .map(|v| v.min(u64::from(u32::MAX)) as u32)
            .unwrap_or(0),
        clean,
    )
}

fn strip_prefix(text: &str) -> Result<(Family, &str), Option<String>> {
    let Some((pfx, rest)) = text.split_once('@') else {
        if text.starts_with('/') {
            return Err(Some(text.to_string()));
        }
        return Ok((Family::Any, text));
    };
    match pfx {
        "ipv4" | "tcp4" => Ok((Family::V4, rest)),
        "ipv6" | "tcp6" => Ok((Family::V6, rest)),
        "tcp" => Ok((Family::Any, rest)),
        "unix" | "abns" | "fd" | "sockpair" => Err(Some(text.to_string())),
        _ => Err(None),
    }
}

/// Splits `host:port` with HAProxy's rule; the host keeps no brackets.
fn split_port(s: &str) -> (&str, Option<&str>) {
    if let Some((host, after)) = s.strip_prefix('[').and_then(|inner| inner.split_once(']')) {
        return (host, after.strip_prefix(':'));
    }
    match s.rfind(':') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

fn parse_ip(host: &str, family: Family, whole: &str) -> Result<Option<IpAddr>, AddrError> {
    if host.is_empty() || host == "*" {
        return Ok(match family {
            Family::V6 => Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            Family::V4 => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            Family::Any => None,
        });
    }
    let ip = match family {
        Family::V4 => host.parse::<Ipv4Addr>().map(IpAddr::V4).ok(),
        Family::V6 => host.parse::<Ipv6Addr>().map(IpAddr::V6).ok(),
        Family::Any => host.parse::<IpAddr>().ok(),
    };
    ip.map(Some)
        .ok_or_else(|| AddrError::BadAddress(host.to_string(), whole.to_string()))
}

/// Parses one `bind` word: comma-separated `[addr]:port[-port]` entries.
/// Returns the listeners and notes for lenient forms (`:80x`) HAProxy accepts.
pub fn parse_bind(text: &str) -> Result<(Vec<Listen>, Vec<String>), AddrError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for item in text.split(',') {
        let (family, rest) = match strip_prefix(item) {
            Ok(x) => x,
            Err(Some(other)) => {
                out.push(Listen::Other(other));
                continue;
            }
            Err(None) => return Err(AddrError::Family(item.to_string())),
        };
        let (host, port) = split_port(rest);
        let Some(port) = port.filter(|p| !p.is_empty()) else {
            return Err(AddrError::MissingPort(item.to_string()));
        };
        if !port.starts_with(|c: char| c.is_ascii_digit()) {
            if port.starts_with(['+', '-']) {
                return Err(AddrError::OffsetNotAllowed(item.to_string()));
            }
            let c = port.chars().next().unwrap_or('?');
            return Err(AddrError::BadPortChar(c, port.to_string(), item.to_string()));
        }
        let (lo_s, hi_s) = port.split_once('-').unwrap_or((port, port));
        let (lo, lo_clean) = atoi(lo_s);
        let (hi, hi_clean) = atoi(hi_s);
        if !(1..=65535).contains(&lo) {
            return Err(AddrError::BadPort(lo_s.to_string()));
        }
        if !(1..=65535).contains(&hi) {
            return Err(AddrError::BadPort(hi_s.to_string()));
        }
        if lo > hi {
            return Err(AddrError::BadRange(lo, hi));
        }
        if !lo_clean || !hi_clean {
            notes.push(format!(
                "port '{port}' read as {lo}{}",
                if lo == hi { String::new() } else { format!("-{hi}") }
            ));
        }
        let ip = parse_ip(host, family, item)?;
        out.push(Listen::Inet(BindAddr {
            ip,
            ports: (lo as u16)..=(hi as u16),
        }));
    }
    Ok((out, notes))
}

/// Parses a server address: `addr[:port]`, `addr:+N`, `addr:-N`, `addr:`.
pub fn parse_server(text: &str) -> Result<(IpAddr, PortSpec, Vec<String>), AddrError> {
    let (family, rest) = match strip_prefix(text) {
        Ok(x) => x,
        Err(_) => return Err(AddrError::Family(text.to_string())),
    };
    let (host, port) = split_port(rest);
    let mut notes = Vec::new();
    let spec = match port.unwrap_or("") {
        "" => PortSpec::Offset(0),
        p if p.starts_with(|c: char| c.is_ascii_digit()) => {
            if p.contains('-') {
                return Err(AddrError::RangeNotAllowed(text.to_string()));
            }
            let (v, clean) = atoi(p);
            if v > 65535 {
                return Err(AddrError::BadPort(p.to_string()));
            }
            if !clean {
                notes.push(format!("port '{p}' read as {v}"));
            }
            // HAProxy: port 0 means "the port the client connected to", like none.
            if v == 0 {
                PortSpec::Offset(0)
            } else {
                PortSpec::Fixed(v as u16)
            }
        }
        p if p.starts_with(['+', '-']) => {
            let (v, _) = atoi(&p[1..]);
            let v = v.min(65535) as i32;
            PortSpec::Offset(if p.starts_with('-') { -v } else { v })
        }
        p => {
            let c = p.chars().next().unwrap_or('?');
            return Err(AddrError::BadPortChar(c, p.to_string(), text.to_string()));
        }
    };
    if host.is_empty() || host == "*" {
        return Err(AddrError::BadAddress(host.to_string(), text.to_string()));
    }
    match parse_ip(host, family, text) {
        Ok(Some(ip)) => Ok((ip, spec, notes)),
        _ => Err(AddrError::HostName(host.to_string())),
    }
}

/// Parses a server's `addr` as HAProxy 2.6 does: `addr[:port]`, no offset
/// nor range. None: no address (`:8080` checks the server's own address on
/// that port), no port (or port 0: the check's other ports apply).
pub fn parse_check_addr(text: &str) -> Result<(Option<IpAddr>, Option<u16>), AddrError> {
    let (family, rest) = match strip_prefix(text) {
        Ok(x) => x,
        Err(_) => return Err(AddrError::Family(text.to_string())),
    };
    let (host, port) = split_port(rest);
    let port = match port.unwrap_or("") {
        "" => None,
        p if p.starts_with(['+', '-']) => return Err(AddrError::OffsetNotAllowed(text.to_string())),
        p if p.starts_with(|c: char| c.is_ascii_digit()) => {
            if p.contains('-') {
                return Err(AddrError::RangeNotAllowed(text.to_string()));
            }
            let (v, _) = atoi(p);
            if v > 65535 {
                return Err(AddrError::BadPort(p.to_string()));
            }
            // Checked above: it fits in a u16.
            Some(v as u16).filter(|&v| v != 0)
        }
        p => {
            let c = p.chars().next().unwrap_or('?');
            return Err(AddrError::BadPortChar(c, p.to_string(), text.to_string()));
        }
    };
    match parse_ip(host, family, text) {
        Ok(ip) => Ok((ip.filter(|ip| !ip.is_unspecified()), port)),
        // HAProxy would resolve a name; lbxdp doesn't, as for server addresses.
        Err(_) if !host.contains(':') && host.chars().any(|c| c.is_ascii_alphabetic()) => {
            Err(AddrError::HostName(host.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// Parses a `source` address as HAProxy 2.6 does: `addr[:port]`, and
/// `addr:low-high` where `range` allows it (server and `default-server`
/// lines). `*` or no address is 0.0.0.0 (`::` with `ipv6@`); port 0 or none
/// is any port. Returns notes for lenient forms (`:80x`) HAProxy accepts.
pub fn parse_source(text: &str, range: bool) -> Result<(SourceAddr, Vec<String>), AddrError> {
    let (family, rest) = match strip_prefix(text) {
        Ok(x) => x,
        Err(Some(other)) => return Err(AddrError::SourceNotInet(other)),
        Err(None) => return Err(AddrError::Family(text.to_string())),
    };
    let (host, port) = split_port(rest);
    let mut notes = Vec::new();
    let ports: Option<RangeInclusive<u16>> = match port.unwrap_or("") {
        "" => None,
        p if p.starts_with(|c: char| c.is_ascii_digit()) => {
            let (lo_s, hi_s) = match p.split_once('-') {
                Some(_) if !range => return Err(AddrError::RangeNotAllowed(text.to_string())),
                Some(pair) => pair,
                None => (p, p),
            };
            let (lo, lo_clean) = atoi(lo_s);
            let (hi, hi_clean) = atoi(hi_s);
            if lo > 65535 {
                return Err(AddrError::BadPort(lo_s.to_string()));
            }
            if hi > 65535 {
                return Err(AddrError::BadPort(hi_s.to_string()));
            }
            if lo > hi {
                return Err(AddrError::BadRange(lo, hi));
            }
            if !lo_clean || !hi_clean {
                notes.push(format!(
                    "port '{p}' read as {lo}{}",
                    if lo == hi { String::new() } else { format!("-{hi}") }
                ));
            }
            // Checked above: both fit in a u16.
            let (lo, hi) = (lo as u16, hi as u16);
            (hi != 0).then_some(lo..=hi)
        }
        p if p.starts_with(['+', '-']) => return Err(AddrError::OffsetNotAllowed(text.to_string())),
        p => {
            let c = p.chars().next().unwrap_or('?');
            return Err(AddrError::BadPortChar(c, p.to_string(), text.to_string()));
        }
    };
    let addr = match parse_ip(host, family, text) {
        Ok(Some(ip)) => ip,
        Ok(None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        // HAProxy would resolve a name; lbxdp doesn't, and says so.
        Err(_) if !host.contains(':') && host.chars().any(|c| c.is_ascii_alphabetic()) => {
            return Err(AddrError::SourceHostName(host.to_string()));
        }
        Err(e) => return Err(e),
    };
    Ok((SourceAddr { addr, ports }, notes))
}

/// `10.0.0.1`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0`, `::1`, `fe80::/10`, and
/// inet_aton()'s short forms HAProxy takes too (`10.1/16` is 10.0.0.1/16).
pub fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    let ip: IpAddr = ip.parse().ok().or_else(|| inet_aton(ip).map(IpAddr::V4))?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match (l.parse::<u8>(), l.parse::<std::net::Ipv4Addr>()) {
            (Ok(n), _) if n <= max => n,
            (_, Ok(mask)) if ip.is_ipv4() => {
                let bits = u32::from(mask);
                // Only a contiguous mask is a prefix.
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return None;
                }
                bits.leading_ones() as u8
            }
            _ => return None,
        },
    };
    Some((ip, len))
}

/// `10.0.0.0/255.0.255.0`: an IPv4 network with a mask that isn't a
/// prefix, which HAProxy matches bit by bit (network, mask).
pub fn parse_masked_v4(s: &str) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
    let (ip, mask) = s.split_once('/')?;
    let ip = ip.parse().ok().or_else(|| inet_aton(ip))?;
    Some((ip, mask.parse().ok()?))
}

/// inet_aton()'s `a`, `a.b`, `a.b.c`: the last part fills the remaining bytes.
fn inet_aton(s: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<u32> = s.split('.').map(|p| p.parse::<u32>().ok()).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 2 || head.iter().any(|&p| p > 255) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if room < 32 && *last >> room != 0 {
        return None;
    }
    let top = head
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, &p)| acc | p << (24 - 8 * i as u32));
    Some((top | last).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind1(s: &str) -> BindAddr {
        match parse_bind(s).unwrap().0.remove(0) {
            Listen::Inet(b) => b,
            Listen::Other(o) => panic!("not inet: {o}"),
        }
    }

    #[test]
    fn bind_forms() {
        assert_eq!(
            bind1("0.0.0.0:80"),
            BindAddr {
                ip: Some("0.0.0.0".parse().unwrap()),
                ports: 80..=80
            }
        );
        assert_eq!(bind1("*:80").ip, None);
        assert_eq!(bind1(":80").ip, None);
        assert_eq!(bind1("[::]:443").ip, Some("::".parse().unwrap()));
        assert_eq!(bind1(":::443").ip, Some("::".parse().unwrap()));
        assert_eq!(bind1("fd00:198:18::1:8080").ip, Some("fd00:198:18::1".parse().unwrap()));
        assert_eq!(bind1("198.18.0.1:8000-8010").ports, 8000..=8010);
        assert_eq!(bind1("ipv6@:80").ip, Some("::".parse().unwrap()));
        let (all, _) = parse_bind("198.18.0.1:80,198.18.0.2:81").unwrap();
        assert_eq!(all.len(), 2);
        assert!(matches!(parse_bind("/run/x.sock").unwrap().0[0], Listen::Other(_)));
        assert_eq!(parse_bind(":80x").unwrap().1.len(), 1);
    }

    #[test]
    fn bind_errors() {
        assert_eq!(parse_bind("127.0.0.1"), Err(AddrError::MissingPort("127.0.0.1".into())));
        assert_eq!(parse_bind(":0"), Err(AddrError::BadPort("0".into())));
        assert_eq!(parse_bind(":70000"), Err(AddrError::BadPort("70000".into())));
        assert_eq!(parse_bind(":90-80"), Err(AddrError::BadRange(90, 80)));
        assert!(matches!(parse_bind("198.18.0.300:80"), Err(AddrError::BadAddress(..))));
        assert!(matches!(parse_bind(":http"), Err(AddrError::BadPortChar('h', ..))));
    }

    #[test]
    fn server_forms() {
        let (ip, p, _) = parse_server("198.18.0.101:80").unwrap();
        assert_eq!((ip, p), ("198.18.0.101".parse().unwrap(), PortSpec::Fixed(80)));
        assert_eq!(parse_server("198.18.0.101").unwrap().1, PortSpec::Offset(0));
        assert_eq!(parse_server("198.18.0.101:+10").unwrap().1, PortSpec::Offset(10));
        assert_eq!(parse_server("198.18.0.101:-1").unwrap().1, PortSpec::Offset(-1));
        assert_eq!(
            parse_server("[fd00:198:18::1]:80").unwrap().0,
            "fd00:198:18::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_server("fd00:198:18::1:80").unwrap().1, PortSpec::Fixed(80));
        assert!(matches!(parse_server("fd00:198:18::1"), Err(AddrError::HostName(_))));
        assert!(matches!(parse_server("web.example:80"), Err(AddrError::HostName(_))));
        assert!(matches!(parse_server("198.18.0.1:70000"), Err(AddrError::BadPort(_))));
        assert!(matches!(
            parse_server("198.18.0.1:80-90"),
            Err(AddrError::RangeNotAllowed(_))
        ));
    }

    #[test]
    fn source_forms() {
        let src = |s: &str, range: bool| parse_source(s, range).map(|(a, _)| (a.addr.to_string(), a.ports));
        assert_eq!(src("198.18.0.9", false), Ok(("198.18.0.9".into(), None)));
        assert_eq!(src("198.18.0.9:0", false), Ok(("198.18.0.9".into(), None)));
        assert_eq!(src("198.18.0.9:", false), Ok(("198.18.0.9".into(), None)));
        assert_eq!(
            src("198.18.0.9:1024", false),
            Ok(("198.18.0.9".into(), Some(1024..=1024)))
        );
        assert_eq!(
            src("198.18.0.9:1024-2047", true),
            Ok(("198.18.0.9".into(), Some(1024..=2047)))
        );
        assert_eq!(src("0.0.0.0:0-100", true), Ok(("0.0.0.0".into(), Some(0..=100))));
        assert_eq!(src("*", false), Ok(("0.0.0.0".into(), None)));
        assert_eq!(src(":1000", false), Ok(("0.0.0.0".into(), Some(1000..=1000))));
        assert_eq!(src("ipv6@:1000", false), Ok(("::".into(), Some(1000..=1000))));
        assert_eq!(src("[fd00::9]", false), Ok(("fd00::9".into(), None)));
        assert_eq!(
            src("[fd00::9]:5000-5009", true),
            Ok(("fd00::9".into(), Some(5000..=5009)))
        );
        assert_eq!(src("fd00::9:1000", false), Ok(("fd00::9".into(), Some(1000..=1000))));
        assert_eq!(parse_source("198.18.0.9:80x", false).map(|(_, n)| n.len()), Ok(1));
    }

    #[test]
    fn source_errors() {
        assert!(matches!(
            parse_source("198.18.0.9:1000-2000", false),
            Err(AddrError::RangeNotAllowed(_))
        ));
        assert_eq!(
            parse_source("198.18.0.9:2000-1000", true),
            Err(AddrError::BadRange(2000, 1000))
        );
        assert_eq!(
            parse_source("198.18.0.9:70000", true),
            Err(AddrError::BadPort("70000".into()))
        );
        assert!(matches!(
            parse_source("198.18.0.9:+1", true),
            Err(AddrError::OffsetNotAllowed(_))
        ));
        assert!(matches!(
            parse_source("198.18.0.9:http", true),
            Err(AddrError::BadPortChar('h', ..))
        ));
        // The port follows the last colon, as in HAProxy: a bare IPv6 address needs brackets.
        assert!(matches!(parse_source("::1", false), Err(AddrError::BadAddress(..))));
        assert!(matches!(
            parse_source("999.0.0.1", false),
            Err(AddrError::BadAddress(..))
        ));
        assert!(matches!(
            parse_source("lb.example", false),
            Err(AddrError::SourceHostName(_))
        ));
        assert!(matches!(
            parse_source("unix@/run/x", false),
            Err(AddrError::SourceNotInet(_))
        ));
    }
}

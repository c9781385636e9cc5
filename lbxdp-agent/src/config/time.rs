//! HAProxy's time values (`parse_time_err()`): digits and an optional unit
//! among us, ms, s, m, h, d. Without a unit the caller's default applies
//! (milliseconds for every keyword lbxdp reads). Results are whole
//! milliseconds, rounded up, below 2^31 ms, as HAProxy stores them.
use std::time::Duration;

/// HAProxy's ceiling: ticks are signed 32-bit milliseconds.
pub const MAX_MS: u64 = 0x7fff_ffff;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("empty time value")]
    Empty,
    #[error("unexpected character '{0}'")]
    BadChar(char),
    #[error("timer overflow (maximum value is 2147483647 ms or ~24.8 days)")]
    Overflow,
    #[error("timer underflow (minimum non-null value is 1 ms)")]
    Underflow,
}

/// A parsed time, and whether junk followed a valid unit (HAProxy 2.6 only
/// warns about `10sx`, so lbxdp does too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub value: Duration,
    pub trailing_junk: Option<char>,
}

/// Parses `text` with milliseconds as the unit when none is given.
pub fn parse_ms(text: &str) -> Result<Parsed, TimeError> {
    let bytes = text.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(TimeError::Empty);
    };
    if !first.is_ascii_digit() {
        return Err(TimeError::BadChar(text.chars().next().unwrap_or('?')));
    }
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    // Saturating: a number too long for u64 is an overflow, not a wrap.
    let value = bytes[..digits].iter().fold(0u128, |acc, &d| {
        (acc * 10 + u128::from(d - b'0')).min(u128::from(u64::MAX))
    });
    let rest = &text[digits..];
    // (multiplier, divisor) from the unit to milliseconds.
    let (unit_len, mult, div): (usize, u128, u128) = if rest.is_empty() {
        (0, 1, 1)
    } else if rest.starts_with("us") {
        (2, 1, 1000)
    } else if rest.starts_with("ms") {
        (2, 1, 1)
    } else if rest.starts_with('s') {
        (1, 1000, 1)
    } else if rest.starts_with('m') {
        (1, 60_000, 1)
    } else if rest.starts_with('h') {
        (1, 3_600_000, 1)
    } else if rest.starts_with('d') {
        (1, 86_400_000, 1)
    } else {
        return Err(TimeError::BadChar(rest.chars().next().unwrap_or('?')));
    };
    let trailing_junk = rest[unit_len..].chars().next();
    let ms = (value * mult).div_ceil(div);
    if ms > u128::from(MAX_MS) {
        return Err(TimeError::Overflow);
    }
    if ms == 0 && value != 0 {
        return Err(TimeError::Underflow);
    }
    Ok(Parsed {
        value: Duration::from_millis(ms as u64),
        trailing_junk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: &str) -> u128 {
        parse_ms(t).unwrap().value.as_millis()
    }

    #[test]
    fn units() {
        assert_eq!(ms("10000"), 10_000);
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("1m"), 60_000);
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("2h"), 7_200_000);
        assert_eq!(ms("1d"), 86_400_000);
        assert_eq!(ms("0"), 0);
        // HAProxy rounds sub-millisecond values up.
        assert_eq!(ms("10us"), 1);
        assert_eq!(ms("1500us"), 2);
    }

    #[test]
    fn errors() {
        assert_eq!(parse_ms(""), Err(TimeError::Empty));
        assert_eq!(parse_ms("1.5s"), Err(TimeError::BadChar('.')));
        assert_eq!(parse_ms("10S"), Err(TimeError::BadChar('S')));
        assert_eq!(parse_ms("s"), Err(TimeError::BadChar('s')));
        assert_eq!(parse_ms("25d"), Err(TimeError::Overflow));
        assert_eq!(parse_ms("99999999999999999999999999999999"), Err(TimeError::Overflow));
        assert_eq!(parse_ms("10sx").unwrap().trailing_junk, Some('x'));
    }
}

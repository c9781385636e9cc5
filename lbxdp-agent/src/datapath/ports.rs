//! Full NAT's source ports: a range the LB's own kernel never hands to its
//! sockets. A NATed flow and a local connection to the same server (a health
//! check above all) then can't share a 4-tuple, so a check's SYN-ACK is never
//! taken for a client's reply, at any load.
//!
//! The range is the larger gap outside `ip_local_port_range` (1024-32767
//! with Linux's default 32768-60999), and it is also written to
//! `ip_local_reserved_ports`, so a later change of the ephemeral range can't
//! move the kernel into it. The old reservation comes back on exit.
use std::ops::RangeInclusive;

use tracing::{info, warn};

use super::sysctl::Saved;

const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// Fewer free ports than this outside the ephemeral range (a host tuned as a
/// load generator, 1024-65535): take the top of the space instead and rely on
/// the reservation alone.
const MIN_NAT_PORTS: u32 = 8192;
const FALLBACK: RangeInclusive<u16> = 49152..=65535;

/// The first privileged-free port: NAT never uses well-known ports.
const LOWEST: u32 = 1024;

/// The range chosen for an ephemeral range `lo..=hi` (pure, for tests).
pub fn choose(lo: u16, hi: u16) -> RangeInclusive<u16> {
    let (lo, hi) = (u32::from(lo.min(hi)), u32::from(lo.max(hi)));
    let below = lo.saturating_sub(LOWEST);
    let above = 65535u32.saturating_sub(hi);
    let (first, count) = if below >= above {
        (LOWEST, below)
    } else {
        (hi + 1, above)
    };
    if count < MIN_NAT_PORTS {
        return FALLBACK;
    }
    (first as u16)..=((first + count - 1) as u16)
}

/// The reserved range, held until `release`.
pub struct NatPorts {
    pub range: RangeInclusive<u16>,
    /// `ip_local_reserved_ports` as it was, to put back.
    before: Option<Saved>,
}

impl NatPorts {
    /// Reads the ephemeral range of this network namespace, picks the NAT
    /// range and reserves it.
    /// `previous`: what a dead agent recorded as the value before its own
    /// reservation (its handover), which is what goes back on exit.
    pub fn reserve(previous: Option<String>) -> Self {
        let range = match std::fs::read_to_string(PORT_RANGE).ok().and_then(|s| parse_pair(&s)) {
            Some((lo, hi)) => choose(lo, hi),
            None => {
                warn!("{PORT_RANGE}: unreadable; full NAT uses ports {FALLBACK:?}");
                FALLBACK
            }
        };
        let before = previous.or_else(|| std::fs::read_to_string(RESERVED).ok().map(|s| s.trim().to_string()));
        let ours = format!("{}-{}", range.start(), range.end());
        let value = match before.as_deref() {
            Some("") | None => ours,
            Some(old) => format!("{old},{ours}"),
        };
        let before = match std::fs::write(RESERVED, &value) {
            Ok(()) => before.map(|old| Saved::new(RESERVED, old)),
            Err(e) => {
                warn!("{RESERVED}: {e}; the kernel may still pick full NAT's ports for local sockets");
                None
            }
        };
        info!(
            "full NAT source ports {}-{} (outside the kernel's ephemeral range, reserved in ip_local_reserved_ports)",
            range.start(),
            range.end()
        );
        Self { range, before }
    }

    /// (first, count) as the datapath's settings take them.
    pub fn first_count(&self) -> (u16, u16) {
        let count = u32::from(*self.range.end()) - u32::from(*self.range.start()) + 1;
        (*self.range.start(), count.min(u32::from(u16::MAX)) as u16)
    }

    /// The value to put back on exit.
    pub fn before(&self) -> Option<&str> {
        self.before.as_ref().map(|s| s.old.as_str())
    }

    /// Puts the old reservation back.
    pub fn release(&mut self) {
        if let Some(saved) = self.before.take() {
            saved.restore();
        }
    }

    /// Leaves the reservation for the agent that took the datapath over (it
    /// puts the old value back when it stops).
    pub fn keep(&mut self) {
        self.before = None;
    }

    /// Writes `old` back as the reservation (for a dead agent's, say).
    pub fn restore(old: &str) {
        Saved::new(RESERVED, old).restore();
    }
}

impl Drop for NatPorts {
    fn drop(&mut self) {
        self.release();
    }
}

fn parse_pair(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(|w| w.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_default_gives_the_ports_below_the_ephemeral_range() {
        assert_eq!(choose(32768, 60999), 1024..=32767);
    }

    #[test]
    fn a_high_ephemeral_range_gives_the_ports_below_it() {
        assert_eq!(choose(49152, 65535), 1024..=49151);
    }

    #[test]
    fn a_low_ephemeral_range_gives_the_ports_above_it() {
        assert_eq!(choose(1024, 20000), 20001..=65535);
    }

    #[test]
    fn a_load_generator_range_falls_back_to_the_top() {
        assert_eq!(choose(1024, 65535), FALLBACK);
        assert_eq!(choose(2000, 60000), FALLBACK);
    }

    #[test]
    fn the_pair_is_read_as_the_kernel_writes_it() {
        assert_eq!(parse_pair("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_pair("bogus"), None);
    }
}

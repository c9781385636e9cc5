//! Incremental Internet checksum updates (RFC 1624): HC' = ~(~HC + ~m + m').
//!
//! Words are loaded and stored in memory order. The ones'-complement sum is
//! the same in either byte order (RFC 1071), so no byte swaps are needed as
//! long as checksum and data are read the same way.

#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds the change of one 16-bit word to a checksum.
#[inline(always)]
pub fn replace16(csum: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(sum)
}

/// Adds the change of `N` bytes (N even) to a checksum.
#[inline(always)]
pub fn replace_bytes<const N: usize>(csum: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut sum = u32::from(!csum);
    let mut i = 0;
    while i + 1 < N {
        let o = u16::from_ne_bytes([old[i], old[i + 1]]);
        let n = u16::from_ne_bytes([new[i], new[i + 1]]);
        sum += u32::from(!o) + u32::from(n);
        i += 2;
    }
    !fold(sum)
}

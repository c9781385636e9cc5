//! Weighted Maglev lookup tables (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016), shared by the XDP datapath and the
//! userspace proxy.
//!
//! Pure: the same servers give the same table on every machine, so several LB
//! nodes that read the same config send a flow to the same server.
use std::hash::Hasher;

use siphasher::sip::SipHasher13;
use thiserror::Error;

/// The default table size: a prime well above 100 x the servers of a large backend,
/// which keeps the imbalance and the disruption of a change small.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// The largest table we build: 2^24 slots, 64 MiB of u32s at most.
pub const MAX_TABLE_SIZE: u32 = 16_777_213;
/// A slot that maps to no server: every server has weight 0 or is down.
pub const NO_SERVER: u32 = u32::MAX;

// Fixed keys make the hashes, and so the tables, the same on every machine and
// in every release: changing them would move every flow of a rolling upgrade.
const OFFSET_KEYS: (u64, u64) = (0x6c62_7864_702d_6f66, 0x6673_6574_2d6b_6579);
const SKIP_KEYS: (u64, u64) = (0x6c62_7864_702d_736b, 0x6970_2d6b_6579_2121);

/// One server of a backend: its stable identity (the server's name) and weight.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub id: &'a str,
    pub weight: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MaglevError {
    #[error("the Maglev table size {0} is not a prime")]
    NotPrime(u32),
    #[error("the Maglev table size {size} is out of range 3..={max}")]
    OutOfRange { size: u32, max: u32 },
    #[error("{servers} servers do not fit a Maglev table of {size} slots")]
    TooSmall { size: u32, servers: usize },
}

/// Checks a table size from the config or the command line.
pub fn check_size(size: u32, servers: usize) -> Result<(), MaglevError> {
    if !(3..=MAX_TABLE_SIZE).contains(&size) {
        return Err(MaglevError::OutOfRange {
            size,
            max: MAX_TABLE_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(MaglevError::NotPrime(size));
    }
    if (size as usize) < servers {
        return Err(MaglevError::TooSmall { size, servers });
    }
    Ok(())
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = u64::from(n);
    (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn hash(keys: (u64, u64), id: &str) -> u64 {
    let mut h = SipHasher13::new_with_keys(keys.0, keys.1);
    h.write(id.as_bytes());
    h.finish()
}

/// Builds the lookup table: slot -> index into `members`, or [`NO_SERVER`].
///
/// Each member walks its own permutation of the slots (offset + j * skip mod M,
/// a full cycle because M is prime) and claims the next free slot when its turn
/// comes. Turns are weighted: every round a member earns its weight in credit
/// and spends `max weight` per slot, so over the fill it takes w / sum(w) of
/// the slots, give or take one round's worth.
pub fn build(members: &[Member<'_>], size: u32) -> Result<Vec<u32>, MaglevError> {
    build_seeded(members, size, 0)
}

/// As [`build`], the hashes keyed with `seed` too (`--maglev-seed`, as
/// Cilium's `maglev.hashSeed`): LB nodes behind one ECMP route need the same
/// seed to pick the same servers; another seed gives other tables, so that
/// one deployment's placement says nothing about another's. 0 gives the
/// tables of lbxdp's fixed keys.
pub fn build_seeded(members: &[Member<'_>], size: u32, seed: u64) -> Result<Vec<u32>, MaglevError> {
    check_size(size, members.len())?;
    let (offset_keys, skip_keys) = ((OFFSET_KEYS.0 ^ seed, OFFSET_KEYS.1), (SKIP_KEYS.0 ^ seed, SKIP_KEYS.1));
    let m = u64::from(size);
    let mut table = vec![NO_SERVER; size as usize];
    let live: Vec<usize> = (0..members.len()).filter(|&i| members[i].weight > 0).collect();
    let Some(max_weight) = live.iter().map(|&i| u64::from(members[i].weight)).max() else {
        return Ok(table);
    };
    let perm: Vec<(u64, u64)> = live
        .iter()
        .map(|&i| {
            let offset = hash(offset_keys, members[i].id) % m;
            let skip = hash(skip_keys, members[i].id) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; live.len()];
    let mut credit = vec![0u64; live.len()];
    let mut filled = 0u64;
    loop {
        for (k, &i) in live.iter().enumerate() {
            credit[k] += u64::from(members[i].weight);
            if credit[k] < max_weight {
                continue;
            }
            credit[k] -= max_weight;
            let (offset, skip) = perm[k];
            // The permutation visits every slot once per M steps, so a free one
            // is always found while the table is not full.
            loop {
                let slot = ((offset + next[k] * skip) % m) as usize;
                next[k] += 1;
                if table[slot] == NO_SERVER {
                    table[slot] = i as u32;
                    break;
                }
            }
            filled += 1;
            if filled == m {
                return Ok(table);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members<'a>(names: &'a [String], weights: &[u32]) -> Vec<Member<'a>> {
        names
            .iter()
            .zip(weights)
            .map(|(n, &w)| Member { id: n, weight: w })
            .collect()
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("web{i}")).collect()
    }

    fn shares(table: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &s in table {
            c[s as usize] += 1;
        }
        c
    }

    #[test]
    fn balance_is_within_one_percent_of_the_weights() {
        for weights in [
            vec![1, 1, 1],
            vec![1, 2, 3],
            vec![1, 100, 256, 7, 7],
            vec![3; 20],
            vec![256, 1],
        ] {
            let n = names(weights.len());
            let t = build(&members(&n, &weights), DEFAULT_TABLE_SIZE).unwrap();
            let total: u32 = weights.iter().sum();
            let mut worst = 0f64;
            for (i, got) in shares(&t, weights.len()).into_iter().enumerate() {
                let want = f64::from(DEFAULT_TABLE_SIZE) * f64::from(weights[i]) / f64::from(total);
                let err = (got as f64 - want).abs() / want;
                worst = worst.max(err);
                assert!(
                    err < 0.01,
                    "weights {weights:?}: server {i} has {got} slots, wants {want:.0} ({:.2}%)",
                    err * 100.0
                );
            }
            eprintln!("weights {weights:?}: worst share {:.3}% off its weight", worst * 100.0);
        }
    }

    #[test]
    fn weight_zero_gets_no_slot_and_all_zero_gives_an_empty_table() {
        let n = names(3);
        let t = build(&members(&n, &[1, 0, 1]), 251).unwrap();
        assert!(!t.contains(&1));
        assert!(!t.contains(&NO_SERVER));
        let t = build(&members(&n, &[0, 0, 0]), 251).unwrap();
        assert!(t.iter().all(|&s| s == NO_SERVER));
    }

    #[test]
    fn removing_one_of_n_moves_about_one_nth() {
        for n_servers in [3usize, 10, 50] {
            let n = names(n_servers);
            let before = build(&members(&n, &vec![1; n_servers]), DEFAULT_TABLE_SIZE).unwrap();
            // Take the middle server out (weight 0 keeps the indices comparable).
            let mut w = vec![1; n_servers];
            w[n_servers / 2] = 0;
            let after = build(&members(&n, &w), DEFAULT_TABLE_SIZE).unwrap();
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64;
            let must_move = before.iter().filter(|&&s| s as usize == n_servers / 2).count() as f64;
            let m = f64::from(DEFAULT_TABLE_SIZE);
            let extra = (moved - must_move) / m;
            eprintln!(
                "{n_servers} servers: moved {:.2}% (optimal {:.2}%, extra {:.2}%)",
                moved / m * 100.0,
                must_move / m * 100.0,
                extra * 100.0
            );
            // Maglev moves a little more than the removed server's slots; the
            // paper measures a few percent at most.
            assert!(
                extra <= 0.01,
                "{n_servers} servers: {:.2}% moved beyond the optimum",
                extra * 100.0
            );
            assert!(
                moved / m <= 1.0 / n_servers as f64 + 0.02,
                "{n_servers} servers: {:.2}% moved",
                moved / m * 100.0
            );
        }
    }

    #[test]
    fn same_input_same_table_everywhere() {
        let n = names(3);
        let t = build(&members(&n, &[1, 2, 3]), 251).unwrap();
        let again = build(&members(&n, &[1, 2, 3]), 251).unwrap();
        assert_eq!(t, again);
        // A golden fingerprint: fails if the hash keys, the hash or the fill
        // order change, any of which would split a cluster of LBs mid-upgrade.
        let mut h = SipHasher13::new_with_keys(0, 0);
        for s in &t {
            h.write_u32(*s);
        }
        assert_eq!(&t[..12], &GOLDEN_PREFIX, "table prefix changed");
        assert_eq!(h.finish(), GOLDEN_HASH, "table fingerprint changed");
    }
    #[test]
    fn a_seed_gives_other_tables_and_the_same_one_everywhere() {
        let n = names(5);
        let m = members(&n, &[1, 1, 2, 1, 3]);
        assert_eq!(build_seeded(&m, 251, 0).unwrap(), build(&m, 251).unwrap());
        let a = build_seeded(&m, 251, 0xfeed).unwrap();
        assert_eq!(a, build_seeded(&m, 251, 0xfeed).unwrap());
        assert_ne!(a, build(&m, 251).unwrap());
        // The weights hold whatever the seed.
        let total: usize = shares(&a, 5).iter().sum();
        assert_eq!(total, 251);
        assert!(shares(&a, 5)[4] > shares(&a, 5)[0] * 2, "{:?}", shares(&a, 5));
    }

    const GOLDEN_PREFIX: [u32; 12] = [1, 2, 0, 0, 2, 2, 2, 1, 1, 1, 1, 1];
    const GOLDEN_HASH: u64 = 2047472952343259928;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(check_size(65536, 3), Err(MaglevError::NotPrime(65536)));
        assert!(matches!(check_size(2, 0), Err(MaglevError::OutOfRange { .. })));
        assert!(matches!(check_size(3, 5), Err(MaglevError::TooSmall { .. })));
        assert_eq!(check_size(DEFAULT_TABLE_SIZE, 3), Ok(()));
    }
}

//! Server selection: HAProxy's `balance` algorithms, pure.
//!
//! The caller ([`super::backend`]) decides which servers are candidates
//! (usable, active or backup, not full) and passes them in; these functions
//! only choose among them, so every algorithm is tested here without sockets.
//! A candidate is identified by `idx`, its position in the backend's server
//! list (the config order, which is HAProxy's server id order).
use std::{hash::Hasher, net::IpAddr};

use siphasher::sip::SipHasher13;

use crate::maglev::{self, Member};

/// One server that may take the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index of the server in its backend.
    pub idx: usize,
    /// Effective weight now (dynamic for roundrobin, leastconn, first, random;
    /// the config's for static-rr). Weight 0 takes no new connections.
    pub weight: u32,
    /// Connections the server holds now (established or connecting).
    pub cur: u32,
}

/// HAProxy's dynamic weighted round robin, as a smooth weighted round robin:
/// every pick adds each candidate's weight to its credit, the candidate with
/// the most credit wins and pays the total. Over `sum(w)` picks each server is
/// chosen exactly `w` times, interleaved (weights 5,1,1 give a a b a c a a, not
/// a a a a a b c) as HAProxy's does, and a weight change counts from the next
/// pick on. Used for `roundrobin` (live weights) and `static-rr` (config weights).
#[derive(Debug, Clone, Default)]
pub struct SmoothRr {
    credit: Vec<i64>,
}

impl SmoothRr {
    pub fn pick(&mut self, cands: &[Candidate]) -> Option<usize> {
        let max_idx = cands.iter().map(|c| c.idx).max()?;
        if self.credit.len() <= max_idx {
            self.credit.resize(max_idx + 1, 0);
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for c in cands.iter().filter(|c| c.weight > 0) {
            let w = i64::from(c.weight);
            total += w;
            self.credit[c.idx] += w;
            // Strictly greater: on a tie the lower index (config order) wins, as
            // HAProxy's tree does for servers of equal position.
            if best.is_none_or(|b| self.credit[c.idx] > self.credit[b]) {
                best = Some(c.idx);
            }
        }
        let b = best?;
        self.credit[b] -= total;
        Some(b)
    }
}

/// `leastconn`: the server with the fewest connections per unit of weight;
/// among equally loaded ones, round robin (HAProxy rotates within a load level).
#[derive(Debug, Clone, Default)]
pub struct LeastConn {
    next: usize,
}

impl LeastConn {
    pub fn pick(&mut self, cands: &[Candidate]) -> Option<usize> {
        let live: Vec<&Candidate> = cands.iter().filter(|c| c.weight > 0).collect();
        // (cur + 1) / weight, compared by cross-multiplying to stay in integers:
        // the "+1" is the connection being placed, as in HAProxy's key.
        let load_lt = |a: &Candidate, b: &Candidate| {
            u64::from(a.cur + 1) * u64::from(b.weight) < u64::from(b.cur + 1) * u64::from(a.weight)
        };
        let min = live.iter().copied().reduce(|m, c| if load_lt(c, m) { c } else { m })?;
        let ties: Vec<usize> = live
            .iter()
            .filter(|c| !load_lt(min, c) && !load_lt(c, min))
            .map(|c| c.idx)
            .collect();
        // Rotate among the ties: the first at or after the cursor.
        let chosen = ties.iter().copied().find(|&i| i >= self.next).unwrap_or(ties[0]);
        self.next = chosen + 1;
        Some(chosen)
    }
}

/// `first`: the lowest server (config order) with a free slot. The caller
/// leaves full servers out, so this is the first candidate of weight > 0.
pub fn first(cands: &[Candidate]) -> Option<usize> {
    cands.iter().filter(|c| c.weight > 0).map(|c| c.idx).min()
}

/// The hash of a client address for `balance source`. Fixed keys: every LB
/// node (and every restart) sends a client to the same server.
pub fn source_hash(ip: IpAddr) -> u64 {
    let mut h = SipHasher13::new_with_keys(0x6c62_7864_702d_7372, 0x632d_6861_7368_2121);
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        // A v4-mapped v6 client is the same client as its v4 form.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => h.write(&v4.octets()),
            None => h.write(&v6.octets()),
        },
    }
    h.finish()
}

/// `hash-type map-based`: HAProxy's weighted map, `hash % total weight`. Any
/// change of the candidates remaps most clients, which is what map-based does.
pub fn map_based(cands: &[Candidate], hash: u64) -> Option<usize> {
    let total: u64 = cands.iter().map(|c| u64::from(c.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut point = hash % total;
    for c in cands {
        let w = u64::from(c.weight);
        if point < w {
            return Some(c.idx);
        }
        point -= w;
    }
    None
}

/// `hash-type consistent`: the datapath's weighted Maglev table over the
/// candidates, keyed by server name, so a server going down moves only its
/// own clients. Rebuilt only when the candidates or their weights change.
#[derive(Debug, Clone, Default)]
pub struct Consistent {
    key: Vec<(usize, u32)>,
    table: Vec<u32>,
}

impl Consistent {
    /// `names[idx]` is the name of server `idx`.
    pub fn pick(&mut self, names: &[String], cands: &[Candidate], hash: u64) -> Option<usize> {
        let key: Vec<(usize, u32)> = cands.iter().map(|c| (c.idx, c.weight)).collect();
        if key != self.key || self.table.is_empty() {
            let members: Vec<Member<'_>> = cands
                .iter()
                .map(|c| Member {
                    id: names.get(c.idx).map_or("", String::as_str),
                    weight: c.weight,
                })
                .collect();
            // A backend with more servers than the default table has slots gets
            // the largest table; either failing leaves map-based as the answer.
            self.table = maglev::build(&members, maglev::DEFAULT_TABLE_SIZE)
                .or_else(|_| maglev::build(&members, maglev::MAX_TABLE_SIZE))
                .unwrap_or_default();
            self.key = key;
        }
        if self.table.is_empty() {
            return map_based(cands, hash);
        }
        let slot = self.table[(hash % self.table.len() as u64) as usize];
        if slot == maglev::NO_SERVER {
            return None;
        }
        cands.get(slot as usize).map(|c| c.idx)
    }
}

/// A small, fast, non-cryptographic generator (SplitMix64): `random` only
/// needs spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// `random(draws)`: draw `draws` servers at random, weighted, and keep the
/// least loaded of them (HAProxy's "power of two choices" with the default 2).
pub fn random(cands: &[Candidate], draws: u32, rng: &mut Rng) -> Option<usize> {
    let mut best: Option<&Candidate> = None;
    for _ in 0..draws.max(1) {
        let idx = map_based(cands, rng.next_u64())?;
        let c = cands.iter().find(|c| c.idx == idx)?;
        let less_loaded =
            |b: &Candidate| u64::from(c.cur) * u64::from(b.weight) < u64::from(b.cur) * u64::from(c.weight);
        if best.is_none_or(less_loaded) {
            best = Some(c);
        }
    }
    best.map(|c| c.idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(idx, &weight)| Candidate { idx, weight, cur: 0 })
            .collect()
    }

    fn counts(picks: &[usize], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &p in picks {
            c[p] += 1;
        }
        c
    }

    #[test]
    fn smooth_rr_is_exact_per_cycle_and_interleaved() {
        let mut rr = SmoothRr::default();
        let c = cands(&[5, 1, 1]);
        let picks: Vec<usize> = (0..7).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
        let many: Vec<usize> = (0..700).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(counts(&many, 3), vec![500, 100, 100]);
    }

    #[test]
    fn smooth_rr_equal_weights_rotate() {
        let mut rr = SmoothRr::default();
        let c = cands(&[1, 1, 1]);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn smooth_rr_weight_change_applies_at_once() {
        let mut rr = SmoothRr::default();
        let mut c = cands(&[1, 1]);
        for _ in 0..10 {
            rr.pick(&c);
        }
        c[1].weight = 3;
        let picks: Vec<usize> = (0..400).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(counts(&picks, 2), vec![100, 300]);
        c[0].weight = 0;
        assert!((0..10).all(|_| rr.pick(&c) == Some(1)));
    }

    #[test]
    fn smooth_rr_skips_missing_and_empty() {
        let mut rr = SmoothRr::default();
        assert_eq!(rr.pick(&[]), None);
        assert_eq!(rr.pick(&cands(&[0, 0])), None);
        let c = vec![
            Candidate {
                idx: 4,
                weight: 1,
                cur: 0,
            },
            Candidate {
                idx: 7,
                weight: 1,
                cur: 0,
            },
        ];
        let picks: Vec<usize> = (0..4).map(|_| rr.pick(&c).unwrap()).collect();
        assert_eq!(picks, vec![4, 7, 4, 7]);
    }

    #[test]
    fn leastconn_prefers_lowest_load_per_weight_and_rotates_ties() {
        let mut lc = LeastConn::default();
        let mut c = cands(&[1, 1, 1]);
        c[0].cur = 3;
        c[1].cur = 1;
        c[2].cur = 2;
        assert_eq!(lc.pick(&c), Some(1));
        let mut lc = LeastConn::default();
        let c = cands(&[1, 1, 1]);
        let picks: Vec<usize> = (0..6).map(|_| lc.pick(&c).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        // Weight 2 with 3 connections ((3+1)/2 = 2) beats weight 1 with 2 ((2+1)/1 = 3).
        let mut c = cands(&[2, 1]);
        c[0].cur = 3;
        c[1].cur = 2;
        assert_eq!(lc.pick(&c), Some(0));
        assert_eq!(lc.pick(&cands(&[0])), None);
    }

    #[test]
    fn first_takes_lowest_index() {
        let c = vec![
            Candidate {
                idx: 3,
                weight: 1,
                cur: 9,
            },
            Candidate {
                idx: 1,
                weight: 0,
                cur: 0,
            },
            Candidate {
                idx: 2,
                weight: 1,
                cur: 5,
            },
        ];
        assert_eq!(first(&c), Some(2));
        assert_eq!(first(&[]), None);
    }

    #[test]
    fn source_hash_is_stable_and_maps_v4_mapped() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(source_hash(a), source_hash(b));
        assert_ne!(source_hash(a), source_hash("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn map_based_follows_weights() {
        let c = cands(&[1, 3]);
        let picks: Vec<usize> = (0..4000u64).map(|h| map_based(&c, h).unwrap()).collect();
        assert_eq!(counts(&picks, 2), vec![1000, 3000]);
        assert_eq!(map_based(&cands(&[0, 0]), 5), None);
    }

    #[test]
    fn consistent_moves_only_the_lost_servers_clients() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let mut ch = Consistent::default();
        let all = cands(&[1, 1, 1, 1]);
        let mut rng = Rng::new(7);
        let hashes: Vec<u64> = (0..4000).map(|_| rng.next_u64()).collect();
        let before: Vec<usize> = hashes.iter().map(|&h| ch.pick(&names, &all, h).unwrap()).collect();
        let without_c: Vec<Candidate> = all.iter().copied().filter(|c| c.idx != 2).collect();
        let after: Vec<usize> = hashes
            .iter()
            .map(|&h| ch.pick(&names, &without_c, h).unwrap())
            .collect();
        // Maglev is near-minimal: all of c's clients move, and only a sliver
        // of the others (a few table slots change hands).
        let mut moved_live = 0;
        for (b, a) in before.iter().zip(&after) {
            assert_ne!(*a, 2);
            if *b != 2 && a != b {
                moved_live += 1;
            }
        }
        assert!(
            moved_live < hashes.len() / 50,
            "{moved_live} clients of live servers moved"
        );
        // Same table as the datapath's for the same members.
        let members: Vec<Member<'_>> = names.iter().map(|n| Member { id: n, weight: 1 }).collect();
        let table = maglev::build(&members, maglev::DEFAULT_TABLE_SIZE).unwrap();
        let h = 123_456_789u64;
        assert_eq!(
            ch.pick(&names, &all, h),
            Some(table[(h % u64::from(maglev::DEFAULT_TABLE_SIZE)) as usize] as usize)
        );
    }

    #[test]
    fn random_spreads_by_weight_and_prefers_less_loaded() {
        let mut rng = Rng::new(42);
        let c = cands(&[1, 1, 2]);
        let picks: Vec<usize> = (0..8000).map(|_| random(&c, 1, &mut rng).unwrap()).collect();
        let n = counts(&picks, 3);
        assert!(n[2] > 3600 && n[2] < 4400, "{n:?}");
        assert!(n[0] > 1700 && n[0] < 2300, "{n:?}");
        // Two draws: a loaded server loses to an idle one whenever both are drawn.
        let mut c = cands(&[1, 1]);
        c[0].cur = 100;
        let picks: Vec<usize> = (0..1000).map(|_| random(&c, 2, &mut rng).unwrap()).collect();
        assert!(counts(&picks, 2)[1] > 650);
        assert_eq!(random(&[], 2, &mut rng), None);
    }
}

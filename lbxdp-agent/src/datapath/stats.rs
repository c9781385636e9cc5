use std::collections::BTreeMap;

use lbxdp_common::{Proto, ProtoStats};
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The first-stage program's counters, summed over CPUs, keyed by protocol name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ProtoCounters(pub BTreeMap<&'static str, Counter>);

impl ProtoCounters {
    /// `per_cpu(index)` yields one slot's value on every CPU.
    pub fn read<E>(mut per_cpu: impl FnMut(u32) -> Result<Vec<ProtoStats>, E>) -> Result<Self, E> {
        let mut out = BTreeMap::new();
        for proto in Proto::ALL {
            let sum = per_cpu(proto as u32)?
                .iter()
                .fold(Counter::default(), |acc, s| Counter {
                    packets: acc.packets + s.packets,
                    bytes: acc.bytes + s.bytes,
                });
            out.insert(proto.name(), sum);
        }
        Ok(Self(out))
    }

    pub fn get(&self, proto: Proto) -> Counter {
        self.0.get(proto.name()).copied().unwrap_or_default()
    }

    /// One line for the log: the protocols that saw packets.
    pub fn summary(&self) -> String {
        let seen: Vec<String> = self
            .0
            .iter()
            .filter(|(_, c)| c.packets > 0)
            .map(|(n, c)| format!("{n}={}", c.packets))
            .collect();
        if seen.is_empty() {
            "no packets yet".into()
        } else {
            seen.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_cpu_and_names_every_protocol() {
        let c = ProtoCounters::read(|idx| {
            Ok::<_, ()>(vec![
                ProtoStats {
                    packets: idx as u64,
                    bytes: 10,
                },
                ProtoStats { packets: 1, bytes: 5 },
            ])
        })
        .unwrap();
        assert_eq!(c.0.len(), Proto::COUNT as usize);
        assert_eq!(
            c.get(Proto::Tcp),
            Counter {
                packets: Proto::Tcp as u64 + 1,
                bytes: 15
            }
        );
        assert_eq!(c.get(Proto::Ipv4), Counter { packets: 1, bytes: 15 });
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["tcp"]["packets"], Proto::Tcp as u64 + 1);
    }

    #[test]
    fn summary_lists_only_what_was_seen() {
        let c = ProtoCounters::read(|idx| {
            Ok::<_, ()>(vec![ProtoStats {
                packets: u64::from(idx == Proto::Icmp as u32) * 3,
                bytes: 0,
            }])
        })
        .unwrap();
        assert_eq!(c.summary(), "icmp=3");
    }
}

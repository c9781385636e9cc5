//! HAProxy's pattern references (`struct pat_ref`): what the runtime API's
//! `show acl`, `add acl`, `del acl` and `clear acl` name by `#<id>` or by
//! file. HAProxy makes one per `acl` expression (its inline patterns, even
//! none) and one per pattern file (shared by every expression that names
//! it, created first), and numbers them in that order once the whole
//! configuration is read, around the ids `-u` gives (pattern.c:
//! `pattern_finalize_config`).
use std::net::{IpAddr, Ipv4Addr};

use super::{
    addr::{parse_masked_v4, parse_net},
    diag::Origin,
};

/// One pattern of a reference, as written and as lbxdp matches it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What `show acl` prints before the pattern: HAProxy prints the
    /// entry's address; lbxdp a number unique in the process, which
    /// `del acl <acl> #<ref>` takes the same way.
    pub id: u64,
    pub text: String,
    /// For an address reference: the network (None for the others).
    pub net: Option<Net>,
}

/// The same pattern, whatever number it was given: two readings of one
/// configuration are equal.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.net == other.net
    }
}

impl Eq for Entry {}

/// An address pattern: a prefix, or an IPv4 network with a mask that
/// isn't one (HAProxy matches those bit by bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Prefix(IpAddr, u8),
    Mask(Ipv4Addr, Ipv4Addr),
}

impl Net {
    /// An address or network as the runtime API's `add acl` takes it: no
    /// host names (HAProxy resolves those only while parsing the config).
    pub fn parse(text: &str) -> Option<Net> {
        parse_net(text)
            .map(|(ip, len)| Net::Prefix(ip, len))
            .or_else(|| parse_masked_v4(text).map(|(n, m)| Net::Mask(n, m)))
    }
}

/// An `acl` expression a reference feeds: the proxy, the index of the ACL
/// in its `acls`, the index of the expression in the ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExprAt {
    pub proxy: String,
    pub acl: usize,
    pub expr: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatRef {
    /// `#<id>`.
    pub id: i64,
    /// The pattern file, for a reference loaded from one.
    pub file: Option<String>,
    /// The fetch keyword (inline references) for HAProxy's description.
    kw: String,
    /// Where the expressions that use it were written, for the description.
    pub origins: Vec<Origin>,
    /// Whether its patterns are addresses (`src`, `dst`): the only ones
    /// lbxdp changes at run time.
    pub addresses: bool,
    pub entries: Vec<Entry>,
    /// The expressions that match against it.
    pub feeds: Vec<ExprAt>,
}

impl PatRef {
    /// An expression's inline patterns (`-u` gives the id, else -1 until
    /// [`number`] gives one).
    pub fn inline(id: i64, kw: &str, at: &Origin, addresses: bool) -> PatRef {
        PatRef {
            id,
            file: None,
            kw: kw.to_string(),
            origins: vec![at.clone()],
            addresses,
            entries: Vec::new(),
            feeds: Vec::new(),
        }
    }

    /// A pattern file's.
    pub fn file(path: &str, at: &Origin, addresses: bool) -> PatRef {
        PatRef {
            file: Some(path.to_string()),
            ..PatRef::inline(-1, "", at, addresses)
        }
    }

    /// HAProxy's `display`: how `show acl` describes it.
    pub fn description(&self) -> String {
        match &self.file {
            Some(path) => {
                let users: Vec<String> = self
                    .origins
                    .iter()
                    .map(|o| format!("by acl at file '{}' line {}", o.file, o.line))
                    .collect();
                format!("pattern loaded from file '{path}' used {}.", users.join(", "))
            }
            None => {
                let (file, line) = self.origins.first().map_or(("", 0), |o| (o.file.as_str(), o.line));
                format!("acl '{}' file '{file}' line {line}.", self.kw)
            }
        }
    }

    /// `show acl`'s line for it (versions are always 0: lbxdp has no
    /// `prepare acl`/`commit acl`).
    pub fn list_line(&self) -> String {
        format!(
            "{} ({}) {} curr_ver=0 next_ver=0 entry_cnt={}\n",
            self.id,
            self.file.as_deref().unwrap_or(""),
            self.description(),
            self.entries.len()
        )
    }

    /// `show acl <acl>`: one line per entry, in the order they came.
    pub fn entry_lines(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{:#x} {}\n", e.id, e.text))
            .collect()
    }
}

/// Gives every reference without a `-u` id the lowest free one, in the
/// order they were made, then sorts them by id, as HAProxy does.
pub fn number(refs: &mut [PatRef]) {
    let taken: std::collections::HashSet<i64> = refs.iter().map(|r| r.id).filter(|id| *id != -1).collect();
    let mut next = 0;
    for r in refs.iter_mut().filter(|r| r.id == -1) {
        while taken.contains(&next) {
            next += 1;
        }
        r.id = next;
        next += 1;
    }
    refs.sort_by_key(|r| r.id);
}

/// The entries' ids: unique in the process, counted from a base that
/// looks like the addresses HAProxy prints.
pub fn next_entry_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0x5500_0000_1000);
    NEXT.fetch_add(0x50, Ordering::Relaxed)
}

/// IPv4 networks with masks that aren't prefixes (network, mask).
pub type Masks = Vec<(Ipv4Addr, Ipv4Addr)>;

/// The networks of `refs` (addresses only) that feed the expression `at`,
/// as [`super::acl::Nets::replace`] takes them.
pub fn nets_of(refs: &[PatRef], at: &ExprAt) -> (Vec<(IpAddr, u8)>, Masks) {
    let mut list = Vec::new();
    let mut masks = Vec::new();
    for e in refs.iter().filter(|r| r.feeds.contains(at)).flat_map(|r| &r.entries) {
        match e.net {
            Some(Net::Prefix(ip, len)) => list.push((ip, len)),
            Some(Net::Mask(n, m)) => masks.push((n, m)),
            None => {}
        }
    }
    (list, masks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_in_order_around_given_ids_and_described_as_haproxy_does() {
        let at = |l| Origin::new("h.cfg", l);
        let mut file = PatRef::file("/tmp/block.lst", &at(10), true);
        file.origins.push(at(19));
        let mut refs = vec![
            file,
            PatRef::inline(-1, "src", &at(10), true),
            PatRef::inline(1, "dst_port", &at(12), false),
            PatRef::inline(-1, "src", &at(14), true),
        ];
        number(&mut refs);
        let ids: Vec<i64> = refs.iter().map(|r| r.id).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(refs[1].kw, "dst_port");
        assert_eq!(refs[2].origins[0].line, 10);
        assert_eq!(
            refs[0].list_line(),
            "0 (/tmp/block.lst) pattern loaded from file '/tmp/block.lst' used by acl at file 'h.cfg' line 10, \
             by acl at file 'h.cfg' line 19. curr_ver=0 next_ver=0 entry_cnt=0\n"
        );
        assert_eq!(
            refs[3].list_line(),
            "3 () acl 'src' file 'h.cfg' line 14. curr_ver=0 next_ver=0 entry_cnt=0\n"
        );
        refs[3].entries.push(Entry {
            id: 0x10,
            text: "10.0.0.0/8".into(),
            net: Net::parse("10.0.0.0/8"),
        });
        assert_eq!(refs[3].entry_lines(), "0x10 10.0.0.0/8\n");
    }

    #[test]
    fn runtime_patterns_are_addresses_and_networks_only() {
        assert_eq!(
            Net::parse("192.0.2.1"),
            Some(Net::Prefix("192.0.2.1".parse().unwrap(), 32))
        );
        assert_eq!(
            Net::parse("10.0.0.0/255.0.255.0"),
            Some(Net::Mask("10.0.0.0".parse().unwrap(), "255.0.255.0".parse().unwrap()))
        );
        assert_eq!(
            Net::parse("2001:db8::/32"),
            Some(Net::Prefix("2001:db8::".parse().unwrap(), 32))
        );
        for bad in ["bad", "300.1.1.1", "1.2.3.4/33", "localhost"] {
            assert_eq!(Net::parse(bad), None, "{bad}");
        }
    }
}

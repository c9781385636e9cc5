//! `show acl`, `add acl`, `del acl`, `clear acl` as HAProxy 2.6's runtime
//! API reads and answers them (src/map.c: `cli_parse_show_map`,
//! `cli_parse_add_map`, `cli_parse_del_map`, `cli_parse_clear_map`), over
//! the configuration's pattern references. Pure: the agent loop applies the
//! change to the shared address sets and the engine.
use crate::config::patref::{Entry, ExprAt, Net, PatRef, next_entry_id};

/// What the client asked, its arguments as typed (`<acl>` checked by the loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRequest {
    /// `show acl`: the list.
    List,
    /// `show acl <acl>`.
    Show(String),
    /// `add acl <acl> <pattern>`.
    Add(String, String),
    /// `del acl <acl> <key>|#<ref>`.
    Del(String, String),
    /// `clear acl <acl>`.
    Clear(String),
}

const UNKNOWN: &str = "Unknown ACL identifier. Please use #<id> or <file>.\n";

/// HAProxy's `cli_parse_*_map` argument checks, which come before it looks
/// the ACL up: Err is the answer. `args` follows `<verb> acl`.
pub fn parse(verb: &str, args: &[&str]) -> Result<AclRequest, String> {
    let arg = |i: usize| args.get(i).copied().unwrap_or("");
    // Versions (`prepare acl` / `commit acl`) are a transaction lbxdp
    // doesn't keep: refused, not read as an ACL named `@1`.
    if arg(0).starts_with('@') {
        return Err(format!(
            "lbxdp has no ACL versions ('prepare acl', 'commit acl'): '{verb} acl {}' is not supported.\n",
            arg(0)
        ));
    }
    match verb {
        "show" if arg(0).is_empty() => Ok(AclRequest::List),
        "show" => Ok(AclRequest::Show(arg(0).into())),
        "add" if arg(1).is_empty() => Err("'add acl' expects two parameters: ACL identifier and pattern.\n".into()),
        "add" => Ok(AclRequest::Add(arg(0).into(), arg(1).into())),
        "del" if arg(1).is_empty() => Err("This command expects two parameters: ACL identifier and key.\n".into()),
        "del" => Ok(AclRequest::Del(arg(0).into(), arg(1).into())),
        _ if arg(0).is_empty() => Err("Missing ACL identifier.\n".into()),
        _ => Ok(AclRequest::Clear(arg(0).into())),
    }
}

/// `#<id>` or a pattern file's name, as `pat_ref_lookup_ref()` finds it.
fn lookup<'a>(refs: &'a mut [PatRef], name: &str) -> Option<&'a mut PatRef> {
    match name.strip_prefix('#') {
        Some(id) => {
            let id: i64 = id.parse().ok()?;
            refs.iter_mut().find(|r| r.id == id)
        }
        None => refs.iter_mut().find(|r| r.file.as_deref() == Some(name)),
    }
}

/// What a command did: its answer, and the expressions whose address
/// lists changed (the loop updates them and the engine).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub answer: String,
    pub changed: Vec<ExprAt>,
}

/// Runs `req` on the references. `masks`: whether the engine takes IPv4
/// masks that aren't prefixes. Err is the answer, nothing changed.
pub fn execute(refs: &mut [PatRef], req: &AclRequest, masks: bool) -> Result<Outcome, String> {
    let (name, changed) = match req {
        AclRequest::List => {
            let mut out = String::from("# id (file) description\n");
            out.extend(refs.iter().map(PatRef::list_line));
            return Ok(Outcome {
                answer: out,
                changed: Vec::new(),
            });
        }
        AclRequest::Show(name) => {
            let r = lookup(refs, name).ok_or(UNKNOWN)?;
            return Ok(Outcome {
                answer: r.entry_lines(),
                changed: Vec::new(),
            });
        }
        AclRequest::Add(name, pattern) => {
            let r = lookup(refs, name).ok_or(UNKNOWN)?;
            add(r, pattern, masks)?;
            (name, true)
        }
        AclRequest::Del(name, key) => {
            // HAProxy's own slip: this one says "map".
            let r = lookup(refs, name).ok_or("Unknown map identifier. Please use #<id> or <file>.\n")?;
            addresses_only(r)?;
            let before = r.entries.len();
            // `#<ref>` names one entry by what `show acl` printed; else
            // every entry written as `key` goes, as HAProxy compares text.
            let id = key.strip_prefix("#0x").and_then(|h| u64::from_str_radix(h, 16).ok());
            r.entries.retain(|e| match id {
                Some(id) => e.id != id,
                None => e.text != *key,
            });
            if r.entries.len() == before {
                return Err("Key not found.\n".into());
            }
            (name, true)
        }
        AclRequest::Clear(name) => {
            let r = lookup(refs, name).ok_or(UNKNOWN)?;
            addresses_only(r)?;
            let had = !r.entries.is_empty();
            r.entries.clear();
            (name, had)
        }
    };
    let changed = match lookup(refs, name) {
        Some(r) if changed && r.addresses => r.feeds.clone(),
        _ => Vec::new(),
    };
    Ok(Outcome {
        answer: String::new(),
        changed,
    })
}

/// HAProxy changes any reference; lbxdp's matchers for the others (ports,
/// counters) are fixed when the configuration is read, so a change to one
/// is refused rather than shown by `show acl` and not applied.
fn addresses_only(r: &PatRef) -> Result<(), String> {
    if r.addresses {
        return Ok(());
    }
    Err(format!(
        "lbxdp changes only address ACLs (src, dst) at run time; #{} is {} \
         Change the configuration and reload instead.\n",
        r.id,
        r.description()
    ))
}

/// `add acl`: an address or network, appended (a duplicate too, as in HAProxy).
fn add(r: &mut PatRef, pattern: &str, masks: bool) -> Result<(), String> {
    addresses_only(r)?;
    let net = Net::parse(pattern).ok_or_else(|| format!("'{pattern}' is not a valid IPv4 or IPv6 address.\n"))?;
    if let Net::Mask(n, m) = net
        && !masks
    {
        return Err(format!(
            "'{n}/{m}': a netmask that isn't a prefix can't be added in XDP mode (XDP looks addresses up by \
             longest prefix).\n"
        ));
    }
    r.entries.push(Entry {
        id: next_entry_id(),
        text: pattern.to_string(),
        net: Some(net),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn refs() -> Vec<PatRef> {
        let at = |l| Origin::new("h.cfg", l);
        let mut file = PatRef::file("/tmp/block.lst", &at(10), true);
        file.id = 0;
        let feed = ExprAt {
            proxy: "fe".into(),
            acl: 0,
            expr: 0,
        };
        file.feeds.push(feed.clone());
        let mut inline = PatRef::inline(1, "src", &at(10), true);
        inline.feeds.push(feed);
        let ports = PatRef::inline(2, "dst_port", &at(12), false);
        vec![file, inline, ports]
    }

    fn run(refs: &mut [PatRef], verb: &str, args: &[&str]) -> Result<Outcome, String> {
        execute(refs, &parse(verb, args)?, true)
    }

    #[test]
    fn arguments_are_checked_with_haproxy_s_words() {
        assert_eq!(parse("show", &[]), Ok(AclRequest::List));
        assert_eq!(
            parse("add", &["#0"]),
            Err("'add acl' expects two parameters: ACL identifier and pattern.\n".into())
        );
        assert_eq!(
            parse("del", &[]),
            Err("This command expects two parameters: ACL identifier and key.\n".into())
        );
        assert_eq!(parse("clear", &[]), Err("Missing ACL identifier.\n".into()));
        assert!(parse("show", &["@1", "#0"]).is_err_and(|e| e.contains("no ACL versions")));
    }

    #[test]
    fn add_show_del_clear_as_haproxy_answers() {
        let mut r = refs();
        let unknown = Err(UNKNOWN.to_string());
        assert_eq!(run(&mut r, "show", &["#9"]), unknown);
        assert_eq!(run(&mut r, "show", &["#x"]), unknown);
        assert_eq!(run(&mut r, "add", &["nofile", "1.1.1.1"]), unknown);
        assert_eq!(
            run(&mut r, "del", &["nofile", "1.1.1.1"]),
            Err("Unknown map identifier. Please use #<id> or <file>.\n".into())
        );
        assert_eq!(
            run(&mut r, "add", &["#0", "bad"]),
            Err("'bad' is not a valid IPv4 or IPv6 address.\n".into())
        );
        let added = run(&mut r, "add", &["/tmp/block.lst", "192.0.2.1"]);
        assert_eq!(added.map(|o| o.changed.len()), Ok(1));
        run(&mut r, "add", &["#0", "192.0.2.1"]).ok();
        run(&mut r, "add", &["#0", "10.0.0.0/8"]).ok();
        let shown = run(&mut r, "show", &["#0"]).map(|o| o.answer).unwrap_or_default();
        let texts: Vec<&str> = shown.lines().filter_map(|l| l.split_once(' ').map(|x| x.1)).collect();
        assert_eq!(texts, ["192.0.2.1", "192.0.2.1", "10.0.0.0/8"]);
        assert!(shown.starts_with("0x"));
        assert!(run(&mut r, "show", &[]).is_ok_and(|o| {
            o.answer
                .starts_with("# id (file) description\n0 (/tmp/block.lst) pattern loaded")
        }));
        // Every entry written so goes; an absent one is HAProxy's error.
        assert!(run(&mut r, "del", &["#0", "192.0.2.1"]).is_ok());
        assert_eq!(run(&mut r, "del", &["#0", "192.0.2.1"]), Err("Key not found.\n".into()));
        // By the number `show acl` printed.
        let id = shown
            .lines()
            .nth(2)
            .and_then(|l| l.split_once(' '))
            .map(|x| x.0)
            .unwrap_or("");
        assert!(run(&mut r, "del", &["#0", &format!("#{id}")]).is_ok());
        assert_eq!(r[0].entries.len(), 0);
        run(&mut r, "add", &["#0", "10.0.0.0/8"]).ok();
        assert!(run(&mut r, "clear", &["#0"]).is_ok_and(|o| o.changed.len() == 1));
        assert_eq!(r[0].entries.len(), 0);
        // Not addresses: refused, never silently taken.
        for (verb, args) in [("add", &["#2", "80"][..]), ("del", &["#2", "80"]), ("clear", &["#2"])] {
            assert!(
                run(&mut r, verb, args).is_err_and(|e| e.contains("only address ACLs")),
                "{verb}"
            );
        }
        // Masks that aren't prefixes: as the engine can.
        let req = parse("add", &["#1", "10.0.0.0/255.0.255.0"]).unwrap_or(AclRequest::List);
        assert!(execute(&mut r, &req, false).is_err_and(|e| e.contains("XDP")));
        assert!(execute(&mut r, &req, true).is_ok());
    }
}

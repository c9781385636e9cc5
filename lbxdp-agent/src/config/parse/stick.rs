//! `stick-table` lines, checked as HAProxy 2.6 checks them. lbxdp has no
//! stick tables yet: a well-formed one is refused at run time (see `proxies`).
use super::{Draft, Parser, arg};
use crate::config::diag::Origin;

/// The data a `stick-table ... store` line may keep, rate counters with a period.
const STORE_OPTIONS: &[&str] = &[
    "server_id",
    "gpc",
    "gpc_rate",
    "gpc0",
    "gpc0_rate",
    "gpc1",
    "gpc1_rate",
    "gpt",
    "gpt0",
    "conn_cnt",
    "conn_cur",
    "conn_rate",
    "sess_cnt",
    "sess_rate",
    "http_req_cnt",
    "http_req_rate",
    "http_err_cnt",
    "http_err_rate",
    "http_fail_cnt",
    "http_fail_rate",
    "bytes_in_cnt",
    "bytes_in_rate",
    "bytes_out_cnt",
    "bytes_out_rate",
];

/// `size 100k`: digits and an optional k, m or g.
fn size_ok(v: &str) -> Option<char> {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    match digits.chars().find(|c| !c.is_ascii_digit()) {
        Some(c) => Some(c),
        None if digits.is_empty() => Some(v.chars().next().unwrap_or(' ')),
        None => (digits.len() + 1 < v.len()).then(|| v.chars().last().unwrap_or(' ')),
    }
}

impl Parser<'_> {
    /// `stick-table type T size N [expire E] [store ...] ...`, checked as
    /// HAProxy checks it. True: it is well formed (lbxdp refuses to run it).
    pub(super) fn stick_table(&mut self, p: &mut Draft, w: &[String], at: &Origin) -> bool {
        if let Some(prev) = &p.stick_table {
            let msg = format!(
                "stick-table name '{}' conflicts with table declared in {} '{}' at {prev}.",
                p.name,
                p.kind.word(),
                p.name
            );
            self.diags.alert(at, msg);
            return false;
        }
        let (mut ty, mut size) = (false, false);
        let mut i = 1;
        let fail = |me: &mut Self, msg: String| {
            me.diags.alert(at, format!("stick-table: {msg}"));
            false
        };
        while i < w.len() {
            let (k, v) = (w[i].as_str(), arg(w, i + 1));
            i += 2;
            match k {
                "" => {}
                "type" => {
                    if !matches!(v, "ip" | "ipv6" | "integer" | "string" | "binary") {
                        return fail(self, format!("unknown type '{v}'."));
                    }
                    if arg(w, i) == "len" {
                        i += 2;
                    }
                    ty = true;
                }
                "size" => {
                    if let Some(c) = size_ok(v) {
                        return fail(self, format!("unexpected character '{c}' in argument of 'size'."));
                    }
                    size = true;
                }
                "expire" => match crate::config::time::parse_ms(v) {
                    Ok(t) if t.trailing_junk.is_none() => {}
                    Ok(t) => {
                        let c = t.trailing_junk.unwrap_or(' ');
                        return fail(self, format!("unexpected character '{c}' in argument of 'expire'."));
                    }
                    Err(crate::config::time::TimeError::BadChar(c)) => {
                        return fail(self, format!("unexpected character '{c}' in argument of 'expire'."));
                    }
                    Err(e) => return fail(self, format!("{e} in argument of 'expire'.")),
                },
                "store" => {
                    for item in v.split(',') {
                        let name = item.split('(').next().unwrap_or(item);
                        if !STORE_OPTIONS.contains(&name) {
                            return fail(self, format!("unknown store option '{name}'."));
                        }
                    }
                }
                "peers" | "srvkey" | "write-to" => {}
                "nopurge" => i -= 1,
                other => return fail(self, format!("unknown argument '{other}'.")),
            }
        }
        if !ty {
            return fail(self, "missing type.".into());
        }
        if !size {
            return fail(self, "missing size.".into());
        }
        p.stick_table = Some(at.clone());
        true
    }
}

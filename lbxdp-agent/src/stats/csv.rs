//! `show stat [<iid> <type> <sid>]`: HAProxy's CSV.
use std::fmt::Write;

use super::{
    columns::COLUMNS,
    table::{Cell, Row, RowKind, StatsTable},
};
use crate::runtime::StatFilter;

/// HAProxy's `csv_enc(str, 1)`: quoted only when it holds a comma, a quote
/// or a line break; quotes doubled.
fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// HAProxy's filter: `iid` -1 is any proxy; `types` a mask of 1 (frontends),
/// 2 (backends), 4 (servers), -1 all; `sid` only narrows servers, and only
/// with a given proxy.
pub(crate) fn selected(row: &Row, f: &StatFilter) -> bool {
    if f.iid != -1 && row.int("iid") != Some(f.iid) {
        return false;
    }
    if f.types & row.kind.bit() == 0 {
        return false;
    }
    if row.kind == RowKind::Server {
        let status = row.text("status").unwrap_or("");
        // HAProxy's `up` keeps servers that are UP (or going down, or
        // unchecked); `no-maint` drops those in maintenance.
        if f.hide_down && !(status.starts_with("UP") || status == "no check" || status.starts_with("DRAIN")) {
            return false;
        }
        if f.hide_maint && status == "MAINT" {
            return false;
        }
    }
    !(row.kind == RowKind::Server && f.iid != -1 && f.sid != -1 && row.int("sid") != Some(f.sid))
}

/// The header line, `# pxname,svname,...,h1_spliced_bytes_out,`.
pub fn header() -> String {
    let mut out = String::from("# ");
    for c in COLUMNS {
        out.push_str(c);
        out.push(',');
    }
    out.push('\n');
    out
}

/// One row as HAProxy prints it, trailing comma included.
pub fn row_line(row: &Row) -> String {
    let mut out = String::new();
    for cell in row.cells() {
        match cell {
            Cell::Empty => {}
            Cell::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Text(t) => csv_field(&mut out, t),
        }
        out.push(',');
    }
    out.push('\n');
    out
}

/// The whole answer: header, rows, and the blank line that ends it.
pub fn show_stat(table: &StatsTable, filter: &StatFilter) -> String {
    let mut out = header();
    for row in table.rows.iter().filter(|r| selected(r, filter)) {
        out.push_str(&row_line(row));
    }
    out.push('\n');
    out
}

//! HAProxy's HTML stats page: the process, then one table per proxy
//! (its frontend, its servers, its backend), coloured by server state as
//! HAProxy colours them, and with admin on, its form of server actions.
use std::fmt::Write;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

use super::{
    info::{Info, human_uptime},
    table::{Cell, Row, RowKind, StatsTable},
};
use crate::config::StatsPage;

/// The actions of HAProxy's form that lbxdp carries out, value and label.
pub const ACTIONS: [(&str, &str); 8] = [
    ("ready", "Set state to READY"),
    ("drain", "Set state to DRAIN"),
    ("maint", "Set state to MAINT"),
    ("dhlth", "Health: disable checks"),
    ("ehlth", "Health: enable checks"),
    ("hrunn", "Health: force UP"),
    ("hnolb", "Health: force NOLB"),
    ("hdown", "Health: force DOWN"),
];

/// HAProxy's state colours (light scheme), by the class names it uses.
const STYLE: &str = "body { font-family: arial, helvetica, sans-serif; font-size: 12px; color: black; background: white;}
th,td { font-size: 10px;}
h1 { font-size: x-large; margin-bottom: 0.5em;}
h2 { font-family: helvetica, arial; font-size: x-large; font-weight: bold; font-style: italic; color: #6020a0; margin: 0;}
h3 { font-family: helvetica, arial; font-size: 16px; font-weight: bold; color: #b00040; background: #e8e8d0; margin: 0;}
.titre {background: #20D0D0; color: #000000; font-weight: bold; text-align: center;}
.frontend {background: #e8e8d0;}
.backend {background: #e8e8d0;}
.active_down {background: #ff9090;}
.active_going_up {background: #ffd020;}
.active_going_down {background: #ffffa0;}
.active_up {background: #c0ffc0;}
.active_nolb {background: #20a0ff;}
.active_draining {background: #20a0FF;}
.active_no_check {background: #e0e0e0;}
.backup_down {background: #ff9090;}
.backup_going_up {background: #ff80ff;}
.backup_going_down {background: #c060ff;}
.backup_up {background: #b0d0ff;}
.backup_nolb {background: #90b0e0;}
.backup_draining {background: #cc9900;}
.backup_no_check {background: #e0e0e0;}
.maintain {background: #c07820;}
table.tbl { border-collapse: collapse; border-style: none;}
table.tbl td { text-align: right; border: 1px solid gray; padding: 2px 3px; white-space: nowrap;}
table.tbl td.ac { text-align: center;}
table.tbl th { border: 1px solid gray;}
table.tbl th.pxname { background: #b00040; color: #ffff40; font-weight: bold; padding: 2px 3px; white-space: nowrap;}
table.tbl th.empty { border-style: none; background: white;}
table.lgd { border-collapse: collapse; border-width: 1px; border-style: none none none solid; border-color: black;}
table.lgd td { border: 1px solid gray; padding: 2px;}
table.lgd td.noborder { border-style: none; padding: 2px; white-space: nowrap;}
a.px:link, a.px:visited {color: #ffff40; text-decoration: none;}
a.lfsb:link, a.lfsb:visited {color: #000000; text-decoration: none;}
";

/// HAProxy's `human_time(t, 1)`: the two largest units.
fn human_time(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{}h{}m", s / 3600, (s / 60) % 60)
    } else {
        format!("{}d{}h", s / 86400, (s / 3600) % 24)
    }
}

fn num(row: &Row, column: &str) -> String {
    match row.get(column) {
        Cell::Int(v) => v.to_string(),
        _ => String::new(),
    }
}

/// A limit: `-` when there is none, as HAProxy shows it.
fn limit(row: &Row, column: &str) -> String {
    row.int(column).map_or_else(|| "-".into(), |v| v.to_string())
}

/// HAProxy's row colour for a server, from its status and check counter.
fn server_class(row: &Row) -> String {
    let status = row.text("status").unwrap_or_default();
    if status.starts_with("MAINT") {
        return "maintain".into();
    }
    let style = if status == "DOWN" {
        "down"
    } else if status.starts_with("DOWN ") {
        "going_up"
    } else if status == "DRAIN" {
        "draining"
    } else if status.starts_with("NOLB ") {
        "going_down"
    } else if status == "NOLB" {
        "nolb"
    } else if status == "no check" {
        "no_check"
    } else if row.int("chkfail").is_none() || fully_up(row) {
        if row.int("weight").unwrap_or(0) > 0 {
            "up"
        } else {
            "draining"
        }
    } else {
        "going_down"
    };
    let side = if row.int("bck") == Some(1) { "backup" } else { "active" };
    format!("{side}_{style}")
}

fn fully_up(row: &Row) -> bool {
    let (h, r, f) = (
        row.int("check_health").unwrap_or(0),
        row.int("check_rise").unwrap_or(0),
        row.int("check_fall").unwrap_or(0),
    );
    h == r + f - 1
}

/// The Status cell: time in state and state, with HAProxy's arrows.
fn status_cell(row: &Row) -> String {
    let status = row.text("status").unwrap_or_default();
    let since = human_time(row.int("lastchg").unwrap_or(0));
    match row.kind {
        RowKind::Frontend => text(status).into_owned(),
        RowKind::Backend => format!("{since} {}", text(status)),
        RowKind::Server if status.starts_with("MAINT") => format!("{since} MAINT"),
        RowKind::Server if status == "no check" => "<i>no check</i>".into(),
        RowKind::Server => {
            let mut s = format!("{since} {}", text(status));
            let health = row.int("check_health").unwrap_or(0);
            if status.starts_with("DOWN") {
                if health > 0 {
                    s.push_str(" &uarr;");
                }
            } else if !fully_up(row) {
                s.push_str(" &darr;");
            }
            s
        }
    }
}

fn last_check_cell(row: &Row) -> String {
    let Some(status) = row.text("check_status") else {
        return "<td></td>".into();
    };
    let mut s = format!("<td class=ac><u> {}", text(status));
    if let Some(code) = row.int("check_code") {
        let _ = write!(s, "/{code}");
    }
    if let Some(ms) = row.int("check_duration") {
        let _ = write!(s, " in {ms}ms");
    }
    let _ = write!(
        s,
        "<div class=tips>{}",
        text(row.text("check_desc").unwrap_or_default())
    );
    if let Some(info) = row.text("last_chk") {
        let _ = write!(s, ": {}", text(info));
    }
    s.push_str("</div></u></td>");
    s
}

fn row_html(out: &mut String, row: &Row, form: bool) {
    let (class, label) = match row.kind {
        RowKind::Frontend => ("frontend".to_string(), "Frontend".to_string()),
        RowKind::Backend => ("backend".to_string(), "Backend".to_string()),
        RowKind::Server => (server_class(row), row.svname().to_string()),
    };
    let anchor = format!("{}/{}", row.pxname(), label);
    let _ = write!(out, "<tr class=\"{class}\">");
    if form {
        if row.kind == RowKind::Server {
            let _ = write!(
                out,
                "<td><input type=\"checkbox\" name=\"s\" value=\"{}\"></td>",
                attr(row.svname())
            );
        } else {
            out.push_str("<td></td>");
        }
    }
    let _ = write!(
        out,
        "<td class=ac><a name=\"{a}\"></a><a class=lfsb href=\"#{a}\">{}</a></td>",
        text(&label),
        a = attr(&anchor)
    );
    // Queue
    if row.kind == RowKind::Frontend {
        out.push_str("<td colspan=3></td>");
    } else {
        let _ = write!(
            out,
            "<td>{}</td><td>{}</td><td>{}</td>",
            num(row, "qcur"),
            num(row, "qmax"),
            limit(row, "qlimit")
        );
    }
    // Session rate, Sessions
    let last = match row.int("lastsess") {
        Some(v) if v >= 0 => human_time(v),
        Some(_) => "?".into(),
        None => String::new(),
    };
    let _ = write!(
        out,
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        num(row, "rate"),
        num(row, "rate_max"),
        limit(row, "rate_lim"),
        num(row, "scur"),
        num(row, "smax"),
        limit(row, "slim"),
        num(row, "stot"),
        num(row, "lbtot"),
        last
    );
    // Bytes, Denied, Errors, Warnings
    let _ = write!(
        out,
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        num(row, "bin"),
        num(row, "bout"),
        num(row, "dreq"),
        num(row, "dresp"),
        num(row, "ereq"),
        num(row, "econ"),
        num(row, "eresp"),
        num(row, "wretr"),
        num(row, "wredis")
    );
    // Server
    let _ = write!(out, "<td class=ac>{}</td>", status_cell(row));
    match row.kind {
        RowKind::Frontend => out.push_str("<td class=ac colspan=8></td>"),
        RowKind::Backend => {
            let _ = write!(
                out,
                "<td class=ac>&nbsp;</td><td class=ac>{}/{}</td><td class=ac>{}</td><td class=ac>{}</td>\
                 <td class=ac>&nbsp;</td><td>{}</td><td>{}</td><td></td>",
                num(row, "weight"),
                num(row, "uweight"),
                num(row, "act"),
                num(row, "bck"),
                num(row, "chkdown"),
                row.int("downtime").map(human_time).unwrap_or_default()
            );
        }
        RowKind::Server => {
            out.push_str(&last_check_cell(row));
            let backup = row.int("bck") == Some(1);
            let _ = write!(
                out,
                "<td class=ac>{}/{}</td><td class=ac>{}</td><td class=ac>{}</td>",
                num(row, "weight"),
                num(row, "uweight"),
                if backup { "-" } else { "Y" },
                if backup { "Y" } else { "-" }
            );
            match row.int("chkfail") {
                Some(fails) => {
                    let _ = write!(
                        out,
                        "<td><u>{fails}<div class=tips>Failed Health Checks</div></u></td><td>{}</td><td>{}</td>",
                        num(row, "chkdown"),
                        row.int("downtime").map(human_time).unwrap_or_default()
                    );
                }
                None => out.push_str("<td colspan=3></td>"),
            }
            out.push_str("<td class=ac>-</td>");
        }
    }
    out.push_str("</tr>\n");
}

const TABLE_HEAD: &str = "<th colspan=3>Queue</th><th colspan=3>Session rate</th><th colspan=6>Sessions</th>\
<th colspan=2>Bytes</th><th colspan=2>Denied</th><th colspan=3>Errors</th><th colspan=2>Warnings</th>\
<th colspan=9>Server</th></tr>\n<tr class=\"titre\"><th>Cur</th><th>Max</th><th>Limit</th><th>Cur</th><th>Max</th>\
<th>Limit</th><th>Cur</th><th>Max</th><th>Limit</th><th>Total</th><th>LbTot</th><th>Last</th><th>In</th><th>Out</th>\
<th>Req</th><th>Resp</th><th>Req</th><th>Conn</th><th>Resp</th><th>Retr</th><th>Redis</th><th>Status</th>\
<th>LastChk</th><th>Wght</th><th>Act</th><th>Bck</th><th>Chk</th><th>Dwn</th><th>Dwntme</th><th>Thrtle</th></tr>\n";

fn proxy_html(out: &mut String, rows: &[&Row], page: &StatsPage, admin: bool) {
    let Some(first) = rows.first() else {
        return;
    };
    let name = first.pxname();
    let backend = rows.iter().find(|r| r.kind == RowKind::Backend);
    let has_frontend = rows.iter().any(|r| r.kind == RowKind::Frontend);
    let form = admin && backend.is_some();
    let cap = match (has_frontend, backend.is_some()) {
        (true, true) => "proxy",
        (true, false) => "frontend",
        _ => "backend",
    };
    if form {
        let _ = write!(out, "<form method=\"post\" action=\"{}\">", attr(&page.uri));
    }
    let mode = first.text("mode").unwrap_or_default();
    let iid = first.int("iid").unwrap_or(0);
    let _ = write!(
        out,
        "<table class=\"tbl\" width=\"100%\">\n<tr class=\"titre\"><th class=\"pxname\" width=\"10%\"><a name=\"{a}\"></a>\
         <a class=px href=\"#{a}\" title=\"cap: {cap}, mode: {}, id: {iid}\">{}</a></th><th class=\"empty\" width=\"90%\"></th></tr>\n</table>\n",
        text(mode),
        text(name),
        a = attr(name)
    );
    out.push_str("<table class=\"tbl\" width=\"100%\">\n<tr class=\"titre\">");
    if form {
        out.push_str(
            "<th rowspan=2 width=1><input type=\"checkbox\" onclick=\"var c=this.form.querySelectorAll('input[name=s]');\
             for(var i=0;i<c.length;i++)c[i].checked=this.checked\"></th>",
        );
    }
    out.push_str("<th rowspan=2></th>");
    out.push_str(TABLE_HEAD);
    for row in rows {
        row_html(out, row, form);
    }
    out.push_str("</table>");
    if let Some(b) = backend.filter(|_| form) {
        out.push_str(
            "Choose the action to perform on the checked servers : <select name=action><option value=\"\"></option>",
        );
        for (value, label) in ACTIONS {
            let _ = write!(out, "<option value=\"{value}\">{label}</option>");
        }
        let _ = write!(
            out,
            "</select><input type=\"hidden\" name=\"b\" value=\"#{}\">&nbsp;<input type=\"submit\" value=\"Apply\"></form>",
            b.int("iid").unwrap_or(0)
        );
    }
    out.push_str("<p>\n");
}

fn legend(out: &mut String) {
    out.push_str(
        "<table class=\"lgd\"><tr>\n\
<td class=\"active_up\">&nbsp;</td><td class=\"noborder\">active UP </td><td class=\"backup_up\">&nbsp;</td><td class=\"noborder\">backup UP </td></tr><tr>\n\
<td class=\"active_going_down\"></td><td class=\"noborder\">active UP, going down </td><td class=\"backup_going_down\"></td><td class=\"noborder\">backup UP, going down </td></tr><tr>\n\
<td class=\"active_going_up\"></td><td class=\"noborder\">active DOWN, going up </td><td class=\"backup_going_up\"></td><td class=\"noborder\">backup DOWN, going up </td></tr><tr>\n\
<td class=\"active_down\"></td><td class=\"noborder\">active or backup DOWN &nbsp;</td><td class=\"active_no_check\"></td><td class=\"noborder\">not checked </td></tr><tr>\n\
<td class=\"maintain\"></td><td class=\"noborder\" colspan=\"3\">active or backup DOWN for maintenance (MAINT) &nbsp;</td></tr><tr>\n\
<td class=\"active_draining\"></td><td class=\"noborder\" colspan=\"3\">active or backup SOFT STOPPED for maintenance &nbsp;</td></tr></table>\n\
Note: \"NOLB\"/\"DRAIN\" = UP with load-balancing disabled.",
    );
}

/// The whole page. `admin`: this client may act on servers (the form);
/// `notice`: the outcome of its last action, shown at the top.
pub fn render(table: &StatsTable, info: &Info, page: &StatsPage, admin: bool, notice: Option<&str>) -> String {
    let mut out = String::new();
    out.push_str(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"\n\"http://www.w3.org/TR/html4/loose.dtd\">\n<html><head>",
    );
    let _ = writeln!(
        out,
        "<title>Statistics Report for {} on {}</title>",
        text(&info.name),
        text(&info.node)
    );
    out.push_str("<meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\">\n");
    if let Some(r) = page.refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{}\">", r.as_secs().max(1));
    }
    let _ = write!(
        out,
        "<style type=\"text/css\"><!--\n{STYLE}-->\n</style></head>\n<body>"
    );
    if !page.hide_version {
        let _ = writeln!(
            out,
            "<h1>{} version {}, released {}</h1>",
            text(&info.name),
            text(&info.version),
            text(&info.release_date)
        );
    }
    let _ = write!(out, "<h2>Statistics Report for pid {}", info.pid);
    if let Some(node) = &page.show_node {
        let node = if node.is_empty() { &info.node } else { node };
        let _ = write!(out, " on {}", text(node));
    }
    if let Some(desc) = &page.show_desc {
        let desc = if desc.is_empty() {
            info.description.as_deref().unwrap_or_default()
        } else {
            desc
        };
        if !desc.is_empty() {
            let _ = write!(out, ": {}", text(desc));
        }
    }
    out.push_str("</h2>\n<hr width=\"100%\" class=\"hr\">\n<h3>&gt; General process information</h3>\n");
    let o = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    let _ = write!(
        out,
        "<table border=0><tr><td align=\"left\" nowrap width=\"1%\">\n<p><b>pid = </b> {} (process #1, nbproc = 1, nbthread = {})<br>\n\
         <b>uptime = </b> {}<br>\n<b>maxconn = </b> {}<br>\ncurrent conns = {}; total conns = {}<br>\n</td><td align=\"center\" nowrap>\n",
        info.pid,
        info.nbthread,
        human_uptime(info.uptime),
        o(info.maxconn),
        o(info.curr_conns),
        o(info.cum_conns)
    );
    legend(&mut out);
    out.push_str("</td></tr></table>\n");
    // The outcome of the last admin action, as HAProxy words it for its `;st=` code.
    if let Some((class, words)) = notice.and_then(crate::runtime::http::status_notice) {
        let _ = writeln!(
            out,
            "<p><div class={class}><a class=lfsb href=\"{}\" title=\"Remove this message\">[X]</a> {words}</div>",
            text(&page.uri)
        );
    }
    let mut start = 0;
    while start < table.rows.len() {
        let name = table.rows[start].pxname();
        let end = table.rows[start..]
            .iter()
            .position(|r| r.pxname() != name)
            .map_or(table.rows.len(), |n| start + n);
        let rows: Vec<&Row> = table.rows[start..end].iter().collect();
        proxy_html(&mut out, &rows, page, admin);
        start = end;
    }
    out.push_str("</body>\n</html>\n");
    out
}

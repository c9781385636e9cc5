//! HAProxy's command line has options clap can't spell: two-letter short
//! options (`-sf`, `-st`, `-db`, `-Ws`) that would read as clusters of
//! one-letter flags (`-sf` as `-s -f`). They are rewritten to long options
//! before clap parses, so unit files and scripts written for HAProxy run as
//! they are.
use std::ffi::OsString;

/// `args` (program name first) with HAProxy's two-letter options renamed.
pub fn haproxy_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .flat_map(|a| {
            let long: &[&str] = match a.to_str() {
                Some("-sf") => &["--soft-stop"],
                Some("-st") => &["--hard-stop"],
                Some("-db") => &["--foreground"],
                // -Ws is -W for systemd: its master speaks sd_notify (lbxdp's
                // does whenever NOTIFY_SOCKET is set) and stays in the
                // foreground whatever `daemon` says (HAProxy 2.6 does so).
                Some("-Ws") => &["-W", "--foreground"],
                _ => return vec![a],
            };
            long.iter().map(OsString::from).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Vec<String> {
        haproxy_style(line.split(' ').map(OsString::from))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn haproxy_options() {
        assert_eq!(
            run("lbxdp-agent -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/m.sock -sf 12 13"),
            [
                "lbxdp-agent",
                "-W",
                "--foreground",
                "-f",
                "/etc/haproxy/haproxy.cfg",
                "-p",
                "/run/haproxy.pid",
                "-S",
                "/run/m.sock",
                "--soft-stop",
                "12",
                "13"
            ]
        );
        assert_eq!(
            run("x -db -st 5 -f a"),
            ["x", "--foreground", "--hard-stop", "5", "-f", "a"]
        );
        // A file named like an option keeps its name after -f.
        assert_eq!(run("x -f -sf.cfg"), ["x", "-f", "-sf.cfg"]);
    }
}

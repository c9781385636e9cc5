//! The texts here were taken from HAProxy 2.6.12 answering on its stats socket.
use super::*;
use crate::config;

const CFG: &str = "
frontend fe
    bind 127.0.0.1:18080
    default_backend be
backend be
    server s1 127.0.0.1:18081 weight 10
    server s2 127.0.0.1:18082
";

fn config() -> Config {
    let mut config = match config::parse_str("t.cfg", CFG) {
        Ok((c, _)) => c,
        Err(d) => panic!("test config refused: {d:?}"),
    };
    // HAProxy's numbering for this file (the parser may not assign them yet).
    config.frontends[0].id = 2;
    config.backends[0].id = 3;
    config
}

fn run(level: CliLevel, command: &str) -> Step {
    Session::new(level, DEFAULT_TIMEOUT).step(command, &config())
}

fn admin(command: &str) -> Step {
    run(CliLevel::Admin, command)
}

fn answer(text: &str) -> Step {
    Step::Answer(text.into())
}

fn ask(command: Command) -> Step {
    Step::Ask(command)
}

fn id(s: &str) -> ServerId {
    ServerId::new("be", s)
}

#[test]
fn commands_split_at_unescaped_semicolons() {
    assert_eq!(split_commands("a; b;c"), vec!["a", " b", "c"]);
    assert_eq!(split_commands("a;;b"), vec!["a", "", "b"]);
    assert_eq!(split_commands(r"a\; b;c"), vec![r"a\; b", "c"]);
    assert_eq!(split_commands(r"a\\;b"), vec![r"a\\", "b"]);
    assert_eq!(split_commands(""), vec![""]);
}

#[test]
fn words_split_on_blanks_and_backslashes_escape() {
    assert_eq!(words("  get   weight\tbe/s2  "), vec!["get", "weight", "be/s2"]);
    assert_eq!(words(r"get weight be\/s2"), vec!["get", "weight", "be/s2"]);
    assert_eq!(words(r"a\ b c\;"), vec!["a b", "c;"]);
    assert_eq!(words(r"a\\b"), vec![r"a\b"]);
    // Quotes mean nothing to HAProxy's CLI.
    assert_eq!(words("\"be/s2\""), vec!["\"be/s2\""]);
    assert_eq!(words(&"x ".repeat(100)).len(), MAX_ARGS);
}

#[test]
fn show_commands() {
    assert_eq!(admin("show info"), ask(Command::ShowInfo));
    assert_eq!(admin("show backend extra"), ask(Command::ShowBackend));
    assert_eq!(admin("show sess"), ask(Command::ShowSess));
    assert_eq!(admin("show servers state"), ask(Command::ShowServersState(None)));
    assert_eq!(
        admin("show servers state be"),
        ask(Command::ShowServersState(Some("be".into())))
    );
    assert_eq!(admin("show servers state nope"), answer("Can't find backend.\n\n"));
    assert_eq!(admin("show cli level"), answer("admin\n\n"));
    assert_eq!(run(CliLevel::User, "show cli level"), answer("user\n\n"));
}

#[test]
fn show_stat_takes_a_filter_by_id_or_name() {
    assert_eq!(admin("show stat"), ask(Command::ShowStat(StatFilter::default())));
    // Fewer than three numbers are ignored, as HAProxy ignores them.
    assert_eq!(admin("show stat 1 2"), ask(Command::ShowStat(StatFilter::default())));
    let be_id = config().backend("be").map(|b| i64::from(b.id)).unwrap_or_default();
    assert!(be_id > 0);
    let be = StatFilter {
        iid: be_id,
        types: 4,
        sid: -1,
        ..StatFilter::default()
    };
    assert_eq!(admin("show stat be 4 -1"), ask(Command::ShowStat(be)));
    assert_eq!(
        admin(&format!("show stat {be_id} 4 -1 extra")),
        ask(Command::ShowStat(be))
    );
    assert_eq!(admin("show stat nope 4 -1"), answer("No such proxy.\n\n"));
    let up = StatFilter {
        hide_down: true,
        hide_maint: true,
        ..StatFilter::default()
    };
    assert_eq!(admin("show stat up no-maint"), ask(Command::ShowStat(up)));
    assert!(matches!(admin("show stat json"), Step::Answer(t) if t.contains("'json' is not supported")));
    assert!(matches!(admin("show stat -1 7 -1 typed"), Step::Answer(t) if t.contains("'typed'")));
    assert!(matches!(admin("show info typed"), Step::Answer(t) if t.contains("'typed'")));
}

#[test]
fn server_commands() {
    use AdminState::*;
    assert_eq!(admin("disable server be/s1"), ask(Command::SetState(id("s1"), Maint)));
    assert_eq!(
        admin("enable server be/s1 extra"),
        ask(Command::SetState(id("s1"), Ready))
    );
    assert_eq!(
        admin("set server be/s2 state drain"),
        ask(Command::SetState(id("s2"), Drain))
    );
    assert_eq!(
        admin("set server be/s2 state ready"),
        ask(Command::SetState(id("s2"), Ready))
    );
    assert_eq!(
        admin("set server be/s2 state maint"),
        ask(Command::SetState(id("s2"), Maint))
    );
    assert_eq!(
        admin("set server be/s1 health stopping"),
        ask(Command::SetHealth(id("s1"), ForcedHealth::Stopping))
    );
    assert_eq!(admin("enable health be/s1"), ask(Command::SetChecks(id("s1"), true)));
    assert_eq!(admin("disable health be/s1"), ask(Command::SetChecks(id("s1"), false)));
    assert_eq!(admin("get weight be/s1"), ask(Command::GetWeight(id("s1"))));
    assert_eq!(
        admin("set weight be/s1 20"),
        ask(Command::SetWeight(id("s1"), Weight::Absolute(20)))
    );
    assert_eq!(
        admin("set server be/s1 weight 50%"),
        ask(Command::SetWeight(id("s1"), Weight::Percent(50)))
    );
}

#[test]
fn server_errors_are_haproxys() {
    for cmd in [
        "disable server be",
        "get weight",
        "set server",
        "enable health /s1",
        "set weight be/",
    ] {
        assert_eq!(admin(cmd), answer("Require 'backend/server'.\n\n"), "{cmd}");
    }
    assert_eq!(admin("disable server be/x"), answer("No such server.\n\n"));
    assert_eq!(admin("disable server x/s1"), answer("No such backend.\n\n"));
    // The server is looked up before its sub-command is read.
    assert_eq!(admin("set server be/x state foo"), answer("No such server.\n\n"));
    assert_eq!(
        admin("set server be/s1 state foo"),
        answer("'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n")
    );
    assert_eq!(
        admin("set server be/s1 health"),
        answer("'set server <srv> health' expects 'up', 'stopping', or 'down'.\n\n")
    );
    assert!(matches!(admin("set server be/s1 addr 1.2.3.4"), Step::Answer(t) if t.starts_with("usage: set server")));
}

#[test]
fn weights_parse_as_haproxy_does() {
    let w = |text: &str| admin(&format!("set server be/s1 weight {text}"));
    let set = |weight| ask(Command::SetWeight(id("s1"), weight));
    assert_eq!(w(""), answer("Require <weight> or <weight%>.\n\n"));
    assert_eq!(admin("set weight be/s1"), answer("Require <weight> or <weight%>.\n\n"));
    let absolute = answer("Absolute weight can only be between 0 and 256 inclusive.\n\n");
    for bad in ["300", "-1", "300x", "99999999999999999999999"] {
        assert_eq!(w(bad), absolute, "{bad}");
    }
    assert_eq!(w("-5%"), answer("Relative weight must be positive.\n\n"));
    assert_eq!(w("abc"), answer("Empty weight string empty or preceded by garbage\n"));
    assert_eq!(w("5x"), answer("Trailing garbage in weight string\n"));
    assert_eq!(w("5%x"), answer("Trailing garbage in weight string\n"));
    assert_eq!(w("256"), set(Weight::Absolute(256)));
    assert_eq!(w("0"), set(Weight::Absolute(0)));
    assert_eq!(w("+7"), set(Weight::Absolute(7)));
    assert_eq!(w("0%"), set(Weight::Percent(0)));
    assert_eq!(w("100000%"), set(Weight::Percent(25_600)));
}

#[test]
fn levels_refuse_as_haproxy_does() {
    let denied = answer("Permission denied\n\n");
    for cmd in [
        "disable server be/s1",
        "enable server be/s1",
        "set server be/s1 state ready",
        "set server be/s1 weight 5",
        "set weight be/s1 5",
        "set server be/s1 health up",
        "enable health be/s1",
        "disable health be/s1",
        // The level is checked before the arguments.
        "disable server be",
        "set server",
    ] {
        assert_eq!(run(CliLevel::Operator, cmd), denied, "{cmd}");
        assert_eq!(run(CliLevel::User, cmd), denied, "{cmd}");
    }
    assert_eq!(run(CliLevel::User, "show sess"), denied);
    assert_eq!(run(CliLevel::Operator, "show sess"), ask(Command::ShowSess));
    assert_eq!(run(CliLevel::User, "operator"), denied);
    for cmd in [
        "show info",
        "show stat",
        "show servers state",
        "show backend",
        "get weight be/s1",
    ] {
        assert!(matches!(run(CliLevel::User, cmd), Step::Ask(_)), "{cmd}");
    }
}

#[test]
fn session_commands() {
    let config = config();
    let mut s = Session::new(CliLevel::Admin, DEFAULT_TIMEOUT);
    assert_eq!(s.step("prompt", &config), answer("\n"));
    assert!(s.interactive);
    assert_eq!(s.step("prompt", &config), answer("\n"));
    assert!(!s.interactive);
    assert_eq!(s.step("quit", &config), Step::Quit);
    assert_eq!(s.step("set timeout cli 5", &config), answer("\n"));
    assert_eq!(s.timeout, Duration::from_secs(5));
    assert_eq!(s.step("set timeout cli 2m", &config), answer("\n"));
    assert_eq!(s.timeout, Duration::from_secs(120));
    for bad in ["0", "-1", "5x", "500ms", "5sx"] {
        let cmd = format!("set timeout cli {bad}");
        assert_eq!(s.step(&cmd, &config), answer("Invalid timeout value.\n\n"), "{bad}");
    }
    assert_eq!(s.timeout, Duration::from_secs(120));
    assert_eq!(
        s.step("set timeout cli", &config),
        answer("Expects an integer value.\n\n")
    );
    assert_eq!(
        s.step("set timeout", &config),
        answer("'set timeout' only supports 'cli'.\n\n")
    );
    assert_eq!(s.step("operator", &config), answer("\n"));
    assert_eq!(s.level, CliLevel::Operator);
    assert_eq!(s.step("disable server be/s1", &config), answer("Permission denied\n\n"));
    assert_eq!(s.step("user", &config), answer("\n"));
    assert_eq!(s.level, CliLevel::User);
    // Lowering is one way.
    assert_eq!(s.step("operator", &config), answer("Permission denied\n\n"));
    assert_eq!(s.level, CliLevel::User);
}

fn lines(step: Step) -> Vec<String> {
    match step {
        Step::Answer(text) => text.lines().map(String::from).collect(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn help_lists_lbxdps_commands_sorted_then_the_builtins() {
    let help = lines(admin("help"));
    assert_eq!(help[0], "The following commands are valid at this level:");
    let listed: Vec<&String> = help[1..].iter().take_while(|l| !l.starts_with("  help ")).collect();
    assert_eq!(listed.len(), KEYWORDS.len());
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    // Every usage line aligns its colon at HAProxy's column, unless too long for it.
    for line in &listed {
        assert!(line.find(':').is_some_and(|c| c >= 42), "{line}");
    }
    assert_eq!(
        help[help.len() - 4..],
        [
            "  help [<command>]                        : list matching or all commands",
            "  prompt                                  : toggle interactive mode with prompt",
            "  quit                                    : disconnect",
            ""
        ]
    );
    // The same list at every level, as HAProxy 2.6 shows it.
    assert_eq!(lines(run(CliLevel::User, "help")), help);
}

#[test]
fn help_with_words_lists_the_matching_commands() {
    let help = lines(admin("help show"));
    assert_eq!(help[0], "The following commands are valid at this level:");
    let listed: Vec<&String> = help[1..help.len() - 4].iter().collect();
    assert_eq!(listed.len(), 8);
    assert!(listed.iter().all(|l| l.starts_with("  show ")));
    let servers = lines(admin("help show servers"));
    assert_eq!(servers.len(), 1 + 1 + 4);
    assert!(servers[1].starts_with("  show servers state"));
}

#[test]
fn unknown_commands_get_haproxys_usage() {
    let empty = lines(admin(""));
    assert_eq!(
        empty[0],
        "Unknown command. Please enter one of the following commands only:"
    );
    assert_eq!(empty.len(), 1 + KEYWORDS.len() + 4);
    // A known first word narrows the list to its commands, fuzzily matched.
    let servers = lines(admin("show servers"));
    assert_eq!(
        servers[0],
        "Unknown command, but maybe one of the following ones is a better match:"
    );
    assert_eq!(
        servers[1],
        "  show servers state [<backend>]          : dump volatile server information (all or for a single backend)"
    );
    assert_eq!(servers.len(), 1 + 1 + 4);
    let typo = lines(admin("show stats"));
    assert!(typo[1..].iter().any(|l| l.starts_with("  show stat ")), "{typo:?}");
    assert!(!typo[1..].iter().any(|l| l.starts_with("  show backend")), "{typo:?}");
    let foo = lines(admin("foo bar"));
    assert_eq!(
        foo[0],
        "Unknown command, but maybe one of the following ones is a better match:"
    );
    assert!(foo.len() <= 1 + MAX_MATCHES + 4);
    // `\;` keeps the semicolon in a word, so this is no command at all.
    assert!(matches!(admin(r"show cli level\; get weight be/s2"), Step::Answer(t) if t.starts_with("Unknown command")));
}

#[test]
fn fingerprints_count_letter_pairs() {
    let fp = fingerprint(&["ab"]);
    assert_eq!(fp[32 * 28 + 1], 1);
    assert_eq!(fp[32 + 2], 1);
    assert_eq!(fp[32 * 2 + 28], 1);
    assert_eq!(fp.iter().map(|&c| usize::from(c)).sum::<usize>(), 3);
    assert_eq!(
        fingerprint_distance(&fingerprint(&["stat"]), &fingerprint(&["stat"])),
        0
    );
    assert_eq!(fingerprint_distance(&fingerprint(&["ab"]), &fingerprint(&["ac"])), 4);
}

#[test]
fn framing_ends_every_answer_with_an_empty_line() {
    assert_eq!(frame(""), "\n");
    assert_eq!(frame("No such server.\n"), "No such server.\n\n");
    assert_eq!(frame("No such server.\n\n"), "No such server.\n\n");
    assert_eq!(frame("5 (initial 10)"), "5 (initial 10)\n\n");
}

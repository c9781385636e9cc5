use std::time::Duration;

use super::*;

/// The help haproxy 2.6.12's master answers, less `show cli sockets`.
const HELP: &str = "The following commands are valid at this level:
  @!<pid>                                 : send a command to the <pid> process
  @<relative pid>                         : send a command to the <relative pid> process
  @master                                 : send a command to the master process
  operator                                : lower the level of the current CLI session to operator
  reload                                  : reload haproxy
  show cli level                          : display the level of the current CLI session
  show proc                               : show processes status
  show version                            : show version of the current process
  user                                    : lower the level of the current CLI session to user
  help [<command>]                        : list matching or all commands
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect

";

fn admin() -> Session {
    Session::new(CliLevel::Admin)
}

fn answer(s: &mut Session, command: &str) -> String {
    match s.step(command) {
        Step::Answer(t) => t,
        other => panic!("{command}: {other:?}"),
    }
}

#[test]
fn help_and_unknown_commands() {
    assert_eq!(answer(&mut admin(), "help"), HELP);
    // haproxy 2.6.12's master, `bogus`:
    assert_eq!(
        answer(&mut admin(), "bogus"),
        "Unknown command, but maybe one of the following ones is a better match:
  @!<pid>                                 : send a command to the <pid> process
  @master                                 : send a command to the master process
  operator                                : lower the level of the current CLI session to operator
  reload                                  : reload haproxy
  user                                    : lower the level of the current CLI session to user
  help [<command>]                        : list matching or all commands
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect

"
    );
    // `help reload` lists the commands starting with those words.
    assert_eq!(
        answer(&mut admin(), "help reload"),
        "The following commands are valid at this level:
  reload                                  : reload haproxy
  help [<command>]                        : list matching or all commands
  prompt                                  : toggle interactive mode with prompt
  quit                                    : disconnect

"
    );
}

#[test]
fn master_commands() {
    let mut s = admin();
    assert_eq!(s.step("  show   proc"), Step::ShowProc);
    assert_eq!(s.step("reload"), Step::Reload);
    assert_eq!(
        answer(&mut s, "show version"),
        format!("{}\n\n", crate::master::VERSION)
    );
    assert_eq!(answer(&mut s, "show cli level"), "admin\n\n");
    assert_eq!(answer(&mut s, "operator"), "");
    assert_eq!(answer(&mut s, "show cli level"), "operator\n\n");
    assert_eq!(answer(&mut s, "reload"), "Permission denied\n\n");
    // A level is never raised again.
    assert_eq!(answer(&mut s, "user"), "");
    assert_eq!(answer(&mut s, "operator"), "Permission denied\n\n");
    assert_eq!(answer(&mut s, "show cli level"), "user\n\n");
    assert_eq!(s.step("show proc"), Step::ShowProc);
    assert_eq!(s.step("quit"), Step::Quit);
}

#[test]
fn prompt_mode_and_prompts() {
    let mut s = admin();
    assert_eq!(answer(&mut s, "prompt"), "");
    assert!(s.interactive);
    assert_eq!(s.prompt(Some(42)), "master> ");
    assert_eq!(answer(&mut s, "@1"), "");
    assert_eq!(s.prompt(Some(42)), "42> ");
    // A worker that is gone leaves the master's prompt.
    assert_eq!(s.prompt(None), "master> ");
    assert_eq!(answer(&mut s, "@"), "");
    assert_eq!(s.prompt(Some(42)), "master> ");
    assert_eq!(answer(&mut s, "prompt"), "");
    assert!(!s.interactive);
}

#[test]
fn prefixes_route_to_workers() {
    let mut s = admin();
    let route = |to, prefix: &str, line: &str| Step::Route {
        to,
        prefix: prefix.into(),
        line: line.into(),
    };
    assert_eq!(s.step("@1 show stat"), route(Target::Relative(1), "@1", "show stat"));
    assert_eq!(
        s.step(" @!1234\tshow info"),
        route(Target::Pid(1234), "@!1234", "show info")
    );
    // A prefix with a command applies to that command only.
    assert_eq!(s.step("show proc"), Step::ShowProc);
    assert_eq!(s.step("@master show proc"), Step::ShowProc);
    assert_eq!(s.step("@ show proc"), Step::ShowProc);
    assert_eq!(
        s.step("@x show info"),
        route(Target::Nobody("@x".into()), "@x", "show info")
    );
    assert_eq!(
        s.step("@0 show info"),
        route(Target::Nobody("@0".into()), "@0", "show info")
    );
    // Alone, it moves the session: `@1; show info` is the worker's.
    assert_eq!(answer(&mut s, "@1"), "");
    assert_eq!(s.step("show info"), route(Target::Relative(1), "@1", "show info"));
    assert_eq!(s.step("@master show proc"), Step::ShowProc);
    assert_eq!(answer(&mut s, "@master"), "");
    assert_eq!(s.step("show proc"), Step::ShowProc);
    // A lowered session stays lowered on the worker's admin socket.
    assert_eq!(answer(&mut s, "operator"), "");
    assert_eq!(
        s.step("@1 show sess"),
        route(Target::Relative(1), "@1", "operator; show sess")
    );
    assert_eq!(no_target("@5"), "Can't find the target PID matching the prefix '@5'\n");
}

#[test]
fn show_proc_as_haproxy() {
    let p = |pid, reloads, secs| Proc {
        pid,
        reloads,
        uptime: Duration::from_secs(secs),
    };
    let v = crate::master::VERSION;
    // haproxy 2.6.12, after two reloads with a session holding the old worker.
    let expected = format!(
        "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
         4944            master          2 [failed: 0]   0d00h00m09s     {v:<15}\n\
         # workers\n\
         5052            worker          0               0d00h00m01s     {v:<15}\n\
         # old workers\n\
         4977            worker          1               0d00h00m06s     {v:<15}\n\
         # programs\n\
         \n"
    );
    assert_eq!(
        show_proc(&p(4944, 2, 9), 0, &[p(5052, 0, 1)], &[p(4977, 1, 6)]),
        expected
    );
    // No old worker: no section; days and hours.
    let out = show_proc(&p(1, 4, 2 * 86400 + 3 * 3600 + 4 * 60 + 5), 1, &[p(2, 1, 61)], &[]);
    assert_eq!(
        out,
        format!(
            "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
             1               master          4 [failed: 1]   2d03h04m05s     {v:<15}\n\
             # workers\n\
             2               worker          1               0d00h01m01s     {v:<15}\n\
             # programs\n\
             \n"
        )
    );
}

//! The rulesets (`tcp-request connection`, `http-request`...): the actions
//! each has in HAProxy 2.6, its alert for one it doesn't have, and where its
//! rules run (which fetches they can use).
use super::Kind;

/// A ruleset: where a rule is and so which fetches it can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ruleset {
    TcpConnection,
    TcpSession,
    TcpContent,
    TcpResponse,
    HttpRequest,
    HttpResponse,
    HttpAfterResponse,
}

const TCP_CONNECTION: &[&str] = &[
    "accept",
    "reject",
    "capture",
    "expect-proxy",
    "expect-netscaler-cip",
    "track-sc0",
    "track-sc1",
    "track-sc2",
    "sc-inc-gpc",
    "sc-inc-gpc0",
    "sc-inc-gpc1",
    "sc-set-gpt",
    "sc-set-gpt0",
    "set-var-fmt",
    "set-var",
    "unset-var",
    "set-dst",
    "set-dst-port",
    "set-mark",
    "set-src",
    "set-src-port",
    "set-tos",
    "silent-drop",
];

const TCP_CONTENT: &[&str] = &[
    "accept",
    "reject",
    "capture",
    "expect-proxy",
    "expect-netscaler-cip",
    "track-sc0",
    "track-sc1",
    "track-sc2",
    "ot-group",
    "set-log-level",
    "set-nice",
    "switch-mode",
    "use-service",
    "sc-inc-gpc",
    "sc-inc-gpc0",
    "sc-inc-gpc1",
    "sc-set-gpt",
    "sc-set-gpt0",
    "send-spoe-group",
    "do-resolve",
    "set-var-fmt",
    "set-var",
    "unset-var",
    "set-src",
    "set-src-port",
    "set-dst",
    "set-dst-port",
    "set-mark",
    "set-tos",
    "silent-drop",
    "set-priority-class",
    "set-priority-offset",
];

const TCP_RESPONSE: &[&str] = &[
    "accept",
    "close",
    "reject",
    "ot-group",
    "set-log-level",
    "set-nice",
    "sc-inc-gpc",
    "sc-inc-gpc0",
    "sc-inc-gpc1",
    "sc-set-gpt",
    "sc-set-gpt0",
    "send-spoe-group",
    "set-var-fmt",
    "set-var",
    "unset-var",
    "set-mark",
    "set-tos",
    "silent-drop",
];

const HTTP_REQUEST: &[&str] = &[
    "wait-for-handshake",
    "ot-group",
    "set-log-level",
    "set-nice",
    "use-service",
    "sc-inc-gpc",
    "sc-inc-gpc0",
    "sc-inc-gpc1",
    "sc-set-gpt",
    "sc-set-gpt0",
    "send-spoe-group",
    "do-resolve",
    "cache-use",
    "add-acl",
    "add-header",
    "allow",
    "auth",
    "capture",
    "del-acl",
    "del-header",
    "del-map",
    "deny",
    "disable-l7-retry",
    "early-hint",
    "normalize-uri",
    "redirect",
    "reject",
    "replace-header",
    "replace-path",
    "replace-pathq",
    "replace-uri",
    "replace-value",
    "return",
    "set-header",
    "set-map",
    "set-method",
    "set-path",
    "set-pathq",
    "set-query",
    "set-uri",
    "strict-mode",
    "tarpit",
    "track-sc",
    "track-sc0",
    "track-sc1",
    "track-sc2",
    "set-timeout",
    "wait-for-body",
    "set-var-fmt",
    "set-var",
    "unset-var",
    "set-dst",
    "set-dst-port",
    "set-mark",
    "set-src",
    "set-src-port",
    "set-tos",
    "silent-drop",
    "set-priority-class",
    "set-priority-offset",
];

const HTTP_RESPONSE: &[&str] = &[
    "ot-group",
    "set-log-level",
    "set-nice",
    "sc-inc-gpc",
    "sc-inc-gpc0",
    "sc-inc-gpc1",
    "sc-set-gpt",
    "sc-set-gpt0",
    "send-spoe-group",
    "cache-store",
    "add-acl",
    "add-header",
    "allow",
    "capture",
    "del-acl",
    "del-header",
    "del-map",
    "deny",
    "redirect",
    "replace-header",
    "replace-value",
    "return",
    "set-header",
    "set-map",
    "set-status",
    "strict-mode",
    "track-sc",
    "track-sc0",
    "track-sc1",
    "track-sc2",
    "wait-for-body",
    "set-var-fmt",
    "set-var",
    "unset-var",
    "set-mark",
    "set-tos",
    "silent-drop",
];

const HTTP_AFTER_RESPONSE: &[&str] = &[
    "ot-group",
    "add-header",
    "allow",
    "capture",
    "del-header",
    "replace-header",
    "replace-value",
    "set-header",
    "set-status",
    "strict-mode",
    "set-var-fmt",
    "set-var",
    "unset-var",
];

/// HAProxy's list of a ruleset's actions, as its "expects ..." alerts print it.
const HTTP_REQUEST_WORDS: &str = "'wait-for-handshake', 'ot-group', 'set-log-level', 'set-nice', 'use-service', \
     'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', 'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'send-spoe-group', \
     'do-resolve(*)', 'cache-use', 'add-acl(*)', 'add-header', 'allow', 'auth', 'capture', 'del-acl(*)', \
     'del-header', 'del-map(*)', 'deny', 'disable-l7-retry', 'early-hint', 'normalize-uri', 'redirect', 'reject', \
     'replace-header', 'replace-path', 'replace-pathq', 'replace-uri', 'replace-value', 'return', 'set-header', \
     'set-map(*)', 'set-method', 'set-path', 'set-pathq', 'set-query', 'set-uri', 'strict-mode', 'tarpit', \
     'track-sc(*)', 'set-timeout', 'wait-for-body', 'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-dst', \
     'set-dst-port', 'set-mark', 'set-src', 'set-src-port', 'set-tos', 'silent-drop', 'set-priority-class', \
     'set-priority-offset', ";
const HTTP_RESPONSE_WORDS: &str = "'ot-group', 'set-log-level', 'set-nice', 'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', \
     'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'send-spoe-group', 'cache-store', 'add-acl(*)', \
     'add-header', 'allow', 'capture', 'del-acl(*)', 'del-header', 'del-map(*)', 'deny', 'redirect', \
     'replace-header', 'replace-value', 'return', 'set-header', 'set-map(*)', 'set-status', 'strict-mode', \
     'track-sc(*)', 'wait-for-body', 'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-mark', 'set-tos', \
     'silent-drop', ";
const HTTP_AFTER_RESPONSE_WORDS: &str = "'ot-group', 'add-header', 'allow', 'capture', 'del-header', \
     'replace-header', 'replace-value', 'set-header', 'set-status', 'strict-mode', 'set-var-fmt(*)', 'set-var(*)', \
     'unset-var(*)', ";
const TCP_CONNECTION_WORDS: &str = "'accept', 'reject', 'capture', 'expect-proxy', 'expect-netscaler-cip', \
     'track-sc0' ... 'track-sc2', 'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', 'sc-inc-gpc1(*)', 'sc-set-gpt(*)', \
     'sc-set-gpt0(*)', 'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-dst', 'set-dst-port', 'set-mark', \
     'set-src', 'set-src-port', 'set-tos', 'silent-drop'";
const TCP_CONTENT_WORDS: &str = "'accept', 'reject', 'capture', 'expect-proxy', 'expect-netscaler-cip', \
     'track-sc0' ... 'track-sc2', 'ot-group', 'set-log-level', 'set-nice', 'switch-mode', 'use-service', \
     'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', 'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'send-spoe-group', \
     'do-resolve(*)', 'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-src', 'set-src-port', 'set-dst', \
     'set-dst-port', 'set-mark', 'set-tos', 'silent-drop', 'set-priority-class', 'set-priority-offset'";
const TCP_RESPONSE_WORDS: &str = "'accept', 'close', 'reject', 'ot-group', 'set-log-level', 'set-nice', \
     'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', 'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'send-spoe-group', \
     'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-mark', 'set-tos', 'silent-drop'";

impl Ruleset {
    pub(super) fn word(self) -> &'static str {
        match self {
            Ruleset::TcpConnection => "tcp-request connection",
            Ruleset::TcpSession => "tcp-request session",
            Ruleset::TcpContent => "tcp-request content",
            Ruleset::TcpResponse => "tcp-response content",
            Ruleset::HttpRequest => "http-request",
            Ruleset::HttpResponse => "http-response",
            Ruleset::HttpAfterResponse => "http-after-response",
        }
    }

    pub(super) fn http(self) -> bool {
        matches!(
            self,
            Ruleset::HttpRequest | Ruleset::HttpResponse | Ruleset::HttpAfterResponse
        )
    }

    /// The column of `haproxy -dKsmp` for this ruleset in a proxy of `kind`
    /// (a listen section's rules run on its frontend side), and its name.
    pub(super) fn place(self, kind: Kind) -> (u32, &'static str) {
        let fe = kind.fe();
        match (self, fe) {
            (Ruleset::TcpConnection, _) => (0, "frontend tcp-request connection rule"),
            (Ruleset::TcpSession, _) => (1, "frontend tcp-request session rule"),
            (Ruleset::TcpContent, true) => (2, "frontend tcp-request content rule"),
            (Ruleset::TcpContent, false) => (6, "backend tcp-request content rule"),
            (Ruleset::HttpRequest, true) => (3, "frontend http-request header rule"),
            (Ruleset::HttpRequest, false) => (7, "backend http-request header rule"),
            (Ruleset::TcpResponse, true) => (15, "frontend tcp-response content rule"),
            (Ruleset::TcpResponse, false) => (11, "backend tcp-response content rule"),
            (Ruleset::HttpResponse | Ruleset::HttpAfterResponse, true) => (16, "frontend http-response header rule"),
            (Ruleset::HttpResponse | Ruleset::HttpAfterResponse, false) => (12, "backend http-response header rule"),
        }
    }

    fn actions(self) -> &'static [&'static str] {
        match self {
            Ruleset::TcpConnection | Ruleset::TcpSession => TCP_CONNECTION,
            Ruleset::TcpContent => TCP_CONTENT,
            Ruleset::TcpResponse => TCP_RESPONSE,
            Ruleset::HttpRequest => HTTP_REQUEST,
            Ruleset::HttpResponse => HTTP_RESPONSE,
            Ruleset::HttpAfterResponse => HTTP_AFTER_RESPONSE,
        }
    }

    /// HAProxy's alert for an action the ruleset doesn't know.
    pub(super) fn unknown(self, got: &str, kind: Kind, name: &str) -> String {
        let list = match self {
            Ruleset::TcpConnection | Ruleset::TcpSession => TCP_CONNECTION_WORDS,
            Ruleset::TcpContent => TCP_CONTENT_WORDS,
            Ruleset::TcpResponse => TCP_RESPONSE_WORDS,
            Ruleset::HttpRequest => HTTP_REQUEST_WORDS,
            Ruleset::HttpResponse => HTTP_RESPONSE_WORDS,
            Ruleset::HttpAfterResponse => HTTP_AFTER_RESPONSE_WORDS,
        };
        if self.http() {
            let got = if got.is_empty() {
                "'' (missing argument)".to_string()
            } else {
                format!("'{got}'")
            };
            format!("'{}' expects {list}but got {got}.", self.word())
        } else {
            format!(
                "'{}' expects {list} in {} '{name}' (got '{got}').",
                self.word(),
                kind.word()
            )
        }
    }

    /// Whether the ruleset knows `action` (`set-var(txn.x)` is `set-var`).
    pub(super) fn knows(self, action: &str) -> bool {
        let name = action.split('(').next().unwrap_or(action);
        self.actions().contains(&name)
    }
}

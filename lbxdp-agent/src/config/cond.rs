//! `.if` / `.elif` / `.else` / `.endif` blocks and the conditions HAProxy 2.6
//! evaluates in them. lbxdp answers as HAProxy 2.6 as Debian builds it would.

/// HAProxy refuses deeper nesting.
const MAX_NESTED: usize = 128;
/// The version lbxdp's configuration language follows.
const VERSION: (u32, u32, u32) = (2, 6, 12);
/// `haproxy -vv` features of Debian 12's HAProxy 2.6 build.
const FEATURES: &[&str] = &[
    "ACCEPT4",
    "BACKTRACE",
    "CPU_AFFINITY",
    "CRYPT_H",
    "DL",
    "EPOLL",
    "GETADDRINFO",
    "LIBCRYPT",
    "LINUX_SPLICE",
    "LINUX_TPROXY",
    "LUA",
    "NETFILTER",
    "NS",
    "OPENSSL",
    "OT",
    "PCRE2",
    "PCRE2_JIT",
    "POLL",
    "PRCTL",
    "PROMEX",
    "RT",
    "SLZ",
    "SYSTEMD",
    "TFO",
    "THREAD",
    "THREAD_DUMP",
    "TPROXY",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This branch is taken.
    Take,
    /// Not taken yet; a later `.elif`/`.else` may be.
    Drop,
    /// A branch was already taken, or the whole block is inside a dropped one.
    Skip,
}

#[derive(Debug, Default)]
pub struct Stack {
    levels: Vec<(State, bool)>,
}

impl Stack {
    pub fn depth(&self) -> usize {
        self.levels.len()
    }

    pub fn masked(&self) -> bool {
        self.levels.last().is_some_and(|(s, _)| *s != State::Take)
    }

    pub fn handle(&mut self, directive: &str, expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        match directive {
            "if" => {
                if self.levels.len() >= MAX_NESTED {
                    return Err(format!("too many nested '.if', max is {MAX_NESTED}"));
                }
                if self.masked() {
                    self.levels.push((State::Skip, false));
                    return Ok(());
                }
                let v = eval(expr, env).map_err(|e| format!("{e} in '.if'"))?;
                self.levels.push((if v { State::Take } else { State::Drop }, false));
            }
            "elif" => {
                let Some(&(state, seen_else)) = self.levels.last() else {
                    return Err("lone '.elif' with no matching '.if'".into());
                };
                if seen_else {
                    return Err("'.elif' after '.else' is not permitted".into());
                }
                let next = match state {
                    State::Take | State::Skip => State::Skip,
                    State::Drop => {
                        if eval(expr, env).map_err(|e| format!("{e} in '.elif'"))? {
                            State::Take
                        } else {
                            State::Drop
                        }
                    }
                };
                if let Some(top) = self.levels.last_mut() {
                    top.0 = next;
                }
            }
            "else" | "endif" => {
                if !expr.is_empty() {
                    return Err(format!("unexpected argument '{expr}' for '.{directive}'"));
                }
                let Some(&(state, seen_else)) = self.levels.last() else {
                    return Err(format!("lone '.{directive}' with no matching '.if'"));
                };
                if directive == "endif" {
                    self.levels.pop();
                    return Ok(());
                }
                if seen_else {
                    return Err("'.else' after '.else' is not permitted".into());
                }
                let next = if state == State::Drop { State::Take } else { State::Skip };
                if let Some(top) = self.levels.last_mut() {
                    *top = (next, true);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().unwrap_or(0));
    Some((it.next()?, it.next().unwrap_or(0), it.next().unwrap_or(0)))
}

/// `||` binds loosest, then `&&`, then `!`; terms are predicates or numbers.
fn eval(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<bool, String> {
    let mut p = P {
        s: expr.as_bytes(),
        i: 0,
        env,
    };
    let v = p.or()?;
    p.ws();
    if p.i < p.s.len() {
        return Err(format!("unparsable conditional expression at position {}", p.i + 1));
    }
    Ok(v)
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }
    fn or(&mut self) -> Result<bool, String> {
        let mut v = self.and()?;
        while self.eat("||") {
            let r = self.and()?;
            v = v || r;
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<bool, String> {
        let mut v = self.unary()?;
        while self.eat("&&") {
            let r = self.unary()?;
            v = v && r;
        }
        Ok(v)
    }
    fn unary(&mut self) -> Result<bool, String> {
        if self.eat("!") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let v = self.or()?;
            if !self.eat(")") {
                return Err("expected ')'".into());
            }
            return Ok(v);
        }
        self.term()
    }
    fn term(&mut self) -> Result<bool, String> {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-' || *c == b'.')
        {
            self.i += 1;
        }
        let word = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if word.is_empty() {
            return if self.i >= self.s.len() {
                Ok(false)
            } else {
                Err(format!("unparsable term at position {}", self.i + 1))
            };
        }
        if word.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Ok(word.trim_start_matches('-').bytes().any(|b| b != b'0'));
        }
        if !self.eat("(") {
            return Err(format!("unknown term '{word}'"));
        }
        let astart = self.i;
        while self.s.get(self.i).is_some_and(|&c| c != b')') {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err(format!("missing ')' after '{word}('"));
        }
        let args_text = String::from_utf8_lossy(&self.s[astart..self.i]).into_owned();
        self.i += 1;
        let args: Vec<&str> = args_text.split(',').map(str::trim).collect();
        let a0 = args.first().copied().unwrap_or("");
        Ok(match word.as_str() {
            "defined" => (self.env)(a0).is_some(),
            "feature" => FEATURES.contains(&a0),
            "streq" => args.len() == 2 && args[0] == args[1],
            "strneq" => args.len() == 2 && args[0] != args[1],
            "version_atleast" => version(a0).is_some_and(|v| VERSION >= v),
            "version_before" => version(a0).is_some_and(|v| VERSION < v),
            "openssl_version_atleast" | "openssl_version_before" | "ssllib_name_startswith" => {
                word == "openssl_version_atleast" || a0.starts_with("OpenSSL")
            }
            other => return Err(format!("unknown term '{other}'")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        (n == "SET").then(|| "1".into())
    }

    #[test]
    fn expressions() {
        assert!(eval("defined(SET)", &env).unwrap());
        assert!(!eval("defined(UNSET)", &env).unwrap());
        assert!(eval("version_atleast(2.4) && !version_before(2.6)", &env).unwrap());
        assert!(eval("streq(a,b) || feature(OPENSSL)", &env).unwrap());
        assert!(eval("1", &env).unwrap());
        assert!(!eval("0", &env).unwrap());
        assert!(eval("bogus(x)", &env).is_err());
    }

    #[test]
    fn blocks() {
        let mut s = Stack::default();
        s.handle("if", "0", &env).unwrap();
        assert!(s.masked());
        s.handle("elif", "1", &env).unwrap();
        assert!(!s.masked());
        s.handle("else", "", &env).unwrap();
        assert!(s.masked());
        s.handle("endif", "", &env).unwrap();
        assert_eq!(s.depth(), 0);
        assert!(s.handle("endif", "", &env).is_err());
    }
}

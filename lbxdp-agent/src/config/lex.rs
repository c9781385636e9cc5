//! Splits one configuration line into words exactly as HAProxy's `parse_line()`
//! does: `#` comments, single and double quotes, backslash escapes, and
//! `$VAR` / `${VAR}` / `${VAR-default}` / `${VAR[*]}` expansion inside double
//! quotes only. Works on bytes, since a config file need not be UTF-8.

/// HAProxy's MAX_LINE_ARGS: a 65th word is an error, not silently dropped.
pub const MAX_WORDS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    #[error("unmatched quote at position {0}")]
    UnmatchedQuote(usize),
    #[error("unmatched brace in environment variable name at position {0}")]
    UnmatchedBrace(usize),
    #[error("forbidden first char in environment variable name at position {0}")]
    BadVarName(usize),
    #[error("truncated or invalid hexadecimal sequence at position {0}")]
    BadHex(usize),
    #[error("truncated or invalid word expansion sequence at position {0}")]
    BadExpansion(usize),
    #[error("too many words, truncating after word {MAX_WORDS}")]
    TooManyWords,
}

/// What `${...}` may look up: the environment, plus HAProxy's pseudo-variables.
pub trait Vars {
    fn env(&self, name: &str) -> Option<String>;
    /// `.LINE`, `.FILE`, `.SECTION`; None for an unknown pseudo-variable.
    fn pseudo(&self, name: &str) -> Option<String>;
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits `line` (no trailing LF; leading blanks allowed) into words. Trailing
/// separators don't make an empty last word; an explicit `""` does.
pub fn split(line: &[u8], vars: &dyn Vars) -> Result<Vec<String>, LexError> {
    let mut words: Vec<Vec<u8>> = vec![Vec::new()];
    let mut i = line.iter().position(|&c| !is_space(c)).unwrap_or(line.len());
    let mut quote: Option<usize> = None;
    let (mut squote, mut dquote) = (false, false);
    // Positions are 1-based from the line's first byte, like HAProxy's.
    let pos = |p: usize| p + 1;
    let at = |p: usize| line.get(p).copied().unwrap_or(0);
    // HAProxy counts a separator run as a new word even at the end of the line;
    // only the 65th *counted* word is an error.
    let mut counted = 0usize;
    // A quote makes a word real even when empty (`""`); a separator run alone doesn't.
    let mut quoted = false;

    loop {
        let c = at(i);
        if c == 0 || c == b'\n' || c == b'\r' {
            break;
        }
        if c == b'#' && !squote && !dquote {
            break;
        } else if c == b'"' && !squote {
            dquote = !dquote;
            quoted = true;
            quote = if dquote { Some(i) } else { None };
            i += 1;
        } else if c == b'\'' && !dquote {
            squote = !squote;
            quoted = true;
            quote = if squote { Some(i) } else { None };
            i += 1;
        } else if c == b'\\' && !squote {
            let next = at(i + 1);
            let emitted = match next {
                b' ' | b'\\' => {
                    i += 1;
                    next
                }
                b't' => {
                    i += 1;
                    b'\t'
                }
                b'n' => {
                    i += 1;
                    b'\n'
                }
                b'r' => {
                    i += 1;
                    b'\r'
                }
                b'#' | b'\'' | b'"' => {
                    i += 1;
                    next
                }
                b'$' if dquote => {
                    i += 1;
                    next
                }
                b'x' => {
                    let (h1, h2) = (at(i + 2), at(i + 3));
                    if !h1.is_ascii_hexdigit() || !h2.is_ascii_hexdigit() {
                        return Err(LexError::BadHex(pos(i)));
                    }
                    let hex = |h: u8| (h as char).to_digit(16).unwrap_or(0) as u8;
                    i += 3;
                    (hex(h1) << 4) | hex(h2)
                }
                _ => c,
            };
            i += 1;
            push(&mut words, emitted);
        } else if is_space(c) && !squote && !dquote {
            while is_space(at(i)) && i < line.len() {
                i += 1;
            }
            counted += 1;
            if counted >= MAX_WORDS {
                return Err(LexError::TooManyWords);
            }
            words.push(Vec::new());
            quoted = false;
        } else if c == b'$' && dquote {
            i += 1;
            let brace = if at(i) == b'{' {
                i += 1;
                Some(i - 1)
            } else {
                None
            };
            let first = at(i);
            if !first.is_ascii_alphabetic() && first != b'_' && first != b'.' {
                return Err(LexError::BadVarName(pos(i)));
            }
            let name_start = i;
            if first == b'.' {
                i += 1;
            }
            while at(i).is_ascii_alphanumeric() || at(i) == b'_' {
                i += 1;
            }
            let name = String::from_utf8_lossy(&line[name_start..i.min(line.len())]).into_owned();
            let mut value = if let Some(pseudo) = name.strip_prefix('.') {
                match vars.pseudo(pseudo) {
                    Some(v) => Some(v),
                    None => return Err(LexError::BadVarName(pos(name_start))),
                }
            } else {
                vars.env(&name)
            };
            let mut expand = false;
            if at(i) == b'[' && brace.is_some() {
                let open = i;
                if at(i + 1) != b'*' || at(i + 2) != b']' {
                    return Err(LexError::BadExpansion(pos(open)));
                }
                i += 3;
                expand = true;
            }
            if let Some(b) = brace {
                if at(i) == b'-' {
                    let dstart = i + 1;
                    while at(i) != 0 && at(i) != b'}' && i < line.len() {
                        i += 1;
                    }
                    if at(i) != b'}' {
                        return Err(LexError::UnmatchedBrace(pos(b)));
                    }
                    if value.is_none() {
                        value = Some(String::from_utf8_lossy(&line[dstart..i]).into_owned());
                    }
                } else if at(i) != b'}' {
                    return Err(LexError::UnmatchedBrace(pos(b)));
                }
                i += 1;
            }
            if let Some(v) = value {
                let mut bytes = v.as_bytes().iter().copied().peekable();
                while let Some(b) = bytes.next() {
                    if expand && is_space(b) {
                        counted += 1;
                        if counted >= MAX_WORDS {
                            return Err(LexError::TooManyWords);
                        }
                        words.push(Vec::new());
                        while bytes.peek().is_some_and(|&n| is_space(n)) {
                            bytes.next();
                        }
                    } else {
                        push(&mut words, b);
                    }
                }
            }
        } else {
            push(&mut words, c);
            i += 1;
        }
        if i >= line.len() {
            break;
        }
    }
    if let Some(q) = quote {
        return Err(LexError::UnmatchedQuote(pos(q)));
    }
    if words.len() > 1 && !quoted && words.last().is_some_and(|w| w.is_empty()) {
        words.pop();
    }
    Ok(words
        .into_iter()
        .map(|w| String::from_utf8_lossy(&w).into_owned())
        .collect())
}

fn push(words: &mut [Vec<u8>], b: u8) {
    if let Some(w) = words.last_mut() {
        w.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env;
    impl Vars for Env {
        fn env(&self, name: &str) -> Option<String> {
            match name {
                "PORT" => Some("8080".into()),
                "LIST" => Some("a  b c".into()),
                _ => None,
            }
        }
        fn pseudo(&self, name: &str) -> Option<String> {
            (name == "LINE").then(|| "7".into())
        }
    }

    fn w(s: &str) -> Vec<String> {
        split(s.as_bytes(), &Env).unwrap()
    }

    #[test]
    fn words_comments_and_blanks() {
        assert_eq!(w("  bind  :80   # the front"), ["bind", ":80"]);
        assert_eq!(w("bind 127.0.0.1:8#1"), ["bind", "127.0.0.1:8"]);
        assert_eq!(w(""), [""]);
        assert_eq!(w("   # only a comment"), [""]);
        assert_eq!(w("a\tb\r"), ["a", "b"]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            w(r#"description "two words" 'single $PORT'"#),
            ["description", "two words", "single $PORT"]
        );
        assert_eq!(w(r"a\ b c\#d \x41"), ["a b", "c#d", "A"]);
        assert_eq!(w(r#"x "" y"#), ["x", "", "y"]);
        assert_eq!(w(r"keep\1"), [r"keep\1"]);
        assert_eq!(split(b"bind \"127.0.0.1:81", &Env), Err(LexError::UnmatchedQuote(6)));
        assert_eq!(split(br"bind \xZZ", &Env), Err(LexError::BadHex(6)));
    }

    #[test]
    fn env_expansion_only_in_double_quotes() {
        assert_eq!(w(r#"bind ":$PORT" $PORT"#), ["bind", ":8080", "$PORT"]);
        assert_eq!(
            w(r#"x "${PORT}0" "${NOPE}" "${NOPE-9}" "${.LINE}""#),
            ["x", "80800", "", "9", "7"]
        );
        assert_eq!(w(r#"x "${LIST[*]}" y"#), ["x", "a", "b", "c", "y"]);
        assert_eq!(split(br#"x "${PORT"#, &Env), Err(LexError::UnmatchedBrace(5)));
        assert_eq!(split(br#"x "$1""#, &Env), Err(LexError::BadVarName(5)));
        assert_eq!(split(br#"x "${.NOPE}""#, &Env), Err(LexError::BadVarName(6)));
    }

    #[test]
    fn word_limit() {
        let ok = vec!["w"; MAX_WORDS].join(" ");
        assert_eq!(w(&ok).len(), MAX_WORDS);
        let too_many = vec!["w"; MAX_WORDS + 1].join(" ");
        assert_eq!(split(too_many.as_bytes(), &Env), Err(LexError::TooManyWords));
    }
}

//! Regular expressions in rules (`-m reg`, `path_reg`, `replace-path`...):
//! lbxdp applies none, but HAProxy compiles them with PCRE2 while it parses
//! and refuses the configuration when one doesn't compile.

/// The errors PCRE2 reports for a regex (unbalanced parentheses, an open
/// character class, a trailing backslash, a leading quantifier), in
/// HAProxy's words. What PCRE2 takes and this doesn't see (lookarounds,
/// named groups...) passes: lbxdp applies no regex, it only refuses what
/// HAProxy refuses.
pub(super) fn regex_error(re: &str) -> Option<String> {
    let fail = |what: &str, at: usize| Some(format!("regex '{re}' is invalid (error={what}, erroffset={at})"));
    if re.contains("\\Q") {
        return None;
    }
    if re.starts_with(['*', '+', '?']) {
        return fail("quantifier does not follow a repeatable item", 0);
    }
    let b = re.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 == b.len() => return fail("\\ at end of pattern", b.len()),
            b'\\' => i += 1,
            b'[' => {
                // `]` first in a class (after an optional `^`) is a literal.
                let mut j = i + 1;
                if b.get(j) == Some(&b'^') {
                    j += 1;
                }
                if b.get(j) == Some(&b']') {
                    j += 1;
                }
                while j < b.len() && b[j] != b']' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                if j >= b.len() {
                    return fail("missing terminating ] for character class", b.len());
                }
                i = j;
            }
            b'(' => depth += 1,
            b')' if depth == 0 => return fail("unmatched closing parenthesis", i),
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return fail("missing closing parenthesis", b.len());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_pcre_refuses_are_refused() {
        let bad = |re: &str| regex_error(re).unwrap_or_default();
        assert_eq!(
            bad("a("),
            "regex 'a(' is invalid (error=missing closing parenthesis, erroffset=2)"
        );
        assert_eq!(
            bad("a)b"),
            "regex 'a)b' is invalid (error=unmatched closing parenthesis, erroffset=1)"
        );
        assert_eq!(
            bad("[ab"),
            "regex '[ab' is invalid (error=missing terminating ] for character class, erroffset=3)"
        );
        assert_eq!(
            bad("ab\\"),
            "regex 'ab\\' is invalid (error=\\ at end of pattern, erroffset=3)"
        );
        assert_eq!(
            bad("*a"),
            "regex '*a' is invalid (error=quantifier does not follow a repeatable item, erroffset=0)"
        );
        for ok in ["[]a]", "a{1", "a[(]", "(?<n>x)", "(?=x)", "^/api(/.*)$", "\\(", "[^]]"] {
            assert_eq!(regex_error(ok), None, "{ok}");
        }
    }
}

//! haproxy.cfg, read as HAProxy 2.6 reads it, into the model lbxdp runs.
//!
//! Pure: text in, [`Config`] and diagnostics out. Reading files and the
//! environment is the caller's job (see `config_files`), so everything here
//! is tested without touching the machine.
pub mod acl;
mod addr;
mod cond;
pub mod diag;
mod fetches;
mod keywords;
pub mod lex;
pub mod model;
mod parse;
pub mod patref;
mod resolve;
pub mod stick;
pub mod time;

pub use diag::{Diag, Origin, Severity};
pub use model::*;

/// One configuration file: the name diagnostics show, and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// Parses the files in order, as `haproxy -f a -f b` does. Ok carries the
/// warnings; Err carries every diagnostic, at least one of them an alert.
pub fn parse_sources(
    sources: &[Source<'_>],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<Diag>), Vec<Diag>> {
    parse_sources_reading(sources, env, &|_| None)
}

/// As `parse_sources`, with `read` giving the pattern files `acl ... -f FILE`
/// names (None: it can't be read), so this module stays free of I/O.
pub fn parse_sources_reading(
    sources: &[Source<'_>],
    env: &dyn Fn(&str) -> Option<String>,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<(Config, Vec<Diag>), Vec<Diag>> {
    parse_sources_resolving(sources, env, read, &|_| None)
}

/// As `parse_sources_reading`, with `resolve` giving the IPv4 address of a
/// host name in an address pattern (`src localhost`), which HAProxy
/// resolves while it parses (None: it doesn't resolve).
pub fn parse_sources_resolving(
    sources: &[Source<'_>],
    env: &dyn Fn(&str) -> Option<String>,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
    resolve: &dyn Fn(&str) -> Option<std::net::Ipv4Addr>,
) -> Result<(Config, Vec<Diag>), Vec<Diag>> {
    let mut parser = parse::Parser::new(env, read, resolve);
    for src in sources {
        parser.feed(src);
    }
    parser.finish();
    let mut diags = parser.diags;
    let mut config = resolve::resolve(parser.out, &mut diags);
    // In the order the lines were read: files as given, lines within them.
    let rank = |file: &str| sources.iter().position(|s| s.name == file).unwrap_or(usize::MAX);
    config.refused.sort_by_key(|r| (rank(&r.origin.file), r.origin.line));
    if diags.has_alerts() {
        Err(diags.list)
    } else {
        Ok((config, diags.list))
    }
}

/// One text, no environment: for tests and callers that have a string.
pub fn parse_str(name: &str, text: &str) -> Result<(Config, Vec<Diag>), Vec<Diag>> {
    parse_sources(
        &[Source {
            name,
            data: text.as_bytes(),
        }],
        &|_| None,
    )
}

#[cfg(test)]
mod tests;

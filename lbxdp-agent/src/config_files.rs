//! The I/O side of the configuration: `-f` paths (files, or directories of
//! `*.cfg` read in name order, as HAProxy's `-f` does), the process
//! environment for `${VAR}`, and the checks HAProxy makes against the machine
//! (users, groups, certificate files). The parsing itself is in `config`.
use std::path::{Path, PathBuf};

use crate::{
    config::{self, Config, Diag, EnvRefKind, Origin, Source},
    outside,
};

/// A bigger file is not a configuration; reading stops there, with an error.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: larger than {MAX_FILE_BYTES} bytes, not a configuration file")]
    TooLarge(PathBuf),
    #[error("{0}: no *.cfg file in this directory")]
    EmptyDir(PathBuf),
}

/// The files `-f` names, in the order HAProxy reads them.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let is_dir = outside::is_dir(p).map_err(|source| LoadError::Io {
            path: p.clone(),
            source,
        })?;
        if !is_dir {
            out.push(p.clone());
            continue;
        }
        let entries = outside::list(p).map_err(|source| LoadError::Io {
            path: p.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .into_iter()
            .filter(|(f, is_file)| *is_file && f.extension().is_some_and(|x| x == "cfg"))
            .map(|(f, _)| f)
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LoadError::EmptyDir(p.clone()));
        }
        out.extend(files);
    }
    Ok(out)
}

fn read_capped(path: &Path) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let data = outside::read(path, MAX_FILE_BYTES).map_err(io)?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge(path.to_path_buf()));
    }
    Ok(data)
}

/// What loading gave: the model when there is no alert, and every diagnostic.
pub struct Loaded {
    pub config: Option<Config>,
    pub diags: Vec<Diag>,
    /// The configuration is valid for HAProxy but asks for what lbxdp doesn't
    /// do (`Config::refused`): `load` gives no model, and alerts that name the places.
    pub refused: bool,
}

/// Reads, parses and checks `paths` for the running agent, at start and on
/// reload: a configuration that asks for what lbxdp doesn't do (TLS, ...;
/// see `Config::refused`) gives no model, with `[ALERT] file:line:` lines
/// naming the places, so the agent never serves it some other way.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = read(paths)?;
    if loaded.config.take_if(|c| c.listeners == 0).is_some() {
        // HAProxy's words when it is started with such a file.
        loaded.diags.push(Diag::alert(
            &Origin::new(&paths.first().map_or_else(String::new, |p| p.display().to_string()), 1),
            "No enabled listener found (check for 'bind' directives) ! Exiting.",
        ));
    }
    if let Some(c) = loaded.config.take_if(|c| !c.refused.is_empty()) {
        loaded.diags.extend(c.refusal_alerts());
        loaded.refused = true;
    }
    Ok(loaded)
}

/// `-c`: HAProxy's verdict. What the agent would refuse to run is a
/// `[WARNING] file:line:` that says so, and the model stays.
pub fn check(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = read(paths)?;
    if let Some(c) = &loaded.config {
        loaded.diags.extend(c.refusal_warnings());
        loaded.refused = !c.refused.is_empty();
    }
    Ok(loaded)
}

/// Reads, parses and checks `paths` against this machine.
fn read(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let files = expand_paths(paths)?;
    let mut datas = Vec::with_capacity(files.len());
    for f in &files {
        datas.push((f.display().to_string(), read_capped(f)?));
    }
    let sources: Vec<Source<'_>> = datas.iter().map(|(n, d)| Source { name: n, data: d }).collect();
    let env = |name: &str| std::env::var(name).ok();
    // `acl ... -f FILE`: read as HAProxy does, relative to the working directory.
    let read = |path: &str| outside::read(Path::new(path), MAX_FILE_BYTES).ok();
    // `src localhost`: HAProxy resolves names in address patterns to IPv4 as it parses.
    let resolve = |name: &str| {
        use std::net::ToSocketAddrs as _;
        (name, 0).to_socket_addrs().ok()?.find_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
    };
    let (config, mut diags) = match config::parse_sources_resolving(&sources, &env, &read, &resolve) {
        Ok((c, d)) => (Some(c), d),
        Err(d) => (None, d),
    };
    if let Some(c) = &config {
        diags.extend(check_environment(c));
    }
    let config = config.filter(|_| !diags.iter().any(Diag::is_alert));
    Ok(Loaded {
        config,
        diags,
        refused: false,
    })
}

/// HAProxy looks users, groups and certificate files up while it parses, so
/// `haproxy -c` fails when they're missing; lbxdp checks them here.
pub fn check_environment(config: &Config) -> Vec<Diag> {
    let mut out = Vec::new();
    // Inside the chroot the machine's users and files are out of sight; they
    // were checked at start, and a reload can't change who the agent is.
    if outside::confined() {
        return out;
    }
    for r in &config.global.env_refs {
        let problem = match r.kind {
            EnvRefKind::User => match nix::unistd::User::from_name(&r.value) {
                Ok(Some(_)) => None,
                _ => Some(format!(
                    "cannot find user id for '{}': no such user on this machine",
                    r.value
                )),
            },
            EnvRefKind::Group => match nix::unistd::Group::from_name(&r.value) {
                Ok(Some(_)) => None,
                _ => Some(format!(
                    "cannot find group id for '{}': no such group on this machine",
                    r.value
                )),
            },
            EnvRefKind::File => (!Path::new(&r.value).exists())
                .then(|| format!("file '{}' does not exist (HAProxy loads it at start)", r.value)),
        };
        if let Some(msg) = problem {
            out.push(Diag::alert(&r.origin, msg));
        }
    }
    out
}

/// For messages about the load itself (not about a line).
pub fn origin_of(path: &Path) -> Origin {
    Origin::new(&path.display().to_string(), 0)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn directories_expand_to_sorted_cfg_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.cfg", "a.cfg", "notes.txt"] {
            fs::write(dir.path().join(name), "global\n").unwrap();
        }
        let files = expand_paths(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.cfg", "b.cfg"]);
    }

    #[test]
    fn missing_file_is_an_error_not_a_panic() {
        assert!(matches!(
            load(&[PathBuf::from("/nonexistent/lbxdp.cfg")]),
            Err(LoadError::Io { .. })
        ));
    }

    const TLS: &str = "defaults\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n\
                       listen l\n bind 127.0.0.1:8443\n server s 127.0.0.1:443 ssl verify none\n";

    #[test]
    fn a_refused_config_is_valid_for_check_and_refused_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls.cfg");
        fs::write(&path, TLS).unwrap();
        let at = format!("{}:7: 'server l/s':", path.display());

        let checked = check(std::slice::from_ref(&path)).unwrap();
        assert!(checked.config.is_some() && checked.refused);
        let warnings: Vec<String> = checked.diags.iter().map(ToString::to_string).collect();
        assert!(
            warnings.contains(&format!(
                "[WARNING] {at} 'ssl' asks for TLS, which lbxdp doesn't do yet; \
                 lbxdp-agent will refuse to run this configuration"
            )),
            "{warnings:#?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("'verify' asks for TLS")),
            "{warnings:#?}"
        );
        assert!(checked.diags.iter().all(|d| !d.is_alert()), "{warnings:#?}");

        let run = load(&[path]).unwrap();
        assert!(run.config.is_none() && run.refused);
        let alerts: Vec<String> = run
            .diags
            .iter()
            .filter(|d| d.is_alert())
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            alerts.first().map(String::as_str),
            Some(
                format!(
                    "[ALERT] {at} 'ssl' asks for TLS, which lbxdp doesn't do yet; \
                     lbxdp-agent refuses to run this configuration rather than serve plaintext where TLS is asked for"
                )
                .as_str()
            ),
            "{alerts:#?}"
        );
    }
}

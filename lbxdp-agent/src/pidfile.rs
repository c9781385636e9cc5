//! `pidfile` (global) or `-p`: the agent's pid, one line, written at start
//! as HAProxy writes it, and removed at exit when the file is still in sight.
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Written before privileges drop: /run is root's.
    pub fn write(path: &Path) -> anyhow::Result<Self> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing the pidfile {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Inside a chroot, or as a user that may not write /run, this fails
        // quietly; HAProxy leaves its pidfile behind in every case.
        let _ = std::fs::remove_file(&self.path);
    }
}

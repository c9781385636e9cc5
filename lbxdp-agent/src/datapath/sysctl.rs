//! A sysctl the agent changed, put back when it stops: through a file
//! opened while it could, since by then it may run as another user, in a
//! chroot (see `privileges.rs`).
use std::{fs::File, os::unix::fs::FileExt as _};

use tracing::warn;

pub struct Saved {
    pub path: String,
    /// The value to put back.
    pub old: String,
    file: Option<File>,
}

impl Saved {
    pub fn new(path: impl Into<String>, old: impl Into<String>) -> Self {
        let path = path.into();
        let file = std::fs::OpenOptions::new().write(true).open(&path).ok();
        Self {
            path,
            old: old.into(),
            file,
        }
    }

    /// Writes the old value back (an empty one as a lone newline, which is
    /// how the kernel takes "nothing").
    pub fn restore(&self) {
        let value = if self.old.is_empty() { "\n" } else { self.old.as_str() };
        let written = match &self.file {
            Some(f) => f.write_at(value.as_bytes(), 0).map(|_| ()),
            None => std::fs::write(&self.path, value),
        };
        if let Err(e) = written {
            warn!("restoring {} to {:?}: {e}", self.path, self.old);
        }
    }
}

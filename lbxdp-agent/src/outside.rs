//! Paths the agent keeps using after `chroot`: the `-f` configuration (read
//! again on SIGHUP), its pins in bpffs and its handover in /run (removed or
//! rewritten later). Their directories are opened before the chroot and
//! reached through those descriptors afterwards (openat/unlinkat), so the
//! agent sees exactly these directories of the real root and nothing else.
//! Before a chroot, or for a path outside them, the calls are plain std::fs.
use std::{
    ffi::OsStr,
    io::{self, Read as _, Write as _},
    os::{
        fd::{AsFd, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    sync::Mutex,
};

use nix::{
    dir::Dir,
    fcntl::{AtFlags, OFlag, openat, renameat},
    sys::stat::Mode,
    unistd::{UnlinkatFlags, unlinkat},
};

/// The directories kept open, with their real paths; empty until a chroot.
static KEPT: Mutex<Vec<(PathBuf, OwnedFd)>> = Mutex::new(Vec::new());

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Opens `dirs` (each a directory) to be reached after a chroot.
pub fn keep(dirs: &[PathBuf]) -> io::Result<()> {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    for d in dirs {
        if kept.iter().any(|(p, _)| p == d) {
            continue;
        }
        let fd: OwnedFd = std::fs::File::open(d)?.into();
        kept.push((d.clone(), fd));
    }
    Ok(())
}

/// True once directories are kept: the agent is (about to be) chrooted.
pub fn confined() -> bool {
    !KEPT.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
}

/// Runs `f` with the kept directory that holds `path` and the path
/// relative to it, if there is one.
fn with_kept<T>(path: &Path, f: impl FnOnce(&OwnedFd, &Path) -> io::Result<T>) -> Option<io::Result<T>> {
    let kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, fd) = kept
        .iter()
        .filter(|(d, _)| path.starts_with(d))
        .max_by_key(|(d, _)| d.as_os_str().len())?;
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    Some(f(fd, rel))
}

/// Reads at most `limit` bytes (and one more, to tell it was too big).
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let open = |fd: &OwnedFd, rel: &Path| -> io::Result<std::fs::File> {
        let raw = openat(fd.as_fd(), rel, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(errno)?;
        Ok(std::fs::File::from(raw))
    };
    let file = match with_kept(path, open) {
        Some(f) => f?,
        None => std::fs::File::open(path)?,
    };
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data)?;
    Ok(data)
}

/// A directory's entries: (name, is a regular file).
pub fn list(path: &Path) -> io::Result<Vec<(PathBuf, bool)>> {
    let listed = with_kept(path, |fd, rel| {
        let mut dir =
            Dir::openat(fd.as_fd(), rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).map_err(errno)?;
        let mut out = Vec::new();
        for e in dir.iter().flatten() {
            let name = OsStr::from_bytes(e.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let is_file = matches!(e.file_type(), Some(nix::dir::Type::File));
            out.push((path.join(name), is_file));
        }
        Ok(out)
    });
    match listed {
        Some(r) => r,
        None => std::fs::read_dir(path)?
            .map(|e| {
                let e = e?;
                Ok((e.path(), e.file_type()?.is_file()))
            })
            .collect(),
    }
}

/// True when `path` is a directory.
pub fn is_dir(path: &Path) -> io::Result<bool> {
    let found = with_kept(path, |fd, rel| {
        let st = nix::sys::stat::fstatat(fd.as_fd(), rel, AtFlags::empty()).map_err(errno)?;
        Ok(
            nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
                == nix::sys::stat::SFlag::S_IFDIR,
        )
    });
    match found {
        Some(r) => r,
        None => Ok(std::fs::metadata(path)?.is_dir()),
    }
}

/// Writes `path` whole or not at all (a temporary file, then a rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let done = with_kept(path, |fd, rel| {
        let mut rel_tmp = rel.as_os_str().to_owned();
        rel_tmp.push(".tmp");
        let rel_tmp = PathBuf::from(rel_tmp);
        let raw = openat(
            fd.as_fd(),
            &rel_tmp,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(errno)?;
        std::fs::File::from(raw).write_all(data)?;
        renameat(fd.as_fd(), &rel_tmp, fd.as_fd(), rel).map_err(errno)
    });
    match done {
        Some(r) => r,
        None => {
            std::fs::write(&tmp, data)?;
            std::fs::rename(&tmp, path)
        }
    }
}

/// Removes a file (a pin, say).
pub fn remove_file(path: &Path) -> io::Result<()> {
    match with_kept(path, |fd, rel| {
        unlinkat(fd.as_fd(), rel, UnlinkatFlags::NoRemoveDir).map_err(errno)
    }) {
        Some(r) => r,
        None => std::fs::remove_file(path),
    }
}

/// Removes a directory and everything in it; a kept directory itself can
/// only be emptied (its parent is out of reach).
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    if with_kept(path, |_, _| Ok(())).is_none() {
        return std::fs::remove_dir_all(path);
    }
    for (entry, is_file) in list(path)? {
        if is_file || !is_dir(&entry)? {
            remove_file(&entry)?;
        } else {
            remove_dir_all(&entry)?;
        }
    }
    match with_kept(path, |fd, rel| {
        if rel == Path::new(".") {
            return Ok(());
        }
        unlinkat(fd.as_fd(), rel, UnlinkatFlags::RemoveDir).map_err(errno)
    }) {
        Some(r) => r,
        None => Ok(()),
    }
}

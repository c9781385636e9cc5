use std::io;

use thiserror::Error;

/// Why the datapath could not start, worded for the operator: each says what
/// went wrong and what to do about it.
#[derive(Debug, Error)]
pub enum DatapathError {
    #[error("no network interface named {0:?} in this network namespace (see `ip link`)")]
    NoSuchInterface(String),
    #[error(
        "permission denied by the kernel while loading BPF ({0}): run lbxdp-agent as root, \
         or grant it CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
    )]
    Permission(String),
    #[error("the kernel refused the XDP program: {0}")]
    Rejected(String),
    #[error("this kernel cannot load lbxdp's BPF object ({0}): lbxdp needs Linux >= 5.15 with BTF")]
    Unsupported(String),
    #[error("cannot attach XDP to {iface} in {mode} mode: {reason}")]
    Attach {
        iface: String,
        mode: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}

impl DatapathError {
    /// Sorts an aya error by its root cause: a missing privilege looks the same
    /// (EPERM) whether the map or the program load hit it first.
    pub(crate) fn classify(err: &(dyn std::error::Error + 'static), rejected: bool) -> Self {
        let text = chain(err);
        // The verifier answers EACCES or EINVAL, never EPERM; EPERM is always a
        // missing capability.
        match (root_errno(err), rejected) {
            (Some(libc::EPERM), _) | (Some(libc::EACCES), false) => Self::Permission(text),
            (_, true) => Self::Rejected(text),
            (Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP), false) => Self::Unsupported(text),
            _ => Self::Other(text),
        }
    }
}

/// The errno at the bottom of an error chain, if it is an io::Error.
fn root_errno(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(err);
    let mut errno = None;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            errno = io.raw_os_error().or(errno);
        }
        cur = e.source();
    }
    errno
}

/// "outer: inner: innermost", skipping links that only repeat their source.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("creating map PROTO_STATS")]
    struct Outer(#[source] io::Error);

    #[test]
    fn eperm_anywhere_in_the_chain_is_a_permission_error() {
        let e = Outer(io::Error::from_raw_os_error(libc::EPERM));
        let d = DatapathError::classify(&e, false);
        assert!(matches!(d, DatapathError::Permission(_)), "{d:?}");
        assert!(d.to_string().contains("CAP_BPF"), "{d}");
    }

    #[test]
    fn a_verifier_rejection_keeps_its_log() {
        #[derive(Debug, Error)]
        #[error("the BPF_PROG_LOAD syscall returned Permission denied. Verifier output: R1 invalid mem access")]
        struct Load;
        let d = DatapathError::classify(&Load, true);
        assert!(matches!(d, DatapathError::Rejected(_)), "{d:?}");
        assert!(d.to_string().contains("R1 invalid mem access"), "{d}");
    }

    #[test]
    fn einval_means_the_kernel_lacks_something() {
        let e = Outer(io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(
            DatapathError::classify(&e, false),
            DatapathError::Unsupported(_)
        ));
    }
}

//! The proxy's open sessions, for `show sess`: who, through which frontend
//! to which server, since when. A session is listed from accept to close.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Instant,
};

struct Entry {
    client: SocketAddr,
    frontend: Arc<str>,
    backend: Option<Arc<str>>,
    server: Option<Arc<str>>,
    since: Instant,
}

#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

/// Removes its session from the registry when dropped, whatever path it ends by.
pub(crate) struct Listed<'a> {
    reg: &'a Registry,
    id: u64,
}

impl Registry {
    pub(crate) fn add(&self, client: SocketAddr, frontend: &Arc<str>, backend: Option<&Arc<str>>) -> Listed<'_> {
        let id = self.next.fetch_add(1, Relaxed);
        if let Ok(mut m) = self.open.lock() {
            m.insert(
                id,
                Entry {
                    client,
                    frontend: frontend.clone(),
                    backend: backend.cloned(),
                    server: None,
                    since: Instant::now(),
                },
            );
        }
        Listed { reg: self, id }
    }

    /// HAProxy's `show sess` lines, without its internals (buffers, tasks):
    /// `0x<id>: proto=tcpv4 src=A:P fe=F be=B srv=S age=Ns`.
    pub(crate) fn show(&self) -> String {
        let mut out = String::new();
        let Ok(m) = self.open.lock() else {
            return out;
        };
        for (id, e) in m.iter() {
            let proto = if e.client.is_ipv4() { "tcpv4" } else { "tcpv6" };
            let _ = writeln!(
                out,
                "0x{id:x}: proto={proto} src={} fe={} be={} srv={} age={}s",
                e.client,
                e.frontend,
                e.backend.as_deref().unwrap_or("<NONE>"),
                e.server.as_deref().unwrap_or("<none>"),
                e.since.elapsed().as_secs()
            );
        }
        out
    }
}

impl Listed<'_> {
    pub(crate) fn set_server(&self, name: &Arc<str>) {
        if let Ok(mut m) = self.reg.open.lock()
            && let Some(e) = m.get_mut(&self.id)
        {
            e.server = Some(name.clone());
        }
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.reg.open.lock() {
            m.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_a_session_until_it_ends() {
        let r = Registry::default();
        let a = r.add("198.18.0.1:4000".parse().unwrap(), &"fe".into(), Some(&"be".into()));
        a.set_server(&"s1".into());
        let shown = r.show();
        assert!(
            shown.starts_with("0x0: proto=tcpv4 src=198.18.0.1:4000 fe=fe be=be srv=s1 age="),
            "{shown}"
        );
        drop(a);
        assert_eq!(r.show(), "");
    }
}

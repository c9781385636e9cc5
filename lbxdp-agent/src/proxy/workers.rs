//! The proxy's threads: one current-thread tokio runtime per thread, each
//! running the accept loops of its own SO_REUSEPORT listeners. A session
//! lives on the thread that accepted it, as with HAProxy's threads and
//! pingora's no-steal runtime: no work stealing and no cross-thread
//! wake-ups, which cost more than they bring for short connections (measured
//! on loopback: about 15% less CPU per `Connection: close` request than a
//! multi-thread runtime).
use std::{io, thread};

use tokio::{runtime::Handle, sync::oneshot};

pub(crate) struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
}

impl Workers {
    pub(crate) fn start(n: usize) -> io::Result<Workers> {
        let mut w = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
        };
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            w.handles.push(rt.handle().clone());
            w.stops.push(stop);
            // The runtime drops on its own thread when told to stop (or when
            // `Workers` is gone), cancelling whatever sessions are left.
            thread::Builder::new().name(format!("lbxdp-proxy-{i}")).spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                })
            })?;
        }
        Ok(w)
    }

    /// The runtime of the `i`-th listener of a bind, round the threads.
    pub(crate) fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }
}

impl Drop for Workers {
    /// Not joined: this may run inside the agent's own runtime, where
    /// blocking is wrong; each thread ends as soon as its runtime drops.
    fn drop(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
    }
}

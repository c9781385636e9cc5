//! The wait queue of a backend: sessions that found every server at its
//! `maxconn` wait here, in arrival order, until a slot frees or `timeout
//! queue` expires.
//!
//! As in HAProxy there are two kinds of waiters in one order: those that may
//! take any server (round robin, leastconn, first, random: the backend's
//! queue) and those bound to one server (a hash chose it: that server's
//! queue). A freed slot on server S goes to the oldest waiter that is either
//! bound to S or free to take any server. This module is the bookkeeping
//! only; the backend ([`super::backend`]) holds it under its lock.
use std::collections::VecDeque;

use tokio::sync::oneshot;

/// What a waiter is told when its turn comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A slot on this server is reserved for the waiter.
    Server(usize),
    /// The server it was bound to went down: choose again.
    Repick,
}

#[derive(Debug)]
pub struct Waiter {
    pub id: u64,
    /// None: any server of the backend will do.
    pub target: Option<usize>,
    pub tx: oneshot::Sender<Grant>,
}

#[derive(Debug, Default)]
pub struct Queue {
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

/// Where a new waiter stands, for the log's srv_queue / backend_queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Waiters of the same kind (same server, or backend-wide) ahead of it.
    pub ahead: u64,
}

impl Queue {
    pub fn push(&mut self, target: Option<usize>) -> (u64, oneshot::Receiver<Grant>, Position) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        let ahead = self.waiters.iter().filter(|w| w.target == target).count() as u64;
        self.waiters.push_back(Waiter { id, target, tx });
        (id, rx, Position { ahead })
    }

    /// Takes a waiter out (it timed out or went away). Returns its target
    /// if it was still waiting, None if it had already been served.
    pub fn remove(&mut self, id: u64) -> Option<Option<usize>> {
        let pos = self.waiters.iter().position(|w| w.id == id)?;
        self.waiters.remove(pos).map(|w| w.target)
    }

    /// The oldest waiter a free slot on `server` may go to. `any_ok`: the
    /// server is one that backend-wide waiters may use (it is in the set the
    /// algorithm chooses from, e.g. not a backup while actives are up).
    pub fn pop_for(&mut self, server: usize, any_ok: bool) -> Option<Waiter> {
        let pos = self
            .waiters
            .iter()
            .position(|w| w.target == Some(server) || (any_ok && w.target.is_none()))?;
        self.waiters.remove(pos)
    }

    /// Every waiter bound to `server` (it went down).
    pub fn drain_bound_to(&mut self, server: usize) -> Vec<Waiter> {
        let (bound, rest): (Vec<Waiter>, Vec<Waiter>) = self.waiters.drain(..).partition(|w| w.target == Some(server));
        self.waiters = rest.into();
        bound
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    #[cfg(test)]
    /// Waiters bound to `server`.
    pub fn len_bound_to(&self, server: usize) -> usize {
        self.waiters.iter().filter(|w| w.target == Some(server)).count()
    }

    #[cfg(test)]
    /// Backend-wide waiters.
    pub fn len_any(&self) -> usize {
        self.waiters.iter().filter(|w| w.target.is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_across_kinds() {
        let mut q = Queue::default();
        let (a, _ra, pa) = q.push(None);
        let (b, _rb, pb) = q.push(Some(1));
        let (c, _rc, pc) = q.push(None);
        let (_d, _rd, pd) = q.push(Some(1));
        assert_eq!((pa.ahead, pb.ahead, pc.ahead, pd.ahead), (0, 0, 1, 1));
        assert_eq!(q.len_any(), 2);
        assert_eq!(q.len_bound_to(1), 2);
        // A slot on server 0 goes to the oldest free waiter; on server 1, to
        // the oldest of free and bound ones.
        assert_eq!(q.pop_for(0, true).map(|w| w.id), Some(a));
        assert_eq!(q.pop_for(1, true).map(|w| w.id), Some(b));
        // A server backend-wide waiters may not use serves only its own.
        assert_eq!(q.pop_for(2, false).map(|w| w.id), None);
        assert_eq!(q.pop_for(1, false).map(|w| w.id), Some(3));
        assert_eq!(q.remove(c), Some(None));
        assert_eq!(q.remove(c), None);
        assert!(q.is_empty());
    }

    #[test]
    fn drain_bound() {
        let mut q = Queue::default();
        q.push(Some(2));
        q.push(None);
        q.push(Some(2));
        let gone = q.drain_bound_to(2);
        assert_eq!(gone.len(), 2);
        assert_eq!(q.len(), 1);
        assert_eq!(q.len_any(), 1);
    }

    #[test]
    fn grant_reaches_the_waiter_or_fails_if_it_left() {
        let mut q = Queue::default();
        let (_, mut rx, _) = q.push(None);
        let w = q.pop_for(0, true).unwrap();
        assert!(w.tx.send(Grant::Server(0)).is_ok());
        assert_eq!(rx.try_recv(), Ok(Grant::Server(0)));
        let (_, rx, _) = q.push(None);
        drop(rx);
        let w = q.pop_for(0, true).unwrap();
        assert!(w.tx.send(Grant::Server(0)).is_err());
    }
}

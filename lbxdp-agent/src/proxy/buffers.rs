//! The buffered engine's buffers, kept per thread and reused from one
//! session to the next, as HAProxy draws its buffers from a pool: with
//! short connections, a fresh 16 KiB allocation and its free per direction
//! showed in profiles (malloc, free, and glibc consolidating its heap for
//! every allocation that size).
//!
//! A session runs on the thread that accepted it (see `workers`), so a
//! thread-local pool needs no lock; a buffer dropped on another thread (the
//! agent's own runtime, in tests) just joins that thread's pool.
use std::cell::RefCell;

/// The size of a pooled buffer: enough for a request or a reply. A
/// direction that fills it grows its buffer, which is then not pooled.
pub(super) const POOLED: usize = 16 * 1024;

/// Buffers kept per thread (4 MiB): more sessions than that at once take
/// fresh ones, and their surplus is freed when they end.
const KEPT: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of [`POOLED`] bytes (its contents are whatever the last user
/// left; callers read into it before looking). Gives itself back when dropped.
pub(super) struct Buffer(Vec<u8>);

impl Buffer {
    pub(super) fn take() -> Buffer {
        // `try_with`: during a thread's teardown the pool may be gone.
        let pooled = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten();
        Buffer(pooled.unwrap_or_else(|| vec![0; POOLED]))
    }

    /// Grows the buffer to `size` bytes (it then leaves the pool for good).
    pub(super) fn grow(&mut self, size: usize) {
        if size > self.0.len() {
            self.0.resize(size, 0);
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.0.len() != POOLED {
            return;
        }
        let buf = std::mem::take(&mut self.0);
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < KEPT {
                p.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_reused_unless_it_grew() {
        let mut a = Buffer::take();
        a.as_mut_slice()[0] = 7;
        let at = a.as_slice().as_ptr();
        drop(a);
        let b = Buffer::take();
        assert_eq!(b.as_slice().as_ptr(), at);
        assert_eq!(b.as_slice().len(), POOLED);
        let mut c = Buffer::take();
        c.grow(64 * 1024);
        assert_eq!(c.as_slice().len(), 64 * 1024);
        drop(b);
        drop(c);
        // Only the pooled-size one came back.
        assert_eq!(POOL.with(|p| p.borrow().len()), 1);
    }
}

//! What bounds a client: the memory pool every large allocation is charged to, the per-session
//! rate limit, and the value range the network can take without overflowing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes the server may hold for clients (direction sets, their lifted copies, request bodies
/// being read). A [`Charge`] holds part of it until dropped.
pub(crate) struct MemoryPool {
    used: AtomicUsize,
    cap: usize,
}

impl MemoryPool {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(MemoryPool { used: AtomicUsize::new(0), cap })
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(bytes).filter(|&n| n <= self.cap))
            .is_ok()
    }

    /// A charge of `bytes`, or `None` when the pool cannot hold them.
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        self.take(bytes).then(|| Charge { pool: self.clone(), bytes })
    }
}

/// Bytes held against a [`MemoryPool`]; released on drop.
pub(crate) struct Charge {
    pool: Arc<MemoryPool>,
    bytes: usize,
}

impl Charge {
    /// Grows the charge by `more` bytes, or leaves it as it is when the pool is full.
    pub(crate) fn grow(&mut self, more: usize) -> bool {
        let ok = self.pool.take(more);
        if ok {
            self.bytes += more;
        }
        ok
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.pool.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Token bucket with burst = rate. A batch larger than the burst is admitted when the bucket
/// is full and leaves it in debt, so any batch size works and the long-run rate holds.
pub(crate) struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64) -> Self {
        Bucket { rate, tokens: rate, last: Instant::now() }
    }

    /// Takes `n` tokens, or says how long until the batch would be admitted.
    pub(crate) fn take(&mut self, n: u64) -> Result<(), Duration> {
        if self.rate <= 0.0 || n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        let need = (n as f64).min(self.rate);
        if self.tokens >= need {
            self.tokens -= n as f64;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - self.tokens) / self.rate))
        }
    }

    /// Gives back `n` tokens taken for work that was not done.
    pub(crate) fn refund(&mut self, n: u64) {
        if self.rate > 0.0 {
            self.tokens = (self.tokens + n as f64).min(self.rate);
        }
    }
}

/// Refuses values whose magnitude exceeds `max` (already finite-checked by the oracle's own
/// checks): such inputs would overflow to infinity inside the network and yield a change bit
/// computed from NaN. The message becomes the 400 answer.
pub(crate) fn check_range(what: &str, v: &[f32], max: f32) -> Result<(), String> {
    match v.iter().position(|x| x.abs() > max) {
        Some(i) => Err(format!("{what}: value {i} = {} is outside [-{max}, {max}]", v[i])),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_refuses_past_its_cap_and_releases_on_drop() {
        let pool = MemoryPool::new(100);
        let mut a = pool.charge(60).unwrap();
        assert!(pool.charge(50).is_none());
        assert!(!a.grow(41));
        assert!(a.grow(40));
        assert_eq!(pool.used(), 100);
        drop(a);
        assert_eq!(pool.used(), 0);
        assert!(pool.charge(100).is_some());
    }

    #[test]
    fn huge_finite_values_are_refused() {
        assert!(check_range("input", &[0.0, 3e38], 1e5).unwrap_err().contains("value 1"));
        assert!(check_range("input", &[-1e5, 1e5], 1e5).is_ok());
    }
}

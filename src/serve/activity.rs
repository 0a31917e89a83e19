//! Counting what keeps `berth serve` alive: requests in flight, open streams, hijacked
//! connections. The process may exit only when the count has been zero for the idle timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Clone)]
pub struct Activity(Arc<Inner>);

struct Inner {
    busy: AtomicUsize,
    last_idle: Mutex<Instant>,
    changed: Notify,
}

/// Held while something is going on; dropping it may make the process idle.
pub struct ActivityGuard(Activity);

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity(Arc::new(Inner {
            busy: AtomicUsize::new(0),
            last_idle: Mutex::new(Instant::now()),
            changed: Notify::new(),
        }))
    }

    pub fn guard(&self) -> ActivityGuard {
        self.0.busy.fetch_add(1, Ordering::SeqCst);
        ActivityGuard(self.clone())
    }

    pub fn busy(&self) -> usize {
        self.0.busy.load(Ordering::SeqCst)
    }

    /// How long nothing has been going on (zero while busy).
    pub fn idle_for(&self) -> Duration {
        if self.busy() > 0 {
            return Duration::ZERO;
        }
        self.0
            .last_idle
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or(Duration::ZERO)
    }

    /// Wait until a guard is dropped.
    pub async fn changed(&self) {
        self.0.changed.notified().await
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let inner = &(self.0).0;
        if inner.busy.fetch_sub(1, Ordering::SeqCst) == 1
            && let Ok(mut t) = inner.last_idle.lock()
        {
            *t = Instant::now();
        }
        inner.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_guards() {
        let a = Activity::new();
        let g1 = a.guard();
        let g2 = a.guard();
        assert_eq!(a.busy(), 2);
        assert_eq!(a.idle_for(), Duration::ZERO);
        drop(g1);
        assert_eq!(a.busy(), 1);
        drop(g2);
        assert_eq!(a.busy(), 0);
        assert!(a.idle_for() < Duration::from_secs(1));
    }
}

//! The memory request bodies may hold at once: their decompressed text, the JSON trees
//! being read and the parsed events, until the request is answered. A request asks for
//! each piece before it exists; when the budget is spent it waits a little for other
//! requests to finish, then is refused (503 with Retry-After), so a flood of large or
//! compressed bodies costs a bounded amount of memory instead of all of it.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a request waits for memory held by others before it is refused.
pub const WAIT_MAX: Duration = Duration::from_secs(2);

pub struct Budget {
    available: Mutex<usize>,
    returned: Condvar,
}

impl Budget {
    pub fn new(bytes: usize) -> Arc<Budget> {
        Arc::new(Budget { available: Mutex::new(bytes), returned: Condvar::new() })
    }

    /// An empty reservation that may grow until `deadline` (a past deadline: never
    /// waits, for callers on the async threads).
    pub fn reservation(self: &Arc<Budget>, deadline: Instant) -> Reservation {
        Reservation { budget: self.clone(), bytes: 0, deadline }
    }

    fn take(&self, bytes: usize, deadline: Instant) -> bool {
        let mut available = self.available.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if *available >= bytes {
                *available -= bytes;
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            available = self
                .returned
                .wait_timeout(available, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        *self.available.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += bytes;
        self.returned.notify_all();
    }
}

/// Bytes one request holds; all given back when it is dropped (the request answered,
/// failed or cancelled).
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
    deadline: Instant,
}

impl Reservation {
    /// The bytes held.
    pub fn held(&self) -> usize {
        self.bytes
    }

    /// Whether it draws on `budget`.
    pub fn draws_on(&self, budget: &Arc<Budget>) -> bool {
        Arc::ptr_eq(&self.budget, budget)
    }

    /// From now on, growing may wait for memory until `deadline` (only on a blocking
    /// thread: waiting blocks it).
    pub fn wait_until(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
}

impl upshot_model::batch::MemoryBudget for Reservation {
    fn reserve(&mut self, bytes: usize) -> bool {
        if !self.budget.take(bytes, self.deadline) {
            return false;
        }
        self.bytes += bytes;
        true
    }

    fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.budget.give_back(bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upshot_model::batch::MemoryBudget;

    #[test]
    fn a_reservation_waits_for_memory_given_back_and_is_refused_past_its_deadline() {
        let budget = Budget::new(100);
        let mut first = budget.reservation(Instant::now());
        assert!(first.reserve(80));
        let mut second = budget.reservation(Instant::now());
        assert!(!second.reserve(30), "only 20 bytes are free");
        assert!(second.reserve(20));
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.reservation(Instant::now() + Duration::from_secs(30)).reserve(50))
        };
        first.release(30);
        drop(first);
        assert!(waiting.join().expect("the waiting thread"), "memory given back lets a waiting request go on");
        drop(second);
        assert_eq!(*budget.available.lock().expect("unpoisoned"), 100, "every byte comes back");
    }
}

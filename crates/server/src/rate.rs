//! Per-key rate limits: a token bucket per key hash, refilled continuously.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Keys tracked at most; past this, buckets that are full again are forgotten.
const KEYS_TRACKED_MAX: usize = 100_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
}

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(per_second).max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `events` tokens from the key's bucket, or says after how many whole
    /// seconds enough will be there (nothing is taken then).
    pub fn take(&self, key: [u8; 32], events: usize, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().expect("no thread panics while holding the rate limiter");
        if buckets.len() >= KEYS_TRACKED_MAX && !buckets.contains_key(&key) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        let wanted = events as f64;
        if wanted <= bucket.tokens {
            bucket.tokens -= wanted;
            return Ok(());
        }
        let missing = wanted.min(self.burst) - bucket.tokens;
        Err((missing / self.per_second).ceil().max(1.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_key_past_its_burst_waits_for_its_rate() {
        let limiter = RateLimiter::new(10, 20);
        let start = Instant::now();
        let key = [1u8; 32];
        assert_eq!(limiter.take(key, 20, start), Ok(()));
        assert_eq!(limiter.take(key, 5, start), Err(1));
        assert_eq!(limiter.take([2u8; 32], 5, start), Ok(()), "another key has its own bucket");
        assert_eq!(limiter.take(key, 5, start + Duration::from_millis(500)), Ok(()));
        assert_eq!(limiter.take(key, 20, start + Duration::from_millis(500)), Err(2));
    }
}

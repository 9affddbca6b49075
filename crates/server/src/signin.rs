//! How often the dashboard's sign-in may be tried: failures are counted per client
//! address, per site asked for, and over everyone; past a few free failures each of
//! those waits twice as long as before (up to a cap) before its next try. A person who
//! mistyped waits seconds; one client guessing gets ~100 tries a day; a botnet spread
//! over many addresses still meets the per-site and overall limits; and one attacker no
//! longer locks every administrator out (the old limit was one server-wide counter).
//! A success clears its client's and site's failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fewest characters the admin password may have: it signs in to every site, and
/// with the limits below an attacker gets well under 10^5 guesses a year.
pub const ADMIN_PASSWORD_CHARS_MIN: usize = 16;
/// ...and the fewest distinct characters (no `aaaaaaaaaaaaaaaa`).
pub const ADMIN_PASSWORD_DISTINCT_CHARS_MIN: usize = 8;

/// Whether a password is strong enough to be the admin password; why not, if it is not.
pub fn admin_password_weakness(password: &str) -> Option<String> {
    let chars = password.chars().count();
    let distinct = password.chars().collect::<std::collections::HashSet<_>>().len();
    if chars < ADMIN_PASSWORD_CHARS_MIN {
        return Some(format!(
            "the admin password has {chars} characters; it needs at least {ADMIN_PASSWORD_CHARS_MIN} \
             (e.g. `head -c 18 /dev/urandom | base64`)"
        ));
    }
    if distinct < ADMIN_PASSWORD_DISTINCT_CHARS_MIN {
        return Some(format!(
            "the admin password has only {distinct} different characters; it needs at least \
             {ADMIN_PASSWORD_DISTINCT_CHARS_MIN} (e.g. `head -c 18 /dev/urandom | base64`)"
        ));
    }
    None
}

/// Who or what failures are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Scope {
    Client(IpAddr),
    Site(String),
    Everyone,
}

/// Free failures, and the longest wait, per scope.
struct Policy {
    free_failures: u32,
    wait_max: Duration,
}

fn policy(scope: &Scope) -> Policy {
    match scope {
        Scope::Client(_) => Policy { free_failures: 10, wait_max: Duration::from_secs(15 * 60) },
        Scope::Site(_) => Policy { free_failures: 30, wait_max: Duration::from_secs(60) },
        Scope::Everyone => Policy { free_failures: 200, wait_max: Duration::from_secs(10) },
    }
}

struct Failures {
    count: u32,
    last: Instant,
    next_try: Instant,
}

/// Failures are forgotten a day after the last one.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Scopes tracked at most; past it, the oldest are forgotten first.
const SCOPES_TRACKED_MAX: usize = 100_000;

#[derive(Default)]
pub struct SignInGuard {
    failures: Mutex<HashMap<Scope, Failures>>,
}

/// The scopes a try counts in. An IPv6 client is its /64 (one subscriber's network:
/// its addresses are free to take). The site is the one asked for when it names a
/// site id; anything else (empty, too long, not an id: admin-password guesses vary it
/// at will) counts as one scope, so varying it gains nothing and stores nothing.
fn scopes(client: IpAddr, site: &str) -> [Scope; 3] {
    let client = match client {
        IpAddr::V6(address) if address.to_ipv4_mapped().is_none() => {
            let segments = address.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(segments[0], segments[1], segments[2], segments[3], 0, 0, 0, 0))
        }
        IpAddr::V6(address) => IpAddr::V4(address.to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)),
        v4 => v4,
    };
    let site = if upshot_model::site::validate_site_id(site).is_ok() { site } else { "" };
    [Scope::Client(client), Scope::Site(site.to_string()), Scope::Everyone]
}

impl SignInGuard {
    /// `Err(wait)` when a try from `client` for `site` must wait that long first.
    pub fn check(&self, client: IpAddr, site: &str, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let wait = scopes(client, site)
            .iter()
            .filter_map(|scope| failures.get(scope))
            .map(|entry| entry.next_try.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    pub fn failed(&self, client: IpAddr, site: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= SCOPES_TRACKED_MAX {
            failures.retain(|_, entry| now.saturating_duration_since(entry.last) < FORGET_AFTER);
            if failures.len() >= SCOPES_TRACKED_MAX {
                let oldest = failures.iter().min_by_key(|(_, entry)| entry.last).map(|(scope, _)| scope.clone());
                oldest.map(|scope| failures.remove(&scope));
            }
        }
        for scope in scopes(client, site) {
            let rule = policy(&scope);
            let entry = failures.entry(scope).or_insert(Failures { count: 0, last: now, next_try: now });
            if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
            let past_free = entry.count.saturating_sub(rule.free_failures);
            if past_free > 0 {
                let wait = Duration::from_secs(1u64 << past_free.min(20)).min(rule.wait_max);
                entry.next_try = now + wait;
            }
        }
    }

    pub fn succeeded(&self, client: IpAddr, site: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The same scopes the failures were counted in (the /64, the site or "").
        let [client, site, _everyone] = scopes(client, site);
        failures.remove(&client);
        failures.remove(&site);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_guessing_client_waits_longer_each_time_and_locks_out_nobody_else() {
        let guard = SignInGuard::default();
        let start = Instant::now();
        for _ in 0..10 {
            assert!(guard.check(address(1), "shop", start).is_ok());
            guard.failed(address(1), "shop", start);
        }
        guard.failed(address(1), "shop", start);
        assert_eq!(guard.check(address(1), "shop", start), Err(Duration::from_secs(2)));
        guard.failed(address(1), "shop", start);
        assert_eq!(guard.check(address(1), "shop", start), Err(Duration::from_secs(4)));
        assert!(guard.check(address(2), "shop", start).is_ok(), "another client is not held up");
        for _ in 0..30 {
            guard.failed(address(1), "shop", start);
        }
        let wait = guard.check(address(1), "shop", start).expect_err("waits");
        assert_eq!(wait, Duration::from_secs(15 * 60), "capped");
        guard.succeeded(address(1), "shop");
        assert!(guard.check(address(1), "shop", start).is_ok());
    }

    #[test]
    fn many_clients_guessing_one_site_slow_that_site_only() {
        let guard = SignInGuard::default();
        let start = Instant::now();
        for client in 0..40 {
            guard.failed(address(client), "shop", start);
        }
        assert!(guard.check(address(100), "shop", start).is_err(), "the site's guesses are slowed");
        assert!(guard.check(address(100), "other", start).is_ok());
        assert!(guard.check(address(100), "shop", start + Duration::from_secs(61)).is_ok(), "a minute at most");
    }

    #[test]
    fn an_ipv6_network_is_one_client_and_made_up_site_names_one_site() {
        let guard = SignInGuard::default();
        let start = Instant::now();
        for host in 0..12u16 {
            let address = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, host]);
            guard.failed(address, &format!("made-up-site-{host}-{}", "x".repeat(100)), start);
        }
        let neighbour = IpAddr::from([0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 1]);
        assert!(guard.check(neighbour, "shop", start).is_err(), "the same /64 waits");
        let elsewhere = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(guard.check(elsewhere, "shop", start).is_ok());
        assert_eq!(guard.failures.lock().expect("unpoisoned").len(), 3, "one client, one site scope, everyone");
        guard.succeeded(neighbour, "not a site id!");
        assert!(guard.check(neighbour, "shop", start).is_ok(), "a success clears the /64's failures");
    }

    #[test]
    fn the_admin_password_needs_16_characters_of_8_kinds() {
        assert!(admin_password_weakness("short-password").is_some());
        assert!(admin_password_weakness("aaaaaaaaaaaaaaaaaaaa").is_some());
        assert!(admin_password_weakness("correct-horse-battery").is_none());
    }
}

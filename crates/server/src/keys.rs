//! Which site a key opens, and with which role. Keys are stored hashed (SHA-256); the
//! presented key's hash is found in a map and then compared in constant time, so the
//! answer's timing says nothing about how much of a stored hash matched.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use upshot_store::{SiteRecord, Store, StoreError};

pub use upshot_model::KeyRole;

#[derive(Clone)]
pub struct Authorized {
    pub site: Arc<SiteRecord>,
    pub role: KeyRole,
    /// The key's hash: the rate limiter's bucket.
    pub key_hash: [u8; 32],
}

/// Every site's keys, loaded from the data dir.
#[derive(Default)]
pub struct KeyRing {
    by_hash: HashMap<[u8; 32], (Arc<SiteRecord>, KeyRole)>,
    sites: HashMap<String, Arc<SiteRecord>>,
}

fn decode_hex_hash(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[index] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Equal in time independent of where the first difference is.
pub fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter().zip(right).fold(0u8, |difference, (a, b)| difference | (a ^ b)) == 0
}

impl KeyRing {
    pub fn load(store: &Store) -> Result<KeyRing, StoreError> {
        let mut ring = KeyRing::default();
        for site in store.site_ids()? {
            let record = Arc::new(store.load_site(&site)?);
            for (hex, role) in
                [(&record.public_key_sha256, KeyRole::Public), (&record.secret_key_sha256, KeyRole::Secret)]
            {
                match decode_hex_hash(hex) {
                    Some(hash) => {
                        ring.by_hash.insert(hash, (record.clone(), role));
                    }
                    None => {
                        tracing::warn!(site = %site, "a stored key hash is not 64 hex digits; that key opens nothing")
                    }
                }
            }
            ring.sites.insert(site, record);
        }
        Ok(ring)
    }

    pub fn authorize(&self, key: &str) -> Option<Authorized> {
        let hash = sha256(key);
        let (stored, (site, role)) = self.by_hash.get_key_value(&hash)?;
        constant_time_equal(stored, &hash).then(|| Authorized { site: site.clone(), role: *role, key_hash: hash })
    }

    pub fn site(&self, site: &str) -> Option<Arc<SiteRecord>> {
        self.sites.get(site).cloned()
    }

    /// Every site's id, sorted.
    pub fn site_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.sites.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub fn site_count(&self) -> usize {
        self.sites.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equal_compares_whole_slices() {
        assert!(constant_time_equal(b"abc", b"abc"));
        assert!(!constant_time_equal(b"abc", b"abd"));
        assert!(!constant_time_equal(b"abc", b"ab"));
        assert!(!constant_time_equal(b"xbc", b"abc"));
    }

    #[test]
    fn hex_hashes_decode_or_are_refused() {
        assert_eq!(decode_hex_hash(&"ff".repeat(32)), Some([255u8; 32]));
        assert_eq!(decode_hex_hash("ff"), None);
        assert_eq!(decode_hex_hash(&"zz".repeat(32)), None);
    }
}

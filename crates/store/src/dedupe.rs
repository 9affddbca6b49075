//! The in-memory set of event ids a site has taken, as 128-bit digests: two
//! independent SipHash-1-3 values of the id. At 100 million events the chance that two
//! different ids share a digest is about 1e-23, far below the odds of a disk flipping
//! the bit that would tell them apart, and the set costs ~20 bytes an event instead of
//! the ids themselves. It lives only in memory (rebuilt from the segments' event-id
//! columns and the log when a writer first appends to a site), so the digest need not
//! be stable across versions.

use std::hash::{BuildHasherDefault, Hasher};

use upshot_model::KeyRole;

/// The digests are already uniformly random: use their low bits as the hash.
#[derive(Default, Clone, Copy)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (index, byte) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*byte) << (8 * index);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

type DigestSet = std::collections::HashSet<u128, BuildHasherDefault<DigestHasher>>;

/// Shards of the set, by a digest's top byte.
const SHARDS: usize = 256;

/// The set of digests, split in 256 shards so that growing it rehashes one small shard
/// at a time: one big table would stop appends for a tenth of a second whenever it
/// doubled at millions of ids (seen as the collector's p99 acknowledgement latency).
#[derive(Clone)]
pub(crate) struct IdSet {
    shards: Vec<DigestSet>,
    len: usize,
}

impl Default for IdSet {
    fn default() -> IdSet {
        IdSet { shards: vec![DigestSet::default(); SHARDS], len: 0 }
    }
}

impl IdSet {
    fn shard(id: u128) -> usize {
        (id >> 120) as usize
    }

    pub(crate) fn contains(&self, id: &u128) -> bool {
        self.shards[IdSet::shard(*id)].contains(id)
    }

    /// True when the id was not in the set.
    pub(crate) fn insert(&mut self, id: u128) -> bool {
        let inserted = self.shards[IdSet::shard(id)].insert(id);
        self.len += usize::from(inserted);
        inserted
    }

    pub(crate) fn extend(&mut self, other: IdSet) {
        for id in other.shards.into_iter().flatten() {
            self.insert(id);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The digest of an event id taken through `role`'s key: the two roles hash with
/// different salts, so an id taken through the public key never matches one sent with
/// the secret key (SPEC section 7).
/// The wrapping sum of the events' digests: the same for the same events in any order
/// or files, different (but for a 2^-128 chance) when one is added or removed.
pub fn content_digest<'a>(events: impl Iterator<Item = &'a upshot_model::Event>) -> u128 {
    events.fold(0u128, |sum, event| sum.wrapping_add(digest(event.event_id.as_bytes(), event.sent_with)))
}

pub(crate) fn digest(event_id: &[u8], role: KeyRole) -> u128 {
    let half = |salt: u8| {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u8(salt);
        hasher.write(event_id);
        hasher.finish()
    };
    match role {
        KeyRole::Secret => (u128::from(half(0x5a)) << 64) | u128::from(half(0xa5)),
        KeyRole::Public => (u128::from(half(0x3c)) << 64) | u128::from(half(0xc3)),
    }
}

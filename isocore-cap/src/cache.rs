//! Caches and budgets: what makes the second check of a chain cheap and the first check of a
//! garbage chain bounded.
//!
//! All tables are ordered maps with a fixed capacity and oldest-first eviction, so memory is
//! bounded and behaviour never depends on a hasher's random seed.

use crate::LinkId;
use crate::chain::UnverifiedChain;
use crate::error::Refused;
use crate::revoke::Version;
use crate::scope::Capability;
use crate::verify::{Context, verify_with};
use alloc::collections::{BTreeMap, VecDeque};
use ed25519_dalek::VerifyingKey;

/// A bounded map with oldest-first eviction.
#[derive(Clone, Debug)]
struct Bounded<K, V> {
    map: BTreeMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Ord + Clone, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded { map: BTreeMap::new(), order: VecDeque::new(), capacity }
    }

    fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }

    /// Rare (a revocation), so the linear scan of `order` is acceptable.
    fn remove(&mut self, key: &K) {
        if self.map.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

/// Decompressed Ed25519 keys by their encoding. Decompression costs about 3 µs; a hit
/// costs a lookup. Weak (small-order) and invalid keys are refused, never cached.
#[derive(Clone, Debug)]
pub struct KeyCache {
    keys: Bounded<[u8; 32], VerifyingKey>,
}

impl KeyCache {
    /// A cache holding at most `capacity` keys (0: decompress every time).
    pub fn new(capacity: usize) -> Self {
        KeyCache { keys: Bounded::new(capacity) }
    }

    /// The key, if `bytes` is a valid point of large order.
    pub fn get(&mut self, bytes: &[u8; 32]) -> Option<VerifyingKey> {
        if let Some(k) = self.keys.map.get(bytes) {
            return Some(*k);
        }
        let key = VerifyingKey::from_bytes(bytes).ok().filter(|k| !k.is_weak())?;
        self.keys.insert(*bytes, key);
        Some(key)
    }
}

/// Sizes and budgets of a [`Verifier`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Verified chains kept.
    pub chains: usize,
    /// Decompressed keys kept.
    pub keys: usize,
    /// Failed chains remembered.
    pub failures: usize,
    /// Cold verifications a peer may make at once.
    pub cold_burst: u32,
    /// Cold verifications a peer regains per second.
    pub cold_per_second: u32,
    /// Peers whose budgets are tracked.
    pub peers: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        // 64 cold verifications of 8 links each are about 15 ms of one core: a garbage flood
        // from one peer costs at most that burst, then 32 verifications (about 8 ms) a second.
        VerifierConfig {
            chains: 1 << 16,
            keys: 1 << 12,
            failures: 1 << 12,
            cold_burst: 64,
            cold_per_second: 32,
            peers: 1 << 12,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u32,
    at: u64,
}

#[derive(Clone, Debug)]
struct Cached {
    cap: Capability,
    checked: Version,
}

/// Counters for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifierStats {
    /// Checks answered from the chain cache.
    pub hits: u64,
    /// Chains verified from scratch.
    pub cold: u64,
    /// Checks refused from the failure cache.
    pub known_bad: u64,
    /// Checks refused for a spent budget.
    pub over_budget: u64,
}

/// A verifier with caches: verified chains by the digest of their bytes and by head id,
/// decompressed keys, failed chains, and a per-peer budget of cold verifications.
#[derive(Clone, Debug)]
pub struct Verifier {
    config: VerifierConfig,
    keys: KeyCache,
    chains: Bounded<[u8; 32], Cached>,
    heads: Bounded<LinkId, [u8; 32]>,
    failed: Bounded<[u8; 32], Refused>,
    budgets: Bounded<[u8; 32], Bucket>,
    stats: VerifierStats,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new(VerifierConfig::default())
    }
}

impl Verifier {
    /// A verifier with these sizes and budgets.
    pub fn new(config: VerifierConfig) -> Self {
        Verifier {
            config,
            keys: KeyCache::new(config.keys),
            // At least one entry, so that a fresh verdict can be returned by reference.
            chains: Bounded::new(config.chains.max(1)),
            heads: Bounded::new(config.chains.max(1)),
            failed: Bounded::new(config.failures),
            budgets: Bounded::new(config.peers),
            stats: VerifierStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> VerifierStats {
        self.stats
    }

    /// The decompressed-key cache, shared with session proofs and invocations.
    pub fn keys(&mut self) -> &mut KeyCache {
        &mut self.keys
    }

    /// Verifies chain `bytes` presented by `peer`: from the cache if seen before (checking
    /// only new revocations and the window), otherwise from scratch if the peer has budget.
    pub fn verify(&mut self, peer: &[u8; 32], bytes: &[u8], ctx: &Context<'_>) -> Result<&Capability, Refused> {
        let digest: [u8; 32] = blake3::hash(bytes).into();
        if self.chains.map.contains_key(&digest) {
            self.stats.hits += 1;
            return self.recheck(digest, ctx);
        }
        if self.failed.map.contains_key(&digest) {
            self.stats.known_bad += 1;
            return Err(Refused::KnownBad);
        }
        if !self.spend(peer, ctx.now) {
            self.stats.over_budget += 1;
            return Err(Refused::OverBudget);
        }
        self.stats.cold += 1;
        let verdict =
            UnverifiedChain::decode(bytes).map_err(Refused::from).and_then(|c| verify_with(&c, ctx, &mut self.keys));
        match verdict {
            Ok(cap) => {
                self.heads.insert(*cap.head(), digest);
                self.chains.insert(digest, Cached { cap, checked: ctx.revocations.version() });
                Ok(&self.chains.map.get(&digest).expect("just inserted").cap)
            }
            Err(e) => {
                if permanent(&e) {
                    self.failed.insert(digest, e);
                }
                Err(e)
            }
        }
    }

    /// A chain verified before, by its head id (what log entries and session binds cite), or
    /// `None` if it is not cached.
    pub fn by_head(&mut self, head: &LinkId, ctx: &Context<'_>) -> Option<Result<&Capability, Refused>> {
        let digest = *self.heads.map.get(head)?;
        if !self.chains.map.contains_key(&digest) {
            return None;
        }
        self.stats.hits += 1;
        Some(self.recheck(digest, ctx))
    }

    fn recheck(&mut self, digest: [u8; 32], ctx: &Context<'_>) -> Result<&Capability, Refused> {
        let version = ctx.revocations.version();
        let cached = self.chains.map.get(&digest).expect("present");
        if cached.checked != version {
            let cap = &cached.cap;
            if let Some((i, watermark)) = ctx.revocations.find(cap.root.subject(), &cap.issuers, &cap.links) {
                let e = Refused::Revoked { link: i as u8 + 1, watermark };
                let head = *cap.head();
                self.chains.remove(&digest);
                self.heads.remove(&head);
                self.failed.insert(digest, e);
                return Err(e);
            }
        }
        let cached = self.chains.map.get_mut(&digest).expect("present");
        cached.checked = version;
        cached.cap.scope.window.check(ctx.now, ctx.skew)?;
        Ok(&cached.cap)
    }

    fn spend(&mut self, peer: &[u8; 32], now: u64) -> bool {
        let (burst, rate) = (self.config.cold_burst, self.config.cold_per_second);
        let mut bucket = self.budgets.map.get(peer).copied().unwrap_or(Bucket { tokens: burst, at: now });
        let refill = now.saturating_sub(bucket.at).saturating_mul(u64::from(rate));
        bucket.tokens = u64::from(bucket.tokens).saturating_add(refill).min(u64::from(burst)) as u32;
        bucket.at = bucket.at.max(now);
        let ok = bucket.tokens > 0;
        if ok {
            bucket.tokens -= 1;
        }
        self.budgets.insert(*peer, bucket);
        ok
    }
}

/// Verdicts that no later clock reading or published key can change.
fn permanent(e: &Refused) -> bool {
    matches!(
        e,
        Refused::Decode(_)
            | Refused::BadKey { .. }
            | Refused::BadSignature { .. }
            | Refused::Widened { .. }
            | Refused::EmptyWindow { .. }
            | Refused::Revoked { .. }
    )
}

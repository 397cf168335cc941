//! The v1 stamp: wire format, key derivation, the target rule, verification and a stepwise solver.
//!
//! A stamp proves that its sender spent, on average, `256 × effort` BLAKE3 compressions on one
//! message, for one receiver, during one of the receiver's epochs. See `spec/pow.md` §3.

use core::fmt;

/// Length of an encoded v1 stamp in bytes.
pub const STAMP_LEN: usize = 41;
/// The version/algorithm byte of v1: version 1, algorithm 1 (BLAKE3, four sub-solutions).
pub const VER_ALG_V1: u8 = 0x11;
/// Sub-solutions per stamp. Four turn the geometric solve time of one hashcash search into an
/// Erlang-4 sum, whose p99 is about 2.5× its mean instead of 4.6×.
pub const SUB_SOLUTIONS: usize = 4;
/// Expected BLAKE3 compressions per unit of effort, over the whole stamp.
pub const ATTEMPTS_PER_UNIT: u64 = 256;

/// A node's public identity key (the Ed25519 key bytes); the crate only hashes it.
pub type PeerKey = [u8; 32];
/// A 32-byte message digest, computed by the caller over the message the stamp pays for.
pub type Digest = [u8; 32];

const CTX_SEED: &str = "isocore/pow/v1/seed";
const CTX_PEER: &str = "isocore/pow/v1/peer";

/// The receiver's public seed for one epoch: advertised to peers, unpredictable before the
/// epoch starts because it is derived from the receiver's secret.
pub fn epoch_seed(secret: &[u8; 32], epoch: u32) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CTX_SEED);
    h.update(secret);
    h.update(&epoch.to_le_bytes());
    *h.finalize().as_bytes()
}

/// The hashing key for one (epoch seed, sender, receiver) triple. Both sides derive it once
/// per peer per epoch; it is what binds a stamp to its sender and receiver.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StampKey(pub [u8; 32]);

impl StampKey {
    /// Derives the key from the receiver's epoch seed and both identities.
    pub fn derive(seed: &[u8; 32], sender: &PeerKey, receiver: &PeerKey) -> Self {
        let mut h = blake3::Hasher::new_derive_key(CTX_PEER);
        h.update(seed);
        h.update(sender);
        h.update(receiver);
        StampKey(*h.finalize().as_bytes())
    }
}

impl fmt::Debug for StampKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StampKey({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// The largest sub-hash value accepted at `effort`: `floor((2^64 - 1) / (64 × effort))`.
/// Returns `None` for effort 0, which no stamp may claim.
pub const fn target(effort: u32) -> Option<u64> {
    if effort == 0 {
        return None;
    }
    Some(u64::MAX / (64 * effort as u64))
}

/// The 64-byte block hashed for sub-solution `index`: exactly one BLAKE3 compression.
pub fn block(digest: &Digest, epoch: u32, effort: u32, nonce: u64, index: u8) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(digest);
    b[32..36].copy_from_slice(&epoch.to_le_bytes());
    b[36..40].copy_from_slice(&effort.to_le_bytes());
    b[40..48].copy_from_slice(&nonce.to_le_bytes());
    b[48] = index;
    b[49] = VER_ALG_V1;
    b
}

/// The full sub-hash `h_i` of one block.
pub fn sub_hash(key: &StampKey, block: &[u8; 64]) -> [u8; 32] {
    *blake3::keyed_hash(&key.0, block).as_bytes()
}

/// The value compared with the target: the first 8 bytes of `h_i`, little-endian.
pub fn sub_value(key: &StampKey, block: &[u8; 64]) -> u64 {
    let h = blake3::keyed_hash(&key.0, block);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Why bytes are not a stamp. Always the sender's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The stamp is not exactly [`STAMP_LEN`] bytes.
    Length(usize),
    /// The version/algorithm byte is not one this crate knows.
    UnknownVersion(u8),
    /// The stamp claims effort 0; a message that pays nothing carries no stamp.
    ZeroEffort,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length(n) => write!(f, "stamp is {n} bytes, expected {STAMP_LEN}"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown stamp version byte {v:#04x}"),
            DecodeError::ZeroEffort => write!(f, "stamp claims zero effort"),
        }
    }
}

/// A decoded v1 stamp. Decoding checks the form only; [`Stamp::verify`] checks the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The receiver's epoch the stamp was made for.
    pub epoch: u32,
    /// Committed effort, in units of [`ATTEMPTS_PER_UNIT`] expected compressions. Never 0.
    pub effort: u32,
    /// One nonce per sub-solution.
    pub nonces: [u64; SUB_SOLUTIONS],
}

impl Stamp {
    /// Strictly decodes exactly [`STAMP_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: &[u8; STAMP_LEN] = bytes.try_into().map_err(|_| DecodeError::Length(bytes.len()))?;
        if b[0] != VER_ALG_V1 {
            return Err(DecodeError::UnknownVersion(b[0]));
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let effort = u32_at(5);
        if effort == 0 {
            return Err(DecodeError::ZeroEffort);
        }
        Ok(Stamp { epoch: u32_at(1), effort, nonces: [u64_at(9), u64_at(17), u64_at(25), u64_at(33)] })
    }

    /// Encodes the stamp; `decode(encode(s)) == s` for every stamp with non-zero effort.
    pub fn encode(&self) -> [u8; STAMP_LEN] {
        let mut b = [0u8; STAMP_LEN];
        b[0] = VER_ALG_V1;
        b[1..5].copy_from_slice(&self.epoch.to_le_bytes());
        b[5..9].copy_from_slice(&self.effort.to_le_bytes());
        for (i, n) in self.nonces.iter().enumerate() {
            b[9 + 8 * i..17 + 8 * i].copy_from_slice(&n.to_le_bytes());
        }
        b
    }

    /// Checks the work against `key` and `digest`. On success returns the stamp's replay tag:
    /// the first 16 bytes of `h_0`, which differ for every distinct stamp.
    pub fn verify(&self, key: &StampKey, digest: &Digest) -> Result<u128, InsufficientWork> {
        let t = target(self.effort).ok_or(InsufficientWork)?;
        let mut tag = 0;
        for (i, &nonce) in self.nonces.iter().enumerate() {
            let h = sub_hash(key, &block(digest, self.epoch, self.effort, nonce, i as u8));
            if u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) > t {
                return Err(InsufficientWork);
            }
            if i == 0 {
                tag = u128::from_le_bytes(h[..16].try_into().expect("16 bytes"));
            }
        }
        Ok(tag)
    }
}

/// A sub-hash lies above the target: the stamp does not carry the work it claims, or was made
/// for another sender, receiver, epoch or message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsufficientWork;

/// Searches for one sub-solution. Independent of the others, so a driver may run the four on
/// four threads and assemble the stamp with [`Stamp`]'s fields.
#[derive(Debug, Clone)]
pub struct SubSolver {
    key: StampKey,
    block: [u8; 64],
    target: u64,
    next: u64,
    attempts: u64,
}

impl SubSolver {
    /// Starts the search for sub-solution `index` at nonce `start`. Errors on effort 0.
    pub fn new(
        key: &StampKey,
        digest: &Digest,
        epoch: u32,
        effort: u32,
        index: u8,
        start: u64,
    ) -> Result<Self, DecodeError> {
        let target = target(effort).ok_or(DecodeError::ZeroEffort)?;
        Ok(SubSolver { key: *key, block: block(digest, epoch, effort, start, index), target, next: start, attempts: 0 })
    }

    /// Tries at most `max_attempts` nonces; returns the nonce that meets the target, if found.
    pub fn step(&mut self, max_attempts: u64) -> Option<u64> {
        for _ in 0..max_attempts {
            let nonce = self.next;
            self.block[40..48].copy_from_slice(&nonce.to_le_bytes());
            self.next = self.next.wrapping_add(1);
            self.attempts += 1;
            if sub_value(&self.key, &self.block) <= self.target {
                return Some(nonce);
            }
        }
        None
    }

    /// Compressions spent so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }
}

/// Solves a whole stamp in caller-sized steps. Dropping it cancels the search.
#[derive(Debug, Clone)]
pub struct Solver {
    epoch: u32,
    effort: u32,
    subs: [SubSolver; SUB_SOLUTIONS],
    found: [Option<u64>; SUB_SOLUTIONS],
}

impl Solver {
    /// Prepares a search for a stamp over `digest` at `effort`, made for the receiver whose
    /// epoch `epoch` and key `key` it will be checked with. `start` picks the first nonce; a
    /// sender that re-stamps one message at the same effort should vary it.
    pub fn new(key: &StampKey, digest: &Digest, epoch: u32, effort: u32, start: u64) -> Result<Self, DecodeError> {
        let sub = |i: u8| SubSolver::new(key, digest, epoch, effort, i, start);
        Ok(Solver { epoch, effort, subs: [sub(0)?, sub(1)?, sub(2)?, sub(3)?], found: [None; SUB_SOLUTIONS] })
    }

    /// Spends at most `max_attempts` compressions; returns the stamp once all four
    /// sub-solutions are found. Keep calling until it returns `Some`.
    pub fn step(&mut self, mut max_attempts: u64) -> Option<Stamp> {
        for (sub, found) in self.subs.iter_mut().zip(self.found.iter_mut()) {
            if found.is_some() {
                continue;
            }
            let before = sub.attempts();
            *found = sub.step(max_attempts);
            max_attempts -= sub.attempts() - before;
            if found.is_none() {
                return None;
            }
        }
        Some(Stamp { epoch: self.epoch, effort: self.effort, nonces: self.found.map(|n| n.expect("all found")) })
    }

    /// Compressions spent so far over all sub-solutions.
    pub fn attempts(&self) -> u64 {
        self.subs.iter().map(SubSolver::attempts).sum()
    }
}

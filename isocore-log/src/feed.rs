//! A feed: one writer's signed append-only log over some [`Storage`].

use crate::fork::ForkProof;
use crate::hash::{Hash, leaf_hash, parent_hash, root_hash};
use crate::head::{FeedKey, SignedHead};
use crate::proof::{self, ProofError};
use crate::store::{Storage, StoreError, WriteBatch};
use crate::tree::{self, MAX_LENGTH, ProofShape};
use crate::wire::MAX_ENTRY_LEN;
use bytes::Bytes;
use ed25519_dalek::SigningKey;

/// Why a local operation on a feed failed. Nothing was written when one of these is returned.
#[derive(Debug)]
pub enum FeedError {
    /// The signing key is not this feed's writer.
    WrongSigner,
    /// `append` was given no entries.
    EmptyBatch,
    /// An entry is longer than [`MAX_ENTRY_LEN`].
    EntryTooLarge {
        /// Position of the entry in the batch.
        position: usize,
        /// Its length.
        len: usize,
    },
    /// The feed would grow past [`MAX_LENGTH`].
    Full,
    /// The writer forked; the feed is frozen.
    Forked,
    /// The store's contents contradict themselves or the writer's signature.
    Corrupt(&'static str),
    /// The store failed.
    Store(StoreError),
}

impl core::fmt::Display for FeedError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FeedError::WrongSigner => f.write_str("signing key is not the feed's writer"),
            FeedError::EmptyBatch => f.write_str("append needs at least one entry"),
            FeedError::EntryTooLarge { position, len } => {
                write!(f, "entry {position} is {len} bytes, over the {MAX_ENTRY_LEN}-byte limit")
            }
            FeedError::Full => f.write_str("feed is at its maximum length"),
            FeedError::Forked => f.write_str("feed is frozen by a fork proof"),
            FeedError::Corrupt(why) => write!(f, "store is corrupt: {why}"),
            FeedError::Store(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for FeedError {}

impl From<StoreError> for FeedError {
    fn from(e: StoreError) -> Self {
        FeedError::Store(e)
    }
}

/// Why received data was refused: the sender's fault, or our store's.
#[derive(Debug)]
pub(crate) enum ReceiveError {
    Proof(ProofError),
    BadSignature,
    Store(StoreError),
}

impl From<StoreError> for ReceiveError {
    fn from(e: StoreError) -> Self {
        ReceiveError::Store(e)
    }
}

/// What a verified data message did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Stored: entries `[start, end)` and, if it moved, the new head length.
    Stored { start: u64, end: u64, head: Option<u64> },
    /// Built on a length we have moved past; nothing was stored.
    Stale,
    /// The message proved the writer forked; the proof is stored and the feed frozen.
    Forked,
    /// The feed is frozen; nothing was stored.
    Frozen,
}

/// How a head a peer announced relates to ours.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Announced {
    /// Longer than ours.
    Ahead,
    /// Ours exactly, or shorter and consistent (or not checkable).
    NotAhead,
    /// Shorter than ours and signed, but not a prefix of ours: the peer should see our head.
    Conflicting,
    /// Same length, different root, both signed: the feed is now frozen.
    Forked,
}

/// The parts of a data message, as served or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataParts<E> {
    /// The receiver's verified length the proof builds on.
    pub base: u64,
    /// The newer head proven, if any.
    pub head: Option<SignedHead>,
    /// Index of the first entry.
    pub start: u64,
    /// The entries.
    pub entries: Vec<E>,
    /// Proof nodes in walk order.
    pub nodes: Vec<Hash>,
}

/// One writer's append-only log, verified, over a store.
///
/// ```
/// use ed25519_dalek::SigningKey;
/// use isocore_log::{Feed, FeedKey, MemoryStore};
///
/// let writer = SigningKey::from_bytes(&[7; 32]);
/// let mut feed = Feed::open(FeedKey::standalone(writer.verifying_key()), MemoryStore::new())?;
/// let head = feed.append(&writer, [&b"hello"[..], b"world"])?;
/// assert_eq!(head.length, 2);
/// assert_eq!(feed.get(1)?.as_deref(), Some(&b"world"[..]));
/// # Ok::<(), isocore_log::FeedError>(())
/// ```
pub struct Feed<S> {
    key: FeedKey,
    store: S,
    head: Option<SignedHead>,
    /// The roots of the head's length, left to right.
    roots: Vec<(u64, Hash)>,
    contiguous: u64,
    fork: Option<ForkProof>,
}

impl<S: Storage> Feed<S> {
    /// Open the feed `key` kept in `store` (empty or written before), checking what is there.
    pub fn open(key: FeedKey, store: S) -> Result<Self, FeedError> {
        let head = store.head()?;
        let fork = store.fork_proof()?;
        let length = head.map_or(0, |h| h.length);
        let mut roots = Vec::new();
        for index in tree::roots(length) {
            let hash = store.node(index)?.ok_or(FeedError::Corrupt("a root of the head is missing"))?;
            roots.push((index, hash));
        }
        if let Some(head) = head {
            if root_hash(length, roots.iter().map(|(_, h)| h)) != head.root {
                return Err(FeedError::Corrupt("stored roots do not match the head"));
            }
            head.verify(&key).map_err(|_| FeedError::Corrupt("stored head signature is invalid"))?;
        }
        let contiguous = store.contiguous()?.min(length);
        Ok(Feed { key, store, head, roots, contiguous, fork })
    }

    /// Who the feed belongs to.
    pub fn key(&self) -> &FeedKey {
        &self.key
    }

    /// The verified length: entries below it may be fetched and proven.
    pub fn len(&self) -> u64 {
        self.head.map_or(0, |h| h.length)
    }

    /// Whether the verified length is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verified signed head, if any.
    pub fn head(&self) -> Option<&SignedHead> {
        self.head.as_ref()
    }

    /// Write out whatever the store holds back ([`Storage::flush`]).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.store.flush()
    }

    /// The length of the longest prefix of entries held.
    pub fn contiguous_len(&self) -> u64 {
        self.contiguous
    }

    /// The fork proof, if the writer was caught forking.
    pub fn fork_proof(&self) -> Option<&ForkProof> {
        self.fork.as_ref()
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Entry `index`, if held. Everything held was verified before it was stored.
    pub fn get(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        self.store.entry(index)
    }

    /// Whether entry `index` is held.
    pub fn has(&self, index: u64) -> Result<bool, StoreError> {
        Ok(index < self.contiguous || self.store.contains(index)?)
    }

    /// Append a batch of entries as the writer, with one signature over the new head.
    ///
    /// Nothing changes unless the whole batch is stored.
    pub fn append<E: Into<Bytes>>(
        &mut self,
        signer: &SigningKey,
        entries: impl IntoIterator<Item = E>,
    ) -> Result<SignedHead, FeedError> {
        if self.fork.is_some() {
            return Err(FeedError::Forked);
        }
        if signer.verifying_key() != *self.key.writer() {
            return Err(FeedError::WrongSigner);
        }
        let mut batch = WriteBatch::default();
        let mut roots = self.roots.clone();
        let mut length = self.len();
        for (position, entry) in entries.into_iter().enumerate() {
            let entry: Bytes = entry.into();
            if entry.len() > MAX_ENTRY_LEN {
                return Err(FeedError::EntryTooLarge { position, len: entry.len() });
            }
            if length >= MAX_LENGTH {
                return Err(FeedError::Full);
            }
            let leaf = (tree::leaf(length), leaf_hash(&entry));
            batch.nodes.push(leaf);
            roots.push(leaf);
            // Merge equal-sized roots, as in a binary counter carrying.
            while let [.., (li, lh), (ri, rh)] = roots[..] {
                if tree::depth(li) != tree::depth(ri) {
                    break;
                }
                let parent = ((li + ri) / 2, parent_hash(&lh, &rh));
                roots.truncate(roots.len() - 2);
                roots.push(parent);
                batch.nodes.push(parent);
            }
            batch.entries.push((length, entry));
            length += 1;
        }
        if batch.entries.is_empty() {
            return Err(FeedError::EmptyBatch);
        }
        let root = root_hash(length, roots.iter().map(|(_, h)| h));
        let head = SignedHead::sign(&self.key, signer, length, root);
        batch.head = Some(head);
        let extends_prefix = self.contiguous == self.len();
        self.store.apply(batch)?;
        self.head = Some(head);
        self.roots = roots;
        if extends_prefix {
            self.contiguous = length;
        }
        Ok(head)
    }

    /// Record a fork proof received from a peer. Returns whether it was new.
    pub fn accept_fork_proof(&mut self, proof: ForkProof) -> Result<bool, FeedError> {
        if self.fork.is_some() {
            return Ok(false);
        }
        if proof.verify_for(&self.key).is_err() {
            return Err(FeedError::Corrupt("fork proof does not verify"));
        }
        self.store_fork(proof)?;
        Ok(true)
    }

    fn store_fork(&mut self, proof: ForkProof) -> Result<(), StoreError> {
        self.store.apply(WriteBatch { fork: Some(proof.clone()), ..WriteBatch::default() })?;
        self.fork = Some(proof);
        Ok(())
    }

    /// Build a data message proving `[start, end)` to a peer that has verified `base`,
    /// stopping early once `budget` bytes of entries are taken (at least one entry is).
    /// With `upgrade`, also prove our head if it is longer than `base`.
    /// `None` means this store cannot serve it.
    pub fn serve(
        &self,
        base: u64,
        start: u64,
        end: u64,
        upgrade: bool,
        budget: usize,
    ) -> Result<Option<DataParts<Bytes>>, StoreError> {
        let length = self.len();
        if base > length || start > end || self.fork.is_some() {
            return Ok(None);
        }
        let target = if upgrade { length } else { base };
        let head = (target > base).then_some(self.head).flatten();
        let mut entries = Vec::new();
        let mut taken = 0;
        let mut index = start;
        while index < end.min(target) && (entries.is_empty() || taken < budget) {
            let Some(entry) = self.store.entry(index)? else {
                return Ok(None);
            };
            taken += entry.len();
            entries.push(entry);
            index += 1;
        }
        if entries.is_empty() && head.is_none() {
            return Ok(None);
        }
        let shape = ProofShape { base, target, start, end: index };
        let mut indices = Vec::new();
        tree::proof_nodes(&shape, &mut indices);
        let mut nodes = Vec::with_capacity(indices.len());
        for i in indices {
            let Some(hash) = self.store.node(i)? else {
                return Ok(None);
            };
            nodes.push(hash);
        }
        Ok(Some(DataParts { base, head, start, entries, nodes }))
    }

    /// A self-contained proof of entries `[start, end)` against our head, for anyone who knows
    /// the feed key. `None` if we do not hold what it needs or the range is past our head.
    pub fn prove_range(&self, start: u64, end: u64) -> Result<Option<crate::proof::RangeProof>, StoreError> {
        if start >= end || end > self.len() {
            return Ok(None);
        }
        Ok(self.serve(0, start, end, true, usize::MAX)?.and_then(|parts| {
            let head = parts.head?;
            (parts.start + parts.entries.len() as u64 == end).then_some(crate::proof::RangeProof {
                head,
                start,
                nodes: parts.nodes,
            })
        }))
    }

    /// Check how a peer's announced head relates to ours, freezing the feed on a fork.
    pub(crate) fn check_announced(&mut self, theirs: &SignedHead) -> Result<Announced, ReceiveError> {
        let ours = self.len();
        if theirs.length > ours {
            return Ok(Announced::Ahead);
        }
        if theirs.length == ours {
            let Some(head) = self.head else {
                return Ok(Announced::NotAhead);
            };
            if head.root == theirs.root {
                return Ok(Announced::NotAhead);
            }
            theirs.verify(&self.key).map_err(|_| ReceiveError::BadSignature)?;
            let proof = ForkProof {
                channel: *self.key.channel(),
                writer: self.key.writer().to_bytes(),
                first: head,
                second: *theirs,
                first_roots: Vec::new(),
                second_nodes: Vec::new(),
            };
            self.store_fork(proof)?;
            return Ok(Announced::Forked);
        }
        let mut ours_at_theirs = Vec::new();
        for index in tree::roots(theirs.length) {
            match self.store.node(index)? {
                Some(hash) => ours_at_theirs.push(hash),
                None => return Ok(Announced::NotAhead),
            }
        }
        if root_hash(theirs.length, &ours_at_theirs) == theirs.root {
            return Ok(Announced::NotAhead);
        }
        theirs.verify(&self.key).map_err(|_| ReceiveError::BadSignature)?;
        Ok(Announced::Conflicting)
    }

    /// Verify a data message and store what it proves. `source` is the buffer the entries
    /// borrow from, so stored entries share it instead of being copied.
    pub(crate) fn receive(&mut self, data: &DataParts<&[u8]>, source: &Bytes) -> Result<Received, ReceiveError> {
        if self.fork.is_some() {
            return Ok(Received::Frozen);
        }
        let current = self.len();
        // A sender may assume we are further along than we are (its push raced our
        // announcement); and an upgrade must build on our current head, or we could not prove
        // a conflict. Either way, drop it and re-announce.
        if data.base > current || (data.head.is_some() && data.base != current) {
            return Ok(Received::Stale);
        }
        let end = data.start + data.entries.len() as u64;
        let target = data.head.map_or(data.base, |h| h.length);
        let shape = ProofShape { base: data.base, target, start: data.start, end };
        let leaves: Vec<Hash> = data.entries.iter().map(|e| leaf_hash(e)).collect();
        let store = &self.store;
        let proven = proof::evaluate(&shape, &leaves, &data.nodes, |i| store.node(i).ok().flatten());
        let proven = match proven {
            Err(ProofError::MissingLocalNode(_)) => return Ok(Received::Stale),
            other => other.map_err(ReceiveError::Proof)?,
        };
        let root = root_hash(target, &proven.roots);
        match data.head {
            None => {
                // A range proof: every recomputed root of `base` must be one we hold.
                for (index, value) in tree::roots(target).zip(&proven.roots) {
                    match self.store.node(index)? {
                        Some(held) if held == *value => {}
                        Some(_) => return Err(ReceiveError::Proof(ProofError::RootMismatch)),
                        None => return Ok(Received::Stale),
                    }
                }
            }
            Some(head) => {
                if root != head.root {
                    return Err(ReceiveError::Proof(ProofError::RootMismatch));
                }
                head.verify(&self.key).map_err(|_| ReceiveError::BadSignature)?;
                let agrees = self.roots.iter().all(|(i, h)| proven.get(*i) == Some(*h));
                if !agrees {
                    let ours = self.head.expect("a feed with roots has a head");
                    let first_roots = self.roots.iter().map(|(_, h)| *h).collect();
                    let proof = ForkProof::from_conflict(&self.key, ours, first_roots, head, &proven)
                        .ok_or(ReceiveError::Proof(ProofError::RootMismatch))?;
                    self.store_fork(proof)?;
                    return Ok(Received::Forked);
                }
            }
        }
        let batch = WriteBatch {
            entries: (data.start..end).zip(data.entries.iter().map(|e| source.slice_ref(e))).collect(),
            nodes: proven.nodes,
            head: data.head,
            fork: None,
        };
        let moved = data.head.map(|h| h.length);
        let new_roots: Option<Vec<(u64, Hash)>> =
            moved.map(|len| tree::roots(len).zip(proven.roots.iter().copied()).collect());
        if batch.entries.is_empty() && moved.is_none() {
            return Ok(Received::Stored { start: data.start, end, head: None });
        }
        self.store.apply(batch)?;
        if let (Some(head), Some(roots)) = (data.head, new_roots) {
            self.head = Some(head);
            self.roots = roots;
        }
        self.contiguous = self.store.contiguous()?.min(self.len());
        Ok(Received::Stored { start: data.start, end, head: moved })
    }
}

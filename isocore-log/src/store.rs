//! Where a feed keeps its entries, tree nodes, signed head and fork proof.

use crate::fork::ForkProof;
use crate::hash::Hash;
use crate::head::SignedHead;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};

/// A storage failure, from whatever backs the [`Storage`] trait.
#[derive(Debug)]
pub struct StoreError(pub Box<dyn core::error::Error + Send + Sync>);

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "storage failed: {}", self.0)
    }
}

impl core::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Everything one append or one verified download writes, applied all at once.
///
/// Entries and nodes are immutable once written: a store may ignore a write of an index it
/// already holds (the value is guaranteed to be the same).
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Entries by index.
    pub entries: Vec<(u64, Bytes)>,
    /// Tree nodes by flat-tree index.
    pub nodes: Vec<(u64, Hash)>,
    /// The new signed head, if it moved.
    pub head: Option<SignedHead>,
    /// Evidence that the writer forked; once stored, the feed is frozen.
    pub fork: Option<ForkProof>,
}

/// Storage for one feed. Implementations must apply a [`WriteBatch`] atomically: after a crash
/// at any instant, either all of it or none of it is visible.
pub trait Storage {
    /// The last signed head written.
    fn head(&self) -> Result<Option<SignedHead>, StoreError>;
    /// The fork proof, if one was written.
    fn fork_proof(&self) -> Result<Option<ForkProof>, StoreError>;
    /// Entry `index`, if held.
    fn entry(&self, index: u64) -> Result<Option<Bytes>, StoreError>;
    /// Whether entry `index` is held. Asked for every entry a download considers, so a store
    /// that can answer without reading the entry should.
    fn contains(&self, index: u64) -> Result<bool, StoreError> {
        Ok(self.entry(index)?.is_some())
    }
    /// Tree node `index`, if held.
    fn node(&self, index: u64) -> Result<Option<Hash>, StoreError>;
    /// The length of the longest prefix of entries held.
    fn contiguous(&self) -> Result<u64, StoreError>;
    /// Write a batch, all or nothing.
    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError>;
    /// Write out batches a store holds back to commit several at once (one that does must
    /// still serve them from memory, and must commit them atomically, oldest first). Drivers
    /// call it before making the store durable; the feed never needs to.
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store in memory, for tests, simulations and the browser.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    head: Option<SignedHead>,
    fork: Option<ForkProof>,
    // Entries [0, prefix.len()) are dense; the rest sit in `sparse` until the gap fills.
    prefix: Vec<Bytes>,
    sparse: BTreeMap<u64, Bytes>,
    nodes: HashMap<u64, Hash>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held in entries (for reporting).
    pub fn entry_bytes(&self) -> usize {
        self.prefix.iter().chain(self.sparse.values()).map(Bytes::len).sum()
    }
}

impl Storage for MemoryStore {
    fn head(&self) -> Result<Option<SignedHead>, StoreError> {
        Ok(self.head)
    }

    fn fork_proof(&self) -> Result<Option<ForkProof>, StoreError> {
        Ok(self.fork.clone())
    }

    fn entry(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        let dense = usize::try_from(index).ok().and_then(|i| self.prefix.get(i));
        Ok(dense.or_else(|| self.sparse.get(&index)).cloned())
    }

    fn node(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        Ok(self.nodes.get(&index).copied())
    }

    fn contiguous(&self) -> Result<u64, StoreError> {
        Ok(self.prefix.len() as u64)
    }

    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        for (index, entry) in batch.entries {
            let held = self.prefix.len() as u64;
            if index == held {
                self.prefix.push(entry);
            } else if index > held {
                self.sparse.insert(index, entry);
            }
        }
        while let Some(entry) = self.sparse.remove(&(self.prefix.len() as u64)) {
            self.prefix.push(entry);
        }
        self.nodes.extend(batch.nodes);
        if batch.head.is_some() {
            self.head = batch.head;
        }
        if batch.fork.is_some() {
            self.fork = batch.fork;
        }
        Ok(())
    }
}

//! Feeds kept in redb: one database per node, every feed's entries, nodes, head and fork proof
//! in shared tables keyed by the feed's discovery key. One [`WriteBatch`] is one redb write
//! transaction, so a crash at any instant leaves each feed at its old head or its new one.

use bytes::Bytes;
use isocore_log::{FeedKey, ForkProof, Hash, SignedHead, Storage, StoreError, WriteBatch};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

type FeedId<'a> = &'a [u8; 32];

/// Each feed's entries and tree nodes live in tables of their own, keyed by index: short keys,
/// and one feed's rows stay together on disk.
fn entries_table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

fn nodes_table(name: &str) -> TableDefinition<'_, u64, &'static [u8; 32]> {
    TableDefinition::new(name)
}
const HEADS: TableDefinition<FeedId, &[u8]> = TableDefinition::new("heads");
const FORKS: TableDefinition<FeedId, &[u8]> = TableDefinition::new("forks");
const CONTIGUOUS: TableDefinition<FeedId, u64> = TableDefinition::new("contiguous");
/// Feeds this node replicates: discovery key → channel ‖ writer.
const FEEDS: TableDefinition<FeedId, &[u8]> = TableDefinition::new("feeds");
/// Feeds this node writes: discovery key → the writer's secret seed.
const WRITERS: TableDefinition<FeedId, FeedId> = TableDefinition::new("writers");

/// Bytes of database pages a node keeps in memory.
const CACHE_BYTES: usize = 16 << 20;

fn err(e: impl Into<redb::Error>) -> StoreError {
    StoreError(Box::new(e.into()))
}

/// A node's database.
#[derive(Clone)]
pub struct Db {
    db: Arc<Database>,
}

impl Db {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // redb caches up to 1 GiB by default; a node needs far less to stay fast.
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        {
            tx.open_table(HEADS).map_err(err)?;
            tx.open_table(FORKS).map_err(err)?;
            tx.open_table(CONTIGUOUS).map_err(err)?;
            tx.open_table(FEEDS).map_err(err)?;
            tx.open_table(WRITERS).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Db { db: Arc::new(db) })
    }

    /// The store of one feed, registering it. `sync` makes every commit durable before it
    /// returns (a writer's own appends must be: losing a signed head could make it fork).
    pub fn feed(&self, key: &FeedKey, sync: bool) -> Result<RedbStore, StoreError> {
        let id = key.discovery_key();
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(key.channel());
        material[32..].copy_from_slice(key.writer().as_bytes());
        let store = RedbStore {
            db: self.db.clone(),
            id,
            sync,
            entries: format!("entries-{}", hex::encode(id)),
            nodes: format!("nodes-{}", hex::encode(id)),
        };
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(FEEDS).map_err(err)?.insert(&id, &material[..]).map_err(err)?;
        tx.open_table(entries_table(&store.entries)).map_err(err)?;
        tx.open_table(nodes_table(&store.nodes)).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(store)
    }

    /// Remember the secret of a feed we write.
    pub fn add_writer(&self, key: &FeedKey, seed: &[u8; 32]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(WRITERS).map_err(err)?.insert(&key.discovery_key(), seed).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// The secret seed of a feed we write, if we do.
    pub fn writer_seed(&self, key: &FeedKey) -> Result<Option<[u8; 32]>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(WRITERS).map_err(err)?;
        Ok(table.get(&key.discovery_key()).map_err(err)?.map(|v| *v.value()))
    }

    /// Make every earlier commit durable (replicated data is committed without waiting for
    /// the disk; a crash before this loses only data that can be fetched again).
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(|e| StoreError(Box::new(e)))?;
        tx.commit().map_err(err)
    }

    /// Every feed registered here.
    pub fn feeds(&self) -> Result<Vec<FeedKey>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(FEEDS).map_err(err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            let (_, v) = row.map_err(err)?;
            let v = v.value();
            let channel: [u8; 32] = v[..32].try_into().map_err(|_| corrupt("feed key"))?;
            let writer: [u8; 32] = v[32..64].try_into().map_err(|_| corrupt("feed key"))?;
            out.push(FeedKey::from_bytes(channel, &writer).map_err(|_| corrupt("feed key"))?);
        }
        Ok(out)
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError(format!("corrupt {what} in the database").into())
}

/// One feed's view of the node database.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    id: [u8; 32],
    sync: bool,
    entries: String,
    nodes: String,
}

impl Storage for RedbStore {
    fn head(&self) -> Result<Option<SignedHead>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(HEADS).map_err(err)?;
        match table.get(&self.id).map_err(err)? {
            Some(v) => postcard::from_bytes(v.value()).map(Some).map_err(|_| corrupt("head")),
            None => Ok(None),
        }
    }

    fn fork_proof(&self) -> Result<Option<ForkProof>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(FORKS).map_err(err)?;
        match table.get(&self.id).map_err(err)? {
            Some(v) => postcard::from_bytes(v.value()).map(Some).map_err(|_| corrupt("fork proof")),
            None => Ok(None),
        }
    }

    fn entry(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(entries_table(&self.entries)).map_err(err)?;
        Ok(table.get(index).map_err(err)?.map(|v| Bytes::copy_from_slice(v.value())))
    }

    fn node(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(nodes_table(&self.nodes)).map_err(err)?;
        Ok(table.get(index).map_err(err)?.map(|v| Hash(*v.value())))
    }

    fn contiguous(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(CONTIGUOUS).map_err(err)?;
        Ok(table.get(&self.id).map_err(err)?.map_or(0, |v| v.value()))
    }

    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(err)?;
        let durability = if self.sync { Durability::Immediate } else { Durability::None };
        tx.set_durability(durability).map_err(|e| StoreError(Box::new(e)))?;
        {
            let mut entries = tx.open_table(entries_table(&self.entries)).map_err(err)?;
            for (index, entry) in &batch.entries {
                entries.insert(*index, &entry[..]).map_err(err)?;
            }
            let mut contiguous_table = tx.open_table(CONTIGUOUS).map_err(err)?;
            let mut contiguous = contiguous_table.get(&self.id).map_err(err)?.map_or(0, |v| v.value());
            let start = contiguous;
            while entries.get(contiguous).map_err(err)?.is_some() {
                contiguous += 1;
            }
            if contiguous != start {
                contiguous_table.insert(&self.id, contiguous).map_err(err)?;
            }
            let mut nodes = tx.open_table(nodes_table(&self.nodes)).map_err(err)?;
            for (index, hash) in &batch.nodes {
                nodes.insert(*index, &hash.0).map_err(err)?;
            }
            if let Some(head) = &batch.head {
                let bytes = postcard::to_allocvec(head).expect("a Vec cannot fail");
                tx.open_table(HEADS).map_err(err)?.insert(&self.id, &bytes[..]).map_err(err)?;
            }
            if let Some(fork) = &batch.fork {
                let bytes = postcard::to_allocvec(fork).expect("a Vec cannot fail");
                tx.open_table(FORKS).map_err(err)?.insert(&self.id, &bytes[..]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

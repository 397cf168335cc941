//! Feeds kept in redb: one database per node; each feed's entry rows and node pages in tables
//! of its own, heads, contiguous lengths and fork proofs in shared tables keyed by the feed's
//! discovery key. One [`WriteBatch`] is one redb write
//! transaction, so a crash at any instant leaves each feed at its old head or its new one.
//! Large replicated entries go in an append-only file beside the database, which is synced
//! before any commit that could make a row pointing into it durable.

use bytes::Bytes;
use isocore_log::{FeedKey, ForkProof, Hash, SignedHead, Storage, StoreError, WriteBatch};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

type FeedId<'a> = &'a [u8; 32];

/// Each feed's entries and tree nodes live in tables of their own, keyed by index: short keys,
/// and one feed's rows stay together on disk.
fn entries_table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

fn nodes_table(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

/// Parts of entries too large for a row, keyed by (index, part).
fn parts_table(name: &str) -> TableDefinition<'_, (u64, u32), &'static [u8]> {
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
    db: Arc<Files>,
    /// Bumped by every commit of any feed: read snapshots older than it are dropped, so no
    /// store pins pages that later writes freed.
    generation: Arc<AtomicU64>,
    /// Commits what stores hold back, on a thread of its own.
    committer: Option<Arc<Committer>>,
}

/// The database and its entry file, which go together.
struct Files {
    database: Database,
    /// Large entries of replicated feeds.
    entries: EntryFile,
}

impl std::ops::Deref for Files {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.database
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        // Closing the database makes its non-durable commits durable: the entries their rows
        // point to must be on disk first.
        if let Err(e) = self.entries.sync() {
            tracing::error!(%e, "the entry file could not be synced before the database closed");
        }
    }
}

/// The layout of entries and nodes this version writes (rows, parts, entries in the entry
/// file, and pages). Formats 2 (no parts) and 3 (no entry file) are subsets and read as they
/// are.
const FORMAT: u64 = 4;
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

impl Db {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // redb caches up to 1 GiB by default; a node needs far less to stay fast.
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(err)?;
        let file = EntryFile::open(&path.with_extension("entries"))?;
        let tx = db.begin_write().map_err(err)?;
        // Per-entry tables are the layout of format 1; reading them as rows would fail later
        // and less clearly.
        let old = tx.list_tables().map_err(err)?.any(|t| t.name().starts_with("entries-"));
        if old {
            return Err(StoreError(
                format!(
                    "{} was written by an older isocore (format 1); this one reads format {FORMAT}: move it \
                     aside and replicate the feeds again",
                    path.display()
                )
                .into(),
            ));
        }
        {
            let mut meta = tx.open_table(META).map_err(err)?;
            let stored = meta.get("format").map_err(err)?.map(|v| v.value());
            if let Some(newer) = stored.filter(|f| *f > FORMAT) {
                return Err(StoreError(
                    format!(
                        "{} was written by a newer isocore (format {newer}); this one reads up to format {FORMAT}",
                        path.display()
                    )
                    .into(),
                ));
            }
            meta.insert("format", FORMAT).map_err(err)?;
            drop(meta);
            tx.open_table(HEADS).map_err(err)?;
            tx.open_table(FORKS).map_err(err)?;
            tx.open_table(CONTIGUOUS).map_err(err)?;
            tx.open_table(FEEDS).map_err(err)?;
            tx.open_table(WRITERS).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Db {
            db: Arc::new(Files { database: db, entries: file }),
            generation: Arc::default(),
            committer: Committer::start().map(Arc::new),
        })
    }

    /// The store of one feed, registering it. `sync` makes every commit durable before it
    /// returns (a writer's own appends must be: losing a signed head could make it fork).
    pub fn feed(&self, key: &FeedKey, sync: bool) -> Result<RedbStore, StoreError> {
        let id = key.discovery_key();
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(key.channel());
        material[32..].copy_from_slice(key.writer().as_bytes());
        let mut store = RedbStore {
            db: self.db.clone(),
            generation: self.generation.clone(),
            committer: self.committer.clone(),
            in_flight: None,
            tables: Arc::new(Tables {
                id,
                entries: format!("rows-{}", hex::encode(id)),
                parts: format!("parts-{}", hex::encode(id)),
                nodes: format!("pages-{}", hex::encode(id)),
            }),
            sync,
            contiguous: Cell::new(0),
            committed: Cell::new(0),
            pending: Pending::default(),
            snapshot: RefCell::new(None),
            row: RefCell::new(None),
            sparse: BTreeMap::new(),
            damaged: BTreeSet::new(),
        };
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(FEEDS).map_err(err)?.insert(&id, &material[..]).map_err(err)?;
        tx.open_table(entries_table(&store.tables.entries)).map_err(err)?;
        tx.open_table(parts_table(&store.tables.parts)).map_err(err)?;
        tx.open_table(nodes_table(&store.tables.nodes)).map_err(err)?;
        let contiguous = tx.open_table(CONTIGUOUS).map_err(err)?.get(&id).map_err(err)?.map_or(0, |v| v.value());
        for row in tx.open_table(entries_table(&store.tables.entries)).map_err(err)?.range(contiguous..).map_err(err)? {
            let (start, value) = row.map_err(err)?;
            let start = start.value();
            let end = Row::count(value.value()).ok().and_then(|n| start.checked_add(n));
            // A damaged row is left out: its entries count as missing, are fetched again, and
            // the row is removed when they are written. The rest of the feed (and the node)
            // stays usable.
            match end {
                Some(end) if store.sparse.last_key_value().is_none_or(|(_, e)| *e <= start) => {
                    store.sparse.insert(start, end);
                }
                _ => {
                    tracing::warn!(feed = %hex::encode(id), start, "a damaged entry row is ignored");
                    store.damaged.insert(start);
                }
            }
        }
        self.db.entries.sync()?;
        tx.commit().map_err(err)?;
        store.contiguous.set(contiguous);
        store.committed.set(contiguous);
        Ok(store)
    }

    /// Remember the secret of a feed we write.
    pub fn add_writer(&self, key: &FeedKey, seed: &[u8; 32]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(WRITERS).map_err(err)?.insert(&key.discovery_key(), seed).map_err(err)?;
        self.db.entries.sync()?;
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
        self.db.entries.sync()?;
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

/// Entries too large for a row, of feeds committed without waiting for the disk, appended to
/// a file of their own and found by (offset, length) from their row. They are written with
/// one copy into the page cache: no database page to copy them into, no page checksum, and
/// no sync each time redb grows its file.
///
/// Bytes are appended only inside a write transaction, before the commit whose rows point to
/// them. Every durable commit syncs the file first, inside its transaction (so no commit can
/// slip in between), and so does closing the database, which makes its commits durable: no
/// durable row points past what the disk holds. What a crash, an aborted commit or a retried
/// one leaves unreferenced stays in the file (it only grows); appends go on after it.
struct EntryFile {
    file: File,
    /// Where the next append goes.
    end: AtomicU64,
    /// How much of the file is known to be on disk.
    synced: AtomicU64,
    /// A sync failed: the kernel may have dropped what it could not write and would report
    /// the next sync clean, so nothing more is appended or made durable until a reopen.
    failed: std::sync::atomic::AtomicBool,
}

impl EntryFile {
    fn open(path: &Path) -> Result<EntryFile, StoreError> {
        let io = |e: std::io::Error| StoreError(format!("entry file {}: {e}", path.display()).into());
        let created = !path.exists();
        let file = File::options().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        if created {
            // The file's name must last as long as the rows that will point into it.
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        let end = file.metadata().map_err(io)?.len();
        // What an earlier run left unsynced, no surviving row points to (non-durable commits
        // do not outlive a crash, and closing synced first).
        Ok(EntryFile { file, end: AtomicU64::new(end), synced: AtomicU64::new(end), failed: Default::default() })
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError("an earlier sync of the entry file failed; reopen the database".into()));
        }
        Ok(())
    }

    /// Appends `bytes`; returns their offset. Only inside a write transaction.
    fn append(&self, bytes: &[u8]) -> Result<u64, StoreError> {
        self.check()?;
        let at = self.end.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        self.file.write_all_at(bytes, at).map_err(|e| StoreError(format!("writing the entry file: {e}").into()))?;
        Ok(at)
    }

    /// Fills `out` from `at`; a file shorter than a row says is corrupt.
    fn read(&self, at: u64, out: &mut [u8]) -> Result<(), StoreError> {
        self.file.read_exact_at(out, at).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => corrupt("entry file (shorter than its rows)"),
            _ => StoreError(format!("reading the entry file: {e}").into()),
        })
    }

    /// Puts everything appended so far on disk, if anything is new. Only inside a write
    /// transaction, just before a durable commit.
    fn sync(&self) -> Result<(), StoreError> {
        self.check()?;
        let end = self.end.load(Ordering::Acquire);
        if self.synced.load(Ordering::Acquire) < end {
            if let Err(e) = self.file.sync_data() {
                self.failed.store(true, Ordering::Release);
                return Err(StoreError(format!("syncing the entry file: {e}").into()));
            }
            self.synced.store(end, Ordering::Release);
        }
        Ok(())
    }
}

/// One feed's view of the node database.
///
/// Entries are kept in *rows*: each write of consecutive new entries is one row keyed by its
/// first index (`n: u32 LE`, then `n` end offsets as `u32 LE`, then the bytes), so a batch of
/// a thousand small entries is one B-tree insert, and rows never overlap. A row fits a
/// 32 KiB database page ([`ROW_BYTES`]); an entry too large for one gets a row of its own
/// that says so (`0: u32 LE`, then its length as `u32 LE`). A commit that waits for the disk
/// puts its bytes in *parts* of [`PART_BYTES`] keyed by (index, part), so that no entry is
/// rounded up to a page twice its size; one that does not appends them to the entry file and
/// ends the row with their offset there and their CRC-32 ([`FILE_ROW`]). Tree nodes are
/// kept in *pages* of 64 by `index / 64` (a `u64 LE` bitmap of the nodes present, then their
/// hashes in order). The contiguous length lives in memory as well as in its row; a read
/// snapshot is reused until this store commits again.
///
/// A store that need not be durable at once (`sync = false`: replicated data) holds batches
/// back and commits them together, every [`PENDING_BATCHES`] batches or [`PENDING_BYTES`]
/// bytes, or on [`Storage::flush`]; it serves them from memory meanwhile. Those commits
/// are written by the database's commit thread while the node goes on; with one being
/// written, a store holds back up to four times the bounds before it waits for it (so it
/// holds at most eight times [`PENDING_BYTES`] in all). A commit that fails there is done
/// again on the store's own thread, whose error is the one reported. A crash
/// loses what was held back, as it loses a non-durable commit; the feed is still at an old
/// head or a newer one.
pub struct RedbStore {
    db: Arc<Files>,
    generation: Arc<AtomicU64>,
    committer: Option<Arc<Committer>>,
    /// Held-back batches being committed by the committer, served from memory until then.
    in_flight: Option<InFlight>,
    tables: Arc<Tables>,
    sync: bool,
    /// Entries held from the start, counting those held back.
    contiguous: Cell<u64>,
    /// The same, committed.
    committed: Cell<u64>,
    pending: Pending,
    /// Reads since the last commit share one read transaction.
    snapshot: RefCell<Option<Snapshot>>,
    /// The row read last: rows never change once written.
    row: RefCell<Option<Row>>,
    /// Rows past the committed prefix (a sparse download), first index → one past the last:
    /// read once at open and kept in memory, so that no write reads a row back.
    sparse: BTreeMap<u64, u64>,
    /// Keys of damaged rows past the prefix, ignored at open until rewritten.
    damaged: BTreeSet<u64>,
}

/// Batches most held back before they are committed.
pub const PENDING_BATCHES: usize = 256;
/// Entry bytes most held back before they are committed.
pub const PENDING_BYTES: usize = 1 << 20;
/// While a commit is being written: how many times those bounds are held back before the
/// store waits for it.
const IN_FLIGHT_HELD: usize = 4;

/// A job for the committer's thread.
type Job = Box<dyn FnOnce() + Send>;

/// A thread of the database's own that commits what stores hold back, so that the node's
/// thread goes on decrypting and verifying while a commit is written, and while redb waits
/// for the disk (it syncs the file whenever it makes it larger). One commit per store is in
/// flight at a time; a store with another to send waits for the first.
struct Committer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    fn start() -> Option<Committer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("isocore-commit".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .map_err(|e| tracing::warn!(%e, "no commit thread: stores commit on the node's"))
            .ok()?;
        Some(Committer { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Queues `job`; false if the thread is gone.
    fn submit(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok())
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Every store has waited for its commits before it went; this only ends the thread.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Held-back batches sent to the committer, and where its answer comes.
struct InFlight {
    held: Pending,
    reply: mpsc::Receiver<Result<Written, StoreError>>,
}

/// Batches applied and not yet committed, merged.
#[derive(Default)]
struct Pending {
    entries: BTreeMap<u64, Bytes>,
    nodes: BTreeMap<u64, Hash>,
    head: Option<SignedHead>,
    fork: Option<ForkProof>,
    batches: usize,
    bytes: usize,
}

struct Snapshot {
    /// The database's generation when it was taken.
    generation: u64,
    entries: redb::ReadOnlyTable<u64, &'static [u8]>,
    parts: redb::ReadOnlyTable<(u64, u32), &'static [u8]>,
    nodes: redb::ReadOnlyTable<u64, &'static [u8]>,
    /// The page read last (pages change, so it goes with the snapshot).
    page: Option<(u64, Page)>,
}

/// A row of entries: the first index and the encoded row.
struct Row {
    start: u64,
    bytes: Bytes,
}

const PAGE_NODES: u64 = 64;

impl Row {
    /// Entries in the encoded row `bytes` (one, for a row of parts).
    fn count(bytes: &[u8]) -> Result<u64, StoreError> {
        let n = bytes.get(..4).ok_or(corrupt("entry row"))?;
        match u32::from_le_bytes(n.try_into().expect("4 bytes")) {
            0 if bytes.len() == 8 || bytes.len() == FILE_ROW => Ok(1),
            0 => Err(corrupt("entry row")),
            n => Ok(u64::from(n)),
        }
    }

    fn len(&self) -> u64 {
        u64::from(u32::from_le_bytes(self.bytes[..4].try_into().expect("4 bytes")))
    }

    /// Entry `index`, if this row holds it.
    fn get(&self, index: u64) -> Option<Bytes> {
        let k = index.checked_sub(self.start).filter(|k| *k < self.len())? as usize;
        let n = self.len() as usize;
        let end_at =
            |j: usize| u32::from_le_bytes(self.bytes[4 + 4 * j..8 + 4 * j].try_into().expect("4 bytes")) as usize;
        let base = 4 + 4 * n;
        let from = if k == 0 { 0 } else { end_at(k - 1) };
        Some(self.bytes.slice(base + from..base + end_at(k)))
    }

    /// Writes the row of `entries` into `out`, which is exactly as long as the row: 4 bytes,
    /// 4 more per entry, and the entries.
    fn encode_into(entries: &[(u64, Bytes)], out: &mut [u8]) {
        out[..4].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        let mut end = 0u32;
        for (j, (_, e)) in entries.iter().enumerate() {
            end += e.len() as u32;
            out[4 + 4 * j..8 + 4 * j].copy_from_slice(&end.to_le_bytes());
        }
        let mut at = 4 + 4 * entries.len();
        for (_, e) in entries {
            out[at..at + e.len()].copy_from_slice(e);
            at += e.len();
        }
    }

    fn check(start: u64, bytes: Bytes) -> Result<Row, StoreError> {
        let n = bytes.get(..4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
        let ok = n.is_some_and(|n| {
            n > 0 && bytes.len() >= 4 + 4 * n && {
                let end = |j: usize| u32::from_le_bytes(bytes[4 + 4 * j..8 + 4 * j].try_into().expect("4 bytes"));
                (1..n).all(|j| end(j - 1) <= end(j)) && bytes.len() == 4 + 4 * n + end(n - 1) as usize
            }
        });
        if ok { Ok(Row { start, bytes }) } else { Err(corrupt("entry row")) }
    }
}

/// Up to 64 tree nodes, by `index % 64`.
#[derive(Clone)]
struct Page {
    present: u64,
    hashes: Vec<[u8; 32]>,
}

impl Page {
    fn decode(bytes: &[u8]) -> Result<Page, StoreError> {
        let present = u64::from_le_bytes(bytes.get(..8).ok_or(corrupt("node page"))?.try_into().expect("8 bytes"));
        let rest = &bytes[8..];
        if rest.len() != 32 * present.count_ones() as usize {
            return Err(corrupt("node page"));
        }
        Ok(Page { present, hashes: rest.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect() })
    }

    fn get(&self, slot: u64) -> Option<Hash> {
        (self.present & (1 << slot) != 0)
            .then(|| Hash(self.hashes[(self.present & ((1 << slot) - 1)).count_ones() as usize]))
    }

    fn set(&mut self, slot: u64, hash: &Hash) {
        if self.present & (1 << slot) == 0 {
            let at = (self.present & ((1 << slot) - 1)).count_ones() as usize;
            self.hashes.insert(at, hash.0);
            self.present |= 1 << slot;
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.hashes.len());
        out.extend_from_slice(&self.present.to_le_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }
}

/// One past the last index of the row in `rows` (first index → one past the last) that
/// holds entry `index`.
fn row_end(rows: &BTreeMap<u64, u64>, index: u64) -> Option<u64> {
    rows.range(..=index).next_back().map(|(_, end)| *end).filter(|end| index < *end)
}

/// Encoded bytes in one row at most: with redb's page and key overhead a row still fits a
/// 32 KiB page, and a row read to serve one entry costs at most this much copying.
const ROW_BYTES: usize = (32 << 10) - 256;
/// Bytes in each part of an entry too large for a row (the last may be shorter).
const PART_BYTES: usize = ROW_BYTES;
/// Bytes of the row of an entry in the entry file: `0: u32`, its length as `u32`, its offset
/// as `u64` and the CRC-32 of its bytes as `u32`, all little-endian.
const FILE_ROW: usize = 20;

/// The row holding entry `index` in `rows`, if any (an entry in parts or in the entry file
/// read back as a row of one entry).
fn row_at(
    rows: &impl ReadableTable<u64, &'static [u8]>,
    parts: &impl ReadableTable<(u64, u32), &'static [u8]>,
    file: &EntryFile,
    index: u64,
) -> Result<Option<Row>, StoreError> {
    let Some(found) = rows.range(..=index).map_err(err)?.next_back() else { return Ok(None) };
    let (start, value) = found.map_err(err)?;
    let (start, value) = (start.value(), value.value());
    let end = start.checked_add(Row::count(value)?).ok_or(corrupt("entry row"))?;
    if index >= end {
        return Ok(None);
    }
    if u32::from_le_bytes(value[..4].try_into().expect("4 bytes")) != 0 {
        return Row::check(start, Bytes::copy_from_slice(value)).map(Some);
    }
    let len = u32::from_le_bytes(value[4..8].try_into().expect("4 bytes")) as usize;
    if len > isocore_log::MAX_ENTRY_LEN {
        return Err(corrupt("entry row"));
    }
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    if value.len() == FILE_ROW {
        let at = u64::from_le_bytes(value[8..16].try_into().expect("8 bytes"));
        out.resize(8 + len, 0);
        file.read(at, &mut out[8..])?;
        if crc32fast::hash(&out[8..]).to_le_bytes() != value[16..20] {
            return Err(corrupt("entry file (an entry does not match its checksum)"));
        }
        return Ok(Some(Row { start, bytes: out.into() }));
    }
    for part in parts.range((start, 0)..=(start, u32::MAX)).map_err(err)? {
        let (_, bytes) = part.map_err(err)?;
        let bytes = bytes.value();
        let room = 8 + len - out.len();
        if bytes.len() > room || (bytes.len() < PART_BYTES && bytes.len() < room) {
            return Err(corrupt("entry part"));
        }
        out.extend_from_slice(bytes);
    }
    if out.len() != 8 + len {
        return Err(corrupt("entry part"));
    }
    Ok(Some(Row { start, bytes: out.into() }))
}

impl RedbStore {
    fn with_snapshot<T>(&self, f: impl FnOnce(&mut Snapshot) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut slot = self.snapshot.borrow_mut();
        let now = self.generation.load(Ordering::Acquire);
        if slot.as_ref().is_none_or(|s| s.generation != now) {
            *slot = None;
            let tx = self.db.begin_read().map_err(err)?;
            *slot = Some(Snapshot {
                generation: now,
                entries: tx.open_table(entries_table(&self.tables.entries)).map_err(err)?,
                parts: tx.open_table(parts_table(&self.tables.parts)).map_err(err)?,
                nodes: tx.open_table(nodes_table(&self.tables.nodes)).map_err(err)?,
                page: None,
            });
        }
        f(slot.as_mut().expect("just set"))
    }
}

impl Storage for RedbStore {
    fn head(&self) -> Result<Option<SignedHead>, StoreError> {
        if let Some(head) = self.held().find_map(|p| p.head) {
            return Ok(Some(head));
        }
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(HEADS).map_err(err)?;
        match table.get(&self.tables.id).map_err(err)? {
            Some(v) => postcard::from_bytes(v.value()).map(Some).map_err(|_| corrupt("head")),
            None => Ok(None),
        }
    }

    fn fork_proof(&self) -> Result<Option<ForkProof>, StoreError> {
        if let Some(fork) = self.held().find_map(|p| p.fork.as_ref()) {
            return Ok(Some(fork.clone()));
        }
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(FORKS).map_err(err)?;
        match table.get(&self.tables.id).map_err(err)? {
            Some(v) => postcard::from_bytes(v.value()).map(Some).map_err(|_| corrupt("fork proof")),
            None => Ok(None),
        }
    }

    fn entry(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        if let Some(e) = self.held_entry(index) {
            return Ok(Some(e.clone()));
        }
        if let Some(e) = self.row.borrow().as_ref().and_then(|r| r.get(index)) {
            return Ok(Some(e));
        }
        let Some(row) = self.with_snapshot(|s| row_at(&s.entries, &s.parts, &self.db.entries, index))? else {
            return Ok(None);
        };
        let entry = row.get(index);
        *self.row.borrow_mut() = Some(row);
        Ok(entry)
    }

    fn contains(&self, index: u64) -> Result<bool, StoreError> {
        // Every committed row is in the prefix or in `sparse`: no read needed.
        Ok(index < self.committed.get() || self.held_entry(index).is_some() || row_end(&self.sparse, index).is_some())
    }

    fn node(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        if let Some(h) = self.held().find_map(|p| p.nodes.get(&index)) {
            return Ok(Some(*h));
        }
        let (page, slot) = (index / PAGE_NODES, index % PAGE_NODES);
        self.with_snapshot(|s| {
            if let Some((p, cached)) = &s.page
                && *p == page
            {
                return Ok(cached.get(slot));
            }
            let Some(bytes) = s.nodes.get(page).map_err(err)? else { return Ok(None) };
            let decoded = Page::decode(bytes.value())?;
            let hash = decoded.get(slot);
            s.page = Some((page, decoded));
            Ok(hash)
        })
    }

    fn contiguous(&self) -> Result<u64, StoreError> {
        Ok(self.contiguous.get())
    }

    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        // Absorbs a commit written meanwhile; a commit here must start from the layout the
        // last one left (a durable store never sends: waiting is only a guard).
        self.settle(self.sync)?;
        if self.sync {
            // Durable before it returns; a durable store holds nothing back.
            return self.commit(batch, Durability::Immediate);
        }
        if batch.entries.len() >= 64 {
            // Large enough to be its own commit: holding it back would only copy it again.
            self.flush()?;
            return self.commit(batch, Durability::None);
        }
        let mut contiguous = self.contiguous.get();
        for (index, entry) in batch.entries {
            if index >= contiguous && self.held_entry(index).is_none() {
                self.pending.bytes += entry.len();
                self.pending.entries.insert(index, entry);
            }
        }
        self.pending.nodes.extend(batch.nodes);
        self.pending.head = batch.head.or(self.pending.head);
        self.pending.fork = batch.fork.or(self.pending.fork.take());
        self.pending.batches += 1;
        loop {
            if self.held_entry(contiguous).is_some() {
                contiguous += 1;
            } else if let Some(end) = row_end(&self.sparse, contiguous) {
                contiguous = end;
            } else {
                break;
            }
        }
        self.contiguous.set(contiguous);
        let due = self.pending.batches >= PENDING_BATCHES || self.pending.bytes >= PENDING_BYTES;
        // While a commit is being written, more is held back rather than waited for, up to a
        // bound: a slow commit (redb syncing a grown file) is then followed by a larger one.
        let full = self.pending.batches >= IN_FLIGHT_HELD * PENDING_BATCHES
            || self.pending.bytes >= IN_FLIGHT_HELD * PENDING_BYTES;
        if due && (self.in_flight.is_none() || full) {
            self.send()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.settle(true)?;
        self.commit_pending()
    }
}

impl Pending {
    /// Takes back `older`, sent before and not written: what is held here is newer.
    fn take_back(&mut self, older: Pending) {
        for (index, entry) in older.entries {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.entries.entry(index) {
                self.bytes += entry.len();
                slot.insert(entry);
            }
        }
        for (index, hash) in older.nodes {
            self.nodes.entry(index).or_insert(hash);
        }
        self.head = self.head.or(older.head);
        self.fork = self.fork.take().or(older.fork);
        self.batches += older.batches.max(1);
    }

    fn to_batch(&self) -> WriteBatch {
        WriteBatch {
            entries: self.entries.iter().map(|(i, e)| (*i, e.clone())).collect(),
            nodes: self.nodes.iter().map(|(i, h)| (*i, *h)).collect(),
            head: self.head,
            fork: self.fork.clone(),
        }
    }
}

/// One feed's tables, by name.
struct Tables {
    id: [u8; 32],
    entries: String,
    parts: String,
    nodes: String,
}

/// What a feed has committed, as the rows of a new commit are laid out from it.
struct Committed<'a> {
    /// The committed prefix.
    prefix: u64,
    sparse: &'a BTreeMap<u64, u64>,
    damaged: &'a BTreeSet<u64>,
}

/// What a commit wrote.
struct Written {
    /// Rows: first index → one past the last.
    rows: BTreeMap<u64, u64>,
    /// The committed prefix after it.
    contiguous: u64,
}

/// Writes `batch` in one transaction (the store's memory is updated from the result by
/// [`RedbStore::absorb`]; a failed write changes nothing read, though it may leave bytes no
/// row points to in the entry file).
fn write_batch(
    db: &Files,
    t: &Tables,
    base: Committed<'_>,
    batch: WriteBatch,
    durability: Durability,
) -> Result<Written, StoreError> {
    let durable = !matches!(durability, Durability::None);
    let mut tx = db.begin_write().map_err(err)?;
    tx.set_durability(durability).map_err(|e| StoreError(Box::new(e)))?;
    // Rows are written from the committed prefix on: held-back entries are not in it.
    let committed = base.prefix;
    let mut contiguous = committed;
    // Rows this commit writes: first index → one past the last.
    let mut written = BTreeMap::new();
    {
        let mut entries = tx.open_table(entries_table(&t.entries)).map_err(err)?;
        // Entries held neither in the prefix nor in a sparse row, in order.
        let mut fresh: Vec<(u64, Bytes)> =
            batch.entries.into_iter().filter(|(i, _)| *i >= contiguous && row_end(base.sparse, *i).is_none()).collect();
        fresh.sort_unstable_by_key(|(i, _)| *i);
        fresh.dedup_by_key(|(i, _)| *i);
        // One row per run of consecutive indices, of at most ROW_BYTES encoded; an entry
        // too large for a row alone goes in the entry file, or in parts if durable.
        let mut parts = tx.open_table(parts_table(&t.parts)).map_err(err)?;
        let mut at = 0;
        while at < fresh.len() {
            let mut end = at + 1;
            // The run's row, encoded.
            let mut bytes = 8 + fresh[at].1.len();
            while end < fresh.len()
                && fresh[end].0 == fresh[end - 1].0 + 1
                && bytes + 4 + fresh[end].1.len() <= ROW_BYTES
            {
                bytes += 4 + fresh[end].1.len();
                end += 1;
            }
            let run = &fresh[at..end];
            if bytes <= ROW_BYTES {
                // Encoded straight into the database page.
                let mut slot = entries.insert_reserve(run[0].0, bytes).map_err(err)?;
                Row::encode_into(run, slot.as_mut());
            } else {
                let (index, entry) = &run[0];
                let len = u32::try_from(entry.len()).map_err(|_| StoreError("an entry of 4 GiB or more".into()))?;
                let mut marker = [0u8; FILE_ROW];
                marker[4..8].copy_from_slice(&len.to_le_bytes());
                if !durable {
                    marker[8..16].copy_from_slice(&db.entries.append(entry)?.to_le_bytes());
                    // redb checksums its pages; the file's bytes are checked by their row.
                    marker[16..].copy_from_slice(&crc32fast::hash(entry).to_le_bytes());
                    entries.insert(*index, &marker[..]).map_err(err)?;
                } else {
                    // Parts are synced with the database: a durable commit waits for the entry
                    // file only if replicated entries were appended since its last sync.
                    entries.insert(*index, &marker[..8]).map_err(err)?;
                    for (part, bytes) in entry.chunks(PART_BYTES).enumerate() {
                        parts.insert((*index, part as u32), bytes).map_err(err)?;
                    }
                }
            }
            let span = (run[0].0, run[0].0 + run.len() as u64);
            // A damaged row keyed inside this run would shadow it.
            for k in base.damaged.range(span.0 + 1..span.1) {
                entries.remove(*k).map_err(err)?;
            }
            written.insert(span.0, span.1);
            at = end;
        }
        // Advance over the rows that now follow on from the prefix.
        while let Some(end) = row_end(&written, contiguous).or_else(|| row_end(base.sparse, contiguous)) {
            contiguous = end;
        }
        if contiguous != committed {
            tx.open_table(CONTIGUOUS).map_err(err)?.insert(&t.id, contiguous).map_err(err)?;
        }
        let mut nodes = tx.open_table(nodes_table(&t.nodes)).map_err(err)?;
        let mut sorted: Vec<&(u64, Hash)> = batch.nodes.iter().collect();
        sorted.sort_unstable_by_key(|(i, _)| *i);
        let mut at = 0;
        while at < sorted.len() {
            let page = sorted[at].0 / PAGE_NODES;
            let mut p = match nodes.get(page).map_err(err)? {
                Some(v) => Page::decode(v.value())?,
                None => Page { present: 0, hashes: Vec::new() },
            };
            while at < sorted.len() && sorted[at].0 / PAGE_NODES == page {
                p.set(sorted[at].0 % PAGE_NODES, &sorted[at].1);
                at += 1;
            }
            nodes.insert(page, &p.encode()[..]).map_err(err)?;
        }
        if let Some(head) = &batch.head {
            let bytes = postcard::to_allocvec(head).expect("a Vec cannot fail");
            tx.open_table(HEADS).map_err(err)?.insert(&t.id, &bytes[..]).map_err(err)?;
        }
        if let Some(fork) = &batch.fork {
            let bytes = postcard::to_allocvec(fork).expect("a Vec cannot fail");
            tx.open_table(FORKS).map_err(err)?.insert(&t.id, &bytes[..]).map_err(err)?;
        }
    }
    if durable {
        // Rows of earlier commits may point into the entry file.
        db.entries.sync()?;
    }
    tx.commit().map_err(err)?;
    Ok(Written { rows: written, contiguous })
}

impl RedbStore {
    /// What is held back: waiting, then being committed.
    fn held(&self) -> impl Iterator<Item = &Pending> {
        std::iter::once(&self.pending).chain(self.in_flight.as_ref().map(|f| &f.held))
    }

    fn held_entry(&self, index: u64) -> Option<&Bytes> {
        self.held().find_map(|p| p.entries.get(&index))
    }

    /// Sends what is held back to the committer (after its last commit for this store is
    /// absorbed), or commits it here if there is no committer.
    fn send(&mut self) -> Result<(), StoreError> {
        let Some(committer) = self.committer.clone() else { return self.flush() };
        self.settle(true)?;
        if self.pending.batches == 0 {
            return Ok(());
        }
        let held = std::mem::take(&mut self.pending);
        let batch = held.to_batch();
        let (db, generation, tables) = (self.db.clone(), self.generation.clone(), self.tables.clone());
        let (prefix, sparse, damaged) = (self.committed.get(), self.sparse.clone(), self.damaged.clone());
        let (answer, reply) = mpsc::channel();
        let job = move || {
            let base = Committed { prefix, sparse: &sparse, damaged: &damaged };
            let written = write_batch(&db, &tables, base, batch, Durability::None);
            if written.is_ok() {
                // Other stores' snapshots need not wait for this one to absorb it.
                generation.fetch_add(1, Ordering::AcqRel);
            }
            let _ = answer.send(written);
        };
        if !committer.submit(Box::new(job)) {
            self.pending = held;
            return self.flush();
        }
        self.in_flight = Some(InFlight { held, reply });
        Ok(())
    }

    /// Absorbs the committer's answer for this store, waiting for it if `wait`. A failed
    /// commit's batches are held back again and committed here at once, so that an error
    /// returned is always that of a commit on this thread, with everything still held back.
    fn settle(&mut self, wait: bool) -> Result<(), StoreError> {
        let Some(in_flight) = &self.in_flight else { return Ok(()) };
        let gone = || Err(StoreError("the commit thread is gone".into()));
        let answer = if wait {
            in_flight.reply.recv().unwrap_or_else(|_| gone())
        } else {
            match in_flight.reply.try_recv() {
                Ok(answer) => answer,
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => gone(),
            }
        };
        let in_flight = self.in_flight.take().expect("checked above");
        match answer {
            Ok(written) => {
                self.absorb(written);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(%e, "a commit on the commit thread failed; committing here instead");
                self.pending.take_back(in_flight.held);
                self.commit_pending()
            }
        }
    }

    /// Commits what is held back, on this thread.
    fn commit_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.batches == 0 {
            return Ok(());
        }
        // Cloned (entries are shared buffers), so that a failed commit keeps them held back
        // and still served: nothing is lost until it is written.
        self.commit(self.pending.to_batch(), Durability::None)?;
        self.pending = Pending::default();
        Ok(())
    }

    /// Writes `batch` in one transaction on this thread, then updates what this store keeps
    /// in memory.
    fn commit(&mut self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        let base = Committed { prefix: self.committed.get(), sparse: &self.sparse, damaged: &self.damaged };
        let written = write_batch(&self.db, &self.tables, base, batch, durability)?;
        self.absorb(written);
        Ok(())
    }

    /// Updates what this store keeps in memory after a commit; only then, so that a failed
    /// commit leaves the store as it was.
    fn absorb(&mut self, written: Written) {
        let Written { rows, contiguous } = written;
        self.damaged.retain(|k| row_end(&rows, *k).is_none());
        self.sparse.extend(rows);
        self.sparse = self.sparse.split_off(&contiguous);
        // Entries held back since may reach further.
        self.contiguous.set(self.contiguous.get().max(contiguous));
        self.committed.set(contiguous);
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.snapshot.borrow_mut() = None;
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(%e, "writing held-back entries failed");
        }
    }
}

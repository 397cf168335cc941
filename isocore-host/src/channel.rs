//! Feeds for processes: the `isocore:channel` interface and the store behind it.
//!
//! A process opens a feed by its key; the host hands out a `feed` handle only if the app was
//! granted the feed's channel at install ([`crate::app::Request::Channel`], path `/`, mode
//! read or above), and allows `append` only with write. What is behind the handle is the
//! embedder's: a [`Channels`] given to [`crate::Node::set_channels`]. The node binary puts its
//! replicated, redb-backed feeds there, so an append is signed, stored and pushed to the
//! feed's subscribers on other nodes; [`LocalChannels`] keeps feeds in memory for tests and
//! nodes without a network.

use crate::app::Request;
use crate::node::ProcState;
use crate::{CALL_TAG, bindings};
use ed25519_dalek::SigningKey;
use isocore_cap::{Mode, Path};
use isocore_log::{Feed, FeedKey, MemoryStore};
use std::collections::BTreeMap;
use std::sync::Mutex;
use wasmtime::component::Resource;

use bindings::isocore::channel::channel as wit;

/// Most entries one `append` takes.
pub const MAX_APPEND_ENTRIES: usize = 1024;
/// Largest entry a process may append.
pub const MAX_ENTRY_LEN: usize = 1 << 20;
/// Most feed subscriptions one process makes.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// Told of a feed's new length; returns `false` once it wants no more.
pub type Notify = Box<dyn FnMut(u64) -> bool + Send>;

/// Why a feed operation failed, as the embedder reports it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No such feed here.
    #[error("no such feed")]
    Unknown,
    /// The entry is not held.
    #[error("entry not held")]
    Missing,
    /// The node does not write the feed, or its store failed.
    #[error("{0}")]
    Failed(String),
}

/// The feeds a node lets its processes use. Called from the host's executor threads: an
/// implementation must not block for long.
pub trait Channels: Send + Sync + 'static {
    /// Entries of `feed` held from the start.
    fn len(&self, feed: &FeedKey) -> Result<u64, ChannelError>;
    /// Entry `index` of `feed`.
    fn read(&self, feed: &FeedKey, index: u64) -> Result<Vec<u8>, ChannelError>;
    /// Appends to a feed this node writes; returns the new length.
    fn append(&self, feed: &FeedKey, entries: Vec<Vec<u8>>) -> Result<u64, ChannelError>;
    /// Calls `notify` with the new length whenever `feed` grows, until it returns `false`.
    fn subscribe(&self, feed: &FeedKey, notify: Notify) -> Result<(), ChannelError>;
}

/// A feed handle, as a process holds it.
pub struct FeedRef {
    key: FeedKey,
    write: bool,
}

/// The feed's key as a process sees it: 32 bytes for a standalone feed, else channel ‖ writer.
fn key_bytes(key: &FeedKey) -> Vec<u8> {
    if key.channel() == key.writer().as_bytes() {
        key.channel().to_vec()
    } else {
        [&key.channel()[..], key.writer().as_bytes()].concat()
    }
}

fn parse_key(bytes: &[u8]) -> Option<FeedKey> {
    let (channel, writer): ([u8; 32], [u8; 32]) = match bytes.len() {
        32 => (bytes.try_into().ok()?, bytes.try_into().ok()?),
        64 => (bytes[..32].try_into().ok()?, bytes[32..].try_into().ok()?),
        _ => return None,
    };
    FeedKey::from_bytes(channel, &writer).ok()
}

/// The mode granted for `channel` by an app's grants: the highest of those for the whole
/// channel (path `/`). Grants under a narrower path give no feed access: entries carry no
/// paths at this layer, so a handle could not be held to one.
pub fn granted_mode(grants: &[Request], channel: &[u8; 32]) -> Option<Mode> {
    grants
        .iter()
        .filter_map(|g| match g {
            Request::Channel { channel: c, mode, path, .. }
                if c == channel && Path::parse(path).is_some_and(|p| p.is_empty()) =>
            {
                Some(*mode)
            }
            _ => None,
        })
        .max()
        .filter(|m| *m >= Mode::Read as u8)
        .map(|m| if m >= Mode::Write as u8 { Mode::Write } else { Mode::Read })
}

fn wit_error(e: ChannelError) -> wit::Error {
    match e {
        ChannelError::Unknown => wit::Error::Unknown,
        ChannelError::Missing => wit::Error::Missing,
        ChannelError::Failed(_) => wit::Error::Failed,
    }
}

impl ProcState {
    fn feed(&self, handle: &Resource<FeedRef>) -> wasmtime::Result<(FeedKey, bool)> {
        let r = self.table().get(handle)?;
        Ok((r.key, r.write))
    }
}

impl wit::Host for ProcState {
    fn open(&mut self, key: Vec<u8>) -> wasmtime::Result<Result<Resource<FeedRef>, wit::Error>> {
        let Some(key) = parse_key(&key) else { return Ok(Err(wit::Error::Invalid)) };
        let Some(mode) = granted_mode(&self.app_grants(), key.channel()) else { return Ok(Err(wit::Error::Denied)) };
        if self.channels().is_none() {
            return Ok(Err(wit::Error::Unknown));
        }
        Ok(self.table_mut().push(FeedRef { key, write: mode == Mode::Write }).map_err(|_| wit::Error::Limit))
    }
}

impl wit::HostFeed for ProcState {
    fn key(&mut self, handle: Resource<FeedRef>) -> wasmtime::Result<Vec<u8>> {
        Ok(key_bytes(&self.feed(&handle)?.0))
    }

    fn len(&mut self, handle: Resource<FeedRef>) -> wasmtime::Result<Result<u64, wit::Error>> {
        let (key, _) = self.feed(&handle)?;
        let Some(channels) = self.channels() else { return Ok(Err(wit::Error::Unknown)) };
        Ok(channels.len(&key).map_err(wit_error))
    }

    fn read(&mut self, handle: Resource<FeedRef>, index: u64) -> wasmtime::Result<Result<Vec<u8>, wit::Error>> {
        let (key, _) = self.feed(&handle)?;
        let Some(channels) = self.channels() else { return Ok(Err(wit::Error::Unknown)) };
        Ok(channels.read(&key, index).map_err(wit_error))
    }

    fn append(
        &mut self,
        handle: Resource<FeedRef>,
        entries: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<u64, wit::Error>> {
        let (key, write) = self.feed(&handle)?;
        if !write {
            return Ok(Err(wit::Error::Denied));
        }
        if entries.is_empty() || entries.len() > MAX_APPEND_ENTRIES || entries.iter().any(|e| e.len() > MAX_ENTRY_LEN) {
            return Ok(Err(wit::Error::Limit));
        }
        let Some(channels) = self.channels() else { return Ok(Err(wit::Error::Unknown)) };
        Ok(channels.append(&key, entries).map_err(wit_error))
    }

    fn subscribe(&mut self, handle: Resource<FeedRef>, tag: u64) -> wasmtime::Result<Result<(), wit::Error>> {
        let (key, _) = self.feed(&handle)?;
        if tag >= CALL_TAG {
            return Ok(Err(wit::Error::Invalid));
        }
        if self.subscriptions >= MAX_SUBSCRIPTIONS {
            return Ok(Err(wit::Error::Limit));
        }
        let Some(channels) = self.channels() else { return Ok(Err(wit::Error::Unknown)) };
        self.subscriptions += 1;
        let mailbox = self.mailbox_handle();
        let notify: Notify = Box::new(move |length| {
            // A full mailbox misses this one; the next growth, or `len`, tells the rest.
            !matches!(mailbox.send(tag, length.to_le_bytes().to_vec(), None), Err(crate::SendError::Gone))
        });
        Ok(channels.subscribe(&key, notify).map_err(wit_error))
    }

    fn drop(&mut self, handle: Resource<FeedRef>) -> wasmtime::Result<()> {
        self.table_mut().delete(handle)?;
        Ok(())
    }
}

struct LocalFeed {
    feed: Feed<MemoryStore>,
    signer: Option<SigningKey>,
    watchers: Vec<Notify>,
}

/// Feeds by (channel, writer).
type FeedMap = BTreeMap<([u8; 32], [u8; 32]), LocalFeed>;

/// Feeds kept in memory by the host itself, written with keys it holds.
#[derive(Default)]
pub struct LocalChannels {
    feeds: Mutex<FeedMap>,
}

impl LocalChannels {
    /// No feeds yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a feed written by `signer` (a standalone feed: its key is the signer's key).
    pub fn create(&self, signer: SigningKey) -> FeedKey {
        let key = FeedKey::standalone(signer.verifying_key());
        let feed = Feed::open(key, MemoryStore::new()).expect("a memory store opens");
        self.lock().insert(map_key(&key), LocalFeed { feed, signer: Some(signer), watchers: Vec::new() });
        key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedMap> {
        self.feeds.lock().expect("channels lock")
    }
}

fn map_key(key: &FeedKey) -> ([u8; 32], [u8; 32]) {
    (*key.channel(), *key.writer().as_bytes())
}

impl Channels for LocalChannels {
    fn len(&self, feed: &FeedKey) -> Result<u64, ChannelError> {
        Ok(self.lock().get(&map_key(feed)).ok_or(ChannelError::Unknown)?.feed.contiguous_len())
    }

    fn read(&self, feed: &FeedKey, index: u64) -> Result<Vec<u8>, ChannelError> {
        let feeds = self.lock();
        let f = feeds.get(&map_key(feed)).ok_or(ChannelError::Unknown)?;
        match f.feed.get(index) {
            Ok(Some(e)) => Ok(e.to_vec()),
            Ok(None) => Err(ChannelError::Missing),
            Err(e) => Err(ChannelError::Failed(e.to_string())),
        }
    }

    fn append(&self, feed: &FeedKey, entries: Vec<Vec<u8>>) -> Result<u64, ChannelError> {
        let mut feeds = self.lock();
        let f = feeds.get_mut(&map_key(feed)).ok_or(ChannelError::Unknown)?;
        let signer =
            f.signer.clone().ok_or_else(|| ChannelError::Failed("this node does not write the feed".into()))?;
        let head = f.feed.append(&signer, entries).map_err(|e| ChannelError::Failed(e.to_string()))?;
        f.watchers.retain_mut(|w| w(head.length));
        Ok(head.length)
    }

    fn subscribe(&self, feed: &FeedKey, notify: Notify) -> Result<(), ChannelError> {
        self.lock().get_mut(&map_key(feed)).ok_or(ChannelError::Unknown)?.watchers.push(notify);
        Ok(())
    }
}

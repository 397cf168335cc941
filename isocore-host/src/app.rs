//! Apps as channels of versions: a release is a feed entry naming a component by digest,
//! followed by the component's bytes in chunk entries of the same feed. Replicating the feed
//! from any peer fetches both; the writer's signatures cover both.
//!
//! ```text
//! entry i          0x01 ‖ postcard(Release)     (canonical: decoding re-encodes to the same bytes)
//! entries i+1..=i+k 0x02 ‖ up to 256 KiB of the component
//! ```
//!
//! Installing checks, in order: the feed is not forked; the release decodes; its chunks are
//! held and hash to its digest; the bytes are a valid component (never a precompiled
//! artifact) importing only `isocore:*` interfaces, exactly those the release declares; and
//! the user approves the capabilities it requests. An upgrade that asks for more than was
//! granted before needs fresh consent.

use crate::{App, HostError, Node};
use isocore_cap::{Mode, Path};
use isocore_log::{Feed, Storage};
use serde::{Deserialize, Serialize};

/// First byte of a release entry.
pub const RELEASE_TAG: u8 = 1;
/// First byte of a chunk entry.
pub const CHUNK_TAG: u8 = 2;
/// Component bytes per chunk entry.
pub const CHUNK_LEN: usize = 256 << 10;
/// Largest component, in bytes.
pub const MAX_COMPONENT_LEN: u64 = 16 << 20;
/// Largest encoded release.
pub const MAX_RELEASE_LEN: usize = 64 << 10;
/// Most strings in a list field, and most requests.
pub const MAX_ITEMS: usize = 64;
/// Longest string field.
pub const MAX_TEXT: usize = 1024;
/// The world every app component implements.
pub const WORLD: &str = "isocore:process/actor@0.1.0";

/// A capability an app asks for; the user grants a subset at install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Access to a channel at `mode` under `path` (text form, `/a/b`).
    Channel {
        /// The channel id.
        channel: [u8; 32],
        /// Relay 0, Read 1, Write 2, Admin 3.
        mode: u8,
        /// The path prefix.
        path: String,
        /// Why the app needs it, shown to the user.
        reason: String,
    },
    /// Calls to `interface` on the node `node`.
    Invoke {
        /// The node key.
        node: [u8; 32],
        /// The interface name and version.
        interface: String,
        /// Why the app needs it.
        reason: String,
    },
}

impl Request {
    /// Whether granting `self` already grants everything `other` asks for.
    pub fn covers(&self, other: &Request) -> bool {
        match (self, other) {
            (
                Request::Channel { channel: c, mode: m, path: p, .. },
                Request::Channel { channel: c2, mode: m2, path: p2, .. },
            ) => {
                let (Some(p), Some(p2)) = (Path::parse(p), Path::parse(p2)) else { return false };
                c == c2 && m2 <= m && p.covers(&p2)
            }
            (Request::Invoke { node: n, interface: i, .. }, Request::Invoke { node: n2, interface: i2, .. }) => {
                n == n2 && i == i2
            }
            _ => false,
        }
    }

    fn valid(&self) -> bool {
        match self {
            Request::Channel { mode, path, reason, .. } => {
                *mode <= Mode::Admin as u8
                    && path.len() <= MAX_TEXT
                    && Path::parse(path).is_some()
                    && reason.len() <= MAX_TEXT
            }
            Request::Invoke { interface, reason, .. } => interface.len() <= MAX_TEXT && reason.len() <= MAX_TEXT,
        }
    }
}

/// Limits an app asks to run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppLimits {
    /// Linear memory per process, in bytes.
    pub memory: u64,
    /// Processes at once.
    pub processes: u32,
}

/// One release of an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Semantic version.
    pub version: (u32, u32, u32),
    /// BLAKE3 of the component's bytes.
    pub component: [u8; 32],
    /// The component's length in bytes.
    pub size: u64,
    /// The world it implements ([`WORLD`]).
    pub world: String,
    /// Interfaces it imports, sorted.
    pub imports: Vec<String>,
    /// Interfaces it exports for other nodes to call, sorted.
    pub exports: Vec<String>,
    /// Capabilities it asks for.
    pub requests: Vec<Request>,
    /// Limits it asks for.
    pub limits: AppLimits,
    /// Release notes.
    pub notes: String,
}

/// Why a release could not be published or installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The app's feed holds a fork proof: its author signed two histories.
    #[error("the app channel is forked; not installing from it")]
    Forked,
    /// No release at the position asked for (or none at all).
    #[error("no release at {0}")]
    NoRelease(String),
    /// The release entry is not a canonical encoding within bounds.
    #[error("malformed release: {0}")]
    Malformed(&'static str),
    /// Some chunk entries are not held yet: replicate the feed further.
    #[error("component bytes not replicated yet (entry {0} missing)")]
    NotReplicated(u64),
    /// The bytes do not hash to the release's digest.
    #[error("component bytes do not match the release digest")]
    WrongDigest,
    /// The component's actual imports differ from the release's list.
    #[error("the component imports {actual:?}, the release declares {declared:?}")]
    ManifestMismatch {
        /// What the component imports.
        actual: Vec<String>,
        /// What the release says.
        declared: Vec<String>,
    },
    /// An upgrade asks for capabilities the user has not granted.
    #[error("the release asks for {0} capabilities not granted before; it needs fresh consent")]
    NeedsConsent(usize),
    /// The node refused the component.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The feed's store failed.
    #[error("store: {0}")]
    Store(String),
}

impl Release {
    /// A release of version `version` for a component with these (sorted) imports; the
    /// digest and size are filled in when it is published.
    pub fn new(version: (u32, u32, u32), imports: Vec<String>, requests: Vec<Request>, limits: AppLimits) -> Release {
        Release {
            version,
            component: [0; 32],
            size: 0,
            world: WORLD.into(),
            imports,
            exports: Vec::new(),
            requests,
            limits,
            notes: String::new(),
        }
    }

    /// The release entry's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RELEASE_TAG];
        out.extend(postcard::to_allocvec(self).expect("a release always encodes"));
        out
    }

    /// Strictly decodes a release entry: the tag, at most [`MAX_RELEASE_LEN`] bytes, every
    /// list and string within bounds, and the canonical encoding (no trailing bytes, no
    /// second spelling of any value).
    pub fn decode(entry: &[u8]) -> Result<Release, InstallError> {
        let malformed = InstallError::Malformed;
        if entry.len() > MAX_RELEASE_LEN {
            return Err(malformed("too long"));
        }
        let Some((&RELEASE_TAG, body)) = entry.split_first() else { return Err(malformed("not a release entry")) };
        let (release, rest): (Release, _) =
            postcard::take_from_bytes(body).map_err(|_| malformed("does not decode"))?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        if postcard::to_allocvec(&release).map_err(|_| malformed("does not re-encode"))? != body {
            return Err(malformed("not canonical"));
        }
        // Strictly ascending: sorted, and no second spelling by repeating an item.
        let ascending = |l: &Vec<String>| l.windows(2).all(|w| w[0] < w[1]);
        let lists_ok = [&release.imports, &release.exports]
            .iter()
            .all(|l| l.len() <= MAX_ITEMS && l.iter().all(|s| s.len() <= MAX_TEXT) && ascending(l));
        if !lists_ok || release.requests.len() > MAX_ITEMS || !release.requests.iter().all(Request::valid) {
            return Err(malformed("a list or string out of bounds"));
        }
        if release.world.len() > MAX_TEXT || release.notes.len() > MAX_TEXT * 16 {
            return Err(malformed("a string out of bounds"));
        }
        if release.size == 0 || release.size > MAX_COMPONENT_LEN {
            return Err(malformed("component size out of bounds"));
        }
        Ok(release)
    }

    /// Chunk entries that follow the release.
    pub fn chunks(&self) -> u64 {
        self.size.div_ceil(CHUNK_LEN as u64)
    }
}

/// The entries that publish `component` as `release` (whose digest and size are filled in).
pub fn release_entries(mut release: Release, component: &[u8]) -> Vec<Vec<u8>> {
    release.component = blake3::hash(component).into();
    release.size = component.len() as u64;
    let mut entries = vec![release.encode()];
    for chunk in component.chunks(CHUNK_LEN) {
        let mut e = Vec::with_capacity(chunk.len() + 1);
        e.push(CHUNK_TAG);
        e.extend_from_slice(chunk);
        entries.push(e);
    }
    entries
}

/// Appends a release and its component to the app's feed, in one signed batch. Returns the
/// release's position.
pub fn publish<S: Storage>(
    feed: &mut Feed<S>,
    author: &ed25519_dalek::SigningKey,
    release: Release,
    component: &[u8],
) -> Result<u64, InstallError> {
    let at = feed.len();
    let entries = release_entries(release, component);
    feed.append(author, entries).map_err(|e| InstallError::Store(e.to_string()))?;
    Ok(at)
}

/// Which release to install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// The newest release held.
    Latest,
    /// The release at this position (rolling back is pinning an older one).
    At(u64),
}

/// What the user decides about an app's requests.
pub trait Consent {
    /// Returns the requests the user approves, out of `asked` (those not granted before).
    fn approve(&mut self, release: &Release, asked: &[Request]) -> Vec<Request>;
}

impl<F: FnMut(&Release, &[Request]) -> Vec<Request>> Consent for F {
    fn approve(&mut self, release: &Release, asked: &[Request]) -> Vec<Request> {
        self(release, asked)
    }
}

/// An installed release: what runs, and what it was granted.
#[derive(Clone)]
pub struct Installed {
    /// Position of the release in the app's feed.
    pub at: u64,
    /// The release.
    pub release: Release,
    /// What the user granted.
    pub granted: Vec<Request>,
    /// The loaded component.
    pub app: App,
}

/// Finds the release `pin` names in `feed`.
pub fn find_release<S: Storage>(feed: &Feed<S>, pin: Pin) -> Result<(u64, Release), InstallError> {
    let get = |i: u64| feed.get(i).map_err(|e| InstallError::Store(e.to_string()));
    match pin {
        Pin::At(i) => {
            let entry = get(i)?.ok_or_else(|| InstallError::NoRelease(format!("position {i}")))?;
            Ok((i, Release::decode(&entry)?))
        }
        Pin::Latest => {
            for i in (0..feed.contiguous_len()).rev() {
                if let Some(entry) = get(i)?
                    && entry.first() == Some(&RELEASE_TAG)
                {
                    return Ok((i, Release::decode(&entry)?));
                }
            }
            Err(InstallError::NoRelease("any position".into()))
        }
    }
}

/// Finds the release `pin` names and checks it: the feed is not forked, the chunks are held
/// and hash to the digest, the bytes are a component the node accepts, and its imports are
/// the ones declared. Grants nothing.
pub fn check_release<S: Storage>(node: &Node, feed: &Feed<S>, pin: Pin) -> Result<(u64, Release, App), InstallError> {
    if feed.fork_proof().is_some() {
        return Err(InstallError::Forked);
    }
    let (at, release) = find_release(feed, pin)?;
    let mut bytes = Vec::with_capacity(release.size as usize);
    for i in at + 1..=at + release.chunks() {
        let entry =
            feed.get(i).map_err(|e| InstallError::Store(e.to_string()))?.ok_or(InstallError::NotReplicated(i))?;
        let Some((&CHUNK_TAG, chunk)) = entry.split_first() else {
            return Err(InstallError::Malformed("a chunk entry expected"));
        };
        bytes.extend_from_slice(chunk);
        if bytes.len() as u64 > release.size {
            return Err(InstallError::WrongDigest);
        }
    }
    if bytes.len() as u64 != release.size || *blake3::hash(&bytes).as_bytes() != release.component {
        return Err(InstallError::WrongDigest);
    }
    let app = node.load(&bytes)?;
    let mut actual = app.imports().to_vec();
    actual.sort();
    if actual != release.imports {
        return Err(InstallError::ManifestMismatch { actual, declared: release.imports.clone() });
    }
    Ok((at, release, app))
}

/// Installs (or upgrades to) the release `pin` of the app in `feed`. With `previous` (what
/// the user granted the installed release), requests it already covers are granted again
/// without asking; any others must all be approved, or the upgrade is refused.
pub fn install<S: Storage>(
    node: &Node,
    feed: &Feed<S>,
    pin: Pin,
    consent: &mut dyn Consent,
    previous: Option<&[Request]>,
) -> Result<Installed, InstallError> {
    let (at, release, app) = check_release(node, feed, pin)?;
    let kept: Vec<Request> = previous.map_or(Vec::new(), |granted| {
        release.requests.iter().filter(|r| granted.iter().any(|g| g.covers(r))).cloned().collect()
    });
    let asked: Vec<Request> = release.requests.iter().filter(|r| !kept.contains(r)).cloned().collect();
    let approved: Vec<Request> = if asked.is_empty() {
        Vec::new()
    } else {
        consent.approve(&release, &asked).into_iter().filter(|r| asked.contains(r)).collect()
    };
    if previous.is_some() && approved.len() < asked.len() {
        return Err(InstallError::NeedsConsent(asked.len() - approved.len()));
    }
    let granted = [kept, approved].concat();
    app.set_grants(granted.clone());
    app.set_exports(release.exports.clone());
    Ok(Installed { at, release, granted, app })
}

/// The processes of one installed app. Upgrading (or rolling back) restarts them on the new
/// release with the arguments they were started with.
pub struct Running {
    installed: Installed,
    processes: Vec<(crate::Pid, Vec<u8>)>,
}

impl Running {
    /// Nothing running yet.
    pub fn new(installed: Installed) -> Self {
        Running { installed, processes: Vec::new() }
    }

    /// Starts a process of the app.
    pub fn start(&mut self, node: &Node, init: &[u8]) -> Result<crate::Pid, HostError> {
        if self.processes.len() >= self.installed.release.limits.processes as usize {
            return Err(HostError::Limit("the app's process count"));
        }
        let limits = crate::Limits { memory: self.installed.release.limits.memory as usize, ..node.default_limits() };
        let pid = node.spawn_with(&self.installed.app, init, limits)?;
        self.processes.push((pid, init.to_vec()));
        Ok(pid)
    }

    /// The release running.
    pub fn installed(&self) -> &Installed {
        &self.installed
    }

    /// The app's processes, in start order.
    pub fn pids(&self) -> Vec<crate::Pid> {
        self.processes.iter().map(|(p, _)| *p).collect()
    }

    /// Stops every process and starts each again on `next`.
    pub fn upgrade(&mut self, node: &Node, next: Installed) -> Result<(), HostError> {
        self.stop(node);
        let inits: Vec<Vec<u8>> = self.processes.drain(..).map(|(_, init)| init).collect();
        self.installed = next;
        for init in inits {
            self.start(node, &init)?;
        }
        Ok(())
    }

    /// Kills every process of the app.
    pub fn stop(&mut self, node: &Node) {
        for (pid, _) in &self.processes {
            node.kill(*pid);
        }
    }
}

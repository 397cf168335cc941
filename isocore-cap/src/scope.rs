//! The authority lattice: modes, paths, key ranges, windows and Invoke scopes, and the
//! verified [`Capability`] that holds one of each.

use crate::LinkId;
use crate::chain::Root;
use crate::error::{Dimension, Refused};
use alloc::vec::Vec;

/// Most path components a capability or request may name, in total.
pub const MAX_PATH_COMPONENTS: usize = 16;
/// Longest path component, in bytes.
pub const MAX_COMPONENT_LEN: usize = 64;
/// Most links in a chain; also the delegation depth a root grants.
pub const MAX_LINKS: usize = 8;

/// What a channel capability lets its holder do; each mode includes those below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Mode {
    /// Store, verify and forward the channel's (encrypted) entries.
    Relay = 0,
    /// Also read them.
    Read = 1,
    /// Also append.
    Write = 2,
    /// Also grant for the whole channel. (Revoking a grant takes the channel root key or
    /// an issuer at or above it in the grant's chain, `spec/cap.md` §8.)
    Admin = 3,
}

impl Mode {
    pub(crate) fn from_bits(bits: u8) -> Mode {
        match bits & 3 {
            0 => Mode::Relay,
            1 => Mode::Read,
            2 => Mode::Write,
            _ => Mode::Admin,
        }
    }
}

/// Whether `c` may be a path component: 1 to 64 bytes, not `.` or `..`, no `/` and no NUL,
/// so that the text form `/a/b` reads back as the same components.
pub fn valid_component(c: &[u8]) -> bool {
    !c.is_empty() && c.len() <= MAX_COMPONENT_LEN && c != b"." && c != b".." && !c.iter().any(|&b| b == b'/' || b == 0)
}

/// A path: a sequence of components. One path covers another when it is a component-wise
/// prefix of it, so `/photos` covers `/photos/2024` but never `/photos2`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path {
    components: Vec<Vec<u8>>,
}

impl Path {
    /// The empty path, which covers every path.
    pub fn root() -> Path {
        Path::default()
    }

    /// A path from components, or `None` if one is invalid or there are too many.
    pub fn from_components<C: AsRef<[u8]>>(components: &[C]) -> Option<Path> {
        if components.len() > MAX_PATH_COMPONENTS || !components.iter().all(|c| valid_component(c.as_ref())) {
            return None;
        }
        Some(Path { components: components.iter().map(|c| c.as_ref().to_vec()).collect() })
    }

    /// Parses the text form: `/` alone, or `/`-separated components with a leading `/`.
    pub fn parse(text: &str) -> Option<Path> {
        let rest = text.strip_prefix('/')?;
        if rest.is_empty() {
            return Some(Path::root());
        }
        let parts: Vec<&[u8]> = rest.split('/').map(str::as_bytes).collect();
        Path::from_components(&parts)
    }

    /// The components, root first.
    pub fn components(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.components.iter().map(Vec::as_slice)
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.components.len()
    }

    /// Whether this is the root path.
    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// Whether `self` is a component-wise prefix of `other`.
    pub fn covers(&self, other: &Path) -> bool {
        self.components.len() <= other.components.len()
            && self.components.iter().zip(&other.components).all(|(a, b)| a == b)
    }

    pub(crate) fn push(&mut self, component: &[u8]) {
        self.components.push(component.to_vec());
    }
}

/// A half-open range `[start, end)` of the `u64` keys a resource defines (for a channel, the
/// positions of entries in a feed). The full range is `[0, u64::MAX)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// First key in the range.
    pub start: u64,
    /// One past the last key.
    pub end: u64,
}

impl KeyRange {
    /// Every key.
    pub const FULL: KeyRange = KeyRange { start: 0, end: u64::MAX };

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: u64) -> bool {
        self.start <= key && key < self.end
    }

    /// Whether `other` lies within `self`.
    pub fn includes(&self, other: &KeyRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// Validity in seconds since the Unix epoch: from `not_before` (inclusive) to `expires`
/// (exclusive). `expires == u64::MAX` means no expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// First second of validity.
    pub not_before: u64,
    /// First second of invalidity.
    pub expires: u64,
}

impl Window {
    /// Always valid.
    pub const ALWAYS: Window = Window { not_before: 0, expires: u64::MAX };

    /// Whether the window is open at `now` for a verifier whose clock may be off by `skew`
    /// seconds either way: `not_before ≤ now + skew` and `now − skew < expires`.
    pub fn check(&self, now: u64, skew: u64) -> Result<(), Refused> {
        if now.saturating_add(skew) < self.not_before {
            return Err(Refused::NotYetValid);
        }
        if now.saturating_sub(skew) >= self.expires {
            return Err(Refused::Expired);
        }
        Ok(())
    }

    /// Whether `other` lies within `self`.
    pub fn includes(&self, other: &Window) -> bool {
        self.not_before <= other.not_before && other.expires <= self.expires
    }
}

/// Which calls an Invoke capability allows. `None` means not yet narrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InvokeScope {
    /// The component (BLAKE3 of its bytes), once fixed.
    pub component: Option<[u8; 32]>,
    /// The interface ([`interface_id`](crate::interface_id)), once fixed.
    pub interface: Option<[u8; 32]>,
    /// Allowed methods as a bit set over method indices 0..64 of the interface.
    pub methods: u64,
    /// Most fuel a single call may spend, if limited.
    pub fuel: Option<u64>,
    /// Most calls per minute, if limited (enforced by the executor).
    pub rate: Option<u64>,
}

impl InvokeScope {
    /// Every component, interface and method, without budgets.
    pub const ANY: InvokeScope =
        InvokeScope { component: None, interface: None, methods: u64::MAX, fuel: None, rate: None };

    /// Whether `other` allows nothing `self` does not.
    pub fn includes(&self, other: &InvokeScope) -> bool {
        fn fixed(parent: Option<[u8; 32]>, child: Option<[u8; 32]>) -> bool {
            parent.is_none() || parent == child
        }
        fn budget(parent: Option<u64>, child: Option<u64>) -> bool {
            match (parent, child) {
                (None, _) => true,
                (Some(p), Some(c)) => c <= p,
                (Some(_), None) => false,
            }
        }
        fixed(self.component, other.component)
            && fixed(self.interface, other.interface)
            && other.methods & !self.methods == 0
            && budget(self.fuel, other.fuel)
            && budget(self.rate, other.rate)
    }
}

/// The authority a chain carries after its last link: every dimension at once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    /// Channel mode (always `Relay` in Invoke chains, where it has no meaning).
    pub mode: Mode,
    /// Path prefix.
    pub path: Path,
    /// Key range.
    pub range: KeyRange,
    /// Validity window.
    pub window: Window,
    /// Call scope (always [`InvokeScope::ANY`] in channel chains, where it has no meaning).
    pub invoke: InvokeScope,
    /// Re-delegations still allowed below this point.
    pub depth: u8,
}

impl Scope {
    /// What a root issuer holds before any link.
    pub fn of_root(root: &Root) -> Scope {
        Scope {
            mode: root.max_mode(),
            path: Path::root(),
            range: KeyRange::FULL,
            window: Window::ALWAYS,
            invoke: InvokeScope::ANY,
            depth: MAX_LINKS as u8,
        }
    }

    /// Whether `other` is within `self` in every dimension (depth included).
    pub fn includes(&self, other: &Scope) -> bool {
        other.mode <= self.mode
            && self.path.covers(&other.path)
            && self.range.includes(&other.range)
            && self.window.includes(&other.window)
            && self.invoke.includes(&other.invoke)
            && other.depth <= self.depth
    }
}

/// What a holder asks to do with a capability.
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// Act on a channel: at `mode`, under `path`, on `key`.
    Channel {
        /// The mode needed.
        mode: Mode,
        /// The path acted on.
        path: &'a Path,
        /// The key acted on (for a channel, an entry position).
        key: u64,
    },
    /// Call `method` of `interface` on `component`, spending up to `fuel`.
    Invoke {
        /// The component called.
        component: &'a [u8; 32],
        /// The interface called.
        interface: &'a [u8; 32],
        /// The method's index in the interface.
        method: u8,
        /// The fuel the call may spend.
        fuel: u64,
    },
}

/// A capability that verified: its root, its scope, who holds it, and the links it rests on.
///
/// Only [`verify`](crate::verify) and the caches built on it make these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    pub(crate) root: Root,
    pub(crate) scope: Scope,
    pub(crate) holder: [u8; 32],
    pub(crate) links: Vec<LinkId>,
    pub(crate) issuers: Vec<[u8; 32]>,
}

impl Capability {
    /// The resource and its root issuer.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The authority carried.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The key of the last link's audience: the only key that may exercise it. Callers check
    /// that it equals the key proven at the point of use (a session peer, an invocation
    /// signer, an entry's author, a component key).
    pub fn holder(&self) -> &[u8; 32] {
        &self.holder
    }

    /// The id of the last link, which names the whole chain.
    pub fn head(&self) -> &LinkId {
        self.links.last().expect("a verified chain has at least one link")
    }

    /// Link ids, root first.
    pub fn links(&self) -> &[LinkId] {
        &self.links
    }

    /// Whether the capability covers `access`; if not, the first dimension that falls short.
    pub fn permits(&self, access: &Access<'_>) -> Result<(), Refused> {
        let s = &self.scope;
        match *access {
            Access::Channel { mode, path, key } => {
                if !self.root.is_channel() {
                    return Err(Refused::NotCovered(Dimension::Mode));
                }
                if mode > s.mode {
                    return Err(Refused::NotCovered(Dimension::Mode));
                }
                if !s.path.covers(path) {
                    return Err(Refused::NotCovered(Dimension::Path));
                }
                if !s.range.contains(key) {
                    return Err(Refused::NotCovered(Dimension::Range));
                }
            }
            Access::Invoke { component, interface, method, fuel } => {
                if self.root.is_channel() {
                    return Err(Refused::NotCovered(Dimension::Component));
                }
                let i = &s.invoke;
                if i.component.is_some_and(|c| &c != component) {
                    return Err(Refused::NotCovered(Dimension::Component));
                }
                if i.interface.is_some_and(|c| &c != interface) {
                    return Err(Refused::NotCovered(Dimension::Interface));
                }
                if method >= 64 || i.methods & (1 << method) == 0 {
                    return Err(Refused::NotCovered(Dimension::Methods));
                }
                if i.fuel.is_some_and(|f| fuel > f) {
                    return Err(Refused::NotCovered(Dimension::Fuel));
                }
            }
        }
        Ok(())
    }
}

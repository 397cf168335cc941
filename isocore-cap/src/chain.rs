//! Delegation chains: their canonical encoding, ids, and making new links.
//!
//! ```text
//! Chain   := version:u8 (1) ‖ root ‖ count:u8 (1..=8) ‖ Link × count
//! root    := 0 ‖ channel:[32] | 1 ‖ channel:[32] ‖ epoch:varint | 2 ‖ channel:[32] ‖ epoch:varint
//!          | 3 ‖ node:[32]
//! Link    := payload ‖ signature:[64]
//! payload := flags:u8 ‖ audience:[32] ‖ depth:u8 ‖ [not_before:varint] ‖ [expires:varint]
//!            ‖ [path] ‖ [range] ‖ [invoke]
//! ```
//!
//! `spec/cap.md` §4 defines every field. Narrowing is structural: a link's path only appends
//! components and its range only trims the parent's, so neither can be wider than its parent.

use crate::error::{DecodeError, Dimension, Refused};
use crate::scope::{KeyRange, MAX_LINKS, MAX_PATH_COMPONENTS, Mode, Path, Scope, valid_component};
use crate::wire::{Reader, put_varint};
use crate::{LinkId, context};
use alloc::vec::Vec;
use ed25519_dalek::{Signer, SigningKey};

/// Version byte of chains, revocations and invocations in this revision.
pub const VERSION: u8 = 1;
/// Longest encoded chain, in bytes. Checked before anything is decoded.
pub const MAX_CHAIN_LEN: usize = 4096;

const FLAG_NOT_BEFORE: u8 = 1 << 2;
const FLAG_EXPIRES: u8 = 1 << 3;
const FLAG_PATH: u8 = 1 << 4;
const FLAG_RANGE: u8 = 1 << 5;
const FLAG_INVOKE: u8 = 1 << 6;
const FLAG_RESERVED: u8 = 1 << 7;

const INVOKE_COMPONENT: u8 = 1 << 0;
const INVOKE_INTERFACE: u8 = 1 << 1;
const INVOKE_METHODS: u8 = 1 << 2;
const INVOKE_FUEL: u8 = 1 << 3;
const INVOKE_RATE: u8 = 1 << 4;
const INVOKE_RESERVED: u8 = !0x1f;

/// Where a chain's authority comes from, and so who signs its first link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Root {
    /// The channel's root key itself (the channel id): up to Admin.
    Channel([u8; 32]),
    /// The write-auth key the channel published for `epoch` (`spec/cap.md` §3): up to Write.
    WriteAuth {
        /// The channel id.
        channel: [u8; 32],
        /// The key-ladder epoch.
        epoch: u64,
    },
    /// The read-auth key the channel published for `epoch`: up to Read.
    ReadAuth {
        /// The channel id.
        channel: [u8; 32],
        /// The key-ladder epoch.
        epoch: u64,
    },
    /// A node's identity key, for Invoke capabilities on the components it hosts.
    Node([u8; 32]),
}

impl Root {
    /// The channel id or node key this root speaks for.
    pub fn subject(&self) -> &[u8; 32] {
        match self {
            Root::Channel(k) | Root::Node(k) => k,
            Root::WriteAuth { channel, .. } | Root::ReadAuth { channel, .. } => channel,
        }
    }

    /// Whether chains from this root carry channel authority (rather than Invoke).
    pub fn is_channel(&self) -> bool {
        !matches!(self, Root::Node(_))
    }

    /// The widest mode this root can grant.
    pub fn max_mode(&self) -> Mode {
        match self {
            Root::Channel(_) => Mode::Admin,
            Root::WriteAuth { .. } => Mode::Write,
            Root::ReadAuth { .. } => Mode::Read,
            Root::Node(_) => Mode::Relay,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Root::Channel(k) => {
                out.push(0);
                out.extend_from_slice(k);
            }
            Root::WriteAuth { channel, epoch } | Root::ReadAuth { channel, epoch } => {
                out.push(if matches!(self, Root::WriteAuth { .. }) { 1 } else { 2 });
                out.extend_from_slice(channel);
                put_varint(out, *epoch);
            }
            Root::Node(k) => {
                out.push(3);
                out.extend_from_slice(k);
            }
        }
    }

    /// The chain-root id: what the first link is bound to (`spec/cap.md` §4.3).
    pub fn id(&self) -> LinkId {
        let mut header = Vec::with_capacity(48);
        header.push(VERSION);
        self.encode_into(&mut header);
        root_id(&header)
    }
}

fn root_id(header: &[u8]) -> LinkId {
    LinkId(blake3::Hasher::new_derive_key(context::CHAIN_ROOT).update(header).finalize().into())
}

/// The narrowing fields of one Invoke link; each `None` keeps the parent's value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InvokeFields {
    /// Fixes the component (allowed only while the parent leaves it open).
    pub component: Option<[u8; 32]>,
    /// Fixes the interface (allowed only while the parent leaves it open).
    pub interface: Option<[u8; 32]>,
    /// A subset of the parent's methods.
    pub methods: Option<u64>,
    /// A fuel budget no larger than the parent's.
    pub fuel: Option<u64>,
    /// A call rate no larger than the parent's.
    pub rate: Option<u64>,
}

impl InvokeFields {
    fn is_empty(&self) -> bool {
        *self == InvokeFields::default()
    }
}

/// The decoded fields of a link payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LinkBody {
    /// Who receives the authority; the issuer of the next link.
    pub audience: [u8; 32],
    /// Mode granted (always `Relay` in Invoke chains).
    pub mode: Mode,
    /// Re-delegations the audience may still make; strictly below the parent's.
    pub depth: u8,
    /// A later start of validity, if any.
    pub not_before: Option<u64>,
    /// An earlier end of validity, if any.
    pub expires: Option<u64>,
    /// Components appended to the parent's path.
    pub path: Vec<Vec<u8>>,
    /// `(skip, trim)`: the child range is `[parent.start + skip, parent.end − trim)`.
    pub range: Option<(u64, u64)>,
    /// Invoke narrowing.
    pub invoke: InvokeFields,
}

impl LinkBody {
    /// Appends the canonical payload encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut flags = self.mode as u8;
        flags |= if self.not_before.is_some() { FLAG_NOT_BEFORE } else { 0 };
        flags |= if self.expires.is_some() { FLAG_EXPIRES } else { 0 };
        flags |= if self.path.is_empty() { 0 } else { FLAG_PATH };
        flags |= if self.range.is_some() { FLAG_RANGE } else { 0 };
        flags |= if self.invoke.is_empty() { 0 } else { FLAG_INVOKE };
        out.push(flags);
        out.extend_from_slice(&self.audience);
        out.push(self.depth);
        if let Some(t) = self.not_before {
            put_varint(out, t);
        }
        if let Some(t) = self.expires {
            put_varint(out, t);
        }
        if !self.path.is_empty() {
            out.push(self.path.len() as u8);
            for c in &self.path {
                out.push(c.len() as u8);
                out.extend_from_slice(c);
            }
        }
        if let Some((skip, trim)) = self.range {
            put_varint(out, skip);
            put_varint(out, trim);
        }
        if !self.invoke.is_empty() {
            let i = &self.invoke;
            let mut f = 0;
            f |= if i.component.is_some() { INVOKE_COMPONENT } else { 0 };
            f |= if i.interface.is_some() { INVOKE_INTERFACE } else { 0 };
            f |= if i.methods.is_some() { INVOKE_METHODS } else { 0 };
            f |= if i.fuel.is_some() { INVOKE_FUEL } else { 0 };
            f |= if i.rate.is_some() { INVOKE_RATE } else { 0 };
            out.push(f);
            if let Some(c) = &i.component {
                out.extend_from_slice(c);
            }
            if let Some(c) = &i.interface {
                out.extend_from_slice(c);
            }
            for v in [i.methods, i.fuel, i.rate].into_iter().flatten() {
                put_varint(out, v);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, link: u8, channel: bool, components: &mut usize) -> Result<LinkBody, DecodeError> {
        let flags = r.u8()?;
        let bad_flags = DecodeError::BadFlags { link };
        if flags & FLAG_RESERVED != 0 {
            return Err(bad_flags);
        }
        if channel && flags & FLAG_INVOKE != 0 {
            return Err(bad_flags);
        }
        if !channel && flags & (3 | FLAG_PATH | FLAG_RANGE) != 0 {
            return Err(bad_flags);
        }
        let audience = r.array()?;
        let depth = r.u8()?;
        let not_before = if flags & FLAG_NOT_BEFORE != 0 { Some(r.varint()?) } else { None };
        let expires = if flags & FLAG_EXPIRES != 0 { Some(r.varint()?) } else { None };
        let mut path = Vec::new();
        if flags & FLAG_PATH != 0 {
            let count = usize::from(r.u8()?);
            *components += count;
            if count == 0 || *components > MAX_PATH_COMPONENTS {
                return Err(DecodeError::BadPath { link });
            }
            path.reserve_exact(count);
            for _ in 0..count {
                let len = usize::from(r.u8()?);
                let c = r.take(len)?;
                if !valid_component(c) {
                    return Err(DecodeError::BadPath { link });
                }
                path.push(c.to_vec());
            }
        }
        let range = if flags & FLAG_RANGE != 0 {
            let skip_trim = (r.varint()?, r.varint()?);
            if skip_trim == (0, 0) {
                return Err(DecodeError::BadValue);
            }
            Some(skip_trim)
        } else {
            None
        };
        let mut invoke = InvokeFields::default();
        if flags & FLAG_INVOKE != 0 {
            let f = r.u8()?;
            if f & INVOKE_RESERVED != 0 {
                return Err(bad_flags);
            }
            if f == 0 {
                return Err(DecodeError::BadValue);
            }
            if f & INVOKE_COMPONENT != 0 {
                invoke.component = Some(r.array()?);
            }
            if f & INVOKE_INTERFACE != 0 {
                invoke.interface = Some(r.array()?);
            }
            if f & INVOKE_METHODS != 0 {
                invoke.methods = Some(r.varint()?);
            }
            if f & INVOKE_FUEL != 0 {
                invoke.fuel = Some(r.varint()?);
            }
            if f & INVOKE_RATE != 0 {
                invoke.rate = Some(r.varint()?);
            }
        }
        Ok(LinkBody { audience, mode: Mode::from_bits(flags), depth, not_before, expires, path, range, invoke })
    }

    /// The scope after this link, or why the link is wider than `parent` allows.
    pub fn narrow(&self, parent: &Scope, link: u8) -> Result<Scope, Refused> {
        let widened = |dimension| Refused::Widened { link, dimension };
        if self.mode > parent.mode {
            return Err(widened(Dimension::Mode));
        }
        if self.depth >= parent.depth {
            return Err(widened(Dimension::Depth));
        }
        let mut window = parent.window;
        if let Some(t) = self.not_before {
            if t < parent.window.not_before {
                return Err(widened(Dimension::Window));
            }
            window.not_before = t;
        }
        if let Some(t) = self.expires {
            if t > parent.window.expires {
                return Err(widened(Dimension::Window));
            }
            window.expires = t;
        }
        if window.not_before >= window.expires {
            return Err(Refused::EmptyWindow { link });
        }
        let mut range = parent.range;
        if let Some((skip, trim)) = self.range {
            range.start = parent.range.start.checked_add(skip).ok_or(widened(Dimension::Range))?;
            range.end = parent.range.end.checked_sub(trim).ok_or(widened(Dimension::Range))?;
            if range.start > range.end {
                return Err(widened(Dimension::Range));
            }
        }
        let mut path = parent.path.clone();
        for c in &self.path {
            path.push(c);
        }
        let mut invoke = parent.invoke;
        let i = &self.invoke;
        if i.component.is_some() {
            if parent.invoke.component.is_some() {
                return Err(widened(Dimension::Component));
            }
            invoke.component = i.component;
        }
        if i.interface.is_some() {
            if parent.invoke.interface.is_some() {
                return Err(widened(Dimension::Interface));
            }
            invoke.interface = i.interface;
        }
        if let Some(m) = i.methods {
            if m & !parent.invoke.methods != 0 {
                return Err(widened(Dimension::Methods));
            }
            invoke.methods = m;
        }
        if let Some(f) = i.fuel {
            if parent.invoke.fuel.is_some_and(|p| f > p) {
                return Err(widened(Dimension::Fuel));
            }
            invoke.fuel = Some(f);
        }
        if let Some(f) = i.rate {
            if parent.invoke.rate.is_some_and(|p| f > p) {
                return Err(widened(Dimension::Rate));
            }
            invoke.rate = Some(f);
        }
        Ok(Scope { mode: self.mode, path, range, window, invoke, depth: self.depth })
    }
}

/// One decoded, not yet verified link: its fields and the exact bytes they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnverifiedLink<'a> {
    /// The exact payload bytes received (what is signed and hashed).
    pub payload: &'a [u8],
    /// The signature over the payload.
    pub signature: [u8; 64],
    /// The decoded payload.
    pub body: LinkBody,
}

/// A decoded chain that nothing has checked beyond its encoding. Only
/// [`verify`](crate::verify) turns one into a [`Capability`](crate::Capability).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnverifiedChain<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) header: &'a [u8],
    pub(crate) root: Root,
    pub(crate) links: Vec<UnverifiedLink<'a>>,
}

impl<'a> UnverifiedChain<'a> {
    /// Strictly decodes a chain: at most [`MAX_CHAIN_LEN`] bytes, every varint shortest,
    /// no reserved bits, no trailing bytes, every path component valid.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_CHAIN_LEN {
            return Err(DecodeError::TooLong { len: bytes.len(), max: MAX_CHAIN_LEN });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let kind = r.u8()?;
        let root = match kind {
            0 => Root::Channel(r.array()?),
            1 => Root::WriteAuth { channel: r.array()?, epoch: r.varint()? },
            2 => Root::ReadAuth { channel: r.array()?, epoch: r.varint()? },
            3 => Root::Node(r.array()?),
            k => return Err(DecodeError::UnknownRoot(k)),
        };
        let header = &bytes[..r.position()];
        let count = r.u8()?;
        if count == 0 || usize::from(count) > MAX_LINKS {
            return Err(DecodeError::LinkCount(count));
        }
        let mut links = Vec::with_capacity(usize::from(count));
        let mut components = 0;
        for n in 1..=count {
            let start = r.position();
            let body = LinkBody::decode(&mut r, n, root.is_channel(), &mut components)?;
            let payload = &bytes[start..r.position()];
            let signature = r.array()?;
            links.push(UnverifiedLink { payload, signature, body });
        }
        r.finish()?;
        Ok(UnverifiedChain { bytes, header, root, links })
    }

    /// The root the chain claims.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The links, root first.
    pub fn links(&self) -> &[UnverifiedLink<'a>] {
        &self.links
    }

    /// The exact bytes decoded.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Link ids, root first. They are computed over the received bytes and need no signature
    /// check, so they can be looked up (in a revocation set, a cache) before verifying.
    pub fn link_ids(&self) -> Vec<LinkId> {
        let mut parent = root_id(self.header);
        self.links
            .iter()
            .map(|l| {
                parent = link_id(&parent, l.payload, &l.signature);
                parent
            })
            .collect()
    }

    /// Encodes the decoded fields again. Equal to [`as_bytes`](Self::as_bytes) for anything
    /// [`decode`](Self::decode) accepted (the canonical-form property the tests check).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        out.push(VERSION);
        self.root.encode_into(&mut out);
        out.push(self.links.len() as u8);
        for l in &self.links {
            l.body.encode_into(&mut out);
            out.extend_from_slice(&l.signature);
        }
        out
    }

    pub(crate) fn root_id(&self) -> LinkId {
        root_id(self.header)
    }
}

/// `derive_key(link-id, parent_id ‖ payload ‖ signature)`.
pub(crate) fn link_id(parent: &LinkId, payload: &[u8], signature: &[u8; 64]) -> LinkId {
    let mut h = blake3::Hasher::new_derive_key(context::LINK_ID);
    h.update(&parent.0).update(payload).update(signature);
    LinkId(h.finalize().into())
}

/// The bytes a link's issuer signs: the link context, the parent id, the payload.
pub(crate) fn link_message(parent: &LinkId, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context::LINK_SIG.len() + 32 + payload.len());
    m.extend_from_slice(context::LINK_SIG);
    m.extend_from_slice(&parent.0);
    m.extend_from_slice(payload);
    m
}

/// Why [`Grant::issue`] or [`Grant::delegate`] refused to make a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelegateError {
    /// The link would be wider than its parent in this dimension.
    Widens(Dimension),
    /// The validity window would be empty.
    EmptyWindow,
    /// The signing key is not the parent's holder (or not the root's key).
    NotHolder,
    /// The chain already has [`MAX_LINKS`] links, or the path too many components.
    TooLong,
    /// The parent bytes do not decode.
    Decode(DecodeError),
}

impl core::fmt::Display for DelegateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DelegateError::Widens(d) => write!(f, "would widen the {d}"),
            DelegateError::EmptyWindow => f.write_str("empty validity window"),
            DelegateError::NotHolder => f.write_str("the signing key does not hold this capability"),
            DelegateError::TooLong => f.write_str("chain or path at its limit"),
            DelegateError::Decode(e) => write!(f, "parent chain: {e}"),
        }
    }
}

impl core::error::Error for DelegateError {}

/// What a new link grants, in absolute terms; anything unset is inherited from the parent.
/// [`Grant::delegate`] refuses, rather than silently clamps, anything wider than the parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    audience: [u8; 32],
    mode: Option<Mode>,
    depth: Option<u8>,
    not_before: Option<u64>,
    expires: Option<u64>,
    path: Option<Path>,
    range: Option<KeyRange>,
    invoke: InvokeFields,
}

impl Grant {
    /// A grant to `audience` of everything the parent holds, with one less re-delegation.
    pub fn to(audience: [u8; 32]) -> Grant {
        Grant {
            audience,
            mode: None,
            depth: None,
            not_before: None,
            expires: None,
            path: None,
            range: None,
            invoke: InvokeFields::default(),
        }
    }
    /// Grant this mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }
    /// Allow this many further re-delegations (0: the audience cannot delegate).
    pub fn depth(mut self, depth: u8) -> Self {
        self.depth = Some(depth);
        self
    }
    /// Valid from this second.
    pub fn not_before(mut self, t: u64) -> Self {
        self.not_before = Some(t);
        self
    }
    /// Valid until this second (exclusive).
    pub fn expires(mut self, t: u64) -> Self {
        self.expires = Some(t);
        self
    }
    /// Under this path (which the parent's path must cover).
    pub fn path(mut self, path: Path) -> Self {
        self.path = Some(path);
        self
    }
    /// Within this key range (which the parent's range must include).
    pub fn range(mut self, range: KeyRange) -> Self {
        self.range = Some(range);
        self
    }
    /// Only this component.
    pub fn component(mut self, id: [u8; 32]) -> Self {
        self.invoke.component = Some(id);
        self
    }
    /// Only this interface.
    pub fn interface(mut self, id: [u8; 32]) -> Self {
        self.invoke.interface = Some(id);
        self
    }
    /// Only these methods (a bit set over method indices).
    pub fn methods(mut self, methods: u64) -> Self {
        self.invoke.methods = Some(methods);
        self
    }
    /// At most this much fuel per call.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.invoke.fuel = Some(fuel);
        self
    }
    /// At most this many calls per minute.
    pub fn rate(mut self, rate: u64) -> Self {
        self.invoke.rate = Some(rate);
        self
    }

    /// The link body that narrows `parent` to this grant, or which dimension it would widen.
    fn body(&self, parent: &Scope, channel: bool) -> Result<LinkBody, DelegateError> {
        let widens = DelegateError::Widens;
        let depth = match self.depth {
            Some(d) => d,
            None => parent.depth.checked_sub(1).ok_or(widens(Dimension::Depth))?,
        };
        let path = match &self.path {
            None => Vec::new(),
            Some(p) if parent.path.covers(p) => p.components().skip(parent.path.len()).map(<[u8]>::to_vec).collect(),
            Some(_) => return Err(widens(Dimension::Path)),
        };
        let range = match self.range {
            None => None,
            Some(r) if !parent.range.includes(&r) || r.start > r.end => return Err(widens(Dimension::Range)),
            Some(r) => Some((r.start - parent.range.start, parent.range.end - r.end)).filter(|&d| d != (0, 0)),
        };
        let mode = match self.mode {
            Some(_) if !channel => return Err(widens(Dimension::Mode)),
            Some(m) => m,
            None => parent.mode,
        };
        if !channel && !path.is_empty() {
            return Err(widens(Dimension::Path));
        }
        if !channel && range.is_some() {
            return Err(widens(Dimension::Range));
        }
        if channel && !self.invoke.is_empty() {
            return Err(widens(Dimension::Component));
        }
        // Fields equal to what the parent already fixed are left out; the rest go in and are
        // checked by the same rule the verifier applies.
        let p = &parent.invoke;
        let invoke = InvokeFields {
            component: self.invoke.component.filter(|c| p.component != Some(*c)),
            interface: self.invoke.interface.filter(|c| p.interface != Some(*c)),
            methods: self.invoke.methods.filter(|&m| m != p.methods),
            fuel: self.invoke.fuel.filter(|&f| p.fuel != Some(f)),
            rate: self.invoke.rate.filter(|&f| p.rate != Some(f)),
        };
        let body = LinkBody {
            audience: self.audience,
            mode,
            depth,
            not_before: self.not_before.filter(|&t| t != parent.window.not_before),
            expires: self.expires.filter(|&t| t != parent.window.expires),
            path,
            range,
            invoke,
        };
        match body.narrow(parent, 1) {
            Ok(_) => Ok(body),
            Err(Refused::Widened { dimension, .. }) => Err(widens(dimension)),
            Err(_) => Err(DelegateError::EmptyWindow),
        }
    }

    /// A new one-link chain from `root`, signed by `issuer`: the channel's root key, the
    /// epoch's write-auth or read-auth key, or the node key.
    pub fn issue(&self, root: Root, issuer: &SigningKey) -> Result<Vec<u8>, DelegateError> {
        if matches!(root, Root::Channel(k) | Root::Node(k) if issuer.verifying_key().to_bytes() != k) {
            return Err(DelegateError::NotHolder);
        }
        let body = self.body(&Scope::of_root(&root), root.is_channel())?;
        if body.path.len() > MAX_PATH_COMPONENTS {
            return Err(DelegateError::TooLong);
        }
        let mut out = Vec::with_capacity(160);
        out.push(VERSION);
        root.encode_into(&mut out);
        let parent = root_id(&out);
        out.push(1);
        sign_link(&mut out, &parent, &body, issuer);
        Ok(out)
    }

    /// Appends a link to `parent` (the chain whose verified form is `held`), signed by
    /// `holder`, which must be `held`'s holder.
    pub fn delegate(
        &self,
        parent: &[u8],
        held: &crate::Capability,
        holder: &SigningKey,
    ) -> Result<Vec<u8>, DelegateError> {
        if holder.verifying_key().to_bytes() != *held.holder() {
            return Err(DelegateError::NotHolder);
        }
        let chain = UnverifiedChain::decode(parent).map_err(DelegateError::Decode)?;
        if chain.links.len() >= MAX_LINKS {
            return Err(DelegateError::TooLong);
        }
        let body = self.body(held.scope(), held.root().is_channel())?;
        if held.scope().path.len() + body.path.len() > MAX_PATH_COMPONENTS {
            return Err(DelegateError::TooLong);
        }
        let mut out = Vec::with_capacity(parent.len() + 160);
        out.extend_from_slice(chain.header);
        out.push(chain.links.len() as u8 + 1);
        out.extend_from_slice(&parent[chain.header.len() + 1..]);
        sign_link(&mut out, held.head(), &body, holder);
        if out.len() > MAX_CHAIN_LEN {
            return Err(DelegateError::TooLong);
        }
        Ok(out)
    }
}

fn sign_link(out: &mut Vec<u8>, parent: &LinkId, body: &LinkBody, signer: &SigningKey) {
    let start = out.len();
    body.encode_into(out);
    let signature = signer.sign(&link_message(parent, &out[start..]));
    out.extend_from_slice(&signature.to_bytes());
}

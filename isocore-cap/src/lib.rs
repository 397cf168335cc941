//! Capabilities for Isocore: authority that is held, narrowed and passed on, with a verifier
//! that is strict, deterministic and cheap on the second look.
//!
//! There are no accounts. Whoever holds a capability can act, and can hand on a narrower one:
//!
//! - **the key ladder** ([`ladder`]) narrows without a signature: a channel epoch's write
//!   seed yields its read seed in one hash, and nothing climbs back up;
//! - **delegation chains** ([`chain`]) narrow in every other dimension: each link is signed
//!   by the current holder for the next audience and can only append to the path, trim the
//!   key range, shorten the window, drop modes and methods and lower budgets;
//! - [`verify`] turns an [`UnverifiedChain`] into a [`Capability`] (and nothing else makes
//!   one); [`Verifier`] caches verified chains, keys and failures and budgets cold work per
//!   peer; [`SessionCaps`] binds a chain to a session once and checks later messages by
//!   [`Handle`];
//! - [`RevocationSet`] holds signed revocations; a revoked link denies every chain through it.
//!
//! Time (seconds since the Unix epoch), the published epoch keys and the revocations are
//! arguments ([`Context`]); the crate has no clock, no RNG and no I/O. `spec/cap.md` is the
//! normative description; `conformance/vectors/cap/` holds vectors generated from this code.
//!
//! # Example: a channel owner grants a friend read access to a folder until Friday
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use isocore_cap::{
//!     prove_possession, Access, Context, Grant, Mode, Path, RevocationSet, Root, RootSeed, Refused,
//!     SessionCaps, Verifier, Dimension,
//! };
//!
//! let owner = RootSeed::from_bytes([1; 32]);
//! let friend = SigningKey::from_bytes(&[2; 32]);
//! let friend_pk = friend.verifying_key().to_bytes();
//! let (monday, friday) = (1_780_000_000, 1_780_000_000 + 4 * 86_400);
//!
//! // The owner issues a one-link chain: read, under /photos, until Friday, not re-delegable.
//! let chain = Grant::to(friend_pk)
//!     .mode(Mode::Read)
//!     .path(Path::parse("/photos").unwrap())
//!     .expires(friday)
//!     .depth(0)
//!     .issue(Root::Channel(owner.channel()), &owner.signing_key())
//!     .unwrap();
//! assert!(chain.len() - 35 <= 128); // a 35-byte header and count, then the link
//!
//! // In a session (handshake hash `h`), the friend binds the chain with a proof of possession.
//! let h = [9; 32];
//! let revocations = RevocationSet::new();
//! let ctx = Context::new(monday, &(), &revocations);
//! let mut verifier = Verifier::default();
//! let head = *verifier.verify(&friend_pk, &chain, &ctx).unwrap().head();
//! let mut session = SessionCaps::new(h, 64);
//! let handle = session
//!     .bind(&mut verifier, &friend_pk, &chain, &prove_possession(&friend, &h, &head), &ctx)
//!     .unwrap();
//!
//! // Later messages cite the handle.
//! let inside = Path::parse("/photos/2026").unwrap();
//! let outside = Path::parse("/photos2").unwrap();
//! let read = |path| Access::Channel { mode: Mode::Read, path, key: 0 };
//! assert!(session.check(handle, &read(&inside), &ctx).is_ok());
//! assert_eq!(session.check(handle, &read(&outside), &ctx).unwrap_err(), Refused::NotCovered(Dimension::Path));
//! let write = Access::Channel { mode: Mode::Write, path: &inside, key: 0 };
//! assert_eq!(session.check(handle, &write, &ctx).unwrap_err(), Refused::NotCovered(Dimension::Mode));
//! let saturday = Context::new(friday + 86_400, &(), &revocations);
//! assert_eq!(session.check(handle, &read(&inside), &saturday).unwrap_err(), Refused::Expired);
//! ```
#![no_std]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

extern crate alloc;

pub mod cache;
pub mod chain;
pub mod error;
pub mod invoke;
pub mod ladder;
pub mod revoke;
pub mod scope;
pub mod session;
pub mod verify;
mod wire;

pub use cache::{KeyCache, Verifier, VerifierConfig, VerifierStats};
pub use chain::{
    DelegateError, Grant, InvokeFields, LinkBody, MAX_CHAIN_LEN, Root, UnverifiedChain, UnverifiedLink, VERSION,
};
pub use error::{DecodeError, Dimension, Refused};
pub use invoke::{Invocation, MAX_INVOCATION_LEN, MAX_LIFETIME, ReplayGuard};
pub use ladder::{ContentKey, EpochKeys, ReadSeed, RootSeed, WriteSeed, component_id, component_key, interface_id};
pub use revoke::{MAX_REVOCATION_LEN, Revocation, RevocationSet, Version};
pub use scope::{
    Access, Capability, InvokeScope, KeyRange, MAX_COMPONENT_LEN, MAX_LINKS, MAX_PATH_COMPONENTS, Mode, Path, Scope,
    Window,
};
pub use session::{Handle, SessionCaps, prove_possession};
pub use verify::{Context, DEFAULT_SKEW, Roots, verify};

/// The id of a link: a hash over its parent's id and its exact signed bytes. The id of a
/// chain's last link (its *head*) names the whole chain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub [u8; 32]);

impl core::fmt::Debug for LinkId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LinkId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..)")
    }
}

/// Domain-separation contexts (`spec/cap.md` §2). Signature contexts end in NUL, so none is
/// a prefix of another and no signature made for one purpose verifies for another.
pub mod context {
    /// Signed by a link's issuer, before the parent id and the payload.
    pub const LINK_SIG: &[u8] = b"isocore/cap/v1/link\0";
    /// Signed by a revoker, before the record.
    pub const REVOKE_SIG: &[u8] = b"isocore/cap/v1/revoke\0";
    /// Signed by an invoker, before the invocation.
    pub const INVOKE_SIG: &[u8] = b"isocore/cap/v1/invoke\0";
    /// Signed by a holder binding a chain to a session.
    pub const SESSION_SIG: &[u8] = b"isocore/cap/v1/session-proof\0";
    /// BLAKE3 `derive_key` context of the chain-root id.
    pub const CHAIN_ROOT: &str = "isocore/cap/v1/chain-root";
    /// BLAKE3 `derive_key` context of link ids.
    pub const LINK_ID: &str = "isocore/cap/v1/link-id";
    /// Root seed and epoch to write seed.
    pub const LADDER_WRITE: &str = "isocore/cap/v1/ladder/write";
    /// Write seed to read seed.
    pub const LADDER_READ: &str = "isocore/cap/v1/ladder/read";
    /// Write seed to the write-auth key seed.
    pub const LADDER_WRITE_AUTH: &str = "isocore/cap/v1/ladder/write-auth";
    /// Read seed to the read-auth key seed.
    pub const LADDER_READ_AUTH: &str = "isocore/cap/v1/ladder/read-auth";
    /// Read seed to content key.
    pub const LADDER_CONTENT: &str = "isocore/cap/v1/ladder/content";
    /// Node seed and component id to the component's key seed.
    pub const COMPONENT_KEY: &str = "isocore/cap/v1/component-key";
    /// Interface name to interface id.
    pub const INTERFACE_ID: &str = "isocore/cap/v1/interface-id";
}

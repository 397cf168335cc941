//! The key ladder: per-epoch secrets that narrow without a signature.
//!
//! ```text
//! root_seed ──► write_seed_e ──► read_seed_e ──► content_key_e
//!                   │                 │
//!                   ▼                 ▼
//!              write_auth_e       read_auth_e        (Ed25519 key pairs)
//! ```
//!
//! Every arrow is a BLAKE3 `derive_key` with its own context, so each rung is one hash from
//! the one above and nothing leads back up: a write seed yields a read seed offline, a read
//! seed never yields a write seed. The channel publishes the public halves of `write_auth_e`
//! and `read_auth_e` for each epoch; a bearer of a seed proves it by signing with the
//! derived key, and may root signed chains ([`Root::WriteAuth`](crate::Root)) without ever
//! seeing the root key.

use crate::context;
use ed25519_dalek::SigningKey;

fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 secret bytes.
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
            /// The secret bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        // Secrets never print.
        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret!(
    /// A channel's root secret: its Ed25519 seed. The channel id is the public key.
    RootSeed
);
secret!(
    /// Write access to one epoch of a channel.
    WriteSeed
);
secret!(
    /// Read access to one epoch of a channel.
    ReadSeed
);
secret!(
    /// The key that encrypts one epoch's entries.
    ContentKey
);

impl RootSeed {
    /// The root signing key.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.0)
    }

    /// The channel id: the root public key.
    pub fn channel(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    /// The write seed of `epoch`.
    pub fn write_seed(&self, epoch: u64) -> WriteSeed {
        WriteSeed(derive(context::LADDER_WRITE, &[&self.0, &epoch.to_le_bytes()]))
    }
}

impl WriteSeed {
    /// One rung down: the read seed of the same epoch.
    pub fn read_seed(&self) -> ReadSeed {
        ReadSeed(derive(context::LADDER_READ, &[&self.0]))
    }

    /// The key pair that proves write access and roots Write chains.
    pub fn auth_key(&self) -> SigningKey {
        SigningKey::from_bytes(&derive(context::LADDER_WRITE_AUTH, &[&self.0]))
    }
}

impl ReadSeed {
    /// One rung down: the content key of the same epoch.
    pub fn content_key(&self) -> ContentKey {
        ContentKey(derive(context::LADDER_CONTENT, &[&self.0]))
    }

    /// The key pair that proves read access and roots Read chains.
    pub fn auth_key(&self) -> SigningKey {
        SigningKey::from_bytes(&derive(context::LADDER_READ_AUTH, &[&self.0]))
    }
}

/// The public keys a channel publishes for one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EpochKeys {
    /// `write_auth_e` public key.
    pub write: [u8; 32],
    /// `read_auth_e` public key.
    pub read: [u8; 32],
}

impl EpochKeys {
    /// Both public keys, derived from the epoch's write seed.
    pub fn derive(write: &WriteSeed) -> EpochKeys {
        EpochKeys {
            write: write.auth_key().verifying_key().to_bytes(),
            read: write.read_seed().auth_key().verifying_key().to_bytes(),
        }
    }
}

/// The Ed25519 key of one component on one node: each component is its own audience, so a
/// capability delegated to one component is useless to another on the same node.
pub fn component_key(node_seed: &[u8; 32], component: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&derive(context::COMPONENT_KEY, &[node_seed, component]))
}

/// The id of a component: BLAKE3 of its bytes.
pub fn component_id(bytes: &[u8]) -> [u8; 32] {
    blake3::hash(bytes).into()
}

/// The id of an interface, from its WIT name and version (`isocore:chat/room@0.1.0`).
pub fn interface_id(name: &str) -> [u8; 32] {
    derive(context::INTERFACE_ID, &[name.as_bytes()])
}

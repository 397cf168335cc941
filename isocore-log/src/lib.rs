//! Signed append-only feeds for Isocore.
//!
//! A *feed* is one writer's log: entries `0..len`, a Merkle tree over them in flat-tree order,
//! and a *signed head* — one Ed25519 signature per append batch over (channel, writer, length,
//! root). Any replica can prove any range of entries to any other against that signature, so
//! data can travel through untrusted relays and be checked end to end. Two signed heads that
//! cannot both be true make a [`ForkProof`] that anyone can check.
//!
//! This crate is sans-IO: it reads no clock, touches no socket or file, and draws no
//! randomness. Storage is the [`Storage`] trait ([`MemoryStore`] is included), time is a
//! `Duration` from an origin the caller picks, and the [`Replicator`] state machine turns
//! messages in into messages out. The normative description is `spec/log.md`.
//!
//! See [`Replicator`] for a complete two-party exchange.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod fanout;
mod feed;
mod fork;
pub mod hash;
mod head;
mod proof;
mod replicate;
mod store;
pub mod tree;
mod wire;

pub use fanout::{Lineage, MAX_HOPS, Seating, Seats};
pub use feed::{DataParts, Feed, FeedError};
pub use fork::{ForkProof, ForkProofError};
pub use hash::Hash;
pub use head::{FeedKey, HEAD_CONTEXT, Signature, SignedHead};
pub use proof::{ProofError, RangeProof};
pub use replicate::{Config, Download, Event, RemoteError, ReplicationError, Replicator};
pub use store::{MemoryStore, Storage, StoreError, WriteBatch};
pub use wire::{
    DecodeError, MAX_CONTACT_LEN, MAX_ENTRIES_PER_MESSAGE, MAX_ENTRY_LEN, MAX_MESSAGE_LEN, MAX_PROOF_NODES,
    MAX_REDIRECT_PEERS, Message, decode_canonical, encode_into,
};

//! Detached invocations: a signed call that names its capability, executor and target, for
//! when no session binding is at hand.
//!
//! ```text
//! Invocation := version:u8 (1) ‖ head:[32] ‖ executor:[32] ‖ component:[32] ‖ interface:[32]
//!               ‖ method:u8 ‖ fuel:varint ‖ args:[32] ‖ nonce:[16] ‖ expires:varint
//!               ‖ signature:[64]
//! ```
//!
//! The holder signs everything before the signature under the invocation context. The
//! executor keeps each `(signer, nonce)` until the invocation expires, and refuses lifetimes
//! longer than its bound, so the seen-set stays small.

use crate::error::{DecodeError, Refused};
use crate::scope::{Access, Capability};
use crate::verify::Context;
use crate::wire::{Reader, put_varint};
use crate::{KeyCache, LinkId, Root, VERSION, context};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use ed25519_dalek::{Signature, Signer, SigningKey};

/// Longest encoded invocation.
pub const MAX_INVOCATION_LEN: usize = 1 + 32 * 4 + 1 + 10 + 32 + 16 + 10 + 64;
/// Longest lifetime an executor accepts by default, in seconds.
pub const MAX_LIFETIME: u64 = 300;

/// One call, as its holder signs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// Head id of the capability exercised.
    pub head: LinkId,
    /// The node asked to run the call.
    pub executor: [u8; 32],
    /// The component called.
    pub component: [u8; 32],
    /// The interface called.
    pub interface: [u8; 32],
    /// The method's index.
    pub method: u8,
    /// Fuel the call may spend.
    pub fuel: u64,
    /// BLAKE3 of the call's arguments.
    pub args: [u8; 32],
    /// Chosen by the caller, unique per call.
    pub nonce: [u8; 16],
    /// First second at which the invocation is void.
    pub expires: u64,
}

impl Invocation {
    /// Encodes and signs the invocation with the capability holder's key.
    pub fn sign(&self, holder: &SigningKey) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_INVOCATION_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.head.0);
        out.extend_from_slice(&self.executor);
        out.extend_from_slice(&self.component);
        out.extend_from_slice(&self.interface);
        out.push(self.method);
        put_varint(&mut out, self.fuel);
        out.extend_from_slice(&self.args);
        out.extend_from_slice(&self.nonce);
        put_varint(&mut out, self.expires);
        let signature = holder.sign(&signed_message(&out));
        out.extend_from_slice(&signature.to_bytes());
        out
    }

    /// Strictly decodes an invocation, returning it, its signed body and its signature.
    pub fn decode(bytes: &[u8]) -> Result<(Invocation, &[u8], [u8; 64]), DecodeError> {
        if bytes.len() > MAX_INVOCATION_LEN {
            return Err(DecodeError::TooLong { len: bytes.len(), max: MAX_INVOCATION_LEN });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        let inv = Invocation {
            head: LinkId(r.array()?),
            executor: r.array()?,
            component: r.array()?,
            interface: r.array()?,
            method: r.u8()?,
            fuel: r.varint()?,
            args: r.array()?,
            nonce: r.array()?,
            expires: r.varint()?,
        };
        let body = &bytes[..r.position()];
        let signature = r.array()?;
        r.finish()?;
        Ok((inv, body, signature))
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context::INVOKE_SIG.len() + body.len());
    m.extend_from_slice(context::INVOKE_SIG);
    m.extend_from_slice(body);
    m
}

/// An executor's check of detached invocations, with the seen-set that stops replays.
#[derive(Clone, Debug)]
pub struct ReplayGuard {
    executor: [u8; 32],
    max_lifetime: u64,
    max_entries: usize,
    by_expiry: BTreeSet<(u64, [u8; 32], [u8; 16])>,
    seen: BTreeSet<([u8; 32], [u8; 16])>,
}

impl ReplayGuard {
    /// A guard for the node `executor`, accepting lifetimes up to `max_lifetime` seconds and
    /// remembering at most `max_entries` live invocations.
    pub fn new(executor: [u8; 32], max_lifetime: u64, max_entries: usize) -> Self {
        ReplayGuard { executor, max_lifetime, max_entries, by_expiry: BTreeSet::new(), seen: BTreeSet::new() }
    }

    /// Checks invocation `bytes` against the verified capability it names: still valid now
    /// and unrevoked, addressed here, covered by the capability, alive, signed by its holder,
    /// and not seen before.
    pub fn check(
        &mut self,
        bytes: &[u8],
        cap: &Capability,
        keys: &mut KeyCache,
        ctx: &Context<'_>,
    ) -> Result<Invocation, Refused> {
        let (inv, body, signature) = Invocation::decode(bytes)?;
        cap.scope.window.check(ctx.now, ctx.skew)?;
        if let Some((i, watermark)) = ctx.revocations.find(cap.root.subject(), &cap.issuers, &cap.links) {
            return Err(Refused::Revoked { link: i as u8 + 1, watermark });
        }
        if inv.head != *cap.head() || inv.executor != self.executor || *cap.root() != Root::Node(self.executor) {
            return Err(Refused::WrongTarget);
        }
        cap.permits(&Access::Invoke {
            component: &inv.component,
            interface: &inv.interface,
            method: inv.method,
            fuel: inv.fuel,
        })?;
        if ctx.now.saturating_sub(ctx.skew) >= inv.expires {
            return Err(Refused::Expired);
        }
        if inv.expires > ctx.now.saturating_add(ctx.skew).saturating_add(self.max_lifetime) {
            return Err(Refused::Replay);
        }
        let key = keys.get(cap.holder()).ok_or(Refused::BadProof)?;
        key.verify_strict(&signed_message(body), &Signature::from_bytes(&signature)).map_err(|_| Refused::BadProof)?;
        // Forget what has expired for every verifier clock within the skew.
        let horizon = ctx.now.saturating_sub(ctx.skew);
        while let Some(&first) = self.by_expiry.first() {
            if first.0 > horizon {
                break;
            }
            self.by_expiry.remove(&first);
            self.seen.remove(&(first.1, first.2));
        }
        if self.seen.contains(&(*cap.holder(), inv.nonce)) {
            return Err(Refused::Replay);
        }
        if self.seen.len() >= self.max_entries {
            return Err(Refused::OverBudget);
        }
        self.seen.insert((*cap.holder(), inv.nonce));
        self.by_expiry.insert((inv.expires, *cap.holder(), inv.nonce));
        Ok(inv)
    }
}

//! Session binding: present a chain once with a proof of possession, then cite a handle.
//!
//! The proof is the holder's signature over the session's handshake hash and the chain's
//! head id, under its own context. Handshake hashes differ in every session, so a proof
//! recorded in one session is useless in another; the encrypted session itself then stops
//! replay of the messages that cite the handle.

use crate::error::Refused;
use crate::revoke::Version;
use crate::scope::{Access, Capability};
use crate::verify::Context;
use crate::{LinkId, Verifier, context};
use alloc::vec::Vec;
use ed25519_dalek::{Signature, Signer, SigningKey};

fn proof_message(handshake_hash: &[u8; 32], head: &LinkId) -> Vec<u8> {
    let mut m = Vec::with_capacity(context::SESSION_SIG.len() + 64);
    m.extend_from_slice(context::SESSION_SIG);
    m.extend_from_slice(handshake_hash);
    m.extend_from_slice(&head.0);
    m
}

/// The holder's proof of possession of the chain headed by `head` in the session with this
/// handshake hash.
pub fn prove_possession(holder: &SigningKey, handshake_hash: &[u8; 32], head: &LinkId) -> [u8; 64] {
    holder.sign(&proof_message(handshake_hash, head)).to_bytes()
}

/// A small name for a capability bound to one session. Stale handles (released, or from
/// another table) are refused, never confused with a live one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    index: u32,
    generation: u32,
}

impl Handle {
    /// The handle as 8 bytes for the wire: index then generation, little-endian.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut out = [0; 8];
        out[..4].copy_from_slice(&self.index.to_le_bytes());
        out[4..].copy_from_slice(&self.generation.to_le_bytes());
        out
    }

    /// A handle from its wire form (checked when used).
    pub fn from_bytes(bytes: [u8; 8]) -> Handle {
        let (i, g) = bytes.split_at(4);
        Handle {
            index: u32::from_le_bytes(i.try_into().expect("4 bytes")),
            generation: u32::from_le_bytes(g.try_into().expect("4 bytes")),
        }
    }
}

#[derive(Clone, Debug)]
struct Slot {
    generation: u32,
    bound: Option<(Capability, Version)>,
}

/// The capabilities one peer has bound in one session.
#[derive(Clone, Debug)]
pub struct SessionCaps {
    handshake_hash: [u8; 32],
    slots: Vec<Slot>,
    free: Vec<u32>,
    max: usize,
}

impl SessionCaps {
    /// A table for the session with this handshake hash, holding at most `max` handles.
    pub fn new(handshake_hash: [u8; 32], max: usize) -> Self {
        SessionCaps { handshake_hash, slots: Vec::new(), free: Vec::new(), max }
    }

    /// Verifies `chain` (through `verifier`'s caches) and the holder's `proof` for this
    /// session, and returns a handle to cite it by. `peer` pays for a cold verification; the
    /// holder need not be the peer's identity key (a component key holds for its component),
    /// and a caller that requires it compares [`Capability::holder`] itself.
    pub fn bind(
        &mut self,
        verifier: &mut Verifier,
        peer: &[u8; 32],
        chain: &[u8],
        proof: &[u8; 64],
        ctx: &Context<'_>,
    ) -> Result<Handle, Refused> {
        let cap = verifier.verify(peer, chain, ctx)?.clone();
        let key = verifier.keys().get(cap.holder()).ok_or(Refused::BadProof)?;
        key.verify_strict(&proof_message(&self.handshake_hash, cap.head()), &Signature::from_bytes(proof))
            .map_err(|_| Refused::BadProof)?;
        let entry = Some((cap, ctx.revocations.version()));
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.bound = entry;
            return Ok(Handle { index, generation: slot.generation });
        }
        if self.slots.len() >= self.max {
            return Err(Refused::OverBudget);
        }
        self.slots.push(Slot { generation: 0, bound: entry });
        Ok(Handle { index: self.slots.len() as u32 - 1, generation: 0 })
    }

    /// Checks that the capability behind `handle` is still valid and covers `access`: an
    /// index, a generation compare, the window, and (only if revocations changed) ≤ 8
    /// lookups.
    pub fn check(&mut self, handle: Handle, access: &Access<'_>, ctx: &Context<'_>) -> Result<&Capability, Refused> {
        let version = ctx.revocations.version();
        let Some((cap, seen)) = self.bound(handle) else {
            return Err(Refused::UnknownHandle);
        };
        if *seen != version
            && let Some((i, watermark)) = ctx.revocations.find(cap.root.subject(), &cap.issuers, &cap.links)
        {
            self.release(handle);
            return Err(Refused::Revoked { link: i as u8 + 1, watermark });
        }
        let (cap, seen) = self.bound(handle).expect("still bound");
        *seen = version;
        cap.scope.window.check(ctx.now, ctx.skew)?;
        cap.permits(access)?;
        Ok(cap)
    }

    fn bound(&mut self, handle: Handle) -> Option<(&Capability, &mut Version)> {
        let slot = self.slots.get_mut(handle.index as usize).filter(|s| s.generation == handle.generation)?;
        slot.bound.as_mut().map(|(cap, generation)| (&*cap, generation))
    }

    /// Forgets a handle; later uses of it are refused. Returns whether it was live.
    pub fn release(&mut self, handle: Handle) -> bool {
        match self.slots.get_mut(handle.index as usize) {
            Some(slot) if slot.generation == handle.generation && slot.bound.is_some() => {
                slot.bound = None;
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(handle.index);
                true
            }
            _ => false,
        }
    }
}

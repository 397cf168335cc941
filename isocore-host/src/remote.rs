//! Calls between nodes: how a call to an exported interface travels in a session's `Call`
//! message (`spec/proto.md` §8), and the checks the executing node makes before delivering it
//! (`spec/host.md` §9.6).
//!
//! The session's `Call` carries the interface id, the method as decimal text, and a payload:
//!
//! ```text
//! payload = varint(len(chain)) ‖ chain ‖ proof (64) ‖ varint(fuel) ‖ args
//! ```
//!
//! `chain` is an Invoke capability rooted at the executing node (`spec/cap.md`), `proof` the
//! holder's proof of possession over the session's handshake hash and the chain's head, so a
//! recorded call is worthless in any other session. [`CallGate`] verifies a chain once per
//! session (its proof, its signatures) and afterwards checks it by handle.

use crate::service::{Call, CallError};
use isocore_cap::{
    Capability, Context, Handle, LinkId, MAX_CHAIN_LEN, Refused, RevocationSet, Roots, SessionCaps, Verifier,
    VerifierConfig,
};
use std::collections::BTreeMap;

/// Why a call's payload was refused before anything was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Shorter than its fields say.
    #[error("call payload is truncated")]
    Truncated,
    /// A varint longer than needed or over 64 bits.
    #[error("call payload has a non-canonical varint")]
    NonCanonical,
    /// A chain longer than `MAX_CHAIN_LEN`.
    #[error("capability chain is too long")]
    ChainTooLong,
    /// The method is not a decimal number from 0 to 255 without leading zeros.
    #[error("method is not a number from 0 to 255")]
    BadMethod,
}

/// A call as it arrives: every field borrowed from the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteCall<'a> {
    /// The Invoke capability chain.
    pub chain: &'a [u8],
    /// The holder's proof of possession for this session.
    pub proof: [u8; 64],
    /// Fuel the call may spend.
    pub fuel: u64,
    /// The method's arguments.
    pub args: &'a [u8],
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &[u8]) -> Result<(u64, &[u8]), PayloadError> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return Err(PayloadError::NonCanonical);
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            // The shortest form: no trailing zero group (except for 0 itself).
            if i > 0 && b == 0 {
                return Err(PayloadError::NonCanonical);
            }
            return Ok((v, &bytes[i + 1..]));
        }
    }
    Err(if bytes.len() < 10 { PayloadError::Truncated } else { PayloadError::NonCanonical })
}

impl<'a> RemoteCall<'a> {
    /// The payload's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chain.len() + self.args.len() + 80);
        put_varint(&mut out, self.chain.len() as u64);
        out.extend_from_slice(self.chain);
        out.extend_from_slice(&self.proof);
        put_varint(&mut out, self.fuel);
        out.extend_from_slice(self.args);
        out
    }

    /// Reads a payload; the chain's length is checked before it is sliced.
    pub fn decode(payload: &'a [u8]) -> Result<Self, PayloadError> {
        let (len, rest) = take_varint(payload)?;
        if len > MAX_CHAIN_LEN as u64 {
            return Err(PayloadError::ChainTooLong);
        }
        let len = len as usize;
        if rest.len() < len + 64 {
            return Err(PayloadError::Truncated);
        }
        let (chain, rest) = rest.split_at(len);
        let (proof, rest) = rest.split_at(64);
        let (fuel, args) = take_varint(rest)?;
        Ok(RemoteCall { chain, proof: proof.try_into().expect("64 bytes"), fuel, args })
    }
}

/// The method as the session carries it.
pub fn method_name(method: u8) -> String {
    method.to_string()
}

/// The method index from the session's text.
pub fn parse_method(text: &str) -> Result<u8, PayloadError> {
    let canonical = !text.is_empty() && (text == "0" || !text.starts_with('0'));
    text.parse().ok().filter(|_| canonical && text.bytes().all(|b| b.is_ascii_digit())).ok_or(PayloadError::BadMethod)
}

/// Failure codes of remote calls, sent in the session's `Fail` (`spec/host.md` §9.6). They
/// sit below the session's own codes (`0xff00` and up).
pub mod code {
    /// The payload or method could not be read.
    pub const MALFORMED: u16 = 1;
    /// The capability did not verify, or the proof of possession did not.
    pub const UNAUTHORIZED: u16 = 2;
    /// The capability does not cover the call (or is rooted at another node).
    pub const DENIED: u16 = 3;
    /// Nobody exports the interface here.
    pub const NO_SUCH_INTERFACE: u16 = 4;
    /// The exporter cannot take the call now.
    pub const UNAVAILABLE: u16 = 5;
    /// No answer in time.
    pub const TIMEOUT: u16 = 6;
}

/// A call refused at the gate or by the node, with its code and text for `Fail`.
pub fn failure(e: &CallError) -> (u16, String) {
    let c = match e {
        CallError::NoSuchInterface => code::NO_SUCH_INTERFACE,
        CallError::WrongNode | CallError::Denied(_) => code::DENIED,
        CallError::Unavailable => code::UNAVAILABLE,
        CallError::Timeout => code::TIMEOUT,
    };
    (c, e.to_string())
}

struct Session {
    caps: SessionCaps,
    /// Chains bound in this session, by head: their proof was checked once.
    bound: BTreeMap<LinkId, Handle>,
}

/// The executing node's checks on incoming calls, per session: decode, verify the chain and
/// the proof of possession once, then check by handle. Delivery ([`crate::Node::invoke`])
/// checks that the capability covers the call.
pub struct CallGate {
    verifier: Verifier,
    sessions: BTreeMap<u64, Session>,
    revocations: RevocationSet,
}

/// Chains bound per session at most.
const MAX_BOUND: usize = 64;

impl Default for CallGate {
    fn default() -> Self {
        Self::new()
    }
}

impl CallGate {
    /// A gate with default verifier caches and no revocations.
    pub fn new() -> Self {
        CallGate {
            verifier: Verifier::new(VerifierConfig::default()),
            sessions: BTreeMap::new(),
            revocations: RevocationSet::new(),
        }
    }

    /// The revocations checked against (add to them as records arrive).
    pub fn revocations_mut(&mut self) -> &mut RevocationSet {
        &mut self.revocations
    }

    /// Checks a call arriving in session `session` (any number the caller keeps unique per
    /// session) with handshake hash `handshake_hash` from `peer`, at `now` (seconds since
    /// the Unix epoch). Returns the capability and the call to deliver.
    pub fn admit<'p>(
        &mut self,
        session: u64,
        handshake_hash: &[u8; 32],
        peer: &[u8; 32],
        method: &str,
        payload: &'p [u8],
        now: u64,
    ) -> Result<(Capability, u8, RemoteCall<'p>), GateError> {
        let method = parse_method(method)?;
        let call = RemoteCall::decode(payload)?;
        let s = self
            .sessions
            .entry(session)
            .or_insert_with(|| Session { caps: SessionCaps::new(*handshake_hash, MAX_BOUND), bound: BTreeMap::new() });
        let roots: &dyn Roots = &();
        let ctx = Context::new(now, roots, &self.revocations);
        let unverified = isocore_cap::UnverifiedChain::decode(call.chain)
            .map_err(|e| GateError::Unauthorized(Refused::Decode(e)))?;
        let head = *unverified.link_ids().last().expect("a chain has at least one link");
        if !s.bound.contains_key(&head) {
            // Once per chain and session: the signatures, then the proof of possession.
            let handle = s
                .caps
                .bind(&mut self.verifier, peer, call.chain, &call.proof, &ctx)
                .map_err(GateError::Unauthorized)?;
            s.bound.insert(head, handle);
        }
        // Every call: the window and revocations, from the verifier's warm cache.
        let cap = self.verifier.verify(peer, call.chain, &ctx).map_err(GateError::Unauthorized)?.clone();
        Ok((cap, method, call))
    }

    /// Forgets a session's bound chains (when it closes).
    pub fn end_session(&mut self, session: u64) {
        self.sessions.remove(&session);
    }
}

/// Why the gate refused a call.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// The payload could not be read.
    #[error(transparent)]
    Malformed(#[from] PayloadError),
    /// The chain or the proof did not verify.
    #[error("not authorised: {0}")]
    Unauthorized(Refused),
}

impl GateError {
    /// The code and text for `Fail`.
    pub fn failure(&self) -> (u16, String) {
        let c = match self {
            GateError::Malformed(_) => code::MALFORMED,
            GateError::Unauthorized(_) => code::UNAUTHORIZED,
        };
        (c, self.to_string())
    }
}

/// A call to make: the session's method text and payload for `call`.
pub fn outgoing(call: &Call<'_>, chain: &[u8], proof: [u8; 64]) -> (String, Vec<u8>) {
    let payload = RemoteCall { chain, proof, fuel: call.fuel, args: call.args }.encode();
    (method_name(call.method), payload)
}

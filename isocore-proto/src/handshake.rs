//! The Noise XX handshake, with each side's Ed25519 identity bound to its Noise static key.
//!
//! ```text
//! initiator                                   responder
//!   -> e                      Hello{versions, features}        (clear)
//!   <- e, ee, s, es           Identity{key, static, sig, version, features}
//!   -> s, se                  Identity{key, static, sig, version, features}
//! ```
//!
//! Each identity signature covers the signer's role, its Noise static key and the handshake
//! hash just before its message, so it cannot be lifted into another session or onto another
//! static key. Randomness (the ephemeral keys) comes from a seed the caller passes in.

use crate::cipher::CipherState;
use crate::codec::{self, Bytes64};
use core::time::Duration;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash as NoiseHash, Random};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// The prologue both sides mix in: the protocol and its version family.
pub const PROLOGUE: &[u8] = b"isocore/proto/v1";
/// Prefix of the bytes an identity signature covers.
pub const IDENTITY_CONTEXT: &[u8] = b"isocore/proto/v1/identity\0";
/// Protocol versions this implementation speaks.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];
/// Largest handshake message (a Noise limit).
pub const MAX_HANDSHAKE_MESSAGE: usize = 65_535;

/// A node's long-term identity: an Ed25519 key, and the X25519 Noise static key derived from it.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    noise_private: [u8; 32],
    noise_public: [u8; 32],
}

/// The public identity of a peer: its Ed25519 key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerId(pub [u8; 32]);

impl Identity {
    /// The identity whose Ed25519 secret is `seed`. The Noise static key is derived from it.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let noise_private = blake3::derive_key("isocore/proto/v1/noise-static", &seed);
        let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).expect("curve25519 is built in");
        dh.set(&noise_private);
        let mut noise_public = [0u8; 32];
        noise_public.copy_from_slice(dh.pubkey());
        Identity { signing, noise_private, noise_public }
    }

    /// The peer id others see.
    pub fn peer_id(&self) -> PeerId {
        PeerId(self.signing.verifying_key().to_bytes())
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The X25519 public key used in Noise.
    pub fn noise_public(&self) -> &[u8; 32] {
        &self.noise_public
    }
}

/// Which side of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends the first message.
    Initiator,
    /// Answers it.
    Responder,
}

/// Handshake settings.
#[derive(Clone, Debug)]
pub struct HandshakeConfig {
    /// Versions offered or accepted, any order.
    pub versions: Vec<u16>,
    /// Feature bits offered.
    pub features: u64,
    /// How long the handshake may take.
    pub timeout: Duration,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig { versions: SUPPORTED_VERSIONS.to_vec(), features: 0, timeout: Duration::from_secs(10) }
    }
}

/// Why a handshake failed. All but `Timeout` and `Local` are the peer's fault (or an attacker's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// A message failed to decrypt or authenticate: tampered, replayed from another session,
    /// or built on a different transcript.
    Decrypt,
    /// A message arrived when it was our turn to send, or after the handshake finished.
    UnexpectedMessage,
    /// A payload that is not a canonical handshake payload.
    Malformed,
    /// The identity signature does not verify.
    BadIdentitySignature,
    /// The payload names a Noise static key other than the one the peer used.
    StaticKeyMismatch,
    /// No version in common.
    UnsupportedVersion,
    /// The responder chose a version lower than the best one both support.
    Downgrade,
    /// The handshake did not finish in time.
    Timeout,
    /// A local failure in the Noise library.
    Local(String),
}

impl core::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HandshakeError::Decrypt => f.write_str("handshake message failed to decrypt"),
            HandshakeError::UnexpectedMessage => f.write_str("handshake message out of turn"),
            HandshakeError::Malformed => f.write_str("malformed handshake payload"),
            HandshakeError::BadIdentitySignature => f.write_str("peer identity signature does not verify"),
            HandshakeError::StaticKeyMismatch => f.write_str("peer identity is bound to another static key"),
            HandshakeError::UnsupportedVersion => f.write_str("no protocol version in common"),
            HandshakeError::Downgrade => f.write_str("protocol version downgraded"),
            HandshakeError::Timeout => f.write_str("handshake timed out"),
            HandshakeError::Local(e) => write!(f, "noise: {e}"),
        }
    }
}

impl core::error::Error for HandshakeError {}

/// The first message's clear payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Versions the initiator speaks.
    pub versions: Vec<u16>,
    /// Feature bits it offers.
    pub features: u64,
}

/// The encrypted payload of messages two and three.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityPayload {
    /// The sender's Ed25519 key.
    pub identity: [u8; 32],
    /// The Noise static key the sender claims to use.
    pub noise_static: [u8; 32],
    /// Signature over [`identity_signable`].
    pub signature: Bytes64,
    /// The version chosen (responder) or confirmed (initiator).
    pub version: u16,
    /// Every version the sender speaks, so the initiator can tell a downgrade.
    pub versions: Vec<u16>,
    /// Feature bits offered by the sender.
    pub features: u64,
}

/// The bytes an identity signature covers: context ‖ role (0 initiator, 1 responder) ‖
/// Noise static key ‖ handshake hash before the signer's message.
pub fn identity_signable(role: Role, noise_static: &[u8; 32], handshake_hash: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(IDENTITY_CONTEXT.len() + 1 + 32 + handshake_hash.len());
    out.extend_from_slice(IDENTITY_CONTEXT);
    out.push(match role {
        Role::Initiator => 0,
        Role::Responder => 1,
    });
    out.extend_from_slice(noise_static);
    out.extend_from_slice(handshake_hash);
    out
}

/// A deterministic stream of bytes from a seed: the only randomness the handshake uses.
struct SeededRandom(blake3::OutputReader);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

struct Resolver {
    seed: [u8; 32],
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let mut hasher = blake3::Hasher::new_derive_key("isocore/proto/v1/handshake-rng");
        hasher.update(&self.seed);
        Some(Box::new(SeededRandom(hasher.finalize_xof())))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn NoiseHash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        #[cfg(not(target_family = "wasm"))]
        if let Some(cipher) = snow::resolvers::RingResolver.resolve_cipher(choice) {
            return Some(cipher);
        }
        DefaultResolver.resolve_cipher(choice)
    }
}

/// A handshake in progress. Turns into [`Established`] only when complete.
pub struct Handshake {
    state: snow::HandshakeState,
    role: Role,
    identity: Identity,
    config: HandshakeConfig,
    /// Messages exchanged so far (0..=3).
    step: u8,
    version: Option<u16>,
    peer: Option<(PeerId, u64)>,
    deadline: Duration,
}

/// A finished handshake: the authenticated peer and the keys for the session.
pub struct Established {
    /// The peer's identity, authenticated.
    pub peer: PeerId,
    /// Our role in the handshake.
    pub role: Role,
    /// The Noise handshake hash: unique to this session, for binding proofs to it.
    pub handshake_hash: [u8; 32],
    /// The version agreed.
    pub version: u16,
    /// The peer's feature bits.
    pub peer_features: u64,
    /// Seals the frames we send.
    pub(crate) sender: CipherState,
    /// Opens the frames we receive.
    pub(crate) receiver: CipherState,
}

fn noise_error(e: snow::Error) -> HandshakeError {
    match e {
        snow::Error::Decrypt => HandshakeError::Decrypt,
        snow::Error::State(_) => HandshakeError::UnexpectedMessage,
        snow::Error::Input => HandshakeError::Malformed,
        other => HandshakeError::Local(format!("{other:?}")),
    }
}

impl Handshake {
    /// Start a handshake. `seed` supplies the ephemeral key; it must be fresh and secret for
    /// every handshake (a driver draws it from the OS; tests fix it for exact vectors).
    pub fn new(role: Role, identity: &Identity, config: HandshakeConfig, seed: [u8; 32], now: Duration) -> Self {
        let params: NoiseParams = NOISE_PARAMS.parse().expect("the protocol name is valid");
        let builder = snow::Builder::with_resolver(params, Box::new(Resolver { seed }))
            .local_private_key(&identity.noise_private)
            .and_then(|b| b.prologue(PROLOGUE))
            .expect("keys and prologue have valid sizes");
        let state = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        }
        .expect("the resolver provides every primitive");
        Handshake {
            state,
            role,
            identity: identity.clone(),
            deadline: now + config.timeout,
            config,
            step: 0,
            version: None,
            peer: None,
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// When the handshake times out.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Whether all three messages have been exchanged.
    pub fn is_finished(&self) -> bool {
        self.step == 3
    }

    /// Whether it is our turn to write a message.
    pub fn wants_to_write(&self) -> bool {
        matches!((self.role, self.step), (Role::Initiator, 0) | (Role::Responder, 1) | (Role::Initiator, 2))
    }

    fn handshake_hash(&self) -> [u8; 32] {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.state.get_handshake_hash());
        h
    }

    fn identity_payload(&self, version: u16) -> Vec<u8> {
        let signable = identity_signable(self.role, &self.identity.noise_public, &self.handshake_hash());
        let payload = IdentityPayload {
            identity: self.identity.peer_id().0,
            noise_static: self.identity.noise_public,
            signature: Bytes64(self.identity.signing.sign(&signable).to_bytes()),
            version,
            versions: self.config.versions.clone(),
            features: self.config.features,
        };
        postcard::to_allocvec(&payload).expect("a Vec cannot fail")
    }

    /// Write our next message (unframed) into `out`. Returns false if it is not our turn.
    pub fn write_message(&mut self, out: &mut Vec<u8>) -> Result<bool, HandshakeError> {
        if !self.wants_to_write() {
            return Ok(false);
        }
        let payload = match self.step {
            0 => {
                postcard::to_allocvec(&Hello { versions: self.config.versions.clone(), features: self.config.features })
                    .expect("a Vec cannot fail")
            }
            _ => self.identity_payload(self.version.expect("chosen before our identity message")),
        };
        let at = out.len();
        out.resize(at + MAX_HANDSHAKE_MESSAGE, 0);
        let n = self.state.write_message(&payload, &mut out[at..]).map_err(noise_error)?;
        out.truncate(at + n);
        self.step += 1;
        Ok(true)
    }

    /// Read the peer's next message (unframed).
    pub fn read_message(&mut self, message: &[u8]) -> Result<(), HandshakeError> {
        if self.wants_to_write() || self.is_finished() {
            return Err(HandshakeError::UnexpectedMessage);
        }
        let hash_before = self.handshake_hash();
        let mut payload = vec![0u8; MAX_HANDSHAKE_MESSAGE];
        let n = self.state.read_message(message, &mut payload).map_err(noise_error)?;
        let payload = &payload[..n];
        match self.step {
            0 => {
                let hello: Hello = codec::decode(payload).map_err(|_| HandshakeError::Malformed)?;
                if hello.versions.len() > 16 {
                    return Err(HandshakeError::Malformed);
                }
                let best =
                    best_common(&self.config.versions, &hello.versions).ok_or(HandshakeError::UnsupportedVersion)?;
                self.version = Some(best);
            }
            _ => {
                let id: IdentityPayload = codec::decode(payload).map_err(|_| HandshakeError::Malformed)?;
                if id.versions.len() > 16 {
                    return Err(HandshakeError::Malformed);
                }
                let remote_static = self.state.get_remote_static().ok_or(HandshakeError::Malformed)?;
                if remote_static != id.noise_static {
                    return Err(HandshakeError::StaticKeyMismatch);
                }
                let their_role = match self.role {
                    Role::Initiator => Role::Responder,
                    Role::Responder => Role::Initiator,
                };
                let key = VerifyingKey::from_bytes(&id.identity).map_err(|_| HandshakeError::BadIdentitySignature)?;
                let signature = ed25519_dalek::Signature::from_bytes(&id.signature.0);
                key.verify_strict(&identity_signable(their_role, &id.noise_static, &hash_before), &signature)
                    .map_err(|_| HandshakeError::BadIdentitySignature)?;
                match self.role {
                    Role::Initiator => {
                        let best = best_common(&self.config.versions, &id.versions)
                            .ok_or(HandshakeError::UnsupportedVersion)?;
                        if !self.config.versions.contains(&id.version) || !id.versions.contains(&id.version) {
                            return Err(HandshakeError::UnsupportedVersion);
                        }
                        if id.version < best {
                            return Err(HandshakeError::Downgrade);
                        }
                        self.version = Some(id.version);
                    }
                    Role::Responder => {
                        if Some(id.version) != self.version {
                            return Err(HandshakeError::Downgrade);
                        }
                    }
                }
                self.peer = Some((PeerId(id.identity), id.features));
            }
        }
        self.step += 1;
        Ok(())
    }

    /// Write our next message with `payload` in place of the one the protocol prescribes, and
    /// read the transcript hash so far. Exists so tests can play a misbehaving peer.
    #[doc(hidden)]
    pub fn write_raw(&mut self, payload: impl FnOnce([u8; 32]) -> Vec<u8>, out: &mut Vec<u8>) {
        let payload = payload(self.handshake_hash());
        let at = out.len();
        out.resize(at + MAX_HANDSHAKE_MESSAGE, 0);
        let n = self.state.write_message(&payload, &mut out[at..]).expect("a test payload fits");
        out.truncate(at + n);
        self.step += 1;
    }

    /// Check the deadline.
    pub fn handle_timeout(&self, now: Duration) -> Result<(), HandshakeError> {
        if now >= self.deadline && !self.is_finished() { Err(HandshakeError::Timeout) } else { Ok(()) }
    }

    /// Finish: only a completed handshake yields a session.
    pub fn into_established(mut self: Box<Self>) -> Result<Established, Box<Self>> {
        if !self.is_finished() {
            return Err(self);
        }
        let handshake_hash = self.handshake_hash();
        let (peer, peer_features) = self.peer.expect("a finished handshake authenticated its peer");
        let version = self.version.expect("a finished handshake agreed a version");
        let role = self.role;
        // Split(): the first key protects what the initiator sends, the second the reverse.
        let (to_responder, to_initiator) = self.state.dangerously_get_raw_split();
        let (send, receive) = match role {
            Role::Initiator => (to_responder, to_initiator),
            Role::Responder => (to_initiator, to_responder),
        };
        let (sender, receiver) = (CipherState::new(send), CipherState::new(receive));
        Ok(Established { peer, role, handshake_hash, version, peer_features, sender, receiver })
    }
}

fn best_common(ours: &[u16], theirs: &[u16]) -> Option<u16> {
    ours.iter().copied().filter(|v| theirs.contains(v)).max()
}

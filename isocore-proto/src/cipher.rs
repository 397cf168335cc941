//! The session's frame cipher: one Noise `CipherState` per direction (Noise §5.1) with the
//! ChaChaPoly cipher (§12.3), keyed by the handshake's `Split()`. Frames are sealed and opened
//! where they lie in the caller's buffer, so a frame is never copied to be encrypted.

/// Bytes of the Poly1305 tag that ends every frame.
pub(crate) const TAG_LEN: usize = 16;

/// The nonce counter reached its end (2^64 − 1 frames); Noise forbids going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoncesExhausted;

/// A frame failed to authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpenError;

/// One direction of the session: a key and the count of frames it has protected.
pub(crate) struct CipherState {
    key: backend::Key,
    nonce: u64,
}

impl CipherState {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        CipherState { key: backend::Key::new(&key), nonce: 0 }
    }

    /// Encrypt `frame[..len - TAG_LEN]` in place and write its tag over the last
    /// [`TAG_LEN`] bytes. `frame` must be at least [`TAG_LEN`] long.
    pub(crate) fn seal(&mut self, frame: &mut [u8]) -> Result<(), NoncesExhausted> {
        let nonce = self.next_nonce().ok_or(NoncesExhausted)?;
        let (plain, tag) = frame.split_at_mut(frame.len() - TAG_LEN);
        tag.copy_from_slice(&self.key.seal(nonce, plain));
        Ok(())
    }

    /// Decrypt and authenticate `frame` in place; returns its plaintext, a prefix of `frame`.
    /// On failure the counter does not move (the session ends anyway).
    pub(crate) fn open<'a>(&mut self, frame: &'a mut [u8]) -> Result<&'a [u8], OpenError> {
        if frame.len() < TAG_LEN || self.nonce == u64::MAX {
            return Err(OpenError);
        }
        let (cipher, tag) = frame.split_at_mut(frame.len() - TAG_LEN);
        self.key.open(nonce_bytes(self.nonce), cipher, tag)?;
        self.nonce += 1;
        Ok(cipher)
    }

    fn next_nonce(&mut self) -> Option<[u8; 12]> {
        // Noise reserves 2^64 − 1.
        (self.nonce != u64::MAX).then(|| {
            self.nonce += 1;
            nonce_bytes(self.nonce - 1)
        })
    }
}

/// ChaChaPoly's nonce: 32 zero bits, then the counter little-endian (Noise §12.3).
fn nonce_bytes(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    nonce
}

// The same ChaCha20-Poly1305 from ring's assembly where ring builds (about 1.6x faster), and
// from RustCrypto in the browser. Tests run both.
#[cfg(not(target_family = "wasm"))]
use ring_backend as backend;
#[cfg(target_family = "wasm")]
use rustcrypto_backend as backend;

#[cfg(not(target_family = "wasm"))]
mod ring_backend {
    use super::OpenError;
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

    pub(super) struct Key(LessSafeKey);

    impl Key {
        pub(super) fn new(key: &[u8; 32]) -> Self {
            Key(LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, key).expect("ChaCha20-Poly1305 takes 32-byte keys"),
            ))
        }

        pub(super) fn seal(&self, nonce: [u8; 12], in_out: &mut [u8]) -> [u8; 16] {
            let tag = self
                .0
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), in_out)
                .expect("a frame is far below ChaCha20-Poly1305's limit");
            tag.as_ref().try_into().expect("the tag is 16 bytes")
        }

        pub(super) fn open(&self, nonce: [u8; 12], in_out: &mut [u8], tag: &[u8]) -> Result<(), OpenError> {
            let tag: [u8; 16] = tag.try_into().map_err(|_| OpenError)?;
            self.0
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::empty(),
                    Tag::from(tag),
                    in_out,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| OpenError)
        }
    }
}

#[cfg(any(target_family = "wasm", test))]
mod rustcrypto_backend {
    use super::OpenError;
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

    pub(super) struct Key(ChaCha20Poly1305);

    impl Key {
        pub(super) fn new(key: &[u8; 32]) -> Self {
            Key(ChaCha20Poly1305::new(key.into()))
        }

        pub(super) fn seal(&self, nonce: [u8; 12], in_out: &mut [u8]) -> [u8; 16] {
            let tag = self
                .0
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], in_out)
                .expect("a frame is far below ChaCha20-Poly1305's limit");
            tag.into()
        }

        pub(super) fn open(&self, nonce: [u8; 12], in_out: &mut [u8], tag: &[u8]) -> Result<(), OpenError> {
            if tag.len() != 16 {
                return Err(OpenError);
            }
            self.0
                .decrypt_in_place_detached(Nonce::from_slice(&nonce), &[], in_out, Tag::from_slice(tag))
                .map_err(|_| OpenError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow::resolvers::CryptoResolver as _;

    /// Our frames are snow's: the same bytes out of the same key and counter, both ways.
    #[test]
    fn frames_match_snow_cipher_state() {
        let key = [7u8; 32];
        let mut ours = CipherState::new(key);
        let mut theirs = snow::resolvers::DefaultResolver
            .resolve_cipher(&snow::params::CipherChoice::ChaChaPoly)
            .expect("snow has ChaChaPoly");
        theirs.set(&key);
        let mut opener = CipherState::new(key);
        for (n, len) in [0usize, 1, 15, 16, 17, 1000, 65_519].into_iter().enumerate() {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + n) as u8).collect();
            let mut expected = vec![0u8; len + TAG_LEN];
            assert_eq!(theirs.encrypt(n as u64, &[], &plain, &mut expected), len + TAG_LEN);
            let mut frame = plain.clone();
            frame.resize(len + TAG_LEN, 0);
            ours.seal(&mut frame).unwrap();
            assert_eq!(frame, expected, "frame {n} of {len} bytes");
            assert_eq!(opener.open(&mut frame).unwrap(), &plain[..]);
        }
    }

    /// The browser's cipher gives the same frames, and opens ours.
    #[test]
    fn both_backends_agree() {
        let key = [9u8; 32];
        let (ring, rustcrypto) = (ring_backend::Key::new(&key), rustcrypto_backend::Key::new(&key));
        for (n, len) in [0usize, 1, 64, 65_519].into_iter().enumerate() {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + n) as u8).collect();
            let nonce = nonce_bytes(n as u64 * 1_000_003);
            let (mut a, mut b) = (plain.clone(), plain.clone());
            let tag = ring.seal(nonce, &mut a);
            assert_eq!(rustcrypto.seal(nonce, &mut b), tag);
            assert_eq!(a, b);
            rustcrypto.open(nonce, &mut a, &tag).unwrap();
            assert_eq!(a, plain);
            let mut wrong = tag;
            wrong[0] ^= 1;
            assert_eq!(ring.open(nonce, &mut b, &wrong), Err(OpenError));
            assert_eq!(rustcrypto.open(nonce, &mut b, &wrong), Err(OpenError));
        }
    }

    #[test]
    fn a_tampered_or_replayed_frame_does_not_open() {
        let mut sealer = CipherState::new([1; 32]);
        let mut opener = CipherState::new([1; 32]);
        let mut first = b"first frame\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        sealer.seal(&mut first).unwrap();
        let mut tampered = first.clone();
        tampered[3] ^= 1;
        assert_eq!(opener.open(&mut tampered), Err(OpenError));
        assert!(opener.open(&mut first.clone()).is_ok());
        assert_eq!(opener.open(&mut first), Err(OpenError), "a replay uses the next nonce");
        assert_eq!(opener.open(&mut [0u8; 15]), Err(OpenError), "shorter than a tag");
    }

    #[test]
    fn the_last_nonce_is_never_used() {
        let mut sealer = CipherState { key: backend::Key::new(&[2; 32]), nonce: u64::MAX - 1 };
        assert!(sealer.seal(&mut [0u8; TAG_LEN]).is_ok());
        assert_eq!(sealer.seal(&mut [0u8; TAG_LEN]), Err(NoncesExhausted));
        let mut opener = CipherState { key: backend::Key::new(&[2; 32]), nonce: u64::MAX };
        assert_eq!(opener.open(&mut [0u8; TAG_LEN]), Err(OpenError));
    }
}

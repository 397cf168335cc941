//! Strict decoding of the fixed-width stamp: property tests over arbitrary bytes.

use arbitrary::{Arbitrary, Unstructured};
use isocore_pow::stamp::{DecodeError, STAMP_LEN, Stamp, VER_ALG_V1};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes: no panic; success only for exactly 41 bytes, the v1 byte and non-zero
    /// effort; and then the encoding is the input, byte for byte.
    #[test]
    fn decode_is_strict(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        match Stamp::decode(&bytes) {
            Ok(s) => {
                prop_assert_eq!(bytes.len(), STAMP_LEN);
                prop_assert_eq!(bytes[0], VER_ALG_V1);
                prop_assert_eq!(s.encode().to_vec(), bytes);
            }
            Err(DecodeError::Length(n)) => prop_assert!(n == bytes.len() && n != STAMP_LEN),
            Err(DecodeError::UnknownVersion(v)) => prop_assert!(v == bytes[0] && v != VER_ALG_V1),
            Err(DecodeError::ZeroEffort) => prop_assert_eq!(&bytes[5..9], &[0u8; 4][..]),
        }
    }

    /// 41-byte inputs that start with the v1 byte, so the interesting branches are reached often.
    #[test]
    fn decode_near_valid(head in any::<[u8; 8]>(), nonces in any::<[u8; 32]>()) {
        let mut b = vec![VER_ALG_V1];
        b.extend_from_slice(&head);
        b.extend_from_slice(&nonces);
        let zero = b[5..9] == [0; 4];
        prop_assert_eq!(Stamp::decode(&b).is_err(), zero);
    }

    /// Stamps built by `arbitrary` round-trip through their encoding.
    #[test]
    fn arbitrary_round_trip(raw in proptest::collection::vec(any::<u8>(), 48..64)) {
        let mut u = Unstructured::new(&raw);
        let (epoch, effort, nonces) = <(u32, u32, [u64; 4])>::arbitrary(&mut u).unwrap();
        let s = Stamp { epoch, effort: effort.max(1), nonces };
        prop_assert_eq!(Stamp::decode(&s.encode()), Ok(s));
    }
}

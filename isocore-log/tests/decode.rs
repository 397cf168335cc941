//! Decoders and the replication machine under arbitrary input: typed errors, never a panic,
//! and a store that nothing refused can change.

mod common;

use bytes::Bytes;
use common::{entry, writer};
use isocore_log::{Config, Feed, Hash, MemoryStore, Message, Replicator, Signature, SignedHead};
use proptest::prelude::*;
use std::time::Duration;

fn head_strategy() -> impl Strategy<Value = SignedHead> {
    (any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(length, root, s1, s2)| {
        let mut signature = [0; 64];
        signature[..32].copy_from_slice(&s1);
        signature[32..].copy_from_slice(&s2);
        SignedHead { length: length >> 2, root: Hash(root), signature: Signature(signature) }
    })
}

/// Valid, well-bounded messages of every kind, encoded.
fn message_strategy() -> impl Strategy<Value = Vec<u8>> {
    let small = 0u64..1 << 40;
    prop_oneof![
        (head_strategy(), any::<u64>())
            .prop_map(|(head, c)| { Message::Have { head, contiguous: c % (head.length + 1) }.to_vec() }),
        (any::<u64>(), small.clone(), small.clone(), 0u64..5000, any::<bool>()).prop_map(
            |(id, base, start, n, upgrade)| { Message::Request { id, base, start, end: start + n, upgrade }.to_vec() }
        ),
        (
            any::<u64>(),
            small.clone(),
            proptest::option::of(head_strategy()),
            small.clone(),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            proptest::collection::vec(any::<[u8; 32]>(), 0..6)
        )
            .prop_map(|(id, base, head, contiguous, entries, nodes)| {
                let head = head.map(|mut h| {
                    h.length = base + 1 + (h.length % 1000) + entries.len() as u64;
                    h
                });
                let target = head.map_or(base, |h| h.length);
                let start = target.saturating_sub(entries.len() as u64);
                let entries: Vec<&[u8]> = entries.iter().map(|e| &e[..]).collect();
                let nodes = nodes.into_iter().map(Hash).collect();
                Message::Data { id, base, head, contiguous, start, entries, nodes }.to_vec()
            }),
        any::<u64>().prop_map(|id| Message::NoData { id }.to_vec()),
        Just(Message::Subscribe.to_vec()),
        Just(Message::Unsubscribe.to_vec()),
        any::<u64>().prop_map(|id| Message::Cancel { id }.to_vec()),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..=64), 0..=16)
            .prop_map(|peers| { Message::Redirect { peers: peers.iter().map(|p| &p[..]).collect() }.to_vec() }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_decode_to_a_canonical_message_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(message) = Message::decode(&bytes) {
            prop_assert_eq!(message.to_vec(), bytes);
        }
    }

    #[test]
    fn every_message_round_trips(bytes in message_strategy()) {
        let message = Message::decode(&bytes).unwrap();
        prop_assert_eq!(message.to_vec(), bytes);
    }

    #[test]
    fn mutated_messages_are_refused_or_canonical(bytes in message_strategy(), at in any::<proptest::sample::Index>(), value in any::<u8>(), cut in any::<bool>()) {
        let mut bytes = bytes;
        let i = at.index(bytes.len());
        if cut { bytes.truncate(i); } else { bytes[i] = value; }
        if let Ok(message) = Message::decode(&bytes) {
            prop_assert_eq!(message.to_vec(), bytes);
        }
    }

    /// The replication machine of a replica that holds data, fed arbitrary messages: it
    /// returns errors, never panics, and refused input never changes what is stored.
    #[test]
    fn handle_input_survives_anything(
        inputs in proptest::collection::vec(
            prop_oneof![message_strategy(), proptest::collection::vec(any::<u8>(), 0..100)], 1..20),
    ) {
        let (signer, key) = writer(20);
        let mut feed = Feed::open(key, MemoryStore::new()).unwrap();
        feed.append(&signer, (0..37).map(|i| entry(i, 12))).unwrap();
        let mut replicator = Replicator::new(Config::default());
        replicator.start(&feed, Duration::ZERO);
        let before = (feed.head().copied(), feed.contiguous_len());
        for (step, input) in inputs.into_iter().enumerate() {
            let now = Duration::from_millis(step as u64);
            let _ = replicator.handle_input(&mut feed, now, &Bytes::from(input));
            let mut buf = Vec::new();
            while replicator.poll_transmit(&feed, &mut buf).unwrap().is_some() {}
            while replicator.poll_event().is_some() {}
            replicator.handle_timeout(&feed, now + Duration::from_secs(60));
        }
        // Random input cannot carry the writer's signature, so nothing may have moved.
        prop_assert_eq!((feed.head().copied(), feed.contiguous_len()), before);
        for i in 0..37 {
            prop_assert_eq!(feed.get(i).unwrap(), Some(Bytes::from(entry(i, 12))));
        }
    }
}

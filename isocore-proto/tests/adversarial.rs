//! Named attacks on the handshake and the session. Each is refused with its own error.

use ed25519_dalek::{Signer, SigningKey};
use isocore_log::FeedKey;
use isocore_proto::connection::{code, stream_code};
use isocore_proto::handshake::{IdentityPayload, identity_signable};
use isocore_proto::message::Message;
use isocore_proto::{
    Connection, ConnectionConfig, ConnectionError, Event, Handshake, HandshakeConfig, HandshakeError, Identity, Role,
};
use std::time::Duration;

const T0: Duration = Duration::ZERO;

fn pair() -> (Connection, Connection) {
    pair_with(ConnectionConfig::default(), ConnectionConfig::default())
}

fn pair_with(a: ConnectionConfig, b: ConnectionConfig) -> (Connection, Connection) {
    let mut i = Connection::new(Role::Initiator, &Identity::from_seed([1; 32]), a, [11; 32], T0);
    let mut r = Connection::new(Role::Responder, &Identity::from_seed([2; 32]), b, [22; 32], T0);
    pump(&mut i, &mut r);
    assert!(i.is_open() && r.is_open());
    (i, r)
}

/// Move bytes both ways until quiet. Returns the events each side saw.
fn pump(a: &mut Connection, b: &mut Connection) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        let mut buf = Vec::new();
        while a.poll_transmit(T0, &mut buf).is_some() {}
        if !buf.is_empty() {
            let _ = b.handle_input(T0, &buf);
            moved = true;
        }
        buf.clear();
        while b.poll_transmit(T0, &mut buf).is_some() {}
        if !buf.is_empty() {
            let _ = a.handle_input(T0, &buf);
            moved = true;
        }
        while let Some(e) = a.poll_event() {
            ea.push(e);
        }
        while let Some(e) = b.poll_event() {
            eb.push(e);
        }
        if !moved {
            return (ea, eb);
        }
    }
}

fn closed_with(events: &[Event]) -> Option<ConnectionError> {
    events.iter().find_map(|e| match e {
        Event::Closed(err) => Some(err.clone()),
        _ => None,
    })
}

fn write(h: &mut Handshake) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(h.write_message(&mut out).unwrap());
    out
}

/// A responder that reads the first message honestly, then answers with any payload.
struct RogueResponder {
    handshake: Handshake,
    noise_public: [u8; 32],
}

impl RogueResponder {
    fn new(seed: u8) -> Self {
        let identity = Identity::from_seed([seed; 32]);
        let handshake = Handshake::new(
            Role::Responder,
            &identity,
            HandshakeConfig { versions: vec![1, 2], ..HandshakeConfig::default() },
            [seed; 32],
            T0,
        );
        RogueResponder { handshake, noise_public: *identity.noise_public() }
    }

    fn answer(&mut self, msg1: &[u8], make: impl FnOnce(&[u8; 32], [u8; 32]) -> IdentityPayload) -> Vec<u8> {
        // Only version 1 is built in; an offer of [1, 2] still reads, and the payload is ours.
        let _ = self.handshake.read_message(msg1);
        let noise_public = self.noise_public;
        let mut out = Vec::new();
        self.handshake.write_raw(|h| postcard::to_allocvec(&make(&noise_public, h)).unwrap(), &mut out);
        out
    }
}

fn x25519_public(seed: &[u8; 32]) -> [u8; 32] {
    *Identity::from_seed(*seed).noise_public()
}

fn honest_payload(
    signer: &SigningKey,
    noise_static: &[u8; 32],
    h: [u8; 32],
    version: u16,
    versions: Vec<u16>,
) -> IdentityPayload {
    IdentityPayload {
        identity: signer.verifying_key().to_bytes(),
        noise_static: *noise_static,
        signature: isocore_log::Signature(
            signer.sign(&identity_signable(Role::Responder, noise_static, &h)).to_bytes(),
        ),
        version,
        versions,
        features: 0,
    }
}

fn initiator(versions: Vec<u16>) -> Handshake {
    let config = HandshakeConfig { versions, ..HandshakeConfig::default() };
    Handshake::new(Role::Initiator, &Identity::from_seed([1; 32]), config, [3; 32], T0)
}

#[test]
fn rogue_responder_with_honest_payload_is_accepted() {
    let mut i = initiator(vec![1]);
    let mut rogue = RogueResponder::new(40);
    let signer = SigningKey::from_bytes(&[41; 32]);
    let msg2 = rogue.answer(&write(&mut i), |s, h| honest_payload(&signer, s, h, 1, vec![1]));
    assert_eq!(i.read_message(&msg2), Ok(()));
}

#[test]
fn bad_identity_signature() {
    let mut i = initiator(vec![1]);
    let mut rogue = RogueResponder::new(42);
    let signer = SigningKey::from_bytes(&[43; 32]);
    let msg2 = rogue.answer(&write(&mut i), |s, h| {
        let mut p = honest_payload(&signer, s, h, 1, vec![1]);
        p.signature.0[7] ^= 1;
        p
    });
    assert_eq!(i.read_message(&msg2), Err(HandshakeError::BadIdentitySignature));
}

#[test]
fn identity_signed_over_another_transcript() {
    // A signature lifted from another session: right key, wrong handshake hash.
    let mut i = initiator(vec![1]);
    let mut rogue = RogueResponder::new(44);
    let signer = SigningKey::from_bytes(&[45; 32]);
    let msg2 = rogue.answer(&write(&mut i), |s, _| honest_payload(&signer, s, [0; 32], 1, vec![1]));
    assert_eq!(i.read_message(&msg2), Err(HandshakeError::BadIdentitySignature));
}

#[test]
fn static_key_swapped_in_the_middle() {
    // The payload names (and signs) a static key other than the one used in the handshake.
    let mut i = initiator(vec![1]);
    let mut rogue = RogueResponder::new(46);
    let signer = SigningKey::from_bytes(&[47; 32]);
    let other_static = x25519_public(&[48; 32]);
    let msg2 = rogue.answer(&write(&mut i), |_, h| honest_payload(&signer, &other_static, h, 1, vec![1]));
    assert_eq!(i.read_message(&msg2), Err(HandshakeError::StaticKeyMismatch));
}

#[test]
fn unknown_version() {
    let mut i = initiator(vec![7, 9]);
    let mut r = Handshake::new(Role::Responder, &Identity::from_seed([2; 32]), HandshakeConfig::default(), [4; 32], T0);
    assert_eq!(r.read_message(&write(&mut i)), Err(HandshakeError::UnsupportedVersion));
}

#[test]
fn downgraded_version() {
    // Both sides speak 1 and 2; the responder picks 1.
    let mut i = initiator(vec![1, 2]);
    let mut rogue = RogueResponder::new(49);
    let signer = SigningKey::from_bytes(&[50; 32]);
    let msg2 = rogue.answer(&write(&mut i), |s, h| honest_payload(&signer, s, h, 1, vec![1, 2]));
    assert_eq!(i.read_message(&msg2), Err(HandshakeError::Downgrade));
}

#[test]
fn tampered_first_message_is_caught_by_the_transcript() {
    // Changing the offered versions in flight changes the transcript: the next message fails.
    let config = HandshakeConfig { versions: vec![1], ..HandshakeConfig::default() };
    let mut i = Handshake::new(Role::Initiator, &Identity::from_seed([1; 32]), config.clone(), [3; 32], T0);
    let mut r = Handshake::new(Role::Responder, &Identity::from_seed([2; 32]), config, [4; 32], T0);
    let mut msg1 = write(&mut i);
    msg1[5] ^= 0x01; // inside the ephemeral key
    r.read_message(&msg1).unwrap();
    let msg2 = write(&mut r);
    assert_eq!(i.read_message(&msg2), Err(HandshakeError::Decrypt));
}

#[test]
fn replayed_handshake_message() {
    let config = HandshakeConfig::default();
    let run = |seed: u8| {
        let mut i = Handshake::new(Role::Initiator, &Identity::from_seed([1; 32]), config.clone(), [seed; 32], T0);
        let mut r = Handshake::new(Role::Responder, &Identity::from_seed([2; 32]), config.clone(), [seed + 1; 32], T0);
        r.read_message(&write(&mut i)).unwrap();
        let msg2 = write(&mut r);
        i.read_message(&msg2).unwrap();
        // The same second message again, out of turn:
        assert_eq!(i.read_message(&msg2), Err(HandshakeError::UnexpectedMessage));
        (write(&mut i), r)
    };
    let (msg3_from_first, _) = run(10);
    let (_, mut second) = run(20);
    // The third message of one session replayed into another does not decrypt.
    assert_eq!(second.read_message(&msg3_from_first), Err(HandshakeError::Decrypt));
}

#[test]
fn handshake_that_never_completes_times_out() {
    let mut i =
        Connection::new(Role::Initiator, &Identity::from_seed([1; 32]), ConnectionConfig::default(), [5; 32], T0);
    let mut buf = Vec::new();
    assert!(i.poll_transmit(T0, &mut buf).is_some());
    let deadline = i.poll_timeout().unwrap();
    assert_eq!(deadline, HandshakeConfig::default().timeout);
    i.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!i.is_closed());
    i.handle_timeout(deadline);
    assert!(i.is_closed());
    assert_eq!(i.poll_event(), Some(Event::Closed(ConnectionError::Handshake(HandshakeError::Timeout))));
}

#[test]
fn tampered_frame_ends_the_session() {
    let (mut i, mut r) = pair();
    i.send_raw(&Message::Ping { nonce: 1 });
    let mut frame = Vec::new();
    assert!(i.poll_transmit(T0, &mut frame).is_some());
    frame[5] ^= 0x20;
    assert_eq!(r.handle_input(T0, &frame), Err(ConnectionError::Decrypt));
    // The victim tells the peer why before it stops.
    let mut close = Vec::new();
    assert!(r.poll_transmit(T0, &mut close).is_some());
    assert!(i.handle_input(T0, &close).is_ok());
    let events: Vec<Event> = std::iter::from_fn(|| i.poll_event()).collect();
    assert!(
        events.iter().any(|e| matches!(e, Event::Closed(ConnectionError::PeerClosed { code: code::DECRYPT, .. }))),
        "{events:?}"
    );
}

#[test]
fn replayed_frame_ends_the_session() {
    let (mut i, mut r) = pair();
    i.send_raw(&Message::Ping { nonce: 1 });
    let mut frame = Vec::new();
    assert!(i.poll_transmit(T0, &mut frame).is_some());
    assert!(r.handle_input(T0, &frame).is_ok());
    assert_eq!(r.handle_input(T0, &frame), Err(ConnectionError::Decrypt));
}

#[test]
fn zero_length_frame_is_refused() {
    let (_, mut r) = pair();
    assert!(matches!(r.handle_input(T0, &[0, 0]), Err(ConnectionError::Malformed(_))));
}

#[test]
fn oversized_message_is_refused_before_it_is_buffered() {
    let (mut i, mut r) = pair();
    let huge = vec![0u8; isocore_proto::MAX_MESSAGE_LEN + 10];
    i.send_raw(&Message::Ping { nonce: 0 });
    i.call([0; 32], "big", &huge);
    let (_, er) = pump(&mut i, &mut r);
    assert_eq!(closed_with(&er), Some(ConnectionError::MessageTooLarge));
}

fn feed(seed: u8) -> FeedKey {
    FeedKey::standalone(SigningKey::from_bytes(&[seed; 32]).verifying_key())
}

#[test]
fn stream_for_an_unknown_feed_is_reset() {
    let (mut i, mut r) = pair();
    let stream = i.open_stream(&feed(1)).unwrap();
    let (_, er) = pump(&mut i, &mut r);
    assert!(matches!(er[..], [Event::StreamRequested { .. }]));
    r.reject_stream(stream, stream_code::UNKNOWN_FEED);
    let (ei, _) = pump(&mut i, &mut r);
    assert_eq!(ei, vec![Event::StreamReset { stream, code: stream_code::UNKNOWN_FEED }]);
}

#[test]
fn wrong_discovery_proof_is_refused() {
    // The opener knows only the discovery key, not the feed key it is derived from.
    let (mut i, mut r) = pair();
    let key = feed(2);
    i.send_raw(&Message::Open { stream: 3, discovery_key: key.discovery_key(), proof: [0xaa; 32], stamp: None });
    let (_, er) = pump(&mut i, &mut r);
    assert!(matches!(er[..], [Event::StreamRequested { stream: 3, .. }]));
    assert!(!r.accept_stream(3, &key));
    assert_eq!(r.stream_count(), 0, "the refused stream is gone");
    // And the right key, proven properly, is accepted on the same connection.
    let stream = i.open_stream(&key).unwrap();
    pump(&mut i, &mut r);
    assert!(r.accept_stream(stream, &key));
    let (ei, _) = pump(&mut i, &mut r);
    assert_eq!(ei, vec![Event::StreamAccepted { stream }]);
}

#[test]
fn proof_from_another_session_is_refused() {
    let key = feed(3);
    let (mut i1, r1) = pair();
    let old_hash = i1.handshake_hash().unwrap();
    drop(r1);
    let proof = isocore_proto::connection::stream_proof(&key, &old_hash, 1);
    let mut i2 =
        Connection::new(Role::Initiator, &Identity::from_seed([1; 32]), ConnectionConfig::default(), [77; 32], T0);
    let mut r2 =
        Connection::new(Role::Responder, &Identity::from_seed([2; 32]), ConnectionConfig::default(), [78; 32], T0);
    pump(&mut i2, &mut r2);
    assert_ne!(i2.handshake_hash(), Some(old_hash));
    i2.send_raw(&Message::Open { stream: 1, discovery_key: key.discovery_key(), proof, stamp: None });
    pump(&mut i2, &mut r2);
    assert!(!r2.accept_stream(1, &key));
    let _ = &mut i1;
}

#[test]
fn credit_violation_cuts_the_peer_off() {
    let small = ConnectionConfig { stream_window: 1000, ..ConnectionConfig::default() };
    let (mut i, mut r) = pair_with(ConnectionConfig::default(), small);
    let key = feed(4);
    let stream = i.open_stream(&key).unwrap();
    pump(&mut i, &mut r);
    assert!(r.accept_stream(stream, &key));
    pump(&mut i, &mut r);
    // Ignore the window: 24 000 bytes where 16 KiB were granted, and the events
    // are not taken out (so no credit comes back).
    let chunk = vec![0u8; 800];
    for _ in 0..30 {
        i.send_raw(&Message::Stream { stream, payload: &chunk });
    }
    let mut buf = Vec::new();
    while i.poll_transmit(T0, &mut buf).is_some() {}
    assert_eq!(r.handle_input(T0, &buf), Err(ConnectionError::FlowControl));
}

#[test]
fn honest_sender_waits_for_credit() {
    let small = ConnectionConfig { stream_window: 16 << 10, ..ConnectionConfig::default() };
    let (mut i, mut r) = pair_with(ConnectionConfig::default(), small);
    let key = feed(5);
    let stream = i.open_stream(&key).unwrap();
    pump(&mut i, &mut r);
    assert!(r.accept_stream(stream, &key));
    for _ in 0..300 {
        i.send_stream(stream, &[7u8; 1000]);
    }
    let (ei, er) = pump(&mut i, &mut r);
    eprintln!(
        "{ei:?} {:?} backlog {}",
        er.iter().filter(|e| !matches!(e, Event::StreamData { .. })).collect::<Vec<_>>(),
        i.stream_backlog(stream)
    );
    let received = er.iter().filter(|e| matches!(e, Event::StreamData { .. })).count();
    assert_eq!(received, 300, "credit returned as the receiver consumed");
    assert!(closed_with(&er).is_none());
}

#[test]
fn flood_of_stream_opens() {
    let limited = ConnectionConfig { max_streams: 16, ..ConnectionConfig::default() };
    let (mut i, mut r) = pair_with(ConnectionConfig::default(), limited);
    for seed in 0..40 {
        i.open_stream(&feed(seed));
    }
    let (_, er) = pump(&mut i, &mut r);
    assert_eq!(er.iter().filter(|e| matches!(e, Event::StreamRequested { .. })).count(), 16);
    assert_eq!(closed_with(&er), Some(ConnectionError::TooManyStreams));
}

#[test]
fn stream_id_of_the_wrong_parity() {
    let (mut i, mut r) = pair();
    // The initiator opens odd streams only.
    i.send_raw(&Message::Open { stream: 2, discovery_key: [0; 32], proof: [0; 32], stamp: None });
    let (_, er) = pump(&mut i, &mut r);
    assert!(matches!(closed_with(&er), Some(ConnectionError::Protocol(_))));
}

#[test]
fn idle_connection_times_out_without_keepalive() {
    let (mut i, _r) = pair();
    let mut now = T0;
    // The peer never answers; our own pings do not count as hearing from it.
    for _ in 0..10 {
        now = i.poll_timeout().unwrap();
        i.handle_timeout(now);
        let mut buf = Vec::new();
        while i.poll_transmit(now, &mut buf).is_some() {}
        if i.is_closed() {
            break;
        }
    }
    assert!(i.is_closed());
    assert_eq!(now, ConnectionConfig::default().idle_timeout);
}

#[test]
fn both_ends_of_a_stream_get_the_configured_window() {
    // Each side grants its window as soon as the stream exists, so a burst far beyond the
    // initial credit flows in both directions without the receiver consuming anything.
    let (mut i, mut r) = pair();
    let key = feed(6);
    let stream = i.open_stream(&key).unwrap();
    pump(&mut i, &mut r);
    assert!(r.accept_stream(stream, &key));
    pump(&mut i, &mut r);
    for _ in 0..200 {
        i.send_stream(stream, &[1u8; 1000]);
        r.send_stream(stream, &[2u8; 1000]);
    }
    let mut sent = (Vec::new(), Vec::new());
    while i.poll_transmit(T0, &mut sent.0).is_some() {}
    while r.poll_transmit(T0, &mut sent.1).is_some() {}
    assert!(r.handle_input(T0, &sent.0).is_ok() && i.handle_input(T0, &sent.1).is_ok());
    let count = |c: &mut Connection| {
        std::iter::from_fn(|| c.poll_event()).filter(|e| matches!(e, Event::StreamData { .. })).count()
    };
    assert_eq!((count(&mut i), count(&mut r)), (200, 200));
}

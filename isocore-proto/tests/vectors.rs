//! Conformance vectors for `spec/proto.md`, checked in under `conformance/vectors/proto/`.
//! Regenerate with `ISOCORE_BLESS=1 cargo test -p isocore-proto --test vectors`.

use isocore_proto::message::{Message, Unsolicited};
use isocore_proto::{Connection, ConnectionConfig, Event, HandshakeConfig, Identity, Role};
use serde_json::{Value, json};
use std::time::Duration;

const T0: Duration = Duration::ZERO;

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// One complete handshake and the first frame each way, with everything fixed by seeds.
fn transcript(identity_i: u8, identity_r: u8, seed_i: u8, seed_r: u8) -> Value {
    let (id_i, id_r) = (Identity::from_seed([identity_i; 32]), Identity::from_seed([identity_r; 32]));
    let mut i = Connection::new(Role::Initiator, &id_i, ConnectionConfig::default(), [seed_i; 32], T0);
    let mut r = Connection::new(Role::Responder, &id_r, ConnectionConfig::default(), [seed_r; 32], T0);
    let mut messages = Vec::new();
    let send = |from: &mut Connection, to: &mut Connection, who: &str, messages: &mut Vec<Value>| {
        let mut buf = Vec::new();
        assert!(from.poll_transmit(T0, &mut buf).is_some());
        to.handle_input(T0, &buf).unwrap();
        messages.push(json!({"sender": who, "framed": hex(&buf)}));
    };
    send(&mut i, &mut r, "initiator", &mut messages);
    send(&mut r, &mut i, "responder", &mut messages);
    send(&mut i, &mut r, "initiator", &mut messages);
    assert!(i.is_open() && r.is_open());
    let hash = i.handshake_hash().unwrap();
    assert_eq!(r.handshake_hash(), Some(hash));
    // Drain the connection-window credits both sides queue at establishment, then one ping each
    // way: the first transport frames, under the session keys.
    let mut session = Vec::new();
    let mut flush = |from: &mut Connection, to: &mut Connection, who: &str| {
        let mut buf = Vec::new();
        while from.poll_transmit(T0, &mut buf).is_some() {}
        to.handle_input(T0, &buf).unwrap();
        session.push(
            json!({"sender": who, "plaintextMessages": ["Credit { stream: 0, bytes: 4128768 }"], "framed": hex(&buf)}),
        );
    };
    flush(&mut i, &mut r, "initiator");
    flush(&mut r, &mut i, "responder");
    while i.poll_event().is_some() {}
    while r.poll_event().is_some() {}
    json!({
        "comment": format!("identities {identity_i}/{identity_r}, handshake seeds {seed_i}/{seed_r}"),
        "initiatorIdentitySeed": hex(&[identity_i; 32]),
        "responderIdentitySeed": hex(&[identity_r; 32]),
        "initiatorPeerId": hex(&id_i.peer_id().0),
        "responderPeerId": hex(&id_r.peer_id().0),
        "initiatorNoiseStatic": hex(id_i.noise_public()),
        "responderNoiseStatic": hex(id_r.noise_public()),
        "initiatorHandshakeSeed": hex(&[seed_i; 32]),
        "responderHandshakeSeed": hex(&[seed_r; 32]),
        "messages": messages,
        "handshakeHash": hex(&hash),
        "sessionFrames": session,
        "result": "valid",
    })
}

fn handshake_vectors() -> Value {
    let tests = vec![transcript(1, 2, 3, 4), transcript(5, 6, 7, 8), transcript(9, 9, 10, 11)];
    json!({
        "algorithm": "isocore-proto handshake",
        "specification": "spec/proto.md",
        "generator": "isocore-proto/tests/vectors.rs",
        "protocolName": "Noise_XX_25519_ChaChaPoly_BLAKE2s",
        "prologue": hex(isocore_proto::handshake::PROLOGUE),
        "versions": HandshakeConfig::default().versions,
        "notes": {
            "randomness": "the ephemeral key is the first 32 bytes of the BLAKE3 extendable output of derive_key(\"isocore/proto/v1/handshake-rng\", handshake seed)",
            "staticKey": "the Noise static private key is derive_key(\"isocore/proto/v1/noise-static\", identity seed)",
        },
        "numberOfTests": tests.len(),
        "testGroups": [{"type": "HandshakeTranscript", "tests": tests}],
    })
}

fn message_vectors() -> Value {
    let stamp = [0x5a; 41];
    let valid = [
        ("Open", Message::Open { stream: 1, discovery_key: [1; 32], proof: [2; 32], stamp: None }),
        ("Open with a stamp", Message::Open { stream: 3, discovery_key: [1; 32], proof: [2; 32], stamp: Some(&stamp) }),
        ("Accept", Message::Accept { stream: 2 }),
        ("Reset", Message::Reset { stream: 2, code: 1 }),
        ("Stream", Message::Stream { stream: 300, payload: b"\x04" }),
        ("Credit, connection", Message::Credit { stream: 0, bytes: 1 << 20 }),
        ("Call", Message::Call { id: 1, interface: [3; 32], method: "post", payload: b"hello", stamp: None }),
        ("Reply", Message::Reply { id: 1, payload: b"ok" }),
        ("Fail", Message::Fail { id: 1, code: 404, reason: "no such method" }),
        ("CancelCall", Message::CancelCall { id: 9 }),
        ("Ping", Message::Ping { nonce: 42 }),
        ("Pong", Message::Pong { nonce: 42 }),
        ("Close", Message::Close { code: 0, reason: "bye" }),
        ("Busy for a call", Message::Busy { of: Unsolicited::Call(1), price: 20, retry_after_ms: 1500 }),
        ("Busy for a stream open", Message::Busy { of: Unsolicited::Open(3), price: 320, retry_after_ms: 0 }),
        ("Price", Message::Price { epoch: 7, seed: [4; 32], price: 12 }),
    ];
    let mut tests: Vec<Value> = valid
        .iter()
        .map(|(name, m)| {
            let bytes = m.to_vec();
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(m));
            json!({"comment": name, "flags": [], "encoded": hex(&bytes), "debug": format!("{m:?}"), "result": "valid"})
        })
        .collect();
    let long_method = "m".repeat(65);
    let nay: Vec<(&str, &str, Vec<u8>)> = vec![
        ("Ping nonce with an overlong varint", "NonCanonical", vec![9, 0x80, 0x00]),
        ("Accept followed by a stray byte", "TrailingBytes", vec![1, 2, 0]),
        ("unknown tag", "Malformed", vec![14]),
        ("Busy answering neither an open nor a call", "Malformed", vec![12, 2, 1, 20, 0]),
        ("Accept for stream 0", "OutOfBounds", Message::Accept { stream: 0 }.to_vec()),
        (
            "method name over 64 bytes",
            "OutOfBounds",
            Message::Call { id: 1, interface: [0; 32], method: &long_method, payload: b"", stamp: None }.to_vec(),
        ),
        ("method name that is not UTF-8", "Malformed", {
            let mut m = Message::Call { id: 1, interface: [0; 32], method: "ab", payload: b"", stamp: None }.to_vec();
            let at = m.len() - 4;
            m[at] = 0xff;
            m
        }),
        (
            "stamp over 128 bytes",
            "OutOfBounds",
            Message::Open { stream: 1, discovery_key: [0; 32], proof: [0; 32], stamp: Some(&[0; 129]) }.to_vec(),
        ),
    ];
    for (comment, reason, bytes) in nay {
        let got = Message::decode(&bytes).map(|_| ()).map_err(|e| format!("{e:?}"));
        assert_eq!(got, Err(reason.to_string()), "{comment}");
        tests.push(json!({"comment": comment, "flags": [reason], "encoded": hex(&bytes), "result": "invalid"}));
    }
    for (n, t) in tests.iter_mut().enumerate() {
        t["tcId"] = json!(n + 1);
    }
    let digests = stamp_digest_vectors(tests.len());
    json!({
        "algorithm": "isocore-proto messages",
        "specification": "spec/proto.md",
        "generator": "isocore-proto/tests/vectors.rs",
        "numberOfTests": tests.len() + digests.len(),
        "notes": {
            "NonCanonical": "decodes, but re-encodes to other bytes",
            "TrailingBytes": "bytes remain after the message",
            "Malformed": "not a message",
            "OutOfBounds": "a field outside its limits",
        },
        "testGroups": [
            {"type": "SessionMessage", "tests": tests},
            {"type": "StampDigest", "context": isocore_proto::message::STAMP_DIGEST_CONTEXT, "tests": digests},
        ],
    })
}

/// The digest a stamp pays for: the same with and without the stamp, different in another
/// session or for another message.
fn stamp_digest_vectors(first_id: usize) -> Vec<Value> {
    let stamp = [0x5a; 41];
    let long = [0x11; 128];
    let payload = vec![0x42; 300];
    let cases = [
        (
            "Open without a stamp",
            [7; 32],
            Message::Open { stream: 1, discovery_key: [1; 32], proof: [2; 32], stamp: None },
        ),
        (
            "the same Open with a stamp",
            [7; 32],
            Message::Open { stream: 1, discovery_key: [1; 32], proof: [2; 32], stamp: Some(&stamp) },
        ),
        (
            "the same Open in another session",
            [8; 32],
            Message::Open { stream: 1, discovery_key: [1; 32], proof: [2; 32], stamp: Some(&stamp) },
        ),
        (
            "Call with a stamp",
            [7; 32],
            Message::Call { id: 1, interface: [3; 32], method: "post", payload: b"hello", stamp: Some(&stamp) },
        ),
        (
            "Call with a longer payload and the longest stamp",
            [7; 32],
            Message::Call { id: 200, interface: [3; 32], method: "post", payload: &payload, stamp: Some(&long) },
        ),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(n, (comment, hash, m))| {
            json!({
                "tcId": first_id + n + 1,
                "comment": comment,
                "handshakeHash": hex(hash),
                "encoded": hex(&m.to_vec()),
                "digest": hex(&m.stamp_digest(hash)),
                "result": "valid",
            })
        })
        .collect()
}

fn check(name: &str, value: Value) {
    let json = serde_json::to_string_pretty(&value).unwrap();
    isocore_conformance::check_vector_file("proto", name, &json, "cargo test -p isocore-proto --test vectors");
}

#[test]
fn handshake_vectors_are_up_to_date() {
    check("handshake.json", handshake_vectors());
}

#[test]
fn message_vectors_are_up_to_date() {
    check("messages.json", message_vectors());
}

#[test]
fn transcripts_are_deterministic_and_distinct() {
    assert_eq!(transcript(1, 2, 3, 4), transcript(1, 2, 3, 4));
    assert_ne!(transcript(1, 2, 3, 4)["handshakeHash"], transcript(1, 2, 3, 5)["handshakeHash"]);
    let _ = Event::StreamAccepted { stream: 1 };
}

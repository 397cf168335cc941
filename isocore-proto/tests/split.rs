//! The byte stream cut anywhere gives the same events; arbitrary bytes never panic.

use isocore_log::FeedKey;
use isocore_proto::message::Message;
use isocore_proto::{Connection, ConnectionConfig, Event, Handshake, HandshakeConfig, Identity, Role};
use proptest::prelude::*;
use std::time::Duration;

const T0: Duration = Duration::ZERO;

fn initiator() -> Connection {
    Connection::new(Role::Initiator, &Identity::from_seed([1; 32]), ConnectionConfig::default(), [11; 32], T0)
}

fn responder() -> Connection {
    Connection::new(Role::Responder, &Identity::from_seed([2; 32]), ConnectionConfig::default(), [22; 32], T0)
}

fn feed() -> FeedKey {
    FeedKey::standalone(ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key())
}

/// What the initiator sends in a session with some of each kind of traffic, in two parts: the
/// handshake with a stream open, then (after the responder accepts) stream data and calls.
/// Deterministic: the seeds are fixed.
struct Transcript {
    opening: Vec<u8>,
    traffic: Vec<u8>,
}

fn transcript() -> Transcript {
    let (mut i, mut r) = (initiator(), responder());
    let mut sent = Vec::new();
    let step = |i: &mut Connection, r: &mut Connection, sent: &mut Vec<u8>| {
        let mut buf = Vec::new();
        while i.poll_transmit(T0, &mut buf).is_some() {}
        sent.extend_from_slice(&buf);
        r.handle_input(T0, &buf).unwrap();
        let mut back = Vec::new();
        drive(r, &mut back);
        i.handle_input(T0, &back).unwrap();
        while i.poll_event().is_some() {}
    };
    for _ in 0..3 {
        step(&mut i, &mut r, &mut sent);
    }
    let stream = i.open_stream(&feed()).unwrap();
    step(&mut i, &mut r, &mut sent);
    let opening = std::mem::take(&mut sent);
    for n in [0usize, 1, 100, 70_000, 200_000] {
        i.send_stream(stream, &vec![n as u8; n.max(1)]);
        i.call([9; 32], "m", &vec![7; n % 1000]);
    }
    for _ in 0..6 {
        step(&mut i, &mut r, &mut sent);
    }
    Transcript { opening, traffic: sent }
}

/// Drain a responder the way a driver does: events (accepting every stream), then output,
/// until neither produces anything.
fn drive(r: &mut Connection, out: &mut Vec<u8>) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let mut progress = false;
        while let Some(e) = r.poll_event() {
            if let Event::StreamRequested { stream, .. } = e {
                r.accept_stream(stream, &feed());
            }
            events.push(e);
            progress = true;
        }
        while r.poll_transmit(T0, out).is_some() {
            progress = true;
        }
        if !progress {
            return events;
        }
    }
}

/// Replay the initiator's bytes into a fresh responder, each part cut at the given points.
fn replay(t: &Transcript, opening_cuts: &[usize], traffic_cuts: &[usize]) -> Vec<Event> {
    let mut r = responder();
    let mut events = Vec::new();
    for (bytes, cuts) in [(&t.opening, opening_cuts), (&t.traffic, traffic_cuts)] {
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            r.handle_input(T0, &bytes[last..cut]).unwrap();
            last = cut;
            events.extend(drive(&mut r, &mut Vec::new()));
        }
    }
    events
}

fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::StreamData { stream, payload } => format!("data {stream} {} {:?}", payload.len(), payload.first()),
            Event::Call { id, payload, .. } => format!("call {id} {}", payload.len()),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn every_single_cut_point() {
    let t = transcript();
    let expected = summary(&replay(&t, &[], &[]));
    assert!(expected.iter().any(|e| e.starts_with("data")), "{expected:?}");
    assert!(expected.iter().any(|e| e.starts_with("call")));
    for cut in 1..t.opening.len() {
        assert_eq!(summary(&replay(&t, &[cut], &[])), expected, "handshake cut at {cut}");
    }
    for cut in (1..t.traffic.len()).step_by(97).chain(1..300) {
        assert_eq!(summary(&replay(&t, &[], &[cut])), expected, "traffic cut at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_gives_the_same_events(
        a in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        b in proptest::collection::vec(any::<proptest::sample::Index>(), 0..40),
    ) {
        let t = transcript();
        let expected = summary(&replay(&t, &[], &[]));
        let cut = |v: Vec<proptest::sample::Index>, len: usize| {
            let mut c: Vec<usize> = v.into_iter().map(|i| i.index(len)).collect();
            c.sort();
            c.dedup();
            c
        };
        let got = summary(&replay(&t, &cut(a, t.opening.len()), &cut(b, t.traffic.len())));
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_handshake(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut r = Handshake::new(Role::Responder, &Identity::from_seed([2; 32]), HandshakeConfig::default(), [4; 32], T0);
        let _ = r.read_message(&bytes);
        let mut i = Handshake::new(Role::Initiator, &Identity::from_seed([1; 32]), HandshakeConfig::default(), [3; 32], T0);
        let mut out = Vec::new();
        i.write_message(&mut out).unwrap();
        let _ = i.read_message(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_connection(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8)) {
        // Against a connection mid-handshake and one with an open session.
        let mut fresh = responder();
        let (mut i, mut r) = (initiator(), responder());
        for _ in 0..3 {
            let mut buf = Vec::new();
            while i.poll_transmit(T0, &mut buf).is_some() {}
            let _ = r.handle_input(T0, &buf);
            let mut back = Vec::new();
            while r.poll_transmit(T0, &mut back).is_some() {}
            let _ = i.handle_input(T0, &back);
        }
        prop_assert!(r.is_open());
        for chunk in &chunks {
            let _ = fresh.handle_input(T0, chunk);
            let _ = r.handle_input(T0, chunk);
            while fresh.poll_event().is_some() {}
            while r.poll_event().is_some() {}
            let mut sink = Vec::new();
            while r.poll_transmit(T0, &mut sink).is_some() {}
        }
    }

    #[test]
    fn session_messages_decode_canonically_or_not_at_all(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(m) = Message::decode(&bytes) {
            prop_assert_eq!(m.to_vec(), bytes);
        }
    }

    #[test]
    fn session_messages_round_trip(id in any::<u64>(), stream in 1u64.., payload in proptest::collection::vec(any::<u8>(), 0..64), method in "[a-z]{0,64}") {
        for m in [
            Message::Stream { stream, payload: &payload },
            Message::Call { id, interface: [1; 32], method: &method, payload: &payload, stamp: Some(&payload[..payload.len().min(10)]) },
            Message::Reply { id, payload: &payload },
            Message::Credit { stream, bytes: id },
            Message::Fail { id, code: 7, reason: &method },
        ] {
            let bytes = m.to_vec();
            prop_assert_eq!(Message::decode(&bytes), Ok(m));
        }
    }
}

//! Calls from other nodes: the payload, the gate's checks per session, and delivery.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use isocore_cap::{Grant, Refused, Root, UnverifiedChain, interface_id, prove_possession};
use isocore_host::remote::{CallGate, GateError, PayloadError, RemoteCall, code, parse_method};
use isocore_host::*;
use proptest::prelude::*;

const NOW: u64 = 1_780_000_000;

struct World {
    host: Node,
    node_key: SigningKey,
    caller: SigningKey,
    interface: [u8; 32],
    chain: Vec<u8>,
}

fn world() -> World {
    let host = node();
    let node_key = SigningKey::from_bytes(&[3; 32]);
    let caller = SigningKey::from_bytes(&[8; 32]);
    let echo = load(&host, "echo");
    let pid = host.spawn(&echo, b"").unwrap();
    let interface = interface_id("isocore:echo/api@0.1.0");
    host.export(interface, &echo, pid);
    let grant = Grant::to(caller.verifying_key().to_bytes())
        .component(*echo.digest())
        .interface(interface)
        .methods(0b1)
        .fuel(100);
    let chain = grant.issue(Root::Node(node_key.verifying_key().to_bytes()), &node_key).unwrap();
    World { host, node_key, caller, interface, chain }
}

fn proof(w: &World, handshake_hash: &[u8; 32]) -> [u8; 64] {
    let head = *UnverifiedChain::decode(&w.chain).unwrap().link_ids().last().unwrap();
    prove_possession(&w.caller, handshake_hash, &head)
}

fn call(
    w: &World,
    gate: &mut CallGate,
    session: u64,
    hh: &[u8; 32],
    proof: [u8; 64],
    method: &str,
) -> Result<Vec<u8>, String> {
    let payload = RemoteCall { chain: &w.chain, proof, fuel: 10, args: b"stressed" }.encode();
    let peer = w.caller.verifying_key().to_bytes();
    let (cap, method, c) = gate.admit(session, hh, &peer, method, &payload, NOW).map_err(|e| e.to_string())?;
    let nk = w.node_key.verifying_key().to_bytes();
    w.host
        .invoke(&nk, &cap, &Call { interface: &w.interface, method, args: c.args, fuel: c.fuel }, WAIT)
        .map_err(|e| e.to_string())
}

#[test]
fn a_call_with_a_bound_capability_reaches_the_exporter() {
    let w = world();
    let mut gate = CallGate::new();
    let hh = [7; 32];
    assert_eq!(call(&w, &mut gate, 1, &hh, proof(&w, &hh), "0").unwrap(), b"desserts");
    // Later calls in the session are checked from the gate's caches; the answer is the same.
    for _ in 0..3 {
        assert_eq!(call(&w, &mut gate, 1, &hh, proof(&w, &hh), "0").unwrap(), b"desserts");
    }
    // A method the chain does not cover is refused by the node, with the dimension.
    let denied = call(&w, &mut gate, 1, &hh, proof(&w, &hh), "1").unwrap_err();
    assert!(denied.contains("not authorised"), "{denied}");
}

#[test]
fn a_proof_from_another_session_is_refused() {
    let w = world();
    let mut gate = CallGate::new();
    let recorded = proof(&w, &[7; 32]);
    let payload = RemoteCall { chain: &w.chain, proof: recorded, fuel: 10, args: b"x" }.encode();
    let peer = w.caller.verifying_key().to_bytes();
    let replayed = gate.admit(2, &[9; 32], &peer, "0", &payload, NOW).unwrap_err();
    assert_eq!(replayed, GateError::Unauthorized(Refused::BadProof));
    assert_eq!(replayed.failure().0, code::UNAUTHORIZED);
}

#[test]
fn a_capability_held_by_someone_else_is_refused() {
    let w = world();
    let mut gate = CallGate::new();
    let hh = [7; 32];
    // The thief has the chain but not the holder's key: its own signature is no proof.
    let head = *UnverifiedChain::decode(&w.chain).unwrap().link_ids().last().unwrap();
    let thief = SigningKey::from_bytes(&[66; 32]);
    let forged = prove_possession(&thief, &hh, &head);
    let payload = RemoteCall { chain: &w.chain, proof: forged, fuel: 10, args: b"x" }.encode();
    let refused = gate.admit(3, &hh, &thief.verifying_key().to_bytes(), "0", &payload, NOW).unwrap_err();
    assert_eq!(refused, GateError::Unauthorized(Refused::BadProof));
}

#[test]
fn malformed_calls_are_refused_before_any_check() {
    let w = world();
    let mut gate = CallGate::new();
    let good = RemoteCall { chain: &w.chain, proof: proof(&w, &[7; 32]), fuel: 10, args: b"x" }.encode();
    let peer = w.caller.verifying_key().to_bytes();
    for method in ["", "00", "01", "256", "-1", "1a", "+1"] {
        assert_eq!(
            gate.admit(1, &[7; 32], &peer, method, &good, NOW).unwrap_err(),
            GateError::Malformed(PayloadError::BadMethod),
            "{method:?}"
        );
    }
    let cases: Vec<(Vec<u8>, PayloadError)> = vec![
        (vec![], PayloadError::Truncated),
        (good[..good.len() - 3 - 64].to_vec(), PayloadError::Truncated),
        (vec![0x81, 0x00], PayloadError::NonCanonical),
        (vec![0x81, 0x40, 1, 2], PayloadError::ChainTooLong),
        (vec![0xff; 11], PayloadError::NonCanonical),
    ];
    for (payload, expected) in cases {
        assert_eq!(gate.admit(1, &[7; 32], &peer, "0", &payload, NOW).unwrap_err(), GateError::Malformed(expected));
    }
}

proptest! {
    #[test]
    fn payloads_round_trip(chain in proptest::collection::vec(any::<u8>(), 0..600), proof in any::<[u8; 32]>(), fuel in any::<u64>(), args in proptest::collection::vec(any::<u8>(), 0..100)) {
        let proof = [proof, proof].concat().try_into().unwrap();
        let call = RemoteCall { chain: &chain, proof, fuel, args: &args };
        let bytes = call.encode();
        prop_assert_eq!(RemoteCall::decode(&bytes), Ok(call));
    }

    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(call) = RemoteCall::decode(&bytes) {
            prop_assert_eq!(call.encode(), bytes);
        }
    }

    #[test]
    fn methods_parse_exactly_their_decimal_names(m in any::<u8>()) {
        prop_assert_eq!(parse_method(&m.to_string()), Ok(m));
    }
}

/// Carries calls from one host to another in the same process, through the receiving node's
/// gate, as a session would (with a fixed handshake hash).
struct Loopback {
    to: std::sync::Arc<Node>,
    to_key: [u8; 32],
    from: SigningKey,
    gate: std::sync::Mutex<CallGate>,
}

impl Remote for Loopback {
    fn call(&self, node: [u8; 32], call: OutgoingCall) -> RemoteAnswer {
        let hh = [1; 32];
        let head = *UnverifiedChain::decode(&call.chain).unwrap().link_ids().last().unwrap();
        let proof = prove_possession(&self.from, &hh, &head);
        let payload = RemoteCall { chain: &call.chain, proof, fuel: call.fuel, args: &call.args }.encode();
        let peer = self.from.verifying_key().to_bytes();
        let admitted = self
            .gate
            .lock()
            .unwrap()
            .admit(1, &hh, &peer, &call.method.to_string(), &payload, NOW)
            .map(|(cap, method, c)| (cap, method, c.args.to_vec(), c.fuel));
        let (to, to_key, interface) = (self.to.clone(), self.to_key, call.interface);
        Box::pin(async move {
            if node != to_key {
                return Err(RemoteFailure::Unreachable);
            }
            let (cap, method, args, fuel) =
                admitted.map_err(|e| RemoteFailure::Refused(e.failure().0, e.to_string()))?;
            let call = Call { interface: &interface, method, args: &args, fuel };
            to.invoke_async(&to_key, &cap, &call, WAIT).await.map_err(|e| RemoteFailure::Refused(0, e.to_string()))
        })
    }
}

#[test]
fn a_process_calls_an_interface_another_node_exports_with_the_capability_it_was_given() {
    use isocore_host::app::Request;
    use isocore_host::channel::{Channels, LocalChannels};
    // The room's node: the chat app exports its interface itself.
    let b = std::sync::Arc::new(node());
    let b_key = SigningKey::from_bytes(&[21; 32]);
    let channels = std::sync::Arc::new(LocalChannels::new());
    b.set_channels(channels.clone()).unwrap();
    let room = channels.create(SigningKey::from_bytes(&[22; 32]));
    let chat = load(&b, "chat");
    chat.set_grants(vec![Request::Channel {
        channel: *room.channel(),
        mode: 2,
        path: "/".into(),
        reason: String::new(),
    }]);
    chat.set_exports(vec!["isocore:chat/room@0.1.0".into()]);
    b.spawn(&chat, room.channel()).unwrap();
    // The caller's node, with a capability the room's node issued to it.
    let a = node();
    let a_key = SigningKey::from_bytes(&[23; 32]);
    let bk = b_key.verifying_key().to_bytes();
    a.set_remote(std::sync::Arc::new(Loopback {
        to: b.clone(),
        to_key: bk,
        from: a_key.clone(),
        gate: std::sync::Mutex::new(CallGate::new()),
    }))
    .unwrap();
    let caller = load(&a, "caller");
    let room_iface = "isocore:chat/room@0.1.0";
    let chain = Grant::to(a_key.verifying_key().to_bytes())
        .component(*chat.digest())
        .interface(interface_id(room_iface))
        .methods(0b1)
        .issue(Root::Node(bk), &b_key)
        .unwrap();
    let post = |caller: &App, text: &[u8]| {
        let pid = a.spawn(caller, &bk).unwrap();
        let inbox = a.inbox(4);
        a.send(pid, 1, text, Some(inbox.pid())).unwrap();
        inbox.recv(WAIT).unwrap().body
    };
    // Without the user's grant to call that interface there, nothing leaves the node.
    caller.set_capabilities(vec![chain.clone()]);
    assert_eq!(post(&caller, b"too early"), vec![0], "denied");
    caller.set_grants(vec![Request::Invoke { node: bk, interface: room_iface.into(), reason: String::new() }]);
    // Granted, but holding no capability from that node: still denied.
    caller.set_capabilities(vec![]);
    assert_eq!(post(&caller, b"no capability"), vec![0], "denied");
    caller.set_capabilities(vec![chain]);
    assert_eq!(u64_of(&post(&caller, b"hello across nodes")), 1);
    assert_eq!(channels.read(&room, 0).unwrap(), b"hello across nodes");
    assert_eq!(channels.len(&room).unwrap(), 1);
}

//! Calls into an exported interface, authorised by Invoke capabilities.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use isocore_cap::{Context, Dimension, Grant, Refused, RevocationSet, Root, UnverifiedChain, interface_id, verify};
use isocore_host::*;
use std::time::Duration;

const NOW: u64 = 1_780_000_000;

fn cap_for(node: &SigningKey, grant: Grant) -> isocore_cap::Capability {
    let chain = grant.issue(Root::Node(node.verifying_key().to_bytes()), node).unwrap();
    let set = RevocationSet::new();
    verify(&UnverifiedChain::decode(&chain).unwrap(), &Context::new(NOW, &(), &set)).unwrap()
}

#[test]
fn a_call_needs_a_capability_covering_component_interface_and_method() {
    let host = node();
    let node_key = SigningKey::from_bytes(&[3; 32]);
    let nk = node_key.verifying_key().to_bytes();
    let echo = load(&host, "echo");
    let pid = host.spawn(&echo, b"").unwrap();
    let chat = interface_id("isocore:chat/room@0.1.0");
    host.export(chat, &echo, pid);
    let caller = [9; 32];
    let t = Duration::from_secs(5);

    let allowed =
        cap_for(&node_key, Grant::to(caller).component(*echo.digest()).interface(chat).methods(0b01).fuel(1000));
    assert_eq!(
        host.invoke(&nk, &allowed, &Call { interface: &chat, method: 0, args: b"hello", fuel: 10 }, t).unwrap(),
        b"olleh"
    );
    assert_eq!(
        host.invoke(&nk, &allowed, &Call { interface: &chat, method: 1, args: b"x", fuel: 10 }, t),
        Err(CallError::Denied(Refused::NotCovered(Dimension::Methods)))
    );
    assert_eq!(
        host.invoke(&nk, &allowed, &Call { interface: &chat, method: 0, args: b"x", fuel: 1001 }, t),
        Err(CallError::Denied(Refused::NotCovered(Dimension::Fuel)))
    );

    // Another interface exported by the same process is not covered.
    let other = interface_id("isocore:counter/api@0.1.0");
    host.export(other, &echo, pid);
    assert_eq!(
        host.invoke(&nk, &allowed, &Call { interface: &other, method: 0, args: b"x", fuel: 1 }, t),
        Err(CallError::Denied(Refused::NotCovered(Dimension::Interface)))
    );
    // A capability for another component (the confused deputy) is not either.
    let elsewhere = cap_for(&node_key, Grant::to(caller).component([1; 32]).interface(chat));
    assert_eq!(
        host.invoke(&nk, &elsewhere, &Call { interface: &chat, method: 0, args: b"x", fuel: 1 }, t),
        Err(CallError::Denied(Refused::NotCovered(Dimension::Component)))
    );
    // One rooted at another node is refused before anything is looked up.
    let foreign = cap_for(&SigningKey::from_bytes(&[4; 32]), Grant::to(caller));
    assert_eq!(
        host.invoke(&nk, &foreign, &Call { interface: &chat, method: 0, args: b"x", fuel: 1 }, t),
        Err(CallError::WrongNode)
    );
    // Nothing exports an unknown interface; an unexported one is gone.
    let unknown = interface_id("isocore:nothing/here@0.1.0");
    assert_eq!(
        host.invoke(&nk, &allowed, &Call { interface: &unknown, method: 0, args: b"x", fuel: 1 }, t),
        Err(CallError::NoSuchInterface)
    );
    host.unexport(&chat);
    assert_eq!(
        host.invoke(&nk, &allowed, &Call { interface: &chat, method: 0, args: b"x", fuel: 1 }, t),
        Err(CallError::NoSuchInterface)
    );
}

#[test]
fn a_call_to_a_dead_or_silent_exporter_fails_cleanly() {
    let host = node();
    let node_key = SigningKey::from_bytes(&[3; 32]);
    let nk = node_key.verifying_key().to_bytes();
    let hostile = load(&host, "hostile");
    let iface = interface_id("isocore:test/silent@0.1.0");
    let cap = cap_for(&node_key, Grant::to([9; 32]));
    // The hostile guest ignores call tags: the caller times out.
    let silent = host.spawn(&hostile, b"").unwrap();
    host.export(iface, &hostile, silent);
    assert_eq!(
        host.invoke(&nk, &cap, &Call { interface: &iface, method: 0, args: b"", fuel: 1 }, Duration::from_millis(100)),
        Err(CallError::Timeout)
    );
    // Once it has exited, the call is refused at once.
    let monitor = host.monitor(silent).unwrap();
    host.kill(silent);
    monitor.wait(WAIT).unwrap();
    assert_eq!(
        host.invoke(&nk, &cap, &Call { interface: &iface, method: 0, args: b"", fuel: 1 }, Duration::from_secs(5)),
        Err(CallError::Unavailable)
    );
}

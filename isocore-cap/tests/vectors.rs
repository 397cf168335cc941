//! Conformance vectors for `spec/cap.md`, generated from the same cases as the named attack
//! tests and checked in under `conformance/vectors/cap/`. Fails when the files drift from
//! the code; regenerate with `ISOCORE_BLESS=1 cargo test -p isocore-cap --test vectors`.
//! `conformance/cap/check_vectors.py` re-checks them from the spec alone.

mod common;

use common::*;
use isocore_cap::*;
use isocore_conformance::check_vector_file;
use serde_json::{Value, json};

const REGENERATE: &str = "cargo test -p isocore-cap --test vectors";

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn variant<T: core::fmt::Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    s.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string()
}

fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Relay => "relay",
        Mode::Read => "read",
        Mode::Write => "write",
        Mode::Admin => "admin",
    }
}

fn dimension(d: Dimension) -> String {
    variant(&d).to_lowercase()
}

fn refusal(e: &Refused) -> Value {
    let mut v = json!({ "error": variant(e) });
    match *e {
        Refused::Decode(d) => v["decode"] = json!(variant(&d)),
        Refused::Widened { link, dimension: d } => {
            v["link"] = json!(link);
            v["dimension"] = json!(dimension(d));
        }
        Refused::BadKey { link } | Refused::BadSignature { link } | Refused::EmptyWindow { link } => {
            v["link"] = json!(link)
        }
        Refused::Revoked { link, watermark } => {
            v["link"] = json!(link);
            v["watermark"] = json!(watermark);
        }
        _ => {}
    }
    v
}

fn capability(cap: &Capability) -> Value {
    let (kind, epoch) = match cap.root() {
        Root::Channel(_) => ("channel", None),
        Root::WriteAuth { epoch, .. } => ("write-auth", Some(*epoch)),
        Root::ReadAuth { epoch, .. } => ("read-auth", Some(*epoch)),
        Root::Node(_) => ("node", None),
    };
    let s = cap.scope();
    let opt = |k: Option<[u8; 32]>| k.map(|k| hex(&k));
    json!({
        "root": { "kind": kind, "subject": hex(cap.root().subject()), "epoch": epoch },
        "mode": mode(s.mode),
        "path": s.path.components().map(hex).collect::<Vec<_>>(),
        "range": [s.range.start, s.range.end],
        "window": [s.window.not_before, s.window.expires],
        "invoke": {
            "component": opt(s.invoke.component),
            "interface": opt(s.invoke.interface),
            "methods": s.invoke.methods,
            "fuel": s.invoke.fuel,
            "rate": s.invoke.rate,
        },
        "depth": s.depth,
        "holder": hex(cap.holder()),
        "links": cap.links().iter().map(|l| hex(&l.0)).collect::<Vec<_>>(),
    })
}

fn notes() -> Value {
    let note = |bug: &str, d: &str| json!({ "bugType": bug, "description": d });
    json!({
        "Forged": note("AUTH_BYPASS", "A link not signed by its issuer's key over its parent id and payload."),
        "Ed25519": note("SIGNATURE_MALLEABILITY", "Edge cases strict Ed25519 verification must refuse: s ≥ L, small-order or non-canonical points."),
        "WeakKey": note("WEAK_PARAMS", "A key or R of small order; accepting it lets one signature verify for many messages."),
        "Splice": note("AUTH_BYPASS", "A link or chain moved into another chain, channel or order."),
        "Widen": note("PRIVILEGE_ESCALATION", "A link wider than its parent in some dimension."),
        "Time": note("EDGE_CASE", "Validity at and around the window's boundaries, with the stated clock skew."),
        "Revocation": note("AUTH_BYPASS", "Which revocations take effect, and which are ignored."),
        "Malleable": note("CAN_OF_WORMS", "A second spelling of the same value, or bytes the encoding does not allow."),
        "Path": note("PRIVILEGE_ESCALATION", "Path components that could alias others."),
        "Length": note("EDGE_CASE", "Chain lengths at and beyond the limit."),
        "Oversized": note("RESOURCE_EXHAUSTION", "Input beyond a size bound, refused before allocating."),
        "Loop": note("EDGE_CASE", "Key cycles and repeated links; depth must still fall."),
        "Ladder": note("EDGE_CASE", "Chains rooted at the epoch keys of the key ladder."),
        "Invoke": note("PRIVILEGE_ESCALATION", "Invoke scopes: component, interface, methods and budgets."),
        "ConfusedDeputy": note("PRIVILEGE_ESCALATION", "Authority for one component presented for another."),
        "CrossDomain": note("SIGNATURE_REUSE", "A signature made for another purpose presented as a link signature."),
        "Prefix": note("EDGE_CASE", "A prefix of a chain is itself a chain, held by that prefix's audience."),
    })
}

fn document(algorithm: &str, schema: &str, mut groups: Vec<Value>, notes: Value) -> Value {
    let id = isocore_conformance::number_tests(&mut groups);
    json!({
        "algorithm": algorithm,
        "schema": schema,
        "specification": "spec/cap.md",
        "generator": "isocore-cap/tests/vectors.rs",
        "numberOfTests": id,
        "header": ["Hex fields are lowercase.", "Times are seconds since the Unix epoch."],
        "notes": notes,
        "testGroups": groups,
    })
}

fn chains() -> Value {
    let w = World::new();
    let revoked = revocations(&w);
    let epochs: Vec<Value> = w
        .epochs
        .iter()
        .map(|((channel, epoch), k)| json!({ "channel": hex(channel), "epoch": epoch, "write": hex(&k.write), "read": hex(&k.read) }))
        .collect();
    let tests: Vec<Value> = cases(&w)
        .iter()
        .map(|c| {
            let verdict = verdict(&w, &revoked.set, &c.chain);
            assert_eq!(verdict.as_ref().map(|_| ()).map_err(|e| *e), c.expect, "{}", c.name);
            let mut t = json!({ "tcId": 0, "comment": format!("{}: {}", c.name, c.comment), "flags": c.flags, "chain": hex(&c.chain) });
            match &verdict {
                Ok(cap) => {
                    t["result"] = json!("valid");
                    t["capability"] = capability(cap);
                }
                Err(e) => {
                    t["result"] = json!("invalid");
                    for (k, v) in refusal(e).as_object().unwrap() {
                        t[k] = v.clone();
                    }
                }
            }
            t
        })
        .collect();
    let group = json!({
        "type": "ChainVerify",
        "now": NOW,
        "skew": SKEW,
        "epochs": epochs,
        "revocations": revoked.records.iter().map(|r| hex(r)).collect::<Vec<_>>(),
        "tests": tests,
    });
    document("isocore/cap/v1 chain verification", "isocore_cap_chain_v1", vec![group], notes())
}

fn ladder() -> Value {
    let tests: Vec<Value> = [([1u8; 32], 0u64), ([1; 32], 1), ([1; 32], 300), ([0x42; 32], 0)]
        .iter()
        .map(|(seed, epoch)| {
            let root = RootSeed::from_bytes(*seed);
            let write = root.write_seed(*epoch);
            let read = write.read_seed();
            let keys = EpochKeys::derive(&write);
            json!({
                "tcId": 0, "comment": format!("epoch {epoch}"), "flags": [], "result": "valid",
                "root_seed": hex(root.as_bytes()), "epoch": epoch, "channel": hex(&root.channel()),
                "write_seed": hex(write.as_bytes()), "read_seed": hex(read.as_bytes()),
                "content_key": hex(read.content_key().as_bytes()),
                "write_auth": hex(&keys.write), "read_auth": hex(&keys.read),
            })
        })
        .collect();
    let components: Vec<Value> = [([3u8; 32], b"component a".as_slice()), ([3; 32], b"component b"), ([9; 32], b"component a")]
        .iter()
        .map(|(node, bytes)| {
            let id = component_id(bytes);
            json!({ "node_seed": hex(node), "component_bytes": hex(bytes), "component": hex(&id), "public": hex(&component_key(node, &id).verifying_key().to_bytes()) })
        })
        .collect();
    let interfaces: Vec<Value> = ["isocore:chat/room@0.1.0", "isocore:counter/api@1.0.0", ""]
        .iter()
        .map(|n| json!({ "name": n, "id": hex(&interface_id(n)) }))
        .collect();
    let mut doc = document(
        "isocore/cap/v1 key ladder",
        "isocore_cap_ladder_v1",
        vec![json!({ "type": "Ladder", "tests": tests })],
        json!({}),
    );
    doc["components"] = json!(components);
    doc["interfaces"] = json!(interfaces);
    doc
}

fn revocation_records() -> Value {
    let w = World::new();
    let good = Revocation::sign(w.owner.channel(), LinkId([7; 32]), 300, &w.alice);
    let mut tests = vec![
        ("valid", "a revocation by alice", &["Revocation"][..], good.clone(), None),
        (
            "valid",
            "a watermark needing ten bytes",
            &["Revocation"],
            Revocation::sign(w.owner.channel(), LinkId([8; 32]), u64::MAX, &w.bob),
            None,
        ),
    ];
    let mut flipped = good.clone();
    flipped[40] ^= 1;
    tests.push((
        "invalid",
        "target changed after signing",
        &["Forged"],
        flipped,
        Some(Refused::BadSignature { link: 0 }),
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    tests.push((
        "invalid",
        "a trailing byte",
        &["Malleable"],
        trailing,
        Some(Refused::Decode(DecodeError::TrailingBytes)),
    ));
    let mut overlong = good[..good.len() - 64].to_vec();
    let at = overlong.len() - 2; // 300 is two varint bytes: ac 02
    overlong.splice(at.., [0xac, 0x82, 0x00]);
    use ed25519_dalek::Signer;
    let sig = w.alice.sign(&[context::REVOKE_SIG, &overlong].concat());
    overlong.extend_from_slice(&sig.to_bytes());
    tests.push((
        "invalid",
        "watermark 300 as ac 82 00, signed",
        &["Malleable"],
        overlong,
        Some(Refused::Decode(DecodeError::NonCanonicalVarint)),
    ));
    let body = &good[..good.len() - 64];
    let link_sig = w.alice.sign(&[context::LINK_SIG, body].concat());
    tests.push((
        "invalid",
        "signed under the link context",
        &["CrossDomain"],
        [body, &link_sig.to_bytes()].concat(),
        Some(Refused::BadSignature { link: 0 }),
    ));
    let mut weak = good.clone();
    weak[65..97].copy_from_slice(&SMALL_ORDER_KEY);
    tests.push(("invalid", "a small-order revoker key", &["WeakKey"], weak, Some(Refused::BadKey { link: 0 })));
    let mut version = good.clone();
    version[0] = 0;
    tests.push((
        "invalid",
        "version 0",
        &["Malleable"],
        version,
        Some(Refused::Decode(DecodeError::UnknownVersion(0))),
    ));
    let tests: Vec<Value> = tests
        .into_iter()
        .map(|(result, comment, flags, record, expect)| {
            let got = RevocationSet::new().insert(&record).map(|_| ()).err();
            assert_eq!(got, expect, "{comment}");
            let mut t =
                json!({ "tcId": 0, "comment": comment, "flags": flags, "record": hex(&record), "result": result });
            if let Some(e) = expect {
                for (k, v) in refusal(&e).as_object().unwrap() {
                    t[k] = v.clone();
                }
            }
            t
        })
        .collect();
    document(
        "isocore/cap/v1 revocation records",
        "isocore_cap_revocation_v1",
        vec![json!({ "type": "RevocationVerify", "tests": tests })],
        notes(),
    )
}

fn sessions() -> Value {
    let w = World::new();
    let head = LinkId(*blake3::hash(b"a head").as_bytes());
    let h1 = [1u8; 32];
    let good = prove_possession(&w.bob, &h1, &head);
    use ed25519_dalek::Signer;
    let link_ctx = w.bob.sign(&[context::LINK_SIG, &h1, &head.0].concat()).to_bytes();
    type SessionCase<'a> = (&'a str, &'a [&'a str], [u8; 32], [u8; 32], [u8; 64], bool);
    let cases: Vec<SessionCase<'_>> = vec![
        ("the holder's proof for this session", &[], h1, pk(&w.bob), good, true),
        ("the same proof replayed into another session", &["Replay"], [2; 32], pk(&w.bob), good, false),
        ("a proof by someone else", &["Forged"], h1, pk(&w.alice), good, false),
        ("signed under the link context", &["CrossDomain"], h1, pk(&w.bob), link_ctx, false),
    ];
    let tests: Vec<Value> = cases
        .into_iter()
        .map(|(comment, flags, hh, holder, proof, ok)| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&holder).unwrap();
            let message = [context::SESSION_SIG, &hh, &head.0].concat();
            assert_eq!(
                key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&proof)).is_ok(),
                ok,
                "{comment}"
            );
            json!({
                "tcId": 0, "comment": comment, "flags": flags, "handshake_hash": hex(&hh), "head": hex(&head.0),
                "holder": hex(&holder), "proof": hex(&proof), "result": if ok { "valid" } else { "invalid" },
            })
        })
        .collect();
    document(
        "isocore/cap/v1 session proofs",
        "isocore_cap_session_v1",
        vec![json!({ "type": "SessionProof", "tests": tests })],
        notes(),
    )
}

#[test]
fn checked_in_vectors_are_up_to_date() {
    for (name, doc) in [
        ("chains.json", chains()),
        ("ladder.json", ladder()),
        ("revocations.json", revocation_records()),
        ("sessions.json", sessions()),
    ] {
        check_vector_file("cap", name, &serde_json::to_string_pretty(&doc).unwrap(), REGENERATE);
    }
}

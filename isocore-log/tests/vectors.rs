//! Conformance vectors for `spec/log.md`, generated here and checked in under
//! `conformance/vectors/log/`. The test fails when the checked-in files drift from what the
//! code produces; regenerate with `ISOCORE_BLESS=1 cargo test -p isocore-log --test vectors`.

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use isocore_log::hash::{leaf_hash, parent_hash};
use isocore_log::{Feed, FeedKey, ForkProof, Hash, MemoryStore, Message, RangeProof, SignedHead, tree};
use serde_json::{Value, json};

/// Entry `i` of every vector feed: `i % 7 * 11` bytes, byte `j` = `(i + 3j) mod 251`.
/// Lengths cross 0, short and multi-block BLAKE3 inputs.
fn painted(i: u64) -> Vec<u8> {
    (0..(i % 7) * 11).map(|j| ((i + 3 * j) % 251) as u8).collect()
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn key_of(seed: u8, channel: Option<[u8; 32]>) -> (SigningKey, FeedKey) {
    let signer = SigningKey::from_bytes(&[seed; 32]);
    let key = match channel {
        Some(c) => FeedKey::new(c, signer.verifying_key()),
        None => FeedKey::standalone(signer.verifying_key()),
    };
    (signer, key)
}

fn feed(seed: u8, length: u64) -> (SigningKey, Feed<MemoryStore>) {
    let (signer, key) = key_of(seed, None);
    let mut feed = Feed::open(key, MemoryStore::new()).unwrap();
    if length > 0 {
        feed.append(&signer, (0..length).map(painted)).unwrap();
    }
    (signer, feed)
}

fn head_json(head: &SignedHead) -> Value {
    json!({"length": head.length, "root": hex(&head.root.0), "signature": hex(&head.signature.0)})
}

fn file(algorithm: &str, notes: Value, mut groups: Vec<Value>) -> Value {
    let count = isocore_conformance::number_tests(&mut groups);
    json!({
        "algorithm": algorithm,
        "specification": "spec/log.md",
        "generator": "isocore-log/tests/vectors.rs",
        "numberOfTests": count,
        "entryRule": "entry i has (i mod 7) * 11 bytes; byte j is (i + 3j) mod 251",
        "notes": notes,
        "testGroups": groups,
    })
}

fn tree_vectors() -> Value {
    let contexts = json!({
        "leaf": {"context": "isocore/log/v1/leaf", "key": hex(&blake3::derive_key("isocore/log/v1/leaf", &[]))},
        "parent": {"context": "isocore/log/v1/parent", "key": hex(&blake3::derive_key("isocore/log/v1/parent", &[]))},
        "root": {"context": "isocore/log/v1/root", "key": hex(&blake3::derive_key("isocore/log/v1/root", &[]))},
    });
    // Lengths on each boundary of the flat tree: powers of two and their neighbours.
    let lengths =
        [0u64, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000];
    let tests: Vec<Value> = lengths
        .iter()
        .map(|&n| {
            let (_, f) = feed(1, n);
            let roots: Vec<Value> = tree::roots(n)
                .map(|i| json!({"index": i, "hash": hex(&f.store_node(i).0)}))
                .collect();
            let root = isocore_log::hash::root_hash(n, &tree::roots(n).map(|i| f.store_node(i)).collect::<Vec<_>>());
            json!({"comment": format!("length {n}"), "length": n, "roots": roots, "rootHash": hex(&root.0), "result": "valid"})
        })
        .collect();
    let a = leaf_hash(&painted(1));
    let b = leaf_hash(&painted(2));
    let primitives = json!({
        "type": "Primitives",
        "tests": [
            {"comment": "leaf of entry 1", "input": hex(&painted(1)), "leafHash": hex(&a.0), "result": "valid"},
            {"comment": "leaf of the empty entry", "input": "", "leafHash": hex(&leaf_hash(&[]).0), "result": "valid"},
            {"comment": "parent of the leaves of entries 1 and 2", "left": hex(&a.0), "right": hex(&b.0), "parentHash": hex(&parent_hash(&a, &b).0), "result": "valid"},
        ]
    });
    file(
        "isocore-log tree",
        json!({}),
        vec![primitives, json!({"type": "TreeRoots", "keys": contexts, "tests": tests})],
    )
}

trait StoreNode {
    fn store_node(&self, index: u64) -> Hash;
}

impl StoreNode for Feed<MemoryStore> {
    fn store_node(&self, index: u64) -> Hash {
        use isocore_log::Storage;
        self.store().node(index).unwrap().unwrap()
    }
}

fn channel_of(t: &Value) -> [u8; 32] {
    hex::decode(t["channel"].as_str().unwrap()).unwrap().try_into().unwrap()
}

fn head_vectors() -> Value {
    let channel = [0xc4; 32];
    let mut tests = Vec::new();
    for (seed, length) in [(2u8, 1u64), (3, 10), (4, 1000)] {
        let (signer, key) = key_of(seed, Some(channel));
        let mut f = Feed::open(key, MemoryStore::new()).unwrap();
        f.append(&signer, (0..length).map(painted)).unwrap();
        let head = *f.head().unwrap();
        let base = json!({
            "channel": hex(&channel), "writer": hex(key.writer().as_bytes()),
            "length": head.length, "root": hex(&head.root.0),
        });
        let mut valid = base.clone();
        valid["comment"] = json!(format!("head of a {length}-entry feed"));
        valid["signable"] = json!(hex(&SignedHead::signable(&key, head.length, &head.root)));
        valid["signature"] = json!(hex(&head.signature.0));
        valid["flags"] = json!([]);
        valid["result"] = json!("valid");
        tests.push(valid.clone());
        let mut flipped = valid.clone();
        let mut sig = head.signature.0;
        sig[0] ^= 1;
        flipped["signature"] = json!(hex(&sig));
        flipped["comment"] = json!("signature with one bit flipped");
        flipped["flags"] = json!(["ForgedSignature"]);
        flipped["result"] = json!("invalid");
        tests.push(flipped);
        let mut other_channel = valid.clone();
        other_channel["channel"] = json!(hex(&[0xc5; 32]));
        other_channel["comment"] = json!("valid signature, replayed in another channel");
        other_channel["flags"] = json!(["CrossChannel"]);
        other_channel["result"] = json!("invalid");
        other_channel.as_object_mut().unwrap().remove("signable");
        tests.push(other_channel);
        let mut longer = valid.clone();
        longer["length"] = json!(head.length + 1);
        longer["comment"] = json!("valid signature, length changed");
        longer["flags"] = json!(["WrongLength"]);
        longer["result"] = json!("invalid");
        longer.as_object_mut().unwrap().remove("signable");
        tests.push(longer);
        // s + L: the same signature with a non-canonical scalar. verify_strict refuses it.
        let mut malleable = valid.clone();
        let mut sig = head.signature.0;
        add_group_order(&mut sig[32..]);
        malleable["signature"] = json!(hex(&sig));
        malleable["comment"] = json!("signature scalar s replaced by s + L (non-canonical)");
        malleable["flags"] = json!(["NonCanonicalSignature"]);
        malleable["result"] = json!("invalid");
        tests.push(malleable);
    }
    // Small-order points: the identity as the writer key (with a signature that satisfies the
    // cofactorless equation for it: R = identity, s = 0), and the identity as R.
    let identity_point = {
        let mut p = [0u8; 32];
        p[0] = 1;
        p
    };
    let mut zero_sig = [0u8; 64];
    zero_sig[..32].copy_from_slice(&identity_point);
    let small_key = json!({
        "channel": hex(&channel), "writer": hex(&identity_point), "length": 1, "root": hex(&[7u8; 32]),
        "signature": hex(&zero_sig), "comment": "writer key is the identity point; R = identity, s = 0",
        "flags": ["SmallOrderKey"], "result": "invalid",
    });
    tests.push(small_key);
    let mut small_r = tests[0].clone();
    let mut sig = hex::decode(small_r["signature"].as_str().unwrap()).unwrap();
    sig[..32].copy_from_slice(&identity_point);
    small_r["signature"] = json!(hex(&sig));
    small_r["comment"] = json!("R replaced by the identity point");
    small_r["flags"] = json!(["SmallOrderR"]);
    small_r["result"] = json!("invalid");
    small_r.as_object_mut().unwrap().remove("signable");
    tests.push(small_r);
    for t in &tests {
        let writer: [u8; 32] = hex::decode(t["writer"].as_str().unwrap()).unwrap().try_into().unwrap();
        let ok = FeedKey::from_bytes(channel_of(t), &writer).is_ok_and(|key| {
            let root = Hash(hex::decode(t["root"].as_str().unwrap()).unwrap().try_into().unwrap());
            let signature =
                isocore_log::Signature(hex::decode(t["signature"].as_str().unwrap()).unwrap().try_into().unwrap());
            SignedHead { length: t["length"].as_u64().unwrap(), root, signature }.verify(&key).is_ok()
        });
        assert_eq!(ok, t["result"] == "valid", "{}", t["comment"]);
    }
    file(
        "isocore-log signed head",
        json!({
            "ForgedSignature": "the signature does not verify",
            "CrossChannel": "a signature made for another channel id",
            "WrongLength": "the signed length differs",
            "NonCanonicalSignature": "s is not reduced below the group order; strict verification refuses it",
            "SmallOrderKey": "the writer key is a point of small order",
            "SmallOrderR": "the signature's R is a point of small order",
        }),
        vec![json!({"type": "SignedHead", "context": hex(isocore_log::HEAD_CONTEXT), "tests": tests})],
    )
}

/// Add the Ed25519 group order L to a 32-byte little-endian scalar.
fn add_group_order(s: &mut [u8]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (x, l) in s.iter_mut().zip(L) {
        let sum = *x as u16 + l as u16 + carry;
        *x = sum as u8;
        carry = sum >> 8;
    }
}

fn proof_json(
    comment: &str,
    flags: &[&str],
    key: &FeedKey,
    proof: &RangeProof,
    entries: &[Vec<u8>],
    valid: bool,
) -> Value {
    // The Rust implementation must agree with the label.
    let refs: Vec<&[u8]> = entries.iter().map(|e| &e[..]).collect();
    assert_eq!(proof.verify(key, &refs).is_ok(), valid, "{comment}");
    json!({
        "comment": comment, "flags": flags,
        "writer": hex(key.writer().as_bytes()), "channel": hex(key.channel()),
        "head": head_json(&proof.head), "start": proof.start,
        "entries": entries.iter().map(|e| hex(e)).collect::<Vec<_>>(),
        "nodes": proof.nodes.iter().map(|n| hex(&n.0)).collect::<Vec<_>>(),
        "result": if valid { "valid" } else { "invalid" },
    })
}

fn proof_vectors() -> Value {
    let (_, f) = feed(5, 100);
    let key = *f.key();
    let entries = |s: u64, e: u64| (s..e).map(painted).collect::<Vec<_>>();
    let mut tests = Vec::new();
    for (s, e) in [(0, 1), (99, 100), (37, 38), (0, 100), (10, 74), (64, 96), (31, 33)] {
        let p = f.prove_range(s, e).unwrap().unwrap();
        tests.push(proof_json(&format!("entries [{s}, {e}) of 100"), &[], &key, &p, &entries(s, e), true));
    }
    let p = f.prove_range(40, 43).unwrap().unwrap();
    let mut tampered = entries(40, 43);
    tampered[1].push(0);
    tests.push(proof_json("entry 41 has an extra byte", &["TamperedEntry"], &key, &p, &tampered, false));
    let mut wrong = p.clone();
    wrong.nodes[1].0[31] ^= 0x80;
    tests.push(proof_json("second sibling hash altered", &["WrongSibling"], &key, &wrong, &entries(40, 43), false));
    let mut short = p.clone();
    short.nodes.pop();
    tests.push(proof_json("last sibling hash missing", &["TruncatedProof"], &key, &short, &entries(40, 43), false));
    let mut long = p.clone();
    long.nodes.push(Hash([0; 32]));
    tests.push(proof_json("one hash too many", &["ExtraNode"], &key, &long, &entries(40, 43), false));
    let mut shifted = p.clone();
    shifted.start = 41;
    tests.push(proof_json(
        "right entries claimed at the wrong index",
        &["WrongIndex"],
        &key,
        &shifted,
        &entries(40, 43),
        false,
    ));
    let mut forged = p.clone();
    forged.head.signature.0[10] ^= 4;
    tests.push(proof_json("head signature altered", &["ForgedSignature"], &key, &forged, &entries(40, 43), false));
    let (_, other) = feed(6, 100);
    tests.push(proof_json(
        "proof from another writer's feed with the same entries",
        &["CrossFeed"],
        other.key(),
        &p,
        &entries(40, 43),
        false,
    ));
    let mut swapped = p.clone();
    swapped.nodes.swap(0, 1);
    tests.push(proof_json("siblings in the wrong order", &["WrongSibling"], &key, &swapped, &entries(40, 43), false));

    // Upgrade proofs: the verifier holds the roots of `base` and learns `target`.
    let mut upgrades = Vec::new();
    let (signer, mut g) = feed(7, 0);
    let mut roots_at = std::collections::BTreeMap::new();
    for n in [1u64, 3, 4, 7, 20, 33, 64] {
        let len = g.len();
        g.append(&signer, (len..n).map(painted)).unwrap();
        roots_at.insert(n, tree::roots(n).map(|i| g.store_node(i)).collect::<Vec<_>>());
    }
    for (base, start, end) in
        [(1u64, 1u64, 1u64), (3, 3, 7), (4, 4, 4), (7, 5, 9), (20, 20, 33), (33, 0, 2), (1, 60, 64)]
    {
        let parts = g.serve(base, start, end, true, usize::MAX).unwrap().unwrap();
        let known: Vec<Value> =
            tree::roots(base).zip(&roots_at[&base]).map(|(i, h)| json!({"index": i, "hash": hex(&h.0)})).collect();
        upgrades.push(json!({
            "comment": format!("from {base} to 64 with entries [{start}, {end})"),
            "flags": [],
            "writer": hex(g.key().writer().as_bytes()), "channel": hex(g.key().channel()),
            "base": base, "baseRoots": known,
            "head": head_json(&parts.head.unwrap()),
            "start": parts.start,
            "entries": parts.entries.iter().map(|e| hex(e)).collect::<Vec<_>>(),
            "nodes": parts.nodes.iter().map(|n| hex(&n.0)).collect::<Vec<_>>(),
            "result": "valid",
        }));
    }
    // Invalid upgrades: a base from another history (a fork), a missing node, a forged head.
    let (fork_signer, mut other) = feed(7, 0);
    other.append(&fork_signer, (0..3).map(|i| painted(i + 900))).unwrap();
    let other_roots: Vec<Value> =
        tree::roots(3).map(|i| json!({"index": i, "hash": hex(&other.store_node(i).0)})).collect();
    let template = upgrades[1].clone();
    let mut inconsistent = template.clone();
    inconsistent["comment"] = json!("the verifier's roots of 3 come from another history of the same writer");
    inconsistent["flags"] = json!(["Inconsistent"]);
    inconsistent["baseRoots"] = json!(other_roots);
    inconsistent["result"] = json!("invalid");
    upgrades.push(inconsistent);
    let mut short = template.clone();
    short["comment"] = json!("one node missing");
    short["flags"] = json!(["TruncatedProof"]);
    short["nodes"].as_array_mut().unwrap().pop();
    short["result"] = json!("invalid");
    upgrades.push(short);
    let mut forged = template.clone();
    let mut sig = hex::decode(template["head"]["signature"].as_str().unwrap()).unwrap();
    sig[1] ^= 8;
    forged["comment"] = json!("head signature altered");
    forged["flags"] = json!(["ForgedSignature"]);
    forged["head"]["signature"] = json!(hex(&sig));
    forged["result"] = json!("invalid");
    upgrades.push(forged);

    // Range proofs against a length the verifier holds (n = m): no head, known roots.
    let held: Vec<Value> = tree::roots(64).map(|i| json!({"index": i, "hash": hex(&g.store_node(i).0)})).collect();
    let mut ranges = Vec::new();
    for (start, end) in [(0u64, 1u64), (63, 64), (10, 20), (0, 64)] {
        let parts = g.serve(64, start, end, false, usize::MAX).unwrap().unwrap();
        assert!(parts.head.is_none());
        ranges.push(json!({
            "comment": format!("entries [{start}, {end}) of the held length 64"),
            "flags": [],
            "heldLength": 64, "heldRoots": held,
            "start": parts.start,
            "entries": parts.entries.iter().map(|e| hex(e)).collect::<Vec<_>>(),
            "nodes": parts.nodes.iter().map(|n| hex(&n.0)).collect::<Vec<_>>(),
            "result": "valid",
        }));
    }
    let mut tampered = ranges[2].clone();
    tampered["entries"][0] = json!("ff");
    tampered["comment"] = json!("entry 10 replaced");
    tampered["flags"] = json!(["TamperedEntry"]);
    tampered["result"] = json!("invalid");
    ranges.push(tampered);
    let mut short = ranges[2].clone();
    short["nodes"].as_array_mut().unwrap().pop();
    short["comment"] = json!("one node missing");
    short["flags"] = json!(["TruncatedProof"]);
    short["result"] = json!("invalid");
    ranges.push(short);

    file(
        "isocore-log proofs",
        json!({
            "TamperedEntry": "an entry differs from the one signed",
            "WrongSibling": "a sibling hash is altered or out of place",
            "TruncatedProof": "fewer hashes than the shape requires",
            "ExtraNode": "more hashes than the shape requires",
            "WrongIndex": "entries claimed at another position",
            "ForgedSignature": "the head signature does not verify",
            "CrossFeed": "checked against another writer's key",
            "Inconsistent": "the new head does not extend the verifier's roots (a fork)",
        }),
        vec![
            json!({"type": "StandaloneProof", "base": 0, "tests": tests}),
            json!({"type": "UpgradeProof", "tests": upgrades}),
            json!({"type": "RangeProof", "tests": ranges}),
        ],
    )
}

fn fork_vectors() -> Value {
    let (signer, key) = key_of(8, None);
    let branch = |offset: u64, n: u64| {
        let mut f = Feed::open(key, MemoryStore::new()).unwrap();
        f.append(&signer, (0..n).map(|i| painted(i + offset))).unwrap();
        f
    };
    let proof_between = |a: &Feed<MemoryStore>, b: &Feed<MemoryStore>| -> ForkProof {
        let (n, m) = (a.len(), b.len());
        let first_roots = if n == m { vec![] } else { tree::roots(n).map(|i| a.store_node(i)).collect() };
        let second_nodes = if n == m {
            vec![]
        } else {
            let mut idx = Vec::new();
            tree::proof_nodes(&tree::ProofShape { base: n, target: m, start: n, end: n }, &mut idx);
            idx.into_iter().map(|i| b.store_node(i)).collect()
        };
        ForkProof {
            channel: *key.channel(),
            writer: key.writer().to_bytes(),
            first: *a.head().unwrap(),
            second: *b.head().unwrap(),
            first_roots,
            second_nodes,
        }
    };
    let to_json = |comment: &str, flags: &[&str], p: &ForkProof| {
        let expected = flags.is_empty();
        assert_eq!(p.verify().is_ok(), expected, "{comment}");
        json!({
            "comment": comment, "flags": flags,
            "encoded": hex(&Message::Fork(p.clone()).to_vec()),
            "result": if expected { "valid" } else { "invalid" },
        })
    };
    let mut tests = Vec::new();
    let (x6, y6) = (branch(0, 6), branch(100, 6));
    tests.push(to_json("same length, different roots", &[], &proof_between(&x6, &y6)));
    let (x5, y9) = (branch(0, 5), branch(100, 9));
    tests.push(to_json("length 5 against a conflicting 9", &[], &proof_between(&x5, &y9)));
    // Fork after a common prefix: entry 3 onwards differ.
    let mut common = Feed::open(key, MemoryStore::new()).unwrap();
    common.append(&signer, (0..3).map(painted)).unwrap();
    let mut late = Feed::open(key, MemoryStore::new()).unwrap();
    late.append(&signer, (0..3).map(painted).chain((3..12).map(|i| painted(i + 500)))).unwrap();
    let mut early = common;
    early.append(&signer, (3..4).map(painted)).unwrap();
    tests.push(to_json("common prefix of 3, then 4 against 12", &[], &proof_between(&early, &late)));
    let x9 = branch(0, 9);
    tests.push(to_json("5 is a prefix of 9: consistent", &["Consistent"], &proof_between(&x5, &x9)));
    let mut bad = proof_between(&x5, &y9);
    bad.second_nodes[0].0[0] ^= 1;
    tests.push(to_json("upgrade node altered", &["BadNodes"], &bad));
    let mut forged = proof_between(&x6, &y6);
    forged.second.signature.0[3] ^= 1;
    tests.push(to_json("second head signature altered", &["BadSignature"], &forged));
    let mut swapped = proof_between(&x5, &y9);
    std::mem::swap(&mut swapped.first, &mut swapped.second);
    tests.push(to_json("longer head first", &["Misordered"], &swapped));
    file(
        "isocore-log fork proofs",
        json!({
            "Consistent": "the two heads agree; not a fork",
            "BadNodes": "nodes do not lead to the signed roots",
            "BadSignature": "a head signature does not verify",
            "Misordered": "first is longer than second",
        }),
        vec![json!({"type": "ForkProof", "encoding": "Message::Fork", "tests": tests})],
    )
}

fn message_vectors() -> Value {
    let (_, f) = feed(9, 20);
    let head = *f.head().unwrap();
    let parts = f.serve(16, 3, 6, true, usize::MAX).unwrap().unwrap();
    let entries: Vec<&[u8]> = parts.entries.iter().map(|e| &e[..]).collect();
    let valid = [
        ("Have", Message::Have { head, contiguous: 20 }),
        ("Request", Message::Request { id: 7, base: 16, start: 3, end: 6, upgrade: true }),
        (
            "Data with upgrade",
            Message::Data {
                id: 7,
                base: 16,
                head: parts.head,
                contiguous: 20,
                start: 3,
                entries,
                nodes: parts.nodes.clone(),
            },
        ),
        (
            "Data, range proof",
            Message::Data {
                id: 300,
                base: 20,
                head: None,
                contiguous: 20,
                start: 0,
                entries: vec![b"x"],
                nodes: vec![Hash([1; 32])],
            },
        ),
        ("NoData", Message::NoData { id: 128 }),
        ("Subscribe", Message::Subscribe),
        ("Unsubscribe", Message::Unsubscribe),
        ("Cancel", Message::Cancel { id: u64::MAX }),
        ("Redirect to two peers", Message::Redirect { peers: vec![&[7; 32], b"relay.example:7700"] }),
        ("Redirect naming nobody", Message::Redirect { peers: vec![] }),
    ];
    let mut tests: Vec<Value> = valid
        .iter()
        .map(|(name, m)| {
            let bytes = m.to_vec();
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(m));
            json!({"comment": name, "flags": [], "encoded": hex(&bytes), "debug": format!("{m:?}"), "result": "valid"})
        })
        .collect();
    let nay: Vec<(&str, &str, Vec<u8>)> = vec![
        ("overlong varint in NoData id", "NonCanonical", vec![3, 0x81, 0x00]),
        ("trailing byte after Subscribe", "TrailingBytes", vec![4, 0]),
        ("unknown message tag", "Malformed", vec![9]),
        ("Redirect with an empty contact", "OutOfBounds", vec![8, 1, 0]),
        ("Redirect with a contact of 65 bytes", "OutOfBounds", Message::Redirect { peers: vec![&[1; 65]] }.to_vec()),
        ("Redirect naming 17 peers", "OutOfBounds", Message::Redirect { peers: vec![b"p"; 17] }.to_vec()),
        ("truncated Request", "Malformed", vec![1, 7, 16]),
        ("Have with contiguous beyond its length", "OutOfBounds", {
            let mut m = Message::Have { head, contiguous: 20 }.to_vec();
            *m.last_mut().unwrap() = 21;
            m
        }),
        (
            "Request with start after end",
            "OutOfBounds",
            Message::Request { id: 1, base: 0, start: 5, end: 4, upgrade: false }.to_vec(),
        ),
        ("bool that is neither 0 nor 1", "Malformed", vec![1, 1, 0, 0, 0, 2]),
        (
            "upgrade head not longer than its base",
            "OutOfBounds",
            Message::Data {
                id: 1,
                base: 20,
                head: Some(head),
                contiguous: 0,
                start: 20,
                entries: vec![],
                nodes: vec![],
            }
            .to_vec(),
        ),
        (
            "entries running past the proven length",
            "OutOfBounds",
            Message::Data { id: 1, base: 2, head: None, contiguous: 0, start: 2, entries: vec![b"a"], nodes: vec![] }
                .to_vec(),
        ),
        ("entry count far beyond the input", "Malformed", vec![2, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (comment, reason, bytes) in nay {
        let got = Message::decode(&bytes).map(|_| ()).map_err(|e| format!("{e:?}"));
        assert_eq!(got, Err(reason.to_string()), "{comment}");
        tests.push(json!({"comment": comment, "flags": [reason], "encoded": hex(&bytes), "result": "invalid"}));
    }
    file(
        "isocore-log messages",
        json!({
            "NonCanonical": "decodes, but re-encodes to other bytes",
            "TrailingBytes": "bytes remain after the message",
            "Malformed": "not a message: truncated, unknown tag or bad value",
            "OutOfBounds": "a well-formed message with a field outside its limits",
        }),
        vec![
            json!({"type": "Message", "maxMessageLen": isocore_log::MAX_MESSAGE_LEN, "maxEntryLen": isocore_log::MAX_ENTRY_LEN, "tests": tests}),
        ],
    )
}

fn check(name: &str, value: Value) {
    let json = serde_json::to_string_pretty(&value).unwrap();
    isocore_conformance::check_vector_file("log", name, &json, "cargo test -p isocore-log --test vectors");
}

#[test]
fn tree_vectors_are_up_to_date() {
    check("tree.json", tree_vectors());
}

#[test]
fn signed_head_vectors_are_up_to_date() {
    check("signed_head.json", head_vectors());
}

#[test]
fn proof_vectors_are_up_to_date() {
    check("proofs.json", proof_vectors());
}

#[test]
fn fork_proof_vectors_are_up_to_date() {
    check("fork_proofs.json", fork_vectors());
}

#[test]
fn message_vectors_are_up_to_date() {
    check("messages.json", message_vectors());
}

#[test]
fn entry_rule_is_stable() {
    assert_eq!(painted(0), Vec::<u8>::new());
    assert_eq!(painted(1)[..3], [1, 4, 7]);
    let _ = Bytes::new();
}

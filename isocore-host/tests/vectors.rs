//! Conformance vectors for the app entries of `spec/host.md` §9: release entries that must
//! decode (with their fields) and ones that must be refused, generated here and checked in
//! under `conformance/vectors/host/`. Regenerate with
//! `ISOCORE_BLESS=1 cargo test -p isocore-host --test vectors`.

use isocore_host::app::*;
use serde_json::{Value, json};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base() -> Release {
    Release {
        notes: "first release".into(),
        component: *blake3::hash(b"component bytes").as_bytes(),
        size: 15,
        ..Release::new(
            (1, 2, 3),
            vec!["isocore:process/log@0.1.0".into(), "isocore:process/process@0.1.0".into()],
            vec![
                Request::Channel { channel: [7; 32], mode: 1, path: "/photos".into(), reason: "show them".into() },
                Request::Invoke { node: [9; 32], interface: "isocore:chat/room@0.1.0".into(), reason: String::new() },
            ],
            AppLimits { memory: 4 << 20, processes: 64 },
        )
    }
}

fn fields(r: &Release) -> Value {
    let requests: Vec<Value> = r
        .requests
        .iter()
        .map(|q| match q {
            Request::Channel { channel, mode, path, reason } => {
                json!({ "kind": "channel", "channel": hex(channel), "mode": mode, "path": path, "reason": reason })
            }
            Request::Invoke { node, interface, reason } => {
                json!({ "kind": "invoke", "node": hex(node), "interface": interface, "reason": reason })
            }
        })
        .collect();
    json!({
        "version": [r.version.0, r.version.1, r.version.2],
        "component": hex(&r.component),
        "size": r.size,
        "world": r.world,
        "imports": r.imports,
        "exports": r.exports,
        "requests": requests,
        "limits": { "memory": r.limits.memory, "processes": r.limits.processes },
        "notes": r.notes,
    })
}

#[test]
fn checked_in_vectors_are_up_to_date() {
    let mut tests = Vec::new();
    let mut valid = |comment: &str, r: Release| {
        let entry = r.encode();
        assert_eq!(Release::decode(&entry).unwrap(), r, "{comment}");
        tests.push(json!({ "tcId": 0, "comment": comment, "flags": [], "entry": hex(&entry), "result": "valid", "release": fields(&r) }));
    };
    valid("a release with two requests", base());
    valid("no requests, no imports", Release { requests: Vec::new(), imports: Vec::new(), ..base() });
    valid("largest component", Release { size: MAX_COMPONENT_LEN, version: (0, 0, 300), ..base() });
    let mut invalid = |comment: &str, flags: &[&str], entry: Vec<u8>| {
        assert!(Release::decode(&entry).is_err(), "{comment}");
        tests.push(json!({ "tcId": 0, "comment": comment, "flags": flags, "entry": hex(&entry), "result": "invalid" }));
    };
    let good = base().encode();
    invalid("a chunk tag", &["Tag"], [&[CHUNK_TAG][..], &good[1..]].concat());
    invalid("empty", &["Truncated"], Vec::new());
    invalid("cut short", &["Truncated"], good[..good.len() - 1].to_vec());
    invalid("a trailing byte", &["Malleable"], [&good[..], &[0]].concat());
    // version.0 = 1 written as 81 00.
    let mut overlong = vec![RELEASE_TAG, 0x81, 0x00];
    overlong.extend_from_slice(&good[2..]);
    invalid("an overlong varint", &["Malleable"], overlong);
    invalid("size zero", &["Bounds"], Release { size: 0, ..base() }.encode());
    invalid("size over the limit", &["Bounds"], Release { size: MAX_COMPONENT_LEN + 1, ..base() }.encode());
    let mut unsorted = base();
    unsorted.imports.reverse();
    invalid("imports out of order", &["Canonical"], unsorted.encode());
    let mut duplicate = base();
    duplicate.imports = vec!["isocore:process/log@0.1.0".into(), "isocore:process/log@0.1.0".into()];
    invalid("a duplicate import", &["Canonical"], duplicate.encode());
    let mut long_path = base();
    let long = format!("/{}", vec!["p".repeat(64); 16].join("/"));
    assert!(isocore_cap::Path::parse(&long).is_some() && long.len() > MAX_TEXT);
    long_path.requests[0] = Request::Channel { channel: [7; 32], mode: 1, path: long, reason: String::new() };
    invalid("a valid path longer than MAX_TEXT", &["Bounds"], long_path.encode());
    let mut bad_path = base();
    bad_path.requests[0] = Request::Channel { channel: [7; 32], mode: 1, path: "photos".into(), reason: String::new() };
    invalid("a request path without a leading slash", &["Bounds"], bad_path.encode());
    let mut bad_mode = base();
    bad_mode.requests[0] = Request::Channel { channel: [7; 32], mode: 4, path: "/".into(), reason: String::new() };
    invalid("mode 4", &["Bounds"], bad_mode.encode());
    let mut bad_kind = good.clone();
    // The first request's kind byte follows the imports and exports lists.
    let r = base();
    let kind_at = 1 + 3 + 32 + 1 + 1 + r.world.len() + 1 + r.imports.iter().map(|i| 1 + i.len()).sum::<usize>() + 1 + 1;
    assert_eq!(bad_kind[kind_at], 0);
    bad_kind[kind_at] = 2;
    invalid("an unknown request kind", &["Malleable"], bad_kind);
    let groups = vec![json!({ "type": "ReleaseDecode", "tests": tests })];
    write_vectors(
        "releases.json",
        "isocore/host/v1 release entries",
        "isocore_host_release_v1",
        groups,
        json!({
                "Tag": { "bugType": "CAN_OF_WORMS", "description": "An entry of another type read as a release." },
                "Truncated": { "bugType": "EDGE_CASE", "description": "Input that ends inside a field." },
                "Malleable": { "bugType": "CAN_OF_WORMS", "description": "A second spelling of the same value, or bytes the encoding does not allow." },
                "Bounds": { "bugType": "RESOURCE_EXHAUSTION", "description": "A field outside its bounds." },
                "Canonical": { "bugType": "CAN_OF_WORMS", "description": "A list out of its required order." },
        }),
    );
}

/// Numbers the tests, wraps the groups in the file's header, and checks the file against it.
fn write_vectors(file: &str, algorithm: &str, schema: &str, mut groups: Vec<Value>, notes: Value) {
    let count = isocore_conformance::number_tests(&mut groups);
    let doc = json!({
        "algorithm": algorithm,
        "schema": schema,
        "specification": "spec/host.md",
        "generator": "isocore-host/tests/vectors.rs",
        "numberOfTests": count,
        "notes": notes,
        "testGroups": groups,
    });
    isocore_conformance::check_vector_file(
        "host",
        file,
        &serde_json::to_string_pretty(&doc).unwrap(),
        "cargo test -p isocore-host --test vectors",
    );
}

/// Vectors for the call payload and method text of `spec/host.md` §9.6.
#[test]
fn call_vectors_are_up_to_date() {
    use isocore_host::remote::{PayloadError, RemoteCall, parse_method};
    let chain: Vec<u8> = (0..40u8).collect();
    let proof = [0xab; 64];
    let mut payloads = Vec::new();
    let mut valid = |comment: &str, c: RemoteCall<'_>| {
        let bytes = c.encode();
        assert_eq!(RemoteCall::decode(&bytes), Ok(c), "{comment}");
        payloads.push(json!({
            "tcId": 0, "comment": comment, "flags": [], "payload": hex(&bytes), "result": "valid",
            "chain": hex(c.chain), "proof": hex(&c.proof), "fuel": c.fuel, "args": hex(c.args),
        }));
    };
    valid("a call", RemoteCall { chain: &chain, proof, fuel: 300, args: b"hello" });
    valid("no arguments, no fuel", RemoteCall { chain: &chain, proof, fuel: 0, args: b"" });
    valid(
        "an empty chain field (refused later, by verification)",
        RemoteCall { chain: b"", proof, fuel: 1, args: b"x" },
    );
    valid("the largest fuel", RemoteCall { chain: &chain, proof, fuel: u64::MAX, args: b"" });
    let long = vec![1u8; isocore_cap::MAX_CHAIN_LEN];
    valid("a chain of MAX_CHAIN_LEN bytes", RemoteCall { chain: &long, proof, fuel: 1, args: b"" });
    let good = RemoteCall { chain: &chain, proof, fuel: 300, args: b"hello" }.encode();
    let mut invalid = |comment: &str, flag: PayloadError, bytes: Vec<u8>| {
        assert_eq!(RemoteCall::decode(&bytes), Err(flag), "{comment}");
        payloads.push(json!({
            "tcId": 0, "comment": comment, "flags": [format!("{flag:?}")], "payload": hex(&bytes), "result": "invalid",
        }));
    };
    invalid("empty", PayloadError::Truncated, Vec::new());
    invalid("the proof cut short", PayloadError::Truncated, good[..1 + 40 + 63].to_vec());
    invalid("no fuel", PayloadError::Truncated, good[..1 + 40 + 64].to_vec());
    invalid("chain length 40 written as a8 00", PayloadError::NonCanonical, [&[0xa8, 0x00][..], &good[1..]].concat());
    invalid(
        "fuel varint over 64 bits",
        PayloadError::NonCanonical,
        [&good[..1 + 40 + 64], &[0xff; 9][..], &[0x02]].concat(),
    );
    invalid("a chain longer than MAX_CHAIN_LEN", PayloadError::ChainTooLong, {
        let mut v = vec![0x81, 0x20];
        v.extend(std::iter::repeat_n(0, 4097 + 64 + 1));
        v
    });
    let mut methods = Vec::new();
    for (text, ok) in [
        ("0", true),
        ("7", true),
        ("255", true),
        ("", false),
        ("00", false),
        ("07", false),
        ("256", false),
        ("-1", false),
        ("+1", false),
        (" 1", false),
        ("1.0", false),
    ] {
        assert_eq!(parse_method(text).is_ok(), ok, "{text:?}");
        methods.push(json!({
            "tcId": 0, "comment": format!("method {text:?}"), "flags": if ok { vec![] } else { vec!["BadMethod"] },
            "method": text, "result": if ok { "valid" } else { "invalid" },
            "index": parse_method(text).ok(),
        }));
    }
    let groups =
        vec![json!({ "type": "CallPayload", "tests": payloads }), json!({ "type": "CallMethod", "tests": methods })];
    write_vectors(
        "calls.json",
        "isocore/host/v1 remote calls",
        "isocore_host_call_v1",
        groups,
        json!({
                "Truncated": { "bugType": "EDGE_CASE", "description": "Input that ends inside a field." },
                "NonCanonical": { "bugType": "CAN_OF_WORMS", "description": "A varint longer than needed, or over 64 bits." },
                "ChainTooLong": { "bugType": "RESOURCE_EXHAUSTION", "description": "A chain length over MAX_CHAIN_LEN, refused before slicing." },
                "BadMethod": { "bugType": "CAN_OF_WORMS", "description": "Method text other than the shortest decimal of 0 to 255." },
        }),
    );
}

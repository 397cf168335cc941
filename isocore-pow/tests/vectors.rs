//! Known-answer vectors for `spec/pow.md`, generated here and checked in under
//! `conformance/vectors/pow/`. Fails when the files drift from the code; regenerate with
//! `ISOCORE_BLESS=1 cargo test -p isocore-pow --test vectors`. `conformance/pow/check_stamps.py`
//! re-verifies them from the spec alone.

use isocore_pow::stamp::{STAMP_LEN, Stamp, StampKey, SubSolver, VER_ALG_V1, block, epoch_seed, sub_hash, target};
use serde_json::{Value, json};
use std::path::PathBuf;

const SECRET: [u8; 32] = [0x5e; 32];
const RECEIVER: [u8; 32] = [0xa1; 32];
const OTHER_RECEIVER: [u8; 32] = [0xa2; 32];
const SENDER: [u8; 32] = [0xb1; 32];
const OTHER_SENDER: [u8; 32] = [0xb2; 32];
const CURRENT: u32 = 7;

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn digest(n: u8) -> [u8; 32] {
    *blake3::hash(format!("isocore pow vector message {n}").as_bytes()).as_bytes()
}

fn key(epoch: u32, sender: &[u8; 32], receiver: &[u8; 32]) -> StampKey {
    StampKey::derive(&epoch_seed(&SECRET, epoch), sender, receiver)
}

fn value(k: &StampKey, d: &[u8; 32], epoch: u32, effort: u32, nonce: u64, i: u8) -> u64 {
    let h = sub_hash(k, &block(d, epoch, effort, nonce, i));
    u64::from_le_bytes(h[..8].try_into().unwrap())
}

/// Solves each sub-solution with the first nonce from `start` whose value lies in `band`.
fn solve_in(k: &StampKey, d: &[u8; 32], epoch: u32, effort: u32, band: impl Fn(u64) -> bool) -> Stamp {
    let nonces = core::array::from_fn(|i| (0u64..).find(|&n| band(value(k, d, epoch, effort, n, i as u8))).unwrap());
    Stamp { epoch, effort, nonces }
}

fn solve(k: &StampKey, d: &[u8; 32], epoch: u32, effort: u32) -> Stamp {
    let nonces = core::array::from_fn(|i| {
        let mut s = SubSolver::new(k, d, epoch, effort, i as u8, 0).unwrap();
        s.step(u64::MAX).unwrap()
    });
    Stamp { epoch, effort, nonces }
}

/// One stamp test. `check_key` is the key the receiver uses (its view of the sender).
fn stamp_test(
    comment: &str,
    flags: &[&str],
    sender: &[u8; 32],
    d: &[u8; 32],
    bytes: &[u8],
    expect_valid: bool,
) -> Value {
    let mut t = json!({
        "comment": comment, "flags": flags, "sender": hex(sender), "digest": hex(d),
        "stamp": hex(bytes),
    });
    let decoded = Stamp::decode(bytes);
    let mut valid = false;
    if let Ok(s) = decoded {
        let fresh = s.epoch == CURRENT || s.epoch == CURRENT - 1;
        let k = key(s.epoch, sender, &RECEIVER);
        let blocks: Vec<[u8; 64]> = (0..4).map(|i| block(d, s.epoch, s.effort, s.nonces[i], i as u8)).collect();
        t["key"] = json!(hex(&k.0));
        t["target"] = json!(target(s.effort).unwrap().to_string());
        t["blocks"] = json!(blocks.iter().map(|b| hex(b)).collect::<Vec<_>>());
        t["subHashes"] = json!(blocks.iter().map(|b| hex(&sub_hash(&k, b))).collect::<Vec<_>>());
        valid = fresh && s.verify(&k, d).is_ok();
    }
    assert_eq!(valid, expect_valid, "{comment}");
    t["result"] = json!(if valid { "valid" } else { "invalid" });
    t
}

fn stamps() -> Value {
    let d = digest(1);
    let k = key(CURRENT, &SENDER, &RECEIVER);
    let t1 = target(1).unwrap();
    let mut tests = Vec::new();
    for effort in [1u32, 2, 3, 64, 1000] {
        let s = solve(&k, &d, CURRENT, effort);
        tests.push(stamp_test(&format!("valid, effort {effort}"), &[], &SENDER, &d, &s.encode(), true));
    }
    let tight = solve_in(&k, &d, CURRENT, 1, |v| v <= t1 && v >= t1 - t1 / 100);
    tests.push(stamp_test(
        "valid; every sub-value lies within 1% below the target",
        &["Boundary"],
        &SENDER,
        &d,
        &tight.encode(),
        true,
    ));
    let mut over = tight;
    over.nonces[3] = (0u64..)
        .find(|&n| {
            let v = value(&k, &d, CURRENT, 1, n, 3);
            v > t1 && v <= t1 + t1 / 100
        })
        .unwrap();
    tests.push(stamp_test(
        "sub-solution 3 lies within 1% above the target",
        &["Boundary", "InsufficientWork"],
        &SENDER,
        &d,
        &over.encode(),
        false,
    ));
    let prev = solve(&key(CURRENT - 1, &SENDER, &RECEIVER), &d, CURRENT - 1, 2);
    tests.push(stamp_test("valid, previous epoch", &["PreviousEpoch"], &SENDER, &d, &prev.encode(), true));
    for (e, why) in [(CURRENT - 2, "two epochs old"), (CURRENT + 1, "a future epoch")] {
        let s = solve(&key(e, &SENDER, &RECEIVER), &d, e, 2);
        tests.push(stamp_test(&format!("correct work for {why}"), &["StaleEpoch"], &SENDER, &d, &s.encode(), false));
    }
    let good = solve(&k, &d, CURRENT, 16);
    tests.push(stamp_test("presented by another sender", &["WrongSender"], &OTHER_SENDER, &d, &good.encode(), false));
    let elsewhere = solve(&key(CURRENT, &SENDER, &OTHER_RECEIVER), &d, CURRENT, 16);
    tests.push(stamp_test("solved for another receiver", &["WrongReceiver"], &SENDER, &d, &elsewhere.encode(), false));
    tests.push(stamp_test("attached to another message", &["WrongDigest"], &SENDER, &digest(2), &good.encode(), false));
    let inflated = Stamp { effort: 32, ..good };
    tests.push(stamp_test(
        "effort field raised after solving",
        &["EffortInflated"],
        &SENDER,
        &d,
        &inflated.encode(),
        false,
    ));
    let enc = good.encode();
    let mut bad_version = enc;
    bad_version[0] = 0x12;
    let mut v0 = enc;
    v0[0] = 0x00;
    let mut zero = enc;
    zero[5..9].copy_from_slice(&[0; 4]);
    let mut long = enc.to_vec();
    long.push(0);
    let cases: [(&str, &str, &[u8]); 6] = [
        ("40 bytes", "Length", &enc[..STAMP_LEN - 1]),
        ("42 bytes: one trailing zero", "Length", &long),
        ("empty", "Length", &[]),
        ("version/algorithm byte 0x12", "UnknownVersion", &bad_version),
        ("version/algorithm byte 0x00", "UnknownVersion", &v0),
        ("effort 0", "ZeroEffort", &zero),
    ];
    for (comment, flag, bytes) in cases {
        tests.push(stamp_test(comment, &[flag], &SENDER, &d, bytes, false));
    }
    assert_eq!(enc[0], VER_ALG_V1);
    file(
        "isocore-pow stamp v1",
        json!({
            "PreviousEpoch": "made for the epoch before the current one, which is still accepted",
            "StaleEpoch": "made for an epoch other than the current or previous one",
            "Boundary": "sub-values chosen close to the target, on either side",
            "InsufficientWork": "a sub-value exceeds the target",
            "WrongSender": "the stamp's key was derived for another sender",
            "WrongReceiver": "the stamp's key was derived for another receiver",
            "WrongDigest": "the stamp was made for another message",
            "EffortInflated": "the committed effort was changed after solving",
            "Length": "not exactly 41 bytes",
            "UnknownVersion": "version/algorithm byte other than 0x11",
            "ZeroEffort": "effort field is 0",
        }),
        vec![json!({
            "type": "StampVerify",
            "receiverSecret": hex(&SECRET),
            "receiver": hex(&RECEIVER),
            "currentEpoch": CURRENT,
            "tests": tests,
        })],
    )
}

fn targets() -> Value {
    let mut tests = Vec::new();
    for effort in [1u32, 2, 3, 5, 64, 1000, 1 << 31, u32::MAX] {
        let t = target(effort).unwrap();
        for (v, ok, what) in [(t, true, "equal to"), (t + 1, false, "one above")] {
            tests.push(json!({
                "comment": format!("effort {effort}: value {what} the target"),
                "flags": if ok { vec![] } else { vec!["AboveTarget"] },
                "effort": effort, "target": t.to_string(), "value": v.to_string(),
                "result": if ok { "valid" } else { "invalid" },
            }));
        }
    }
    tests.push(json!({
        "comment": "effort 0 has no target", "flags": ["ZeroEffort"], "effort": 0,
        "target": null, "value": "0", "result": "invalid",
    }));
    file(
        "isocore-pow target rule",
        json!({
            "AboveTarget": "value = target + 1",
            "ZeroEffort": "no stamp may claim effort 0",
        }),
        vec![
            json!({"type": "TargetRule", "rule": "valid iff effort > 0 and value <= floor((2^64 - 1) / (64 * effort))", "tests": tests}),
        ],
    )
}

fn keys() -> Value {
    let mut seeds = Vec::new();
    for (secret, epoch) in [([0u8; 32], 0u32), (SECRET, 0), (SECRET, 1), (SECRET, CURRENT), (SECRET, u32::MAX)] {
        seeds.push(json!({
            "comment": format!("seed of epoch {epoch}"), "flags": [],
            "secret": hex(&secret), "epoch": epoch, "seed": hex(&epoch_seed(&secret, epoch)),
            "result": "valid",
        }));
    }
    let seed = epoch_seed(&SECRET, CURRENT);
    let mut peers = Vec::new();
    for (s, r, c) in [
        (SENDER, RECEIVER, "sender to receiver"),
        (RECEIVER, SENDER, "the reverse direction differs"),
        (OTHER_SENDER, RECEIVER, "another sender"),
        (SENDER, OTHER_RECEIVER, "another receiver"),
    ] {
        peers.push(json!({
            "comment": c, "flags": [], "seed": hex(&seed), "sender": hex(&s), "receiver": hex(&r),
            "key": hex(&StampKey::derive(&seed, &s, &r).0), "result": "valid",
        }));
    }
    file(
        "isocore-pow key derivation",
        json!({}),
        vec![
            json!({"type": "EpochSeed", "context": "isocore/pow/v1/seed", "tests": seeds}),
            json!({"type": "StampKey", "context": "isocore/pow/v1/peer", "tests": peers}),
        ],
    )
}

fn file(algorithm: &str, notes: Value, mut groups: Vec<Value>) -> Value {
    let id = isocore_conformance::number_tests(&mut groups);
    json!({
        "algorithm": algorithm,
        "schema": "isocore_pow_v1",
        "specification": "spec/pow.md",
        "generator": "isocore-pow/tests/vectors.rs",
        "numberOfTests": id,
        "notes": notes,
        "testGroups": groups,
    })
}

#[test]
fn checked_in_vectors_are_up_to_date() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors/pow");
    let bless = std::env::var_os("ISOCORE_BLESS").is_some();
    let mut stale = Vec::new();
    for (name, v) in [("keys.json", keys()), ("target.json", targets()), ("stamps.json", stamps())] {
        let text = serde_json::to_string_pretty(&v).unwrap() + "\n";
        let path = dir.join(name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "conformance/vectors/pow/{stale:?} differ from the code; if the change is intended, \
         regenerate with: ISOCORE_BLESS=1 cargo test -p isocore-pow --test vectors"
    );
}

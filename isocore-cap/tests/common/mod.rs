//! Fixtures shared by the attack tests and the vector generator: a small world of keys, a raw
//! chain builder that can sign anything (including what `Grant` refuses to make), and the
//! table of chain cases each named test and each vector comes from.
#![allow(dead_code)]

use ed25519_dalek::{Signer, SigningKey};
use isocore_cap::{
    Context, DecodeError, Dimension, EpochKeys, InvokeFields, LinkBody, LinkId, Mode, Refused, Revocation,
    RevocationSet, Root, RootSeed, UnverifiedChain, VERSION, context, verify,
};
use std::collections::BTreeMap;

pub const NOW: u64 = 1_780_000_000;
pub const SKEW: u64 = 60;
pub const DAY: u64 = 86_400;

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}
pub fn pk(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

pub struct World {
    pub owner: RootSeed,
    pub other_owner: RootSeed,
    pub node: SigningKey,
    pub alice: SigningKey,
    pub bob: SigningKey,
    pub carol: SigningKey,
    pub dave: SigningKey,
    pub mallory: SigningKey,
    pub epochs: BTreeMap<([u8; 32], u64), EpochKeys>,
}

impl World {
    pub fn new() -> World {
        let owner = RootSeed::from_bytes([1; 32]);
        let mut epochs = BTreeMap::new();
        for e in 0..2 {
            epochs.insert((owner.channel(), e), EpochKeys::derive(&owner.write_seed(e)));
        }
        World {
            owner,
            other_owner: RootSeed::from_bytes([11; 32]),
            node: key(3),
            alice: key(4),
            bob: key(5),
            carol: key(6),
            dave: key(7),
            mallory: key(8),
            epochs,
        }
    }
    pub fn channel(&self) -> Root {
        Root::Channel(self.owner.channel())
    }
    pub fn root_key(&self) -> SigningKey {
        self.owner.signing_key()
    }
    pub fn ctx<'a>(&'a self, revocations: &'a RevocationSet) -> Context<'a> {
        Context { now: NOW, skew: SKEW, roots: &self.epochs, revocations }
    }
}

pub fn body(audience: &SigningKey, mode: Mode, depth: u8) -> LinkBody {
    LinkBody {
        audience: pk(audience),
        mode,
        depth,
        not_before: None,
        expires: None,
        path: Vec::new(),
        range: None,
        invoke: InvokeFields::default(),
    }
}

pub fn with_path(mut b: LinkBody, components: &[&str]) -> LinkBody {
    b.path = components.iter().map(|c| c.as_bytes().to_vec()).collect();
    b
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn header(root: &Root) -> Vec<u8> {
    let mut out = vec![VERSION];
    match root {
        Root::Channel(k) => {
            out.push(0);
            out.extend_from_slice(k);
        }
        Root::WriteAuth { channel, epoch } => {
            out.push(1);
            out.extend_from_slice(channel);
            put_varint(&mut out, *epoch);
        }
        Root::ReadAuth { channel, epoch } => {
            out.push(2);
            out.extend_from_slice(channel);
            put_varint(&mut out, *epoch);
        }
        Root::Node(k) => {
            out.push(3);
            out.extend_from_slice(k);
        }
    }
    out
}

pub fn link_id(parent: &LinkId, payload: &[u8], sig: &[u8]) -> LinkId {
    let mut h = blake3::Hasher::new_derive_key(context::LINK_ID);
    h.update(&parent.0).update(payload).update(sig);
    LinkId(h.finalize().into())
}

/// How a raw link is signed: honestly, or in one of the ways attacks need.
#[derive(Clone, Copy)]
pub enum Sig<'a> {
    By(&'a SigningKey),
    /// Signed under another context.
    Context(&'a SigningKey, &'a [u8]),
    /// Bytes supplied as they are.
    Raw([u8; 64]),
}

/// Signs each payload over its parent id, exactly as a verifier expects (or as told).
pub fn build(root: &Root, links: &[(Sig<'_>, LinkBody)]) -> Vec<u8> {
    let mut out = header(root);
    let mut parent = root.id();
    out.push(links.len() as u8);
    for (sig, body) in links {
        let mut payload = Vec::new();
        body.encode_into(&mut payload);
        let message = |ctx: &[u8]| [ctx, &parent.0, &payload].concat();
        let signature = match sig {
            Sig::By(k) => k.sign(&message(context::LINK_SIG)).to_bytes(),
            Sig::Context(k, c) => k.sign(&message(c)).to_bytes(),
            Sig::Raw(s) => *s,
        };
        parent = link_id(&parent, &payload, &signature);
        out.extend_from_slice(&payload);
        out.extend_from_slice(&signature);
    }
    out
}

/// The owner's honest four-link chain: admin to alice, write under /a to bob, read under
/// /a/b with a key range to carol, relay with an expiry to dave.
pub fn four_links(w: &World) -> Vec<(SigningKey, LinkBody)> {
    let mut carol = with_path(body(&w.carol, Mode::Read, 4), &["b"]);
    carol.range = Some((10, 5));
    let mut dave = body(&w.dave, Mode::Relay, 3);
    dave.expires = Some(NOW + DAY);
    vec![
        (w.root_key(), body(&w.alice, Mode::Admin, 6)),
        (w.alice.clone(), with_path(body(&w.bob, Mode::Write, 5), &["a"])),
        (w.bob.clone(), carol),
        (w.carol.clone(), dave),
    ]
}

pub fn signed(links: &[(SigningKey, LinkBody)]) -> Vec<(Sig<'_>, LinkBody)> {
    links.iter().map(|(k, b)| (Sig::By(k), b.clone())).collect()
}

/// One chain case: a name (the test's), attack flags, the bytes, the expected verdict, and
/// the revocations in force.
pub struct Case {
    pub name: &'static str,
    pub comment: &'static str,
    pub flags: &'static [&'static str],
    pub chain: Vec<u8>,
    pub expect: Result<(), Refused>,
}

fn case(
    name: &'static str,
    comment: &'static str,
    flags: &'static [&'static str],
    chain: Vec<u8>,
    expect: Result<(), Refused>,
) -> Case {
    Case { name, comment, flags, chain, expect }
}

fn widened(link: u8, dimension: Dimension) -> Result<(), Refused> {
    Err(Refused::Widened { link, dimension })
}
fn decode(e: DecodeError) -> Result<(), Refused> {
    Err(Refused::Decode(e))
}

/// A 32-byte encoding of a small-order point (the point of order 2, y = −1).
pub const SMALL_ORDER_KEY: [u8; 32] = {
    let mut k = [0xff; 32];
    k[0] = 0xec;
    k[31] = 0x7f;
    k
};
/// The identity point (y = 1).
pub const IDENTITY_KEY: [u8; 32] = {
    let mut k = [0; 32];
    k[0] = 1;
    k
};
/// y = p (non-canonical encoding of y = 0).
pub const NON_CANONICAL_KEY: [u8; 32] = {
    let mut k = [0xff; 32];
    k[0] = 0xed;
    k[31] = 0x7f;
    k
};
/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_l(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// The revocations every case is checked against: alice's grant to bob in the "revoked"
/// chain, revoked by alice; a revocation by carol of a link above her (ineffective); one
/// for another channel (ineffective).
pub struct Revoked {
    pub set: RevocationSet,
    pub records: Vec<Vec<u8>>,
}

pub fn revoked_chain(w: &World) -> Vec<(SigningKey, LinkBody)> {
    let mut links = four_links(w);
    links[1].1.not_before = Some(NOW - DAY); // a distinct grant to bob, revoked below
    links
}

pub fn revocations(w: &World) -> Revoked {
    let chain = build(&w.channel(), &signed(&revoked_chain(w)));
    let ids = UnverifiedChain::decode(&chain).unwrap().link_ids();
    let carols = build(&w.channel(), &signed(&four_links(w)[..3]));
    let carol_ids = UnverifiedChain::decode(&carols).unwrap().link_ids();
    let records = vec![
        Revocation::sign(w.owner.channel(), ids[1], 7, &w.alice),
        Revocation::sign(w.owner.channel(), carol_ids[1], 0, &w.carol),
        Revocation::sign(w.other_owner.channel(), carol_ids[0], 0, &w.other_owner.signing_key()),
    ];
    let mut set = RevocationSet::new();
    for r in &records {
        set.insert(r).unwrap();
    }
    Revoked { set, records }
}

pub fn cases(w: &World) -> Vec<Case> {
    let ch = w.channel();
    let four = four_links(w);
    let good = build(&ch, &signed(&four));
    let mut out = Vec::new();
    let mut add = |c: Case| out.push(c);

    // Valid chains.
    let mut one = with_path(body(&w.alice, Mode::Read, 0), &["photos"]);
    one.expires = Some(NOW + 4 * DAY);
    add(case(
        "valid_one_link",
        "read under /photos until Friday",
        &[],
        build(&ch, &signed(&[(w.root_key(), one)])),
        Ok(()),
    ));
    add(case(
        "valid_four_links",
        "admin, write /a, read /a/b with a range, relay with expiry",
        &[],
        good.clone(),
        Ok(()),
    ));
    add(case(
        "valid_prefix",
        "the first two links alone: valid, held by bob",
        &["Prefix"],
        build(&ch, &signed(&four[..2])),
        Ok(()),
    ));
    let write_root = Root::WriteAuth { channel: w.owner.channel(), epoch: 1 };
    let write_key = w.owner.write_seed(1).auth_key();
    add(case(
        "valid_write_auth_root",
        "rooted at epoch 1's write-auth key, without the root key",
        &["Ladder"],
        build(&write_root, &[(Sig::By(&write_key), body(&w.alice, Mode::Write, 3))]),
        Ok(()),
    ));
    let read_root = Root::ReadAuth { channel: w.owner.channel(), epoch: 0 };
    let read_key = w.owner.write_seed(0).read_seed().auth_key();
    add(case(
        "valid_read_auth_root",
        "rooted at epoch 0's read-auth key",
        &["Ladder"],
        build(&read_root, &[(Sig::By(&read_key), body(&w.alice, Mode::Read, 3))]),
        Ok(()),
    ));
    let node = Root::Node(pk(&w.node));
    let mut inv1 = body(&w.alice, Mode::Relay, 5);
    inv1.invoke = InvokeFields {
        component: Some([0xc0; 32]),
        interface: Some([0x1f; 32]),
        methods: Some(0b1011),
        fuel: Some(1_000_000),
        rate: Some(600),
    };
    let mut inv2 = body(&w.bob, Mode::Relay, 0);
    inv2.invoke = InvokeFields { methods: Some(0b0010), fuel: Some(10_000), ..Default::default() };
    let invoke = vec![(w.node.clone(), inv1.clone()), (w.alice.clone(), inv2.clone())];
    add(case(
        "valid_invoke",
        "node grants one interface, alice narrows to one method",
        &[],
        build(&node, &signed(&invoke)),
        Ok(()),
    ));
    let selfdel =
        vec![(w.root_key(), body(&w.alice, Mode::Write, 5)), (w.alice.clone(), body(&w.alice, Mode::Write, 4))];
    add(case(
        "valid_self_delegation",
        "alice to alice, depth still falls",
        &["Loop"],
        build(&ch, &signed(&selfdel)),
        Ok(()),
    ));
    let cycle = vec![
        (w.root_key(), body(&w.alice, Mode::Write, 5)),
        (w.alice.clone(), body(&w.bob, Mode::Write, 4)),
        (w.bob.clone(), body(&w.alice, Mode::Write, 3)),
    ];
    add(case(
        "valid_key_cycle",
        "alice → bob → alice, depth strictly falls",
        &["Loop"],
        build(&ch, &signed(&cycle)),
        Ok(()),
    ));
    let keys = [&w.alice, &w.bob, &w.carol, &w.dave, &w.mallory, &w.alice, &w.bob, &w.carol];
    let eight: Vec<_> = (0..8)
        .map(|i| {
            let issuer = if i == 0 { w.root_key() } else { keys[i - 1].clone() };
            (issuer, body(keys[i], Mode::Read, 7 - i as u8))
        })
        .collect();
    add(case("valid_eight_links", "the longest chain", &["Length"], build(&ch, &signed(&eight)), Ok(())));
    let timed = |nbf: Option<u64>, exp: Option<u64>| {
        let mut b = body(&w.alice, Mode::Read, 0);
        b.not_before = nbf;
        b.expires = exp;
        build(&ch, &signed(&[(w.root_key(), b)]))
    };
    add(case(
        "valid_expiry_inside_skew",
        "expires one second after now − skew",
        &["Time"],
        timed(None, Some(NOW - SKEW + 1)),
        Ok(()),
    ));
    add(case("valid_not_before_inside_skew", "starts at now + skew", &["Time"], timed(Some(NOW + SKEW), None), Ok(())));
    add(case("valid_far_expiry", "expires at 2^64 − 2", &["Time"], timed(None, Some(u64::MAX - 1)), Ok(())));
    add(case(
        "valid_revocation_below_ignored",
        "carol revoked a link above her: no effect",
        &["Revocation"],
        build(&ch, &signed(&four[..3])),
        Ok(()),
    ));
    let mut regrant = revoked_chain(w);
    regrant[1].1.not_before = Some(NOW - DAY + 1);
    add(case(
        "valid_regrant_after_revocation",
        "a new grant to bob after the old one was revoked",
        &["Revocation"],
        build(&ch, &signed(&regrant)),
        Ok(()),
    ));

    // Forged links.
    add(case(
        "forged_random_signature",
        "random bytes as the signature",
        &["Forged"],
        build(&ch, &[(Sig::Raw([0x5a; 64]), body(&w.alice, Mode::Read, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));
    add(case(
        "forged_wrong_key",
        "link 1 signed by mallory",
        &["Forged"],
        build(&ch, &[(Sig::By(&w.mallory), body(&w.alice, Mode::Admin, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));
    let mut payload_changed = good.clone();
    // link 2's audience starts 35 (header) + link 1 (98) + 1 (flags) bytes in.
    payload_changed[35 + 98 + 1] ^= 1;
    add(case(
        "forged_changed_payload",
        "link 2's audience changed after signing",
        &["Forged"],
        payload_changed,
        Err(Refused::BadSignature { link: 2 }),
    ));
    let mut by_audience = signed(&four);
    by_audience[1].0 = Sig::By(&w.bob);
    add(case(
        "forged_signed_by_audience",
        "link 2 signed by its own audience",
        &["Forged"],
        build(&ch, &by_audience),
        Err(Refused::BadSignature { link: 2 }),
    ));
    let wrong_epoch = Root::WriteAuth { channel: w.owner.channel(), epoch: 0 };
    add(case(
        "forged_ladder_wrong_epoch",
        "epoch 0 root signed with epoch 1's write-auth key",
        &["Forged", "Ladder"],
        build(&wrong_epoch, &[(Sig::By(&write_key), body(&w.alice, Mode::Write, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));
    let unknown_epoch = Root::WriteAuth { channel: w.owner.channel(), epoch: 9 };
    add(case(
        "unknown_epoch",
        "an epoch the channel never published",
        &["Ladder"],
        build(&unknown_epoch, &[(Sig::By(&write_key), body(&w.alice, Mode::Write, 0))]),
        Err(Refused::UnknownRoot),
    ));
    add(case(
        "forged_read_key_as_write",
        "a write-auth root signed with the read-auth key",
        &["Forged", "Ladder"],
        build(&write_root, &[(Sig::By(&w.owner.write_seed(1).read_seed().auth_key()), body(&w.alice, Mode::Read, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));

    // Ed25519 edge cases.
    let honest = build(&ch, &signed(&four[..1]));
    let mut s_plus_l = honest.clone();
    let s_at = honest.len() - 32;
    let bumped = add_l(&honest[s_at..]);
    s_plus_l[s_at..].copy_from_slice(&bumped);
    add(case(
        "ed25519_s_plus_l",
        "signature s replaced by s + L",
        &["Ed25519", "Malleable"],
        s_plus_l,
        Err(Refused::BadSignature { link: 1 }),
    ));
    let mut weak = body(&w.alice, Mode::Write, 3);
    weak.audience = SMALL_ORDER_KEY;
    let weak_next = [(Sig::By(&w.root_key()), weak), (Sig::Raw([0; 64]), body(&w.bob, Mode::Read, 0))];
    add(case(
        "ed25519_small_order_issuer",
        "link 2's issuer is a point of order 2",
        &["Ed25519", "WeakKey"],
        build(&ch, &weak_next),
        Err(Refused::BadKey { link: 2 }),
    ));
    let mut ident = body(&w.alice, Mode::Write, 3);
    ident.audience = IDENTITY_KEY;
    add(case(
        "ed25519_identity_issuer",
        "link 2's issuer is the identity point",
        &["Ed25519", "WeakKey"],
        build(&ch, &[(Sig::By(&w.root_key()), ident), (Sig::Raw([0; 64]), body(&w.bob, Mode::Read, 0))]),
        Err(Refused::BadKey { link: 2 }),
    ));
    let mut noncanon = body(&w.alice, Mode::Write, 3);
    noncanon.audience = NON_CANONICAL_KEY;
    add(case(
        "ed25519_non_canonical_issuer",
        "link 2's issuer key encodes y = p",
        &["Ed25519"],
        build(&ch, &[(Sig::By(&w.root_key()), noncanon), (Sig::Raw([0; 64]), body(&w.bob, Mode::Read, 0))]),
        Err(Refused::BadKey { link: 2 }),
    ));
    // y = p + 3 reduces to y = 3, a point of large order: the key is accepted (as
    // `spec/cap.md` §7 says, y is taken mod p) and it is the signature that fails.
    let mut reduced = body(&w.alice, Mode::Write, 3);
    reduced.audience = {
        let mut k = [0xff; 32];
        k[0] = 0xf0;
        k[31] = 0x7f;
        k
    };
    add(case(
        "ed25519_issuer_y_above_p",
        "link 2's issuer key encodes y = p + 3",
        &["Ed25519"],
        build(&ch, &[(Sig::By(&w.root_key()), reduced), (Sig::Raw([0; 64]), body(&w.bob, Mode::Read, 0))]),
        Err(Refused::BadSignature { link: 2 }),
    ));
    let mut small_r = [0u8; 64];
    small_r[..32].copy_from_slice(&IDENTITY_KEY);
    add(case(
        "ed25519_small_order_r",
        "R is the identity point, s = 0",
        &["Ed25519", "WeakKey"],
        build(&ch, &[(Sig::Raw(small_r), body(&w.alice, Mode::Read, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));
    add(case(
        "ed25519_small_order_channel",
        "a channel id that is a small-order point",
        &["Ed25519", "WeakKey"],
        build(&Root::Channel(SMALL_ORDER_KEY), &[(Sig::Raw(small_r), body(&w.alice, Mode::Read, 0))]),
        Err(Refused::BadKey { link: 1 }),
    ));

    // Splicing and transplanting.
    let other = build(
        &Root::Channel(w.other_owner.channel()),
        &signed(&[(w.other_owner.signing_key(), body(&w.alice, Mode::Admin, 6)), four[1].clone()]),
    );
    let mut spliced = good[..35 + 98].to_vec(); // the header, the count and our link 1
    spliced[34] = 2;
    let other_link2 = &other[35 + 98..];
    spliced.extend_from_slice(other_link2);
    add(case(
        "splice_link_from_other_chain",
        "alice's link to bob, signed in another channel's chain",
        &["Splice"],
        spliced,
        Err(Refused::BadSignature { link: 2 }),
    ));
    let mut moved = good.clone();
    moved[2..34].copy_from_slice(&w.other_owner.channel());
    add(case(
        "splice_other_channel",
        "the whole chain claimed for another channel",
        &["Splice"],
        moved,
        Err(Refused::BadSignature { link: 1 }),
    ));
    let mut reordered = signed(&four);
    reordered.swap(1, 2);
    add(case(
        "splice_reordered",
        "links 2 and 3 swapped",
        &["Splice"],
        build(&ch, &reordered),
        widened(3, Dimension::Mode),
    ));
    let mut duplicated = signed(&four[..2]);
    duplicated.push(duplicated[1].clone());
    add(case(
        "splice_duplicated",
        "link 2 twice",
        &["Splice", "Loop"],
        build(&ch, &duplicated),
        widened(3, Dimension::Depth),
    ));
    let dropped = [signed(&four[..1]), signed(&four[2..3])].concat();
    add(case(
        "splice_dropped_middle",
        "link 2 dropped; link 3 was signed by bob",
        &["Splice"],
        build(&ch, &dropped),
        Err(Refused::BadSignature { link: 2 }),
    ));

    // Widened scope.
    let chain2 = |second: LinkBody| build(&ch, &signed(&[four[0].clone(), (w.alice.clone(), second)]));
    let after_bob = |third: LinkBody| build(&ch, &signed(&[four[0].clone(), four[1].clone(), (w.bob.clone(), third)]));
    add(case(
        "widen_write_to_admin",
        "bob (write) grants admin",
        &["Widen"],
        after_bob(body(&w.carol, Mode::Admin, 4)),
        widened(3, Dimension::Mode),
    ));
    add(case(
        "widen_ladder_write_to_admin",
        "a write-auth root grants admin",
        &["Widen", "Ladder"],
        build(&write_root, &[(Sig::By(&write_key), body(&w.alice, Mode::Admin, 3))]),
        widened(1, Dimension::Mode),
    ));
    add(case(
        "widen_read_to_write",
        "a read-auth root grants write",
        &["Widen", "Ladder"],
        build(&read_root, &[(Sig::By(&read_key), body(&w.alice, Mode::Write, 3))]),
        widened(1, Dimension::Mode),
    ));
    let relay_then_read = build(
        &ch,
        &signed(&[(w.root_key(), body(&w.alice, Mode::Relay, 5)), (w.alice.clone(), body(&w.bob, Mode::Read, 4))]),
    );
    add(case(
        "widen_relay_to_read",
        "a relay holder grants read",
        &["Widen"],
        relay_then_read,
        widened(2, Dimension::Mode),
    ));
    add(case(
        "widen_depth_equal",
        "depth not below the parent's",
        &["Widen", "Loop"],
        chain2(body(&w.bob, Mode::Write, 6)),
        widened(2, Dimension::Depth),
    ));
    add(case(
        "widen_depth_increase",
        "depth above the parent's",
        &["Widen"],
        chain2(body(&w.bob, Mode::Write, 7)),
        widened(2, Dimension::Depth),
    ));
    add(case(
        "widen_root_depth",
        "a first link allowing 8 more links",
        &["Widen", "Length"],
        build(&ch, &signed(&[(w.root_key(), body(&w.alice, Mode::Write, 8))])),
        widened(1, Dimension::Depth),
    ));
    let mut inverted = with_path(body(&w.carol, Mode::Read, 4), &["b"]);
    inverted.range = Some((u64::MAX / 2, u64::MAX / 2 + 2));
    add(case(
        "widen_inverted_range",
        "skip and trim cross",
        &["Widen"],
        after_bob(inverted),
        widened(3, Dimension::Range),
    ));
    let mut overflow = body(&w.dave, Mode::Read, 3);
    overflow.range = Some((u64::MAX, 0));
    let past_end =
        build(&ch, &signed(&[four[0].clone(), four[1].clone(), four[2].clone(), (w.carol.clone(), overflow)]));
    add(case(
        "widen_range_overflow",
        "a skip that overflows past the parent's end",
        &["Widen"],
        past_end,
        widened(4, Dimension::Range),
    ));
    let mut later = body(&w.bob, Mode::Write, 5);
    later.expires = Some(NOW + DAY);
    let mut later_still = body(&w.carol, Mode::Write, 4);
    later_still.expires = Some(NOW + 2 * DAY);
    add(case(
        "widen_expiry",
        "link 3 expires after link 2",
        &["Widen", "Time"],
        build(&ch, &signed(&[four[0].clone(), (w.alice.clone(), later.clone()), (w.bob.clone(), later_still)])),
        widened(3, Dimension::Window),
    ));
    let mut nbf2 = body(&w.bob, Mode::Write, 5);
    nbf2.not_before = Some(NOW - DAY);
    let mut nbf3 = body(&w.carol, Mode::Write, 4);
    nbf3.not_before = Some(NOW - 2 * DAY);
    add(case(
        "widen_not_before",
        "link 3 starts before link 2",
        &["Widen", "Time"],
        build(&ch, &signed(&[four[0].clone(), (w.alice.clone(), nbf2), (w.bob.clone(), nbf3)])),
        widened(3, Dimension::Window),
    ));
    let invoke_next = |f: InvokeFields| {
        let mut b = body(&w.bob, Mode::Relay, 0);
        b.invoke = f;
        build(&node, &signed(&[(w.node.clone(), inv1.clone()), (w.alice.clone(), b)]))
    };
    add(case(
        "widen_methods",
        "a method the parent did not allow",
        &["Widen", "Invoke"],
        invoke_next(InvokeFields { methods: Some(0b0100), ..Default::default() }),
        widened(2, Dimension::Methods),
    ));
    add(case(
        "widen_fuel",
        "more fuel per call",
        &["Widen", "Invoke"],
        invoke_next(InvokeFields { fuel: Some(1_000_001), ..Default::default() }),
        widened(2, Dimension::Fuel),
    ));
    add(case(
        "widen_rate",
        "more calls per minute",
        &["Widen", "Invoke"],
        invoke_next(InvokeFields { rate: Some(601), ..Default::default() }),
        widened(2, Dimension::Rate),
    ));
    add(case(
        "widen_other_component",
        "a fixed component set again",
        &["Widen", "Invoke", "ConfusedDeputy"],
        invoke_next(InvokeFields { component: Some([0xc1; 32]), ..Default::default() }),
        widened(2, Dimension::Component),
    ));
    add(case(
        "widen_other_interface",
        "a fixed interface set again",
        &["Widen", "Invoke"],
        invoke_next(InvokeFields { interface: Some([0x1e; 32]), ..Default::default() }),
        widened(2, Dimension::Interface),
    ));

    // Time.
    add(case(
        "time_expired_at_boundary",
        "expires exactly at now − skew",
        &["Time"],
        timed(None, Some(NOW - SKEW)),
        Err(Refused::Expired),
    ));
    add(case(
        "time_not_yet_valid",
        "starts one second after now + skew",
        &["Time"],
        timed(Some(NOW + SKEW + 1), None),
        Err(Refused::NotYetValid),
    ));
    let mut exp3 = four.clone();
    exp3[2].1.expires = Some(NOW - DAY);
    exp3[3].1.expires = None;
    add(case(
        "time_expired_middle_link",
        "link 3 expired yesterday; link 4 inherits it",
        &["Time"],
        build(&ch, &signed(&exp3)),
        Err(Refused::Expired),
    ));
    add(case(
        "time_empty_window",
        "not_before equals expires",
        &["Time"],
        timed(Some(NOW), Some(NOW)),
        Err(Refused::EmptyWindow { link: 1 }),
    ));
    add(case(
        "time_u64_max_not_before",
        "not_before at 2^64 − 1",
        &["Time"],
        timed(Some(u64::MAX), None),
        Err(Refused::EmptyWindow { link: 1 }),
    ));

    // Revocation.
    add(case(
        "revoked_middle_link",
        "alice revoked her grant to bob (link 2)",
        &["Revocation"],
        build(&ch, &signed(&revoked_chain(w))),
        Err(Refused::Revoked { link: 2, watermark: 7 }),
    ));

    // Malleable and degenerate encodings.
    let mut overlong = body(&w.alice, Mode::Read, 0);
    overlong.expires = Some(5);
    let mut over = build(&ch, &signed(&[(w.root_key(), overlong)]));
    let at = 35 + 1 + 32 + 1; // after the header, count, flags, audience and depth
    assert_eq!(over[at], 5);
    over[at] = 0x85;
    over.insert(at + 1, 0x00);
    add(case(
        "encoding_overlong_varint",
        "expires 5 written as 85 00",
        &["Malleable"],
        over,
        decode(DecodeError::NonCanonicalVarint),
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    add(case(
        "encoding_trailing_byte",
        "one byte after the last link",
        &["Malleable"],
        trailing,
        decode(DecodeError::TrailingBytes),
    ));
    let mut truncated = good.clone();
    truncated.pop();
    add(case(
        "encoding_truncated",
        "the last signature one byte short",
        &["Malleable"],
        truncated,
        decode(DecodeError::Truncated),
    ));
    let mut version = good.clone();
    version[0] = 2;
    add(case("encoding_unknown_version", "version 2", &["Malleable"], version, decode(DecodeError::UnknownVersion(2))));
    let mut kind = good.clone();
    kind[1] = 4;
    add(case("encoding_unknown_root", "root kind 4", &["Malleable"], kind, decode(DecodeError::UnknownRoot(4))));
    let mut reserved = good.clone();
    reserved[35] |= 0x80;
    add(case(
        "encoding_reserved_flag",
        "flag bit 7 of link 1 set",
        &["Malleable"],
        reserved,
        decode(DecodeError::BadFlags { link: 1 }),
    ));
    let mut invoke_on_channel = body(&w.alice, Mode::Read, 0);
    invoke_on_channel.invoke.methods = Some(1);
    add(case(
        "encoding_invoke_on_channel",
        "an Invoke field in a channel chain",
        &["Malleable", "Widen"],
        build(&ch, &signed(&[(w.root_key(), invoke_on_channel)])),
        decode(DecodeError::BadFlags { link: 1 }),
    ));
    add(case(
        "encoding_mode_on_node",
        "a mode in a node chain",
        &["Malleable", "Widen"],
        build(&node, &signed(&[(w.node.clone(), body(&w.alice, Mode::Write, 0))])),
        decode(DecodeError::BadFlags { link: 1 }),
    ));
    add(case(
        "encoding_path_on_node",
        "a path in a node chain",
        &["Malleable"],
        build(&node, &signed(&[(w.node.clone(), with_path(body(&w.alice, Mode::Relay, 0), &["x"]))])),
        decode(DecodeError::BadFlags { link: 1 }),
    ));
    let mut zero_range = body(&w.alice, Mode::Read, 0);
    zero_range.range = Some((0, 0));
    add(case(
        "encoding_empty_range_delta",
        "a range field that trims nothing",
        &["Malleable"],
        build(&ch, &signed(&[(w.root_key(), zero_range)])),
        decode(DecodeError::BadValue),
    ));
    for (name, comment, comp) in [
        ("path_dot_dot", "a `..` component", ".."),
        ("path_dot", "a `.` component", "."),
        ("path_empty_component", "an empty component", ""),
        ("path_slash_inside", "a component containing `/`", "a/b"),
        ("path_nul_inside", "a component containing NUL", "a\0b"),
    ] {
        add(case(
            name,
            comment,
            &["Path", "Malleable"],
            build(&ch, &signed(&[(w.root_key(), with_path(body(&w.alice, Mode::Read, 0), &["ok", comp]))])),
            decode(DecodeError::BadPath { link: 1 }),
        ));
    }
    let long = "x".repeat(65);
    add(case(
        "path_component_too_long",
        "a 65-byte component",
        &["Path", "Oversized"],
        build(&ch, &signed(&[(w.root_key(), with_path(body(&w.alice, Mode::Read, 0), &[&long]))])),
        decode(DecodeError::BadPath { link: 1 }),
    ));
    let many: Vec<&str> = vec!["p"; 9];
    let deep = build(
        &ch,
        &signed(&[
            (w.root_key(), with_path(body(&w.alice, Mode::Write, 5), &many)),
            (w.alice.clone(), with_path(body(&w.bob, Mode::Read, 4), &many[..8])),
        ]),
    );
    add(case(
        "path_too_many_components",
        "17 components over two links",
        &["Path", "Oversized"],
        deep,
        decode(DecodeError::BadPath { link: 2 }),
    ));
    let nine: Vec<_> = (0..9)
        .map(|i| {
            (if i == 0 { w.root_key() } else { w.alice.clone() }, body(&w.alice, Mode::Read, 7u8.saturating_sub(i)))
        })
        .collect();
    add(case(
        "length_nine_links",
        "one link over the limit",
        &["Length", "Oversized"],
        build(&ch, &signed(&nine)),
        decode(DecodeError::LinkCount(9)),
    ));
    let mut zero = header(&ch);
    zero.push(0);
    add(case("length_zero_links", "no links", &["Length"], zero, decode(DecodeError::LinkCount(0))));
    let mut huge = good.clone();
    huge.resize(4097, 0);
    add(case(
        "length_over_4096",
        "4097 bytes",
        &["Oversized"],
        huge,
        decode(DecodeError::TooLong { len: 4097, max: 4096 }),
    ));
    let mut wide_varint = body(&w.alice, Mode::Read, 0);
    wide_varint.expires = Some(1);
    let mut wv = build(&ch, &signed(&[(w.root_key(), wide_varint)]));
    wv.splice(at..at + 1, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
    add(case(
        "encoding_varint_overflow",
        "a varint beyond 64 bits",
        &["Malleable", "Oversized"],
        wv,
        decode(DecodeError::VarintOverflow),
    ));

    // Domain separation.
    add(case(
        "domain_revoke_signature_as_link",
        "link 1 signed under the revocation context",
        &["CrossDomain"],
        build(&ch, &[(Sig::Context(&w.root_key(), context::REVOKE_SIG), body(&w.alice, Mode::Read, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));
    add(case(
        "domain_session_signature_as_link",
        "link 1 signed under the session-proof context",
        &["CrossDomain"],
        build(&ch, &[(Sig::Context(&w.root_key(), context::SESSION_SIG), body(&w.alice, Mode::Read, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));
    add(case(
        "domain_unseparated_signature",
        "link 1 signed with no context at all",
        &["CrossDomain"],
        build(&ch, &[(Sig::Context(&w.root_key(), b""), body(&w.alice, Mode::Read, 0))]),
        Err(Refused::BadSignature { link: 1 }),
    ));
    out
}

/// The verdict on a case's bytes in the world with its revocations.
pub fn verdict(w: &World, revocations: &RevocationSet, chain: &[u8]) -> Result<isocore_cap::Capability, Refused> {
    verify(&UnverifiedChain::decode(chain)?, &w.ctx(revocations))
}

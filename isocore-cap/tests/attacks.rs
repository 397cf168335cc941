//! Every attack class of the capability study as a named test. Chain cases live in
//! `common::cases` (they are also the conformance vectors); the stateful attacks (caches,
//! sessions, invocations, budgets) are written out here.

mod common;

use common::*;
use isocore_cap::*;

fn run(name: &str) {
    let w = World::new();
    let revoked = revocations(&w);
    let case = cases(&w).into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}"));
    let got = verdict(&w, &revoked.set, &case.chain).map(|_| ());
    assert_eq!(got, case.expect, "{name}: {}", case.comment);
}

macro_rules! chain_cases {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { run(stringify!($name)) } )*
        const NAMED: &[&str] = &[$(stringify!($name)),*];
    };
}

chain_cases!(
    valid_one_link,
    valid_four_links,
    valid_prefix,
    valid_write_auth_root,
    valid_read_auth_root,
    valid_invoke,
    valid_self_delegation,
    valid_key_cycle,
    valid_eight_links,
    valid_expiry_inside_skew,
    valid_not_before_inside_skew,
    valid_far_expiry,
    valid_revocation_below_ignored,
    valid_regrant_after_revocation,
    forged_random_signature,
    forged_wrong_key,
    forged_changed_payload,
    forged_signed_by_audience,
    forged_ladder_wrong_epoch,
    unknown_epoch,
    forged_read_key_as_write,
    ed25519_s_plus_l,
    ed25519_small_order_issuer,
    ed25519_identity_issuer,
    ed25519_non_canonical_issuer,
    ed25519_small_order_r,
    ed25519_small_order_channel,
    ed25519_issuer_y_above_p,
    splice_link_from_other_chain,
    splice_other_channel,
    splice_reordered,
    splice_duplicated,
    splice_dropped_middle,
    widen_write_to_admin,
    widen_ladder_write_to_admin,
    widen_read_to_write,
    widen_relay_to_read,
    widen_depth_equal,
    widen_depth_increase,
    widen_root_depth,
    widen_inverted_range,
    widen_range_overflow,
    widen_expiry,
    widen_not_before,
    widen_methods,
    widen_fuel,
    widen_rate,
    widen_other_component,
    widen_other_interface,
    time_expired_at_boundary,
    time_not_yet_valid,
    time_expired_middle_link,
    time_empty_window,
    time_u64_max_not_before,
    revoked_middle_link,
    encoding_overlong_varint,
    encoding_trailing_byte,
    encoding_truncated,
    encoding_unknown_version,
    encoding_unknown_root,
    encoding_reserved_flag,
    encoding_invoke_on_channel,
    encoding_mode_on_node,
    encoding_path_on_node,
    encoding_empty_range_delta,
    path_dot_dot,
    path_dot,
    path_empty_component,
    path_slash_inside,
    path_nul_inside,
    path_component_too_long,
    path_too_many_components,
    length_nine_links,
    length_zero_links,
    length_over_4096,
    encoding_varint_overflow,
    domain_revoke_signature_as_link,
    domain_session_signature_as_link,
    domain_unseparated_signature,
);

#[test]
fn every_case_has_a_named_test() {
    let w = World::new();
    let names: Vec<_> = cases(&w).iter().map(|c| c.name).collect();
    for n in &names {
        assert!(NAMED.contains(n), "case {n} has no named test");
    }
    assert_eq!(names.len(), NAMED.len());
}

#[test]
fn valid_cases_hold_what_they_were_given() {
    let w = World::new();
    let revoked = revocations(&w);
    let chain = build(&w.channel(), &signed(&four_links(&w)));
    let cap = verdict(&w, &revoked.set, &chain).unwrap();
    assert_eq!(cap.holder(), &pk(&w.dave));
    let s = cap.scope();
    assert_eq!(s.mode, Mode::Relay);
    assert_eq!(s.path, Path::parse("/a/b").unwrap());
    assert_eq!(s.range, KeyRange { start: 10, end: u64::MAX - 5 });
    assert_eq!(s.window, Window { not_before: 0, expires: NOW + DAY });
    assert_eq!(s.depth, 3);
    assert_eq!(cap.links().len(), 4);
    assert_eq!(cap.links(), UnverifiedChain::decode(&chain).unwrap().link_ids().as_slice());
}

#[test]
fn path_prefix_is_by_component() {
    let w = World::new();
    let chain =
        Grant::to(pk(&w.alice)).path(Path::parse("/photos").unwrap()).issue(w.channel(), &w.root_key()).unwrap();
    let set = RevocationSet::new();
    let cap = verdict(&w, &set, &chain).unwrap();
    for (path, ok) in
        [("/photos", true), ("/photos/2024/a.jpg", true), ("/photos2", false), ("/photo", false), ("/", false)]
    {
        let access = Access::Channel { mode: Mode::Admin, path: &Path::parse(path).unwrap(), key: 0 };
        assert_eq!(cap.permits(&access).is_ok(), ok, "{path}");
    }
    assert!(Path::parse("photos").is_none() && Path::parse("/a//b").is_none() && Path::parse("/a/..").is_none());
}

#[test]
fn delegate_refuses_to_widen_in_every_dimension() {
    let w = World::new();
    let set = RevocationSet::new();
    let mut parent = Grant::to(pk(&w.alice))
        .mode(Mode::Write)
        .path(Path::parse("/a").unwrap())
        .range(KeyRange { start: 10, end: 100 })
        .not_before(NOW - DAY)
        .expires(NOW + DAY)
        .depth(3)
        .issue(w.channel(), &w.root_key())
        .unwrap();
    let cap = verdict(&w, &set, &parent).unwrap();
    let bob = pk(&w.bob);
    let refused = |g: Grant| g.delegate(&parent, &cap, &w.alice).unwrap_err();
    assert_eq!(refused(Grant::to(bob).mode(Mode::Admin)), DelegateError::Widens(Dimension::Mode));
    assert_eq!(refused(Grant::to(bob).path(Path::parse("/b").unwrap())), DelegateError::Widens(Dimension::Path));
    assert_eq!(refused(Grant::to(bob).path(Path::root())), DelegateError::Widens(Dimension::Path));
    assert_eq!(refused(Grant::to(bob).range(KeyRange { start: 9, end: 50 })), DelegateError::Widens(Dimension::Range));
    assert_eq!(
        refused(Grant::to(bob).range(KeyRange { start: 20, end: 101 })),
        DelegateError::Widens(Dimension::Range)
    );
    assert_eq!(refused(Grant::to(bob).expires(NOW + 2 * DAY)), DelegateError::Widens(Dimension::Window));
    assert_eq!(refused(Grant::to(bob).not_before(NOW - 2 * DAY)), DelegateError::Widens(Dimension::Window));
    assert_eq!(refused(Grant::to(bob).depth(3)), DelegateError::Widens(Dimension::Depth));
    assert_eq!(refused(Grant::to(bob).methods(1)), DelegateError::Widens(Dimension::Component));
    assert_eq!(refused(Grant::to(bob).expires(NOW - DAY)), DelegateError::EmptyWindow);
    assert_eq!(Grant::to(bob).delegate(&parent, &cap, &w.bob).unwrap_err(), DelegateError::NotHolder);
    assert_eq!(Grant::to(bob).issue(w.channel(), &w.mallory).unwrap_err(), DelegateError::NotHolder);
    // The same grant, narrower, is made and verifies.
    let child =
        Grant::to(bob).mode(Mode::Read).path(Path::parse("/a/x").unwrap()).delegate(&parent, &cap, &w.alice).unwrap();
    let child_cap = verdict(&w, &set, &child).unwrap();
    assert!(cap.scope().includes(child_cap.scope()));
    // Depth runs out: a depth-0 holder cannot delegate.
    let zero = Grant::to(bob).depth(0).delegate(&parent, &cap, &w.alice).unwrap();
    let zero_cap = verdict(&w, &set, &zero).unwrap();
    assert_eq!(
        Grant::to(pk(&w.carol)).delegate(&zero, &zero_cap, &w.bob).unwrap_err(),
        DelegateError::Widens(Dimension::Depth)
    );
    parent.push(0);
    assert!(matches!(Grant::to(bob).delegate(&parent, &cap, &w.alice), Err(DelegateError::Decode(_))));
}

#[test]
fn invoke_delegation_refuses_widening_and_channel_fields() {
    let w = World::new();
    let set = RevocationSet::new();
    let root = Root::Node(pk(&w.node));
    let chain = Grant::to(pk(&w.alice)).component([1; 32]).methods(0b11).fuel(100).issue(root, &w.node).unwrap();
    let cap = verdict(&w, &set, &chain).unwrap();
    let bob = pk(&w.bob);
    let refused = |g: Grant| g.delegate(&chain, &cap, &w.alice).unwrap_err();
    assert_eq!(refused(Grant::to(bob).component([2; 32])), DelegateError::Widens(Dimension::Component));
    assert_eq!(refused(Grant::to(bob).methods(0b111)), DelegateError::Widens(Dimension::Methods));
    assert_eq!(refused(Grant::to(bob).fuel(101)), DelegateError::Widens(Dimension::Fuel));
    assert_eq!(refused(Grant::to(bob).mode(Mode::Read)), DelegateError::Widens(Dimension::Mode));
    assert_eq!(refused(Grant::to(bob).path(Path::parse("/x").unwrap())), DelegateError::Widens(Dimension::Path));
    let ok = Grant::to(bob).component([1; 32]).methods(0b10).delegate(&chain, &cap, &w.alice).unwrap();
    let narrowed = verdict(&w, &set, &ok).unwrap();
    let call = |method, fuel| Access::Invoke { component: &[1; 32], interface: &[9; 32], method, fuel };
    assert!(narrowed.permits(&call(1, 100)).is_ok());
    assert_eq!(narrowed.permits(&call(0, 1)), Err(Refused::NotCovered(Dimension::Methods)));
    assert_eq!(narrowed.permits(&call(1, 101)), Err(Refused::NotCovered(Dimension::Fuel)));
    assert_eq!(narrowed.permits(&call(64, 1)), Err(Refused::NotCovered(Dimension::Methods)));
    let other = Access::Invoke { component: &[2; 32], interface: &[9; 32], method: 1, fuel: 1 };
    assert_eq!(narrowed.permits(&other), Err(Refused::NotCovered(Dimension::Component)));
    // A channel request against an Invoke capability, and the reverse, are never covered.
    let path = Path::root();
    assert!(narrowed.permits(&Access::Channel { mode: Mode::Relay, path: &path, key: 0 }).is_err());
}

#[test]
fn revocation_after_the_cache_is_warm_denies_the_next_check() {
    let w = World::new();
    let mut set = RevocationSet::new();
    let chain = build(&w.channel(), &signed(&four_links(&w)));
    let ids = UnverifiedChain::decode(&chain).unwrap().link_ids();
    let mut verifier = Verifier::default();
    let peer = pk(&w.dave);
    assert!(verifier.verify(&peer, &chain, &w.ctx(&set)).is_ok());
    assert!(verifier.verify(&peer, &chain, &w.ctx(&set)).is_ok());
    assert_eq!(verifier.stats().hits, 1);
    // Bob revokes carol's link (link 3, which he issued).
    set.insert(&Revocation::sign(w.owner.channel(), ids[2], 42, &w.bob)).unwrap();
    assert_eq!(verifier.verify(&peer, &chain, &w.ctx(&set)).unwrap_err(), Refused::Revoked { link: 3, watermark: 42 });
    assert_eq!(verifier.verify(&peer, &chain, &w.ctx(&set)).unwrap_err(), Refused::KnownBad);
    assert!(verifier.by_head(&ids[3], &w.ctx(&set)).is_none());
}

#[test]
fn revocation_by_a_party_below_or_outside_is_ignored() {
    let w = World::new();
    let chain = build(&w.channel(), &signed(&four_links(&w)));
    let ids = UnverifiedChain::decode(&chain).unwrap().link_ids();
    let mut set = RevocationSet::new();
    // Dave (the holder) and carol cannot revoke link 2; mallory cannot revoke anything; the
    // channel root can revoke any link; a record for another channel never applies.
    set.insert(&Revocation::sign(w.owner.channel(), ids[1], 0, &w.dave)).unwrap();
    set.insert(&Revocation::sign(w.owner.channel(), ids[1], 0, &w.carol)).unwrap();
    set.insert(&Revocation::sign(w.owner.channel(), ids[0], 0, &w.mallory)).unwrap();
    set.insert(&Revocation::sign(w.other_owner.channel(), ids[0], 0, &w.other_owner.signing_key())).unwrap();
    assert!(verdict(&w, &set, &chain).is_ok());
    set.insert(&Revocation::sign(w.owner.channel(), ids[3], 3, &w.root_key())).unwrap();
    assert_eq!(verdict(&w, &set, &chain).unwrap_err(), Refused::Revoked { link: 4, watermark: 3 });
    // The lowest watermark of the effective records wins.
    set.insert(&Revocation::sign(w.owner.channel(), ids[3], 1, &w.carol)).unwrap();
    assert_eq!(verdict(&w, &set, &chain).unwrap_err(), Refused::Revoked { link: 4, watermark: 1 });
}

#[test]
fn revocation_records_are_strict_and_domain_separated() {
    let w = World::new();
    let record = Revocation::sign(w.owner.channel(), LinkId([7; 32]), 300, &w.alice);
    let mut set = RevocationSet::new();
    assert_eq!(set.insert(&record), Ok(true));
    assert_eq!(set.insert(&record), Ok(false));
    assert_eq!(set.generation(), 1);
    let mut flipped = record.clone();
    flipped[40] ^= 1;
    assert_eq!(set.insert(&flipped), Err(Refused::BadSignature { link: 0 }));
    let mut trailing = record.clone();
    trailing.push(0);
    assert_eq!(set.insert(&trailing), Err(Refused::Decode(DecodeError::TrailingBytes)));
    // A link signature cannot stand in for a revocation signature: sign the record body
    // under the link context instead.
    use ed25519_dalek::Signer;
    let body = &record[..record.len() - 64];
    let sig = w.alice.sign(&[context::LINK_SIG, body].concat());
    let forged = [body, &sig.to_bytes()].concat();
    assert_eq!(set.insert(&forged), Err(Refused::BadSignature { link: 0 }));
    assert_eq!(set.generation(), 1);
}

#[test]
fn session_proof_replayed_into_another_session_is_refused() {
    let w = World::new();
    let set = RevocationSet::new();
    let ctx = w.ctx(&set);
    let chain = build(&w.channel(), &signed(&four_links(&w)[..2]));
    let head = *UnverifiedChain::decode(&chain).unwrap().link_ids().last().unwrap();
    let mut verifier = Verifier::default();
    let peer = pk(&w.bob);
    let proof = prove_possession(&w.bob, &[1; 32], &head);
    let mut first = SessionCaps::new([1; 32], 8);
    assert!(first.bind(&mut verifier, &peer, &chain, &proof, &ctx).is_ok());
    let mut second = SessionCaps::new([2; 32], 8);
    assert_eq!(second.bind(&mut verifier, &peer, &chain, &proof, &ctx).unwrap_err(), Refused::BadProof);
    // A proof by someone other than the holder (alice issued link 2 but does not hold it).
    let alices = prove_possession(&w.alice, &[2; 32], &head);
    assert_eq!(second.bind(&mut verifier, &peer, &chain, &alices, &ctx).unwrap_err(), Refused::BadProof);
    // A proof for the prefix head does not bind the longer chain.
    let prefix_head = UnverifiedChain::decode(&chain).unwrap().link_ids()[0];
    let wrong_head = prove_possession(&w.bob, &[2; 32], &prefix_head);
    assert_eq!(second.bind(&mut verifier, &peer, &chain, &wrong_head, &ctx).unwrap_err(), Refused::BadProof);
}

#[test]
fn stale_and_forged_handles_are_refused() {
    let w = World::new();
    let mut set = RevocationSet::new();
    let chain = build(&w.channel(), &signed(&four_links(&w)[..2]));
    let ids = UnverifiedChain::decode(&chain).unwrap().link_ids();
    let mut verifier = Verifier::default();
    let mut session = SessionCaps::new([3; 32], 2);
    let proof = prove_possession(&w.bob, &[3; 32], &ids[1]);
    let path = Path::parse("/a/z").unwrap();
    let access = Access::Channel { mode: Mode::Write, path: &path, key: 5 };
    let h = session.bind(&mut verifier, &pk(&w.bob), &chain, &proof, &w.ctx(&set)).unwrap();
    assert!(session.check(h, &access, &w.ctx(&set)).is_ok());
    let forged = Handle::from_bytes([9, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(session.check(forged, &access, &w.ctx(&set)).unwrap_err(), Refused::UnknownHandle);
    assert!(session.release(h));
    assert!(!session.release(h));
    assert_eq!(session.check(h, &access, &w.ctx(&set)).unwrap_err(), Refused::UnknownHandle);
    // The slot is reused with a new generation: the old handle still does not work.
    let h2 = session.bind(&mut verifier, &pk(&w.bob), &chain, &proof, &w.ctx(&set)).unwrap();
    assert_ne!(h, h2);
    assert_eq!(session.check(h, &access, &w.ctx(&set)).unwrap_err(), Refused::UnknownHandle);
    assert_eq!(Handle::from_bytes(h2.to_bytes()), h2);
    // A revocation reaches bound handles too.
    set.insert(&Revocation::sign(w.owner.channel(), ids[1], 0, &w.alice)).unwrap();
    assert_eq!(session.check(h2, &access, &w.ctx(&set)).unwrap_err(), Refused::Revoked { link: 2, watermark: 0 });
    assert_eq!(session.check(h2, &access, &w.ctx(&set)).unwrap_err(), Refused::UnknownHandle);
}

#[test]
fn confused_deputy_between_two_components() {
    let w = World::new();
    let set = RevocationSet::new();
    let node_seed = [3u8; 32];
    let (a, b) = (component_id(b"component a"), component_id(b"component b"));
    let key_a = component_key(&node_seed, &a);
    let key_b = component_key(&node_seed, &b);
    assert_ne!(pk(&key_a), pk(&key_b));
    // Alice delegates read access to component A on her node.
    let parent = Grant::to(pk(&w.alice)).mode(Mode::Write).issue(w.channel(), &w.root_key()).unwrap();
    let held = verdict(&w, &set, &parent).unwrap();
    let for_a = Grant::to(pk(&key_a)).mode(Mode::Read).delegate(&parent, &held, &w.alice).unwrap();
    let cap = verdict(&w, &set, &for_a).unwrap();
    let head = *cap.head();
    // Component B presents A's capability: its proof of possession cannot verify.
    let mut verifier = Verifier::default();
    let mut session = SessionCaps::new([5; 32], 4);
    let by_b = prove_possession(&key_b, &[5; 32], &head);
    assert_eq!(session.bind(&mut verifier, &pk(&key_b), &for_a, &by_b, &w.ctx(&set)).unwrap_err(), Refused::BadProof);
    // The node's own key does not hold it either (no ambient host authority).
    let by_node = prove_possession(&w.node, &[5; 32], &head);
    assert_eq!(
        session.bind(&mut verifier, &pk(&w.node), &for_a, &by_node, &w.ctx(&set)).unwrap_err(),
        Refused::BadProof
    );
    let by_a = prove_possession(&key_a, &[5; 32], &head);
    assert!(session.bind(&mut verifier, &pk(&key_a), &for_a, &by_a, &w.ctx(&set)).is_ok());
}

#[test]
fn relay_holder_cannot_read_and_a_channel_cap_does_not_cover_another_channel() {
    let w = World::new();
    let set = RevocationSet::new();
    let relay = Grant::to(pk(&w.alice)).mode(Mode::Relay).issue(w.channel(), &w.root_key()).unwrap();
    let cap = verdict(&w, &set, &relay).unwrap();
    let path = Path::root();
    assert_eq!(
        cap.permits(&Access::Channel { mode: Mode::Read, path: &path, key: 0 }),
        Err(Refused::NotCovered(Dimension::Mode))
    );
    assert!(cap.permits(&Access::Channel { mode: Mode::Relay, path: &path, key: 0 }).is_ok());
    assert_eq!(cap.root().subject(), &w.owner.channel());
    assert_ne!(cap.root().subject(), &w.other_owner.channel());
}

fn invocation(w: &World, head: LinkId, nonce: u8, expires: u64) -> Invocation {
    Invocation {
        head,
        executor: pk(&w.node),
        component: [0xc0; 32],
        interface: [0x1f; 32],
        method: 1,
        fuel: 500,
        args: *blake3::hash(b"args").as_bytes(),
        nonce: [nonce; 16],
        expires,
    }
}

#[test]
fn detached_invocations_refuse_replay_other_executors_and_expiry() {
    let w = World::new();
    let set = RevocationSet::new();
    let ctx = w.ctx(&set);
    let chain = Grant::to(pk(&w.alice))
        .component([0xc0; 32])
        .interface([0x1f; 32])
        .methods(0b10)
        .issue(Root::Node(pk(&w.node)), &w.node)
        .unwrap();
    let cap = verdict(&w, &set, &chain).unwrap();
    let mut guard = ReplayGuard::new(pk(&w.node), MAX_LIFETIME, 16);
    let mut keys = KeyCache::new(16);
    let inv = invocation(&w, *cap.head(), 1, NOW + 100).sign(&w.alice);
    assert!(guard.check(&inv, &cap, &mut keys, &ctx).is_ok());
    assert_eq!(guard.check(&inv, &cap, &mut keys, &ctx).unwrap_err(), Refused::Replay);
    // On another executor.
    let mut elsewhere = ReplayGuard::new(pk(&w.mallory), MAX_LIFETIME, 16);
    assert_eq!(elsewhere.check(&inv, &cap, &mut keys, &ctx).unwrap_err(), Refused::WrongTarget);
    // After expiry, and with a lifetime beyond the bound.
    let late = Context { now: NOW + 100 + SKEW, ..ctx };
    let fresh = invocation(&w, *cap.head(), 2, NOW + 100).sign(&w.alice);
    assert_eq!(guard.check(&fresh, &cap, &mut keys, &late).unwrap_err(), Refused::Expired);
    let long = invocation(&w, *cap.head(), 3, NOW + SKEW + MAX_LIFETIME + 1).sign(&w.alice);
    assert_eq!(guard.check(&long, &cap, &mut keys, &ctx).unwrap_err(), Refused::Replay);
    // Signed by someone else, or for a method not granted.
    let by_bob = invocation(&w, *cap.head(), 4, NOW + 100).sign(&w.bob);
    assert_eq!(guard.check(&by_bob, &cap, &mut keys, &ctx).unwrap_err(), Refused::BadProof);
    let mut other_method = invocation(&w, *cap.head(), 5, NOW + 100);
    other_method.method = 0;
    assert_eq!(
        guard.check(&other_method.sign(&w.alice), &cap, &mut keys, &ctx).unwrap_err(),
        Refused::NotCovered(Dimension::Methods)
    );
    // Once expired, the nonce is forgotten and the seen-set shrinks (a fresh nonce passes).
    let later = Context { now: NOW + 200 + SKEW, ..ctx };
    let next = invocation(&w, *cap.head(), 6, NOW + 300).sign(&w.alice);
    assert!(guard.check(&next, &cap, &mut keys, &later).is_ok());
    // A link signature is no invocation signature.
    let mut decoded = Invocation::decode(&inv).unwrap().0;
    decoded.nonce = [7; 16];
    let good = decoded.sign(&w.alice);
    let mut swapped = good.clone();
    let body_len = good.len() - 64;
    use ed25519_dalek::Signer;
    let sig = w.alice.sign(&[context::LINK_SIG, &good[..body_len]].concat());
    swapped[body_len..].copy_from_slice(&sig.to_bytes());
    assert_eq!(guard.check(&swapped, &cap, &mut keys, &ctx).unwrap_err(), Refused::BadProof);
}

#[test]
fn garbage_floods_are_bounded_by_the_cold_budget_and_the_failure_cache() {
    let w = World::new();
    let set = RevocationSet::new();
    let config = VerifierConfig { cold_burst: 4, cold_per_second: 2, ..VerifierConfig::default() };
    let mut verifier = Verifier::new(config);
    let peer = pk(&w.mallory);
    let forged = |i: u8| build(&w.channel(), &[(Sig::Raw([i; 64]), body(&w.mallory, Mode::Admin, 0))]);
    for i in 0..4 {
        assert_eq!(verifier.verify(&peer, &forged(i), &w.ctx(&set)).unwrap_err(), Refused::BadSignature { link: 1 });
    }
    assert_eq!(verifier.verify(&peer, &forged(9), &w.ctx(&set)).unwrap_err(), Refused::OverBudget);
    // Known failures cost no budget, and other peers keep theirs.
    assert_eq!(verifier.verify(&peer, &forged(0), &w.ctx(&set)).unwrap_err(), Refused::KnownBad);
    let honest = build(&w.channel(), &signed(&four_links(&w)));
    assert!(verifier.verify(&pk(&w.dave), &honest, &w.ctx(&set)).is_ok());
    // One second later the peer has two more.
    let later = Context { now: NOW + 1, ..w.ctx(&set) };
    assert!(verifier.verify(&peer, &forged(10), &later).is_err_and(|e| e != Refused::OverBudget));
    assert!(verifier.verify(&peer, &forged(11), &later).is_err_and(|e| e != Refused::OverBudget));
    assert_eq!(verifier.verify(&peer, &forged(12), &later).unwrap_err(), Refused::OverBudget);
    let s = verifier.stats();
    assert_eq!((s.cold, s.known_bad, s.over_budget), (7, 1, 2));
}

#[test]
fn caches_stay_within_their_capacity() {
    let w = World::new();
    let set = RevocationSet::new();
    let config = VerifierConfig { chains: 3, cold_burst: 100, ..VerifierConfig::default() };
    let mut verifier = Verifier::new(config);
    let chains: Vec<_> = (0..6u64)
        .map(|i| Grant::to(pk(&w.alice)).expires(NOW + 1000 + i).issue(w.channel(), &w.root_key()).unwrap())
        .collect();
    for c in &chains {
        verifier.verify(&pk(&w.alice), c, &w.ctx(&set)).unwrap();
    }
    // The oldest were evicted: verifying them again is cold, the newest is a hit.
    let cold = verifier.stats().cold;
    verifier.verify(&pk(&w.alice), &chains[5], &w.ctx(&set)).unwrap();
    assert_eq!(verifier.stats().cold, cold);
    verifier.verify(&pk(&w.alice), &chains[0], &w.ctx(&set)).unwrap();
    assert_eq!(verifier.stats().cold, cold + 1);
}

#[test]
fn ladder_is_one_way_and_separated_by_epoch_and_channel() {
    let w = World::new();
    let write = w.owner.write_seed(0);
    let read = write.read_seed();
    let content = read.content_key();
    let all = [w.owner.as_bytes(), write.as_bytes(), read.as_bytes(), content.as_bytes()];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // Going "down" from the read seed never reaches the write seed or its auth key.
    assert_ne!(read.read_seed_of_itself(), *write.as_bytes());
    assert_ne!(read.auth_key().verifying_key(), write.auth_key().verifying_key());
    assert_ne!(w.owner.write_seed(1), write);
    assert_ne!(RootSeed::from_bytes([2; 32]).write_seed(0), write);
    assert_ne!(EpochKeys::derive(&write), EpochKeys::derive(&w.owner.write_seed(1)));
    assert_eq!(format!("{write:?}"), "WriteSeed(..)");
    // A read-auth key cannot root a Write chain.
    let set = RevocationSet::new();
    let root = Root::WriteAuth { channel: w.owner.channel(), epoch: 0 };
    let chain = Grant::to(pk(&w.alice)).issue(root, &read.auth_key()).unwrap();
    assert_eq!(verdict(&w, &set, &chain).unwrap_err(), Refused::BadSignature { link: 1 });
}

trait ReadSeedExt {
    fn read_seed_of_itself(&self) -> [u8; 32];
}
impl ReadSeedExt for ReadSeed {
    /// The next rung as if the read seed were a write seed: what a reader can compute.
    fn read_seed_of_itself(&self) -> [u8; 32] {
        *WriteSeed::from_bytes(*self.as_bytes()).read_seed().as_bytes()
    }
}

#[test]
fn a_cache_used_with_two_revocation_sets_never_confuses_them() {
    let w = World::new();
    let chain = build(&w.channel(), &signed(&four_links(&w)));
    let ids = UnverifiedChain::decode(&chain).unwrap().link_ids();
    // Two sets with the same number of records: one revokes link 2, the other an unrelated id.
    let mut revoking = RevocationSet::new();
    revoking.insert(&Revocation::sign(w.owner.channel(), ids[1], 0, &w.alice)).unwrap();
    let mut unrelated = RevocationSet::new();
    unrelated.insert(&Revocation::sign(w.owner.channel(), LinkId([1; 32]), 0, &w.alice)).unwrap();
    assert_eq!(revoking.generation(), unrelated.generation());
    assert_ne!(revoking.version(), unrelated.version());
    let mut verifier = Verifier::default();
    assert!(verifier.verify(&pk(&w.dave), &chain, &w.ctx(&unrelated)).is_ok());
    assert_eq!(
        verifier.verify(&pk(&w.dave), &chain, &w.ctx(&revoking)).unwrap_err(),
        Refused::Revoked { link: 2, watermark: 0 }
    );
}

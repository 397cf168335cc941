//! Property tests of the attenuation laws, canonical encoding and decoder robustness.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use isocore_cap::*;
use proptest::prelude::*;

fn mode_of(i: u8) -> Mode {
    [Mode::Relay, Mode::Read, Mode::Write, Mode::Admin][usize::from(i % 4)]
}

/// A random absolute target for a delegation from a parent, in a small domain so that both
/// narrower and wider requests are common.
#[derive(Clone, Debug)]
struct Target {
    mode: Option<u8>,
    depth: Option<u8>,
    not_before: Option<u64>,
    expires: Option<u64>,
    path: Option<Vec<u8>>,
    range: Option<(u64, u64)>,
}

fn target() -> impl Strategy<Value = Target> {
    (
        proptest::option::of(0u8..4),
        proptest::option::of(0u8..8),
        proptest::option::of(0u64..6),
        proptest::option::of(4u64..12),
        proptest::option::of(proptest::collection::vec(0u8..3, 0..4)),
        proptest::option::of((0u64..8, 0u64..8)),
    )
        .prop_map(|(mode, depth, not_before, expires, path, range)| Target {
            mode,
            depth,
            not_before,
            expires,
            path,
            range,
        })
}

fn path_of(p: &[u8]) -> Path {
    let names: Vec<String> = p.iter().map(|c| format!("p{c}")).collect();
    Path::from_components(&names).unwrap()
}

const T0: u64 = NOW - 100;

impl Target {
    fn grant(&self, audience: [u8; 32]) -> Grant {
        let mut g = Grant::to(audience);
        if let Some(m) = self.mode {
            g = g.mode(mode_of(m));
        }
        if let Some(d) = self.depth {
            g = g.depth(d);
        }
        if let Some(t) = self.not_before {
            g = g.not_before(T0 + t * 10);
        }
        if let Some(t) = self.expires {
            g = g.expires(NOW + t * 1000);
        }
        if let Some(p) = &self.path {
            g = g.path(path_of(p));
        }
        if let Some((a, b)) = self.range {
            g = g.range(KeyRange { start: a * 10, end: 100 - b * 10 });
        }
        g
    }

    /// The model: the scope this grant asks for, stated independently of the code's rules.
    fn wanted(&self, parent: &Scope) -> Scope {
        Scope {
            mode: self.mode.map(mode_of).unwrap_or(parent.mode),
            path: self.path.as_deref().map(path_of).unwrap_or_else(|| parent.path.clone()),
            range: self.range.map(|(a, b)| KeyRange { start: a * 10, end: 100 - b * 10 }).unwrap_or(parent.range),
            window: Window {
                not_before: self.not_before.map(|t| T0 + t * 10).unwrap_or(parent.window.not_before),
                expires: self.expires.map(|t| NOW + t * 1000).unwrap_or(parent.window.expires),
            },
            invoke: parent.invoke,
            depth: self.depth.unwrap_or(parent.depth.wrapping_sub(1)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// `delegate` succeeds exactly when the model says the target lies within the parent, the
    /// verified child holds exactly the target, and verify(delegate(c)) ⊆ verify(c).
    #[test]
    fn delegation_matches_the_lattice_model(targets in proptest::collection::vec(target(), 1..7)) {
        let w = World::new();
        let set = RevocationSet::new();
        let keys = [key(20), key(21), key(22), key(23), key(24), key(25), key(26), key(27)];
        let mut chain = Grant::to(pk(&keys[0])).issue(w.channel(), &w.root_key()).unwrap();
        let mut cap = verdict(&w, &set, &chain).unwrap();
        for (i, t) in targets.iter().enumerate() {
            let parent = cap.scope().clone();
            let wanted = t.wanted(&parent);
            let within = parent.depth > 0
                && wanted.depth < parent.depth
                && parent.includes(&wanted)
                && wanted.window.not_before < wanted.window.expires
                && wanted.range.start <= wanted.range.end;
            let made = t.grant(pk(&keys[i + 1])).delegate(&chain, &cap, &keys[i]);
            prop_assert_eq!(made.is_ok(), within, "step {}: {:?} from {:?}: {:?}", i, t, parent, made);
            let Ok(child) = made else { break };
            let child_cap = verdict(&w, &set, &child).unwrap();
            prop_assert_eq!(child_cap.scope(), &wanted);
            prop_assert!(cap.scope().includes(child_cap.scope()));
            prop_assert_eq!(child_cap.holder(), &pk(&keys[i + 1]));
            prop_assert_eq!(&child_cap.links()[..cap.links().len()], cap.links());
            chain = child;
            cap = child_cap;
        }
    }

    /// For raw links with arbitrary fields (signed honestly), a chain verifies iff every
    /// prefix does, and each prefix's scope includes the next one's: narrowing never widens.
    #[test]
    fn a_chain_verifies_iff_each_link_does_against_its_parent(
        links in proptest::collection::vec((0u8..4, 0u8..9, proptest::option::of(0u64..4), proptest::option::of(0u64..4), proptest::option::of((0u64..40, 0u64..40)), 0usize..3), 1..6)
    ) {
        let w = World::new();
        let set = RevocationSet::new();
        let keys = [w.root_key(), key(30), key(31), key(32), key(33), key(34), key(35)];
        let raw: Vec<(SigningKey, LinkBody)> = links.iter().enumerate().map(|(i, &(m, d, nbf, exp, range, comps))| {
            let mut b = with_path(body(&keys[i + 1], mode_of(m), d), &["x", "y", "z"][..comps]);
            b.not_before = nbf.map(|t| T0 + t);
            b.expires = exp.map(|t| NOW + 1 + t);
            b.range = range.filter(|&r| r != (0, 0)).map(|(a, b)| (a << 58, b << 58));
            (keys[i].clone(), b)
        }).collect();
        let mut previous: Option<Scope> = None;
        let mut all_ok = true;
        for n in 1..=raw.len() {
            let chain = build(&w.channel(), &signed(&raw[..n]));
            let got = verdict(&w, &set, &chain);
            if !all_ok {
                prop_assert!(got.is_err(), "a chain verified though a prefix did not");
                continue;
            }
            match got {
                Ok(cap) => {
                    if let Some(p) = &previous {
                        prop_assert!(p.includes(cap.scope()));
                        prop_assert!(cap.scope().depth < p.depth);
                    }
                    previous = Some(cap.scope().clone());
                }
                Err(e) => {
                    // The refusal names this link (the last one) or is about time.
                    let at_last = matches!(e, Refused::Widened { link, .. } | Refused::EmptyWindow { link } if usize::from(link) == n);
                    prop_assert!(at_last || e == Refused::NotYetValid || e == Refused::Expired, "{:?} at {}", e, n);
                    all_ok = false;
                }
            }
        }
    }

    /// Any single-byte change to a valid chain is refused (or is no change), and decoding
    /// whatever it makes never panics.
    #[test]
    fn every_single_byte_mutation_is_refused(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let w = World::new();
        let set = RevocationSet::new();
        let mut chain = build(&w.channel(), &signed(&four_links(&w)));
        let i = at.index(chain.len());
        chain[i] ^= xor;
        prop_assert!(verdict(&w, &set, &chain).is_err(), "byte {} ^ {:#x} still verifies", i, xor);
    }

    /// Whatever decodes re-encodes to the same bytes.
    #[test]
    fn decoding_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..600), seed in any::<u64>()) {
        let w = World::new();
        // Half the inputs start from a real chain so that decoding gets deep.
        let mut input = if seed % 2 == 0 { build(&w.channel(), &signed(&four_links(&w))) } else { Vec::new() };
        let cut = (seed as usize >> 1) % (input.len() + 1);
        input.truncate(cut);
        input.extend_from_slice(&bytes);
        if let Ok(chain) = UnverifiedChain::decode(&input) {
            prop_assert_eq!(chain.encode(), input.clone());
            prop_assert_eq!(chain.link_ids().len(), chain.links().len());
        }
        let _ = Revocation::decode(&input);
        let _ = Invocation::decode(&input);
    }

    /// Verification of arbitrary bytes through the cached verifier never panics, and its
    /// verdict equals the uncached one.
    #[test]
    fn fuzz_verify(bytes in proptest::collection::vec(any::<u8>(), 0..400), flip in any::<prop::sample::Index>()) {
        let w = World::new();
        let set = RevocationSet::new();
        let mut verifier = Verifier::default();
        let mut chain = build(&w.channel(), &signed(&four_links(&w)[..2]));
        let i = flip.index(chain.len());
        chain[i] = bytes.first().copied().unwrap_or(0);
        for input in [&bytes, &chain] {
            let cold = verdict(&w, &set, input).map(|c| c.head().0);
            let cached = verifier.verify(&[0; 32], input, &w.ctx(&set)).map(|c| c.head().0);
            prop_assert_eq!(cold, cached);
        }
    }

    /// The verdict depends on the set of revocations, never on the order they arrived in.
    #[test]
    fn revocation_order_does_not_matter(order in Just((0..6).collect::<Vec<usize>>()).prop_shuffle()) {
        let w = World::new();
        let chain = build(&w.channel(), &signed(&four_links(&w)));
        let ids = UnverifiedChain::decode(&chain).unwrap().link_ids();
        let records = [
            Revocation::sign(w.owner.channel(), ids[2], 9, &w.bob),
            Revocation::sign(w.owner.channel(), ids[2], 4, &w.alice),
            Revocation::sign(w.owner.channel(), ids[1], 5, &w.carol),
            Revocation::sign(w.owner.channel(), ids[3], 2, &w.dave),
            Revocation::sign(w.owner.channel(), ids[3], 8, &w.carol),
            Revocation::sign(w.other_owner.channel(), ids[0], 1, &w.other_owner.signing_key()),
        ];
        let mut set = RevocationSet::new();
        for &i in &order {
            set.insert(&records[i]).unwrap();
        }
        // Link 3 is revoked by bob (9) and alice (4), both above it: the lower watermark wins.
        prop_assert_eq!(verdict(&w, &set, &chain).unwrap_err(), Refused::Revoked { link: 3, watermark: 4 });
        prop_assert_eq!(set.generation(), 6);
    }
}

//! The verification algorithm (`spec/cap.md` §6): pure, in a fixed order, the same verdict
//! on every node.

use crate::chain::{Root, UnverifiedChain, link_id, link_message};
use crate::error::Refused;
use crate::ladder::EpochKeys;
use crate::revoke::RevocationSet;
use crate::scope::{Capability, Scope};
use crate::{KeyCache, LinkId};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use ed25519_dalek::Signature;

/// Clock skew a verifier allows by default, in seconds, either way.
pub const DEFAULT_SKEW: u64 = 60;

/// Where a verifier finds the ladder keys a channel published for an epoch (from its
/// genesis and `Epoch` entries).
pub trait Roots {
    /// The public auth keys of `channel` in `epoch`, if known.
    fn epoch_keys(&self, channel: &[u8; 32], epoch: u64) -> Option<EpochKeys>;
}

/// Knows no epochs: only chains rooted at a channel or node key verify.
impl Roots for () {
    fn epoch_keys(&self, _: &[u8; 32], _: u64) -> Option<EpochKeys> {
        None
    }
}

impl Roots for BTreeMap<([u8; 32], u64), EpochKeys> {
    fn epoch_keys(&self, channel: &[u8; 32], epoch: u64) -> Option<EpochKeys> {
        self.get(&(*channel, epoch)).copied()
    }
}

/// Everything a verdict depends on besides the chain: time, clock skew, the published epoch
/// keys and the revocations known so far.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The verifier's clock, in seconds since the Unix epoch.
    pub now: u64,
    /// How far the verifier's clock may be off, in seconds either way.
    pub skew: u64,
    /// Published epoch keys.
    pub roots: &'a dyn Roots,
    /// Known revocations.
    pub revocations: &'a RevocationSet,
}

impl<'a> Context<'a> {
    /// A context at `now` with the default skew.
    pub fn new(now: u64, roots: &'a dyn Roots, revocations: &'a RevocationSet) -> Self {
        Context { now, skew: DEFAULT_SKEW, roots, revocations }
    }
}

/// Verifies a decoded chain without caches. See [`Verifier`](crate::Verifier) for the cached,
/// budgeted form a node uses for its peers.
pub fn verify(chain: &UnverifiedChain<'_>, ctx: &Context<'_>) -> Result<Capability, Refused> {
    verify_with(chain, ctx, &mut KeyCache::new(0))
}

pub(crate) fn verify_with(
    chain: &UnverifiedChain<'_>,
    ctx: &Context<'_>,
    keys: &mut KeyCache,
) -> Result<Capability, Refused> {
    // 1. The root issuer.
    let root_issuer = match chain.root {
        Root::Channel(k) | Root::Node(k) => k,
        Root::WriteAuth { channel, epoch } => ctx.roots.epoch_keys(&channel, epoch).ok_or(Refused::UnknownRoot)?.write,
        Root::ReadAuth { channel, epoch } => ctx.roots.epoch_keys(&channel, epoch).ok_or(Refused::UnknownRoot)?.read,
    };
    // 2. Every link no wider than its parent: no cryptography yet, so a widened chain costs
    // nothing to refuse.
    let mut scope = Scope::of_root(&chain.root);
    for (i, link) in chain.links.iter().enumerate() {
        scope = link.body.narrow(&scope, i as u8 + 1)?;
    }
    // 3. Presentation time against the effective window.
    scope.window.check(ctx.now, ctx.skew)?;
    // 4. Signatures, each by the previous link's audience, over the exact bytes received.
    let mut issuers = Vec::with_capacity(chain.links.len());
    let mut links = Vec::with_capacity(chain.links.len());
    let mut issuer = root_issuer;
    let mut parent: LinkId = chain.root_id();
    for (i, link) in chain.links.iter().enumerate() {
        let n = i as u8 + 1;
        let key = keys.get(&issuer).ok_or(Refused::BadKey { link: n })?;
        let signature = Signature::from_bytes(&link.signature);
        key.verify_strict(&link_message(&parent, link.payload), &signature)
            .map_err(|_| Refused::BadSignature { link: n })?;
        parent = link_id(&parent, link.payload, &link.signature);
        issuers.push(issuer);
        links.push(parent);
        issuer = link.body.audience;
    }
    // 5. Revocations.
    if let Some((i, watermark)) = ctx.revocations.find(chain.root.subject(), &issuers, &links) {
        return Err(Refused::Revoked { link: i as u8 + 1, watermark });
    }
    Ok(Capability { root: chain.root, scope, holder: issuer, links, issuers })
}

//! Named attacks on a replica. Each must be refused with its own error and leave the store
//! exactly as it was.

mod common;

use bytes::Bytes;
use common::{Net, entry, writer};
use ed25519_dalek::SigningKey;
use isocore_log::{
    Config, DataParts, DecodeError, Download, Feed, FeedKey, Hash, MAX_MESSAGE_LEN, MemoryStore, Message, ProofError,
    RemoteError, ReplicationError, Replicator, SignedHead, Storage, StoreError, WriteBatch,
};
use std::time::Duration;

const NOW: Duration = Duration::ZERO;

struct Victim {
    feed: Feed<MemoryStore>,
    replicator: Replicator,
}

impl Victim {
    fn new(key: FeedKey) -> Self {
        let feed = Feed::open(key, MemoryStore::new()).unwrap();
        let mut replicator = Replicator::new(Config::default());
        replicator.start(&feed, NOW);
        let mut buf = Vec::new();
        while replicator.poll_transmit(&feed, &mut buf).unwrap().is_some() {}
        Victim { feed, replicator }
    }

    fn receive(&mut self, message: &Message<'_>) -> Result<(), ReplicationError> {
        self.receive_bytes(message.to_vec())
    }

    fn receive_bytes(&mut self, bytes: Vec<u8>) -> Result<(), ReplicationError> {
        self.replicator.handle_input(&mut self.feed, NOW, &Bytes::from(bytes))
    }

    fn snapshot(&self) -> (Option<SignedHead>, u64, Vec<Option<Bytes>>) {
        let entries = (0..64).map(|i| self.feed.get(i).unwrap()).collect();
        (self.feed.head().copied(), self.feed.contiguous_len(), entries)
    }
}

fn source(seed: u8, n: u64) -> (SigningKey, Feed<MemoryStore>) {
    let (signer, key) = writer(seed);
    let mut feed = Feed::open(key, MemoryStore::new()).unwrap();
    feed.append(&signer, (0..n).map(|i| entry(i, 20))).unwrap();
    (signer, feed)
}

fn push_of(parts: &DataParts<Bytes>) -> Vec<u8> {
    let entries: Vec<&[u8]> = parts.entries.iter().map(|e| &e[..]).collect();
    Message::Data {
        id: 0,
        base: parts.base,
        head: parts.head,
        contiguous: 0,
        start: parts.start,
        entries,
        nodes: parts.nodes.clone(),
    }
    .to_vec()
}

/// Serve `[start, end)` from `feed` to a replica at length 0, let `tamper` change the message,
/// and check the victim refuses it with `expected` and stores nothing.
fn refused(
    feed: &Feed<MemoryStore>,
    start: u64,
    end: u64,
    tamper: impl FnOnce(&mut DataParts<Bytes>),
    expected: RemoteError,
) {
    let mut parts = feed.serve(0, start, end, true, usize::MAX).unwrap().unwrap();
    tamper(&mut parts);
    let mut victim = Victim::new(*feed.key());
    let before = victim.snapshot();
    match victim.receive_bytes(push_of(&parts)) {
        Err(ReplicationError::Remote(e)) => assert_eq!(e, expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
    assert_eq!(victim.snapshot(), before, "a refused message changed the store");
}

#[test]
fn honest_push_is_accepted() {
    let (_, feed) = source(1, 10);
    let mut victim = Victim::new(*feed.key());
    let parts = feed.serve(0, 0, 10, true, usize::MAX).unwrap().unwrap();
    victim.receive_bytes(push_of(&parts)).unwrap();
    assert_eq!(victim.feed.len(), 10);
}

#[test]
fn tampered_entry() {
    let (_, feed) = source(2, 10);
    refused(
        &feed,
        3,
        6,
        |p| p.entries[1] = Bytes::from_static(b"not what was signed"),
        RemoteError::Proof(ProofError::RootMismatch),
    );
}

#[test]
fn wrong_sibling() {
    let (_, feed) = source(3, 10);
    refused(&feed, 3, 4, |p| p.nodes[0].0[0] ^= 1, RemoteError::Proof(ProofError::RootMismatch));
}

#[test]
fn truncated_proof() {
    let (_, feed) = source(4, 10);
    refused(
        &feed,
        3,
        4,
        |p| {
            p.nodes.pop();
        },
        RemoteError::Proof(ProofError::TooFewNodes),
    );
}

#[test]
fn extra_proof_node() {
    let (_, feed) = source(5, 10);
    refused(&feed, 3, 4, |p| p.nodes.push(Hash([9; 32])), RemoteError::Proof(ProofError::TooManyNodes));
}

#[test]
fn forged_signature() {
    let (_, feed) = source(6, 10);
    refused(&feed, 0, 10, |p| p.head.as_mut().unwrap().signature.0[5] ^= 0x40, RemoteError::BadSignature);
}

#[test]
fn signature_from_another_feed_in_the_same_channel() {
    // Same channel, same entries, different writer: the other writer's head must not pass.
    let channel = [42; 32];
    let (mallory, victim_writer) = (SigningKey::from_bytes(&[7; 32]), SigningKey::from_bytes(&[8; 32]));
    let mut theirs = Feed::open(FeedKey::new(channel, mallory.verifying_key()), MemoryStore::new()).unwrap();
    theirs.append(&mallory, (0..5).map(|i| entry(i, 20))).unwrap();
    let mut ours = Feed::open(FeedKey::new(channel, victim_writer.verifying_key()), MemoryStore::new()).unwrap();
    ours.append(&victim_writer, (0..5).map(|i| entry(i, 20))).unwrap();
    let mut forged = ours.serve(0, 0, 5, true, usize::MAX).unwrap().unwrap();
    forged.head = theirs.head().copied();
    let mut victim = Victim::new(*ours.key());
    assert!(matches!(victim.receive_bytes(push_of(&forged)), Err(ReplicationError::Remote(RemoteError::BadSignature))));
    assert_eq!(victim.feed.len(), 0);
}

#[test]
fn signature_from_the_same_writer_in_another_channel() {
    let signer = SigningKey::from_bytes(&[9; 32]);
    let in_channel = |c: u8| {
        let mut feed = Feed::open(FeedKey::new([c; 32], signer.verifying_key()), MemoryStore::new()).unwrap();
        feed.append(&signer, (0..5).map(|i| entry(i, 20))).unwrap();
        feed
    };
    let (a, b) = (in_channel(1), in_channel(2));
    assert_eq!(a.head().unwrap().root, b.head().unwrap().root, "same entries, same tree");
    let mut replayed = b.serve(0, 0, 5, true, usize::MAX).unwrap().unwrap();
    replayed.head = a.head().copied();
    let mut victim = Victim::new(*b.key());
    assert!(matches!(
        victim.receive_bytes(push_of(&replayed)),
        Err(ReplicationError::Remote(RemoteError::BadSignature))
    ));
}

#[test]
fn head_replay_from_an_older_length() {
    let (signer, mut feed) = source(10, 5);
    let old = *feed.head().unwrap();
    feed.append(&signer, [entry(5, 20)]).unwrap();
    let new = *feed.head().unwrap();
    let mut victim = Victim::new(*feed.key());
    victim.receive(&Message::Have { head: new, contiguous: 6 }).unwrap();
    let refused = victim.receive(&Message::Have { head: old, contiguous: 5 });
    assert!(matches!(refused, Err(ReplicationError::Remote(RemoteError::HeadRegression))));
    // An old head inside an upgrade is refused at decoding: an upgrade must be longer than its base.
    let mut parts = feed.serve(0, 0, 6, true, usize::MAX).unwrap().unwrap();
    parts.base = 6;
    parts.start = 6;
    parts.entries.clear();
    let bytes = push_of(&parts);
    assert_eq!(Message::decode(&bytes), Err(DecodeError::OutOfBounds));
}

#[test]
fn overlong_varint() {
    // `NoData { id: 1 }` is [3, 1]; spelling 1 as [0x81, 0x00] is the same number, overlong.
    assert!(Message::decode(&[3, 1]).is_ok());
    assert_eq!(Message::decode(&[3, 0x81, 0x00]), Err(DecodeError::NonCanonical));
    let mut victim = Victim::new(writer(11).1);
    let refused = victim.receive_bytes(vec![3, 0x81, 0x00]);
    assert!(matches!(refused, Err(ReplicationError::Remote(RemoteError::Decode(DecodeError::NonCanonical)))));
}

#[test]
fn trailing_bytes() {
    assert_eq!(Message::decode(&[4, 0]), Err(DecodeError::TrailingBytes));
}

#[test]
fn oversized_length() {
    // A length prefix far beyond the input: refused without allocating for it.
    let mut bytes = vec![2, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(Message::decode(&bytes), Err(DecodeError::Malformed));
    assert_eq!(Message::decode(&vec![0u8; MAX_MESSAGE_LEN + 1]), Err(DecodeError::TooLong));
    // An entry over the maximum entry size, in an otherwise well-formed message.
    let big = vec![0u8; isocore_log::MAX_ENTRY_LEN + 1];
    let message =
        Message::Data { id: 1, base: 0, head: None, contiguous: 0, start: 0, entries: vec![&big], nodes: vec![] };
    assert_eq!(Message::decode(&message.to_vec()), Err(DecodeError::OutOfBounds));
}

#[test]
fn too_many_queued_requests() {
    let mut victim = Victim::new(writer(12).1);
    let config = Config::default();
    for id in 0..config.max_peer_requests as u64 {
        victim.receive(&Message::Request { id, base: 0, start: 0, end: 1, upgrade: false }).unwrap();
    }
    let refused = victim.receive(&Message::Request { id: 9999, base: 0, start: 0, end: 1, upgrade: false });
    assert!(matches!(refused, Err(ReplicationError::Remote(RemoteError::TooManyRequests))));
}

/// A writer that signs two histories. `lengths` are what each branch reaches.
fn forking_writer(lengths: (u64, u64)) {
    let (signer, key) = writer(13);
    let mut net = Net::new(13);
    let [w1, w2, r1, r2, r3] = [0; 5].map(|_| net.add(key));
    net.append(w1, &signer, (0..lengths.0).map(|i| entry(i, 10)).collect());
    net.append(w2, &signer, (0..lengths.1).map(|i| entry(i + 1000, 10)).collect());
    let serve = Config { download: Download::None, live: false, ..Config::default() };
    net.connect(w1, serve.clone(), r1, Config::default());
    net.connect(w2, serve, r2, Config::default());
    net.connect(r2, Config::default(), r3, Config::default());
    net.run(10_000);
    assert!(net.nodes[r1].feed.fork_proof().is_none());
    net.connect(r1, Config::default(), r2, Config::default());
    net.run(10_000);
    for r in [r1, r2, r3] {
        let proof = net.nodes[r].feed.fork_proof().unwrap_or_else(|| panic!("replica {r} has no fork proof"));
        assert_eq!(proof.verify().unwrap(), key);
    }
    for r in [r1, r2] {
        assert!(net.nodes[r].events.contains(&isocore_log::Event::Forked), "replica {r} saw no fork event");
    }
    // The proof travels back to the writer's own replica, which refuses to extend the fork.
    assert!(matches!(net.nodes[w1].feed.append(&signer, [entry(77, 10)]), Err(isocore_log::FeedError::Forked)));
}

#[test]
fn forking_writer_same_length() {
    forking_writer((6, 6));
}

#[test]
fn forking_writer_shorter_branch_learns_first() {
    forking_writer((5, 9));
}

#[test]
fn forking_writer_longer_branch_learns_first() {
    forking_writer((9, 5));
}

#[test]
fn fork_proof_with_a_wrong_node_is_refused() {
    let (signer, key) = writer(14);
    let mut a = Feed::open(key, MemoryStore::new()).unwrap();
    a.append(&signer, (0..3).map(|i| entry(i, 10))).unwrap();
    let mut b = Feed::open(key, MemoryStore::new()).unwrap();
    b.append(&signer, (0..3).map(|i| entry(i + 50, 10))).unwrap();
    let proof = isocore_log::ForkProof {
        channel: *key.channel(),
        writer: key.writer().to_bytes(),
        first: *a.head().unwrap(),
        second: *b.head().unwrap(),
        first_roots: vec![],
        second_nodes: vec![],
    };
    proof.verify().unwrap();
    let mut same = proof.clone();
    same.second = same.first;
    assert_eq!(same.verify(), Err(isocore_log::ForkProofError::Consistent));
    let mut padded = proof.clone();
    padded.second_nodes.push(Hash([0; 32]));
    assert_eq!(padded.verify(), Err(isocore_log::ForkProofError::BadNodes));
    let mut victim = Victim::new(key);
    let mut forged = proof.clone();
    forged.second.signature.0[0] ^= 1;
    assert!(matches!(
        victim.receive(&Message::Fork(forged)),
        Err(ReplicationError::Remote(RemoteError::BadForkProof(isocore_log::ForkProofError::BadSignature)))
    ));
    assert!(victim.feed.fork_proof().is_none());
}

/// A store that fails every write once `broken` is set.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    broken: bool,
}

impl Storage for FlakyStore {
    fn head(&self) -> Result<Option<SignedHead>, StoreError> {
        self.inner.head()
    }
    fn fork_proof(&self) -> Result<Option<isocore_log::ForkProof>, StoreError> {
        self.inner.fork_proof()
    }
    fn entry(&self, index: u64) -> Result<Option<Bytes>, StoreError> {
        self.inner.entry(index)
    }
    fn node(&self, index: u64) -> Result<Option<Hash>, StoreError> {
        self.inner.node(index)
    }
    fn contiguous(&self) -> Result<u64, StoreError> {
        self.inner.contiguous()
    }
    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        if self.broken {
            return Err(StoreError("disk full".into()));
        }
        self.inner.apply(batch)
    }
}

#[test]
fn failed_write_loses_nothing_already_stored() {
    let (signer, key) = writer(15);
    let mut feed = Feed::open(key, FlakyStore::default()).unwrap();
    feed.append(&signer, (0..4).map(|i| entry(i, 8))).unwrap();
    let head = *feed.head().unwrap();
    // Reach into the store through a reopen: break it, try to append, reopen.
    let mut store = FlakyStore { inner: feed.store().inner.clone(), broken: true };
    std::mem::swap(&mut store.inner, &mut FlakyStore::default().inner);
    let mut broken = Feed::open(key, FlakyStore { inner: feed.store().inner.clone(), broken: true }).unwrap();
    assert!(matches!(broken.append(&signer, [entry(4, 8)]), Err(isocore_log::FeedError::Store(_))));
    assert_eq!(broken.head(), Some(&head), "in-memory state moved despite the failed write");
    assert_eq!(broken.len(), 4);
    let reopened = Feed::open(key, FlakyStore { inner: broken.store().inner.clone(), broken: false }).unwrap();
    assert_eq!(reopened.head(), Some(&head));
    for i in 0..4 {
        assert_eq!(reopened.get(i).unwrap().as_deref(), Some(&entry(i, 8)[..]));
    }
}

#[test]
fn wrong_signer_cannot_append() {
    let (_, key) = writer(16);
    let mut feed = Feed::open(key, MemoryStore::new()).unwrap();
    let mallory = SigningKey::from_bytes(&[99; 32]);
    assert!(matches!(feed.append(&mallory, [b"x".to_vec()]), Err(isocore_log::FeedError::WrongSigner)));
    assert!(feed.is_empty());
}

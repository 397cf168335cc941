//! The redb store against the memory store: same operations, same results.

use ed25519_dalek::SigningKey;
use isocore_log::{Feed, FeedKey, MemoryStore};
use isocore_node::store::Db;

#[test]
fn redb_feed_serves_what_a_memory_feed_serves() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("db.redb")).unwrap();
    let signer = SigningKey::from_bytes(&[5; 32]);
    let key = FeedKey::standalone(signer.verifying_key());
    let mut on_disk = Feed::open(key, db.feed(&key, false).unwrap()).unwrap();
    let mut in_memory = Feed::open(key, MemoryStore::new()).unwrap();
    for batch in 0..3u64 {
        let entries: Vec<Vec<u8>> = (0..1000).map(|i| format!("entry {}", batch * 1000 + i).into_bytes()).collect();
        assert_eq!(on_disk.append(&signer, entries.clone()).unwrap(), in_memory.append(&signer, entries).unwrap());
    }
    for (base, start, end, upgrade) in
        [(1000, 1000, 2000, true), (0, 0, 10, true), (3000, 5, 900, false), (2000, 2000, 2000, true)]
    {
        let a = on_disk.serve(base, start, end, upgrade, 65536).unwrap();
        let b = in_memory.serve(base, start, end, upgrade, 65536).unwrap();
        assert!(b.is_some());
        assert_eq!(a, b, "serve({base}, {start}, {end}, {upgrade})");
    }
    assert_eq!(on_disk.contiguous_len(), 3000);
    drop(on_disk);
    let reopened = Feed::open(key, db.feed(&key, false).unwrap()).unwrap();
    assert_eq!(reopened.head(), in_memory.head());
    assert_eq!(reopened.contiguous_len(), 3000);
}

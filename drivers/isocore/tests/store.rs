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

mod model {
    use bytes::Bytes;
    use isocore_log::{Hash, MemoryStore, Storage, WriteBatch};
    use isocore_node::store::Db;
    use proptest::prelude::*;

    fn entry_len(i: u64) -> usize {
        if i.is_multiple_of(5) { 20_000 + (i as usize * 7919) % 60_000 } else { (i % 7) as usize }
    }

    /// A batch of entries (a run, scattered indices, or repeats of held ones) and nodes.
    fn batch() -> impl Strategy<Value = WriteBatch> {
        // Runs up to 100 long: those of 64 or more are committed at once, not held back.
        let run = (0u64..40, 1usize..100).prop_map(|(start, n)| (start..start + n as u64).collect::<Vec<_>>());
        let scattered = proptest::collection::vec(0u64..80, 0..12);
        let nodes = proptest::collection::vec(0u64..300, 0..40);
        (prop_oneof![run, scattered], nodes).prop_map(|(indices, nodes)| WriteBatch {
            // Entries are immutable: index i always holds the same bytes, of a length from 0 up.
            // Every fifth is 20-80 KB: rows fill and split, and some entries go in parts.
            entries: indices.iter().map(|&i| (i, Bytes::from(vec![i as u8; entry_len(i)]))).collect(),
            nodes: nodes.iter().map(|&i| (i, Hash([i as u8 ^ 0x5a; 32]))).collect(),
            head: None,
            fork: None,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn redb_rows_and_pages_hold_what_a_memory_store_holds(batches in proptest::collection::vec(batch(), 1..12), sync in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.redb");
            let key = isocore_log::FeedKey::standalone(ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key());
            let mut model = MemoryStore::new();
            {
                let db = Db::open(&path).unwrap();
                let mut store = db.feed(&key, sync).unwrap();
                for b in &batches {
                    store.apply(b.clone()).unwrap();
                    model.apply(b.clone()).unwrap();
                    prop_assert_eq!(store.contiguous().unwrap(), model.contiguous().unwrap());
                    // Reads between writes, through the cached snapshot and row.
                    for i in 0..150 {
                        prop_assert_eq!(store.entry(i).unwrap(), model.entry(i).unwrap(), "entry {}", i);
                        prop_assert_eq!(store.contains(i).unwrap(), model.contains(i).unwrap(), "contains {}", i);
                    }
                    for i in 0..320 {
                        prop_assert_eq!(store.node(i).unwrap(), model.node(i).unwrap(), "node {}", i);
                    }
                }
                store.flush().unwrap();
                db.sync().unwrap();
            }
            // And the same after reopening.
            let db = Db::open(&path).unwrap();
            let store = db.feed(&key, false).unwrap();
            prop_assert_eq!(store.contiguous().unwrap(), model.contiguous().unwrap());
            for i in 0..150 {
                prop_assert_eq!(store.entry(i).unwrap(), model.entry(i).unwrap(), "entry {} after reopening", i);
                prop_assert_eq!(store.contains(i).unwrap(), model.contains(i).unwrap(), "contains {} after reopening", i);
            }
            for i in 0..320 {
                prop_assert_eq!(store.node(i).unwrap(), model.node(i).unwrap(), "node {}", i);
            }
        }
    }
}

/// Held-back entries go to the commit thread a MiB at a time; until it has written them they
/// are served from memory, and a later flush waits for it.
#[test]
fn entries_being_committed_are_served_meanwhile_and_kept() {
    use isocore_log::{Hash, Storage, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let key = isocore_log::FeedKey::standalone(ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key());
    let entry = |i: u64| bytes::Bytes::from(vec![i as u8; 64 << 10]);
    let n = 4 * isocore_node::store::PENDING_BYTES as u64 / (64 << 10);
    {
        let db = isocore_node::store::Db::open(&path).unwrap();
        let mut store = db.feed(&key, false).unwrap();
        for b in 0..n / 4 {
            let indices = 4 * b..4 * b + 4;
            let nodes = indices.clone().map(|i| (2 * i, Hash([i as u8; 32]))).collect();
            store
                .apply(WriteBatch { entries: indices.map(|i| (i, entry(i))).collect(), nodes, head: None, fork: None })
                .unwrap();
            let held = 4 * b + 4;
            assert_eq!(store.contiguous().unwrap(), held);
            for i in 0..held {
                assert_eq!(store.entry(i).unwrap(), Some(entry(i)), "entry {i} after batch {b}");
                assert!(store.contains(i).unwrap());
                assert_eq!(store.node(2 * i).unwrap(), Some(Hash([i as u8; 32])));
            }
            assert!(!store.contains(held).unwrap());
        }
        store.flush().unwrap();
        db.sync().unwrap();
    }
    let db = isocore_node::store::Db::open(&path).unwrap();
    let store = db.feed(&key, false).unwrap();
    assert_eq!(store.contiguous().unwrap(), n);
    for i in 0..n {
        assert_eq!(store.entry(i).unwrap(), Some(entry(i)), "entry {i} after reopening");
        assert_eq!(store.node(2 * i).unwrap(), Some(Hash([i as u8; 32])));
    }
}

/// Why a database that `write` leaves behind is refused.
fn refusal(write: impl FnOnce(&redb::WriteTransaction)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        write(&tx);
        tx.commit().unwrap();
    }
    Db::open(&path).err().expect("refused").to_string()
}

#[test]
fn a_database_of_an_older_or_newer_layout_is_refused_with_a_clear_message() {
    let older = refusal(|tx| {
        tx.open_table(redb::TableDefinition::<u64, &[u8]>::new("entries-00")).unwrap();
    });
    assert!(older.contains("older isocore (format 1)"), "{older}");
    let newer = refusal(|tx| {
        tx.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap().insert("format", 99).unwrap();
    });
    assert!(newer.contains("newer isocore (format 99)"), "{newer}");
}

#[test]
fn a_damaged_row_past_the_prefix_is_left_out_and_written_over_when_fetched_again() {
    use bytes::Bytes;
    use isocore_log::{Storage, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let key = FeedKey::standalone(SigningKey::from_bytes(&[7; 32]).verifying_key());
    let batch = |indices: std::ops::Range<u64>| WriteBatch {
        entries: indices.map(|i| (i, Bytes::from(vec![i as u8; 100]))).collect(),
        ..WriteBatch::default()
    };
    {
        let db = Db::open(&path).unwrap();
        let mut store = db.feed(&key, false).unwrap();
        // Rows of their own: each batch is committed before the next.
        for range in [0..5, 10..15, 15..25] {
            store.apply(batch(range)).unwrap();
            store.flush().unwrap();
        }
    }
    {
        // Damage the row holding entries 10..15.
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        let rows = format!("rows-{}", hex::encode(key.discovery_key()));
        tx.open_table(redb::TableDefinition::<u64, &[u8]>::new(&rows)).unwrap().insert(10, &[1u8, 2, 3][..]).unwrap();
        tx.commit().unwrap();
    }
    let db = Db::open(&path).unwrap();
    let mut store = db.feed(&key, false).unwrap();
    assert_eq!(store.contiguous().unwrap(), 5);
    assert!(!store.contains(12).unwrap(), "a damaged row holds nothing");
    assert!(store.contains(22).unwrap(), "the rows after it are still held");
    assert_eq!(store.entry(22).unwrap(), Some(Bytes::from(vec![22u8; 100])));
    // Fetched again from 5: one new row from 5 to 15, which the damaged row at 10 must not
    // shadow, after reopening too.
    store.apply(batch(5..15)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.contiguous().unwrap(), 25);
    drop(store);
    let store = db.feed(&key, false).unwrap();
    assert_eq!(store.contiguous().unwrap(), 25);
    // First, so that no row read before answers it.
    assert_eq!(store.entry(12).unwrap(), Some(Bytes::from(vec![12u8; 100])));
    for i in 0..25 {
        assert_eq!(store.entry(i).unwrap(), Some(Bytes::from(vec![i as u8; 100])), "entry {i}");
    }
}

/// Large replicated entries live in the entry file beside the database; one that the file
/// no longer holds or holds changed (damage: the store never makes a row durable before its
/// bytes) is a clear error, and the rest is still served.
#[test]
fn large_replicated_entries_live_in_the_entry_file_and_a_short_file_is_an_error() {
    use bytes::Bytes;
    use isocore_log::{Storage, WriteBatch};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let key = FeedKey::standalone(SigningKey::from_bytes(&[8; 32]).verifying_key());
    let entry = |i: u64| Bytes::from(vec![i as u8; 40_000 + i as usize]);
    {
        let db = Db::open(&path).unwrap();
        let mut store = db.feed(&key, false).unwrap();
        store.apply(WriteBatch { entries: (0..6).map(|i| (i, entry(i))).collect(), ..WriteBatch::default() }).unwrap();
        store.apply(WriteBatch { entries: vec![(6, Bytes::from_static(b"small"))], ..WriteBatch::default() }).unwrap();
        store.flush().unwrap();
        db.sync().unwrap();
    }
    let file = path.with_extension("entries");
    let written = std::fs::metadata(&file).unwrap().len();
    assert_eq!(written, (0..6).map(|i| entry(i).len() as u64).sum::<u64>(), "the large entries, once each");
    // Cut the file inside the last large entry, and change a byte of entry 3.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(written - 10).unwrap();
        let inside_3 = (0..3).map(|i| entry(i).len() as u64).sum::<u64>() + 100;
        f.write_all_at(&[0xff], inside_3).unwrap();
    }
    let db = Db::open(&path).unwrap();
    let store = db.feed(&key, false).unwrap();
    assert_eq!(store.contiguous().unwrap(), 7);
    for i in [0, 1, 2, 4] {
        assert_eq!(store.entry(i).unwrap(), Some(entry(i)), "entry {i}");
    }
    let error = store.entry(3).expect_err("entry 3 was changed").to_string();
    assert!(error.contains("checksum"), "{error}");
    let error = store.entry(5).expect_err("entry 5 is cut short").to_string();
    assert!(error.contains("entry file"), "{error}");
    assert_eq!(store.entry(6).unwrap().as_deref(), Some(&b"small"[..]));
    // A durable store keeps its large entries in the database.
    let mut durable = db.feed(&FeedKey::standalone(SigningKey::from_bytes(&[9; 32]).verifying_key()), true).unwrap();
    durable.apply(WriteBatch { entries: vec![(0, entry(9))], ..WriteBatch::default() }).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), written - 10);
    assert_eq!(durable.entry(0).unwrap(), Some(entry(9)));
    // Closed without a sync: closing makes the commits durable, and the entries with them.
    let late = FeedKey::standalone(SigningKey::from_bytes(&[10; 32]).verifying_key());
    {
        let mut store = db.feed(&late, false).unwrap();
        store.apply(WriteBatch { entries: vec![(0, entry(20)), (1, entry(21))], ..WriteBatch::default() }).unwrap();
    }
    drop((store, durable, db));
    let db = Db::open(&path).unwrap();
    let store = db.feed(&late, false).unwrap();
    assert_eq!(store.entry(1).unwrap(), Some(entry(21)));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), written - 10 + (entry(20).len() + entry(21).len()) as u64);
}

//! Apps as channels of versions: publish, install, upgrade, roll back, and every refused
//! install.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use isocore_host::app::*;
use isocore_host::*;
use isocore_log::{Feed, FeedKey, ForkProof, MemoryStore};

fn author() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn feed() -> Feed<MemoryStore> {
    Feed::open(FeedKey::standalone(author().verifying_key()), MemoryStore::new()).unwrap()
}

fn release(node: &Node, bytes: &[u8], requests: Vec<Request>) -> Release {
    let mut imports = node.load(bytes).unwrap().imports().to_vec();
    imports.sort();
    Release::new((0, 1, 0), imports, requests, AppLimits { memory: 4 << 20, processes: 16 })
}

fn photos(mode: u8, path: &str) -> Request {
    Request::Channel { channel: [7; 32], mode, path: path.into(), reason: "your photos".into() }
}

fn approve_all(_: &Release, asked: &[Request]) -> Vec<Request> {
    asked.to_vec()
}

#[test]
fn publish_install_and_run() {
    let node = node();
    let bytes = guest("echo");
    let mut feed = feed();
    let r = release(&node, &bytes, vec![photos(1, "/photos")]);
    let at = publish(&mut feed, &author(), r, &bytes).unwrap();
    let installed = install(&node, &feed, Pin::Latest, &mut approve_all, None).unwrap();
    assert_eq!(installed.at, at);
    assert_eq!(installed.granted, vec![photos(1, "/photos")]);
    assert_eq!(installed.app.digest(), blake3::hash(&bytes).as_bytes());
    let pid = node.spawn(&installed.app, b"").unwrap();
    let inbox = node.inbox(4);
    node.send(pid, 1, b"installed", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"installed");
}

#[test]
fn the_user_grants_only_what_they_approve() {
    let node = node();
    let bytes = guest("echo");
    let mut feed = feed();
    let asked = vec![photos(1, "/photos"), photos(2, "/")];
    publish(&mut feed, &author(), release(&node, &bytes, asked), &bytes).unwrap();
    let mut only_read = |_: &Release, asked: &[Request]| {
        asked.iter().filter(|r| matches!(r, Request::Channel { mode: 1, .. })).cloned().collect()
    };
    let installed = install(&node, &feed, Pin::Latest, &mut only_read, None).unwrap();
    assert_eq!(installed.granted, vec![photos(1, "/photos")]);
}

#[test]
fn an_upgrade_widening_requests_needs_fresh_consent_and_narrowing_does_not() {
    let node = node();
    let bytes = guest("echo");
    let mut feed = feed();
    publish(&mut feed, &author(), release(&node, &bytes, vec![photos(1, "/photos")]), &bytes).unwrap();
    let v1 = install(&node, &feed, Pin::Latest, &mut approve_all, None).unwrap();
    // v2 asks for write: refused without consent, accepted with it.
    let mut wider = release(&node, &bytes, vec![photos(2, "/photos")]);
    wider.version = (0, 2, 0);
    publish(&mut feed, &author(), wider, &bytes).unwrap();
    let mut deny = |_: &Release, _: &[Request]| Vec::new();
    assert!(matches!(
        install(&node, &feed, Pin::Latest, &mut deny, Some(&v1.granted)),
        Err(InstallError::NeedsConsent(1))
    ));
    let v2 = install(&node, &feed, Pin::Latest, &mut approve_all, Some(&v1.granted)).unwrap();
    assert_eq!(v2.release.version, (0, 2, 0));
    // v3 asks for less (read under a sub-path): applied without asking.
    let mut narrower = release(&node, &bytes, vec![photos(1, "/photos/2026")]);
    narrower.version = (0, 3, 0);
    publish(&mut feed, &author(), narrower, &bytes).unwrap();
    let mut never = |_: &Release, _: &[Request]| -> Vec<Request> { panic!("consent asked for a narrower release") };
    let v3 = install(&node, &feed, Pin::Latest, &mut never, Some(&v2.granted)).unwrap();
    assert_eq!(v3.granted, vec![photos(1, "/photos/2026")]);
    // Rolling back is pinning an older release.
    // v1 asked for read on /photos, wider than v3's grant: consent again.
    let back = install(&node, &feed, Pin::At(v1.at), &mut deny, Some(&v3.granted));
    assert!(matches!(back, Err(InstallError::NeedsConsent(1))));
    let back = install(&node, &feed, Pin::At(v1.at), &mut approve_all, Some(&v3.granted)).unwrap();
    assert_eq!(back.release.version, (0, 1, 0));
}

#[test]
fn a_wrong_digest_is_refused() {
    let node = node();
    let bytes = guest("echo");
    let mut feed = feed();
    let mut entries = release_entries(release(&node, &bytes, Vec::new()), &bytes);
    // The author publishes chunk bytes that differ from the digest in the release.
    let last = entries.last_mut().unwrap();
    let n = last.len() - 1;
    last[n] ^= 1;
    feed.append(&author(), entries).unwrap();
    assert!(matches!(install(&node, &feed, Pin::Latest, &mut approve_all, None), Err(InstallError::WrongDigest)));
}

#[test]
fn an_unknown_import_is_refused() {
    let node = node();
    let wasi = br#"(component (import "wasi:filesystem/types@0.2.0" (instance)))"#;
    let mut feed = feed();
    let mut r = release(&node, &guest("echo"), Vec::new());
    r.imports = vec!["wasi:filesystem/types@0.2.0".into()];
    publish(&mut feed, &author(), r, wasi).unwrap();
    match install(&node, &feed, Pin::Latest, &mut approve_all, None) {
        Err(InstallError::Host(HostError::UnknownImport(name))) => assert_eq!(name, "wasi:filesystem/types@0.2.0"),
        other => panic!("{:?}", other.map(|i| i.at)),
    }
}

#[test]
fn a_release_that_misstates_its_imports_is_refused() {
    let node = node();
    let bytes = guest("echo");
    let mut feed = feed();
    let mut r = release(&node, &bytes, Vec::new());
    r.imports.pop();
    publish(&mut feed, &author(), r, &bytes).unwrap();
    assert!(matches!(
        install(&node, &feed, Pin::Latest, &mut approve_all, None),
        Err(InstallError::ManifestMismatch { .. })
    ));
}

#[test]
fn a_forked_app_channel_is_refused() {
    let node = node();
    let bytes = guest("echo");
    let mut feed = feed();
    publish(&mut feed, &author(), release(&node, &bytes, Vec::new()), &bytes).unwrap();
    // The author signs a second, different history of the same length.
    let mut other = self::feed();
    let mut alt = release(&node, &bytes, Vec::new());
    alt.notes = "another history".into();
    publish(&mut other, &author(), alt, &bytes).unwrap();
    let (a, b) = (*feed.head().unwrap(), *other.head().unwrap());
    assert_eq!(a.length, b.length);
    let key = feed.key();
    let proof = ForkProof {
        channel: *key.channel(),
        writer: key.writer().to_bytes(),
        first: a,
        second: b,
        first_roots: Vec::new(),
        second_nodes: Vec::new(),
    };
    assert!(feed.accept_fork_proof(proof).unwrap());
    assert!(matches!(install(&node, &feed, Pin::Latest, &mut approve_all, None), Err(InstallError::Forked)));
}

#[test]
fn a_precompiled_artifact_from_the_network_is_never_loaded() {
    let node = node();
    let engine = wasmtime::Engine::default();
    let artifact = wasmtime::component::Component::new(&engine, guest("echo")).unwrap().serialize().unwrap();
    let mut feed = feed();
    publish(&mut feed, &author(), release(&node, &guest("echo"), Vec::new()), &artifact).unwrap();
    assert!(matches!(
        install(&node, &feed, Pin::Latest, &mut approve_all, None),
        Err(InstallError::Host(HostError::Invalid(_)))
    ));
}

#[test]
fn malformed_releases_are_refused_without_panicking() {
    let node = node();
    let good = release(&node, &guest("echo"), vec![photos(1, "/a")]).encode();
    assert!(
        Release::decode(&good).is_err_and(|e| matches!(e, InstallError::Malformed("component size out of bounds")))
    );
    let mut r = release(&node, &guest("echo"), vec![photos(1, "/a")]);
    r.size = 10;
    let good = r.encode();
    assert_eq!(Release::decode(&good).unwrap(), r);
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(Release::decode(&trailing).is_err());
    assert!(Release::decode(&[CHUNK_TAG, 1, 2, 3]).is_err());
    assert!(Release::decode(&[]).is_err());
    let mut unsorted = r.clone();
    unsorted.imports = vec!["isocore:process/process@0.1.0".into(), "isocore:process/log@0.1.0".into()];
    assert!(Release::decode(&unsorted.encode()).is_err());
    let mut bad_path = r.clone();
    bad_path.requests = vec![photos(1, "no-slash")];
    assert!(Release::decode(&bad_path.encode()).is_err());
    // Every truncation and every single-byte change either decodes to something canonical
    // or is refused; none panics.
    for cut in 0..good.len() {
        let _ = Release::decode(&good[..cut]);
    }
    for i in 0..good.len() {
        for x in [1u8, 0x80, 0xff] {
            let mut m = good.clone();
            m[i] ^= x;
            if let Ok(d) = Release::decode(&m) {
                assert_eq!(d.encode(), m);
            }
        }
    }
}

#[test]
fn compiled_artifacts_are_cached_locally() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig { max_processes: 16, threads: 1, ..NodeConfig::default() };
    let bytes = guest("echo");
    {
        let node = Node::with_cache(config.clone(), Some(dir.path().to_path_buf())).unwrap();
        node.load(&bytes).unwrap();
    }
    let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(cached.len(), 1);
    // A second node loads from the cache and runs it.
    let node = Node::with_cache(config, Some(dir.path().to_path_buf())).unwrap();
    let app = node.load(&bytes).unwrap();
    let pid = node.spawn(&app, b"").unwrap();
    let inbox = node.inbox(4);
    node.send(pid, 1, b"warm", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"warm");
}

#[test]
fn an_upgrade_restarts_the_apps_processes_on_the_new_release() {
    let node = node();
    let mut feed = feed();
    let echo = guest("echo");
    let hostile = guest("hostile");
    publish(&mut feed, &author(), release(&node, &echo, Vec::new()), &echo).unwrap();
    let v1 = install(&node, &feed, Pin::Latest, &mut approve_all, None).unwrap();
    let mut running = Running::new(v1.clone());
    let before: Vec<Pid> = (0..3).map(|_| running.start(&node, b"").unwrap()).collect();
    let monitors: Vec<_> = before.iter().map(|p| node.monitor(*p).unwrap()).collect();
    // v2 is a different component (the hostile guest answers tag 9 where echo does not).
    publish(&mut feed, &author(), release(&node, &hostile, Vec::new()), &hostile).unwrap();
    let v2 = install(&node, &feed, Pin::Latest, &mut approve_all, Some(&v1.granted)).unwrap();
    running.upgrade(&node, v2).unwrap();
    for m in monitors {
        assert_eq!(m.wait(WAIT), Some(ExitReason::Killed));
    }
    let after = running.pids();
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|p| !before.contains(p)));
    let inbox = node.inbox(4);
    node.send(after[0], 9, b"", Some(inbox.pid())).unwrap();
    assert_eq!(inbox.recv(WAIT).unwrap().body, b"to myself");
    // Rolling back restarts them on the first release again.
    running.upgrade(&node, install(&node, &feed, Pin::At(v1.at), &mut approve_all, None).unwrap()).unwrap();
    assert_eq!(running.installed().at, v1.at);
    assert_eq!(running.installed().app.digest(), blake3::hash(&echo).as_bytes());
}

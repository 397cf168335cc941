//! Feeds for processes: opened only by grant, appended only with write, growth delivered to
//! the mailbox; the chat app built on them.

mod common;

use common::*;
use ed25519_dalek::SigningKey;
use isocore_host::app::Request;
use isocore_host::channel::{Channels, LocalChannels};
use isocore_host::*;
use std::sync::Arc;

fn grant(channel: [u8; 32], mode: u8, path: &str) -> Request {
    Request::Channel { channel, mode, path: path.into(), reason: "the room".into() }
}

/// A node with in-memory feeds, one room written by this node, and the chat app.
fn room() -> (Node, Arc<LocalChannels>, isocore_log::FeedKey, App) {
    let host = node();
    let channels = Arc::new(LocalChannels::new());
    host.set_channels(channels.clone()).unwrap();
    let key = channels.create(SigningKey::from_bytes(&[5; 32]));
    let chat = load(&host, "chat");
    (host, channels, key, chat)
}

fn call(host: &Node, pid: Pid, method: u64, args: &[u8]) -> Vec<u8> {
    let inbox = host.inbox(4);
    host.send(pid, CALL_TAG + method, args, Some(inbox.pid())).unwrap();
    inbox.recv(WAIT).expect("an answer").body
}

fn entries(mut page: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while page.len() >= 4 {
        let n = u32::from_le_bytes(page[..4].try_into().unwrap()) as usize;
        out.push(page[4..4 + n].to_vec());
        page = &page[4 + n..];
    }
    out
}

#[test]
fn chat_posts_are_signed_entries_of_the_room_and_history_reads_them_back() {
    let (host, channels, key, chat) = room();
    chat.set_grants(vec![grant(*key.channel(), 2, "/")]);
    let pid = host.spawn(&chat, key.channel()).unwrap();
    assert_eq!(u64_of(&call(&host, pid, 0, b"hello")), 1);
    assert_eq!(u64_of(&call(&host, pid, 0, b"world")), 2);
    assert_eq!(channels.len(&key).unwrap(), 2);
    assert_eq!(channels.read(&key, 1).unwrap(), b"world");
    assert_eq!(entries(&call(&host, pid, 1, &0u64.to_le_bytes())), vec![b"hello".to_vec(), b"world".to_vec()]);
    assert_eq!(entries(&call(&host, pid, 1, &1u64.to_le_bytes())), vec![b"world".to_vec()]);
}

#[test]
fn without_a_grant_for_the_whole_channel_a_process_cannot_open_it() {
    let (host, channels, key, chat) = room();
    for grants in [
        vec![],
        vec![grant([9; 32], 3, "/")],
        vec![grant(*key.channel(), 0, "/")],
        vec![grant(*key.channel(), 3, "/photos")],
    ] {
        chat.set_grants(grants.clone());
        let (_, monitor) = host.spawn_monitored(&chat, key.channel(), None).unwrap();
        // `init` fails to open the room, which ends the process.
        assert_eq!(monitor.wait(WAIT), Some(ExitReason::Normal), "{grants:?}");
    }
    assert_eq!(channels.len(&key).unwrap(), 0);
}

#[test]
fn a_read_grant_reads_but_cannot_append() {
    let (host, channels, key, chat) = room();
    channels.append(&key, vec![b"from the writer".to_vec()]).unwrap();
    chat.set_grants(vec![grant(*key.channel(), 1, "/")]);
    let pid = host.spawn(&chat, key.channel()).unwrap();
    assert_eq!(call(&host, pid, 0, b"sneaky"), b"", "the post is refused");
    assert_eq!(channels.len(&key).unwrap(), 1);
    assert_eq!(entries(&call(&host, pid, 1, b"")), vec![b"from the writer".to_vec()]);
}

#[test]
fn growth_of_a_subscribed_feed_arrives_in_the_mailbox() {
    let (host, channels, key, chat) = room();
    chat.set_grants(vec![grant(*key.channel(), 1, "/")]);
    let pid = host.spawn(&chat, key.channel()).unwrap();
    let watcher = host.inbox(16);
    host.send(pid, 2, b"", Some(watcher.pid())).unwrap();
    // Appends that did not come from the process (replication, another app) still notify it.
    std::thread::sleep(std::time::Duration::from_millis(50));
    channels.append(&key, vec![b"a".to_vec(), b"b".to_vec()]).unwrap();
    channels.append(&key, vec![b"c".to_vec()]).unwrap();
    let seen: Vec<(u64, u64)> = (0..2).map(|_| watcher.recv(WAIT).map(|m| (m.tag, u64_of(&m.body))).unwrap()).collect();
    assert_eq!(seen, vec![(7, 2), (7, 3)]);
}

#[test]
fn a_component_importing_channels_declares_it() {
    let (host, _, _, chat) = room();
    assert!(chat.imports().iter().any(|i| i == "isocore:channel/channel@0.1.0"), "{:?}", chat.imports());
    // The others import only what they use.
    let echo = load(&host, "echo");
    assert!(!echo.imports().iter().any(|i| i.starts_with("isocore:channel")), "{:?}", echo.imports());
}

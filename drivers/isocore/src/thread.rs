//! A node on its own thread, controlled through a handle: how the demo, the tests and the
//! benchmark run several nodes in one process over real sockets.

use crate::node::{Node, NodeConfig};
use async_net::TcpListener;
use isocore_host::channel::Notify;
use isocore_host::{OutgoingCall, RemoteFailure};
use isocore_log::FeedKey;
use isocore_proto::EndpointEvent;
use isocore_proto::{ConnectionHandle, PeerId};
use smol::LocalExecutor;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::Instant;

type Reply<T> = mpsc::Sender<Result<T, String>>;

enum Command {
    Append(FeedKey, Vec<Vec<u8>>, Reply<u64>),
    Follow(FeedKey, Reply<()>),
    Lengths(FeedKey, Reply<Option<(u64, u64)>>),
    Get(FeedKey, u64, Reply<Option<Vec<u8>>>),
    Watch(FeedKey, Notify, Reply<()>),
    Session(ConnectionHandle, Reply<Option<(PeerId, [u8; 32])>>),
    Call(ConnectionHandle, [u8; 32], String, Vec<u8>, Reply<Option<u64>>),
    ServeCalls(Arc<isocore_host::Node>, Reply<()>),
    CallPeer(PeerId, OutgoingCall, Answer),
    Stop,
}

/// Where the answer to a process's call to another node goes.
type Answer = async_channel::Sender<Result<Vec<u8>, RemoteFailure>>;

/// Processes watching feeds, by discovery key.
type Watchers = Vec<([u8; 32], Notify)>;

/// A way to command a [`NodeThread`] from any thread.
#[derive(Clone)]
pub struct NodeHandle {
    commands: async_channel::Sender<Command>,
}

/// A node running on its own thread.
pub struct NodeThread {
    handle: NodeHandle,
    /// Endpoint events, stamped with the instant the node saw them.
    pub events: mpsc::Receiver<(EndpointEvent, Instant)>,
    /// The address it listens on, if any.
    pub addr: Option<SocketAddr>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeThread {
    /// Start a node. If `config.listen` is set, the node is listening when this returns.
    pub fn spawn(config: NodeConfig, follow: Vec<FeedKey>) -> Result<NodeThread, String> {
        let (commands, inbox) = async_channel::unbounded::<Command>();
        let (events_tx, events) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel::<Result<Option<SocketAddr>, String>>();
        let thread = std::thread::spawn(move || {
            let ex = Rc::new(LocalExecutor::new());
            let setup = || -> Result<(Rc<Node>, Option<TcpListener>), String> {
                let node = Node::open(config.clone()).map_err(|e| e.to_string())?;
                for key in &follow {
                    node.follow(key).map_err(|e| e.to_string())?;
                }
                let listener = match config.listen {
                    Some(addr) => Some(
                        smol::block_on(TcpListener::bind(addr)).map_err(|e| format!("cannot listen on {addr}: {e}"))?,
                    ),
                    None => None,
                };
                Ok((node, listener))
            };
            let (node, listener) = match setup() {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(listener.as_ref().and_then(|l| l.local_addr().ok())));
            let subscription = node.subscribe();
            // Processes watching feeds, told of each growth.
            let watchers: Rc<RefCell<Watchers>> = Rc::default();
            let calls: Rc<RefCell<crate::services::OutgoingCalls>> = Rc::default();
            let forward = {
                let (watchers, calls, node) = (watchers.clone(), calls.clone(), node.clone());
                ex.spawn(async move {
                    while let Ok(e) = subscription.recv().await {
                        if let EndpointEvent::FeedUpdated { discovery_key, contiguous, .. } = &e {
                            watchers.borrow_mut().retain_mut(|(dk, w)| dk != discovery_key || w(*contiguous));
                        }
                        calls.borrow_mut().on_event(&node, &e);
                        // Nobody listening (see `discard_events`) is fine: watchers and calls
                        // above still need the events.
                        let _ = events_tx.send((e, Instant::now()));
                    }
                })
            };
            let control = {
                let node = node.clone();
                let ex = ex.clone();
                async move {
                    while let Ok(command) = inbox.recv().await {
                        match command {
                            Command::Append(key, entries, reply) => {
                                let _ = reply.send(node.append(&key, entries).map_err(|e| e.to_string()));
                            }
                            Command::Follow(key, reply) => {
                                let _ = reply.send(node.follow(&key).map_err(|e| e.to_string()));
                            }
                            Command::Lengths(key, reply) => {
                                let _ = reply.send(Ok(node.with_feed(&key, |f| (f.len(), f.contiguous_len()))));
                            }
                            Command::Get(key, index, reply) => {
                                let got = node.with_feed(&key, |f| f.get(index)).transpose().map_err(|e| e.to_string());
                                let _ = reply.send(got.map(|o| o.flatten().map(|b| b.to_vec())));
                            }
                            Command::Watch(key, notify, reply) => {
                                let known = node.with_feed(&key, |_| ()).is_some();
                                if known {
                                    watchers.borrow_mut().push((key.discovery_key(), notify));
                                }
                                let _ = reply.send(known.then_some(()).ok_or_else(|| "no such feed".to_string()));
                            }
                            Command::Session(connection, reply) => {
                                let _ = reply.send(Ok(node.session(connection)));
                            }
                            Command::Call(connection, interface, method, payload, reply) => {
                                let _ = reply.send(Ok(node.call(connection, interface, &method, &payload)));
                            }
                            Command::CallPeer(peer, call, answer) => calls.borrow_mut().call(&node, peer, call, answer),
                            Command::ServeCalls(host, reply) => {
                                let key = node.peer_id().0;
                                ex.spawn(crate::services::serve_calls(node.clone(), host, key, ex.clone())).detach();
                                let _ = reply.send(Ok(()));
                            }
                            Command::Stop => break,
                        }
                    }
                }
            };
            smol::block_on(ex.run(node.clone().run(ex.clone(), listener, control)));
            drop(forward);
        });
        let addr = ready.recv().map_err(|_| "node thread died".to_string())??;
        Ok(NodeThread { handle: NodeHandle { commands }, events, addr, thread: Some(thread) })
    }

    /// Stop queueing events for [`NodeThread::events`], for an owner that never reads them.
    pub fn discard_events(&mut self) {
        self.events = mpsc::channel().1;
    }

    /// A handle for other threads.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, String> {
        ask(&self.handle.commands, make)
    }

    /// Who is on the other end of a connection, and its handshake hash.
    pub fn session(&self, connection: ConnectionHandle) -> Result<Option<(PeerId, [u8; 32])>, String> {
        self.ask(|r| Command::Session(connection, r))
    }

    /// Call a method on a peer; the answer arrives as an event. Returns the call id.
    pub fn call(
        &self,
        connection: ConnectionHandle,
        interface: [u8; 32],
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Option<u64>, String> {
        self.ask(|r| Command::Call(connection, interface, method.to_string(), payload, r))
    }

    /// Answer calls from peers with the interfaces `host` exports.
    pub fn serve_calls(&self, host: Arc<isocore_host::Node>) -> Result<(), String> {
        self.ask(|r| Command::ServeCalls(host, r))
    }

    /// Follow a feed.
    pub fn follow(&self, key: &FeedKey) -> Result<(), String> {
        self.ask(|r| Command::Follow(*key, r))
    }

    /// Stop the node and wait for its thread: its database is closed when this returns.
    pub fn stop(mut self) {
        let _ = self.handle.commands.send_blocking(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ask<T>(commands: &async_channel::Sender<Command>, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    commands.send_blocking(make(tx)).map_err(|_| "node stopped".to_string())?;
    rx.recv().map_err(|_| "node stopped".to_string())?
}

impl std::ops::Deref for NodeThread {
    type Target = NodeHandle;

    /// Feed operations work the same from the thread's owner and from other threads.
    fn deref(&self) -> &NodeHandle {
        &self.handle
    }
}

impl NodeHandle {
    /// Make a process's call on `peer`, once connected to it; the answer arrives on `answer`.
    pub fn call_peer(&self, peer: PeerId, call: OutgoingCall, answer: Answer) -> Result<(), String> {
        self.commands.try_send(Command::CallPeer(peer, call, answer)).map_err(|_| "node stopped".to_string())
    }

    /// Append to a feed the node writes. Returns the new length.
    pub fn append(&self, key: &FeedKey, entries: Vec<Vec<u8>>) -> Result<u64, String> {
        ask(&self.commands, |r| Command::Append(*key, entries, r))
    }

    /// The feed's verified length and contiguous length, if the node has it.
    pub fn lengths(&self, key: &FeedKey) -> Result<Option<(u64, u64)>, String> {
        ask(&self.commands, |r| Command::Lengths(*key, r))
    }

    /// One entry, if held.
    pub fn get(&self, key: &FeedKey, index: u64) -> Result<Option<Vec<u8>>, String> {
        ask(&self.commands, |r| Command::Get(*key, index, r))
    }

    /// Tell `notify` of every growth of the feed, until it returns `false`.
    pub fn watch(&self, key: &FeedKey, notify: Notify) -> Result<(), String> {
        ask(&self.commands, |r| Command::Watch(*key, notify, r))
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        let _ = self.handle.commands.send_blocking(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

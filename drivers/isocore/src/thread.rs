//! A node on its own thread, controlled through a handle: how the demo, the tests and the
//! benchmark run several nodes in one process over real sockets.

use crate::node::{Node, NodeConfig};
use async_net::TcpListener;
use isocore_log::FeedKey;
use isocore_proto::EndpointEvent;
use smol::LocalExecutor;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Instant;

type Reply<T> = mpsc::Sender<Result<T, String>>;

enum Command {
    Append(FeedKey, Vec<Vec<u8>>, Reply<u64>),
    Follow(FeedKey, Reply<()>),
    Lengths(FeedKey, Reply<Option<(u64, u64)>>),
    Get(FeedKey, u64, Reply<Option<Vec<u8>>>),
    Stop,
}

/// A node running on its own thread.
pub struct NodeThread {
    commands: async_channel::Sender<Command>,
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
            let forward = ex.spawn(async move {
                while let Ok(e) = subscription.recv().await {
                    if events_tx.send((e, Instant::now())).is_err() {
                        break;
                    }
                }
            });
            let control = {
                let node = node.clone();
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
                            Command::Stop => break,
                        }
                    }
                }
            };
            smol::block_on(ex.run(node.clone().run(ex.clone(), listener, control)));
            drop(forward);
        });
        let addr = ready.recv().map_err(|_| "node thread died".to_string())??;
        Ok(NodeThread { commands, events, addr, thread: Some(thread) })
    }

    fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, String> {
        let (tx, rx) = mpsc::channel();
        self.commands.send_blocking(make(tx)).map_err(|_| "node stopped".to_string())?;
        rx.recv().map_err(|_| "node stopped".to_string())?
    }

    /// Append to a feed the node writes. Returns the new length.
    pub fn append(&self, key: &FeedKey, entries: Vec<Vec<u8>>) -> Result<u64, String> {
        self.ask(|r| Command::Append(*key, entries, r))
    }

    /// Follow a feed.
    pub fn follow(&self, key: &FeedKey) -> Result<(), String> {
        self.ask(|r| Command::Follow(*key, r))
    }

    /// The feed's verified length and contiguous length, if the node has it.
    pub fn lengths(&self, key: &FeedKey) -> Result<Option<(u64, u64)>, String> {
        self.ask(|r| Command::Lengths(*key, r))
    }

    /// One entry, if held.
    pub fn get(&self, key: &FeedKey, index: u64) -> Result<Option<Vec<u8>>, String> {
        self.ask(|r| Command::Get(*key, index, r))
    }

    /// Stop the node and wait for its thread: its database is closed when this returns.
    pub fn stop(mut self) {
        let _ = self.commands.send_blocking(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        let _ = self.commands.send_blocking(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

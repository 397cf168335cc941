//! Apps on a networked node: their feeds are the node's replicated feeds, and the interfaces
//! they export answer calls that arrive over the node's sessions.
//!
//! The component host runs processes on its own threads; the node runs on one thread of its
//! own. A process's feed operations reach the node as commands ([`NodeFeeds`]), and calls
//! from peers reach the host through [`serve_calls`], which checks each against the caller's
//! Invoke capability (bound to the session) before delivering it.

use crate::node::Node;
use crate::thread::NodeHandle;
use isocore_host::channel::{ChannelError, Channels, Notify};
use isocore_host::remote::{CallGate, RemoteCall, failure, method_name};
use isocore_host::{Call, Node as Host, OutgoingCall, Remote, RemoteAnswer, RemoteFailure};
use isocore_log::FeedKey;
use isocore_proto::EndpointEvent;
use isocore_proto::{ConnectionHandle, PeerId, Unsolicited};
use smol::LocalExecutor;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a call may take to be answered.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's feeds, for the host's processes.
pub struct NodeFeeds(pub NodeHandle);

fn failed(e: String) -> ChannelError {
    if e.contains("no such feed") { ChannelError::Unknown } else { ChannelError::Failed(e) }
}

impl Channels for NodeFeeds {
    fn len(&self, feed: &FeedKey) -> Result<u64, ChannelError> {
        self.0.lengths(feed).map_err(failed)?.map(|(_, contiguous)| contiguous).ok_or(ChannelError::Unknown)
    }

    fn read(&self, feed: &FeedKey, index: u64) -> Result<Vec<u8>, ChannelError> {
        match self.0.lengths(feed).map_err(failed)? {
            None => Err(ChannelError::Unknown),
            Some(_) => self.0.get(feed, index).map_err(failed)?.ok_or(ChannelError::Missing),
        }
    }

    fn append(&self, feed: &FeedKey, entries: Vec<Vec<u8>>) -> Result<u64, ChannelError> {
        self.0.append(feed, entries).map_err(failed)
    }

    fn subscribe(&self, feed: &FeedKey, notify: Notify) -> Result<(), ChannelError> {
        self.0.watch(feed, notify).map_err(failed)
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Answers calls from peers with the interfaces `host` exports, as the node whose identity
/// key is `node_key`, until the node stops.
pub async fn serve_calls(node: Rc<Node>, host: Arc<Host>, node_key: [u8; 32], ex: Rc<LocalExecutor<'static>>) {
    let gate = RefCell::new(CallGate::new());
    let events = node.subscribe();
    while let Ok(event) = events.recv().await {
        match event {
            EndpointEvent::Call { connection, id, interface, method, payload } => {
                let Some((peer, hash)) = node.session(connection) else { continue };
                let admitted = gate.borrow_mut().admit(connection.0, &hash, &peer.0, &method, &payload, unix_now());
                let (cap, method, call) = match admitted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::info!(peer = %hex::encode(&peer.0[..8]), %e, "call refused");
                        let (code, reason) = e.failure();
                        node.fail_call(connection, id, code, &reason);
                        continue;
                    }
                };
                let (args, fuel) = (call.args.to_vec(), call.fuel);
                let (node, host) = (node.clone(), host.clone());
                ex.spawn(async move {
                    let call = Call { interface: &interface, method, args: &args, fuel };
                    match host.invoke_async(&node_key, &cap, &call, CALL_TIMEOUT).await {
                        Ok(answer) => node.reply(connection, id, &answer),
                        Err(e) => {
                            let (code, reason) = failure(&e);
                            node.fail_call(connection, id, code, &reason);
                        }
                    }
                })
                .detach();
            }
            EndpointEvent::Closed { connection, .. } => gate.borrow_mut().end_session(connection.0),
            _ => {}
        }
    }
}

/// Processes' calls to other nodes, made over the node's sessions.
pub struct NodeRemote(pub NodeHandle);

impl Remote for NodeRemote {
    fn call(&self, node: [u8; 32], call: OutgoingCall) -> RemoteAnswer {
        let (tx, rx) = async_channel::bounded(1);
        let sent = self.0.call_peer(PeerId(node), call, tx);
        Box::pin(async move {
            sent.map_err(|_| RemoteFailure::Unreachable)?;
            futures_lite::future::or(async { rx.recv().await.unwrap_or(Err(RemoteFailure::Unreachable)) }, async {
                async_io::Timer::after(CALL_TIMEOUT).await;
                Err(RemoteFailure::Timeout)
            })
            .await
        })
    }
}

type Answer = async_channel::Sender<Result<Vec<u8>, RemoteFailure>>;

/// Calls made and not answered yet, and calls waiting for their peer to connect.
#[derive(Default)]
pub struct OutgoingCalls {
    sent: BTreeMap<(ConnectionHandle, u64), Answer>,
    waiting: Vec<(PeerId, OutgoingCall, Answer)>,
}

impl OutgoingCalls {
    /// Make `call` on `peer` now if connected to it, else when it connects.
    pub fn call(&mut self, node: &Node, peer: PeerId, call: OutgoingCall, answer: Answer) {
        let connection = node.connections().into_iter().find(|(_, p)| *p == Some(peer)).map(|(h, _)| h);
        let Some((connection, (_, hash))) = connection.and_then(|h| Some((h, node.session(h)?))) else {
            self.waiting.push((peer, call, answer));
            return;
        };
        let Some(head) =
            isocore_cap::UnverifiedChain::decode(&call.chain).ok().and_then(|c| c.link_ids().last().copied())
        else {
            let _ = answer.try_send(Err(RemoteFailure::Refused(0, "the capability held does not decode".into())));
            return;
        };
        let proof = isocore_cap::prove_possession(node.signing_key(), &hash, &head);
        let payload = RemoteCall { chain: &call.chain, proof, fuel: call.fuel, args: &call.args }.encode();
        match node.call(connection, call.interface, &method_name(call.method), &payload) {
            Some(id) => {
                self.sent.insert((connection, id), answer);
            }
            None => {
                let _ = answer.try_send(Err(RemoteFailure::Unreachable));
            }
        }
    }

    /// Settle calls with what the endpoint reports.
    pub fn on_event(&mut self, node: &Node, event: &EndpointEvent) {
        let settle = |sent: &mut BTreeMap<_, Answer>, key, result| {
            if let Some(answer) = sent.remove(&key) {
                let _ = answer.try_send(result);
            }
        };
        match event {
            EndpointEvent::Reply { connection, id, payload } => {
                settle(&mut self.sent, (*connection, *id), Ok(payload.to_vec()))
            }
            EndpointEvent::CallFailed { connection, id, code, reason } => {
                settle(&mut self.sent, (*connection, *id), Err(RemoteFailure::Refused(*code, reason.clone())))
            }
            EndpointEvent::NotAdmitted { connection, of: Unsolicited::Call(id), .. } => settle(
                &mut self.sent,
                (*connection, *id),
                Err(RemoteFailure::Refused(0, "not admitted: the node is too busy".into())),
            ),
            EndpointEvent::Closed { connection, .. } => {
                let gone: Vec<_> =
                    self.sent.range((*connection, 0)..=(*connection, u64::MAX)).map(|(k, _)| *k).collect();
                for key in gone {
                    settle(&mut self.sent, key, Err(RemoteFailure::Unreachable));
                }
            }
            EndpointEvent::Connected { peer, .. } => {
                let (now, later): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut self.waiting).into_iter().partition(|(p, _, _)| p == peer);
                self.waiting = later;
                for (peer, call, answer) in now {
                    self.call(node, peer, call, answer);
                }
            }
            _ => {}
        }
        // Callers that gave up (timed out) need no answer.
        self.waiting.retain(|(_, _, answer)| !answer.is_closed());
    }
}

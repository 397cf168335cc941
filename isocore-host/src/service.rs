//! Interfaces that processes export, and calls into them by Invoke capability.
//!
//! A process exports an interface by having the node route calls to it. A call reaches the
//! process as a message with tag [`CALL_TAG`] + the method's index, the arguments as the body,
//! and a reply handle; the first message sent back on that handle is the result. The caller
//! presents an Invoke capability (`spec/cap.md`) rooted at this node's key and covering the
//! component, interface, method and fuel; without one nothing is delivered. This is the part
//! of a remote call that runs on the executing node, whatever carried the call there.

use crate::app::Request;
use crate::bindings::isocore::service::service as wit;
use crate::node::{App, Node, ProcState};
use crate::process::Pid;
use isocore_cap::{Access, Capability, Refused, Root, UnverifiedChain, interface_id};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Tags at or above this carry calls: `CALL_TAG + method`.
pub const CALL_TAG: u64 = 1 << 32;

/// Why a call was not answered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No process exports the interface here.
    #[error("no process exports that interface here")]
    NoSuchInterface,
    /// The capability is not rooted at this node.
    #[error("the capability is for another node")]
    WrongNode,
    /// The capability does not cover the call.
    #[error("not authorised: {0}")]
    Denied(Refused),
    /// The exporting process's mailbox is full or it has exited.
    #[error("the exporting process cannot take the call")]
    Unavailable,
    /// No answer within the timeout.
    #[error("no answer in time")]
    Timeout,
}

/// One call: which method of which interface, its arguments, and the fuel it may spend.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The interface id ([`isocore_cap::interface_id`]).
    pub interface: &'a [u8; 32],
    /// The method's index in the interface.
    pub method: u8,
    /// The arguments.
    pub args: &'a [u8],
    /// Fuel the call may spend.
    pub fuel: u64,
}

impl Node {
    /// Routes calls of `interface` to `pid`, a process of `app`. A later export of the same
    /// interface replaces it.
    pub fn export(&self, interface: [u8; 32], app: &App, pid: Pid) {
        self.exports().lock().expect("exports").insert(interface, (app.clone(), pid));
    }

    /// Stops routing calls of `interface`.
    pub fn unexport(&self, interface: &[u8; 32]) {
        self.exports().lock().expect("exports").remove(interface);
    }

    /// Makes `call` as the holder of `cap` (already verified, and proven to belong to the
    /// caller) on this node, whose key is `node_key`; waits up to `timeout` for the result.
    pub fn invoke(
        &self,
        node_key: &[u8; 32],
        cap: &Capability,
        call: &Call<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        smol::block_on(self.invoke_async(node_key, cap, call, timeout))
    }

    /// [`invoke`](Self::invoke) without blocking the caller's thread: for a driver that runs
    /// sessions on an executor.
    pub async fn invoke_async(
        &self,
        node_key: &[u8; 32],
        cap: &Capability,
        call: &Call<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let Call { interface, method, args, fuel } = *call;
        if *cap.root() != Root::Node(*node_key) {
            return Err(CallError::WrongNode);
        }
        let (app, pid) =
            self.exports().lock().expect("exports").get(interface).cloned().ok_or(CallError::NoSuchInterface)?;
        let access = Access::Invoke { component: app.digest(), interface, method, fuel };
        cap.permits(&access).map_err(CallError::Denied)?;
        let inbox = self.inbox(1);
        self.send(pid, CALL_TAG + u64::from(method), args, Some(inbox.pid())).map_err(|_| CallError::Unavailable)?;
        inbox.recv_async(Some(timeout)).await.map(|r| r.body).ok_or(CallError::Timeout)
    }
}

/// A call a process makes to another node, as handed to the embedder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingCall {
    /// The interface id.
    pub interface: [u8; 32],
    /// The method.
    pub method: u8,
    /// The arguments.
    pub args: Vec<u8>,
    /// Fuel the call may spend.
    pub fuel: u64,
    /// The Invoke capability the other node issued to this one.
    pub chain: Vec<u8>,
}

/// Why a call to another node failed, as the embedder reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteFailure {
    /// Not connected to that node, or the connection ended.
    #[error("the node cannot be reached")]
    Unreachable,
    /// The node refused the call, with its code and reason.
    #[error("refused (code {0}): {1}")]
    Refused(u16, String),
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
}

/// The answer to an [`OutgoingCall`], when it comes.
pub type RemoteAnswer = Pin<Box<dyn Future<Output = Result<Vec<u8>, RemoteFailure>> + Send>>;

/// How processes reach other nodes: the embedder carries the call over a session and proves
/// possession of the capability with the node's key (`spec/host.md` §9.6).
pub trait Remote: Send + Sync + 'static {
    /// Makes `call` on the node whose key is `node`.
    fn call(&self, node: [u8; 32], call: OutgoingCall) -> RemoteAnswer;
}

/// The capability among `chains` for calls to `node`: the first rooted there. (The other
/// node checks that it covers the call.)
fn chain_for(chains: &[Vec<u8>], node: &[u8; 32]) -> Option<Vec<u8>> {
    chains.iter().find(|c| UnverifiedChain::decode(c).is_ok_and(|u| *u.root() == Root::Node(*node))).cloned()
}

impl wit::Host for ProcState {
    fn export(&mut self, interface: String) -> wasmtime::Result<Result<(), wit::Error>> {
        if !self.app().exports().contains(&interface) {
            return Ok(Err(wit::Error::Denied));
        }
        self.export_here(interface_id(&interface));
        Ok(Ok(()))
    }

    async fn call(
        &mut self,
        node: Vec<u8>,
        interface: String,
        method: u8,
        args: Vec<u8>,
        fuel: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, wit::Error>> {
        let Ok(node) = <[u8; 32]>::try_from(node) else { return Ok(Err(wit::Error::Invalid)) };
        let app = self.app();
        let granted = app
            .grants()
            .iter()
            .any(|g| matches!(g, Request::Invoke { node: n, interface: i, .. } if *n == node && *i == interface));
        let Some(chain) = granted.then(|| chain_for(&app.capabilities(), &node)).flatten() else {
            return Ok(Err(wit::Error::Denied));
        };
        let Some(remote) = self.remote() else { return Ok(Err(wit::Error::Unreachable)) };
        let call = OutgoingCall { interface: interface_id(&interface), method, args, fuel, chain };
        Ok(remote.call(node, call).await.map_err(|e| match e {
            RemoteFailure::Unreachable => wit::Error::Unreachable,
            RemoteFailure::Refused(code, reason) => {
                tracing::info!(code, %reason, "call refused by the other node");
                wit::Error::Refused
            }
            RemoteFailure::Timeout => wit::Error::Timeout,
        }))
    }
}

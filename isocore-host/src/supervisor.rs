//! Host-native supervisors with OTP's strategies and restart intensity.
//!
//! A supervisor starts its children in order and watches them. When one exits abnormally it
//! restarts it (`OneForOne`), all children (`OneForAll`), or it and those started after it
//! (`RestForOne`). More than `intensity` restarts within `period` means something is
//! persistently wrong: the supervisor stops every child and gives up, and whoever watches
//! it decides what to do next.

use crate::HostError;
use crate::node::{App, Monitor, Node};
use crate::process::{ExitReason, Pid};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to restart when a child fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the failed child.
    OneForOne,
    /// Every child.
    OneForAll,
    /// The failed child and every child started after it.
    RestForOne,
}

/// One child: the component and its `init` argument.
#[derive(Clone)]
pub struct ChildSpec {
    /// The component to run.
    pub app: App,
    /// Its `init` argument.
    pub init: Vec<u8>,
}

/// A supervisor's children and policy.
#[derive(Clone)]
pub struct SupervisorSpec {
    /// The restart strategy.
    pub strategy: Strategy,
    /// Restarts allowed within `period` before giving up.
    pub intensity: u32,
    /// The window restarts are counted in.
    pub period: Duration,
    /// Children, in start order.
    pub children: Vec<ChildSpec>,
}

struct State {
    pids: Vec<Option<Pid>>,
    restarts: u64,
}

/// A running supervisor.
pub struct Supervisor {
    state: Arc<Mutex<State>>,
    done: async_channel::Receiver<String>,
}

impl Supervisor {
    /// Starts the children in order and supervises them on the node's executor.
    pub fn start(node: &Node, spec: SupervisorSpec) -> Result<Supervisor, HostError> {
        let (events_tx, events_rx) = async_channel::unbounded::<(usize, u64, ExitReason)>();
        let state = Arc::new(Mutex::new(State { pids: vec![None; spec.children.len()], restarts: 0 }));
        let mut generations = vec![0u64; spec.children.len()];
        let restart = Restarter {
            node: node.handle(),
            children: spec.children.iter().map(|c| (c.app.clone(), c.init.clone())).collect(),
            events: events_tx,
        };
        for i in 0..spec.children.len() {
            let pid = restart.start(i, 0)?;
            state.lock().expect("supervisor").pids[i] = Some(pid);
        }
        let (done_tx, done) = async_channel::bounded(1);
        let shared = state.clone();
        node.executor()
            .spawn(async move {
                let mut recent: VecDeque<Instant> = VecDeque::new();
                while let Ok((i, generation, reason)) = events_rx.recv().await {
                    if generation != generations[i] || !reason.is_abnormal() {
                        // A stale notice (a child already replaced), or a normal exit.
                        if generation == generations[i] {
                            shared.lock().expect("supervisor").pids[i] = None;
                        }
                        continue;
                    }
                    let now = Instant::now();
                    recent.push_back(now);
                    while recent.front().is_some_and(|t| now.duration_since(*t) > spec.period) {
                        recent.pop_front();
                    }
                    let affected: Vec<usize> = match spec.strategy {
                        Strategy::OneForOne => vec![i],
                        Strategy::OneForAll => (0..generations.len()).collect(),
                        Strategy::RestForOne => (i..generations.len()).collect(),
                    };
                    let mut st = shared.lock().expect("supervisor");
                    if recent.len() > spec.intensity as usize {
                        for pid in st.pids.iter_mut().filter_map(Option::take) {
                            restart.kill(pid);
                        }
                        let why = format!(
                            "child {i} exited ({reason}) more than {} times in {:?}",
                            spec.intensity, spec.period
                        );
                        let _ = done_tx.try_send(why);
                        return;
                    }
                    // Stop the affected siblings first (newest first, as OTP does), then
                    // start them again in order.
                    for &j in affected.iter().rev() {
                        generations[j] += 1;
                        if let Some(pid) = st.pids[j].take()
                            && j != i
                        {
                            restart.kill(pid);
                        }
                    }
                    for &j in &affected {
                        st.pids[j] = restart.start(j, generations[j]).ok();
                    }
                    st.restarts += 1;
                }
            })
            .detach();
        Ok(Supervisor { state, done })
    }

    /// The children's pids, in order (`None` for one not running).
    pub fn children(&self) -> Vec<Option<Pid>> {
        self.state.lock().expect("supervisor").pids.clone()
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.state.lock().expect("supervisor").restarts
    }

    /// Waits until the supervisor gives up, up to `timeout`; returns why.
    pub fn wait(&self, timeout: Duration) -> Option<String> {
        smol::block_on(futures_lite::future::or(async { self.done.recv().await.ok() }, async {
            smol::Timer::after(timeout).await;
            None
        }))
    }
}

async fn forward(monitor: Monitor, tx: async_channel::Sender<(usize, u64, ExitReason)>, i: usize, generation: u64) {
    let reason = monitor.exited().await;
    let _ = tx.send((i, generation, reason)).await;
}

/// What a supervisor's loop needs from the node: start a child (with its exit forwarded)
/// and kill one.
pub(crate) struct Restarter {
    pub(crate) node: crate::node::NodeRef,
    pub(crate) children: Vec<(App, Vec<u8>)>,
    pub(crate) events: async_channel::Sender<(usize, u64, ExitReason)>,
}

impl Restarter {
    fn start(&self, i: usize, generation: u64) -> Result<Pid, HostError> {
        let (app, init) = &self.children[i];
        let (pid, monitor) = self.node.spawn_monitored(app, init)?;
        self.node.spawn_task(forward(monitor, self.events.clone(), i, generation));
        Ok(pid)
    }

    fn kill(&self, pid: Pid) {
        self.node.kill(pid);
    }
}

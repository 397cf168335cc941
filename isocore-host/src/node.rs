//! The node: one wasmtime `Engine`, an executor, and the table of live processes.
//!
//! A process is one component instance in its own `Store`, run as a smol task. It is
//! called once with `init`, then once per signal with `handle`; between calls it holds no
//! stack. A trap ends only its own store, so it ends only that process; links, monitors and
//! supervisors decide what happens next.

use crate::app::Request;
use crate::channel::Channels;
use crate::config::{NodeConfig, check_density};
use crate::mailbox::{Item, Mailbox, SendError};
use crate::process::{ExitReason, Limits, Pid};
use crate::service::Remote;
use crate::{HostError, bindings};
use futures_lite::FutureExt;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::component::{
    Component, ComponentExportIndex, Func, HasSelf, InstancePre, Linker, Resource, ResourceTable, TypedFunc,
};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, UpdateDeadline,
};

/// The only interfaces a component may import.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "isocore:process/process@0.1.0",
    "isocore:process/log@0.1.0",
    "isocore:process/clock@0.1.0",
    "isocore:process/random@0.1.0",
    "isocore:channel/channel@0.1.0",
    "isocore:service/service@0.1.0",
];

/// A handle to a process, as a guest holds it.
#[derive(Clone)]
pub struct ProcessRef {
    pid: Pid,
    /// Link, monitor and kill rights (a handle from `spawn`); otherwise send only.
    full: bool,
    /// Held so that a send takes no node-wide lock; closed when the process exits.
    mailbox: Arc<Mailbox>,
}

/// How a kill is requested and why.
#[derive(Default)]
struct KillSwitch {
    flag: AtomicBool,
    reason: Mutex<Option<ExitReason>>,
}

impl KillSwitch {
    fn pull(&self, reason: ExitReason) {
        let mut r = self.reason.lock().expect("kill lock");
        if r.is_none() {
            *r = Some(reason);
        }
        self.flag.store(true, Ordering::Release);
    }
    fn pulled(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
    fn reason(&self) -> ExitReason {
        self.reason.lock().expect("kill lock").clone().unwrap_or(ExitReason::Killed)
    }
}

enum Watcher {
    Process(Pid),
    Host(async_channel::Sender<(ExitReason, Instant)>),
}

struct Entry {
    mailbox: Arc<Mailbox>,
    kill: Arc<KillSwitch>,
    trap_exits: bool,
    links: HashSet<Pid>,
    /// Who is told when this process exits.
    watchers: Vec<(u64, Watcher)>,
}

/// An app's component, ready to instantiate, with its two exports found and type-checked once.
struct ActorPre {
    pre: InstancePre<ProcState>,
    init: ComponentExportIndex,
    handle: ComponentExportIndex,
}

/// One process's instance: its exports, called without checking their types again.
struct Actor {
    init: Func,
    handle: Func,
}

impl ActorPre {
    fn new(pre: InstancePre<ProcState>) -> Result<Self, HostError> {
        // The generated bindings check both exports against the `actor` world here.
        bindings::ActorPre::new(pre.clone()).map_err(|e| HostError::WrongWorld(format!("{e:#}")))?;
        let index = |name: &str| {
            pre.component()
                .get_export_index(None, name)
                .ok_or_else(|| HostError::WrongWorld(format!("no export `{name}`")))
        };
        Ok(ActorPre { init: index("init")?, handle: index("handle")?, pre })
    }

    async fn instantiate(&self, store: &mut Store<ProcState>) -> wasmtime::Result<Actor> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let func = |store: &mut Store<ProcState>, index| {
            instance.get_func(store, index).ok_or_else(|| wasmtime::format_err!("an export is missing"))
        };
        Ok(Actor { init: func(store, &self.init)?, handle: func(store, &self.handle)? })
    }
}

impl Actor {
    async fn init(&self, store: &mut Store<ProcState>, args: &[u8]) -> wasmtime::Result<Result<(), String>> {
        // SAFETY: `ActorPre::new` checked this export's type against exactly this signature.
        let f = unsafe { TypedFunc::<(&[u8],), (Result<(), String>,)>::new_unchecked(self.init) };
        Ok(f.call_async(store, (args,)).await?.0)
    }

    async fn handle(&self, store: &mut Store<ProcState>, signal: &wit::Signal) -> wasmtime::Result<()> {
        // SAFETY: as for `init`.
        let f = unsafe { TypedFunc::<(&wit::Signal,), ()>::new_unchecked(self.handle) };
        f.call_async(store, (signal,)).await
    }
}

/// The memory one app's processes may use together.
#[derive(Debug)]
struct AppBudget {
    used: AtomicUsize,
    max: usize,
}

struct AppInner {
    pre: ActorPre,
    digest: [u8; 32],
    imports: Vec<String>,
    budget: AppBudget,
    /// What the user granted the app at install.
    grants: Mutex<Arc<[Request]>>,
    /// Interfaces its release declares it exports.
    exports: Mutex<Arc<[String]>>,
    /// Invoke capabilities other nodes issued to this one for the app's calls.
    capabilities: Mutex<Arc<[Vec<u8>]>>,
}

/// A loaded component: validated, compiled, its imports checked, ready to spawn.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

impl App {
    /// BLAKE3 of the component's bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.inner.digest
    }

    /// The interfaces the component imports.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// The capabilities the user granted the app (none until [`App::set_grants`]).
    pub fn grants(&self) -> Arc<[Request]> {
        self.inner.grants.lock().expect("grants").clone()
    }

    /// Records what the user granted; processes see it at their next `open`.
    pub fn set_grants(&self, grants: Vec<Request>) {
        *self.inner.grants.lock().expect("grants") = grants.into();
    }

    /// The interfaces the app's processes may export (its release's list).
    pub fn exports(&self) -> Arc<[String]> {
        self.inner.exports.lock().expect("exports").clone()
    }

    /// Records the interfaces the app's release declares.
    pub fn set_exports(&self, exports: Vec<String>) {
        *self.inner.exports.lock().expect("exports") = exports.into();
    }

    /// The Invoke capabilities the app's calls may present.
    pub fn capabilities(&self) -> Arc<[Vec<u8>]> {
        self.inner.capabilities.lock().expect("capabilities").clone()
    }

    /// Records the Invoke capabilities other nodes issued to this one for the app.
    pub fn set_capabilities(&self, chains: Vec<Vec<u8>>) {
        *self.inner.capabilities.lock().expect("capabilities") = chains.into();
    }

    /// Bytes of linear memory this app's processes hold now.
    pub fn memory_in_use(&self) -> usize {
        self.inner.budget.used.load(Ordering::Relaxed)
    }
}

/// Charges memory growth to the process's limit and to its app's budget.
struct Limiter {
    memory: usize,
    held: usize,
    app: Arc<AppInner>,
    /// A growth was refused (so a failed instantiation was a memory limit).
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.refused = true;
            return Ok(false);
        }
        let delta = desired.saturating_sub(current);
        let budget = &self.app.budget;
        if budget.used.fetch_add(delta, Ordering::AcqRel) + delta > budget.max {
            budget.used.fetch_sub(delta, Ordering::AcqRel);
            self.refused = true;
            return Ok(false);
        }
        self.held += delta;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000)
    }
}

impl Limiter {
    /// Gives the process's memory back to its app's budget.
    fn release(&mut self) {
        self.app.budget.used.fetch_sub(core::mem::take(&mut self.held), Ordering::AcqRel);
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.release();
    }
}

/// What a process's store holds.
pub struct ProcState {
    pid: Pid,
    node: Arc<Shared>,
    table: ResourceTable,
    limiter: Limiter,
    kill: Arc<KillSwitch>,
    mailbox: Arc<Mailbox>,
    app: App,
    random_counter: u64,
    /// Feed subscriptions made ([`crate::channel::MAX_SUBSCRIPTIONS`] at most).
    pub(crate) subscriptions: usize,
}

struct Shared {
    engine: Engine,
    linker: Linker<ProcState>,
    config: NodeConfig,
    executor: smol::Executor<'static>,
    registry: Mutex<HashMap<Pid, Entry>>,
    started: Instant,
    seed: [u8; 32],
    next_pid: AtomicU64,
    next_ref: AtomicU64,
    stop: AtomicBool,
    stopped: event_listener::Event,
    /// Processes alive (host inboxes not counted).
    live: AtomicUsize,
    /// Exported interfaces: the process that answers each.
    exports: Mutex<HashMap<[u8; 32], (App, Pid)>>,
    cache: Option<PathBuf>,
    channels: OnceLock<Arc<dyn Channels>>,
    remote: OnceLock<Arc<dyn Remote>>,
}

/// A running node. Dropping it stops every process.
pub struct Node {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A host-side mailbox with a pid, so that processes can be given a reply handle to the
/// host (tests, the node's own services).
pub struct Inbox {
    pid: Pid,
    mailbox: Arc<Mailbox>,
    shared: Arc<Shared>,
}

/// A message as the host receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The tag.
    pub tag: u64,
    /// The body.
    pub body: Vec<u8>,
    /// The sending process, if any.
    pub from: Option<Pid>,
}

impl Inbox {
    /// The inbox's pid, to attach as a reply handle.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The next message, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Received> {
        smol::block_on(self.recv_async(Some(timeout)))
    }

    /// The next message, waiting up to `timeout` (or for ever).
    pub async fn recv_async(&self, timeout: Option<Duration>) -> Option<Received> {
        match self.mailbox.receive(None, timeout, || false).await? {
            Item::Message { tag, body, from } => Some(Received { tag, body, from: from.map(|(pid, _)| pid) }),
            _ => None,
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.mailbox.close();
        self.shared.registry.lock().expect("registry").remove(&self.pid);
    }
}

/// Resolves when a monitored process exits.
pub struct Monitor {
    rx: async_channel::Receiver<(ExitReason, Instant)>,
}

impl Monitor {
    /// Waits for the exit.
    pub async fn exited(&self) -> ExitReason {
        self.exited_at().await.0
    }

    /// Waits for the exit; also returns when the node recorded it (links and monitors told,
    /// the process's memory given back to its app), which can be well before a parked
    /// waiter is scheduled again.
    pub async fn exited_at(&self) -> (ExitReason, Instant) {
        self.rx.recv().await.unwrap_or_else(|_| (ExitReason::Crashed("node stopped".into()), Instant::now()))
    }

    /// Waits for the exit, up to `timeout`.
    pub fn wait(&self, timeout: Duration) -> Option<ExitReason> {
        self.wait_at(timeout).map(|(reason, _)| reason)
    }

    /// Waits for the exit, up to `timeout`, as [`Monitor::exited_at`].
    pub fn wait_at(&self, timeout: Duration) -> Option<(ExitReason, Instant)> {
        smol::block_on(async {
            futures_lite::future::or(async { Some(self.exited_at().await) }, async {
                smol::Timer::after(timeout).await;
                None
            })
            .await
        })
    }
}

fn engine_config(config: &NodeConfig) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    // Calls are about 4 times cheaper without the structures for component-model async.
    c.concurrency_support(false);
    c.epoch_interruption(true);
    // A guest's data is a few KiB: copied into a fresh slot it costs less than mapping an
    // image, and leaves one memory map fewer per process.
    c.memory_init_cow(false);
    c.max_wasm_stack(config.max_wasm_stack);
    c.async_stack_size(config.max_wasm_stack + (64 << 10));
    // Small reservations with explicit bounds checks: 4 GiB per memory would not fit
    // 100 000 processes in a 47-bit address space.
    let memory = config.limits.memory.next_multiple_of(64 << 10);
    c.memory_reservation(memory as u64).memory_guard_size(64 << 10).memory_reservation_for_growth(0);
    // A slot per process, and one per executor thread: an exited process is reported before
    // its slot is reset, and each thread may be resetting one.
    let n = config.max_processes.saturating_add(config.threads.max(1) as u32);
    let mut p = PoolingAllocationConfig::new();
    p.total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n)
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_memory_size(memory)
        .max_component_instance_size(64 << 10)
        .max_core_instance_size(64 << 10)
        .max_tables_per_module(2)
        .max_memories_per_module(1)
        .table_elements(4096)
        // A slot given back is reset in place (only its resident pages, found with the
        // kernel's page map where it has one) rather than handed back to the kernel, whose
        // page faults on reuse cost more than a small memset; what is handed back goes in
        // batches.
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(32 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .decommit_batch_size(32);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    c
}

/// The seed of the node's random stream, from the operating system.
fn os_seed() -> [u8; 32] {
    use std::io::Read;
    let mut seed = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
    if read.is_err() {
        // No device: fall back to the clock, which is unpredictable enough for guests'
        // non-cryptographic needs; the stream is still unique per node start.
        seed = *blake3::hash(format!("{:?}", std::time::SystemTime::now()).as_bytes()).as_bytes();
    }
    seed
}

impl Node {
    /// Starts a node: checks that the machine can hold `config.max_processes`, reserves their
    /// slots, and starts the executor threads and the preemption tick.
    pub fn new(config: NodeConfig) -> Result<Node, HostError> {
        Self::with_cache(config, None)
    }

    /// Like [`new`](Self::new), keeping compiled components in `cache` (a node-private
    /// directory: artifacts are only ever loaded from there, never from the network).
    pub fn with_cache(config: NodeConfig, cache: Option<PathBuf>) -> Result<Node, HostError> {
        check_density(config.max_processes, None)?;
        let engine = Engine::new(&engine_config(&config)).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        bindings::Actor::add_to_linker::<ProcState, HasSelf<ProcState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let shared = Arc::new(Shared {
            engine,
            linker,
            config: config.clone(),
            executor: smol::Executor::new(),
            registry: Mutex::new(HashMap::new()),
            started: Instant::now(),
            seed: os_seed(),
            next_pid: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            stopped: event_listener::Event::new(),
            live: AtomicUsize::new(0),
            exports: Mutex::new(HashMap::new()),
            cache,
            channels: OnceLock::new(),
            remote: OnceLock::new(),
        });
        let mut threads = Vec::new();
        for i in 0..config.threads.max(1) {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("isocore-host-{i}"))
                    .spawn(move || {
                        smol::block_on(s.executor.run(async {
                            while !s.stop.load(Ordering::Acquire) {
                                let l = s.stopped.listen();
                                if s.stop.load(Ordering::Acquire) {
                                    break;
                                }
                                l.await;
                            }
                        }))
                    })
                    .map_err(|e| HostError::Engine(e.to_string()))?,
            );
        }
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("isocore-host-tick".into())
                .spawn(move || {
                    while !s.stop.load(Ordering::Acquire) {
                        std::thread::sleep(s.config.tick);
                        s.engine.increment_epoch();
                    }
                })
                .map_err(|e| HostError::Engine(e.to_string()))?,
        );
        Ok(Node { shared, threads })
    }

    /// Validates and compiles a component, checks that it imports only `isocore:*`
    /// interfaces ([`ALLOWED_IMPORTS`]) and exports the actor world, and prepares it for
    /// spawning. With a cache directory, a compiled artifact made earlier by this node is
    /// reused.
    pub fn load(&self, bytes: &[u8]) -> Result<App, HostError> {
        if !bytes.starts_with(b"\0asm") && std::str::from_utf8(bytes).is_err() {
            return Err(HostError::Invalid("not a WebAssembly component".into()));
        }
        let digest: [u8; 32] = blake3::hash(bytes).into();
        let engine = &self.shared.engine;
        let component = self.compile(&digest, bytes)?;
        let mut imports = Vec::new();
        for (name, _) in component.component_type().imports(engine) {
            if !ALLOWED_IMPORTS.contains(&name) {
                return Err(HostError::UnknownImport(name.to_string()));
            }
            imports.push(name.to_string());
        }
        let pre = self.shared.linker.instantiate_pre(&component).map_err(|e| HostError::Invalid(format!("{e:#}")))?;
        let pre = ActorPre::new(pre)?;
        let max = self.shared.config.app_memory;
        Ok(App {
            inner: Arc::new(AppInner {
                pre,
                digest,
                imports,
                budget: AppBudget { used: AtomicUsize::new(0), max },
                grants: Mutex::new(Arc::from(Vec::new())),
                exports: Mutex::new(Arc::from(Vec::new())),
                capabilities: Mutex::new(Arc::from(Vec::new())),
            }),
        })
    }

    fn compile(&self, digest: &[u8; 32], bytes: &[u8]) -> Result<Component, HostError> {
        let engine = &self.shared.engine;
        let invalid = |e: wasmtime::Error| HostError::Invalid(format!("{e:#}"));
        let Some(dir) = &self.shared.cache else { return Component::new(engine, bytes).map_err(invalid) };
        // The key covers the engine's configuration and version, so an artifact is only
        // reused by an engine that made it.
        let compat = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        };
        let mut key = blake3::Hasher::new();
        key.update(digest).update(&compat.to_le_bytes());
        let path = dir.join(format!("{}.cwasm", key.finalize().to_hex()));
        if path.exists() {
            // SAFETY: the file was written by this node's own `serialize` below, into a
            // directory only the node writes; artifacts from elsewhere are never loaded.
            if let Ok(c) = unsafe { Component::deserialize_file(engine, &path) } {
                return Ok(c);
            }
        }
        let component = Component::new(engine, bytes).map_err(invalid)?;
        if let Ok(artifact) = component.serialize() {
            let _ = std::fs::create_dir_all(dir);
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, artifact).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        Ok(component)
    }

    /// Gives processes the feeds behind `channels` (once; later calls are refused).
    pub fn set_channels(&self, channels: Arc<dyn Channels>) -> Result<(), HostError> {
        self.shared.channels.set(channels).map_err(|_| HostError::Limit("channels are already set"))
    }

    /// Lets processes call other nodes through `remote` (once; later calls are refused).
    pub fn set_remote(&self, remote: Arc<dyn Remote>) -> Result<(), HostError> {
        self.shared.remote.set(remote).map_err(|_| HostError::Limit("the remote is already set"))
    }

    /// Spawns a process of `app` with the node's default limits.
    pub fn spawn(&self, app: &App, init: &[u8]) -> Result<Pid, HostError> {
        spawn(&self.shared, app, init, self.shared.config.limits, None, None)
    }

    /// The limits a process gets unless told otherwise.
    pub fn default_limits(&self) -> Limits {
        self.shared.config.limits
    }

    /// Spawns a process with these limits.
    pub fn spawn_with(&self, app: &App, init: &[u8], limits: Limits) -> Result<Pid, HostError> {
        spawn(&self.shared, app, init, limits, None, None)
    }

    /// Spawns a process and a monitor that resolves when it exits (registered before it runs,
    /// so no exit is missed).
    pub fn spawn_monitored(&self, app: &App, init: &[u8], limits: Option<Limits>) -> Result<(Pid, Monitor), HostError> {
        spawn_monitored(&self.shared, app, init, limits.unwrap_or(self.shared.config.limits))
    }

    /// A monitor on a live process, or `None` if it has exited.
    pub fn monitor(&self, pid: Pid) -> Option<Monitor> {
        let (tx, rx) = async_channel::bounded(1);
        let reference = self.shared.next_ref.fetch_add(1, Ordering::Relaxed);
        let mut reg = self.shared.registry.lock().expect("registry");
        reg.get_mut(&pid)?.watchers.push((reference, Watcher::Host(tx)));
        Some(Monitor { rx })
    }

    /// Sends a message from the host, optionally with a reply handle to `reply`.
    pub fn send(&self, to: Pid, tag: u64, body: &[u8], reply: Option<Pid>) -> Result<(), SendError> {
        let (mailbox, from) = {
            let reg = self.shared.registry.lock().expect("registry");
            let mailbox_of = |pid: &Pid| reg.get(pid).map(|e| e.mailbox.clone());
            (mailbox_of(&to), reply.map(|pid| (pid, mailbox_of(&pid).unwrap_or_else(closed_mailbox))))
        };
        mailbox.ok_or(SendError::Gone)?.send(tag, body.to_vec(), from)
    }

    /// A host inbox with its own pid.
    pub fn inbox(&self, max_messages: usize) -> Inbox {
        let pid = self.shared.next_pid.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Mailbox::new(max_messages, usize::MAX));
        let entry = Entry {
            mailbox: mailbox.clone(),
            kill: Arc::default(),
            trap_exits: true,
            links: HashSet::new(),
            watchers: Vec::new(),
        };
        self.shared.registry.lock().expect("registry").insert(pid, entry);
        Inbox { pid, mailbox, shared: self.shared.clone() }
    }

    /// Kills a process. Returns whether it was alive.
    pub fn kill(&self, pid: Pid) -> bool {
        kill(&self.shared, pid, ExitReason::Killed)
    }

    /// Processes alive now.
    pub fn processes(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Messages waiting in a process's mailbox.
    pub fn queued(&self, pid: Pid) -> Option<usize> {
        self.shared.registry.lock().expect("registry").get(&pid).map(|e| e.mailbox.len())
    }

    /// Runs a future on the node's executor and waits for it.
    pub fn run<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        smol::block_on(self.shared.executor.spawn(f))
    }

    pub(crate) fn executor(&self) -> &smol::Executor<'static> {
        &self.shared.executor
    }

    /// Benchmark support: `n` times, a new store and an instance of `app`, dropped at once.
    #[doc(hidden)]
    pub fn bench_instantiate(&self, app: &App, n: u32) -> Duration {
        let t = Instant::now();
        for _ in 0..n {
            let mut store = self.bench_store(app);
            let actor = smol::block_on(app.inner.pre.instantiate(&mut store)).expect("instantiate");
            drop((actor, store));
        }
        t.elapsed()
    }

    /// Benchmark support: `n` instantiated stores, held (no task, no mailbox) until the
    /// returned value is dropped, to tell the instance's memory from the process's.
    #[doc(hidden)]
    pub fn bench_hold(&self, app: &App, n: u32) -> Box<dyn std::any::Any> {
        let held: Vec<_> = (0..n)
            .map(|_| {
                let mut store = self.bench_store(app);
                let actor = smol::block_on(app.inner.pre.instantiate(&mut store)).expect("instantiate");
                (store, actor)
            })
            .collect();
        Box::new(held)
    }

    /// Benchmark support: `n` host→guest calls of `handle` on one instance.
    #[doc(hidden)]
    pub fn bench_calls(&self, app: &App, n: u32) -> Duration {
        let mut store = self.bench_store(app);
        smol::block_on(async {
            let actor = app.inner.pre.instantiate(&mut store).await.expect("instantiate");
            actor.init(&mut store, &[]).await.expect("init").expect("init ok");
            let signal = wit::Signal::Timeout;
            let t = Instant::now();
            for _ in 0..n {
                actor.handle(&mut store, &signal).await.expect("handle");
            }
            t.elapsed()
        })
    }

    fn bench_store(&self, app: &App) -> Store<ProcState> {
        new_store(&self.shared, app, 0, self.shared.config.limits)
    }

    pub(crate) fn exports(&self) -> &Mutex<HashMap<[u8; 32], (App, Pid)>> {
        &self.shared.exports
    }

    pub(crate) fn handle(&self) -> NodeRef {
        NodeRef(self.shared.clone())
    }
}

/// The node's internals, for tasks that outlive a borrow of the [`Node`].
pub(crate) struct NodeRef(Arc<Shared>);

impl NodeRef {
    pub(crate) fn spawn_monitored(&self, app: &App, init: &[u8]) -> Result<(Pid, Monitor), HostError> {
        spawn_monitored(&self.0, app, init, self.0.config.limits)
    }

    pub(crate) fn spawn_task(&self, f: impl Future<Output = ()> + Send + 'static) {
        self.0.executor.spawn(f).detach();
    }

    pub(crate) fn kill(&self, pid: Pid) -> bool {
        kill(&self.0, pid, ExitReason::Killed)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.stopped.notify(usize::MAX);
        let pids: Vec<Pid> = self.shared.registry.lock().expect("registry").keys().copied().collect();
        for pid in pids {
            kill(&self.shared, pid, ExitReason::Killed);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn_monitored(shared: &Arc<Shared>, app: &App, init: &[u8], limits: Limits) -> Result<(Pid, Monitor), HostError> {
    let (tx, rx) = async_channel::bounded(1);
    let pid = spawn(shared, app, init, limits, None, Some(tx))?;
    Ok((pid, Monitor { rx }))
}

fn kill(shared: &Shared, pid: Pid, reason: ExitReason) -> bool {
    let reg = shared.registry.lock().expect("registry");
    let Some(entry) = reg.get(&pid) else { return false };
    entry.kill.pull(reason);
    entry.mailbox.wake();
    // A running process checks its kill switch at its next epoch deadline: move the epoch
    // now instead of waiting for the tick (others merely yield a little early).
    shared.engine.increment_epoch();
    true
}

fn closed_mailbox() -> Arc<Mailbox> {
    let m = Arc::new(Mailbox::new(0, 0));
    m.close();
    m
}

/// A process's store: its limits, its kill switch checked at every epoch deadline, its mailbox.
fn new_store(shared: &Arc<Shared>, app: &App, pid: Pid, limits: Limits) -> Store<ProcState> {
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits.handles);
    let kill = Arc::new(KillSwitch::default());
    let state = ProcState {
        pid,
        node: shared.clone(),
        table,
        limiter: Limiter { memory: limits.memory, held: 0, app: app.inner.clone(), refused: false },
        kill: kill.clone(),
        mailbox: Arc::new(Mailbox::new(limits.mailbox_messages, limits.mailbox_bytes)),
        app: app.clone(),
        random_counter: 0,
        subscriptions: 0,
    };
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(move |_| {
        if kill.pulled() { Err(wasmtime::Trap::Interrupt.into()) } else { Ok(UpdateDeadline::Yield(1)) }
    });
    store.set_epoch_deadline(1);
    store
}

fn spawn(
    shared: &Arc<Shared>,
    app: &App,
    init: &[u8],
    limits: Limits,
    parent: Option<(Pid, bool)>,
    host_watch: Option<async_channel::Sender<(ExitReason, Instant)>>,
) -> Result<Pid, HostError> {
    if shared.stop.load(Ordering::Acquire) {
        return Err(HostError::Stopped);
    }
    let pid = shared.next_pid.fetch_add(1, Ordering::Relaxed);
    let mut store = new_store(shared, app, pid, limits);
    let (mailbox, kill) = (store.data().mailbox.clone(), store.data().kill.clone());
    {
        let mut reg = shared.registry.lock().expect("registry");
        if shared.live.load(Ordering::Acquire) >= shared.config.max_processes as usize {
            return Err(HostError::Limit("processes"));
        }
        shared.live.fetch_add(1, Ordering::AcqRel);
        let mut entry = Entry { mailbox, kill, trap_exits: false, links: HashSet::new(), watchers: Vec::new() };
        if let Some(tx) = host_watch {
            entry.watchers.push((0, Watcher::Host(tx)));
        }
        if let Some((parent, true)) = parent {
            entry.links.insert(parent);
            if let Some(p) = reg.get_mut(&parent) {
                p.links.insert(pid);
            }
        }
        reg.insert(pid, entry);
    }
    // Instantiation runs no guest code (components have no start function), so it is done
    // here, and a full pool is the caller's error rather than a crash later.
    let actor = match smol::block_on(app.inner.pre.instantiate(&mut store)) {
        Ok(a) => a,
        Err(e) => {
            shared.registry.lock().expect("registry").remove(&pid);
            shared.live.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!("instantiation refused: {e:#}");
            return Err(HostError::Limit(if store.data().limiter.refused {
                "memory (the process's limit or its app's budget)"
            } else {
                "instance slots or memory maps"
            }));
        }
    };
    let s = shared.clone();
    let init = init.to_vec();
    shared
        .executor
        .spawn(async move {
            let mut store = store;
            let body = AssertUnwindSafe(run(&mut store, actor, init)).catch_unwind();
            let reason = match body.await {
                Ok(reason) => reason,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    ExitReason::Crashed(format!("host panic: {what}"))
                }
            };
            // Links and monitors first; resetting the slot can wait until they are told. Its
            // memory is given back to the app's budget before, so that a supervisor told of
            // the exit can restart the process at once.
            store.data_mut().limiter.release();
            finish(&s, pid, reason);
            drop(store);
        })
        .detach();
    Ok(pid)
}

async fn run(store: &mut Store<ProcState>, actor: Actor, init: Vec<u8>) -> ExitReason {
    match actor.init(&mut *store, &init).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return ExitReason::Normal,
        Err(e) => return classify(store, e),
    }
    let (mailbox, kill) = (store.data().mailbox.clone(), store.data().kill.clone());
    loop {
        let Some(item) = mailbox.receive(None, None, || kill.pulled()).await else {
            return kill.reason();
        };
        let signal = store.data_mut().signal_of(item);
        if let Err(e) = actor.handle(&mut *store, &signal).await {
            return classify(store, e);
        }
    }
}

fn classify(store: &Store<ProcState>, e: wasmtime::Error) -> ExitReason {
    if store.data().kill.pulled() {
        return store.data().kill.reason();
    }
    let mut text = format!("{e:#}");
    text.truncate(512);
    ExitReason::Crashed(text)
}

/// Removes an exited process and tells its links and watchers.
fn finish(shared: &Shared, pid: Pid, reason: ExitReason) {
    let at = Instant::now();
    let mut reg = shared.registry.lock().expect("registry");
    let Some(entry) = reg.remove(&pid) else { return };
    shared.live.fetch_sub(1, Ordering::AcqRel);
    entry.mailbox.close();
    let mut kills = Vec::new();
    for l in &entry.links {
        let Some(linked) = reg.get_mut(l) else { continue };
        linked.links.remove(&pid);
        if linked.trap_exits {
            linked.mailbox.signal(Item::Exit { pid, reason: reason.clone() });
        } else if reason.is_abnormal() {
            kills.push(*l);
        }
    }
    for (reference, watcher) in entry.watchers {
        match watcher {
            Watcher::Host(tx) => {
                let _ = tx.try_send((reason.clone(), at));
            }
            Watcher::Process(w) => {
                if let Some(watching) = reg.get(&w) {
                    watching.mailbox.signal(Item::Down { reference, pid, reason: reason.clone() });
                }
            }
        }
    }
    for l in &kills {
        if let Some(linked) = reg.get(l) {
            linked.kill.pull(ExitReason::Linked(pid));
            linked.mailbox.wake();
        }
    }
    if !kills.is_empty() {
        shared.engine.increment_epoch();
    }
}

use bindings::isocore::process::{clock, log, process as wit, random};

impl ProcState {
    pub(crate) fn table(&self) -> &ResourceTable {
        &self.table
    }

    pub(crate) fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    pub(crate) fn app_grants(&self) -> Arc<[Request]> {
        self.app.grants()
    }

    pub(crate) fn channels(&self) -> Option<Arc<dyn Channels>> {
        self.node.channels.get().cloned()
    }

    pub(crate) fn mailbox_handle(&self) -> Arc<Mailbox> {
        self.mailbox.clone()
    }

    pub(crate) fn app(&self) -> App {
        self.app.clone()
    }

    pub(crate) fn remote(&self) -> Option<Arc<dyn Remote>> {
        self.node.remote.get().cloned()
    }

    /// Routes calls of `interface` to this process.
    pub(crate) fn export_here(&self, interface: [u8; 32]) {
        self.node.exports.lock().expect("exports").insert(interface, (self.app.clone(), self.pid));
    }

    fn signal_of(&mut self, item: Item) -> wit::Signal {
        match item {
            Item::Message { tag, body, from } => {
                let reply =
                    from.and_then(|(pid, mailbox)| self.table.push(ProcessRef { pid, full: false, mailbox }).ok());
                wit::Signal::Message(wit::Message { tag, body, reply })
            }
            Item::Exit { pid, reason } => wit::Signal::Exit((pid, wit_reason(reason))),
            Item::Down { reference, pid, reason } => wit::Signal::Down((reference, pid, wit_reason(reason))),
        }
    }

    fn target(&self, handle: &Resource<ProcessRef>) -> wasmtime::Result<&ProcessRef> {
        Ok(self.table.get(handle)?)
    }

    /// A send-only handle to a live process (or one that reports it gone).
    fn handle_to(&self, pid: Pid) -> ProcessRef {
        let mailbox = self.node.registry.lock().expect("registry").get(&pid).map(|e| e.mailbox.clone());
        ProcessRef { pid, full: false, mailbox: mailbox.unwrap_or_else(closed_mailbox) }
    }

    fn push(&mut self, r: ProcessRef) -> Result<Resource<ProcessRef>, wit::Error> {
        self.table.push(r).map_err(|_| wit::Error::Limit)
    }
}

fn wit_reason(r: ExitReason) -> wit::ExitReason {
    match r {
        ExitReason::Normal => wit::ExitReason::Normal,
        ExitReason::Killed => wit::ExitReason::Killed,
        ExitReason::Crashed(s) => wit::ExitReason::Crashed(s),
        ExitReason::Linked(p) => wit::ExitReason::Linked(p),
    }
}

fn send_error(e: SendError) -> wit::Error {
    match e {
        SendError::Full => wit::Error::Limit,
        SendError::Gone => wit::Error::Gone,
    }
}

impl wit::HostProcess for ProcState {
    fn id(&mut self, handle: Resource<ProcessRef>) -> wasmtime::Result<Pid> {
        Ok(self.target(&handle)?.pid)
    }

    fn send(
        &mut self,
        handle: Resource<ProcessRef>,
        tag: u64,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let from = Some((self.pid, self.mailbox.clone()));
        Ok(self.target(&handle)?.mailbox.send(tag, body, from).map_err(send_error))
    }

    fn link(&mut self, handle: Resource<ProcessRef>) -> wasmtime::Result<Result<(), wit::Error>> {
        let to = self.target(&handle)?.clone();
        if !to.full {
            return Ok(Err(wit::Error::Denied));
        }
        let mut reg = self.node.registry.lock().expect("registry");
        if !reg.contains_key(&to.pid) {
            return Ok(Err(wit::Error::Gone));
        }
        if let Some(t) = reg.get_mut(&to.pid) {
            t.links.insert(self.pid);
        }
        if let Some(me) = reg.get_mut(&self.pid) {
            me.links.insert(to.pid);
        }
        Ok(Ok(()))
    }

    fn unlink(&mut self, handle: Resource<ProcessRef>) -> wasmtime::Result<()> {
        let to = self.target(&handle)?.clone();
        let mut reg = self.node.registry.lock().expect("registry");
        if let Some(t) = reg.get_mut(&to.pid) {
            t.links.remove(&self.pid);
        }
        if let Some(me) = reg.get_mut(&self.pid) {
            me.links.remove(&to.pid);
        }
        Ok(())
    }

    fn monitor(&mut self, handle: Resource<ProcessRef>) -> wasmtime::Result<Result<u64, wit::Error>> {
        let to = self.target(&handle)?.clone();
        if !to.full {
            return Ok(Err(wit::Error::Denied));
        }
        let reference = self.node.next_ref.fetch_add(1, Ordering::Relaxed);
        let mut reg = self.node.registry.lock().expect("registry");
        Ok(match reg.get_mut(&to.pid) {
            Some(t) => {
                t.watchers.push((reference, Watcher::Process(self.pid)));
                Ok(reference)
            }
            None => Err(wit::Error::Gone),
        })
    }

    fn kill(&mut self, handle: Resource<ProcessRef>) -> wasmtime::Result<Result<(), wit::Error>> {
        let to = self.target(&handle)?.clone();
        if !to.full {
            return Ok(Err(wit::Error::Denied));
        }
        Ok(if kill(&self.node, to.pid, ExitReason::Killed) { Ok(()) } else { Err(wit::Error::Gone) })
    }

    fn send_only(
        &mut self,
        handle: Resource<ProcessRef>,
    ) -> wasmtime::Result<Result<Resource<ProcessRef>, wit::Error>> {
        let to = ProcessRef { full: false, ..self.target(&handle)?.clone() };
        Ok(self.push(to))
    }

    fn drop(&mut self, handle: Resource<ProcessRef>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl wit::Host for ProcState {
    fn self_id(&mut self) -> wasmtime::Result<Pid> {
        Ok(self.pid)
    }

    fn self_handle(&mut self) -> wasmtime::Result<Result<Resource<ProcessRef>, wit::Error>> {
        let me = ProcessRef { pid: self.pid, full: false, mailbox: self.mailbox.clone() };
        Ok(self.push(me))
    }

    async fn receive(&mut self, tags: Option<Vec<u64>>, timeout_ms: Option<u64>) -> wasmtime::Result<wit::Signal> {
        let kill = self.kill.clone();
        let item = self.mailbox.receive(tags.as_deref(), timeout_ms.map(Duration::from_millis), || kill.pulled()).await;
        match item {
            Some(item) => Ok(self.signal_of(item)),
            None if kill.pulled() => Err(wasmtime::Trap::Interrupt.into()),
            None => Ok(wit::Signal::Timeout),
        }
    }

    fn trap_exits(&mut self, enable: bool) -> wasmtime::Result<()> {
        if let Some(me) = self.node.registry.lock().expect("registry").get_mut(&self.pid) {
            me.trap_exits = enable;
        }
        Ok(())
    }

    fn spawn(&mut self, init: Vec<u8>, link: bool) -> wasmtime::Result<Result<Resource<ProcessRef>, wit::Error>> {
        let limits = self.node.config.limits;
        match spawn(&self.node, &self.app.clone(), &init, limits, Some((self.pid, link)), None) {
            Ok(pid) => {
                let child = ProcessRef { full: true, ..self.handle_to(pid) };
                Ok(self.push(child))
            }
            Err(_) => Ok(Err(wit::Error::Limit)),
        }
    }
}

impl log::Host for ProcState {
    fn log(&mut self, level: log::Level, mut message: String) -> wasmtime::Result<()> {
        #[cfg(feature = "fault-injection")]
        if message == "isocore:fault:host-panic" {
            panic!("fault injected by process {}", self.pid);
        }
        message.truncate(4096);
        let pid = self.pid;
        match level {
            log::Level::Trace => tracing::trace!(pid, "{message}"),
            log::Level::Debug => tracing::debug!(pid, "{message}"),
            log::Level::Info => tracing::info!(pid, "{message}"),
            log::Level::Warn => tracing::warn!(pid, "{message}"),
            log::Level::Error => tracing::error!(pid, "{message}"),
        }
        Ok(())
    }
}

impl clock::Host for ProcState {
    fn monotonic_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.node.started.elapsed().as_millis() as u64)
    }
}

impl random::Host for ProcState {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        let len = len.min(4096) as usize;
        self.random_counter += 1;
        let mut h = blake3::Hasher::new_keyed(&self.node.seed);
        h.update(&self.pid.to_le_bytes()).update(&self.random_counter.to_le_bytes());
        let mut out = vec![0; len];
        h.finalize_xof().fill(&mut out);
        Ok(out)
    }
}

//! `cargo bench -p isocore-host`: spawning, density, mailboxes, calls, kills and installs of
//! real component processes, next to the BEAM's published figures and to a bare smol
//! ping-pong measured in the same run. Ends with one JSON object on one line.

use isocore_host::{ExitReason, Limits, Node, NodeConfig, check_density, config};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the bytes and blocks live while `COUNTING` is set, so that
/// the density run can tell the host's heap per process from the pages in the pools.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Blocks allocated before counting began make these wrap; only differences are read.
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_heap() -> (usize, usize) {
    (LIVE_BYTES.load(Ordering::Relaxed), LIVE_BLOCKS.load(Ordering::Relaxed))
}

fn guest(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("ISOCORE_GUESTS_DIR")).join(format!("{name}.wasm"))).unwrap()
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

fn maps() -> u64 {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count() as u64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p) as usize]
}

/// Microseconds per round trip between two echo processes, `rounds` at a time.
fn ping_pong(node: &Node, echo: &isocore_host::App, rounds: u64) -> f64 {
    let inbox = node.inbox(4);
    let (a, b) = (node.spawn(echo, b"").unwrap(), node.spawn(echo, b"").unwrap());
    node.send(a, 6, b"", Some(inbox.pid())).unwrap();
    let us = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                node.send(a, 3, &rounds.to_le_bytes(), Some(b)).unwrap();
                inbox.recv(Duration::from_secs(60)).unwrap();
                t.elapsed().as_secs_f64() / rounds as f64 * 1e6
            })
            .collect(),
    );
    node.kill(a);
    node.kill(b);
    us
}

/// What spawning many idle processes cost.
struct Density {
    spawned: usize,
    all_s: f64,
    kib_per_process: f64,
    heap_kib_per_process: f64,
    blocks_per_process: f64,
    maps_per_process: f64,
    p50_us: f64,
    p99_us: f64,
    kill_all_s: f64,
}

/// Spawns `target` processes of `app` (each runs `init`), measures them, and kills them all
/// (returning once every one is gone).
fn spawn_many(node: &Node, app: &isocore_host::App, target: u32) -> Density {
    let limits = Limits { memory: 4 << 20, mailbox_messages: 16, mailbox_bytes: 4096, handles: 16 };
    let (rss0, maps0, heap0) = (rss_kib(), maps(), live_heap());
    let t = Instant::now();
    let mut pids = Vec::with_capacity(target as usize);
    let mut spawn_lat = Vec::with_capacity(target as usize);
    for _ in 0..target {
        let s = Instant::now();
        match node.spawn_with(app, b"", limits) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                println!("spawn stopped at {}: {e}", pids.len());
                break;
            }
        }
        spawn_lat.push(s.elapsed().as_secs_f64() * 1e6);
    }
    // Processes start in order, so every one has run `init` once the last has taken a
    // message out of its mailbox.
    let last = *pids.last().unwrap();
    node.send(last, 1, b"ready", None).unwrap();
    while node.queued(last).is_some_and(|n| n > 0) {
        std::thread::sleep(Duration::from_micros(100));
    }
    let all_s = t.elapsed().as_secs_f64();
    let spawned = pids.len();
    let (rss1, maps1, heap1) = (rss_kib(), maps(), live_heap());
    let t = Instant::now();
    for pid in &pids {
        node.kill(*pid);
    }
    while pids.iter().any(|p| node.queued(*p).is_some()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    Density {
        spawned,
        all_s,
        kib_per_process: (rss1.saturating_sub(rss0)) as f64 / spawned as f64,
        heap_kib_per_process: heap1.0.wrapping_sub(heap0.0) as f64 / 1024.0 / spawned as f64,
        blocks_per_process: heap1.1.wrapping_sub(heap0.1) as f64 / spawned as f64,
        maps_per_process: (maps1.saturating_sub(maps0)) as f64 / spawned as f64,
        p50_us: percentile(spawn_lat.clone(), 0.5),
        p99_us: percentile(spawn_lat, 0.99),
        kill_all_s: t.elapsed().as_secs_f64(),
    }
}

/// Runs [`spawn_many`] for guest `name` in a fresh copy of this benchmark.
fn density_in_child(name: &str, density: u32) -> Density {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("ISOCORE_BENCH_DENSITY", format!("{name} {density}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "density run for {name} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix("density ")).unwrap_or_else(|| panic!("no result: {text}"));
    let v: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    Density {
        spawned: v[0] as usize,
        all_s: v[1],
        kib_per_process: v[2],
        heap_kib_per_process: v[3],
        blocks_per_process: v[4],
        maps_per_process: v[5],
        p50_us: v[6],
        p99_us: v[7],
        kill_all_s: v[8],
    }
}

/// A node of `max_processes` slots on two threads, with no app budget to speak of.
fn bench_node(max_processes: u32) -> Node {
    Node::new(NodeConfig { max_processes, threads: 2, app_memory: usize::MAX / 2, ..NodeConfig::default() }).unwrap()
}

fn main() {
    if let Ok(job) = std::env::var("ISOCORE_BENCH_DENSITY") {
        let (name, density) = job.split_once(' ').unwrap();
        let density: u32 = density.parse().unwrap();
        let node = bench_node(density);
        let app = node.load(&guest(name)).unwrap();
        COUNTING.store(true, Ordering::Relaxed);
        // A few slots stay free, as in the parent.
        let d = spawn_many(&node, &app, density.saturating_sub(16));
        println!(
            "density {} {} {} {} {} {} {} {} {}",
            d.spawned,
            d.all_s,
            d.kib_per_process,
            d.heap_kib_per_process,
            d.blocks_per_process,
            d.maps_per_process,
            d.p50_us,
            d.p99_us,
            d.kill_all_s
        );
        return;
    }
    let map_count = config::read_max_map_count().unwrap_or(65_530);
    let wanted = 100_000u32;
    let density = match check_density(wanted, Some(map_count)) {
        Ok(()) => wanted,
        Err(e) => {
            println!("density: {e}");
            e.reachable.min(wanted)
        }
    };
    let node = bench_node(density);
    let echo_bytes = guest("echo");
    let lean_bytes = guest("lean");
    let hostile_bytes = guest("hostile");

    // Install: cold (validate + compile + check) and warm (from this node's artifact cache).
    let cache = std::env::temp_dir().join(format!("isocore-bench-cache-{}", std::process::id()));
    let cached =
        Node::with_cache(NodeConfig { max_processes: 64, threads: 1, ..NodeConfig::default() }, Some(cache.clone()))
            .unwrap();
    let t = Instant::now();
    cached.load(&hostile_bytes).unwrap();
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    let warm_ms = median(
        (0..9)
            .map(|_| {
                let t = Instant::now();
                cached.load(&hostile_bytes).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    drop(cached);
    let _ = std::fs::remove_dir_all(&cache);
    let app_kb = hostile_bytes.len() as f64 / 1e3;

    let echo = node.load(&echo_bytes).unwrap();
    let lean = node.load(&lean_bytes).unwrap();
    let hostile = node.load(&hostile_bytes).unwrap();

    // Instantiate alone (new store, instance from InstancePre, drop), and host→guest calls.
    let instantiate_us =
        median((0..7).map(|_| node.bench_instantiate(&echo, 2000).as_secs_f64() / 2000.0 * 1e6).collect());
    let lean_instantiate_us =
        median((0..7).map(|_| node.bench_instantiate(&lean, 2000).as_secs_f64() / 2000.0 * 1e6).collect());
    let call_ns = median((0..7).map(|_| node.bench_calls(&echo, 100_000).as_secs_f64() / 100_000.0 * 1e9).collect());

    // Mailbox round trip between two component processes, on the node's two threads and on
    // a node with one.
    let rounds = 20_000u64;
    let rtt_us = ping_pong(&node, &echo, rounds);
    let rtt_one_thread_us = {
        let single = Node::new(NodeConfig { max_processes: 8, threads: 1, ..NodeConfig::default() }).unwrap();
        let echo = single.load(&echo_bytes).unwrap();
        ping_pong(&single, &echo, rounds)
    };

    // The same ping-pong between two bare smol tasks: the floor of any mailbox.
    let smol_rtt_us = {
        let (to_b, b_rx) = async_channel::bounded::<u64>(1);
        let (to_a, a_rx) = async_channel::bounded::<u64>(1);
        let ex = smol::Executor::new();
        smol::block_on(ex.run(async {
            let pong = ex.spawn(async move {
                while let Ok(v) = b_rx.recv().await {
                    if to_a.send(v).await.is_err() {
                        break;
                    }
                }
            });
            let t = Instant::now();
            for i in 0..rounds {
                to_b.send(i).await.unwrap();
                a_rx.recv().await.unwrap();
            }
            let el = t.elapsed();
            drop(to_b);
            pong.await;
            el.as_secs_f64() / rounds as f64 * 1e6
        }))
    };

    // Kill a runaway: from the kill request until the node has recorded the exit (the runaway
    // stopped, its links and monitors told, its memory given back), and until the host
    // thread parked on its monitor runs again.
    let (mut released, mut observed) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let (pid, monitor) = node.spawn_monitored(&hostile, b"", None).unwrap();
        node.send(pid, 1, b"", None).unwrap();
        std::thread::sleep(Duration::from_micros(500));
        let t = Instant::now();
        node.kill(pid);
        let (reason, at) = monitor.wait_at(Duration::from_secs(5)).expect("the runaway exits");
        observed.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(reason, ExitReason::Killed);
        released.push(at.duration_since(t).as_secs_f64() * 1e6);
    }
    let (kill_p50, kill_p99) = (percentile(released.clone(), 0.5), percentile(released, 0.99));
    let (seen_p50, seen_p99) = (percentile(observed.clone(), 0.5), percentile(observed, 0.99));

    // Instances alone (a store and an instance each, no task, never called), for comparison.
    let instances = (density / 2).min(10_000);
    let (rss_i0, maps_i0) = (rss_kib(), maps());
    let held = node.bench_hold(&echo, instances);
    let instance_kib = (rss_kib().saturating_sub(rss_i0)) as f64 / f64::from(instances);
    let instance_maps = (maps().saturating_sub(maps_i0)) as f64 / f64::from(instances);
    drop(held);

    // Density: spawn N idle processes (each initialised) and measure memory, echo processes
    // (which import the process interface) and lean ones, each in a process of its own so
    // that neither reuses memory the other's node or heap left behind.
    drop(node);
    let echo_density = density_in_child("echo", density);
    let lean_density = density_in_child("lean", density);

    let (e, l) = (&echo_density, &lean_density);
    println!("{:<56} {:>12} {:>10}  anchor", "measure", "value", "target");
    let rows: [(&str, f64, &str, &str); 29] = [
        ("instantiate a lean process, InstancePre (us)", lean_instantiate_us, "2", "BEAM spawn 1-3 us"),
        ("instantiate an echo process (3 core modules) (us)", instantiate_us, "", ""),
        ("lean processes spawned and initialised", l.spawned as f64, "100000", "BEAM default limit 1048576"),
        ("  all of them, wall time (s)", l.all_s, "1", ""),
        ("  RSS per idle process (KiB)", l.kib_per_process, "8", "BEAM 2.6 KB"),
        ("    of which host heap, live bytes (KiB)", l.heap_kib_per_process, "", ""),
        ("    host heap blocks", l.blocks_per_process, "", ""),
        ("  spawn call p50, with registry and task (us)", l.p50_us, "", ""),
        ("  spawn call p99 (us)", l.p99_us, "", ""),
        ("echo processes spawned and initialised", e.spawned as f64, "", ""),
        ("  all of them, wall time (s)", e.all_s, "", ""),
        ("  RSS per idle process (KiB)", e.kib_per_process, "", ""),
        ("    of which host heap, live bytes (KiB)", e.heap_kib_per_process, "", ""),
        ("    host heap blocks", e.blocks_per_process, "", ""),
        ("  memory maps per idle process", e.maps_per_process, "6", "config::VMAS_PER_PROCESS"),
        ("  spawn call p50 (us)", e.p50_us, "", ""),
        ("  spawn call p99 (us)", e.p99_us, "", ""),
        ("  RSS per bare instance, no task, never run (KiB)", instance_kib, "", ""),
        ("  memory maps per bare instance", instance_maps, "", ""),
        ("mailbox round trip, two processes, 1 thread (us)", rtt_one_thread_us, "1.5", "BEAM send 0.8 us one way"),
        ("mailbox round trip, two processes, 2 threads (us)", rtt_us, "3", ""),
        ("  bare smol task ping-pong, same run (us)", smol_rtt_us, "", "floor"),
        ("host -> guest call of handle (ns)", call_ns, "100", ""),
        ("kill a runaway, request to exit recorded, p50 (us)", kill_p50, "", ""),
        ("kill a runaway, request to exit recorded, p99 (us)", kill_p99, "50", ""),
        ("  until the parked host thread runs again, p50 (us)", seen_p50, "", ""),
        ("  until the parked host thread runs again, p99 (us)", seen_p99, "", ""),
        ("cold install, validate + compile (ms)", cold_ms, "150", "for 100 KB"),
        ("warm start from the artifact cache (ms)", warm_ms, "1", ""),
    ];
    for (name, value, target, anchor) in rows {
        println!("{name:<56} {value:>12.3} {target:>10}  {anchor}");
    }
    println!(
        "install measured on the {app_kb:.1} KB hostile guest; vm.max_map_count = {map_count}; kill all {}: {:.2} s (echo), {:.2} s (lean)",
        e.spawned, e.kill_all_s, l.kill_all_s
    );
    println!(
        "{{\"instantiate_lean_us\":{lean_instantiate_us:.2},\"instantiate_us\":{instantiate_us:.2},\"lean_processes\":{},\"lean_spawn_all_s\":{:.3},\"lean_rss_kib_per_process\":{:.2},\"lean_heap_kib_per_process\":{:.2},\"lean_heap_blocks_per_process\":{:.1},\"lean_spawn_p50_us\":{:.2},\"lean_spawn_p99_us\":{:.2},\"processes\":{},\"spawn_all_s\":{:.3},\"rss_kib_per_process\":{:.2},\"heap_kib_per_process\":{:.2},\"heap_blocks_per_process\":{:.1},\"maps_per_process\":{:.2},\"spawn_p50_us\":{:.2},\"spawn_p99_us\":{:.2},\"rss_kib_per_instance\":{instance_kib:.2},\"maps_per_instance\":{instance_maps:.2},\"mailbox_rtt_us\":{rtt_one_thread_us:.3},\"mailbox_rtt_two_threads_us\":{rtt_us:.3},\"smol_rtt_us\":{smol_rtt_us:.3},\"ratio_mailbox_to_smol\":{:.2},\"host_to_guest_call_ns\":{call_ns:.1},\"kill_runaway_p50_us\":{kill_p50:.1},\"kill_runaway_p99_us\":{kill_p99:.1},\"kill_observed_p50_us\":{seen_p50:.1},\"kill_observed_p99_us\":{seen_p99:.1},\"cold_install_ms\":{cold_ms:.2},\"warm_start_ms\":{warm_ms:.3},\"app_kb\":{app_kb:.1},\"max_map_count\":{map_count},\"beam_spawn_us\":2,\"beam_process_bytes\":2616}}",
        l.spawned,
        l.all_s,
        l.kib_per_process,
        l.heap_kib_per_process,
        l.blocks_per_process,
        l.p50_us,
        l.p99_us,
        e.spawned,
        e.all_s,
        e.kib_per_process,
        e.heap_kib_per_process,
        e.blocks_per_process,
        e.maps_per_process,
        e.p50_us,
        e.p99_us,
        rtt_one_thread_us / smol_rtt_us
    );
}

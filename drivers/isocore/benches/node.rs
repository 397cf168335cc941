//! `cargo bench -p isocore`: the node's workloads, the same as the Hypercore harness in
//! `../shared/bench/hypercore/` (run both with `python3 bench/compare.py`). Real redb
//! storage, real TCP on loopback, encrypted sessions. Ends with one JSON object on one line.

use ed25519_dalek::SigningKey;
use isocore_log::{Feed, FeedKey};
use isocore_node::node::{NodeConfig, open_db};
use isocore_node::thread::NodeThread;
use isocore_proto::EndpointEvent;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time this process has used, in all its threads (those gone too), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Busy and total CPU time of the whole machine (every process and the kernel's threads),
/// in clock ticks, from `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return (0, 0) };
    let v: Vec<u64> = cpu.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    (total - idle, total)
}

/// CPU time of each live thread of this process, in seconds, by thread id.
fn thread_cpu_seconds() -> std::collections::HashMap<u64, f64> {
    let tasks = std::fs::read_dir("/proc/self/task").map(|rd| rd.flatten().collect::<Vec<_>>()).unwrap_or_default();
    tasks
        .iter()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
            Some((tid, ns / 1e9))
        })
        .collect()
}

/// What one download cost: its rate, and the CPU it kept busy.
struct Download {
    entries_per_s: f64,
    reader_disk: u64,
    /// CPU seconds per wall second, both nodes together.
    cores_busy: f64,
    /// The share of the machine's CPU time that was busy, whoever used it.
    machine_busy: f64,
    /// CPU seconds per wall second of the reader's threads alone.
    reader_busy: f64,
}

/// A writer's data directory with a feed it writes; returns the key and signer.
fn writer_dir(dir: &Path, seed: u8) -> (FeedKey, SigningKey) {
    let db = open_db(dir).unwrap();
    let signer = SigningKey::from_bytes(&[seed; 32]);
    let key = FeedKey::standalone(signer.verifying_key());
    db.add_writer(&key, &[seed; 32]).unwrap();
    db.feed(&key, true).unwrap();
    (key, signer)
}

fn open_feed(dir: &Path, key: &FeedKey, sync: bool) -> Feed<isocore_node::store::RedbStore> {
    let db = open_db(dir).unwrap();
    Feed::open(*key, db.feed(key, sync).unwrap()).unwrap()
}

fn config(dir: &Path, listen: bool, connect: Vec<std::net::SocketAddr>) -> NodeConfig {
    let mut c = NodeConfig::new(dir);
    c.listen = listen.then(|| "127.0.0.1:0".parse().unwrap());
    c.connect = connect;
    c
}

/// Download everything the writer in `wdir` has into a fresh reader.
fn download(root: &Path, wdir: &Path, key: &FeedKey, n: u64, tag: &str) -> Download {
    let writer = NodeThread::spawn(config(wdir, true, vec![]), vec![]).unwrap();
    let rdir = root.join(format!("reader-{tag}"));
    let before_reader = thread_cpu_seconds();
    let (t, cpu, ticks) = (Instant::now(), cpu_seconds(), machine_ticks());
    let reader = NodeThread::spawn(config(&rdir, false, vec![writer.addr.unwrap()]), vec![*key]).unwrap();
    loop {
        if reader.lengths(key).unwrap().is_some_and(|(_, c)| c >= n) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        assert!(t.elapsed() < Duration::from_secs(120), "download stalled");
    }
    let (wall, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let machine = machine_ticks();
    let machine_busy = (machine.0 - ticks.0) as f64 / (machine.1 - ticks.1).max(1) as f64;
    // Threads started with the reader are the reader's.
    let reader_cpu: f64 = thread_cpu_seconds()
        .into_iter()
        .filter(|(tid, _)| !before_reader.contains_key(tid))
        .map(|(_, secs)| secs)
        .sum();
    reader.stop();
    writer.stop();
    Download {
        entries_per_s: n as f64 / wall,
        reader_disk: dir_bytes(&rdir),
        cores_busy: cpu / wall,
        machine_busy,
        reader_busy: reader_cpu / wall,
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let root: PathBuf = std::env::temp_dir().join(format!("isocore-bench-{}", std::process::id()));
    let small = vec![7u8; 64];
    let large = vec![9u8; 64 * 1024];

    // Appends of 64 B, one per call: durable (fsync per append, the default for a writer)
    // and without waiting for the disk (what Hypercore does).
    let mut singles = Vec::new();
    for (tag, sync, n) in [("single-durable", true, 2000u64), ("single-nofsync", false, 20_000)] {
        let dir = root.join(tag);
        let (key, signer) = writer_dir(&dir, 1);
        let mut feed = open_feed(&dir, &key, sync);
        let t = Instant::now();
        for _ in 0..n {
            feed.append(&signer, [small.clone()]).unwrap();
        }
        // Held-back batches are written out within the time measured.
        feed.flush().unwrap();
        singles.push(n as f64 / t.elapsed().as_secs_f64());
    }

    // 100k x 64 B in batches of 1000 (this feed is then downloaded).
    let small_dir = root.join("small");
    let (small_key, signer) = writer_dir(&small_dir, 2);
    let batch_rate = {
        let mut feed = open_feed(&small_dir, &small_key, true);
        let t = Instant::now();
        for _ in 0..100 {
            feed.append(&signer, (0..1000).map(|_| small.clone())).unwrap();
        }
        100_000.0 / t.elapsed().as_secs_f64()
    };
    let small_disk = dir_bytes(&small_dir);
    let batch_nofsync_rate = {
        let dir = root.join("batch-nofsync");
        let (key, signer) = writer_dir(&dir, 5);
        let mut feed = open_feed(&dir, &key, false);
        let t = Instant::now();
        for _ in 0..100 {
            feed.append(&signer, (0..1000).map(|_| small.clone())).unwrap();
        }
        feed.flush().unwrap();
        100_000.0 / t.elapsed().as_secs_f64()
    };

    // 2000 x 64 KiB, one per call, durable.
    let large_dir = root.join("large");
    let (large_key, signer) = writer_dir(&large_dir, 3);
    let large_mb_s = {
        let mut feed = open_feed(&large_dir, &large_key, true);
        let t = Instant::now();
        for _ in 0..2000 {
            feed.append(&signer, [large.clone()]).unwrap();
        }
        2000.0 * 65536.0 / 1e6 / t.elapsed().as_secs_f64()
    };

    // Full downloads over TCP.
    let small_dl = download(&root, &small_dir, &small_key, 100_000, "small");
    let (small_download, small_reader_disk) = (small_dl.entries_per_s, small_dl.reader_disk);
    let large_dl = download(&root, &large_dir, &large_key, 2000, "large");
    let (large_download, large_reader_disk) = (large_dl.entries_per_s, large_dl.reader_disk);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Live latency: append call -> entry verified and stored at a directly connected reader.
    let live_dir = root.join("live");
    let (live_key, _) = writer_dir(&live_dir, 4);
    let writer = NodeThread::spawn(config(&live_dir, true, vec![]), vec![]).unwrap();
    let reader =
        NodeThread::spawn(config(&root.join("live-reader"), false, vec![writer.addr.unwrap()]), vec![live_key])
            .unwrap();
    writer.append(&live_key, vec![b"warm up".to_vec()]).unwrap();
    while reader.lengths(&live_key).unwrap().is_none_or(|(_, c)| c < 1) {
        std::thread::sleep(Duration::from_millis(1));
    }
    while reader.events.try_recv().is_ok() {}
    while writer.events.try_recv().is_ok() {}
    let (mut call_to_reader, mut commit_to_reader) = (Vec::new(), Vec::new());
    for i in 0..1000u64 {
        let t = Instant::now();
        let length = writer.append(&live_key, vec![small.clone()]).unwrap();
        let seen = |node: &NodeThread| loop {
            match node.events.recv_timeout(Duration::from_secs(10)).expect("update in time") {
                (EndpointEvent::FeedUpdated { contiguous, .. }, at) if contiguous >= length => break at,
                _ => {}
            }
        };
        let committed = seen(&writer);
        let arrived = seen(&reader);
        call_to_reader.push(arrived.duration_since(t).as_secs_f64() * 1e6);
        commit_to_reader.push(arrived.saturating_duration_since(committed).as_secs_f64() * 1e6);
        let _ = i;
    }
    reader.stop();
    writer.stop();
    call_to_reader.sort_by(|a, b| a.partial_cmp(b).unwrap());
    commit_to_reader.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rss = peak_rss_mb();
    let _ = std::fs::remove_dir_all(&root);

    println!("append 64 B single, durable:          {:>12.0} entries/s", singles[0]);
    println!("append 64 B single, no fsync:         {:>12.0} entries/s", singles[1]);
    println!("append 64 B, batches of 1000:         {batch_rate:>12.0} entries/s");
    println!("append 64 B, batches of 1000, no fsync:{batch_nofsync_rate:>11.0} entries/s");
    println!("append 64 KiB single, durable:        {large_mb_s:>12.1} MB/s");
    println!("download 100k x 64 B over TCP:        {small_download:>12.0} entries/s");
    println!("download 2000 x 64 KiB over TCP:      {:>12.1} MB/s", large_download * 65536.0 / 1e6);
    println!(
        "  CPU: both nodes {:.2} of {cores} cores, the reader {:.2}; the whole machine {:.0} % busy",
        large_dl.cores_busy,
        large_dl.reader_busy,
        large_dl.machine_busy * 100.0
    );
    println!(
        "live append call -> reader:           p50 {:.0} us  p99 {:.0} us",
        quantile(&call_to_reader, 0.5),
        quantile(&call_to_reader, 0.99)
    );
    println!(
        "live durable commit -> reader:        p50 {:.0} us  p99 {:.0} us",
        quantile(&commit_to_reader, 0.5),
        quantile(&commit_to_reader, 0.99)
    );
    println!("peak RSS (whole process, all nodes):  {rss:>12.1} MB");
    println!("bytes on disk, 100k x 64 B writer:    {small_disk:>12}  reader: {small_reader_disk}");
    println!("bytes on disk, 2000 x 64 KiB reader:  {large_reader_disk:>12}  (entries: {})", 2000 * 65536);
    println!(
        "{{\"append_single_durable_per_s\":{:.0},\"append_single_nofsync_per_s\":{:.0},\"append_batch1000_per_s\":{batch_rate:.0},\"append_batch1000_nofsync_per_s\":{batch_nofsync_rate:.0},\"append_64k_mb_per_s\":{large_mb_s:.1},\"download_small_entries_per_s\":{small_download:.0},\"download_large_mb_per_s\":{:.1},\"download_large_cores_busy\":{:.2},\"download_large_reader_cores_busy\":{:.2},\"download_large_machine_busy\":{:.2},\"live_call_to_reader_p50_us\":{:.0},\"live_call_to_reader_p99_us\":{:.0},\"live_commit_to_reader_p50_us\":{:.0},\"live_commit_to_reader_p99_us\":{:.0},\"peak_rss_mb\":{rss:.1},\"disk_bytes_small_writer\":{small_disk},\"disk_bytes_small_reader\":{small_reader_disk},\"disk_bytes_large_reader\":{large_reader_disk}}}",
        singles[0],
        singles[1],
        large_download * 65536.0 / 1e6,
        large_dl.cores_busy,
        large_dl.reader_busy,
        large_dl.machine_busy,
        quantile(&call_to_reader, 0.5),
        quantile(&call_to_reader, 0.99),
        quantile(&commit_to_reader, 0.5),
        quantile(&commit_to_reader, 0.99),
    );
}

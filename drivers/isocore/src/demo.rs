//! `isocore demo`: four nodes on loopback TCP, each with its own redb store in a temporary
//! directory. A writer creates a feed; a relay follows it; two readers follow the relay only.
//! Live appends travel writer → relay → readers over encrypted sessions and are verified at
//! every hop; the relay is stopped and restarted mid-stream from its store.

use crate::node::{NodeConfig, create_feed, format_feed_key, open_db};
use crate::thread::NodeThread;
use isocore_log::FeedKey;
use isocore_proto::EndpointEvent;
use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn say(quiet: bool, line: impl AsRef<str>) {
    if !quiet {
        println!("{}", line.as_ref());
    }
}

/// Wait until `node` holds `length` entries of `key`.
fn wait_for(node: &NodeThread, key: &FeedKey, length: u64, limit: Duration) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    loop {
        if node.lengths(key)?.is_some_and(|(_, c)| c >= length) {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!("timed out waiting for length {length}: at {:?}", node.lengths(key)?).into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// When `node` reported holding `length` entries (from its event stream).
fn arrival(node: &NodeThread, length: u64, limit: Duration) -> Result<Instant, Box<dyn Error>> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match node.events.recv_timeout(left) {
            Ok((EndpointEvent::FeedUpdated { contiguous, .. }, at)) if contiguous >= length => return Ok(at),
            Ok(_) => {}
            Err(_) => return Err(format!("no update to length {length} in time").into()),
        }
    }
}

fn node_config(dir: &Path, listen: bool, connect: Vec<SocketAddr>) -> NodeConfig {
    let mut config = NodeConfig::new(dir);
    config.listen = listen.then(|| "127.0.0.1:0".parse().expect("a valid address"));
    config.connect = connect;
    config
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Run the demo in a fresh temporary directory.
pub fn run(quiet: bool) -> Result<(), Box<dyn Error>> {
    let root =
        std::env::temp_dir().join(format!("isocore-demo-{}-{}", std::process::id(), crate::node::random_seed()[0]));
    let result = run_in(&root, quiet);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run_in(root: &Path, quiet: bool) -> Result<(), Box<dyn Error>> {
    let dir = |name: &str| -> PathBuf { root.join(name) };
    let key = {
        let db = open_db(&dir("writer"))?;
        create_feed(&db)?
    };
    say(quiet, format!("data in {}", root.display()));
    say(quiet, format!("feed {}", format_feed_key(&key)));

    let writer = NodeThread::spawn(node_config(&dir("writer"), true, vec![]), vec![])?;
    let writer_addr = writer.addr.ok_or("writer is not listening")?;
    let relay = NodeThread::spawn(node_config(&dir("relay"), true, vec![writer_addr]), vec![key])?;
    let relay_addr = relay.addr.ok_or("relay is not listening")?;
    let readers: Vec<NodeThread> = (1..=2)
        .map(|i| NodeThread::spawn(node_config(&dir(&format!("reader-{i}")), false, vec![relay_addr]), vec![key]))
        .collect::<Result<_, _>>()?;
    say(quiet, format!("writer on {writer_addr}, relay on {relay_addr}, two readers dialled the relay"));

    // A history of 20 000 entries in 20 signed batches.
    let t = Instant::now();
    for batch in 0..20u64 {
        let entries = (0..1000).map(|i| format!("message {} from the writer", batch * 1000 + i).into_bytes()).collect();
        writer.append(&key, entries)?;
    }
    say(quiet, format!("writer appended 20000 entries in 20 signed batches in {:.1?}", t.elapsed()));
    for (name, node) in [("relay", &relay), ("reader-1", &readers[0]), ("reader-2", &readers[1])] {
        wait_for(node, &key, 20_000, Duration::from_secs(60))?;
        say(quiet, format!("{name:<8} verified and stored 20000 entries after {:.1?}", t.elapsed()));
    }

    // Live appends, one at a time, timed to their arrival at each reader.
    for r in &readers {
        while r.events.try_recv().is_ok() {}
    }
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); readers.len()];
    let mut commits = Vec::new();
    while writer.events.try_recv().is_ok() {}
    let mut relay = Some(relay);
    let mut length;
    for i in 0..200u64 {
        if i == 100 {
            // Stop the relay mid-stream; the writer keeps writing; the relay comes back from its
            // store on the same address and the readers reconnect to it.
            relay.take().expect("running").stop();
            let lost = writer.append(&key, vec![b"written while the relay was down".to_vec()])?;
            length = lost;
            let mut config = node_config(&dir("relay"), true, vec![writer_addr]);
            config.listen = Some(relay_addr);
            let restarted = NodeThread::spawn(config, vec![key])?;
            say(quiet, format!("relay stopped at append {i} and restarted from its store"));
            for r in &readers {
                wait_for(r, &key, length, Duration::from_secs(30))?;
                while r.events.try_recv().is_ok() {}
            }
            while writer.events.try_recv().is_ok() {}
            relay = Some(restarted);
        }
        let sent = Instant::now();
        length = writer.append(&key, vec![format!("live update {i}").into_bytes()])?;
        // From the moment the writer's head is durable on its disk to its arrival, verified,
        // at each reader.
        let committed = arrival(&writer, length, Duration::from_secs(10))?;
        commits.push(committed.saturating_duration_since(sent));
        for (r, out) in readers.iter().zip(latencies.iter_mut()) {
            let at = arrival(r, length, Duration::from_secs(10))?;
            out.push(at.saturating_duration_since(committed));
        }
    }
    commits.sort();
    say(quiet, format!("writer: append with a durable commit p50 {:.0?}", percentile(&commits, 0.5)));
    for (n, l) in latencies.iter_mut().enumerate() {
        l.sort();
        say(
            quiet,
            format!(
                "reader-{}: {} live appends, commit -> verified at reader via the relay (2 TCP hops): p50 {:.0?} p99 {:.0?}",
                n + 1,
                l.len(),
                percentile(l, 0.5),
                percentile(l, 0.99)
            ),
        );
    }

    // Everyone converged on the writer's head.
    let want = writer.lengths(&key)?.ok_or("writer lost its feed")?;
    let relay = relay.expect("running");
    wait_for(&relay, &key, want.0, Duration::from_secs(30))?;
    for (name, node) in [("writer", &writer), ("relay", &relay), ("reader-1", &readers[0]), ("reader-2", &readers[1])] {
        let got = node.lengths(&key)?.ok_or("feed missing")?;
        if got != want || node.get(&key, want.0 - 1)? != writer.get(&key, want.0 - 1)? {
            return Err(format!("{name} did not converge: {got:?} vs {want:?}").into());
        }
        say(quiet, format!("  {name:<8} length {:>6}, all entries held and verified", got.0));
    }
    drop(readers);
    relay.stop();
    writer.stop();
    println!("demo ok: 4 nodes on loopback TCP converged at length {}", want.0);
    Ok(())
}

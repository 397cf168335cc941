//! The `isocore app` subcommands: publish a component as a release, install an app from its
//! channel, list, run and stop apps.
//!
//! Installed apps are remembered in `DATA/apps/<discovery key>` (the feed, the release
//! position, what the user granted); compiled components are cached in `DATA/artifacts/`,
//! which only this node writes.

use crate::node::{create_feed, format_feed_key, open_db};
use isocore_host::app::{self, AppLimits, Pin, Release, Request};
use isocore_host::{Node, NodeConfig};
use isocore_log::{Feed, FeedKey};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What `app publish` was asked to do.
pub struct PublishArgs {
    /// The component file.
    pub component: PathBuf,
    /// The app's feed (created if absent).
    pub feed: Option<FeedKey>,
    /// `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// Requests in text form (see [`parse_request`]).
    pub requests: Vec<String>,
    /// Release notes.
    pub notes: String,
    /// Linear memory per process.
    pub memory: u64,
    /// Processes at once.
    pub processes: u32,
}

/// Parses `channel:HEX:MODE:/path[:reason]` or `invoke:NODEHEX:INTERFACE[:reason]`.
pub fn parse_request(text: &str) -> Result<Request> {
    let parts: Vec<&str> = text.splitn(5, ':').collect();
    let key = |s: &str| -> Result<[u8; 32]> {
        hex::decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("`{s}` is not 32 bytes of hex").into())
    };
    match parts.as_slice() {
        ["channel", channel, mode, path, rest @ ..] => {
            let mode = match *mode {
                "relay" => 0,
                "read" => 1,
                "write" => 2,
                "admin" => 3,
                other => return Err(format!("unknown mode `{other}` (relay, read, write, admin)").into()),
            };
            if isocore_cap::Path::parse(path).is_none() {
                return Err(format!("`{path}` is not a path like /a/b").into());
            }
            Ok(Request::Channel { channel: key(channel)?, mode, path: path.to_string(), reason: rest.join(":") })
        }
        ["invoke", node, interface, rest @ ..] => {
            Ok(Request::Invoke { node: key(node)?, interface: interface.to_string(), reason: rest.join(":") })
        }
        _ => Err(format!(
            "cannot read request `{text}`: channel:HEX:MODE:/path[:reason] or invoke:NODE:INTERFACE[:reason]"
        )
        .into()),
    }
}

fn describe(r: &Request) -> String {
    match r {
        Request::Channel { channel, mode, path, reason } => {
            let mode = ["relay", "read", "write", "admin"][usize::from(*mode).min(3)];
            format!("{mode} channel {}…{path} ({reason})", &hex::encode(channel)[..12])
        }
        Request::Invoke { node, interface, reason } => {
            format!("call {interface} on {}… ({reason})", &hex::encode(node)[..12])
        }
    }
}

fn host_node(data: &Path, max_processes: u32) -> Result<Node> {
    let config = NodeConfig { max_processes, ..NodeConfig::default() };
    Ok(Node::with_cache(config, Some(data.join("artifacts")))?)
}

/// Publishes a component as a new release; prints the app's key and the release position.
pub fn publish(data: &Path, args: PublishArgs) -> Result<()> {
    let bytes = std::fs::read(&args.component).map_err(|e| format!("cannot read {}: {e}", args.component.display()))?;
    // Check it here first, so that a release nobody could install is never published.
    let node = host_node(data, 1)?;
    let loaded = node.load(&bytes).map_err(|e| format!("{}: {e}", args.component.display()))?;
    let mut imports = loaded.imports().to_vec();
    imports.sort();
    let version = {
        let v: Vec<u32> = args
            .version
            .split('.')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| "version must be MAJOR.MINOR.PATCH")?;
        let [a, b, c] = v[..] else { return Err("version must be MAJOR.MINOR.PATCH".into()) };
        (a, b, c)
    };
    let requests = args.requests.iter().map(|r| parse_request(r)).collect::<Result<Vec<_>>>()?;
    let release = Release {
        notes: args.notes,
        ..Release::new(version, imports, requests, AppLimits { memory: args.memory, processes: args.processes })
    };
    let db = open_db(data)?;
    let key = match args.feed {
        Some(k) => k,
        None => create_feed(&db)?,
    };
    let seed = db.writer_seed(&key)?.ok_or("this node does not write that feed")?;
    let mut feed = Feed::open(key, db.feed(&key, true)?)?;
    let at = app::publish(&mut feed, &ed25519_dalek::SigningKey::from_bytes(&seed), release, &bytes)?;
    println!("{} {at}", format_feed_key(&key));
    Ok(())
}

fn record_path(data: &Path, key: &FeedKey) -> PathBuf {
    data.join("apps").join(hex::encode(key.discovery_key()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    feed: String,
    at: u64,
    granted: Vec<Request>,
}

fn read_record(data: &Path, key: &FeedKey) -> Result<Option<Record>> {
    match std::fs::read(record_path(data, key)) {
        Ok(bytes) => Ok(Some(postcard::from_bytes(&bytes).map_err(|_| "the installed-app record is corrupt")?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Installs (or upgrades, or with `at` pins) the app published in `key`, which this node
/// must hold (follow it from a peer first). Asks for each new request on a terminal; `yes`
/// approves them all.
pub fn install(data: &Path, key: &FeedKey, at: Option<u64>, yes: bool) -> Result<()> {
    let db = open_db(data)?;
    if !db.feeds()?.contains(key) {
        return Err("unknown app channel: follow it from a peer first (isocore follow KEY --connect ADDR)".into());
    }
    let feed = Feed::open(*key, db.feed(key, false)?)?;
    let previous = read_record(data, key)?;
    let node = host_node(data, 1)?;
    let interactive = std::io::stdin().is_terminal();
    let mut consent = |release: &Release, asked: &[Request]| -> Vec<Request> {
        let (a, b, c) = release.version;
        eprintln!("release {a}.{b}.{c} asks for:");
        asked
            .iter()
            .filter(|r| {
                if yes {
                    eprintln!("  granted: {}", describe(r));
                    return true;
                }
                if !interactive {
                    eprintln!("  not granted (no terminal; pass --yes): {}", describe(r));
                    return false;
                }
                eprint!("  grant {}? [y/N] ", describe(r));
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                line.trim().eq_ignore_ascii_case("y")
            })
            .cloned()
            .collect()
    };
    let pin = at.map_or(Pin::Latest, Pin::At);
    let installed = app::install(&node, &feed, pin, &mut consent, previous.as_ref().map(|r| r.granted.as_slice()))?;
    let record = Record { feed: format_feed_key(key), at: installed.at, granted: installed.granted.clone() };
    let path = record_path(data, key);
    std::fs::create_dir_all(path.parent().expect("apps dir"))?;
    std::fs::write(&path, postcard::to_allocvec(&record)?)?;
    let (a, b, c) = installed.release.version;
    println!(
        "installed {a}.{b}.{c} (release {}) with {} of {} requests granted",
        installed.at,
        installed.granted.len(),
        installed.release.requests.len()
    );
    Ok(())
}

/// Lists installed apps with their release and the newest one held.
pub fn list(data: &Path) -> Result<()> {
    let dir = data.join("apps");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    let db = open_db(data)?;
    for entry in entries {
        let entry = entry?;
        if entry.path().extension().is_some() {
            continue;
        }
        let record: Record =
            postcard::from_bytes(&std::fs::read(entry.path())?).map_err(|_| "corrupt installed-app record")?;
        let key = crate::node::parse_feed_key(&record.feed)?;
        let feed = Feed::open(key, db.feed(&key, false)?)?;
        let (_, release) = app::find_release(&feed, Pin::At(record.at))?;
        let newest = app::find_release(&feed, Pin::Latest).map(|(at, _)| at).unwrap_or(record.at);
        let (a, b, c) = release.version;
        let running = if pid_alive(&entry.path().with_extension("pid")) { " running" } else { "" };
        println!(
            "{} {a}.{b}.{c} release {}{} granted {}{running}",
            record.feed,
            record.at,
            if newest > record.at { format!(" (newer release {newest} held)") } else { String::new() },
            record.granted.len()
        );
    }
    Ok(())
}

fn pid_alive(path: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<i32>().ok()) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Runs `processes` processes of the installed app with `init`, until they all exit or
/// `isocore app stop` ends this command.
pub fn run(data: &Path, key: &FeedKey, init: &[u8], processes: u32) -> Result<()> {
    let record = read_record(data, key)?.ok_or("not installed: isocore app install KEY")?;
    let pidfile = record_path(data, key).with_extension("pid");
    if pid_alive(&pidfile) {
        return Err("already running (isocore app stop KEY)".into());
    }
    let (node, mut running) = {
        let db = open_db(data)?;
        let feed = Feed::open(*key, db.feed(key, false)?)?;
        let node = host_node(data, processes.max(1) * 4)?;
        // Checked again from the feed; it runs with exactly the grants made at install.
        let (at, release, loaded) = app::check_release(&node, &feed, Pin::At(record.at))?;
        let installed = app::Installed { at, release, granted: record.granted, app: loaded };
        (node, app::Running::new(installed))
    };
    let mut monitors = Vec::new();
    for _ in 0..processes {
        let pid = running.start(&node, init)?;
        monitors.push((pid, node.monitor(pid).ok_or("a process exited at once")?));
    }
    std::fs::write(&pidfile, std::process::id().to_string())?;
    println!("running {} processes: {:?}", monitors.len(), running.pids());
    std::io::stdout().flush()?;
    for (pid, m) in monitors {
        let reason = smol::block_on(m.exited());
        eprintln!("process {pid} exited: {reason}");
    }
    let _ = std::fs::remove_file(&pidfile);
    Ok(())
}

/// Stops a running app (ends its `isocore app run`).
pub fn stop(data: &Path, key: &FeedKey) -> Result<()> {
    let pidfile = record_path(data, key).with_extension("pid");
    let pid: i32 = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()).ok_or("not running")?;
    if !pid_alive(&pidfile) {
        let _ = std::fs::remove_file(&pidfile);
        return Err("not running".into());
    }
    // SAFETY: sends SIGTERM to the process that wrote the pid file.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let _ = std::fs::remove_file(&pidfile);
    println!("stopped");
    Ok(())
}

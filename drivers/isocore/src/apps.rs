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
    /// Interfaces the app exports for other nodes to call.
    pub exports: Vec<String>,
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
        ["invoke", node, ..] => {
            // The interface's own name has colons (`isocore:chat/room@0.1.0`): it runs to the
            // first colon after its version.
            let rest = text.splitn(3, ':').nth(2).unwrap_or_default();
            let version = rest.find('@').unwrap_or(0);
            let end = rest[version..].find(':').map_or(rest.len(), |i| version + i);
            let (interface, reason) = (&rest[..end], rest[end..].strip_prefix(':').unwrap_or_default());
            if interface.is_empty() {
                return Err(format!("request `{text}` names no interface").into());
            }
            Ok(Request::Invoke { node: key(node)?, interface: interface.to_string(), reason: reason.to_string() })
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
    let mut exports = args.exports;
    exports.sort();
    exports.dedup();
    let release = Release {
        notes: args.notes,
        exports,
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
    version: (u32, u32, u32),
    granted: Vec<Request>,
    /// Invoke capabilities other nodes issued to this one for the app's calls.
    caps: Vec<Vec<u8>>,
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
    let record = Record {
        feed: format_feed_key(key),
        at: installed.at,
        version: installed.release.version,
        granted: installed.granted.clone(),
        caps: previous.map(|r| r.caps).unwrap_or_default(),
    };
    write_record(data, key, &record)?;
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
    // A running app's node holds the database; newer releases are then not looked for.
    let db = open_db(data).ok();
    for entry in entries {
        let entry = entry?;
        if entry.path().extension().is_some() {
            continue;
        }
        let record: Record =
            postcard::from_bytes(&std::fs::read(entry.path())?).map_err(|_| "corrupt installed-app record")?;
        let key = crate::node::parse_feed_key(&record.feed)?;
        let newest = match &db {
            Some(db) => {
                let feed = Feed::open(key, db.feed(&key, false)?)?;
                app::find_release(&feed, Pin::Latest).map(|(at, _)| at).unwrap_or(record.at)
            }
            None => record.at,
        };
        let (a, b, c) = record.version;
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

/// Where an app's node listens and whom it dials.
pub struct Network {
    /// Address to accept connections on.
    pub listen: Option<std::net::SocketAddr>,
    /// Peers to dial.
    pub connect: Vec<std::net::SocketAddr>,
}

/// Runs `processes` processes of the installed app with `init` on a node of the network,
/// until they all exit or `isocore app stop` ends this command. The app's feeds are the
/// node's, and the interfaces its release exports answer calls from peers that present an
/// Invoke capability ([`grant`]).
pub fn run(data: &Path, key: &FeedKey, init: &[u8], processes: u32, network: Network) -> Result<()> {
    let record = read_record(data, key)?.ok_or("not installed: isocore app install KEY")?;
    let pidfile = record_path(data, key).with_extension("pid");
    if pid_alive(&pidfile) {
        return Err("already running (isocore app stop KEY)".into());
    }
    let host = host_node(data, processes.max(1) * 4)?;
    // Checked again from the feed before it runs; the database is closed again before the
    // node, which owns it, starts.
    let installed = {
        let db = open_db(data)?;
        let feed = Feed::open(*key, db.feed(key, false)?)?;
        let (at, release, loaded) = app::check_release(&host, &feed, Pin::At(record.at))?;
        loaded.set_grants(record.granted.clone());
        loaded.set_exports(release.exports.clone());
        loaded.set_capabilities(record.caps.clone());
        app::Installed { at, release, granted: record.granted, app: loaded }
    };
    let mut config = crate::node::NodeConfig::new(data);
    config.listen = network.listen;
    config.connect = network.connect;
    let mut net = crate::thread::NodeThread::spawn(config, Vec::new())?;
    net.discard_events();
    let host = std::sync::Arc::new(host);
    host.set_channels(std::sync::Arc::new(crate::services::NodeFeeds(net.handle())))?;
    host.set_remote(std::sync::Arc::new(crate::services::NodeRemote(net.handle())))?;
    let mut running = app::Running::new(installed);
    let mut monitors = Vec::new();
    for _ in 0..processes {
        let pid = running.start(&host, init)?;
        monitors.push((pid, host.monitor(pid).ok_or("a process exited at once")?));
    }
    // The first process answers for every interface the release exports.
    if let Some(&(first, _)) = monitors.first() {
        for name in &running.installed().release.exports {
            host.export(isocore_cap::interface_id(name), &running.installed().app, first);
        }
    }
    net.serve_calls(host.clone())?;
    std::fs::write(&pidfile, std::process::id().to_string())?;
    if let Some(addr) = net.addr {
        println!("listening on {addr}");
    }
    println!("running {} processes: {:?}", monitors.len(), running.pids());
    std::io::stdout().flush()?;
    for (pid, m) in monitors {
        let reason = smol::block_on(m.exited());
        eprintln!("process {pid} exited: {reason}");
    }
    let _ = std::fs::remove_file(&pidfile);
    Ok(())
}

/// Gives an installed app a capability another node issued to this one, for its calls there.
pub fn add_capability(data: &Path, key: &FeedKey, chain: Vec<u8>) -> Result<()> {
    let mut record = read_record(data, key)?.ok_or("not installed: isocore app install KEY")?;
    let decoded = isocore_cap::UnverifiedChain::decode(&chain).map_err(|e| format!("not a capability: {e:?}"))?;
    let isocore_cap::Root::Node(node) = *decoded.root() else {
        return Err("not a capability for calls: it is not rooted at a node".into());
    };
    if !record.caps.contains(&chain) {
        record.caps.push(chain);
    }
    write_record(data, key, &record)?;
    println!("the app holds {} capabilities; this one is for calls to {}", record.caps.len(), hex::encode(node));
    Ok(())
}

fn write_record(data: &Path, key: &FeedKey, record: &Record) -> Result<()> {
    let path = record_path(data, key);
    std::fs::create_dir_all(path.parent().expect("apps dir"))?;
    std::fs::write(&path, postcard::to_allocvec(record)?)?;
    Ok(())
}

/// What `app grant` lets a caller do.
pub struct GrantArgs {
    /// The caller's node key.
    pub to: [u8; 32],
    /// The interface (default: the app's only export).
    pub interface: Option<String>,
    /// Methods allowed (default: all).
    pub methods: Vec<u8>,
    /// Fuel per call at most (default: unbounded).
    pub fuel: Option<u64>,
    /// Days until it expires (default: never).
    pub days: Option<u64>,
}

/// Issues an Invoke capability, signed by this node, for calls into an installed app's
/// exported interface; prints it in hex.
pub fn grant(data: &Path, key: &FeedKey, args: GrantArgs) -> Result<()> {
    let record = read_record(data, key)?.ok_or("not installed: isocore app install KEY")?;
    let release = {
        let db = open_db(data)?;
        let feed = Feed::open(*key, db.feed(key, false)?)?;
        app::find_release(&feed, Pin::At(record.at))?.1
    };
    let interface = match (args.interface, release.exports.as_slice()) {
        (Some(i), exports) if exports.contains(&i) => i,
        (Some(i), _) => return Err(format!("the app does not export {i}").into()),
        (None, [only]) => only.clone(),
        (None, []) => return Err("the app exports no interface".into()),
        (None, _) => return Err("the app exports several interfaces: pick one with --interface".into()),
    };
    let mut grant =
        isocore_cap::Grant::to(args.to).component(release.component).interface(isocore_cap::interface_id(&interface));
    if !args.methods.is_empty() {
        if let Some(m) = args.methods.iter().find(|m| **m >= 64) {
            return Err(format!("method {m}: a capability names methods 0 to 63").into());
        }
        grant = grant.methods(args.methods.iter().fold(0u64, |mask, m| mask | 1 << m));
    }
    if let Some(fuel) = args.fuel {
        grant = grant.fuel(fuel);
    }
    if let Some(days) = args.days {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        grant = grant.expires(now + days * 86_400);
    }
    let identity = crate::node::load_identity(data)?;
    let chain = grant
        .issue(isocore_cap::Root::Node(identity.peer_id().0), identity.signing_key())
        .map_err(|e| format!("cannot issue: {e:?}"))?;
    println!("{}", hex::encode(chain));
    Ok(())
}

/// Calls `method` of `interface` on the node at `addr`, presenting the Invoke capability
/// `chain` (proven over this session with this node's key); prints the answer in hex.
pub fn call(
    data: &Path,
    addr: std::net::SocketAddr,
    interface: &str,
    method: u8,
    args: &[u8],
    chain: &[u8],
    fuel: u64,
) -> Result<()> {
    use isocore_proto::EndpointEvent;
    let head = *isocore_cap::UnverifiedChain::decode(chain)
        .map_err(|e| format!("not a capability: {e:?}"))?
        .link_ids()
        .last()
        .ok_or("empty capability")?;
    let signer = crate::node::load_identity(data)?.signing_key().clone();
    let mut config = crate::node::NodeConfig::new(data);
    config.connect = vec![addr];
    let net = crate::thread::NodeThread::spawn(config, Vec::new())?;
    let deadline = std::time::Instant::now() + crate::services::CALL_TIMEOUT;
    let next = || -> Result<EndpointEvent> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        Ok(net.events.recv_timeout(left).map_err(|_| format!("no answer from {addr} in time"))?.0)
    };
    let connection = loop {
        if let EndpointEvent::Connected { connection, .. } = next()? {
            break connection;
        }
    };
    let (_, hash) = net.session(connection)?.ok_or("the connection closed")?;
    let proof = isocore_cap::prove_possession(&signer, &hash, &head);
    let interface = isocore_cap::interface_id(interface);
    let call = isocore_host::Call { interface: &interface, method, args, fuel };
    let (method, payload) = isocore_host::remote::outgoing(&call, chain, proof);
    let id = net.call(connection, interface, &method, payload)?.ok_or("the connection closed")?;
    loop {
        match next()? {
            EndpointEvent::Reply { connection: c, id: i, payload } if c == connection && i == id => {
                println!("{}", hex::encode(&payload));
                return Ok(());
            }
            EndpointEvent::CallFailed { connection: c, id: i, code, reason } if c == connection && i == id => {
                return Err(format!("call refused (code {code}): {reason}").into());
            }
            EndpointEvent::NotAdmitted { connection: c, .. } if c == connection => {
                return Err("the node is too busy: it did not admit the call".into());
            }
            EndpointEvent::Closed { connection: c, error } if c == connection => {
                return Err(format!("the connection closed: {error}").into());
            }
            _ => {}
        }
    }
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

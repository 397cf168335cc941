//! The `isocore` command.

use clap::{Parser, Subcommand};
use isocore_node::node::{NodeConfig, create_feed, default_data_dir, format_feed_key, open_db, parse_feed_key};
use isocore_node::thread::NodeThread;
use isocore_proto::EndpointEvent;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "isocore", version, about = "A node for local-first applications: signed feeds, replicated live")]
struct Cli {
    /// Data directory (identity and database). Default: $ISOCORE_HOME or ~/.local/share/isocore.
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: serve its feeds, follow others, relay to peers.
    #[command(alias = "serve")]
    Node {
        /// Address to listen on, e.g. 127.0.0.1:7700.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Peers to connect to (repeatable).
        #[arg(long)]
        connect: Vec<SocketAddr>,
        /// Feeds to follow (repeatable).
        #[arg(long)]
        follow: Vec<String>,
        /// Append each line of standard input to this feed (which the node must write).
        #[arg(long)]
        append_stdin: Option<String>,
    },
    /// Create a feed written by this node; prints its key.
    Create,
    /// Append entries to a feed this node writes (from arguments, --file, or stdin lines).
    Append {
        /// The feed key.
        feed: String,
        /// Entries.
        entries: Vec<String>,
        /// Append the whole file as one entry.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print entries of a feed held here.
    Read {
        /// The feed key.
        feed: String,
        /// First entry.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// One past the last entry (default: the end).
        #[arg(long)]
        end: Option<u64>,
    },
    /// Follow a feed from a peer and print entries as they arrive.
    Follow {
        /// The feed key.
        feed: String,
        /// Peer to follow from.
        #[arg(long)]
        connect: Vec<SocketAddr>,
    },
    /// Show this node's identity and feeds.
    Info,
    /// Apps: publish a component as a release, install, list, run and stop.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Call a method of an interface another node exports, with a capability it issued.
    Call {
        /// The node's address.
        addr: SocketAddr,
        /// The interface, e.g. isocore:chat/room@0.1.0.
        interface: String,
        /// The method's number.
        method: u8,
        /// The arguments (text).
        #[arg(default_value = "")]
        args: String,
        /// The arguments in hex instead.
        #[arg(long, conflicts_with = "args")]
        args_hex: Option<String>,
        /// The capability, in hex (from the other node's `isocore app grant`).
        #[arg(long)]
        cap: String,
        /// Fuel the call may spend.
        #[arg(long, default_value_t = 1_000_000)]
        fuel: u64,
    },
    /// Start four nodes on loopback and show live replication through a relay.
    Demo {
        /// Print only the final line.
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Publish a component as a new release of an app (a new app channel unless --feed).
    Publish {
        /// The component (.wasm).
        component: PathBuf,
        /// The app's feed, which this node writes.
        #[arg(long)]
        feed: Option<String>,
        /// Release version, MAJOR.MINOR.PATCH.
        #[arg(long, default_value = "0.1.0")]
        version: String,
        /// A capability the app asks for: channel:HEX:MODE:/path[:reason] or
        /// invoke:NODE:INTERFACE[:reason] (repeatable).
        #[arg(long = "request")]
        requests: Vec<String>,
        /// Release notes.
        #[arg(long, default_value = "")]
        notes: String,
        /// Linear memory per process, in bytes.
        #[arg(long, default_value_t = 4 << 20)]
        memory: u64,
        /// Processes at once.
        #[arg(long, default_value_t = 64)]
        processes: u32,
        /// An interface the app exports for other nodes to call, e.g. isocore:chat/room@0.1.0
        /// (repeatable).
        #[arg(long = "export")]
        exports: Vec<String>,
    },
    /// Install the newest release of an app held here (or --at a given one, to roll back).
    Install {
        /// The app's feed key.
        feed: String,
        /// Release position to pin.
        #[arg(long)]
        at: Option<u64>,
        /// Grant every requested capability without asking.
        #[arg(long)]
        yes: bool,
    },
    /// List installed apps.
    List,
    /// Run an installed app's processes until they exit or `app stop`.
    Run {
        /// The app's feed key.
        feed: String,
        /// The init argument of each process.
        #[arg(long, default_value = "")]
        init: String,
        /// The init argument in hex (for binary arguments such as a feed key).
        #[arg(long, conflicts_with = "init")]
        init_hex: Option<String>,
        /// How many processes to start.
        #[arg(long, default_value_t = 1)]
        processes: u32,
        /// Address to accept connections (and calls) on.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Peers to connect to (repeatable).
        #[arg(long)]
        connect: Vec<SocketAddr>,
    },
    /// Give an installed app a capability another node issued to this one (`app grant` there),
    /// for the app's calls to it.
    Cap {
        /// The app's feed key.
        feed: String,
        /// The capability, in hex.
        cap: String,
    },
    /// Issue a capability to call an installed app's exported interface on this node;
    /// prints it in hex, for the caller's `isocore call --cap`.
    Grant {
        /// The app's feed key.
        feed: String,
        /// The caller's node key (its `isocore info` peer), hex.
        #[arg(long)]
        to: String,
        /// The interface (default: the app's only export).
        #[arg(long)]
        interface: Option<String>,
        /// Methods allowed, e.g. 0,1 (default: all).
        #[arg(long, value_delimiter = ',')]
        methods: Vec<u8>,
        /// Most fuel per call (default: unbounded).
        #[arg(long)]
        fuel: Option<u64>,
        /// Days until it expires (default: never).
        #[arg(long)]
        days: Option<u64>,
    },
    /// Stop a running app.
    Stop {
        /// The app's feed key.
        feed: String,
    },
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).init();
    let data = cli.data.clone().unwrap_or_else(default_data_dir);
    match run(cli.command, data) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isocore: {e}");
            ExitCode::FAILURE
        }
    }
}

fn feed_key(text: &str) -> Result<isocore_log::FeedKey> {
    parse_feed_key(text).map_err(|e| format!("bad feed key: {e}").into())
}

fn open(data: &std::path::Path) -> Result<isocore_node::store::Db> {
    open_db(data).map_err(|e| {
        let text = e.to_string();
        if text.contains("already open") || text.contains("lock") {
            format!("{} is in use by a running node", data.display()).into()
        } else {
            e.into()
        }
    })
}

fn run(command: Command, data: PathBuf) -> Result<()> {
    match command {
        Command::Demo { quiet } => isocore_node::demo::run(quiet),
        Command::Call { addr, interface, method, args, args_hex, cap, fuel } => {
            let args = match args_hex {
                Some(h) => hex::decode(h.trim()).map_err(|_| "--args-hex is not hex")?,
                None => args.into_bytes(),
            };
            let chain = hex::decode(cap.trim()).map_err(|_| "--cap is not hex")?;
            isocore_node::apps::call(&data, addr, &interface, method, &args, &chain, fuel)
        }
        Command::App { command } => {
            use isocore_node::apps;
            match command {
                AppCommand::Publish { component, feed, version, requests, notes, memory, processes, exports } => {
                    let feed = feed.as_deref().map(feed_key).transpose()?;
                    apps::publish(
                        &data,
                        apps::PublishArgs { component, exports, feed, version, requests, notes, memory, processes },
                    )
                }
                AppCommand::Install { feed, at, yes } => apps::install(&data, &feed_key(&feed)?, at, yes),
                AppCommand::List => apps::list(&data),
                AppCommand::Run { feed, init, init_hex, processes, listen, connect } => {
                    let init = match init_hex {
                        Some(h) => hex::decode(h.trim()).map_err(|_| "--init-hex is not hex")?,
                        None => init.into_bytes(),
                    };
                    apps::run(&data, &feed_key(&feed)?, &init, processes, apps::Network { listen, connect })
                }
                AppCommand::Cap { feed, cap } => {
                    let chain = hex::decode(cap.trim()).map_err(|_| "the capability is not hex")?;
                    apps::add_capability(&data, &feed_key(&feed)?, chain)
                }
                AppCommand::Grant { feed, to, interface, methods, fuel, days } => {
                    let to = hex::decode(to.trim())
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or("--to is not a 32-byte key in hex")?;
                    apps::grant(&data, &feed_key(&feed)?, apps::GrantArgs { to, interface, methods, fuel, days })
                }
                AppCommand::Stop { feed } => apps::stop(&data, &feed_key(&feed)?),
            }
        }
        Command::Create => {
            let key = create_feed(&open(&data)?)?;
            println!("{}", format_feed_key(&key));
            Ok(())
        }
        Command::Info => {
            let identity = isocore_node::node::load_identity(&data)?;
            println!("peer {}", hex::encode(identity.peer_id().0));
            let db = open(&data)?;
            for key in db.feeds()? {
                let writes = db.writer_seed(&key)?.is_some();
                let feed = isocore_log::Feed::open(key, db.feed(&key, false)?)?;
                println!(
                    "feed {} length {} held {}{}",
                    format_feed_key(&key),
                    feed.len(),
                    feed.contiguous_len(),
                    if writes { " (writer)" } else { "" }
                );
            }
            Ok(())
        }
        Command::Append { feed, entries, file } => {
            let key = feed_key(&feed)?;
            let mut list: Vec<Vec<u8>> = entries.into_iter().map(String::into_bytes).collect();
            if let Some(path) = file {
                list.push(std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?);
            }
            if list.is_empty() {
                for line in std::io::stdin().lock().lines() {
                    list.push(line?.into_bytes());
                }
            }
            let db = open(&data)?;
            let seed = db.writer_seed(&key)?.ok_or("this node does not write that feed")?;
            let mut f = isocore_log::Feed::open(key, db.feed(&key, true)?)?;
            let head = f.append(&ed25519_dalek::SigningKey::from_bytes(&seed), list)?;
            println!("{}", head.length);
            Ok(())
        }
        Command::Read { feed, start, end } => {
            let key = feed_key(&feed)?;
            let db = open(&data)?;
            if !db.feeds()?.contains(&key) {
                return Err("unknown feed: this node has never followed it".into());
            }
            let f = isocore_log::Feed::open(key, db.feed(&key, false)?)?;
            let end = end.unwrap_or(f.len()).min(f.len());
            let mut out = std::io::stdout().lock();
            for i in start..end {
                match f.get(i)? {
                    Some(e) => writeln!(out, "{i}\t{}", String::from_utf8_lossy(&e))?,
                    None => writeln!(out, "{i}\t(not held)")?,
                }
            }
            Ok(())
        }
        Command::Follow { feed, connect } => {
            let key = feed_key(&feed)?;
            let mut config = NodeConfig::new(&data);
            config.connect = connect;
            let node = NodeThread::spawn(config, vec![key])?;
            let mut printed = node.lengths(&key)?.map_or(0, |(_, c)| c);
            let mut out = std::io::stdout();
            // A long download shows its progress on a terminal (stderr, so output stays clean).
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut shown = false;
            while let Ok((event, _)) = node.events.recv() {
                if let EndpointEvent::FeedUpdated { contiguous, length, .. } = event {
                    if progress && length > contiguous + 1000 {
                        eprint!("\r{contiguous}/{length} entries ({:.0}%)", contiguous as f64 * 100.0 / length as f64);
                        shown = true;
                    } else if shown {
                        eprintln!("\r{contiguous}/{length} entries, caught up");
                        shown = false;
                    }
                    while printed < contiguous {
                        if let Some(e) = node.get(&key, printed)? {
                            writeln!(out, "{printed}\t{}", String::from_utf8_lossy(&e))?;
                        }
                        printed += 1;
                    }
                    out.flush()?;
                }
            }
            Ok(())
        }
        Command::Node { listen, connect, follow, append_stdin } => {
            let mut config = NodeConfig::new(&data);
            config.listen = listen;
            config.connect = connect;
            let follow = follow.iter().map(|f| feed_key(f)).collect::<Result<Vec<_>>>()?;
            let node = NodeThread::spawn(config, follow)?;
            if let Some(addr) = node.addr {
                println!("listening on {addr}");
            }
            std::io::stdout().flush()?;
            match append_stdin {
                Some(feed) => {
                    let key = feed_key(&feed)?;
                    for line in std::io::stdin().lock().lines() {
                        let length = node.append(&key, vec![line?.into_bytes()])?;
                        println!("{length}");
                        std::io::stdout().flush()?;
                    }
                    // Keep serving after input ends.
                    loop {
                        std::thread::park();
                    }
                }
                None => loop {
                    std::thread::park();
                },
            }
        }
    }
}

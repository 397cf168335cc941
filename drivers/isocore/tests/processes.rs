//! Real `isocore` processes on loopback: a writer, a relay and readers, with restarts, a
//! killed writer, and garbage on the wire. Every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_isocore");
const LIMIT: Duration = Duration::from_secs(30);

fn isocore(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data").arg(data).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    c
}

fn run(data: &Path, args: &[&str]) -> String {
    let out = isocore(data, args).stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "isocore {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A running process whose stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn start(mut command: Command, piped_stdin: bool) -> Proc {
        if piped_stdin {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines, stdin }
    }

    fn next_line(&self) -> String {
        self.lines.recv_timeout(LIMIT).expect("a line in time")
    }

    /// The address from the `listening on ADDR` line.
    fn address(&self) -> String {
        let line = self.next_line();
        line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line}")).to_string()
    }

    fn write_line(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// Read `index\tentry` lines until `count` entries arrived; returns them in order.
    fn entries(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + LIMIT;
        let mut out = Vec::new();
        while out.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("only {} of {count} entries", out.len()));
            let (index, entry) = line.split_once('\t').unwrap();
            assert_eq!(index.parse::<usize>().unwrap(), out.len(), "entries out of order");
            out.push(entry.to_string());
        }
        out
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn writer_relay_and_readers_as_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (w, r, a, b) = (dir.path().join("w"), dir.path().join("r"), dir.path().join("a"), dir.path().join("b"));
    let key = run(&w, &["create"]).trim().to_string();

    let mut writer = Proc::start(isocore(&w, &["node", "--listen", "127.0.0.1:0", "--append-stdin", &key]), true);
    let writer_addr = writer.address();
    let relay_port = free_port().to_string();
    let relay_addr = format!("127.0.0.1:{relay_port}");
    let relay_args = ["node", "--listen", &relay_addr, "--connect", &writer_addr, "--follow", &key];
    let mut relay = Proc::start(isocore(&r, &relay_args), false);
    assert_eq!(relay.address(), relay_addr);
    let reader_a = Proc::start(isocore(&a, &["follow", &key, "--connect", &relay_addr]), false);

    // Live: each line typed at the writer arrives at the reader through the relay.
    for i in 0..50 {
        writer.write_line(&format!("line {i}"));
        assert_eq!(writer.next_line(), (i + 1).to_string());
    }
    let got = reader_a.entries(50);
    assert_eq!(got[49], "line 49");

    // A reader joining late gets the history, then the live tail.
    let reader_b = Proc::start(isocore(&b, &["follow", &key, "--connect", &relay_addr]), false);
    let history = reader_b.entries(50);
    assert_eq!(history, got);

    // The relay is killed mid-stream; the writer keeps writing; the relay restarts on the
    // same address from its store, and both readers pick up where they were.
    relay.kill();
    for i in 50..60 {
        writer.write_line(&format!("line {i}"));
        writer.next_line();
    }
    let mut relay = Proc::start(isocore(&r, &relay_args), false);
    assert_eq!(relay.address(), relay_addr);
    for i in 60..70 {
        writer.write_line(&format!("line {i}"));
        writer.next_line();
    }
    for reader in [&reader_a, &reader_b] {
        let tail: Vec<String> = (0..20).map(|_| reader.next_line()).collect();
        let expected: Vec<String> = (50..70).map(|i| format!("{i}\tline {i}")).collect();
        assert_eq!(tail, expected);
    }
    relay.kill();
}

#[test]
fn writer_killed_during_appends_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w");
    let key = run(&w, &["create"]).trim().to_string();
    let mut writer = Proc::start(isocore(&w, &["node", "--listen", "127.0.0.1:0", "--append-stdin", &key]), true);
    writer.address();
    // Stream lines in without waiting, then kill -9 in the middle.
    let mut acknowledged = 0u64;
    for i in 0..2000 {
        writer.write_line(&format!("entry {i}"));
        while let Ok(line) = writer.lines.try_recv() {
            acknowledged = line.parse().unwrap();
        }
        if acknowledged >= 300 {
            break;
        }
    }
    writer.kill();
    // The store opens (every stored head verifies against its roots and signature) and holds
    // at least every append that was acknowledged, each entry intact.
    let info = run(&w, &["info"]);
    let length: u64 = info
        .lines()
        .find_map(|l| l.split("length ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(length >= acknowledged, "lost acknowledged appends: {length} < {acknowledged}");
    let read = run(&w, &["read", &key]);
    assert_eq!(read.lines().count() as u64, length);
    for (i, line) in read.lines().enumerate() {
        assert_eq!(line, format!("{i}\tentry {i}"));
    }
    // And it appends on from there.
    assert_eq!(run(&w, &["append", &key, "after the crash"]).trim(), (length + 1).to_string());
}

#[test]
fn garbage_on_the_socket_drops_that_peer_only() {
    let dir = tempfile::tempdir().unwrap();
    let (w, a) = (dir.path().join("w"), dir.path().join("a"));
    let key = run(&w, &["create"]).trim().to_string();
    let mut writer = Proc::start(isocore(&w, &["node", "--listen", "127.0.0.1:0", "--append-stdin", &key]), true);
    let addr = writer.address();
    let reader = Proc::start(isocore(&a, &["follow", &key, "--connect", &addr]), false);
    writer.write_line("before");
    writer.next_line();
    assert_eq!(reader.entries(1), ["before"]);

    let attacks: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  // not a handshake
        &[0x00, 0x05, 1, 2],                   // truncated frame, then silence
        &[0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0], // a 65 535-byte frame that never comes
        &[0x00, 0x00],                         // a zero-length frame
    ];
    for attack in attacks {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = s.write_all(attack);
        if attack.len() > 3 && attack[0] == b'G' {
            // The node closes a connection that does not speak the protocol.
            let mut buf = [0u8; 256];
            let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
            assert!(closed, "garbage was not refused");
        }
    }
    // Oversized: a flood of frames claiming to be handshake messages.
    let mut s = TcpStream::connect(&addr).unwrap();
    let _ = s.write_all(&vec![0x41; 200_000]);

    // The honest reader is still served, and the writer's feed is intact.
    writer.write_line("after");
    writer.next_line();
    assert_eq!(reader.next_line(), "1\tafter");
    drop(s);
    writer.kill();
    let read = run(&w, &["read", &key]);
    assert_eq!(read, "0\tbefore\n1\tafter\n");
}

#[test]
fn clear_errors_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fail = |args: &[&str]| {
        let out = isocore(d, args).stderr(Stdio::piped()).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(fail(&["read", "zz"]).contains("bad feed key"));
    let stranger = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    assert!(fail(&["read", stranger]).contains("unknown feed"));
    assert!(fail(&["append", stranger, "x"]).contains("does not write"));
    assert!(fail(&["node", "--listen", "not-an-address"]).contains("invalid"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    assert!(fail(&["node", "--listen", &port]).contains("cannot listen"));
}

fn failing(data: &Path, args: &[&str]) -> String {
    let out = isocore(data, args).stderr(Stdio::piped()).output().unwrap();
    assert!(!out.status.success(), "isocore {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn an_app_is_published_fetched_from_a_peer_installed_run_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (author, user) = (dir.path().join("author"), dir.path().join("user"));
    let echo = Path::new(isocore_host::GUESTS_DIR).join("echo.wasm");
    let channel = "07".repeat(32);
    let request = format!("channel:{channel}:read:/photos:show them");
    let published =
        run(&author, &["app", "publish", echo.to_str().unwrap(), "--version", "1.0.0", "--request", &request]);
    let key = published.split_whitespace().next().unwrap().to_string();
    assert!(failing(&user, &["app", "install", &key, "--yes"]).contains("follow it from a peer first"));

    // The user's node fetches the app channel from the author's node.
    let server = Proc::start(isocore(&author, &["node", "--listen", "127.0.0.1:0"]), false);
    let addr = server.address();
    let follower = Proc::start(isocore(&user, &["follow", &key, "--connect", &addr]), false);
    let deadline = Instant::now() + LIMIT;
    while !follower.lines.recv_timeout(LIMIT).unwrap().starts_with("1\t") {
        assert!(Instant::now() < deadline, "the component never arrived");
    }
    // Replicated data is made durable once a second; let that happen before killing it.
    std::thread::sleep(Duration::from_millis(1500));
    drop(follower);
    drop(server);

    let installed = run(&user, &["app", "install", &key, "--yes"]);
    assert!(installed.starts_with("installed 1.0.0 (release 0) with 1 of 1"), "{installed}");
    assert!(run(&user, &["app", "list"]).contains(&format!("{key} 1.0.0 release 0 granted 1")));
    let mut running = Proc::start(isocore(&user, &["app", "run", &key, "--processes", "3"]), false);
    assert!(running.next_line().starts_with("running 3 processes"));
    assert!(run(&user, &["app", "list"]).contains("running"));
    assert!(failing(&user, &["app", "run", &key]).contains("already running"));
    assert_eq!(run(&user, &["app", "stop", &key]).trim(), "stopped");
    let status = running.child.wait().unwrap();
    assert!(!status.success());
    assert!(!run(&user, &["app", "list"]).contains("running"));
    assert!(failing(&user, &["app", "stop", &key]).contains("not running"));
}

#[test]
fn app_commands_refuse_bad_input_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let not_wasm = dir.path().join("x.wasm");
    std::fs::write(&not_wasm, [0xffu8, 0xfe, 0, 1]).unwrap();
    assert!(failing(&data, &["app", "publish", not_wasm.to_str().unwrap()]).contains("not a WebAssembly component"));
    let echo = Path::new(isocore_host::GUESTS_DIR).join("echo.wasm");
    let echo = echo.to_str().unwrap();
    assert!(failing(&data, &["app", "publish", echo, "--version", "1.x"]).contains("MAJOR.MINOR.PATCH"));
    assert!(
        failing(&data, &["app", "publish", echo, "--request", "channel:zz:read:/a"]).contains("not 32 bytes of hex")
    );
    let bad_mode = format!("channel:{}:own:/a", "07".repeat(32));
    assert!(failing(&data, &["app", "publish", echo, "--request", &bad_mode]).contains("unknown mode"));
    let key = run(&data, &["app", "publish", echo]).split_whitespace().next().unwrap().to_string();
    assert!(failing(&data, &["app", "run", &key]).contains("not installed"));
    // A second release asking for write needs consent, which a non-terminal cannot give.
    run(&data, &["app", "install", &key]);
    let write = format!("channel:{}:write:/", "07".repeat(32));
    run(&data, &["app", "publish", echo, "--feed", &key, "--version", "1.1.0", "--request", &write]);
    assert!(failing(&data, &["app", "install", &key]).contains("needs fresh consent"));
    assert!(run(&data, &["app", "list"]).contains("release 0 (newer release 2 held)"));
}

fn entries_of(hex_page: &str) -> Vec<String> {
    let page: Vec<u8> =
        (0..hex_page.len() / 2).map(|i| u8::from_str_radix(&hex_page[2 * i..2 * i + 2], 16).unwrap()).collect();
    let mut out = Vec::new();
    let mut rest = &page[..];
    while rest.len() >= 4 {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(String::from_utf8(rest[4..4 + n].to_vec()).unwrap());
        rest = &rest[4 + n..];
    }
    out
}

#[test]
fn a_chat_app_is_called_from_another_node_and_its_room_replicates() {
    let dir = tempfile::tempdir().unwrap();
    let (host, caller, reader) = (dir.path().join("host"), dir.path().join("caller"), dir.path().join("reader"));
    let chat = Path::new(isocore_host::GUESTS_DIR).join("chat.wasm");
    let room = run(&host, &["create"]).trim().to_string();
    let request = format!("channel:{room}:write:/:the room's messages");
    let iface = "isocore:chat/room@0.1.0";
    let published = run(&host, &["app", "publish", chat.to_str().unwrap(), "--request", &request, "--export", iface]);
    let app = published.split_whitespace().next().unwrap().to_string();
    run(&host, &["app", "install", &app, "--yes"]);
    let peer_of = |data: &Path| run(data, &["info"]).lines().next().unwrap().strip_prefix("peer ").unwrap().to_string();
    let (peer, host_peer) = (peer_of(&caller), peer_of(&host));
    let cap = run(&host, &["app", "grant", &app, "--to", &peer, "--methods", "0,1"]).trim().to_string();
    // A second app, on a fourth node, calls the room from inside its process.
    let guest = dir.path().join("guest");
    let caller_wasm = Path::new(isocore_host::GUESTS_DIR).join("caller.wasm");
    let invoke = format!("invoke:{host_peer}:{iface}:post to the room");
    let client = run(&guest, &["app", "publish", caller_wasm.to_str().unwrap(), "--request", &invoke]);
    let client = client.split_whitespace().next().unwrap().to_string();
    run(&guest, &["app", "install", &client, "--yes"]);
    let guest_cap = run(&host, &["app", "grant", &app, "--to", &peer_of(&guest), "--methods", "0"]).trim().to_string();
    assert!(run(&guest, &["app", "cap", &client, &guest_cap]).contains(&format!("calls to {host_peer}")));

    let running =
        Proc::start(isocore(&host, &["app", "run", &app, "--init-hex", &room, "--listen", "127.0.0.1:0"]), false);
    let addr = running.address();
    assert!(running.next_line().starts_with("running 1 processes"));
    let follower = Proc::start(isocore(&reader, &["follow", &room, "--connect", &addr]), false);

    let call = |args: &[&str]| run(&caller, &[&["call", &addr, iface][..], args, &["--cap", &cap]].concat());
    assert_eq!(call(&["0", "hello from afar"]).trim(), "0100000000000000");
    assert_eq!(call(&["0", "and again"]).trim(), "0200000000000000");
    assert_eq!(entries_of(call(&["1", "--args-hex", "0000000000000000"]).trim()), ["hello from afar", "and again"]);
    // The posts are entries of the room, signed by the host and pushed live to its followers.
    assert_eq!(follower.entries(2), ["hello from afar", "and again"]);

    // A method outside the grant, and a capability held by someone else, are refused.
    let denied = failing(&caller, &["call", &addr, iface, "2", "--cap", &cap]);
    assert!(denied.contains("call refused (code 3)"), "{denied}");
    let thief = dir.path().join("thief");
    let stolen = failing(&thief, &["call", &addr, iface, "0", "spoofed", "--cap", &cap]);
    assert!(stolen.contains("call refused (code 2)"), "{stolen}");
    assert_eq!(entries_of(call(&["1"]).trim()).len(), 2, "nothing was posted by the refused calls");

    let init = format!("{host_peer}{}", "from a guest".bytes().map(|b| format!("{b:02x}")).collect::<String>());
    let client = Proc::start(isocore(&guest, &["app", "run", &client, "--init-hex", &init, "--connect", &addr]), false);
    assert!(client.next_line().starts_with("running 1 processes"));
    assert_eq!(follower.next_line(), "2\tfrom a guest");
}

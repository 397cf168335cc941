//! `cargo bench -p isocore-proto`: handshakes, session throughput, small calls and memory per
//! idle connection, each next to the bare Noise figure measured in the same run. Ends with one
//! JSON object on one line.

use isocore_log::FeedKey;
use isocore_proto::{Connection, ConnectionConfig, Event, Identity, Role};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes, to measure what an idle connection holds.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

const T0: Duration = Duration::ZERO;

fn pair(n: u64) -> (Connection, Connection) {
    pair_with(n, ConnectionConfig::default())
}

fn identities() -> &'static (Identity, Identity) {
    static IDS: std::sync::OnceLock<(Identity, Identity)> = std::sync::OnceLock::new();
    IDS.get_or_init(|| (Identity::from_seed([1; 32]), Identity::from_seed([2; 32])))
}

fn pair_with(n: u64, config: ConnectionConfig) -> (Connection, Connection) {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    let (a, b) = identities();
    let i = Connection::new(Role::Initiator, a, config.clone(), seed, T0);
    seed[9] = 1;
    let r = Connection::new(Role::Responder, b, config, seed, T0);
    (i, r)
}

/// Move bytes from `from` to `to`; returns whether any moved.
fn transfer(from: &mut Connection, to: &mut Connection, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    while from.poll_transmit(T0, buf).is_some() && buf.len() < 1 << 20 {}
    if buf.is_empty() {
        return false;
    }
    to.handle_input(T0, buf).unwrap();
    while let Some(e) = to.poll_event() {
        if let Event::StreamRequested { stream, .. } = e {
            to.accept_stream(stream, &feed());
        }
    }
    true
}

fn pump(a: &mut Connection, b: &mut Connection, buf: &mut Vec<u8>) {
    loop {
        let ab = transfer(a, b, buf);
        let ba = transfer(b, a, buf);
        if !ab && !ba {
            return;
        }
    }
}

fn feed() -> FeedKey {
    FeedKey::standalone(ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key())
}

struct CountingRandom(u64);
impl Random for CountingRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        for b in dest {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (self.0 >> 33) as u8;
        }
        Ok(())
    }
}
struct BenchResolver;
impl CryptoResolver for BenchResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(CountingRandom(7)))
    }
    fn resolve_dh(&self, c: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(c)
    }
    fn resolve_hash(&self, c: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(c)
    }
    fn resolve_cipher(&self, c: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(c)
    }
}

fn bare_snow(key_i: &[u8; 32], key_r: &[u8; 32]) -> (snow::TransportState, snow::TransportState) {
    fn build(key: &[u8; 32]) -> snow::Builder<'_> {
        snow::Builder::with_resolver("Noise_XX_25519_ChaChaPoly_BLAKE2s".parse().unwrap(), Box::new(BenchResolver))
            .local_private_key(key)
            .unwrap()
    }
    let mut i = build(key_i).build_initiator().unwrap();
    let mut r = build(key_r).build_responder().unwrap();
    let (mut buf, mut scratch) = (vec![0u8; 1024], vec![0u8; 1024]);
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut scratch).unwrap();
    let n = r.write_message(&[], &mut buf).unwrap();
    i.read_message(&buf[..n], &mut scratch).unwrap();
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut scratch).unwrap();
    (i.into_transport_mode().unwrap(), r.into_transport_mode().unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut buf = Vec::with_capacity(2 << 20);

    // Handshakes, both sides in this thread.
    let handshakes = median(
        (0..5)
            .map(|round| {
                let t = Instant::now();
                for n in 0..300u64 {
                    let (mut i, mut r) = pair(round * 1000 + n);
                    pump(&mut i, &mut r, &mut buf);
                    assert!(i.is_open() && r.is_open());
                }
                300.0 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let snow_handshakes = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for n in 0..300u32 {
                    let n = n as u8;
                    std::hint::black_box(bare_snow(&[n; 32], &[n ^ 0xff; 32]));
                }
                300.0 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );

    // 64 KiB stream messages one way.
    let (mut i, mut r) = pair_with(
        1,
        ConnectionConfig { stream_window: 64 << 20, connection_window: 64 << 20, ..ConnectionConfig::default() },
    );
    pump(&mut i, &mut r, &mut buf);
    let stream = i.open_stream(&feed()).unwrap();
    pump(&mut i, &mut r, &mut buf);
    let payload = vec![0xabu8; 64 << 10];
    let throughput = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let mut bytes = 0usize;
                for _ in 0..20 {
                    for _ in 0..16 {
                        i.send_stream(stream, &payload);
                    }
                    pump(&mut i, &mut r, &mut buf);
                    bytes += 16 * payload.len();
                }
                bytes as f64 / t.elapsed().as_secs_f64() / 1e6
            })
            .collect(),
    );
    let (mut si, mut sr) = bare_snow(&[1; 32], &[2; 32]);
    let chunk = vec![0xabu8; 65_519];
    let mut out = vec![0u8; 65_535];
    let mut back = vec![0u8; 65_535];
    let snow_throughput = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..200 {
                    let n = si.write_message(&chunk, &mut out).unwrap();
                    sr.read_message(&out[..n], &mut back).unwrap();
                }
                200.0 * chunk.len() as f64 / t.elapsed().as_secs_f64() / 1e6
            })
            .collect(),
    );

    // 64-byte calls, many per frame.
    let (mut i, mut r) = pair_with(2, ConnectionConfig { max_incoming_calls: 1000, ..ConnectionConfig::default() });
    pump(&mut i, &mut r, &mut buf);
    let small = [7u8; 64];
    let calls_per_s = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let mut n = 0;
                for _ in 0..50 {
                    for _ in 0..1000 {
                        i.call([1; 32], "m", &small);
                    }
                    let mut moved = Vec::new();
                    while i.poll_transmit(T0, &mut moved).is_some() {}
                    r.handle_input(T0, &moved).unwrap();
                    while let Some(e) = r.poll_event() {
                        if let Event::Call { id, .. } = e {
                            r.reply(id, b"");
                            n += 1;
                        }
                    }
                    pump(&mut i, &mut r, &mut buf);
                }
                n as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );

    // Memory per idle, established connection.
    drop((i, r));
    let before = LIVE.load(Ordering::Relaxed);
    let mut idle = Vec::new();
    for n in 0..500u64 {
        let (mut a, mut b) = pair(10_000 + n);
        pump(&mut a, &mut b, &mut buf);
        idle.push(a);
        idle.push(b);
    }
    let per_connection = (LIVE.load(Ordering::Relaxed) - before) as f64 / idle.len() as f64;
    drop(idle);

    println!("{:<52} {:>12} {:>10} {:>12} {:>7}", "measure", "value", "target", "bare snow", "ratio");
    let row = |name: &str, v: f64, target: f64, base: f64| {
        println!("{name:<52} {v:>12.0} {target:>10.0} {base:>12.0} {:>7.3}", v / base)
    };
    row("full handshakes with identities, both sides (/s)", handshakes, 2000.0, snow_handshakes);
    row("session, 64 KiB messages one way (MB/s)", throughput, 1000.0, snow_throughput);
    println!("{:<52} {calls_per_s:>12.0} {:>10}", "64 B calls, framed and encrypted (calls/s)", 500_000);
    println!("{:<52} {per_connection:>12.0} {:>10}", "memory per idle connection (bytes)", 16 * 1024);
    println!(
        "{{\"handshakes_per_s\":{handshakes:.0},\"snow_handshakes_per_s\":{snow_handshakes:.0},\"ratio_handshakes\":{:.3},\"session_mb_per_s\":{throughput:.0},\"snow_transport_mb_per_s\":{snow_throughput:.0},\"ratio_session\":{:.3},\"calls_per_s\":{calls_per_s:.0},\"idle_connection_bytes\":{per_connection:.0}}}",
        handshakes / snow_handshakes,
        throughput / snow_throughput
    );
}

//! Floods of hostile clients against a TLS listener on 127.0.0.1, bounded in clients and time:
//!
//! - [`flood`]: slow senders: each client opens a connection, sends all of a request but its
//!   end (all of a 1 MiB body but its last byte, say, or a long head without its blank line),
//!   waits until the server answers or drops it, and starts again;
//! - [`idle`]: idle connections (slowloris): each client connects and sends nothing (half of
//!   them after completing the TLS handshake, half not even a ClientHello), holds the
//!   connection until the server drops it, and connects again.

use std::{
    io::{Read, Write},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// What the clients managed.
#[derive(Debug, Default)]
pub struct Flooded {
    /// TLS handshakes completed.
    pub handshakes: u64,
    /// Connections that failed or were refused before a handshake.
    pub failed_connects: u64,
}

/// Runs `clients` threads of `client(i, counts)` (small stacks: a thousand of them are cheap)
/// and blocks until all have returned.
fn run_clients(clients: usize, client: impl Fn(usize, &Counts) + Sync) -> Flooded {
    let counts = Counts::default();
    std::thread::scope(|scope| {
        for i in 0..clients {
            let (client, counts) = (&client, &counts);
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(scope, move || client(i, counts))
                .expect("client thread");
        }
    });
    Flooded {
        handshakes: counts.handshakes.load(Ordering::Relaxed),
        failed_connects: counts.failed.load(Ordering::Relaxed),
    }
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed connect and waits a little before the next, so a refusing server is not
    /// spun against.
    fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a slow sender sends before it stalls: the head of a POST to `path` announcing a body
/// of `bytes`, and all of that body but its last byte.
pub fn unfinished_body(path: &str, bytes: usize) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {bytes}\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + bytes - 1, b' ');
    request
}

/// What a slow sender sends before it stalls: a request head to `path` of about `bytes` that
/// never ends (one long header, no blank line), which the server buffers until its head
/// timeout or its head size limit.
pub fn unfinished_head(path: &str, bytes: usize) -> Vec<u8> {
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ").into_bytes();
    request.resize(bytes.max(request.len()), b'a');
    request
}

/// Floods `port` with `clients` concurrent slow senders until `stop` is set (or for
/// `longest`): each connects, sends `request` (see [`unfinished_body`], [`unfinished_head`]),
/// holds the connection until the server answers or drops it, and connects again. Blocks
/// until they stop.
pub fn flood(
    port: u16,
    request: &[u8],
    clients: usize,
    stop: &AtomicBool,
    longest: Duration,
) -> Flooded {
    let deadline = Instant::now() + longest;
    let going = || Instant::now() < deadline && !stop.load(Ordering::Relaxed);
    // Socket operations wake up each second to see whether to stop.
    let wake = Some(Duration::from_secs(1));
    run_clients(clients, |_, counts| {
        while going() {
            let Some(mut stream) = super::webhook::tls_connect(port) else {
                counts.failed();
                continue;
            };
            counts.handshake();
            let _ = stream.get_ref().set_write_timeout(wake);
            let _ = stream.get_ref().set_read_timeout(wake);
            let mut sent = true;
            for chunk in request.chunks(16 * 1024) {
                if !going() || !write_patiently(&mut stream, chunk, going) {
                    sent = false;
                    break;
                }
            }
            if sent {
                hold(&mut stream, going);
            }
        }
    })
}

/// Writes all of `chunk`, retrying writes that time out while `going` holds; false once the
/// server fails the connection or `going` says to stop.
fn write_patiently(stream: &mut impl Write, mut chunk: &[u8], going: impl Fn() -> bool) -> bool {
    while !chunk.is_empty() {
        match stream.write(chunk) {
            Ok(0) => return false,
            Ok(n) => chunk = &chunk[n..],
            Err(e) if timed_out(&e) && going() => {}
            Err(_) => return false,
        }
    }
    true
}

/// Holds `clients` idle connections to `port` until `stop` is set (or for `longest`), each
/// connected again as soon as the server drops it; blocks until they stop. Even clients
/// complete the TLS handshake, odd ones send nothing at all.
pub fn idle(port: u16, clients: usize, stop: &AtomicBool, longest: Duration) -> Flooded {
    let deadline = Instant::now() + longest;
    let going = || Instant::now() < deadline && !stop.load(Ordering::Relaxed);
    // Reads wake up each second to see whether to stop.
    let wake = Some(Duration::from_secs(1));
    run_clients(clients, |i, counts| {
        while going() {
            let held = if i % 2 == 0 {
                super::webhook::tls_connect(port).map(|mut tls| {
                    counts.handshake();
                    let _ = tls.get_ref().set_read_timeout(wake);
                    hold(&mut tls, going);
                })
            } else {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|mut tcp| {
                        let _ = tcp.set_read_timeout(wake);
                        hold(&mut tcp, going);
                    })
            };
            if held.is_none() {
                counts.failed();
            }
        }
    })
}

/// Reads (and drops) whatever comes until the server closes the connection or fails it, or
/// `going` says to stop; a read timing out only wakes it to ask `going`.
fn hold(stream: &mut impl Read, going: impl Fn() -> bool) {
    let mut sink = [0u8; 1024];
    while going() {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Err(e) if !timed_out(&e) => break,
            _ => {}
        }
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

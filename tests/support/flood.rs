//! Floods of hostile clients against a TLS listener on 127.0.0.1, bounded in clients and time:
//!
//! - [`flood`]: slow request bodies: each client opens a connection, sends the head of a
//!   POST announcing a body (1 MiB, say) and then all of the body but its last byte, waits until the
//!   server answers or drops it, and starts again;
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

/// Floods `port` with `clients` concurrent clients, each announcing a body of `bytes`, for
/// `duration`; blocks until they stop.
pub fn flood(port: u16, path: &str, bytes: usize, clients: usize, duration: Duration) -> Flooded {
    let body = vec![b' '; bytes - 1];
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {bytes}\r\n\r\n"
    );
    let deadline = Instant::now() + duration;
    run_clients(clients, |_, counts| {
        while Instant::now() < deadline {
            let Some(mut stream) = super::webhook::tls_connect(port) else {
                counts.failed();
                continue;
            };
            counts.handshake();
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = Some(left.max(Duration::from_millis(10)));
            let _ = stream.get_ref().set_write_timeout(timeout);
            let _ = stream.get_ref().set_read_timeout(timeout);
            if stream.write_all(head.as_bytes()).is_err() {
                continue;
            }
            for chunk in body.chunks(16 * 1024) {
                if Instant::now() >= deadline || stream.write_all(chunk).is_err() {
                    break;
                }
            }
            hold(&mut stream, || Instant::now() < deadline);
        }
    })
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

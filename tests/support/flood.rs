//! Floods of hostile clients against a TLS listener on 127.0.0.1, bounded in clients and time:
//!
//! - [`flood`]: slow, large request bodies: each client opens a connection, sends the head of a
//!   POST announcing a 1 MiB body and then all of the body but its last byte, waits until the
//!   server answers or drops it, and starts again;
//! - [`idle`]: idle connections (slowloris): each client connects and sends nothing (half of
//!   them after completing the TLS handshake, half not even a ClientHello), holds the
//!   connection until the server drops it, and connects again.

use std::{
    io::{Read, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
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

/// Floods `port` with `clients` concurrent clients for `duration`; blocks until they stop.
pub fn flood(port: u16, path: &str, clients: usize, duration: Duration) -> Flooded {
    const BODY: usize = 1024 * 1024;
    let body: Arc<[u8]> = vec![b' '; BODY - 1].into();
    let handshakes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (body, handshakes, failed) = (body.clone(), handshakes.clone(), failed.clone());
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {BODY}\r\n\r\n"
            );
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    while Instant::now() < deadline {
                        let Some(mut stream) = super::webhook::tls_connect(port) else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        };
                        handshakes.fetch_add(1, Ordering::Relaxed);
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
                        // Hold the connection until the server answers or drops it.
                        let mut sink = [0u8; 1024];
                        while Instant::now() < deadline {
                            match stream.read(&mut sink) {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            }
                        }
                    }
                })
                .expect("flood thread")
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Flooded {
        handshakes: handshakes.load(Ordering::Relaxed),
        failed_connects: failed.load(Ordering::Relaxed),
    }
}

/// Holds `clients` idle connections to `port` until `stop` is set (or for `longest`), each
/// connected again as soon as the server drops it; blocks until they stop. Even clients
/// complete the TLS handshake, odd ones send nothing at all.
pub fn idle(
    port: u16,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    longest: Duration,
) -> Flooded {
    let handshakes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + longest;
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (handshakes, failed, stop) = (handshakes.clone(), failed.clone(), stop.clone());
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut sink = [0u8; 1024];
                    let going = || Instant::now() < deadline && !stop.load(Ordering::Relaxed);
                    while going() {
                        // Reads wake up each second to see whether to stop.
                        let timeout = Some(Duration::from_secs(1));
                        // Hold until the server drops it (a read of 0 or an error).
                        let held = if i % 2 == 0 {
                            super::webhook::tls_connect(port).map(|mut tls| {
                                handshakes.fetch_add(1, Ordering::Relaxed);
                                let _ = tls.get_ref().set_read_timeout(timeout);
                                while going() {
                                    match tls.read(&mut sink) {
                                        Ok(0) => break,
                                        Err(e) if !timed_out(&e) => break,
                                        _ => {}
                                    }
                                }
                            })
                        } else {
                            std::net::TcpStream::connect(("127.0.0.1", port))
                                .ok()
                                .map(|mut tcp| {
                                    let _ = tcp.set_read_timeout(timeout);
                                    while Instant::now() < deadline {
                                        if matches!(tcp.read(&mut sink), Ok(0) | Err(_)) {
                                            break;
                                        }
                                    }
                                })
                        };
                        if held.is_none() {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                })
                .expect("idle thread")
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Flooded {
        handshakes: handshakes.load(Ordering::Relaxed),
        failed_connects: failed.load(Ordering::Relaxed),
    }
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

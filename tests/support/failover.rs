//! A stand-in for a Service in front of replicas, for the failover tests: this control plane
//! has no kube-proxy, and Endpoints may not hold loopback addresses.
//!
//! [`ServiceProxy`] listens on a loopback port and sends each new TCP connection to the next
//! backend in rotation (round robin); bytes pass through untouched (TLS ends at the replica).
//! A backend leaves the rotation when its `/readyz` fails or the test withdraws it (a pod
//! being deleted), and comes back once `/readyz` answers 200 again. Both are noticed by a
//! check every [`CHECK_EVERY`]: roughly the endpoints controller and kube-proxy together,
//! which take a moment to see a pod go and to rewrite the rules. As with kube-proxy, a
//! connection already established keeps its backend (conntrack), and a connection sent to a
//! backend that refuses it is not tried elsewhere: the client sees it closed.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// How often the proxy checks its backends (the delay it models between a replica failing
/// and new connections no longer reaching it).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One backend: where it serves and where its `/readyz` answers.
struct Backend {
    addr: SocketAddr,
    /// host:port of its `/readyz` (empty: not started yet).
    readyz: Mutex<String>,
    in_rotation: AtomicBool,
    /// Withdrawn by the test (the pod is being deleted): out at the next check, whatever
    /// `/readyz` says.
    withdrawn: AtomicBool,
    /// Kept in rotation whatever `/readyz` says: an endpoint list that lags behind.
    stale: AtomicBool,
    connections: AtomicU64,
    refused: AtomicU64,
    live: AtomicU64,
}

struct State {
    backends: Vec<Backend>,
    next: AtomicUsize,
    stop: AtomicBool,
    /// Connections that found no backend in rotation.
    no_backend: AtomicU64,
    /// (when, backend, in rotation) for every change the checks made.
    changes: Mutex<Vec<(Instant, usize, bool)>>,
    /// Client sides of every proxied connection, shut down when the proxy is dropped.
    clients: Mutex<Vec<TcpStream>>,
}

/// A round-robin TCP proxy on 127.0.0.1; stops (and cuts its connections) when dropped.
pub struct ServiceProxy {
    pub port: u16,
    state: Arc<State>,
    threads: Vec<JoinHandle<()>>,
}

/// What the proxy did for one backend so far.
#[derive(Debug, Clone, Copy)]
pub struct BackendStats {
    pub connections: u64,
    pub refused: u64,
    pub live: u64,
    pub in_rotation: bool,
}

impl ServiceProxy {
    /// Proxies to `backends`, each `(serving port, /readyz address host:port)`; an empty
    /// address stands for a replica not started yet ([`ServiceProxy::replace`] names it).
    /// Every backend starts in rotation if its `/readyz` answers 200 at the first check,
    /// which runs before this returns.
    pub fn start(backends: &[(u16, String)]) -> ServiceProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State {
            backends: backends
                .iter()
                .map(|(port, readyz)| Backend {
                    addr: SocketAddr::from(([127, 0, 0, 1], *port)),
                    readyz: Mutex::new(readyz.clone()),
                    in_rotation: AtomicBool::new(false),
                    withdrawn: AtomicBool::new(false),
                    stale: AtomicBool::new(false),
                    connections: AtomicU64::new(0),
                    refused: AtomicU64::new(0),
                    live: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            no_backend: AtomicU64::new(0),
            changes: Mutex::default(),
            clients: Mutex::default(),
        });
        check(&state);
        let checker = {
            let state = state.clone();
            std::thread::spawn(move || {
                while !state.stop.load(Ordering::Relaxed) {
                    // Sleep in small steps so a dropped proxy stops promptly.
                    let until = Instant::now() + CHECK_EVERY;
                    while Instant::now() < until && !state.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    check(&state);
                }
            })
        };
        let acceptor = {
            let state = state.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if state.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Ok(client) = client {
                        route(&state, client);
                    }
                }
            })
        };
        ServiceProxy {
            port,
            state,
            threads: vec![checker, acceptor],
        }
    }

    /// Takes backend `i` out of rotation at the next check, as a pod being deleted (its
    /// preStop hook then runs while its established connections stay).
    pub fn withdraw(&self, i: usize) {
        self.state.backends[i]
            .withdrawn
            .store(true, Ordering::Relaxed);
    }

    /// Backend `i` is now a replica (a new pod in its place) whose `/readyz` answers at
    /// `readyz`; it joins the rotation once that answers 200.
    pub fn replace(&self, i: usize, readyz: &str) {
        let b = &self.state.backends[i];
        *lock(&b.readyz) = readyz.to_owned();
        b.withdrawn.store(false, Ordering::Relaxed);
    }

    /// Keeps backend `i` in rotation (or not any more) whatever its `/readyz` says, from now.
    pub fn keep_stale(&self, i: usize, stale: bool) {
        let b = &self.state.backends[i];
        b.stale.store(stale, Ordering::Relaxed);
        if stale {
            b.in_rotation.store(true, Ordering::Relaxed);
        }
    }

    /// Ends every connection it carries (the clients must open new ones).
    pub fn cut_all(&self) {
        for c in lock(&self.state.clients).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn stats(&self, i: usize) -> BackendStats {
        let b = &self.state.backends[i];
        BackendStats {
            connections: b.connections.load(Ordering::Relaxed),
            refused: b.refused.load(Ordering::Relaxed),
            live: b.live.load(Ordering::Relaxed),
            in_rotation: b.in_rotation.load(Ordering::Relaxed),
        }
    }

    /// Connections that arrived while no backend was in rotation.
    pub fn no_backend(&self) -> u64 {
        self.state.no_backend.load(Ordering::Relaxed)
    }

    /// When backend `i` last left the rotation at or after `since`.
    pub fn left_rotation_after(&self, i: usize, since: Instant) -> Option<Instant> {
        self.changes()
            .into_iter()
            .find(|(at, b, ready)| *b == i && !*ready && *at >= since)
            .map(|(at, _, _)| at)
    }

    fn changes(&self) -> Vec<(Instant, usize, bool)> {
        lock(&self.state.changes).clone()
    }
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor with one last connection.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let clients = std::mem::take(&mut *lock(&self.state.clients));
        for c in clients {
            let _ = c.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One round of checks: each backend is in rotation iff it is not withdrawn and its
/// `/readyz` answers 200.
fn check(state: &State) {
    for (i, b) in state.backends.iter().enumerate() {
        let readyz = lock(&b.readyz).clone();
        let ready = b.stale.load(Ordering::Relaxed)
            || !b.withdrawn.load(Ordering::Relaxed)
                && !readyz.is_empty()
                && matches!(super::http_get(&readyz, "/readyz"), Some((200, _)));
        if b.in_rotation.swap(ready, Ordering::Relaxed) != ready {
            lock(&state.changes).push((Instant::now(), i, ready));
        }
    }
}

/// Sends `client` to the next backend in rotation, or closes it.
fn route(state: &Arc<State>, client: TcpStream) {
    let n = state.backends.len();
    let start = state.next.fetch_add(1, Ordering::Relaxed);
    let Some(i) = (0..n)
        .map(|k| (start + k) % n)
        .find(|i| state.backends[*i].in_rotation.load(Ordering::Relaxed))
    else {
        state.no_backend.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let backend = &state.backends[i];
    backend.connections.fetch_add(1, Ordering::Relaxed);
    let Ok(upstream) = TcpStream::connect_timeout(&backend.addr, Duration::from_secs(1)) else {
        // kube-proxy does not try another endpoint either: the client's connection ends.
        backend.refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Ok(c) = client.try_clone() {
        lock(&state.clients).push(c);
    }
    backend.live.fetch_add(1, Ordering::Relaxed);
    let state = state.clone();
    std::thread::spawn(move || {
        let (Ok(client_r), Ok(upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
            state.backends[i].live.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        // Client to backend on its own thread; the backend's answers on this one.
        let up = std::thread::spawn(move || pump(client_r, upstream_w));
        pump(upstream, client);
        let _ = up.join();
        state.backends[i].live.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Copies `from` into `to` until either side ends, then shuts both down: an end on one side
/// ends the connection (a backend that died cuts its clients, as a reset would).
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A poisoned lock still holds usable data here (counters and lists).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

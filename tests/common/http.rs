//! A small HTTP/1.1 fixture server on 127.0.0.1 for the fetch tests, plus
//! helpers to make fixture tarballs and a catalog whose URLs point at it.
//!
//! One thread accepts; each connection gets a thread and is closed after one
//! response (`Connection: close`). The server counts requests per path and
//! the most requests in flight at once. Dropping it stops it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server answers on one path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with these bytes.
    Bytes(Vec<u8>),
    /// This status with a short text body.
    Status(u16),
    /// `status` for the first `fails` requests, then 200 with `body`.
    FailThen {
        fails: usize,
        status: u16,
        body: Vec<u8>,
    },
    /// 200 with the full Content-Length, but only `after` bytes are sent,
    /// then nothing for `stall` (then the connection is closed).
    Stall {
        body: Vec<u8>,
        after: usize,
        stall: Duration,
    },
    /// 200 announcing `claimed` bytes, sending only `body`, then closing.
    Truncated { body: Vec<u8>, claimed: u64 },
    /// 302 to this location (absolute or relative).
    Redirect(String),
    /// 200 with `body`, sent only after waiting `delay` (downloads overlap).
    Slow { body: Vec<u8>, delay: Duration },
    /// 200 without a Content-Length, then filler bytes until the client
    /// hangs up (at most 4 GiB): a never-ending response.
    Endless,
    /// 200 without a Content-Length, then one byte every `every`, for at
    /// most `for_at_most`: a response that never stalls and never ends.
    Trickle { every: Duration, for_at_most: Duration },
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Reply>>,
    counts: Mutex<HashMap<String, usize>>,
    /// The Authorization header of each request that had one, per path.
    auth: Mutex<HashMap<String, Vec<String>>>,
    total: AtomicUsize,
    in_flight: AtomicUsize,
    /// `Stall` replies that have sent their part and now stall.
    stalled: AtomicUsize,
    max_in_flight: AtomicUsize,
    shutdown: AtomicBool,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

/// Upper bound on connections one server accepts (bounded loops).
const MAX_CONNECTIONS: usize = 10_000;

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming().take(MAX_CONNECTIONS) {
                if st.shutdown.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &st);
                });
            }
        });
        Server {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// Answer requests for `path` (e.g. `/a.tar.gz`) with `reply`.
    pub fn route(&self, path: &str, reply: Reply) {
        self.state.routes.lock().unwrap().insert(path.to_string(), reply);
    }

    /// `/r1 -> /r2 -> ... -> /r<n> -> target`: `n` redirects; returns the first path.
    pub fn redirect_chain(&self, prefix: &str, n: usize, target: &str) -> String {
        for i in 1..=n {
            let next = if i == n {
                target.to_string()
            } else {
                format!("{prefix}{}", i + 1)
            };
            self.route(&format!("{prefix}{i}"), Reply::Redirect(next));
        }
        format!("{prefix}1")
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Requests received for `path`.
    /// How many `Stall` replies have sent their part (and now stall).
    pub fn stalled(&self) -> usize {
        self.state.stalled.load(Ordering::SeqCst)
    }

    pub fn requests(&self, path: &str) -> usize {
        self.state.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// The Authorization headers received for `path`, in order.
    pub fn authorizations(&self, path: &str) -> Vec<String> {
        self.state
            .auth
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Requests received on any path.
    pub fn total_requests(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        // Wake the acceptor.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn new(st: &'a State) -> Self {
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(st)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sleep up to `d`, waking early when the server shuts down.
fn nap(st: &State, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !st.shutdown.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
}

fn handle(mut s: TcpStream, st: &State) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    if let Some(v) = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    }) {
        st.auth.lock().unwrap().entry(path.clone()).or_default().push(v);
    }
    let _guard = InFlight::new(st);
    st.total.fetch_add(1, Ordering::SeqCst);
    let nth = {
        let mut c = st.counts.lock().unwrap();
        let e = c.entry(path.clone()).or_insert(0);
        *e += 1;
        *e
    };
    let reply = st.routes.lock().unwrap().get(&path).cloned();
    let header = |status: u16, len: u64, extra: &str| {
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n{extra}\r\n",
            reason(status)
        )
    };
    let status_only = |s: &mut TcpStream, status: u16| -> std::io::Result<()> {
        let body = format!("{status} {}\n", reason(status));
        s.write_all(header(status, body.len() as u64, "").as_bytes())?;
        s.write_all(body.as_bytes())
    };
    match reply {
        None => status_only(&mut s, 404)?,
        Some(Reply::Status(code)) => status_only(&mut s, code)?,
        Some(Reply::Bytes(body)) => {
            s.write_all(header(200, body.len() as u64, "").as_bytes())?;
            s.write_all(&body)?;
        }
        Some(Reply::FailThen { fails, status, body }) => {
            if nth <= fails {
                status_only(&mut s, status)?;
            } else {
                s.write_all(header(200, body.len() as u64, "").as_bytes())?;
                s.write_all(&body)?;
            }
        }
        Some(Reply::Stall { body, after, stall }) => {
            s.write_all(header(200, body.len() as u64, "").as_bytes())?;
            s.write_all(&body[..after.min(body.len())])?;
            s.flush()?;
            st.stalled.fetch_add(1, Ordering::SeqCst);
            nap(st, stall);
        }
        Some(Reply::Truncated { body, claimed }) => {
            s.write_all(header(200, claimed, "").as_bytes())?;
            s.write_all(&body)?;
            s.flush()?;
            // Closing here ends the body early.
        }
        Some(Reply::Redirect(loc)) => {
            s.write_all(header(302, 0, &format!("Location: {loc}\r\n")).as_bytes())?;
        }
        Some(Reply::Endless) => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
            s.write_all(head.as_bytes())?;
            let chunk = filler(64 * 1024, 7);
            for _ in 0..(4u64 << 30) / chunk.len() as u64 {
                if st.shutdown.load(Ordering::SeqCst) {
                    break;
                }
                // An error means the client hung up.
                s.write_all(&chunk)?;
            }
        }
        Some(Reply::Trickle { every, for_at_most }) => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
            s.write_all(head.as_bytes())?;
            let end = Instant::now() + for_at_most;
            while Instant::now() < end && !st.shutdown.load(Ordering::SeqCst) {
                s.write_all(b"x")?;
                s.flush()?;
                nap(st, every);
            }
        }
        Some(Reply::Slow { body, delay }) => {
            nap(st, delay);
            s.write_all(header(200, body.len() as u64, "").as_bytes())?;
            s.write_all(&body)?;
        }
    }
    s.flush()?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Deterministic filler bytes (so fixture tarballs differ by `seed`).
pub fn filler(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    pgha_image::hash::Sha256Digest::of(bytes).to_hex()
}

/// One catalog entry of a fixture catalog.
pub struct Entry<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub url: String,
    pub sha256: String,
}

/// Write a catalog directory with one `<name>.toml` per entry; returns `dir`.
pub fn write_catalog(dir: &Path, entries: &[Entry<'_>]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for e in entries {
        let text = format!(
            r#"name = "{name}"
description = "fixture {name}"
license = "MIT"
set = "default"
version = "{version}"
pg_majors = {{ min = 10 }}

[build]
kind = "pgxs"

[[versions]]
version = "{version}"
tag = "v{version}"
url = "{url}"
sha256 = "{sha256}"
provenance = "reproduced-only"
"#,
            name = e.name,
            version = e.version,
            url = e.url,
            sha256 = e.sha256
        );
        std::fs::write(dir.join(format!("{}.toml", e.name)), text).unwrap();
    }
    dir.to_path_buf()
}

/// Two good sources `a` and `b` (version 1.0), served at `/a.tar.gz` and
/// `/b.tar.gz`, and a catalog for them written to `catalog`; returns the
/// (name, body) pairs.
pub fn two_sources(server: &Server, catalog: &Path) -> Vec<(String, Vec<u8>)> {
    let mut bodies = Vec::new();
    let mut entries = Vec::new();
    for (i, name) in ["a", "b"].iter().enumerate() {
        let body = super::tarball::tar_gz(&format!("{name}-1.0"), &[("src.c", &filler(50_000, i as u8))]);
        let path = format!("/{name}.tar.gz");
        server.route(&path, Reply::Bytes(body.clone()));
        entries.push(Entry {
            name,
            version: "1.0",
            url: server.url(&path),
            sha256: sha256_hex(&body),
        });
        bodies.push((name.to_string(), body));
    }
    write_catalog(catalog, &entries);
    bodies
}

/// Every file under `dir` (recursively), for "nothing was left behind" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

//! The real S3 server for tests (Garage, started by scripts/s3-server.sh) and
//! a small HTTP-aware TCP proxy in front of it that logs every request and
//! injects faults: delays, 503 SlowDown and 500 answers, connection resets,
//! truncated answers and uploads, stalls and slow reads.
//! The proxy wraps the real server; nothing here imitates S3.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The test bucket location (`s3:http://127.0.0.1:PORT/BUCKET`). Fails loudly
/// when the server is not running: these tests never skip.
pub fn base() -> String {
    std::env::var("IRONVAULT_TEST_S3").unwrap_or_else(|_| {
        panic!(
            "IRONVAULT_TEST_S3 is not set: S3 tests need the Garage server; run scripts/test.sh, \
             or scripts/s3-server.sh start and source the file 'scripts/s3-server.sh env' prints"
        )
    })
}

/// host:port of the real server.
pub fn endpoint() -> String {
    std::env::var("IRONVAULT_TEST_S3_ENDPOINT").expect("IRONVAULT_TEST_S3_ENDPOINT (see base())")
}

/// A fresh, unique repository location inside the test bucket.
pub fn unique_location(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}/{tag}-{}-{}-{}",
        base(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The script that installs and starts Garage.
pub fn server_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-server.sh")
}

/// What the proxy does to requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    None,
    /// Wait this long before forwarding each request.
    Delay(Duration),
    /// Answer every Nth request with 503 SlowDown instead of forwarding it.
    SlowDownEvery(u64),
    /// Forward every Nth request, then cut the connection in the middle of the answer.
    ResetEvery(u64),
    /// Fault one request in `one_in`, each with one of: 503 SlowDown, 500
    /// InternalError, a reset in the middle of the answer, an answer cut
    /// short of its Content-Length, an upload cut short (both connections
    /// cut; bodiless requests are reset), an answer held back 0.2-2 s (a
    /// stalled server), an answer passed in small pieces with pauses (a slow
    /// reader's view of a slow server); drawn from a generator seeded with
    /// `seed` and the request's number.
    // Set by the torture run only (tests/torture/s3faults.rs), which
    // compiles this module into its own binary.
    #[allow(dead_code)]
    Random {
        seed: u64,
        one_in: u64,
    },
}

/// What the proxy does to one request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    Pass,
    Delay(Duration),
    SlowDown,
    ServerError,
    Reset,
    Truncate,
    TruncateUpload,
    Stall(Duration),
    SlowRead,
}

impl Action {
    /// The name a fault is counted under (None: not a fault).
    fn fault_name(self) -> Option<&'static str> {
        Some(match self {
            Action::Pass | Action::Delay(_) => return None,
            Action::SlowDown => "503 SlowDown",
            Action::ServerError => "500 InternalError",
            Action::Reset => "connection reset",
            Action::Truncate => "truncated body",
            Action::TruncateUpload => "truncated upload",
            Action::Stall(_) => "stall",
            Action::SlowRead => "slow read",
        })
    }
}

/// SplitMix64: one well-mixed 64-bit value from any input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The action for the `n`-th request (counting from 1) under fault `f`.
fn decide(f: Fault, n: u64) -> Action {
    let every = |k: u64, a: Action| {
        if k > 0 && n.is_multiple_of(k) {
            a
        } else {
            Action::Pass
        }
    };
    match f {
        Fault::None => Action::Pass,
        Fault::Delay(d) => Action::Delay(d),
        Fault::SlowDownEvery(k) => every(k, Action::SlowDown),
        Fault::ResetEvery(k) => every(k, Action::Reset),
        Fault::Random { seed, one_in } => {
            let r = mix(seed ^ mix(n));
            if one_in == 0 || !r.is_multiple_of(one_in) {
                return Action::Pass;
            }
            match (r >> 20) % 7 {
                0 => Action::SlowDown,
                1 => Action::ServerError,
                2 => Action::Reset,
                3 => Action::Truncate,
                4 => Action::TruncateUpload,
                5 => Action::Stall(Duration::from_millis(200 + (r >> 40) % 1800)),
                _ => Action::SlowRead,
            }
        }
    }
}

/// One request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, e.g. /bucket/prefix/packs/data/ab/abcd
    pub target: String,
    /// The answer's status, once it was passed back in full (None: not answered).
    pub status: Option<u16>,
}

impl Seen {
    /// A PUT of a whole data pack that the server acknowledged.
    pub fn is_stored_data_pack(&self) -> bool {
        self.method == "PUT" && self.target.contains("/packs/data/") && self.status == Some(200)
    }
}

/// A logging, fault-injecting proxy on 127.0.0.1.
pub struct Proxy {
    pub port: u16,
    /// Requests as they arrive.
    pub log: Arc<Mutex<Vec<Seen>>>,
    /// Requests whose answer was passed back in full, with its status.
    pub done: Arc<Mutex<Vec<Seen>>>,
    /// Faults injected so far, by kind.
    pub injected: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    fault: Arc<Mutex<Fault>>,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Start a proxy in front of `upstream` (host:port).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            log: Arc::default(),
            done: Arc::default(),
            injected: Arc::default(),
            fault: Arc::new(Mutex::new(Fault::None)),
            count: Arc::default(),
            stop: Arc::default(),
        };
        let shared = Shared {
            log: p.log.clone(),
            done: p.done.clone(),
            injected: p.injected.clone(),
            fault: p.fault.clone(),
            count: p.count.clone(),
        };
        let stop = p.stop.clone();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let (shared, upstream) = (shared.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &shared);
                });
            }
        });
        p
    }

    /// The location of `real` (a location on the real server) through this proxy.
    pub fn via(&self, real: &str) -> String {
        real.replacen(&endpoint(), &format!("127.0.0.1:{}", self.port), 1)
    }

    pub fn set_fault(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
        self.count.store(0, Ordering::Relaxed);
    }

    /// Requests seen so far (as they arrived); clears the log.
    pub fn take_log(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Requests answered in full so far; clears that log.
    pub fn take_done(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.done.lock().unwrap())
    }

    /// Answered requests so far, without clearing.
    pub fn done_snapshot(&self) -> Vec<Seen> {
        self.done.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// An HTTP/1.1 message head: the first line, the raw head bytes and how its body is framed.
struct Head {
    first: String,
    raw: Vec<u8>,
    content_length: Option<u64>,
    chunked: bool,
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut first = String::new();
    let (mut content_length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        raw.extend_from_slice(line.as_bytes());
        let t = line.trim_end();
        if t.is_empty() {
            break;
        }
        if first.is_empty() {
            first = t.to_string();
        } else if let Some((k, v)) = t.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                content_length = v.trim().parse().ok();
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    Ok(Some(Head {
        first,
        raw,
        content_length,
        chunked,
    }))
}

/// Copy a message body framed by `h` from `r` to `w`; `limit` cuts it short.
fn copy_body(
    h: &Head,
    r: &mut impl BufRead,
    w: &mut impl Write,
    no_body: bool,
) -> std::io::Result<()> {
    if no_body {
        return Ok(());
    }
    if h.chunked {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            w.write_all(line.as_bytes())?;
            let size =
                u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t)?;
                    w.write_all(t.as_bytes())?;
                    if t.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            std::io::copy(&mut r.by_ref().take(size + 2), w)?;
        }
    }
    let n = h.content_length.unwrap_or(0);
    std::io::copy(&mut r.by_ref().take(n), w)?;
    Ok(())
}

/// What the proxy's connection threads share.
#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Seen>>>,
    done: Arc<Mutex<Vec<Seen>>>,
    injected: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    fault: Arc<Mutex<Fault>>,
    count: Arc<AtomicU64>,
}

impl Shared {
    fn count_fault(&self, a: Action) {
        if let Some(name) = a.fault_name() {
            *self.injected.lock().unwrap().entry(name).or_default() += 1;
        }
    }
}

/// An S3 error answer.
fn error_answer(w: &mut impl Write, status: &str, code: &str) -> std::io::Result<()> {
    let b = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )
}

fn serve(client: TcpStream, upstream: &str, sh: &Shared) -> std::io::Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let mut up: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while let Some(req) = read_head(&mut from_client)? {
        let mut parts = req.first.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut body = Vec::new();
        copy_body(&req, &mut from_client, &mut body, false)?;
        sh.log.lock().unwrap().push(Seen {
            method: method.clone(),
            target: target.clone(),
            status: None,
        });
        let n = sh.count.fetch_add(1, Ordering::Relaxed) + 1;
        let f = *sh.fault.lock().unwrap();
        let mut action = decide(f, n);
        if action == Action::TruncateUpload && body.len() < 2 {
            action = Action::Reset;
        }
        match action {
            Action::Delay(d) => std::thread::sleep(d),
            Action::SlowDown => {
                sh.count_fault(action);
                error_answer(&mut to_client, "503 Service Unavailable", "SlowDown")?;
                continue;
            }
            Action::ServerError => {
                sh.count_fault(action);
                error_answer(&mut to_client, "500 Internal Server Error", "InternalError")?;
                continue;
            }
            _ => {}
        }
        if up.is_none() {
            let s = TcpStream::connect(upstream)?;
            up = Some((BufReader::new(s.try_clone()?), s));
        }
        let (from_up, to_up) = up.as_mut().unwrap();
        to_up.write_all(&req.raw)?;
        if action == Action::TruncateUpload {
            // The server sees a body shorter than announced, then the end.
            to_up.write_all(&body[..body.len() / 2])?;
            to_up.flush()?;
            sh.count_fault(action);
            let _ = to_up.shutdown(Shutdown::Both);
            reset_on_close(&to_client);
            return Ok(());
        }
        to_up.write_all(&body)?;
        let Some(resp) = read_head(from_up)? else {
            return Ok(());
        };
        let status: u16 = resp
            .first
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let no_body = method == "HEAD" || status == 204 || status == 304;
        let mut answer = Vec::new();
        copy_body(&resp, from_up, &mut answer, no_body)?;
        if action == Action::Truncate && answer.len() < 2 {
            action = Action::Reset;
        }
        sh.count_fault(action);
        match action {
            Action::Reset => {
                // Half the head, then a hard reset.
                to_client.write_all(&resp.raw[..resp.raw.len() / 2])?;
                reset_on_close(&to_client);
                return Ok(());
            }
            Action::Truncate => {
                to_client.write_all(&resp.raw)?;
                to_client.write_all(&answer[..answer.len() / 2])?;
                to_client.flush()?;
                reset_on_close(&to_client);
                return Ok(());
            }
            Action::Stall(d) => std::thread::sleep(d),
            _ => {}
        }
        to_client.write_all(&resp.raw)?;
        if action == Action::SlowRead {
            // At most 50 pieces, 10 ms apart: slow, yet done in half a second.
            let piece = (answer.len() / 50).max(4096);
            for c in answer.chunks(piece) {
                to_client.write_all(c)?;
                to_client.flush()?;
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            to_client.write_all(&answer)?;
        }
        to_client.flush()?;
        sh.done.lock().unwrap().push(Seen {
            method,
            target,
            status: Some(status),
        });
    }
    Ok(())
}

/// Make closing the socket send a TCP RST instead of a FIN.
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// A Garage server of the test's own (for killing it), on its own port and state dir.
pub struct OwnServer {
    pub state: PathBuf,
    pub port: u16,
}

impl OwnServer {
    pub fn start(state: PathBuf, port: u16) -> OwnServer {
        let s = OwnServer { state, port };
        s.run("start");
        s
    }

    fn run(&self, what: &str) {
        let o = std::process::Command::new(server_script())
            .arg(what)
            .env("IRONVAULT_S3_STATE", &self.state)
            .env("IRONVAULT_S3_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "s3-server.sh {what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// SIGKILL the server, keeping its data.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.state.join("pid")).unwrap();
        let pid: i32 = pid.trim().parse().unwrap();
        // SAFETY: plain kill(2) on the server's own pid.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        super::wait_for(
            "the killed S3 server to stop answering",
            Duration::from_secs(30),
            || TcpStream::connect(("127.0.0.1", self.port)).is_err(),
        );
    }

    /// Start it again on the same data.
    pub fn restart(&self) {
        self.run("restart");
    }

    pub fn location(&self, prefix: &str) -> String {
        format!("s3:http://127.0.0.1:{}/ironvault-test/{prefix}", self.port)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.run("stop");
    }
}

//! Real servers for the tests (nginx, python's http.server, s3s-fs, a js-ipfs node), each started on 127.0.0.1 with a free port, waited
//! for by polling (no fixed sleeps), and killed with its whole process group when its guard is
//! dropped, also when a test fails. And a small fault-injecting TCP proxy (threads of the test
//! process: it ends with it).
//!
//! A server must not outlive the test process either, however that ends (a panic, Ctrl-C,
//! SIGTERM, kill -9): each is started in its own process group (so a Ctrl-C meant for the test
//! reaches the test alone) beside a watchdog, `sh` waiting on the test's pid with `tail --pid`,
//! that kills the server's whole group once the test process is gone. A watchdog ignores
//! SIGINT, SIGTERM and SIGHUP, and is itself stopped when its guard drops. Server files live
//! in `$TMPDIR/ware-test-srv*` (what scripts/test clears after an interrupted run).
//!
//! A test that cannot start one skips through [`crate::started`].

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// A free port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn find_program(name: &str, extra: &[PathBuf]) -> Result<PathBuf> {
    for p in extra {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .chain(std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin")))
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
    {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{name} not found")
}

/// A fresh directory for a server's files, named so scripts/test can find it.
pub fn server_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("ware-test-srv").tempdir()
}

/// Kills process group `pgid` (the server and whatever it forked) once process `watched` (the
/// test) has ended.
const WATCHDOG: &str =
    r#"trap '' INT TERM HUP; tail -s 0.2 --pid="$1" -f /dev/null; kill -KILL "-$2" 2>/dev/null"#;

/// Starts a watchdog that kills process group `pgid` when this process ends.
pub fn watchdog(pgid: u32) -> Result<Child> {
    Command::new("sh")
        .args(["-c", WATCHDOG, "ware-test-watchdog"])
        .arg(std::process::id().to_string())
        .arg(pgid.to_string())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the watchdog (sh, tail)")
}

/// A child process in its own process group, killed (group and all) on drop, and by its
/// watchdog if the test process ends first.
pub struct Guard {
    child: Child,
    watchdog: Child,
    name: String,
}

impl Guard {
    fn spawn(name: &str, cmd: &mut Command) -> Result<Guard> {
        let mut child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        let watchdog = match watchdog(child.id()) {
            Ok(w) => w,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Guard {
            child,
            watchdog,
            name: name.to_owned(),
        })
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early: {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.watchdog.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.watchdog.wait();
    }
}

/// Polls until something accepts TCP connections at `addr`, the guard's process dies, or
/// `timeout` passes.
fn wait_tcp(guard: &mut Guard, addr: SocketAddr, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        guard.check_alive()?;
        if start.elapsed() > timeout {
            bail!("{} did not listen on {addr} within {timeout:?}", guard.name);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn world_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

// --- nginx -------------------------------------------------------------------------------------

/// nginx serving `root()` at `/`, and `/ipfs/CID?format=raw` as a trustless gateway from
/// `root()/ipfs/CID` (406 without `format=raw`, as a gateway that cannot answer that format).
/// Everything below `/e500/` answers 500 with `root()/e500.html` as the body (seed it).
pub struct Nginx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    pub addr: SocketAddr,
    _guard: Guard,
}

impl Nginx {
    pub fn start() -> Result<Nginx> {
        Nginx::start_with(false)
    }

    /// nginx over TLS with a fresh certificate for 127.0.0.1 from a fresh CA (which no client
    /// trusts unless told to: [`Nginx::cert`]), offering HTTP/2 by ALPN, and logging the
    /// protocol of each request ([`Nginx::protocols`]).
    pub fn start_tls() -> Result<Nginx> {
        Nginx::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Nginx> {
        let nginx = find_program("nginx", &[])?;
        let dir = server_dir()?;
        let d = dir.path();
        world_readable(d)?;
        let root = d.join("www");
        std::fs::create_dir_all(root.join("ipfs"))?;
        world_readable(&root)?;
        world_readable(&root.join("ipfs"))?;
        std::fs::create_dir_all(d.join("tmp"))?;
        let port = free_port();
        let mut listen = format!("listen 127.0.0.1:{port};");
        if tls {
            // A CA of its own (what a client is told to trust: [`Nginx::cert`]) and a leaf
            // certificate for 127.0.0.1 signed by it: webpki refuses a CA certificate that
            // serves as its own end entity.
            let openssl = find_program("openssl", &[])?;
            std::fs::write(
                d.join("leaf.ext"),
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )?;
            let steps: [Vec<&str>; 3] = [
                vec![
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=warefs-test-ca",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ],
                vec![
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "leaf.csr",
                ],
                vec![
                    "x509",
                    "-req",
                    "-in",
                    "leaf.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    "leaf.ext",
                    "-out",
                    "cert.pem",
                ],
            ];
            for args in steps {
                let out = Command::new(&openssl).args(&args).current_dir(d).output()?;
                if !out.status.success() {
                    bail!(
                        "openssl {}: {}",
                        args[0],
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            listen = format!(
                "listen 127.0.0.1:{port} ssl http2; ssl_certificate {d}/cert.pem; \
                 ssl_certificate_key {d}/key.pem;",
                d = d.display()
            );
        }
        let conf = format!(
            r#"
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format protocol '$server_protocol $status $request_uri';
    access_log {d}/access.log protocol;
    default_type application/octet-stream;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        {listen}
        root {root};
        location /ipfs/ {{
            default_type application/vnd.ipld.raw;
            if ($arg_format != "raw") {{ return 406; }}
        }}
        location /e500/ {{
            error_page 500 /e500.html;
            return 500;
        }}
    }}
}}
"#,
            d = d.display(),
            root = root.display()
        );
        std::fs::write(d.join("nginx.conf"), conf)?;
        let mut guard = Guard::spawn(
            "nginx",
            Command::new(nginx)
                .arg("-p")
                .arg(d)
                .arg("-e")
                .arg(d.join("error.log"))
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_tcp(&mut guard, addr, Duration::from_secs(10)).map_err(|e| {
            let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
            anyhow!("{e}; error.log: {log}")
        })?;
        Ok(Nginx {
            _dir: dir,
            root,
            addr,
            _guard: guard,
        })
    }

    /// Writes a file that nginx serves at `/KEY` (world-readable: workers run as nobody).
    pub fn seed(&self, key: &str, data: &[u8]) {
        write_readable(&self.root, key, data);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory it serves, as the warehouse URL a push writes to (`file://…`).
    pub fn push_url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    /// The same warehouse as clients read it (`http://…`).
    pub fn read_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CA that signed a TLS server's certificate, for a client told to trust it
    /// (`SSL_CERT_FILE`).
    pub fn cert(&self) -> PathBuf {
        self.root.parent().expect("server dir").join("ca.pem")
    }

    /// The requests so far, as `PROTOCOL STATUS URI` (`HTTP/2.0 200 /wares/…`).
    pub fn protocols(&self) -> Vec<String> {
        let log = self.root.parent().expect("server dir").join("access.log");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The URIs requested so far (`/wares/…`), in order.
    pub fn requested(&self) -> Vec<String> {
        self.protocols()
            .iter()
            .filter_map(|l| l.split(' ').nth(2).map(str::to_string))
            .collect()
    }
}

/// Writes `root/key`, with world-readable directories and file.
pub fn write_readable(root: &Path, key: &str, data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(key);
    let mut dir = path.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    while dir.starts_with(root) {
        world_readable(&dir).unwrap();
        if !dir.pop() {
            break;
        }
    }
    std::fs::write(&path, data).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

// --- python3 -m http.server: a real server without Range support ---------------------------

pub struct PyHttp {
    pub addr: SocketAddr,
    _guard: Guard,
}

impl PyHttp {
    pub fn start(root: &Path) -> Result<PyHttp> {
        let python = find_program("python3", &[])?;
        let port = free_port();
        let mut guard = Guard::spawn(
            "python3 -m http.server",
            Command::new(python)
                .args(["-m", "http.server", "--bind", "127.0.0.1"])
                .arg("--directory")
                .arg(root)
                .arg(port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_tcp(&mut guard, addr, Duration::from_secs(10))?;
        Ok(PyHttp {
            addr,
            _guard: guard,
        })
    }
}

// --- s3s-fs -------------------------------------------------------------------------------------

pub const S3_ACCESS_KEY: &str = "warefs-test-ak";
pub const S3_SECRET_KEY: &str = "warefs-test-sk-0123456789";
pub const S3_BUCKET: &str = "wares";

/// s3s-fs with bucket [`S3_BUCKET`], checking SigV4 with the test keys.
pub struct S3s {
    _dir: tempfile::TempDir,
    pub addr: SocketAddr,
    _guard: Guard,
}

impl S3s {
    pub fn start() -> Result<S3s> {
        let bin = find_program("s3s-fs", &[])?;
        let dir = server_dir()?;
        std::fs::create_dir_all(dir.path().join(S3_BUCKET))?;
        let port = free_port();
        let mut guard = Guard::spawn(
            "s3s-fs",
            Command::new(bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_tcp(&mut guard, addr, Duration::from_secs(10))?;
        Ok(S3s {
            _dir: dir,
            addr,
            _guard: guard,
        })
    }
}

impl S3s {
    /// The warehouse URL of `prefix` in the bucket, by path style on this server.
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{S3_BUCKET}/{prefix}?endpoint=http://{}&region=us-east-1",
            self.addr
        )
    }

    /// The environment a `ware` talking to it needs: the test keys.
    pub fn env() -> [(&'static str, String); 2] {
        [
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.to_string()),
        ]
    }
}

// --- js-ipfs ------------------------------------------------------------------------------------

/// A js-ipfs node, offline, with its RPC API on a free port.
pub struct JsIpfs {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    pub api: SocketAddr,
    _guard: Guard,
}

fn jsipfs_path() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("WARE_JSIPFS") {
        candidates.push(PathBuf::from(p));
    }
    let cache = std::env::var_os("WARE_BUILD_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("warefs-build"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/warefs-build")));
    if let Some(c) = cache {
        candidates.push(c.join("js-ipfs-0.66.1/node_modules/.bin/jsipfs"));
    }
    find_program("jsipfs", &candidates)
}

impl JsIpfs {
    pub fn start() -> Result<JsIpfs> {
        let bin = jsipfs_path()?;
        let dir = server_dir()?;
        jsipfs_cli(&bin, dir.path(), &["init", "--profile", "test"])?;
        // The test profile listens on free ports already but for the gRPC endpoint ("RPC",
        // 5003); edit the file rather than run `jsipfs config` (a second of Node start-up).
        let config_path = dir.path().join("config");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path)?).context("jsipfs config")?;
        config["Addresses"]["RPC"] = "/ip4/127.0.0.1/tcp/0".into();
        config["Addresses"]["API"] = "/ip4/127.0.0.1/tcp/0".into();
        config["Addresses"]["Gateway"] = "/ip4/127.0.0.1/tcp/0".into();
        config["Addresses"]["Swarm"] = serde_json::json!(["/ip4/127.0.0.1/tcp/0"]);
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        let mut guard = Guard::spawn(
            "jsipfs daemon",
            Command::new(&bin)
                .args(["daemon", "--offline", "--enable-preload=false"])
                .env("IPFS_PATH", dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )?;
        let stdout = guard.child.stdout.take().context("daemon stdout")?;
        // Read its stdout on a thread so a silent daemon cannot block the test past the limit.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let mut api = None;
        let mut seen = Vec::new();
        loop {
            let left = Duration::from_secs(20).saturating_sub(start.elapsed());
            if left.is_zero() {
                bail!("jsipfs daemon not ready in 20 s: {seen:?}");
            }
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(rest) =
                        line.strip_prefix("HTTP API listening on /ip4/127.0.0.1/tcp/")
                        && let Some(port) =
                            rest.split('/').next().and_then(|p| p.parse::<u16>().ok())
                    {
                        api = Some(SocketAddr::from(([127, 0, 0, 1], port)));
                    }
                    let ready = line.contains("Daemon is ready");
                    seen.push(line);
                    if ready {
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => guard.check_alive()?,
                Err(_) => {
                    guard.check_alive()?;
                    bail!("jsipfs daemon closed stdout: {seen:?}");
                }
            }
        }
        let api = api.ok_or_else(|| anyhow!("no RPC address in {seen:?}"))?;
        Ok(JsIpfs {
            _dir: dir,
            bin,
            api,
            _guard: guard,
        })
    }
}

impl JsIpfs {
    /// Runs the `jsipfs` command line on this node (it talks to the running daemon); its
    /// stdout, trimmed.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        jsipfs_cli(&self.bin, self._dir.path(), args)
    }
}

/// Runs `jsipfs ARGS` on the repository in `repo`; its stdout, trimmed, or its stderr as the
/// error.
fn jsipfs_cli(bin: &Path, repo: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .env("IPFS_PATH", repo)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("jsipfs {args:?}"))?;
    if !out.status.success() {
        bail!(
            "jsipfs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// --- a real browser ----------------------------------------------------------------------------

/// Headless Chromium (Debian `chromium`, installed by scripts/setup), for pages as a browser
/// loads and renders them.
pub struct Browser {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Browser {
    pub fn find() -> Result<Browser> {
        Ok(Browser {
            bin: find_program("chromium", &[])?,
            dir: server_dir()?,
        })
    }

    /// The DOM of the page at `url` once loaded, as Chromium serializes it (`--dump-dom`);
    /// an error if it does not finish within 60 s (Chromium and its helpers are killed).
    pub fn dump_dom(&self, url: &str) -> Result<String> {
        let out_path = self.dir.path().join("dom.html");
        let out = std::fs::File::create(&out_path)?;
        let mut guard = Guard::spawn(
            "chromium",
            Command::new(&self.bin)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                ])
                .arg(format!(
                    "--user-data-dir={}",
                    self.dir.path().join("profile").display()
                ))
                .args(["--dump-dom", url])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(Stdio::null()),
        )?;
        let start = Instant::now();
        loop {
            if let Some(status) = guard.child.try_wait()? {
                if !status.success() {
                    bail!("chromium --dump-dom {url}: {status}");
                }
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("chromium did not load {url} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(std::fs::read_to_string(&out_path)?)
    }
}

// --- the fault proxy ----------------------------------------------------------------------------

/// What the proxy does to the traffic between a warehouse client and its server.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward both ways unchanged.
    Pass,
    /// Accept connections and read requests, but never answer.
    Stall,
    /// Forward at most this many bytes of each response, then close the connection.
    Truncate(usize),
    /// Replace every occurrence of the first byte string by the second (same length) in
    /// responses, as a flipped bit would.
    Replace(Vec<u8>, Vec<u8>),
    /// Forward at most this many bytes of each response, then abort the connection with a
    /// TCP reset (RST, not FIN), as a crashed server or a middlebox does.
    Reset(usize),
    /// Forward requests without a body (GET, HEAD) until one asks for a byte range (a
    /// `Range` header); then hold that connection silent. Whole objects (a ware's manifest,
    /// indexes, profiles) come through, pack reads never do.
    StallRanges,
}

/// A TCP proxy on 127.0.0.1 with one fault for its whole life. Its runtime (and so every
/// connection) ends when it is dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
    /// Connections that fill a blackhole's accept queue.
    _fillers: Vec<std::net::TcpStream>,
}

impl Proxy {
    /// An address whose TCP handshakes never complete, as behind a firewall that drops
    /// packets: a listener that never accepts, its accept queue kept full, so the kernel
    /// drops every further SYN and a client's connect hangs until its own timeout.
    pub fn blackhole() -> Proxy {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind blackhole");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("blackhole runtime");
        let listener = rt.block_on(async { socket.listen(0) }).expect("listen");
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                fillers.push(s);
            }
        }
        // The listener must outlive the fillers, never accepting: keep it in the runtime.
        rt.spawn(async move {
            let _keep = listener;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        Proxy {
            addr,
            rt: Some(rt),
            _fillers: fillers,
        }
    }
}

impl Proxy {
    pub fn start(upstream: SocketAddr, fault: Fault) -> Proxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, fault.clone()));
            }
        });
        Proxy {
            addr,
            rt: Some(rt),
            _fillers: Vec::new(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve(client: tokio::net::TcpStream, upstream: SocketAddr, fault: Fault) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Fault::Reset(_) = fault {
        // Closing with a zero linger time sends RST instead of FIN.
        let _ = client.set_zero_linger();
    }
    let (mut client_r, mut client_w) = client.into_split();
    if let Fault::StallRanges = fault {
        return stall_ranges(client_r, client_w, upstream).await;
    }
    if let Fault::Stall = fault {
        // Swallow the request and hold the connection open without a word.
        let mut buf = vec![0u8; 16 << 10];
        while let Ok(n) = client_r.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut server_r, mut server_w) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_r, &mut server_w).await;
        let _ = server_w.shutdown().await;
    });
    let mut sent = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match server_r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        match &fault {
            Fault::Reset(limit) => {
                let take = n.min(limit.saturating_sub(sent));
                let _ = client_w.write_all(&chunk[..take]).await;
                sent += take;
                if sent >= *limit {
                    // No FIN: the socket closes abortively when both halves are gone.
                    client_w.forget();
                    up.abort();
                    return;
                }
                continue;
            }
            Fault::Truncate(limit) => {
                let take = n.min(limit.saturating_sub(sent));
                if client_w.write_all(&chunk[..take]).await.is_err() {
                    break;
                }
                sent += take;
                if sent >= *limit {
                    break;
                }
                continue;
            }
            Fault::Replace(from, to) => {
                let mut i = 0;
                while i + from.len() <= chunk.len() {
                    if &chunk[i..i + from.len()] == from.as_slice() {
                        chunk[i..i + from.len()].copy_from_slice(to);
                        i += from.len();
                    } else {
                        i += 1;
                    }
                }
            }
            Fault::Pass | Fault::Stall | Fault::StallRanges => {}
        }
        if client_w.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = client_w.shutdown().await;
    up.abort();
}

/// [`Fault::StallRanges`]: request heads go up one by one, responses come down unchanged, and
/// the first head with a `Range` header stops the connection for good.
async fn stall_ranges(
    mut client_r: tokio::net::tcp::OwnedReadHalf,
    mut client_w: tokio::net::tcp::OwnedWriteHalf,
    upstream: SocketAddr,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut server_r, mut server_w) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_r, &mut client_w).await;
        let _ = client_w.shutdown().await;
    });
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match client_r.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    down.abort();
                    return;
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head: Vec<u8> = pending.drain(..end).collect();
        if String::from_utf8_lossy(&head)
            .to_ascii_lowercase()
            .contains("\r\nrange:")
        {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        if server_w.write_all(&head).await.is_err() {
            down.abort();
            return;
        }
    }
}

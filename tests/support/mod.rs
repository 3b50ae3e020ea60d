//! Test harness: the real sidecar binary on free ports, and mock providers over real HTTP
//! that record what they receive and answer from a script.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod mock;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test crate uses its own subset
pub use mock::{Mock, Reply};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct ports nobody listens on right now (held together, so they differ).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Runs `respan-sidecar <args>` to its end with `input` on stdin.
pub fn run_with_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A running sidecar process, killed when dropped.
pub struct Sidecar {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
    /// The `server:` section written before the test's config.
    server: String,
}

impl Sidecar {
    /// Starts the sidecar with `config` (everything but `server.listen`/`admin_listen`).
    pub async fn start(config: &str) -> Sidecar {
        Self::start_with_server("", config).await
    }

    /// `server_extra`: more `server:` keys, one per line, unindented.
    pub async fn start_with_server(server_extra: &str, config: &str) -> Sidecar {
        Self::start_with_env(server_extra, config, &[]).await
    }

    /// Also sets environment variables of the sidecar process. Another process may take a
    /// free port before the sidecar binds it: then it starts again on other ports.
    pub async fn start_with_env(server_extra: &str, config: &str, env: &[(&str, &str)]) -> Sidecar {
        for _ in 0..3 {
            let mut sidecar = Self::spawn(server_extra, config, env);
            if sidecar.wait_ready().await {
                return sidecar;
            }
            let exited = sidecar.child.try_wait().ok().flatten().is_some();
            if !(exited && sidecar.log().contains("cannot listen")) {
                panic!("sidecar not ready; log:\n{}", sidecar.log());
            }
        }
        panic!("no free ports for the sidecar");
    }

    fn spawn(server_extra: &str, config: &str, env: &[(&str, &str)]) -> Sidecar {
        let [port, admin_port] = free_ports::<2>();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let extra: String = server_extra.lines().map(|l| format!("  {l}\n")).collect();
        let server = format!(
            "server:\n  listen: \"{addr}\"\n  admin_listen: \"{admin}\"\n  threads: 2\n{extra}"
        );
        let yaml = format!("{server}{config}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("respan-sidecar.yaml");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let log = std::fs::File::create(dir.path().join("sidecar.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
            .arg("--config")
            .arg(&path)
            .env("RESPAN_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Sidecar {
            addr,
            admin,
            child,
            dir,
            server,
        }
    }

    /// Whether it became ready (false if it exited or took too long).
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            let ready = client
                .get(format!("http://{}/readyz", self.admin))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sidecar.log")).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("respan-sidecar.yaml")
    }

    /// The directory of its config file, for files a config names.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Replaces the config (after the same `server:` section) as an editor saves: a new
    /// file renamed over the old one.
    pub fn rewrite_config(&self, config: &str) {
        let new = self.dir.path().join(".respan-sidecar.yaml.new");
        std::fs::write(&new, format!("{}{config}", self.server)).unwrap();
        std::fs::rename(&new, self.config_path()).unwrap();
    }

    /// Its resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Sends a signal (`HUP`, `TERM`, `INT`) to the process.
    pub fn signal(&self, name: &str) {
        // The shell's builtin `kill`: a fresh machine may have no kill binary.
        let sent = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{name} {}", self.child.id()))
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Its exit status, if it exits within `within`.
    pub async fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Scrapes and parses `/metrics`.
    pub async fn metrics(&self) -> prometheus_parse::Scrape {
        let text = reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).unwrap()
    }

    /// The value of a counter or gauge sample with exactly these labels (0 if absent).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let scrape = self.metrics().await;
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// The JSON the admin port answers at `path` (`/api/limits`, `/api/health`, ...).
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        let r = client().get(self.admin_url(path)).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// The trace records of `/api/traces?{query}`, once every request has ended.
    pub async fn traces(&self, query: &str) -> Vec<serde_json::Value> {
        self.idle().await;
        let v = self.admin_json(&format!("/api/traces?{query}")).await;
        v["data"].as_array().unwrap().clone()
    }

    /// Waits until no request is in flight. A request's metrics are recorded after the app got
    /// its answer (in Pingora's logging phase), so this is how a test knows they are all there.
    pub async fn idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.metric("respan_inflight_requests", &[]).await != 0.0 {
            assert!(Instant::now() < deadline, "requests in flight after 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chat request body.
pub fn chat(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// POSTs a JSON body to the sidecar's `/v1/chat/completions`.
pub async fn post_chat(sidecar: &Sidecar, body: &serde_json::Value) -> reqwest::Response {
    post_json(sidecar, "/v1/chat/completions", body).await
}

/// POSTs a JSON body to one of the sidecar's paths.
pub async fn post_json(
    sidecar: &Sidecar,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    client()
        .post(sidecar.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// An HTTP client that never pools (each test sees fresh connections unless it reuses one).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A raw HTTP/1.1 connection, for what an HTTP library hides: keep-alive reuse,
/// `Expect: 100-continue`, exact framing.
pub struct RawConn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

/// A response read off a [`RawConn`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        RawConn {
            stream: tokio::io::BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// Sends a JSON POST and reads the answer.
    pub async fn post(&mut self, path: &str, body: &[u8]) -> RawResponse {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: sidecar\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.send(head.as_bytes()).await;
        self.send(body).await;
        self.read_response().await
    }

    /// Reads one response (content-length or chunked body).
    pub async fn read_response(&mut self) -> RawResponse {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            return response;
        }
        if let Some(len) = response.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            self.stream.read_exact(&mut body).await.unwrap();
            response.body = body;
        } else if response.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).await.unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                response.body.extend_from_slice(&chunk[..size]);
            }
        }
        response
    }
}

/// A request written by hand with a chunked body: `head` (request line and headers, without
/// `transfer-encoding` or the blank line), then `body` in chunks of `piece` bytes.
pub fn chunked_request(head: &str, body: &[u8], piece: usize) -> Vec<u8> {
    let mut request = format!("{head}\r\ntransfer-encoding: chunked\r\n\r\n").into_bytes();
    for chunk in body.chunks(piece) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// A `redis-server` on a free port, stopped when dropped.
pub struct Redis {
    pub port: u16,
    child: std::process::Child,
}

impl Redis {
    pub async fn start_on(port: u16) -> Redis {
        let redis = Redis {
            port,
            child: std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server (apt-get install redis-server)"),
        };
        let mut redis = redis;
        for _ in 0..200 {
            if let Ok(Some(status)) = redis.child.try_wait() {
                panic!("redis-server on port {port} exited ({status}): is the port taken?");
            }
            if redis.serves() {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    /// Whether this process's server answers on the port: another test's server (or any
    /// other listener) that took the port first must not be mistaken for it.
    fn serves(&self) -> bool {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut conn) else {
            return false;
        };
        let pid = format!("process_id:{}", self.child.id());
        info.lines().any(|line| line.trim_end() == pid)
    }

    /// Runs one Redis command (a real client, as an operator's `redis-cli` would).
    pub fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap();
        let mut conn = client.get_connection().unwrap();
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of an OpenAI chat stream's content deltas.
pub fn content_of(text: &str) -> String {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

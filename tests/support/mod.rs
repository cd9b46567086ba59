//! Test harness shared by the integration tests: real processes (the
//! server, Envoy, grpcurl), an upstream echo server, an Authelia stand-in,
//! test certificates and a raw HTTP/1.1 client.
//!
//! Every process is killed when its handle drops, also when a test panics.
//! Every wait is bounded by [`TIMEOUT`]. A missing tool fails the test with
//! a message naming `scripts/install-tools.sh`; nothing is ever skipped.
//!
//! Use it from a test crate with `mod support;`.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test crate uses a different part of the harness"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

pub mod echo;
pub mod envoy;
pub mod http;
pub mod lifecycle;
pub mod pki;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

pub use echo::{AutheliaStandIn, Upstream};
pub use envoy::Envoy;
pub use http::{HttpRequest, HttpResponse};
pub use pki::{ClientIdentity, TestPki, GATEWAY_SPIFFE_ID, UNTRUSTED_SPIFFE_ID};

/// Upper bound of every wait in the harness (start-up, readiness, a reply).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds a tool: the `env_var` variable, else `.tools/bin/<name>` or
/// `.tools/venv/bin/<name>` in the repository, else `PATH`; panics if none.
pub fn find_tool(name: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env_var}={} does not exist; run scripts/install-tools.sh",
            path.display()
        );
        return path;
    }
    let root = repo_root();
    let mut candidates = vec![
        root.join(".tools/bin").join(name),
        root.join(".tools/venv/bin").join(name),
    ];
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&paths).map(|dir| dir.join(name)));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found (set {env_var}, or run scripts/install-tools.sh to \
                 install it into .tools/); this test needs it and is not skipped"
            )
        })
}

/// The Envoy binary (`ENVOY_BIN`, `.tools/`, or `PATH`).
pub fn envoy_bin() -> PathBuf {
    find_tool("envoy", "ENVOY_BIN")
}

/// The grpcurl binary (`GRPCURL_BIN`, `.tools/`, or `PATH`).
pub fn grpcurl_bin() -> PathBuf {
    find_tool("grpcurl", "GRPCURL_BIN")
}

/// A free loopback TCP port, never handed out twice in one test process.
/// The port is free when returned; bind it soon.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if given.lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("no free port found")
}

/// Polls `check` every 50 ms until it returns `Some`, panicking with `what`
/// after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines a child process wrote to one stream, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    /// Starts a thread that reads `stream` line by line into a new buffer.
    pub fn capture(stream: impl Read + Send + 'static) -> Self {
        let lines = Self::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (buffer, changed) = &*sink.0;
                buffer.lock().unwrap().push(line);
                changed.notify_all();
            }
        });
        lines
    }

    /// Every line so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().clone()
    }

    /// Waits until `check` finds something in the lines so far; `None`
    /// after `timeout`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&[String]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let (buffer, changed) = &*self.0;
        let mut lines = buffer.lock().unwrap();
        loop {
            if let Some(found) = check(&lines) {
                return Some(found);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            // Wake up now and then too: the process may have exited.
            let wait = left.min(Duration::from_millis(200));
            lines = changed.wait_timeout(lines, wait).unwrap().0;
        }
    }
}

/// Kills and reaps a child process; used by the handles' `Drop`.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Deep-merges `patch` into `base`: mappings merge key by key, anything
/// else is replaced.
pub fn merge_yaml(base: &mut Yaml, patch: Yaml) {
    match (base, patch) {
        (Yaml::Mapping(base), Yaml::Mapping(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(slot) => merge_yaml(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

/// A running `cedar-ext-authz serve`, killed on drop. Its JSON log lines
/// are collected so tests can wait for decision events.
pub struct Server {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    grpc: SocketAddr,
    admin: SocketAddr,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with the bundled config/cedar-ext-authz.yaml and
    /// the repository's policies/.
    pub fn bundled() -> Self {
        Self::bundled_with("")
    }

    /// Starts the server with the bundled config deep-merged with `patch`
    /// (YAML, e.g. `"identity: {headers_stripped_by_proxy: true}"`).
    pub fn bundled_with(patch: &str) -> Self {
        let path = repo_root().join("config/cedar-ext-authz.yaml");
        let text = std::fs::read_to_string(&path).expect("read the bundled config");
        let mut config: Yaml = serde_yaml_ng::from_str(&text).expect("bundled config is YAML");
        if !patch.trim().is_empty() {
            merge_yaml(
                &mut config,
                serde_yaml_ng::from_str(patch).expect("patch is YAML"),
            );
        }
        Self::start_config(config)
    }

    /// Starts the server with the config `yaml`. `listen` and
    /// `admin_listen` become 127.0.0.1 port 0 (the bound ports are read
    /// from the log), the log is JSON, `shutdown_drain_ms` defaults to 100,
    /// and a relative or missing `policy_dir` is resolved against the
    /// repository's config/ folder (so `../policies` is the bundled set).
    pub fn start(yaml: &str) -> Self {
        let config: Yaml = if yaml.trim().is_empty() {
            Yaml::Mapping(Default::default())
        } else {
            serde_yaml_ng::from_str(yaml).expect("config is YAML")
        };
        Self::start_config(config)
    }

    fn start_config(config: Yaml) -> Self {
        Self::start_config_on(config, 0)
    }

    /// As [`Server::start_config`], with the gRPC listener on
    /// 127.0.0.1:`grpc_port` (0: any free port). With `tls` in the config,
    /// readiness is read from the admin `/readyz` instead of gRPC health.
    fn start_config_on(mut config: Yaml, grpc_port: u16) -> Self {
        let Yaml::Mapping(map) = &mut config else {
            panic!("a server config must be a YAML mapping");
        };
        let tls = map.contains_key("tls");
        map.insert("listen".into(), format!("127.0.0.1:{grpc_port}").into());
        map.insert("admin_listen".into(), "127.0.0.1:0".into());
        let policy_dir = map
            .get("policy_dir")
            .and_then(Yaml::as_str)
            .unwrap_or("policies")
            .to_owned();
        let policy_dir = repo_root().join("config").join(policy_dir);
        map.insert(
            "policy_dir".into(),
            policy_dir.to_string_lossy().into_owned().into(),
        );
        if !map.contains_key("shutdown_drain_ms") {
            map.insert("shutdown_drain_ms".into(), 100.into());
        }
        merge_yaml(
            &mut config,
            serde_yaml_ng::from_str("log: {format: json}").unwrap(),
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("cedar-ext-authz.yaml");
        std::fs::write(&config_path, serde_yaml_ng::to_string(&config).unwrap())
            .expect("write config");

        let mut child = Command::new(env!("CARGO_BIN_EXE_cedar-ext-authz"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .env_remove("CEDAR_EXT_AUTHZ_CONFIG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cedar-ext-authz");
        let stdout = Lines::capture(child.stdout.take().unwrap());
        let stderr = Lines::capture(child.stderr.take().unwrap());

        let deadline = Instant::now() + TIMEOUT;
        let serving = loop {
            let found = stdout.wait_for(Duration::from_millis(200), |lines| {
                lines
                    .iter()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|e| e["message"] == "serving")
            });
            if let Some(event) = found {
                break event;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "cedar-ext-authz exited with {status} before serving\nstdout:\n{}\nstderr:\n{}",
                    stdout.snapshot().join("\n"),
                    stderr.snapshot().join("\n")
                );
            }
            if Instant::now() > deadline {
                kill(&mut child);
                panic!(
                    "cedar-ext-authz did not log `serving` within {TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                    stdout.snapshot().join("\n"),
                    stderr.snapshot().join("\n")
                );
            }
        };
        let addr = |field: &str| -> SocketAddr {
            serving[field]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("`serving` event has no `{field}`: {serving}"))
        };
        let server = Self {
            grpc: addr("listen"),
            admin: addr("admin_listen"),
            child,
            stdout,
            stderr,
            config_path,
            _dir: dir,
        };
        if tls {
            server.wait_ready_admin();
        } else {
            server.wait_healthy();
        }
        server
    }

    /// Waits until gRPC health reports SERVING for the whole server.
    fn wait_healthy(&self) {
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let uri = format!("http://{}", self.grpc);
        let serving = runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            while tokio::time::Instant::now() < deadline {
                let endpoint = tonic::transport::Endpoint::from_shared(uri.clone())
                    .unwrap()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(2));
                if let Ok(channel) = endpoint.connect().await {
                    let reply = HealthClient::new(channel)
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await;
                    if reply.is_ok_and(|r| r.into_inner().status == SERVING) {
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        });
        assert!(
            serving,
            "gRPC health did not report SERVING within {TIMEOUT:?}\n{}",
            self.dump()
        );
    }

    /// Address of the gRPC listener (Check, Explain, health, reflection).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// Port of the gRPC listener, for Envoy's `cedar_ext_authz` cluster.
    pub fn grpc_port(&self) -> u16 {
        self.grpc.port()
    }

    /// Address of the admin HTTP listener (/metrics, /healthz, /readyz).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Every stdout line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.stdout.snapshot()
    }

    /// Every stdout line that is a JSON object, parsed.
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.stdout.snapshot())
    }

    /// The decision events ("request allowed" / "request denied") so far.
    pub fn decisions(&self) -> Vec<Value> {
        self.events().into_iter().filter(is_decision).collect()
    }

    /// Waits for a decision event matching `pred` and returns it; panics
    /// with the log after [`TIMEOUT`].
    pub fn wait_decision(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let found = self.stdout.wait_for(TIMEOUT, |lines| {
            parse_events(lines)
                .into_iter()
                .filter(is_decision)
                .find(|e| pred(e))
        });
        found.unwrap_or_else(|| {
            panic!(
                "no decision event for {what} within {TIMEOUT:?}\n{}",
                self.dump()
            )
        })
    }

    /// Waits for the first log event whose message is `message`.
    pub fn wait_for_event(&self, message: &str) -> Value {
        let found = self.stdout.wait_for(TIMEOUT, |lines| {
            parse_events(lines)
                .into_iter()
                .find(|e| e["message"] == message)
        });
        found.unwrap_or_else(|| panic!("no `{message}` event within {TIMEOUT:?}\n{}", self.dump()))
    }

    /// Waits for the decision of the request whose canonical path
    /// (`http.path`) is `path`.
    pub fn wait_decision_for_path(&self, path: &str) -> Value {
        self.wait_decision(&format!("http.path {path}"), |e| e["http.path"] == path)
    }

    /// The server's stdout and stderr, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "server stdout:\n{}\nserver stderr:\n{}",
            self.stdout.snapshot().join("\n"),
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

fn parse_events(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

fn is_decision(event: &Value) -> bool {
    event["message"] == "request allowed" || event["message"] == "request denied"
}

/// Output of a finished tool run.
#[derive(Debug)]
pub struct ToolOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// Panics with both streams unless the tool exited 0.
    pub fn assert_success(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `program args` with `stdin` as input, killing it after [`TIMEOUT`].
pub fn run_tool(program: &Path, args: &[&str], stdin: &str) -> ToolOutput {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            kill(&mut child);
            panic!(
                "{} {args:?} did not finish within {TIMEOUT:?}",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    ToolOutput {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Runs the real grpcurl binary with `args`, `stdin` as input (for `-d @`).
pub fn grpcurl(args: &[&str], stdin: &str) -> ToolOutput {
    run_tool(&grpcurl_bin(), args, stdin)
}

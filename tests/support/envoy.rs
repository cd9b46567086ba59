//! A real Envoy started from a bootstrap file in deploy/envoy/, with the
//! file's well-known ports and certificate folder swapped for the test's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{envoy_bin, free_port, kill, repo_root, HttpRequest, HttpResponse, Lines, TIMEOUT};

/// Plain HTTP listener of the bootstrap files.
pub const HTTP_PORT: u16 = 10000;
/// mTLS listener of envoy.yaml.
pub const HTTPS_PORT: u16 = 10443;
/// Envoy's admin listener.
pub const ADMIN_PORT: u16 = 9901;
/// The cedar-ext-authz gRPC endpoint (cluster `cedar_ext_authz`).
pub const CEDAR_PORT: u16 = 9191;
/// The upstream application (cluster `upstream`).
pub const UPSTREAM_PORT: u16 = 8080;
/// Authelia (cluster `authelia`, envoy-chain.yaml).
pub const AUTHELIA_PORT: u16 = 9091;

/// Listener ports the harness fills with free ports by itself.
const OWN_PORTS: [u16; 3] = [HTTP_PORT, HTTPS_PORT, ADMIN_PORT];

/// Folder of the certificates named in the bootstrap files.
const CERT_DIR: &str = "/etc/envoy/certs/";

/// Builds an [`Envoy`] from a bootstrap file.
pub struct EnvoyBuilder {
    file: PathBuf,
    ports: BTreeMap<u16, u16>,
    certs: Option<PathBuf>,
}

impl EnvoyBuilder {
    /// Points the well-known port `well_known` of the file (e.g.
    /// [`CEDAR_PORT`]) at `actual`.
    pub fn port(mut self, well_known: u16, actual: u16) -> Self {
        self.ports.insert(well_known, actual);
        self
    }

    /// Uses the certificates in `dir` (see [`super::TestPki`]) for the
    /// file's `/etc/envoy/certs/` paths.
    pub fn certs(mut self, dir: &Path) -> Self {
        self.certs = Some(dir.to_owned());
        self
    }

    /// Writes the rewritten bootstrap, starts Envoy and waits until its
    /// admin `/ready` says LIVE. If Envoy exits because one of its own
    /// listener ports was taken meanwhile, it is started again on new ones.
    pub fn start(self) -> Envoy {
        let text = std::fs::read_to_string(&self.file)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.file.display()));
        let mut last = String::new();
        for _attempt in 0..3 {
            let mut ports = self.ports.clone();
            for port in OWN_PORTS {
                if text.contains(&format!("port_value: {port}")) {
                    ports.entry(port).or_insert_with(free_port);
                }
            }
            let mut envoy = self.spawn(&text, ports);
            match envoy.wait_live() {
                Ok(()) => return envoy,
                Err(dump) if dump.contains("ddress already in use") => last = dump,
                Err(dump) => panic!("envoy did not become LIVE within {TIMEOUT:?}\n{dump}"),
            }
        }
        panic!("envoy could not bind its listeners in 3 attempts\n{last}")
    }

    fn spawn(&self, text: &str, ports: BTreeMap<u16, u16>) -> Envoy {
        let mut text = substitute_ports(text, &ports, &self.file);
        if text.contains(CERT_DIR) {
            let certs = self.certs.as_ref().unwrap_or_else(|| {
                panic!(
                    "{} names {CERT_DIR}: give the builder .certs(dir)",
                    self.file.display()
                )
            });
            text = text.replace(CERT_DIR, &format!("{}/", certs.display()));
        }

        let dir = tempfile::tempdir().expect("temp dir");
        let bootstrap = dir.path().join("envoy.yaml");
        std::fs::write(&bootstrap, &text).expect("write bootstrap");
        // No hot restart: no shared memory, so parallel tests need no
        // distinct --base-id. One worker thread suits a small machine.
        let mut child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&bootstrap)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "warning",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn envoy");
        let stdout = Lines::capture(child.stdout.take().unwrap());
        let stderr = Lines::capture(child.stderr.take().unwrap());
        Envoy {
            child,
            stdout,
            stderr,
            ports,
            _dir: dir,
        }
    }
}

/// Replaces every `port_value: N` in `text` by its mapping. A port in the
/// file without a mapping, or a mapping the file never uses, panics: the
/// harness and the bootstrap files must agree.
fn substitute_ports(text: &str, ports: &BTreeMap<u16, u16>, file: &Path) -> String {
    const KEY: &str = "port_value:";
    let mut out = String::with_capacity(text.len());
    let mut used = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        let (before, after) = rest.split_at(at + KEY.len());
        out.push_str(before);
        let spaces = after.len() - after.trim_start_matches(' ').len();
        let digits: String = after[spaces..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let port: u16 = digits
            .parse()
            .unwrap_or_else(|_| panic!("{}: unreadable port_value", file.display()));
        let actual = ports.get(&port).unwrap_or_else(|| {
            panic!(
                "{} uses port {port}, which the test did not map",
                file.display()
            )
        });
        used.insert(port);
        out.push_str(&format!(" {actual}"));
        rest = &after[spaces + digits.len()..];
    }
    out.push_str(rest);
    for port in ports.keys() {
        assert!(
            used.contains(port),
            "{} has no `port_value: {port}` to replace",
            file.display()
        );
    }
    out
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    ports: BTreeMap<u16, u16>,
    _dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts building an Envoy from `deploy/envoy/<file>`.
    pub fn builder(file: &str) -> EnvoyBuilder {
        EnvoyBuilder {
            file: repo_root().join("deploy/envoy").join(file),
            ports: BTreeMap::new(),
            certs: None,
        }
    }

    /// Waits for admin `/ready` to answer LIVE; `Err` with the output if
    /// Envoy exits or [`TIMEOUT`] passes first.
    fn wait_live(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + TIMEOUT;
        let admin = self.admin_port();
        loop {
            if let Ok(r) = HttpRequest::get("/ready").try_send(admin) {
                if r.status == 200 && r.text().trim() == "LIVE" {
                    return Ok(());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers catch the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return Err(format!("envoy exited with {status}\n{}", self.dump()));
            }
            if Instant::now() > deadline {
                return Err(self.dump());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The actual port for a well-known port of the bootstrap file.
    pub fn port(&self, well_known: u16) -> u16 {
        *self
            .ports
            .get(&well_known)
            .unwrap_or_else(|| panic!("the bootstrap has no port {well_known}"))
    }

    /// The plain HTTP listener (10000 in the file).
    pub fn http_port(&self) -> u16 {
        self.port(HTTP_PORT)
    }

    /// The mTLS listener (10443 in the file).
    pub fn https_port(&self) -> u16 {
        self.port(HTTPS_PORT)
    }

    /// The admin listener (9901 in the file).
    pub fn admin_port(&self) -> u16 {
        self.port(ADMIN_PORT)
    }

    /// GETs `path` from Envoy's admin listener.
    pub fn admin_get(&self, path: &str) -> HttpResponse {
        HttpRequest::get(path).send(self.admin_port())
    }

    /// The value of counter or gauge `name` from admin `/stats`, 0 if
    /// absent.
    pub fn stat(&self, name: &str) -> u64 {
        let text = self.admin_get(&format!("/stats?filter=^{name}$")).text();
        text.lines()
            .filter_map(|l| l.split_once(": "))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends `request` to the plain listener until it gets `status`,
    /// bounded by [`TIMEOUT`]: the first request opens Envoy's connections
    /// to the authorization server and the upstream.
    pub fn warm_up(&self, request: &HttpRequest, status: u16) {
        let port = self.http_port();
        let mut last = String::new();
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            match request.try_send(port) {
                Ok(r) if r.status == status => return,
                Ok(r) => last = format!("{} {}", r.status, r.text()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "warm-up {} {} never got {status}; last: {last}\n{}",
            request.method,
            request.target,
            self.dump()
        );
    }

    /// Envoy's stdout and stderr, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "envoy stdout:\n{}\nenvoy stderr:\n{}",
            self.stdout.snapshot().join("\n"),
            self.stderr.snapshot().join("\n")
        )
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

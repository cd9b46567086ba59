//! The server's life beyond start-up: readiness over the admin listener
//! (for TLS listeners, where plaintext gRPC health cannot ask), a fixed
//! gRPC port (so a restarted instance comes back where Envoy expects it),
//! SIGTERM, and its memory as the kernel reports it.

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_yaml_ng::Value as Yaml;

use super::{wait_until, HttpRequest, Server, TIMEOUT};

impl Server {
    /// As [`Server::start`], with the gRPC listener on 127.0.0.1:`port`.
    pub fn start_on(yaml: &str, port: u16) -> Self {
        let config: Yaml = if yaml.trim().is_empty() {
            Yaml::Mapping(Default::default())
        } else {
            serde_yaml_ng::from_str(yaml).expect("config is YAML")
        };
        Self::start_config_on(config, port)
    }

    /// Waits until the admin `/readyz` answers 200.
    pub fn wait_ready_admin(&self) {
        let port = self.admin.port();
        wait_until("admin /readyz to answer 200", TIMEOUT, || {
            let ready = HttpRequest::get("/readyz").try_send(port);
            ready.ok().filter(|r| r.status == 200).map(|_| ())
        });
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (as Kubernetes does) and waits for the process to
    /// exit, at most [`TIMEOUT`]; returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.pid());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {TIMEOUT:?} of SIGTERM\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the process in KiB (`VmRSS` in
    /// `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }
}

//! Real `redis-server` processes for the bridge tests.
//!
//! `.ci/run` starts one and exports its URL as `WAVECORE_REDIS_URL`; tests that only
//! need *a* Redis use it (each with its own channel prefix). Tests that stop and start
//! Redis run their own `redis-server` on another loopback port. Those tests are
//! `#[ignore]`d (run with `--include-ignored`); without the variable and without
//! `redis-server` installed, they fail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

/// A `redis-server` this test started; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

/// Where the shared Redis is, or a server of the test's own.
pub enum Redis {
    /// `WAVECORE_REDIS_URL`.
    Shared(String),
    /// Started for this test.
    Own(RedisServer),
}

impl Redis {
    /// The URL to give a bridge.
    pub fn url(&self) -> String {
        match self {
            Redis::Shared(url) => url.clone(),
            Redis::Own(server) => server.url(),
        }
    }
}

/// Whether `redis-server` can be run here.
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails the test unless `redis-server` is installed. The tests that call this are
/// `#[ignore]`d: `cargo test` reports them as not run, and `--include-ignored`
/// (`.ci/run`) runs them, where a missing Redis is a failure, never a silent pass.
pub fn require(test: &str) {
    assert!(
        installed(),
        "{test}: redis-server is not installed (apt-get install redis-server; .ci/run does)"
    );
}

/// The shared Redis (`WAVECORE_REDIS_URL`) or, without it, one of the test's own
/// (the test fails without `redis-server`).
pub fn shared(test: &str) -> Redis {
    if let Ok(url) = std::env::var("WAVECORE_REDIS_URL") {
        return Redis::Shared(url);
    }
    require(test);
    Redis::Own(RedisServer::start())
}

/// A loopback port nothing listens on (as far as can be told).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts `redis-server` on `port` (no persistence) and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &["--save", "", "--appendonly", "no"])
    }

    /// Starts `redis-server` on `port` with append-only persistence in `dir`, synced
    /// at every write (`appendfsync always`: what was acknowledged survives a kill),
    /// and waits until it answers. Started again on the same `dir`, it has the data.
    pub fn start_persistent(port: u16, dir: &std::path::Path) -> Self {
        let dir = dir.to_str().expect("a UTF-8 path");
        Self::start_with(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir,
            ],
        )
    }

    /// Starts a Redis Cluster node (no persistence of data; its cluster
    /// configuration in `dir`, so that started again on the same `dir` it rejoins
    /// with its slots) on `port`, its cluster bus on `bus_port`, and waits until it
    /// answers. [`create_cluster`] makes a cluster of such nodes.
    pub fn start_cluster_node(port: u16, bus_port: u16, dir: &std::path::Path) -> Self {
        let dir = dir.to_str().expect("a UTF-8 path");
        let config = format!("nodes-{port}.conf");
        Self::start_with(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &config,
                "--cluster-port",
                &bus_port.to_string(),
                "--cluster-require-full-coverage",
                "no",
                "--cluster-node-timeout",
                "1000",
            ],
        )
    }

    fn start_with(port: u16, persistence: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(persistence)
            .args(["--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = Self {
            child: Some(child),
            port,
        };
        assert!(
            server.answers(),
            "redis-server on port {port} did not answer PING"
        );
        server
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits (bounded) until a PING gets a PONG.
    fn answers(&self) -> bool {
        for _ in 0..500 {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return true;
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Kills the server (SIGKILL: as abrupt as a crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a frozen server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("server running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
    }
}

/// Makes the nodes on `ports` (started with [`RedisServer::start_cluster_node`]) one
/// cluster of masters without replicas (`redis-cli --cluster create`), and waits
/// (bounded) until every node says `cluster_state:ok`.
pub fn create_cluster(ports: &[u16]) {
    let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let status = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&nodes)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run redis-cli (apt-get install redis-tools)");
    assert!(status.success(), "redis-cli --cluster create failed");
    for _ in 0..500 {
        if ports.iter().all(|&p| cluster_ok(p)) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("the cluster on {ports:?} did not become ok");
}

/// Whether the node on `port` says `cluster_state:ok`.
pub fn cluster_ok(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "CLUSTER", "INFO"])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"))
}

//! The browser client (`/wavecore-channels.js`) in headless Chromium, through a
//! network drop and a server restart: every line once, in order, across the drop;
//! after the restart (history in memory) the page is told that recovery failed, never
//! shown a silent gap. Driven by `tests/interop/browser/channels_client.mjs`;
//! `#[ignore]`d (it needs Chromium and the Node packages: `bash
//! .ci/install-interop.sh`, then `--include-ignored`, where a missing one fails).

mod clients;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{TestServer, builder};
use serde_json::Value;
use wavecore::HttpResponse;
use wavecore::channels::{ChannelsService, History};

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>channels</title>
<script src="/wavecore-channels.js"></script>
<script>
  window.lines = []; window.failures = []; window.states = []; window.subscribed = 0;
  window.client = new WavecoreChannels(`ws://${location.host}/`, {
    minDelay: 100, maxDelay: 1000, onState: (state) => window.states.push(state),
  });
  window.client.subscribe("room", {
    onMessage: (data) => window.lines.push(data),
    onSubscribed: () => { window.subscribed += 1; },
    onRecoveryFailed: (reason) => window.failures.push(reason),
  });
</script>
"#;

/// How long one answer of the script may take (a bound, not a timing assertion).
const ANSWER: Duration = Duration::from_secs(60);

fn start(addr: &str) -> TestServer {
    let service = ChannelsService::new().fallback(|request| match request.path() {
        "/channels-test.html" => HttpResponse::html(PAGE),
        _ => HttpResponse::not_found(),
    });
    TestServer::start(
        builder()
            .bind(addr)
            .workers(2)
            .channel_history("room", History::last(1000)),
        service,
    )
}

struct Script {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Script {
    fn start(addr: SocketAddr) -> Self {
        let mut child = Command::new("node")
            .arg("tests/interop/browser/channels_client.mjs")
            .arg(format!("http://{addr}"))
            .current_dir(clients::repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start node");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    fn expect(&self, prefix: &str) -> String {
        let line = self
            .lines
            .recv_timeout(ANSWER)
            .unwrap_or_else(|_| panic!("no `{prefix}` line from the script"));
        assert!(
            line.starts_with(prefix),
            "expected `{prefix}`, got `{line}`"
        );
        line[prefix.len()..].trim().to_owned()
    }

    fn ask(&mut self, command: &str, answer: &str) -> String {
        writeln!(self.stdin, "{command}").expect("write to the script");
        self.expect(answer)
    }

    /// The page's state once `command` (`wait N`, `failures N`) holds.
    fn state(&mut self, command: &str) -> (Vec<String>, Vec<String>) {
        let (lines, failures, _) = self.full_state(command);
        (lines, failures)
    }

    /// [`Script::state`], with the connection states the page went through.
    fn full_state(&mut self, command: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
        let state: Value = serde_json::from_str(&self.ask(command, "lines")).unwrap();
        let strings = |key: &str| -> Vec<String> {
            state[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        (strings("lines"), strings("failures"), strings("states"))
    }
}

#[test]
#[ignore = "needs Chromium and Node playwright-core: bash .ci/install-interop.sh, then --include-ignored"]
fn the_browser_client_resumes_after_a_drop_and_is_told_after_a_restart() {
    clients::require_client("Chromium (channels)", clients::missing_browser());
    let mut first = start("127.0.0.1:0");
    let addr = first.addr;
    let mut script = Script::start(addr);
    script.expect("ready");
    let publish = |server: &TestServer, range: std::ops::RangeInclusive<u32>| {
        for n in range {
            server
                .handle
                .publish_channel("room", &format!("line {n}"))
                .unwrap();
        }
    };
    let expected = |range: std::ops::RangeInclusive<u32>| -> Vec<String> {
        range.map(|n| format!("line {n}")).collect()
    };
    publish(&first, 1..=20);
    let (lines, failures) = script.state("wait 20");
    assert_eq!(lines, expected(1..=20));
    assert!(failures.is_empty());
    // A network drop: published while the page reconnects, recovered after.
    script.ask("drop", "dropped");
    publish(&first, 21..=60);
    let (lines, failures, states) = script.full_state("wait 60");
    assert_eq!(lines, expected(1..=60), "every line once, in order");
    assert_eq!(
        states,
        ["connecting", "open", "closed", "connecting", "open"]
    );
    assert!(failures.is_empty(), "{failures:?}");
    // A restart: the history was in memory, the page must be told.
    first.handle.shutdown();
    assert!(first.join());
    let second = start(&addr.to_string());
    let (lines, failures) = script.state("failures 1");
    assert_eq!(failures, ["epoch_changed"]);
    assert_eq!(lines.len(), 60);
    publish(&second, 61..=65);
    let (lines, _) = script.state("wait 65");
    assert_eq!(lines, expected(1..=65));
    let _ = writeln!(script.stdin, "quit");
}

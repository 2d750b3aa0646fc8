//! Streams a reply token by token, produced off the reactor by a worker pool, the way
//! a server in front of a language model does.
//!
//! ```text
//! cargo run --release --example stream -- [ADDR]
//! ```
//!
//! Open `http://127.0.0.1:9002/` (the default address), type a prompt, and watch the
//! reply arrive a word at a time. The protocol is small: the client opens a WebSocket
//! on `/` and sends a prompt as a text message; the server answers with one text
//! message per token, then an empty text message to say the reply is complete. A new
//! prompt while a reply streams cancels that reply.
//!
//! What it shows (docs/guide.md, "Doing I/O from a handler"): the handler never
//! blocks. It hands each prompt, with the connection's [`ConnHandle`], to a pool of
//! worker threads; a worker produces tokens at a model's pace (tens of milliseconds
//! apart) and sends each through the handle. When the client leaves mid-stream, the
//! next send says [`HandleStatus::Gone`] and the worker stops at once; under
//! backpressure (a client that stops reading) the send says
//! [`HandleStatus::Dropped`] and the worker stops too. The pool's queue is bounded:
//! when every worker is busy and the queue is full, the client is told so at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use wavecore::{
    Conn, ConnHandle, HandleStatus, Handler, HttpResponse, Message, Request, Server, Service,
    Upgrade,
};

#[path = "common/cli.rs"]
mod cli;

/// Worker threads producing replies.
const WORKERS: usize = 8;
/// Prompts that may wait for a worker.
const QUEUE: usize = 256;

/// One reply to produce.
struct Job {
    prompt: String,
    handle: ConnHandle,
    /// Set when the client sent another prompt or left: stop.
    cancelled: Arc<AtomicBool>,
}

/// One connection: the cancel flag of the reply streaming to it, if any.
struct Session {
    jobs: SyncSender<Job>,
    streaming: Option<Arc<AtomicBool>>,
}

impl Handler for Session {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let Message::Text(prompt) = message else {
            conn.send_text("send the prompt as text");
            return;
        };
        if let Some(previous) = self.streaming.take() {
            previous.store(true, Ordering::Relaxed);
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = Job {
            prompt: prompt.to_owned(),
            handle: conn.handle(),
            cancelled: cancelled.clone(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => self.streaming = Some(cancelled),
            Err(TrySendError::Full(_)) => {
                conn.send_text("[busy: every worker is taken, try again in a moment]");
                conn.send_text("");
            }
            Err(TrySendError::Disconnected(_)) => {
                conn.close(wavecore::CloseCode::INTERNAL_ERROR, "no workers");
            }
        }
    }

    fn on_close(&mut self, _: wavecore::CloseInfo<'_>) {
        if let Some(streaming) = self.streaming.take() {
            streaming.store(true, Ordering::Relaxed);
        }
    }
}

struct App {
    jobs: SyncSender<Job>,
}

impl Service for App {
    type Handler = Session;

    fn upgrade(&self, _: &Request<'_>) -> Upgrade<Session> {
        Upgrade::accept(Session {
            jobs: self.jobs.clone(),
            streaming: None,
        })
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match request.path() {
            "/" => HttpResponse::html(PAGE),
            _ => HttpResponse::not_found(),
        }
    }
}

/// The "model": a reply made of the prompt's words and some of its own, one token
/// at a time, 20 to 60 ms apart.
fn tokens(prompt: &str) -> Vec<String> {
    let mut out: Vec<String> = "You asked about".split(' ').map(str::to_owned).collect();
    out.extend(
        prompt
            .split_whitespace()
            .take(12)
            .map(|w| format!("\u{201c}{w}\u{201d}")),
    );
    out.extend(
        "— here is a considered answer, produced one token at a time by a worker \
         thread and sent through the connection's handle, while the reactor went on \
         serving everyone else."
            .split(' ')
            .map(str::to_owned),
    );
    out.into_iter().map(|t| format!("{t} ")).collect()
}

/// A worker: takes jobs until the server is gone.
fn work(jobs: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = {
            let jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.recv()
        };
        let Ok(job) = job else {
            return;
        };
        stream(&job);
    }
}

/// Streams one reply through the job's handle; stops when the client left, stopped
/// reading, or sent another prompt.
fn stream(job: &Job) {
    for (i, token) in tokens(&job.prompt).iter().enumerate() {
        thread::sleep(Duration::from_millis(20 + (i as u64 * 17) % 41));
        if job.cancelled.load(Ordering::Relaxed) {
            return;
        }
        match job.handle.send_text(token) {
            HandleStatus::Queued => {}
            HandleStatus::Gone | HandleStatus::Dropped | HandleStatus::WrongHandler => {
                tracing::debug!(id = %job.handle.id(), "reply stopped: the client left or stopped reading");
                return;
            }
        }
    }
    if !job.cancelled.load(Ordering::Relaxed) {
        job.handle.send_text("");
    }
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let mut args = cli::Args::parse()?;
    if args.addr == "127.0.0.1:9001" {
        args.addr = "127.0.0.1:9002".to_owned();
    }
    let (jobs, queue) = sync_channel(QUEUE);
    let queue = Arc::new(Mutex::new(queue));
    for _ in 0..WORKERS {
        let queue = queue.clone();
        thread::spawn(move || work(queue));
    }
    let builder = Server::builder().bind(&args.addr).shutdown_on_signals(true);
    let server = args.tls(builder).start(App { jobs })?;
    tracing::info!(
        "stream server on {}://{}/",
        args.http_scheme(),
        server.local_addr()
    );
    server.join()?;
    Ok(())
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wavecore stream</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  form { display: flex; gap: .5rem; }
  input { flex: 1; font: inherit; padding: .4rem; }
  #reply { white-space: pre-wrap; min-height: 6rem; border-top: 1px solid #ccc; margin-top: 1rem; padding-top: 1rem; }
  #status { color: #666; font-size: .9rem; }
</style>
<h1>Streaming replies</h1>
<form id="ask"><input id="prompt" placeholder="Ask something" autofocus><button>Send</button></form>
<div id="reply"></div>
<p id="status">connecting…</p>
<script>
const reply = document.getElementById("reply");
const status = document.getElementById("status");
let ws;
function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/");
  ws.onopen = () => { status.textContent = "connected"; };
  ws.onmessage = (event) => {
    if (event.data === "") { status.textContent = "reply complete"; return; }
    reply.textContent += event.data;
  };
  ws.onclose = () => { status.textContent = "disconnected; reconnecting…"; setTimeout(connect, 2000); };
}
document.getElementById("ask").onsubmit = (event) => {
  event.preventDefault();
  const prompt = document.getElementById("prompt").value.trim();
  if (!prompt || ws.readyState !== WebSocket.OPEN) return;
  reply.textContent = "";
  status.textContent = "streaming…";
  ws.send(prompt);
};
connect();
</script>
"#;

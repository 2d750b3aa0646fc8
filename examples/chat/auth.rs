//! Logging in to the chat, off the reactor: a name is taken at `POST /login`, a
//! session id is issued in a cookie and kept in a session store, and every upgrade is
//! decided by looking its cookie up there. The store is in memory by default and in
//! Redis with `--redis`, so that every chat server on that Redis knows every session.
//!
//! Nothing here waits on a reactor: the login, the lookups and the logout are
//! deferred (`HttpResponse::defer`, `Upgrade::defer`) to a small pool of worker
//! threads, where a slow or unreachable Redis stalls nobody else; when every worker
//! is busy and the queue is full, the request is answered 503 at once. A logout
//! closes the session's other tabs through their connections' handles.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /login`, body `name=NAME` (form-encoded) | 200 `{"name":..}` and the cookie; 400 `{"error":..}` for a bad name |
//! | `GET /me` | 200 `{"name":..}`, or 401 without a valid session |
//! | `POST /logout` | 200, the cookie cleared, the session's connections closed with 4001 |
//! | an upgrade without a valid session | 401 |

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

use wavecore::{CloseCode, ConnHandle, HttpResponse, PendingResponse, PendingUpgrade, Request, Upgrade};

use crate::{Session, json, query_value};

/// The session cookie's name.
const COOKIE: &str = "wavecore_chat";

/// How long a session lasts, in seconds (7 days).
const SESSION_SECS: u64 = 7 * 24 * 3600;

/// Worker threads for the session store.
const WORKERS: usize = 4;

/// Requests that may wait for a worker; past it, they are answered 503.
const QUEUE: usize = 1024;

/// The close code a logout closes the session's other tabs with (application range).
pub const LOGGED_OUT: CloseCode = CloseCode(4001);

/// Where sessions live: session id to name.
pub trait Store: Send + Sync {
    /// The name logged in under `session`, if any.
    fn get(&self, session: &str) -> Result<Option<String>, String>;
    /// Keeps `session` for `name`.
    fn put(&self, session: &str, name: &str) -> Result<(), String>;
    /// Forgets `session`.
    fn delete(&self, session: &str) -> Result<(), String>;
}

/// Sessions in this process's memory (a restart forgets them: pages log in again).
#[derive(Default)]
pub struct MemoryStore(Mutex<HashMap<String, String>>);

impl MemoryStore {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, session: &str) -> Result<Option<String>, String> {
        Ok(self.sessions().get(session).cloned())
    }

    fn put(&self, session: &str, name: &str) -> Result<(), String> {
        self.sessions().insert(session.to_owned(), name.to_owned());
        Ok(())
    }

    fn delete(&self, session: &str) -> Result<(), String> {
        self.sessions().remove(session);
        Ok(())
    }
}

/// Sessions in Redis (`chat:session:ID`, expiring after [`SESSION_SECS`]), shared by
/// every chat server on it.
pub struct RedisStore {
    client: redis::Client,
    /// Connections not in use (one per worker at most).
    idle: Mutex<Vec<redis::Connection>>,
}

impl RedisStore {
    /// A store on the Redis at `url` (connected on first use).
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("{url}: {e}"))?;
        Ok(Self {
            client,
            idle: Mutex::default(),
        })
    }

    /// Runs one command on an idle connection (or a new one); a connection that
    /// failed is dropped.
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.client.get_connection().map_err(|e| e.to_string())?,
        };
        let result = cmd.query(&mut conn).map_err(|e| e.to_string())?;
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        Ok(result)
    }
}

fn key(session: &str) -> String {
    format!("chat:session:{session}")
}

impl Store for RedisStore {
    fn get(&self, session: &str) -> Result<Option<String>, String> {
        self.query(redis::cmd("GET").arg(key(session)))
    }

    fn put(&self, session: &str, name: &str) -> Result<(), String> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key(session)).arg(name).arg("EX").arg(SESSION_SECS);
        self.query(&cmd)
    }

    fn delete(&self, session: &str) -> Result<(), String> {
        self.query::<()>(redis::cmd("DEL").arg(key(session)))
    }
}

/// Makes the handler of an accepted upgrade from the session's name.
pub type Join = Box<dyn FnOnce(String) -> Session + Send>;

/// Work for the pool: each holds what it answers.
enum Task {
    Login {
        pending: PendingResponse,
        name: String,
    },
    Me {
        pending: PendingResponse,
        session: Option<String>,
    },
    Logout {
        pending: PendingResponse,
        session: Option<String>,
    },
    Upgrade {
        pending: PendingUpgrade<Session>,
        session: Option<String>,
        join: Join,
    },
}

impl Task {
    /// Every worker is busy: answer at once.
    fn busy(self) {
        match self {
            Task::Login { pending, .. } | Task::Me { pending, .. } | Task::Logout { pending, .. } => {
                let _ = pending.respond(unavailable("busy, try again in a moment"));
            }
            Task::Upgrade { pending, .. } => {
                let _ = pending.refuse(503, "busy, try again in a moment");
            }
        }
    }
}

/// What the workers share.
struct Sessions {
    store: Box<dyn Store>,
    /// The connections of each session, so a logout closes them all.
    tabs: Mutex<HashMap<String, Vec<ConnHandle>>>,
    /// The cookie's attributes after its value.
    attributes: String,
}

/// Logins and sessions (see the module docs). Shared by the reactors.
pub struct Auth {
    tasks: SyncSender<Task>,
}

impl Auth {
    /// Sessions kept in `store`; `secure` (the chat serves TLS) marks the cookie
    /// `Secure`.
    pub fn new(store: Box<dyn Store>, secure: bool) -> Self {
        let secure = if secure { "; Secure" } else { "" };
        let sessions = Arc::new(Sessions {
            store,
            tabs: Mutex::default(),
            attributes: format!("; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_SECS}{secure}"),
        });
        let (tasks, queue) = sync_channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WORKERS {
            let (queue, sessions) = (queue.clone(), sessions.clone());
            thread::spawn(move || work(&queue, &sessions));
        }
        Self { tasks }
    }

    /// Queues `task` for a worker, or answers it 503 when the queue is full.
    fn queue(tasks: &SyncSender<Task>, task: Task) {
        if let Err(TrySendError::Full(task) | TrySendError::Disconnected(task)) = tasks.try_send(task) {
            task.busy();
        }
    }

    /// `POST /login`, body `name=NAME`. `check` says what is wrong with a name.
    pub fn login(&self, request: &Request<'_>, check: fn(&str) -> Option<&'static str>) -> HttpResponse {
        if request.method() != "POST" {
            return HttpResponse::new(405, "POST a name\n").with_header("Allow", "POST");
        }
        let body = std::str::from_utf8(request.body()).unwrap_or_default();
        let name = query_value(body, "name").unwrap_or_default().trim().to_owned();
        if let Some(problem) = check(&name) {
            return json_response(400, &format!(r#"{{"error":{}}}"#, json(problem)));
        }
        let tasks = self.tasks.clone();
        HttpResponse::defer(move |pending| Self::queue(&tasks, Task::Login { pending, name }))
    }

    /// `GET /me`: the name of the request's session, or 401.
    pub fn me(&self, request: &Request<'_>) -> HttpResponse {
        let (tasks, session) = (self.tasks.clone(), session_of(request));
        HttpResponse::defer(move |pending| Self::queue(&tasks, Task::Me { pending, session }))
    }

    /// `POST /logout`: forgets the session and closes its connections.
    pub fn logout(&self, request: &Request<'_>) -> HttpResponse {
        if request.method() != "POST" {
            return HttpResponse::new(405, "POST to log out\n").with_header("Allow", "POST");
        }
        let (tasks, session) = (self.tasks.clone(), session_of(request));
        HttpResponse::defer(move |pending| Self::queue(&tasks, Task::Logout { pending, session }))
    }

    /// An upgrade: accepted with `join(name)` when the request's session is valid,
    /// else refused with 401.
    pub fn upgrade(&self, request: &Request<'_>, join: Join) -> Upgrade<Session> {
        let (tasks, session) = (self.tasks.clone(), session_of(request));
        Upgrade::defer(move |pending| {
            Self::queue(&tasks, Task::Upgrade { pending, session, join });
        })
    }
}

/// A worker: answers tasks until the server is gone.
fn work(queue: &Mutex<Receiver<Task>>, sessions: &Sessions) {
    loop {
        let task = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(task) = task else {
            return;
        };
        match task {
            Task::Login { pending, name } => {
                let stored = new_session_id()
                    .and_then(|session| sessions.store.put(&session, &name).map(|()| session));
                let response = match stored {
                    Ok(session) => json_response(200, &format!(r#"{{"name":{}}}"#, json(&name)))
                        .with_header("Set-Cookie", format!("{COOKIE}={session}{}", sessions.attributes)),
                    Err(e) => store_down(&e),
                };
                let _ = pending.respond(response);
            }
            Task::Me { pending, session } => {
                let response = match lookup(sessions, session.as_deref()) {
                    Ok(Some(name)) => json_response(200, &format!(r#"{{"name":{}}}"#, json(&name))),
                    Ok(None) => json_response(401, r#"{"error":"log in first"}"#),
                    Err(e) => store_down(&e),
                };
                let _ = pending.respond(response);
            }
            Task::Logout { pending, session } => {
                let response = match session.as_deref().map(|s| sessions.store.delete(s)) {
                    Some(Err(e)) => store_down(&e),
                    _ => {
                        let tabs = session.and_then(|s| sessions.tabs().remove(&s));
                        for tab in tabs.into_iter().flatten() {
                            tab.close(LOGGED_OUT, "logged out");
                        }
                        json_response(200, "{}").with_header(
                            "Set-Cookie",
                            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
                        )
                    }
                };
                let _ = pending.respond(response);
            }
            Task::Upgrade { pending, session, join } => match lookup(sessions, session.as_deref()) {
                Ok(Some(name)) => {
                    if let (Ok(handle), Some(session)) = (pending.accept(join(name)), session) {
                        let mut tabs = sessions.tabs();
                        let open = tabs.entry(session).or_default();
                        open.retain(|tab| !tab.is_gone());
                        open.push(handle);
                    }
                }
                Ok(None) => {
                    let _ = pending.refuse(401, "log in first");
                }
                Err(e) => {
                    tracing::warn!("session store: {e}");
                    let _ = pending.refuse(503, "the session store is unreachable, try again");
                }
            },
        }
    }
}

impl Sessions {
    fn tabs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ConnHandle>>> {
        self.tabs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn lookup(sessions: &Sessions, session: Option<&str>) -> Result<Option<String>, String> {
    match session {
        Some(session) => sessions.store.get(session),
        None => Ok(None),
    }
}

/// The session id in the request's cookie, if any.
fn session_of(request: &Request<'_>) -> Option<String> {
    request.header_values("cookie").find_map(|value| {
        std::str::from_utf8(value).ok()?.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && is_session_id(value)).then(|| value.to_owned())
        })
    })
}

/// A fresh session id: 128 random bits from the OS, as 32 hex digits.
fn new_session_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random session id: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn is_session_id(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn json_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse::new(status, body.to_owned())
        .with_header("Content-Type", "application/json")
        .with_header("Cache-Control", "no-store")
}

fn unavailable(reason: &str) -> HttpResponse {
    json_response(503, &format!(r#"{{"error":{}}}"#, json(reason))).with_header("Retry-After", "1")
}

fn store_down(error: &str) -> HttpResponse {
    tracing::warn!("session store: {error}");
    unavailable("the session store is unreachable, try again")
}

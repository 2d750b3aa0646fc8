//! Logging in to the chat, off the reactor: a name is taken at `POST /login`, a
//! session id is issued in a cookie and kept in a session store, and every upgrade is
//! decided by looking its cookie up there. The store is in memory by default and in
//! Redis with `--redis`, so that every chat server on that Redis knows every session.
//!
//! Nothing here waits on a reactor: the login, the lookups and the logout are
//! deferred (`HttpResponse::defer`, `Upgrade::defer`) to a small pool of worker
//! threads, where a slow or unreachable Redis stalls nobody else; when every worker
//! is busy and the queue is full, the request is answered 503 at once. A logout
//! closes the session's tabs through their connections' handles: this server's at
//! once, and, with Redis, every other chat server's when it hears the logout
//! announced (Pub/Sub channel `chat:logouts`).
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /login`, body `name=NAME` (form-encoded) | 200 `{"name":..}` and the cookie; 400 `{"error":..}` for a bad name, 409 for one someone else is logged in with |
//! | `GET /me` | 200 `{"name":..}`, or 401 without a valid session |
//! | `POST /logout` | 200, the cookie cleared, the session's connections closed with 4001 |
//! | an upgrade without a valid session | 401 |

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

use wavecore::{
    CloseCode, ConnHandle, HttpResponse, PendingResponse, PendingUpgrade, Request, Upgrade,
};

use crate::{Session, json};

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

/// Where sessions live: session id to name, and each name to the session that holds
/// it (a name is one person's while their session lasts).
pub trait Store: Send + Sync {
    /// The name logged in under `session`, if any.
    fn get(&self, session: &str) -> Result<Option<String>, String>;
    /// Keeps `session` for `name`, unless another session holds `name`: then
    /// `Ok(false)` and nothing changed.
    fn claim(&self, session: &str, name: &str) -> Result<bool, String>;
    /// Forgets `session` and frees its name.
    fn delete(&self, session: &str) -> Result<(), String>;
    /// Tells every chat server sharing this store that `session` logged out (each
    /// closes its own tabs of it). In one process's memory there is no one to tell.
    fn announce_logout(&self, session: &str) -> Result<(), String> {
        let _ = session;
        Ok(())
    }
    /// Calls `closed` with each session another server announced logged out.
    fn watch_logouts(&self, closed: Box<dyn Fn(&str) + Send>) {
        let _ = closed;
    }
}

/// Sessions in this process's memory (a restart forgets them: pages log in again).
#[derive(Default)]
pub struct MemoryStore(Mutex<Sessions>);

#[derive(Default)]
struct Sessions {
    names: HashMap<String, String>,
    sessions: HashMap<String, String>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn get(&self, session: &str) -> Result<Option<String>, String> {
        Ok(self.lock().sessions.get(session).cloned())
    }

    fn claim(&self, session: &str, name: &str) -> Result<bool, String> {
        let mut s = self.lock();
        if s.names.get(name).is_some_and(|holder| holder != session) {
            return Ok(false);
        }
        s.names.insert(name.to_owned(), session.to_owned());
        s.sessions.insert(session.to_owned(), name.to_owned());
        Ok(true)
    }

    fn delete(&self, session: &str) -> Result<(), String> {
        let mut s = self.lock();
        if let Some(name) = s.sessions.remove(session) {
            s.names.remove(&name);
        }
        Ok(())
    }
}

/// Sessions in Redis, shared by every chat server on it: `chat:session:ID` holds the
/// name and `chat:name:NAME` the session, both expiring after [`SESSION_SECS`].
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

    /// Runs `f` on an idle connection (or a new one); a connection that failed is
    /// dropped.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.client.get_connection().map_err(|e| e.to_string())?,
        };
        let result = f(&mut conn).map_err(|e| e.to_string())?;
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        Ok(result)
    }
}

fn session_key(session: &str) -> String {
    format!("chat:session:{session}")
}

fn name_key(name: &str) -> String {
    format!("chat:name:{name}")
}

impl Store for RedisStore {
    fn get(&self, session: &str) -> Result<Option<String>, String> {
        self.with(|c| redis::cmd("GET").arg(session_key(session)).query(c))
    }

    fn claim(&self, session: &str, name: &str) -> Result<bool, String> {
        self.with(|c| {
            let set: Option<String> = redis::cmd("SET")
                .arg(name_key(name))
                .arg(session)
                .arg("NX")
                .arg("EX")
                .arg(SESSION_SECS)
                .query(c)?;
            if set.is_none() {
                let holder: Option<String> = redis::cmd("GET").arg(name_key(name)).query(c)?;
                if holder.as_deref() != Some(session) {
                    return Ok(false);
                }
            }
            redis::cmd("SET")
                .arg(session_key(session))
                .arg(name)
                .arg("EX")
                .arg(SESSION_SECS)
                .query::<()>(c)?;
            Ok(true)
        })
    }

    fn delete(&self, session: &str) -> Result<(), String> {
        self.with(|c| {
            let name: Option<String> = redis::cmd("GETDEL").arg(session_key(session)).query(c)?;
            if let Some(name) = name {
                let holder: Option<String> = redis::cmd("GET").arg(name_key(&name)).query(c)?;
                if holder.as_deref() == Some(session) {
                    redis::cmd("DEL").arg(name_key(&name)).query::<()>(c)?;
                }
            }
            Ok(())
        })
    }

    fn announce_logout(&self, session: &str) -> Result<(), String> {
        self.with(|c| {
            redis::cmd("PUBLISH")
                .arg(LOGOUTS)
                .arg(session)
                .query::<()>(c)
        })
    }

    fn watch_logouts(&self, closed: Box<dyn Fn(&str) + Send>) {
        let client = self.client.clone();
        thread::spawn(move || {
            // Subscribed again a second after the connection breaks (Redis restarted):
            // a logout announced meanwhile is missed, and its tabs on this server stay
            // until they leave or their session is looked up again.
            loop {
                if let Err(e) = watch(&client, &*closed) {
                    tracing::warn!("session store: logouts not watched: {e}; again in 1 s");
                }
                thread::sleep(std::time::Duration::from_secs(1));
            }
        });
    }
}

/// The Redis channel logouts are announced on (payload: the session id).
const LOGOUTS: &str = "chat:logouts";

/// Reads logouts until the connection breaks.
fn watch(client: &redis::Client, closed: &dyn Fn(&str)) -> redis::RedisResult<()> {
    let mut conn = client.get_connection()?;
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe(LOGOUTS)?;
    loop {
        let message = pubsub.get_message()?;
        if let Ok(session) = message.get_payload::<String>() {
            closed(&session);
        }
    }
}

/// Makes the handler of an accepted upgrade from the session's name.
pub type Join = Box<dyn FnOnce(String) -> Session + Send>;

/// Work for the pool: each holds what it answers.
enum Task {
    Login {
        pending: PendingResponse,
        name: String,
        /// The session the browser had, given up for the new one.
        previous: Option<String>,
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
            Task::Login { pending, .. }
            | Task::Me { pending, .. }
            | Task::Logout { pending, .. } => {
                let _ = pending.respond(unavailable("busy, try again in a moment"));
            }
            Task::Upgrade { pending, .. } => {
                let _ = pending.refuse(503, "busy, try again in a moment");
            }
        }
    }
}

/// What the workers share.
struct Shared {
    store: Box<dyn Store>,
    /// The connections of each session, so a logout closes them all.
    tabs: Arc<Tabs>,
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
        let tabs = Arc::new(Tabs::default());
        let watched = tabs.clone();
        store.watch_logouts(Box::new(move |session| watched.close(session)));
        let sessions = Arc::new(Shared {
            store,
            tabs,
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
        if let Err(TrySendError::Full(task) | TrySendError::Disconnected(task)) =
            tasks.try_send(task)
        {
            task.busy();
        }
    }

    /// `POST /login`, body `name=NAME`. `check` says what is wrong with a name.
    pub fn login(
        &self,
        request: &Request<'_>,
        check: fn(&str) -> Option<&'static str>,
    ) -> HttpResponse {
        if request.method() != "POST" {
            return HttpResponse::new(405, "POST a name\n").with_header("Allow", "POST");
        }
        let name = form_urlencoded::parse(request.body())
            .find_map(|(key, value)| (key == "name").then(|| value.trim().to_owned()))
            .unwrap_or_default();
        if let Some(problem) = check(&name) {
            return json_response(400, &format!(r#"{{"error":{}}}"#, json(problem)));
        }
        let (tasks, previous) = (self.tasks.clone(), session_of(request));
        HttpResponse::defer(move |pending| {
            Self::queue(
                &tasks,
                Task::Login {
                    pending,
                    name,
                    previous,
                },
            );
        })
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
            Self::queue(
                &tasks,
                Task::Upgrade {
                    pending,
                    session,
                    join,
                },
            );
        })
    }
}

/// A worker: answers tasks until the server is gone.
fn work(queue: &Mutex<Receiver<Task>>, sessions: &Shared) {
    loop {
        let task = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(task) = task else {
            return;
        };
        match task {
            Task::Login {
                pending,
                name,
                previous,
            } => {
                let response = match login(sessions, &name, previous.as_deref()) {
                    Ok(Some(session)) => {
                        json_response(200, &format!(r#"{{"name":{}}}"#, json(&name))).with_header(
                            "Set-Cookie",
                            format!("{COOKIE}={session}{}", sessions.attributes),
                        )
                    }
                    Ok(None) => json_response(
                        409,
                        r#"{"error":"that name is already taken: choose another"}"#,
                    ),
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
                let done = session.as_deref().map_or(Ok(()), |s| {
                    sessions.store.delete(s)?;
                    sessions.tabs.close(s);
                    sessions.store.announce_logout(s)
                });
                let response = match done {
                    Err(e) => store_down(&e),
                    Ok(()) => json_response(200, "{}").with_header(
                        "Set-Cookie",
                        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
                    ),
                };
                let _ = pending.respond(response);
            }
            Task::Upgrade {
                pending,
                session,
                join,
            } => match lookup(sessions, session.as_deref()) {
                Ok(Some(name)) => {
                    if let (Ok(handle), Some(session)) = (pending.accept(join(name)), session) {
                        sessions.tabs.add(session, handle);
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

/// The open connections of each session on this server.
#[derive(Default)]
struct Tabs(Mutex<HashMap<String, Vec<ConnHandle>>>);

impl Tabs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ConnHandle>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `handle` among `session`'s tabs (forgetting those that closed).
    fn add(&self, session: String, handle: ConnHandle) {
        let mut tabs = self.lock();
        let open = tabs.entry(session).or_default();
        open.retain(|tab| !tab.is_gone());
        open.push(handle);
    }

    /// Closes every tab of `session` with [`LOGGED_OUT`], through their handles.
    fn close(&self, session: &str) {
        let tabs = self.lock().remove(session);
        for tab in tabs.into_iter().flatten() {
            tab.close(LOGGED_OUT, "logged out");
        }
    }
}

/// Logs `name` in under a new session (giving up `previous`); `None` when someone
/// else holds the name.
fn login(sessions: &Shared, name: &str, previous: Option<&str>) -> Result<Option<String>, String> {
    if let Some(previous) = previous {
        sessions.store.delete(previous)?;
    }
    let session = new_session_id()?;
    Ok(sessions.store.claim(&session, name)?.then_some(session))
}

fn lookup(sessions: &Shared, session: Option<&str>) -> Result<Option<String>, String> {
    match session {
        Some(session) => sessions.store.get(session),
        None => Ok(None),
    }
}

/// The session id in the request's cookie, if any.
fn session_of(request: &Request<'_>) -> Option<String> {
    request.header_values("cookie").find_map(|value| {
        std::str::from_utf8(value)
            .ok()?
            .split(';')
            .find_map(|pair| {
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

//! TLS connections in the core, with no socket: an in-memory rustls client, and the
//! core's ciphertext taken the way each kind of driver takes it (a readiness driver
//! whose socket takes a few bytes at a time; a completion driver that submits frozen
//! bytes and reports completions).

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore};

use super::*;
use crate::server::tls::Acceptor;
use crate::server::tls::session::MAX_SEAL;

/// A harness whose core serves TLS, and a client configuration that trusts it.
fn tls_harness() -> (Harness, Arc<rustls::ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = crate::server::tls::server_config(vec![cert.clone()], key).unwrap();
    let mut h = Harness::new(ServerConfig::default());
    let shared = Arc::new(Shared {
        remotes: vec![Remote::new(Box::new(NoWake))],
        tls: Some(Arc::new(Acceptor::new(config))),
        ..Shared::detached(Arc::new(Stats::default()), Arc::new(Interest::default()))
    });
    let app = App {
        closes: h.closes.clone(),
        pending: Arc::default(),
    };
    h.core = Core::new(
        0,
        Arc::new(app),
        Arc::new(ServerConfig::default()),
        shared.clone(),
        h.origin,
    );
    h.shared = shared;
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    (h, crate::client::tls_config(roots))
}

/// How the test plays the driver.
#[derive(Clone, Copy)]
enum Driver {
    /// The socket takes this many bytes each time it is writable.
    Readiness(usize),
    /// Every write is a submission of the outbox's frozen bytes.
    Completion,
}

/// A TLS client talking to connection `key` of the harness.
struct Client {
    tls: ClientConnection,
    key: usize,
    driver: Driver,
    /// Plaintext received.
    plain: Vec<u8>,
}

impl Client {
    fn connect(h: &mut Harness, config: Arc<rustls::ClientConfig>, driver: Driver) -> Self {
        let key = h.connect(0);
        h.wire.defers = matches!(driver, Driver::Completion);
        let name = ServerName::try_from("localhost").unwrap();
        Self {
            tls: ClientConnection::new(config, name).unwrap(),
            key,
            driver,
            plain: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything more to say.
    fn pump(&mut self, h: &mut Harness) {
        for _ in 0..10_000 {
            let mut out = Vec::new();
            while self.tls.wants_write() {
                self.tls.write_tls(&mut out).unwrap();
            }
            if !out.is_empty() {
                h.read(self.key, &out);
            }
            let got = self.server_bytes(h);
            if got.is_empty() && out.is_empty() {
                return;
            }
            let mut input = &got[..];
            while !input.is_empty() {
                self.tls.read_tls(&mut input).unwrap();
                self.tls.process_new_packets().unwrap();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = self.tls.reader().read(&mut buf) {
                    self.plain.extend_from_slice(&buf[..n]);
                }
            }
        }
        panic!("no quiet after 10,000 exchanges");
    }

    /// What the server wrote since the last call, the way the driver takes it.
    fn server_bytes(&mut self, h: &mut Harness) -> Vec<u8> {
        if h.core.io_mut(self.key).is_none() {
            return h
                .wire
                .released
                .iter_mut()
                .find(|(k, _)| *k == self.key)
                .map(|(_, memory)| std::mem::take(&mut memory.taken))
                .unwrap_or_default();
        }
        match self.driver {
            Driver::Readiness(budget) => {
                h.writable(self.key, budget);
                match h.core.io_mut(self.key) {
                    Some(memory) => std::mem::take(&mut memory.taken),
                    None => self.server_bytes(h),
                }
            }
            Driver::Completion => {
                let mut chunks: Vec<Bytes> = Vec::new();
                let n = h.core.sendable(self.key, &mut chunks);
                if n == 0 {
                    return Vec::new();
                }
                h.core.sent(self.key, Some(n), false, &mut h.wire);
                chunks.concat()
            }
        }
    }

    /// Sends the upgrade request over the TLS session and takes the valid 101 out of
    /// the plaintext received.
    fn upgrade(&mut self, h: &mut Harness) {
        let (handshake, request) = ClientHandshake::new("localhost", "/", &[], &[]);
        self.send(h, &request);
        let end = self
            .plain
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head")
            + 4;
        handshake.validate(&self.plain[..end]).expect("a valid 101");
        self.plain.drain(..end);
    }

    fn send(&mut self, h: &mut Harness, bytes: &[u8]) {
        self.tls.writer().write_all(bytes).unwrap();
        self.pump(h);
    }
}

fn upgrade_and_echo(driver: Driver) {
    let (mut h, config) = tls_harness();
    let mut client = Client::connect(&mut h, config, driver);
    client.pump(&mut h);
    assert!(!client.tls.is_handshaking(), "the TLS handshake completed");
    assert_eq!(client.tls.alpn_protocol(), Some(&b"http/1.1"[..]));
    client.upgrade(&mut h);
    client.send(&mut h, &masked(OpCode::Text, b"hello"));
    client.send(&mut h, &masked(OpCode::Text, "big 100000".as_bytes()));
    // A frame header split across two records that arrive in two reads: the first
    // byte waits in the connection as plaintext, not in front of the next ciphertext.
    let split = masked(OpCode::Text, b"split");
    client.send(&mut h, &split[..1]);
    client.send(&mut h, &split[1..]);
    assert_eq!(
        frames(&mut client.plain),
        ["text hello", "binary 100000", "text split"]
    );
    client.plain.clear();
    // The close handshake, then close_notify and the connection is gone.
    client.send(&mut h, &masked(OpCode::Close, &1000u16.to_be_bytes()));
    assert_eq!(frames(&mut client.plain), ["close 1000"]);
    assert!(h.released(client.key).is_some(), "the connection ended");
    let mut rest = [0u8; 1];
    assert!(
        matches!(client.tls.reader().read(&mut rest), Ok(0)),
        "close_notify received"
    );
    assert_eq!(*h.closes.lock().unwrap(), [1000]);
}

#[test]
fn tls_through_a_readiness_driver_whose_socket_takes_little_at_a_time() {
    upgrade_and_echo(Driver::Readiness(1000));
}

#[test]
fn tls_through_a_completion_driver_that_submits_frozen_ciphertext() {
    upgrade_and_echo(Driver::Completion);
}

#[test]
fn garbage_instead_of_a_client_hello_ends_with_an_alert() {
    let (mut h, _) = tls_harness();
    let key = h.connect(usize::MAX);
    h.read(key, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let taken = h.peer(key).taken.clone();
    assert_eq!(taken.first(), Some(&0x15), "an alert record: {taken:?}");
    assert!(h.peer(key).shut, "our side shut down after the alert");
}

#[test]
fn a_slow_reader_holds_at_most_one_step_of_ciphertext_the_rest_stays_plaintext() {
    let (mut h, config) = tls_harness();
    let mut client = Client::connect(&mut h, config, Driver::Readiness(1000));
    client.pump(&mut h);
    client.upgrade(&mut h);
    // Ask for 1,000,000 bytes; the socket takes nothing meanwhile.
    client
        .tls
        .writer()
        .write_all(&masked(OpCode::Text, b"big 1000000"))
        .unwrap();
    let mut out = Vec::new();
    while client.tls.wants_write() {
        client.tls.write_tls(&mut out).unwrap();
    }
    h.peer(client.key).budget = 0;
    h.read(client.key, &out);
    let slot = h.core.conns.get(client.key).unwrap();
    let ciphertext = slot.tls.as_ref().unwrap().unsent_len();
    let plaintext = slot.conn.state.outbox.len();
    assert!(
        ciphertext > 0 && ciphertext <= MAX_SEAL + 4 * 32,
        "{ciphertext}"
    );
    assert!(plaintext >= 1_000_000 - MAX_SEAL, "{plaintext}");
    // Then it all arrives, in order.
    client.pump(&mut h);
    assert_eq!(frames(&mut client.plain), ["binary 1000000"]);
}

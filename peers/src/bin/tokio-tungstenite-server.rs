//! WebSocket peer built on tokio-tungstenite: echo on every path, broadcast on
//! `/broadcast`. One task per connection. With `--tls-cert FILE --tls-key FILE`
//! (PEM) it serves `wss://` through tokio-rustls (rustls, `ring` provider, ALPN
//! `http/1.1`), the usual tokio stack's TLS.
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};
use wavecore_peers::{BROADCAST_CAPACITY, BROADCAST_PATH, MAX_MESSAGE_SIZE};

/// Most queued broadcast messages written before one flush.
const MAX_BATCH: usize = 64;

fn main() -> std::io::Result<()> {
    let args = wavecore_peers::args_or_exit_tls("tokio-tungstenite-server");
    let tls = match &args.tls {
        Some((cert, key)) => Some(TlsAcceptor::from(tls_config(cert, key)?)),
        None => None,
    };
    wavecore_peers::runtime(args.threads)?.block_on(async move {
        let listener = TcpListener::bind(args.addr).await?;
        wavecore_peers::announce(listener.local_addr()?);
        let (hub, _) = broadcast::channel::<Message>(BROADCAST_CAPACITY);
        loop {
            let (stream, _) = listener.accept().await?;
            let hub = hub.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                // Per-connection errors (resets, protocol violations, failed TLS
                // handshakes) just end that connection.
                if stream.set_nodelay(true).is_err() {
                    return;
                }
                let _ = match tls {
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => serve(stream, hub).await,
                        Err(_) => return,
                    },
                    None => serve(stream, hub).await,
                };
            });
        }
    })
}

/// A rustls server configuration for the PEM certificate chain and key files.
fn tls_config(cert: &Path, key: &Path) -> std::io::Result<Arc<ServerConfig>> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid(format!("{}: {e}", key.display())))?;
    // The provider wavecore's TLS uses (ring; rustls 0.23.48 deprecated its
    // constructor for lacking post-quantum key exchange): the same crypto on both sides.
    #[expect(deprecated, reason = "the same ring provider as wavecore's")]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs the handshake, then echoes or joins the broadcast depending on the path.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    hub: broadcast::Sender<Message>,
) -> tokio_tungstenite::tungstenite::Result<()> {
    let mut path = String::new();
    // The error type is fixed by tungstenite's `Callback` trait; we never return it.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_string();
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    let ws = accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    if path == BROADCAST_PATH {
        broadcast_loop(ws, hub).await
    } else {
        echo_loop(ws).await
    }
}

/// Sends every data message straight back. Pings are answered and the close
/// handshake completed by tungstenite itself while we read.
async fn echo_loop<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
) -> tokio_tungstenite::tungstenite::Result<()> {
    while let Some(msg) = ws.next().await {
        // On Close tungstenite queues the reply; the next read flushes it and
        // then ends the stream. Pongs are likewise answered while reading.
        if let msg @ (Message::Text(_) | Message::Binary(_)) = msg? {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

/// Publishes every data message to the hub and writes everything the hub
/// delivers (own messages included). A subscriber that lags skips what it missed.
async fn broadcast_loop<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    hub: broadcast::Sender<Message>,
) -> tokio_tungstenite::tungstenite::Result<()> {
    let mut rx = hub.subscribe();
    // Set once the peer sent Close: stop writing data so the queued close
    // reply goes out, then read until tungstenite ends the stream.
    let mut closing = false;
    loop {
        // Both branches are cancel safe: tungstenite buffers partial frames
        // internally and broadcast::Receiver::recv loses nothing when dropped.
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    // Fails only when no subscriber exists, and we are one.
                    let _ = hub.send(msg);
                }
                Some(Ok(Message::Close(_))) => closing = true,
                Some(Ok(_)) => {}
                None => break,
                Some(Err(e)) => return Err(e),
            },
            outgoing = rx.recv(), if !closing => match outgoing {
                Ok(msg) => {
                    ws.feed(msg).await?;
                    for _ in 1..MAX_BATCH {
                        match rx.try_recv() {
                            Ok(more) => ws.feed(more).await?,
                            Err(TryRecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        }
                    }
                    ws.flush().await?;
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}

//! WebSocket peer built on tokio-tungstenite: echo on every path, broadcast on
//! `/broadcast`. One task per connection.
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};
use wavecore_peers::{BROADCAST_CAPACITY, BROADCAST_PATH, MAX_MESSAGE_SIZE};

/// Most queued broadcast messages written before one flush.
const MAX_BATCH: usize = 64;

fn main() -> std::io::Result<()> {
    let args = wavecore_peers::args_or_exit("tokio-tungstenite-server", false);
    wavecore_peers::runtime(args.threads)?.block_on(async move {
        let listener = TcpListener::bind(args.addr).await?;
        wavecore_peers::announce(listener.local_addr()?);
        let (hub, _) = broadcast::channel::<Message>(BROADCAST_CAPACITY);
        loop {
            let (stream, _) = listener.accept().await?;
            let hub = hub.clone();
            tokio::spawn(async move {
                // Per-connection errors (resets, protocol violations) just end that connection.
                let _ = serve(stream, hub).await;
            });
        }
    })
}

/// Runs the handshake, then echoes or joins the broadcast depending on the path.
async fn serve(
    stream: TcpStream,
    hub: broadcast::Sender<Message>,
) -> tokio_tungstenite::tungstenite::Result<()> {
    stream.set_nodelay(true)?;
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
async fn echo_loop(
    mut ws: WebSocketStream<TcpStream>,
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
async fn broadcast_loop(
    mut ws: WebSocketStream<TcpStream>,
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

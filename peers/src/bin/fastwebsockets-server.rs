//! WebSocket peer built on fastwebsockets, served through hyper 1 the way the
//! library's own examples do: echo on every path, broadcast on `/broadcast`.
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use bytes::Bytes;
use fastwebsockets::upgrade::{self, UpgradeFut};
use fastwebsockets::{
    FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError,
};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;
use wavecore_peers::{BROADCAST_CAPACITY, BROADCAST_PATH, MAX_MESSAGE_SIZE};

/// A data message as the hub carries it: opcode plus a cheaply cloned payload.
type HubMessage = (OpCode, Bytes);

fn main() -> std::io::Result<()> {
    let args = wavecore_peers::args_or_exit("fastwebsockets-server", false);
    wavecore_peers::runtime(args.threads)?.block_on(async move {
        let listener = TcpListener::bind(args.addr).await?;
        wavecore_peers::announce(listener.local_addr()?);
        let (hub, _) = broadcast::channel::<HubMessage>(BROADCAST_CAPACITY);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let hub = hub.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| upgrade_request(req, hub.clone()));
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                // A failed or reset HTTP connection only ends that connection.
                let _ = conn.await;
            });
        }
    })
}

/// Answers the upgrade request and spawns the WebSocket task for its path.
async fn upgrade_request(
    mut req: Request<Incoming>,
    hub: broadcast::Sender<HubMessage>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    let is_broadcast = req.uri().path() == BROADCAST_PATH;
    tokio::spawn(async move {
        // Per-connection errors (resets, protocol violations) just end that connection.
        let _ = if is_broadcast {
            broadcast_conn(fut, hub).await
        } else {
            echo_conn(fut).await
        };
    });
    Ok(response)
}

/// Echoes every (reassembled) data message. Auto-pong and auto-close are on,
/// so pings and the close handshake are answered inside `read_frame`.
async fn echo_conn(fut: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    ws.set_max_message_size(MAX_MESSAGE_SIZE);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// Broadcast connection: the socket is split; this task reads and publishes,
/// a writer task owns the write half and sends both hub traffic and the control
/// replies (pong, close) that the reader is obliged to send.
///
/// `read_frame` is not cancel safe, so it cannot sit in a `select!` beside the
/// hub receiver; splitting is what lets reading and writing proceed independently.
async fn broadcast_conn(
    fut: UpgradeFut,
    hub: broadcast::Sender<HubMessage>,
) -> Result<(), WebSocketError> {
    let ws = fut.await?;
    let (mut rx_half, mut tx_half) = ws.split(tokio::io::split);
    rx_half.set_auto_pong(true);
    rx_half.set_auto_close(true);
    rx_half.set_max_message_size(MAX_MESSAGE_SIZE);
    let mut reader = FragmentCollectorRead::new(rx_half);
    let (control_tx, mut control_rx) = mpsc::channel::<HubMessage>(16);
    let mut sub = hub.subscribe();

    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                control = control_rx.recv() => match control {
                    Some((opcode, payload)) => {
                        let frame = Frame::new(true, opcode, None, Payload::Borrowed(&payload));
                        tx_half.write_frame(frame).await?;
                        if opcode == OpCode::Close {
                            return Ok(());
                        }
                    }
                    // The reader is gone: the connection is over.
                    None => return Ok(()),
                },
                published = sub.recv() => match published {
                    Ok((opcode, payload)) => {
                        let frame = Frame::new(true, opcode, None, Payload::Borrowed(&payload));
                        tx_half.write_frame(frame).await?;
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Ok::<(), WebSocketError>(()),
                },
            }
        }
    });

    let result = read_and_publish(&mut reader, &control_tx, &hub).await;
    drop(control_tx);
    let written = writer.await.unwrap_or(Ok(()));
    result.and(written)
}

/// Reads (reassembled) messages and publishes the data ones until Close or error.
async fn read_and_publish<S>(
    reader: &mut FragmentCollectorRead<S>,
    control: &mpsc::Sender<HubMessage>,
    hub: &broadcast::Sender<HubMessage>,
) -> Result<(), WebSocketError>
where
    S: tokio::io::AsyncRead + Unpin,
{
    loop {
        let mut obligated = |frame: Frame<'_>| {
            let reply = (frame.opcode, Bytes::copy_from_slice(&frame.payload));
            async move { control.send(reply).await }
        };
        let frame = reader.read_frame(&mut obligated).await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            opcode @ (OpCode::Text | OpCode::Binary) => {
                let payload = match frame.payload {
                    Payload::Bytes(b) => b.freeze(),
                    Payload::Owned(v) => Bytes::from(v),
                    other => Bytes::copy_from_slice(&other),
                };
                // Fails only when no subscriber exists, and we are one.
                let _ = hub.send((opcode, payload));
            }
            _ => {}
        }
    }
}

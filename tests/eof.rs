//! A peer's FIN that arrives together with its last bytes (issue 11, fault 1): the
//! server must see the EOF in the same turn, whatever phase the connection is in, not
//! wait for a timer (pings are off here, so nothing else would ever close it).

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};

use common::{
    Closes, OP_TEXT, TestServer, builder, echo_service, encode_frame, read_frame,
    read_response_head, tcp, upgrade_request, wait_closes, wait_until,
};
use socket2::SockRef;

fn start(closes: &Closes) -> TestServer {
    TestServer::start(builder().ping_interval(None), echo_service(closes))
}

/// Sends `bytes` and the FIN in one segment (TCP_CORK holds the data until the
/// shutdown sends it with the FIN).
fn send_with_fin(stream: &mut TcpStream, bytes: &[u8]) {
    let sock = SockRef::from(&*stream);
    sock.set_tcp_cork(true).unwrap();
    stream.write_all(bytes).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
}

/// Whether the server closed the connection (EOF or reset) after `stream`'s pending
/// bytes; a read timeout means it did not.
fn server_closed(stream: &mut TcpStream) -> bool {
    common::read_to_end_or_reset(stream)
}

fn upgraded(addr: SocketAddr) -> TcpStream {
    common::raw_upgrade(addr)
}

#[test]
fn a_frame_and_fin_together_get_the_echo_then_the_close() {
    let closes = Closes::default();
    let server = start(&closes);
    let mut stream = upgraded(server.addr);
    send_with_fin(
        &mut stream,
        &encode_frame(true, OP_TEXT, b"last words", true),
    );
    let echo = read_frame(&mut stream).expect("the echo");
    assert_eq!(echo.payload, b"last words");
    assert!(server_closed(&mut stream), "EOF seen without a timer");
    let seen = wait_closes(&closes, 1);
    assert_eq!(seen[0].0, 1006, "no close frame came: abnormal closure");
    assert!(wait_until(|| server.handle.stats().open_connections == 0));
}

#[test]
fn a_partial_frame_and_fin_together_close_at_once() {
    let closes = Closes::default();
    let server = start(&closes);
    let mut stream = upgraded(server.addr);
    send_with_fin(&mut stream, &[0x81]);
    assert!(server_closed(&mut stream), "EOF seen without a timer");
    assert_eq!(wait_closes(&closes, 1)[0].0, 1006);
}

#[test]
fn an_upgrade_request_and_fin_together_end_the_connection() {
    let closes = Closes::default();
    let server = start(&closes);
    let mut stream = tcp(server.addr);
    send_with_fin(&mut stream, upgrade_request("/", &[], "").as_bytes());
    let reply = read_response_head(&mut stream);
    assert_eq!(reply.status, 101);
    assert!(server_closed(&mut stream), "EOF seen without a timer");
    assert_eq!(wait_closes(&closes, 1)[0].0, 1006);
}

#[test]
fn half_a_request_head_and_fin_together_free_the_slot_at_once() {
    let closes = Closes::default();
    let server = start(&closes);
    let mut stream = tcp(server.addr);
    send_with_fin(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n");
    assert!(
        server_closed(&mut stream),
        "closed well before the 10 s handshake timeout would"
    );
    assert_eq!(server.handle.stats().handshake_timeouts, 0);
}

#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/.

Each input is two bytes (how to cut the rest into reads, option bits; see
src/fuzzing.rs) and a byte stream. Seeds are named seed-*, so they stay apart from
what the fuzzer adds. Run from anywhere: python3 fuzz/make_seeds.py
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = b"\x37\xfa\x21\x3d"


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0, force_len=None):
    out = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload) if force_len is None else force_len
    bit = 0x80 if masked else 0
    if n < 126:
        out.append(bit | n)
    elif n <= 0xFFFF:
        out.append(bit | 126)
        out += struct.pack(">H", n)
    else:
        out.append(bit | 127)
        out += struct.pack(">Q", n)
    if masked:
        out += KEY
        out += bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return bytes(out)


def long_len(opcode, payload, masked):
    """A frame whose (short) length is written in the 64-bit form."""
    out = bytearray([0x80 | opcode, (0x80 if masked else 0) | 127]) + struct.pack(">Q", len(payload))
    if masked:
        return bytes(out + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(payload)))
    return bytes(out + payload)


def close(code, reason=b"", masked=True):
    return frame(0x8, struct.pack(">H", code) + reason, masked=masked)


def frame_streams(masked):
    f = lambda *a, **k: frame(*a, masked=masked, **k)
    return {
        "hello": f(0x1, b"Hello"),
        "binary": f(0x2, bytes(range(200))),
        "len16": f(0x2, b"x" * 300),
        # A 64-bit length for a short payload, and a long frame cut short.
        "len64": long_len(0x2, b"y" * 8, masked),
        "len64_partial": frame(0x2, b"y" * 70000, masked=masked)[:120],
        "fragments": f(0x1, b"Hel", fin=False) + f(0x9, b"ping") + f(0x0, b"lo"),
        "utf8_split": f(0x1, "hé".encode()[:2], fin=False) + f(0x0, "hé".encode()[2:]),
        "control": f(0x9, b"") + f(0xA, b"pong") + close(1000, b"bye", masked),
        "close_empty": f(0x8, b""),
        "close_bad_code": close(999, b"", masked),
        "bad_utf8": f(0x1, b"ok \xff\xfe"),
        "reserved_opcode": f(0x3, b"?"),
        "rsv1": f(0x1, b"deflated?", rsv=4),
        "wrong_masking": frame(0x1, b"other role", masked=not masked),
        "big_control": f(0x9, b"p" * 126),
        "continuation_first": f(0x0, b"orphan"),
        "top_bit_len": bytes([0x82, (0x80 if masked else 0) | 127, 0x80, 0, 0, 0, 0, 0, 0, 1]),
    }


def upgrade(path=b"/", extra=b"", method=b"GET", version=b"HTTP/1.1", omit=()):
    fields = [
        (b"Host", b"localhost"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"Sec-WebSocket-Version", b"13"),
    ]
    head = method + b" " + path + b" " + version + b"\r\n"
    for name, value in fields:
        if name not in omit:
            head += name + b": " + value + b"\r\n"
    return head + extra + b"\r\n"


def request_streams():
    return {
        "upgrade": upgrade(),
        "upgrade_protocols": upgrade(extra=b"Sec-WebSocket-Protocol: chat, superchat\r\n"
                                     b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                                     b"Origin: http://example.com\r\n"),
        "plain_get": b"GET /index.html?room=a HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "post_upgrade": upgrade(method=b"POST"),
        "http10": upgrade(version=b"HTTP/1.0"),
        "absolute_form": upgrade(path=b"http://example.com:8080/chat?x=1"),
        "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "authority": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "no_key": upgrade(omit=(b"Sec-WebSocket-Key",)),
        "version8": upgrade(omit=(b"Sec-WebSocket-Version",), extra=b"Sec-WebSocket-Version: 8\r\n"),
        "body": upgrade(extra=b"Content-Length: 5\r\n") + b"hello",
        "chunked": b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "two_lengths": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "bare_lf": b"GET / HTTP/1.1\nHost: x\n\n",
        "many_headers": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(10)) + b"\r\n",
        "long_head": b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "broken_upgrade": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n",
        "garbage": b"\x00\xff GET\r\n\r\n",
    }


ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def response_streams():
    ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + ACCEPT + b"\r\n"
    return {
        "accepted": ok + b"\r\n",
        "accepted_chat": ok + b"Sec-WebSocket-Protocol: chat\r\n\r\n" + frame(0x1, b"hi", masked=False),
        "unoffered_protocol": ok + b"Sec-WebSocket-Protocol: other\r\n\r\n",
        "extension": ok + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        "bad_accept": ok.replace(ACCEPT, b"x" * 28) + b"\r\n",
        "refused": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope",
        "no_upgrade": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n",
        "bare_lf": ok.replace(b"\r\n", b"\n") + b"\n",
        "http10": ok.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n",
    }


def text(payload):
    return frame(0x1, payload)


def connection_streams():
    """(options, stream): option bit 0 prepends an upgrade request."""
    return {
        "echo": (1, text(b"hello") + frame(0x2, b"\x00\x01\x02")),
        "commands": (1, text(b"s") + text(b"bpublish") + text(b"aall") + text(b"u") + text(b"pping!")),
        "close_by_handler": (1, text(b"c") + text(b"after close")),
        "close_by_peer": (1, close(1000, b"bye") + text(b"after close")),
        "ping_pong": (1, frame(0x9, b"are you there") + frame(0xA, b"")),
        "fragments": (1, frame(0x1, b"fra", fin=False) + frame(0x9, b"") + frame(0x0, b"gment")),
        "protocol_error": (1, frame(0x3, b"") + text(b"never")),
        "bad_utf8": (1, text(b"\xc3\x28")),
        "small_limits": (1 | 2, frame(0x2, b"z" * 100) + text(b"x" * 300)),
        "timers": (1 | 4, text(b"tick") + text(b"tock") + text(b"again")),
        "eof": (1 | 8, text(b"bye then")),
        "handshake_in_stream": (0, upgrade(extra=b"Sec-WebSocket-Protocol: chat\r\n") + text(b"hi")),
        "plain_get": (0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "refused": (0, upgrade(method=b"PUT")),
        "slow_head": (4, b"GET / HTTP/1.1\r\nHo"),
        "backpressure": (1 | 2, b"".join(text(b"x" * 200) for _ in range(20))),
    }


def deflate(data, wbits=15, level=6):
    """Raw DEFLATE with a sync flush, the trailing 00 00 ff ff removed (RFC 7692 7.2.1)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


def inflate_streams():
    """(options, compressed payload): option bit 0 small limit, bit 1 client context
    takeover, bit 2 a text message."""
    hello = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])
    return {
        "rfc_hello": (4, hello),
        "rfc_stored": (4, bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello" + b"\x00"),
        "rfc_bfinal": (4, bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00])),
        "rfc_two_blocks": (4, bytes([0xF2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xCA, 0xC9, 0xC9, 0x07, 0x00])),
        "bomb": (1, deflate(b"\x00" * 100000)),
        "json": (4 | 2, deflate(('{"id":1,"text":"h\u00e9llo"},' * 40).encode())),
        "bad_utf8": (4, deflate(b"valid, then \xff")),
        "reserved_block": (0, bytes([0xFF, 0xFF, 0xFF])),
        "window9": (2, deflate(bytes(range(256)) * 8, 9)),
    }


def write(target, name, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "seed-" + name), "wb") as out:
        out.write(data)


def main():
    steps = [0, 1, 5]
    for target, masked in [("frame_server", True), ("frame_client", False)]:
        for name, stream in frame_streams(masked).items():
            for step in steps:
                options = 1 if name in ("len16", "len64_partial") and step == 5 else 0
                if name == "rsv1" and step == 1:
                    options = 0x40  # RSV1 allowed, as permessage-deflate would
                write(target, f"{name}-{step}", bytes([step, options]) + stream)
    for name, stream in request_streams().items():
        for step in steps:
            options = 3 if name in ("many_headers", "long_head") and step == 5 else 0
            write("request_head", f"{name}-{step}", bytes([step, options]) + stream)
    for name, stream in response_streams().items():
        for step in steps:
            write("response_head", f"{name}-{step}", bytes([step, 0]) + stream)
    for name, (options, stream) in connection_streams().items():
        for step in steps:
            write("connection", f"{name}-{step}", bytes([step, options]) + stream)
    for name, (options, stream) in inflate_streams().items():
        for step in steps:
            write("inflate", f"{name}-{step}", bytes([step, options]) + stream)


if __name__ == "__main__":
    main()

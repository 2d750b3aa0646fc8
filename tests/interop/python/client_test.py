#!/usr/bin/env python3
"""Interop checks for a wavecore server, using the PyPI `websockets` client.

usage: client_test.py ws://127.0.0.1:PORT
       client_test.py wss://localhost:PORT CA_FILE   (TLS, trusting CA_FILE)

Prints one line per check (`ok NAME` or `FAIL NAME: WHY`), then a summary
line, and exits 0 only when every check passed. The whole run is bounded by
OVERALL_TIMEOUT seconds and each check by CHECK_TIMEOUT seconds.

The server contract these checks follow is described in tests/interop/README.md.
"""

import asyncio
import os
import ssl
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

OVERALL_TIMEOUT = 30.0
CHECK_TIMEOUT = 10.0
MAX_MESSAGE = 64 * 1024 * 1024
MIB = 1024 * 1024


class CheckFailed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise CheckFailed(why)


def describe(value):
    """Short description of a message for failure output."""
    kind = "text" if isinstance(value, str) else type(value).__name__
    if len(value) > 40:
        return f"{kind} of length {len(value)}"
    return f"{kind} {value!r}"


class Runner:
    def __init__(self, base, cafile=None):
        self.base = base.rstrip("/")
        # wss://: a TLS context that trusts the server's (test) certificate.
        self.tls = {}
        if base.startswith("wss://"):
            self.tls["ssl"] = ssl.create_default_context(cafile=cafile)
        self.passed = 0
        self.failed = 0
        # Unique per run, so that concurrent runs against one server (e.g. the
        # Node client on /broadcast at the same time) cannot confuse us.
        self.run_id = f"py-{os.getpid()}-{time.monotonic_ns()}"

    def connect(self, path="/echo", compression=None, **kwargs):
        return connect(
            self.base + path,
            # Plain RFC 6455 framing unless a check asks for permessage-deflate.
            compression=compression,
            # No automatic keepalive pings: they would interleave with ours.
            ping_interval=None,
            max_size=MAX_MESSAGE,
            open_timeout=5,
            close_timeout=5,
            **self.tls,
            **kwargs,
        )

    async def run(self, name, coro_fn):
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await coro_fn()
        except CheckFailed as e:
            self.report(name, str(e))
        except TimeoutError:
            self.report(name, f"timed out after {CHECK_TIMEOUT:.0f}s")
        except Exception as e:  # any other error is a failure of this check
            self.report(name, f"{type(e).__name__}: {e}")
        else:
            self.report(name, None)

    def report(self, name, why):
        if why is None:
            self.passed += 1
            print(f"ok {name}", flush=True)
        else:
            self.failed += 1
            why = " ".join(why.split())  # keep it to one line
            print(f"FAIL {name}: {why}", flush=True)

    # ---- checks -------------------------------------------------------

    async def echo_one(self, message):
        async with self.connect() as ws:
            await ws.send(message)
            got = await ws.recv()
            expect(type(got) is type(message),
                   f"sent {describe(message)}, got back {describe(got)}")
            expect(got == message, f"sent {describe(message)}, got back {describe(got)}")

    async def ping_pong(self):
        payload = b"wavecore-ping-\x00\xff"
        async with self.connect() as ws:
            # The waiter resolves only when a pong carrying a payload we sent
            # in a ping arrives; with a single ping pending it must be this one.
            waiter = await ws.ping(payload)
            await waiter
            # The connection must still work afterwards.
            await ws.send("after-ping")
            expect(await ws.recv() == "after-ping", "echo after ping/pong failed")

    async def fragmented(self, fragments):
        whole = fragments[0][:0].join(fragments)
        async with self.connect() as ws:
            await ws.send(iter(fragments))
            got = await ws.recv()
            expect(type(got) is type(whole),
                   f"expected reassembled {describe(whole)}, got {describe(got)}")
            expect(got == whole, f"expected reassembled {describe(whole)}, got {describe(got)}")

    async def client_close(self):
        async with self.connect() as ws:
            await ws.close(4000, "client says bye")
            rcvd = ws.protocol.close_rcvd
            expect(rcvd is not None, "no close frame received back from the server")
            expect(rcvd.code == 4000, f"server close frame has code {rcvd.code}, want 4000")

    async def server_close(self):
        async with self.connect() as ws:
            await ws.send("close:4001:bye")
            try:
                got = await ws.recv()
            except ConnectionClosed as e:
                rcvd = e.rcvd
                expect(rcvd is not None, "connection closed without a close frame from the server")
                expect(rcvd.code == 4001, f"close code {rcvd.code}, want 4001")
                expect(rcvd.reason == "bye", f"close reason {rcvd.reason!r}, want 'bye'")
                sent = e.sent
                expect(sent is not None and sent.code == 4001,
                       f"client should have echoed code 4001, sent {sent}")
            else:
                raise CheckFailed(f"expected the server to close, got message {describe(got)}")

    async def subprotocol(self, offer, want):
        async with self.connect(subprotocols=offer) as ws:
            got = ws.subprotocol
            expect(got == want, f"offered {offer}, server selected {got!r}, want {want!r}")
            await ws.send("proto")
            expect(await ws.recv() == "proto", "echo after negotiation failed")

    async def forbidden(self):
        try:
            async with self.connect("/forbidden"):
                pass
        except InvalidStatus as e:
            status = e.response.status_code
            expect(status == 403, f"handshake rejected with HTTP {status}, want 403")
        else:
            raise CheckFailed("handshake to /forbidden succeeded, want HTTP 403")

    async def broadcast(self):
        token = f"{self.run_id}-broadcast"

        async def wait_for(ws, wanted):
            # Ignore anything else: other clients may share /broadcast.
            while True:
                msg = await ws.recv()
                if msg == wanted:
                    return

        async with self.connect("/broadcast") as a, self.connect("/broadcast") as b:
            # Make sure the server has registered each connection before the
            # real broadcast: a connection sees its own message come back only
            # once it is part of the broadcast group.
            for name, ws in (("a", a), ("b", b)):
                sync = f"{token}-sync-{name}"
                await ws.send(sync)
                try:
                    async with asyncio.timeout(5):
                        await wait_for(ws, sync)
                except TimeoutError:
                    raise CheckFailed(
                        f"connection {name} did not get its own message back within 5s "
                        "(the sender must receive its broadcast too)") from None
            payload = f"{token}-payload héllo ✓"
            await a.send(payload)
            for name, ws in (("sender", a), ("receiver", b)):
                try:
                    async with asyncio.timeout(5):
                        await wait_for(ws, payload)
                except TimeoutError:
                    raise CheckFailed(f"{name} did not receive the broadcast within 5s") from None

    async def deflate(self):
        """permessage-deflate (RFC 7692) negotiated with websockets' default offer."""
        doc = "[" + ",".join(
            f'{{"id":{i},"user":"user{i}","text":"compressed by websockets"}}' for i in range(40)) + "]"
        async with self.connect(compression="deflate") as ws:
            answer = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            expect(answer.startswith("permessage-deflate"),
                   f"Sec-WebSocket-Extensions {answer!r}, want permessage-deflate")
            for message in (doc, doc.encode(), "short", "é✓" * (MIB // 5)):
                await ws.send(message)
                got = await ws.recv()
                expect(got == message, f"sent {describe(message)}, got back {describe(got)}")
            await ws.send(iter(["frag", "mented ", doc]))
            got = await ws.recv()
            expect(got == "fragmented " + doc, f"fragmented: got back {describe(got)}")

    async def main(self):
        big = os.urandom(MIB)
        await self.run("echo_text_ascii", lambda: self.echo_one("hello wavecore"))
        await self.run("echo_text_non_ascii", lambda: self.echo_one("héllo wörld ✓ 🎉"))
        await self.run("echo_text_empty", lambda: self.echo_one(""))
        await self.run("echo_binary", lambda: self.echo_one(bytes(range(256))))
        await self.run("echo_binary_empty", lambda: self.echo_one(b""))
        await self.run("echo_binary_1mib", lambda: self.echo_one(big))
        await self.run("echo_text_1mib", lambda: self.echo_one("é✓" * (MIB // 5)))
        await self.run("ping_pong", self.ping_pong)
        await self.run("fragmented_text",
                       lambda: self.fragmented(["frag", "mented ", "tëxt ", "🎉"]))
        await self.run("fragmented_binary",
                       lambda: self.fragmented([b"\x00\x01", b"", b"\x02" * 1000, big[:70000]]))
        await self.run("client_close_4000", self.client_close)
        await self.run("server_close_4001", self.server_close)
        await self.run("subprotocol_client_preference_v1",
                       lambda: self.subprotocol(["wavecore.v1", "wavecore.v2"], "wavecore.v1"))
        await self.run("subprotocol_client_preference_v2",
                       lambda: self.subprotocol(["nope", "wavecore.v2", "wavecore.v1"], "wavecore.v2"))
        await self.run("subprotocol_none", lambda: self.subprotocol(["nope"], None))
        await self.run("forbidden_403", self.forbidden)
        await self.run("broadcast", self.broadcast)
        await self.run("permessage_deflate", self.deflate)


async def amain(base, cafile):
    runner = Runner(base, cafile)
    try:
        async with asyncio.timeout(OVERALL_TIMEOUT):
            await runner.main()
    except TimeoutError:
        runner.report("overall", f"run exceeded {OVERALL_TIMEOUT:.0f}s")
    print(f"python-interop: {runner.passed} passed, {runner.failed} failed", flush=True)
    return 0 if runner.failed == 0 and runner.passed > 0 else 1


def main():
    if len(sys.argv) not in (2, 3) or not sys.argv[1].startswith(("ws://", "wss://")):
        print("usage: client_test.py ws://127.0.0.1:PORT | wss://localhost:PORT CA_FILE",
              file=sys.stderr)
        return 2
    cafile = sys.argv[2] if len(sys.argv) == 3 else None
    return asyncio.run(amain(sys.argv[1], cafile))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env node
// Interop checks for a wavecore server, using the npm `ws` client.
//
// usage: node tests/interop/node/client_test.mjs ws://127.0.0.1:PORT
//        node tests/interop/node/client_test.mjs wss://localhost:PORT CA_FILE  (TLS)
//
// Prints one line per check (`ok NAME` or `FAIL NAME: WHY`), then a summary
// line, and exits 0 only when every check passed. The whole run is bounded by
// OVERALL_TIMEOUT_MS and each check by CHECK_TIMEOUT_MS.
//
// The server contract these checks follow is described in tests/interop/README.md.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const OVERALL_TIMEOUT_MS = 30_000;
const CHECK_TIMEOUT_MS = 10_000;
const MIB = 1024 * 1024;

// wss://: the certificate (or CA) the server's certificate must chain to.
const TLS = process.argv[3] ? { ca: readFileSync(process.argv[3]) } : {};

class CheckFailed extends Error {}

function expect(cond, why) {
  if (!cond) throw new CheckFailed(why);
}

function describe(value, isBinary) {
  const kind = isBinary ? 'binary' : 'text';
  if (value.length > 40) return `${kind} of length ${value.length}`;
  return isBinary ? `${kind} <${Buffer.from(value).toString('hex')}>` : `${kind} ${JSON.stringify(value)}`;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`${what} timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// One client connection with a message queue, so that no message is lost
// between `await`s, and a promise for the close event.
class Conn {
  constructor(url, protocols) {
    this.queue = [];
    this.waiters = [];
    this.ws = new WebSocket(url, protocols, {
      // ws' default client max is 100 MiB; the server accepts up to 64 MiB.
      maxPayload: 64 * MIB,
      handshakeTimeout: 5000,
      ...TLS,
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString('utf8') });
        for (const w of this.waiters.splice(0)) {
          w.reject(new CheckFailed(`connection closed (code ${code}) while waiting for a message`));
        }
      });
    });
    this.ws.on('message', (data, isBinary) => {
      const msg = { data: isBinary ? data : data.toString('utf8'), isBinary };
      const w = this.waiters.shift();
      if (w) w.resolve(msg);
      else this.queue.push(msg);
    });
    // The 101 response, kept to inspect the handshake headers.
    this.upgrade = null;
    this.ws.once('upgrade', (res) => {
      this.upgrade = res;
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve(this));
      this.ws.once('unexpected-response', (req, res) => {
        res.resume();
        req.destroy();
        const err = new CheckFailed(`handshake rejected with HTTP ${res.statusCode}`);
        err.statusCode = res.statusCode;
        reject(err);
      });
      this.ws.on('error', (e) => reject(e));
    });
  }

  static open(base, path = '/echo', protocols = undefined) {
    return new Conn(base + path, protocols).opened;
  }

  recv() {
    const msg = this.queue.shift();
    if (msg) return Promise.resolve(msg);
    if (this.ws.readyState === WebSocket.CLOSED) {
      return Promise.reject(new CheckFailed('connection is closed'));
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  async close() {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    await withTimeout(this.closed, 5000, 'closing').catch(() => this.ws.terminate());
  }
}

class Runner {
  constructor(base) {
    this.base = base.replace(/\/+$/, '');
    this.passed = 0;
    this.failed = 0;
    // Unique per run, so concurrent clients sharing /broadcast can't confuse us.
    this.runId = `node-${process.pid}-${Date.now()}`;
    this.conns = [];
  }

  async open(path, protocols) {
    const conn = await Conn.open(this.base, path, protocols);
    this.conns.push(conn);
    return conn;
  }

  async run(name, fn) {
    let why = null;
    try {
      await withTimeout(fn(), CHECK_TIMEOUT_MS, 'check');
    } catch (e) {
      why = e instanceof CheckFailed ? e.message : `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
    } finally {
      // Close whatever the check left open, so checks stay independent.
      await Promise.all(this.conns.splice(0).map((c) => c.close()));
    }
    this.report(name, why);
  }

  report(name, why) {
    if (why === null) {
      this.passed += 1;
      console.log(`ok ${name}`);
    } else {
      this.failed += 1;
      console.log(`FAIL ${name}: ${String(why).replace(/\s+/g, ' ')}`);
    }
  }

  // ---- checks ---------------------------------------------------------

  async echoOne(data, isBinary) {
    const c = await this.open('/echo');
    c.ws.send(data, { binary: isBinary });
    const got = await c.recv();
    const want = describe(data, isBinary);
    expect(got.isBinary === isBinary, `sent ${want}, got back ${describe(got.data, got.isBinary)}`);
    const same = isBinary ? Buffer.compare(got.data, Buffer.from(data)) === 0 : got.data === data;
    expect(same, `sent ${want}, got back ${describe(got.data, got.isBinary)}`);
  }

  async pingPong() {
    const c = await this.open('/echo');
    const payload = Buffer.from('wavecore-ping-\x00\xff', 'latin1');
    const pong = new Promise((resolve) => c.ws.once('pong', resolve));
    c.ws.ping(payload);
    const got = await withTimeout(pong, 5000, 'waiting for pong');
    expect(Buffer.compare(got, payload) === 0,
      `pong payload <${got.toString('hex')}>, want <${payload.toString('hex')}>`);
    c.ws.send('after-ping');
    expect((await c.recv()).data === 'after-ping', 'echo after ping/pong failed');
  }

  async fragmented(fragments, isBinary) {
    const c = await this.open('/echo');
    fragments.forEach((f, i) => {
      c.ws.send(f, { binary: isBinary, fin: i === fragments.length - 1 });
    });
    const whole = isBinary ? Buffer.concat(fragments) : fragments.join('');
    const got = await c.recv();
    const want = `reassembled ${describe(whole, isBinary)}`;
    expect(got.isBinary === isBinary, `expected ${want}, got ${describe(got.data, got.isBinary)}`);
    const same = isBinary ? Buffer.compare(got.data, whole) === 0 : got.data === whole;
    expect(same, `expected ${want}, got ${describe(got.data, got.isBinary)}`);
  }

  async clientClose() {
    const c = await this.open('/echo');
    c.ws.close(4000, 'client says bye');
    const { code } = await withTimeout(c.closed, 5000, 'waiting for close');
    // ws reports the code from the server's close frame (1006 if there was none).
    expect(code === 4000, `close event code ${code}, want 4000`);
  }

  async serverClose() {
    const c = await this.open('/echo');
    c.ws.send('close:4001:bye');
    const { code, reason } = await withTimeout(c.closed, 5000, 'waiting for server close');
    expect(code === 4001, `close event code ${code}, want 4001`);
    expect(reason === 'bye', `close event reason ${JSON.stringify(reason)}, want "bye"`);
    expect(c.queue.length === 0, `unexpected message before close: ${JSON.stringify(c.queue[0]?.data)}`);
  }

  async subprotocol(offer, want) {
    const c = await this.open('/echo', offer);
    const got = c.ws.protocol === '' ? null : c.ws.protocol;
    expect(got === want, `offered ${JSON.stringify(offer)}, server selected ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    c.ws.send('proto');
    expect((await c.recv()).data === 'proto', 'echo after negotiation failed');
  }

  // When the client offers only unknown subprotocols the server must accept
  // the connection without a Sec-WebSocket-Protocol header. `ws` itself then
  // aborts the connection ("Server sent no subprotocol", its client-side
  // policy), so check the 101 response it received instead.
  async subprotocolNone() {
    const conn = new Conn(`${this.base}/echo`, ['nope']);
    this.conns.push(conn);
    try {
      await conn.opened;
    } catch (e) {
      if (e.message !== 'Server sent no subprotocol') throw e;
    }
    const res = conn.upgrade;
    expect(res !== null, 'no 101 handshake response received');
    expect(res.statusCode === 101, `handshake answered with HTTP ${res.statusCode}, want 101`);
    const header = res.headers['sec-websocket-protocol'];
    expect(header === undefined, `server selected subprotocol ${JSON.stringify(header)}, want none`);
  }

  async forbidden() {
    let conn;
    try {
      conn = await this.open('/forbidden');
    } catch (e) {
      expect(e.statusCode !== undefined, `handshake failed without an HTTP status: ${e.message}`);
      expect(e.statusCode === 403, `handshake rejected with HTTP ${e.statusCode}, want 403`);
      return;
    }
    throw new CheckFailed('handshake to /forbidden succeeded, want HTTP 403');
  }

  async broadcast() {
    const token = `${this.runId}-broadcast`;
    // Ignore anything else: other clients may share /broadcast.
    const waitFor = async (c, wanted) => {
      for (;;) {
        const msg = await c.recv();
        if (!msg.isBinary && msg.data === wanted) return;
      }
    };
    const a = await this.open('/broadcast');
    const b = await this.open('/broadcast');
    // A connection sees its own message only once the server has added it to
    // the broadcast group; sync both before the real broadcast.
    for (const [name, c] of [['a', a], ['b', b]]) {
      const sync = `${token}-sync-${name}`;
      c.ws.send(sync);
      await withTimeout(waitFor(c, sync), 5000,
        `connection ${name} getting its own message back (the sender must receive its broadcast too)`);
    }
    const payload = `${token}-payload héllo ✓`;
    a.ws.send(payload);
    await withTimeout(waitFor(a, payload), 5000, 'sender receiving the broadcast');
    await withTimeout(waitFor(b, payload), 5000, 'receiver receiving the broadcast');
  }

  // ws offers permessage-deflate by default and compresses messages of 1 KiB or more.
  async deflate() {
    const c = await this.open('/echo');
    expect(c.ws.extensions.startsWith('permessage-deflate'),
      `negotiated extensions ${JSON.stringify(c.ws.extensions)}, want permessage-deflate`);
    const doc = JSON.stringify([...Array(60).keys()].map((i) => ({ id: i, user: `user${i}`, text: 'compressed by ws' })));
    for (const [data, isBinary] of [[doc, false], [Buffer.from(doc), true], ['short', false]]) {
      c.ws.send(data);
      const got = await c.recv();
      expect(got.isBinary === isBinary && Buffer.from(got.data).equals(Buffer.from(data)),
        `echo of ${data.length} bytes came back different`);
    }
  }

  async main() {
    const big = randomBytes(MIB);
    await this.run('echo_text_ascii', () => this.echoOne('hello wavecore', false));
    await this.run('echo_text_non_ascii', () => this.echoOne('héllo wörld ✓ 🎉', false));
    await this.run('echo_text_empty', () => this.echoOne('', false));
    await this.run('echo_binary', () => this.echoOne(Buffer.from([...Array(256).keys()]), true));
    await this.run('echo_binary_empty', () => this.echoOne(Buffer.alloc(0), true));
    await this.run('echo_binary_1mib', () => this.echoOne(big, true));
    await this.run('echo_text_1mib', () => this.echoOne('é✓'.repeat(Math.floor(MIB / 5)), false));
    await this.run('ping_pong', () => this.pingPong());
    await this.run('fragmented_text', () => this.fragmented(['frag', 'mented ', 'tëxt ', '🎉'], false));
    await this.run('fragmented_binary', () => this.fragmented(
      [Buffer.from([0, 1]), Buffer.alloc(0), Buffer.alloc(1000, 2), big.subarray(0, 70000)], true));
    await this.run('client_close_4000', () => this.clientClose());
    await this.run('server_close_4001', () => this.serverClose());
    await this.run('subprotocol_client_preference_v1',
      () => this.subprotocol(['wavecore.v1', 'wavecore.v2'], 'wavecore.v1'));
    await this.run('subprotocol_client_preference_v2',
      () => this.subprotocol(['nope', 'wavecore.v2', 'wavecore.v1'], 'wavecore.v2'));
    await this.run('subprotocol_none', () => this.subprotocolNone());
    await this.run('forbidden_403', () => this.forbidden());
    await this.run('broadcast', () => this.broadcast());
    await this.run('permessage_deflate', () => this.deflate());
  }
}

async function main() {
  const base = process.argv[2];
  if (![3, 4].includes(process.argv.length) || !/^wss?:\/\//.test(base)) {
    console.error('usage: node client_test.mjs ws://127.0.0.1:PORT | wss://localhost:PORT CA_FILE');
    process.exit(2);
  }
  const runner = new Runner(base);
  const overall = setTimeout(() => {
    runner.report('overall', `run exceeded ${OVERALL_TIMEOUT_MS / 1000}s`);
    console.log(`node-interop: ${runner.passed} passed, ${runner.failed} failed`);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);
  await runner.main();
  clearTimeout(overall);
  console.log(`node-interop: ${runner.passed} passed, ${runner.failed} failed`);
  process.exit(runner.failed === 0 && runner.passed > 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL internal: ${e?.stack ?? e}`);
  process.exit(1);
});

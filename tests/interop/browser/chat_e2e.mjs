#!/usr/bin/env node
// End to end: the chat demo (examples/chat) as people use it, in Debian's headless
// Chromium: two rooms, presence, a tab that lost its connection sent every line it
// missed, a multi-byte line at the limit and past it, a refused room, Ctrl-C (SIGINT:
// every page gets 1001) and reconnecting after a restart (told that earlier lines are
// gone).
//
// usage: node tests/interop/browser/chat_e2e.mjs PATH/TO/target/debug/examples/chat
//
// The page logs in before it connects (a session cookie, examples/chat/auth.rs), so
// each person is a browser context of their own (own cookies); a person's second tab
// shares their session, and a logout closes every tab of it.
//
// Also: a name someone else is logged in with is refused with a reason, and a
// page at a phone's width (360 px) shows its whole header, folds the member list, never
// scrolls sideways, greys the list out while disconnected and keeps the header's
// height when the status changes (so does a wide page); each state is
// saved as a screenshot (in $WAVECORE_SCREENSHOTS, else a temporary directory; the
// path is printed) whose width is checked.
//
// Starts the chat binary on 127.0.0.1:0 (and again on the same address after the
// SIGINT), prints one line per check, `ok NAME` or `FAIL NAME: WHY`, then a summary,
// and exits 0 only if every check passed. Uses `playwright-core` from tests/interop/node
// (install with .ci/install-interop.sh); never downloads a browser.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(new URL('../node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.WAVECORE_CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 10_000; // one condition on a page
const RECONNECT_MS = 20_000; // the page's backoff after a restart is at most ~12 s
const HARD_TIMEOUT_MS = 100_000; // everything, whatever happens
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const LIMIT = 4096; // bytes: MAX_LINE in examples/chat/main.rs
const PHONE = { width: 360, height: 740 }; // a small phone, CSS pixels

let passed = 0;
let failed = 0;
function ok(name) { passed += 1; console.log(`ok ${name}`); }
function fail(name, why) { failed += 1; console.log(`FAIL ${name}: ${why}`); }
async function check(name, body) {
  try { await body(); ok(name); } catch (e) { fail(name, String(e?.message ?? e).split('\n')[0]); }
}
function expect(cond, what) { if (!cond) throw new Error(what); }

// --- the server process -------------------------------------------------------------

function startChat(bin, addr) {
  const child = spawn(bin, [addr], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "chat on http://..." line within ${WAIT_MS} ms`)), WAIT_MS);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /chat on http:\/\/(\S+)\//.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`chat exited with ${code} before listening`)); });
  });
  child.stderr.on('data', (chunk) => process.stderr.write(`[chat] ${chunk}`));
  return { child, exited, listening, output: () => out };
}

// --- reading and driving a page -----------------------------------------------------

// A new person (a browser context of their own: own cookies, own session) on `query`.
async function open(browser, base, query, viewport) {
  const context = await browser.newContext(viewport ? { viewport } : {});
  return tab(context, base, query);
}

// A tab of the person whose context is `context` (sharing their session).
async function tab(context, base, query) {
  const page = await context.newPage();
  // The 101's Sec-WebSocket-Extensions, as Chromium received it (DevTools protocol).
  page.wsExtensions = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketHandshakeResponseReceived', ({ response }) => {
    const headers = Object.fromEntries(Object.entries(response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    page.wsExtensions.push(headers['sec-websocket-extensions'] ?? '');
  });
  page.on('console', (msg) => console.error(`[page ${query} console.${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => console.error(`[page ${query} error] ${err.message}`));
  const response = await page.goto(`${base}/?${query}`, { waitUntil: 'load', timeout: WAIT_MS });
  expect(response && response.status() === 200, `GET /?${query} answered ${response?.status()}`);
  return page;
}

const view = (page) => page.evaluate(() => ({
  state: document.getElementById('status').dataset.state,
  status: document.getElementById('status').textContent,
  members: [...document.querySelectorAll('#members li')].map((li) => li.textContent),
  notes: [...document.querySelectorAll('#log .note')].map((d) => d.lastChild.textContent),
  messages: [...document.querySelectorAll('#log .msg')].map((d) => ({
    own: d.classList.contains('own'),
    name: d.querySelector('b').textContent,
    text: d.lastChild.textContent,
    time: d.querySelector('time').textContent,
  })),
  limit: document.getElementById('limit').textContent,
  over: document.getElementById('limit').classList.contains('over'),
  sendDisabled: document.querySelector('#send button').disabled,
  input: document.getElementById('text').value,
  refusal: document.getElementById('refusal').textContent,
}));

// Waits until `test(view)` holds; the error says what the page showed last.
async function until(page, what, test, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await view(page);
    if (test(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeout} ms; page shows ${JSON.stringify(summary(last))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const summary = (v) => ({ ...v, messages: v.messages.map((m) => `${m.name}:${m.text.slice(0, 20)}`), input: v.input.slice(0, 20) });
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const hasMessage = (v, name, text, own) => v.messages.some((m) => m.name === name && m.text === text && m.own === own);

// How the page is laid out: the header's height and the parts of it cut off (on the
// right, or the status's text), the widest content, the member list's state, the
// log's width.
const layout = (page) => page.evaluate(() => {
  const header = document.querySelector('header').getBoundingClientRect();
  const status = document.getElementById('status');
  const parts = [...document.querySelectorAll('header > *')]
    .filter((el) => !el.hidden && getComputedStyle(el).display !== 'none' && el.textContent !== '')
    .map((el) => ({ id: el.id || el.tagName, box: el.getBoundingClientRect() }));
  const cut = parts.filter((p) => p.box.right > header.right + 1).map((p) => p.id);
  if (status.scrollWidth > status.clientWidth) cut.push('status text');
  return {
    scrollWidth: document.documentElement.scrollWidth,
    cut,
    headerHeight: header.height,
    membersOpen: document.getElementById('people').open,
    logWidth: document.getElementById('log').getBoundingClientRect().width,
    sendRight: document.getElementById('send').getBoundingClientRect().right,
    asideOpacity: Number(getComputedStyle(document.querySelector('aside')).opacity),
  };
});

// Saves a screenshot of `page` as NAME.png and checks it is `width` pixels wide (the
// PNG header's IHDR width).
async function screenshot(page, name, width) {
  const dir = process.env.WAVECORE_SCREENSHOTS || join(tmpdir(), 'wavecore-chat-screenshots');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path });
  const png = readFileSync(path);
  const got = png.readUInt32BE(16);
  expect(got === width, `${path} is ${got} px wide, not ${width}`);
  console.error(`[chat] screenshot ${path}`);
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

// --- the checks ---------------------------------------------------------------------

async function run(bin) {
  let server = startChat(bin, '127.0.0.1:0');
  const addr = await server.listening;
  const base = `http://${addr}`;
  console.error(`[chat] listening on ${addr}`);
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000,
    });
    const ana = await open(browser, base, 'room=red&name=Ana');
    await until(ana, 'Ana connected', (v) => v.state === 'open');
    const bo = await open(browser, base, 'room=red&name=Bo');
    const cy = await open(browser, base, 'room=blue&name=Cy');

    await check('presence: who is online, join notices', async () => {
      await until(ana, 'Ana sees Bo', (v) => same(v.members, ['Ana (you)', 'Bo']) && v.notes.includes('Bo joined'));
      await until(bo, 'Bo sees Ana', (v) => same(v.members, ['Ana', 'Bo (you)']));
      await until(cy, 'Cy alone in blue', (v) => v.state === 'open' && same(v.members, ['Cy (you)']));
    });

    await check('a name someone else is logged in with is refused, with the reason', async () => {
      const again = await open(browser, base, 'room=red&name=Ana');
      const v = await until(again, 'refusal shown', (x) => x.state === 'refused');
      expect(/already taken/.test(v.refusal), `refusal: ${v.refusal}`);
      await again.close();
      const a = await view(ana);
      expect(same(a.members, ['Ana (you)', 'Bo']), `members after the refusal: ${a.members}`);
    });

    await check('a second tab of a person shares the session; a logout closes every tab', async () => {
      const gus = await open(browser, base, 'room=green&name=Gus');
      await until(gus, 'Gus connected', (v) => v.state === 'open');
      const again = await tab(gus.context(), base, 'room=green');
      await until(again, 'the second tab is Gus too, listed once', (v) => v.state === 'open' && same(v.members, ['Gus (you)']));
      await until(gus, 'Gus listed once in the first tab', (v) => same(v.members, ['Gus (you)']));
      await again.click('#logout');
      for (const page of [gus, again]) {
        await until(page, 'logged out', (v) => v.state === 'loggedout' && /logged out/.test(v.refusal));
      }
      await gus.context().close();
    });

    let phone, phoneHeader, wideHeader;
    await check('at 360 px: header whole, member list folded, no sideways scroll', async () => {
      wideHeader = (await layout(ana)).headerHeight;
      phone = await open(browser, base, 'room=phone&name=Phi', PHONE);
      await until(phone, 'Phi connected', (v) => v.state === 'open' && same(v.members, ['Phi (you)']));
      const l = await layout(phone);
      expect(l.scrollWidth <= PHONE.width, `the page is ${l.scrollWidth} px wide`);
      expect(l.cut.length === 0, `cut off in the header: ${l.cut}`);
      phoneHeader = l.headerHeight;
      expect(!l.membersOpen, 'the member list is open');
      expect(l.logWidth >= PHONE.width - 40, `the log is ${l.logWidth} px wide`);
      expect(l.sendRight <= PHONE.width, `the send form ends at ${l.sendRight} px`);
      await screenshot(phone, 'chat-360-connected', PHONE.width);
    });

    await check('compression: Chromium negotiated permessage-deflate', async () => {
      expect(ana.wsExtensions.length > 0, 'no handshake response seen');
      expect(ana.wsExtensions.every((e) => e.startsWith('permessage-deflate')),
        `Sec-WebSocket-Extensions ${JSON.stringify(ana.wsExtensions)}`);
    });

    await check('two rooms: a line reaches its room only, own lines marked, timestamps', async () => {
      await say(ana, 'hello red');
      const b = await until(bo, 'Bo gets the line', (v) => hasMessage(v, 'Ana', 'hello red', false));
      await until(ana, 'Ana sees her own line as own', (v) => hasMessage(v, 'Ana', 'hello red', true));
      expect(b.messages.every((m) => /^\d{1,2}:\d{2}/.test(m.time)), `times ${JSON.stringify(b.messages.map((m) => m.time))}`);
      await say(cy, 'hello blue');
      await until(cy, 'Cy sees her own line', (v) => hasMessage(v, 'Cy', 'hello blue', true));
      await say(bo, 'marker');
      const a = await until(ana, 'Ana gets the marker', (v) => hasMessage(v, 'Bo', 'marker', false));
      const c = await view(cy);
      expect(!a.messages.some((m) => m.text === 'hello blue'), 'red got the blue line');
      expect(!c.messages.some((m) => m.text === 'hello red' || m.text === 'marker'), 'blue got a red line');
    });

    await check('a tab that lost its connection is sent every line it missed, once, in order', async () => {
      // Closed from the page: it reconnects by itself with the position of the last
      // line it showed, and the room's channel replays what came after.
      await ana.evaluate(() => ws.close());
      for (let i = 1; i <= 5; i++) await say(bo, `missed ${i}`);
      const v = await until(ana, 'Ana back with the missed lines',
        (x) => x.state === 'open' && hasMessage(x, 'Bo', 'missed 5', false));
      const missed = v.messages.filter((m) => m.text.startsWith('missed ')).map((m) => m.text);
      expect(same(missed, ['missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5']), `lines: ${missed}`);
      expect(!v.notes.some((n) => n.includes('missing')), `a gap was reported: ${v.notes}`);
    });

    await check('a multi-byte line of exactly the limit is sent whole', async () => {
      const line = '界'.repeat(1365) + 'a'; // 1365 × 3 + 1 = 4096 bytes of UTF-8
      expect(Buffer.byteLength(line) === LIMIT, 'test line is not 4096 bytes');
      await ana.fill('#text', line);
      const before = await view(ana);
      expect(!before.over && !before.sendDisabled, `at the limit the page refuses: ${before.limit}`);
      await ana.press('#text', 'Enter');
      await until(bo, 'Bo gets the 4096-byte line', (v) => hasMessage(v, 'Ana', line, false));
      const after = await view(ana);
      expect(after.state === 'open' && after.input === '', `after sending: ${after.state}, input ${after.input.length}`);
    });

    await check('past the limit: a clear message in bytes, nothing sent, nothing lost', async () => {
      const paste = '界'.repeat(4000); // 12,000 bytes
      await ana.fill('#text', paste);
      const v = await until(ana, 'the page explains', (x) => x.over);
      expect(v.limit.includes('12,000 bytes') && v.limit.includes('4,096'), `message: ${v.limit}`);
      expect(v.sendDisabled, 'Send is enabled past the limit');
      await ana.press('#text', 'Enter');
      await say(bo, 'marker 2');
      const a = await until(ana, 'Ana still connected gets marker 2', (x) => hasMessage(x, 'Bo', 'marker 2', false));
      expect(a.state === 'open', `state ${a.state}`);
      expect(a.input === paste, 'the typed text was cleared');
      expect(!(await view(bo)).messages.some((m) => m.text === paste), 'the long line was sent');
      await ana.fill('#text', '');
    });

    await check('a refused room is explained on the page', async () => {
      const dee = await open(browser, base, 'room=my%20room&name=Dee');
      const v = await until(dee, 'refusal shown', (x) => x.state === 'refused');
      expect(/my room/.test(v.refusal) && /1 to 32 letters/.test(v.refusal), `refusal: ${v.refusal}`);
      await dee.close();
    });

    await check('leave notices and presence', async () => {
      await bo.close();
      await until(ana, 'Ana sees Bo leave', (v) => v.notes.includes('Bo left') && same(v.members, ['Ana (you)']));
    });

    await check('Ctrl-C: the server stops gracefully and pages see 1001', async () => {
      server.child.kill('SIGINT');
      const timer = new Promise((r) => setTimeout(() => r(null), WAIT_MS));
      const exit = await Promise.race([server.exited, timer]);
      expect(exit, `the server did not exit within ${WAIT_MS} ms of SIGINT`);
      expect(exit.code === 0, `the server exited with ${JSON.stringify(exit)}`);
      expect(server.output().includes('stopped'), 'no "stopped" line');
      for (const page of [ana, cy]) {
        await until(page, 'waiting to reconnect after 1001',
          (v) => v.state === 'waiting' && v.status.startsWith('server restarting, reconnecting'));
      }
      const a = await view(ana);
      expect(a.notes.some((n) => n.startsWith('disconnected: server restarting (1001')), `notes: ${a.notes}`);
    });

    await check('while disconnected: the member list is greyed out; the header keeps its height', async () => {
      const a = await layout(ana);
      expect(a.asideOpacity < 1, 'the member list is not greyed out');
      expect(a.headerHeight === wideHeader, `the header went from ${wideHeader} to ${a.headerHeight} px`);
      await until(phone, 'Phi waiting', (v) => v.state === 'waiting');
      const l = await layout(phone);
      expect(l.asideOpacity < 1, 'the phone\'s member list is not greyed out');
      expect(l.headerHeight === phoneHeader, `at 360 px the header went from ${phoneHeader} to ${l.headerHeight} px`);
      expect(l.cut.length === 0, `cut off in the header: ${l.cut}`);
      expect(l.scrollWidth <= PHONE.width, `the page is ${l.scrollWidth} px wide`);
      await screenshot(phone, 'chat-360-reconnecting', PHONE.width);
    });

    await check('while disconnected, Send keeps the text', async () => {
      await ana.fill('#text', 'typed while away');
      await ana.press('#text', 'Enter');
      const v = await view(ana);
      expect(v.sendDisabled && v.input === 'typed while away', `disabled ${v.sendDisabled}, input ${v.input}`);
    });

    await check('after a restart the pages reconnect by themselves', async () => {
      server = startChat(bin, addr);
      await server.listening;
      // The history was in the old process's memory: the page says so, plainly. The
      // notice is its own message, behind the welcome that fills the member list, so
      // the page may be seen between the two: wait for both.
      await until(ana, 'Ana reconnected and told the history is gone', (v) => v.state === 'open'
        && same(v.members, ['Ana (you)'])
        && v.notes.some((n) => n.includes('earlier lines are gone')), RECONNECT_MS);
      await until(cy, 'Cy reconnected', (v) => v.state === 'open', RECONNECT_MS);
      await ana.press('#text', 'Enter');
      await until(ana, 'the kept line went out', (v) => hasMessage(v, 'Ana', 'typed while away', true));
      const eve = await open(browser, base, 'room=red&name=Eve');
      await until(eve, 'Eve sees Ana', (v) => same(v.members, ['Ana', 'Eve (you)']));
      await until(ana, 'Ana sees Eve', (v) => v.notes.includes('Eve joined') && same(v.members, ['Ana (you)', 'Eve']));
    });
  } finally {
    if (browser) await browser.close().catch(() => {});
    server.child.kill('SIGKILL');
  }
}

async function main() {
  const bin = process.argv[2];
  if (process.argv.length !== 3) {
    console.error('usage: node chat_e2e.mjs PATH/TO/examples/chat');
    return 2;
  }
  const hard = setTimeout(() => {
    console.log(`FAIL chat_e2e: gave up after ${HARD_TIMEOUT_MS / 1000}s`);
    process.exit(1);
  }, HARD_TIMEOUT_MS);
  try {
    await run(bin);
  } catch (e) {
    fail('chat_e2e', String(e?.message ?? e).split('\n')[0]);
  }
  clearTimeout(hard);
  console.log(`chat-e2e: ${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

process.exit(await main());

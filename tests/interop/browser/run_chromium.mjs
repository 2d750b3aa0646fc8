#!/usr/bin/env node
// Loads the wavecore browser interop page in Debian's headless Chromium.
//
// usage: node tests/interop/browser/run_chromium.mjs http://127.0.0.1:PORT
//        node tests/interop/browser/run_chromium.mjs https://localhost:PORT
//
// Opens BASE/interop.html, waits (at most DONE_TIMEOUT_MS) for
// `body[data-done]`, prints the page's `#result` text, and exits 0 only if
// the page title is `PASS` and every WebSocket the page opened used the
// scheme that goes with BASE (ws: for http:, wss: for https:), which it
// reports as the line `ok transport_ws: ...` or `ok transport_wss: ...`.
// With an https:// BASE, Chromium runs with --ignore-certificate-errors (the
// server's certificate is self-signed). Uses `playwright-core` from
// tests/interop/node (install with .ci/install-interop.sh); never downloads a
// browser.

import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// playwright-core lives in tests/interop/node/node_modules.
const require = createRequire(new URL('../node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.WAVECORE_CHROMIUM || '/usr/bin/chromium';
const DONE_TIMEOUT_MS = 30_000;
const HARD_TIMEOUT_MS = 90_000; // launch + load + run, whatever happens
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function main() {
  const base = process.argv[2];
  if (process.argv.length !== 3 || !/^https?:\/\//.test(base)) {
    console.error('usage: node run_chromium.mjs http://127.0.0.1:PORT | https://localhost:PORT');
    return 2;
  }
  const tls = base.startsWith('https:');
  const url = `${base.replace(/\/+$/, '')}/interop.html`;
  const userDataDir = mkdtempSync(join(tmpdir(), 'wavecore-chromium-'));
  let context;
  const hardTimer = setTimeout(() => {
    console.log(`FAIL run_chromium: gave up after ${HARD_TIMEOUT_MS / 1000}s`);
    try { rmSync(userDataDir, { recursive: true, force: true }); } catch {}
    process.exit(1);
  }, HARD_TIMEOUT_MS);
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: tls ? [...ARGS, '--ignore-certificate-errors'] : ARGS,
      timeout: 30_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    // Page diagnostics go to stderr, so stdout stays the check lines.
    page.on('console', (msg) => console.error(`[page console.${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
    // Every WebSocket the page opens, as the browser saw it.
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));

    const response = await page.goto(url, { waitUntil: 'load', timeout: 10_000 });
    if (!response || response.status() !== 200) {
      console.log(`FAIL load_page: GET ${url} answered ${response ? response.status() : 'nothing'}`);
      return 1;
    }
    let done = true;
    try {
      await page.waitForSelector('body[data-done]', { state: 'attached', timeout: DONE_TIMEOUT_MS });
    } catch {
      done = false;
    }
    const text = await page.evaluate(() => document.getElementById('result')?.textContent ?? '');
    process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
    if (!done) {
      console.log(`FAIL run_chromium: page did not finish within ${DONE_TIMEOUT_MS / 1000}s`);
      return 1;
    }
    const transport = await checkTransport(page, response, sockets, tls);
    const title = await page.title();
    if (title !== 'PASS') {
      console.log(`FAIL run_chromium: page title is ${JSON.stringify(title)}, want "PASS"`);
      return 1;
    }
    return transport ? 0 : 1;
  } catch (e) {
    console.log(`FAIL run_chromium: ${String(e?.message ?? e).split('\n')[0]}`);
    return 1;
  } finally {
    if (context) await context.close().catch(() => {});
    clearTimeout(hardTimer);
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

// Prints `ok transport_wss: ...` (or `transport_ws`) when the page came over https:
// (http:) and every WebSocket it opened was wss: (ws:); `FAIL ...` and false otherwise.
async function checkTransport(page, response, sockets, tls) {
  const name = tls ? 'transport_wss' : 'transport_ws';
  const wantPage = tls ? 'https:' : 'http:';
  const wantSocket = tls ? 'wss:' : 'ws:';
  const pageProtocol = await page.evaluate(() => location.protocol);
  const security = await response.securityDetails();
  const schemes = [...new Set(sockets.map((url) => new URL(url).protocol))].sort();
  const why = [];
  if (pageProtocol !== wantPage) why.push(`page loaded over ${pageProtocol}, want ${wantPage}`);
  if (tls && !security?.protocol) why.push('no TLS details for the page load');
  if (sockets.length === 0) why.push('the page opened no WebSocket');
  if (schemes.some((scheme) => scheme !== wantSocket)) {
    why.push(`WebSocket schemes ${schemes.join(',')}, want only ${wantSocket}`);
  }
  if (why.length) {
    console.log(`FAIL ${name}: ${why.join('; ')}`);
    return false;
  }
  const over = tls ? ` over ${security.protocol}` : '';
  console.log(`ok ${name}: page ${pageProtocol}${over}, ${sockets.length} WebSockets, all ${wantSocket}`);
  return true;
}

process.exit(await main());

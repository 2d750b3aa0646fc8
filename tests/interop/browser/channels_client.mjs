#!/usr/bin/env node
// Drives the channels browser client (/wavecore-channels.js) in Debian's headless
// Chromium for tests/channels_browser.rs, which runs the server and talks to this
// script over stdin/stdout, one line each way:
//
//   test -> script                 script -> test
//   (start)                        ready                     (the page subscribed)
//   wait N                         lines {"lines":[...],"failures":[...],"states":[...]}
//                                                            (once the page shows N lines)
//   failures N                     lines {...}               (once it saw N recovery failures)
//   drop                           dropped                   (the page's socket closed)
//
// usage: node tests/interop/browser/channels_client.mjs http://127.0.0.1:PORT
// Every wait is bounded; anything unexpected prints `FAIL why` and exits 1.
// Uses `playwright-core` from tests/interop/node (install with
// .ci/install-interop.sh); never downloads a browser.

import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const require = createRequire(new URL('../node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.WAVECORE_CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 20_000;
const HARD_TIMEOUT_MS = 110_000;
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function main() {
  const base = process.argv[2];
  const userDataDir = mkdtempSync(join(tmpdir(), 'wavecore-channels-'));
  const hard = setTimeout(() => { console.log('FAIL gave up'); process.exit(1); }, HARD_TIMEOUT_MS);
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000,
    });
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
    const response = await page.goto(`${base}/channels-test.html`, { waitUntil: 'load', timeout: WAIT_MS });
    if (!response || response.status() !== 200) throw new Error(`page answered ${response?.status()}`);
    await page.waitForFunction(() => window.subscribed >= 1, null, { timeout: WAIT_MS });
    console.log('ready');
    const state = () => page.evaluate(() => ({
      lines: window.lines, failures: window.failures, states: window.states,
    }));
    const input = createInterface({ input: process.stdin });
    for await (const line of input) {
      const [command, arg] = line.trim().split(' ');
      if (command === 'wait') {
        await page.waitForFunction((n) => window.lines.length >= n, Number(arg), { timeout: WAIT_MS });
        console.log(`lines ${JSON.stringify(await state())}`);
      } else if (command === 'failures') {
        await page.waitForFunction((n) => window.failures.length >= n, Number(arg), { timeout: WAIT_MS });
        // The resubscription after the failure is in place once `subscribed` counted it.
        console.log(`lines ${JSON.stringify(await state())}`);
      } else if (command === 'drop') {
        await page.evaluate(() => window.client.socket.close());
        console.log('dropped');
      } else if (command === 'quit') {
        break;
      }
    }
    clearTimeout(hard);
    return 0;
  } catch (e) {
    console.log(`FAIL ${String(e?.message ?? e).split('\n')[0]}`);
    return 1;
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

process.exit(await main());

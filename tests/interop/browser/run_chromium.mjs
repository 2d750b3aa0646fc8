#!/usr/bin/env node
// Loads the wavecore browser interop page in Debian's headless Chromium.
//
// usage: node tests/interop/browser/run_chromium.mjs http://127.0.0.1:PORT
//
// Opens BASE/interop.html, waits (at most DONE_TIMEOUT_MS) for
// `body[data-done]`, prints the page's `#result` text, and exits 0 only if
// the page title is `PASS`. Uses `playwright-core` from tests/interop/node
// (install with .ci/install-interop.sh); never downloads a browser.

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
    console.error('usage: node run_chromium.mjs http://127.0.0.1:PORT');
    return 2;
  }
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
      args: ARGS,
      timeout: 30_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    // Page diagnostics go to stderr, so stdout stays the check lines.
    page.on('console', (msg) => console.error(`[page console.${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));

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
    const title = await page.title();
    if (title !== 'PASS') {
      console.log(`FAIL run_chromium: page title is ${JSON.stringify(title)}, want "PASS"`);
      return 1;
    }
    return 0;
  } catch (e) {
    console.log(`FAIL run_chromium: ${String(e?.message ?? e).split('\n')[0]}`);
    return 1;
  } finally {
    if (context) await context.close().catch(() => {});
    clearTimeout(hardTimer);
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

process.exit(await main());

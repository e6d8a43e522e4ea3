// browser_lib.mjs - helpers for the browser suite (test/browser/*.test.mjs):
//
//  cleanupGuard(t)    a stand-in for t in the helpers below and in the
//                     integration helpers: everything registered with its
//                     after() is undone, newest first, even when one step
//                     fails (node runs a test's own after hooks in order
//                     and stops at the first that throws)
//  launchBrowser(t)   headless Debian Chromium driven by npm playwright-core
//                     (a fresh profile, closed in t.after)
//  newPage(browser, t, o)  a page in a context of its own whose window has no
//                     WebSocket (unless o.webSocket; with o.noEventSource, no
//                     EventSource either) before any script runs; every
//                     console line, page error and request of the page and its
//                     frames goes to page.log
//  withLog(page, fn)  runs fn; on failure appends what the browser saw
//  startDemoUpstream(t)  the shipped contrib/demo/upstream.mjs on a free port
//  startStatic(t, routes)  a small HTTP server for pages from another origin
//  startCutProxy(t, port)  a TCP relay in front of the gateway whose
//                     connections can all be cut (a dropped network)
//  startNoUpgradeProxy(t, port, mode)  an HTTP proxy in front of the gateway
//                     that forwards plain requests and breaks every WebSocket
//                     upgrade ('refuse': 400; 'hold': accept, never answer;
//                     'drop': answer 101, then cut the connection)
//
// The gateway and the controllable upstream come from the integration
// suite's helpers (../integration/bridge_lib.mjs), imported as they are.

import http from 'node:http';
import net from 'node:net';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import {
  SRCDIR, BUILDDIR, startProcess, withTimeout, listen, trackSockets, freePort, sleep,
} from '../integration/lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

export const CHROMIUM = process.env.POLLGATE_CHROMIUM || '/usr/bin/chromium';
export const WWW_DIR = path.join(SRCDIR, 'contrib', 'www');
export const DEMO_UPSTREAM = path.join(SRCDIR, 'contrib', 'demo', 'upstream.mjs');
export const SOCKJS_MIN_JS = path.join(SRCDIR, 'test', 'node_modules', 'sockjs-client', 'dist', 'sockjs.min.js');
/** Where screenshots go (gitignored test/output/ of the build tree). */
export const OUTPUT_DIR = process.env.POLLGATE_OUTPUT_DIR || path.join(BUILDDIR, 'test', 'output');

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// ------------------------------------------------------------------ cleanup

/**
 * Returns g with g.after(fn) like t.after, run from one hook of t registered
 * now (so before any other of t's hooks added later): every fn runs, newest
 * first, each bounded to 20 s; the first error is thrown once all have run
 * (e.g. the sanitizer report found when the gateway is stopped).
 */
export function cleanupGuard(t) {
  const fns = [];
  t.after(async () => {
    const errors = [];
    while (fns.length) {
      const fn = fns.pop();
      try {
        await withTimeout(Promise.resolve().then(fn), 20000, 'cleanup step');
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw errors[0];
  });
  return { after(fn) { fns.push(fn); }, diagnostic: (m) => t.diagnostic(m) };
}

// ------------------------------------------------------------------ browser

/** Launch Chromium (fresh temporary profile); closed after test t. */
export async function launchBrowser(t, extraArgs = []) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install chromium)`);
  const browser = await withTimeout(chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    timeout: 30000,
  }), 35000, 'Chromium start');
  t.after(() => withTimeout(browser.close(), 10000, 'Chromium close').catch(() => {}));
  return browser;
}

/**
 * A page in a fresh context. o: { webSocket, noEventSource, viewport }.
 * Unless o.webSocket, window.WebSocket is gone before any script of any frame runs.
 * page.log: [string] - console, page errors, requests and their outcome.
 */
export async function newPage(browser, t, o = {}) {
  const context = await browser.newContext({ viewport: o.viewport || { width: 900, height: 560 } });
  t.after(() => withTimeout(context.close(), 10000, 'context close').catch(() => {}));
  context.setDefaultTimeout(10000);
  await context.addInitScript(({ noWebSocket, noEventSource }) => {
    if (noWebSocket) {
      delete window.WebSocket;
      window.WebSocket = undefined;
    }
    if (noEventSource) {
      delete window.EventSource;
      window.EventSource = undefined;
    }
  }, { noWebSocket: !o.webSocket, noEventSource: !!o.noEventSource });
  const page = await context.newPage();
  const t0 = Date.now();
  const log = [];
  const add = (s) => {
    log.push(`+${String(Date.now() - t0).padStart(5)} ms ${s}`);
    if (log.length > 2000) log.splice(0, 500);
  };
  const short = (u) => (u.length > 160 ? u.slice(0, 160) + '...' : u);
  page.on('console', (m) => add(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => add(`pageerror: ${e.message}`));
  page.on('request', (r) => add(`request ${r.method()} ${short(r.url())}`));
  page.on('response', (r) => add(`response ${r.status()} ${r.request().method()} ${short(r.url())}`));
  page.on('requestfailed', (r) => add(`requestfailed ${r.method()} ${short(r.url())}: ${r.failure()?.errorText}`));
  page.on('requestfinished', (r) => { if (/sockjs|sessions/.test(r.url())) add(`finished ${r.method()} ${short(r.url())}`); });
  page.log = log;
  return page;
}

/** Uncaught errors of the page's scripts (any frame) seen so far. */
export function pageErrors(page) {
  return page.log.filter((l) => / pageerror: /.test(l));
}

/** Run fn(); if it throws, add the page logs (last lines) to the error. */
export async function withLog(pages, fn) {
  try {
    return await fn();
  } catch (e) {
    const list = Array.isArray(pages) ? pages : [pages];
    let extra = '';
    list.forEach((p, i) => {
      const lines = p.log.slice(-80);
      extra += `\n--- browser log of page ${i} (${p.log.length} lines, last ${lines.length}) ---\n${lines.join('\n')}`;
    });
    if (e && typeof e === 'object' && 'message' in e) {
      e.message += extra;
      if (e.stack) e.stack = `${e.stack}${extra}`;
      throw e;
    }
    throw new Error(String(e) + extra);
  }
}

export function outputPath(name) {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  return path.join(OUTPUT_DIR, name);
}

// ------------------------------------------------------------------ demo upstream

/**
 * Start contrib/demo/upstream.mjs (npm ws from contrib/demo or test/) on a
 * free port of 127.0.0.1. Resolves to { port, url(path), proc }.
 */
export async function startDemoUpstream(t) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = startProcess(t, process.execPath,
      ['--import', path.join(here, 'resolve_ws.mjs'), DEMO_UPSTREAM, '--port', String(port), '--host', '127.0.0.1'],
      // a safety net only (the suite's cleanup stops it): a browser file
      // sharing one demo upstream can run longer than 3 minutes on a busy machine
      { timeoutMs: 900000 });
    let err = '';
    let exited = false;
    proc.child.stderr.on('data', (d) => { err += d; });
    proc.done.then(() => { exited = true; });
    const t0 = Date.now();
    while (Date.now() - t0 < 10000 && !exited && !/listening on/.test(err)) await sleep(20);
    if (/listening on/.test(err) && !exited) {
      return { port, url: (p = '/chat') => `ws://127.0.0.1:${port}${p}`, proc, stderr: () => err };
    }
    proc.child.kill('SIGKILL');
    lastErr = new Error(`demo upstream did not start: ${err.slice(-2000)}`);
    if (!/EADDRINUSE/.test(err)) break;
  }
  throw lastErr;
}

// ------------------------------------------------------------------ static pages

/**
 * A tiny HTTP server on 127.0.0.1: routes maps a path to
 * { type, body (string|Buffer) }; anything else is 404. Closed after t.
 * Resolves to { port, origin, url(path), hits: [paths] }.
 */
export async function startStatic(t, routes) {
  const hits = [];
  const server = trackSockets(http.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    hits.push(p);
    const r = routes[p];
    if (!r) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': r.type, 'cache-control': 'no-store' }).end(r.body);
  }));
  const port = await listen(t, server);
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    hits,
  };
}

// ------------------------------------------------------------------ network cut

/**
 * A TCP relay 127.0.0.1:<port> -> 127.0.0.1:targetPort. cut() resets every
 * relayed connection (both sides) and resets new ones until restore(): what
 * the browser and the gateway see when the network in between drops.
 * (Chromium's offline emulation alone does not end requests already in
 * flight, such as an open EventSource stream.)
 * Resolves to { port, url(path), cut(), restore(), accepted, refused }.
 */
export async function startCutProxy(t, targetPort) {
  const open = new Set();
  const kill = (s) => {
    if (s.destroyed) return;
    if (typeof s.resetAndDestroy === 'function' && s.readyState !== 'opening') s.resetAndDestroy();
    else s.destroy();
  };
  const proxy = {
    port: 0,
    down: false,
    accepted: 0,
    refused: 0,
    url: (p) => `http://127.0.0.1:${proxy.port}${p}`,
    cut() {
      proxy.down = true;
      for (const s of open) kill(s);
    },
    restore() { proxy.down = false; },
  };
  const server = net.createServer((c) => {
    c.on('error', () => {});
    if (proxy.down) {
      proxy.refused++;
      kill(c);
      return;
    }
    proxy.accepted++;
    const u = net.connect(targetPort, '127.0.0.1');
    u.on('error', () => {});
    for (const [a, b] of [[c, u], [u, c]]) {
      open.add(a);
      a.on('close', () => {
        open.delete(a);
        kill(b);
      });
      a.pipe(b);
    }
  });
  proxy.port = await listen(t, trackSockets(server));
  t.after(() => { for (const s of open) s.destroy(); });
  return proxy;
}

// ------------------------------------------------------------------ upgrade-breaking proxy

/**
 * An HTTP proxy on 127.0.0.1 in front of the gateway (127.0.0.1:targetPort),
 * as some corporate proxies are: plain requests (streaming responses
 * included) are forwarded, WebSocket upgrades are not. mode:
 *   'refuse'  answer the upgrade 400
 *   'hold'    accept the connection and never answer
 *   'drop'    answer 101 Switching Protocols (a made-up accept key is not
 *             checked by this proxy, so it computes the right one), then cut
 *             the connection after a moment without relaying anything
 * Resolves to { port, origin, url(path), upgrades: [paths], forwarded }.
 */
export async function startNoUpgradeProxy(t, targetPort, mode = 'refuse') {
  const { createHash } = await import('node:crypto');
  const proxy = {
    port: 0,
    upgrades: [],
    forwarded: 0,
    url: (p) => `http://127.0.0.1:${proxy.port}${p}`,
  };
  const agent = new http.Agent({ keepAlive: true });
  const server = trackSockets(http.createServer((req, res) => {
    proxy.forwarded++;
    const u = http.request({
      host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers, agent,
    }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      res.flushHeaders();
      ur.pipe(res);
      ur.on('error', () => res.destroy());
    });
    u.on('error', () => res.destroy());
    res.on('close', () => u.destroy());
    req.pipe(u);
  }));
  server.on('upgrade', (req, socket) => {
    proxy.upgrades.push(req.url);
    socket.on('error', () => {});
    if (mode === 'refuse') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n' +
        'Connection: close\r\n\r\nno WebSocket past here\n');
    } else if (mode === 'drop') {
      const accept = createHash('sha1')
        .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
      setTimeout(() => socket.destroy(), 300);
    }
    // 'hold': nothing; the socket is destroyed when the proxy closes
  });
  proxy.port = await listen(t, server);
  proxy.origin = `http://127.0.0.1:${proxy.port}`;
  t.after(() => agent.destroy());
  return proxy;
}

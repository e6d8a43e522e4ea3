// pollgate_js.test.mjs - contrib/www/pollgate.js under Node with a scripted
// XMLHttpRequest: a 503 "draining" (the answer of a process that is
// stopping during a binary upgrade, with Connection: close) is retried at
// once, with no error event and no 'offline' state, for opens and polls;
// other 503s keep the visible back-off.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

import { SRCDIR, sleep } from './lib.mjs';

/** pollgate.js in a fresh context whose XHRs are answered by
 * responder(method, url, n) -> { status, body, headers } | null (held). */
function load(responder) {
  const requests = [];
  class FakeXHR {
    open(method, url) { this.method = method; this.url = url; this.readyState = 1; }
    setRequestHeader() {}
    getResponseHeader(n) { return (this.resHeaders || {})[n.toLowerCase()] ?? null; }
    send(body) {
      requests.push({ method: this.method, url: this.url, body });
      const r = responder(this.method, this.url, requests.length);
      if (!r) return;
      setTimeout(() => {
        if (this.aborted) return;
        this.status = r.status;
        this.responseText = r.body === undefined ? '' : JSON.stringify(r.body);
        this.resHeaders = r.headers || {};
        this.readyState = 4;
        if (this.onreadystatechange) this.onreadystatechange();
      }, 1);
    }
    abort() { this.aborted = true; }
  }
  const ctx = { XMLHttpRequest: FakeXHR, setTimeout, clearTimeout };
  ctx.window = ctx;
  vm.createContext(ctx);
  vm.runInContext(fs.readFileSync(path.join(SRCDIR, 'contrib', 'www', 'pollgate.js'), 'utf8'), ctx);
  return { PollGate: ctx.PollGate, requests };
}

const OPENED = { status: 201, body: { session: 'g1.abc', poll_timeout: 25, heartbeat: 25, idle_timeout: 30, protocol: null } };
const DRAINING = { status: 503, body: { error: 'draining', message: 'the gateway is shutting down; try again' }, headers: { 'retry-after': '5', connection: 'close' } };

function watch(ws) {
  const seen = { errors: [], states: [], opened: 0, messages: [], closes: [] };
  ws.onerror = (e) => seen.errors.push(e);
  ws.onstatechange = (s) => seen.states.push(s);
  ws.onopen = () => seen.opened++;
  ws.onmessage = (e) => seen.messages.push(e.data);
  ws.onclose = (e) => seen.closes.push(e.code);
  return seen;
}

async function until(pred, ms, what) {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (pred()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const closeReq = (m, url) => m === 'POST' && url.endsWith('/close');

test('pollgate.js: an open answered 503 "draining" is retried at once, invisibly', async () => {
  let opens = 0;
  const { PollGate, requests } = load((m, url) => {
    if (closeReq(m, url)) return { status: 204 };
    if (m === 'POST' && url.endsWith('/sessions')) return ++opens <= 3 ? DRAINING : OPENED;
    return null; // polls held
  });
  const ws = new PollGate('http://gw.example/chat', { transport: 'poll' });
  const seen = watch(ws);
  const t0 = Date.now();
  await until(() => seen.opened, 4000, 'open (a visible retry would wait Retry-After: 5 s)');
  assert.ok(Date.now() - t0 < 4000);
  assert.equal(opens, 4, 'three draining answers, then the open');
  assert.deepEqual(seen.errors, [], 'no error event');
  assert.ok(!seen.states.includes('offline'), `states: ${seen.states}`);
  assert.equal(ws.session, 'g1.abc');
  ws.close();
  assert.ok(requests.length >= 5);
});

test('pollgate.js: a poll answered 503 "draining" is retried at once and delivers', async () => {
  let polls = 0;
  const { PollGate } = load((m, url) => {
    if (closeReq(m, url)) return { status: 204 };
    if (m === 'POST' && url.endsWith('/sessions')) return OPENED;
    if (m === 'GET' && url.includes('/poll')) {
      polls++;
      if (polls === 1) return DRAINING;
      if (polls === 2) return { status: 200, body: { messages: [{ seq: 1, text: 'hello' }] } };
      return null;
    }
    return null;
  });
  const ws = new PollGate('http://gw.example/chat', { transport: 'poll' });
  const seen = watch(ws);
  await until(() => seen.messages.length, 4000, 'the message');
  assert.deepEqual(seen.messages, ['hello']);
  assert.deepEqual(seen.errors, []);
  assert.ok(!seen.states.includes('offline'), `states: ${seen.states}`);
  ws.close();
});

test('pollgate.js: other 503s stay visible (error event, offline, Retry-After honoured); draining retries are bounded', async () => {
  const { PollGate } = load((m, url) => {
    if (closeReq(m, url)) return { status: 204 };
    if (m === 'POST' && url.endsWith('/sessions')) return { status: 503, body: { error: 'too_many_sessions' }, headers: { 'retry-after': '5' } };
    return null;
  });
  const ws = new PollGate('http://gw.example/chat', { transport: 'poll' });
  const seen = watch(ws);
  await until(() => seen.errors.length, 4000, 'an error event');
  assert.equal(seen.errors[0].retrying, true);
  await until(() => seen.states.includes('offline'), 4000, 'offline');
  ws.close();

  // a process that keeps answering "draining" (no successor): after a few
  // silent retries the usual, visible back-off takes over
  let n = 0;
  const b = load((m, url) => {
    if (closeReq(m, url)) return { status: 204 };
    if (m === 'POST' && url.endsWith('/sessions')) { n++; return DRAINING; }
    return null;
  });
  const ws2 = new b.PollGate('http://gw.example/chat', { transport: 'poll' });
  const seen2 = watch(ws2);
  await until(() => seen2.errors.length, 4000, 'an error event after the silent retries');
  assert.equal(n, 9, '8 silent retries, then the visible one');
  assert.equal(seen2.errors[0].retrying, true);
  ws2.close();
});

// upgrade.test.mjs - binary upgrade without downtime: a new pollgate binds
// the same addresses (SO_REUSEPORT, public and admin) while the old one
// runs, then the old one gets SIGTERM and drains. Three cycles (g0 -> g1
// -> g2 -> g3, each process its own [gateway] instance, so a native id
// says which process holds it), with clients opening sessions all the
// time (fresh connections, keep-alive connections, SockJS):
//  - the old process's sessions of every class (native long-poll, native
//    SSE, SockJS xhr-streaming, WebSocket) keep working during the drain
//    and end with a close they can see (1001), their upstreams get 1001;
//  - no open is refused: no connection refused or reset (the old process
//    accepts what the kernel queued on its listeners before closing them),
//    and an open that meets the draining process on a kept-alive
//    connection gets 503 "draining" + Connection: close and is retried at
//    once, as pollgate.js does (SockJS: c[1001] before "o", after which
//    sockjs-client tries again with a new session);
//  - every open started after the SIGTERM lands on the new process;
//  - the old process exits 0.
// The summary line (t.diagnostic) gives the counts.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';

import { startUpstream, makeConfig, request, openEvents, sseData, waitUntil } from './bridge_lib.mjs';
import { POLLGATE_BIN, startProcess, freePort, tmpDir, writeFile, sleep, withTimeout } from './lib.mjs';
import { openStream, randomId, xhrFrames } from './sockjs_lib.mjs';

const SANITIZER_RE = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;
const CYCLES = Number(process.env.UPGRADE_CYCLES || 3);

function config(port, adminPort, inst, upA, upB) {
  return makeConfig(port, {
    adminPort,
    gateway: { instance: inst, drain_timeout: '3s', log_level: process.env.UPGRADE_LOG_LEVEL || 'info' },
    // the openers run flat out from one address and leave their sessions to
    // idle out: on a fast machine that passes the harness's per-client cap
    session: { idle_timeout: '10s', poll_timeout: '2s', heartbeat: '1s', max_sessions_per_client: '100000', max_sessions: '100000' },
    // the test's own upstreams share a loaded machine with everything else
    upstream: { connect_timeout: '15s' },
    routes: [
      { name: 'chat', path: '/chat', upstream: upA.url('/chat') },
      { name: 'sj', path: '/sj', upstream: upA.url('/sj'), extra: { sockjs: 'on', disconnect_delay: '10s' } },
      { name: 'loop', path: '/loop', upstream: upB.url('/loop') },
      { name: 'sjloop', path: '/sjloop', upstream: upB.url('/sjloop'), extra: { sockjs: 'on', disconnect_delay: '2s' } },
    ],
  });
}

async function startGen(t, dir, n, port, adminPort, upA, upB) {
  const inst = `g${n}`;
  const ini = writeFile(dir, `${inst}.ini`, config(port, adminPort, inst, upA, upB));
  const proc = startProcess(t, POLLGATE_BIN, ['-c', ini], {
    timeoutMs: 600000, env: { ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' },
  });
  let err = '';
  proc.child.stderr.on('data', (d) => { err += d; });
  const g = { inst, proc, stderr: () => err };
  await waitUntil(() => /pollgate listening/.test(err) || proc.child.exitCode !== null, 20000, `${inst} listening`);
  assert.equal(proc.child.exitCode, null, `${inst} exited at start:\n${err}`);
  return g;
}

/** The upstream connection whose handshake carried User-Agent tag. */
async function upConn(up, tag) {
  let c;
  await waitUntil(() => (c = up.conns.find((x) => x.headers['user-agent'] === tag)), 10000, `upstream connection ${tag}`);
  return c;
}

/** One session of each class on the process currently listening. */
async function holdSessions(t, base, upA, cycle) {
  const tag = (k) => `held-${k}-${cycle}`;
  const held = {};
  // native long-poll on a kept-alive connection of its own (a browser reuses
  // its connection for the next poll)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const o = await request(`${base}/chat/sessions`, { method: 'POST', agent, headers: { 'user-agent': tag('poll') } });
  assert.equal(o.status, 201, o.text);
  const poll = { id: o.json.session, got: [], closed: null, errors: [] };
  poll.up = await upConn(upA, tag('poll'));
  poll.done = (async () => {
    let ack = 0;
    while (!poll.closed) {
      const r = await request(`${base}/chat/sessions/${poll.id}/poll?ack=${ack}`, { agent, timeoutMs: 15000 })
        .catch((e) => ({ status: 0, text: String(e) }));
      if (r.status !== 200) { poll.errors.push(`${r.status} ${r.text}`); return; }
      for (const m of r.json.messages) { poll.got.push(m.text); ack = m.seq; }
      if (r.json.closed) poll.closed = r.json.closed;
    }
  })();
  held.poll = poll;
  // native SSE
  const o2 = await request(`${base}/chat/sessions`, { method: 'POST', headers: { 'user-agent': tag('sse') } });
  assert.equal(o2.status, 201, o2.text);
  const sse = { id: o2.json.session, up: await upConn(upA, tag('sse')) };
  sse.stream = await openEvents(t, `${base}/chat/sessions/${sse.id}/events`);
  assert.equal(sse.stream.status, 200);
  held.sse = sse;
  // SockJS xhr-streaming
  const sj = { id: randomId() };
  sj.stream = await openStream(t, `${base}/sj/sockjs/000/${sj.id}/xhr_streaming`, { method: 'POST', kind: 'xhr', headers: { 'user-agent': tag('sjs') }, timeoutMs: 10000 });
  await sj.stream.waitFor((s) => s.frames().some((f) => f.type === 'o'), 10000, 'SockJS open frame');
  sj.up = await upConn(upA, tag('sjs'));
  held.sockjs = sj;
  // WebSocket
  const ws = { msgs: [] };
  ws.sock = new WebSocket(`${base.replace('http', 'ws')}/chat/ws`, { headers: { 'user-agent': tag('ws') } });
  ws.closed = new Promise((res) => ws.sock.on('close', (code, reason) => res({ code, reason: String(reason) })));
  ws.sock.on('message', (d) => ws.msgs.push(String(d)));
  ws.sock.on('error', () => {});
  await new Promise((res, rej) => { ws.sock.once('open', res); ws.sock.once('error', rej); });
  ws.up = await upConn(upA, tag('ws'));
  held.ws = ws;
  t.after(() => ws.sock.terminate());
  return held;
}

/**
 * Clients opening sessions all the time. Every attempt is recorded:
 * { kind, t0, inst (native: the id's prefix), ok, why }.
 */
function startOpeners(base) {
  const stats = { records: [], drainRetries: 0, reusedResets: 0, sockjsFallbacks: 0, refused: [] };
  let stop = false;
  const keep = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const sjAgent = new http.Agent({ keepAlive: true, maxSockets: 2 });

  /** A request; on a kept-alive socket that the server had closed before
   * any response (the keep-alive race), retried once as browsers do. */
  async function req(url, o) {
    for (let i = 0; ; i++) {
      try {
        return await request(url, o);
      } catch (e) {
        if (i === 0 && o.agent && /ECONNRESET|socket hang up|EPIPE/.test(String(e.code || e.message)) && e.reused !== false) {
          stats.reusedResets++;
          continue;
        }
        throw e;
      }
    }
  }

  async function native(kind, agent) {
    while (!stop) {
      const rec = { kind, t0: Date.now(), ok: false };
      stats.records.push(rec);
      try {
        for (let tries = 0; tries < 10; tries++) {
          const r = await req(`${base}/loop/sessions`, { method: 'POST', agent, timeoutMs: 15000 });
          if (r.status === 503 && r.json?.error === 'draining') {
            assert.equal(r.headers.connection, 'close', 'a draining answer ends its connection');
            stats.drainRetries++;
            continue;      // pollgate.js: at once, on a new connection
          }
          if (r.status !== 201) { rec.why = `${r.status} ${r.text}`; break; }
          rec.ok = true;
          rec.inst = r.json.session.split('.')[0];
          break;
        }
      } catch (e) {
        rec.why = String(e.code || e.message);
      }
      if (!rec.ok) stats.refused.push(rec);
      await sleep(20);
    }
  }

  async function sockjs() {
    while (!stop) {
      const rec = { kind: 'sockjs', t0: Date.now(), ok: false };
      stats.records.push(rec);
      try {
        for (let tries = 0; tries < 10; tries++) {
          const r = await req(`${base}/sjloop/sockjs/000/${randomId()}/xhr`, { method: 'POST', agent: sjAgent, timeoutMs: 15000 });
          const f = r.status === 200 ? xhrFrames(r.text) : [];
          if (f[0]?.type === 'c' && f[0].code === 1001) {
            // before "o": sockjs-client tries again (next transport, new id)
            stats.sockjsFallbacks++;
            continue;
          }
          if (f[0]?.type !== 'o') { rec.why = `${r.status} ${r.text.slice(0, 80)}`; break; }
          rec.ok = true;
          break;
        }
      } catch (e) {
        rec.why = String(e.code || e.message);
      }
      if (!rec.ok) stats.refused.push(rec);
      await sleep(20);
    }
  }

  const runs = [
    native('fresh', false), native('fresh', false),
    native('keepalive', keep), native('keepalive', keep),
    sockjs(),
  ];
  return {
    stats,
    async stop() { stop = true; await Promise.all(runs); keep.destroy(); sjAgent.destroy(); },
  };
}

describe('binary upgrade: a new pollgate on the same addresses, then SIGTERM to the old one', { timeout: 400000 }, () => {
  test(`${CYCLES} cycles: the old sessions end with 1001, no open is refused, new sessions land on the new process`, async (t) => {
    const dir = tmpDir(t, 'pollgate-upgrade-');
    const upA = await startUpstream(t);
    const upB = await startUpstream(t);
    const port = await freePort();
    const adminPort = await freePort();
    const base = `http://127.0.0.1:${port}`;
    let old = await startGen(t, dir, 0, port, adminPort, upA, upB);
    const openers = startOpeners(base);
    t.after(() => openers.stop());
    const perCycle = [];
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const held = await holdSessions(t, base, upA, cycle);
      assert.ok(held.poll.id.startsWith(`${old.inst}.`), `held session on ${old.inst}: ${held.poll.id}`);
      await held.poll.up.send('before');
      await held.sse.up.send('before');
      await held.sockjs.up.send('before');
      await held.ws.up.send('before');

      const next = await startGen(t, dir, cycle, port, adminPort, upA, upB);
      // both processes listen: opens reach either
      const tBoth = Date.now();
      await waitUntil(() => openers.stats.records.some((r) => r.ok && r.t0 > tBoth), 20000, 'opens while both listen');

      const termAt = Date.now();
      old.proc.child.kill('SIGTERM');
      await waitUntil(() => /stopping: draining/.test(old.stderr()), 10000, 'drain started');
      // (an open sent between the kill() and the drain's start may still
      // have been served by the old process: the check starts here)
      const drainSeenAt = Date.now();
      // the old sessions go on during the drain
      await held.poll.up.send('during');
      await held.sse.up.send('during');
      await held.sockjs.up.send('during');
      await held.ws.up.send('during');

      const r = await withTimeout(old.proc.done, 30000, `${old.inst} exit`);
      assert.equal(r.signal, null, `${old.inst} killed by ${r.signal}`);
      assert.equal(r.code, 0, `${old.inst} exit code\n${r.stderr.slice(-3000)}`);
      assert.doesNotMatch(r.stderr, SANITIZER_RE);
      assert.match(r.stderr, /listening sockets closed\n/, 'listeners closed without giving up on a queue');
      const exitAt = Date.now();

      // every old session ended with a close it could see, after its messages
      await withTimeout(held.poll.done, 10000, 'long-poll close');
      assert.deepEqual(held.poll.errors, []);
      assert.deepEqual(held.poll.got, ['before', 'during']);
      assert.deepEqual(held.poll.closed, { code: 1001, reason: 'going away' });
      await held.sse.stream.waitFor((s) => s.events().some((e) => e.event === 'close'), 10000, 'SSE close');
      assert.deepEqual(held.sse.stream.messageEvents().map(sseData), ['before', 'during']);
      assert.deepEqual(sseData(held.sse.stream.events().find((e) => e.event === 'close')), { code: 1001, reason: 'going away' });
      await held.sockjs.stream.waitFor((s) => s.frames().some((f) => f.type === 'c'), 10000, 'SockJS close frame');
      const sjData = held.sockjs.stream.dataFrames();
      assert.deepEqual(sjData.map((f) => f.raw), ['o', 'a["before"]', 'a["during"]', 'c[1001,"Server shutting down"]']);
      const wsClose = await withTimeout(held.ws.closed, 10000, 'WebSocket close');
      assert.equal(wsClose.code, 1001);
      assert.deepEqual(held.ws.msgs, ['before', 'during']);
      for (const k of ['poll', 'sse', 'sockjs', 'ws']) assert.equal((await held[k].up.waitClose(10000)).code, 1001, `${k} upstream close\n${r.stderr.slice(-4000)}`);

      // opens: those started after the SIGTERM landed on the new process
      const after = openers.stats.records.filter((x) => x.ok && x.inst && x.t0 > drainSeenAt);
      const during = openers.stats.records.filter((x) => x.ok && x.t0 > termAt && x.t0 < exitAt);
      assert.ok(during.length > 0, 'opens during the drain');
      assert.deepEqual([...new Set(after.map((x) => x.inst))].filter((i) => i !== next.inst), [], 'opens after the SIGTERM on the new process');
      perCycle.push({ drainMs: exitAt - termAt, opensDuringDrain: during.length });
      assert.deepEqual(openers.stats.refused, [], 'no open refused');
      old = next;
    }
    await openers.stop();
    const s = openers.stats;
    const count = (k) => s.records.filter((x) => x.kind === k && x.ok).length;
    t.diagnostic(`upgrade summary: ${CYCLES} cycles, ${s.records.filter((x) => x.ok).length} opens ` +
      `(fresh ${count('fresh')}, keep-alive ${count('keepalive')}, sockjs ${count('sockjs')}), ` +
      `${s.refused.length} refused, ${s.drainRetries} draining 503s retried at once, ` +
      `${s.sockjsFallbacks} SockJS c[1001] before open retried, ${s.reusedResets} kept-alive sockets reset and retried; ` +
      `per cycle ${JSON.stringify(perCycle)}`);
    assert.deepEqual(s.refused, []);
    old.proc.child.kill('SIGTERM');
    const r = await withTimeout(old.proc.done, 30000, `${old.inst} exit`);
    assert.equal(r.code, 0);
  });
});

// deploy_haproxy.test.mjs - contrib/haproxy/pollgate.cfg with Debian's
// HAProxy in front of three pollgate processes ([gateway] instance a1, a2,
// a3): 300 sessions (native long-poll, native SSE, SockJS xhr polling) are
// spread over all three and get every numbered message in order; then one
// process is killed with SIGKILL: its clients notice within seconds and
// open new sessions that land on the survivors, and the survivors'
// sessions lose, duplicate and reorder nothing. A summary line per session
// class gives what the killed process's clients saw: how many sessions,
// time to notice, time to the new session, and messages lost (sent by the
// upstream to the killed process, never delivered to the client).
//
// Runs whenever haproxy is installed (about 30 s with the ASan build on a
// loaded 2-core machine); POLLGATE_TEST_HAPROXY=0 skips it.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { WebSocketServer } from 'ws';

import { makeConfig, request, openEvents } from './bridge_lib.mjs';
import { POLLGATE_BIN, SRCDIR, startProcess, freePort, tmpDir, writeFile, sleep, listen } from './lib.mjs';
import { xhrFrames, messagesOf } from './sockjs_lib.mjs';

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0;
const optOut = process.env.POLLGATE_TEST_HAPROXY === '0';
const N = 300;
const TICK_MS = 100;

/** Upstream: every connection gets "1", "2", ... every TICK_MS; sent maps
 * the User-Agent of a session's upstream connection (the client's session
 * tag, forwarded by pollgate) to how many it sent. */
async function startCounter(t) {
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  const timers = new Set();
  const sent = new Map();
  wss.on('connection', (ws, req) => {
    let n = 0;
    const ua = req.headers['user-agent'] || '';
    // the first connection of a tag is the session's (a SockJS id that
    // reaches another process after the kill opens a second one there)
    const first = !sent.has(ua);
    if (first) sent.set(ua, 0);
    const tm = setInterval(() => { if (ws.readyState === 1) { ws.send(String(++n)); if (first) sent.set(ua, n); } }, TICK_MS);
    timers.add(tm);
    ws.on('close', () => { clearInterval(tm); timers.delete(tm); });
    ws.on('error', () => {});
  });
  const port = await listen(t, server);
  t.after(() => { for (const tm of timers) clearInterval(tm); wss.close(); });
  return { port, sent };
}

const median = (a) => { const b = [...a].sort((x, y) => x - y); return b.length ? b[b.length >> 1] : 0; };

/** Order check: got must be 1..k with nothing missing or repeated. */
function inOrder(got) {
  for (let i = 0; i < got.length; i++) if (got[i] !== i + 1) return `at ${i}: ${got[i]} (want ${i + 1})`;
  return null;
}

/** Like waitUntil, for an async predicate. */
async function waitAsync(pred, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 400 });

class Client {
  constructor(kind, base, idx) {
    this.kind = kind; this.base = base; this.idx = idx;
    this.sessions = []; // { id, got: [], failedAt, instance }
    this.stop = false;
  }
  get cur() { return this.sessions[this.sessions.length - 1]; }
  async open() {
    const ua = `${this.kind}-${this.idx}-${this.sessions.length}`;
    if (this.kind === 'sockjs') {
      const id = `s${this.idx}x${this.sessions.length}`;
      this.sessions.push({ id, got: [], ua, openedAt: Date.now() });
      return;
    }
    for (const end = Date.now() + 20000; Date.now() < end;) {
      const r = await request(`${this.base}/chat/sessions`, { method: 'POST', agent, timeoutMs: 10000, headers: { 'user-agent': ua } }).catch(() => null);
      if (r && r.status === 201) { this.sessions.push({ id: r.json.session, got: [], ua, openedAt: Date.now() }); return; }
      await sleep(200);
    }
    throw new Error(`${this.kind} client ${this.idx}: could not open a session in 20 s`);
  }
  fail(why) {
    if (!this.cur.failedAt) { this.cur.failedAt = Date.now(); this.cur.why = why; }
  }
  async run() {
    while (!this.stop) {
      const s = this.cur;
      if (this.kind === 'poll') {
        const ack = s.got.length;
        const r = await request(`${this.base}/chat/sessions/${s.id}/poll?ack=${ack}`, { agent, timeoutMs: 10000 }).catch((e) => ({ status: 0, text: String(e) }));
        if (r.status !== 200 || !r.json || r.json.closed) { this.fail(`poll ${r.status} ${r.text?.slice(0, 80)}`); await this.open(); continue; }
        for (const m of r.json.messages) if (m.seq > s.got.length) s.got.push(Number(m.text));
      } else if (this.kind === 'sse') {
        let st;
        try { st = await openEvents(null, `${this.base}/chat/sessions/${s.id}/events`, { headers: s.got.length ? { 'last-event-id': String(s.got.length) } : {}, timeoutMs: 10000 }); } catch (e) { this.fail(`sse ${e.message}`); await this.open(); continue; }
        if (st.status !== 200) { this.fail(`sse ${st.status}`); st.destroy(); await this.open(); continue; }
        this.sse = st;
        let seen = 0;
        const pump = () => {
          const evs = st.messageEvents();
          for (; seen < evs.length; seen++) {
            const id = Number(evs[seen].id);
            if (id > s.got.length) s.got.push(Number(JSON.parse(evs[seen].data[0])));
          }
        };
        const iv = setInterval(pump, 50);
        await Promise.race([st.ended, new Promise((res) => { const w = setInterval(() => { if (this.stop) { clearInterval(w); res(); } }, 100); })]);
        clearInterval(iv); pump();
        if (this.stop) { st.destroy(); break; }
        const closed = st.events().some((e) => e.event === 'close');
        this.fail(`sse stream ended${closed ? ' (close)' : ''}`);
        await this.open();
      } else {
        const r = await request(`${this.base}/sj/sockjs/000/${s.id}/xhr`, { method: 'POST', agent, timeoutMs: 10000, headers: { 'user-agent': s.ua } }).catch((e) => ({ status: 0, text: String(e) }));
        if (r.status !== 200) { this.fail(`xhr ${r.status}`); await this.open(); continue; }
        const frames = xhrFrames(r.text);
        if (frames.some((f) => f.type === 'o') && s.opened) { this.fail('sockjs: a new open frame (session gone)'); await this.open(); continue; }
        if (frames.some((f) => f.type === 'o')) s.opened = true;
        if (frames.some((f) => f.type === 'c')) { this.fail('sockjs close frame'); await this.open(); continue; }
        for (const m of messagesOf(frames)) s.got.push(Number(m));
      }
    }
  }
}

async function sessionsOf(adminPort) {
  const r = await request(`http://127.0.0.1:${adminPort}/sessions`, { timeoutMs: 5000 });
  return r.json.sessions.map((x) => x.id);
}

describe('deploy: HAProxy in front of three pollgate processes', { timeout: 280000 }, () => {
  test('300 mixed sessions spread over three; kill -9 one: survivors lose nothing, the rest reopen', { skip: (!haveHaproxy && 'haproxy not installed') || (optOut && 'POLLGATE_TEST_HAPROXY=0') }, async (t) => {
    const dir = tmpDir(t, 'pollgate-haproxy-');
    const { port: upPort, sent } = await startCounter(t);
    const gws = [];
    for (const inst of ['a1', 'a2', 'a3']) {
      const port = await freePort();
      const adminPort = await freePort();
      const ini = writeFile(dir, `${inst}.ini`, makeConfig(port, {
        adminPort,
        gateway: { instance: inst, log_level: 'warn' },
        session: { poll_timeout: '2s', heartbeat: '2s', idle_timeout: '10s', max_sessions_per_client: '100000' },
        upstream: { connect_timeout: '15s' },
        admin: { health_interval: '2s' },
        routes: [
          { name: 'chat', path: '/chat', upstream: `ws://127.0.0.1:${upPort}/chat` },
          { name: 'sj', path: '/sj', upstream: `ws://127.0.0.1:${upPort}/sj`, extra: { sockjs: 'on', disconnect_delay: '5s' } },
        ],
      }));
      const proc = startProcess(t, POLLGATE_BIN, ['-c', ini], { timeoutMs: 270000, env: { ASAN_OPTIONS: 'detect_leaks=0' } });
      gws.push({ inst, port, adminPort, proc });
    }
    for (const g of gws) {
      await waitAsync(async () => (await request(`http://127.0.0.1:${g.adminPort}/health`, { timeoutMs: 1000 })).status === 200, 20000, `${g.inst} healthy`);
    }
    const hport = await freePort();
    let cfg = fs.readFileSync(path.join(SRCDIR, 'contrib', 'haproxy', 'pollgate.cfg'), 'utf8')
      .replace('bind 127.0.0.1:8000', `bind 127.0.0.1:${hport}`);
    gws.forEach((g, i) => {
      cfg = cfg.replaceAll(`127.0.0.1:808${i + 1} check port 909${i + 1}`, `127.0.0.1:${g.port} check port ${g.adminPort}`);
    });
    assert.doesNotMatch(cfg.split('\n').filter((l) => !l.startsWith('#')).join('\n'), /:808\d|port 909\d/, 'every server address substituted');
    const cfgFile = writeFile(dir, 'haproxy.cfg', cfg);
    const hap = startProcess(t, 'haproxy', ['-db', '-f', cfgFile], { timeoutMs: 270000 });
    const base = `http://127.0.0.1:${hport}`;
    let hapErr = '';
    hap.child.stderr.on('data', (d) => { hapErr += d; });
    let last;
    await waitAsync(async () => { last = await request(`${base}/sj/sockjs/info`, { timeoutMs: 1000 }); return last.status === 200; }, 20000, 'haproxy forwarding')
      .catch((e) => { throw new Error(`${e.message}: ${last?.status} ${last?.text}\n${hapErr}`); });

    // open 300 sessions, 100 of each kind
    const kinds = ['poll', 'sse', 'sockjs'];
    const clients = Array.from({ length: N }, (_, i) => new Client(kinds[i % 3], base, i));
    for (let i = 0; i < N; i += 10) await Promise.all(clients.slice(i, i + 10).map((c) => c.open()));
    const runs = clients.map((c) => c.run());
    // every client has messages (no fixed sleep: the machine may be slow)
    await waitAsync(async () => clients.every((c) => c.cur.got.length >= 3), 120000, 'every client receiving');

    // spread: each process holds 20-50% of the sessions
    const where = new Map();
    for (const g of gws) for (const id of await sessionsOf(g.adminPort)) where.set(id, g.inst);
    const per = { a1: 0, a2: 0, a3: 0 };
    for (const c of clients) { const w = where.get(c.cur.id); assert.ok(w, `${c.kind} session ${c.cur.id.slice(0, 8)} found on an instance; earlier: ${JSON.stringify(c.sessions.map((x) => [x.why, x.got.length]))}`); c.cur.instance = w; per[w]++; }
    t.diagnostic(`spread: ${JSON.stringify(per)}`);
    for (const [k, v] of Object.entries(per)) assert.ok(v >= 0.2 * N && v <= 0.5 * N, `${k} holds ${v} of ${N}`);
    for (const c of clients) assert.equal(inOrder(c.cur.got), null, `${c.kind} before the kill`);
    for (const c of clients) assert.ok(c.cur.got.length > 0, `${c.kind} got messages before the kill`);

    // kill -9 a2
    const victim = gws[1];
    const killedAt = Date.now();
    process.kill(victim.proc.child.pid, 'SIGKILL');
    await sleep(8000);
    // A client of the killed process may open its final session late in
    // those 8 s (a SockJS id redispatched once more when HAProxy marks the
    // process down): give it, bounded, the time to receive its first
    // messages there (the counter sends every TICK_MS) before stopping.
    // On a timeout the checks below say which client is short.
    const killedClients = clients.filter((c) => c.sessions.find((s) => s.instance)?.instance === 'a2');
    const waitFrom = Date.now();
    await waitAsync(async () => killedClients.every((c) => c.cur !== c.sessions.find((s) => s.instance) && c.cur.got.length > 0),
      20000, 'every client of the killed process receiving on a new session')
      .then(() => t.diagnostic(`every client of the killed process receiving on a new session ${Date.now() - waitFrom} ms after the 8 s`),
        (e) => t.diagnostic(e.message));
    for (const c of clients) c.stop = true;
    await Promise.race([Promise.all(runs), sleep(15000)]);
    for (const c of clients) c.sse?.destroy();

    const report = {};
    const survivors = new Map();
    for (const g of [gws[0], gws[2]]) for (const id of await sessionsOf(g.adminPort)) survivors.set(id, g.inst);
    for (const c of clients) {
      const first = c.sessions.find((s) => s.instance);
      const r = (report[`${c.kind}@${first.instance === 'a2' ? 'killed' : 'survivor'}`] ??= { n: 0, reopened: 0, detect: [], reopen: [], lost: 0, sessionsWithLoss: 0, whys: {} });
      r.n++;
      for (const s of c.sessions) assert.equal(inOrder(s.got), null, `${c.kind} ${s.id.slice(0, 8)} order`);
      if (first.instance === 'a2') {
        assert.ok(first.failedAt, `${c.kind} client of the killed process noticed`);
        const ms = first.failedAt - killedAt;
        r.detect.push(ms);
        // sent by the upstream to the killed process, never delivered
        const lost = (sent.get(first.ua) ?? 0) - first.got.length;
        assert.ok(lost >= 0, `${c.kind}: got more than the upstream sent`);
        r.lost += lost;
        if (lost) r.sessionsWithLoss++;
        r.whys[first.why.replace(/\d{3,}.*/, '').slice(0, 40)] = 1;
        assert.ok(ms < 7000, `${c.kind} noticed after ${ms} ms`);
        // the session the client ends with lives on a survivor. A SockJS
        // session opened while HAProxy still counts the killed process up
        // may be redispatched to one survivor and then, once the killed
        // process is marked down, hashed to the other (a second "o": the
        // client opens yet another): counted as extra sessions.
        const next = c.cur;
        assert.ok(next !== first, `${c.kind} opened a new session`);
        assert.ok(survivors.has(next.id), `${c.kind} new session ${next.id.slice(0, 8)} lives on a survivor (${c.sessions.length} sessions: ${c.sessions.map((x) => x.why).join('; ')})`);
        assert.ok(next.got.length > 0, `${c.kind} new session gets messages`);
        assert.equal(inOrder(next.got), null);
        r.reopen.push(next.openedAt - killedAt);
        r.extraSessions = (r.extraSessions ?? 0) + c.sessions.length - c.sessions.indexOf(first) - 2;
        r.reopened++;
      } else {
        // (a client whose session failed before the spread was taken, e.g.
        // a request timeout on an overloaded machine, is counted below)
        assert.equal(c.sessions.length - c.sessions.indexOf(first), 1, `${c.kind} on ${first.instance}: no reopen (${first.why})`);
        assert.ok(first.got.length >= 40, `${c.kind} on ${first.instance}: kept receiving (${first.got.length})`);
      }
    }
    const early = clients.filter((c) => c.sessions.indexOf(c.sessions.find((x) => x.instance)) > 0);
    t.diagnostic(`sessions that failed before the kill (client timeouts under load): ${early.length}` +
      (early.length ? ` ${JSON.stringify(early.map((c) => c.sessions[0].why))}` : ''));
    t.diagnostic(`after kill -9 of a2: ${JSON.stringify(report, (k, v) => (k === 'detect' || k === 'reopen' ? undefined : v))}`);
    for (const [k, r] of Object.entries(report)) {
      if (!k.endsWith('@killed')) continue;
      t.diagnostic(`haproxy summary: ${k.split('@')[0]}: ${r.n} sessions on the killed process; noticed after ${median(r.detect)} ms median, ` +
        `${Math.max(...r.detect)} ms max; new session open ${median(r.reopen)} ms median, ${Math.max(...r.reopen)} ms max after the kill; ` +
        `${r.lost} messages lost in ${r.sessionsWithLoss} of the killed sessions (sent by the upstream, never delivered); ` +
        `${r.extraSessions} sessions opened and abandoned on the way`);
    }
    hap.child.kill('SIGTERM');
    for (const g of [gws[0], gws[2]]) g.proc.child.kill('SIGTERM');
    agent.destroy();
  });
});

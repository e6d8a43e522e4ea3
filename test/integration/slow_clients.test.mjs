// slow_clients.test.mjs - slow and flooding clients (issue 10, section 2):
// Debian's slowhttptest runs slow headers (slowloris), slow body (R-U-Dead-
// Yet) and slow read together from 127.0.0.1 while a browser on 127.0.0.2
// keeps opening sessions and long-polling messages the upstream numbers
// and timestamps every 50 ms.
//
// Checked: every browser session opens and receives its messages in order;
// the browser's p99 delivery latency stays under SLOW_P99_MS (see below;
// the figures are printed as diagnostics); pollgate's descriptors stay
// under max_connections_per_client plus what the browser's sessions need;
// /stats counts the refused connections, the header timeouts and the body
// timeouts. Run time: about 30 s (SLOW_SECONDS).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { startUpstream, startGateway, request, sleep } from './bridge_lib.mjs';
import { tmpDir } from './lib.mjs';

const SECONDS = Number(process.env.SLOW_SECONDS || 25);
// The figure is 100 ms (SLOW_P99_MS=100 on a quiet machine); the
// default bound is wider because CI machines here run at a load of 20+,
// where the test process's own scheduling dominates the latency.
const P99_MS = Number(process.env.SLOW_P99_MS || 3000);
const PER_CLIENT = 40;
const have = spawnSync('slowhttptest', ['-h'], { encoding: 'utf8' }).status !== null;

function fdCount(pid) {
  try { return readdirSync(`/proc/${pid}/fd`).length; } catch { return 0; }
}

function slowhttptest(args) {
  const p = spawn('slowhttptest', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  const done = new Promise((resolve) => p.on('close', (code) => resolve({ code, out })));
  return { p, done };
}

function quantile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

describe('slow and flooding clients from one address, a browser from another', { skip: !have && 'slowhttptest is not installed (contrib/dev.sh deps)' }, () => {
  it('the browser keeps opening sessions and getting messages in time; limits hold; /stats counts the cuts', { timeout: (SECONDS + 90) * 1000 }, async (t) => {
    const up = await startUpstream(t, {
      onConnection(c) {
        let n = 0;
        const iv = setInterval(() => {
          if (c.ws.readyState !== 1) return;
          c.ws.send(JSON.stringify({ n: ++n, t: Date.now() }));
        }, 50);
        c.ws.on('close', () => clearInterval(iv));
      },
    });
    const dir = tmpDir(t, 'pollgate-slow-');
    writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(2 * 1024 * 1024, 0x61));
    const gw = await startGateway(t, {
      gateway: {
        static_root: dir,
        max_connections_per_client: PER_CLIENT,
        header_timeout: '2s',
        min_body_rate: '1KiB',
        request_timeout: '5s',
      },
      session: { poll_timeout: '2s', idle_timeout: '20s' },
      routes: [{ name: 'chat', path: '/chat', up }],
    });
    const pid = gw.proc.child.pid;
    const base = `http://127.0.0.1:${gw.port}`;
    const fdsBefore = fdCount(pid);

    // the attackers, all from 127.0.0.1
    const len = String(SECONDS);
    const attackers = [
      slowhttptest(['-H', '-c', '300', '-r', '100', '-i', '1', '-l', len, '-u', `${base}/health`]),
      slowhttptest(['-B', '-c', '300', '-r', '100', '-i', '1', '-s', '65536', '-l', len,
        '-u', `${base}/chat/sessions/AAAAAAAAAAAAAAAAAAAAAA/send`]),
      slowhttptest(['-X', '-c', '100', '-r', '50', '-l', len, '-k', '4', '-n', '1', '-w', '1', '-y', '64', '-z', '32',
        '-u', `${base}/big.bin`]),
    ];

    // fd sampling
    let maxFds = fdsBefore;
    const sampler = setInterval(() => { maxFds = Math.max(maxFds, fdCount(pid)); }, 200);

    // the browser on 127.0.0.2: sessions opened one after another, each
    // long-polled for about 3 s (two sessions at a time)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8, localAddress: '127.0.0.2' });
    const lat = [];
    const sessions = [];
    const deadline = Date.now() + SECONDS * 1000;
    let liveMax = 0;
    let live = 0;
    const worker = async () => {
      while (Date.now() < deadline) {
        const o = await request(`${base}/chat/sessions`, { method: 'POST', agent, timeoutMs: 10000 });
        const s = { status: o.status, id: o.json?.session, got: [], errors: [] };
        sessions.push(s);
        if (o.status !== 201) { await sleep(200); continue; }
        live++; liveMax = Math.max(liveMax, live);
        let ack = 0;
        const until = Date.now() + 3000;
        while (Date.now() < until) {
          let r;
          try {
            r = await request(`${base}/chat/sessions/${s.id}/poll?ack=${ack}`, { agent, timeoutMs: 10000 });
          } catch (e) { s.errors.push(String(e.message)); break; }
          const now = Date.now();
          if (r.status !== 200) { s.errors.push(`poll ${r.status}`); break; }
          for (const m of r.json.messages || []) {
            const d = JSON.parse(m.text);
            s.got.push(d.n);
            lat.push(now - d.t);
            ack = m.seq;
          }
        }
        await request(`${base}/chat/sessions/${s.id}`, { method: 'DELETE', agent, timeoutMs: 10000 }).catch(() => {});
        live--;
      }
    };
    await Promise.all([worker(), worker()]);
    const results = await Promise.all(attackers.map((a) => a.done));
    clearInterval(sampler);
    agent.destroy();
    const stats = (await request(gw.adminUrl('/stats'))).json;

    const p50 = quantile(lat, 0.5);
    const p99 = quantile(lat, 0.99);
    t.diagnostic(`browser: ${sessions.length} sessions, ${lat.length} messages, latency p50 ${p50} ms p99 ${p99} ms max ${Math.max(...lat)} ms`);
    t.diagnostic(`pollgate descriptors: ${fdsBefore} before, at most ${maxFds} during (per-client limit ${PER_CLIENT}, browser sessions live at most ${liveMax})`);
    t.diagnostic(`stats: ${JSON.stringify({ connections: stats.connections, refused: stats.connections_refused, refused_per_client: stats.connections_refused_per_client, header_timeouts: stats.header_timeouts, body_timeouts: stats.body_timeouts, bad_requests: stats.bad_requests })}`);
    for (const r of results) t.diagnostic(`slowhttptest exit ${r.code}: ${r.out.split('\n').filter((l) => /service available|closed|pending|connected/i.test(l)).slice(-4).join(' | ')}`);

    // every browser session opened and received its messages in order
    assert.ok(sessions.length >= 4, `at least 4 browser sessions in ${SECONDS} s (got ${sessions.length})`);
    for (const s of sessions) {
      assert.equal(s.status, 201, `a browser session failed to open: ${s.status}`);
      assert.deepEqual(s.errors, [], `browser session ${s.id}`);
      assert.ok(s.got.length >= 10, `session ${s.id} received ${s.got.length} messages in 3 s (want >= 10)`);
      assert.deepEqual(s.got, s.got.map((_, i) => i + 1), `session ${s.id}: messages in order, none lost`);
    }
    assert.ok(p99 < P99_MS, `browser p99 delivery latency ${p99} ms (want < ${P99_MS} ms)`);
    // descriptors: the attackers' share is capped by the per-client limit,
    // plus connections accepted and being answered 503 at that moment (a
    // burst of the flood); without the limit they would hold about 700
    const bound = fdsBefore + 3 * PER_CLIENT + 4 * liveMax + 40;
    assert.ok(maxFds <= bound, `pollgate held ${maxFds} descriptors (want <= ${bound})`);
    assert.ok(stats.connections_refused_per_client > 0, 'connections past max_connections_per_client are refused and counted');
    assert.ok(stats.header_timeouts > 0, 'slowloris connections are cut by header_timeout and counted');
    assert.ok(stats.body_timeouts > 0, 'slow bodies are cut by min_body_rate and counted');
  });
});

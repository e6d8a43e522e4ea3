// reload.test.mjs - SIGHUP reloads the configuration file: new sessions
// and requests get the new values (timeouts, log level, origins, routes),
// open sessions keep the configuration they opened with; a removed route's
// sessions get a close they can see (1001) after drain_timeout while other
// routes go on; a file with errors changes nothing (errors logged with
// FILE:LINE); keys that need a restart keep their running value with a
// warning; counters never go down; reloads under traffic lose nothing.
// Real binary, real signals, real upstreams.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';

import parsePrometheusTextFormat from 'parse-prometheus-text-format';

import {
  startUpstream, startGateway, makeConfig, Api, openEvents, request, waitUntil, sleep, freePort,
} from './bridge_lib.mjs';
import http from 'node:http';
import { sockjsRoute, SjEndpoint } from './sockjs_lib.mjs';

/** The INI text for gw with these options (routes as for startGateway). */
function configText(gw, opts) {
  const routes = (opts.routes || []).map((r) => ({ ...r, upstream: r.upstream || r.up.url(r.upstreamPath || r.path || '/chat') }));
  return makeConfig(gw.port, { adminPort: gw.adminPort, ...opts, routes });
}

const DONE_RE = /reload: configuration .* reloaded in \d+ ms|reload: .* the running configuration stays/g;

/** Write text to gw's file, send SIGHUP, wait for the reload's last line. */
async function reload(gw, text) {
  const before = (gw.stderr().match(DONE_RE) || []).length;
  fs.writeFileSync(gw.file, text);
  gw.proc.child.kill('SIGHUP');
  await waitUntil(() => (gw.stderr().match(DONE_RE) || []).length > before, 15000, 'reload log line');
  return gw.stderr().match(DONE_RE).at(-1);
}

async function scrape(gw) {
  const r = await request(gw.adminUrl('/metrics'));
  assert.equal(r.status, 200);
  return parsePrometheusTextFormat(r.text);
}

/** "name{labels}" -> value for every counter sample (histograms' counts too). */
function counters(fams) {
  const out = new Map();
  for (const f of fams) {
    if (f.type !== 'COUNTER' && f.type !== 'HISTOGRAM') continue;
    for (const m of f.metrics) {
      const key = `${f.name}${JSON.stringify(m.labels || {})}`;
      out.set(key, Number(m.value ?? m.count));
    }
  }
  return out;
}

function reloads(fams) {
  const f = fams.find((x) => x.name === 'pollgate_config_reloads_total');
  assert.ok(f, 'pollgate_config_reloads_total is exported');
  const v = (r) => Number(f.metrics.find((m) => m.labels.result === r).value);
  return { ok: v('ok'), failed: v('failed') };
}

function connectRefused(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(true));
  });
}

describe('SIGHUP reload', { timeout: 180000 }, () => {
  it('new requests get the new timeouts, log level and origins; open sessions keep theirs', async (t) => {
    const up = await startUpstream(t);
    const base = {
      routes: [{ name: 'chat', path: '/chat', up, origins: 'https://a.example' }],
      session: { poll_timeout: '1s', idle_timeout: '60s' },
    };
    const gw = await startGateway(t, base);
    up.reset();
    const api = new Api(gw, '/chat');
    t.after(() => api.destroy());
    const A = { origin: 'https://a.example' };
    const B = { origin: 'https://b.example' };

    const oa = await api.open(undefined, { headers: A });
    assert.equal(oa.status, 201, oa.text);
    assert.equal(oa.json.poll_timeout, 1);
    const idA = oa.json.session;

    const line = await reload(gw, configText(gw, {
      ...base,
      gateway: { log_level: 'warn' },
      routes: [{ name: 'chat', path: '/chat', up, origins: 'https://b.example' }],
      session: { poll_timeout: '6s', idle_timeout: '60s' },
    }));
    assert.match(line, /reloaded in \d+ ms/);
    assert.match(gw.stderr(), /reload: route chat changed/);

    // origins: a new open from the removed origin is refused, the new one
    // is allowed; the session opened before keeps its origins
    const refused = await api.open(undefined, { headers: A });
    assert.equal(refused.status, 403, refused.text);
    assert.equal(up.conns.length, 1, 'a refused open never reaches the upstream');
    const logBefore = gw.stderr().length;
    const ob = await api.open(undefined, { headers: B });
    assert.equal(ob.status, 201, ob.text);
    // timeouts: the new session is told (and held) the new poll_timeout
    assert.equal(ob.json.poll_timeout, 6);
    const idB = ob.json.session;
    // log level warn: the info line of an open is not written any more
    assert.doesNotMatch(gw.stderr().slice(logBefore), /session .* opened/);

    // the old session: its origin still works, its poll is held 1 s
    const pa = await api.poll(idA, 0, { headers: A });
    assert.equal(pa.status, 200, pa.text);
    assert.deepEqual(pa.json.messages, []);
    assert.ok(pa.ms < 4500, `old session's poll held ${pa.ms} ms (poll_timeout 1 s)`);
    // the new one: held the new 6 s (at least)
    const pb = await api.poll(idB, 0, { headers: B });
    assert.equal(pb.status, 200, pb.text);
    assert.ok(pb.ms >= 5500, `new session's poll held only ${pb.ms} ms (poll_timeout 6 s)`);
    // and both still relay
    (await up.conn(0)).send('to-a');
    (await up.conn(1)).send('to-b');
    assert.deepEqual((await api.pollOk(idA, 0, { headers: A })).messages, [{ seq: 1, text: 'to-a' }]);
    assert.deepEqual((await api.pollOk(idB, 0, { headers: B })).messages, [{ seq: 1, text: 'to-b' }]);
    assert.deepEqual(reloads(await scrape(gw)), { ok: 1, failed: 0 });
  });

  it('adds routes at once; a removed route\'s sessions are still reached, then closed visibly (1001) after drain_timeout', async (t) => {
    const up = await startUpstream(t);
    const chat = { name: 'chat', path: '/chat', up };
    const old = { name: 'old', path: '/old', up, upstreamPath: '/old' };
    const sj = sockjsRoute('sj', '/sj', up, { extra: { disconnect_delay: '30s' } });
    const session = { idle_timeout: '60s', poll_timeout: '20s' };
    const gw = await startGateway(t, { routes: [chat, old, sj], session, gateway: { drain_timeout: '3s' } });
    up.reset();
    const apiChat = new Api(gw, '/chat');
    const apiOld = new Api(gw, '/old');
    const apiNew = new Api(gw, '/new');
    t.after(() => { apiChat.destroy(); apiOld.destroy(); apiNew.destroy(); });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    t.after(() => agent.destroy());
    const sjEp = new SjEndpoint(t, gw, '/sj/sockjs', agent);

    const idY = await apiChat.openOk();
    const cY = await up.conn(0);
    const idX = await apiOld.openOk();
    const cX = await up.conn(1);
    assert.equal(cX.url, '/old');
    const sjs = sjEp.session();
    await sjs.open();
    const cS = await up.conn(2);
    const idX2 = await apiOld.openOk(); // an SSE stream on the removed route
    const cX2 = await up.conn(3);
    const sse = await openEvents(t, apiOld.eventsUrl(idX2));
    t.after(() => sse.destroy());

    const t0 = Date.now();
    await reload(gw, configText(gw, {
      routes: [chat, { name: 'new', path: '/new', up, upstreamPath: '/new' }],
      session, gateway: { drain_timeout: '3s' },
    }));
    assert.match(gw.stderr(), /reload: route new added/);
    assert.match(gw.stderr(), /reload: route old \(\/old\) removed/);
    assert.match(gw.stderr(), /reload: route sj \(\/sj\) removed/);

    // the routes changed: the health probe checks the new ones at once
    for (let i = 0; !(await request(gw.adminUrl('/health'))).json?.routes?.new; i++) {
      assert.ok(i < 100, '/health probes the new route');
      await sleep(100);
    }
    await sleep(300); // its connections closed
    up.reset();
    // the added route serves at once, the removed one takes no new session
    const idN = await apiNew.openOk();
    const cN = await up.conn(0);
    assert.equal(cN.url, '/new');
    assert.equal((await apiOld.open()).status, 404);
    // the removed route's sessions are still reached until their close
    cX.send('x1');
    cX2.send('x2');
    await sse.waitMessages(1);
    assert.deepEqual((await apiOld.pollOk(idX, 0)).messages, [{ seq: 1, text: 'x1' }]);
    await apiOld.sendOk(idX, ['x-up'], 1);
    await cX.waitMessages(1);
    cS.send('s1');
    assert.deepEqual((await sjs.pollMessages(1)).messages, ['s1']);

    // after drain_timeout: the close a drain gives, seen by the browser
    const sjClose = await sjs.nextFrame(15000);
    assert.equal(sjClose.raw, 'c[1001,"Server shutting down"]');
    const last = await apiOld.pollUntil(idX, (_, j) => !!j.closed, { ack: 1, ms: 15000 });
    assert.deepEqual(last.last.closed, { code: 1001, reason: 'going away' });
    assert.ok(Date.now() - t0 >= 2500, `closed ${Date.now() - t0} ms after the reload (drain_timeout 3 s)`);
    await sse.ended;
    assert.match(sse.rawText, /event: close\ndata: \{"code":1001,"reason":"going away"\}/);
    assert.equal((await cX.waitClose(5000)).code, 1001);
    assert.equal((await cX2.waitClose(5000)).code, 1001);
    assert.equal((await cS.waitClose(5000)).code, 1001);
    assert.match(gw.stderr(), /removed route old: 2 sessions closed/);

    // the other routes go on
    cY.send('y1');
    cN.send('n1');
    assert.deepEqual((await apiChat.pollOk(idY, 0)).messages, [{ seq: 1, text: 'y1' }]);
    assert.deepEqual((await apiNew.pollOk(idN, 0)).messages, [{ seq: 1, text: 'n1' }]);
    assert.equal(cY.close, null);
    assert.equal(cN.close, null);
    // the ended session answers 410, then is forgotten like any other
    assert.equal((await apiOld.poll(idX, 1)).status, 410);
  });

  it('rejects a file with errors (logged with FILE:LINE) and keeps serving the running configuration', async (t) => {
    const up = await startUpstream(t);
    const routes = [{ name: 'chat', path: '/chat', up }];
    const gw = await startGateway(t, { routes, session: { idle_timeout: '60s' } });
    up.reset();
    const api = new Api(gw, '/chat');
    t.after(() => api.destroy());
    const id = await api.openOk();
    const good = fs.readFileSync(gw.file, 'utf8');
    const bad = good.replace('[session]\n', '[session]\npoll_timeout = 5 parsecs\nbogus_key = 1\n');
    const line = await reload(gw, bad);
    assert.match(line, /has errors: the running configuration stays/);
    const err = gw.stderr();
    assert.ok(err.includes(`${gw.file}:`), 'errors name the file');
    assert.match(err, new RegExp(`${gw.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: \\[session\\] poll_timeout`));
    assert.match(err, /:\d+: \[session\] bogus_key/);
    // still serving, old session and new ones, with the running values
    const o = await api.open();
    assert.equal(o.status, 201);
    assert.equal(o.json.poll_timeout, 2);
    (await up.conn(0)).send('still');
    assert.deepEqual((await api.pollOk(id, 0)).messages, [{ seq: 1, text: 'still' }]);
    assert.deepEqual(reloads(await scrape(gw)), { ok: 0, failed: 1 });
    const st = await request(gw.adminUrl('/stats'));
    assert.deepEqual(st.json.metrics.config_reloads_total, { ok: 0, failed: 1 });
    // and a good file afterwards applies
    await reload(gw, good.replace('poll_timeout = 2s', 'poll_timeout = 3s'));
    assert.equal((await api.open()).json.poll_timeout, 3);
    assert.deepEqual(reloads(await scrape(gw)), { ok: 1, failed: 1 });
  });

  it('keeps the running value of keys that need a restart, with one warning each', async (t) => {
    const up = await startUpstream(t);
    const routes = [{ name: 'chat', path: '/chat', up }];
    const gw = await startGateway(t, { routes, gateway: { instance: 'a1' } });
    const api = new Api(gw, '/chat');
    t.after(() => api.destroy());
    const other = await freePort();
    const text = configText(gw, { routes, gateway: { instance: 'b2' }, session: { poll_timeout: '4s' } })
      .replace(`listen = 127.0.0.1:${gw.port}`, `listen = 127.0.0.1:${other}`);
    const line = await reload(gw, text);
    assert.match(line, /reloaded in/);
    assert.match(gw.stderr(), /\[gateway\] listen changed: it needs a restart; the running value stays/);
    assert.match(gw.stderr(), /\[gateway\] instance changed: it needs a restart/);
    assert.equal((gw.stderr().match(/needs a restart/g) || []).length, 2);
    // the old port still serves, the new one was never opened; the
    // reloadable key in the same file applied, the instance did not change
    const o = await api.open();
    assert.equal(o.status, 201, o.text);
    assert.match(o.json.session, /^a1\./);
    assert.equal(o.json.poll_timeout, 4);
    assert.ok(await connectRefused(other), 'the changed listen address is not bound');
  });

  it('counters never go down across reloads that remove and re-add routes', async (t) => {
    const up = await startUpstream(t);
    const chat = { name: 'chat', path: '/chat', up };
    const side = { name: 'side', path: '/side', up, upstreamPath: '/side' };
    const session = { idle_timeout: '60s' };
    const gw = await startGateway(t, { routes: [chat, side], session, gateway: { drain_timeout: '0' } });
    up.reset();
    const api = new Api(gw, '/chat');
    const apiSide = new Api(gw, '/side');
    t.after(() => { api.destroy(); apiSide.destroy(); });
    const id = await api.openOk();
    const sid = await apiSide.openOk();
    (await up.conn(0)).send('c');
    (await up.conn(1)).send('s');
    await api.pollOk(id, 0);
    await apiSide.pollOk(sid, 0);
    let prev = counters(await scrape(gw));
    assert.ok([...prev.keys()].some((k) => k.includes('"route":"side"')));
    const configs = [[chat], [chat, side], [chat]];
    for (const routes of configs) {
      await reload(gw, configText(gw, { routes, session, gateway: { drain_timeout: '0' } }));
      await sleep(200);
      const cur = counters(await scrape(gw));
      for (const [k, v] of prev) {
        assert.ok(cur.has(k), `${k} disappeared after a reload`);
        assert.ok(cur.get(k) >= v, `${k} went down: ${v} -> ${cur.get(k)}`);
      }
      prev = cur;
    }
    // the removed route's session was closed (drain_timeout 0): its browser
    // still reaches it and learns the close, and it is counted
    const pc = await apiSide.pollUntil(sid, (_, j) => !!j.closed, { ack: 1, ms: 10000 });
    assert.deepEqual(pc.last.closed, { code: 1001, reason: 'going away' });
    prev = counters(await scrape(gw));
    const closed = [...prev].find(([k]) => k.startsWith('pollgate_sessions_closed_total') &&
      k.includes('"route":"side"') && k.includes('"reason":"shutdown"'));
    assert.ok(closed && closed[1] >= 1, 'the removed route\'s session counted as closed (shutdown)');
    assert.equal(reloads(await scrape(gw)).ok, 3);
  });

  it('loses nothing while sessions exchange messages during 10 reloads', async (t) => {
    const up = await startUpstream(t);
    const chat = { name: 'chat', path: '/chat', up };
    const extra = { name: 'extra', path: '/extra', up, upstreamPath: '/extra' };
    const session = { idle_timeout: '60s', poll_timeout: '2s' };
    const gw = await startGateway(t, { routes: [chat], session });
    up.reset();
    const api = new Api(gw, '/chat', { agent: new http.Agent({ keepAlive: true, maxSockets: 64 }) });
    t.after(() => api.agent.destroy());
    const N = 12, M = 60;
    const ids = [];
    for (let i = 0; i < N; i++) ids.push(await api.openOk());
    // (later reloads add health probes of the changed routes to up.conns)
    const conns = (await up.waitConns(N)).slice(0, N);
    // upstream -> browser: M numbered messages per session, paced
    const senders = conns.map(async (c, i) => {
      for (let k = 1; k <= M; k++) {
        c.send(`${i}:${k}`);
        await sleep(15);
      }
    });
    // browser -> upstream: numbered sends with seq, retried on 429
    const browserSends = ids.map(async (id, i) => {
      for (let k = 1; k <= M / 2; k++) {
        for (;;) {
          const r = await api.send(id, [`up${i}:${k}`], k);
          if (r.status === 200) break;
          assert.equal(r.status, 429, `send: ${r.status} ${r.text}`);
          await sleep(50);
        }
      }
    });
    const receivers = ids.map((id) => api.pollUntil(id, (msgs) => msgs.length >= M, { ms: 90000 }));
    const reloader = (async () => {
      for (let r = 0; r < 10; r++) {
        const routes = r % 2 ? [chat] : [chat, extra];
        await reload(gw, configText(gw, { routes, session: { ...session, poll_timeout: `${2 + (r % 3)}s` } }));
        await sleep(100);
      }
    })();
    const got = await Promise.all(receivers);
    await Promise.all([...senders, ...browserSends, reloader]);
    for (let i = 0; i < N; i++) {
      const texts = got[i].messages.map((m) => m.text);
      assert.deepEqual(texts, Array.from({ length: M }, (_, k) => `${i}:${k + 1}`), `session ${i}: every message once, in order`);
      assert.deepEqual(got[i].messages.map((m) => m.seq), Array.from({ length: M }, (_, k) => k + 1));
    }
    for (let i = 0; i < N; i++) {
      await conns[i].waitMessages(M / 2, 10000);
      assert.deepEqual(conns[i].texts(), Array.from({ length: M / 2 }, (_, k) => `up${i}:${k + 1}`), `upstream ${i}: every send once, in order`);
    }
    assert.equal((gw.stderr().match(/reloaded in \d+ ms/g) || []).length, 10);
    assert.ok(conns.every((c) => c.close === null), 'no session was closed by the reloads');
  });
});

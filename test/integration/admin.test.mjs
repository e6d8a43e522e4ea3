// admin.test.mjs - the admin listener ([admin] listen): /health from the
// upstream probes, /metrics parsed with a real Prometheus text-format
// parser and checked against the traffic this test made, /stats,
// /sessions and DELETE /sessions/ID, the public port no longer serving
// them, [gateway] instance id prefixes, and a SIGTERM during the start-up
// upstream check (which used to be swallowed by a nested event loop).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

import { bridge, startGateway, startUpstream, startSilent, request, waitUntil, makeConfig } from './bridge_lib.mjs';
import { POLLGATE_BIN, startProcess, freePort, tmpDir, writeFile, withTimeout, sleep } from './lib.mjs';

function metric(families, name, labels = {}) {
  const f = families.find((x) => x.name === name);
  assert.ok(f, `metric family ${name} present`);
  const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels && x.labels[k] === v));
  assert.ok(m, `${name}${JSON.stringify(labels)} present`);
  return f.type === 'HISTOGRAM' ? m : Number(m.value);
}

async function scrape(gw) {
  const r = await request(gw.adminUrl('/metrics'));
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return parsePrometheusTextFormat(r.text);
}

describe('admin listener', () => {
  test('health, metrics, stats and sessions reflect the traffic; public port serves none of them', async (t) => {
    const { up, gw, api } = await bridge(t, { gateway: { instance: 'a1' } });
    // health: 200 with the route's probe
    const h = await request(gw.adminUrl('/health'));
    assert.equal(h.status, 200, h.text);
    assert.equal(h.json.status, 'ok');
    assert.equal(h.json.routes.chat.ok, true);
    assert.equal(typeof h.json.routes.chat.ms, 'number');
    for (const p of ['/health', '/stats', '/metrics', '/sessions'])
      assert.equal((await request(gw.url(p))).status, 404, `public ${p}`);

    // traffic: 2 native sessions, 3 messages down, 2 up
    const a = { session: await api.openOk() };
    const b = await api.openOk();
    assert.match(a.session, /^a1\.[A-Za-z0-9_-]{22}$/, 'instance prefix on native ids');
    const ca = await up.conn(0);
    ca.send('one'); ca.send('two!'); ca.send('three');
    const got = [];
    while (got.length < 3) got.push(...(await api.pollOk(a.session, got.length)).messages);
    await api.sendOk(a.session, ['up1', 'up-2'], 1);
    await ca.waitMessages(2);

    let fam = await scrape(gw);
    assert.equal(metric(fam, 'pollgate_sessions_opened_total', { route: 'chat', dialect: 'native' }), 2);
    assert.equal(metric(fam, 'pollgate_sessions_open', { route: 'chat', dialect: 'native' }), 2);
    assert.equal(metric(fam, 'pollgate_messages_total', { route: 'chat', direction: 'to_browser' }), 3);
    assert.equal(metric(fam, 'pollgate_messages_total', { route: 'chat', direction: 'to_upstream' }), 2);
    assert.equal(metric(fam, 'pollgate_bytes_total', { route: 'chat', direction: 'to_browser' }), 12);
    assert.equal(metric(fam, 'pollgate_bytes_total', { route: 'chat', direction: 'to_upstream' }), 7);
    assert.equal(metric(fam, 'pollgate_upstream_up', { route: 'chat' }), 1);
    const hist = metric(fam, 'pollgate_upstream_connect_seconds');
    assert.equal(Number(hist.count), 2, 'two upstream handshakes observed');
    assert.ok(metric(fam, 'pollgate_http_requests_total', { code: '200' }) >= 3);
    assert.ok(metric(fam, 'pollgate_http_requests_total', { code: '404' }) >= 4);
    assert.ok(metric(fam, 'process_resident_memory_bytes') > 0);
    assert.ok(metric(fam, 'process_open_fds') > 0);

    // sessions list and admin close: browser gets 4000/reason, upstream 1000
    const l = await request(gw.adminUrl('/sessions'));
    assert.equal(l.status, 200);
    assert.equal(l.json.total, 2);
    const row = l.json.sessions.find((x) => x.id === a.session);
    assert.ok(row, 'session listed');
    assert.equal(row.route, 'chat');
    assert.equal(row.dialect, 'native');
    assert.equal(row.client, '127.0.0.1');
    assert.equal(typeof row.age_ms, 'number');
    assert.equal(row.paused, false);
    assert.equal((await request(gw.adminUrl('/sessions/nope'), { method: 'DELETE' })).status, 404);
    assert.equal((await request(gw.adminUrl(`/sessions/${a.session}?code=99`), { method: 'DELETE' })).status, 400);
    const d = await request(gw.adminUrl(`/sessions/${encodeURIComponent(a.session)}?code=4000&reason=maintenance`), { method: 'DELETE' });
    assert.equal(d.status, 204, d.text);
    const c = await ca.closed;
    assert.equal(c.code, 1000, 'upstream gets 1000');
    const p = await request(gw.url(`/chat/sessions/${a.session}/poll?ack=3`));
    assert.equal(p.json.closed?.code ?? p.json.close?.code, 4000, `browser gets the close: ${p.text}`);
    assert.match(JSON.stringify(p.json), /maintenance/);
    fam = await scrape(gw);
    assert.equal(metric(fam, 'pollgate_sessions_closed_total', { route: 'chat', reason: 'admin' }), 1);

    const s = await request(gw.adminUrl('/stats'));
    assert.equal(s.status, 200);
    assert.equal(s.json.opened_total, 2);
    assert.ok(s.json.metrics, 'metrics in /stats');
    void b;
  });

  test('health is 503 naming the failing route and its reason', async (t) => {
    const silent = await startSilent(t);
    const up = await startUpstream(t);
    const gw = await startGateway(t, {
      upstream: { connect_timeout: '1s' },
      routes: [{ name: 'chat', path: '/chat', up }, { name: 'dead', path: '/dead', upstream: `ws://127.0.0.1:${silent.port}/x` }],
    });
    let h;
    await waitUntil(async () => { h = await request(gw.adminUrl('/health')); return h.json?.routes?.dead; }, 8000, 'a probe result');
    assert.equal(h.status, 503, h.text);
    assert.equal(h.json.routes.dead.ok, false);
    assert.match(h.json.routes.dead.reason, /timeout|timed out/i);
    const fam = await scrape(gw);
    assert.equal(metric(fam, 'pollgate_upstream_up', { route: 'dead' }), 0);
  });

  test('a SIGTERM during the start-up upstream check stops pollgate', async (t) => {
    const silent = await startSilent(t);
    const dir = tmpDir(t, 'pollgate-admin-');
    const port = await freePort();
    const file = writeFile(dir, 'p.ini', makeConfig(port, {
      upstream: { connect_timeout: '20s' },
      routes: [{ name: 'dead', path: '/dead', upstream: `ws://127.0.0.1:${silent.port}/x` }],
    }));
    const proc = startProcess(t, POLLGATE_BIN, ['-c', file], { timeoutMs: 30000 });
    let err = '';
    proc.child.stderr.on('data', (d) => { err += d; });
    // listening (and accepting) while the check still waits on the silent upstream
    await waitUntil(() => /listening on/.test(err), 10000, 'pollgate "listening on"');
    await new Promise((res, rej) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); res(); });
      s.on('error', rej);
    });
    assert.doesNotMatch(err, /reachable/, 'check still under way');
    proc.child.kill('SIGTERM');
    const r = await withTimeout(proc.done, 10000, 'exit after SIGTERM during the check');
    assert.equal(r.code, 0, `${r.signal} ${r.stderr}`);
    assert.match(r.stderr, /stopped/);
  });
});

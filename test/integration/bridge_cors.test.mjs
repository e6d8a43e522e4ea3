// bridge_cors.test.mjs - CORS (origin list, same-origin only, *), preflight,
// rejected origins never reaching the upstream, and the headers forwarded to
// the upstream (forward_headers, X-Forwarded-For appended, X-Real-IP, Origin).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { bridge, show, assertError, assertCommonHeaders, openEvents } from './bridge_lib.mjs';

function assertAllowed(r, origin) {
  assert.equal(r.headers['access-control-allow-origin'], origin, `Access-Control-Allow-Origin: ${show(r)}`);
  assert.equal(r.headers['access-control-allow-credentials'], 'true', `Access-Control-Allow-Credentials: ${show(r)}`);
  const vary = (r.headers.vary || '').split(',').map((s) => s.trim().toLowerCase());
  assert.ok(vary.includes('origin'), `Vary: Origin missing: ${show(r)}`);
}

const list = (h) => (h || '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

describe('bridge: CORS and forwarded headers', { concurrency: 4, timeout: 150000 }, () => {
  it('origin list: allowed origins get CORS headers, others 403 without touching the upstream', async (t) => {
    const { up, api } = await bridge(t, { route: { origins: 'https://a.example, https://b.example' } });
    const A = 'https://a.example';
    const B = 'https://b.example';
    const r = await api.open(undefined, { headers: { origin: A } });
    assert.equal(r.status, 201, show(r));
    assertAllowed(r, A);
    const id = r.json.session;
    const c = await up.conn(0);
    await c.send('hello');
    const p = await api.poll(id, 0, { headers: { origin: B } });
    assert.equal(p.status, 200, show(p));
    assertAllowed(p, B);
    assert.equal(p.json.messages[0].text, 'hello');

    const tcpBefore = up.tcpCount;
    const bad = ['https://evil.example', 'null', 'http://a.example', 'https://a.example:8443',
      'https://a.example.evil.example', 'https://A.example.'];
    for (const o of bad) {
      const rr = await api.open(undefined, { headers: { origin: o } });
      assertError(rr, 403);
      assert.ok(rr.headers['access-control-allow-origin'] === undefined || rr.headers['access-control-allow-origin'] !== o,
        `a rejected origin must not be allowed: ${show(rr)}`);
    }
    assert.equal(up.tcpCount, tcpBefore, 'a rejected origin must never open an upstream connection');
    assert.equal(up.conns.length, 1);

    // a disallowed origin cannot use an existing session either
    assertError(await api.send(id, ['evil'], 1, { headers: { origin: 'https://evil.example' } }), 403);
    assertError(await api.poll(id, 1, { headers: { origin: 'https://evil.example' } }), 403);
    assertError(await api.del(id, { headers: { origin: 'https://evil.example' } }), 403);
    const ok = await api.send(id, ['good'], 2, { headers: { origin: A } });
    assert.equal(ok.status, 200, show(ok));
    assertAllowed(ok, A);
    await c.waitMessages(1);
    assert.deepEqual(c.texts(), ['good'], 'the 403 send must not reach the upstream');
    assert.equal(c.close, null, 'the 403 DELETE must not close the session');

    // error answers and SSE streams for an allowed origin carry the CORS headers
    // too, or the page could not read them
    const e404 = await api.poll('AAAAAAAAAAAAAAAAAAAAAA', 0, { headers: { origin: A } });
    assertError(e404, 404, 'unknown_session');
    assertAllowed(e404, A);
    const e400 = await api.sendBody(id, '{bad', 'application/json', { headers: { origin: A } });
    assertError(e400, 400);
    assertAllowed(e400, A);
    const s = await openEvents(t, api.eventsUrl(id), { headers: { origin: B } });
    assert.equal(s.status, 200, s.body);
    assertAllowed({ ...s, text: '', method: 'GET' }, B);
    s.destroy();

    // no Origin at all (curl, server-side clients): allowed, no CORS headers needed
    const n = await api.open();
    assert.equal(n.status, 201, show(n));
  });

  it('preflight OPTIONS: 204 with Allow-Methods/Allow-Headers for allowed origins, 403 otherwise', async (t) => {
    const { up, api, gw } = await bridge(t, { route: { origins: 'https://a.example' } });
    const A = 'https://a.example';
    const pre = (p, method, headers, origin = A) => api.req('OPTIONS', p, {
      headers: {
        origin,
        'access-control-request-method': method,
        ...(headers ? { 'access-control-request-headers': headers } : {}),
      },
    });
    const r = await pre('/sessions', 'POST', 'content-type');
    assert.equal(r.status, 204, show(r));
    assertAllowed(r, A);
    assert.ok(list(r.headers['access-control-allow-methods']).includes('post'), `Allow-Methods: ${show(r)}`);
    assert.ok(list(r.headers['access-control-allow-headers']).includes('content-type'), `Allow-Headers: ${show(r)}`);

    const id = await api.openOk(undefined, { headers: { origin: A } });
    const r2 = await pre(`/sessions/${id}/send`, 'POST', 'Content-Type');
    assert.equal(r2.status, 204, show(r2));
    assertAllowed(r2, A);
    assert.ok(list(r2.headers['access-control-allow-headers']).includes('content-type'), show(r2));
    const r3 = await pre(`/sessions/${id}`, 'DELETE');
    assert.equal(r3.status, 204, show(r3));
    assert.ok(list(r3.headers['access-control-allow-methods']).includes('delete'), `Allow-Methods for DELETE: ${show(r3)}`);
    const r4 = await pre(`/sessions/${id}/events`, 'GET', 'last-event-id');
    assert.equal(r4.status, 204, show(r4));
    assert.ok(list(r4.headers['access-control-allow-headers']).includes('last-event-id'), `Allow-Headers for Last-Event-ID: ${show(r4)}`);

    const tcp = up.tcpCount;
    const bad = await pre('/sessions', 'POST', 'content-type', 'https://evil.example');
    assertError(bad, 403);
    assert.notEqual(bad.headers['access-control-allow-origin'], 'https://evil.example');
    assert.equal(up.tcpCount, tcp);
    assert.ok(gw.port);
  });

  it('an origin list never shuts out the gateway\'s own origin (default ports folded)', async (t) => {
    const { up, api, gw } = await bridge(t, { route: { origins: 'https://app.example' } });
    const same = `http://127.0.0.1:${gw.port}`;
    const r = await api.open(undefined, { headers: { origin: same } });
    assert.equal(r.status, 201, show(r));
    assertAllowed(r, same);
    const c = await up.conn(0);
    await c.send('hi');
    const p = await api.poll(r.json.session, 0, { headers: { origin: same } });
    assert.equal(p.status, 200, show(p));
    assertAllowed(p, same);
    // Host with the scheme's default port is the same origin as none
    const r2 = await api.open(undefined, { headers: { origin: 'http://gate.example', host: 'gate.example:80' } });
    assert.equal(r2.status, 201, show(r2));
    const tcp = up.tcpCount;
    for (const o of [`http://127.0.0.1:${gw.port + 1}`, `http://localhost:${gw.port}`, 'https://evil.example']) {
      assertError(await api.open(undefined, { headers: { origin: o } }), 403);
    }
    assert.equal(up.tcpCount, tcp, 'rejected origins never reach the upstream');
  });

  it('origins empty = same-origin only (Origin host must equal Host)', async (t) => {
    const { up, api, gw } = await bridge(t, { route: { origins: '' } });
    const same = `http://127.0.0.1:${gw.port}`;
    const r = await api.open(undefined, { headers: { origin: same } });
    assert.equal(r.status, 201, show(r));
    const tcp = up.tcpCount;
    for (const o of [`http://localhost:${gw.port}`, `http://127.0.0.1:${gw.port + 1}`, 'https://other.example', 'null']) {
      assertError(await api.open(undefined, { headers: { origin: o } }), 403);
    }
    assert.equal(up.tcpCount, tcp, 'rejected origins never reach the upstream');
    // a Host header naming another host makes that host the same origin
    const r2 = await api.open(undefined, { headers: { origin: 'https://app.example', host: 'app.example' } });
    assert.equal(r2.status, 201, `Origin host equal to Host: ${show(r2)}`);
  });

  it('origins = *: any origin allowed, echoed back (not "*") with credentials', async (t) => {
    const { api } = await bridge(t, { route: { origins: '*' } });
    for (const o of ['https://x.example', 'http://localhost:3000', 'https://y.example:8443']) {
      const r = await api.open(undefined, { headers: { origin: o } });
      assert.equal(r.status, 201, show(r));
      assertAllowed(r, o);
      assertCommonHeaders(r);
    }
  });

  it('forwarded headers: the forward_headers list, X-Forwarded-For appended, X-Real-IP; nothing else; no Origin', async (t) => {
    const { up, api } = await bridge(t, { route: { origins: '*', forward_origin: 'off' } });
    await api.openOk(undefined, {
      headers: {
        cookie: 'sid=abc123; theme=dark',
        authorization: 'Bearer t0k3n',
        'user-agent': 'LegacyBrowser/1.0 (test)',
        'accept-language': 'de-CH, en;q=0.5',
        'x-forwarded-for': '203.0.113.7, 198.51.100.2',
        'x-secret': 'must not pass',
        origin: 'https://page.example',
      },
    });
    const h = (await up.conn(0)).headers;
    assert.equal(h.cookie, 'sid=abc123; theme=dark');
    assert.equal(h.authorization, 'Bearer t0k3n');
    assert.equal(h['user-agent'], 'LegacyBrowser/1.0 (test)');
    assert.equal(h['accept-language'], 'de-CH, en;q=0.5');
    assert.equal(h['x-forwarded-for'], '203.0.113.7, 198.51.100.2, 127.0.0.1');
    assert.equal(h['x-real-ip'], '127.0.0.1');
    assert.equal(h['x-secret'], undefined, 'headers outside forward_headers must not be forwarded');
    assert.notEqual(h.origin, 'https://page.example', 'forward_origin = off: the browser Origin must not be forwarded');

    // without an incoming X-Forwarded-For and with no optional headers
    await api.openOk(undefined, { headers: {} });
    const h2 = (await up.conn(1)).headers;
    assert.equal(h2['x-forwarded-for'], '127.0.0.1');
    assert.equal(h2['x-real-ip'], '127.0.0.1');
    assert.equal(h2.cookie, undefined);
    assert.equal(h2.authorization, undefined);
    assert.equal(h2['accept-language'], undefined);
  });

  it('forward_origin = on forwards the browser Origin', async (t) => {
    const { up, api } = await bridge(t, { route: { origins: 'https://page.example', forward_origin: 'on' } });
    await api.openOk(undefined, { headers: { origin: 'https://page.example' } });
    const c = await up.conn(0);
    assert.equal(c.headers.origin, 'https://page.example');
  });
});

// sockjs_conformance.test.mjs - the SockJS dialect (protocol 0.3, as its
// reference server behaves) over raw HTTP: greeting, /info, the iframe page,
// session URLs, framing, every receiving and sending transport, callbacks,
// CORS and caching headers, JSESSIONID, JSON escaping, response limits,
// HTTP/1.0 and 1.1 framing, heartbeats, session reaping, upstream close
// codes and failures, and the `binary` policies - in front of real npm `ws`
// upstreams.
//
// Every test starts its own upstreams and gateway (see setup()), so within a
// test the i-th upstream connection opened after a request belongs to that
// request's session, and a gateway crash is reported by the test that caused
// it. The heartbeat tests use a gateway with heartbeat = 1 s.

import { describe, it as nodeIt } from 'node:test';
import assert from 'node:assert/strict';

import { startUpstream } from './bridge_lib.mjs';
import { sleep, withTimeout, refusedPort } from './lib.mjs';
import {
  startEchoUpstream, sockjsRoute, startSockjsGateway, parseFrame, messagesOf,
  eventsourceFrames, htmlfileFrames, parseJsonp, randomId, assertContentType, assertNoCache,
  assertCors, show, rawHttp, rawReadMore, dechunk, parseHead, crashAware, orderlyTeardown,
  PRELUDE_XHR, ANOTHER,
} from './sockjs_lib.mjs';

/** node:test's it, failures annotated with pollgate's crash report. */
const it = (name, fn) => nodeIt(name, crashAware(fn));

const GREETING = 'Welcome to SockJS!\n';
const GO_AWAY = 'c[3000,"Go away!"]';
const YEAR = /max-age=[1-9][0-9]{6,}/;

/** \uXXXX (lowercase hex) of every UTF-16 unit of s. */
const uEsc = (s) => [...s].map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('');
/**
 * A regexp source matching the SockJS escaping of s: \\u + 4 lowercase hex
 * digits; for \b \t \n \f \r the JSON short escape is accepted as well
 * (the reference server emits those: its own protocol test expects "\\n\\r").
 */
const SHORT = { 8: 'b', 9: 't', 10: 'n', 12: 'f', 13: 'r' };
const escRe = (s) => [...s].map((c) => {
  const n = c.charCodeAt(0);
  const u = '\\\\u' + n.toString(16).padStart(4, '0');
  return SHORT[n] ? `(?:${u}|\\\\${SHORT[n]})` : u;
}).join('');
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => String.fromCharCode(a + i)).join('');

function setCookieOf(r) {
  const v = r.headers['set-cookie'];
  return Array.isArray(v) ? v.join('\n') : v;
}

function assertJsessionid(r, value, what) {
  const c = setCookieOf(r);
  assert.ok(c, `${what}: Set-Cookie missing: ${show(r)}`);
  const parts = c.split(';').map((p) => p.trim());
  assert.equal(parts[0], `JSESSIONID=${value}`, `${what}: Set-Cookie ${c}`);
  assert.equal((parts[1] || '').toLowerCase(), 'path=/', `${what}: Set-Cookie ${c}`);
}

/** Response body by Content-Length or chunked, from a parsed raw state; null if incomplete. */
function rawBody(st) {
  if (!st.head || st.head.bad) return null;
  const h = st.head.headers;
  if (h['content-length'] !== undefined) {
    const n = Number(h['content-length']);
    return st.body.length >= n ? st.body.subarray(0, n) : null;
  }
  if ((h['transfer-encoding'] || '').toLowerCase() === 'chunked') {
    const d = dechunk(st.body);
    return d.complete ? Buffer.concat(d.chunks) : null;
  }
  return st.closed ? st.body : null;
}

/**
 * Upstreams + a gateway with every route of the suite, for one test `t`:
 *   /echo     echo upstream (origins *, binary = close)
 *   /cookie   cookie_needed = on, another sockjs_url
 *   /strict   origins = http://good.example
 *   /same     (opts.scriptRoutes) origins empty (same origin only)
 *   /noscript (opts.scriptRoutes) origins = http://good.example, sockjs_jsonp = off
 *   /b64 /drop  binary = base64 | drop
 *   /custom   sockjs_path = /sj/custom
 *   /close    an upstream that closes every connection with 3000 "Go away!"
 *   /refused  nothing listens;  /reject  the upstream answers the upgrade 403
 *   /slow     (opts.slow) the upstream answers the handshake after 600 ms
 * Each test gets its own gateway, so a crash is pinned to the test that
 * caused it; at the end the gateway is stopped (SIGTERM, clean exit and no
 * sanitizer report asserted) before the upstreams go away.
 */
async function setup(t, { slow = false, session = {}, echoExtra = {}, scriptRoutes = false } = {}) {
  orderlyTeardown(t);
  const up = await startEchoUpstream(t);
  const upClose = await startUpstream(t, { onConnection: (c) => c.ws.close(3000, 'Go away!') });
  const upReject = await startUpstream(t, { reject: () => 403 });
  const upSlow = slow ? await startEchoUpstream(t, { handshakeDelayMs: 600 }) : null;
  const refused = `ws://127.0.0.1:${await refusedPort()}/refused`;
  const routes = [
    sockjsRoute('echo', '/echo', up, { extra: echoExtra }),
    sockjsRoute('cookie', '/cookie', up, { extra: { cookie_needed: 'on', sockjs_url: '/static/sockjs-1.6.1.min.js' } }),
    sockjsRoute('strict', '/strict', up, { origins: 'http://good.example' }),
    sockjsRoute('b64', '/b64', up, { extra: { binary: 'base64' } }),
    sockjsRoute('drop', '/drop', up, { extra: { binary: 'drop' } }),
    sockjsRoute('custom', '/custom', up, { extra: { sockjs_path: '/sj/custom' } }),
    sockjsRoute('close', '/close', upClose),
    sockjsRoute('refused', '/refused', refused),
    sockjsRoute('reject', '/reject', upReject),
  ];
  if (slow) routes.push(sockjsRoute('slow', '/slow', upSlow));
  if (scriptRoutes) {
    routes.push(sockjsRoute('same', '/same', up, { origins: '' }),
      sockjsRoute('noscript', '/noscript', up, { origins: 'http://good.example', extra: { sockjs_jsonp: 'off' } }));
  }
  const gw = await startSockjsGateway(t, {
    session: { heartbeat: '25s', poll_timeout: '25s', ...session },
    routes,
    ups: [up, upClose, upReject, ...(slow ? [upSlow] : [])],
  });
  return {
    up, upClose, upReject, upSlow, gw,
    port: gw.port,
    /** The SockJS endpoint of a route (default /echo). */
    E: (base = '/echo/sockjs') => gw.sockjs(base, t),
    /** Resolves to the next upstream connection of `u` opened after this call. */
    nextConn: (u = up) => { const n = u.conns.length; return (ms = 5000) => u.conn(n, ms); },
  };
}

describe('sockjs conformance', { concurrency: 4, timeout: 120000 }, () => {
  // ------------------------------------------------------------ greeting

  it('greeting: GET base and base/ -> 200 text/plain "Welcome to SockJS!\\n", no cookie', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    for (const base of ['/echo/sockjs', '/cookie/sockjs']) {
      for (const p of ['', '/']) {
        const r = await E(base).req('GET', p);
        assert.equal(r.status, 200, show(r));
        assertContentType(r, 'text/plain; charset=UTF-8', `GET ${base}${p}`);
        assert.equal(r.text, GREETING, show(r));
        assert.equal(r.headers['set-cookie'], undefined, `no Set-Cookie on the greeting: ${show(r)}`);
      }
    }
  });

  it('greeting: other paths without a transport -> 404', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const n = up.conns.length;
    for (const p of ['/a', '/a.html', '//', '///', '/a/a', '/a/a/', '/a/', '/a/b/c/d']) {
      const r = await E().req('GET', p);
      assert.equal(r.status, 404, show(r));
    }
    assert.equal(up.conns.length, n, 'no upstream connection for these');
  });

  it('sockjs_path: the endpoints live under the configured path', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const r = await E('/sj/custom').req('GET', '');
    assert.equal(r.status, 200, show(r));
    assert.equal(r.text, GREETING);
    const i = await E('/sj/custom').req('GET', '/info');
    assert.equal(i.status, 200, show(i));
    await E('/sj/custom').session().open();
  });

  // ------------------------------------------------------------ /info

  it('info: GET -> JSON, no-cache, CORS, no cookie, random entropy', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const r = await E().req('GET', '/info', { headers: { origin: 'http://a.example' } });
    assert.equal(r.status, 200, show(r));
    assertContentType(r, 'application/json; charset=UTF-8', 'info');
    assertNoCache(r, 'info');
    assertCors(r, 'http://a.example', 'info');
    assert.equal(r.headers['set-cookie'], undefined, `no Set-Cookie on /info: ${show(r)}`);
    assert.ok(r.json && typeof r.json === 'object', show(r));
    assert.deepEqual(Object.keys(r.json).sort(), ['cookie_needed', 'entropy', 'origins', 'websocket'], show(r));
    assert.equal(r.json.websocket, true, 'websocket = on by default');
    assert.equal(r.json.cookie_needed, false);
    assert.deepEqual(r.json.origins, ['*:*']);
    const ent = [r.json.entropy];
    for (let i = 0; i < 3; i++) ent.push((await E().req('GET', '/info')).json.entropy);
    for (const e of ent) assert.ok(Number.isInteger(e) && e >= 0 && e <= 0xffffffff, `entropy ${e} is a 32-bit unsigned integer`);
    assert.ok(new Set(ent).size > 1, `entropy must differ between calls: ${ent}`);
    const noOrigin = await E().req('GET', '/info');
    assertCors(noOrigin, null, 'info without Origin');

    const c = await E('/cookie/sockjs').req('GET', '/info', { headers: { cookie: 'JSESSIONID=abc' } });
    assert.equal(c.status, 200, show(c));
    assert.equal(c.json.cookie_needed, true, `cookie_needed = on: ${show(c)}`);
    assert.equal(c.headers['set-cookie'], undefined, `never Set-Cookie on /info: ${show(c)}`);
  });

  it('info: OPTIONS -> 204, OPTIONS, GET, long caching, CORS (also Origin: null)', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    for (const origin of ['http://a.example', 'null']) {
      const r = await E().req('OPTIONS', '/info', { headers: { origin, 'access-control-request-method': 'GET' } });
      assert.equal(r.status, 204, show(r));
      assert.equal(r.headers['access-control-allow-methods'], 'OPTIONS, GET', show(r));
      assert.match(r.headers['cache-control'] || '', /public/, show(r));
      assert.match(r.headers['cache-control'] || '', YEAR, show(r));
      assert.ok(r.headers.expires, `Expires: ${show(r)}`);
      assert.ok(Number(r.headers['access-control-max-age']) > 1000000, `Access-Control-Max-Age: ${show(r)}`);
      assert.equal(r.body.length, 0, show(r));
      assertCors(r, origin, `OPTIONS /info Origin ${origin}`);
      assert.equal(r.headers['set-cookie'], undefined);
    }
  });

  // ------------------------------------------------------------ iframe

  const iframeOk = async (ep, p, sockjsUrl) => {
    const r = await ep.req('GET', p);
    assert.equal(r.status, 200, `GET ${p}: ${show(r)}`);
    assertContentType(r, 'text/html; charset=UTF-8', `GET ${p}`);
    assert.match(r.headers['cache-control'] || '', /public/, `GET ${p}: ${show(r)}`);
    assert.match(r.headers['cache-control'] || '', YEAR, `GET ${p}: ${show(r)}`);
    assert.ok(r.headers.expires && !Number.isNaN(Date.parse(r.headers.expires)), `GET ${p}: Expires: ${show(r)}`);
    assert.ok(Date.parse(r.headers.expires) > Date.now() + 300 * 86400e3, `GET ${p}: Expires ~1 year ahead: ${r.headers.expires}`);
    assert.ok(r.headers.etag, `GET ${p}: ETag: ${show(r)}`);
    assert.equal(r.headers['last-modified'], undefined, `GET ${p}: no Last-Modified`);
    assert.equal(r.headers['set-cookie'], undefined, `GET ${p}: no Set-Cookie`);
    const body = r.text.trim();
    assert.match(body, /^<!DOCTYPE html>/i, `GET ${p}: ${show(r)}`);
    assert.ok(body.includes(`<script src="${sockjsUrl}"></script>`), `GET ${p}: must load ${sockjsUrl}: ${show(r)}`);
    assert.match(body, /SockJS\.bootstrap_iframe\(\);/, `GET ${p}: ${show(r)}`);
    assert.match(body, /<\/html>$/i, `GET ${p}: ${show(r)}`);
    return r;
  };

  it('iframe: iframe.html and iframe-<version>.html (+ query) -> cacheable page loading sockjs_url', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    for (const p of ['/iframe.html', '/iframe-a.html', '/iframe-.html', '/iframe-0.1.2.html',
      '/iframe-0.1.2abc-dirty.2144.html', '/iframe-1.6.1_x.html', '/iframe-a.html?t=1234',
      '/iframe-0.1.2.html?t=123414', '/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123', '/iframe.html?x']) {
      await iframeOk(E(), p, '/sockjs.min.js');
    }
    await iframeOk(E('/cookie/sockjs'), '/iframe.html', '/static/sockjs-1.6.1.min.js');
  });

  it('iframe: stable ETag, 304 on If-None-Match', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const r1 = await E().req('GET', '/iframe.html');
    const r2 = await E().req('GET', '/iframe-0.1.2.html?t=5');
    assert.ok(r1.headers.etag);
    assert.equal(r2.headers.etag, r1.headers.etag, 'same page, same ETag');
    const r = await E().req('GET', '/iframe.html', { headers: { 'if-none-match': r1.headers.etag } });
    assert.equal(r.status, 304, show(r));
    assert.equal(r.headers['content-type'], undefined, `304 without Content-Type: ${show(r)}`);
    assert.equal(r.body.length, 0, show(r));
    const other = await E().req('GET', '/iframe.html', { headers: { 'if-none-match': '"nope"' } });
    assert.equal(other.status, 200, show(other));
    const c = await E('/cookie/sockjs').req('GET', '/iframe.html');
    assert.notEqual(c.headers.etag, r1.headers.etag, 'a different sockjs_url gives a different page and ETag');
  });

  it('iframe: malformed names -> 404', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    for (const p of ['/iframe.htm', '/iframe', '/IFRAME.HTML', '/IFRAME', '/iframe.HTML', '/iframe.xml',
      '/iframe-/.html', '/iframe-a/b.html', '/iframeX.html', '/iframe-a b.html', '/iframe-A.html', '/xiframe.html']) {
      const r = await E().req('GET', p.replace(' ', '%20'));
      assert.equal(r.status, 404, show(r));
    }
  });

  // ------------------------------------------------------------ session URLs

  it('session URLs: any server and session value is accepted', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const r = randomId(4);
    for (const part of [`/a/a${r}`, `/_/_${r}`, `/1/${r}`, `/abcdefgh_i-j%20/abcdefg_i-j%20${r}`, `/-/-${r}`]) {
      const x = await E().req('POST', `${part}/xhr`);
      assert.equal(x.status, 200, show(x));
      assert.equal(x.text, 'o\n', show(x));
    }
  });

  it('session URLs: empty, dotted or extra segments -> 404, upstream never contacted', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const n = up.conns.length;
    for (const part of ['//', '/a./a', '/a/a.', '/./.', '/', '///', '/../a', '/a/..', '/a/b/c']) {
      for (const method of ['GET', 'POST']) {
        const r = await E().req(method, `${part}/xhr`);
        assert.equal(r.status, 404, `${part}/xhr: ${show(r)}`);
      }
    }
    for (const tr of ['nope', 'xhr_sendx', 'XHR', 'websocket_nope', '']) {
      const r = await E().req('POST', `/000/${randomId()}/${tr}`);
      assert.equal(r.status, 404, `unknown transport: ${show(r)}`);
    }
    assert.equal(up.conns.length, n, 'no upstream connection was opened');
  });

  it('session URLs: the server id is ignored (000 then 999 reach one session)', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    await s.open();
    await s.sendOk(['a']);
    const r = await E().req('POST', s.path('xhr', '999'));
    assert.equal(r.status, 200, show(r));
    assert.equal(r.text, 'a["a"]\n', show(r));
  });

  // ------------------------------------------------------------ xhr polling

  it('xhr + xhr_send: headers, o, 204 send, echo; unknown session -> 404', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    const r = await s.xhr({ headers: { origin: 'http://a.example' } });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.text, 'o\n', show(r));
    assertContentType(r, 'application/javascript; charset=UTF-8', 'xhr');
    assertCors(r, 'http://a.example', 'xhr');
    assertNoCache(r, 'xhr');
    assert.equal(r.headers['x-content-type-options'], 'nosniff', `xhr (a script type): ${show(r)}`);
    assert.equal(r.headers['set-cookie'], undefined, `cookie_needed = off: ${show(r)}`);
    const c = await conn();
    assert.equal(c.url, '/echo', 'the route\'s upstream path');

    const sr = await s.send(['x'], { headers: { origin: 'http://a.example' } });
    assert.equal(sr.status, 204, show(sr));
    assert.equal(sr.body.length, 0, show(sr));
    assert.match(sr.headers['content-type'] || '', /^text\/plain/, `xhr_send Content-Type: ${show(sr)}`);
    assertCors(sr, 'http://a.example', 'xhr_send');
    assertNoCache(sr, 'xhr_send');
    await c.waitMessages(1);
    assert.deepEqual(c.texts(), ['x']);

    const p = await s.xhr();
    assert.equal(p.text, 'a["x"]\n', show(p));

    const bad = await E().session().send(['x']);
    assert.equal(bad.status, 404, `xhr_send to an unknown session: ${show(bad)}`);
  });

  it('xhr_send: every content type accepted, messages forwarded in order; [] forwards nothing', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    const cts = ['text/plain', 'T', 'application/json', 'application/xml', 'application/json; charset=utf-8',
      'text/xml; charset=utf-8', 'text/xml', null, ''];
    let i = 0;
    for (const ct of cts) {
      await s.sendOk([`m${i++}`], { contentType: ct });
    }
    await s.sendOk([]);
    await s.sendOk(['p', 'q', 'r']);
    const want = [...cts.map((_, k) => `m${k}`), 'p', 'q', 'r'];
    await c.waitMessages(want.length);
    assert.deepEqual(c.texts(), want, 'upstream got every message, in order, no empty one for []');
    const { messages } = await s.pollMessages(want.length);
    assert.deepEqual(messages, want);
  });

  it('xhr_send: broken JSON -> 500 "Broken JSON encoding.", empty / not an array -> 500 "Payload expected."', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    const broken = await s.send('["x');
    assert.equal(broken.status, 500, show(broken));
    assert.ok(broken.text.includes('Broken JSON encoding.'), show(broken));
    for (const body of ['', '{}', '"x"', '1', 'null', '{"a":["x"]}']) {
      const r = await s.send(body);
      assert.equal(r.status, 500, `body ${JSON.stringify(body)}: ${show(r)}`);
      assert.ok(r.text.includes('Payload expected.'), `body ${JSON.stringify(body)}: ${show(r)}`);
    }
    await s.sendOk(['a']);
    await c.waitMessages(1);
    assert.deepEqual(c.texts(), ['a'], 'only the good send reached the upstream');
    const p = await s.xhr();
    assert.equal(p.text, 'a["a"]\n', show(p));
  });

  it('xhr_send: a body without Content-Length (chunked) works', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    await s.open();
    const r = await s.send('["chunked"]', { headers: { 'transfer-encoding': 'chunked' } });
    assert.equal(r.status, 204, show(r));
    assert.deepEqual((await s.pollMessages(1)).messages, ['chunked']);
  });

  it('xhr: a second receiving request while one is attached gets c[2010], the first stays', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    await s.open();
    const tag = (name) => (r) => ({ name, r });
    const p1 = s.xhr().then(tag('first'));
    await sleep(50); // let the first reach the gateway first (the assertion holds in either order)
    const p2 = s.xhr().then(tag('second'));
    const first = await withTimeout(Promise.race([p1, p2]), 5000, 'one of two concurrent polls answered');
    assert.equal(first.r.text, ANOTHER + '\n', `the later poll must get the 2010 close frame: ${show(first.r)}`);
    assert.equal(first.r.status, 200);
    const other = first.name === 'first' ? p2 : p1;
    await s.sendOk(['x']);
    const o = await withTimeout(other, 5000, 'the attached poll answered');
    assert.equal(o.r.text, 'a["x"]\n', `the attached poll keeps the session: ${show(o.r)}`);
    const again = await s.xhr({ timeoutMs: 500 }).catch((e) => e);
    assert.ok(again instanceof Error, `the session is still open (a new poll is held): ${again.text ?? ''}`);
  });

  // Section 4 of issue 9: a receiving request cut after "o" ends the
  // session as the SockJS protocol says (sockjs-protocol's
  // test_abort_xhr_polling and test_abort_xhr_streaming). Until then this
  // test said the opposite (pollgate kept the session alive).
  it('abort (test_abort_xhr_polling): a held xhr aborted ends the session: c[1002,"Connection interrupted"], upstream 1001', async (t) => {
    // the tombstone lives disconnect_delay: long enough for a loaded machine
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t, { echoExtra: { disconnect_delay: '30s' } });
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    const n = up.conns.length;
    const ac = new AbortController();
    const held = s.xhr({ signal: ac.signal }).catch((e) => e);
    await sleep(100);
    const r2 = await s.xhr();
    assert.equal(r2.text, ANOTHER + '\n', show(r2));
    ac.abort();
    await held;
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1001, `upstream close ${JSON.stringify(cl)}`);
    for (let i = 0; i < 2; i++) {
      const r3 = await s.xhr();
      assert.equal(r3.text, 'c[1002,"Connection interrupted"]\n', show(r3));
    }
    assert.equal(up.conns.length, n, 'no new upstream connection');
  });

  it('abort (test_abort_xhr_streaming): an xhr_streaming response cut after o ends the session the same way', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t, { echoExtra: { disconnect_delay: '30s' } });
    const s = E().session();
    const conn = nextConn();
    const xs = await s.stream('xhr_streaming');
    await xs.waitFor((x) => x.text.length >= PRELUDE_XHR.length + 2, 5000, 'prelude + o');
    assert.equal(xs.text, PRELUDE_XHR + 'o\n');
    const c = await conn();
    const xs2 = await s.stream('xhr_streaming');
    await xs2.waitFor((x) => x.text.length >= PRELUDE_XHR.length + ANOTHER.length + 1, 5000, 'prelude + 2010');
    assert.equal(xs2.text, PRELUDE_XHR + ANOTHER + '\n');
    xs2.destroy();
    xs.destroy();
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1001, `upstream close ${JSON.stringify(cl)}`);
    const r = await s.xhr();
    assert.equal(r.text, 'c[1002,"Connection interrupted"]\n', show(r));
  });

  it('abort: requests that complete normally do not end the session', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    // completed requests are not interruptions
    await c.sendAll(['q1', 'q2']);
    const { messages } = await s.pollMessages(2);
    assert.deepEqual(messages, ['q1', 'q2']);
    assert.equal(c.close, null, 'upstream still open');
  });

  // ------------------------------------------------------------ xhr_streaming

  it('xhr_streaming: headers, 2048 h prelude, o, frames', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const xs = await s.stream('xhr_streaming', { headers: { origin: 'http://a.example' } });
    assert.equal(xs.status, 200);
    assertContentType(xs, 'application/javascript; charset=UTF-8', 'xhr_streaming');
    assertCors(xs, 'http://a.example', 'xhr_streaming');
    assertNoCache(xs, 'xhr_streaming');
    assert.equal(xs.headers['x-content-type-options'], 'nosniff', `xhr_streaming: ${JSON.stringify(xs.headers)}`);
    await xs.waitFor((x) => x.text.length >= PRELUDE_XHR.length + 2, 5000, 'prelude + o');
    assert.equal(xs.text, PRELUDE_XHR + 'o\n');
    await s.sendOk(['x']);
    await xs.waitFor((x) => x.text.endsWith('a["x"]\n'), 5000, 'a["x"]');
    assert.equal(xs.text, PRELUDE_XHR + 'o\na["x"]\n');
    await s.sendOk(['y', 'z']);
    await xs.waitFor((x) => messagesOf(x.frames()).length >= 3, 5000, 'y, z');
    assert.deepEqual(messagesOf(xs.frames()), ['x', 'y', 'z']);
    assert.equal(xs.done, false, 'the stream is still open');
  });

  it('xhr_streaming: the response ends after response_limit bytes, nothing lost, the session lives on', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const xs = await s.stream('xhr_streaming');
    await xs.waitFrames(1);
    const msg = 'x'.repeat(128);
    const frameLen = `a["${msg}"]\n`.length; // 133
    let received = 0;
    let sent = 0;
    for (let i = 0; i < 40 && !xs.done; i++) {
      await s.sendOk([msg]);
      sent++;
      await xs.waitFor((x) => x.done || messagesOf(x.frames()).length > received, 5000, `message ${i + 1}`);
      received = messagesOf(xs.frames()).length;
      if (!xs.done) {
        // the end follows the frame that reached the limit; give it its chance
        await xs.waitFor((x) => x.done, 50, 'end').catch(() => {});
      }
    }
    assert.ok(xs.done, `the stream must end after response_limit (4096) bytes; got ${xs.bytes} bytes`);
    assert.ok(xs.text.endsWith('\n'), 'it ends on a whole frame');
    // frames only (as the reference: 31 messages), or the prelude too (16)
    const framesOnly = 2 + received * frameLen;
    const whole = PRELUDE_XHR.length + framesOnly;
    const endAtFrames = Math.ceil((4096 - 2) / frameLen); // 31
    const endAtWhole = Math.ceil((4096 - 2 - PRELUDE_XHR.length) / frameLen); // 16
    assert.ok(received === endAtFrames || received === endAtWhole,
      `ended after ${received} messages (${framesOnly} frame bytes, ${whole} with the prelude); ` +
      `want the end right after the frame that reaches 4096 bytes (${endAtFrames} counting frames as the reference, or ${endAtWhole} counting the prelude)`);
    assert.ok(xs.complete !== false, 'a clean end of the response, not a reset');
    // the session lives on: the next request gets no new "o", and what was
    // sent after the end is there
    await s.sendOk(['after']);
    const want = [...Array(sent - received).fill(msg), 'after'];
    const xs2 = await s.stream('xhr_streaming');
    await xs2.waitFor((x) => messagesOf(x.frames()).length >= want.length || x.done, 5000, 'the rest');
    assert.ok(xs2.text.startsWith(PRELUDE_XHR), 'prelude again');
    assert.ok(!xs2.dataFrames().some((f) => f.type !== 'a'), `no new open frame: ${JSON.stringify(xs2.dataFrames().map((f) => f.raw.slice(0, 20)))}`);
    assert.deepEqual(messagesOf(xs2.frames()), want, 'nothing lost');
  });

  // ------------------------------------------------------------ eventsource

  it('eventsource: headers, \\r\\n prelude, data: <frame>\\r\\n\\r\\n, escaped control characters', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const es = await s.stream('eventsource', { headers: { origin: 'http://a.example' } });
    assert.equal(es.status, 200);
    assertContentType(es, 'text/event-stream', 'eventsource');
    assertNoCache(es, 'eventsource');
    assertCors(es, 'http://a.example', 'eventsource');
    await es.waitFor((x) => x.text.length >= 13, 5000, 'prelude + o');
    assert.equal(es.text, '\r\ndata: o\r\n\r\n');
    await s.sendOk(['x']);
    await es.waitFor((x) => x.text.endsWith('data: a["x"]\r\n\r\n'), 5000, 'a["x"]');
    await s.sendOk(['  \u0000\n\r ']);
    const want = new RegExp(`^\\r\\ndata: o\\r\\n\\r\\ndata: a\\["x"\\]\\r\\n\\r\\ndata: a\\["  ${escRe('\u0000\n\r')} "\\]\\r\\n\\r\\n$`);
    await es.waitFor((x) => x.text.split('\r\n\r\n').length >= 4, 5000, 'control characters');
    assert.match(es.text, want, 'SockJS escapes U+0000-U+001F: no raw CR, LF or NUL in an event');
  });

  it('eventsource: "%" in a payload survives sockjs-client\'s decodeURI (reference: %25)', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    const es = await s.stream('eventsource');
    await es.waitFrames(1);
    const c = await conn();
    const payload = '100% %41 %E2%80%A8 %zz';
    await c.send(payload);
    await es.waitFor((x) => x.text.split('\r\n\r\n').length >= 3, 5000, 'the message event');
    const { frames, bad } = eventsourceFrames(es.text);
    assert.deepEqual(bad, [], `every data: line must survive decodeURI (sockjs-client decodes it): ${JSON.stringify(es.text)}`);
    assert.deepEqual(messagesOf(frames), [payload]);
  });

  it('eventsource: the response ends after response_limit bytes, the session lives on', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const es = await s.stream('eventsource');
    await es.waitFrames(1);
    const msg = 'x'.repeat(4096);
    await s.sendOk([msg]);
    await es.waitEnd(5000);
    assert.ok(es.text.endsWith(`data: a["${msg}"]\r\n\r\n`), 'the whole frame, then the end');
    assert.ok(es.complete !== false, 'a clean end of the response');
    await s.sendOk(['next']);
    const es2 = await s.stream('eventsource');
    await es2.waitFrames(1);
    assert.deepEqual(es2.dataFrames().map((f) => f.raw), ['a["next"]']);
  });

  // ------------------------------------------------------------ htmlfile

  it('htmlfile: headers, page padded past 1 KiB calling the callback, script frames', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const hf = await s.ep.stream('GET', s.path('htmlfile') + '?c=%63allback', { kind: 'htmlfile' });
    assert.equal(hf.status, 200);
    assertContentType(hf, 'text/html; charset=UTF-8', 'htmlfile');
    assertNoCache(hf, 'htmlfile');
    assert.equal(hf.headers['x-content-type-options'], 'nosniff', `htmlfile: ${JSON.stringify(hf.headers)}`);
    await hf.waitFrames(1);
    const { prelude, rawArgs } = htmlfileFrames(hf.text);
    assert.ok(prelude.length > 1024, `prelude must be padded past 1 KiB (got ${prelude.length})`);
    assert.match(prelude, /^\s*<!doctype html>/i, prelude.slice(0, 200));
    assert.ok(prelude.includes('parent.callback'), `the page calls parent.<callback> (c=%63allback decoded): ${prelude.slice(0, 700)}`);
    assert.match(prelude, /function p\(/, 'the page defines p()');
    assert.ok(hf.text.endsWith('<script>\np("o");\n</script>\r\n'), JSON.stringify(hf.text.slice(-80)));
    assert.deepEqual(rawArgs, ['"o"']);
    await s.sendOk(['x']);
    await hf.waitFor((x) => x.text.endsWith('<script>\np("a[\\"x\\"]");\n</script>\r\n'), 5000, 'a["x"]');
  });

  it('htmlfile: "</script>" in a message cannot end the script element', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const hf = await s.stream('htmlfile');
    await hf.waitFrames(1);
    const evil = '</script><script>alert(1)</script><!-- x';
    await s.sendOk([evil]);
    await hf.waitFrames(2);
    const { frames, rawArgs } = htmlfileFrames(hf.text);
    assert.deepEqual(messagesOf(frames), [evil]);
    for (const a of rawArgs) {
      assert.doesNotMatch(a, /<\/script|<!--/i, `a frame must not contain "</script" or "<!--" raw: ${a}`);
    }
  });

  it('htmlfile: the response ends after response_limit bytes', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const hf = await s.stream('htmlfile');
    await hf.waitFrames(1);
    const msg = 'x'.repeat(4096);
    await s.sendOk([msg]);
    await hf.waitEnd(5000);
    assert.ok(hf.text.endsWith(`<script>\np("a[\\"${msg}\\"]");\n</script>\r\n`), 'the whole frame, then the end');
  });

  // ------------------------------------------------------------ callbacks

  it('callbacks: missing -> 500 required, invalid or > 32 chars -> 500 invalid; no session', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const n = up.conns.length;
    for (const tr of ['jsonp', 'htmlfile']) {
      const missing = await E().req('GET', `/a/${randomId()}/${tr}`);
      assert.equal(missing.status, 500, show(missing));
      assert.ok(missing.text.includes('"callback" parameter required'), show(missing));
      for (const cb of ['%20', '*', 'abc(', 'abc%28', 'a%22b', 'a;b', 'x'.repeat(33), '%E2%80%A8']) {
        const r = await E().req('GET', `/a/${randomId()}/${tr}?c=${cb}`);
        assert.equal(r.status, 500, `c=${cb}: ${show(r)}`);
        assert.ok(r.text.includes('invalid "callback" parameter'), `c=${cb}: ${show(r)}`);
      }
    }
    assert.equal(up.conns.length, n, 'no session was created by a refused callback');
    const ok = await E().session().jsonp('aZ09_.-' + 'x'.repeat(25));
    assert.equal(ok.status, 200, `a 32-character callback of [a-zA-Z0-9_.-] is valid: ${show(ok)}`);
  });

  // ------------------------------------------------------------ jsonp

  it('jsonp + jsonp_send: framing, headers, ok body', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const r = await E().req('GET', s.path('jsonp') + '?c=%63allback');
    assert.equal(r.status, 200, show(r));
    assertContentType(r, 'application/javascript; charset=UTF-8', 'jsonp');
    assertNoCache(r, 'jsonp');
    assert.equal(r.headers['x-content-type-options'], 'nosniff', show(r));
    assert.equal(r.text, '/**/callback("o");\r\n');
    const sr = await s.jsonpSend('d=%5B%22x%22%5D');
    assert.equal(sr.status, 200, show(sr));
    assert.equal(sr.text, 'ok');
    assertContentType(sr, 'text/plain; charset=UTF-8', 'jsonp_send');
    assertNoCache(sr, 'jsonp_send');
    const r2 = await E().req('GET', s.path('jsonp') + '?callback=cb.x');
    assert.equal(r2.status, 200, show(r2));
    assert.equal(r2.text, '/**/cb.x("a[\\"x\\"]");\r\n', 'the callback= parameter works too');
    const bad = await E().session().jsonpSend('d=%5B%22x%22%5D');
    assert.equal(bad.status, 404, `jsonp_send to an unknown session: ${show(bad)}`);
  });

  it('jsonp_send: form and raw bodies; errors', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    const o = await s.jsonp('x');
    assert.equal(o.text, '/**/x("o");\r\n');
    const c = await conn();
    const broken = await s.jsonpSend('d=%5B%22x');
    assert.equal(broken.status, 500, show(broken));
    assert.ok(broken.text.includes('Broken JSON encoding.'), show(broken));
    for (const body of ['', 'd=', 'p=p', 'd=%7B%7D']) {
      const r = await s.jsonpSend(body);
      assert.equal(r.status, 500, `body ${JSON.stringify(body)}: ${show(r)}`);
      assert.ok(r.text.includes('Payload expected.'), `body ${JSON.stringify(body)}: ${show(r)}`);
    }
    const ok = async (body, ct) => {
      const r = await s.jsonpSend(body, ct);
      assert.equal(r.status, 200, `${JSON.stringify(body)} (${ct}): ${show(r)}`);
      assert.equal(r.text, 'ok');
    };
    await ok('d=%5B%5D');
    await ok('d=%5B%22abc%22%5D');
    await ok('["%61bc"]', 'text/plain');
    await ok('p=1&d=%5B%22a+b%22%2C%22%C3%BC%22%5D&q=2');
    await c.waitMessages(4);
    assert.deepEqual(c.texts(), ['abc', '%61bc', 'a b', 'ü'], 'form bodies are URL-decoded, raw bodies are not');
    const p = await s.jsonp('x');
    const f = parseJsonp(p.text);
    assert.ok(f, show(p));
    const got = messagesOf([f.frame]);
    if (got.length < 4) got.push(...(await s.pollMessages(4 - got.length)).messages);
    assert.deepEqual(got, ['abc', '%61bc', 'a b', 'ü']);
  });

  // ------------------------------------------------------------ OPTIONS, CORS

  it('OPTIONS on every transport: 204, methods, long caching, CORS, echoed request headers; no session', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const n = up.conns.length;
    const table = { xhr: 'OPTIONS, POST', xhr_send: 'OPTIONS, POST', xhr_streaming: 'OPTIONS, POST',
      jsonp_send: 'OPTIONS, POST', eventsource: 'OPTIONS, GET', htmlfile: 'OPTIONS, GET', jsonp: 'OPTIONS, GET' };
    for (const [tr, methods] of Object.entries(table)) {
      const p = `/abc/${randomId()}/${tr}`;
      for (const origin of ['http://a.example', 'null']) {
        const r = await E().req('OPTIONS', p, { headers: { origin, 'access-control-request-method': methods.split(', ')[1] } });
        assert.equal(r.status, 204, `OPTIONS ${tr}: ${show(r)}`);
        assert.equal(r.headers['access-control-allow-methods'], methods, `OPTIONS ${tr}: ${show(r)}`);
        assert.match(r.headers['cache-control'] || '', /public/, `OPTIONS ${tr}: ${show(r)}`);
        assert.match(r.headers['cache-control'] || '', YEAR, `OPTIONS ${tr}: ${show(r)}`);
        assert.ok(r.headers.expires, `OPTIONS ${tr}: Expires: ${show(r)}`);
        assert.ok(Number(r.headers['access-control-max-age']) > 1000000, `OPTIONS ${tr}: Access-Control-Max-Age: ${show(r)}`);
        assert.equal(r.body.length, 0);
        assertCors(r, origin, `OPTIONS ${tr}`);
        assert.equal(r.headers['access-control-allow-headers'], undefined, `OPTIONS ${tr}: no Allow-Headers unless asked`);
      }
      const h = await E().req('OPTIONS', p, { headers: { origin: 'http://a.example', 'access-control-request-headers': 'a, b, c' } });
      assert.equal(h.headers['access-control-allow-headers'], 'a, b, c', `OPTIONS ${tr} echoes Access-Control-Request-Headers: ${show(h)}`);
      const e = await E().req('OPTIONS', p, { headers: { origin: 'http://a.example', 'access-control-request-headers': '' } });
      assert.equal(e.status, 204);
      assert.equal(e.headers['access-control-allow-headers'], undefined, `OPTIONS ${tr} with an empty Access-Control-Request-Headers: ${show(e)}`);
      const none = await E().req('OPTIONS', p);
      assert.equal(none.status, 204, show(none));
      assertCors(none, null, `OPTIONS ${tr} without Origin`);
    }
    assert.equal(up.conns.length, n, 'OPTIONS never creates a session');
  });

  it('CORS: restricted origins -> 403 for others (upstream never contacted), echo for allowed', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const S = () => E('/strict/sockjs');
    const n = up.conns.length;
    const evil = { origin: 'http://evil.example' };
    const good = { origin: 'http://good.example' };
    const sid = randomId();
    const checks = [
      ['GET', '/info'], ['OPTIONS', '/info'], ['POST', `/000/${sid}/xhr`], ['POST', `/000/${sid}/xhr_streaming`],
      ['GET', `/000/${sid}/eventsource`], ['GET', `/000/${sid}/htmlfile?c=cb`], ['GET', `/000/${sid}/jsonp?c=cb`],
      ['OPTIONS', `/000/${sid}/xhr`],
    ];
    for (const [m, p] of checks) {
      const r = await S().req(m, p, { headers: evil, timeoutMs: 4000 });
      assert.equal(r.status, 403, `${m} ${p} from a disallowed Origin: ${show(r)}`);
      assert.notEqual(r.headers['access-control-allow-origin'], 'http://evil.example', show(r));
    }
    assert.equal(up.conns.length, n, 'a disallowed Origin never reaches the upstream');
    const info = await S().req('GET', '/info', { headers: good });
    assert.equal(info.status, 200, show(info));
    assertCors(info, 'http://good.example', 'allowed origin /info');
    const s = S().session();
    const conn = nextConn();
    const o = await s.xhr({ headers: good });
    assert.equal(o.text, 'o\n', show(o));
    assertCors(o, 'http://good.example', 'allowed origin xhr');
    const c = await conn();
    const bad = await s.send(['x'], { headers: evil });
    assert.equal(bad.status, 403, `xhr_send from a disallowed Origin: ${show(bad)}`);
    const badJ = await s.jsonpSend('d=%5B%22x%22%5D', undefined, { headers: evil });
    assert.equal(badJ.status, 403, `jsonp_send from a disallowed Origin: ${show(badJ)}`);
    await s.sendOk(['ok'], { headers: good });
    await s.sendOk(['no-origin']);
    await c.waitMessages(2);
    assert.deepEqual(c.texts(), ['ok', 'no-origin'], 'only allowed sends were forwarded');
    const noOrigin = await S().req('GET', '/info');
    assert.equal(noOrigin.status, 200, `a request without Origin (not a browser) is allowed: ${show(noOrigin)}`);
    // the gateway's own origin (the iframe page's, static_root pages') is
    // always allowed, list or not
    const own = { origin: `http://127.0.0.1:${port}` };
    const oi = await S().req('GET', '/info', { headers: own });
    assert.equal(oi.status, 200, `own origin /info: ${show(oi)}`);
    assertCors(oi, own.origin, 'own origin /info');
    const s2 = S().session();
    const conn2 = nextConn();
    const o2 = await s2.xhr({ headers: own });
    assert.equal(o2.text, 'o\n', `own origin xhr: ${show(o2)}`);
    const c2 = await conn2();
    await s2.sendOk(['same-origin'], { headers: own });
    await c2.waitMessages(1);
    assert.deepEqual(c2.texts(), ['same-origin']);
  });

  // ------------------------------------------------------------ cookies

  it('cookie_needed = on: JSESSIONID=<incoming|dummy>; path=/ on every session request', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const C = E('/cookie/sockjs');
    const s = C.session();
    const r = await s.xhr();
    assert.equal(r.text, 'o\n', show(r));
    assertJsessionid(r, 'dummy', 'xhr');
    const r2 = await C.session().xhr({ headers: { cookie: 'JSESSIONID=abcdef' } });
    assertJsessionid(r2, 'abcdef', 'xhr with a cookie');
    const r3 = await C.session().xhr({ headers: { cookie: 'a=1; JSESSIONID=xyz; b=2' } });
    assertJsessionid(r3, 'xyz', 'xhr with several cookies');
    assertJsessionid(await s.send(['x']), 'dummy', 'xhr_send');
    const xs = await C.session().stream('xhr_streaming');
    assertJsessionid(xs, 'dummy', 'xhr_streaming');
    const es = await C.session().stream('eventsource');
    assertJsessionid(es, 'dummy', 'eventsource');
    const hf = await C.session().stream('htmlfile');
    assertJsessionid(hf, 'dummy', 'htmlfile');
    const js = C.session();
    const j = await js.jsonp('cb', { headers: { cookie: 'JSESSIONID=j1' } });
    assertJsessionid(j, 'j1', 'jsonp');
    const jsend = await js.jsonpSend('d=%5B%22x%22%5D');
    assert.equal(jsend.text, 'ok', show(jsend));
    assertJsessionid(jsend, 'dummy', 'jsonp_send');
    for (const p of ['', '/', '/info', '/iframe.html']) {
      const x = await C.req('GET', p);
      assert.equal(x.headers['set-cookie'], undefined, `no Set-Cookie on GET ${p}: ${show(x)}`);
    }
  });

  // ------------------------------------------------------------ encoding

  it('encoding: the server escapes U+200C-200F, 2028-202F, 2060-206F, FFF0-FFFF and controls as \\uxxxx', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    const special = range(0x200c, 0x200f) + range(0x2028, 0x202f) + range(0x2060, 0x206f) + range(0xfff0, 0xffff);
    await s.sendOk([special]);
    await c.waitMessages(1);
    assert.equal(c.messages[0].data.toString('hex'), Buffer.from(special, 'utf8').toString('hex'), 'upstream gets the UTF-8 bytes');
    const r = await s.xhr();
    assert.equal(r.text, `a["${uEsc(special)}"]\n`, 'every listed character escaped as \\u + 4 lowercase hex digits');

    const ctrl = range(0, 0x1f);
    await s.sendOk([ctrl]);
    await c.waitMessages(2);
    assert.equal(c.messages[1].data.toString('hex'), Buffer.from(ctrl, 'utf8').toString('hex'), 'NUL and controls byte-identical upstream');
    const r2 = await s.xhr();
    assert.match(r2.text, new RegExp(`^a\\["${escRe(ctrl)}"\\]\\n$`), 'U+0000-U+001F escaped as \\u00xx (\\b \\t \\n \\f \\r also accepted)');

    const mixed = 'quote " backslash \\ slash / é ü € 😀 𝄞 \u007f \u2027 \u2030 \uffef \ue000';
    await s.sendOk([mixed]);
    const r3 = await s.xhr();
    const f3 = parseFrame(r3.text.trimEnd());
    assert.deepEqual(f3.messages, [mixed], `round trip: ${r3.text}`);
    assert.equal(c.messages[2].data.toString('hex'), Buffer.from(mixed, 'utf8').toString('hex'));
  });

  it('encoding: \\u escapes sent by the client decode to the right UTF-8, and back', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    // characters sockjs-client escapes on the way out (browsers mangle them)
    const str = '"\\' + range(0, 0x1f) + range(0x7f, 0x9f) + '\u00ad' + range(0x300, 0x333) + range(0x600, 0x604) +
      '\u070f\u17b4\u17b5' + range(0x2000, 0x20ff) + '\ufeff' + range(0xfff0, 0xffff);
    await s.sendOk(`["${uEsc(str)}"]`);
    await c.waitMessages(1);
    assert.equal(c.messages[0].data.toString('hex'), Buffer.from(str, 'utf8').toString('hex'), 'decoded to UTF-8 exactly');
    assert.equal(c.messages[0].binary, false, 'a text message');
    const { messages } = await s.pollMessages(1);
    assert.equal(messages[0], str);
    // a surrogate pair written as escapes
    await s.sendOk('["\\ud83d\\ude00 \\uD834\\uDD1E"]');
    await c.waitMessages(2);
    assert.equal(c.messages[1].data.toString('utf8'), '😀 𝄞');
  });

  it('encoding: upstream text with NUL, CR, LF, U+2028, 4-byte UTF-8 reaches every transport intact', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const payload = 'a\u0000b\r\n\t\u2028\u2029😀𝄞"\\</script>';
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    await c.send(payload);
    assert.deepEqual((await s.pollMessages(1)).messages, [payload], 'xhr');
    const es = await s.stream('eventsource');
    await c.send(payload);
    await es.waitFrames(1);
    assert.deepEqual(messagesOf(es.frames()), [payload], 'eventsource');
    assert.deepEqual(eventsourceFrames(es.text).bad, [], 'every event is one data: line');
    assert.doesNotMatch(es.text, /[\u0000\u2028\u2029]/, 'no raw NUL or U+2028/2029 in the stream');
    es.destroy(); // cut by the browser: that session is over (1002)
    const s2 = E().session();
    const conn2 = nextConn();
    await s2.open();
    const c2 = await conn2();
    await c2.send(payload);
    const j = parseJsonp((await s2.jsonp('cb')).text);
    assert.ok(j, 'jsonp body');
    assert.deepEqual(messagesOf([j.frame]), [payload], 'jsonp');
    assert.doesNotMatch(j.arg, /[\u2028\u2029\u0000]/, 'no raw line separators in a script');
  });

  // ------------------------------------------------------------ close

  it('close: the upstream close code reaches the browser as c[...] on every later request', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const S = E('/close/sockjs');
    const s = S.session();
    assert.equal((await s.xhr()).text, 'o\n');
    for (let i = 0; i < 3; i++) {
      const r = await s.xhr();
      assert.equal(r.text, GO_AWAY + '\n', `close frame, request ${i + 1}: ${show(r)}`);
    }
    const j = await s.jsonp('x');
    assert.equal(j.text, '/**/x("c[3000,\\"Go away!\\"]");\r\n', show(j));
    const es = await s.stream('eventsource');
    await es.waitEnd(5000);
    assert.equal(es.text, `\r\ndata: ${GO_AWAY}\r\n\r\n`, 'eventsource: the close frame, then the end');
  });

  it('close: streaming gets o, c, end; a new stream gets prelude, c, end', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const S = E('/close/sockjs');
    const s = S.session();
    const x1 = await s.stream('xhr_streaming');
    await x1.waitEnd(5000);
    assert.equal(x1.text, PRELUDE_XHR + 'o\n' + GO_AWAY + '\n');
    const x2 = await s.stream('xhr_streaming');
    await x2.waitEnd(5000);
    assert.equal(x2.text, PRELUDE_XHR + GO_AWAY + '\n');
  });

  it('close: xhr_streaming second request gets prelude + c[2010] and ends', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const x1 = await s.stream('xhr_streaming');
    await x1.waitFrames(1);
    const x2 = await s.stream('xhr_streaming');
    await x2.waitEnd(5000);
    assert.equal(x2.text, PRELUDE_XHR + ANOTHER + '\n');
    await s.sendOk(['still']);
    await x1.waitFrames(2);
    assert.deepEqual(x1.dataFrames().map((f) => f.raw), ['o', 'a["still"]'], 'the first stream is unaffected');
  });

  it('close: code and reason from the upstream, after the messages queued before it', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    for (const [code, reason] of [[4001, 'bye "ü" \\ \u2028'], [1000, 'normal'], [3000, '']]) {
      const s = E().session();
      const conn = nextConn();
      await s.open();
      const c = await conn();
      await c.sendAll(['m1', 'm2']);
      await c.closeWith(code, reason);
      const frames = [];
      for (let i = 0; i < 5; i++) {
        const f = await s.nextFrame();
        frames.push(f);
        if (f.type === 'c') break;
      }
      assert.deepEqual(messagesOf(frames), ['m1', 'm2'], `messages before the close: ${JSON.stringify(frames.map((f) => f.raw))}`);
      const cf = frames[frames.length - 1];
      assert.equal(cf.type, 'c', JSON.stringify(frames.map((f) => f.raw)));
      assert.equal(cf.code, code);
      assert.equal(cf.reason, reason);
      assert.equal((await s.xhrFrame()).raw, cf.raw, 'the same close frame again');
    }
  });

  it('close: an upstream vanishing without a close frame ends attached streams with c[...]; clean exit', async (t) => {
    const { E, nextConn } = await setup(t);
    for (const tr of ['xhr_streaming', 'eventsource', 'htmlfile']) {
      const s = E().session();
      const conn = nextConn();
      const x = await s.stream(tr);
      await x.waitFrames(1);
      const c = await conn();
      c.ws.terminate(); // TCP gone, no close frame
      await x.waitEnd(5000);
      const f = x.dataFrames().at(-1);
      assert.equal(f.type, 'c', `${tr}: the stream ends with a close frame: ${JSON.stringify(x.dataFrames().map((y) => y.raw))}`);
      assert.ok(f.code >= 1000 && f.code <= 4999, `${tr}: ${f.raw}`);
      const again = await s.stream('xhr_streaming');
      await again.waitEnd(5000);
      assert.equal(again.text, PRELUDE_XHR + f.raw + '\n', `${tr}: the same close frame on the next request`);
    }
  });

  it('close: unreachable (refused) or refusing (HTTP 403) upstream -> c[1011,"<reason>"]', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    for (const base of ['/refused/sockjs', '/reject/sockjs']) {
      const s = E(base).session();
      const f = await s.xhrFrame();
      assert.equal(f.type, 'c', `${base}: want a close frame, got ${f.raw}`);
      assert.equal(f.code, 1011, `${base}: ${f.raw}`);
      assert.ok(f.reason.length > 0, `${base}: a reason: ${f.raw}`);
      const again = await s.xhrFrame();
      assert.equal(again.raw, f.raw, `${base}: the same close frame on the next request`);
      const xs = await s.stream('xhr_streaming');
      await xs.waitEnd(5000);
      assert.equal(xs.text, PRELUDE_XHR + f.raw + '\n', `${base}: xhr_streaming`);
    }
    assert.ok(upReject.rejected.length >= 1, 'the refusing upstream was asked');
  });

  it('open: "o" is sent once the upstream handshake is done', async (t) => {
    const { E } = await setup(t, { slow: true });
    const S = E('/slow/sockjs');
    const t0 = Date.now();
    const r = await S.session().xhr();
    assert.equal(r.text, 'o\n', show(r));
    assert.ok(Date.now() - t0 >= 450, `xhr answered after ${Date.now() - t0} ms; the upstream answers the handshake after 600 ms`);
    const t1 = Date.now();
    const s = S.session();
    const xs = await s.stream('xhr_streaming');
    await xs.waitFrames(1, 5000);
    assert.ok(Date.now() - t1 >= 450, `o after ${Date.now() - t1} ms; the handshake takes 600 ms`);
    assert.equal(xs.text, PRELUDE_XHR + 'o\n');
    await s.sendOk(['slow']);
    await xs.waitFrames(2);
    assert.deepEqual(messagesOf(xs.frames()), ['slow']);
  });

  // ------------------------------------------------------------ binary

  it('binary = close: a binary upstream message closes the session with c[1003,...]', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    await c.send('before');
    assert.deepEqual((await s.pollMessages(1)).messages, ['before']);
    await c.send(Buffer.from([0, 1, 2, 0xff]), true);
    const f = await s.nextFrame();
    assert.equal(f.type, 'c', f.raw);
    assert.equal(f.code, 1003, f.raw);
    assert.equal((await s.xhrFrame()).raw, f.raw, 'the same close frame again');
    await c.waitClose(5000);
  });

  it('binary = base64: a binary upstream message arrives as base64 text', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E('/b64/sockjs').session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    assert.equal(c.url, '/b64');
    await c.send(Buffer.from([0, 1, 2, 0xff]), true);
    await c.send('text');
    const { messages } = await s.pollMessages(2);
    assert.deepEqual(messages, ['AAEC/w==', 'text']);
  });

  it('binary = drop: a binary upstream message is dropped, the session goes on', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E('/drop/sockjs').session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    await c.send(Buffer.from([0, 1, 2, 0xff]), true);
    await c.send('after');
    const { messages } = await s.pollMessages(1);
    assert.deepEqual(messages, ['after']);
    assert.equal(c.close, null);
  });

  // ------------------------------------------------------------ large

  it('large: a 100 KB message both ways, on xhr and on xhr_streaming (then the limit ends it)', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const big = Array.from({ length: 100 * 1024 }, (_, i) => String.fromCharCode(0x61 + (i % 26))).join('') + 'ü😀';
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const c = await conn();
    await s.sendOk([big]);
    await c.waitMessages(1);
    assert.equal(c.messages[0].data.length, Buffer.byteLength(big));
    assert.ok(c.messages[0].data.equals(Buffer.from(big)));
    assert.deepEqual((await s.pollMessages(1)).messages, [big]);
    const xs = await s.stream('xhr_streaming');
    await s.sendOk([big, 'small']);
    await xs.waitEnd(8000);
    const onStream = messagesOf(xs.frames());
    assert.equal(onStream[0], big, 'the whole 100 KB frame, then the end (over response_limit)');
    const rest = onStream.length < 2 ? (await s.pollMessages(1)).messages : onStream.slice(1);
    assert.deepEqual(rest, ['small'], 'nothing lost');
  });

  // ------------------------------------------------------------ lifetime

  it('lifetime: a session is reaped disconnect_delay (1 s) after its last receiving request', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    await s.open();
    const t0 = Date.now();
    const c = await conn();
    await c.waitClose(6000);
    const dt = Date.now() - t0;
    assert.ok(dt >= 800 && dt <= 3500, `upstream closed ${dt} ms after the last receiving request (disconnect_delay = 1 s)`);
    const r = await s.send(['x']);
    assert.equal(r.status, 404, `xhr_send after reaping: ${show(r)}`);
    const conn2 = nextConn();
    await s.open();
    await conn2();
  });

  it('lifetime: an attached streaming request keeps the session past disconnect_delay', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const s = E().session();
    const conn = nextConn();
    const es = await s.stream('eventsource');
    await es.waitFrames(1);
    const c = await conn();
    // nothing to await: the session must simply still be there after 1.6 s
    const closed = await withTimeout(c.closed, 1600, 'x').then(() => true, () => false);
    assert.equal(closed, false, 'the upstream must stay open while a receiving request is attached');
    await s.sendOk(['alive']);
    await es.waitFrames(2);
    assert.deepEqual(messagesOf(es.frames()), ['alive']);
  });

  it('lifetime: a closed session answers its close frame until reaped, then a new one opens', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const S = E('/close/sockjs');
    const s = S.session();
    assert.equal((await s.xhr()).text, 'o\n');
    assert.equal((await s.xhr()).text, GO_AWAY + '\n');
    // nothing observable marks the reaping: wait past disconnect_delay (1 s)
    await sleep(1700);
    const r = await s.xhr();
    assert.equal(r.text, 'o\n', `after disconnect_delay the id starts a new session: ${show(r)}`);
  });

  // ------------------------------------------------------------ HTTP/1.0, 1.1

  it('HTTP/1.0: greeting without chunking', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const r = await rawHttp(t, port, 'GET /echo/sockjs HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n', {
      until: (x) => rawBody(x) !== null && x.head.headers['content-length'] !== undefined,
    });
    assert.ok(r.head && !r.head.bad, `a response head: ${JSON.stringify(r.raw.toString('latin1').slice(0, 300))}`);
    assert.equal(r.head.status, 200);
    assert.equal(r.head.headers['transfer-encoding'], undefined, 'no Transfer-Encoding on HTTP/1.0');
    if (r.head.headers['content-length'] !== undefined) {
      assert.equal(Number(r.head.headers['content-length']), 19);
      assert.equal(r.body.subarray(0, 19).toString(), GREETING);
    } else {
      assert.ok(r.closed, 'without Content-Length the end is the connection close');
      assert.equal(r.body.toString(), GREETING);
    }
  });

  it('HTTP/1.1: keep-alive greeting twice on one connection', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const req = 'GET /echo/sockjs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const r = await rawHttp(t, port, req, { keepOpen: true, until: (x) => rawBody(x) !== null });
    assert.equal(r.head.status, 200);
    assert.equal(rawBody(r).toString(), GREETING);
    assert.ok(!r.closed, 'the connection stays open');
    const consumed = r.raw.length;
    r.socket.write(req);
    const more = await rawReadMore(r.socket, Buffer.alloc(0), {
      until: (b) => { const h = parseHead(b); return h && rawBody({ head: h, body: b.subarray(h.headLength), closed: false }) !== null; },
    });
    r.socket.destroy();
    const h2 = parseHead(more.raw);
    assert.ok(h2 && h2.status === 200, `second response on the same connection (first was ${consumed} bytes): ${more.raw.toString('latin1').slice(0, 200)}`);
  });

  it('HTTP/1.0: xhr_streaming has neither Content-Length nor chunking and ends with the connection', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const sid = randomId();
    const r = await rawHttp(t, port, `POST /close/sockjs/000/${sid}/xhr_streaming HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n`, { ms: 5000 });
    assert.ok(r.head && r.head.status === 200, r.raw.toString('latin1').slice(0, 300));
    const head = JSON.stringify(r.raw.subarray(0, r.head.headLength).toString('latin1'));
    assert.equal(r.head.headers['transfer-encoding'], undefined, `no Transfer-Encoding on HTTP/1.0: ${head}`);
    assert.equal(r.head.headers['content-length'], undefined, `no Content-Length on a stream: ${head}`);
    assert.equal(r.body.toString(), PRELUDE_XHR + 'o\n' + GO_AWAY + '\n');
    assert.ok(!r.timedOut, `the connection must be closed after the close frame (the end of an HTTP/1.0 stream): ${head}`);
  });

  it('HTTP/1.1: xhr_streaming is chunked and ends with the last chunk', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    const sid = randomId();
    const r = await rawHttp(t, port, `POST /close/sockjs/000/${sid}/xhr_streaming HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n`, {
      ms: 5000, until: (x) => x.head && dechunk(x.body).complete,
    });
    assert.ok(r.head && r.head.status === 200, r.raw.toString('latin1').slice(0, 300));
    assert.equal((r.head.headers['transfer-encoding'] || '').toLowerCase(), 'chunked');
    assert.equal(r.head.headers['content-length'], undefined);
    const d = dechunk(r.body);
    assert.ok(d.complete, `the terminating chunk: ${d.error || ''} ${JSON.stringify(r.body.toString('latin1').slice(-100))}`);
    assert.equal(Buffer.concat(d.chunks).toString(), PRELUDE_XHR + 'o\n' + GO_AWAY + '\n');
  });

  it('HTTP/1.0 and 1.1: POST xhr without Content-Length', async (t) => {
    const { up, upClose, upReject, gw, port, E, nextConn } = await setup(t);
    for (const v of ['1.0', '1.1']) {
      const sid = randomId();
      const r = await rawHttp(t, port, `POST /echo/sockjs/000/${sid}/xhr HTTP/${v}\r\nHost: 127.0.0.1\r\n\r\n`, {
        ms: 5000, until: (x) => rawBody(x) !== null,
      });
      assert.ok(r.head && r.head.status === 200, `HTTP/${v}: ${r.raw.toString('latin1').slice(0, 300)}`);
      assert.equal(rawBody(r)?.toString(), 'o\n', `HTTP/${v}`);
      if (v === '1.0') assert.equal(r.head.headers['transfer-encoding'], undefined);
    }
  });


  it('SIGTERM with attached receiving requests: they end, the gateway exits cleanly', async (t) => {
    const { gw, E } = await setup(t);
    const s1 = E().session();
    await s1.open();
    const held = s1.xhr({ timeoutMs: 8000 }).then((r) => r, (e) => e);
    const xs = await E().session().stream('xhr_streaming');
    const es = await E().session().stream('eventsource');
    const hf = await E().session().stream('htmlfile');
    await Promise.all([xs.waitFrames(1), es.waitFrames(1), hf.waitFrames(1)]);
    await sleep(100); // the poll is attached by now (nothing observable marks it)
    await gw.stop(); // asserts exit 0 and no sanitizer report
    await Promise.all([xs.waitEnd(3000), es.waitEnd(3000), hf.waitEnd(3000)]);
    const h = await withTimeout(held, 3000, 'the held poll ends');
    if (!(h instanceof Error)) {
      assert.equal(h.status, 200, show(h));
      assert.match(h.text, /^(c\[\d+,".*"\]|h)\n$/, `a held poll at stop: a close frame (or heartbeat): ${show(h)}`);
    }
  });
});

// Its own suite (and time budget): the script transports' origin rule,
// which is pollgate's, not the SockJS protocol's.
describe('sockjs script transports and origins', { concurrency: 2, timeout: 120000 }, () => {
  // The script transports (jsonp, jsonp_send, htmlfile) are <script>,
  // <iframe> and <form> requests without Origin: on a route whose origins
  // are not "*" the page must be named by an allowed Referer instead.
  it('script transports on a restricted route: Referer checked like Origin, absent = 403, upstream never contacted', async (t) => {
    const { up, gw, port, E, nextConn } = await setup(t);
    const S = () => E('/strict/sockjs');
    const n = up.conns.length;
    const refused = [
      [{}, 'no Origin and no Referer'],
      [{ referer: 'http://evil.example/page.html' }, 'a Referer from another origin'],
      [{ referer: 'http://good.example.evil.example/' }, 'a Referer whose host only starts like an allowed one'],
      [{ referer: 'http://good.example@evil.example/' }, 'a Referer with userinfo'],
      [{ referer: 'https://good.example/' }, 'a Referer of the allowed host on another scheme'],
      [{ referer: 'javascript:alert(1)' }, 'a Referer that is not an http(s) URL'],
      [{ referer: 'about:blank' }, 'about:blank'],
    ];
    for (const [headers, what] of refused) {
      const s = S().session();
      for (const [m, p] of [['GET', s.path('jsonp') + '?c=cb'], ['GET', s.path('htmlfile') + '?c=cb']]) {
        const r = await S().req(m, p, { headers, timeoutMs: 4000 });
        assert.equal(r.status, 403, `${p} with ${what}: ${show(r)}`);
        assert.match(r.text, /Referer not allowed/, show(r));
      }
    }
    assert.equal(up.conns.length, n, 'a refused script transport never reaches the upstream');
    assert.match(gw.stderr(), /SockJS script transport refused on route strict: no Origin or Referer/);
    assert.match(gw.stderr(), /SockJS script transport refused on route strict: Referer origin not allowed: http:\/\/evil\.example/);
    assert.doesNotMatch(gw.stderr(), /page\.html/, 'the log carries the origin only, not the page URL');

    // an allowed Referer (full page URL, query and fragment) opens the session
    const good = { referer: 'http://good.example/app/chat.html?room=1#top' };
    const s = S().session();
    const conn = nextConn();
    const o = await s.jsonp('cb', { headers: good, timeoutMs: 8000 });
    assert.equal(o.status, 200, show(o));
    assert.equal(o.text, '/**/cb("o");\r\n', show(o));
    const c = await conn();
    // jsonp_send: the same rule (an allowed Origin alone is enough)
    for (const [headers, what] of [[{}, 'no Origin or Referer'], [{ referer: 'http://evil.example/' }, 'another origin']]) {
      const r = await s.jsonpSend('d=%5B%22x%22%5D', undefined, { headers });
      assert.equal(r.status, 403, `jsonp_send with ${what}: ${show(r)}`);
    }
    const ok1 = await s.jsonpSend('d=%5B%22by-referer%22%5D', undefined, { headers: good });
    assert.equal(ok1.status, 200, show(ok1));
    assert.equal(ok1.text, 'ok', show(ok1));
    const ok2 = await s.jsonpSend('d=%5B%22by-origin%22%5D', undefined, { headers: { origin: 'http://good.example' } });
    assert.equal(ok2.status, 200, show(ok2));
    await c.waitMessages(2);
    assert.deepEqual(c.texts(), ['by-referer', 'by-origin'], 'only the allowed sends were forwarded');

    // htmlfile with an allowed Referer streams; the gateway's own pages
    // (the iframe page's origin) are always allowed
    const own = { referer: `http://127.0.0.1:${port}/strict/sockjs/iframe.html` };
    const conn2 = nextConn();
    const hf = await S().session().stream('htmlfile', { headers: own });
    assert.equal(hf.status, 200, show(hf));
    await conn2();
    hf.destroy();

    // the other transports are unchanged: xhr without Origin or Referer still works
    const x = S().session();
    const conn3 = nextConn();
    await x.open();
    await conn3();
  });

  it('script transports: origins empty = same origin only by Referer; origins * = no check; sockjs_jsonp = off -> 404', async (t) => {
    const { up, gw, port, E, nextConn } = await setup(t, { scriptRoutes: true });
    const Same = () => E('/same/sockjs');
    const n = up.conns.length;
    for (const headers of [{}, { referer: 'http://other.example/' }]) {
      const r = await Same().session().jsonp('cb', { headers, timeoutMs: 4000 });
      assert.equal(r.status, 403, `same-origin route, ${JSON.stringify(headers)}: ${show(r)}`);
    }
    assert.equal(up.conns.length, n);
    const conn = nextConn();
    const r = await Same().session().jsonp('cb', { headers: { referer: `http://127.0.0.1:${port}/index.html` }, timeoutMs: 8000 });
    assert.equal(r.status, 200, `same-origin Referer: ${show(r)}`);
    await conn();

    // origins = *: any page, as the SockJS reference server
    const conn2 = nextConn();
    const any = await E().session().jsonp('cb', { timeoutMs: 8000 });
    assert.equal(any.status, 200, `origins = *, no Referer: ${show(any)}`);
    assert.equal(any.text, '/**/cb("o");\r\n', show(any));
    await conn2();

    // sockjs_jsonp = off: the script transports do not exist, the others do
    const No = () => E('/noscript/sockjs');
    const m = up.conns.length;
    const s = No().session();
    const good = { referer: 'http://good.example/', origin: 'http://good.example' };
    for (const [meth, p] of [['GET', s.path('jsonp') + '?c=cb'], ['GET', s.path('htmlfile') + '?c=cb'], ['POST', s.path('jsonp_send')]]) {
      const r2 = await No().req(meth, p, { headers: good, timeoutMs: 4000 });
      assert.equal(r2.status, 404, `sockjs_jsonp = off: ${meth} ${p}: ${show(r2)}`);
    }
    assert.equal(up.conns.length, m, 'sockjs_jsonp = off: nothing reached the upstream');
    const conn3 = nextConn();
    await s.open({ headers: { origin: 'http://good.example' } });
    await conn3();
  });
});

describe('sockjs conformance: heartbeats', { concurrency: 2, timeout: 60000 }, () => {
  const hb = async (t) => {
    orderlyTeardown(t);
    const up = await startEchoUpstream(t);
    const gw = await startSockjsGateway(t, {
      session: { heartbeat: '1s', poll_timeout: '25s' },
      routes: [sockjsRoute('echo', '/echo', up, { extra: { disconnect_delay: '5s' } })],
      ups: [up],
    });
    return gw.sockjs('/echo/sockjs', t);
  };

  for (const tr of ['eventsource', 'xhr_streaming']) {
    it(`${tr}: an h frame every heartbeat (1 s) while idle`, async (t) => {
      const ep = await hb(t);
      const s = ep.session();
      const x = await s.stream(tr);
      await x.waitFrames(1);
      const beats = (y) => y.frames().filter((f) => f.type === 'h').length;
      const t0 = Date.now();
      await x.waitFor((y) => beats(y) >= 1, 3000, `${tr}: first heartbeat`);
      const t1 = Date.now();
      await x.waitFor((y) => beats(y) >= 2, 3000, `${tr}: second heartbeat`);
      const t2 = Date.now();
      assert.ok(t1 - t0 >= 600 && t2 - t1 >= 600, `${tr}: heartbeats after ${t1 - t0} ms and ${t2 - t1} ms (heartbeat = 1 s)`);
      const open = tr === 'eventsource' ? 'data: o\r\n\r\n' : 'o\n';
      const beat = tr === 'eventsource' ? 'data: h\r\n\r\n' : 'h\n';
      assert.ok(x.text.endsWith(open + beat + beat), `${tr}: heartbeat framing: ${JSON.stringify(x.text.slice(-40))}`);
      await s.sendOk(['x']);
      await x.waitFor((y) => messagesOf(y.frames()).length === 1, 3000, 'a message between heartbeats');
    });
  }

  it('xhr: a held poll is answered with h after a heartbeat', async (t) => {
    const s = (await hb(t)).session();
    await s.open();
    const t0 = Date.now();
    const r = await s.xhr({ timeoutMs: 5000 });
    assert.equal(r.text, 'h\n', show(r));
    const dt = Date.now() - t0;
    assert.ok(dt >= 600 && dt < 3000, `answered after ${dt} ms (heartbeat = 1 s)`);
  });
});

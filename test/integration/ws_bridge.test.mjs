// ws_bridge.test.mjs - WebSocket browsers through pollgate (transport_ws):
// npm `ws` as the browser against GET <path>/ws and <sockjs_path>/websocket
// (raw relay) and <sockjs_path>/<server>/<session>/websocket (SockJS
// framing), in front of a real npm `ws` upstream: text and binary, 1 MiB
// messages, fragmentation, ping, close codes both ways, subprotocols,
// upstream refusing (502) or silent (504), origin refused (403), the
// reference's upgrade errors, websocket = off, back-pressure both ways, and
// sockjs-client choosing its websocket transport.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import SockJS from 'sockjs-client';

import {
  bridge, startUpstream, startSilent, startGateway, request, show, waitUntil,
} from './bridge_lib.mjs';
import { sleep, withTimeout, deferred, patternBytes } from './lib.mjs';

const SOCKJS = { sockjs: 'on' };

/** A browser: npm ws client with a message log and close promise. */
function browser(t, url, { protocols, headers, origin, ...opts } = {}) {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false, headers, origin, maxPayload: 64 * 1024 * 1024, ...opts });
  const b = {
    ws,
    messages: [],
    _waiters: [],
    close: null,
    unexpected: null,
    opened: new Promise((resolve, reject) => {
      ws.on('open', resolve);
      ws.on('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          b.unexpected = { status: res.statusCode, headers: res.headers, body };
          reject(Object.assign(new Error(`upgrade answered ${res.statusCode}: ${body}`), b.unexpected));
        });
      });
      ws.on('error', (e) => reject(e));
    }),
  };
  b.opened.catch(() => {});
  b.closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      b.close = { code, reason: reason.toString('utf8') };
      resolve(b.close);
      b._wake();
    });
  });
  ws.on('message', (data, isBinary) => {
    b.messages.push({ data: Buffer.from(data), binary: isBinary });
    b._wake();
  });
  b._wake = () => {
    for (const w of b._waiters.slice()) {
      if (b.messages.length >= w.n || b.close) {
        b._waiters.splice(b._waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  b.texts = () => b.messages.map((m) => m.data.toString('utf8'));
  b.waitMessages = (n, ms = 10000) => {
    if (b.messages.length >= n) return Promise.resolve(b.messages);
    const d = deferred();
    b._waiters.push({ n, resolve: d.resolve });
    return withTimeout(d.promise, ms, `browser: ${n} messages (have ${b.messages.length})`).then(() => {
      assert.ok(b.messages.length >= n, `browser closed ${JSON.stringify(b.close)} after ${b.messages.length} of ${n} messages`);
      return b.messages;
    });
  };
  b.waitClose = (ms = 10000) => withTimeout(b.closed, ms, 'browser close');
  t.after(() => { if (ws.readyState < 2) ws.terminate(); });
  return b;
}

function wsUrl(gw, path) { return gw.url(path).replace(/^http/, 'ws'); }

async function stats(gw) {
  const r = await request(gw.adminUrl('/stats'));
  assert.equal(r.status, 200, show(r));
  return r.json;
}

// ------------------------------------------------------------------ raw

describe('raw WebSocket relay: GET <path>/ws and <sockjs_path>/websocket', () => {
  for (const path of ['/chat/ws', '/chat/sockjs/websocket']) {
    it(`${path}: text and binary both ways, 101 after the upstream opened`, async (t) => {
      const { up, gw } = await bridge(t, { route: { extra: SOCKJS } });
      const b = browser(t, wsUrl(gw, path));
      await b.opened;
      const c = await up.conn(0);
      assert.equal(b.unexpected, null);
      b.ws.send('hello');
      b.ws.send(Buffer.from([0, 1, 2, 255]));
      await c.waitMessages(2);
      assert.deepEqual(c.messages[0], { data: Buffer.from('hello'), binary: false });
      assert.deepEqual(c.messages[1], { data: Buffer.from([0, 1, 2, 255]), binary: true });
      await c.send('héllo ✓');
      await c.send(Buffer.from([9, 8, 7]), true);
      await b.waitMessages(2);
      assert.equal(b.messages[0].data.toString('utf8'), 'héllo ✓');
      assert.equal(b.messages[0].binary, false);
      assert.deepEqual(b.messages[1], { data: Buffer.from([9, 8, 7]), binary: true });
      const st = await stats(gw);
      assert.equal(st.sessions, 1, JSON.stringify(st));
      assert.ok(st.messages_to_upstream >= 2 && st.messages_to_browser >= 2, JSON.stringify(st));
    });
  }

  it('1 MiB messages both ways, fragmented browser messages, ping', async (t) => {
    const { up, gw } = await bridge(t, { upstream: { max_message: '2MiB' }, session: { buffer_bytes: '4MiB', send_buffer_bytes: '4MiB' } });
    const b = browser(t, wsUrl(gw, '/chat/ws'));
    await b.opened;
    const c = await up.conn(0);
    const big = patternBytes(1024 * 1024, 7);
    b.ws.send(big, { binary: true });
    const text = 'x'.repeat(1024 * 1024 - 3) + 'end';
    b.ws.send(text);
    // one message in three fragments
    b.ws.send('frag-', { fin: false });
    b.ws.send('men-', { fin: false });
    b.ws.send('ted', { fin: true });
    await c.waitMessages(3, 20000);
    assert.ok(c.messages[0].binary && c.messages[0].data.equals(big), 'binary 1 MiB intact');
    assert.equal(c.messages[1].data.toString('utf8'), text);
    assert.equal(c.messages[2].data.toString('utf8'), 'frag-men-ted');
    await c.send(big, true);
    await c.send(text);
    await b.waitMessages(2, 20000);
    assert.ok(b.messages[0].binary && b.messages[0].data.equals(big));
    assert.equal(b.messages[1].data.toString('utf8'), text);
    const pong = new Promise((resolve) => b.ws.once('pong', resolve));
    b.ws.ping(Buffer.from('are you there'));
    const data = await withTimeout(pong, 5000, 'pong');
    assert.equal(data.toString(), 'are you there');
  });

  it('close code and reason pass through both ways', async (t) => {
    const { up, gw } = await bridge(t);
    // upstream closes
    const b1 = browser(t, wsUrl(gw, '/chat/ws'));
    await b1.opened;
    const c1 = await up.conn(0);
    await c1.send('last words');
    c1.closeWith(4321, 'upstream says bye');
    const cl = await b1.waitClose();
    assert.deepEqual(b1.texts(), ['last words'], 'queued messages before the close');
    assert.deepEqual(cl, { code: 4321, reason: 'upstream says bye' });
    // browser closes
    const b2 = browser(t, wsUrl(gw, '/chat/ws'));
    await b2.opened;
    const c2 = await up.conn(1);
    b2.ws.close(4100, 'browser says bye');
    assert.deepEqual(await c2.waitClose(), { code: 4100, reason: 'browser says bye' });
    await b2.waitClose();
    // browser drops the TCP connection: 1001 upstream
    const b3 = browser(t, wsUrl(gw, '/chat/ws'));
    await b3.opened;
    const c3 = await up.conn(2);
    b3.ws.terminate();
    const c3close = await c3.waitClose();
    assert.equal(c3close.code, 1001, JSON.stringify(c3close));
    await waitUntil(async () => (await stats(gw)).sessions === 0, 5000, 'sessions back to 0');
  });

  it('subprotocols offered by the browser go upstream; the chosen one is answered', async (t) => {
    const { up, gw } = await bridge(t, { up: { protocol: (set) => (set.has('v2') ? 'v2' : false) } });
    const b = browser(t, wsUrl(gw, '/chat/ws'), { protocols: ['v1', 'v2'] });
    await b.opened;
    const c = await up.conn(0);
    assert.match(c.headers['sec-websocket-protocol'], /^v1, ?v2$/);
    assert.equal(b.ws.protocol, 'v2');
    // the upstream picks none of them: the 101 names none either (npm ws,
    // strict, then refuses the connection itself)
    const b2 = browser(t, wsUrl(gw, '/chat/ws'), { protocols: ['v1'] });
    const e = await b2.opened.then(() => null, (x) => x);
    assert.match(String(e), /no subprotocol/);
    const c2 = await up.conn(1);
    assert.equal(c2.headers['sec-websocket-protocol'], 'v1');
    // none offered: none asked upstream
    const b3 = browser(t, wsUrl(gw, '/chat/ws'));
    await b3.opened;
    const c3 = await up.conn(2);
    assert.equal(c3.headers['sec-websocket-protocol'], undefined);
    assert.equal(b3.ws.protocol, '');
  });

  it('forwarded headers reach the upstream handshake', async (t) => {
    const { up, gw } = await bridge(t);
    const b = browser(t, wsUrl(gw, '/chat/ws'), { headers: { Cookie: 'sid=42', Authorization: 'Bearer x' } });
    await b.opened;
    const c = await up.conn(0);
    assert.equal(c.headers.cookie, 'sid=42');
    assert.equal(c.headers.authorization, 'Bearer x');
  });

  it('upstream refusing: 502; upstream silent: 504; no 101 either way', async (t) => {
    const { gw } = await bridge(t, { up: { reject: () => 403 } });
    const b = browser(t, wsUrl(gw, '/chat/ws'));
    const e = await b.opened.then(() => null, (x) => x);
    assert.ok(e && b.unexpected, `want an HTTP answer, got ${e}`);
    assert.equal(b.unexpected.status, 502, JSON.stringify(b.unexpected));
    assert.equal(JSON.parse(b.unexpected.body).error, 'upstream_refused');

    const silent = await startSilent(t);
    const gw2 = await startGateway(t, { upstream: { connect_timeout: '1s' }, routes: [{ path: '/chat', upstream: silent.url() }] });
    const b2 = browser(t, wsUrl(gw2, '/chat/ws'));
    const e2 = await b2.opened.then(() => null, (x) => x);
    assert.ok(e2 && b2.unexpected, `want an HTTP answer, got ${e2}`);
    assert.equal(b2.unexpected.status, 504, JSON.stringify(b2.unexpected));
  });

  it('origin refused: 403 and no upstream connection', async (t) => {
    const { up, gw } = await bridge(t, { route: { origins: 'http://good.example', extra: SOCKJS } });
    for (const path of ['/chat/ws', '/chat/sockjs/websocket', '/chat/sockjs/1/abc/websocket']) {
      const b = browser(t, wsUrl(gw, path), { origin: 'http://evil.example' });
      await b.opened.then(() => null, () => null);
      assert.equal(b.unexpected?.status, 403, `${path}: ${JSON.stringify(b.unexpected)}`);
    }
    const ok = browser(t, wsUrl(gw, '/chat/ws'), { origin: 'http://good.example' });
    await ok.opened;
    await up.conn(0);
    assert.equal(up.conns.length, 1);
  });

  it('the reference\'s upgrade errors: 400 Upgrade, 400 Connection, 405 Allow: GET', async (t) => {
    const { up, gw } = await bridge(t, { route: { extra: SOCKJS } });
    for (const path of ['/chat/ws', '/chat/sockjs/websocket', '/chat/sockjs/a/b/websocket']) {
      const r1 = await request(gw.url(path));
      assert.equal(r1.status, 400, show(r1));
      assert.equal(r1.text, 'Can "Upgrade" only to "WebSocket".');
      const r2 = await request(gw.url(path), { headers: { Upgrade: 'websocket', Connection: 'close' } });
      assert.equal(r2.status, 400, show(r2));
      assert.equal(r2.text, '"Connection" must be "Upgrade".');
      const r3 = await request(gw.url(path), { method: 'POST', body: 'x' });
      assert.equal(r3.status, 405, show(r3));
      assert.equal(r3.headers.allow, 'GET');
    }
    assert.equal(up.upgradeCount, 0, 'no upstream connection for a bad upgrade');
  });

  it('websocket = off: 404 on every WebSocket URL, /info says false', async (t) => {
    const { gw } = await bridge(t, { route: { extra: { ...SOCKJS, websocket: 'off' } } });
    for (const path of ['/chat/ws', '/chat/sockjs/websocket', '/chat/sockjs/a/b/websocket']) {
      const b = browser(t, wsUrl(gw, path));
      await b.opened.then(() => null, () => null);
      assert.equal(b.unexpected?.status, 404, `${path}: ${JSON.stringify(b.unexpected)}`);
    }
    const info = await request(gw.url('/chat/sockjs/info'));
    assert.equal(info.json.websocket, false);
    const { gw: gw2 } = await bridge(t, { route: { extra: SOCKJS } });
    const info2 = await request(gw2.url('/chat/sockjs/info'));
    assert.equal(info2.json.websocket, true);
  });
});

// ---------------------------------------------------------- back-pressure

describe('back-pressure', () => {
  it('a browser that never reads pauses its upstream; all arrives in order after', async (t) => {
    const { up, gw } = await bridge(t, { session: { buffer_bytes: '256KiB', buffer_messages: '100000' } });
    const b = browser(t, wsUrl(gw, '/chat/ws'));
    await b.opened;
    const c = await up.conn(0);
    b.ws._socket.pause(); // the browser stops reading
    const chunk = 'y'.repeat(16 * 1024);
    const N = 2000; // 32 MiB: far beyond every buffer on the way
    let sent = 0;
    const sending = (async () => {
      for (; sent < N; sent++) {
        if (c.ws.readyState !== 1) break;
        c.ws.send(`${sent}:${chunk}`);
        if (c.ws.bufferedAmount > 8 * 1024 * 1024) await sleep(20);
      }
    })();
    await waitUntil(async () => (await stats(gw)).paused >= 1, 20000, 'the upstream paused');
    // the upstream's own socket stops being read: its send buffer grows
    await waitUntil(() => c.ws.bufferedAmount > 2 * 1024 * 1024, 20000, 'upstream writes back up');
    const st = await stats(gw);
    assert.ok(st.buffered_bytes <= 256 * 1024 + 16 * 1024 + 64, `queue within buffer_bytes: ${JSON.stringify(st)}`);
    b.ws._socket.resume();
    await sending;
    await b.waitMessages(N, 60000);
    for (let i = 0; i < N; i++) assert.ok(b.messages[i].data.toString().startsWith(`${i}:`), `message ${i} in order`);
  });

  it('an upstream that never reads pauses the browser; all arrives in order after', async (t) => {
    const { up, gw } = await bridge(t, { session: { send_buffer_bytes: '64KiB' } });
    const b = browser(t, wsUrl(gw, '/chat/ws'));
    await b.opened;
    const c = await up.conn(0);
    c.pause(); // the upstream stops reading
    const chunk = 'z'.repeat(16 * 1024);
    const N = 2000;
    for (let i = 0; i < N; i++) b.ws.send(`${i}:${chunk}`);
    // pollgate stops reading the browser: the browser's buffer stays full
    await sleep(1500);
    const stuck = b.ws.bufferedAmount;
    assert.ok(stuck > 8 * 1024 * 1024, `the browser's writes back up (bufferedAmount ${stuck})`);
    await sleep(500);
    assert.ok(b.ws.bufferedAmount > 8 * 1024 * 1024, 'still backed up');
    c.resume();
    await c.waitMessages(N, 60000);
    for (let i = 0; i < N; i++) assert.ok(c.messages[i].data.toString().startsWith(`${i}:`), `message ${i} in order`);
  });
});

// ------------------------------------------------------------------ SockJS

function sjsMessages(b) {
  const out = [];
  for (const f of b.texts()) if (f[0] === 'a') out.push(...JSON.parse(f.slice(1)));
  return out;
}

describe('SockJS websocket transport', () => {
  it('o after the upstream opened, a[...] both ways, c[code,reason] then close', async (t) => {
    const { up, gw } = await bridge(t, { up: { handshakeDelayMs: 300 }, route: { extra: SOCKJS } });
    const b = browser(t, wsUrl(gw, '/chat/sockjs/000/abc/websocket'));
    await b.opened;
    await sleep(100);
    assert.deepEqual(b.texts(), [], 'no o before the upstream handshake');
    await b.waitMessages(1);
    assert.equal(b.texts()[0], 'o');
    const c = await up.conn(0);
    b.ws.send('["a","b\\u0000c"]');
    b.ws.send('"single"');
    b.ws.send('');
    b.ws.send('[]');
    await c.waitMessages(3);
    await sleep(200);
    assert.deepEqual(c.texts(), ['a', 'b\u0000c', 'single']);
    await c.send('x"y\u2028');
    await waitUntil(() => sjsMessages(b).length >= 1, 5000, 'a frame');
    assert.deepEqual(sjsMessages(b), ['x"y\u2028']);
    assert.ok(b.texts().includes('a["x\\"y\\u2028"]'), `SockJS escaping: ${b.texts()}`);
    c.closeWith(3000, 'Go away!');
    await b.waitClose();
    assert.equal(b.texts().at(-1), 'c[3000,"Go away!"]');
  });

  it('h heartbeats; bad JSON closes without forwarding anything', async (t) => {
    const { up, gw } = await bridge(t, { session: { heartbeat: '1s' }, route: { extra: SOCKJS } });
    const b = browser(t, wsUrl(gw, '/chat/sockjs/000/hb/websocket'));
    await b.waitMessages(1);
    const c = await up.conn(0);
    await waitUntil(() => b.texts().includes('h'), 5000, 'h frame');
    b.ws.send('["ok"');
    b.ws.send('["never"]');
    await b.waitClose();
    const cl = await c.waitClose();
    await sleep(100);
    assert.deepEqual(c.texts(), [], 'nothing forwarded from or after the broken frame');
    assert.ok(cl.code === 1000 || cl.code === 1001, JSON.stringify(cl));
  });

  it('the same session URL twice: two sessions, two upstreams, neither disturbs the other', async (t) => {
    const { up, gw } = await bridge(t, { route: { extra: SOCKJS } });
    const url = wsUrl(gw, '/chat/sockjs/000/same/websocket');
    const b1 = browser(t, url);
    await b1.waitMessages(1);
    const b2 = browser(t, url);
    await b2.waitMessages(1);
    assert.equal(b1.texts()[0], 'o');
    assert.equal(b2.texts()[0], 'o');
    const c1 = await up.conn(0);
    const c2 = await up.conn(1);
    b1.ws.send('["one"]');
    b2.ws.send('["two"]');
    await c1.waitMessages(1);
    await c2.waitMessages(1);
    assert.deepEqual(c1.texts(), ['one']);
    assert.deepEqual(c2.texts(), ['two']);
    b1.ws.close();
    await c1.waitClose();
    await c2.send('still here');
    await waitUntil(() => sjsMessages(b2).length >= 1, 5000, 'b2 message');
    assert.deepEqual(sjsMessages(b2), ['still here']);
    assert.equal(c2.close, null);
  });

  it('an upstream that cannot be reached: c[1011,...]', async (t) => {
    const { gw } = await bridge(t, { up: { reject: () => 500 }, route: { extra: SOCKJS } });
    const b = browser(t, wsUrl(gw, '/chat/sockjs/000/x/websocket'));
    await b.waitClose();
    assert.equal(b.texts().length, 1, b.texts().join('|'));
    assert.match(b.texts()[0], /^c\[1011,".*"\]$/);
  });

  it('sockjs-client under node picks the websocket transport', async (t) => {
    const { up, gw } = await bridge(t, { route: { extra: SOCKJS } });
    const sock = new SockJS(gw.url('/chat/sockjs'), null, { transports: ['websocket'], timeout: 10000 });
    t.after(() => { try { sock.close(); } catch { /* closed */ } });
    const got = [];
    const opened = deferred();
    const closed = deferred();
    sock.onopen = () => opened.resolve();
    sock.onmessage = (e) => got.push(e.data);
    sock.onclose = (e) => { opened.reject(new Error(`closed ${e.code} ${e.reason}`)); closed.resolve(e); };
    await withTimeout(opened.promise, 10000, 'sockjs open');
    assert.equal(sock.transport, 'websocket');
    const c = await up.conn(0);
    for (let i = 0; i < 50; i++) await c.send(`m${i}`);
    await waitUntil(() => got.length >= 50, 10000, '50 messages');
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `m${i}`));
    sock.send('ünïcödé ✓ \u{1F600}');
    await c.waitMessages(1);
    assert.equal(c.texts()[0], 'ünïcödé ✓ \u{1F600}');
    c.closeWith(4000, 'bye');
    const e = await withTimeout(closed.promise, 10000, 'sockjs close');
    assert.equal(e.code, 4000);
    assert.equal(e.reason, 'bye');
  });
});

// -------------------------------------------------------------------- load

describe('load', () => {
  it('1,000 concurrent WebSocket browsers, each with its own numbered stream both ways', { timeout: 240000 }, async (t) => {
    const N = 1000;
    const PER = 20;
    const { up, gw } = await bridge(t, {
      session: { max_sessions_per_client: '5000' },
      // a thousand connections from one address, by design
      gateway: { max_connections_per_client: '0' },
      up: {
        onConnection: (c) => {
          // every upstream connection k sends "k:0".."k:19" once the browser
          // said which k it is (its first message)
          c.ws.once('message', (d) => {
            const k = d.toString();
            for (let i = 0; i < PER; i++) c.ws.send(`${k}:${i}`);
          });
        },
      },
    });
    const browsers = [];
    let next = 0;
    await Promise.all(Array.from({ length: 50 }, async () => {
      while (next < N) {
        const k = next++;
        const b = browser(t, wsUrl(gw, '/chat/ws'));
        browsers[k] = b;
        await b.opened;
        b.ws.send(String(k));
        for (let i = 0; i < PER; i++) b.ws.send(`from ${k}:${i}`);
      }
    }));
    await Promise.all(browsers.map((b) => b.waitMessages(PER, 120000)));
    for (let k = 0; k < N; k++) {
      assert.deepEqual(browsers[k].texts(), Array.from({ length: PER }, (_, i) => `${k}:${i}`), `browser ${k}: its own stream, in order`);
    }
    await waitUntil(() => up.conns.every((c) => c.messages.length >= PER + 1), 60000, 'every upstream got its stream');
    assert.equal(up.conns.length, N);
    for (const c of up.conns) {
      const k = c.messages[0].data.toString();
      assert.deepEqual(c.texts().slice(1), Array.from({ length: PER }, (_, i) => `from ${k}:${i}`), `upstream of ${k}`);
    }
    const st = await stats(gw);
    assert.equal(st.sessions, N, JSON.stringify(st));
    for (const b of browsers) b.ws.close(1000);
    await waitUntil(async () => (await stats(gw)).sessions === 0, 60000, 'every session ended');
    await waitUntil(() => up.conns.every((c) => c.close), 30000, 'every upstream closed');
    assert.ok(up.conns.every((c) => c.close.code === 1000), 'browser close code 1000 passed on');
  });
});

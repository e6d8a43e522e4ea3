// bridge_poll.test.mjs - pollgate protocol v1, JSON long-poll: open, poll,
// batching, hold and timeout, acks, lost responses, replaced polls.
// Upstream: npm ws (bridge_lib startUpstream). One gateway per test.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  bridge, show, assertCommonHeaders, assertError, assertSeqs, payloads, ID_RE,
  rawPollAbort, rawRequestThenDrop, rawExchange, sleep, withTimeout, request, startUpstream, startGateway, Api,
} from './bridge_lib.mjs';

describe('bridge: long-poll', { concurrency: 4, timeout: 150000 }, () => {
  it('open: 201 with a URL-safe 22-char id and the session timings; upstream handshake done first', async (t) => {
    const { up, api } = await bridge(t);
    const r = await api.open();
    assert.equal(r.status, 201, show(r));
    assertCommonHeaders(r);
    assert.match(r.json.session, ID_RE, show(r));
    assert.equal(r.json.poll_timeout, 2, show(r));
    assert.equal(r.json.heartbeat, 1, show(r));
    assert.equal(r.json.idle_timeout, 3, show(r));
    assert.ok('protocol' in r.json && r.json.protocol === null, `protocol must be null: ${show(r)}`);
    assert.equal(up.conns.length, 1, 'the upstream connection must exist when 201 is answered');
    assert.equal(up.conns[0].url, '/chat');
    // ids are unique and 22 base64url chars (128-bit random)
    const ids = new Set([r.json.session]);
    for (let i = 0; i < 30; i++) {
      const id = await api.openOk();
      assert.ok(!ids.has(id), `duplicate session id ${id}`);
      ids.add(id);
    }
    assert.equal(up.conns.length, 31);
    // an empty JSON object body is fine too
    const r2 = await api.open({});
    assert.equal(r2.status, 201, show(r2));
  });

  it('open answers only after a slow upstream handshake completed', async (t) => {
    const { up, api } = await bridge(t, { up: { handshakeDelayMs: 700 } });
    const r = await api.open();
    assert.equal(r.status, 201, show(r));
    assert.ok(r.ms >= 600, `201 after ${r.ms} ms, before the upstream answered the handshake (700 ms)`);
    assert.equal(up.conns.length, 1, 'upstream connection must be open when 201 arrives');
  });

  it('open with {"protocol":"chat"} offers the subprotocol upstream and reports the chosen one', async (t) => {
    const { up, api } = await bridge(t, { up: { protocol: (set) => (set.has('chat') ? 'chat' : false) } });
    const r = await api.open({ protocol: 'chat' });
    assert.equal(r.status, 201, show(r));
    assert.equal(r.json.protocol, 'chat', show(r));
    const c = await up.conn(0);
    assert.equal(c.headers['sec-websocket-protocol'], 'chat');
  });

  it('round trip: upstream → poll, send → upstream, DELETE, then 410', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    await c.send('hello');
    const p1 = await api.pollOk(id, 0);
    assert.deepEqual(p1.messages, [{ seq: 1, text: 'hello' }]);
    await api.sendOk(id, ['hi there'], 1);
    await c.waitMessages(1);
    assert.deepEqual(c.texts(), ['hi there']);
    assert.equal(c.messages[0].binary, false);
    await c.send('reply');
    const p2 = await api.pollOk(id, 1);
    assert.deepEqual(p2.messages, [{ seq: 2, text: 'reply' }]);
    const d = await api.del(id);
    assert.equal(d.status, 204, show(d));
    assertCommonHeaders(d);
    const cl = await c.waitClose(5000);
    assert.equal(cl.code, 1000, `upstream close code after DELETE: ${JSON.stringify(cl)}`);
    const g = await api.poll(id, 2);
    const j = assertError(g, 410, 'session_closed');
    assert.equal(typeof j.code, 'number', show(g));
  });

  it('batching: several queued upstream messages come back in one poll response', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const msgs = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'];
    await c.sendAll(msgs);
    // poll without acking until everything is there: then it must be one response
    const { last, polls } = await api.pollUntil(id, (_, l) => l.messages.length >= msgs.length, { acking: false, ms: 8000 });
    assert.deepEqual(payloads(last.messages), msgs);
    assertSeqs(last.messages, 1);
    assert.ok(polls <= 3, `needed ${polls} polls`);
    // acking everything: a poll after ack=8 has nothing new (held, then empty) unless more arrives
    const p = api.pollOk(id, 8);
    await sleep(200);
    await c.sendAll(['n0', 'n1']);
    const r = await p;
    assert.ok(r.messages.length >= 1, JSON.stringify(r));
    const rest = r.messages.length === 2 ? r : await api.pollOk(id, 9);
    const all = r.messages.length === 2 ? r.messages : [...r.messages, ...rest.messages];
    assert.deepEqual(payloads(all), ['n0', 'n1']);
    assertSeqs(all, 9);
  });

  it('poll hold: answered as soon as a message arrives, not at the timeout', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const p = api.pollOk(id, 0);
    await sleep(400); // let the poll be held
    const tSend = Date.now();
    await c.send('late');
    const r = await p;
    const lag = Date.now() - tSend;
    assert.deepEqual(r.messages, [{ seq: 1, text: 'late' }]);
    assert.ok(r._ms >= 350, `poll answered after ${r._ms} ms although nothing was queued`);
    assert.ok(lag < 1000, `held poll answered ${lag} ms after the message arrived`);
  });

  it('poll timeout: an empty batch after ~poll_timeout (2 s)', async (t) => {
    const { api } = await bridge(t);
    const id = await api.openOk();
    const r = await api.poll(id, 0);
    assert.equal(r.status, 200, show(r));
    assertCommonHeaders(r);
    assert.deepEqual(r.json.messages, [], show(r));
    assert.ok(!('closed' in r.json) && !('lost' in r.json), show(r));
    assert.ok(r.ms >= 1700 && r.ms <= 4500, `empty poll answered after ${r.ms} ms (poll_timeout 2 s)`);
  });

  it('without ack nothing is acked: the same messages come again; POST ack frees them', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    await c.sendAll(['a', 'b', 'c']);
    const { last } = await api.pollUntil(id, (_, l) => l.messages.length >= 3, { acking: false });
    assert.deepEqual(last.messages, [{ seq: 1, text: 'a' }, { seq: 2, text: 'b' }, { seq: 3, text: 'c' }]);
    const again = await api.pollOk(id); // no ack parameter at all
    assert.deepEqual(again.messages, last.messages, 'poll without ack must return the same messages');
    const a = await api.ack(id, 2);
    assert.equal(a.status, 204, show(a));
    assertCommonHeaders(a);
    const after = await api.pollOk(id);
    assert.deepEqual(after.messages, [{ seq: 3, text: 'c' }], 'after ack=2 only seq 3 is left');
    const after0 = await api.pollOk(id, 0); // an old ack does not resurrect freed messages
    assert.deepEqual(after0.messages, [{ seq: 3, text: 'c' }]);
  });

  it('lost poll response: the same messages are delivered again with the old ack', async (t) => {
    const { up, gw, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    await c.sendAll(['a', 'b']);
    await api.pollUntil(id, (_, l) => l.messages.length >= 2, { acking: false });

    // 1. response cut off after its first bytes
    const raw = await rawPollAbort(gw.port, `/chat/sessions/${id}/poll?ack=0`);
    assert.ok(raw.length > 0, 'the gateway answered the raw poll');
    const p1 = await api.pollOk(id, 0);
    assert.deepEqual(p1.messages, [{ seq: 1, text: 'a' }, { seq: 2, text: 'b' }]);

    // 2. a held poll whose connection dies before anything arrives
    await rawRequestThenDrop(gw.port,
      `GET /chat/sessions/${id}/poll?ack=2 HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`, 300);
    await c.send('c');
    const p2 = await api.pollOk(id, 2);
    assert.deepEqual(p2.messages, [{ seq: 3, text: 'c' }]);

    // 3. a held poll answered with a message, connection dropped as the answer arrives
    const rp = rawPollAbort(gw.port, `/chat/sessions/${id}/poll?ack=3`);
    await sleep(300);
    await c.send('d');
    const raw3 = await rp;
    assert.ok(raw3.length > 0);
    const p3 = await api.pollOk(id, 3);
    assert.deepEqual(p3.messages, [{ seq: 4, text: 'd' }]);
    // the session is still alive and numbering goes on
    await c.send('e');
    const p4 = await api.pollOk(id, 4);
    assert.deepEqual(p4.messages, [{ seq: 5, text: 'e' }]);
  });

  it('a new poll replaces the held one: the old completes at once with an empty batch', async (t) => {
    const { up, api } = await bridge(t);
    const id = await api.openOk();
    const c = await up.conn(0);
    const first = api.pollOk(id, 0);
    await sleep(300);
    const t1 = Date.now();
    const second = api.pollOk(id, 0);
    const r1 = await withTimeout(first, 5000, 'replaced poll');
    const dt = Date.now() - t1;
    assert.deepEqual(r1.messages, [], 'replaced poll must complete with an empty batch');
    assert.ok(dt < 1500, `replaced poll completed ${dt} ms after the new one (should be at once)`);
    await c.send('x');
    const r2 = await second;
    assert.deepEqual(r2.messages, [{ seq: 1, text: 'x' }]);
  });

  it('open with a bad body → 400, and no upstream connection is made', async (t) => {
    const { up, api } = await bridge(t);
    assertError(await api.open('not json'), 400);
    assertError(await api.open('{"protocol":'), 400);
    assertError(await api.open({ protocol: 5 }), 400);
    assertError(await api.open([]), 400);
    assert.equal(up.tcpCount, 0, 'a refused open must not reach the upstream');
  });

  it('wrong methods and unknown paths → JSON errors, never HTML', async (t) => {
    const { api, gw } = await bridge(t);
    const id = await api.openOk();
    const cases = [
      ['GET', '/chat/sessions'],
      ['DELETE', '/chat/sessions'],
      ['POST', `/chat/sessions/${id}/poll`],
      ['GET', `/chat/sessions/${id}/send`],
      ['PUT', `/chat/sessions/${id}/send`],
      ['PATCH', '/chat/sessions'],
      ['GET', '/chat/nothing-here'],
    ];
    const failures = [];
    for (const [m, p] of cases) {
      const r = await request(gw.url(p), { method: m, agent: api.agent });
      try {
        assert.ok(r.status >= 400 && r.status < 600, `status ${r.status}`);
        assertError(r, r.status);
      } catch (e) {
        failures.push(`${m} ${p}: ${r.status} ${r.headers['content-type']} ${r.text.slice(0, 60).replace(/\s+/g, ' ')}`);
      }
    }
    assert.deepEqual(failures, [], 'every error must be a JSON envelope with the common headers');
  });

  it('two routes reach their own upstreams', async (t) => {
    const up1 = await startUpstream(t);
    const up2 = await startUpstream(t);
    const gw = await startGateway(t, {
      routes: [
        { name: 'chat', path: '/chat', up: up1 },
        { name: 'feed', path: '/feed', up: up2, upstreamPath: '/live/feed' },
      ],
    });
    up1.reset();
    up2.reset();
    const chat = new Api(gw, '/chat');
    const feed = new Api(gw, '/feed');
    t.after(() => { chat.destroy(); feed.destroy(); });
    const a = await chat.openOk();
    const b = await feed.openOk();
    const ca = await up1.conn(0);
    const cb = await up2.conn(0);
    assert.equal(ca.url, '/chat');
    assert.equal(cb.url, '/live/feed');
    assert.equal(up1.conns.length, 1);
    assert.equal(up2.conns.length, 1);
    await ca.send('from chat');
    await cb.send('from feed');
    assert.deepEqual((await chat.pollOk(a, 0)).messages, [{ seq: 1, text: 'from chat' }]);
    assert.deepEqual((await feed.pollOk(b, 0)).messages, [{ seq: 1, text: 'from feed' }]);
    await chat.sendOk(a, ['to chat'], 1);
    await feed.sendOk(b, ['to feed'], 1);
    assert.deepEqual((await ca.waitMessages(1)).map((m) => m.data.toString()), ['to chat']);
    assert.deepEqual((await cb.waitMessages(1)).map((m) => m.data.toString()), ['to feed']);
  });

  it('HTTP/1.0 and Connection: close requests get complete answers', async (t) => {
    const { up, gw } = await bridge(t);
    const failures = [];
    const raw = async (what, text) => {
      const got = await rawExchange(gw.port, text);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got.toString('latin1'));
      if (!m) failures.push(`${what}: no HTTP response (${got.length} bytes: ${JSON.stringify(got.toString('latin1').slice(0, 80))})`);
      return { status: m ? Number(m[1]) : 0, text: got.toString('utf8') };
    };
    const h = `Host: 127.0.0.1:${gw.port}\r\n`;
    await raw('GET /health HTTP/1.0', `GET /health HTTP/1.0\r\n${h}\r\n`);
    await raw('GET /health Connection: close', `GET /health HTTP/1.1\r\n${h}Connection: close\r\n\r\n`);
    const o = await raw('POST /chat/sessions Connection: close',
      `POST /chat/sessions HTTP/1.1\r\n${h}Connection: close\r\nContent-Length: 0\r\n\r\n`);
    const id = /"session":"([A-Za-z0-9_-]{22})"/.exec(o.text)?.[1];
    if (id) {
      const c = await up.conn(0);
      await c.send('hi');
      const p = await raw('GET poll HTTP/1.0', `GET /chat/sessions/${id}/poll?ack=0 HTTP/1.0\r\n${h}\r\n`);
      if (p.status && !p.text.includes('"text":"hi"')) failures.push(`poll over HTTP/1.0 without the message: ${p.text.slice(0, 200)}`);
      const sd = await raw('POST send Connection: close', `POST /chat/sessions/${id}/send HTTP/1.1\r\n${h}Connection: close\r\n` +
        `Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello`);
      if (sd.status === 200) await c.waitMessages(1);
    } else {
      failures.push(`no session id in the open answer: ${JSON.stringify(o.text.slice(0, 200))}`);
    }
    assert.deepEqual(failures, [], 'requests that close the connection after the answer');
  });

  it('unknown or never-existing session ids → 404 unknown_session on every endpoint', async (t) => {
    const { api } = await bridge(t);
    await api.openOk(); // a real session exists, but not these ids
    for (const id of ['AAAAAAAAAAAAAAAAAAAAAA', 'zzzzzzzzzzzzzzzzzzzz_-', 'abc']) {
      assertError(await api.poll(id, 0), 404, 'unknown_session');
      assertError(await api.send(id, ['x'], 1), 404, 'unknown_session');
      assertError(await api.ack(id, 1), 404, 'unknown_session');
      assertError(await api.del(id), 404, 'unknown_session');
      assertError(await api.closePost(id), 404, 'unknown_session');
      assertError(await api.req('GET', `/sessions/${id}/events`), 404, 'unknown_session');
    }
  });

  it('every dynamic response carries Cache-Control: no-store and X-Content-Type-Options: nosniff', async (t) => {
    const { up, api } = await bridge(t);
    const seen = [];
    const rec = (r) => { seen.push(r); return r; };
    const id = (await rec(await api.open())).json.session;
    const c = await up.conn(0);
    await c.send('x');
    rec(await api.poll(id, 0));
    rec(await api.send(id, ['y'], 1));
    rec(await api.sendBody(id, 'raw', 'text/plain'));
    rec(await api.ack(id, 1));
    rec(await api.sendBody(id, '{bad', 'application/json'));
    rec(await api.poll('AAAAAAAAAAAAAAAAAAAAAA', 0));
    rec(await api.del(id));
    rec(await api.poll(id, 1));
    const statuses = seen.map((r) => r.status);
    assert.deepEqual(statuses, [201, 200, 200, 200, 204, 400, 404, 204, 410], `statuses: ${statuses}`);
    for (const r of seen) assertCommonHeaders(r);
  });
});

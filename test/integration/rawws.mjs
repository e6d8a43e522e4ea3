// rawws.mjs - a deliberately programmable WebSocket *server* on bare `net`.
//
// It performs a correct RFC 6455 opening handshake (Sec-WebSocket-Accept
// computed with SHA-1 here, not by a library), then writes whatever frames a
// test builds by hand - including invalid ones no real library would send -
// and decodes, unmasks and records every frame the client sends, so a test
// can see which close code the client answered with.
//
// frame()/text()/close()... build frames; startRawServer() runs a handler per
// connection with a RawConn (write bytes, wait for client frames or close).

import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { deferred, withTimeout, sleep } from './lib.mjs';

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

export function acceptKey(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

const toBuf = (p) => (Buffer.isBuffer(p) ? p : typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p));

/**
 * Build one frame.
 *  fin      (default true)
 *  rsv      bits 0..7 placed in RSV1..3 (4 = RSV1, 2 = RSV2, 1 = RSV3)
 *  opcode   0..15
 *  payload  Buffer | string | byte array
 *  mask     4-byte Buffer: set the MASK bit and mask the payload
 *  lenForm  'auto' (minimal) | 7 | 16 | 64: force a length encoding
 *  length   declared length (number or BigInt) instead of payload.length
 */
export function frame({ fin = true, rsv = 0, opcode, payload = Buffer.alloc(0), mask = null, lenForm = 'auto', length } = {}) {
  const data = toBuf(payload);
  const declared = BigInt(length ?? data.length);
  let form = lenForm;
  if (form === 'auto') form = declared < 126n ? 7 : declared < 65536n ? 16 : 64;
  const head = [((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f))];
  const maskBit = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (form === 7) head.push(maskBit | Number(declared));
  else if (form === 16) {
    head.push(maskBit | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(declared));
  } else {
    head.push(maskBit | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(declared);
  }
  let body = data;
  const parts = [Buffer.from(head), ext];
  if (mask) {
    parts.push(Buffer.from(mask));
    body = Buffer.from(data);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  }
  parts.push(body);
  return Buffer.concat(parts);
}

export const text = (payload, o = {}) => frame({ opcode: OP.TEXT, payload, ...o });
export const binary = (payload, o = {}) => frame({ opcode: OP.BINARY, payload, ...o });
export const cont = (payload, o = {}) => frame({ opcode: OP.CONT, payload, ...o });
export const ping = (payload = '', o = {}) => frame({ opcode: OP.PING, payload, ...o });
export const pong = (payload = '', o = {}) => frame({ opcode: OP.PONG, payload, ...o });

/** Close payload: 2-byte code (if code != null) + reason bytes. */
export function closePayload(code, reason = Buffer.alloc(0)) {
  if (code === null || code === undefined) return Buffer.alloc(0);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, toBuf(reason)]);
}
export const close = (code, reason, o = {}) => frame({ opcode: OP.CLOSE, payload: closePayload(code, reason), ...o });

// --------------------------------------------------------- client frames

/** Incremental decoder for the frames a client sends (masked). */
export class FrameReader {
  constructor() {
    this.buf = Buffer.alloc(0);
  }

  /** Feed bytes; returns the complete frames decoded so far. */
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const fin = (b[0] & 0x80) !== 0;
      const rsv = (b[0] >> 4) & 7;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      let maskKey = null;
      if (masked) {
        if (b.length < off + 4) break;
        maskKey = Buffer.from(b.subarray(off, off + 4));
        off += 4;
      }
      if (b.length < off + len) break;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (maskKey) for (let i = 0; i < payload.length; i++) payload[i] ^= maskKey[i & 3];
      frames.push({ fin, rsv, opcode, masked, maskKey, payload, length: len });
      this.buf = b.subarray(off + len);
    }
    return frames;
  }
}

/** Parse a close payload into { code, reason } (code null if empty). */
export function parseClose(payload) {
  if (!payload || payload.length === 0) return { code: null, reason: Buffer.alloc(0) };
  if (payload.length === 1) return { code: NaN, reason: Buffer.alloc(0) };
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2) };
}

// --------------------------------------------------------- server

/**
 * One accepted connection after a (normally) successful handshake.
 *  request      { method, path, headers (lower-case names) }
 *  frames       every client frame, in order
 *  messages     reassembled client data messages [{ binary, data }]
 *  closeFrame   the client's first close frame { code, reason, frame } or null
 *  closed       promise: resolves when the TCP connection is gone
 */
export class RawConn {
  constructor(socket, opts) {
    this.socket = socket;
    this.opts = opts;
    this.reader = new FrameReader();
    this.frames = [];
    this.messages = [];
    this.closeFrame = null;
    this.sentClose = false;
    this.tcpClosed = false;
    this.request = null;
    this._frag = null;
    this._waiters = [];
    this.handlerDone = Promise.resolve();
    this._closed = deferred();
    this.closed = this._closed.promise;
    this.gotFin = false; // the client half-closed (FIN)
    this.socketError = null; // e.g. ECONNRESET
    socket.on('end', () => (this.gotFin = true));
    socket.on('error', (e) => (this.socketError = e.code || e.message));
    socket.on('close', () => {
      this.tcpClosed = true;
      this._closed.resolve();
      this._notify();
    });
  }

  _onFrames(frames) {
    for (const f of frames) {
      this.frames.push(f);
      if (f.opcode === OP.CLOSE) {
        if (!this.closeFrame) {
          this.closeFrame = { ...parseClose(f.payload), frame: f };
          if (this.opts.autoCloseReply !== false) {
            // Answer once (echo the client's payload) unless we sent one,
            // then end: the server closes the TCP connection first.
            if (!this.sentClose) this.write(frame({ opcode: OP.CLOSE, payload: f.payload })).catch(() => {});
            this.sentClose = true;
            this.socket.end();
          }
        }
      } else if (f.opcode === OP.PING) {
        if (this.opts.autoPong !== false && !this.sentClose) this.write(pong(f.payload)).catch(() => {});
      } else if (f.opcode === OP.TEXT || f.opcode === OP.BINARY) {
        if (f.fin) this.messages.push({ binary: f.opcode === OP.BINARY, data: f.payload });
        else this._frag = { binary: f.opcode === OP.BINARY, parts: [f.payload] };
      } else if (f.opcode === OP.CONT && this._frag) {
        this._frag.parts.push(f.payload);
        if (f.fin) {
          this.messages.push({ binary: this._frag.binary, data: Buffer.concat(this._frag.parts) });
          this._frag = null;
        }
      }
    }
    this._notify();
  }

  _notify() {
    for (const w of this._waiters.slice()) {
      let v;
      try {
        v = w.check();
      } catch (e) {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        w.reject(e);
        continue;
      }
      if (v !== undefined) {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        w.resolve(v);
      }
    }
  }

  /** Wait until check() returns something other than undefined. */
  waitUntil(check, ms, what) {
    const v = check();
    if (v !== undefined) return Promise.resolve(v);
    const d = deferred();
    this._waiters.push({ check, resolve: d.resolve, reject: d.reject });
    return withTimeout(d.promise, ms, what);
  }

  /** The first client frame at index >= from satisfying pred. */
  waitFrame(pred, ms = 5000, what = 'client frame', from = 0) {
    return this.waitUntil(() => {
      for (let i = from; i < this.frames.length; i++) if (pred(this.frames[i])) return this.frames[i];
      if (this.tcpClosed) throw new Error(`connection closed while waiting for ${what}`);
      return undefined;
    }, ms, what);
  }

  /** Wait for a pong with this payload (Buffer|string). */
  waitPong(payload, ms = 5000) {
    const p = toBuf(payload);
    return this.waitFrame((f) => f.opcode === OP.PONG && f.payload.equals(p), ms, `pong ${p.toString('hex')}`);
  }

  /** Wait for n complete client messages; resolves to the first n. */
  waitMessages(n, ms = 5000) {
    return this.waitUntil(() => {
      if (this.messages.length >= n) return this.messages.slice(0, n);
      if (this.tcpClosed) throw new Error(`connection closed after ${this.messages.length}/${n} messages`);
      return undefined;
    }, ms, `${n} client messages`);
  }

  /**
   * Wait for the end: resolves to the client's close frame
   * { code, reason, frame } or null if the TCP connection ended without one.
   */
  waitClose(ms = 5000) {
    return this.waitUntil(() => {
      if (this.closeFrame) return this.closeFrame;
      if (this.tcpClosed) return null;
      return undefined;
    }, ms, 'client close frame');
  }

  /**
   * Write bytes. bytewise: one socket.write per byte with a short pause
   * between writes (Nagle off), so the client sees every split point.
   */
  async write(buf, { bytewise = false, delayMs = 1 } = {}) {
    if (this.socket.destroyed || this.socket.writableEnded) throw new Error('socket closed');
    if (!bytewise) {
      await new Promise((resolve, reject) => this.socket.write(buf, (e) => (e ? reject(e) : resolve())));
      return;
    }
    this.socket.setNoDelay(true);
    for (let i = 0; i < buf.length; i++) {
      if (this.socket.destroyed) throw new Error('socket closed during bytewise write');
      await new Promise((resolve, reject) =>
        this.socket.write(buf.subarray(i, i + 1), (e) => (e ? reject(e) : resolve()))
      );
      if (delayMs > 0) await sleep(delayMs);
      else await new Promise((r) => setImmediate(r));
    }
  }

  /** Send a close frame (marks that the server started the close). */
  async sendClose(code, reason) {
    this.sentClose = true;
    await this.write(close(code, reason));
  }

  end() {
    this.socket.end();
  }

  destroy() {
    this.socket.destroy();
  }
}

function readHttpRequest(socket, maxBytes = 16384) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > maxBytes) cleanup(new Error('request head too large'));
        return;
      }
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const [method, reqPath, version] = lines[0].split(' ');
      const headers = {};
      const rawHeaders = [];
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i <= 0) continue;
        const name = l.slice(0, i).trim().toLowerCase();
        const value = l.slice(i + 1).trim();
        rawHeaders.push([name, value]);
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      }
      resolve({ request: { method, path: reqPath, version, headers, rawHeaders }, rest: buf.subarray(end + 4) });
    };
    const onClose = () => cleanup(new Error('closed before the request head'));
    const cleanup = (e) => {
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      reject(e);
    };
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

/** The standard 101 answer for a request (opts.protocol adds a subprotocol). */
export function handshakeResponse(request, { protocol, extraHeaders = [] } = {}) {
  const key = request.headers['sec-websocket-key'] || '';
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptKey(key)}`,
  ];
  if (protocol) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  lines.push(...extraHeaders);
  return lines.join('\r\n') + '\r\n\r\n';
}

/**
 * Start a raw server on 127.0.0.1 (or opts.host), port 0. Only requests for
 * its own random path (in `url`) count; others get 404 (kept in strangers).
 * For each connection: read the request head, answer (opts.response(request) may
 * return a custom response string, or null to answer nothing), then call
 * handler(conn) if given. Errors thrown by the handler are kept in
 * server.errors (tests assert it is empty) and the socket is destroyed.
 * Closed, with all sockets, after test t. With opts.tls = { cert, key } (PEM
 * file paths) it speaks TLS and `url` is wss://.
 *
 * Resolves to { port, url, conns, nextConn(ms) (the first connection), errors, server }.
 */
export async function startRawServer(t, handler, opts = {}) {
  const conns = [];
  const errors = [];
  const strangers = [];
  const urlPath = `/raw/${crypto.randomBytes(6).toString('hex')}`;
  const connWaiters = [];
  const sockets = new Set();
  const onSocket = async (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let conn;
    try {
      const { request, rest } = await readHttpRequest(socket);
      if (request.path !== urlPath) {
        // Not our client (a stray connection from a concurrently running
        // test that reused this ephemeral port): keep it out of `conns`.
        strangers.push(request);
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      conn = new RawConn(socket, opts);
      conn.request = request;
      conns.push(conn);
      const resp = opts.response ? opts.response(request) : handshakeResponse(request, opts);
      if (resp === null) {
        for (const w of connWaiters.splice(0)) w.resolve(conn);
        return; // say nothing: a server that hangs
      }
      socket.write(resp);
      socket.on('data', (d) => conn._onFrames(conn.reader.push(d)));
      if (rest.length) conn._onFrames(conn.reader.push(rest));
      conn.handlerDone = handler ? Promise.resolve().then(() => handler(conn)) : Promise.resolve();
      for (const w of connWaiters.splice(0)) w.resolve(conn);
      await conn.handlerDone;
    } catch (e) {
      errors.push(e);
      socket.destroy();
    }
  };
  const server = opts.tls
    ? tls.createServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, onSocket)
    : net.createServer(onSocket);
  const host = opts.host || '127.0.0.1';
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const port = server.address().port;
  if (t) {
    t.after(
      () =>
        new Promise((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        })
    );
  }
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port,
    url: `${opts.tls ? 'wss' : 'ws'}://${urlHost}:${port}${urlPath}`,
    conns,
    strangers,
    errors,
    nextConn(ms = 5000) {
      if (conns.length) return Promise.resolve(conns[0]);
      const d = deferred();
      connWaiters.push(d);
      return withTimeout(d.promise, ms, 'a client connection');
    },
  };
}


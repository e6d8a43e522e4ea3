/*
 * pollgate.js - browser client for pollgate protocol v1.
 *
 * Gives a page a WebSocket-like object that talks to a pollgate route over a
 * native WebSocket (<route>/ws), Server-Sent Events (EventSource) or plain JSON
 * long-polling (XMLHttpRequest). Plain ES5, no build step, no dependencies;
 * defines window.PollGate (and module.exports under CommonJS).
 *
 * Transport choice ('auto'): WebSocket first where window.WebSocket exists; when
 * the upgrade fails, the socket closes before it opens, no 101 comes within
 * WS_OPEN_TIMEOUT, or it breaks (not a clean close) within WS_QUIET of opening
 * without any message (a proxy that swallows or cuts upgrades), the client falls
 * back to SSE (then long-poll, as before) and remembers that for this host for
 * the page's life (a proxy that breaks upgrades breaks them for every route).
 * onopen fires once even if the fallback happens after it.
 *
 *   var ws = new PollGate('/chat', {
 *     transport: 'auto',    // 'auto' (WebSocket, else SSE, else long-poll), 'ws', 'sse', 'poll'
 *     protocol: 'chat',     // optional, sent as {"protocol":...} when opening
 *     maxBackoff: 30000,    // ms, cap of the retry delay (250 ms doubling, with jitter)
 *     maxRetries: 0,        // failed session-open attempts before giving up; 0 = never
 *     closeOnUnload: true,  // close the session (sendBeacon) when the page goes away
 *     debug: false          // log to console
 *   });
 *   ws.onopen = function (ev) {};
 *   ws.onmessage = function (ev) {
 *     ev.data;   // string; for binary frames an ArrayBuffer (binaryType 'arraybuffer',
 *                // when typed arrays exist), else the base64 string; ev.binary = true
 *     ev.seq;    // server sequence number
 *   };
 *   ws.onlost = function (ev) { ev.lost.from; ev.lost.to; };  // messages evicted server-side
 *   ws.onerror = function (ev) { ev.status; ev.error; ev.message; ev.retrying; };
 *   ws.onclose = function (ev) { ev.code; ev.reason; ev.wasClean; };  // fired exactly once
 *   ws.onstatechange = function (state, info) {};
 *       // state: 'connecting' | 'open' | 'offline' | 'closing' | 'closed'
 *       // info.retryAt: Date.now()-based time of the next retry while offline, else 0
 *   ws.ontransportchange = function (transport) {};  // auto mode fell back (ws -> sse/poll, sse -> poll)
 *   ws.addEventListener(type, fn) / ws.removeEventListener(type, fn) work as well.
 *
 *   ws.readyState      0 CONNECTING, 1 OPEN, 2 CLOSING, 3 CLOSED (stays 1 while offline)
 *   ws.state           the state name above; ws.retryAt as in info
 *   ws.transport       'ws', 'sse' or 'poll' (auto mode falls back from 'ws' when the
 *                      WebSocket fails, and to 'poll' if SSE keeps failing)
 *   ws.protocol        protocol chosen by the server ('' if none)
 *   ws.bufferedAmount  bytes queued by send() and not yet acknowledged by the gateway
 *   ws.binaryType      'arraybuffer' (default) or 'base64'
 *   ws.send(data)      string, ArrayBuffer or typed array; may be called while connecting
 *                      (queued until open); returns false once closing/closed
 *   ws.close([code[, reason]])  code 1000 or 3000-4999; flushes queued sends first (up to
 *                      3 s), posts /close, then fires onclose with that code
 *   ws.reconnect()     retry now instead of waiting out the back-off (e.g. a button)
 *
 * Guarantees: messages are delivered in order and at most once (de-duplicated by seq);
 * a dropped poll or stream resumes where it stopped; sends go out in order, batched,
 * one request at a time, retried with the same seq (the gateway drops duplicates).
 *
 * Over WebSocket the object behaves as the browser's WebSocket does: the same events
 * and close codes (close(code, reason) reaches the upstream; the upstream's code and
 * reason arrive in onclose), ev.seq counts messages locally, ws.session is null, and
 * a connection that breaks once established ends with 1006 (wasClean false): a
 * WebSocket has no resume, the upstream connection ended with it. The HTTP
 * transports stay the ones that survive a dropped network.
 */
(function (global) {
  'use strict';

  var CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  var BASE_DELAY = 250;         // first retry delay, doubled per failure up to maxBackoff
  var DRAIN_RETRIES = 8;        // silent retries in a row of a 503 "draining" (see _drainRetry)
  var ACK_DELAY = 200;          // SSE: ack at most this long after a message...
  var ACK_EVERY = 100;          // ...or right away after this many unacked messages
  var MAX_BATCH = 65536;        // bytes per send request (a bigger single message goes alone)
  var MAX_BATCH_MSGS = 100;     // messages per send request (the gateway's max_batch >= this)
  var REQ_TIMEOUT = 15000;      // open, ack, probe; sends get twice that
  var CLOSE_WAIT = 3000;        // close(): time allowed to flush queued sends
  var WS_OPEN_TIMEOUT = 8000;   // WebSocket: no 101 by then = a proxy holding the upgrade
  var WS_QUIET = 4000;          // WebSocket: broken this soon after opening, silent = a proxy
  var wsFailed = {};            // ws(s)://host -> true once a WebSocket there failed (the page's life)
  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  var B64_INDEX = [];
  var i;
  for (i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

  function noop() {}
  function now() { return new Date().getTime(); }
  function isOk(status) { return status >= 200 && status < 300; }
  // 0 is a network error or timeout; these are worth retrying.
  function isTransient(status) { return status === 0 || status === 408 || status >= 500; }

  function Backoff(cap) { this.cap = cap; this.n = 0; }
  // Equal jitter: half the nominal delay plus a random part of the other half.
  Backoff.prototype.next = function (cap) {
    var d = Math.min(cap || this.cap, BASE_DELAY * Math.pow(2, this.n));
    if (this.n < 20) this.n++;
    return Math.round(d / 2 + Math.random() * d / 2);
  };
  Backoff.prototype.reset = function () { this.n = 0; };

  function hasTypedArrays() {
    return typeof ArrayBuffer !== 'undefined' && typeof Uint8Array !== 'undefined';
  }
  function isBinary(d) {
    return hasTypedArrays() && d !== null && typeof d === 'object' &&
      (d instanceof ArrayBuffer || d.buffer instanceof ArrayBuffer);
  }
  function toBytes(d) {
    return d instanceof ArrayBuffer ? new Uint8Array(d) :
      new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  }
  function toBase64(bytes) {
    var out = [], n = bytes.length, a, b, c, j;
    for (j = 0; j < n; j += 3) {
      a = bytes[j]; b = j + 1 < n ? bytes[j + 1] : 0; c = j + 2 < n ? bytes[j + 2] : 0;
      out.push(B64.charAt(a >> 2) + B64.charAt(((a & 3) << 4) | (b >> 4)) +
        (j + 1 < n ? B64.charAt(((b & 15) << 2) | (c >> 6)) : '=') +
        (j + 2 < n ? B64.charAt(c & 63) : '='));
    }
    return out.join('');
  }
  function fromBase64(s) {
    s = String(s).replace(/[^A-Za-z0-9+\/]/g, '');
    var n = s.length, len = Math.floor(n * 3 / 4), out = new Uint8Array(len);
    var j, k = 0, a, b, c, d;
    for (j = 0; j < n; j += 4) {
      a = B64_INDEX[s.charCodeAt(j)] | 0; b = B64_INDEX[s.charCodeAt(j + 1)] | 0;
      c = B64_INDEX[s.charCodeAt(j + 2)] | 0; d = B64_INDEX[s.charCodeAt(j + 3)] | 0;
      out[k++] = (a << 2) | (b >> 4);
      if (k < len) out[k++] = ((b & 15) << 4) | (c >> 2);
      if (k < len) out[k++] = ((c & 3) << 6) | d;
    }
    return out.buffer;
  }
  function utf8Length(s) {
    var n = 0, j, c;
    for (j = 0; j < s.length; j++) {
      c = s.charCodeAt(j);
      if (c < 0x80) n += 1;
      else if (c < 0x800) n += 2;
      else if (c >= 0xd800 && c <= 0xdbff) { n += 4; j++; }
      else n += 3;
    }
    return n;
  }
  function isCrossOrigin(url) {
    var m = /^([a-z][a-z0-9+.\-]*:)?\/\/([^\/?#]+)/i.exec(url), loc = global.location;
    if (!m || !loc) return false;
    return (m[1] || loc.protocol).toLowerCase() !== loc.protocol.toLowerCase() ||
      m[2].toLowerCase() !== String(loc.host).toLowerCase();
  }
  // <route>/ws as a ws: or wss: URL, or null when it cannot be built.
  function wsUrlOf(url) {
    var loc = global.location, m = /^(https?:)?\/\/(.*)$/i.exec(url), dir;
    if (m) return ((m[1] || (loc && loc.protocol) || '').toLowerCase() === 'https:' ? 'wss://' : 'ws://') + m[2] + '/ws';
    if (!loc || !loc.host || /^[a-z][a-z0-9+.\-]*:/i.test(url)) return null;
    dir = url.charAt(0) === '/' ? '' : String(loc.pathname).replace(/[^\/]*$/, '');
    return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + dir + url + '/ws';
  }
  function hostOf(wsUrl) { return String(wsUrl).replace(/^(wss?:\/\/[^\/?#]*).*$/i, '$1').toLowerCase(); }
  function listen(type, fn) { if (global.addEventListener) global.addEventListener(type, fn, false); }
  function unlisten(type, fn) { if (global.removeEventListener) global.removeEventListener(type, fn, false); }

  function PollGate(url, opts) {
    if (!(this instanceof PollGate)) return new PollGate(url, opts);
    var self = this;
    opts = opts || {};
    this.url = String(url).replace(/\/+$/, '');
    this.readyState = CONNECTING;
    this.state = 'connecting';
    this.retryAt = 0;
    this.protocol = '';
    this.bufferedAmount = 0;
    this.binaryType = opts.binaryType || 'arraybuffer';
    this.transport = (opts.transport === 'poll' || !global.EventSource) ? 'poll' : 'sse';
    this._wsUrl = wsUrlOf(this.url);
    if (global.WebSocket && this._wsUrl && (opts.transport === 'ws' ||
        ((opts.transport || 'auto') === 'auto' && !wsFailed[hostOf(this._wsUrl)]))) this.transport = 'ws';
    this.session = null;
    this._opts = {
      transport: opts.transport || 'auto', protocol: opts.protocol || null,
      maxBackoff: opts.maxBackoff > 0 ? opts.maxBackoff : 30000,
      maxRetries: opts.maxRetries > 0 ? opts.maxRetries : 0, debug: !!opts.debug
    };
    this._cross = isCrossOrigin(this.url);
    this._listeners = {};
    this._timers = {};      // name -> timeout id: recv, send, ack, closeWait
    this._req = {};         // name -> in-flight request: recv, send, ack, close
    this._es = null;
    this._ws = null;        // the WebSocket while transport is 'ws'
    this._wsOpen = false;   // it opened and is in use
    this._announced = false;  // onopen fired
    this._failing = {};     // recv/send: true while retrying after a failure
    this._drainRetries = 0;
    this._recvBackoff = new Backoff(this._opts.maxBackoff);
    this._sendBackoff = new Backoff(this._opts.maxBackoff);
    this._ackBackoff = new Backoff(this._opts.maxBackoff);
    this._last = 0;         // highest seq received (or skipped as lost)
    this._acked = 0;        // highest seq acked through POST ack (SSE)
    this._unacked = 0;
    this._openAttempts = 0;
    this._sseBad = 0;       // SSE streams in a row that failed before getting going
    this._sendSeq = 0;
    this._queue = [];       // [{m: message, n: bytes}]
    this._inflight = null;  // {seq, body, size} until the gateway acks it
    this._pollTimeout = 25;
    this._idleTimeout = 30;
    this._onOnline = function () { self._kick(); };
    this._onOffline = function () {
      if (self.transport === 'ws') return;  // the socket's own close tells
      self._failing.recv = true;
      self._updateState();
    };
    this._onUnload = function () { self._unload(); };
    listen('online', this._onOnline);
    listen('offline', this._onOffline);
    if (opts.closeOnUnload !== false) listen('onpagehide' in global ? 'pagehide' : 'unload', this._onUnload);
    this._open();
  }

  PollGate.CONNECTING = PollGate.prototype.CONNECTING = CONNECTING;
  PollGate.OPEN = PollGate.prototype.OPEN = OPEN;
  PollGate.CLOSING = PollGate.prototype.CLOSING = CLOSING;
  PollGate.CLOSED = PollGate.prototype.CLOSED = CLOSED;
  var P = PollGate.prototype;

  /* ---- events ---------------------------------------------------------- */

  P.addEventListener = function (type, fn) {
    var l = this._listeners[type] || (this._listeners[type] = []);
    if (typeof fn === 'function' && l.indexOf(fn) < 0) l.push(fn);
  };
  P.removeEventListener = function (type, fn) {
    var l = this._listeners[type], k = l ? l.indexOf(fn) : -1;
    if (k >= 0) l.splice(k, 1);
  };
  // A throwing handler must not break the state machine: rethrow it later.
  function call(self, fn, args) {
    try { fn.apply(self, args); } catch (e) { setTimeout(function () { throw e; }, 0); }
  }
  P._emit = function (type, ev, args) {
    ev.type = type;
    ev.target = this;
    args = args || [ev];
    var l = (this._listeners[type] || []).slice(), k;
    if (typeof this['on' + type] === 'function') call(this, this['on' + type], args);
    for (k = 0; k < l.length; k++) call(this, l[k], args);
  };
  P._log = function () {
    if (this._opts.debug && global.console && console.log) {
      console.log('[pollgate] ' + Array.prototype.join.call(arguments, ' '));
    }
  };

  /* ---- plumbing -------------------------------------------------------- */

  P._later = function (name, ms, fn) {
    var self = this;
    this._cancel(name);
    this._timers[name] = setTimeout(function () { self._timers[name] = null; fn.call(self); }, ms);
  };
  P._cancel = function (name) {
    if (this._timers[name]) { clearTimeout(this._timers[name]); this._timers[name] = null; }
  };
  P._abort = function (name) {
    if (this._req[name]) { this._req[name].abort(); this._req[name] = null; }
  };
  P._path = function (tail) {
    return '/sessions/' + encodeURIComponent(this.session) + tail;
  };
  // Cap retries of a live session well below the idle timeout so it survives.
  P._delay = function (backoff) {
    var cap = this.session ? Math.min(this._opts.maxBackoff, this._idleTimeout * 500) : 0;
    return backoff.next(cap);
  };

  // One XHR; cb(res) with res = {status, body, retryAfter}; status 0 = network
  // error or timeout. Bodies are JSON and labelled so: pollgate takes a text/plain
  // send body as one raw text message. (Cross-origin, this costs a CORS preflight.)
  P._xhr = function (method, path, body, timeout, cb) {
    var self = this, xhr = new XMLHttpRequest(), done = false, timer;
    function finish(status) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      xhr.onreadystatechange = noop;
      var res = { status: status === 1223 ? 204 : status, body: null, retryAfter: 0 };
      if (status) {
        try { res.body = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch (e) { res.bad = true; }
        try { res.retryAfter = parseInt(xhr.getResponseHeader('Retry-After'), 10) || 0; } catch (e2) {}
      }
      cb.call(self, res);
    }
    timer = setTimeout(function () { finish(0); try { xhr.abort(); } catch (e) {} }, timeout);
    try {
      xhr.open(method, this.url + path, true);
      if (this._cross) xhr.withCredentials = true;
      if (body !== null) {
        xhr.setRequestHeader('Content-Type', 'application/json');
      }
      xhr.onreadystatechange = function () { if (xhr.readyState === 4) finish(xhr.status); };
      xhr.send(body);
    } catch (e) {
      setTimeout(function () { finish(0); }, 0);
    }
    return { abort: function () {
      if (done) return;
      done = true;
      clearTimeout(timer);
      xhr.onreadystatechange = noop;
      try { xhr.abort(); } catch (e) {}
    } };
  };

  function errorEvent(res, retrying) {
    var b = res.body || {};
    return { status: res.status, error: b.error || (res.status ? 'http_' + res.status : 'network'),
      message: b.message || (res.status ? 'HTTP ' + res.status : 'network error'), retrying: retrying };
  }

  /* ---- state ----------------------------------------------------------- */

  P._setState = function (state) {
    if (state !== 'offline') this.retryAt = 0;
    if (state === this.state) return;
    this._log('state', state);
    this.state = state;
    this._emit('statechange', {}, [state, { retryAt: this.retryAt }]);
  };
  P._updateState = function () {
    if (this.readyState >= CLOSING) return;
    if (this._failing.recv || this._failing.send) this._setState('offline');
    else this._setState(this.session || this._wsOpen ? 'open' : 'connecting');
  };
  // Something failed: retry fn later and show 'offline' meanwhile.
  P._retry = function (channel, timer, backoff, retryAfter, fn) {
    var delay = Math.max(retryAfter * 1000, this._delay(backoff));
    this._log(channel, 'retry in', delay, 'ms');
    this._failing[channel] = true;
    this.retryAt = now() + delay;
    this._later(timer, delay, fn);
    this._updateState();
  };

  // 503 "draining": the process that answered is stopping and closed that
  // connection; a successor bound to the same address (binary upgrade) gets
  // the retry on a new one. Retried at once, with no error and no 'offline',
  // a few times in a row (each such answer closes one pooled connection to
  // the old process); past that the usual back-off applies.
  P._drainRetry = function (res, timer, fn) {
    if (res.status !== 503 || !res.body || res.body.error !== 'draining' ||
        this._drainRetries >= DRAIN_RETRIES) return false;
    this._drainRetries++;
    this._log(timer, 'draining: retry at once');
    this._later(timer, 0, fn);
    return true;
  };

  // The single way to CLOSED: onclose fires exactly once.
  P._finish = function (code, reason, wasClean) {
    if (this.readyState === CLOSED) return;
    if (code === 1006) wasClean = false;  // as WebSocket: the upstream connection broke
    var name;
    this._stopRecv();
    this._dropWs(1000, '');
    for (name in this._timers) this._cancel(name);
    for (name in this._req) this._abort(name);
    unlisten('online', this._onOnline);
    unlisten('offline', this._onOffline);
    unlisten('pagehide', this._onUnload);
    unlisten('unload', this._onUnload);
    this.readyState = CLOSED;
    this._queue = [];
    this._inflight = null;
    this._setState('closed');
    this._emit('close', { code: code, reason: reason || '', wasClean: !!wasClean });
  };
  // 410: the session ended (its close code is in the body); 404: it is unknown
  // (expired while we were away).
  P._gone = function (res) {
    var b = res.body || {};
    if (res.status === 410) this._finish(b.code || 1005, b.reason || '', true);
    else this._finish(1006, b.message || b.error || 'unknown session', false);
  };
  // Unexpected client error: report it, drop the session, close.
  P._fail = function (res, code) {
    var ev = errorEvent(res, false);
    this._emit('error', ev);
    if (this.session && this.readyState !== CLOSED) this._xhr('POST', this._path('/close'), null, REQ_TIMEOUT, noop);
    this._finish(code, ev.message, false);
  };

  /* ---- opening --------------------------------------------------------- */

  P._announce = function () {
    if (this._announced) return;
    this._announced = true;
    this._emit('open', {});
  };
  P._open = function () {
    if (this.transport === 'ws') { this._openWs(); return; }
    var body = this._opts.protocol ? JSON.stringify({ protocol: this._opts.protocol }) : null;
    this._req.recv = this._xhr('POST', '/sessions', body, REQ_TIMEOUT, function (res) {
      this._req.recv = null;
      var b = res.body, retrying;
      if (isOk(res.status) && b && b.session) {
        this.session = String(b.session);
        if (this.readyState === CLOSING) { this._closeNow(); return; }  // close() while opening
        this.protocol = b.protocol || '';
        if (b.poll_timeout > 0) this._pollTimeout = b.poll_timeout;
        if (b.idle_timeout > 0) this._idleTimeout = b.idle_timeout;
        this.readyState = OPEN;
        this._failing.recv = false;
        this._drainRetries = 0;
        this._recvBackoff.reset();
        this._log('session', this.session, 'via', this.transport);
        this._updateState();
        this._announce();
        if (this.readyState !== OPEN) return;
        this._startRecv();
        this._flush();
        return;
      }
      if (this.readyState === CLOSING) { this._finish(this._closeCode, this._closeReason, false); return; }
      if (this._drainRetry(res, 'recv', this._open)) return;
      this._openAttempts++;
      retrying = (isTransient(res.status) || res.status === 429) &&
        !(this._opts.maxRetries && this._openAttempts >= this._opts.maxRetries);
      this._emit('error', errorEvent(res, retrying));
      if (this.readyState === CLOSED) return;
      if (!retrying) { this._finish(1006, errorEvent(res).message, false); return; }
      this._retry('recv', 'recv', this._recvBackoff, res.retryAfter, this._open);
    });
  };

  /* ---- WebSocket -------------------------------------------------------- */

  P._openWs = function () {
    var self = this, ws, openedAt = 0, gotData = false;
    try {
      ws = this._opts.protocol ? new global.WebSocket(this._wsUrl, this._opts.protocol) :
        new global.WebSocket(this._wsUrl);
    } catch (e) {
      this._wsFallback('WebSocket failed: ' + (e && e.message));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._later('wsOpen', WS_OPEN_TIMEOUT, function () {
      this._wsFallback('no answer to the WebSocket upgrade in ' + WS_OPEN_TIMEOUT + ' ms');
    });
    ws.onopen = function () {
      if (self._ws !== ws) return;
      self._cancel('wsOpen');
      openedAt = now();
      self._wsOpen = true;
      self.protocol = ws.protocol || '';
      self.readyState = OPEN;
      self._log('WebSocket open', self._wsUrl);
      self._updateState();
      self._announce();
      self._flush();
    };
    ws.onmessage = function (e) {
      if (self._ws !== ws || self.readyState !== OPEN) return;
      gotData = true;
      self._wsMessage(e.data);
    };
    ws.onerror = noop;  // onclose follows and tells the rest
    ws.onclose = function (e) {
      if (self._ws !== ws) return;
      self._ws = null;
      self._wsOpen = false;
      self._cancel('wsOpen');
      self._log('WebSocket closed', e.code, e.reason, e.wasClean ? 'clean' : 'not clean');
      if (self.readyState === CLOSING) self._finish(self._closeCode, self._closeReason, e.wasClean);
      else if (!openedAt || (!gotData && !e.wasClean && now() - openedAt < WS_QUIET)) {
        self._wsFallback(openedAt ? 'WebSocket broke before any message' : 'WebSocket upgrade failed');
      } else self._finish(e.code || 1005, e.reason, e.wasClean);
    };
  };
  // Detach and close the socket (no more events from it).
  P._dropWs = function (code, reason) {
    var ws = this._ws;
    this._ws = null;
    this._wsOpen = false;
    this._cancel('wsOpen');
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = noop;
    try { if (ws.readyState === OPEN) ws.close(code, reason); else ws.close(); } catch (e) {}
  };
  // The WebSocket does not get through: remember it and go on over HTTP.
  P._wsFallback = function (why) {
    this._log(why);
    this._dropWs(1000, '');
    if (this._wsUrl) wsFailed[hostOf(this._wsUrl)] = true;
    if (this.readyState === CLOSING) { this._finish(this._closeCode, this._closeReason, false); return; }
    if (this._opts.transport === 'ws') { this._finish(1006, why, false); return; }
    this.transport = this._opts.transport !== 'poll' && global.EventSource ? 'sse' : 'poll';
    this._log('falling back to', this.transport);
    this._updateState();
    this._emit('transportchange', {}, [this.transport]);
    if (this.readyState !== CLOSED) this._open();
  };
  P._wsMessage = function (d) {
    var ev = { data: d, seq: ++this._last };
    if (typeof d !== 'string') {
      ev.binary = true;
      if (this.binaryType !== 'arraybuffer' || !hasTypedArrays()) ev.data = toBase64(new Uint8Array(d));
    }
    this._emit('message', ev);
  };

  /* ---- receiving ------------------------------------------------------- */

  P._startRecv = function () {
    if (this.readyState !== OPEN) return;
    if (this.transport === 'sse') this._sse();
    else this._poll();
  };
  P._stopRecv = function () {
    this._cancel('recv');
    this._abort('recv');
    if (this._es) { this._es.close(); this._es = null; }
  };
  P._recvOk = function () {
    if (this._failing.recv) { this._failing.recv = false; this._updateState(); }
  };
  P._recvFail = function (res) {
    if (this._drainRetry(res, 'recv', this._startRecv)) return;
    if (res.status === 404 || res.status === 410) this._gone(res);
    else if (isTransient(res.status) || res.status === 429 || res.bad) {
      this._retry('recv', 'recv', this._recvBackoff, res.retryAfter, this._startRecv);
    } else this._fail(res, 1002);
  };

  // Long-poll: ack carries the last seq seen; after a lost response the same ack
  // makes the gateway send the same messages again.
  P._poll = function () {
    var timeout = (this._pollTimeout + 15) * 1000;
    this._req.recv = this._xhr('GET', this._path('/poll?ack=' + this._last), null, timeout, function (res) {
      this._req.recv = null;
      if (res.status === 200 && res.body && !res.bad) {
        this._recvBackoff.reset();
        this._drainRetries = 0;
        this._recvOk();
        this._deliver(res.body);
        this._startRecv();
      } else this._recvFail(res);
    });
  };
  P._deliver = function (b) {
    var m = b.messages || [], k;
    if (b.lost) this._lost(b.lost);
    for (k = 0; k < m.length && this.readyState === OPEN; k++) {
      if (m[k].binary !== undefined) this._message(m[k].seq, m[k].binary, true);
      else this._message(m[k].seq, m[k].text, false);
    }
    if (b.closed && this.readyState === OPEN) this._finish(b.closed.code, b.closed.reason, true);
  };
  P._message = function (seq, data, binary) {
    seq = +seq;
    if (!(seq > this._last)) return;   // duplicate (or no seq at all)
    this._last = seq;
    var ev = { data: data, seq: seq };
    if (binary) {
      ev.binary = true;
      if (this.binaryType === 'arraybuffer' && hasTypedArrays()) ev.data = fromBase64(data);
    }
    if (this.transport === 'sse') this._ackSoon();
    this._emit('message', ev);
  };
  P._lost = function (lost) {
    var to = +lost.to;
    if (!(to > this._last)) return;
    var from = Math.max(+lost.from, this._last + 1);
    this._last = to;
    if (this.transport === 'sse') this._ackSoon();
    this._emit('lost', { lost: { from: from, to: to } });
  };

  // SSE: we never let EventSource reconnect by itself (it would reuse the old
  // last_event_id in the URL and cannot tell us why it failed). On error we close
  // it, POST an ack as a probe (a status code tells "gone" from "network"), and
  // open a new stream with last_event_id = the last seq seen.
  P._sse = function () {
    var self = this, started = now(), opened = false, gotEvent = false, es;
    var url = this.url + this._path('/events?last_event_id=' + this._last);
    try {
      es = this._cross ? new global.EventSource(url, { withCredentials: true }) : new global.EventSource(url);
    } catch (e) {
      this._log('EventSource failed:', e && e.message);
      this.transport = 'poll';
      this._emit('transportchange', {}, ['poll']);
      this._poll();
      return;
    }
    this._es = es;
    function on(type, fn) {
      es.addEventListener(type, function (e) {
        if (self._es !== es) return;
        var d;
        try { d = JSON.parse(e.data); } catch (x) { self._log('bad', type, 'event'); return; }
        gotEvent = true;
        self._sseBad = 0;
        self._recvBackoff.reset();
        fn(d, e);
      }, false);
    }
    es.onopen = function () {
      if (self._es !== es) return;
      opened = true;
      self._recvOk();
    };
    on('message', function (d, e) { self._message(e.lastEventId, String(d), false); });
    on('binary', function (d, e) { self._message(e.lastEventId, d, true); });
    on('lost', function (d) { self._lost(d); });
    on('close', function (d) {
      // acknowledge what came before the close: until then the gateway keeps
      // it (and the close) for a resume, and only then forgets the session
      if (self._last > self._acked) self._xhr('POST', self._path('/ack?ack=' + self._last), null, REQ_TIMEOUT, noop);
      self._stopRecv();
      self._finish(d.code || 1005, d.reason, true);
    });
    es.onerror = function () {
      if (self._es !== es) return;
      var lived = now() - started;
      es.close();
      self._es = null;
      if (!gotEvent && (!opened || lived < 1000)) self._sseBad++;
      else if (lived > 5000) self._recvBackoff.reset();
      self._probe();
    };
  };
  P._probe = function () {
    var n = this._last;
    this._req.recv = this._xhr('POST', this._path('/ack?ack=' + n), null, REQ_TIMEOUT, function (res) {
      this._req.recv = null;
      if (!isOk(res.status)) { this._recvFail(res); return; }
      if (n > this._acked) this._acked = n;
      if (this._opts.transport === 'auto' && this._sseBad >= 2) {
        this._log('SSE keeps failing, falling back to long-poll');
        this.transport = 'poll';
        this._emit('transportchange', {}, ['poll']);
      }
      this._later('recv', this.transport === 'poll' ? 0 : this._delay(this._recvBackoff), this._startRecv);
    });
  };

  // SSE acks: at most ACK_DELAY ms after the first unacked message, or at once
  // after ACK_EVERY of them; one ack request at a time.
  P._ackSoon = function () {
    if (++this._unacked >= ACK_EVERY) this._ackNow();
    else if (!this._timers.ack) this._later('ack', ACK_DELAY, this._ackNow);
  };
  P._ackNow = function () {
    var n = this._last;
    this._cancel('ack');
    if (this._req.ack || this.readyState !== OPEN || n <= this._acked) return;
    this._unacked = 0;
    this._req.ack = this._xhr('POST', this._path('/ack?ack=' + n), null, REQ_TIMEOUT, function (res) {
      this._req.ack = null;
      if (isOk(res.status)) {
        if (n > this._acked) this._acked = n;
        this._ackBackoff.reset();
        if (this._last > this._acked) this._later('ack', ACK_DELAY, this._ackNow);
      } else if (res.status === 404 || res.status === 410) this._gone(res);
      else if (isTransient(res.status) || res.status === 429) {
        this._later('ack', Math.max(res.retryAfter * 1000, this._delay(this._ackBackoff)), this._ackNow);
      } else this._log('ack failed with', res.status);
    });
  };

  /* ---- sending --------------------------------------------------------- */

  P.send = function (data) {
    var item;
    if (this.readyState >= CLOSING) return false;
    if (typeof data === 'string') item = { m: data, n: utf8Length(data), raw: data };
    else if (isBinary(data)) {
      data = toBytes(data);
      item = { m: { binary: toBase64(data) }, n: data.length, raw: data };
    } else if (typeof Blob !== 'undefined' && data instanceof Blob) {
      throw new TypeError('PollGate.send: Blob is not supported, send an ArrayBuffer');
    } else item = { m: String(data), n: utf8Length(String(data)), raw: String(data) };
    this._queue.push(item);
    this.bufferedAmount += item.n;
    this._flush();
    return true;
  };
  // Everything queued (up to MAX_BATCH bytes / MAX_BATCH_MSGS) goes in one POST; the next batch
  // waits until the gateway acked this one.
  P._flush = function () {
    if (this.transport === 'ws') { this._flushWs(); return; }
    if (this._inflight || !this._queue.length || !this.session || this.readyState === CLOSED) return;
    var batch = [], size = 0, msgs = [];
    while (this._queue.length && (!batch.length ||
        (size + this._queue[0].n <= MAX_BATCH && batch.length < MAX_BATCH_MSGS))) {
      batch.push(this._queue.shift());
      size += batch[batch.length - 1].n;
      msgs.push(batch[batch.length - 1].m);
    }
    this._sendSeq++;
    this._inflight = { seq: this._sendSeq, size: size,
      body: JSON.stringify({ seq: this._sendSeq, messages: msgs }) };
    this._post();
  };
  // WebSocket: hand everything queued to the socket (it buffers; bufferedAmount then
  // counts only what is still queued here, before the socket opened).
  P._flushWs = function () {
    var item;
    if (!this._wsOpen || !this._ws) return;
    while (this._queue.length) {
      item = this._queue.shift();
      this.bufferedAmount -= item.n;
      this._ws.send(item.raw);
    }
  };
  P._post = function () {
    var b = this._inflight;
    this._req.send = this._xhr('POST', this._path('/send'), b.body, 2 * REQ_TIMEOUT, function (res) {
      this._req.send = null;
      if (isOk(res.status)) {
        this._inflight = null;
        this.bufferedAmount -= b.size;
        this._sendBackoff.reset();
        this._drainRetries = 0;
        if (this._failing.send) { this._failing.send = false; this._updateState(); }
        this._flush();
        if (this.readyState === CLOSING && !this._inflight) this._closeNow();
      } else if (this._drainRetry(res, 'send', this._post)) {
        // retried at once
      } else if (res.status === 404 || res.status === 410) this._gone(res);
      else if (res.status === 429) {
        this._later('send', Math.max(res.retryAfter * 1000, this._delay(this._sendBackoff)), this._post);
      } else if (isTransient(res.status)) {
        this._retry('send', 'send', this._sendBackoff, res.retryAfter, this._post);
      } else this._fail(res, res.status === 413 ? 1009 : 1002);
    });
  };

  /* ---- closing --------------------------------------------------------- */

  P.close = function (code, reason) {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new Error('InvalidAccessError: close code must be 1000 or 3000-4999');
    }
    if (this.readyState >= CLOSING) return;
    var wasOpen = this.readyState === OPEN, opening = !!this._req.recv && !this.session;
    this._closeCode = code === undefined ? 1000 : code;
    this._closeReason = reason === undefined ? '' : String(reason);
    this.readyState = CLOSING;
    this._setState('closing');
    if (this.transport === 'ws') {
      // Everything queued was handed to the socket at open; the close handshake
      // carries the code. A socket still connecting is simply abandoned.
      if (this._wsOpen) {
        // (a reason over 123 bytes makes WebSocket.close throw: then onclose has it, the socket not)
        try { this._ws.close(this._closeCode, this._closeReason); } catch (e) { this._ws.close(this._closeCode); }
        this._later('closeWait', CLOSE_WAIT, function () { this._finish(this._closeCode, this._closeReason, false); });
      } else this._finish(this._closeCode, this._closeReason, false);
      return;
    }
    if (opening) return;  // the open request's callback finishes the job
    this._stopRecv();
    if (!wasOpen) { this._finish(this._closeCode, this._closeReason, false); return; }
    if (this._inflight || this._queue.length) {
      this._later('closeWait', CLOSE_WAIT, this._closeNow);
      this._flush();
    } else this._closeNow();
  };
  P._closeNow = function () {
    var code = this._closeCode, reason = this._closeReason;
    this._cancel('closeWait');
    this._cancel('send');
    this._abort('send');
    // The code and reason stay local: protocol v1's /close takes no body.
    this._req.close = this._xhr('POST', this._path('/close'), null, 5000, function (res) {
      this._req.close = null;
      this._finish(code, reason, isOk(res.status) || res.status === 404 || res.status === 410);
    });
  };
  // Page going away: tell the gateway now rather than after the idle timeout.
  P._unload = function () {
    if (!this.session || this.readyState === CLOSED) return;
    var url = this.url + this._path('/close'), nav = global.navigator;
    try {
      if (!(nav && nav.sendBeacon && nav.sendBeacon(url))) this._xhr('POST', this._path('/close'), null, 5000, noop);
    } catch (e) {}
  };

  // Network is back (or the page asked): retry now instead of waiting out the back-off.
  P._kick = function () {
    if (this.readyState === CLOSED || this.readyState === CLOSING || this.transport === 'ws') return;
    this._recvBackoff.reset();
    this._sendBackoff.reset();
    if (!this.session) {
      if (this._timers.recv) { this._cancel('recv'); this._open(); }
      return;
    }
    this._stopRecv();   // the stream may have died silently: replace it
    this._startRecv();
    if (this._timers.send) { this._cancel('send'); this._post(); }
  };
  P.reconnect = P._kick;

  global.PollGate = PollGate;
  if (typeof module === 'object' && module && module.exports) module.exports = PollGate;
}(typeof window !== 'undefined' ? window : typeof self !== 'undefined' ? self : this));

#!/usr/bin/env python3
"""Writes test/fuzz/seeds/http_front/: the seed corpus of fuzz_http_front.

A handful of valid requests per endpoint of both dialects (as the harness
configures them: native /chat and /other, SockJS /sj and /strict/js,
static files) and the rows of test/integration/http_malformed.test.mjs.
"~~~" separates connections, "@@" is the last native session id (see
fuzz_http_front.c). Run from anywhere; (re)writes these files, leaves others there."""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'seeds', 'http_front')
SEP = b'~~~'


def req(line, headers=(), body=b'', host=True):
    if isinstance(body, str):
        body = body.encode()
    h = [line] + (['Host: x'] if host else []) + list(headers)
    return ('\r\n'.join(h) + '\r\n\r\n').encode('latin1') + body


def post(path, body=b'', ctype=None, extra=()):
    if isinstance(body, str):
        body = body.encode()
    hs = ([f'Content-Type: {ctype}'] if ctype else []) + [f'Content-Length: {len(body)}'] + list(extra)
    return req(f'POST {path} HTTP/1.1', hs, body)


def get(path, extra=()):
    return req(f'GET {path} HTTP/1.1', extra)


def ws_upgrade(path, extra=()):
    return req(f'GET {path} HTTP/1.1', ['Upgrade: websocket', 'Connection: Upgrade',
                                       'Sec-WebSocket-Version: 13',
                                       'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='] + list(extra))


def frame(op, payload):
    """A masked client frame (zero mask: the payload stays readable)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return bytes([0x80 | op, 0x80 | len(payload)]) + b'\0\0\0\0' + payload


OPEN = post('/chat/sessions')
SEEDS = {
    # ---- native protocol, route /chat (origins http://good.example)
    'n_open': OPEN,
    'n_open_protocol': post('/chat/sessions', '{"protocol":["v2","v1"]}', 'application/json',
                            ['Origin: http://good.example', 'Cookie: a=b', 'X-Fuzz: 1']),
    'n_open_fail': post('/chat/sessions', '{"protocol":"fail"}', 'application/json'),
    'n_open_bad_origin': post('/chat/sessions', extra=['Origin: http://evil.example']),
    'n_preflight': req('OPTIONS /chat/sessions HTTP/1.1', ['Origin: http://good.example',
                                                          'Access-Control-Request-Method: POST']),
    'n_poll': SEP.join([OPEN, get('/chat/sessions/@@/poll?ack=0'), get('/chat/sessions/@@/poll?ack=1')]),
    'n_poll_held': SEP.join([OPEN, get('/chat/sessions/@@/poll?ack=1'), get('/chat/sessions/@@/poll')]),
    'n_events': SEP.join([OPEN, get('/chat/sessions/@@/events', ['Last-Event-ID: 0'])]),
    'n_events_resume': SEP.join([OPEN, post('/chat/sessions/@@/send', 'flood', 'text/plain'),
                                 get('/chat/sessions/@@/events?last_event_id=3')]),
    'n_send_text': SEP.join([OPEN, post('/chat/sessions/@@/send', 'hello', 'text/plain'),
                             get('/chat/sessions/@@/poll?ack=0')]),
    'n_send_json': SEP.join([OPEN, post('/chat/sessions/@@/send',
                                        '{"seq":1,"messages":["hi",{"binary":"AAEC"}]}',
                                        'application/json'),
                             post('/chat/sessions/@@/send', '{"seq":1,"messages":["again"]}',
                                  'application/json'),
                             get('/chat/sessions/@@/poll?ack=1')]),
    'n_send_chunked': SEP.join([OPEN, req('POST /chat/sessions/@@/send?seq=1 HTTP/1.1',
                                          ['Content-Type: text/plain', 'Transfer-Encoding: chunked'],
                                          b'5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n')]),
    'n_flood_ack': SEP.join([OPEN, post('/chat/sessions/@@/send', 'flood', 'text/plain'),
                             get('/chat/sessions/@@/poll?ack=0'), post('/chat/sessions/@@/ack?ack=8'),
                             get('/chat/sessions/@@/poll?ack=8')]),
    'n_binary': SEP.join([OPEN, post('/chat/sessions/@@/send', 'bin', 'text/plain'),
                          get('/chat/sessions/@@/poll?ack=1')]),
    'n_upstream_close': SEP.join([OPEN, post('/chat/sessions/@@/send', 'close4001', 'text/plain'),
                                  get('/chat/sessions/@@/poll?ack=1'), get('/chat/sessions/@@/poll?ack=2'),
                                  req('DELETE /chat/sessions/@@ HTTP/1.1')]),
    'n_delete': SEP.join([OPEN, req('DELETE /chat/sessions/@@ HTTP/1.1'), get('/chat/sessions/@@/poll')]),
    'n_close_post': SEP.join([OPEN, post('/chat/sessions/@@/close'), post('/chat/sessions/@@/close')]),
    'n_pipelined': OPEN + SEP + get('/chat/sessions/@@/poll?ack=0') +
                   post('/chat/sessions/@@/send', 'x', 'text/plain') + post('/chat/sessions/@@/ack?ack=1'),
    'n_session_preflight': SEP.join([OPEN, req('OPTIONS /chat/sessions/@@/send HTTP/1.1',
                                               ['Origin: http://good.example'])]),
    'n_ws': ws_upgrade('/chat/ws', ['Sec-WebSocket-Protocol: chat', 'Origin: http://good.example'])
            + frame(1, 'hi') + frame(2, 'bin') + frame(9, 'p') + frame(8, b'\x03\xe8'),
    'n_other': SEP.join([post('/other/sessions'), get('/other/sessions/@@/events'),
                         get('/other/ws'), get('/chat/sessions/@@/poll')]),
    'n_keepalive_10': req('GET /chat/sessions HTTP/1.0', host=False) ,
    # ---- static files
    'static': get('/') + get('/index.html') + req('HEAD /app.js HTTP/1.1') + get('/sub/a.txt')
              + get('/.secret') + get('/nope.png'),
    # ---- SockJS, route /sj (origins *, cookie_needed, binary = base64)
    'sj_info': get('/sj/sockjs') + get('/sj/sockjs/') + get('/sj/sockjs/info', ['Origin: http://x'])
               + req('OPTIONS /sj/sockjs/info HTTP/1.1', ['Access-Control-Request-Headers: x-a']),
    'sj_iframe': get('/sj/sockjs/iframe.html') + get('/sj/sockjs/iframe-1.0.3.html',
                                                    ['If-None-Match: "x"']),
    'sj_xhr': SEP.join([post('/sj/sockjs/000/s1/xhr'),
                        post('/sj/sockjs/000/s1/xhr_send', '["a","flood","bin"]'),
                        post('/sj/sockjs/000/s1/xhr'), post('/sj/sockjs/000/s1/xhr')]),
    'sj_xhr_streaming': SEP.join([post('/sj/sockjs/000/s2/xhr_streaming', extra=['Cookie: JSESSIONID=abc']),
                                  post('/sj/sockjs/000/s2/xhr_send', '["close3000"]')]),
    'sj_eventsource': SEP.join([get('/sj/sockjs/000/s3/eventsource'),
                                post('/sj/sockjs/000/s3/xhr_send', '"flood"')]),
    'sj_htmlfile': SEP.join([get('/sj/sockjs/000/s4/htmlfile?c=cb'),
                             get('/sj/sockjs/000/s4/htmlfile?c=cb')]),
    'sj_jsonp': SEP.join([get('/sj/sockjs/000/s5/jsonp?c=cb'),
                          post('/sj/sockjs/000/s5/jsonp_send', 'd=%5B%22x%22%5D',
                               'application/x-www-form-urlencoded'),
                          post('/sj/sockjs/000/s5/jsonp_send', '["y"]', 'text/plain'),
                          get('/sj/sockjs/000/s5/jsonp?callback=cb')]),
    'sj_options': req('OPTIONS /sj/sockjs/000/s6/xhr HTTP/1.1') + req('OPTIONS /sj/sockjs/000/s6/jsonp HTTP/1.1'),
    'sj_websocket': ws_upgrade('/sj/sockjs/000/s7/websocket') + frame(1, '["a","b"]') + frame(1, '"c"')
                    + frame(1, 'not json'),
    'sj_raw_websocket': ws_upgrade('/sj/sockjs/websocket') + frame(1, 'hi') + frame(8, b''),
    'sj_bad_callback': get('/sj/sockjs/000/s8/jsonp?c=%3Cscript') + get('/sj/sockjs/000/s8/htmlfile'),
    'sj_null_origin': post('/sj/sockjs/000/s9/xhr', extra=['Origin: null']),
    # ---- SockJS, route /strict (origins http://good.example, binary = drop)
    'st_xhr_good': SEP.join([post('/strict/js/000/t1/xhr', extra=['Origin: http://good.example']),
                             post('/strict/js/000/t1/xhr_send', '["bin"]', extra=['Origin: http://good.example']),
                             post('/strict/js/000/t1/xhr', extra=['Origin: http://good.example'])]),
    'st_xhr_evil': post('/strict/js/000/t2/xhr', extra=['Origin: http://evil.example']),
    'st_jsonp_referer': SEP.join([get('/strict/js/000/t3/jsonp?c=cb', ['Referer: http://good.example/app/page.html']),
                                  post('/strict/js/000/t3/jsonp_send', 'd=%5B%22x%22%5D',
                                       'application/x-www-form-urlencoded',
                                       ['Referer: http://good.example/app/page.html'])]),
    'st_jsonp_evil_referer': get('/strict/js/000/t4/jsonp?c=cb', ['Referer: http://evil.example/x']),
    'st_htmlfile_no_referer': get('/strict/js/000/t5/htmlfile?c=cb'),
}

CRLF = '\r\n'
ID = '@@'
MALFORMED = [
    'GARBAGE\r\n\r\n',
    'GET /index.html HTTP/1.1 extra\r\n\r\n',
    '   \r\n\r\n',
    'FOO /index.html HTTP/1.1\r\nHost: x\r\n\r\n',
    'get /index.html HTTP/1.1\r\nHost: x\r\n\r\n',
    'PUT /chat/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
    'GET /index.html\r\n',
    'GET /index.html HTTP/2.0\r\nHost: x\r\n\r\n',
    'GET /index.html HTTP/x.y\r\nHost: x\r\n\r\n',
    'GET http://x/index.html HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET * HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET health HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /%2E%2E%2Fsecret.txt HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /index%zz.html HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /index.html% HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /index.html%00.txt HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n',
    'GET /index.html HTTP/1.1\nHost: x\n\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'x' * 9000 + '\r\n\r\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\n' + ''.join(f'X-H{i}: v\r\n' for i in range(120)) + '\r\n',
    'GET /index.html HTTP/1.1\r\n\r\n',
    'GET /index.html HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n'
    'Transfer-Encoding: chunked\r\n\r\n1\r\nZ\r\n0\r\n\r\nGET /index.html HTTP/1.1\r\nHost: x\r\n\r\n',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n1\r\nZ\r\n0\r\n\r\n',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 5\r\n\r\nhello',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nhello',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551621\r\n\r\nhello',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nhello',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n',
    'POST /chat/sessions/@@/send HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES\r\n\r\n',
    'GET /other/sessions/@@/poll?ack=0 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/AAAAAAAAAAAAAAAAAAAA!!/poll?ack=0 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions//poll?ack=0 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/@@/nope HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/@@/poll?ack=0&ack=99 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/@@/poll?ack=184467440737095516150 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/@@/poll?ack=9007199254740993 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/@@/poll?ack=-1 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/@@/poll?ack=1e3 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /chat/sessions/@@/poll?ack= HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /sj/sockjs/000/m1/jsonp?c=a%3Cb HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /sj/sockjs/000/m1/jsonp?c=a(b HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /sj/sockjs/000/m1/jsonp?c=%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /sj/sockjs/000/m1/jsonp?c=' + 'a' * 33 + ' HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /sj/sockjs/' + 's' * 129 + '/m1/xhr HTTP/1.1\r\nHost: x\r\n\r\n',
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)
    for i, row in enumerate(MALFORMED):
        data = row.encode('latin1')
        if b'@@' in data:  # a live session for the row to address
            data = OPEN + SEP + data
        with open(os.path.join(OUT, f'malformed_{i:02d}'), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()

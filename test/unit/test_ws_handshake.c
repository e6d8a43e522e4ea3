/*
 * test_ws_handshake.c - URL parsing, key/accept, request builder and the
 * incremental 101 response parser. Data-driven where it can be: each table
 * row is an input and the outcome it must produce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "ws_handshake.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define FRAME "\x81\x05hello" /* frame bytes that follow the response */

/* ------------------------------------------------------------------- URL */

struct url_case {
    const char *in;
    bool tls;
    const char *host;
    unsigned port;
    const char *resource;
    const char *host_header;
};

static const struct url_case good_urls[] = {
    { "ws://example.com", false, "example.com", 80, "/", "example.com" },
    { "ws://example.com/", false, "example.com", 80, "/", "example.com" },
    { "wss://example.com", true, "example.com", 443, "/", "example.com" },
    { "WS://Example.COM/Chat", false, "Example.COM", 80, "/Chat",
      "Example.COM" },
    { "wSs://h/a/b?x=1&y=%20", true, "h", 443, "/a/b?x=1&y=%20", "h" },
    { "ws://h?q=1", false, "h", 80, "/?q=1", "h" },
    { "ws://h/?", false, "h", 80, "/?", "h" },
    { "ws://example.com:80/x", false, "example.com", 80, "/x",
      "example.com" },
    { "wss://example.com:443/x", true, "example.com", 443, "/x",
      "example.com" },
    { "ws://example.com:443/x", false, "example.com", 443, "/x",
      "example.com:443" },
    { "wss://example.com:80/x", true, "example.com", 80, "/x",
      "example.com:80" },
    { "ws://example.com:8080/chat?room=1", false, "example.com", 8080,
      "/chat?room=1", "example.com:8080" },
    { "ws://h:1", false, "h", 1, "/", "h:1" },
    { "ws://h:65535", false, "h", 65535, "/", "h:65535" },
    { "ws://h:08080/", false, "h", 8080, "/", "h:8080" },
    { "ws://127.0.0.1:9000/x", false, "127.0.0.1", 9000, "/x",
      "127.0.0.1:9000" },
    { "ws://[::1]:9000/x", false, "::1", 9000, "/x", "[::1]:9000" },
    { "ws://[::1]/", false, "::1", 80, "/", "[::1]" },
    { "wss://[2001:db8::1]:443", true, "2001:db8::1", 443, "/",
      "[2001:db8::1]" },
    { "ws://[::ffff:192.0.2.1]:81?a", false, "::ffff:192.0.2.1", 81, "/?a",
      "[::ffff:192.0.2.1]:81" },
    { "ws://my_host-1.example.:8000/p", false, "my_host-1.example.", 8000,
      "/p", "my_host-1.example.:8000" },
    { "ws://localhost/a:b@c", false, "localhost", 80, "/a:b@c",
      "localhost" }, /* '@' in the path is not userinfo */
};

static void test_url_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_urls / sizeof good_urls[0]; i++) {
        const struct url_case *c = &good_urls[i];
        struct ws_url u;
        struct gw_error err = { 0 };
        int rc = ws_url_parse(c->in, &u, &err);
        if (rc != 0)
            fail_msg("%s: %s", c->in, err.msg);
        assert_int_equal(u.tls, c->tls);
        assert_string_equal(u.host, c->host);
        assert_int_equal(u.port, c->port);
        assert_string_equal(u.resource, c->resource);
        assert_string_equal(u.host_header, c->host_header);
        ws_url_clear(&u);
        assert_null(u.host);
    }
}

struct url_bad {
    const char *in;
    const char *msg; /* substring of the error text */
};

static const struct url_bad bad_urls[] = {
    { "http://example.com/", "unsupported scheme 'http' (use ws:// or wss://)" },
    { "HTTPS://example.com/", "unsupported scheme 'HTTPS'" },
    { "ftp://h/", "unsupported scheme 'ftp'" },
    { "wsx://h/", "unsupported scheme 'wsx'" },
    { "w://h/", "unsupported scheme 'w'" },
    { "://h/", "unsupported scheme ''" },
    { "example.com", "not a ws:// or wss:// URL" },
    { "ws:/example.com", "not a ws:// or wss:// URL" },
    { "", "empty URL" },
    { "ws://", "empty host" },
    { "ws:///path", "empty host" },
    { "ws://:80/", "empty host" },
    { "ws://?q", "empty host" },
    { "ws://[]:80/", "empty host" },
    { "ws://user@h/", "userinfo" },
    { "ws://user:pw@h:80/", "userinfo" },
    { "ws://@h/", "userinfo" },
    { "ws://h/#frag", "fragment" },
    { "ws://h/p?q#", "fragment" },
    { "ws://h#x", "fragment" },
    { "ws://h:/", "empty port" },
    { "ws://h:", "empty port" },
    { "ws://[::1]:/", "empty port" },
    { "ws://h:0/", "out of range" },
    { "ws://h:65536/", "out of range" },
    { "ws://h:99999/", "out of range" },
    { "ws://h:123456/", "invalid port" },
    { "ws://h:-1/", "invalid port" },
    { "ws://h:8a/", "invalid port" },
    { "ws://h:80:81/", "brackets" },
    { "ws://h /", "space or control character at offset 6" },
    { " ws://h/", "space or control character at offset 0" },
    { "ws://h/a b", "space or control character" },
    { "ws://h/\t", "space or control character" },
    { "ws://h/\r\nX: y", "space or control character" },
    { "ws://h/\x01", "space or control character" },
    { "ws://h/\x7f", "space or control character" },
    { "ws://h/caf\xc3\xa9", "non-ASCII" },
    { "ws://[::1/", "missing ']'" },
    { "ws://[::1]x/", "after ']'" },
    { "ws://[zz::1]/", "invalid IPv6" },
    { "ws://[1.2.3.4]/", "invalid IPv6" },
    { "ws://[fe80::1%25eth0]/", "invalid IPv6" },
    { "ws://::1/", "must be in brackets" },
    { "ws://2001:db8::1:80/", "must be in brackets" },
    { "ws://a..b/", "empty label" },
    { "ws://.a/", "empty label" },
    { "ws://a%41/", "invalid character '%' in host name" },
    { "ws://a!b/", "invalid character '!'" },
    { "ws://256.1.1.1/", "invalid IPv4" },
    { "ws://1.2.3/", "invalid IPv4" },
    { "ws://2130706433/", "invalid IPv4" },
};

static void test_url_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        const struct url_bad *c = &bad_urls[i];
        struct ws_url u;
        struct gw_error err = { 0 };
        memset(&u, 0xff, sizeof u); /* garbage in: must be cleared */
        int rc = ws_url_parse(c->in, &u, &err);
        if (rc != GW_EINVAL)
            fail_msg("'%s' accepted (rc %d)", c->in, rc);
        assert_int_equal(err.code, GW_EINVAL);
        if (!strstr(err.msg, c->msg))
            fail_msg("'%s': message '%s' lacks '%s'", c->in, err.msg,
                     c->msg);
        assert_null(u.host);
        assert_null(u.resource);
        assert_null(u.host_header);
        ws_url_clear(&u);
    }
}

static void test_url_null_and_exact_msg(void **state)
{
    (void)state;
    struct ws_url u;
    struct gw_error err = { 0 };
    assert_int_equal(ws_url_parse(NULL, &u, &err), GW_EINVAL);
    assert_int_equal(ws_url_parse("http://x/", &u, NULL), GW_EINVAL);
    assert_int_equal(ws_url_parse("http://x/", &u, &err), GW_EINVAL);
    assert_string_equal(err.msg,
                        "unsupported scheme 'http' (use ws:// or wss://)");
    ws_url_clear(NULL); /* no-op */
}

/* ------------------------------------------------------- key and accept */

static void test_accept_rfc_vector(void **state)
{
    (void)state;
    char out[29];
    memset(out, 'x', sizeof out);
    ws_handshake_accept(KEY, out);
    assert_string_equal(out, ACCEPT);
    ws_handshake_accept("x3JJHMbDL1EzLkh9GBhXDw==", out); /* RFC 6455 1.3 */
    assert_int_equal(strlen(out), 28);
    assert_string_not_equal(out, ACCEPT);
}

static void test_key_new(void **state)
{
    (void)state;
    char a[25], b[25];
    unsigned char raw[32];
    assert_int_equal(ws_handshake_key_new(a), 0);
    assert_int_equal(ws_handshake_key_new(b), 0);
    assert_int_equal(strlen(a), 24);
    assert_int_equal(strlen(b), 24);
    assert_string_not_equal(a, b);
    /* 24 base64 chars with "==" decode to exactly 16 bytes */
    assert_int_equal(EVP_DecodeBlock(raw, (const unsigned char *)a, 24), 18);
    assert_memory_equal(a + 22, "==", 2);
    for (int i = 0; i < 22; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
                               "tuvwxyz0123456789+/",
                               a[i]));
}

/* ---------------------------------------------------------- request */

static void test_request_exact(void **state)
{
    (void)state;
    struct ws_url u;
    struct gw_buf b = { 0 };
    struct gw_error err = { 0 };
    const struct ws_header hs[] = {
        { "Origin", "http://example.com" },
        { "Cookie", "a=1; b=2" },
        { "X-Forwarded-For", "192.0.2.7" },
    };
    assert_int_equal(ws_url_parse("ws://server.example.com:8080/chat?x=1",
                                  &u, &err), 0);
    assert_int_equal(gw_buf_append(&b, "prefix|", 7), 0);
    assert_int_equal(ws_handshake_build_request(&b, &u, KEY,
                                                " chat ,superchat", hs, 3,
                                                &err), 0);
    assert_string_equal((char *)b.data,
                        "prefix|"
                        "GET /chat?x=1 HTTP/1.1\r\n"
                        "Host: server.example.com:8080\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: " KEY "\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Protocol: chat, superchat\r\n"
                        "Origin: http://example.com\r\n"
                        "Cookie: a=1; b=2\r\n"
                        "X-Forwarded-For: 192.0.2.7\r\n"
                        "\r\n");
    assert_int_equal(b.len, strlen((char *)b.data));
    ws_url_clear(&u);

    /* IPv6, default port, no protocols ("" counts as none), no headers */
    gw_buf_reset(&b);
    assert_int_equal(ws_url_parse("wss://[::1]", &u, &err), 0);
    assert_int_equal(ws_handshake_build_request(&b, &u, KEY, "", NULL, 0,
                                                &err), 0);
    assert_string_equal((char *)b.data,
                        "GET / HTTP/1.1\r\n"
                        "Host: [::1]\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: " KEY "\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "\r\n");
    ws_url_clear(&u);
    gw_buf_free(&b);
}

struct hdr_bad {
    const char *name, *value;
};

static const struct hdr_bad bad_headers[] = {
    { "", "x" },
    { NULL, "x" },
    { "X Foo", "x" },
    { "X:Foo", "x" },
    { "X-Foo\r\nEvil", "x" },
    { "X(Foo)", "x" },
    { "X-Foo", NULL },
    { "X-Foo", "a\r\nEvil: 1" },
    { "X-Foo", "a\nb" },
    { "X-Foo", "a\rb" },
    { "X-Foo", "a\x01" },
    { "X-Foo", "a\x7f" },
    { "Host", "evil" },
    { "host", "evil" },
    { "UPGRADE", "h2c" },
    { "connection", "close" },
    { "Sec-WebSocket-Key", KEY },
    { "sec-websocket-version", "8" },
    { "Sec-WebSocket-Protocol", "chat" },
    { "sec-websocket-extensions", "permessage-deflate" },
    { "Sec-WebSocket-Anything", "x" },
    { "Content-Length", "0" },
    { "transfer-encoding", "chunked" },
};

static void test_request_rejects(void **state)
{
    (void)state;
    struct ws_url u;
    struct gw_buf b = { 0 };
    struct gw_error err = { 0 };
    assert_int_equal(ws_url_parse("ws://h/", &u, &err), 0);
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        struct ws_header h[2] = { { "X-Ok", "fine" },
                                  { bad_headers[i].name,
                                    bad_headers[i].value } };
        err.msg[0] = 0;
        int rc = ws_handshake_build_request(&b, &u, KEY, NULL, h, 2, &err);
        if (rc != GW_EINVAL)
            fail_msg("header #%zu accepted", i);
        assert_true(err.msg[0] != 0);
        assert_int_equal(b.len, 0); /* nothing appended */
    }
    /* a tab inside a value is fine */
    struct ws_header tab = { "X-Tab", "a\tb" };
    assert_int_equal(ws_handshake_build_request(&b, &u, KEY, NULL, &tab, 1,
                                                &err), 0);
    gw_buf_reset(&b);

    static const char *const bad_protos[] = { "a b", "a,,b", "a;b", "chat,",
                                              "a\r\nX: y", "\"q\"" };
    for (size_t i = 0; i < sizeof bad_protos / sizeof bad_protos[0]; i++) {
        assert_int_equal(ws_handshake_build_request(&b, &u, KEY,
                                                    bad_protos[i], NULL, 0,
                                                    &err), GW_EINVAL);
        assert_non_null(strstr(err.msg, "subprotocol"));
    }
    static const char *const bad_keys[] = { "", "abc\r\nX: y", "a b" };
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
        assert_int_equal(ws_handshake_build_request(&b, &u, bad_keys[i],
                                                    NULL, NULL, 0, &err),
                         GW_EINVAL);
    assert_int_equal(ws_handshake_build_request(&b, &u, NULL, NULL, NULL, 0,
                                                &err), GW_EINVAL);
    assert_int_equal(ws_handshake_build_request(&b, NULL, KEY, NULL, NULL, 0,
                                                &err), GW_EINVAL);
    assert_int_equal(b.len, 0);

    /* a capped buffer: all or nothing, also when the cap is hit late */
    assert_int_equal(ws_handshake_build_request(&b, &u, KEY, NULL, NULL, 0,
                                                &err), 0);
    size_t full = b.len;
    gw_buf_reset(&b);
    struct ws_header big = { "X-Big", "0123456789012345678901234567890" };
    for (size_t max = 5; max < full + 4 + 40; max += 3) {
        b.max = max;
        gw_buf_reset(&b);
        assert_int_equal(gw_buf_append(&b, "keep", 4), 0);
        int rc = ws_handshake_build_request(&b, &u, KEY, "chat", &big, 1,
                                            &err);
        if (rc == 0)
            continue;
        assert_int_equal(rc, GW_ETOOBIG);
        assert_int_equal(b.len, 4);
        assert_string_equal((char *)b.data, "keep");
    }
    gw_buf_free(&b);
    ws_url_clear(&u);
}

/* ---------------------------------------------------------- response */

#define OK_RESP                                                            \
    "HTTP/1.1 101 Switching Protocols\r\n"                                 \
    "Upgrade: websocket\r\n"                                               \
    "Connection: Upgrade\r\n"                                              \
    "Sec-WebSocket-Accept: " ACCEPT "\r\n"                                 \
    "\r\n"

struct result {
    int rc;
    size_t consumed;
    enum ws_hs_fail fail;
    int status;
    char proto[64];
    char error[GW_ERROR_MSG_MAX];
};

/* Feed [buf, buf+len) in pieces ending at each cut; stop at a result. */
static struct result feed_cuts(const char *buf, size_t len,
                               const char *protos, size_t max,
                               const size_t *cuts, size_t ncuts)
{
    struct result res = { .rc = GW_EAGAIN };
    struct ws_handshake_resp *r = ws_handshake_resp_new(KEY, protos, max);
    assert_non_null(r);
    size_t pos = 0;
    for (size_t i = 0; i <= ncuts && res.rc == GW_EAGAIN; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        size_t used = 12345;
        res.rc = ws_handshake_resp_feed(r, buf + pos, end - pos, &used);
        assert_true(used <= end - pos);
        if (res.rc == GW_EAGAIN)
            assert_int_equal(used, end - pos); /* took all it was given */
        pos += used;
    }
    res.consumed = pos;
    res.fail = ws_handshake_resp_fail(r);
    res.status = ws_handshake_resp_status(r);
    const char *p = ws_handshake_resp_protocol(r);
    snprintf(res.proto, sizeof res.proto, "%s", p ? p : "");
    snprintf(res.error, sizeof res.error, "%s", ws_handshake_resp_error(r));
    if (res.rc != GW_EAGAIN) { /* finished: later feeds change nothing */
        size_t used = 99;
        assert_int_equal(ws_handshake_resp_feed(r, buf, len, &used), res.rc);
        assert_int_equal(used, 0);
        assert_int_equal(ws_handshake_resp_fail(r), res.fail);
    }
    ws_handshake_resp_free(r);
    return res;
}

static struct result feed_whole(const char *buf, const char *protos,
                                size_t max)
{
    return feed_cuts(buf, strlen(buf), protos, max, NULL, 0);
}

static void test_resp_good_whole(void **state)
{
    (void)state;
    const char *in = OK_RESP FRAME;
    struct result r = feed_whole(in, NULL, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.consumed, strlen(OK_RESP));
    assert_int_equal(r.fail, WS_HS_OK);
    assert_int_equal(r.status, 101);
    assert_string_equal(r.proto, "");
    assert_string_equal(r.error, "");
}

static void test_resp_byte_at_a_time(void **state)
{
    (void)state;
    const char *in = OK_RESP FRAME;
    size_t hdr = strlen(OK_RESP);
    struct ws_handshake_resp *r = ws_handshake_resp_new(KEY, NULL, 0);
    assert_non_null(r);
    assert_int_equal(ws_handshake_resp_status(r), 0);
    for (size_t i = 0; i < hdr; i++) {
        size_t used = 0;
        int rc = ws_handshake_resp_feed(r, in + i, 1, &used);
        assert_int_equal(used, 1);
        assert_int_equal(rc, i + 1 == hdr ? 0 : GW_EAGAIN);
        /* status is known from the end of "HTTP/1.1 101 " on */
        if (i >= strlen("HTTP/1.1 101 "))
            assert_int_equal(ws_handshake_resp_status(r), 101);
    }
    size_t used = 7;
    assert_int_equal(ws_handshake_resp_feed(r, in + hdr, 1, &used), 0);
    assert_int_equal(used, 0);
    size_t z = 7;
    ws_handshake_resp_free(r);

    /* empty feed is "need more" and consumes nothing */
    r = ws_handshake_resp_new(KEY, NULL, 0);
    assert_int_equal(ws_handshake_resp_feed(r, in, 0, &z), GW_EAGAIN);
    assert_int_equal(z, 0);
    ws_handshake_resp_free(r);
    ws_handshake_resp_free(NULL);
}

/* Every one and two split points give the same result as a whole feed. */
static void check_all_splits(const char *in, const char *protos,
                             size_t max)
{
    size_t len = strlen(in);
    struct result whole = feed_whole(in, protos, max);
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = { i, j };
            struct result s = feed_cuts(in, len, protos, max, cuts, 2);
            if (s.rc != whole.rc || s.fail != whole.fail ||
                strcmp(s.proto, whole.proto) != 0 ||
                strcmp(s.error, whole.error) != 0 ||
                (whole.rc == 0 && s.consumed != whole.consumed))
                fail_msg("split %zu/%zu: rc %d/%d fail %d/%d '%s' vs '%s'",
                         i, j, s.rc, whole.rc, s.fail, whole.fail, s.error,
                         whole.error);
        }
    }
}

static void test_resp_every_split(void **state)
{
    (void)state;
    check_all_splits(OK_RESP FRAME, NULL, 0);
    struct result r = feed_whole(OK_RESP FRAME, NULL, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.consumed, strlen(OK_RESP));

    const char *p = "HTTP/1.1 101 Switching Protocols\r\n"
                    "Sec-WebSocket-Protocol:  superchat \r\n"
                    "Connection: keep-alive,\r\n Upgrade\r\n"
                    "upgrade: WebSocket\r\n"
                    "X-Long-Unrelated-Header: 0123456789abcdef\r\n"
                    "sec-websocket-accept: " ACCEPT "\r\n\r\n" FRAME;
    check_all_splits(p, "chat, superchat", 0);
    r = feed_whole(p, "chat, superchat", 0);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.proto, "superchat");
    assert_int_equal(r.consumed, strlen(p) - strlen(FRAME));

    /* failures split the same way too */
    check_all_splits("HTTP/1.1 403 Forbidden\r\nX-A: b\r\n\r\nbody", NULL, 0);
    check_all_splits("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT
                     "\r\nSec-WebSocket-Extensions: x\r\n\r\n", NULL, 0);
    check_all_splits(OK_RESP, NULL, strlen(OK_RESP) - 1);
}

struct resp_case {
    const char *in;
    const char *protos;
    int rc;
    enum ws_hs_fail fail;
    const char *msg; /* substring of the error text */
};

#define L101 "HTTP/1.1 101 Switching Protocols\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define ACC "Sec-WebSocket-Accept: " ACCEPT "\r\n"

static const struct resp_case resp_cases[] = {
    /* accepted variants: whitespace, case, lists, folding */
    { L101 "upgrade:websocket\r\nCONNECTION:upgrade\r\n"
           "SEC-WEBSOCKET-ACCEPT:" ACCEPT "\r\n\r\n",
      NULL, 0, WS_HS_OK, "" },
    { L101 "Upgrade: \t WebSocket \t \r\nConnection:\tkeep-alive, Upgrade\r\n"
           "Sec-WebSocket-Accept:   " ACCEPT "  \r\n\r\n",
      NULL, 0, WS_HS_OK, "" },
    { L101 "Upgrade: websocket\r\nConnection: Upgrade, keep-alive\r\n" ACC
           "\r\n",
      NULL, 0, WS_HS_OK, "" },
    { L101 UPG "Connection: keep-alive,upgrade\r\n" ACC "\r\n", NULL, 0,
      WS_HS_OK, "" },
    { L101 UPG "Connection: keep-alive\r\nConnection: Upgrade\r\n" ACC "\r\n",
      NULL, 0, WS_HS_OK, "" },
    { L101 "Upgrade: h2c, websocket\r\n" CONN ACC "\r\n", NULL, 0, WS_HS_OK,
      "" },
    { L101 "Upgrade:\r\n websocket\r\nConnection: keep-alive,\r\n\tUpgrade\r\n"
           "Sec-WebSocket-Accept:\r\n " ACCEPT "\r\n\r\n",
      NULL, 0, WS_HS_OK, "" },
    { L101 UPG CONN ACC "Content-Length: 5\r\n\r\n", NULL, 0, WS_HS_OK, "" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: chat\r\n\r\n",
      "chat, superchat", 0, WS_HS_OK, "" },
    { L101 UPG CONN ACC "X-Empty:\r\nServer: test\r\n\r\n", NULL, 0,
      WS_HS_OK, "" },
    { "HTTP/1.1 101\r\n" UPG CONN ACC "\r\n", NULL, 0, WS_HS_OK, "" },
    { "HTTP/1.1 101 Switching Protocols\n" "Upgrade: websocket\n"
      "Connection: Upgrade\n" "Sec-WebSocket-Accept: " ACCEPT "\n\n",
      NULL, 0, WS_HS_OK, "" }, /* bare LF, tolerated */

    /* status */
    { "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!", NULL,
      GW_EPROTO, WS_HS_STATUS, "upgrade refused: HTTP 403 Forbidden" },
    { "HTTP/1.1 200 OK\r\n\r\n", NULL, GW_EPROTO, WS_HS_STATUS,
      "upgrade refused: HTTP 200 OK" },
    { "HTTP/1.1 302 Found\r\nLocation: /x\r\n" UPG CONN ACC "\r\n", NULL,
      GW_EPROTO, WS_HS_STATUS, "upgrade refused: HTTP 302 Found" },
    { "HTTP/1.1 404\r\n\r\n", NULL, GW_EPROTO, WS_HS_STATUS,
      "upgrade refused: HTTP 404" },
    { "HTTP/1.1 100 Continue\r\n\r\n", NULL, GW_EPROTO, WS_HS_STATUS,
      "HTTP 100" },
    { "HTTP/1.1 503 \x1b[31mred\r\n\r\n", NULL, GW_EPROTO, WS_HS_STATUS,
      "HTTP 503 ?[31mred" }, /* escapes do not reach the logs */
    { "HTTP/1.0 101 Switching Protocols\r\n" UPG CONN ACC "\r\n", NULL,
      GW_EPROTO, WS_HS_MALFORMED, "HTTP/1.0 (HTTP/1.1 required)" },
    { "HTTP/1.0 403 Forbidden\r\n\r\n", NULL, GW_EPROTO, WS_HS_STATUS,
      "HTTP 403" },

    /* Upgrade / Connection */
    { L101 CONN ACC "\r\n", NULL, GW_EPROTO, WS_HS_NO_UPGRADE,
      "lacks 'Upgrade: websocket'" },
    { L101 "Upgrade: h2c\r\n" CONN ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_NO_UPGRADE, "'Upgrade: h2c'" },
    { L101 "Upgrade: websocketx\r\n" CONN ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_NO_UPGRADE, "websocketx" },
    { L101 "Upgrade: web socket\r\n" CONN ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_NO_UPGRADE, "" },
    { L101 "Upgrade: web\r\n socket\r\n" CONN ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_NO_UPGRADE, "" }, /* a fold is a space, not a join */
    { L101 UPG ACC "\r\n", NULL, GW_EPROTO, WS_HS_NO_CONNECTION,
      "lacks 'Connection: Upgrade'" },
    { L101 UPG "Connection: keep-alive\r\n" ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_NO_CONNECTION, "Connection" },
    { L101 UPG "Connection: upgrades\r\n" ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_NO_CONNECTION, "Connection" },
    { L101 UPG "Connection: keep-alive upgrade\r\n" ACC "\r\n", NULL,
      GW_EPROTO, WS_HS_NO_CONNECTION, "Connection" },
    { L101 UPG "X-Connection: upgrade\r\n" ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_NO_CONNECTION, "Connection" },

    /* Sec-WebSocket-Accept */
    { L101 UPG CONN "\r\n", NULL, GW_EPROTO, WS_HS_BAD_ACCEPT,
      "lacks Sec-WebSocket-Accept" },
    { L101 UPG CONN "Sec-WebSocket-Accept: x3JJHMbDL1EzLkh9GBhXDw==\r\n\r\n",
      NULL, GW_EPROTO, WS_HS_BAD_ACCEPT,
      "mismatch: got 'x3JJHMbDL1EzLkh9GBhXDw==', expected '" ACCEPT "'" },
    { L101 UPG CONN "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n"
                    "\r\n",
      NULL, GW_EPROTO, WS_HS_BAD_ACCEPT, "mismatch" },
    { L101 UPG CONN "Sec-WebSocket-Accept: " ACCEPT "x\r\n\r\n", NULL,
      GW_EPROTO, WS_HS_BAD_ACCEPT, "mismatch" },
    { L101 UPG CONN "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n"
                    "\r\n",
      NULL, GW_EPROTO, WS_HS_BAD_ACCEPT, "mismatch" },
    { L101 UPG CONN "Sec-WebSocket-Accept:\r\n\r\n", NULL, GW_EPROTO,
      WS_HS_BAD_ACCEPT, "mismatch" },
    { L101 UPG CONN ACC ACC "\r\n", NULL, GW_EPROTO, WS_HS_BAD_ACCEPT,
      "sent 2 times" },
    { L101 UPG CONN "Sec-WebSocket-Accept: " ACCEPT ", " ACCEPT "\r\n\r\n",
      NULL, GW_EPROTO, WS_HS_BAD_ACCEPT, "mismatch" },

    /* extensions: we offer none */
    { L101 UPG CONN ACC "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
      NULL, GW_EPROTO, WS_HS_EXTENSION,
      "extension 'permessage-deflate' but none was offered" },
    { L101 UPG CONN ACC "sec-websocket-extensions:\r\n\r\n", NULL, GW_EPROTO,
      WS_HS_EXTENSION, "extension" },

    /* subprotocols */
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: chat\r\n\r\n", NULL,
      GW_EPROTO, WS_HS_PROTOCOL, "'chat' but none was offered" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: chat\r\n\r\n", "",
      GW_EPROTO, WS_HS_PROTOCOL, "none was offered" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
      "chat, superchat", GW_EPROTO, WS_HS_PROTOCOL,
      "'mqtt' that was not offered" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: Chat\r\n\r\n", "chat",
      GW_EPROTO, WS_HS_PROTOCOL, "not offered" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: super\r\n\r\n", "superchat",
      GW_EPROTO, WS_HS_PROTOCOL, "not offered" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol:\r\n\r\n", "chat", GW_EPROTO,
      WS_HS_PROTOCOL, "not offered" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
      "chat, superchat", GW_EPROTO, WS_HS_PROTOCOL, "several" },
    { L101 UPG CONN ACC "Sec-WebSocket-Protocol: chat\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n\r\n",
      "chat, superchat", GW_EPROTO, WS_HS_PROTOCOL, "several" },

    /* not HTTP */
    { "garbage\r\n\r\n", NULL, GW_EPROTO, WS_HS_MALFORMED,
      "malformed upgrade response" },
    { "HTTP/1.1 1o1 OK\r\n\r\n", NULL, GW_EPROTO, WS_HS_MALFORMED,
      "malformed" },
    { "GET / HTTP/1.1\r\n\r\n", NULL, GW_EPROTO, WS_HS_MALFORMED,
      "malformed" },
    { L101 "Bad Header\r\n" UPG CONN ACC "\r\n", NULL, GW_EPROTO,
      WS_HS_MALFORMED, "malformed" },
    { L101 "Bad\x01: x\r\n\r\n", NULL, GW_EPROTO, WS_HS_MALFORMED,
      "malformed" },
    { L101 UPG CONN ACC "\r-\n", NULL, GW_EPROTO, WS_HS_MALFORMED,
      "not CRLF" },
};

static void test_resp_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof resp_cases / sizeof resp_cases[0]; i++) {
        const struct resp_case *c = &resp_cases[i];
        struct result r = feed_whole(c->in, c->protos, 0);
        if (r.rc != c->rc || r.fail != c->fail || !strstr(r.error, c->msg))
            fail_msg("case %zu: rc %d fail %d error '%s' (want %d %d '%s')",
                     i, r.rc, r.fail, r.error, c->rc, c->fail, c->msg);
        if (c->rc == 0) /* consumed ends at the blank line */
            assert_int_equal(r.consumed, strlen(c->in));
        else
            assert_true(r.error[0] != 0);
        /* the same with trailing frame bytes, whole and byte-wise */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%s", c->in, FRAME);
        struct result w = feed_whole(buf, c->protos, 0);
        if (w.rc != c->rc || w.fail != c->fail ||
            strcmp(w.error, r.error) != 0 ||
            (c->rc == 0 && w.consumed != strlen(c->in)))
            fail_msg("case %zu + frame: rc %d fail %d consumed %zu '%s'", i,
                     w.rc, w.fail, w.consumed, w.error);
        size_t len = strlen(buf), cuts[1024];
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        struct result b = feed_cuts(buf, len, c->protos, 0, cuts, len);
        if (b.rc != c->rc || b.fail != c->fail ||
            strcmp(b.error, r.error) != 0)
            fail_msg("case %zu byte-wise: rc %d fail %d '%s'", i, b.rc,
                     b.fail, b.error);
        if (c->rc == 0)
            assert_int_equal(b.consumed, strlen(c->in));
    }
}

static void test_resp_status_early(void **state)
{
    (void)state;
    /* fails once the status line ends: no headers needed */
    struct ws_handshake_resp *r = ws_handshake_resp_new(KEY, NULL, 0);
    size_t used;
    const char *s = "HTTP/1.1 403 Forbidden\r";
    assert_int_equal(ws_handshake_resp_feed(r, s, strlen(s), &used),
                     GW_EPROTO);
    assert_int_equal(ws_handshake_resp_fail(r), WS_HS_STATUS);
    assert_int_equal(ws_handshake_resp_status(r), 403);
    assert_string_equal(ws_handshake_resp_error(r),
                        "upgrade refused: HTTP 403 Forbidden");
    ws_handshake_resp_free(r);

    /* still 101 so far: need more */
    r = ws_handshake_resp_new(KEY, NULL, 0);
    s = "HTTP/1.1 101 Switching Protocols\r\nUpgr";
    assert_int_equal(ws_handshake_resp_feed(r, s, strlen(s), &used),
                     GW_EAGAIN);
    assert_int_equal(used, strlen(s));
    assert_int_equal(ws_handshake_resp_status(r), 101);
    assert_int_equal(ws_handshake_resp_fail(r), WS_HS_OK);
    ws_handshake_resp_free(r);

    /* a 302 whose headers exceed the cap still reports the status */
    char big[512];
    snprintf(big, sizeof big, "HTTP/1.1 302 Found\r\nLocation: /%0300d\r\n",
             0);
    struct result res = feed_whole(big, NULL, 64);
    assert_int_equal(res.fail, WS_HS_STATUS);
    assert_int_equal(res.status, 302);
}

static void test_resp_header_limit(void **state)
{
    (void)state;
    const char *in = OK_RESP FRAME;
    size_t hdr = strlen(OK_RESP), len = strlen(in);

    /* exactly at the limit passes, frame bytes not counted */
    struct result r = feed_cuts(in, len, NULL, hdr, NULL, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.consumed, hdr);

    /* one byte less fails, whole or in pieces */
    r = feed_cuts(in, len, NULL, hdr - 1, NULL, 0);
    assert_int_equal(r.rc, GW_ETOOBIG);
    assert_int_equal(r.fail, WS_HS_TOO_LARGE);
    assert_non_null(strstr(r.error, "exceed"));
    size_t cuts[64];
    size_t n = 0;
    for (size_t k = 10; k < len && n < 64; k += 10)
        cuts[n++] = k;
    r = feed_cuts(in, len, NULL, hdr - 1, cuts, n);
    assert_int_equal(r.rc, GW_ETOOBIG);
    assert_int_equal(r.fail, WS_HS_TOO_LARGE);

    /* counted across feeds: small feeds below the cap still add up */
    struct ws_handshake_resp *p = ws_handshake_resp_new(KEY, NULL, 100);
    const char *start = "HTTP/1.1 101 Switching Protocols\r\n";
    size_t used;
    assert_int_equal(ws_handshake_resp_feed(p, start, strlen(start), &used),
                     GW_EAGAIN);
    int rc = GW_EAGAIN;
    for (int i = 0; i < 20 && rc == GW_EAGAIN; i++)
        rc = ws_handshake_resp_feed(p, "X-Pad: 0123456\r\n", 16, &used);
    assert_int_equal(rc, GW_ETOOBIG);
    assert_int_equal(ws_handshake_resp_fail(p), WS_HS_TOO_LARGE);
    ws_handshake_resp_free(p);

    /* default cap (0 = 16 KiB): 20 KiB of headers is too much */
    size_t big_len = 20 * 1024;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'a', big_len);
    memcpy(big, "HTTP/1.1 101 OK\r\nX: ", 20);
    big[big_len] = 0;
    r = feed_whole(big, NULL, 0);
    assert_int_equal(r.rc, GW_ETOOBIG);
    free(big);
}


/* ------------------------------------------- server side (from browsers) */

/* A request as header rows; NULL name ends it. */
struct req_case {
    const char *method;
    const char *h[8][2];
    enum ws_upgrade_result want;
};

#define GOOD_HDRS                                                        \
    {"Host", "x"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"},   \
        {"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key", KEY}

static const struct req_case req_cases[] = {
    {"GET", {GOOD_HDRS}, WS_UP_OK},
    /* Firefox and old Safari spellings */
    {"GET", {{"Upgrade", "WebSocket"}, {"Connection", "keep-alive, Upgrade"},
             {"Sec-WebSocket-Version", " 13 "}, {"sec-websocket-key", KEY}},
     WS_UP_OK},
    {"GET", {{"upgrade", "h2c, websocket"}, {"connection", "upgrade,x"},
             {"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key",
             "AAAAAAAAAAAAAAAAAAAAAA=="}}, WS_UP_OK},
    /* methods */
    {"POST", {GOOD_HDRS}, WS_UP_METHOD},
    {"HEAD", {GOOD_HDRS}, WS_UP_METHOD},
    {"get", {GOOD_HDRS}, WS_UP_METHOD},
    {NULL, {GOOD_HDRS}, WS_UP_METHOD},
    /* the method is checked first */
    {"PUT", {{"Host", "x"}}, WS_UP_METHOD},
    /* Upgrade */
    {"GET", {{"Host", "x"}}, WS_UP_NO_UPGRADE},
    {"GET", {{"Upgrade", "h2c"}, {"Connection", "Upgrade"}},
     WS_UP_NO_UPGRADE},
    {"GET", {{"Upgrade", "websockets"}, {"Connection", "Upgrade"}},
     WS_UP_NO_UPGRADE},
    {"GET", {{"Upgrade", ""}, {"Connection", "Upgrade"}}, WS_UP_NO_UPGRADE},
    /* Connection */
    {"GET", {{"Upgrade", "websocket"}}, WS_UP_NO_CONNECTION},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "keep-alive"}},
     WS_UP_NO_CONNECTION},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "upgraded"}},
     WS_UP_NO_CONNECTION},
    /* version */
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Key", KEY}}, WS_UP_VERSION},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "8"}, {"Sec-WebSocket-Key", KEY}},
     WS_UP_VERSION},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13, 8"}, {"Sec-WebSocket-Key", KEY}},
     WS_UP_VERSION},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "130"}, {"Sec-WebSocket-Key", KEY}},
     WS_UP_VERSION},
    /* key */
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13"}}, WS_UP_BAD_KEY},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key", ""}},
     WS_UP_BAD_KEY},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13"},
             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"}}, WS_UP_BAD_KEY},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13"},
             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==="}},
     WS_UP_BAD_KEY},
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13"},
             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZ!=="}},
     WS_UP_BAD_KEY},
    /* 24 base64 characters but not 16 bytes (18 bytes, no padding) */
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13"},
             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQAB"}},
     WS_UP_BAD_KEY},
    /* non-zero unused bits */
    {"GET", {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
             {"Sec-WebSocket-Version", "13"},
             {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="}},
     WS_UP_BAD_KEY},
};

static void check_case(const struct req_case *c, struct ws_upgrade *up,
                       int *rc)
{
    struct ws_header hs[8];
    size_t n = 0;
    while (n < 8 && c->h[n][0]) {
        hs[n].name = c->h[n][0];
        hs[n].value = c->h[n][1];
        n++;
    }
    struct ws_header_list list = {hs, n};
    *rc = ws_handshake_check_request(c->method, ws_header_list_get, &list,
                                     up);
}

static void test_server_request_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof req_cases / sizeof req_cases[0]; i++) {
        struct ws_upgrade up;
        int rc;
        check_case(&req_cases[i], &up, &rc);
        if (up.result != req_cases[i].want)
            fail_msg("case %zu: result %d, want %d", i, (int)up.result,
                     (int)req_cases[i].want);
        assert_int_equal(rc, up.result == WS_UP_OK ? 0 : GW_EPROTO);
    }
}

/* The exact answers of the SockJS reference server. */
static void test_server_request_answers(void **state)
{
    (void)state;
    struct ws_upgrade up;
    int rc;
    check_case(&req_cases[3], &up, &rc);      /* POST */
    assert_int_equal(up.status, 405);
    assert_string_equal(up.extra_name, "Allow");
    assert_string_equal(up.extra_value, "GET");
    assert_string_equal(up.body, "");
    check_case(&req_cases[8], &up, &rc);      /* no Upgrade */
    assert_int_equal(up.status, 400);
    assert_string_equal(up.body, "Can \"Upgrade\" only to \"WebSocket\".");
    assert_null(up.extra_name);
    check_case(&req_cases[12], &up, &rc);     /* no Connection */
    assert_int_equal(up.status, 400);
    assert_string_equal(up.body, "\"Connection\" must be \"Upgrade\".");
    check_case(&req_cases[16], &up, &rc);     /* version 8 */
    assert_int_equal(up.status, 426);
    assert_string_equal(up.extra_name, "Sec-WebSocket-Version");
    assert_string_equal(up.extra_value, "13");
    check_case(&req_cases[19], &up, &rc);     /* no key */
    assert_int_equal(up.status, 400);
    assert_string_equal(up.body, "Missing or invalid \"Sec-WebSocket-Key\".");
    check_case(&req_cases[1], &up, &rc);      /* good */
    assert_int_equal(rc, 0);
    assert_int_equal(up.status, 101);
    assert_string_equal(up.key, KEY);
    assert_null(up.protocols);
}

static void test_server_protocols(void **state)
{
    (void)state;
    struct ws_header hs[] = {
        {"Upgrade", "websocket"}, {"Connection", "Upgrade"},
        {"Sec-WebSocket-Version", "13"}, {"Sec-WebSocket-Key", KEY},
        {"Sec-WebSocket-Protocol", "chat, v2.json ,mqtt"},
    };
    struct ws_header_list list = {hs, 5};
    struct ws_upgrade up;
    assert_int_equal(ws_handshake_check_request("GET", ws_header_list_get,
                                                &list, &up), 0);
    assert_string_equal(up.protocols, "chat, v2.json ,mqtt");
    char out[16];
    assert_int_equal(ws_handshake_select_protocol(up.protocols, "v2.json",
                                                  out, sizeof out), 1);
    assert_string_equal(out, "v2.json");
    /* preference order is the acceptable list's */
    assert_int_equal(ws_handshake_select_protocol(up.protocols, "x, mqtt, chat",
                                                  out, sizeof out), 1);
    assert_string_equal(out, "mqtt");
    /* case-sensitive, exact elements */
    assert_int_equal(ws_handshake_select_protocol(up.protocols, "Chat", out,
                                                  sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(ws_handshake_select_protocol(up.protocols, "v2", out,
                                                  sizeof out), 0);
    assert_int_equal(ws_handshake_select_protocol(NULL, "chat", out,
                                                  sizeof out), 0);
    assert_int_equal(ws_handshake_select_protocol(up.protocols, NULL, out,
                                                  sizeof out), 0);
    assert_int_equal(ws_handshake_select_protocol(up.protocols, " ", out,
                                                  sizeof out), 0);
    /* not a token: never chosen */
    assert_int_equal(ws_handshake_select_protocol("a b", "a b", out,
                                                  sizeof out), 0);
    assert_int_equal(ws_handshake_select_protocol(up.protocols, "v2.json",
                                                  out, 7), GW_ETOOBIG);
}

static void test_server_response(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(ws_handshake_build_response(&b, KEY, NULL), 0);
    assert_string_equal((char *)b.data,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n");
    gw_buf_reset(&b);
    assert_int_equal(ws_handshake_build_response(&b, KEY, "chat"), 0);
    assert_string_equal((char *)b.data,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n\r\n");
    assert_null(strstr((char *)b.data, "Extensions"));
    /* bad arguments and a full buffer leave out as it was */
    size_t len = b.len;
    assert_int_equal(ws_handshake_build_response(&b, KEY, "a b"), GW_EINVAL);
    assert_int_equal(ws_handshake_build_response(&b, KEY, "x\r\nY: z"),
                     GW_EINVAL);
    assert_int_equal(ws_handshake_build_response(&b, "not base64!", NULL),
                     GW_EINVAL);
    assert_int_equal(ws_handshake_build_response(&b, NULL, NULL), GW_EINVAL);
    assert_int_equal(b.len, len);
    struct gw_buf small = {.max = 100};
    assert_int_equal(ws_handshake_build_response(&small, KEY, "chat"),
                     GW_ETOOBIG);
    assert_int_equal(small.len, 0);
    gw_buf_free(&small);
    gw_buf_free(&b);

    /* our response is what our own client accepts */
    struct ws_handshake_resp *r = ws_handshake_resp_new(KEY, "chat", 0);
    struct gw_buf ok = {0};
    assert_int_equal(ws_handshake_build_response(&ok, KEY, "chat"), 0);
    size_t used;
    assert_int_equal(ws_handshake_resp_feed(r, (char *)ok.data, ok.len,
                                            &used), 0);
    assert_int_equal(used, ok.len);
    assert_string_equal(ws_handshake_resp_protocol(r), "chat");
    ws_handshake_resp_free(r);
    gw_buf_free(&ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_url_null_and_exact_msg),
        cmocka_unit_test(test_accept_rfc_vector),
        cmocka_unit_test(test_key_new),
        cmocka_unit_test(test_request_exact),
        cmocka_unit_test(test_request_rejects),
        cmocka_unit_test(test_resp_good_whole),
        cmocka_unit_test(test_resp_byte_at_a_time),
        cmocka_unit_test(test_resp_every_split),
        cmocka_unit_test(test_resp_table),
        cmocka_unit_test(test_resp_status_early),
        cmocka_unit_test(test_resp_header_limit),
        cmocka_unit_test(test_server_request_table),
        cmocka_unit_test(test_server_request_answers),
        cmocka_unit_test(test_server_protocols),
        cmocka_unit_test(test_server_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

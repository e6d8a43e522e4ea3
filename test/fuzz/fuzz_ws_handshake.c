/*
 * fuzz_ws_handshake.c - libFuzzer target for the 101 response parser and
 * ws_url_parse.
 *
 * Input layout: byte 0 picks the offered subprotocols and the header cap,
 * bytes 1-2 are two split points (mod the remaining length); the rest is
 * the response. The same bytes are fed whole and in three pieces: the
 * outcome must not depend on how the stream was cut (a differential
 * oracle, stronger than "does not crash"). The whole input is also tried
 * as a URL, and a parsed URL must build a well-formed request.
 */
#include "ws_handshake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    int rc;
    enum ws_hs_fail fail;
    int status;
    size_t consumed; /* total over all feeds */
    char proto[64];
    char error[GW_ERROR_MSG_MAX];
};

/* Feed buf cut at the given offsets (sorted, <= len). */
static void run(const char *buf, size_t len, const char *protocols,
                size_t max, const size_t *cuts, size_t ncuts,
                struct outcome *o)
{
    struct ws_handshake_resp *r = ws_handshake_resp_new(KEY, protocols, max);
    if (!r)
        abort();
    size_t pos = 0;
    int rc = GW_EAGAIN;
    for (size_t i = 0; i <= ncuts && rc == GW_EAGAIN; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        size_t used = 0;
        if (end < pos)
            continue;
        rc = ws_handshake_resp_feed(r, buf + pos, end - pos, &used);
        if (used > end - pos)
            abort();
        pos += used;
        /* "need more" must mean everything offered was taken */
        if (rc == GW_EAGAIN && pos != end)
            abort();
    }
    o->rc = rc;
    o->fail = ws_handshake_resp_fail(r);
    o->status = ws_handshake_resp_status(r);
    o->consumed = pos;
    const char *p = ws_handshake_resp_protocol(r);
    snprintf(o->proto, sizeof o->proto, "%s", p ? p : "(none)");
    snprintf(o->error, sizeof o->error, "%s", ws_handshake_resp_error(r));
    bool failed = rc != 0 && rc != GW_EAGAIN;
    if (failed != (o->fail != WS_HS_OK))
        abort();
    if (failed && o->error[0] == 0)
        abort(); /* every failure has a reason */
    if (rc == 0) {
        /* consumed ends right after the blank line */
        if (pos < 2 || buf[pos - 1] != '\n' || o->status != 101)
            abort();
        if (pos > (max ? max : 16 * 1024))
            abort();
        size_t used = 1;
        if (ws_handshake_resp_feed(r, buf, len, &used) != 0 || used != 0)
            abort();
    }
    ws_handshake_resp_free(r);
}

static void fuzz_response(const uint8_t *data, size_t size)
{
    static const char *const protos[] = { NULL, "chat", "chat, superchat",
                                          "" };
    static const size_t maxes[] = { 0, 64, 200, 1 };
    if (size < 3)
        return;
    const char *protocols = protos[data[0] & 3];
    size_t max = maxes[(data[0] >> 2) & 3];
    const char *buf = (const char *)data + 3;
    size_t len = size - 3;
    size_t cuts[2] = { len ? data[1] % (len + 1) : 0,
                       len ? data[2] % (len + 1) : 0 };
    if (cuts[0] > cuts[1]) {
        size_t t = cuts[0];
        cuts[0] = cuts[1];
        cuts[1] = t;
    }

    struct outcome whole, split;
    run(buf, len, protocols, max, NULL, 0, &whole);
    run(buf, len, protocols, max, cuts, 2, &split);
    if (whole.rc != split.rc || whole.fail != split.fail)
        abort();
    if (whole.rc == 0 && (whole.consumed != split.consumed ||
                          strcmp(whole.proto, split.proto) != 0))
        abort();
    if (whole.rc != GW_EAGAIN && strcmp(whole.error, split.error) != 0)
        abort();
}

static void fuzz_url(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return;
    memcpy(s, data, size);
    s[size] = 0;
    struct ws_url url;
    struct gw_error err = { 0 };
    if (ws_url_parse(s, &url, &err) == 0) {
        if (!url.host[0] || url.resource[0] != '/' || url.port == 0 ||
            !strstr(url.host_header, url.host))
            abort();
        struct gw_buf b = { 0 };
        if (ws_handshake_build_request(&b, &url, KEY, NULL, NULL, 0, &err))
            abort();
        /* exactly 7 lines: request line, 5 headers, blank */
        size_t lf = 0;
        for (size_t i = 0; i < b.len; i++)
            lf += b.data[i] == '\n';
        if (lf != 7 || memcmp(b.data + b.len - 4, "\r\n\r\n", 4) != 0)
            abort();
        gw_buf_free(&b);
        ws_url_clear(&url);
    } else if (url.host || url.resource || url.host_header || !err.msg[0]) {
        abort();
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_response(data, size);
    fuzz_url(data, size);
    return 0;
}

/*
 * fuzz_ws_server.c - libFuzzer target for the server side: a browser's
 * upgrade request (ws_handshake_check_request, select_protocol,
 * build_response) followed by a masked frame stream (server decoder).
 *
 * Input layout: text up to the first "\n\n" is the request: the first line
 * the method, then "Name: value" lines (a line without ':' is skipped);
 * the rest is the frame stream, whose first byte also picks max_message
 * and two split points. Oracles:
 *  - the verdict is one of the documented ones, with its status; a valid
 *    request yields a 101 that our own client parser accepts, with a
 *    protocol the browser offered (or none);
 *  - the frame stream gives the same events and the same error whole,
 *    in three pieces and byte by byte; text is valid UTF-8, messages fit
 *    max_message, close codes are legal, errors carry 1002/1007/1009/1011.
 */
#include "ws_frame.h"
#include "ws_handshake.h"

#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HDRS 16

static void fuzz_request(const char *req, size_t len)
{
    char buf[4096];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, req, len);
    buf[len] = 0;
    struct ws_header h[MAX_HDRS];
    size_t n = 0;
    char *save = NULL, *method = strtok_r(buf, "\n", &save);
    for (char *line; n < MAX_HDRS && (line = strtok_r(NULL, "\n", &save));) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = 0;
        h[n].name = line;
        h[n].value = colon + 1 + (colon[1] == ' ');
        n++;
    }
    struct ws_header_list list = {h, n};
    struct ws_upgrade up;
    int rc = ws_handshake_check_request(method, ws_header_list_get, &list,
                                        &up);
    static const int status[] = {101, 405, 400, 400, 426, 400};
    CHECK(up.result >= WS_UP_OK && up.result <= WS_UP_BAD_KEY);
    CHECK(up.status == status[up.result]);
    CHECK((rc == 0) == (up.result == WS_UP_OK));
    CHECK(up.reason && up.body);
    if (rc != 0)
        return;
    CHECK(strlen(up.key) == 24);
    char proto[64];
    int sel = ws_handshake_select_protocol(up.protocols, "chat, v2, x-y",
                                           proto, sizeof proto);
    CHECK(sel == 0 || sel == 1);
    struct gw_buf resp = {0};
    CHECK(ws_handshake_build_response(&resp, up.key, sel ? proto : NULL) == 0);
    CHECK(strstr((char *)resp.data, "Extensions") == NULL);
    struct ws_handshake_resp *r =
        ws_handshake_resp_new(up.key, up.protocols, 0);
    CHECK(r);
    size_t used = 0;
    int prc = ws_handshake_resp_feed(r, (char *)resp.data, resp.len, &used);
    /* the browser's offer may not be a valid list for our client parser
     * (it is checked there as an offer we make); a chosen one always is */
    if (prc == 0) {
        const char *p = ws_handshake_resp_protocol(r);
        CHECK(sel ? p && strcmp(p, proto) == 0 : p == NULL);
    } else {
        CHECK(ws_handshake_resp_fail(r) == WS_HS_PROTOCOL);
    }
    ws_handshake_resp_free(r);
    gw_buf_free(&resp);
}

struct log {
    struct gw_buf b;
    int rc;
    uint16_t code;
};

static void log_event(struct log *l, const struct ws_event *ev,
                      uint64_t max)
{
    CHECK(ev->data != NULL);
    if (ev->type == WS_EV_TEXT)
        CHECK(ws_utf8_valid(ev->data, ev->len));
    if (ev->type == WS_EV_TEXT || ev->type == WS_EV_BINARY)
        CHECK(max == 0 || ev->len <= max); /* 0 = unlimited */
    else
        CHECK(ev->len <= WS_CONTROL_MAX);
    if (ev->type == WS_EV_CLOSE)
        CHECK(ev->close_code == WS_CLOSE_NO_STATUS ||
              ws_close_code_valid(ev->close_code));
    uint8_t head[16];
    memcpy(head, &ev->type, sizeof ev->type);
    memcpy(head + 4, &ev->close_code, 2);
    memcpy(head + 8, &ev->len, 8);
    CHECK(gw_buf_append(&l->b, head, sizeof head) == 0);
    CHECK(gw_buf_append(&l->b, ev->data, ev->len) == 0);
}

/* Decode s cut at cuts[] (each piece fed until it is used up). */
static void decode(const uint8_t *s, size_t len, const size_t *cuts,
                   size_t ncuts, uint64_t max, struct log *l)
{
    memset(l, 0, sizeof *l);
    l->rc = GW_EAGAIN;
    struct ws_decoder *d = ws_decoder_new_server(max);
    CHECK(d);
    size_t pos = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        while (pos < end || (pos == end && i == ncuts)) {
            struct ws_event ev;
            size_t used = SIZE_MAX;
            int rc = ws_decoder_feed(d, s + pos, end - pos, &used, &ev);
            CHECK(used <= end - pos);
            pos += used;
            if (rc == 1) {
                log_event(l, &ev, max);
                continue;
            }
            if (rc == GW_EAGAIN) {
                CHECK(pos == end);
                break;
            }
            l->rc = rc;
            l->code = ws_decoder_close_code(d);
            CHECK(l->code == 1002 || l->code == 1007 || l->code == 1009 ||
                  l->code == 1011);
            ws_decoder_free(d);
            return;
        }
    }
    ws_decoder_free(d);
}

static void same(const struct log *a, const struct log *b)
{
    CHECK(a->rc == b->rc);
    CHECK(a->code == b->code);
    CHECK(a->b.len == b->b.len);
    CHECK(a->b.len == 0 || memcmp(a->b.data, b->b.data, a->b.len) == 0);
}

static void fuzz_frames(const uint8_t *s, size_t len)
{
    if (len < 3)
        return;
    static const uint64_t maxes[] = {0, 1, 125, 126, 1000, 65536};
    uint64_t max = maxes[s[0] % 6];
    size_t c1 = s[1], c2 = s[2];
    s += 3;
    len -= 3;
    size_t cuts[2] = {len ? c1 % (len + 1) : 0, len ? c2 % (len + 1) : 0};
    if (cuts[0] > cuts[1]) {
        size_t t = cuts[0];
        cuts[0] = cuts[1];
        cuts[1] = t;
    }
    struct log whole, three, bytes;
    decode(s, len, NULL, 0, max, &whole);
    decode(s, len, cuts, 2, max, &three);
    same(&whole, &three);
    if (len <= 4096) {
        size_t *all = malloc((len + 1) * sizeof *all);
        CHECK(all);
        for (size_t i = 0; i < len; i++)
            all[i] = i + 1;
        decode(s, len, all, len, max, &bytes);
        same(&whole, &bytes);
        gw_buf_free(&bytes.b);
        free(all);
    }
    gw_buf_free(&whole.b);
    gw_buf_free(&three.b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + 1 < size; i++)
        if (data[i] == '\n' && data[i + 1] == '\n') {
            sep = data + i;
            break;
        }
    size_t rlen = sep ? (size_t)(sep - data) : size;
    fuzz_request((const char *)data, rlen);
    if (sep)
        fuzz_frames(sep + 2, size - rlen - 2);
    return 0;
}

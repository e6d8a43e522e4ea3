/*
 * fuzz_sockjs_send.c - libFuzzer target for the SockJS send-body parsers
 * of framing_sockjs.c, and for the frames built from what they return.
 *
 * Each input is used as:
 *  - an xhr_send body (framing_sockjs_parse_send, max_batch 16);
 *  - a jsonp_send body: the first byte picks the Content-Type, the rest is
 *    the body (framing_sockjs_parse_jsonp_send);
 *  - the same bytes form-encoded as d=<%XX...>: must give exactly what
 *    framing_sockjs_parse_send gave (result code and messages);
 *  - a close reason (framing_sockjs_frame_close) and a callback name.
 * Checked on every success: each message lies inside env.data (off + len
 * within data.len, back to back, in order), is valid UTF-8 text, n <=
 * max_batch; the a[...] frame built from the messages parses back, with
 * framing_sockjs_parse_send, to the same messages; its EventSource form has no
 * raw CR, LF or NUL and URL-decodes back to the frame; its htmlfile form
 * has no '<' inside the script; its JSONP form is what the header says.
 * On failure: a known code and an empty envelope.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11
 *        -D_GNU_SOURCE -Iinclude gateway/gw_common.c gateway/ws_utf8.c
 *        gateway/framing.c gateway/envelope.c gateway/framing_sockjs.c
 *        test/fuzz/fuzz_sockjs_send.c -ljansson -lcrypto -o fuzz_sockjs_send
 * Run:   ./fuzz_sockjs_send test/fuzz/seeds/sockjs_send
 */
#include "framing_sockjs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_common.h"

#define MAX_BATCH 16

static const char *const content_types[] = {
    "application/x-www-form-urlencoded",
    "text/plain",
    NULL,
    "",
    "application/x-www-form-urlencoded; charset=UTF-8",
    "text/plain;charset=UTF-8",
    "application/json",
    "multipart/form-data",
};

static void check_result(int rc, const struct envelope *env)
{
    if (rc < 0) {
        CHECK(rc == FRAMING_SOCKJS_SEND_EMPTY || rc == FRAMING_SOCKJS_SEND_BROKEN ||
              rc == FRAMING_SOCKJS_SEND_TOO_MANY || rc == FRAMING_SOCKJS_SEND_NOMEM);
        CHECK(env->n == 0 && env->msgs == NULL && env->data.data == NULL);
        CHECK(framing_sockjs_send_strerror(rc)[0] != 0);
        return;
    }
    CHECK(rc == FRAMING_SOCKJS_SEND_OK);
    CHECK(env->n <= MAX_BATCH);
    CHECK((env->n == 0) == (env->msgs == NULL));
    CHECK(!env->has_seq && env->seq == 0);
    size_t off = 0;
    for (size_t i = 0; i < env->n; i++) {
        const struct envelope_msg *m = &env->msgs[i];
        CHECK(!m->binary);
        CHECK(m->off == off);
        CHECK(m->off <= env->data.len && m->len <= env->data.len - m->off);
        CHECK(ws_utf8_valid(env->data.data + m->off, m->len));
        off += m->len;
    }
    CHECK(off == env->data.len);
}

static bool same_messages(const struct envelope *a, const struct envelope *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const struct envelope_msg *x = &a->msgs[i], *y = &b->msgs[i];
        if (x->len != y->len ||
            (x->len && memcmp(a->data.data + x->off, b->data.data + y->off,
                              x->len) != 0))
            return false;
    }
    return true;
}

/* EventSource: no raw line ends or NUL; %XX-decoding gives the frame. */
static void check_eventsource(const struct gw_buf *f)
{
    struct gw_buf w = {0};
    CHECK(framing_sockjs_wrap(&w, FRAMING_SOCKJS_WRAP_EVENTSOURCE, NULL, f->data, f->len) == 0);
    CHECK(w.len >= 10 && memcmp(w.data, "data: ", 6) == 0 &&
          memcmp(w.data + w.len - 4, "\r\n\r\n", 4) == 0);
    const uint8_t *p = w.data + 6;
    size_t n = w.len - 10, o = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(p[i] != '\r' && p[i] != '\n' && p[i] != 0);
        uint8_t c = p[i];
        if (c == '%') {
            CHECK(i + 2 < n);
            const char *hex = "0123456789ABCDEF";
            const char *h = memchr(hex, p[i + 1], 16);
            const char *l = memchr(hex, p[i + 2], 16);
            CHECK(h && l);
            c = (uint8_t)((h - hex) << 4 | (l - hex));
            i += 2;
        }
        CHECK(o < f->len && f->data[o] == c);
        o++;
    }
    CHECK(o == f->len);
    gw_buf_free(&w);
}

/* htmlfile: nothing between "<script>" and the closing ");\n</script>\r\n"
 * may hold '<'; the JSON string parses back to the frame. */
static void check_htmlfile(const struct gw_buf *f)
{
    struct gw_buf w = {0};
    CHECK(framing_sockjs_wrap(&w, FRAMING_SOCKJS_WRAP_HTMLFILE, NULL, f->data, f->len) == 0);
    CHECK(w.len >= 11 + 14 && memcmp(w.data, "<script>\np(", 11) == 0 &&
          memcmp(w.data + w.len - 14, ");\n</script>\r\n", 14) == 0);
    CHECK(!memchr(w.data + 8, '<', w.len - 8 - 14));
    json_t *s = json_loadb((const char *)w.data + 11, w.len - 25,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(s && json_is_string(s) && json_string_length(s) == f->len);
    CHECK(memcmp(json_string_value(s), f->data, f->len) == 0);
    json_decref(s);
    gw_buf_free(&w);
}

static void check_jsonp(const struct gw_buf *f)
{
    struct gw_buf w = {0};
    CHECK(framing_sockjs_wrap(&w, FRAMING_SOCKJS_WRAP_JSONP, "_jp.a1", f->data, f->len) == 0);
    CHECK(w.len >= 11 + 4 && memcmp(w.data, "/**/_jp.a1(", 11) == 0 &&
          memcmp(w.data + w.len - 4, ");\r\n", 4) == 0);
    json_t *s = json_loadb((const char *)w.data + 11, w.len - 15,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(s && json_is_string(s) && json_string_length(s) == f->len);
    CHECK(memcmp(json_string_value(s), f->data, f->len) == 0);
    json_decref(s);
    gw_buf_free(&w);
}

/* The a[...] frame of env's messages parses back to the same messages. */
static void check_frame_round_trip(const struct envelope *env)
{
    struct gw_buf f = {0};
    CHECK(framing_sockjs_frame_array_begin(&f) == 0);
    for (size_t i = 0; i < env->n; i++)
        CHECK(framing_sockjs_frame_array_item(&f, i == 0,
                                      env->data.data + env->msgs[i].off,
                                      env->msgs[i].len) == 0);
    CHECK(framing_sockjs_frame_array_end(&f) == 0);
    CHECK(f.len >= 3 && f.data[0] == 'a');
    CHECK(!memchr(f.data, '\n', f.len) && !memchr(f.data, '\r', f.len));

    struct envelope back;
    CHECK(framing_sockjs_parse_send(&back, (const char *)f.data + 1, f.len - 1,
                            MAX_BATCH) == 0);
    CHECK(same_messages(env, &back));
    envelope_clear(&back);

    check_eventsource(&f);
    check_htmlfile(&f);
    check_jsonp(&f);
    gw_buf_free(&f);
}

/* x=1&d=<the bytes: [a-z0-9[],] raw at even positions, ' ' as '+',
 * everything else %XX, lowercase hex at even positions, uppercase at odd>&y */
static void form_encode(struct gw_buf *out, const uint8_t *p, size_t n)
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    CHECK(gw_buf_append(out, "x=1&d=", 6) == 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        const char *hex = i & 1 ? upper : lower;
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        bool raw = !(i & 1) && ((c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '[' ||
                                c == ']' || c == ',');
        if (c == ' ')
            CHECK(gw_buf_append(out, "+", 1) == 0);
        else if (raw)
            CHECK(gw_buf_append(out, &c, 1) == 0);
        else
            CHECK(gw_buf_append(out, e, 3) == 0);
    }
    CHECK(gw_buf_append(out, "&y", 2) == 0);
}

static void check_close(const uint8_t *data, size_t size)
{
    struct gw_buf c = {0};
    CHECK(framing_sockjs_frame_close(&c, 3000, (const char *)data, size) == 0);
    CHECK(c.len >= 9 && memcmp(c.data, "c[3000,", 7) == 0);
    json_t *v = json_loadb((const char *)c.data + 1, c.len - 1,
                           JSON_ALLOW_NUL, NULL);
    CHECK(v && json_is_array(v) && json_array_size(v) == 2);
    json_t *r = json_array_get(v, 1);
    CHECK(json_is_string(r));
    if (ws_utf8_valid(data, size))
        CHECK(json_string_length(r) == size &&
              (size == 0 || memcmp(json_string_value(r), data, size) == 0));
    json_decref(v);
    gw_buf_free(&c);
}

static void check_callback(const uint8_t *data, size_t size)
{
    char cb[40];
    size_t n = size < sizeof cb - 1 ? size : sizeof cb - 1;
    memcpy(cb, data, n);
    cb[n] = 0;
    struct gw_buf w = {0};
    int rc = framing_sockjs_wrap(&w, FRAMING_SOCKJS_WRAP_JSONP, cb, (const uint8_t *)"o", 1);
    if (!framing_sockjs_callback_valid(cb)) {
        CHECK(rc == GW_EINVAL && w.len == 0);
        CHECK(framing_sockjs_prelude_htmlfile(&w, cb) == GW_EINVAL);
    } else {
        size_t k = strlen(cb);
        CHECK(k >= 1 && k <= 32);
        CHECK(strspn(cb, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789_.-") == k);
        CHECK(rc == 0 && w.len == 4 + k + 8);
        gw_buf_reset(&w);
        CHECK(framing_sockjs_prelude_htmlfile(&w, cb) == 0 && w.len == 1027 + k);
    }
    gw_buf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct envelope xhr, jp, form;
    const char *body = (const char *)data;

    int rc = framing_sockjs_parse_send(&xhr, body, size, MAX_BATCH);
    check_result(rc, &xhr);
    if (rc == 0)
        check_frame_round_trip(&xhr);

    if (size > 0) {
        const char *ct = content_types[data[0] % (sizeof content_types /
                                                  sizeof content_types[0])];
        int rj = framing_sockjs_parse_jsonp_send(&jp, body + 1, size - 1, ct,
                                         MAX_BATCH);
        check_result(rj, &jp);
        if (rj == 0)
            check_frame_round_trip(&jp);
        envelope_clear(&jp);
    }

    /* the raw jsonp path agrees with xhr_send wherever xhr_send accepts
     * (it only differs for bodies that are a JSON string) */
    int rr = framing_sockjs_parse_jsonp_send(&jp, body, size, "text/plain", MAX_BATCH);
    check_result(rr, &jp);
    if (rc == 0)
        CHECK(rr == 0 && same_messages(&xhr, &jp));
    envelope_clear(&jp);

    /* form-encoded, the same bytes give the same answer */
    struct gw_buf enc = {0};
    form_encode(&enc, data, size);
    int rf = framing_sockjs_parse_jsonp_send(&form, (const char *)enc.data, enc.len,
                                     content_types[0], MAX_BATCH);
    check_result(rf, &form);
    CHECK(rf == rc || (rc == FRAMING_SOCKJS_SEND_NOMEM || rf == FRAMING_SOCKJS_SEND_NOMEM));
    if (rc == 0)
        CHECK(same_messages(&xhr, &form));
    envelope_clear(&form);
    gw_buf_free(&enc);
    envelope_clear(&xhr);

    check_close(data, size);
    check_callback(data, size);
    return 0;
}

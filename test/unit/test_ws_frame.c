/*
 * test_ws_frame.c - unit tests for the RFC 6455 frame codec (ws_frame.c)
 * and the UTF-8 validator (ws_utf8.c).
 *
 * Most decoder tests go through decode_stream(), which feeds a byte stream
 * in a given chunk size and serializes every event into a log, so that
 * "the same events whatever the split" is a memcmp of two logs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

/* ------------------------------------------------------------- helpers */

/* Everything a decode run produced. */
struct run {
    struct gw_buf log;   /* serialized events */
    int n_events;
    struct ws_event last; /* copy of the last event (data not owned) */
    int rc;              /* GW_EAGAIN at a clean end, else the error */
    uint16_t close_code; /* decoder close code after the run */
    char why[80];
};

/* decode_stream's decoders are server decoders (masked input) when set. */
static bool g_server;

static void log_event(struct run *r, const struct ws_event *ev)
{
    char head[64];
    int n = snprintf(head, sizeof head, "[%d %u %zu %zu]", (int)ev->type,
                     (unsigned)ev->close_code, ev->len,
                     ev->close_reason_len);
    assert_int_equal(gw_buf_append(&r->log, head, (size_t)n), 0);
    assert_int_equal(gw_buf_append(&r->log, ev->data, ev->len), 0);
    r->n_events++;
    r->last = *ev;
}

/*
 * Decode s[0..n) fed in chunks of chunk bytes (0 = all at once) with a
 * fresh decoder. Stops at the first error.
 */
static void decode_stream(struct run *r, const uint8_t *s, size_t n,
                          size_t chunk, uint64_t max)
{
    memset(r, 0, sizeof *r);
    r->rc = GW_EAGAIN;
    struct ws_decoder *d = g_server ? ws_decoder_new_server(max)
                                    : ws_decoder_new(max);
    assert_non_null(d);
    if (chunk == 0)
        chunk = n ? n : 1;
    for (size_t off = 0; off < n || off == 0; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        const uint8_t *p = s + off;
        for (;;) {
            struct ws_event ev;
            size_t used = SIZE_MAX;
            int rc = ws_decoder_feed(d, p, k, &used, &ev);
            assert_true(used <= k);
            if (rc == 1) {
                log_event(r, &ev);
                p += used;
                k -= used;
                continue;
            }
            if (rc == GW_EAGAIN) {
                assert_int_equal(used, k);
                break;
            }
            r->rc = rc;
            r->close_code = ws_decoder_close_code(d);
            snprintf(r->why, sizeof r->why, "%s", ws_decoder_error(d));
            ws_decoder_free(d);
            return;
        }
        if (n == 0)
            break;
    }
    ws_decoder_free(d);
}

static void run_free(struct run *r)
{
    gw_buf_free(&r->log);
}

static void assert_runs_equal(const struct run *a, const struct run *b)
{
    assert_int_equal(a->rc, b->rc);
    assert_int_equal(a->close_code, b->close_code);
    assert_string_equal(a->why, b->why);
    assert_int_equal(a->n_events, b->n_events);
    assert_int_equal(a->log.len, b->log.len);
    if (a->log.len)
        assert_memory_equal(a->log.data, b->log.data, a->log.len);
}

/* Append a frame (unmasked, minimal length form) to b. */
static void put_frame(struct gw_buf *b, bool fin, enum ws_opcode op,
                      const void *payload, size_t len)
{
    uint8_t h[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_write_header(h, fin, op, len, NULL);
    assert_int_equal(gw_buf_append(b, h, hl), 0);
    assert_int_equal(gw_buf_append(b, payload, len), 0);
}

/* Expect s to fail with rc/code both one-shot and byte-at-a-time, with
 * no events before the failure (the streams here are single mistakes). */
static void expect_fail_n(const uint8_t *s, size_t n, uint64_t max, int rc,
                          uint16_t code, int events_before)
{
    struct run a, b;
    decode_stream(&a, s, n, 0, max);
    decode_stream(&b, s, n, 1, max);
    assert_int_equal(a.rc, rc);
    assert_int_equal(a.close_code, code);
    assert_int_equal(a.n_events, events_before);
    assert_true(strlen(a.why) > 0);
    assert_runs_equal(&a, &b);
    run_free(&a);
    run_free(&b);
}

static void expect_fail(const struct gw_buf *s, uint64_t max, int rc,
                        uint16_t code)
{
    expect_fail_n(s->data, s->len, max, rc, code, 0);
}

#define EXPECT_FAIL_BYTES(max, rc, code, ...)                            \
    do {                                                                 \
        static const uint8_t in_[] = {__VA_ARGS__};                      \
        expect_fail_n(in_, sizeof in_, (max), (rc), (code), 0);          \
    } while (0)

/* Expect exactly one event of type t with the given payload. */
static void expect_one(const uint8_t *s, size_t n, uint64_t max,
                       enum ws_event_type t, const void *payload, size_t len)
{
    for (size_t chunk = 0; chunk <= 3; chunk++) {
        struct run r;
        decode_stream(&r, s, n, chunk, max);
        assert_int_equal(r.rc, GW_EAGAIN);
        assert_int_equal(r.n_events, 1);
        assert_int_equal(r.last.type, t);
        assert_int_equal(r.last.len, len);
        /* the log ends with the payload */
        assert_true(r.log.len >= len);
        if (len)
            assert_memory_equal(r.log.data + r.log.len - len, payload, len);
        run_free(&r);
    }
}

/* ----------------------------------------------------- RFC 6455 5.7 */

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

static void test_rfc_unmasked_hello(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    struct ws_decoder *d = ws_decoder_new(1024);
    assert_non_null(d);
    struct ws_event ev;
    size_t used;
    assert_int_equal(ws_decoder_feed(d, in, sizeof in, &used, &ev), 1);
    assert_int_equal(used, sizeof in);
    assert_int_equal(ev.type, WS_EV_TEXT);
    assert_int_equal(ev.len, 5);
    assert_memory_equal(ev.data, "Hello", 5);
    /* whole unfragmented frame in the input: delivered in place */
    assert_ptr_equal(ev.data, in + 2);
    assert_int_equal(ws_decoder_feed(d, in + used, 0, &used, &ev), GW_EAGAIN);
    assert_int_equal(used, 0);
    ws_decoder_free(d);

    uint8_t h[WS_FRAME_HEADER_MAX];
    assert_int_equal(ws_frame_write_header(h, true, WS_OP_TEXT, 5, NULL), 2);
    assert_memory_equal(h, in, 2);
}

static void test_rfc_masked_hello(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                   0x9f, 0x4d, 0x51, 0x58};
    uint8_t out[WS_FRAME_HEADER_MAX + 5];
    size_t n = ws_frame_write_header(out, true, WS_OP_TEXT, 5, rfc_mask);
    assert_int_equal(n, 6);
    assert_int_equal(ws_frame_header_size(5, true), 6);
    memcpy(out + n, "Hello", 5);
    assert_int_equal(ws_frame_mask(out + n, 5, rfc_mask, 0), 5);
    assert_memory_equal(out, want, sizeof want);

    /* a server must not mask: protocol error for our client decoder */
    expect_fail_n(want, sizeof want, 1024, GW_EPROTO, WS_CLOSE_PROTOCOL, 0);
    struct run r;
    decode_stream(&r, want, sizeof want, 0, 1024);
    assert_string_equal(r.why, "masked frame from server");
    run_free(&r);
}

static void test_rfc_fragmented_hello(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x01, 0x03, 0x48, 0x65, 0x6c,
                                 0x80, 0x02, 0x6c, 0x6f};
    expect_one(in, sizeof in, 1024, WS_EV_TEXT, "Hello", 5);

    /* reassembled data lives in the decoder, not in the input */
    struct ws_decoder *d = ws_decoder_new(1024);
    struct ws_event ev;
    size_t used;
    assert_int_equal(ws_decoder_feed(d, in, sizeof in, &used, &ev), 1);
    assert_int_equal(used, sizeof in);
    uintptr_t at = (uintptr_t)ev.data, lo = (uintptr_t)in;
    assert_true(at < lo || at >= lo + sizeof in);
    assert_memory_equal(ev.data, "Hello", 5);
    ws_decoder_free(d);
}

static void test_rfc_ping_pong(void **state)
{
    (void)state;
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect_one(ping, sizeof ping, 1024, WS_EV_PING, "Hello", 5);
    static const uint8_t pong[] = {0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect_one(pong, sizeof pong, 1024, WS_EV_PONG, "Hello", 5);
    /* the RFC's masked pong: fine for a server, not from one */
    EXPECT_FAIL_BYTES(1024, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x8a, 0x85, 0x37,
                      0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);

    uint8_t h[WS_FRAME_HEADER_MAX];
    assert_int_equal(ws_frame_write_header(h, true, WS_OP_PING, 5, NULL), 2);
    assert_memory_equal(h, ping, 2);
}

static void test_rfc_256_and_64k_headers(void **state)
{
    (void)state;
    uint8_t h[WS_FRAME_HEADER_MAX];
    static const uint8_t h256[] = {0x82, 0x7E, 0x01, 0x00};
    static const uint8_t h64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x01, 0x00, 0x00};
    assert_int_equal(ws_frame_write_header(h, true, WS_OP_BINARY, 256, NULL),
                     4);
    assert_memory_equal(h, h256, 4);
    assert_int_equal(
        ws_frame_write_header(h, true, WS_OP_BINARY, 65536, NULL), 10);
    assert_memory_equal(h, h64k, 10);

    /* and they decode */
    static const size_t sizes[] = {256, 65536};
    for (size_t i = 0; i < 2; i++) {
        struct gw_buf s = {0};
        uint8_t *pl = malloc(sizes[i]);
        assert_non_null(pl);
        for (size_t j = 0; j < sizes[i]; j++)
            pl[j] = (uint8_t)(j * 7);
        put_frame(&s, true, WS_OP_BINARY, pl, sizes[i]);
        assert_memory_equal(s.data, i ? h64k : h256, i ? 10 : 4);
        expect_one(s.data, s.len, 65536, WS_EV_BINARY, pl, sizes[i]);
        free(pl);
        gw_buf_free(&s);
    }
}

/* ------------------------------------------------------ length forms */

static void test_length_boundaries(void **state)
{
    (void)state;
    static const struct {
        uint64_t len;
        size_t hsize;
        uint8_t len7;
    } cases[] = {
        {0, 2, 0},       {125, 2, 125},    {126, 4, 126},
        {65535, 4, 126}, {65536, 10, 127},
    };
    uint8_t *pl = malloc(65536);
    assert_non_null(pl);
    for (size_t j = 0; j < 65536; j++)
        pl[j] = (uint8_t)(j ^ (j >> 8));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t len = cases[i].len;
        uint8_t h[WS_FRAME_HEADER_MAX];
        assert_int_equal(ws_frame_header_size(len, false), cases[i].hsize);
        assert_int_equal(ws_frame_header_size(len, true), cases[i].hsize + 4);
        assert_int_equal(ws_frame_write_header(h, true, WS_OP_BINARY, len,
                                               NULL),
                         cases[i].hsize);
        assert_int_equal(h[0], 0x82);
        assert_int_equal(h[1], cases[i].len7);
        uint64_t got = 0;
        for (size_t k = 2; k < cases[i].hsize; k++)
            got = got << 8 | h[k];
        assert_true(cases[i].hsize == 2 ? h[1] == len : got == len);

        /* masked: same plus the key after the length */
        assert_int_equal(ws_frame_write_header(h, false, WS_OP_TEXT, len,
                                               rfc_mask),
                         cases[i].hsize + 4);
        assert_int_equal(h[0], 0x01);
        assert_int_equal(h[1], 0x80 | cases[i].len7);
        assert_memory_equal(h + cases[i].hsize, rfc_mask, 4);

        /* decode: all at once and byte by byte, exactly at max_message */
        struct gw_buf s = {0};
        put_frame(&s, true, WS_OP_BINARY, pl, (size_t)len);
        expect_one(s.data, s.len, len ? len : 1, WS_EV_BINARY, pl,
                   (size_t)len);
        struct run a, b;
        decode_stream(&a, s.data, s.len, 0, 0);
        decode_stream(&b, s.data, s.len, 1, 0);
        assert_int_equal(a.n_events, 1);
        assert_runs_equal(&a, &b);
        run_free(&a);
        run_free(&b);
        gw_buf_free(&s);
    }
    free(pl);
}

static void test_non_minimal_lengths(void **state)
{
    (void)state;
    /* 126-form for lengths that fit in 7 bits */
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x82, 0x7E, 0x00, 0x7D);
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x82, 0x7E, 0x00, 0x00);
    /* 127-form for lengths that fit in 16 bits */
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x82, 0x7F, 0, 0, 0, 0,
                      0, 0, 0xFF, 0xFF);
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x82, 0x7F, 0, 0, 0, 0,
                      0, 0, 0, 5);
    /* top bit of the 64-bit length */
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x82, 0x7F, 0x80, 0, 0,
                      0, 0, 0, 0, 0);
    /* the smallest legal forms are waited on, not refused */
    static const uint8_t ok126[] = {0x82, 0x7E, 0x00, 0x7E, 'x'};
    static const uint8_t ok127[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0, 'x'};
    struct run r;
    decode_stream(&r, ok126, sizeof ok126, 1, 0);
    assert_int_equal(r.rc, GW_EAGAIN);
    run_free(&r);
    decode_stream(&r, ok127, sizeof ok127, 1, 0);
    assert_int_equal(r.rc, GW_EAGAIN);
    run_free(&r);

    decode_stream(&r, (const uint8_t[]){0x82, 0x7E, 0x00, 0x7D}, 4, 0, 0);
    assert_string_equal(r.why, "non-minimal length encoding");
    run_free(&r);
}

/* ---------------------------------------------------------- splitting */

/* Fragmented text with a ping and a pong in between, a multi-byte
 * character split across fragments, a binary message and a close. */
static void build_mixed_stream(struct gw_buf *s)
{
    memset(s, 0, sizeof *s);
    put_frame(s, false, WS_OP_TEXT, "Hel", 3);
    put_frame(s, true, WS_OP_PING, "p1", 2);
    put_frame(s, false, WS_OP_CONT, "lo w\xC3", 5);   /* ö split here */
    put_frame(s, true, WS_OP_PONG, "", 0);
    put_frame(s, false, WS_OP_CONT, "", 0);
    put_frame(s, true, WS_OP_CONT, "\xB6rld \xE2\x82\xAC", 8);
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(0xFF - i);
    put_frame(s, true, WS_OP_BINARY, bin, sizeof bin);
    put_frame(s, true, WS_OP_TEXT, "", 0);
    uint8_t cp[WS_CONTROL_MAX];
    size_t cn = ws_close_payload(cp, 1000, "bye", 3);
    put_frame(s, true, WS_OP_CLOSE, cp, cn);
}

static void test_mixed_stream_events(void **state)
{
    (void)state;
    struct gw_buf s;
    build_mixed_stream(&s);
    struct ws_decoder *d = ws_decoder_new(4096);
    struct ws_event ev;
    size_t used, off = 0;
    static const struct {
        enum ws_event_type type;
        const char *data;
        size_t len;
    } want[] = {
        {WS_EV_PING, "p1", 2},
        {WS_EV_PONG, "", 0},
        {WS_EV_TEXT, "Hello w\xC3\xB6rld \xE2\x82\xAC", 16},
        {WS_EV_BINARY, NULL, 300},
        {WS_EV_TEXT, "", 0},
        {WS_EV_CLOSE, "\x03\xE8" "bye", 5},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(ws_decoder_feed(d, s.data + off, s.len - off, &used,
                                         &ev),
                         1);
        off += used;
        assert_int_equal(ev.type, want[i].type);
        assert_int_equal(ev.len, want[i].len);
        assert_non_null(ev.data);
        if (want[i].data)
            assert_memory_equal(ev.data, want[i].data, want[i].len);
    }
    assert_int_equal(ev.close_code, 1000);
    assert_int_equal(ev.close_reason_len, 3);
    assert_memory_equal(ev.close_reason, "bye", 3);
    assert_int_equal(off, s.len);
    /* nothing more is allowed after a close; an empty feed is fine */
    assert_int_equal(ws_decoder_feed(d, s.data, 0, &used, &ev), GW_EAGAIN);
    assert_int_equal(ws_decoder_feed(d, s.data, 1, &used, &ev), GW_EPROTO);
    assert_int_equal(ws_decoder_close_code(d), WS_CLOSE_PROTOCOL);
    assert_string_equal(ws_decoder_error(d), "data after close frame");
    ws_decoder_free(d);
    gw_buf_free(&s);
}

static void test_every_split_point(void **state)
{
    (void)state;
    struct gw_buf s;
    build_mixed_stream(&s);
    struct run whole;
    decode_stream(&whole, s.data, s.len, 0, 4096);
    assert_int_equal(whole.n_events, 6);
    assert_int_equal(whole.rc, GW_EAGAIN);

    /* two pieces, cut at every position */
    for (size_t cut = 0; cut <= s.len; cut++) {
        struct run r;
        memset(&r, 0, sizeof r);
        struct ws_decoder *d = ws_decoder_new(4096);
        const uint8_t *pieces[2] = {s.data, s.data + cut};
        size_t lens[2] = {cut, s.len - cut};
        for (int pc = 0; pc < 2; pc++) {
            const uint8_t *p = pieces[pc];
            size_t k = lens[pc];
            struct ws_event ev;
            size_t used;
            int rc;
            while ((rc = ws_decoder_feed(d, p, k, &used, &ev)) == 1) {
                log_event(&r, &ev);
                p += used;
                k -= used;
            }
            assert_int_equal(rc, GW_EAGAIN);
        }
        r.rc = GW_EAGAIN;
        ws_decoder_free(d);
        assert_runs_equal(&whole, &r);
        run_free(&r);
    }
    /* every fixed chunk size, byte-at-a-time included */
    for (size_t chunk = 1; chunk <= s.len; chunk++) {
        struct run r;
        decode_stream(&r, s.data, s.len, chunk, 4096);
        assert_runs_equal(&whole, &r);
        run_free(&r);
    }
    run_free(&whole);
    gw_buf_free(&s);
}

/* The last event's data stays readable until the next call, also when a
 * reused buffer is involved and the caller drops its input. */
static void test_data_lifetime_and_reuse(void **state)
{
    (void)state;
    struct ws_decoder *d = ws_decoder_new(1 << 20);
    struct ws_event ev;
    size_t used;
    uint8_t big[100000];
    memset(big, 'a', sizeof big);
    for (int round = 0; round < 3; round++) {
        struct gw_buf s = {0};
        size_t n = round == 1 ? sizeof big : 1000;
        put_frame(&s, false, WS_OP_BINARY, big, n / 2);
        put_frame(&s, true, WS_OP_CONT, big, n - n / 2);
        assert_int_equal(ws_decoder_feed(d, s.data, s.len, &used, &ev), 1);
        gw_buf_free(&s); /* input gone: reassembled data must survive */
        assert_int_equal(ev.len, n);
        assert_memory_equal(ev.data, big, n);
    }
    ws_decoder_trim(d);
    ws_decoder_trim(NULL);
    struct gw_buf s = {0};
    put_frame(&s, true, WS_OP_TEXT, "ok", 2);
    assert_int_equal(ws_decoder_feed(d, s.data, 1, &used, &ev), GW_EAGAIN);
    ws_decoder_trim(d);
    assert_int_equal(ws_decoder_feed(d, s.data + 1, s.len - 1, &used, &ev),
                     1);
    assert_memory_equal(ev.data, "ok", 2);
    gw_buf_free(&s);
    ws_decoder_free(d);
    ws_decoder_free(NULL);
}

/* A control frame that arrives split is collected in a buffer of its own,
 * allocated only while one is: its payload stays readable until the next
 * call (the caller's input gone), a trim while it is half collected or
 * after its event loses nothing, and a fragmented message around it is
 * intact. Under ASan this also checks the buffer's lifetime. */
static void test_split_control_lifetime(void **state)
{
    (void)state;
    struct ws_decoder *d = ws_decoder_new(1 << 20);
    struct ws_event ev;
    size_t used;
    for (int round = 0; round < 4; round++) {
        struct gw_buf a = {0}, p = {0}, c = {0};
        put_frame(&a, false, WS_OP_TEXT, "frag", 4);
        put_frame(&p, true, round % 2 ? WS_OP_PONG : WS_OP_PING,
                  "control-payload", 15);
        put_frame(&c, true, WS_OP_CONT, "ment", 4);
        assert_int_equal(ws_decoder_feed(d, a.data, a.len, &used, &ev),
                         GW_EAGAIN);
        assert_int_equal(ws_decoder_feed(d, p.data, 5, &used, &ev), GW_EAGAIN);
        assert_int_equal(used, 5);
        if (round == 1)
            ws_decoder_trim(d);  /* half collected: kept */
        assert_int_equal(ws_decoder_feed(d, p.data + 5, p.len - 5, &used, &ev),
                         1);
        gw_buf_free(&p);
        assert_int_equal(ev.type, round % 2 ? WS_EV_PONG : WS_EV_PING);
        assert_int_equal(ev.len, 15);
        assert_memory_equal(ev.data, "control-payload", 15);
        if (round == 2)
            ws_decoder_trim(d);  /* delivered: may go */
        assert_int_equal(ws_decoder_feed(d, c.data, c.len, &used, &ev), 1);
        assert_int_equal(ev.type, WS_EV_TEXT);
        assert_int_equal(ev.len, 8);
        assert_memory_equal(ev.data, "fragment", 8);
        gw_buf_free(&a);
        gw_buf_free(&c);
    }
    ws_decoder_free(d);
}

/* ------------------------------------------------------- frame rules */

static void test_reserved_bits(void **state)
{
    (void)state;
    static const uint8_t rsv[] = {0x40, 0x20, 0x10, 0x70};
    for (size_t i = 0; i < sizeof rsv; i++) {
        uint8_t in[] = {(uint8_t)(0x81 | rsv[i]), 0x01, 'a'};
        expect_fail_n(in, sizeof in, 0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0);
        uint8_t ctl[] = {(uint8_t)(0x89 | rsv[i]), 0x00};
        expect_fail_n(ctl, sizeof ctl, 0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0);
    }
    struct run r;
    decode_stream(&r, (const uint8_t[]){0xC1, 0x00}, 2, 0, 0);
    assert_string_equal(r.why, "reserved bits set");
    run_free(&r);
}

static void test_reserved_opcodes(void **state)
{
    (void)state;
    for (uint8_t op = 0; op < 16; op++) {
        uint8_t in[] = {(uint8_t)(0x80 | op), 0x00};
        bool reserved = (op >= 3 && op <= 7) || op >= 11;
        struct run r;
        decode_stream(&r, in, sizeof in, 0, 0);
        if (reserved) {
            assert_int_equal(r.rc, GW_EPROTO);
            assert_int_equal(r.close_code, WS_CLOSE_PROTOCOL);
            assert_string_equal(r.why, "reserved opcode");
        } else if (op == WS_OP_CONT) {
            assert_int_equal(r.rc, GW_EPROTO); /* no message to continue */
        } else {
            assert_int_equal(r.rc, GW_EAGAIN);
            assert_int_equal(r.n_events, 1);
        }
        run_free(&r);
    }
}

static void test_masked_frames(void **state)
{
    (void)state;
    static const uint8_t ops[] = {0x81, 0x82, 0x89, 0x8A, 0x88};
    for (size_t i = 0; i < sizeof ops; i++) {
        uint8_t in[] = {ops[i], 0x80, 1, 2, 3, 4};
        expect_fail_n(in, sizeof in, 0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0);
    }
    /* a masked continuation in the middle of a message */
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x01, 0x01, 'a', 0x80,
                      0x81, 1, 2, 3, 4, 'b');
}

static void test_control_frame_rules(void **state)
{
    (void)state;
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    uint8_t payload[126];
    memset(payload, 'x', sizeof payload);
    payload[0] = 0x03; /* 1000 for close */
    payload[1] = 0xE8;
    for (size_t i = 0; i < sizeof ops; i++) {
        /* 125 is fine */
        struct gw_buf s = {0};
        put_frame(&s, true, ops[i], payload, 125);
        struct run r;
        decode_stream(&r, s.data, s.len, 1, 0);
        assert_int_equal(r.rc, GW_EAGAIN);
        assert_int_equal(r.n_events, 1);
        assert_int_equal(r.last.len, 125);
        run_free(&r);
        gw_buf_free(&s);
        /* 126 (in the 16-bit form) is not */
        put_frame(&s, true, ops[i], payload, 126);
        expect_fail(&s, 0, GW_EPROTO, WS_CLOSE_PROTOCOL);
        gw_buf_free(&s);
        /* nor the 7-bit values 126/127 announcing longer forms */
        uint8_t h1[] = {(uint8_t)(0x80 | ops[i]), 127, 0, 0, 0, 0, 0, 0, 0, 1};
        expect_fail_n(h1, sizeof h1, 0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0);
        /* control frames cannot be fragmented */
        uint8_t nf[] = {ops[i], 0x00};
        expect_fail_n(nf, sizeof nf, 0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0);
    }
    struct run r;
    decode_stream(&r, (const uint8_t[]){0x09, 0x00}, 2, 0, 0);
    assert_string_equal(r.why, "fragmented control frame");
    run_free(&r);
}

static void test_fragment_sequence_rules(void **state)
{
    (void)state;
    /* continuation with no message */
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x80, 0x01, 'a');
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x00, 0x00);
    /* ... also right after a complete message */
    expect_fail_n((const uint8_t[]){0x81, 0x01, 'a', 0x80, 0x01, 'b'}, 6, 0,
                  GW_EPROTO, WS_CLOSE_PROTOCOL, 1);
    /* TEXT or BINARY while a fragmented message is open */
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x01, 0x01, 'a', 0x81,
                      0x01, 'b');
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x02, 0x01, 'a', 0x02,
                      0x01, 'b');
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x01, 0x00, 0x82,
                      0x00);
    /* control frames between fragments are delivered at once */
    static const uint8_t ok[] = {0x02, 0x01, 'a', 0x89, 0x01, 'p',
                                 0x80, 0x01, 'b'};
    struct run r;
    decode_stream(&r, ok, sizeof ok, 1, 0);
    assert_int_equal(r.rc, GW_EAGAIN);
    assert_int_equal(r.n_events, 2);
    assert_memory_equal(r.log.data, "[3 0 1 0]p[2 0 2 0]ab", 21);
    run_free(&r);
}

/* ------------------------------------------------------- max_message */

static void test_max_message_single(void **state)
{
    (void)state;
    uint8_t pl[1000];
    memset(pl, 'z', sizeof pl);
    struct gw_buf s = {0};
    put_frame(&s, true, WS_OP_TEXT, pl, 1000);
    expect_one(s.data, s.len, 1000, WS_EV_TEXT, pl, 1000);
    expect_fail(&s, 999, GW_ETOOBIG, WS_CLOSE_TOO_BIG);

    /* refused on the header alone, before any payload byte */
    struct run r;
    decode_stream(&r, s.data, 4, 0, 999);
    assert_int_equal(r.rc, GW_ETOOBIG);
    assert_string_equal(r.why, "message exceeds max_message");
    run_free(&r);
    /* a huge declared length, nothing else */
    decode_stream(&r,
                  (const uint8_t[]){0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF,
                                    0xFF, 0xFF, 0xFF},
                  10, 1, 1 << 20);
    assert_int_equal(r.rc, GW_ETOOBIG);
    run_free(&r);
    gw_buf_free(&s);
}

static void test_max_message_fragments(void **state)
{
    (void)state;
    uint8_t pl[600];
    memset(pl, 'q', sizeof pl);
    struct gw_buf s = {0};
    put_frame(&s, false, WS_OP_BINARY, pl, 400);
    put_frame(&s, true, WS_OP_PING, pl, 100); /* does not count */
    put_frame(&s, false, WS_OP_CONT, pl, 300);
    put_frame(&s, true, WS_OP_CONT, pl, 300);
    /* exactly 1000: accepted, after the ping */
    struct run r;
    decode_stream(&r, s.data, s.len, 7, 1000);
    assert_int_equal(r.rc, GW_EAGAIN);
    assert_int_equal(r.n_events, 2);
    assert_int_equal(r.last.type, WS_EV_BINARY);
    assert_int_equal(r.last.len, 1000);
    run_free(&r);
    /* one less allowed: refused at the last header (ping already out) */
    expect_fail_n(s.data, s.len, 999, GW_ETOOBIG, WS_CLOSE_TOO_BIG, 1);
    decode_stream(&r, s.data, s.len, 0, 999);
    assert_int_equal(r.n_events, 1);
    assert_int_equal(r.last.type, WS_EV_PING);
    run_free(&r);
    /* the limit is per message: a second message of 1000 is fine */
    gw_buf_reset(&s);
    put_frame(&s, false, WS_OP_TEXT, pl, 500);
    put_frame(&s, true, WS_OP_CONT, pl, 500);
    put_frame(&s, false, WS_OP_TEXT, pl, 500);
    put_frame(&s, true, WS_OP_CONT, pl, 500);
    decode_stream(&r, s.data, s.len, 0, 1000);
    assert_int_equal(r.rc, GW_EAGAIN);
    assert_int_equal(r.n_events, 2);
    run_free(&r);
    gw_buf_free(&s);
}

/* ------------------------------------------------- UTF-8 in messages */

static void expect_text_fail(const char *a, size_t an, const char *b,
                             size_t bn)
{
    struct gw_buf s = {0};
    if (b) {
        put_frame(&s, false, WS_OP_TEXT, a, an);
        put_frame(&s, true, WS_OP_CONT, b, bn);
    } else {
        put_frame(&s, true, WS_OP_TEXT, a, an);
    }
    expect_fail(&s, 0, GW_EUTF8, WS_CLOSE_BAD_DATA);
    gw_buf_free(&s);
}

static void test_text_utf8_rules(void **state)
{
    (void)state;
    /* invalid in a single frame */
    expect_text_fail("\xED\xA0\x80", 3, NULL, 0);     /* surrogate D800 */
    expect_text_fail("a\xED\xBF\xBF", 4, NULL, 0);    /* surrogate DFFF */
    expect_text_fail("\xC0\xAF", 2, NULL, 0);         /* overlong '/' */
    expect_text_fail("\xE0\x80\xAF", 3, NULL, 0);     /* overlong '/' */
    expect_text_fail("\xF0\x80\x80\xAF", 4, NULL, 0); /* overlong '/' */
    expect_text_fail("\xF4\x90\x80\x80", 4, NULL, 0); /* U+110000 */
    expect_text_fail("ok\xF5", 3, NULL, 0);
    expect_text_fail("\xFF", 1, NULL, 0);
    expect_text_fail("\x80", 1, NULL, 0);             /* lone continuation */
    expect_text_fail("abc\xE2\x82", 5, NULL, 0);      /* truncated at end */
    /* invalid across a fragment boundary */
    expect_text_fail("\xE2\x82", 2, "\x28", 1);
    expect_text_fail("\xED", 1, "\xA0\x80", 2);
    expect_text_fail("\xF0\x90", 2, "\x80", 1);       /* truncated at end */
    /* truncated at the end of the whole message */
    struct run r;
    struct gw_buf s = {0};
    put_frame(&s, true, WS_OP_TEXT, "\xF0\x9F\x98", 3);
    decode_stream(&r, s.data, s.len, 0, 0);
    assert_string_equal(r.why, "truncated utf-8 sequence at end of text message");
    run_free(&r);
    gw_buf_free(&s);

    /* fail fast: refused mid-message, without waiting for FIN */
    put_frame(&s, false, WS_OP_TEXT, "ab\xFF" "cd", 5);
    decode_stream(&r, s.data, s.len, 1, 0);
    assert_int_equal(r.rc, GW_EUTF8);
    assert_int_equal(r.close_code, WS_CLOSE_BAD_DATA);
    assert_string_equal(r.why, "invalid utf-8 in text message");
    run_free(&r);
    /* ... and as soon as the bad byte is in, with the frame incomplete */
    decode_stream(&r, s.data, 5, 0, 0);
    assert_int_equal(r.rc, GW_EUTF8);
    run_free(&r);
    gw_buf_free(&s);

    /* valid UTF-8 split across fragments (and an empty middle one) */
    put_frame(&s, false, WS_OP_TEXT, "\xF0\x9F", 2);
    put_frame(&s, false, WS_OP_CONT, "", 0);
    put_frame(&s, false, WS_OP_CONT, "\x98", 1);
    put_frame(&s, true, WS_OP_CONT, "\x80\xE2\x82\xAC", 4);
    expect_one(s.data, s.len, 0, WS_EV_TEXT, "\xF0\x9F\x98\x80\xE2\x82\xAC",
               7);
    gw_buf_free(&s);

    /* binary messages are not text */
    put_frame(&s, true, WS_OP_BINARY, "\xFF\xED\xA0\x80\xC0", 5);
    expect_one(s.data, s.len, 0, WS_EV_BINARY, "\xFF\xED\xA0\x80\xC0", 5);
    gw_buf_free(&s);
    /* a text message after a binary one starts from a clean state */
    put_frame(&s, false, WS_OP_BINARY, "\xE2", 1);
    put_frame(&s, true, WS_OP_CONT, "", 0);
    put_frame(&s, true, WS_OP_TEXT, "x", 1);
    decode_stream(&r, s.data, s.len, 0, 0);
    assert_int_equal(r.rc, GW_EAGAIN);
    assert_int_equal(r.n_events, 2);
    run_free(&r);
    gw_buf_free(&s);
}

/* --------------------------------------------------------------- close */

static void test_close_code_table(void **state)
{
    (void)state;
    static const struct {
        uint16_t code;
        bool valid;
    } t[] = {
        {0, false},     {1, false},     {999, false},   {1000, true},
        {1001, true},   {1002, true},   {1003, true},   {1004, false},
        {1005, false},  {1006, false},  {1007, true},   {1008, true},
        {1009, true},   {1010, true},   {1011, true},   {1012, true},
        {1013, true},   {1014, true},   {1015, false},  {1016, false},
        {1100, false},  {2000, false},  {2999, false},  {3000, true},
        {3500, true},   {3999, true},   {4000, true},   {4999, true},
        {5000, false},  {9999, false},  {65535, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(ws_close_code_valid(t[i].code), t[i].valid);
        /* and the decoder applies the same table to close frames */
        uint8_t in[] = {0x88, 0x02, (uint8_t)(t[i].code >> 8),
                        (uint8_t)t[i].code};
        struct run r;
        decode_stream(&r, in, sizeof in, 1, 0);
        if (t[i].valid) {
            assert_int_equal(r.rc, GW_EAGAIN);
            assert_int_equal(r.n_events, 1);
            assert_int_equal(r.last.type, WS_EV_CLOSE);
            assert_int_equal(r.last.close_code, t[i].code);
            assert_int_equal(r.last.close_reason_len, 0);
        } else {
            assert_int_equal(r.rc, GW_EPROTO);
            assert_int_equal(r.close_code, WS_CLOSE_PROTOCOL);
            assert_string_equal(r.why, "invalid close code");
        }
        run_free(&r);
    }
}

static void test_close_frames(void **state)
{
    (void)state;
    /* empty close: 1005, empty reason */
    struct ws_decoder *d = ws_decoder_new(0);
    struct ws_event ev;
    size_t used;
    assert_int_equal(
        ws_decoder_feed(d, (const uint8_t[]){0x88, 0x00}, 2, &used, &ev), 1);
    assert_int_equal(ev.type, WS_EV_CLOSE);
    assert_int_equal(ev.close_code, WS_CLOSE_NO_STATUS);
    assert_non_null(ev.close_reason);
    assert_int_equal(ev.close_reason_len, 0);
    assert_int_equal(ev.len, 0);
    ws_decoder_free(d);

    /* code + UTF-8 reason, split byte by byte */
    static const uint8_t good[] = {0x88, 0x07, 0x0F, 0xA0, 'g', 'o',
                                   0xC3, 0xA9, '!'};
    d = ws_decoder_new(0);
    for (size_t i = 0; i + 1 < sizeof good; i++)
        assert_int_equal(ws_decoder_feed(d, good + i, 1, &used, &ev),
                         GW_EAGAIN);
    assert_int_equal(ws_decoder_feed(d, good + 8, 1, &used, &ev), 1);
    assert_int_equal(ev.close_code, 4000);
    assert_int_equal(ev.close_reason_len, 5);
    assert_memory_equal(ev.close_reason, "go\xC3\xA9!", 5);
    ws_decoder_free(d);

    /* one-byte payload: refused on the header, before the payload */
    EXPECT_FAIL_BYTES(0, GW_EPROTO, WS_CLOSE_PROTOCOL, 0x88, 0x01, 0x03);
    struct run r;
    decode_stream(&r, (const uint8_t[]){0x88, 0x01}, 2, 0, 0);
    assert_int_equal(r.rc, GW_EPROTO);
    assert_string_equal(r.why, "close frame with 1-byte payload");
    run_free(&r);
    /* bad UTF-8 in the reason */
    EXPECT_FAIL_BYTES(0, GW_EUTF8, WS_CLOSE_BAD_DATA, 0x88, 0x04, 0x03, 0xE8,
                      0xC3, 0x28);
    EXPECT_FAIL_BYTES(0, GW_EUTF8, WS_CLOSE_BAD_DATA, 0x88, 0x03, 0x03, 0xE8,
                      0xE2); /* truncated */
    decode_stream(&r, (const uint8_t[]){0x88, 0x03, 0x03, 0xE8, 0xFF}, 5, 0,
                  0);
    assert_string_equal(r.why, "invalid utf-8 in close reason");
    run_free(&r);

    /* a close may arrive between fragments; anything after it is an error */
    expect_fail_n((const uint8_t[]){0x01, 0x01, 'a', 0x88, 0x00, 0x80, 0x01,
                                    'b'},
                  8, 0, GW_EPROTO, WS_CLOSE_PROTOCOL, 1);
}

static void test_failed_decoder_is_sticky(void **state)
{
    (void)state;
    struct ws_decoder *d = ws_decoder_new(0);
    struct ws_event ev;
    size_t used = 77;
    assert_int_equal(
        ws_decoder_feed(d, (const uint8_t[]){0x81, 0x81}, 2, &used, &ev),
        GW_EPROTO);
    assert_true(used <= 2);
    assert_int_equal(ws_decoder_close_code(d), WS_CLOSE_PROTOCOL);
    static const uint8_t fine[] = {0x81, 0x01, 'a'};
    for (int i = 0; i < 3; i++) {
        used = 77;
        assert_int_equal(ws_decoder_feed(d, fine, sizeof fine, &used, &ev),
                         GW_EPROTO);
        assert_int_equal(used, 0);
    }
    assert_string_equal(ws_decoder_error(d), "masked frame from server");
    ws_decoder_free(d);

    d = ws_decoder_new(0);
    assert_int_equal(ws_decoder_close_code(d), 0);
    assert_non_null(ws_decoder_error(d));
    ws_decoder_free(d);
}

/* ------------------------------------------------------------- encoder */

static void test_mask_in_pieces(void **state)
{
    (void)state;
    uint8_t mem[1100], ref[1024];
    static const uint8_t key[4] = {0xA1, 0x02, 0xF3, 0x44};
    for (size_t align = 0; align < 8; align++) {
        uint8_t *a = mem + align;
        for (size_t i = 0; i < sizeof ref; i++)
            a[i] = ref[i] = (uint8_t)(i * 31 + 7);
        for (size_t i = 0; i < sizeof ref; i++)
            ref[i] ^= key[i & 3];
        /* uneven pieces: 0, 1, 2, ... bytes */
        size_t off = 0, piece = 0;
        while (off < sizeof ref) {
            size_t k = piece < sizeof ref - off ? piece : sizeof ref - off;
            assert_int_equal(ws_frame_mask(a + off, k, key, off), off + k);
            off += k;
            piece++;
        }
        assert_memory_equal(a, ref, sizeof ref);
        /* masking twice restores the data */
        ws_frame_mask(a, sizeof ref, key, 0);
        for (size_t i = 0; i < sizeof ref; i++)
            assert_int_equal(a[i], (uint8_t)(i * 31 + 7));
    }
    /* offset is taken modulo 4 */
    uint8_t x[5] = {0, 0, 0, 0, 0};
    assert_int_equal(ws_frame_mask(x, 5, key, 6), 11);
    static const uint8_t want[5] = {0xF3, 0x44, 0xA1, 0x02, 0xF3};
    assert_memory_equal(x, want, 5);
}

static void test_close_payload(void **state)
{
    (void)state;
    uint8_t out[WS_CONTROL_MAX];
    assert_int_equal(ws_close_payload(out, 0, "ignored", 7), 0);
    assert_int_equal(ws_close_payload(out, 1000, "bye", 3), 5);
    assert_memory_equal(out, "\x03\xE8" "bye", 5);
    assert_int_equal(ws_close_payload(out, 4001, NULL, 0), 2);
    assert_memory_equal(out, "\x0F\xA1", 2);

    char reason[300];
    memset(reason, 'r', sizeof reason);
    assert_int_equal(ws_close_payload(out, 1001, reason, 123), 125);
    assert_int_equal(ws_close_payload(out, 1001, reason, 124), 125);
    assert_int_equal(ws_close_payload(out, 1001, reason, 300), 125);

    /* a 2-, 3- and 4-byte character straddling the 123-byte cut at every
     * position is dropped whole */
    static const char *chars[] = {"\xC3\xA9", "\xE2\x82\xAC",
                                  "\xF0\x9F\x98\x80"};
    for (size_t c = 0; c < 3; c++) {
        size_t cl = strlen(chars[c]);
        for (size_t start = 123 - cl + 1; start < 123; start++) {
            memset(reason, 'r', sizeof reason);
            memcpy(reason + start, chars[c], cl);
            size_t n = ws_close_payload(out, 1000, reason, 200);
            assert_int_equal(n, 2 + start);
            assert_true(ws_utf8_valid(out + 2, n - 2));
        }
        /* ending exactly at the cut: kept */
        memset(reason, 'r', sizeof reason);
        memcpy(reason + 123 - cl, chars[c], cl);
        assert_int_equal(ws_close_payload(out, 1000, reason, 200), 125);
        assert_true(ws_utf8_valid(out + 2, 123));
    }
}

/* --------------------------------------------------------------- UTF-8 */

struct u8case {
    const char *s;
    size_t n;
    bool valid;
};
#define U8(str, v) {str, sizeof(str) - 1, v}

/* Cases in the spirit of Markus Kuhn's UTF-8 decoder stress test. */
static const struct u8case u8cases[] = {
    U8("", true),
    U8("plain ASCII \x01\x7F", true),
    U8("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", true), /* kosme */
    /* first and last code point of each length */
    U8("\x00", true),
    U8("\xC2\x80", true),
    U8("\xE0\xA0\x80", true),
    U8("\xF0\x90\x80\x80", true),
    U8("\x7F", true),
    U8("\xDF\xBF", true),
    U8("\xEF\xBF\xBF", true),
    U8("\xF4\x8F\xBF\xBF", true),
    /* other boundaries */
    U8("\xED\x9F\xBF", true),     /* U+D7FF */
    U8("\xEE\x80\x80", true),     /* U+E000 */
    U8("\xEF\xBF\xBD", true),     /* U+FFFD */
    U8("\xEF\xBF\xBE", true),     /* U+FFFE: noncharacter, still UTF-8 */
    U8("\xF3\xBF\xBF\xBF", true), /* U+FFFFF */
    /* beyond U+10FFFF and old 5/6-byte forms */
    U8("\xF4\x90\x80\x80", false),
    U8("\xF7\xBF\xBF\xBF", false),
    U8("\xF8\x88\x80\x80\x80", false),
    U8("\xFC\x84\x80\x80\x80\x80", false),
    /* unexpected continuation bytes */
    U8("\x80", false),
    U8("\xBF", false),
    U8("\x80\xBF", false),
    U8("\x80\xBF\x80", false),
    U8("a\x80" "b", false),
    /* lonely start characters followed by a space */
    U8("\xC0 ", false),
    U8("\xC2 ", false),
    U8("\xDF ", false),
    U8("\xE0 ", false),
    U8("\xEF ", false),
    U8("\xF0 ", false),
    U8("\xF4 ", false),
    /* sequences with the last byte missing, alone and concatenated */
    U8("\xC2", false),
    U8("\xE0\xA0", false),
    U8("\xF0\x90\x80", false),
    U8("\xDF\xEF\xBF\xF4\x8F\xBF", false),
    /* impossible bytes */
    U8("\xFE", false),
    U8("\xFF", false),
    U8("\xFE\xFE\xFF\xFF", false),
    /* overlong ASCII '/' */
    U8("\xC0\xAF", false),
    U8("\xE0\x80\xAF", false),
    U8("\xF0\x80\x80\xAF", false),
    U8("\xF8\x80\x80\x80\xAF", false),
    /* maximum overlongs */
    U8("\xC1\xBF", false),
    U8("\xE0\x9F\xBF", false),
    U8("\xF0\x8F\xBF\xBF", false),
    /* overlong NUL */
    U8("\xC0\x80", false),
    U8("\xE0\x80\x80", false),
    U8("\xF0\x80\x80\x80", false),
    /* single and paired UTF-16 surrogates */
    U8("\xED\xA0\x80", false),
    U8("\xED\xAD\xBF", false),
    U8("\xED\xAE\x80", false),
    U8("\xED\xAF\xBF", false),
    U8("\xED\xB0\x80", false),
    U8("\xED\xBE\x80", false),
    U8("\xED\xBF\xBF", false),
    U8("\xED\xA0\x80\xED\xB0\x80", false),
    U8("\xED\xAF\xBF\xED\xBF\xBF", false),
};

static void test_utf8_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof u8cases / sizeof u8cases[0]; i++) {
        const struct u8case *c = &u8cases[i];
        const uint8_t *p = (const uint8_t *)c->s;
        if (ws_utf8_valid(p, c->n) != c->valid)
            fail_msg("case %zu: expected %s", i, c->valid ? "valid" : "bad");
        /* any split gives the same answer */
        for (size_t cut = 0; cut <= c->n; cut++) {
            uint32_t st = ws_utf8_step(WS_UTF8_ACCEPT, p, cut);
            st = ws_utf8_step(st, p + cut, c->n - cut);
            assert_int_equal(st == WS_UTF8_ACCEPT, c->valid);
        }
        /* inside a long ASCII run (exercises the 8-byte fast path) */
        char buf[64];
        for (size_t pre = 0; pre < 20; pre++) {
            memset(buf, 'A', sizeof buf);
            memcpy(buf + pre, c->s, c->n);
            assert_int_equal(ws_utf8_valid((const uint8_t *)buf, sizeof buf),
                             c->valid);
        }
    }
}

static void test_utf8_states(void **state)
{
    (void)state;
    /* mid-sequence is neither accept nor reject */
    uint32_t st = ws_utf8_step(WS_UTF8_ACCEPT, (const uint8_t *)"\xE2", 1);
    assert_int_not_equal(st, WS_UTF8_ACCEPT);
    assert_int_not_equal(st, WS_UTF8_REJECT);
    st = ws_utf8_step(st, (const uint8_t *)"\x82\xAC", 2);
    assert_int_equal(st, WS_UTF8_ACCEPT);
    /* reject is sticky */
    st = ws_utf8_step(WS_UTF8_ACCEPT, (const uint8_t *)"\xFF", 1);
    assert_int_equal(st, WS_UTF8_REJECT);
    assert_int_equal(ws_utf8_step(st, (const uint8_t *)"abc", 3),
                     WS_UTF8_REJECT);
    assert_int_equal(ws_utf8_step(st, NULL, 0), WS_UTF8_REJECT);
    /* a bad byte at any position of a long ASCII run */
    uint8_t buf[70];
    for (size_t i = 0; i < sizeof buf; i++) {
        memset(buf, 'x', sizeof buf);
        buf[i] = 0x80;
        assert_false(ws_utf8_valid(buf, sizeof buf));
        buf[i] = 0x7F;
        assert_true(ws_utf8_valid(buf, sizeof buf));
    }
}

/* Straightforward reference: decode and range-check each code point. */
static bool ref_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t k;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            k = 1, cp = b & 0x1F, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            k = 2, cp = b & 0x0F, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            k = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* Every 1-, 2- and 3-byte string, and 4-byte strings over two free bytes,
 * against the reference. */
static void test_utf8_exhaustive(void **state)
{
    (void)state;
    uint8_t s[4];
    for (uint32_t v = 0; v < (1u << 24); v++) {
        s[0] = (uint8_t)(v >> 16);
        s[1] = (uint8_t)(v >> 8);
        s[2] = (uint8_t)v;
        if (ws_utf8_valid(s, 3) != ref_utf8_valid(s, 3))
            fail_msg("mismatch on %02x %02x %02x", s[0], s[1], s[2]);
        if (v < (1u << 16) &&
            ws_utf8_valid(s + 1, 2) != ref_utf8_valid(s + 1, 2))
            fail_msg("mismatch on %02x %02x", s[1], s[2]);
    }
    static const uint8_t tails[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0};
    for (uint32_t v = 0; v < (1u << 16); v++) {
        s[0] = (uint8_t)(v >> 8);
        s[1] = (uint8_t)v;
        for (size_t a = 0; a < sizeof tails; a++) {
            for (size_t b = 0; b < sizeof tails; b++) {
                s[2] = tails[a];
                s[3] = tails[b];
                if (ws_utf8_valid(s, 4) != ref_utf8_valid(s, 4))
                    fail_msg("mismatch on %02x %02x %02x %02x", s[0], s[1],
                             s[2], s[3]);
            }
        }
    }
}


/* ------------------------------------------------- server side (masked) */

/* Append a masked frame; the key changes from frame to frame. */
static void put_frame_m(struct gw_buf *b, bool fin, enum ws_opcode op,
                        const void *payload, size_t len)
{
    static uint8_t seed;
    uint8_t key[4] = {(uint8_t)(0x5A + seed), 0xC3, (uint8_t)(seed * 7), 0x81};
    seed++;
    uint8_t h[WS_FRAME_HEADER_MAX];
    size_t hl = ws_frame_write_header(h, fin, op, len, key);
    assert_int_equal(gw_buf_append(b, h, hl), 0);
    size_t at = b->len;
    assert_int_equal(gw_buf_append(b, payload, len), 0);
    ws_frame_mask(b->data + at, len, key, 0);
}

/* The mixed stream of build_mixed_stream, masked. */
static void build_mixed_stream_m(struct gw_buf *s)
{
    memset(s, 0, sizeof *s);
    put_frame_m(s, false, WS_OP_TEXT, "Hel", 3);
    put_frame_m(s, true, WS_OP_PING, "p1", 2);
    put_frame_m(s, false, WS_OP_CONT, "lo w\xC3", 5);
    put_frame_m(s, true, WS_OP_PONG, "", 0);
    put_frame_m(s, false, WS_OP_CONT, "", 0);
    put_frame_m(s, true, WS_OP_CONT, "\xB6rld \xE2\x82\xAC", 8);
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (uint8_t)(0xFF - i);
    put_frame_m(s, true, WS_OP_BINARY, bin, sizeof bin);
    put_frame_m(s, true, WS_OP_TEXT, "", 0);
    uint8_t cp[WS_CONTROL_MAX];
    size_t cn = ws_close_payload(cp, 1000, "bye", 3);
    put_frame_m(s, true, WS_OP_CLOSE, cp, cn);
}

static void test_server_rfc_masked_hello(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                 0x9f, 0x4d, 0x51, 0x58};
    g_server = true;
    expect_one(in, sizeof in, 1024, WS_EV_TEXT, "Hello", 5);
    /* the RFC's unmasked "Hello" is refused by a server decoder */
    static const uint8_t plain[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect_fail_n(plain, sizeof plain, 1024, GW_EPROTO, WS_CLOSE_PROTOCOL, 0);
    struct run r;
    decode_stream(&r, plain, sizeof plain, 0, 1024);
    assert_string_equal(r.why, "unmasked frame from client");
    run_free(&r);
    /* empty masked frames first thing, before any buffer exists (found by
     * fuzz_ws_server: pointer arithmetic on the NULL buffer) */
    static const uint8_t empty[] = {0x81, 0x80, 1, 2, 3, 4};
    expect_one(empty, sizeof empty, 1024, WS_EV_TEXT, "", 0);
    static const uint8_t empty_frag[] = {0x02, 0x80, 1, 2, 3, 4,
                                         0x80, 0x80, 5, 6, 7, 8};
    expect_one(empty_frag, sizeof empty_frag, 1024, WS_EV_BINARY, "", 0);
    g_server = false;
}

/* A masked stream gives a server decoder exactly the events the unmasked
 * stream gives a client decoder, at every split and chunk size; the input
 * is never written to. */
static void test_server_every_split_point(void **state)
{
    (void)state;
    struct gw_buf plain, m;
    build_mixed_stream(&plain);
    build_mixed_stream_m(&m);
    struct run want;
    decode_stream(&want, plain.data, plain.len, 0, 4096);
    assert_int_equal(want.n_events, 6);
    uint8_t *copy = malloc(m.len);
    memcpy(copy, m.data, m.len);
    g_server = true;
    for (size_t chunk = 0; chunk <= m.len; chunk++) {
        struct run r;
        decode_stream(&r, m.data, m.len, chunk, 4096);
        assert_runs_equal(&want, &r);
        run_free(&r);
    }
    for (size_t cut = 0; cut <= m.len; cut++) {
        struct run r;
        memset(&r, 0, sizeof r);
        struct ws_decoder *d = ws_decoder_new_server(4096);
        const uint8_t *pieces[2] = {m.data, m.data + cut};
        size_t lens[2] = {cut, m.len - cut};
        for (int pc = 0; pc < 2; pc++) {
            const uint8_t *p = pieces[pc];
            size_t k = lens[pc];
            struct ws_event ev;
            size_t used;
            int rc;
            while ((rc = ws_decoder_feed(d, p, k, &used, &ev)) == 1) {
                log_event(&r, &ev);
                p += used;
                k -= used;
            }
            assert_int_equal(rc, GW_EAGAIN);
        }
        r.rc = GW_EAGAIN;
        ws_decoder_free(d);
        assert_runs_equal(&want, &r);
        run_free(&r);
    }
    g_server = false;
    assert_memory_equal(copy, m.data, m.len);
    free(copy);
    run_free(&want);
    gw_buf_free(&plain);
    gw_buf_free(&m);
}

/* Large masked messages (16- and 64-bit lengths) unmask correctly. */
static void test_server_large_masked(void **state)
{
    (void)state;
    size_t sizes[] = {125, 126, 65535, 65536, 200000};
    g_server = true;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *p = malloc(n);
        for (size_t k = 0; k < n; k++)
            p[k] = (uint8_t)(k * 31 + 7);
        struct gw_buf s = {0};
        put_frame_m(&s, true, WS_OP_BINARY, p, n);
        expect_one(s.data, s.len, 1 << 20, WS_EV_BINARY, p, n);
        /* the same, in three fragments */
        gw_buf_reset(&s);
        put_frame_m(&s, false, WS_OP_BINARY, p, n / 3);
        put_frame_m(&s, false, WS_OP_CONT, p + n / 3, n / 3);
        put_frame_m(&s, true, WS_OP_CONT, p + 2 * (n / 3), n - 2 * (n / 3));
        expect_one(s.data, s.len, 1 << 20, WS_EV_BINARY, p, n);
        gw_buf_free(&s);
        free(p);
    }
    g_server = false;
}

/* Expect a masked stream to fail (one-shot and byte-at-a-time). */
static void expect_fail_m(const struct gw_buf *s, uint64_t max, int rc,
                          uint16_t code, int events_before, const char *why)
{
    g_server = true;
    expect_fail_n(s->data, s->len, max, rc, code, events_before);
    struct run r;
    decode_stream(&r, s->data, s->len, 1, max);
    if (why)
        assert_string_equal(r.why, why);
    run_free(&r);
    g_server = false;
}

/* Every bad client case of the list, masked. */
static void test_server_bad_frames(void **state)
{
    (void)state;
    struct gw_buf s = {0};
    uint8_t big[200] = {0};

    /* an unmasked frame after a good one */
    put_frame_m(&s, true, WS_OP_TEXT, "ok", 2);
    put_frame(&s, true, WS_OP_TEXT, "no", 2);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 1, "unmasked frame from client");
    gw_buf_reset(&s);
    put_frame(&s, true, WS_OP_PING, "", 0);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, "unmasked frame from client");

    /* bad UTF-8 split across fragments: C3 then 28 */
    gw_buf_reset(&s);
    put_frame_m(&s, false, WS_OP_TEXT, "a\xC3", 2);
    put_frame_m(&s, true, WS_OP_CONT, "(", 1);
    expect_fail_m(&s, 0, GW_EUTF8, 1007, 0, NULL);
    /* a sequence left open at the end of the message */
    gw_buf_reset(&s);
    put_frame_m(&s, false, WS_OP_TEXT, "a", 1);
    put_frame_m(&s, true, WS_OP_CONT, "\xE2\x82", 2);
    expect_fail_m(&s, 0, GW_EUTF8, 1007, 0, NULL);
    /* valid UTF-8 split across fragments is fine */
    gw_buf_reset(&s);
    put_frame_m(&s, false, WS_OP_TEXT, "\xE2", 1);
    put_frame_m(&s, true, WS_OP_CONT, "\x82\xAC", 2);
    g_server = true;
    expect_one(s.data, s.len, 0, WS_EV_TEXT, "\xE2\x82\xAC", 3);
    g_server = false;

    /* oversized control frames */
    gw_buf_reset(&s);
    put_frame_m(&s, true, WS_OP_PING, big, 126);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, "control frame too long");
    gw_buf_reset(&s);
    put_frame_m(&s, true, WS_OP_CLOSE, big, 200);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, "control frame too long");
    /* fragmented control frame */
    gw_buf_reset(&s);
    put_frame_m(&s, false, WS_OP_PONG, "x", 1);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, "fragmented control frame");

    /* reserved bits, each of the three */
    for (int bit = 0; bit < 3; bit++) {
        gw_buf_reset(&s);
        put_frame_m(&s, true, WS_OP_TEXT, "x", 1);
        s.data[0] |= (uint8_t)(0x40 >> bit);
        expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, "reserved bits set");
    }
    /* every reserved opcode */
    static const uint8_t bad_ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof bad_ops; i++) {
        gw_buf_reset(&s);
        put_frame_m(&s, true, (enum ws_opcode)bad_ops[i], "x", 1);
        expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, "reserved opcode");
    }
    /* continuation without a message, new message inside one */
    gw_buf_reset(&s);
    put_frame_m(&s, true, WS_OP_CONT, "x", 1);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, NULL);
    gw_buf_reset(&s);
    put_frame_m(&s, false, WS_OP_TEXT, "x", 1);
    put_frame_m(&s, true, WS_OP_BINARY, "y", 1);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, NULL);

    /* close frames with invalid codes, 1-byte payload, bad reason */
    static const uint16_t bad_codes[] = {0, 999, 1004, 1005, 1006, 1015,
                                         1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        uint8_t cp[2] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i]};
        gw_buf_reset(&s);
        put_frame_m(&s, true, WS_OP_CLOSE, cp, 2);
        expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, "invalid close code");
    }
    gw_buf_reset(&s);
    put_frame_m(&s, true, WS_OP_CLOSE, "\x03", 1);
    expect_fail_m(&s, 0, GW_EPROTO, 1002, 0, NULL);
    gw_buf_reset(&s);
    put_frame_m(&s, true, WS_OP_CLOSE, "\x03\xE8\xFF", 3);
    expect_fail_m(&s, 0, GW_EUTF8, 1007, 0, "invalid utf-8 in close reason");

    /* max_message: one frame, and fragments adding up past it */
    gw_buf_reset(&s);
    put_frame_m(&s, true, WS_OP_BINARY, big, 101);
    expect_fail_m(&s, 100, GW_ETOOBIG, 1009, 0, NULL);
    gw_buf_reset(&s);
    put_frame_m(&s, false, WS_OP_TEXT, big, 60);
    put_frame_m(&s, true, WS_OP_CONT, big, 41);
    expect_fail_m(&s, 100, GW_ETOOBIG, 1009, 0, NULL);

    /* and a good close at the end is an event */
    gw_buf_reset(&s);
    uint8_t cp[WS_CONTROL_MAX];
    size_t cn = ws_close_payload(cp, 4001, "bye", 3);
    put_frame_m(&s, true, WS_OP_CLOSE, cp, cn);
    g_server = true;
    expect_one(s.data, s.len, 0, WS_EV_CLOSE, cp, cn);
    g_server = false;
    gw_buf_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_unmasked_hello),
        cmocka_unit_test(test_rfc_masked_hello),
        cmocka_unit_test(test_rfc_fragmented_hello),
        cmocka_unit_test(test_rfc_ping_pong),
        cmocka_unit_test(test_rfc_256_and_64k_headers),
        cmocka_unit_test(test_length_boundaries),
        cmocka_unit_test(test_non_minimal_lengths),
        cmocka_unit_test(test_mixed_stream_events),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_data_lifetime_and_reuse),
        cmocka_unit_test(test_split_control_lifetime),
        cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_reserved_opcodes),
        cmocka_unit_test(test_masked_frames),
        cmocka_unit_test(test_control_frame_rules),
        cmocka_unit_test(test_fragment_sequence_rules),
        cmocka_unit_test(test_max_message_single),
        cmocka_unit_test(test_max_message_fragments),
        cmocka_unit_test(test_text_utf8_rules),
        cmocka_unit_test(test_close_code_table),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_failed_decoder_is_sticky),
        cmocka_unit_test(test_mask_in_pieces),
        cmocka_unit_test(test_close_payload),
        cmocka_unit_test(test_utf8_vectors),
        cmocka_unit_test(test_utf8_states),
        cmocka_unit_test(test_utf8_exhaustive),
        cmocka_unit_test(test_server_rfc_masked_hello),
        cmocka_unit_test(test_server_every_split_point),
        cmocka_unit_test(test_server_large_masked),
        cmocka_unit_test(test_server_bad_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

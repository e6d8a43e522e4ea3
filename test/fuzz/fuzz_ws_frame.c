/*
 * fuzz_ws_frame.c - libFuzzer target for the ws_frame decoder (and a few
 * encoder helpers on the side).
 *
 * Input layout: byte 0 chooses how the stream is cut, byte 1 chooses
 * max_message, the rest is the byte stream from the "server".
 *
 * The stream is decoded once in one piece and once cut into chunks; the
 * two runs must produce byte-identical event logs and the same final
 * result. Every event is checked for well-formedness on the way.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude
 *        -D_GNU_SOURCE gateway/gw_common.c gateway/ws_utf8.c
 *        gateway/ws_frame.c test/fuzz/fuzz_ws_frame.c -o fuzz_ws_frame
 */
#include "ws_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_common.h"

/* A decode run: serialized events plus the final outcome. */
struct run {
    struct gw_buf log;
    int rc;              /* GW_EAGAIN or the error */
    uint16_t close_code;
    const char *why;
};

static uint64_t pick_max(uint8_t sel)
{
    if (sel == 0)
        return 0;                       /* unlimited */
    if (sel < 128)
        return sel;                     /* tiny limits: 1..127 */
    return (uint64_t)16 << (sel & 15);  /* 16 B .. 512 KiB */
}

static void log_event(struct run *r, const struct ws_event *ev)
{
    uint8_t head[1 + 2 + 8];
    head[0] = (uint8_t)ev->type;
    head[1] = (uint8_t)(ev->close_code >> 8);
    head[2] = (uint8_t)ev->close_code;
    for (int i = 0; i < 8; i++)
        head[3 + i] = (uint8_t)((uint64_t)ev->len >> (56 - 8 * i));
    CHECK(gw_buf_append(&r->log, head, sizeof head) == 0);
    CHECK(gw_buf_append(&r->log, ev->data, ev->len) == 0);
}

static void check_event(const struct ws_event *ev, uint64_t max)
{
    CHECK(ev->data != NULL);
    switch (ev->type) {
    case WS_EV_TEXT:
        CHECK(ws_utf8_valid(ev->data, ev->len));
        /* fallthrough */
    case WS_EV_BINARY:
        CHECK(max == 0 || ev->len <= max);
        CHECK(ev->close_code == 0 && ev->close_reason == NULL);
        break;
    case WS_EV_PING:
    case WS_EV_PONG:
        CHECK(ev->len <= WS_CONTROL_MAX);
        break;
    case WS_EV_CLOSE:
        CHECK(ev->len <= WS_CONTROL_MAX && ev->len != 1);
        CHECK(ev->close_reason != NULL);
        if (ev->len == 0) {
            CHECK(ev->close_code == WS_CLOSE_NO_STATUS);
            CHECK(ev->close_reason_len == 0);
        } else {
            CHECK(ws_close_code_valid(ev->close_code));
            CHECK(ev->close_code == (ev->data[0] << 8 | ev->data[1]));
            CHECK((const uint8_t *)ev->close_reason == ev->data + 2);
            CHECK(ev->close_reason_len == ev->len - 2);
            CHECK(ws_utf8_valid((const uint8_t *)ev->close_reason,
                                ev->close_reason_len));
        }
        break;
    default:
        CHECK(!"bad event type");
    }
}

static void check_error(struct ws_decoder *d, int rc)
{
    uint16_t code = ws_decoder_close_code(d);
    switch (rc) {
    case GW_EPROTO: CHECK(code == WS_CLOSE_PROTOCOL); break;
    case GW_EUTF8: CHECK(code == WS_CLOSE_BAD_DATA); break;
    case GW_ETOOBIG: CHECK(code == WS_CLOSE_TOO_BIG); break;
    case GW_ENOMEM: CHECK(code == WS_CLOSE_INTERNAL); break;
    default: CHECK(!"unexpected return code");
    }
    CHECK(strlen(ws_decoder_error(d)) > 0);
    /* Sticky. */
    size_t used = 99;
    struct ws_event ev;
    CHECK(ws_decoder_feed(d, (const uint8_t *)"x", 1, &used, &ev) == rc);
    CHECK(used == 0);
}

/* Feed one chunk until it is used up; false once the decoder failed. */
static bool feed_chunk(struct ws_decoder *d, struct run *r, uint64_t max,
                       const uint8_t *p, size_t n)
{
    for (;;) {
        struct ws_event ev;
        size_t used = SIZE_MAX;
        int rc = ws_decoder_feed(d, p, n, &used, &ev);
        CHECK(used <= n);
        if (rc == 1) {
            check_event(&ev, max);
            log_event(r, &ev);
            p += used;
            n -= used;
            continue;
        }
        if (rc == GW_EAGAIN) {
            CHECK(used == n);
            return true;
        }
        check_error(d, rc);
        r->rc = rc;
        r->close_code = ws_decoder_close_code(d);
        r->why = ws_decoder_error(d);
        return false;
    }
}

/* Next chunk size: fixed for mode 1..127, pseudo-random otherwise. */
static size_t next_chunk(uint8_t mode, uint32_t *rng)
{
    if (mode == 0)
        return 1;
    if (mode < 128)
        return mode;
    *rng ^= *rng << 13;
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    return *rng % ((size_t)(mode - 126) * 4) + 1;
}

static void decode(struct run *r, const uint8_t *s, size_t n, uint64_t max,
                   int mode)
{
    memset(r, 0, sizeof *r);
    r->rc = GW_EAGAIN;
    struct ws_decoder *d = ws_decoder_new(max);
    CHECK(d != NULL);
    uint32_t rng = 0x9E3779B9u ^ (uint32_t)n;
    size_t off = 0;
    do {
        size_t k = mode < 0 ? n : next_chunk((uint8_t)mode, &rng);
        if (k > n - off)
            k = n - off;
        if (!feed_chunk(d, r, max, s + off, k))
            break;
        off += k;
        if (mode >= 0 && (rng & 7) == 0)
            ws_decoder_trim(d); /* must never change the outcome */
    } while (off < n);
    ws_decoder_free(d);
}

/* Masking in two pieces equals masking byte by byte. */
static void check_mask(const uint8_t *s, size_t n)
{
    if (n < 4)
        return;
    uint8_t key[4];
    memcpy(key, s, 4);
    uint8_t *mem = malloc(n + 1), *b = malloc(n);
    CHECK(mem && b);
    uint8_t *a = mem + (s[0] & 1); /* misaligned half of the time */
    memcpy(a, s, n);
    memcpy(b, s, n);
    size_t cut = s[n - 1] % n;
    size_t off = ws_frame_mask(a, cut, key, 0);
    CHECK(off == cut);
    CHECK(ws_frame_mask(a + cut, n - cut, key, off) == n);
    for (size_t i = 0; i < n; i++)
        b[i] ^= key[i & 3];
    CHECK(memcmp(a, b, n) == 0);
    free(mem);
    free(b);
}

/* Close payload: bounded, a prefix, and UTF-8 preserved if it was. */
static void check_close_payload(const uint8_t *s, size_t n)
{
    uint8_t out[WS_CONTROL_MAX];
    size_t k = ws_close_payload(out, 4000, (const char *)s, n);
    CHECK(k >= 2 && k <= WS_CONTROL_MAX);
    CHECK(out[0] == 4000 >> 8 && out[1] == (4000 & 0xFF));
    CHECK(memcmp(out + 2, s, k - 2) == 0);
    if (ws_utf8_valid(s, n))
        CHECK(ws_utf8_valid(out + 2, k - 2));
    if (n <= WS_CONTROL_MAX - 2)
        CHECK(k == n + 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0];
    uint64_t max = pick_max(data[1]);
    const uint8_t *s = data + 2;
    size_t n = size - 2;

    struct run whole, cut;
    decode(&whole, s, n, max, -1);
    decode(&cut, s, n, max, mode);
    CHECK(whole.rc == cut.rc);
    CHECK(whole.close_code == cut.close_code);
    CHECK((whole.why == NULL) == (cut.why == NULL));
    CHECK(whole.why == NULL || strcmp(whole.why, cut.why) == 0);
    CHECK(whole.log.len == cut.log.len);
    CHECK(whole.log.len == 0 ||
          memcmp(whole.log.data, cut.log.data, whole.log.len) == 0);
    gw_buf_free(&whole.log);
    gw_buf_free(&cut.log);

    check_mask(s, n);
    check_close_payload(s, n);
    return 0;
}

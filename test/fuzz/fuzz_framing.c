/*
 * fuzz_framing.c - libFuzzer target for framing.c and framing_native.c.
 *
 * The input is used whole, several ways:
 *  - as base64: if framing_base64_decode accepts it, encoding the result
 *    gives the input back (so only canonical strings are accepted); and
 *    encoding the input then decoding gives the input back;
 *  - as a JSON string payload, both flavours: when the input is valid
 *    UTF-8 jansson parses the escaped form back to identical bytes, and
 *    nothing that must be escaped appears raw; for any input the output
 *    stays within 6n+2 and a buffer capped at exactly the output size
 *    gives the same bytes, one byte less gives GW_ETOOBIG, unchanged;
 *  - as a close reason: the SSE close event is valid UTF-8, its data line
 *    is a JSON object whose reason is the input (valid) or the input with
 *    U+FFFD substitutions (invalid);
 *  - as a poll message, text (valid input) and binary: valid JSON with the
 *    payload in it.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11
 *        -D_GNU_SOURCE -Iinclude gateway/gw_common.c gateway/ws_utf8.c
 *        gateway/framing.c gateway/framing_native.c test/fuzz/fuzz_framing.c
 *        -ljansson
 *        -o fuzz_framing
 */
#include "framing.h"
#include "framing_native.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_common.h"

static bool has(const struct gw_buf *b, const char *s, size_t n)
{
    return b->len >= n && memmem(b->data, b->len, s, n) != NULL;
}

static json_t *parse(const uint8_t *p, size_t n)
{
    return json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                      NULL);
}

static void check_base64(const uint8_t *data, size_t size)
{
    struct gw_buf d = {0}, e = {0};
    int rc = framing_base64_decode(&d, (const char *)data, size);
    if (rc == 0) {
        CHECK(framing_base64_append(&e, d.data, d.len) == 0);
        CHECK(e.len == size && (size == 0 || memcmp(e.data, data, size) == 0));
    } else {
        CHECK(rc == GW_EINVAL && d.len == 0);
        CHECK(d.data == NULL || d.data[0] == 0);
    }
    gw_buf_reset(&d);
    gw_buf_reset(&e);
    CHECK(framing_base64_append(&e, data, size) == 0);
    CHECK(e.len == framing_base64_len(size));
    CHECK(framing_base64_decode(&d, (const char *)e.data, e.len) == 0);
    CHECK(d.len == size && (size == 0 || memcmp(d.data, data, size) == 0));
    gw_buf_free(&d);
    gw_buf_free(&e);
}

/* No raw escape-worthy character in an escaped string of valid UTF-8. */
static void check_no_raw(const struct gw_buf *b, enum framing_json_flavour fl)
{
    for (size_t i = 0; i < b->len; i++)
        CHECK(b->data[i] >= 0x20);
    CHECK(!has(b, "</", 2));
    CHECK(!has(b, "\xe2\x80\xa8", 3) && !has(b, "\xe2\x80\xa9", 3));
    if (fl != FRAMING_JSON_SOCKJS)
        return;
    for (size_t i = 0; i + 2 < b->len; i++) {
        const uint8_t *p = b->data + i;
        if ((p[0] & 0xF0) != 0xE0 || (p[1] & 0xC0) != 0x80)
            continue;
        uint32_t cp = (uint32_t)(p[0] & 0x0F) << 12 |
                      (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        CHECK(!((cp >= 0x200C && cp <= 0x200F) ||
                (cp >= 0x2028 && cp <= 0x202F) ||
                (cp >= 0x2060 && cp <= 0x206F) || cp >= 0xFFF0));
    }
}

static void check_escape(const uint8_t *data, size_t size, bool valid,
                         enum framing_json_flavour fl)
{
    struct gw_buf out = {0};
    CHECK(framing_json_string(&out, data, size, fl) == 0);
    CHECK(out.len >= size + 2 && out.len <= 6 * size + 2);
    CHECK(out.data[0] == '"' && out.data[out.len - 1] == '"');

    /* exact-size cap: same bytes; one less: refused, buffer untouched */
    struct gw_buf capped = {.max = out.len};
    CHECK(framing_json_string(&capped, data, size, fl) == 0);
    CHECK(capped.len == out.len && memcmp(capped.data, out.data, out.len) == 0);
    gw_buf_free(&capped);
    capped.max = out.len - 1;
    CHECK(framing_json_string(&capped, data, size, fl) == GW_ETOOBIG);
    CHECK(capped.len == 0);
    gw_buf_free(&capped);

    if (valid) {
        json_t *j = parse(out.data, out.len);
        CHECK(j && json_is_string(j));
        CHECK(json_string_length(j) == size);
        CHECK(size == 0 || memcmp(json_string_value(j), data, size) == 0);
        json_decref(j);
        check_no_raw(&out, fl);
    }
    gw_buf_free(&out);
}

static void check_close(const uint8_t *data, size_t size, bool valid)
{
    static const char head[] = "event: close\ndata: ";
    struct gw_buf b = {0};
    struct framing_native_close cl = { 4321, (const char *)data, size };
    CHECK(framing_native_sse_close(&b, &cl) == 0);
    CHECK(ws_utf8_valid(b.data, b.len));
    CHECK(b.len > sizeof head + 1);
    CHECK(memcmp(b.data, head, sizeof head - 1) == 0);
    CHECK(b.data[b.len - 2] == '\n' && b.data[b.len - 1] == '\n');
    size_t jl = b.len - (sizeof head - 1) - 2;
    CHECK(!memchr(b.data + sizeof head - 1, '\n', jl)); /* one data line */
    json_t *j = parse(b.data + sizeof head - 1, jl);
    CHECK(j && json_is_object(j) && json_object_size(j) == 2);
    CHECK(json_integer_value(json_object_get(j, "code")) == 4321);
    json_t *r = json_object_get(j, "reason");
    CHECK(json_is_string(r));
    if (valid) {
        CHECK(json_string_length(r) == size);
        CHECK(size == 0 || memcmp(json_string_value(r), data, size) == 0);
    } else {
        CHECK(memmem(json_string_value(r), json_string_length(r),
                     "\xef\xbf\xbd", 3) != NULL);
        CHECK(json_string_length(r) <= 3 * size);
    }
    json_decref(j);
    gw_buf_free(&b);
}

static void check_poll(const uint8_t *data, size_t size, bool binary)
{
    struct gw_buf b = {0}, d = {0};
    CHECK(framing_native_poll_message(&b, 99, binary, data, size) == 0);
    json_t *j = parse(b.data, b.len);
    CHECK(j && json_is_object(j) && json_object_size(j) == 2);
    CHECK(json_integer_value(json_object_get(j, "seq")) == 99);
    json_t *v = json_object_get(j, binary ? "binary" : "text");
    CHECK(json_is_string(v));
    if (binary) {
        CHECK(framing_base64_decode(&d, json_string_value(v),
                                    json_string_length(v)) == 0);
        CHECK(d.len == size && (size == 0 || memcmp(d.data, data, size) == 0));
    } else {
        CHECK(json_string_length(v) == size);
        CHECK(size == 0 || memcmp(json_string_value(v), data, size) == 0);
    }
    json_decref(j);
    gw_buf_free(&b);
    gw_buf_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool valid = ws_utf8_valid(data, size);
    check_base64(data, size);
    check_escape(data, size, valid, FRAMING_JSON_STD);
    check_escape(data, size, valid, FRAMING_JSON_SOCKJS);
    check_close(data, size, valid);
    check_poll(data, size, true);
    if (valid)
        check_poll(data, size, false);
    return 0;
}

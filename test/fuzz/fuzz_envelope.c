/*
 * fuzz_envelope.c - libFuzzer target for envelope.c.
 *
 * The whole input is a send body for envelope_parse (max_batch 16), a text
 * body for envelope_from_text and, NUL-terminated, a string for
 * envelope_parse_seq. Checked on every run:
 *  - success: every message lies inside env->data, messages are back to
 *    back in order and fill it, text is valid UTF-8, n <= max_batch,
 *    seq <= 2^53-1; each binary payload re-encodes to base64 that decodes
 *    back to it, each text payload escapes to JSON that jansson parses
 *    back to the same bytes;
 *  - failure: a known code, err.code equal to it, a non-empty printable
 *    message, and an empty envelope;
 *  - envelope_from_text succeeds exactly when the input is valid UTF-8;
 *  - envelope_parse_seq only accepts digit strings up to 2^53-1.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11
 *        -D_GNU_SOURCE -Iinclude gateway/gw_common.c gateway/ws_utf8.c
 *        gateway/framing.c gateway/envelope.c test/fuzz/fuzz_envelope.c
 *        -ljansson -o fuzz_envelope
 */
#include "envelope.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_common.h"

#define MAX_BATCH 16

static void check_error(int rc, const struct gw_error *err,
                        const struct envelope *env)
{
    CHECK(rc == GW_EINVAL || rc == GW_EUTF8 || rc == GW_ETOOBIG ||
          rc == GW_ENOMEM);
    CHECK(err->code == rc);
    CHECK(err->msg[0] != 0);
    for (const char *c = err->msg; *c; c++)
        CHECK(*c >= 0x20 && *c < 0x7F);
    CHECK(env->n == 0 && env->msgs == NULL && env->data.data == NULL);
}

static void check_text_round_trip(const uint8_t *p, size_t n)
{
    struct gw_buf j = {0};
    CHECK(framing_json_string(&j, p, n, FRAMING_JSON_STD) == 0);
    json_t *v = json_loadb((const char *)j.data, j.len,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(v && json_is_string(v));
    CHECK(json_string_length(v) == n);
    CHECK(n == 0 || memcmp(json_string_value(v), p, n) == 0);
    json_decref(v);
    gw_buf_free(&j);
}

static void check_binary_round_trip(const uint8_t *p, size_t n)
{
    struct gw_buf e = {0}, d = {0};
    CHECK(framing_base64_append(&e, p, n) == 0);
    CHECK(framing_base64_decode(&d, (const char *)e.data, e.len) == 0);
    CHECK(d.len == n && (n == 0 || memcmp(d.data, p, n) == 0));
    gw_buf_free(&e);
    gw_buf_free(&d);
}

static void check_parse(const uint8_t *data, size_t size)
{
    struct envelope env;
    struct gw_error err = {0};
    int rc = envelope_parse(&env, (const char *)data, size, MAX_BATCH, &err);
    if (rc < 0) {
        check_error(rc, &err, &env);
        return;
    }
    CHECK(rc == 0);
    CHECK(env.n <= MAX_BATCH);
    CHECK(!env.has_seq ? env.seq == 0 : env.seq <= (UINT64_C(1) << 53) - 1);
    CHECK((env.n == 0) == (env.msgs == NULL));
    size_t off = 0;
    for (size_t i = 0; i < env.n; i++) {
        const struct envelope_msg *m = &env.msgs[i];
        CHECK(m->off == off);
        CHECK(m->off <= env.data.len && m->len <= env.data.len - m->off);
        const uint8_t *p = env.data.data + m->off;
        if (m->binary) {
            check_binary_round_trip(p, m->len);
        } else {
            CHECK(ws_utf8_valid(p, m->len));
            check_text_round_trip(p, m->len);
        }
        off += m->len;
    }
    CHECK(off == env.data.len);
    CHECK(off <= size); /* payloads never outgrow the body */
    envelope_clear(&env);
}

static void check_from_text(const uint8_t *data, size_t size)
{
    struct envelope env;
    struct gw_error err = {0};
    int rc = envelope_from_text(&env, (const char *)data, size, &err);
    if (!ws_utf8_valid(data, size)) {
        CHECK(rc == GW_EUTF8);
        check_error(rc, &err, &env);
        return;
    }
    CHECK(rc == 0 && env.n == 1 && !env.msgs[0].binary);
    CHECK(env.msgs[0].off == 0 && env.msgs[0].len == size);
    CHECK(env.data.len == size);
    CHECK(size == 0 || memcmp(env.data.data, data, size) == 0);
    envelope_clear(&env);
}

static void check_seq(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    CHECK(s);
    memcpy(s, data, size);
    s[size] = 0;
    uint64_t v = 0xDEAD;
    int rc = envelope_parse_seq(s, &v);
    if (rc == 0) {
        CHECK(s[0] != 0);
        uint64_t ref = 0;
        for (const char *c = s; *c; c++) {
            CHECK(*c >= '0' && *c <= '9');
            ref = ref * 10 + (uint64_t)(*c - '0');
            CHECK(ref <= (UINT64_C(1) << 53) - 1);
        }
        CHECK(v == ref);
    } else {
        CHECK(rc == GW_EINVAL && v == 0xDEAD);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_parse(data, size);
    check_from_text(data, size);
    check_seq(data, size);
    return 0;
}

/*
 * test_framing.c - framing.c: JSON string escaping (both flavours),
 * base64 (the native protocol's messages and events are
 * test_framing_native.c's). Data-driven: input -> expected
 * output, byte for byte; plus a random round trip through jansson.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "ws_frame.h"

/* A byte string literal and its length (may contain NUL). */
#define B(s) s, sizeof(s) - 1

static void assert_buf_eq(const struct gw_buf *b, const char *want,
                          size_t want_len, const char *what)
{
    if (b->len != want_len || memcmp(b->data, want, want_len) != 0) {
        print_error("%s:\n  got  (%zu) [%.*s]\n  want (%zu) [%.*s]\n", what,
                    b->len, (int)b->len, b->data ? (char *)b->data : "",
                    want_len, (int)want_len, want);
        fail();
    }
    assert_int_equal(b->data[b->len], 0); /* gw_buf keeps a NUL after */
}

static void check_escape(const char *in, size_t in_len,
                         enum framing_json_flavour fl, const char *want)
{
    struct gw_buf b = {0};
    char what[64];
    snprintf(what, sizeof what, "escape %s of [%.*s]",
             fl == FRAMING_JSON_STD ? "std" : "sockjs", (int)in_len, in);
    assert_int_equal(framing_json_string(&b, (const uint8_t *)in, in_len, fl), 0);
    assert_buf_eq(&b, want, strlen(want), what);
    gw_buf_free(&b);
}

/* ------------------------------------------------------ control chars */

static const struct {
    char std[9];    /* expected, quotes included */
    char sockjs[9];
} ctrl_cases[32] = {
    {"\"\\u0000\"", "\"\\u0000\""}, {"\"\\u0001\"", "\"\\u0001\""},
    {"\"\\u0002\"", "\"\\u0002\""}, {"\"\\u0003\"", "\"\\u0003\""},
    {"\"\\u0004\"", "\"\\u0004\""}, {"\"\\u0005\"", "\"\\u0005\""},
    {"\"\\u0006\"", "\"\\u0006\""}, {"\"\\u0007\"", "\"\\u0007\""},
    {"\"\\b\"", "\"\\u0008\""},     {"\"\\t\"", "\"\\u0009\""},
    {"\"\\n\"", "\"\\u000a\""},     {"\"\\u000b\"", "\"\\u000b\""},
    {"\"\\f\"", "\"\\u000c\""},     {"\"\\r\"", "\"\\u000d\""},
    {"\"\\u000e\"", "\"\\u000e\""}, {"\"\\u000f\"", "\"\\u000f\""},
    {"\"\\u0010\"", "\"\\u0010\""}, {"\"\\u0011\"", "\"\\u0011\""},
    {"\"\\u0012\"", "\"\\u0012\""}, {"\"\\u0013\"", "\"\\u0013\""},
    {"\"\\u0014\"", "\"\\u0014\""}, {"\"\\u0015\"", "\"\\u0015\""},
    {"\"\\u0016\"", "\"\\u0016\""}, {"\"\\u0017\"", "\"\\u0017\""},
    {"\"\\u0018\"", "\"\\u0018\""}, {"\"\\u0019\"", "\"\\u0019\""},
    {"\"\\u001a\"", "\"\\u001a\""}, {"\"\\u001b\"", "\"\\u001b\""},
    {"\"\\u001c\"", "\"\\u001c\""}, {"\"\\u001d\"", "\"\\u001d\""},
    {"\"\\u001e\"", "\"\\u001e\""}, {"\"\\u001f\"", "\"\\u001f\""},
};

static void test_escape_control_chars(void **state)
{
    (void)state;
    for (int c = 0; c < 32; c++) {
        char in[1] = {(char)c};
        check_escape(in, 1, FRAMING_JSON_STD, ctrl_cases[c].std);
        check_escape(in, 1, FRAMING_JSON_SOCKJS, ctrl_cases[c].sockjs);
    }
}

/* ---------------------------------------------------- escape table */

struct esc_case {
    const char *in;
    size_t in_len;
    const char *std;    /* expected, quotes included */
    const char *sockjs;
};

static const struct esc_case esc_cases[] = {
    {B(""), "\"\"", "\"\""},
    {B("hello"), "\"hello\"", "\"hello\""},
    {B("say \"hi\""), "\"say \\\"hi\\\"\"", "\"say \\\"hi\\\"\""},
    {B("a\\b"), "\"a\\\\b\"", "\"a\\\\b\""},
    {B("\\\""), "\"\\\\\\\"\"", "\"\\\\\\\"\""},
    {B("\x7f"), "\"\x7f\"", "\"\x7f\""},                 /* DEL raw */
    {B("line1\nline2\r\n"), "\"line1\\nline2\\r\\n\"",
     "\"line1\\u000aline2\\u000d\\u000a\""},
    {B("a\0b"), "\"a\\u0000b\"", "\"a\\u0000b\""},       /* NUL inside */
    {B("\0"), "\"\\u0000\"", "\"\\u0000\""},
    /* "</" only */
    {B("</script>"), "\"<\\/script>\"", "\"<\\/script>\""},
    {B("x</script><script>"), "\"x<\\/script><script>\"",
     "\"x<\\/script><script>\""},
    {B("a/b"), "\"a/b\"", "\"a/b\""},
    {B("http://x/y"), "\"http://x/y\"", "\"http://x/y\""},
    {B("<"), "\"<\"", "\"<\""},
    {B("/"), "\"/\"", "\"/\""},
    {B("<</"), "\"<<\\/\"", "\"<<\\/\""},
    {B("</</"), "\"<\\/<\\/\"", "\"<\\/<\\/\""},
    {B("< /"), "\"< /\"", "\"< /\""},
    /* 2-, 3-, 4-byte UTF-8 pass through */
    {B("caf\xc3\xa9"), "\"caf\xc3\xa9\"", "\"caf\xc3\xa9\""},
    {B("\xe2\x82\xac"), "\"\xe2\x82\xac\"", "\"\xe2\x82\xac\""}, /* U+20AC */
    {B("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"",
     "\"\xf0\x9f\x98\x80\""},                                     /* U+1F600 */
    {B("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\"",
     "\"\xf4\x8f\xbf\xbf\""},                                     /* U+10FFFF */
    {B("\xef\xbf\xbd"), "\"\xef\xbf\xbd\"", "\"\\ufffd\""},  /* U+FFFD */
    /* U+2028 / U+2029: both flavours */
    {B("\xe2\x80\xa8"), "\"\\u2028\"", "\"\\u2028\""},
    {B("\xe2\x80\xa9"), "\"\\u2029\"", "\"\\u2029\""},
    {B("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c"), "\"a\\u2028b\\u2029c\"",
     "\"a\\u2028b\\u2029c\""},
    {B("\xe2\x80\xa7"), "\"\xe2\x80\xa7\"", "\"\xe2\x80\xa7\""}, /* U+2027 */
    /* SockJS range boundaries (STD leaves all but 2028/2029 raw) */
    {B("\xe2\x80\x8b"), "\"\xe2\x80\x8b\"", "\"\xe2\x80\x8b\""}, /* 200B */
    {B("\xe2\x80\x8c"), "\"\xe2\x80\x8c\"", "\"\\u200c\""},      /* 200C */
    {B("\xe2\x80\x8d"), "\"\xe2\x80\x8d\"", "\"\\u200d\""},      /* 200D */
    {B("\xe2\x80\x8f"), "\"\xe2\x80\x8f\"", "\"\\u200f\""},      /* 200F */
    {B("\xe2\x80\x90"), "\"\xe2\x80\x90\"", "\"\xe2\x80\x90\""}, /* 2010 */
    {B("\xe2\x80\xaa"), "\"\xe2\x80\xaa\"", "\"\\u202a\""},      /* 202A */
    {B("\xe2\x80\xaf"), "\"\xe2\x80\xaf\"", "\"\\u202f\""},      /* 202F */
    {B("\xe2\x80\xb0"), "\"\xe2\x80\xb0\"", "\"\xe2\x80\xb0\""}, /* 2030 */
    {B("\xe2\x81\x9f"), "\"\xe2\x81\x9f\"", "\"\xe2\x81\x9f\""}, /* 205F */
    {B("\xe2\x81\xa0"), "\"\xe2\x81\xa0\"", "\"\\u2060\""},      /* 2060 */
    {B("\xe2\x81\xaf"), "\"\xe2\x81\xaf\"", "\"\\u206f\""},      /* 206F */
    {B("\xe2\x81\xb0"), "\"\xe2\x81\xb0\"", "\"\xe2\x81\xb0\""}, /* 2070 */
    {B("\xe2\x82\xa0"), "\"\xe2\x82\xa0\"", "\"\xe2\x82\xa0\""}, /* 20A0 */
    {B("\xef\xbf\xaf"), "\"\xef\xbf\xaf\"", "\"\xef\xbf\xaf\""}, /* FFEF */
    {B("\xef\xbf\xb0"), "\"\xef\xbf\xb0\"", "\"\\ufff0\""},      /* FFF0 */
    {B("\xef\xbf\xbf"), "\"\xef\xbf\xbf\"", "\"\\uffff\""},      /* FFFF */
    {B("\xef\xbb\xbf"), "\"\xef\xbb\xbf\"", "\"\xef\xbb\xbf\""}, /* FEFF */
    {B("\xef\xbe\xb0"), "\"\xef\xbe\xb0\"", "\"\xef\xbe\xb0\""}, /* FFB0 */
    {B("\xe3\x80\x8c"), "\"\xe3\x80\x8c\"", "\"\xe3\x80\x8c\""}, /* 300C */
    /* mixed, with the escaped chars at the start and the end */
    {B("\xe2\x80\x8c" "a\"\n" "\xef\xbf\xbf"),
     "\"\xe2\x80\x8c" "a\\\"\\n" "\xef\xbf\xbf\"",
     "\"\\u200ca\\\"\\u000a\\uffff\""},
};

static void test_escape_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof esc_cases / sizeof esc_cases[0]; i++) {
        const struct esc_case *c = &esc_cases[i];
        check_escape(c->in, c->in_len, FRAMING_JSON_STD, c->std);
        check_escape(c->in, c->in_len, FRAMING_JSON_SOCKJS, c->sockjs);
    }
}

/* Appends to what is already there; bad arguments are refused. */
static void test_escape_appends_and_args(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(gw_buf_append(&b, "x=", 2), 0);
    assert_int_equal(framing_json_string(&b, (const uint8_t *)"a\"", 2,
                                         FRAMING_JSON_STD), 0);
    assert_buf_eq(&b, B("x=\"a\\\"\""), "append");
    assert_int_equal(framing_json_string(&b, NULL, 0, FRAMING_JSON_SOCKJS), 0);
    assert_buf_eq(&b, B("x=\"a\\\"\"\"\""), "append empty");
    assert_int_equal(framing_json_string(&b, NULL, 1, FRAMING_JSON_STD),
                     GW_EINVAL);
    assert_int_equal(framing_json_string(&b, (const uint8_t *)"a", 1,
                                         (enum framing_json_flavour)7),
                     GW_EINVAL);
    assert_int_equal(framing_json_string(NULL, (const uint8_t *)"a", 1,
                                         FRAMING_JSON_STD), GW_EINVAL);
    assert_buf_eq(&b, B("x=\"a\\\"\"\"\""), "unchanged after errors");
    gw_buf_free(&b);
}

/*
 * Big inputs (> 64 KiB) take the count-then-write path: the result must
 * be the same as the concatenation of the small cases.
 */
static void test_escape_big_input(void **state)
{
    (void)state;
    for (int fl = FRAMING_JSON_STD; fl <= FRAMING_JSON_SOCKJS; fl++) {
        struct gw_buf in = {0}, want = {0}, out = {0};
        assert_int_equal(gw_buf_append(&want, "\"", 1), 0);
        while (in.len < 200000) {
            for (size_t i = 0; i < sizeof esc_cases / sizeof esc_cases[0]; i++) {
                const struct esc_case *c = &esc_cases[i];
                const char *e = fl == FRAMING_JSON_STD ? c->std : c->sockjs;
                /* "x" separates cases so no "<" meets a "/" across them */
                assert_int_equal(gw_buf_append(&in, c->in, c->in_len), 0);
                assert_int_equal(gw_buf_append(&in, "x", 1), 0);
                assert_int_equal(gw_buf_append(&want, e + 1, strlen(e) - 2), 0);
                assert_int_equal(gw_buf_append(&want, "x", 1), 0);
            }
        }
        assert_int_equal(gw_buf_append(&want, "\"", 1), 0);
        assert_int_equal(framing_json_string(&out, in.data, in.len,
                                             (enum framing_json_flavour)fl), 0);
        assert_buf_eq(&out, (const char *)want.data, want.len, "big input");
        /* and the exact fit under a cap */
        struct gw_buf capped = {.max = want.len};
        assert_int_equal(framing_json_string(&capped, in.data, in.len,
                                             (enum framing_json_flavour)fl), 0);
        assert_buf_eq(&capped, (const char *)want.data, want.len, "big capped");
        capped.len = 0;
        capped.max = want.len - 1;
        assert_int_equal(framing_json_string(&capped, in.data, in.len,
                                             (enum framing_json_flavour)fl),
                         GW_ETOOBIG);
        assert_int_equal(capped.len, 0);
        gw_buf_free(&in);
        gw_buf_free(&want);
        gw_buf_free(&out);
        gw_buf_free(&capped);
    }
}

/* ------------------------------------------------- random round trip */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint32_t rnd(void)
{
    /* xorshift64*: deterministic, good enough for test data */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

/* A random code point, biased towards the interesting places. */
static uint32_t rnd_cp(void)
{
    static const uint32_t spots[] = {
        0x00, 0x1F, '"', '\\', '/', '<', 0x7F, 0x80, 0x7FF, 0x800,
        0x200B, 0x200C, 0x200F, 0x2010, 0x2027, 0x2028, 0x2029, 0x202F,
        0x2030, 0x205F, 0x2060, 0x206F, 0x2070, 0xD7FF, 0xE000, 0xFEFF,
        0xFFEF, 0xFFF0, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF,
    };
    uint32_t r = rnd();
    switch (r % 8) {
    case 0: case 1: case 2: return 0x20 + r / 8 % 0x5F;      /* printable */
    case 3: return r / 8 % 0x20;                              /* control */
    case 4: return spots[r / 8 % (sizeof spots / sizeof spots[0])];
    case 5: return 0x2000 + r / 8 % 0x100;                    /* E2 80/81 */
    case 6: return 0xFF00 + r / 8 % 0x100;                    /* EF BF */
    default: {
        uint32_t cp = r / 8 % 0x110000;
        return cp >= 0xD800 && cp <= 0xDFFF ? cp - 0x800 : cp; /* no surr. */
    }
    }
}

static size_t put_utf8(uint8_t *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (uint8_t)(0xC0 | cp >> 6);
        p[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (uint8_t)(0xE0 | cp >> 12);
        p[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        p[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (uint8_t)(0xF0 | cp >> 18);
    p[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    p[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    p[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Does the escaped output contain this raw byte sequence? */
static bool contains(const struct gw_buf *b, const char *needle, size_t n)
{
    return b->len >= n && memmem(b->data, b->len, needle, n) != NULL;
}

static void check_round_trip(const uint8_t *in, size_t len,
                             enum framing_json_flavour fl)
{
    struct gw_buf out = {0};
    assert_int_equal(framing_json_string(&out, in, len, fl), 0);
    json_error_t je;
    json_t *j = json_loadb((const char *)out.data, out.len,
                           JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j) {
        print_error("jansson: %s in [%.*s]\n", je.text, (int)out.len, out.data);
        fail();
    }
    assert_true(json_is_string(j));
    assert_int_equal(json_string_length(j), len);
    assert_memory_equal(json_string_value(j), in, len);
    json_decref(j);

    /* What must never appear raw in the output. */
    for (size_t i = 0; i < out.len; i++)
        assert_true(out.data[i] >= 0x20);
    assert_false(contains(&out, "</", 2));
    assert_false(contains(&out, "\xe2\x80\xa8", 3));
    assert_false(contains(&out, "\xe2\x80\xa9", 3));
    if (fl == FRAMING_JSON_SOCKJS) {
        for (size_t i = 0; i + 2 < out.len; i++) {
            const uint8_t *p = out.data + i;
            uint32_t cp;
            if ((p[0] & 0xF0) != 0xE0)
                continue;
            cp = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 |
                 (p[2] & 0x3F);
            assert_false((cp >= 0x200C && cp <= 0x200F) ||
                         (cp >= 0x2028 && cp <= 0x202F) ||
                         (cp >= 0x2060 && cp <= 0x206F) || cp >= 0xFFF0);
        }
    }
    gw_buf_free(&out);
}

static void test_escape_random_round_trip(void **state)
{
    (void)state;
    uint8_t in[4 * 64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0, ncp = rnd() % 64;
        for (size_t k = 0; k < ncp; k++)
            len += put_utf8(in + len, rnd_cp());
        assert_true(ws_utf8_valid(in, len)); /* the generator itself */
        check_round_trip(in, len, FRAMING_JSON_STD);
        check_round_trip(in, len, FRAMING_JSON_SOCKJS);
    }
}

/* Every code point once, in one string (and so every boundary). */
static void test_escape_all_code_points(void **state)
{
    (void)state;
    struct gw_buf in = {0};
    uint8_t u[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        assert_int_equal(gw_buf_append(&in, u, put_utf8(u, cp)), 0);
    }
    check_round_trip(in.data, in.len, FRAMING_JSON_STD);
    check_round_trip(in.data, in.len, FRAMING_JSON_SOCKJS);
    gw_buf_free(&in);
}

/* ------------------------------------------------------------ cap */

static void test_escape_cap(void **state)
{
    (void)state;
    struct gw_buf b = {.max = 10};
    assert_int_equal(framing_json_string(&b, (const uint8_t *)"hello", 5,
                                         FRAMING_JSON_STD), 0);
    assert_buf_eq(&b, B("\"hello\""), "cap 1");
    /* 6 more bytes would make 13 > 10 */
    assert_int_equal(framing_json_string(&b, (const uint8_t *)"abcd", 4,
                                         FRAMING_JSON_STD), GW_ETOOBIG);
    assert_buf_eq(&b, B("\"hello\""), "cap unchanged");
    /* exactly up to the cap: 3 bytes */
    assert_int_equal(framing_json_string(&b, (const uint8_t *)"a", 1,
                                         FRAMING_JSON_SOCKJS), 0);
    assert_buf_eq(&b, B("\"hello\"\"a\""), "cap exact");
    assert_int_equal(framing_json_string(&b, NULL, 0, FRAMING_JSON_STD),
                     GW_ETOOBIG);
    gw_buf_free(&b);

    /* Worst case (6x+2 = 62) is over the cap but the real output (12)
     * fits: must succeed. */
    struct gw_buf c = {.max = 12};
    assert_int_equal(framing_json_string(&c, (const uint8_t *)"0123456789", 10,
                                         FRAMING_JSON_STD), 0);
    assert_buf_eq(&c, B("\"0123456789\""), "cap tight");
    gw_buf_free(&c);

    /* Escapes count: "\n" is 2 bytes, \u000b is 6 */
    struct gw_buf d = {.max = 9};
    assert_int_equal(framing_json_string(&d, (const uint8_t *)"\x0b", 1,
                                         FRAMING_JSON_STD), 0);
    assert_buf_eq(&d, B("\"\\u000b\""), "cap escape");
    d.len = 0;
    d.max = 7;
    assert_int_equal(framing_json_string(&d, (const uint8_t *)"\x0b", 1,
                                         FRAMING_JSON_STD), GW_ETOOBIG);
    gw_buf_free(&d);
}

/*
 * The exact-size path stores whole words ahead of the output; with an
 * allocation of exactly the output (63 bytes + NUL = gw_buf's first 64),
 * ASan sees any store past the end. Escapes at every position.
 */
static void test_escape_tight_allocation(void **state)
{
    (void)state;
    for (int e = 0; e < 3; e++) {
        for (size_t j = 0; j <= 30; j++) {
            for (size_t pos = 0; pos + 2 * j <= 61; pos++) {
                /* j escapes (+1 byte each, "</" is 2 in and 3 out) */
                if (e == 2 && 1 + pos + 3 * j > 62)
                    continue;
                char in[64], want[64];
                size_t n = 0, w = 0;
                want[w++] = '"';
                for (size_t k = 0; k < pos; k++)
                    in[n++] = want[w++] = 'a';
                for (size_t k = 0; k < j; k++) {
                    if (e == 0) {
                        in[n++] = '"';
                        want[w++] = '\\';
                        want[w++] = '"';
                    } else if (e == 1) {
                        in[n++] = '\n';
                        want[w++] = '\\';
                        want[w++] = 'n';
                    } else {
                        in[n++] = '<';
                        in[n++] = '/';
                        memcpy(want + w, "<\\/", 3);
                        w += 3;
                    }
                }
                while (w < 62)
                    in[n++] = want[w++] = 'b';
                want[w++] = '"';
                struct gw_buf b = {.max = 63}; /* 6x+2 > 63: exact path */
                assert_int_equal(framing_json_string(&b, (uint8_t *)in, n,
                                                     FRAMING_JSON_STD), 0);
                assert_buf_eq(&b, want, 63, "tight");
                assert_int_equal(b.cap, 64);
                gw_buf_free(&b);
            }
        }
    }
}

/* ---------------------------------------------------------- base64 */

static const struct {
    const char *raw;
    size_t raw_len;
    const char *b64;
} b64_cases[] = {
    /* RFC 4648 section 10 */
    {B(""), ""},
    {B("f"), "Zg=="},
    {B("fo"), "Zm8="},
    {B("foo"), "Zm9v"},
    {B("foob"), "Zm9vYg=="},
    {B("fooba"), "Zm9vYmE="},
    {B("foobar"), "Zm9vYmFy"},
    /* the last two alphabet characters, NUL and high bytes */
    {B("\xfb\xff"), "+/8="},
    {B("\xff\xff\xff"), "////"},
    {B("\0"), "AA=="},
    {B("\0\1"), "AAE="},
    {B("\0\0\0"), "AAAA"},
    {B("\x14\xfb\x9c\x03\xd9\x7e"), "FPucA9l+"},
    {B("\x14\xfb\x9c\x03\xd9"), "FPucA9k="},
    {B("\x14\xfb\x9c\x03"), "FPucAw=="},
};

static void test_base64_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof b64_cases / sizeof b64_cases[0]; i++) {
        struct gw_buf b = {0};
        size_t n = strlen(b64_cases[i].b64);
        assert_int_equal(framing_base64_len(b64_cases[i].raw_len), n);
        assert_int_equal(framing_base64_append(&b, (const uint8_t *)
                                               b64_cases[i].raw,
                                               b64_cases[i].raw_len), 0);
        assert_buf_eq(&b, b64_cases[i].b64, n, "base64 encode");
        gw_buf_reset(&b);
        assert_int_equal(framing_base64_decode(&b, b64_cases[i].b64, n), 0);
        if (n == 0)
            assert_int_equal(b.len, 0);
        else
            assert_buf_eq(&b, b64_cases[i].raw, b64_cases[i].raw_len,
                          "base64 decode");
        gw_buf_free(&b);
    }
    assert_int_equal(framing_base64_len(0), 0);
    assert_int_equal(framing_base64_len(1), 4);
    assert_int_equal(framing_base64_len(3), 4);
    assert_int_equal(framing_base64_len(4), 8);
    assert_int_equal(framing_base64_len(SIZE_MAX), SIZE_MAX); /* overflow */
}

/* Every byte value, every length mod 3, both ways. */
static void test_base64_all_bytes(void **state)
{
    (void)state;
    uint8_t raw[256];
    for (int i = 0; i < 256; i++)
        raw[i] = (uint8_t)i;
    for (size_t n = 0; n <= 256; n++) {
        struct gw_buf e = {0}, d = {0};
        assert_int_equal(framing_base64_append(&e, raw + 256 - n, n), 0);
        assert_int_equal(e.len, framing_base64_len(n));
        assert_int_equal(framing_base64_decode(&d, (const char *)e.data,
                                               e.len), 0);
        assert_int_equal(d.len, n);
        if (n)
            assert_memory_equal(d.data, raw + 256 - n, n);
        gw_buf_free(&e);
        gw_buf_free(&d);
    }
}

static const struct {
    const char *s;
    size_t len;
} b64_bad[] = {
    {B("Z")}, {B("Zg")}, {B("Zg=")}, {B("Zm9vY")},      /* length */
    {B("Zm9")}, {B("Zm9vYg")}, {B("Zm9vYg=")},
    {B("Zh==")}, {B("Zm9=")}, {B("AB==")}, {B("AAB=")}, /* pad bits */
    {B("Zg==Zg==")}, {B("Zg=a")}, {B("Z=g=")}, {B("=Zg=")}, /* '=' place */
    {B("====")}, {B("A===")}, {B("Zm9v====")}, {B("Zm=v")},
    {B("Zm9v\n")}, {B(" Zm9")}, {B("Zm 9")}, {B("Zm9v\r\nZm9v")},
    {B("Zm9-")}, {B("Zm9_")}, {B("Zm9.")}, {B("Zm9*")}, /* alphabet */
    {B("Zm9\0")}, {B("Z\0==")}, {B("Zm9\x80")}, {B("Zm9\xff")},
    {B("Zm9v\xc3\xa9==")},
};

static void test_base64_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof b64_bad / sizeof b64_bad[0]; i++) {
        struct gw_buf b = {0};
        assert_int_equal(gw_buf_append(&b, "keep", 4), 0);
        int rc = framing_base64_decode(&b, b64_bad[i].s, b64_bad[i].len);
        if (rc != GW_EINVAL) {
            print_error("bad base64 #%zu [%.*s] gave %d\n", i,
                        (int)b64_bad[i].len, b64_bad[i].s, rc);
            fail();
        }
        assert_buf_eq(&b, B("keep"), "unchanged after bad base64");
        gw_buf_free(&b);
    }
}

static void test_base64_cap(void **state)
{
    (void)state;
    struct gw_buf b = {.max = 8};
    assert_int_equal(framing_base64_append(&b, (const uint8_t *)"foob", 4), 0);
    assert_int_equal(framing_base64_append(&b, (const uint8_t *)"f", 1),
                     GW_ETOOBIG);
    assert_buf_eq(&b, B("Zm9vYg=="), "b64 cap");
    gw_buf_reset(&b);
    b.max = 5;
    assert_int_equal(framing_base64_decode(&b, "Zm9vYmFy", 8), GW_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(framing_base64_decode(&b, "Zm9vYmE=", 8), 0);
    assert_buf_eq(&b, B("fooba"), "b64 decode cap exact");
    gw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_control_chars),
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_escape_appends_and_args),
        cmocka_unit_test(test_escape_big_input),
        cmocka_unit_test(test_escape_random_round_trip),
        cmocka_unit_test(test_escape_all_code_points),
        cmocka_unit_test(test_escape_cap),
        cmocka_unit_test(test_escape_tight_allocation),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_all_bytes),
        cmocka_unit_test(test_base64_bad),
        cmocka_unit_test(test_base64_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_envelope.c - envelope.c: the browser's send body. Tables of good
 * bodies with the expected messages byte for byte, and of bad bodies with
 * the expected error code and a fragment of the message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "envelope.h"

/* A byte string literal and its length (may contain NUL). */
#define B(s) s, sizeof(s) - 1

struct want_msg {
    bool binary;
    const char *data;
    size_t len;
};

struct good_case {
    const char *body;
    size_t len;
    size_t max_batch;
    bool has_seq;
    uint64_t seq;
    size_t n;
    struct want_msg m[4];
};

static const struct good_case good[] = {
    {B("{\"messages\":[\"hi\"]}"), 10, false, 0, 1, {{false, B("hi")}}},
    {B("{\"seq\":5,\"messages\":[\"a\",{\"binary\":\"AAE=\"},\"b\"]}"), 10,
     true, 5, 3, {{false, B("a")}, {true, B("\0\1")}, {false, B("b")}}},
    {B("{\"messages\":[]}"), 10, false, 0, 0, {{0}}},
    {B("{\"seq\":0,\"messages\":[]}"), 0, true, 0, 0, {{0}}},
    {B("{\"messages\":[],\"seq\":9007199254740991}"), 1, true,
     9007199254740991ULL, 0, {{0}}},
    /* NUL through \u0000 survives (json_string_length, not strlen) */
    {B("{\"messages\":[\"a\\u0000b\",\"\\u0000\"]}"), 10, false, 0, 2,
     {{false, B("a\0b")}, {false, B("\0")}}},
    /* 4-byte UTF-8, raw and as an escaped surrogate pair */
    {B("{\"messages\":[\"\xf0\x9f\x98\x80\",\"\\ud83d\\ude00\"]}"), 10, false,
     0, 2, {{false, B("\xf0\x9f\x98\x80")}, {false, B("\xf0\x9f\x98\x80")}}},
    {B("{\"messages\":[\"caf\xc3\xa9 \\u00e9 \xe2\x80\xa8\"]}"), 10, false,
     0, 1, {{false, B("caf\xc3\xa9 \xc3\xa9 \xe2\x80\xa8")}}},
    {B("{\"messages\":[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]}"), 10, false, 0, 1,
     {{false, B("\"\\/\b\f\n\r\t")}}},
    {B("{\"messages\":[{\"binary\":\"\"},\"\",{\"binary\":\"Zm9vYmFy\"}]}"),
     3, false, 0, 3,
     {{true, B("")}, {false, B("")}, {true, B("foobar")}}},
    {B(" \r\n\t{ \"messages\" : [ \"x\" , { \"binary\" : \"/w==\" } ] ,"
       " \"seq\" : 42 }\n"), 2, true, 42, 2,
     {{false, B("x")}, {true, B("\xff")}}},
    /* exactly max_batch */
    {B("{\"messages\":[\"1\",\"2\",\"3\",\"4\"]}"), 4, false, 0, 4,
     {{false, B("1")}, {false, B("2")}, {false, B("3")}, {false, B("4")}}},
};

static void check_empty(const struct envelope *env)
{
    assert_int_equal(env->n, 0);
    assert_null(env->msgs);
    assert_null(env->data.data);
    assert_false(env->has_seq);
}

static void test_good_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const struct good_case *g = &good[i];
        struct envelope env;
        struct gw_error err = {0};
        int rc = envelope_parse(&env, g->body, g->len, g->max_batch, &err);
        if (rc != 0) {
            print_error("good #%zu [%s]: %d %s\n", i, g->body, rc, err.msg);
            fail();
        }
        assert_int_equal(env.has_seq, g->has_seq);
        assert_int_equal(env.seq, g->seq);
        assert_int_equal(env.n, g->n);
        size_t off = 0;
        for (size_t k = 0; k < g->n; k++) {
            const struct envelope_msg *m = &env.msgs[k];
            assert_int_equal(m->binary, g->m[k].binary);
            assert_int_equal(m->len, g->m[k].len);
            assert_int_equal(m->off, off); /* back to back, in order */
            assert_true(m->off + m->len <= env.data.len);
            if (m->len)
                assert_memory_equal(env.data.data + m->off, g->m[k].data,
                                    m->len);
            off += m->len;
        }
        assert_int_equal(env.data.len, off);
        envelope_clear(&env);
        check_empty(&env);
    }
}

struct bad_case {
    const char *body;
    size_t len;
    size_t max_batch;
    int code;
    const char *fragment;
};

static const struct bad_case bad[] = {
    /* not JSON */
    {B(""), 10, GW_EINVAL, "invalid JSON: "},
    {B("{"), 10, GW_EINVAL, "invalid JSON: "},
    {B("{\"messages\":[]"), 10, GW_EINVAL, "position 14"},
    {B("{\"messages\":[]} x"), 10, GW_EINVAL, "end of file expected"},
    {B("{\"messages\":[\"a\nb\"]}"), 10, GW_EINVAL, "unexpected newline"},
    {B("{\"messages\":[\"\\x\"]}"), 10, GW_EINVAL, "invalid escape"},
    {B("{\"messages\":[\"\\ud800\"]}"), 10, GW_EINVAL, "invalid Unicode"},
    {B("{\"messages\":[],\"seq\":100000000000000000000}"), 10, GW_EINVAL,
     "too big integer"},
    {B("{\"messages\":[],\"seq\":-100000000000000000000}"), 10, GW_EINVAL,
     "too big negative integer"},
    {B("\"messages\""), 10, GW_EINVAL, "invalid JSON: "},
    {B("{\"messages\":[]}\0"), 10, GW_EINVAL, "invalid JSON: "},
    /* not an object */
    {B("[]"), 10, GW_EINVAL, "body must be a JSON object"},
    {B("[\"hi\"]"), 10, GW_EINVAL, "body must be a JSON object"},
    /* messages */
    {B("{}"), 10, GW_EINVAL, "missing \"messages\""},
    {B("{\"seq\":1}"), 10, GW_EINVAL, "missing \"messages\""},
    {B("{\"messages\":{}}"), 10, GW_EINVAL, "\"messages\" must be an array"},
    {B("{\"messages\":\"hi\"}"), 10, GW_EINVAL, "\"messages\" must be an array"},
    {B("{\"messages\":null}"), 10, GW_EINVAL, "\"messages\" must be an array"},
    {B("{\"messages\":[1]}"), 10, GW_EINVAL,
     "messages[0]: must be a string or {\"binary\":\"<base64>\"}"},
    {B("{\"messages\":[\"a\",null]}"), 10, GW_EINVAL, "messages[1]: must be"},
    {B("{\"messages\":[\"a\",\"b\",[\"c\"]]}"), 10, GW_EINVAL,
     "messages[2]: must be"},
    {B("{\"messages\":[\"a\",true]}"), 10, GW_EINVAL, "messages[1]: must be"},
    /* binary */
    {B("{\"messages\":[{\"binary\":1}]}"), 10, GW_EINVAL,
     "messages[0]: \"binary\" must be a string"},
    {B("{\"messages\":[{\"binary\":null}]}"), 10, GW_EINVAL,
     "messages[0]: \"binary\" must be a string"},
    {B("{\"messages\":[\"x\",{\"binary\":\"Zg=\"}]}"), 10, GW_EINVAL,
     "messages[1]: invalid base64"},
    {B("{\"messages\":[{\"binary\":\"Zh==\"}]}"), 10, GW_EINVAL,
     "messages[0]: invalid base64"},
    {B("{\"messages\":[{\"binary\":\"Zm9v\\n\"}]}"), 10, GW_EINVAL,
     "messages[0]: invalid base64"},
    {B("{\"messages\":[{\"binary\":\"AA\\u0000=\"}]}"), 10, GW_EINVAL,
     "messages[0]: invalid base64"},
    {B("{\"messages\":[{\"binary\":\"AA==\",\"x\":1}]}"), 10, GW_EINVAL,
     "messages[0]: unknown field \"x\""},
    {B("{\"messages\":[\"a\",{\"text\":\"a\"}]}"), 10, GW_EINVAL,
     "messages[1]: unknown field \"text\""},
    {B("{\"messages\":[{}]}"), 10, GW_EINVAL, "messages[0]: empty object"},
    {B("{\"messages\":[{\"binary\":\"\",\"binary\":\"\"}]}"), 10, GW_EINVAL,
     "duplicate object key"},
    /* seq */
    {B("{\"messages\":[],\"seq\":-1}"), 10, GW_EINVAL,
     "\"seq\" must not be negative"},
    {B("{\"messages\":[],\"seq\":1.5}"), 10, GW_EINVAL,
     "\"seq\" must be an integer"},
    {B("{\"messages\":[],\"seq\":1.0}"), 10, GW_EINVAL,
     "\"seq\" must be an integer"},
    {B("{\"messages\":[],\"seq\":1e3}"), 10, GW_EINVAL,
     "\"seq\" must be an integer"},
    {B("{\"messages\":[],\"seq\":\"5\"}"), 10, GW_EINVAL,
     "\"seq\" must be an integer"},
    {B("{\"messages\":[],\"seq\":null}"), 10, GW_EINVAL,
     "\"seq\" must be an integer"},
    {B("{\"messages\":[],\"seq\":9007199254740992}"), 10, GW_EINVAL,
     "\"seq\" too big"},
    {B("{\"messages\":[],\"seq\":9223372036854775807}"), 10, GW_EINVAL,
     "\"seq\" too big"},
    /* unknown and duplicate top-level keys */
    {B("{\"messages\":[],\"extra\":1}"), 10, GW_EINVAL,
     "unknown field \"extra\""},
    {B("{\"Seq\":1,\"messages\":[]}"), 10, GW_EINVAL, "unknown field \"Seq\""},
    {B("{\"messages\":[],\"a\\nb\\u00e9\":1}"), 10, GW_EINVAL,
     "unknown field \"a?b??\""},
    {B("{\"messages\":[],\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
       "xxxxxxxxxxxxxxxxxxxxxxxxxx\":1}"), 10, GW_EINVAL,
     "unknown field \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\""},
    {B("{\"messages\":[],\"messages\":[]}"), 10, GW_EINVAL,
     "duplicate object key"},
    {B("{\"seq\":1,\"messages\":[],\"seq\":1}"), 10, GW_EINVAL,
     "duplicate object key"},
    {B("{\"messages\":[],\"\\u0000\":1}"), 10, GW_EINVAL, "NUL byte"},
    /* invalid UTF-8 in the document */
    {B("{\"messages\":[\"\xff\"]}"), 10, GW_EUTF8, "invalid JSON: "},
    {B("{\"messages\":[\"\xc0\xaf\"]}"), 10, GW_EUTF8, "invalid JSON: "},
    {B("{\"messages\":[\"\xed\xa0\x80\"]}"), 10, GW_EUTF8, "invalid JSON: "},
    {B("{\"messages\":[\"\xe2\x82\"]}"), 10, GW_EUTF8, "invalid JSON: "},
    {B("{\"messages\":[\"\xf4\x90\x80\x80\"]}"), 10, GW_EUTF8, "invalid JSON: "},
    {B("{\"m\xfe\":[]}"), 10, GW_EUTF8, "invalid JSON: "},
    /* batch limit */
    {B("{\"messages\":[\"1\",\"2\",\"3\"]}"), 2, GW_ETOOBIG,
     "too many messages (3, max 2)"},
    {B("{\"messages\":[\"1\"]}"), 0, GW_ETOOBIG, "too many messages (1, max 0)"},
    {B("{\"seq\":1,\"messages\":[{\"binary\":\"AA==\"}]}"), 0, GW_ETOOBIG,
     "too many messages"},
};

static void test_bad_bodies(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const struct bad_case *b = &bad[i];
        struct envelope env;
        struct gw_error err = {0};
        int rc = envelope_parse(&env, b->body, b->len, b->max_batch, &err);
        if (rc != b->code || err.code != b->code ||
            !strstr(err.msg, b->fragment)) {
            print_error("bad #%zu [%.*s]: got %d/%d \"%s\", want %d \"%s\"\n",
                        i, (int)b->len, b->body, rc, err.code, err.msg,
                        b->code, b->fragment);
            failed++;
        }
        /* messages go to logs and browsers: printable ASCII only */
        for (const char *c = err.msg; *c; c++)
            assert_true(*c >= 0x20 && *c < 0x7F);
        check_empty(&env);
        envelope_clear(&env); /* harmless on an empty envelope */
    }
    assert_int_equal(failed, 0);
}

/* err may be NULL; bad arguments; clear(NULL). */
static void test_args(void **state)
{
    (void)state;
    struct envelope env;
    assert_int_equal(envelope_parse(&env, B("{\"messages\":[1]}"), 10, NULL),
                     GW_EINVAL);
    check_empty(&env);
    assert_int_equal(envelope_parse(&env, NULL, 0, 10, NULL), GW_EINVAL);
    assert_int_equal(envelope_parse(&env, NULL, 5, 10, NULL), GW_EINVAL);
    assert_int_equal(envelope_parse(NULL, B("{}"), 10, NULL), GW_EINVAL);
    assert_int_equal(envelope_from_text(NULL, B("x"), NULL), GW_EINVAL);
    envelope_clear(NULL);
}

/* ------------------------------------------------- text bodies */

static const struct {
    const char *body;
    size_t len;
    int code;
    const char *fragment;
} text_cases[] = {
    {B("hello"), 0, ""},
    {B(""), 0, ""},
    {B("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8"), 0, ""},
    {B("a\0b\n{\"messages\":[]}"), 0, ""},
    {B("\xff"), GW_EUTF8, "invalid UTF-8 at byte 0"},
    {B("ab\xc0\xaf"), GW_EUTF8, "invalid UTF-8 at byte 2"},
    {B("abc\xed\xa0\x80"), GW_EUTF8, "invalid UTF-8 at byte 4"},
    {B("abcd\xe2\x82"), GW_EUTF8, "invalid UTF-8 at byte 6"}, /* truncated */
    {B("\xf4\x90\x80\x80"), GW_EUTF8, "invalid UTF-8 at byte 1"},
    {B("\x80"), GW_EUTF8, "invalid UTF-8 at byte 0"},
};

static void test_from_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof text_cases / sizeof text_cases[0]; i++) {
        struct envelope env;
        struct gw_error err = {0};
        int rc = envelope_from_text(&env, text_cases[i].body,
                                    text_cases[i].len, &err);
        if (rc != text_cases[i].code ||
            (rc && !strstr(err.msg, text_cases[i].fragment))) {
            print_error("text #%zu: got %d \"%s\"\n", i, rc, err.msg);
            fail();
        }
        if (rc) {
            assert_int_equal(err.code, rc);
            check_empty(&env);
            continue;
        }
        assert_false(env.has_seq);
        assert_int_equal(env.n, 1);
        assert_false(env.msgs[0].binary);
        assert_int_equal(env.msgs[0].off, 0);
        assert_int_equal(env.msgs[0].len, text_cases[i].len);
        assert_int_equal(env.data.len, text_cases[i].len);
        if (text_cases[i].len)
            assert_memory_equal(env.data.data, text_cases[i].body,
                                text_cases[i].len);
        envelope_clear(&env);
        check_empty(&env);
    }
}

/* ------------------------------------------------- sequence numbers */

static const struct {
    const char *s;
    int code;
    uint64_t v;
} seq_cases[] = {
    {"0", 0, 0},
    {"7", 0, 7},
    {"1234567890", 0, 1234567890},
    {"9007199254740991", 0, 9007199254740991ULL},
    {"007", 0, 7},                      /* leading zeros accepted */
    {"0000000000000000000000000000000000000000009", 0, 9},
    {"9007199254740992", GW_EINVAL, 0},
    {"18446744073709551615", GW_EINVAL, 0},
    {"18446744073709551616", GW_EINVAL, 0},
    {"99999999999999999999999999", GW_EINVAL, 0},
    {"", GW_EINVAL, 0},
    {"-1", GW_EINVAL, 0},
    {"-0", GW_EINVAL, 0},
    {"+1", GW_EINVAL, 0},
    {" 1", GW_EINVAL, 0},
    {"1 ", GW_EINVAL, 0},
    {"1a", GW_EINVAL, 0},
    {"0x10", GW_EINVAL, 0},
    {"1:", GW_EINVAL, 0},               /* the neighbours of '0'-'9' */
    {"/1", GW_EINVAL, 0},
    {"1.0", GW_EINVAL, 0},
    {"1e3", GW_EINVAL, 0},
    {"\xd9\xa1", GW_EINVAL, 0},         /* ARABIC-INDIC DIGIT ONE */
};

static void test_parse_seq(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof seq_cases / sizeof seq_cases[0]; i++) {
        uint64_t v = 12345;
        int rc = envelope_parse_seq(seq_cases[i].s, &v);
        if (rc != seq_cases[i].code) {
            print_error("seq \"%s\": got %d\n", seq_cases[i].s, rc);
            fail();
        }
        /* the output is only written on success */
        assert_int_equal(v, rc ? 12345 : seq_cases[i].v);
    }
    uint64_t v;
    assert_int_equal(envelope_parse_seq(NULL, &v), GW_EINVAL);
    assert_int_equal(envelope_parse_seq("1", NULL), GW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_bodies),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_from_text),
        cmocka_unit_test(test_parse_seq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_framing_native.c - framing_native.c, the native protocol's wire
 * format, byte for byte: poll messages and batches (lost ranges, close),
 * SSE events and preamble, the open reply, the send ack and the 410 body.
 * Every builder is all-or-nothing under a buffer cap at every cap size.
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

#include "framing_native.h"

/* literal and its length, embedded NULs included */
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

static void assert_str_eq(const struct gw_buf *b, const char *want,
                          const char *what)
{
    assert_buf_eq(b, want, strlen(want), what);
}

/* The buffer holds valid JSON (jansson; NUL allowed in strings). */
static void assert_json(const struct gw_buf *b)
{
    json_error_t e;
    json_t *j = json_loadb((const char *)b->data, b->len, JSON_ALLOW_NUL, &e);
    if (!j) {
        print_error("not JSON: %s [%.*s]\n", e.text, (int)b->len, b->data);
        fail();
    }
    json_decref(j);
}

/* ------------------------------------------- poll messages and SSE */


static const struct {
    uint64_t seq;
    bool binary;
    const char *data;
    size_t len;
    const char *poll;
    const char *sse;
} msg_cases[] = {
    {7, false, B("hi"), "{\"seq\":7,\"text\":\"hi\"}",
     "id: 7\nevent: message\ndata: \"hi\"\n\n"},
    {8, true, B("\0\1"), "{\"seq\":8,\"binary\":\"AAE=\"}",
     "id: 8\nevent: binary\ndata: \"AAE=\"\n\n"},
    {0, false, B(""), "{\"seq\":0,\"text\":\"\"}",
     "id: 0\nevent: message\ndata: \"\"\n\n"},
    {0, true, B(""), "{\"seq\":0,\"binary\":\"\"}",
     "id: 0\nevent: binary\ndata: \"\"\n\n"},
    {UINT64_MAX, false, B("x"),
     "{\"seq\":18446744073709551615,\"text\":\"x\"}",
     "id: 18446744073709551615\nevent: message\ndata: \"x\"\n\n"},
    {9007199254740991ULL, true, B("foobar"),
     "{\"seq\":9007199254740991,\"binary\":\"Zm9vYmFy\"}",
     "id: 9007199254740991\nevent: binary\ndata: \"Zm9vYmFy\"\n\n"},
    /* no CR/LF can reach an SSE field; "</" and U+2028 are escaped */
    {12, false, B("a\r\nevent: x\n\ndata: y"),
     "{\"seq\":12,\"text\":\"a\\r\\nevent: x\\n\\ndata: y\"}",
     "id: 12\nevent: message\ndata: \"a\\r\\nevent: x\\n\\ndata: y\"\n\n"},
    {13, false, B("</script>\"\xe2\x80\xa8\0"),
     "{\"seq\":13,\"text\":\"<\\/script>\\\"\\u2028\\u0000\"}",
     "id: 13\nevent: message\ndata: \"<\\/script>\\\"\\u2028\\u0000\"\n\n"},
    {14, false, B("\xf0\x9f\x98\x80"),
     "{\"seq\":14,\"text\":\"\xf0\x9f\x98\x80\"}",
     "id: 14\nevent: message\ndata: \"\xf0\x9f\x98\x80\"\n\n"},
};

static void test_messages(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof msg_cases / sizeof msg_cases[0]; i++) {
        struct gw_buf b = {0};
        const uint8_t *d = (const uint8_t *)msg_cases[i].data;
        assert_int_equal(framing_native_poll_message(&b, msg_cases[i].seq,
                                              msg_cases[i].binary, d,
                                              msg_cases[i].len), 0);
        assert_buf_eq(&b, msg_cases[i].poll, strlen(msg_cases[i].poll), "poll");
        /* the poll message is valid JSON (jansson stops at INT64_MAX) */
        if (msg_cases[i].seq <= INT64_MAX) {
            json_t *j = json_loadb((const char *)b.data, b.len,
                                   JSON_ALLOW_NUL, NULL);
            assert_non_null(j);
            json_decref(j);
        }
        gw_buf_reset(&b);
        assert_int_equal(framing_native_sse_message(&b, msg_cases[i].seq,
                                             msg_cases[i].binary, d,
                                             msg_cases[i].len), 0);
        assert_buf_eq(&b, msg_cases[i].sse, strlen(msg_cases[i].sse), "sse");
        gw_buf_free(&b);
    }
}

static const struct {
    uint16_t code;
    const char *reason;
    size_t len;
    const char *want;
} close_cases[] = {
    {1000, B("bye"), "event: close\ndata: {\"code\":1000,\"reason\":\"bye\"}\n\n"},
    {1006, B(""), "event: close\ndata: {\"code\":1006,\"reason\":\"\"}\n\n"},
    {0, B(""), "event: close\ndata: {\"code\":0,\"reason\":\"\"}\n\n"},
    {65535, B("a\"b\nc</x"),
     "event: close\ndata: {\"code\":65535,\"reason\":\"a\\\"b\\nc<\\/x\"}\n\n"},
    {4000, B("\xc3\xa9\xe2\x80\xa9"),
     "event: close\ndata: {\"code\":4000,\"reason\":\"\xc3\xa9\\u2029\"}\n\n"},
    /* invalid UTF-8: U+FFFD per maximal ill-formed subpart */
    {1002, B("a\xff" "b"),
     "event: close\ndata: {\"code\":1002,\"reason\":\"a\xef\xbf\xbd" "b\"}\n\n"},
    {1002, B("a\xe2\x82"),
     "event: close\ndata: {\"code\":1002,\"reason\":\"a\xef\xbf\xbd\"}\n\n"},
    {1002, B("\xe2\x82" "a"),
     "event: close\ndata: {\"code\":1002,\"reason\":\"\xef\xbf\xbd" "a\"}\n\n"},
    {1002, B("\xc0\x80"),
     "event: close\ndata: {\"code\":1002,\"reason\":\""
     "\xef\xbf\xbd\xef\xbf\xbd\"}\n\n"},
    {1002, B("\xed\xa0\x80" "z"), /* surrogate: three */
     "event: close\ndata: {\"code\":1002,\"reason\":\""
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\"}\n\n"},
    {1002, B("\xf0\x9f\x98"),
     "event: close\ndata: {\"code\":1002,\"reason\":\"\xef\xbf\xbd\"}\n\n"},
    {1002, B("\xf0\x9f\x98\xf0\x9f\x98\x80"), /* truncated, then whole */
     "event: close\ndata: {\"code\":1002,\"reason\":\""
     "\xef\xbf\xbd\xf0\x9f\x98\x80\"}\n\n"},
    {1002, B("\x80\x80\n"),
     "event: close\ndata: {\"code\":1002,\"reason\":\""
     "\xef\xbf\xbd\xef\xbf\xbd\\n\"}\n\n"},
};

static void test_sse_close(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof close_cases / sizeof close_cases[0]; i++) {
        struct gw_buf b = {0};
        struct framing_native_close cl = { close_cases[i].code,
                                           close_cases[i].reason,
                                           close_cases[i].len };
        assert_int_equal(framing_native_sse_close(&b, &cl), 0);
        assert_buf_eq(&b, close_cases[i].want, strlen(close_cases[i].want),
                      "sse close");
        gw_buf_free(&b);
    }
}

static void test_sse_lost(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(framing_native_sse_lost(&b, &(struct framing_native_lost){3, 9}), 0);
    assert_buf_eq(&b, B("event: lost\ndata: {\"from\":3,\"to\":9}\n\n"), "lost");
    gw_buf_reset(&b);
    assert_int_equal(framing_native_sse_lost(&b,
                         &(struct framing_native_lost){0, UINT64_MAX}), 0);
    assert_buf_eq(&b, B("event: lost\ndata: {\"from\":0,"
                        "\"to\":18446744073709551615}\n\n"), "lost max");
    gw_buf_free(&b);
}


/* ---------------------------------------------------------- batches */

static void test_batch_empty(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    struct framing_native_batch bt;
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_end(&bt, NULL, NULL), 0);
    assert_str_eq(&b, "{\"messages\":[]}", "empty");
    assert_json(&b);
    gw_buf_free(&b);
}

static void test_batch_messages(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    struct framing_native_batch bt;
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_add(&bt, 1, false, (const uint8_t *)"a\"b", 3), 0);
    assert_int_equal(framing_native_batch_add(&bt, 2, true, (const uint8_t *)"\xff\0", 2), 0);
    assert_int_equal(framing_native_batch_add(&bt, 3, false, (const uint8_t *)"</\n", 3), 0);
    assert_int_equal(bt.n, 3);
    assert_int_equal(framing_native_batch_end(&bt, NULL, NULL), 0);
    assert_str_eq(&b, "{\"messages\":[{\"seq\":1,\"text\":\"a\\\"b\"},"
                      "{\"seq\":2,\"binary\":\"/wA=\"},"
                      "{\"seq\":3,\"text\":\"<\\/\\n\"}]}", "three");
    assert_json(&b);
    gw_buf_free(&b);
}

static void test_batch_lost_and_closed(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    struct framing_native_batch bt;
    struct framing_native_lost lost = { 4, 9 };
    struct framing_native_close cl = { 1000, B("bye") };

    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_add(&bt, 10, false, (const uint8_t *)"x", 1), 0);
    assert_int_equal(framing_native_batch_end(&bt, &lost, &cl), 0);
    assert_str_eq(&b, "{\"messages\":[{\"seq\":10,\"text\":\"x\"}],"
                      "\"lost\":{\"from\":4,\"to\":9},"
                      "\"closed\":{\"code\":1000,\"reason\":\"bye\"}}", "both");
    assert_json(&b);

    gw_buf_reset(&b);
    lost = (struct framing_native_lost){ 0, UINT64_MAX };
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_end(&bt, &lost, NULL), 0);
    assert_str_eq(&b, "{\"messages\":[],\"lost\":{\"from\":0,"
                      "\"to\":18446744073709551615}}", "lost only, max");

    /* a close reason that needs escaping and sanitising */
    gw_buf_reset(&b);
    cl = (struct framing_native_close){ 4001, B("a\"\xff\n\xe2\x80\xa8</") };
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_end(&bt, NULL, &cl), 0);
    assert_str_eq(&b, "{\"messages\":[],\"closed\":{\"code\":4001,\"reason\":"
                      "\"a\\\"\xef\xbf\xbd\\n\\u2028<\\/\"}}", "closed only");
    assert_json(&b);

    /* empty reason, NULL pointer allowed with length 0 */
    gw_buf_reset(&b);
    cl = (struct framing_native_close){ 1006, NULL, 0 };
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_end(&bt, NULL, &cl), 0);
    assert_str_eq(&b, "{\"messages\":[],\"closed\":{\"code\":1006,\"reason\":\"\"}}",
                  "empty reason");
    gw_buf_free(&b);
}

/* Appends after what the buffer already holds, and keeps it. */
static void test_batch_appends(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    struct framing_native_batch bt;
    assert_int_equal(gw_buf_append(&b, "P", 1), 0);
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_end(&bt, NULL, NULL), 0);
    assert_str_eq(&b, "P{\"messages\":[]}", "kept prefix");
    gw_buf_free(&b);
}

/* A failure anywhere undoes the whole batch and sticks. */
static void test_batch_sticky_error(void **state)
{
    (void)state;
    struct gw_buf b = {.max = 40};
    struct framing_native_batch bt;
    assert_int_equal(gw_buf_append(&b, "P", 1), 0);
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_add(&bt, 1, false, (const uint8_t *)"ok", 2), 0);
    assert_int_equal(framing_native_batch_add(&bt, 2, false,
                     (const uint8_t *)"far too long for the cap", 24), GW_ETOOBIG);
    assert_str_eq(&b, "P", "rolled back to the start of the batch");
    /* later calls write nothing and report the first error */
    assert_int_equal(framing_native_batch_add(&bt, 3, false, (const uint8_t *)"y", 1),
                     GW_ETOOBIG);
    assert_int_equal(framing_native_batch_end(&bt, NULL, NULL), GW_ETOOBIG);
    assert_str_eq(&b, "P", "still rolled back");
    gw_buf_free(&b);
}

static void test_bad_args(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    struct framing_native_batch bt;
    struct framing_native_close bad = { 1000, NULL, 3 };
    assert_int_equal(framing_native_batch_begin(NULL, &b), GW_EINVAL);
    assert_int_equal(framing_native_batch_begin(&bt, NULL), GW_EINVAL);
    assert_int_equal(framing_native_batch_add(&bt, 1, false, NULL, 0), GW_EINVAL);
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_add(&bt, 1, false, NULL, 1), GW_EINVAL);
    assert_int_equal(framing_native_batch_end(&bt, NULL, NULL), GW_EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(framing_native_batch_begin(&bt, &b), 0);
    assert_int_equal(framing_native_batch_end(&bt, NULL, &bad), GW_EINVAL);
    assert_int_equal(b.len, 0);
    assert_int_equal(framing_native_poll_message(NULL, 1, false, NULL, 0), GW_EINVAL);
    assert_int_equal(framing_native_sse_message(&b, 1, true, NULL, 2), GW_EINVAL);
    assert_int_equal(framing_native_sse_lost(&b, NULL), GW_EINVAL);
    assert_int_equal(framing_native_sse_close(&b, NULL), GW_EINVAL);
    assert_int_equal(framing_native_sse_close(&b, &bad), GW_EINVAL);
    assert_int_equal(framing_native_gone(&b, &bad), GW_EINVAL);
    assert_int_equal(framing_native_open_reply(&b, NULL), GW_EINVAL);
    assert_int_equal(framing_native_open_reply(&b, &(struct framing_native_open){0}),
                     GW_EINVAL);
    assert_int_equal(framing_native_send_ack(NULL, true, 1), GW_EINVAL);
    assert_int_equal(framing_native_sse_preamble(NULL, 1000), GW_EINVAL);
    assert_int_equal(b.len, 0);
    gw_buf_free(&b);
}

/* ---------------------------------------------------------------- SSE */

static void test_sse_preamble(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(framing_native_sse_preamble(&b, 2000), 0);
    assert_int_equal(b.len, 1 + FRAMING_NATIVE_SSE_PADDING + 14);
    assert_int_equal(b.data[0], ':');
    for (size_t i = 1; i <= FRAMING_NATIVE_SSE_PADDING; i++)
        assert_int_equal(b.data[i], ' ');
    assert_memory_equal(b.data + 1 + FRAMING_NATIVE_SSE_PADDING,
                        "\nretry: 2000\n\n", 14);
    assert_int_equal(b.data[b.len], 0);
    gw_buf_reset(&b);
    assert_int_equal(framing_native_sse_preamble(&b, 1000), 0);
    assert_memory_equal(b.data + b.len - 14, "\nretry: 1000\n\n", 14);
    gw_buf_free(&b);
    assert_string_equal(FRAMING_NATIVE_SSE_HEARTBEAT, ": heartbeat\n\n");
}

/* ------------------------------------------------------------ replies */

static void test_open_reply(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    struct framing_native_open o = {
        .session_id = "AbCdEfGhIjKlMnOpQr-_09",
        .poll_timeout_s = 25, .heartbeat_s = 15, .idle_timeout_s = 60,
    };
    assert_int_equal(framing_native_open_reply(&b, &o), 0);
    assert_str_eq(&b, "{\"session\":\"AbCdEfGhIjKlMnOpQr-_09\",\"poll_timeout\":25,"
                      "\"heartbeat\":15,\"idle_timeout\":60,\"protocol\":null}",
                  "no protocol");
    assert_json(&b);
    gw_buf_reset(&b);
    o.protocol = "chat.v2";
    o.poll_timeout_s = 0;
    o.idle_timeout_s = UINT64_MAX;
    assert_int_equal(framing_native_open_reply(&b, &o), 0);
    assert_str_eq(&b, "{\"session\":\"AbCdEfGhIjKlMnOpQr-_09\",\"poll_timeout\":0,"
                      "\"heartbeat\":15,\"idle_timeout\":18446744073709551615,"
                      "\"protocol\":\"chat.v2\"}", "protocol");
    /* whatever the strings hold, they stay JSON strings */
    gw_buf_reset(&b);
    o = (struct framing_native_open){ .session_id = "a\"b", .protocol = "</x" };
    assert_int_equal(framing_native_open_reply(&b, &o), 0);
    assert_str_eq(&b, "{\"session\":\"a\\\"b\",\"poll_timeout\":0,\"heartbeat\":0,"
                      "\"idle_timeout\":0,\"protocol\":\"<\\/x\"}", "escaped");
    assert_json(&b);
    gw_buf_free(&b);
}

static void test_send_ack(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(framing_native_send_ack(&b, true, 0), 0);
    assert_str_eq(&b, "{\"ack\":0}", "ack 0");
    gw_buf_reset(&b);
    assert_int_equal(framing_native_send_ack(&b, true, UINT64_MAX), 0);
    assert_str_eq(&b, "{\"ack\":18446744073709551615}", "ack max");
    gw_buf_reset(&b);
    assert_int_equal(framing_native_send_ack(&b, false, 77), 0);
    assert_str_eq(&b, "{\"ack\":null}", "no seq");
    gw_buf_free(&b);
}

static void test_gone(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    struct framing_native_close cl = { 1001, B("going away") };
    assert_int_equal(framing_native_gone(&b, &cl), 0);
    assert_str_eq(&b, "{\"error\":\"session_closed\",\"message\":"
                      "\"the session has ended\",\"code\":1001,"
                      "\"reason\":\"going away\"}", "gone");
    assert_json(&b);
    gw_buf_reset(&b);
    cl = (struct framing_native_close){ 1002, B("x\xc0\x80\"") };
    assert_int_equal(framing_native_gone(&b, &cl), 0);
    assert_str_eq(&b, "{\"error\":\"session_closed\",\"message\":"
                      "\"the session has ended\",\"code\":1002,"
                      "\"reason\":\"x\xef\xbf\xbd\xef\xbf\xbd\\\"\"}",
                  "gone sanitised");
    assert_json(&b);
    gw_buf_free(&b);
}

/* ---------------------------------------------- all or nothing, caps */

static int full_batch(struct gw_buf *b)
{
    struct framing_native_batch bt;
    struct framing_native_lost lost = { 2, 3 };
    struct framing_native_close cl = { 1000, B("b\xffye") };
    framing_native_batch_begin(&bt, b);
    framing_native_batch_add(&bt, 4, false, (const uint8_t *)"he\"llo", 6);
    framing_native_batch_add(&bt, 5, true, (const uint8_t *)"bin", 3);
    return framing_native_batch_end(&bt, &lost, &cl);
}

/* Every builder, with inputs that take each of its paths. */
static int composite(struct gw_buf *b, int which)
{
    const uint8_t *d = (const uint8_t *)"he\"llo";
    struct framing_native_close cl = { 1001, B("a\xff") };
    struct framing_native_lost lost = { 5, 77 };
    struct framing_native_open o = { "id", 1, 2, 3, "p" };
    switch (which) {
    case 0: return framing_native_poll_message(b, 42, false, d, 6);
    case 1: return framing_native_poll_message(b, 42, true, d, 6);
    case 2: return framing_native_sse_message(b, 42, false, d, 6);
    case 3: return framing_native_sse_message(b, 42, true, d, 6);
    case 4: return framing_native_sse_close(b, &cl);
    case 5: return framing_native_sse_lost(b, &lost);
    case 6: return framing_native_sse_preamble(b, 1000);
    case 7: return framing_native_open_reply(b, &o);
    case 8: return framing_native_send_ack(b, true, 123456);
    case 9: return framing_native_send_ack(b, false, 0);
    case 10: return framing_native_gone(b, &cl);
    default: return full_batch(b);
    }
}
#define N_COMPOSITE 12

/* At every cap below the full size: GW_ETOOBIG and the buffer as it was;
 * at the full size: the same bytes as without a cap. */
static void test_composite_cap(void **state)
{
    (void)state;
    for (int which = 0; which < N_COMPOSITE; which++) {
        struct gw_buf full = {0};
        assert_int_equal(gw_buf_append(&full, "P", 1), 0);
        assert_int_equal(composite(&full, which), 0);
        for (size_t max = 1; max <= full.len; max++) {
            struct gw_buf b = {.max = max};
            assert_int_equal(gw_buf_append(&b, "P", 1), 0);
            int rc = composite(&b, which);
            if (max < full.len) {
                assert_int_equal(rc, GW_ETOOBIG);
                assert_buf_eq(&b, B("P"), "rolled back");
            } else {
                assert_int_equal(rc, 0);
                assert_buf_eq(&b, (const char *)full.data, full.len, "fits");
            }
            gw_buf_free(&b);
        }
        gw_buf_free(&full);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_sse_close),
        cmocka_unit_test(test_sse_lost),
        cmocka_unit_test(test_batch_empty),
        cmocka_unit_test(test_batch_messages),
        cmocka_unit_test(test_batch_lost_and_closed),
        cmocka_unit_test(test_batch_appends),
        cmocka_unit_test(test_batch_sticky_error),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_sse_preamble),
        cmocka_unit_test(test_open_reply),
        cmocka_unit_test(test_send_ack),
        cmocka_unit_test(test_gone),
        cmocka_unit_test(test_composite_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

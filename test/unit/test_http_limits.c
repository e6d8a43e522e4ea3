/* Unit tests for the pure part of http_limits: the request-head checks
 * that run on the raw bytes before evhttp parses them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http_limits.h"

static int head(const char *s, struct http_head_info *hi)
{
    return http_limits_check_head(s, strlen(s), hi);
}

static void test_good_heads(void **state)
{
    (void)state;
    struct http_head_info hi;
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &hi), 0);
    assert_false(hi.chunked);
    assert_int_equal(hi.length, 0);
    assert_int_equal(head("GET / HTTP/1.0\r\n\r\n", &hi), 0);
    assert_true(hi.http10);
    assert_int_equal(head("POST /x HTTP/1.1\nHost: a\nContent-Length: 12\n\n", &hi), 0);
    assert_int_equal(hi.length, 12);
    assert_int_equal(head("POST /x HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n\r\n", &hi), 0);
    assert_true(hi.chunked);
    assert_int_equal(head("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &hi), 0);
    assert_true(hi.upgrade);
    assert_int_equal(head("GET http://a/x HTTP/1.1\r\nHost: a\r\nX-E:\r\n\r\n", &hi), 0);
}

static void test_request_line(void **state)
{
    (void)state;
    struct http_head_info hi;
    assert_int_equal(head("GARBAGE\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &hi), 505);
    assert_int_equal(head("GET / HTTP/1.2\r\nHost: a\r\n\r\n", &hi), 505);
    assert_int_equal(head("GET / HTTP/x.y\r\nHost: a\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / http/1.1\r\nHost: a\r\n\r\n", &hi), 400);
    assert_int_equal(http_limits_check_request_line("GET /health", 11, NULL), 400);
    assert_int_equal(http_limits_check_request_line("G(T / HTTP/1.1", 14, NULL), 400);
}

static void test_header_lines(void **state)
{
    (void)state;
    struct http_head_info hi;
    const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    assert_int_equal(http_limits_check_head(nul, sizeof nul - 1, &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1\r\n\r\n", &hi), 400);             /* no Host */
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n", &hi), 400);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\n", &hi), 400);      /* unterminated */
}

static void test_sizes(void **state)
{
    (void)state;
    struct http_head_info hi;
    static char buf[HTTP_LIMITS_HEAD_MAX * 2];
    /* one header line of exactly the limit passes; one byte more is 431 */
    size_t pre = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    size_t fill = HTTP_LIMITS_LINE_MAX - 3 - 2;
    memset(buf + pre, 'v', fill);
    memcpy(buf + pre + fill, "\r\n\r\n", 5);
    assert_int_equal(head(buf, &hi), 0);
    memset(buf + pre, 'v', fill + 1);
    memcpy(buf + pre + fill + 1, "\r\n\r\n", 5);
    assert_int_equal(head(buf, &hi), 431);
    /* 100 header lines pass, 101 do not */
    size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < 100; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X%d: v\r\n", i);
    snprintf(buf + n, sizeof buf - n, "\r\n");
    assert_int_equal(head(buf, &hi), 0);
    snprintf(buf + n, sizeof buf - n, "Y: v\r\n\r\n");
    assert_int_equal(head(buf, &hi), 431);
    /* a head over the total limit */
    memset(buf, 'a', sizeof buf);
    assert_int_equal(http_limits_check_head(buf, HTTP_LIMITS_HEAD_MAX + 1, &hi), 431);
}

static void test_framing(void **state)
{
    (void)state;
    struct http_head_info hi;
#define P(h) "POST /s HTTP/1.1\r\nHost: a\r\n" h "\r\n"
    assert_int_equal(head(P("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"), &hi), 400);
    assert_int_equal(head(P("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"), &hi), 400);
    assert_int_equal(head(P("Transfer-Encoding: xchunked\r\n"), &hi), 501);
    assert_int_equal(head(P("Transfer-Encoding: gzip, chunked\r\n"), &hi), 501);
    assert_int_equal(head(P("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), &hi), 501);
    assert_int_equal(head(P("Content-Length: 1\r\nContent-Length: 5\r\n"), &hi), 400);
    assert_int_equal(head(P("Content-Length: 5\r\nContent-Length: 5\r\n"), &hi), 400);
    assert_int_equal(head(P("Content-Length: 5, 5\r\n"), &hi), 400);
    assert_int_equal(head(P("Content-Length: +5\r\n"), &hi), 400);
    assert_int_equal(head(P("Content-Length: -1\r\n"), &hi), 400);
    assert_int_equal(head(P("Content-Length: \r\n"), &hi), 400);
    assert_int_equal(head(P("Content-Length: 18446744073709551621\r\n"), &hi), 400);
    assert_int_equal(head(P("Content-Length: 999999999999999999\r\n"), &hi), 0);
    assert_int_equal(hi.length, 999999999999999999ull);
    assert_int_equal(head("POST /s HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &hi), 400);
#undef P
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_heads),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_header_lines),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

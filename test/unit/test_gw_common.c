/*
 * test_gw_common.c - error helpers, unit parsing (sizes and durations) and
 * the capped growable buffer. Data-driven: input -> expected output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_common.h"

#define KIB 1024ULL
#define MIB (1024ULL * 1024)
#define GIB (1024ULL * 1024 * 1024)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- sizes */

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        uint64_t want;
    } cases[] = {
        { "0", 0, 0 },
        { "1", 0, 1 },
        { "1B", 0, 1 },
        { "125B", 0, 125 },
        { "1KiB", 0, KIB },
        { "64KiB", 0, 64 * KIB },
        { "1MiB", 0, MIB },
        { "1GiB", 0, GIB },
        { "1024GiB", 0, 1024 * GIB },
        { "1 KiB", 0, KIB },           /* spaces around the unit */
        { "  2MiB  ", 0, 2 * MIB },
        { "3\tgib", 0, 3 * GIB },      /* units are case-insensitive */
        { "1kib", 0, KIB },
        { "0KiB", 0, 0 },
        { "18446744073709551615", 0, UINT64_MAX },
        { "17179869183GiB", 0, 17179869183ULL * GIB },
        /* errors */
        { "", GW_EINVAL, 0 },
        { " ", GW_EINVAL, 0 },
        { "KiB", GW_EINVAL, 0 },
        { "-1", GW_EINVAL, 0 },
        { "+1", GW_EINVAL, 0 },
        { "1.5MiB", GW_EINVAL, 0 },
        { "1KB", GW_EINVAL, 0 },       /* SI units are not accepted */
        { "1MB", GW_EINVAL, 0 },
        { "1K", GW_EINVAL, 0 },
        { "1 M", GW_EINVAL, 0 },
        { "1MiBs", GW_EINVAL, 0 },
        { "1 MiB x", GW_EINVAL, 0 },
        { "1 2", GW_EINVAL, 0 },
        { "0x10", GW_EINVAL, 0 },
        { "18446744073709551616", GW_EINVAL, 0 },   /* overflow */
        { "17179869184GiB", GW_EINVAL, 0 },         /* overflow after scaling */
        { "18014398509481984KiB", GW_EINVAL, 0 },
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        uint64_t v = 0xdeadbeef;
        int rc = gw_parse_size(cases[i].in, &v);
        if (rc != cases[i].rc)
            fail_msg("gw_parse_size(\"%s\") = %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].want)
            fail_msg("gw_parse_size(\"%s\") gave %llu", cases[i].in, (unsigned long long)v);
        if (rc != 0)
            assert_int_equal(v, 0xdeadbeef); /* output untouched on error */
    }
    uint64_t v;
    assert_int_equal(gw_parse_size(NULL, &v), GW_EINVAL);
}

/* ------------------------------------------------------------ durations */

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        uint64_t want;
    } cases[] = {
        { "0", 0, 0 },
        { "0ms", 0, 0 },
        { "0s", 0, 0 },
        { "1ms", 0, 1 },
        { "500ms", 0, 500 },
        { "25s", 0, 25000 },
        { "5m", 0, 300000 },
        { "1h", 0, 3600000 },
        { "8760h", 0, 8760ULL * 3600000 },
        { "1 s", 0, 1000 },
        { " 2m ", 0, 120000 },
        { "1H", 0, 3600000 },          /* case-insensitive ... */
        { "1M", 0, 60000 },            /* ... so M is minutes, */
        { "1MS", 0, 1 },               /* and MS milliseconds */
        { "18446744073709551615ms", 0, UINT64_MAX },
        /* errors */
        { "", GW_EINVAL, 0 },
        { "5", GW_EINVAL, 0 },         /* a bare number must be 0 */
        { "00", 0, 0 },
        { "s", GW_EINVAL, 0 },
        { "-1s", GW_EINVAL, 0 },
        { "1.5s", GW_EINVAL, 0 },
        { "1d", GW_EINVAL, 0 },
        { "1sec", GW_EINVAL, 0 },
        { "1 min", GW_EINVAL, 0 },
        { "1us", GW_EINVAL, 0 },
        { "1s 2", GW_EINVAL, 0 },
        { "1h30m", GW_EINVAL, 0 },
        { "18446744073709551616ms", GW_EINVAL, 0 },
        { "18446744073709552s", GW_EINVAL, 0 },     /* overflow after scaling */
        { "5124095576030432h", GW_EINVAL, 0 },
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        uint64_t v = 0xdeadbeef;
        int rc = gw_parse_duration_ms(cases[i].in, &v);
        if (rc != cases[i].rc)
            fail_msg("gw_parse_duration_ms(\"%s\") = %d, want %d", cases[i].in, rc,
                     cases[i].rc);
        if (rc == 0 && v != cases[i].want)
            fail_msg("gw_parse_duration_ms(\"%s\") gave %llu", cases[i].in,
                     (unsigned long long)v);
        if (rc != 0)
            assert_int_equal(v, 0xdeadbeef);
    }
    uint64_t v;
    assert_int_equal(gw_parse_duration_ms(NULL, &v), GW_EINVAL);
}

/* ---------------------------------------------------------------- gw_buf */

static void test_buf_basic(void **state)
{
    (void)state;
    struct gw_buf b = { 0 };
    assert_int_equal(gw_buf_append(&b, "hello", 5), 0);
    assert_int_equal(b.len, 5);
    assert_string_equal((char *)b.data, "hello"); /* NUL-terminated */
    assert_int_equal(gw_buf_appendf(&b, " %s %d", "world", 42), 0);
    assert_int_equal(b.len, 14);
    assert_string_equal((char *)b.data, "hello world 42");
    assert_true(b.cap > b.len);

    size_t cap = b.cap;
    uint8_t *data = b.data;
    gw_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);                /* memory kept */
    assert_ptr_equal(b.data, data);
    assert_string_equal((char *)b.data, "");

    assert_int_equal(gw_buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 0);
    gw_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    gw_buf_free(&b);                             /* twice is fine */

    /* zero-length append on a fresh buffer still gives a C string */
    assert_int_equal(gw_buf_append(&b, NULL, 0), 0);
    assert_non_null(b.data);
    assert_string_equal((char *)b.data, "");
    gw_buf_free(&b);
}

static void test_buf_grow(void **state)
{
    (void)state;
    struct gw_buf b = { 0 }; /* max 0: unlimited */
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(gw_buf_append(&b, chunk, sizeof chunk), 0);
    assert_int_equal(b.len, 3000000);
    assert_int_equal(b.data[b.len], 0);
    assert_int_equal(b.data[b.len - 1], 'x');

    /* reserve: write position, caller commits the length */
    uint8_t *p = gw_buf_reserve(&b, 3);
    assert_ptr_equal(p, b.data + b.len);
    memcpy(p, "abc", 3);
    b.len += 3;
    assert_memory_equal(b.data + b.len - 4, "xabc", 4);
    /* impossible sizes fail cleanly */
    assert_null(gw_buf_reserve(&b, SIZE_MAX));
    assert_null(gw_buf_reserve(&b, SIZE_MAX - b.len));
    assert_int_equal(gw_buf_append(&b, chunk, SIZE_MAX - 1), GW_ENOMEM);
    assert_int_equal(b.len, 3000003);
    gw_buf_free(&b);
}

static void test_buf_max(void **state)
{
    (void)state;
    struct gw_buf b = { .max = 10 };
    assert_int_equal(gw_buf_append(&b, "12345", 5), 0);
    assert_int_equal(gw_buf_append(&b, "67890", 5), 0);   /* exactly max */
    assert_int_equal(b.len, 10);
    assert_int_equal(gw_buf_append(&b, "x", 1), GW_ETOOBIG);
    assert_int_equal(b.len, 10);                          /* unchanged */
    assert_string_equal((char *)b.data, "1234567890");
    assert_int_equal(gw_buf_append(&b, "", 0), 0);        /* nothing is fine */
    assert_null(gw_buf_reserve(&b, 1));
    assert_non_null(gw_buf_reserve(&b, 0));
    assert_int_equal(gw_buf_appendf(&b, "%d", 1), GW_ETOOBIG);
    assert_int_equal(b.len, 10);

    gw_buf_reset(&b);
    assert_int_equal(gw_buf_append(&b, "12345678901", 11), GW_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(gw_buf_appendf(&b, "%s", "12345678901"), GW_ETOOBIG);
    assert_int_equal(gw_buf_appendf(&b, "%s", "1234567890"), 0);
    assert_string_equal((char *)b.data, "1234567890");
    assert_int_equal(gw_buf_appendf(&b, "%s", ""), 0);
    assert_int_equal(gw_buf_append(&b, "x", SIZE_MAX), GW_ETOOBIG); /* no overflow */
    gw_buf_free(&b);
    assert_int_equal(b.max, 10);                          /* cap survives free */

    /* a cap below the first allocation */
    struct gw_buf one = { .max = 1 };
    assert_int_equal(gw_buf_append(&one, "a", 1), 0);
    assert_int_equal(gw_buf_append(&one, "b", 1), GW_ETOOBIG);
    assert_string_equal((char *)one.data, "a");
    gw_buf_free(&one);
}

static void test_buf_appendf_long(void **state)
{
    (void)state;
    struct gw_buf b = { 0 };
    char big[5000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(gw_buf_appendf(&b, "<%s>", big), 0);
    assert_int_equal(b.len, sizeof big + 1);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[b.len - 1], '>');
    assert_int_equal(b.data[b.len], 0);
    gw_buf_free(&b);
}

/* --------------------------------------------------------------- errors */

static void test_errors(void **state)
{
    (void)state;
    static const int codes[] = { GW_OK, GW_EAGAIN, GW_EINVAL, GW_EPROTO,
                                 GW_ETOOBIG, GW_EUTF8, GW_ENOMEM, GW_EIO,
                                 GW_ESTATE, GW_ETLS, GW_EFULL };
    for (size_t i = 0; i < NELEM(codes); i++) {
        const char *s = gw_strerror(codes[i]);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, gw_strerror(codes[j]));
    }
    assert_string_equal(gw_strerror(-999), "unknown error");
    assert_string_equal(gw_strerror(1), "unknown error");

    struct gw_error e = { 0 };
    assert_int_equal(gw_error_set(&e, GW_EPROTO, "bad %s %d", "frame", 7), GW_EPROTO);
    assert_int_equal(e.code, GW_EPROTO);
    assert_string_equal(e.msg, "bad frame 7");
    assert_int_equal(gw_error_set(NULL, GW_EIO, "ignored %d", 1), GW_EIO);

    char longmsg[1000];
    memset(longmsg, 'z', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = 0;
    gw_error_set(&e, GW_EINVAL, "%s", longmsg);
    assert_int_equal(strlen(e.msg), GW_ERROR_MSG_MAX - 1); /* truncated, terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_buf_basic),
        cmocka_unit_test(test_buf_grow),
        cmocka_unit_test(test_buf_max),
        cmocka_unit_test(test_buf_appendf_long),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for gw_proxy: CIDR syntax, membership, and the client address
 * derived from X-Forwarded-For behind trusted proxies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gw_common.h"
#include "gw_proxy.h"

static void test_cidr_check(void **state)
{
    (void)state;
    char why[256];
    const char *good[] = { "127.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "::1",
                           "fd00::/8", "::/0", "192.168.1.7/32", "::ffff:10.0.0.1" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(gw_cidr_check(good[i], why, sizeof why), 0);
    const char *bad[] = { "", "localhost", "10.0.0.0/33", "::1/129", "10.0.0.0/",
                          "10.0.0.0/x", "10.0.0/8", "1.2.3.4/-1", "1.2.3.4/0008" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(gw_cidr_check(bad[i], why, sizeof why), GW_EINVAL);
        assert_true(strlen(why) > 0);
    }
}

static void test_trusted(void **state)
{
    (void)state;
    char *nets[] = { "10.0.0.0/8", "127.0.0.1", "fd00::/8", "192.168.1.128/25" };
    assert_int_equal(gw_proxy_set(nets, 4), 0);
    assert_true(gw_proxy_trusted("10.1.2.3"));
    assert_true(gw_proxy_trusted("127.0.0.1"));
    assert_false(gw_proxy_trusted("127.0.0.2"));
    assert_true(gw_proxy_trusted("fd12::1"));
    assert_false(gw_proxy_trusted("fe80::1"));
    assert_true(gw_proxy_trusted("192.168.1.200"));
    assert_false(gw_proxy_trusted("192.168.1.100"));
    assert_true(gw_proxy_trusted("::ffff:10.9.9.9")); /* mapped IPv4 */
    assert_false(gw_proxy_trusted("garbage"));
    assert_int_equal(gw_proxy_set(NULL, 0), 0);
    assert_false(gw_proxy_trusted("127.0.0.1"));
}

static const char *client(const char *peer, const char *const *xff, size_t n)
{
    static char out[64];
    gw_proxy_client(peer, xff, n, out, sizeof out);
    return out;
}

static void test_client(void **state)
{
    (void)state;
    char *nets[] = { "127.0.0.1", "10.0.0.0/8" };
    assert_int_equal(gw_proxy_set(nets, 2), 0);
    /* an untrusted peer is the client, whatever it says */
    const char *forged[] = { "6.6.6.6" };
    assert_string_equal(client("203.0.113.9", forged, 1), "203.0.113.9");
    /* a trusted peer: the last entry not trusted */
    const char *one[] = { "198.51.100.1" };
    assert_string_equal(client("127.0.0.1", one, 1), "198.51.100.1");
    /* a browser's own (forged) entry left of the real one is ignored */
    const char *chain[] = { "6.6.6.6, 198.51.100.1, 10.0.0.5" };
    assert_string_equal(client("127.0.0.1", chain, 1), "198.51.100.1");
    /* several headers count as one list, in order */
    const char *split[] = { "6.6.6.6", "198.51.100.2", "10.1.1.1" };
    assert_string_equal(client("127.0.0.1", split, 3), "198.51.100.2");
    /* no header: the proxy itself */
    assert_string_equal(client("127.0.0.1", NULL, 0), "127.0.0.1");
    /* everything trusted: the leftmost */
    const char *all[] = { "10.0.0.9, 10.0.0.8" };
    assert_string_equal(client("127.0.0.1", all, 1), "10.0.0.9");
    /* garbage ends the walk at the trusted hop to its right */
    const char *junk[] = { "198.51.100.3, nonsense, 10.0.0.7" };
    assert_string_equal(client("127.0.0.1", junk, 1), "10.0.0.7");
    const char *empty[] = { "" };
    assert_string_equal(client("127.0.0.1", empty, 1), "127.0.0.1");
    /* ports and brackets some proxies write; canonical form out */
    const char *ports[] = { "[2001:DB8::0:1]:443" };
    assert_string_equal(client("127.0.0.1", ports, 1), "2001:db8::1");
    const char *v4port[] = { " 198.51.100.4:5555 " };
    assert_string_equal(client("127.0.0.1", v4port, 1), "198.51.100.4");
    /* a long list is bounded: only the last 64 hops are looked at */
    char longv[1024] = "198.51.100.5";
    for (int i = 0; i < 70; i++)
        strcat(longv, ", 10.0.0.1");
    const char *lv[] = { longv };
    assert_string_equal(client("127.0.0.1", lv, 1), "10.0.0.1");
    gw_proxy_set(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_check),
        cmocka_unit_test(test_trusted),
        cmocka_unit_test(test_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

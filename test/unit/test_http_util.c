/* Unit tests for the pure parts of http_util: same-origin and the origin
 * rules of a route. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gw_config.h"
#include "http_util.h"

static void test_same_origin(void **state)
{
    (void)state;
    /* plain listener: host[:port] must equal Host; either scheme */
    assert_true(http_same_origin("http://127.0.0.1:8080", "127.0.0.1:8080", false));
    assert_true(http_same_origin("HTTP://Gate.Example", "gate.example", false));
    assert_true(http_same_origin("https://gate.example", "gate.example", false));
    /* default ports are the same as none, per the origin's scheme */
    assert_true(http_same_origin("http://gate.example", "gate.example:80", false));
    assert_true(http_same_origin("http://gate.example:80", "gate.example", false));
    assert_true(http_same_origin("https://gate.example", "gate.example:443", false));
    assert_false(http_same_origin("http://gate.example", "gate.example:443", false));
    assert_false(http_same_origin("https://gate.example", "gate.example:80", false));
    /* other host, port, suffix, path or scheme */
    assert_false(http_same_origin("http://127.0.0.1:8081", "127.0.0.1:8080", false));
    assert_false(http_same_origin("http://localhost:8080", "127.0.0.1:8080", false));
    assert_false(http_same_origin("http://gate.example.evil", "gate.example", false));
    assert_false(http_same_origin("http://gate.exampl", "gate.example", false));
    assert_false(http_same_origin("http://gate.example/", "gate.example", false));
    assert_false(http_same_origin("ftp://gate.example", "gate.example", false));
    assert_false(http_same_origin("null", "gate.example", false));
    assert_false(http_same_origin("http://", "", false));
    assert_false(http_same_origin("http://:80", ":80", false));
    assert_false(http_same_origin(NULL, "gate.example", false));
    assert_false(http_same_origin("http://gate.example", NULL, false));
    /* TLS listener: only https can be the same origin */
    assert_true(http_same_origin("https://gate.example", "gate.example", true));
    assert_true(http_same_origin("https://gate.example:8443", "gate.example:8443", true));
    assert_false(http_same_origin("http://gate.example", "gate.example", true));
    assert_false(http_same_origin("http://gate.example:443", "gate.example:443", true));
}

static void test_referer_origin(void **state)
{
    (void)state;
    char o[64];
    /* the page URL is cut at its path, query or fragment */
    assert_true(http_referer_origin("http://good.example/app/page.html?x=1", o, sizeof o));
    assert_string_equal(o, "http://good.example");
    assert_true(http_referer_origin("HTTPS://Good.Example:8443", o, sizeof o));
    assert_string_equal(o, "https://Good.Example:8443");
    assert_true(http_referer_origin("http://127.0.0.1:8080?q", o, sizeof o));
    assert_string_equal(o, "http://127.0.0.1:8080");
    assert_true(http_referer_origin("http://[::1]:8080#f", o, sizeof o));
    assert_string_equal(o, "http://[::1]:8080");
    /* not an http(s) URL with a plain authority: no origin */
    const char *bad[] = { "", "good.example/x", "javascript:alert(1)", "about:blank",
                          "ftp://good.example/", "http://", "http:///x", "//good.example/",
                          "http://good.example@evil.example/", "http://a b/",
                          "http://good.example\\@evil/", "http://\x01x/", NULL };
    for (int i = 0; bad[i]; i++) {
        strcpy(o, "junk");
        assert_false(http_referer_origin(bad[i], o, sizeof o));
        assert_string_equal(o, "");
    }
    assert_false(http_referer_origin(NULL, o, sizeof o));
    /* longer than the caller's buffer: refused, not cut */
    char small[20];
    assert_false(http_referer_origin("http://a-long-host-name.example/", small, sizeof small));
    assert_true(http_referer_origin("http://s.example/", small, sizeof small));
    assert_string_equal(small, "http://s.example");
}

static void test_origin_rules(void **state)
{
    (void)state;
    char *list[] = { "https://app.example", "https://b.example:8443" };
    struct gw_route r;
    memset(&r, 0, sizeof r);
    r.origins = list;
    r.n_origins = 2;
    const char *host = "gate.example:8080";
    /* the list */
    assert_true(http_origin_allowed(&r, "https://app.example", host, false));
    assert_true(http_origin_allowed(&r, "https://B.example:8443", host, false));
    assert_false(http_origin_allowed(&r, "https://b.example", host, false));
    assert_false(http_origin_allowed(&r, "https://evil.example", host, false));
    /* a list never shuts out the gateway's own origin (iframe transports,
     * pages from static_root) */
    assert_true(http_origin_allowed(&r, "http://gate.example:8080", host, false));
    assert_false(http_origin_allowed(&r, "http://gate.example:8081", host, false));
    /* empty list: the same origin only */
    r.n_origins = 0;
    assert_true(http_origin_allowed(&r, "http://gate.example:8080", host, false));
    assert_false(http_origin_allowed(&r, "https://app.example", host, false));
    /* "*": anything */
    r.origins_any = true;
    assert_true(http_origin_allowed(&r, "https://evil.example", host, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_origin_rules),
        cmocka_unit_test(test_referer_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

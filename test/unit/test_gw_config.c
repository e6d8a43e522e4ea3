/*
 * test_gw_config.c - the INI file -> struct gw_config.
 *
 * Every error kind is checked with its exact line ("t.ini:LINE:"); ranges
 * are checked at both ends from a table; the real conf/pollgate.ini must
 * load and hold the defaults (set POLLGATE_SRCDIR or SRCDIR to the source
 * tree, default ".").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw_config.h"
#include "gw_log.h"

#define NAME "t.ini"
/* A valid route, for texts that test something else. */
#define ROUTE "[route r]\npath = /r\nupstream = ws://127.0.0.1:9000/r\n"

static struct gw_config *parse(const char *text, struct gw_diag *d)
{
    return gw_config_parse_string(text, NAME, d);
}

static void dump(const struct gw_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        print_message("  diag[%zu] %s\n", i, d->msgs[i]);
}

static void expect_ok(const char *text)
{
    struct gw_diag d = { 0 };
    struct gw_config *cfg = parse(text, &d);
    if (!cfg)
        dump(&d);
    assert_non_null(cfg);
    assert_int_equal(d.n, 0);
    gw_config_free(cfg);
}

/* text must fail with exactly one message, on line (0: file-wide), that
 * contains needle. */
static void expect_error(const char *text, int line, const char *needle)
{
    struct gw_diag d = { 0 };
    char where[64];
    struct gw_config *cfg = parse(text, &d);
    if (cfg || d.n != 1) {
        print_message("text:\n%s\n", text);
        dump(&d);
    }
    assert_null(cfg);
    assert_int_equal(d.n, 1);
    if (line)
        snprintf(where, sizeof where, NAME ":%d: ", line);
    else
        snprintf(where, sizeof where, NAME ": ");
    if (strncmp(d.msgs[0], where, strlen(where)) != 0 || !strstr(d.msgs[0], needle))
        fail_msg("text:\n%s\ngot \"%s\", want \"%s...%s\"", text, d.msgs[0], where,
                 needle);
    gw_diag_free(&d);
}

/* ------------------------------------------------------------- defaults */

static void check_defaults(const struct gw_config *c)
{
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->log_level, GW_LOG_INFO);
    assert_int_equal(c->max_body, 1 << 20);
    assert_int_equal(c->request_timeout_ms, 60000);
    assert_int_equal(c->listen_backlog, 4096);
    assert_int_equal(c->poll_timeout_ms, 25000);
    assert_int_equal(c->heartbeat_ms, 25000);
    assert_int_equal(c->idle_timeout_ms, 30000);
    assert_int_equal(c->max_lifetime_ms, 0);
    assert_int_equal(c->buffer_bytes, 1 << 20);
    assert_int_equal(c->buffer_messages, 10000);
    assert_int_equal(c->overflow, GW_OVERFLOW_PAUSE);
    assert_int_equal(c->send_buffer_bytes, 1 << 20);
    assert_int_equal(c->max_batch, 1000);
    assert_int_equal(c->max_sessions, 100000);
    assert_int_equal(c->max_sessions_per_client, 1000);
    assert_int_equal(c->max_buffered_bytes, 1ULL << 30);
    assert_int_equal(c->connect_timeout_ms, 10000);
    assert_int_equal(c->ping_interval_ms, 20000);
    assert_int_equal(c->max_message, 1 << 20);
    assert_null(c->tls_ca_file);
    assert_true(c->tls_verify);
    assert_null(c->tls_cert_file);
    assert_null(c->tls_key_file);
}

static void check_default_route_keys(const struct gw_route *r)
{
    assert_int_equal(r->n_origins, 0);
    assert_null(r->origins);
    assert_false(r->origins_any);
    assert_int_equal(r->n_forward_headers, 4);
    assert_string_equal(r->forward_headers[0], "Cookie");
    assert_string_equal(r->forward_headers[1], "Authorization");
    assert_string_equal(r->forward_headers[2], "User-Agent");
    assert_string_equal(r->forward_headers[3], "Accept-Language");
    assert_false(r->forward_origin);
    assert_null(r->protocols);
    assert_null(r->sockjs_path);
    assert_string_equal(r->sockjs_url, "/sockjs.min.js");
    assert_int_equal(r->response_limit, 128 * 1024);
    assert_int_equal(r->disconnect_delay_ms, 5000);
    assert_false(r->cookie_needed);
    assert_int_equal(r->sockjs_binary, GW_SOCKJS_BINARY_CLOSE);
}

static void test_admin_instance(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    struct gw_config *c = parse("[gateway]\ninstance = a1\n[admin]\n"
                                "listen = [::1]:9090\nhealth_interval = 3s\n"
                                "sessions_list_max = 5\n" ROUTE, &d);
    assert_non_null(c);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->instance, "a1");
    assert_string_equal(c->admin_listen_host, "::1");
    assert_int_equal(c->admin_listen_port, 9090);
    assert_int_equal(c->health_interval_ms, 3000);
    assert_int_equal(c->sessions_list_max, 5);
    gw_config_free(c);
    /* empty = off */
    c = parse("[admin]\nlisten =\n" ROUTE, &d);
    assert_non_null(c);
    assert_null(c->admin_listen_host);
    gw_config_free(c);
    gw_diag_free(&d);
}

static void test_defaults(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    struct gw_config *c = parse("; only a route\n\n" ROUTE, &d);
    assert_non_null(c);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->file, NAME);
    check_defaults(c);
    assert_null(c->static_root);
    assert_null(c->instance);
    assert_null(c->admin_listen_host);      /* no admin listener by default */
    assert_int_equal(c->health_interval_ms, 10000);
    assert_int_equal(c->n_routes, 1);
    assert_string_equal(c->routes[0].name, "r");
    assert_int_equal(c->routes[0].line, 3);
    assert_string_equal(c->routes[0].path, "/r");
    assert_string_equal(c->routes[0].upstream, "ws://127.0.0.1:9000/r");
    check_default_route_keys(&c->routes[0]);
    assert_false(c->routes[0].sockjs);
    gw_config_free(c);
}

/* ---------------------------------------------------- every key non-default */

static char *make_file(const char *dir, const char *name)
{
    char *path = malloc(512);
    assert_non_null(path);
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\n", f);
    fclose(f);
    return path;
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/gw_config_test.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return strdup(tmpl);
}

static void test_all_keys(void **state)
{
    (void)state;
    char *dir = make_dir();
    char *ca = make_file(dir, "ca.pem"), *cert = make_file(dir, "cert.pem");
    char *key = make_file(dir, "key.pem");
    char text[4096];
    snprintf(text, sizeof text,
             "[gateway]\n"
             "listen = [::1]:9090\n"
             "log_level = debug\n"
             "max_body = 2MiB\n"
             "static_root = %s\n"                       /* 5 */
             "[session]\n"
             "poll_timeout = 30s\n"
             "heartbeat = 10s\n"
             "idle_timeout = 1m\n"
             "max_lifetime = 2h\n"                      /* 10 */
             "buffer_bytes = 512KiB\n"
             "buffer_messages = 500\n"
             "overflow = drop-oldest\n"
             "send_buffer_bytes = 256KiB\n"
             "max_batch = 50\n"                         /* 15 */
             "max_sessions = 5000\n"
             "max_sessions_per_client = 10\n"
             "max_buffered_bytes = 2GiB\n"
             "[upstream]\n"
             "connect_timeout = 1500ms\n"               /* 20 */
             "ping_interval = 0\n"
             "max_message = 64KiB\n"
             "tls_ca_file = %s\n"
             "tls_verify = off\n"
             "tls_cert_file = %s\n"                     /* 25 */
             "tls_key_file = %s\n"
             "[route chat]\n"
             "path = /chat/\n"
             "upstream = wss://example.com:8443/ws?x=1\n"
             "origins = https://app.example.com, http://localhost:3000\n" /* 30 */
             "forward_headers = Cookie, X-Request-Id\n"
             "forward_origin = on\n"
             "protocols = chat.v2, chat.v1\n"
             "[route second route]\n"
             "path = /\n"                               /* 35 */
             "upstream = ws://[::1]:9000/\n"
             "origins = *\n"
             "forward_headers =\n",
             dir, ca, cert, key);
    struct gw_diag d = { 0 };
    struct gw_config *c = parse(text, &d);
    if (!c)
        dump(&d);
    assert_non_null(c);
    assert_string_equal(c->listen_host, "::1");
    assert_int_equal(c->listen_port, 9090);
    assert_int_equal(c->log_level, GW_LOG_DEBUG);
    assert_int_equal(c->max_body, 2 << 20);
    assert_string_equal(c->static_root, dir);
    assert_int_equal(c->poll_timeout_ms, 30000);
    assert_int_equal(c->heartbeat_ms, 10000);
    assert_int_equal(c->idle_timeout_ms, 60000);
    assert_int_equal(c->max_lifetime_ms, 7200000);
    assert_int_equal(c->buffer_bytes, 512 << 10);
    assert_int_equal(c->buffer_messages, 500);
    assert_int_equal(c->overflow, GW_OVERFLOW_DROP_OLDEST);
    assert_int_equal(c->send_buffer_bytes, 256 << 10);
    assert_int_equal(c->max_batch, 50);
    assert_int_equal(c->max_sessions, 5000);
    assert_int_equal(c->max_sessions_per_client, 10);
    assert_int_equal(c->max_buffered_bytes, 2ULL << 30);
    assert_int_equal(c->connect_timeout_ms, 1500);
    assert_int_equal(c->ping_interval_ms, 0);
    assert_int_equal(c->max_message, 64 << 10);
    assert_string_equal(c->tls_ca_file, ca);
    assert_false(c->tls_verify);
    assert_string_equal(c->tls_cert_file, cert);
    assert_string_equal(c->tls_key_file, key);

    assert_int_equal(c->n_routes, 2);
    const struct gw_route *r = &c->routes[0];
    assert_string_equal(r->name, "chat");
    assert_int_equal(r->line, 27);
    assert_string_equal(r->path, "/chat");
    assert_string_equal(r->upstream, "wss://example.com:8443/ws?x=1");
    assert_int_equal(r->n_origins, 2);
    assert_string_equal(r->origins[0], "https://app.example.com");
    assert_string_equal(r->origins[1], "http://localhost:3000");
    assert_false(r->origins_any);
    assert_int_equal(r->n_forward_headers, 2);
    assert_string_equal(r->forward_headers[0], "Cookie");
    assert_string_equal(r->forward_headers[1], "X-Request-Id");
    assert_true(r->forward_origin);
    assert_string_equal(r->protocols, "chat.v2, chat.v1");

    r = &c->routes[1];
    assert_string_equal(r->name, "second route");
    assert_int_equal(r->line, 34);
    assert_string_equal(r->path, "/");
    assert_string_equal(r->upstream, "ws://[::1]:9000/");
    assert_true(r->origins_any);
    assert_int_equal(r->n_origins, 0);
    assert_int_equal(r->n_forward_headers, 0);
    assert_null(r->forward_headers);
    assert_false(r->forward_origin);
    assert_null(r->protocols);
    gw_config_free(c);

    unlink(ca);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    free(ca);
    free(cert);
    free(key);
    free(dir);
}

/* ------------------------------------------------- the shipped config file */

static const char *const all_keys[] = {
    "resolv_conf", "request_timeout",
    "listen", "log_level", "max_body", "static_root", "poll_timeout", "heartbeat",
    "idle_timeout", "max_lifetime", "buffer_bytes", "buffer_messages",
    "overflow", "send_buffer_bytes", "max_batch", "max_sessions",
    "max_sessions_per_client", "max_buffered_bytes", "connect_timeout",
    "ping_interval", "max_message", "tls_ca_file", "tls_verify",
    "tls_cert_file", "tls_key_file", "path", "upstream", "origins",
    "forward_headers", "forward_origin", "protocols", "sockjs", "sockjs_path",
    "sockjs_url", "response_limit", "disconnect_delay", "cookie_needed", "binary",
};

static void test_shipped_conf(void **state)
{
    (void)state;
    const char *src = getenv("POLLGATE_SRCDIR");
    if (!src)
        src = getenv("SRCDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/conf/pollgate.ini", src ? src : ".");
    struct gw_diag d = { 0 };
    struct gw_config *c = gw_config_load(path, &d);
    if (!c)
        dump(&d);
    assert_non_null(c);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->file, path);
    check_defaults(c);
    /* the shipped file serves the demo page, resolved next to conf/ */
    assert_non_null(c->static_root);
    assert_non_null(strstr(c->static_root, "contrib/www"));
    assert_int_equal(c->n_routes, 1);
    assert_string_equal(c->routes[0].name, "chat");
    assert_string_equal(c->routes[0].path, "/chat");
    assert_string_equal(c->routes[0].upstream, "ws://127.0.0.1:9000/chat");
    check_default_route_keys(&c->routes[0]);
    assert_true(c->routes[0].sockjs); /* the demo serves sockjs-client too */
    gw_config_free(c);

    /* Every key is shown, set (to its default), in the file. */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    for (size_t i = 0; i < sizeof all_keys / sizeof *all_keys; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\n%s =", all_keys[i]);
        if (!strstr(text, needle))
            fail_msg("conf/pollgate.ini does not set %s", all_keys[i]);
    }
}

/* ------------------------------------------------------------- errors */

#define LONG200 \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct {
    const char *text;
    int line; /* 0: file-wide */
    const char *needle;
} errors[] = {
    /* sections and syntax */
    { "[foo]\na = 1\n" ROUTE, 1, "[foo]: unknown section" },
    { "[session]\n[gateway]\n[session]\n" ROUTE, 3, "[session]: section repeated (first at line 1)" },
    { "[gateway\nlisten = x\n" ROUTE, 1, "missing ']' in section header" },
    { "[gateway] x\n" ROUTE, 1, "unexpected text after ']'" },
    { "[route]\npath = /x\n" ROUTE, 1, "[route]: a route needs a name" },
    { "listen = 1.2.3.4:80\n" ROUTE, 1, "listen: key outside of any section" },
    { "[gateway]\ninstance = a.1\n" ROUTE, 2, "[gateway] instance: 'a.1': expected 1 to 16 letters and digits" },
    { "[gateway]\ninstance = abcdefghijklmnopq\n" ROUTE, 2, "expected 1 to 16 letters and digits" },
    { "[admin]\nlisten = 9090\n" ROUTE, 2, "[admin] listen: '9090': expected HOST:PORT" },
    { "[admin]\nhealth_interval = 0\n" ROUTE, 2, "[admin] health_interval" },
    { ROUTE "[session]\nthis is not a key\n", 5, "syntax error" },
    { ROUTE "[session]\nheartbeat ;= 5s\n", 5, "syntax error" },
    { ROUTE "[session]\n = 5s\n", 5, "[session]: missing key name" },
    { ROUTE "[session]\nheartbeat = 5s\x01\n", 5, "control character 0x01" },
    { ROUTE "forward_headers = X-" LONG200 "\n", 4, "line too long (220 characters without comment; at most 198)" },
    { ROUTE "[session]\nheartbeat: 5s\n", 5, "syntax error" },
    /* keys */
    { "[session]\npoll_timeout = 5s\nfoo = 1\n" ROUTE, 3, "[session] foo: unknown key" },
    { "[session]\nheartbeat = 5s\n\nHeartbeat = 6s\n" ROUTE, 4, "[session] heartbeat: duplicate key (first set at line 2)" },
    { ROUTE "forward_origin = on\nforward_origin = off\n", 5, "[route r] forward_origin: duplicate key (first set at line 4)" },
    { "[session]\nheartbeat = 5s # five\n" ROUTE, 2, "'#' starts a comment only at the beginning of a line" },
    /* values of each type */
    { "[session]\npoll_timeout = 5 parsecs\n" ROUTE, 2, "[session] poll_timeout: invalid value '5 parsecs': expected a duration like 500ms, 25s, 5m, 1h" },
    { "[session]\npoll_timeout = 25\n" ROUTE, 2, "expected a duration like" },
    { "[gateway]\nmax_body = 1MB\n" ROUTE, 2, "[gateway] max_body: invalid value '1MB': expected a size like 512B, 64KiB, 1MiB, 1GiB" },
    { "[session]\nmax_batch = -1\n" ROUTE, 2, "expected a whole number" },
    { "[session]\nmax_batch = 99999999999999999999999\n" ROUTE, 2, "expected a whole number" },
    { "[upstream]\ntls_verify = maybe\n" ROUTE, 2, "[upstream] tls_verify: invalid value 'maybe': expected on or off" },
    { "[session]\noverflow = drop\n" ROUTE, 2, "expected one of: pause, drop-oldest, close" },
    { "[gateway]\nlog_level = loud\n" ROUTE, 2, "expected one of: error, warn, info, debug" },
    { "[session]\npoll_timeout = 11m\n" ROUTE, 2, "11m is out of range: must be between 1s and 10m" },
    { "[upstream]\nping_interval = 500ms\n" ROUTE, 2, "must be 0 or between 1s and 1h" },
    { "[upstream]\nmax_message = 100B\n" ROUTE, 2, "must be between 125B and 1GiB" },
    { "[gateway]\nlisten = 8080\n" ROUTE, 2, "[gateway] listen: '8080': expected HOST:PORT" },
    /* routes */
    { ROUTE "[route r]\npath = /x\nupstream = ws://h/\n", 4, "[route r]: duplicate route name (first defined at line 1)" },
    { ROUTE "[route s]\npath = /r/\nupstream = ws://h/\n", 5, "[route s] path: /r is already used by [route r] at line 2" },
    { "[route r]\nupstream = ws://h/\n", 1, "[route r] path: required key missing" },
    { "[route r]\npath = /r\n", 1, "[route r] upstream: required key missing" },
    { "[route r]\npath = r\nupstream = ws://h/\n", 2, "'r' must start with '/'" },
    { "[route r]\npath =\nupstream = ws://h/\n", 2, "[route r] path: '' must start with '/'" }, /* fuzz */
    { "[route r]\npath = /a b\nupstream = ws://h/\n", 2, "may not contain spaces" },
    { "[route r]\npath = /a?b\nupstream = ws://h/\n", 2, "may not contain spaces, '?' or '#'" },
    { "[route r]\npath = /r\nupstream = http://h/\n", 3, "[route r] upstream: invalid URL 'http://h/': expected ws://" },
    { "[route r]\npath = /r\nupstream = ws:///x\n", 3, "missing host" },
    { "[route r]\npath = /r\nupstream = ws://:80/x\n", 3, "missing host" },
    { "[route r]\npath = /r\nupstream = ws://h:0/\n", 3, "invalid URL 'ws://h:0/'" },
    { "[route r]\npath = /r\nupstream = ws://h:65536/\n", 3, "invalid URL" },
    { "[route r]\npath = /r\nupstream = ws://user@h/\n", 3, "invalid URL" },
    { "[route r]\npath = /r\nupstream =\n", 3, "invalid URL ''" },
    { ROUTE "origins = example.com\n", 4, "[route r] origins: 'example.com' is not an origin: expected * or scheme://host[:port]" },
    { ROUTE "origins = https://a.com/app\n", 4, "must not have a path: write https://a.com" },
    { ROUTE "origins = https://a.com:0\n", 4, "is not an origin" },
    { ROUTE "origins = https://a.com:99999\n", 4, "is not an origin" },
    { ROUTE "origins = https://[zz]\n", 4, "is not an origin" },
    { ROUTE "origins = https://\n", 4, "is not an origin" },
    { ROUTE "origins = *, https://a.com\n", 4, "'*' (any origin) cannot be combined with other origins" },
    { ROUTE "origins = https://a.com, HTTPS://A.com\n", 4, "'https://a.com' is listed twice" },
    { ROUTE "forward_headers = Cookie, X Y\n", 4, "[route r] forward_headers: 'X Y' is not a valid header name" },
    { ROUTE "forward_headers = X-A:b\n", 4, "is not a valid header name" },
    { ROUTE "forward_headers = Sec-WebSocket-Key\n", 4, "cannot be forwarded" },
    { ROUTE "forward_headers = host\n", 4, "'host' cannot be forwarded" },
    { ROUTE "forward_headers = Cookie, Connection\n", 4, "[route r] forward_headers: 'Connection' cannot be forwarded" },
    { ROUTE "forward_headers = upgrade\n", 4, "'upgrade' cannot be forwarded" },
    { ROUTE "forward_headers = Keep-Alive\n", 4, "'Keep-Alive' cannot be forwarded" },
    { ROUTE "forward_headers = TE\n", 4, "'TE' cannot be forwarded" },
    { ROUTE "forward_headers = Transfer-Encoding\n", 4, "'Transfer-Encoding' cannot be forwarded" },
    { ROUTE "forward_headers = Proxy-Authorization\n", 4, "'Proxy-Authorization' cannot be forwarded" },
    { ROUTE "forward_headers = proxy-connection\n", 4, "'proxy-connection' cannot be forwarded" },
    { ROUTE "forward_headers = Sec-WebSocket-Protocol\n", 4, "'Sec-WebSocket-Protocol' cannot be forwarded" },
    { ROUTE "forward_headers = sec-websocket-extensions\n", 4, "cannot be forwarded" },
    { ROUTE "forward_headers = X-Forwarded-For\n", 4, "'X-Forwarded-For' cannot be forwarded" },
    { ROUTE "forward_headers = X-Real-IP\n", 4, "'X-Real-IP' cannot be forwarded" },
    { ROUTE "forward_headers = Origin\n", 4, "use forward_origin = on" },
    { ROUTE "forward_headers = Cookie, cookie\n", 4, "'cookie' is listed twice" },
    { ROUTE "protocols = a b\n", 4, "'a b' is not a valid subprotocol name" },
    { ROUTE "protocols = a,,b\n", 4, "expected subprotocol names separated by commas" },
    { ROUTE "protocols = v1, v1\n", 4, "'v1' is listed twice" },
    { "", 0, "no [route NAME] section" },
    { "[gateway]\n", 0, "no [route NAME] section" },
    /* TLS files */
    { "[upstream]\ntls_ca_file = /nonexistent/ca.pem\n[route r]\npath = /r\nupstream = wss://h/\n",
      2, "[upstream] tls_ca_file: cannot read /nonexistent/ca.pem: No such file or directory (needed by wss:// [route r] at line 3)" },
    { "[upstream]\ntls_ca_file = /tmp\n[route r]\npath = /r\nupstream = wss://h/\n", 2, "cannot read /tmp: is a directory" },
    { "[gateway]\nstatic_root = /nonexistent/www\n" ROUTE, 2,
      "[gateway] static_root: cannot use /nonexistent/www: No such file or directory" },
    { "[gateway]\nstatic_root = /etc/passwd\n" ROUTE, 2, "cannot use /etc/passwd: not a directory" },
    { ROUTE "[upstream]\ntls_cert_file = /etc/passwd\n", 5, "[upstream] tls_cert_file: tls_key_file is required too" },
    { ROUTE "[upstream]\n\ntls_key_file = /etc/passwd\n", 6, "[upstream] tls_key_file: tls_cert_file is required too" },
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
        expect_error(errors[i].text, errors[i].line, errors[i].needle);
    }
}

static void test_tls_files_unreadable(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    const char *text = ROUTE "[upstream]\ntls_cert_file = /nonexistent/c.pem\n"
                       "tls_key_file = /tmp\n";
    assert_null(parse(text, &d));
    assert_int_equal(d.n, 2);
    assert_non_null(strstr(d.msgs[0], NAME ":5: [upstream] tls_cert_file: cannot read "
                                      "/nonexistent/c.pem: No such file"));
    assert_non_null(strstr(d.msgs[1], NAME ":6: [upstream] tls_key_file: cannot read "
                                      "/tmp: is a directory"));
    gw_diag_free(&d);
    /* /dev/null exists but is no regular file: refused without opening */
    assert_null(parse(ROUTE "[upstream]\ntls_cert_file = /dev/null\n"
                      "tls_key_file = /dev/null\n", &d));
    assert_int_equal(d.n, 2);
    assert_non_null(strstr(d.msgs[0], ":5: [upstream] tls_cert_file: cannot read "
                                      "/dev/null: not a regular file"));
    assert_non_null(strstr(d.msgs[1], ":6: [upstream] tls_key_file: cannot read "
                                      "/dev/null: not a regular file"));
    gw_diag_free(&d);
    /* the CA file only matters to wss:// routes */
    expect_ok("[upstream]\ntls_ca_file = /nonexistent/ca.pem\n" ROUTE);
}

static void test_multiple_errors(void **state)
{
    (void)state;
    static const char text[] =
        "[gateway]\n"
        "listen = 127.0.0.1:0\n"          /* 2 */
        "bogus = 1\n"                     /* 3 */
        "[session]\n"
        "poll_timeout = 1 hour\n"         /* 5 */
        "poll_timeout = 1h\n"             /* 6 */
        "[nope]\n"                        /* 7 */
        "whatever = 1\n"
        "[route a]\n"                     /* 9: no upstream */
        "path = /a\n"
        "[route b]\n"
        "path = /a\n"                     /* 12: same path */
        "upstream = ftp://x/\n";          /* 13 */
    static const char *const want[] = {
        NAME ":2: [gateway] listen: invalid port '0': must be between 1 and 65535",
        NAME ":3: [gateway] bogus: unknown key",
        NAME ":5: [session] poll_timeout: invalid value '1 hour': expected a duration like 500ms, 25s, 5m, 1h",
        NAME ":6: [session] poll_timeout: duplicate key (first set at line 5)",
        NAME ":7: [nope]: unknown section",
        NAME ":9: [route a] upstream: required key missing",
        NAME ":12: [route b] path: /a is already used by [route a] at line 10",
        NAME ":13: [route b] upstream: invalid URL 'ftp://x/'",
    };
    struct gw_diag d = { 0 };
    assert_null(parse(text, &d));
    if (d.n != sizeof want / sizeof *want)
        dump(&d);
    assert_int_equal(d.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < d.n; i++)
        if (strncmp(d.msgs[i], want[i], strlen(want[i])) != 0)
            fail_msg("diag[%zu] = \"%s\", want \"%s...\"", i, d.msgs[i], want[i]);
    /* a second failure appends to the same diag */
    assert_null(parse("", &d));
    assert_int_equal(d.n, sizeof want / sizeof *want + 1);
    gw_diag_free(&d);
    assert_int_equal(d.n, 0);
    assert_null(d.msgs);
}

static void test_error_cap(void **state)
{
    (void)state;
    static char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, "[session]\n");
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "bogus%d = 1\n", i);
    snprintf(text + n, sizeof text - n, ROUTE);
    struct gw_diag d = { 0 };
    assert_null(parse(text, &d));
    assert_int_equal(d.n, 101);
    assert_non_null(strstr(d.msgs[0], NAME ":2: [session] bogus0: unknown key"));
    assert_non_null(strstr(d.msgs[99], NAME ":101: [session] bogus99: unknown key"));
    assert_string_equal(d.msgs[100], NAME ": 50 more errors not listed");
    gw_diag_free(&d);
}

static void test_limits(void **state)
{
    (void)state;
    size_t cap = 1100 * 48, n = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t last = 0;
    for (int i = 0; i < 1001; i++) {
        last = n;
        n += (size_t)snprintf(text + n, cap - n, "[route r%d]\npath = /%d\nupstream = ws://h/\n",
                              i, i);
    }
    expect_error(text, 3001, "too many routes (at most 1000)");
    text[last] = 0; /* without the last route: 1000 are fine */
    struct gw_config *c = parse(text, NULL);
    assert_non_null(c);
    assert_int_equal(c->n_routes, 1000);
    gw_config_free(c);

    n = (size_t)snprintf(text, cap, ROUTE "forward_headers = X-0");
    for (int i = 1; i < 1001; i++)
        n += (size_t)snprintf(text + n, cap - n, ",\n  X-%d", i);
    snprintf(text + n, cap - n, "\n");
    expect_error(text, 1004, "[route r] forward_headers: too many entries (at most 1000)");
    free(text);
}

static void test_null_diag(void **state)
{
    (void)state;
    assert_null(gw_config_parse_string("[foo]\n", NULL, NULL));
    assert_null(gw_config_parse_string(NULL, NULL, NULL));
    assert_null(gw_config_load("/nonexistent/pollgate.ini", NULL));
    struct gw_config *c = gw_config_parse_string(ROUTE, NULL, NULL);
    assert_non_null(c);
    assert_string_equal(c->file, "<string>");
    gw_config_free(c);
    gw_config_free(NULL);
    gw_diag_free(NULL);
}

/* ------------------------------------------------------ ranges and units */

#define OFF(f) offsetof(struct gw_config, f)
#define NO_FIELD ((size_t)-1)

static const struct {
    const char *sec, *key;
    const char *min_ok, *below, *max_ok, *above;
    size_t off;          /* uint64_t field, or NO_FIELD */
    uint64_t min, max;   /* stored values of min_ok / max_ok */
} ranges[] = {
    { "gateway", "max_body", "1KiB", "1023", "1GiB", "1073741825", OFF(max_body), 1024, 1ULL << 30 },
    { "gateway", "listen_backlog", "1", "0", "65535", "65536", OFF(listen_backlog), 1, 65535 },
    { "session", "poll_timeout", "1s", "999ms", "10m", "600001ms", OFF(poll_timeout_ms), 1000, 600000 },
    { "session", "heartbeat", "1000ms", "999ms", "600s", "601s", OFF(heartbeat_ms), 1000, 600000 },
    { "session", "idle_timeout", "1s", "999ms", "24h", "1441m", OFF(idle_timeout_ms), 1000, 86400000 },
    { "session", "max_lifetime", "1s", "999ms", "8760h", "8761h", OFF(max_lifetime_ms), 1000, 8760ULL * 3600000 },
    { "session", "buffer_bytes", "1KiB", "1023B", "1GiB", "1025MiB", OFF(buffer_bytes), 1024, 1ULL << 30 },
    { "session", "buffer_messages", "1", "0", "10000000", "10000001", OFF(buffer_messages), 1, 10000000 },
    { "session", "send_buffer_bytes", "1024", "1023", "1073741824", "1073741825", OFF(send_buffer_bytes), 1024, 1ULL << 30 },
    { "session", "max_batch", "1", "0", "1000000", "1000001", OFF(max_batch), 1, 1000000 },
    { "session", "max_sessions", "1", "0", "10000000", "10000001", OFF(max_sessions), 1, 10000000 },
    { "session", "max_sessions_per_client", "1", "0", "10000000", "10000001", OFF(max_sessions_per_client), 1, 10000000 },
    { "session", "max_buffered_bytes", "1KiB", "1023", "1024GiB", "1099511627777", OFF(max_buffered_bytes), 1024, 1ULL << 40 },
    { "upstream", "connect_timeout", "100ms", "99ms", "10m", "600001ms", OFF(connect_timeout_ms), 100, 600000 },
    { "upstream", "ping_interval", "1s", "999ms", "1h", "3600001ms", OFF(ping_interval_ms), 1000, 3600000 },
    { "upstream", "max_message", "125B", "124", "1GiB", "1073741825", OFF(max_message), 125, 1ULL << 30 },
    { "gateway", "listen", "127.0.0.1:1", "127.0.0.1:0", "127.0.0.1:65535", "127.0.0.1:65536", NO_FIELD, 1, 65535 },
};

static struct gw_config *parse_one(const char *sec, const char *key,
                                   const char *value, struct gw_diag *d)
{
    char text[512];
    snprintf(text, sizeof text, "[%s]\n%s = %s\n" ROUTE, sec, key, value);
    return parse(text, d);
}

static void check_value(size_t i, const char *value, uint64_t want)
{
    struct gw_diag d = { 0 };
    struct gw_config *c = parse_one(ranges[i].sec, ranges[i].key, value, &d);
    if (!c)
        dump(&d);
    assert_non_null(c);
    if (ranges[i].off != NO_FIELD)
        assert_int_equal(*(uint64_t *)(void *)((char *)c + ranges[i].off), want);
    else
        assert_int_equal(c->listen_port, want);
    gw_config_free(c);
}

static void check_out_of_range(size_t i, const char *value)
{
    struct gw_diag d = { 0 };
    char want[128];
    assert_null(parse_one(ranges[i].sec, ranges[i].key, value, &d));
    assert_int_equal(d.n, 1);
    snprintf(want, sizeof want, NAME ":2: [%s] %s: ", ranges[i].sec, ranges[i].key);
    assert_memory_equal(d.msgs[0], want, strlen(want));
    if (!strstr(d.msgs[0], "out of range") && !strstr(d.msgs[0], "invalid port"))
        fail_msg("%s", d.msgs[0]);
    gw_diag_free(&d);
}

static void test_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
        check_value(i, ranges[i].min_ok, ranges[i].min);
        check_out_of_range(i, ranges[i].below);
        check_value(i, ranges[i].max_ok, ranges[i].max);
        check_out_of_range(i, ranges[i].above);
    }
    /* 0 means "unlimited" / "disabled" where documented */
    struct gw_config *c = gw_config_parse_string(
        "[session]\nmax_lifetime = 0s\n[upstream]\nping_interval = 0ms\n" ROUTE,
        NAME, NULL);
    assert_non_null(c);
    assert_int_equal(c->max_lifetime_ms, 0);
    assert_int_equal(c->ping_interval_ms, 0);
    gw_config_free(c);
    expect_error("[session]\npoll_timeout = 0\n" ROUTE, 2, "out of range");
}

static void test_units(void **state)
{
    (void)state;
    static const struct {
        const char *key, *value;
        size_t off;
        uint64_t want;
    } units[] = {
        { "heartbeat", "1500ms", OFF(heartbeat_ms), 1500 },
        { "heartbeat", "2s", OFF(heartbeat_ms), 2000 },
        { "heartbeat", "3m", OFF(heartbeat_ms), 180000 },
        { "idle_timeout", "2h", OFF(idle_timeout_ms), 7200000 },
        { "idle_timeout", "2 H", OFF(idle_timeout_ms), 7200000 },
        { "buffer_bytes", "2048", OFF(buffer_bytes), 2048 },
        { "buffer_bytes", "2048B", OFF(buffer_bytes), 2048 },
        { "buffer_bytes", "3KiB", OFF(buffer_bytes), 3072 },
        { "buffer_bytes", "3 mib", OFF(buffer_bytes), 3 << 20 },
    };
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        struct gw_config *c = parse_one("session", units[i].key, units[i].value, NULL);
        assert_non_null(c);
        assert_int_equal(*(uint64_t *)(void *)((char *)c + units[i].off), units[i].want);
        gw_config_free(c);
    }
}

/* ------------------------------------------------------------- listen */

static void test_listen_good(void **state)
{
    (void)state;
    static const struct {
        const char *value, *host;
        unsigned port;
    } good[] = {
        { "[::1]:8080", "::1", 8080 },
        { "[::]:80", "::", 80 },
        { "[2001:db8::17]:443", "2001:db8::17", 443 },
        { "[::ffff:10.0.0.1]:1", "::ffff:10.0.0.1", 1 },
        { "0.0.0.0:65535", "0.0.0.0", 65535 },
        { "localhost:8080", "localhost", 8080 },
        { "gw-1.internal:80", "gw-1.internal", 80 },
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct gw_diag d = { 0 };
        struct gw_config *c = parse_one("gateway", "listen", good[i].value, &d);
        if (!c)
            dump(&d);
        assert_non_null(c);
        assert_string_equal(c->listen_host, good[i].host);
        assert_int_equal(c->listen_port, good[i].port);
        gw_config_free(c);
    }
}

static void test_listen_bad(void **state)
{
    (void)state;
    static const struct {
        const char *value, *needle;
    } bad[] = {
        { "8080", "expected HOST:PORT" },
        { "host:", "missing port" },
        { ":8080", "missing host" },
        { "[::1", "missing ']'" },
        { "[::1]", "expected ':PORT' after ']'" },
        { "[::1]8080", "expected ':PORT' after ']'" },
        { "[::1]:", "missing port" },
        { "::1:8080", "must be in brackets" },
        { "[zz::1]:80", "not an IPv6 address" },
        { "[]:80", "not an IPv6 address" },
        { "127.0.0.1:0", "invalid port '0'" },
        { "127.0.0.1:65536", "invalid port '65536'" },
        { "127.0.0.1:080000", "invalid port" },
        { "127.0.0.1:http", "invalid port 'http'" },
        { "127.0.0.1:-1", "invalid port" },
        { "127.0.0.1:+80", "invalid port" },
        { "ho st:80", "not an IP address or host name" },
        { "h/x:80", "not an IP address or host name" },
        { "", "expected HOST:PORT" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[256], want[128];
        snprintf(text, sizeof text, "[gateway]\nlisten = %s\n" ROUTE, bad[i].value);
        snprintf(want, sizeof want, "[gateway] listen: ");
        expect_error(text, 2, want);
        expect_error(text, 2, bad[i].needle);
    }
}

/* "listen" and "tls_listen" take comma-separated lists. */
static void test_listen_list(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    struct gw_config *c = parse("[gateway]\nlisten = 127.0.0.1:8080, [::1]:8081 ,"
                                "0.0.0.0:9\n" ROUTE, &d);
    if (!c)
        dump(&d);
    assert_non_null(c);
    assert_int_equal(c->n_listen, 3);
    assert_string_equal(c->listen[0].host, "127.0.0.1");
    assert_int_equal(c->listen[0].port, 8080);
    assert_string_equal(c->listen[1].host, "::1");
    assert_int_equal(c->listen[1].port, 8081);
    assert_string_equal(c->listen[2].host, "0.0.0.0");
    assert_int_equal(c->listen[2].port, 9);
    assert_int_equal(c->n_tls_listen, 0);
    /* the first address is the one logged */
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    gw_config_free(c);
    /* a bad second item names that item; the same address twice is refused */
    expect_error("[gateway]\nlisten = 127.0.0.1:80, [::1]:0\n" ROUTE, 2,
                 "[gateway] listen: invalid port '0'");
    expect_error("[gateway]\nlisten = 127.0.0.1:80, 127.0.0.1:80\n" ROUTE, 2,
                 "listed twice");
    expect_error("[gateway]\ntls_listen = 127.0.0.1:80,:1\n" ROUTE, 2,
                 "[gateway] tls_listen: ':1': missing host");
}

/* [gateway] tls_cert_file/tls_key_file are the browsers' certificate,
 * distinct from [upstream]'s client certificate. */
static void test_front_tls(void **state)
{
    (void)state;
    expect_error("[gateway]\ntls_listen = 127.0.0.1:8443\n" ROUTE, 2,
                 "[gateway] tls_listen: tls_cert_file and tls_key_file are required");
    expect_error("[gateway]\ntls_listen = 127.0.0.1:8443\ntls_cert_file = /etc/hostname\n"
                 ROUTE, 2, "[gateway] tls_listen: tls_key_file is required too");
    struct gw_diag d = { 0 };
    assert_null(parse("[gateway]\ntls_listen = 127.0.0.1:8443\n"
                      "tls_cert_file = /nonexistent/c.pem\n"
                      "tls_key_file = /nonexistent/k.pem\n" ROUTE, &d));
    assert_int_equal(d.n, 2);
    assert_non_null(strstr(d.msgs[0], NAME ":3: [gateway] tls_cert_file: cannot read "
                                      "/nonexistent/c.pem"));
    assert_non_null(strstr(d.msgs[1], NAME ":4: [gateway] tls_key_file: cannot read "
                                      "/nonexistent/k.pem"));
    gw_diag_free(&d);
    expect_error("[gateway]\ntls_cert_file = /nonexistent/c.pem\n" ROUTE, 2,
                 "[gateway] tls_cert_file: set but tls_listen is empty");
    /* a readable file that is no certificate: reported on its line */
    char path[] = "/tmp/pg_cert_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a certificate\n", 18), 18);
    close(fd);
    char text[512];
    snprintf(text, sizeof text, "[gateway]\ntls_listen = 127.0.0.1:8443\n"
             "tls_cert_file = %s\ntls_key_file = %s\n" ROUTE, path, path);
    expect_error(text, 3, "[gateway] tls_cert_file: cannot load certificate");
    unlink(path);
}

/* ------------------------------------------------- INI syntax details */

static void test_continuation(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    struct gw_config *c = parse(
        ROUTE
        "origins = https://a.example,\n"          /* 4 */
        "    HTTPS://B.example:443  ; staging\n"  /* continues: comment stripped */
        "\thttp://c.example:8080,\n"
        "forward_headers = X-A\n"
        "  forward_origin = on\n"                 /* indented key: not a value */
        "protocols = v1\n",
        &d);
    if (!c)
        dump(&d);
    assert_non_null(c);
    const struct gw_route *r = &c->routes[0];
    assert_int_equal(r->n_origins, 3);
    assert_string_equal(r->origins[0], "https://a.example");
    assert_string_equal(r->origins[1], "https://b.example");
    assert_string_equal(r->origins[2], "http://c.example:8080");
    assert_int_equal(r->n_forward_headers, 1);
    assert_string_equal(r->forward_headers[0], "X-A");
    assert_true(r->forward_origin);
    assert_string_equal(r->protocols, "v1");
    gw_config_free(c);

    /* only lists continue; a blank line or comment ends a list */
    expect_error("[session]\nheartbeat = 5s\n   10s\n" ROUTE, 3, "syntax error");
    expect_error(ROUTE "origins = https://a.com\n\n   https://b.com\n", 6, "syntax error");
    expect_error(ROUTE "origins = https://a.com\n; note\n   https://b.com\n", 6, "syntax error");
    /* a bad item on a continuation line is reported on that line */
    expect_error(ROUTE "origins = https://a.com,\n   b.com\n", 5,
                 "[route r] origins: 'b.com' is not an origin");
    expect_error(ROUTE "origins = https://a.com,\n   https://a.com\n", 5, "listed twice");
    expect_error(ROUTE "origins = https://a.com,\n   *\n", 4, "'*' (any origin) cannot");
}

static void test_lines_after_long_line(void **state)
{
    (void)state;
    /* Fed to inih directly, the 300-byte line would be cut in pieces that
     * parse as extra lines; every later line number must still be right. */
    char text[1024];
    snprintf(text, sizeof text, "[session]\nheartbeat = 5s%s%s\n"
             "poll_timeout = 0s\n\n\nfoo = 1\n" ROUTE, LONG200, LONG200);
    struct gw_diag d = { 0 };
    assert_null(parse(text, &d));
    assert_int_equal(d.n, 3);
    assert_non_null(strstr(d.msgs[0], NAME ":2: line too long"));
    assert_non_null(strstr(d.msgs[1], NAME ":3: [session] poll_timeout: 0s is out of range"));
    assert_non_null(strstr(d.msgs[2], NAME ":6: [session] foo: unknown key"));
    gw_diag_free(&d);

    /* the longest accepted line: 198 characters; comments are not limited */
    char ok[2048], tok[200];
    memset(tok, 'a', sizeof tok);
    snprintf(ok, sizeof ok, "; %s%s\n" ROUTE "protocols = %.*s  ; %s%s\n", LONG200,
             LONG200, 198 - 12, tok, LONG200, LONG200);
    expect_ok(ok);
    snprintf(ok, sizeof ok, ROUTE "protocols = %.*s\n", 198 - 11, tok);
    expect_error(ok, 4, "line too long (199 characters");
}

static void test_syntax_details(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    /* BOM, CRLF, inline comments, case-insensitive keys,
     * sections and values, spaces around everything */
    struct gw_config *c = parse(
        "\xEF\xBB\xBF; comment\r\n"
        "# comment\r\n"
        "  [ Gateway ]  ; the front\r\n"
        "LOG_LEVEL = Debug ; inline\r\n"
        "max_body =2MiB\r\n"
        "\t[session]\r\n"
        "   overflow   =   CLOSE   \r\n"
        "[route  my route ]\r\n"
        "path=/r\r\n"
        "upstream=ws://h/x;y\r\n",
        &d);
    if (!c)
        dump(&d);
    assert_non_null(c);
    assert_int_equal(c->log_level, GW_LOG_DEBUG);
    assert_int_equal(c->max_body, 2 << 20);
    assert_int_equal(c->overflow, GW_OVERFLOW_CLOSE);
    assert_string_equal(c->routes[0].name, "my route");
    assert_int_equal(c->routes[0].line, 8);
    assert_string_equal(c->routes[0].upstream, "ws://h/x;y"); /* ';' needs a blank */
    gw_config_free(c);

    /* a file without a final newline */
    expect_ok("[route r]\npath = /r\nupstream = ws://h/");
    /* booleans */
    static const char *const yes[] = { "on", "yes", "true", "1", "ON", "True" };
    static const char *const no[] = { "off", "no", "false", "0", "OFF", "No" };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        c = parse_one("upstream", "tls_verify", no[i], NULL);
        assert_false(c->tls_verify);
        gw_config_free(c);
        char text[128];
        snprintf(text, sizeof text, ROUTE "forward_origin = %s\n", yes[i]);
        c = parse(text, NULL);
        assert_true(c->routes[0].forward_origin);
        gw_config_free(c);
    }
}

static void test_log_level_names(void **state)
{
    (void)state;
    static const char *const names[] = { "error", "warn", "info", "debug" };
    for (size_t i = 0; i < 4; i++) {
        struct gw_config *c = parse_one("gateway", "log_level", names[i], NULL);
        assert_non_null(c);
        assert_int_equal(c->log_level, gw_log_level_parse(names[i]));
        gw_config_free(c);
    }
}

static void test_normalisation(void **state)
{
    (void)state;
    /* "/" and "//" are both the root prefix */
    expect_error("[route b]\npath = /\nupstream = ws://h/\n"
                 "[route c]\npath = //\nupstream = ws://h/\n", 5,
                 "/ is already used by [route b] at line 2");
    struct gw_config *c = parse("[route a]\npath = /a//\nupstream = ws://h/\n"
              "origins = https://Example.COM:443, http://a.com:80, http://b.com:8080, "
              "https://[::1]:3000, chrome-extension://abc\n"
              "[route b]\npath = /\nupstream = ws://h/\norigins = *\n",
              NULL);
    assert_non_null(c);
    const struct gw_route *a = &c->routes[0], *b = &c->routes[1];
    assert_string_equal(a->path, "/a");
    assert_int_equal(a->n_origins, 5);
    assert_string_equal(a->origins[0], "https://example.com");
    assert_string_equal(a->origins[1], "http://a.com");
    assert_string_equal(a->origins[2], "http://b.com:8080");
    assert_string_equal(a->origins[3], "https://[::1]:3000");
    assert_string_equal(a->origins[4], "chrome-extension://abc");
    assert_string_equal(b->path, "/");
    assert_true(b->origins_any);
    assert_int_equal(b->n_origins, 0);
    assert_null(b->origins);
    gw_config_free(c);
}

/* ------------------------------------------------------------- files */

static void test_load(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    assert_null(gw_config_load("/nonexistent/pollgate.ini", &d));
    assert_int_equal(d.n, 1);
    assert_string_equal(d.msgs[0], "/nonexistent/pollgate.ini: cannot open: "
                                   "No such file or directory");
    gw_diag_free(&d);
    assert_null(gw_config_load("/tmp", &d));
    assert_int_equal(d.n, 1);
    assert_string_equal(d.msgs[0], "/tmp: cannot read: Is a directory");
    gw_diag_free(&d);

    /* relative TLS paths are relative to the config file's directory */
    char *dir = make_dir();
    char *cert = make_file(dir, "cert.pem"), *key = make_file(dir, "key.pem");
    char ini[512];
    snprintf(ini, sizeof ini, "%s/gw.ini", dir);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fputs("[upstream]\ntls_cert_file = cert.pem\ntls_key_file = key.pem\n"
          "[route r]\npath = /r\nupstream = wss://h/\nbogus = 1\n", f);
    fclose(f);
    assert_null(gw_config_load(ini, &d));
    assert_int_equal(d.n, 1);
    char want[600];
    snprintf(want, sizeof want, "%s:7: [route r] bogus: unknown key", ini);
    assert_string_equal(d.msgs[0], want);
    gw_diag_free(&d);
    f = fopen(ini, "w");
    assert_non_null(f);
    fputs("[upstream]\ntls_cert_file = cert.pem\ntls_key_file = key.pem\n"
          "[route r]\npath = /r\nupstream = wss://h/\n"
          "[gateway]\nstatic_root = www\n", f);
    fclose(f);
    char www[600];
    snprintf(www, sizeof www, "%s/www", dir);
    assert_null(gw_config_load(ini, &d)); /* www does not exist yet */
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.msgs[0], ":8: [gateway] static_root: cannot use "));
    assert_non_null(strstr(d.msgs[0], "/www: No such file or directory"));
    gw_diag_free(&d);
    assert_int_equal(mkdir(www, 0755), 0);
    struct gw_config *c = gw_config_load(ini, &d);
    assert_non_null(c);
    assert_string_equal(c->tls_cert_file, cert);
    assert_string_equal(c->tls_key_file, key);
    assert_string_equal(c->static_root, www);
    assert_string_equal(c->access_log, "off");      /* the defaults */
    assert_string_equal(c->error_log, "stderr");
    assert_int_equal(c->access_log_buffer, 1u << 20);
    gw_config_free(c);
    /* access_log/error_log: off and stderr are not paths; a relative path
     * is relative to the config file's directory, like the other files */
    for (int i = 0; i < 2; i++) {
        f = fopen(ini, "w");
        assert_non_null(f);
        fprintf(f, "[route r]\npath = /r\nupstream = ws://h/\n[gateway]\n"
                "access_log = %s\nerror_log = %s\naccess_log_buffer = 4KiB\n",
                i ? "logs/a.log" : "stderr", i ? "/var/e.log" : "stderr");
        fclose(f);
        c = gw_config_load(ini, &d);
        assert_non_null(c);
        char al[600];
        snprintf(al, sizeof al, "%s/logs/a.log", dir);
        assert_string_equal(c->access_log, i ? al : "stderr");
        assert_string_equal(c->error_log, i ? "/var/e.log" : "stderr");
        assert_int_equal(c->access_log_buffer, 4096);
        gw_config_free(c);
    }
    rmdir(www);
    unlink(ini);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    free(cert);
    free(key);
    free(dir);
}

/* ------------------------------------------- documentation from the tables */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    return text;
}

static char *doc(enum gw_config_doc_format fmt)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    assert_int_equal(gw_config_doc(f, fmt), 0);
    fclose(f);
    return out;
}

static const char *srcdir(void)
{
    const char *src = getenv("POLLGATE_SRCDIR");
    if (!src)
        src = getenv("SRCDIR");
    return src ? src : ".";
}

static void expect_same(const char *what, const char *want, const char *got)
{
    if (strcmp(want, got) == 0)
        return;
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    fail_msg("%s differs from the tables in gateway/gw_config.c at byte %zu "
             "(run make config-doc): generated '%.60s'", what, i, got + i);
}

/* The three committed copies are exactly what the tables generate. */
static void test_doc_in_sync(void **state)
{
    (void)state;
    char path[1024];
    char *ini = doc(GW_CONFIG_DOC_INI), *man = doc(GW_CONFIG_DOC_MAN);
    char *md = doc(GW_CONFIG_DOC_MARKDOWN);
    snprintf(path, sizeof path, "%s/conf/pollgate.ini", srcdir());
    expect_same("conf/pollgate.ini", read_all(path), ini);
    snprintf(path, sizeof path, "%s/contrib/man/pollgate.ini.5", srcdir());
    expect_same("contrib/man/pollgate.ini.5", read_all(path), man);
    snprintf(path, sizeof path, "%s/README.md", srcdir());
    char *readme = read_all(path);
    char *begin = strstr(readme, "<!-- config-doc begin -->\n");
    char *end = begin ? strstr(begin, "<!-- config-doc end -->") : NULL;
    assert_non_null(end);
    *end = 0;
    expect_same("README.md's configuration reference",
                begin + strlen("<!-- config-doc begin -->\n"), md);
    free(ini);
    free(man);
    free(md);
}

/* Whatever the copies say: every key is documented, with its default, in
 * every format, and the sample file sets every key. */
static void test_doc_every_key(void **state)
{
    (void)state;
    static const char *const defaults[] = {
        "127.0.0.1:8080", "info", "1MiB", "60s", "25s", "30s", "10000",
        "pause", "1000", "100000", "1GiB", "10s", "20s", "/sockjs.min.js",
        "128KiB", "5s", "close", "Cookie, Authorization, User-Agent, Accept-Language",
        "0 or 1s-8760h", "One of: error, warn, info, debug",
        "Size, 1KiB-1024GiB", "Duration, 100ms-10m", "Size, 125B-1GiB",
    };
    for (int fmt = GW_CONFIG_DOC_INI; fmt <= GW_CONFIG_DOC_MAN; fmt++) {
        char *text = doc((enum gw_config_doc_format)fmt);
        for (size_t i = 0; i < sizeof all_keys / sizeof *all_keys; i++) {
            char needle[64];
            snprintf(needle, sizeof needle, fmt == GW_CONFIG_DOC_INI ? "\n%s ="
                     : fmt == GW_CONFIG_DOC_MAN ? "\n.B %s\n" : "| `%s` |",
                     all_keys[i]);
            if (!strstr(text, needle))
                fail_msg("format %d does not document %s", fmt, all_keys[i]);
        }
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
            if (!strstr(text, defaults[i]))
                fail_msg("format %d does not show '%s'", fmt, defaults[i]);
        free(text);
    }
}

/* [admin] listen may be empty (no admin listener) but its port cannot be 0:
 * the reference says what the parser does, in every format. */
static void test_doc_admin_listen_range(void **state)
{
    (void)state;
    struct gw_diag d = { 0 };
    struct gw_config *c = parse_one("admin", "listen", "", &d);
    assert_non_null(c);
    assert_null(c->admin_listen_host);
    gw_config_free(c);
    gw_diag_free(&d);
    assert_null(parse_one("admin", "listen", "127.0.0.1:0", &d));
    gw_diag_free(&d);
    c = parse_one("admin", "listen", "127.0.0.1:1", &d);
    assert_non_null(c);
    gw_config_free(c);
    for (int fmt = GW_CONFIG_DOC_INI; fmt <= GW_CONFIG_DOC_MAN; fmt++) {
        char *text = doc((enum gw_config_doc_format)fmt);
        assert_non_null(strstr(text, "HOST:PORT, port 1-65535, or empty"));
        assert_null(strstr(text, "port 0"));
        free(text);
    }
}

/* The generated sample file loads (from a directory where its relative
 * static_root exists) and holds the defaults. */
static void test_doc_ini_loads(void **state)
{
    (void)state;
    char *ini = doc(GW_CONFIG_DOC_INI);
    char dir[] = "/tmp/pg_doc_XXXXXX", path[256], www[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/conf", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(www, sizeof www, "%s/contrib", dir);
    assert_int_equal(mkdir(www, 0700), 0);
    snprintf(www, sizeof www, "%s/contrib/www", dir);
    assert_int_equal(mkdir(www, 0700), 0);
    snprintf(path, sizeof path, "%s/conf/pollgate.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(ini, f);
    fclose(f);
    struct gw_diag d = { 0 };
    struct gw_config *c = gw_config_load(path, &d);
    if (!c)
        dump(&d);
    assert_non_null(c);
    check_defaults(c);
    check_default_route_keys(&c->routes[0]);
    gw_config_free(c);
    unlink(path);
    snprintf(path, sizeof path, "%s/conf", dir);
    rmdir(path);
    rmdir(www);
    snprintf(www, sizeof www, "%s/contrib", dir);
    rmdir(www);
    rmdir(dir);
    free(ini);
}

static void test_doc_formats(void **state)
{
    (void)state;
    enum gw_config_doc_format fmt = GW_CONFIG_DOC_INI;
    assert_int_equal(gw_config_doc_format_parse("markdown", &fmt), 0);
    assert_int_equal(fmt, GW_CONFIG_DOC_MARKDOWN);
    assert_int_equal(gw_config_doc_format_parse("man", &fmt), 0);
    assert_int_equal(fmt, GW_CONFIG_DOC_MAN);
    assert_int_equal(gw_config_doc_format_parse("ini", &fmt), 0);
    assert_int_equal(fmt, GW_CONFIG_DOC_INI);
    assert_int_equal(gw_config_doc_format_parse("html", &fmt), GW_EINVAL);
    assert_int_equal(gw_config_doc_format_parse("", &fmt), GW_EINVAL);
    assert_int_equal(gw_config_doc_format_parse(NULL, &fmt), GW_EINVAL);
    FILE *ro = fopen("/dev/null", "r"); /* writes fail */
    assert_non_null(ro);
    assert_int_equal(gw_config_doc(ro, GW_CONFIG_DOC_INI), GW_EIO);
    assert_int_equal(gw_config_doc(ro, (enum gw_config_doc_format)7), GW_EINVAL);
    fclose(ro);
    /* roff: no line of the page starts with a stray '.' or '\'' */
    char *man = doc(GW_CONFIG_DOC_MAN);
    assert_null(strstr(man, "\n'"));
    assert_non_null(strstr(man, ".TH POLLGATE.INI 5"));
    free(man);
}

/* A config lives while anyone holds a reference: the loader's plus one
 * per ref (ASan reports a leak or a double free otherwise). */
static void test_refcount(void **state)
{
    (void)state;
    struct gw_config *c = parse(ROUTE, NULL);
    assert_non_null(c);
    assert_int_equal(c->refs, 1);
    const struct gw_config *held = gw_config_ref(c);
    assert_ptr_equal(held, c);
    assert_int_equal(c->refs, 2);
    gw_config_free(c);             /* the loader's reference */
    assert_int_equal(held->refs, 1);
    assert_string_equal(held->routes[0].name, "r"); /* still alive */
    gw_config_unref(held);         /* the last one frees it */
    assert_null(gw_config_ref(NULL));
    gw_config_unref(NULL);
}

/* A reload keeps the keys read once at start: each differing one is
 * swapped back to the running value with one note; equal ones and the
 * reloadable ones are left alone. Swapping again restores both. */
static void test_keep_restart_keys(void **state)
{
    (void)state;
    struct gw_config *run = parse("[gateway]\nlisten = 127.0.0.1:8080\n"
                                  "instance = a1\nlog_level = info\n"
                                  "[admin]\nlisten = 127.0.0.1:9090\n" ROUTE, NULL);
    struct gw_config *next = parse("[gateway]\nlisten = 127.0.0.1:8081, [::1]:8081\n"
                                   "instance = b2\nlog_level = debug\nlisten_backlog = 99\n"
                                   "[session]\npoll_timeout = 5s\n"
                                   "[admin]\nlisten = 127.0.0.1:9090\n"
                                   "[upstream]\ntls_verify = off\n" ROUTE, NULL);
    assert_non_null(run);
    assert_non_null(next);
    struct gw_diag d = {0};
    assert_int_equal(gw_config_keep_restart_keys(next, run, &d), 4);
    assert_int_equal(d.n, 4);
    assert_non_null(strstr(d.msgs[0], "[gateway] listen changed: it needs a restart"));
    assert_non_null(strstr(d.msgs[1], "[gateway] listen_backlog changed"));
    assert_non_null(strstr(d.msgs[2], "[gateway] instance changed"));
    assert_non_null(strstr(d.msgs[3], "[upstream] tls_verify changed"));
    assert_non_null(strstr(d.msgs[0], NAME));
    gw_diag_free(&d);
    /* next runs with the running values, and its own reloadable ones */
    assert_int_equal(next->n_listen, 1);
    assert_int_equal(next->listen[0].port, 8080);
    assert_string_equal(next->listen_host, "127.0.0.1");
    assert_int_equal(next->listen_port, 8080);
    assert_string_equal(next->instance, "a1");
    assert_int_equal(next->listen_backlog, 4096);
    assert_true(next->tls_verify);
    assert_int_equal(next->log_level, GW_LOG_DEBUG);
    assert_int_equal(next->poll_timeout_ms, 5000);
    assert_int_equal(run->n_listen, 2);
    assert_int_equal(run->listen_port, 8081);
    assert_int_equal(run->listen_backlog, 99);
    /* and back: nothing else moved */
    assert_int_equal(gw_config_keep_restart_keys(run, next, NULL), 4);
    assert_int_equal(run->listen_port, 8080);
    assert_string_equal(run->instance, "a1");
    assert_int_equal(run->log_level, GW_LOG_INFO);
    assert_int_equal(gw_config_keep_restart_keys(run, run, NULL), 0);
    gw_config_free(run);
    gw_config_free(next);
}

static void test_route_equal(void **state)
{
    (void)state;
    struct gw_config *a = parse(ROUTE "[route s]\npath = /s\n"
                                "upstream = ws://127.0.0.1:9000/s\n"
                                "origins = https://a.example\n", NULL);
    struct gw_config *b = parse(ROUTE "[route s]\npath = /s\n"
                                "upstream = ws://127.0.0.1:9000/s\n"
                                "origins = https://b.example\n", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(gw_route_equal(&a->routes[0], &b->routes[0]));
    assert_false(gw_route_equal(&a->routes[1], &b->routes[1]));
    assert_false(gw_route_equal(&a->routes[0], &a->routes[1]));
    assert_ptr_equal(gw_config_route(b, "s"), &b->routes[1]);
    assert_null(gw_config_route(b, "t"));
    gw_config_free(a);
    gw_config_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_admin_instance),
        cmocka_unit_test(test_all_keys),
        cmocka_unit_test(test_shipped_conf),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tls_files_unreadable),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_null_diag),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_listen_good),
        cmocka_unit_test(test_listen_bad),
        cmocka_unit_test(test_listen_list),
        cmocka_unit_test(test_front_tls),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_lines_after_long_line),
        cmocka_unit_test(test_doc_in_sync),
        cmocka_unit_test(test_doc_every_key),
        cmocka_unit_test(test_doc_admin_listen_range),
        cmocka_unit_test(test_doc_ini_loads),
        cmocka_unit_test(test_doc_formats),
        cmocka_unit_test(test_syntax_details),
        cmocka_unit_test(test_log_level_names),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_keep_restart_keys),
        cmocka_unit_test(test_route_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

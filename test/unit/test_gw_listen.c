/* Unit tests for gw_listen, the listening sockets of the browser front,
 * over loopback: a bound address is accepted from by the event loop and
 * closed by evhttp_free; an address that cannot be bound (in use, not
 * numeric) or whose listener evhttp cannot take or libevent cannot watch
 * (every libevent allocation of the bind failing in turn) is an error that
 * leaves no socket open behind, and a success always accepts; an address
 * bound before a later one failed stays evhttp's, which closes it.
 * Descriptors are counted in /proc/self/fd. (Port 0 cannot be used:
 * libevent's address parser refuses it, and so does the config.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>

#include "fail_alloc.h"
#include "gw_common.h"
#include "gw_listen.h"

struct fx {
    struct event_base *base;
    struct evhttp *http;
    struct gw_listen_set *ls;
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    assert_non_null(x->base = event_base_new());
    assert_non_null(x->http = evhttp_new(x->base));
    assert_non_null(x->ls = gw_listen_set_new(x->base));
    *state = x;
    return 0;
}

/* The set goes before the evhttp server (gw_listen.h). */
static void drop(struct fx *x)
{
    gw_listen_set_free(x->ls);
    x->ls = NULL;
    if (x->http)
        evhttp_free(x->http);
    x->http = NULL;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    drop(x);
    event_base_free(x->base);
    free(x);
    return 0;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A TCP socket bound to a loopback port of the kernel's choice (*port),
 * listening or not. */
static int loopback_socket(bool listening, uint16_t *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listening)
        assert_int_equal(listen(s, 1), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return s;
}

/* A loopback port nobody listens on (the kernel's pick, released again). */
static uint16_t free_port(void)
{
    uint16_t port;
    close(loopback_socket(false, &port));
    return port;
}

/* A socket connected to 127.0.0.1:port, or -1 when nobody listens. */
static int connect_loopback(uint16_t port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0)
        return s;
    close(s);
    return -1;
}

/* Does a TCP connect to 127.0.0.1:port succeed (the kernel listens)? */
static bool connects(uint16_t port)
{
    int s = connect_loopback(port);
    if (s >= 0)
        close(s);
    return s >= 0;
}

/* Connect to 127.0.0.1:port and run the loop until evhttp has accepted the
 * connection (one more descriptor open: the listener is watched), at most
 * 200 turns. The client's socket is closed again; evhttp's stays until
 * evhttp_free. */
static bool loop_accepts(struct fx *x, uint16_t port)
{
    int s = connect_loopback(port);
    assert_true(s >= 0);
    int with_client = open_fds();
    bool accepted = false;
    for (int i = 0; i < 200 && !accepted; i++) {
        event_base_loop(x->base, EVLOOP_NONBLOCK);
        accepted = open_fds() > with_client;
        if (!accepted)
            usleep(1000);
    }
    close(s);
    return accepted;
}

static void test_bind_accepts_then_evhttp_closes(void **state)
{
    struct fx *x = *state;
    int before = open_fds();
    uint16_t port = free_port();
    struct gw_listen a = { .host = "127.0.0.1", .port = port };
    assert_int_equal(gw_listen_set_bind(x->ls, x->http, &a, 1, 16, "http"), 0);
    assert_int_equal(open_fds(), before + 1);
    assert_true(loop_accepts(x, port));
    drop(x); /* evhttp_free closes the listener and the connection */
    assert_int_equal(open_fds(), before);
    assert_false(connects(port));
}

/* Every libevent allocation of the bind fails in turn: the listener's own
 * (evconnlistener_new_bind), evhttp's record of it (evhttp_bind_listener)
 * and the descriptor's entry in libevent's map when the listener's event
 * is added (evhttp_bind_listener ignores that failure). A failure must be
 * GW_EIO with nothing left open; a success must accept. */
static void test_bind_allocation_failures(void **state)
{
    struct fx *x = *state;
    int before = open_fds();
    int failures = 0, hit_ok = 0;
    for (long k = 1; k <= 32; k++) {
        uint16_t port = free_port();
        struct gw_listen a = { .host = "127.0.0.1", .port = port };
        g_alloc_count = 0;
        g_fail_at = k;
        int rc = gw_listen_set_bind(x->ls, x->http, &a, 1, 16, "http");
        bool hit = g_alloc_count >= k;
        g_fail_at = 0;
        if (rc < 0) {
            assert_true(hit);
            assert_int_equal(rc, GW_EIO);
            failures++;
            assert_int_equal(open_fds(), before);
            assert_false(connects(port));
            continue;
        }
        hit_ok += hit; /* failed, and recovered from (a retried add) */
        assert_true(loop_accepts(x, port));
        drop(x);
        assert_int_equal(open_fds(), before);
        assert_non_null(x->http = evhttp_new(x->base));
        assert_non_null(x->ls = gw_listen_set_new(x->base));
        if (!hit)
            break; /* past the last allocation: all were tried */
    }
    /* evconnlistener_new_bind's and evhttp_bind_listener's at least */
    assert_true(failures >= 2);
    print_message("bind: %d allocation failures refused, %d recovered\n",
                  failures, hit_ok);
}

static void test_bind_address_in_use(void **state)
{
    struct fx *x = *state;
    /* held without SO_REUSEPORT: nobody else may bind it */
    uint16_t port;
    int s = loopback_socket(true, &port);
    int before = open_fds();
    struct gw_listen a = { .host = "127.0.0.1", .port = port };
    assert_int_equal(gw_listen_set_bind(x->ls, x->http, &a, 1, 16, "http"),
                     GW_EIO);
    assert_int_equal(open_fds(), before);
    close(s);
}

static void test_bind_not_numeric(void **state)
{
    struct fx *x = *state;
    int before = open_fds();
    struct gw_listen a = { .host = "localhost", .port = 8080 };
    assert_int_equal(gw_listen_set_bind(x->ls, x->http, &a, 1, 16, "http"),
                     GW_EINVAL);
    assert_int_equal(open_fds(), before);
}

/* The first address is bound, the second fails: the call fails, and the
 * first stays with evhttp, which closes it when freed (start-up then
 * stops). */
static void test_later_address_fails(void **state)
{
    struct fx *x = *state;
    int before = open_fds();
    uint16_t port = free_port();
    struct gw_listen a[2] = { { .host = "127.0.0.1", .port = port },
                              { .host = "not-an-address", .port = 1 } };
    assert_int_equal(gw_listen_set_bind(x->ls, x->http, a, 2, 16, "http"),
                     GW_EINVAL);
    assert_int_equal(open_fds(), before + 1);
    drop(x);
    assert_int_equal(open_fds(), before);
    assert_false(connects(port));
}

int main(void)
{
    /* before any other libevent call, or libevent refuses it */
    event_set_mem_functions(fail_malloc, fail_realloc, free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bind_accepts_then_evhttp_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_address_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_not_numeric, setup, teardown),
        cmocka_unit_test_setup_teardown(test_later_address_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

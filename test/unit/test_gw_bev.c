/* Unit tests for gw_bev: a socket bufferevent reading without FIONREAD
 * over a real loopback TCP connection: every byte arrives intact and in
 * order across many reads, the read high watermark caps the input buffer,
 * disable/enable stop and resume reading, EOF comes after the data, a
 * reset is reported as an error with its errno (with and without
 * deferred callbacks), and what is not a plain socket bufferevent is
 * refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

#include "gw_bev.h"
#include "gw_common.h"

struct fx {
    struct event_base *base;
    struct bufferevent *bev;
    int peer;                   /* the other end, blocking */
    unsigned char *rx;
    size_t rx_len, rx_cap;
    size_t max_input;           /* largest input buffer seen in readcb */
    int reads, events;
    short last_what;
    int last_errno;
    bool stop_at_event;
    size_t stop_at;             /* break the loop at this many bytes */
};

/* A connected loopback pair: *a non-blocking (for the bufferevent), *b
 * blocking. */
static void tcp_pair(int *a, int *b)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    *b = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*b, (struct sockaddr *)&sa, sizeof sa), 0);
    *a = accept(l, NULL, NULL);
    assert_true(*a >= 0);
    close(l);
    evutil_make_socket_nonblocking(*a);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct fx *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    f->reads++;
    if (len > f->max_input)
        f->max_input = len;
    size_t n = len;
    if (f->rx_len + n > f->rx_cap) {
        f->rx_cap = (f->rx_len + n) * 2;
        f->rx = realloc(f->rx, f->rx_cap);
        assert_non_null(f->rx);
    }
    evbuffer_remove(in, f->rx + f->rx_len, n);
    f->rx_len += n;
    if (f->stop_at && f->rx_len >= f->stop_at)
        event_base_loopbreak(f->base);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct fx *f = arg;
    f->last_errno = errno;
    f->events++;
    f->last_what = what;
    if (f->stop_at_event)
        event_base_loopbreak(f->base);
}

static struct fx *fx_new(int opts, size_t high)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->base = event_base_new();
    int a;
    tcp_pair(&a, &f->peer);
    f->bev = bufferevent_socket_new(f->base, a, BEV_OPT_CLOSE_ON_FREE | opts);
    assert_non_null(f->bev);
    if (high)
        bufferevent_setwatermark(f->bev, EV_READ, 0, high);
    bufferevent_setcb(f->bev, read_cb, NULL, event_cb, f);
    assert_int_equal(gw_bev_read_direct(f->bev), 0);
    bufferevent_enable(f->bev, EV_READ);
    return f;
}

static void fx_free(struct fx *f)
{
    bufferevent_free(f->bev);
    if (f->peer >= 0)
        close(f->peer);
    event_base_free(f->base);
    free(f->rx);
    free(f);
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        assert_true(w > 0);
        c += w;
        n -= (size_t)w;
    }
}

/* Run the loop until stop_at bytes or an event (a stuck test is caught by
 * the harness timeout, not by a clock here). */
static void run(struct fx *f)
{
    assert_int_equal(event_base_dispatch(f->base), 0);
}

static unsigned char *pattern(size_t n)
{
    unsigned char *p = malloc(n);
    assert_non_null(p);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

static void test_bytes_intact(void **state)
{
    (void)state;
    struct fx *f = fx_new(0, 0);
    const size_t n = 1u << 20; /* many reads of at most GW_BEV_READ_MAX */
    unsigned char *p = pattern(n);
    f->stop_at = n;
    /* the peer writes from a child so the loop can read meanwhile */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        write_all(f->peer, p, n);
        _exit(0);
    }
    run(f);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(f->rx_len, n);
    assert_memory_equal(f->rx, p, n);
    assert_true(f->reads >= (int)(n / GW_BEV_READ_MAX));
    assert_true(f->max_input <= GW_BEV_READ_MAX);
    assert_int_equal(f->events, 0);
    free(p);
    fx_free(f);
}

static void test_high_watermark(void **state)
{
    (void)state;
    struct fx *f = fx_new(0, 100);
    /* every read stops at the mark (libevent's reader would too); the
     * callback drains it all, as callers must: nothing calls it again for
     * bytes already buffered */
    const size_t n = 5000;
    unsigned char *p = pattern(n);
    write_all(f->peer, p, n);
    f->stop_at = n;
    run(f);
    assert_int_equal(f->rx_len, n);
    assert_memory_equal(f->rx, p, n);
    assert_true(f->max_input <= 100);
    free(p);
    fx_free(f);
}

static void test_disable_enable(void **state)
{
    (void)state;
    struct fx *f = fx_new(0, 0);
    bufferevent_disable(f->bev, EV_READ);
    write_all(f->peer, "hello", 5);
    /* nothing is read while disabled: one non-blocking turn of the loop
     * after the bytes are surely in the socket (a blocking recv with
     * MSG_PEEK on the same socket confirms it) */
    char c;
    int fd = bufferevent_getfd(f->bev);
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    assert_int_equal(recv(fd, &c, 1, MSG_PEEK), 1);
    fcntl(fd, F_SETFL, fl);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(f->reads, 0);
    assert_int_equal(evbuffer_get_length(bufferevent_get_input(f->bev)), 0);
    bufferevent_enable(f->bev, EV_READ);
    f->stop_at = 5;
    run(f);
    assert_int_equal(f->rx_len, 5);
    assert_memory_equal(f->rx, "hello", 5);
    fx_free(f);
}

static void test_eof_after_data(void **state)
{
    (void)state;
    for (int deferred = 0; deferred < 2; deferred++) {
        struct fx *f = fx_new(deferred ? BEV_OPT_DEFER_CALLBACKS : 0, 0);
        write_all(f->peer, "last words", 10);
        close(f->peer);
        f->peer = -1;
        f->stop_at_event = true;
        run(f);
        assert_int_equal(f->rx_len, 10);
        assert_memory_equal(f->rx, "last words", 10);
        assert_int_equal(f->events, 1);
        assert_int_equal(f->last_what, BEV_EVENT_EOF | BEV_EVENT_READING);
        assert_false(bufferevent_get_enabled(f->bev) & EV_READ);
        fx_free(f);
    }
}

static void test_reset_is_error(void **state)
{
    (void)state;
    for (int deferred = 0; deferred < 2; deferred++) {
        struct fx *f = fx_new(deferred ? BEV_OPT_DEFER_CALLBACKS : 0, 0);
        struct linger lg = { 1, 0 };
        setsockopt(f->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(f->peer); /* RST */
        f->peer = -1;
        f->stop_at_event = true;
        run(f);
        assert_int_equal(f->events, 1);
        assert_int_equal(f->last_what, BEV_EVENT_ERROR | BEV_EVENT_READING);
        assert_int_equal(f->last_errno, ECONNRESET);
        fx_free(f);
    }
}

static void test_refused_and_idempotent(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct bufferevent *pair[2];
    assert_int_equal(bufferevent_pair_new(base, 0, pair), 0);
    assert_int_equal(gw_bev_read_direct(pair[0]), GW_EINVAL);
    struct bufferevent *nofd = bufferevent_socket_new(base, -1, 0);
    assert_int_equal(gw_bev_read_direct(nofd), GW_EINVAL);
    assert_int_equal(gw_bev_read_direct(NULL), GW_EINVAL);
    bufferevent_free(nofd);
    bufferevent_free(pair[0]);
    bufferevent_free(pair[1]);
    event_base_free(base);

    struct fx *f = fx_new(0, 0);
    assert_int_equal(gw_bev_read_direct(f->bev), 0); /* again: no change */
    write_all(f->peer, "x", 1);
    f->stop_at = 1;
    run(f);
    assert_int_equal(f->rx_len, 1);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_intact),
        cmocka_unit_test(test_high_watermark),
        cmocka_unit_test(test_disable_enable),
        cmocka_unit_test(test_eof_after_data),
        cmocka_unit_test(test_reset_is_error),
        cmocka_unit_test(test_refused_and_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

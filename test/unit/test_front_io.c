/* Unit tests for front_io, the bufferevent under evhttp's plain-TCP
 * browser connections, driven through the bufferevent API over loopback
 * TCP: large input across many reads, partial writes finished on the
 * writable edge, EOF both ways, a reset in the middle of a response,
 * reading disabled while bytes arrive (edge-triggered: nothing may be
 * lost), the read high watermark, the close watch, setfd(-1) handing the
 * socket back, read timeouts, the switch back to libevent's socket
 * bufferevent, and every allocation of front_io_new failing in turn. */
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
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "fail_alloc.h" /* every allocation of front_io_new failing in turn */
#include "front_io.h"

struct fx {
    struct event_base *base;
    struct bufferevent *bev;
    int ours;                /* the fd under bev */
    int peer;                /* the other end, ours to drive */
    struct evbuffer *got;    /* what the read callback took */
    int reads, writes, closed_calls;
    short events;            /* the event callback's flags, OR-ed */
    bool read_stop;          /* the read callback leaves the input alone */
};

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
    evutil_make_socket_nonblocking(*b);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct fx *f = arg;
    f->reads++;
    if (!f->read_stop)
        evbuffer_add_buffer(f->got, bufferevent_get_input(bev));
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct fx *f = arg;
    f->writes++;
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct fx *f = arg;
    f->events |= what;
}

static void closed_cb(void *arg)
{
    struct fx *f = arg;
    f->closed_calls++;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->base = event_base_new();
    f->got = evbuffer_new();
    front_io_set_enabled(true);
    tcp_pair(&f->ours, &f->peer);
    f->bev = front_io_new(f->base, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(f->bev);
    assert_true(front_io_is(f->bev));
    assert_int_equal(bufferevent_setfd(f->bev, f->ours), 0);
    assert_int_equal(bufferevent_getfd(f->bev), f->ours);
    bufferevent_setcb(f->bev, read_cb, write_cb, event_cb, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->bev)
        bufferevent_free(f->bev);
    if (f->peer >= 0)
        close(f->peer);
    evbuffer_free(f->got);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* Run the loop until done(f) or 5 s (a generous bound, never a speed
 * assertion). */
static bool loop_until(struct fx *f, bool (*done)(struct fx *))
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (done(f))
            return true;
        struct timeval tv = { 0, 20000 };
        event_base_loopexit(f->base, &tv);
        event_base_loop(f->base, EVLOOP_ONCE);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 5)
            return done(f);
    }
}

static void spin(struct fx *f, int turns)
{
    for (int i = 0; i < turns; i++) {
        struct timeval tv = { 0, 10000 };
        event_base_loopexit(f->base, &tv);
        event_base_loop(f->base, EVLOOP_ONCE);
    }
}

static void pattern(unsigned char *p, size_t n, size_t off)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((off + i) * 7 + 3);
}

static bool check_pattern(struct evbuffer *b, size_t n)
{
    if (evbuffer_get_length(b) != n)
        return false;
    unsigned char *p = evbuffer_pullup(b, -1);
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + 3))
            return false;
    return true;
}

/* ------------------------------------------------------------- tests */

static size_t g_want;
static bool got_all(struct fx *f) { return evbuffer_get_length(f->got) >= g_want; }
static bool got_eof(struct fx *f) { return f->events & (BEV_EVENT_EOF | BEV_EVENT_ERROR); }
static bool got_closed(struct fx *f) { return f->closed_calls > 0; }

/* 1 MiB from the peer arrives whole and in order, over many reads. */
static void test_large_input(void **state)
{
    struct fx *f = *state;
    bufferevent_enable(f->bev, EV_READ);
    size_t total = 1 << 20, sent = 0;
    unsigned char chunk[65536];
    g_want = total;
    while (sent < total) {
        size_t n = total - sent < sizeof chunk ? total - sent : sizeof chunk;
        pattern(chunk, n, sent);
        ssize_t w = write(f->peer, chunk, n);
        if (w > 0)
            sent += (size_t)w;
        else
            spin(f, 1);
    }
    assert_true(loop_until(f, got_all));
    assert_true(check_pattern(f->got, total));
    assert_true(f->reads >= (int)(total / FRONT_IO_READ_MAX) / 4);
    assert_int_equal(f->events, 0);
}

static bool out_empty(struct fx *f)
{
    return evbuffer_get_length(bufferevent_get_output(f->bev)) == 0;
}

/* 8 MiB to a peer that does not read: the write comes up short and waits;
 * once the peer reads, the rest follows on the writable edge, in order,
 * and the write callback reports the empty buffer. */
static void test_partial_write(void **state)
{
    struct fx *f = *state;
    size_t total = 8 << 20;
    unsigned char *p = malloc(total);
    pattern(p, total, 0);
    bufferevent_enable(f->bev, EV_WRITE);
    bufferevent_write(f->bev, p, total);
    free(p);
    spin(f, 5);
    assert_true(evbuffer_get_length(bufferevent_get_output(f->bev)) > 0);
    assert_int_equal(f->writes, 0);
    struct evbuffer *rx = evbuffer_new();
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (evbuffer_get_length(rx) < total) {
        char buf[65536];
        ssize_t r = read(f->peer, buf, sizeof buf);
        if (r > 0)
            evbuffer_add(rx, buf, (size_t)r);
        else
            spin(f, 1);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 10)
            break;
    }
    assert_true(check_pattern(rx, total));
    assert_true(loop_until(f, out_empty));
    spin(f, 1);
    assert_true(f->writes >= 1);
    assert_int_equal(f->events, 0);
    evbuffer_free(rx);
}

/* The peer sends and shuts its side: the bytes first, then EOF. */
static void test_eof_from_peer(void **state)
{
    struct fx *f = *state;
    bufferevent_enable(f->bev, EV_READ);
    assert_int_equal(write(f->peer, "hello", 5), 5);
    shutdown(f->peer, SHUT_WR);
    assert_true(loop_until(f, got_eof));
    assert_int_equal(f->events, BEV_EVENT_EOF | BEV_EVENT_READING);
    assert_int_equal(evbuffer_get_length(f->got), 5);
    assert_memory_equal(evbuffer_pullup(f->got, -1), "hello", 5);
    assert_false(bufferevent_get_enabled(f->bev) & EV_READ);
}

/* Freeing with BEV_OPT_CLOSE_ON_FREE closes the socket: the peer reads
 * what was written, then EOF. */
static void test_eof_from_us(void **state)
{
    struct fx *f = *state;
    bufferevent_enable(f->bev, EV_WRITE);
    bufferevent_write(f->bev, "bye", 3);
    spin(f, 3);
    bufferevent_free(f->bev);
    f->bev = NULL;
    spin(f, 3); /* finalization closes the descriptor */
    char buf[16];
    size_t n = 0;
    ssize_t r;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        r = read(f->peer, buf + n, sizeof buf - n);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
        assert_true(t.tv_sec - t0.tv_sec <= 5);
        usleep(1000);
    }
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "bye", 3);
}

/* The peer resets the connection while a large response is pending: an
 * error (or EOF) is reported, once the write meets it, and nothing more. */
static void test_reset_mid_response(void **state)
{
    struct fx *f = *state;
    size_t total = 8 << 20;
    unsigned char *p = calloc(1, total);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    bufferevent_write(f->bev, p, total);
    free(p);
    spin(f, 3);
    assert_true(evbuffer_get_length(bufferevent_get_output(f->bev)) > 0);
    struct linger lg = { 1, 0 };
    setsockopt(f->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(f->peer);
    f->peer = -1;
    assert_true(loop_until(f, got_eof));
    assert_true(f->events & (BEV_EVENT_ERROR | BEV_EVENT_EOF));
}

/* Bytes that arrive while reading is disabled are not lost although their
 * edge came and went: enabling reading delivers them. */
static void test_read_disabled_then_enabled(void **state)
{
    struct fx *f = *state;
    bufferevent_enable(f->bev, EV_READ);
    bufferevent_disable(f->bev, EV_READ);
    assert_int_equal(write(f->peer, "pipelined", 9), 9);
    spin(f, 5);
    assert_int_equal(f->reads, 0);
    bufferevent_enable(f->bev, EV_READ);
    g_want = 9;
    assert_true(loop_until(f, got_all));
    assert_memory_equal(evbuffer_pullup(f->got, -1), "pipelined", 9);
}

static bool input_at_high(struct fx *f)
{
    return evbuffer_get_length(bufferevent_get_input(f->bev)) >= 1000;
}

/* The read high watermark caps the input; draining it resumes reading. */
static void test_read_watermark(void **state)
{
    struct fx *f = *state;
    f->read_stop = true;
    bufferevent_setwatermark(f->bev, EV_READ, 0, 1000);
    bufferevent_enable(f->bev, EV_READ);
    unsigned char p[5000];
    pattern(p, sizeof p, 0);
    assert_int_equal(write(f->peer, p, sizeof p), (ssize_t)sizeof p);
    assert_true(loop_until(f, input_at_high));
    spin(f, 5);
    assert_int_equal(evbuffer_get_length(bufferevent_get_input(f->bev)), 1000);
    f->read_stop = false;
    g_want = sizeof p;
    /* each read callback now drains, which lifts the suspension */
    evbuffer_add_buffer(f->got, bufferevent_get_input(f->bev));
    assert_true(loop_until(f, got_all));
    assert_true(check_pattern(f->got, sizeof p));
}

/* The close watch: called once when the peer shuts its side, with
 * reading disabled; set after the fact, it is called from the loop. */
static void test_watch_closed(void **state)
{
    struct fx *f = *state;
    assert_true(front_io_watch_closed(f->bev, closed_cb, f));
    spin(f, 2);
    assert_int_equal(f->closed_calls, 0);
    shutdown(f->peer, SHUT_WR);
    assert_true(loop_until(f, got_closed));
    spin(f, 3);
    assert_int_equal(f->closed_calls, 1);
    assert_int_equal(f->events, 0); /* reading is off: no EOF yet */
    /* a new watch after the close: told again, but not inside the call */
    assert_true(front_io_watch_closed(f->bev, closed_cb, f));
    assert_int_equal(f->closed_calls, 1);
    spin(f, 2);
    assert_int_equal(f->closed_calls, 2);
    /* stopped: no more calls */
    assert_true(front_io_watch_closed(f->bev, NULL, NULL));
    spin(f, 2);
    assert_int_equal(f->closed_calls, 2);
    /* and reading meets the EOF */
    bufferevent_enable(f->bev, EV_READ);
    assert_true(loop_until(f, got_eof));
    assert_true(f->events & BEV_EVENT_EOF);
}

/* setfd(-1) hands the socket back: not watched, not closed on free. */
static void test_setfd_release(void **state)
{
    struct fx *f = *state;
    bufferevent_enable(f->bev, EV_READ);
    assert_int_equal(bufferevent_setfd(f->bev, -1), 0);
    assert_int_equal(bufferevent_getfd(f->bev), -1);
    assert_int_equal(write(f->peer, "x", 1), 1);
    spin(f, 3);
    assert_int_equal(f->reads, 0);
    bufferevent_free(f->bev);
    f->bev = NULL;
    spin(f, 3);
    char c = 0;
    assert_int_equal(read(f->ours, &c, 1), 1); /* still open, still ours */
    assert_int_equal(c, 'x');
    assert_int_equal(write(f->ours, "y", 1), 1);
    close(f->ours);
}

/* A read timeout with nothing arriving: TIMEOUT|READING, reading off. */
static void test_read_timeout(void **state)
{
    struct fx *f = *state;
    struct timeval tv = { 0, 50000 };
    bufferevent_set_timeouts(f->bev, &tv, NULL);
    bufferevent_enable(f->bev, EV_READ);
    assert_true(loop_until(f, got_eof) || (f->events & BEV_EVENT_TIMEOUT));
    assert_int_equal(f->events, BEV_EVENT_TIMEOUT | BEV_EVENT_READING);
}

/* Switched off (or without epoll), front_io_new gives libevent's socket
 * bufferevent, which works the same through the API. */
static void test_switch_off(void **state)
{
    struct fx *f = *state;
    front_io_set_enabled(false);
    struct bufferevent *b = front_io_new(f->base, BEV_OPT_CLOSE_ON_FREE);
    front_io_set_enabled(true);
    assert_non_null(b);
    assert_false(front_io_is(b));
    assert_false(front_io_watch_closed(b, closed_cb, f));
    bufferevent_free(b);
    assert_false(front_io_is(NULL));
    assert_true(front_io_available());
    struct event_config *cfg = event_config_new();
    event_config_avoid_method(cfg, "epoll");
    struct event_base *pb = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (pb) { /* poll/select: no edge triggering */
        b = front_io_new(pb, BEV_OPT_CLOSE_ON_FREE);
        assert_non_null(b);
        assert_false(front_io_is(b));
        bufferevent_free(b);
        event_base_free(pb);
    }
}

static bool got_one(struct fx *f) { return evbuffer_get_length(f->got) >= 1; }

/* Whatever allocation fails, front_io_new gives NULL or a bufferevent
 * that works: what is written on it reaches the peer, what the peer
 * sends is read. (A front_io whose output callback was not registered
 * queued responses that were never written.) */
static void test_allocation_failures(void **state)
{
    struct fx *f = *state;
    int hits = 0; /* runs in which an allocation failed */
    for (long k = 1; k <= 64; k++) {
        int a, b;
        tcp_pair(&a, &b);
        g_alloc_count = 0;
        g_fail_at = k;
        struct bufferevent *bev = front_io_new(f->base, BEV_OPT_CLOSE_ON_FREE);
        bool hit = g_alloc_count >= k; /* the k-th allocation happened */
        g_fail_at = 0;
        hits += hit;
        if (!bev) { /* the fallback's allocation failed too: fine */
            assert_true(hit);
            close(a);
        } else {
            assert_int_equal(bufferevent_setfd(bev, a), 0);
            struct fx w = { .base = f->base, .got = evbuffer_new() };
            bufferevent_setcb(bev, read_cb, NULL, NULL, &w);
            assert_int_equal(bufferevent_enable(bev, EV_READ | EV_WRITE), 0);
            spin(&w, 2); /* the first writable edge passes with nothing queued */
            assert_int_equal(bufferevent_write(bev, "ping", 4), 0);
            char buf[8];
            ssize_t r = -1;
            for (int i = 0; i < 200 && r <= 0; i++) {
                spin(&w, 1);
                r = recv(b, buf, sizeof buf, 0);
            }
            assert_int_equal(r, 4);
            assert_memory_equal(buf, "ping", 4);
            assert_int_equal(send(b, "pong", 4, 0), 4);
            assert_true(loop_until(&w, got_one));
            evbuffer_free(w.got);
            bufferevent_free(bev);
            if (!hit) { /* past the last allocation: all were tried */
                close(b);
                break;
            }
        }
        close(b);
    }
    assert_true(hits >= 3); /* calloc, its two evbuffers, the callback */
}

int main(void)
{
    /* before any other libevent call, or libevent refuses it */
    event_set_mem_functions(fail_malloc, fail_realloc, free);
    signal(SIGPIPE, SIG_IGN); /* as pollgate: a write after a reset is EPIPE */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_from_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_from_us, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_mid_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_disabled_then_enabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_watermark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setfd_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for http_stream over a real evhttp on loopback and a raw
 * client socket: one chunk in flight, end after a byte limit (prelude not
 * counted), no heartbeat while a chunk is pending, the browser leaving
 * while a chunk is pending, ends asked for inside a callback completing
 * after it, one-shot responses. */
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
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/tcp.h>

#include "gw_config.h"
#include "http_limits.h"
#include "http_stream.h"

struct owner;

struct fx {
    struct event_base *base;
    struct evhttp *http;
    int port;
    int fd;                 /* the "browser" */
    /* what the handler does */
    bool stream;            /* begin (else one-shot) */
    bool end_at_start;      /* http_stream_end right after the handler */
    bool end_in_flush;      /* http_stream_end from inside flush */
    const char *prelude;
    uint64_t limit;
    size_t batch;           /* bytes per flush */
    int batches;            /* flushes that write */
    struct timeval hb;      /* heartbeat period; 0 = none */
    /* what happened */
    int flushes, heartbeats, beats_while_writing, wakes_while_writing;
    int gone, ended, ended_inside_cb;
    bool in_cb;
    int nodelay;            /* TCP_NODELAY of the request's socket */
    struct owner *o;
    char *rx;
    size_t rx_len, rx_cap;
};

struct owner {
    struct http_stream st;
    struct fx *fx;
};

static struct owner *owner_of(struct http_stream *st)
{
    return (struct owner *)((char *)st - offsetof(struct owner, st));
}

static void o_flush(struct http_stream *st)
{
    struct fx *f = owner_of(st)->fx;
    f->in_cb = true;
    f->flushes++;
    if (f->batches > 0) {
        char *b = malloc(f->batch);
        assert_non_null(b);
        memset(b, 'x', f->batch);
        assert_true(http_stream_write(st, b, f->batch));
        free(b);
        if (--f->batches > 0)
            http_stream_wake(st); /* more: after this one has left */
    }
    if (f->end_in_flush)
        http_stream_end(st);
    f->in_cb = false;
}

static void o_heartbeat(struct http_stream *st)
{
    struct fx *f = owner_of(st)->fx;
    f->in_cb = true;
    f->heartbeats++;
    if (st->writing)
        f->beats_while_writing++;
    http_stream_write(st, "H", 1);
    f->in_cb = false;
}

static void o_gone(struct http_stream *st)
{
    owner_of(st)->fx->gone++;
}

static void o_ended(struct http_stream *st)
{
    struct owner *o = owner_of(st);
    struct fx *f = o->fx;
    f->ended++;
    if (f->in_cb)
        f->ended_inside_cb++;
    f->o = NULL;
    free(o);
}

static const struct http_stream_ops ops = {
    .flush = o_flush, .heartbeat = o_heartbeat, .gone = o_gone,
    .ended = o_ended,
};

static void handler(struct evhttp_request *req, void *arg)
{
    struct fx *f = arg;
    struct owner *o = calloc(1, sizeof *o);
    assert_non_null(o);
    o->fx = f;
    f->o = o;
    struct bufferevent *bev =
        evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    socklen_t ol = sizeof f->nodelay;
    f->nodelay = -1;
    getsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &f->nodelay, &ol);
    assert_int_equal(http_stream_init(&o->st, req, &ops), 0);
    if (f->stream)
        http_stream_begin(&o->st, 200, f->prelude,
                          f->prelude ? strlen(f->prelude) : 0, f->limit);
    if (f->hb.tv_sec || f->hb.tv_usec)
        http_stream_heartbeat_start(&o->st, &f->hb);
    if (f->end_at_start) {
        http_stream_end(&o->st);
        return;
    }
    http_stream_wake(&o->st);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->base = event_base_new();
    f->http = evhttp_new(f->base);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    assert_non_null(bs);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    evhttp_set_gencb(f->http, handler, f);
    f->fd = -1;
    f->limit = UINT64_MAX;
    f->batch = 10;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->fd >= 0)
        close(f->fd);
    if (f->http)
        evhttp_free(f->http); /* frees what is still attached */
    event_base_free(f->base);
    free(f->o);
    free(f->rx);
    free(f);
    return 0;
}

/* Connect (small receive buffer: a big chunk stays in flight) and send a
 * GET; non-blocking from then on. */
static void client_get(struct fx *f, const char *version)
{
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    int rcv = 4096;
    setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)f->port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(f->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[128];
    int n = snprintf(req, sizeof req, "GET /s HTTP/%s\r\nHost: x\r\n\r\n",
                     version);
    assert_int_equal(write(f->fd, req, (size_t)n), n);
    fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_NONBLOCK);
}

/* Run the loop for ms; if drain, read everything the server sent. */
static void pump(struct fx *f, int ms, bool drain)
{
    for (int i = 0; i < ms; i++) {
        struct timeval tv = { 0, 1000 };
        event_base_loopexit(f->base, &tv);
        event_base_dispatch(f->base);
        while (drain && f->fd >= 0) {
            if (f->rx_cap - f->rx_len < 65536) {
                f->rx_cap = f->rx_cap * 2 + 65536;
                f->rx = realloc(f->rx, f->rx_cap + 1);
            }
            ssize_t r = read(f->fd, f->rx + f->rx_len, f->rx_cap - f->rx_len);
            if (r <= 0)
                break;
            f->rx_len += (size_t)r;
            f->rx[f->rx_len] = 0;
        }
    }
}

/* Run the loop (reading) until cond holds, at most max turns: the
 * machine may be slow, the loop turns stop as soon as it is done. */
#define PUMP_UNTIL(f, cond, max)                                        \
    do {                                                                \
        for (int i_ = 0; i_ < (max) && !(cond); i_++)                   \
            pump((f), 1, true);                                         \
        pump((f), 5, true); /* and what follows at once */              \
    } while (0)

static bool rx_ends_with(const struct fx *f, const char *tail)
{
    size_t n = strlen(tail);
    return f->rx_len >= n && memcmp(f->rx + f->rx_len - n, tail, n) == 0;
}

static const char *body_of(const struct fx *f)
{
    const char *p = f->rx ? strstr(f->rx, "\r\n\r\n") : NULL;
    return p ? p + 4 : "";
}

static void test_limit_ends_after_flush(void **state)
{
    struct fx *f = *state;
    f->stream = true;
    f->prelude = "a prelude that is longer than the limit itself, not counted";
    f->limit = 100;
    f->batch = 60;
    f->batches = 5;
    client_get(f, "1.1");
    PUMP_UNTIL(f, f->ended, 5000);
    /* 60 < 100, 120 >= 100: two batches, then the end */
    assert_int_equal(f->flushes, 2);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->ended_inside_cb, 0);
    assert_int_equal(f->gone, 0);
    assert_true(rx_ends_with(f, "\r\n0\r\n\r\n"));
    assert_non_null(strstr(f->rx, "Transfer-Encoding: chunked"));
}

static void test_one_in_flight_no_heartbeat_while_pending(void **state)
{
    struct fx *f = *state;
    f->stream = true;
    f->batch = 2 << 20; /* more than the socket buffers hold */
    f->batches = 2;
    f->hb = (struct timeval){ 0, 20000 };
    client_get(f, "1.1");
    pump(f, 200, false); /* the browser reads nothing */
    assert_int_equal(f->flushes, 1);     /* the second waits */
    assert_int_equal(f->heartbeats, 0);  /* a chunk is in flight */
    assert_int_equal(f->ended, 0);
    http_stream_wake(&f->o->st);         /* a wake from outside waits too */
    assert_int_equal(f->flushes, 1);
    /* now it reads everything (a bigger window: fewer loop turns) */
    int rcv = 1 << 20;
    setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    PUMP_UNTIL(f, f->flushes == 2 && f->rx_len > (size_t)(4 << 20) &&
               f->heartbeats > 0, 20000);
    assert_int_equal(f->flushes, 2);
    assert_true(f->heartbeats > 0);      /* idle again: heartbeats */
    assert_int_equal(f->beats_while_writing, 0);
    assert_true(f->rx_len > (size_t)(4 << 20));
    assert_int_equal(f->ended, 0);
}

static void test_gone_while_writing(void **state)
{
    struct fx *f = *state;
    f->stream = true;
    f->batch = 2 << 20;
    f->batches = 1;
    f->hb = (struct timeval){ 0, 20000 };
    client_get(f, "1.1");
    pump(f, 100, false);
    assert_int_equal(f->flushes, 1);
    assert_non_null(f->o);
    assert_true(f->o->st.writing);
    close(f->fd); /* unread data: the server sees a reset */
    f->fd = -1;
    for (int i = 0; i < 200 && !f->ended; i++)
        pump(f, 10, false);
    assert_int_equal(f->gone, 1);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->ended_inside_cb, 0);
    assert_int_equal(f->beats_while_writing, 0);
}

static void test_end_in_flush_completes_after_it(void **state)
{
    struct fx *f = *state;
    f->stream = true;
    f->batches = 1;
    f->end_in_flush = true;
    client_get(f, "1.1");
    PUMP_UNTIL(f, f->ended, 5000);
    assert_int_equal(f->flushes, 1);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->ended_inside_cb, 0);
    assert_true(rx_ends_with(f, "a\r\nxxxxxxxxxx\r\n0\r\n\r\n"));
}

/* Nothing in flight when the end is asked for inside the callback: it
 * still completes only after the callback returned. */
static void test_end_in_idle_flush_completes_after_it(void **state)
{
    struct fx *f = *state;
    f->stream = true;
    f->batches = 0;
    f->end_in_flush = true;
    client_get(f, "1.1");
    PUMP_UNTIL(f, f->ended, 5000);
    assert_int_equal(f->flushes, 1);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->ended_inside_cb, 0);
    assert_true(rx_ends_with(f, "\r\n\r\n0\r\n\r\n"));
}

static void test_one_shot_end_in_flush(void **state)
{
    struct fx *f = *state;
    f->batches = 1;
    f->end_in_flush = true;
    client_get(f, "1.1");
    PUMP_UNTIL(f, f->ended, 5000);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->ended_inside_cb, 0);
    assert_string_equal(body_of(f), "xxxxxxxxxx");
}

static void test_http10_stream_closes(void **state)
{
    struct fx *f = *state;
    f->stream = true;
    f->batches = 1;
    f->end_in_flush = true;
    client_get(f, "1.0");
    PUMP_UNTIL(f, f->ended, 5000);
    assert_int_equal(f->ended, 1);
    assert_non_null(strstr(f->rx, "Connection: close"));
    assert_string_equal(body_of(f), "xxxxxxxxxx");
}

static void test_one_shot_reply(void **state)
{
    struct fx *f = *state;
    f->batches = 1;
    client_get(f, "1.1");
    PUMP_UNTIL(f, f->ended, 5000);
    assert_int_equal(f->flushes, 1);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->ended_inside_cb, 0);
    assert_non_null(strstr(f->rx, "HTTP/1.1 200"));
    assert_non_null(strstr(f->rx, "Content-Length: 10"));
    assert_string_equal(body_of(f), "xxxxxxxxxx");
}

static void test_one_shot_heartbeat_answers(void **state)
{
    struct fx *f = *state;
    f->batches = 0; /* nothing to deliver: the heartbeat answers */
    f->hb = (struct timeval){ 0, 30000 };
    client_get(f, "1.1");
    PUMP_UNTIL(f, f->ended, 5000);
    assert_int_equal(f->heartbeats, 1);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->ended_inside_cb, 0);
    assert_string_equal(body_of(f), "H");
}

static void test_end_unanswered_one_shot(void **state)
{
    struct fx *f = *state;
    f->end_at_start = true;
    client_get(f, "1.1");
    PUMP_UNTIL(f, f->ended, 5000);
    assert_int_equal(f->flushes, 0);
    assert_int_equal(f->ended, 1);
    assert_non_null(strstr(f->rx, "HTTP/1.1 200"));
    assert_non_null(strstr(f->rx, "Content-Length: 0"));
}

/* Behind http_limits (as in pollgate) a browser's socket has Nagle's
 * algorithm off: a stream's second batch does not wait for the
 * acknowledgement of the first. Plain evhttp leaves it on. */
static void test_nodelay(void **state)
{
    struct fx *f = *state;
    f->stream = true;
    f->batches = 2;
    client_get(f, "1.1");
    pump(f, 30, true);
    assert_int_equal(f->nodelay, 0); /* evhttp alone */
    close(f->fd);
    f->fd = -1;
    pump(f, 30, false);
    struct gw_config *cfg = gw_config_parse_string(
        "[route r]\npath = /s\nupstream = ws://127.0.0.1:9/\n", "t", NULL);
    assert_non_null(cfg);
    struct http_limits *lim = http_limits_new(f->base, cfg);
    assert_non_null(lim);
    http_limits_attach(lim, f->http);
    f->batches = 2;
    client_get(f, "1.1");
    pump(f, 30, true);
    assert_true(f->nodelay > 0);
    assert_non_null(strstr(f->rx, "xxxxxxxxxx"));
    close(f->fd);
    f->fd = -1;
    pump(f, 30, false);
    evhttp_free(f->http); /* before the limits its connections point to */
    f->http = NULL;
    http_limits_free(lim);
    gw_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_limit_ends_after_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_in_flight_no_heartbeat_while_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_in_flush_completes_after_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_in_idle_flush_completes_after_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_shot_end_in_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_stream_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_shot_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_shot_heartbeat_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_unanswered_one_shot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodelay, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

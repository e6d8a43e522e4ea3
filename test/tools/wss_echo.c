/*
 * wss_echo.c - an evhttp server whose every request goes to
 * ws_server_accept, echoing each message back; used by
 * test/integration/ws_server.test.mjs until ws_server is wired into
 * pollgate's routes. One line per event on stdout, flushed:
 *
 *   listening <port>
 *   open protocol=<name or ->
 *   reject <status>
 *   message text|binary <len>
 *   pause | resume              (output above / back under the limit)
 *   close code=<n> clean=<0|1> by_browser=<0|1> reason=<hex> detail=<text>
 *
 * A text message "close <code> <reason>" makes the server close with that
 * code instead of echoing; "free" frees the connection from inside
 * on_message (it is dropped at once, with no close line). The server stops reading while its output to a
 * browser is over --output-limit (back-pressure) and resumes on drained.
 * SIGTERM/SIGINT end it (exit 0).
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "gw_log.h"
#include "ws_server.h"

struct conn {
    struct ws_server *ws;
    struct conn *next, *prev;
    struct echo *e;
};

struct echo {
    struct event_base *base;
    struct ws_server_options opt;
    struct conn head;     /* list of live connections */
};

static void list_del(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
}

static void message_cb(struct ws_server *s, bool binary, const uint8_t *data,
                       size_t len, void *arg)
{
    struct conn *c = arg;
    printf("message %s %zu\n", binary ? "binary" : "text", len);
    if (!binary && len > 6 && memcmp(data, "close ", 6) == 0) {
        char buf[160];
        size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
        memcpy(buf, data, n);
        buf[n] = 0;
        char *end;
        long code = strtol(buf + 6, &end, 10);
        ws_server_close(s, (uint16_t)code, *end == ' ' ? end + 1 : "");
        return;
    }
    if (!binary && len == 4 && memcmp(data, "free", 4) == 0) {
        printf("freed\n");
        list_del(c);
        ws_server_free(s); /* inside its callback: deferred, no on_close */
        free(c);
        return;
    }
    int rc = ws_server_send(s, binary, data, len);
    if (rc < 0)
        printf("send failed %s\n", gw_strerror(rc));
    if (ws_server_pending_bytes(s) > c->e->opt.output_limit) {
        ws_server_pause_reading(s, true);
        printf("pause\n");
    }
}

static void drained_cb(struct ws_server *s, void *arg)
{
    (void)arg;
    ws_server_pause_reading(s, false);
    printf("resume\n");
}

static void close_cb(struct ws_server *s, const struct ws_server_close_info *i,
                     void *arg)
{
    struct conn *c = arg;
    printf("close code=%u clean=%d by_browser=%d reason=", i->code, i->clean,
           i->by_browser);
    for (size_t k = 0; k < i->reason_len; k++)
        printf("%02x", (unsigned char)i->reason[k]);
    if (!i->reason_len)
        printf("-");
    printf(" detail=%s\n", i->detail);
    list_del(c);
    ws_server_free(s);  /* inside its callback: deferred */
    free(c);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct echo *e = arg;
    static const struct ws_server_callbacks cb = {
        .on_message = message_cb, .on_drained = drained_cb,
        .on_close = close_cb,
    };
    struct conn *c = calloc(1, sizeof *c);
    struct gw_error err = {0};
    if (!c) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    c->e = e;
    c->ws = ws_server_accept(req, &e->opt, &cb, c, &err);
    if (!c->ws) {
        printf("reject %s\n", err.msg);
        free(c);
        return;
    }
    c->next = e->head.next;
    c->prev = &e->head;
    e->head.next->prev = c;
    e->head.next = c;
    const char *p = ws_server_protocol(c->ws);
    printf("open protocol=%s\n", p ? p : "-");
}

static void signal_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    event_base_loopexit(arg, NULL);
}

static unsigned long num(const char *s)
{
    return strtoul(s, NULL, 10);
}

int main(int argc, char **argv)
{
    struct echo e = {0};
    e.head.next = e.head.prev = &e.head;
    unsigned port = 0;
    static const struct option lo[] = {
        {"port", 1, 0, 'p'}, {"max-message", 1, 0, 'm'},
        {"output-limit", 1, 0, 'o'}, {"ping", 1, 0, 'i'},
        {"pong", 1, 0, 'g'}, {"close-timeout", 1, 0, 'c'},
        {"protocols", 1, 0, 'P'}, {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': port = (unsigned)num(optarg); break;
        case 'm': e.opt.max_message = num(optarg); break;
        case 'o': e.opt.output_limit = num(optarg); break;
        case 'i': e.opt.ping_interval_ms = (uint32_t)num(optarg); break;
        case 'g': e.opt.pong_timeout_ms = (uint32_t)num(optarg); break;
        case 'c': e.opt.close_timeout_ms = (uint32_t)num(optarg); break;
        case 'P': e.opt.protocols = optarg; break;
        default:
            fputs("usage: wss_echo [--port N] [--max-message N] "
                  "[--output-limit N] [--ping MS] [--pong MS] "
                  "[--close-timeout MS] [--protocols LIST]\n", stderr);
            return 2;
        }
    }
    if (!e.opt.output_limit)
        e.opt.output_limit = 1024 * 1024;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    gw_log_level = GW_LOG_WARN;
    e.base = event_base_new();
    struct evhttp *http = evhttp_new(e.base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                         EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT);
    evhttp_set_gencb(http, request_cb, &e);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(http, "127.0.0.1", (uint16_t)port);
    if (!bs) {
        fprintf(stderr, "wss_echo: cannot listen on port %u\n", port);
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
    printf("listening %u\n",
           ntohs(((struct sockaddr_in *)&ss)->sin_port));
    struct event *sig_term = evsignal_new(e.base, SIGTERM, signal_cb, e.base);
    struct event *sig_int = evsignal_new(e.base, SIGINT, signal_cb, e.base);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    event_base_dispatch(e.base);
    while (e.head.next != &e.head) {
        struct conn *c = e.head.next;
        list_del(c);
        ws_server_free(c->ws); /* outside any callback: at once */
        free(c);
    }
    evhttp_free(http);
    event_base_loop(e.base, EVLOOP_NONBLOCK);
    event_free(sig_term);
    event_free(sig_int);
    event_base_free(e.base);
    libevent_global_shutdown();
    return 0;
}

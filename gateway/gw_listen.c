/*
 * gw_listen.c - listening sockets of the browser front (see gw_listen.h).
 */
#include "gw_listen.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "gw_log.h"

#define MAX_LISTENERS 128 /* listen + tls_listen: at most 64 each */
#define MAX_SETS 4        /* the front's and the admin's */
/* Closing waits this long at most for a listener's queue to empty (an
 * accept paused for lack of descriptors never empties it). */
#define CLOSE_WAIT_MS 2000

struct gw_listen_set {
    struct event_base *base;
    struct evconnlistener *l[MAX_LISTENERS]; /* borrowed: owned by evhttp */
    struct evhttp *http[MAX_LISTENERS];      /* borrowed */
    struct evhttp_bound_socket *bound[MAX_LISTENERS]; /* NULL once closed */
    size_t n;
    struct event *resume;
    struct event *closer;   /* gw_listen_set_close: until every queue is empty */
    struct timeval close_started;
    bool disabled;
    bool closing;
};

/* accept() failed hard (EMFILE/ENFILE: out of descriptors). libevent would
 * retry at once, forever: stop accepting for a moment instead, so pending
 * connections wait in the backlog while sessions end. The listener's user
 * pointer belongs to evhttp (evhttp_bind_listener sets it to its own
 * socket record), so the set is found here instead. */
static struct gw_listen_set *accept_sets[MAX_SETS];

static struct gw_listen_set *set_of(const struct evconnlistener *l)
{
    for (size_t s = 0; s < MAX_SETS; s++)
        for (size_t i = 0; accept_sets[s] && i < accept_sets[s]->n; i++)
            if (accept_sets[s]->l[i] == l)
                return accept_sets[s];
    return NULL;
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)arg;
    struct gw_listen_set *ls = set_of(l);
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("accept failed: %s; pausing accepts for 250 ms",
             evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    if (!ls)
        return;
    struct timeval tv = { 0, 250000 };
    event_add(ls->resume, &tv);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_listen_set *ls = arg;
    if (ls->disabled)
        return;
    for (size_t i = 0; i < ls->n; i++)
        if (ls->bound[i])
            evconnlistener_enable(ls->l[i]);
}

void gw_listen_fmt(const struct gw_listen *a, char *buf, size_t n)
{
    snprintf(buf, n, strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host,
             a->port);
}

/* Connections the kernel has queued on the listener (handshake done, not
 * yet accepted)? */
static bool queue_pending(struct evconnlistener *l)
{
    struct pollfd p = { .fd = evconnlistener_get_fd(l), .events = POLLIN };
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* Leave each address as soon as its accept queue is empty. While a queue
 * holds connections the listener stays open (and enabled) so that
 * libevent accepts them on this loop turn; the check runs again next
 * turn. The window between the check and the close is two syscalls: a
 * connection completing its handshake in it is reset by Linux (unless
 * net.ipv4.tcp_migrate_req = 1 moves it to the successor). */
static void close_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_listen_set *ls = arg;
    size_t waiting = 0, dropped = 0;
    struct timeval now, waited;
    evutil_gettimeofday(&now, NULL);
    evutil_timersub(&now, &ls->close_started, &waited);
    bool give_up = waited.tv_sec * 1000 + waited.tv_usec / 1000 >= CLOSE_WAIT_MS;
    for (size_t i = 0; i < ls->n; i++) {
        if (!ls->bound[i])
            continue;
        if (queue_pending(ls->l[i])) {
            if (!give_up) {
                waiting++;
                continue;
            }
            dropped++;
        }
        evhttp_del_accept_socket(ls->http[i], ls->bound[i]); /* closes it */
        ls->bound[i] = NULL;
        ls->l[i] = NULL;
    }
    if (waiting) {
        struct timeval tv = { 0, 1000 };
        event_add(ls->closer, &tv);
        return;
    }
    if (dropped)
        log_warn("listening sockets closed; %zu accept queues did not empty "
                 "within %d ms: their connections were reset", dropped,
                 CLOSE_WAIT_MS);
    else
        log_info("listening sockets closed");
}

struct gw_listen_set *gw_listen_set_new(struct event_base *base)
{
    struct gw_listen_set *ls = calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    ls->base = base;
    size_t slot = 0;
    while (slot < MAX_SETS && accept_sets[slot])
        slot++;
    ls->resume = evtimer_new(base, resume_cb, ls);
    ls->closer = evtimer_new(base, close_cb, ls);
    if (!ls->resume || !ls->closer || slot == MAX_SETS) {
        gw_listen_set_free(ls);
        return NULL;
    }
    accept_sets[slot] = ls;
    return ls;
}

/* The kernel's cap on a listen() backlog (net.core.somaxconn); 0 when it
 * cannot be read (not Linux). Read at start-up only. */
static long read_somaxconn(void)
{
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    long v = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

static int bind_one(struct gw_listen_set *ls, struct evhttp *http,
                    const struct gw_listen *a, int backlog, const char *what)
{
    char text[300];
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    gw_listen_fmt(a, text, sizeof text);
    if (ls->n >= MAX_LISTENERS) {
        log_error("%s %s: too many listeners", what, text);
        return GW_EINVAL;
    }
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&ss, &sslen) != 0) {
        log_error("%s %s: not a numeric address", what, text);
        return GW_EINVAL;
    }
    /* SO_REUSEPORT: binary upgrade (two processes on one address while the
     * old one drains). IPV6_V6ONLY: [::]:P and 0.0.0.0:P can both be
     * listed. */
    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    if (ss.ss_family == AF_INET6)
        flags |= LEV_OPT_BIND_IPV6ONLY;
    struct evconnlistener *l = evconnlistener_new_bind(ls->base, NULL, NULL,
        flags, backlog, (struct sockaddr *)&ss, sslen);
    if (!l) {
        log_error("cannot listen on %s (%s): %s", text, what, strerror(errno));
        return GW_EIO;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    struct evhttp_bound_socket *bound = evhttp_bind_listener(http, l);
    if (!bound) {
        evconnlistener_free(l);
        log_error("cannot listen on %s (%s): out of memory", text, what);
        return GW_EIO;
    }
    /* evhttp_bind_listener enables the listener (its callback set, the
     * event added) but ignores a failure to add the event (out of memory
     * for the descriptor's entry in libevent's map): the socket would
     * listen and nobody would accept. Enabling again adds it if it is not
     * added yet, and reports a failure. */
    if (evconnlistener_enable(l) < 0) {
        evhttp_del_accept_socket(http, bound); /* frees l, closes it */
        log_error("cannot listen on %s (%s): cannot watch the socket", text,
                  what);
        return GW_EIO;
    }
    ls->l[ls->n] = l;
    ls->http[ls->n] = http;
    ls->bound[ls->n++] = bound;
    log_info("bound %s (%s)", text, what);
    return 0;
}

int gw_listen_set_bind(struct gw_listen_set *ls, struct evhttp *http,
                       const struct gw_listen *addrs, size_t n, int backlog,
                       const char *what)
{
    static bool warned; /* once per process, not per listener */
    if (backlog < 1)
        backlog = 1; /* libevent 2.1: 0 skips listen(), -1 is its own 128 */
    long cap = n && !warned ? read_somaxconn() : 0;
    if (cap > 0 && backlog > cap) {
        warned = true;
        log_warn("listen_backlog %d is above net.core.somaxconn %ld: the "
                 "kernel queues at most %ld connections per listening socket",
                 backlog, cap, cap);
    }
    for (size_t i = 0; i < n; i++) {
        int rc = bind_one(ls, http, &addrs[i], backlog, what);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void gw_listen_set_disable(struct gw_listen_set *ls)
{
    if (!ls)
        return;
    ls->disabled = true;
    event_del(ls->resume);
    for (size_t i = 0; i < ls->n; i++)
        if (ls->bound[i])
            evconnlistener_disable(ls->l[i]);
}

void gw_listen_set_close(struct gw_listen_set *ls)
{
    if (!ls || ls->closing)
        return;
    ls->closing = true;
    evutil_gettimeofday(&ls->close_started, NULL);
    close_cb(-1, 0, ls);
}

void gw_listen_set_free(struct gw_listen_set *ls)
{
    if (!ls)
        return;
    if (ls->resume)
        event_free(ls->resume);
    if (ls->closer)
        event_free(ls->closer);
    for (size_t s = 0; s < MAX_SETS; s++)
        if (accept_sets[s] == ls)
            accept_sets[s] = NULL;
    free(ls);
}

/*
 * gw_listen.c - listening sockets of the browser front (see gw_listen.h).
 */
#include "gw_listen.h"

#include <errno.h>
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

struct gw_listen_set {
    struct event_base *base;
    struct evconnlistener *l[MAX_LISTENERS]; /* borrowed: owned by evhttp */
    size_t n;
    struct event *resume;
    bool disabled;
};

/* accept() failed hard (EMFILE/ENFILE: out of descriptors). libevent would
 * retry at once, forever: stop accepting for a moment instead, so pending
 * connections wait in the backlog while sessions end. The listener's user
 * pointer belongs to evhttp (evhttp_bind_listener sets it to its own
 * socket record), so the set is found here instead: one per process. */
static struct gw_listen_set *accept_set;

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)arg;
    struct gw_listen_set *ls = accept_set;
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
        evconnlistener_enable(ls->l[i]);
}

void gw_listen_fmt(const struct gw_listen *a, char *buf, size_t n)
{
    snprintf(buf, n, strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host,
             a->port);
}

struct gw_listen_set *gw_listen_set_new(struct event_base *base)
{
    struct gw_listen_set *ls = calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    ls->base = base;
    ls->resume = evtimer_new(base, resume_cb, ls);
    if (!ls->resume) {
        free(ls);
        return NULL;
    }
    accept_set = ls;
    return ls;
}

static int bind_one(struct gw_listen_set *ls, struct evhttp *http,
                    const struct gw_listen *a, const char *what)
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
        flags, 1024, (struct sockaddr *)&ss, sslen);
    if (!l) {
        log_error("cannot listen on %s (%s): %s", text, what, strerror(errno));
        return GW_EIO;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    if (!evhttp_bind_listener(http, l)) {
        evconnlistener_free(l);
        log_error("cannot listen on %s (%s)", text, what);
        return GW_EIO;
    }
    ls->l[ls->n++] = l;
    log_info("bound %s (%s)", text, what);
    return 0;
}

int gw_listen_set_bind(struct gw_listen_set *ls, struct evhttp *http,
                       const struct gw_listen *addrs, size_t n,
                       const char *what)
{
    for (size_t i = 0; i < n; i++) {
        int rc = bind_one(ls, http, &addrs[i], what);
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
        evconnlistener_disable(ls->l[i]);
}

void gw_listen_set_free(struct gw_listen_set *ls)
{
    if (!ls)
        return;
    event_free(ls->resume);
    if (accept_set == ls)
        accept_set = NULL;
    free(ls);
}

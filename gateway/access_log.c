/*
 * access_log.c - the access log (format and design in access_log.h).
 *
 * Lines go into one evbuffer, written by write(2) on a non-blocking
 * descriptor from a short timer (or at once past FLUSH_AT bytes), so a
 * burst of requests costs one write. A sink that does not keep up (a full
 * pipe, a stalled disk behind a FIFO) only fills the buffer up to its
 * limit; lines past it are dropped and counted. A regular file never
 * returns EAGAIN: there a slow disk can still stall a write, as for any
 * logger writing to a file.
 */
#include "access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "gw_common.h"
#include "gw_log.h"
#include "http_limits.h"
#include "http_util.h"

#define FLUSH_MS 100
#define FLUSH_AT (64 * 1024)
#define LINE_MAX_LEN 1024

struct access_rec {
    uint64_t t0_ns;          /* arrival (CLOCK_MONOTONIC) */
    time_t wall;             /* arrival, for TIME */
    uint64_t bytes_out;      /* body bytes streamed */
    uint64_t bytes_in;       /* request body bytes */
    int status;              /* of a streamed answer, once it has begun */
    bool busy;
    char version[4];
    char method[8];
    char sid[12];            /* GW_LOG_ID's cut */
    char transport[16];
    char route[24];
    char addr[48];
    char ua[64];
    char path[128];
};

struct access_log {
    struct event_base *base;
    char *path;              /* NULL: stderr */
    int fd;
    bool warned;             /* a write error was logged */
    struct evbuffer *buf;
    uint64_t limit;
    uint64_t dropped;
    struct event *timer;
    struct access_rec *recs; /* indexed by descriptor */
    size_t n_recs;
    time_t tcache;           /* TIME of the last line formatted */
    char tstr[32];
};

struct access_log *access_log_g;

/* ------------------------------------------------------------- output */

static void flush_now(struct access_log *al)
{
    while (evbuffer_get_length(al->buf)) {
        int n = evbuffer_write(al->buf, al->fd);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        if (!al->warned)
            log_warn("access_log: cannot write: %s; lines are lost until "
                     "the next SIGUSR1", n < 0 ? strerror(errno) : "no progress");
        al->warned = true;
        evbuffer_drain(al->buf, evbuffer_get_length(al->buf));
    }
    if (evbuffer_get_length(al->buf) && !event_pending(al->timer, EV_TIMEOUT, NULL)) {
        struct timeval tv;
        gw_ms_to_tv(FLUSH_MS, &tv);
        event_add(al->timer, &tv);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    flush_now(arg);
}

static void put_line(struct access_log *al, const char *line, size_t len)
{
    size_t have = evbuffer_get_length(al->buf);
    if (have + len > al->limit) {
        al->dropped++;
        return;
    }
    if (evbuffer_add(al->buf, line, len) != 0) {
        al->dropped++;
        return;
    }
    if (have + len >= FLUSH_AT) {
        flush_now(al);
    } else if (!event_pending(al->timer, EV_TIMEOUT, NULL)) {
        struct timeval tv;
        gw_ms_to_tv(FLUSH_MS, &tv);
        event_add(al->timer, &tv);
    }
}

/* --------------------------------------------------------- formatting */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *time_str(struct access_log *al, time_t t)
{
    if (t != al->tcache || !al->tstr[0]) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(al->tstr, sizeof al->tstr, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        al->tcache = t;
    }
    return al->tstr;
}

/* Copy s into out[cap] as one field: never empty ("-"), no space, quote,
 * backslash, control or non-ASCII byte (each becomes '?'), cut to fit. */
static void field_copy(char *out, size_t cap, const char *s, size_t n,
                       bool spaces_ok)
{
    size_t o = 0;
    for (size_t i = 0; s && i < n && s[i] && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        bool bad = c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ||
                   (c == ' ' && !spaces_ok);
        out[o++] = bad ? '?' : (char)c;
    }
    if (o == 0)
        out[o++] = '-';
    out[o] = 0;
}

static void emit(struct access_log *al, const struct access_rec *r, int status,
                 uint64_t bytes, bool timed, const char *end)
{
    char line[LINE_MAX_LEN];
    char ms[32] = "-";
    if (timed)
        snprintf(ms, sizeof ms, "%.3f", (double)(mono_ns() - r->t0_ns) / 1e6);
    int n = snprintf(line, sizeof line,
        "%s - - [%s] \"%s %s HTTP/%s\" %d %llu \"-\" \"%s\" %s %s %s %s %llu %s\n",
        r->addr[0] ? r->addr : "-", time_str(al, r->wall),
        r->method[0] ? r->method : "-", r->path[0] ? r->path : "-",
        r->version[0] ? r->version : "1.1", status, (unsigned long long)bytes,
        r->ua[0] ? r->ua : "-", ms, r->sid[0] ? r->sid : "-",
        r->route[0] ? r->route : "-", r->transport[0] ? r->transport : "-",
        (unsigned long long)r->bytes_in, end);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    put_line(al, line, (size_t)n);
}

/* ----------------------------------------------------- the record table */

static int conn_fd(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev ? (int)bufferevent_getfd(bev) : -1;
}

/* The record of descriptor fd; grow: make room for it (else NULL past the
 * table). */
static struct access_rec *rec_at(struct access_log *al, int fd, bool grow)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= al->n_recs) {
        if (!grow)
            return NULL;
        size_t n = al->n_recs ? al->n_recs : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct access_rec *r = realloc(al->recs, n * sizeof *r);
        if (!r)
            return NULL;
        memset(r + al->n_recs, 0, (n - al->n_recs) * sizeof *r);
        al->recs = r;
        al->n_recs = n;
    }
    return &al->recs[fd];
}

static struct access_rec *req_rec(struct evhttp_request *req)
{
    struct access_rec *r = rec_at(access_log_g,
                                  conn_fd(evhttp_request_get_connection(req)), false);
    return r && r->busy ? r : NULL;
}

void access_log_begin_(struct evhttp_request *req)
{
    struct access_log *al = access_log_g;
    struct access_rec *r = rec_at(al, conn_fd(evhttp_request_get_connection(req)), true);
    if (!r)
        return;
    if (r->busy) /* its end was never reported: say what we know */
        emit(al, r, 499, r->bytes_out, true, "gone");
    memset(r, 0, offsetof(struct access_rec, version));
    r->busy = true;
    r->t0_ns = mono_ns();
    r->wall = time(NULL);
    r->sid[0] = r->transport[0] = r->route[0] = 0;
    r->version[0] = (char)('0' + (req->major & 7));
    r->version[1] = '.';
    r->version[2] = (char)('0' + (req->minor & 7));
    r->version[3] = 0;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path || strncmp(path, HTTP_LIMITS_REFUSE_PREFIX,
                         strlen(HTTP_LIMITS_REFUSE_PREFIX)) == 0) {
        /* unparsable, or the request limits' synthetic refusal (whose
         * path holds a secret token): no request line to show */
        snprintf(r->method, sizeof r->method, "-");
        snprintf(r->path, sizeof r->path, "-");
    } else {
        snprintf(r->method, sizeof r->method, "%s",
                 http_method_name(evhttp_request_get_command(req)));
        char b[sizeof r->path];
        const char *p = http_log_uri(req, b, sizeof b);
        field_copy(r->path, sizeof r->path, p, strlen(p), false);
    }
    const char *a = http_client_addr(req);
    field_copy(r->addr, sizeof r->addr, a, strlen(a), false);
    const char *ua = http_in_header(req, "User-Agent");
    field_copy(r->ua, sizeof r->ua, ua, ua ? strlen(ua) : 0, true);
    r->bytes_in = evbuffer_get_length(evhttp_request_get_input_buffer(req));
}

void access_log_note_(struct evhttp_request *req, const char *route,
                      const char *sid, size_t sid_len, const char *transport)
{
    struct access_rec *r = req_rec(req);
    if (!r)
        return;
    if (route)
        field_copy(r->route, sizeof r->route, route, strlen(route), false);
    if (sid) {
        field_copy(r->sid, sizeof r->sid, sid, (size_t)GW_LOG_ID_LEN(sid_len),
                   false);
    }
    if (transport)
        field_copy(r->transport, sizeof r->transport, transport,
                   strlen(transport), false);
}

void access_log_bytes_(struct evhttp_request *req, size_t n)
{
    struct access_rec *r = req_rec(req);
    if (!r)
        return;
    /* the status sent: evhttp overwrites the request's (400) when the
     * connection fails, before anyone hears of it */
    if (!r->status)
        r->status = evhttp_request_get_response_code(req);
    r->bytes_out += n;
}

void access_log_done_(struct evhttp_request *req)
{
    struct access_rec *r = req_rec(req);
    if (!r)
        return;
    const char *cl = evhttp_find_header(evhttp_request_get_output_headers(req),
                                        "Content-Length");
    uint64_t bytes = cl ? strtoull(cl, NULL, 10) : r->bytes_out;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
        bytes = 0;
    r->busy = false;
    emit(access_log_g, r, evhttp_request_get_response_code(req), bytes, true, "done");
}

void access_log_gone_(struct evhttp_connection *evcon, struct evhttp_request *req)
{
    struct access_rec *r = rec_at(access_log_g, conn_fd(evcon), false);
    if (!r || !r->busy)
        return;
    (void)req;
    /* a streamed answer that had begun keeps its status; anything else
     * ended before an answer: 499, as nginx logs it (the request's own
     * code may be the 400 evhttp set on the failed connection) */
    r->busy = false;
    emit(access_log_g, r, r->status > 0 ? r->status : 499, r->bytes_out, true,
         "gone");
}

void access_log_ws_end_(struct evhttp_connection *evcon, uint64_t out, uint64_t in)
{
    struct access_rec *r = rec_at(access_log_g, conn_fd(evcon), false);
    if (!r || !r->busy)
        return;
    r->busy = false;
    r->bytes_in = in;
    emit(access_log_g, r, 101, out, true, "done");
}

void access_log_cut_(const char *addr, int status)
{
    struct access_rec r = { .wall = time(NULL) };
    field_copy(r.addr, sizeof r.addr, addr, addr ? strlen(addr) : 0, false);
    emit(access_log_g, &r, status, 0, false, "cut");
}

/* ------------------------------------------------------------ lifetime */

static int open_target(const char *path)
{
    if (!path) {
        /* a descriptor of our own for stderr's pipe or terminal, so that
         * O_NONBLOCK does not change fd 2 (the error log writes there);
         * a socket (journald) cannot be reopened: share fd 2 then */
        int fd = open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
        return fd >= 0 ? fd : fcntl(2, F_DUPFD_CLOEXEC, 3);
    }
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0640);
}

int access_log_open(struct event_base *base, const char *target,
                    uint64_t buffer_limit)
{
    if (!target || strcmp(target, "off") == 0)
        return 0;
    struct access_log *al = calloc(1, sizeof *al);
    if (!al)
        return GW_ENOMEM;
    al->base = base;
    al->limit = buffer_limit;
    al->path = strcmp(target, "stderr") == 0 ? NULL : strdup(target);
    al->buf = evbuffer_new();
    al->timer = evtimer_new(base, timer_cb, al);
    al->fd = (al->path || strcmp(target, "stderr") == 0) ? open_target(al->path) : -1;
    if (al->fd < 0 || !al->buf || !al->timer) {
        log_error("access_log %s: cannot open: %s", target, strerror(errno));
        access_log_g = al;
        access_log_close();
        return GW_EIO;
    }
    access_log_g = al;
    log_info("access log: %s", target);
    return 0;
}

void access_log_close(void)
{
    struct access_log *al = access_log_g;
    if (!al)
        return;
    access_log_g = NULL;
    if (al->fd >= 0 && al->buf && evbuffer_get_length(al->buf)) {
        /* at exit: wait a little for a pipe that is slow, not forever */
        int fl = fcntl(al->fd, F_GETFL);
        for (int i = 0; i < 20 && evbuffer_get_length(al->buf); i++) {
            int n = evbuffer_write(al->buf, al->fd);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;
            if (n <= 0 && fl >= 0 && (fl & O_NONBLOCK))
                usleep(50000);
        }
    }
    if (al->fd >= 0)
        close(al->fd);
    if (al->timer)
        event_free(al->timer);
    if (al->buf)
        evbuffer_free(al->buf);
    free(al->recs);
    free(al->path);
    free(al);
}

void access_log_reopen(void)
{
    struct access_log *al = access_log_g;
    if (!al)
        return;
    flush_now(al); /* what is buffered belongs to the old file */
    int fd = open_target(al->path);
    if (fd < 0) {
        log_error("SIGUSR1: access_log %s: cannot reopen: %s; keeping the "
                  "old file", al->path ? al->path : "stderr", strerror(errno));
        return;
    }
    /* lines still waiting (a stalled pipe) go to the new file */
    close(al->fd);
    al->fd = fd;
    al->warned = false;
    log_info("SIGUSR1: access log %s reopened", al->path ? al->path : "stderr");
    flush_now(al);
}

uint64_t access_log_dropped(void)
{
    return access_log_g ? access_log_g->dropped : 0;
}

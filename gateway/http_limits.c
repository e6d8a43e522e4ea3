/*
 * http_limits.c - connection limits, header/body deadlines and strict
 * request framing under evhttp (see http_limits.h for the design).
 *
 * Every accepted connection gets a struct lconn, the context of the filter
 * bufferevent evhttp reads from; it is freed by the filter's free_context
 * callback when evhttp frees the connection, which is also where the
 * connection counts go down. Per-address counts live in a small chained
 * hash table keyed by the peer address text.
 */
#include "http_limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "access_log.h"
#include "front_io.h"
#include "gw_common.h"
#include "gw_config.h"
#include "gw_log.h"
#include "http_util.h"

#define CLIENT_BUCKETS 1024
#define CHUNK_LINE_MAX 1024       /* a chunk-size line with extensions */
#define REFUSE_PREFIX HTTP_LIMITS_REFUSE_PREFIX
#define REFUSE_MARK_LEN 36        /* "<token>/<status>" */

/* ------------------------------------------------------- head checking */

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool ci_eq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = lit[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

int http_limits_check_request_line(const char *p, size_t n, bool *http10)
{
    /* method SP request-target SP HTTP/d.d, single spaces (RFC 9112 3) */
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p)
        return 400;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return 400;
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(p + n - t));
    if (!sp2 || sp2 == t)
        return 400;
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f)
            return 400;
    const char *v = sp2 + 1;
    size_t vn = (size_t)(p + n - v);
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' ||
        v[6] != '.' || v[7] < '0' || v[7] > '9')
        return 400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return 505;
    if (http10)
        *http10 = v[7] == '0';
    return 0;
}

/* 1*DIGIT below 10^18; anything else (sign, list, overflow) is malformed. */
static bool parse_length(const char *v, size_t n, uint64_t *out)
{
    if (n == 0 || n > 18)
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

#define REFUSE(st, w) do { out->status = (st); out->why = (w); return (st); } while (0)

int http_limits_check_head(const char *p, size_t n, struct http_head_info *out)
{
    memset(out, 0, sizeof *out);
    if (n > HTTP_LIMITS_HEAD_MAX)
        REFUSE(431, "request head too large");
    unsigned hosts = 0, lengths = 0, encodings = 0, lines = 0;
    bool te_chunked = false;
    const char *end = p + n;
    const char *line = p;
    bool first = true, ended = false;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            REFUSE(400, "request head without its empty line");
        size_t len = (size_t)(nl - line);
        if (len && line[len - 1] == '\r')
            len--;
        if (len + 2 > HTTP_LIMITS_LINE_MAX)
            REFUSE(431, "header line too long");
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)line[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                REFUSE(400, "control character in the request head");
        }
        if (first) {
            int st = http_limits_check_request_line(line, len, &out->http10);
            if (st)
                REFUSE(st, st == 505 ? "unsupported HTTP version" : "bad request line");
            first = false;
            line = nl + 1;
            continue;
        }
        if (len == 0) {
            ended = true; /* the empty line: end of the head */
            break;
        }
        if (++lines > HTTP_LIMITS_HEADERS_MAX)
            REFUSE(431, "too many header lines");
        if (line[0] == ' ' || line[0] == '\t')
            REFUSE(400, "obsolete header line folding");
        const char *colon = memchr(line, ':', len);
        if (!colon || colon == line)
            REFUSE(400, "header line without a name");
        for (const char *q = line; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                REFUSE(400, "invalid character in a header name (space before the colon?)");
        size_t name_n = (size_t)(colon - line);
        const char *v = colon + 1, *ve = line + len;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (ci_eq(line, name_n, "host")) {
            hosts++;
        } else if (ci_eq(line, name_n, "content-length")) {
            lengths++;
            if (!parse_length(v, (size_t)(ve - v), &out->length))
                REFUSE(400, "invalid Content-Length");
        } else if (ci_eq(line, name_n, "transfer-encoding")) {
            encodings++;
            te_chunked = ci_eq(v, (size_t)(ve - v), "chunked");
        } else if (ci_eq(line, name_n, "upgrade")) {
            out->upgrade = true;
        }
        line = nl + 1;
    }
    if (!ended)
        REFUSE(400, "request head without its empty line");
    if (lengths > 1)
        REFUSE(400, "more than one Content-Length");
    if (encodings && lengths)
        REFUSE(400, "Content-Length with Transfer-Encoding");
    if (encodings && out->http10)
        REFUSE(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (encodings > 1 || (encodings && !te_chunked))
        REFUSE(501, "unsupported Transfer-Encoding");
    if (hosts > 1 || (!out->http10 && hosts == 0))
        REFUSE(400, hosts ? "more than one Host" : "HTTP/1.1 request without Host");
    out->chunked = encodings != 0;
    return 0;
}

/* ------------------------------------------------------------- objects */

struct client {
    struct client *next;
    uint64_t count;
    time_t last_log;
    char addr[INET6_ADDRSTRLEN];
};

enum lstate {
    L_HEAD,        /* at a request head (or between requests) */
    L_BODY,        /* Content-Length body: `remaining` bytes to pass */
    L_CHUNK_SIZE,  /* a chunk-size line */
    L_CHUNK_DATA,  /* `remaining` bytes of chunk data */
    L_CHUNK_END,   /* the CRLF after chunk data */
    L_TRAILER,     /* trailer lines up to the empty line */
    L_PASS,        /* after an Upgrade request: not HTTP any more */
    L_REFUSED,     /* refused: everything from the client is dropped */
};

enum ltimer { T_NONE, T_HEAD, T_BODY, T_LINGER };

struct lconn {
    struct http_limits *lim;     /* NULL once the limits are freed */
    struct lconn *prev, *next;
    struct bufferevent *bev;     /* evhttp's bufferevent; NULL when lingering */
    struct evhttp_connection *evcon;   /* once set up */
    struct evbuffer_cb_entry *incb;    /* our callback on bev's input */
    struct evbuffer *hold;       /* an incomplete head evhttp must not see */
    struct client *client;       /* counted here once set up */
    struct event setup_ev;       /* runs once evhttp has the connection */
    struct event timer;          /* header deadline, body window, lingering */
    struct event rev;            /* lingering: the socket is readable */
    void (*user_closecb)(struct evhttp_connection *, void *);
    void *user_closearg;
    evutil_socket_t fd;
    enum lstate st;
    enum ltimer tkind;
    size_t partial;              /* bytes of an incomplete chunk line at the tail */
    size_t scanned;              /* held head bytes already searched for its end */
    uint64_t remaining;
    uint64_t chunked_total;      /* chunk data of this body so far */
    uint64_t window_bytes;       /* body bytes in this rate window */
    uint64_t window_need;        /* at least this many, or the body is cut */
    uint64_t linger_bytes;
    struct timeval linger_end;
    bool set_up;
    bool counted;
    bool registered;             /* in the descriptor table */
    bool line_checked;           /* the request line of the held head is checked */
    bool busy;                   /* in input_cb: our own buffer edits are ignored */
    bool linger;                 /* refused a request: linger when evhttp closes */
    bool body_refused;           /* a chunked body was ended with the mark */
    bool dead;                   /* evhttp freed it while we were busy */
    bool events_set;             /* setup_ev and timer are assigned */
};

struct limits_maker {
    struct http_limits *lim;
    struct bufferevent *(*make)(struct event_base *, void *);
    void *arg;
};

#define MAKERS_MAX 4

struct http_limits {
    struct event_base *base;
    const struct gw_config *cfg;
    uint64_t max_conns;
    struct lconn *conns;
    struct client *clients[CLIENT_BUCKETS];
    struct http_limits_stats stats;
    time_t last_global_log;
    const struct timeval *tv_header;   /* common timeouts, or tv_*_own */
    const struct timeval *tv_window;
    struct timeval tv_header_own, tv_window_own;
    struct limits_maker makers[MAKERS_MAX];
    size_t n_makers;
    char token[33];
};

/*
 * Descriptor -> connection, for the entry points that only have an
 * evhttp_connection (the close callback multiplexer, the request
 * callback). One table per process: one event loop, and descriptors are
 * unique within a process. It grows with the highest descriptor seen.
 */
static struct lconn **g_by_fd;
static size_t g_by_fd_cap;

static bool fd_register(struct lconn *c)
{
    if (c->fd < 0)
        return false;
    size_t fd = (size_t)c->fd;
    if (fd >= g_by_fd_cap) {
        size_t cap = g_by_fd_cap ? g_by_fd_cap : 1024;
        while (cap <= fd)
            cap *= 2;
        struct lconn **n = realloc(g_by_fd, cap * sizeof *n);
        if (!n)
            return false;
        memset(n + g_by_fd_cap, 0, (cap - g_by_fd_cap) * sizeof *n);
        g_by_fd = n;
        g_by_fd_cap = cap;
    }
    g_by_fd[fd] = c;
    c->registered = true;
    return true;
}

static void fd_unregister(struct lconn *c)
{
    if (c->registered && (size_t)c->fd < g_by_fd_cap && g_by_fd[c->fd] == c)
        g_by_fd[c->fd] = NULL;
    c->registered = false;
}

static struct lconn *lconn_of(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || (size_t)fd >= g_by_fd_cap)
        return NULL;
    struct lconn *c = g_by_fd[fd];
    return c && c->evcon == evcon && c->bev == bev ? c : NULL;
}

static unsigned addr_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % CLIENT_BUCKETS;
}

static struct client *client_get(struct http_limits *lim, const char *addr)
{
    unsigned h = addr_hash(addr);
    for (struct client *c = lim->clients[h]; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c;
    struct client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    c->next = lim->clients[h];
    lim->clients[h] = c;
    return c;
}

static void client_put(struct http_limits *lim, struct client *c)
{
    if (!c || --c->count > 0)
        return;
    struct client **pp = &lim->clients[addr_hash(c->addr)];
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    free(c);
}

/* Once a second per address at most (the other refusals only count). */
static bool log_allowed(time_t *last)
{
    time_t now = time(NULL);
    if (*last == now)
        return false;
    *last = now;
    return true;
}

static const char *conn_addr(const struct lconn *c)
{
    return c->client ? c->client->addr : "?";
}

/* ------------------------------------------------------ buffer editing */

/*
 * The input buffer's end is frozen by the socket bufferevent outside its
 * own reads; our edits (a synthetic request, bytes put back) happen inside
 * a read or on our own events, so thaw it for the edit when needed.
 */
static int input_add_buffer(struct evbuffer *in, struct evbuffer *src)
{
    if (evbuffer_add_buffer(in, src) == 0)
        return 0;
    evbuffer_unfreeze(in, 0);
    int rc = evbuffer_add_buffer(in, src);
    evbuffer_freeze(in, 0);
    return rc;
}

static int input_add(struct evbuffer *in, const char *p, size_t n)
{
    if (evbuffer_add(in, p, n) == 0)
        return 0;
    evbuffer_unfreeze(in, 0);
    int rc = evbuffer_add(in, p, n);
    evbuffer_freeze(in, 0);
    return rc;
}

/* Move the last n bytes of in to the end of dst (dst may be NULL: drop
 * them). evbuffer only removes from the front, so the front part is set
 * aside and put back; whole chains move without copying. */
static void take_tail(struct evbuffer *in, size_t n, struct evbuffer *dst)
{
    size_t len = evbuffer_get_length(in);
    if (n > len)
        n = len;
    if (n == len) {
        if (dst)
            evbuffer_add_buffer(dst, in);
        else
            evbuffer_drain(in, len);
        return;
    }
    struct evbuffer *front = evbuffer_new();
    if (!front || evbuffer_remove_buffer(in, front, len - n) != (int)(len - n)) {
        /* no memory: the bytes stay; the connection is cut by the caller's
         * state (refused) or by a timeout */
        if (front) {
            input_add_buffer(in, front);
            evbuffer_free(front);
        }
        return;
    }
    if (dst)
        evbuffer_add_buffer(dst, in);
    else
        evbuffer_drain(in, evbuffer_get_length(in));
    input_add_buffer(in, front);
    evbuffer_free(front);
}

/* ---------------------------------------------------------- deadlines */

static void timer_set(struct lconn *c, enum ltimer kind, const struct timeval *tv)
{
    c->tkind = kind;
    event_add(&c->timer, tv);
}

static void timer_clear(struct lconn *c)
{
    if (c->tkind != T_NONE) {
        event_del(&c->timer);
        c->tkind = T_NONE;
    }
}

static uint64_t window_s(const struct lconn *c)
{
    uint64_t s = c->lim->cfg->header_timeout_ms / 1000;
    return s ? s : 1;
}

static void arm_body_window(struct lconn *c)
{
    uint64_t rate = c->lim->cfg->min_body_rate;
    if (!rate) {
        timer_clear(c);
        return;
    }
    uint64_t need = rate * window_s(c);
    uint64_t left = c->st == L_BODY ? c->remaining : 0;
    c->window_need = left && left < need ? left : need;
    c->window_bytes = 0;
    timer_set(c, T_BODY, c->lim->tv_window);
}

static bool in_body(const struct lconn *c)
{
    return c->st == L_BODY || c->st == L_CHUNK_SIZE || c->st == L_CHUNK_DATA ||
           c->st == L_CHUNK_END || c->st == L_TRAILER;
}

/* Close the connection as evhttp does on its own timeout (no answer). */
static void cut(struct lconn *c)
{
    c->st = L_REFUSED;
    c->linger = false;
    timer_clear(c);
    if (c->hold)
        evbuffer_drain(c->hold, evbuffer_get_length(c->hold));
    bufferevent_trigger_event(c->bev, BEV_EVENT_TIMEOUT | BEV_EVENT_READING,
                              BEV_TRIG_DEFER_CALLBACKS);
}

static void linger_finish(struct lconn *c);

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct lconn *c = arg;
    enum ltimer kind = c->tkind;
    c->tkind = T_NONE;
    if (kind == T_LINGER) {
        linger_finish(c); /* frees c */
        return;
    }
    if (!c->bev || !c->lim)
        return;
    /* evhttp not reading (it is answering an earlier request): not the
     * client's delay; look again later. */
    if (!(bufferevent_get_enabled(c->bev) & EV_READ)) {
        if (kind == T_BODY)
            arm_body_window(c);
        else if (kind == T_HEAD)
            timer_set(c, T_HEAD, c->lim->tv_header);
        return;
    }
    if (kind == T_HEAD && c->st == L_HEAD) {
        c->lim->stats.header_timeouts++;
        if (c->client && log_allowed(&c->client->last_log))
            log_info("%s: request head not complete within header_timeout; "
                     "connection closed", conn_addr(c));
        access_log_cut(conn_addr(c), 408);
        cut(c);
    } else if (kind == T_BODY && in_body(c)) {
        if (c->window_bytes >= c->window_need) {
            arm_body_window(c);
            return;
        }
        c->lim->stats.body_timeouts++;
        if (c->client && log_allowed(&c->client->last_log))
            log_info("%s: request body slower than min_body_rate; "
                     "connection closed", conn_addr(c));
        access_log_cut(conn_addr(c), 408);
        cut(c);
    }
}

/* ---------------------------------------------------- refusing requests */

/*
 * A refused head: evhttp gets, at the refused head's place in the byte
 * stream, a synthetic request for a secret path that http_limits_request
 * answers with `status` and Connection: close. Everything from the refused
 * head on is dropped, and so is whatever the client sends after it; the
 * connection lingers when evhttp closes it (see linger_start).
 */
static void refuse_head(struct lconn *c, struct evbuffer *in, size_t tail,
                        int status, const char *why)
{
    c->lim->stats.bad_requests++;
    log_info("%s: request refused with %d: %s", conn_addr(c), status, why);
    take_tail(in, tail, NULL);
    if (c->hold)
        evbuffer_drain(c->hold, evbuffer_get_length(c->hold));
    c->st = L_REFUSED;
    c->linger = true;
    timer_clear(c);
    char req[160];
    int n = snprintf(req, sizeof req, "GET " REFUSE_PREFIX "%s/%d HTTP/1.1\r\n"
                     "Host: pollgate\r\nConnection: close\r\n\r\n",
                     c->lim->token, status);
    input_add(in, req, (size_t)n);
}

/*
 * A refused chunked body: evhttp is reading it, so no request can be put
 * before it. The body is ended where it went wrong (at a chunk-size line)
 * with one last chunk naming the refusal ("<token>/<status>"), which
 * http_limits_request finds before any handler sees the request (libevent
 * 2.1 drops trailer fields, so the mark is body data). A bad trailer
 * line, after the last chunk, is cut instead (no answer).
 */
static void refuse_body(struct lconn *c, struct evbuffer *in, size_t tail,
                        int status, const char *why)
{
    c->lim->stats.bad_requests++;
    log_info("%s: request body refused with %d: %s", conn_addr(c), status, why);
    take_tail(in, tail, NULL);
    if (c->st == L_TRAILER) {
        access_log_cut(conn_addr(c), status);
        cut(c);
        return;
    }
    c->st = L_REFUSED;
    c->linger = true;
    c->body_refused = true;
    timer_clear(c);
    char end[80];
    int n = snprintf(end, sizeof end, "%x\r\n%s/%03d\r\n0\r\n\r\n",
                     REFUSE_MARK_LEN, c->lim->token, status);
    input_add(in, end, (size_t)n);
}

/* ------------------------------------------------------------ framing */

static void head_done(struct lconn *c, const struct http_head_info *hi)
{
    c->scanned = 0;
    c->line_checked = false;
    if (hi->upgrade) {
        c->st = L_PASS;
    } else if (hi->chunked) {
        c->st = L_CHUNK_SIZE;
        c->chunked_total = 0;
    } else if (hi->length) {
        c->st = L_BODY;
        c->remaining = hi->length;
    } else {
        c->st = L_HEAD;
    }
}

/* Find the end of the head in p[0..n): the offset after its empty line.
 * *scanned: bytes already searched (for a held head that grows). */
static size_t head_end(size_t *scanned, const char *p, size_t n)
{
    size_t i = *scanned > 2 ? *scanned - 2 : 0;
    for (; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    *scanned = n;
    return 0;
}

/*
 * Check what is there of a head at h[0..look) (look: at most
 * HEAD_MAX + 4 of avail bytes). Returns the head's length when it is
 * complete and acceptable (hi filled), 0 when more is needed, or -status
 * with *why set when it is refused.
 */
static long check_head_bytes(struct lconn *c, const char *h, size_t look,
                             size_t avail, struct http_head_info *hi,
                             const char **why)
{
    if (!c->line_checked) {
        /* the request line is checked as soon as it is complete: an
         * HTTP/0.9 request has no empty line after it */
        const char *nl = memchr(h, '\n', look);
        if (nl) {
            size_t ln = (size_t)(nl - h);
            if (ln && h[ln - 1] == '\r')
                ln--;
            int st = ln + 2 > HTTP_LIMITS_LINE_MAX ? 431
                     : http_limits_check_request_line(h, ln, NULL);
            if (st) {
                *why = st == 431 ? "request line too long" : "bad request line";
                return -st;
            }
            c->line_checked = true;
        } else if (look > HTTP_LIMITS_LINE_MAX) {
            *why = "request line too long";
            return -431;
        }
    }
    size_t n = head_end(&c->scanned, h, look);
    if (!n) {
        if (look > HTTP_LIMITS_HEAD_MAX || avail > HTTP_LIMITS_HEAD_MAX + 4) {
            *why = "request head too large";
            return -431;
        }
        return 0;
    }
    if (http_limits_check_head(h, n, hi)) {
        *why = hi->why;
        return -hi->status;
    }
    if (!hi->chunked && !hi->upgrade && hi->length > c->lim->cfg->max_body) {
        *why = "declared body over max_body";
        return -413;
    }
    return (long)n;
}

/* Empty lines before a head are ignored (RFC 9112 2.2); they can only be
 * dropped from a buffer's front, so such a head is always held. */
static void hold_strip_empty_lines(struct evbuffer *hold)
{
    for (;;) {
        size_t avail = evbuffer_get_length(hold);
        unsigned char *p = evbuffer_pullup(hold, avail < 2 ? (ev_ssize_t)avail : 2);
        if (!p || !avail)
            return;
        if (p[0] == '\n')
            evbuffer_drain(hold, 1);
        else if (p[0] == '\r' && avail >= 2 && p[1] == '\n')
            evbuffer_drain(hold, 2);
        else
            return;
    }
}

/*
 * The head is in c->hold (all bytes received since its start). Complete
 * and acceptable: it and everything after it go back to the input for
 * evhttp, and the bytes after the head are returned for framing.
 */
static size_t step_held(struct lconn *c, struct evbuffer *in)
{
    hold_strip_empty_lines(c->hold);
    size_t avail = evbuffer_get_length(c->hold);
    if (!avail)
        return 0;
    size_t look = avail < HTTP_LIMITS_HEAD_MAX + 4 ? avail : HTTP_LIMITS_HEAD_MAX + 4;
    const char *h = (const char *)evbuffer_pullup(c->hold, (ev_ssize_t)look);
    if (!h)
        return 0;
    struct http_head_info hi;
    const char *why = NULL;
    long r = check_head_bytes(c, h, look, avail, &hi, &why);
    if (r < 0) {
        refuse_head(c, in, 0, (int)-r, why);
        return 0;
    }
    if (r == 0)
        return 0;
    head_done(c, &hi);
    input_add_buffer(in, c->hold);
    return avail - (size_t)r;
}

/* At a head with `tail` unframed bytes at the end of in. Returns how many
 * of them are left after it (0 when it is held or refused). */
static size_t step_head(struct lconn *c, struct evbuffer *in, size_t tail)
{
    size_t len = evbuffer_get_length(in);
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v;
    /* the fast path: the whole head in one piece of the buffer */
    if (evbuffer_ptr_set(in, &pos, len - tail, EVBUFFER_PTR_SET) == 0 &&
        evbuffer_peek(in, (ev_ssize_t)tail, &pos, &v, 1) == 1 &&
        v.iov_len >= tail) {
        const char *h = v.iov_base;
        if (h[0] != '\r' && h[0] != '\n') {
            size_t look = tail < HTTP_LIMITS_HEAD_MAX + 4 ? tail : HTTP_LIMITS_HEAD_MAX + 4;
            struct http_head_info hi;
            const char *why = NULL;
            c->scanned = 0;
            long r = check_head_bytes(c, h, look, tail, &hi, &why);
            if (r < 0) {
                refuse_head(c, in, tail, (int)-r, why);
                return 0;
            }
            if (r > 0) {
                head_done(c, &hi);
                return tail - (size_t)r;
            }
            /* incomplete: held below; the hold starts with these same
             * bytes, so line_checked and scanned stay valid */
        }
    }
    if (!c->hold && !(c->hold = evbuffer_new())) {
        cut(c);
        return 0;
    }
    take_tail(in, tail, c->hold);
    return step_held(c, in);
}

/* `tail` bytes from the end of in: a line of at most max bytes.
 * Copies it into out (NUL-free length in *ln, line end excluded) and
 * returns its length with the line end, or 0 when incomplete. */
static size_t tail_line(struct evbuffer *in, size_t tail, char *out,
                        size_t max, size_t *ln)
{
    size_t len = evbuffer_get_length(in);
    size_t look = tail < max ? tail : max;
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(in, &pos, len - tail, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(in, &pos, out, look) != (ev_ssize_t)look)
        return 0;
    const char *nl = memchr(out, '\n', look);
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - out) + 1;
    *ln = n - 1;
    if (*ln && out[*ln - 1] == '\r')
        (*ln)--;
    return n;
}

/* chunk-size [; ext] CRLF: 1-15 hex digits (evhttp's int64 limit), or a
 * trailer line. Returns the bytes left after it, or `tail` with
 * c->partial set when the line is incomplete. */
static size_t step_chunk_line(struct lconn *c, struct evbuffer *in, size_t tail)
{
    char p[CHUNK_LINE_MAX];
    size_t ln = 0;
    size_t len = tail_line(in, tail, p, sizeof p, &ln);
    if (!len) {
        if (tail >= CHUNK_LINE_MAX) {
            refuse_body(c, in, tail, 400, "chunk-size line too long");
            return 0;
        }
        c->partial = tail;
        return 0;
    }
    for (size_t i = 0; i < ln; i++)
        if ((unsigned char)p[i] < 0x20 && p[i] != '\t') {
            refuse_body(c, in, tail, 400, c->st == L_TRAILER
                        ? "control character in a trailer"
                        : "control character in a chunk extension");
            return 0;
        }
    c->window_bytes += len;
    if (c->st == L_TRAILER) {
        if (ln == 0)
            c->st = L_HEAD;
        return tail - len;
    }
    uint64_t size = 0;
    size_t i = 0;
    for (; i < ln && i < 16; i++) {
        char x = p[i];
        int d = x >= '0' && x <= '9' ? x - '0' : x >= 'a' && x <= 'f' ? x - 'a' + 10
                : x >= 'A' && x <= 'F' ? x - 'A' + 10 : -1;
        if (d < 0)
            break;
        size = size * 16 + (uint64_t)d;
    }
    if (i == 0 || i > 15 || (i < ln && p[i] != ';' && p[i] != ' ' && p[i] != '\t')) {
        refuse_body(c, in, tail, 400, "invalid chunk size");
        return 0;
    }
    c->chunked_total += size;
    if (c->chunked_total > c->lim->cfg->max_body) {
        refuse_body(c, in, tail, 413, "chunked body over max_body");
        return 0;
    }
    if (size == 0) {
        c->st = L_TRAILER;
    } else {
        c->st = L_CHUNK_DATA;
        c->remaining = size;
    }
    return tail - len;
}

static size_t step_chunk_end(struct lconn *c, struct evbuffer *in, size_t tail)
{
    char p[2];
    size_t len = evbuffer_get_length(in);
    size_t look = tail < 2 ? tail : 2;
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(in, &pos, len - tail, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(in, &pos, p, look) != (ev_ssize_t)look)
        return 0;
    size_t n = p[0] == '\n' ? 1 : (look == 2 && p[0] == '\r' && p[1] == '\n') ? 2 : 0;
    if (!n) {
        if (p[0] == '\r' && look < 2) {
            c->partial = tail;
            return 0;
        }
        refuse_body(c, in, tail, 400, "chunk data longer than its size");
        return 0;
    }
    c->window_bytes += n;
    c->st = L_CHUNK_SIZE;
    return tail - n;
}

/* Frame the last `tail` bytes of in (the new ones, and an incomplete
 * chunk line from before). */
static void frame(struct lconn *c, struct evbuffer *in, size_t tail)
{
    if (c->hold && evbuffer_get_length(c->hold)) {
        /* a held head grows: everything new joins it */
        take_tail(in, tail, c->hold);
        tail = step_held(c, in);
    }
    while (tail) {
        switch (c->st) {
        case L_REFUSED:
            take_tail(in, tail, NULL);
            return;
        case L_PASS:
            return;
        case L_HEAD:
            tail = step_head(c, in, tail);
            break;
        case L_BODY:
        case L_CHUNK_DATA: {
            size_t n = c->remaining < tail ? (size_t)c->remaining : tail;
            c->remaining -= n;
            c->window_bytes += n;
            tail -= n;
            if (!c->remaining)
                c->st = c->st == L_BODY ? L_HEAD : L_CHUNK_END;
            break;
        }
        case L_CHUNK_SIZE:
        case L_TRAILER:
            tail = step_chunk_line(c, in, tail);
            break;
        case L_CHUNK_END:
            tail = step_chunk_end(c, in, tail);
            break;
        }
    }
}

/* The deadlines after framing: a head that is not complete has
 * header_timeout from its first byte, an unfinished body its rate
 * windows; nothing is armed when a request came whole. */
static void deadlines(struct lconn *c)
{
    if (c->st == L_HEAD && c->hold && evbuffer_get_length(c->hold)) {
        if (c->tkind != T_HEAD)
            timer_set(c, T_HEAD, c->lim->tv_header);
    } else if (in_body(c)) {
        if (c->tkind != T_BODY)
            arm_body_window(c);
    } else {
        timer_clear(c);
    }
}

static void conn_setup(struct lconn *c);
static void conn_release(struct lconn *c);

/* Bytes arrived in evhttp's input buffer (a read, before evhttp's read
 * callback runs). */
static void input_cb(struct evbuffer *in, const struct evbuffer_cb_info *info,
                     void *arg)
{
    struct lconn *c = arg;
    if (!info->n_added || c->busy)
        return;
    c->busy = true;
    bool fresh = !c->set_up;
    if (fresh)
        conn_setup(c); /* may refuse: then the input is the refusal */
    if (c->lim && c->st != L_PASS && !c->dead &&
        !(fresh && c->st == L_REFUSED)) {
        size_t tail = info->n_added + c->partial;
        c->partial = 0;
        frame(c, in, tail);
        if (c->st != L_REFUSED)
            deadlines(c);
    }
    c->busy = false;
    if (c->dead)
        conn_release(c);
}

/* ------------------------------------------------------------ lingering */

static void linger_finish(struct lconn *c)
{
    event_del(&c->rev);
    timer_clear(c);
    fd_unregister(c);
    if (c->fd >= 0)
        evutil_closesocket(c->fd);
    c->fd = -1;
    conn_release(c);
}

static void linger_rearm(struct lconn *c)
{
    struct timeval now, left, tv;
    event_base_gettimeofday_cached(event_get_base(&c->rev), &now);
    if (!evutil_timercmp(&now, &c->linger_end, <)) {
        left.tv_sec = 0;
        left.tv_usec = 0;
    } else {
        evutil_timersub(&c->linger_end, &now, &left);
    }
    gw_ms_to_tv(c->lim ? c->lim->cfg->lingering_timeout_ms : 0, &tv);
    timer_set(c, T_LINGER, evutil_timercmp(&left, &tv, <) ? &left : &tv);
}

static void linger_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct lconn *c = arg;
    static char sink[16384];
    ssize_t n = recv(fd, sink, sizeof sink, 0);
    if (n > 0) {
        c->linger_bytes += (uint64_t)n;
        if (c->lim && c->linger_bytes <= c->lim->cfg->lingering_bytes) {
            linger_rearm(c);
            return;
        }
        if (c->client && log_allowed(&c->client->last_log))
            log_info("%s: client still sending after a refusal; cut after "
                     "%llu bytes", conn_addr(c), (unsigned long long)c->linger_bytes);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    log_debug("%s: lingering close done (%llu bytes discarded)", conn_addr(c),
              (unsigned long long)c->linger_bytes);
    linger_finish(c);
}

/*
 * evhttp is closing a connection whose request we refused: its answer
 * has been handed to the kernel. Rather than close at once (a client
 * still sending would get a reset, and with it often lose the answer),
 * take the socket from the bufferevent (which then frees without closing
 * it; evhttp shuts our write side after this), and read and discard for
 * at most lingering_time / lingering_timeout / lingering_bytes. The TLS
 * state goes with the bufferevent: what a TLS client still sends is
 * discarded as raw bytes.
 */
static bool linger_start(struct lconn *c)
{
    const struct gw_config *cfg = c->lim->cfg;
    evutil_socket_t fd = c->fd;
    if (!cfg->lingering_time_ms || fd < 0 || c->bev == NULL)
        return false;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    /* bufferevent_openssl re-assigns its events on setfd without
     * deleting them once the descriptor is unset: they must be idle */
    if (event_pending(&c->bev->ev_read, EV_READ | EV_TIMEOUT, NULL) ||
        event_pending(&c->bev->ev_write, EV_WRITE | EV_TIMEOUT, NULL) ||
        bufferevent_setfd(c->bev, -1) != 0)
        return false;
    shutdown(fd, SHUT_WR);
    c->bev = NULL;
    c->evcon = NULL;
    event_assign(&c->rev, c->lim->base, fd, EV_READ | EV_PERSIST, linger_read_cb, c);
    event_add(&c->rev, NULL);
    struct timeval now, tt;
    event_base_gettimeofday_cached(c->lim->base, &now);
    gw_ms_to_tv(cfg->lingering_time_ms, &tt);
    evutil_timeradd(&now, &tt, &c->linger_end);
    linger_rearm(c);
    log_debug("%s: lingering close after a refusal", conn_addr(c));
    return true;
}

/* ------------------------------------------------ connection lifetime */

/* Uncount and free (the descriptor is closed or not ours). */
static void conn_release(struct lconn *c)
{
    struct http_limits *lim = c->lim;
    if (lim) {
        if (c->counted) {
            lim->stats.connections--;
            client_put(lim, c->client);
        }
        if (c->prev)
            c->prev->next = c->next;
        else
            lim->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    fd_unregister(c);
    if (c->events_set) {
        event_del(&c->setup_ev);
        event_del(&c->timer);
        event_del(&c->rev);
    }
    if (c->hold)
        evbuffer_free(c->hold);
    free(c);
}

/* evhttp frees the connection (every way it goes: closed after an answer,
 * error, timeout, evhttp_free, a taken-over WebSocket freed by its owner).
 * The bufferevent is freed right after this returns. */
static void closecb(struct evhttp_connection *evcon, void *arg)
{
    struct lconn *c = arg;
    void (*ucb)(struct evhttp_connection *, void *) = c->user_closecb;
    c->user_closecb = NULL;
    if (ucb)
        ucb(evcon, c->user_closearg);
    if (c->bev && c->incb) {
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->incb);
        c->incb = NULL;
    }
    timer_clear(c);
    if (c->linger && c->lim && !c->busy && linger_start(c))
        return;
    fd_unregister(c);
    c->bev = NULL;
    c->evcon = NULL;
    if (c->busy)
        c->dead = true; /* input_cb finishes it */
    else
        conn_release(c);
}

/* Evhttp answers the synthetic request that refuses the connection. */
static void refuse_conn(struct lconn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->st = L_REFUSED;
    c->linger = false; /* a flood is not kept open any longer */
    char req[160];
    int n = snprintf(req, sizeof req, "GET " REFUSE_PREFIX "%s/503 HTTP/1.1\r\n"
                     "Host: pollgate\r\nConnection: close\r\n\r\n", c->lim->token);
    bool busy = c->busy;
    c->busy = true;
    take_tail(in, evbuffer_get_length(in), NULL);
    input_add(in, req, (size_t)n);
    c->busy = busy;
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
                        BEV_TRIG_DEFER_CALLBACKS);
}

static void peer_text(struct lconn *c, char *addr, size_t n)
{
    snprintf(addr, n, "?");
    /* the address evhttp got from accept(); getpeername only without */
    const struct sockaddr *sa = evhttp_connection_get_addr(c->evcon);
    struct sockaddr_storage ss;
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        socklen_t sl = sizeof ss;
        if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
            return;
        sa = (const struct sockaddr *)&ss;
    }
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, (socklen_t)n);
}

/*
 * evhttp has set the connection up (first loop turn, or the first bytes):
 * find its evhttp_connection (libevent 2.1's evhttp passes it as the
 * bufferevent callbacks' argument), take its close callback, count the
 * connection for its address and refuse it past a limit.
 */
static void conn_setup(struct lconn *c)
{
    struct http_limits *lim = c->lim;
    c->set_up = true;
    event_del(&c->setup_ev);
    bufferevent_event_cb ecb = NULL;
    void *cbarg = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &ecb, &cbarg);
    struct bufferevent *bev = c->bev;
    if (!ecb || !cbarg || !lim) {
        /* evhttp gave the connection up before we saw it */
        evbuffer_remove_cb_entry(bufferevent_get_input(bev), c->incb);
        c->incb = NULL;
        c->bev = NULL;
        if (c->busy)
            c->dead = true;
        else
            conn_release(c);
        bufferevent_decref(bev);
        return;
    }
    c->evcon = cbarg;
    c->fd = bufferevent_getfd(bev);
    if (c->fd >= 0) {
        /* Every write to a browser is a whole answer or a batch of
         * messages: none may wait (Nagle) for the acknowledgement of the
         * one before, which a browser may delay by up to 40 ms. */
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (!fd_register(c)) {
        /* no table entry, no close callback: serve it unchecked */
        evbuffer_remove_cb_entry(bufferevent_get_input(bev), c->incb);
        c->incb = NULL;
        c->bev = NULL;
        c->evcon = NULL;
        c->dead = true;
        if (!c->busy)
            conn_release(c);
        bufferevent_decref(bev);
        return;
    }
    evhttp_connection_set_closecb(c->evcon, closecb, c);
    bufferevent_decref(bev); /* evhttp holds its own */
    char addr[INET6_ADDRSTRLEN];
    peer_text(c, addr, sizeof addr);
    c->client = client_get(lim, addr);
    if (c->client)
        c->client->count++;
    lim->stats.connections++;
    c->counted = true;
    if (lim->stats.connections > lim->max_conns) {
        lim->stats.refused_max++;
        if (log_allowed(&lim->last_global_log))
            log_warn("%s: connection refused: max_connections (%llu) reached",
                     addr, (unsigned long long)lim->max_conns);
        refuse_conn(c);
        return;
    }
    uint64_t per = lim->cfg->max_connections_per_client;
    if (per && c->client && c->client->count > per) {
        lim->stats.refused_per_client++;
        if (log_allowed(&c->client->last_log))
            log_warn("%s: connection refused: max_connections_per_client "
                     "(%llu) reached", addr, (unsigned long long)per);
        refuse_conn(c);
        return;
    }
    /* The header deadline starts with the first byte of a head: a
     * connection that sends nothing is idle like a keep-alive one
     * (request_timeout); browsers open such connections ahead of need. */
}

static void setup_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct lconn *c = arg;
    if (!c->set_up)
        conn_setup(c);
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    struct limits_maker *m = arg;
    struct bufferevent *bev = m->make ? m->make(base, m->arg)
        : front_io_new(base, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    struct lconn *c = calloc(1, sizeof *c);
    if (!c)
        return bev; /* served, unchecked */
    c->incb = evbuffer_add_cb(bufferevent_get_input(bev), input_cb, c);
    if (!c->incb) {
        free(c);
        return bev;
    }
    struct http_limits *lim = m->lim;
    c->lim = lim;
    c->bev = bev;
    c->fd = -1;
    event_assign(&c->setup_ev, base, -1, 0, setup_cb, c);
    event_assign(&c->timer, base, -1, 0, timer_cb, c);
    event_assign(&c->rev, base, -1, 0, linger_read_cb, c);
    c->events_set = true;
    /* evhttp could free the bufferevent before setup (an allocation
     * failure while it builds the connection): hold it until then */
    bufferevent_incref(bev);
    c->next = lim->conns;
    if (c->next)
        c->next->prev = c;
    lim->conns = c;
    event_active(&c->setup_ev, EV_TIMEOUT, 1);
    return bev;
}

/* ------------------------------------------------------ public: object */

struct http_limits *http_limits_new(struct event_base *base,
                                    const struct gw_config *cfg)
{
    struct http_limits *lim = calloc(1, sizeof *lim);
    if (!lim)
        return NULL;
    lim->base = base;
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) {
        free(lim);
        return NULL;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(lim->token + 2 * i, 3, "%02x", r[i]);
    http_limits_set_config(lim, cfg);
    return lim;
}

void http_limits_set_config(struct http_limits *lim, const struct gw_config *cfg)
{
    gw_config_ref(cfg);
    gw_config_unref(lim->cfg);
    lim->cfg = cfg;
    lim->max_conns = cfg->max_connections;
    front_io_set_enabled(cfg->front_io);
    if (!lim->max_conns) {
        /* half the descriptors: the other half is for the upstream
         * connections of the sessions these browsers hold */
        struct rlimit rl;
        uint64_t nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
                          rl.rlim_cur != RLIM_INFINITY ? (uint64_t)rl.rlim_cur : 1024;
        lim->max_conns = nofile > 228 ? (nofile - 100) / 2 : 64;
    }
    /* the two fixed deadlines as common timeouts: O(1) to arm and clear */
    gw_ms_to_tv(cfg->header_timeout_ms, &lim->tv_header_own);
    uint64_t ws = cfg->header_timeout_ms / 1000;
    lim->tv_window_own.tv_sec = (time_t)(ws ? ws : 1);
    lim->tv_header = event_base_init_common_timeout(lim->base, &lim->tv_header_own);
    lim->tv_window = event_base_init_common_timeout(lim->base, &lim->tv_window_own);
    if (!lim->tv_header)
        lim->tv_header = &lim->tv_header_own;
    if (!lim->tv_window)
        lim->tv_window = &lim->tv_window_own;
}

void http_limits_free(struct http_limits *lim)
{
    if (!lim)
        return;
    /* Lingering sockets are closed; a connection still attached to
     * evhttp (none after evhttp_free) is left unchecked. */
    while (lim->conns) {
        struct lconn *c = lim->conns;
        lim->conns = c->next;
        c->lim = NULL;
        c->prev = c->next = NULL;
        c->counted = false;
        if (c->bev) {
            if (c->incb)
                evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->incb);
            if (c->evcon)
                evhttp_connection_set_closecb(c->evcon, c->user_closecb,
                                              c->user_closearg);
            if (!c->set_up)
                bufferevent_decref(c->bev);
            c->bev = NULL;
            conn_release(c);
        } else {
            event_del(&c->rev);
            if (c->fd >= 0)
                evutil_closesocket(c->fd);
            c->fd = -1;
            conn_release(c);
        }
    }
    for (size_t i = 0; i < CLIENT_BUCKETS; i++)
        while (lim->clients[i]) {
            struct client *n = lim->clients[i]->next;
            free(lim->clients[i]);
            lim->clients[i] = n;
        }
    gw_config_unref(lim->cfg);
    free(lim);
}

void http_limits_attach_with(struct http_limits *lim, struct evhttp *http,
                             struct bufferevent *(*make)(struct event_base *, void *),
                             void *arg)
{
    if (lim->n_makers == MAKERS_MAX) {
        log_error("http_limits: more than %d servers attached; the next is "
                  "served without limits", MAKERS_MAX);
        return;
    }
    struct limits_maker *m = &lim->makers[lim->n_makers++];
    *m = (struct limits_maker){ lim, make, arg };
    evhttp_set_bevcb(http, bevcb, m);
}

void http_limits_attach(struct http_limits *lim, struct evhttp *http)
{
    http_limits_attach_with(lim, http, NULL, NULL);
}

void http_limits_set_closecb(struct evhttp_connection *evcon,
                             void (*cb)(struct evhttp_connection *, void *),
                             void *arg)
{
    struct lconn *c = lconn_of(evcon);
    if (c) {
        c->user_closecb = cb;
        c->user_closearg = arg;
    } else {
        evhttp_connection_set_closecb(evcon, cb, arg);
    }
}

uint64_t http_limits_max_connections(const struct http_limits *lim)
{
    return lim->max_conns;
}

const struct http_limits_stats *http_limits_stats(const struct http_limits *lim)
{
    return &lim->stats;
}

/* ------------------------------------------------ public: the requests */

static int hexval(char x)
{
    return x >= '0' && x <= '9' ? x - '0' : x >= 'a' && x <= 'f' ? x - 'a' + 10
           : x >= 'A' && x <= 'F' ? x - 'A' + 10 : -1;
}

/* The raw request target: origin-form (or absolute-form, which evhttp
 * reduces), valid percent-encoding, no encoded NUL. */
static const char *target_problem(const char *uri)
{
    if (!uri || (uri[0] != '/' && strncmp(uri, "http://", 7) != 0 &&
                 strncmp(uri, "https://", 8) != 0))
        return "request target is not origin-form";
    for (const char *p = uri; *p && *p != '#'; p++) {
        if (*p != '%')
            continue;
        if (hexval(p[1]) < 0 || hexval(p[2]) < 0)
            return "invalid percent-encoding";
        if (p[1] == '0' && p[2] == '0')
            return "encoded NUL";
        p += 2;
    }
    return NULL;
}

/* A query parameter named twice (?ack=0&ack=9): ambiguous, refused. */
static const char *repeated_param(const char *q)
{
    if (!q)
        return NULL;
    for (const char *a = q; *a;) {
        const char *ae = a + strcspn(a, "&");
        size_t an = strcspn(a, "=&");
        if (an) {
            for (const char *b = *ae ? ae + 1 : ae; *b;) {
                const char *be = b + strcspn(b, "&");
                size_t bn = strcspn(b, "=&");
                if (bn == an && memcmp(a, b, an) == 0)
                    return "repeated query parameter";
                b = *be ? be + 1 : be;
            }
        }
        a = *ae ? ae + 1 : ae;
    }
    return NULL;
}

/* The refusal a request carries: the synthetic request's path, or the
 * trailer field put at the end of a refused chunked body (looked up only
 * on a connection that refused something). 0: none. */
static int refusal_of(struct http_limits *lim, struct evhttp_request *req,
                      const char *path)
{
    size_t pl = strlen(REFUSE_PREFIX);
    if (path && strncmp(path, REFUSE_PREFIX, pl) == 0 &&
        strncmp(path + pl, lim->token, 32) == 0 && path[pl + 32] == '/')
        return atoi(path + pl + 33);
    struct lconn *c = lconn_of(evhttp_request_get_connection(req));
    if (!c || !c->body_refused)
        return 0;
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    char mark[REFUSE_MARK_LEN + 1];
    struct evbuffer_ptr pos;
    if (len < REFUSE_MARK_LEN ||
        evbuffer_ptr_set(body, &pos, len - REFUSE_MARK_LEN, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(body, &pos, mark, REFUSE_MARK_LEN) != REFUSE_MARK_LEN)
        return 0;
    mark[REFUSE_MARK_LEN] = 0;
    if (strncmp(mark, lim->token, 32) == 0 && mark[32] == '/')
        return atoi(mark + 33);
    return 0;
}

bool http_limits_request(struct http_limits *lim, struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    int status = refusal_of(lim, req, path);
    if (status) {
        http_out_header(req, "Connection", "close");
        if (status == 503) {
            http_out_header(req, "Retry-After", "1");
            http_reply_error(req, 503, "too_many_connections",
                             "too many connections; try again later");
        } else if (status == 431) {
            http_reply_error(req, 431, "header_too_large",
                             "request header section too large");
        } else if (status == 505) {
            http_reply_error(req, 505, "version_not_supported",
                             "only HTTP/1.0 and HTTP/1.1 are supported");
        } else if (status == 413) {
            http_reply_error(req, 413, "body_too_large",
                             "request body is larger than %llu bytes",
                             (unsigned long long)lim->cfg->max_body);
        } else if (status == 501) {
            http_reply_error(req, 501, "not_implemented",
                             "unsupported Transfer-Encoding");
        } else {
            http_reply_error(req, 400, "bad_request", "malformed request");
        }
        return true;
    }
    if (!path)
        return false; /* http_front answers evhttp's own errors */
    const char *why = target_problem(uri);
    if (!why)
        why = repeated_param(u ? evhttp_uri_get_query(u) : NULL);
    if (why) {
        log_info("%s: request refused: %s", http_client_addr(req), why);
        lim->stats.bad_requests++;
        http_reply_error(req, 400, "bad_request", "%s", why);
        return true;
    }
    return false;
}

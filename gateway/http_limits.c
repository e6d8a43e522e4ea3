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
#include <openssl/rand.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "access_log.h"
#include "gw_common.h"
#include "gw_config.h"
#include "gw_log.h"
#include "http_util.h"

#define CLIENT_BUCKETS 1024
#define CHUNK_LINE_MAX 1024       /* a chunk-size line with extensions */
#define REFUSE_PREFIX HTTP_LIMITS_REFUSE_PREFIX

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
    L_HEAD,        /* waiting for a request head */
    L_BODY,        /* Content-Length body: `remaining` bytes to pass */
    L_CHUNK_SIZE,  /* a chunk-size line */
    L_CHUNK_DATA,  /* `remaining` bytes of chunk data */
    L_CHUNK_END,   /* the CRLF after chunk data */
    L_TRAILER,     /* trailer lines up to the empty line */
    L_PASS,        /* after an Upgrade request: not HTTP any more */
    L_REFUSED,     /* refused: everything from the client is dropped */
};

struct lconn {
    struct http_limits *lim;
    struct lconn *prev, *next;
    struct bufferevent *bev;     /* the filter: evhttp's bufferevent */
    struct bufferevent *under;   /* the socket bufferevent below it */
    struct client *client;       /* counted here once set up */
    struct event *setup_ev;      /* runs once evhttp set the descriptor */
    struct event *timer;         /* header deadline or body rate window */
    struct event *wev;           /* the socket became writable */
    struct event *wtimer;        /* a write that makes no progress */
    evutil_socket_t fd;
    enum lstate st;
    size_t scanned;              /* head bytes already searched for its end */
    uint64_t remaining;
    uint64_t window_bytes;       /* body bytes in this rate window */
    uint64_t window_need;        /* at least this many, or the body is cut */
    bool set_up;
    bool counted;
    bool line_checked;           /* the request line of this head is checked */
    bool flushing;               /* in writable_cb: the only place we write */
};

struct http_limits {
    struct event_base *base;
    const struct gw_config *cfg;
    uint64_t max_conns;
    struct lconn *conns;
    struct client *clients[CLIENT_BUCKETS];
    struct http_limits_stats stats;
    time_t last_global_log;
    char token[33];
};

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

/* ---------------------------------------------------- refusing, cutting */

/* Hand evhttp a synthetic request that http_limits_request answers with
 * `status` and Connection: close; drop whatever the client sends after. */
static void refuse_into(struct lconn *c, struct evbuffer *dst, int status)
{
    c->st = L_REFUSED;
    event_del(c->timer);
    evbuffer_add_printf(dst, "GET " REFUSE_PREFIX "%s/%d HTTP/1.1\r\n"
                        "Host: pollgate\r\nConnection: close\r\n\r\n",
                        c->lim->token, status);
}

static void refuse_head(struct lconn *c, struct evbuffer *src,
                        struct evbuffer *dst, int status, const char *why)
{
    c->lim->stats.bad_requests++;
    log_info("%s: request refused with %d: %s", conn_addr(c), status, why);
    evbuffer_drain(src, evbuffer_get_length(src));
    refuse_into(c, dst, status);
}

static void cut(struct lconn *c);

/*
 * A corrupt chunked body. evhttp is reading the body, so no synthetic
 * request can be handed to it, and its own answer to a corrupt body is an
 * HTML 413 sent without calling us: answer 400 on the socket directly (a
 * short response, the socket buffer takes it) and close as on a timeout.
 */
static void corrupt_body(struct lconn *c, struct evbuffer *src,
                         struct evbuffer *dst, const char *why)
{
    (void)dst;
    static const char resp[] =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        "Connection: close\r\nContent-Length: 67\r\n\r\n"
        "{\"error\":\"bad_request\",\"message\":\"malformed request body (chunks)\"}";
    c->lim->stats.bad_requests++;
    log_info("%s: request body refused: %s", conn_addr(c), why);
    access_log_cut(conn_addr(c), 400);
    evbuffer_drain(src, evbuffer_get_length(src));
    if (c->fd >= 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        (void)!send(c->fd, resp, sizeof resp - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    cut(c);
}

/* Close the connection as evhttp does on its own timeout (no answer). */
static void cut(struct lconn *c)
{
    c->st = L_REFUSED;
    event_del(c->timer);
    bufferevent_trigger_event(c->bev, BEV_EVENT_TIMEOUT | BEV_EVENT_READING,
                              BEV_TRIG_DEFER_CALLBACKS);
}

/* Between evhttp's bufferevent_free (which clears the callbacks) and the
 * filter's destruction (conn_free, on a later loop turn) our own events
 * may still fire: they must not touch the dying bufferevent (an
 * incref/decref there would destroy it a second time). */
static bool bev_alive(const struct lconn *c)
{
    bufferevent_event_cb ecb = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &ecb, NULL);
    return ecb != NULL;
}

/* ---------------------------------------------------------- deadlines */

static void arm_header_timer(struct lconn *c)
{
    struct timeval tv;
    gw_ms_to_tv(c->lim->cfg->header_timeout_ms, &tv);
    event_add(c->timer, &tv);
}

static uint64_t window_s(const struct lconn *c)
{
    uint64_t s = c->lim->cfg->header_timeout_ms / 1000;
    return s ? s : 1;
}

static void arm_body_window(struct lconn *c, uint64_t left)
{
    uint64_t rate = c->lim->cfg->min_body_rate;
    if (!rate)
        return;
    uint64_t need = rate * window_s(c);
    c->window_need = left && left < need ? left : need;
    c->window_bytes = 0;
    struct timeval tv = { (time_t)window_s(c), 0 };
    event_add(c->timer, &tv);
}

static bool in_body(const struct lconn *c)
{
    return c->st == L_BODY || c->st == L_CHUNK_SIZE || c->st == L_CHUNK_DATA ||
           c->st == L_CHUNK_END || c->st == L_TRAILER;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct lconn *c = arg;
    if (!bev_alive(c))
        return;
    /* evhttp not reading (it is answering an earlier request): not the
     * client's delay; look again later. */
    if (!(bufferevent_get_enabled(c->bev) & EV_READ)) {
        if (in_body(c))
            arm_body_window(c, c->st == L_BODY ? c->remaining : 0);
        else
            arm_header_timer(c);
        return;
    }
    if (c->st == L_HEAD) {
        c->lim->stats.header_timeouts++;
        if (c->client && log_allowed(&c->client->last_log))
            log_info("%s: request head not complete within header_timeout; "
                     "connection closed", conn_addr(c));
        access_log_cut(conn_addr(c), 408);
        cut(c);
    } else if (in_body(c)) {
        if (c->window_bytes >= c->window_need) {
            arm_body_window(c, c->st == L_BODY ? c->remaining : 0);
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

/* ------------------------------------------------------------ framing */

static void head_done(struct lconn *c, const struct http_head_info *hi)
{
    event_del(c->timer);
    c->scanned = 0;
    c->line_checked = false;
    if (hi->upgrade) {
        c->st = L_PASS;
    } else if (hi->chunked) {
        c->st = L_CHUNK_SIZE;
        arm_body_window(c, 0);
    } else if (hi->length) {
        c->st = L_BODY;
        c->remaining = hi->length;
        arm_body_window(c, hi->length);
    } else {
        c->st = L_HEAD;
    }
}

/* Find the end of the head in p[0..n): the offset after its empty line. */
static size_t head_end(struct lconn *c, const char *p, size_t n)
{
    size_t i = c->scanned > 2 ? c->scanned - 2 : 0;
    for (; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    c->scanned = n;
    return 0;
}

/* Returns true when it consumed src bytes (passed, dropped or refused). */
static bool step_head(struct lconn *c, struct evbuffer *src, struct evbuffer *dst)
{
    size_t avail = evbuffer_get_length(src);
    /* empty lines between requests are ignored (RFC 9112 2.2) */
    unsigned char *p = evbuffer_pullup(src, avail < 2 ? (ev_ssize_t)avail : 2);
    if (p && (p[0] == '\n' || (p[0] == '\r' && avail >= 2 && p[1] == '\n'))) {
        evbuffer_drain(src, p[0] == '\n' ? 1 : 2);
        return true;
    }
    if (!event_pending(c->timer, EV_TIMEOUT, NULL))
        arm_header_timer(c);
    size_t look = avail < HTTP_LIMITS_HEAD_MAX + 4 ? avail : HTTP_LIMITS_HEAD_MAX + 4;
    const char *h = (const char *)evbuffer_pullup(src, (ev_ssize_t)look);
    if (!h)
        return false;
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
                refuse_head(c, src, dst, st, "bad request line");
                return true;
            }
            c->line_checked = true;
        } else if (look > HTTP_LIMITS_LINE_MAX) {
            refuse_head(c, src, dst, 431, "request line too long");
            return true;
        }
    }
    size_t n = head_end(c, h, look);
    if (!n) {
        if (look > HTTP_LIMITS_HEAD_MAX)
            refuse_head(c, src, dst, 431, "request head too large");
        return c->st == L_REFUSED;
    }
    struct http_head_info hi;
    if (http_limits_check_head(h, n, &hi)) {
        refuse_head(c, src, dst, hi.status, hi.why);
        return true;
    }
    evbuffer_remove_buffer(src, dst, n);
    head_done(c, &hi);
    return true;
}

static bool pass_body(struct lconn *c, struct evbuffer *src, struct evbuffer *dst)
{
    size_t avail = evbuffer_get_length(src);
    size_t n = c->remaining < avail ? (size_t)c->remaining : avail;
    evbuffer_remove_buffer(src, dst, n);
    c->remaining -= n;
    c->window_bytes += n;
    if (!c->remaining) {
        if (c->st == L_BODY) {
            event_del(c->timer);
            c->st = L_HEAD;
        } else {
            c->st = L_CHUNK_END;
        }
    }
    return n > 0;
}

/* chunk-size [; ext] CRLF: 1-15 hex digits (evhttp's int64 limit). */
static bool step_chunk_line(struct lconn *c, struct evbuffer *src,
                            struct evbuffer *dst)
{
    size_t avail = evbuffer_get_length(src);
    size_t look = avail < CHUNK_LINE_MAX ? avail : CHUNK_LINE_MAX;
    const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)look);
    const char *nl = p ? memchr(p, '\n', look) : NULL;
    if (!nl) {
        if (look >= CHUNK_LINE_MAX) {
            corrupt_body(c, src, dst, "chunk-size line too long");
            return true;
        }
        return false;
    }
    size_t len = (size_t)(nl - p) + 1;
    size_t ln = len - 1;
    if (ln && p[ln - 1] == '\r')
        ln--;
    if (c->st == L_TRAILER) {
        for (size_t i = 0; i < ln; i++)
            if ((unsigned char)p[i] < 0x20 && p[i] != '\t') {
                corrupt_body(c, src, dst, "control character in a trailer");
                return true;
            }
        evbuffer_remove_buffer(src, dst, len);
        c->window_bytes += len;
        if (ln == 0) {
            event_del(c->timer);
            c->st = L_HEAD;
        }
        return true;
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
        corrupt_body(c, src, dst, "invalid chunk size");
        return true;
    }
    for (size_t k = i; k < ln; k++)
        if ((unsigned char)p[k] < 0x20 && p[k] != '\t') {
            corrupt_body(c, src, dst, "control character in a chunk extension");
            return true;
        }
    evbuffer_remove_buffer(src, dst, len);
    c->window_bytes += len;
    if (size == 0) {
        c->st = L_TRAILER;
    } else {
        c->st = L_CHUNK_DATA;
        c->remaining = size;
    }
    return true;
}

static bool step_chunk_end(struct lconn *c, struct evbuffer *src,
                           struct evbuffer *dst)
{
    size_t avail = evbuffer_get_length(src);
    const char *p = (const char *)evbuffer_pullup(src, avail < 2 ? (ev_ssize_t)avail : 2);
    if (!p)
        return false;
    size_t n = p[0] == '\n' ? 1 : (avail >= 2 && p[0] == '\r' && p[1] == '\n') ? 2 : 0;
    if (!n) {
        if (p[0] == '\r' && avail < 2)
            return false;
        corrupt_body(c, src, dst, "chunk data longer than its size");
        return true;
    }
    evbuffer_remove_buffer(src, dst, n);
    c->st = L_CHUNK_SIZE;
    return true;
}

static void conn_setup(struct lconn *c);

static enum bufferevent_filter_result in_filter(struct evbuffer *src,
    struct evbuffer *dst, ev_ssize_t limit, enum bufferevent_flush_mode mode,
    void *arg)
{
    (void)limit; (void)mode;
    struct lconn *c = arg;
    if (!c->set_up)
        conn_setup(c);
    bool moved = false;
    while (evbuffer_get_length(src)) {
        bool progress = false;
        switch (c->st) {
        case L_REFUSED:
            evbuffer_drain(src, evbuffer_get_length(src));
            return moved ? BEV_OK : BEV_NEED_MORE;
        case L_PASS:
            evbuffer_remove_buffer(src, dst, evbuffer_get_length(src));
            return BEV_OK;
        case L_HEAD: progress = step_head(c, src, dst); break;
        case L_BODY:
        case L_CHUNK_DATA: progress = pass_body(c, src, dst); break;
        case L_CHUNK_SIZE:
        case L_TRAILER: progress = step_chunk_line(c, src, dst); break;
        case L_CHUNK_END: progress = step_chunk_end(c, src, dst); break;
        }
        if (!progress)
            break;
        moved = true;
    }
    return moved ? BEV_OK : BEV_NEED_MORE;
}

/* Writes go straight to the socket: what the kernel does not take stays in
 * evhttp's output buffer, so a finished response is really sent before
 * evhttp closes, and a reader that stops reading holds evhttp's write
 * timeout and flow control as with a plain socket bufferevent. */
static enum bufferevent_filter_result out_filter(struct evbuffer *src,
    struct evbuffer *dst, ev_ssize_t limit, enum bufferevent_flush_mode mode,
    void *arg)
{
    (void)dst; (void)limit; (void)mode;
    struct lconn *c = arg;
    /* Never write from inside evhttp's own call that queued the data: a
     * socket bufferevent reports a write done on a later loop turn, and
     * evhttp's users (http_stream's write-completion flow control) rely
     * on that. output_added_cb schedules writable_cb instead. */
    if (!c->flushing) {
        if (c->wev && evbuffer_get_length(src) &&
            !event_pending(c->wev, EV_WRITE, NULL))
            event_active(c->wev, EV_WRITE, 1);
        return BEV_NEED_MORE;
    }
    if (c->fd < 0)
        c->fd = bufferevent_getfd(c->under);
    size_t before = evbuffer_get_length(src);
    while (c->fd >= 0 && evbuffer_get_length(src)) {
        int n = evbuffer_write(src, c->fd);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (c->wev)
                event_add(c->wev, NULL);
            break;
        }
        /* the peer is gone: drop the output, report the error */
        evbuffer_drain(src, evbuffer_get_length(src));
        bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR | BEV_EVENT_WRITING,
                                  BEV_TRIG_DEFER_CALLBACKS);
        break;
    }
    c->flushing = false;
    if (!evbuffer_get_length(src)) {
        event_del(c->wtimer);
    } else if (evbuffer_get_length(src) < before ||
               !event_pending(c->wtimer, EV_TIMEOUT, NULL)) {
        struct timeval tv;
        gw_ms_to_tv(c->lim ? c->lim->cfg->request_timeout_ms : 60000, &tv);
        event_add(c->wtimer, &tv);
    }
    return evbuffer_get_length(src) < before ? BEV_OK : BEV_NEED_MORE;
}

/* request_timeout without any write progress (a reader that stopped). */
static void wtimer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct lconn *c = arg;
    if (!bev_alive(c) || !evbuffer_get_length(bufferevent_get_output(c->bev)))
        return;
    c->st = L_REFUSED;
    event_del(c->timer);
    bufferevent_trigger_event(c->bev, BEV_EVENT_TIMEOUT | BEV_EVENT_WRITING,
                              BEV_TRIG_DEFER_CALLBACKS);
}

/* The socket is writable, or evhttp added output (the filter itself only
 * looks at its output while evhttp has writing enabled, and evhttp queues
 * a response before enabling it): write what we can. */
static void writable_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct lconn *c = arg;
    if (!bev_alive(c) || !evbuffer_get_length(bufferevent_get_output(c->bev)))
        return;
    /* out_filter clears it; c may be freed once the flush returns (evhttp
     * closes the connection from the write callback) */
    c->flushing = true;
    bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
}

static void output_added_cb(struct evbuffer *buf,
                            const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    struct lconn *c = arg;
    if (info->n_added && c->wev && !event_pending(c->wev, EV_WRITE, NULL))
        event_active(c->wev, EV_WRITE, 1);
}

/* ------------------------------------------------ connection lifetime */

static void refuse_now(struct lconn *c, int status)
{
    refuse_into(c, bufferevent_get_input(c->bev), status);
    bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
                        BEV_TRIG_DEFER_CALLBACKS);
}

/* The descriptor is known (evhttp set it after the bevcb): count the
 * connection for its address and refuse it past a limit. */
static void conn_setup(struct lconn *c)
{
    struct http_limits *lim = c->lim;
    c->set_up = true;
    event_del(c->setup_ev);
    c->fd = bufferevent_getfd(c->under);
    char addr[INET6_ADDRSTRLEN] = "?";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (c->fd >= 0 && getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof addr);
    }
    if (c->fd >= 0)
        c->wev = event_new(lim->base, c->fd, EV_WRITE, writable_cb, c);
    if (c->wev)
        evbuffer_add_cb(bufferevent_get_output(c->bev), output_added_cb, c);
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
        refuse_now(c, 503);
        return;
    }
    uint64_t per = lim->cfg->max_connections_per_client;
    if (per && c->client && c->client->count > per) {
        lim->stats.refused_per_client++;
        if (log_allowed(&c->client->last_log))
            log_warn("%s: connection refused: max_connections_per_client "
                     "(%llu) reached", addr, (unsigned long long)per);
        refuse_now(c, 503);
        return;
    }
    if (!c->wev) {
        refuse_now(c, 503);
        return;
    }
    /* evhttp's timeouts on a filter are libevent's generic ones, whose
     * write timeout runs while writing is enabled even with nothing to
     * write (and is re-armed after evhttp turned writing off): keep its
     * read timeout, time writes here (wtimer) as a socket would. */
    struct timeval rt;
    gw_ms_to_tv(lim->cfg->request_timeout_ms, &rt);
    bufferevent_set_timeouts(c->bev, &rt, NULL);
    /* The header deadline starts with the first byte of a head: a
     * connection that sends nothing is idle like a keep-alive one
     * (request_timeout); browsers open such connections ahead of need. */
}

static void setup_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct lconn *c = arg;
    if (!c->set_up && bev_alive(c))
        conn_setup(c);
}

/* The filter's free_context: evhttp freed the connection. */
static void conn_free(void *arg)
{
    struct lconn *c = arg;
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
    if (c->setup_ev)
        event_free(c->setup_ev);
    if (c->timer)
        event_free(c->timer);
    if (c->wtimer)
        event_free(c->wtimer);
    if (c->wev)
        event_free(c->wev);
    free(c);
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    struct http_limits *lim = arg;
    struct lconn *c = calloc(1, sizeof *c);
    struct bufferevent *under = c ? bufferevent_socket_new(base, -1,
                                        BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!under) {
        free(c);
        return NULL; /* evhttp makes a plain one: unchecked, but served */
    }
    c->lim = lim;
    c->fd = -1;
    c->under = under;
    c->setup_ev = evtimer_new(base, setup_cb, c);
    c->timer = evtimer_new(base, timer_cb, c);
    c->wtimer = evtimer_new(base, wtimer_cb, c);
    c->bev = c->setup_ev && c->timer && c->wtimer
        ? bufferevent_filter_new(under, in_filter, out_filter,
                                 BEV_OPT_CLOSE_ON_FREE, conn_free, c)
        : NULL;
    if (!c->bev) {
        bufferevent_free(under);
        c->lim = NULL;
        conn_free(c);
        return NULL;
    }
    c->next = lim->conns;
    if (c->next)
        c->next->prev = c;
    lim->conns = c;
    struct timeval zero = { 0, 0 };
    event_add(c->setup_ev, &zero);
    return c->bev;
}

/* ------------------------------------------------------ public: object */

struct http_limits *http_limits_new(struct event_base *base,
                                    const struct gw_config *cfg)
{
    struct http_limits *lim = calloc(1, sizeof *lim);
    if (!lim)
        return NULL;
    lim->base = base;
    lim->cfg = cfg;
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1) {
        free(lim);
        return NULL;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(lim->token + 2 * i, 3, "%02x", r[i]);
    lim->max_conns = cfg->max_connections;
    if (!lim->max_conns) {
        /* half the descriptors: the other half is for the upstream
         * connections of the sessions these browsers hold */
        struct rlimit rl;
        uint64_t nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
                          rl.rlim_cur != RLIM_INFINITY ? (uint64_t)rl.rlim_cur : 1024;
        lim->max_conns = nofile > 228 ? (nofile - 100) / 2 : 64;
    }
    return lim;
}

void http_limits_free(struct http_limits *lim)
{
    if (!lim)
        return;
    /* connections that outlive us (none after evhttp_free) stop counting */
    for (struct lconn *c = lim->conns; c; c = c->next)
        c->lim = NULL;
    for (size_t i = 0; i < CLIENT_BUCKETS; i++)
        while (lim->clients[i]) {
            struct client *n = lim->clients[i]->next;
            free(lim->clients[i]);
            lim->clients[i] = n;
        }
    free(lim);
}

void http_limits_attach(struct http_limits *lim, struct evhttp *http)
{
    evhttp_set_bevcb(http, bevcb, lim);
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

bool http_limits_request(struct http_limits *lim, struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    size_t pl = strlen(REFUSE_PREFIX);
    if (path && strncmp(path, REFUSE_PREFIX, pl) == 0 &&
        strncmp(path + pl, lim->token, 32) == 0 && path[pl + 32] == '/') {
        int status = atoi(path + pl + 33);
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

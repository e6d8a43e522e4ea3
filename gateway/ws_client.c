/*
 * ws_client.c - one upstream RFC 6455 client connection: a plain socket
 * (ws://) or an OpenSSL bufferevent (wss://).
 *
 *   IDLE -> RESOLVING -> CONNECTING -> TLS -> HANDSHAKE -> OPEN
 *        -> CLOSING -> CLOSED (on_close pending, then delivered)
 *
 * How it is put together, and why:
 *  - TCP connects are done by hand (non-blocking connect + one-shot write
 *    event + SO_ERROR), so a refused or unreachable address is told apart
 *    from a TLS failure and the next resolved address can be tried. A
 *    connected wss:// socket is handed to an OpenSSL bufferevent
 *    (BUFFEREVENT_SSL_CONNECTING state).
 *  - A ws:// connection needs no bufferevent: the socket sits under one
 *    embedded event (read while not paused; write only while the socket
 *    refuses bytes), reads go into one buffer shared by all clients (a
 *    read shorter than it drained the socket: no FIONREAD), frames queued
 *    out are written from the loop in one writev. Buffers exist only
 *    while they hold bytes (out; the rest of a read a pause held back),
 *    so an idle connection is its struct, its decoder and its timers:
 *    what 100,000 idle sessions cost is counted per struct.
 *  - One one-shot timer per client does all its jobs, by state: connect
 *    deadline (DNS+TCP+TLS+handshake); while open, the next keepalive ping
 *    and then that ping's pong deadline; close deadline while closing; and
 *    finally the delivery of on_close. It uses libevent common timeouts
 *    (one per distinct duration per base), so 100,000 clients cost O(1)
 *    per timer operation.
 *  - on_close is never called from inside a ws_client_* call or from inside
 *    another callback: the end is recorded, the I/O torn down, and the
 *    report delivered from the timer in its own event-loop callback.
 *  - ws_client_free inside a callback only marks the client dead, silences
 *    its events, and reassigns the timer to the real free: the memory goes
 *    away from the event loop, never under a caller's feet.
 *  - Frames out are masked while they are copied straight into space
 *    reserved in the output evbuffer; mask keys come from a per-thread
 *    4 KiB pool filled by RAND_bytes. Frames in are decoded in place: from
 *    the read buffer (plain), or from the input evbuffer's chain
 *    (evbuffer_peek, then drained; TLS).
 *
 * Known weaknesses: addresses are tried one after another under a single
 * connect deadline (no Happy Eyeballs); a black-holed first address eats
 * the whole deadline. Messages are sent unfragmented. No permessage-deflate.
 */
#include "ws_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gw_log.h"

#define DEFAULT_MAX_MESSAGE (1024 * 1024)
#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_PONG_MS 10000
#define DEFAULT_CLOSE_MS 5000
/* Plain ws://: bytes taken from the socket per read. A read shorter than
 * this drained the socket (no FIONREAD); level-triggered epoll calls again
 * for whatever arrives later. At most this much is ever held back by a
 * pause: reading stops with the pause. */
#define RAW_READ_MAX 16384

enum ws_state {
    ST_IDLE,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_TLS,
    ST_HANDSHAKE,
    ST_OPEN,
    ST_CLOSING,
    ST_CLOSED,
};

struct ws_client {
    struct event_base *base;
    struct evdns_base *dns;
    SSL_CTX *ssl_ctx;                 /* borrowed */
    struct ws_client_callbacks cb;
    void *arg;

    struct ws_url url;                /* freed once open */
    struct gw_buf request;            /* the upgrade request; freed once sent */
    struct ws_handshake_resp *hs;     /* freed once open */
    struct ws_decoder *dec;
    char *protocol;                   /* chosen subprotocol, or NULL */

    struct bufferevent *bev;          /* wss:// once connected */
    /* plain ws:// once connected: the socket (fd) under one event, the
     * bytes not yet written (NULL while none) and the bytes read but held
     * back by a pause (NULL while none): an idle connection owns no
     * buffer at all. */
    struct event io;
    struct evbuffer *out;
    uint8_t *held;
    uint32_t held_len;
    short io_want;                    /* events io is registered for */
    struct evdns_getaddrinfo_request *dns_req;
    struct evutil_addrinfo *ai_list;  /* while connecting */
    struct evutil_addrinfo *ai_next;
    struct event *conn_ev;            /* while a TCP connect is in flight */
    evutil_socket_t fd;               /* that connect's socket, then the
                                         plain stream's; -1 if none */
    const struct evutil_addrinfo *ai_cur; /* address being tried */
    int conn_errno;                   /* last connect failure */

    struct event *timer;              /* see the top of the file */

    uint32_t connect_ms, ping_ms, pong_ms, close_ms;

    /* what on_close will report */
    char *rep_reason;
    char *rep_detail;
    uint16_t rep_code;
    uint16_t rep_status;
    uint8_t rep_reason_len;
    uint8_t rep_fail;

    uint8_t state;
    uint8_t in_cb;                    /* depth of user callbacks running */
    unsigned dead : 1;                /* ws_client_free called in a cb */
    unsigned opened : 1;
    unsigned paused : 1;
    unsigned close_sent : 1;
    unsigned close_rcvd : 1;
    unsigned app_close : 1;           /* the close was ws_client_close's */
    unsigned drop_after_flush : 1;    /* protocol error: drop once flushed */
    unsigned awaiting_pong : 1;
    unsigned eof_pending : 1;         /* EOF seen while paused with input */
    unsigned rx_seen : 1;             /* bytes arrived this ping interval */
    unsigned raw : 1;                 /* plain stream on fd + io (no bev) */
    unsigned flush_pending : 1;       /* io made active to write out */
    unsigned wr_blocked : 1;          /* out waits for the socket (EV_WRITE) */
    unsigned msg_in_read : 1;         /* on_message ran since on_read_end */
};

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void process_input(struct ws_client *c);
static void io_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------- the byte stream */

/* Is there a connected stream (bufferevent or plain socket)? */
static bool stream_up(const struct ws_client *c)
{
    return c->bev || c->raw;
}

/* Where frames out are queued: the bufferevent's output, or (plain) an
 * evbuffer that exists only while it holds bytes. NULL on ENOMEM. */
static struct evbuffer *out_buf(struct ws_client *c)
{
    if (c->bev)
        return bufferevent_get_output(c->bev);
    if (!c->out)
        c->out = evbuffer_new();
    return c->out;
}

static size_t out_len(const struct ws_client *c)
{
    if (c->bev)
        return evbuffer_get_length(bufferevent_get_output(c->bev));
    return c->out ? evbuffer_get_length(c->out) : 0;
}

/* Bytes read and not processed yet (plain: held back by a pause). */
static size_t in_len(const struct ws_client *c)
{
    if (c->bev)
        return evbuffer_get_length(bufferevent_get_input(c->bev));
    return c->held_len;
}

/* Forget unprocessed input (the server closed, or broke the protocol). */
static void in_drop(struct ws_client *c)
{
    if (c->bev) {
        evbuffer_drain(bufferevent_get_input(c->bev), EV_SIZE_MAX);
        return;
    }
    free(c->held);
    c->held = NULL;
    c->held_len = 0;
}

/* Plain: what io should wait for. Reading as update_reading says; writing
 * only while the socket refused part of out (otherwise writes are made
 * from the loop through schedule_flush, with no epoll change). */
static short io_wanted(const struct ws_client *c)
{
    bool rd = c->state >= ST_HANDSHAKE && c->state <= ST_CLOSING &&
              !(c->paused && c->state == ST_OPEN);
    return (short)((rd ? EV_READ : 0) | (c->wr_blocked ? EV_WRITE : 0));
}

/* Plain: register io for what it should wait for (an epoll change only
 * when that changes). A write already scheduled stays scheduled. */
static void io_update(struct ws_client *c)
{
    short want = io_wanted(c);
    if (!c->raw || want == c->io_want)
        return;
    event_del(&c->io);
    c->io_want = want;
    event_assign(&c->io, c->base, c->fd, (short)(want | EV_PERSIST), io_cb, c);
    if (want)
        event_add(&c->io, NULL);
    if (c->flush_pending)
        event_active(&c->io, EV_WRITE, 1);
}

/* Plain: write out from the loop, after whatever else this turn queues
 * (one write for a batch of frames). */
static void schedule_flush(struct ws_client *c)
{
    if (c->raw && !c->dead && !c->flush_pending && !c->wr_blocked) {
        c->flush_pending = 1;
        event_active(&c->io, EV_WRITE, 1);
    }
}

/* ------------------------------------------------------------ utilities */

const char *ws_client_fail_name(enum ws_client_fail f)
{
    switch (f) {
    case WS_FAIL_NONE: return "ok";
    case WS_FAIL_DNS: return "dns";
    case WS_FAIL_CONNECT: return "refused";
    case WS_FAIL_TIMEOUT: return "timeout";
    case WS_FAIL_TLS: return "tls";
    case WS_FAIL_HTTP_STATUS: return "http-status";
    case WS_FAIL_HANDSHAKE: return "handshake";
    case WS_FAIL_PROTOCOL: return "protocol";
    case WS_FAIL_CLOSED: return "closed";
    case WS_FAIL_PING: return "ping-timeout";
    case WS_FAIL_IO: return "io";
    }
    return "unknown";
}

/* A common timeout for ms on this base (plain timeval if the base has run
 * out of common timeout slots). tmp must outlive the event_add call. */
static const struct timeval *ms_tv(struct ws_client *c, uint32_t ms,
                                   struct timeval *tmp)
{
    gw_ms_to_tv(ms, tmp);
    const struct timeval *ct = event_base_init_common_timeout(c->base, tmp);
    return ct ? ct : tmp;
}

static void timer_arm(struct ws_client *c, uint32_t ms)
{
    struct timeval tmp;
    event_add(c->timer, ms_tv(c, ms, &tmp));
}

/* Open: the timer waits for the next keepalive ping (if any). */
static void keepalive_arm(struct ws_client *c)
{
    if (c->ping_ms)
        timer_arm(c, c->ping_ms);
    else
        event_del(c->timer);
}

/* strerror with a lower-case first letter, to read well inside details. */
static void errno_text(int err, char *buf, size_t n)
{
    snprintf(buf, n, "%s", strerror(err));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
}

static bool is_ip_literal(const char *host)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, tmp) == 1 ||
           inet_pton(AF_INET6, host, tmp) == 1;
}

/* -------------------------------------------------- masking key pool */

/*
 * One pool per thread (pollgate runs a single event loop, so in practice
 * one pool); thread-local storage keeps it lock-free should that change.
 * 4 KiB gives 1024 keys per RAND_bytes call.
 */
static _Thread_local uint8_t mask_pool[4096];
static _Thread_local size_t mask_pool_pos = sizeof mask_pool;

static int mask_key_next(uint8_t key[4])
{
    if (mask_pool_pos + 4 > sizeof mask_pool) {
        if (RAND_bytes(mask_pool, (int)sizeof mask_pool) != 1)
            return GW_EIO;
        mask_pool_pos = 0;
    }
    memcpy(key, mask_pool + mask_pool_pos, 4);
    mask_pool_pos += 4;
    return 0;
}

/* ------------------------------------------------------------- frames out */

/*
 * Append one masked, unfragmented frame to the output evbuffer: header and
 * payload go straight into reserved space (at most two chunks), the payload
 * masked while it is copied.
 */
static int write_frame(struct ws_client *c, enum ws_opcode op,
                       const void *data, size_t len)
{
    uint8_t key[4], hdr[WS_FRAME_HEADER_MAX];
    if (!stream_up(c))
        return GW_ESTATE;
    if (len > (size_t)EV_SSIZE_MAX - WS_FRAME_HEADER_MAX)
        return GW_ETOOBIG;
    if (mask_key_next(key) < 0)
        return GW_EIO;
    size_t hlen = ws_frame_write_header(hdr, true, op, len, key);
    struct evbuffer *out = out_buf(c);
    if (!out)
        return GW_ENOMEM;
    schedule_flush(c);
    struct evbuffer_iovec v[2];
    int n = evbuffer_reserve_space(out, (ev_ssize_t)(hlen + len), v, 2);
    if (n <= 0)
        return GW_ENOMEM;

    const uint8_t *src = data;
    size_t hdone = 0, pdone = 0, moff = 0;
    int used_vecs = 0;
    for (int i = 0; i < n && (hdone < hlen || pdone < len); i++) {
        uint8_t *dst = v[i].iov_base;
        size_t room = v[i].iov_len, used = 0;
        if (hdone < hlen) {
            size_t k = hlen - hdone < room ? hlen - hdone : room;
            memcpy(dst, hdr + hdone, k);
            hdone += k;
            used += k;
        }
        if (hdone == hlen && used < room && pdone < len) {
            size_t k = len - pdone < room - used ? len - pdone : room - used;
            moff = ws_frame_mask_copy(dst + used, src + pdone, k, key, moff);
            pdone += k;
            used += k;
        }
        v[i].iov_len = used;
        used_vecs = i + 1;
    }
    return evbuffer_commit_space(out, v, used_vecs) == 0 ? 0 : GW_ENOMEM;
}

/* Queue a close frame; p[WS_CONTROL_MAX] receives the payload sent (the
 * reason cut to fit on a UTF-8 boundary), *n its length. */
static int write_close(struct ws_client *c, uint16_t code, const char *reason,
                       size_t reason_len, uint8_t *p, size_t *n)
{
    *n = ws_close_payload(p, code, reason, reason_len);
    c->close_sent = 1;
    return write_frame(c, WS_OP_CLOSE, p, *n);
}

/* The reason part of a close payload built by write_close. */
static const char *payload_reason(const uint8_t *p, size_t n, size_t *len)
{
    *len = n > 2 ? n - 2 : 0;
    return (const char *)p + 2;
}

/* ---------------------------------------------------------------- report */

static void report_set(struct ws_client *c, uint16_t code,
                       enum ws_client_fail fail, const char *reason,
                       size_t reason_len, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Record what on_close will say (a later call replaces it). */
static void report_set(struct ws_client *c, uint16_t code,
                       enum ws_client_fail fail, const char *reason,
                       size_t reason_len, const char *fmt, ...)
{
    c->rep_code = code;
    c->rep_fail = (uint8_t)fail;
    if (reason != c->rep_reason) {
        free(c->rep_reason);
        c->rep_reason = NULL;
        c->rep_reason_len = 0;
        if (reason && reason_len) {
            if (reason_len > WS_CONTROL_MAX - 2)
                reason_len = WS_CONTROL_MAX - 2;
            c->rep_reason = malloc(reason_len + 1);
            if (c->rep_reason) {
                memcpy(c->rep_reason, reason, reason_len);
                c->rep_reason[reason_len] = 0;
                c->rep_reason_len = (uint8_t)reason_len;
            }
        }
    }
    char buf[GW_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(c->rep_detail);
    c->rep_detail = strdup(buf);
}

static void report_detail(struct ws_client *c, enum ws_client_fail fail,
                          const char *detail)
{
    c->rep_fail = (uint8_t)fail;
    free(c->rep_detail);
    c->rep_detail = strdup(detail);
}

/* --------------------------------------------------------------- teardown */

/* Release every I/O resource; the client object and its timer stay. */
static void teardown_io(struct ws_client *c)
{
    if (c->dns_req) {
        /* The cancel callback arrives later and must not touch c. */
        evdns_getaddrinfo_cancel(c->dns_req);
        c->dns_req = NULL;
    }
    if (c->ai_list) {
        evutil_freeaddrinfo(c->ai_list);
        c->ai_list = c->ai_next = NULL;
        c->ai_cur = NULL;
    }
    if (c->conn_ev) {
        event_free(c->conn_ev);
        c->conn_ev = NULL;
    }
    if (c->raw) {
        event_del(&c->io);
        c->raw = 0;
        c->io_want = 0;
        c->flush_pending = 0;
        c->wr_blocked = 0;
    }
    if (c->out) {
        evbuffer_free(c->out);
        c->out = NULL;
    }
    in_drop(c);  /* (plain; the bufferevent's input goes with it) */
    if (c->fd >= 0) {
        evutil_closesocket(c->fd);
        c->fd = -1;
    }
    if (c->bev) {
        bufferevent_free(c->bev); /* closes the fd and frees the SSL */
        c->bev = NULL;
    }
    if (c->timer)
        event_del(c->timer);
    ws_handshake_resp_free(c->hs);
    c->hs = NULL;
    ws_decoder_free(c->dec);
    c->dec = NULL;
    gw_buf_free(&c->request);
}

/*
 * The end: drop the connection now and deliver on_close from the event
 * loop. Only called from libevent callbacks with no user callback of this
 * client on the stack; returns with c->bev gone.
 */
static void finish(struct ws_client *c)
{
    if (c->state == ST_CLOSED)
        return;
    teardown_io(c);
    c->state = ST_CLOSED;
    event_active(c->timer, EV_TIMEOUT, 1);
}

static void fail_now(struct ws_client *c, enum ws_client_fail fail,
                     int http_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A failure (first one wins): 1006, the given kind and detail. */
static void fail_now(struct ws_client *c, enum ws_client_fail fail,
                     int http_status, const char *fmt, ...)
{
    if (c->state == ST_CLOSED)
        return;
    char buf[GW_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    report_set(c, WS_CLOSE_ABNORMAL, fail, NULL, 0, "%s", buf);
    c->rep_status = (uint16_t)http_status;
    finish(c);
}

static void deliver_close(struct ws_client *c)
{
    struct ws_close_info info = {
        .code = c->rep_code ? c->rep_code : WS_CLOSE_ABNORMAL,
        .reason = c->rep_reason ? c->rep_reason : "",
        .reason_len = c->rep_reason_len,
        .fail = (enum ws_client_fail)c->rep_fail,
        .http_status = c->rep_status,
        .detail = c->rep_detail ? c->rep_detail : "",
        .opened = c->opened,
    };
    c->in_cb++;
    if (c->cb.on_close)
        c->cb.on_close(c, &info, c->arg);
    c->in_cb--;
    /* Still valid here even if the owner freed c: that free is deferred. */
    free(c->rep_reason);
    free(c->rep_detail);
    c->rep_reason = c->rep_detail = NULL;
    c->rep_reason_len = 0;
}

/* --------------------------------------------------------------- reading */

/* Read from the socket unless paused while open (pause only holds
 * messages back; handshake and close handshake always proceed). */
static void update_reading(struct ws_client *c)
{
    if (c->raw) {
        io_update(c);
        return;
    }
    if (!c->bev || c->state < ST_HANDSHAKE || c->state > ST_CLOSING)
        return;
    if (c->paused && c->state == ST_OPEN)
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
}

/* Run the read callback again from the loop for bytes already buffered. */
static void kick_input(struct ws_client *c)
{
    if (c->raw && c->held_len > 0)
        event_active(&c->io, EV_READ, 1);
    if (c->bev && (c->eof_pending ||
                   evbuffer_get_length(bufferevent_get_input(c->bev)) > 0))
        bufferevent_trigger(c->bev, EV_READ,
                            BEV_TRIG_IGNORE_WATERMARKS |
                                BEV_TRIG_DEFER_CALLBACKS);
}

static void bev_read_cb(struct bufferevent *bev, void *arg);
static void bev_write_cb(struct bufferevent *bev, void *arg);
static void bev_event_cb(struct bufferevent *bev, short what, void *arg);

/* Enter CLOSING: stop keepalive, arm the close deadline (unless it already
 * runs), read again whatever pause said. */
static void enter_closing(struct ws_client *c)
{
    bool first = c->state != ST_CLOSING;
    c->state = ST_CLOSING;
    c->awaiting_pong = 0;
    if (first) {
        event_del(c->timer);
        timer_arm(c, c->close_ms);
    }
    if (c->drop_after_flush && c->bev)
        bufferevent_setcb(c->bev, bev_read_cb, bev_write_cb, bev_event_cb, c);
    update_reading(c);
    kick_input(c);
}

/* The output is flushed: a failed connection may go now. */
static bool maybe_drop_flushed(struct ws_client *c)
{
    if (c->state == ST_CLOSING && c->drop_after_flush && stream_up(c) &&
        out_len(c) == 0) {
        finish(c);
        return true;
    }
    return false;
}

/* The decoder failed: answer with its close code, then drop. */
static void protocol_error(struct ws_client *c)
{
    uint16_t code = ws_decoder_close_code(c->dec);
    const char *why = ws_decoder_error(c->dec);
    if (c->close_sent) {
        /* We are already closing (our close went out): just drop. */
        report_detail(c, WS_FAIL_PROTOCOL, why);
        finish(c);
        return;
    }
    uint8_t p[WS_CONTROL_MAX];
    size_t n, rlen;
    int rc = write_close(c, code, why, strlen(why), p, &n);
    const char *r = payload_reason(p, n, &rlen);
    report_set(c, code, WS_FAIL_PROTOCOL, r, rlen, "%s", why);
    c->drop_after_flush = 1;
    in_drop(c);
    enter_closing(c);
    if (rc < 0)
        finish(c);
    else
        maybe_drop_flushed(c);
}

/* A close frame arrived from the server. */
static void server_close(struct ws_client *c, const struct ws_event *ev)
{
    c->close_rcvd = 1;
    if (c->close_sent) {
        /* The answer to our close; on_close reports the code we sent. */
        if (c->app_close) {
            char d[64];
            snprintf(d, sizeof d, "closed by client, server answered %u",
                     ev->close_code);
            report_detail(c, WS_FAIL_NONE, d);
        }
        return; /* now wait (bounded) for the server to close TCP */
    }
    uint16_t echo = ev->close_code == WS_CLOSE_NO_STATUS ? 0 : ev->close_code;
    uint8_t p[WS_CONTROL_MAX];
    size_t n;
    int rc = write_close(c, echo, NULL, 0, p, &n);
    report_set(c, ev->close_code, WS_FAIL_NONE, ev->close_reason,
               ev->close_reason_len, "closed by server");
    enter_closing(c);
    if (rc < 0)
        finish(c);
}

/* One decoder event; false when processing must stop (c closed/dead). */
static bool handle_event(struct ws_client *c, const struct ws_event *ev)
{
    switch (ev->type) {
    case WS_EV_TEXT:
    case WS_EV_BINARY:
        /* Like a browser: nothing is delivered once we started closing. */
        if (c->state == ST_OPEN && c->cb.on_message) {
            c->in_cb++;
            c->msg_in_read = 1;
            c->cb.on_message(c, ev->type == WS_EV_BINARY, ev->data, ev->len,
                             c->arg);
            c->in_cb--;
        }
        break;
    case WS_EV_PING:
        if (!c->close_sent && write_frame(c, WS_OP_PONG, ev->data, ev->len) < 0) {
            fail_now(c, WS_FAIL_IO, 0, "cannot queue pong: out of memory");
            return false;
        }
        break;
    case WS_EV_PONG:
        if (c->awaiting_pong) {
            c->awaiting_pong = 0;
            keepalive_arm(c);
        }
        break;
    case WS_EV_CLOSE:
        server_close(c, ev);
        break;
    }
    return !c->dead && c->state != ST_CLOSED;
}

/* Frames: feed the input chain to the decoder chunk by chunk, in place. */
static void process_frames(struct ws_client *c)
{
    while (!c->dead && c->bev && !c->close_rcvd && !c->drop_after_flush &&
           !(c->paused && c->state == ST_OPEN)) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct evbuffer_iovec v;
        if (evbuffer_get_length(in) == 0)
            return;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) {
            v.iov_len = evbuffer_get_length(in); /* odd empty chunk first */
            v.iov_base = evbuffer_pullup(in, -1);
            if (!v.iov_base)
                return;
        }
        struct ws_event ev;
        size_t used = 0;
        int rc = ws_decoder_feed(c->dec, v.iov_base, v.iov_len, &used, &ev);
        if (rc == 1) {
            /* ev may point into the input: drain only after handling. */
            bool go_on = handle_event(c, &ev);
            if (!go_on)
                return;
            evbuffer_drain(bufferevent_get_input(c->bev), used);
        } else if (rc == GW_EAGAIN) {
            evbuffer_drain(in, used);
        } else {
            protocol_error(c);
            return;
        }
    }
    /* After the server's close, or our protocol error, input is ignored. */
    if (!c->dead && c->bev && (c->close_rcvd || c->drop_after_flush))
        evbuffer_drain(bufferevent_get_input(c->bev), EV_SIZE_MAX);
}

static void on_handshake_done(struct ws_client *c)
{
    const char *p = ws_handshake_resp_protocol(c->hs);
    if (p && !(c->protocol = strdup(p))) {
        fail_now(c, WS_FAIL_HANDSHAKE, 0, "out of memory");
        return;
    }
    ws_handshake_resp_free(c->hs);
    c->hs = NULL;
    ws_url_clear(&c->url);
    event_del(c->timer);
    c->state = ST_OPEN;
    c->opened = 1;
    keepalive_arm(c);
    update_reading(c);
    if (c->cb.on_open) {
        c->in_cb++;
        c->cb.on_open(c, c->arg);
        c->in_cb--;
    }
}

/* The response parser's verdict rc (0 or an error): open, or fail. */
static void handshake_end(struct ws_client *c, int rc)
{
    if (rc == 0)
        on_handshake_done(c);
    else if (ws_handshake_resp_fail(c->hs) == WS_HS_STATUS)
        fail_now(c, WS_FAIL_HTTP_STATUS, ws_handshake_resp_status(c->hs),
                 "%s", ws_handshake_resp_error(c->hs));
    else
        fail_now(c, WS_FAIL_HANDSHAKE, 0, "%s",
                 ws_handshake_resp_error(c->hs));
}

/* Opening handshake: feed the response parser until the blank line. */
static void process_handshake(struct ws_client *c)
{
    while (c->state == ST_HANDSHAKE) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct evbuffer_iovec v;
        if (evbuffer_get_length(in) == 0 ||
            evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            return;
        size_t used = 0;
        int rc = ws_handshake_resp_feed(c->hs, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        if (rc == GW_EAGAIN) {
            if (used == 0)
                return;
            continue;
        }
        handshake_end(c, rc);
        return;
    }
}

static void closing_ended(struct ws_client *c, short what, int err,
                          unsigned long tls_err);

/* A read is over: its messages were delivered (see on_read_end). */
static void read_ended(struct ws_client *c)
{
    if (!c->msg_in_read || c->dead)
        return;
    c->msg_in_read = 0;
    if (c->cb.on_read_end && c->state == ST_OPEN) {
        c->in_cb++;
        c->cb.on_read_end(c, c->arg);
        c->in_cb--;
    }
}

static void process_input(struct ws_client *c)
{
    if (c->state == ST_HANDSHAKE)
        process_handshake(c);
    if (c->dead || !c->bev)
        return;
    if (c->state == ST_OPEN || c->state == ST_CLOSING)
        process_frames(c);
    /* An EOF held back while paused with unread frames: act on it once
     * they are all read. */
    if (c->dead || !c->bev || !c->eof_pending ||
        (c->paused && c->state == ST_OPEN) ||
        evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        return;
    c->eof_pending = 0;
    if (c->state == ST_OPEN)
        fail_now(c, WS_FAIL_CLOSED, 0,
                 "connection closed by server without a close frame");
    else if (c->state == ST_CLOSING)
        closing_ended(c, BEV_EVENT_EOF, 0, 0);
}

/* --------------------------------------------------- bufferevent callbacks */

static void bev_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct ws_client *c = arg;
    if (c->dead)
        return;
    c->rx_seen = 1;
    process_input(c);
    read_ended(c);
}

static void bev_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct ws_client *c = arg;
    if (!c->dead)
        maybe_drop_flushed(c);
}

/* The first real OpenSSL error libevent recorded on c->bev (0 if none);
 * empties libevent's list. It keeps them LIFO, and entries without a
 * library are SSL_get_error codes, not errors. */
static unsigned long tls_first_error(struct ws_client *c)
{
    unsigned long e, first = 0;
    if (c->bev && bufferevent_openssl_get_ssl(c->bev))
        while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
            if (ERR_GET_LIB(e) != 0)
                first = e;
    return first;
}

/* Detail for a failed TLS handshake: verification result first, then the
 * OpenSSL error queue, then errno. */
static void fail_tls(struct ws_client *c, short what, int err)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (ssl && vr != X509_V_OK && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER)) {
        fail_now(c, WS_FAIL_TLS, 0, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        return;
    }
    unsigned long first = tls_first_error(c);
    if (first) {
        const char *r = ERR_reason_error_string(first);
        char buf[256];
        if (!r) {
            ERR_error_string_n(first, buf, sizeof buf);
            r = buf;
        }
        fail_now(c, WS_FAIL_TLS, 0, "TLS handshake failed: %s", r);
    } else if ((what & BEV_EVENT_EOF) || err == 0) {
        fail_now(c, WS_FAIL_TLS, 0,
                 "TLS handshake failed: connection closed by peer");
    } else {
        char eb[128];
        errno_text(err, eb, sizeof eb);
        fail_now(c, WS_FAIL_TLS, 0, "TLS handshake failed: %s", eb);
    }
}

/* Is a TLS error really the peer closing TCP without close_notify?
 * (OpenSSL 3 reports that as an error unless the context has
 * SSL_OP_IGNORE_UNEXPECTED_EOF; contexts may come from elsewhere.) */
static bool tls_is_eof(unsigned long e)
{
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    return ERR_GET_LIB(e) == ERR_LIB_SSL &&
           ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
#else
    (void)e;
    return false;
#endif
}

/* Text for a socket error: OpenSSL's reason first, then errno. */
static void io_error_text(unsigned long tls_err, int err, char *buf, size_t n)
{
    if (tls_err && ERR_reason_error_string(tls_err))
        snprintf(buf, n, "TLS: %s", ERR_reason_error_string(tls_err));
    else if (err)
        errno_text(err, buf, n);
    else
        snprintf(buf, n, "connection error");
}

static void closing_ended(struct ws_client *c, short what, int err,
                          unsigned long tls_err)
{
    if (c->app_close && !c->close_rcvd && !c->drop_after_flush) {
        if (what & BEV_EVENT_EOF) {
            report_detail(c, WS_FAIL_CLOSED,
                          "connection closed before the server's close frame");
        } else {
            char eb[128];
            io_error_text(tls_err, err, eb, sizeof eb);
            report_detail(c, WS_FAIL_CLOSED, eb);
        }
    }
    finish(c);
}

static void send_request(struct ws_client *c)
{
    c->state = ST_HANDSHAKE;
    struct evbuffer *out = out_buf(c);
    if (!out || evbuffer_add(out, c->request.data, c->request.len) < 0) {
        fail_now(c, WS_FAIL_IO, 0, "out of memory");
        return;
    }
    schedule_flush(c);
    gw_buf_free(&c->request);
    update_reading(c);
}

static void stream_event(struct ws_client *c, short what, int err);

static void bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct ws_client *c = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (c->dead)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == ST_TLS)
            send_request(c);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    if (c->state == ST_TLS) {
        fail_tls(c, what, err);
        return;
    }
    stream_event(c, what, err);
}

/* The stream ended (EOF) or failed (error err) in what (BEV_EVENT_*
 * flags, for both kinds of stream). */
static void stream_event(struct ws_client *c, short what, int err)
{
    char eb[160];
    unsigned long tls_err = tls_first_error(c);
    if (tls_is_eof(tls_err)) {
        what = BEV_EVENT_EOF;
        tls_err = 0;
    }
    switch (c->state) {
    case ST_HANDSHAKE:
        if (what & BEV_EVENT_EOF) {
            fail_now(c, WS_FAIL_HANDSHAKE, 0,
                     "connection closed during the opening handshake");
        } else {
            io_error_text(tls_err, err, eb, sizeof eb);
            fail_now(c, WS_FAIL_IO, 0, "%s", eb);
        }
        break;
    case ST_OPEN:
        if ((what & BEV_EVENT_EOF) && c->paused && in_len(c) > 0) {
            c->eof_pending = 1; /* deliver what was read first */
            break;
        }
        if (what & BEV_EVENT_EOF) {
            fail_now(c, WS_FAIL_CLOSED, 0,
                     "connection closed by server without a close frame");
        } else {
            io_error_text(tls_err, err, eb, sizeof eb);
            fail_now(c, err == ECONNRESET || err == EPIPE ? WS_FAIL_CLOSED
                                                          : WS_FAIL_IO,
                     0, "%s", eb);
        }
        break;
    case ST_CLOSING:
        closing_ended(c, what, err, tls_err);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------- plain stream (ws://) */

static bool would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* Frames from p[0..n) until done, or reading stops (paused, closed, the
 * server's close, a protocol error). Returns the bytes used. */
static size_t feed_frames(struct ws_client *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n && c->raw && !c->dead && !c->close_rcvd &&
           !c->drop_after_flush && !(c->paused && c->state == ST_OPEN)) {
        struct ws_event ev;
        size_t used = 0;
        int rc = ws_decoder_feed(c->dec, p + off, n - off, &used, &ev);
        off += used;  /* p stays valid while ev is handled */
        if (rc == 1) {
            if (!handle_event(c, &ev))
                break;
        } else if (rc != GW_EAGAIN) {
            protocol_error(c);
            break;
        }
    }
    return off;
}

/* Bytes from the socket (or held back earlier): handshake, then frames;
 * what a pause leaves over is held until reading resumes. p is the
 * caller's (a shared read buffer, or a held block it took over). */
static void raw_process(struct ws_client *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    if (c->state == ST_HANDSHAKE) {
        int rc = ws_handshake_resp_feed(c->hs, (const char *)p, n, &off);
        if (rc != GW_EAGAIN)
            handshake_end(c, rc);
    }
    if (c->state == ST_OPEN || c->state == ST_CLOSING)
        off += feed_frames(c, p + off, n - off);
    bool held_back = c->raw && !c->dead && c->paused && c->state == ST_OPEN &&
                     !c->close_rcvd && !c->drop_after_flush;
    if (off >= n || !held_back)
        return;  /* all used, or the rest is to be ignored */
    if (!(c->held = malloc(n - off))) {
        fail_now(c, WS_FAIL_IO, 0, "out of memory");
        return;
    }
    memcpy(c->held, p + off, n - off);
    c->held_len = (uint32_t)(n - off);
}

/* One read: the bytes a pause held back first, else the socket. */
static void raw_read(struct ws_client *c)
{
    static _Thread_local uint8_t rx[RAW_READ_MAX];
    if (c->paused && c->state == ST_OPEN)
        return;
    if (c->held) {
        /* Taken over while it is fed: a failure tearing c down must not
         * free it under our feet. */
        uint8_t *p = c->held;
        size_t n = c->held_len;
        c->held = NULL;
        c->held_len = 0;
        raw_process(c, p, n);
        free(p);
        read_ended(c);
        return;
    }
    ssize_t n = recv(c->fd, rx, sizeof rx, 0);
    if (n > 0) {
        c->rx_seen = 1;
        raw_process(c, rx, (size_t)n);
        read_ended(c);
        return;
    }
    int err = n < 0 ? EVUTIL_SOCKET_ERROR() : 0;
    if (n < 0 && would_block(err))
        return;
    stream_event(c, (short)(BEV_EVENT_READING |
                            (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR)), err);
}

/* Write out what is queued; wait for the socket only if it refuses some.
 * The out buffer goes away once empty. */
static void raw_flush(struct ws_client *c)
{
    c->flush_pending = 0;
    if (c->out && evbuffer_get_length(c->out) > 0 &&
        evbuffer_write(c->out, c->fd) < 0) {
        int err = EVUTIL_SOCKET_ERROR();
        if (!would_block(err)) {
            stream_event(c, BEV_EVENT_WRITING | BEV_EVENT_ERROR, err);
            return;
        }
    }
    bool left = out_len(c) > 0;
    if (!left && c->out) {
        evbuffer_free(c->out);
        c->out = NULL;
    }
    if ((bool)c->wr_blocked != left) {
        c->wr_blocked = left;
        io_update(c);
    }
    if (!left)
        maybe_drop_flushed(c);
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct ws_client *c = arg;
    if (c->dead || !c->raw)
        return;
    if (what & EV_WRITE)
        raw_flush(c);
    if ((what & EV_READ) && !c->dead && c->raw)
        raw_read(c);
}

/* --------------------------------------------------------------- connect */

static void fmt_addr(const struct evutil_addrinfo *ai, char *buf, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)ai->ai_addr;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
        snprintf(buf, n, "%s:%u", ip, port);
    } else if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)ai->ai_addr;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
        snprintf(buf, n, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, n, "?");
    }
}

static void connect_next(struct ws_client *c);

/* Per-connection TLS: SNI for names, host name or IP check. */
static SSL *ssl_for(struct ws_client *c)
{
    SSL *ssl = SSL_new(c->ssl_ctx);
    if (!ssl)
        return NULL;
    bool ip = is_ip_literal(c->url.host);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
                                                c->url.host)
                : SSL_set_tlsext_host_name(ssl, c->url.host) == 1 &&
                      SSL_set1_host(ssl, c->url.host) == 1;
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* TCP is up on fd. Plain: the socket itself under one event, with no
 * buffer while idle. TLS: an OpenSSL bufferevent. */
static void start_stream(struct ws_client *c, evutil_socket_t fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_freeaddrinfo(c->ai_list);
    c->ai_list = c->ai_next = NULL;
    c->ai_cur = NULL;
    if (!c->url.tls) {
        c->fd = fd;
        c->raw = 1;
        c->io_want = 0;
        event_assign(&c->io, c->base, fd, EV_PERSIST, io_cb, c);
        send_request(c);
        return;
    }
    SSL *ssl = ssl_for(c);
    if (!ssl) {
        evutil_closesocket(fd);
        fail_now(c, WS_FAIL_TLS, 0, "cannot set up TLS for %s", c->url.host);
        return;
    }
    /* From here the SSL belongs to libevent, even on failure. */
    c->bev = bufferevent_openssl_socket_new(
        c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!c->bev) {
        evutil_closesocket(fd);
        fail_now(c, WS_FAIL_IO, 0, "out of memory");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    c->state = ST_TLS;
    bufferevent_setcb(c->bev, bev_read_cb, NULL, bev_event_cb, c);
    /* Lets the TLS handshake run; the pause applies after it. */
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct ws_client *c = arg;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY || err == EINTR) {
        event_add(c->conn_ev, NULL);
        return;
    }
    event_free(c->conn_ev);
    c->conn_ev = NULL;
    c->fd = -1;
    if (err) {
        evutil_closesocket(fd);
        c->conn_errno = err;
        connect_next(c);
        return;
    }
    start_stream(c, fd);
}

/* Try the next resolved address; fail once all were refused. */
static void connect_next(struct ws_client *c)
{
    while (c->ai_next) {
        struct evutil_addrinfo *ai = c->ai_next;
        c->ai_next = ai->ai_next;
        c->ai_cur = ai;
        evutil_socket_t fd = socket(ai->ai_family,
                                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                    IPPROTO_TCP);
        if (fd < 0) {
            c->conn_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0 ||
            errno == EINPROGRESS) {
            c->conn_ev = event_new(c->base, fd, EV_WRITE, connect_cb, c);
            if (!c->conn_ev || event_add(c->conn_ev, NULL) < 0) {
                evutil_closesocket(fd);
                fail_now(c, WS_FAIL_IO, 0, "out of memory");
                return;
            }
            c->fd = fd;
            return;
        }
        c->conn_errno = errno;
        evutil_closesocket(fd);
    }
    char eb[128], addr[INET6_ADDRSTRLEN + 8] = "?";
    errno_text(c->conn_errno ? c->conn_errno : ECONNREFUSED, eb, sizeof eb);
    if (c->ai_cur)
        fmt_addr(c->ai_cur, addr, sizeof addr);
    fail_now(c, WS_FAIL_CONNECT, 0, "%s (%s)", eb, addr);
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    if (result == EVUTIL_EAI_CANCEL) { /* the client may be gone */
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    struct ws_client *c = arg;
    c->dns_req = NULL;
    if (result != 0 || !res) {
        if (res)
            evutil_freeaddrinfo(res);
        fail_now(c, WS_FAIL_DNS, 0, "%s: %s", c->url.host,
                 result ? evutil_gai_strerror(result) : "no address");
        return;
    }
    c->ai_list = c->ai_next = res;
    c->state = ST_CONNECTING;
    connect_next(c);
}

static void addr_hints(struct evutil_addrinfo *h, int flags)
{
    memset(h, 0, sizeof *h);
    h->ai_family = AF_UNSPEC;
    h->ai_socktype = SOCK_STREAM;
    h->ai_protocol = IPPROTO_TCP;
    h->ai_flags = flags;
}

int ws_client_connect(struct ws_client *c)
{
    if (!c || c->dead || c->state != ST_IDLE)
        return GW_ESTATE;
    struct evutil_addrinfo hints;
    char port[8];
    snprintf(port, sizeof port, "%u", c->url.port);
    addr_hints(&hints, EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV);
    if (evutil_getaddrinfo(c->url.host, port, &hints, &c->ai_list) == 0) {
        c->ai_next = c->ai_list;
        c->state = ST_CONNECTING;
        timer_arm(c, c->connect_ms);
        connect_next(c);
        return 0;
    }
    c->ai_list = NULL;
    if (!c->dns)
        return GW_EINVAL;
    c->state = ST_RESOLVING;
    timer_arm(c, c->connect_ms);
    addr_hints(&hints, EVUTIL_AI_NUMERICSERV);
    /* May answer at once (hosts file, bad name); dns_cb then ran already. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(c->dns, c->url.host, port, &hints, dns_cb, c);
    if (c->state == ST_RESOLVING)
        c->dns_req = req;
    return 0;
}

/* ----------------------------------------------------------------- timers */

static const char *phase_name(const struct ws_client *c)
{
    switch (c->state) {
    case ST_RESOLVING: return "resolving";
    case ST_CONNECTING: return "connecting";
    case ST_TLS: return "TLS handshake";
    default: return "opening handshake";
    }
}

/* Keepalive tick (the timer, open, no pong awaited): one ping at a time,
 * none while paused (no pong could be read then). A connection that
 * received nothing for a whole interval also gives back its reassembly
 * buffer (up to 64 KiB). */
static void keepalive_tick(struct ws_client *c)
{
    if (!c->ping_ms)
        return;
    if (!c->rx_seen)
        ws_decoder_trim(c->dec);
    c->rx_seen = 0;
    if (c->paused) {
        keepalive_arm(c);
        return;
    }
    if (write_frame(c, WS_OP_PING, NULL, 0) < 0) {
        fail_now(c, WS_FAIL_IO, 0, "cannot queue ping: out of memory");
        return;
    }
    c->awaiting_pong = 1;
    timer_arm(c, c->pong_ms);
}

/* The client's one-shot timer; what it means depends on the state. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct ws_client *c = arg;
    if (c->dead)
        return;
    switch (c->state) {
    case ST_RESOLVING:
    case ST_CONNECTING:
    case ST_TLS:
    case ST_HANDSHAKE:
        fail_now(c, WS_FAIL_TIMEOUT, 0, "timed out after %u ms (%s)",
                 c->connect_ms, phase_name(c));
        break;
    case ST_OPEN:
        if (c->awaiting_pong)
            fail_now(c, WS_FAIL_PING, 0, "no pong within %u ms", c->pong_ms);
        else
            keepalive_tick(c);
        break;
    case ST_CLOSING:
        if (c->app_close && !c->close_rcvd && !c->drop_after_flush) {
            char d[80];
            snprintf(d, sizeof d, "no close frame from server within %u ms",
                     c->close_ms);
            report_detail(c, WS_FAIL_TIMEOUT, d);
        }
        finish(c);
        break;
    case ST_CLOSED:
        deliver_close(c);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------ public API */

struct ws_client *ws_client_new(struct event_base *base,
                                struct evdns_base *dns,
                                const struct ws_client_options *opt,
                                const struct ws_client_callbacks *cb,
                                void *arg, struct gw_error *err)
{
    if (!base || !opt || !opt->url || !cb) {
        gw_error_set(err, GW_EINVAL, "ws_client_new: missing argument");
        return NULL;
    }
    struct ws_client *c = calloc(1, sizeof *c);
    if (!c) {
        gw_error_set(err, GW_ENOMEM, "out of memory");
        return NULL;
    }
    c->base = base;
    c->dns = dns;
    c->ssl_ctx = opt->ssl_ctx;
    c->cb = *cb;
    c->arg = arg;
    c->fd = -1;
    c->connect_ms = opt->connect_timeout_ms ? opt->connect_timeout_ms
                                            : DEFAULT_CONNECT_MS;
    c->ping_ms = opt->ping_interval_ms;
    c->pong_ms = opt->pong_timeout_ms ? opt->pong_timeout_ms
                 : opt->ping_interval_ms ? opt->ping_interval_ms
                                         : DEFAULT_PONG_MS;
    c->close_ms = opt->close_timeout_ms ? opt->close_timeout_ms
                                        : DEFAULT_CLOSE_MS;
    if (ws_url_parse(opt->url, &c->url, err) < 0) {
        free(c);
        return NULL;
    }
    int rc = 0;
    char key[25];
    if (c->url.tls && !c->ssl_ctx) {
        rc = gw_error_set(err, GW_EINVAL, "%s: wss:// needs a TLS context",
                          opt->url);
    } else if (!dns && !is_ip_literal(c->url.host)) {
        rc = gw_error_set(err, GW_EINVAL,
                          "%s: host name needs a DNS resolver", opt->url);
    } else if (ws_handshake_key_new(key) < 0) {
        rc = gw_error_set(err, GW_EIO, "cannot generate Sec-WebSocket-Key");
    } else if ((rc = ws_handshake_build_request(&c->request, &c->url, key,
                                                opt->protocols, opt->headers,
                                                opt->n_headers, err)) < 0) {
        /* err filled */
    } else if (!(c->hs = ws_handshake_resp_new(key, opt->protocols,
                                               opt->max_handshake_bytes)) ||
               !(c->dec = ws_decoder_new(opt->max_message
                                             ? opt->max_message
                                             : DEFAULT_MAX_MESSAGE)) ||
               !(c->timer = event_new(base, -1, 0, timer_cb, c))) {
        rc = gw_error_set(err, GW_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        ws_client_free(c);
        return NULL;
    }
    return c;
}

int ws_client_send(struct ws_client *c, bool binary, const void *data,
                   size_t len)
{
    if (!c || c->dead || c->state != ST_OPEN || c->close_sent)
        return GW_ESTATE;
    if (len && !data)
        return GW_EINVAL;
    return write_frame(c, binary ? WS_OP_BINARY : WS_OP_TEXT, data, len);
}

int ws_client_close(struct ws_client *c, uint16_t code, const char *reason)
{
    if (!c || c->dead)
        return GW_ESTATE;
    switch (c->state) {
    case ST_IDLE:
        return GW_ESTATE;
    case ST_RESOLVING:
    case ST_CONNECTING:
    case ST_TLS:
    case ST_HANDSHAKE:
        /* No user callback of ours can be on the stack before open. */
        report_set(c, WS_CLOSE_ABNORMAL, WS_FAIL_NONE, NULL, 0, "aborted");
        finish(c);
        return 0;
    case ST_OPEN:
        break;
    default:
        return 0; /* closing or closed already */
    }
    /* A bad argument must not keep the connection open: callers often
     * ignore the result, so fix it up (and say so) instead of refusing. */
    if (code && !ws_close_code_valid(code)) {
        log_warn("ws_client_close: code %u may not be sent, using 1000", code);
        code = WS_CLOSE_NORMAL;
    }
    size_t rlen = reason && code ? strlen(reason) : 0;
    if (rlen && !ws_utf8_valid((const uint8_t *)reason, rlen)) {
        log_warn("ws_client_close: reason is not UTF-8, sending none");
        rlen = 0;
    }
    c->app_close = 1;
    uint8_t p[WS_CONTROL_MAX];
    size_t n, sent_len;
    int rc = write_close(c, code, reason, rlen, p, &n);
    const char *sent = payload_reason(p, n, &sent_len);
    report_set(c, code ? code : WS_CLOSE_NO_STATUS, WS_FAIL_NONE, sent,
               sent_len, "closed by client");
    enter_closing(c);
    if (rc < 0) {
        /* Could not queue it: drop from the loop, not under the caller. */
        c->drop_after_flush = 1;
        report_detail(c, WS_FAIL_IO, "cannot queue the close frame");
        event_del(c->timer);
        event_active(c->timer, EV_TIMEOUT, 1);
    }
    return 0;
}

size_t ws_client_pending_bytes(const struct ws_client *c)
{
    return c ? out_len(c) : 0;
}

void ws_client_pause_reading(struct ws_client *c, bool pause)
{
    if (!c || c->dead || (bool)c->paused == pause)
        return;
    c->paused = pause;
    update_reading(c);
    if (pause) {
        /* We stopped reading: a pong cannot arrive, so do not wait for
         * one (keepalive pings resume with reading). */
        if (c->state == ST_OPEN && c->awaiting_pong) {
            c->awaiting_pong = 0;
            keepalive_arm(c);
        }
    } else if (c->state == ST_OPEN) {
        kick_input(c); /* frames already buffered when we paused */
    }
}

const char *ws_client_protocol(const struct ws_client *c)
{
    return c ? c->protocol : NULL;
}

static void real_free(struct ws_client *c)
{
    teardown_io(c);
    if (c->timer)
        event_free(c->timer);
    ws_url_clear(&c->url);
    free(c->protocol);
    free(c->rep_reason);
    free(c->rep_detail);
    free(c);
}

static void free_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    real_free(arg);
}

void ws_client_free(struct ws_client *c)
{
    if (!c)
        return;
    if (c->in_cb == 0) {
        real_free(c);
        return;
    }
    if (c->dead)
        return;
    /* Inside one of our callbacks: silence everything now, free later. */
    c->dead = 1;
    if (c->bev) {
        bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    }
    if (c->raw) {
        event_del(&c->io);
        c->flush_pending = 0;
    }
    if (c->conn_ev)
        event_del(c->conn_ev);
    if (c->dns_req) {
        evdns_getaddrinfo_cancel(c->dns_req);
        c->dns_req = NULL;
    }
    event_del(c->timer);
    event_assign(c->timer, c->base, -1, 0, free_deferred_cb, c);
    event_active(c->timer, EV_TIMEOUT, 1);
}

/* ------------------------------------------------------------------- TLS */

static int ssl_fail(struct gw_error *err, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char buf[200] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return gw_error_set(err, GW_ETLS, "%s%s%s: %s", what, file ? " " : "",
                        file ? file : "", e ? buf : "unknown error");
}

SSL_CTX *ws_client_ssl_ctx_new(const char *ca_file, bool verify,
                               const char *cert_file, const char *key_file,
                               struct gw_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_fail(err, "cannot create TLS context", NULL);
        return NULL;
    }
    int rc = 0;
    const char *kf = key_file && *key_file ? key_file : cert_file;
    bool have_cert = cert_file && *cert_file;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle connections give their read/write buffers back (~34 KiB). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A TCP close without close_notify is an EOF: WebSocket's own close
     * handshake tells a clean end from a truncated one. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (ca_file && *ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
            rc = ssl_fail(err, "cannot load CA file", ca_file);
    } else if (verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        rc = ssl_fail(err, "cannot load the system CA store", NULL);
    }
    if (rc == 0 && !have_cert && key_file && *key_file)
        rc = gw_error_set(err, GW_EINVAL,
                          "client key %s given without a certificate",
                          key_file);
    if (rc == 0 && have_cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
            rc = ssl_fail(err, "cannot load client certificate", cert_file);
        else if (SSL_CTX_use_PrivateKey_file(ctx, kf, SSL_FILETYPE_PEM) != 1)
            rc = ssl_fail(err, "cannot load client key", kf);
        else if (SSL_CTX_check_private_key(ctx) != 1)
            rc = ssl_fail(err, "client key does not match certificate", kf);
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/*
 * fuzz_http_front.c - libFuzzer target for the HTTP front itself: raw bytes
 * on browser connections served by evhttp, http_limits and pollgate's
 * handlers (native and SockJS routes, WebSocket upgrades, static files), in
 * one process, through the public API only (http_front.h, http_limits.h,
 * session.h).
 *
 * The upstream is a fake (session_upstream_ops) that the browser steers
 * through what it sends: it opens on the next loop turn and greets with
 * one message, echoes every message, and on "close..." closes (code from
 * the digits that follow), on "bin..." answers binary, on "flood..." sends
 * a burst (past buffer_messages, so pause engages). A subprotocol offer
 * containing "fail" makes the handshake fail (502 / c[1011]).
 *
 * One input is one or more segments separated by "~~~"; each segment is
 * written on a fresh TCP connection to the front, after the previous one
 * is done. Per segment: the bytes written, the loop run until nothing
 * moves any more, then the write side shut (EOF), the loop run again, then
 * the connection reset and the loop run (blocking, with a deadline: see
 * wait_released) until the front has let go of it. "@@" in a segment is
 * the id of the last native session a response of this input named (a
 * fixed well-formed id before one did). The front and the session table
 * are built once per process (building them per input cost more than
 * most inputs did); every input starts with no connection and an empty
 * table (session_table_clear after each input), so an input's coverage
 * does not depend on the inputs before it.
 *
 * Oracles (besides ASan/UBSan/LSan): what comes back on a connection is
 * HTTP/1.x (it starts with "HTTP/1."); after each segment the front holds
 * no connection (http_limits' count is back to 0 within RELEASE_WAIT_S of
 * the reset, a bound above every timer that ends a connection); after
 * each input the table is empty and every fake upstream the sessions
 * created has been freed.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "fuzz_common.h"
#include "gw_config.h"
#include "gw_log.h"
#include "http_front.h"
#include "http_limits.h"
#include "metrics.h"
#include "session.h"
#include "session_upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------ fake upstream */

#define FAKE_QMAX 16     /* messages the fake holds toward the gateway */
#define FAKE_MSG_MAX 512 /* bytes of a message the fake keeps */
#define FAKE_FLOOD 14    /* burst size: above buffer_messages below */

struct fake_msg {
    bool binary;
    size_t len;
    uint8_t *data;
};

enum fake_state { F_NEW, F_CONNECTING, F_OPEN, F_CLOSING, F_CLOSED };

struct fake {
    const struct ws_client_callbacks *cb;
    void *arg;
    struct event *ev;
    enum fake_state st;
    bool fail, opened, paused, upstream_close;
    uint16_t code;
    char proto[32];
    struct fake_msg q[FAKE_QMAX];
    size_t qh, qn;
};

static struct event_base *g_base;
static long g_fakes; /* fakes alive: 0 after every input */
static struct fake *g_stepping; /* the fake in on_message; NULL once freed */

static void fake_arm(struct fake *f)
{
    struct timeval zero = { 0, 0 };
    event_add(f->ev, &zero);
}

static void fake_push(struct fake *f, bool binary, const void *d, size_t n)
{
    if (f->qn == FAKE_QMAX)
        return;
    n = n > FAKE_MSG_MAX ? FAKE_MSG_MAX : n;
    struct fake_msg *m = &f->q[(f->qh + f->qn) % FAKE_QMAX];
    m->data = malloc(n ? n : 1);
    CHECK(m->data);
    memcpy(m->data, d, n);
    m->len = n;
    m->binary = binary;
    f->qn++;
    if (!f->paused)
        fake_arm(f);
}

/* One step per loop turn; every callback may free f: return right after. */
static void fake_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct fake *f = arg;
    struct ws_client *c = (struct ws_client *)f;
    if (f->st == F_CONNECTING) {
        if (f->fail) {
            f->st = F_CLOSED;
            struct ws_close_info ci = { .code = WS_CLOSE_ABNORMAL, .reason = "",
                .fail = WS_FAIL_HTTP_STATUS, .http_status = 403,
                .detail = "upstream answered 403" };
            f->cb->on_close(c, &ci, f->arg);
            return;
        }
        f->st = F_OPEN;
        f->opened = true;
        fake_push(f, false, "hello", 5);
        f->cb->on_open(c, f->arg);
        return;
    }
    if (f->st == F_CLOSING) {
        f->st = F_CLOSED;
        struct ws_close_info ci = { .code = f->code, .reason = "bye",
                                    .reason_len = 3, .opened = f->opened,
                                    .fail = f->opened ? WS_FAIL_NONE : WS_FAIL_IO };
        f->cb->on_close(c, &ci, f->arg);
        return;
    }
    if (f->st == F_OPEN && f->qn && !f->paused) {
        struct fake_msg m = f->q[f->qh];
        f->qh = (f->qh + 1) % FAKE_QMAX;
        f->qn--;
        if (f->qn)
            fake_arm(f);
        else if (f->upstream_close) {
            f->st = F_CLOSING; /* after the messages queued before it */
            fake_arm(f);
        }
        g_stepping = f;
        f->cb->on_message(c, m.binary, m.data, m.len, f->arg);
        free(m.data);
        /* the last of a burst ends the "read", as ws_client reports it,
         * unless the message's handling freed f; the ones before it are
         * woken by the session's loop-turn waker */
        if (g_stepping == f && !f->qn && f->st == F_OPEN && f->cb->on_read_end)
            f->cb->on_read_end(c, f->arg);
        g_stepping = NULL;
        return;
    }
    if (f->st == F_OPEN && f->upstream_close && !f->qn) {
        f->st = F_CLOSING;
        fake_arm(f);
    }
}

static struct ws_client *fake_create(struct event_base *base,
                                     struct evdns_base *dns,
                                     const struct ws_client_options *opt,
                                     const struct ws_client_callbacks *cb,
                                     void *arg, struct gw_error *err)
{
    (void)dns; (void)err;
    struct fake *f = calloc(1, sizeof *f);
    CHECK(f);
    f->cb = cb;
    f->arg = arg;
    f->ev = evtimer_new(base, fake_step, f);
    CHECK(f->ev);
    if (opt->protocols) {
        f->fail = strstr(opt->protocols, "fail") != NULL;
        size_t n = strcspn(opt->protocols, ", ");
        if (n && n < sizeof f->proto) {
            memcpy(f->proto, opt->protocols, n);
            f->proto[n] = 0;
        }
    }
    g_fakes++;
    return (struct ws_client *)f;
}

static int fake_connect(struct ws_client *c)
{
    struct fake *f = (struct fake *)c;
    CHECK(f->st == F_NEW);
    f->st = F_CONNECTING;
    fake_arm(f);
    return 0;
}

static uint16_t fake_code(const char *d, size_t n)
{
    unsigned v = 0;
    for (size_t i = 0; i < n && i < 5 && d[i] >= '0' && d[i] <= '9'; i++)
        v = v * 10 + (unsigned)(d[i] - '0');
    return v >= 1000 && v < 5000 ? (uint16_t)v : WS_CLOSE_NORMAL;
}

static int fake_send(struct ws_client *c, bool binary, const void *d, size_t n)
{
    struct fake *f = (struct fake *)c;
    if (f->st != F_OPEN || f->upstream_close)
        return -1;
    const char *s = d;
    if (n >= 5 && !memcmp(s, "close", 5)) {
        f->code = fake_code(s + 5, n - 5);
        f->upstream_close = true;
        fake_arm(f);
    } else if (n >= 3 && !memcmp(s, "bin", 3)) {
        fake_push(f, true, "\x00\x01\xff", 3);
    } else if (n >= 5 && !memcmp(s, "flood", 5)) {
        for (int i = 0; i < FAKE_FLOOD; i++)
            fake_push(f, i % 3 == 2, s, n);
    } else {
        fake_push(f, binary, d, n);
    }
    return 0;
}

static int fake_close(struct ws_client *c, uint16_t code, const char *reason)
{
    (void)reason;
    struct fake *f = (struct fake *)c;
    if (f->st == F_CLOSING || f->st == F_CLOSED)
        return 0;
    f->code = code ? code : WS_CLOSE_NO_STATUS;
    /* before open the attempt is aborted: reported as not opened */
    f->st = F_CLOSING;
    f->paused = false;
    fake_arm(f);
    return 0;
}

static size_t fake_pending(const struct ws_client *c) { (void)c; return 0; }

static void fake_pause(struct ws_client *c, bool p)
{
    struct fake *f = (struct fake *)c;
    f->paused = p;
    if (!p && (f->qn || f->st == F_CLOSING))
        fake_arm(f);
}

static const char *fake_protocol(const struct ws_client *c)
{
    const struct fake *f = (const struct fake *)c;
    return f->proto[0] ? f->proto : NULL;
}

static void fake_free(struct ws_client *c)
{
    struct fake *f = (struct fake *)c;
    if (!f)
        return;
    if (g_stepping == f)
        g_stepping = NULL;
    event_free(f->ev);
    for (size_t i = 0; i < f->qn; i++)
        free(f->q[(f->qh + i) % FAKE_QMAX].data);
    free(f);
    g_fakes--;
}

static const struct session_upstream_ops fake_ops = {
    .create = fake_create, .connect = fake_connect, .send = fake_send,
    .close = fake_close, .pending_bytes = fake_pending,
    .pause_reading = fake_pause, .protocol = fake_protocol, .free = fake_free,
};

/* ------------------------------------------------------------ harness */

/* Short limits, so that the limits themselves are reached: a 4 KiB body,
 * 8 queued messages (a flood pauses the fake), 1 KiB SockJS responses. */
static const char CONFIG_FMT[] =
    "[gateway]\n"
    "listen = 127.0.0.1:%u\n"
    "log_level = error\n"
    "max_body = 4KiB\n"
    "header_timeout = 1s\n"
    "request_timeout = 1s\n"
    "max_connections_per_client = 64\n"
    "[session]\n"
    "poll_timeout = 1s\n"
    "heartbeat = 1s\n"
    "idle_timeout = 2s\n"
    "max_sessions = 16\n"
    "buffer_messages = 8\n"
    "max_batch = 8\n"
    "[route chat]\n"
    "path = /chat\n"
    "upstream = ws://127.0.0.1:9/chat\n"
    "origins = http://good.example\n"
    "forward_headers = Cookie, Authorization, X-Fuzz\n"
    "[route other]\n"
    "path = /other\n"
    "upstream = ws://127.0.0.1:9/other\n"
    "origins = *\n"
    "websocket = off\n"
    "protocols = p1, p2\n"
    "[route sj]\n"
    "path = /sj\n"
    "sockjs = on\n"
    "origins = *\n"
    "upstream = ws://127.0.0.1:9/sj\n"
    "cookie_needed = on\n"
    "binary = base64\n"
    "response_limit = 1KiB\n"
    "disconnect_delay = 100ms\n"
    "[route strict]\n"
    "path = /strict\n"
    "sockjs = on\n"
    "sockjs_path = /strict/js\n"
    "origins = http://good.example\n"
    "upstream = ws://127.0.0.1:9/strict\n"
    "binary = drop\n";

static struct gw_config *g_cfg;
static struct metrics *g_metrics;
static struct session_table *g_sessions;
static struct http_front *g_front;
static uint16_t g_port;
static char g_static[64];
static char g_last_id[SESSION_KEY_MAX + 1];
static bool g_debug; /* FUZZ_HTTP_FRONT_DEBUG set: each exchange on stderr */
static struct event *g_deadline; /* bounds a blocking wait (wait_released) */
static bool g_deadline_hit;

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what; (void)arg;
    g_deadline_hit = true;
}

#define SEGMENT_SEP "~~~"
#ifndef QUIET_TURNS
#define QUIET_TURNS 4      /* loop turns without progress = settled */
#endif
#define MAX_TURNS 4000     /* per phase of a segment */

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "w");
    CHECK(fp);
    fputs(text, fp);
    fclose(fp);
}

/*
 * A free port for the config, held for the process's life by a bound (not
 * listening) socket with SO_REUSEPORT, as the front's listener has: the
 * front binds it too, and no other process (parallel fuzz jobs, tests
 * picking free ports) can be handed it, which would split connections
 * between two servers.
 */
static uint16_t hold_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    CHECK(s >= 0 &&
          setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 &&
          setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) == 0 &&
          bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
          getsockname(s, (struct sockaddr *)&a, &al) == 0);
    return ntohs(a.sin_port); /* s stays open */
}

static void setup(void)
{
    g_debug = getenv("FUZZ_HTTP_FRONT_DEBUG") != NULL;
    gw_log_level = g_debug ? GW_LOG_DEBUG : -1; /* quiet: refusals are the point */
    signal(SIGPIPE, SIG_IGN); /* as main() does: writes to a closed peer */
    g_base = event_base_new();
    CHECK(g_base);
    /* static files: a page, a script, a subdirectory, a hidden file */
    snprintf(g_static, sizeof g_static, "/tmp/fuzz_http_front.XXXXXX");
    CHECK(mkdtemp(g_static));
    write_file(g_static, "index.html", "<!doctype html><p>fuzz</p>\n");
    write_file(g_static, "app.js", "var x = 1;\n");
    write_file(g_static, ".secret", "no\n");
    char sub[96];
    snprintf(sub, sizeof sub, "%s/sub", g_static);
    CHECK(mkdir(sub, 0700) == 0);
    write_file(sub, "a.txt", "a\n");
    /* the port goes into the config text: the front binds cfg->listen[] */
    g_port = hold_port();
    char conf[4096];
    snprintf(conf, sizeof conf, CONFIG_FMT, (unsigned)g_port);
    g_cfg = gw_config_parse_string(conf, "fuzz", NULL);
    CHECK(g_cfg);
    CHECK(g_cfg->n_listen == 1 && g_cfg->listen[0].port == g_port);
    g_metrics = metrics_new();
    CHECK(g_metrics);
}

/* The front and the session table are built once (building them per
 * input cost more than most inputs); between inputs the table is emptied
 * (session_table_clear) and every connection is already gone, so each
 * input still starts on an empty front. */
static void world_new(void)
{
    g_sessions = session_table_new(g_base, NULL, g_cfg, NULL);
    CHECK(g_sessions);
    session_table_set_upstream_ops(g_sessions, &fake_ops);
    session_table_set_metrics(g_sessions, g_metrics);
    g_front = http_front_new(g_base, g_cfg, g_sessions, g_static);
    CHECK(g_front);
    http_front_set_metrics(g_front, g_metrics);
    g_deadline = evtimer_new(g_base, deadline_cb, NULL);
    CHECK(g_deadline);
}

static void loop_turn(void)
{
    event_base_loop(g_base, EVLOOP_NONBLOCK);
}

/* End of an input: no session left (their fake upstreams freed with
 * them), the timers they had armed gone. */
static void world_reset(void)
{
    session_table_clear(g_sessions);
    loop_turn();
    CHECK(g_fakes == 0);
    const struct session_stats *ss = session_table_stats(g_sessions);
    CHECK(ss->sessions == 0 && ss->tombstones == 0 && ss->buffered_bytes == 0);
}

/* seg with "@@" replaced by the last session id */
static size_t expand(const uint8_t *d, size_t n, char *out, size_t cap)
{
    size_t o = 0, idl = strlen(g_last_id);
    for (size_t i = 0; i < n && o < cap; i++) {
        if (i + 1 < n && d[i] == '@' && d[i + 1] == '@' && o + idl <= cap) {
            memcpy(out + o, g_last_id, idl);
            o += idl;
            i++;
        } else {
            out[o++] = (char)d[i];
        }
    }
    return o;
}

static void remember_session(const char *resp, size_t n)
{
    const char *k = memmem(resp, n, "\"session\":\"", 11);
    if (!k)
        return;
    k += 11;
    size_t l = 0;
    while (k + l < resp + n && k[l] != '"' && l < sizeof g_last_id - 1)
        l++;
    if (k + l < resp + n && l) {
        memcpy(g_last_id, k, l);
        g_last_id[l] = 0;
    }
}

struct conn {
    int fd;
    const char *in;
    size_t n, sent;
    char *out;
    size_t cap, got;
    bool eof;
};

/* One loop turn and one try each way; true when bytes moved. */
static bool conn_turn(struct conn *c)
{
    loop_turn();
    bool progress = false;
    if (c->sent < c->n) {
        ssize_t w = send(c->fd, c->in + c->sent, c->n - c->sent, MSG_NOSIGNAL);
        if (w > 0) {
            c->sent += (size_t)w;
            progress = true;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                   errno != ENOTCONN) {
            c->sent = c->n; /* the front closed: nothing more goes in */
        }
    }
    if (!c->eof) {
        ssize_t r = recv(c->fd, c->out + c->got, c->cap - c->got, 0);
        if (r > 0) {
            c->got += (size_t)r;
            progress = true;
            if (c->got == c->cap)
                c->eof = true; /* enough: the rest is not looked at */
        } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
                              errno != ENOTCONN)) {
            c->eof = true;
        }
    }
    return progress;
}

/* Run turns until the connection is closed or nothing moves. */
static void conn_settle(struct conn *c)
{
    int quiet = 0;
    for (int i = 0; i < MAX_TURNS && !c->eof && quiet < QUIET_TURNS; i++)
        quiet = conn_turn(c) ? 0 : quiet + 1;
}

/*
 * After the reset: the front must let go of the connection. It learns of
 * the reset from the kernel, usually by the next loop turn. But loopback
 * delivers packets from a softirq, which under load the kernel defers to
 * ksoftirqd (any number of loop turns later), and drops them when its
 * backlog (net.core.netdev_max_backlog) is full; a lost reset is never
 * sent again, and the front then learns of the end only when its own
 * retransmission meets a new reset (~200 ms) or from its timers
 * (lingering_timeout 2s, request_timeout 1s here). A count of loop turns
 * (this harness once waited 4,000 non-blocking turns) is no wait at all:
 * under load it failed on connections the front let go of moments later.
 * So: a few quick turns, then blocking turns until the count is 0,
 * bounded by a deadline above every such timer; only a connection still
 * counted then is one the front never lets go of (a leaked slot of
 * max_connections).
 */
#define RELEASE_WAIT_S 10 /* above lingering_timeout 2s, request_timeout 1s */

static void wait_released(void)
{
    const struct http_limits_stats *st = http_front_limits_stats(g_front);
    for (int i = 0; i < QUIET_TURNS && st->connections; i++)
        loop_turn();
    if (!st->connections)
        return;
    struct timeval tv = { RELEASE_WAIT_S, 0 };
    g_deadline_hit = false;
    event_add(g_deadline, &tv);
    while (st->connections && !g_deadline_hit)
        event_base_loop(g_base, EVLOOP_ONCE);
    event_del(g_deadline);
    if (st->connections)
        fprintf(stderr, "fuzz_http_front: %llu connection(s) still counted "
                "%d s after the reset\n", (unsigned long long)st->connections,
                RELEASE_WAIT_S);
    CHECK(st->connections == 0);
}

static void segment(const char *in, size_t n)
{
    static char out[256 * 1024];
    struct conn c = { .in = in, .n = n, .out = out, .cap = sizeof out };
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(c.fd >= 0);
    /* close() sends a reset: no TIME_WAIT pile-up over millions of runs */
    struct linger lg = { 1, 0 };
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(g_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int rc = connect(c.fd, (struct sockaddr *)&a, sizeof a);
    CHECK(rc == 0 || errno == EINPROGRESS);
    /* everything written (as far as the front reads) and answered; held
     * polls and streams stay */
    conn_settle(&c);
    /* then the browser's EOF: a half-closed connection */
    if (!c.eof) {
        shutdown(c.fd, SHUT_WR);
        conn_settle(&c);
    }
    if (g_debug)
        fprintf(stderr, "--- %zu of %zu bytes sent, %zu back%s:\n%.*s\n", c.sent,
                c.n, c.got, c.eof ? ", closed" : "", (int)(c.got > 600 ? 600 : c.got), out);
    if (c.got) {
        CHECK(c.got >= 7 && memcmp(out, "HTTP/1.", 7) == 0);
        remember_session(out, c.got);
    }
    close(c.fd);
    wait_released();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_base) {
        setup();
        world_new();
    }
    if (size > 64 * 1024)
        return 0;
    snprintf(g_last_id, sizeof g_last_id, "AAAAAAAAAAAAAAAAAAAAAA");
    static char in[80 * 1024];
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *sep = memmem(p, (size_t)(end - p), SEGMENT_SEP,
                                    sizeof SEGMENT_SEP - 1);
        const uint8_t *e = sep ? sep : end;
        size_t n = expand(p, (size_t)(e - p), in, sizeof in);
        if (n)
            segment(in, n);
        p = sep ? sep + sizeof SEGMENT_SEP - 1 : end;
    }
    world_reset();
    return 0;
}

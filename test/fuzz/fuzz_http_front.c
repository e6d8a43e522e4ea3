/*
 * fuzz_http_front.c - libFuzzer target for the HTTP front itself: raw bytes
 * on a browser connection served by evhttp, http_limits' framing filter and
 * pollgate's handlers (native and SockJS routes, /health, /stats), in one
 * process. The upstream is a fake (session_upstream_ops): it opens at once
 * and sends one message per session, so sessions open, poll, stream and
 * send without any network but loopback.
 *
 * Per input: one TCP connection to the front on 127.0.0.1 (an ephemeral
 * port), the bytes written and the write side shut, the loop run until the
 * front closes or goes quiet, then the connection closed and the loop run
 * until the front has freed it. "@@" in the input is replaced by the id of
 * the last session a previous input opened, so inputs can reach sessions.
 *
 * Oracles (besides ASan/UBSan): whatever comes back is HTTP/1.x responses
 * (it starts with "HTTP/1."), and after each input the front holds no
 * connection any more (http_limits' count is back to 0).
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "fuzz_common.h"
#include "gw_config.h"
#include "gw_log.h"
#include "http_front.h"
#include "http_limits.h"
#include "session.h"
#include "session_upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------ fake upstream */

struct fake {
    const struct ws_client_callbacks *cb;
    void *arg;
    struct event *ev;
    bool opened, close_asked, closed;
    uint16_t code;
};

static void fake_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct fake *f = arg;
    struct ws_client *c = (struct ws_client *)f;
    if (!f->opened) {
        f->opened = true;
        f->cb->on_open(c, f->arg); /* may free f: nothing after */
        return;
    }
    if (f->close_asked && !f->closed) {
        f->closed = true;
        struct ws_close_info ci = { .code = f->code, .reason = "", .opened = true };
        f->cb->on_close(c, &ci, f->arg);
    }
}

static struct event_base *g_base;

static struct ws_client *fake_create(struct event_base *base,
                                     struct evdns_base *dns,
                                     const struct ws_client_options *opt,
                                     const struct ws_client_callbacks *cb,
                                     void *arg, struct gw_error *err)
{
    (void)dns; (void)opt; (void)err;
    struct fake *f = calloc(1, sizeof *f);
    CHECK(f);
    f->cb = cb;
    f->arg = arg;
    f->ev = evtimer_new(base, fake_step, f);
    CHECK(f->ev);
    return (struct ws_client *)f;
}

static int fake_connect(struct ws_client *c)
{
    struct fake *f = (struct fake *)c;
    struct timeval zero = { 0, 0 };
    event_add(f->ev, &zero);
    return 0;
}

static int fake_send(struct ws_client *c, bool binary, const void *d, size_t n)
{
    (void)binary; (void)d; (void)n;
    struct fake *f = (struct fake *)c;
    return f->opened && !f->close_asked ? 0 : -1;
}

static int fake_close(struct ws_client *c, uint16_t code, const char *reason)
{
    (void)reason;
    struct fake *f = (struct fake *)c;
    f->close_asked = true;
    f->code = code;
    struct timeval zero = { 0, 0 };
    event_add(f->ev, &zero);
    return 0;
}

static size_t fake_pending(const struct ws_client *c) { (void)c; return 0; }
static void fake_pause(struct ws_client *c, bool p) { (void)c; (void)p; }
static const char *fake_protocol(const struct ws_client *c) { (void)c; return NULL; }
static void fake_free(struct ws_client *c)
{
    struct fake *f = (struct fake *)c;
    if (!f)
        return;
    event_free(f->ev);
    free(f);
}

static const struct session_upstream_ops fake_ops = {
    .create = fake_create, .connect = fake_connect, .send = fake_send,
    .close = fake_close, .pending_bytes = fake_pending,
    .pause_reading = fake_pause, .protocol = fake_protocol, .free = fake_free,
};

/* ------------------------------------------------------------ harness */

static const char CONFIG[] =
    "[gateway]\n"
    "listen = 127.0.0.1:1\n"
    "log_level = error\n"
    "max_body = 4KiB\n"
    "header_timeout = 1s\n"
    "request_timeout = 1s\n"
    "[session]\n"
    "poll_timeout = 1s\n"
    "heartbeat = 1s\n"
    "idle_timeout = 2s\n"
    "max_sessions = 64\n"
    "[route chat]\n"
    "path = /chat\n"
    "upstream = ws://127.0.0.1:9/chat\n"
    "[route sj]\n"
    "path = /sj\n"
    "sockjs = on\n"
    "upstream = ws://127.0.0.1:9/sj\n";

static struct gw_config *g_cfg;
static struct session_table *g_sessions;
static struct http_front *g_front;
static uint16_t g_port;
static char g_last_id[64] = "AAAAAAAAAAAAAAAAAAAAAA";

static void setup(void)
{
    gw_log_level = -1; /* quiet: refusals are the point */
    signal(SIGPIPE, SIG_IGN); /* as main() does: writes to a closed peer */
    g_base = event_base_new();
    CHECK(g_base);
    g_cfg = gw_config_parse_string(CONFIG, "fuzz", NULL);
    CHECK(g_cfg);
    /* an ephemeral port: find a free one, then let the front bind it */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
          getsockname(s, (struct sockaddr *)&a, &al) == 0);
    close(s);
    g_port = ntohs(a.sin_port);
    g_cfg->listen_port = g_port;
    g_sessions = session_table_new(g_base, NULL, g_cfg, NULL);
    CHECK(g_sessions);
    session_table_set_upstream_ops(g_sessions, &fake_ops);
    g_front = http_front_new(g_base, g_cfg, g_sessions, NULL);
    CHECK(g_front);
}

/* input with "@@" replaced by the last session id */
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

static void loop_once(void)
{
    event_base_loop(g_base, EVLOOP_NONBLOCK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_base)
        setup();
    if (size > 64 * 1024)
        return 0;
    static char in[80 * 1024];
    size_t n = expand(data, size, in, sizeof in);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(c >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(g_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int rc = connect(c, (struct sockaddr *)&a, sizeof a);
    CHECK(rc == 0 || errno == EINPROGRESS);
    static char out[256 * 1024];
    size_t got = 0, sent = 0;
    bool eof = false, shut = false;
    int quiet = 0;
    for (int i = 0; i < 400 && !eof && quiet < 40; i++) {
        loop_once();
        bool progress = false;
        if (sent < n) {
            ssize_t w = send(c, in + sent, n - sent, MSG_NOSIGNAL);
            if (w > 0) {
                sent += (size_t)w;
                progress = true;
            }
        } else if (!shut) {
            shutdown(c, SHUT_WR);
            shut = true;
        }
        ssize_t r = recv(c, out + got, sizeof out - got - 1, 0);
        if (r > 0) {
            got += (size_t)r;
            progress = true;
            if (got >= sizeof out - 1)
                break;
        } else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            eof = true;
        }
        quiet = progress ? 0 : quiet + 1;
    }
    if (got) {
        CHECK(got >= 7 && memcmp(out, "HTTP/1.", 7) == 0);
        remember_session(out, got);
    }
    /* close (a reset if unread data is left) and let the front notice */
    close(c);
    const struct http_limits_stats *st = http_front_limits_stats(g_front);
    for (int i = 0; i < 2000 && st->connections; i++)
        loop_once();
    CHECK(st->connections == 0);
    return 0;
}

/*
 * pgbench.c - load generator for pollgate (`make bench`, driven by run.sh).
 *
 * One process, one libevent loop, playing both sides so that pollgate is
 * the only thing in the middle:
 *
 *   browsers (HTTP/1.1 keep-alive) ──▶ pollgate ──▶ upstream (WebSocket)
 *   └────────────────────── this process ─────────────────────────┘
 *
 * - The upstream is a raw WebSocket server: it answers the upgrade with the
 *   right Sec-WebSocket-Accept, learns which browser session a connection
 *   belongs to from the Cookie pollgate forwards (pgb=<index>), pushes
 *   unmasked text frames at --rate per connection (scheduled on a 1 ms
 *   wheel so the load is spread evenly), answers pings, and either discards
 *   or (--mode echo) echoes what pollgate sends it.
 * - Each message is "<send CLOCK_MONOTONIC ns> <seq> <index> xxx..." padded
 *   to --size bytes (no character JSON must escape), so the receiver knows
 *   the latency and checks order, duplicates and loss per session.
 * - Browsers open a session (POST <route>/sessions), then long-poll
 *   (GET .../poll?ack=<last>) or read SSE (GET .../events) and acknowledge
 *   every --ack-ms with POST .../ack?ack=<n> on a second connection (one
 *   request at a time; --mode echo also sends there: POST .../send).
 * - HTTP and SSE are parsed by hand (status, Content-Length, chunked, the
 *   id:/event:/data: fields): a tool, not product code.
 *
 * - --mode ws: each browser is a WebSocket on GET <route>/ws (masked
 *   frames, unmasked ones back); the upstream pushes at --rate and the
 *   browser sends at --rate (both ways); browser -> upstream messages are
 *   counted at the upstream and reported beside the main figures.
 *
 * - --window W (poll and sse modes): the upstream offers --rate (any rate)
 *   to each connection in one write every 10 ms, but never lets more than
 *   W messages be in flight (pushed, not yet received by the browser
 *   session): saturation without unbounded queues; the rate reached is
 *   reported per session.
 *
 * Reported over the measurement window (after --warmup): delivered
 * messages/s, pollgate CPU (utime+stime from /proc/<pid>/stat) and
 * messages per pollgate CPU-second, latency percentiles (upstream send ->
 * browser receive; in echo mode browser send -> browser receive), loss,
 * duplicates, reordering, pollgate VmRSS, and this process's own CPU (it
 * must not be the bottleneck). --mode idle opens --sessions sessions with
 * nothing attached and reports the RSS growth per session.
 *
 * --dialect sockjs speaks SockJS instead (the same scenarios, for pollgate's
 * SockJS routes and for the minimal relay of ../shared/yardstick): a
 * session is opened by its first POST <route>/000/s<i>/xhr ("o"), poll is
 * the xhr transport (POST .../xhr answered "a[...]"), sse is eventsource
 * (GET .../eventsource, "data: a[...]" events, chunked or until close),
 * echo sends with POST .../xhr_send (["..."], 204); there are no acks (in
 * SockJS written = delivered). The relay forwards no cookie, so in this
 * dialect the upstream numbers its connections in handshake order and a
 * browser session learns which one feeds it from its first message (every
 * later one must come from the same); loss, duplicates and order are
 * checked as before.
 *
 * Usage: see usage() or run.sh. --free-ports N prints N free ports.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

/* ------------------------------------------------------------- options */

enum mode { M_POLL, M_SSE, M_ECHO, M_IDLE, M_WS };
static const char *const mode_names[] = { "poll", "sse", "echo", "idle", "ws" };

static struct {
    enum mode mode;
    const char *name;
    int sessions;
    int rate;             /* messages per second per session */
    int window;           /* > 0: at most this many in flight per session */
    int size;             /* payload bytes */
    double warmup, duration, drain, settle;
    int ack_ms;
    int open_parallel;
    uint16_t gw_port, up_port;
    uint16_t admin_port;  /* pollgate's [admin] listen (GET /stats) */
    const char *route;
    const char *pid_file;
    long pid;
    const char *json_path, *row_path, *ready_file;
    double t_mpcs, t_p50, t_p99, t_idle;  /* targets; 0 = none */
    bool verbose;
    bool sockjs;          /* --dialect sockjs */
} opt = {
    .mode = M_SSE, .name = NULL, .sessions = 1000, .rate = 50, .size = 100,
    .warmup = 3, .duration = 20, .drain = 3, .settle = 5, .ack_ms = 500,
    .open_parallel = 64, .route = "/bench",
};

#define MAX_SIZE 60000
#define BACKLOG_MAX (8u << 20)   /* upstream bytes queued per connection */
#define HIST_N (1u << 21)        /* latency histogram: 1 us buckets, ~2.1 s */

/* --------------------------------------------------------------- utils */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "pgbench: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        die("calloc");
    return p;
}

struct buf {
    char *p;
    size_t off, len, cap;   /* live bytes are p[off, len) */
};

static size_t buf_avail(const struct buf *b) { return b->len - b->off; }

/* Room for n more bytes (plus a NUL) at p + len. */
static void buf_reserve(struct buf *b, size_t n)
{
    if (b->off && (b->off == b->len || b->len + n + 1 > b->cap)) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        die("realloc");
    b->p = p;
    b->cap = cap;
}

static void buf_append(struct buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

static uint64_t parse_u64(const char **pp, const char *end)
{
    const char *p = *pp;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    *pp = p;
    return v;
}

/* ------------------------------------------------------------- sockets */

struct sock {
    int fd;
    struct event *rev, *wev;
    struct buf in, out;
};

static struct event_base *base;

static void set_sockopts(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    set_sockopts(fd);
    struct sockaddr_in a = loopback(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void sock_write_cb(evutil_socket_t fd, short what, void *arg);

static void sock_init(struct sock *s, int fd, event_callback_fn read_cb, void *arg)
{
    s->fd = fd;
    s->rev = event_new(base, fd, EV_READ | EV_PERSIST, read_cb, arg);
    s->wev = event_new(base, fd, EV_WRITE, sock_write_cb, s);
    if (!s->rev || !s->wev)
        die("event_new");
    event_add(s->rev, NULL);
}

static void sock_close(struct sock *s)
{
    if (s->fd < 0)
        return;
    event_free(s->rev);
    event_free(s->wev);
    close(s->fd);
    s->fd = -1;
    free(s->in.p);
    free(s->out.p);
    memset(&s->in, 0, sizeof s->in);
    memset(&s->out, 0, sizeof s->out);
}

/* Write now if nothing is queued, queue the rest. 0, or -1 on error. */
static int sock_write(struct sock *s, const void *d, size_t n)
{
    if (s->fd < 0)
        return -1;
    if (!buf_avail(&s->out)) {
        ssize_t w = send(s->fd, d, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n)
            return 0;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return -1;
            w = 0;
        }
        d = (const char *)d + w;
        n -= (size_t)w;
    }
    buf_append(&s->out, d, n);
    event_add(s->wev, NULL);
    return 0;
}

static void sock_write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct sock *s = arg;
    size_t n = buf_avail(&s->out);
    ssize_t w = send(s->fd, s->out.p + s->out.off, n, MSG_NOSIGNAL);
    if (w > 0)
        buf_consume(&s->out, (size_t)w);
    else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return;  /* the read side will see the error */
    if (buf_avail(&s->out))
        event_add(s->wev, NULL);
}

/* Read once. >0 bytes, 0 EOF, -1 error, -2 nothing to read. */
static ssize_t sock_fill(struct sock *s)
{
    buf_reserve(&s->in, 128 * 1024);
    ssize_t r = recv(s->fd, s->in.p + s->in.len, s->in.cap - s->in.len - 1, 0);
    if (r > 0)
        s->in.len += (size_t)r;
    else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return -2;
    return r;
}

/* --------------------------------------------------------------- state */

enum phase { PH_OPEN, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_SETTLE, PH_DONE };

struct cpu_snap {
    uint64_t t_ns;
    double gw_cpu;          /* pollgate utime+stime, seconds */
    double gw_sched;        /* pollgate /proc/<pid>/schedstat run time, s */
    long gw_vcsw, gw_ivcsw; /* pollgate context switches (vol: ~wakeups) */
    double self_cpu;        /* this process, seconds */
    uint64_t cpu_busy[2], cpu_total[2];  /* /proc/stat cpu0, cpu1 (ticks) */
    uint64_t recv, requests;
};

static struct {
    enum phase phase;
    uint64_t phase_ns;
    uint64_t wheel_t0;      /* ns, start of the send/ack wheels */
    int64_t wheel_done;     /* last wheel millisecond processed */
    int next_open, opens_in_flight, opened, attached, failed;
    uint64_t recv_total, recv_window, dup, reorder, mismatch, gaps_seen;
    uint64_t http_errors, conn_errors, lost_events, close_events, up_closed;
    uint64_t requests, polls, acks, sends, send_429, up_blocked;
    uint64_t up_sent_total, up_handshakes;
    uint64_t ws_sent, up_recv;  /* ws mode: browser -> upstream messages */
    struct cpu_snap s0, s1;
    long rss_before_kb, rss_after_kb, rss_end_kb, hwm_kb;
    uint64_t hist_n, hist_over, lat_max_ns;
    int errors_printed;
} st;

static uint32_t hist[HIST_N];

/* Per second of the window: worst latency and messages over 10 ms, to tell
 * a stall (one bad second) from a spread-out tail. */
#define TL_N 120
static uint64_t tl_max_ns[TL_N];
static uint32_t tl_slow[TL_N];
static uint64_t tl_gap_ns[TL_N];   /* longest gap between two bench ticks */

/* ------------------------------------------------------------ /proc */

static double proc_cpu_s(long pid)
{
    char path[64], b[1024];
    if (pid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    char *p = strrchr(b, ')');
    if (!p)
        return 0;
    p += 2;
    /* fields from 3 (state); utime is 14, stime 15 */
    unsigned long long ut = 0, stm = 0;
    for (int field = 3; field <= 15 && *p; field++) {
        char *e = strchr(p, ' ');
        if (field == 14)
            ut = strtoull(p, NULL, 10);
        if (field == 15)
            stm = strtoull(p, NULL, 10);
        if (!e)
            break;
        p = e + 1;
    }
    return (double)(ut + stm) / (double)sysconf(_SC_CLK_TCK);
}

/* First field of /proc/<pid>/schedstat: time on CPU in ns (a cross-check
 * of utime+stime with ns resolution). */
static double proc_sched_s(long pid)
{
    char path[64];
    unsigned long long ns = 0;
    snprintf(path, sizeof path, "/proc/%ld/schedstat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%llu", &ns) != 1)
        ns = 0;
    fclose(f);
    return (double)ns / 1e9;
}

static long proc_status_kb(long pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static void proc_cpus(uint64_t busy[2], uint64_t total[2])
{
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    busy[0] = busy[1] = total[0] = total[1] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        int cpu;
        unsigned long long v[8] = {0};
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu,
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 9 &&
            cpu >= 0 && cpu < 2) {
            uint64_t t = 0;
            for (int i = 0; i < 8; i++)
                t += v[i];
            total[cpu] = t;
            busy[cpu] = t - v[3] - v[4];  /* minus idle and iowait */
        }
    }
    fclose(f);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void snap(struct cpu_snap *s)
{
    s->t_ns = now_ns();
    s->gw_cpu = proc_cpu_s(opt.pid);
    s->gw_sched = proc_sched_s(opt.pid);
    s->gw_vcsw = proc_status_kb(opt.pid, "voluntary_ctxt_switches");
    s->gw_ivcsw = proc_status_kb(opt.pid, "nonvoluntary_ctxt_switches");
    s->self_cpu = self_cpu_s();
    proc_cpus(s->cpu_busy, s->cpu_total);
    s->recv = st.recv_total;
    s->requests = st.requests;
}

/* ------------------------------------------------------------ upstream */

struct up {
    struct sock s;
    int idx;            /* browser session index (Cookie pgb=), -1 unknown */
    bool open;
    uint64_t seq;       /* messages pushed */
};

static struct up **ups;          /* by session index */
static uint64_t *up_sent;        /* by session index */
static uint64_t *up_got;         /* of those, seen by their browser session */
static uint64_t *up_due;         /* --window: messages scheduled so far */
static int up_listen_fd;
static struct event *up_accept_ev;

/* sockjs: connection numbers given back (see up_free) */
static int *up_free_idx, n_up_free_idx, next_up_idx;

static void up_free(struct up *u)
{
    /* pollgate's start-up check of the upstream (and any connection that
     * goes while sessions open) must not use up a session's number */
    if (opt.sockjs && u->idx >= 0 && st.phase == PH_OPEN && ups[u->idx] == u)
        up_free_idx[n_up_free_idx++] = u->idx;
    if (u->idx >= 0 && u->idx < opt.sessions && ups[u->idx] == u)
        ups[u->idx] = NULL;
    sock_close(&u->s);
    free(u);
}

static void ws_accept_key(const char *key, size_t klen, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char in[128], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (klen > sizeof in - sizeof guid)
        klen = sizeof in - sizeof guid;
    memcpy(in, key, klen);
    memcpy(in + klen, guid, sizeof guid - 1);
    EVP_Digest(in, klen + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* Header value in a request/response head (NUL-terminated), or NULL. */
static const char *head_find(const char *head, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            *vlen = e ? (size_t)(e - v) : strlen(v);
            return v;
        }
    }
    return NULL;
}

/* The one place an HTTP head (request or response) is cut out of a byte
 * buffer: when p[0, n) holds the whole head, NUL-terminate it in place after
 * its last header line (for head_find) and give the bytes it takes with its
 * blank line. 1 complete, 0 not yet, -1 no end within max bytes. p[n] must be
 * writable (struct buf keeps room for a NUL). */
static int head_cut(char *p, size_t n, size_t max, size_t *taken)
{
    p[n] = 0;
    char *e = n >= 4 ? strstr(p, "\r\n\r\n") : NULL;
    if (!e)
        return n > max ? -1 : 0;
    e[2] = 0;
    *taken = (size_t)(e + 4 - p);
    return 1;
}

/* The status of a response head ("HTTP/1.x NNN ..."), or -1. */
static int head_status(const char *head)
{
    if (strncmp(head, "HTTP/1.", 7) != 0 || strlen(head) < 12)
        return -1;
    return atoi(head + 9);
}

/* One WebSocket frame header at p[0, avail): opcode, whether masked, the
 * mask key (when masked), the header length (mask included) and the
 * payload length. 1 complete header, 0 not yet. */
struct ws_fh {
    int op;
    bool masked;
    const uint8_t *mask;
    size_t hl;
    uint64_t len;
};

static int ws_frame_head(const uint8_t *p, size_t avail, struct ws_fh *f)
{
    if (avail < 2)
        return 0;
    f->op = p[0] & 0x0f;
    f->masked = p[1] & 0x80;
    f->len = p[1] & 0x7f;
    f->hl = 2;
    if (f->len == 126) {
        if (avail < 4)
            return 0;
        f->len = ((uint64_t)p[2] << 8) | p[3];
        f->hl = 4;
    } else if (f->len == 127) {
        if (avail < 10)
            return 0;
        f->len = 0;
        for (int i = 0; i < 8; i++)
            f->len = (f->len << 8) | p[2 + i];
        f->hl = 10;
    }
    f->mask = f->masked ? p + f->hl : NULL;
    if (f->masked)
        f->hl += 4;
    return avail >= f->hl;
}

/* Append one unmasked frame. */
static size_t frame_header(uint8_t *h, int opcode, size_t len)
{
    h[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static int up_send_frame(struct up *u, int opcode, const uint8_t *d, size_t n)
{
    uint8_t f[MAX_SIZE + 16];
    if (n > MAX_SIZE)
        return -1;
    size_t h = frame_header(f, opcode, n);
    memcpy(f + h, d, n);
    return sock_write(&u->s, f, h + n);
}

static bool up_handshake(struct up *u)
{
    struct buf *in = &u->s.in;
    char *p = in->p + in->off;
    size_t taken = 0;
    int got = head_cut(p, buf_avail(in), 16384, &taken);
    if (got <= 0)
        return got == 0;
    size_t klen = 0, clen = 0;
    const char *key = head_find(p, "Sec-WebSocket-Key", &klen);
    const char *cookie = head_find(p, "Cookie", &clen);
    if (!key)
        return false;
    char accept[29];
    ws_accept_key(key, klen, accept);
    u->idx = -1;
    if (opt.sockjs) {
        if (n_up_free_idx)
            u->idx = up_free_idx[--n_up_free_idx];
        else if (next_up_idx < opt.sessions)
            u->idx = next_up_idx++;
        cookie = NULL;
    }
    if (cookie) {
        const char *c = strstr(cookie, "pgb=");
        if (c && c < cookie + clen) {
            c += 4;
            uint64_t v = parse_u64(&c, cookie + clen);
            if (v < (uint64_t)opt.sessions)
                u->idx = (int)v;
        }
    }
    buf_consume(in, taken);
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    if (sock_write(&u->s, resp, (size_t)n) < 0)
        return false;
    u->open = true;
    st.up_handshakes++;
    if (u->idx >= 0) {
        if (ups[u->idx] && ups[u->idx] != u)
            up_free(ups[u->idx]);
        ups[u->idx] = u;
    }
    return true;
}

/* Parse client frames: echo (echo mode) or discard data, answer pings and
 * closes. Returns false when the connection is to be closed. */
static bool up_frames(struct up *u)
{
    struct buf *in = &u->s.in;
    static uint8_t pl[MAX_SIZE + 16];
    for (;;) {
        const uint8_t *p = (const uint8_t *)in->p + in->off;
        size_t avail = buf_avail(in);
        struct ws_fh fh;
        if (!ws_frame_head(p, avail, &fh))
            return true;
        int op = fh.op;
        bool masked = fh.masked;
        const uint8_t *mask = fh.mask;
        uint64_t len = fh.len;
        size_t h = fh.hl;
        if (len > (uint64_t)MAX_SIZE * 16)
            return false;
        if (avail < h + len)
            return true;
        const uint8_t *d = p + h;
        bool need = op == 0x9 || op == 0x8 || (opt.mode == M_ECHO && (op == 1 || op == 2));
        size_t n = (size_t)len;
        if (need && n <= MAX_SIZE) {
            for (size_t i = 0; i < n; i++)
                pl[i] = masked ? (uint8_t)(d[i] ^ mask[i & 3]) : d[i];
        }
        buf_consume(in, h + n);
        if (opt.mode == M_WS && (op == 1 || op == 2))
            st.up_recv++;
        if (op == 0x9) {
            up_send_frame(u, 0xA, pl, n > 125 ? 125 : n);
        } else if (op == 0x8) {
            up_send_frame(u, 0x8, pl, n >= 2 ? 2 : 0);
            return false;
        } else if (need && n <= MAX_SIZE) {
            if (up_send_frame(u, op, pl, n) < 0)
                return false;
        }
    }
}

static void up_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct up *u = arg;
    ssize_t r = sock_fill(&u->s);
    if (r == -2)
        return;
    if (r <= 0 || (!u->open && !up_handshake(u)) || (u->open && !up_frames(u))) {
        if (st.phase != PH_DRAIN && st.phase != PH_DONE && u->idx >= 0 &&
            !(opt.sockjs && st.phase == PH_OPEN))  /* (up_free) */
            st.up_closed++;
        up_free(u);
    }
}

static void up_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what; (void)arg;
    for (int i = 0; i < 64; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        set_sockopts(c);
        struct up *u = xmalloc(sizeof *u);
        u->idx = -1;
        sock_init(&u->s, c, up_read_cb, u);
    }
}

/* "<ns> <seq> <idx> " then 'x' up to size. */
static size_t make_payload(char *p, uint64_t ts, uint64_t seq, int idx)
{
    int n = snprintf(p, (size_t)opt.size + 64, "%llu %llu %d ",
                     (unsigned long long)ts, (unsigned long long)seq, idx);
    if (n < opt.size) {
        memset(p + n, 'x', (size_t)(opt.size - n));
        n = opt.size;
    }
    return (size_t)n;
}

/* Push n messages (n <= PUSH_MAX) to upstream connection idx in one write. */
#define PUSH_MAX 64
static void up_push_n(int idx, int n)
{
    struct up *u = ups[idx];
    if (!u || !u->open || n <= 0)
        return;
    if (n > PUSH_MAX)
        n = PUSH_MAX;
    if (buf_avail(&u->s.out) > BACKLOG_MAX) {
        st.up_blocked++;
        return;
    }
    static uint8_t f[PUSH_MAX * (MAX_SIZE + 128)];
    size_t len = 0;
    uint64_t ts = now_ns();
    for (int i = 0; i < n && i < PUSH_MAX; i++) {
        size_t h = frame_header(f + len, 1, (size_t)opt.size);
        len += h + make_payload((char *)f + len + h, ts, u->seq + 1 + (uint64_t)i, idx);
    }
    if (sock_write(&u->s, f, len) < 0)
        return;
    u->seq += (uint64_t)n;
    up_sent[idx] += (uint64_t)n;
    st.up_sent_total += (uint64_t)n;
}

static void up_push(int idx)
{
    up_push_n(idx, 1);
}

/* --window: every REFILL_MS, in turn, upstream connection idx gets what
 * --rate schedules by millisecond ms (any rate, in one write), but never
 * more than window messages in flight (pushed, not yet seen by the browser
 * session they feed): what the window holds back is dropped from the
 * schedule, as by a producer that cannot push faster. The queues (and the
 * latency) stay bounded whichever side is the bottleneck, and the rate
 * reached says which. */
#define REFILL_MS 10
static void up_refill(int idx, int64_t ms)
{
    uint64_t want = (uint64_t)(ms + 1) * (uint64_t)opt.rate / 1000u;
    uint64_t due = want > up_due[idx] ? want - up_due[idx] : 0;
    uint64_t inflight = up_sent[idx] - up_got[idx];
    uint64_t room = inflight < (uint64_t)opt.window ? (uint64_t)opt.window - inflight : 0;
    up_due[idx] = want;
    up_push_n(idx, (int)(due < room ? due : room));
}

/* ------------------------------------------------------------ browsers */

enum req { RQ_NONE, RQ_OPEN, RQ_POLL, RQ_EVENTS, RQ_ACK, RQ_SEND, RQ_WS };
enum pstate { PS_IDLE, PS_HEAD, PS_BODY, PS_CSIZE, PS_CDATA, PS_CCRLF, PS_CEND,
              PS_WS, PS_RAW };
enum sstate { SS_NEW, SS_OPENING, SS_ACTIVE, SS_FAILED };
enum evtype { EV_NONE, EV_MESSAGE, EV_CLOSE, EV_LOST, EV_OTHER };

struct sess;

struct hc {
    struct sock s;
    struct sess *ss;      /* NULL for pool connections (idle mode) */
    enum req kind;
    enum pstate ps;
    int status;
    bool chunked, stream;
    size_t remaining;
    struct buf body;
    bool dead;
};

struct sess {
    int idx;
    enum sstate state;
    char id[64];
    struct hc *main, *aux;
    uint64_t last_id, acked;
    uint64_t uniq, max_seq, send_seq, sends_ok;
    uint8_t *bits;
    size_t bits_len;
    uint64_t last_rx_ns;
    int up_idx;           /* sockjs: the upstream connection feeding it */
    bool attached;        /* its stream was answered once */
    bool send_pending, ack_pending;
    /* SSE parser */
    struct buf line;
    uint64_t ev_id, ev_ts, ev_seq;
    enum evtype ev_type;
    bool ev_has;
};

static struct sess *sess;
static struct hc **pool;   /* idle mode: opener connections */
static int n_pool;

static void hc_read_cb(evutil_socket_t fd, short what, void *arg);

static struct hc *hc_new(struct sess *s)
{
    int fd = tcp_connect(opt.gw_port);
    if (fd < 0) {
        st.conn_errors++;
        return NULL;
    }
    struct hc *h = xmalloc(sizeof *h);
    h->ss = s;
    sock_init(&h->s, fd, hc_read_cb, h);
    return h;
}

static void note_error(struct sess *s, const char *what, const char *detail)
{
    if (st.errors_printed++ < 10)
        fprintf(stderr, "pgbench: session %d: %s%s%.200s\n", s ? s->idx : -1,
                what, detail ? ": " : "", detail ? detail : "");
}

static void sess_fail(struct sess *s, const char *what, const char *detail)
{
    if (!s || s->state == SS_FAILED)
        return;
    if (st.phase < PH_DRAIN || st.phase == PH_SETTLE)
        note_error(s, what, detail);
    if (s->state == SS_OPENING)
        st.opens_in_flight--;
    s->state = SS_FAILED;
    st.failed++;
    if (s->main) {
        sock_close(&s->main->s);
        s->main->dead = true;
    }
    if (s->aux) {
        sock_close(&s->aux->s);
        s->aux->dead = true;
    }
}

static void hc_request(struct hc *h, enum req kind, const char *req, size_t n)
{
    h->kind = kind;
    h->ps = PS_HEAD;
    h->stream = kind == RQ_EVENTS;
    st.requests++;
    if (sock_write(&h->s, req, n) < 0) {
        st.conn_errors++;
        if (h->ss)
            sess_fail(h->ss, "write failed", strerror(errno));
        else
            h->dead = true;
    }
}

static void send_open(struct hc *h, int idx)
{
    char r[256];
    if (opt.sockjs) {
        int n = snprintf(r, sizeof r,
                         "POST %s/000/s%d/xhr HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                         "Content-Length: 0\r\n\r\n", opt.route, idx, opt.gw_port);
        hc_request(h, RQ_OPEN, r, (size_t)n);
        return;
    }
    int n = snprintf(r, sizeof r,
                     "POST %s/sessions HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Cookie: pgb=%d\r\nContent-Length: 0\r\n\r\n",
                     opt.route, opt.gw_port, idx);
    hc_request(h, RQ_OPEN, r, (size_t)n);
}

/* ws mode: GET <route>/ws upgrade (the Cookie tells the upstream which
 * browser it serves, as for sessions). */
static void send_ws_open(struct hc *h, int idx)
{
    char r[384];
    int n = snprintf(r, sizeof r,
                     "GET %s/ws HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Cookie: pgb=%d\r\n\r\n", opt.route, opt.gw_port, idx);
    hc_request(h, RQ_WS, r, (size_t)n);
}

/* ws mode: one masked frame toward pollgate (a browser must mask). */
static int ws_send_frame(struct hc *h, int opcode, const uint8_t *d, size_t n)
{
    uint8_t f[MAX_SIZE + 32];
    if (n > MAX_SIZE)
        return -1;
    size_t hl = frame_header(f, opcode, n);
    f[1] |= 0x80;
    static const uint8_t mask[4] = { 0x12, 0x34, 0x56, 0x78 };
    memcpy(f + hl, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[hl + 4 + i] = (uint8_t)(d[i] ^ mask[i & 3]);
    return sock_write(&h->s, f, hl + 4 + n);
}

static void sess_ws_send(struct sess *s)
{
    if (s->state != SS_ACTIVE || !s->main || buf_avail(&s->main->s.out) > BACKLOG_MAX)
        return;
    char p[MAX_SIZE + 64];
    size_t n = make_payload(p, now_ns(), s->send_seq + 1, s->idx);
    if (ws_send_frame(s->main, 1, (const uint8_t *)p, n) < 0)
        return;
    s->send_seq++;
    st.ws_sent++;
}

static void send_poll(struct sess *s)
{
    char r[256];
    if (opt.sockjs) {
        int n = snprintf(r, sizeof r,
                         "POST %s/000/%s/xhr HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                         "Content-Length: 0\r\n\r\n", opt.route, s->id, opt.gw_port);
        st.polls++;
        hc_request(s->main, RQ_POLL, r, (size_t)n);
        return;
    }
    int n = snprintf(r, sizeof r,
                     "GET %s/sessions/%s/poll?ack=%llu HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%u\r\n\r\n",
                     opt.route, s->id, (unsigned long long)s->last_id, opt.gw_port);
    s->acked = s->last_id;
    st.polls++;
    hc_request(s->main, RQ_POLL, r, (size_t)n);
}

static void send_events(struct sess *s)
{
    char r[256];
    int n = snprintf(r, sizeof r,
                     opt.sockjs ? "GET %s/000/%s/eventsource HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:%u\r\n\r\n"
                                : "GET %s/sessions/%s/events HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:%u\r\nAccept: text/event-stream\r\n\r\n",
                     opt.route, s->id, opt.gw_port);
    hc_request(s->main, RQ_EVENTS, r, (size_t)n);
}

static bool aux_ready(struct sess *s)
{
    if (s->state != SS_ACTIVE)
        return false;
    if (!s->aux) {
        s->aux = hc_new(s);
        if (!s->aux) {
            sess_fail(s, "cannot connect", strerror(errno));
            return false;
        }
    }
    return s->aux->kind == RQ_NONE;
}

static void do_ack(struct sess *s)
{
    char r[256];
    int n = snprintf(r, sizeof r,
                     "POST %s/sessions/%s/ack?ack=%llu HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%u\r\nContent-Length: 0\r\n\r\n",
                     opt.route, s->id, (unsigned long long)s->last_id, opt.gw_port);
    s->ack_pending = false;
    s->acked = s->last_id;
    st.acks++;
    hc_request(s->aux, RQ_ACK, r, (size_t)n);
}

static void do_send(struct sess *s)
{
    char r[MAX_SIZE + 512];
    int n = snprintf(r, sizeof r,
                     opt.sockjs ? "POST %s/000/%s/xhr_send HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:%u\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: %d\r\n\r\n"
                                : "POST %s/sessions/%s/send HTTP/1.1\r\n"
                                  "Host: 127.0.0.1:%u\r\nContent-Type: text/plain\r\n"
                                  "Content-Length: %d\r\n\r\n",
                     opt.route, s->id, opt.gw_port, opt.size + (opt.sockjs ? 4 : 0));
    if (opt.sockjs) {  /* ["payload"]: nothing in it needs escaping */
        memcpy(r + n, "[\"", 2);
        n += 2;
    }
    size_t len = make_payload(r + n, now_ns(), s->send_seq + 1, s->idx);
    if (len != (size_t)opt.size) {  /* keep Content-Length right */
        fprintf(stderr, "pgbench: --size %d is too small\n", opt.size);
        exit(2);
    }
    if (opt.sockjs) {
        memcpy(r + n + len, "\"]", 2);
        len += 2;
    }
    s->send_seq++;
    s->send_pending = false;
    st.sends++;
    hc_request(s->aux, RQ_SEND, r, (size_t)n + len);
}

static void sess_ack(struct sess *s)
{
    if (s->state != SS_ACTIVE || s->last_id <= s->acked)
        return;
    if (aux_ready(s))
        do_ack(s);
    else
        s->ack_pending = true;
}

static void sess_send(struct sess *s)
{
    if (s->state != SS_ACTIVE)
        return;
    if (aux_ready(s))
        do_send(s);
    else
        s->send_pending = true;
}

/* One message seen by browser session s. */
static void record(struct sess *s, uint64_t pg_id, uint64_t seq, uint64_t ts,
                   int idx, uint64_t now)
{
    if (idx != s->idx || seq == 0) {
        st.mismatch++;
        return;
    }
    if (pg_id != seq)
        st.mismatch++;
    if (pg_id > s->last_id)
        s->last_id = pg_id;
    size_t byte = (size_t)(seq >> 3);
    if (byte >= s->bits_len) {
        size_t n = s->bits_len ? s->bits_len : 256;
        while (n <= byte)
            n *= 2;
        uint8_t *b = realloc(s->bits, n);
        if (!b)
            die("realloc");
        memset(b + s->bits_len, 0, n - s->bits_len);
        s->bits = b;
        s->bits_len = n;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (s->bits[byte] & bit) {
        st.dup++;
        return;
    }
    s->bits[byte] |= bit;
    if (seq < s->max_seq)
        st.reorder++;
    else
        s->max_seq = seq;
    s->uniq++;
    int feed = opt.sockjs ? s->up_idx : s->idx;  /* the upstream feeding s */
    if (feed >= 0 && feed < opt.sessions)
        up_got[feed]++;
    s->last_rx_ns = now;
    st.recv_total++;
    if (st.phase == PH_MEASURE) {
        st.recv_window++;
        uint64_t lat = now > ts ? now - ts : 0;
        uint64_t us = lat / 1000;
        if (us < HIST_N)
            hist[us]++;
        else
            st.hist_over++;
        st.hist_n++;
        if (lat > st.lat_max_ns)
            st.lat_max_ns = lat;
        uint64_t sec = (now - st.s0.t_ns) / 1000000000u;
        if (sec < TL_N) {
            if (lat > tl_max_ns[sec])
                tl_max_ns[sec] = lat;
            if (lat > 10000000u)
                tl_slow[sec]++;
        }
    }
}

/* Parse "<ts> <seq> <idx> " at p. */
static bool parse_payload(const char *p, const char *end, uint64_t *ts,
                          uint64_t *seq, int *idx)
{
    *ts = parse_u64(&p, end);
    if (p >= end || *p++ != ' ')
        return false;
    *seq = parse_u64(&p, end);
    if (p >= end || *p++ != ' ')
        return false;
    *idx = (int)parse_u64(&p, end);
    return p < end && *p == ' ';
}

/* One SockJS message: the sequence number is the only id (no acks). */
static void sjs_message(struct sess *s, const char *p, const char *end,
                        uint64_t now)
{
    uint64_t ts, seq;
    int idx;
    if (!parse_payload(p, end, &ts, &seq, &idx)) {
        st.mismatch++;
        return;
    }
    if (opt.mode != M_ECHO) {  /* pushed: learn the feeding connection */
        if (s->up_idx < 0)
            s->up_idx = idx;
        if (idx != s->up_idx) {
            st.mismatch++;
            return;
        }
        idx = s->idx;
    }
    record(s, seq, seq, ts, idx, now);
}

/* A SockJS frame (o, h, a[...], c[...]) of n bytes at p. */
static void sjs_frame(struct sess *s, const char *p, size_t n, uint64_t now)
{
    const char *end = p + n;
    if (n && p[0] == 'c') {
        st.close_events++;
        sess_fail(s, "session closed", p);
        return;
    }
    if (n < 2 || p[0] != 'a' || p[1] != '[')
        return;  /* o, h */
    for (const char *q = p + 2; q < end && *q == '"';) {
        const char *e = memchr(q + 1, '"', (size_t)(end - q - 1));
        if (!e)
            break;
        sjs_message(s, q + 1, e, now);
        q = e + 1;
        if (q < end && *q == ',')
            q++;
    }
}

/* {"messages":[{"seq":1,"text":"..."},...],"lost":..,"closed":..} */
static void poll_body(struct sess *s, char *b, size_t n, uint64_t now)
{
    if (opt.sockjs) {
        while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
            n--;
        sjs_frame(s, b, n, now);
        return;
    }
    b[n] = 0;
    const char *p = b, *end = b + n;
    while ((p = strstr(p, "{\"seq\":")) != NULL) {
        p += 7;
        uint64_t id = parse_u64(&p, end);
        const char *t = strstr(p, "\"text\":\"");
        if (!t)
            break;
        t += 8;
        uint64_t ts, seq;
        int idx;
        if (parse_payload(t, end, &ts, &seq, &idx))
            record(s, id, seq, ts, idx, now);
        else
            st.mismatch++;
        p = t;
    }
    if (strstr(b, "\"lost\":")) {
        st.lost_events++;
        note_error(s, "poll reports lost messages", b);
    }
    if (strstr(b, "\"closed\":")) {
        st.close_events++;
        sess_fail(s, "session closed", b);
    }
}

/* One complete SSE line (without the newline). */
static void sse_line(struct sess *s, const char *p, size_t n, uint64_t now)
{
    if (n == 0) {
        if (s->ev_type == EV_MESSAGE && s->ev_has)
            record(s, s->ev_id, s->ev_seq, s->ev_ts, s->idx, now);
        else if (s->ev_type == EV_MESSAGE)
            st.mismatch++;
        s->ev_type = EV_NONE;
        s->ev_has = false;
        return;
    }
    if (p[0] == ':')
        return;
    if (opt.sockjs) {
        if (n > 6 && memcmp(p, "data: ", 6) == 0)
            sjs_frame(s, p + 6, n - 6, now);
        return;
    }
    const char *end = p + n;
    if (n > 4 && memcmp(p, "id: ", 4) == 0) {
        const char *q = p + 4;
        s->ev_id = parse_u64(&q, end);
    } else if (n > 7 && memcmp(p, "event: ", 7) == 0) {
        const char *v = p + 7;
        size_t vl = n - 7;
        s->ev_type = vl == 7 && !memcmp(v, "message", 7) ? EV_MESSAGE
                   : vl == 5 && !memcmp(v, "close", 5) ? EV_CLOSE
                   : vl == 4 && !memcmp(v, "lost", 4) ? EV_LOST : EV_OTHER;
        if (s->ev_type == EV_CLOSE) {
            st.close_events++;
            sess_fail(s, "session closed (event: close)", NULL);
        } else if (s->ev_type == EV_LOST) {
            st.lost_events++;
            note_error(s, "event: lost", NULL);
        }
    } else if (n > 7 && memcmp(p, "data: \"", 7) == 0 && s->ev_type == EV_MESSAGE) {
        int idx;
        s->ev_has = parse_payload(p + 7, end, &s->ev_ts, &s->ev_seq, &idx) &&
                    idx == s->idx;
    }
}

/* SSE bytes from the chunked body; lines may be split anywhere. */
static void sse_feed(struct sess *s, const char *d, size_t n, uint64_t now)
{
    if (buf_avail(&s->line)) {
        buf_append(&s->line, d, n);
        d = s->line.p + s->line.off;
        n = buf_avail(&s->line);
    }
    const char *p = d, *end = d + n;
    const char *nl;
    while (s->state == SS_ACTIVE && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r')
            len--;
        sse_line(s, p, len, now);
        p = nl + 1;
    }
    if (s->state != SS_ACTIVE)
        return;
    size_t rest = (size_t)(end - p);
    if (buf_avail(&s->line)) {
        buf_consume(&s->line, n - rest);
    } else if (rest) {
        buf_append(&s->line, p, rest);
    }
}

static void start_opens(void);

static void opened(struct hc *h, int status)
{
    struct sess *s = h->ss;
    if (opt.sockjs && status == 200 && buf_avail(&h->body) &&
        h->body.p[h->body.off] == 'o')
        status = 201;  /* the SockJS open frame */
    if (status != 201) {
        st.http_errors++;
        if (s) {
            sess_fail(s, "open failed", h->body.p + h->body.off);
            start_opens();
        } else {
            note_error(NULL, "open failed", h->body.p + h->body.off);
            st.failed++;
            if (st.next_open < opt.sessions) {
                send_open(h, st.next_open++);
                st.opens_in_flight++;
            }
        }
        return;
    }
    st.opened++;
    if (!s) {                 /* idle mode pool connection */
        start_opens();
        if (st.next_open < opt.sessions) {
            send_open(h, st.next_open++);
            st.opens_in_flight++;
        }
        return;
    }
    const char *id = strstr(h->body.p + h->body.off, "\"session\":\"");
    const char *e = id ? strchr(id + 11, '"') : NULL;
    if (opt.sockjs) {
        snprintf(s->id, sizeof s->id, "s%d", s->idx);
    } else if (!e || e - (id + 11) >= (long)sizeof s->id) {
        sess_fail(s, "no session id", h->body.p + h->body.off);
        start_opens();
        return;
    } else {
        memcpy(s->id, id + 11, (size_t)(e - (id + 11)));
        s->id[e - (id + 11)] = 0;
    }
    s->state = SS_ACTIVE;
    if (opt.mode == M_POLL) {
        send_poll(s);
        st.attached++;
    } else {
        send_events(s);
    }
    start_opens();
}

/* A whole response arrived (not for the event stream). */
static void hc_done(struct hc *h, uint64_t now)
{
    enum req kind = h->kind;
    int status = h->status;
    struct sess *s = h->ss;
    h->kind = RQ_NONE;
    h->ps = PS_IDLE;
    buf_reserve(&h->body, 0);
    h->body.p[h->body.len] = 0;
    if (kind == RQ_OPEN) {
        st.opens_in_flight--;
        opened(h, status);
        return;
    }
    if (!s || s->state != SS_ACTIVE)
        return;
    if (kind == RQ_EVENTS) {
        /* SockJS ends a stream at response_limit; sockjs-client opens
         * the next one, and so do we */
        if (opt.sockjs && st.phase != PH_DONE)
            send_events(s);
        else
            sess_fail(s, "event stream ended", NULL);
        return;
    }
    if (kind == RQ_POLL) {
        if (status != 200) {
            st.http_errors++;
            sess_fail(s, "poll failed", h->body.p + h->body.off);
            return;
        }
        poll_body(s, h->body.p + h->body.off, buf_avail(&h->body), now);
        if (s->state == SS_ACTIVE && st.phase != PH_DONE)
            send_poll(s);
        return;
    }
    /* ack or send on the second connection */
    if (kind == RQ_SEND && opt.sockjs && status == 204)
        status = 200;
    if (kind == RQ_SEND && status == 200)
        s->sends_ok++;
    else if (kind == RQ_SEND && status == 429)
        st.send_429++;
    if (!((kind == RQ_ACK && status == 204) || (kind == RQ_SEND && status == 200))) {
        st.http_errors++;
        note_error(s, kind == RQ_ACK ? "ack failed" : "send failed",
                   buf_avail(&h->body) ? h->body.p + h->body.off : NULL);
    }
    if (s->send_pending)
        do_send(s);
    else if (s->ack_pending && s->last_id > s->acked)
        do_ack(s);
}

static void hc_fail(struct hc *h, const char *what, const char *detail)
{
    st.conn_errors++;
    if (h->ss) {
        sess_fail(h->ss, what, detail);
    } else {
        note_error(NULL, what, detail);
        sock_close(&h->s);
        h->dead = true;
    }
}

/* Parse a response head at p (cut by head_cut). */
static bool parse_head(struct hc *h, char *p)
{
    h->status = head_status(p);
    if (h->status < 0)
        return false;
    size_t vl;
    const char *v = head_find(p, "Transfer-Encoding", &vl);
    h->chunked = v && vl >= 7 && strncasecmp(v, "chunked", 7) == 0;
    v = head_find(p, "Content-Length", &vl);
    h->remaining = v ? (size_t)strtoull(v, NULL, 10) : 0;
    h->body.off = h->body.len = 0;
    if (h->status == 204 || h->status == 304 || h->status < 200)
        h->remaining = 0, h->chunked = false;
    return true;
}

static void record(struct sess *s, uint64_t pg_id, uint64_t seq, uint64_t ts,
                   int idx, uint64_t now);
static bool parse_payload(const char *p, const char *end, uint64_t *ts,
                          uint64_t *seq, int *idx);

/* ws mode: unmasked frames from pollgate; false to stop. */
static bool ws_frames(struct hc *h, uint64_t now)
{
    struct buf *in = &h->s.in;
    struct sess *s = h->ss;
    for (;;) {
        const uint8_t *p = (const uint8_t *)in->p + in->off;
        size_t avail = buf_avail(in);
        struct ws_fh fh;
        if (avail >= 2 && (p[1] & 0x80)) {
            hc_fail(h, "masked frame from pollgate", NULL);
            return false;
        }
        if (!ws_frame_head(p, avail, &fh))
            return true;
        int op = fh.op;
        uint64_t len = fh.len;
        size_t hl = fh.hl;
        if (len > (uint64_t)MAX_SIZE * 16) {
            hc_fail(h, "frame too large", NULL);
            return false;
        }
        if (avail < hl + len)
            return true;
        const char *d = (const char *)p + hl;
        size_t n = (size_t)len;
        if (op == 1) {
            uint64_t ts, seq;
            int idx;
            if (parse_payload(d, d + n, &ts, &seq, &idx))
                record(s, seq, seq, ts, idx, now);
            else
                st.mismatch++;
        } else if (op == 9) {
            uint8_t pl[125];
            size_t m = n > 125 ? 125 : n;
            memcpy(pl, d, m);
            ws_send_frame(h, 0xA, pl, m);
        } else if (op == 8) {
            st.close_events++;
            sess_fail(s, "websocket closed by pollgate", NULL);
            return false;
        }
        buf_consume(in, hl + n);
    }
}

static void hc_process(struct hc *h, uint64_t now)
{
    struct buf *in = &h->s.in;
    for (;;) {
        if (h->dead)
            return;
        char *p = in->p + in->off;
        size_t avail = buf_avail(in);
        switch (h->ps) {
        case PS_IDLE:
            if (avail)
                hc_fail(h, "unexpected data", NULL);
            return;
        case PS_WS:
            ws_frames(h, now);
            return;
        case PS_HEAD: {
            if (!avail)
                return;
            size_t taken = 0;
            int got = head_cut(p, avail, 65536, &taken);
            if (got < 0)
                hc_fail(h, "response head too large", NULL);
            if (got <= 0)
                return;
            if (!parse_head(h, p)) {
                hc_fail(h, "bad response", p);
                return;
            }
            buf_consume(in, taken);
            if (h->kind == RQ_WS) {
                st.opens_in_flight--;
                if (h->status != 101) {
                    st.http_errors++;
                    sess_fail(h->ss, "websocket refused", p);
                    start_opens();
                    return;
                }
                st.opened++;
                st.attached++;
                h->ss->state = SS_ACTIVE;
                h->ps = PS_WS;
                start_opens();
                break;
            }
            if (h->stream) {
                bool raw = opt.sockjs && !h->chunked && !h->remaining;
                if (h->status != 200 || (!h->chunked && !raw)) {
                    st.http_errors++;
                    sess_fail(h->ss, "events refused", NULL);
                    return;
                }
                if (!h->ss->attached)
                    st.attached++;
                h->ss->attached = true;
                h->ps = raw ? PS_RAW : PS_CSIZE;
            } else if (h->chunked) {
                h->ps = PS_CSIZE;
            } else if (h->remaining) {
                h->ps = PS_BODY;
            } else {
                hc_done(h, now);
            }
            break;
        }
        case PS_BODY: {
            size_t take = avail < h->remaining ? avail : h->remaining;
            buf_append(&h->body, p, take);
            buf_consume(in, take);
            h->remaining -= take;
            if (h->remaining)
                return;
            hc_done(h, now);
            break;
        }
        case PS_CSIZE: {
            if (!avail)
                return;
            in->p[in->len] = 0;
            char *e = strstr(p, "\r\n");
            if (!e)
                return;
            size_t n = (size_t)strtoull(p, NULL, 16);
            buf_consume(in, (size_t)(e + 2 - p));
            h->remaining = n;
            h->ps = n ? PS_CDATA : PS_CEND;
            break;
        }
        case PS_CDATA: {
            if (!avail)
                return;
            size_t take = avail < h->remaining ? avail : h->remaining;
            if (h->stream)
                sse_feed(h->ss, p, take, now);
            else
                buf_append(&h->body, p, take);
            if (h->dead)
                return;
            buf_consume(in, take);
            h->remaining -= take;
            if (!h->remaining)
                h->ps = PS_CCRLF;
            break;
        }
        case PS_RAW:  /* a stream that ends with the connection */
            if (!avail)
                return;
            sse_feed(h->ss, p, avail, now);
            if (h->dead)
                return;
            buf_consume(in, avail);
            break;
        case PS_CCRLF:
        case PS_CEND:
            if (avail < 2)
                return;
            buf_consume(in, 2);
            if (h->ps == PS_CCRLF) {
                h->ps = PS_CSIZE;
            } else {
                hc_done(h, now);
            }
            break;
        }
    }
}

static void hc_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct hc *h = arg;
    if (h->dead)
        return;
    ssize_t r = sock_fill(&h->s);
    if (r == -2)
        return;
    if (r <= 0) {
        if (st.phase == PH_DONE || (!h->ss && st.phase == PH_SETTLE)) {
            sock_close(&h->s);
            h->dead = true;
            return;
        }
        hc_fail(h, r == 0 ? "connection closed by pollgate" : "read error",
                r == 0 ? NULL : strerror(errno));
        return;
    }
    hc_process(h, now_ns());
}

/* Start opening sessions, at most open_parallel at once. */
static void start_opens(void)
{
    if (opt.mode == M_IDLE)
        return;  /* the pool connections chain their own opens */
    while (st.next_open < opt.sessions && st.opens_in_flight < opt.open_parallel) {
        struct sess *s = &sess[st.next_open++];
        s->state = SS_OPENING;
        st.opens_in_flight++;
        s->main = hc_new(s);
        if (!s->main) {
            sess_fail(s, "cannot connect", strerror(errno));
            continue;
        }
        if (opt.mode == M_WS)
            send_ws_open(s->main, s->idx);
        else
            send_open(s->main, s->idx);
    }
}

/* --------------------------------------------------------------- phases */

static void set_phase(enum phase p)
{
    st.phase = p;
    st.phase_ns = now_ns();
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void run_wheels(int64_t ms)
{
    int n = opt.sessions;
    bool sending = st.phase == PH_WARMUP || st.phase == PH_MEASURE;
    if (sending && opt.rate > 0 && opt.mode == M_WS) {
        /* both ways: the upstream pushes, the browser sends */
        int per = 1000 / opt.rate;
        for (int i = (int)(ms % per); i < n; i += per) {
            up_push(i);
            sess_ws_send(&sess[i]);
        }
    }
    if (sending && opt.window) {
        for (int i = (int)(ms % REFILL_MS); i < n; i += REFILL_MS)
            up_refill(i, ms);
    } else if (sending && opt.rate > 0 && (opt.mode == M_POLL || opt.mode == M_SSE)) {
        int per = 1000 / opt.rate;
        for (int i = (int)(ms % per); i < n; i += per)
            up_push(i);
    }
    if (sending && opt.rate > 0 && opt.mode == M_ECHO) {
        int per = 1000 / opt.rate;
        for (int i = (int)(ms % per); i < n; i += per)
            sess_send(&sess[i]);
    }
    if ((opt.mode == M_SSE || opt.mode == M_ECHO) && st.phase != PH_OPEN &&
        opt.ack_ms > 0 && !opt.sockjs) {
        for (int i = (int)(ms % opt.ack_ms); i < n; i += opt.ack_ms)
            sess_ack(&sess[i]);
    }
}

static uint64_t sent_total(void)
{
    uint64_t t = 0;
    for (int i = 0; i < opt.sessions; i++)
        t += opt.mode == M_ECHO ? sess[i].sends_ok : up_sent[i];
    return t;
}

static uint64_t uniq_total(void)
{
    uint64_t t = 0;
    for (int i = 0; i < opt.sessions; i++)
        t += sess[i].uniq;
    return t;
}

static void progress(uint64_t now)
{
    static uint64_t last_ns, last_recv;
    static double last_gw, last_self;
    if (!opt.verbose)
        return;
    if (!last_ns) {
        last_ns = now;
        last_gw = proc_cpu_s(opt.pid);
        last_self = self_cpu_s();
        return;
    }
    if (now - last_ns < 2000000000u)
        return;
    double dt = secs(now - last_ns), gw = proc_cpu_s(opt.pid), me = self_cpu_s();
    fprintf(stderr, "pgbench: phase %d recv %.0f/s pollgate %.0f%% bench %.0f%% "
            "attached %d failed %d up %llu\n", (int)st.phase,
            (double)(st.recv_total - last_recv) / dt, 100 * (gw - last_gw) / dt,
            100 * (me - last_self) / dt, st.attached, st.failed,
            (unsigned long long)st.up_handshakes);
    last_ns = now;
    last_recv = st.recv_total;
    last_gw = gw;
    last_self = me;
}

static void finish(void);

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what; (void)arg;
    static uint64_t last_tick;
    uint64_t now = now_ns();
    double in_phase = secs(now - st.phase_ns);
    if (st.phase == PH_MEASURE && last_tick) {
        uint64_t sec = (now - st.s0.t_ns) / 1000000000u;
        if (sec < TL_N && now - last_tick > tl_gap_ns[sec])
            tl_gap_ns[sec] = now - last_tick;
    }
    last_tick = now;
    progress(now);
    switch (st.phase) {
    case PH_OPEN:
        if (opt.mode == M_IDLE) {
            if (st.opened + st.failed >= opt.sessions) {
                for (int i = 0; i < n_pool; i++) {
                    if (!pool[i]->dead)
                        sock_close(&pool[i]->s);
                    pool[i]->dead = true;
                }
                set_phase(PH_SETTLE);
            }
        } else if (st.attached + st.failed >= opt.sessions) {
            set_phase(PH_WARMUP);
            st.wheel_t0 = now;
            st.wheel_done = -1;
        }
        {   /* give up when opening stalls (10 s without progress) */
            static int last_opened = -1;
            static uint64_t last_progress;
            if (st.opened + st.attached + st.failed != last_opened) {
                last_opened = st.opened + st.attached + st.failed;
                last_progress = now;
            } else if (secs(now - last_progress) > 10 || in_phase > 300) {
                fprintf(stderr, "pgbench: opening sessions stalled (opened %d "
                        "attached %d failed %d of %d)\n", st.opened,
                        st.attached, st.failed, opt.sessions);
                exit(1);
            }
        }
        break;
    case PH_WARMUP:
        if (in_phase >= opt.warmup) {
            set_phase(PH_MEASURE);
            snap(&st.s0);
        }
        break;
    case PH_MEASURE:
        if (in_phase >= opt.duration) {
            snap(&st.s1);
            st.rss_end_kb = proc_status_kb(opt.pid, "VmRSS");
            st.hwm_kb = proc_status_kb(opt.pid, "VmHWM");
            set_phase(PH_DRAIN);
        }
        break;
    case PH_DRAIN: {
        static uint64_t last_check;
        if (now - last_check > 50000000u) {
            last_check = now;
            bool busy = false;
            for (int i = 0; i < opt.sessions && !busy; i++)
                busy = sess[i].state == SS_ACTIVE && sess[i].aux &&
                       sess[i].aux->kind == RQ_SEND;
            if ((!busy && uniq_total() >= sent_total()) || in_phase >= opt.drain)
                finish();
        }
        break;
    }
    case PH_SETTLE:
        if (!st.s0.t_ns && in_phase >= 1) {
            snap(&st.s0);
        } else if (in_phase >= opt.settle) {
            snap(&st.s1);
            st.rss_after_kb = proc_status_kb(opt.pid, "VmRSS");
            st.rss_end_kb = st.rss_after_kb;
            st.hwm_kb = proc_status_kb(opt.pid, "VmHWM");
            finish();
        }
        break;
    case PH_DONE:
        break;
    }
    if (st.wheel_t0 && st.phase != PH_DONE) {
        int64_t ms = (int64_t)((now - st.wheel_t0) / 1000000u);
        for (int64_t m = st.wheel_done + 1; m <= ms; m++)
            run_wheels(m);
        st.wheel_done = ms;
    }
}

/* -------------------------------------------------------------- report */

/* GET /stats from pollgate's admin port (blocking, bounded): its own
 * session count; -1 without --admin-port. */
static long gateway_sessions(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(opt.gw_port);
    struct timeval tv = { 2, 0 };
    char b[4096];
    size_t n = 0;
    long v = -1;
    if (fd < 0)
        return -1;
    if (!opt.admin_port) {
        close(fd);
        return -1;
    }
    a = loopback(opt.admin_port);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int len = snprintf(b, sizeof b, "GET /stats HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                       "Connection: close\r\n\r\n", opt.admin_port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        send(fd, b, (size_t)len, MSG_NOSIGNAL) == len) {
        ssize_t r;
        while (n < sizeof b - 1 && (r = recv(fd, b + n, sizeof b - 1 - n, 0)) > 0)
            n += (size_t)r;
    }
    close(fd);
    size_t taken = 0;
    if (head_cut(b, n, sizeof b, &taken) <= 0 || head_status(b) != 200)
        return -1;
    const char *p = strstr(b + taken, "\"sessions\":");
    if (p)
        v = strtol(p + 11, NULL, 10);
    return v;
}

static double pct(double p)
{
    if (!st.hist_n)
        return 0;
    uint64_t want = (uint64_t)(p * (double)st.hist_n + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t c = 0;
    for (uint32_t i = 0; i < HIST_N; i++) {
        c += hist[i];
        if (c >= want)
            return (i + 0.5) / 1000.0;  /* ms, bucket middle */
    }
    return secs(st.lat_max_ns) * 1000;
}

struct results {
    double window, delivered_s, gw_cpu, gw_pct, mpcs, self_pct;
    double cpu0_busy_pct, cpu1_busy_pct, p50, p90, p99, p999, max;
    uint64_t lost, held, reqs;
    double idle_bytes, others_cpu0_pct;
    long gw_sessions;
    bool pass_mpcs, pass_p50, pass_p99, pass_idle, clean;
};

static void compute(struct results *r)
{
    memset(r, 0, sizeof *r);
    r->window = secs(st.s1.t_ns - st.s0.t_ns);
    if (r->window <= 0)
        r->window = 1e-9;
    r->gw_cpu = st.s1.gw_cpu - st.s0.gw_cpu;
    r->gw_pct = 100 * r->gw_cpu / r->window;
    r->self_pct = 100 * (st.s1.self_cpu - st.s0.self_cpu) / r->window;
    for (int c = 0; c < 2; c++) {
        double tot = (double)(st.s1.cpu_total[c] - st.s0.cpu_total[c]);
        double busy = (double)(st.s1.cpu_busy[c] - st.s0.cpu_busy[c]);
        double v = tot > 0 ? 100 * busy / tot : 0;
        if (c == 0)
            r->cpu0_busy_pct = v;
        else
            r->cpu1_busy_pct = v;
    }
    r->others_cpu0_pct = r->cpu0_busy_pct > r->gw_pct ? r->cpu0_busy_pct - r->gw_pct : 0;
    r->gw_sessions = gateway_sessions();
    r->delivered_s = (double)st.recv_window / r->window;
    r->mpcs = r->gw_cpu > 0 ? (double)st.recv_window / r->gw_cpu : 0;
    r->reqs = st.s1.requests - st.s0.requests;
    r->p50 = pct(0.50);
    r->p90 = pct(0.90);
    r->p99 = pct(0.99);
    r->p999 = pct(0.999);
    r->max = secs(st.lat_max_ns) * 1000;
    uint64_t sent = sent_total(), got = uniq_total();
    r->lost = sent > got ? sent - got : 0;
    /* held: received within 1.5 s plus one message interval of the end */
    uint64_t end = st.s1.t_ns;
    uint64_t slack = 1500000000u + (opt.rate > 0 ? 1000000000u / (uint64_t)opt.rate : 0);
    for (int i = 0; i < opt.sessions; i++)
        if (sess && sess[i].state == SS_ACTIVE && sess[i].last_rx_ns + slack >= end)
            r->held++;
    if (opt.mode == M_IDLE) {
        r->held = (uint64_t)st.opened;
        r->idle_bytes = st.opened ? (double)(st.rss_after_kb - st.rss_before_kb) *
                                    1024.0 / st.opened : 0;
    }
    r->pass_mpcs = !opt.t_mpcs || r->mpcs >= opt.t_mpcs;
    r->pass_p50 = !opt.t_p50 || r->p50 <= opt.t_p50;
    r->pass_p99 = !opt.t_p99 || r->p99 <= opt.t_p99;
    r->pass_idle = !opt.t_idle || (r->idle_bytes <= opt.t_idle && st.opened == opt.sessions);
    r->clean = r->lost == 0 && !st.dup && !st.reorder && !st.mismatch &&
               !st.failed && !st.http_errors && !st.conn_errors &&
               !st.lost_events && !st.close_events && !st.up_closed &&
               !st.up_blocked;
    if (r->gw_sessions != (long)(opt.mode == M_IDLE ? st.opened : (int)r->held) &&
        !(opt.sockjs && r->gw_sessions < 0))  /* the relay has no /stats */
        r->clean = false;
    if (opt.mode == M_IDLE)
        r->clean = st.opened == opt.sessions && !st.failed && !st.conn_errors &&
                   (r->gw_sessions == st.opened || (opt.sockjs && r->gw_sessions < 0)) &&
                   !st.up_closed;
}

static void write_json(const struct results *r)
{
    if (!opt.json_path)
        return;
    FILE *f = fopen(opt.json_path, "w");
    if (!f)
        die(opt.json_path);
    fprintf(f, "{\"name\":\"%s\",\"mode\":\"%s\",\"sessions\":%d,"
            "\"rate_per_session\":%d,\"in_flight_per_session\":%d,\"msg_bytes\":%d,"
            "\"warmup_s\":%.1f,\"window_s\":%.3f,", opt.name, mode_names[opt.mode],
            opt.sessions, opt.rate, opt.window, opt.size, opt.warmup,
            r->window);
    if (opt.mode == M_IDLE) {
        fprintf(f, "\"opened\":%d,\"pollgate_sessions\":%ld,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
                "\"bytes_per_idle_session\":%.0f,\"pollgate_cpu_pct_idle\":%.2f,"
                "\"target_bytes\":%.0f,\"pass\":%s,\"clean\":%s,"
                "\"note\":\"K sessions limited by the 20,000 descriptors per "
                "process hard limit (2 per session)\"}\n",
                st.opened, r->gw_sessions, st.rss_before_kb, st.rss_after_kb, r->idle_bytes,
                r->gw_pct, opt.t_idle, r->pass_idle ? "true" : "false",
                r->clean ? "true" : "false");
        fclose(f);
        return;
    }
    fprintf(f, "\"delivered\":%llu,\"delivered_per_s\":%.0f,\"delivered_per_session_s\":%.1f,"
            "\"pollgate_cpu_s\":%.2f,\"pollgate_cpu_s_schedstat\":%.3f,"
            "\"pollgate_cpu_pct\":%.1f,"
            "\"msgs_per_pollgate_cpu_s\":%.0f,\"us_cpu_per_msg\":%.2f,"
            "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
            "\"p999\":%.3f,\"max\":%.3f},",
            (unsigned long long)st.recv_window, r->delivered_s,
            r->delivered_s / opt.sessions, r->gw_cpu,
            st.s1.gw_sched - st.s0.gw_sched, r->gw_pct, r->mpcs, r->mpcs > 0 ? 1e6 / r->mpcs : 0,
            r->p50, r->p90, r->p99, r->p999, r->max);
    fprintf(f, "\"lost\":%llu,\"dup\":%llu,\"reorder\":%llu,\"mismatch\":%llu,"
            "\"sessions_held\":%llu,\"pollgate_sessions\":%ld,\"failed_sessions\":%d,\"http_errors\":%llu,"
            "\"conn_errors\":%llu,\"lost_events\":%llu,\"close_events\":%llu,"
            "\"upstream_closed\":%llu,\"upstream_blocked\":%llu,\"send_429\":%llu,",
            (unsigned long long)r->lost, (unsigned long long)st.dup,
            (unsigned long long)st.reorder, (unsigned long long)st.mismatch,
            (unsigned long long)r->held, r->gw_sessions, st.failed,
            (unsigned long long)st.http_errors, (unsigned long long)st.conn_errors,
            (unsigned long long)st.lost_events, (unsigned long long)st.close_events,
            (unsigned long long)st.up_closed, (unsigned long long)st.up_blocked,
            (unsigned long long)st.send_429);
    fprintf(f, "\"http_requests_per_s\":%.0f,\"rss_kib\":%ld,\"hwm_kib\":%ld,"
            "\"bench_cpu_pct\":%.1f,\"cpu0_busy_pct\":%.1f,\"cpu1_busy_pct\":%.1f,"
            "\"others_cpu0_pct\":%.1f,\"msgs_per_request\":%.2f,"
            "\"pollgate_wakeups_per_s\":%.0f,\"pollgate_msgs_per_wakeup\":%.2f,"
            "\"pollgate_preempted_per_s\":%.0f,"
            "\"target\":{\"msgs_per_cpu_s\":%.0f,\"p50_ms\":%.1f,\"p99_ms\":%.1f},"
            "\"pass\":{\"msgs_per_cpu_s\":%s,\"p50\":%s,\"p99\":%s},\"clean\":%s,",
            (double)r->reqs / r->window, st.rss_end_kb, st.hwm_kb, r->self_pct,
            r->cpu0_busy_pct, r->cpu1_busy_pct, r->others_cpu0_pct,
            r->reqs ? (double)st.recv_window / (double)r->reqs : 0,
            (double)(st.s1.gw_vcsw - st.s0.gw_vcsw) / r->window,
            st.s1.gw_vcsw > st.s0.gw_vcsw ?
                (double)st.recv_window / (double)(st.s1.gw_vcsw - st.s0.gw_vcsw) : 0,
            (double)(st.s1.gw_ivcsw - st.s0.gw_ivcsw) / r->window,
            opt.t_mpcs, opt.t_p50, opt.t_p99,
            r->pass_mpcs ? "true" : "false", r->pass_p50 ? "true" : "false",
            r->pass_p99 ? "true" : "false", r->clean ? "true" : "false");
    int secs_n = (int)r->window < TL_N ? (int)r->window : TL_N;
    fprintf(f, "\"max_ms_by_second\":[");
    for (int i = 0; i < secs_n; i++)
        fprintf(f, "%s%.1f", i ? "," : "", (double)tl_max_ns[i] / 1e6);
    fprintf(f, "],\"over_10ms_by_second\":[");
    for (int i = 0; i < secs_n; i++)
        fprintf(f, "%s%u", i ? "," : "", tl_slow[i]);
    fprintf(f, "],\"bench_loop_gap_ms_by_second\":[");
    for (int i = 0; i < secs_n; i++)
        fprintf(f, "%s%.1f", i ? "," : "", (double)tl_gap_ns[i] / 1e6);
    fprintf(f, "]}\n");
    fclose(f);
}

static void print_header(FILE *f)
{
    fprintf(f, "%-9s %6s %9s %7s %9s %8s %8s %8s %11s %8s %6s %6s  %s\n",
            "scenario", "sess", "deliv/s", "pg-CPU", "msg/CPU-s", "p50 ms",
            "p99 ms", "max ms", "lost/dup/ro", "RSS KiB", "bench", "held",
            "verdict (targets)");
}

static void write_row(const struct results *r)
{
    char verdict[256];
    FILE *f = opt.row_path ? fopen(opt.row_path, "w") : stdout;
    if (!f)
        die(opt.row_path);
    if (opt.mode == M_IDLE) {
        snprintf(verdict, sizeof verdict, "%s: %.0f B/session (<= %.0f)%s",
                 r->pass_idle ? "PASS" : "MISS", r->idle_bytes, opt.t_idle,
                 r->clean ? "" : " ERRORS");
        fprintf(f, "%-9s %6d %9s %6.1f%% %9s %8s %8s %8s %11s %8ld %5.0f%% %6d  %s\n",
                opt.name, st.opened, "-", r->gw_pct, "-", "-", "-", "-", "-",
                st.rss_after_kb, r->self_pct, st.opened, verdict);
    } else {
        int n = 0;
        n += snprintf(verdict + n, sizeof verdict - (size_t)n, "%s",
                      r->clean ? "" : "ERRORS; ");
        if (opt.t_mpcs)
            n += snprintf(verdict + n, sizeof verdict - (size_t)n, "%s msg/CPU-s>=%.0f; ",
                          r->pass_mpcs ? "PASS" : "MISS", opt.t_mpcs);
        if (opt.t_p50)
            n += snprintf(verdict + n, sizeof verdict - (size_t)n, "%s p50<=%.0fms; ",
                          r->pass_p50 ? "PASS" : "MISS", opt.t_p50);
        if (opt.t_p99)
            snprintf(verdict + n, sizeof verdict - (size_t)n, "%s p99<=%.0fms",
                     r->pass_p99 ? "PASS" : "MISS", opt.t_p99);
        char lost[40];
        snprintf(lost, sizeof lost, "%llu/%llu/%llu", (unsigned long long)r->lost,
                 (unsigned long long)st.dup, (unsigned long long)st.reorder);
        fprintf(f, "%-9s %6d %9.0f %6.1f%% %9.0f %8.3f %8.3f %8.2f %11s %8ld %5.0f%% %6llu  %s\n",
                opt.name, opt.sessions, r->delivered_s, r->gw_pct, r->mpcs, r->p50,
                r->p99, r->max, lost, st.rss_end_kb, r->self_pct,
                (unsigned long long)r->held, verdict);
    }
    if (f != stdout)
        fclose(f);
}

static void finish(void)
{
    struct results r;
    set_phase(PH_DONE);
    compute(&r);
    if (opt.mode == M_IDLE) {
        printf("%s: %d idle sessions (pollgate /stats: %ld), pollgate RSS %ld -> "
               "%ld KiB: %.0f bytes per idle session (pollgate CPU while idle "
               "%.2f%%)\n", opt.name, st.opened, r.gw_sessions, st.rss_before_kb,
               st.rss_after_kb, r.idle_bytes, r.gw_pct);
    } else {
        printf("%s: %.1f s window, %llu delivered (%.0f/s), pollgate CPU %.2f s "
               "(%.1f%%) = %.0f msg/CPU-s (%.2f us/msg); latency ms p50 %.3f "
               "p90 %.3f p99 %.3f p99.9 %.3f max %.3f; lost %llu dup %llu "
               "reorder %llu mismatch %llu; held %llu/%d (pollgate: %ld); pollgate RSS %ld KiB; "
               "bench CPU %.1f%%; cpu0 busy %.1f%% cpu1 busy %.1f%%; "
               "%.0f HTTP requests/s; pollgate %.0f wakeups/s (%.1f msg each)\n",
               opt.name, r.window, (unsigned long long)st.recv_window,
               r.delivered_s, r.gw_cpu, r.gw_pct, r.mpcs,
               r.mpcs > 0 ? 1e6 / r.mpcs : 0, r.p50, r.p90, r.p99, r.p999, r.max,
               (unsigned long long)r.lost, (unsigned long long)st.dup,
               (unsigned long long)st.reorder, (unsigned long long)st.mismatch,
               (unsigned long long)r.held, opt.sessions, r.gw_sessions, st.rss_end_kb,
               r.self_pct, r.cpu0_busy_pct, r.cpu1_busy_pct,
               (double)r.reqs / r.window,
               (double)(st.s1.gw_vcsw - st.s0.gw_vcsw) / r.window,
               st.s1.gw_vcsw > st.s0.gw_vcsw ?
                   (double)st.recv_window / (double)(st.s1.gw_vcsw - st.s0.gw_vcsw) : 0);
        if (r.cpu0_busy_pct > 95 && r.others_cpu0_pct > 10)
            printf("%s: note: CPU 0 was saturated, other processes took ~%.0f%% "
                   "of it: pollgate may have waited for its core\n", opt.name,
                   r.others_cpu0_pct);
        if (r.gw_sessions >= 0 && r.gw_sessions != (long)r.held)
            printf("%s: WARNING: pollgate /stats counts %ld sessions, %llu held\n",
                   opt.name, r.gw_sessions, (unsigned long long)r.held);
        if (opt.mode == M_WS)
            printf("%s: browser -> upstream: %llu sent, %llu received by the "
                   "upstream\n", opt.name, (unsigned long long)st.ws_sent,
                   (unsigned long long)st.up_recv);
        if (r.self_pct > 90)
            printf("%s: WARNING: the bench itself used %.0f%% of its core: it may "
                   "be the bottleneck\n", opt.name, r.self_pct);
    }
    write_json(&r);
    write_row(&r);
    fflush(stdout);
    event_base_loopbreak(base);
    exit(r.clean ? 0 : 1);
}

/* --------------------------------------------------------------- setup */

static void free_ports(int n)
{
    int fds[16];
    for (int i = 0; i < n && i < 16; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = loopback(0);
        socklen_t al = sizeof a;
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&a, &al) < 0)
            die("free port");
        printf("%s%u", i ? " " : "", ntohs(a.sin_port));
    }
    printf("\n");
    for (int i = 0; i < n && i < 16; i++)
        close(fds[i]);
}

static void up_listen(void)
{
    up_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(up_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(opt.up_port);
    if (up_listen_fd < 0 || bind(up_listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(up_listen_fd, 4096) < 0)
        die("upstream listen");
    up_accept_ev = event_new(base, up_listen_fd, EV_READ | EV_PERSIST,
                             up_accept_cb, NULL);
    event_add(up_accept_ev, NULL);
}

/* Wait (blocking, bounded) until pollgate's pid is known and its port
 * accepts connections. */
static void wait_gateway(void)
{
    for (int i = 0; i < 200; i++) {
        if (opt.pid <= 0 && opt.pid_file) {
            FILE *f = fopen(opt.pid_file, "r");
            if (f) {
                if (fscanf(f, "%ld", &opt.pid) != 1)
                    opt.pid = 0;
                fclose(f);
            }
        }
        if (opt.pid > 0) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in a = loopback(opt.gw_port);
            int rc = fd >= 0 ? connect(fd, (struct sockaddr *)&a, sizeof a) : -1;
            if (fd >= 0)
                close(fd);
            if (rc == 0)
                return;
        }
        usleep(50000);
    }
    fprintf(stderr, "pgbench: pollgate not reachable on 127.0.0.1:%u (pid %ld)\n",
            opt.gw_port, opt.pid);
    exit(2);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: pgbench --gw-port P --upstream-port U (--pid N | --pid-file F)\n"
        "               [--mode poll|sse|echo|idle|ws] [--sessions N] [--rate R]\n"
        "               [--size B] [--warmup S] [--duration S] [--drain S]\n"
        "               [--settle S] [--ack-ms MS] [--route /bench] [--name NAME]\n"
        "               [--json FILE] [--row FILE] [--target-mpcs X]\n"
        "               [--target-p50 MS] [--target-p99 MS] [--target-idle B]\n"
        "               [--ready-file F] [--open-parallel N] [--admin-port A] [-v]\n"
        "               [--dialect native|sockjs] [--window W]\n"
        "       pgbench --free-ports N | --header\n"
        "R must divide 1000 (messages are scheduled on a 1 ms wheel), except\n"
        "with --window W (poll and sse modes, 1 to %d): any R, pushed every %d ms\n"
        "per session, never more than W messages in flight per session.\n",
        PUSH_MAX, REFILL_MS);
}

static void parse_args(int argc, char **argv)
{
    enum { O_GW = 256, O_UP, O_PID, O_PIDF, O_MODE, O_SESS, O_RATE, O_SIZE,
           O_WARM, O_DUR, O_DRAIN, O_SETTLE, O_ACK, O_ROUTE, O_NAME, O_JSON,
           O_ROW, O_TMPCS, O_TP50, O_TP99, O_TIDLE, O_FREE, O_HEADER, O_PAR,
           O_READY, O_ADMIN, O_DIALECT, O_WINDOW };
    static const struct option lo[] = {
        { "gw-port", required_argument, NULL, O_GW },
        { "admin-port", required_argument, NULL, O_ADMIN },
        { "upstream-port", required_argument, NULL, O_UP },
        { "pid", required_argument, NULL, O_PID },
        { "pid-file", required_argument, NULL, O_PIDF },
        { "mode", required_argument, NULL, O_MODE },
        { "sessions", required_argument, NULL, O_SESS },
        { "rate", required_argument, NULL, O_RATE },
        { "size", required_argument, NULL, O_SIZE },
        { "warmup", required_argument, NULL, O_WARM },
        { "duration", required_argument, NULL, O_DUR },
        { "drain", required_argument, NULL, O_DRAIN },
        { "settle", required_argument, NULL, O_SETTLE },
        { "ack-ms", required_argument, NULL, O_ACK },
        { "route", required_argument, NULL, O_ROUTE },
        { "name", required_argument, NULL, O_NAME },
        { "json", required_argument, NULL, O_JSON },
        { "row", required_argument, NULL, O_ROW },
        { "target-mpcs", required_argument, NULL, O_TMPCS },
        { "target-p50", required_argument, NULL, O_TP50 },
        { "target-p99", required_argument, NULL, O_TP99 },
        { "target-idle", required_argument, NULL, O_TIDLE },
        { "open-parallel", required_argument, NULL, O_PAR },
        { "ready-file", required_argument, NULL, O_READY },
        { "dialect", required_argument, NULL, O_DIALECT },
        { "window", required_argument, NULL, O_WINDOW },
        { "free-ports", required_argument, NULL, O_FREE },
        { "header", no_argument, NULL, O_HEADER },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
        switch (c) {
        case O_GW: opt.gw_port = (uint16_t)atoi(optarg); break;
        case O_ADMIN: opt.admin_port = (uint16_t)atoi(optarg); break;
        case O_UP: opt.up_port = (uint16_t)atoi(optarg); break;
        case O_PID: opt.pid = atol(optarg); break;
        case O_PIDF: opt.pid_file = optarg; break;
        case O_MODE:
            for (int m = 0; m < (int)(sizeof mode_names / sizeof *mode_names); m++)
                if (!strcmp(optarg, mode_names[m]))
                    opt.mode = (enum mode)m;
            if (strcmp(optarg, mode_names[opt.mode])) {
                usage(stderr);
                exit(2);
            }
            break;
        case O_SESS: opt.sessions = atoi(optarg); break;
        case O_RATE: opt.rate = atoi(optarg); break;
        case O_SIZE: opt.size = atoi(optarg); break;
        case O_WARM: opt.warmup = atof(optarg); break;
        case O_DUR: opt.duration = atof(optarg); break;
        case O_DRAIN: opt.drain = atof(optarg); break;
        case O_SETTLE: opt.settle = atof(optarg); break;
        case O_ACK: opt.ack_ms = atoi(optarg); break;
        case O_ROUTE: opt.route = optarg; break;
        case O_NAME: opt.name = optarg; break;
        case O_JSON: opt.json_path = optarg; break;
        case O_ROW: opt.row_path = optarg; break;
        case O_TMPCS: opt.t_mpcs = atof(optarg); break;
        case O_TP50: opt.t_p50 = atof(optarg); break;
        case O_TP99: opt.t_p99 = atof(optarg); break;
        case O_TIDLE: opt.t_idle = atof(optarg); break;
        case O_PAR: opt.open_parallel = atoi(optarg); break;
        case O_WINDOW: opt.window = atoi(optarg); break;
        case O_READY: opt.ready_file = optarg; break;
        case O_DIALECT:
            if (strcmp(optarg, "sockjs") && strcmp(optarg, "native")) {
                usage(stderr);
                exit(2);
            }
            opt.sockjs = !strcmp(optarg, "sockjs");
            break;
        case O_FREE: free_ports(atoi(optarg)); exit(0);
        case O_HEADER: print_header(stdout); exit(0);
        case 'v': opt.verbose = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (!opt.gw_port || !opt.up_port || (opt.pid <= 0 && !opt.pid_file) ||
        opt.sessions < 1 || opt.size < 40 || opt.size > MAX_SIZE ||
        (opt.rate > 0 && 1000 % opt.rate && !opt.window) || opt.rate < 0 || optind != argc ||
        opt.window < 0 || opt.window > PUSH_MAX ||
        (opt.window && (opt.rate < 1 || (opt.mode != M_POLL && opt.mode != M_SSE)))) {
        usage(stderr);
        exit(2);
    }
    if (!opt.name)
        opt.name = mode_names[opt.mode];
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base)
        die("event_base_new");
    sess = xmalloc(sizeof *sess * (size_t)opt.sessions);
    ups = xmalloc(sizeof *ups * (size_t)opt.sessions);
    up_sent = xmalloc(sizeof *up_sent * (size_t)opt.sessions);
    up_got = xmalloc(sizeof *up_got * (size_t)opt.sessions);
    up_due = xmalloc(sizeof *up_due * (size_t)opt.sessions);
    up_free_idx = xmalloc(sizeof *up_free_idx * (size_t)opt.sessions);
    for (int i = 0; i < opt.sessions; i++) {
        sess[i].idx = i;
        sess[i].up_idx = -1;
    }
    up_listen();
    if (opt.ready_file) {  /* tell run.sh the upstream listens */
        FILE *f = fopen(opt.ready_file, "w");
        if (!f)
            die(opt.ready_file);
        fclose(f);
    }
    wait_gateway();

    set_phase(PH_OPEN);
    if (opt.mode == M_IDLE) {
        usleep(500000);  /* let pollgate finish starting up */
        st.rss_before_kb = proc_status_kb(opt.pid, "VmRSS");
        n_pool = opt.open_parallel < opt.sessions ? opt.open_parallel : opt.sessions;
        pool = xmalloc(sizeof *pool * (size_t)n_pool);
        for (int i = 0; i < n_pool; i++) {
            pool[i] = hc_new(NULL);
            if (!pool[i])
                die("connect");
            st.opens_in_flight++;
            send_open(pool[i], st.next_open++);
        }
    } else {
        start_opens();
    }
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval ms = { 0, 1000 };
    event_add(tick, &ms);
    event_base_dispatch(base);
    return 1;
}

/* gw_common.c - error detail, growable buffer, unit parsing. */
#include "gw_common.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

void gw_ms_to_tv(uint64_t ms, struct timeval *tv)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

const char *gw_strerror(int err)
{
    switch (err) {
    case GW_OK: return "ok";
    case GW_EAGAIN: return "need more input";
    case GW_EINVAL: return "invalid input";
    case GW_EPROTO: return "protocol error";
    case GW_ETOOBIG: return "limit exceeded";
    case GW_EUTF8: return "invalid UTF-8";
    case GW_ENOMEM: return "out of memory";
    case GW_EIO: return "I/O error";
    case GW_ESTATE: return "wrong state";
    case GW_ETLS: return "TLS error";
    case GW_EFULL: return "queue full";
    default: return "unknown error";
    }
}

int gw_error_set(struct gw_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

#ifdef GW_FAULT_INJECTION
/*
 * Test-only (compiled into the ASan build): POLLGATE_FAULT_BUF=SIZE:COUNT
 * makes the next COUNT growths of any gw_buf to SIZE bytes or more fail as
 * if realloc had, so that tests can show what an allocation failure on a
 * delivery path does. Read once; said on stderr when armed.
 */
static bool fault_buf(size_t cap)
{
    static int state = -1; /* -1 unread, 0 off, 1 armed */
    static unsigned long long min_size, count;
    if (state < 0) {
        const char *v = getenv("POLLGATE_FAULT_BUF");
        state = v && sscanf(v, "%llu:%llu", &min_size, &count) == 2;
        if (state)
            fprintf(stderr, "fault injection: the next %llu gw_buf growths "
                    "to %llu bytes or more fail\n", count, min_size);
    }
    if (state <= 0 || !count || cap < min_size)
        return false;
    count--;
    return true;
}
#else
static bool fault_buf(size_t cap)
{
    (void)cap;
    return false;
}
#endif

uint8_t *gw_buf_reserve(struct gw_buf *b, size_t len)
{
    if (len > SIZE_MAX - b->len - 1)
        return NULL;
    size_t need = b->len + len + 1; /* + NUL */
    if (b->max && b->len + len > b->max)
        return NULL;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *p = fault_buf(cap) ? NULL : realloc(b->data, cap);
        if (!p)
            return NULL;
        b->data = p;
        b->cap = cap;
    }
    return b->data + b->len;
}

int gw_buf_append(struct gw_buf *b, const void *data, size_t len)
{
    if (b->max && (len > b->max || b->len > b->max - len))
        return GW_ETOOBIG;
    uint8_t *p = gw_buf_reserve(b, len);
    if (!p)
        return GW_ENOMEM;
    if (len)
        memcpy(p, data, len);
    b->len += len;
    b->data[b->len] = 0;
    return 0;
}

int gw_buf_appendf(struct gw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return GW_EINVAL;
    if (b->max && ((size_t)n > b->max || b->len > b->max - (size_t)n))
        return GW_ETOOBIG;
    uint8_t *p = gw_buf_reserve(b, (size_t)n);
    if (!p)
        return GW_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void gw_buf_reset(struct gw_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void gw_buf_free(struct gw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void gw_buf_trim(struct gw_buf *b, size_t keep)
{
    if (b->cap > keep)
        gw_buf_free(b);
    else
        gw_buf_reset(b);
}

/* Parse "<digits><unit>" with optional spaces; returns unit string via *rest. */
static int parse_number(const char *s, uint64_t *v, const char **rest)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return GW_EINVAL;
    uint64_t n = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return GW_EINVAL;
        n = n * 10 + d;
        s++;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    *v = n;
    *rest = s;
    return 0;
}

static bool unit_is(const char *rest, const char *unit)
{
    size_t n = strlen(unit);
    if (strncasecmp(rest, unit, n) != 0)
        return false;
    rest += n;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    return *rest == 0;
}

static int scale(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (mul && v > UINT64_MAX / mul)
        return GW_EINVAL;
    *out = v * mul;
    return 0;
}

int gw_parse_size(const char *s, uint64_t *out)
{
    uint64_t v;
    const char *u;
    if (!s || parse_number(s, &v, &u) < 0)
        return GW_EINVAL;
    if (*u == 0 || unit_is(u, "B"))
        return scale(v, 1, out);
    if (unit_is(u, "KiB"))
        return scale(v, 1024ULL, out);
    if (unit_is(u, "MiB"))
        return scale(v, 1024ULL * 1024, out);
    if (unit_is(u, "GiB"))
        return scale(v, 1024ULL * 1024 * 1024, out);
    return GW_EINVAL;
}

int gw_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    uint64_t v;
    const char *u;
    if (!s || parse_number(s, &v, &u) < 0)
        return GW_EINVAL;
    if (*u == 0) /* a bare number is only accepted for 0 */
        return v == 0 ? (*out_ms = 0, 0) : GW_EINVAL;
    if (unit_is(u, "ms"))
        return scale(v, 1, out_ms);
    if (unit_is(u, "s"))
        return scale(v, 1000ULL, out_ms);
    if (unit_is(u, "m"))
        return scale(v, 60000ULL, out_ms);
    if (unit_is(u, "h"))
        return scale(v, 3600000ULL, out_ms);
    return GW_EINVAL;
}

bool gw_sock_peer_gone(int fd, bool *bytes)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    if (n < 0)
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    /* a reset can sit behind bytes still queued */
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
        return true;
    *bytes = true;
    return false;
}

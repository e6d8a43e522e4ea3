/*
 * gw_proxy.c - trusted proxies and the client address behind them (see
 * gw_proxy.h).
 */
#include "gw_proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gw_common.h"

#define MAX_XFF_ENTRIES 64 /* hops looked at from the right */

struct net {
    int family;            /* AF_INET or AF_INET6 */
    unsigned char a[16];
    unsigned bits;
};

static struct net *trusted;
static size_t n_trusted;

/* Text address -> family and bytes; IPv4-mapped IPv6 becomes IPv4. */
static bool parse_ip(const char *s, size_t len, int *family, unsigned char a[16])
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    if (inet_pton(AF_INET, buf, a) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, a) != 1)
        return false;
    static const unsigned char mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
    if (memcmp(a, mapped, 12) == 0) {
        memmove(a, a + 12, 4);
        *family = AF_INET;
    } else {
        *family = AF_INET6;
    }
    return true;
}

static int parse_net(const char *s, struct net *out, char *why, size_t n)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (!parse_ip(s, alen, &out->family, out->a)) {
        snprintf(why, n, "'%s' is not an IP address or network (e.g. "
                 "10.0.0.0/8, 127.0.0.1, ::1)", s);
        return GW_EINVAL;
    }
    unsigned max = out->family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned long v = 0;
        if (!*p || strlen(p) > 3)
            goto bad_len;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p))
                goto bad_len;
            v = v * 10 + (unsigned long)(*p - '0');
        }
        if (v > max)
            goto bad_len;
        out->bits = (unsigned)v;
    }
    return 0;
bad_len:
    snprintf(why, n, "'%s': the prefix length must be 0-%u", s, max);
    return GW_EINVAL;
}

int gw_cidr_check(const char *s, char *why, size_t n)
{
    struct net x;
    return parse_net(s, &x, why, n);
}

int gw_proxy_set(char *const *cidrs, size_t n)
{
    free(trusted);
    trusted = NULL;
    n_trusted = 0;
    if (n == 0)
        return 0;
    trusted = calloc(n, sizeof *trusted);
    if (!trusted)
        return GW_ENOMEM;
    char why[256];
    for (size_t i = 0; i < n; i++)
        if (parse_net(cidrs[i], &trusted[n_trusted], why, sizeof why) == 0)
            n_trusted++;
    return 0;
}

static bool in_net(const struct net *nw, int family, const unsigned char a[16])
{
    if (nw->family != family)
        return false;
    unsigned full = nw->bits / 8, rest = nw->bits % 8;
    if (memcmp(nw->a, a, full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (nw->a[full] & mask) == (a[full] & mask);
}

static bool trusted_ip(int family, const unsigned char a[16])
{
    for (size_t i = 0; i < n_trusted; i++)
        if (in_net(&trusted[i], family, a))
            return true;
    return false;
}

bool gw_proxy_trusted(const char *addr)
{
    int family;
    unsigned char a[16];
    return n_trusted && parse_ip(addr, strlen(addr), &family, a) &&
           trusted_ip(family, a);
}

static void fmt_ip(int family, const unsigned char a[16], char *out, size_t cap)
{
    if (!inet_ntop(family, a, out, (socklen_t)cap))
        snprintf(out, cap, "-");
}

/* One X-Forwarded-For entry: trimmed; "[v6]" or "[v6]:port" or
 * "v4:port" as some proxies write them, reduced to the address. */
static bool entry_ip(const char *s, size_t len, int *family, unsigned char a[16])
{
    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (len && *s == '[') {
        const char *rb = memchr(s, ']', len);
        return rb && parse_ip(s + 1, (size_t)(rb - s - 1), family, a);
    }
    const char *colon = memchr(s, ':', len);
    if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1))
        len = (size_t)(colon - s); /* v4:port */
    return parse_ip(s, len, family, a);
}

void gw_proxy_client(const char *peer, const char *const *xff, size_t n_xff,
                     char *out, size_t out_cap)
{
    int family;
    unsigned char a[16];
    if (!parse_ip(peer, strlen(peer), &family, a)) {
        snprintf(out, out_cap, "%s", peer);
        return;
    }
    fmt_ip(family, a, out, out_cap);
    if (!trusted_ip(family, a))
        return;
    /* From the right: the header values in reverse order, each list's
     * entries in reverse order. out holds the hop seen last. */
    size_t looked = 0;
    for (size_t h = n_xff; h-- > 0;) {
        const char *v = xff[h];
        size_t end = strlen(v);
        while (looked < MAX_XFF_ENTRIES) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            looked++;
            if (!entry_ip(v + start, end - start, &family, a))
                return; /* unparseable: the trusted hop is the client */
            fmt_ip(family, a, out, out_cap);
            if (!trusted_ip(family, a))
                return;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
}

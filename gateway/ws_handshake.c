/*
 * ws_handshake.c - ws:// URL parsing, the client opening handshake request
 * and an incremental parser for the server's 101 response (RFC 6455 4.1);
 * the server side: checking a browser's upgrade request and the 101
 * answer (RFC 6455 4.2).
 *
 * The response parser sits on Debian's libhttp-parser (2.9). It returns 2
 * from on_headers_complete, which makes http_parser_execute stop exactly
 * after the blank line (the "upgrade" exit), so bytes that follow in the
 * same read stay with the caller as frame data.
 */
#include "ws_handshake.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_HS_DEFAULT_MAX_HEADER (16 * 1024)
#define SNIP_MAX 64 /* peer text quoted in error messages */

/* ------------------------------------------------------------- helpers */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim SP/HTAB on both sides of [*s, *s + *n). */
static void trim_ows(const char **s, size_t *n)
{
    while (*n && is_ows(**s))
        (*s)++, (*n)--;
    while (*n && is_ows((*s)[*n - 1]))
        (*n)--;
}

/*
 * Walk a comma-separated list: returns the next element (OWS-trimmed,
 * possibly empty) in *el / *el_len and advances *p, which becomes NULL
 * after the last element; false once exhausted.
 */
static bool list_next(const char **p, const char *end, const char **el,
                      size_t *el_len)
{
    if (*p == NULL)
        return false;
    const char *comma = memchr(*p, ',', (size_t)(end - *p));
    const char *stop = comma ? comma : end;
    *el = *p;
    *el_len = (size_t)(stop - *p);
    trim_ows(el, el_len);
    *p = comma ? comma + 1 : NULL;
    return true;
}

/* NULL or only SP/HTAB: "no list" (so "" offers no subprotocol). */
static bool list_is_blank(const char *s)
{
    return !s || s[strspn(s, " \t")] == 0;
}

static bool list_has(const char *list, size_t len, const char *tok,
                     size_t tok_len, bool icase)
{
    const char *p = list, *end = list + len, *el;
    size_t n;
    while (list_next(&p, end, &el, &n))
        if (n == tok_len && (icase ? strncasecmp(el, tok, n) == 0
                                   : memcmp(el, tok, n) == 0))
            return true;
    return false;
}

/* Copy untrusted peer text into out for an error message: printable
 * ASCII only, truncated with "...", so logs cannot be forged. */
static void snip(char out[SNIP_MAX + 4], const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < SNIP_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n > SNIP_MAX)
        memcpy(out + k, "...", 3), k += 3;
    out[k] = 0;
}

static char *strndup_or_null(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* ------------------------------------------------------------------- URL */

/* Host name: letters, digits, '-', '_', '.', no empty labels (a single
 * trailing dot is allowed). All-numeric names must be dotted-quad IPv4,
 * so "ws://2130706433/" cannot sneak past as 127.0.0.1. */
static int check_reg_name(const char *h, size_t n, struct gw_error *err)
{
    bool numeric = true;
    if (n > 254)
        return gw_error_set(err, GW_EINVAL, "host name too long (%zu bytes)",
                            n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.')
            return gw_error_set(err, GW_EINVAL,
                                "invalid character '%c' in host name", c);
        if (c == '.' && (i == 0 || (h[i - 1] == '.')))
            return gw_error_set(err, GW_EINVAL,
                                "empty label in host name '%.*s'", (int)n, h);
        if (!isdigit(c) && c != '.')
            numeric = false;
    }
    if (numeric) {
        char tmp[16];
        struct in_addr a;
        if (n >= sizeof tmp || (memcpy(tmp, h, n), tmp[n] = 0,
                                inet_pton(AF_INET, tmp, &a) != 1))
            return gw_error_set(err, GW_EINVAL, "invalid IPv4 address '%.*s'",
                                (int)n, h);
    }
    return 0;
}

static int check_ipv6(const char *h, size_t n, struct gw_error *err)
{
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (n == 0)
        return gw_error_set(err, GW_EINVAL, "empty host");
    if (n >= sizeof tmp || (memcpy(tmp, h, n), tmp[n] = 0,
                            inet_pton(AF_INET6, tmp, &a) != 1))
        return gw_error_set(err, GW_EINVAL,
                            "invalid IPv6 address '[%.*s]' (zone ids are not "
                            "supported)",
                            (int)(n > 64 ? 64 : n), h);
    return 0;
}

/* Port: 1-5 digits, 1..65535. */
static int parse_port(const char *p, size_t n, uint16_t *port,
                      struct gw_error *err)
{
    unsigned v = 0;
    if (n == 0)
        return gw_error_set(err, GW_EINVAL, "empty port after ':'");
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9' || i >= 5)
            return gw_error_set(err, GW_EINVAL, "invalid port '%.*s'",
                                (int)(n > 16 ? 16 : n), p);
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return gw_error_set(err, GW_EINVAL,
                            "port %u out of range (1-65535)", v);
    *port = (uint16_t)v;
    return 0;
}

/* Whole-string checks first, so later messages can quote the input. */
static int url_check_chars(const char *s, struct gw_error *err)
{
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return gw_error_set(err, GW_EINVAL,
                                "URL contains a space or control character "
                                "at offset %zu",
                                i);
        if (c >= 0x80)
            return gw_error_set(err, GW_EINVAL,
                                "URL contains a non-ASCII byte at offset %zu "
                                "(percent-encode it)",
                                i);
        if (c == '#')
            return gw_error_set(err, GW_EINVAL,
                                "URL fragments ('#...') are not allowed in "
                                "WebSocket URLs");
    }
    return 0;
}

static int url_scheme(const char *s, bool *tls, const char **rest,
                      struct gw_error *err)
{
    const char *sep = strstr(s, "://");
    if (!sep)
        return gw_error_set(err, GW_EINVAL,
                            "'%.64s' is not a ws:// or wss:// URL", s);
    size_t n = (size_t)(sep - s);
    if (n == 2 && strncasecmp(s, "ws", 2) == 0)
        *tls = false;
    else if (n == 3 && strncasecmp(s, "wss", 3) == 0)
        *tls = true;
    else
        return gw_error_set(err, GW_EINVAL,
                            "unsupported scheme '%.*s' (use ws:// or wss://)",
                            (int)(n > 32 ? 32 : n), s);
    *rest = sep + 3;
    return 0;
}

/* Split "host[:port]" / "[v6][:port]" of length n. */
static int url_authority(const char *a, size_t n, const char **host,
                         size_t *host_len, bool *v6, const char **port,
                         size_t *port_len, struct gw_error *err)
{
    const char *end = a + n;
    *port = NULL;
    *port_len = 0;
    if (memchr(a, '@', n))
        return gw_error_set(err, GW_EINVAL,
                            "userinfo ('user@') is not allowed in WebSocket "
                            "URLs; send credentials in a header");
    *v6 = n && a[0] == '[';
    if (*v6) {
        const char *rb = memchr(a, ']', n);
        if (!rb)
            return gw_error_set(err, GW_EINVAL, "missing ']' after IPv6 "
                                                "address");
        *host = a + 1;
        *host_len = (size_t)(rb - a - 1);
        if (rb + 1 < end && rb[1] != ':')
            return gw_error_set(err, GW_EINVAL,
                                "unexpected characters after ']'");
        if (rb + 1 < end) {
            *port = rb + 2;
            *port_len = (size_t)(end - *port);
            if (*port_len == 0)
                return gw_error_set(err, GW_EINVAL, "empty port after ':'");
        }
        return check_ipv6(*host, *host_len, err);
    }
    const char *colon = memchr(a, ':', n);
    if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
        return gw_error_set(err, GW_EINVAL,
                            "IPv6 addresses must be in brackets "
                            "(ws://[::1]:port/)");
    *host = a;
    *host_len = colon ? (size_t)(colon - a) : n;
    if (colon) {
        *port = colon + 1;
        *port_len = (size_t)(end - *port);
        if (*port_len == 0)
            return gw_error_set(err, GW_EINVAL, "empty port after ':'");
    }
    if (*host_len == 0)
        return gw_error_set(err, GW_EINVAL, "empty host");
    return check_reg_name(*host, *host_len, err);
}

static int url_fill(struct ws_url *url, const char *host, size_t host_len,
                    bool v6, const char *path)
{
    bool dflt = url->port == (url->tls ? 443 : 80);
    size_t hh = host_len + 2 + 1 + 5 + 1;
    url->host = strndup_or_null(host, host_len);
    url->resource = *path == '?' ? malloc(strlen(path) + 2)
                                 : strdup(*path ? path : "/");
    url->host_header = malloc(hh);
    if (!url->host || !url->resource || !url->host_header)
        return GW_ENOMEM;
    if (*path == '?')
        sprintf(url->resource, "/%s", path);
    snprintf(url->host_header, hh, "%s%.*s%s", v6 ? "[" : "", (int)host_len,
             host, v6 ? "]" : "");
    if (!dflt)
        snprintf(url->host_header + strlen(url->host_header),
                 hh - strlen(url->host_header), ":%u", (unsigned)url->port);
    return 0;
}

int ws_url_parse(const char *s, struct ws_url *url, struct gw_error *err)
{
    const char *rest = NULL, *host = NULL, *port = NULL;
    size_t host_len = 0, port_len = 0;
    bool v6 = false;
    int rc;

    if (!url)
        return gw_error_set(err, GW_EINVAL, "no URL struct");
    memset(url, 0, sizeof *url);
    if (!s || !*s)
        return gw_error_set(err, GW_EINVAL, "empty URL");
    if ((rc = url_check_chars(s, err)) < 0 ||
        (rc = url_scheme(s, &url->tls, &rest, err)) < 0)
        return rc;
    size_t alen = strcspn(rest, "/?");
    if ((rc = url_authority(rest, alen, &host, &host_len, &v6, &port,
                            &port_len, err)) < 0)
        return rc;
    url->port = url->tls ? 443 : 80;
    if (port && (rc = parse_port(port, port_len, &url->port, err)) < 0)
        return rc;
    if (url_fill(url, host, host_len, v6, rest + alen) < 0) {
        ws_url_clear(url);
        return gw_error_set(err, GW_ENOMEM, "out of memory");
    }
    return 0;
}

void ws_url_clear(struct ws_url *url)
{
    if (!url)
        return;
    free(url->host);
    free(url->resource);
    free(url->host_header);
    memset(url, 0, sizeof *url);
}

/* ------------------------------------------------------------- request */

int ws_handshake_key_new(char out[25])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        out[0] = 0;
        return GW_EIO;
    }
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw); /* 24 + NUL */
    return 0;
}

void ws_handshake_accept(const char *key, char out[29])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && key && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
              EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) == 1 &&
              EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20;
    EVP_MD_CTX_free(ctx);
    if (ok)
        EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 + NUL */
    else
        out[0] = 0; /* never equals a header value: see resp checks */
}

/* Names whose value the handshake itself decides. */
static bool header_is_owned(const char *name)
{
    static const char *const owned[] = { "Host", "Upgrade", "Connection",
                                         "Content-Length",
                                         "Transfer-Encoding" };
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (strcasecmp(name, owned[i]) == 0)
            return true;
    return strncasecmp(name, "Sec-WebSocket-", 14) == 0;
}

/* field-value: no CTLs except HTAB (so no CR, LF; NUL ends the string). */
static bool header_value_ok(const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool is_base64(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '+' && *s != '/' &&
            *s != '=')
            return false;
    return true;
}

static int check_request_args(const struct ws_url *url, const char *key,
                              const char *protocols,
                              const struct ws_header *headers, size_t n,
                              struct gw_error *err)
{
    if (!url || !url->resource || !url->host_header || !*url->host_header ||
        url->resource[0] != '/' || !header_value_ok(url->host_header) ||
        strpbrk(url->resource, " \t") || !header_value_ok(url->resource))
        return gw_error_set(err, GW_EINVAL, "invalid or unparsed URL");
    if (!key || !is_base64(key))
        return gw_error_set(err, GW_EINVAL, "invalid Sec-WebSocket-Key");
    if (!list_is_blank(protocols)) {
        const char *p = protocols, *end = p + strlen(p), *el;
        size_t len;
        while (list_next(&p, end, &el, &len))
            if (!is_token(el, len))
                return gw_error_set(err, GW_EINVAL,
                                    "invalid subprotocol list '%.64s'",
                                    protocols);
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = headers[i].name, *value = headers[i].value;
        if (!name || !is_token(name, strlen(name)))
            return gw_error_set(err, GW_EINVAL,
                                "extra header #%zu: name is not an HTTP token",
                                i + 1);
        if (header_is_owned(name))
            return gw_error_set(err, GW_EINVAL,
                                "extra header '%.64s' is set by the WebSocket "
                                "handshake itself",
                                name);
        if (!value || !header_value_ok(value))
            return gw_error_set(err, GW_EINVAL,
                                "extra header '%.64s': value contains CR, LF "
                                "or another control character",
                                name);
    }
    return 0;
}

/* Offered subprotocols, normalised to "a, b"; nothing for "" / NULL. */
static int append_protocols(struct gw_buf *out, const char *protocols)
{
    const char *p = protocols, *end, *el;
    size_t len;
    int rc = 0;
    bool first = true;
    if (list_is_blank(p))
        return 0;
    end = p + strlen(p);
    while (rc == 0 && list_next(&p, end, &el, &len)) {
        if (len == 0)
            continue;
        rc = gw_buf_appendf(out, "%s%.*s",
                            first ? "Sec-WebSocket-Protocol: " : ", ",
                            (int)len, el);
        first = false;
    }
    if (rc == 0 && !first)
        rc = gw_buf_append(out, "\r\n", 2);
    return rc;
}

int ws_handshake_build_request(struct gw_buf *out, const struct ws_url *url,
                               const char *key, const char *protocols,
                               const struct ws_header *headers, size_t n,
                               struct gw_error *err)
{
    int rc = check_request_args(url, key, protocols, headers, n, err);
    if (rc < 0)
        return rc;
    size_t old_len = out->len;
    rc = gw_buf_appendf(out,
                        "GET %s HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n",
                        url->resource, url->host_header, key);
    if (rc == 0)
        rc = append_protocols(out, protocols);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = gw_buf_appendf(out, "%s: %s\r\n", headers[i].name,
                            headers[i].value);
    if (rc == 0)
        rc = gw_buf_append(out, "\r\n", 2);
    if (rc < 0) { /* all or nothing: drop the partial request */
        out->len = old_len;
        if (out->data)
            out->data[old_len] = 0;
        return gw_error_set(err, rc, "upgrade request: %s", gw_strerror(rc));
    }
    return 0;
}

/* ------------------------------------------------------------ response */

enum hs_state { HS_PARSING, HS_DONE, HS_FAILED };

/* The response headers we look at; everything else is skipped. */
enum hs_hdr { H_OTHER, H_UPGRADE, H_CONNECTION, H_ACCEPT, H_EXTENSIONS,
              H_PROTOCOL };

#define NAME_MAX_KEPT 32 /* longer than any name in enum hs_hdr */

struct ws_handshake_resp {
    http_parser hp;
    enum hs_state state;
    enum ws_hs_fail fail;
    int rc;                 /* feed result once finished */
    int status;
    bool status_done;       /* status line complete and checked */
    size_t max;             /* header byte cap */
    size_t seen;            /* bytes handed to http_parser so far */
    const char *feed_end;   /* end of the bytes being executed */
    char expect[29];        /* Sec-WebSocket-Accept we want */
    char *offered;          /* new: offered subprotocols, or NULL */
    bool nomem;

    char reason[SNIP_MAX + 4]; /* status reason phrase, sanitised */

    /* Header being accumulated (callbacks can split anywhere). */
    bool in_header, in_value;
    char name[NAME_MAX_KEPT + 1];
    size_t name_len;          /* may exceed NAME_MAX_KEPT: then H_OTHER */
    enum hs_hdr cur;
    struct gw_buf value;      /* only for headers we look at */

    /* What the headers said. */
    bool upgrade_ok, connection_ok, accept_ok;
    unsigned n_accept, n_protocol;
    bool upgrade_seen;
    char *protocol;           /* new: server's Sec-WebSocket-Protocol */
    char upgrade_snip[SNIP_MAX + 4], accept_snip[SNIP_MAX + 4],
        ext_snip[SNIP_MAX + 4];
    bool ext_seen;

    char errmsg[GW_ERROR_MSG_MAX];
};

static int resp_fail(struct ws_handshake_resp *r, enum ws_hs_fail f,
                     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Record the first failure only; later ones are consequences. */
static int resp_fail(struct ws_handshake_resp *r, enum ws_hs_fail f,
                     const char *fmt, ...)
{
    if (r->fail == WS_HS_OK) {
        va_list ap;
        r->fail = f;
        va_start(ap, fmt);
        vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
        va_end(ap);
    }
    return 1; /* non-zero from a callback stops http_parser */
}

static enum hs_hdr classify(const char *name)
{
    if (strcasecmp(name, "Upgrade") == 0)
        return H_UPGRADE;
    if (strcasecmp(name, "Connection") == 0)
        return H_CONNECTION;
    if (strcasecmp(name, "Sec-WebSocket-Accept") == 0)
        return H_ACCEPT;
    if (strcasecmp(name, "Sec-WebSocket-Extensions") == 0)
        return H_EXTENSIONS;
    if (strcasecmp(name, "Sec-WebSocket-Protocol") == 0)
        return H_PROTOCOL;
    return H_OTHER;
}

/* A complete header (name + value) arrived. */
static void header_done(struct ws_handshake_resp *r)
{
    const char *v = r->value.data ? (const char *)r->value.data : "";
    size_t n = r->value.len;
    trim_ows(&v, &n);
    switch (r->cur) {
    case H_UPGRADE:
        /* Several Upgrade lines are one list (RFC 9110 5.3). */
        r->upgrade_seen = true;
        r->upgrade_ok |= list_has(v, n, "websocket", 9, true);
        snip(r->upgrade_snip, v, n);
        break;
    case H_CONNECTION:
        r->connection_ok |= list_has(v, n, "upgrade", 7, true);
        break;
    case H_ACCEPT:
        r->n_accept++;
        r->accept_ok = r->expect[0] && n == strlen(r->expect) &&
                       memcmp(v, r->expect, n) == 0;
        snip(r->accept_snip, v, n);
        break;
    case H_EXTENSIONS:
        if (!r->ext_seen)
            snip(r->ext_snip, v, n);
        r->ext_seen = true;
        break;
    case H_PROTOCOL:
        if (r->n_protocol++ == 0) {
            r->protocol = strndup_or_null(v, n);
            r->nomem |= r->protocol == NULL;
        }
        break;
    case H_OTHER:
        break;
    }
    r->in_header = r->in_value = false;
    r->name_len = 0;
    gw_buf_reset(&r->value);
}

static int version_ok(const http_parser *hp)
{
    return hp->http_major == 1 && hp->http_minor >= 1;
}

/*
 * The status line is complete (first header or end of headers): a non-101
 * answer fails here, before the rest of the response matters.
 */
static int check_status_line(struct ws_handshake_resp *r)
{
    r->status_done = true;
    r->status = (int)r->hp.status_code;
    if (r->status != 101)
        return resp_fail(r, WS_HS_STATUS, "upgrade refused: HTTP %d%s%s",
                         r->status, r->reason[0] ? " " : "", r->reason);
    if (!version_ok(&r->hp))
        return resp_fail(r, WS_HS_MALFORMED,
                         "101 response with HTTP/%u.%u (HTTP/1.1 required)",
                         r->hp.http_major, r->hp.http_minor);
    return 0;
}

static struct ws_handshake_resp *resp_of(http_parser *hp)
{
    return hp->data;
}

static int on_status_cb(http_parser *hp, const char *at, size_t len)
{
    struct ws_handshake_resp *r = resp_of(hp);
    /* Called once per feed the reason spans; keep the first SNIP_MAX. */
    char tmp[SNIP_MAX + 4];
    size_t have = strlen(r->reason);
    if (have < SNIP_MAX) {
        snip(tmp, at, len > SNIP_MAX - have ? SNIP_MAX - have : len);
        memcpy(r->reason + have, tmp, strlen(tmp) + 1);
    }
    r->status = (int)hp->status_code;
    /* Data that stops short of the feed's end stopped at CR/LF: the
     * status line is complete, so judge it now, whatever follows. */
    if (at + len < r->feed_end && !r->status_done)
        return check_status_line(r);
    return 0;
}

static int on_header_field_cb(http_parser *hp, const char *at, size_t len)
{
    struct ws_handshake_resp *r = resp_of(hp);
    if (!r->status_done && check_status_line(r))
        return 1;
    if (r->in_value) /* a new name ends the previous header */
        header_done(r);
    if (r->name_len < NAME_MAX_KEPT) {
        size_t k = NAME_MAX_KEPT - r->name_len;
        memcpy(r->name + r->name_len, at, len < k ? len : k);
        r->name[r->name_len + (len < k ? len : k)] = 0;
    }
    r->name_len += len;
    r->in_header = true;
    return 0;
}

static int on_header_value_cb(http_parser *hp, const char *at, size_t len)
{
    struct ws_handshake_resp *r = resp_of(hp);
    if (!r->in_value) { /* the name is complete now */
        r->in_value = true;
        r->cur = r->name_len <= NAME_MAX_KEPT ? classify(r->name) : H_OTHER;
    }
    /* A folded continuation arrives starting with its SP/HTAB, so plain
     * concatenation gives the single-space join RFC 9110 asks for. */
    if (r->cur != H_OTHER && len && gw_buf_append(&r->value, at, len) < 0) {
        r->nomem = true;
        return 1;
    }
    return 0;
}

/* Validate the collected headers; first failure wins. */
static void check_headers(struct ws_handshake_resp *r)
{
    if (!r->upgrade_ok) {
        if (r->upgrade_seen)
            resp_fail(r, WS_HS_NO_UPGRADE,
                      "upgrade response has 'Upgrade: %s', not websocket",
                      r->upgrade_snip);
        else
            resp_fail(r, WS_HS_NO_UPGRADE,
                      "upgrade response lacks 'Upgrade: websocket'");
    } else if (!r->connection_ok) {
        resp_fail(r, WS_HS_NO_CONNECTION,
                  "upgrade response lacks 'Connection: Upgrade'");
    } else if (r->n_accept == 0) {
        resp_fail(r, WS_HS_BAD_ACCEPT,
                  "upgrade response lacks Sec-WebSocket-Accept");
    } else if (r->n_accept > 1) {
        resp_fail(r, WS_HS_BAD_ACCEPT,
                  "Sec-WebSocket-Accept sent %u times", r->n_accept);
    } else if (!r->accept_ok) {
        resp_fail(r, WS_HS_BAD_ACCEPT,
                  "Sec-WebSocket-Accept mismatch: got '%s', expected '%s'",
                  r->accept_snip, r->expect);
    } else if (r->ext_seen) {
        resp_fail(r, WS_HS_EXTENSION,
                  "server selected extension '%s' but none was offered",
                  r->ext_snip);
    } else if (r->n_protocol) {
        char s[SNIP_MAX + 4];
        const char *p = r->protocol ? r->protocol : "";
        size_t n = strlen(p);
        snip(s, p, n);
        if (r->n_protocol > 1 || memchr(p, ',', n))
            resp_fail(r, WS_HS_PROTOCOL,
                      "server selected several subprotocols");
        else if (!r->offered)
            resp_fail(r, WS_HS_PROTOCOL,
                      "server selected subprotocol '%s' but none was offered",
                      s);
        else if (n == 0 ||
                 !list_has(r->offered, strlen(r->offered), p, n, false))
            resp_fail(r, WS_HS_PROTOCOL,
                      "server selected subprotocol '%s' that was not offered",
                      s);
    }
}

static int on_headers_complete_cb(http_parser *hp)
{
    struct ws_handshake_resp *r = resp_of(hp);
    if (!r->status_done && check_status_line(r)) /* no headers at all */
        return 2;
    if (r->in_header)
        header_done(r);
    if (!r->nomem)
        check_headers(r);
    r->state = HS_DONE;
    /* 2 = "upgrade, no body": http_parser returns right after the LF. */
    return 2;
}

static const http_parser_settings resp_settings = {
    .on_status = on_status_cb,
    .on_header_field = on_header_field_cb,
    .on_header_value = on_header_value_cb,
    .on_headers_complete = on_headers_complete_cb,
};

struct ws_handshake_resp *ws_handshake_resp_new(const char *key,
                                                const char *protocols,
                                                size_t max_header_bytes)
{
    if (!key)
        return NULL;
    struct ws_handshake_resp *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    http_parser_init(&r->hp, HTTP_RESPONSE);
    r->hp.data = r;
    r->max = max_header_bytes ? max_header_bytes : WS_HS_DEFAULT_MAX_HEADER;
    ws_handshake_accept(key, r->expect);
    if (!list_is_blank(protocols))
        r->offered = strdup(protocols);
    if (!r->expect[0] || (!list_is_blank(protocols) && !r->offered)) {
        ws_handshake_resp_free(r);
        return NULL;
    }
    return r;
}

void ws_handshake_resp_free(struct ws_handshake_resp *r)
{
    if (!r)
        return;
    gw_buf_free(&r->value);
    free(r->offered);
    free(r->protocol);
    free(r);
}

static int resp_finish(struct ws_handshake_resp *r, int rc)
{
    r->state = rc == 0 ? HS_DONE : HS_FAILED;
    r->rc = rc;
    return rc;
}

/* Map what http_parser_execute left behind to a feed result. */
static int resp_after_execute(struct ws_handshake_resp *r, const char *data,
                              size_t fed, size_t used)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&r->hp);
    if (r->nomem) {
        resp_fail(r, WS_HS_MALFORMED, "out of memory");
        return resp_finish(r, GW_ENOMEM);
    }
    if (r->fail != WS_HS_OK) /* a check failed (possibly inside a cb) */
        return resp_finish(r, GW_EPROTO);
    /* Debian builds http_parser without HTTP_PARSER_STRICT, so "\r<any>"
     * would end the headers and eat a frame byte: insist on the LF. */
    if (r->state == HS_DONE && (used == 0 || data[used - 1] != '\n')) {
        resp_fail(r, WS_HS_MALFORMED, "malformed upgrade response: blank "
                                      "line after headers is not CRLF");
        return resp_finish(r, GW_EPROTO);
    }
    if (r->state == HS_DONE)
        return resp_finish(r, 0);
    if (e == HPE_HEADER_OVERFLOW || (e == HPE_OK && r->seen >= r->max)) {
        resp_fail(r, WS_HS_TOO_LARGE,
                  "upgrade response headers exceed %zu bytes", r->max);
        return resp_finish(r, GW_ETOOBIG);
    }
    if (e != HPE_OK || used != fed) {
        resp_fail(r, WS_HS_MALFORMED, "malformed upgrade response: %s",
                  e != HPE_OK ? http_errno_description(e)
                              : "unexpected end of message");
        return resp_finish(r, GW_EPROTO);
    }
    return GW_EAGAIN;
}

int ws_handshake_resp_feed(struct ws_handshake_resp *r, const char *data,
                           size_t len, size_t *consumed)
{
    *consumed = 0;
    if (r->state != HS_PARSING)
        return r->rc;
    if (len == 0) /* http_parser would take 0 bytes as end of stream */
        return GW_EAGAIN;
    /* Never show http_parser more than the cap allows, so the limit holds
     * across feeds and nothing past it is even looked at. */
    size_t room = r->max - r->seen;
    size_t fed = len < room ? len : room;
    r->feed_end = data + fed;
    size_t used = http_parser_execute(&r->hp, &resp_settings, data, fed);
    if (used > fed)
        used = fed;
    r->seen += used;
    *consumed = used;
    return resp_after_execute(r, data, fed, used);
}

enum ws_hs_fail ws_handshake_resp_fail(const struct ws_handshake_resp *r)
{
    return r->fail;
}

int ws_handshake_resp_status(const struct ws_handshake_resp *r)
{
    return r->status;
}

const char *ws_handshake_resp_protocol(const struct ws_handshake_resp *r)
{
    return r->state == HS_DONE && r->fail == WS_HS_OK && r->protocol
               ? r->protocol
               : NULL;
}

const char *ws_handshake_resp_error(const struct ws_handshake_resp *r)
{
    return r->errmsg;
}

/* ------------------------------------------- server side (from browsers) */

static int up_verdict(struct ws_upgrade *up, enum ws_upgrade_result r)
{
    static const struct {
        int status;
        const char *reason, *body, *name, *value;
    } t[] = {
        [WS_UP_OK] = {101, "Switching Protocols", "", NULL, NULL},
        [WS_UP_METHOD] = {405, "Method Not Allowed", "", "Allow", "GET"},
        [WS_UP_NO_UPGRADE] = {400, "Bad Request",
                              "Can \"Upgrade\" only to \"WebSocket\".", NULL,
                              NULL},
        [WS_UP_NO_CONNECTION] = {400, "Bad Request",
                                 "\"Connection\" must be \"Upgrade\".", NULL,
                                 NULL},
        [WS_UP_VERSION] = {426, "Upgrade Required",
                           "Unsupported \"Sec-WebSocket-Version\": only 13.",
                           "Sec-WebSocket-Version", "13"},
        [WS_UP_BAD_KEY] = {400, "Bad Request",
                           "Missing or invalid \"Sec-WebSocket-Key\".", NULL,
                           NULL},
    };
    up->result = r;
    up->status = t[r].status;
    up->reason = t[r].reason;
    up->body = t[r].body;
    up->extra_name = t[r].name;
    up->extra_value = t[r].value;
    return r == WS_UP_OK ? 0 : GW_EPROTO;
}

static bool value_has(const char *v, const char *tok)
{
    return v && list_has(v, strlen(v), tok, strlen(tok), true);
}

/* The base64 of exactly 16 bytes: 22 characters, then "==". The last
 * character must leave the 4 unused bits zero (A, Q, g or w). */
static bool key_valid(const char *k)
{
    if (!k || strlen(k) != 24 || strcmp(k + 22, "==") != 0)
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '+' && k[i] != '/')
            return false;
    return strchr("AQgw", k[21]) != NULL;
}

int ws_handshake_check_request(const char *method, ws_header_get_fn get,
                               void *arg, struct ws_upgrade *up)
{
    memset(up, 0, sizeof *up);
    if (!method || strcmp(method, "GET") != 0)
        return up_verdict(up, WS_UP_METHOD);
    if (!value_has(get(arg, "Upgrade"), "websocket"))
        return up_verdict(up, WS_UP_NO_UPGRADE);
    if (!value_has(get(arg, "Connection"), "upgrade"))
        return up_verdict(up, WS_UP_NO_CONNECTION);
    const char *v = get(arg, "Sec-WebSocket-Version");
    size_t vn = v ? strlen(v) : 0;
    if (v)
        trim_ows(&v, &vn);
    if (!v || vn != 2 || memcmp(v, "13", 2) != 0)
        return up_verdict(up, WS_UP_VERSION);
    const char *k = get(arg, "Sec-WebSocket-Key");
    size_t kn = k ? strlen(k) : 0;
    if (k)
        trim_ows(&k, &kn);
    char key[25];
    if (!k || kn != 24)
        return up_verdict(up, WS_UP_BAD_KEY);
    memcpy(key, k, 24);
    key[24] = 0;
    if (!key_valid(key))
        return up_verdict(up, WS_UP_BAD_KEY);
    memcpy(up->key, key, sizeof key);
    up->protocols = get(arg, "Sec-WebSocket-Protocol");
    return up_verdict(up, WS_UP_OK);
}

const char *ws_header_list_get(void *list, const char *name)
{
    const struct ws_header_list *l = list;
    for (size_t i = 0; i < l->n; i++)
        if (l->h[i].name && strcasecmp(l->h[i].name, name) == 0)
            return l->h[i].value;
    return NULL;
}

int ws_handshake_select_protocol(const char *offered, const char *acceptable,
                                 char *out, size_t out_size)
{
    if (out_size)
        out[0] = 0;
    if (list_is_blank(offered) || list_is_blank(acceptable))
        return 0;
    const char *p = acceptable, *end = acceptable + strlen(acceptable), *el;
    size_t n;
    while (list_next(&p, end, &el, &n)) {
        if (!is_token(el, n) ||
            !list_has(offered, strlen(offered), el, n, false))
            continue;
        if (n >= out_size)
            return GW_ETOOBIG;
        memcpy(out, el, n);
        out[n] = 0;
        return 1;
    }
    return 0;
}

int ws_handshake_build_response(struct gw_buf *out, const char *key,
                                const char *protocol)
{
    if (!key || !is_base64(key) ||
        (protocol && !is_token(protocol, strlen(protocol))))
        return GW_EINVAL;
    char accept[29];
    ws_handshake_accept(key, accept);
    if (!accept[0])
        return GW_ENOMEM;
    size_t old = out->len;
    int rc = gw_buf_appendf(out,
                            "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n",
                            accept);
    if (rc == 0 && protocol)
        rc = gw_buf_appendf(out, "Sec-WebSocket-Protocol: %s\r\n", protocol);
    if (rc == 0)
        rc = gw_buf_append(out, "\r\n", 2);
    if (rc < 0) {
        out->len = old;
        if (out->data)
            out->data[old] = 0;
    }
    return rc;
}


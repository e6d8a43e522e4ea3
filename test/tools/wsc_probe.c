/*
 * wsc_probe.c - drive one ws_client from the command line; used by the
 * integration and conformance suites (test/integration/lib.mjs parses the
 * output). One line per event on stdout, flushed:
 *
 *   open protocol=<name or ->
 *   message text|binary <len> <hex>
 *   close code=<n> fail=<name> status=<n> opened=<0|1> reason=<hex> detail=<text>
 *   read_end                   (--read-ends)
 *   pause / resume             (--pause-at)
 *
 * Exit status: 0 once on_close came (whatever the code), 3 when
 * --quit-after expired first, 2 on bad usage or setup failure.
 */
#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "gw_log.h"
#include "ws_client.h"

struct out_msg {
    bool binary;
    uint8_t *data;
    size_t len;
};

struct probe {
    struct event_base *base;
    struct ws_client *client;
    struct out_msg *sends;
    size_t n_sends;
    bool echo;
    bool read_ends;      /* print "read_end" after each read's messages */
    unsigned long pause_at;   /* pause reading after this message (0 = never) */
    unsigned long pause_ms;   /* ... and resume after this long */
    struct event *resume;
    long close_code;     /* -1 = no --close */
    unsigned long expect;
    unsigned long received;
    bool close_started;
    bool closed;
    bool opened;
};

static void read_end_cb(struct ws_client *c, void *arg)
{
    (void)c; (void)arg;
    printf("read_end\n");
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct probe *p = arg;
    printf("resume\n");
    fflush(stdout);
    ws_client_pause_reading(p->client, false);
}

static void usage(FILE *f)
{
    fputs("usage: wsc_probe [options] ws[s]://host[:port]/path\n"
          "  --ca FILE            CA file for wss (default system store)\n"
          "  --no-verify          do not verify the server certificate\n"
          "  --protocol LIST      subprotocols to offer\n"
          "  --header 'N: V'      extra request header (repeatable)\n"
          "  --max-message N      bytes (default 1048576)\n"
          "  --timeout MS         connect timeout (default 5000)\n"
          "  --ping MS            ping interval, also the pong timeout (0 = off)\n"
          "  --send TEXT          text message to send once open (repeatable)\n"
          "  --send-binary-hex H  binary message to send once open (repeatable)\n"
          "  --echo               send every received message back\n"
          "  --close CODE         then close with CODE, reason \"bye\"\n"
          "  --expect N           messages to receive before --close\n"
          "  --quit-after MS      give up (exit 3) after MS (default 15000)\n"
          "  --read-ends          print read_end when a read's messages are in\n"
          "  --pause-at N         pause reading after the Nth message\n"
          "  --pause-ms MS        resume reading MS later (default 300)\n",
          f);
}

static void print_hex(const uint8_t *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    char buf[4096];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        buf[k++] = hx[p[i] >> 4];
        buf[k++] = hx[p[i] & 15];
        if (k == sizeof buf) {
            fwrite(buf, 1, k, stdout);
            k = 0;
        }
    }
    fwrite(buf, 1, k, stdout);
}

static int hex_decode(const char *s, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2)
        return -1;
    uint8_t *b = malloc(n / 2 + 1);
    if (!b)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = isxdigit((unsigned char)s[2 * i]), lo = isxdigit((unsigned char)s[2 * i + 1]);
        if (!hi || !lo) {
            free(b);
            return -1;
        }
        char pair[3] = { s[2 * i], s[2 * i + 1], 0 };
        b[i] = (uint8_t)strtoul(pair, NULL, 16);
    }
    *out = b;
    *len = n / 2;
    return 0;
}

static bool parse_ulong(const char *s, unsigned long max, unsigned long *v)
{
    char *end;
    if (!s || !*s || *s == '-')
        return false;
    unsigned long x = strtoul(s, &end, 10);
    if (*end || x > max)
        return false;
    *v = x;
    return true;
}

static void maybe_close(struct probe *p)
{
    if (p->close_code < 0 || p->close_started || p->closed || !p->opened)
        return;
    if (p->received < p->expect)
        return;
    p->close_started = true;
    int rc = ws_client_close(p->client, (uint16_t)p->close_code, "bye");
    if (rc < 0)
        fprintf(stderr, "wsc_probe: close(%ld) refused: %s\n", p->close_code,
                gw_strerror(rc));
}

static void open_cb(struct ws_client *c, void *arg)
{
    struct probe *p = arg;
    const char *proto = ws_client_protocol(c);
    p->opened = true;
    printf("open protocol=%s\n", proto ? proto : "-");
    fflush(stdout);
    for (size_t i = 0; i < p->n_sends; i++) {
        int rc = ws_client_send(c, p->sends[i].binary, p->sends[i].data,
                                p->sends[i].len);
        if (rc < 0)
            fprintf(stderr, "wsc_probe: send %zu failed: %s\n", i,
                    gw_strerror(rc));
    }
    maybe_close(p);
}

static void message_cb(struct ws_client *c, bool binary, const uint8_t *data,
                       size_t len, void *arg)
{
    struct probe *p = arg;
    printf("message %s %zu ", binary ? "binary" : "text", len);
    print_hex(data, len);
    putchar('\n');
    fflush(stdout);
    p->received++;
    if (p->pause_at && p->received == p->pause_at) {
        struct timeval tv = { (time_t)(p->pause_ms / 1000),
                              (suseconds_t)(p->pause_ms % 1000) * 1000 };
        ws_client_pause_reading(c, true);
        printf("pause\n");
        fflush(stdout);
        if (evtimer_add(p->resume, &tv) < 0)
            fprintf(stderr, "wsc_probe: cannot arm the resume timer\n");
    }
    if (p->echo) {
        int rc = ws_client_send(c, binary, data, len);
        if (rc < 0)
            fprintf(stderr, "wsc_probe: echo failed: %s\n", gw_strerror(rc));
    }
    maybe_close(p);
}

static void close_cb(struct ws_client *c, const struct ws_close_info *ci,
                     void *arg)
{
    (void)c;
    struct probe *p = arg;
    printf("close code=%u fail=%s status=%d opened=%d reason=", ci->code,
           ws_client_fail_name(ci->fail), ci->http_status, ci->opened ? 1 : 0);
    print_hex((const uint8_t *)ci->reason, ci->reason_len);
    printf(" detail=%s\n", ci->detail ? ci->detail : "");
    fflush(stdout);
    p->closed = true;
    event_base_loopbreak(p->base);
}

static void quit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct probe *p = arg;
    fprintf(stderr, "wsc_probe: --quit-after expired before a close\n");
    event_base_loopbreak(p->base);
}

static bool add_send(struct probe *p, bool binary, const char *arg)
{
    struct out_msg *n = realloc(p->sends, (p->n_sends + 1) * sizeof *n);
    if (!n)
        return false;
    p->sends = n;
    struct out_msg *m = &p->sends[p->n_sends];
    m->binary = binary;
    if (binary) {
        if (hex_decode(arg, &m->data, &m->len) < 0)
            return false;
    } else {
        m->len = strlen(arg);
        m->data = (uint8_t *)strdup(arg);
        if (!m->data)
            return false;
    }
    p->n_sends++;
    return true;
}

/* "Name: value" -> header (both strings new). */
static bool add_header(struct ws_header **hs, size_t *n, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg)
        return false;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    struct ws_header *nh = realloc(*hs, (*n + 1) * sizeof *nh);
    if (!nh)
        return false;
    *hs = nh;
    nh[*n].name = strndup(arg, (size_t)(colon - arg));
    nh[*n].value = strdup(v);
    if (!nh[*n].name || !nh[*n].value) {
        free((char *)nh[*n].name);
        free((char *)nh[*n].value);
        return false;
    }
    (*n)++;
    return true;
}

enum {
    OPT_CA = 256, OPT_NO_VERIFY, OPT_PROTOCOL, OPT_HEADER, OPT_MAX_MESSAGE,
    OPT_TIMEOUT, OPT_PING, OPT_SEND, OPT_SEND_HEX, OPT_ECHO, OPT_CLOSE,
    OPT_EXPECT, OPT_QUIT_AFTER, OPT_READ_ENDS, OPT_PAUSE_AT, OPT_PAUSE_MS,
    OPT_HELP,
};

static const struct option long_opts[] = {
    { "ca", required_argument, NULL, OPT_CA },
    { "no-verify", no_argument, NULL, OPT_NO_VERIFY },
    { "protocol", required_argument, NULL, OPT_PROTOCOL },
    { "header", required_argument, NULL, OPT_HEADER },
    { "max-message", required_argument, NULL, OPT_MAX_MESSAGE },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "ping", required_argument, NULL, OPT_PING },
    { "send", required_argument, NULL, OPT_SEND },
    { "send-binary-hex", required_argument, NULL, OPT_SEND_HEX },
    { "echo", no_argument, NULL, OPT_ECHO },
    { "close", required_argument, NULL, OPT_CLOSE },
    { "expect", required_argument, NULL, OPT_EXPECT },
    { "quit-after", required_argument, NULL, OPT_QUIT_AFTER },
    { "read-ends", no_argument, NULL, OPT_READ_ENDS },
    { "pause-at", required_argument, NULL, OPT_PAUSE_AT },
    { "pause-ms", required_argument, NULL, OPT_PAUSE_MS },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

struct args {
    const char *ca;
    bool verify;
    const char *protocols;
    struct ws_header *headers;
    size_t n_headers;
    unsigned long max_message, timeout, ping, quit_after;
};

/* 0 ok, 1 bad usage, 2 help shown. */
static int parse_args(int argc, char **argv, struct args *a, struct probe *p)
{
    int o;
    unsigned long v;
    while ((o = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        bool ok = true;
        switch (o) {
        case OPT_CA: a->ca = optarg; break;
        case OPT_NO_VERIFY: a->verify = false; break;
        case OPT_PROTOCOL: a->protocols = optarg; break;
        case OPT_HEADER: ok = add_header(&a->headers, &a->n_headers, optarg); break;
        case OPT_MAX_MESSAGE: ok = parse_ulong(optarg, ULONG_MAX, &a->max_message); break;
        case OPT_TIMEOUT: ok = parse_ulong(optarg, UINT32_MAX, &a->timeout); break;
        case OPT_PING: ok = parse_ulong(optarg, UINT32_MAX, &a->ping); break;
        case OPT_SEND: ok = add_send(p, false, optarg); break;
        case OPT_SEND_HEX: ok = add_send(p, true, optarg); break;
        case OPT_ECHO: p->echo = true; break;
        case OPT_CLOSE:
            ok = parse_ulong(optarg, 65535, &v);
            p->close_code = (long)v;
            break;
        case OPT_EXPECT: ok = parse_ulong(optarg, ULONG_MAX, &p->expect); break;
        case OPT_QUIT_AFTER: ok = parse_ulong(optarg, UINT32_MAX, &a->quit_after); break;
        case OPT_READ_ENDS: p->read_ends = true; break;
        case OPT_PAUSE_AT: ok = parse_ulong(optarg, ULONG_MAX, &p->pause_at); break;
        case OPT_PAUSE_MS: ok = parse_ulong(optarg, UINT32_MAX, &p->pause_ms); break;
        case OPT_HELP: usage(stdout); return 2;
        default: return 1;
        }
        if (!ok) {
            fprintf(stderr, "wsc_probe: bad value for --%s: '%s'\n",
                    long_opts[o - OPT_CA].name, optarg);
            return 1;
        }
    }
    return optind == argc - 1 ? 0 : 1;
}

static int run(struct probe *p, struct args *a, const char *url)
{
    int status = 2;
    struct gw_error err = { 0 };
    struct evdns_base *dns = NULL;
    SSL_CTX *ssl = NULL;
    struct event *quit = NULL;

    p->base = event_base_new();
    if (!p->base)
        return 2;
    p->resume = evtimer_new(p->base, resume_cb, p);
    if (!p->resume)
        goto out;
    dns = evdns_base_new(p->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                      EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!dns) { /* no resolv.conf: still resolve names from /etc/hosts */
        dns = evdns_base_new(p->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (dns)
            evdns_base_load_hosts(dns, NULL);
    }
    if (strncasecmp(url, "wss:", 4) == 0) {
        ssl = ws_client_ssl_ctx_new(a->ca, a->verify, NULL, NULL, &err);
        if (!ssl) {
            fprintf(stderr, "wsc_probe: %s\n", err.msg);
            goto out;
        }
    }
    struct ws_client_options opt = {
        .url = url,
        .protocols = a->protocols,
        .headers = a->headers,
        .n_headers = a->n_headers,
        .max_message = a->max_message,
        .connect_timeout_ms = (uint32_t)a->timeout,
        .ping_interval_ms = (uint32_t)a->ping,
        .pong_timeout_ms = (uint32_t)a->ping,
        .ssl_ctx = ssl,
    };
    static const struct ws_client_callbacks cb = {
        .on_open = open_cb, .on_message = message_cb, .on_close = close_cb,
    };
    static const struct ws_client_callbacks cb_ends = {
        .on_open = open_cb, .on_message = message_cb, .on_close = close_cb,
        .on_read_end = read_end_cb,
    };
    p->client = ws_client_new(p->base, dns, &opt, p->read_ends ? &cb_ends : &cb,
                              p, &err);
    if (!p->client) {
        fprintf(stderr, "wsc_probe: %s\n", err.msg);
        goto out;
    }
    int rc = ws_client_connect(p->client);
    if (rc < 0) {
        fprintf(stderr, "wsc_probe: connect: %s\n", gw_strerror(rc));
        goto out;
    }
    struct timeval tv = { (time_t)(a->quit_after / 1000),
                          (suseconds_t)(a->quit_after % 1000) * 1000 };
    quit = evtimer_new(p->base, quit_cb, p);
    if (!quit || evtimer_add(quit, &tv) < 0)
        goto out;
    event_base_dispatch(p->base);
    status = p->closed ? 0 : 3;
out:
    if (quit)
        event_free(quit);
    if (p->resume)
        event_free(p->resume);
    ws_client_free(p->client); /* outside any callback: freed at once */
    p->client = NULL;
    /* Run what the frees left behind (DNS cancel callbacks, bufferevent
     * finalizers) before the base goes. */
    event_base_loop(p->base, EVLOOP_NONBLOCK);
    event_base_loop(p->base, EVLOOP_NONBLOCK);
    if (dns)
        evdns_base_free(dns, 0);
    SSL_CTX_free(ssl);
    event_base_free(p->base);
    return status;
}

int main(int argc, char **argv)
{
    struct probe p = { .close_code = -1, .pause_ms = 300 };
    struct args a = { .verify = true, .max_message = 1048576, .timeout = 5000,
                      .quit_after = 15000 };
    int status = parse_args(argc, argv, &a, &p);
    if (status == 1)
        usage(stderr);
    if (status) {
        status = status == 2 ? 0 : 2;
    } else {
        signal(SIGPIPE, SIG_IGN);
        gw_log_level = GW_LOG_WARN;
        status = run(&p, &a, argv[optind]);
    }
    for (size_t i = 0; i < a.n_headers; i++) {
        free((char *)a.headers[i].name);
        free((char *)a.headers[i].value);
    }
    free(a.headers);
    for (size_t i = 0; i < p.n_sends; i++)
        free(p.sends[i].data);
    free(p.sends);
    libevent_global_shutdown();
    return status;
}

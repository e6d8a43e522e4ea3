/*
 * main.c - the command line: options, loading the configuration, and the
 * mode to run (the gateway itself lives in gw_server.c).
 *
 *   pollgate -c FILE                 run the gateway
 *   pollgate -t -c FILE              check the configuration and exit
 *   pollgate --check-upstream -c FILE  handshake with every upstream
 *   pollgate --config-doc=FORMAT     print the configuration reference
 */
#include <getopt.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "check_upstream.h"
#include "gw_config.h"
#include "gw_log.h"
#include "gw_server.h"
#include "ws_client.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

static void usage(FILE *f)
{
    fprintf(f,
        "usage: pollgate [-t | --check-upstream] -c FILE\n"
        "       pollgate --config-doc=ini|markdown|man\n"
        "  -c, --config FILE     configuration file (INI)\n"
        "  -t, --test            check the configuration and exit\n"
        "      --check-upstream  open a WebSocket to every route's upstream,\n"
        "                        close it cleanly, report, exit 0 if all ok\n"
        "      --config-doc=FORMAT  print the configuration reference, made\n"
        "                        from the parser's tables: ini (a commented\n"
        "                        sample file), markdown or man (pollgate.ini(5))\n"
        "  -V, --version         print the version\n"
        "  -h, --help            this help\n");
}

static int config_doc(const char *format)
{
    enum gw_config_doc_format fmt;
    if (gw_config_doc_format_parse(format, &fmt) < 0) {
        fprintf(stderr, "pollgate: --config-doc: unknown format '%s' "
                "(ini, markdown or man)\n", format);
        return 2;
    }
    return gw_config_doc(stdout, fmt) < 0 ? 1 : 0;
}

static void print_diag(const struct gw_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "%s\n", d->msgs[i]);
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK_UPSTREAM = 256, OPT_CONFIG_DOC };
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "test", no_argument, NULL, 't' },
        { "check-upstream", no_argument, NULL, OPT_CHECK_UPSTREAM },
        { "config-doc", required_argument, NULL, OPT_CONFIG_DOC },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
#ifdef __GLIBC__
    /* No fastbins: glibc empties them (malloc_consolidate, a walk of every
     * bin) before each allocation of 1 KiB or more, and libevent's smallest
     * evbuffer chain is 1 KiB; with evhttp's small per-header strings
     * freed into fastbins, every request paid that walk several times
     * (about 3% of pollgate's CPU in the long-poll benchmark). Small
     * blocks still recycle through glibc's per-thread cache. */
    mallopt(M_MXFAST, 0);
#endif
    const char *file = NULL;
    bool test_only = false, check_up = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': file = optarg; break;
        case 't': test_only = true; break;
        case OPT_CHECK_UPSTREAM: check_up = true; break;
        case OPT_CONFIG_DOC: return config_doc(optarg);
        case 'V': printf("pollgate %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!file || optind != argc) {
        usage(stderr);
        return 2;
    }

    struct gw_diag diag = {0};
    struct gw_config *cfg = gw_config_load(file, &diag);
    if (!cfg) {
        print_diag(&diag);
        gw_diag_free(&diag);
        if (test_only)
            fprintf(stderr, "configuration FAILED\n");
        return 1;
    }
    gw_diag_free(&diag);
    if (test_only) {
        printf("configuration OK\n");
        gw_config_free(cfg);
        return 0;
    }
    gw_log_level = cfg->log_level;
    signal(SIGPIPE, SIG_IGN);

    int rc;
    if (check_up) {
        struct gw_error err = {0};
        struct event_base *base = event_base_new();
        struct evdns_base *dns = base ? gw_dns_new(base, cfg) : NULL;
        SSL_CTX *ctx = ws_client_ssl_ctx_new(cfg->tls_ca_file, cfg->tls_verify,
                                             cfg->tls_cert_file,
                                             cfg->tls_key_file, &err);
        if (!base || !ctx) {
            fprintf(stderr, "pollgate: %s\n",
                    err.msg[0] ? err.msg : "cannot initialise");
            rc = 1;
        } else {
            if (!cfg->tls_verify)
                log_warn("tls_verify = off: upstream certificates are NOT checked");
            rc = check_upstream_run(base, dns, cfg, ctx, stdout) ? 1 : 0;
        }
        SSL_CTX_free(ctx);
        if (dns)
            evdns_base_free(dns, 0);
        if (base)
            event_base_free(base);
    } else {
        rc = gw_server_run(cfg);
    }
    gw_config_free(cfg);
    return rc;
}

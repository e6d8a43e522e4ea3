/* gw_server.c - event loop, listener, signals and orderly stop. */
#include "gw_server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "check_upstream.h"
#include "gw_log.h"
#include "gw_notify.h"
#include "http_front.h"
#include "session.h"
#include "ws_client.h"

struct gw_server {
    const struct gw_config *cfg;
    struct event_base *base;
    struct evdns_base *dns;
    struct http_front *front;
    struct session_table *sessions;
    SSL_CTX *ssl_ctx;
    struct event *sigint, *sigterm;
    bool stopping;
};

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct gw_server *s = arg;
    if (s->stopping) {
        log_info("signal %d again: stopping now", (int)sig);
        event_base_loopbreak(s->base);
        return;
    }
    s->stopping = true;
    log_info("signal %d: stopping (closing upstreams with 1001)", (int)sig);
    gw_notify("STOPPING=1\nSTATUS=stopping");
    /* Stop taking requests, complete held ones, close every upstream
     * cleanly, and give the close handshakes a moment. */
    http_front_stop_accepting(s->front);
    size_t closing = session_table_shutdown(s->sessions);
    struct timeval tv = { closing ? 1 : 0, 200000 };
    event_base_loopexit(s->base, &tv);
}

/* Raise the soft descriptor limit to the hard one; log the capacity and
 * return how many sessions the descriptors allow (two each, plus room for
 * the listener, logs and a few browser connections in flight). */
static uint64_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise RLIMIT_NOFILE: %s", strerror(errno));
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    uint64_t cap = rl.rlim_cur > 100 ? (uint64_t)(rl.rlim_cur - 100) / 2 : 1;
    log_info("open files limit %llu: room for about %llu sessions "
             "(two descriptors each)", (unsigned long long)rl.rlim_cur,
             (unsigned long long)cap);
    return cap;
}

struct evdns_base *gw_dns_new(struct event_base *base,
                              const struct gw_config *cfg)
{
    if (!cfg->resolv_conf)
        return evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    struct evdns_base *dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!dns)
        return NULL;
    int rc = evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, cfg->resolv_conf);
    if (rc != 0) {
        log_error("resolv_conf %s: cannot use it (evdns error %d)",
                  cfg->resolv_conf, rc);
        evdns_base_free(dns, 0);
        return NULL;
    }
    evdns_base_load_hosts(dns, NULL);
    return dns;
}

int gw_server_run(const struct gw_config *cfg)
{
    struct gw_server s = { .cfg = cfg };
    struct gw_error err = {0};
    int rc = 1;

    uint64_t fd_cap = raise_nofile();
    s.base = event_base_new();
    if (!s.base)
        goto out;
    s.dns = gw_dns_new(s.base, cfg);
    if (!s.dns)
        log_warn("no DNS resolver: only numeric upstream hosts will work");
    s.ssl_ctx = ws_client_ssl_ctx_new(cfg->tls_ca_file, cfg->tls_verify,
                                      cfg->tls_cert_file, cfg->tls_key_file,
                                      &err);
    if (!s.ssl_ctx) {
        log_error("upstream TLS: %s", err.msg);
        goto out;
    }
    if (!cfg->tls_verify)
        log_warn("tls_verify = off: upstream certificates are NOT checked");

    s.sessions = session_table_new(s.base, s.dns, cfg, s.ssl_ctx);
    if (!s.sessions)
        goto out;
    session_table_set_fd_capacity(s.sessions, fd_cap);
    if (fd_cap < cfg->max_sessions)
        log_warn("max_sessions = %llu but descriptors allow about %llu: "
                 "sessions past that get 503", (unsigned long long)cfg->max_sessions,
                 (unsigned long long)fd_cap);
    s.front = http_front_new(s.base, cfg, s.sessions, cfg->static_root);
    if (!s.front)
        goto out;
    s.sigint = evsignal_new(s.base, SIGINT, signal_cb, &s);
    s.sigterm = evsignal_new(s.base, SIGTERM, signal_cb, &s);
    if (!s.sigint || !s.sigterm || event_add(s.sigint, NULL) != 0 ||
        event_add(s.sigterm, NULL) != 0) {
        log_error("cannot install signal handlers");
        goto out;
    }

    /* Startup check: log whether each route's upstream answers (a failure
     * is not fatal: the upstream may come up later). */
    check_upstream_run(s.base, s.dns, cfg, s.ssl_ctx, NULL);

    log_info("pollgate listening on %s%s%s:%u", strchr(cfg->listen_host, ':') ? "[" : "",
             cfg->listen_host, strchr(cfg->listen_host, ':') ? "]" : "",
             cfg->listen_port);
    /* systemd Type=notify: started once we accept connections. */
    if (gw_notify("READY=1\nSTATUS=listening") < 0)
        log_warn("NOTIFY_SOCKET is set but the service manager could not be told we are ready");
    event_base_dispatch(s.base);
    log_info("stopped");
    rc = 0;
out:
    if (s.sigint)
        event_free(s.sigint);
    if (s.sigterm)
        event_free(s.sigterm);
    http_front_free(s.front);
    session_table_free(s.sessions);
    /* let deferred frees (upstream clients) run */
    if (s.base)
        event_base_loop(s.base, EVLOOP_NONBLOCK);
    if (s.dns)
        evdns_base_free(s.dns, 0);
    SSL_CTX_free(s.ssl_ctx);
    if (s.base)
        event_base_free(s.base);
    return rc;
}

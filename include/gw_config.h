/*
 * gw_config.h - the INI file (conf/pollgate.ini) -> typed struct, through a
 * declarative table of directives (section, key, type, offset, default,
 * range, help) parsed generically, as nginx does; the same tables generate
 * the documentation (gw_config_doc).
 * Pure: no sockets; the only I/O is reading the file (and checking that
 * TLS files named in it are readable and match, and that user and group
 * exist).
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "gw_common.h"
#include "gw_log.h"

#include <stdio.h>

enum gw_overflow { GW_OVERFLOW_PAUSE = 0, GW_OVERFLOW_DROP_OLDEST, GW_OVERFLOW_CLOSE };
/* What a SockJS session does with a binary upstream message (SockJS
 * carries text only). */
enum gw_sockjs_binary { GW_SOCKJS_BINARY_CLOSE = 0, GW_SOCKJS_BINARY_BASE64,
                        GW_SOCKJS_BINARY_DROP };

/* One listening address: host (numeric) and port. */
struct gw_listen {
    char *host;
    uint16_t port;
};

struct gw_route {
    char *name;             /* from "[route NAME]" */
    int line;               /* line of the section header */
    char *path;             /* "/chat": starts with '/', no trailing '/' (unless "/") */
    char *upstream;         /* ws:// or wss:// URL, validated with ws_url_parse */
    char **origins;         /* allowed origins (exact "scheme://host[:port]") */
    size_t n_origins;
    bool origins_any;       /* origins = * */
    char **forward_headers; /* header names to copy to the upstream */
    size_t n_forward_headers;
    bool forward_origin;    /* forward the browser's Origin header */
    char *protocols;        /* subprotocols offered by default, or NULL */
    bool websocket;         /* browsers may use WebSocket (P/ws, SockJS) */

    /* SockJS dialect (sockjs = on) */
    bool sockjs;
    char *sockjs_path;      /* base URL of the SockJS endpoints; NULL = path + "/sockjs" */
    char *sockjs_url;       /* sockjs-client script loaded by the iframe page */
    uint64_t response_limit;      /* bytes per streaming response */
    uint64_t disconnect_delay_ms; /* session kept this long without a receiving request */
    bool cookie_needed;     /* JSESSIONID cookie for sticky load balancers */
    bool sockjs_jsonp;      /* script transports: jsonp, jsonp_send, htmlfile */
    enum gw_sockjs_binary sockjs_binary;
};

struct gw_config {
    char *file;             /* path the config was read from */
    /* Reference count (gw_config_ref/gw_config_unref): not part of the
     * value, so it changes through const pointers too. A SIGHUP reload
     * makes a new config current while sessions, requests in progress and
     * health probes keep the one they started with until they end. */
    unsigned long refs;
    /* Which load this is: 0 from the loader; the server numbers the
     * configs it runs 1, 2, ... (a reload drains the sessions of a removed
     * route opened under earlier generations). */
    uint64_t generation;

    /* [gateway] */
    struct gw_listen *listen;     /* plain HTTP listeners */
    size_t n_listen;
    struct gw_listen *tls_listen; /* HTTPS listeners */
    size_t n_tls_listen;
    char *front_tls_cert_file;    /* [gateway] tls_cert_file: toward browsers */
    char *front_tls_key_file;     /* [gateway] tls_key_file */
    /* The first listener (plain, else TLS), borrowed from listen[] /
     * tls_listen[]; NULL/0 when there is none. */
    const char *listen_host;
    uint16_t listen_port;
    char **trusted_proxies;       /* CIDR networks allowed to set X-Forwarded-For */
    size_t n_trusted_proxies;
    char *user;                   /* run as this user after binding, or NULL */
    char *group;                  /* and this group, or NULL (user's own) */
    uint64_t drain_timeout_ms;    /* SIGTERM: existing sessions go on this long */
    enum gw_log_level log_level;
    char *error_log;        /* "stderr" or a path (SIGUSR1 reopens it) */
    char *access_log;       /* "off", "stderr" or a path */
    uint64_t access_log_buffer; /* bytes waiting to be written, at most */
    uint64_t max_body;      /* bytes */
    uint64_t request_timeout_ms; /* read a request / idle keep-alive / stalled write */
    uint64_t header_timeout_ms;  /* a request line and headers */
    uint64_t min_body_rate;      /* bytes per second; 0 = off */
    uint64_t lingering_time_ms;  /* discard input after an early refusal; 0 = off */
    uint64_t lingering_timeout_ms; /* ... waiting at most this long for more */
    uint64_t lingering_bytes;    /* ... and at most this many bytes */
    bool front_io;               /* own edge-triggered socket I/O (front_io.h) */
    uint64_t listen_backlog;     /* accept queue of every listening socket */
    uint64_t max_connections;    /* browser connections; 0 = derived */
    uint64_t max_connections_per_client; /* per peer address; 0 = unlimited */
    char *static_root;      /* directory served at "/" (demo page), or NULL;
                               relative paths are relative to the config file */
    char *instance;         /* native session id prefix ("a1" -> "a1.<id>"), or NULL */

    /* [admin] */
    char *admin_listen_host; /* NULL = no admin listener */
    uint16_t admin_listen_port;
    uint64_t health_interval_ms;
    uint64_t sessions_list_max; /* most sessions GET /sessions lists */

    /* [session] (durations in ms) */
    uint64_t poll_timeout_ms;
    uint64_t heartbeat_ms;
    uint64_t idle_timeout_ms;
    uint64_t max_lifetime_ms;   /* 0 = unlimited */
    uint64_t buffer_bytes;
    uint64_t buffer_messages;
    enum gw_overflow overflow;
    uint64_t send_buffer_bytes;
    uint64_t max_batch;
    uint64_t max_sessions;
    uint64_t max_sessions_per_client;
    uint64_t max_buffered_bytes;

    /* [upstream] */
    uint64_t connect_timeout_ms;
    uint64_t ping_interval_ms;  /* 0 = disabled */
    uint64_t max_message;
    char *tls_ca_file;          /* NULL or "" = system store */
    bool tls_verify;
    char *tls_cert_file;        /* [upstream] optional client certificate (PEM) */
    char *tls_key_file;
    char *resolv_conf;          /* resolv.conf-style file for evdns, or NULL
                                   for the system's /etc/resolv.conf */

    struct gw_route *routes;
    size_t n_routes;
};

/* Collected errors: "FILE:LINE: [section] key: message", one per entry. */
struct gw_diag {
    char **msgs;
    size_t n;
};
void gw_diag_free(struct gw_diag *d);

/*
 * Load and validate a config file. Returns a new config (free with
 * gw_config_free) or NULL with every problem found appended to diag
 * (diag may be NULL). Unknown sections/keys, bad values, out-of-range
 * values, duplicate keys, duplicate route paths, missing required route
 * keys, no routes, wss:// with an unreadable CA file: all errors.
 */
struct gw_config *gw_config_load(const char *path, struct gw_diag *diag);

/* Same from a string (name is used in messages in place of the path). */
struct gw_config *gw_config_parse_string(const char *text, const char *name,
                                         struct gw_diag *diag);

/* Another reference to cfg (returned; NULL stays NULL). Every loaded
 * config starts with one reference, its loader's. */
struct gw_config *gw_config_ref(const struct gw_config *cfg);
/* Drop a reference; the last one frees the config. NULL ok. */
void gw_config_unref(const struct gw_config *cfg);
/* The same as gw_config_unref (the loader's reference). */
void gw_config_free(struct gw_config *cfg);

/*
 * A reload: the keys read once at start (listeners, user and group,
 * instance, the upstream TLS context and resolver: those documented as
 * needing a restart) keep their running values. Every such key whose value
 * differs between next (the file just read) and running is swapped (next
 * then holds the running value, running the file's), with one note
 * "FILE: [section] key changed: it needs a restart; the running value
 * stays" in notes (may be NULL). Returns how many keys differed.
 */
size_t gw_config_keep_restart_keys(struct gw_config *next,
                                   struct gw_config *running,
                                   struct gw_diag *notes);
/* Same name and every key equal. */
bool gw_route_equal(const struct gw_route *a, const struct gw_route *b);
/* The route called name in cfg, or NULL. */
const struct gw_route *gw_config_route(const struct gw_config *cfg,
                                       const char *name);

/* Documentation generated from the same tables the parser uses: every
 * section and key with its help, type, range and default. */
enum gw_config_doc_format {
    GW_CONFIG_DOC_INI = 0,  /* the commented sample file, conf/pollgate.ini */
    GW_CONFIG_DOC_MARKDOWN, /* the README's configuration reference */
    GW_CONFIG_DOC_MAN,      /* pollgate.ini(5), roff: doc/pollgate.ini.5 */
};

/* "ini", "markdown" or "man" -> *fmt. Returns 0 or GW_EINVAL. */
int gw_config_doc_format_parse(const char *name, enum gw_config_doc_format *fmt);

/* Write the documentation to out (borrowed). Returns 0, GW_EINVAL (unknown
 * format) or GW_EIO (write error). */
int gw_config_doc(FILE *out, enum gw_config_doc_format fmt);

#endif

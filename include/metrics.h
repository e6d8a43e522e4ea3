/*
 * metrics.h - the figures an operator scrapes: counters, gauges and one
 * histogram, kept as plain integers where the hot paths bump them, and
 * rendered on demand as Prometheus text (exposition format 0.0.4) or JSON.
 *
 * Pure: no sockets, no event loop. The session core and the HTTP front
 * hold a struct metrics_route * per session/route (looked up once, at
 * open) and increment fields directly: no lookup, lock or allocation per
 * message. Route entries are never removed, so counters never go down,
 * across a reload that drops and re-adds a route included.
 *
 * metrics_process_read() is the one function with I/O: it reads
 * /proc/self for the process_* figures.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_common.h"

enum metrics_dialect {
    METRICS_NATIVE = 0,
    METRICS_SOCKJS,
    METRICS_DIALECTS
};

enum metrics_dir {
    METRICS_TO_BROWSER = 0,
    METRICS_TO_UPSTREAM,
    METRICS_DIRS
};

/* Why a session ended (the reason label of sessions_closed_total). */
enum metrics_close_reason {
    METRICS_CLOSE_BROWSER = 0,  /* the browser closed it */
    METRICS_CLOSE_UPSTREAM,     /* the upstream closed it */
    METRICS_CLOSE_OPEN_FAILED,  /* the upstream could not be reached */
    METRICS_CLOSE_IDLE,         /* no browser activity for idle_timeout */
    METRICS_CLOSE_LIFETIME,     /* max_lifetime */
    METRICS_CLOSE_OVERFLOW,     /* overflow = close */
    METRICS_CLOSE_ADMIN,        /* DELETE /sessions/<id> */
    METRICS_CLOSE_SHUTDOWN,     /* drain or stop */
    METRICS_CLOSE_REASONS
};

/* Label value of each enum (static strings). */
const char *metrics_dialect_name(enum metrics_dialect d);
const char *metrics_dir_name(enum metrics_dir d);
const char *metrics_close_reason_name(enum metrics_close_reason r);

#define METRICS_ROUTE_NAME_MAX 64

struct metrics_route {
    char name[METRICS_ROUTE_NAME_MAX];
    uint64_t sessions_open[METRICS_DIALECTS];     /* gauge */
    uint64_t opened_total[METRICS_DIALECTS];
    uint64_t closed_total[METRICS_CLOSE_REASONS];
    uint64_t messages_total[METRICS_DIRS];
    uint64_t bytes_total[METRICS_DIRS];
    uint64_t evicted_total;
    /* From the health probe: -1 never probed, 0 down, 1 up. */
    int upstream_up;
};

/* Cumulative histogram with fixed upper bounds (ascending, +Inf implied). */
#define METRICS_HIST_MAX_BUCKETS 16
struct metrics_hist {
    double bounds[METRICS_HIST_MAX_BUCKETS];
    size_t n_bounds;
    uint64_t counts[METRICS_HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
    double sum;
    uint64_t count;
};

/* Record one observation v (in the histogram's unit). */
void metrics_hist_observe(struct metrics_hist *h, double v);

#define METRICS_HTTP_CODES 600 /* status codes 0..599 */

struct metrics {
    struct metrics_route **routes;   /* stable pointers, insertion order */
    size_t n_routes, cap_routes;
    uint64_t http_requests[METRICS_HTTP_CODES];
    struct metrics_hist upstream_connect_seconds;
    /* Gauges set by their owners. */
    uint64_t buffered_bytes;
    uint64_t upstream_paused;
    /* SIGHUP reloads of the configuration file: applied, rejected. */
    uint64_t config_reloads_ok, config_reloads_failed;
    /* Counter kept by its owner (access_log.c), copied in. */
    uint64_t access_log_dropped;
};

/* New, empty registry (the connect histogram has its standard buckets,
 * 1 ms to 10 s). NULL on ENOMEM. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/*
 * The entry of route `name`, created on first use. The pointer stays valid
 * for the life of m (entries are never removed). NULL on ENOMEM or a name
 * longer than METRICS_ROUTE_NAME_MAX - 1.
 */
struct metrics_route *metrics_route(struct metrics *m, const char *name);

/* Count one HTTP response with this status (out of range: counted as 0). */
void metrics_http_request(struct metrics *m, int status);

/* What /proc says of this process (every field 0 if unknown). */
struct metrics_process {
    double resident_memory_bytes;
    double virtual_memory_bytes;
    double open_fds;
    double max_fds;
    double cpu_seconds_total;
    double start_time_seconds;   /* since the Unix epoch */
};
/* Fill p from /proc/self. Returns 0 or GW_EIO (p then holds what could be
 * read). */
int metrics_process_read(struct metrics_process *p);

/*
 * Append the Prometheus text rendering (every family with HELP and TYPE,
 * label values escaped) to out. proc may be NULL (no process_* families).
 * version goes into pollgate_build_info. Returns 0 or a negative gw_err
 * (out is then truncated back to its length on entry).
 */
int metrics_render_prometheus(const struct metrics *m,
                              const struct metrics_process *proc,
                              const char *version, struct gw_buf *out);

/* The same figures as one JSON object. Same return rules. */
int metrics_render_json(const struct metrics *m,
                        const struct metrics_process *proc,
                        const char *version, struct gw_buf *out);

#endif

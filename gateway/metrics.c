/*
 * metrics.c - registry and renderings (see metrics.h).
 *
 * The Prometheus text is written with snprintf-based appends: it is built
 * once per scrape, so clarity wins over speed here. Label values are
 * escaped as the exposition format requires (backslash, double quote,
 * newline); route names come from the operator's configuration, but a
 * scrape must never be broken by one. The JSON rendering goes through
 * jansson for the same reason.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static const char *const dialect_names[METRICS_DIALECTS] = {
    "native", "sockjs",
};
static const char *const dir_names[METRICS_DIRS] = {
    "to_browser", "to_upstream",
};
static const char *const reason_names[METRICS_CLOSE_REASONS] = {
    "browser", "upstream", "open_failed", "idle",
    "lifetime", "overflow", "admin", "shutdown",
};

const char *metrics_dialect_name(enum metrics_dialect d)
{
    return (unsigned)d < METRICS_DIALECTS ? dialect_names[d] : "unknown";
}

const char *metrics_dir_name(enum metrics_dir d)
{
    return (unsigned)d < METRICS_DIRS ? dir_names[d] : "unknown";
}

const char *metrics_close_reason_name(enum metrics_close_reason r)
{
    return (unsigned)r < METRICS_CLOSE_REASONS ? reason_names[r] : "unknown";
}

/* ------------------------------------------------------------ registry */

/* Upstream connect time: 1 ms .. 10 s. */
static const double connect_bounds[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    struct metrics_hist *h = &m->upstream_connect_seconds;
    h->n_bounds = sizeof connect_bounds / sizeof connect_bounds[0];
    memcpy(h->bounds, connect_bounds, sizeof connect_bounds);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_routes; i++)
        free(m->routes[i]);
    free(m->routes);
    free(m);
}

struct metrics_route *metrics_route(struct metrics *m, const char *name)
{
    size_t len = strlen(name);
    if (len >= METRICS_ROUTE_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < m->n_routes; i++)
        if (strcmp(m->routes[i]->name, name) == 0)
            return m->routes[i];
    if (m->n_routes == m->cap_routes) {
        size_t cap = m->cap_routes ? m->cap_routes * 2 : 8;
        struct metrics_route **r = realloc(m->routes, cap * sizeof *r);
        if (!r)
            return NULL;
        m->routes = r;
        m->cap_routes = cap;
    }
    struct metrics_route *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    memcpy(r->name, name, len + 1);
    r->upstream_up = -1;
    m->routes[m->n_routes++] = r;
    return r;
}

void metrics_http_request(struct metrics *m, int status)
{
    if (status < 0 || status >= METRICS_HTTP_CODES)
        status = 0;
    m->http_requests[status]++;
}

void metrics_hist_observe(struct metrics_hist *h, double v)
{
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

/* ------------------------------------------------------------- process */

static double page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (double)p : 4096.0;
}

static int read_statm(struct metrics_process *p)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return GW_EIO;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2)
        return GW_EIO;
    p->virtual_memory_bytes = (double)size * page_size();
    p->resident_memory_bytes = (double)resident * page_size();
    return 0;
}

/* utime, stime and starttime from /proc/self/stat (fields 14, 15, 22),
 * after the ")" that ends the command name (which may hold spaces). */
static int read_stat(struct metrics_process *p)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return GW_EIO;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *s = strrchr(buf, ')');
    if (!s)
        return GW_EIO;
    unsigned long long ut = 0, st = 0, start = 0;
    /* After ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime cutime cstime priority nice threads
     * itrealvalue starttime(22). */
    if (sscanf(s + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
               " %*d %*d %*d %*d %*d %*d %llu", &ut, &st, &start) != 3)
        return GW_EIO;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    p->cpu_seconds_total = (double)(ut + st) / (double)hz;
    /* starttime is in ticks since boot: add the boot time. */
    FILE *u = fopen("/proc/stat", "r");
    if (!u)
        return GW_EIO;
    char line[256];
    unsigned long long btime = 0;
    while (fgets(line, sizeof line, u))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(u);
    p->start_time_seconds = (double)btime + (double)start / (double)hz;
    return 0;
}

static int read_fds(struct metrics_process *p)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return GW_EIO;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    /* The directory stream itself held one descriptor while we counted. */
    p->open_fds = n > 0 ? (double)(n - 1) : 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        p->max_fds = (double)rl.rlim_cur;
    return 0;
}

int metrics_process_read(struct metrics_process *p)
{
    memset(p, 0, sizeof *p);
    int rc = 0;
    if (read_statm(p) < 0)
        rc = GW_EIO;
    if (read_stat(p) < 0)
        rc = GW_EIO;
    if (read_fds(p) < 0)
        rc = GW_EIO;
    return rc;
}

/* ---------------------------------------------------- Prometheus text */

/* Label value escaping of the text format: \\, \" and \n. */
static int put_label_value(struct gw_buf *b, const char *v)
{
    int rc = 0;
    for (const char *s = v; *s && rc == 0; s++) {
        switch (*s) {
        case '\\': rc = gw_buf_append(b, "\\\\", 2); break;
        case '"': rc = gw_buf_append(b, "\\\"", 2); break;
        case '\n': rc = gw_buf_append(b, "\\n", 2); break;
        default: rc = gw_buf_append(b, s, 1); break;
        }
    }
    return rc;
}

static int family(struct gw_buf *b, const char *name, const char *type,
                  const char *help)
{
    return gw_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                          type);
}

/* One sample: name{k1="v1",k2="v2"} value. Labels as NULL-ended pairs. */
static int sample(struct gw_buf *b, const char *name, const char *const *lab,
                  double value)
{
    int rc = gw_buf_appendf(b, "%s", name);
    for (size_t i = 0; rc == 0 && lab && lab[i]; i += 2) {
        rc = gw_buf_appendf(b, "%c%s=\"", i ? ',' : '{', lab[i]);
        if (rc == 0)
            rc = put_label_value(b, lab[i + 1]);
        if (rc == 0)
            rc = gw_buf_append(b, "\"", 1);
    }
    if (rc == 0 && lab && lab[0])
        rc = gw_buf_append(b, "}", 1);
    if (rc == 0) {
        /* Integers print exactly; %.17g keeps the rest round-trippable. */
        if (value > -9e15 && value < 9e15 && value == (double)(long long)value)
            rc = gw_buf_appendf(b, " %.0f\n", value);
        else
            rc = gw_buf_appendf(b, " %.17g\n", value);
    }
    return rc;
}

static int render_route_families(const struct metrics *m, struct gw_buf *b)
{
    int rc = family(b, "pollgate_sessions_open", "gauge",
                    "Sessions open now, per route and dialect.");
    for (size_t i = 0; rc == 0 && i < m->n_routes; i++)
        for (int d = 0; rc == 0 && d < METRICS_DIALECTS; d++) {
            const char *lab[] = { "route", m->routes[i]->name, "dialect",
                                  dialect_names[d], NULL };
            rc = sample(b, "pollgate_sessions_open", lab,
                        (double)m->routes[i]->sessions_open[d]);
        }
    if (rc == 0)
        rc = family(b, "pollgate_sessions_opened_total", "counter",
                    "Sessions opened, per route and dialect.");
    for (size_t i = 0; rc == 0 && i < m->n_routes; i++)
        for (int d = 0; rc == 0 && d < METRICS_DIALECTS; d++) {
            const char *lab[] = { "route", m->routes[i]->name, "dialect",
                                  dialect_names[d], NULL };
            rc = sample(b, "pollgate_sessions_opened_total", lab,
                        (double)m->routes[i]->opened_total[d]);
        }
    if (rc == 0)
        rc = family(b, "pollgate_sessions_closed_total", "counter",
                    "Sessions ended, per route and reason.");
    for (size_t i = 0; rc == 0 && i < m->n_routes; i++)
        for (int r = 0; rc == 0 && r < METRICS_CLOSE_REASONS; r++) {
            const char *lab[] = { "route", m->routes[i]->name, "reason",
                                  reason_names[r], NULL };
            rc = sample(b, "pollgate_sessions_closed_total", lab,
                        (double)m->routes[i]->closed_total[r]);
        }
    return rc;
}

static int render_traffic_families(const struct metrics *m, struct gw_buf *b)
{
    int rc = family(b, "pollgate_messages_total", "counter",
                    "Messages relayed, per route and direction.");
    for (size_t i = 0; rc == 0 && i < m->n_routes; i++)
        for (int d = 0; rc == 0 && d < METRICS_DIRS; d++) {
            const char *lab[] = { "route", m->routes[i]->name, "direction",
                                  dir_names[d], NULL };
            rc = sample(b, "pollgate_messages_total", lab,
                        (double)m->routes[i]->messages_total[d]);
        }
    if (rc == 0)
        rc = family(b, "pollgate_bytes_total", "counter",
                    "Message payload bytes relayed, per route and direction.");
    for (size_t i = 0; rc == 0 && i < m->n_routes; i++)
        for (int d = 0; rc == 0 && d < METRICS_DIRS; d++) {
            const char *lab[] = { "route", m->routes[i]->name, "direction",
                                  dir_names[d], NULL };
            rc = sample(b, "pollgate_bytes_total", lab,
                        (double)m->routes[i]->bytes_total[d]);
        }
    if (rc == 0)
        rc = family(b, "pollgate_evicted_messages_total", "counter",
                    "Messages dropped before the browser got them (overflow = drop-oldest, binary = drop).");
    for (size_t i = 0; rc == 0 && i < m->n_routes; i++) {
        const char *lab[] = { "route", m->routes[i]->name, NULL };
        rc = sample(b, "pollgate_evicted_messages_total", lab,
                    (double)m->routes[i]->evicted_total);
    }
    if (rc == 0)
        rc = family(b, "pollgate_upstream_up", "gauge",
                    "1 if the route's upstream accepted the last health probe, 0 if not (absent before the first probe).");
    for (size_t i = 0; rc == 0 && i < m->n_routes; i++) {
        if (m->routes[i]->upstream_up < 0)
            continue;
        const char *lab[] = { "route", m->routes[i]->name, NULL };
        rc = sample(b, "pollgate_upstream_up", lab,
                    (double)m->routes[i]->upstream_up);
    }
    return rc;
}

static int render_hist(const struct metrics_hist *h, const char *name,
                       struct gw_buf *b)
{
    char bucket[128], le[32];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    uint64_t cum = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= h->n_bounds; i++) {
        cum += h->counts[i];
        if (i < h->n_bounds)
            snprintf(le, sizeof le, "%g", h->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        const char *lab[] = { "le", le, NULL };
        rc = sample(b, bucket, lab, (double)cum);
    }
    char n2[128];
    snprintf(n2, sizeof n2, "%s_sum", name);
    if (rc == 0)
        rc = sample(b, n2, NULL, h->sum);
    snprintf(n2, sizeof n2, "%s_count", name);
    if (rc == 0)
        rc = sample(b, n2, NULL, (double)h->count);
    return rc;
}

static int render_global_families(const struct metrics *m, const char *version,
                                  struct gw_buf *b)
{
    int rc = family(b, "pollgate_buffered_bytes", "gauge",
                    "Bytes queued toward browsers, all sessions together.");
    if (rc == 0)
        rc = sample(b, "pollgate_buffered_bytes", NULL, (double)m->buffered_bytes);
    if (rc == 0)
        rc = family(b, "pollgate_upstream_paused", "gauge",
                    "Sessions whose upstream reading is paused (back-pressure).");
    if (rc == 0)
        rc = sample(b, "pollgate_upstream_paused", NULL, (double)m->upstream_paused);
    if (rc == 0)
        rc = family(b, "pollgate_access_log_dropped_total", "counter",
                    "Access log lines dropped because the log did not keep up.");
    if (rc == 0)
        rc = sample(b, "pollgate_access_log_dropped_total", NULL,
                    (double)m->access_log_dropped);
    if (rc == 0)
        rc = family(b, "pollgate_upstream_connect_seconds", "histogram",
                    "Time from starting an upstream connection to its completed WebSocket handshake.");
    if (rc == 0)
        rc = render_hist(&m->upstream_connect_seconds,
                         "pollgate_upstream_connect_seconds", b);
    if (rc == 0)
        rc = family(b, "pollgate_http_requests_total", "counter",
                    "HTTP responses sent, per status code.");
    for (int c = 0; rc == 0 && c < METRICS_HTTP_CODES; c++) {
        if (!m->http_requests[c])
            continue;
        char code[12]; /* any int: no truncation warning */
        snprintf(code, sizeof code, "%d", c);
        const char *lab[] = { "code", code, NULL };
        rc = sample(b, "pollgate_http_requests_total", lab,
                    (double)m->http_requests[c]);
    }
    if (rc == 0)
        rc = family(b, "pollgate_config_reloads_total", "counter",
                    "SIGHUP reloads of the configuration file, applied (ok) or rejected (failed).");
    if (rc == 0) {
        const char *lab[] = { "result", "ok", NULL };
        rc = sample(b, "pollgate_config_reloads_total", lab,
                    (double)m->config_reloads_ok);
    }
    if (rc == 0) {
        const char *lab[] = { "result", "failed", NULL };
        rc = sample(b, "pollgate_config_reloads_total", lab,
                    (double)m->config_reloads_failed);
    }
    if (rc == 0)
        rc = family(b, "pollgate_build_info", "gauge",
                    "Always 1; the version label says which build runs.");
    if (rc == 0) {
        const char *lab[] = { "version", version ? version : "", NULL };
        rc = sample(b, "pollgate_build_info", lab, 1);
    }
    return rc;
}

static int render_process(const struct metrics_process *p, struct gw_buf *b)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } f[] = {
        { "process_cpu_seconds_total", "counter",
          "Total user and system CPU time spent in seconds.",
          offsetof(struct metrics_process, cpu_seconds_total) },
        { "process_resident_memory_bytes", "gauge",
          "Resident memory size in bytes.",
          offsetof(struct metrics_process, resident_memory_bytes) },
        { "process_virtual_memory_bytes", "gauge",
          "Virtual memory size in bytes.",
          offsetof(struct metrics_process, virtual_memory_bytes) },
        { "process_open_fds", "gauge", "Number of open file descriptors.",
          offsetof(struct metrics_process, open_fds) },
        { "process_max_fds", "gauge", "Maximum number of open file descriptors.",
          offsetof(struct metrics_process, max_fds) },
        { "process_start_time_seconds", "gauge",
          "Start time of the process since unix epoch in seconds.",
          offsetof(struct metrics_process, start_time_seconds) },
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof f / sizeof f[0]; i++) {
        double v = *(const double *)((const char *)p + f[i].off);
        rc = family(b, f[i].name, f[i].type, f[i].help);
        if (rc == 0)
            rc = sample(b, f[i].name, NULL, v);
    }
    return rc;
}

int metrics_render_prometheus(const struct metrics *m,
                              const struct metrics_process *proc,
                              const char *version, struct gw_buf *out)
{
    size_t len0 = out->len;
    int rc = render_route_families(m, out);
    if (rc == 0)
        rc = render_traffic_families(m, out);
    if (rc == 0)
        rc = render_global_families(m, version, out);
    if (rc == 0 && proc)
        rc = render_process(proc, out);
    if (rc < 0) {
        out->len = len0;
        if (out->data)
            out->data[len0] = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- JSON */

static json_t *per_index(const uint64_t *v, const char *const *names, int n)
{
    json_t *o = json_object();
    for (int i = 0; o && i < n; i++)
        json_object_set_new(o, names[i], json_integer((json_int_t)v[i]));
    return o;
}

static json_t *route_json(const struct metrics_route *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "sessions_open",
                        per_index(r->sessions_open, dialect_names, METRICS_DIALECTS));
    json_object_set_new(o, "sessions_opened_total",
                        per_index(r->opened_total, dialect_names, METRICS_DIALECTS));
    json_object_set_new(o, "sessions_closed_total",
                        per_index(r->closed_total, reason_names, METRICS_CLOSE_REASONS));
    json_object_set_new(o, "messages_total",
                        per_index(r->messages_total, dir_names, METRICS_DIRS));
    json_object_set_new(o, "bytes_total",
                        per_index(r->bytes_total, dir_names, METRICS_DIRS));
    json_object_set_new(o, "evicted_messages_total",
                        json_integer((json_int_t)r->evicted_total));
    json_object_set_new(o, "upstream_up", r->upstream_up < 0 ? json_null()
                                          : json_boolean(r->upstream_up));
    return o;
}

static json_t *hist_json(const struct metrics_hist *h)
{
    json_t *o = json_object(), *bk = json_array();
    uint64_t cum = 0;
    for (size_t i = 0; bk && i <= h->n_bounds; i++) {
        cum += h->counts[i];
        json_t *e = json_object();
        json_object_set_new(e, "le", i < h->n_bounds ? json_real(h->bounds[i])
                                                     : json_string("+Inf"));
        json_object_set_new(e, "count", json_integer((json_int_t)cum));
        json_array_append_new(bk, e);
    }
    json_object_set_new(o, "buckets", bk);
    json_object_set_new(o, "sum", json_real(h->sum));
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    return o;
}

static json_t *metrics_json(const struct metrics *m,
                            const struct metrics_process *proc,
                            const char *version)
{
    json_t *o = json_object(), *routes = json_object(), *codes = json_object();
    for (size_t i = 0; i < m->n_routes; i++)
        json_object_set_new(routes, m->routes[i]->name, route_json(m->routes[i]));
    for (int c = 0; c < METRICS_HTTP_CODES; c++) {
        if (!m->http_requests[c])
            continue;
        char code[12]; /* any int: no truncation warning */
        snprintf(code, sizeof code, "%d", c);
        json_object_set_new(codes, code, json_integer((json_int_t)m->http_requests[c]));
    }
    json_object_set_new(o, "version", json_string(version ? version : ""));
    json_object_set_new(o, "routes", routes);
    json_object_set_new(o, "buffered_bytes", json_integer((json_int_t)m->buffered_bytes));
    json_object_set_new(o, "upstream_paused", json_integer((json_int_t)m->upstream_paused));
    json_object_set_new(o, "access_log_dropped",
                        json_integer((json_int_t)m->access_log_dropped));
    json_object_set_new(o, "upstream_connect_seconds",
                        hist_json(&m->upstream_connect_seconds));
    json_object_set_new(o, "http_requests_total", codes);
    json_t *rl = json_object();
    json_object_set_new(rl, "ok", json_integer((json_int_t)m->config_reloads_ok));
    json_object_set_new(rl, "failed", json_integer((json_int_t)m->config_reloads_failed));
    json_object_set_new(o, "config_reloads_total", rl);
    if (proc) {
        json_t *p = json_object();
        json_object_set_new(p, "resident_memory_bytes", json_real(proc->resident_memory_bytes));
        json_object_set_new(p, "open_fds", json_real(proc->open_fds));
        json_object_set_new(p, "max_fds", json_real(proc->max_fds));
        json_object_set_new(p, "cpu_seconds_total", json_real(proc->cpu_seconds_total));
        json_object_set_new(p, "start_time_seconds", json_real(proc->start_time_seconds));
        json_object_set_new(o, "process", p);
    }
    return o;
}

int metrics_render_json(const struct metrics *m,
                        const struct metrics_process *proc,
                        const char *version, struct gw_buf *out)
{
    json_t *o = metrics_json(m, proc, version);
    if (!o)
        return GW_ENOMEM;
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!s)
        return GW_ENOMEM;
    size_t len0 = out->len;
    int rc = gw_buf_append(out, s, strlen(s));
    free(s);
    if (rc < 0) {
        out->len = len0;
        if (out->data)
            out->data[len0] = 0;
    }
    return rc;
}

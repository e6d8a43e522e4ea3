/* Unit tests for metrics: the registry, the histogram, the Prometheus text
 * and JSON renderings byte by byte, label escaping, failure rollback, and
 * /proc readings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "metrics.h"

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(metrics_dialect_name(METRICS_NATIVE), "native");
    assert_string_equal(metrics_dialect_name(METRICS_SOCKJS), "sockjs");
    assert_string_equal(metrics_dir_name(METRICS_TO_BROWSER), "to_browser");
    assert_string_equal(metrics_dir_name(METRICS_TO_UPSTREAM), "to_upstream");
    assert_string_equal(metrics_close_reason_name(METRICS_CLOSE_IDLE), "idle");
    assert_string_equal(metrics_close_reason_name(METRICS_CLOSE_REASONS), "unknown");
}

/* Entries keep their address while the table grows; names are unique. */
static void test_route_registry(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    assert_non_null(m);
    struct metrics_route *first = metrics_route(m, "chat");
    assert_non_null(first);
    assert_int_equal(first->upstream_up, -1);
    first->opened_total[METRICS_NATIVE] = 7;
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "r%d", i);
        assert_non_null(metrics_route(m, name));
    }
    assert_ptr_equal(metrics_route(m, "chat"), first);
    assert_int_equal(first->opened_total[METRICS_NATIVE], 7);
    assert_int_equal(m->n_routes, 101);
    char longname[METRICS_ROUTE_NAME_MAX + 1];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_null(metrics_route(m, longname));
    metrics_free(m);
    metrics_free(NULL);
}

static void test_histogram(void **state)
{
    (void)state;
    struct metrics_hist h = { .bounds = { 0.1, 1, 10 }, .n_bounds = 3 };
    metrics_hist_observe(&h, 0.05);
    metrics_hist_observe(&h, 0.1);  /* le is inclusive */
    metrics_hist_observe(&h, 0.5);
    metrics_hist_observe(&h, 99);
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 1);
    assert_int_equal(h.counts[2], 0);
    assert_int_equal(h.counts[3], 1);
    assert_int_equal(h.count, 4);
    assert_true(h.sum > 99.64 && h.sum < 99.66);
}

static const char expected_prom[] =
    "# HELP pollgate_sessions_open Sessions open now, per route and dialect.\n"
    "# TYPE pollgate_sessions_open gauge\n"
    "pollgate_sessions_open{route=\"a\\\"b\\\\c\\nd\",dialect=\"native\"} 2\n"
    "pollgate_sessions_open{route=\"a\\\"b\\\\c\\nd\",dialect=\"sockjs\"} 0\n"
    "# HELP pollgate_sessions_opened_total Sessions opened, per route and dialect.\n"
    "# TYPE pollgate_sessions_opened_total counter\n"
    "pollgate_sessions_opened_total{route=\"a\\\"b\\\\c\\nd\",dialect=\"native\"} 5\n"
    "pollgate_sessions_opened_total{route=\"a\\\"b\\\\c\\nd\",dialect=\"sockjs\"} 1\n"
    "# HELP pollgate_sessions_closed_total Sessions ended, per route and reason.\n"
    "# TYPE pollgate_sessions_closed_total counter\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"browser\"} 3\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"upstream\"} 0\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"open_failed\"} 0\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"idle\"} 1\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"lifetime\"} 0\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"overflow\"} 0\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"admin\"} 0\n"
    "pollgate_sessions_closed_total{route=\"a\\\"b\\\\c\\nd\",reason=\"shutdown\"} 0\n"
    "# HELP pollgate_messages_total Messages relayed, per route and direction.\n"
    "# TYPE pollgate_messages_total counter\n"
    "pollgate_messages_total{route=\"a\\\"b\\\\c\\nd\",direction=\"to_browser\"} 10\n"
    "pollgate_messages_total{route=\"a\\\"b\\\\c\\nd\",direction=\"to_upstream\"} 4\n"
    "# HELP pollgate_bytes_total Message payload bytes relayed, per route and direction.\n"
    "# TYPE pollgate_bytes_total counter\n"
    "pollgate_bytes_total{route=\"a\\\"b\\\\c\\nd\",direction=\"to_browser\"} 1000\n"
    "pollgate_bytes_total{route=\"a\\\"b\\\\c\\nd\",direction=\"to_upstream\"} 40\n"
    "# HELP pollgate_evicted_messages_total Messages dropped before the browser got them (overflow = drop-oldest, binary = drop).\n"
    "# TYPE pollgate_evicted_messages_total counter\n"
    "pollgate_evicted_messages_total{route=\"a\\\"b\\\\c\\nd\"} 6\n"
    "# HELP pollgate_upstream_up 1 if the route's upstream accepted the last health probe, 0 if not (absent before the first probe).\n"
    "# TYPE pollgate_upstream_up gauge\n"
    "pollgate_upstream_up{route=\"a\\\"b\\\\c\\nd\"} 1\n"
    "# HELP pollgate_buffered_bytes Bytes queued toward browsers, all sessions together.\n"
    "# TYPE pollgate_buffered_bytes gauge\n"
    "pollgate_buffered_bytes 123\n"
    "# HELP pollgate_upstream_paused Sessions whose upstream reading is paused (back-pressure).\n"
    "# TYPE pollgate_upstream_paused gauge\n"
    "pollgate_upstream_paused 1\n"
    "# HELP pollgate_access_log_dropped_total Access log lines dropped because the log did not keep up.\n"
    "# TYPE pollgate_access_log_dropped_total counter\n"
    "pollgate_access_log_dropped_total 7\n"
    "# HELP pollgate_upstream_connect_seconds Time from starting an upstream connection to its completed WebSocket handshake.\n"
    "# TYPE pollgate_upstream_connect_seconds histogram\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.001\"} 0\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.0025\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.005\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.01\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.025\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.05\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.1\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.25\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"0.5\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"1\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"2.5\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"5\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"10\"} 1\n"
    "pollgate_upstream_connect_seconds_bucket{le=\"+Inf\"} 2\n"
    "pollgate_upstream_connect_seconds_sum 30.001999999999999\n"
    "pollgate_upstream_connect_seconds_count 2\n"
    "# HELP pollgate_http_requests_total HTTP responses sent, per status code.\n"
    "# TYPE pollgate_http_requests_total counter\n"
    "pollgate_http_requests_total{code=\"0\"} 1\n"
    "pollgate_http_requests_total{code=\"200\"} 2\n"
    "pollgate_http_requests_total{code=\"404\"} 1\n"
    "# HELP pollgate_config_reloads_total SIGHUP reloads of the configuration file, applied (ok) or rejected (failed).\n"
    "# TYPE pollgate_config_reloads_total counter\n"
    "pollgate_config_reloads_total{result=\"ok\"} 4\n"
    "pollgate_config_reloads_total{result=\"failed\"} 1\n"
    "# HELP pollgate_build_info Always 1; the version label says which build runs.\n"
    "# TYPE pollgate_build_info gauge\n"
    "pollgate_build_info{version=\"1.2.3\"} 1\n";

static struct metrics *sample_registry(void)
{
    struct metrics *m = metrics_new();
    struct metrics_route *r = metrics_route(m, "a\"b\\c\nd");
    r->sessions_open[METRICS_NATIVE] = 2;
    r->opened_total[METRICS_NATIVE] = 5;
    r->opened_total[METRICS_SOCKJS] = 1;
    r->closed_total[METRICS_CLOSE_BROWSER] = 3;
    r->closed_total[METRICS_CLOSE_IDLE] = 1;
    r->messages_total[METRICS_TO_BROWSER] = 10;
    r->messages_total[METRICS_TO_UPSTREAM] = 4;
    r->bytes_total[METRICS_TO_BROWSER] = 1000;
    r->bytes_total[METRICS_TO_UPSTREAM] = 40;
    r->evicted_total = 6;
    r->upstream_up = 1;
    m->buffered_bytes = 123;
    m->upstream_paused = 1;
    m->access_log_dropped = 7;
    metrics_hist_observe(&m->upstream_connect_seconds, 0.002);
    metrics_hist_observe(&m->upstream_connect_seconds, 30);
    metrics_http_request(m, 200);
    metrics_http_request(m, 200);
    metrics_http_request(m, 404);
    metrics_http_request(m, 777); /* out of range: counted as 0 */
    m->config_reloads_ok = 4;
    m->config_reloads_failed = 1;
    return m;
}

static void test_prometheus_text(void **state)
{
    (void)state;
    struct metrics *m = sample_registry();
    struct gw_buf b = { 0 };
    assert_int_equal(metrics_render_prometheus(m, NULL, "1.2.3", &b), 0);
    assert_string_equal((const char *)b.data, expected_prom);
    gw_buf_free(&b);
    metrics_free(m);
}

/* A route never probed has no pollgate_upstream_up sample. */
static void test_unprobed_route(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metrics_route(m, "x");
    struct gw_buf b = { 0 };
    assert_int_equal(metrics_render_prometheus(m, NULL, "v", &b), 0);
    assert_non_null(strstr((char *)b.data, "# TYPE pollgate_upstream_up gauge\n# HELP"));
    assert_null(strstr((char *)b.data, "pollgate_upstream_up{"));
    gw_buf_free(&b);
    metrics_free(m);
}

/* A buffer that cannot hold the rendering is left as it was. */
static void test_rollback_on_limit(void **state)
{
    (void)state;
    struct metrics *m = sample_registry();
    struct gw_buf b = { .max = 300 };
    assert_int_equal(gw_buf_append(&b, "keep", 4), 0);
    assert_int_equal(metrics_render_prometheus(m, NULL, "1", &b), GW_ETOOBIG);
    assert_int_equal(b.len, 4);
    assert_string_equal((char *)b.data, "keep");
    b.max = 20;
    assert_int_equal(metrics_render_json(m, NULL, "1", &b), GW_ETOOBIG);
    assert_string_equal((char *)b.data, "keep");
    gw_buf_free(&b);
    metrics_free(m);
}

static void test_process(void **state)
{
    (void)state;
    struct metrics_process p;
    assert_int_equal(metrics_process_read(&p), 0);
    assert_true(p.resident_memory_bytes > 100000);
    assert_true(p.virtual_memory_bytes >= p.resident_memory_bytes);
    assert_true(p.open_fds >= 3);
    assert_true(p.max_fds >= p.open_fds);
    assert_true(p.cpu_seconds_total >= 0);
    /* Started within the last day, not in the future. */
    double now = (double)time(NULL);
    assert_true(p.start_time_seconds > now - 86400 && p.start_time_seconds <= now + 2);
    /* One more descriptor shows. */
    FILE *f = fopen("/proc/self/stat", "r");
    struct metrics_process q;
    metrics_process_read(&q);
    fclose(f);
    assert_true(q.open_fds == p.open_fds + 1);

    struct metrics *m = metrics_new();
    struct gw_buf b = { 0 };
    assert_int_equal(metrics_render_prometheus(m, &p, "1", &b), 0);
    assert_non_null(strstr((char *)b.data, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr((char *)b.data, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr((char *)b.data, "\nprocess_open_fds "));
    gw_buf_free(&b);
    metrics_free(m);
}

static void test_json(void **state)
{
    (void)state;
    struct metrics *m = sample_registry();
    struct gw_buf b = { 0 };
    struct metrics_process p = { .resident_memory_bytes = 4096, .open_fds = 9 };
    assert_int_equal(metrics_render_json(m, &p, "1.2.3", &b), 0);
    json_error_t err;
    json_t *o = json_loads((char *)b.data, 0, &err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "version")), "1.2.3");
    json_t *r = json_object_get(json_object_get(o, "routes"), "a\"b\\c\nd");
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(r, "sessions_opened_total"), "native")), 5);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(r, "sessions_closed_total"), "idle")), 1);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(r, "bytes_total"), "to_browser")), 1000);
    assert_true(json_is_true(json_object_get(r, "upstream_up")));
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(o, "http_requests_total"), "200")), 2);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(o, "config_reloads_total"), "ok")), 4);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(o, "config_reloads_total"), "failed")), 1);
    json_t *h = json_object_get(o, "upstream_connect_seconds");
    assert_int_equal(json_integer_value(json_object_get(h, "count")), 2);
    json_t *bk = json_object_get(h, "buckets");
    assert_int_equal(json_array_size(bk), 14);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bk, 13), "count")), 2);
    assert_true(json_real_value(json_object_get(json_object_get(o, "process"), "open_fds")) == 9);
    json_decref(o);
    gw_buf_free(&b);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_route_registry),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_prometheus_text),
        cmocka_unit_test(test_unprobed_route),
        cmocka_unit_test(test_rollback_on_limit),
        cmocka_unit_test(test_process),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

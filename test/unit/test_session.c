/* Unit tests for the session core (session.c): a scripted upstream behind
 * session_upstream_ops and a real event_base. The fake upstream records
 * what the session asks of it (sends, close, pause) and the tests deliver
 * its callbacks (open, message, close) by hand; timers run with short
 * timeouts on the real loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/event.h>

#include "envelope_batch.h"
#include "session.h"

/* --------------------------------------------------------- fake upstream */

struct fake_up {
    const struct ws_client_callbacks *cb;
    void *arg;
    bool connected, paused;
    int close_calls;
    uint16_t close_code;
    char close_reason[64];
    size_t pending;          /* what pending_bytes answers */
    bool send_fails;
    char sent[512];          /* "t:payload," / "b:payload," per send */
    int n_sent;
};

static struct fake_up *g_last;   /* the most recently created fake */
static int g_created, g_freed;
static int g_connect_rc;

static struct ws_client *fake_create(struct event_base *base,
                                     struct evdns_base *dns,
                                     const struct ws_client_options *opt,
                                     const struct ws_client_callbacks *cb,
                                     void *arg, struct gw_error *err)
{
    (void)base; (void)dns; (void)opt; (void)err;
    struct fake_up *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->cb = cb;
    f->arg = arg;
    g_last = f;
    g_created++;
    return (struct ws_client *)f;
}

static struct fake_up *F(struct ws_client *c) { return (struct fake_up *)c; }
static const struct fake_up *CF(const struct ws_client *c)
{
    return (const struct fake_up *)c;
}

static int fake_connect(struct ws_client *c)
{
    F(c)->connected = true;
    return g_connect_rc;
}

static int fake_send(struct ws_client *c, bool binary, const void *data,
                     size_t len)
{
    struct fake_up *f = F(c);
    if (f->send_fails)
        return GW_EIO;
    size_t n = strlen(f->sent);
    snprintf(f->sent + n, sizeof f->sent - n, "%c:%.*s,", binary ? 'b' : 't',
             (int)len, (const char *)data);
    f->n_sent++;
    return 0;
}

static int fake_close(struct ws_client *c, uint16_t code, const char *reason)
{
    struct fake_up *f = F(c);
    f->close_calls++;
    f->close_code = code;
    snprintf(f->close_reason, sizeof f->close_reason, "%s", reason);
    return 0;
}

static size_t fake_pending(const struct ws_client *c) { return CF(c)->pending; }
static void fake_pause(struct ws_client *c, bool pause) { F(c)->paused = pause; }
static const char *fake_protocol(const struct ws_client *c)
{
    (void)c;
    return "chat.v1";
}
static void fake_free(struct ws_client *c)
{
    if (!c)
        return;
    g_freed++;
    free(c);
}

static const struct session_upstream_ops fake_ops = {
    .create = fake_create, .connect = fake_connect, .send = fake_send,
    .close = fake_close, .pending_bytes = fake_pending,
    .pause_reading = fake_pause, .protocol = fake_protocol, .free = fake_free,
};

/* Script the upstream's side. */
static void up_open(struct fake_up *f)
{
    f->cb->on_open((struct ws_client *)f, f->arg);
}
static void up_msg(struct fake_up *f, bool binary, const char *text)
{
    f->cb->on_message((struct ws_client *)f, binary, (const uint8_t *)text,
                      strlen(text), f->arg);
}
static void up_read_end(struct fake_up *f)
{
    f->cb->on_read_end((struct ws_client *)f, f->arg);
}
static void up_closed(struct fake_up *f, uint16_t code, const char *reason,
                      enum ws_client_fail fail, const char *detail)
{
    struct ws_close_info ci = { .code = code, .reason = reason,
                                .reason_len = reason ? strlen(reason) : 0,
                                .fail = fail, .detail = detail };
    f->cb->on_close((struct ws_client *)f, &ci, f->arg);
}

/* ------------------------------------------------------------ test sink */

struct tsink {
    struct session_sink k;
    int wakes, detaches, opened;
    enum session_detach_why why;
    bool open_failed;
    uint16_t fail_code;
};

static struct tsink *TS(struct session_sink *k) { return (struct tsink *)k; }
static void ts_wake(struct session_sink *k) { TS(k)->wakes++; }
static void ts_detach(struct session_sink *k, enum session_detach_why why)
{
    TS(k)->detaches++;
    TS(k)->why = why;
}
static void ts_opened(struct session_sink *k, const struct ws_close_info *fail)
{
    TS(k)->opened++;
    TS(k)->open_failed = fail != NULL;
    TS(k)->fail_code = fail ? fail->code : 0;
}
static const struct session_sink_ops ts_ops = { ts_wake, ts_detach, ts_opened };

static void ts_init(struct tsink *k)
{
    memset(k, 0, sizeof *k);
    k->k.ops = &ts_ops;
}

/* -------------------------------------------------------------- fixture */

struct fx {
    struct event_base *base;
    struct gw_config cfg;
    struct gw_route route, route2;
    struct session_table *t;
    struct tsink opener;
    char last_id[SESSION_KEY_MAX + 1]; /* id of the last session opened */
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->base = event_base_new();
    assert_non_null(x->base);
    x->cfg.refs = 1; /* the fixture's own reference, never dropped */
    x->cfg.idle_timeout_ms = 60000;
    x->cfg.buffer_bytes = 1 << 20;
    x->cfg.buffer_messages = 1000;
    x->cfg.overflow = GW_OVERFLOW_PAUSE;
    x->cfg.send_buffer_bytes = 1 << 20;
    x->cfg.max_batch = 100;
    x->cfg.max_sessions = 100;
    x->cfg.max_sessions_per_client = 100;
    x->cfg.max_buffered_bytes = 1 << 24;
    x->cfg.connect_timeout_ms = 1000;
    x->cfg.max_message = 1 << 20;
    x->route.name = "a";
    x->route.upstream = "ws://127.0.0.1:9/";
    x->route2.name = "b";
    x->route2.upstream = "ws://127.0.0.1:9/";
    ts_init(&x->opener);
    g_last = NULL;
    g_created = g_freed = 0;
    g_connect_rc = 0;
    *state = x;
    return 0;
}

/* The table reads its timeouts when made: tests adjust cfg first. */
static struct session_table *start(struct fx *x)
{
    x->t = session_table_new(x->base, NULL, &x->cfg, NULL);
    assert_non_null(x->t);
    session_table_set_upstream_ops(x->t, &fake_ops);
    return x->t;
}

static void run_ms(struct fx *x, int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    event_base_loopexit(x->base, &tv);
    event_base_dispatch(x->base);
}

static int teardown(void **state)
{
    struct fx *x = *state;
    session_table_free(x->t);
    /* every upstream the table made was freed, none twice */
    assert_int_equal(g_created, g_freed);
    event_base_free(x->base);
    free(x);
    return 0;
}

static const struct session_policy sockjs_pol = {
    .id_kind = SESSION_ID_CLIENT,
    .idle = SESSION_IDLE_REAP,
    .failed_open = SESSION_FAILED_OPEN_TOMBSTONE,
    .binary = SESSION_BINARY_PASS,
    .idle_ms = 0,
};

/* Open a session under pol (id for client-named ones), not yet open. */
static struct session *open_on(struct fx *x, const struct session_policy *pol,
                               const struct gw_route *r, const char *id)
{
    struct session_open_params p = {
        .route = r, .client_addr = "192.0.2.1", .opener = &x->opener.k,
        .id = id, .id_len = id ? strlen(id) : 0,
    };
    struct session *s = NULL;
    assert_int_equal(session_open(x->t, pol, &p, &s), SESSION_OPEN_OK);
    assert_non_null(s);
    assert_int_equal(session_state(s), SESSION_OPENING);
    snprintf(x->last_id, sizeof x->last_id, "%s", session_id(s));
    return s;
}

/* Open a session and let its upstream accept. */
static struct session *open_up(struct fx *x, const struct session_policy *pol,
                               const char *id, struct fake_up **f)
{
    struct session *s = open_on(x, pol, &x->route, id);
    *f = g_last;
    assert_true((*f)->connected);
    up_open(*f);
    assert_int_equal(session_state(s), SESSION_OPEN);
    return s;
}

static size_t qcount(struct session *s)
{
    return session_queue_count(session_queue(s));
}

static enum session_send_result send2(struct session *s, bool has_seq,
                                      uint64_t seq, const char *a, const char *b)
{
    struct session_out_msg m[2] = {
        { (const uint8_t *)a, strlen(a), false },
        { (const uint8_t *)b, strlen(b), true },
    };
    struct session_batch bt = { .msgs = m, .n = 2, .has_seq = has_seq,
                                .seq = seq };
    return session_send(s, &bt);
}

/* ----------------------------------------------------------------- tests */

static void test_open_relay(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    assert_int_equal(x->opener.opened, 1);
    assert_false(x->opener.open_failed);
    assert_ptr_equal(x->opener.k.session, s);
    assert_string_equal(session_protocol(s), "chat.v1");
    assert_int_equal(strlen(session_id(s)), SESSION_ID_LEN);
    assert_ptr_equal(session_find(x->t, session_id(s), SESSION_ID_LEN), s);
    struct tsink k;
    ts_init(&k);
    session_attach(s, &k.k);
    up_msg(f, false, "hello");
    up_msg(f, true, "bin");
    /* messages of one upstream read wake the sink once, after the read,
     * in the same loop turn */
    assert_int_equal(k.wakes, 0);
    assert_int_equal(qcount(s), 2);
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k.wakes, 1);
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k.wakes, 1);
    const struct session_stats *st = session_table_stats(x->t);
    assert_int_equal(st->messages_in, 2);
    assert_int_equal(st->opened_total, 1);
    assert_int_equal(st->sessions, 1);
    assert_int_equal(st->buffered_bytes, 8);
    up_msg(f, false, "later");
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k.wakes, 2);
    /* a sink detached before its wake ran is not woken (nor touched) */
    up_msg(f, false, "gone");
    session_detach(s, &k.k);
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k.wakes, 2);
    /* the next sink gets the wake of what comes next */
    struct tsink k2;
    ts_init(&k2);
    session_attach(s, &k2.k);
    up_msg(f, false, "next");
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k2.wakes, 1);
    assert_int_equal(qcount(s), 5);
    session_detach(s, &k2.k);
}

/* An upstream that reports the end of its reads (ws_client's on_read_end)
 * has the sink woken right then, once for the read's messages; the loop
 * turn's waker then has nothing left to do. */
static void test_read_end_wakes(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    struct tsink k;
    ts_init(&k);
    session_attach(s, &k.k);
    up_msg(f, false, "one");
    up_msg(f, false, "two");
    up_msg(f, false, "three");
    assert_int_equal(k.wakes, 0);
    up_read_end(f);
    assert_int_equal(k.wakes, 1);
    assert_int_equal(qcount(s), 3);
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k.wakes, 1);
    /* a read end without messages wakes nobody */
    up_read_end(f);
    assert_int_equal(k.wakes, 1);
    /* the next read's */
    up_msg(f, false, "four");
    up_read_end(f);
    assert_int_equal(k.wakes, 2);
    session_detach(s, &k.k);
    /* no sink: listed nowhere, nothing to wake */
    up_msg(f, false, "five");
    up_read_end(f);
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k.wakes, 2);
    assert_int_equal(qcount(s), 5);
    /* listed for one sink, replaced by another before the wake: the old
     * one was detached and is not woken; the new one reads the queue when
     * it attaches (every transport does), the waker finds nobody */
    struct tsink k2, k3;
    ts_init(&k2);
    ts_init(&k3);
    session_attach(s, &k2.k);
    up_msg(f, false, "six");
    session_attach(s, &k3.k);
    assert_int_equal(k2.detaches, 1);
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k2.wakes, 0);
    assert_int_equal(k3.wakes, 0);
    assert_int_equal(qcount(s), 6);
    session_detach(s, &k3.k);
}

/* libevent has at most 256 common timeouts per base: when the table cannot
 * get its max_lifetime (or idle) timeout, it must refuse to start, not run
 * without the limit. */
static void test_timeouts_unavailable(void **state)
{
    struct fx *x = *state;
    x->cfg.max_lifetime_ms = 5000;
    struct timeval idle = { .tv_sec = 60 };
    assert_non_null(event_base_init_common_timeout(x->base, &idle));
    for (int i = 1; i < 1000; i++) {
        struct timeval tv = { .tv_sec = 1000 + i };
        if (!event_base_init_common_timeout(x->base, &tv))
            break;
    }
    /* idle (60 s) is registered already, 5 s is not and cannot be */
    assert_null(session_table_new(x->base, NULL, &x->cfg, NULL));
    x->cfg.max_lifetime_ms = 0;
    assert_non_null(x->t = session_table_new(x->base, NULL, &x->cfg, NULL));
    session_table_set_upstream_ops(x->t, &fake_ops);
    /* a policy whose idle period cannot be set up is refused */
    struct session_policy pol = session_policy_native;
    pol.idle_ms = 7000;
    struct session_open_params p = { .route = &x->route,
                                     .client_addr = "127.0.0.1" };
    struct session *s = NULL;
    assert_int_equal(session_open(x->t, &pol, &p, &s), SESSION_OPEN_FAILED);
    assert_null(s);
    assert_int_equal(session_table_stats(x->t)->sessions, 0);
    assert_int_equal(g_created, 0);
}

static void test_overflow_pause(void **state)
{
    struct fx *x = *state;
    x->cfg.buffer_messages = 4;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    for (int i = 0; i < 5; i++)
        up_msg(f, false, "m");
    /* nothing dropped: the fifth is kept and reading stops */
    assert_int_equal(qcount(s), 5);
    assert_true(f->paused);
    assert_int_equal(session_table_stats(x->t)->paused, 1);
    assert_int_equal(session_table_stats(x->t)->dropped, 0);
    /* hysteresis: resume only at half the limit */
    assert_int_equal(session_ack(s, 1), 0);
    assert_true(f->paused);
    assert_int_equal(session_ack(s, 3), 0);
    assert_false(f->paused);
    assert_int_equal(session_table_stats(x->t)->paused, 0);
    assert_int_equal(f->close_calls, 0);
}

/* overflow = pause never evicts, not even messages a stream has written
 * but the browser has not acknowledged: a dropped stream would lose them.
 * The upstream waits for acks instead. */
static void test_overflow_pause_keeps_written(void **state)
{
    struct fx *x = *state;
    x->cfg.buffer_messages = 4;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    for (int i = 0; i < 4; i++)
        up_msg(f, false, "w");
    session_queue_mark_written(session_queue(s)); /* a stream wrote 1..4 */
    assert_false(f->paused);
    up_msg(f, false, "x");
    assert_int_equal(qcount(s), 5);
    assert_true(f->paused);
    assert_int_equal(session_table_stats(x->t)->dropped, 0);
    uint64_t from = 0, to = 0;
    assert_false(session_lost_since(s, 0, &from, &to));
    /* the stream drops: a resume from 0 still has all five */
    session_queue_unmark_written(session_queue(s));
    struct sq_msg m;
    size_t pos = 0, off = 0;
    assert_true(session_queue_next(session_queue(s), &pos, &off, &m));
    assert_int_equal(m.seq, 1);
    /* the browser's ack frees room and lets the upstream go on */
    assert_int_equal(session_ack(s, 4), 0);
    assert_false(f->paused);
    assert_int_equal(qcount(s), 1);
}

/* drop-oldest evicts written messages first (they were sent). */
static void test_overflow_drop_oldest_written_first(void **state)
{
    struct fx *x = *state;
    x->cfg.buffer_messages = 2;
    x->cfg.overflow = GW_OVERFLOW_DROP_OLDEST;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    up_msg(f, false, "a");
    session_queue_mark_written(session_queue(s));
    up_msg(f, false, "b");
    up_msg(f, false, "c");
    assert_int_equal(qcount(s), 2);
    assert_false(f->paused);
    assert_int_equal(session_table_stats(x->t)->dropped, 1);
    assert_int_equal(session_queue(s)->written, 0);
}

static void test_overflow_drop_oldest(void **state)
{
    struct fx *x = *state;
    x->cfg.buffer_messages = 2;
    x->cfg.overflow = GW_OVERFLOW_DROP_OLDEST;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    up_msg(f, false, "a");
    up_msg(f, false, "b");
    up_msg(f, false, "c");
    assert_int_equal(qcount(s), 2);
    assert_false(f->paused);
    assert_int_equal(session_table_stats(x->t)->dropped, 1);
    uint64_t from = 0, to = 0;
    assert_true(session_lost_since(s, 0, &from, &to));
    assert_int_equal(from, 1);
    assert_int_equal(to, 1);
    /* a browser that already had seq 1 lost nothing */
    assert_false(session_lost_since(s, 1, &from, &to));
    struct sq_msg m;
    size_t pos = 0, off = 0;
    assert_true(session_queue_next(session_queue(s), &pos, &off, &m));
    assert_int_equal(m.seq, 2);
    assert_memory_equal(m.data, "b", 1);
}

static void test_overflow_close(void **state)
{
    struct fx *x = *state;
    x->cfg.buffer_messages = 2;
    x->cfg.overflow = GW_OVERFLOW_CLOSE;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    struct tsink k;
    ts_init(&k);
    session_attach(s, &k.k);
    up_msg(f, false, "a");
    up_msg(f, false, "b");
    up_msg(f, false, "c");
    assert_int_equal(f->close_calls, 1);
    assert_int_equal(f->close_code, WS_CLOSE_POLICY);
    assert_string_equal(f->close_reason, "buffer overflow");
    assert_int_equal(session_state(s), SESSION_CLOSED);
    assert_int_equal(session_close_code(s), WS_CLOSE_POLICY);
    /* the two messages before the overflow are still delivered first */
    assert_int_equal(qcount(s), 2);
    assert_false(session_close_ready(s, false));
    /* the close wakes at once, for the messages before it too */
    assert_int_equal(k.wakes, 1);
    event_base_loop(x->base, EVLOOP_NONBLOCK);
    assert_int_equal(k.wakes, 1);
    /* later upstream messages are ignored */
    up_msg(f, false, "d");
    assert_int_equal(qcount(s), 2);
    assert_int_equal(session_ack(s, 2), 0);
    assert_true(session_close_ready(s, false));
    session_detach(s, &k.k);
}

static void test_global_budget(void **state)
{
    struct fx *x = *state;
    x->cfg.max_buffered_bytes = 10;
    start(x);
    struct fake_up *fa, *fb;
    struct session *a = open_up(x, &session_policy_native, NULL, &fa);
    struct session *b = open_up(x, &session_policy_native, NULL, &fb);
    up_msg(fa, false, "aaaaaaaa");      /* 8 of 10 */
    assert_false(fa->paused);
    up_msg(fb, false, "bbbbb");         /* over the shared budget */
    assert_true(fb->paused);
    assert_false(fa->paused);
    assert_int_equal(qcount(b), 1);     /* kept, not dropped */
    assert_int_equal(session_table_stats(x->t)->paused, 1);
    /* a holds most of the shared budget */
    assert_int_equal(session_table_stats(x->t)->buffered_bytes, 13);
    /* a's browser acknowledges: budget freed, b resumes */
    assert_int_equal(session_ack(a, 1), 0);
    assert_false(fb->paused);
    assert_int_equal(session_table_stats(x->t)->paused, 0);
    assert_int_equal(session_table_stats(x->t)->buffered_bytes, 5);
}

static void test_global_budget_drop_oldest_never_evicts(void **state)
{
    struct fx *x = *state;
    x->cfg.max_buffered_bytes = 10;
    x->cfg.overflow = GW_OVERFLOW_DROP_OLDEST;
    start(x);
    struct fake_up *fa, *fb;
    struct session *a = open_up(x, &session_policy_native, NULL, &fa);
    struct session *b = open_up(x, &session_policy_native, NULL, &fb);
    up_msg(fa, false, "aaaaaaaa");
    up_msg(fb, false, "bb");
    up_msg(fb, false, "bb");
    /* b is not made to drop its own messages for a's sake: paused */
    assert_int_equal(session_table_stats(x->t)->dropped, 0);
    assert_int_equal(qcount(b), 2);
    assert_true(fb->paused);
    assert_int_equal(session_ack(a, 1), 0);
    assert_false(fb->paused);
}

static void test_tombstone_410_then_404(void **state)
{
    struct fx *x = *state;
    x->cfg.idle_timeout_ms = 500;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    char id[SESSION_ID_LEN + 1];
    memcpy(id, session_id(s), sizeof id);
    up_msg(f, false, "x");
    run_ms(x, 750);
    /* idle: upstream told 1001, the id answers 410 */
    assert_int_equal(f->close_calls, 1);
    assert_int_equal(f->close_code, WS_CLOSE_GOING_AWAY);
    assert_string_equal(f->close_reason, "idle timeout");
    s = session_find(x->t, id, SESSION_ID_LEN);
    assert_non_null(s);
    assert_int_equal(session_state(s), SESSION_FINISHED);
    assert_int_equal(session_close_code(s), WS_CLOSE_GOING_AWAY);
    assert_int_equal(qcount(s), 0); /* the queue is let go */
    const struct session_stats *st = session_table_stats(x->t);
    assert_int_equal(st->sessions, 0);
    assert_int_equal(st->tombstones, 1);
    assert_int_equal(st->closed_total, 1);
    assert_int_equal(st->buffered_bytes, 0);
    /* the upstream finishes its close handshake */
    up_closed(f, WS_CLOSE_GOING_AWAY, "", WS_FAIL_NONE, NULL);
    assert_int_equal(g_freed, 1);
    assert_non_null(session_find(x->t, id, SESSION_ID_LEN));
    run_ms(x, 500);
    /* then gone: 404 */
    assert_null(session_find(x->t, id, SESSION_ID_LEN));
    assert_int_equal(st->tombstones, 0);
}

static void test_closed_unfetched_becomes_tombstone(void **state)
{
    struct fx *x = *state;
    x->cfg.idle_timeout_ms = 500;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    up_closed(f, 4000, "done", WS_FAIL_NONE, NULL);
    assert_int_equal(session_state(s), SESSION_CLOSED);
    run_ms(x, 750);
    s = session_find(x->t, x->last_id, SESSION_ID_LEN);
    assert_non_null(s);
    assert_int_equal(session_state(s), SESSION_FINISHED);
    assert_int_equal(session_close_code(s), 4000);
    assert_string_equal(session_close_reason(s), "done");
}

static void test_failed_open_forget(void **state)
{
    struct fx *x = *state;
    start(x);
    struct session *s = open_on(x, &session_policy_native, &x->route, NULL);
    char id[SESSION_ID_LEN + 1];
    memcpy(id, session_id(s), sizeof id);
    up_closed(g_last, WS_CLOSE_ABNORMAL, NULL, WS_FAIL_CONNECT, "refused");
    assert_int_equal(x->opener.opened, 1);
    assert_true(x->opener.open_failed);
    assert_int_equal(x->opener.fail_code, WS_CLOSE_ABNORMAL);
    assert_null(session_find(x->t, id, SESSION_ID_LEN));
    assert_int_equal(session_table_stats(x->t)->sessions, 0);
    assert_int_equal(session_table_stats(x->t)->tombstones, 0);
    run_ms(x, 5);
    assert_int_equal(g_freed, 1);
}

static void test_failed_open_tombstone(void **state)
{
    struct fx *x = *state;
    start(x);
    open_on(x, &sockjs_pol, &x->route, "abc");
    up_closed(g_last, WS_CLOSE_ABNORMAL, NULL, WS_FAIL_CONNECT, "refused");
    assert_true(x->opener.open_failed);
    struct session *s = session_find_client(x->t, &x->route, "abc", 3);
    assert_non_null(s);
    assert_int_equal(session_state(s), SESSION_FINISHED);
    assert_int_equal(session_close_code(s), WS_CLOSE_INTERNAL);
    assert_string_equal(session_close_reason(s), "refused");
    assert_int_equal(session_table_stats(x->t)->tombstones, 1);
    assert_int_equal(session_table_stats(x->t)->opened_total, 0);
    assert_int_equal(session_table_stats(x->t)->closed_total, 0);
    assert_int_equal(g_freed, 1); /* the upstream is let go at once */
}

static void test_reap_client_named(void **state)
{
    struct fx *x = *state;
    start(x);
    struct session_policy pol = sockjs_pol;
    pol.idle_ms = 30;
    struct session *s = open_on(x, &pol, &x->route, "abc");
    struct fake_up *f = g_last;
    up_open(f);
    (void)s;
    run_ms(x, 50);
    assert_int_equal(f->close_calls, 1);
    assert_int_equal(f->close_code, WS_CLOSE_GOING_AWAY);
    /* forgotten at once, although its upstream is still closing */
    assert_null(session_find_client(x->t, &x->route, "abc", 3));
    assert_int_equal(g_freed, 0);
    /* the id can start a new session right away */
    struct session *s2 = open_on(x, &pol, &x->route, "abc");
    assert_ptr_equal(session_find_client(x->t, &x->route, "abc", 3), s2);
    /* the old upstream's close ends its life (released inside the
     * callback, freed from the loop) */
    up_closed(f, WS_CLOSE_GOING_AWAY, "", WS_FAIL_NONE, NULL);
    assert_int_equal(g_freed, 0);
    run_ms(x, 5);
    assert_int_equal(g_freed, 1);
    assert_ptr_equal(session_find_client(x->t, &x->route, "abc", 3), s2);
}

static void test_reap_closed_unfetched(void **state)
{
    struct fx *x = *state;
    start(x);
    struct session_policy pol = sockjs_pol;
    pol.idle_ms = 30;
    open_on(x, &pol, &x->route, "abc");
    struct fake_up *f = g_last;
    up_open(f);
    up_closed(f, WS_CLOSE_NORMAL, "bye", WS_FAIL_NONE, NULL);
    assert_non_null(session_find_client(x->t, &x->route, "abc", 3));
    run_ms(x, 50);
    /* no tombstone for a reaped dialect */
    assert_null(session_find_client(x->t, &x->route, "abc", 3));
    assert_int_equal(session_table_stats(x->t)->tombstones, 0);
    assert_int_equal(session_table_stats(x->t)->sessions, 0);
}

static void test_namespaces(void **state)
{
    struct fx *x = *state;
    start(x);
    struct session *a = open_on(x, &sockjs_pol, &x->route, "abc");
    /* same id, other route: a different session */
    struct session *b = open_on(x, &sockjs_pol, &x->route2, "abc");
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(session_find_client(x->t, &x->route, "abc", 3), a);
    assert_ptr_equal(session_find_client(x->t, &x->route2, "abc", 3), b);
    /* same id, same route: refused */
    struct session_open_params p = { .route = &x->route, .client_addr = "h",
                                     .id = "abc", .id_len = 3 };
    struct session *c = NULL;
    assert_int_equal(session_open(x->t, &sockjs_pol, &p, &c), SESSION_OPEN_FAILED);
    assert_null(c);
    /* client-named ids are invisible to native lookups and vice versa */
    assert_null(session_find(x->t, "abc", 3));
    struct session *n = open_on(x, &session_policy_native, &x->route, NULL);
    assert_ptr_equal(session_find(x->t, session_id(n), SESSION_ID_LEN), n);
    assert_null(session_find_client(x->t, &x->route, session_id(n),
                                    SESSION_ID_LEN));
    /* a client id needs an id */
    p.id = NULL;
    assert_int_equal(session_open(x->t, &sockjs_pol, &p, &c), SESSION_OPEN_FAILED);
}


/* A reload: open sessions keep the config they opened with (each holds a
 * reference until it is freed), new ones get the new one; table-wide
 * limits come from the current config; session_table_drain_route closes
 * the sessions of a removed route opened before the reload, by name and
 * generation, and no others. */
static void test_reload_keeps_session_config(void **state)
{
    struct fx *x = *state;
    x->cfg.buffer_messages = 4;
    start(x);
    assert_int_equal(x->cfg.refs, 2); /* the fixture's and the table's */
    struct fake_up *fa;
    struct session *a = open_up(x, &session_policy_native, NULL, &fa);
    assert_int_equal(x->cfg.refs, 3);
    struct gw_config next = x->cfg;
    next.refs = 1;                    /* this test's */
    next.generation = 1;
    next.buffer_messages = 100;
    next.max_sessions = 3;
    struct gw_route r2 = x->route;    /* route "a" again, a new object */
    assert_int_equal(session_table_set_config(x->t, &next), 0);
    assert_ptr_equal(session_table_config(x->t), &next);
    assert_int_equal(x->cfg.refs, 2); /* the fixture's and a's */
    assert_int_equal(next.refs, 2);
    assert_ptr_equal(session_config(a), &x->cfg);
    struct session *b = open_on(x, &session_policy_native, &r2, NULL);
    struct fake_up *fb = g_last;
    up_open(fb);
    assert_ptr_equal(session_config(b), &next);
    assert_int_equal(next.refs, 3);
    /* per-session limits: a pauses at its 4 messages, b has room for 100 */
    for (int i = 0; i < 5; i++) {
        up_msg(fa, false, "m");
        up_msg(fb, false, "m");
    }
    assert_true(fa->paused);
    assert_false(fb->paused);
    /* SockJS ids are found under any version of their route (by name) */
    struct session *k = open_on(x, &sockjs_pol, &x->route, "k1");
    assert_ptr_equal(session_find_client(x->t, &r2, "k1", 2), k);
    /* table-wide: the current max_sessions (3) */
    struct session_open_params p = { .route = &r2, .client_addr = "h" };
    struct session *c = NULL;
    assert_int_equal(session_open(x->t, &session_policy_native, &p, &c),
                     SESSION_OPEN_FULL);
    /* a reload to generation 1 removed route "a": the open sessions
     * opened before it (a) close, b (generation 1) does not */
    size_t opening = 9;
    assert_int_equal(session_table_drain_route(x->t, "b", 1, &opening), 0);
    assert_int_equal(opening, 0);
    assert_int_equal(session_table_drain_route(x->t, "a", 1, &opening), 1);
    assert_int_equal(opening, 0);
    assert_int_equal(fa->close_code, WS_CLOSE_GOING_AWAY);
    assert_int_equal(session_state(a), SESSION_CLOSED);
    assert_int_equal(session_close_code(a), WS_CLOSE_GOING_AWAY);
    assert_string_equal(session_close_reason(a), "going away");
    assert_int_equal(session_state(b), SESSION_OPEN);
    assert_int_equal(fb->close_calls, 0);
    /* one to generation 2: b closes; k, still opening, is left for later */
    assert_int_equal(session_table_drain_route(x->t, "a", 2, &opening), 1);
    assert_int_equal(opening, 1);
    assert_int_equal(fb->close_code, WS_CLOSE_GOING_AWAY);
    assert_int_equal(session_state(k), SESSION_OPENING);
    /* the configs live as long as their sessions */
    session_table_free(x->t);
    x->t = NULL;
    assert_int_equal(x->cfg.refs, 1);
    assert_int_equal(next.refs, 1);
}

/* A WebSocket browser's session: private id, ended with the browser's
 * close code, forgotten once its upstream has closed. */
static const struct session_policy private_pol = {
    .id_kind = SESSION_ID_PRIVATE,
    .idle = SESSION_IDLE_REAP,
    .failed_open = SESSION_FAILED_OPEN_FORGET,
    .binary = SESSION_BINARY_PASS,
};

static void test_private_end(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &private_pol, NULL, &f);
    /* no lookup reaches a private session */
    assert_int_equal(strlen(session_id(s)), SESSION_ID_LEN);
    assert_null(session_find(x->t, session_id(s), SESSION_ID_LEN));
    assert_null(session_find_client(x->t, &x->route, session_id(s),
                                    SESSION_ID_LEN));
    session_attach(s, &x->opener.k);
    session_detach(s, &x->opener.k);
    session_end(s, 4100, "browser says bye");
    assert_int_equal(f->close_calls, 1);
    assert_int_equal(f->close_code, 4100);
    assert_string_equal(f->close_reason, "browser says bye");
    /* counted with the tombstones until its upstream has closed, as a
     * reaped SockJS session is */
    assert_int_equal(session_table_stats(x->t)->sessions, 0);
    session_end(s, 1000, "again"); /* idempotent while it closes */
    assert_int_equal(f->close_calls, 1);
    up_closed(f, 4100, "browser says bye", WS_FAIL_NONE, NULL);
    run_ms(x, 5);
    assert_int_equal(g_freed, 1);
    assert_int_equal(session_table_stats(x->t)->tombstones, 0);

    /* ended while still opening: the upstream attempt is aborted */
    struct session *o = open_on(x, &private_pol, &x->route, NULL);
    struct fake_up *fo = g_last;
    session_end(o, WS_CLOSE_GOING_AWAY, "gone");
    /* not cut before its 101 (the upstream would see 1006): it finishes
     * opening off the table and is then closed with 1001 */
    assert_int_equal(fo->close_calls, 0);
    up_open(fo);
    assert_int_equal(fo->close_calls, 1);
    assert_int_equal(fo->close_code, WS_CLOSE_GOING_AWAY);
    up_closed(fo, WS_CLOSE_GOING_AWAY, "browser went away", WS_FAIL_NONE, NULL);
    run_ms(x, 5);
    assert_int_equal(g_freed, 2);

    /* ended after its upstream closed: released at once */
    struct fake_up *fc;
    struct session *c = open_up(x, &private_pol, NULL, &fc);
    up_closed(fc, WS_CLOSE_NORMAL, "done", WS_FAIL_NONE, NULL);
    assert_int_equal(session_state(c), SESSION_CLOSED);
    session_end(c, 0, NULL);
    run_ms(x, 5);
    assert_int_equal(g_freed, 3);
    assert_int_equal(session_table_stats(x->t)->sessions, 0);
}

/* SockJS: a receiving request cut after "o" ends the session; later
 * requests learn 1002 from a tombstone, the upstream gets 1001. */
static void test_interrupt(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &sockjs_pol, "abc", &f);
    up_msg(f, false, "unsent");
    session_interrupt(s, 1002, "Connection interrupted", WS_CLOSE_GOING_AWAY,
                      "browser connection interrupted");
    assert_int_equal(f->close_calls, 1);
    assert_int_equal(f->close_code, WS_CLOSE_GOING_AWAY);
    assert_ptr_equal(session_find_client(x->t, &x->route, "abc", 3), s);
    assert_int_equal(session_state(s), SESSION_FINISHED);
    assert_int_equal(session_close_code(s), 1002);
    assert_string_equal(session_close_reason(s), "Connection interrupted");
    assert_int_equal(session_table_stats(x->t)->tombstones, 1);
    up_closed(f, WS_CLOSE_GOING_AWAY, "", WS_FAIL_NONE, NULL);

    /* an upstream that closed first keeps its close */
    struct fake_up *g;
    struct session *t2 = open_up(x, &sockjs_pol, "def", &g);
    up_closed(g, 3000, "Go away!", WS_FAIL_NONE, NULL);
    session_interrupt(t2, 1002, "Connection interrupted", 1001, "x");
    assert_int_equal(session_state(t2), SESSION_FINISHED);
    assert_int_equal(session_close_code(t2), 3000);
}

static void test_close_ordering(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    struct tsink k;
    ts_init(&k);
    session_attach(s, &k.k);
    up_msg(f, false, "one");
    up_msg(f, false, "two");
    up_closed(f, WS_CLOSE_NORMAL, "bye", WS_FAIL_NONE, NULL);
    assert_int_equal(k.wakes, 1); /* one, for the messages and the close */
    assert_int_equal(session_state(s), SESSION_CLOSED);
    assert_int_equal(g_freed, 1);
    /* messages first: the close waits for them */
    assert_int_equal(qcount(s), 2);
    assert_false(session_close_ready(s, false));
    assert_false(session_close_ready(s, true));
    /* stream: written is enough */
    session_queue_mark_written(session_queue(s));
    assert_true(session_close_ready(s, true));
    assert_false(session_close_ready(s, false));
    /* poll: acknowledged */
    assert_int_equal(session_ack(s, 1), 0);
    assert_false(session_close_ready(s, false));
    assert_int_equal(session_ack(s, 2), 0);
    assert_true(session_close_ready(s, false));
    assert_int_equal(session_send(s, &(struct session_batch){0}),
                     SESSION_SEND_NOT_OPEN);
    session_close_delivered(s);
    assert_int_equal(session_state(s), SESSION_FINISHED);
    assert_int_equal(session_close_code(s), WS_CLOSE_NORMAL);
    assert_string_equal(session_close_reason(s), "bye");
    /* the session let go of the sink */
    assert_int_equal(k.detaches, 1);
    assert_int_equal(k.why, SESSION_DETACH_CLOSING);
    assert_null(k.k.session);
}

static void test_failure_detail_as_reason(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    up_closed(f, WS_CLOSE_ABNORMAL, NULL, WS_FAIL_IO, "connection reset");
    assert_int_equal(session_close_code(s), WS_CLOSE_ABNORMAL);
    assert_string_equal(session_close_reason(s), "connection reset");
}

static void test_idempotent_send(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    assert_int_equal(send2(s, true, 5, "a", "b"), SESSION_SEND_OK);
    assert_string_equal(f->sent, "t:a,b:b,");
    /* retries and stale batches are acknowledged, not sent again */
    assert_int_equal(send2(s, true, 5, "a", "b"), SESSION_SEND_DUPLICATE);
    assert_int_equal(send2(s, true, 4, "x", "y"), SESSION_SEND_DUPLICATE);
    assert_int_equal(f->n_sent, 2);
    assert_int_equal(send2(s, true, 6, "c", "d"), SESSION_SEND_OK);
    /* without seq: always sent */
    assert_int_equal(send2(s, false, 0, "e", "f"), SESSION_SEND_OK);
    assert_int_equal(send2(s, false, 0, "e", "f"), SESSION_SEND_OK);
    assert_int_equal(f->n_sent, 8);
    assert_int_equal(session_table_stats(x->t)->messages_out, 8);
    /* seq 0 is a valid first seq */
    struct fake_up *g;
    struct session *s2 = open_up(x, &session_policy_native, NULL, &g);
    assert_int_equal(send2(s2, true, 0, "a", "b"), SESSION_SEND_OK);
    assert_int_equal(send2(s2, true, 0, "a", "b"), SESSION_SEND_DUPLICATE);
    assert_int_equal(g->n_sent, 2);
}

static void test_send_full(void **state)
{
    struct fx *x = *state;
    x->cfg.send_buffer_bytes = 100;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    char big[200];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    /* an empty upstream buffer takes any batch */
    assert_int_equal(send2(s, true, 1, big, "b"), SESSION_SEND_OK);
    f->pending = 60;
    /* all or nothing: refused batches are not partly sent, and their seq
     * is not consumed */
    assert_int_equal(send2(s, true, 2, big, "b"), SESSION_SEND_FULL);
    assert_int_equal(f->n_sent, 2);
    f->pending = 0;
    assert_int_equal(send2(s, true, 2, big, "b"), SESSION_SEND_OK);
    assert_int_equal(f->n_sent, 4);
}

static void test_ack_edges(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    /* nothing handed out yet: only 0 is a valid ack */
    assert_int_equal(session_ack(s, 0), 0);
    assert_int_equal(session_ack(s, 1), GW_EINVAL);
    up_msg(f, false, "a");
    up_msg(f, false, "b");
    up_msg(f, false, "c");
    assert_int_equal(session_ack(s, 4), GW_EINVAL);
    assert_int_equal(session_acked(s), 0);
    assert_int_equal(qcount(s), 3);
    assert_int_equal(session_ack(s, 2), 0);
    assert_int_equal(session_acked(s), 2);
    assert_int_equal(qcount(s), 1);
    /* going back is harmless and does not lower the ack */
    assert_int_equal(session_ack(s, 1), 0);
    assert_int_equal(session_ack(s, 2), 0);
    assert_int_equal(session_acked(s), 2);
    assert_int_equal(qcount(s), 1);
    /* acknowledged messages are never reported lost */
    uint64_t from, to;
    assert_false(session_lost_since(s, 0, &from, &to));
    assert_int_equal(session_ack(s, 3), 0);
    assert_int_equal(qcount(s), 0);
    assert_int_equal(session_table_stats(x->t)->buffered_bytes, 0);
}

static void test_max_lifetime(void **state)
{
    struct fx *x = *state;
    x->cfg.max_lifetime_ms = 30;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    struct tsink k;
    ts_init(&k);
    session_attach(s, &k.k);
    up_msg(f, false, "kept");
    run_ms(x, 60);
    assert_int_equal(f->close_calls, 1);
    assert_int_equal(f->close_code, WS_CLOSE_GOING_AWAY);
    assert_string_equal(f->close_reason, "session lifetime reached");
    assert_int_equal(session_state(s), SESSION_CLOSED);
    assert_string_equal(session_close_reason(s), "session lifetime reached");
    assert_int_equal(k.wakes, 2);
    assert_int_equal(qcount(s), 1); /* still delivered before the close */
    /* the upstream's own close code does not replace the gateway's */
    up_closed(f, WS_CLOSE_NORMAL, "whatever", WS_FAIL_NONE, NULL);
    assert_int_equal(session_close_code(s), WS_CLOSE_GOING_AWAY);
    session_detach(s, &k.k);
}

static void test_binary_policies(void **state)
{
    struct fx *x = *state;
    start(x);
    struct session_policy pol = sockjs_pol;
    struct fake_up *f;

    pol.binary = SESSION_BINARY_DROP;
    struct session *s = open_up(x, &pol, "d", &f);
    up_msg(f, true, "bin");
    up_msg(f, false, "txt");
    assert_int_equal(qcount(s), 1);
    assert_int_equal(session_table_stats(x->t)->binary_dropped, 1);

    pol.binary = SESSION_BINARY_CLOSE;
    s = open_up(x, &pol, "c", &f);
    up_msg(f, true, "bin");
    assert_int_equal(f->close_code, WS_CLOSE_UNSUPPORTED);
    assert_int_equal(session_state(s), SESSION_CLOSED);
    assert_int_equal(qcount(s), 0);

    pol.binary = SESSION_BINARY_PASS;
    s = open_up(x, &pol, "p", &f);
    up_msg(f, true, "bin");
    struct sq_msg m;
    size_t pos = 0, off = 0;
    assert_true(session_queue_next(session_queue(s), &pos, &off, &m));
    assert_true(m.binary);
    assert_int_equal(f->close_calls, 0);
}

static void test_attach_replace_and_browser_close(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    struct tsink a, b;
    ts_init(&a);
    ts_init(&b);
    session_attach(s, &a.k);
    assert_true(session_receiving(s));
    session_attach(s, &b.k);
    assert_int_equal(a.detaches, 1);
    assert_int_equal(a.why, SESSION_DETACH_REPLACED);
    assert_null(a.k.session);
    session_detach(s, &a.k); /* stale: no effect */
    assert_ptr_equal(b.k.session, s);
    session_close_by_browser(s);
    assert_int_equal(b.detaches, 1);
    assert_int_equal(b.why, SESSION_DETACH_CLOSING);
    assert_int_equal(f->close_code, WS_CLOSE_NORMAL);
    assert_string_equal(f->close_reason, "closed by browser");
    assert_int_equal(session_state(s), SESSION_FINISHED);
    session_close_by_browser(s); /* idempotent */
    assert_int_equal(f->close_calls, 1);
}

static void test_abort_open(void **state)
{
    struct fx *x = *state;
    start(x);
    struct session *s = open_on(x, &session_policy_native, &x->route, NULL);
    char id[SESSION_ID_LEN + 1];
    memcpy(id, session_id(s), sizeof id);
    struct fake_up *f = g_last;
    session_abort_open(s);
    /* The id is forgotten at once, but the connection is not cut before
     * its 101 (the upstream would see 1006): it finishes opening and is
     * then closed with 1001. */
    assert_null(session_find(x->t, id, SESSION_ID_LEN));
    assert_int_equal(f->close_calls, 0);
    run_ms(x, 5);
    assert_int_equal(g_freed, 0);
    up_open(f);
    assert_int_equal(x->opener.opened, 0);
    assert_int_equal(f->close_calls, 1);
    assert_int_equal(f->close_code, WS_CLOSE_GOING_AWAY);
    assert_string_equal(f->close_reason, "browser went away");
    assert_null(session_find(x->t, id, SESSION_ID_LEN));
    up_closed(f, WS_CLOSE_GOING_AWAY, "browser went away", WS_FAIL_NONE, NULL);
    run_ms(x, 5);
    assert_int_equal(g_freed, 1);
    assert_int_equal(session_table_stats(x->t)->sessions, 0);
    assert_int_equal(session_table_stats(x->t)->tombstones, 0);

    /* abandoned, then the upstream fails to open: simply released */
    s = open_on(x, &session_policy_native, &x->route, NULL);
    f = g_last;
    session_abort_open(s);
    up_closed(f, WS_CLOSE_ABNORMAL, NULL, WS_FAIL_IO, "refused");
    run_ms(x, 5);
    assert_int_equal(g_freed, 2);
    assert_int_equal(session_table_stats(x->t)->sessions, 0);
    assert_int_equal(x->opener.opened, 0);
}

static void test_limits_and_connect_failure(void **state)
{
    struct fx *x = *state;
    x->cfg.max_sessions = 3;
    x->cfg.max_sessions_per_client = 2;
    start(x);
    open_on(x, &session_policy_native, &x->route, NULL);
    open_on(x, &session_policy_native, &x->route, NULL);
    struct session_open_params p = { .route = &x->route,
                                     .client_addr = "192.0.2.1" };
    struct session *s = NULL;
    assert_int_equal(session_open(x->t, &session_policy_native, &p, &s),
                     SESSION_OPEN_CLIENT_FULL);
    p.client_addr = "192.0.2.2";
    g_connect_rc = GW_EIO;
    assert_int_equal(session_open(x->t, &session_policy_native, &p, &s),
                     SESSION_OPEN_FAILED);
    assert_int_equal(session_table_stats(x->t)->sessions, 2);
    g_connect_rc = 0;
    assert_int_equal(session_open(x->t, &session_policy_native, &p, &s),
                     SESSION_OPEN_OK);
    p.client_addr = "192.0.2.3";
    assert_int_equal(session_open(x->t, &session_policy_native, &p, &s),
                     SESSION_OPEN_FULL);
}

static void test_shutdown_and_free_with_opener(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    open_up(x, &session_policy_native, NULL, &f);
    x->opener.opened = 0;
    open_on(x, &session_policy_native, &x->route, NULL); /* still opening */
    assert_int_equal(session_table_shutdown(x->t), 2);
    assert_int_equal(f->close_code, WS_CLOSE_GOING_AWAY);
    assert_string_equal(f->close_reason, "gateway shutting down");
    session_table_free(x->t);
    x->t = NULL;
    /* the waiting opener is told, and every upstream freed */
    assert_int_equal(x->opener.opened, 1);
    assert_true(x->opener.open_failed);
    assert_int_equal(g_freed, 2);
}

/* session_table_clear: every session gone at once (live, tombstone,
 * opening, a reaped one whose upstream is still closing), upstreams freed,
 * the opener told; the table keeps working for new sessions. */
static void test_clear(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f1, *f2;
    struct session *s1 = open_up(x, &session_policy_native, NULL, &f1);
    char id1[SESSION_ID_LEN + 1];
    memcpy(id1, session_id(s1), sizeof id1);
    up_msg(f1, false, "queued");
    struct session *s2 = open_up(x, &session_policy_native, NULL, &f2);
    session_close_by_browser(s2);
    up_closed(f2, WS_CLOSE_NORMAL, "", WS_FAIL_NONE, NULL); /* a tombstone */
    struct fake_up *f3;
    open_up(x, &sockjs_pol, "reaped", &f3);
    session_end(session_find_client(x->t, &x->route, "reaped", 6),
                WS_CLOSE_GOING_AWAY, "gone"); /* unlinked, upstream closing */
    x->opener.opened = 0;
    open_on(x, &session_policy_native, &x->route, NULL); /* still opening */
    const struct session_stats *st = session_table_stats(x->t);
    assert_true(st->sessions + st->tombstones >= 3);
    session_table_clear(x->t);
    assert_int_equal(st->sessions, 0);
    assert_int_equal(st->tombstones, 0);
    assert_int_equal(st->buffered_bytes, 0);
    assert_int_equal(g_freed, g_created); /* upstreams freed now */
    assert_int_equal(x->opener.opened, 1);
    assert_true(x->opener.open_failed);
    assert_null(session_find(x->t, id1, SESSION_ID_LEN));
    assert_null(session_find_client(x->t, &x->route, "reaped", 6));
    run_ms(x, 10); /* nothing of them left on the loop */
    /* the table goes on: a new session opens and relays */
    x->opener.opened = 0;
    struct fake_up *f4;
    struct session *s4 = open_up(x, &session_policy_native, NULL, &f4);
    assert_int_equal(x->opener.opened, 1);
    assert_ptr_equal(session_find(x->t, session_id(s4), SESSION_ID_LEN), s4);
    assert_int_equal(st->sessions, 1);
}

/* After a burst the freed memory is given back once, a second after the
 * live sessions fell to half of their peak; a smaller fall does not. */
static void test_trim_after_burst(void **state)
{
    struct fx *x = *state;
    x->cfg.max_sessions = 400;
    x->cfg.max_sessions_per_client = 400;
    start(x);
    enum { N = 300 };
    struct session *s[N];
    struct fake_up *f[N];
    for (int i = 0; i < N; i++)
        s[i] = open_up(x, &session_policy_native, NULL, &f[i]);
    const struct session_stats *st = session_table_stats(x->t);
    for (int i = 0; i < 140; i++) { /* 160 left: more than half */
        session_close_by_browser(s[i]);
        up_closed(f[i], WS_CLOSE_NORMAL, "", WS_FAIL_NONE, NULL);
    }
    run_ms(x, 1200);
    assert_int_equal(st->memory_trims, 0);
    for (int i = 140; i < 160; i++) { /* 140 left: under half of 300 */
        session_close_by_browser(s[i]);
        up_closed(f[i], WS_CLOSE_NORMAL, "", WS_FAIL_NONE, NULL);
    }
    assert_int_equal(st->memory_trims, 0); /* not inside the closing */
    run_ms(x, 1200);
    assert_int_equal(st->memory_trims, 1);
    for (int i = 160; i < N; i++) { /* from 140: below the minimum peak */
        session_close_by_browser(s[i]);
        up_closed(f[i], WS_CLOSE_NORMAL, "", WS_FAIL_NONE, NULL);
    }
    run_ms(x, 1200);
    assert_int_equal(st->memory_trims, 1);
}

/* State of the native session id, or -1 once it is gone (404). */
static int state_of(struct fx *x, const char *id)
{
    struct session *s = session_find(x->t, id, SESSION_ID_LEN);
    return s ? (int)session_state(s) : -1;
}

/* Timing: upper bounds ("not yet") keep a wide margin, because the tests
 * run on loaded machines; lower bounds are exact (timers fire in order). */
static void test_idle_timer_follows_sink(void **state)
{
    struct fx *x = *state;
    x->cfg.idle_timeout_ms = 1000;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    char id[SESSION_ID_LEN + 1];
    memcpy(id, session_id(s), sizeof id);
    struct tsink k;
    ts_init(&k);
    /* a waiting request keeps the session alive however long it waits */
    session_attach(s, &k.k);
    run_ms(x, 1300);
    assert_int_equal(state_of(x, id), SESSION_OPEN);
    /* it ends: the idle period starts; browser activity restarts it */
    session_detach(s, &k.k);
    assert_false(session_receiving(s));
    run_ms(x, 400);
    assert_int_equal(send2(s, false, 0, "a", "b"), SESSION_SEND_OK);
    run_ms(x, 400);
    session_touch(s);
    run_ms(x, 400);
    assert_int_equal(session_ack(s, 0), 0);
    run_ms(x, 400);
    assert_int_equal(state_of(x, id), SESSION_OPEN);
    assert_int_equal(f->close_calls, 0);
    run_ms(x, 1000);
    assert_int_equal(state_of(x, id), SESSION_FINISHED);
    assert_int_equal(f->close_calls, 1);
}

static void test_per_session_idle_period(void **state)
{
    struct fx *x = *state;
    x->cfg.idle_timeout_ms = 60000;
    start(x);
    struct session_policy pol = session_policy_native;
    pol.idle_ms = 500;
    struct fake_up *f;
    struct session *s = open_up(x, &pol, NULL, &f);
    char id[SESSION_ID_LEN + 1];
    memcpy(id, session_id(s), sizeof id);
    run_ms(x, 750);
    assert_int_equal(state_of(x, id), SESSION_FINISHED);
    assert_int_equal(f->close_code, WS_CLOSE_GOING_AWAY);
    /* the tombstone lasts the session's period too */
    run_ms(x, 500);
    assert_int_equal(state_of(x, id), -1);
}

/* The native parser's envelope seen as a session batch: order, types,
 * seq, and more messages than the view holds inline. */
static void test_envelope_batch(void **state)
{
    struct fx *x = *state;
    start(x);
    struct fake_up *f;
    struct session *s = open_up(x, &session_policy_native, NULL, &f);
    char body[1024] = "{\"seq\":7,\"messages\":[";
    char expect[512] = "";
    int n = ENVELOPE_BATCH_INLINE + 4;
    for (int i = 0; i < n; i++) {
        char m[32];
        char e[16];
        if (i == 3) {
            snprintf(m, sizeof m, "{\"binary\":\"Ymlu\"},");
            snprintf(e, sizeof e, "b:bin,");
        } else {
            snprintf(m, sizeof m, "\"m%d\",", i);
            snprintf(e, sizeof e, "t:m%d,", i);
        }
        strcat(expect, e);
        strcat(body, m);
    }
    body[strlen(body) - 1] = 0;
    strcat(body, "]}");
    struct envelope env = {0};
    struct gw_error err = {0};
    assert_int_equal(envelope_parse(&env, body, strlen(body), 100, &err), 0);
    struct envelope_batch eb;
    assert_int_equal(envelope_batch_init(&eb, &env), 0);
    assert_non_null(eb.heap);
    assert_int_equal(eb.b.n, (size_t)n);
    assert_true(eb.b.has_seq);
    assert_int_equal(eb.b.seq, 7);
    assert_true(eb.b.msgs[3].binary);
    assert_int_equal(eb.b.msgs[3].len, 3);
    assert_memory_equal(eb.b.msgs[3].data, "bin", 3);
    assert_int_equal(session_send(s, &eb.b), SESSION_SEND_OK);
    envelope_batch_clear(&eb);
    envelope_clear(&env);
    assert_int_equal(f->n_sent, n);
    assert_string_equal(f->sent, expect);
    /* small batches use the inline array */
    assert_int_equal(envelope_parse(&env, "{\"messages\":[\"x\"]}", 18, 100,
                                    &err), 0);
    assert_int_equal(envelope_batch_init(&eb, &env), 0);
    assert_null(eb.heap);
    assert_false(eb.b.has_seq);
    assert_int_equal(session_send(s, &eb.b), SESSION_SEND_OK);
    envelope_batch_clear(&eb);
    envelope_clear(&env);
    assert_int_equal(f->n_sent, n + 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_relay),
        T(test_read_end_wakes),
        T(test_overflow_pause),
        T(test_timeouts_unavailable),
        T(test_overflow_pause_keeps_written),
        T(test_overflow_drop_oldest_written_first),
        T(test_overflow_drop_oldest),
        T(test_overflow_close),
        T(test_global_budget),
        T(test_global_budget_drop_oldest_never_evicts),
        T(test_tombstone_410_then_404),
        T(test_closed_unfetched_becomes_tombstone),
        T(test_failed_open_forget),
        T(test_failed_open_tombstone),
        T(test_reap_client_named),
        T(test_reap_closed_unfetched),
        T(test_namespaces),
        T(test_reload_keeps_session_config),
        T(test_private_end),
        T(test_interrupt),
        T(test_close_ordering),
        T(test_failure_detail_as_reason),
        T(test_idempotent_send),
        T(test_send_full),
        T(test_ack_edges),
        T(test_max_lifetime),
        T(test_binary_policies),
        T(test_attach_replace_and_browser_close),
        T(test_abort_open),
        T(test_limits_and_connect_failure),
        T(test_shutdown_and_free_with_opener),
        T(test_clear),
        T(test_trim_after_burst),
        T(test_idle_timer_follows_sink),
        T(test_per_session_idle_period),
        T(test_envelope_batch),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}

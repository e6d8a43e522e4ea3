/* Unit tests for session_queue: seq numbering, acks, eviction, the written
 * mark, compaction and release of memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "session_queue.h"

static void push_str(struct session_queue *q, const char *s, bool bin)
{
    assert_int_equal(session_queue_push(q, bin, (const uint8_t *)s, strlen(s)), 0);
}

/* Collect "seq:payload," for every message from index start. */
static void dump(const struct session_queue *q, size_t start, char *out, size_t cap)
{
    size_t pos = 0, off = 0;
    struct sq_msg m;
    out[0] = 0;
    /* skip to index start: the iterator carries the byte offset along */
    for (size_t i = 0; i < start && session_queue_next(q, &pos, &off, &m); i++)
        ;
    while (session_queue_next(q, &pos, &off, &m)) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%llu%s:%.*s,", (unsigned long long)m.seq,
                 m.binary ? "b" : "", (int)m.len, (const char *)m.data);
        strncat(out, tmp, cap - strlen(out) - 1);
    }
}

static void test_seq_and_ack(void **state)
{
    (void)state;
    struct session_queue q;
    char out[512];
    session_queue_init(&q);
    assert_int_equal(q.next_seq, 1);
    push_str(&q, "a", false);
    push_str(&q, "bb", true);
    push_str(&q, "", false);
    assert_int_equal(session_queue_count(&q), 3);
    assert_int_equal(q.bytes, 3);
    dump(&q, 0, out, sizeof out);
    assert_string_equal(out, "1:a,2b:bb,3:,");
    assert_int_equal(session_queue_ack(&q, 0), 0);
    assert_int_equal(session_queue_ack(&q, 1), 1);
    dump(&q, 0, out, sizeof out);
    assert_string_equal(out, "2b:bb,3:,");
    /* acking again is harmless; acking everything empties */
    assert_int_equal(session_queue_ack(&q, 1), 0);
    assert_int_equal(session_queue_ack(&q, 3), 2);
    assert_int_equal(session_queue_count(&q), 0);
    assert_int_equal(q.bytes, 0);
    /* numbering goes on after the queue emptied: never repeats */
    push_str(&q, "x", false);
    dump(&q, 0, out, sizeof out);
    assert_string_equal(out, "4:x,");
    assert_int_equal(q.head_seq, 4);
    session_queue_clear(&q);
}

static void test_written_mark_and_eviction(void **state)
{
    (void)state;
    struct session_queue q;
    char out[512];
    session_queue_init(&q);
    push_str(&q, "one", false);
    push_str(&q, "two", false);
    session_queue_mark_written(&q);
    assert_int_equal(q.written, 2);
    assert_int_equal(q.written_bytes, 6);
    push_str(&q, "three", false);
    /* only the unwritten part from the mark */
    size_t pos = q.written, off = q.written_bytes;
    struct sq_msg m;
    assert_true(session_queue_next(&q, &pos, &off, &m));
    assert_int_equal(m.seq, 3);
    assert_memory_equal(m.data, "three", 5);
    assert_false(session_queue_next(&q, &pos, &off, &m));
    /* evicting the front keeps the mark consistent */
    assert_int_equal(session_queue_drop_front(&q), 1);
    assert_int_equal(q.written, 1);
    assert_int_equal(q.written_bytes, 3);
    dump(&q, 0, out, sizeof out);
    assert_string_equal(out, "2:two,3:three,");
    session_queue_unmark_written(&q);
    assert_int_equal(q.written, 0);
    assert_int_equal(session_queue_drop_front(&q), 2);
    assert_int_equal(session_queue_drop_front(&q), 3);
    assert_int_equal(session_queue_drop_front(&q), 0);
    session_queue_clear(&q);
}

/* Many pushes and acks: compaction must preserve every payload byte. */
static void test_compaction_stress(void **state)
{
    (void)state;
    struct session_queue q;
    session_queue_init(&q);
    uint64_t acked = 0;
    for (uint64_t i = 1; i <= 20000; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "m%llu", (unsigned long long)i);
        assert_int_equal(session_queue_push(&q, i % 3 == 0, (uint8_t *)msg, (size_t)n), 0);
        if (i % 7 == 0) {
            acked = i - 3;
            session_queue_ack(&q, acked);
        }
        /* check the whole queue now and then */
        if (i % 997 == 0) {
            size_t pos = 0, off = 0;
            struct sq_msg m;
            uint64_t expect = acked + 1;
            while (session_queue_next(&q, &pos, &off, &m)) {
                char want[32];
                int wn = snprintf(want, sizeof want, "m%llu", (unsigned long long)expect);
                assert_int_equal(m.seq, expect);
                assert_int_equal(m.len, (size_t)wn);
                assert_memory_equal(m.data, want, (size_t)wn);
                assert_int_equal(m.binary, expect % 3 == 0);
                expect++;
            }
            assert_int_equal(expect, i + 1);
        }
    }
    session_queue_clear(&q);
}

static void test_memory_released_when_empty(void **state)
{
    (void)state;
    struct session_queue q;
    session_queue_init(&q);
    uint8_t big[10000];
    memset(big, 'z', sizeof big);
    assert_int_equal(session_queue_push(&q, true, big, sizeof big), 0);
    assert_true(q.data_cap >= sizeof big);
    session_queue_ack(&q, 1);
    assert_null(q.data);
    assert_int_equal(q.data_cap, 0);
    /* a small queue keeps its buffer for reuse */
    push_str(&q, "small", false);
    session_queue_ack(&q, 2);
    assert_non_null(q.data);
    session_queue_clear(&q);
    assert_null(q.data);
    assert_int_equal(q.next_seq, 3); /* clear keeps the numbering */
}

static void test_too_big(void **state)
{
    (void)state;
    struct session_queue q;
    session_queue_init(&q);
    assert_int_equal(session_queue_push(&q, false, (const uint8_t *)"", (size_t)SQ_MAX_MESSAGE + 1),
                     GW_ETOOBIG);
    assert_int_equal(session_queue_count(&q), 0);
    session_queue_clear(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_and_ack),
        cmocka_unit_test(test_written_mark_and_eviction),
        cmocka_unit_test(test_compaction_stress),
        cmocka_unit_test(test_memory_released_when_empty),
        cmocka_unit_test(test_too_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

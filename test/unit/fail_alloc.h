/*
 * fail_alloc.h - libevent's allocator for unit tests that make every
 * allocation of an operation fail once in turn: install it with
 * event_set_mem_functions(fail_malloc, fail_realloc, free) before any other
 * libevent call; then set g_alloc_count = 0 and g_fail_at = k to fail the
 * k-th allocation from there (0: never). g_alloc_count >= k afterwards
 * means the k-th allocation happened (and failed).
 */
#ifndef TEST_FAIL_ALLOC_H
#define TEST_FAIL_ALLOC_H

#include <stdlib.h>

static long g_alloc_count, g_fail_at;

static void *fail_malloc(size_t n)
{
    if (g_fail_at && ++g_alloc_count == g_fail_at)
        return NULL;
    return malloc(n);
}

static void *fail_realloc(void *p, size_t n)
{
    if (g_fail_at && ++g_alloc_count == g_fail_at)
        return NULL;
    return realloc(p, n);
}

#endif

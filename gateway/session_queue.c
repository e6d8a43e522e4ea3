/* session_queue.c - per-session message queue toward the browser. */
#include "session_queue.h"

#include <stdlib.h>
#include <string.h>

/* Buffers that grew past this are released when the queue empties, so an
 * idle session costs (almost) nothing; smaller ones are kept for reuse. */
#define SQ_KEEP_DATA 4096
#define SQ_KEEP_META 64

void session_queue_init(struct session_queue *q)
{
    memset(q, 0, sizeof *q);
    q->head_seq = q->next_seq = 1;
}

void session_queue_clear(struct session_queue *q)
{
    free(q->data);
    free(q->meta);
    uint64_t next = q->next_seq;
    memset(q, 0, sizeof *q);
    q->head_seq = q->next_seq = next ? next : 1;
}

/* Called when the queue is empty: rewind, and drop big buffers. */
static void rewind_empty(struct session_queue *q)
{
    q->data_head = q->data_len = 0;
    q->meta_head = q->meta_len = 0;
    q->written = q->written_bytes = 0;
    if (q->data_cap > SQ_KEEP_DATA) {
        free(q->data);
        q->data = NULL;
        q->data_cap = 0;
    }
    if (q->meta_cap > SQ_KEEP_META) {
        free(q->meta);
        q->meta = NULL;
        q->meta_cap = 0;
    }
}

/* Make room for n more bytes, compacting first when the dead front is at
 * least half the buffer (amortised O(1) per byte). */
static int reserve_data(struct session_queue *q, size_t n)
{
    if (q->data_head && (q->data_head >= q->data_len - q->data_head ||
                         q->data_len + n > q->data_cap)) {
        memmove(q->data, q->data + q->data_head, q->data_len - q->data_head);
        q->data_len -= q->data_head;
        q->data_head = 0;
    }
    if (q->data_len + n <= q->data_cap)
        return 0;
    size_t cap = q->data_cap ? q->data_cap : 256;
    while (cap < q->data_len + n) {
        if (cap > SIZE_MAX / 2)
            return GW_ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(q->data, cap);
    if (!p)
        return GW_ENOMEM;
    q->data = p;
    q->data_cap = cap;
    return 0;
}

static int reserve_meta(struct session_queue *q)
{
    if (q->meta_head && (q->meta_head >= q->meta_len - q->meta_head ||
                         q->meta_len == q->meta_cap)) {
        memmove(q->meta, q->meta + q->meta_head,
                (q->meta_len - q->meta_head) * sizeof *q->meta);
        q->meta_len -= q->meta_head;
        q->meta_head = 0;
    }
    if (q->meta_len < q->meta_cap)
        return 0;
    size_t cap = q->meta_cap ? q->meta_cap * 2 : 8;
    uint32_t *p = realloc(q->meta, cap * sizeof *p);
    if (!p)
        return GW_ENOMEM;
    q->meta = p;
    q->meta_cap = cap;
    return 0;
}

int session_queue_push(struct session_queue *q, bool binary,
                       const uint8_t *data, size_t len)
{
    if (len > SQ_MAX_MESSAGE)
        return GW_ETOOBIG;
    if (reserve_data(q, len) < 0 || reserve_meta(q) < 0)
        return GW_ENOMEM;
    if (len)
        memcpy(q->data + q->data_len, data, len);
    q->data_len += len;
    q->meta[q->meta_len++] = (uint32_t)len | (binary ? SQ_BINARY : 0);
    q->bytes += len;
    q->next_seq++;
    return 0;
}

uint64_t session_queue_drop_front(struct session_queue *q)
{
    if (session_queue_count(q) == 0)
        return 0;
    size_t len = q->meta[q->meta_head] & SQ_MAX_MESSAGE;
    uint64_t seq = q->head_seq;
    q->meta_head++;
    q->data_head += len;
    q->bytes -= len;
    q->head_seq++;
    if (q->written) {
        q->written--;
        q->written_bytes -= len;
    }
    if (session_queue_count(q) == 0)
        rewind_empty(q);
    return seq;
}

size_t session_queue_ack(struct session_queue *q, uint64_t ack)
{
    size_t n = 0;
    while (session_queue_count(q) && q->head_seq <= ack) {
        session_queue_drop_front(q);
        n++;
    }
    return n;
}

bool session_queue_next(const struct session_queue *q, size_t *pos,
                        size_t *off, struct sq_msg *m)
{
    if (*pos >= session_queue_count(q))
        return false;
    uint32_t meta = q->meta[q->meta_head + *pos];
    m->seq = q->head_seq + *pos;
    m->binary = (meta & SQ_BINARY) != 0;
    m->len = meta & SQ_MAX_MESSAGE;
    m->data = q->data + q->data_head + *off;
    (*pos)++;
    *off += m->len;
    return true;
}

void session_queue_mark_written(struct session_queue *q)
{
    q->written = session_queue_count(q);
    q->written_bytes = q->bytes;
}

void session_queue_unmark_written(struct session_queue *q)
{
    q->written = q->written_bytes = 0;
}

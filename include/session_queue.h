/*
 * session_queue.h - a session's queue of messages toward the browser.
 * Pure (no I/O). Messages carry consecutive sequence numbers; payloads are
 * stored back to back in one reusable byte buffer and the per-message
 * bookkeeping is 4 bytes, so queuing a message costs no malloc in steady
 * state (the buffers grow, are compacted as the front is acknowledged, and
 * are released when the queue empties and they had grown large).
 *
 *   [ head ... written ... len )
 *     ^ oldest unacknowledged      ^ next to write to a stream
 *
 * "written" counts messages already written to an SSE stream: they stay
 * until acknowledged (so a dropped stream can be resumed) but are the first
 * to be evicted when the buffer is full.
 */
#ifndef SESSION_QUEUE_H
#define SESSION_QUEUE_H

#include "gw_common.h"

struct session_queue {
    uint8_t *data;       /* payload bytes [data_head, data_len) */
    size_t data_head, data_len, data_cap;
    uint32_t *meta;      /* per message: length | SQ_BINARY */
    size_t meta_head, meta_len, meta_cap;
    uint64_t head_seq;   /* seq of the oldest message kept (next_seq if empty) */
    uint64_t next_seq;   /* seq the next pushed message gets (starts at 1) */
    size_t written;      /* messages from the head already written to a stream */
    size_t written_bytes;/* their payload bytes */
    size_t bytes;        /* payload bytes queued */
};

#define SQ_BINARY 0x80000000u
#define SQ_MAX_MESSAGE 0x7fffffffu

/* Zeroed struct + session_queue_init = empty queue whose first seq is 1. */
void session_queue_init(struct session_queue *q);
void session_queue_clear(struct session_queue *q);  /* frees memory */

static inline size_t session_queue_count(const struct session_queue *q)
{
    return q->meta_len - q->meta_head;
}

/* Append a message (copied). Returns 0, GW_ETOOBIG (> SQ_MAX_MESSAGE) or
 * GW_ENOMEM. Limits are the caller's business (session.c). */
int session_queue_push(struct session_queue *q, bool binary,
                       const uint8_t *data, size_t len);

/* Drop every message with seq <= ack. Returns the number dropped. */
size_t session_queue_ack(struct session_queue *q, uint64_t ack);

/* Drop the oldest message (eviction). Returns its seq, or 0 if empty. */
uint64_t session_queue_drop_front(struct session_queue *q);

/* Message i (0 = oldest kept): borrowed pointer valid until the next
 * push/ack/drop. */
struct sq_msg {
    uint64_t seq;
    bool binary;
    const uint8_t *data;
    size_t len;
};
/* Iterate: start with *pos = 0, *off = 0 (or a position and byte offset a
 * previous iteration reached, e.g. q->written / q->written_bytes); returns
 * false at the end. */
bool session_queue_next(const struct session_queue *q, size_t *pos,
                        size_t *off, struct sq_msg *m);

/* Mark every queued message as written to a stream. */
void session_queue_mark_written(struct session_queue *q);
/* Forget the written mark (a new stream replays from the head). */
void session_queue_unmark_written(struct session_queue *q);

#endif

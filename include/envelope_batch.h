/*
 * envelope_batch.h - a borrowed session_batch view of a parsed envelope,
 * so that session.h does not depend on the native parser. Small batches
 * use the view's own array, larger ones one allocation.
 */
#ifndef ENVELOPE_BATCH_H
#define ENVELOPE_BATCH_H

#include <stdlib.h>

#include "envelope.h"
#include "session.h"

#define ENVELOPE_BATCH_INLINE 16

struct envelope_batch {
    struct session_batch b;
    struct session_out_msg inline_msgs[ENVELOPE_BATCH_INLINE];
    struct session_out_msg *heap;
};

/* Fill eb from env (borrowed: env must outlive eb.b). GW_ENOMEM, or 0;
 * always envelope_batch_clear() afterwards. */
static inline int envelope_batch_init(struct envelope_batch *eb,
                                      const struct envelope *env)
{
    struct session_out_msg *m = eb->inline_msgs;
    eb->heap = NULL;
    if (env->n > ENVELOPE_BATCH_INLINE) {
        m = eb->heap = calloc(env->n, sizeof *m);
        if (!m)
            return GW_ENOMEM;
    }
    for (size_t i = 0; i < env->n; i++) {
        m[i].data = env->data.data + env->msgs[i].off;
        m[i].len = env->msgs[i].len;
        m[i].binary = env->msgs[i].binary;
    }
    eb->b = (struct session_batch){ .msgs = m, .n = env->n,
                                    .has_seq = env->has_seq, .seq = env->seq };
    return 0;
}

static inline void envelope_batch_clear(struct envelope_batch *eb)
{
    free(eb->heap);
    eb->heap = NULL;
}

#endif

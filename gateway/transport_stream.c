/* transport_stream.c - session sink ops shared by the streaming sinks. */
#include "transport_stream.h"

#include <event2/event.h>

const struct timeval *transport_common_tv(struct event_base *base, uint64_t ms,
                                          const struct timeval *fallback)
{
    struct timeval tv;
    gw_ms_to_tv(ms, &tv);
    const struct timeval *c = event_base_init_common_timeout(base, &tv);
    return c ? c : fallback;
}

void transport_stream_wake(struct session_sink *k)
{
    http_stream_wake(&((struct transport_stream *)k)->st);
}

void transport_stream_detach(struct session_sink *k,
                             enum session_detach_why why)
{
    (void)why;
    http_stream_end(&((struct transport_stream *)k)->st);
}

/* transport_stream.c - session sink ops shared by the streaming sinks. */
#include "transport_stream.h"

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

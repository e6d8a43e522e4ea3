/*
 * transport_stream.h - what every streaming sink (SSE, the SockJS
 * receiving transports, later WebSocket) starts with: its session side
 * and its browser side, so the session ops that only pass on to the
 * stream are written once.
 */
#ifndef TRANSPORT_STREAM_H
#define TRANSPORT_STREAM_H

#include "http_stream.h"
#include "session.h"

struct transport_stream {
    struct session_sink k;   /* first: the session's view */
    struct http_stream st;
};

/* The common timeout of ms on base (libevent keeps one per distinct
 * duration for the base's life, so the pointer may be kept): a session's
 * own poll_timeout or heartbeat, which a reload does not change.
 * fallback (the current config's) if libevent has no room for another. */
struct event_base;
const struct timeval *transport_common_tv(struct event_base *base, uint64_t ms,
                                          const struct timeval *fallback);

/* session_sink_ops.wake: deliver once nothing is in flight. */
void transport_stream_wake(struct session_sink *k);
/* session_sink_ops.detach: end once what is in flight has left. */
void transport_stream_detach(struct session_sink *k,
                             enum session_detach_why why);

#endif

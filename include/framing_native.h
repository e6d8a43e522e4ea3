/*
 * framing_native.h - every byte of pollgate's own protocol (v1) that is
 * not a generic error: poll batches, SSE events and the stream preamble,
 * the open reply, the send acknowledgement and the "session ended" reply.
 * The SockJS dialect's counterpart is framing_sockjs.h.
 *
 * Pure: no sockets, no libevent, no struct session. Session data comes in
 * through plain parameters, so each builder is unit-tested byte for byte
 * (test/unit/test_framing_native.c). The generic pieces (JSON string
 * escaping, base64, UTF-8 sanitising) are framing.h's.
 *
 * Every builder appends to a caller-owned gw_buf and returns 0, GW_EINVAL
 * (bad arguments), GW_ETOOBIG (the buffer's cap) or GW_ENOMEM. On error
 * the buffer is left as it was (all or nothing), so a caller never sends a
 * partial body: it fails the response instead.
 */
#ifndef FRAMING_NATIVE_H
#define FRAMING_NATIVE_H

#include "gw_common.h"

/* Messages from..to (inclusive) were evicted before the browser got them. */
struct framing_native_lost {
    uint64_t from;
    uint64_t to;
};

/* The upstream's close as the browser learns it. reason (borrowed) need
 * not be valid UTF-8: invalid sequences become U+FFFD. */
struct framing_native_close {
    uint16_t code;
    const char *reason;
    size_t reason_len;
};

/* ---------------------------------------------------------- long-poll */

/*
 * A poll response:
 *   {"messages":[<msg>,<msg>...][,"lost":{"from":A,"to":B}]
 *    [,"closed":{"code":C,"reason":"R"}]}
 * where <msg> is {"seq":N,"text":"..."} or {"seq":N,"binary":"<base64>"}.
 *
 * Built in three steps: begin, one add per message, end. The batch
 * remembers where it began; the first failure rolls the buffer back to
 * that point and sticks (later adds and end return the same code without
 * writing), so the caller may check only end's result.
 */
struct framing_native_batch {
    struct gw_buf *out;   /* borrowed */
    size_t len0;          /* out->len at begin */
    size_t n;             /* messages added */
    int err;              /* first failure, sticky */
};

int framing_native_batch_begin(struct framing_native_batch *bt,
                               struct gw_buf *out);
int framing_native_batch_add(struct framing_native_batch *bt, uint64_t seq,
                             bool binary, const uint8_t *data, size_t len);
/* lost, closed: NULL when there is nothing to report. */
int framing_native_batch_end(struct framing_native_batch *bt,
                             const struct framing_native_lost *lost,
                             const struct framing_native_close *closed);

/* One batch element {"seq":N,"text":"..."} / {"seq":N,"binary":"..."}. */
int framing_native_poll_message(struct gw_buf *out, uint64_t seq, bool binary,
                                const uint8_t *data, size_t len);

/* ---------------------------------------------------------------- SSE */

/* Some proxies and EventSource polyfills for old browsers deliver nothing
 * before ~2 KiB arrived: the stream starts with a comment this long. */
#define FRAMING_NATIVE_SSE_PADDING 2048

/* The start of a stream: ":" + padding + "\nretry: <retry_ms>\n\n". */
int framing_native_sse_preamble(struct gw_buf *out, uint64_t retry_ms);

/* A comment that keeps proxies from timing the stream out. */
#define FRAMING_NATIVE_SSE_HEARTBEAT ": heartbeat\n\n"

/*
 * One message event:
 *   id: <seq>\nevent: message|binary\ndata: <JSON string>\n\n
 * The payload is a JSON string (text) or a JSON string of base64 (binary),
 * so no payload can contain CR/LF and inject an SSE field.
 */
int framing_native_sse_message(struct gw_buf *out, uint64_t seq, bool binary,
                               const uint8_t *data, size_t len);
/* event: lost\ndata: {"from":A,"to":B}\n\n */
int framing_native_sse_lost(struct gw_buf *out,
                            const struct framing_native_lost *lost);
/* event: close\ndata: {"code":C,"reason":"R"}\n\n */
int framing_native_sse_close(struct gw_buf *out,
                             const struct framing_native_close *closed);

/* ------------------------------------------------------------ replies */

/* What POST P/sessions answers once the upstream accepted. */
struct framing_native_open {
    const char *session_id;   /* borrowed, NUL-terminated */
    uint64_t poll_timeout_s;
    uint64_t heartbeat_s;
    uint64_t idle_timeout_s;
    const char *protocol;     /* the upstream's subprotocol, or NULL */
};

/* {"session":"ID","poll_timeout":P,"heartbeat":H,"idle_timeout":I,
 *  "protocol":"X"|null} */
int framing_native_open_reply(struct gw_buf *out,
                              const struct framing_native_open *o);

/* {"ack":N}, or {"ack":null} for a send without a seq. */
int framing_native_send_ack(struct gw_buf *out, bool has_seq, uint64_t seq);

/* The 410 body for a request on an ended session:
 * {"error":"session_closed","message":"the session has ended",
 *  "code":C,"reason":"R"} */
int framing_native_gone(struct gw_buf *out,
                        const struct framing_native_close *closed);

#endif

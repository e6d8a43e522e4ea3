/*
 * ws_frame.h - RFC 6455 frame codec. Pure: no sockets, no allocation on the
 * encode path, bytes come and go through the caller (after wslay).
 *
 * Decoder: an incremental message decoder for either side. A client decoder
 * (ws_decoder_new) expects unmasked frames from a server; a server decoder
 * (ws_decoder_new_server) expects masked frames from a client and unmasks
 * them. A frame with the wrong mask bit is a protocol error (1002).
 * Feed it any split of the byte stream; it reassembles fragmented messages,
 * lets control frames interleave, validates text as UTF-8 incrementally and
 * enforces the message size limit, returning one event at a time.
 *
 * Encoder: writes a frame header (and optionally masks a payload in place)
 * into caller memory.
 */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include "gw_common.h"
#include "ws_utf8.h"  /* the codec validates text with it */

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close status codes used by pollgate. */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,     /* never on the wire */
    WS_CLOSE_ABNORMAL = 1006,      /* never on the wire */
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

/* Largest frame header: 2 + 8 (length) + 4 (mask). */
#define WS_FRAME_HEADER_MAX 14
/* Largest control frame payload. */
#define WS_CONTROL_MAX 125

/* ---------------------------------------------------------------- encoder */

/* Size of the header for a payload of len bytes. */
size_t ws_frame_header_size(uint64_t len, bool masked);

/*
 * Write a frame header into out (at least WS_FRAME_HEADER_MAX bytes).
 * mask: 4 bytes, or NULL for an unmasked frame. Uses the minimal length
 * form. Returns the header length.
 */
size_t ws_frame_write_header(uint8_t *out, bool fin, enum ws_opcode op,
                             uint64_t len, const uint8_t *mask);

/*
 * XOR data in place with mask, starting at mask position (offset % 4), so
 * a payload can be masked in pieces. Returns the next offset.
 */
size_t ws_frame_mask(uint8_t *data, size_t len, const uint8_t mask[4],
                     size_t offset);
/* The same, writing data ^ mask to dst (dst may equal data). */
size_t ws_frame_mask_copy(uint8_t *dst, const uint8_t *data, size_t len,
                          const uint8_t mask[4], size_t offset);

/*
 * Build a close payload (2-byte code + reason, truncated to fit 125 bytes
 * on a UTF-8 boundary) into out[WS_CONTROL_MAX]. code 0 means "no status"
 * (empty payload). Returns the payload length.
 */
size_t ws_close_payload(uint8_t *out, uint16_t code, const char *reason,
                        size_t reason_len);

/* May this code appear in a received close frame (RFC 6455 7.4)? */
bool ws_close_code_valid(uint16_t code);

/* ---------------------------------------------------------------- decoder */

enum ws_event_type {
    WS_EV_TEXT = 1,     /* a complete, valid UTF-8 text message */
    WS_EV_BINARY,       /* a complete binary message */
    WS_EV_PING,         /* payload: ping data (<= 125 bytes) */
    WS_EV_PONG,
    WS_EV_CLOSE,        /* close_code/reason filled (code 1005 if empty) */
};

struct ws_event {
    enum ws_event_type type;
    const uint8_t *data;  /* borrowed: valid until the next ws_decoder call */
    size_t len;
    uint16_t close_code;          /* WS_EV_CLOSE only */
    const char *close_reason;     /* WS_EV_CLOSE only, borrowed, UTF-8 */
    size_t close_reason_len;
};

struct ws_decoder;  /* opaque */

/*
 * New decoder. max_message: largest reassembled message payload accepted
 * (0 = unlimited; pollgate always sets it). Returns NULL on ENOMEM.
 */
struct ws_decoder *ws_decoder_new(uint64_t max_message);
/* The same for the server side: every frame must be masked (RFC 6455 5.1,
 * 1002 "unmasked frame from client" otherwise). Events carry the unmasked
 * payload; every payload is copied once (unmasked) into the decoder's
 * buffers, as the input is const. */
struct ws_decoder *ws_decoder_new_server(uint64_t max_message);
void ws_decoder_free(struct ws_decoder *d);

/*
 * Feed bytes. Consumes from data[0..len) and sets *consumed to how many
 * bytes were used (always set, also on error).
 *  - returns 1 and fills *ev when an event is complete; the caller handles
 *    it and calls again with the unconsumed rest (which may be empty);
 *  - returns GW_EAGAIN when all input was consumed and more is needed;
 *  - returns a negative error (GW_EPROTO, GW_EUTF8, GW_ETOOBIG, GW_ENOMEM)
 *    when the stream is invalid; ws_decoder_close_code() then tells which
 *    close code to send (1002, 1007, 1009, 1011) and ws_decoder_error()
 *    a short reason. The decoder stays failed afterwards.
 * After a WS_EV_CLOSE event, further input is a protocol error.
 */
int ws_decoder_feed(struct ws_decoder *d, const uint8_t *data, size_t len,
                    size_t *consumed, struct ws_event *ev);

uint16_t ws_decoder_close_code(const struct ws_decoder *d);
const char *ws_decoder_error(const struct ws_decoder *d);

/*
 * Release the reassembly buffer if no fragmented message is in progress
 * (otherwise a no-op). The decoder keeps that buffer (up to 64 KiB) from
 * message to message to avoid a malloc per message; call this when a
 * connection goes quiet to bring its memory back to the bare struct.
 * Invalidates the data of the last event, like any ws_decoder call.
 * (Addition to the original interface; NULL is a no-op.)
 */
void ws_decoder_trim(struct ws_decoder *d);

#endif

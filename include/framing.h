/*
 * framing.h - pure formatters for what pollgate writes to browsers:
 * JSON string escaping (pollgate protocol and SockJS flavours), base64
 * and UTF-8 sanitising, shared by framing_native (pollgate's own protocol)
 * and framing_sockjs. No sockets, no allocation beyond the
 * caller's gw_buf (or evbuffer via gw_buf-compatible append callbacks).
 *
 * Performance matters here (one call per delivered message): escape by
 * scanning runs of plain bytes and appending them in one go, no JSON tree.
 */
#ifndef FRAMING_H
#define FRAMING_H

#include "gw_common.h"

enum framing_json_flavour {
    /* RFC 8259 minimal escaping plus U+2028/U+2029 (so the output is also
     * valid JavaScript) and '/' after '<' ("</script>" safe). Control
     * characters as \n, \r, \t, \b, \f or \u00xx; invalid UTF-8 never
     * reaches here (text is validated upstream). */
    FRAMING_JSON_STD = 0,
    /* SockJS: additionally \uXXXX (lowercase hex) for U+200C-U+200F,
     * U+2028-U+202F, U+2060-U+206F, U+FFF0-U+FFFF, and every control
     * character U+0000-U+001F (as \u00xx). */
    FRAMING_JSON_SOCKJS,
};

/*
 * Append data (valid UTF-8) as a JSON string literal, quotes included.
 * Returns 0, GW_ETOOBIG (buffer cap) or GW_ENOMEM.
 */
int framing_json_string(struct gw_buf *out, const uint8_t *data, size_t len,
                        enum framing_json_flavour fl);

/* Append s with every invalid UTF-8 sequence replaced by U+FFFD (one per
 * bad sequence, as WHATWG decoders do): for close reasons and other text
 * that did not come through a validating path. */
int framing_utf8_sanitize(struct gw_buf *out, const uint8_t *s, size_t n);
/* s itself when it is valid UTF-8; otherwise a sanitized copy written to
 * tmp (the caller frees tmp), with *len updated. NULL on ENOMEM. */
const uint8_t *framing_utf8_clean(struct gw_buf *tmp, const uint8_t *s,
                                  size_t *len);

/* Length of base64 (standard alphabet, padded) for n input bytes. */
size_t framing_base64_len(size_t n);
/* Append base64 of data (no quotes). */
int framing_base64_append(struct gw_buf *out, const uint8_t *data, size_t len);
/*
 * Strict base64 decode (standard alphabet, padding required when the
 * length is not a multiple of 4, no whitespace, no junk after padding).
 * Appends decoded bytes to out. GW_EINVAL on any bad input.
 */
int framing_base64_decode(struct gw_buf *out, const char *s, size_t len);

#endif

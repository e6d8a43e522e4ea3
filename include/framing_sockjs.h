/*
 * framing_sockjs.h - pure formatters and parsers for the SockJS protocol
 * (version 0.3, as its reference server behaves): frames, per-transport
 * wrapping and preludes, the iframe page, callback validation, and the
 * bodies of xhr_send / jsonp_send. No I/O.
 */
#ifndef FRAMING_SOCKJS_H
#define FRAMING_SOCKJS_H

#include "gw_common.h"
#include "envelope.h"

/* ---------------------------------------------------------------- frames */

int framing_sockjs_frame_open(struct gw_buf *out);        /* "o" */
int framing_sockjs_frame_heartbeat(struct gw_buf *out);   /* "h" */
/* c[code,"reason"] (reason escaped as SockJS does; invalid UTF-8 replaced
 * by U+FFFD). */
int framing_sockjs_frame_close(struct gw_buf *out, uint16_t code, const char *reason,
                       size_t reason_len);
/* a[ "m1","m2" ]: begin, one item per message (first = true for the first),
 * end. Items are JSON strings with SockJS escaping
 * (framing_json_string(FRAMING_JSON_SOCKJS), then \b \t \n \f \r in their
 * short forms as the reference writes them). data must be valid UTF-8
 * (ws_client has checked upstream text). Every function here appends all
 * or nothing and returns 0, GW_EINVAL, GW_ETOOBIG (out->max) or
 * GW_ENOMEM. */
int framing_sockjs_frame_array_begin(struct gw_buf *out);
int framing_sockjs_frame_array_item(struct gw_buf *out, bool first,
                            const uint8_t *data, size_t len);
int framing_sockjs_frame_array_end(struct gw_buf *out);

/* ------------------------------------------------------------- transports */

enum framing_sockjs_wrap {
    FRAMING_SOCKJS_WRAP_XHR = 0,      /* frame "\n" (xhr, xhr_streaming) */
    FRAMING_SOCKJS_WRAP_EVENTSOURCE,  /* "data: " frame "\r\n\r\n", with '%' CR LF
                                 NUL in frame as %25 %0D %0A %00 (the
                                 client runs decodeURI on each event) */
    FRAMING_SOCKJS_WRAP_HTMLFILE,     /* "<script>\np(" JSON(frame) ");\n</script>\r\n"
                                 ('<' in the JSON string as \u003c) */
    FRAMING_SOCKJS_WRAP_JSONP,        /* "/" "**" "/" cb "(" JSON(frame) ");\r\n" */
};

/* Append frame (len bytes) wrapped for transport w. callback is used by
 * JSONP only (must be valid: framing_sockjs_callback_valid, else GW_EINVAL). */
int framing_sockjs_wrap(struct gw_buf *out, enum framing_sockjs_wrap w, const char *callback,
                const uint8_t *frame, size_t len);

/* What a streaming response starts with:
 *  xhr_streaming: 2048 'h' then "\n"
 *  eventsource:   "\r\n"
 *  htmlfile:      an HTML page (1023 + strlen(callback) bytes, so at least
 *                 1 KiB) that defines p() to call parent.<callback>, then
 *                 "\r\n\r\n"; GW_EINVAL for an invalid callback */
int framing_sockjs_prelude_xhr_streaming(struct gw_buf *out);
int framing_sockjs_prelude_eventsource(struct gw_buf *out);
int framing_sockjs_prelude_htmlfile(struct gw_buf *out, const char *callback);

/* A JSONP callback name: 1-32 characters of [a-zA-Z0-9_.-]. */
bool framing_sockjs_callback_valid(const char *cb);

/* ------------------------------------------------------------ iframe page */

/* The iframe page loading sockjs_url and calling SockJS.bootstrap_iframe()
 * (sockjs_url is HTML-escaped). */
int framing_sockjs_iframe_page(struct gw_buf *out, const char *sockjs_url);
/* A stable strong ETag for the page: "\"<hex of SHA-1>\"" (42 bytes + NUL). */
void framing_sockjs_iframe_etag(const uint8_t *page, size_t len, char out[44]);

/* --------------------------------------------------------------- sending */

/* The SockJS names of the gw_err codes these functions return (one set of
 * codes across the project: each is a distinct enum gw_err). */
enum framing_sockjs_send_err {
    FRAMING_SOCKJS_SEND_OK = GW_OK,
    FRAMING_SOCKJS_SEND_EMPTY = GW_EINVAL,     /* "Payload expected." (empty / not an
                                          array / an element not a string) */
    FRAMING_SOCKJS_SEND_BROKEN = GW_EPROTO,    /* "Broken JSON encoding." */
    FRAMING_SOCKJS_SEND_TOO_MANY = GW_ETOOBIG, /* more than max_batch messages */
    FRAMING_SOCKJS_SEND_NOMEM = GW_ENOMEM,
};

/*
 * xhr_send body: a JSON array of strings -> env (text messages, payloads
 * exact, NUL and control characters included). On success env owns its
 * memory (envelope_clear). Returns enum framing_sockjs_send_err.
 *  - empty body, or JSON that is not an array: FRAMING_SOCKJS_SEND_EMPTY;
 *  - any element not a string: FRAMING_SOCKJS_SEND_EMPTY for the whole body,
 *    nothing is sent (the reference hands numbers and objects to the
 *    application as they are; a WebSocket upstream only takes text);
 *  - not JSON, invalid UTF-8, a lone surrogate escape ("\ud800"), or JSON
 *    past jansson's limits (nesting deeper than 2048, integers beyond 64
 *    bits): FRAMING_SOCKJS_SEND_BROKEN (the reference accepts all but the first,
 *    and invalid UTF-8 as U+FFFD);
 *  - more than max_batch elements: FRAMING_SOCKJS_SEND_TOO_MANY.
 * env is overwritten on entry (not freed: clear a used one first) and
 * left empty on failure.
 */
int framing_sockjs_parse_send(struct envelope *env, const char *body, size_t len,
                      size_t max_batch);

/*
 * jsonp_send body, by content_type (media type before ';', any case):
 *  - application/x-www-form-urlencoded: field d ("+" is a space, %XX a
 *    byte; the field name may be "%64") holds the JSON array; other
 *    fields are ignored. Absent or empty d, or d given twice:
 *    FRAMING_SOCKJS_SEND_EMPTY; a '%' without two hex digits after it in d:
 *    FRAMING_SOCKJS_SEND_BROKEN;
 *  - text/plain, empty or NULL: the raw body is the JSON array; as in the
 *    reference, a body that is a JSON string is decoded once more (the
 *    body "[\"x\"]", quotes included, is ["x"]);
 *  - anything else: FRAMING_SOCKJS_SEND_EMPTY (the reference does not read it).
 * Otherwise as framing_sockjs_parse_send.
 */
int framing_sockjs_parse_jsonp_send(struct envelope *env, const char *body,
                            size_t len, const char *content_type,
                            size_t max_batch);

/* The reference's error text for a sockjs_parse_* result ("Payload
 * expected.", "Broken JSON encoding.", ...), static. */
const char *framing_sockjs_send_strerror(int rc);

#endif

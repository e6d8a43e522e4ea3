/*
 * envelope.h - parse what browsers send (pollgate protocol v1):
 *   {"seq":<k>,"messages":["text",{"binary":"<base64>"}, ...]}
 * with jansson; validation only, pure.
 */
#ifndef ENVELOPE_H
#define ENVELOPE_H

#include "gw_common.h"

struct envelope_msg {
    bool binary;
    size_t off;    /* offset of the payload in envelope.data */
    size_t len;
};

struct envelope {
    bool has_seq;
    uint64_t seq;              /* 0 .. 2^53-1 */
    struct envelope_msg *msgs; /* n entries */
    size_t n;
    struct gw_buf data;        /* all payloads, back to back (decoded) */
};

/*
 * Parse a JSON send body. max_batch: most messages accepted (more →
 * GW_ETOOBIG). Returns 0, GW_EINVAL (bad JSON, wrong types, unknown
 * fields, bad base64, seq out of range), GW_EUTF8 (text not valid
 * UTF-8 — jansson rejects invalid UTF-8 in the document too), GW_ETOOBIG,
 * GW_ENOMEM; err->msg says what was wrong ("messages[3]: invalid base64"),
 * in printable ASCII. max_batch 0 accepts only an empty array.
 * env is overwritten on entry (not freed: clear a used one first). On
 * success env owns its memory: envelope_clear() it; on failure it is left
 * empty.
 */
int envelope_parse(struct envelope *env, const char *body, size_t len,
                   size_t max_batch, struct gw_error *err);

/* One text message from a raw text/plain body (validated as UTF-8; an
 * empty body is one empty message). GW_EUTF8 names the first bad byte. */
int envelope_from_text(struct envelope *env, const char *body, size_t len,
                       struct gw_error *err);

void envelope_clear(struct envelope *env);

/* Parse a decimal sequence number / ack ("0".."9007199254740991"): digits
 * only, no sign or spaces, leading zeros accepted ("007" is 7); 0 or
 * GW_EINVAL (*out untouched). */
int envelope_parse_seq(const char *s, uint64_t *out);

#endif

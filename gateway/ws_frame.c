/*
 * ws_frame.c - RFC 6455 frame codec: header encoder, masking, close
 * payloads, and the incremental message decoder for either side (a client
 * decoder wants unmasked frames, a server decoder masked ones).
 *
 * The decoder is a small state machine driven by the caller's bytes:
 *
 *   header (2..10 bytes) -> payload -> [event] -> header ...
 *
 * A header that arrives whole is parsed straight from the input; a split
 * one is collected in d->hdr, and its first two bytes are checked as soon
 * as they are present so that garbage fails fast. Every check runs in
 * stream order on the same bytes whatever the split, which is what makes
 * the events (and the first error) independent of how the input was cut.
 *
 * Payloads take one of three paths:
 *  - an unfragmented data frame or a control frame wholly in the input is
 *    delivered in place (zero copy), unless it is masked (server side: the
 *    input is const, so it is unmasked into one of the two buffers below);
 *  - other data frames are appended to the reassembly buffer d->buf, which
 *    is reused from message to message and only released when a message
 *    made it larger than DECODER_KEEP_MAX;
 *  - other control frames are collected in d->ctl, allocated only while
 *    one is (split control frames are rare, and every idle connection
 *    keeps a decoder: its struct stays small).
 */
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

/* Keep a reassembly buffer up to this size between messages. */
#define DECODER_KEEP_MAX (64 * 1024)
/* First allocation of the reassembly buffer. */
#define DECODER_BUF_MIN 256

/* ---------------------------------------------------------------- encoder */

static size_t length_field_size(uint64_t len)
{
    if (len < 126)
        return 0;
    return len <= 0xFFFF ? 2 : 8;
}

size_t ws_frame_header_size(uint64_t len, bool masked)
{
    return 2 + length_field_size(len) + (masked ? 4 : 0);
}

static void put_be(uint8_t *out, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0; v >>= 8)
        out[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *in, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | in[i];
    return v;
}

size_t ws_frame_write_header(uint8_t *out, bool fin, enum ws_opcode op,
                             uint64_t len, const uint8_t *mask)
{
    size_t ext = length_field_size(len);
    uint8_t len7 = ext == 0 ? (uint8_t)len : ext == 2 ? 126 : 127;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | ((unsigned)op & 0x0F));
    out[1] = (uint8_t)((mask ? 0x80 : 0) | len7);
    put_be(out + 2, len, ext);
    size_t n = 2 + ext;
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

size_t ws_frame_mask(uint8_t *data, size_t len, const uint8_t mask[4],
                     size_t offset)
{
    return ws_frame_mask_copy(data, data, len, mask, offset);
}

size_t ws_frame_mask_copy(uint8_t *dst, const uint8_t *data, size_t len,
                          const uint8_t mask[4], size_t offset)
{
    /* The key rotated to this offset, twice: the mask has period 4, so
     * one 64-bit word masks 8 bytes at any position that is a multiple
     * of 8 from here. memcpy keeps it byte-order and alignment neutral. */
    uint8_t key8[8];
    for (size_t i = 0; i < 8; i++)
        key8[i] = mask[(offset + i) & 3];
    uint64_t key;
    memcpy(&key, key8, 8);

    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= key;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = data[i] ^ key8[i & 7];
    return offset + len;
}

/* Length of the longest prefix of s[0..n) of at most max bytes that does
 * not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t cut = max;
    /* Back off over continuation bytes at the cut; a valid sequence has at
     * most three, so more means the text was not UTF-8 anyway. */
    for (int k = 0; k < 3 && cut > 0 && ((uint8_t)s[cut] & 0xC0) == 0x80; k++)
        cut--;
    return cut;
}

size_t ws_close_payload(uint8_t *out, uint16_t code, const char *reason,
                        size_t reason_len)
{
    if (code == 0)
        return 0;
    put_be(out, code, 2);
    size_t n = reason ? utf8_cut(reason, reason_len, WS_CONTROL_MAX - 2) : 0;
    if (n)
        memcpy(out + 2, reason, n);
    return 2 + n;
}

bool ws_close_code_valid(uint16_t code)
{
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014) /* 1012-1014 are IANA-registered */
        return true;
    return code >= 3000 && code <= 4999;
}

/* ---------------------------------------------------------------- decoder */

struct ws_decoder {
    uint64_t max_message;  /* effective limit, never 0 */
    bool server;           /* frames must be masked (from a client) */
    uint8_t mask[4];       /* current frame's masking key */

    /* frame header being collected (only when it arrived split) */
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    uint8_t hdr_have;
    uint8_t hdr_need;      /* 2 until byte 1 is seen, then the full size */

    /* current frame */
    bool in_payload;       /* header done, reading the payload */
    bool fin;
    uint8_t opcode;
    uint64_t frame_len;
    uint64_t frame_got;

    /* current data message (msg_op 0 = none in progress) */
    uint8_t msg_op;
    uint32_t utf8;         /* validator state across fragments */
    uint64_t msg_len;      /* declared length of its frames so far */

    /* reassembly buffer; buf_release: emptied on the next call */
    uint8_t *buf;
    size_t buf_len;
    size_t buf_cap;
    bool buf_release;

    /* a control frame that arrived split (WS_CONTROL_MAX bytes while one
     * is collected or delivered, else NULL); ctl_release: freed on the
     * next call */
    uint8_t *ctl;
    bool ctl_release;

    bool closed;           /* a close event was delivered */
    int err;               /* sticky error, 0 = none */
    uint16_t close_code;
    const char *why;
};

static const uint8_t empty_payload[1];

static struct ws_decoder *decoder_new(uint64_t max_message, bool server)
{
    struct ws_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    /* Unlimited still cannot exceed what one buffer can address; capping
     * here also keeps msg_len + frame_len from overflowing. */
    if (max_message == 0 || max_message > SIZE_MAX)
        max_message = SIZE_MAX;
    d->max_message = max_message;
    d->server = server;
    d->hdr_need = 2;
    return d;
}

struct ws_decoder *ws_decoder_new(uint64_t max_message)
{
    return decoder_new(max_message, false);
}

struct ws_decoder *ws_decoder_new_server(uint64_t max_message)
{
    return decoder_new(max_message, true);
}

void ws_decoder_free(struct ws_decoder *d)
{
    if (!d)
        return;
    free(d->buf);
    free(d->ctl);
    free(d);
}

/* A split control frame's payload was delivered: its buffer may go. */
static void ctl_drop(struct ws_decoder *d)
{
    if (!d->ctl_release)
        return;
    d->ctl_release = false;
    free(d->ctl);
    d->ctl = NULL;
}

void ws_decoder_trim(struct ws_decoder *d)
{
    if (!d)
        return;
    ctl_drop(d);
    if (d->msg_op != 0)
        return;
    free(d->buf);
    d->buf = NULL;
    d->buf_len = d->buf_cap = 0;
    d->buf_release = false;
}

uint16_t ws_decoder_close_code(const struct ws_decoder *d)
{
    return d ? d->close_code : 0;
}

const char *ws_decoder_error(const struct ws_decoder *d)
{
    return d && d->why ? d->why : "no error";
}

static int decoder_fail(struct ws_decoder *d, int err, uint16_t code,
                        const char *why)
{
    d->err = err;
    d->close_code = code;
    d->why = why;
    return err;
}

#define FAIL_PROTO(d, why) decoder_fail((d), GW_EPROTO, WS_CLOSE_PROTOCOL, why)

/* The previous event's payload buffers may be reused now. */
static void decoder_release(struct ws_decoder *d)
{
    ctl_drop(d);
    if (!d->buf_release)
        return;
    d->buf_release = false;
    d->buf_len = 0;
    if (d->buf_cap > DECODER_KEEP_MAX) {
        /* One big message should not pin its memory for the life of the
         * connection. */
        free(d->buf);
        d->buf = NULL;
        d->buf_cap = 0;
    }
}

static int buf_append(struct ws_decoder *d, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > d->buf_cap - d->buf_len) {
        size_t need = d->buf_len + n; /* <= max_message <= SIZE_MAX */
        size_t cap = d->buf_cap ? d->buf_cap : DECODER_BUF_MIN;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (cap > d->max_message && need <= d->max_message)
            cap = (size_t)d->max_message; /* never more than one can use */
        uint8_t *nb = realloc(d->buf, cap);
        if (!nb)
            return decoder_fail(d, GW_ENOMEM, WS_CLOSE_INTERNAL,
                                "out of memory");
        d->buf = nb;
        d->buf_cap = cap;
    }
    memcpy(d->buf + d->buf_len, p, n);
    d->buf_len += n;
    return 0;
}

static bool opcode_is_control(uint8_t op)
{
    return op >= 0x8;
}

static bool opcode_known(uint8_t op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

/* Checks that need only the first two header bytes. */
static int check_first_two(struct ws_decoder *d, uint8_t b0, uint8_t b1)
{
    uint8_t op = b0 & 0x0F;
    uint8_t len7 = b1 & 0x7F;
    if (b0 & 0x70)
        return FAIL_PROTO(d, "reserved bits set");
    if (!opcode_known(op))
        return FAIL_PROTO(d, "reserved opcode");
    if (d->server && !(b1 & 0x80))
        return FAIL_PROTO(d, "unmasked frame from client");
    if (!d->server && (b1 & 0x80))
        return FAIL_PROTO(d, "masked frame from server");
    if (opcode_is_control(op)) {
        if (!(b0 & 0x80))
            return FAIL_PROTO(d, "fragmented control frame");
        if (len7 > WS_CONTROL_MAX)
            return FAIL_PROTO(d, "control frame too long");
        if (op == WS_OP_CLOSE && len7 == 1)
            return FAIL_PROTO(d, "close frame with 1-byte payload");
        return 0;
    }
    if (op == WS_OP_CONT && d->msg_op == 0)
        return FAIL_PROTO(d, "continuation frame without a message");
    if (op != WS_OP_CONT && d->msg_op != 0)
        return FAIL_PROTO(d, "new message inside a fragmented message");
    return 0;
}

/* Header size implied by byte 1 (a wrong mask bit is refused earlier). */
static uint8_t header_size_from(uint8_t b1)
{
    uint8_t len7 = b1 & 0x7F;
    uint8_t n = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
    return (uint8_t)(n + (b1 & 0x80 ? 4 : 0));
}

/* Parse a complete header at h and enter the payload state. */
static int parse_header(struct ws_decoder *d, const uint8_t *h)
{
    int rc = check_first_two(d, h[0], h[1]);
    if (rc < 0)
        return rc;
    uint64_t len = h[1] & 0x7F;
    if (len == 126) {
        len = get_be(h + 2, 2);
        if (len < 126)
            return FAIL_PROTO(d, "non-minimal length encoding");
    } else if (len == 127) {
        len = get_be(h + 2, 8);
        if (len >> 63)
            return FAIL_PROTO(d, "64-bit length with top bit set");
        if (len <= 0xFFFF)
            return FAIL_PROTO(d, "non-minimal length encoding");
    }
    uint8_t op = h[0] & 0x0F;
    if (!opcode_is_control(op)) {
        /* Refuse on the declared length, before buffering any of it. */
        if (len > d->max_message - d->msg_len)
            return decoder_fail(d, GW_ETOOBIG, WS_CLOSE_TOO_BIG,
                                "message exceeds max_message");
        if (op != WS_OP_CONT) {
            d->msg_op = op;
            d->utf8 = WS_UTF8_ACCEPT;
        }
        d->msg_len += len;
    }
    if (d->server)
        memcpy(d->mask, h + header_size_from(h[1]) - 4, 4);
    d->fin = (h[0] & 0x80) != 0;
    d->opcode = op;
    d->frame_len = len;
    d->frame_got = 0;
    d->in_payload = true;
    return 0;
}

/* Collect and parse a header; 0 when done, GW_EAGAIN, or an error. */
static int read_header(struct ws_decoder *d, const uint8_t *data, size_t len,
                       size_t *pos)
{
    size_t avail = len - *pos;
    if (d->hdr_have == 0 && avail >= 2) {
        size_t need = header_size_from(data[*pos + 1]);
        if (avail >= need) { /* whole header in the input: no copy */
            int rc = parse_header(d, data + *pos);
            if (rc == 0)
                *pos += need;
            return rc;
        }
    }
    while (d->hdr_have < d->hdr_need) {
        if (*pos == len)
            return GW_EAGAIN;
        size_t n = d->hdr_need - d->hdr_have;
        if (n > len - *pos)
            n = len - *pos;
        memcpy(d->hdr + d->hdr_have, data + *pos, n);
        d->hdr_have = (uint8_t)(d->hdr_have + n);
        *pos += n;
        if (d->hdr_need == 2 && d->hdr_have == 2) {
            int rc = check_first_two(d, d->hdr[0], d->hdr[1]);
            if (rc < 0)
                return rc;
            d->hdr_need = header_size_from(d->hdr[1]);
        }
    }
    d->hdr_have = 0;
    d->hdr_need = 2;
    return parse_header(d, d->hdr);
}

static void event_set(struct ws_event *ev, enum ws_event_type type,
                      const uint8_t *p, size_t n)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->data = n ? p : empty_payload;
    ev->len = n;
}

/* Text validation of the next n bytes of the current message. */
static int check_text(struct ws_decoder *d, const uint8_t *p, size_t n)
{
    if (d->msg_op != WS_OP_TEXT)
        return 0;
    d->utf8 = ws_utf8_step(d->utf8, p, n);
    if (d->utf8 == WS_UTF8_REJECT)
        return decoder_fail(d, GW_EUTF8, WS_CLOSE_BAD_DATA,
                            "invalid utf-8 in text message");
    return 0;
}

static int finish_message(struct ws_decoder *d, const uint8_t *p, size_t n,
                          struct ws_event *ev)
{
    if (d->msg_op == WS_OP_TEXT && d->utf8 != WS_UTF8_ACCEPT)
        return decoder_fail(d, GW_EUTF8, WS_CLOSE_BAD_DATA,
                            "truncated utf-8 sequence at end of text message");
    event_set(ev, d->msg_op == WS_OP_TEXT ? WS_EV_TEXT : WS_EV_BINARY, p, n);
    d->msg_op = 0;
    d->msg_len = 0;
    return 1;
}

/* Data frame payload: 1 event, 0 frame done (no event), GW_EAGAIN, error. */
static int read_data(struct ws_decoder *d, const uint8_t *data, size_t len,
                     size_t *pos, struct ws_event *ev)
{
    const uint8_t *p = data + *pos;
    size_t avail = len - *pos;
    uint64_t left = d->frame_len - d->frame_got;
    int rc;

    if (!d->server && d->fin && d->opcode != WS_OP_CONT &&
        d->frame_got == 0 && left <= avail) {
        /* Unfragmented and wholly in this input: deliver in place. */
        size_t n = (size_t)left;
        if ((rc = check_text(d, p, n)) < 0)
            return rc;
        *pos += n;
        d->in_payload = false;
        return finish_message(d, p, n, ev);
    }
    size_t n = left < avail ? (size_t)left : avail;
    if (!d->server) {
        if ((rc = check_text(d, p, n)) < 0 || (rc = buf_append(d, p, n)) < 0)
            return rc;
    } else if (n) {
        /* Unmask in the reassembly buffer, then validate what it holds
         * (n == 0: nothing to do, and buf may still be NULL). */
        size_t at = d->buf_len;
        if ((rc = buf_append(d, p, n)) < 0)
            return rc;
        ws_frame_mask(d->buf + at, n, d->mask, (size_t)d->frame_got);
        if ((rc = check_text(d, d->buf + at, n)) < 0)
            return rc;
    }
    *pos += n;
    d->frame_got += n;
    if (d->frame_got < d->frame_len)
        return GW_EAGAIN;
    d->in_payload = false;
    if (!d->fin)
        return 0;
    d->buf_release = true;
    return finish_message(d, d->buf, d->buf_len, ev);
}

static int close_event(struct ws_decoder *d, const uint8_t *p, size_t n,
                       struct ws_event *ev)
{
    event_set(ev, WS_EV_CLOSE, p, n);
    if (n == 0) {
        ev->close_code = WS_CLOSE_NO_STATUS;
        ev->close_reason = "";
    } else {
        if (n < 2) /* refused with the header already; belt and braces */
            return FAIL_PROTO(d, "close frame with 1-byte payload");
        uint16_t code = (uint16_t)get_be(p, 2);
        if (!ws_close_code_valid(code))
            return FAIL_PROTO(d, "invalid close code");
        if (!ws_utf8_valid(p + 2, n - 2))
            return decoder_fail(d, GW_EUTF8, WS_CLOSE_BAD_DATA,
                                "invalid utf-8 in close reason");
        ev->close_code = code;
        ev->close_reason = (const char *)p + 2;
        ev->close_reason_len = n - 2;
    }
    d->closed = true;
    return 1;
}

/* Control frame payload: 1 event, GW_EAGAIN, or an error. */
static int read_control(struct ws_decoder *d, const uint8_t *data, size_t len,
                        size_t *pos, struct ws_event *ev)
{
    size_t avail = len - *pos;
    size_t left = (size_t)(d->frame_len - d->frame_got); /* <= 125 */
    const uint8_t *p = data + *pos;
    size_t n = (size_t)d->frame_len;

    if (!d->server && d->frame_got == 0 && left <= avail) {
        *pos += left; /* whole: deliver in place */
    } else {
        size_t k = left < avail ? left : avail;
        if (!d->ctl && !(d->ctl = malloc(WS_CONTROL_MAX)))
            return decoder_fail(d, GW_ENOMEM, WS_CLOSE_INTERNAL,
                                "out of memory");
        if (d->server)
            ws_frame_mask_copy(d->ctl + d->frame_got, p, k, d->mask,
                               (size_t)d->frame_got);
        else
            memcpy(d->ctl + d->frame_got, p, k);
        d->frame_got += k;
        *pos += k;
        if (d->frame_got < d->frame_len)
            return GW_EAGAIN;
        p = d->ctl;
        d->ctl_release = true;
    }
    d->in_payload = false;
    switch (d->opcode) {
    case WS_OP_PING:
        event_set(ev, WS_EV_PING, p, n);
        return 1;
    case WS_OP_PONG:
        event_set(ev, WS_EV_PONG, p, n);
        return 1;
    default:
        return close_event(d, p, n, ev);
    }
}

int ws_decoder_feed(struct ws_decoder *d, const uint8_t *data, size_t len,
                    size_t *consumed, struct ws_event *ev)
{
    *consumed = 0;
    decoder_release(d);
    if (d->err)
        return d->err;
    if (d->closed)
        return len ? FAIL_PROTO(d, "data after close frame") : GW_EAGAIN;

    size_t pos = 0;
    int rc;
    for (;;) {
        if (!d->in_payload && (rc = read_header(d, data, len, &pos)) != 0)
            break;
        rc = opcode_is_control(d->opcode)
                 ? read_control(d, data, len, &pos, ev)
                 : read_data(d, data, len, &pos, ev);
        if (rc != 0)
            break;
    }
    *consumed = pos;
    return rc;
}

/*
 * framing_native.c - the wire format of pollgate's own protocol (see
 * framing_native.h). Built by appending literal pieces, decimal numbers
 * and framing.c's escaped strings; no JSON tree, since poll batches and
 * SSE events are on the delivery hot path.
 *
 * Every public function is all or nothing: it remembers out->len on entry
 * and rolls back to it on any failure.
 */
#include "framing_native.h"

#include <string.h>

#include "framing.h"

/* Undo everything appended since len0; returns rc. */
static int rollback(struct gw_buf *b, size_t len0, int rc)
{
    if (b->data) {
        b->len = len0;
        b->data[len0] = 0;
    }
    return rc;
}

/* Decimal digits of v into p (room for 20); returns the length. */
static size_t put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Append a (short, NUL-terminated literal) prefix followed by a number,
 * in one append. */
static int append_str_u64(struct gw_buf *out, const char *pre, uint64_t v)
{
    char tmp[64];
    size_t n = strlen(pre);
    memcpy(tmp, pre, n);
    n += put_u64(tmp + n, v);
    return gw_buf_append(out, tmp, n);
}

static int append_lit(struct gw_buf *out, const char *s)
{
    return gw_buf_append(out, s, strlen(s));
}

/* "<base64>" with the quotes. */
static int append_b64_string(struct gw_buf *out, const uint8_t *data,
                             size_t len)
{
    int rc;
    if ((rc = gw_buf_append(out, "\"", 1)) < 0 ||
        (rc = framing_base64_append(out, data, len)) < 0 ||
        (rc = gw_buf_append(out, "\"", 1)) < 0)
        return rc;
    return 0;
}

/* A message payload: JSON string of the text, or of its base64. */
static int append_payload(struct gw_buf *out, bool binary,
                          const uint8_t *data, size_t len)
{
    return binary ? append_b64_string(out, data, len)
                  : framing_json_string(out, data, len, FRAMING_JSON_STD);
}

static bool close_ok(const struct framing_native_close *c)
{
    return c && (c->reason || !c->reason_len);
}

/*
 * "code":C,"reason":"R" (no braces). The reason is sanitised first:
 * ws_client validates close reasons, so the copy is for robustness only
 * and costs nothing for valid text. Not all-or-nothing by itself.
 */
static int append_close_fields(struct gw_buf *out,
                               const struct framing_native_close *c)
{
    struct gw_buf clean = {0};
    size_t len = c->reason_len;
    const uint8_t *r = framing_utf8_clean(&clean, (const uint8_t *)c->reason,
                                          &len);
    int rc;
    if (!r)
        return GW_ENOMEM;
    if ((rc = append_str_u64(out, "\"code\":", c->code)) == 0 &&
        (rc = append_lit(out, ",\"reason\":")) == 0)
        rc = framing_json_string(out, r, len, FRAMING_JSON_STD);
    gw_buf_free(&clean);
    return rc;
}

/* ---------------------------------------------------------- long-poll */

int framing_native_poll_message(struct gw_buf *out, uint64_t seq, bool binary,
                                const uint8_t *data, size_t len)
{
    if (!out || (!data && len))
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((rc = append_str_u64(out, "{\"seq\":", seq)) < 0 ||
        (rc = append_lit(out, binary ? ",\"binary\":" : ",\"text\":")) < 0 ||
        (rc = append_payload(out, binary, data, len)) < 0 ||
        (rc = gw_buf_append(out, "}", 1)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

/* Record the batch's first failure and undo the whole batch. */
static int batch_fail(struct framing_native_batch *bt, int rc)
{
    if (!bt->err)
        bt->err = rc;
    if (bt->out)
        rollback(bt->out, bt->len0, rc);
    return bt->err;
}

int framing_native_batch_begin(struct framing_native_batch *bt,
                               struct gw_buf *out)
{
    if (!bt)
        return GW_EINVAL;
    *bt = (struct framing_native_batch){ .out = out, .len0 = out ? out->len : 0 };
    if (!out)
        return bt->err = GW_EINVAL;
    int rc = append_lit(out, "{\"messages\":[");
    return rc < 0 ? batch_fail(bt, rc) : 0;
}

int framing_native_batch_add(struct framing_native_batch *bt, uint64_t seq,
                             bool binary, const uint8_t *data, size_t len)
{
    if (!bt)
        return GW_EINVAL;
    if (bt->err)
        return bt->err;
    int rc = 0;
    if (bt->n && (rc = gw_buf_append(bt->out, ",", 1)) < 0)
        return batch_fail(bt, rc);
    if ((rc = framing_native_poll_message(bt->out, seq, binary, data, len)) < 0)
        return batch_fail(bt, rc);
    bt->n++;
    return 0;
}

int framing_native_batch_end(struct framing_native_batch *bt,
                             const struct framing_native_lost *lost,
                             const struct framing_native_close *closed)
{
    if (!bt)
        return GW_EINVAL;
    if (bt->err)
        return bt->err;
    if (closed && !close_ok(closed))
        return batch_fail(bt, GW_EINVAL);
    struct gw_buf *out = bt->out;
    int rc;
    if ((rc = gw_buf_append(out, "]", 1)) < 0)
        return batch_fail(bt, rc);
    if (lost &&
        ((rc = append_str_u64(out, ",\"lost\":{\"from\":", lost->from)) < 0 ||
         (rc = append_str_u64(out, ",\"to\":", lost->to)) < 0 ||
         (rc = gw_buf_append(out, "}", 1)) < 0))
        return batch_fail(bt, rc);
    if (closed &&
        ((rc = append_lit(out, ",\"closed\":{")) < 0 ||
         (rc = append_close_fields(out, closed)) < 0 ||
         (rc = gw_buf_append(out, "}", 1)) < 0))
        return batch_fail(bt, rc);
    if ((rc = gw_buf_append(out, "}", 1)) < 0)
        return batch_fail(bt, rc);
    return 0;
}

/* ---------------------------------------------------------------- SSE */

int framing_native_sse_preamble(struct gw_buf *out, uint64_t retry_ms)
{
    if (!out)
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((rc = gw_buf_append(out, ":", 1)) < 0)
        return rc;
    uint8_t *pad = gw_buf_reserve(out, FRAMING_NATIVE_SSE_PADDING);
    if (!pad)
        return rollback(out, len0,
                        out->max && out->len + FRAMING_NATIVE_SSE_PADDING > out->max
                            ? GW_ETOOBIG : GW_ENOMEM);
    memset(pad, ' ', FRAMING_NATIVE_SSE_PADDING);
    out->len += FRAMING_NATIVE_SSE_PADDING;
    out->data[out->len] = 0;
    if ((rc = append_str_u64(out, "\nretry: ", retry_ms)) < 0 ||
        (rc = append_lit(out, "\n\n")) < 0)
        return rollback(out, len0, rc);
    return 0;
}

int framing_native_sse_message(struct gw_buf *out, uint64_t seq, bool binary,
                               const uint8_t *data, size_t len)
{
    if (!out || (!data && len))
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((rc = append_str_u64(out, "id: ", seq)) < 0 ||
        (rc = append_lit(out, binary ? "\nevent: binary\ndata: "
                                     : "\nevent: message\ndata: ")) < 0 ||
        (rc = append_payload(out, binary, data, len)) < 0 ||
        (rc = gw_buf_append(out, "\n\n", 2)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

int framing_native_sse_lost(struct gw_buf *out,
                            const struct framing_native_lost *lost)
{
    if (!out || !lost)
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((rc = append_str_u64(out, "event: lost\ndata: {\"from\":",
                             lost->from)) < 0 ||
        (rc = append_str_u64(out, ",\"to\":", lost->to)) < 0 ||
        (rc = gw_buf_append(out, "}\n\n", 3)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

int framing_native_sse_close(struct gw_buf *out,
                             const struct framing_native_close *closed)
{
    if (!out || !close_ok(closed))
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((rc = append_lit(out, "event: close\ndata: {")) < 0 ||
        (rc = append_close_fields(out, closed)) < 0 ||
        (rc = gw_buf_append(out, "}\n\n", 3)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

/* ------------------------------------------------------------ replies */

int framing_native_open_reply(struct gw_buf *out,
                              const struct framing_native_open *o)
{
    if (!out || !o || !o->session_id)
        return GW_EINVAL;
    size_t len0 = out->len;
    const char *p = o->protocol;
    int rc;
    if ((rc = append_lit(out, "{\"session\":")) < 0 ||
        (rc = framing_json_string(out, (const uint8_t *)o->session_id,
                                  strlen(o->session_id), FRAMING_JSON_STD)) < 0 ||
        (rc = append_str_u64(out, ",\"poll_timeout\":", o->poll_timeout_s)) < 0 ||
        (rc = append_str_u64(out, ",\"heartbeat\":", o->heartbeat_s)) < 0 ||
        (rc = append_str_u64(out, ",\"idle_timeout\":", o->idle_timeout_s)) < 0 ||
        (rc = append_lit(out, ",\"protocol\":")) < 0 ||
        (rc = p ? framing_json_string(out, (const uint8_t *)p, strlen(p),
                                      FRAMING_JSON_STD)
                : append_lit(out, "null")) < 0 ||
        (rc = gw_buf_append(out, "}", 1)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

int framing_native_send_ack(struct gw_buf *out, bool has_seq, uint64_t seq)
{
    if (!out)
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc = has_seq ? append_str_u64(out, "{\"ack\":", seq)
                     : append_lit(out, "{\"ack\":null");
    if (rc < 0 || (rc = gw_buf_append(out, "}", 1)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

int framing_native_gone(struct gw_buf *out,
                        const struct framing_native_close *closed)
{
    if (!out || !close_ok(closed))
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((rc = append_lit(out, "{\"error\":\"session_closed\",\"message\":"
                              "\"the session has ended\",")) < 0 ||
        (rc = append_close_fields(out, closed)) < 0 ||
        (rc = gw_buf_append(out, "}", 1)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

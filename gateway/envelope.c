/*
 * envelope.c - validate what browsers send (pollgate protocol v1):
 *   {"seq":<k>,"messages":["text",{"binary":"<base64>"}, ...]}
 *
 * jansson parses (rejecting duplicate keys, allowing \u0000 in strings);
 * this file only checks shapes and copies payloads, back to back, into
 * env->data. Text payloads are copied as jansson decoded them (raw UTF-8,
 * length from json_string_length so NUL survives); binary payloads are
 * decoded with the strict base64 decoder of framing.c.
 *
 * Error messages name the place ("messages[3]: invalid base64") and may
 * reach the browser and the log, so anything taken from the input (a key
 * name) is cut short and reduced to printable ASCII first.
 */
#include "envelope.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "ws_frame.h" /* ws_utf8_valid */

#define SEQ_MAX ((UINT64_C(1) << 53) - 1) /* largest exact JSON number */

/* Printable, bounded copy of an input key for error messages. */
static void key_for_msg(char *dst, size_t cap, const char *key, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < cap; i++) {
        unsigned char c = (unsigned char)key[i];
        dst[n++] = c >= 0x20 && c < 0x7F ? (char)c : '?';
    }
    if (len > n && n + 4 >= cap) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = 0;
}

static bool key_is(const char *key, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(key, want, len) == 0;
}

static int load_error(const json_error_t *je, struct gw_error *err)
{
    char text[JSON_ERROR_TEXT_LENGTH + 4];
    int code;
    switch (json_error_code(je)) {
    case json_error_invalid_utf8: code = GW_EUTF8; break;
    case json_error_out_of_memory: code = GW_ENOMEM; break;
    default: code = GW_EINVAL; break;
    }
    /* jansson quotes the input near the error: keep it printable */
    /* (the last byte of je->text holds the error code, not text) */
    key_for_msg(text, sizeof text, je->text,
                strnlen(je->text, sizeof je->text - 1));
    return gw_error_set(err, code, "invalid JSON: %s (line %d, column %d, "
                        "position %d)", text, je->line, je->column,
                        je->position);
}

static int check_top_keys(json_t *root, struct gw_error *err)
{
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(root, key, klen, v) {
        if (!key_is(key, klen, "messages") && !key_is(key, klen, "seq")) {
            char k[48];
            key_for_msg(k, sizeof k, key, klen);
            return gw_error_set(err, GW_EINVAL, "unknown field \"%s\"", k);
        }
    }
    return 0;
}

static int parse_seq_field(struct envelope *env, json_t *root,
                           struct gw_error *err)
{
    json_t *seq = json_object_get(root, "seq");
    if (!seq)
        return 0;
    if (!json_is_integer(seq))
        return gw_error_set(err, GW_EINVAL, "\"seq\" must be an integer");
    json_int_t v = json_integer_value(seq);
    if (v < 0)
        return gw_error_set(err, GW_EINVAL, "\"seq\" must not be negative");
    if ((uint64_t)v > SEQ_MAX)
        return gw_error_set(err, GW_EINVAL, "\"seq\" too big (max 2^53-1)");
    env->has_seq = true;
    env->seq = (uint64_t)v;
    return 0;
}

static int add_text(struct envelope *env, size_t i, json_t *s,
                    struct gw_error *err)
{
    const uint8_t *p = (const uint8_t *)json_string_value(s);
    size_t n = json_string_length(s);
    /* jansson has checked already; this is cheap and keeps the promise
     * of the header independent of jansson's version. */
    if (!ws_utf8_valid(p, n))
        return gw_error_set(err, GW_EUTF8, "messages[%zu]: invalid UTF-8", i);
    size_t off = env->data.len;
    int rc = gw_buf_append(&env->data, p, n);
    if (rc < 0)
        return gw_error_set(err, rc, "messages[%zu]: %s", i, gw_strerror(rc));
    env->msgs[i] = (struct envelope_msg){false, off, n};
    return 0;
}

static int add_binary(struct envelope *env, size_t i, json_t *o,
                      struct gw_error *err)
{
    const char *key;
    size_t klen;
    json_t *v;
    if (json_object_size(o) == 0)
        return gw_error_set(err, GW_EINVAL, "messages[%zu]: empty object "
                            "(want {\"binary\":\"<base64>\"})", i);
    json_object_keylen_foreach(o, key, klen, v) {
        if (!key_is(key, klen, "binary")) {
            char k[48];
            key_for_msg(k, sizeof k, key, klen);
            return gw_error_set(err, GW_EINVAL, "messages[%zu]: unknown "
                                "field \"%s\" (only \"binary\")", i, k);
        }
    }
    v = json_object_get(o, "binary");
    if (!json_is_string(v))
        return gw_error_set(err, GW_EINVAL,
                            "messages[%zu]: \"binary\" must be a string", i);
    size_t off = env->data.len;
    int rc = framing_base64_decode(&env->data, json_string_value(v),
                                   json_string_length(v));
    if (rc == GW_EINVAL)
        return gw_error_set(err, rc, "messages[%zu]: invalid base64", i);
    if (rc < 0)
        return gw_error_set(err, rc, "messages[%zu]: %s", i, gw_strerror(rc));
    env->msgs[i] = (struct envelope_msg){true, off, env->data.len - off};
    return 0;
}

static int parse_messages(struct envelope *env, json_t *root, size_t len,
                          size_t max_batch, struct gw_error *err)
{
    json_t *arr = json_object_get(root, "messages");
    if (!arr)
        return gw_error_set(err, GW_EINVAL, "missing \"messages\"");
    if (!json_is_array(arr))
        return gw_error_set(err, GW_EINVAL, "\"messages\" must be an array");
    size_t n = json_array_size(arr);
    if (n > max_batch)
        return gw_error_set(err, GW_ETOOBIG, "too many messages (%zu, "
                            "max %zu)", n, max_batch);
    if (n == 0)
        return 0;
    if (!(env->msgs = calloc(n, sizeof *env->msgs)))
        return gw_error_set(err, GW_ENOMEM, "out of memory");
    env->n = n;
    /* Decoded payloads never exceed the body (an escape or a base64
     * quantum is at least as long as what it stands for): one reservation
     * and the buffer never moves. */
    if (!gw_buf_reserve(&env->data, len))
        return gw_error_set(err, GW_ENOMEM, "out of memory");

    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(arr, i);
        int rc;
        if (json_is_string(m))
            rc = add_text(env, i, m, err);
        else if (json_is_object(m))
            rc = add_binary(env, i, m, err);
        else
            rc = gw_error_set(err, GW_EINVAL, "messages[%zu]: must be a "
                              "string or {\"binary\":\"<base64>\"}", i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int envelope_parse(struct envelope *env, const char *body, size_t len,
                   size_t max_batch, struct gw_error *err)
{
    if (!env || (!body && len))
        return gw_error_set(err, GW_EINVAL, "bad arguments");
    memset(env, 0, sizeof *env);

    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len,
                              JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root)
        return load_error(&je, err);

    int rc;
    if (!json_is_object(root))
        rc = gw_error_set(err, GW_EINVAL, "body must be a JSON object");
    else if ((rc = check_top_keys(root, err)) == 0 &&
             (rc = parse_seq_field(env, root, err)) == 0)
        rc = parse_messages(env, root, len, max_batch, err);
    json_decref(root);
    if (rc < 0)
        envelope_clear(env);
    return rc;
}

int envelope_from_text(struct envelope *env, const char *body, size_t len,
                       struct gw_error *err)
{
    if (!env || (!body && len))
        return gw_error_set(err, GW_EINVAL, "bad arguments");
    memset(env, 0, sizeof *env);
    const uint8_t *p = (const uint8_t *)body;

    if (len && !ws_utf8_valid(p, len)) {
        /* Rare path: find the offending byte for the message. */
        uint32_t st = WS_UTF8_ACCEPT;
        size_t i = 0;
        while (i < len && (st = ws_utf8_step(st, p + i, 1)) != WS_UTF8_REJECT)
            i++;
        return gw_error_set(err, GW_EUTF8, "text body: invalid UTF-8 at "
                            "byte %zu", i);
    }
    if (!(env->msgs = calloc(1, sizeof *env->msgs)))
        return gw_error_set(err, GW_ENOMEM, "out of memory");
    int rc = gw_buf_append(&env->data, p, len);
    if (rc < 0) {
        envelope_clear(env);
        return gw_error_set(err, rc, "text body: %s", gw_strerror(rc));
    }
    env->msgs[0] = (struct envelope_msg){false, 0, len};
    env->n = 1;
    return 0;
}

void envelope_clear(struct envelope *env)
{
    if (!env)
        return;
    free(env->msgs);
    gw_buf_free(&env->data);
    memset(env, 0, sizeof *env);
}

/*
 * Decimal digits only: no sign, no spaces, no hex, at most 2^53-1.
 * Leading zeros are accepted ("007" is 7): the value is what matters, and
 * the numbers come back to us (acks, Last-Event-ID) from clients that may
 * format them their own way.
 */
int envelope_parse_seq(const char *s, uint64_t *out)
{
    if (!s || !*s || !out)
        return GW_EINVAL;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return GW_EINVAL;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > SEQ_MAX) /* checked every digit: v*10+9 cannot wrap */
            return GW_EINVAL;
    }
    *out = v;
    return 0;
}

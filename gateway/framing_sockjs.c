/*
 * framing_sockjs.c - the SockJS protocol (0.3) as its reference server,
 * sockjs-node 0.3.24, writes and reads it: frames, per-transport wrapping
 * and preludes, the iframe page, callback names and send bodies. Pure: no
 * I/O; the SockJS transports do the HTTP side.
 *
 * Byte for byte with the reference, except where noted (each exception is
 * JSON- or HTML-equivalent for the client and closes a hole):
 *  - message strings in a[...] and c[...]: the reference runs
 *    JSON.stringify and then escapes U+200C-U+200F, U+2028-U+202F,
 *    U+2060-U+206F, U+FFF0-U+FFFF and UTF-16 surrogates as \uXXXX. So
 *    control characters come out as JSON.stringify writes them: \b \t \n
 *    \f \r short, the others \u00xx. framing_json_string(SOCKJS) writes
 *    every control character as \u00xx; quote() below shortens the five
 *    afterwards, so a["\n"] is what sockjs-protocol's EventSource test
 *    expects. Left different: "</" is "<\/", astral characters are raw
 *    UTF-8 rather than two \ud8xx escapes (see framing.c), and c[] reasons
 *    get the SockJS escaping where the reference uses JSON.stringify only;
 *  - htmlfile: every '<' in the JSON string is \u003c, so no frame can
 *    close the <script> element or put it into the "double escaped" state
 *    (<!--<script>) that would swallow the rest of the stream;
 *  - iframe page: sockjs_url is HTML-escaped (the reference pastes it raw);
 *    the ETag is the SHA-1 of the page (the reference uses MD5; an ETag is
 *    opaque to clients);
 *  - callbacks: 1-32 of [a-zA-Z0-9_.-] for every transport (the reference
 *    allows the empty name, and any length for htmlfile).
 */
#include "framing_sockjs.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "framing.h"
#include "ws_frame.h" /* ws_utf8_step / ws_utf8_valid */

/* --------------------------------------------------------------- helpers */

#define LIT(s) s, sizeof(s) - 1

static bool over_cap(const struct gw_buf *b, size_t n)
{
    return b->max && (n > b->max || b->len > b->max - n);
}

/* Undo everything appended since len0 (every function appends all or
 * nothing). */
static int rollback(struct gw_buf *b, size_t len0, int rc)
{
    if (b->data) {
        b->len = len0;
        b->data[len0] = 0;
    }
    return rc;
}

/* Room for n more bytes, with the error the caller should return. */
static uint8_t *reserve(struct gw_buf *b, size_t n, int *rc)
{
    uint8_t *p = NULL;
    if (over_cap(b, n))
        *rc = GW_ETOOBIG;
    else if (!(p = gw_buf_reserve(b, n)))
        *rc = GW_ENOMEM;
    return p;
}

static void commit(struct gw_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = 0;
}

/* The short form JSON.stringify uses for \u00<h1><h2>, or 0. */
static char short_escape(uint8_t h1, uint8_t h2)
{
    if (h1 != '0')
        return 0;
    switch (h2) {
    case '8': return 'b';
    case '9': return 't';
    case 'a': return 'n';
    case 'c': return 'f';
    case 'd': return 'r';
    default: return 0;
    }
}

/*
 * In the JSON string literal at b->data[from..len), turn \u0008 \u0009
 * \u000a \u000c \u000d into \b \t \n \f \r, in place. Backslashes only
 * start escapes there, and each escape is whole (2 or 6 bytes), so
 * walking from one backslash to the next never misreads "\\u000a" (an
 * escaped backslash, then text). Strings without control characters cost
 * one memchr per backslash and write nothing.
 */
static void shorten_controls(struct gw_buf *b, size_t from)
{
    uint8_t *p = b->data, *end = b->data + b->len;
    uint8_t *r = p + from, *w = NULL; /* w: write position once moving */

    while ((r = memchr(r, '\\', (size_t)(end - r))) != NULL) {
        char c = r[1] == 'u' ? short_escape(r[4], r[5]) : 0;
        bool zeros = r[1] == 'u' && r[2] == '0' && r[3] == '0';
        size_t n = r[1] == 'u' ? 6 : 2;
        if (c && zeros) {
            if (!w)
                w = r;
            w[0] = '\\';
            w[1] = (uint8_t)c;
            w += 2;
            r += 6;
        } else {
            if (w) {
                memmove(w, r, n);
                w += n;
            }
            r += n;
        }
        if (w) { /* copy the plain run up to the next backslash */
            uint8_t *nx = memchr(r, '\\', (size_t)(end - r));
            size_t run = (size_t)((nx ? nx : end) - r);
            memmove(w, r, run);
            w += run;
            r += run;
        }
    }
    if (w) {
        b->len = (size_t)(w - p);
        p[b->len] = 0;
    }
}

/* A JSON string as the reference's utils.quote writes it (see the top).
 * The cap (out->max) is checked against the longer \u00xx form. */
static int quote(struct gw_buf *out, const uint8_t *s, size_t n)
{
    size_t start = out->len;
    int rc = framing_json_string(out, s, n, FRAMING_JSON_SOCKJS);
    if (rc < 0)
        return rc;
    shorten_controls(out, start);
    return 0;
}


/* ---------------------------------------------------------------- frames */

int framing_sockjs_frame_open(struct gw_buf *out)
{
    return out ? gw_buf_append(out, "o", 1) : GW_EINVAL;
}

int framing_sockjs_frame_heartbeat(struct gw_buf *out)
{
    return out ? gw_buf_append(out, "h", 1) : GW_EINVAL;
}

int framing_sockjs_frame_close(struct gw_buf *out, uint16_t code, const char *reason,
                       size_t reason_len)
{
    if (!out || (!reason && reason_len))
        return GW_EINVAL;
    const uint8_t *r = (const uint8_t *)reason;
    struct gw_buf clean = {0};
    size_t len0 = out->len;
    char num[16];
    int rc;

    if (!(r = framing_utf8_clean(&clean, r, &reason_len)))
        return GW_ENOMEM;
    int n = snprintf(num, sizeof num, "c[%u,", (unsigned)code);
    if ((rc = gw_buf_append(out, num, (size_t)n)) < 0 ||
        (rc = quote(out, r, reason_len)) < 0 ||
        (rc = gw_buf_append(out, "]", 1)) < 0)
        rc = rollback(out, len0, rc);
    gw_buf_free(&clean);
    return rc < 0 ? rc : 0;
}

int framing_sockjs_frame_array_begin(struct gw_buf *out)
{
    return out ? gw_buf_append(out, "a[", 2) : GW_EINVAL;
}

int framing_sockjs_frame_array_item(struct gw_buf *out, bool first,
                            const uint8_t *data, size_t len)
{
    if (!out || (!data && len))
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((!first && (rc = gw_buf_append(out, ",", 1)) < 0) ||
        (rc = quote(out, data, len)) < 0)
        return rollback(out, len0, rc);
    return 0;
}

int framing_sockjs_frame_array_end(struct gw_buf *out)
{
    return out ? gw_buf_append(out, "]", 1) : GW_EINVAL;
}

/* ------------------------------------------------------------- transports */

/*
 * EventSource: the reference passes the frame through
 * escape_selected(frame, "\r\n\0"), which also escapes '%' (JavaScript
 * escape(): %25 %0D %0A %00), and sockjs-client runs decodeURI() on every
 * event. So '%' must become "%25" or a message holding "%41" would arrive
 * as "A" (and "%zz" would throw in the client). CR, LF and NUL cannot
 * occur in frames built above, but are escaped all the same.
 */
static int wrap_eventsource(struct gw_buf *out, const uint8_t *f, size_t n)
{
    if (n > (SIZE_MAX - 16) / 3)
        return GW_ETOOBIG;
    size_t special = 0;
    for (size_t i = 0; i < n; i++)
        special += f[i] == '%' || f[i] == '\r' || f[i] == '\n' || f[i] == 0;
    size_t need = 6 + n + 2 * special + 4;
    int rc = 0;
    uint8_t *d = reserve(out, need, &rc);
    if (!d)
        return rc;
    memcpy(d, "data: ", 6);
    size_t o = 6;
    if (!special && n) { /* the usual case */
        memcpy(d + o, f, n);
        o += n;
    }
    for (size_t i = 0; special && i < n; i++) {
        uint8_t c = f[i];
        if (c == '%' || c == '\r' || c == '\n' || c == 0) {
            static const char hex[] = "0123456789ABCDEF";
            d[o] = '%';
            d[o + 1] = (uint8_t)hex[c >> 4];
            d[o + 2] = (uint8_t)hex[c & 15];
            o += 3;
        } else {
            d[o++] = c;
        }
    }
    memcpy(d + o, "\r\n\r\n", 4);
    commit(out, o + 4);
    return 0;
}

/*
 * In the JSON string at b->data[from..len), write each '<' as \u003c
 * (htmlfile only: see the top comment). Grows from the back, in place.
 */
static int escape_lt(struct gw_buf *b, size_t from)
{
    size_t count = 0;
    for (size_t i = from; i < b->len; i++)
        count += b->data[i] == '<';
    if (!count)
        return 0;
    int rc = 0;
    if (!reserve(b, 5 * count, &rc))
        return rc;
    uint8_t *p = b->data;
    size_t r = b->len, w = b->len + 5 * count;
    p[w] = 0;
    while (r > from) {
        uint8_t c = p[--r];
        if (c == '<') {
            w -= 6;
            memcpy(p + w, "\\u003c", 6);
        } else {
            p[--w] = c;
        }
    }
    b->len += 5 * count;
    return 0;
}

int framing_sockjs_wrap(struct gw_buf *out, enum framing_sockjs_wrap w, const char *callback,
                const uint8_t *frame, size_t len)
{
    if (!out || (!frame && len))
        return GW_EINVAL;
    size_t len0 = out->len, start;
    int rc;

    switch (w) {
    case FRAMING_SOCKJS_WRAP_XHR:
        if ((rc = gw_buf_append(out, frame, len)) < 0 ||
            (rc = gw_buf_append(out, "\n", 1)) < 0)
            return rollback(out, len0, rc);
        return 0;
    case FRAMING_SOCKJS_WRAP_EVENTSOURCE:
        return wrap_eventsource(out, frame, len);
    case FRAMING_SOCKJS_WRAP_HTMLFILE:
        if ((rc = gw_buf_append(out, LIT("<script>\np("))) < 0)
            return rollback(out, len0, rc);
        start = out->len;
        if ((rc = framing_json_string(out, frame, len, FRAMING_JSON_STD)) < 0 ||
            (rc = escape_lt(out, start)) < 0 ||
            (rc = gw_buf_append(out, LIT(");\n</script>\r\n"))) < 0)
            return rollback(out, len0, rc);
        return 0;
    case FRAMING_SOCKJS_WRAP_JSONP:
        if (!framing_sockjs_callback_valid(callback))
            return GW_EINVAL;
        if ((rc = gw_buf_append(out, LIT("/**/"))) < 0 ||
            (rc = gw_buf_append(out, callback, strlen(callback))) < 0 ||
            (rc = gw_buf_append(out, "(", 1)) < 0 ||
            (rc = framing_json_string(out, frame, len, FRAMING_JSON_STD)) < 0 ||
            (rc = gw_buf_append(out, LIT(");\r\n"))) < 0)
            return rollback(out, len0, rc);
        return 0;
    }
    return GW_EINVAL;
}

int framing_sockjs_prelude_xhr_streaming(struct gw_buf *out)
{
    if (!out)
        return GW_EINVAL;
    int rc = 0;
    uint8_t *d = reserve(out, 2049, &rc);
    if (!d)
        return rc;
    memset(d, 'h', 2048);
    d[2048] = '\n';
    commit(out, 2049);
    return 0;
}

int framing_sockjs_prelude_eventsource(struct gw_buf *out)
{
    return out ? gw_buf_append(out, "\r\n", 2) : GW_EINVAL;
}

/*
 * The reference's htmlfile page (sockjs-node 0.3.24). It pads the
 * template, "{{ callback }}" (14 bytes) still in it, to 1037 bytes, then
 * puts the callback in: 1023 + strlen(callback) bytes, so the padding is
 * the same whatever the callback. (sockjs-node's unreleased 0.4 adds a
 * newline before <!doctype and after </script>; clients cannot tell.)
 */
static const char htmlfile_head[] =
    "<!doctype html>\n"
    "<html><head>\n"
    "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
    "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
    "</head><body><h2>Don't panic!</h2>\n"
    "  <script>\n"
    "    document.domain = document.domain;\n"
    "    var c = parent.";
static const char htmlfile_tail[] =
    ";\n"
    "    c.start();\n"
    "    function p(d) {c.message(d);};\n"
    "    window.onload = function() {c.stop();};\n"
    "  </script>";
#define HTMLFILE_PAD (1023 - (sizeof htmlfile_head - 1) - (sizeof htmlfile_tail - 1))
_Static_assert(sizeof htmlfile_head + sizeof htmlfile_tail < 1023,
               "htmlfile template longer than its padding target");

int framing_sockjs_prelude_htmlfile(struct gw_buf *out, const char *callback)
{
    if (!out || !framing_sockjs_callback_valid(callback))
        return GW_EINVAL;
    size_t cb = strlen(callback);
    size_t need = sizeof htmlfile_head - 1 + cb + sizeof htmlfile_tail - 1 +
                  HTMLFILE_PAD + 4;
    int rc = 0;
    uint8_t *d = reserve(out, need, &rc);
    if (!d)
        return rc;
    size_t o = 0;
    memcpy(d + o, htmlfile_head, sizeof htmlfile_head - 1);
    o += sizeof htmlfile_head - 1;
    memcpy(d + o, callback, cb);
    o += cb;
    memcpy(d + o, htmlfile_tail, sizeof htmlfile_tail - 1);
    o += sizeof htmlfile_tail - 1;
    memset(d + o, ' ', HTMLFILE_PAD);
    o += HTMLFILE_PAD;
    memcpy(d + o, "\r\n\r\n", 4);
    commit(out, o + 4);
    return 0;
}

/*
 * 1-32 of [a-zA-Z0-9_.-]: the reference's character class, with a length
 * cap for every transport. The name is written into JavaScript and HTML
 * unescaped, so this check is what stands between a query parameter and
 * script injection (and the Rosetta Flash / "SOME" JSONP tricks, which
 * need longer or wider names).
 */
bool framing_sockjs_callback_valid(const char *cb)
{
    if (!cb)
        return false;
    size_t n = 0;
    for (; cb[n]; n++) {
        unsigned char c = (unsigned char)cb[n];
        if (n >= 32 ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n > 0;
}

/* ------------------------------------------------------------ iframe page */

static const char iframe_head[] =
    "<!DOCTYPE html>\n"
    "<html>\n"
    "<head>\n"
    "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"
    "  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n"
    "  <script src=\"";
static const char iframe_tail[] =
    "\"></script>\n"
    "  <script>\n"
    "    document.domain = document.domain;\n"
    "    SockJS.bootstrap_iframe();\n"
    "  </script>\n"
    "</head>\n"
    "<body>\n"
    "  <h2>Don't panic!</h2>\n"
    "  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n"
    "</body>\n"
    "</html>";

/* s as the value of a double-quoted HTML attribute. */
static int append_html_attr(struct gw_buf *out, const char *s)
{
    int rc = 0;
    for (const char *p = s; *p && rc == 0;) {
        size_t run = strcspn(p, "&<>\"'");
        if (run && (rc = gw_buf_append(out, p, run)) < 0)
            break;
        p += run;
        switch (*p) {
        case '&': rc = gw_buf_append(out, LIT("&amp;")); break;
        case '<': rc = gw_buf_append(out, LIT("&lt;")); break;
        case '>': rc = gw_buf_append(out, LIT("&gt;")); break;
        case '"': rc = gw_buf_append(out, LIT("&quot;")); break;
        case '\'': rc = gw_buf_append(out, LIT("&#39;")); break;
        default: continue; /* end of string */
        }
        p++;
    }
    return rc;
}

int framing_sockjs_iframe_page(struct gw_buf *out, const char *sockjs_url)
{
    if (!out || !sockjs_url)
        return GW_EINVAL;
    size_t len0 = out->len;
    int rc;
    if ((rc = gw_buf_append(out, LIT(iframe_head))) < 0 ||
        (rc = append_html_attr(out, sockjs_url)) < 0 ||
        (rc = gw_buf_append(out, LIT(iframe_tail))) < 0)
        return rollback(out, len0, rc);
    return 0;
}

/*
 * SHA-1 through EVP (OpenSSL 3 deprecates the low-level calls). Should the
 * digest be unavailable (a FIPS provider without SHA-1), fall back to a
 * 64-bit FNV-1a, zero-padded: weaker, but still stable and still changing
 * with the page, which is all an ETag needs.
 */
void framing_sockjs_iframe_etag(const uint8_t *page, size_t len, char out[44])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!page)
        len = 0;
    if (!EVP_Digest(page ? (const void *)page : "", len, md, &mdlen,
                    EVP_sha1(), NULL) || mdlen != 20) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < len; i++)
            h = (h ^ page[i]) * UINT64_C(0x100000001b3);
        memset(md, 0, 20);
        for (int i = 0; i < 8; i++)
            md[12 + i] = (unsigned char)(h >> (56 - 8 * i));
    }
    out[0] = '"';
    for (int i = 0; i < 20; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 15];
    }
    out[41] = '"';
    out[42] = 0;
}

/* --------------------------------------------------------------- sending */

const char *framing_sockjs_send_strerror(int rc)
{
    switch (rc) {
    case FRAMING_SOCKJS_SEND_OK: return "ok";
    case FRAMING_SOCKJS_SEND_EMPTY: return "Payload expected.";
    case FRAMING_SOCKJS_SEND_BROKEN: return "Broken JSON encoding.";
    case FRAMING_SOCKJS_SEND_TOO_MANY: return "Too many messages.";
    case FRAMING_SOCKJS_SEND_NOMEM: return "Out of memory.";
    default: return "Internal error.";
    }
}

/* Every element a string: copy them, back to back, into env. */
static int fill_envelope(struct envelope *env, json_t *arr, size_t body_len,
                         size_t max_batch)
{
    size_t n = json_array_size(arr);
    if (n > max_batch)
        return FRAMING_SOCKJS_SEND_TOO_MANY;
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(arr, i)))
            return FRAMING_SOCKJS_SEND_EMPTY;
    if (n == 0)
        return FRAMING_SOCKJS_SEND_OK;
    /* Decoded strings are never longer than the JSON text: one
     * allocation for all of them. */
    if (!(env->msgs = calloc(n, sizeof *env->msgs)) ||
        !gw_buf_reserve(&env->data, body_len))
        return FRAMING_SOCKJS_SEND_NOMEM;
    env->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(arr, i);
        const uint8_t *p = (const uint8_t *)json_string_value(s);
        size_t len = json_string_length(s), off = env->data.len;
        /* jansson has checked; this keeps our promise whatever its
         * version does. */
        if (!ws_utf8_valid(p, len))
            return FRAMING_SOCKJS_SEND_BROKEN;
        int rc = gw_buf_append(&env->data, p, len);
        if (rc < 0)
            return rc == GW_ENOMEM ? FRAMING_SOCKJS_SEND_NOMEM : FRAMING_SOCKJS_SEND_TOO_MANY;
        env->msgs[i] = (struct envelope_msg){false, off, len};
    }
    return FRAMING_SOCKJS_SEND_OK;
}

static int load_json(const char *p, size_t n, json_t **out)
{
    json_error_t je;
    *out = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (*out)
        return FRAMING_SOCKJS_SEND_OK;
    return json_error_code(&je) == json_error_out_of_memory
               ? FRAMING_SOCKJS_SEND_NOMEM : FRAMING_SOCKJS_SEND_BROKEN;
}

/*
 * The reference: empty -> "Payload expected."; JSON.parse fails ->
 * "Broken JSON encoding."; not an array -> "Payload expected.". With
 * unwrap (jsonp_send's raw body only), a non-empty JSON string is parsed
 * once more, as the reference does there.
 */
static int parse_body(struct envelope *env, const char *p, size_t n,
                      size_t max_batch, bool unwrap)
{
    json_t *v;
    int rc;
    if (n == 0)
        return FRAMING_SOCKJS_SEND_EMPTY;
    if ((rc = load_json(p, n, &v)) < 0)
        return rc;
    if (unwrap && json_is_string(v) && json_string_length(v) > 0) {
        json_t *inner;
        rc = load_json(json_string_value(v), json_string_length(v), &inner);
        json_decref(v);
        if (rc < 0)
            return rc;
        v = inner;
    }
    rc = json_is_array(v) ? fill_envelope(env, v, n, max_batch)
                          : FRAMING_SOCKJS_SEND_EMPTY;
    json_decref(v);
    return rc;
}

int framing_sockjs_parse_send(struct envelope *env, const char *body, size_t len,
                      size_t max_batch)
{
    if (!env)
        return FRAMING_SOCKJS_SEND_EMPTY;
    memset(env, 0, sizeof *env);
    if (!body)
        len = 0;
    int rc = parse_body(env, body, len, max_batch, false);
    if (rc < 0)
        envelope_clear(env);
    return rc;
}

enum body_kind { BODY_RAW, BODY_FORM, BODY_OTHER };

/*
 * The media type of a Content-Type value (before ';', spaces trimmed,
 * case-insensitive, where the reference compares exactly): the reference
 * reads the form for application/x-www-form-urlencoded, the raw body for
 * text/plain or no type, and nothing ("Payload expected.") otherwise.
 */
static enum body_kind body_kind(const char *ct)
{
    if (!ct)
        return BODY_RAW;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n == 0 || (n == 10 && strncasecmp(ct, "text/plain", 10) == 0))
        return BODY_RAW;
    if (n == 33 &&
        strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        return BODY_FORM;
    return BODY_OTHER;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* application/x-www-form-urlencoded value: '+' is a space, %XX a byte.
 * A '%' not followed by two hex digits is an error (Node keeps it as
 * text; we call the body broken). */
static int form_decode(struct gw_buf *out, const char *s, size_t n)
{
    uint8_t *d = gw_buf_reserve(out, n);
    if (!d)
        return FRAMING_SOCKJS_SEND_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = hi < 0 ? -1 : hexval((unsigned char)s[i + 2]);
            if (lo < 0)
                return FRAMING_SOCKJS_SEND_BROKEN;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        d[o++] = c;
    }
    commit(out, o);
    return FRAMING_SOCKJS_SEND_OK;
}

/* Does this (still encoded) field name decode to "d"? Only "d" and "%64"
 * do ('+' decodes to a space). */
static bool key_is_d(const char *k, size_t n)
{
    return (n == 1 && k[0] == 'd') ||
           (n == 3 && k[0] == '%' && k[1] == '6' && k[2] == '4');
}

/*
 * Find the field d (fields split at '&', name and value at the first
 * '='; a name alone has an empty value) and decode it into val. Two d
 * fields are refused (Node would hand the reference an array of the raw
 * values, which it would send as messages undecoded).
 */
static int form_field_d(struct gw_buf *val, const char *body, size_t len,
                        bool *found)
{
    const char *p = body, *end = body + len, *v = NULL;
    size_t vlen = 0;
    *found = false;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *fe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(fe - p));
        const char *ke = eq ? eq : fe;
        if (key_is_d(p, (size_t)(ke - p))) {
            if (*found)
                return FRAMING_SOCKJS_SEND_EMPTY;
            *found = true;
            v = eq ? eq + 1 : fe;
            vlen = (size_t)(fe - v);
        }
        p = fe + (amp != NULL);
    }
    return *found ? form_decode(val, v, vlen) : FRAMING_SOCKJS_SEND_OK;
}

int framing_sockjs_parse_jsonp_send(struct envelope *env, const char *body,
                            size_t len, const char *content_type,
                            size_t max_batch)
{
    if (!env)
        return FRAMING_SOCKJS_SEND_EMPTY;
    memset(env, 0, sizeof *env);
    if (!body)
        len = 0;
    int rc;
    switch (body_kind(content_type)) {
    case BODY_RAW:
        rc = parse_body(env, body, len, max_batch, true);
        break;
    case BODY_FORM: {
        struct gw_buf d = {0};
        bool found;
        rc = form_field_d(&d, body, len, &found);
        if (rc == 0)
            rc = found ? parse_body(env, (const char *)d.data, d.len,
                                    max_batch, false)
                       : FRAMING_SOCKJS_SEND_EMPTY;
        gw_buf_free(&d);
        break;
    }
    default:
        rc = FRAMING_SOCKJS_SEND_EMPTY;
        break;
    }
    if (rc < 0)
        envelope_clear(env);
    return rc;
}

/*
 * framing.c - pure formatters shared by both dialects: JSON string
 * escaping, base64 and UTF-8 sanitising. The native protocol's messages
 * and events are framing_native.c's; SockJS frames framing_sockjs.c's.
 *
 * The escaper is on the hot path (one call per delivered message), so it
 * works like this:
 *  - a 256-entry table classifies each byte; plain ASCII is found and
 *    copied eight bytes at a time (one load, a few bit operations and one
 *    store per word), so ASCII text with a few quotes costs little more
 *    than a copy;
 *  - the worst case (6 output bytes per input byte, plus the quotes) is
 *    reserved once and the escaper writes straight into the buffer, with
 *    no per-byte bounds checks and no allocation besides gw_buf growth;
 *  - when that worst case would cross the buffer's cap (or the input is
 *    big, where a 6x reservation would bloat a long-lived buffer), a
 *    counting pass with the same code computes the exact size first.
 *
 * Multi-byte characters that need escaping all start with E2 (U+2000-
 * U+2FFF) or EF (U+F000-U+FFFF); those two lead bytes are marked in the
 * table and the next two bytes decide. Continuation bytes are plain, so
 * everything else non-ASCII is copied raw. Input is valid UTF-8 (checked
 * where it enters the gateway); with invalid input the output is garbage
 * in, garbage out but never written or read out of bounds.
 *
 * Every function appends all or nothing: on error out->len is unchanged.
 */
#include "framing.h"

#include <string.h>

#include "ws_frame.h" /* ws_utf8_step / ws_utf8_valid */

/* Byte classes for the escape tables. */
enum {
    E_PLAIN = 0,
    E_CTRL,  /* U+0000-U+001F */
    E_BSL,   /* '"' and '\\': backslash + the byte */
    E_LT,    /* '<': "</" becomes "<\/" */
    E_E2,    /* lead of U+2000-U+2FFF */
    E_EF,    /* lead of U+F000-U+FFFF (SockJS only) */
};

#define P E_PLAIN
#define X16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
#define PLAIN_20_3F                                                        \
    P, P, E_BSL, P, P, P, P, P, P, P, P, P, P, P, P, P,  /* 20-2F: '"' */ \
    P, P, P, P, P, P, P, P, P, P, P, P, E_LT, P, P, P    /* 30-3F: '<' */
#define PLAIN_40_7F                                                        \
    X16(P),                                              /* 40-4F */      \
    P, P, P, P, P, P, P, P, P, P, P, P, E_BSL, P, P, P,  /* 50-5F: '\\' */ \
    X16(P), X16(P)                                       /* 60-7F */

static const uint8_t esc_std[256] = {
    X16(E_CTRL), X16(E_CTRL), PLAIN_20_3F, PLAIN_40_7F,
    X16(P), X16(P), X16(P), X16(P), /* 80-BF continuation */
    X16(P), X16(P),                 /* C0-DF */
    P, P, E_E2, P, P, P, P, P, P, P, P, P, P, P, P, P, /* E0-EF */
    X16(P),                         /* F0-FF */
};

static const uint8_t esc_sockjs[256] = {
    X16(E_CTRL), X16(E_CTRL), PLAIN_20_3F, PLAIN_40_7F,
    X16(P), X16(P), X16(P), X16(P),
    X16(P), X16(P),
    P, P, E_E2, P, P, P, P, P, P, P, P, P, P, P, P, E_EF,
    X16(P),
};
#undef P
#undef X16
#undef PLAIN_20_3F
#undef PLAIN_40_7F

/* Short escapes of the standard flavour; 0 = use \u00xx. */
static const char ctrl_short[32] = {
    ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
};

static const char hex_lower[] = "0123456789abcdef";

/*
 * Does E2 b1 b2 (U+2000 + ...) need escaping? STD: U+2028, U+2029 (line
 * and paragraph separators, which end a JavaScript string literal).
 * SockJS, after its reference server: U+200C-U+200F, U+2028-U+202F,
 * U+2060-U+206F.
 */
static inline bool e2_escaped(uint8_t b1, uint8_t b2, bool sockjs)
{
    if (b1 == 0x80) {
        if (b2 == 0xA8 || b2 == 0xA9)
            return true;
        return sockjs && ((b2 >= 0x8C && b2 <= 0x8F) ||
                          (b2 >= 0xAA && b2 <= 0xAF));
    }
    return sockjs && b1 == 0x81 && b2 >= 0xA0 && b2 <= 0xAF;
}

static inline void put_u_escape(uint8_t *d, uint32_t cp)
{
    d[0] = '\\';
    d[1] = 'u';
    d[2] = (uint8_t)hex_lower[(cp >> 12) & 15];
    d[3] = (uint8_t)hex_lower[(cp >> 8) & 15];
    d[4] = (uint8_t)hex_lower[(cp >> 4) & 15];
    d[5] = (uint8_t)hex_lower[cp & 15];
}

/*
 * Finding plain bytes eight at a time, where the byte order allows: the
 * usual bit tricks flag, in a 64-bit word, every byte below 0x20, every
 * '"', '\\' and '<', and every non-ASCII byte. A word with no flag is
 * plain and copied with one store. Otherwise each flagged byte is looked
 * up in the table, which has the last word (a flag can be a false
 * positive, from a borrow above a true one, or a non-ASCII byte that
 * needs nothing; it is never missing).
 */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ESC_SWAR 1
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t zero_bytes(uint64_t w)
{
    return (w - ONES) & ~w & HIGHS;
}

static inline uint64_t candidates(uint64_t w)
{
    return ((w - ONES * 0x20) & ~w & HIGHS)  /* below 0x20 */
           | zero_bytes(w ^ (ONES * '"')) | zero_bytes(w ^ (ONES * '\\'))
           | zero_bytes(w ^ (ONES * '<'))
           | (w & HIGHS);                      /* non-ASCII: ask the table */
}
#endif

/*
 * Escape s[0..n) into d (no quotes); returns the number of bytes written.
 * Words are stored whole before we know how many of their bytes are plain
 * (the rest is overwritten next). That stays inside the output: every
 * input byte becomes at least one output byte, so while 8 input bytes
 * remain, at least 8 output bytes remain to be written, even when d has
 * room for the exact output only. With count set nothing is written (d
 * may be NULL) and only the length is computed. Always inlined so that each (sockjs, count) pair the
 * callers use becomes its own loop with the branches folded away.
 *
 * Worst case: 6 output bytes per input byte (a control character becomes
 * \u00xx; a 3-byte character becomes a 6-byte \uXXXX).
 *
 * SockJS note: its reference server (sockjs-node utils.quote) also lists
 * U+D800-U+DFFF, because it runs over UTF-16 where those are the halves of
 * astral characters (and lone surrogates). Our input is valid UTF-8, so
 * lone surrogates cannot occur, and astral characters (4-byte sequences)
 * are sent raw: JSON-equivalent, a third of the size of two \uXXXX.
 */
static inline __attribute__((always_inline)) size_t
escape_body(uint8_t *d, const uint8_t *s, size_t n, bool sockjs, bool count)
{
    const uint8_t *tbl = sockjs ? esc_sockjs : esc_std;
    size_t i = 0, o = 0;

    while (i < n) {
#ifdef ESC_SWAR
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8); /* one unaligned load on x86-64/arm64 */
            if (!count)
                memcpy(d + o, &w, 8);
            uint64_t m = candidates(w);
            size_t k = 8;
            for (; m; m &= m - 1) {
                size_t b = (size_t)__builtin_ctzll(m) >> 3;
                if (tbl[s[i + b]] != E_PLAIN) {
                    k = b;
                    break;
                }
            }
            i += k;
            o += k;
            if (k < 8)
                break;
        }
#endif
        while (i < n && tbl[s[i]] == E_PLAIN) {
            if (!count)
                d[o] = s[i];
            i++;
            o++;
        }
        if (i == n)
            break;
        uint8_t c = s[i];
        switch (tbl[c]) {
        case E_CTRL:
            if (!sockjs && ctrl_short[c]) {
                if (!count) {
                    d[o] = '\\';
                    d[o + 1] = (uint8_t)ctrl_short[c];
                }
                o += 2;
            } else {
                if (!count)
                    put_u_escape(d + o, c);
                o += 6;
            }
            i++;
            break;
        case E_BSL:
            if (!count) {
                d[o] = '\\';
                d[o + 1] = c;
            }
            o += 2;
            i++;
            break;
        case E_LT:
            if (i + 1 < n && s[i + 1] == '/') {
                if (!count)
                    memcpy(d + o, "<\\/", 3);
                o += 3;
                i += 2;
            } else {
                if (!count)
                    d[o] = c;
                o++;
                i++;
            }
            break;
        case E_E2:
        case E_EF:
            if (i + 2 < n &&
                (c == 0xE2 ? e2_escaped(s[i + 1], s[i + 2], sockjs)
                           : s[i + 1] == 0xBF && s[i + 2] >= 0xB0)) {
                if (!count)
                    put_u_escape(d + o, ((uint32_t)(c & 0x0F) << 12) |
                                            ((uint32_t)(s[i + 1] & 0x3F) << 6) |
                                            (s[i + 2] & 0x3F));
                o += 6;
                i += 3;
            } else {
                if (!count)
                    d[o] = c; /* continuation bytes follow as plain bytes */
                o++;
                i++;
            }
            break;
        default: /* not reached: plain bytes were consumed above */
            break;
        }
    }
    return o;
}

static size_t escape_std(uint8_t *d, const uint8_t *s, size_t n)
{
    return escape_body(d, s, n, false, false);
}

static size_t escape_sockjs(uint8_t *d, const uint8_t *s, size_t n)
{
    return escape_body(d, s, n, true, false);
}

static size_t escaped_len(const uint8_t *s, size_t n, bool sockjs)
{
    return sockjs ? escape_body(NULL, s, n, true, true)
                  : escape_body(NULL, s, n, false, true);
}

/* Would appending n bytes cross the cap? */
static inline bool over_cap(const struct gw_buf *b, size_t n)
{
    return b->max && (n > b->max || b->len > b->max - n);
}

/* Commit n bytes written at the reserved position. */
static inline void commit(struct gw_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = 0;
}

/*
 * Inputs above this take the exact-size path (see the top comment): a 6x
 * reservation of a big message would stay in a long-lived buffer as
 * capacity, and for big inputs the counting pass is cheap by comparison.
 */
#define ESCAPE_FAST_MAX 4096

int framing_json_string(struct gw_buf *out, const uint8_t *data, size_t len,
                        enum framing_json_flavour fl)
{
    if (!out || (!data && len) ||
        (fl != FRAMING_JSON_STD && fl != FRAMING_JSON_SOCKJS))
        return GW_EINVAL;
    if (len > (SIZE_MAX - 2) / 6)
        return GW_ETOOBIG;
    bool sockjs = fl == FRAMING_JSON_SOCKJS;
    uint8_t *d = NULL;

    if (len <= ESCAPE_FAST_MAX)
        d = gw_buf_reserve(out, 6 * len + 2); /* NULL: cap or no memory */
    if (!d) {
        size_t need = escaped_len(data, len, sockjs) + 2;
        if (over_cap(out, need))
            return GW_ETOOBIG;
        if (!(d = gw_buf_reserve(out, need)))
            return GW_ENOMEM;
    }
    d[0] = '"';
    size_t o = 1 + (sockjs ? escape_sockjs(d + 1, data, len)
                           : escape_std(d + 1, data, len));
    d[o++] = '"';
    commit(out, o);
    return 0;
}

/* ---------------------------------------------------------------- base64 */

static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decode table: 0-63, or 0xFF for anything outside the alphabet ('=' too). */
static const uint8_t b64_val[256] = {
#define N 0xFF
#define N16 N, N, N, N, N, N, N, N, N, N, N, N, N, N, N, N
    N16, N16,                                                /* 00-1F */
    N, N, N, N, N, N, N, N, N, N, N, 62, N, N, N, 63,        /* 20-2F */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, N, N, N, N, N, N, /* 30-3F */
    N, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,     /* 40-4F */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, N, N, N, N, N, /* 50-5F */
    N, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, N, N, N, N, N, /* 70-7F */
    N16, N16, N16, N16, N16, N16, N16, N16,                  /* 80-FF */
#undef N16
#undef N
};

size_t framing_base64_len(size_t n)
{
    size_t q = n / 3 + (n % 3 != 0);
    return q > SIZE_MAX / 4 ? SIZE_MAX : q * 4;
}

/* Encode into d, which has room for framing_base64_len(len) bytes. */
static size_t base64_write(uint8_t *d, const uint8_t *s, size_t len)
{
    size_t i = 0, o = 0;
    for (; i + 3 <= len; i += 3, o += 4) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        d[o] = (uint8_t)b64_alpha[v >> 18];
        d[o + 1] = (uint8_t)b64_alpha[(v >> 12) & 63];
        d[o + 2] = (uint8_t)b64_alpha[(v >> 6) & 63];
        d[o + 3] = (uint8_t)b64_alpha[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        d[o] = (uint8_t)b64_alpha[v >> 18];
        d[o + 1] = (uint8_t)b64_alpha[(v >> 12) & 63];
        d[o + 2] = i + 1 < len ? (uint8_t)b64_alpha[(v >> 6) & 63] : '=';
        d[o + 3] = '=';
        o += 4;
    }
    return o;
}

int framing_base64_append(struct gw_buf *out, const uint8_t *data, size_t len)
{
    if (!out || (!data && len))
        return GW_EINVAL;
    size_t n = framing_base64_len(len);
    if (n == SIZE_MAX || over_cap(out, n))
        return GW_ETOOBIG;
    uint8_t *d = gw_buf_reserve(out, n);
    if (!d)
        return GW_ENOMEM;
    commit(out, base64_write(d, data, len));
    return 0;
}

/*
 * Strict: the length is a multiple of 4, only the last quantum may hold
 * padding ("xx==" or "xxx="), and the bits that padding leaves over must
 * be zero. RFC 4648 section 3.5 lets decoders reject non-zero pad bits;
 * we do, so every accepted string is the one canonical encoding of its
 * bytes (decode then encode gives the input back) and two different
 * strings never carry the same payload. Every encoder we know of (btoa,
 * Buffer, OpenSSL, Python) writes zero bits there.
 */
int framing_base64_decode(struct gw_buf *out, const char *s, size_t len)
{
    if (!out || (!s && len))
        return GW_EINVAL;
    if (len % 4)
        return GW_EINVAL;
    if (len == 0)
        return 0;
    const uint8_t *p = (const uint8_t *)s;
    size_t pad = p[len - 1] != '=' ? 0 : p[len - 2] != '=' ? 1 : 2;
    size_t n = len / 4 * 3 - pad;
    if (over_cap(out, n))
        return GW_ETOOBIG;
    uint8_t *d = gw_buf_reserve(out, n);
    if (!d)
        return GW_ENOMEM;

    size_t full = pad ? len - 4 : len, o = 0;
    for (size_t i = 0; i < full; i += 4) {
        uint32_t a = b64_val[p[i]], b = b64_val[p[i + 1]];
        uint32_t c = b64_val[p[i + 2]], e = b64_val[p[i + 3]];
        if ((a | b | c | e) & 0x80)
            goto bad;
        uint32_t v = a << 18 | b << 12 | c << 6 | e;
        d[o] = (uint8_t)(v >> 16);
        d[o + 1] = (uint8_t)(v >> 8);
        d[o + 2] = (uint8_t)v;
        o += 3;
    }
    if (pad) {
        const uint8_t *q = p + full;
        uint32_t a = b64_val[q[0]], b = b64_val[q[1]];
        uint32_t c = pad == 1 ? b64_val[q[2]] : 0;
        if ((a | b | c) & 0x80)
            goto bad;
        uint32_t v = a << 18 | b << 12 | c << 6;
        if (v & (pad == 1 ? 0xFFu : 0xFFFFu)) /* non-zero pad bits */
            goto bad;
        d[o++] = (uint8_t)(v >> 16);
        if (pad == 1)
            d[o++] = (uint8_t)(v >> 8);
    }
    commit(out, o);
    return 0;
bad:
    d[0] = 0; /* the NUL after out->len that the reserved area covered */
    return GW_EINVAL;
}

/* ----------------------------------------------------------- UTF-8 */

/*
 * Copy s with every invalid sequence replaced by U+FFFD, one per maximal
 * ill-formed subpart (the WHATWG / Unicode "best practice" count): the
 * validator rejects at the first byte that cannot continue the sequence;
 * if that byte was not the sequence's first, it may start a new one and is
 * looked at again.
 */
int framing_utf8_sanitize(struct gw_buf *out, const uint8_t *s, size_t n)
{
    static const uint8_t fffd[3] = {0xEF, 0xBF, 0xBD};
    uint32_t st = WS_UTF8_ACCEPT;
    size_t start = 0; /* first byte of the current sequence */
    int rc;

    for (size_t i = 0; i < n;) {
        if (st == WS_UTF8_ACCEPT)
            start = i;
        st = ws_utf8_step(st, s + i, 1);
        if (st == WS_UTF8_REJECT) {
            if ((rc = gw_buf_append(out, fffd, 3)) < 0)
                return rc;
            st = WS_UTF8_ACCEPT;
            if (i == start)
                i++; /* a byte that can never start a sequence: drop it */
            continue;
        }
        i++;
        if (st == WS_UTF8_ACCEPT &&
            (rc = gw_buf_append(out, s + start, i - start)) < 0)
            return rc;
    }
    if (st != WS_UTF8_ACCEPT) /* truncated at the end */
        return gw_buf_append(out, fffd, 3);
    return 0;
}

const uint8_t *framing_utf8_clean(struct gw_buf *tmp, const uint8_t *s,
                                  size_t *len)
{
    if (!*len)
        return s ? s : (const uint8_t *)"";
    if (ws_utf8_valid(s, *len))
        return s;
    if (framing_utf8_sanitize(tmp, s, *len) < 0) {
        gw_buf_free(tmp);
        return NULL;
    }
    *len = tmp->len;
    return tmp->data;
}

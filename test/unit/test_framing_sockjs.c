/*
 * test_framing_sockjs.c - framing_sockjs.c: SockJS frames, transport
 * wrapping, preludes, callbacks, the iframe page and send bodies.
 * Data-driven, byte for byte. Where a vector comes from the SockJS
 * protocol test suite (sockjs-protocol.py) or from what sockjs-node 0.3.24
 * writes, the comment says so.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framing_sockjs.h"

/* A byte string literal and its length (may contain NUL). */
#define B(s) s, sizeof(s) - 1
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static void assert_bytes(const uint8_t *got, size_t got_len, const char *want,
                         size_t want_len, const char *what)
{
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        print_error("%s:\n  got  (%zu) [%.*s]\n  want (%zu) [%.*s]\n", what,
                    got_len, (int)got_len, got ? (const char *)got : "",
                    want_len, (int)want_len, want);
        fail();
    }
}

static void assert_buf_eq(const struct gw_buf *b, const char *want,
                          size_t want_len, const char *what)
{
    assert_bytes(b->data, b->len, want, want_len, what);
    assert_int_equal(b->data[b->len], 0); /* gw_buf keeps a NUL after */
}

/* Does [p, p+n) contain the NUL-terminated needle? */
static bool contains(const uint8_t *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------- frames */

static void test_frame_open_heartbeat(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(framing_sockjs_frame_open(&b), 0);
    assert_buf_eq(&b, B("o"), "open");
    assert_int_equal(framing_sockjs_frame_heartbeat(&b), 0);
    assert_buf_eq(&b, B("oh"), "heartbeat appends");
    assert_int_equal(framing_sockjs_frame_open(NULL), GW_EINVAL);
    assert_int_equal(framing_sockjs_frame_heartbeat(NULL), GW_EINVAL);
    assert_int_equal(framing_sockjs_frame_array_begin(NULL), GW_EINVAL);
    assert_int_equal(framing_sockjs_frame_array_end(NULL), GW_EINVAL);
    gw_buf_free(&b);
}

struct close_case {
    uint16_t code;
    const char *reason;
    size_t reason_len;
    const char *want;
};

static const struct close_case close_cases[] = {
    /* sockjs-protocol: the close frames of the reference */
    {3000, B("Go away!"), "c[3000,\"Go away!\"]"},
    {2010, B("Another connection still open"),
     "c[2010,\"Another connection still open\"]"},
    {1002, B("Connection interrupted"), "c[1002,\"Connection interrupted\"]"},
    {1000, B(""), "c[1000,\"\"]"},
    {0, B("x"), "c[0,\"x\"]"},
    {65535, B("x"), "c[65535,\"x\"]"},
    /* escaped as message strings are */
    {4000, B("a\"b\\c\n\0</x"), "c[4000,\"a\\\"b\\\\c\\n\\u0000<\\/x\"]"},
    {4000, B("\xe2\x80\xa8\xef\xbf\xbf"), "c[4000,\"\\u2028\\uffff\"]"},
    /* invalid UTF-8: U+FFFD per maximal subpart, itself escaped */
    {1007, B("a\xff" "b"), "c[1007,\"a\\ufffdb\"]"},
    {1007, B("\xe2\x82"), "c[1007,\"\\ufffd\"]"},
    {1007, B("\xed\xa0\x80"), "c[1007,\"\\ufffd\\ufffd\\ufffd\"]"},
};

static void test_frame_close(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(close_cases); i++) {
        const struct close_case *c = &close_cases[i];
        struct gw_buf b = {0};
        char what[64];
        snprintf(what, sizeof what, "close case %zu", i);
        assert_int_equal(framing_sockjs_frame_close(&b, c->code, c->reason,
                                            c->reason_len), 0);
        assert_buf_eq(&b, c->want, strlen(c->want), what);
        gw_buf_free(&b);
    }
    struct gw_buf b = {0};
    assert_int_equal(framing_sockjs_frame_close(&b, 1000, NULL, 0), 0);
    assert_buf_eq(&b, B("c[1000,\"\"]"), "NULL reason");
    assert_int_equal(framing_sockjs_frame_close(&b, 1000, NULL, 1), GW_EINVAL);
    assert_int_equal(framing_sockjs_frame_close(NULL, 1000, "x", 1), GW_EINVAL);
    assert_buf_eq(&b, B("c[1000,\"\"]"), "unchanged after errors");
    gw_buf_free(&b);
}

/* a[...] of up to 4 messages -> expected frame */
struct array_case {
    size_t n;
    struct {
        const char *data;
        size_t len;
    } m[4];
    const char *want;
};

static const struct array_case array_cases[] = {
    {0, {{0}}, "a[]"},
    {1, {{B("x")}}, "a[\"x\"]"},
    {1, {{B("")}}, "a[\"\"]"},
    {3, {{B("a")}, {B("")}, {B("b c")}}, "a[\"a\",\"\",\"b c\"]"},
    /* sockjs-protocol EventSource: control characters as JSON.stringify
     * writes them (\n \r short, \u0000) */
    {1, {{B("  \0\n\r ")}}, "a[\"  \\u0000\\n\\r \"]"},
    {1, {{B("q\"b\\s/")}}, "a[\"q\\\"b\\\\s/\"]"},
    /* an escaped backslash before "u000a" text is not a control escape */
    {1, {{B("\\u000a\\u0009")}}, "a[\"\\\\u000a\\\\u0009\"]"},
    {1, {{B("\\\n\\")}}, "a[\"\\\\\\n\\\\\"]"},
    {1, {{B("\x1f\x0b\x7f")}}, "a[\"\\u001f\\u000b\x7f\"]"},
    /* "</" never appears raw (the reference would write it raw) */
    {1, {{B("</script>")}}, "a[\"<\\/script>\"]"},
    /* SockJS ranges as \uXXXX, lowercase; 4-byte UTF-8 raw */
    {2, {{B("\xe2\x80\x8c\xe2\x81\xaf\xef\xbf\xbd")}, {B("\xf0\x9f\x98\x80")}},
     "a[\"\\u200c\\u206f\\ufffd\",\"\xf0\x9f\x98\x80\"]"},
    {1, {{B("caf\xc3\xa9 \xe2\x82\xac")}}, "a[\"caf\xc3\xa9 \xe2\x82\xac\"]"},
};

static void build_array(struct gw_buf *b, const struct array_case *c)
{
    assert_int_equal(framing_sockjs_frame_array_begin(b), 0);
    for (size_t j = 0; j < c->n; j++)
        assert_int_equal(framing_sockjs_frame_array_item(b, j == 0,
                                                 (const uint8_t *)c->m[j].data,
                                                 c->m[j].len), 0);
    assert_int_equal(framing_sockjs_frame_array_end(b), 0);
}

static void test_frame_array(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(array_cases); i++) {
        struct gw_buf b = {0};
        char what[64];
        snprintf(what, sizeof what, "array case %zu", i);
        build_array(&b, &array_cases[i]);
        assert_buf_eq(&b, array_cases[i].want, strlen(array_cases[i].want),
                      what);
        gw_buf_free(&b);
    }
}

/* Each control character alone: \b \t \n \f \r short, the rest \u00xx. */
static void test_frame_control_chars(void **state)
{
    (void)state;
    static const char shorts[32] = {
        ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
    };
    for (int c = 0; c < 32; c++) {
        uint8_t in[3] = {'<', (uint8_t)c, '>'};
        char want[32];
        if (shorts[c])
            snprintf(want, sizeof want, "\"<\\%c>\"", shorts[c]);
        else
            snprintf(want, sizeof want, "\"<\\u%04x>\"", c);
        struct gw_buf b = {0};
        assert_int_equal(framing_sockjs_frame_array_item(&b, true, in, 3), 0);
        assert_buf_eq(&b, want, strlen(want), "control char");
        gw_buf_free(&b);
    }
}

/*
 * sockjs-protocol JSONEncoding.test_xhr_server_encodes: every character
 * from U+00FF up that the server must escape comes back as \uXXXX
 * (lowercase); here once in one string, once with plain text between.
 */
static size_t put_utf8(uint8_t *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (uint8_t)(0xC0 | cp >> 6);
        d[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    d[0] = (uint8_t)(0xE0 | cp >> 12);
    d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    d[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
}

static bool server_escapes(uint32_t cp)
{
    return (cp >= 0x200C && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
           (cp >= 0x2060 && cp <= 0x206F) || cp >= 0xFFF0;
}

static void test_frame_server_killer_string(void **state)
{
    (void)state;
    for (int sep = 0; sep < 2; sep++) {
        struct gw_buf in = {0}, want = {0}, got = {0};
        assert_int_equal(gw_buf_append(&want, "a[\"", 3), 0);
        for (uint32_t cp = 0xFF; cp <= 0xFFFF; cp++) {
            uint8_t u[3];
            if (cp >= 0xD800 && cp <= 0xDFFF)
                continue;
            if (server_escapes(cp)) {
                assert_int_equal(gw_buf_append(&in, u, put_utf8(u, cp)), 0);
                assert_int_equal(gw_buf_appendf(&want, "\\u%04x", cp), 0);
            } else if (sep && (cp == 0x2027 || cp == 0x2030 || cp == 0xFFEF)) {
                /* neighbours of the ranges stay raw */
                size_t k = put_utf8(u, cp);
                assert_int_equal(gw_buf_append(&in, u, k), 0);
                assert_int_equal(gw_buf_append(&want, u, k), 0);
            }
        }
        assert_int_equal(gw_buf_append(&want, "\"]", 2), 0);
        assert_int_equal(framing_sockjs_frame_array_begin(&got), 0);
        assert_int_equal(framing_sockjs_frame_array_item(&got, true, in.data, in.len), 0);
        assert_int_equal(framing_sockjs_frame_array_end(&got), 0);
        assert_buf_eq(&got, (const char *)want.data, want.len, "killer string");
        gw_buf_free(&in);
        gw_buf_free(&want);
        gw_buf_free(&got);
    }
}

/* Long messages (the escaper's exact-size path) shorten controls too. */
static void test_frame_long_message(void **state)
{
    (void)state;
    struct gw_buf in = {0}, want = {0}, got = {0};
    assert_int_equal(gw_buf_append(&want, "\"", 1), 0);
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(gw_buf_append(&in, "ab\n\"\x01\\u000a", 11), 0);
        assert_int_equal(gw_buf_append(&want, B("ab\\n\\\"\\u0001\\\\u000a")), 0);
    }
    assert_int_equal(gw_buf_append(&want, "\"", 1), 0);
    assert_int_equal(framing_sockjs_frame_array_item(&got, true, in.data, in.len), 0);
    assert_buf_eq(&got, (const char *)want.data, want.len, "long message");
    gw_buf_free(&in);
    gw_buf_free(&want);
    gw_buf_free(&got);
}

/* Items append to what is there; a failed item leaves nothing behind. */
static void test_frame_item_args_and_cap(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(framing_sockjs_frame_array_begin(&b), 0);
    assert_int_equal(framing_sockjs_frame_array_item(&b, true, NULL, 0), 0);
    assert_int_equal(framing_sockjs_frame_array_item(&b, true, NULL, 1), GW_EINVAL);
    assert_int_equal(framing_sockjs_frame_array_item(NULL, true,
                                             (const uint8_t *)"x", 1),
                     GW_EINVAL);
    assert_buf_eq(&b, B("a[\"\""), "after bad args");
    b.max = b.len + 4; /* room for ,"x" but not ,"\n" */
    assert_int_equal(framing_sockjs_frame_array_item(&b, false,
                                             (const uint8_t *)"\n", 1),
                     GW_ETOOBIG);
    assert_buf_eq(&b, B("a[\"\""), "all or nothing");
    assert_int_equal(framing_sockjs_frame_array_item(&b, false,
                                             (const uint8_t *)"x", 1), 0);
    assert_buf_eq(&b, B("a[\"\",\"x\""), "fits the cap exactly");
    assert_int_equal(framing_sockjs_frame_array_end(&b), GW_ETOOBIG);
    assert_int_equal(framing_sockjs_frame_close(&b, 1000, "x", 1), GW_ETOOBIG);
    assert_buf_eq(&b, B("a[\"\",\"x\""), "cap: close adds nothing");
    gw_buf_free(&b);
}

/* ------------------------------------------------------------- transports */

struct wrap_case {
    enum framing_sockjs_wrap w;
    const char *callback;
    const char *frame;
    size_t frame_len;
    const char *want;
    size_t want_len;
};

static const struct wrap_case wrap_cases[] = {
    /* sockjs-protocol XhrPolling / XhrStreaming */
    {FRAMING_SOCKJS_WRAP_XHR, NULL, B("o"), B("o\n")},
    {FRAMING_SOCKJS_WRAP_XHR, NULL, B("a[\"x\"]"), B("a[\"x\"]\n")},
    {FRAMING_SOCKJS_WRAP_XHR, NULL, B("c[3000,\"Go away!\"]"),
     B("c[3000,\"Go away!\"]\n")},
    {FRAMING_SOCKJS_WRAP_XHR, NULL, B(""), B("\n")},
    /* sockjs-protocol EventSource */
    {FRAMING_SOCKJS_WRAP_EVENTSOURCE, NULL, B("o"), B("data: o\r\n\r\n")},
    {FRAMING_SOCKJS_WRAP_EVENTSOURCE, NULL, B("a[\"x\"]"),
     B("data: a[\"x\"]\r\n\r\n")},
    {FRAMING_SOCKJS_WRAP_EVENTSOURCE, NULL, B("a[\"  \\u0000\\n\\r \"]"),
     B("data: a[\"  \\u0000\\n\\r \"]\r\n\r\n")},
    /* escape_selected(frame, "\r\n\0"): '%' too (the client decodeURI()s) */
    {FRAMING_SOCKJS_WRAP_EVENTSOURCE, NULL, B("a[\"100%\",\"%41%zz\"]"),
     B("data: a[\"100%25\",\"%2541%25zz\"]\r\n\r\n")},
    {FRAMING_SOCKJS_WRAP_EVENTSOURCE, NULL, B("x\r\ny\0z%"),
     B("data: x%0D%0Ay%00z%25\r\n\r\n")},
    /* sockjs-protocol HtmlFile */
    {FRAMING_SOCKJS_WRAP_HTMLFILE, NULL, B("o"),
     B("<script>\np(\"o\");\n</script>\r\n")},
    {FRAMING_SOCKJS_WRAP_HTMLFILE, NULL, B("a[\"x\"]"),
     B("<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n")},
    /* a frame built by framing_sockjs_frame_array_item holds "<\/": '<' is
     * \u003c, the backslash doubled */
    {FRAMING_SOCKJS_WRAP_HTMLFILE, NULL, B("a[\"<\\/script>\"]"),
     B("<script>\np(\"a[\\\"\\u003c\\\\/script>\\\"]\");\n</script>\r\n")},
    /* a raw frame with a script end and a comment-script opener */
    {FRAMING_SOCKJS_WRAP_HTMLFILE, NULL, B("</script><!--<script>"),
     B("<script>\np(\"\\u003c\\/script>\\u003c!--\\u003cscript>\");\n"
       "</script>\r\n")},
    /* control characters as JSON.stringify writes them */
    {FRAMING_SOCKJS_WRAP_HTMLFILE, NULL, B("\n\x01"),
     B("<script>\np(\"\\n\\u0001\");\n</script>\r\n")},
    /* sockjs-protocol JsonPolling */
    {FRAMING_SOCKJS_WRAP_JSONP, "callback", B("o"), B("/**/callback(\"o\");\r\n")},
    {FRAMING_SOCKJS_WRAP_JSONP, "callback", B("a[\"x\"]"),
     B("/**/callback(\"a[\\\"x\\\"]\");\r\n")},
    {FRAMING_SOCKJS_WRAP_JSONP, "x", B("a[\"abc\",\"%61bc\"]"),
     B("/**/x(\"a[\\\"abc\\\",\\\"%61bc\\\"]\");\r\n")},
    {FRAMING_SOCKJS_WRAP_JSONP, "x", B("c[3000,\"Go away!\"]"),
     B("/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n")},
    {FRAMING_SOCKJS_WRAP_JSONP, "_jp.a1b2c3d4", B("h"),
     B("/**/_jp.a1b2c3d4(\"h\");\r\n")},
    {FRAMING_SOCKJS_WRAP_JSONP, "x", B("a[\"<\\/\"]\xe2\x80\xa8"),
     B("/**/x(\"a[\\\"<\\\\/\\\"]\\u2028\");\r\n")},
};

static void test_wrap(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(wrap_cases); i++) {
        const struct wrap_case *c = &wrap_cases[i];
        struct gw_buf b = {0};
        char what[64];
        snprintf(what, sizeof what, "wrap case %zu", i);
        assert_int_equal(gw_buf_append(&b, "PRE", 3), 0);
        assert_int_equal(framing_sockjs_wrap(&b, c->w, c->callback,
                                     (const uint8_t *)c->frame, c->frame_len),
                         0);
        assert_bytes(b.data, 3, "PRE", 3, what);
        assert_bytes(b.data + 3, b.len - 3, c->want, c->want_len, what);
        assert_int_equal(b.data[b.len], 0);
        gw_buf_free(&b);
    }
}

/*
 * htmlfile: whatever the message, the chunk holds exactly one "</script"
 * (its own), no "<!--" and one "<script" (its own).
 */
static void test_wrap_htmlfile_script_safe(void **state)
{
    (void)state;
    static const char *msgs[] = {
        "</script>", "</SCRIPT>", "<!--<script>", "<script>alert(1)</script>",
        "<\\/script>", "</", "<", "-->", "\xe2\x80\xa8</script\n>",
    };
    for (size_t i = 0; i < N_ELEMS(msgs); i++) {
        struct gw_buf f = {0}, b = {0};
        assert_int_equal(framing_sockjs_frame_array_begin(&f), 0);
        assert_int_equal(framing_sockjs_frame_array_item(&f, true,
                                                 (const uint8_t *)msgs[i],
                                                 strlen(msgs[i])), 0);
        assert_int_equal(framing_sockjs_frame_array_end(&f), 0);
        for (int raw = 0; raw < 2; raw++) {
            const uint8_t *fr = raw ? (const uint8_t *)msgs[i] : f.data;
            size_t fl = raw ? strlen(msgs[i]) : f.len;
            gw_buf_reset(&b);
            assert_int_equal(framing_sockjs_wrap(&b, FRAMING_SOCKJS_WRAP_HTMLFILE, NULL, fr,
                                         fl), 0);
            size_t inner = b.len - 14; /* without ");\n</script>\r\n" */
            assert_false(contains(b.data + 8, inner - 8, "</"));
            assert_false(contains(b.data + 8, inner - 8, "<!--"));
            assert_false(contains(b.data + 8, inner - 8, "<"));
            assert_true(contains(b.data + inner, 14, "</script>"));
        }
        gw_buf_free(&f);
        gw_buf_free(&b);
    }
}

static void test_wrap_errors(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    const uint8_t *f = (const uint8_t *)"o";
    assert_int_equal(gw_buf_append(&b, "PRE", 3), 0);
    assert_int_equal(framing_sockjs_wrap(&b, FRAMING_SOCKJS_WRAP_JSONP, NULL, f, 1), GW_EINVAL);
    assert_int_equal(framing_sockjs_wrap(&b, FRAMING_SOCKJS_WRAP_JSONP, "", f, 1), GW_EINVAL);
    assert_int_equal(framing_sockjs_wrap(&b, FRAMING_SOCKJS_WRAP_JSONP, "a(b", f, 1),
                     GW_EINVAL);
    assert_int_equal(framing_sockjs_wrap(&b, (enum framing_sockjs_wrap)9, NULL, f, 1),
                     GW_EINVAL);
    assert_int_equal(framing_sockjs_wrap(&b, FRAMING_SOCKJS_WRAP_XHR, NULL, NULL, 1),
                     GW_EINVAL);
    assert_int_equal(framing_sockjs_wrap(NULL, FRAMING_SOCKJS_WRAP_XHR, NULL, f, 1), GW_EINVAL);
    assert_buf_eq(&b, B("PRE"), "unchanged after errors");
    /* an empty frame may be NULL */
    static const char *const empty[] = {
        "\n", "data: \r\n\r\n", "<script>\np(\"\");\n</script>\r\n",
        "/**/cb(\"\");\r\n",
    };
    for (int w = FRAMING_SOCKJS_WRAP_XHR; w <= FRAMING_SOCKJS_WRAP_JSONP; w++) {
        gw_buf_reset(&b);
        assert_int_equal(framing_sockjs_wrap(&b, (enum framing_sockjs_wrap)w, "cb", NULL, 0),
                         0);
        assert_buf_eq(&b, empty[w], strlen(empty[w]), "NULL empty frame");
    }
    gw_buf_reset(&b);
    assert_int_equal(gw_buf_append(&b, "PRE", 3), 0);
    /* all or nothing at the cap, for every transport */
    for (int w = FRAMING_SOCKJS_WRAP_XHR; w <= FRAMING_SOCKJS_WRAP_JSONP; w++) {
        const uint8_t *fr = (const uint8_t *)"a[\"<\\/%\"]";
        b.max = 3 + 9; /* less than any wrapped form needs */
        assert_int_equal(framing_sockjs_wrap(&b, (enum framing_sockjs_wrap)w, "cb", fr, 9),
                         GW_ETOOBIG);
        assert_buf_eq(&b, B("PRE"), "cap");
    }
    gw_buf_free(&b);
}

/* --------------------------------------------------------------- preludes */

static void test_prelude_xhr_streaming(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(framing_sockjs_prelude_xhr_streaming(&b), 0);
    assert_int_equal(b.len, 2049); /* sockjs-protocol: 'h' * 2048 + '\n' */
    for (size_t i = 0; i < 2048; i++)
        assert_int_equal(b.data[i], 'h');
    assert_int_equal(b.data[2048], '\n');
    assert_int_equal(b.data[2049], 0);
    b.max = b.len + 2048;
    assert_int_equal(framing_sockjs_prelude_xhr_streaming(&b), GW_ETOOBIG);
    assert_int_equal(b.len, 2049);
    assert_int_equal(framing_sockjs_prelude_xhr_streaming(NULL), GW_EINVAL);
    gw_buf_free(&b);
}

static void test_prelude_eventsource(void **state)
{
    (void)state;
    struct gw_buf b = {0};
    assert_int_equal(framing_sockjs_prelude_eventsource(&b), 0);
    assert_buf_eq(&b, B("\r\n"), "eventsource prelude");
    assert_int_equal(framing_sockjs_prelude_eventsource(NULL), GW_EINVAL);
    gw_buf_free(&b);
}

/* sockjs-node 0.3.24 lib/trans-htmlfile.js, spelled out. */
#define HF_HEAD                                                              \
    "<!doctype html>\n"                                                      \
    "<html><head>\n"                                                         \
    "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"        \
    "  <meta http-equiv=\"Content-Type\" content=\"text/html; "              \
    "charset=UTF-8\" />\n"                                                   \
    "</head><body><h2>Don't panic!</h2>\n"                                   \
    "  <script>\n"                                                           \
    "    document.domain = document.domain;\n"                               \
    "    var c = parent."
#define HF_TAIL                                                              \
    ";\n"                                                                    \
    "    c.start();\n"                                                       \
    "    function p(d) {c.message(d);};\n"                                   \
    "    window.onload = function() {c.stop();};\n"                          \
    "  </script>"

static void test_prelude_htmlfile(void **state)
{
    (void)state;
    static const struct {
        const char *cb;
        size_t total; /* as sockjs-node 0.3.24 writes it */
    } cases[] = {
        {"callback", 1035}, /* node: template.replace(...).length */
        {"c", 1028},
        {"_jp.a1b2c3d4", 1039},
        {"abcdefghijklmnopqrstuvwxyz012345", 1059},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct gw_buf b = {0}, want = {0};
        const char *cb = cases[i].cb;
        assert_int_equal(framing_sockjs_prelude_htmlfile(&b, cb), 0);
        assert_int_equal(b.len, cases[i].total);
        assert_true(b.len - 4 >= 1024); /* Safari: 1 KiB before content */
        /* head, callback, tail, 653 spaces (1024 - 384 + 13), CRLF CRLF */
        assert_int_equal(gw_buf_appendf(&want, "%s%s%s%*s\r\n\r\n", HF_HEAD,
                                        cb, HF_TAIL, 653, ""), 0);
        assert_buf_eq(&b, (const char *)want.data, want.len, cb);
        gw_buf_free(&b);
        gw_buf_free(&want);
    }
    struct gw_buf b = {0};
    static const char *bad[] = {NULL, "", "a(b)", "x;alert(1)", "a b",
                                "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < N_ELEMS(bad); i++)
        assert_int_equal(framing_sockjs_prelude_htmlfile(&b, bad[i]), GW_EINVAL);
    assert_int_equal(b.len, 0);
    b.max = 1000;
    assert_int_equal(framing_sockjs_prelude_htmlfile(&b, "c"), GW_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(framing_sockjs_prelude_htmlfile(NULL, "c"), GW_EINVAL);
    gw_buf_free(&b);
}

/* -------------------------------------------------------------- callbacks */

static void test_callback_valid(void **state)
{
    (void)state;
    static const struct {
        const char *cb;
        bool ok;
    } cases[] = {
        {"callback", true},
        {"c", true},
        {"_jp.abc123", true},
        {"a-b_c.d", true},
        {"ABCXYZabcxyz0189", true},
        {"abcdefghijklmnopqrstuvwxyz012345", true},   /* 32 */
        {"abcdefghijklmnopqrstuvwxyz0123456", false}, /* 33 */
        {"", false},
        {NULL, false},
        {" ", false},     /* sockjs-protocol: %20 */
        {"*", false},     /* sockjs-protocol */
        {"abc(", false},  /* sockjs-protocol: abc( and abc%28 */
        {"a)", false},
        {"<", false},
        {">", false},
        {"a/b", false},
        {"a\\b", false},
        {"a b", false},
        {"a;b", false},
        {"a=b", false},
        {"a\"b", false},
        {"a'b", false},
        {"a[0]", false},
        {"a,b", false},
        {"a+b", false},
        {"a%28", false},
        {"a\tb", false},
        {"a\nb", false},
        {"caf\xc3\xa9", false},         /* non-ASCII letter */
        {"\xe2\x80\xa8", false},        /* U+2028 */
        {"a\xff", false},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        if (framing_sockjs_callback_valid(cases[i].cb) != cases[i].ok) {
            print_error("callback [%s]: want %d\n",
                        cases[i].cb ? cases[i].cb : "(null)", cases[i].ok);
            fail();
        }
    }
    /* every byte, alone */
    for (int c = 1; c < 256; c++) {
        char s[2] = {(char)c, 0};
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        assert_int_equal(framing_sockjs_callback_valid(s), want);
    }
}

/* ------------------------------------------------------------ iframe page */

#define IFRAME_HEAD                                                          \
    "<!DOCTYPE html>\n"                                                      \
    "<html>\n"                                                               \
    "<head>\n"                                                               \
    "  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n"        \
    "  <meta http-equiv=\"Content-Type\" content=\"text/html; "              \
    "charset=UTF-8\" />\n"                                                   \
    "  <script src=\""
#define IFRAME_TAIL                                                          \
    "\"></script>\n"                                                         \
    "  <script>\n"                                                           \
    "    document.domain = document.domain;\n"                               \
    "    SockJS.bootstrap_iframe();\n"                                       \
    "  </script>\n"                                                          \
    "</head>\n"                                                              \
    "<body>\n"                                                               \
    "  <h2>Don't panic!</h2>\n"                                              \
    "  <p>This is a SockJS hidden iframe. It's used for cross domain "       \
    "magic.</p>\n"                                                           \
    "</body>\n"                                                              \
    "</html>"

#define CDN_URL "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"

static void test_iframe_page(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *attr; /* as it appears in src="..." */
    } cases[] = {
        {CDN_URL, CDN_URL},
        {"/static/sockjs.js", "/static/sockjs.js"},
        {"", ""},
        {"http://x/s.js?a=1&b=2", "http://x/s.js?a=1&amp;b=2"},
        {"http://x/\"><script>alert(1)</script>",
         "http://x/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"},
        {"http://x/'<\"&>", "http://x/&#39;&lt;&quot;&amp;&gt;"},
        {"\"", "&quot;"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        struct gw_buf b = {0}, want = {0};
        assert_int_equal(framing_sockjs_iframe_page(&b, cases[i].url), 0);
        assert_int_equal(gw_buf_appendf(&want, "%s%s%s", IFRAME_HEAD,
                                        cases[i].attr, IFRAME_TAIL), 0);
        assert_buf_eq(&b, (const char *)want.data, want.len, cases[i].url);
        gw_buf_free(&b);
        gw_buf_free(&want);
    }
    struct gw_buf b = {0};
    assert_int_equal(framing_sockjs_iframe_page(&b, NULL), GW_EINVAL);
    assert_int_equal(framing_sockjs_iframe_page(NULL, "x"), GW_EINVAL);
    b.max = 100;
    assert_int_equal(framing_sockjs_iframe_page(&b, "x"), GW_ETOOBIG);
    assert_int_equal(b.len, 0);
    gw_buf_free(&b);
}

static void etag_of(const char *url, char out[44])
{
    struct gw_buf b = {0};
    assert_int_equal(framing_sockjs_iframe_page(&b, url), 0);
    memset(out, 'X', 44);
    framing_sockjs_iframe_etag(b.data, b.len, out);
    gw_buf_free(&b);
}

static void test_iframe_etag(void **state)
{
    (void)state;
    char a[44], a2[44], c[44], d[44];
    /* SHA-1 of the page for CDN_URL, computed by node's crypto on the
     * reference template */
    etag_of(CDN_URL, a);
    assert_string_equal(a, "\"42f6bd5fe45bf993e996067a28610728ced2a695\"");
    assert_int_equal(a[43], 'X'); /* 42 characters and the NUL only */
    etag_of(CDN_URL, a2);
    assert_string_equal(a, a2); /* stable */
    etag_of("https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.js", c);
    assert_string_not_equal(a, c);
    etag_of("", d);
    assert_string_not_equal(a, d);
    assert_string_not_equal(c, d);
    char e[44];
    framing_sockjs_iframe_etag((const uint8_t *)"", 0, e);
    assert_string_equal(e, "\"da39a3ee5e6b4b0d3255bfef95601890afd80709\"");
    framing_sockjs_iframe_etag(NULL, 0, e);
    assert_string_equal(e, "\"da39a3ee5e6b4b0d3255bfef95601890afd80709\"");
    framing_sockjs_iframe_etag((const uint8_t *)"abc", 3, e);
    assert_string_equal(e, "\"a9993e364706816aba3e25717850c26c9cd0d89d\"");
}

/* ---------------------------------------------------------- send bodies */

struct want_msg {
    const char *data;
    size_t len;
};

struct send_case {
    const char *body;
    size_t len;
    size_t max_batch;
    int rc;
    size_t n;
    struct want_msg m[4];
};

static void check_env(const struct envelope *env, const struct send_case *c,
                      int rc, const char *what)
{
    if (rc != c->rc) {
        print_error("%s [%.*s]: rc %d, want %d\n", what, (int)c->len, c->body,
                    rc, c->rc);
        fail();
    }
    if (rc < 0) {
        assert_int_equal(env->n, 0);
        assert_null(env->msgs);
        assert_null(env->data.data);
        return;
    }
    assert_false(env->has_seq);
    assert_int_equal(env->n, c->n);
    assert_true((env->n == 0) == (env->msgs == NULL));
    size_t off = 0;
    for (size_t i = 0; i < c->n; i++) {
        const struct envelope_msg *m = &env->msgs[i];
        assert_false(m->binary);
        assert_int_equal(m->off, off);
        assert_true(m->off + m->len <= env->data.len);
        assert_bytes(env->data.data + m->off, m->len, c->m[i].data,
                     c->m[i].len, what);
        off += m->len;
    }
}

static const struct send_case send_cases[] = {
    /* sockjs-protocol XhrPolling.test_invalid_json and friends */
    {B("[\"a\"]"), 10, 0, 1, {{B("a")}}},
    {B("[\"x"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B(""), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("[]"), 10, 0, 0, {{0}}},
    {B("[]"), 0, 0, 0, {{0}}},
    {B("[\"a\",\"\",\"b c\",\"d\"]"), 4, 0, 4,
     {{B("a")}, {B("")}, {B("b c")}, {B("d")}}},
    /* NUL and every other control character through escapes */
    {B("[\"a\\u0000b\",\"\\u0000\"]"), 10, 0, 2, {{B("a\0b")}, {B("\0")}}},
    {B("[\"\\b\\f\\n\\r\\t\\u0001\\u001F\\u007f\"]"), 10, 0, 1,
     {{B("\b\f\n\r\t\x01\x1f\x7f")}}},
    /* escaped quotes, backslash, solidus */
    {B("[\"\\\"q\\\"\\\\\\/\"]"), 10, 0, 1, {{B("\"q\"\\/")}}},
    /* 2-, 3-, 4-byte UTF-8, raw and escaped (a surrogate pair) */
    {B("[\"caf\xc3\xa9\",\"\xe2\x82\xac\\u20ac\",\"\xf0\x9f\x98\x80"
       "\\ud83d\\ude00\"]"), 10, 0, 3,
     {{B("caf\xc3\xa9")}, {B("\xe2\x82\xac\xe2\x82\xac")},
      {B("\xf0\x9f\x98\x80\xf0\x9f\x98\x80")}}},
    /* sockjs-protocol: characters the client escapes come back decoded */
    {B("[\"\\u00ad\\u0600\\u2000\\u20ff\\ufeff\\ufff0\\uffff\"]"), 10, 0, 1,
     {{B("\xc2\xad\xd8\x80\xe2\x80\x80\xe2\x83\xbf\xef\xbb\xbf\xef\xbf\xb0"
         "\xef\xbf\xbf")}}},
    /* whitespace around and inside */
    {B(" \r\n\t[ \"x\" , \"y\" ]\n"), 10, 0, 2, {{B("x")}, {B("y")}}},
    /* sockjs-protocol EventSource body */
    {B("[\"  \\u0000\\n\\r \"]"), 10, 0, 1, {{B("  \0\n\r ")}}},
    /* max_batch */
    {B("[\"a\",\"b\"]"), 2, 0, 2, {{B("a")}, {B("b")}}},
    {B("[\"a\",\"b\"]"), 1, FRAMING_SOCKJS_SEND_TOO_MANY, 0, {{0}}},
    {B("[\"a\"]"), 0, FRAMING_SOCKJS_SEND_TOO_MANY, 0, {{0}}},
    /* valid JSON, not an array: "Payload expected." */
    {B("null"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("{}"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("{\"0\":\"a\"}"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("\"x\""), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("\"[\\\"x\\\"]\""), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}}, /* no unwrap */
    {B("0"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("1"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("false"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    /* an element not a string: the whole body is refused */
    {B("[1]"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("[\"a\",null]"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("[\"a\",[\"b\"]]"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("[{\"binary\":\"AA==\"}]"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {B("[true]"), 10, FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    /* too many is checked first */
    {B("[1,2]"), 1, FRAMING_SOCKJS_SEND_TOO_MANY, 0, {{0}}},
    /* not JSON: "Broken JSON encoding." */
    {B(" "), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("["), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"a\"]x"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"a\"] [\"b\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"a\",]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("['a']"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"a\nb\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}}, /* raw LF */
    {B("[\"a\0b\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}}, /* raw NUL */
    {B("[\"a\"]\0"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"\\x41\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("\xef\xbb\xbf[\"a\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}}, /* BOM */
    /* invalid UTF-8 and lone surrogates: no way to send them upstream */
    {B("[\"\xff\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"\xc3\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"\xed\xa0\x80\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"\\ud800\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {B("[\"\\udc00x\"]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    /* past jansson's limits */
    {B("[99999999999999999999]"), 10, FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
};

static void test_parse_send(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(send_cases); i++) {
        const struct send_case *c = &send_cases[i];
        struct envelope env;
        memset(&env, 0xA5, sizeof env); /* overwritten on entry */
        int rc = framing_sockjs_parse_send(&env, c->body, c->len, c->max_batch);
        check_env(&env, c, rc, "xhr_send");
        envelope_clear(&env);
        /* the raw jsonp_send body takes the same path */
        memset(&env, 0xA5, sizeof env);
        rc = framing_sockjs_parse_jsonp_send(&env, c->body, c->len, "text/plain",
                                     c->max_batch);
        if (!(c->len >= 2 && c->body[0] == '"')) /* jsonp unwraps those */
            check_env(&env, c, rc, "jsonp_send raw");
        envelope_clear(&env);
    }
    struct envelope env;
    assert_int_equal(framing_sockjs_parse_send(&env, NULL, 0, 10), FRAMING_SOCKJS_SEND_EMPTY);
    assert_int_equal(framing_sockjs_parse_send(&env, NULL, 5, 10), FRAMING_SOCKJS_SEND_EMPTY);
    assert_int_equal(framing_sockjs_parse_send(NULL, "[]", 2, 10), FRAMING_SOCKJS_SEND_EMPTY);
}

/* Deep nesting: jansson's depth limit makes it Broken JSON, never a
 * crash. */
static void test_parse_send_deep(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *p = malloc(2 * depth);
    assert_non_null(p);
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    struct envelope env;
    assert_int_equal(framing_sockjs_parse_send(&env, p, 2 * depth, 10),
                     FRAMING_SOCKJS_SEND_BROKEN);
    assert_int_equal(framing_sockjs_parse_send(&env, p + depth - 2, 4, 10),
                     FRAMING_SOCKJS_SEND_EMPTY); /* [[]]: element not a string */
    free(p);
}

/* Payloads are byte-exact for every byte value a JSON string can hold. */
static void test_parse_send_all_bytes(void **state)
{
    (void)state;
    struct gw_buf body = {0}, want = {0};
    assert_int_equal(gw_buf_append(&body, "[\"", 2), 0);
    for (int c = 0; c < 128; c++) {
        if (c < 0x20 || c == '"' || c == '\\')
            assert_int_equal(gw_buf_appendf(&body, "\\u%04X", c), 0);
        else
            assert_int_equal(gw_buf_appendf(&body, "%c", c), 0);
        uint8_t u = (uint8_t)c;
        assert_int_equal(gw_buf_append(&want, &u, 1), 0);
    }
    assert_int_equal(gw_buf_append(&body, "\"]", 2), 0);
    struct envelope env;
    assert_int_equal(framing_sockjs_parse_send(&env, (const char *)body.data,
                                       body.len, 1), 0);
    assert_int_equal(env.n, 1);
    assert_bytes(env.data.data, env.msgs[0].len, (const char *)want.data,
                 want.len, "all bytes");
    envelope_clear(&env);
    gw_buf_free(&body);
    gw_buf_free(&want);
}

struct jsonp_case {
    const char *ct;
    const char *body;
    size_t len;
    int rc;
    size_t n;
    struct want_msg m[3];
};

#define FORM "application/x-www-form-urlencoded"

static const struct jsonp_case jsonp_cases[] = {
    /* sockjs-protocol JsonPolling */
    {FORM, B("d=%5B%22x%22%5D"), 0, 1, {{B("x")}}},
    {FORM, B("d=%5B%22x"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {FORM, B(""), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {FORM, B("d="), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {FORM, B("p=p"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {FORM, B("d=%5B%5D"), 0, 0, {{0}}},
    {"text/plain", B("[\"%61bc\"]"), 0, 1, {{B("%61bc")}}},
    /* '+' is a space, %2B a plus */
    {FORM, B("d=%5B%22a+b%22%5D"), 0, 1, {{B("a b")}}},
    {FORM, B("d=%5B%22a%2Bb%22%5D"), 0, 1, {{B("a+b")}}},
    {FORM, B("d=[\"a+%2b\",\"%e2%82%ac\"]"), 0, 2,
     {{B("a +")}, {B("\xe2\x82\xac")}}},
    /* escapes inside the JSON survive the URL decoding */
    {FORM, B("d=%5B%22%5Cu0000%5Cn%5C%22%22%5D"), 0, 1, {{B("\0\n\"")}}},
    /* other fields before and after, empty fields, a name alone */
    {FORM, B("a=1&d=%5B%22y%22%5D&z"), 0, 1, {{B("y")}}},
    {FORM, B("&&x&d=%5B%22y%22%5D&&"), 0, 1, {{B("y")}}},
    {FORM, B("dd=%5B%22y%22%5D&D=%5B%5D&d%20=%5B%5D"), FRAMING_SOCKJS_SEND_EMPTY, 0,
     {{0}}},
    {FORM, B("d"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {FORM, B("=d"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    /* the name may be encoded; only the first '=' splits */
    {FORM, B("%64=%5B%22k%22%5D"), 0, 1, {{B("k")}}},
    {FORM, B("d=[\"a=b\"]"), 0, 1, {{B("a=b")}}},
    /* d twice: refused */
    {FORM, B("d=%5B%22x%22%5D&d=%5B%5D"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {FORM, B("d=&d=%5B%5D"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    /* bad % escapes in d: Broken JSON; elsewhere: ignored */
    {FORM, B("d=%5B%22%zz%22%5D"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {FORM, B("d=%5B%22x%22%5D%"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {FORM, B("d=%5B%22x%22%5D%4"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {FORM, B("d=%5B%22x%22%5D%G1"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {FORM, B("a=%zz&d=%5B%22x%22%5D&%=%"), 0, 1, {{B("x")}}},
    /* decoded bytes must be UTF-8; %00 outside a string is not JSON */
    {FORM, B("d=%5B%22%FF%22%5D"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {FORM, B("d=%5B%22x%22%5D%00"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    /* d holds a JSON string: not unwrapped on the form path */
    {FORM, B("d=%22%5B%5D%22"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {FORM, B("d=%5B1%5D"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {FORM, B("d=%5B%22a%22,%22b%22,%22c%22%5D"), 0, 3,
     {{B("a")}, {B("b")}, {B("c")}}},
    {FORM, B("d=%5B%22a%22,%22b%22,%22c%22,%22d%22%5D"),
     FRAMING_SOCKJS_SEND_TOO_MANY, 0, {{0}}},
    /* the media type: parameters, case, spaces */
    {"application/x-www-form-urlencoded; charset=UTF-8",
     B("d=%5B%22x%22%5D"), 0, 1, {{B("x")}}},
    {" Application/X-WWW-Form-Urlencoded ;x", B("d=%5B%22x%22%5D"), 0, 1,
     {{B("x")}}},
    /* raw: text/plain, no type, empty type */
    {"text/plain;charset=UTF-8", B("[\"x\"]"), 0, 1, {{B("x")}}},
    {NULL, B("[\"x\"]"), 0, 1, {{B("x")}}},
    {"", B("[\"x\"]"), 0, 1, {{B("x")}}},
    {" ; charset=x", B("[\"x\"]"), 0, 1, {{B("x")}}},
    {"TEXT/PLAIN", B("[\"x\"]"), 0, 1, {{B("x")}}},
    {"text/plain", B(""), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {"text/plain", B("d=%5B%22x%22%5D"), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    /* raw: a JSON string is decoded once more, as the reference does */
    {"text/plain", B("\"[\\\"x\\\"]\""), 0, 1, {{B("x")}}},
    {"text/plain", B("\"[\\\"\\\\u0000\\\"]\""), 0, 1, {{B("\0")}}},
    {"text/plain", B("\"\""), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {"text/plain", B("\"x\""), FRAMING_SOCKJS_SEND_BROKEN, 0, {{0}}},
    {"text/plain", B("\"\\\"[]\\\"\""), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    /* other types are not read (the reference logs and answers
     * "Payload expected.") */
    {"application/json", B("[\"x\"]"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {"multipart/form-data; boundary=x", B("[\"x\"]"), FRAMING_SOCKJS_SEND_EMPTY, 0,
     {{0}}},
    {"text/plainx", B("[\"x\"]"), FRAMING_SOCKJS_SEND_EMPTY, 0, {{0}}},
    {"application/x-www-form-urlencodedx", B("d=%5B%5D"), FRAMING_SOCKJS_SEND_EMPTY,
     0, {{0}}},
};

static void test_parse_jsonp_send(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(jsonp_cases); i++) {
        const struct jsonp_case *c = &jsonp_cases[i];
        struct send_case sc = {c->body, c->len, 3, c->rc, c->n, {{0}}};
        memcpy(sc.m, c->m, sizeof c->m);
        struct envelope env;
        char what[96];
        snprintf(what, sizeof what, "jsonp case %zu (%s)", i,
                 c->ct ? c->ct : "NULL");
        memset(&env, 0xA5, sizeof env);
        int rc = framing_sockjs_parse_jsonp_send(&env, c->body, c->len, c->ct, 3);
        check_env(&env, &sc, rc, what);
        envelope_clear(&env);
    }
    struct envelope env;
    assert_int_equal(framing_sockjs_parse_jsonp_send(&env, NULL, 0, FORM, 3),
                     FRAMING_SOCKJS_SEND_EMPTY);
    assert_int_equal(framing_sockjs_parse_jsonp_send(&env, NULL, 9, NULL, 3),
                     FRAMING_SOCKJS_SEND_EMPTY);
    assert_int_equal(framing_sockjs_parse_jsonp_send(NULL, "[]", 2, NULL, 3),
                     FRAMING_SOCKJS_SEND_EMPTY);
}

/* Bodies are lengths, not C strings: bytes past len are never read. */
static void test_parse_length_bound(void **state)
{
    (void)state;
    static const char body[] = "d=%5B%22x%22%5D&d=%5B%5D";
    struct envelope env;
    assert_int_equal(framing_sockjs_parse_jsonp_send(&env, body, 15, FORM, 3), 0);
    assert_int_equal(env.n, 1);
    envelope_clear(&env);
    assert_int_equal(framing_sockjs_parse_jsonp_send(&env, body, 14, FORM, 3),
                     FRAMING_SOCKJS_SEND_BROKEN); /* "...%5" */
    assert_int_equal(framing_sockjs_parse_send(&env, "[\"a\"]]", 5, 3), 0);
    envelope_clear(&env);
}

static void test_send_strerror(void **state)
{
    (void)state;
    assert_string_equal(framing_sockjs_send_strerror(FRAMING_SOCKJS_SEND_EMPTY),
                        "Payload expected.");
    assert_string_equal(framing_sockjs_send_strerror(FRAMING_SOCKJS_SEND_BROKEN),
                        "Broken JSON encoding.");
    assert_non_null(framing_sockjs_send_strerror(FRAMING_SOCKJS_SEND_TOO_MANY));
    assert_non_null(framing_sockjs_send_strerror(FRAMING_SOCKJS_SEND_NOMEM));
    assert_non_null(framing_sockjs_send_strerror(FRAMING_SOCKJS_SEND_OK));
    assert_non_null(framing_sockjs_send_strerror(-99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_open_heartbeat),
        cmocka_unit_test(test_frame_close),
        cmocka_unit_test(test_frame_array),
        cmocka_unit_test(test_frame_control_chars),
        cmocka_unit_test(test_frame_server_killer_string),
        cmocka_unit_test(test_frame_long_message),
        cmocka_unit_test(test_frame_item_args_and_cap),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_wrap_htmlfile_script_safe),
        cmocka_unit_test(test_wrap_errors),
        cmocka_unit_test(test_prelude_xhr_streaming),
        cmocka_unit_test(test_prelude_eventsource),
        cmocka_unit_test(test_prelude_htmlfile),
        cmocka_unit_test(test_callback_valid),
        cmocka_unit_test(test_iframe_page),
        cmocka_unit_test(test_iframe_etag),
        cmocka_unit_test(test_parse_send),
        cmocka_unit_test(test_parse_send_deep),
        cmocka_unit_test(test_parse_send_all_bytes),
        cmocka_unit_test(test_parse_jsonp_send),
        cmocka_unit_test(test_parse_length_bound),
        cmocka_unit_test(test_send_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

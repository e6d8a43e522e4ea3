/* sockjs_front.c - routing and headers of the SockJS dialect. */
#include "sockjs_front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/rand.h>

#include "framing_sockjs.h"
#include "access_log.h"
#include "gw_log.h"
#include "http_util.h"
#include "envelope_batch.h"
#include "session.h"
#include "transport_sockjs.h"

#define SJS_NO_CACHE "no-store, no-cache, no-transform, must-revalidate, max-age=0"
#define SJS_YEAR 31536000
#define SJS_ID_MAX 128
/* Close codes the SockJS protocol answers with (frames, not upstream) */
#define SJS_CLOSE_TRY_AGAIN 1013          /* too many sessions */
#define SJS_CLOSE_ANOTHER_CONNECTION 2010 /* a receiving request is open */

static enum session_binary sjs_binary_policy(int sockjs_binary)
{
    switch ((enum gw_sockjs_binary)sockjs_binary) {
    case GW_SOCKJS_BINARY_DROP:
        return SESSION_BINARY_DROP;
    case GW_SOCKJS_BINARY_CLOSE:
        return SESSION_BINARY_CLOSE;
    case GW_SOCKJS_BINARY_BASE64:
    default:
        return SESSION_BINARY_PASS; /* the SockJS sink writes it as base64 */
    }
}

static const struct transport_sockjs_kind transports[] = {
    { "xhr", "application/javascript; charset=UTF-8", FRAMING_SOCKJS_WRAP_XHR, false, true, false },
    { "xhr_streaming", "application/javascript; charset=UTF-8", FRAMING_SOCKJS_WRAP_XHR, true, true, false },
    { "eventsource", "text/event-stream", FRAMING_SOCKJS_WRAP_EVENTSOURCE, true, false, false },
    { "htmlfile", "text/html; charset=UTF-8", FRAMING_SOCKJS_WRAP_HTMLFILE, true, false, true },
    { "jsonp", "application/javascript; charset=UTF-8", FRAMING_SOCKJS_WRAP_JSONP, false, false, true },
};

/* ------------------------------------------------------------- helpers */


static void reply_text(struct evhttp_request *req, int status,
                       const char *ctype, const char *body)
{
    if (ctype)
        http_out_header(req, "Content-Type", ctype);
    http_reply_bytes(req, status, body, body ? strlen(body) : 0);
}

static void not_found(struct evhttp_request *req)
{
    reply_text(req, 404, "text/plain; charset=UTF-8", "Not Found");
}

static void no_cache(struct evhttp_request *req)
{
    http_out_header(req, "Cache-Control", SJS_NO_CACHE);
}

/*
 * CORS as the reference server does it (echo the Origin with credentials,
 * "*" without one), restricted by the route's origins list: "*" allows
 * any, a list allows those, empty allows the same origin only (as for the
 * pollgate protocol). Answers 403 and returns false for a refused Origin.
 */
static bool cors(struct evhttp_request *req, const struct gw_route *r)
{
    const char *origin = http_in_header(req, "Origin");
    if (origin) {
        /* "null" (sandboxed or file: pages) has no host: only "*" lets it in */
        bool ok = strcmp(origin, "null") == 0
                      ? r->origins_any
                      : http_origin_allowed(r, origin, http_in_header(req, "Host"),
                                            http_request_tls(req));
        if (!ok) {
            log_info("%s: origin %s refused on SockJS route %s",
                     http_client_addr(req), origin, r->name);
            no_cache(req);
            reply_text(req, 403, "text/plain; charset=UTF-8",
                       "Origin not allowed.");
            return false;
        }
        http_out_header(req, "Access-Control-Allow-Origin", origin);
        http_out_header(req, "Access-Control-Allow-Credentials", "true");
    } else {
        /* like the reference: any page, but then without credentials */
        http_out_header(req, "Access-Control-Allow-Origin", "*");
    }
    http_out_header(req, "Vary", "Origin");
    const char *rh = http_in_header(req, "Access-Control-Request-Headers");
    if (rh && *rh)
        http_out_header(req, "Access-Control-Allow-Headers", rh);
    return true;
}

/*
 * The script transports (jsonp, its jsonp_send form post, htmlfile) are
 * made by <script>, <iframe> and <form> elements, which send no Origin in
 * the browsers that need them: any page could open a session as the user
 * (with the route's forwarded Cookie). On a route whose origins are not
 * "*", such a request must name its page instead: a Referer whose origin
 * is allowed by the same rule as Origin. A request without either is
 * refused too, because a hostile page can suppress its Referer
 * (Referrer-Policy: no-referrer); a page using these transports on such a
 * route must not do so. An Origin, when sent, was checked by cors().
 * Answers 403 and returns false when refused.
 */
static bool script_origin_ok(struct evhttp_request *req, const struct gw_route *r)
{
    if (r->origins_any || http_in_header(req, "Origin"))
        return true;
    const char *ref = http_in_header(req, "Referer");
    char origin[512];
    bool ok = http_referer_origin(ref, origin, sizeof origin) &&
              http_origin_allowed(r, origin, http_in_header(req, "Host"),
                                  http_request_tls(req));
    if (ok)
        return true;
    /* the origin only: a page URL may carry the application's secrets */
    log_info("%s: SockJS script transport refused on route %s: %s%.80s",
             http_client_addr(req), r->name,
             !ref ? "no Origin or Referer"
                  : origin[0] ? "Referer origin not allowed: "
                              : "Referer not an http(s) URL",
             origin);
    reply_text(req, 403, "text/plain; charset=UTF-8", "Referer not allowed.");
    return false;
}

/* Cacheable for a year (preflights, the iframe page). */
static void long_cache(struct evhttp_request *req)
{
    char exp[64], cc[48];
    time_t t = time(NULL) + SJS_YEAR;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(exp, sizeof exp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(cc, sizeof cc, "public, max-age=%d", SJS_YEAR);
    http_out_header(req, "Cache-Control", cc);
    http_out_header(req, "Expires", exp);
}

static void options_reply(struct evhttp_request *req, const char *methods)
{
    char age[32];
    long_cache(req);
    snprintf(age, sizeof age, "%d", SJS_YEAR);
    http_out_header(req, "Access-Control-Max-Age", age);
    http_out_header(req, "Access-Control-Allow-Methods", methods);
    evhttp_send_reply(req, 204, "No Content", NULL);
}

/* JSESSIONID=<incoming or dummy>; path=/ when cookie_needed. */
static void session_cookie(struct evhttp_request *req, const struct gw_route *r)
{
    if (!r->cookie_needed)
        return;
    const char *c = http_in_header(req, "Cookie");
    char v[160] = "dummy";
    const char *p = c ? strstr(c, "JSESSIONID=") : NULL;
    if (p) {
        p += 11;
        size_t n = strcspn(p, ";, ");
        bool ok = n > 0 && n < sizeof v;
        for (size_t i = 0; ok && i < n; i++)
            ok = p[i] > 32 && p[i] < 127 && p[i] != '"' && p[i] != '\\';
        if (ok) {
            memcpy(v, p, n);
            v[n] = 0;
        }
    }
    char cookie[200];
    snprintf(cookie, sizeof cookie, "JSESSIONID=%s; path=/", v);
    http_out_header(req, "Set-Cookie", cookie);
}

/* --------------------------------------------------- static endpoints */

static void handle_info(const struct sockjs_front_ctx *ctx, struct evhttp_request *req,
                        const struct gw_route *r)
{
    (void)ctx;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m == EVHTTP_REQ_OPTIONS) {
        options_reply(req, "OPTIONS, GET");
        return;
    }
    if (m != EVHTTP_REQ_GET) {
        http_out_header(req, "Allow", "OPTIONS, GET");
        reply_text(req, 405, NULL, NULL);
        return;
    }
    uint32_t entropy = 0;
    RAND_bytes((unsigned char *)&entropy, sizeof entropy);
    char body[160];
    snprintf(body, sizeof body, "{\"websocket\":%s,\"cookie_needed\":%s,"
             "\"origins\":[\"*:*\"],\"entropy\":%u}",
             r->websocket ? "true" : "false",
             r->cookie_needed ? "true" : "false", entropy);
    no_cache(req);
    reply_text(req, 200, "application/json; charset=UTF-8", body);
}

static bool iframe_name_ok(const char *rest)
{
    if (strcmp(rest, "/iframe.html") == 0)
        return true;
    if (strncmp(rest, "/iframe-", 8) != 0)
        return false;
    const char *p = rest + 8;
    size_t n = strlen(p);
    if (n < 5 || strcmp(p + n - 5, ".html") != 0)
        return false;
    for (size_t i = 0; i < n - 5; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void handle_iframe(struct evhttp_request *req, const struct gw_route *r)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        http_out_header(req, "Allow", "GET");
        reply_text(req, 405, NULL, NULL);
        return;
    }
    struct gw_buf page = {0};
    char etag[44];
    framing_sockjs_iframe_page(&page, r->sockjs_url ? r->sockjs_url : "/sockjs.min.js");
    framing_sockjs_iframe_etag(page.data, page.len, etag);
    long_cache(req);
    http_out_header(req, "ETag", etag);
    const char *inm = http_in_header(req, "If-None-Match");
    if (inm && strcmp(inm, etag) == 0) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
    } else {
        http_out_header(req, "Content-Type", "text/html; charset=UTF-8");
        http_reply_bytes(req, 200, page.data, page.len);
    }
    gw_buf_free(&page);
}

/* ------------------------------------------------------------ sessions */

static void close_frame_reply(const struct sockjs_front_ctx *ctx, struct transport_sockjs_sink *k,
                              uint16_t code, const char *reason)
{
    (void)ctx;
    struct gw_buf f = {0};
    framing_sockjs_frame_close(&f, code, reason, strlen(reason));
    transport_sockjs_send_frame_and_end(k, &f);
    gw_buf_free(&f);
}

static void handle_receive(const struct sockjs_front_ctx *ctx, struct evhttp_request *req,
                           const struct gw_route *r, const char *key,
                           size_t key_len, const struct transport_sockjs_kind *tr)
{
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *cb = NULL;
    if (tr->callback) {
        cb = http_query(req, &q, "c");
        if (!cb && tr->wrap == FRAMING_SOCKJS_WRAP_JSONP)
            cb = http_query(req, &q, "callback");
        if (!cb) {
            reply_text(req, 500, "text/plain; charset=UTF-8",
                       "\"callback\" parameter required");
            goto out;
        }
        if (!framing_sockjs_callback_valid(cb)) {
            reply_text(req, 500, "text/plain; charset=UTF-8",
                       "invalid \"callback\" parameter");
            goto out;
        }
    }
    session_cookie(req, r);
    const struct transport_sockjs_ctx *tc = &ctx->tctx;
    struct transport_sockjs_sink *k = transport_sockjs_new(tc, req, tr, cb, r->response_limit);
    if (!k) {
        reply_text(req, 503, "text/plain; charset=UTF-8", "Out of memory.");
        goto out;
    }
    struct session *s = session_find_client(ctx->sessions, r, key, key_len);
    if (!s) {
        const char *addr = http_client_addr(req);
        struct session_open_params p = {
            .route = r,
            .opener = transport_sockjs_session_sink(k),
            .id = key,
            .id_len = key_len,
        };
        const struct session_policy pol = {
            .id_kind = SESSION_ID_CLIENT,
            .idle = SESSION_IDLE_REAP,
            .failed_open = SESSION_FAILED_OPEN_TOMBSTONE,
            .binary = sjs_binary_policy(r->sockjs_binary),
            .idle_ms = r->disconnect_delay_ms,
            .drain_reason = "Server shutting down",
        };
        enum session_open_err orc = http_session_open(req, ctx->sessions, &pol,
                                                      &p, &s);
        switch (orc) {
        case SESSION_OPEN_OK:
            log_info("%s: SockJS session %.*s opened (route %s, %s)", addr,
                     GW_LOG_ID(key, key_len), r->name, tr->name);
            transport_sockjs_start(tc, k, s, true);
            break;
        case SESSION_OPEN_FULL:
        case SESSION_OPEN_CLIENT_FULL:
            close_frame_reply(ctx, k, SJS_CLOSE_TRY_AGAIN,
                              "Too many sessions, try again later");
            break;
        case SESSION_OPEN_DRAINING:
            close_frame_reply(ctx, k, WS_CLOSE_GOING_AWAY, "Server shutting down");
            break;
        default:
            close_frame_reply(ctx, k, WS_CLOSE_INTERNAL,
                              "Cannot start the upstream connection");
            break;
        }
        goto out;
    }
    if (session_state(s) == SESSION_FINISHED) {
        close_frame_reply(ctx, k, session_close_code(s), session_close_reason(s));
        goto out;
    }
    if (session_receiving(s)) {
        close_frame_reply(ctx, k, SJS_CLOSE_ANOTHER_CONNECTION,
                          "Another connection still open");
        goto out;
    }
    transport_sockjs_start(tc, k, s, false);
out:
    evhttp_clear_headers(&q);
}

static void sjs_send_error(struct evhttp_request *req, int rc)
{
    reply_text(req, 500, "text/plain; charset=UTF-8", framing_sockjs_send_strerror(rc));
}

static void handle_send(const struct sockjs_front_ctx *ctx, struct evhttp_request *req,
                        const struct gw_route *r, const char *key,
                        size_t key_len, bool jsonp)
{
    struct session *s = session_find_client(ctx->sessions, r, key, key_len);
    if (!s || session_state(s) == SESSION_OPENING ||
        session_state(s) == SESSION_FINISHED) {
        not_found(req);
        return;
    }
    session_cookie(req, r);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    struct envelope env = {0};
    int rc = jsonp ? framing_sockjs_parse_jsonp_send(&env, body, len,
                                             http_in_header(req, "Content-Type"),
                                             session_config(s)->max_batch)
                   : framing_sockjs_parse_send(&env, body, len,
                                               session_config(s)->max_batch);
    if (rc != FRAMING_SOCKJS_SEND_OK) {
        envelope_clear(&env);
        sjs_send_error(req, rc);
        return;
    }
    struct envelope_batch eb;
    enum session_send_result res = envelope_batch_init(&eb, &env) < 0
        ? SESSION_SEND_FULL : session_send(s, &eb.b);
    envelope_batch_clear(&eb);
    envelope_clear(&env);
    session_touch(s);
    switch (res) {
    case SESSION_SEND_OK:
    case SESSION_SEND_DUPLICATE:
        if (jsonp)
            reply_text(req, 200, "text/plain; charset=UTF-8", "ok");
        else
            reply_text(req, 204, "text/plain; charset=UTF-8", NULL);
        break;
    case SESSION_SEND_FULL:
        /* SockJS has no retry-after: refuse loudly rather than drop */
        http_out_header(req, "Retry-After", "1");
        reply_text(req, 503, "text/plain; charset=UTF-8",
                   "Upstream is not keeping up.");
        break;
    default:
        not_found(req);
        break;
    }
}

/* A server or session segment: non-empty, no '/' and no '.'. */
static size_t segment(const char *p)
{
    size_t n = strcspn(p, "/");
    for (size_t i = 0; i < n; i++)
        if (p[i] == '.')
            return 0;
    return n;
}

static void handle_session_url(const struct sockjs_front_ctx *ctx,
                               struct evhttp_request *req,
                               const struct gw_route *r, const char *rest)
{
    const char *server = rest + 1;
    size_t sn = segment(server);
    /* clients send three digits; anything past the session id bound is
     * not a SockJS URL (and would be logged and echoed at any length) */
    if (!sn || sn > SJS_ID_MAX || server[sn] != '/') {
        not_found(req);
        return;
    }
    const char *sess = server + sn + 1;
    size_t in = segment(sess);
    if (!in || in > SJS_ID_MAX || sess[in] != '/') {
        not_found(req);
        return;
    }
    const char *name = sess + in + 1;
    /* Key: the client's session id, within this route (the server part is
     * for load balancers and does not matter inside one process). */
    char key[SJS_ID_MAX + 1];
    size_t kl = in;
    memcpy(key, sess, in);
    key[in] = 0;
    access_log_note(req, NULL, key, kl, name);
    if (strcmp(name, "websocket") == 0) {
        /* each WebSocket is a session of its own (as in the reference):
         * the URL's session id names nothing here */
        if (r->websocket)
            transport_ws_handle(&ctx->ws, req, r, TRANSPORT_WS_SOCKJS);
        else
            not_found(req);
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    bool is_send = !strcmp(name, "xhr_send"), is_jsend = !strcmp(name, "jsonp_send");
    const struct transport_sockjs_kind *tr = NULL;
    for (size_t i = 0; i < sizeof transports / sizeof *transports; i++)
        if (!strcmp(name, transports[i].name))
            tr = &transports[i];
    bool script = is_jsend || (tr && tr->callback);
    if ((!tr && !is_send && !is_jsend) || (script && !r->sockjs_jsonp)) {
        not_found(req);
        return;
    }
    bool post = is_send || is_jsend || tr->post;
    if (m == EVHTTP_REQ_OPTIONS) {
        session_cookie(req, r);
        options_reply(req, post ? "OPTIONS, POST" : "OPTIONS, GET");
        return;
    }
    if ((post && m != EVHTTP_REQ_POST) || (!post && m != EVHTTP_REQ_GET)) {
        http_out_header(req, "Allow", post ? "OPTIONS, POST" : "OPTIONS, GET");
        reply_text(req, 405, NULL, NULL);
        return;
    }
    no_cache(req);
    if (script && !script_origin_ok(req, r))
        return;
    if (tr || is_jsend) /* script and text responses */
        http_out_header(req, "X-Content-Type-Options", "nosniff");
    if (tr)
        handle_receive(ctx, req, r, key, kl, tr);
    else
        handle_send(ctx, req, r, key, kl, is_jsend);
}

/* ------------------------------------------------------------ dispatch */

static size_t base_of(const struct gw_route *r, char *out, size_t cap)
{
    if (r->sockjs_path)
        return (size_t)snprintf(out, cap, "%s", r->sockjs_path);
    return (size_t)snprintf(out, cap, "%s/sockjs",
                            strcmp(r->path, "/") ? r->path : "");
}

const struct gw_route *sockjs_front_match(const struct gw_config *cfg,
                                    const char *path, size_t *route_idx,
                                    const char **rest)
{
    const struct gw_route *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct gw_route *r = &cfg->routes[i];
        if (!r->sockjs)
            continue;
        char base[512];
        size_t n = base_of(r, base, sizeof base);
        if (n < sizeof base && strncmp(path, base, n) == 0 &&
            (path[n] == '/' || path[n] == 0) && (!best || n > best_len)) {
            best = r;
            best_len = n;
            *route_idx = i;
        }
    }
    if (best)
        *rest = path + best_len;
    return best;
}

struct base_want {
    const char *base;
    size_t len;
};

static bool base_is(const struct gw_route *r, void *arg)
{
    const struct base_want *w = arg;
    char base[512];
    size_t n = base_of(r, base, sizeof base);
    return r->sockjs && n == w->len && memcmp(base, w->base, n) == 0;
}

const struct gw_route *sockjs_front_session_route(struct session_table *t,
                                                  const char *path,
                                                  const char **rest)
{
    /* "<base>/<server>/<session>/<transport>": the last three segments */
    const char *seg[3] = { NULL, NULL, NULL };
    const char *p = path + strlen(path);
    for (int i = 2; i >= 0; i--) {
        while (p > path && p[-1] != '/')
            p--;
        if (p == path)
            return NULL;
        seg[i] = p;
        p--;
    }
    size_t id_len = (size_t)(seg[2] - seg[1] - 1);
    /* each WebSocket is a session of its own: its URL names nothing */
    if (strcmp(seg[2], "websocket") == 0 || id_len == 0 || id_len > SJS_ID_MAX)
        return NULL;
    struct base_want w = { path, (size_t)(p - path) };
    struct session *s = session_find_client_where(t, seg[1], id_len, base_is, &w);
    if (!s)
        return NULL;
    *rest = p;
    return session_route(s);
}

void sockjs_front_handle(const struct sockjs_front_ctx *ctx, struct evhttp_request *req,
                   const struct gw_route *r, size_t route_idx,
                   const char *rest)
{
    if (!cors(req, r))
        return;
    if (*rest == 0 || strcmp(rest, "/") == 0) {
        enum evhttp_cmd_type m = evhttp_request_get_command(req);
        if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
            http_out_header(req, "Allow", "GET");
            reply_text(req, 405, NULL, NULL);
            return;
        }
        reply_text(req, 200, "text/plain; charset=UTF-8", "Welcome to SockJS!\n");
        return;
    }
    if (strcmp(rest, "/info") == 0) {
        handle_info(ctx, req, r);
        return;
    }
    if (iframe_name_ok(rest)) {
        handle_iframe(req, r);
        return;
    }
    if (strcmp(rest, "/websocket") == 0) {
        if (r->websocket)
            transport_ws_handle(&ctx->ws, req, r, TRANSPORT_WS_RAW);
        else
            not_found(req);
        return;
    }
    handle_session_url(ctx, req, r, rest);
}

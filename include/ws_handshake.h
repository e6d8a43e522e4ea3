/*
 * ws_handshake.h - WebSocket URL parsing, opening-handshake request builder
 * and incremental 101 response parser (client side, RFC 6455 section 4),
 * and the server side: validating a browser's upgrade request and building
 * the 101 answer (RFC 6455 section 4.2). Pure: no sockets. The response
 * parser uses Debian's libhttp-parser.
 */
#ifndef WS_HANDSHAKE_H
#define WS_HANDSHAKE_H

#include "gw_common.h"

/* ------------------------------------------------------------------- URL */

struct ws_url {
    bool tls;          /* wss:// */
    char *host;        /* new: host name or address, IPv6 without brackets */
    uint16_t port;     /* explicit or 80/443 */
    char *resource;    /* new: path + "?" + query, at least "/" */
    char *host_header; /* new: value for the Host header ("h", "h:p", "[v6]:p";
                          port omitted when default) */
};

/* Parse ws:// or wss:// URL (userinfo and fragment are rejected).
 * On success fills *url (free with ws_url_clear). On failure returns
 * GW_EINVAL (GW_ENOMEM) with the reason in err and *url zeroed (so
 * ws_url_clear is harmless). The scheme is case-insensitive; the host is
 * kept as written. Spaces, control and non-ASCII bytes are rejected
 * anywhere; an all-numeric host must be a dotted-quad IPv4 address; IPv6
 * needs brackets and zone ids are not supported. ws_url_clear(NULL) is a
 * no-op. */
int ws_url_parse(const char *s, struct ws_url *url, struct gw_error *err);
void ws_url_clear(struct ws_url *url);

/* -------------------------------------------------------------- request */

/* A header the caller adds to the upgrade request (borrowed strings). */
struct ws_header {
    const char *name;
    const char *value;
};

/* Sec-WebSocket-Key: base64 of 16 bytes from OpenSSL's CSPRNG.
 * out must hold 25 bytes (24 + NUL). Returns 0 or GW_EIO. */
int ws_handshake_key_new(char out[25]);

/* Expected Sec-WebSocket-Accept for key; out holds 29 bytes (28 + NUL).
 * If OpenSSL fails, out is "" (which never matches a response). */
void ws_handshake_accept(const char *key, char out[29]);

/*
 * Append the complete GET upgrade request to out.
 * protocols: comma-separated subprotocol list to offer, or NULL ("" or
 * blanks = none); each element must be an HTTP token. It is sent
 * normalised ("a, b").
 * headers: extra headers (n may be 0), sent in order after the handshake's
 * own. Names that are not HTTP tokens (empty, spaces, ':', CR/LF...),
 * values with CR, LF or any other control character but HTAB, and names
 * that the handshake owns (case-insensitive: Host, Upgrade, Connection,
 * Sec-WebSocket-*, Content-Length, Transfer-Encoding) are rejected with
 * GW_EINVAL and err says which header. key must be base64 text.
 * All or nothing: on any error out is left as it was (GW_ETOOBIG when
 * out->max would be exceeded, GW_ENOMEM).
 */
int ws_handshake_build_request(struct gw_buf *out, const struct ws_url *url,
                               const char *key, const char *protocols,
                               const struct ws_header *headers, size_t n,
                               struct gw_error *err);

/* ------------------------------------------------------------- response */

enum ws_hs_fail {
    WS_HS_OK = 0,
    WS_HS_MALFORMED,      /* not parseable HTTP */
    WS_HS_TOO_LARGE,      /* headers exceed the limit */
    WS_HS_STATUS,         /* status other than 101 (see status) */
    WS_HS_NO_UPGRADE,     /* Upgrade: websocket missing */
    WS_HS_NO_CONNECTION,  /* Connection: upgrade missing */
    WS_HS_BAD_ACCEPT,     /* Sec-WebSocket-Accept missing or wrong */
    WS_HS_EXTENSION,      /* server chose an extension we did not offer */
    WS_HS_PROTOCOL,       /* server chose a subprotocol we did not offer, or
                             several */
};

struct ws_handshake_resp; /* opaque */

/*
 * New parser expecting the accept value for key, with the subprotocols we
 * offered (comma-separated, or NULL / "" for none) and a cap on the header
 * bytes: status line through the blank line (0 = 16 KiB). Strings are
 * copied. NULL if key is NULL or memory runs out. Free with
 * ws_handshake_resp_free (NULL is a no-op).
 */
struct ws_handshake_resp *ws_handshake_resp_new(const char *key,
                                                const char *protocols,
                                                size_t max_header_bytes);
void ws_handshake_resp_free(struct ws_handshake_resp *r);

/*
 * Feed response bytes. *consumed is set to the bytes used: on success it
 * ends exactly after the blank line, so what follows is frame data.
 * Returns GW_EAGAIN (need more; then *consumed == len), 0 (valid 101
 * handshake), or GW_EPROTO / GW_ETOOBIG (GW_ENOMEM) with
 * ws_handshake_resp_fail() saying why. A non-101 status fails as soon as
 * the status line is complete. Once finished, further feeds return the
 * same result and consume nothing. A zero-length feed returns GW_EAGAIN
 * (end of stream is the caller's business: before 0 it is a failure).
 */
int ws_handshake_resp_feed(struct ws_handshake_resp *r, const char *data,
                           size_t len, size_t *consumed);

enum ws_hs_fail ws_handshake_resp_fail(const struct ws_handshake_resp *r);
/* Status code seen (0 before the status line is complete). */
int ws_handshake_resp_status(const struct ws_handshake_resp *r);
/* Chosen subprotocol or NULL (always NULL unless the feed returned 0);
 * borrowed from r. */
const char *ws_handshake_resp_protocol(const struct ws_handshake_resp *r);
/* Human-readable failure ("upgrade refused: HTTP 403 Forbidden", ...),
 * "" while there is none; peer text in it is sanitised to printable
 * ASCII. Borrowed from r. */
const char *ws_handshake_resp_error(const struct ws_handshake_resp *r);

/* ------------------------------------------- server side (from browsers) */

/*
 * Verdict on a browser's upgrade request, in the order the checks run.
 * The texts are those of the SockJS reference server, so clients that
 * know them see the same answers.
 */
enum ws_upgrade_result {
    WS_UP_OK = 0,          /* 101 */
    WS_UP_METHOD,          /* 405, Allow: GET, empty body */
    WS_UP_NO_UPGRADE,      /* 400 Can "Upgrade" only to "WebSocket". */
    WS_UP_NO_CONNECTION,   /* 400 "Connection" must be "Upgrade". */
    WS_UP_VERSION,         /* 426, Sec-WebSocket-Version: 13 (missing or
                              other version) */
    WS_UP_BAD_KEY,         /* 400, Sec-WebSocket-Key missing or not the
                              base64 of 16 bytes */
};

/* Header lookup: the first value of header name (case-insensitive), or
 * NULL; borrowed for as long as the request lives. */
typedef const char *(*ws_header_get_fn)(void *arg, const char *name);

struct ws_upgrade {
    enum ws_upgrade_result result;
    int status;                /* 101, 400, 405 or 426 */
    const char *reason;        /* static HTTP reason phrase */
    const char *body;          /* static response body ("" for none) */
    const char *extra_name;    /* static extra header to send, or NULL */
    const char *extra_value;   /* ("Allow: GET", "Sec-WebSocket-Version:
                                  13") */
    char key[25];              /* Sec-WebSocket-Key (WS_UP_OK only) */
    const char *protocols;     /* offered Sec-WebSocket-Protocol value,
                                  borrowed from the request, or NULL */
};

/*
 * Check an upgrade request: method (e.g. "GET") and its headers through
 * get(arg, name). Always fills *up; returns 0 for a valid request (answer
 * 101), GW_EPROTO otherwise (answer up->status with up->extra_* and
 * up->body). Upgrade must list "websocket" and Connection "upgrade"
 * (case-insensitive, in comma lists); Sec-WebSocket-Extensions is ignored
 * (every extension is declined by not answering it).
 */
int ws_handshake_check_request(const char *method, ws_header_get_fn get,
                               void *arg, struct ws_upgrade *up);

/* A header array as a lookup source: ws_header_list_get(&list, name). */
struct ws_header_list {
    const struct ws_header *h;   /* borrowed */
    size_t n;
};
const char *ws_header_list_get(void *list, const char *name);

/*
 * Choose a subprotocol: the first element of acceptable (a comma list in
 * order of preference, e.g. the one value an upstream chose) that the
 * browser offered (the Sec-WebSocket-Protocol list; case-sensitive, as
 * RFC 6455 says). Copies it NUL-terminated into out[out_size] and returns
 * 1; returns 0 if none matches (then answer without a protocol), or
 * GW_ETOOBIG if the match does not fit in out.
 */
int ws_handshake_select_protocol(const char *offered, const char *acceptable,
                                 char *out, size_t out_size);

/*
 * Append the 101 response for key to out: Upgrade, Connection,
 * Sec-WebSocket-Accept and, if protocol is non-NULL, Sec-WebSocket-Protocol.
 * Never an extension (permessage-deflate is always declined). protocol must
 * be an HTTP token and key base64 text (GW_EINVAL otherwise); GW_ETOOBIG /
 * GW_ENOMEM from the buffer. All or nothing.
 */
int ws_handshake_build_response(struct gw_buf *out, const char *key,
                                 const char *protocol);

#endif

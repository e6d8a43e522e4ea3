/*
 * access_log.h - the access log ([gateway] access_log): one line per
 * request on the public listeners, buffered and written without blocking
 * the event loop.
 *
 * Line format (combined-log-like, fields separated by one space):
 *
 *   ADDR - - [TIME] "METHOD PATH HTTP/V" STATUS BYTES "-" "UA" MS SID ROUTE TRANSPORT IN END
 *
 *   ADDR      client address (trusted_proxies applied)
 *   TIME      arrival of the request, 06/Dec/2026:13:05:01 +0000
 *   PATH      the path only (never the query); session ids cut as in the
 *             error log (GW_LOG_ID: 8 characters of a native id, then ...)
 *   STATUS    the status sent; 101 for a WebSocket (logged when it ends);
 *             499 for a request the browser dropped before any answer
 *   BYTES     response body bytes (Content-Length, or the bytes streamed;
 *             for a WebSocket the frame bytes sent to the browser)
 *   "-"       the referer, never logged (it can carry secrets)
 *   UA        User-Agent, at most 63 characters, quotes and controls as ?
 *   MS        duration in milliseconds, 3 decimals ("-" when unknown)
 *   SID       the session's id cut like PATH, or -
 *   ROUTE     route name, or -
 *   TRANSPORT the endpoint: poll events send ack close open ws (native),
 *             xhr xhr_streaming eventsource htmlfile jsonp xhr_send
 *             jsonp_send websocket (SockJS), or -
 *   IN        request body bytes (WebSocket: frame bytes from the browser)
 *   END       done (answered), gone (the browser dropped the connection
 *             before the response ended) or cut (connection closed by the
 *             request limits before a request was complete: 408/400)
 *
 * Requests in flight are kept in a table indexed by the connection's
 * descriptor (one request at a time per HTTP/1.1 connection in evhttp),
 * grown by doubling: no allocation or search per request. Everything here
 * is one comparison when the access log is off (access_log_g == NULL).
 */
#ifndef ACCESS_LOG_H
#define ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp_request;
struct evhttp_connection;
struct access_log;

/* The process's access log, or NULL when off. */
extern struct access_log *access_log_g;

/* Open target ("off" or NULL: nothing; "stderr"; a path, created 0640,
 * appended to). Lines past buffer_limit bytes waiting to be written are
 * dropped and counted. 0 or GW_EIO (logged). */
int access_log_open(struct event_base *base, const char *target,
                    uint64_t buffer_limit);
/* Write what is buffered (blocking at most a moment) and close. */
void access_log_close(void);
/* SIGUSR1: reopen the file (logrotate); on failure the old one stays. */
void access_log_reopen(void);
/* Lines dropped because the buffer was full (0 when off). */
uint64_t access_log_dropped(void);

void access_log_begin_(struct evhttp_request *req);
void access_log_note_(struct evhttp_request *req, const char *route,
                      const char *sid, size_t sid_len, const char *transport);
void access_log_bytes_(struct evhttp_request *req, size_t n);
void access_log_done_(struct evhttp_request *req);
void access_log_gone_(struct evhttp_connection *evcon,
                      struct evhttp_request *req);
void access_log_ws_end_(struct evhttp_connection *evcon, uint64_t out,
                        uint64_t in);
void access_log_cut_(const char *addr, int status);

/* A request arrived (the request callback's first step). */
static inline void access_log_begin(struct evhttp_request *req)
{ if (access_log_g) access_log_begin_(req); }
/* What the request is about; NULL leaves a field as it is. transport is
 * copied (at most 15 characters). */
static inline void access_log_note(struct evhttp_request *req,
                                   const char *route, const char *sid,
                                   size_t sid_len, const char *transport)
{ if (access_log_g) access_log_note_(req, route, sid, sid_len, transport); }
/* n body bytes of a streamed response were written. */
static inline void access_log_bytes(struct evhttp_request *req, size_t n)
{ if (access_log_g) access_log_bytes_(req, n); }
/* The response was sent completely (evhttp's completion callback). */
static inline void access_log_done(struct evhttp_request *req)
{ if (access_log_g) access_log_done_(req); }
/* The browser dropped evcon while req (maybe already detached from it)
 * was unanswered or streaming. */
static inline void access_log_gone(struct evhttp_connection *evcon,
                                   struct evhttp_request *req)
{ if (access_log_g) access_log_gone_(evcon, req); }
/* The WebSocket taken over from evcon ends: out/in frame bytes. */
static inline void access_log_ws_end(struct evhttp_connection *evcon,
                                     uint64_t out, uint64_t in)
{ if (access_log_g) access_log_ws_end_(evcon, out, in); }
/* A connection closed by the request limits before evhttp had a request
 * (header or body deadline: 408; corrupt chunked body: 400). */
static inline void access_log_cut(const char *addr, int status)
{ if (access_log_g) access_log_cut_(addr, status); }

#endif

/*
 * front_io.h - the plain-TCP bufferevent under evhttp's browser connections.
 *
 * libevent 2.1's socket bufferevent costs a long-poll request about ten
 * system calls: evbuffer_read asks ioctl(FIONREAD) before every read, and
 * evhttp enables and disables the bufferevent around every request and
 * response, each an epoll_ctl (plus two for http_watch's EV_CLOSED). A
 * front_io bufferevent is a bufferevent type of its own, driven through
 * the ordinary bufferevent API (evhttp, http_limits, ws_server and
 * http_stream use it unchanged), that:
 *
 *   - registers its socket once, edge-triggered, for read, write and
 *     peer close (EPOLLRDHUP): enable/disable only flip flags, so the
 *     steady state makes no epoll_ctl;
 *   - reads a fixed amount into the input buffer without FIONREAD; a read
 *     shorter than asked means drained (the next edge says when there is
 *     more), a full one is followed by another in the same loop turn;
 *   - writes when writing is enabled and the socket has not said EAGAIN
 *     since its last writable edge, in the same loop turn as the bytes
 *     were queued (an active event, no syscall to arm it);
 *   - reports like the socket bufferevent: read/write callbacks with the
 *     watermarks, EOF and errors through the event callback with the
 *     direction disabled, read/write timeouts (libevent's generic timeout
 *     events), BEV_OPT_CLOSE_ON_FREE, bufferevent_setfd(-1) to let go of
 *     the socket (http_limits' lingering close).
 *
 * It relies on libevent 2.1's internal bufferevent ABI (struct
 * bufferevent_ops and struct bufferevent_private, exported by the 2.1
 * library for its own bufferevent types): front_io_new checks the library
 * version and the layout at run time and returns a socket bufferevent
 * when they do not match, so pollgate keeps working (at the old cost).
 * TLS connections keep bufferevent_openssl; nothing here is used for them.
 */
#ifndef FRONT_IO_H
#define FRONT_IO_H

#include <stdbool.h>

struct bufferevent;
struct event_base;

/* Bytes asked for per read (a request head or a body piece). */
#define FRONT_IO_READ_MAX 16384

/*
 * A new bufferevent without a socket yet (evhttp sets it with
 * bufferevent_setfd), options as bufferevent_socket_new's (pollgate passes
 * BEV_OPT_CLOSE_ON_FREE; BEV_OPT_THREADSAFE is not supported). Returns a
 * front_io bufferevent, or a socket bufferevent when this libevent does
 * not allow one (or front_io_set_enabled(false)), or NULL on no memory.
 * New; freed with bufferevent_free.
 */
struct bufferevent *front_io_new(struct event_base *base, int options);

/* Whether bev is a front_io bufferevent. */
bool front_io_is(const struct bufferevent *bev);

/* Process-wide switch (default on): off makes front_io_new return socket
 * bufferevents (the A/B of the benchmark, and a way out). */
void front_io_set_enabled(bool on);

/* Whether front_io_new can make front_io bufferevents (libevent check). */
bool front_io_available(void);

/*
 * Call cb(arg) once when the peer shuts its side (EPOLLRDHUP), whatever
 * is enabled; soon (from the loop, not from this call) when that has
 * already happened. cb NULL: no more calls. The
 * replacement of an EV_CLOSED event on the descriptor, which cannot be
 * mixed with this edge-triggered one. Returns false when bev is not a
 * front_io bufferevent with a socket.
 */
bool front_io_watch_closed(struct bufferevent *bev, void (*cb)(void *arg),
                           void *arg);

#endif

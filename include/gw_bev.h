/*
 * gw_bev.h - socket bufferevents that read without ioctl(FIONREAD).
 *
 * libevent 2.1's socket bufferevent reads with evbuffer_read(), which asks
 * the kernel how much is readable (ioctl FIONREAD) before every read: one
 * extra system call per read on a hot path that does one read per message.
 * gw_bev_read_direct() replaces the read side of a plain socket
 * bufferevent with a reader that reads into reserved space of the input
 * buffer (readv, up to GW_BEV_READ_MAX bytes; a read shorter than asked
 * means the socket is drained) and reports like libevent does:
 *
 *   - the read callback through bufferevent_trigger (so the read low
 *     watermark and BEV_OPT_DEFER_CALLBACKS are honoured);
 *   - EOF and errors through bufferevent_trigger_event, reading disabled
 *     first (errno is kept for the event callback);
 *   - the read high watermark caps every read and suspends reading as
 *     libevent's own input-buffer callback does;
 *   - bufferevent_enable/disable, read timeouts and freeing work as
 *     before: only the callback of the bufferevent's read event changes.
 *
 * Writing is untouched (evbuffer_write uses writev, no ioctl). Not for
 * TLS, filter or pair bufferevents, and not after bufferevent_setfd
 * (which restores libevent's own reader).
 */
#ifndef GW_BEV_H
#define GW_BEV_H

struct bufferevent;

/* Bytes asked for per read (the socket buffer usually holds less). */
#define GW_BEV_READ_MAX 16384

/*
 * Make bev (a socket bufferevent with its fd set, reading enabled or not)
 * read without FIONREAD. Idempotent. Returns 0, or GW_EINVAL when bev is
 * not such a bufferevent (then it is unchanged and still works, with
 * libevent's reader).
 */
int gw_bev_read_direct(struct bufferevent *bev);

#endif

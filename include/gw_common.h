/*
 * gw_common.h - error codes, error detail and a small growable byte buffer
 * shared by every pollgate module.
 *
 * Conventions:
 *  - int functions return 0 (or a positive count) on success, a negative
 *    enum gw_err on failure; GW_EAGAIN ("need more input") is never a failure.
 *  - pointer functions return NULL on failure.
 *  - detail goes into an optional struct gw_error * (may be NULL).
 *  - x_free(NULL) is a no-op.
 */
#ifndef GW_COMMON_H
#define GW_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

enum gw_err {
    GW_OK = 0,
    GW_EAGAIN = -1,    /* need more input: not an error */
    GW_EINVAL = -2,    /* bad argument or bad input syntax */
    GW_EPROTO = -3,    /* protocol violation by the peer */
    GW_ETOOBIG = -4,   /* a configured limit was exceeded */
    GW_EUTF8 = -5,     /* invalid UTF-8 where text is required */
    GW_ENOMEM = -6,    /* allocation failed */
    GW_EIO = -7,       /* system call / socket failure */
    GW_ESTATE = -8,    /* operation not allowed in current state */
    GW_ETLS = -9,      /* TLS setup or verification failure */
    GW_EFULL = -11,    /* a queue is full (back-pressure) */
};

/* Short static name of an error code ("need more", "protocol error", ...). */
const char *gw_strerror(int err);

#define GW_ERROR_MSG_MAX 256

/* Optional error detail filled by functions that take a struct gw_error *. */
struct gw_error {
    int code;                     /* enum gw_err */
    char msg[GW_ERROR_MSG_MAX];   /* human-readable, NUL-terminated */
};

/* Set err (if non-NULL) to code and a printf-style message; returns code. */
int gw_error_set(struct gw_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * gw_buf: growable byte buffer with a hard cap.
 * Zero-initialised struct is a valid empty buffer with no cap (max == 0
 * means unlimited). data is always NUL-terminated when non-NULL (the NUL is
 * not counted in len), so text can be used as a C string.
 */
struct gw_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;   /* 0 = unlimited */
};

/* Append; returns 0, GW_ETOOBIG past max, or GW_ENOMEM. */
int gw_buf_append(struct gw_buf *b, const void *data, size_t len);
int gw_buf_appendf(struct gw_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Make room for len more bytes; returns pointer to write position or NULL. */
uint8_t *gw_buf_reserve(struct gw_buf *b, size_t len);
void gw_buf_reset(struct gw_buf *b);  /* len = 0, keeps memory */
void gw_buf_free(struct gw_buf *b);   /* releases memory, struct reusable */
/* A scratch buffer reused across requests keeps up to this much memory. */
#define GW_SCRATCH_KEEP ((size_t)1 << 20)
/* Empty a reused scratch buffer; release its memory if a huge batch made
 * it grow past keep (so one burst does not pin memory for good). */
void gw_buf_trim(struct gw_buf *b, size_t keep);

/* Milliseconds as a struct timeval (for libevent timers). */
struct timeval;
void gw_ms_to_tv(uint64_t ms, struct timeval *tv);

/* Has the peer of connected socket fd closed (FIN) or reset it, as far as
 * the socket can tell without reading? *bytes is set when unread bytes
 * are queued (and no error stands behind them). Two syscalls at most
 * (recv MSG_PEEK, getsockopt SO_ERROR); for a socket that woke up while
 * nobody reads it. */
bool gw_sock_peer_gone(int fd, bool *bytes);

/* Parse a size with unit (B, KiB, MiB, GiB; bare number = bytes).
 * Returns 0 or GW_EINVAL. */
int gw_parse_size(const char *s, uint64_t *out);
/* Parse a duration with unit (ms, s, m, h; bare "0" allowed) into ms. */
int gw_parse_duration_ms(const char *s, uint64_t *out_ms);

#endif

/*
 * front_io.c - the plain-TCP bufferevent under evhttp (see front_io.h).
 *
 * A bufferevent type of our own: libevent 2.1 builds its socket, pair,
 * filter and OpenSSL bufferevents on struct bufferevent_private and a
 * table of operations (bufferevent-internal.h), and exports what a type
 * needs (bufferevent_init_common_, the callback runners, the generic
 * timeout events). Both structures are mirrored below from the
 * 2.1.12-stable source; front_io_available() checks the version and, once
 * a bufferevent exists, that the library reads the mirrored fields where
 * we wrote them.
 *
 * State of the socket, as the edges told us:
 *   readable  an edge came (or a full read) and no read has come up
 *             short since: reading when enabled may find bytes;
 *   writable  no write met EAGAIN or came up short since the last
 *             writable edge;
 *   rdhup     the peer shut its side (EPOLLRDHUP) or the socket failed.
 * Work found while running (an enable, bytes queued, a full read) is done
 * from `kick`, an event without a descriptor made active: later in the
 * same loop turn, never inside the caller (evhttp enables writing in the
 * middle of its own bookkeeping, as it does with the socket type, whose
 * write comes from the loop too).
 */
#include "front_io.h"
#include "gw_common.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/event_struct.h>

/* ------------------------------------- libevent 2.1 internals (mirror) */

typedef ev_uint16_t le_suspend_flags;

struct le_bufferevent_private {
    struct bufferevent bev;
    struct evbuffer_cb_entry *read_watermarks_cb;
    unsigned own_lock : 1;
    unsigned readcb_pending : 1;
    unsigned writecb_pending : 1;
    unsigned connecting : 1;
    unsigned connection_refused : 1;
    short eventcb_pending;
    le_suspend_flags read_suspended;
    le_suspend_flags write_suspended;
    int errno_pending;
    int dns_error;
    struct event_callback deferred;
    enum bufferevent_options options;
    int refcnt;
    void *lock;
    ev_ssize_t max_single_read;
    ev_ssize_t max_single_write;
    void *rate_limiting;
    union {
        struct sockaddr_in6 in6;
        struct sockaddr_in in;
    } conn_address;
    void *dns_request;
};

enum le_ctrl_op { LE_CTRL_SET_FD, LE_CTRL_GET_FD, LE_CTRL_GET_UNDERLYING,
                  LE_CTRL_CANCEL_ALL };

union le_ctrl_data {
    void *ptr;
    evutil_socket_t fd;
};

struct le_bufferevent_ops {
    const char *type;
    off_t mem_offset;
    int (*enable)(struct bufferevent *, short);
    int (*disable)(struct bufferevent *, short);
    void (*unlink)(struct bufferevent *);
    void (*destruct)(struct bufferevent *);
    int (*adj_timeouts)(struct bufferevent *);
    int (*flush)(struct bufferevent *, short, enum bufferevent_flush_mode);
    int (*ctrl)(struct bufferevent *, enum le_ctrl_op, union le_ctrl_data *);
};

/* exported by libevent 2.1 (EVENT2_EXPORT_SYMBOL in bufferevent-internal.h) */
int bufferevent_init_common_(struct le_bufferevent_private *, struct event_base *,
                             const struct le_bufferevent_ops *,
                             enum bufferevent_options);
void bufferevent_incref_and_lock_(struct bufferevent *);
int bufferevent_decref_and_unlock_(struct bufferevent *);
void bufferevent_run_readcb_(struct bufferevent *, int);
void bufferevent_run_writecb_(struct bufferevent *, int);
void bufferevent_run_eventcb_(struct bufferevent *, short, int);
void bufferevent_init_generic_timeout_cbs_(struct bufferevent *);
int bufferevent_generic_adj_timeouts_(struct bufferevent *);
enum bufferevent_options bufferevent_get_options_(struct bufferevent *);

/* ------------------------------------------------------------ the type */

struct front_io {
    struct le_bufferevent_private p;   /* first: mem_offset 0 */
    struct event io;       /* the socket: R|W|CLOSED, edge-triggered, persistent */
    struct event kick;     /* no descriptor: work for later in this loop turn */
    evutil_socket_t fd;
    bool io_added;
    bool readable;
    bool writable;
    bool rdhup;
    bool closed_told;      /* closed_cb has been called */
    void (*closed_cb)(void *);
    void *closed_arg;
};

static int fio_enable(struct bufferevent *bev, short what);
static int fio_disable(struct bufferevent *bev, short what);
static void fio_unlink(struct bufferevent *bev);
static void fio_destruct(struct bufferevent *bev);
static int fio_flush(struct bufferevent *bev, short what,
                     enum bufferevent_flush_mode mode);
static int fio_ctrl(struct bufferevent *bev, enum le_ctrl_op op,
                    union le_ctrl_data *d);

static const struct le_bufferevent_ops fio_ops = {
    "front_io",
    0,
    fio_enable,
    fio_disable,
    fio_unlink,
    fio_destruct,
    bufferevent_generic_adj_timeouts_,
    fio_flush,
    fio_ctrl,
};

static bool g_enabled = true;

static struct front_io *fio_of(struct bufferevent *bev)
{
    return (struct front_io *)(void *)bev;
}

bool front_io_is(const struct bufferevent *bev)
{
    return bev && (const void *)bev->be_ops == (const void *)&fio_ops;
}

void front_io_set_enabled(bool on)
{
    g_enabled = on;
}

bool front_io_available(void)
{
    /* the mirrored structures are 2.1's (2.2 changed them) */
    ev_uint32_t v = event_get_version_number();
    return (v & 0xffff0000u) == 0x02010000u && v >= 0x02010800u;
}

static void kick(struct front_io *f)
{
    event_active(&f->kick, EV_TIMEOUT, 1);
}

/* ----------------------------------------------------------- reading */

/* One read of at most max bytes into the input buffer; a short read
 * means drained (unless the peer's FIN is queued behind the bytes). */
static void do_read(struct front_io *f)
{
    struct bufferevent *bev = &f->p.bev;
    struct evbuffer *in = bev->input;
    ev_ssize_t max = FRONT_IO_READ_MAX;
    if (bev->wm_read.high) {
        size_t len = evbuffer_get_length(in);
        if (len >= bev->wm_read.high)
            return; /* the watermark callback suspends reading */
        if (bev->wm_read.high - len < (size_t)max)
            max = (ev_ssize_t)(bev->wm_read.high - len);
    }
    /* Into one buffer shared by every connection (single-threaded), then
     * only the bytes read onto the input: reserving max bytes in the
     * evbuffer instead made every read allocate (and every request free)
     * a 32 KiB chain for a request of a few hundred bytes. */
    static uint8_t rx[FRONT_IO_READ_MAX];
    ssize_t r;
    do {
        r = read(f->fd, rx, (size_t)max);
    } while (r < 0 && errno == EINTR);
    int err = errno;
    evbuffer_unfreeze(in, 0);
    if (r > 0 && evbuffer_add(in, rx, (size_t)r) != 0) {
        r = -1;
        err = ENOMEM;
    }
    evbuffer_freeze(in, 0);
    if (r > 0) {
        /* a full read: there may be more; a short one with the FIN
         * seen: one more read to meet it (0) */
        f->readable = r == max || f->rdhup;
        if (f->readable)
            kick(f);
        if (evutil_timerisset(&bev->timeout_read))
            event_add(&bev->ev_read, &bev->timeout_read);
        if (evbuffer_get_length(in) >= bev->wm_read.low)
            bufferevent_run_readcb_(bev, 0);
        return;
    }
    if (r < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
        f->readable = false;
        return;
    }
    f->readable = false;
    short what = BEV_EVENT_READING | (r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
    bufferevent_disable(bev, EV_READ);
    errno = err;
    bufferevent_run_eventcb_(bev, what, 0);
}

/* ----------------------------------------------------------- writing */

static void do_write(struct front_io *f)
{
    struct bufferevent *bev = &f->p.bev;
    struct evbuffer *out = bev->output;
    size_t len = evbuffer_get_length(out);
    if (!len)
        return;
    evbuffer_unfreeze(out, 1);
    int r = evbuffer_write(out, f->fd);
    int err = errno;
    evbuffer_freeze(out, 1);
    if (r < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)) {
        f->writable = err == EINTR;
        if (f->writable)
            kick(f);
        return;
    }
    if (r <= 0) {
        short what = BEV_EVENT_WRITING | (r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR);
        bufferevent_disable(bev, EV_WRITE);
        errno = err;
        bufferevent_run_eventcb_(bev, what, 0);
        return;
    }
    /* short: the socket buffer is full, wait for its writable edge */
    if ((size_t)r < len)
        f->writable = false;
    if (evutil_timerisset(&bev->timeout_write)) {
        if (evbuffer_get_length(out))
            event_add(&bev->ev_write, &bev->timeout_write);
        else
            event_del(&bev->ev_write);
    }
    if (evbuffer_get_length(out) <= bev->wm_write.low)
        bufferevent_run_writecb_(bev, 0);
}

/* ---------------------------------------------------- the event paths */

static bool may_read(const struct front_io *f)
{
    return f->fd >= 0 && f->readable && (f->p.bev.enabled & EV_READ) &&
           !f->p.read_suspended;
}

static bool may_write(const struct front_io *f)
{
    return f->fd >= 0 && f->writable && (f->p.bev.enabled & EV_WRITE) &&
           !f->p.write_suspended && evbuffer_get_length(f->p.bev.output) > 0;
}

/* Whatever is due: the close watch, a write, a read. A callback may free
 * the bufferevent (evhttp_connection_free): the reference held keeps the
 * memory until we return; once ours is the only one left, the owner has
 * let go and nothing more is done. */
static bool owned(const struct front_io *f)
{
    return f->p.refcnt > 1;
}

static void run(struct front_io *f)
{
    struct bufferevent *bev = &f->p.bev;
    bufferevent_incref_and_lock_(bev);
    if (f->rdhup && f->closed_cb && !f->closed_told) {
        f->closed_told = true;
        f->closed_cb(f->closed_arg);
    }
    if (owned(f) && may_write(f))
        do_write(f);
    if (owned(f) && may_read(f))
        do_read(f);
    bufferevent_decref_and_unlock_(bev);
}

/* A reset (RST) comes as EV_READ|EV_WRITE (libevent maps EPOLLERR so),
 * never as EV_CLOSED: while the close watch is on and nobody reads, look
 * at the socket, or a held request would only learn it from its answer's
 * failed write. */
static void look_for_reset(struct front_io *f)
{
    bool bytes = false;
    if (f->closed_cb && !f->closed_told && !f->rdhup && f->readable &&
        !may_read(f) && gw_sock_peer_gone(f->fd, &bytes))
        f->rdhup = true;
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct front_io *f = arg;
    if (what & EV_CLOSED) {
        f->rdhup = true;
        f->readable = true;
    }
    if (what & EV_READ)
        f->readable = true;
    if (what & EV_WRITE)
        f->writable = true;
    if ((what & EV_READ) && !(what & EV_CLOSED))
        look_for_reset(f);
    run(f);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    run(arg);
}

static void outbuf_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                      void *arg)
{
    (void)buf;
    struct front_io *f = arg;
    if (info->n_added && may_write(f))
        kick(f);
}

/* ------------------------------------------------------------ the ops */

static int fio_enable(struct bufferevent *bev, short what)
{
    struct front_io *f = fio_of(bev);
    if (((what & EV_READ) && may_read(f)) || ((what & EV_WRITE) && may_write(f)) ||
        (f->rdhup && f->closed_cb && !f->closed_told))
        kick(f);
    return bufferevent_generic_adj_timeouts_(bev);
}

static int fio_disable(struct bufferevent *bev, short what)
{
    (void)what;
    return bufferevent_generic_adj_timeouts_(bev);
}

static void fio_unlink(struct bufferevent *bev)
{
    struct front_io *f = fio_of(bev);
    if (f->io_added)
        event_del(&f->io);
    f->io_added = false;
    event_del(&f->kick);
    f->closed_cb = NULL;
}

static void fio_destruct(struct bufferevent *bev)
{
    struct front_io *f = fio_of(bev);
    if ((f->p.options & BEV_OPT_CLOSE_ON_FREE) && f->fd >= 0)
        evutil_closesocket(f->fd);
    f->fd = -1;
}

static int fio_flush(struct bufferevent *bev, short what,
                     enum bufferevent_flush_mode mode)
{
    (void)bev; (void)what; (void)mode;
    return 0;
}

static int set_fd(struct front_io *f, evutil_socket_t fd)
{
    struct bufferevent *bev = &f->p.bev;
    if (f->io_added)
        event_del(&f->io);
    f->io_added = false;
    event_del(&f->kick);
    f->fd = fd;
    f->readable = false;   /* the edge of the registration tells */
    f->writable = true;
    f->rdhup = false;
    f->closed_told = false;
    if (fd < 0)
        return 0;
    if (event_assign(&f->io, bev->ev_base, fd,
                     EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST,
                     io_cb, f) != 0 ||
        event_add(&f->io, NULL) != 0) {
        f->fd = -1;
        return -1;
    }
    f->io_added = true;
    return 0;
}

static int fio_ctrl(struct bufferevent *bev, enum le_ctrl_op op,
                    union le_ctrl_data *d)
{
    struct front_io *f = fio_of(bev);
    switch (op) {
    case LE_CTRL_SET_FD:
        return set_fd(f, d->fd);
    case LE_CTRL_GET_FD:
        d->fd = f->fd;
        return 0;
    case LE_CTRL_CANCEL_ALL:
        return 0;
    case LE_CTRL_GET_UNDERLYING:
    default:
        return -1;
    }
}

/* ------------------------------------------------------------- public */

static struct bufferevent *fio_new(struct event_base *base, int options)
{
    struct front_io *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (bufferevent_init_common_(&f->p, base, &fio_ops,
                                 (enum bufferevent_options)options) < 0) {
        free(f);
        return NULL;
    }
    struct bufferevent *bev = &f->p.bev;
    f->fd = -1;
    event_assign(&f->kick, base, -1, 0, kick_cb, f);
    bufferevent_init_generic_timeout_cbs_(bev);
    /* the layout check: the library reads our mirror's fields */
    if (f->p.refcnt != 1 || bufferevent_get_options_(bev) != f->p.options ||
        bufferevent_get_base(bev) != base) {
        bufferevent_free(bev);
        return NULL;
    }
    /* without the output callback queued bytes would never be written:
     * fail, and the caller falls back to libevent's socket bufferevent */
    if (!evbuffer_add_cb(bev->output, outbuf_cb, f)) {
        bufferevent_free(bev);
        return NULL;
    }
    evbuffer_freeze(bev->input, 0);
    evbuffer_freeze(bev->output, 1);
    return bev;
}

struct bufferevent *front_io_new(struct event_base *base, int options)
{
    /* edge-triggered and EPOLLRDHUP are what it is built on (epoll) */
    int need = EV_FEATURE_ET | EV_FEATURE_EARLY_CLOSE;
    if (g_enabled && front_io_available() &&
        (event_base_get_features(base) & need) == need &&
        !(options & (BEV_OPT_THREADSAFE | BEV_OPT_DEFER_CALLBACKS))) {
        struct bufferevent *bev = fio_new(base, options);
        if (bev)
            return bev;
    }
    return bufferevent_socket_new(base, -1, options);
}

bool front_io_watch_closed(struct bufferevent *bev, void (*cb)(void *arg),
                           void *arg)
{
    if (!front_io_is(bev))
        return false;
    struct front_io *f = fio_of(bev);
    if (cb && f->fd < 0)
        return false;
    f->closed_cb = cb;
    f->closed_arg = arg;
    f->closed_told = false;
    if (cb)
        look_for_reset(f); /* its edge may have come before the watch */
    if (cb && f->rdhup)
        kick(f);
    return true;
}

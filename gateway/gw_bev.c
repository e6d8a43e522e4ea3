/*
 * gw_bev.c - socket bufferevents that read without ioctl(FIONREAD) (see
 * gw_bev.h).
 *
 * libevent 2.1 keeps the socket bufferevent's read event in the public
 * struct bufferevent (bufferevent_struct.h), and its enable/disable,
 * watermark suspension and free all work on that event whatever its
 * callback is. So only the callback is replaced; the rest of the
 * bufferevent is libevent's. The reader mirrors libevent's
 * bufferevent_readcb (bufferevent_sock.c) minus the FIONREAD and the rate
 * limits (not used by pollgate).
 */
#include "gw_bev.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

#include "gw_common.h"

/* Read once into reserved space of in; returns what readv returned. */
static ssize_t read_some(evutil_socket_t fd, struct evbuffer *in, size_t max)
{
    struct evbuffer_iovec v[2];
    int n = evbuffer_reserve_space(in, (ev_ssize_t)max, v, 2);
    if (n <= 0) {
        errno = ENOMEM;
        return -1;
    }
    struct iovec iov[2];
    size_t room = 0;
    for (int i = 0; i < n; i++) {
        size_t len = v[i].iov_len;
        if (len > max - room)
            len = max - room;
        iov[i] = (struct iovec){ v[i].iov_base, len };
        v[i].iov_len = len;
        room += len;
    }
    ssize_t r;
    do {
        r = readv(fd, iov, n);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        int e = errno;
        evbuffer_commit_space(in, v, 0);
        errno = e;
        return r;
    }
    /* hand back exactly what was read, in the vectors' order */
    size_t left = (size_t)r;
    int used = 0;
    for (; used < n && left; used++) {
        if (v[used].iov_len > left)
            v[used].iov_len = left;
        left -= v[used].iov_len;
    }
    evbuffer_commit_space(in, v, used);
    return r;
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bufferevent *bev = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    short ev = BEV_EVENT_READING;
    if (what == EV_TIMEOUT) { /* with EV_READ too, a read is due: ignore it */
        bufferevent_disable(bev, EV_READ);
        bufferevent_trigger_event(bev, BEV_EVENT_TIMEOUT | BEV_EVENT_READING, 0);
        return;
    }
    size_t max = GW_BEV_READ_MAX, len = evbuffer_get_length(in);
    if (bev->wm_read.high) {
        /* libevent's input-buffer callback has suspended reading by now */
        if (len >= bev->wm_read.high)
            return;
        if (bev->wm_read.high - len < max)
            max = bev->wm_read.high - len;
    }
    evbuffer_unfreeze(in, 0);
    ssize_t r = read_some(fd, in, max);
    int err = errno;
    evbuffer_freeze(in, 0);
    if (r > 0) {
        bufferevent_incref(bev); /* the read callback may free bev */
        bufferevent_trigger(bev, EV_READ, 0);
        bufferevent_decref(bev);
        return;
    }
    if (r < 0 && (err == EAGAIN || err == EWOULDBLOCK))
        return; /* level-triggered: we hear again once there is more */
    ev |= r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
    bufferevent_disable(bev, EV_READ);
    errno = err; /* bufferevent_trigger_event keeps it for the callback */
    bufferevent_trigger_event(bev, ev, 0);
}

int gw_bev_read_direct(struct bufferevent *bev)
{
    if (!bev || bufferevent_get_underlying(bev) != NULL ||
        bufferevent_openssl_get_ssl(bev) != NULL)
        return GW_EINVAL;
    if (event_get_callback(&bev->ev_read) == read_cb)
        return 0; /* already */
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || event_get_fd(&bev->ev_read) != fd ||
        !(event_get_events(&bev->ev_read) & EV_READ))
        return GW_EINVAL;
    bool armed = event_pending(&bev->ev_read, EV_READ, NULL) != 0;
    event_del(&bev->ev_read);
    if (event_assign(&bev->ev_read, bufferevent_get_base(bev), fd,
                     EV_READ | EV_PERSIST | EV_FINALIZE, read_cb, bev) != 0)
        return GW_EINVAL;
    if (armed) {
        bool tmo = bev->timeout_read.tv_sec || bev->timeout_read.tv_usec;
        event_add(&bev->ev_read, tmo ? &bev->timeout_read : NULL);
    }
    return 0;
}

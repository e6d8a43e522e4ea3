/*
 * gw_notify.h - tell a service manager about our state, the sd_notify(3)
 * protocol without libsystemd: one datagram of "KEY=value" lines to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace). systemd's Type=notify waits for "READY=1" before it
 * calls the service started, and shows "STATUS=" in `systemctl status`.
 */
#ifndef GW_NOTIFY_H
#define GW_NOTIFY_H

/*
 * Send state (e.g. "READY=1\nSTATUS=listening") if $NOTIFY_SOCKET is set.
 * Never blocks. Returns 0 when sent or when nobody asked (no variable),
 * GW_EINVAL for an unusable socket name, GW_EIO when sending failed.
 */
int gw_notify(const char *state);

#endif

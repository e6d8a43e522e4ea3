/*
 * gw_config.c - conf/pollgate.ini -> struct gw_config.
 *
 * Every key is one row of a per-section table (key, type, offset, default,
 * range, help) and is parsed generically by offset, as nginx does. The
 * defaults are the tables' strings run through the same parsers as the
 * file, so they are validated too. [route NAME] sections use a table of
 * their own, applied to one struct gw_route per section. The same tables
 * (types in gw_config_table.h) generate the documentation in
 * gw_config_doc.c: help says what a key does; type, range and default are
 * printed from the columns the parser uses, so they cannot drift.
 *
 * The reader is ours, one physical line at a time (read_line): blank
 * lines, whole-line comments (';' or '#'), inline comments (' ;'),
 * [section] headers, "key = value" and indented continuations of a list.
 * It reports every bad line, not just the first, with its physical line
 * number, and refuses what would otherwise be silently misread: a line
 * without '=', "key: value", a "key = value" longer than MAX_LINE (without
 * its comment), control characters, an indented line that does not
 * continue a list.
 *
 * libinih was used before and dropped: for these rules it would only have
 * split "key = value" at the '=' (the 20 lines of assignment_line), and
 * what it does on its own had to be worked around line by line. Debian 12's
 * build (55-1) calls the handler with a line number its ini.h says it does
 * not pass (a handler declared by that header is called with the wrong
 * type); it does not call the handler for a section without keys, so an
 * empty [route x] or a repeated header is invisible; it returns only the
 * first bad line; it accepts "key: value"; it continues any indented line,
 * even after blank lines; it cuts lines over 198 bytes into pieces parsed
 * as separate lines and section names at 49 characters. Its runtime knobs
 * (ini_max_line, ini_allow_multiline, ...) are Debian additions and
 * process-wide. A reader that has to pre-classify every line anyway is
 * simpler without the second half.
 */
#include "gw_config.h"
#include "gw_config_table.h"
#include "gw_log.h"
#include "gw_proxy.h"
#include "gw_tls.h"
#include "ws_handshake.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ERRORS 100   /* messages kept in gw_diag; parsing goes on */
#define MAX_ROUTES 1000  /* duplicate checks are quadratic */
#define MAX_LIST 1000    /* entries in one list, for the same reason */
#define MAX_KEYS 32      /* largest section table */
#define WHY_MAX 512
static int check_path(char *s, char *why, size_t n);
static int check_origin(char *s, char *why, size_t n);
static int check_header_name(char *s, char *why, size_t n);
static int check_protocols(char *s, char *why, size_t n);
static int check_instance(char *s, char *why, size_t n);
static int check_cidr(char *s, char *why, size_t n)
{
    return gw_cidr_check(s, why, n);
}

#define SEC(x) ((uint64_t)(x) * 1000u)
#define MINS(x) ((uint64_t)(x) * 60000u)
#define HOURS(x) ((uint64_t)(x) * 3600000u)
#define KIB(x) ((uint64_t)(x) << 10)
#define MIB(x) ((uint64_t)(x) << 20)
#define GIB(x) ((uint64_t)(x) << 30)
#define CF(f) offsetof(struct gw_config, f)
#define RF(f) offsetof(struct gw_route, f)

/* Same order as enum gw_log_level and enum gw_overflow. */
static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const overflows[] = { "pause", "drop-oldest", "close", NULL };
/* Same order as enum gw_sockjs_binary. */
static const char *const sockjs_binaries[] = { "close", "base64", "drop", NULL };

/* key, type, field, field2, default, min, max, flags, values, check, help,
 * example, what. The type, range and default lines of the documentation are
 * generated from the other columns: help says what the key does. */
static const struct directive gateway_keys[] = {
    { "listen", T_LISTEN, CF(listen), CF(n_listen), "127.0.0.1:8080",
      1, 65535, D_RESTART, NULL, NULL,
      "Addresses and ports browsers connect to over plain HTTP, separated "
      "by commas (127.0.0.1:8080, [::1]:8080). HOST is a numeric IPv4 "
      "address or an IPv6 address in brackets; 0.0.0.0 listens on every "
      "IPv4 address, [::] on every address. Listening sockets use "
      "SO_REUSEPORT, so a new pollgate can start on the same addresses "
      "before the old one drains (binary upgrade).",
      NULL, NULL },
    { "tls_listen", T_LISTEN, CF(tls_listen), CF(n_tls_listen), "",
      1, 65535, D_RESTART, NULL, NULL,
      "Addresses and ports browsers connect to over HTTPS, same syntax as "
      "listen; needs tls_cert_file and tls_key_file. Plain and TLS "
      "listeners may be active at once. TLS 1.2 at least, the server's "
      "cipher preference, session resumption.",
      "", NULL },
    { "tls_cert_file", T_FILE, CF(front_tls_cert_file), 0, "", 0, 0, 0, NULL, NULL,
      "Certificate (PEM) presented to browsers on tls_listen, optionally "
      "followed by its chain. Required with tls_listen. SIGHUP re-reads it "
      "and tls_key_file (certificate renewal without a restart; open "
      "connections keep the old one). A relative path is relative to the "
      "directory of the configuration file.", NULL, NULL },
    { "tls_key_file", T_FILE, CF(front_tls_key_file), 0, "", 0, 0, 0, NULL, NULL,
      "Private key (PEM) of the gateway's tls_cert_file; must match it.",
      NULL, NULL },
    { "drain_timeout", T_DURATION, CF(drain_timeout_ms), 0, "30s", SEC(1),
      HOURS(1), D_ZERO_OK, NULL, NULL,
      "On SIGTERM or SIGINT pollgate drains: new sessions are refused at "
      "once (503 with Retry-After; /health answers 503 draining) while "
      "existing sessions keep working for up to this long. Then every "
      "remaining browser gets a close (1001) after the messages already "
      "queued for it, its upstream gets 1001, and pollgate exits 0. A "
      "second signal cuts the drain short. 0 = close at once. A reload "
      "(SIGHUP) that removes a route closes that route's sessions the same "
      "way this long after.", NULL, NULL },
    { "trusted_proxies", T_LIST, CF(trusted_proxies), CF(n_trusted_proxies), "",
      0, 0, 0, NULL, check_cidr,
      "Proxies (addresses or CIDR networks, e.g. 127.0.0.1, 10.0.0.0/8, "
      "::1) allowed to say who the client is. For a request from one of "
      "them the client address is the last X-Forwarded-For entry that is "
      "not itself trusted; it is used for max_sessions_per_client, in logs "
      "and as X-Real-IP toward the upstream. X-Forwarded-For is forwarded "
      "with the peer appended either way. Empty = trust no one: the client "
      "is the TCP peer and X-Forwarded-For from browsers is ignored.",
      "", NULL },
    { "user", T_STRING, CF(user), 0, "", 0, 0, D_RESTART, NULL, NULL,
      "User to run as after binding the listeners (pollgate started as "
      "root, e.g. to bind port 443). Files read later (the TLS certificate "
      "and key on SIGHUP, static_root) must be readable by this user. "
      "Empty = keep the starting user; running as root that way is logged "
      "as a warning.", "", NULL },
    { "group", T_STRING, CF(group), 0, "", 0, 0, D_RESTART, NULL, NULL,
      "Group to run as with user. Empty = the user's primary group.",
      "", NULL },
    { "log_level", T_ENUM, CF(log_level), 0, "info", 0, 0, 0, log_levels, NULL,
      "Least severe message written to the error log (error_log).", NULL, NULL },
    { "error_log", T_FILE, CF(error_log), 0, "stderr", 0, 0, D_RESTART, NULL, NULL,
      "Where log_level messages go: stderr, or a file (appended to, created "
      "with mode 0640). A relative path is relative to the directory of the "
      "configuration file. SIGUSR1 reopens the file (logrotate's "
      "postrotate).", NULL, "stderr | PATH" },
    { "access_log", T_FILE, CF(access_log), 0, "off", 0, 0, D_RESTART, NULL, NULL,
      "One line per browser request on listen and tls_listen (not the admin "
      "listener): off, stderr, or a file (appended to, created with mode "
      "0640; relative to the configuration file's directory). The line is "
      "combined-log-like: ADDR - - [TIME] \"METHOD PATH HTTP/V\" STATUS "
      "BYTES \"-\" \"USER-AGENT\" MS SID ROUTE TRANSPORT IN END, written when "
      "the request ends: ADDR is the client address (trusted_proxies "
      "applied), TIME the arrival, PATH without the query and with session "
      "ids cut to their first 8 characters, STATUS 101 for a WebSocket "
      "(logged when it closes) and 499 for a request the browser dropped "
      "before any answer, BYTES the response body bytes (streamed bytes for "
      "streams, frame bytes for a WebSocket), MS the duration in "
      "milliseconds, SID the session id's first 8 characters, TRANSPORT the "
      "endpoint (poll, events, send, ack, close, open, ws; SockJS: xhr, "
      "xhr_streaming, eventsource, htmlfile, jsonp, xhr_send, jsonp_send, "
      "websocket), IN the request body bytes, END done, gone (the browser "
      "dropped the connection first) or cut (closed by the request limits: "
      "408 or 400, no request line). Unknown fields are -. Lines are "
      "buffered and written without blocking; SIGUSR1 reopens the file.",
      NULL, "off | stderr | PATH" },
    { "access_log_buffer", T_SIZE, CF(access_log_buffer), 0, "1MiB", KIB(4),
      GIB(1), D_RESTART, NULL, NULL,
      "Access log lines waiting to be written, at most (they are written "
      "every 100 ms or at 64 KiB). When the file or pipe does not keep up, "
      "lines past this are dropped and counted (/stats access_log_dropped, "
      "metric pollgate_access_log_dropped_total).", NULL, NULL },
    { "max_body", T_SIZE, CF(max_body), 0, "1MiB", KIB(1), GIB(1), 0, NULL, NULL,
      "Largest request body (a browser send) accepted; larger ones get "
      "413 Payload Too Large.", NULL, NULL },
    { "request_timeout", T_DURATION, CF(request_timeout_ms), 0, "60s", SEC(1),
      HOURS(1), 0, NULL, NULL,
      "Browser connections: the longest pollgate waits for the rest of a "
      "request, for the next request on an idle keep-alive connection, and "
      "for a write that makes no progress (a browser that stopped reading "
      "its stream). Held polls and quiet streams are not affected (they "
      "neither read nor write).", NULL, NULL },
    { "header_timeout", T_DURATION, CF(header_timeout_ms), 0, "10s", SEC(1),
      HOURS(1), 0, NULL, NULL,
      "Browser connections: a request line and its headers must arrive "
      "within this time of the connection opening or of their first byte, "
      "or the connection is closed (a client trickling a header byte every "
      "few seconds is cut). Separate from request_timeout, which bounds the "
      "idle keep-alive wait and stalled writes.", NULL, NULL },
    { "min_body_rate", T_SIZE, CF(min_body_rate), 0, "1KiB", 1, GIB(1),
      D_ZERO_OK, NULL, NULL,
      "Browser connections: the slowest request body (a send) accepted, in "
      "bytes per second, measured over windows of header_timeout: a window "
      "that brings fewer bytes than this rate (or than the rest of the "
      "body) closes the connection. 0 = no minimum.", NULL, NULL },
    { "lingering_time", T_DURATION, CF(lingering_time_ms), 0, "10s", 100,
      MINS(10), D_ZERO_OK, NULL, NULL,
      "Browser connections refused early (413 for a declared body over "
      "max_body, 400/431/501/505 for malformed framing): after the answer "
      "has been sent and the write side shut, what the client still sends "
      "is read and discarded for at most this long before the connection "
      "is closed, so that the client reads the answer instead of a reset "
      "(nginx's lingering close). 0 = close at once.", NULL, NULL },
    { "lingering_timeout", T_DURATION, CF(lingering_timeout_ms), 0, "2s",
      100, MINS(10), 0, NULL, NULL,
      "During a lingering close: the longest wait for more bytes from the "
      "client before closing.", NULL, NULL },
    { "lingering_bytes", T_SIZE, CF(lingering_bytes), 0, "64MiB", KIB(1),
      GIB(64), 0, NULL, NULL,
      "During a lingering close: the most bytes read and discarded; a "
      "client that sends more is cut there.", NULL, NULL },
    { "front_io", T_BOOL, CF(front_io), 0, "on", 0, 0, 0, NULL, NULL,
      "Plain-TCP browser connections: on = pollgate's own socket I/O under "
      "the HTTP front (each socket registered once, edge-triggered; reads "
      "without a FIONREAD query; about 3 system calls per long-poll "
      "request instead of 10); off = libevent's socket bufferevent. TLS "
      "connections always use libevent's OpenSSL bufferevent. Applies to "
      "new connections. Needs libevent 2.1 on epoll (otherwise off).",
      NULL, NULL },
    { "listen_backlog", T_UINT, CF(listen_backlog), 0, "4096", 1, 65535,
      D_RESTART, NULL, NULL,
      "Connections the kernel completes and queues for each listening "
      "socket (listen, tls_listen and the admin listener) before pollgate "
      "accepts them. When the queue is full the kernel drops new "
      "connection attempts, and the client resends each after a wait "
      "that doubles every time (1 s, then 2, 4, 8 s on Linux clients): "
      "what a burst of reconnects (after an upstream restart, or a proxy "
      "reopening its pool) meets with a short queue. "
      "Linux caps it at net.core.somaxconn (4096 by default since Linux "
      "5.4); pollgate logs a warning when the value is above that cap.",
      NULL, NULL },
    { "max_connections", T_UINT, CF(max_connections), 0, "0", 1, 10000000,
      D_ZERO_OK, NULL, NULL,
      "Open browser connections (all addresses). Past it a new connection "
      "is answered 503 with Connection: close and closed at once, counted "
      "in /stats and logged at most once a second. 0 = derived from the "
      "descriptor budget: half the open files limit less 100 (the other "
      "half is for the sessions' upstream connections).", NULL, NULL },
    { "max_connections_per_client", T_UINT, CF(max_connections_per_client),
      0, "256", 1, 10000000, D_ZERO_OK, NULL, NULL,
      "Open browser connections from one peer address (the TCP peer, not "
      "X-Forwarded-For). Past it new connections from that address are "
      "answered 503 and closed, counted in /stats and logged at most once "
      "a second per address. 0 = unlimited.", NULL, NULL },
    { "static_root", T_DIR, CF(static_root), 0, "", 0, 0, 0, NULL, NULL,
      "Directory whose files are served for paths no route claims (the demo "
      "page, e.g. ../contrib/www). A relative path is relative to the "
      "directory of the configuration file; it must exist when pollgate "
      "starts. Empty = serve no files.", "../contrib/www", NULL },
    { "instance", T_STRING, CF(instance), 0, "", 0, 0, D_RESTART, NULL, check_instance,
      "Short tag of this process (letters and digits, at most 16). Native "
      "session ids then start with INSTANCE followed by a dot, so a load "
      "balancer in front of several pollgate processes can send every "
      "request of a session to the process that holds it (see "
      "contrib/haproxy). Empty = plain ids.", NULL, NULL },
};

static const struct directive admin_keys[] = {
    { "listen", T_ADDR, CF(admin_listen_host), CF(admin_listen_port), "",
      1, 65535, D_ZERO_OK | D_RESTART, NULL, NULL,
      "Address and port of the admin listener (GET /health, /metrics, "
      "/stats, /sessions; DELETE /sessions/ID), e.g. 127.0.0.1:9090. These "
      "endpoints are served there and only there. Keep it on a private "
      "address: it lists sessions and can close them. Empty = no admin "
      "listener.", "127.0.0.1:9090", NULL },
    { "health_interval", T_DURATION, CF(health_interval_ms), 0, "10s", SEC(1),
      HOURS(1), 0, NULL, NULL,
      "How often every route's upstream is probed with a WebSocket "
      "handshake (closed with 1000) for GET /health and "
      "pollgate_upstream_up.", NULL, NULL },
    { "sessions_list_max", T_UINT, CF(sessions_list_max), 0, "1000", 1, 1000000,
      0, NULL, NULL,
      "Most sessions GET /sessions lists (the answer says how many there "
      "are in all).", NULL, NULL },
};

static const struct directive session_keys[] = {
    { "poll_timeout", T_DURATION, CF(poll_timeout_ms), 0, "25s", SEC(1), MINS(10),
      0, NULL, NULL,
      "How long a long-poll request is held open when nothing is queued "
      "before it is answered empty (the browser then polls again). Keep it "
      "below the timeouts of proxies between browsers and pollgate.", NULL, NULL },
    { "heartbeat", T_DURATION, CF(heartbeat_ms), 0, "25s", SEC(1), MINS(10),
      0, NULL, NULL,
      "Interval of keep-alive frames (SSE comments, SockJS heartbeats) on "
      "open streams, so that proxies do not close idle connections.", NULL, NULL },
    { "idle_timeout", T_DURATION, CF(idle_timeout_ms), 0, "30s", SEC(1), HOURS(24),
      0, NULL, NULL,
      "A session with no browser request (poll, stream or send) for this "
      "long is closed, and so is its upstream WebSocket (1001). A finished "
      "session answers 410 Gone for as long again.", NULL, NULL },
    { "max_lifetime", T_DURATION, CF(max_lifetime_ms), 0, "0", SEC(1), HOURS(8760),
      D_ZERO_OK, NULL, NULL,
      "Sessions are closed this long after they opened, however active "
      "(the upstream with 1001). 0 = unlimited.", NULL, NULL },
    { "buffer_bytes", T_SIZE, CF(buffer_bytes), 0, "1MiB", KIB(1), GIB(1),
      0, NULL, NULL,
      "Per-session queue toward the browser, in bytes: messages received "
      "from the upstream and not yet acknowledged by the browser. When it "
      "or buffer_messages is full, overflow decides.", NULL, NULL },
    { "buffer_messages", T_UINT, CF(buffer_messages), 0, "10000", 1, 10000000,
      0, NULL, NULL,
      "The same queue, in messages.", NULL, NULL },
    { "overflow", T_ENUM, CF(overflow), 0, "pause", 0, 0, 0, overflows, NULL,
      "What happens when a session's queue toward the browser is full. "
      "pause: stop reading from the upstream until the browser catches up "
      "(nothing is lost, not even messages written to a stream but not yet "
      "acknowledged; TCP slows the upstream down until acks free room). "
      "drop-oldest: discard the oldest queued messages, those a stream "
      "already wrote first (the browser is told how many were lost). "
      "close: close the session (1008 buffer overflow).", NULL, NULL },
    { "send_buffer_bytes", T_SIZE, CF(send_buffer_bytes), 0, "1MiB", KIB(1), GIB(1),
      0, NULL, NULL,
      "Per-session queue toward the upstream: browser sends not yet written "
      "to the upstream socket. A browser send that does not fit is refused "
      "with 429.", NULL, NULL },
    { "max_batch", T_UINT, CF(max_batch), 0, "1000", 1, 1000000,
      0, NULL, NULL,
      "Most messages accepted in one browser send request (413 above).", NULL, NULL },
    { "max_sessions", T_UINT, CF(max_sessions), 0, "100000", 1, 10000000,
      0, NULL, NULL,
      "Most sessions open at once in this process; new ones are refused with "
      "503. Each session also holds one upstream socket: the process needs "
      "about two open files per session.", NULL, NULL },
    { "max_sessions_per_client", T_UINT, CF(max_sessions_per_client), 0, "1000",
      1, 10000000, 0, NULL, NULL,
      "Most sessions open at once from one client address (503 above).", NULL, NULL },
    { "max_buffered_bytes", T_SIZE, CF(max_buffered_bytes), 0, "1GiB", KIB(1),
      GIB(1024), 0, NULL, NULL,
      "All sessions' queues together (both directions), in bytes: a global "
      "budget above the per-session limits. Past it, upstreams are paused.",
      NULL, NULL },
};

static const struct directive upstream_keys[] = {
    { "connect_timeout", T_DURATION, CF(connect_timeout_ms), 0, "10s", 100,
      MINS(10), 0, NULL, NULL,
      "Time allowed to open an upstream WebSocket: name lookup, TCP connect, "
      "TLS and the WebSocket handshake together (504 above).", NULL, NULL },
    { "ping_interval", T_DURATION, CF(ping_interval_ms), 0, "20s", SEC(1), HOURS(1),
      D_ZERO_OK, NULL, NULL,
      "Interval of WebSocket pings sent to the upstream; a connection that "
      "does not answer in time is closed. 0 disables.", NULL, NULL },
    { "max_message", T_SIZE, CF(max_message), 0, "1MiB", 125, GIB(1),
      0, NULL, NULL,
      "Largest message accepted from the upstream (all fragments together); "
      "a larger one closes the connection (1009, message too big).", NULL, NULL },
    { "tls_ca_file", T_FILE, CF(tls_ca_file), 0, "", 0, 0, D_RESTART, NULL, NULL,
      "PEM file of CA certificates that wss:// upstream certificates must "
      "chain to. Empty = the system CA store. Checked at start when a route "
      "uses wss://. A relative path is relative to the directory of the "
      "configuration file.", NULL, NULL },
    { "tls_verify", T_BOOL, CF(tls_verify), 0, "on", 0, 0, D_RESTART, NULL, NULL,
      "Verify the upstream's certificate and host name on wss:// "
      "connections. Turn off only for testing (logged as a warning).", NULL, NULL },
    { "tls_cert_file", T_FILE, CF(tls_cert_file), 0, "", 0, 0, D_RESTART, NULL, NULL,
      "Client certificate (PEM) presented to wss:// upstreams, with "
      "tls_key_file: give both or neither; both must be readable at start. "
      "A relative path is relative to the directory of the configuration "
      "file.", NULL, NULL },
    { "tls_key_file", T_FILE, CF(tls_key_file), 0, "", 0, 0, D_RESTART, NULL, NULL,
      "Private key (PEM) of tls_cert_file.", NULL, NULL },
    { "resolv_conf", T_FILE, CF(resolv_conf), 0, "", 0, 0, D_RESTART, NULL, NULL,
      "Resolver configuration (resolv.conf syntax: nameserver 10.0.0.2, "
      "nameserver 127.0.0.1:5353, search, options) used to look up upstream "
      "host names without blocking. Host names in /etc/hosts are always "
      "honoured. Empty = the system's /etc/resolv.conf.", NULL, NULL },
};

static const struct directive route_keys[] = {
    { "path", T_STRING, RF(path), 0, NULL, 0, 0, 0, NULL, check_path,
      "URL path prefix served by this route, starting with '/' (a trailing "
      "'/' is ignored). Paths must differ between routes.", "/chat",
      "URL path" },
    { "upstream", T_URL, RF(upstream), 0, NULL, 0, 0, 0, NULL, NULL,
      "WebSocket URL each session of this route connects to: "
      "ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH, with an optional "
      "query.", "ws://127.0.0.1:9000/chat", NULL },
    { "origins", T_LIST, RF(origins), RF(n_origins), "", 0, 0, 0, NULL, check_origin,
      "Browser origins allowed to use this route (CORS), each "
      "scheme://host[:port] exactly as browsers send it (no path). Empty = "
      "only pages served by pollgate itself (same origin); * = any origin.",
      NULL, NULL },
    { "forward_headers", T_LIST, RF(forward_headers), RF(n_forward_headers),
      "Cookie, Authorization, User-Agent, Accept-Language", 0, 0, 0, NULL,
      check_header_name,
      "Request headers copied from the browser to the upstream handshake, "
      "so that the application authenticates the user as it would a native "
      "WebSocket client. All names listed are forwarded. Hop-by-hop headers "
      "(Connection, Upgrade, Keep-Alive, TE, Trailer, Transfer-Encoding, "
      "Proxy-*), Host, Content-Length, Sec-WebSocket-*, X-Forwarded-For and "
      "X-Real-IP (pollgate sets those itself) are refused; Origin is "
      "forward_origin's. Empty = none.", NULL, NULL },
    { "forward_origin", T_BOOL, RF(forward_origin), 0, "off", 0, 0, 0, NULL, NULL,
      "Also send the browser's Origin header to the upstream.", NULL, NULL },
    { "protocols", T_STRING, RF(protocols), 0, "", 0, 0, 0, NULL, check_protocols,
      "WebSocket subprotocols offered to the upstream when the browser asks "
      "for none, comma-separated. Empty = none.", NULL,
      "Comma-separated list" },
    { "websocket", T_BOOL, RF(websocket), 0, "on", 0, 0, 0, NULL, NULL,
      "Let browsers that can use WebSocket do so on this route: GET "
      "<path>/ws (a raw WebSocket relayed to the upstream, one upstream "
      "connection each) and, with sockjs = on, SockJS's websocket "
      "transports (<sockjs_path>/<server>/<session>/websocket and the raw "
      "<sockjs_path>/websocket); /info reports it. off = those URLs answer "
      "404.", NULL, NULL },
    { "sockjs", T_BOOL, RF(sockjs), 0, "off", 0, 0, 0, NULL, NULL,
      "Also serve the SockJS protocol on this route, so that an unmodified "
      "sockjs-client can use it.", "on", NULL },
    { "sockjs_path", T_STRING, RF(sockjs_path), 0, "", 0, 0, 0, NULL, check_path,
      "Base path of the SockJS endpoints (what sockjs-client is pointed "
      "at). Empty = the route's path followed by /sockjs.", NULL, "URL path" },
    { "sockjs_url", T_STRING, RF(sockjs_url), 0, "/sockjs.min.js", 0, 0, 0, NULL,
      NULL,
      "sockjs-client script loaded by the SockJS iframe page (the iframe "
      "transports of IE 6-9 need it; serve it yourself or from a CDN).", NULL, NULL },
    { "response_limit", T_SIZE, RF(response_limit), 0, "128KiB", KIB(1), GIB(1),
      0, NULL, NULL,
      "Bytes written to one SockJS streaming response (xhr_streaming, "
      "eventsource, htmlfile) before it ends so that the browser can free "
      "memory; the session lives on.", NULL, NULL },
    { "disconnect_delay", T_DURATION, RF(disconnect_delay_ms), 0, "5s", 100,
      HOURS(1), 0, NULL, NULL,
      "How long a SockJS session lives after its last receiving request "
      "ended (SockJS has no idle_timeout of its own).", NULL, NULL },
    { "cookie_needed", T_BOOL, RF(cookie_needed), 0, "off", 0, 0, 0, NULL, NULL,
      "Set a JSESSIONID cookie on SockJS session requests, for load "
      "balancers that stick by that cookie.", NULL, NULL },
    { "sockjs_jsonp", T_BOOL, RF(sockjs_jsonp), 0, "on", 0, 0, 0, NULL, NULL,
      "Serve SockJS's script transports: jsonp (with jsonp_send) and "
      "htmlfile, which the oldest browsers (IE 6-9 without CORS) fall back "
      "to. They are loaded by <script> and <iframe> elements that send no "
      "Origin, so when origins is not * they are refused (403) unless the "
      "Referer names an allowed page (pages must then not set "
      "Referrer-Policy: no-referrer). off = those URLs answer 404 and "
      "sockjs-client uses its other transports.", NULL, NULL },
    { "binary", T_ENUM, RF(sockjs_binary), 0, "close", 0, 0, 0, sockjs_binaries,
      NULL,
      "SockJS carries text only. A binary upstream message on a SockJS "
      "session is, with close: the end of the session (1003; nothing is "
      "silently altered); base64: sent as a base64 text message; drop: "
      "discarded (counted as binary_dropped in /stats).", NULL, NULL },
};

const struct section gw_config_sections[S_COUNT] = {
    [S_GATEWAY] = { "gateway", gateway_keys, ARRAY_LEN(gateway_keys),
                    "The HTTP front browsers talk to." },
    [S_SESSION] = { "session", session_keys, ARRAY_LEN(session_keys),
                    "Browser sessions: timeouts, queues and limits." },
    [S_UPSTREAM] = { "upstream", upstream_keys, ARRAY_LEN(upstream_keys),
                     "The WebSocket connections to the upstream servers." },
    [S_ADMIN] = { "admin", admin_keys, ARRAY_LEN(admin_keys),
                  "The operator's listener: health check, metrics, sessions." },
    [S_ROUTE] = { "route", route_keys, ARRAY_LEN(route_keys),
                  "One [route NAME] section per route (NAME is free text, "
                  "used in messages and /stats). A browser request whose "
                  "path starts with the route's path belongs to that route; "
                  "the longest matching path wins. The sockjs keys make the "
                  "route usable by an unmodified sockjs-client." },
};

_Static_assert(ARRAY_LEN(gateway_keys) <= MAX_KEYS, "MAX_KEYS");
_Static_assert(ARRAY_LEN(session_keys) <= MAX_KEYS, "MAX_KEYS");
_Static_assert(ARRAY_LEN(upstream_keys) <= MAX_KEYS, "MAX_KEYS");
_Static_assert(ARRAY_LEN(route_keys) <= MAX_KEYS, "MAX_KEYS");
_Static_assert(GW_LOG_DEBUG == 3 && GW_OVERFLOW_CLOSE == 2 &&
               GW_SOCKJS_BINARY_DROP == 2, "enum order");
/* T_ENUM fields are enums stored through an int lvalue (parse_enum). */
_Static_assert(sizeof(enum gw_log_level) == sizeof(int) &&
               sizeof(enum gw_overflow) == sizeof(int) &&
               sizeof(enum gw_sockjs_binary) == sizeof(int), "enum size");

/* ----------------------------------------------------------- parser state */

struct kept_error {
    int line;   /* INT_MAX for file-wide messages */
    size_t seq;
    char *msg;
};

struct parser {
    struct gw_config *cfg;
    struct gw_diag *diag;
    const char *name;         /* file name in messages */
    char *base_dir;           /* for relative TLS paths, or NULL */
    size_t n_errors;          /* all found */
    size_t n_kept;            /* the first MAX_ERRORS, unsorted */
    struct kept_error errs[MAX_ERRORS + 1];

    FILE *f;                  /* input: a file ... */
    const char *s;            /* ... or a string */
    char *line;               /* getline buffer */
    size_t line_cap;
    int lineno;

    bool in_section;          /* a section header was seen */
    enum section_id sec;      /* S_NONE: ignore keys (bad header) */
    size_t route;             /* index in cfg->routes when sec == S_ROUTE */
    int *seen;                /* line each key of this section was set on */
    int global_seen[N_GLOBAL][MAX_KEYS];
    int global_header[N_GLOBAL];
    int (*route_seen)[MAX_KEYS];

    const struct directive *cont_d; /* list key that may continue */
    int cont_line;                  /* on the line after this one */
};

/* --------------------------------------------------------------- messages */

/* Messages are kept with their line and handed to gw_diag sorted by line
 * (file-wide ones last) once the whole file has been checked. */
static void report(struct parser *p, int line, const char *sec, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "FILE:LINE: [sec] key: message"; line <= 0 drops LINE, NULL sec/key too. */
static void report(struct parser *p, int line, const char *sec, const char *key,
                   const char *fmt, ...)
{
    struct gw_buf b = { 0 };
    char msg[WHY_MAX * 2];
    va_list ap;
    if (++p->n_errors > MAX_ERRORS || !p->diag)
        return;
    gw_buf_appendf(&b, "%s:", p->name);
    if (line > 0)
        gw_buf_appendf(&b, "%d:", line);
    if (sec)
        gw_buf_appendf(&b, " [%s]%s", sec, key ? "" : ":");
    if (key)
        gw_buf_appendf(&b, " %s:", key);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gw_buf_appendf(&b, " %s", msg);
    if (!b.data)
        return;
    p->errs[p->n_kept].line = line > 0 ? line : INT_MAX;
    p->errs[p->n_kept].seq = p->n_kept;
    p->errs[p->n_kept++].msg = (char *)b.data;
}

static int err_cmp(const void *a, const void *b)
{
    const struct kept_error *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void flush_errors(struct parser *p)
{
    struct gw_diag *d = p->diag;
    qsort(p->errs, p->n_kept, sizeof p->errs[0], err_cmp);
    if (p->n_errors > MAX_ERRORS) {
        struct gw_buf b = { 0 };
        gw_buf_appendf(&b, "%s: %zu more errors not listed", p->name,
                       p->n_errors - MAX_ERRORS);
        p->errs[p->n_kept++].msg = (char *)b.data;
    }
    char **m = d && p->n_kept ? realloc(d->msgs, (d->n + p->n_kept) * sizeof *m) : NULL;
    if (m)
        d->msgs = m;
    for (size_t i = 0; i < p->n_kept; i++) {
        if (m && p->errs[i].msg)
            d->msgs[d->n++] = p->errs[i].msg;
        else
            free(p->errs[i].msg);
    }
    p->n_kept = 0;
}

void gw_diag_free(struct gw_diag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    d->msgs = NULL;
    d->n = 0;
}

static void fmt_duration(uint64_t ms, char *out, size_t n)
{
    if (ms && ms % 3600000u == 0)
        snprintf(out, n, "%" PRIu64 "h", ms / 3600000u);
    else if (ms && ms % 60000u == 0)
        snprintf(out, n, "%" PRIu64 "m", ms / 60000u);
    else if (ms && ms % 1000u == 0)
        snprintf(out, n, "%" PRIu64 "s", ms / 1000u);
    else
        snprintf(out, n, "%" PRIu64 "ms", ms);
}

static void fmt_size(uint64_t v, char *out, size_t n)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB" };
    int u = 0;
    while (u < 3 && v && v % 1024 == 0)
        v /= 1024, u++;
    snprintf(out, n, "%" PRIu64 "%s", v, units[u]);
}

void gw_config_fmt_number(enum dtype t, uint64_t v, char *out, size_t n)
{
    if (t == T_DURATION)
        fmt_duration(v, out, n);
    else if (t == T_SIZE)
        fmt_size(v, out, n);
    else
        snprintf(out, n, "%" PRIu64, v);
}

static const char *expected(enum dtype t)
{
    switch (t) {
    case T_DURATION: return "a duration like 500ms, 25s, 5m, 1h";
    case T_SIZE: return "a size like 512B, 64KiB, 1MiB, 1GiB";
    case T_UINT: return "a whole number like 1000";
    case T_BOOL: return "on or off (or yes/no, true/false, 1/0)";
    default: return "a valid value";
    }
}

/* -------------------------------------------------------- value parsers */

static char *xstrndup(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = 0;
    }
    return c;
}

static int oom(char *why, size_t n)
{
    snprintf(why, n, "out of memory");
    return GW_ENOMEM;
}

static int parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return GW_EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return GW_EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return GW_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_number(const struct directive *d, const char *v, char *base,
                        char *why, size_t n)
{
    uint64_t x;
    int rc = d->type == T_DURATION ? gw_parse_duration_ms(v, &x)
           : d->type == T_SIZE     ? gw_parse_size(v, &x)
                                   : parse_uint(v, &x);
    if (rc < 0) {
        snprintf(why, n, "invalid value '%s': expected %s", v, expected(d->type));
        return GW_EINVAL;
    }
    if ((x < d->min || x > d->max) && !(x == 0 && (d->flags & D_ZERO_OK))) {
        char lo[32], hi[32];
        gw_config_fmt_number(d->type, d->min, lo, sizeof lo);
        gw_config_fmt_number(d->type, d->max, hi, sizeof hi);
        snprintf(why, n, "%s is out of range: must be %sbetween %s and %s", v,
                 d->flags & D_ZERO_OK ? "0 or " : "", lo, hi);
        return GW_EINVAL;
    }
    *(uint64_t *)(void *)(base + d->off) = x;
    return 0;
}

static int parse_bool(const struct directive *d, const char *v, char *base,
                      char *why, size_t n)
{
    static const char *const yes[] = { "on", "yes", "true", "1" };
    static const char *const no[] = { "off", "no", "false", "0" };
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *(bool *)(base + d->off) = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    snprintf(why, n, "invalid value '%s': expected %s", v, expected(T_BOOL));
    return GW_EINVAL;
}

static int parse_enum(const struct directive *d, const char *v, char *base,
                      char *why, size_t n)
{
    for (int i = 0; d->values[i]; i++) {
        if (strcasecmp(v, d->values[i]) == 0) {
            *(int *)(void *)(base + d->off) = i;
            return 0;
        }
    }
    int k = snprintf(why, n, "invalid value '%s': expected one of:", v);
    for (int i = 0; d->values[i] && k > 0 && (size_t)k < n; i++)
        k += snprintf(why + k, n - (size_t)k, "%s %s", i ? "," : "", d->values[i]);
    return GW_EINVAL;
}

static void clear_string(const struct directive *d, char *base)
{
    char **f = (char **)(void *)(base + d->off);
    free(*f);
    *f = NULL;
}

/* T_STRING, T_FILE, T_DIR: empty means "not set" and is stored as NULL,
 * unless the key is required (no default): then the check says why not. */
static int parse_string(const struct directive *d, const char *v, char *base,
                        char *why, size_t n)
{
    char *s = NULL;
    if (*v || !d->def) {
        if (!(s = strdup(v)))
            return oom(why, n);
        if (d->check && d->check(s, why, n) < 0) {
            free(s);
            return GW_EINVAL;
        }
    }
    clear_string(d, base);
    *(char **)(void *)(base + d->off) = s;
    return 0;
}

/* Small local check (scheme and host) for a clear message, then the full
 * parser the upstream client uses, so what loads here also connects. */
static int parse_url(const struct directive *d, const char *v, char *base,
                     char *why, size_t n)
{
    size_t skip = strncasecmp(v, "ws://", 5) == 0    ? 5
                : strncasecmp(v, "wss://", 6) == 0   ? 6 : 0;
    if (!skip) {
        snprintf(why, n, "invalid URL '%s': expected ws://HOST[:PORT]/PATH or "
                 "wss://HOST[:PORT]/PATH", v);
        return GW_EINVAL;
    }
    if (strchr("/?#:", v[skip])) {
        snprintf(why, n, "invalid URL '%s': missing host", v);
        return GW_EINVAL;
    }
    struct ws_url url;
    struct gw_error err = { 0 };
    if (ws_url_parse(v, &url, &err) < 0) {
        snprintf(why, n, "invalid URL '%s': %s", v, err.msg);
        return GW_EINVAL;
    }
    ws_url_clear(&url);
    return parse_string(d, v, base, why, n);
}

static bool host_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

static bool is_ipv6(const char *s, size_t len)
{
    char addr[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    if (len >= sizeof addr)
        return false;
    memcpy(addr, s, len);
    addr[len] = 0;
    return inet_pton(AF_INET6, addr, bin) == 1;
}

static int parse_port(const char *s, const struct directive *d, uint16_t *out,
                      char *why, size_t n)
{
    uint64_t v;
    if (!*s) {
        snprintf(why, n, "missing port after ':'");
        return GW_EINVAL;
    }
    if (strlen(s) > 5 || parse_uint(s, &v) < 0 || v < d->min || v > d->max) {
        snprintf(why, n, "invalid port '%s': must be between %" PRIu64 " and %"
                 PRIu64, s, d->min, d->max);
        return GW_EINVAL;
    }
    *out = (uint16_t)v;
    return 0;
}

/* One "host:port" or "[v6]:port" -> *out (host new). */
static int parse_addr(const struct directive *d, const char *v,
                      struct gw_listen *out, char *why, size_t n)
{
    const char *host = v, *port;
    size_t hlen;
    if (*v == '[') {
        const char *rb = strchr(v, ']');
        if (!rb) {
            snprintf(why, n, "'%s': missing ']' after the IPv6 address "
                     "(expected [::1]:8080)", v);
            return GW_EINVAL;
        }
        host = v + 1;
        hlen = (size_t)(rb - host);
        if (!is_ipv6(host, hlen)) {
            snprintf(why, n, "'%.*s' is not an IPv6 address", (int)hlen, host);
            return GW_EINVAL;
        }
        if (rb[1] != ':') {
            snprintf(why, n, "'%s': expected ':PORT' after ']' (e.g. [::1]:8080)", v);
            return GW_EINVAL;
        }
        port = rb + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (!colon) {
            snprintf(why, n, "'%s': expected HOST:PORT, e.g. 127.0.0.1:8080 or "
                     "[::1]:8080", v);
            return GW_EINVAL;
        }
        hlen = (size_t)(colon - v);
        if (memchr(v, ':', hlen)) {
            snprintf(why, n, "'%s': an IPv6 address must be in brackets, e.g. "
                     "[::1]:8080", v);
            return GW_EINVAL;
        }
        if (hlen == 0) {
            snprintf(why, n, "'%s': missing host (0.0.0.0 = every IPv4 address, "
                     "[::] = every address)", v);
            return GW_EINVAL;
        }
        for (size_t i = 0; i < hlen; i++) {
            if (!host_char((unsigned char)v[i]) || hlen > 253) {
                snprintf(why, n, "'%.*s' is not an IP address or host name",
                         (int)hlen, v);
                return GW_EINVAL;
            }
        }
        port = colon + 1;
    }
    uint16_t pnum;
    if (parse_port(port, d, &pnum, why, n) < 0)
        return GW_EINVAL;
    char *h = xstrndup(host, hlen);
    if (!h)
        return oom(why, n);
    out->host = h;
    out->port = pnum;
    return 0;
}

static void clear_listen(const struct directive *d, char *base)
{
    struct gw_listen **items = (struct gw_listen **)(void *)(base + d->off);
    size_t *count = (size_t *)(void *)(base + d->off2);
    for (size_t i = 0; i < *count; i++)
        free((*items)[i].host);
    free(*items);
    *items = NULL;
    *count = 0;
}

static void free_addrs(struct gw_listen *items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i].host);
    free(items);
}

/* One more item of a listen list, appended to *items (*count of them). */
static int listen_item(const struct directive *d, const char *s, size_t len,
                       struct gw_listen **items, size_t *count, char *why,
                       size_t n)
{
    if (*count >= 64) {
        snprintf(why, n, "too many addresses (at most 64)");
        return GW_EINVAL;
    }
    char *item = xstrndup(s, len);
    struct gw_listen *grown = item ? realloc(*items, (*count + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(item);
        return oom(why, n);
    }
    *items = grown;
    struct gw_listen a;
    int rc = parse_addr(d, item, &a, why, n);
    free(item);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < *count; i++) {
        if (grown[i].port == a.port && strcasecmp(grown[i].host, a.host) == 0) {
            snprintf(why, n, "'%s' port %u is listed twice", a.host, a.port);
            free(a.host);
            return GW_EINVAL;
        }
    }
    grown[(*count)++] = a;
    return 0;
}

/* The next item of a comma-separated list: on return [*b, *e) is the
 * item trimmed of white space (possibly empty) and the result is where the
 * following item starts, NULL after the last one. */
static const char *next_list_item(const char *s, const char **b, const char **e)
{
    const char *comma = strchr(s, ',');
    const char *end = comma ? comma : s + strlen(s);
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *b = s;
    *e = end;
    return comma ? comma + 1 : NULL;
}

/* "ADDR, ADDR, ...": every item as parse_addr; the same address twice is
 * an error. The field keeps its value unless the whole list is good. */
static int parse_listen(const struct directive *d, const char *v, char *base,
                        char *why, size_t n)
{
    struct gw_listen *items = NULL;
    size_t count = 0;
    for (const char *next = v, *s, *e; next;) {
        next = next_list_item(next, &s, &e);
        if (e > s) {
            int rc = listen_item(d, s, (size_t)(e - s), &items, &count, why, n);
            if (rc < 0) {
                free_addrs(items, count);
                return rc;
            }
        }
    }
    if (count == 0 && d->def && *d->def) {
        /* listen: at least one address (tls_listen may be empty) */
        snprintf(why, n, "'%s': expected HOST:PORT, e.g. 127.0.0.1:8080 or "
                 "[::1]:8080", v);
        return GW_EINVAL;
    }
    clear_listen(d, base);
    *(struct gw_listen **)(void *)(base + d->off) = items;
    *(size_t *)(void *)(base + d->off2) = count;
    return 0;
}

/* T_ADDR: one address (the admin listener); empty = off when allowed. */
static int parse_one_addr(const struct directive *d, const char *v, char *base,
                          char *why, size_t n)
{
    struct gw_listen a = { NULL, 0 };
    if (!(*v == 0 && (d->flags & D_ZERO_OK))) {
        int rc = parse_addr(d, v, &a, why, n);
        if (rc < 0)
            return rc;
    }
    clear_string(d, base);
    *(char **)(void *)(base + d->off) = a.host;
    *(uint16_t *)(void *)(base + d->off2) = a.port;
    return 0;
}

static void clear_list(const struct directive *d, char *base)
{
    char ***items = (char ***)(void *)(base + d->off);
    size_t *count = (size_t *)(void *)(base + d->off2);
    for (size_t i = 0; i < *count; i++)
        free((*items)[i]);
    free(*items);
    *items = NULL;
    *count = 0;
}

/* Append the comma-separated items of v (trimmed; empty items ignored, so
 * a trailing comma before a continuation line is fine). */
static int list_append(const struct directive *d, const char *v, char *base,
                       char *why, size_t n)
{
    char ***items = (char ***)(void *)(base + d->off);
    size_t *count = (size_t *)(void *)(base + d->off2);
    for (const char *next = v, *s, *e; next;) {
        next = next_list_item(next, &s, &e);
        if (e > s && *count >= MAX_LIST) {
            snprintf(why, n, "too many entries (at most %d)", MAX_LIST);
            return GW_EINVAL;
        }
        if (e > s) {
            char *item = xstrndup(s, (size_t)(e - s));
            char **grown = item ? realloc(*items, (*count + 1) * sizeof *grown) : NULL;
            if (!grown) {
                free(item);
                return oom(why, n);
            }
            *items = grown;
            if (d->check && d->check(item, why, n) < 0) {
                free(item);
                return GW_EINVAL;
            }
            for (size_t i = 0; i < *count; i++) {
                if (strcasecmp((*items)[i], item) == 0) {
                    snprintf(why, n, "'%s' is listed twice", item);
                    free(item);
                    return GW_EINVAL;
                }
            }
            (*items)[(*count)++] = item;
        }
    }
    return 0;
}

static int parse_list(const struct directive *d, const char *v, char *base,
                      char *why, size_t n)
{
    clear_list(d, base);
    return list_append(d, v, base, why, n);
}

/* Parse v into the field(s) of d in base. Returns 0, or GW_EINVAL (bad
 * value) / GW_ENOMEM with why filled; every helper below does the same.
 * The detail is a caller's buffer of WHY_MAX rather than a struct gw_error:
 * messages quote the value (up to MAX_LINE characters), which would not
 * fit GW_ERROR_MSG_MAX. */
typedef int (*parse_fn)(const struct directive *d, const char *v, char *base,
                        char *why, size_t n);

static const struct {
    parse_fn parse;
    void (*clear)(const struct directive *d, char *base);
} types[] = {
    [T_DURATION] = { parse_number, NULL },
    [T_SIZE] = { parse_number, NULL },
    [T_UINT] = { parse_number, NULL },
    [T_BOOL] = { parse_bool, NULL },
    [T_ENUM] = { parse_enum, NULL },
    [T_STRING] = { parse_string, clear_string },
    [T_FILE] = { parse_string, clear_string },
    [T_DIR] = { parse_string, clear_string },
    [T_LISTEN] = { parse_listen, clear_listen },
    [T_ADDR] = { parse_one_addr, clear_string },
    [T_LIST] = { parse_list, clear_list },
    [T_URL] = { parse_url, clear_string },
};

/* ------------------------------------------------------------ checks */

static int check_path(char *s, char *why, size_t n)
{
    if (s[0] != '/') {
        snprintf(why, n, "'%s' must start with '/' (e.g. /chat)", s);
        return GW_EINVAL;
    }
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '?' || *c == '#') {
            snprintf(why, n, "'%s' may not contain spaces, '?' or '#'", s);
            return GW_EINVAL;
        }
    }
    size_t len = strlen(s);
    while (len > 1 && s[len - 1] == '/') /* "/chat/" is the prefix "/chat" */
        s[--len] = 0;
    return 0;
}

/* "*" or scheme://host[:port], stored lower-case without a default port,
 * the way browsers send Origin. */
static int check_origin(char *s, char *why, size_t n)
{
    if (strcmp(s, "*") == 0)
        return 0;
    char *p = s;
    if (!isalpha((unsigned char)*p))
        goto bad;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3) != 0)
        goto bad;
    char *host = p + 3, *after;
    if (*host == '[') {
        char *rb = strchr(host, ']');
        if (!rb || !is_ipv6(host + 1, (size_t)(rb - host - 1)))
            goto bad;
        after = rb + 1;
    } else {
        after = host;
        while (host_char((unsigned char)*after))
            after++;
        if (after == host)
            goto bad;
    }
    char *colon = NULL;
    if (*after == ':') {
        colon = after++;
        char *digits = after;
        while (isdigit((unsigned char)*after))
            after++;
        unsigned long port = after - digits <= 5 ? strtoul(digits, NULL, 10) : 0;
        if (after == digits || port < 1 || port > 65535)
            goto bad;
    }
    if (*after == '/') {
        snprintf(why, n, "origin '%s' must not have a path: write %.*s", s,
                 (int)(after - s), s);
        return GW_EINVAL;
    }
    if (*after)
        goto bad;
    for (char *c = s; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (colon && ((strncmp(s, "http:", 5) == 0 && strcmp(colon, ":80") == 0) ||
                  (strncmp(s, "https:", 6) == 0 && strcmp(colon, ":443") == 0)))
        *colon = 0;
    return 0;
bad:
    snprintf(why, n, "'%s' is not an origin: expected * or scheme://host[:port], "
             "e.g. https://example.com", s);
    return GW_EINVAL;
}

static bool is_tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int check_token(const char *s, const char *what, char *why, size_t n)
{
    for (const char *c = s; *c; c++) {
        if (!is_tchar((unsigned char)*c)) {
            snprintf(why, n, "'%s' is not a valid %s (letters, digits and "
                     "!#$%%&'*+-.^_`|~ only)", s, what);
            return GW_EINVAL;
        }
    }
    return 0;
}

static int check_header_name(char *s, char *why, size_t n)
{
    /* Hop-by-hop headers describe the browser's own connection, and the
     * handshake and client-address headers are pollgate's to set: copying
     * the browser's would let it steer the upstream handshake or spoof its
     * address. */
    static const char *const owned[] = {
        "Host", "Connection", "Upgrade", "Content-Length", "Transfer-Encoding",
        "Keep-Alive", "TE", "Trailer", "X-Forwarded-For", "X-Real-IP",
    };
    if (check_token(s, "header name", why, n) < 0)
        return GW_EINVAL;
    if (strcasecmp(s, "Origin") == 0) {
        snprintf(why, n, "'%s': use forward_origin = on to forward Origin", s);
        return GW_EINVAL;
    }
    bool bad = strncasecmp(s, "Sec-WebSocket-", 14) == 0 ||
               strncasecmp(s, "Proxy-", 6) == 0;
    for (size_t i = 0; i < ARRAY_LEN(owned) && !bad; i++)
        bad = strcasecmp(s, owned[i]) == 0;
    if (bad) {
        snprintf(why, n, "'%s' cannot be forwarded: pollgate sets it for the "
                 "upstream handshake", s);
        return GW_EINVAL;
    }
    return 0;
}

/* [A-Za-z0-9]{1,16}: it goes into session ids and a load balancer's
 * routing rule, so nothing that needs escaping. */
static int check_instance(char *s, char *why, size_t n)
{
    size_t len = strlen(s);
    bool ok = len >= 1 && len <= 16;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)s[i]) != 0;
    if (!ok) {
        snprintf(why, n, "'%s': expected 1 to 16 letters and digits (e.g. a1)", s);
        return GW_EINVAL;
    }
    return 0;
}

static int check_protocols(char *s, char *why, size_t n)
{
    char names[WHY_MAX] = ",";
    for (const char *next = s, *p, *e; next;) {
        next = next_list_item(next, &p, &e);
        char item[WHY_MAX / 2];
        size_t len = (size_t)(e - p);
        if (len == 0 || len >= sizeof item) {
            snprintf(why, n, "'%s': expected subprotocol names separated by commas", s);
            return GW_EINVAL;
        }
        memcpy(item, p, len);
        item[len] = 0;
        if (check_token(item, "subprotocol name", why, n) < 0)
            return GW_EINVAL;
        char key[sizeof item + 2];
        snprintf(key, sizeof key, ",%s,", item);
        if (strstr(names, key)) {
            snprintf(why, n, "'%s' is listed twice", item);
            return GW_EINVAL;
        }
        if (strlen(names) + len + 1 < sizeof names)
            strcat(strcat(names, item), ",");
    }
    return 0;
}

/* -------------------------------------------------------- sections */

static char *section_base(struct parser *p, enum section_id sec, size_t route)
{
    return sec == S_ROUTE ? (char *)&p->cfg->routes[route] : (char *)p->cfg;
}

static const char *section_label(struct parser *p, enum section_id sec, size_t route,
                                 char *buf, size_t n)
{
    if (sec != S_ROUTE)
        return gw_config_sections[sec].name;
    snprintf(buf, n, "route %s", p->cfg->routes[route].name);
    return buf;
}

static void apply_defaults(struct parser *p, enum section_id sec, size_t route)
{
    const struct section *s = &gw_config_sections[sec];
    for (size_t i = 0; i < s->n; i++) {
        const struct directive *d = &s->keys[i];
        char why[WHY_MAX];
        if (d->def && types[d->type].parse(d, d->def, section_base(p, sec, route),
                                           why, sizeof why) < 0)
            report(p, 0, s->name, d->key, "internal error: bad default '%s': %s",
                   d->def, why);
    }
}

static const struct directive *find_key(const struct section *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcasecmp(s->keys[i].key, key) == 0)
            return &s->keys[i];
    return NULL;
}

static void open_route(struct parser *p, const char *name, size_t len)
{
    struct gw_config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (strlen(cfg->routes[i].name) == len &&
            memcmp(cfg->routes[i].name, name, len) == 0) {
            report(p, p->lineno, NULL, NULL, "[route %.*s]: duplicate route name "
                   "(first defined at line %d)", (int)len, name, cfg->routes[i].line);
            return;
        }
    }
    if (cfg->n_routes >= MAX_ROUTES) {
        report(p, p->lineno, NULL, NULL, "too many routes (at most %d)", MAX_ROUTES);
        return;
    }
    size_t k = cfg->n_routes;
    struct gw_route *r = realloc(cfg->routes, (k + 1) * sizeof *r);
    if (r)
        cfg->routes = r;
    int (*seen)[MAX_KEYS] = r ? realloc(p->route_seen, (k + 1) * sizeof *seen) : NULL;
    if (seen)
        p->route_seen = seen;
    char *nm = seen ? xstrndup(name, len) : NULL;
    if (!nm) {
        report(p, p->lineno, NULL, NULL, "out of memory");
        return;
    }
    memset(&cfg->routes[k], 0, sizeof cfg->routes[k]);
    memset(p->route_seen[k], 0, sizeof p->route_seen[k]);
    cfg->routes[k].name = nm;
    cfg->routes[k].line = p->lineno;
    cfg->n_routes++;
    apply_defaults(p, S_ROUTE, k);
    p->sec = S_ROUTE;
    p->route = k;
    p->seen = p->route_seen[k];
}

static void open_section(struct parser *p, const char *name, size_t len)
{
    p->in_section = true;
    p->sec = S_NONE;
    for (int i = 0; i < N_GLOBAL; i++) {
        if (strlen(gw_config_sections[i].name) == len &&
            strncasecmp(gw_config_sections[i].name, name, len) == 0) {
            if (p->global_header[i])
                report(p, p->lineno, gw_config_sections[i].name, NULL, "section repeated "
                       "(first at line %d)", p->global_header[i]);
            else
                p->global_header[i] = p->lineno;
            p->sec = i;
            p->seen = p->global_seen[i];
            return;
        }
    }
    if (len >= 5 && strncasecmp(name, "route", 5) == 0 &&
        (len == 5 || isspace((unsigned char)name[5]))) {
        name += 5, len -= 5;
        while (len && isspace((unsigned char)*name))
            name++, len--;
        if (len)
            open_route(p, name, len);
        else
            report(p, p->lineno, "route", NULL, "a route needs a name: [route NAME]");
        return;
    }
    report(p, p->lineno, NULL, NULL, "[%.*s]: unknown section (expected [gateway], "
           "[session], [upstream], [admin] or [route NAME])", (int)len, name);
}

/* Offset of an inline comment (';' after a blank, as inih does), or len. */
static size_t comment_start(const char *s, size_t len)
{
    for (size_t i = 1; i < len; i++)
        if (s[i] == ';' && (s[i - 1] == ' ' || s[i - 1] == '\t'))
            return i;
    return len;
}

static void section_line(struct parser *p, const char *c, size_t len)
{
    size_t end = comment_start(c, len);
    const char *rb = memchr(c, ']', end);
    if (!rb) {
        report(p, p->lineno, NULL, NULL, "missing ']' in section header");
        p->in_section = true;
        p->sec = S_NONE;
        return;
    }
    for (const char *t = rb + 1; t < c + end; t++) {
        if (!isspace((unsigned char)*t)) {
            report(p, p->lineno, NULL, NULL, "unexpected text after ']' "
                   "(a comment needs ' ;')");
            break;
        }
    }
    const char *name = c + 1;
    while (name < rb && isspace((unsigned char)*name))
        name++;
    while (rb > name && isspace((unsigned char)rb[-1]))
        rb--;
    open_section(p, name, (size_t)(rb - name));
}

/* ------------------------------------------------------------- the reader */

static void set_value(struct parser *p, const struct directive *d, const char *v,
                      bool append)
{
    char label[WHY_MAX], why[WHY_MAX];
    const char *sec = section_label(p, p->sec, p->route, label, sizeof label);
    const char *hash = strchr(v, '#');
    if (hash && (hash == v || hash[-1] == ' ' || hash[-1] == '\t')) {
        report(p, p->lineno, sec, d->key, "'#' starts a comment only at the "
               "beginning of a line; use ' ;' after a value");
        return;
    }
    char *base = section_base(p, p->sec, p->route);
    int rc = append ? list_append(d, v, base, why, sizeof why)
                    : types[d->type].parse(d, v, base, why, sizeof why);
    if (rc < 0)
        report(p, p->lineno, sec, d->key, "%s", why);
}

/* One "key = value" line of the current section. */
static void key_value(struct parser *p, const char *name, const char *value)
{
    p->cont_d = NULL;
    if (!p->in_section) {
        report(p, p->lineno, NULL, name, "key outside of any section (put it "
               "under [gateway], [session], [upstream], [admin] or [route NAME])");
        return;
    }
    if (p->sec == S_NONE)
        return; /* the bad section header was reported */
    char label[WHY_MAX];
    const char *sec = section_label(p, p->sec, p->route, label, sizeof label);
    const struct directive *d = find_key(&gw_config_sections[p->sec], name);
    if (!*name) {
        report(p, p->lineno, sec, NULL, "missing key name before '='");
        return;
    }
    if (!d) {
        report(p, p->lineno, sec, name, "unknown key");
        return;
    }
    size_t i = (size_t)(d - gw_config_sections[p->sec].keys);
    if (p->seen[i]) {
        report(p, p->lineno, sec, d->key, "duplicate key (first set at line %d)",
               p->seen[i]);
        return;
    }
    p->seen[i] = p->lineno;
    if (d->type == T_LIST) {
        p->cont_d = d;
        p->cont_line = p->lineno;
    }
    set_value(p, d, value, false);
}

static bool next_line(struct parser *p, const char **line, size_t *len)
{
    if (p->f) {
        ssize_t n = getline(&p->line, &p->line_cap, p->f);
        if (n < 0)
            return false;
        *line = p->line;
        *len = (size_t)n;
        return true;
    }
    if (!*p->s)
        return false;
    const char *nl = strchr(p->s, '\n');
    *line = p->s;
    *len = nl ? (size_t)(nl - p->s + 1) : strlen(p->s);
    p->s += *len;
    return true;
}

static bool has_control_char(struct parser *p, const char *c, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)c[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            report(p, p->lineno, NULL, NULL, "control character 0x%02x in line", ch);
            return true;
        }
    }
    return false;
}

static size_t trim_end(const char *c, size_t len)
{
    while (len && isspace((unsigned char)c[len - 1]))
        len--;
    return len;
}

/* A line that is neither blank, a comment nor a section header, without
 * its indentation: "key = value", or the continuation of a list. */
static void assignment_line(struct parser *p, const char *c, size_t len, bool cont)
{
    size_t end = comment_start(c, len), sep = 0;
    while (sep < end && c[sep] != '=' && c[sep] != ':')
        sep++;
    cont = cont && !memchr(c, '=', end);
    if (!cont && (sep == end || c[sep] == ':')) {
        /* "https://h" is not the key "https": we want '=' */
        report(p, p->lineno, NULL, NULL, "syntax error: expected 'key = value'%s",
               sep < end ? " (not 'key: value')" : ", '[section]' or a comment");
        return;
    }
    len = trim_end(c, end);
    if (len > MAX_LINE) {
        report(p, p->lineno, NULL, NULL, "line too long (%zu characters without "
               "comment; at most %d)", len, MAX_LINE);
        return;
    }
    char buf[MAX_LINE + 1];
    memcpy(buf, c, len);
    buf[len] = 0;
    if (cont) {
        p->cont_line = p->lineno;
        set_value(p, p->cont_d, buf, true);
        return;
    }
    buf[trim_end(buf, sep)] = 0;
    const char *value = buf + sep + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    key_value(p, buf, value);
}

/* One physical line: the whole syntax is here (see the top of the file). */
static void read_line(struct parser *p, const char *c, size_t len)
{
    if (p->lineno == 1 && len >= 3 && memcmp(c, "\xEF\xBB\xBF", 3) == 0)
        c += 3, len -= 3;
    len = trim_end(c, len);
    if (has_control_char(p, c, len))
        return;
    size_t indent = 0;
    while (indent < len && (c[indent] == ' ' || c[indent] == '\t'))
        indent++;
    bool may_continue = indent && p->cont_d && p->cont_line == p->lineno - 1;
    c += indent, len -= indent;
    if (len == 0 || *c == ';' || *c == '#')
        return;
    if (*c == '[')
        section_line(p, c, len);
    else
        assignment_line(p, c, len, may_continue);
}

/* -------------------------------------------------------- whole config */

static int key_line(struct parser *p, enum section_id sec, const char *key)
{
    const struct directive *d = find_key(&gw_config_sections[sec], key);
    return p->global_seen[sec][d - gw_config_sections[sec].keys];
}

static int file_readable(const char *path, char *why, size_t n)
{
    struct stat st;
    int fd = -1;
    if (stat(path, &st) < 0 ||
        (S_ISREG(st.st_mode) && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)) {
        snprintf(why, n, "cannot read %s: %s", path, strerror(errno));
        return GW_EIO;
    }
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    snprintf(why, n, "cannot read %s: %s", path,
             S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
    return GW_EIO;
}

/* Relative T_FILE and T_DIR paths are relative to the config file, so
 * that they do not depend on the directory pollgate was started from;
 * directories must exist (files are checked by check_tls). */
static int dir_usable(const char *path, char *why, size_t n)
{
    struct stat st;
    const char *e = stat(path, &st) < 0              ? strerror(errno)
                  : !S_ISDIR(st.st_mode)             ? "not a directory"
                  : access(path, R_OK | X_OK) < 0    ? strerror(errno) : NULL;
    if (e)
        snprintf(why, n, "cannot use %s: %s", path, e);
    return e ? GW_EIO : 0;
}

static void resolve_paths(struct parser *p)
{
    char why[WHY_MAX];
    for (int s = 0; s < N_GLOBAL; s++) {
        for (size_t i = 0; i < gw_config_sections[s].n; i++) {
            const struct directive *d = &gw_config_sections[s].keys[i];
            char **f = (char **)(void *)((char *)p->cfg + d->off);
            if ((d->type != T_FILE && d->type != T_DIR) || !*f)
                continue;
            /* error_log and access_log: not paths */
            if (d->type == T_FILE && (!strcmp(*f, "off") || !strcmp(*f, "stderr")))
                continue;
            if (**f != '/' && p->base_dir) {
                size_t n = strlen(p->base_dir) + strlen(*f) + 2;
                char *full = malloc(n);
                if (!full) {
                    report(p, 0, NULL, NULL, "out of memory");
                    return;
                }
                snprintf(full, n, "%s/%s", p->base_dir, *f);
                free(*f);
                *f = full;
            }
            if (d->type == T_DIR && dir_usable(*f, why, sizeof why) < 0)
                report(p, p->global_seen[s][i], gw_config_sections[s].name, d->key, "%s", why);
        }
    }
}

static void check_tls(struct parser *p)
{
    struct gw_config *cfg = p->cfg;
    char why[WHY_MAX];
    int cert = key_line(p, S_UPSTREAM, "tls_cert_file");
    int key = key_line(p, S_UPSTREAM, "tls_key_file");
    int ca = key_line(p, S_UPSTREAM, "tls_ca_file");
    if (cfg->tls_cert_file && !cfg->tls_key_file)
        report(p, cert, "upstream", "tls_cert_file", "tls_key_file is required too");
    if (cfg->tls_key_file && !cfg->tls_cert_file)
        report(p, key, "upstream", "tls_key_file", "tls_cert_file is required too");
    if (cfg->tls_cert_file && file_readable(cfg->tls_cert_file, why, sizeof why) < 0)
        report(p, cert, "upstream", "tls_cert_file", "%s", why);
    if (cfg->tls_key_file && file_readable(cfg->tls_key_file, why, sizeof why) < 0)
        report(p, key, "upstream", "tls_key_file", "%s", why);
    for (size_t i = 0; i < cfg->n_routes && cfg->tls_ca_file; i++) {
        const char *u = cfg->routes[i].upstream;
        if (!u || strncasecmp(u, "wss:", 4) != 0)
            continue;
        if (file_readable(cfg->tls_ca_file, why, sizeof why) < 0)
            report(p, ca, "upstream", "tls_ca_file", "%s (needed by wss:// "
                   "[route %s] at line %d)", why, cfg->routes[i].name,
                   cfg->routes[i].line);
        break;
    }
}

/* [gateway] tls_listen and its certificate: both files given, readable,
 * parseable, and the key matching the certificate (gw_tls). */
static void check_front_tls(struct parser *p)
{
    struct gw_config *cfg = p->cfg;
    char why[WHY_MAX];
    int cert = key_line(p, S_GATEWAY, "tls_cert_file");
    int key = key_line(p, S_GATEWAY, "tls_key_file");
    int tl = key_line(p, S_GATEWAY, "tls_listen");
    if (cfg->n_tls_listen == 0) {
        if (cfg->front_tls_cert_file || cfg->front_tls_key_file)
            report(p, cert ? cert : key, "gateway",
                   cert ? "tls_cert_file" : "tls_key_file",
                   "set but tls_listen is empty (the upstream client "
                   "certificate is [upstream] tls_cert_file)");
        return;
    }
    if (!cfg->front_tls_cert_file || !cfg->front_tls_key_file) {
        report(p, tl, "gateway", "tls_listen", "%s required too",
               cfg->front_tls_cert_file ? "tls_key_file is" :
               cfg->front_tls_key_file ? "tls_cert_file is" :
               "tls_cert_file and tls_key_file are");
        return;
    }
    bool ok = true;
    if (file_readable(cfg->front_tls_cert_file, why, sizeof why) < 0) {
        report(p, cert, "gateway", "tls_cert_file", "%s", why);
        ok = false;
    }
    if (file_readable(cfg->front_tls_key_file, why, sizeof why) < 0) {
        report(p, key, "gateway", "tls_key_file", "%s", why);
        ok = false;
    }
    if (!ok)
        return;
    bool key_bad = false;
    if (gw_tls_check_pair(cfg->front_tls_cert_file, cfg->front_tls_key_file,
                          &key_bad, why, sizeof why) < 0)
        report(p, key_bad ? key : cert, "gateway",
               key_bad ? "tls_key_file" : "tls_cert_file", "%s", why);
}

/* user and group must exist (looked up in the system's user database). */
static void check_user(struct parser *p)
{
    struct gw_config *cfg = p->cfg;
    if (cfg->user && !getpwnam(cfg->user))
        report(p, key_line(p, S_GATEWAY, "user"), "gateway", "user",
               "no such user '%s'", cfg->user);
    if (cfg->group && !getgrnam(cfg->group))
        report(p, key_line(p, S_GATEWAY, "group"), "gateway", "group",
               "no such group '%s'", cfg->group);
    if (cfg->group && !cfg->user)
        report(p, key_line(p, S_GATEWAY, "group"), "gateway", "group",
               "needs user too");
}

static void check_route(struct parser *p, size_t k)
{
    struct gw_route *r = &p->cfg->routes[k];
    const int *seen = p->route_seen[k];
    char label[WHY_MAX];
    const char *sec = section_label(p, S_ROUTE, k, label, sizeof label);
    for (size_t i = 0; i < ARRAY_LEN(route_keys); i++)
        if (!route_keys[i].def && !seen[i])
            report(p, r->line, sec, route_keys[i].key, "required key missing");
    bool any = false;
    for (size_t i = 0; i < r->n_origins; i++)
        any |= strcmp(r->origins[i], "*") == 0;
    if (any && r->n_origins > 1)
        report(p, seen[find_key(&gw_config_sections[S_ROUTE], "origins") - route_keys], sec,
               "origins", "'*' (any origin) cannot be combined with other origins");
    else if (any) {
        clear_list(find_key(&gw_config_sections[S_ROUTE], "origins"), (char *)r);
        r->origins_any = true;
    }
    for (size_t j = 0; j < k && r->path; j++) {
        const struct gw_route *o = &p->cfg->routes[j];
        if (o->path && strcmp(o->path, r->path) == 0) {
            size_t pi = (size_t)(find_key(&gw_config_sections[S_ROUTE], "path") - route_keys);
            report(p, seen[pi], sec, "path", "%s is already used by [route %s] at "
                   "line %d", r->path, o->name, p->route_seen[j][pi]);
            break;
        }
    }
}

static void set_first_listener(struct gw_config *cfg)
{
    const struct gw_listen *first = cfg->n_listen ? &cfg->listen[0]
                                  : cfg->n_tls_listen ? &cfg->tls_listen[0] : NULL;
    cfg->listen_host = first ? first->host : NULL;
    cfg->listen_port = first ? first->port : 0;
}

static void finish(struct parser *p)
{
    resolve_paths(p);
    for (size_t k = 0; k < p->cfg->n_routes; k++)
        check_route(p, k);
    if (p->cfg->n_routes == 0)
        report(p, 0, NULL, NULL, "no [route NAME] section: at least one route "
               "(path and upstream) is required");
    check_tls(p);
    check_front_tls(p);
    check_user(p);
    set_first_listener(p->cfg);
}

/* ------------------------------------------------------------ reload */

/* Append one formatted message to d (dropped on ENOMEM). */
static void diag_add(struct gw_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void diag_add(struct gw_diag *d, const char *fmt, ...)
{
    char msg[WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *m = strdup(msg);
    char **v = m ? realloc(d->msgs, (d->n + 1) * sizeof *v) : NULL;
    if (!v) {
        free(m);
        return;
    }
    d->msgs = v;
    d->msgs[d->n++] = m;
}

static bool str_same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Is the value of directive d the same in a and b (structs of its
 * section)? */
static bool value_equal(const struct directive *d, const char *a, const char *b)
{
#define AT(base, off, T) (*(const T *)(const void *)((base) + (off)))
    switch (d->type) {
    case T_DURATION: case T_SIZE: case T_UINT:
        return AT(a, d->off, uint64_t) == AT(b, d->off, uint64_t);
    case T_BOOL:
        return AT(a, d->off, bool) == AT(b, d->off, bool);
    case T_ENUM:
        return AT(a, d->off, int) == AT(b, d->off, int);
    case T_STRING: case T_FILE: case T_DIR: case T_URL:
        return str_same(AT(a, d->off, char *), AT(b, d->off, char *));
    case T_ADDR:
        return str_same(AT(a, d->off, char *), AT(b, d->off, char *)) &&
               AT(a, d->off2, uint16_t) == AT(b, d->off2, uint16_t);
    case T_LISTEN: {
        size_t n = AT(a, d->off2, size_t);
        const struct gw_listen *x = AT(a, d->off, struct gw_listen *);
        const struct gw_listen *y = AT(b, d->off, struct gw_listen *);
        if (n != AT(b, d->off2, size_t))
            return false;
        for (size_t i = 0; i < n; i++)
            if (x[i].port != y[i].port || !str_same(x[i].host, y[i].host))
                return false;
        return true;
    }
    case T_LIST: {
        size_t n = AT(a, d->off2, size_t);
        char *const *x = *(char **const *)(const void *)(a + d->off);
        char *const *y = *(char **const *)(const void *)(b + d->off);
        if (n != AT(b, d->off2, size_t))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!str_same(x[i], y[i]))
                return false;
        return true;
    }
    }
#undef AT
    return false;
}

static void swap_bytes(char *a, char *b, size_t off, size_t size)
{
    char tmp[sizeof(uint64_t)];
    memcpy(tmp, a + off, size);
    memcpy(a + off, b + off, size);
    memcpy(b + off, tmp, size);
}

/* Exchange d's value between a and b (ownership of strings and arrays
 * goes with it). */
static void value_swap(const struct directive *d, char *a, char *b)
{
    switch (d->type) {
    case T_DURATION: case T_SIZE: case T_UINT:
        swap_bytes(a, b, d->off, sizeof(uint64_t));
        break;
    case T_BOOL:
        swap_bytes(a, b, d->off, sizeof(bool));
        break;
    case T_ENUM:
        swap_bytes(a, b, d->off, sizeof(int));
        break;
    case T_STRING: case T_FILE: case T_DIR: case T_URL:
        swap_bytes(a, b, d->off, sizeof(char *));
        break;
    case T_ADDR:
        swap_bytes(a, b, d->off, sizeof(char *));
        swap_bytes(a, b, d->off2, sizeof(uint16_t));
        break;
    case T_LISTEN: case T_LIST:
        swap_bytes(a, b, d->off, sizeof(void *));
        swap_bytes(a, b, d->off2, sizeof(size_t));
        break;
    }
}

size_t gw_config_keep_restart_keys(struct gw_config *next,
                                   struct gw_config *running,
                                   struct gw_diag *notes)
{
    size_t n = 0;
    for (int s = 0; s < N_GLOBAL; s++) {
        const struct section *sec = &gw_config_sections[s];
        for (size_t i = 0; i < sec->n; i++) {
            const struct directive *d = &sec->keys[i];
            if (!(d->flags & D_RESTART) ||
                value_equal(d, (const char *)next, (const char *)running))
                continue;
            value_swap(d, (char *)next, (char *)running);
            n++;
            if (notes)
                diag_add(notes, "%s: [%s] %s changed: it needs a restart; the "
                         "running value stays", next->file, sec->name, d->key);
        }
    }
    set_first_listener(next);
    set_first_listener(running);
    return n;
}

bool gw_route_equal(const struct gw_route *a, const struct gw_route *b)
{
    if (!str_same(a->name, b->name))
        return false;
    for (size_t i = 0; i < ARRAY_LEN(route_keys); i++)
        if (!value_equal(&route_keys[i], (const char *)a, (const char *)b))
            return false;
    return true;
}

const struct gw_route *gw_config_route(const struct gw_config *cfg,
                                       const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i].name, name) == 0)
            return &cfg->routes[i];
    return NULL;
}

struct gw_config *gw_config_ref(const struct gw_config *cfg)
{
    /* the count is not part of the value: cfg was allocated non-const */
    struct gw_config *c = (struct gw_config *)cfg;
    if (c)
        c->refs++;
    return c;
}

static void config_destroy(struct gw_config *cfg)
{
    for (int s = 0; s < N_GLOBAL; s++)
        for (size_t i = 0; i < gw_config_sections[s].n; i++)
            if (types[gw_config_sections[s].keys[i].type].clear)
                types[gw_config_sections[s].keys[i].type].clear(&gw_config_sections[s].keys[i],
                                                      (char *)cfg);
    for (size_t r = 0; r < cfg->n_routes; r++) {
        for (size_t i = 0; i < ARRAY_LEN(route_keys); i++)
            if (types[route_keys[i].type].clear)
                types[route_keys[i].type].clear(&route_keys[i],
                                                (char *)&cfg->routes[r]);
        free(cfg->routes[r].name);
    }
    free(cfg->routes);
    free(cfg->file);
    free(cfg);
}

void gw_config_unref(const struct gw_config *cfg)
{
    struct gw_config *c = (struct gw_config *)cfg;
    if (c && --c->refs == 0)
        config_destroy(c);
}

void gw_config_free(struct gw_config *cfg)
{
    gw_config_unref(cfg);
}

static struct gw_config *run(struct parser *p)
{
    p->sec = S_NONE;
    p->cfg = calloc(1, sizeof *p->cfg);
    if (p->cfg)
        p->cfg->refs = 1;
    if (!p->cfg || !(p->cfg->file = strdup(p->name))) {
        report(p, 0, NULL, NULL, "out of memory");
        flush_errors(p);
        gw_config_free(p->cfg);
        return NULL;
    }
    for (int s = 0; s < N_GLOBAL; s++)
        apply_defaults(p, s, 0);
    const char *line;
    size_t len;
    while (next_line(p, &line, &len)) {
        p->lineno++;
        read_line(p, line, len);
    }
    if (p->f && ferror(p->f))
        report(p, 0, NULL, NULL, "cannot read: %s", strerror(errno));
    if (!(p->f && ferror(p->f)))
        finish(p);
    flush_errors(p);
    free(p->route_seen);
    free(p->line);
    if (p->n_errors) {
        gw_config_free(p->cfg);
        return NULL;
    }
    return p->cfg;
}

struct gw_config *gw_config_parse_string(const char *text, const char *name,
                                         struct gw_diag *diag)
{
    struct parser p = { .diag = diag, .name = name ? name : "<string>",
                        .s = text ? text : "" };
    return run(&p);
}

struct gw_config *gw_config_load(const char *path, struct gw_diag *diag)
{
    struct parser p = { .diag = diag, .name = path ? path : "(null)" };
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f) {
        report(&p, 0, NULL, NULL, "cannot open: %s", strerror(path ? errno : EINVAL));
        flush_errors(&p);
        return NULL;
    }
    const char *slash = strrchr(path, '/');
    if (slash && !(p.base_dir = xstrndup(path, slash == path ? 1 : (size_t)(slash - path)))) {
        fclose(f);
        report(&p, 0, NULL, NULL, "out of memory");
        flush_errors(&p);
        return NULL;
    }
    p.f = f;
    struct gw_config *cfg = run(&p);
    fclose(f);
    free(p.base_dir);
    return cfg;
}

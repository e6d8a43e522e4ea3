/*
 * gw_log.h - leveled logging to stderr (or error_log): "2026-11-25T20:43:34.123Z warn msg".
 * One process-wide level; messages below it cost one comparison.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_ERROR = 0, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };

extern int gw_log_level;

/* Parse "error|warn|info|debug"; returns level or -1. */
int gw_log_level_parse(const char *s);
const char *gw_log_level_name(int level);

/* [gateway] error_log: path (NULL, "stderr": keep stderr) becomes fd 2.
 * 0, or -1 (logged). */
int gw_log_open(const char *path);
/* SIGUSR1: reopen the error_log file (logrotate); no-op for stderr. */
void gw_log_reopen(void);
void gw_log_close(void);

void gw_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A session id is a bearer secret: log lines carry only its first
 * characters, enough to correlate, not to take over the session: 8 of a
 * native id (22), at most half of a short client-chosen (SockJS) one.
 * Use as "%.*s", GW_LOG_ID(id, strlen(id)). */
#define GW_LOG_ID_LEN(n) ((n) >= 16 ? 8 : (n) / 2)
#define GW_LOG_ID(id, n) (int)GW_LOG_ID_LEN(n), (id)

#define gw_log(level, ...) \
    do { if ((level) <= gw_log_level) gw_log_write((level), __VA_ARGS__); } while (0)
#define log_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) gw_log(GW_LOG_WARN, __VA_ARGS__)
#define log_info(...) gw_log(GW_LOG_INFO, __VA_ARGS__)
#define log_debug(...) gw_log(GW_LOG_DEBUG, __VA_ARGS__)

#endif

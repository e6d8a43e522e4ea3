/* gw_log.c - leveled logging to stderr with UTC timestamps. */
#include "gw_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int gw_log_level = GW_LOG_INFO;

static char *log_path; /* error_log file, or NULL: stderr as inherited */

/* The file becomes fd 2, so everything written to stderr (ours and
 * libraries') lands in it, and a reopen is one dup2. */
static int open_onto_stderr(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    int rc = dup2(fd, 2);
    close(fd);
    return rc < 0 ? -1 : 0;
}

int gw_log_open(const char *path)
{
    if (!path || !strcmp(path, "stderr") || !strcmp(path, "off"))
        return 0;
    if (open_onto_stderr(path) < 0) {
        log_error("error_log %s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    free(log_path);
    log_path = strdup(path);
    return 0;
}

void gw_log_reopen(void)
{
    if (!log_path)
        return;
    if (open_onto_stderr(log_path) < 0)
        log_error("SIGUSR1: error_log %s: cannot reopen: %s; keeping the old "
                  "file", log_path, strerror(errno));
    else
        log_info("SIGUSR1: error log %s reopened", log_path);
}

void gw_log_close(void)
{
    free(log_path);
    log_path = NULL;
}

static const char *const names[] = { "error", "warn", "info", "debug" };

int gw_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcasecmp(s, names[i]) == 0)
            return i;
    return -1;
}

const char *gw_log_level_name(int level)
{
    return level >= 0 && level < 4 ? names[level] : "?";
}

void gw_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s ",
                  ts.tv_nsec / 1000000L, gw_log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

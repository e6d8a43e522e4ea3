/*
 * gw_config_table.h - internal to gw_config.c and gw_config_doc.c: the
 * declarative tables of sections and keys (defined in gw_config.c, next to
 * the parsers and checks they name) that both the parser and the
 * documentation generator read.
 */
#ifndef GW_CONFIG_TABLE_H
#define GW_CONFIG_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define MAX_LINE 198 /* "key = value" without its comment; see gw_config.c */

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum dtype {
    T_DURATION, /* uint64_t ms: 500ms, 25s, 5m, 1h; bare 0 */
    T_SIZE,     /* uint64_t bytes: 512, 512B, 64KiB, 1MiB, 1GiB */
    T_UINT,     /* uint64_t */
    T_BOOL,     /* bool: on/off yes/no true/false 1/0 */
    T_ENUM,     /* an enum field (int-sized): index into values[] */
    T_STRING,   /* char *, NULL when empty */
    T_FILE,     /* char *, NULL when empty; relative to the config's dir */
    T_DIR,      /* same, a directory */
    T_LISTEN,   /* struct gw_listen *items at off, size_t count at off2 */
    T_ADDR,     /* one HOST:PORT: char *host at off, uint16_t port at off2 */
    T_LIST,     /* char **items at off, size_t count at off2; "a, b, c" */
    T_URL,      /* char *, a ws:// or wss:// URL */
};

#define D_ZERO_OK 1u /* 0 ("off", "unlimited") is allowed besides [min, max] */
/* Read once at start: a reload (SIGHUP) keeps the running value and warns
 * (gw_config_keep_restart_keys); the documentation says so. */
#define D_RESTART 2u

/* Extra validation of a string or list item; may normalise it in place
 * (never lengthen). Returns 0, or GW_EINVAL / GW_ENOMEM with why filled. */
typedef int (*check_fn)(char *s, char *why, size_t n);

struct directive {
    const char *key;
    enum dtype type;
    size_t off;                 /* field in struct gw_config / gw_route */
    size_t off2;                /* T_LISTEN, T_LIST: count; T_ADDR: port */
    const char *def;            /* default, parsed like the file; NULL: required */
    uint64_t min, max;          /* ms, bytes, count or port */
    unsigned flags;             /* D_ZERO_OK, D_RESTART */
    const char *const *values;  /* T_ENUM names, NULL-terminated */
    check_fn check;
    const char *help;           /* documentation (gw_config_doc): plain prose */
    const char *example;        /* value in the sample file, if not def */
    const char *what;           /* documented type, if not the type's name */
};

struct section {
    const char *name;
    const struct directive *keys;
    size_t n;
    const char *help;
};

enum section_id { S_NONE = -1, S_GATEWAY, S_SESSION, S_UPSTREAM, S_ADMIN, S_ROUTE,
                  S_COUNT };
#define N_GLOBAL S_ROUTE

/* Every section's table, indexed by enum section_id. */
extern const struct section gw_config_sections[S_COUNT];

/* v as the file would write it: 90s -> "90s", 2 MiB -> "2MiB". */
void gw_config_fmt_number(enum dtype t, uint64_t v, char *out, size_t n);

#endif

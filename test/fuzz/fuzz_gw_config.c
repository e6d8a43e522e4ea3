/*
 * fuzz_gw_config.c - libFuzzer target over gw_config_parse_string.
 * The input is copied to a NUL-terminated string (text after an embedded
 * NUL is simply not seen). Every result and message is freed, so leaks
 * show up under -fsanitize=fuzzer,address. A loaded config must satisfy
 * the invariants the rest of pollgate relies on.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude \
 *       gateway/gw_common.c gateway/gw_log.c gateway/ws_handshake.c \
 *       gateway/gw_config.c test/fuzz/fuzz_gw_config.c \
 *       -lhttp_parser -lcrypto -o fuzz_gw_config
 *   ./fuzz_gw_config -max_len=4096 corpus/ conf/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct gw_config *c, const struct gw_diag *d)
{
    if (d->n != 0 || c->n_routes == 0 || !c->listen_host || c->listen_port == 0)
        abort();
    for (size_t i = 0; i < c->n_routes; i++) {
        const struct gw_route *r = &c->routes[i];
        size_t len = strlen(r->path);
        if (!r->name || r->path[0] != '/' || (len > 1 && r->path[len - 1] == '/') ||
            strncmp(r->upstream, "ws", 2) != 0 || (r->origins_any && r->n_origins))
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->routes[j].path, r->path) == 0 ||
                strcmp(c->routes[j].name, r->name) == 0)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct gw_diag d = { 0 };
    struct gw_config *c = gw_config_parse_string(text, "fuzz", &d);
    if (c)
        check(c, &d);
    else if (d.n == 0)
        abort(); /* a rejected config always says why */
    for (size_t i = 0; i < d.n; i++)
        if (strncmp(d.msgs[i], "fuzz:", 5) != 0)
            abort();
    gw_config_free(c);
    gw_diag_free(&d);
    free(text);
    return 0;
}

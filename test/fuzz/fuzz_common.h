/* fuzz_common.h - what every fuzz target shares: an invariant check that
 * aborts (so libFuzzer records the input) with the failed condition. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                         \
    do {                                                                 \
        if (!(c)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,       \
                    __LINE__, #c);                                       \
            abort();                                                     \
        }                                                                \
    } while (0)

#endif

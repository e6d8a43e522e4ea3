/*
 * ws_utf8.c - incremental UTF-8 validator for WebSocket text (RFC 3629).
 *
 * A table-driven DFA: every byte maps to one of 12 classes, and the state
 * (what the rest of the current sequence must look like) advances through
 * a 9 x 16 transition table. The awkward second bytes (E0, ED, F0, F4
 * leads) get their own states, which is how overlongs, surrogates and code
 * points above U+10FFFF are refused without decoding anything.
 *
 * State WS_UTF8_ACCEPT (0) means "between sequences"; WS_UTF8_REJECT (1) is
 * sticky. Any other state is "inside a sequence", which is fine between two
 * pieces of a message and invalid at its end.
 *
 * Runs of ASCII, the bulk of real text, are skipped eight bytes at a time.
 */
#include "ws_utf8.h"

#include <string.h>

/* Byte classes. */
enum {
    C_ASC = 0,  /* 00..7F */
    C_C8 = 1,   /* 80..8F continuation */
    C_C9 = 2,   /* 90..9F continuation */
    C_CA = 3,   /* A0..BF continuation */
    C_BAD = 4,  /* C0, C1 (always overlong), F5..FF (beyond U+10FFFF) */
    C_L2 = 5,   /* C2..DF: two-byte lead */
    C_E0 = 6,   /* E0: three-byte lead, next A0..BF (else overlong) */
    C_L3 = 7,   /* E1..EC, EE, EF: three-byte lead */
    C_ED = 8,   /* ED: three-byte lead, next 80..9F (else surrogate) */
    C_F0 = 9,   /* F0: four-byte lead, next 90..BF (else overlong) */
    C_L4 = 10,  /* F1..F3: four-byte lead */
    C_F4 = 11,  /* F4: four-byte lead, next 80..8F (else > U+10FFFF) */
};

/* States; ACCEPT and REJECT are fixed by the header. */
enum {
    S_OK = WS_UTF8_ACCEPT,
    S_NO = WS_UTF8_REJECT,
    S_1 = 2,    /* one more continuation byte, any */
    S_2 = 3,    /* two more, any */
    S_E0 = 4,   /* after E0: A0..BF, then one more */
    S_ED = 5,   /* after ED: 80..9F, then one more */
    S_3 = 6,    /* three more, any */
    S_F0 = 7,   /* after F0: 90..BF, then two more */
    S_F4 = 8,   /* after F4: 80..8F, then two more */
};

static const uint8_t utf8_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F, 90..9F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0..EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0..FF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/*
 * next state = utf8_trans[state * 16 + class]. Rows are padded to 16 so
 * the index is a shift; the four padding columns are never reached.
 */
#define R S_NO
static const uint8_t utf8_trans[9 * 16] = {
    /*        ASC   C8    C9    CA    BAD L2   E0    L3   ED    F0    L4   F4 */
    /* OK */  S_OK, R,    R,    R,    R, S_1, S_E0, S_2, S_ED, S_F0, S_3, S_F4,
              R, R, R, R,
    /* NO */  R,    R,    R,    R,    R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
    /* 1 */   R,    S_OK, S_OK, S_OK, R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
    /* 2 */   R,    S_1,  S_1,  S_1,  R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
    /* E0 */  R,    R,    R,    S_1,  R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
    /* ED */  R,    S_1,  S_1,  R,    R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
    /* 3 */   R,    S_2,  S_2,  S_2,  R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
    /* F0 */  R,    R,    S_2,  S_2,  R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
    /* F4 */  R,    S_2,  R,    R,    R, R,   R,    R,   R,    R,    R,   R,
              R, R, R, R,
};
#undef R

#define ASCII_MASK8 UINT64_C(0x8080808080808080)

/* Index of the first non-ASCII byte in p[0..len), or len. */
static size_t skip_ascii(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, p + i, 8); /* alignment-safe; one load on x86/arm64 */
        if (w & ASCII_MASK8)
            break;
        i += 8;
    }
    while (i < len && p[i] < 0x80)
        i++;
    return i;
}

uint32_t ws_utf8_step(uint32_t state, const uint8_t *data, size_t len)
{
    if (state > S_F4)
        return S_NO; /* not a state we handed out */
    size_t i = 0;
    while (i < len) {
        if (state == S_OK) {
            i += skip_ascii(data + i, len - i);
            if (i == len)
                break;
        }
        state = utf8_trans[state * 16 + utf8_class[data[i]]];
        if (state == S_NO)
            return S_NO; /* fail fast: the rest cannot repair it */
        i++;
    }
    return state;
}

bool ws_utf8_valid(const uint8_t *data, size_t len)
{
    return ws_utf8_step(WS_UTF8_ACCEPT, data, len) == WS_UTF8_ACCEPT;
}

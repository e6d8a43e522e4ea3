/*
 * ws_utf8.h - incremental UTF-8 validation (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) for WebSocket text, close reasons and
 * anything else that must be valid UTF-8. Pure; see ws_utf8.c for the DFA.
 */
#ifndef WS_UTF8_H
#define WS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* States: start with WS_UTF8_ACCEPT; any state other than these two is
 * "inside a sequence" (fine between two pieces, invalid at the end). */
#define WS_UTF8_ACCEPT 0
#define WS_UTF8_REJECT 1
/* Advance over data; returns the new state (WS_UTF8_REJECT is sticky). */
uint32_t ws_utf8_step(uint32_t state, const uint8_t *data, size_t len);
/* Whole-buffer check. */
bool ws_utf8_valid(const uint8_t *data, size_t len);

#endif

/*
 * bench_framing.c - micro-benchmark of the JSON string escaper (not a
 * test). Escapes 100-byte chat messages (mostly ASCII, JSON payloads with
 * quotes, the odd non-ASCII character) ITERS times per flavour into one
 * reused gw_buf, as the transports do, and prints CPU ns/message and
 * MB/s of input per CPU-second. Poll and SSE message framing and jansson's own string encoder
 * (json_dumps, which allocates) are measured too, for scale, and so are
 * 100-byte messages with nothing to escape against a plain copy.
 *
 * Built by `make bench` (EXTRA_PROGRAMS), which runs it after the load
 * scenarios; by hand: `make test/bench/bench_framing` in a build directory.
 * Run:   ./bench_framing [iterations]   (default 10000000)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "framing.h"
#include "framing_native.h"

#define NMSG 64
#define MSGLEN 100

static uint8_t msgs[NMSG][MSGLEN];
static uint8_t plain[NMSG][MSGLEN]; /* the text fields alone: no escapes */

static const char *users[] = {"alice", "bob", "carol", "dave", "erin",
                              "frank", "grace", "heidi"};
static const char *texts[] = {
    "Hey, are we still on for lunch today? I'll be there at noon, ok?",
    "LOL that \"meeting\" was way too long. Next time bring coffee!!",
    "see https://example.com/docs/page?id=42 for the details",
    "Caf\xc3\xa9 at 5? \xf0\x9f\x98\x80 I can't wait to tell you about it",
    "Can you send me the file again? The link expired yesterday.",
    "ok",
    "Did you see the game last night? Unbelievable ending, 3-2!",
    "Reminder: standup moved to 9:30 tomorrow, same room as usual.",
};

/* {"type":"chat","user":"alice","text":"...","ts":1700000000} cut or
 * padded with spaces to exactly 100 bytes (cut at an ASCII byte so the
 * message stays valid UTF-8). */
static void make_messages(void)
{
    for (int i = 0; i < NMSG; i++) {
        char tmp[512];
        int n = snprintf(tmp, sizeof tmp,
                         "{\"type\":\"chat\",\"user\":\"%s\",\"text\":\"%s\","
                         "\"ts\":%d}", users[i % 8], texts[(i / 8) % 8],
                         1700000000 + i);
        while (n < MSGLEN)
            tmp[n++] = ' ';
        int cut = MSGLEN;
        while ((unsigned char)tmp[cut - 1] >= 0x80)
            tmp[--cut] = ' ';
        memcpy(msgs[i], tmp, MSGLEN);
        n = snprintf(tmp, sizeof tmp, "%s: %s", users[i % 8],
                     texts[(i / 8 + 1) % 8]);
        while (n < MSGLEN)
            tmp[n++] = ' ';
        for (int k = 0; k < MSGLEN; k++) /* no quotes, no '<' */
            if (tmp[k] == '"' || tmp[k] == '<')
                tmp[k] = '\'';
        memcpy(plain[i], tmp, MSGLEN);
    }
}

/* CPU time of this thread: the machines are shared, and CPU time is what
 * the gateway's budget is counted in. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum what { ESC_STD, ESC_SOCKJS, POLL_MSG, SSE_MSG, JANSSON, PLAIN_STD,
             PLAIN_SOCKJS, MEMCPY };

static const char *names[] = {"escape std", "escape sockjs",
                              "poll message", "sse message",
                              "jansson json_dumps", "plain escape std",
                              "plain escape sockjs", "plain gw_buf_append"};

static void run(enum what w, long iters)
{
    struct gw_buf out = {0};
    size_t total = 0;
    double t0 = now();
    for (long i = 0; i < iters; i++) {
        const uint8_t *m = w >= PLAIN_STD ? plain[i & (NMSG - 1)]
                                          : msgs[i & (NMSG - 1)];
        int rc = 0;
        gw_buf_reset(&out);
        switch (w) {
        case ESC_STD:
            rc = framing_json_string(&out, m, MSGLEN, FRAMING_JSON_STD);
            break;
        case ESC_SOCKJS:
            rc = framing_json_string(&out, m, MSGLEN, FRAMING_JSON_SOCKJS);
            break;
        case POLL_MSG:
            rc = framing_native_poll_message(&out, (uint64_t)i, false, m, MSGLEN);
            break;
        case SSE_MSG:
            rc = framing_native_sse_message(&out, (uint64_t)i, false, m, MSGLEN);
            break;
        case PLAIN_STD:
            rc = framing_json_string(&out, m, MSGLEN, FRAMING_JSON_STD);
            break;
        case PLAIN_SOCKJS:
            rc = framing_json_string(&out, m, MSGLEN, FRAMING_JSON_SOCKJS);
            break;
        case MEMCPY: /* the floor: copying the bytes */
            rc = gw_buf_append(&out, m, MSGLEN);
            break;
        case JANSSON: {
            json_t *s = json_stringn((const char *)m, MSGLEN);
            char *d = json_dumps(s, JSON_ENCODE_ANY);
            out.len = strlen(d);
            free(d);
            json_decref(s);
            break;
        }
        }
        if (rc) {
            fprintf(stderr, "error %d\n", rc);
            exit(1);
        }
        total += out.len;
    }
    double dt = now() - t0;
    printf("%-20s %8.1f ns/msg  %8.1f MB/s in  %6.1f Mmsg/s  (avg out %zu B)\n",
           names[w], dt * 1e9 / (double)iters,
           (double)iters * MSGLEN / dt / 1e6, (double)iters / dt / 1e6,
           total / (size_t)iters);
    gw_buf_free(&out);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 10000000L;
    if (iters <= 0)
        iters = 10000000L;
    make_messages();
    printf("%ld messages of %d bytes, e.g. %.*s\n", iters, MSGLEN, MSGLEN,
           (const char *)msgs[9]);
    run(ESC_STD, iters);
    run(ESC_SOCKJS, iters);
    run(POLL_MSG, iters);
    run(SSE_MSG, iters);
    run(JANSSON, iters / 10);
    printf("same, messages with nothing to escape, e.g. %.*s\n", MSGLEN,
           (const char *)plain[9]);
    run(PLAIN_STD, iters);
    run(PLAIN_SOCKJS, iters);
    run(MEMCPY, iters);
    return 0;
}

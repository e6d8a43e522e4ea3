/*
 * gw_proxy.h - [gateway] trusted_proxies: which peers may say who the
 * client is (X-Forwarded-For), and the client address derived from it.
 *
 * The set is process-wide (like the log level): it is read by
 * http_client_addr() for every request, and set once at start from the
 * configuration (gw_proxy_set). Pure: no I/O.
 */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <stdbool.h>
#include <stddef.h>

/* "10.0.0.0/8", "::1", "192.168.1.7/32": 0 if s is an address or a CIDR
 * network; else GW_EINVAL with why filled. */
int gw_cidr_check(const char *s, char *why, size_t n);

/* Replace the trusted set with cidrs (n entries, each valid per
 * gw_cidr_check; invalid ones are skipped). Returns 0 or GW_ENOMEM (the
 * set is then empty). n = 0: trust no one. */
int gw_proxy_set(char *const *cidrs, size_t n);

/* Is the textual address addr inside the trusted set? */
bool gw_proxy_trusted(const char *addr);

/*
 * The client address of a request from peer (text) carrying the
 * X-Forwarded-For values xff[0..n_xff) (in header order; each may hold a
 * comma-separated list): peer itself unless it is trusted; then, reading
 * the list from the right, the first entry that is not trusted (an entry
 * that is no IP address ends the walk at the hop to its right). Written
 * in canonical text form into out (out_cap >= 46).
 */
void gw_proxy_client(const char *peer, const char *const *xff, size_t n_xff,
                     char *out, size_t out_cap);

#endif

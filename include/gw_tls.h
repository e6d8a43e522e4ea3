/*
 * gw_tls.h - TLS toward browsers ([gateway] tls_listen): the server
 * SSL_CTX and the certificate/key check behind `pollgate -t`.
 *
 * Ownership: the server context is reference counted by OpenSSL. Every
 * accepted connection's SSL takes a reference to the context it was made
 * from, so replacing the context on SIGHUP (gw_tls_server_ctx_new, then
 * SSL_CTX_free of the old one) leaves open connections on the old
 * certificate until they end.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "gw_common.h"

/* New server context for cert_file (PEM, may hold the chain) and key_file:
 * TLS 1.2 minimum, the server's cipher preference, a session cache and
 * session tickets (resumption). NULL with err filled on failure. */
SSL_CTX *gw_tls_server_ctx_new(const char *cert_file, const char *key_file,
                               struct gw_error *err);

/* 0 when cert_file and key_file load and match; else GW_EINVAL with why
 * filled and *key_bad telling whether the key (rather than the
 * certificate) is at fault. */
int gw_tls_check_pair(const char *cert_file, const char *key_file,
                      bool *key_bad, char *why, size_t n);

#endif

/*
 * gw_tls.c - TLS toward browsers: the server context of tls_listen.
 * See gw_tls.h for the ownership of contexts across a certificate reload.
 */
#include "gw_tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* "what FILE: openssl reason" into why; clears OpenSSL's error queue. */
static void ssl_why(char *why, size_t n, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char reason[256] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    snprintf(why, n, "%s %s%s%s", what, file, *reason ? ": " : "", reason);
}

/* Load cert_file and key_file into ctx. 0, or GW_EINVAL with why. */
static int load_pair(SSL_CTX *ctx, const char *cert_file, const char *key_file,
                     bool *key_bad, char *why, size_t n)
{
    *key_bad = false;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_why(why, n, "cannot load certificate", cert_file);
        return GW_EINVAL;
    }
    *key_bad = true;
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) ==
                        X509_R_KEY_VALUES_MISMATCH;
        ssl_why(why, n, mismatch ? "private key does not match the "
                "certificate: key" : "cannot load private key", key_file);
        return GW_EINVAL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_why(why, n, "private key does not match the certificate in", cert_file);
        return GW_EINVAL;
    }
    *key_bad = false;
    return 0;
}

SSL_CTX *gw_tls_server_ctx_new(const char *cert_file, const char *key_file,
                               struct gw_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[512];
    bool key_bad;
    if (!ctx) {
        gw_error_set(err, GW_ENOMEM, "cannot create a TLS server context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Browsers often close without close_notify; HTTP framing already
     * tells a complete response from a cut one. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    /* Idle keep-alive connections and held polls give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption: a server-side cache (IDs) and tickets (OpenSSL's default,
     * keys made per context). The cache is bounded. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    static const unsigned char sid_ctx[] = "pollgate";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    if (load_pair(ctx, cert_file, key_file, &key_bad, why, sizeof why) < 0) {
        gw_error_set(err, GW_EINVAL, "%s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int gw_tls_check_pair(const char *cert_file, const char *key_file,
                      bool *key_bad, char *why, size_t n)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    *key_bad = false;
    if (!ctx) {
        snprintf(why, n, "cannot create a TLS context");
        return GW_ENOMEM;
    }
    int rc = load_pair(ctx, cert_file, key_file, key_bad, why, n);
    SSL_CTX_free(ctx);
    return rc;
}

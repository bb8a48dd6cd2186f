/*
 * Test helper: certificates made in memory with the OpenSSL API, for the
 * TLS unit tests (nothing secret is committed). Only for tests.
 */
#ifndef GW_TEST_X509_H
#define GW_TEST_X509_H

#include <stdbool.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Adds the extension nid = value (OpenSSL config syntax, as in
 * "critical,CA:TRUE") to cert, issued by issuer. false when OpenSSL refused. */
static inline bool gw_test_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	bool ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	ok = ext && X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

#endif

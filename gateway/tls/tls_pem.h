/*
 * PEM files to OpenSSL objects, with a one-line reason when they are not
 * what the configuration says they are.
 *
 * Every file is read whole into memory first, by one function that accepts
 * only a non-empty regular file of at most GW_TLS_FILE_MAX bytes, opened
 * without blocking: a path naming a FIFO, a device (/dev/zero,
 * /dev/stdin, /dev/watchdog), a directory, a /proc file or a huge file is
 * refused before it is even opened, so a configuration (or the config
 * fuzzer) can never make the loader hang, swallow memory or set off a
 * device. OpenSSL then parses the bytes from a memory BIO, never from the
 * path, and never prompts for a passphrase: an encrypted key is an error,
 * not a question on the terminal.
 *
 * Reasons name the file and say what is wrong in plain words, with
 * OpenSSL's own reason where it has one: "cannot open conf/tls/key.pem: No
 * such file or directory", "conf/tls/cert.pem holds no PEM certificate",
 * "conf/tls/cert.pem: bad PEM certificate (bad base64 decode)".
 *
 * Ownership: every object returned is the caller's (X509_free,
 * EVP_PKEY_free, sk_X509_pop_free(chain, X509_free)); nothing is returned
 * on failure.
 */
#ifndef GW_TLS_TLS_PEM_H
#define GW_TLS_TLS_PEM_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls_report.h"

/* Largest file read: far above any certificate chain or CA bundle. */
#define GW_TLS_FILE_MAX (4u * 1024 * 1024)
/* A reason buffer that holds any message below with a long path. */
#define GW_TLS_WHY_MAX 512

/*
 * The certificate chain of path: the first certificate (*leaf) and those
 * after it (*chain, possibly empty), as SSL_CTX_use_certificate_chain_file
 * reads them. Other PEM blocks (a private key in the same file) are
 * skipped. 0, or -1 with why set.
 */
int gw_tls_pem_read_chain(const char *path, X509 **leaf, STACK_OF(X509) * *chain, char *why,
                          size_t size);

/* The private key of path (PKCS#8, RSA or EC PEM). 0, or -1 with why set. */
int gw_tls_pem_read_key(const char *path, EVP_PKEY **key, char *why, size_t size);

/* Every certificate of a CA bundle (at least one). 0, or -1 with why set. */
int gw_tls_pem_read_certs(const char *path, STACK_OF(X509) * *certs, char *why, size_t size);

/*
 * Whether key belongs to the certificate: 0, or -1 with why naming both
 * files ("conf/k.pem does not match the certificate of conf/c.pem (key
 * values mismatch)").
 */
int gw_tls_key_matches(X509 *cert, EVP_PKEY *key, const char *cert_path, const char *key_path,
                       char *why, size_t size);

/*
 * 0 when the certificate is valid now; 1 with a warning in why when it
 * has expired or is not valid yet ("conf/c.pem: the certificate expired on
 * 2020-01-02 00:00:00 UTC ...").
 */
int gw_tls_cert_check_dates(const X509 *cert, const char *path, char *why, size_t size);

/*
 * Computes now, on this thread, what OpenSSL caches in an X509 the first
 * time a handshake looks at it (its extensions: key identifiers, usage,
 * CA flag), for the certificate, the chain or every certificate of a
 * store. OpenSSL 3.0 fills that cache lazily under a lock that does not
 * stop a second thread from filling it again while a first one reads it
 * (openssl/openssl#32609: ThreadSanitizer reports it in X509_check_akid
 * when worker threads verify against a shared store). Filled at config
 * load, before any worker sees the certificates, it is never written
 * again.
 */
void gw_tls_cache_cert(X509 *cert);
void gw_tls_cache_certs(STACK_OF(X509) * certs);
void gw_tls_cache_store(X509_STORE *store);

/*
 * OpenSSL's reason for the oldest error left in this thread's queue, in
 * its own words ("key values mismatch", "ee key too small"), or fallback
 * when the queue is empty. Empties the queue. Returns buf.
 */
const char *gw_tls_openssl_reason(const char *fallback, char *buf, size_t size);

/*
 * Loads the certificate chain of cert_path and the key of key_path into
 * ctx: both PEM, acceptable to OpenSSL's security level, the key matching
 * the certificate; dates checked (a warning). Both files are read and
 * reported on even when the first fails, so one run names every broken
 * file. Problems go to r with key GW_TLS_KEY_CERT / GW_TLS_KEY_KEY and
 * cert = index. Returns the leaf certificate (a new reference, the
 * caller's: X509_free) for further checks, or NULL when ctx did not get
 * both.
 */
X509 *gw_tls_use_cert_and_key(SSL_CTX *ctx, const char *cert_path, const char *key_path,
                              size_t index, const struct gw_tls_report *r);

#endif

/*
 * PEM files to OpenSSL objects (tls_pem.h).
 */
#include "tls_pem.h"
#include "../util/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/*
 * A file's bytes, NUL-terminated (the NUL is not counted in len). Private
 * keys pass through here: the buffer is wiped before it is freed.
 */
struct file_bytes {
	char *data;
	size_t len;
};

static void file_bytes_free(struct file_bytes *f)
{
	if (f->data) {
		OPENSSL_cleanse(f->data, f->len);
		free(f->data);
	}
	f->data = NULL;
	f->len = 0;
}

/* Why st is no file to read a PEM from, or NULL when it is one. */
static const char *not_a_pem_file(const struct stat *st)
{
	if (S_ISDIR(st->st_mode))
		return "a directory, not a file";
	if (!S_ISREG(st->st_mode))
		return "a device, FIFO or socket, not a file";
	if (st->st_size == 0)
		return "empty";
	if ((unsigned long long)st->st_size > GW_TLS_FILE_MAX)
		return "too large for a PEM file";
	return NULL;
}

/*
 * Reads path whole, refusing before it is even opened what is not a
 * regular file of a sane size: opening some devices has effects of its
 * own (/dev/watchdog arms a watchdog), a FIFO would block, /dev/zero never
 * ends. Files of size 0 are refused unread too: that is how /proc and
 * /sys files show, and reading some of those consumes what they hold
 * (/proc/kmsg). The open itself does not block (O_NONBLOCK) and is checked
 * again with fstat, in case the path changed in between; the size is
 * checked once more while reading, in case the file grows.
 */
static int read_file(const char *path, struct file_bytes *out, char *why, size_t size)
{
	struct stat st;
	const char *refused;
	size_t cap, len = 0;
	char *buf;
	int fd;

	out->data = NULL;
	out->len = 0;
	if (stat(path, &st) < 0) {
		snprintf(why, size, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if ((refused = not_a_pem_file(&st)) != NULL) {
		if (S_ISREG(st.st_mode) && st.st_size > 0)
			snprintf(why, size, "%s is %s (%lld bytes, at most %u)", path, refused,
			         (long long)st.st_size, GW_TLS_FILE_MAX);
		else
			snprintf(why, size, "%s is %s", path, refused);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, size, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (refused = not_a_pem_file(&st)) != NULL) {
		snprintf(why, size, "%s is %s", path, refused ? refused : "unreadable");
		close(fd);
		return -1;
	}
	cap = (size_t)st.st_size + 1;
	buf = gw_malloc(cap + 1);
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, size, "cannot read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0) {
			close(fd);
			buf[len] = '\0';
			out->data = buf;
			out->len = len;
			if (len > 0)
				return 0;
			snprintf(why, size, "%s is empty", path);
			file_bytes_free(out);
			return -1;
		}
		len += (size_t)n;
		if (len == cap) {
			if (cap > GW_TLS_FILE_MAX) {
				snprintf(why, size, "%s is too large for a PEM file", path);
				break;
			}
			cap = cap * 2 > GW_TLS_FILE_MAX + 1 ? GW_TLS_FILE_MAX + 1 : cap * 2;
			buf = gw_realloc(buf, cap + 1);
		}
	}
	close(fd);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return -1;
}

const char *gw_tls_openssl_reason(const char *fallback, char *buf, size_t size)
{
	unsigned long err = ERR_peek_error();
	const char *reason = err ? ERR_reason_error_string(err) : NULL;

	if (reason)
		snprintf(buf, size, "%s", reason);
	else if (err)
		snprintf(buf, size, "OpenSSL error %lx", err);
	else
		snprintf(buf, size, "%s", fallback);
	ERR_clear_error();
	return buf;
}

/* Whether text holds a PEM block whose label ends with label ("PRIVATE KEY"). */
static bool has_pem_block(const struct file_bytes *f, const char *label)
{
	const char *p = f->data, *end = f->data + f->len;
	size_t llen = strlen(label);

	while ((p = memmem(p, (size_t)(end - p), "-----BEGIN ", 11)) != NULL) {
		const char *stop = memmem(p + 11, (size_t)(end - p - 11), "-----", 5);

		if (!stop)
			return false;
		if ((size_t)(stop - (p + 11)) >= llen && memcmp(stop - llen, label, llen) == 0)
			return true;
		p = stop;
	}
	return false;
}

/* "holds no PEM certificate", with a hint when the bytes look like DER. */
static void no_block(const struct file_bytes *f, const char *path, const char *what,
                     const char *label, char *why, size_t size)
{
	if ((unsigned char)f->data[0] == 0x30)
		snprintf(why, size, "%s holds no PEM %s: it looks like DER, convert it to PEM",
		         path, what);
	else
		snprintf(why, size, "%s holds no PEM %s (no -----BEGIN %s----- block)", path, what,
		         label);
}

/* Never asked in practice: PEM_read_* call it only for an encrypted key. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *asked)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(bool *)asked = true;
	return -1;
}

int gw_tls_pem_read_chain(const char *path, X509 **leaf, STACK_OF(X509) * *chain, char *why,
                          size_t size)
{
	struct file_bytes f;
	char reason[256];
	bool asked = false;
	BIO *bio;
	X509 *x;
	STACK_OF(X509) * rest;

	*leaf = NULL;
	*chain = NULL;
	if (read_file(path, &f, why, size) < 0)
		return -1;
	if (!has_pem_block(&f, "CERTIFICATE")) {
		no_block(&f, path, "certificate", "CERTIFICATE", why, size);
		file_bytes_free(&f);
		return -1;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(f.data, (int)f.len);
	x = bio ? PEM_read_bio_X509_AUX(bio, NULL, refuse_passphrase, &asked) : NULL;
	if (!x) {
		snprintf(why, size, "%s: bad PEM certificate (%s)", path,
		         gw_tls_openssl_reason("unreadable", reason, sizeof(reason)));
		BIO_free(bio);
		file_bytes_free(&f);
		return -1;
	}
	/* The rest of the file: the chain, up to the end (PEM's "no start line"). */
	rest = sk_X509_new_null();
	for (;;) {
		X509 *ca = PEM_read_bio_X509(bio, NULL, refuse_passphrase, &asked);
		unsigned long err;

		if (ca) {
			sk_X509_push(rest, ca);
			continue;
		}
		err = ERR_peek_last_error();
		if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
			ERR_clear_error();
			break;
		}
		snprintf(why, size, "%s: bad PEM certificate after the first (%s)", path,
		         gw_tls_openssl_reason("unreadable", reason, sizeof(reason)));
		sk_X509_pop_free(rest, X509_free);
		X509_free(x);
		BIO_free(bio);
		file_bytes_free(&f);
		return -1;
	}
	BIO_free(bio);
	file_bytes_free(&f);
	*leaf = x;
	*chain = rest;
	return 0;
}

int gw_tls_pem_read_key(const char *path, EVP_PKEY **key, char *why, size_t size)
{
	struct file_bytes f;
	char reason[256];
	bool asked = false;
	BIO *bio;

	*key = NULL;
	if (read_file(path, &f, why, size) < 0)
		return -1;
	if (!has_pem_block(&f, "PRIVATE KEY")) {
		no_block(&f, path, "private key", "PRIVATE KEY", why, size);
		file_bytes_free(&f);
		return -1;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(f.data, (int)f.len);
	*key = bio ? PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, &asked) : NULL;
	BIO_free(bio);
	file_bytes_free(&f);
	if (*key) {
		ERR_clear_error();
		return 0;
	}
	if (asked) {
		ERR_clear_error();
		snprintf(why, size,
		         "%s holds an encrypted private key: passphrase-protected keys are not "
		         "supported (decrypt it with 'openssl pkey')",
		         path);
	} else {
		snprintf(why, size, "%s: bad PEM private key (%s)", path,
		         gw_tls_openssl_reason("unreadable", reason, sizeof(reason)));
	}
	return -1;
}

int gw_tls_pem_read_certs(const char *path, STACK_OF(X509) * *certs, char *why, size_t size)
{
	X509 *leaf;

	if (gw_tls_pem_read_chain(path, &leaf, certs, why, size) < 0)
		return -1;
	sk_X509_unshift(*certs, leaf);
	return 0;
}

int gw_tls_key_matches(X509 *cert, EVP_PKEY *key, const char *cert_path, const char *key_path,
                       char *why, size_t size)
{
	char reason[256];

	ERR_clear_error();
	if (X509_check_private_key(cert, key) == 1)
		return 0;
	snprintf(why, size, "%s does not match the certificate of %s (%s)", key_path, cert_path,
	         gw_tls_openssl_reason("key values mismatch", reason, sizeof(reason)));
	return -1;
}

/* "2020-01-02 00:00:00 UTC", or "an unreadable date". */
static const char *format_time(const ASN1_TIME *t, char *buf, size_t size)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "an unreadable date");
	return buf;
}

int gw_tls_cert_check_dates(const X509 *cert, const char *path, char *why, size_t size)
{
	const ASN1_TIME *not_after = X509_get0_notAfter(cert);
	const ASN1_TIME *not_before = X509_get0_notBefore(cert);
	char when[64];

	if (X509_cmp_current_time(not_after) < 0) {
		snprintf(why, size,
		         "%s: the certificate expired on %s (clients that check it will refuse it)",
		         path, format_time(not_after, when, sizeof(when)));
		return 1;
	}
	if (X509_cmp_current_time(not_before) > 0) {
		snprintf(why, size,
		         "%s: the certificate is not valid before %s (clients that check it will "
		         "refuse it)",
		         path, format_time(not_before, when, sizeof(when)));
		return 1;
	}
	return 0;
}

void gw_tls_cache_cert(X509 *cert)
{
	/* purpose -1: no check, just the cache (the documented way to fill it) */
	if (cert)
		X509_check_purpose(cert, -1, 0);
}

void gw_tls_cache_certs(STACK_OF(X509) * certs)
{
	for (int i = 0; i < sk_X509_num(certs); i++)
		gw_tls_cache_cert(sk_X509_value(certs, i));
}

void gw_tls_cache_store(X509_STORE *store)
{
	STACK_OF(X509_OBJECT) * objects;

	if (!store || X509_STORE_lock(store) != 1)
		return;
	objects = X509_STORE_get0_objects(store);
	for (int i = 0; i < sk_X509_OBJECT_num(objects); i++)
		gw_tls_cache_cert(X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i)));
	X509_STORE_unlock(store);
	ERR_clear_error();
}

static void cert_problem(const struct gw_tls_report *r, bool warning, enum gw_tls_key key,
                         size_t index, const char *msg)
{
	struct gw_tls_problem p = {.warning = warning, .key = key, .cert = index, .msg = msg};

	r->problem(r->arg, &p);
}

X509 *gw_tls_use_cert_and_key(SSL_CTX *ctx, const char *cert_path, const char *key_path,
                              size_t index, const struct gw_tls_report *r)
{
	char why[GW_TLS_WHY_MAX], reason[256];
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	bool ok = false;

	if (gw_tls_pem_read_chain(cert_path, &leaf, &chain, why, sizeof(why)) < 0)
		cert_problem(r, false, GW_TLS_KEY_CERT, index, why);
	if (gw_tls_pem_read_key(key_path, &key, why, sizeof(why)) < 0)
		cert_problem(r, false, GW_TLS_KEY_KEY, index, why);
	if (!leaf || !key)
		goto out;
	ERR_clear_error();
	if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_set1_chain(ctx, chain) != 1) {
		snprintf(why, sizeof(why), "%s: certificate refused by OpenSSL (%s)", cert_path,
		         gw_tls_openssl_reason("refused", reason, sizeof(reason)));
		cert_problem(r, false, GW_TLS_KEY_CERT, index, why);
		goto out;
	}
	if (gw_tls_key_matches(leaf, key, cert_path, key_path, why, sizeof(why)) < 0) {
		cert_problem(r, false, GW_TLS_KEY_KEY, index, why);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(why, sizeof(why), "%s: private key refused by OpenSSL (%s)", key_path,
		         gw_tls_openssl_reason("refused", reason, sizeof(reason)));
		cert_problem(r, false, GW_TLS_KEY_KEY, index, why);
		goto out;
	}
	if (gw_tls_cert_check_dates(leaf, cert_path, why, sizeof(why)) != 0)
		cert_problem(r, true, GW_TLS_KEY_CERT, index, why);
	gw_tls_cache_cert(leaf);
	gw_tls_cache_certs(chain);
	ok = true;
out:
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	if (!ok) {
		X509_free(leaf);
		leaf = NULL;
	}
	return leaf;
}

/*
 * TLS (gateway/tls/): the config's tls sections built into OpenSSL
 * contexts, and those contexts driven through real handshakes.
 *
 * Every key and certificate is made here, at test time, with the OpenSSL
 * API, into a temporary directory removed at the end: a test CA and an
 * unrelated one, RSA 2048 and ECDSA P-256 server certificates with DNS
 * and IP subjectAltNames, a chain through an intermediate, a client
 * certificate, expired and not-yet-valid certificates, a weak RSA 1024
 * one, a key that matches nothing, an encrypted key, and files that are
 * not what they claim. Nothing secret is committed.
 *
 * Handshakes run in memory: a client SSL and a server SSL joined by a BIO
 * pair, stepped in turn until both are done or one fails. The server side
 * is always a context the gateway built from a config; the client side is
 * either a plain test client or the gateway's own upstream context.
 *
 * What is proven: each file problem is one error at the line and column
 * of the path that names it, with the file and the reason; expiry is a
 * warning; SNI picks the right certificate (exact, case-insensitive,
 * wildcard of one label, default); ALPN; TLS 1.1 refused; resumption by
 * ticket across one key rotation but not two, with TLS 1.2 and 1.3;
 * contexts outlive their snapshot; the upstream context verifies chain
 * and host name or IP, names what failed, does mutual TLS, and reuses a
 * session from its slot.
 */
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gateway/config/config.h"
#include "gateway/tls/tls_client.h"
#include "gateway/tls/tls_server.h"
#include "gateway/util/clock.h"
#include "gateway/util/errlist.h"
#include "check_suite.h"
#include "test_x509.h"
#include "stderr_capture.h"

#define HOUR_MS (3600ull * 1000)

/* ---- the files, made once before the tests fork -------------------------- */

static char dir[PATH_MAX];

static void die(const char *what)
{
	fprintf(stderr, "test_tls: cannot make the test files: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(EXIT_FAILURE);
}

/* DIR/name, in one of a ring of buffers (several may be in use at once). */
static const char *P(const char *name)
{
	static char ring[16][PATH_MAX];
	static unsigned next;
	char *buf = ring[next++ % 16];

	if (snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		die(name);
	return buf;
}

static EVP_PKEY *rsa_key(unsigned bits)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);

	if (!k)
		die("RSA key");
	return k;
}

static EVP_PKEY *ec_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (!k)
		die("EC key");
	return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	if (!gw_test_x509_add_ext(cert, issuer, nid, value))
		die(value);
}

/* What a certificate says about itself. */
struct cert_spec {
	const char *cn;
	const char *san;        /* "DNS:a.example.com,IP:127.0.0.1", or NULL */
	bool ca;                /* a CA (basicConstraints CA:TRUE, keyCertSign) */
	bool client;            /* extendedKeyUsage clientAuth instead of serverAuth */
	const char *not_before; /* "YYYYMMDDHHMMSSZ"; NULL: a day ago */
	const char *not_after;  /* NULL: in 30 days */
};

/* A certificate for key, signed by issuer (NULL: self-signed). */
static X509 *make_cert(const struct cert_spec *spec, EVP_PKEY *key, X509 *issuer,
                       EVP_PKEY *issuer_key)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	if (spec->not_before)
		ASN1_TIME_set_string_X509(X509_getm_notBefore(x), spec->not_before);
	else
		X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	if (spec->not_after)
		ASN1_TIME_set_string_X509(X509_getm_notAfter(x), spec->not_after);
	else
		X509_gmtime_adj(X509_getm_notAfter(x), 30 * 86400L);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)spec->cn, -1,
	                           -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	add_ext(x, issuer ? issuer : x, NID_authority_key_identifier, "keyid:always");
	if (spec->ca) {
		add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, issuer ? issuer : x, NID_ext_key_usage,
		        spec->client ? "clientAuth" : "serverAuth");
	}
	if (spec->san)
		add_ext(x, issuer ? issuer : x, NID_subject_alt_name, spec->san);
	if (X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
		die(spec->cn);
	return x;
}

/* Writes certificates (NULL-terminated) and, if key, the key after them. */
static void write_pem(const char *name, EVP_PKEY *key, X509 *first, ...)
{
	FILE *f = fopen(P(name), "w");
	va_list ap;

	if (!f)
		die(name);
	va_start(ap, first);
	for (X509 *x = first; x; x = va_arg(ap, X509 *))
		if (PEM_write_X509(f, x) != 1)
			die(name);
	va_end(ap);
	if (key && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
		die(name);
	fclose(f);
}

static void write_text(const char *name, const void *data, size_t len)
{
	FILE *f = fopen(P(name), "w");

	if (!f || fwrite(data, 1, len, f) != len)
		die(name);
	fclose(f);
}

/* The certificates the tests compare with what handshakes present. */
static X509 *rsa_cert_x, *ec_cert_x;

static void make_files(void)
{
	EVP_PKEY *ca_k = ec_key(), *other_ca_k = ec_key(), *inter_k = ec_key();
	EVP_PKEY *rsa_k = rsa_key(2048), *ec_k = ec_key(), *chain_k = ec_key();
	EVP_PKEY *exp_k = ec_key(), *fut_k = ec_key(), *unk_k = ec_key(), *cli_k = ec_key();
	EVP_PKEY *other_k = ec_key(), *weak_k = rsa_key(1024);
	X509 *ca, *other_ca, *inter, *chain, *expired, *future, *unknown, *client, *weak;
	unsigned char *der = NULL;
	int der_len;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/gw-tls-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		die("temporary directory");

	ca = make_cert(&(struct cert_spec){.cn = "Gateway Test CA", .ca = true}, ca_k, NULL, NULL);
	other_ca = make_cert(&(struct cert_spec){.cn = "Unrelated CA", .ca = true}, other_ca_k,
	                     NULL, NULL);
	inter = make_cert(&(struct cert_spec){.cn = "Gateway Test Intermediate", .ca = true},
	                  inter_k, ca, ca_k);
	rsa_cert_x = make_cert(
	    &(struct cert_spec){.cn = "rsa.example.com", .san = "DNS:rsa.example.com,IP:127.0.0.1"},
	    rsa_k, ca, ca_k);
	ec_cert_x =
	    make_cert(&(struct cert_spec){.cn = "ec.example.com",
	                                  .san = "DNS:ec.example.com,DNS:*.wild.example.com"},
	              ec_k, ca, ca_k);
	chain = make_cert(
	    &(struct cert_spec){.cn = "chain.example.com", .san = "DNS:chain.example.com"}, chain_k,
	    inter, inter_k);
	expired = make_cert(&(struct cert_spec){.cn = "expired.example.com",
	                                        .san = "DNS:expired.example.com",
	                                        .not_before = "20190101000000Z",
	                                        .not_after = "20200102030405Z"},
	                    exp_k, ca, ca_k);
	future = make_cert(&(struct cert_spec){.cn = "future.example.com",
	                                       .san = "DNS:future.example.com",
	                                       .not_before = "20990101000000Z",
	                                       .not_after = "20991231000000Z"},
	                   fut_k, ca, ca_k);
	unknown =
	    make_cert(&(struct cert_spec){.cn = "rsa.example.com", .san = "DNS:rsa.example.com"},
	              unk_k, other_ca, other_ca_k);
	client =
	    make_cert(&(struct cert_spec){.cn = "gateway client", .client = true}, cli_k, ca, ca_k);
	weak =
	    make_cert(&(struct cert_spec){.cn = "weak.example.com", .san = "DNS:weak.example.com"},
	              weak_k, ca, ca_k);

	write_pem("ca.pem", NULL, ca, NULL);
	write_pem("rsa.pem", NULL, rsa_cert_x, NULL);
	write_pem("rsa.key", rsa_k, NULL);
	write_pem("ec.pem", NULL, ec_cert_x, NULL);
	write_pem("ec.key", ec_k, NULL);
	write_pem("chain.pem", NULL, chain, inter, NULL);
	write_pem("chain.key", chain_k, NULL);
	write_pem("combined.pem", ec_k, ec_cert_x, NULL); /* certificate and key in one file */
	write_pem("expired.pem", NULL, expired, NULL);
	write_pem("expired.key", exp_k, NULL);
	write_pem("future.pem", NULL, future, NULL);
	write_pem("future.key", fut_k, NULL);
	write_pem("unknown.pem", NULL, unknown, NULL);
	write_pem("unknown.key", unk_k, NULL);
	write_pem("client.pem", NULL, client, NULL);
	write_pem("client.key", cli_k, NULL);
	write_pem("other.key", other_k, NULL);
	write_pem("weak.pem", NULL, weak, NULL);
	write_pem("weak.key", weak_k, NULL);
	write_text("junk.txt", "not a certificate\n", 18);
	write_text("empty.pem", "", 0);
	f = fopen(P("enc.key"), "w");
	if (!f || PEM_write_PrivateKey(f, ec_k, EVP_aes_128_cbc(), (unsigned char *)"secret", 6,
	                               NULL, NULL) != 1)
		die("enc.key");
	fclose(f);
	der_len = i2d_X509(ec_cert_x, &der);
	if (der_len <= 0)
		die("der");
	write_text("ec.der", der, (size_t)der_len);
	OPENSSL_free(der);
	if (mkdir(P("a-directory"), 0700) < 0)
		die("a-directory");
	if (truncate(P("empty.pem"), 5 * 1024 * 1024) < 0 ||
	    rename(P("empty.pem"), P("huge.pem")) < 0)
		die("huge.pem"); /* sparse: costs no disk */
	write_text("empty.pem", "", 0);

	X509_free(ca);
	X509_free(other_ca);
	X509_free(inter);
	X509_free(chain);
	X509_free(expired);
	X509_free(future);
	X509_free(unknown);
	X509_free(client);
	X509_free(weak);
	EVP_PKEY *keys[] = {ca_k,  other_ca_k, inter_k, rsa_k, ec_k,    chain_k,
	                    exp_k, fut_k,      unk_k,   cli_k, other_k, weak_k};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		EVP_PKEY_free(keys[i]);
}

static void remove_files(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_tls: could not remove %s\n", dir);
	X509_free(rsa_cert_x);
	X509_free(ec_cert_x);
}

/* ---- configs ------------------------------------------------------------- */

/*
 * Config texts put the tls section last, in block style, so that the
 * lines and columns the tests expect can be read off the template:
 * line 7 is "    tls:", a value after "      cert: " is at column 13.
 */
#define HEAD                                                                                       \
	"upstreams:\n"                                                                             \
	"  a: { servers: [\"127.0.0.1:9001\"] }\n"                                                 \
	"routes:\n"                                                                                \
	"  - { name: r, upstream: a }\n"                                                           \
	"listen:\n"                                                                                \
	"  - address: \"127.0.0.1:0\"\n"                                                           \
	"    tls:\n"

/* The config text made from fmt (in a static buffer). */
static const char *yaml(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *yaml(const char *fmt, ...)
{
	static char buf[8192];
	va_list ap;

	va_start(ap, fmt);
	ck_assert_int_lt(vsnprintf(buf, sizeof(buf), fmt, ap), (int)sizeof(buf));
	va_end(ap);
	return buf;
}

static struct gw_config *load_ok(const char *text)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("mem.yaml", text, &errs);
	char *all = gw_test_join_errors(&errs);

	ck_assert_msg(cfg != NULL && errs.count == 0, "should load, got:%s\n%s", all, text);
	free(all);
	gw_errlist_free(&errs);
	return cfg;
}

/* Loads text expecting failure with exactly the n messages given, in order. */
static void load_fails(const char *text, size_t n, ...)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("mem.yaml", text, &errs);
	char *all = gw_test_join_errors(&errs);
	va_list ap;

	ck_assert_msg(cfg == NULL, "should fail:\n%s", text);
	ck_assert_msg(errs.count == n, "expected %zu errors, got:%s", n, all);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		const char *want = va_arg(ap, const char *);

		ck_assert_msg(strcmp(errs.items[i], want) == 0, "expected:\n  %s\ngot:%s", want,
		              all);
	}
	va_end(ap);
	free(all);
	gw_errlist_free(&errs);
}

/* "mem.yaml:LINE:COL: " + the rest, in one of a ring of buffers. */
static const char *at(unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *at(unsigned line, unsigned col, const char *fmt, ...)
{
	static char ring[4][1024];
	static unsigned next;
	char *buf = ring[next++ % 4];
	int n = snprintf(buf, 1024, "mem.yaml:%u:%u: ", line, col);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, 1024 - (size_t)n, fmt, ap);
	va_end(ap);
	return buf;
}

/* A listener with one certificate: cert at 8:13, key at 9:12. */
static const char *one_cert(const char *cert, const char *key)
{
	return yaml(HEAD "      cert: %s\n"
	                 "      key: %s\n",
	            P(cert), P(key));
}

/* ---- handshakes in memory ------------------------------------------------ */

/* One end of a handshake and how it went. */
struct end {
	SSL *ssl;
	bool done, failed;
	unsigned long err; /* the first OpenSSL error of this end, if it failed */
};

static void step(struct end *e)
{
	int r;

	if (e->done || e->failed)
		return;
	r = SSL_do_handshake(e->ssl);
	if (r == 1) {
		e->done = true;
		return;
	}
	switch (SSL_get_error(e->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return;
	default:
		e->failed = true;
		e->err = ERR_peek_error();
		ERR_clear_error();
	}
}

/*
 * Joins client and server (both SSL objects are consumed into the pair
 * until free_pair) and steps them in turn until both are done, or no
 * more progress is possible. True when both completed.
 */
static bool handshake(struct end *c, struct end *s)
{
	BIO *cb, *sb;

	ck_assert_int_eq(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(c->ssl, cb, cb);
	SSL_set_bio(s->ssl, sb, sb);
	SSL_set_connect_state(c->ssl);
	SSL_set_accept_state(s->ssl);
	for (int i = 0; i < 64 && !(c->done && s->done); i++) {
		step(c);
		step(s);
	}
	return c->done && s->done;
}

/*
 * The server says "hello", the client reads it: with TLS 1.3 this is
 * also when the client takes in the server's session tickets. 0, or the
 * client's OpenSSL error.
 */
static unsigned long exchange(struct end *c, struct end *s)
{
	char buf[16];
	int n;
	unsigned long err;

	ck_assert_int_eq(SSL_write(s->ssl, "hello", 5), 5);
	n = SSL_read(c->ssl, buf, sizeof(buf));
	if (n == 5 && memcmp(buf, "hello", 5) == 0)
		return 0;
	err = ERR_peek_error();
	ERR_clear_error();
	return err ? err : 1;
}

static void free_ends(struct end *c, struct end *s)
{
	SSL_free(c->ssl);
	SSL_free(s->ssl);
}

/*
 * A plain test client: trusts the test CA, checks the chain (not the
 * name: tests look at which certificate came), TLS 1.2 to max_version.
 */
static SSL_CTX *test_client_ctx(int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_load_verify_file(ctx, P("ca.pem")), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_max_proto_version(ctx, max_version);
	return ctx;
}

static SSL *test_client(SSL_CTX *ctx, const char *sni)
{
	SSL *ssl = SSL_new(ctx);

	ck_assert_ptr_nonnull(ssl);
	if (sni)
		ck_assert_int_eq(SSL_set_tlsext_host_name(ssl, sni), 1);
	return ssl;
}

/* The CN of the certificate the client was shown. */
static const char *peer_cn(SSL *client)
{
	static char cn[128];
	X509 *peer = SSL_get1_peer_certificate(client);

	ck_assert_ptr_nonnull(peer);
	cn[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof(cn));
	X509_free(peer);
	return cn;
}

/* ---- config errors for files: one message, at the path that names it ----- */

START_TEST(missing_or_unreadable_files_are_errors_at_their_path)
{
	load_fails(
	    one_cert("missing.pem", "missing.key"), 2,
	    at(8, 13, "'cert' in tls of listen entry 1: cannot open %s: No such file or directory",
	       P("missing.pem")),
	    at(9, 12, "'key' in tls of listen entry 1: cannot open %s: No such file or directory",
	       P("missing.key")));
	load_fails(one_cert("a-directory", "ec.key"), 1,
	           at(8, 13, "'cert' in tls of listen entry 1: %s is a directory, not a file",
	              P("a-directory")));
	load_fails(one_cert("ec.pem", "empty.pem"), 1,
	           at(9, 12, "'key' in tls of listen entry 1: %s is empty", P("empty.pem")));
	load_fails(one_cert("huge.pem", "ec.key"), 1,
	           at(8, 13,
	              "'cert' in tls of listen entry 1: %s is too large for a PEM file (5242880 "
	              "bytes, at most 4194304)",
	              P("huge.pem")));
	/* a device is refused before anything reads from it */
	load_fails(yaml(HEAD "      cert: /dev/zero\n"
	                     "      key: %s\n",
	                P("ec.key")),
	           1,
	           at(8, 13,
	              "'cert' in tls of listen entry 1: /dev/zero is a device, FIFO or socket, not "
	              "a file"));
}
END_TEST

START_TEST(files_that_are_not_pem_certificates_or_keys_are_errors)
{
	load_fails(one_cert("junk.txt", "ec.key"), 1,
	           at(8, 13,
	              "'cert' in tls of listen entry 1: %s holds no PEM certificate (no -----BEGIN "
	              "CERTIFICATE----- block)",
	              P("junk.txt")));
	/* "empty chain": a file with a key but no certificate at all */
	load_fails(one_cert("ec.key", "ec.key"), 1,
	           at(8, 13,
	              "'cert' in tls of listen entry 1: %s holds no PEM certificate (no -----BEGIN "
	              "CERTIFICATE----- block)",
	              P("ec.key")));
	load_fails(one_cert("ec.der", "ec.key"), 1,
	           at(8, 13,
	              "'cert' in tls of listen entry 1: %s holds no PEM certificate: it looks like "
	              "DER, convert it to PEM",
	              P("ec.der")));
	load_fails(one_cert("ec.pem", "ec.pem"), 1,
	           at(9, 12,
	              "'key' in tls of listen entry 1: %s holds no PEM private key (no -----BEGIN "
	              "PRIVATE KEY----- block)",
	              P("ec.pem")));
	load_fails(
	    one_cert("ec.pem", "enc.key"), 1,
	    at(9, 12,
	       "'key' in tls of listen entry 1: %s holds an encrypted private key: "
	       "passphrase-protected keys are not supported (decrypt it with 'openssl pkey')",
	       P("enc.key")));
}
END_TEST

START_TEST(key_that_does_not_match_the_certificate_is_an_error_at_the_key)
{
	load_fails(one_cert("ec.pem", "other.key"), 1,
	           at(9, 12,
	              "'key' in tls of listen entry 1: %s does not match the certificate of %s "
	              "(key values mismatch)",
	              P("other.key"), P("ec.pem")));
	/* an RSA key for an ECDSA certificate */
	load_fails(one_cert("ec.pem", "rsa.key"), 1,
	           at(9, 12,
	              "'key' in tls of listen entry 1: %s does not match the certificate of %s "
	              "(different key types)",
	              P("rsa.key"), P("ec.pem")));
}
END_TEST

START_TEST(certificate_openssl_refuses_is_an_error_with_its_reason)
{
	/* Debian's default security level 2 wants RSA keys of 2048 bits and up. */
	load_fails(one_cert("weak.pem", "weak.key"), 1,
	           at(8, 13,
	              "'cert' in tls of listen entry 1: %s: certificate refused by OpenSSL (ee key "
	              "too small)",
	              P("weak.pem")));
}
END_TEST

START_TEST(second_certificate_errors_name_it)
{
	load_fails(yaml(HEAD "      certificates:\n"
	                     "        - cert: %s\n"
	                     "          key: %s\n"
	                     "        - cert: %s\n"
	                     "          key: %s\n"
	                     "          server_names: [x.example.com]\n",
	                P("rsa.pem"), P("rsa.key"), P("missing.pem"), P("ec.key")),
	           1,
	           at(11, 17,
	              "'cert' in certificate 2 of tls of listen entry 1: cannot open %s: No such "
	              "file or directory",
	              P("missing.pem")));
}
END_TEST

START_TEST(upstream_file_errors_point_at_ca_cert_and_key)
{
	static const char fmt[] = "listen: \"127.0.0.1:0\"\n"
	                          "routes:\n"
	                          "  - { name: r, upstream: a }\n"
	                          "upstreams:\n"
	                          "  a:\n"
	                          "    servers: [\"127.0.0.1:9001\"]\n"
	                          "    tls:\n"
	                          "      ca: %s\n"
	                          "      cert: %s\n"
	                          "      key: %s\n";

	load_fails(yaml(fmt, P("junk.txt"), P("client.pem"), P("client.key")), 1,
	           at(8, 11,
	              "'ca' in tls of upstream 'a': %s holds no PEM certificate (no -----BEGIN "
	              "CERTIFICATE----- block)",
	              P("junk.txt")));
	load_fails(yaml(fmt, P("missing.pem"), P("client.pem"), P("other.key")), 2,
	           at(8, 11,
	              "'ca' in tls of upstream 'a': cannot open %s: No such file or directory",
	              P("missing.pem")),
	           at(10, 12,
	              "'key' in tls of upstream 'a': %s does not match the certificate of %s (key "
	              "values mismatch)",
	              P("other.key"), P("client.pem")));
}
END_TEST

/* ---- warnings ------------------------------------------------------------ */

START_TEST(expired_or_future_certificate_is_a_warning_not_an_error)
{
	struct captured cap = capture_start();
	struct gw_config *cfg = load_ok(one_cert("expired.pem", "expired.key"));
	char *log = capture_end(&cap);
	const char *want = at(8, 13,
	                      "'cert' in tls of listen entry 1: %s: the certificate expired on "
	                      "2020-01-02 03:04:05 UTC (clients that check it will refuse it)",
	                      P("expired.pem"));

	ck_assert_msg(strstr(log, " warn ") && strstr(log, want), "log:\n%s\nwanted:\n%s", log,
	              want);
	ck_assert_ptr_nonnull(cfg->listens[0].tls->ctx);
	free(log);
	gw_config_unref(cfg);

	cap = capture_start();
	cfg = load_ok(one_cert("future.pem", "future.key"));
	log = capture_end(&cap);
	want = at(8, 13,
	          "'cert' in tls of listen entry 1: %s: the certificate is not valid before "
	          "2099-01-01 00:00:00 UTC (clients that check it will refuse it)",
	          P("future.pem"));
	ck_assert_msg(strstr(log, want), "log:\n%s\nwanted:\n%s", log, want);
	free(log);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(server_name_the_certificate_does_not_cover_is_a_warning)
{
	struct captured cap = capture_start();
	struct gw_config *cfg = load_ok(yaml(HEAD "      certificates:\n"
	                                          "        - cert: %s\n"
	                                          "          key: %s\n"
	                                          "        - cert: %s\n"
	                                          "          key: %s\n"
	                                          "          server_names: [ec.example.com, "
	                                          "\"*.wild.example.com\", shop.example.com]\n",
	                                     P("rsa.pem"), P("rsa.key"), P("ec.pem"), P("ec.key")));
	char *log = capture_end(&cap);
	const char *want =
	    at(13, 64,
	       "'server_names' in certificate 2 of tls of listen entry 1: the certificate of %s is "
	       "not valid for 'shop.example.com': clients that check it will refuse it",
	       P("ec.pem"));

	ck_assert_msg(strstr(log, want), "log:\n%s\nwanted:\n%s", log, want);
	/* one line: covered names, the wildcard included, are not warned about */
	ck_assert_msg(strchr(log, '\n') == log + strlen(log) - 1, "log:\n%s", log);
	free(log);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(good_files_load_without_a_word)
{
	struct captured cap = capture_start();
	struct gw_config *cfg = load_ok(one_cert("chain.pem", "chain.key"));
	char *log = capture_end(&cap);
	const struct gw_tls_listen_conf *tls = cfg->listens[0].tls;

	ck_assert_str_eq(log, "");
	ck_assert_ptr_nonnull(tls);
	ck_assert_uint_eq(tls->ncertificates, 1);
	ck_assert_str_eq(tls->certificates[0].cert, P("chain.pem"));
	ck_assert_str_eq(tls->certificates[0].key, P("chain.key"));
	ck_assert_ptr_eq(tls->ctx, tls->certificates[0].ctx);
	/* the defaults */
	ck_assert_uint_eq(tls->certificates[0].nserver_names, 0);
	ck_assert_int_eq(tls->min_version, GW_TLS_VERSION_1_2);
	ck_assert_str_eq(tls->ciphers, GW_TLS_DEFAULT_CIPHERS);
	ck_assert_ptr_null(tls->ciphersuites);
	ck_assert(tls->session_tickets);
	ck_assert_uint_eq(tls->ticket_key_rotation_ms, HOUR_MS);
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(tls->ctx), TLS1_2_VERSION);
	ck_assert_int_eq(SSL_CTX_get_max_proto_version(tls->ctx), TLS1_3_VERSION);
	ck_assert_uint_eq(SSL_CTX_get_options(tls->ctx) &
	                      (SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE),
	                  SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	ck_assert_uint_eq(SSL_CTX_get_mode(tls->ctx) & SSL_MODE_RELEASE_BUFFERS,
	                  SSL_MODE_RELEASE_BUFFERS);
	ck_assert_int_eq(SSL_CTX_get_session_cache_mode(tls->ctx), SSL_SESS_CACHE_OFF);
	free(log);
	gw_config_unref(cfg);
	/* certificate and key in one file */
	gw_config_unref(load_ok(one_cert("combined.pem", "combined.pem")));
}
END_TEST

START_TEST(every_listen_tls_key_is_stored)
{
	struct gw_config *cfg = load_ok(yaml(HEAD "      certificates:\n"
	                                          "        - cert: %s\n"
	                                          "          key: %s\n"
	                                          "          server_names: [RSA.example.com]\n"
	                                          "        - cert: %s\n"
	                                          "          key: %s\n"
	                                          "          server_names: [ec.example.com]\n"
	                                          "      min_version: TLSv1.3\n"
	                                          "      ciphers: ECDHE-ECDSA-AES256-GCM-SHA384\n"
	                                          "      ciphersuites: TLS_AES_256_GCM_SHA384\n"
	                                          "      session_tickets: false\n"
	                                          "      ticket_key_rotation: 10m\n",
	                                     P("rsa.pem"), P("rsa.key"), P("ec.pem"), P("ec.key")));
	const struct gw_tls_listen_conf *tls = cfg->listens[0].tls;

	ck_assert_uint_eq(tls->ncertificates, 2);
	ck_assert_str_eq(tls->certificates[0].server_names[0], "rsa.example.com");
	ck_assert_str_eq(tls->certificates[1].cert, P("ec.pem"));
	ck_assert_str_eq(tls->certificates[1].key, P("ec.key"));
	ck_assert_ptr_nonnull(tls->certificates[1].ctx);
	ck_assert_ptr_ne(tls->certificates[1].ctx, tls->ctx);
	ck_assert_int_eq(tls->min_version, GW_TLS_VERSION_1_3);
	ck_assert_str_eq(tls->ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384");
	ck_assert_str_eq(tls->ciphersuites, "TLS_AES_256_GCM_SHA384");
	ck_assert(!tls->session_tickets);
	ck_assert_uint_eq(tls->ticket_key_rotation_ms, 600000);
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(tls->ctx), TLS1_3_VERSION);
	ck_assert_uint_eq(SSL_CTX_get_options(tls->ctx) & SSL_OP_NO_TICKET, SSL_OP_NO_TICKET);
	gw_config_unref(cfg);
}
END_TEST

/* ---- the listener's contexts in handshakes -------------------------------- */

/* Two certificates: RSA (default) and ECDSA for ec.example.com and *.wild.example.com. */
static struct gw_config *sni_config(void)
{
	return load_ok(yaml(HEAD
	                    "      certificates:\n"
	                    "        - cert: %s\n"
	                    "          key: %s\n"
	                    "        - cert: %s\n"
	                    "          key: %s\n"
	                    "          server_names: [ec.example.com, \"*.wild.example.com\"]\n",
	                    P("rsa.pem"), P("rsa.key"), P("ec.pem"), P("ec.key")));
}

/* Which certificate a client asking for sni is shown. */
static const char *served_for(const struct gw_tls_listen_conf *tls, SSL_CTX *cctx, const char *sni)
{
	static char cn[128];
	struct end c = {.ssl = test_client(cctx, sni)}, s = {.ssl = gw_tls_server_ssl_new(tls)};
	const char *version, *seen;
	const unsigned char *proto;
	unsigned len;

	/* ALPN is answered whichever context SNI switched to */
	ck_assert_int_eq(SSL_set_alpn_protos(c.ssl, (const unsigned char *)"\x08http/1.1", 9), 0);
	ck_assert_msg(handshake(&c, &s), "handshake for %s failed: %s / %s", sni ? sni : "(none)",
	              ERR_reason_error_string(c.err), ERR_reason_error_string(s.err));
	SSL_get0_alpn_selected(c.ssl, &proto, &len);
	ck_assert_uint_eq(len, 8);
	snprintf(cn, sizeof(cn), "%s", peer_cn(c.ssl));
	gw_tls_server_info(s.ssl, &version, &seen);
	ck_assert_str_eq(seen, sni ? sni : "-");
	free_ends(&c, &s);
	return cn;
}

START_TEST(sni_picks_the_certificate_by_name)
{
	struct gw_config *cfg = sni_config();
	const struct gw_tls_listen_conf *tls = cfg->listens[0].tls;
	SSL_CTX *cctx = test_client_ctx(TLS1_3_VERSION);

	ck_assert_uint_eq(tls->ncertificates, 2);
	ck_assert_uint_eq(tls->certificates[1].nserver_names, 2);
	ck_assert_str_eq(tls->certificates[1].server_names[1], "*.wild.example.com");
	ck_assert_str_eq(served_for(tls, cctx, "ec.example.com"), "ec.example.com");
	ck_assert_str_eq(served_for(tls, cctx, "EC.Example.COM"), "ec.example.com");
	ck_assert_str_eq(served_for(tls, cctx, "shop.wild.example.com"), "ec.example.com");
	/* a wildcard covers one label, no more, no less */
	ck_assert_str_eq(served_for(tls, cctx, "a.shop.wild.example.com"), "rsa.example.com");
	ck_assert_str_eq(served_for(tls, cctx, "wild.example.com"), "rsa.example.com");
	/* no SNI, or a name nobody claims: the first certificate */
	ck_assert_str_eq(served_for(tls, cctx, NULL), "rsa.example.com");
	ck_assert_str_eq(served_for(tls, cctx, "unknown.example.com"), "rsa.example.com");
	ck_assert_str_eq(served_for(tls, cctx, "rsa.example.com"), "rsa.example.com");
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(full_chain_is_sent)
{
	/* The client trusts only the root: the intermediate must come from the server. */
	struct gw_config *cfg = load_ok(one_cert("chain.pem", "chain.key"));
	SSL_CTX *cctx = test_client_ctx(TLS1_3_VERSION);
	struct end c = {.ssl = test_client(cctx, "chain.example.com")},
	           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};

	ck_assert_msg(handshake(&c, &s), "%s", ERR_reason_error_string(c.err));
	ck_assert_int_eq(SSL_get_verify_result(c.ssl), X509_V_OK);
	ck_assert_int_eq(sk_X509_num(SSL_get_peer_cert_chain(c.ssl)), 2);
	free_ends(&c, &s);
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(alpn_selects_http11_and_lets_h2_only_clients_through)
{
	struct gw_config *cfg = load_ok(one_cert("ec.pem", "ec.key"));
	SSL_CTX *cctx = test_client_ctx(TLS1_3_VERSION);
	struct end c = {.ssl = test_client(cctx, "ec.example.com")},
	           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	const unsigned char *proto;
	unsigned len;

	ck_assert_int_eq(
	    SSL_set_alpn_protos(c.ssl, (const unsigned char *)"\x02h2\x08http/1.1", 12), 0);
	ck_assert(handshake(&c, &s));
	SSL_get0_alpn_selected(c.ssl, &proto, &len);
	ck_assert_uint_eq(len, 8);
	ck_assert_int_eq(memcmp(proto, "http/1.1", 8), 0);
	free_ends(&c, &s);

	c = (struct end){.ssl = test_client(cctx, "ec.example.com")};
	s = (struct end){.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	ck_assert_int_eq(SSL_set_alpn_protos(c.ssl, (const unsigned char *)"\x02h2", 3), 0);
	ck_assert(handshake(&c, &s));
	SSL_get0_alpn_selected(c.ssl, &proto, &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(exchange(&c, &s), 0);
	free_ends(&c, &s);
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

/* A client that offers exactly version (security level 0 so it may try TLS 1.1). */
static SSL_CTX *old_client_ctx(int version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_security_level(ctx, 0);
	ck_assert_int_eq(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, version), 1);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx, version), 1);
	return ctx;
}

START_TEST(tls11_is_refused_and_min_version_13_refuses_12)
{
	struct gw_config *cfg = load_ok(one_cert("rsa.pem", "rsa.key"));
	SSL_CTX *cctx = old_client_ctx(TLS1_1_VERSION);
	struct end c = {.ssl = SSL_new(cctx)},
	           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	const char *version, *sni;

	ck_assert(!handshake(&c, &s));
	ck_assert(s.failed);
	ck_assert_int_eq(ERR_GET_REASON(s.err), SSL_R_UNSUPPORTED_PROTOCOL);
	free_ends(&c, &s);
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);

	cfg = load_ok(yaml(HEAD "      cert: %s\n"
	                        "      key: %s\n"
	                        "      min_version: TLSv1.3\n",
	                   P("rsa.pem"), P("rsa.key")));
	cctx = old_client_ctx(TLS1_2_VERSION);
	c = (struct end){.ssl = SSL_new(cctx)};
	s = (struct end){.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	ck_assert(!handshake(&c, &s));
	ck_assert_int_eq(ERR_GET_REASON(s.err), SSL_R_UNSUPPORTED_PROTOCOL);
	free_ends(&c, &s);
	SSL_CTX_free(cctx);

	cctx = test_client_ctx(TLS1_3_VERSION);
	c = (struct end){.ssl = test_client(cctx, NULL)};
	s = (struct end){.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	ck_assert(handshake(&c, &s));
	gw_tls_server_info(s.ssl, &version, &sni);
	ck_assert_str_eq(version, "TLSv1.3");
	ck_assert_str_eq(sni, "-");
	free_ends(&c, &s);
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(default_ciphers_serve_rsa_and_ecdsa_over_tls12)
{
	struct gw_config *cfg = sni_config();
	SSL_CTX *cctx = test_client_ctx(TLS1_2_VERSION);
	static const char *const names[] = {"rsa.example.com", "ec.example.com"};
	static const char *const ciphers[] = {"ECDHE-RSA-AES128-GCM-SHA256",
	                                      "ECDHE-ECDSA-AES128-GCM-SHA256"};

	for (int i = 0; i < 2; i++) {
		struct end c = {.ssl = test_client(cctx, names[i])},
		           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
		const char *version, *sni;

		ck_assert(handshake(&c, &s));
		ck_assert_str_eq(SSL_get_cipher_name(c.ssl), ciphers[i]);
		gw_tls_server_info(s.ssl, &version, &sni);
		ck_assert_str_eq(version, "TLSv1.2");
		ck_assert_str_eq(sni, names[i]);
		free_ends(&c, &s);
	}
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(server_info_of_plain_http_is_dashes)
{
	const char *version = NULL, *sni = NULL;

	gw_tls_server_info(NULL, &version, &sni);
	ck_assert_str_eq(version, "-");
	ck_assert_str_eq(sni, "-");
}
END_TEST

/* ---- resumption by ticket ------------------------------------------------- */

/*
 * A handshake offering session (NULL: none). Returns whether the session
 * was resumed (both ends agree), and in *out the client's session after
 * the exchange (the newest ticket), if out.
 */
static bool connect_with(const struct gw_tls_listen_conf *tls, SSL_CTX *cctx, const char *sni,
                         SSL_SESSION *session, SSL_SESSION **out)
{
	struct end c = {.ssl = test_client(cctx, sni)}, s = {.ssl = gw_tls_server_ssl_new(tls)};
	bool reused;

	if (session)
		ck_assert_int_eq(SSL_set_session(c.ssl, session), 1);
	ck_assert_msg(handshake(&c, &s), "%s / %s", ERR_reason_error_string(c.err),
	              ERR_reason_error_string(s.err));
	ck_assert_uint_eq(exchange(&c, &s), 0);
	reused = SSL_session_reused(c.ssl);
	ck_assert_int_eq(reused, SSL_session_reused(s.ssl));
	if (out) {
		*out = SSL_get1_session(c.ssl);
		ck_assert(SSL_SESSION_is_resumable(*out));
	}
	/* A client that closes with close_notify: OpenSSL marks the session
	 * of a connection freed without one as not resumable. */
	SSL_shutdown(c.ssl);
	free_ends(&c, &s);
	return reused;
}

/* _i: 0 for TLS 1.2, 1 for TLS 1.3 */
START_TEST(ticket_resumes_after_one_rotation_not_after_two)
{
	int version = _i == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
	struct gw_config *cfg;
	const struct gw_tls_listen_conf *tls;
	SSL_CTX *cctx = test_client_ctx(version);
	SSL_SESSION *first, *renewed;

	gw_clock_set_fake(10 * HOUR_MS);
	cfg = sni_config();
	tls = cfg->listens[0].tls;
	ck_assert(tls->session_tickets);
	ck_assert_uint_eq(tls->ticket_key_rotation_ms, HOUR_MS);

	ck_assert(!connect_with(tls, cctx, "ec.example.com", NULL, &first));
	ck_assert(connect_with(tls, cctx, "ec.example.com", first, NULL));
	/* one rotation: the key that made the ticket is the previous one */
	gw_clock_advance_fake(HOUR_MS);
	ck_assert(connect_with(tls, cctx, "ec.example.com", first, &renewed));
	/* two: it is gone; the ticket renewed under the current key still works */
	gw_clock_advance_fake(HOUR_MS);
	ck_assert(!connect_with(tls, cctx, "ec.example.com", first, NULL));
	ck_assert(connect_with(tls, cctx, "ec.example.com", renewed, NULL));
	/* a long idle time forgets every key at once */
	gw_clock_advance_fake(5 * HOUR_MS);
	ck_assert(!connect_with(tls, cctx, "ec.example.com", renewed, NULL));

	SSL_SESSION_free(first);
	SSL_SESSION_free(renewed);
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(ticket_resumes_on_the_default_certificate_too)
{
	struct gw_config *cfg = sni_config();
	SSL_CTX *cctx = test_client_ctx(TLS1_3_VERSION);
	SSL_SESSION *s;

	ck_assert(!connect_with(cfg->listens[0].tls, cctx, NULL, NULL, &s));
	ck_assert(connect_with(cfg->listens[0].tls, cctx, NULL, s, NULL));
	SSL_SESSION_free(s);
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(session_tickets_false_means_no_resumption)
{
	struct gw_config *cfg = load_ok(yaml(HEAD "      cert: %s\n"
	                                          "      key: %s\n"
	                                          "      session_tickets: false\n",
	                                     P("ec.pem"), P("ec.key")));
	SSL_CTX *cctx = test_client_ctx(_i == 0 ? TLS1_2_VERSION : TLS1_3_VERSION);
	struct end c = {.ssl = test_client(cctx, NULL)},
	           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	SSL_SESSION *sess;

	ck_assert(!cfg->listens[0].tls->session_tickets);
	ck_assert(handshake(&c, &s));
	ck_assert_uint_eq(exchange(&c, &s), 0);
	sess = SSL_get1_session(c.ssl);
	ck_assert(!SSL_SESSION_is_resumable(sess));
	SSL_SESSION_free(sess);
	free_ends(&c, &s);
	SSL_CTX_free(cctx);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(contexts_outlive_their_snapshot)
{
	/* A reload drops the snapshot while connections accepted under it
	 * still handshake: SNI, tickets and ALPN must still work. */
	struct gw_config *cfg = sni_config();
	SSL_CTX *cctx = test_client_ctx(TLS1_3_VERSION);
	struct end c = {.ssl = test_client(cctx, "x.wild.example.com")},
	           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	SSL_SESSION *sess;

	gw_config_unref(cfg);
	ck_assert(handshake(&c, &s));
	ck_assert_str_eq(peer_cn(c.ssl), "ec.example.com");
	ck_assert_uint_eq(exchange(&c, &s), 0);
	sess = SSL_get1_session(c.ssl);
	ck_assert(SSL_SESSION_is_resumable(sess));
	SSL_SESSION_free(sess);
	free_ends(&c, &s);
	SSL_CTX_free(cctx);
}
END_TEST

/*
 * Worker threads share the contexts: one listener's (with its ticket
 * keys) and one upstream's. Each thread makes full handshakes and
 * resumes them, the gateway's client against the gateway's server, while
 * the main thread keeps rotating the keys under them (run it under
 * ThreadSanitizer too). No Check assertion in a thread: each counts what
 * went wrong, the test checks the counts.
 */
struct worker_run {
	const struct gw_config *cfg;
	int version;
	int failed, resumed;
};

static bool quiet_handshake(SSL *c, SSL *s)
{
	BIO *cb, *sb;
	bool cdone = false, sdone = false;
	char buf[8];

	if (BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
		return false;
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (int i = 0; i < 64 && !(cdone && sdone); i++) {
		if (!cdone)
			cdone = SSL_do_handshake(c) == 1;
		if (!sdone)
			sdone = SSL_do_handshake(s) == 1;
	}
	ERR_clear_error();
	return cdone && sdone && SSL_write(s, "hi", 2) == 2 && SSL_read(c, buf, sizeof(buf)) == 2;
}

static void *worker_handshakes(void *arg)
{
	struct worker_run *run = arg;
	struct gw_tls_session_slot slot = {0};

	for (int i = 0; i < 40; i++) {
		SSL *c = gw_tls_client_ssl_new(run->cfg->upstreams[0].tls,
		                               i % 2 ? "x.wild.example.com" : "rsa.example.com");
		SSL *s = gw_tls_server_ssl_new(run->cfg->listens[0].tls);

		SSL_set_max_proto_version(c, run->version);
		if (i % 4 == 3)
			gw_tls_session_slot_free(&slot); /* a full handshake now and then */
		gw_tls_session_slot_apply(&slot, c);
		if (!quiet_handshake(c, s) || SSL_get_verify_result(c) != X509_V_OK) {
			run->failed++;
		} else {
			run->resumed += SSL_session_reused(c);
			gw_tls_session_slot_save(&slot, c);
		}
		SSL_free(c);
		SSL_free(s);
	}
	gw_tls_session_slot_free(&slot);
	return NULL;
}

START_TEST(worker_threads_share_contexts_and_ticket_keys)
{
	struct gw_config *cfg;
	struct worker_run runs[4];
	pthread_t threads[4];
	int resumed = 0;

	gw_clock_set_fake(HOUR_MS);
	cfg = load_ok(
	    yaml("upstreams:\n"
	         "  a: { servers: [\"127.0.0.1:9001\"], tls: { ca: %s } }\n"
	         "routes:\n"
	         "  - { name: r, upstream: a }\n"
	         "listen:\n"
	         "  - address: \"127.0.0.1:0\"\n"
	         "    tls:\n"
	         "      certificates:\n"
	         "        - { cert: %s, key: %s }\n"
	         "        - { cert: %s, key: %s, server_names: [\"*.wild.example.com\"] }\n",
	         P("ca.pem"), P("rsa.pem"), P("rsa.key"), P("ec.pem"), P("ec.key")));
	for (int i = 0; i < 4; i++) {
		runs[i] = (struct worker_run){.cfg = cfg,
		                              .version = _i == 0 ? TLS1_2_VERSION : TLS1_3_VERSION};
		ck_assert_int_eq(pthread_create(&threads[i], NULL, worker_handshakes, &runs[i]), 0);
	}
	for (int i = 0; i < 200; i++) {
		gw_clock_advance_fake(HOUR_MS / 2);
		usleep(500);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
		ck_assert_int_eq(runs[i].failed, 0);
		resumed += runs[i].resumed;
	}
	ck_assert_int_gt(resumed, 0);
	gw_config_unref(cfg);
}
END_TEST

/* ---- the upstream side ---------------------------------------------------- */

/*
 * A listener serving cert (the test server) and an upstream whose tls
 * section is upstream_tls (flow style, inside braces).
 */
static struct gw_config *up_config(const char *cert, const char *key, const char *upstream_tls)
{
	return load_ok(yaml("listen:\n"
	                    "  - address: \"127.0.0.1:0\"\n"
	                    "    tls: { cert: %s, key: %s }\n"
	                    "upstreams:\n"
	                    "  a: { servers: [\"127.0.0.1:9001\"], tls: { %s } }\n"
	                    "routes:\n"
	                    "  - { name: r, upstream: a }\n",
	                    P(cert), P(key), upstream_tls));
}

/*
 * The gateway's client for host against the config's test server. Leaves
 * reason empty on success, else what gw_tls_handshake_reason says.
 */
static bool upstream_handshake(const struct gw_config *cfg, const char *host, char *reason,
                               size_t size)
{
	struct end c = {.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls, host)},
	           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	bool ok;

	ck_assert_ptr_nonnull(c.ssl);
	ok = handshake(&c, &s);
	reason[0] = '\0';
	if (!ok)
		gw_tls_handshake_reason(c.ssl, c.err, reason, size);
	free_ends(&c, &s);
	return ok;
}

START_TEST(upstream_verifies_chain_and_host_name)
{
	char ca[PATH_MAX + 8], reason[256];
	struct gw_config *cfg;

	snprintf(ca, sizeof(ca), "ca: %s", P("ca.pem"));
	cfg = up_config("rsa.pem", "rsa.key", ca);
	ck_assert(cfg->upstreams[0].tls->verify);
	ck_assert_str_eq(cfg->upstreams[0].tls->ca, P("ca.pem"));
	ck_assert(upstream_handshake(cfg, "rsa.example.com", reason, sizeof(reason)));
	ck_assert(upstream_handshake(cfg, "RSA.example.com", reason, sizeof(reason)));

	ck_assert(!upstream_handshake(cfg, "other.example.com", reason, sizeof(reason)));
	ck_assert_str_eq(reason,
	                 "certificate is not valid for host name 'other.example.com' (hostname "
	                 "mismatch)");
	gw_config_unref(cfg);
}
END_TEST

START_TEST(upstream_checks_ip_literals_against_ip_names)
{
	char ca[PATH_MAX + 8], reason[256];
	struct gw_config *cfg;

	snprintf(ca, sizeof(ca), "ca: %s", P("ca.pem"));
	cfg = up_config("rsa.pem", "rsa.key", ca);
	ck_assert(upstream_handshake(cfg, "127.0.0.1", reason, sizeof(reason)));
	ck_assert(!upstream_handshake(cfg, "127.0.0.2", reason, sizeof(reason)));
	ck_assert_str_eq(reason,
	                 "certificate is not valid for IP address 127.0.0.2 (IP address mismatch)");
	ck_assert(!upstream_handshake(cfg, "[::1]", reason, sizeof(reason)));
	ck_assert_ptr_nonnull(strstr(reason, "certificate is not valid for IP address"));
	gw_config_unref(cfg);
}
END_TEST

START_TEST(upstream_refuses_an_unknown_ca_unless_verify_is_off)
{
	char ca[PATH_MAX + 8], reason[256];
	struct gw_config *cfg;

	snprintf(ca, sizeof(ca), "ca: %s", P("ca.pem"));
	cfg = up_config("unknown.pem", "unknown.key", ca);
	ck_assert(!upstream_handshake(cfg, "rsa.example.com", reason, sizeof(reason)));
	ck_assert_str_eq(reason,
	                 "certificate verification failed: unable to get local issuer certificate");
	gw_config_unref(cfg);

	cfg = up_config("unknown.pem", "unknown.key", "verify: false");
	ck_assert(!cfg->upstreams[0].tls->verify);
	ck_assert(upstream_handshake(cfg, "not.the.name", reason, sizeof(reason)));
	gw_config_unref(cfg);
}
END_TEST

START_TEST(upstream_server_name_overrides_the_host)
{
	char tls[PATH_MAX + 64];
	struct gw_config *cfg;
	struct end c, s;

	snprintf(tls, sizeof(tls), "ca: %s, server_name: rsa.example.com", P("ca.pem"));
	cfg = up_config("rsa.pem", "rsa.key", tls);
	c = (struct end){.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls, "10.1.2.3")};
	s = (struct end){.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	ck_assert(handshake(&c, &s));
	ck_assert_str_eq(SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name), "rsa.example.com");
	free_ends(&c, &s);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(upstream_sends_sni_for_names_only)
{
	struct gw_config *cfg = up_config("rsa.pem", "rsa.key", "verify: false");
	struct end c = {.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls, "127.0.0.1")},
	           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};

	ck_assert(handshake(&c, &s));
	ck_assert_ptr_null(SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name));
	free_ends(&c, &s);
	c = (struct end){.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls, "api.internal")};
	s = (struct end){.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	ck_assert(handshake(&c, &s));
	ck_assert_str_eq(SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name), "api.internal");
	free_ends(&c, &s);
	gw_config_unref(cfg);
}
END_TEST

/* The test server asks for a client certificate signed by the test CA. */
static void require_client_cert(SSL *server)
{
	X509_STORE *store = X509_STORE_new();

	ck_assert_int_eq(X509_STORE_load_file(store, P("ca.pem")), 1);
	ck_assert_int_eq(SSL_set1_verify_cert_store(server, store), 1);
	X509_STORE_free(store);
	SSL_set_verify(server, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
}

START_TEST(upstream_mutual_tls)
{
	char tls[3 * PATH_MAX], reason[256];
	struct gw_config *cfg;
	struct end c, s;
	X509 *seen;

	snprintf(tls, sizeof(tls), "ca: %s, cert: %s, key: %s", P("ca.pem"), P("client.pem"),
	         P("client.key"));
	cfg = up_config("rsa.pem", "rsa.key", tls);
	c = (struct end){.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls, "rsa.example.com")};
	s = (struct end){.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	require_client_cert(s.ssl);
	ck_assert(handshake(&c, &s));
	seen = SSL_get1_peer_certificate(s.ssl);
	ck_assert_ptr_nonnull(seen);
	X509_free(seen);
	free_ends(&c, &s);
	gw_config_unref(cfg);

	/* Without a client certificate: with TLS 1.3 the client learns it on
	 * its first read, after its own side of the handshake is done. */
	snprintf(tls, sizeof(tls), "ca: %s", P("ca.pem"));
	cfg = up_config("rsa.pem", "rsa.key", tls);
	c = (struct end){.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls, "rsa.example.com")};
	s = (struct end){.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
	require_client_cert(s.ssl);
	ck_assert(!handshake(&c, &s));
	ck_assert(s.failed);
	ck_assert(c.done);
	{
		char buf[8];

		ck_assert_int_le(SSL_read(c.ssl, buf, sizeof(buf)), 0);
	}
	ck_assert_str_eq(gw_tls_verify_reason(c.ssl, reason, sizeof(reason)),
	                 "the server requires a client certificate (tlsv13 alert certificate "
	                 "required)");
	ck_assert_uint_eq(ERR_peek_error(), 0);
	free_ends(&c, &s);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(handshake_reason_names_plain_http_and_silent_close)
{
	char reason[256];
	unsigned long err = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_WRONG_VERSION_NUMBER);

	/* the reason strings, as making any context loads them */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, NULL);
	ck_assert_str_eq(gw_tls_handshake_reason(NULL, err, reason, sizeof(reason)),
	                 "is the server speaking TLS? (wrong version number)");
	ck_assert_str_eq(gw_tls_handshake_reason(NULL, 0, reason, sizeof(reason)),
	                 "connection closed during the TLS handshake");
}
END_TEST

START_TEST(session_slot_reuses_the_newest_session)
{
	char ca[PATH_MAX + 8];
	struct gw_config *cfg, *other;
	struct gw_tls_session_slot slot = {0};
	SSL *ssl;
	int version = _i == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;

	snprintf(ca, sizeof(ca), "ca: %s", P("ca.pem"));
	cfg = up_config("rsa.pem", "rsa.key", ca);
	for (int round = 0; round < 3; round++) {
		struct end c = {.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls,
		                                             "rsa.example.com")},
		           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};
		unsigned char before[1024];
		size_t before_len = 0;
		const unsigned char *ticket;
		size_t len;

		if (slot.session) {
			SSL_SESSION_get0_ticket(slot.session, &ticket, &before_len);
			ck_assert_uint_le(before_len, sizeof(before));
			memcpy(before, ticket, before_len);
		}

		SSL_set_max_proto_version(c.ssl, version);
		gw_tls_session_slot_apply(&slot, c.ssl);
		ck_assert(handshake(&c, &s));
		gw_tls_session_slot_save(&slot, c.ssl); /* after the handshake */
		ck_assert_uint_eq(exchange(&c, &s), 0);
		gw_tls_session_slot_save(&slot, c.ssl); /* back to the pool */
		ck_assert_int_eq(SSL_session_reused(c.ssl), round > 0);
		ck_assert_ptr_nonnull(slot.session);
		/* the newest: each TLS 1.3 handshake brings a new ticket */
		SSL_SESSION_get0_ticket(slot.session, &ticket, &len);
		if (version == TLS1_3_VERSION)
			ck_assert(len != before_len || memcmp(ticket, before, len) != 0);
		ck_assert_int_eq(SSL_get_verify_result(c.ssl), X509_V_OK);
		free_ends(&c, &s);
	}

	/* A failed connection that held the kept session makes the slot forget it. */
	ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls, "rsa.example.com");
	gw_tls_session_slot_apply(&slot, ssl);
	ck_assert_ptr_ne(SSL_get_session(ssl), slot.session); /* a copy */
	gw_tls_session_slot_forget(&slot, NULL);
	ck_assert_ptr_nonnull(slot.session);
	gw_tls_session_slot_forget(&slot, ssl);
	ck_assert_ptr_null(slot.session);
	SSL_free(ssl);
	/* the slot fills again */
	{
		struct end c = {.ssl = gw_tls_client_ssl_new(cfg->upstreams[0].tls,
		                                             "rsa.example.com")},
		           s = {.ssl = gw_tls_server_ssl_new(cfg->listens[0].tls)};

		SSL_set_max_proto_version(c.ssl, version);
		ck_assert(handshake(&c, &s));
		ck_assert_uint_eq(exchange(&c, &s), 0);
		gw_tls_session_slot_save(&slot, c.ssl);
		ck_assert_ptr_nonnull(slot.session);
		free_ends(&c, &s);
	}

	/* A session is never offered on a context it did not come from. */
	other = up_config("rsa.pem", "rsa.key", ca);
	ssl = gw_tls_client_ssl_new(other->upstreams[0].tls, "rsa.example.com");
	gw_tls_session_slot_apply(&slot, ssl);
	ck_assert_ptr_null(slot.session);
	ck_assert_ptr_null(SSL_get_session(ssl));
	SSL_free(ssl);
	gw_config_unref(other);
	gw_tls_session_slot_free(&slot);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(empty_upstream_tls_means_system_cas_and_verification)
{
	struct gw_config *cfg = up_config("rsa.pem", "rsa.key", "");
	const struct gw_tls_upstream_conf *tls = cfg->upstreams[0].tls;
	char reason[256];

	ck_assert_ptr_nonnull(tls);
	ck_assert(tls->verify);
	ck_assert_ptr_null(tls->ca);
	ck_assert_ptr_null(tls->server_name);
	ck_assert_ptr_nonnull(tls->ctx);
	/* the test CA is not a system CA */
	ck_assert(!upstream_handshake(cfg, "rsa.example.com", reason, sizeof(reason)));
	ck_assert_str_eq(reason,
	                 "certificate verification failed: unable to get local issuer certificate");
	gw_config_unref(cfg);
}
END_TEST

START_TEST(address_host_is_the_host_part)
{
	char buf[64];

	ck_assert_str_eq(gw_tls_address_host("api.internal:443", buf, sizeof(buf)), "api.internal");
	ck_assert_str_eq(gw_tls_address_host("10.0.0.1:8443", buf, sizeof(buf)), "10.0.0.1");
	ck_assert_str_eq(gw_tls_address_host("[::1]:443", buf, sizeof(buf)), "::1");
	ck_assert_ptr_null(gw_tls_address_host("a-rather-long-host-name.example:1", buf, 8));
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

static void add(Suite *s, const char *name, const TTest *test, int loops)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, 60);
	if (loops > 1)
		tcase_add_loop_test(tc, test, 0, loops);
	else
		tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");

	add(s, "missing_or_unreadable_files_are_errors_at_their_path",
	    missing_or_unreadable_files_are_errors_at_their_path, 1);
	add(s, "files_that_are_not_pem_certificates_or_keys_are_errors",
	    files_that_are_not_pem_certificates_or_keys_are_errors, 1);
	add(s, "key_that_does_not_match_the_certificate_is_an_error_at_the_key",
	    key_that_does_not_match_the_certificate_is_an_error_at_the_key, 1);
	add(s, "certificate_openssl_refuses_is_an_error_with_its_reason",
	    certificate_openssl_refuses_is_an_error_with_its_reason, 1);
	add(s, "second_certificate_errors_name_it", second_certificate_errors_name_it, 1);
	add(s, "upstream_file_errors_point_at_ca_cert_and_key",
	    upstream_file_errors_point_at_ca_cert_and_key, 1);
	add(s, "expired_or_future_certificate_is_a_warning_not_an_error",
	    expired_or_future_certificate_is_a_warning_not_an_error, 1);
	add(s, "server_name_the_certificate_does_not_cover_is_a_warning",
	    server_name_the_certificate_does_not_cover_is_a_warning, 1);
	add(s, "good_files_load_without_a_word", good_files_load_without_a_word, 1);
	add(s, "every_listen_tls_key_is_stored", every_listen_tls_key_is_stored, 1);
	add(s, "sni_picks_the_certificate_by_name", sni_picks_the_certificate_by_name, 1);
	add(s, "full_chain_is_sent", full_chain_is_sent, 1);
	add(s, "alpn_selects_http11_and_lets_h2_only_clients_through",
	    alpn_selects_http11_and_lets_h2_only_clients_through, 1);
	add(s, "tls11_is_refused_and_min_version_13_refuses_12",
	    tls11_is_refused_and_min_version_13_refuses_12, 1);
	add(s, "default_ciphers_serve_rsa_and_ecdsa_over_tls12",
	    default_ciphers_serve_rsa_and_ecdsa_over_tls12, 1);
	add(s, "server_info_of_plain_http_is_dashes", server_info_of_plain_http_is_dashes, 1);
	add(s, "ticket_resumes_after_one_rotation_not_after_two",
	    ticket_resumes_after_one_rotation_not_after_two, 2);
	add(s, "ticket_resumes_on_the_default_certificate_too",
	    ticket_resumes_on_the_default_certificate_too, 1);
	add(s, "session_tickets_false_means_no_resumption",
	    session_tickets_false_means_no_resumption, 2);
	add(s, "contexts_outlive_their_snapshot", contexts_outlive_their_snapshot, 1);
	add(s, "worker_threads_share_contexts_and_ticket_keys",
	    worker_threads_share_contexts_and_ticket_keys, 2);
	add(s, "upstream_verifies_chain_and_host_name", upstream_verifies_chain_and_host_name, 1);
	add(s, "upstream_checks_ip_literals_against_ip_names",
	    upstream_checks_ip_literals_against_ip_names, 1);
	add(s, "upstream_refuses_an_unknown_ca_unless_verify_is_off",
	    upstream_refuses_an_unknown_ca_unless_verify_is_off, 1);
	add(s, "upstream_server_name_overrides_the_host", upstream_server_name_overrides_the_host,
	    1);
	add(s, "upstream_sends_sni_for_names_only", upstream_sends_sni_for_names_only, 1);
	add(s, "upstream_mutual_tls", upstream_mutual_tls, 1);
	add(s, "handshake_reason_names_plain_http_and_silent_close",
	    handshake_reason_names_plain_http_and_silent_close, 1);
	add(s, "session_slot_reuses_the_newest_session", session_slot_reuses_the_newest_session, 2);
	add(s, "empty_upstream_tls_means_system_cas_and_verification",
	    empty_upstream_tls_means_system_cas_and_verification, 1);
	add(s, "address_host_is_the_host_part", address_host_is_the_host_part, 1);
	return s;
}

int main(void)
{
	int rc;

	make_files();
	rc = gw_test_run_suite(tls_suite(), CK_FORK_GETENV);
	remove_files();
	return rc;
}

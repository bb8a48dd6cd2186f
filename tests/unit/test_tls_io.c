/*
 * TLS over a caller-driven non-blocking socket (gateway/tls/tls_io.h), and
 * the log line rate limit its users share (gateway/util/log_limit.h).
 *
 * Each test joins a client and a server by a non-blocking AF_UNIX socket
 * pair and steps them in turn on one thread, so every want (read, write)
 * is a real EAGAIN from a real socket. The client is what the gateway
 * uses: the upstream context built by gw_tls_client_build from a `tls`
 * section (a CA file written here) and an SSL from gw_tls_peer_ssl_new.
 * The server is a plain OpenSSL server. The keys and certificates (a test
 * CA, an unrelated CA, a server certificate for api.test and 127.0.0.1)
 * are made at test time with the OpenSSL API; nothing secret is committed.
 *
 * What is proven: the handshake verifies and says why it failed (host
 * name, unknown CA, a plain-HTTP server); a server's refusal of the
 * client certificate after a TLS 1.3 handshake is found by the first read
 * with its reason; reads stop at their limit with the rest pending, and
 * hand back the bytes before an EOF in the same call; a TCP close without
 * close_notify is an EOF (close-delimited bodies); writes are partial
 * under a full socket and resume from a moved buffer; a closed
 * connection's session resumes (also after the server's EOF); the thread's OpenSSL
 * error queue is empty after every call; the peer copies what it needs
 * from the conf; and the log limit lets one line per interval through,
 * counting the rest exactly once, also from many threads at once.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gateway/config/config.h"
#include "gateway/tls/tls_client.h"
#include "gateway/tls/tls_io.h"
#include "gateway/util/log_limit.h"
#include "check_suite.h"
#include "test_x509.h"

/* ---- keys and certificates ----------------------------------------------- */

struct cred {
	EVP_PKEY *key;
	X509 *cert;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	ck_assert_msg(gw_test_x509_add_ext(x, issuer, nid, value), "extension %s", value);
}

/* A P-256 key and a certificate for it: a CA (issuer NULL: self-signed) or
 * a server certificate for san signed by issuer. */
static struct cred make_cred(const char *cn, const struct cred *issuer, const char *san)
{
	static long serial = 1;
	struct cred c = {.key = EVP_EC_gen("P-256"), .cert = X509_new()};
	X509_NAME *name = X509_get_subject_name(c.cert);

	ck_assert_ptr_nonnull(c.key);
	X509_set_version(c.cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c.cert), serial++);
	X509_gmtime_adj(X509_getm_notBefore(c.cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c.cert), 86400);
	X509_set_pubkey(c.cert, c.key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c.cert, issuer ? X509_get_subject_name(issuer->cert) : name);
	if (!issuer) {
		add_ext(c.cert, c.cert, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c.cert, c.cert, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(c.cert, issuer->cert, NID_basic_constraints, "CA:FALSE");
		add_ext(c.cert, issuer->cert, NID_subject_alt_name, san);
	}
	ck_assert_int_gt(X509_sign(c.cert, issuer ? issuer->key : c.key, EVP_sha256()), 0);
	return c;
}

static void free_cred(struct cred *c)
{
	EVP_PKEY_free(c->key);
	X509_free(c->cert);
}

/* ---- the two ends ---------------------------------------------------------- */

struct pair {
	struct cred ca, other_ca, server;
	char ca_path[64], other_ca_path[64];
	SSL_CTX *sctx;
	struct gw_tls_upstream_conf conf; /* the client side, as the config would build it */
	struct gw_tls_peer *peer;
	int cfd, sfd;
	SSL *client, *server_ssl;
};

static struct pair P;

static void on_problem(void *arg, const struct gw_tls_problem *p)
{
	(void)arg;
	ck_abort_msg("gw_tls_client_build: %s", p->msg);
}

static void write_pem(char *path, size_t size, const struct cred *c)
{
	FILE *f;
	int fd;

	snprintf(path, size, "/tmp/test_tls_io-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	PEM_write_X509(f, c->cert);
	fclose(f);
}

static void setup(void)
{
	P.ca = make_cred("test CA", NULL, NULL);
	P.other_ca = make_cred("other CA", NULL, NULL);
	P.server = make_cred("api.test", &P.ca, "DNS:api.test,IP:127.0.0.1");
	write_pem(P.ca_path, sizeof(P.ca_path), &P.ca);
	write_pem(P.other_ca_path, sizeof(P.other_ca_path), &P.other_ca);
	P.sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_use_certificate(P.sctx, P.server.cert);
	SSL_CTX_use_PrivateKey(P.sctx, P.server.key);
	P.conf = (struct gw_tls_upstream_conf){.ca = P.ca_path, .verify = true};
	P.cfd = P.sfd = -1;
}

static void teardown(void)
{
	SSL_free(P.server_ssl);
	gw_tls_peer_free(P.peer);
	gw_tls_client_release(&P.conf);
	SSL_CTX_free(P.sctx);
	if (P.cfd >= 0)
		close(P.cfd);
	if (P.sfd >= 0)
		close(P.sfd);
	unlink(P.ca_path);
	unlink(P.other_ca_path);
	free_cred(&P.ca);
	free_cred(&P.other_ca);
	free_cred(&P.server);
}

/* Builds the client context from P.conf (after a test changed it). */
static void build_client(void)
{
	struct gw_tls_report report = {.problem = on_problem};

	gw_tls_client_release(&P.conf);
	ck_assert_int_eq(gw_tls_client_build(&P.conf, &report), 0);
	gw_tls_peer_free(P.peer);
	P.peer = gw_tls_peer_new(&P.conf, "127.0.0.1:8443");
}

/* A new socket pair, a client SSL on one end and a server SSL on the other. */
static void connect_pair(void)
{
	int fds[2];

	if (P.cfd >= 0)
		close(P.cfd);
	if (P.sfd >= 0)
		close(P.sfd);
	SSL_free(P.server_ssl);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	P.cfd = fds[0];
	P.sfd = fds[1];
	P.client = gw_tls_peer_ssl_new(P.peer, P.cfd);
	ck_assert_ptr_nonnull(P.client);
	P.server_ssl = SSL_new(P.sctx);
	SSL_set_fd(P.server_ssl, P.sfd);
	SSL_set_accept_state(P.server_ssl);
}

/* One server handshake step: 1 done, 0 wants more, -1 failed. */
static int server_step(void)
{
	int r = SSL_do_handshake(P.server_ssl);

	if (r == 1)
		return 1;
	switch (SSL_get_error(P.server_ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

/* Steps both ends until the client's handshake ends; its last status. */
static enum gw_tls_io handshake(char *why, size_t len)
{
	enum gw_tls_io st = GW_TLS_IO_WANT_READ;
	int server = 0;

	for (int i = 0; i < 100; i++) {
		st = gw_tls_io_handshake(P.client, why, len);
		ck_assert_int_eq(ERR_peek_error(), 0);
		if (server == 0)
			server = server_step();
		if (st == GW_TLS_IO_OK || st == GW_TLS_IO_ERROR || st == GW_TLS_IO_EOF)
			break;
	}
	/* The server may need one more step (TLS 1.3: the client Finished). */
	for (int i = 0; i < 10 && server == 0 && st == GW_TLS_IO_OK; i++)
		server = server_step();
	return st;
}

static void handshake_ok(void)
{
	char why[256] = "";

	ck_assert_msg(handshake(why, sizeof(why)) == GW_TLS_IO_OK, "handshake failed: %s", why);
}

/* Writes len bytes from the server (all of them: the socket has room). */
static void server_write(const void *buf, size_t len)
{
	size_t n = 0;

	ck_assert_int_eq(SSL_write_ex(P.server_ssl, buf, len, &n), 1);
	ck_assert_uint_eq(n, len);
}

/* Everything the server can read now. */
static size_t server_read(char *buf, size_t len)
{
	size_t got = 0, n;

	while (got < len && SSL_read_ex(P.server_ssl, buf + got, len - got, &n) == 1)
		got += n;
	ERR_clear_error();
	return got;
}

static void fill(char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)((i * 131 + seed) % 251);
}

/* ---- handshakes ------------------------------------------------------------ */

START_TEST(handshake_verifies_and_data_goes_both_ways)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	static char big[100000], got[100000];
	char req[64];
	size_t n, total = 0;

	build_client();
	connect_pair();
	handshake_ok();
	ck_assert_int_eq(SSL_get_verify_result(P.client), X509_V_OK);

	evbuffer_add_printf(out, "GET / HTTP/1.1\r\n\r\n");
	ck_assert_int_eq(gw_tls_io_write(P.client, out), GW_TLS_IO_OK);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	ck_assert_uint_eq(server_read(req, sizeof(req)), 18);
	ck_assert(memcmp(req, "GET / HTTP/1.1\r\n\r\n", 18) == 0);

	fill(big, sizeof(big), 7);
	server_write(big, sizeof(big));
	for (int i = 0; i < 100 && total < sizeof(big); i++) {
		enum gw_tls_io st = gw_tls_io_read(P.client, in, 65536, &n);

		ck_assert(st == GW_TLS_IO_OK || st == GW_TLS_IO_WANT_READ);
		total += n;
	}
	ck_assert_uint_eq(total, sizeof(big));
	evbuffer_remove(in, got, sizeof(got));
	ck_assert(memcmp(big, got, sizeof(big)) == 0);
	gw_tls_io_close(P.client, true);
	evbuffer_free(in);
	evbuffer_free(out);
}
END_TEST

START_TEST(host_name_mismatch_fails_with_the_name)
{
	char why[256] = "";

	P.conf.server_name = "wrong.test";
	build_client();
	P.conf.server_name = NULL; /* a string literal: not the conf's to free */
	connect_pair();
	ck_assert_int_eq(handshake(why, sizeof(why)), GW_TLS_IO_ERROR);
	ck_assert_msg(strstr(why, "not valid for host name 'wrong.test'"), "%s", why);
	ck_assert_int_eq(ERR_peek_error(), 0);
	gw_tls_io_close(P.client, false);
}
END_TEST

START_TEST(unknown_ca_fails_with_the_reason)
{
	char why[256] = "";

	P.conf.ca = P.other_ca_path;
	build_client();
	connect_pair();
	ck_assert_int_eq(handshake(why, sizeof(why)), GW_TLS_IO_ERROR);
	ck_assert_msg(strstr(why, "unable to get local issuer certificate"), "%s", why);
	ck_assert_int_eq(ERR_peek_error(), 0);
	gw_tls_io_close(P.client, false);
}
END_TEST

START_TEST(plain_http_server_fails_as_not_tls)
{
	const char *answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	char why[256] = "";
	enum gw_tls_io st;

	build_client();
	connect_pair();
	ck_assert_int_eq(gw_tls_io_handshake(P.client, why, sizeof(why)), GW_TLS_IO_WANT_READ);
	ck_assert_int_eq(write(P.sfd, answer, strlen(answer)), (ssize_t)strlen(answer));
	st = gw_tls_io_handshake(P.client, why, sizeof(why));
	ck_assert_int_eq(st, GW_TLS_IO_ERROR);
	ck_assert_msg(strstr(why, "is the server speaking TLS?"), "%s", why);
	gw_tls_io_close(P.client, false);
}
END_TEST

START_TEST(close_during_the_handshake_is_an_error)
{
	char why[256] = "";

	build_client();
	connect_pair();
	ck_assert_int_eq(gw_tls_io_handshake(P.client, why, sizeof(why)), GW_TLS_IO_WANT_READ);
	close(P.sfd);
	P.sfd = -1;
	ck_assert_int_eq(gw_tls_io_handshake(P.client, why, sizeof(why)), GW_TLS_IO_ERROR);
	ck_assert_msg(strstr(why, "closed"), "%s", why);
	gw_tls_io_close(P.client, false);
}
END_TEST

/*
 * TLS 1.3: the client's handshake is over before the server has looked at
 * the (missing) client certificate; the refusal is an alert the first
 * read finds, with errno EPROTO and its reason.
 */
START_TEST(client_certificate_refusal_is_found_by_the_first_read)
{
	struct evbuffer *in = evbuffer_new();
	char why[256] = "";
	enum gw_tls_io st;
	size_t n;

	SSL_CTX_set_verify(P.sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	build_client();
	connect_pair();
	ck_assert_int_eq(handshake(why, sizeof(why)), GW_TLS_IO_OK);
	ck_assert_int_eq(server_step(), -1); /* refused: the alert is on its way */
	errno = 0;
	st = gw_tls_io_read(P.client, in, 65536, &n);
	ck_assert_int_eq(st, GW_TLS_IO_ERROR);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(ERR_peek_error(), 0);
	gw_tls_io_why(P.client, why, sizeof(why));
	ck_assert_msg(strstr(why, "requires a client certificate"), "%s", why);
	gw_tls_io_close(P.client, false);
	evbuffer_free(in);
}
END_TEST

/* ---- reads ------------------------------------------------------------------- */

/*
 * A read stops at its limit; the rest stays inside the SSL (decrypted or
 * read ahead), which SSL_has_pending reports: no socket event would.
 */
START_TEST(read_stops_at_its_limit_and_the_rest_is_pending)
{
	struct evbuffer *in = evbuffer_new();
	static char data[48 * 1024];
	enum gw_tls_io st;
	size_t n, total;

	build_client();
	connect_pair();
	handshake_ok();
	fill(data, sizeof(data), 3);
	server_write(data, sizeof(data));

	st = gw_tls_io_read(P.client, in, 1000, &n);
	ck_assert_int_eq(st, GW_TLS_IO_OK);
	ck_assert_uint_eq(n, 1000);
	ck_assert(SSL_has_pending(P.client));
	total = n;
	while (total < sizeof(data)) {
		st = gw_tls_io_read(P.client, in, 4096, &n);
		ck_assert_msg(n > 0, "bytes left inside the SSL: %zu of %zu read", total,
		              sizeof(data));
		total += n;
	}
	ck_assert_int_eq(gw_tls_io_read(P.client, in, 4096, &n), GW_TLS_IO_WANT_READ);
	ck_assert_uint_eq(n, 0);
	ck_assert(!SSL_has_pending(P.client));
	ck_assert_uint_eq(evbuffer_get_length(in), sizeof(data));
	gw_tls_io_close(P.client, true);
	evbuffer_free(in);
}
END_TEST

/*
 * The end of a close-delimited body: the bytes, then the EOF (in the same
 * call when the bytes were inside the SSL already, in the next one when
 * they came with the read that emptied the socket).
 */
START_TEST(tcp_close_without_close_notify_is_eof_after_the_bytes)
{
	struct evbuffer *in = evbuffer_new();
	enum gw_tls_io st;
	size_t n;

	build_client();
	connect_pair();
	handshake_ok();
	server_write("tail", 4);
	close(P.sfd); /* no close_notify */
	P.sfd = -1;
	st = gw_tls_io_read(P.client, in, 65536, &n);
	ck_assert(st == GW_TLS_IO_EOF || st == GW_TLS_IO_WANT_READ);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(gw_tls_io_read(P.client, in, 65536, &n), GW_TLS_IO_EOF);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(gw_tls_io_read(P.client, in, 65536, &n), GW_TLS_IO_EOF);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(ERR_peek_error(), 0);
	gw_tls_io_close(P.client, true); /* the server is gone: no close_notify written */
	evbuffer_free(in);
}
END_TEST

START_TEST(close_notify_is_eof)
{
	char buf[16];
	size_t n;

	build_client();
	connect_pair();
	handshake_ok();
	server_write("last", 4);
	SSL_shutdown(P.server_ssl);
	/* both records arrive with one read(): the data, then the alert */
	ck_assert_int_eq(gw_tls_io_read_buf(P.client, buf, sizeof(buf), &n), GW_TLS_IO_EOF);
	ck_assert_uint_eq(n, 4);
	gw_tls_io_close(P.client, true);
}
END_TEST

/* ---- writes -------------------------------------------------------------------- */

/*
 * 1 MiB into a socket that takes far less: the write is partial (what was
 * sent is drained) and wants write; it resumes after the server read,
 * from the same bytes at a new address (evbuffer_pullup may move them),
 * until everything arrived intact.
 */
START_TEST(write_is_partial_under_a_full_socket_and_resumes)
{
	struct evbuffer *out = evbuffer_new();
	static char data[1 << 20], got[1 << 20];
	size_t total = 0;
	int small = 8192;
	enum gw_tls_io st;
	bool wanted = false;

	build_client();
	connect_pair();
	handshake_ok();
	setsockopt(P.cfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	fill(data, sizeof(data), 11);
	/* many small chains, as a request's head and body pieces would be */
	for (size_t off = 0; off < sizeof(data); off += 3000)
		evbuffer_add(out, data + off,
		             sizeof(data) - off < 3000 ? sizeof(data) - off : 3000);

	for (int i = 0; i < 100000 && total < sizeof(data); i++) {
		st = gw_tls_io_write(P.client, out);
		ck_assert(st == GW_TLS_IO_OK || st == GW_TLS_IO_WANT_WRITE);
		if (st == GW_TLS_IO_WANT_WRITE) {
			wanted = true;
			ck_assert_uint_gt(evbuffer_get_length(out), 0);
		}
		total += server_read(got + total, sizeof(got) - total);
	}
	ck_assert(wanted);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	ck_assert_uint_eq(total, sizeof(data));
	ck_assert(memcmp(data, got, sizeof(data)) == 0);
	gw_tls_io_close(P.client, true);
	evbuffer_free(out);
}
END_TEST

/* ---- close and sessions ------------------------------------------------------------ */

/* One connection that reads the server's first bytes (and with them, in
 * TLS 1.3, its session tickets), keeps its session in slot, and closes. */
static void connection_saving_session(struct gw_tls_session_slot *slot, bool server_closes)
{
	char buf[16];
	size_t n;

	connect_pair();
	gw_tls_session_slot_apply(slot, P.client);
	handshake_ok();
	server_write("hi", 2);
	if (server_closes) {
		close(P.sfd);
		P.sfd = -1;
	}
	gw_tls_io_read_buf(P.client, buf, sizeof(buf), &n);
	ck_assert_uint_eq(n, 2);
	gw_tls_session_slot_save(slot, P.client);
	ck_assert_ptr_nonnull(slot->session);
}

/*
 * The slot holds the very session of the connection that is closed:
 * closing through gw_tls_io_close leaves it resumable, and the next
 * connection resumes, whether the gateway closed (close_notify sent) or
 * the server did first (a TCP close, nothing sent back).
 */
START_TEST(close_keeps_the_session_resumable)
{
	struct gw_tls_session_slot slot = {0};

	build_client();
	for (int server_closes = 0; server_closes <= 1; server_closes++) {
		connection_saving_session(&slot, server_closes);
		gw_tls_io_close(P.client, !server_closes);
		ck_assert(SSL_SESSION_is_resumable(slot.session));

		connect_pair();
		gw_tls_session_slot_apply(&slot, P.client);
		handshake_ok();
		ck_assert_msg(SSL_session_reused(P.client), "server_closes=%d", server_closes);
		gw_tls_io_close(P.client, true);
	}
	gw_tls_session_slot_free(&slot);
}
END_TEST

/* ---- the peer ------------------------------------------------------------------------ */

START_TEST(peer_copies_what_it_needs_and_holds_the_context)
{
	struct gw_tls_upstream_conf conf = {.ca = P.ca_path, .verify = true};
	struct gw_tls_report report = {.problem = on_problem};
	struct gw_tls_peer *peer;
	char name[] = "api.test";

	ck_assert_int_eq(gw_tls_client_build(&conf, &report), 0);
	conf.server_name = name;
	peer = gw_tls_peer_new(&conf, "[::1]:8443");
	conf.server_name = NULL;
	ck_assert_str_eq(peer->host, "::1");
	ck_assert_str_eq(peer->server_name, "api.test");
	ck_assert(peer->server_name != name);
	ck_assert(peer->verify);
	gw_tls_client_release(&conf); /* the snapshot goes; the peer still works */
	P.peer = peer;
	connect_pair();
	handshake_ok();
	gw_tls_io_close(P.client, true);

	peer = gw_tls_peer_new(&(struct gw_tls_upstream_conf){.verify = false}, "10.0.0.1:443");
	ck_assert_ptr_null(peer->ctx); /* a conf that was not built: no SSL */
	ck_assert_ptr_null(gw_tls_peer_ssl_new(peer, P.cfd));
	gw_tls_peer_free(peer);
	gw_tls_peer_free(NULL);
}
END_TEST

/* ---- the log limit ---------------------------------------------------------------------- */

START_TEST(log_limit_one_line_per_interval_and_counts_the_rest)
{
	struct gw_log_limit l = {0};
	unsigned left = 99;

	ck_assert(gw_log_limit_pass(&l, 5000, 1000, &left));
	ck_assert_uint_eq(left, 0);
	for (int i = 0; i < 7; i++)
		ck_assert(!gw_log_limit_pass(&l, 5000 + (uint64_t)i * 100, 1000, &left));
	ck_assert(gw_log_limit_pass(&l, 6000, 1000, &left));
	ck_assert_uint_eq(left, 7);
	ck_assert(gw_log_limit_pass(&l, 9000, 1000, &left));
	ck_assert_uint_eq(left, 0);
}
END_TEST

#define THREADS 4
#define CALLS   20000

static struct gw_log_limit shared;
static unsigned passes[THREADS];

static void *hammer(void *arg)
{
	unsigned *mine = arg, left;

	for (int i = 0; i < CALLS; i++)
		if (gw_log_limit_pass(&shared, 1000, 1000, &left))
			(*mine)++;
	return NULL;
}

START_TEST(log_limit_from_many_threads_passes_once_and_counts_every_other)
{
	pthread_t t[THREADS];
	unsigned total = 0, left;

	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, hammer, &passes[i]);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		total += passes[i];
	}
	ck_assert_uint_eq(total, 1);
	ck_assert(gw_log_limit_pass(&shared, 2000, 1000, &left));
	ck_assert_uint_eq(left, THREADS * CALLS - 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls_io");

	gw_test_add_fixture_case(s, "handshake_verifies_and_data_goes_both_ways",
	                         handshake_verifies_and_data_goes_both_ways, 10, setup, teardown);
	gw_test_add_fixture_case(s, "host_name_mismatch_fails_with_the_name",
	                         host_name_mismatch_fails_with_the_name, 10, setup, teardown);
	gw_test_add_fixture_case(s, "unknown_ca_fails_with_the_reason",
	                         unknown_ca_fails_with_the_reason, 10, setup, teardown);
	gw_test_add_fixture_case(s, "plain_http_server_fails_as_not_tls",
	                         plain_http_server_fails_as_not_tls, 10, setup, teardown);
	gw_test_add_fixture_case(s, "close_during_the_handshake_is_an_error",
	                         close_during_the_handshake_is_an_error, 10, setup, teardown);
	gw_test_add_fixture_case(s, "client_certificate_refusal_is_found_by_the_first_read",
	                         client_certificate_refusal_is_found_by_the_first_read, 10, setup,
	                         teardown);
	gw_test_add_fixture_case(s, "read_stops_at_its_limit_and_the_rest_is_pending",
	                         read_stops_at_its_limit_and_the_rest_is_pending, 10, setup,
	                         teardown);
	gw_test_add_fixture_case(s, "tcp_close_without_close_notify_is_eof_after_the_bytes",
	                         tcp_close_without_close_notify_is_eof_after_the_bytes, 10, setup,
	                         teardown);
	gw_test_add_fixture_case(s, "close_notify_is_eof", close_notify_is_eof, 10, setup,
	                         teardown);
	gw_test_add_fixture_case(s, "write_is_partial_under_a_full_socket_and_resumes",
	                         write_is_partial_under_a_full_socket_and_resumes, 20, setup,
	                         teardown);
	gw_test_add_fixture_case(s, "close_keeps_the_session_resumable",
	                         close_keeps_the_session_resumable, 10, setup, teardown);
	gw_test_add_fixture_case(s, "peer_copies_what_it_needs_and_holds_the_context",
	                         peer_copies_what_it_needs_and_holds_the_context, 10, setup,
	                         teardown);
	gw_test_add_case(s, "log_limit_one_line_per_interval_and_counts_the_rest",
	                 log_limit_one_line_per_interval_and_counts_the_rest,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "log_limit_from_many_threads_passes_once_and_counts_every_other",
	                 log_limit_from_many_threads_passes_once_and_counts_every_other,
	                 GW_TEST_DEFAULT_TIMEOUT);
	return gw_test_run_suite(s, CK_FORK_GETENV);
}

/*
 * TLS over a non-blocking socket driven by the caller (tls_io.h).
 */
#include "tls_io.h"
#include "tls_client.h"

#include <errno.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../util/alloc.h"

/* Plaintext of one TLS record: what one SSL_write turns into one record. */
#define GW_TLS_RECORD 16384
/*
 * OpenSSL's read buffer with read-ahead: about four records per read()
 * rather than one. Measured through the gateway on 1 MiB responses from
 * nginx: half the read() calls, about 5% less CPU per response. The
 * buffer is held only while it has bytes (SSL_MODE_RELEASE_BUFFERS on
 * the context), not by idle connections.
 */
#define GW_TLS_READ_BUFFER (64 * 1024)

/* The OpenSSL error behind this thread's last GW_TLS_IO_ERROR (gw_tls_io_why);
 * 0: none, or a socket error without one. */
static _Thread_local unsigned long last_error;

struct gw_tls_peer *gw_tls_peer_new(const struct gw_tls_upstream_conf *tls, const char *address)
{
	struct gw_tls_peer *peer = gw_calloc(1, sizeof(*peer));
	char host[256];

	if (tls->ctx && SSL_CTX_up_ref(tls->ctx) == 1)
		peer->ctx = tls->ctx;
	peer->server_name = tls->server_name ? gw_strdup(tls->server_name) : NULL;
	peer->verify = tls->verify;
	if (gw_tls_address_host(address, host, sizeof(host)))
		peer->host = gw_strdup(host);
	return peer;
}

void gw_tls_peer_free(struct gw_tls_peer *peer)
{
	if (!peer)
		return;
	SSL_CTX_free(peer->ctx);
	free(peer->server_name);
	free(peer->host);
	free(peer);
}

SSL *gw_tls_peer_ssl_new(const struct gw_tls_peer *peer, int fd)
{
	/* gw_tls_client_ssl_new reads the context, server_name and verify of
	 * a conf: the peer's copies are exactly those. */
	struct gw_tls_upstream_conf conf = {
	    .ctx = peer->ctx, .server_name = peer->server_name, .verify = peer->verify};
	SSL *ssl;

	ERR_clear_error();
	ssl = gw_tls_client_ssl_new(&conf, peer->host);
	if (ssl && SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		ssl = NULL;
	}
	if (ssl) {
		SSL_set_mode(ssl,
		             SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_set_read_ahead(ssl, 1);
		SSL_set_default_read_buffer_len(ssl, GW_TLS_READ_BUFFER);
	}
	ERR_clear_error();
	return ssl;
}

/*
 * What a failed call (r from SSL_*_ex or SSL_do_handshake) waits for.
 * err: errno right after the call, kept for GW_TLS_IO_ERROR (ECONNRESET
 * when the socket gave none: a close in the middle of a record). The
 * error queue is left as it is: the handshake reads its reason from it.
 *
 * With SSL_OP_IGNORE_UNEXPECTED_EOF on the context (tls_client.c) a TCP
 * close without close_notify is SSL_ERROR_ZERO_RETURN like a
 * close_notify: the end of a close-delimited body.
 */
static enum gw_tls_io status_of(SSL *ssl, int r, int err)
{
	last_error = ERR_peek_error();
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return GW_TLS_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return GW_TLS_IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return GW_TLS_IO_EOF;
	case SSL_ERROR_SYSCALL:
		errno = err ? err : ECONNRESET;
		return GW_TLS_IO_ERROR;
	default:
		errno = EPROTO;
		return GW_TLS_IO_ERROR;
	}
}

enum gw_tls_io gw_tls_io_handshake(SSL *ssl, char *why, size_t why_len)
{
	enum gw_tls_io st;
	int r, err;

	ERR_clear_error();
	r = SSL_do_handshake(ssl);
	if (r == 1)
		return GW_TLS_IO_OK;
	err = errno;
	st = status_of(ssl, r, err);
	if (st == GW_TLS_IO_WANT_READ || st == GW_TLS_IO_WANT_WRITE)
		return st;
	err = st == GW_TLS_IO_ERROR ? errno : ECONNRESET; /* EOF: closed during the handshake */
	gw_tls_verify_reason(ssl, why, why_len);          /* empties the queue */
	errno = err;
	return GW_TLS_IO_ERROR;
}

enum gw_tls_io gw_tls_io_read_buf(SSL *ssl, void *buf, size_t len, size_t *nread)
{
	enum gw_tls_io st = GW_TLS_IO_OK;
	size_t got = 0;

	ERR_clear_error();
	while (got < len) {
		size_t n = 0;

		if (SSL_read_ex(ssl, (char *)buf + got, len - got, &n) != 1) {
			st = status_of(ssl, 0, errno);
			break;
		}
		got += n;
		/* Nothing left inside the SSL: more can only come from the
		 * socket, whose event will say so. Asking now would cost a
		 * read() that mostly fails with EAGAIN. */
		if (got < len && !SSL_has_pending(ssl)) {
			st = GW_TLS_IO_WANT_READ;
			break;
		}
	}
	ERR_clear_error();
	*nread = got;
	return st;
}

enum gw_tls_io gw_tls_io_read(SSL *ssl, struct evbuffer *in, size_t max, size_t *nread)
{
	struct evbuffer_iovec vec[2];
	enum gw_tls_io st = GW_TLS_IO_OK;
	size_t total = 0;
	int nvec, used = 0;

	nvec = evbuffer_reserve_space(in, (ev_ssize_t)max, vec, 2);
	for (int i = 0; i < nvec && st == GW_TLS_IO_OK && total < max; i++) {
		size_t want = vec[i].iov_len < max - total ? vec[i].iov_len : max - total;
		size_t n;

		st = gw_tls_io_read_buf(ssl, vec[i].iov_base, want, &n);
		vec[i].iov_len = n;
		total += n;
		if (n > 0)
			used = i + 1;
	}
	evbuffer_commit_space(in, vec, used);
	*nread = total;
	return st;
}

enum gw_tls_io gw_tls_io_send(SSL *ssl, const void *buf, size_t len, size_t *nsent)
{
	enum gw_tls_io st = GW_TLS_IO_OK;
	size_t sent = 0;

	ERR_clear_error();
	while (sent < len) {
		size_t n = 0;

		if (SSL_write_ex(ssl, (const char *)buf + sent, len - sent, &n) != 1) {
			st = status_of(ssl, 0, errno);
			/* a close_notify from the server: it reads no more */
			if (st == GW_TLS_IO_EOF) {
				errno = EPIPE;
				st = GW_TLS_IO_ERROR;
			}
			break;
		}
		sent += n;
	}
	ERR_clear_error();
	*nsent = sent;
	return st;
}

/*
 * Up to one record's worth is made contiguous at a time (evbuffer_pullup
 * is free when the first chain holds it already, as it does for most
 * requests): one SSL_write per record rather than one small record per
 * buffer chain (a request's head and its body are separate chains).
 */
enum gw_tls_io gw_tls_io_write(SSL *ssl, struct evbuffer *out)
{
	size_t len;

	while ((len = evbuffer_get_length(out)) > 0) {
		size_t want = len < GW_TLS_RECORD ? len : GW_TLS_RECORD;
		const unsigned char *p = evbuffer_pullup(out, (ev_ssize_t)want);
		enum gw_tls_io st;
		size_t n;

		st = gw_tls_io_send(ssl, p, want, &n);
		evbuffer_drain(out, n);
		if (st != GW_TLS_IO_OK)
			return st;
	}
	return GW_TLS_IO_OK;
}

const char *gw_tls_io_why(SSL *ssl, char *buf, size_t len)
{
	return gw_tls_handshake_reason(ssl, last_error, buf, len);
}

/*
 * Both shutdown flags are set before SSL_free whether or not close_notify
 * went out: SSL_free calls the session of a connection not shut down a
 * "bad session" and takes it out of the context's session cache, marking
 * it not resumable. The upstream contexts keep no internal cache today
 * (the per-server slots are the cache, tls_client.h), so this only keeps
 * the slots' sessions safe should that ever change. A fatal alert still
 * ends a session: OpenSSL does that when the alert is sent or read.
 */
void gw_tls_io_close(SSL *ssl, bool notify)
{
	if (!ssl)
		return;
	ERR_clear_error();
	if (notify && SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN))
		SSL_shutdown(ssl); /* one try, non-blocking: close_notify goes out or not */
	SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	ERR_clear_error();
	SSL_free(ssl);
}

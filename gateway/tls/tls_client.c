/*
 * TLS to upstream servers (tls_client.h).
 */
#include "tls_client.h"
#include "tls_pem.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static void problem(const struct gw_tls_report *r, bool warning, enum gw_tls_key key,
                    const char *msg)
{
	struct gw_tls_problem p = {.warning = warning, .key = key, .msg = msg};

	r->problem(r->arg, &p);
}

/* The CA bundle into the context's store; every certificate of it. */
static int use_ca(SSL_CTX *ctx, const char *path, const struct gw_tls_report *r)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509) *certs = NULL;
	char why[GW_TLS_WHY_MAX], reason[256];
	int rc = 0;

	if (gw_tls_pem_read_certs(path, &certs, why, sizeof(why)) < 0) {
		problem(r, false, GW_TLS_KEY_CA, why);
		return -1;
	}
	ERR_clear_error();
	for (int i = 0; i < sk_X509_num(certs) && rc == 0; i++) {
		if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) != 1) {
			snprintf(why, sizeof(why), "%s: CA certificate %d refused (%s)", path,
			         i + 1, gw_tls_openssl_reason("refused", reason, sizeof(reason)));
			problem(r, false, GW_TLS_KEY_CA, why);
			rc = -1;
		}
	}
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* The client certificate (mutual TLS): chain and matching key. */
static int use_client_cert(SSL_CTX *ctx, const struct gw_tls_upstream_conf *conf,
                           const struct gw_tls_report *r)
{
	X509 *leaf = gw_tls_use_cert_and_key(ctx, conf->cert, conf->key, 0, r);

	X509_free(leaf);
	return leaf ? 0 : -1;
}

/*
 * Sessions: the client side of session tickets. The internal store is
 * off: the gateway keeps sessions itself, per server (the slots below),
 * since the context is shared by every server of the upstream.
 * RELEASE_BUFFERS: pooled connections mostly idle.
 */
int gw_tls_client_build(struct gw_tls_upstream_conf *conf, const struct gw_tls_report *report)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char why[GW_TLS_WHY_MAX], reason[256];
	bool failed = false;

	conf->ctx = NULL;
	if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		snprintf(why, sizeof(why), "cannot create a TLS context (%s)",
		         gw_tls_openssl_reason("no memory", reason, sizeof(reason)));
		problem(report, false, GW_TLS_KEY_SECTION, why);
		SSL_CTX_free(ctx);
		return -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_set_verify(ctx, conf->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	/* The bundle is read even with verify off: a wrong path is still a
	 * mistake worth reporting before someone turns verify back on. */
	if (conf->ca) {
		if (use_ca(ctx, conf->ca, report) < 0)
			failed = true;
	} else if (conf->verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(why, sizeof(why), "cannot use the system's CA certificates (%s)",
		         gw_tls_openssl_reason("refused", reason, sizeof(reason)));
		problem(report, false, GW_TLS_KEY_SECTION, why);
		failed = true;
	}
	if (conf->cert && conf->key && use_client_cert(ctx, conf, report) < 0)
		failed = true;
	gw_tls_cache_store(SSL_CTX_get_cert_store(ctx));
	if (failed) {
		SSL_CTX_free(ctx);
		return -1;
	}
	conf->ctx = ctx;
	return 0;
}

void gw_tls_client_release(struct gw_tls_upstream_conf *conf)
{
	if (!conf)
		return;
	SSL_CTX_free(conf->ctx);
	conf->ctx = NULL;
}

/* ---- one connection ------------------------------------------------------ */

const char *gw_tls_address_host(const char *address, char *buf, size_t size)
{
	const char *start = address, *end;
	size_t n;

	if (!address)
		return NULL;
	if (address[0] == '[') {
		start = address + 1;
		end = strchr(start, ']');
	} else {
		end = strrchr(address, ':');
	}
	n = end ? (size_t)(end - start) : strlen(start);
	if (n >= size)
		return NULL;
	memcpy(buf, start, n);
	buf[n] = '\0';
	return buf;
}

/* An IPv4 or IPv6 literal (without brackets)? */
static bool is_ip_literal(const char *host)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

SSL *gw_tls_client_ssl_new(const struct gw_tls_upstream_conf *tls, const char *server_host)
{
	const char *name = tls->server_name ? tls->server_name : server_host;
	char host[256];
	size_t n;
	bool ip, ok = true;
	SSL *ssl;

	if (!tls->ctx || !name)
		return NULL;
	/* "[::1]" as well as "::1" */
	n = strlen(name);
	if (name[0] == '[' && n >= 2 && name[n - 1] == ']') {
		name++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(host))
		return NULL;
	memcpy(host, name, n);
	host[n] = '\0';
	ip = is_ip_literal(host);

	ssl = SSL_new(tls->ctx);
	if (!ssl)
		return NULL;
	if (!ip)
		ok = SSL_set_tlsext_host_name(ssl, host) == 1;
	if (ok && tls->verify) {
		if (ip) {
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
		} else {
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set1_host(ssl, host) == 1;
		}
	}
	if (!ok) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

/* ---- sessions ------------------------------------------------------------ */

void gw_tls_session_slot_free(struct gw_tls_session_slot *slot)
{
	SSL_SESSION_free(slot->session);
	SSL_CTX_free(slot->ctx);
	slot->session = NULL;
	slot->ctx = NULL;
}

/*
 * Whether a and b are the same session: the same id. A client's session
 * id is the server's, or the SHA-256 of the ticket. (Not the pointer: a
 * session freed and a new one made can share an address.)
 */
static bool same_session(const SSL_SESSION *a, const SSL_SESSION *b)
{
	unsigned alen, blen;
	const unsigned char *aid = SSL_SESSION_get_id(a, &alen);
	const unsigned char *bid = SSL_SESSION_get_id(b, &blen);

	return alen == blen && memcmp(aid, bid, alen) == 0;
}

void gw_tls_session_slot_save(struct gw_tls_session_slot *slot, SSL *ssl)
{
	SSL_SESSION *current, *copy;
	SSL_CTX *ctx;

	if (!ssl || !SSL_is_init_finished(ssl))
		return;
	current = SSL_get0_session(ssl);
	if (!current || !SSL_SESSION_is_resumable(current))
		return;
	ctx = SSL_get_SSL_CTX(ssl);
	if (slot->session && slot->ctx == ctx && same_session(current, slot->session))
		return;
	copy = SSL_SESSION_dup(current);
	if (!copy || SSL_CTX_up_ref(ctx) != 1) {
		SSL_SESSION_free(copy);
		ERR_clear_error();
		return;
	}
	gw_tls_session_slot_free(slot);
	slot->session = copy;
	slot->ctx = ctx;
}

void gw_tls_session_slot_apply(struct gw_tls_session_slot *slot, SSL *ssl)
{
	SSL_SESSION *copy;

	if (!slot->session)
		return;
	if (slot->ctx != SSL_get_SSL_CTX(ssl)) {
		gw_tls_session_slot_free(slot); /* from another configuration */
		return;
	}
	/* A copy again: a TLS 1.2 resumption makes the session given here the
	 * connection's own, which its close may mark not resumable. */
	copy = SSL_SESSION_dup(slot->session);
	if (!copy || SSL_set_session(ssl, copy) != 1)
		ERR_clear_error();
	SSL_SESSION_free(copy);
}

void gw_tls_session_slot_forget(struct gw_tls_session_slot *slot, const SSL *ssl)
{
	const SSL_SESSION *held = ssl ? SSL_get_session(ssl) : NULL;

	if (slot->session && held && same_session(held, slot->session))
		gw_tls_session_slot_free(slot);
}

/* ---- why a handshake failed ---------------------------------------------- */

/* OpenSSL reasons that deserve plain words; the rest are quoted as they are. */
static const struct {
	int reason;
	const char *words;
} known_reasons[] = {
    {SSL_R_WRONG_VERSION_NUMBER, "is the server speaking TLS?"},
    {SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED, "the server requires a client certificate"},
    {SSL_R_TLSV1_ALERT_UNKNOWN_CA, "the server does not trust the client certificate"},
    {SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, "the server refused the client certificate"},
    {SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, "no TLS version in common with the server"},
    {SSL_R_UNSUPPORTED_PROTOCOL, "no TLS version in common with the server"},
    {SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE, "the server refused the handshake"},
    {SSL_R_UNEXPECTED_EOF_WHILE_READING, "the server closed the connection"},
};

static const char *from_error(unsigned long err, char *buf, size_t len)
{
	const char *reason = ERR_reason_error_string(err);

	for (size_t i = 0; i < sizeof(known_reasons) / sizeof(known_reasons[0]); i++) {
		if (ERR_GET_LIB(err) == ERR_LIB_SSL &&
		    ERR_GET_REASON(err) == known_reasons[i].reason) {
			snprintf(buf, len, "%s (%s)", known_reasons[i].words,
			         reason ? reason : "TLS error");
			return buf;
		}
	}
	if (reason)
		snprintf(buf, len, "%s", reason);
	else
		snprintf(buf, len, "OpenSSL error %lx", err);
	return buf;
}

const char *gw_tls_handshake_reason(SSL *ssl, unsigned long err, char *buf, size_t len)
{
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	X509_VERIFY_PARAM *param = ssl ? SSL_get0_param(ssl) : NULL;

	if (v == X509_V_ERR_HOSTNAME_MISMATCH) {
		const char *host = X509_VERIFY_PARAM_get0_host(param, 0);

		snprintf(buf, len, "certificate is not valid for host name '%s' (%s)",
		         host ? host : "?", X509_verify_cert_error_string(v));
	} else if (v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		char *ip = X509_VERIFY_PARAM_get1_ip_asc(param);

		snprintf(buf, len, "certificate is not valid for IP address %s (%s)", ip ? ip : "?",
		         X509_verify_cert_error_string(v));
		OPENSSL_free(ip);
	} else if (v != X509_V_OK) {
		snprintf(buf, len, "certificate verification failed: %s",
		         X509_verify_cert_error_string(v));
	} else if (err) {
		from_error(err, buf, len);
	} else {
		snprintf(buf, len, "connection closed during the TLS handshake");
	}
	return buf;
}

const char *gw_tls_verify_reason(SSL *ssl, char *buf, size_t len)
{
	unsigned long err = ERR_peek_error();

	gw_tls_handshake_reason(ssl, err, buf, len);
	ERR_clear_error();
	return buf;
}

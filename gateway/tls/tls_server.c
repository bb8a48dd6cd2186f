/*
 * TLS termination contexts (tls_server.h).
 */
#include "tls_server.h"
#include "tls_pem.h"
#include "tls_tickets.h"
#include "../util/alloc.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/*
 * The session id context of every listener context. OpenSSL resumes no
 * session made under another one, so the contexts of a listener (one per
 * certificate) must share it for a ticket to resume whatever SNI chose.
 */
static const unsigned char session_id_context[] = "gateway";

/* ---- cipher lists -------------------------------------------------------- */

/*
 * Tries each name of list alone on a scratch context (split at ':', ','
 * and spaces, as OpenSSL splits it; TLS 1.3 lists at ':' only). Names
 * after '!', '-' or '+' are skipped: they only remove or reorder, and
 * "@STRENGTH", "@SECLEVEL=n" are directives.
 */
static int check_each_name(const char *list, bool tls13, char *why, size_t size)
{
	SSL_CTX *scratch = SSL_CTX_new(TLS_server_method());
	char name[128];
	int rc = 0;

	if (!scratch) {
		snprintf(why, size, "cannot check the list: no memory");
		return -1;
	}
	for (const char *p = list; *p && rc == 0;) {
		size_t n = strcspn(p, tls13 ? ":" : ":, ");
		int ok;

		if (n == 0 || (!tls13 && strchr("!-+@", p[0]))) {
			p += n + (p[n] != '\0');
			continue;
		}
		if (n >= sizeof(name)) {
			snprintf(why, size, "unknown cipher '%.40s...'", p);
			rc = -1;
			break;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		ok = tls13 ? SSL_CTX_set_ciphersuites(scratch, name)
		           : SSL_CTX_set_cipher_list(scratch, name);
		if (ok != 1) {
			if (!tls13 && strncmp(name, "TLS_", 4) == 0)
				snprintf(
				    why, size,
				    "'%s' is a TLS 1.3 cipher suite: list it under 'ciphersuites'",
				    name);
			else
				snprintf(why, size, "unknown cipher%s '%s'", tls13 ? " suite" : "",
				         name);
			rc = -1;
		}
		p += n + (p[n] != '\0');
	}
	ERR_clear_error();
	SSL_CTX_free(scratch);
	return rc;
}

int gw_tls_check_ciphers(const char *list, char *why, size_t size)
{
	SSL_CTX *scratch;
	int ok;

	if (check_each_name(list, false, why, size) < 0)
		return -1;
	scratch = SSL_CTX_new(TLS_server_method());
	ok = scratch && SSL_CTX_set_cipher_list(scratch, list) == 1;
	SSL_CTX_free(scratch);
	ERR_clear_error();
	if (!ok)
		snprintf(why, size, "'%s' selects no cipher", list);
	return ok ? 0 : -1;
}

int gw_tls_check_ciphersuites(const char *list, char *why, size_t size)
{
	return check_each_name(list, true, why, size);
}

/* ---- ALPN ---------------------------------------------------------------- */

/*
 * The gateway speaks HTTP/1.1 only: it picks "http/1.1" when the client
 * offers it. A client that offers only other protocols (h2) gets no ALPN
 * answer (NOACK) rather than a handshake failure: the connection goes on
 * and the client either speaks HTTP/1.1 or closes. The offer is parsed
 * here, length-checked, rather than with SSL_select_next_proto.
 */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const char http11[] = "http/1.1";
	unsigned i = 0;

	(void)ssl;
	(void)arg;
	while (i < inlen) {
		unsigned len = in[i];

		if (len == 0 || len > inlen - i - 1)
			break;
		if (len == sizeof(http11) - 1 && memcmp(in + i + 1, http11, len) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)len;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + len;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* ---- SNI ----------------------------------------------------------------- */

/* One server name: exact ("shop.example.com") or wildcard ("*.example.com"). */
struct sni_name {
	const char *name; /* lower case; for a wildcard, the part after "*." */
	bool wildcard;
	SSL_CTX *ctx; /* one reference; NULL: the default context (no switch) */
};

/*
 * The server names of a listener, owned by its first context (through
 * ex_data, freed with it), so it lives as long as any connection that
 * can still call the SNI callback. It holds references to the other
 * certificates' contexts, never to the first: no cycle.
 */
struct sni_table {
	struct sni_name *names;
	size_t count;
	char *storage; /* every name, NUL-separated */
};

static void sni_table_free(struct sni_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->count; i++)
		SSL_CTX_free(t->names[i].ctx);
	free(t->names);
	free(t->storage);
	free(t);
}

static pthread_once_t sni_index_once = PTHREAD_ONCE_INIT;
static int sni_index = -1;

static void sni_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	sni_table_free(ptr);
}

static void sni_make_index(void)
{
	sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_ex_free);
}

/*
 * Which certificate a server name picks: an exact name first, whatever
 * certificate lists it, then a wildcard "*.example.com", which matches
 * exactly one more label ("a.example.com", not "example.com" nor
 * "a.b.example.com"), as certificate wildcards do. Linear: a listener has
 * a handful of names, and this runs once per full handshake.
 */
static const struct sni_name *sni_lookup(const struct sni_table *t, const char *name)
{
	const char *dot = strchr(name, '.');

	for (size_t i = 0; i < t->count; i++)
		if (!t->names[i].wildcard && strcmp(t->names[i].name, name) == 0)
			return &t->names[i];
	if (!dot || dot == name)
		return NULL;
	for (size_t i = 0; i < t->count; i++)
		if (t->names[i].wildcard && strcmp(t->names[i].name, dot + 1) == 0)
			return &t->names[i];
	return NULL;
}

/* OpenSSL's SNI callback, on the first context: switch certificates. */
static int sni_select(SSL *ssl, int *alert, void *arg)
{
	const struct sni_table *t = arg;
	const char *sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct sni_name *hit;
	char name[256];
	size_t len;

	if (!sent || (len = strlen(sent)) == 0 || len >= sizeof(name))
		return SSL_TLSEXT_ERR_OK; /* the default certificate */
	for (size_t i = 0; i <= len; i++)
		name[i] = (char)tolower((unsigned char)sent[i]);
	hit = sni_lookup(t, name);
	if (!hit || !hit->ctx || SSL_get_SSL_CTX(ssl) == hit->ctx)
		return SSL_TLSEXT_ERR_OK;
	if (SSL_set_SSL_CTX(ssl, hit->ctx) != hit->ctx) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* The table of conf's names, each pointing at its certificate's context. */
static struct sni_table *sni_table_new(const struct gw_tls_listen_conf *conf)
{
	struct sni_table *t = gw_calloc(1, sizeof(*t));
	size_t count = 0, bytes = 0, at = 0;

	for (size_t c = 0; c < conf->ncertificates; c++) {
		count += conf->certificates[c].nserver_names;
		for (size_t n = 0; n < conf->certificates[c].nserver_names; n++)
			bytes += strlen(conf->certificates[c].server_names[n]) + 1;
	}
	t->names = gw_calloc(count ? count : 1, sizeof(*t->names));
	t->storage = gw_malloc(bytes ? bytes : 1);
	for (size_t c = 0; c < conf->ncertificates; c++) {
		const struct gw_tls_cert_conf *cert = &conf->certificates[c];

		for (size_t n = 0; n < cert->nserver_names; n++) {
			const char *src = cert->server_names[n];
			struct sni_name *e = &t->names[t->count++];

			e->wildcard = strncmp(src, "*.", 2) == 0;
			if (e->wildcard)
				src += 2;
			e->name = strcpy(t->storage + at, src);
			at += strlen(src) + 1;
			if (c > 0 && SSL_CTX_up_ref(cert->ctx) == 1)
				e->ctx = cert->ctx;
		}
	}
	return t;
}

/* ---- contexts ------------------------------------------------------------ */

static void problem(const struct gw_tls_report *r, bool warning, enum gw_tls_key key, size_t cert,
                    size_t name, const char *msg)
{
	struct gw_tls_problem p = {
	    .warning = warning, .key = key, .cert = cert, .name = name, .msg = msg};

	r->problem(r->arg, &p);
}

/*
 * A context with everything but the certificate. Options, ALPN and the
 * ticket keys are set on every context alike: after an SNI switch
 * OpenSSL reads some of them from the new context (ALPN) and some from
 * the first (the ticket callback of the session context), so they must
 * agree. SSL_MODE_RELEASE_BUFFERS gives the ~34 KiB of read and write
 * buffers back while a kept-alive connection idles (to be measured
 * against its cost in bench/); ACCEPT_MOVING_WRITE_BUFFER because
 * libevent may retry a blocked SSL_write from a different address.
 */
static SSL_CTX *context_new(const struct gw_tls_listen_conf *conf, struct gw_tls_tickets *tickets,
                            char *why, size_t size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char reason[256];
	int min = conf->min_version == GW_TLS_VERSION_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
	int ok;

	if (!ctx) {
		snprintf(why, size, "cannot create a TLS context (%s)",
		         gw_tls_openssl_reason("no memory", reason, sizeof(reason)));
		return NULL;
	}
	ok = SSL_CTX_set_min_proto_version(ctx, min) == 1 &&
	     SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1 &&
	     SSL_CTX_set_cipher_list(ctx, conf->ciphers) == 1 &&
	     (!conf->ciphersuites || SSL_CTX_set_ciphersuites(ctx, conf->ciphersuites) == 1) &&
	     SSL_CTX_set_session_id_context(ctx, session_id_context,
	                                    sizeof(session_id_context) - 1) == 1;
	if (ok) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
		                             SSL_OP_NO_COMPRESSION);
		SSL_CTX_set_mode(ctx,
		                 SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		if (tickets) {
			ok = gw_tls_tickets_attach(ctx, tickets) == 0;
		} else {
			/* No tickets, and no cache: no resumption at all, so
			 * TLS 1.3 sends no tickets that could never be used. */
			SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
			ok = SSL_CTX_set_num_tickets(ctx, 0) == 1;
		}
	}
	if (!ok) {
		snprintf(why, size, "cannot set up a TLS context (%s)",
		         gw_tls_openssl_reason("refused", reason, sizeof(reason)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Warns about each exact server name the certificate does not cover. */
static void check_names(const struct gw_tls_cert_conf *c, size_t index, X509 *leaf,
                        const struct gw_tls_report *r)
{
	char msg[GW_TLS_WHY_MAX];

	for (size_t n = 0; n < c->nserver_names; n++) {
		const char *name = c->server_names[n];
		int covered;

		/* "*.example.com": does it cover some name one label down? */
		if (strncmp(name, "*.", 2) == 0)
			covered = X509_check_host(leaf, name + 1, 0,
			                          X509_CHECK_FLAG_SINGLE_LABEL_SUBDOMAINS, NULL);
		else
			covered = X509_check_host(leaf, name, 0, 0, NULL);
		ERR_clear_error();
		if (covered == 1)
			continue;
		snprintf(msg, sizeof(msg),
		         "the certificate of %s is not valid for '%s': clients that check it will "
		         "refuse it",
		         c->cert, name);
		problem(r, true, GW_TLS_KEY_SERVER_NAME, index, n, msg);
	}
}

/*
 * Loads certificate index into ctx (gw_tls_use_cert_and_key) and checks
 * that it covers the server names it is chosen for (a warning).
 */
static int use_certificate(SSL_CTX *ctx, const struct gw_tls_cert_conf *c, size_t index,
                           const struct gw_tls_report *r)
{
	X509 *leaf = gw_tls_use_cert_and_key(ctx, c->cert, c->key, index, r);

	if (!leaf)
		return -1;
	check_names(c, index, leaf, r);
	X509_free(leaf);
	return 0;
}

void gw_tls_server_release(struct gw_tls_listen_conf *conf)
{
	if (!conf)
		return;
	for (size_t i = 0; i < conf->ncertificates; i++) {
		SSL_CTX_free(conf->certificates[i].ctx);
		conf->certificates[i].ctx = NULL;
	}
	conf->ctx = NULL;
}

int gw_tls_server_build(struct gw_tls_listen_conf *conf, const struct gw_tls_report *report)
{
	struct gw_tls_tickets *tickets = NULL;
	char why[GW_TLS_WHY_MAX];
	bool failed = false;

	if (conf->session_tickets) {
		tickets = gw_tls_tickets_new(conf->ticket_key_rotation_ms, why, sizeof(why));
		if (!tickets) {
			problem(report, false, GW_TLS_KEY_SECTION, 0, 0, why);
			return -1;
		}
	}
	for (size_t i = 0; i < conf->ncertificates; i++) {
		struct gw_tls_cert_conf *c = &conf->certificates[i];

		c->ctx = context_new(conf, tickets, why, sizeof(why));
		if (!c->ctx) {
			problem(report, false, GW_TLS_KEY_SECTION, i, 0, why);
			failed = true;
			continue;
		}
		if (use_certificate(c->ctx, c, i, report) < 0) {
			SSL_CTX_free(c->ctx);
			c->ctx = NULL;
			failed = true;
		}
	}
	gw_tls_tickets_unref(tickets); /* each context holds its own reference */
	if (!failed && conf->ncertificates > 1) {
		struct sni_table *t = sni_table_new(conf);
		SSL_CTX *first = conf->certificates[0].ctx;

		pthread_once(&sni_index_once, sni_make_index);
		if (sni_index < 0 || SSL_CTX_set_ex_data(first, sni_index, t) != 1) {
			sni_table_free(t);
			problem(report, false, GW_TLS_KEY_SECTION, 0, 0,
			        "cannot set up SNI (OpenSSL refused)");
			failed = true;
		} else {
			SSL_CTX_set_tlsext_servername_callback(first, sni_select);
			SSL_CTX_set_tlsext_servername_arg(first, t);
		}
	}
	if (failed) {
		gw_tls_server_release(conf);
		return -1;
	}
	conf->ctx = conf->certificates[0].ctx;
	return 0;
}

bool gw_tls_server_keep_tickets(struct gw_tls_listen_conf *next,
                                const struct gw_tls_listen_conf *cur)
{
	bool kept = true;

	if (!next || !cur || !next->ctx || !cur->ctx || !next->session_tickets ||
	    !cur->session_tickets || next->ticket_key_rotation_ms != cur->ticket_key_rotation_ms)
		return false;
	for (size_t i = 0; i < next->ncertificates; i++)
		if (gw_tls_tickets_adopt(next->certificates[i].ctx, cur->ctx) < 0)
			kept = false;
	return kept;
}

SSL *gw_tls_server_ssl_new(const struct gw_tls_listen_conf *conf)
{
	SSL *ssl = conf && conf->ctx ? SSL_new(conf->ctx) : NULL;

	if (ssl)
		SSL_set_accept_state(ssl); /* the first SSL_read runs the handshake */
	return ssl;
}

void gw_tls_server_info(const SSL *ssl, const char **version, const char **sni)
{
	const char *name = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;

	*version = ssl ? SSL_get_version(ssl) : "-";
	*sni = name && name[0] ? name : "-";
}

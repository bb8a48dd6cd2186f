/*
 * Session ticket keys (tls_tickets.h): a ring of two keys, current and
 * previous, behind the callback OpenSSL calls to encrypt a new ticket and
 * to decrypt one a client offers.
 */
#include "tls_tickets.h"
#include "tls_pem.h"
#include "../util/alloc.h"
#include "../util/clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

/* One key: its public name (written in clear in each ticket), AES-256 and HMAC-SHA256 keys. */
struct ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
};

struct gw_tls_tickets {
	atomic_int refs;
	uint64_t rotation_ms;
	/* Everything below is read and written under lock, by every worker. */
	pthread_mutex_t lock;
	uint64_t next_rotation_ms; /* when current gives way */
	struct ticket_key current;
	struct ticket_key previous;
	bool has_previous;
};

static int new_key(struct ticket_key *k)
{
	return RAND_bytes(k->name, sizeof(k->name)) == 1 &&
	               RAND_bytes(k->aes, sizeof(k->aes)) == 1 &&
	               RAND_bytes(k->hmac, sizeof(k->hmac)) == 1
	           ? 0
	           : -1;
}

struct gw_tls_tickets *gw_tls_tickets_new(uint64_t rotation_ms, char *why, size_t size)
{
	struct gw_tls_tickets *t = gw_calloc(1, sizeof(*t));
	char reason[256];

	atomic_init(&t->refs, 1);
	pthread_mutex_init(&t->lock, NULL);
	t->rotation_ms = rotation_ms ? rotation_ms : 1;
	t->next_rotation_ms = gw_clock_now_ms() + t->rotation_ms;
	if (new_key(&t->current) < 0) {
		snprintf(why, size, "cannot make a session ticket key (%s)",
		         gw_tls_openssl_reason("no random bytes", reason, sizeof(reason)));
		gw_tls_tickets_unref(t);
		return NULL;
	}
	return t;
}

static struct gw_tls_tickets *tickets_ref(struct gw_tls_tickets *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

void gw_tls_tickets_unref(struct gw_tls_tickets *t)
{
	if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&t->lock);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

/*
 * Under lock. One period over: current becomes previous and a new key is
 * current. Two or more (nobody resumed for that long): both keys are of
 * periods over, so neither survives. A failed RAND_bytes keeps the keys as
 * they are and tries again at the next call.
 */
static void rotate_if_due(struct gw_tls_tickets *t, uint64_t now)
{
	uint64_t periods;
	struct ticket_key fresh;

	if (now < t->next_rotation_ms)
		return;
	periods = (now - t->next_rotation_ms) / t->rotation_ms + 1;
	if (new_key(&fresh) < 0)
		return;
	if (periods == 1) {
		t->previous = t->current;
		t->has_previous = true;
	} else {
		OPENSSL_cleanse(&t->previous, sizeof(t->previous));
		t->has_previous = false;
	}
	t->current = fresh;
	t->next_rotation_ms += periods * t->rotation_ms;
	OPENSSL_cleanse(&fresh, sizeof(fresh));
}

/* ---- OpenSSL's side ------------------------------------------------------ */

static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static int ex_index = -1;

/* ex_data destructor: the SSL_CTX holding a reference is being freed. */
static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	gw_tls_tickets_unref(ptr);
}

/* AES-256-CBC, fetched once: EVP_aes_256_cbc() would make every
 * EVP_*Init_ex look the implementation up again (OpenSSL 3), twice per
 * full handshake. Kept for the life of the process. */
static EVP_CIPHER *ticket_cipher;

static void make_index(void)
{
	ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

static int set_hmac_key(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
	OSSL_PARAM params[3];

	params[0] =
	    OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb).
 * enc = 1: a new ticket; give the current key's name, a random IV, and
 * ready the cipher and MAC. enc = 0: a client's ticket named name; 1 when
 * the current key decrypts it, 2 when the previous one does (OpenSSL then
 * resumes and issues a new ticket under the current key), 0 when no key
 * does (a full handshake), -1 on an internal error. The keys are copied out
 * under the lock so the crypto set-up runs without it.
 *
 * With TLS 1.3 it is always 2: clients use a ticket once (RFC 8446,
 * appendix C.4), so a resumption that brought no new ticket would leave
 * them with one fewer, and every few connections would be a full
 * handshake. OpenSSL issues no TLS 1.3 ticket on a resumption unless told
 * to renew. (nginx does the same.)
 */
static int ticket_key_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                         EVP_MAC_CTX *hctx, int enc)
{
	struct gw_tls_tickets *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index);
	const EVP_CIPHER *cipher = ticket_cipher ? ticket_cipher : EVP_aes_256_cbc();
	struct ticket_key key;
	int found = 0, rc = -1;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	rotate_if_due(t, gw_clock_now_ms());
	if (enc) {
		key = t->current;
		found = 1;
	} else if (memcmp(name, t->current.name, sizeof(key.name)) == 0) {
		key = t->current;
		found = 1;
	} else if (t->has_previous && memcmp(name, t->previous.name, sizeof(key.name)) == 0) {
		key = t->previous;
		found = 2;
	}
	pthread_mutex_unlock(&t->lock);
	if (!found)
		return 0;

	if (enc) {
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) == 1 &&
		    EVP_EncryptInit_ex(cctx, cipher, NULL, key.aes, iv) == 1 &&
		    set_hmac_key(hctx, &key) == 0) {
			memcpy(name, key.name, sizeof(key.name));
			rc = 1;
		}
	} else if (set_hmac_key(hctx, &key) == 0 &&
	           EVP_DecryptInit_ex(cctx, cipher, NULL, key.aes, iv) == 1) {
		rc = SSL_version(ssl) == TLS1_3_VERSION ? 2 : found;
	}
	OPENSSL_cleanse(&key, sizeof(key));
	return rc;
}

int gw_tls_tickets_attach(SSL_CTX *ctx, struct gw_tls_tickets *t)
{
	uint64_t lifetime_s = (2 * t->rotation_ms + 999) / 1000;

	pthread_once(&index_once, make_index);
	if (ex_index < 0 || SSL_CTX_set_ex_data(ctx, ex_index, tickets_ref(t)) != 1) {
		if (ex_index >= 0)
			gw_tls_tickets_unref(t);
		return -1;
	}
	/* The lifetime clients are told, and past which OpenSSL itself refuses
	 * a session: the longest any ticket can still be decrypted. */
	SSL_CTX_set_timeout(ctx, (long)lifetime_s);
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) == 1 ? 0 : -1;
}

int gw_tls_tickets_adopt(SSL_CTX *ctx, const SSL_CTX *from)
{
	struct gw_tls_tickets *mine, *theirs;

	if (ex_index < 0)
		return -1;
	mine = SSL_CTX_get_ex_data(ctx, ex_index);
	theirs = SSL_CTX_get_ex_data(from, ex_index);
	if (!mine || !theirs)
		return -1;
	if (mine == theirs)
		return 0;
	if (SSL_CTX_set_ex_data(ctx, ex_index, tickets_ref(theirs)) != 1) {
		gw_tls_tickets_unref(theirs);
		return -1;
	}
	gw_tls_tickets_unref(mine);
	return 0;
}

/*
 * Session ticket keys of a TLS listener, rotated by the gateway.
 *
 * Why tickets, and not a server-side session cache: a ticket carries the
 * session to the client, encrypted under a key only the gateway knows, so
 * any worker thread can resume it, whichever worker made it, without a
 * cache shared (and locked) across threads, and without a cache per SNI
 * context: every context of a listener shares one key ring, so a session
 * resumes whatever certificate SNI chose. The stateful cache is off.
 *
 * Why rotate: whoever steals a ticket key can decrypt every session whose
 * ticket it encrypted (no forward secrecy for those sessions). Keys live in
 * memory only, are made with RAND_bytes, and every `ticket_key_rotation`
 * the current key is replaced: the new one encrypts new tickets, the one
 * before it still decrypts (and the session gets a fresh ticket under the
 * new key), the one before that is forgotten. A ticket thus resumes for at
 * least one rotation period and at most two.
 *
 * Rotation is lazy: the ticket callback compares the time with the next
 * rotation on every call (one clock read under a short lock), so no timer
 * is needed and an idle listener simply rotates when it is next used,
 * skipping the keys of the periods in between. Time is gw_clock_now_ms(),
 * so tests drive rotation with the fake clock.
 *
 * Ownership: reference counted. The builder holds one reference until it
 * has attached the ring to its contexts; each SSL_CTX it is attached to
 * holds one (through its ex_data, released when the SSL_CTX is freed), so
 * the keys live exactly as long as a context, or a connection using one,
 * can still call the callback, even after the config snapshot is gone.
 */
#ifndef GW_TLS_TLS_TICKETS_H
#define GW_TLS_TLS_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

struct gw_tls_tickets;

/*
 * A key ring whose first key is current from now, rotated every
 * rotation_ms (> 0). NULL when no random key could be made (why set).
 */
struct gw_tls_tickets *gw_tls_tickets_new(uint64_t rotation_ms, char *why, size_t size);
void gw_tls_tickets_unref(struct gw_tls_tickets *t);

/*
 * Makes ctx issue and accept tickets under t's keys (the context takes its
 * own reference), and tells clients a ticket lifetime of two rotation
 * periods. 0, or -1 when OpenSSL refused.
 */
int gw_tls_tickets_attach(SSL_CTX *ctx, struct gw_tls_tickets *t);

/*
 * Makes ctx, which has tickets attached, use the key ring of from instead
 * of its own (a reload keeps a listener's keys: sessions resume across it).
 * ctx must not serve yet. 0, or -1 when either has no ring (nothing done).
 */
int gw_tls_tickets_adopt(SSL_CTX *ctx, const SSL_CTX *from);

#endif

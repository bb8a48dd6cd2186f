/*
 * The `tls` sections of the config file (README "TLS"): a listen entry's
 * and an upstream's.
 *
 * Read with the shared readers (config/conf_read.h), so messages are the
 * loader's word for word ("FILE:LINE:COL: 'min_version' in tls of listen
 * entry 2: ..."), then built at once into OpenSSL contexts (tls_server.h,
 * tls_client.h): a certificate, key or CA file that cannot be used is an
 * error at the line and column of its path in the file, so `gateway -t`,
 * start-up and a reload all refuse it (a refused reload keeps the running
 * configuration). A section with errors of its own is not built.
 *
 * Ownership: each reader returns a conf that its caller owns (the
 * snapshot), freed with the matching _free, contexts included; NULL after
 * reporting every problem to ctx->errs.
 */
#ifndef GW_TLS_TLS_CONF_H
#define GW_TLS_TLS_CONF_H

#include "../config/conf_read.h"
#include "../config/config.h"

/*
 * value: the node of `tls` in the listen entry that ctx names ("listen
 * entry 2").
 */
struct gw_tls_listen_conf *gw_tls_listen_conf_read(const struct gw_conf_ctx *ctx,
                                                   const struct gw_node *value);
void gw_tls_listen_conf_free(struct gw_tls_listen_conf *conf);

/* value: the node of `tls` in the upstream that ctx names ("upstream 'api'"). */
struct gw_tls_upstream_conf *gw_tls_upstream_conf_read(const struct gw_conf_ctx *ctx,
                                                       const struct gw_node *value);
void gw_tls_upstream_conf_free(struct gw_tls_upstream_conf *conf);

#endif

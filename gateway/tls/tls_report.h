/*
 * How the TLS builders (tls_server.h, tls_client.h) tell the config loader
 * what is wrong with the files a `tls` section names.
 *
 * The builders know files and OpenSSL, not YAML: they report a problem by
 * the key it is about (the `cert` of certificates[2], the `ca`) and the
 * loader turns that into "FILE:LINE:COL: 'cert' in WHERE: message" at the
 * node that key was written at. A warning (an expired certificate) is
 * logged the same way and does not refuse the configuration.
 */
#ifndef GW_TLS_TLS_REPORT_H
#define GW_TLS_TLS_REPORT_H

#include <stdbool.h>
#include <stddef.h>

/* The key of a tls section that a problem is about. */
enum gw_tls_key {
	GW_TLS_KEY_CERT = 0,    /* `cert` (of certificates[cert] on a listener) */
	GW_TLS_KEY_KEY,         /* `key` (of certificates[cert] on a listener) */
	GW_TLS_KEY_CA,          /* `ca` of an upstream */
	GW_TLS_KEY_SERVER_NAME, /* server_names[name] of certificates[cert] */
	GW_TLS_KEY_SECTION,     /* the tls mapping as a whole */
};

/* One problem. Borrowed: msg lives until the report function returns. */
struct gw_tls_problem {
	bool warning; /* true: logged, the section is still valid */
	enum gw_tls_key key;
	size_t cert; /* listener: index into certificates; else 0 */
	size_t name; /* GW_TLS_KEY_SERVER_NAME: index into server_names */
	const char *msg;
};

/* Where problems go: problem(arg, p) once per problem, in the order found. */
struct gw_tls_report {
	void (*problem)(void *arg, const struct gw_tls_problem *p);
	void *arg;
};

#endif

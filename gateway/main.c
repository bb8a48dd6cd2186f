/*
 * gateway: a resilient HTTP/1.1 reverse proxy.
 *
 *   gateway [-c FILE]      run in the foreground (default conf/gateway.yaml)
 *   gateway -t [-c FILE]   check the configuration and exit
 *   gateway -v             print the version
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>

#include "client_conn.h"
#include "config/config.h"
#include "server.h"
#include "util/errlist.h"
#include "util/log.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: gateway [-c FILE] [-t] [-v]\n"
	             "  -c FILE  configuration file (default conf/gateway.yaml)\n"
	             "  -t       check the configuration and exit (0 valid, 1 invalid)\n"
	             "  -v       print the version and exit\n");
}

int main(int argc, char **argv)
{
	const char *file = "conf/gateway.yaml";
	struct gw_errlist errs = {0};
	struct gw_config *config;
	struct gw_server *server;
	bool test_only = false;
	int opt, rc;

	if (getenv("GATEWAY_DEBUG"))
		gw_log_set_level(GW_LOG_DEBUG);
	while ((opt = getopt(argc, argv, "c:tvh")) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 't':
			test_only = true;
			break;
		case 'v':
			printf("gateway %s\n", GW_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	config = gw_config_load(file, &errs);
	if (!config) {
		for (size_t i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.items[i]);
		gw_errlist_free(&errs);
		return 1;
	}
	gw_errlist_free(&errs);
	if (test_only) {
		fprintf(stderr, "%s: configuration is valid\n", file);
		gw_config_unref(config);
		return 0;
	}
	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "gateway: libevent has no thread support\n");
		return 1;
	}
	gw_client_conn_table_init();
	server = gw_server_start(config);
	gw_config_unref(config);
	if (!server)
		return 1;
	rc = gw_server_run(server);
	gw_server_free(server);
	return rc;
}

/*
 * Linked into every harness, which run.sh links with
 * -Wl,--wrap=getaddrinfo: every getaddrinfo call made by the gateway's
 * code (the config loader resolves "HOST:PORT") lands here instead of in
 * the resolver. "localhost" is answered with 127.0.0.1 (or ::1 when asked
 * for IPv6) through a numeric lookup; every other name gets EAI_NONAME, as
 * an unknown host would. So a fuzzed input never sends a DNS query, never
 * reads /etc/hosts, never waits on a resolver, and gets the same answer on
 * every machine. IP literals never reach getaddrinfo (inet_pton).
 */
#include <netdb.h>
#include <stddef.h>
#include <strings.h>
#include <sys/socket.h>

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
	struct addrinfo h = {0};

	if (hints)
		h = *hints;
	if (!node || strcasecmp(node, "localhost") != 0)
		return EAI_NONAME;
	h.ai_flags |= AI_NUMERICHOST;
	h.ai_flags &= ~AI_ADDRCONFIG;
	return __real_getaddrinfo(h.ai_family == AF_INET6 ? "::1" : "127.0.0.1", service, &h, res);
}

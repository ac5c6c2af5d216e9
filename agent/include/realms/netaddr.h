/*
 * Addresses as operators write them: "host:port", "[v6]:port", "unix:/path"
 * or "/path" (a unix socket), or a bare "port" (127.0.0.1:port). Used for
 * the agent's listeners and for Redis.
 */
#ifndef REALMS_NETADDR_H
#define REALMS_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

struct netaddr {
	int family;                      /* AF_INET, AF_INET6 or AF_UNIX */
	struct sockaddr_storage ss;
	socklen_t len;
	char host[64];                   /* numeric host (INET/INET6) */
	int port;                        /* INET/INET6 */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* AF_UNIX */
};

/* Parses s. Hosts must be numeric or "localhost" (no DNS on the data path).
 * Returns 0, or -1 with a reason in err (errlen bytes). */
int netaddr_parse(const char *s, struct netaddr *a, char *err, size_t errlen);

/* Whether a is a unix socket or a loopback address (127/8, ::1): nothing
 * off this host can reach it. */
int netaddr_is_loopback(const struct netaddr *a);

/* "127.0.0.1:6379", "[::1]:6379" or "unix:/path", into buf. Returns buf. */
const char *netaddr_str(const struct netaddr *a, char *buf, size_t size);

#endif /* REALMS_NETADDR_H */

/*
 * Operator-written addresses to sockaddrs and back (realms/netaddr.h).
 * Pure: numeric hosts only, no name resolution.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <realms/netaddr.h>

static int set_err(char *err, size_t errlen, const char *msg, const char *s)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: \"%s\"", msg, s);
	return -1;
}

static int parse_unix(const char *path, const char *s, struct netaddr *a,
                      char *err, size_t errlen)
{
	struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;
	size_t n = strlen(path);

	if (n == 0)
		return set_err(err, errlen, "empty unix socket path", s);
	if (n >= sizeof(sun->sun_path))
		return set_err(err, errlen, "unix socket path too long", s);
	a->family = AF_UNIX;
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	memcpy(a->path, path, n + 1);
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int netaddr_parse(const char *s, struct netaddr *a, char *err, size_t errlen)
{
	const char *colon, *hs, *he;
	char host[64];
	char *end;
	long port;

	memset(a, 0, sizeof(*a));
	if (!s || !*s)
		return set_err(err, errlen, "empty address", s ? s : "");
	if (strncmp(s, "unix:", 5) == 0)
		return parse_unix(s + 5, s, a, err, errlen);
	if (s[0] == '/')
		return parse_unix(s, s, a, err, errlen);
	if (strspn(s, "0123456789") == strlen(s)) {
		/* A bare port: loopback, the safe default for every listener. */
		char full[32];

		if (strlen(s) > 5)
			return set_err(err, errlen, "bad port", s);
		snprintf(full, sizeof(full), "127.0.0.1:%s", s);
		return netaddr_parse(full, a, err, errlen);
	}

	if (s[0] == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		if (!he || he[1] != ':')
			return set_err(err, errlen, "expected [ipv6]:port", s);
		colon = he + 1;
	} else {
		hs = s;
		colon = strrchr(s, ':');
		if (!colon)
			return set_err(err, errlen, "expected host:port", s);
		he = colon;
	}
	if ((size_t)(he - hs) >= sizeof(host) || he == hs)
		return set_err(err, errlen, "bad host", s);
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';

	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
		return set_err(err, errlen, "bad port", s);
	a->port = (int)port;

	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		a->family = sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		a->len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		a->family = sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*sin6);
	} else {
		return set_err(err, errlen, "host must be a numeric address or localhost", s);
	}
	memcpy(a->host, host, strlen(host) + 1);
	return 0;
}

const char *netaddr_str(const struct netaddr *a, char *buf, size_t size)
{
	if (a->family == AF_UNIX)
		snprintf(buf, size, "unix:%s", a->path);
	else if (a->family == AF_INET6)
		snprintf(buf, size, "[%s]:%d", a->host, a->port);
	else
		snprintf(buf, size, "%s:%d", a->host, a->port);
	return buf;
}

int netaddr_is_loopback(const struct netaddr *a)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;

	switch (a->family) {
	case AF_UNIX:
		return 1;
	case AF_INET:
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	case AF_INET6:
		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	default:
		return 0;
	}
}

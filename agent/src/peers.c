/*
 * Allowed peers of the unix listeners (realms/peers.h). The list is set
 * at start, before any listener opens, and only read afterwards. I/O: the
 * user database at start, SO_PEERCRED on each connection.
 */
#include <pwd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <realms/limits.h>
#include <realms/peers.h>

static uid_t allowed[PEERS_MAX];
static int n_allowed;
static _Atomic uint64_t refused;

int peers_allow(uid_t uid)
{
	for (int i = 0; i < n_allowed; i++)
		if (allowed[i] == uid)
			return 0;
	if (n_allowed == PEERS_MAX)
		return -1;
	allowed[n_allowed++] = uid;
	return 0;
}

int peers_resolve(const char *name, uid_t *uid)
{
	struct passwd pw, *res = NULL;
	char buf[4096], *end;
	unsigned long v;

	if (*name >= '0' && *name <= '9') {
		v = strtoul(name, &end, 10);
		if (*end || v >= (uid_t)-1)
			return -1;
		*uid = (uid_t)v;
		return 0;
	}
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return -1;
	*uid = res->pw_uid;
	return 0;
}

int peers_check(int fd, long *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	*uid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof(cr)) {
		*uid = (long)cr.uid;
		for (int i = 0; i < n_allowed; i++)
			if (allowed[i] == cr.uid)
				return 1;
	}
	atomic_fetch_add(&refused, 1);
	return 0;
}

uint64_t peers_refused(void)
{
	return atomic_load(&refused);
}

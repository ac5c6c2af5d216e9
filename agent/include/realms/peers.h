/*
 * Who may speak to the agent's unix listeners. The SPOP listener hands out
 * upstream keys in its answers and the mirror takes billing records, so
 * only HAProxy's user (and root, and the agent's own user) may connect:
 * the kernel tells the peer's uid (SO_PEERCRED), which the peer cannot
 * forge. I/O: getsockopt and the user database.
 */
#ifndef REALMS_PEERS_H
#define REALMS_PEERS_H

#include <stdint.h>
#include <sys/types.h>

/* Allows uid (once; at most a fixed number of users). Returns 0 or -1. */
int peers_allow(uid_t uid);

/* A user name or decimal uid to a uid. Returns 0, or -1 (no such user). */
int peers_resolve(const char *name, uid_t *uid);

/* Whether the peer of the connected unix socket fd is allowed; its uid in
 * *uid (-1 when the kernel did not say). Counts refusals. */
int peers_check(int fd, long *uid);

/* Connections refused so far. */
uint64_t peers_refused(void);

#endif /* REALMS_PEERS_H */

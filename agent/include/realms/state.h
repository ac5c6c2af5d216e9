/*
 * The configuration in force. A reload installs a new one; requests hold a
 * reference to the one they started with until they finish.
 */
#ifndef REALMS_STATE_H
#define REALMS_STATE_H

#include <stddef.h>

struct realms_config;
struct cfg_redis;
struct cfg_diag;

/* The configuration in force, with a reference the caller must drop with
 * config_unref(). NULL before the first install. */
struct realms_config *state_config(void);

/* Makes c the configuration in force (takes over the caller's reference)
 * and syncs the credential health table. Returns 0. */
int state_install(struct realms_config *c);

/* Fixes, at start, where Redis is and how to log in: c's "redis" with the
 * environment's overrides (config_redis_env: REALMS_REDIS, _USER,
 * _PASSWORD_FILE, _PASSWORD), as for realmsctl. A reload does not change
 * it. Returns 0, or -1 with the problems in diag. */
int state_redis_init(const struct realms_config *c, struct cfg_diag *diag);

/* The endpoint fixed by state_redis_init (c's own "redis" if it was not
 * called). Valid until state_release(); rdb_new() takes a copy. */
const struct cfg_redis *state_redis(const struct realms_config *c);

/* Drops the configuration and the Redis endpoint at exit. */
void state_release(void);

#endif /* REALMS_STATE_H */

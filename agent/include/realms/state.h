/*
 * The configuration in force. A reload installs a new one; requests hold a
 * reference to the one they started with until they finish.
 */
#ifndef REALMS_STATE_H
#define REALMS_STATE_H

#include <stddef.h>

struct realms_config;
struct netaddr;

/* The configuration in force, with a reference the caller must drop with
 * config_unref(). NULL before the first install. */
struct realms_config *state_config(void);

/* Makes c the configuration in force (takes over the caller's reference)
 * and syncs the credential health table. Returns 0. */
int state_install(struct realms_config *c);

/* Where Redis is: the REALMS_REDIS environment variable when set (as for
 * realmsctl), else the configuration's "redis". Returns 0, or -1 with a
 * reason in err when REALMS_REDIS cannot be parsed. */
int state_redis_init(char *err, size_t errlen);
const struct netaddr *state_redis(const struct realms_config *c);

/* Drops the configuration at exit. */
void state_release(void);

#endif /* REALMS_STATE_H */

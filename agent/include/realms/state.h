/*
 * The configuration in force. A reload installs a new one; requests hold a
 * reference to the one they started with until they finish.
 */
#ifndef REALMS_STATE_H
#define REALMS_STATE_H

struct realms_config;

/* The configuration in force, with a reference the caller must drop with
 * config_unref(). NULL before the first install. */
struct realms_config *state_config(void);

/* Makes c the configuration in force (takes over the caller's reference)
 * and syncs the credential health table. Returns 0. */
int state_install(struct realms_config *c);

/* Drops the configuration at exit. */
void state_release(void);

#endif /* REALMS_STATE_H */

/*
 * Credential health: until when each credential is cooling down. Keyed by
 * HAProxy server name ("<channel>--<credential>"), so the state survives a
 * reload that reorders or adds credentials. Read on every verdict, written
 * by whatever learns of failures (the failover work feeds it).
 */
#ifndef REALMS_HEALTH_H
#define REALMS_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct realms_config;

/* Makes the table hold exactly cfg's credentials, keeping the state of
 * those that remain. Called at start and after every reload. Returns 0, -1
 * on allocation failure (the old table stays). */
int health_sync(const struct realms_config *cfg);

/* Whether credential cred_id of cfg may take traffic at now_ms (monotonic
 * milliseconds). Unknown credentials are available. */
int health_available(const struct realms_config *cfg, int cred_id, uint64_t now_ms);

/* Puts a credential in cooldown until until_ms (0 clears it). Returns 0, or
 * -1 if no such server. */
int health_cooldown(const char *server, size_t len, uint64_t until_ms);

/* When its cooldown ends (0: none). */
uint64_t health_cool_until(const char *server, size_t len);

/* Monotonic and wall clocks (the only places the agent reads time). */
uint64_t clock_mono_ms(void);
int64_t clock_unix_s(void);

#endif /* REALMS_HEALTH_H */

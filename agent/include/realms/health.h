/*
 * Credential health: one breaker per credential, keyed by HAProxy server
 * name ("<channel>--<credential>") so the state survives a reload that
 * reorders or adds credentials.
 *
 *   closed     traffic flows; consecutive failures are counted
 *   open       no traffic until a deadline (failures reached the threshold,
 *              or a 429 with its retry-after)
 *   half-open  the deadline passed: the first verdict that picks the
 *              credential claims the one probe; its result closes the
 *              breaker or opens it again
 *   revoked    the upstream refused the key (401/403): out until the
 *              configuration is reloaded
 *
 * Fed by the result of every attempt (health_report), read on every
 * verdict (health_available, health_claim) and by HAProxy's agent-check
 * (health_check_answer). See docs/failover.md.
 */
#ifndef REALMS_HEALTH_H
#define REALMS_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct realms_config;

enum health_state {
	HEALTH_CLOSED = 0,
	HEALTH_OPEN = 1,
	HEALTH_HALF_OPEN = 2,
	HEALTH_REVOKED = 3,
};

/* The result of one attempt on a credential. */
struct health_outcome {
	int status;              /* upstream HTTP status; 0: no response at all */
	int64_t retry_after_s;   /* from a 429's retry-after; -1: none */
};

/* Makes the table hold exactly cfg's credentials, keeping the state of
 * those that remain, except that revoked credentials start over (a reload
 * is how an operator says the key was fixed). Takes the breaker settings
 * from cfg->failover. Called at start and after every reload. Returns 0,
 * -1 on allocation failure (the old table stays). */
int health_sync(const struct realms_config *cfg);

/* Whether credential cred_id of cfg may be picked at now_ms (monotonic
 * milliseconds): closed, or half-open with no probe in flight. No side
 * effect. Unknown credentials are available. */
int health_available(const struct realms_config *cfg, int cred_id, uint64_t now_ms);

/* Called once a verdict picked credential cred_id: if it is half-open,
 * claims its probe. Returns 1 when the pick stands, 0 when another verdict
 * claimed the probe first (pick again). */
int health_claim(const struct realms_config *cfg, int cred_id, uint64_t now_ms);

/* Feeds the result of one attempt. Returns 0, -1 if no such server. */
int health_report(const char *server, size_t len, const struct health_outcome *o,
                  uint64_t now_ms);

/* State of a server at now_ms; *until_ms (may be NULL) gets the end of an
 * open period. Unknown servers are closed. */
enum health_state health_state(const char *server, size_t len, uint64_t now_ms,
                               uint64_t *until_ms);

/* The agent-check answer for a server, a line ending in "\n": "up 100%"
 * when closed, half-open or unknown, "down #..." when open or revoked.
 * Half-open is up so that a redispatch can still reach it when it is the
 * only other credential; the verdict itself sends it one probe. Returns
 * its length. */
int health_check_answer(const char *server, size_t len, uint64_t now_ms,
                        char *out, size_t size);

/* Calls fn for each credential, in server name order, with its state. */
void health_foreach(uint64_t now_ms,
                    void (*fn)(const char *server, size_t len, enum health_state st,
                               void *arg), void *arg);

/* Breaker transitions so far: to open (including re-opening after a failed
 * probe), to closed, to revoked. */
struct health_stats {
	uint64_t opened, closed, revoked;
};
void health_stats_get(struct health_stats *s);

/* Puts a credential in cooldown until until_ms (0 closes it). For tests
 * and the admin path. Returns 0, or -1 if no such server. */
int health_cooldown(const char *server, size_t len, uint64_t until_ms);

#endif /* REALMS_HEALTH_H */

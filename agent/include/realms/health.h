/*
 * Credential health, keyed by HAProxy-style server name ("<channel>--
 * <credential>") so the state survives a reload that reorders or adds
 * credentials. Two things are tracked per credential, and only evidence
 * about the credential changes either:
 *
 * The breaker (the upstream's health as this key sees it):
 *   closed     traffic flows; failures (5xx, 529, no response) of distinct
 *              requests are counted
 *   open       no traffic until a deadline (failures reached the
 *              threshold, or a 429 with its retry-after)
 *   half-open  the deadline passed: the first request that picks the
 *              credential claims the one probe; its result closes the
 *              breaker or opens it again
 *
 * The key (whether the provider still accepts it):
 *   ok         the normal case
 *   suspect    a request got 401: the key may have been revoked, or the
 *              request itself may have been odd. The credential stays in
 *              service while a probe that uses the key alone (GET
 *              /v1/models, probe.c) asks the provider
 *   revoked    the probe got 401 too: out of service; probed again every
 *              cooldown, back in service as soon as a probe passes (or at
 *              a reload)
 *
 * A 403 or any other 4xx belongs to the request: it changes nothing. So no
 * request can take a credential out of service for everyone.
 *
 * Avoidance (soft, beside the breaker): an attempt that failed (5xx, 529,
 * no response) makes the next choices pass the credential over for
 * failover.avoid seconds, while the breaker keeps counting. An avoided
 * credential stays available: the scheduler uses it when no other usable
 * candidate is left (sched.h, "preferred"). A 2xx on it ends the
 * avoidance early.
 *
 * Fed by the result of every attempt (health_report) and of every key
 * probe (health_probe_result); read on every verdict and attempt
 * (health_available, health_claim). See docs/failover.md.
 */
#ifndef REALMS_HEALTH_H
#define REALMS_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include <realms/clock.h>

struct realms_config;

/* What /metrics shows, one number per credential. */
enum health_state {
	HEALTH_CLOSED = 0,
	HEALTH_OPEN = 1,
	HEALTH_HALF_OPEN = 2,
	HEALTH_REVOKED = 3,      /* the key: a probe confirmed a 401 */
	HEALTH_SUSPECT = 4,      /* the key: a 401 seen, probe pending; in service */
};

/* The result of one attempt on a credential. */
struct health_outcome {
	int status;              /* upstream HTTP status; 0: no response at all */
	int64_t retry_after_s;   /* from a 429's retry-after; -1: none */
	const char *rid;         /* the request's id, or NULL: a request that */
	size_t rid_len;          /* fails twice on a credential counts once */
};

/* Makes the table hold exactly cfg's credentials, keeping the state of
 * those that remain, except that revoked keys start over (a reload is how
 * an operator says the key was fixed). Takes the breaker settings from
 * cfg->failover. Called at start and after every reload. Returns 0, -1 on
 * allocation failure (the old table stays). */
int health_sync(const struct realms_config *cfg);

/* Whether credential cred_id of cfg may be picked at now_ms (monotonic
 * milliseconds): breaker closed, or half-open with no probe in flight, and
 * the key not revoked. No side effect. Unknown credentials are available. */
int health_available(const struct realms_config *cfg, int cred_id, uint64_t now_ms);

/* Whether credential cred_id of cfg is preferred at now_ms: not avoided
 * after a recent failure. Soft: an avoided credential is still available
 * (health_available) and is used when nothing preferred is. No side
 * effect. Unknown credentials are preferred. */
int health_preferred(const struct realms_config *cfg, int cred_id, uint64_t now_ms);

/* Called once a verdict or attempt picked credential cred_id: if its
 * breaker is half-open, claims its probe. Returns 1 when the pick stands,
 * 0 when another request claimed the probe first (pick again). */
int health_claim(const struct realms_config *cfg, int cred_id, uint64_t now_ms);

/* Feeds the result of one attempt. Returns 0, -1 if no such server. */
int health_report(const char *server, size_t len, const struct health_outcome *o,
                  uint64_t now_ms);

/* State of a server at now_ms (the key's state first: revoked or suspect,
 * then the breaker's); *until_ms (may be NULL) gets the end of an open
 * period. Unknown servers are closed. */
enum health_state health_state(const char *server, size_t len, uint64_t now_ms,
                               uint64_t *until_ms);

/* Calls fn for each credential, in server name order, with its state. */
void health_foreach(uint64_t now_ms,
                    void (*fn)(const char *server, size_t len, enum health_state st,
                               void *arg), void *arg);

/* ---- Key probes (driven by probe.c) ---------------------------------- */

/* Finds a credential whose key probe is due at now_ms (suspect and not
 * being probed, or revoked and its cooldown passed), marks it as being
 * probed and copies its server name into server (size bytes, NUL-
 * terminated). Returns 1, or 0 when none is due. */
int health_probe_next(uint64_t now_ms, char *server, size_t size);

/* The probe's answer: 2xx puts the key back in service, 401 revokes it
 * (probed again after a cooldown), anything else (another status, no
 * answer) proves nothing: the state stays and the probe is tried again
 * after a cooldown. Returns 0, -1 if no such server. */
int health_probe_result(const char *server, size_t len, int status, uint64_t now_ms);

/* Called (from any thread) when a probe becomes due at once, so the
 * prober need not wait for its next round. NULL: none. */
void health_set_probe_hook(void (*fn)(void));

/* Counters of transitions so far. */
struct health_stats {
	uint64_t opened;         /* breakers opened (or again after a failed probe) */
	uint64_t closed;         /* breakers closed after a successful probe */
	uint64_t suspected;      /* keys made suspect by a 401 */
	uint64_t revoked;        /* keys taken out by a probe's 401 */
	uint64_t restored;       /* keys back in service after a passing probe */
	uint64_t avoided;        /* avoidances started by a failed attempt */
};
void health_stats_get(struct health_stats *s);

/* Puts a credential's breaker in cooldown until until_ms (0 closes it and
 * ends any avoidance).
 * For tests and the admin path. Returns 0, or -1 if no such server. */
int health_cooldown(const char *server, size_t len, uint64_t until_ms);

#endif /* REALMS_HEALTH_H */

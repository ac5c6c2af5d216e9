/*
 * Channel choice: a pure function over candidate credentials.
 *
 * Candidates are the credentials bound to the requested model and open to
 * the token's group (the caller builds the list from the configuration).
 * Rules, in order:
 *   1. credentials cooling down are skipped, and so is weight 0 (drained);
 *      credentials not preferred (avoided after a recent failure) are
 *      skipped too, unless no usable candidate is preferred: then rules 2
 *      to 4 run over every usable one (avoidance is soft);
 *   2. only the highest priority tier that still has a candidate is used
 *      (a larger number is preferred);
 *   3. with a session key, weighted rendezvous hashing: every node and every
 *      restart maps the same session to the same credential while it is
 *      available, so the provider's prompt cache keeps hitting; when it is
 *      not, the session moves to its next-best credential only;
 *   4. without one, weighted random with the injected generator.
 */
#ifndef REALMS_SCHED_H
#define REALMS_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct sched_cand {
	int cred_id;          /* dense credential index */
	int priority;
	uint32_t weight;      /* relative share within the tier; 0 = drained */
};

/* Whether a credential may take traffic now (not in cooldown). */
typedef int (*sched_avail_fn)(int cred_id, void *arg);

/* Random 64-bit numbers; injected so tests are deterministic. */
typedef uint64_t (*sched_rand_fn)(void *arg);

struct sched_env {
	sched_avail_fn available;   /* NULL: all available */
	void *avail_arg;
	sched_rand_fn rand;
	void *rand_arg;
	/* Soft availability: a usable credential for which this returns 0
	 * (avoided) is chosen only when no usable one is preferred. NULL:
	 * all preferred. */
	sched_avail_fn preferred;
	void *pref_arg;
	/* The session table (stick.h) at now_ms, for the verdict's choices;
	 * 0: not used (the scheduler itself never reads it). */
	int stick;
	uint64_t now_ms;
};

/* Whether c may take a choice as things stand: weight, availability and
 * preference (not avoided), as rule 1 reads them. */
int sched_takes(const struct sched_cand *c, const struct sched_env *env);

/* Returns the index in c[] of the chosen candidate, or -1 when none can take
 * the request. session may be NULL (slen 0). */
int sched_pick(const struct sched_cand *c, size_t n, const char *session,
               size_t slen, const struct sched_env *env);

/* The stable 64-bit hash used for stickiness (exposed for tests). */
uint64_t sched_hash(const char *s, size_t len, uint64_t salt);

#endif /* REALMS_SCHED_H */

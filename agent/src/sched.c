/*
 * Channel choice. See sched.h for the rules.
 *
 * Weighted rendezvous hashing: each candidate scores
 *     weight / -ln(u),  u = hash(session, credential) mapped to (0, 1)
 * and the highest score wins. For a fixed session every candidate's score is
 * fixed, so removing one candidate only moves the sessions it had, and the
 * share of sessions each candidate wins is proportional to its weight.
 */
#include <math.h>
#include <stdlib.h>

#include <realms/limits.h>
#include <realms/sched.h>

uint64_t sched_hash(const char *s, size_t len, uint64_t salt)
{
	/* FNV-1a over the bytes, then a splitmix64 finaliser with the salt:
	 * stable across processes and machines (no per-process seed), which
	 * is the point: sessions must map the same way on every node. */
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	h ^= salt + 0x9e3779b97f4a7c15ULL;
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static int usable(const struct sched_cand *c, const struct sched_env *env)
{
	return c->weight > 0 &&
	       (!env->available || env->available(c->cred_id, env->avail_arg));
}

int sched_takes(const struct sched_cand *c, const struct sched_env *env)
{
	return usable(c, env) && (!env->preferred || env->preferred(c->cred_id, env->pref_arg));
}

/* Availability is asked once per candidate, into ok[]: breakers change
 * state under our feet (other threads report attempt results), and two
 * answers for one candidate could leave a tier whose weights sum to 0. */
int sched_pick(const struct sched_cand *c, size_t n, const char *session,
               size_t slen, const struct sched_env *env)
{
	unsigned char stack_ok[SCHED_STACK_CANDS], *ok = stack_ok;
	int tier = 0, found = 0, best = -1;
	uint64_t total = 0, r;
	double best_score = -1.0;

	if (n > SCHED_STACK_CANDS && !(ok = malloc(n)))
		return -1;
	for (size_t i = 0; i < n; i++)
		ok[i] = (unsigned char)usable(&c[i], env);
	/* Avoidance is soft: the preferred usable candidates when there is
	 * one, else every usable one. */
	if (env->preferred) {
		int any = 0;

		for (size_t i = 0; i < n; i++)
			if (ok[i] && env->preferred(c[i].cred_id, env->pref_arg))
				ok[i] = 2, any = 1;
		for (size_t i = 0; any && i < n; i++)
			ok[i] = ok[i] == 2;
	}
	for (size_t i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		if (!found || c[i].priority > tier)
			tier = c[i].priority;
		found = 1;
	}
	if (!found)
		goto out;

	if (session && slen) {
		for (size_t i = 0; i < n; i++) {
			double u, score;

			if (c[i].priority != tier || !ok[i])
				continue;
			/* 53 random bits into (0, 1): never 0, never 1. */
			u = ((double)(sched_hash(session, slen, (uint64_t)c[i].cred_id) >> 11) + 0.5) /
			    9007199254740992.0;
			score = (double)c[i].weight / -log(u);
			if (score > best_score) {
				best_score = score;
				best = (int)i;
			}
		}
		goto out;
	}

	for (size_t i = 0; i < n; i++)
		if (c[i].priority == tier && ok[i])
			total += c[i].weight;
	/* total > 0: the tier has a usable candidate, and usable means weight > 0. */
	r = env->rand(env->rand_arg) % total;
	for (size_t i = 0; i < n; i++) {
		if (c[i].priority != tier || !ok[i])
			continue;
		if (r < c[i].weight) {
			best = (int)i;
			break;
		}
		r -= c[i].weight;
	}
out:
	if (ok != stack_ok)
		free(ok);
	return best;
}

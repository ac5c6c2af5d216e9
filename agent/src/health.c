/*
 * Credential breakers: a sorted array of entries (server name, state),
 * swapped whole under a write lock on reload and read under a read lock.
 * Readers (every verdict, every agent-check) only load atomics; writers of
 * one entry's state (attempt results, from any worker) serialise on that
 * entry's mutex, so the table's write lock is taken only by reloads.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <realms/config-t.h>
#include <realms/health.h>
#include <realms/limits.h>
#include <realms/log.h>

/* The longest retry-after honoured: a provider asking for more is
 * believed for an hour, then probed. */
#define HEALTH_RETRY_AFTER_MAX_S  3600

struct hentry {
	char *server;
	size_t len;
	pthread_mutex_t mu;             /* writers of the fields below */
	_Atomic int state;              /* CLOSED, OPEN or REVOKED */
	_Atomic uint64_t until_ms;      /* OPEN: no traffic before this */
	_Atomic uint64_t probe_ms;      /* half-open: when the probe was claimed */
	unsigned fails;                 /* consecutive failures (under mu) */
};

static struct hentry *table;
static size_t n_table;
static pthread_rwlock_t hlock = PTHREAD_RWLOCK_INITIALIZER;

static _Atomic unsigned pol_failures = CFG_FAILURES_DEFAULT;
static _Atomic uint64_t pol_cooldown_ms = CFG_COOLDOWN_DEFAULT_S * 1000ull;

static struct {
	_Atomic uint64_t opened, closed, revoked;
} hstats;

static int cmp_name(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

/* Called with the lock held (either mode). */
static struct hentry *find(const char *s, size_t len)
{
	size_t lo = 0, hi = n_table;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = cmp_name(s, len, table[mid].server, table[mid].len);

		if (c == 0)
			return &table[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct hentry *x = a, *y = b;

	return cmp_name(x->server, x->len, y->server, y->len);
}

static void free_table(struct hentry *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_destroy(&t[i].mu);
		free(t[i].server);
	}
	free(t);
}

int health_sync(const struct realms_config *cfg)
{
	struct hentry *nt = calloc(cfg->n_creds ? cfg->n_creds : 1, sizeof(*nt));
	struct hentry *old;
	size_t n_old;

	if (!nt)
		return -1;
	for (size_t i = 0; i < cfg->n_creds; i++) {
		nt[i].len = cfg->creds[i]->server_len;
		nt[i].server = strndup(cfg->creds[i]->server, nt[i].len);
		pthread_mutex_init(&nt[i].mu, NULL);
		if (!nt[i].server) {
			free_table(nt, i + 1);
			return -1;
		}
	}
	qsort(nt, cfg->n_creds, sizeof(*nt), cmp_entry);
	if (cfg->failover.failures > 0) {
		atomic_store(&pol_failures, (unsigned)cfg->failover.failures);
		atomic_store(&pol_cooldown_ms, (uint64_t)cfg->failover.cooldown_s * 1000u);
	}

	pthread_rwlock_wrlock(&hlock);
	for (size_t i = 0; i < cfg->n_creds; i++) {
		struct hentry *e = find(nt[i].server, nt[i].len);
		int st;

		if (!e)
			continue;
		pthread_mutex_lock(&e->mu);
		st = atomic_load(&e->state);
		if (st != HEALTH_REVOKED) {
			atomic_store(&nt[i].state, st);
			atomic_store(&nt[i].until_ms, atomic_load(&e->until_ms));
			atomic_store(&nt[i].probe_ms, atomic_load(&e->probe_ms));
			nt[i].fails = e->fails;
		} else {
			rlog(LOG_LVL_INFO, "credential %.*s: back in service after the reload",
			     (int)e->len, e->server);
		}
		pthread_mutex_unlock(&e->mu);
	}
	old = table;
	n_old = n_table;
	table = nt;
	n_table = cfg->n_creds;
	pthread_rwlock_unlock(&hlock);

	free_table(old, n_old);
	return 0;
}

/* The state as seen at now_ms, half-open included. */
static enum health_state entry_state(const struct hentry *e, uint64_t now_ms)
{
	int st = atomic_load_explicit(&e->state, memory_order_acquire);

	if (st == HEALTH_OPEN && now_ms >= atomic_load(&e->until_ms))
		return HEALTH_HALF_OPEN;
	return (enum health_state)st;
}

/* A half-open credential can take the probe: none claimed, or the claimed
 * one never reported back within a cooldown period. */
static int probe_free(const struct hentry *e, uint64_t now_ms)
{
	uint64_t p = atomic_load(&e->probe_ms);

	return p == 0 || now_ms - p >= atomic_load(&pol_cooldown_ms);
}

int health_available(const struct realms_config *cfg, int cred_id, uint64_t now_ms)
{
	const struct cfg_cred *c;
	struct hentry *e;
	int ok = 1;

	if (cred_id < 0 || (size_t)cred_id >= cfg->n_creds)
		return 1;
	c = cfg->creds[cred_id];
	pthread_rwlock_rdlock(&hlock);
	e = find(c->server, c->server_len);
	if (e) {
		switch (entry_state(e, now_ms)) {
		case HEALTH_CLOSED:    ok = 1; break;
		case HEALTH_HALF_OPEN: ok = probe_free(e, now_ms); break;
		default:               ok = 0; break;
		}
	}
	pthread_rwlock_unlock(&hlock);
	return ok;
}

int health_claim(const struct realms_config *cfg, int cred_id, uint64_t now_ms)
{
	const struct cfg_cred *c;
	struct hentry *e;
	int ok = 1;

	if (cred_id < 0 || (size_t)cred_id >= cfg->n_creds)
		return 1;
	c = cfg->creds[cred_id];
	pthread_rwlock_rdlock(&hlock);
	e = find(c->server, c->server_len);
	if (e && entry_state(e, now_ms) == HEALTH_HALF_OPEN) {
		uint64_t p = atomic_load(&e->probe_ms);

		ok = (p == 0 || now_ms - p >= atomic_load(&pol_cooldown_ms)) &&
		     atomic_compare_exchange_strong(&e->probe_ms, &p, now_ms ? now_ms : 1);
		if (ok)
			rlog(LOG_LVL_INFO, "credential %.*s: half-open, sending one probe",
			     (int)e->len, e->server);
	}
	pthread_rwlock_unlock(&hlock);
	return ok;
}

static void open_until(struct hentry *e, uint64_t until_ms)
{
	atomic_store(&e->until_ms, until_ms);
	atomic_store(&e->probe_ms, 0);
	atomic_store_explicit(&e->state, HEALTH_OPEN, memory_order_release);
	e->fails = 0;
	atomic_fetch_add(&hstats.opened, 1);
}

/* "status 503" or "no response", for log lines. */
static const char *outcome_str(const struct health_outcome *o, char *buf, size_t size)
{
	if (!o->status)
		return "no response";
	snprintf(buf, size, "status %d", o->status);
	return buf;
}

static void report_locked(struct hentry *e, const struct health_outcome *o, uint64_t now_ms)
{
	enum health_state st = entry_state(e, now_ms);
	uint64_t cool = atomic_load(&pol_cooldown_ms);
	const int name_len = (int)e->len;
	char what[32];

	if (st == HEALTH_REVOKED)
		return;
	if (o->status == 401 || o->status == 403) {
		atomic_store_explicit(&e->state, HEALTH_REVOKED, memory_order_release);
		atomic_fetch_add(&hstats.revoked, 1);
		rlog(LOG_LVL_ERR, "credential %.*s: the upstream answered %d (key refused); "
		     "out of service until the configuration is reloaded", name_len, e->server,
		     o->status);
		return;
	}
	if (o->status == 429) {
		int64_t ra = o->retry_after_s;
		uint64_t ms = ra >= 0 ? (uint64_t)(ra > HEALTH_RETRY_AFTER_MAX_S ?
		              HEALTH_RETRY_AFTER_MAX_S : ra) * 1000u : cool;

		open_until(e, now_ms + ms);
		rlog(LOG_LVL_WARN, "credential %.*s: rate limited (429%s); open for %" PRIu64 " ms",
		     name_len, e->server, ra >= 0 ? ", retry-after honoured" : "", ms);
		return;
	}
	if (o->status == 0 || o->status >= 500) {
		if (st == HEALTH_HALF_OPEN) {
			open_until(e, now_ms + cool);
			rlog(LOG_LVL_WARN, "credential %.*s: probe failed (%s); open again for %" PRIu64
			     " ms", name_len, e->server, outcome_str(o, what, sizeof(what)), cool);
		} else if (st == HEALTH_CLOSED && ++e->fails >= atomic_load(&pol_failures)) {
			unsigned n = e->fails;

			open_until(e, now_ms + cool);
			rlog(LOG_LVL_WARN, "credential %.*s: %u consecutive failures (last: %s); "
			     "open for %" PRIu64 " ms", name_len, e->server, n,
			     outcome_str(o, what, sizeof(what)), cool);
		}
		return;
	}
	/* Any other answer: the credential works. */
	if (st == HEALTH_HALF_OPEN) {
		atomic_store(&e->probe_ms, 0);
		atomic_store_explicit(&e->state, HEALTH_CLOSED, memory_order_release);
		atomic_fetch_add(&hstats.closed, 1);
		rlog(LOG_LVL_INFO, "credential %.*s: probe answered %d; closed", name_len,
		     e->server, o->status);
	}
	if (st != HEALTH_OPEN)
		e->fails = 0;
}

int health_report(const char *server, size_t len, const struct health_outcome *o,
                  uint64_t now_ms)
{
	struct hentry *e;

	pthread_rwlock_rdlock(&hlock);
	e = find(server, len);
	if (e) {
		pthread_mutex_lock(&e->mu);
		report_locked(e, o, now_ms);
		pthread_mutex_unlock(&e->mu);
	}
	pthread_rwlock_unlock(&hlock);
	return e ? 0 : -1;
}

enum health_state health_state(const char *server, size_t len, uint64_t now_ms,
                               uint64_t *until_ms)
{
	enum health_state st = HEALTH_CLOSED;
	struct hentry *e;

	pthread_rwlock_rdlock(&hlock);
	e = find(server, len);
	if (e) {
		st = entry_state(e, now_ms);
		if (until_ms)
			*until_ms = atomic_load(&e->until_ms);
	}
	pthread_rwlock_unlock(&hlock);
	return st;
}

int health_check_answer(const char *server, size_t len, uint64_t now_ms,
                        char *out, size_t size)
{
	uint64_t until = 0;
	int n;

	switch (health_state(server, len, now_ms, &until)) {
	case HEALTH_OPEN:
		n = snprintf(out, size, "down #breaker open for %" PRIu64 " ms\n", until - now_ms);
		break;
	case HEALTH_REVOKED:
		n = snprintf(out, size, "down #key refused by the upstream; reload to retry\n");
		break;
	default:
		n = snprintf(out, size, "up 100%%\n");
	}
	return n < 0 || (size_t)n >= size ? 0 : n;
}

void health_foreach(uint64_t now_ms,
                    void (*fn)(const char *server, size_t len, enum health_state st,
                               void *arg), void *arg)
{
	pthread_rwlock_rdlock(&hlock);
	for (size_t i = 0; i < n_table; i++)
		fn(table[i].server, table[i].len, entry_state(&table[i], now_ms), arg);
	pthread_rwlock_unlock(&hlock);
}

void health_stats_get(struct health_stats *s)
{
	s->opened = atomic_load(&hstats.opened);
	s->closed = atomic_load(&hstats.closed);
	s->revoked = atomic_load(&hstats.revoked);
}

int health_cooldown(const char *server, size_t len, uint64_t until_ms)
{
	struct hentry *e;

	pthread_rwlock_rdlock(&hlock);
	e = find(server, len);
	if (e) {
		pthread_mutex_lock(&e->mu);
		atomic_store(&e->until_ms, until_ms);
		atomic_store(&e->probe_ms, 0);
		atomic_store(&e->state, until_ms ? HEALTH_OPEN : HEALTH_CLOSED);
		e->fails = 0;
		pthread_mutex_unlock(&e->mu);
	}
	pthread_rwlock_unlock(&hlock);
	return e ? 0 : -1;
}

/*
 * Credential health (contract in realms/health.h): a sorted array of
 * entries (server name, breaker, key state), swapped whole under a write
 * lock on reload and read under a read lock. Readers (every verdict and
 * attempt) only load atomics; writers of one entry (attempt results and
 * probe results, from any thread) serialise on that entry's mutex, so the
 * table's write lock is taken only by reloads. Pure apart from the locks
 * and the log: time is passed in.
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
#include <realms/sched.h>

enum key_state { KEY_OK = 0, KEY_SUSPECT, KEY_REVOKED };

struct hentry {
	char *server;
	size_t len;
	pthread_mutex_t mu;             /* writers of the fields below */
	_Atomic int state;              /* the breaker: CLOSED or OPEN */
	_Atomic uint64_t until_ms;      /* OPEN: no traffic before this */
	_Atomic uint64_t probe_ms;      /* half-open: when the probe was claimed */
	_Atomic int key;                /* enum key_state */
	_Atomic uint64_t avoid_ms;      /* passed over by choices before this */
	unsigned fails;                 /* failures of distinct requests (under mu) */
	uint64_t last_fail_rid;         /* hash of the request of the last one */
	int key_probing;                /* a key probe is in flight (under mu) */
	uint64_t key_probe_at_ms;       /* the next key probe, not before (under mu) */
};

static struct hentry *table;
static size_t n_table;
static pthread_rwlock_t hlock = PTHREAD_RWLOCK_INITIALIZER;

static _Atomic unsigned pol_failures = CFG_FAILURES_DEFAULT;
static _Atomic uint64_t pol_cooldown_ms = CFG_COOLDOWN_DEFAULT_S * 1000ull;
static _Atomic uint64_t pol_avoid_ms = CFG_AVOID_DEFAULT_S * 1000ull;
static void (*_Atomic probe_hook)(void);

static struct {
	_Atomic uint64_t opened, closed, suspected, revoked, restored, avoided;
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
		atomic_store(&pol_avoid_ms, (uint64_t)cfg->failover.avoid_s * 1000u);
	}

	pthread_rwlock_wrlock(&hlock);
	for (size_t i = 0; i < cfg->n_creds; i++) {
		struct hentry *e = find(nt[i].server, nt[i].len);

		if (!e)
			continue;
		pthread_mutex_lock(&e->mu);
		atomic_store(&nt[i].state, atomic_load(&e->state));
		atomic_store(&nt[i].until_ms, atomic_load(&e->until_ms));
		atomic_store(&nt[i].probe_ms, atomic_load(&e->probe_ms));
		atomic_store(&nt[i].avoid_ms, atomic_load(&e->avoid_ms));
		nt[i].fails = e->fails;
		nt[i].last_fail_rid = e->last_fail_rid;
		if (atomic_load(&e->key) == KEY_REVOKED)
			rlog(LOG_LVL_INFO, "credential %.*s: back in service after the reload",
			     (int)e->len, e->server);
		else
			atomic_store(&nt[i].key, atomic_load(&e->key));
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

/* The breaker as seen at now_ms, half-open included. */
static enum health_state breaker_state(const struct hentry *e, uint64_t now_ms)
{
	int st = atomic_load_explicit(&e->state, memory_order_acquire);

	if (st == HEALTH_OPEN && now_ms >= atomic_load(&e->until_ms))
		return HEALTH_HALF_OPEN;
	return (enum health_state)st;
}

static enum health_state entry_state(const struct hentry *e, uint64_t now_ms)
{
	enum health_state b = breaker_state(e, now_ms);
	int k = atomic_load_explicit(&e->key, memory_order_acquire);

	if (k == KEY_REVOKED)
		return HEALTH_REVOKED;
	if (k == KEY_SUSPECT && b == HEALTH_CLOSED)
		return HEALTH_SUSPECT;
	return b;
}

/* A half-open credential can take the probe: none claimed, or the claimed
 * one never reported back within a cooldown period. */
static int probe_free(const struct hentry *e, uint64_t now_ms)
{
	uint64_t p = atomic_load(&e->probe_ms);

	return p == 0 || now_ms - p >= atomic_load(&pol_cooldown_ms);
}

/* Asks judge about cred_id's entry, under the table's read lock; 1 for an
 * id or a credential the table does not know. */
static int judge_cred(const struct realms_config *cfg, int cred_id, uint64_t now_ms,
                      int (*judge)(const struct hentry *, uint64_t))
{
	const struct cfg_cred *c;
	struct hentry *e;
	int ok = 1;

	if (cred_id < 0 || (size_t)cred_id >= cfg->n_creds)
		return 1;
	c = cfg->creds[cred_id];
	pthread_rwlock_rdlock(&hlock);
	e = find(c->server, c->server_len);
	if (e)
		ok = judge(e, now_ms);
	pthread_rwlock_unlock(&hlock);
	return ok;
}

static int judge_available(const struct hentry *e, uint64_t now_ms)
{
	switch (entry_state(e, now_ms)) {
	case HEALTH_CLOSED:
	case HEALTH_SUSPECT:   return 1;
	case HEALTH_HALF_OPEN: return probe_free(e, now_ms);
	default:               return 0;
	}
}

static int judge_preferred(const struct hentry *e, uint64_t now_ms)
{
	return now_ms >= atomic_load_explicit(&e->avoid_ms, memory_order_acquire);
}

int health_available(const struct realms_config *cfg, int cred_id, uint64_t now_ms)
{
	return judge_cred(cfg, cred_id, now_ms, judge_available);
}

int health_preferred(const struct realms_config *cfg, int cred_id, uint64_t now_ms)
{
	return judge_cred(cfg, cred_id, now_ms, judge_preferred);
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
	e->last_fail_rid = 0;
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

/* The key of an outcome's request: 0 when it has none (every such failure
 * counts). */
static uint64_t rid_key(const struct health_outcome *o)
{
	uint64_t k;

	if (!o->rid || !o->rid_len)
		return 0;
	k = sched_hash(o->rid, o->rid_len, 0x6661696cULL);
	return k ? k : 1;
}

static void call_probe_hook(void)
{
	void (*fn)(void) = atomic_load(&probe_hook);

	if (fn)
		fn();
}

/* A 401: the key may be refused, or the request may have been one the
 * provider reads differently. Only a probe with the key alone can tell;
 * meanwhile the credential serves. Returns whether a probe became due. */
static int key_suspect(struct hentry *e, const struct health_outcome *o, uint64_t now_ms)
{
	if (atomic_load(&e->key) != KEY_OK)
		return 0;
	atomic_store_explicit(&e->key, KEY_SUSPECT, memory_order_release);
	e->key_probe_at_ms = now_ms;
	atomic_fetch_add(&hstats.suspected, 1);
	rlog(LOG_LVL_WARN, "credential %.*s: the upstream answered 401 to a request; "
	     "probing the key before taking it out", (int)e->len, e->server);
	return 1;
}

/* A failed attempt (5xx, 529, no response): the next choices pass the
 * credential over for failover.avoid, whatever its breaker's count, so
 * a client's own retry lands elsewhere at once. */
static void avoid(struct hentry *e, const struct health_outcome *o, uint64_t now_ms)
{
	uint64_t ms = atomic_load(&pol_avoid_ms);
	char what[32];

	if (!ms)
		return;
	if (now_ms >= atomic_load(&e->avoid_ms)) {
		atomic_fetch_add(&hstats.avoided, 1);
		rlog(LOG_LVL_INFO, "credential %.*s: attempt failed (%s); passed over for %" PRIu64
		     " ms", (int)e->len, e->server, outcome_str(o, what, sizeof(what)), ms);
	}
	atomic_store_explicit(&e->avoid_ms, now_ms + ms, memory_order_release);
}

/* Returns whether a key probe became due. */
static int report_locked(struct hentry *e, const struct health_outcome *o, uint64_t now_ms)
{
	enum health_state st = breaker_state(e, now_ms);
	uint64_t cool = atomic_load(&pol_cooldown_ms);
	const int name_len = (int)e->len;
	uint64_t rk;
	char what[32];

	if (atomic_load(&e->key) == KEY_REVOKED)
		return 0;   /* late answers of earlier attempts: the probe decides */
	if (o->status == 401)
		return key_suspect(e, o, now_ms);
	if (o->status == 429) {
		int64_t ra = o->retry_after_s;
		uint64_t ms = ra >= 0 ? (uint64_t)(ra > HEALTH_RETRY_AFTER_MAX_S ?
		              HEALTH_RETRY_AFTER_MAX_S : ra) * 1000u : cool;

		open_until(e, now_ms + ms);
		rlog(LOG_LVL_WARN, "credential %.*s: rate limited (429%s); open for %" PRIu64 " ms",
		     name_len, e->server, ra >= 0 ? ", retry-after honoured" : "", ms);
		return 0;
	}
	if (o->status == 0 || o->status >= 500) {
		if (st != HEALTH_OPEN)
			avoid(e, o, now_ms);
		if (st == HEALTH_HALF_OPEN) {
			open_until(e, now_ms + cool);
			rlog(LOG_LVL_WARN, "credential %.*s: probe failed (%s); open again for %" PRIu64
			     " ms", name_len, e->server, outcome_str(o, what, sizeof(what)), cool);
			return 0;
		}
		if (st != HEALTH_CLOSED)
			return 0;
		/* One request failing twice here (an attempt beyond the number
		 * of credentials) is one piece of evidence, not two. */
		rk = rid_key(o);
		if (rk && rk == e->last_fail_rid)
			return 0;
		e->last_fail_rid = rk;
		if (++e->fails >= atomic_load(&pol_failures)) {
			unsigned n = e->fails;

			open_until(e, now_ms + cool);
			rlog(LOG_LVL_WARN, "credential %.*s: %u requests failed in a row (last: %s); "
			     "open for %" PRIu64 " ms", name_len, e->server, n,
			     outcome_str(o, what, sizeof(what)), cool);
		}
		return 0;
	}
	/* The upstream answered: a half-open breaker closes. A 2xx also
	 * resets the count; a 4xx belongs to the request and counts neither
	 * way. */
	if (st == HEALTH_HALF_OPEN) {
		atomic_store(&e->probe_ms, 0);
		atomic_store_explicit(&e->state, HEALTH_CLOSED, memory_order_release);
		atomic_fetch_add(&hstats.closed, 1);
		rlog(LOG_LVL_INFO, "credential %.*s: probe answered %d; closed", name_len,
		     e->server, o->status);
	}
	if (st != HEALTH_OPEN && o->status < 400) {
		e->fails = 0;
		e->last_fail_rid = 0;
	}
	/* A 2xx: the credential serves; nothing left to avoid. */
	if (st != HEALTH_OPEN && o->status >= 200 && o->status < 300)
		atomic_store_explicit(&e->avoid_ms, 0, memory_order_release);
	return 0;
}

int health_report(const char *server, size_t len, const struct health_outcome *o,
                  uint64_t now_ms)
{
	struct hentry *e;
	int due = 0;

	pthread_rwlock_rdlock(&hlock);
	e = find(server, len);
	if (e) {
		pthread_mutex_lock(&e->mu);
		due = report_locked(e, o, now_ms);
		pthread_mutex_unlock(&e->mu);
	}
	pthread_rwlock_unlock(&hlock);
	if (due)
		call_probe_hook();
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

void health_foreach(uint64_t now_ms,
                    void (*fn)(const char *server, size_t len, enum health_state st,
                               void *arg), void *arg)
{
	pthread_rwlock_rdlock(&hlock);
	for (size_t i = 0; i < n_table; i++)
		fn(table[i].server, table[i].len, entry_state(&table[i], now_ms), arg);
	pthread_rwlock_unlock(&hlock);
}

/* ---------------------------------------------------------------------- */
/* Key probes                                                             */
/* ---------------------------------------------------------------------- */

int health_probe_next(uint64_t now_ms, char *server, size_t size)
{
	int found = 0;

	pthread_rwlock_rdlock(&hlock);
	for (size_t i = 0; i < n_table && !found; i++) {
		struct hentry *e = &table[i];

		if (atomic_load(&e->key) == KEY_OK || e->len >= size)
			continue;
		pthread_mutex_lock(&e->mu);
		if (atomic_load(&e->key) != KEY_OK && !e->key_probing &&
		    now_ms >= e->key_probe_at_ms) {
			e->key_probing = 1;
			memcpy(server, e->server, e->len);
			server[e->len] = '\0';
			found = 1;
		}
		pthread_mutex_unlock(&e->mu);
	}
	pthread_rwlock_unlock(&hlock);
	return found;
}

int health_probe_result(const char *server, size_t len, int status, uint64_t now_ms)
{
	uint64_t cool = atomic_load(&pol_cooldown_ms);
	struct hentry *e;
	int k;

	pthread_rwlock_rdlock(&hlock);
	e = find(server, len);
	if (e) {
		pthread_mutex_lock(&e->mu);
		e->key_probing = 0;
		k = atomic_load(&e->key);
		if (k != KEY_OK && status >= 200 && status < 300) {
			atomic_store_explicit(&e->key, KEY_OK, memory_order_release);
			if (k == KEY_REVOKED)
				atomic_fetch_add(&hstats.restored, 1);
			rlog(LOG_LVL_INFO, "credential %.*s: key probe answered %d; %s", (int)e->len,
			     e->server, status, k == KEY_REVOKED ? "back in service" : "the key is fine");
		} else if (k != KEY_OK && status == 401) {
			e->key_probe_at_ms = now_ms + cool;
			if (k == KEY_SUSPECT) {
				atomic_store_explicit(&e->key, KEY_REVOKED, memory_order_release);
				atomic_fetch_add(&hstats.revoked, 1);
				rlog(LOG_LVL_ERR, "credential %.*s: the upstream refuses the key "
				     "(401 to a probe); out of service, probed again every %" PRIu64
				     " ms", (int)e->len, e->server, cool);
			}
		} else if (k != KEY_OK) {
			/* Inconclusive: keep the state, ask again later. */
			e->key_probe_at_ms = now_ms + cool;
			if (k == KEY_SUSPECT)
				rlog(LOG_LVL_WARN, "credential %.*s: key probe inconclusive (%s %d); "
				     "kept in service, probing again in %" PRIu64 " ms", (int)e->len,
				     e->server, status ? "status" : "no answer", status, cool);
		}
		pthread_mutex_unlock(&e->mu);
	}
	pthread_rwlock_unlock(&hlock);
	return e ? 0 : -1;
}

void health_set_probe_hook(void (*fn)(void))
{
	atomic_store(&probe_hook, fn);
}

void health_stats_get(struct health_stats *s)
{
	s->opened = atomic_load(&hstats.opened);
	s->closed = atomic_load(&hstats.closed);
	s->suspected = atomic_load(&hstats.suspected);
	s->revoked = atomic_load(&hstats.revoked);
	s->restored = atomic_load(&hstats.restored);
	s->avoided = atomic_load(&hstats.avoided);
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
		atomic_store(&e->avoid_ms, 0);
		e->fails = 0;
		e->last_fail_rid = 0;
		pthread_mutex_unlock(&e->mu);
	}
	pthread_rwlock_unlock(&hlock);
	return e ? 0 : -1;
}

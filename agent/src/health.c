/*
 * Credential health table: a sorted array of (server name, cooldown end),
 * swapped whole under a write lock on reload and read under a read lock.
 * Cooldown ends are atomics, so writers of state never take the write lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <realms/config-t.h>
#include <realms/health.h>

struct hentry {
	char *server;
	size_t len;
	_Atomic uint64_t until_ms;
};

static struct hentry *table;
static size_t n_table;
static pthread_rwlock_t hlock = PTHREAD_RWLOCK_INITIALIZER;

uint64_t clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t clock_unix_s(void)
{
	return (int64_t)time(NULL);
}

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
		if (!nt[i].server) {
			while (i--)
				free(nt[i].server);
			free(nt);
			return -1;
		}
	}
	qsort(nt, cfg->n_creds, sizeof(*nt), cmp_entry);

	pthread_rwlock_wrlock(&hlock);
	for (size_t i = 0; i < cfg->n_creds; i++) {
		struct hentry *e = find(nt[i].server, nt[i].len);

		if (e)
			atomic_store(&nt[i].until_ms, atomic_load(&e->until_ms));
	}
	old = table;
	n_old = n_table;
	table = nt;
	n_table = cfg->n_creds;
	pthread_rwlock_unlock(&hlock);

	for (size_t i = 0; i < n_old; i++)
		free(old[i].server);
	free(old);
	return 0;
}

uint64_t health_cool_until(const char *server, size_t len)
{
	struct hentry *e;
	uint64_t v = 0;

	pthread_rwlock_rdlock(&hlock);
	e = find(server, len);
	if (e)
		v = atomic_load_explicit(&e->until_ms, memory_order_relaxed);
	pthread_rwlock_unlock(&hlock);
	return v;
}

int health_available(const struct realms_config *cfg, int cred_id, uint64_t now_ms)
{
	const struct cfg_cred *c;

	if (cred_id < 0 || (size_t)cred_id >= cfg->n_creds)
		return 1;
	c = cfg->creds[cred_id];
	return health_cool_until(c->server, c->server_len) <= now_ms;
}

int health_cooldown(const char *server, size_t len, uint64_t until_ms)
{
	struct hentry *e;

	pthread_rwlock_rdlock(&hlock);
	e = find(server, len);
	if (e)
		atomic_store_explicit(&e->until_ms, until_ms, memory_order_relaxed);
	pthread_rwlock_unlock(&hlock);
	return e ? 0 : -1;
}

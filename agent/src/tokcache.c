/*
 * Token cache. Open addressing over TOKCACHE_SLOTS, keyed by the token's
 * SHA-256 (already uniformly distributed: its first bytes are the index).
 * A probe window of TOKCACHE_PROBE slots; when all are taken, the entry
 * stored longest ago is replaced, so the table never grows.
 */
#include <pthread.h>
#include <string.h>

#include <realms/limits.h>
#include <realms/tokcache.h>

struct tc_slot {
	uint8_t used;
	uint8_t invalid;     /* invalidated: a MISS until stored again */
	uint8_t hash[TOKCACHE_KEY_LEN];
	uint64_t stored_ms;
	struct tok_info info;
};

static struct tc_slot slots[TOKCACHE_SLOTS];
static unsigned int used_count;
static uint64_t epoch;          /* invalidations so far, under tc_lock */
static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t tokcache_epoch(void)
{
	uint64_t e;

	pthread_mutex_lock(&tc_lock);
	e = epoch;
	pthread_mutex_unlock(&tc_lock);
	return e;
}

static unsigned int slot_index(const uint8_t *hash)
{
	uint32_t v;

	memcpy(&v, hash, sizeof(v));
	return v % TOKCACHE_SLOTS;
}

/* The slot holding hash, or NULL. Called locked. */
static struct tc_slot *find(const uint8_t *hash)
{
	unsigned int i = slot_index(hash);

	for (int n = 0; n < TOKCACHE_PROBE; n++, i = (i + 1) % TOKCACHE_SLOTS)
		if (slots[i].used && memcmp(slots[i].hash, hash, TOKCACHE_KEY_LEN) == 0)
			return &slots[i];
	return NULL;
}

enum tokcache_res tokcache_get(const uint8_t hash[TOKCACHE_KEY_LEN],
                               struct tok_info *out, uint64_t now_ms)
{
	enum tokcache_res res = TOKCACHE_MISS;
	struct tc_slot *s;
	uint64_t age;

	pthread_mutex_lock(&tc_lock);
	s = find(hash);
	if (s && !s->invalid) {
		age = now_ms >= s->stored_ms ? now_ms - s->stored_ms : 0;
		if (s->info.status == TOK_UNKNOWN) {
			if (age < TOKCACHE_NEG_TTL_MS)
				res = TOKCACHE_FRESH;
		} else if (age < TOKCACHE_TTL_MS) {
			res = TOKCACHE_FRESH;
		} else if (age < TOKCACHE_TTL_MS + TOKCACHE_STALE_MS) {
			res = TOKCACHE_STALE;
		}
		if (res != TOKCACHE_MISS)
			*out = s->info;
	}
	pthread_mutex_unlock(&tc_lock);
	return res;
}

int tokcache_put(const uint8_t hash[TOKCACHE_KEY_LEN], const struct tok_info *info,
                 uint64_t now_ms, uint64_t since)
{
	struct tc_slot *s, *victim = NULL;
	unsigned int i;

	pthread_mutex_lock(&tc_lock);
	if (epoch != since) {
		pthread_mutex_unlock(&tc_lock);
		return 0;
	}
	s = find(hash);
	if (!s) {
		i = slot_index(hash);
		for (int n = 0; n < TOKCACHE_PROBE; n++, i = (i + 1) % TOKCACHE_SLOTS) {
			if (!slots[i].used || slots[i].invalid) {
				victim = &slots[i];
				break;
			}
			if (!victim || slots[i].stored_ms < victim->stored_ms)
				victim = &slots[i];
		}
		s = victim;
		if (!s->used)
			used_count++;
		s->used = 1;
		memcpy(s->hash, hash, TOKCACHE_KEY_LEN);
	}
	s->stored_ms = now_ms;
	s->invalid = 0;
	s->info = *info;
	pthread_mutex_unlock(&tc_lock);
	return 1;
}

void tokcache_invalidate(const uint8_t hash[TOKCACHE_KEY_LEN])
{
	struct tc_slot *s;

	pthread_mutex_lock(&tc_lock);
	s = find(hash);
	if (s)
		s->invalid = 1;   /* kept in place: the probe window stays intact */
	epoch++;
	pthread_mutex_unlock(&tc_lock);
}

void tokcache_clear(void)
{
	pthread_mutex_lock(&tc_lock);
	memset(slots, 0, sizeof(slots));
	used_count = 0;
	epoch++;
	pthread_mutex_unlock(&tc_lock);
}

unsigned int tokcache_count(void)
{
	unsigned int n;

	pthread_mutex_lock(&tc_lock);
	n = used_count;
	pthread_mutex_unlock(&tc_lock);
	return n;
}

/*
 * What each request in flight has tried (contract in realms/tried.h).
 * Pure apart from one process-wide mutex: open addressing over TRIED_SLOTS
 * keyed by a 64-bit hash of the request id, with a probe window of
 * TRIED_PROBE slots, like the token cache.
 */
#include <pthread.h>
#include <string.h>

#include <realms/sched.h>
#include <realms/tried.h>

struct tried_slot {
	uint64_t key;            /* 0: free */
	uint64_t expires_ms;
	uint64_t stored_ms;
	struct tried t;
};

static struct tried_slot slots[TRIED_SLOTS];
static pthread_mutex_t tlock = PTHREAD_MUTEX_INITIALIZER;

/* A request id's key: never 0, so 0 can mean "free". A collision of two
 * 64-bit hashes would only merge two requests' exclusions. */
static uint64_t rid_key(const char *rid, size_t len)
{
	uint64_t k = sched_hash(rid, len, 0x7472696564ULL);

	return k ? k : 1;
}

/* The slot holding key, or NULL. Called locked. */
static struct tried_slot *find(uint64_t key)
{
	size_t i = (size_t)(key % TRIED_SLOTS);

	for (int n = 0; n < TRIED_PROBE; n++, i = (i + 1) % TRIED_SLOTS)
		if (slots[i].key == key)
			return &slots[i];
	return NULL;
}

void tried_get(const char *rid, size_t len, uint64_t now_ms, struct tried *out)
{
	struct tried_slot *s;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&tlock);
	s = find(rid_key(rid, len));
	if (s && now_ms < s->expires_ms)
		*out = s->t;
	pthread_mutex_unlock(&tlock);
}

void tried_add(const char *rid, size_t len, int cred, uint64_t generation,
               uint64_t now_ms, uint64_t ttl_ms)
{
	uint64_t key = rid_key(rid, len);
	struct tried_slot *s, *victim = NULL;
	size_t i;

	pthread_mutex_lock(&tlock);
	s = find(key);
	if (s && (now_ms >= s->expires_ms || s->t.generation != generation))
		memset(&s->t, 0, sizeof(s->t));
	if (!s) {
		/* A free or expired slot of the window, else its oldest. */
		i = (size_t)(key % TRIED_SLOTS);
		for (int n = 0; n < TRIED_PROBE; n++, i = (i + 1) % TRIED_SLOTS) {
			if (!slots[i].key || now_ms >= slots[i].expires_ms) {
				victim = &slots[i];
				break;
			}
			if (!victim || slots[i].stored_ms < victim->stored_ms)
				victim = &slots[i];
		}
		s = victim;
		memset(s, 0, sizeof(*s));
		s->key = key;
	}
	if (s->t.n == TRIED_MAX_PER_REQ) {
		memmove(s->t.cred, s->t.cred + 1, (TRIED_MAX_PER_REQ - 1) * sizeof(s->t.cred[0]));
		s->t.n--;
	}
	s->t.cred[s->t.n++] = cred;
	s->t.generation = generation;
	s->stored_ms = now_ms;
	s->expires_ms = now_ms + ttl_ms;
	pthread_mutex_unlock(&tlock);
}

int tried_has(const struct tried *t, int cred)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->cred[i] == cred)
			return 1;
	return 0;
}

void tried_clear(void)
{
	pthread_mutex_lock(&tlock);
	memset(slots, 0, sizeof(slots));
	pthread_mutex_unlock(&tlock);
}

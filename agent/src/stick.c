/*
 * Sessions moved off their first choice (contract in realms/stick.h).
 * Pure apart from one process-wide mutex: open addressing over STICK_SLOTS
 * keyed by a 64-bit hash of the session id, with a probe window of
 * STICK_PROBE slots, like tried.c.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <realms/sched.h>
#include <realms/stick.h>

struct stick_slot {
	uint64_t key;                        /* 0: free */
	uint64_t expires_ms;
	uint64_t used_ms;                    /* last set or hit: eviction order */
	unsigned char len;
	char server[STICK_SERVER_MAX];
};

_Static_assert(STICK_SERVER_MAX <= 255, "server name lengths fit a byte");

static struct stick_slot slots[STICK_SLOTS];
static pthread_mutex_t slock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t moves;

/* A session id's key: never 0, so 0 can mean "free". A collision of two
 * 64-bit hashes would only make one session follow the other's move. */
static uint64_t sess_key(const char *s, size_t len)
{
	uint64_t k = sched_hash(s, len, 0x737469636bULL);

	return k ? k : 1;
}

/* The slot holding key, live or expired, or NULL. Called locked. */
static struct stick_slot *slot_of(uint64_t key)
{
	size_t i = (size_t)(key % STICK_SLOTS);

	for (int n = 0; n < STICK_PROBE; n++, i = (i + 1) % STICK_SLOTS)
		if (slots[i].key == key)
			return &slots[i];
	return NULL;
}

/* The live slot holding key at now_ms, or NULL. Called locked. */
static struct stick_slot *find(uint64_t key, uint64_t now_ms)
{
	struct stick_slot *s = slot_of(key);

	return s && now_ms < s->expires_ms ? s : NULL;
}

size_t stick_get(const char *sess, size_t slen, uint64_t now_ms, char *server, size_t size)
{
	struct stick_slot *s;
	size_t n = 0;

	if (!slen)
		return 0;
	pthread_mutex_lock(&slock);
	s = find(sess_key(sess, slen), now_ms);
	if (s && s->len < size) {
		n = s->len;
		memcpy(server, s->server, n);
		server[n] = '\0';
		s->used_ms = now_ms;
		s->expires_ms = now_ms + STICK_TTL_MS;
	}
	pthread_mutex_unlock(&slock);
	return n;
}

void stick_set(const char *sess, size_t slen, const char *server, size_t len, uint64_t now_ms)
{
	uint64_t key;
	struct stick_slot *s = NULL, *victim = NULL;
	size_t i;

	if (!slen || !len || len > STICK_SERVER_MAX)
		return;
	key = sess_key(sess, slen);
	pthread_mutex_lock(&slock);
	s = slot_of(key);
	if (s && now_ms >= s->expires_ms)
		s->len = 0;       /* expired: as new */
	if (!s) {
		/* A free or expired slot of the window, else its least
		 * recently used. */
		i = (size_t)(key % STICK_SLOTS);
		for (int n = 0; n < STICK_PROBE; n++, i = (i + 1) % STICK_SLOTS) {
			if (!slots[i].key || now_ms >= slots[i].expires_ms) {
				victim = &slots[i];
				break;
			}
			if (!victim || slots[i].used_ms < victim->used_ms)
				victim = &slots[i];
		}
		s = victim;
		memset(s, 0, sizeof(*s));
		s->key = key;
	}
	if (s->len != len || memcmp(s->server, server, len)) {
		memcpy(s->server, server, len);
		s->len = (unsigned char)len;
		atomic_fetch_add(&moves, 1);
	}
	s->used_ms = now_ms;
	s->expires_ms = now_ms + STICK_TTL_MS;
	pthread_mutex_unlock(&slock);
}

void stick_del(const char *sess, size_t slen)
{
	struct stick_slot *s;
	uint64_t key;

	if (!slen)
		return;
	key = sess_key(sess, slen);
	pthread_mutex_lock(&slock);
	s = slot_of(key);
	if (s)
		memset(s, 0, sizeof(*s));
	pthread_mutex_unlock(&slock);
}

uint64_t stick_moves(void)
{
	return atomic_load(&moves);
}

void stick_clear(void)
{
	pthread_mutex_lock(&slock);
	memset(slots, 0, sizeof(slots));
	pthread_mutex_unlock(&slock);
}

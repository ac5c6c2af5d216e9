/*
 * Avoidance and stickiness through failures: one failed attempt makes the
 * next choices (verdicts and retries) pass its credential over at once,
 * softly (a lone credential still serves), until failover.avoid passes or
 * a 2xx on it; tiers: any usable credential not avoided first, in tier
 * order, then the normal choice. The session table: a session moved off
 * its first rendezvous choice stays where it went after the first
 * recovers, moves again when that one fails, forgets after its TTL,
 * survives a full table by forgetting the least recently used, and never
 * points at a credential a reload removed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/config.h>
#include <realms/health.h>
#include <realms/limits.h>
#include <realms/stick.h>

#include "cfg_sq.h"
#include <realms/tried.h>
#include <realms/verdict.h>

#define S(lit) ((struct vslice){ (lit), strlen(lit) })

/* Two equal channels. Credential ids: a--k 0, b--k 1. */
static const char TWO[] =
	"{'models': ['m'], 'failover': {'failures': 3, 'cooldown': 10, 'avoid': 30},"
	" 'channels': ["
	"  {'name': 'a', 'base_url': 'https://a.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-a'}], 'models': ['m']},"
	"  {'name': 'b', 'base_url': 'https://b.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-b'}], 'models': ['m']}]}";

/* TWO after a reload that removed b and added c. */
static const char TWO_NO_B[] =
	"{'models': ['m'], 'failover': {'failures': 3, 'cooldown': 10, 'avoid': 30},"
	" 'channels': ["
	"  {'name': 'a', 'base_url': 'https://a.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-a'}], 'models': ['m']},"
	"  {'name': 'c', 'base_url': 'https://c.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-c'}], 'models': ['m']}]}";

/* Three equal credentials of one channel: t--a 0, t--b 1, t--c 2. */
static const char THREE[] =
	"{'models': ['m'], 'failover': {'failures': 3, 'cooldown': 10, 'avoid': 30},"
	" 'channels': ["
	"  {'name': 't', 'base_url': 'https://t.example',"
	"   'credentials': [{'name': 'a', 'key': 'sk-1'}, {'name': 'b', 'key': 'sk-2'},"
	"                   {'name': 'c', 'key': 'sk-3'}], 'models': ['m']}]}";

/* One credential only. */
static const char ONE[] =
	"{'models': ['m'], 'failover': {'failures': 3, 'cooldown': 10, 'avoid': 30},"
	" 'channels': ["
	"  {'name': 'solo', 'base_url': 'https://solo.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-1'}], 'models': ['m']}]}";

/* Tiers: hi--x 0, hi--y 1 (priority 10), lo--k 2 (priority 0). */
static const char TIERS[] =
	"{'models': ['m'], 'failover': {'failures': 3, 'cooldown': 10, 'avoid': 30},"
	" 'channels': ["
	"  {'name': 'hi', 'base_url': 'https://hi.example', 'priority': 10,"
	"   'credentials': [{'name': 'x', 'key': 'sk-1'}, {'name': 'y', 'key': 'sk-2'}],"
	"   'models': ['m']},"
	"  {'name': 'lo', 'base_url': 'https://lo.example', 'priority': 0,"
	"   'credentials': [{'name': 'k', 'key': 'sk-3'}], 'models': ['m']}]}";

/* TWO with avoidance off. */
static const char TWO_OFF[] =
	"{'models': ['m'], 'failover': {'failures': 3, 'cooldown': 10, 'avoid': 0},"
	" 'channels': ["
	"  {'name': 'a', 'base_url': 'https://a.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-a'}], 'models': ['m']},"
	"  {'name': 'b', 'base_url': 'https://b.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-b'}], 'models': ['m']}]}";

static uint64_t now = 1000000;   /* the monotonic clock, in ms */

/* The handler's environment: breakers and avoidance from health.c, the
 * session table, at `now`. */
static int avail(int cred_id, void *arg)
{
	return health_available(arg, cred_id, now);
}

static int pref(int cred_id, void *arg)
{
	return health_preferred(arg, cred_id, now);
}

static uint64_t xs_next(void *arg)
{
	uint64_t *s = arg;

	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static struct sched_env env_of(const struct realms_config *cfg, uint64_t *seed, int stick)
{
	return (struct sched_env){
		.available = avail, .avail_arg = (void *)cfg, .rand = xs_next, .rand_arg = seed,
		.preferred = pref, .pref_arg = (void *)cfg, .stick = stick, .now_ms = now,
	};
}

/* Parses a config written with ' for ", and makes it the one in force:
 * every breaker closed, nothing avoided, no session remembered. */
static struct realms_config *load(const char *sq)
{
	struct realms_config *c = cfg_sq_parse(sq);

	assert_int_equal(health_sync(c), 0);
	for (size_t i = 0; i < c->n_creds; i++)
		health_cooldown(c->creds[i]->server, c->creds[i]->server_len, 0);
	stick_clear();
	return c;
}

/* One attempt's result on server, as its own request. */
static void report(const char *server, int status)
{
	static unsigned seq;
	char rid[32];
	int n = snprintf(rid, sizeof(rid), "req_%u", ++seq);
	struct health_outcome o = { status, -1, rid, (size_t)n };

	assert_int_equal(health_report(server, strlen(server), &o, now), 0);
}

/* The verdict's credential for a request with session sess ("" none). */
static const char *choose_sess(const struct realms_config *cfg, const char *sess,
                               uint64_t seed, int stick)
{
	static const char body[] = "{\"model\":\"m\"}";
	struct sched_env e = env_of(cfg, &seed, stick);
	struct tok_info t;
	struct verdict_in in;
	struct verdict v;

	memset(&t, 0, sizeof(t));
	t.status = TOK_ACTIVE;
	snprintf(t.name, sizeof(t.name), "alice");
	snprintf(t.group, sizeof(t.group), "default");
	memset(&in, 0, sizeof(in));
	in.method = S("POST");
	in.path = S("/v1/messages");
	in.auth = S("");
	in.apikey = S("");
	in.session = (struct vslice){ sess, strlen(sess) };
	in.ctype = S("application/json");
	in.body = body;
	in.body_len = in.body_size = strlen(body);
	in.body_size_known = 1;
	in.body_prefix = 65536;
	assert_int_not_equal(verdict_route(&in, &v), ROUTE_NONE);
	verdict_decide(cfg, &in, &t, 1700000000, &e, &v);
	assert_int_equal(v.status, 0);
	return v.cred->server;
}

static const char *choose(const struct realms_config *cfg, uint64_t seed)
{
	return choose_sess(cfg, "", seed, 1);
}

/* A retry's credential: the request already tried `tried` (NULL-ended). */
static const char *retry(const struct realms_config *cfg, const char *sess,
                         const char *const *tried)
{
	static uint64_t seed = 7;
	struct sched_env e = env_of(cfg, &seed, 1);
	struct tried t = { .generation = cfg->generation };
	struct attempt_in in = {
		.primary = S(""), .model = S("m"), .group = S("default"),
		.session = { sess, strlen(sess) },
		.off = 9, .len = 3, .clen = 13, .tried = &t,
	};
	struct attempt a;

	for (size_t i = 0; tried[i]; i++)
		t.cred[t.n++] = config_cred_by_server(cfg, tried[i], strlen(tried[i]))->id;
	assert_int_equal(verdict_attempt(cfg, &in, &e, &a), 0);
	return a.cred->server;
}

/* How many of 64 choices without a session went to server. */
static int share(const struct realms_config *cfg, const char *server)
{
	int n = 0;

	for (uint64_t seed = 1; seed <= 64; seed++)
		n += !strcmp(choose(cfg, seed * 0x9e3779b97f4a7c15ULL), server);
	return n;
}

/* A session id whose first choice (every credential usable) is server. */
static const char *session_homed(const struct realms_config *cfg, const char *server,
                                 const char *prefix)
{
	static char sid[4][64];
	static int k;
	char *s = sid[k++ % 4];

	for (int i = 0; i < 1000; i++) {
		snprintf(s, 64, "%s-%d", prefix, i);
		if (!strcmp(choose_sess(cfg, s, 1, 0), server))
			return s;
	}
	fail_msg("no session homed on %s", server);
	return NULL;
}

/* ---- avoidance ------------------------------------------------------- */

static void test_one_failure_diverts(void **state)
{
	struct realms_config *cfg = load(TWO);

	assert_true(share(cfg, "a--k") > 10 && share(cfg, "b--k") > 10);
	for (int st = 500; st <= 529; st += 29) {
		report("a--k", st);
		assert_int_equal(health_preferred(cfg, 0, now), 0);
		assert_int_equal(share(cfg, "b--k"), 64);
		report("a--k", 200);
	}
	report("a--k", 0);   /* no response at all */
	assert_int_equal(share(cfg, "b--k"), 64);
	/* The breaker keeps counting as before: closed after one failure,
	 * open after failover.failures of distinct requests. */
	assert_int_equal(health_state("a--k", 4, now, NULL), HEALTH_CLOSED);
	report("a--k", 529);
	report("a--k", 503);
	assert_int_equal(health_state("a--k", 4, now, NULL), HEALTH_OPEN);
	config_unref(cfg);
}

static void test_4xx_do_not_avoid(void **state)
{
	struct realms_config *cfg = load(TWO);

	report("a--k", 403);
	report("a--k", 400);
	assert_int_equal(health_preferred(cfg, 0, now), 1);
	assert_true(share(cfg, "a--k") > 10);
	config_unref(cfg);
}

static void test_soft_fallback_single(void **state)
{
	struct realms_config *cfg = load(ONE);
	const char *const none[] = { NULL }, *const solo[] = { "solo--k", NULL };

	report("solo--k", 529);
	assert_int_equal(health_preferred(cfg, 0, now), 0);
	assert_string_equal(choose(cfg, 1), "solo--k");
	assert_string_equal(choose_sess(cfg, "s-1", 1, 1), "solo--k");
	assert_string_equal(retry(cfg, "", none), "solo--k");
	assert_string_equal(retry(cfg, "", solo), "solo--k");
	config_unref(cfg);

	/* Both of two avoided: the normal choice, among both. */
	cfg = load(TWO);
	report("a--k", 503);
	report("b--k", 503);
	assert_true(share(cfg, "a--k") > 10 && share(cfg, "b--k") > 10);
	config_unref(cfg);
}

static void test_expiry(void **state)
{
	struct realms_config *cfg = load(TWO);
	uint64_t t0 = now;

	report("a--k", 529);
	now = t0 + 29999;
	assert_int_equal(share(cfg, "b--k"), 64);
	now = t0 + 30000;
	assert_int_equal(health_preferred(cfg, 0, now), 1);
	assert_true(share(cfg, "a--k") > 10);
	/* A later failure starts a new period from its own time. */
	report("a--k", 502);
	now += 29999;
	assert_int_equal(share(cfg, "b--k"), 64);
	now += 1;
	config_unref(cfg);

	cfg = load(TWO_OFF);
	report("a--k", 529);
	assert_int_equal(health_preferred(cfg, 0, now), 1);
	assert_true(share(cfg, "a--k") > 10);
	config_unref(cfg);
}

static void test_success_ends_it(void **state)
{
	struct realms_config *cfg = load(TWO);

	report("a--k", 529);
	assert_int_equal(share(cfg, "b--k"), 64);
	report("a--k", 200);
	assert_int_equal(health_preferred(cfg, 0, now), 1);
	assert_true(share(cfg, "a--k") > 10);
	config_unref(cfg);
}

static void test_tiers(void **state)
{
	struct realms_config *cfg = load(TIERS);
	const char *const x[] = { "hi--x", NULL };

	/* Healthy: the high tier only. */
	assert_int_equal(share(cfg, "lo--k"), 0);
	/* One of the high tier avoided: its tier sibling, not the low tier. */
	report("hi--x", 529);
	assert_int_equal(share(cfg, "hi--y"), 64);
	/* The whole high tier avoided: a usable credential not avoided
	 * comes first, even in a lower tier. */
	report("hi--y", 529);
	assert_int_equal(share(cfg, "lo--k"), 64);
	/* A retry too. */
	assert_string_equal(retry(cfg, "", x), "lo--k");
	/* Everything avoided: the normal choice (the high tier). */
	report("lo--k", 529);
	assert_int_equal(share(cfg, "lo--k"), 0);
	config_unref(cfg);
}

static void test_retry_respects_it(void **state)
{
	struct realms_config *cfg = load(THREE);
	const char *const ta[] = { "t--a", NULL }, *const tac[] = { "t--a", "t--c", NULL };

	/* a failed in this request, b failed in another one: c. */
	report("t--b", 529);
	for (int i = 0; i < 20; i++)
		assert_string_equal(retry(cfg, "", ta), "t--c");
	/* Everything else tried: b, avoided, rather than nothing. */
	report("t--c", 529);
	assert_string_equal(retry(cfg, "", tac), "t--b");
	config_unref(cfg);
}

/* ---- the session table ----------------------------------------------- */

static void test_stick_table(void **state)
{
	char srv[STICK_SERVER_MAX + 1];
	uint64_t m0 = stick_moves();

	stick_clear();
	assert_int_equal(stick_get("s1", 2, now, srv, sizeof(srv)), 0);
	stick_set("s1", 2, "b--k", 4, now);
	assert_int_equal(stick_get("s1", 2, now, srv, sizeof(srv)), 4);
	assert_string_equal(srv, "b--k");
	assert_int_equal(stick_get("s2", 2, now, srv, sizeof(srv)), 0);
	/* The same server again is no move; another one is. */
	stick_set("s1", 2, "b--k", 4, now);
	assert_int_equal(stick_moves() - m0, 1);
	stick_set("s1", 2, "c--k", 4, now);
	assert_int_equal(stick_moves() - m0, 2);
	assert_int_equal(stick_get("s1", 2, now, srv, sizeof(srv)), 4);
	assert_string_equal(srv, "c--k");
	/* Too small a buffer: nothing copied. */
	assert_int_equal(stick_get("s1", 2, now, srv, 4), 0);
	/* TTL, refreshed on use. */
	assert_int_equal(stick_get("s1", 2, now + STICK_TTL_MS - 1, srv, sizeof(srv)), 4);
	assert_int_equal(stick_get("s1", 2, now + 2 * STICK_TTL_MS - 2, srv, sizeof(srv)), 4);
	assert_int_equal(stick_get("s1", 2, now + 3 * STICK_TTL_MS - 2, srv, sizeof(srv)), 0);
	/* Deleted. */
	stick_set("s3", 2, "a--k", 4, now);
	stick_del("s3", 2);
	assert_int_equal(stick_get("s3", 2, now, srv, sizeof(srv)), 0);
	/* No session, no name, a name too long: nothing kept. */
	stick_set("", 0, "a--k", 4, now);
	stick_set("s4", 2, "", 0, now);
	memset(srv, 'x', sizeof(srv));
	stick_set("s5", 2, srv, STICK_SERVER_MAX + 1, now);
	assert_int_equal(stick_get("s4", 2, now, srv, sizeof(srv)), 0);
	assert_int_equal(stick_get("s5", 2, now, srv, sizeof(srv)), 0);
}

static void test_stick_table_full(void **state)
{
	const size_t n = 4 * STICK_SLOTS;
	char sid[32], srv[STICK_SERVER_MAX + 1];
	size_t kept = 0, early = 0;
	uint64_t t = now;

	stick_clear();
	for (size_t i = 0; i < n; i++) {
		snprintf(sid, sizeof(sid), "full-%zu", i);
		stick_set(sid, strlen(sid), "b--k", 4, t + i);
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(sid, sizeof(sid), "full-%zu", i);
		if (stick_get(sid, strlen(sid), t + n, srv, sizeof(srv))) {
			kept++;
			early += i < n / 4;
		}
	}
	/* Bounded: never more than the slots; the recent ones stay, the
	 * oldest are the ones forgotten. */
	assert_true(kept <= STICK_SLOTS);
	assert_true(kept > STICK_SLOTS / 2);
	assert_true(early < kept / 8);
	snprintf(sid, sizeof(sid), "full-%zu", n - 1);
	assert_int_equal(stick_get(sid, strlen(sid), t + n, srv, sizeof(srv)), 4);
	stick_clear();
}

static void test_session_moves_once_and_stays(void **state)
{
	struct realms_config *cfg = load(TWO);
	const char *s = session_homed(cfg, "a--k", "moved");
	const char *other = session_homed(cfg, "a--k", "calm");
	char srv[STICK_SERVER_MAX + 1];

	assert_string_equal(choose_sess(cfg, s, 1, 1), "a--k");
	assert_int_equal(stick_get(s, strlen(s), now, srv, sizeof(srv)), 0);
	report("a--k", 529);
	assert_string_equal(choose_sess(cfg, s, 2, 1), "b--k");
	/* a recovers (a 2xx of another request, and time): the session
	 * stays on b, its cache's home now, turn after turn. */
	report("a--k", 200);
	now += 31000;
	for (uint64_t i = 0; i < 10; i++, now += 60000)
		assert_string_equal(choose_sess(cfg, s, i, 1), "b--k");
	/* Without the table it would have gone back: */
	assert_string_equal(choose_sess(cfg, s, 1, 0), "a--k");
	/* A session of a that saw no failure while a was out stays on a. */
	assert_string_equal(choose_sess(cfg, other, 1, 1), "a--k");
	assert_int_equal(stick_get(other, strlen(other), now, srv, sizeof(srv)), 0);
	/* Sessions without an id are unaffected: a takes its share. */
	assert_true(share(cfg, "a--k") > 10);
	config_unref(cfg);
}

static void test_session_moves_again(void **state)
{
	struct realms_config *cfg = load(THREE);
	const char *s = session_homed(cfg, "t--a", "again");
	const char *first, *second;
	const char *const none[] = { NULL };

	report("t--a", 529);
	second = choose_sess(cfg, s, 1, 1);
	assert_string_not_equal(second, "t--a");
	/* Its second choice fails in turn while a is still avoided: the
	 * session moves to its third, and stays there after both recover. */
	now += 1000;
	report(second, 503);
	first = choose_sess(cfg, s, 2, 1);
	assert_string_not_equal(first, "t--a");
	assert_string_not_equal(first, second);
	report("t--a", 200);
	report(second, 200);
	now += 40000;
	for (uint64_t i = 0; i < 5; i++)
		assert_string_equal(choose_sess(cfg, s, i, 1), first);
	/* Retries of the session's requests go there too. */
	assert_string_equal(retry(cfg, s, none), first);
	/* The third fails while the first is fine again: the session goes
	 * back to its first choice (the best of its order still usable),
	 * which holds no entry. */
	report(first, 529);
	assert_string_equal(choose_sess(cfg, s, 3, 1), "t--a");
	report(first, 200);
	now += 40000;
	assert_string_equal(choose_sess(cfg, s, 4, 1), "t--a");
	config_unref(cfg);
}

static void test_session_retry_records(void **state)
{
	struct realms_config *cfg = load(TWO);
	const char *s = session_homed(cfg, "a--k", "retry");
	const char *const ta[] = { "a--k", NULL };

	/* An in-request retry off a (its result not reported yet): the
	 * session moved, and its next turn stays on b. */
	assert_string_equal(retry(cfg, s, ta), "b--k");
	assert_string_equal(choose_sess(cfg, s, 1, 1), "b--k");
	config_unref(cfg);
}

static void test_session_ttl(void **state)
{
	struct realms_config *cfg = load(TWO);
	const char *s = session_homed(cfg, "a--k", "ttl");

	report("a--k", 529);
	assert_string_equal(choose_sess(cfg, s, 1, 1), "b--k");
	report("a--k", 200);
	now += STICK_TTL_MS - 1;
	assert_string_equal(choose_sess(cfg, s, 1, 1), "b--k");   /* refreshed */
	now += STICK_TTL_MS - 1;
	assert_string_equal(choose_sess(cfg, s, 1, 1), "b--k");
	now += STICK_TTL_MS;
	assert_string_equal(choose_sess(cfg, s, 1, 1), "a--k");   /* forgotten */
	config_unref(cfg);
}

static void test_session_tiers(void **state)
{
	struct realms_config *cfg = load(TIERS);
	const char *s = session_homed(cfg, "hi--x", "tier");
	char srv[STICK_SERVER_MAX + 1];

	/* The whole high tier out: the session goes down a tier; when the
	 * high tier recovers it goes back up (tiers are the operator's
	 * order), to its first choice, and holds no entry. */
	report("hi--x", 529);
	report("hi--y", 529);
	assert_string_equal(choose_sess(cfg, s, 1, 1), "lo--k");
	report("hi--x", 200);
	report("hi--y", 200);
	assert_string_equal(choose_sess(cfg, s, 1, 1), "hi--x");
	assert_int_equal(stick_get(s, strlen(s), now, srv, sizeof(srv)), 0);
	/* Within the tier it stays where it moved. */
	report("hi--x", 529);
	assert_string_equal(choose_sess(cfg, s, 1, 1), "hi--y");
	report("hi--x", 200);
	assert_string_equal(choose_sess(cfg, s, 1, 1), "hi--y");
	config_unref(cfg);
}

static void test_session_reload(void **state)
{
	struct realms_config *cfg = load(TWO), *next;
	const char *s = session_homed(cfg, "a--k", "reload");
	char srv[STICK_SERVER_MAX + 1];
	struct cfg_diag d;
	char json[sizeof(TWO_NO_B)];

	report("a--k", 529);
	assert_string_equal(choose_sess(cfg, s, 1, 1), "b--k");
	report("a--k", 200);
	/* A reload that keeps b (a new generation): the session stays. */
	for (size_t i = 0; i < sizeof(TWO); i++)
		json[i] = TWO[i] == '\'' ? '"' : TWO[i];
	cfg_diag_init(&d);
	next = config_parse(json, strlen(json), "t.json", &d);
	cfg_diag_free(&d);
	assert_non_null(next);
	assert_int_not_equal(next->generation, cfg->generation);
	assert_int_equal(health_sync(next), 0);
	config_unref(cfg);
	cfg = next;
	assert_string_equal(choose_sess(cfg, s, 1, 1), "b--k");
	/* A reload that removed b: the session never points at it, and
	 * goes to its choice in the new configuration. */
	for (size_t i = 0; i < sizeof(TWO_NO_B); i++)
		json[i] = TWO_NO_B[i] == '\'' ? '"' : TWO_NO_B[i];
	cfg_diag_init(&d);
	next = config_parse(json, strlen(json), "t.json", &d);
	cfg_diag_free(&d);
	assert_non_null(next);
	assert_int_equal(health_sync(next), 0);
	config_unref(cfg);
	cfg = next;
	assert_string_equal(choose_sess(cfg, s, 1, 0), choose_sess(cfg, s, 1, 1));
	assert_string_not_equal(choose_sess(cfg, s, 1, 1), "b--k");
	if (stick_get(s, strlen(s), now, srv, sizeof(srv)))
		assert_non_null(config_cred_by_server(cfg, srv, strlen(srv)));
	config_unref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_failure_diverts),
		cmocka_unit_test(test_4xx_do_not_avoid),
		cmocka_unit_test(test_soft_fallback_single),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_success_ends_it),
		cmocka_unit_test(test_tiers),
		cmocka_unit_test(test_retry_respects_it),
		cmocka_unit_test(test_stick_table),
		cmocka_unit_test(test_stick_table_full),
		cmocka_unit_test(test_session_moves_once_and_stays),
		cmocka_unit_test(test_session_moves_again),
		cmocka_unit_test(test_session_retry_records),
		cmocka_unit_test(test_session_ttl),
		cmocka_unit_test(test_session_tiers),
		cmocka_unit_test(test_session_reload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

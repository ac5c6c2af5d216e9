/*
 * libFuzzer target for the SSE parser and usage extraction. The first input
 * byte picks the options (want every event or the usage ones only), the
 * second seeds the chunking; the rest is the stream. It is parsed whole, in
 * pseudo-random chunks and (when short) one byte at a time, and checked:
 *  - the three runs dispatch the same events and end in the same usage and
 *    counters (a stream may be split anywhere);
 *  - counters add up: events = dispatched + skipped + dropped, bytes = size,
 *    nothing buffered past SSE_DATA_MAX;
 *  - a dispatched name is at most SSE_NAME_MAX bytes with no line end, data
 *    holds no \r and is NUL-terminated;
 *  - usage is cumulative, never added: taking any event twice gives the
 *    same usage as taking it once; flags stay within USAGE_FL_*;
 *  - usage_from_json over the stream bytes as a body: a body it accepts is
 *    refused without its last closing brace, and reading it twice is
 *    reading it once;
 *  - billing is monotonic in output tokens and 0 without a price;
 *  - with a gap (sse_gap) at a position the seed picks, the events are
 *    those of the whole run before the gap and a tail of the rest: a gap
 *    drops events, never invents or alters one, and the counters still
 *    add up.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <realms/billing.h>
#include <realms/prices.h>
#include <realms/sse.h>
#include <realms/usage.h>

#define FL_ALL  (USAGE_FL_START | USAGE_FL_DELTA | USAGE_FL_STOP | USAGE_FL_ERROR)

/* Not assert(): the fuzz build may define NDEBUG. */
static void need(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_sse: invariant failed: %s\n", what);
		abort();
	}
}

#define RUN_EVENTS_MAX 512

struct run {
	int want_all;
	uint64_t hash;        /* over every dispatched event's hash */
	uint64_t n;
	uint64_t ev[RUN_EVENTS_MAX];   /* each event's own hash, the first ones */
	struct usage u;
};

#define FNV_BASIS 0xcbf29ce484222325ULL

/* FNV-1a. */
static void hash_add(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		*h ^= s[i];
		*h *= 0x100000001b3ULL;
	}
}

static int want(void *arg, const char *name)
{
	const struct run *r = arg;

	need(strlen(name) <= SSE_NAME_MAX, "want: name length");
	if (r->want_all)
		return 1;
	return strcmp(name, "message_start") == 0 || strcmp(name, "message_delta") == 0 ||
	       strcmp(name, "message_stop") == 0 || strcmp(name, "error") == 0;
}

static int on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct run *r = arg;
	struct usage once, twice;
	size_t nl = strlen(name);
	int rc1, rc2;

	need(nl <= SSE_NAME_MAX, "name length");
	need(!memchr(name, '\n', nl) && !memchr(name, '\r', nl), "no line end in name");
	need(len <= SSE_DATA_MAX, "data length");
	need(data[len] == 0, "data NUL-terminated");
	need(!memchr(data, '\r', len), "no CR in data");

	/* The event's own hash, folded into the run's. */
	{
		uint64_t h = FNV_BASIS;

		hash_add(&h, name, nl + 1);
		hash_add(&h, &len, sizeof(len));
		hash_add(&h, data, len);
		if (r->n < RUN_EVENTS_MAX)
			r->ev[r->n] = h;
		hash_add(&r->hash, &h, sizeof(h));
	}
	r->n++;

	once = r->u;
	rc1 = usage_on_sse_event(&once, name, data, len);
	twice = once;
	rc2 = usage_on_sse_event(&twice, name, data, len);
	need(rc1 >= -1 && rc1 <= 1 && rc1 == rc2, "usage rc");
	need(memcmp(&once, &twice, sizeof(once)) == 0, "usage idempotent");
	need(rc1 != -1 || memcmp(&once, &r->u, sizeof(once)) == 0, "failed event changes nothing");
	need((once.flags & ~FL_ALL) == 0, "flags");
	need(memchr(once.service_tier, 0, sizeof(once.service_tier)) != NULL, "tier terminated");
	r->u = once;
	return 0;
}

struct result {
	struct run r;
	uint64_t bytes, events, dispatched, skipped, dropped;
	int pending;
};

static struct sse_parser parser;

static void finish(struct result *res, const struct run *r, const struct sse_parser *p,
                   size_t size)
{
	res->r = *r;
	res->bytes = p->bytes;
	res->events = p->events;
	res->dispatched = p->dispatched;
	res->skipped = p->skipped;
	res->dropped = p->dropped;
	res->pending = sse_pending(p);
	need(p->bytes == size, "bytes counted");
	need(p->events == p->dispatched + p->skipped + p->dropped, "events add up");
	need(p->dispatched == r->n, "dispatched = callbacks");
	need(p->data_hwm <= SSE_DATA_MAX, "high-water mark");
}

static void same(const struct result *a, const struct result *b)
{
	need(a->r.hash == b->r.hash && a->r.n == b->r.n, "same events");
	need(memcmp(&a->r.u, &b->r.u, sizeof(a->r.u)) == 0, "same usage");
	need(a->bytes == b->bytes && a->events == b->events &&
	     a->dispatched == b->dispatched && a->skipped == b->skipped &&
	     a->dropped == b->dropped && a->pending == b->pending, "same counters");
}

static void run_init(struct run *r, int want_all)
{
	memset(r, 0, sizeof(*r));
	r->want_all = want_all;
	r->hash = FNV_BASIS;
	usage_init(&r->u);
	sse_init(&parser, want, on_event, r);
}

static void check_body(const char *s, size_t size)
{
	const struct price *p = price_default("claude-sonnet-4-5", 17);
	struct usage u, again, more;
	size_t end = size;
	int rc;

	usage_init(&u);
	rc = usage_from_json(&u, s, size);
	need(rc >= -1 && rc <= 1, "body rc");
	if (rc == -1) {
		struct usage zero;

		usage_init(&zero);
		need(memcmp(&u, &zero, sizeof(u)) == 0, "failed body changes nothing");
		return;
	}
	need(rc == 0 || u.flags == USAGE_FL_START, "body flags");
	again = u;
	need(usage_from_json(&again, s, size) == rc, "body rc again");
	need(memcmp(&u, &again, sizeof(u)) == 0, "body idempotent");

	/* Without its closing brace the object is incomplete. */
	while (end && (s[end - 1] == ' ' || s[end - 1] == '\n' || s[end - 1] == '\r' ||
	               s[end - 1] == '\t'))
		end--;
	need(end && s[end - 1] == '}', "body ends with its brace");
	usage_init(&again);
	need(usage_from_json(&again, s, end - 1) == -1, "cut body refused");

	/* Billing: no price, no cost; one more output token never costs less. */
	need(billing_cost_nusd(NULL, &u) == 0, "no price");
	more = u;
	if (more.output < UINT64_MAX)
		more.output++;
	need(billing_cost_nusd(p, &more) >= billing_cost_nusd(p, &u), "monotonic");
}

/* The gapped run's events: a prefix of the whole run's, then a suffix. */
static void check_gap(const struct result *whole, const struct result *gapped)
{
	const struct run *w = &whole->r, *g = &gapped->r;
	uint64_t pre = 0, suf = 0;

	need(g->n <= w->n, "a gap adds no event");
	if (w->n > RUN_EVENTS_MAX)
		return;
	while (pre < g->n && g->ev[pre] == w->ev[pre])
		pre++;
	while (suf < g->n - pre && g->ev[g->n - 1 - suf] == w->ev[w->n - 1 - suf])
		suf++;
	need(pre + suf == g->n, "gapped events: a prefix and a suffix of the whole run's");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result whole, chunked, bytes;
	struct run r;
	const char *s;
	uint32_t seed;
	size_t i, n;
	int want_all;

	if (size < 2)
		return 0;
	want_all = data[0] & 1;
	seed = data[1] * 2654435761u + 1;
	s = (const char *)data + 2;
	size -= 2;

	run_init(&r, want_all);
	need(sse_feed(&parser, s, size) == (long)size, "feed whole");
	finish(&whole, &r, &parser, size);

	run_init(&r, want_all);
	for (i = 0; i < size; i += n) {
		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % 97;
		if (n > size - i)
			n = size - i;
		need(sse_feed(&parser, s + i, n) == (long)n, "feed chunk");
	}
	finish(&chunked, &r, &parser, size);
	same(&whole, &chunked);

	if (size <= 4096) {
		run_init(&r, want_all);
		for (i = 0; i < size; i++)
			need(sse_feed(&parser, s + i, 1) == 1, "feed byte");
		finish(&bytes, &r, &parser, size);
		same(&whole, &bytes);
	}

	{
		struct result gapped;
		size_t at = size ? (seed >> 8) % (size + 1) : 0;

		run_init(&r, want_all);
		need(sse_feed(&parser, s, at) == (long)at, "feed before the gap");
		sse_gap(&parser);
		need(sse_feed(&parser, s + at, size - at) == (long)(size - at), "feed after the gap");
		finish(&gapped, &r, &parser, size);
		need(parser.gaps == 1, "gap counted");
		check_gap(&whole, &gapped);
	}

	check_body(s, size);
	return 0;
}

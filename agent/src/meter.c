/*
 * Metering one mirrored response. SSE answers go through the incremental
 * parser (content deltas are skipped, not stored); JSON answers are kept
 * up to METER_JSON_MAX and parsed once at the end, since their usage
 * object comes last.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <realms/meter.h>
#include <realms/sse.h>
#include <realms/usage.h>

/* A non-streamed answer larger than this is not kept whole: its usage is
 * unreadable and the record says so (partial, unparsable). */
#define METER_JSON_MAX  (8u * 1024 * 1024)

struct meter {
	int sse;
	struct usage u;
	size_t bytes;
	/* JSON */
	char *json;
	size_t json_len, json_cap;
	int json_overflow;
	/* SSE (large: allocated only for streams) */
	struct sse_parser *sp;
};

/* Only these events carry usage or end states; deltas and pings are skipped
 * without being stored. */
static int want_event(void *arg, const char *name)
{
	return !strcmp(name, "message_start") || !strcmp(name, "message_delta") ||
	       !strcmp(name, "message_stop") || !strcmp(name, "error") || !*name;
}

static int on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct meter *m = arg;

	usage_on_sse_event(&m->u, name, data, len);
	return 0;
}

struct meter *meter_new(const char *ctype)
{
	struct meter *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	usage_init(&m->u);
	m->sse = ctype && strncasecmp(ctype, "text/event-stream", 17) == 0;
	if (m->sse) {
		m->sp = malloc(sizeof(*m->sp));
		if (!m->sp) {
			free(m);
			return NULL;
		}
		sse_init(m->sp, want_event, on_event, m);
	}
	return m;
}

/* The JSON answer cannot be read whole: its usage is unreadable. */
static void json_give_up(struct meter *m)
{
	m->json_overflow = 1;
	free(m->json);
	m->json = NULL;
	m->json_len = 0;
}

void meter_feed(struct meter *m, const char *data, size_t len)
{
	m->bytes += len;
	if (m->sse) {
		sse_feed(m->sp, data, len);
		return;
	}
	if (m->json_overflow)
		return;
	if (m->json_len + len > METER_JSON_MAX) {
		json_give_up(m);
		return;
	}
	if (m->json_len + len > m->json_cap) {
		size_t cap = m->json_cap ? m->json_cap : 4096;
		char *nj;

		while (cap < m->json_len + len)
			cap *= 2;
		nj = realloc(m->json, cap);
		if (!nj) {
			json_give_up(m);
			return;
		}
		m->json = nj;
		m->json_cap = cap;
	}
	memcpy(m->json + m->json_len, data, len);
	m->json_len += len;
}

void meter_gap(struct meter *m, unsigned long long skipped)
{
	m->bytes += skipped;
	if (m->sse) {
		sse_gap(m->sp);
		return;
	}
	json_give_up(m);
}

void meter_finish(struct meter *m, int ended, int lost, struct usage_record *rec)
{
	rec->stream = m->sse;
	rec->partial = USAGE_COMPLETE;
	if (!m->sse && m->json_len && !m->json_overflow)
		usage_from_json(&m->u, m->json, m->json_len);
	rec->u = m->u;

	if (lost)
		rec->partial = USAGE_PARTIAL_TAP_OVERFLOW;
	else if (m->u.flags & USAGE_FL_ERROR)
		rec->partial = USAGE_PARTIAL_UPSTREAM_ERROR;
	else if (!ended || (m->sse && !(m->u.flags & USAGE_FL_STOP)))
		/* HAProxy aborted the response: the client went away, or the
		 * upstream broke off or went silent past its timeout. In 2.6
		 * the tap cannot tell which; both keep what was seen. */
		rec->partial = USAGE_PARTIAL_TRUNCATED;
	else if (rec->status >= 200 && rec->status < 300 && !(m->u.flags & USAGE_FL_START))
		rec->partial = USAGE_PARTIAL_UNPARSABLE;
}

void meter_free(struct meter *m)
{
	if (!m)
		return;
	free(m->sp);
	free(m->json);
	free(m);
}

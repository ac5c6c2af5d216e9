/*
 * Metering one mirrored response (contract in realms/meter.h). Pure: no
 * I/O. SSE answers go through the incremental parser (content deltas are
 * skipped, not stored); JSON answers through the usage reader, which scans
 * them as they arrive and keeps only their usage object and model, so a
 * non-streamed answer costs no more memory than a streamed one.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <realms/meter.h>
#include <realms/sse.h>
#include <realms/usage.h>

struct meter {
	int sse;
	struct usage u;
	size_t bytes;
	struct usage_content content;   /* event streams: what was delivered */
	/* Each allocated only for its kind of answer (both are large). */
	struct usage_reader *jr;
	struct sse_parser *sp;
};

/* These events carry usage or end states; content deltas are measured for
 * the estimate of a cut stream (the tap sends only a stream's head and
 * tail, so there are few); pings are skipped without being stored. */
static int want_event(void *arg, const char *name)
{
	return !strcmp(name, "message_start") || !strcmp(name, "message_delta") ||
	       !strcmp(name, "message_stop") || !strcmp(name, "error") ||
	       !strcmp(name, "content_block_delta") || !*name;
}

static int on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct meter *m = arg;

	if (usage_on_sse_event(&m->u, name, data, len) == 0)
		usage_content_event(&m->content, data, len);
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
		if (!m->sp)
			goto fail;
		sse_init(m->sp, want_event, on_event, m);
	} else {
		m->jr = malloc(sizeof(*m->jr));
		if (!m->jr)
			goto fail;
		usage_reader_init(m->jr);
	}
	return m;
fail:
	free(m);
	return NULL;
}

void meter_feed(struct meter *m, const char *data, size_t len)
{
	m->bytes += len;
	if (m->sse)
		sse_feed(m->sp, data, len);
	else
		usage_reader_feed(m->jr, data, len);
}

void meter_gap(struct meter *m, unsigned long long skipped)
{
	m->bytes += skipped;
	m->content.skipped_bytes += skipped;
	if (m->sse)
		sse_gap(m->sp);
	else
		usage_reader_gap(m->jr);
}

/* Raises a count to its estimate when the provider's is missing or lower;
 * the record then says it holds an estimate. */
static void raise_to(struct usage_record *rec, uint64_t *count, uint64_t est)
{
	if (est > *count) {
		*count = est;
		rec->u.flags |= USAGE_FL_ESTIMATED;
	}
}

/* A 2xx answer cut short or without readable usage: what it delivered,
 * never zero. An error event is the provider's own end (its usage is its
 * bill) and bytes the tap gave up cannot be measured: both stay as seen. */
static void estimate(struct meter *m, struct usage_record *rec)
{
	if (rec->partial == USAGE_PARTIAL_UPSTREAM_ERROR ||
	    rec->partial == USAGE_PARTIAL_TAP_OVERFLOW)
		return;
	if (!(m->u.flags & USAGE_FL_START))
		raise_to(rec, &rec->u.input, usage_bytes_tokens(rec->req_bytes));
	if (m->sse && !(m->u.flags & USAGE_FL_DELTA))
		raise_to(rec, &rec->u.output, usage_content_tokens(&m->content));
	else if (!m->sse && !(m->u.flags & USAGE_FL_START))
		raise_to(rec, &rec->u.output, usage_bytes_tokens(m->bytes));
}

enum meter_json meter_finish(struct meter *m, int ended, int lost,
                             struct usage_record *rec)
{
	enum meter_json mj = METER_JSON_NONE;

	rec->stream = m->sse;
	rec->partial = USAGE_COMPLETE;
	if (!m->sse) {
		switch (usage_reader_finish(m->jr, &m->u)) {
		case 1:  mj = METER_JSON_USAGE;      break;
		case 0:  mj = METER_JSON_NO_USAGE;   break;
		default: mj = METER_JSON_UNREADABLE; break;
		}
	}
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
		rec->partial = USAGE_PARTIAL_UNPARSED;
	if (rec->status >= 200 && rec->status < 300)
		estimate(m, rec);
	return mj;
}

void meter_free(struct meter *m)
{
	if (!m)
		return;
	free(m->sp);
	if (m->jr) {
		usage_reader_release(m->jr);
		free(m->jr);
	}
	free(m);
}

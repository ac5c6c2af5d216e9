/*
 * Server-sent events: incremental parser (contract in realms/sse.h).
 *
 * A byte-level state machine over lines, so that a stream may be split at
 * any byte. Only three things are kept across feeds: the state within the
 * current line, the event name, and the event's data when it is wanted.
 * Values are handled as runs up to the next line end, not byte by byte, so
 * that a skipped 1 MB content delta costs one scan and no copy.
 */
#include <string.h>

#include <realms/sse.h>

static const unsigned char sse_bom[3] = { 0xef, 0xbb, 0xbf };

/* ------------------------------------------------------------------------ */
/* event                                                                    */
/* ------------------------------------------------------------------------ */

static void event_reset(struct sse_parser *p)
{
	p->disp = SSE_D_BUFFER;
	p->name_known = 0;
	p->name_bad = 0;
	p->name_len = 0;
	p->name[0] = 0;
	p->data_lines = 0;
	p->data_len = 0;
}

/* Gives up the event's data: it is skipped to the blank line and counted
 * as dropped there. */
static void event_drop(struct sse_parser *p)
{
	p->disp = SSE_D_DROP;
	p->data_len = 0;
}

/* A blank line. Returns 0, or -1 if on_event asked to stop. */
static int event_dispatch(struct sse_parser *p)
{
	int r = 0;

	/* The WHATWG rule: no data line, no event (an "event:" or "id:" alone
	 * only resets). */
	if (!p->data_lines)
		goto out;
	p->events++;
	switch (p->disp) {
	case SSE_D_BUFFER:
		p->dispatched++;
		p->data[p->data_len] = 0;
		if (p->on_event)
			r = p->on_event(p->arg, p->name, p->data, p->data_len);
		break;
	case SSE_D_SKIP:
		p->skipped++;
		break;
	case SSE_D_DROP:
		p->dropped++;
		break;
	}
out:
	event_reset(p);
	if (r) {
		p->err = 1;
		return -1;
	}
	return 0;
}

/* An "event:" line ended: the name decides what happens to the data (the
 * last "event:" line of an event wins, as in browsers). */
static void event_named(struct sse_parser *p)
{
	int w;

	p->name[p->name_len] = 0;
	p->name_known = 1;
	if (p->disp == SSE_D_DROP)
		return;
	if (p->name_bad) {
		/* Too long or holding a NUL: no name the caller knows, and
		 * one we could not hand over intact anyway. */
		event_drop(p);
		return;
	}
	w = p->want ? p->want(p->arg, p->name) : 1;
	if (!w) {
		p->disp = SSE_D_SKIP;
		p->data_len = 0;
	} else if (p->disp == SSE_D_SKIP && p->data_lines) {
		/* Renamed to a wanted name after data was skipped: that data
		 * is gone, so the event cannot be dispatched whole. */
		event_drop(p);
	} else {
		p->disp = SSE_D_BUFFER;
	}
}

/* A new "data:" line starts: its bytes follow via data_append(). */
static void data_line_begin(struct sse_parser *p)
{
	if (p->disp == SSE_D_BUFFER && p->data_lines) {
		if (p->data_len + 1 > SSE_DATA_MAX) {
			event_drop(p);
		} else {
			p->data[p->data_len++] = '\n';
			if (p->data_len > p->data_hwm)
				p->data_hwm = p->data_len;
		}
	}
	p->data_lines++;
}

static void data_append(struct sse_parser *p, const char *s, size_t n)
{
	if (p->disp != SSE_D_BUFFER || !n)
		return;
	if (n > SSE_DATA_MAX - p->data_len) {
		event_drop(p);
		return;
	}
	memcpy(p->data + p->data_len, s, n);
	p->data_len += n;
	if (p->data_len > p->data_hwm)
		p->data_hwm = p->data_len;
}

static void name_append(struct sse_parser *p, const char *s, size_t n)
{
	if (p->name_bad)
		return;
	if (n > SSE_NAME_MAX - p->name_len || memchr(s, 0, n)) {
		p->name_bad = 1;
		return;
	}
	memcpy(p->name + p->name_len, s, n);
	p->name_len += n;
}

/* ------------------------------------------------------------------------ */
/* lines                                                                    */
/* ------------------------------------------------------------------------ */

/* The field named by the bytes before the colon (or the whole line). A
 * field is matched exactly: "data " or "Data" are unknown fields. */
static enum sse_field field_of(const struct sse_parser *p)
{
	if (p->fname_len == 5 && memcmp(p->fname, "event", 5) == 0)
		return SSE_F_EVENT;
	if (p->fname_len == 4 && memcmp(p->fname, "data", 4) == 0)
		return SSE_F_DATA;
	return SSE_F_OTHER;
}

/* The field name is complete: start its value. */
static void field_begin(struct sse_parser *p)
{
	p->field = field_of(p);
	switch (p->field) {
	case SSE_F_EVENT:
		p->name_len = 0;
		p->name_bad = 0;
		break;
	case SSE_F_DATA:
		data_line_begin(p);
		break;
	case SSE_F_OTHER:
		break;
	}
}

/* A line end. Returns 0, or -1 if on_event asked to stop. */
static int line_end(struct sse_parser *p)
{
	enum sse_line_st st = p->st;

	p->st = SSE_ST_FIELD;
	if (st == SSE_ST_FIELD) {
		if (p->fname_len == 0)
			return event_dispatch(p);
		/* A field with no colon: its value is empty. */
		field_begin(p);
	} else if (st == SSE_ST_IGNORE) {
		p->fname_len = 0;
		return 0;
	}
	if (p->field == SSE_F_EVENT)
		event_named(p);
	p->fname_len = 0;
	p->field = SSE_F_OTHER;
	return 0;
}

/* Length of the run before the first \r or \n in s[0..n), n if none. */
static size_t run_len(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\n' || s[i] == '\r')
			break;
	return i;
}

/* Parses buf[0..len), the BOM question settled. Returns 0, or -1 if
 * on_event asked to stop. */
static int parse(struct sse_parser *p, const char *buf, size_t len)
{
	size_t i = 0, n;
	char c;

	while (i < len) {
		c = buf[i];
		if (p->cr) {
			/* \r\n split by a feed, or not: one line end. */
			p->cr = 0;
			if (c == '\n') {
				i++;
				continue;
			}
		}
		if (c == '\n' || c == '\r') {
			p->cr = c == '\r';
			i++;
			if (line_end(p) < 0)
				return -1;
			continue;
		}

		switch (p->st) {
		case SSE_ST_FIELD:
			i++;
			if (c != ':') {
				/* Longer names stop growing at the cap: they
				 * match no field we know anyway. */
				if (p->fname_len < sizeof(p->fname))
					p->fname[p->fname_len++] = c;
				break;
			}
			if (p->fname_len == 0) {
				p->st = SSE_ST_IGNORE;   /* a comment */
				break;
			}
			field_begin(p);
			p->st = p->field == SSE_F_OTHER ? SSE_ST_IGNORE : SSE_ST_SPACE;
			break;

		case SSE_ST_SPACE:
			p->st = SSE_ST_VALUE;
			if (c == ' ')
				i++;
			break;

		case SSE_ST_VALUE:
			n = run_len(buf + i, len - i);
			if (p->field == SSE_F_DATA)
				data_append(p, buf + i, n);
			else
				name_append(p, buf + i, n);
			i += n;
			break;

		case SSE_ST_IGNORE:
			i += run_len(buf + i, len - i);
			break;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */
/* ------------------------------------------------------------------------ */

void sse_init(struct sse_parser *p, sse_want_fn want, sse_event_fn on_event,
              void *arg)
{
	/* Not a memset of the whole struct: the data buffer is 64 KB and
	 * needs no clearing. */
	p->want = want;
	p->on_event = on_event;
	p->arg = arg;
	p->bytes = 0;
	p->events = 0;
	p->dispatched = 0;
	p->skipped = 0;
	p->dropped = 0;
	p->data_hwm = 0;
	p->gaps = 0;
	p->st = SSE_ST_FIELD;
	p->field = SSE_F_OTHER;
	p->fname_len = 0;
	p->cr = 0;
	p->bom = 0;
	p->bom_done = 0;
	p->err = 0;
	event_reset(p);
}

void sse_gap(struct sse_parser *p)
{
	p->gaps++;
	/* Wherever the gap fell, what follows it is not a stream start, and a
	 * \n after it does not pair with a \r before it. */
	p->bom_done = 1;
	p->cr = 0;
	p->fname_len = 0;
	p->field = SSE_F_OTHER;
	p->st = SSE_ST_IGNORE;
	/* The cut event, even if the gap fell between its lines or right after
	 * the blank line before it: it is counted as dropped at its end, and
	 * its later "event:" and "data:" lines cannot revive it. */
	if (!p->data_lines)
		p->data_lines = 1;
	event_drop(p);
}

long sse_feed(struct sse_parser *p, const char *buf, size_t len)
{
	size_t i = 0;

	if (p->err)
		return -1;
	p->bytes += len;

	/* A BOM may start the stream, split across feeds like anything else.
	 * If what started like one is not, its bytes are parsed as text. */
	while (!p->bom_done && i < len) {
		if ((unsigned char)buf[i] == sse_bom[p->bom]) {
			i++;
			if (++p->bom == sizeof(sse_bom))
				p->bom_done = 1;
			continue;
		}
		p->bom_done = 1;
		if (p->bom && parse(p, (const char *)sse_bom, p->bom) < 0)
			return -1;
	}
	if (parse(p, buf + i, len - i) < 0)
		return -1;
	return (long)len;
}

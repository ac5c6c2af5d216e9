/*
 * Server-sent events: the state of an incremental parser of one stream
 * (WHATWG "event stream interpretation", the subset a client of the
 * Anthropic Messages API needs).
 */
#ifndef REALMS_SSE_T_H
#define REALMS_SSE_T_H

#include <stddef.h>
#include <stdint.h>

#include <realms/limits.h>

/* Whether the caller wants the data of events called `name` (NUL-terminated,
 * possibly empty). Non-zero: buffer and dispatch it; 0: skip its data
 * without storing it. Asked once per "event:" line. */
typedef int (*sse_want_fn)(void *arg, const char *name);

/* One dispatched event. `name` is NUL-terminated ("" when the event had no
 * "event:" line); `data` is data_len bytes, multiple data lines joined with
 * "\n", followed by a NUL that is not counted (the data may hold NULs of its
 * own). Both point into the parser and are valid until the callback returns.
 * Return 0 to go on, anything else to stop the parser (sticky). */
typedef int (*sse_event_fn)(void *arg, const char *name, const char *data,
                            size_t data_len);

/* Where the parser is within a line. */
enum sse_line_st {
	SSE_ST_FIELD = 0,   /* at the start of a line or in its field name */
	SSE_ST_SPACE,       /* right after the field's ':' (one space is eaten) */
	SSE_ST_VALUE,       /* in the field's value */
	SSE_ST_IGNORE,      /* in a comment or a field we ignore, up to EOL */
};

/* The field of the current line. */
enum sse_field {
	SSE_F_OTHER = 0,    /* id, retry, unknown: ignored */
	SSE_F_EVENT,
	SSE_F_DATA,
};

/* What happens to the data of the event being received. */
enum sse_disp {
	SSE_D_BUFFER = 0,   /* wanted, or name not known yet: stored */
	SSE_D_SKIP,         /* name known and not wanted: skipped */
	SSE_D_DROP,         /* overflowed SSE_DATA_MAX (or bad name): skipped,
	                       counted in `dropped` */
};

struct sse_parser {
	/* Set by sse_init(), never changed by the parser. */
	sse_want_fn want;            /* NULL: every event is wanted */
	sse_event_fn on_event;       /* NULL: events are only counted */
	void *arg;

	/* Counters, for logs and tests. */
	uint64_t bytes;              /* bytes fed (BOM included) */
	uint64_t events;             /* events ended by a blank line with data */
	uint64_t dispatched;         /* of which passed to on_event */
	uint64_t skipped;            /* of which not wanted */
	uint64_t dropped;            /* of which too big or badly named */
	size_t data_hwm;             /* most data bytes ever buffered at once */
	uint64_t gaps;               /* sse_gap() calls */

	/* Line state. */
	enum sse_line_st st;
	enum sse_field field;
	char fname[8];               /* field name so far (first bytes) */
	size_t fname_len;            /* bytes in fname (stops at its size) */
	int cr;                      /* last line ended with \r: skip one \n */
	unsigned int bom;            /* bytes of a leading UTF-8 BOM matched */
	int bom_done;                /* past where a BOM may be */
	int err;                     /* on_event asked to stop (sticky) */

	/* Event state. */
	enum sse_disp disp;
	int name_known;              /* an "event:" line completed */
	int name_bad;                /* name too long or holding a NUL */
	size_t name_len;
	size_t data_lines;           /* data lines of this event so far */
	size_t data_len;             /* bytes in data (SSE_D_BUFFER only) */
	char name[SSE_NAME_MAX + 1];
	char data[SSE_DATA_MAX + 1];
};

#endif /* REALMS_SSE_T_H */

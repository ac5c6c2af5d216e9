/*
 * Configuration: one JSON file into an immutable struct realms_config.
 * I/O: config_load() reads the file, and the parse reads "file:" secrets;
 * everything else works on bytes.
 *
 * Three passes over the bytes:
 *   1. the strict JSON scanner (json.c, with its UTF-8 and surrogate
 *      checks), since jsmn alone accepts "[1 2]", "[1,]", "01" and trailing
 *      data: a broken file gets one precise line;
 *   2. jsmn (strict, parent links) tokenizes it;
 *   3. the walker reads sections in dependency order (groups, models,
 *      channels), whatever their order in the file, and reports every
 *      problem with its JSON path and line instead of stopping at the first.
 *
 * Everything the config owns lives in one arena, scrubbed with
 * explicit_bzero before it is freed: the secrets are in there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <realms/budget.h>
#include <realms/config.h>
#include <realms/json.h>
#include <realms/limits.h>
#include <realms/token.h>

/* ---------------------------------------------------------------------- */
/* Arena                                                                  */
/* ---------------------------------------------------------------------- */

struct cfg_arena {
	struct cfg_arena *next;
	size_t size;                /* bytes in data */
	size_t used;
	max_align_t data[];
};

#define ARENA_ALIGN   sizeof(max_align_t)

/* Zeroed memory from the arena, or NULL when out of memory. */
static void *arena_alloc(struct cfg_arena **a, size_t n)
{
	struct cfg_arena *b = *a;
	unsigned char *p;

	if (n > SIZE_MAX / 4)
		return NULL;
	n = n ? (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN : ARENA_ALIGN;
	if (!b || b->size - b->used < n) {
		size_t sz = b ? b->size * 2 : CFG_ARENA_MIN_BLK;

		if (sz > CFG_ARENA_MAX_BLK)
			sz = CFG_ARENA_MAX_BLK;
		if (sz < n)
			sz = n;
		b = malloc(sizeof(*b) + sz);
		if (!b)
			return NULL;
		b->next = *a;
		b->size = sz;
		b->used = 0;
		*a = b;
	}
	p = (unsigned char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

/* Scrubs and frees every block: credentials' keys are in there. */
static void arena_free(struct cfg_arena *a)
{
	while (a) {
		struct cfg_arena *next = a->next;

		explicit_bzero(a, sizeof(*a) + a->size);
		free(a);
		a = next;
	}
}

/* ---------------------------------------------------------------------- */
/* Diagnostics                                                            */
/* ---------------------------------------------------------------------- */

void cfg_diag_init(struct cfg_diag *d)
{
	memset(d, 0, sizeof(*d));
}

void cfg_diag_free(struct cfg_diag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->items[i].origin);
		free(d->items[i].path);
		free(d->items[i].msg);
	}
	free(d->items);
	memset(d, 0, sizeof(*d));
}

int cfg_diag_errors(const struct cfg_diag *d)
{
	return d ? d->errors : 0;
}

static void diag_vadd(struct cfg_diag *d, enum cfg_severity sev, bool exposed,
                      const char *origin, unsigned line, const char *path,
                      const char *fmt, va_list ap)
	__attribute__((format(printf, 7, 0)));

static void diag_vadd(struct cfg_diag *d, enum cfg_severity sev, bool exposed,
                      const char *origin, unsigned line, const char *path,
                      const char *fmt, va_list ap)
{
	struct cfg_problem *pb;

	if (!d)
		return;
	if (sev == CFG_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->n >= CFG_MAX_PROBLEMS)
		goto drop;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct cfg_problem *v = realloc(d->items, cap * sizeof(*v));

		if (!v)
			goto drop;
		d->items = v;
		d->cap = cap;
	}
	pb = &d->items[d->n];
	memset(pb, 0, sizeof(*pb));
	pb->severity = sev;
	pb->exposed = exposed;
	pb->line = line;
	pb->origin = strdup(origin ? origin : "config");
	pb->path = strdup(path ? path : "");
	if (vasprintf(&pb->msg, fmt, ap) < 0)
		pb->msg = NULL;
	if (!pb->origin || !pb->path || !pb->msg) {
		free(pb->origin);
		free(pb->path);
		free(pb->msg);
		goto drop;
	}
	d->n++;
	return;
drop:
	d->dropped++;
}

void cfg_diag_add(struct cfg_diag *d, enum cfg_severity sev,
                  const char *origin, unsigned line, const char *path,
                  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, sev, false, origin, line, path, fmt, ap);
	va_end(ap);
}

/* A warning that secrets are readable by other users (cfg_problem.exposed). */
static void diag_add_exposed(struct cfg_diag *d, const char *origin, unsigned line,
                             const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void diag_add_exposed(struct cfg_diag *d, const char *origin, unsigned line,
                             const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, CFG_WARNING, true, origin, line, path, fmt, ap);
	va_end(ap);
}

static void problem_print(const struct cfg_problem *pb, FILE *f)
{
	fputs(pb->origin, f);
	if (pb->line)
		fprintf(f, ":%u", pb->line);
	fputs(pb->severity == CFG_ERROR ? ": error: " : ": warning: ", f);
	if (pb->path[0])
		fprintf(f, "%s: ", pb->path);
	fprintf(f, "%s\n", pb->msg);
}

void cfg_diag_print(const struct cfg_diag *d, FILE *f)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		problem_print(&d->items[i], f);
	if (d->dropped)
		fprintf(f, "(%zu more problems not shown)\n", d->dropped);
}

void cfg_diag_print_exposed(const struct cfg_diag *d, FILE *f)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		if (d->items[i].exposed)
			problem_print(&d->items[i], f);
}

/* Stable sort by line of the problems from index `from` on (insertion
 * sort: a parse keeps at most CFG_MAX_PROBLEMS). */
static void diag_sort(struct cfg_diag *d, size_t from)
{
	if (!d)
		return;
	for (size_t i = from + 1; i < d->n; i++) {
		struct cfg_problem x = d->items[i];
		size_t j = i;

		while (j > from && d->items[j - 1].line > x.line) {
			d->items[j] = d->items[j - 1];
			j--;
		}
		d->items[j] = x;
	}
}

/* ---------------------------------------------------------------------- */
/* Strict JSON syntax check                                               */
/* ---------------------------------------------------------------------- */

static unsigned line_at(const char *s, size_t off)
{
	unsigned line = 1;

	for (size_t i = 0; i < off; i++)
		line += s[i] == '\n';
	return line;
}

static int is_digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

static int is_alnum(unsigned char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Replays json[0..stop) through a scanner one byte at a time to see where
 * containers open: the scanner keeps one bit per level, not offsets. Only
 * error messages pay for this. Sets *deep to the offset of the first
 * bracket opening level CFG_MAX_DEPTH + 1 (stop if none before it) and
 * returns the offset of the innermost container still open at stop (only
 * meaningful when one is). */
static size_t json_brackets(const char *json, size_t stop, size_t *deep)
{
	size_t open[CFG_MAX_DEPTH], prev = 0, d;
	struct json_scanner s;
	struct json_ev ev;
	const char *q;

	*deep = stop;
	json_scan_init(&s, JSON_FL_UNICODE);
	for (size_t i = 0; i < stop; i++) {
		q = json + i;
		while (json_scan(&s, &q, json + i + 1, &ev) > 0)
			;
		d = json_scan_depth(&s);
		if (d > CFG_MAX_DEPTH) {
			*deep = i;
			break;
		}
		if (d > prev)
			open[d - 1] = i;
		prev = d;
	}
	json_scan_release(&s);
	return prev ? open[prev - 1] : 0;
}

/* Checks that json[0..len) is exactly one JSON value, nested at most
 * CFG_MAX_DEPTH deep, with UTF-8 strings. Returns 0, or -1 with the
 * problem reported (one: a broken file is fixed one mistake at a time). */
static int json_syntax(const char *json, size_t len, const char *origin,
                       struct cfg_diag *diag)
{
	struct json_scanner s;
	struct json_ev ev;
	const char *q = json;
	enum json_status st;
	enum json_cut cut;
	size_t off = len, deep, open;
	uint64_t start = 0;
	char msg[160];

	json_scan_init(&s, JSON_FL_UNICODE);
	while (json_scan(&s, &q, json + len, &ev) > 0)
		;
	st = json_scan_status(&s);
	if (st == JSON_INVALID)
		off = (size_t)s.err_off;

	if (s.depth_max > CFG_MAX_DEPTH) {
		/* Before anything wrong past it, or the end. */
		json_brackets(json, off, &deep);
		off = deep;
		snprintf(msg, sizeof(msg), "nested too deeply (more than %d levels)",
		         CFG_MAX_DEPTH);
	} else if (st == JSON_INVALID) {
		if (s.err == JSON_ERR_TRAILING)
			snprintf(msg, sizeof(msg), "trailing comma before '%c'", json[off]);
		else if ((s.err == JSON_ERR_VALUE || s.err == JSON_ERR_KEY) && json[off] == '/')
			snprintf(msg, sizeof(msg), "comments are not JSON (use a key starting with '_')");
		else
			snprintf(msg, sizeof(msg), "%s", json_err_str(s.err));
	} else if (st == JSON_TRUNCATED) {
		cut = json_scan_cut(&s, &start);
		if (cut == JSON_CUT_SCALAR) {
			/* The end of the file ends a number or literal as a
			 * space would: "1." or "tr" is malformed, "12" whole. */
			q = " ";
			while (json_scan(&s, &q, q + 1, &ev) > 0)
				;
			cut = json_scan_cut(&s, &start);
		}
		if (s.err) {
			off = (size_t)start;
			snprintf(msg, sizeof(msg), "%s", json_err_str(s.err));
		} else if (cut == JSON_CUT_STRING) {
			off = (size_t)start;
			snprintf(msg, sizeof(msg), "unterminated string");
		} else if (cut == JSON_CUT_CONTAINER) {
			open = json_brackets(json, len, &deep);
			snprintf(msg, sizeof(msg), "unexpected end of file: the '%c' on line %u "
			         "is not closed", json[open], line_at(json, open));
		} else {
			snprintf(msg, sizeof(msg), "unexpected end of file: a value is missing");
		}
	}
	json_scan_release(&s);
	if (st == JSON_COMPLETE && s.depth_max <= CFG_MAX_DEPTH)
		return 0;
	cfg_diag_add(diag, CFG_ERROR, origin, line_at(json, off), NULL, "invalid JSON: %s", msg);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Parse context: tokens, paths, problems                                 */
/* ---------------------------------------------------------------------- */

struct pctx {
	const char *js;
	size_t len;
	const char *origin;
	const char *base_dir;       /* for relative "file:" secrets, or NULL */
	struct cfg_diag *diag;
	int errors;
	int oom;
	jsmntok_t *t;
	int nt;
	struct realms_config *c;
	char path[CFG_PATH_MAX_LEN];
	size_t plen;
	size_t lpos;                /* line cache: offset lpos is on line lline */
	unsigned lline;
	int allow_tok;              /* agent.allow_unknown_models, or -1 */
	int inline_secrets;         /* secrets written in the file itself */
};

static unsigned tok_line(struct pctx *p, int tok)
{
	size_t off;

	if (tok < 0 || tok >= p->nt)
		return 0;
	off = (size_t)p->t[tok].start;
	if (off < p->lpos) {
		p->lpos = 0;
		p->lline = 1;
	}
	for (; p->lpos < off && p->lpos < p->len; p->lpos++)
		p->lline += p->js[p->lpos] == '\n';
	return p->lline;
}

static void report(struct pctx *p, enum cfg_severity sev, int tok, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report(struct pctx *p, enum cfg_severity sev, int tok, const char *fmt, ...)
{
	va_list ap;

	if (sev == CFG_ERROR)
		p->errors++;
	va_start(ap, fmt);
	diag_vadd(p->diag, sev, false, p->origin, tok_line(p, tok), p->path, fmt, ap);
	va_end(ap);
}

static void *amalloc(struct pctx *p, size_t n)
{
	void *v = arena_alloc(&p->c->arena, n);

	if (!v && !p->oom) {
		p->oom = 1;
		report(p, CFG_ERROR, -1, "out of memory");
	}
	return v;
}

static void *aarray(struct pctx *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / 4 / size) {
		if (!p->oom) {
			p->oom = 1;
			report(p, CFG_ERROR, -1, "out of memory");
		}
		return NULL;
	}
	return amalloc(p, n * size);
}

static char *astrndup(struct pctx *p, const char *s, size_t n)
{
	char *d = amalloc(p, n + 1);

	if (d)
		memcpy(d, s, n);
	return d;
}

static void path_add(struct pctx *p, const char *s, size_t n)
{
	size_t room = sizeof(p->path) - 1 - p->plen;

	if (n > room)
		n = room;
	memcpy(p->path + p->plen, s, n);
	p->plen += n;
	p->path[p->plen] = '\0';
}

static int key_plain(const char *k, size_t n)
{
	if (n == 0 || n > CFG_PATH_KEY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-')
			return 0;
	return 1;
}

/* Appends ".key" (or ["key"] when it is not a plain word); returns the
 * length to restore with path_pop. Raw bytes are shown printable-only. */
static size_t path_key(struct pctx *p, const char *k, size_t n)
{
	size_t old = p->plen;

	if (key_plain(k, n)) {
		if (p->plen)
			path_add(p, ".", 1);
		path_add(p, k, n);
		return old;
	}
	path_add(p, "[\"", 2);
	for (size_t i = 0; i < n && i < CFG_PATH_KEY_MAX; i++) {
		unsigned char ch = (unsigned char)k[i];

		if (ch == '"' || ch == '\\')
			path_add(p, "\\", 1);
		path_add(p, ch >= 0x20 && ch < 0x7f ? (const char *)&k[i] : "?", 1);
	}
	if (n > CFG_PATH_KEY_MAX)
		path_add(p, "...", 3);
	path_add(p, "\"]", 2);
	return old;
}

static size_t path_str(struct pctx *p, const char *k)
{
	return path_key(p, k, strlen(k));
}

static size_t path_tok(struct pctx *p, int tok)
{
	return path_key(p, p->js + p->t[tok].start, (size_t)(p->t[tok].end - p->t[tok].start));
}

static size_t path_idx(struct pctx *p, size_t i)
{
	char b[32];
	size_t old = p->plen;

	path_add(p, b, (size_t)snprintf(b, sizeof(b), "[%zu]", i));
	return old;
}

static void path_pop(struct pctx *p, size_t old)
{
	p->plen = old;
	p->path[old] = '\0';
}

/* Index of the token after tok and all its children. */
static int tok_next(const struct pctx *p, int tok)
{
	int end = p->t[tok].end;
	int j = tok + 1;

	while (j < p->nt && p->t[j].start < end)
		j++;
	return j;
}

static const char *tok_kind(const struct pctx *p, int tok)
{
	switch (p->t[tok].type) {
	case JSMN_OBJECT:
		return "an object";
	case JSMN_ARRAY:
		return "an array";
	case JSMN_STRING:
		return "a string";
	default:
		break;
	}
	switch (p->js[p->t[tok].start]) {
	case 't':
	case 'f':
		return "a boolean";
	case 'n':
		return "null";
	default:
		return "a number";
	}
}

static int want(struct pctx *p, int tok, jsmntype_t type, const char *what)
{
	if (p->t[tok].type == type)
		return 1;
	report(p, CFG_ERROR, tok, "must be %s, not %s", what, tok_kind(p, tok));
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Values                                                                 */
/* ---------------------------------------------------------------------- */

/* A string value, decoded into the arena (NUL-terminated). Refuses NUL
 * bytes and values longer than max bytes. Returns 0 or -1 (reported). */
static int get_str(struct pctx *p, int tok, size_t max, const char **out, size_t *olen)
{
	size_t raw = (size_t)(p->t[tok].end - p->t[tok].start);
	unsigned int fl;
	size_t n;
	char *s;

	if (!want(p, tok, JSMN_STRING, "a string"))
		return -1;
	s = amalloc(p, raw + 1);
	if (!s)
		return -1;
	/* Decoding never lengthens: raw bytes hold it, plus the NUL. */
	n = json_unescape(p->js + p->t[tok].start, raw, s, raw, &fl);
	s[n] = '\0';
	if (fl & JSON_UNESC_NUL) {
		report(p, CFG_ERROR, tok, "must not contain a NUL character");
		return -1;
	}
	if (n > max) {
		report(p, CFG_ERROR, tok, "is longer than %zu bytes", max);
		return -1;
	}
	*out = s;
	if (olen)
		*olen = n;
	return 0;
}

static int get_bool(struct pctx *p, int tok, bool *out)
{
	char ch = p->js[p->t[tok].start];

	if (p->t[tok].type != JSMN_PRIMITIVE || (ch != 't' && ch != 'f')) {
		report(p, CFG_ERROR, tok, "must be true or false, not %s", tok_kind(p, tok));
		return -1;
	}
	*out = ch == 't';
	return 0;
}

static int is_number_tok(const struct pctx *p, int tok)
{
	char ch = p->js[p->t[tok].start];

	return p->t[tok].type == JSMN_PRIMITIVE && (ch == '-' || is_digit((unsigned char)ch));
}

static int get_int(struct pctx *p, int tok, long long min, long long max, long long *out)
{
	const char *s = p->js + p->t[tok].start;
	size_t n = (size_t)(p->t[tok].end - p->t[tok].start);
	char buf[32];
	long long v;

	if (!is_number_tok(p, tok) || memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n)) {
		report(p, CFG_ERROR, tok, "must be an integer, not %s",
		       is_number_tok(p, tok) ? "a fraction" : tok_kind(p, tok));
		return -1;
	}
	if (n >= sizeof(buf))
		goto range;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtoll(buf, NULL, 10);
	if (errno || v < min || v > max)
		goto range;
	*out = v;
	return 0;
range:
	report(p, CFG_ERROR, tok, "must be an integer from %lld to %lld", min, max);
	return -1;
}

static int get_num(struct pctx *p, int tok, double max, double *out)
{
	size_t n = (size_t)(p->t[tok].end - p->t[tok].start);
	char buf[64];
	double v;

	if (!is_number_tok(p, tok)) {
		report(p, CFG_ERROR, tok, "must be a number, not %s", tok_kind(p, tok));
		return -1;
	}
	if (n >= sizeof(buf))
		goto range;
	memcpy(buf, p->js + p->t[tok].start, n);
	buf[n] = '\0';
	v = strtod(buf, NULL);
	if (!isfinite(v) || v < 0 || v > max)
		goto range;
	*out = v;
	return 0;
range:
	report(p, CFG_ERROR, tok, "must be a number from 0 to %g", max);
	return -1;
}

/* Walks object `obj` (already checked to be one): vals[k] gets the value
 * token of keys[k] (NULL-terminated list), or -1. Unknown keys and
 * duplicates are errors; keys starting with '_' are comments. */
static void obj_fields(struct pctx *p, int obj, const char *const keys[], int *vals)
{
	int nkeys = 0;
	int i = obj + 1;

	while (keys[nkeys])
		vals[nkeys++] = -1;
	for (int n = 0; n < p->t[obj].size; n++) {
		int key = i, val = i + 1;
		const char *k = p->js + p->t[key].start;
		size_t klen = (size_t)(p->t[key].end - p->t[key].start);
		int found = -1;
		size_t old;

		i = tok_next(p, val);
		if (klen && k[0] == '_')
			continue;
		for (int j = 0; j < nkeys; j++)
			if (strlen(keys[j]) == klen && memcmp(keys[j], k, klen) == 0)
				found = j;
		old = path_tok(p, key);
		if (found < 0) {
			char list[256];
			size_t l = 0;

			list[0] = '\0';
			for (int j = 0; j < nkeys && l < sizeof(list); j++)
				l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%s",
				                      j ? ", " : "", keys[j]);
			report(p, CFG_ERROR, key, "unknown key (expected one of: %s)", list);
		} else if (vals[found] >= 0) {
			report(p, CFG_ERROR, key, "duplicate key (first on line %u)",
			       tok_line(p, vals[found] - 1));
		} else {
			vals[found] = val;
		}
		path_pop(p, old);
	}
}

/* ---------------------------------------------------------------------- */
/* Names                                                                  */
/* ---------------------------------------------------------------------- */

/* Channel, credential and group names: they become HAProxy identifiers. */
static int ident_ok(const char *s, size_t n)
{
	if (n == 0 || n > CFG_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return 0;
	return 1;
}

/* Public model names: what clients send; also used in Redis keys, metric
 * labels and internal HTTP headers, hence no ':', ',' or spaces. */
int cfg_model_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > INSPECT_MODEL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && !strchr("._-@/+[]", s[i]))
			return 0;
	return 1;
}

static int no_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int r = memcmp(a, b, an < bn ? an : bn);

	if (r)
		return r;
	return an < bn ? -1 : an > bn;
}

/* A small set of names, to find duplicates while walking. */
struct nset {
	struct nent { const char *name; size_t len; unsigned line; } *v;
	size_t cap;
};

static uint64_t name_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int nset_init(struct nset *s, size_t n)
{
	s->cap = 16;
	while (s->cap < n * 2)
		s->cap *= 2;
	s->v = calloc(s->cap, sizeof(*s->v));
	return s->v ? 0 : -1;
}

/* Adds name; returns 0, or the line of an earlier equal name. */
static unsigned nset_add(struct nset *s, const char *name, size_t len, unsigned line)
{
	size_t i = name_hash(name, len) & (s->cap - 1);

	while (s->v[i].name) {
		if (s->v[i].len == len && memcmp(s->v[i].name, name, len) == 0)
			return s->v[i].line ? s->v[i].line : 1;
		i = (i + 1) & (s->cap - 1);
	}
	s->v[i].name = name;
	s->v[i].len = len;
	s->v[i].line = line;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Addresses, URLs, secrets                                               */
/* ---------------------------------------------------------------------- */

static int get_addr(struct pctx *p, int tok, const char **out, struct netaddr *a)
{
	char err[160];
	const char *s;

	if (get_str(p, tok, CFG_ADDR_MAX, &s, NULL) < 0)
		return -1;
	if (netaddr_parse(s, a, err, sizeof(err)) < 0) {
		report(p, CFG_ERROR, tok, "invalid address: %s (expected HOST:PORT, "
		       "[IPV6]:PORT, unix:PATH or /PATH)", err);
		return -1;
	}
	*out = s;
	return 0;
}

struct url {
	bool tls, ipv6;
	int port;
	char host[256];
	char path[CFG_PATH_PREFIX_MAX + 1];   /* "" or "/seg[/seg...]" */
};

/* A path prefix byte: unreserved, or the start of a %XX escape. Nothing
 * HAProxy's configuration or an HTTP request line would read specially. */
static int path_char_ok(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
}

/* The path of a base URL, s[0..n) starting at its '/', into u->path:
 * segments of path_char_ok bytes with well-formed %XX escapes, no empty,
 * "." or ".." segment, a final '/' dropped. Returns NULL or a message. */
static const char *parse_url_path(const char *s, size_t n, struct url *u)
{
	size_t o = 0, seg = 0;

	while (n && s[n - 1] == '/')
		n--;                        /* "https://h/x/" is "https://h/x" */
	if (n > CFG_PATH_PREFIX_MAX)
		return "path too long";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '/') {
			if (i && (seg == 0 || (seg == 1 && s[i - 1] == '.') ||
			          (seg == 2 && s[i - 1] == '.' && s[i - 2] == '.')))
				return "path must not have empty, \".\" or \"..\" segments";
			seg = 0;
		} else if (!path_char_ok(c)) {
			return "path may hold only A-Z a-z 0-9 - . _ ~ / and %XX escapes";
		} else if (c == '%' && (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
		                        !isxdigit((unsigned char)s[i + 2]))) {
			return "path has a broken %XX escape";
		} else {
			seg++;
		}
		u->path[o++] = (char)c;
	}
	if (o && ((seg == 1 && s[n - 1] == '.') ||
	          (seg == 2 && s[n - 1] == '.' && s[n - 2] == '.')))
		return "path must not have empty, \".\" or \"..\" segments";
	/* Requests keep their own /v1/...: a base ending in /v1 is the usual
	 * slip, and would send /v1/v1/messages. */
	if (o >= 3 && !memcmp(u->path + o - 3, "/v1", 3))
		return "must not end with \"/v1\": requests keep their own path "
		       "(/v1/messages), so give the part before it";
	u->path[o] = '\0';
	return NULL;
}

/* A host name or literal (lowercase, IPv6 without brackets) that names
 * this host: nothing sent there crosses a network. */
static int host_is_loopback(const char *h, bool v6)
{
	struct in_addr in4;
	struct in6_addr in6;

	if (v6)
		return inet_pton(AF_INET6, h, &in6) == 1 && IN6_IS_ADDR_LOOPBACK(&in6);
	if (!strcmp(h, "localhost"))
		return 1;
	return inet_pton(AF_INET, h, &in4) == 1 && (ntohl(in4.s_addr) >> 24) == 127;
}

/* Parses an upstream base URL: scheme://host[:port][/path]. Requests keep
 * their own path after the base's (/v1/messages becomes
 * /path/v1/messages). Returns NULL or a message. Messages never quote the
 * URL: it may hold user information. */
static const char *parse_url(const char *s, size_t n, struct url *u)
{
	size_t i = 0, a, ae, hs, he;

	memset(u, 0, sizeof(*u));
	for (size_t k = 0; k < n; k++)
		if ((unsigned char)s[k] <= 0x20 || (unsigned char)s[k] >= 0x7f)
			return "must not contain spaces, control or non-ASCII characters";
	while (i < n && (is_alnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-'))
		i++;
	if (i == 0 || n - i < 3 || memcmp(s + i, "://", 3) != 0)
		return "must start with \"https://\" or \"http://\"";
	if (i == 5 && strncasecmp(s, "https", 5) == 0)
		u->tls = true, u->port = 443;
	else if (i == 4 && strncasecmp(s, "http", 4) == 0)
		u->port = 80;
	else
		return "scheme must be \"https\" or \"http\"";
	a = i + 3;
	for (ae = a; ae < n && s[ae] != '/' && s[ae] != '?' && s[ae] != '#'; ae++)
		if (s[ae] == '@')
			return "must not contain user information (user:password@)";
	if (a == ae)
		return "missing host";

	if (s[a] == '[') {
		char v6[64];
		struct in6_addr in6;
		const char *rb = memchr(s + a, ']', ae - a);

		if (!rb)
			return "missing ']' after the IPv6 address";
		hs = a + 1;
		he = (size_t)(rb - s);
		if (he - hs >= sizeof(v6))
			return "invalid IPv6 address";
		memcpy(v6, s + hs, he - hs);
		v6[he - hs] = '\0';
		if (inet_pton(AF_INET6, v6, &in6) != 1)
			return "invalid IPv6 address";
		u->ipv6 = true;
		i = he + 1;
		if (i < ae && s[i] != ':')
			return "unexpected characters after ']'";
	} else {
		const char *colon = memchr(s + a, ':', ae - a);

		if (colon && memchr(colon + 1, ':', ae - (size_t)(colon + 1 - s)))
			return "IPv6 addresses must be written in brackets: https://[::1]:8443";
		hs = a;
		for (he = a; he < ae && s[he] != ':'; he++)
			if (!is_alnum((unsigned char)s[he]) && s[he] != '.' && s[he] != '-' && s[he] != '_')
				return "invalid character in the host name";
		if (he == hs)
			return "missing host";
		if (he - hs > CFG_HOST_MAX)
			return "host name too long";
		i = he;
	}
	if (i < ae) {
		long port = 0;

		/* s[i] == ':' here */
		if (ae - i - 1 < 1 || ae - i - 1 > 5)
			return "port must be a number from 1 to 65535";
		for (size_t k = i + 1; k < ae; k++) {
			if (!is_digit((unsigned char)s[k]))
				return "port must be a number from 1 to 65535";
			port = port * 10 + (s[k] - '0');
		}
		if (port < 1 || port > 65535)
			return "port must be a number from 1 to 65535";
		u->port = (int)port;
	}
	for (size_t k = hs, o = 0; k < he; k++, o++)
		u->host[o] = (s[k] >= 'A' && s[k] <= 'Z') ? (char)(s[k] | 0x20) : s[k];

	i = ae;
	if (i < n && s[i] == '/') {
		size_t pe = i;
		const char *err;

		while (pe < n && s[pe] != '?' && s[pe] != '#')
			pe++;
		if ((err = parse_url_path(s + i, pe - i, u)))
			return err;
		i = pe;
	}
	if (i < n && s[i] == '?')
		return "must not have a query string";
	if (i < n && s[i] == '#')
		return "must not have a fragment";
	/* The relay puts the credential's key in the request's headers. */
	if (!u->tls && !host_is_loopback(u->host, u->ipv6))
		return "http:// would send the channel's keys across the network in clear: "
		       "use https://, or http:// to this host only (127.0.0.1, [::1], localhost)";
	return NULL;
}

/* Secrets may only hold visible ASCII: keys become HTTP header values, and
 * a Redis password is held to the same rule so that a stray space or CR
 * from an editor is an error here, not a refused AUTH later. */
static int secret_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* What a secret is for, in messages about the characters it may hold. */
#define SECRET_WHY_KEY   "which an HTTP header cannot carry"
#define SECRET_WHY_REDIS "which a Redis password may not hold here (use visible ASCII)"

/* Room for a message that names a file. */
#define SECRET_ERR_MAX   (PATH_MAX + 160)

/* Reads the secret file at path into buf (CFG_SECRET_MAX + 1 bytes), its
 * trailing newlines ("\n", "\r") removed, and sets *mode to the file's mode.
 * Returns the length (> 0), or -1 with a message in err that names the file,
 * never its content. The caller wipes buf. */
static ssize_t secret_file_read(const char *path, const char *why, char *buf,
                                mode_t *mode, char *err, size_t errlen)
{
	size_t n = 0;
	ssize_t ret = -1;
	struct stat st;
	int fd;

	*mode = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "file %s is not a regular file", path);
		goto out;
	}
	*mode = st.st_mode;
	while (n < CFG_SECRET_MAX + 1) {
		ssize_t r = read(fd, buf + n, CFG_SECRET_MAX + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "cannot read file %s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > CFG_SECRET_MAX) {
		snprintf(err, errlen, "file %s is larger than %d bytes", path, CFG_SECRET_MAX);
		goto out;
	}
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0) {
		snprintf(err, errlen, "file %s is empty", path);
		goto out;
	}
	if (!secret_ok(buf, n)) {
		snprintf(err, errlen, "the content of file %s holds spaces, control or "
		         "non-ASCII characters, %s", path, why);
		goto out;
	}
	ret = (ssize_t)n;
out:
	close(fd);
	return ret;
}

/* Whether other users can read a file holding secrets. Only a warning:
 * ssh refuses such a key, but an agent that will not start over a mode is
 * worse than one that says so at every start. */
static bool secret_exposed(mode_t mode)
{
	return (mode & S_IROTH) != 0;
}

/* The value of environment variable `name` as a secret: the environment's
 * own string (not a copy) and its length, or NULL with a message in err that
 * names the variable, never the value. */
static const char *env_secret(const char *name, const char *why, size_t *len,
                              char *err, size_t errlen)
{
	const char *val = getenv(name);
	size_t n;

	if (!val) {
		snprintf(err, errlen, "environment variable %s is not set", name);
		return NULL;
	}
	n = strlen(val);
	if (n == 0) {
		snprintf(err, errlen, "environment variable %s is empty", name);
		return NULL;
	}
	if (n > CFG_SECRET_MAX) {
		snprintf(err, errlen, "environment variable %s is longer than %d bytes", name,
		         CFG_SECRET_MAX);
		return NULL;
	}
	if (!secret_ok(val, n)) {
		snprintf(err, errlen, "environment variable %s holds spaces, control or "
		         "non-ASCII characters, %s", name, why);
		return NULL;
	}
	*len = n;
	return val;
}

/* Reads a "file:" secret into the arena. Returns 0 or -1 (reported). */
static int read_secret_file(struct pctx *p, int tok, const char *name, const char *why,
                            const char **out, size_t *olen)
{
	char buf[CFG_SECRET_MAX + 1], err[SECRET_ERR_MAX];
	char *full = NULL;
	const char *path = name;
	mode_t mode;
	ssize_t n;
	int ret = -1;

	if (name[0] != '/' && p->base_dir) {
		if (asprintf(&full, "%s/%s", p->base_dir, name) < 0) {
			report(p, CFG_ERROR, tok, "out of memory");
			return -1;
		}
		path = full;
	}
	n = secret_file_read(path, why, buf, &mode, err, sizeof(err));
	if (n < 0) {
		report(p, CFG_ERROR, tok, "%s", err);
		goto out;
	}
	if (secret_exposed(mode))
		diag_add_exposed(p->diag, p->origin, tok_line(p, tok), p->path, "file %s is "
		                 "readable by other users (mode %04o): chmod o-r %s", path,
		                 (unsigned)(mode & 07777), path);
	*out = astrndup(p, buf, (size_t)n);
	if (*out) {
		*olen = (size_t)n;
		ret = 0;
	}
out:
	explicit_bzero(buf, sizeof(buf));
	free(full);
	return ret;
}

/* A secret: inline, "env:NAME" or "file:PATH"; `why` says what it is for
 * (SECRET_WHY_*). Messages name the variable or file, never the value.
 * Inline secrets are counted (p->inline_secrets): the file holding them
 * must not be readable by others. Returns 0 or -1 (reported). */
static int get_secret(struct pctx *p, int tok, const char *why, const char **out,
                      size_t *olen)
{
	char err[SECRET_ERR_MAX];
	const char *v;
	size_t n;

	if (!want(p, tok, JSMN_STRING, "a string"))
		return -1;
	if (get_str(p, tok, CFG_SECRET_MAX + 8, &v, &n) < 0)
		return -1;
	if (n >= 4 && memcmp(v, "env:", 4) == 0) {
		const char *name = v + 4, *val;
		size_t vn;

		if (n == 4 || is_digit((unsigned char)name[0])) {
			report(p, CFG_ERROR, tok, "\"env:\" must be followed by a variable name");
			return -1;
		}
		for (size_t i = 0; name[i]; i++) {
			if (!is_alnum((unsigned char)name[i]) && name[i] != '_') {
				report(p, CFG_ERROR, tok, "\"env:\" must be followed by a variable "
				       "name (letters, digits and '_')");
				return -1;
			}
		}
		val = env_secret(name, why, &vn, err, sizeof(err));
		if (!val) {
			report(p, CFG_ERROR, tok, "%s", err);
			return -1;
		}
		*out = astrndup(p, val, vn);
		*olen = vn;
		return *out ? 0 : -1;
	}
	if (n >= 5 && memcmp(v, "file:", 5) == 0) {
		if (n == 5) {
			report(p, CFG_ERROR, tok, "\"file:\" must be followed by a file name");
			return -1;
		}
		return read_secret_file(p, tok, v + 5, why, out, olen);
	}
	p->inline_secrets++;
	if (n == 0) {
		report(p, CFG_ERROR, tok, "must not be empty");
		return -1;
	}
	if (n > CFG_SECRET_MAX) {
		report(p, CFG_ERROR, tok, "is longer than %d bytes", CFG_SECRET_MAX);
		return -1;
	}
	if (!secret_ok(v, n)) {
		report(p, CFG_ERROR, tok, "holds spaces, control or non-ASCII characters, %s", why);
		return -1;
	}
	*out = v;
	*olen = n;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Sections                                                               */
/* ---------------------------------------------------------------------- */

/* "redis": an address string, or {"address", "user", "password"}. */
static void parse_redis(struct pctx *p, int tok)
{
	static const char *const keys[] = { "address", "user", "password", NULL };
	struct cfg_redis *r = &p->c->redis;
	char err[160];
	size_t old = path_str(p, "redis"), o2;
	int v[3];

	if (tok >= 0 && p->t[tok].type == JSMN_OBJECT) {
		obj_fields(p, tok, keys, v);
		if (v[0] >= 0) {
			o2 = path_str(p, "address");
			get_addr(p, v[0], &r->address, &r->addr);
			path_pop(p, o2);
		}
		if (v[1] >= 0) {
			size_t n;

			o2 = path_str(p, "user");
			if (get_str(p, v[1], CFG_REDIS_USER_MAX, &r->user, &n) == 0 &&
			    (n == 0 || !secret_ok(r->user, n))) {
				report(p, CFG_ERROR, v[1], "must be 1 to %d visible ASCII characters "
				       "(no spaces)", CFG_REDIS_USER_MAX);
				r->user = NULL;
			}
			path_pop(p, o2);
		}
		if (v[2] >= 0) {
			o2 = path_str(p, "password");
			get_secret(p, v[2], SECRET_WHY_REDIS, &r->password, &r->password_len);
			path_pop(p, o2);
		}
	} else if (tok >= 0) {
		if (p->t[tok].type != JSMN_STRING)
			report(p, CFG_ERROR, tok, "must be an address string or an object, not %s",
			       tok_kind(p, tok));
		else
			get_addr(p, tok, &r->address, &r->addr);
	}
	if (!r->address && (tok < 0 || p->t[tok].type == JSMN_OBJECT)) {
		r->address = astrndup(p, CFG_REDIS_DEFAULT, strlen(CFG_REDIS_DEFAULT));
		if (r->address && netaddr_parse(r->address, &r->addr, err, sizeof(err)) < 0)
			report(p, CFG_ERROR, -1, "default address: %s", err);
	}
	path_pop(p, old);
}

static void parse_listen(struct pctx *p, int tok)
{
	struct cfg_agent *ag = &p->c->agent;
	int n = 1, i = tok;

	if (p->t[tok].type == JSMN_ARRAY) {
		n = p->t[tok].size;
		i = tok + 1;
	} else if (!want(p, tok, JSMN_STRING, "a string or an array of strings")) {
		return;
	}
	if (n > CFG_MAX_LISTEN) {
		report(p, CFG_ERROR, tok, "at most %d listeners", CFG_MAX_LISTEN);
		return;
	}
	ag->listen = aarray(p, (size_t)n, sizeof(*ag->listen));
	ag->listen_addr = aarray(p, (size_t)n, sizeof(*ag->listen_addr));
	if (!ag->listen || !ag->listen_addr)
		return;
	for (int k = 0; k < n; k++, i = tok_next(p, i)) {
		size_t old = p->t[tok].type == JSMN_ARRAY ? path_idx(p, (size_t)k) : p->plen;
		const char *s;

		if (get_addr(p, i, &s, &ag->listen_addr[ag->n_listen]) == 0) {
			for (size_t j = 0; j < ag->n_listen; j++)
				if (strcmp(ag->listen[j], s) == 0)
					report(p, CFG_ERROR, i, "listed twice");
			ag->listen[ag->n_listen++] = s;
		}
		path_pop(p, old);
	}
}

/* A user name (as useradd takes them) or a decimal uid. */
static int peer_ok(const char *s, size_t n)
{
	if (n == 0 || n > 32)
		return 0;
	if (strspn(s, "0123456789") == n)
		return n <= 10;
	if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z')))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(s[i] == '_' || s[i] == '-' || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* agent.peers: who may connect to the SPOP and mirror unix sockets. */
static void parse_peers(struct pctx *p, int tok)
{
	struct cfg_agent *ag = &p->c->agent;
	int i = tok + 1;

	if (!want(p, tok, JSMN_ARRAY, "an array of user names or uids"))
		return;
	if (p->t[tok].size == 0 || p->t[tok].size > CFG_MAX_PEERS) {
		report(p, CFG_ERROR, tok, "1 to %d users", CFG_MAX_PEERS);
		return;
	}
	ag->peers = aarray(p, (size_t)p->t[tok].size, sizeof(*ag->peers));
	if (!ag->peers)
		return;
	for (int k = 0; k < p->t[tok].size; k++, i = tok_next(p, i)) {
		size_t old = path_idx(p, (size_t)k), len;
		const char *s;

		if (get_str(p, i, 32, &s, &len) == 0) {
			if (!peer_ok(s, len))
				report(p, CFG_ERROR, i, "not a user name or uid");
			else
				ag->peers[ag->n_peers++] = s;
		}
		path_pop(p, old);
	}
}

static void parse_agent(struct pctx *p, int tok)
{
	static const char *const keys[] = {
		"listen", "mirror", "check", "admin", "threads", "body_prefix",
		"allow_unknown_models", "spool", "allow_tcp", "peers", "max_body",
		"metrics_tokens", "admin_token", "record_wait_ms", NULL
	};
	struct cfg_agent *ag = &p->c->agent;
	int v[15];
	size_t old = path_str(p, "agent"), o2;
	long long x;

	ag->threads = CFG_THREADS_DEFAULT;
	ag->body_prefix = CFG_BODY_PREFIX_DEFAULT;
	ag->max_body = CFG_MAX_BODY_DEFAULT;
	ag->record_wait_ms = CFG_RECORD_WAIT_MS_DEFAULT;
	if (tok < 0 || !want(p, tok, JSMN_OBJECT, "an object"))
		goto out;
	obj_fields(p, tok, keys, v);
	if (v[0] >= 0) {
		o2 = path_str(p, "listen");
		parse_listen(p, v[0]);
		path_pop(p, o2);
	}
	if (v[1] >= 0) {
		o2 = path_str(p, "mirror");
		get_addr(p, v[1], &ag->mirror, &ag->mirror_addr);
		path_pop(p, o2);
	}
	if (v[2] >= 0) {
		/* Kept readable so older files still load. */
		o2 = path_str(p, "check");
		report(p, CFG_WARNING, v[2], "no longer used: the agent chooses the credential "
		       "of every attempt, so HAProxy needs no agent-check; remove it");
		path_pop(p, o2);
	}
	if (v[3] >= 0) {
		o2 = path_str(p, "admin");
		get_addr(p, v[3], &ag->admin, &ag->admin_addr);
		path_pop(p, o2);
	}
	if (v[4] >= 0) {
		o2 = path_str(p, "threads");
		if (get_int(p, v[4], 1, SPOA_MAX_WORKERS, &x) == 0)
			ag->threads = (int)x;
		path_pop(p, o2);
	}
	if (v[5] >= 0) {
		o2 = path_str(p, "body_prefix");
		if (get_int(p, v[5], CFG_BODY_PREFIX_MIN, CFG_BODY_PREFIX_MAX, &x) == 0)
			ag->body_prefix = (size_t)x;
		path_pop(p, o2);
	}
	if (v[6] >= 0) {
		o2 = path_str(p, "allow_unknown_models");
		get_bool(p, v[6], &ag->allow_unknown_models);
		p->allow_tok = v[6];
		path_pop(p, o2);
	}
	if (v[7] >= 0) {
		size_t len;

		o2 = path_str(p, "spool");
		get_str(p, v[7], PATH_MAX, &ag->spool, &len);
		path_pop(p, o2);
	}
	if (v[8] >= 0) {
		o2 = path_str(p, "allow_tcp");
		get_bool(p, v[8], &ag->allow_tcp);
		path_pop(p, o2);
	}
	if (v[9] >= 0) {
		o2 = path_str(p, "peers");
		parse_peers(p, v[9]);
		path_pop(p, o2);
	}
	if (v[10] >= 0) {
		o2 = path_str(p, "max_body");
		if (get_int(p, v[10], CFG_MAX_BODY_MIN, CFG_MAX_BODY_MAX, &x) == 0)
			ag->max_body = (uint64_t)x;
		path_pop(p, o2);
	}
	if (v[11] >= 0) {
		o2 = path_str(p, "metrics_tokens");
		get_bool(p, v[11], &ag->metrics_tokens);
		path_pop(p, o2);
	}
	if (v[12] >= 0) {
		o2 = path_str(p, "admin_token");
		if (get_secret(p, v[12], SECRET_WHY_KEY, &ag->admin_token,
		               &ag->admin_token_len) == 0 &&
		    ag->admin_token_len < CFG_ADMIN_TOKEN_MIN) {
			/* Guessable over the listener: at least 128 bits as hex. */
			report(p, CFG_ERROR, v[12], "is shorter than %d characters (make one "
			       "with: openssl rand -hex 32)", CFG_ADMIN_TOKEN_MIN);
			ag->admin_token = NULL;
			ag->admin_token_len = 0;
		}
		path_pop(p, o2);
	}
	if (v[13] >= 0) {
		o2 = path_str(p, "record_wait_ms");
		if (get_int(p, v[13], 0, CFG_RECORD_WAIT_MS_MAX, &x) == 0)
			ag->record_wait_ms = (int)x;
		path_pop(p, o2);
	}
	if (ag->max_body < ag->body_prefix)
		report(p, CFG_ERROR, v[10] >= 0 ? v[10] : tok, "max_body (%llu) must be at least "
		       "body_prefix (%zu)", (unsigned long long)ag->max_body, ag->body_prefix);
out:
	path_pop(p, old);
}

static void parse_failover(struct pctx *p, int tok)
{
	static const char *const keys[] = {
		"attempts", "failures", "cooldown", "timeout", "max_body", "avoid", NULL
	};
	static const struct { long long min, max; } range[] = {
		{ 1, CFG_ATTEMPTS_MAX }, { 1, 1000 }, { 1, 86400 }, { 1, 86400 },
		{ 0, CFG_RETRY_BODY_MAX }, { 0, CFG_AVOID_MAX_S },
	};
	struct cfg_failover *f = &p->c->failover;
	int *dst[] = { &f->attempts, &f->failures, &f->cooldown_s, &f->timeout_s,
	               &f->max_body, &f->avoid_s };
	int v[7];
	size_t old = path_str(p, "failover");
	long long x;

	f->attempts = CFG_ATTEMPTS_DEFAULT;
	f->failures = CFG_FAILURES_DEFAULT;
	f->cooldown_s = CFG_COOLDOWN_DEFAULT_S;
	f->timeout_s = CFG_TIMEOUT_DEFAULT_S;
	f->max_body = CFG_RETRY_BODY_DEFAULT;
	f->avoid_s = CFG_AVOID_DEFAULT_S;
	if (tok < 0 || !want(p, tok, JSMN_OBJECT, "an object"))
		goto out;
	obj_fields(p, tok, keys, v);
	for (int i = 0; keys[i]; i++) {
		size_t o2;

		if (v[i] < 0)
			continue;
		o2 = path_str(p, keys[i]);
		if (get_int(p, v[i], range[i].min, range[i].max, &x) == 0)
			*dst[i] = (int)x;
		path_pop(p, o2);
	}
out:
	path_pop(p, old);
}

static int cmp_group(const void *a, const void *b, void *arg)
{
	const char *const *g = arg;
	const char *x = g[*(const int *)a], *y = g[*(const int *)b];

	return strcmp(x, y);
}

/* "timezone": the UTC offset calendar budgets are cut in ("+08:00"). */
static void parse_timezone(struct pctx *p, int tok)
{
	size_t old = path_str(p, "timezone"), n;
	const char *s;

	if (tok >= 0 && get_str(p, tok, 16, &s, &n) == 0 &&
	    budget_tz_parse(s, n, &p->c->tz_min) < 0)
		report(p, CFG_ERROR, tok, "must be a UTC offset such as \"+08:00\", \"-05:30\" "
		       "or \"Z\" (from -14:00 to +14:00)");
	path_pop(p, old);
}

/* One limit's value in a group's "limits" or "total": dollars for the usd/
 * kinds, written as a JSON number and read exactly (no exponent, at most 9
 * decimals); a whole number for rpm and concurrency. */
static void parse_limit_set(struct pctx *p, int tok, int usd_only, struct budget_limits *l)
{
	int i = tok + 1;

	if (!want(p, tok, JSMN_OBJECT, "an object of limits, such as {\"usd/day\": 5, \"rpm\": 30}"))
		return;
	for (int k = 0; k < p->t[tok].size; k++, i = tok_next(p, i + 1)) {
		const char *name = p->js + p->t[i].start, *why;
		size_t nlen = (size_t)(p->t[i].end - p->t[i].start);
		size_t o = path_tok(p, i);
		enum budget_kind kind;
		char spec[96];
		uint64_t v;
		int vl = p->t[i + 1].end - p->t[i + 1].start;

		if (budget_kind_parse(name, nlen, &kind) < 0) {
			report(p, CFG_ERROR, i, "unknown limit: use usd/5h, usd/day, usd/week, "
			       "usd/month, rpm or concurrency");
		} else if (usd_only && !BUDGET_IS_USD(kind)) {
			report(p, CFG_ERROR, i, "a group total is an amount: usd/5h, usd/day, "
			       "usd/week or usd/month");
		} else if (p->t[i + 1].type != JSMN_PRIMITIVE || vl <= 0 || vl > 40) {
			report(p, CFG_ERROR, i + 1, "must be a number");
		} else {
			snprintf(spec, sizeof(spec), "%.*s=%.*s", (int)nlen, name, vl,
			         p->js + p->t[i + 1].start);
			if (budget_spec_parse(spec, strlen(spec), &kind, &v, &why) < 0) {
				report(p, CFG_ERROR, i + 1, "%s", why);
			} else {
				l->v[kind] = v;
				l->set |= 1u << kind;
			}
		}
		path_pop(p, o);
	}
}

/* An element of "groups": a name, or {"name", "limits", "total"}. */
static const char *parse_group(struct pctx *p, int tok, size_t gi)
{
	static const char *const keys[] = { "name", "limits", "total", NULL };
	int v[4];
	const char *s;
	size_t n, o;

	if (p->t[tok].type != JSMN_OBJECT)
		return get_str(p, tok, CFG_NAME_MAX, &s, &n) == 0 ? s : NULL;
	obj_fields(p, tok, keys, v);
	if (v[1] >= 0) {
		o = path_str(p, "limits");
		parse_limit_set(p, v[1], 0, &p->c->group_limits[gi]);
		path_pop(p, o);
	}
	if (v[2] >= 0) {
		o = path_str(p, "total");
		parse_limit_set(p, v[2], 1, &p->c->group_totals[gi]);
		path_pop(p, o);
	}
	if (v[0] < 0) {
		report(p, CFG_ERROR, tok, "missing required key \"name\"");
		return NULL;
	}
	o = path_str(p, "name");
	s = get_str(p, v[0], CFG_NAME_MAX, &s, &n) == 0 ? s : NULL;
	path_pop(p, o);
	return s;
}

static void parse_groups(struct pctx *p, int tok)
{
	struct realms_config *c = p->c;
	size_t old = path_str(p, "groups");
	struct nset set = { 0 };
	int i;

	if (tok < 0) {
		c->groups = aarray(p, 1, sizeof(*c->groups));
		c->group_limits = aarray(p, 1, sizeof(*c->group_limits));
		c->group_totals = aarray(p, 1, sizeof(*c->group_totals));
		if (c->groups && c->group_limits && c->group_totals) {
			c->groups[0] = astrndup(p, CFG_GROUP_DEFAULT, strlen(CFG_GROUP_DEFAULT));
			c->n_groups = c->groups[0] ? 1 : 0;
		}
		goto index;
	}
	if (!want(p, tok, JSMN_ARRAY, "an array of group names or objects"))
		goto out;
	if (p->t[tok].size == 0) {
		report(p, CFG_ERROR, tok, "must list at least one group");
		goto out;
	}
	if (p->t[tok].size > CFG_MAX_GROUPS) {
		report(p, CFG_ERROR, tok, "at most %d groups", CFG_MAX_GROUPS);
		goto out;
	}
	c->groups = aarray(p, (size_t)p->t[tok].size, sizeof(*c->groups));
	c->group_limits = aarray(p, (size_t)p->t[tok].size, sizeof(*c->group_limits));
	c->group_totals = aarray(p, (size_t)p->t[tok].size, sizeof(*c->group_totals));
	if (!c->groups || !c->group_limits || !c->group_totals ||
	    nset_init(&set, (size_t)p->t[tok].size) < 0)
		goto out;
	i = tok + 1;
	for (int k = 0; k < p->t[tok].size; k++, i = tok_next(p, i)) {
		size_t o2 = path_idx(p, (size_t)k);
		const char *s;
		size_t n;
		unsigned first;

		if ((s = parse_group(p, i, c->n_groups))) {
			n = strlen(s);
			if (!ident_ok(s, n))
				report(p, CFG_ERROR, i, "invalid group name: use 1 to %d characters "
				       "from A-Z a-z 0-9 . _ -", CFG_NAME_MAX);
			else if ((first = nset_add(&set, s, n, tok_line(p, i))))
				report(p, CFG_ERROR, i, "duplicate group \"%s\" (first on line %u)", s, first);
			else
				c->groups[c->n_groups++] = s;
		}
		path_pop(p, o2);
	}
index:
	c->group_idx = aarray(p, c->n_groups ? c->n_groups : 1, sizeof(int));
	if (c->group_idx) {
		for (size_t k = 0; k < c->n_groups; k++)
			c->group_idx[k] = (int)k;
		qsort_r(c->group_idx, c->n_groups, sizeof(int), cmp_group, c->groups);
		c->n_group_idx = c->n_groups;
	}
out:
	free(set.v);
	path_pop(p, old);
}

/* Cache-write and cache-read prices follow Anthropic's multipliers of the
 * input price unless given. */
static void parse_rates(struct pctx *p, const int *v, int obj, struct price_rates *r)
{
	static const char *const names[] = {
		"input", "output", "cache_write_5m", "cache_write_1h", "cache_read"
	};
	double *dst[] = { &r->input, &r->output, &r->cache_write_5m, &r->cache_write_1h,
	                  &r->cache_read };
	bool have[5] = { false };

	for (int k = 0; k < 5; k++) {
		size_t old;

		if (v[k] < 0)
			continue;
		old = path_str(p, names[k]);
		have[k] = get_num(p, v[k], PRICE_MAX_USD_PER_MTOK, dst[k]) == 0;
		path_pop(p, old);
	}
	if (v[0] < 0)
		report(p, CFG_ERROR, obj, "missing required key \"input\"");
	if (v[1] < 0)
		report(p, CFG_ERROR, obj, "missing required key \"output\"");
	if (!have[2])
		r->cache_write_5m = r->input * 1.25;
	if (!have[3])
		r->cache_write_1h = r->input * 2;
	if (!have[4])
		r->cache_read = r->input * 0.1;
}

/* Returns 0 when the price is complete and valid. */
static int parse_price(struct pctx *p, int tok, struct price *pr)
{
	static const char *const keys[] = {
		"input", "output", "cache_write_5m", "cache_write_1h", "cache_read",
		"long_context", "web_search_per_1k", NULL
	};
	static const char *const lkeys[] = {
		"input", "output", "cache_write_5m", "cache_write_1h", "cache_read",
		"threshold", NULL
	};
	int errs = p->errors;
	int v[8], lv[7];
	size_t old = path_str(p, "price"), o2;
	long long th;

	memset(pr, 0, sizeof(*pr));
	pr->web_search_per_1k = 10.0;
	if (!want(p, tok, JSMN_OBJECT, "an object"))
		goto out;
	obj_fields(p, tok, keys, v);
	parse_rates(p, v, tok, &pr->base);
	if (v[6] >= 0) {
		o2 = path_str(p, "web_search_per_1k");
		get_num(p, v[6], PRICE_MAX_USD_PER_MTOK, &pr->web_search_per_1k);
		path_pop(p, o2);
	}
	if (v[5] >= 0) {
		o2 = path_str(p, "long_context");
		if (want(p, v[5], JSMN_OBJECT, "an object")) {
			obj_fields(p, v[5], lkeys, lv);
			parse_rates(p, lv, v[5], &pr->long_ctx);
			pr->long_threshold = 200000;
			if (lv[5] >= 0) {
				size_t o3 = path_str(p, "threshold");

				if (get_int(p, lv[5], 1, 1000000000, &th) == 0)
					pr->long_threshold = (uint64_t)th;
				path_pop(p, o3);
			}
		}
		path_pop(p, o2);
	}
out:
	path_pop(p, old);
	return p->errors == errs ? 0 : -1;
}

static int cmp_model(const void *a, const void *b)
{
	const struct cfg_model *x = *(struct cfg_model *const *)a;
	const struct cfg_model *y = *(struct cfg_model *const *)b;

	return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static void parse_models(struct pctx *p, int tok)
{
	static const char *const keys[] = { "name", "enabled", "price", NULL };
	struct realms_config *c = p->c;
	size_t old = path_str(p, "models");
	struct nset set = { 0 };
	int i, n;

	if (tok < 0 || !want(p, tok, JSMN_ARRAY, "an array"))
		goto out;
	n = p->t[tok].size;
	c->models = aarray(p, (size_t)n, sizeof(*c->models));
	c->model_idx = aarray(p, (size_t)n, sizeof(*c->model_idx));
	if (!c->models || !c->model_idx || nset_init(&set, (size_t)n) < 0)
		goto out;
	c->n_models = (size_t)n;
	i = tok + 1;
	for (int k = 0; k < n; k++, i = tok_next(p, i)) {
		struct cfg_model *m = &c->models[k];
		size_t o2 = path_idx(p, (size_t)k), o3 = p->plen;
		int v[4] = { -1, -1, -1, -1 }, name_tok = -1;
		const char *s;
		size_t len;
		unsigned first;

		m->id = k;
		m->enabled = true;
		m->line = tok_line(p, i);
		if (p->t[i].type == JSMN_STRING) {
			name_tok = i;
		} else if (p->t[i].type == JSMN_OBJECT) {
			obj_fields(p, i, keys, v);
			name_tok = v[0];
			if (name_tok < 0)
				report(p, CFG_ERROR, i, "missing required key \"name\"");
			else
				o3 = path_str(p, "name");
		} else {
			report(p, CFG_ERROR, i, "must be an object or a model name, not %s",
			       tok_kind(p, i));
		}
		if (name_tok >= 0 && get_str(p, name_tok, INSPECT_MODEL_MAX, &s, &len) == 0) {
			if (len == 1 && s[0] == '*')
				report(p, CFG_ERROR, name_tok, "\"*\" is not a model name: bind \"*\" "
				       "in a channel and set agent.allow_unknown_models");
			else if (!cfg_model_name_ok(s, len))
				report(p, CFG_ERROR, name_tok, "invalid model name: use 1 to %d characters "
				       "from A-Z a-z 0-9 . _ - @ / + [ ]", INSPECT_MODEL_MAX);
			else if ((first = nset_add(&set, s, len, m->line)))
				report(p, CFG_ERROR, name_tok, "duplicate model \"%s\" (first on line %u)",
				       s, first);
			else {
				m->name = s;
				m->name_len = len;
				c->model_idx[c->n_model_idx++] = m;
			}
		}
		path_pop(p, o3);
		if (v[1] >= 0) {
			o3 = path_str(p, "enabled");
			get_bool(p, v[1], &m->enabled);
			path_pop(p, o3);
		}
		if (v[2] >= 0 && parse_price(p, v[2], &m->price) == 0)
			m->has_price = m->price_from_config = true;
		path_pop(p, o2);
	}
	qsort(c->model_idx, c->n_model_idx, sizeof(*c->model_idx), cmp_model);
out:
	free(set.v);
	path_pop(p, old);
}

static int cmp_binding(const void *a, const void *b)
{
	const struct cfg_binding *x = a, *y = b;
	int r = name_cmp(x->model, x->model_len, y->model, y->model_len);

	return r ? r : (x->line > y->line) - (x->line < y->line);
}

/* One binding: public name from key_tok (a string), upstream from val_tok
 * (a string; the same token in the array form). */
static void parse_binding(struct pctx *p, struct cfg_channel *ch, int key_tok, int val_tok)
{
	struct cfg_binding *b;
	const char *pub, *up;
	size_t plen, ulen;
	const struct cfg_model *m;

	if (get_str(p, key_tok, INSPECT_MODEL_MAX, &pub, &plen) < 0)
		return;
	if (plen == 1 && pub[0] == '*') {
		if (!want(p, val_tok, JSMN_STRING, "a string"))
			return;
		if (!p->c->agent.allow_unknown_models) {
			report(p, CFG_WARNING, key_tok, "ignored: agent.allow_unknown_models is false");
			return;
		}
		if (ch->wildcard) {
			report(p, CFG_ERROR, key_tok, "\"*\" is bound twice");
			return;
		}
		b = amalloc(p, sizeof(*b));
		if (!b)
			return;
		b->model = pub;
		b->model_len = 1;
		b->channel = ch;
		b->line = tok_line(p, key_tok);
		ch->wildcard = b;
		ch->has_wildcard = true;
		return;
	}
	m = config_model(p->c, pub, plen);
	if (!m) {
		report(p, CFG_ERROR, key_tok, "model \"%s\" is not defined in \"models\"",
		       cfg_model_name_ok(pub, plen) ? pub : "(invalid name)");
		return;
	}
	if (get_str(p, val_tok, INSPECT_MODEL_MAX, &up, &ulen) < 0)
		return;
	if (ulen == 0 || !no_ctl(up, ulen)) {
		report(p, CFG_ERROR, val_tok, "the upstream model name must be 1 to %d "
		       "characters without control characters", INSPECT_MODEL_MAX);
		return;
	}
	if (!m->enabled)
		report(p, CFG_WARNING, key_tok, "model \"%s\" is disabled: this binding is "
		       "unused until it is enabled", m->name);
	b = &ch->bindings[ch->n_bindings++];
	b->model = m->name;
	b->model_len = m->name_len;
	b->upstream = up;
	b->upstream_len = ulen;
	b->m = m;
	b->channel = ch;
	b->rewrite = ulen != plen || memcmp(up, pub, plen) != 0;
	b->line = tok_line(p, key_tok);
}

static void parse_bindings(struct pctx *p, struct cfg_channel *ch, int tok)
{
	size_t old = path_str(p, "models");
	int i, n;

	if (p->t[tok].type != JSMN_OBJECT && p->t[tok].type != JSMN_ARRAY) {
		report(p, CFG_ERROR, tok, "must be an object (public name -> upstream name) "
		       "or an array of model names, not %s", tok_kind(p, tok));
		goto out;
	}
	n = p->t[tok].size;
	ch->bindings = aarray(p, n ? (size_t)n : 1, sizeof(*ch->bindings));
	if (!ch->bindings)
		goto out;
	i = tok + 1;
	for (int k = 0; k < n; k++) {
		size_t o2;

		if (p->t[tok].type == JSMN_OBJECT) {
			const char *kr = p->js + p->t[i].start;

			if (p->t[i].end > p->t[i].start && kr[0] == '_') {
				i = tok_next(p, i + 1);
				continue;
			}
			o2 = path_tok(p, i);
			parse_binding(p, ch, i, i + 1);
			i = tok_next(p, i + 1);
		} else {
			o2 = path_idx(p, (size_t)k);
			parse_binding(p, ch, i, i);
			i = tok_next(p, i);
		}
		path_pop(p, o2);
	}
	qsort(ch->bindings, ch->n_bindings, sizeof(*ch->bindings), cmp_binding);
	for (size_t k = 1; k < ch->n_bindings; k++) {
		struct cfg_binding *a = &ch->bindings[k - 1], *b = &ch->bindings[k];

		if (a->model_len == b->model_len && memcmp(a->model, b->model, a->model_len) == 0) {
			size_t o2 = path_key(p, b->model, b->model_len);

			p->errors++;
			cfg_diag_add(p->diag, CFG_ERROR, p->origin, b->line, p->path,
			             "model \"%s\" is bound twice (first on line %u)", b->model, a->line);
			path_pop(p, o2);
		}
	}
out:
	path_pop(p, old);
}

static void parse_creds(struct pctx *p, struct cfg_channel *ch, int tok)
{
	static const char *const keys[] = { "name", "key", "enabled", NULL };
	size_t old = path_str(p, "credentials");
	int i, n;

	if (!want(p, tok, JSMN_ARRAY, "an array"))
		goto out;
	n = p->t[tok].size;
	if (n == 0) {
		report(p, CFG_ERROR, tok, "the channel has no credential");
		goto out;
	}
	ch->creds = aarray(p, (size_t)n, sizeof(*ch->creds));
	if (!ch->creds)
		goto out;
	ch->n_creds = (size_t)n;
	i = tok + 1;
	for (int k = 0; k < n; k++, i = tok_next(p, i)) {
		struct cfg_cred *cr = &ch->creds[k];
		size_t o2 = path_idx(p, (size_t)k), o3;
		int v[4];
		const char *s;
		size_t len;

		cr->id = -1;
		cr->enabled = true;
		cr->channel = ch;
		cr->line = tok_line(p, i);
		if (!want(p, i, JSMN_OBJECT, "an object")) {
			path_pop(p, o2);
			continue;
		}
		obj_fields(p, i, keys, v);
		if (v[0] < 0) {
			report(p, CFG_ERROR, i, "missing required key \"name\"");
		} else {
			o3 = path_str(p, "name");
			if (get_str(p, v[0], CFG_NAME_MAX, &s, &len) == 0) {
				if (!ident_ok(s, len)) {
					report(p, CFG_ERROR, v[0], "invalid credential name: use 1 to %d "
					       "characters from A-Z a-z 0-9 . _ -", CFG_NAME_MAX);
				} else {
					for (int j = 0; j < k; j++)
						if (ch->creds[j].name && strcmp(ch->creds[j].name, s) == 0) {
							report(p, CFG_ERROR, v[0], "duplicate credential \"%s\" in "
							       "this channel (first on line %u)", s,
							       ch->creds[j].line);
							s = NULL;
							break;
						}
					cr->name = s;
				}
			}
			path_pop(p, o3);
		}
		if (v[1] < 0) {
			report(p, CFG_ERROR, i, "missing required key \"key\"");
		} else {
			o3 = path_str(p, "key");
			get_secret(p, v[1], SECRET_WHY_KEY, &cr->key, &cr->key_len);
			path_pop(p, o3);
		}
		if (v[2] >= 0) {
			o3 = path_str(p, "enabled");
			get_bool(p, v[2], &cr->enabled);
			path_pop(p, o3);
		}
		if (cr->name && ch->name) {
			char *sv;

			cr->server_len = strlen(ch->name) + 2 + strlen(cr->name);
			sv = amalloc(p, cr->server_len + 1);
			if (sv)
				snprintf(sv, cr->server_len + 1, "%s--%s", ch->name, cr->name);
			cr->server = sv;
		}
		path_pop(p, o2);
	}
out:
	path_pop(p, old);
}

static void parse_channel_groups(struct pctx *p, struct cfg_channel *ch, int tok, int obj)
{
	struct realms_config *c = p->c;
	size_t words = (c->n_groups + 63) / 64;
	uint64_t *bits = aarray(p, words ? words : 1, sizeof(uint64_t));
	int *idx;
	size_t old;
	int i;

	ch->group_bits = bits;
	if (!bits)
		return;
	if (tok < 0) {
		int g = config_group_index(c, CFG_GROUP_DEFAULT, strlen(CFG_GROUP_DEFAULT));

		if (g < 0) {
			report(p, CFG_ERROR, obj, "no \"groups\" given, and there is no group "
			       "\"" CFG_GROUP_DEFAULT "\" to default to");
			return;
		}
		idx = aarray(p, 1, sizeof(int));
		if (!idx)
			return;
		idx[0] = g;
		bits[g / 64] |= 1ull << (g % 64);
		ch->groups = idx;
		ch->n_groups = 1;
		return;
	}
	old = path_str(p, "groups");
	if (!want(p, tok, JSMN_ARRAY, "an array of group names or objects"))
		goto out;
	if (p->t[tok].size == 0) {
		report(p, CFG_ERROR, tok, "must list at least one group");
		goto out;
	}
	idx = aarray(p, (size_t)p->t[tok].size, sizeof(int));
	if (!idx)
		goto out;
	ch->groups = idx;
	i = tok + 1;
	for (int k = 0; k < p->t[tok].size; k++, i = tok_next(p, i)) {
		size_t o2 = path_idx(p, (size_t)k);
		const char *s;
		size_t n;
		int g;

		if (get_str(p, i, CFG_NAME_MAX, &s, &n) == 0) {
			g = config_group_index(c, s, n);
			if (g < 0)
				report(p, CFG_ERROR, i, "group \"%s\" is not declared in \"groups\"",
				       ident_ok(s, n) ? s : "(invalid name)");
			else if (bits[g / 64] & (1ull << (g % 64)))
				report(p, CFG_ERROR, i, "group \"%s\" is listed twice", s);
			else {
				bits[g / 64] |= 1ull << (g % 64);
				idx[ch->n_groups++] = g;
			}
		}
		path_pop(p, o2);
	}
out:
	path_pop(p, old);
}

/* Header names a channel may not set: framing, routing, the credentials
 * (the "auth" key decides those) and Realms' own. */
static int header_name_reserved(const char *s, size_t n)
{
	static const char *const res[] = {
		"host", "content-length", "transfer-encoding", "connection", "keep-alive",
		"upgrade", "te", "trailer", "proxy-authorization", "authorization", "x-api-key",
		"expect", NULL
	};

	if (n >= 8 && strncasecmp(s, "x-realms", 8) == 0)
		return 1;
	for (size_t i = 0; res[i]; i++)
		if (strlen(res[i]) == n && strncasecmp(s, res[i], n) == 0)
			return 1;
	return 0;
}

/* An HTTP field name (RFC 9110 token). */
static int header_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > CFG_HEADER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && !strchr("!#$&'*+-.^_`|~", s[i]))
			return 0;
	return 1;
}

/* channels[].headers: {"Name": "value" | "env:NAME" | "file:PATH"}, sent
 * on every request of the channel in place of any client header of that
 * name. Values may be secrets: they are resolved like keys and reach
 * HAProxy only per request (txn.realms.h<i>, unset once used). */
static void parse_headers(struct pctx *p, struct cfg_channel *ch, int tok)
{
	int i = tok + 1;

	if (!want(p, tok, JSMN_OBJECT, "an object of header names and values"))
		return;
	if (p->t[tok].size > CFG_MAX_HEADERS) {
		report(p, CFG_ERROR, tok, "at most %d headers", CFG_MAX_HEADERS);
		return;
	}
	ch->headers = aarray(p, (size_t)p->t[tok].size, sizeof(*ch->headers));
	if (!ch->headers)
		return;
	for (int k = 0; k < p->t[tok].size; k++, i = tok_next(p, i + 1)) {
		struct cfg_header *h = &ch->headers[ch->n_headers];
		const char *name = p->js + p->t[i].start;
		size_t nlen = (size_t)(p->t[i].end - p->t[i].start);
		size_t o = path_tok(p, i);

		if (!header_name_ok(name, nlen)) {
			report(p, CFG_ERROR, i, "not an HTTP header name");
		} else if (header_name_reserved(name, nlen)) {
			report(p, CFG_ERROR, i, "a channel may not set this header (\"auth\" "
			       "decides the credentials' headers)");
		} else {
			for (size_t j = 0; j < ch->n_headers; j++)
				if (strlen(ch->headers[j].name) == nlen &&
				    !strncasecmp(ch->headers[j].name, name, nlen))
					report(p, CFG_ERROR, i, "given twice");
			h->name = astrndup(p, name, nlen);
			if (h->name && get_secret(p, i + 1, SECRET_WHY_KEY, &h->value,
			                          &h->value_len) == 0)
				ch->n_headers++;
		}
		path_pop(p, o);
	}
}

static void parse_channel(struct pctx *p, struct cfg_channel *ch, int tok, struct nset *names)
{
	static const char *const keys[] = {
		"name", "base_url", "priority", "weight", "enabled", "groups",
		"credentials", "models", "auth", "headers", NULL
	};
	int v[11];
	size_t o;
	const char *s;
	size_t len;
	long long x;
	unsigned first;

	ch->enabled = true;
	ch->weight = 1;
	ch->line = tok_line(p, tok);
	if (!want(p, tok, JSMN_OBJECT, "an object"))
		return;
	obj_fields(p, tok, keys, v);

	if (v[0] < 0) {
		report(p, CFG_ERROR, tok, "missing required key \"name\"");
	} else {
		o = path_str(p, "name");
		if (get_str(p, v[0], CFG_NAME_MAX, &s, &len) == 0) {
			if (!ident_ok(s, len))
				report(p, CFG_ERROR, v[0], "invalid channel name: use 1 to %d "
				       "characters from A-Z a-z 0-9 . _ -", CFG_NAME_MAX);
			else if ((first = nset_add(names, s, len, ch->line)))
				report(p, CFG_ERROR, v[0], "duplicate channel \"%s\" (first on line %u)",
				       s, first);
			else
				ch->name = s;
		}
		path_pop(p, o);
	}

	if (v[1] < 0) {
		report(p, CFG_ERROR, tok, "missing required key \"base_url\"");
	} else {
		struct url u;
		const char *err;

		o = path_str(p, "base_url");
		if (get_str(p, v[1], 2048, &s, &len) == 0) {
			err = parse_url(s, len, &u);
			if (err) {
				report(p, CFG_ERROR, v[1], "%s", err);
			} else {
				char auth[300], url[320 + CFG_PATH_PREFIX_MAX];
				int dflt = u.port == (u.tls ? 443 : 80);

				snprintf(auth, sizeof(auth), "%s%s%s", u.ipv6 ? "[" : "", u.host,
				         u.ipv6 ? "]" : "");
				if (!dflt)
					snprintf(auth + strlen(auth), sizeof(auth) - strlen(auth), ":%d",
					         u.port);
				snprintf(url, sizeof(url), "%s://%s%s", u.tls ? "https" : "http", auth,
				         u.path);
				ch->scheme = u.tls ? "https" : "http";
				ch->tls = u.tls;
				ch->ipv6 = u.ipv6;
				ch->port = u.port;
				ch->host = astrndup(p, u.host, strlen(u.host));
				ch->authority = astrndup(p, auth, strlen(auth));
				ch->base_url = astrndup(p, url, strlen(url));
				ch->path_prefix = astrndup(p, u.path, strlen(u.path));
			}
		}
		path_pop(p, o);
	}

	if (v[2] >= 0) {
		o = path_str(p, "priority");
		if (get_int(p, v[2], CFG_PRIORITY_MIN, CFG_PRIORITY_MAX, &x) == 0)
			ch->priority = (int)x;
		path_pop(p, o);
	}
	if (v[3] >= 0) {
		o = path_str(p, "weight");
		if (get_int(p, v[3], 0, CFG_WEIGHT_MAX, &x) == 0)
			ch->weight = (int)x;
		path_pop(p, o);
	}
	if (v[4] >= 0) {
		o = path_str(p, "enabled");
		get_bool(p, v[4], &ch->enabled);
		path_pop(p, o);
	}
	parse_channel_groups(p, ch, v[5], tok);
	if (v[6] < 0)
		report(p, CFG_ERROR, tok, "missing required key \"credentials\": "
		       "the channel has no credential");
	else
		parse_creds(p, ch, v[6]);
	if (v[7] >= 0)
		parse_bindings(p, ch, v[7]);
	if (v[8] >= 0) {
		o = path_str(p, "auth");
		if (get_str(p, v[8], 16, &s, &len) == 0) {
			if (!strcmp(s, "both"))
				ch->auth = CFG_AUTH_BOTH;
			else if (!strcmp(s, "x-api-key"))
				ch->auth = CFG_AUTH_X_API_KEY;
			else if (!strcmp(s, "bearer"))
				ch->auth = CFG_AUTH_BEARER;
			else
				report(p, CFG_ERROR, v[8], "must be \"both\", \"x-api-key\" or \"bearer\"");
		}
		path_pop(p, o);
	}
	if (v[9] >= 0) {
		o = path_str(p, "headers");
		parse_headers(p, ch, v[9]);
		path_pop(p, o);
	}
}

static int cmp_channel(const void *a, const void *b)
{
	return strcmp((*(struct cfg_channel *const *)a)->name,
	              (*(struct cfg_channel *const *)b)->name);
}

static int cmp_server(const void *a, const void *b)
{
	const struct cfg_cred *x = *(struct cfg_cred *const *)a;
	const struct cfg_cred *y = *(struct cfg_cred *const *)b;
	int r = strcmp(x->server, y->server);

	return r ? r : x->id - y->id;
}

static void parse_channels(struct pctx *p, int tok)
{
	struct realms_config *c = p->c;
	size_t old = path_str(p, "channels");
	struct nset names = { 0 };
	size_t nc = 0;
	int i, n;

	if (tok < 0 || !want(p, tok, JSMN_ARRAY, "an array"))
		goto out;
	n = p->t[tok].size;
	c->channels = aarray(p, (size_t)n, sizeof(*c->channels));
	c->channel_idx = aarray(p, (size_t)n, sizeof(*c->channel_idx));
	if (!c->channels || !c->channel_idx || nset_init(&names, (size_t)n) < 0)
		goto out;
	c->n_channels = (size_t)n;
	i = tok + 1;
	for (int k = 0; k < n; k++, i = tok_next(p, i)) {
		size_t o2 = path_idx(p, (size_t)k);

		c->channels[k].id = k;
		parse_channel(p, &c->channels[k], i, &names);
		if (c->channels[k].name)
			c->channel_idx[c->n_channel_idx++] = &c->channels[k];
		path_pop(p, o2);
	}
	qsort(c->channel_idx, c->n_channel_idx, sizeof(*c->channel_idx), cmp_channel);

	/* Dense credential ids over the whole config, in file order. */
	for (size_t k = 0; k < c->n_channels; k++)
		nc += c->channels[k].n_creds;
	c->creds = aarray(p, nc ? nc : 1, sizeof(*c->creds));
	c->server_idx = aarray(p, nc ? nc : 1, sizeof(*c->server_idx));
	if (!c->creds || !c->server_idx)
		goto out;
	for (size_t k = 0; k < c->n_channels; k++) {
		struct cfg_channel *ch = &c->channels[k];

		for (size_t j = 0; j < ch->n_creds; j++) {
			if (!ch->creds[j].server)
				continue;
			ch->creds[j].id = (int)c->n_creds;
			c->creds[c->n_creds] = &ch->creds[j];
			c->server_idx[c->n_creds++] = &ch->creds[j];
		}
	}
	c->n_server_idx = c->n_creds;
	qsort(c->server_idx, c->n_server_idx, sizeof(*c->server_idx), cmp_server);
	/* Names are unique per channel and per credential, but "a-"+"b" and
	 * "a"+"-b" both give "a---b". */
	for (size_t k = 1; k < c->n_server_idx; k++) {
		const struct cfg_cred *a = c->server_idx[k - 1], *b = c->server_idx[k];

		if (strcmp(a->server, b->server) == 0) {
			char path[CFG_PATH_MAX_LEN];

			snprintf(path, sizeof(path), "channels[%d].credentials[%td]",
			         b->channel->id, b - b->channel->creds);
			p->errors++;
			cfg_diag_add(p->diag, CFG_ERROR, p->origin, b->line, path,
			             "HAProxy server name \"%s\" is also the name of the credential "
			             "on line %u", b->server, a->line);
		}
	}
out:
	free(names.v);
	path_pop(p, old);
}

/* ---------------------------------------------------------------------- */
/* Cross checks                                                           */
/* ---------------------------------------------------------------------- */

static int channel_serves(const struct cfg_channel *ch)
{
	if (!ch->enabled || ch->weight == 0)
		return 0;
	for (size_t j = 0; j < ch->n_creds; j++)
		if (ch->creds[j].enabled)
			return 1;
	return 0;
}

static void build_routes(struct pctx *p)
{
	struct realms_config *c = p->c;
	size_t total = 0, nw = 0, *fill;
	struct cfg_route *all;

	for (size_t k = 0; k < c->n_channels; k++) {
		const struct cfg_channel *ch = &c->channels[k];

		if (ch->has_wildcard) {
			nw++;
			total += c->n_models;
		} else {
			total += ch->n_bindings;
		}
	}
	c->wildcard = aarray(p, nw ? nw : 1, sizeof(*c->wildcard));
	all = aarray(p, total ? total : 1, sizeof(*all));
	fill = calloc(c->n_models ? c->n_models : 1, sizeof(*fill));
	if (!c->wildcard || !all || !fill)
		goto out;
	/* Count, then lay each model's routes out contiguously. */
	for (size_t k = 0; k < c->n_channels; k++) {
		const struct cfg_channel *ch = &c->channels[k];

		if (ch->has_wildcard) {
			c->wildcard[c->n_wildcard++] = ch;
			for (size_t m = 0; m < c->n_models; m++)
				fill[m]++;
		} else {
			for (size_t b = 0; b < ch->n_bindings; b++)
				fill[ch->bindings[b].m->id]++;
		}
	}
	for (size_t m = 0, at = 0; m < c->n_models; m++) {
		c->models[m].routes = all + at;
		at += fill[m];
		fill[m] = 0;
	}
	for (size_t k = 0; k < c->n_channels; k++) {
		const struct cfg_channel *ch = &c->channels[k];

		if (ch->has_wildcard) {
			for (size_t m = 0; m < c->n_models; m++) {
				struct cfg_model *md = &c->models[m];
				const struct cfg_binding *b = ch->wildcard;

				if (md->name)
					b = cfg_channel_binding(ch, md->name, md->name_len);
				all[md->routes - all + fill[m]] = (struct cfg_route){ ch, b };
				fill[m]++;
			}
			continue;
		}
		for (size_t b = 0; b < ch->n_bindings; b++) {
			struct cfg_model *md = &c->models[ch->bindings[b].m->id];

			all[md->routes - all + fill[md->id]] = (struct cfg_route){ ch, &ch->bindings[b] };
			fill[md->id]++;
		}
	}
	for (size_t m = 0; m < c->n_models; m++)
		c->models[m].n_routes = fill[m];
out:
	free(fill);
}

static void check_models(struct pctx *p)
{
	struct realms_config *c = p->c;
	size_t top = path_str(p, "models");

	for (size_t k = 0; k < c->n_models; k++) {
		struct cfg_model *m = &c->models[k];
		size_t old;
		bool served = false;

		if (!m->name)
			continue;
		old = path_idx(p, k);
		for (size_t r = 0; r < m->n_routes && !served; r++)
			served = channel_serves(m->routes[r].channel);
		if (m->enabled && !served)
			cfg_diag_add(p->diag, CFG_WARNING, p->origin, m->line, p->path,
			             "model \"%s\" is unavailable: no enabled channel with an "
			             "enabled credential binds it", m->name);
		if (!m->has_price) {
			const struct price *d = price_default(m->name, m->name_len);

			if (d) {
				m->price = *d;
				m->has_price = true;
			} else {
				cfg_diag_add(p->diag, CFG_WARNING, p->origin, m->line, p->path,
				             "no price for model \"%s\": usage will be recorded at cost 0 "
				             "(add a \"price\")", m->name);
			}
		}
		path_pop(p, old);
	}
	path_pop(p, top);
}

static void check_channels(struct pctx *p, int tok)
{
	struct realms_config *c = p->c;
	size_t old = path_str(p, "channels");

	if (c->n_channels == 0)
		report(p, CFG_WARNING, tok < 0 ? 0 : tok,
		       "no channel is defined: every request will be refused");
	for (size_t k = 0; k < c->n_channels; k++) {
		const struct cfg_channel *ch = &c->channels[k];
		size_t o2 = path_idx(p, k);

		if (ch->enabled && ch->n_creds && !channel_serves(ch) && ch->weight)
			cfg_diag_add(p->diag, CFG_WARNING, p->origin, ch->line, p->path,
			             "every credential is disabled: the channel takes no traffic");
		if (ch->n_bindings == 0 && !ch->has_wildcard && ch->name)
			cfg_diag_add(p->diag, CFG_WARNING, p->origin, ch->line, p->path,
			             "the channel binds no model: it is never used");
		path_pop(p, o2);
	}
	path_pop(p, old);
	if (c->agent.allow_unknown_models && c->n_wildcard == 0 && p->allow_tok >= 0) {
		old = path_str(p, "agent");
		path_str(p, "allow_unknown_models");
		report(p, CFG_WARNING, p->allow_tok, "has no effect: no channel binds \"*\"");
		path_pop(p, old);
	}
}

/* ---------------------------------------------------------------------- */
/* Entry points                                                           */
/* ---------------------------------------------------------------------- */

static atomic_uint_fast64_t generations;

static void config_free(struct realms_config *c)
{
	struct cfg_arena *a = c->arena;

	explicit_bzero(c, sizeof(*c));
	free(c);
	arena_free(a);
}

/* The parse proper; *inline_secrets gets the number of secrets written in
 * the JSON itself (for config_load's check of the file's mode). */
static struct realms_config *parse(const char *json, size_t len, const char *origin,
                                   const char *base_dir, struct cfg_diag *diag,
                                   int *inline_secrets)
{
	static const char *const keys[] = {
		"redis", "agent", "groups", "models", "channels", "failover", "timezone", NULL
	};
	struct pctx p;
	jsmn_parser jp;
	struct realms_config *c = NULL;
	size_t first = diag ? diag->n : 0;
	const char *whole = json;   /* BOM included: the file's own bytes */
	size_t whole_len = len;
	int v[8], r;

	*inline_secrets = 0;
	memset(&p, 0, sizeof(p));
	p.origin = origin ? origin : "config";
	p.base_dir = base_dir;
	p.diag = diag;
	p.lline = 1;
	p.allow_tok = -1;
	if (len > CFG_MAX_FILE_SIZE) {
		report(&p, CFG_ERROR, -1, "file too large (more than %u bytes)", CFG_MAX_FILE_SIZE);
		return NULL;
	}
	/* A UTF-8 byte order mark, as some editors write. */
	if (len >= 3 && memcmp(json, "\xef\xbb\xbf", 3) == 0) {
		json += 3;
		len -= 3;
	}
	p.js = json;
	p.len = len;
	if (json_syntax(json, len, p.origin, diag) < 0) {
		p.errors++;
		return NULL;
	}
	for (size_t k = 0; k < len; k++) {
		if (json[k] == ' ' || json[k] == '\t' || json[k] == '\n' || json[k] == '\r')
			continue;
		if (json[k] != '{') {
			p.errors++;
			cfg_diag_add(diag, CFG_ERROR, p.origin, line_at(json, k), NULL,
			             "the configuration must be a JSON object");
			return NULL;
		}
		break;
	}
	jsmn_init(&jp);
	r = jsmn_parse(&jp, json, len, NULL, 0);
	if (r <= 0)
		goto bad_json;
	p.t = malloc((size_t)r * sizeof(*p.t));
	if (!p.t) {
		report(&p, CFG_ERROR, -1, "out of memory");
		return NULL;
	}
	p.nt = r;
	jsmn_init(&jp);
	if (jsmn_parse(&jp, json, len, p.t, (unsigned)r) != r)
		goto bad_json;
	c = calloc(1, sizeof(*c));
	if (!c) {
		report(&p, CFG_ERROR, -1, "out of memory");
		goto out;
	}
	p.c = c;
	atomic_init(&c->refs, 1);
	c->generation = atomic_fetch_add(&generations, 1) + 1;
	c->origin = astrndup(&p, p.origin, strlen(p.origin));
	/* token_hash_hex is plain SHA-256 in hex, whatever the bytes. */
	if (token_hash_hex(whole, whole_len, c->sha256) < 0)
		report(&p, CFG_ERROR, -1, "cannot compute the file's SHA-256");

	obj_fields(&p, 0, keys, v);
	parse_redis(&p, v[0]);
	parse_agent(&p, v[1]);
	parse_groups(&p, v[2]);
	parse_models(&p, v[3]);
	parse_channels(&p, v[4]);
	parse_failover(&p, v[5]);
	parse_timezone(&p, v[6]);
	if (!p.oom)
		build_routes(&p);
	if (!p.oom) {
		check_models(&p);
		check_channels(&p, v[4]);
	}
	goto out;
bad_json:
	/* The syntax check accepted it; jsmn should too. */
	report(&p, CFG_ERROR, -1, "invalid JSON");
out:
	free(p.t);
	*inline_secrets = p.inline_secrets;
	diag_sort(diag, first);
	if (c && (p.errors || p.oom)) {
		config_free(c);
		c = NULL;
	}
	return c;
}

struct realms_config *config_parse(const char *json, size_t len, const char *origin,
                                   struct cfg_diag *diag)
{
	int inline_secrets;

	return parse(json, len, origin, NULL, diag, &inline_secrets);
}

struct realms_config *config_load(const char *path, struct cfg_diag *diag)
{
	struct realms_config *c = NULL;
	char *buf = NULL, *dir = NULL, *slash;
	size_t n = 0, first;
	struct stat st;
	int fd, inline_secrets = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		cfg_diag_add(diag, CFG_ERROR, path, 0, NULL, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cfg_diag_add(diag, CFG_ERROR, path, 0, NULL, "not a regular file");
		goto out;
	}
	if (st.st_size > (off_t)CFG_MAX_FILE_SIZE) {
		cfg_diag_add(diag, CFG_ERROR, path, 0, NULL, "file too large (more than %u bytes)",
		             CFG_MAX_FILE_SIZE);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		cfg_diag_add(diag, CFG_ERROR, path, 0, NULL, "out of memory");
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cfg_diag_add(diag, CFG_ERROR, path, 0, NULL, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	dir = strdup(path);
	if (!dir) {
		cfg_diag_add(diag, CFG_ERROR, path, 0, NULL, "out of memory");
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	first = diag ? diag->n : 0;
	c = parse(buf, n, path, dir, diag, &inline_secrets);
	/* About the whole file: line 0, so the sort puts it first. */
	if (inline_secrets && secret_exposed(st.st_mode))
		diag_add_exposed(diag, path, 0, NULL, "readable by other users (mode %04o) and "
		                 "holds %d secret%s written inline: chmod o-r %s, or give %s as "
		                 "\"env:NAME\" or \"file:PATH\"", (unsigned)(st.st_mode & 07777),
		                 inline_secrets, inline_secrets == 1 ? "" : "s", path,
		                 inline_secrets == 1 ? "it" : "them");
	diag_sort(diag, first);
out:
	if (buf) {
		/* Inline keys were in there. */
		explicit_bzero(buf, n);
		free(buf);
	}
	free(dir);
	close(fd);
	return c;
}

void config_ref(struct realms_config *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void config_unref(struct realms_config *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		config_free(c);
}

/* ---------------------------------------------------------------------- */
/* The Redis endpoint, after the environment's overrides                  */
/* ---------------------------------------------------------------------- */

/* A variable's value; NULL when unset or empty (an empty REALMS_REDIS has
 * always meant "not given"; the others follow it). */
static const char *env_given(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void config_redis_release(struct cfg_redis *r)
{
	if (!r)
		return;
	if (r->password)
		explicit_bzero((char *)r->password, r->password_len);
	free((char *)r->password);
	free((char *)r->user);
	free((char *)r->address);
	memset(r, 0, sizeof(*r));
}

int config_redis_copy(struct cfg_redis *dst, const struct cfg_redis *src)
{
	char *pw = src->password ? malloc(src->password_len + 1) : NULL;

	memset(dst, 0, sizeof(*dst));
	dst->addr = src->addr;
	dst->address = src->address ? strdup(src->address) : NULL;
	dst->user = src->user ? strdup(src->user) : NULL;
	if (pw) {
		memcpy(pw, src->password, src->password_len);
		pw[src->password_len] = '\0';
		dst->password = pw;
		dst->password_len = src->password_len;
	}
	if ((src->address && !dst->address) || (src->user && !dst->user) ||
	    (src->password && !pw)) {
		config_redis_release(dst);
		return -1;
	}
	return 0;
}

int config_redis_env(const struct realms_config *c, struct cfg_redis *out,
                     struct cfg_diag *diag)
{
	char buf[CFG_SECRET_MAX + 1], err[SECRET_ERR_MAX];
	const char *addr = env_given(ENV_REDIS), *user = env_given(ENV_REDIS_USER);
	const char *pw_file = env_given(ENV_REDIS_PASSWORD_FILE);
	const char *pw = NULL;
	size_t pw_len = 0;
	int errors = 0;
	mode_t mode;
	ssize_t n;

	memset(out, 0, sizeof(*out));
	if (addr) {
		if (netaddr_parse(addr, &out->addr, err, sizeof(err)) < 0) {
			cfg_diag_add(diag, CFG_ERROR, ENV_REDIS, 0, NULL, "invalid address: %s "
			             "(expected HOST:PORT, [IPV6]:PORT, unix:PATH or /PATH)", err);
			errors++;
		}
	} else if (c) {
		addr = c->redis.address;
		out->addr = c->redis.addr;
	} else {
		addr = CFG_REDIS_DEFAULT;
		netaddr_parse(addr, &out->addr, err, sizeof(err));
	}

	if (user) {
		if (strlen(user) > CFG_REDIS_USER_MAX || !secret_ok(user, strlen(user))) {
			cfg_diag_add(diag, CFG_ERROR, ENV_REDIS_USER, 0, NULL, "must be 1 to %d "
			             "visible ASCII characters (no spaces)", CFG_REDIS_USER_MAX);
			errors++;
		}
	} else if (c) {
		user = c->redis.user;
	}

	if (pw_file && env_given(ENV_REDIS_PASSWORD)) {
		cfg_diag_add(diag, CFG_ERROR, ENV_REDIS_PASSWORD_FILE, 0, NULL, "set "
		             ENV_REDIS_PASSWORD_FILE " or " ENV_REDIS_PASSWORD ", not both");
		errors++;
	} else if (pw_file) {
		n = secret_file_read(pw_file, SECRET_WHY_REDIS, buf, &mode, err, sizeof(err));
		if (n < 0) {
			cfg_diag_add(diag, CFG_ERROR, ENV_REDIS_PASSWORD_FILE, 0, NULL, "%s", err);
			errors++;
		} else {
			pw = buf;
			pw_len = (size_t)n;
			if (secret_exposed(mode))
				diag_add_exposed(diag, ENV_REDIS_PASSWORD_FILE, 0, NULL, "file %s is "
				                 "readable by other users (mode %04o): chmod o-r %s",
				                 pw_file, (unsigned)(mode & 07777), pw_file);
		}
	} else if (env_given(ENV_REDIS_PASSWORD)) {
		pw = env_secret(ENV_REDIS_PASSWORD, SECRET_WHY_REDIS, &pw_len, err, sizeof(err));
		if (!pw) {
			cfg_diag_add(diag, CFG_ERROR, ENV_REDIS_PASSWORD, 0, NULL, "%s", err);
			errors++;
		}
	} else if (c && c->redis.password) {
		pw = c->redis.password;
		pw_len = c->redis.password_len;
	}
	if (user && !pw && !errors) {
		cfg_diag_add(diag, CFG_ERROR, env_given(ENV_REDIS_USER) ? ENV_REDIS_USER :
		             c->origin, 0, env_given(ENV_REDIS_USER) ? NULL : "redis.user",
		             "Redis user \"%s\" has no password: give redis.password, "
		             ENV_REDIS_PASSWORD_FILE " or " ENV_REDIS_PASSWORD, user);
		errors++;
	}

	if (!errors) {
		struct cfg_redis found = {
			.address = addr, .addr = out->addr, .user = user,
			.password = pw, .password_len = pw_len,
		};

		if (config_redis_copy(out, &found) < 0) {
			cfg_diag_add(diag, CFG_ERROR, ENV_REDIS, 0, NULL, "out of memory");
			errors++;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	if (errors) {
		config_redis_release(out);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Lookups                                                                */
/* ---------------------------------------------------------------------- */

const struct cfg_model *config_model(const struct realms_config *c, const char *name,
                                     size_t len)
{
	size_t lo = 0, hi = c ? c->n_model_idx : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_model *m = c->model_idx[mid];
		int r = name_cmp(name, len, m->name, m->name_len);

		if (r == 0)
			return m;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct cfg_channel *config_channel(const struct realms_config *c, const char *name,
                                         size_t len)
{
	size_t lo = 0, hi = c ? c->n_channel_idx : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_channel *ch = c->channel_idx[mid];
		int r = name_cmp(name, len, ch->name, strlen(ch->name));

		if (r == 0)
			return ch;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct cfg_cred *config_cred_by_server(const struct realms_config *c,
                                             const char *server, size_t len)
{
	size_t lo = 0, hi = c ? c->n_server_idx : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_cred *cr = c->server_idx[mid];
		int r = name_cmp(server, len, cr->server, cr->server_len);

		if (r == 0)
			return cr;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct cfg_binding *cfg_channel_binding(const struct cfg_channel *ch,
                                              const char *model, size_t len)
{
	size_t lo = 0, hi = ch->n_bindings;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_binding *b = &ch->bindings[mid];
		int r = name_cmp(model, len, b->model, b->model_len);

		if (r == 0)
			return b;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return ch->has_wildcard ? ch->wildcard : NULL;
}

int config_group_index(const struct realms_config *c, const char *name, size_t len)
{
	size_t lo = 0, hi = c ? c->n_group_idx : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *g = c->groups[c->group_idx[mid]];
		int r = name_cmp(name, len, g, strlen(g));

		if (r == 0)
			return c->group_idx[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

const struct price *config_price(const struct realms_config *c, const char *model,
                                 size_t len)
{
	const struct cfg_model *m = config_model(c, model, len);

	if (m)
		return m->has_price ? &m->price : NULL;
	return price_default(model, len);
}

/*
 * realmsctl usage: the usage and cost the agents recorded in Redis, summed
 * over a range of days, as a table, JSON or CSV; grouped by any combination
 * of token, model, channel and day (--by), since the combo hashes hold the
 * day x token x model x channel cross.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include <realms/limits.h>
#include <realms/record.h>
#include <realms/rkeys.h>

#include "ctl.h"

/* ---------------------------------------------------------------------- */
/* usage                                                                  */
/* ---------------------------------------------------------------------- */

/* The counters of a day hash, in display order (rkeys.h). */
#define N_UF 10
#define UF_COST 9
static const char *const uf_fields[N_UF] = {
	RKEY_UF_REQUESTS, RKEY_UF_ERRORS, RKEY_UF_PARTIAL, RKEY_UF_INPUT,
	RKEY_UF_OUTPUT, RKEY_UF_CACHE_WRITE_5M, RKEY_UF_CACHE_WRITE_1H,
	RKEY_UF_CACHE_READ, RKEY_UF_WEB_SEARCH, RKEY_UF_COST_NUSD,
};
static const char *const uf_heads[N_UF] = {
	"REQUESTS", "ERRORS", "PARTIAL", "INPUT", "OUTPUT", "CACHE_W5M",
	"CACHE_W1H", "CACHE_READ", "WEB_SEARCH", "COST_USD",
};

struct usum {
	uint64_t v[N_UF];
};

/* Sums per name (decoded), in insertion order until sorted. */
struct ubucket {
	char *name;
	struct usum s;
};

struct ugroup {
	struct ubucket *b;
	size_t n, cap;
};

/* The bucket of name (created empty), or NULL when out of memory. */
static struct usum *ugroup_get(struct ugroup *g, const char *name)
{
	struct ubucket *nb;
	size_t i;

	for (i = 0; i < g->n; i++)
		if (strcmp(g->b[i].name, name) == 0)
			return &g->b[i].s;
	if (g->n == g->cap) {
		nb = realloc(g->b, (g->cap ? 2 * g->cap : 16) * sizeof(*nb));
		if (!nb)
			return NULL;
		g->b = nb;
		g->cap = g->cap ? 2 * g->cap : 16;
	}
	g->b[g->n].name = strdup(name);
	if (!g->b[g->n].name)
		return NULL;
	memset(&g->b[g->n].s, 0, sizeof(g->b[g->n].s));
	return &g->b[g->n++].s;
}

static void ugroup_free(struct ugroup *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->b[i].name);
	free(g->b);
}

static int bucket_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ubucket *)a)->name, ((const struct ubucket *)b)->name);
}

static void usum_add(struct usum *to, const struct usum *s)
{
	int i;

	for (i = 0; i < N_UF; i++)
		to->v[i] += s->v[i];
}

/* A counter of a day hash: plain decimal; anything else reads as 0 (the
 * script only ever writes integers). */
static uint64_t to_u64(const char *s)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return 0;
	return v;
}

/* "YYYYMMDD" as "YYYY-MM-DD" into out (11 bytes). */
static const char *iso_day(const char *d, char out[11])
{
	snprintf(out, 11, "%.4s-%.2s-%.2s", d, d + 4, d + 6);
	return out;
}

/* Nano-USD as USD, exact: every one of the 9 decimals, integer math. */
static const char *fmt_usd_exact(uint64_t nusd, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRIu64 ".%09" PRIu64, nusd / 1000000000, nusd % 1000000000);
	return buf;
}

/* Nano-USD as USD rounded (half up) to 6 decimals, with integer math. */
static const char *fmt_usd(uint64_t nusd, char *buf, size_t size)
{
	uint64_t micro = nusd / 1000 + (nusd % 1000 >= 500);

	snprintf(buf, size, "%" PRIu64 ".%06" PRIu64, micro / 1000000, micro % 1000000);
	return buf;
}

/* Dimensions of --by: the three names of a combo, then its day. */
enum udim { UDIM_TOKEN = 0, UDIM_MODEL, UDIM_CHANNEL, UDIM_DAY, UDIM_N };
static const char *const udim_names[UDIM_N] = { "token", "model", "channel", "day" };

/* One row of --by: the values of the dimensions asked for (decoded names,
 * days as YYYY-MM-DD), in --by order, owned by the row. */
struct urow {
	char *part[UDIM_N];
	struct usum s;
};

struct usage_q {
	const char *f_name[3];          /* token, model, channel filters or NULL */
	char f_seg[3][RECORD_SEG_MAX];  /* their key segments */
	char since[RECORD_DAY_LEN + 1], until[RECORD_DAY_LEN + 1];
	struct usum total;
	struct ugroup by[3];            /* by token, model, channel */
	enum udim dims[UDIM_N];         /* --by, in the order given */
	int n_dims;                     /* 0: no --by */
	struct urow *rows;              /* one per combo hash, then merged */
	size_t n_rows, cap_rows;
};

/* One combo member, "<token>:<model>:<channel>", of day; queued for
 * HGETALL when it passes the filters. */
struct ujob {
	char *key;
	char name[3][300];              /* decoded: a name is at most 256 bytes */
	char day[RECORD_DAY_LEN + 1];
};

/* Splits and decodes a combos:<day> member. Returns 0, or -1 if malformed. */
static int combo_split(const char *m, size_t len, char seg[3][RECORD_SEG_MAX],
                       char name[3][300])
{
	const char *p = m, *end = m + len, *c;
	int i;

	for (i = 0; i < 3; i++) {
		c = i < 2 ? memchr(p, ':', (size_t)(end - p)) : end;
		if (!c || (size_t)(c - p) >= RECORD_SEG_MAX)
			return -1;
		memcpy(seg[i], p, (size_t)(c - p));
		seg[i][c - p] = '\0';
		if (record_seg_decode(p, (size_t)(c - p), name[i], 300) < 0)
			return -1;
		p = c + 1;
	}
	return 0;
}

static void urow_free(struct urow *r)
{
	int k;

	for (k = 0; k < UDIM_N; k++)
		free(r->part[k]);
}

/* Appends the row of one combo hash (its dimensions copied). Returns 0, or
 * -1 when out of memory. */
static int row_add(struct usage_q *q, const struct ujob *j, const struct usum *s)
{
	struct urow *nr, *r;
	char iso[11];
	int k;

	if (q->n_rows == q->cap_rows) {
		nr = realloc(q->rows, (q->cap_rows ? 2 * q->cap_rows : 64) * sizeof(*nr));
		if (!nr)
			return -1;
		q->rows = nr;
		q->cap_rows = q->cap_rows ? 2 * q->cap_rows : 64;
	}
	r = &q->rows[q->n_rows];
	memset(r, 0, sizeof(*r));
	for (k = 0; k < q->n_dims; k++) {
		r->part[k] = strdup(q->dims[k] == UDIM_DAY ? iso_day(j->day, iso)
		                                           : j->name[q->dims[k]]);
		if (!r->part[k]) {
			urow_free(r);
			return -1;
		}
	}
	r->s = *s;
	q->n_rows++;
	return 0;
}

/* Rows in byte order of each dimension in turn (days sort as dates). */
static int q_dims_cmp;
static int row_cmp(const void *a, const void *b)
{
	const struct urow *x = a, *y = b;
	int k, c;

	for (k = 0; k < q_dims_cmp; k++)
		if ((c = strcmp(x->part[k], y->part[k])) != 0)
			return c;
	return 0;
}

/* Sorts the rows and merges those with equal dimensions, so that there is
 * one row per group. Decoded names are equal exactly when their segments
 * are (the encoding is reversible), so merging decoded values is exact. */
static void rows_merge(struct usage_q *q)
{
	size_t i, o = 0;

	if (!q->n_rows)
		return;
	q_dims_cmp = q->n_dims;
	qsort(q->rows, q->n_rows, sizeof(*q->rows), row_cmp);
	for (i = 1; i < q->n_rows; i++) {
		if (row_cmp(&q->rows[o], &q->rows[i]) == 0) {
			usum_add(&q->rows[o].s, &q->rows[i].s);
			urow_free(&q->rows[i]);
		} else {
			q->rows[++o] = q->rows[i];
		}
	}
	q->n_rows = o + 1;
}

/* Adds an HGETALL reply of a combo hash to the sums. */
static int usage_add(struct usage_q *q, const struct ujob *j, const redisReply *r)
{
	struct usum s, *b;
	int i;

	for (i = 0; i < N_UF; i++)
		s.v[i] = to_u64(ctl_hfield(r, uf_fields[i]));
	usum_add(&q->total, &s);
	for (i = 0; i < 3; i++) {
		b = ugroup_get(&q->by[i], j->name[i]);
		if (!b)
			return -1;
		usum_add(b, &s);
	}
	if (q->n_dims && row_add(q, j, &s) < 0)
		return -1;
	return 0;
}

/* Sends the HGETALLs of jobs[0..n) pipelined, CTL_USAGE_BATCH at a time,
 * and sums the replies. Returns 0, or -1 after printing why. */
static int usage_fetch(struct ctl *c, struct usage_q *q, struct ujob *jobs, size_t n)
{
	size_t i, j, end;
	void *rep;
	redisReply *r;
	int rc;

	for (i = 0; i < n; i = end) {
		end = i + CTL_USAGE_BATCH < n ? i + CTL_USAGE_BATCH : n;
		for (j = i; j < end; j++) {
			if (redisAppendCommand(c->rc, "HGETALL %s", jobs[j].key) != REDIS_OK) {
				ctl_errmsg("out of memory");
				return -1;
			}
		}
		for (j = i; j < end; j++) {
			rep = NULL;
			if (redisGetReply(c->rc, &rep) != REDIS_OK || !rep) {
				ctl_errmsg("Redis (HGETALL): %s", c->rc->errstr);
				return -1;
			}
			r = rep;
			rc = 0;
			if (r->type == REDIS_REPLY_ERROR) {
				ctl_errmsg("Redis (HGETALL %s): %s", jobs[j].key, r->str);
				rc = -1;
			} else if (usage_add(q, &jobs[j], r) < 0) {
				ctl_errmsg("out of memory");
				rc = -1;
			}
			freeReplyObject(r);
			if (rc < 0)
				return -1;  /* the connection is dropped with the CLI */
		}
	}
	return 0;
}

/* Finds the days with data in [since, until], then the combos of each day
 * that pass the filters, and sums their hashes. Returns CTL_OK or CTL_ERR. */
static int usage_collect(struct ctl *c, struct usage_q *q)
{
	redisReply *days = NULL, *m = NULL;
	struct ujob *jobs = NULL, *nj;
	size_t njobs = 0, cap = 0, d, i;
	char seg[3][RECORD_SEG_MAX];
	int k, rc = CTL_ERR;
	bool keep;

	days = RCMD(c, "ZRANGEBYSCORE", "ZRANGEBYSCORE", RKEY_USAGE_DAYS, q->since, q->until);
	if (!days)
		return CTL_ERR;
	if (days->type != REDIS_REPLY_ARRAY) {
		ctl_errmsg("Redis (ZRANGEBYSCORE %s): unexpected reply", RKEY_USAGE_DAYS);
		goto out;
	}
	for (d = 0; d < days->elements; d++) {
		const char *day = days->element[d]->str;
		char key[64];

		if (days->element[d]->type != REDIS_REPLY_STRING ||
		    days->element[d]->len != RECORD_DAY_LEN) {
			ctl_errmsg("Redis (%s): member is not a day; skipped", RKEY_USAGE_DAYS);
			continue;
		}
		snprintf(key, sizeof(key), "%s%s", RKEY_USAGE_COMBOS_PREFIX, day);
		m = RCMD(c, "SMEMBERS", "SMEMBERS", key);
		if (!m)
			goto out;
		if (m->type != REDIS_REPLY_ARRAY) {
			ctl_errmsg("Redis (SMEMBERS %s): unexpected reply", key);
			goto out;
		}
		for (i = 0; i < m->elements; i++) {
			const redisReply *e = m->element[i];

			if (njobs == cap) {
				nj = realloc(jobs, (cap ? 2 * cap : 64) * sizeof(*nj));
				if (!nj) {
					ctl_errmsg("out of memory");
					goto out;
				}
				jobs = nj;
				cap = cap ? 2 * cap : 64;
			}
			if (e->type != REDIS_REPLY_STRING ||
			    combo_split(e->str, e->len, seg, jobs[njobs].name) < 0) {
				ctl_errmsg("Redis (%s): malformed member; skipped", key);
				continue;
			}
			keep = true;
			for (k = 0; k < 3; k++)
				if (q->f_name[k] && strcmp(seg[k], q->f_seg[k]) != 0)
					keep = false;
			if (!keep)
				continue;
			memcpy(jobs[njobs].day, day, sizeof(jobs[njobs].day));
			if (asprintf(&jobs[njobs].key, "%s%s:%s", RKEY_USAGE_COMBO_PREFIX,
			             e->str, day) < 0) {
				ctl_errmsg("out of memory");
				goto out;
			}
			njobs++;
		}
		freeReplyObject(m);
		m = NULL;
	}
	if (usage_fetch(c, q, jobs, njobs) < 0)
		goto out;
	rc = CTL_OK;
out:
	for (i = 0; i < njobs; i++)
		free(jobs[i].key);
	free(jobs);
	if (m)
		freeReplyObject(m);
	freeReplyObject(days);
	return rc;
}

static void json_usum(const struct usum *s)
{
	int i;

	putchar('{');
	for (i = 0; i < N_UF; i++)
		printf("%s\"%s\": %" PRIu64, i ? ", " : "", uf_fields[i], s->v[i]);
	putchar('}');
}

static const char *const by_json[3] = { "by_token", "by_model", "by_channel" };
static const char *const by_kind[3] = { "token", "model", "channel" };

static void usage_print_json(const struct usage_q *q)
{
	char a[11], b[11];
	size_t i;
	int k;

	printf("{\n  \"since\": \"%s\",\n  \"until\": \"%s\",\n  \"filters\": {",
	       iso_day(q->since, a), iso_day(q->until, b));
	for (k = 0; k < 3; k++) {
		printf("%s\"%s\": ", k ? ", " : "", by_kind[k]);
		if (q->f_name[k])
			ctl_json_str(q->f_name[k]);
		else
			fputs("null", stdout);
	}
	fputs("},\n  \"total\": ", stdout);
	json_usum(&q->total);
	for (k = 0; k < 3; k++) {
		printf(",\n  \"%s\": {", by_json[k]);
		for (i = 0; i < q->by[k].n; i++) {
			fputs(i ? ",\n    " : "\n    ", stdout);
			ctl_json_str(q->by[k].b[i].name);
			fputs(": ", stdout);
			json_usum(&q->by[k].b[i].s);
		}
		fputs(q->by[k].n ? "\n  }" : "}", stdout);
	}
	if (q->n_dims) {
		fputs(",\n  \"by\": [", stdout);
		for (k = 0; k < q->n_dims; k++)
			printf("%s\"%s\"", k ? ", " : "", udim_names[q->dims[k]]);
		fputs("],\n  \"groups\": [", stdout);
		for (i = 0; i < q->n_rows; i++) {
			fputs(i ? ",\n    {" : "\n    {", stdout);
			for (k = 0; k < q->n_dims; k++) {
				printf("\"%s\": ", udim_names[q->dims[k]]);
				ctl_json_str(q->rows[i].part[k]);
				fputs(", ", stdout);
			}
			/* the counters, without json_usum's braces */
			for (int f = 0; f < N_UF; f++)
				printf("%s\"%s\": %" PRIu64, f ? ", " : "", uf_fields[f],
				       q->rows[i].s.v[f]);
			putchar('}');
		}
		fputs(q->n_rows ? "\n  ]" : "]", stdout);
	}
	fputs("\n}\n", stdout);
}

/* One CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or
 * LF, its quotes doubled. */
static void csv_field(const char *v)
{
	if (!strpbrk(v, ",\"\r\n")) {
		fputs(v, stdout);
		return;
	}
	putchar('"');
	for (; *v; v++) {
		if (*v == '"')
			putchar('"');
		putchar(*v);
	}
	putchar('"');
}

/* --csv: a header row, then one row per group (the total alone without
 * --by), CRLF line ends. Costs twice: cost_nusd, the integer, and
 * cost_usd, its exact decimal rendering. */
static void usage_print_csv(const struct usage_q *q)
{
	char usd[32];
	size_t i;
	int k, f;

	for (k = 0; k < q->n_dims; k++)
		printf("%s,", udim_names[q->dims[k]]);
	for (f = 0; f < N_UF; f++)
		printf("%s,", uf_fields[f]);
	fputs("cost_usd\r\n", stdout);
	for (i = 0; i < (q->n_dims ? q->n_rows : 1); i++) {
		const struct usum *s = q->n_dims ? &q->rows[i].s : &q->total;

		for (k = 0; k < q->n_dims; k++) {
			csv_field(q->rows[i].part[k]);
			putchar(',');
		}
		for (f = 0; f < N_UF; f++)
			printf("%" PRIu64 ",", s->v[f]);
		printf("%s\r\n", fmt_usd_exact(s->v[UF_COST], usd, sizeof(usd)));
	}
}

/* A name for the table: "(none)" for "", control bytes as '?', so a
 * row stays one line. */
static const char *table_name(const char *name, char *buf, size_t size)
{
	size_t i;

	if (!*name)
		return RKEY_USAGE_NONE;
	for (i = 0; name[i] && i + 1 < size; i++)
		buf[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
	buf[i] = '\0';
	return buf;
}

/* One row's cells as text into cells[N_UF][32]. */
static void usum_cells(const struct usum *s, char cells[N_UF][32])
{
	int i;

	for (i = 0; i < N_UF; i++) {
		if (i == UF_COST)
			fmt_usd(s->v[i], cells[i], 32);
		else
			snprintf(cells[i], 32, "%" PRIu64, s->v[i]);
	}
}

static void usage_print_table(const struct usage_q *q)
{
	char a[11], b[11], cells[N_UF][32], nbuf[300];
	const char *shown;
	int w[N_UF], wk = 7, wn = 4, i, k;
	size_t j;
	bool any = false;

	/* widths: headers, then every row */
	for (i = 0; i < N_UF; i++)
		w[i] = (int)strlen(uf_heads[i]);
	usum_cells(&q->total, cells);
	for (i = 0; i < N_UF; i++)
		if ((int)strlen(cells[i]) > w[i])
			w[i] = (int)strlen(cells[i]);
	for (k = 0; k < 3; k++) {
		for (j = 0; j < q->by[k].n; j++) {
			usum_cells(&q->by[k].b[j].s, cells);
			for (i = 0; i < N_UF; i++)
				if ((int)strlen(cells[i]) > w[i])
					w[i] = (int)strlen(cells[i]);
			shown = table_name(q->by[k].b[j].name, nbuf, sizeof(nbuf));
			if ((int)strlen(shown) > wn)
				wn = (int)strlen(shown);
		}
	}

	printf("usage from %s to %s (UTC days, inclusive); filters:",
	       iso_day(q->since, a), iso_day(q->until, b));
	for (k = 0; k < 3; k++) {
		if (q->f_name[k]) {
			printf(" %s=%s", by_kind[k], table_name(q->f_name[k], nbuf, sizeof(nbuf)));
			any = true;
		}
	}
	fputs(any ? "\n" : " none\n", stdout);
	printf("%-*s  %-*s", wk, "KIND", wn, "NAME");
	for (i = 0; i < N_UF; i++)
		printf("  %*s", w[i], uf_heads[i]);
	putchar('\n');

	usum_cells(&q->total, cells);
	printf("%-*s  %-*s", wk, "total", wn, "all");
	for (i = 0; i < N_UF; i++)
		printf("  %*s", w[i], cells[i]);
	putchar('\n');
	for (k = 0; k < 3; k++) {
		for (j = 0; j < q->by[k].n; j++) {
			usum_cells(&q->by[k].b[j].s, cells);
			printf("%-*s  %-*s", wk, by_kind[k], wn,
			       table_name(q->by[k].b[j].name, nbuf, sizeof(nbuf)));
			for (i = 0; i < N_UF; i++)
				printf("  %*s", w[i], cells[i]);
			putchar('\n');
		}
	}
}

/* The table of --by: one column per dimension, one row per group, then
 * the total. */
static void usage_print_rows(const struct usage_q *q)
{
	char a[11], b[11], cells[N_UF][32], nbuf[300], head[16];
	int w[N_UF], wd[UDIM_N], i, k;
	size_t j;
	bool any = false;

	for (i = 0; i < N_UF; i++)
		w[i] = (int)strlen(uf_heads[i]);
	for (k = 0; k < q->n_dims; k++)
		wd[k] = k == 0 ? 7 : (int)strlen(udim_names[q->dims[k]]);  /* "(total)" */
	usum_cells(&q->total, cells);
	for (i = 0; i < N_UF; i++)
		if ((int)strlen(cells[i]) > w[i])
			w[i] = (int)strlen(cells[i]);
	for (j = 0; j < q->n_rows; j++) {
		usum_cells(&q->rows[j].s, cells);
		for (i = 0; i < N_UF; i++)
			if ((int)strlen(cells[i]) > w[i])
				w[i] = (int)strlen(cells[i]);
		for (k = 0; k < q->n_dims; k++) {
			int l = (int)strlen(table_name(q->rows[j].part[k], nbuf, sizeof(nbuf)));

			if (l > wd[k])
				wd[k] = l;
		}
	}

	printf("usage from %s to %s (UTC days, inclusive); filters:",
	       iso_day(q->since, a), iso_day(q->until, b));
	for (k = 0; k < 3; k++) {
		if (q->f_name[k]) {
			printf(" %s=%s", udim_names[k], table_name(q->f_name[k], nbuf, sizeof(nbuf)));
			any = true;
		}
	}
	printf("%s; by:", any ? "" : " none");
	for (k = 0; k < q->n_dims; k++)
		printf("%s%s", k ? "," : " ", udim_names[q->dims[k]]);
	putchar('\n');
	for (k = 0; k < q->n_dims; k++) {
		for (i = 0; udim_names[q->dims[k]][i]; i++)
			head[i] = (char)(udim_names[q->dims[k]][i] - 'a' + 'A');
		head[i] = '\0';
		printf("%s%-*s", k ? "  " : "", wd[k], head);
	}
	for (i = 0; i < N_UF; i++)
		printf("  %*s", w[i], uf_heads[i]);
	putchar('\n');
	for (j = 0; j <= q->n_rows; j++) {
		const struct usum *s = j < q->n_rows ? &q->rows[j].s : &q->total;

		usum_cells(s, cells);
		for (k = 0; k < q->n_dims; k++)
			printf("%s%-*s", k ? "  " : "", wd[k], j == q->n_rows ? (k ? "" : "(total)") :
			       table_name(q->rows[j].part[k], nbuf, sizeof(nbuf)));
		for (i = 0; i < N_UF; i++)
			printf("  %*s", w[i], cells[i]);
		putchar('\n');
	}
}

/* Parses --by's list ("day,token") into q->dims. Returns 0, or -1 (an
 * unknown or repeated dimension, an empty list). */
static int parse_by(struct usage_q *q, const char *list)
{
	const char *p = list, *e;
	size_t len;
	int k, d;

	q->n_dims = 0;
	for (;;) {
		e = strchr(p, ',');
		len = e ? (size_t)(e - p) : strlen(p);
		for (d = 0; d < UDIM_N; d++)
			if (strlen(udim_names[d]) == len && !strncmp(p, udim_names[d], len))
				break;
		if (d == UDIM_N)
			return -1;
		for (k = 0; k < q->n_dims; k++)
			if (q->dims[k] == (enum udim)d)
				return -1;
		q->dims[q->n_dims++] = (enum udim)d;
		if (!e)
			return 0;
		p = e + 1;
	}
}

int cmd_usage(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "token", required_argument, NULL, 't' },
		{ "model", required_argument, NULL, 'm' },
		{ "channel", required_argument, NULL, 'C' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "csv", no_argument, NULL, 'v' },
		{ "by", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct usage_q q;
	const char *since = NULL, *until = NULL;
	int64_t now_ms = (int64_t)time(NULL) * 1000;
	bool json = false, csv = false;
	const char *by = NULL;
	int opt, k, rc;
	size_t i;

	memset(&q, 0, sizeof(q));
	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 't': q.f_name[0] = optarg; break;
		case 'm': q.f_name[1] = optarg; break;
		case 'C': q.f_name[2] = optarg; break;
		case 's': since = optarg; break;
		case 'u': until = optarg; break;
		case 'j': json = true; break;
		case 'v': csv = true; break;
		case 'b': by = optarg; break;
		case 'h': ctl_help(ctl_find_cmd("usage")); return CTL_OK;
		default: return ctl_bad_option("usage ", argc, argv, opt);
		}
	}
	if (optind < argc)
		return ctl_usage_err("usage ", "usage: unexpected argument '%s'", argv[optind]);
	if (json && csv)
		return ctl_usage_err("usage ", "usage: --json and --csv exclude each other");
	if (by && parse_by(&q, by) < 0)
		return ctl_usage_err("usage ", "usage: invalid --by '%s' (a comma-separated list "
		                     "of token, model, channel, day, each at most once)", by);
	for (k = 0; k < 3; k++) {
		if (q.f_name[k] && (strlen(q.f_name[k]) > 256 ||
		    record_seg_encode(q.f_name[k], q.f_seg[k], sizeof(q.f_seg[k])) < 0))
			return ctl_usage_err("usage ", "usage: --%s is too long", by_kind[k]);
	}
	if (until ? record_day_parse(until, q.until) < 0 : record_day(now_ms, q.until) < 0)
		return ctl_usage_err("usage ", "usage: invalid --until '%s' (YYYY-MM-DD)",
		                     until ? until : "today");
	if (since ? record_day_parse(since, q.since) < 0
	          : record_day(now_ms - (int64_t)CTL_USAGE_DAYS * 86400000, q.since) < 0)
		return ctl_usage_err("usage ", "usage: invalid --since '%s' (YYYY-MM-DD)",
		                     since ? since : "30 days ago");
	if (strcmp(q.since, q.until) > 0)
		return ctl_usage_err("usage ", "usage: --since is after --until");
	if (!ctl_redis(c))
		return CTL_ERR;

	rc = usage_collect(c, &q);
	if (rc == CTL_OK) {
		for (k = 0; k < 3; k++)
			if (q.by[k].n)      /* b is NULL when empty */
				qsort(q.by[k].b, q.by[k].n, sizeof(*q.by[k].b), bucket_cmp);
		rows_merge(&q);
		if (json)
			usage_print_json(&q);
		else if (csv)
			usage_print_csv(&q);
		else if (q.n_dims)
			usage_print_rows(&q);
		else
			usage_print_table(&q);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			ctl_errmsg("cannot write to stdout");
			rc = CTL_ERR;
		}
	}
	for (k = 0; k < 3; k++)
		ugroup_free(&q.by[k]);
	for (i = 0; i < q.n_rows; i++)
		urow_free(&q.rows[i]);
	free(q.rows);
	return rc;
}


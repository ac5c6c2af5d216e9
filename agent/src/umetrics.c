/*
 * Usage counters for Prometheus (umetrics.h): three small fixed tables of
 * labelled counters, filled from committed records, written out by the
 * admin listener's /metrics.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <realms/config-t.h>
#include <realms/config.h>
#include <realms/limits.h>
#include <realms/sbuf.h>
#include <realms/umetrics.h>

/* Label values of names the tables do not keep apart. */
#define UM_OTHER   "other"    /* outside the configuration, or past a cap */
#define UM_NONE    "(none)"   /* an empty name, as in Redis's key segments */

/* Status classes of realms_usage_requests_total. */
enum um_class { UM_2XX = 0, UM_4XX, UM_5XX, UM_CLASS_OTHER, UM_CLASSES };
static const char *const um_class_names[UM_CLASSES] = { "2xx", "4xx", "5xx", "other" };

/* Token kinds of the *_tokens_total series, in struct usage order. */
#define UM_KINDS 5
static const char *const um_kind_names[UM_KINDS] = {
	"input", "output", "cache_write_5m", "cache_write_1h", "cache_read",
};

/* One series set: its label values (k[1] is "" in one-label tables), then
 * its counters. Labels are written once, before the slot is published. */
struct um_slot {
	char k[2][INSPECT_MODEL_MAX + 1];
	_Atomic unsigned long long req[UM_CLASSES];
	_Atomic unsigned long long partial, estimated, web_search, cost;
	_Atomic unsigned long long tok[UM_KINDS];
};

/* max ordinary slots, and one more kept for the "other" series of a full
 * table, so that overflow never makes two series with the same labels. */
struct um_table {
	size_t max;
	bool two;                   /* two labels (model, channel) */
	pthread_mutex_t lock;       /* appends */
	_Atomic size_t n;           /* published slots */
	struct um_slot *s;
};

static struct um_slot pair_slots[UMETRICS_PAIRS_MAX + 1];
static struct um_slot group_slots[UMETRICS_GROUPS_MAX + 1];
static struct um_slot token_slots[UMETRICS_TOKENS_MAX + 1];

static struct um_table pairs = {
	UMETRICS_PAIRS_MAX, true, PTHREAD_MUTEX_INITIALIZER, 0, pair_slots
};
static struct um_table groups = {
	UMETRICS_GROUPS_MAX, false, PTHREAD_MUTEX_INITIALIZER, 0, group_slots
};
static struct um_table tokens = {
	UMETRICS_TOKENS_MAX, false, PTHREAD_MUTEX_INITIALIZER, 0, token_slots
};

/* Records counted under "other" because a table was full. */
static _Atomic unsigned long long overflow;

/* ---------------------------------------------------------------------- */
/* Counting                                                               */
/* ---------------------------------------------------------------------- */

static struct um_slot *um_find(struct um_table *t, const char *k0, const char *k1, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t->s[i].k[0], k0) && !strcmp(t->s[i].k[1], k1))
			return &t->s[i];
	return NULL;
}

/* The slot of (k0, k1), appended when new; past the cap, the "other" slot.
 * Lock-free when the slot exists (the common case: labels come from the
 * configuration). */
static struct um_slot *um_slot(struct um_table *t, const char *k0, const char *k1)
{
	size_t n = atomic_load_explicit(&t->n, memory_order_acquire);
	struct um_slot *s = um_find(t, k0, k1, n);
	const char *o1 = t->two ? UM_OTHER : "";

	if (s)
		return s;
	pthread_mutex_lock(&t->lock);
	n = atomic_load_explicit(&t->n, memory_order_relaxed);
	s = um_find(t, k0, k1, n);
	if (!s && n >= t->max && (strcmp(k0, UM_OTHER) || strcmp(k1, o1))) {
		atomic_fetch_add_explicit(&overflow, 1, memory_order_relaxed);
		k0 = UM_OTHER;
		k1 = o1;
		s = um_find(t, k0, k1, n);
	}
	if (!s && n <= t->max) {
		s = &t->s[n];
		snprintf(s->k[0], sizeof(s->k[0]), "%s", k0);
		snprintf(s->k[1], sizeof(s->k[1]), "%s", k1);
		atomic_store_explicit(&t->n, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&t->lock);
	return s;
}

static void um_add(_Atomic unsigned long long *c, unsigned long long v)
{
	if (v)
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* The counters every table keeps: requests by class, tokens, cost. */
static void um_add_common(struct um_slot *s, const struct usage_record *rec, enum um_class cl)
{
	const struct usage *u = &rec->u;

	um_add(&s->req[cl], 1);
	um_add(&s->tok[0], u->input);
	um_add(&s->tok[1], u->output);
	um_add(&s->tok[2], u->cache_write_5m);
	um_add(&s->tok[3], u->cache_write_1h);
	um_add(&s->tok[4], u->cache_read);
	um_add(&s->cost, rec->cost_nusd);
}

void umetrics_count(const struct realms_config *cfg, const struct usage_record *rec)
{
	const char *model, *channel, *group;
	enum um_class cl;
	struct um_slot *s;

	if (!rec->model[0])
		model = UM_NONE;
	else
		model = cfg && config_model(cfg, rec->model, strlen(rec->model)) ? rec->model : UM_OTHER;
	if (!rec->channel[0])
		channel = UM_NONE;
	else
		channel = cfg && config_channel(cfg, rec->channel, strlen(rec->channel)) ?
		          rec->channel : UM_OTHER;
	if (!rec->group[0])
		group = UM_NONE;
	else
		group = cfg && config_group_index(cfg, rec->group, strlen(rec->group)) >= 0 ?
		        rec->group : UM_OTHER;
	cl = rec->status >= 200 && rec->status < 300 ? UM_2XX :
	     rec->status >= 400 && rec->status < 500 ? UM_4XX :
	     rec->status >= 500 && rec->status < 600 ? UM_5XX : UM_CLASS_OTHER;

	if ((s = um_slot(&pairs, model, channel))) {
		um_add_common(s, rec, cl);
		um_add(&s->partial, rec->partial != USAGE_COMPLETE);
		um_add(&s->estimated, !!(rec->u.flags & USAGE_FL_ESTIMATED));
		um_add(&s->web_search, rec->u.web_search);
	}
	if ((s = um_slot(&groups, group, "")))
		um_add_common(s, rec, cl);
	if (cfg && cfg->agent.metrics_tokens &&
	    (s = um_slot(&tokens, rec->token[0] ? rec->token : UM_NONE, "")))
		um_add_common(s, rec, cl);
}

void umetrics_reset(void)
{
	struct um_table *t[] = { &pairs, &groups, &tokens };

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(t[i]->s, 0, (t[i]->max + 1) * sizeof(*t[i]->s));
		atomic_store(&t[i]->n, 0);
	}
	atomic_store(&overflow, 0);
}

/* ---------------------------------------------------------------------- */
/* Rendering                                                              */
/* ---------------------------------------------------------------------- */


/* v as a label value: \, " and LF escaped (the exposition format's three). */
static const char *um_esc(const char *v, char *buf, size_t size)
{
	size_t o = 0;

	for (; *v && o + 2 < size; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			buf[o++] = '\\';
			buf[o++] = *v == '\n' ? 'n' : *v;
		} else {
			buf[o++] = *v;
		}
	}
	buf[o] = '\0';
	return buf;
}

static void um_head(struct sbuf *o, const char *name, const char *help)
{
	sbuf_printf(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

/* Which counter of a slot a series shows. */
enum um_what { UW_REQ, UW_PARTIAL, UW_ESTIMATED, UW_TOKENS, UW_WEB_SEARCH, UW_COST };

/* One metric over a table: HELP, TYPE, then a line per slot (per class or
 * kind for the requests and tokens series). l0 and l1 name the labels (l1
 * NULL in one-label tables). */
static void um_metric(struct sbuf *o, struct um_table *t, const char *l0, const char *l1,
                      const char *name, const char *help, enum um_what what)
{
	size_t n = atomic_load_explicit(&t->n, memory_order_acquire);
	char e0[2 * INSPECT_MODEL_MAX + 1], e1[2 * INSPECT_MODEL_MAX + 1], lab[1200];

	um_head(o, name, help);
	for (size_t i = 0; i < n && !o->full; i++) {
		struct um_slot *s = &t->s[i];

		if (l1)
			snprintf(lab, sizeof(lab), "%s=\"%s\",%s=\"%s\"", l0,
			         um_esc(s->k[0], e0, sizeof(e0)), l1, um_esc(s->k[1], e1, sizeof(e1)));
		else
			snprintf(lab, sizeof(lab), "%s=\"%s\"", l0, um_esc(s->k[0], e0, sizeof(e0)));
		switch (what) {
		case UW_REQ:
			for (int c = 0; c < UM_CLASSES; c++)
				sbuf_printf(o, "%s{%s,class=\"%s\"} %llu\n", name, lab, um_class_names[c],
				          atomic_load_explicit(&s->req[c], memory_order_relaxed));
			break;
		case UW_TOKENS:
			for (int k = 0; k < UM_KINDS; k++)
				sbuf_printf(o, "%s{%s,kind=\"%s\"} %llu\n", name, lab, um_kind_names[k],
				          atomic_load_explicit(&s->tok[k], memory_order_relaxed));
			break;
		default:
			sbuf_printf(o, "%s{%s} %llu\n", name, lab, atomic_load_explicit(
			          what == UW_PARTIAL ? &s->partial : what == UW_ESTIMATED ?
			          &s->estimated : what == UW_WEB_SEARCH ? &s->web_search : &s->cost,
			          memory_order_relaxed));
			break;
		}
	}
}

int umetrics_render(char *out, size_t size, bool with_tokens)
{
	struct sbuf o = { out, size, 0, false };

	um_metric(&o, &pairs, "model", "channel", "realms_usage_requests_total",
	          "usage records committed (each request once), by the status class the "
	          "client got: 2xx, 4xx, 5xx, other", UW_REQ);
	um_metric(&o, &pairs, "model", "channel", "realms_usage_requests_partial_total",
	          "committed records of answers cut short (client gone, error event, "
	          "truncated, usage unreadable, tap overflow)", UW_PARTIAL);
	um_metric(&o, &pairs, "model", "channel", "realms_usage_requests_estimated_total",
	          "committed records whose counts are partly the gateway's estimate",
	          UW_ESTIMATED);
	um_metric(&o, &pairs, "model", "channel", "realms_usage_tokens_total",
	          "tokens of committed records, by kind: input (uncached), output, "
	          "cache_write_5m, cache_write_1h, cache_read", UW_TOKENS);
	um_metric(&o, &pairs, "model", "channel", "realms_usage_web_search_requests_total",
	          "server-side web searches of committed records", UW_WEB_SEARCH);
	um_metric(&o, &pairs, "model", "channel", "realms_usage_cost_nusd_total",
	          "cost of committed records in nano-USD (1e-9 USD)", UW_COST);
	um_metric(&o, &groups, "group", NULL, "realms_usage_group_requests_total",
	          "usage records committed, by the token's group and status class", UW_REQ);
	um_metric(&o, &groups, "group", NULL, "realms_usage_group_tokens_total",
	          "tokens of committed records, by the token's group and kind", UW_TOKENS);
	um_metric(&o, &groups, "group", NULL, "realms_usage_group_cost_nusd_total",
	          "cost of committed records in nano-USD, by the token's group", UW_COST);
	if (with_tokens) {
		um_metric(&o, &tokens, "token", NULL, "realms_usage_token_requests_total",
		          "usage records committed, by client token and status class "
		          "(agent.metrics_tokens)", UW_REQ);
		um_metric(&o, &tokens, "token", NULL, "realms_usage_token_tokens_total",
		          "tokens of committed records, by client token and kind", UW_TOKENS);
		um_metric(&o, &tokens, "token", NULL, "realms_usage_token_cost_nusd_total",
		          "cost of committed records in nano-USD, by client token", UW_COST);
	}
	um_head(&o, "realms_usage_series_overflow_total", "records counted under the "
	        "label value other because a table of series was full");
	sbuf_printf(&o, "realms_usage_series_overflow_total %llu\n",
	          atomic_load_explicit(&overflow, memory_order_relaxed));
	return o.full ? -1 : (int)o.off;
}

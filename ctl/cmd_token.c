/*
 * realmsctl token: add, set, rotate, show, list and revoke client tokens
 * (Redis keeps only their SHA-256). Subcommands are rows of token_subcmds
 * (ctl.h). Limits and model lists are stored in the token's record in the
 * forms the agent reads (budget_limits_encode, a comma list); spend comes
 * from the counters the agents' record script keeps (docs/budgets.md).
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
#include <openssl/crypto.h>

#include <realms/budget.h>
#include <realms/config.h>
#include <realms/limits.h>
#include <realms/record.h>
#include <realms/rkeys.h>
#include <realms/selfusage.h>
#include <realms/tokcache-t.h>
#include <realms/token.h>

#include "ctl.h"

static void token_key(char key[RKEY_TOKEN_KEY_MAX], const char *hash)
{
	snprintf(key, RKEY_TOKEN_KEY_MAX, "%s%s", RKEY_TOKEN_PREFIX, hash);
}

/* Unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (21 bytes or more). */
static const char *fmt_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "%" PRId64, t);
	return buf;
}

/* A Redis integer field; absent or malformed reads as 0. */
static int64_t to_i64(const char *s)
{
	char *end;
	long long v;

	if (!s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return 0;
	return v;
}

/* ---------------------------------------------------------------------- */
/* Limits and models (token add, set)                                     */
/* ---------------------------------------------------------------------- */

/* What --limit, --clear-limit, --models and --all-models asked for. */
struct tok_edit {
	struct budget_limits set;     /* --limit: kinds to set */
	unsigned int clear;           /* --clear-limit: kinds to remove */
	const char *models;           /* --models, or NULL */
	bool all_models;              /* --all-models */
};

/* --limit SPEC into e. Returns CTL_OK or a usage error. */
static int edit_limit(struct tok_edit *e, const char *sub, const char *spec)
{
	enum budget_kind k;
	uint64_t v;
	const char *why;

	if (budget_spec_parse(spec, strlen(spec), &k, &v, &why) < 0)
		return ctl_usage_err("token ", "token %s: invalid --limit '%s': %s", sub, spec, why);
	e->set.v[k] = v;
	e->set.set |= 1u << k;
	return CTL_OK;
}

static int edit_clear(struct tok_edit *e, const char *sub, const char *name)
{
	enum budget_kind k;

	if (budget_kind_parse(name, strlen(name), &k) < 0)
		return ctl_usage_err("token ", "token %s: invalid --clear-limit '%s' (usd/5h, "
		                     "usd/day, usd/week, usd/month, rpm or concurrency)", sub, name);
	e->clear |= 1u << k;
	return CTL_OK;
}

/* A --models list: public model names, comma-separated, no empty or
 * repeated entry, within what the agent keeps; with -c each must be a
 * model of the configuration. Returns CTL_OK, a usage error, or CTL_ERR. */
static int check_models(struct ctl *c, const char *sub, const char *list)
{
	const char *p = list;

	if (strlen(list) > TOKEN_MODELS_MAX)
		return ctl_usage_err("token ", "token %s: --models is longer than %d bytes", sub,
		                     TOKEN_MODELS_MAX);
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (!n || !cfg_model_name_ok(p, n))
			return ctl_usage_err("token ", "token %s: invalid --models '%s' (public "
			                     "model names separated by commas)", sub, list);
		for (const char *q = list; q < p;) {
			const char *qc = strchr(q, ',');

			if ((size_t)(qc - q) == n && !memcmp(q, p, n))
				return ctl_usage_err("token ", "token %s: --models names '%.*s' twice",
				                     sub, (int)n, p);
			q = qc + 1;
		}
		if (c->cfg && !config_model(c->cfg, p, n)) {
			ctl_errmsg("model '%.*s' is not in %s", (int)n, p, c->config_path);
			return CTL_ERR;
		}
		if (!comma)
			return CTL_OK;
		p = comma + 1;
	}
}

/* The record's limits with e applied, encoded into out. Returns 0, or -1
 * when the stored ones cannot be read (never silently dropped). */
static int edit_apply(const struct tok_edit *e, const char *stored, char *out, size_t size)
{
	struct budget_limits l = { 0 };

	if (stored && *stored && budget_limits_decode(stored, strlen(stored), &l) < 0)
		return -1;
	for (int k = 0; k < BUDGET_KINDS; k++) {
		if (e->clear & (1u << k))
			l.set &= ~(1u << k);
		if (e->set.set & (1u << k)) {
			l.v[k] = e->set.v[k];
			l.set |= 1u << k;
		}
	}
	if (!l.set) {
		out[0] = '\0';     /* none: "" (encode's 0 would mean no room) */
		return 0;
	}
	return budget_limits_encode(&l, out, size) ? 0 : -1;
}


/* ---------------------------------------------------------------------- */
/* token add                                                              */
/* ---------------------------------------------------------------------- */

/* Writes the index entry and the record in one transaction, refusing a
 * taken name. WATCH on the index makes EXEC fail if anyone changed it
 * since the HEXISTS; then we look again. Returns CTL_OK, or CTL_ERR after
 * printing why. */
static int token_store(struct ctl *c, const char *name, const char *group,
                       const char *hash, int64_t now, int64_t expires,
                       const char *limits, const char *models)
{
	char key[RKEY_TOKEN_KEY_MAX], created[24], exp[24];
	redisReply *r;
	int attempt;
	size_t i;

	token_key(key, hash);
	snprintf(created, sizeof(created), "%" PRId64, now);
	snprintf(exp, sizeof(exp), "%" PRId64, expires);

	for (attempt = 0; attempt < CTL_ADD_ATTEMPTS; attempt++) {
		if (RCMD_OK(c, "WATCH", "WATCH", RKEY_TOKENS) < 0)
			return CTL_ERR;
		r = RCMD(c, "HEXISTS", "HEXISTS", RKEY_TOKENS, name);
		if (!r)
			return CTL_ERR;
		if (r->type != REDIS_REPLY_INTEGER || r->integer != 0) {
			freeReplyObject(r);
			RCMD_OK(c, "UNWATCH", "UNWATCH");
			ctl_errmsg("a token named '%s' already exists (revoked tokens keep "
			           "their names)", name);
			return CTL_ERR;
		}
		freeReplyObject(r);

		if (RCMD_OK(c, "MULTI", "MULTI") < 0)
			return CTL_ERR;
		if (RCMD_OK(c, "HSET", "HSET", RKEY_TOKENS, name, hash) < 0 ||
		    RCMD_OK(c, "HSET", "HSET", key,
		            RKEY_TF_NAME, name,
		            RKEY_TF_GROUP, group,
		            RKEY_TF_STATUS, RKEY_TS_ACTIVE,
		            RKEY_TF_CREATED, created,
		            RKEY_TF_EXPIRES, exp,
		            RKEY_TF_REVOKED_AT, "0",
		            RKEY_TF_LIMITS, limits,
		            RKEY_TF_MODELS, models) < 0) {
			RCMD_OK(c, "DISCARD", "DISCARD");
			return CTL_ERR;
		}
		r = RCMD(c, "EXEC", "EXEC");
		if (!r)
			return CTL_ERR;
		if (r->type == REDIS_REPLY_NIL) {
			/* the index changed under us: look again */
			freeReplyObject(r);
			continue;
		}
		if (r->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			ctl_errmsg("Redis (EXEC): unexpected reply");
			return CTL_ERR;
		}
		for (i = 0; i < r->elements; i++) {
			if (r->element[i]->type == REDIS_REPLY_ERROR) {
				ctl_errmsg("Redis (EXEC): %s", r->element[i]->str);
				freeReplyObject(r);
				return CTL_ERR;
			}
		}
		freeReplyObject(r);
		return CTL_OK;
	}
	ctl_errmsg("the token index kept changing; nothing was created, try again");
	return CTL_ERR;
}

/* Undoes token_store() when the token could not be shown: a token nobody
 * has is useless, and a name taken by it would need a revoke. */
static void token_unstore(struct ctl *c, const char *name, const char *hash)
{
	char key[RKEY_TOKEN_KEY_MAX];

	token_key(key, hash);
	RCMD_OK(c, "HDEL", "HDEL", RKEY_TOKENS, name);
	RCMD_OK(c, "DEL", "DEL", key);
}

static int cmd_token_add(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "group", required_argument, NULL, 'g' },
		{ "expires", required_argument, NULL, 'e' },
		{ "limit", required_argument, NULL, 'l' },
		{ "models", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *group = CFG_GROUP_DEFAULT, *when = NULL;
	char tok[TOKEN_MAX], hash[TOKEN_HEX_LEN + 1], tbuf[32], limits[256];
	int64_t now = (int64_t)time(NULL), expires = 0;
	struct tok_edit e = { 0 };
	int opt, rc;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': name = optarg; break;
		case 'g': group = optarg; break;
		case 'e': when = optarg; break;
		case 'l':
			if ((rc = edit_limit(&e, "add", optarg)) != CTL_OK)
				return rc;
			break;
		case 'm': e.models = optarg; break;
		case 'h': ctl_help(ctl_find_cmd("token")); return CTL_OK;
		default: return ctl_bad_option("token ", argc, argv, opt);
		}
	}
	if (optind < argc)
		return ctl_usage_err("token ", "token add: unexpected argument '%s'", argv[optind]);
	if (!name)
		return ctl_usage_err("token ", "token add: --name is required");
	if (!token_name_valid(name, strlen(name)))
		return ctl_usage_err("token ", "token add: invalid name '%s' (1 to %d of "
		                     "A-Z a-z 0-9 . _ @ -)", name, TOKEN_NAME_MAX);
	if (!token_name_valid(group, strlen(group)))
		return ctl_usage_err("token ", "token add: invalid group '%s' (1 to %d of "
		                     "A-Z a-z 0-9 . _ @ -)", group, TOKEN_NAME_MAX);
	if (when) {
		if (token_parse_expiry(when, now, &expires) < 0)
			return ctl_usage_err("token ", "token add: invalid --expires '%s' (YYYY-MM-DD, "
			                     "YYYY-MM-DDTHH:MM:SSZ, <N>d, <N>h, <N>m or never)", when);
		if (expires != 0 && expires <= now)
			return ctl_usage_err("token ", "token add: --expires '%s' is in the past", when);
	}
	if (ctl_config(c) < 0)
		return CTL_ERR;
	if (c->cfg && config_group_index(c->cfg, group, strlen(group)) < 0) {
		ctl_errmsg("group '%s' is not defined in %s", group, c->config_path);
		return CTL_ERR;
	}
	if (e.models && (rc = check_models(c, "add", e.models)) != CTL_OK)
		return rc;
	if (edit_apply(&e, NULL, limits, sizeof(limits)) < 0) {
		ctl_errmsg("cannot encode the limits");
		return CTL_ERR;
	}
	if (!ctl_redis(c))
		return CTL_ERR;

	if (token_generate(tok) < 0) {
		ctl_errmsg("cannot get random bytes: %s", strerror(errno));
		return CTL_ERR;
	}
	if (token_hash_hex(tok, strlen(tok), hash) < 0) {
		OPENSSL_cleanse(tok, sizeof(tok));
		ctl_errmsg("SHA-256 failed");
		return CTL_ERR;
	}
	rc = token_store(c, name, group, hash, now, expires, limits, e.models ? e.models : "");
	if (rc != CTL_OK) {
		OPENSSL_cleanse(tok, sizeof(tok));
		return rc;
	}

	/* The one and only time the token is written anywhere. */
	printf("%s\n", tok);
	OPENSSL_cleanse(tok, sizeof(tok));
	if (fflush(stdout) != 0 || ferror(stdout)) {
		token_unstore(c, name, hash);
		ctl_errmsg("cannot write the token to stdout: nothing was created");
		return CTL_ERR;
	}
	fprintf(stderr, "realmsctl: token '%s' created (group %s, id %.*s, expires %s).\n"
	        "realmsctl: it is shown only this once and cannot be recovered: "
	        "store it now.\n", name, group, TOKEN_ID_LEN, hash,
	        expires ? fmt_time(expires, tbuf, sizeof(tbuf)) : "never");
	return CTL_OK;
}

/* ---------------------------------------------------------------------- */
/* token list                                                             */
/* ---------------------------------------------------------------------- */

struct tok_row {
	const char *name;           /* these point into the replies */
	const char *hash;
	const char *group;
	const char *status;         /* as shown: "expired" and "missing" too */
	int64_t created, expires, revoked_at;
};

static int row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tok_row *)a)->name, ((const struct tok_row *)b)->name);
}

static void print_json(const struct tok_row *rows, size_t n)
{
	size_t i;

	if (n == 0) {
		puts("[]");
		return;
	}
	puts("[");
	for (i = 0; i < n; i++) {
		fputs("  {\"name\": ", stdout);
		ctl_json_str(rows[i].name);
		fputs(", \"group\": ", stdout);
		ctl_json_str(rows[i].group);
		fputs(", \"status\": ", stdout);
		ctl_json_str(rows[i].status);
		printf(", \"created\": %" PRId64 ", \"expires\": %" PRId64
		       ", \"revoked_at\": %" PRId64 ", \"id\": ",
		       rows[i].created, rows[i].expires, rows[i].revoked_at);
		printf("\"%.*s\"}%s\n", TOKEN_ID_LEN, rows[i].hash, i + 1 < n ? "," : "");
	}
	puts("]");
}

static void print_table(const struct tok_row *rows, size_t n)
{
	int wn = 4, wg = 5, ws = 6, wt = 20;
	char cbuf[32], ebuf[32];
	size_t i;

	for (i = 0; i < n; i++) {
		if ((int)strlen(rows[i].name) > wn)
			wn = (int)strlen(rows[i].name);
		if ((int)strlen(rows[i].group) > wg)
			wg = (int)strlen(rows[i].group);
		if ((int)strlen(rows[i].status) > ws)
			ws = (int)strlen(rows[i].status);
	}
	printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wn, "NAME", wg, "GROUP",
	       ws, "STATUS", wt, "CREATED", wt, "EXPIRES", "ID");
	for (i = 0; i < n; i++) {
		printf("%-*s  %-*s  %-*s  %-*s  %-*s  %.*s\n",
		       wn, rows[i].name, wg, rows[i].group, ws, rows[i].status,
		       wt, rows[i].created ? fmt_time(rows[i].created, cbuf, sizeof(cbuf)) : "-",
		       wt, rows[i].expires ? fmt_time(rows[i].expires, ebuf, sizeof(ebuf)) : "never",
		       TOKEN_ID_LEN, rows[i].hash);
	}
}

static int cmd_token_list(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	redisReply *idx = NULL, **recs = NULL;
	struct tok_row *rows = NULL;
	int64_t now = (int64_t)time(NULL);
	size_t n = 0, i;
	bool json = false;
	int opt, rc = CTL_ERR;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'h': ctl_help(ctl_find_cmd("token")); return CTL_OK;
		default: return ctl_bad_option("token ", argc, argv, opt);
		}
	}
	if (optind < argc)
		return ctl_usage_err("token ", "token list: unexpected argument '%s'", argv[optind]);
	if (!ctl_redis(c))
		return CTL_ERR;

	idx = RCMD(c, "HGETALL", "HGETALL", RKEY_TOKENS);
	if (!idx)
		goto out;
	if (idx->type != REDIS_REPLY_ARRAY || idx->elements % 2) {
		ctl_errmsg("Redis (HGETALL %s): unexpected reply", RKEY_TOKENS);
		goto out;
	}
	n = idx->elements / 2;
	rows = calloc(n ? n : 1, sizeof(*rows));
	recs = calloc(n ? n : 1, sizeof(*recs));
	if (!rows || !recs) {
		ctl_errmsg("out of memory");
		goto out;
	}
	/* Pipelined: one round trip's worth of latency for the whole list. */
	for (i = 0; i < n; i++) {
		rows[i].name = idx->element[2 * i]->str;
		rows[i].hash = idx->element[2 * i + 1]->str;
		if (!rows[i].name || !rows[i].hash) {
			ctl_errmsg("Redis (HGETALL %s): unexpected reply", RKEY_TOKENS);
			goto out;
		}
		if (redisAppendCommand(c->rc, "HGETALL %s%s", RKEY_TOKEN_PREFIX,
		                       rows[i].hash) != REDIS_OK) {
			ctl_errmsg("out of memory");
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		void *rep = NULL;

		if (redisGetReply(c->rc, &rep) != REDIS_OK || !rep) {
			ctl_errmsg("Redis (HGETALL): %s", c->rc->errstr);
			goto out;
		}
		recs[i] = rep;
		if (recs[i]->type == REDIS_REPLY_ERROR) {
			ctl_errmsg("Redis (HGETALL): %s", recs[i]->str);
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		const char *st = ctl_hfield(recs[i], RKEY_TF_STATUS);
		const char *g = ctl_hfield(recs[i], RKEY_TF_GROUP);

		rows[i].group = g ? g : "";
		rows[i].created = to_i64(ctl_hfield(recs[i], RKEY_TF_CREATED));
		rows[i].expires = to_i64(ctl_hfield(recs[i], RKEY_TF_EXPIRES));
		rows[i].revoked_at = to_i64(ctl_hfield(recs[i], RKEY_TF_REVOKED_AT));
		if (!st)
			st = "missing";     /* index entry without a record */
		else if (strcmp(st, RKEY_TS_ACTIVE) == 0 && rows[i].expires &&
		         rows[i].expires <= now)
			st = "expired";
		rows[i].status = st;
	}
	qsort(rows, n, sizeof(*rows), row_cmp);
	if (json)
		print_json(rows, n);
	else
		print_table(rows, n);
	rc = CTL_OK;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_errmsg("cannot write to stdout");
		rc = CTL_ERR;
	}
out:
	if (recs)
		for (i = 0; i < n; i++)
			if (recs[i])
				freeReplyObject(recs[i]);
	free(recs);
	free(rows);
	if (idx)
		freeReplyObject(idx);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Looking a token up by name                                             */
/* ---------------------------------------------------------------------- */

/* The hash the index holds for name, into hash; and its record (an
 * HGETALL reply the caller frees) into *rec when rec is not NULL.
 * Returns CTL_OK, or CTL_ERR after printing why. */
static int token_lookup(struct ctl *c, const char *name, char hash[TOKEN_HEX_LEN + 1],
                        redisReply **rec)
{
	char key[RKEY_TOKEN_KEY_MAX];
	uint8_t raw[TOKEN_HASH_LEN];
	redisReply *r = RCMD(c, "HGET", "HGET", RKEY_TOKENS, name);

	if (!r)
		return CTL_ERR;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		ctl_errmsg("no token named '%s'", name);
		return CTL_ERR;
	}
	if (token_hex_decode(r->str, r->len, raw) < 0) {
		freeReplyObject(r);
		ctl_errmsg("the index entry of '%s' is not a token hash", name);
		return CTL_ERR;
	}
	memcpy(hash, r->str, TOKEN_HEX_LEN);
	hash[TOKEN_HEX_LEN] = '\0';
	freeReplyObject(r);
	if (!rec)
		return CTL_OK;
	token_key(key, hash);
	r = RCMD(c, "HGETALL", "HGETALL", key);
	if (!r)
		return CTL_ERR;
	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 || r->elements % 2 ||
	    !ctl_hfield(r, RKEY_TF_STATUS)) {
		freeReplyObject(r);
		ctl_errmsg("the record of token '%s' is missing", name);
		return CTL_ERR;
	}
	*rec = r;
	return CTL_OK;
}

/* The predecessor of a record still in its grace (rotated with --grace):
 * its hash into prev, or "" when there is none or it no longer works. */
static void token_predecessor(struct ctl *c, const redisReply *rec,
                              char prev[TOKEN_HEX_LEN + 1])
{
	const char *p = ctl_hfield(rec, RKEY_TF_PREDECESSOR);
	uint8_t raw[TOKEN_HASH_LEN];
	char key[RKEY_TOKEN_KEY_MAX];
	redisReply *r;

	prev[0] = '\0';
	if (!p || token_hex_decode(p, strlen(p), raw) < 0)
		return;
	token_key(key, p);
	r = RCMD(c, "HGET", "HGET", key, RKEY_TF_STATUS);
	if (r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, RKEY_TS_ACTIVE)) {
		memcpy(prev, p, TOKEN_HEX_LEN);
		prev[TOKEN_HEX_LEN] = '\0';
	}
	if (r)
		freeReplyObject(r);
}

/* Tells every agent to read the record of hash again. Returns how many
 * listened, or -1. */
static long long token_publish(struct ctl *c, const char *hash)
{
	redisReply *r = RCMD(c, "PUBLISH", "PUBLISH", RKEY_TOKEN_EVENTS, hash);
	long long n;

	if (!r)
		return -1;
	n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
	return n;
}

/* ---------------------------------------------------------------------- */
/* token set                                                              */
/* ---------------------------------------------------------------------- */

/* Writes the fields (NULL-terminated pairs) to the record of hash and,
 * when the name was rotated with a grace, to its predecessor's, then
 * tells the agents. Returns CTL_OK or CTL_ERR. */
static int token_update(struct ctl *c, const char *hash, const char *prev, const char **kv)
{
	const char *argv[CTL_MAX_ARGS];
	char key[RKEY_TOKEN_KEY_MAX];
	int n = 0;

	argv[n++] = "HSET";
	argv[n++] = key;
	for (int i = 0; kv[i] && n + 2 < CTL_MAX_ARGS; i += 2) {
		argv[n++] = kv[i];
		argv[n++] = kv[i + 1];
	}
	argv[n] = NULL;
	for (int round = 0; round < 2; round++) {
		const char *h = round ? prev : hash;

		if (!h || !*h)
			continue;
		token_key(key, h);
		if (ctl_rcmd_ok(c, "HSET", argv) < 0)
			return CTL_ERR;
		token_publish(c, h);
	}
	return CTL_OK;
}

static int cmd_token_set(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "group", required_argument, NULL, 'g' },
		{ "expires", required_argument, NULL, 'e' },
		{ "limit", required_argument, NULL, 'l' },
		{ "clear-limit", required_argument, NULL, 'C' },
		{ "models", required_argument, NULL, 'm' },
		{ "all-models", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *group = NULL, *when = NULL, *name, *kv[16];
	char hash[TOKEN_HEX_LEN + 1], prev[TOKEN_HEX_LEN + 1], limits[256], exp[24];
	int64_t now = (int64_t)time(NULL), expires = 0;
	struct tok_edit e = { 0 };
	redisReply *rec = NULL;
	int opt, rc, n = 0;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'g': group = optarg; break;
		case 'e': when = optarg; break;
		case 'l':
			if ((rc = edit_limit(&e, "set", optarg)) != CTL_OK)
				return rc;
			break;
		case 'C':
			if ((rc = edit_clear(&e, "set", optarg)) != CTL_OK)
				return rc;
			break;
		case 'm': e.models = optarg; break;
		case 'A': e.all_models = true; break;
		case 'h': ctl_help(ctl_find_cmd("token")); return CTL_OK;
		default: return ctl_bad_option("token ", argc, argv, opt);
		}
	}
	if (argc - optind != 1)
		return ctl_usage_err("token ", "token set: expects one NAME");
	name = argv[optind];
	if (!token_name_valid(name, strlen(name)))
		return ctl_usage_err("token ", "token set: invalid name '%s'", name);
	if (e.models && e.all_models)
		return ctl_usage_err("token ", "token set: --models and --all-models exclude "
		                     "each other");
	if (e.set.set & e.clear)
		return ctl_usage_err("token ", "token set: a limit is both set and cleared");
	if (!group && !when && !e.set.set && !e.clear && !e.models && !e.all_models)
		return ctl_usage_err("token ", "token set: nothing to change");
	if (group && !token_name_valid(group, strlen(group)))
		return ctl_usage_err("token ", "token set: invalid group '%s' (1 to %d of "
		                     "A-Z a-z 0-9 . _ @ -)", group, TOKEN_NAME_MAX);
	if (when && (token_parse_expiry(when, now, &expires) < 0 ||
	             (expires != 0 && expires <= now)))
		return ctl_usage_err("token ", "token set: invalid --expires '%s' (YYYY-MM-DD, "
		                     "YYYY-MM-DDTHH:MM:SSZ, <N>d, <N>h, <N>m or never; not "
		                     "in the past)", when);
	if (ctl_config(c) < 0)
		return CTL_ERR;
	if (group && c->cfg && config_group_index(c->cfg, group, strlen(group)) < 0) {
		ctl_errmsg("group '%s' is not defined in %s", group, c->config_path);
		return CTL_ERR;
	}
	if (e.models && (rc = check_models(c, "set", e.models)) != CTL_OK)
		return rc;
	if (!ctl_redis(c) || token_lookup(c, name, hash, &rec) != CTL_OK)
		return CTL_ERR;
	if (!strcmp(ctl_hfield(rec, RKEY_TF_STATUS), RKEY_TS_REVOKED)) {
		freeReplyObject(rec);
		ctl_errmsg("token '%s' is revoked", name);
		return CTL_ERR;
	}
	if (edit_apply(&e, ctl_hfield(rec, RKEY_TF_LIMITS), limits, sizeof(limits)) < 0) {
		freeReplyObject(rec);
		ctl_errmsg("the stored limits of '%s' cannot be read; clear them with redis-cli "
		           "HDEL and set them again", name);
		return CTL_ERR;
	}
	token_predecessor(c, rec, prev);
	freeReplyObject(rec);
	if (group) {
		kv[n++] = RKEY_TF_GROUP;
		kv[n++] = group;
	}
	if (when) {
		snprintf(exp, sizeof(exp), "%" PRId64, expires);
		kv[n++] = RKEY_TF_EXPIRES;
		kv[n++] = exp;
	}
	if (e.set.set || e.clear) {
		kv[n++] = RKEY_TF_LIMITS;
		kv[n++] = limits;
	}
	if (e.models || e.all_models) {
		kv[n++] = RKEY_TF_MODELS;
		kv[n++] = e.models ? e.models : "";
	}
	kv[n] = NULL;
	if (token_update(c, hash, prev, kv) != CTL_OK)
		return CTL_ERR;
	printf("token '%s' updated (id %.*s)\n", name, TOKEN_ID_LEN, hash);
	return CTL_OK;
}

/* ---------------------------------------------------------------------- */
/* token rotate                                                           */
/* ---------------------------------------------------------------------- */

/* A grace: 0, or <N>s, <N>m, <N>h, <N>d (at most a year). Returns 0 and
 * the seconds, or -1. */
static int parse_grace(const char *s, int64_t *secs)
{
	char *end;
	unsigned long long n;
	int64_t unit;

	if (!strcmp(s, "0")) {
		*secs = 0;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -1;
	}
	if (n == 0 || n > (unsigned long long)(366 * 86400 / unit))
		return -1;
	*secs = (int64_t)n * unit;
	return 0;
}

static const char *field_or(const redisReply *rec, const char *f, const char *dflt)
{
	const char *v = ctl_hfield(rec, f);

	return v ? v : dflt;
}

static int cmd_token_rotate(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "grace", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char old[TOKEN_HEX_LEN + 1], hash[TOKEN_HEX_LEN + 1], prev[TOKEN_HEX_LEN + 1];
	char okey[RKEY_TOKEN_KEY_MAX], nkey[RKEY_TOKEN_KEY_MAX], tok[TOKEN_MAX];
	char created[24], until[24], tbuf[32];
	const char *name;
	int64_t now = (int64_t)time(NULL), grace = 0, end, oexp;
	redisReply *rec = NULL, *r;
	int opt;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'G':
			if (parse_grace(optarg, &grace) < 0)
				return ctl_usage_err("token ", "token rotate: invalid --grace '%s' (0, "
				                     "<N>s, <N>m, <N>h or <N>d, a year at most)", optarg);
			break;
		case 'h': ctl_help(ctl_find_cmd("token")); return CTL_OK;
		default: return ctl_bad_option("token ", argc, argv, opt);
		}
	}
	if (argc - optind != 1)
		return ctl_usage_err("token ", "token rotate: expects one NAME");
	name = argv[optind];
	if (!token_name_valid(name, strlen(name)))
		return ctl_usage_err("token ", "token rotate: invalid name '%s'", name);
	if (!ctl_redis(c))
		return CTL_ERR;
	if (RCMD_OK(c, "WATCH", "WATCH", RKEY_TOKENS) < 0)
		return CTL_ERR;
	if (token_lookup(c, name, old, &rec) != CTL_OK) {
		RCMD_OK(c, "UNWATCH", "UNWATCH");
		return CTL_ERR;
	}
	if (strcmp(ctl_hfield(rec, RKEY_TF_STATUS), RKEY_TS_ACTIVE)) {
		freeReplyObject(rec);
		RCMD_OK(c, "UNWATCH", "UNWATCH");
		ctl_errmsg("token '%s' is revoked: create a new one with token add", name);
		return CTL_ERR;
	}
	/* A predecessor still in its grace ends now: one old secret at most. */
	token_predecessor(c, rec, prev);
	if (token_generate(tok) < 0 || token_hash_hex(tok, strlen(tok), hash) < 0) {
		OPENSSL_cleanse(tok, sizeof(tok));
		freeReplyObject(rec);
		RCMD_OK(c, "UNWATCH", "UNWATCH");
		ctl_errmsg("cannot make a new secret");
		return CTL_ERR;
	}
	token_key(okey, old);
	token_key(nkey, hash);
	oexp = to_i64(ctl_hfield(rec, RKEY_TF_EXPIRES));
	end = now + grace;
	if (oexp && oexp < end)
		end = oexp;
	snprintf(created, sizeof(created), "%" PRId64, now);
	snprintf(until, sizeof(until), "%" PRId64, end);

	if (RCMD_OK(c, "MULTI", "MULTI") < 0)
		goto fail;
	/* The new record: the old one's fields, a new secret. */
	if (RCMD_OK(c, "HSET", "HSET", nkey,
	            RKEY_TF_NAME, name,
	            RKEY_TF_GROUP, field_or(rec, RKEY_TF_GROUP, CFG_GROUP_DEFAULT),
	            RKEY_TF_STATUS, RKEY_TS_ACTIVE,
	            RKEY_TF_CREATED, created,
	            RKEY_TF_EXPIRES, field_or(rec, RKEY_TF_EXPIRES, "0"),
	            RKEY_TF_REVOKED_AT, "0",
	            RKEY_TF_LIMITS, field_or(rec, RKEY_TF_LIMITS, ""),
	            RKEY_TF_MODELS, field_or(rec, RKEY_TF_MODELS, ""),
	            RKEY_TF_PREDECESSOR, grace ? old : "") < 0 ||
	    RCMD_OK(c, "HSET", "HSET", RKEY_TOKENS, name, hash) < 0)
		goto discard;
	if (grace) {
		if (RCMD_OK(c, "HSET", "HSET", okey, RKEY_TF_EXPIRES, until,
		            RKEY_TF_SUCCESSOR, hash) < 0)
			goto discard;
	} else if (RCMD_OK(c, "HSET", "HSET", okey, RKEY_TF_STATUS, RKEY_TS_REVOKED,
	                   RKEY_TF_REVOKED_AT, created, RKEY_TF_SUCCESSOR, hash) < 0) {
		goto discard;
	}
	if (prev[0]) {
		char pkey[RKEY_TOKEN_KEY_MAX];

		token_key(pkey, prev);
		if (RCMD_OK(c, "HSET", "HSET", pkey, RKEY_TF_STATUS, RKEY_TS_REVOKED,
		            RKEY_TF_REVOKED_AT, created) < 0)
			goto discard;
	}
	r = RCMD(c, "EXEC", "EXEC");
	if (!r)
		goto fail;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		ctl_errmsg("token '%s' changed while it was rotated; nothing was changed, try again",
		           name);
		goto fail;
	}
	freeReplyObject(r);
	freeReplyObject(rec);
	rec = NULL;
	token_publish(c, old);
	if (prev[0])
		token_publish(c, prev);

	printf("%s\n", tok);
	OPENSSL_cleanse(tok, sizeof(tok));
	if (fflush(stdout) != 0 || ferror(stdout)) {
		/* Nobody has the new secret: put the old one back. */
		RCMD_OK(c, "HSET", "HSET", RKEY_TOKENS, name, old);
		RCMD_OK(c, "HSET", "HSET", okey, RKEY_TF_STATUS, RKEY_TS_ACTIVE,
		        RKEY_TF_REVOKED_AT, "0", RKEY_TF_EXPIRES, oexp ? until : "0");
		RCMD_OK(c, "HDEL", "HDEL", okey, RKEY_TF_SUCCESSOR);
		RCMD_OK(c, "DEL", "DEL", nkey);
		token_publish(c, old);
		ctl_errmsg("cannot write the new token to stdout: the old one stays in use");
		return CTL_ERR;
	}
	fprintf(stderr, "realmsctl: token '%s' rotated (new id %.*s); the old secret %s%s.\n"
	        "realmsctl: the new one is shown only this once and cannot be recovered: "
	        "store it now.\n", name, TOKEN_ID_LEN, hash,
	        grace ? "works until " : "no longer works",
	        grace ? fmt_time(end, tbuf, sizeof(tbuf)) : "");
	return CTL_OK;
discard:
	RCMD_OK(c, "DISCARD", "DISCARD");
fail:
	OPENSSL_cleanse(tok, sizeof(tok));
	if (rec)
		freeReplyObject(rec);
	return CTL_ERR;
}

/* ---------------------------------------------------------------------- */
/* token show                                                             */
/* ---------------------------------------------------------------------- */

/* Spend, reservations and requests in flight of one scope (a token, or a
 * group's shared totals), read from the agents' counters. */
struct scope_use {
	uint64_t spent[BUDGET_USD_KINDS];
	int64_t reset_ms[BUDGET_USD_KINDS];    /* when each window turns */
	uint64_t reserved;
	long long in_flight;
};

static uint64_t to_u64(const char *s)
{
	return s && *s >= '0' && *s <= '9' ? strtoull(s, NULL, 10) : 0;
}

/* Whether a hold "…<gw> <expiry ms>" (amounts first when with_amount) is
 * alive: its lease has not ended and its gateway's heartbeat exists. */
static bool hold_alive(struct ctl *c, const char *v, bool with_amount, int64_t now_ms,
                       uint64_t *amount)
{
	char gw[64], key[96];
	unsigned long long a = 0;
	long long exp = 0;
	redisReply *r;
	bool alive;

	if (with_amount ? sscanf(v, "%llu %63s %lld", &a, gw, &exp) != 3 :
	                  sscanf(v, "%63s %lld", gw, &exp) != 2)
		return false;
	if (exp <= now_ms)
		return false;
	snprintf(key, sizeof(key), "%s%s", RKEY_GW_PREFIX, gw);
	r = RCMD(c, "EXISTS", "EXISTS", key);
	alive = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	if (r)
		freeReplyObject(r);
	if (alive && amount)
		*amount += a;
	return alive;
}

/* Reads the use of scope "t" (token seg) or "g" (group seg). */
static int scope_read(struct ctl *c, const char *kind, const char *seg, int64_t now_ms,
                      int tz_min, struct scope_use *u)
{
	char key[RECORD_SEG_MAX + 64];
	struct budget_window w;
	redisReply *r;

	memset(u, 0, sizeof(*u));
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		if (budget_window((enum budget_kind)k, now_ms, tz_min, &w) < 0)
			return -1;
		snprintf(key, sizeof(key), "%s%s:%s:%s", RKEY_SPEND_PREFIX, kind, seg, w.id);
		r = RCMD(c, k == BUDGET_USD_5H ? "HGETALL" : "GET",
		         k == BUDGET_USD_5H ? "HGETALL" : "GET", key);
		if (!r)
			return -1;
		u->reset_ms[k] = w.end_ms;
		if (k == BUDGET_USD_5H) {
			/* The rolling window turns minute by minute: its oldest
			 * spend leaves it then (the same reading as /api/usage). */
			selfusage_read_5h(r, now_ms, &u->spent[k], &u->reset_ms[k]);
		} else if (r->type == REDIS_REPLY_STRING) {
			u->spent[k] = to_u64(r->str);
		}
		freeReplyObject(r);
	}
	snprintf(key, sizeof(key), "%s%s:%s", RKEY_RESV_PREFIX, kind, seg);
	r = RCMD(c, "HGETALL", "HGETALL", key);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i + 1 < r->elements; i += 2)
			hold_alive(c, r->element[i + 1]->str, true, now_ms, &u->reserved);
	freeReplyObject(r);
	if (strcmp(kind, "t"))
		return 0;
	snprintf(key, sizeof(key), "%s%s", RKEY_INFLIGHT_PREFIX, seg);
	r = RCMD(c, "HGETALL", "HGETALL", key);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i + 1 < r->elements; i += 2)
			u->in_flight += hold_alive(c, r->element[i + 1]->str, false, now_ms, NULL);
	freeReplyObject(r);
	return 0;
}

static const char *const window_key[BUDGET_USD_KINDS] = { "5h", "day", "week", "month" };

/* {"usd/day": 10.00, "rpm": 30}: amounts as exact decimals. */
static void json_limits(const struct budget_limits *l)
{
	char a[40];
	bool first = true;

	putchar('{');
	for (int k = 0; k < BUDGET_KINDS; k++) {
		if (!(l->set & (1u << k)))
			continue;
		if (BUDGET_IS_USD(k))
			budget_usd_str(l->v[k], a, sizeof(a));
		else
			snprintf(a, sizeof(a), "%" PRIu64, l->v[k]);
		printf("%s\"%s\": %s", first ? "" : ", ", budget_kind_name((enum budget_kind)k), a);
		first = false;
	}
	putchar('}');
}

/* "spent_usd", "remaining_usd", "resets" of one scope against limits l. */
static void json_use(const struct scope_use *u, const struct budget_limits *l, int tz_min)
{
	char a[40], t[40];
	bool first = true;

	fputs("\"spent_usd\": {", stdout);
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		budget_usd_str(u->spent[k], a, sizeof(a));
		printf("%s\"%s\": %s", k ? ", " : "", window_key[k], a);
	}
	budget_usd_str(u->reserved, a, sizeof(a));
	printf("}, \"reserved_usd\": %s, \"remaining_usd\": {", a);
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		if (!(l->set & (1u << k)))
			continue;
		budget_usd_str(u->spent[k] < l->v[k] ? l->v[k] - u->spent[k] : 0, a, sizeof(a));
		printf("%s\"%s\": %s", first ? "" : ", ", budget_kind_name((enum budget_kind)k), a);
		first = false;
	}
	fputs("}, \"resets\": {", stdout);
	first = true;
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		if (!(l->set & (1u << k)))
			continue;
		if (!u->reset_ms[k])
			snprintf(t, sizeof(t), "null");
		else if (budget_time_str(u->reset_ms[k], tz_min, t + 1, sizeof(t) - 2))
			t[0] = '"', strcat(t, "\"");
		printf("%s\"%s\": %s", first ? "" : ", ", budget_kind_name((enum budget_kind)k), t);
		first = false;
	}
	putchar('}');
}

static void text_use(const char *title, const struct scope_use *u,
                     const struct budget_limits *l, int tz_min)
{
	char a[40], b[40], r[40], t[40];

	printf("%-13s %-16s %-16s %-16s %s\n", title, "SPENT", "LIMIT", "REMAINING", "RESETS");
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		bool lim = l->set & (1u << k);

		budget_usd_str(u->spent[k], a + 1, sizeof(a) - 1);
		a[0] = '$';
		if (lim) {
			budget_usd_str(l->v[k], b + 1, sizeof(b) - 1);
			b[0] = '$';
			budget_usd_str(u->spent[k] < l->v[k] ? l->v[k] - u->spent[k] : 0, r + 1,
			               sizeof(r) - 1);
			r[0] = '$';
			if (!u->reset_ms[k] || !budget_time_str(u->reset_ms[k], tz_min, t, sizeof(t)))
				snprintf(t, sizeof(t), "-");
		} else {
			snprintf(b, sizeof(b), "-");
			snprintf(r, sizeof(r), "-");
			snprintf(t, sizeof(t), "-");
		}
		printf("  %-11s %-16s %-16s %-16s %s\n", budget_kind_name((enum budget_kind)k), a, b,
		       r, t);
	}
	budget_usd_str(u->reserved, a, sizeof(a));
	printf("  %-11s $%s\n", "reserved", a);
}

static void text_limits(const struct budget_limits *l)
{
	char a[40];

	if (!l->set) {
		fputs("none", stdout);
		return;
	}
	for (int k = 0, first = 1; k < BUDGET_KINDS; k++) {
		if (!(l->set & (1u << k)))
			continue;
		if (BUDGET_IS_USD(k))
			budget_usd_str(l->v[k], a, sizeof(a));
		printf("%s%s=%s%s", first ? "" : " ", budget_kind_name((enum budget_kind)k),
		       BUDGET_IS_USD(k) ? "$" : "", BUDGET_IS_USD(k) ? a : "");
		if (!BUDGET_IS_USD(k))
			printf("%" PRIu64, l->v[k]);
		first = 0;
	}
}

static int cmd_token_show(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char hash[TOKEN_HEX_LEN + 1], tseg[RECORD_SEG_MAX], gseg[RECORD_SEG_MAX], tbuf[32];
	struct budget_limits own = { 0 }, eff, total = { 0 };
	struct scope_use tu, gu;
	const char *name, *group, *status, *models, *f;
	int64_t now = (int64_t)time(NULL), expires;
	bool json = false, have_total;
	redisReply *rec = NULL;
	int opt, tz = 0, g = -1;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'h': ctl_help(ctl_find_cmd("token")); return CTL_OK;
		default: return ctl_bad_option("token ", argc, argv, opt);
		}
	}
	if (argc - optind != 1)
		return ctl_usage_err("token ", "token show: expects one NAME");
	name = argv[optind];
	if (!token_name_valid(name, strlen(name)))
		return ctl_usage_err("token ", "token show: invalid name '%s'", name);
	if (ctl_config(c) < 0 || !ctl_redis(c) || token_lookup(c, name, hash, &rec) != CTL_OK)
		return CTL_ERR;
	group = (f = ctl_hfield(rec, RKEY_TF_GROUP)) ? f : CFG_GROUP_DEFAULT;
	status = ctl_hfield(rec, RKEY_TF_STATUS);
	expires = to_i64(ctl_hfield(rec, RKEY_TF_EXPIRES));
	if (!strcmp(status, RKEY_TS_ACTIVE) && expires && expires <= now)
		status = "expired";
	models = (f = ctl_hfield(rec, RKEY_TF_MODELS)) ? f : "";
	if ((f = ctl_hfield(rec, RKEY_TF_LIMITS)) && *f &&
	    budget_limits_decode(f, strlen(f), &own) < 0) {
		freeReplyObject(rec);
		ctl_errmsg("the stored limits of '%s' cannot be read (the agents refuse it)", name);
		return CTL_ERR;
	}
	/* The group's defaults and totals come from the configuration. */
	if (c->cfg) {
		tz = c->cfg->tz_min;
		g = config_group_index(c->cfg, group, strlen(group));
	}
	budget_limits_merge(&eff, &own, g >= 0 ? &c->cfg->group_limits[g] : NULL);
	if (g >= 0)
		total = c->cfg->group_totals[g];
	have_total = total.set != 0;
	if (record_seg_encode(name, tseg, sizeof(tseg)) < 0 ||
	    record_seg_encode(group, gseg, sizeof(gseg)) < 0 ||
	    scope_read(c, "t", tseg, now * 1000, tz, &tu) < 0 ||
	    scope_read(c, "g", gseg, now * 1000, tz, &gu) < 0) {
		freeReplyObject(rec);
		return CTL_ERR;
	}

	if (json) {
		fputs("{\"name\": ", stdout);
		ctl_json_str(name);
		fputs(", \"group\": ", stdout);
		ctl_json_str(group);
		fputs(", \"status\": ", stdout);
		ctl_json_str(status);
		printf(", \"id\": \"%.*s\", \"expires\": %" PRId64 ", \"models\": ", TOKEN_ID_LEN,
		       hash, expires);
		if (!*models) {
			fputs("null", stdout);
		} else {
			const char *p = models;

			putchar('[');
			for (;;) {
				const char *comma = strchr(p, ',');
				char m[TOKEN_MODELS_MAX + 1];

				snprintf(m, sizeof(m), "%.*s", comma ? (int)(comma - p) : (int)strlen(p), p);
				ctl_json_str(m);
				if (!comma)
					break;
				putchar(',');
				putchar(' ');
				p = comma + 1;
			}
			putchar(']');
		}
		fputs(", \"token_limits\": ", stdout);
		json_limits(&own);
		fputs(", \"limits\": ", stdout);
		json_limits(&eff);
		putchar(',');
		putchar(' ');
		json_use(&tu, &eff, tz);
		printf(", \"in_flight\": %lld", tu.in_flight);
		if (have_total) {
			fputs(", \"group_total\": {\"limits\": ", stdout);
			json_limits(&total);
			putchar(',');
			putchar(' ');
			json_use(&gu, &total, tz);
			putchar('}');
		}
		fputs(", \"config\": ", stdout);
		if (c->config_path)
			ctl_json_str(c->config_path);
		else
			fputs("null", stdout);
		puts("}");
	} else {
		printf("token         %s (id %.*s)\n", name, TOKEN_ID_LEN, hash);
		printf("group         %s\n", group);
		printf("status        %s\n", status);
		printf("expires       %s\n", expires ? fmt_time(expires, tbuf, sizeof(tbuf)) : "never");
		printf("models        %s\n", *models ? models : "all of the group's");
		fputs("limits        ", stdout);
		text_limits(&eff);
		if (!c->cfg)
			fputs("  (the token's own; with -c, its group's defaults too)", stdout);
		putchar('\n');
		printf("in flight     %lld\n", tu.in_flight);
		text_use("spend", &tu, &eff, tz);
		if (have_total) {
			char title[TOKEN_FIELD_MAX + 16];

			snprintf(title, sizeof(title), "group %s", group);
			text_use(title, &gu, &total, tz);
		}
	}
	freeReplyObject(rec);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_errmsg("cannot write to stdout");
		return CTL_ERR;
	}
	return CTL_OK;
}

/* ---------------------------------------------------------------------- */
/* token revoke                                                           */
/* ---------------------------------------------------------------------- */

static int cmd_token_revoke(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char key[RKEY_TOKEN_KEY_MAX], hash[TOKEN_HEX_LEN + 1], prev[TOKEN_HEX_LEN + 1], at[24];
	const char *name;
	redisReply *rec = NULL;
	bool already;
	long long receivers;
	int opt;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': ctl_help(ctl_find_cmd("token")); return CTL_OK;
		default: return ctl_bad_option("token ", argc, argv, opt);
		}
	}
	if (argc - optind != 1)
		return ctl_usage_err("token ", "token revoke: expects one NAME");
	name = argv[optind];
	if (!token_name_valid(name, strlen(name)))
		return ctl_usage_err("token ", "token revoke: invalid name '%s'", name);
	if (!ctl_redis(c) || token_lookup(c, name, hash, &rec) != CTL_OK)
		return CTL_ERR;
	already = strcmp(ctl_hfield(rec, RKEY_TF_STATUS), RKEY_TS_REVOKED) == 0;
	/* A secret rotated with a grace goes with its successor. */
	token_predecessor(c, rec, prev);
	freeReplyObject(rec);

	snprintf(at, sizeof(at), "%" PRId64, (int64_t)time(NULL));
	token_key(key, hash);
	if (!already && RCMD_OK(c, "HSET", "HSET", key, RKEY_TF_STATUS, RKEY_TS_REVOKED,
	                        RKEY_TF_REVOKED_AT, at) < 0)
		return CTL_ERR;
	if (prev[0]) {
		token_key(key, prev);
		if (RCMD_OK(c, "HSET", "HSET", key, RKEY_TF_STATUS, RKEY_TS_REVOKED,
		            RKEY_TF_REVOKED_AT, at) < 0)
			return CTL_ERR;
		token_publish(c, prev);
	}
	/* Published even when already revoked: an agent that somehow still
	 * caches it drops it now. */
	receivers = token_publish(c, hash);
	if (receivers < 0)
		return CTL_ERR;
	printf("token '%s' %s (id %.*s); %lld subscriber%s notified\n", name,
	       already ? "was already revoked" : "revoked", TOKEN_ID_LEN, hash,
	       receivers, receivers == 1 ? "" : "s");
	return CTL_OK;
}

/* ---------------------------------------------------------------------- */
/* token                                                                  */
/* ---------------------------------------------------------------------- */

/* The subcommands: one row each, before the {NULL} that ends the table.
 * help is the SYNOPSIS line after "token "; the man-page paragraph is in
 * main.c. */
const struct ctl_subcmd token_subcmds[] = {
	{ "add", cmd_token_add, "add --name NAME [--group GROUP] [--expires WHEN] "
	  "[--limit SPEC]... [--models M1,M2,...]" },
	{ "set", cmd_token_set, "set NAME [--group G] [--expires WHEN] [--limit SPEC]... "
	  "[--clear-limit NAME]... [--models M1,... | --all-models]" },
	{ "rotate", cmd_token_rotate, "rotate NAME [--grace DURATION]" },
	{ "show", cmd_token_show, "show NAME [--json]" },
	{ "list", cmd_token_list, "list [--json]" },
	{ "revoke", cmd_token_revoke, "revoke NAME" },
	{ NULL, NULL, NULL },
};

/* "add, list, revoke": the names of token_subcmds, into buf. A table too
 * long for buf is cut short, which only shortens a message. */
static const char *subcmd_names(char *buf, size_t size)
{
	const struct ctl_subcmd *s;
	size_t len = 0;
	int n;

	buf[0] = '\0';
	for (s = token_subcmds; s->name && len < size; s++) {
		n = snprintf(buf + len, size - len, "%s%s", s == token_subcmds ? "" : ", ",
		             s->name);
		if (n < 0)
			break;
		len += (size_t)n;
	}
	return buf;
}

int cmd_token(struct ctl *c, int argc, char **argv)
{
	const struct ctl_subcmd *s;
	char names[256];

	if (argc < 2)
		return ctl_usage_err("token ", "token: expects a subcommand (%s)",
		                     subcmd_names(names, sizeof(names)));
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		ctl_help(ctl_find_cmd("token"));
		return CTL_OK;
	}
	for (s = token_subcmds; s->name; s++)
		if (strcmp(argv[1], s->name) == 0)
			return s->fn(c, argc - 1, argv + 1);
	return ctl_usage_err("token ", "token: unknown subcommand '%s'", argv[1]);
}

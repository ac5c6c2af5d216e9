/*
 * realmsctl token: add, list and revoke client tokens (Redis keeps only
 * their SHA-256). Subcommands are rows of token_subcmds (ctl.h).
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

#include <realms/config.h>
#include <realms/limits.h>
#include <realms/rkeys.h>
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
/* token add                                                              */
/* ---------------------------------------------------------------------- */

/* Writes the index entry and the record in one transaction, refusing a
 * taken name. WATCH on the index makes EXEC fail if anyone changed it
 * since the HEXISTS; then we look again. Returns CTL_OK, or CTL_ERR after
 * printing why. */
static int token_store(struct ctl *c, const char *name, const char *group,
                       const char *hash, int64_t now, int64_t expires)
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
		            RKEY_TF_REVOKED_AT, "0") < 0) {
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *group = CFG_GROUP_DEFAULT, *when = NULL;
	char tok[TOKEN_MAX], hash[TOKEN_HEX_LEN + 1], tbuf[32];
	int64_t now = (int64_t)time(NULL), expires = 0;
	int opt, rc;

	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': name = optarg; break;
		case 'g': group = optarg; break;
		case 'e': when = optarg; break;
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
	rc = token_store(c, name, group, hash, now, expires);
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
/* token revoke                                                           */
/* ---------------------------------------------------------------------- */

static int cmd_token_revoke(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char key[RKEY_TOKEN_KEY_MAX], hash[TOKEN_HEX_LEN + 1], at[24];
	uint8_t raw[TOKEN_HASH_LEN];
	const char *name;
	redisReply *r;
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
	if (!ctl_redis(c))
		return CTL_ERR;

	r = RCMD(c, "HGET", "HGET", RKEY_TOKENS, name);
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
	memcpy(hash, r->str, sizeof(hash));
	freeReplyObject(r);
	token_key(key, hash);

	r = RCMD(c, "HGET", "HGET", key, RKEY_TF_STATUS);
	if (!r)
		return CTL_ERR;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		ctl_errmsg("the record of token '%s' is missing", name);
		return CTL_ERR;
	}
	already = strcmp(r->str, RKEY_TS_REVOKED) == 0;
	freeReplyObject(r);

	if (!already) {
		snprintf(at, sizeof(at), "%" PRId64, (int64_t)time(NULL));
		if (RCMD_OK(c, "HSET", "HSET", key, RKEY_TF_STATUS, RKEY_TS_REVOKED,
		            RKEY_TF_REVOKED_AT, at) < 0)
			return CTL_ERR;
	}
	/* Published even when already revoked: an agent that somehow still
	 * caches it drops it now. */
	r = RCMD(c, "PUBLISH", "PUBLISH", RKEY_TOKEN_EVENTS, hash);
	if (!r)
		return CTL_ERR;
	receivers = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
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
	{ "add", cmd_token_add, "add --name NAME [--group GROUP] [--expires WHEN]" },
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

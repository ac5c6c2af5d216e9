/*
 * realmsctl: the admin CLI of Realms.
 *
 * A table of commands ({name, fn, synopsis, summary, details}); each command
 * parses its own arguments and may have its own table of subcommands, as
 * "token" does. Redis is reached with blocking hiredis: a CLI does one thing
 * and exits, so there is no event loop here.
 *
 * Exit status: 0 done, 1 operational error (Redis, config, a name that is
 * taken or unknown), 2 usage error. Messages go to stderr and never hold a
 * secret; stdout carries only results (the new token, the list).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include <realms/config.h>
#include <realms/netaddr.h>
#include <realms/render.h>
#include <realms/rkeys.h>
#include <realms/token.h>

#define CTL_OK              0
#define CTL_ERR             1
#define CTL_USAGE           2

/* Where Redis is when neither REALMS_REDIS nor a config says. */
#define CTL_DEFAULT_REDIS   "127.0.0.1:6379"
/* Redis: connect and per-command timeout; past it the command fails (1). */
#define CTL_REDIS_TIMEOUT_S 2
/* token add: EXEC attempts when another writer touched the name index
 * between WATCH and EXEC (each attempt is a few round trips). */
#define CTL_ADD_ATTEMPTS    16
/* Arguments of one Redis command built by rcmd(). */
#define CTL_MAX_ARGS        32
/* Hex chars of the hash shown as a token's ID. */
#define CTL_ID_LEN          12

struct ctl {
	const char *config_path;    /* -c, or NULL */
	struct realms_config *cfg;  /* loaded on first use */
	redisContext *rc;           /* connected on first use */
};

struct ctl_cmd {
	const char *name;
	int (*fn)(struct ctl *c, int argc, char **argv);  /* argv[0] = name */
	const char *synopsis;       /* SYNOPSIS lines, without "realmsctl " */
	const char *summary;        /* one line for the command list */
	const char *details;        /* COMMANDS (and OPTIONS) of its man page */
};

/* ---------------------------------------------------------------------- */
/* Messages and help                                                      */
/* ---------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static void errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("realmsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A usage error: the message, a pointer to the help, status 2. */
__attribute__((format(printf, 2, 3)))
static int usage_err(const char *help_cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("realmsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'realmsctl %s--help'.\n", help_cmd);
	return CTL_USAGE;
}

static const char help_options[] =
	"OPTIONS\n"
	"    -c FILE, --config FILE\n"
	"        Read the gateway's configuration (the realms-agent JSON file):\n"
	"        its \"redis\" address, and its groups, which \"token add\" checks\n"
	"        --group against. Without it, any well-formed group name is taken.\n"
	"\n"
	"    -h, --help\n"
	"        Show this page. \"realmsctl COMMAND --help\" shows the page of\n"
	"        one command.\n";

static const char help_env[] =
	"ENVIRONMENT\n"
	"    REALMS_REDIS\n"
	"        The Redis address, overriding the configuration's: \"host:port\",\n"
	"        \"[v6]:port\", \"unix:/path\" or \"/path\" (a unix socket). Without\n"
	"        it and without -c, 127.0.0.1:6379. Connections and commands time\n"
	"        out after 2 seconds.\n";

static const char help_exit[] =
	"EXIT STATUS\n"
	"    0   Success.\n"
	"    1   Operational error: Redis unreachable or failing, configuration\n"
	"        invalid, a token name already taken or not found, an unknown\n"
	"        group. The reason is printed on stderr.\n"
	"    2   Usage error: unknown command or option, missing or malformed\n"
	"        argument.\n";

static const struct ctl_cmd *commands(size_t *n);
static const struct ctl_cmd *find_cmd(const char *name);

/* The whole man page (cmd NULL) or one command's. */
static void print_help(const struct ctl_cmd *cmd)
{
	const struct ctl_cmd *cmds;
	size_t n, i;
	const char *s, *e;

	cmds = commands(&n);
	if (cmd) {
		cmds = cmd;
		n = 1;
	}
	fputs("NAME\n", stdout);
	if (cmd)
		printf("    realmsctl %s - %s\n\n", cmd->name, cmd->summary);
	else
		fputs("    realmsctl - administer a Realms gateway\n\n", stdout);

	fputs("SYNOPSIS\n", stdout);
	for (i = 0; i < n; i++) {
		/* one "realmsctl [-c FILE] ..." line per synopsis line */
		for (s = cmds[i].synopsis; *s; s = *e ? e + 1 : e) {
			e = strchr(s, '\n');
			if (!e)
				e = s + strlen(s);
			printf("    realmsctl [-c FILE] %.*s\n", (int)(e - s), s);
		}
	}
	if (cmd)
		printf("    realmsctl %s --help\n\n", cmd->name);
	else
		fputs("    realmsctl -h | --help\n\n", stdout);

	if (!cmd) {
		fputs("DESCRIPTION\n"
		      "    realmsctl manages what the realms-agent reads from Redis: the\n"
		      "    client tokens (stored as SHA-256 hashes only; a token is shown\n"
		      "    once, when it is created). The agents share the same Redis, so\n"
		      "    a change made here applies to every node.\n\n", stdout);
		fputs("COMMANDS\n", stdout);
		for (i = 0; i < n; i++)
			printf("    %-10s %s\n", cmds[i].name, cmds[i].summary);
		fputc('\n', stdout);
	}
	for (i = 0; i < n; i++) {
		fputs(cmds[i].details, stdout);
		fputc('\n', stdout);
	}
	fputs(help_options, stdout);
	fputc('\n', stdout);
	fputs(help_env, stdout);
	fputc('\n', stdout);
	fputs(help_exit, stdout);
}

/* ---------------------------------------------------------------------- */
/* Configuration and Redis                                                */
/* ---------------------------------------------------------------------- */

/* Loads the -c file once. Returns 0 (also when there is no -c) or -1 after
 * printing the problems. */
static int ctl_config(struct ctl *c)
{
	struct cfg_diag diag;

	if (!c->config_path || c->cfg)
		return 0;
	cfg_diag_init(&diag);
	c->cfg = config_load(c->config_path, &diag);
	if (!c->cfg) {
		cfg_diag_print(&diag, stderr);
		errmsg("%s: invalid configuration", c->config_path);
	}
	cfg_diag_free(&diag);
	return c->cfg ? 0 : -1;
}

/* Connects once, to REALMS_REDIS, else the config's "redis", else the
 * default. Returns the context, or NULL after printing why. */
static redisContext *ctl_redis(struct ctl *c)
{
	struct timeval tv = { .tv_sec = CTL_REDIS_TIMEOUT_S };
	const char *where = getenv("REALMS_REDIS");
	struct netaddr a;
	char err[160];
	redisContext *rc;

	if (c->rc)
		return c->rc;
	/* A -c file is checked even when REALMS_REDIS makes its address moot:
	 * a broken file should not go unnoticed. */
	if (ctl_config(c) < 0)
		return NULL;
	if (!where || !*where)
		where = c->cfg ? c->cfg->redis : CTL_DEFAULT_REDIS;
	if (netaddr_parse(where, &a, err, sizeof(err)) < 0) {
		errmsg("Redis address: %s", err);
		return NULL;
	}
	if (a.family == AF_UNIX)
		rc = redisConnectUnixWithTimeout(a.path, tv);
	else
		rc = redisConnectWithTimeout(a.host, a.port, tv);
	if (!rc) {
		errmsg("cannot connect to Redis at %s: out of memory", where);
		return NULL;
	}
	if (rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
		errmsg("cannot connect to Redis at %s: %s", where,
		       rc->err ? rc->errstr : "cannot set timeout");
		redisFree(rc);
		return NULL;
	}
	c->rc = rc;
	return rc;
}

/* Runs one command (arguments as NUL-terminated strings, NULL-terminated
 * list). Returns the reply (caller frees), or NULL after printing the I/O
 * or Redis error. `what` names the step in messages. */
static redisReply *rcmd(struct ctl *c, const char *what, const char **argv)
{
	size_t len[CTL_MAX_ARGS];
	int argc = 0;
	redisReply *r;

	while (argv[argc]) {
		if (argc == CTL_MAX_ARGS) {
			errmsg("internal error: %s has too many arguments", what);
			return NULL;
		}
		len[argc] = strlen(argv[argc]);
		argc++;
	}
	r = redisCommandArgv(c->rc, argc, argv, len);
	if (!r) {
		errmsg("Redis (%s): %s", what, c->rc->errstr[0] ? c->rc->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		errmsg("Redis (%s): %s", what, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

#define RCMD(c, what, ...) rcmd((c), (what), (const char *[]){ __VA_ARGS__, NULL })

/* Sends a command whose answer only matters as success. Returns 0 or -1. */
static int rcmd_ok(struct ctl *c, const char *what, const char **argv)
{
	redisReply *r = rcmd(c, what, argv);

	if (!r)
		return -1;
	freeReplyObject(r);
	return 0;
}

#define RCMD_OK(c, what, ...) rcmd_ok((c), (what), (const char *[]){ __VA_ARGS__, NULL })

static void token_key(char key[RKEY_TOKEN_KEY_MAX], const char *hash)
{
	snprintf(key, RKEY_TOKEN_KEY_MAX, "%s%s", RKEY_TOKEN_PREFIX, hash);
}

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

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

/* Sets up getopt for a new argv (glibc: optind 0 re-initialises). */
static void getopt_reset(void)
{
	optind = 0;
	opterr = 0;
}

/* The usage error for what getopt_long just refused. */
static int bad_option(const char *cmd, int argc, char **argv, int opt)
{
	const char *arg = optind - 1 < argc ? argv[optind - 1] : "?";

	if (opt == ':')
		return usage_err(cmd, "option '%s' needs a value", arg);
	if (optopt && optopt != '?')
		return usage_err(cmd, "unknown option '-%c'", optopt);
	return usage_err(cmd, "unknown option '%s'", arg);
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
			errmsg("a token named '%s' already exists (revoked tokens keep "
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
			errmsg("Redis (EXEC): unexpected reply");
			return CTL_ERR;
		}
		for (i = 0; i < r->elements; i++) {
			if (r->element[i]->type == REDIS_REPLY_ERROR) {
				errmsg("Redis (EXEC): %s", r->element[i]->str);
				freeReplyObject(r);
				return CTL_ERR;
			}
		}
		freeReplyObject(r);
		return CTL_OK;
	}
	errmsg("the token index kept changing; nothing was created, try again");
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
	const char *name = NULL, *group = "default", *when = NULL;
	char tok[TOKEN_MAX], hash[TOKEN_HEX_LEN + 1], tbuf[32];
	int64_t now = (int64_t)time(NULL), expires = 0;
	int opt, rc;

	getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n': name = optarg; break;
		case 'g': group = optarg; break;
		case 'e': when = optarg; break;
		case 'h': print_help(find_cmd("token")); return CTL_OK;
		default: return bad_option("token ", argc, argv, opt);
		}
	}
	if (optind < argc)
		return usage_err("token ", "token add: unexpected argument '%s'", argv[optind]);
	if (!name)
		return usage_err("token ", "token add: --name is required");
	if (!token_name_valid(name, strlen(name)))
		return usage_err("token ", "token add: invalid name '%s' (1 to %d of "
		                 "A-Z a-z 0-9 . _ @ -)", name, TOKEN_NAME_MAX);
	if (!token_name_valid(group, strlen(group)))
		return usage_err("token ", "token add: invalid group '%s' (1 to %d of "
		                 "A-Z a-z 0-9 . _ @ -)", group, TOKEN_NAME_MAX);
	if (when) {
		if (token_parse_expiry(when, now, &expires) < 0)
			return usage_err("token ", "token add: invalid --expires '%s' (YYYY-MM-DD, "
			                 "YYYY-MM-DDTHH:MM:SSZ, <N>d, <N>h, <N>m or never)", when);
		if (expires != 0 && expires <= now)
			return usage_err("token ", "token add: --expires '%s' is in the past", when);
	}
	if (ctl_config(c) < 0)
		return CTL_ERR;
	if (c->cfg && config_group_index(c->cfg, group, strlen(group)) < 0) {
		errmsg("group '%s' is not defined in %s", group, c->config_path);
		return CTL_ERR;
	}
	if (!ctl_redis(c))
		return CTL_ERR;

	if (token_generate(tok) < 0) {
		errmsg("cannot get random bytes: %s", strerror(errno));
		return CTL_ERR;
	}
	if (token_hash_hex(tok, strlen(tok), hash) < 0) {
		OPENSSL_cleanse(tok, sizeof(tok));
		errmsg("SHA-256 failed");
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
		errmsg("cannot write the token to stdout: nothing was created");
		return CTL_ERR;
	}
	fprintf(stderr, "realmsctl: token '%s' created (group %s, id %.*s, expires %s).\n"
	        "realmsctl: it is shown only this once and cannot be recovered: "
	        "store it now.\n", name, group, CTL_ID_LEN, hash,
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

/* The field `f` of an HGETALL reply, or NULL. */
static const char *hfield(const redisReply *r, const char *f)
{
	size_t i;

	if (!r || r->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    r->element[i + 1]->type == REDIS_REPLY_STRING &&
		    strcmp(r->element[i]->str, f) == 0)
			return r->element[i + 1]->str;
	return NULL;
}

/* JSON string with the escapes RFC 8259 requires. */
static void json_str(const char *s)
{
	const unsigned char *p;

	putchar('"');
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
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
		json_str(rows[i].name);
		fputs(", \"group\": ", stdout);
		json_str(rows[i].group);
		fputs(", \"status\": ", stdout);
		json_str(rows[i].status);
		printf(", \"created\": %" PRId64 ", \"expires\": %" PRId64
		       ", \"revoked_at\": %" PRId64 ", \"id\": ",
		       rows[i].created, rows[i].expires, rows[i].revoked_at);
		printf("\"%.*s\"}%s\n", CTL_ID_LEN, rows[i].hash, i + 1 < n ? "," : "");
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
		       CTL_ID_LEN, rows[i].hash);
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

	getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 'h': print_help(find_cmd("token")); return CTL_OK;
		default: return bad_option("token ", argc, argv, opt);
		}
	}
	if (optind < argc)
		return usage_err("token ", "token list: unexpected argument '%s'", argv[optind]);
	if (!ctl_redis(c))
		return CTL_ERR;

	idx = RCMD(c, "HGETALL", "HGETALL", RKEY_TOKENS);
	if (!idx)
		goto out;
	if (idx->type != REDIS_REPLY_ARRAY || idx->elements % 2) {
		errmsg("Redis (HGETALL %s): unexpected reply", RKEY_TOKENS);
		goto out;
	}
	n = idx->elements / 2;
	rows = calloc(n ? n : 1, sizeof(*rows));
	recs = calloc(n ? n : 1, sizeof(*recs));
	if (!rows || !recs) {
		errmsg("out of memory");
		goto out;
	}
	/* Pipelined: one round trip's worth of latency for the whole list. */
	for (i = 0; i < n; i++) {
		rows[i].name = idx->element[2 * i]->str;
		rows[i].hash = idx->element[2 * i + 1]->str;
		if (!rows[i].name || !rows[i].hash) {
			errmsg("Redis (HGETALL %s): unexpected reply", RKEY_TOKENS);
			goto out;
		}
		if (redisAppendCommand(c->rc, "HGETALL %s%s", RKEY_TOKEN_PREFIX,
		                       rows[i].hash) != REDIS_OK) {
			errmsg("out of memory");
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		void *rep = NULL;

		if (redisGetReply(c->rc, &rep) != REDIS_OK || !rep) {
			errmsg("Redis (HGETALL): %s", c->rc->errstr);
			goto out;
		}
		recs[i] = rep;
		if (recs[i]->type == REDIS_REPLY_ERROR) {
			errmsg("Redis (HGETALL): %s", recs[i]->str);
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		const char *st = hfield(recs[i], RKEY_TF_STATUS);
		const char *g = hfield(recs[i], RKEY_TF_GROUP);

		rows[i].group = g ? g : "";
		rows[i].created = to_i64(hfield(recs[i], RKEY_TF_CREATED));
		rows[i].expires = to_i64(hfield(recs[i], RKEY_TF_EXPIRES));
		rows[i].revoked_at = to_i64(hfield(recs[i], RKEY_TF_REVOKED_AT));
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
		errmsg("cannot write to stdout");
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

	getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': print_help(find_cmd("token")); return CTL_OK;
		default: return bad_option("token ", argc, argv, opt);
		}
	}
	if (argc - optind != 1)
		return usage_err("token ", "token revoke: expects one NAME");
	name = argv[optind];
	if (!token_name_valid(name, strlen(name)))
		return usage_err("token ", "token revoke: invalid name '%s'", name);
	if (!ctl_redis(c))
		return CTL_ERR;

	r = RCMD(c, "HGET", "HGET", RKEY_TOKENS, name);
	if (!r)
		return CTL_ERR;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		errmsg("no token named '%s'", name);
		return CTL_ERR;
	}
	if (token_hex_decode(r->str, r->len, raw) < 0) {
		freeReplyObject(r);
		errmsg("the index entry of '%s' is not a token hash", name);
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
		errmsg("the record of token '%s' is missing", name);
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
	       already ? "was already revoked" : "revoked", CTL_ID_LEN, hash,
	       receivers, receivers == 1 ? "" : "s");
	return CTL_OK;
}

/* ---------------------------------------------------------------------- */
/* token                                                                  */
/* ---------------------------------------------------------------------- */

static const struct ctl_cmd token_cmds[] = {
	{ "add", cmd_token_add, NULL, NULL, NULL },
	{ "list", cmd_token_list, NULL, NULL, NULL },
	{ "revoke", cmd_token_revoke, NULL, NULL, NULL },
};

static int cmd_token(struct ctl *c, int argc, char **argv)
{
	size_t i;

	if (argc < 2)
		return usage_err("token ", "token: expects a subcommand (add, list, revoke)");
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		print_help(find_cmd("token"));
		return CTL_OK;
	}
	for (i = 0; i < sizeof(token_cmds) / sizeof(token_cmds[0]); i++)
		if (strcmp(argv[1], token_cmds[i].name) == 0)
			return token_cmds[i].fn(c, argc - 1, argv + 1);
	return usage_err("token ", "token: unknown subcommand '%s'", argv[1]);
}

/* ---------------------------------------------------------------------- */
/* render-haproxy                                                         */
/* ---------------------------------------------------------------------- */

/* Writes through a temporary file and renames it, so HAProxy never reads a
 * half-written file. path "-" is stdout. */
static int render_to(const char *path, int (*fn)(const struct realms_config *, FILE *),
                     const struct realms_config *cfg)
{
	char tmp[4096];
	FILE *f;
	int rc;

	if (strcmp(path, "-") == 0)
		return fn(cfg, stdout) < 0 || fflush(stdout) ? -1 : 0;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (!f) {
		errmsg("%s: %s", tmp, strerror(errno));
		return -1;
	}
	rc = fn(cfg, f);
	if (fclose(f) != 0 || rc < 0 || rename(tmp, path) != 0) {
		errmsg("%s: cannot write", path);
		remove(tmp);
		return -1;
	}
	return 0;
}

static int cmd_render_haproxy(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "setup-page", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = "-", *page = NULL;
	int opt;

	getopt_reset();
	while ((opt = getopt_long(argc, argv, "+:o:s:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; break;
		case 's': page = optarg; break;
		default: return bad_option("render-haproxy", argc, argv, opt);
		}
	}
	if (optind < argc)
		return usage_err("render-haproxy", "render-haproxy: unexpected argument '%s'", argv[optind]);
	if (!c->config_path)
		return usage_err("render-haproxy", "render-haproxy: needs -c FILE");
	if (ctl_config(c) < 0)
		return CTL_ERR;
	if (render_to(out, render_haproxy, c->cfg) < 0)
		return CTL_ERR;
	if (page && render_to(page, render_setup_page, c->cfg) < 0)
		return CTL_ERR;
	return CTL_OK;
}

/* ---------------------------------------------------------------------- */
/* Commands and main                                                      */
/* ---------------------------------------------------------------------- */

static const struct ctl_cmd cmd_table[] = {
	{
		"render-haproxy", cmd_render_haproxy,
		"-c FILE render-haproxy [-o FILE] [--setup-page FILE]",
		"write the channel part of haproxy.cfg (and the setup page)",
		"RENDER-HAPROXY\n"
		"    -c FILE render-haproxy [-o FILE] [--setup-page FILE]\n"
		"        Write the part of the HAProxy configuration that depends on\n"
		"        the channels: one pool_<model> backend per offered model, with\n"
		"        a server per credential bound to it and its use-server rule,\n"
		"        and one up_<channel> backend per channel (address, TLS, SNI\n"
		"        and Host from base_url). It holds no secret. Load it after\n"
		"        haproxy/realms.cfg. Files are written whole or not at all.\n"
		"        -o FILE             output file (default: stdout)\n"
		"        --setup-page FILE   also write the Claude Code setup page\n"
		"                            that HAProxy serves at /\n",
	},
	{
		"token", cmd_token,
		"token add --name NAME [--group GROUP] [--expires WHEN]\n"
		"token list [--json]\n"
		"token revoke NAME",
		"create, list and revoke client tokens",
		"TOKEN COMMANDS\n"
		"    token add --name NAME [--group GROUP] [--expires WHEN]\n"
		"        Create a token and print it on stdout, alone on its line, so\n"
		"        that tok=$(realmsctl token add --name x) works. It is shown\n"
		"        this once: Redis keeps only its SHA-256. NAME is unique, even\n"
		"        among revoked tokens, and is 1 to 64 of A-Z a-z 0-9 . _ @ -.\n"
		"        --group GROUP   the group whose channels it may use (default\n"
		"                        \"default\"); with -c it must be in the\n"
		"                        configuration's \"groups\".\n"
		"        --expires WHEN  YYYY-MM-DD (valid through that day, UTC),\n"
		"                        YYYY-MM-DDTHH:MM:SSZ, <N>d, <N>h or <N>m from\n"
		"                        now, or never (the default).\n"
		"\n"
		"    token list [--json]\n"
		"        Show every token: NAME GROUP STATUS CREATED EXPIRES ID, sorted\n"
		"        by name, times in UTC. STATUS is active, revoked or expired.\n"
		"        ID is the first 12 hex digits of the token's SHA-256, as in\n"
		"        the agent's logs. --json prints a JSON array of objects with\n"
		"        name, group, status, created, expires, revoked_at (unix\n"
		"        seconds, 0 for never/not revoked) and id.\n"
		"\n"
		"    token revoke NAME\n"
		"        Mark the token revoked and publish its hash on\n"
		"        realms:token-events, so that every agent forgets it at once.\n"
		"        An unknown NAME is an error (exit 1).\n",
	},
};

static const struct ctl_cmd *commands(size_t *n)
{
	if (n)
		*n = sizeof(cmd_table) / sizeof(cmd_table[0]);
	return cmd_table;
}

static const struct ctl_cmd *find_cmd(const char *name)
{
	size_t n, i;
	const struct ctl_cmd *cmds = commands(&n);

	for (i = 0; i < n; i++)
		if (strcmp(name, cmds[i].name) == 0)
			return &cmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { 0 };
	const struct ctl_cmd *cmd;
	int opt, rc;

	getopt_reset();
	/* "+": stop at the command; what follows is the command's. */
	while ((opt = getopt_long(argc, argv, "+:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': c.config_path = optarg; break;
		case 'h': print_help(NULL); return CTL_OK;
		default: return bad_option("", argc, argv, opt);
		}
	}
	if (optind >= argc)
		return usage_err("", "expects a command");
	if (strcmp(argv[optind], "help") == 0) {
		print_help(NULL);
		return CTL_OK;
	}
	cmd = find_cmd(argv[optind]);
	if (!cmd)
		return usage_err("", "unknown command '%s'", argv[optind]);

	rc = cmd->fn(&c, argc - optind, argv + optind);
	if (c.rc)
		redisFree(c.rc);
	config_unref(c.cfg);
	return rc;
}

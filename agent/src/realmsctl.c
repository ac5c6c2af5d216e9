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
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include <realms/config.h>
#include <realms/netaddr.h>
#include <realms/record.h>
#include <realms/render.h>
#include <realms/rkeys.h>
#include <realms/token.h>

#define CTL_OK              0
#define CTL_ERR             1
#define CTL_USAGE           2

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
	"        its \"redis\" (address, user, password), and its groups, which\n"
	"        \"token add\" checks --group against. Without it, any\n"
	"        well-formed group name is taken. A warning is printed on stderr\n"
	"        when other users can read secrets: the file itself if it holds\n"
	"        any inline, or a \"file:\" secret it names.\n"
	"\n"
	"    -h, --help\n"
	"        Show this page. \"realmsctl COMMAND --help\" shows the page of\n"
	"        one command.\n";

static const char help_env[] =
	"ENVIRONMENT\n"
	"    Each of these replaces one part of the configuration's \"redis\"\n"
	"    (as for realms-agent); unset or empty means not given. Redis\n"
	"    traffic, AUTH included, is not encrypted: reach a remote Redis\n"
	"    through a unix socket or a TLS tunnel (docs/redis.md).\n"
	"\n"
	"    REALMS_REDIS\n"
	"        The Redis address: \"host:port\", \"[v6]:port\", \"unix:/path\"\n"
	"        or \"/path\" (a unix socket). Without it and without -c,\n"
	"        127.0.0.1:6379. Connections and commands time out after 2\n"
	"        seconds.\n"
	"\n"
	"    REALMS_REDIS_USER\n"
	"        The Redis ACL user to log in as (AUTH user password). Without a\n"
	"        user, AUTH sends the password alone (requirepass).\n"
	"\n"
	"    REALMS_REDIS_PASSWORD_FILE\n"
	"        A file holding the Redis password (trailing newline removed).\n"
	"        The preferred way: keep the file mode 0600. A password is\n"
	"        never printed; a refused AUTH exits 1.\n"
	"\n"
	"    REALMS_REDIS_PASSWORD\n"
	"        The password itself, when a file will not do (every child of\n"
	"        the shell that sets it inherits it). Not with _FILE.\n";

static const char help_exit[] =
	"EXIT STATUS\n"
	"    0   Success.\n"
	"    1   Operational error: Redis unreachable, refusing AUTH or failing,\n"
	"        configuration invalid, a token name already taken or not found,\n"
	"        an unknown group. The reason is printed on stderr.\n"
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
		      "    a change made here applies to every node. It also reports the\n"
		      "    usage the agents record there.\n\n", stdout);
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

/* Loads the -c file once. Of its problems, it prints those about secrets
 * other users can read (a world-readable file with inline keys, say), and
 * all of them when the file is refused; the others are the agent's
 * business (realms-agent --check). Returns 0 (also when there is no -c) or
 * -1. */
static int ctl_config(struct ctl *c)
{
	struct cfg_diag diag;

	if (!c->config_path || c->cfg)
		return 0;
	cfg_diag_init(&diag);
	c->cfg = config_load(c->config_path, &diag);
	if (c->cfg)
		cfg_diag_print_exposed(&diag, stderr);
	else
		cfg_diag_print(&diag, stderr);
	if (!c->cfg)
		errmsg("%s: invalid configuration", c->config_path);
	cfg_diag_free(&diag);
	return c->cfg ? 0 : -1;
}

/* Logs in as ep says, right after connecting. Returns 0, or -1 after
 * printing why (Redis's own message, which never holds the password). */
static int ctl_auth(redisContext *rc, const struct cfg_redis *ep)
{
	const char *argv[3];
	size_t len[3];
	int argc = cfg_redis_auth_argv(ep, argv, len);
	redisReply *r;
	int ok;

	if (argc == 0)
		return 0;
	r = redisCommandArgv(rc, argc, argv, len);
	ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
	if (!ok)
		errmsg("Redis at %s refused AUTH as user %s: %s", ep->address,
		       ep->user ? ep->user : "default",
		       !r ? (rc->errstr[0] ? rc->errstr : "no reply") :
		       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	if (r)
		freeReplyObject(r);
	return ok ? 0 : -1;
}

/* Connects once, where and as config_redis_env says (REALMS_REDIS*, else
 * the config's "redis", else the default), and logs in. Returns the
 * context, or NULL after printing why. */
static redisContext *ctl_redis(struct ctl *c)
{
	struct timeval tv = { .tv_sec = CTL_REDIS_TIMEOUT_S };
	struct cfg_diag diag;
	struct cfg_redis ep;
	redisContext *rc = NULL;
	int ret;

	if (c->rc)
		return c->rc;
	/* A -c file is checked even when REALMS_REDIS makes its address moot:
	 * a broken file should not go unnoticed. */
	if (ctl_config(c) < 0)
		return NULL;
	cfg_diag_init(&diag);
	ret = config_redis_env(c->cfg, &ep, &diag);
	cfg_diag_print(&diag, stderr);
	cfg_diag_free(&diag);
	if (ret < 0) {
		errmsg("cannot tell how to reach Redis (see above)");
		return NULL;
	}
	if (ep.addr.family == AF_UNIX)
		rc = redisConnectUnixWithTimeout(ep.addr.path, tv);
	else
		rc = redisConnectWithTimeout(ep.addr.host, ep.addr.port, tv);
	if (!rc) {
		errmsg("cannot connect to Redis at %s: out of memory", ep.address);
		goto out;
	}
	if (rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
		errmsg("cannot connect to Redis at %s: %s", ep.address,
		       rc->err ? rc->errstr : "cannot set timeout");
		goto fail;
	}
	if (ctl_auth(rc, &ep) < 0)
		goto fail;
	c->rc = rc;
	goto out;
fail:
	redisFree(rc);
out:
	config_redis_release(&ep);
	return c->rc;
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
		errmsg("Redis (%s): %s%s", what, r->str, strncmp(r->str, "NOAUTH", 6) == 0 ?
		       " (give its password: REALMS_REDIS_PASSWORD_FILE or the "
		       "configuration's redis.password)" : "");
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
/* usage                                                                  */
/* ---------------------------------------------------------------------- */

/* HGETALLs sent before their replies are read (one batch of latency). */
#define CTL_USAGE_BATCH     512
/* Default range: from this many days before today to today. */
#define CTL_USAGE_DAYS      30

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

/* Nano-USD as USD rounded (half up) to 6 decimals, with integer math. */
static const char *fmt_usd(uint64_t nusd, char *buf, size_t size)
{
	uint64_t micro = nusd / 1000 + (nusd % 1000 >= 500);

	snprintf(buf, size, "%" PRIu64 ".%06" PRIu64, micro / 1000000, micro % 1000000);
	return buf;
}

struct usage_q {
	const char *f_name[3];          /* token, model, channel filters or NULL */
	char f_seg[3][RECORD_SEG_MAX];  /* their key segments */
	char since[RECORD_DAY_LEN + 1], until[RECORD_DAY_LEN + 1];
	struct usum total;
	struct ugroup by[3];            /* by token, model, channel */
};

/* One combo member, "<token>:<model>:<channel>", of day; queued for
 * HGETALL when it passes the filters. */
struct ujob {
	char *key;
	char name[3][300];              /* decoded: a name is at most 256 bytes */
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

/* Adds an HGETALL reply of a combo hash to the sums. */
static int usage_add(struct usage_q *q, const struct ujob *j, const redisReply *r)
{
	struct usum s, *b;
	int i;

	for (i = 0; i < N_UF; i++)
		s.v[i] = to_u64(hfield(r, uf_fields[i]));
	usum_add(&q->total, &s);
	for (i = 0; i < 3; i++) {
		b = ugroup_get(&q->by[i], j->name[i]);
		if (!b)
			return -1;
		usum_add(b, &s);
	}
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
				errmsg("out of memory");
				return -1;
			}
		}
		for (j = i; j < end; j++) {
			rep = NULL;
			if (redisGetReply(c->rc, &rep) != REDIS_OK || !rep) {
				errmsg("Redis (HGETALL): %s", c->rc->errstr);
				return -1;
			}
			r = rep;
			rc = 0;
			if (r->type == REDIS_REPLY_ERROR) {
				errmsg("Redis (HGETALL %s): %s", jobs[j].key, r->str);
				rc = -1;
			} else if (usage_add(q, &jobs[j], r) < 0) {
				errmsg("out of memory");
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
		errmsg("Redis (ZRANGEBYSCORE %s): unexpected reply", RKEY_USAGE_DAYS);
		goto out;
	}
	for (d = 0; d < days->elements; d++) {
		const char *day = days->element[d]->str;
		char key[64];

		if (days->element[d]->type != REDIS_REPLY_STRING ||
		    days->element[d]->len != RECORD_DAY_LEN) {
			errmsg("Redis (%s): member is not a day; skipped", RKEY_USAGE_DAYS);
			continue;
		}
		snprintf(key, sizeof(key), "%s%s", RKEY_USAGE_COMBOS_PREFIX, day);
		m = RCMD(c, "SMEMBERS", "SMEMBERS", key);
		if (!m)
			goto out;
		if (m->type != REDIS_REPLY_ARRAY) {
			errmsg("Redis (SMEMBERS %s): unexpected reply", key);
			goto out;
		}
		for (i = 0; i < m->elements; i++) {
			const redisReply *e = m->element[i];

			if (njobs == cap) {
				nj = realloc(jobs, (cap ? 2 * cap : 64) * sizeof(*nj));
				if (!nj) {
					errmsg("out of memory");
					goto out;
				}
				jobs = nj;
				cap = cap ? 2 * cap : 64;
			}
			if (e->type != REDIS_REPLY_STRING ||
			    combo_split(e->str, e->len, seg, jobs[njobs].name) < 0) {
				errmsg("Redis (%s): malformed member; skipped", key);
				continue;
			}
			keep = true;
			for (k = 0; k < 3; k++)
				if (q->f_name[k] && strcmp(seg[k], q->f_seg[k]) != 0)
					keep = false;
			if (!keep)
				continue;
			if (asprintf(&jobs[njobs].key, "%s%s:%s", RKEY_USAGE_COMBO_PREFIX,
			             e->str, day) < 0) {
				errmsg("out of memory");
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
			json_str(q->f_name[k]);
		else
			fputs("null", stdout);
	}
	fputs("},\n  \"total\": ", stdout);
	json_usum(&q->total);
	for (k = 0; k < 3; k++) {
		printf(",\n  \"%s\": {", by_json[k]);
		for (i = 0; i < q->by[k].n; i++) {
			fputs(i ? ",\n    " : "\n    ", stdout);
			json_str(q->by[k].b[i].name);
			fputs(": ", stdout);
			json_usum(&q->by[k].b[i].s);
		}
		fputs(q->by[k].n ? "\n  }" : "}", stdout);
	}
	fputs("\n}\n", stdout);
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

static int cmd_usage(struct ctl *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "token", required_argument, NULL, 't' },
		{ "model", required_argument, NULL, 'm' },
		{ "channel", required_argument, NULL, 'C' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct usage_q q;
	const char *since = NULL, *until = NULL;
	int64_t now_ms = (int64_t)time(NULL) * 1000;
	bool json = false;
	int opt, k, rc;

	memset(&q, 0, sizeof(q));
	getopt_reset();
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 't': q.f_name[0] = optarg; break;
		case 'm': q.f_name[1] = optarg; break;
		case 'C': q.f_name[2] = optarg; break;
		case 's': since = optarg; break;
		case 'u': until = optarg; break;
		case 'j': json = true; break;
		case 'h': print_help(find_cmd("usage")); return CTL_OK;
		default: return bad_option("usage ", argc, argv, opt);
		}
	}
	if (optind < argc)
		return usage_err("usage ", "usage: unexpected argument '%s'", argv[optind]);
	for (k = 0; k < 3; k++) {
		if (q.f_name[k] && (strlen(q.f_name[k]) > 256 ||
		    record_seg_encode(q.f_name[k], q.f_seg[k], sizeof(q.f_seg[k])) < 0))
			return usage_err("usage ", "usage: --%s is too long", by_kind[k]);
	}
	if (until ? record_day_parse(until, q.until) < 0 : record_day(now_ms, q.until) < 0)
		return usage_err("usage ", "usage: invalid --until '%s' (YYYY-MM-DD)",
		                 until ? until : "today");
	if (since ? record_day_parse(since, q.since) < 0
	          : record_day(now_ms - (int64_t)CTL_USAGE_DAYS * 86400000, q.since) < 0)
		return usage_err("usage ", "usage: invalid --since '%s' (YYYY-MM-DD)",
		                 since ? since : "30 days ago");
	if (strcmp(q.since, q.until) > 0)
		return usage_err("usage ", "usage: --since is after --until");
	if (!ctl_redis(c))
		return CTL_ERR;

	rc = usage_collect(c, &q);
	if (rc == CTL_OK) {
		for (k = 0; k < 3; k++)
			if (q.by[k].n)      /* b is NULL when empty */
				qsort(q.by[k].b, q.by[k].n, sizeof(*q.by[k].b), bucket_cmp);
		if (json)
			usage_print_json(&q);
		else
			usage_print_table(&q);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			errmsg("cannot write to stdout");
			rc = CTL_ERR;
		}
	}
	for (k = 0; k < 3; k++)
		ugroup_free(&q.by[k]);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* render-haproxy                                                         */
/* ---------------------------------------------------------------------- */

/* Writes through a temporary file and renames it, so HAProxy never reads a
 * half-written file. path "-" is stdout. A path that exists and is not a
 * regular file (/dev/null, a FIFO) is written to in place: renaming over
 * it would put a regular file where the device was. */
static int render_to(const char *path, int (*fn)(const struct realms_config *, FILE *),
                     const struct realms_config *cfg)
{
	char tmp[4096];
	struct stat st;
	FILE *f;
	int rc;

	if (strcmp(path, "-") == 0)
		return fn(cfg, stdout) < 0 || fflush(stdout) ? -1 : 0;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		f = fopen(path, "w");
		if (!f) {
			errmsg("%s: %s", path, strerror(errno));
			return -1;
		}
		rc = fn(cfg, f);
		if (fclose(f) != 0 || rc < 0) {
			errmsg("%s: cannot write", path);
			return -1;
		}
		return 0;
	}
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
	{
		"usage", cmd_usage,
		"usage [--token NAME] [--model MODEL] [--channel NAME] [--since DAY] [--until DAY] [--json]",
		"show the usage and cost recorded by the agents",
		"USAGE\n"
		"    usage [--token NAME] [--model MODEL] [--channel NAME]\n"
		"          [--since YYYY-MM-DD] [--until YYYY-MM-DD] [--json]\n"
		"        Sum what the agents recorded from --since to --until, both\n"
		"        included (UTC days of the requests' start; default: 30 days\n"
		"        ago to today). One row for the total, then one per token,\n"
		"        per model and per channel, sorted by name: KIND NAME\n"
		"        REQUESTS ERRORS PARTIAL INPUT OUTPUT CACHE_W5M CACHE_W1H\n"
		"        CACHE_READ WEB_SEARCH COST_USD. ERRORS counts answers with\n"
		"        status 400 or more or cut short (PARTIAL). Token counts are\n"
		"        exact; COST_USD is rounded to the micro-dollar. An empty name\n"
		"        (a request without a token or channel) shows as (none).\n"
		"        --token, --model, --channel  count only requests with that\n"
		"                        name (exact match; they combine: --token a\n"
		"                        --model m is a's use of m). The breakdowns\n"
		"                        are narrowed the same way.\n"
		"        --since, --until  the range; a range without data prints\n"
		"                        zeros. --since after --until is an error.\n"
		"        --json          one JSON object, a stable format described\n"
		"                        in docs/redis.md: since, until, filters,\n"
		"                        total, by_token, by_model, by_channel; all\n"
		"                        counters are integers, the cost in nano-USD\n"
		"                        (cost_nusd).\n",
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

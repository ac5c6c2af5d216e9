/*
 * realmsctl: what the commands share (ctl.h): messages, option parsing,
 * the -c configuration, the Redis connection and its AUTH, reply helpers
 * and JSON output.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include <realms/config.h>
#include <realms/limits.h>
#include <realms/netaddr.h>

#include "ctl.h"

/* ---------------------------------------------------------------------- */
/* Messages and options                                                   */
/* ---------------------------------------------------------------------- */

void ctl_errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("realmsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A usage error: the message, a pointer to the help, status 2. */
int ctl_usage_err(const char *help_cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("realmsctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'realmsctl %s--help'.\n", help_cmd);
	return CTL_USAGE;
}

/* Sets up getopt for a new argv (glibc: optind 0 re-initialises). */
void ctl_getopt_reset(void)
{
	optind = 0;
	opterr = 0;
}

/* The usage error for what getopt_long just refused. */
int ctl_bad_option(const char *cmd, int argc, char **argv, int opt)
{
	const char *arg = optind - 1 < argc ? argv[optind - 1] : "?";

	if (opt == ':')
		return ctl_usage_err(cmd, "option '%s' needs a value", arg);
	if (optopt && optopt != '?')
		return ctl_usage_err(cmd, "unknown option '-%c'", optopt);
	return ctl_usage_err(cmd, "unknown option '%s'", arg);
}

/* ---------------------------------------------------------------------- */
/* Configuration and Redis                                                */
/* ---------------------------------------------------------------------- */

/* Loads the -c file once. Of its problems, it prints those about secrets
 * other users can read (a world-readable file with inline keys, say), and
 * all of them when the file is refused; the others are the agent's
 * business (realms-agent --check). Returns 0 (also when there is no -c) or
 * -1. */
int ctl_config(struct ctl *c)
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
		ctl_errmsg("%s: invalid configuration", c->config_path);
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
		ctl_errmsg("Redis at %s refused AUTH as user %s: %s", ep->address,
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
redisContext *ctl_redis(struct ctl *c)
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
		ctl_errmsg("cannot tell how to reach Redis (see above)");
		return NULL;
	}
	if (ep.addr.family == AF_UNIX)
		rc = redisConnectUnixWithTimeout(ep.addr.path, tv);
	else
		rc = redisConnectWithTimeout(ep.addr.host, ep.addr.port, tv);
	if (!rc) {
		ctl_errmsg("cannot connect to Redis at %s: out of memory", ep.address);
		goto out;
	}
	if (rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
		ctl_errmsg("cannot connect to Redis at %s: %s", ep.address,
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
redisReply *ctl_rcmd(struct ctl *c, const char *what, const char **argv)
{
	size_t len[CTL_MAX_ARGS];
	int argc = 0;
	redisReply *r;

	while (argv[argc]) {
		if (argc == CTL_MAX_ARGS) {
			ctl_errmsg("internal error: %s has too many arguments", what);
			return NULL;
		}
		len[argc] = strlen(argv[argc]);
		argc++;
	}
	r = redisCommandArgv(c->rc, argc, argv, len);
	if (!r) {
		ctl_errmsg("Redis (%s): %s", what, c->rc->errstr[0] ? c->rc->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		ctl_errmsg("Redis (%s): %s%s", what, r->str, strncmp(r->str, "NOAUTH", 6) == 0 ?
		           " (give its password: REALMS_REDIS_PASSWORD_FILE or the "
		           "configuration's redis.password)" : "");
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* Sends a command whose answer only matters as success. Returns 0 or -1. */
int ctl_rcmd_ok(struct ctl *c, const char *what, const char **argv)
{
	redisReply *r = ctl_rcmd(c, what, argv);

	if (!r)
		return -1;
	freeReplyObject(r);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Replies and output                                                     */
/* ---------------------------------------------------------------------- */

/* The field `f` of an HGETALL reply, or NULL. */
const char *ctl_hfield(const redisReply *r, const char *f)
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
void ctl_json_str(const char *s)
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

/*
 * record_push: commits spool lines (record_spool_encode() format) read from
 * stdin to Redis, in order, with blocking hiredis, the argv of
 * record_batch_argv() and the script of record_script(): exactly what the
 * agent's committer sends, for tests and for replaying a spool file by
 * hand.
 *
 *   record_push [-r ADDR] [-A] [-b N] [-n] < spool
 *   record_push -s < lines-without-crc > spool
 *
 *   -r ADDR  Redis: host:port, [v6]:port, unix:/path or /path (default:
 *            $REALMS_REDIS, else 127.0.0.1:6379).
 *   -A       no age check (max age 0): backfill old records. Without it,
 *            records older than RECORD_MAX_AGE_MS are refused by Redis.
 *   -b N     N lines per script call (1 to RECORD_BATCH_MAX; default 1):
 *            a Redis error then refuses the whole call.
 *   -n       connect to nothing; write each record's plain EVAL argv to
 *            stdout, every argument followed by a NUL, so that
 *            `record_push -n < one-line | xargs -0 redis-cli -p PORT` runs
 *            the same script through redis-cli.
 *
 * Prints one line per record: "recorded ID", "duplicate ID" or
 * "too-old ID"; a line that does not decode or a Redis error is reported
 * on stderr with its line number. Exit status: 0 every line committed (or
 * a duplicate, or too old), 1 a bad line or a Redis error, 2 usage error.
 * The script is loaded once (SCRIPT LOAD) and then run with EVALSHA,
 * falling back to EVAL on NOSCRIPT (after a SCRIPT FLUSH).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <realms/netaddr.h>
#include <realms/record.h>

#define PUSH_TIMEOUT_S 5

/* CRC-32 (IEEE), as record.c computes it for the spool line's last field
 * (kept private there: only this tool writes lines by other means). */
static unsigned long crc32_ieee(const char *p, size_t n)
{
	unsigned long c = 0xFFFFFFFFul;
	int k;

	while (n--) {
		c ^= (unsigned char)*p++;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xEDB88320ul : c >> 1;
	}
	return ~c & 0xFFFFFFFFul;
}

/* -s */
static int seal(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			n--;
		fwrite(line, 1, (size_t)n, stdout);
		printf("\t%08lx\n", crc32_ieee(line, (size_t)n));
	}
	free(line);
	return fflush(stdout) != 0 ? 1 : 0;
}

static redisContext *connect_to(const char *where)
{
	struct timeval tv = { .tv_sec = PUSH_TIMEOUT_S };
	struct netaddr a;
	char err[160];
	redisContext *rc;

	if (netaddr_parse(where, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "record_push: Redis address: %s\n", err);
		return NULL;
	}
	if (a.family == AF_UNIX)
		rc = redisConnectUnixWithTimeout(a.path, tv);
	else
		rc = redisConnectWithTimeout(a.host, a.port, tv);
	if (!rc || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
		fprintf(stderr, "record_push: cannot connect to %s: %s\n", where,
		        rc && rc->err ? rc->errstr : "out of memory");
		if (rc)
			redisFree(rc);
		return NULL;
	}
	return rc;
}

/* SCRIPT LOAD; the SHA into sha (41 bytes). Returns 0 or -1. */
static int load_script(redisContext *rc, char sha[41])
{
	size_t len;
	const char *s = record_script(&len);
	const char *argv[3] = { "SCRIPT", "LOAD", s };
	size_t argvlen[3] = { 6, 4, len };
	redisReply *r = redisCommandArgv(rc, 3, argv, argvlen);
	int ok;

	if (!r) {
		fprintf(stderr, "record_push: SCRIPT LOAD: %s\n", rc->errstr);
		return -1;
	}
	ok = r->type == REDIS_REPLY_STRING && r->len == 40;
	if (ok)
		memcpy(sha, r->str, 41);
	else
		fprintf(stderr, "record_push: SCRIPT LOAD: %s\n",
		        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	freeReplyObject(r);
	return ok ? 0 : -1;
}

/* Commits recs[0..n) in one script call (record_batch_argv()). Writes each
 * one's RECORD_RC_* into res[]. Returns 0, or -1 after printing the error
 * (nothing was counted). */
static int commit(redisContext *rc, const char *sha, const struct usage_record *recs, int n,
                  int64_t max_age, unsigned long lineno, int res[])
{
	static struct record_batch b;
	redisReply *r;
	int attempt, i, ok, add;

	record_batch_init(&b);
	for (i = 0; i < n; i++) {
		add = record_batch_add(&b, &recs[i], max_age, 0);
		if (add > 0 && i > 0)   /* full: these first, the rest in the next call */
			return commit(rc, sha, recs, i, max_age, lineno - (unsigned long)(n - i), res) < 0 ?
			       -1 : commit(rc, sha, recs + i, n - i, max_age, lineno, res + i);
		if (add != 0) {
			fprintf(stderr, "record_push: line %lu: cannot build the call\n",
			        lineno - (unsigned long)(n - 1 - i));
			return -1;
		}
	}
	for (attempt = 0; attempt < 2; attempt++) {
		if (record_batch_argv(&b, attempt == 0 ? sha : NULL) < 0)
			return -1;
		r = redisCommandArgv(rc, b.argc, b.argv, b.argvlen);
		if (!r) {
			fprintf(stderr, "record_push: line %lu: %s\n", lineno, rc->errstr);
			return -1;
		}
		if (r->type == REDIS_REPLY_ERROR && attempt == 0 &&
		    strncmp(r->str, "NOSCRIPT", 8) == 0) {
			freeReplyObject(r);
			continue;       /* flushed since SCRIPT LOAD: send the text */
		}
		ok = r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)n;
		for (i = 0; ok && i < n; i++) {
			const redisReply *e = r->element[i];

			ok = e->type == REDIS_REPLY_INTEGER && e->integer >= RECORD_RC_TOO_OLD &&
			     e->integer <= RECORD_RC_RECORDED;
			if (ok)
				res[i] = (int)e->integer;
		}
		if (!ok)
			fprintf(stderr, "record_push: line %lu: %s\n", lineno,
			        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		freeReplyObject(r);
		return ok ? 0 : -1;
	}
	return -1;
}

/* -n: the EVAL argv, NUL after each argument. */
static int print_argv(const struct usage_record *rec, int64_t max_age)
{
	static struct rargv a;
	int i;

	if (record_redis_argv(rec, NULL, max_age, 0, &a) < 0)
		return -1;
	for (i = 0; i < a.argc; i++) {
		fwrite(a.argv[i], 1, a.argvlen[i], stdout);
		fputc('\0', stdout);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "too-old", "duplicate", "recorded" };
	const char *where = getenv("REALMS_REDIS");
	bool dry = false;
	int64_t max_age = RECORD_MAX_AGE_MS;
	redisContext *rc = NULL;
	static struct usage_record recs[RECORD_BATCH_MAX];
	int res[RECORD_BATCH_MAX], nb = 0, batch = 1;
	char sha[41], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int opt, status = 0;

	while ((opt = getopt(argc, argv, "r:Ab:ns")) != -1) {
		switch (opt) {
		case 'r': where = optarg; break;
		case 'b':
			batch = atoi(optarg);
			if (batch < 1 || batch > RECORD_BATCH_MAX) {
				fprintf(stderr, "record_push: -b takes 1 to %d\n", RECORD_BATCH_MAX);
				return 2;
			}
			break;
		case 'A': max_age = 0; break;
		case 'n': dry = true; break;
		case 's': return optind < argc ? 2 : seal();
		default:
			fprintf(stderr, "usage: record_push [-r ADDR] [-A] [-b N] [-n] < spool\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "usage: record_push [-r ADDR] [-A] [-b N] [-n] < spool\n");
		return 2;
	}
	if (!where || !*where)
		where = "127.0.0.1:6379";
	if (!dry) {
		rc = connect_to(where);
		if (!rc || load_script(rc, sha) < 0) {
			if (rc)
				redisFree(rc);
			return 1;
		}
	}

	while ((n = getline(&line, &cap, stdin)) > 0 || nb > 0) {
		if (n > 0) {
			lineno++;
			if (record_spool_decode(line, (size_t)n, &recs[nb]) < 0) {
				fprintf(stderr, "record_push: line %lu: not a valid spool line\n",
				        lineno);
				status = 1;
				continue;
			}
			if (dry) {
				if (print_argv(&recs[nb], max_age) < 0)
					status = 1;
				continue;
			}
			if (++nb < batch)
				continue;
		}
		if (commit(rc, sha, recs, nb, max_age, lineno, res) < 0) {
			status = 1;
			nb = 0;
			if (rc->err)
				break;          /* the connection is gone: stop */
			continue;
		}
		for (int i = 0; i < nb; i++)
			printf("%s %s\n", names[res[i] + 1], recs[i].req_id);
		nb = 0;
		if (n <= 0)
			break;
	}
	free(line);
	if (rc)
		redisFree(rc);
	if (fflush(stdout) != 0)
		status = 1;
	return status;
}

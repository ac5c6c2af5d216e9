/*
 * Usage records: priced, then committed to Redis exactly once, or spooled.
 *
 * Redis: each worker has its own async client ("records"); the record
 * script is loaded with SCRIPT LOAD on connect and called with EVALSHA (EVAL
 * when the SHA is not known yet or Redis lost its script cache). The script
 * itself refuses a request id it has already counted, so a record sent twice
 * (a shim resend after an agent restart, a spool replay) counts once.
 *
 * Spool: one append-only file per agent (flock'ed, so two agents cannot
 * share it). A record goes there when Redis cannot take it, and also while
 * the file still holds records waiting to be replayed, so that records
 * reach Redis in the order they ended. Each append is followed by
 * fdatasync(): a record acknowledged to the shim survives a crash of the
 * agent or of the machine. Appends only happen while Redis is unreachable,
 * so their cost is paid during outages only. Worker 0 replays the file
 * line by line, in order, once Redis answers again, and empties it at the
 * end.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include <realms/billing.h>
#include <realms/clock.h>
#include <realms/commit.h>
#include <realms/config.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/rdb.h>
#include <realms/record.h>
#include <realms/state.h>
#include <realms/umetrics.h>
#include <realms/usage.h>
#include <realms/worker.h>

#define SPOOL_FILE            "usage.spool"

/* ---------------------------------------------------------------------- */
/* Spool (process-wide)                                                   */
/* ---------------------------------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	int fd;
	char path[4096];
	off_t size;            /* bytes in the file */
	off_t replayed;        /* bytes already committed by the replayer */
	int replaying;         /* a replay command is in flight */
	unsigned long long appended, replayed_n, rejected;
} spool = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

static int spool_open(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -1;
	snprintf(spool.path, sizeof(spool.path), "%s/%s", dir, SPOOL_FILE);
	spool.fd = open(spool.path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (spool.fd < 0)
		return -1;
	if (flock(spool.fd, LOCK_EX | LOCK_NB) < 0) {
		rlog(LOG_LVL_ERR, "spool %s is in use by another agent", spool.path);
		close(spool.fd);
		spool.fd = -1;
		return -1;
	}
	if (fstat(spool.fd, &st) == 0)
		spool.size = st.st_size;
	if (spool.size)
		rlog(LOG_LVL_INFO, "spool %s holds %lld bytes of usage records to replay",
		     spool.path, (long long)spool.size);
	return 0;
}

/* Whether records must queue behind the spool. */
static int spool_pending(void)
{
	int p;

	pthread_mutex_lock(&spool.lock);
	p = spool.size > 0;
	pthread_mutex_unlock(&spool.lock);
	return p;
}

/* Appends one record durably. Returns 0 or -1. */
static int spool_append(const struct usage_record *rec)
{
	char line[RECORD_SPOOL_LINE_MAX];
	int n = record_spool_encode(rec, line, sizeof(line));
	ssize_t w;
	int rc = -1;

	if (n < 0) {
		rlog(LOG_LVL_ERR, "usage record %s cannot be encoded; not spooled", rec->req_id);
		return -1;
	}
	pthread_mutex_lock(&spool.lock);
	if (spool.fd >= 0) {
		w = write(spool.fd, line, (size_t)n);
		if (w == n && fdatasync(spool.fd) == 0) {
			spool.size += n;
			spool.appended++;
			rc = 0;
		} else if (w > 0) {
			/* Never leave half a line: the replayer would refuse it. */
			if (ftruncate(spool.fd, spool.size) < 0)
				rlog(LOG_LVL_ERR, "spool: cannot undo a short write: %s", strerror(errno));
		}
	}
	pthread_mutex_unlock(&spool.lock);
	if (rc < 0)
		rlog(LOG_LVL_ERR, "spool %s: cannot append usage record %s: %s",
		     spool.path, rec->req_id, strerror(errno));
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Per-worker Redis client                                                */
/* ---------------------------------------------------------------------- */

/* One record to commit. */
struct commit {
	struct commit *next;     /* in its worker's queue */
	struct usage_record rec;
	commit_done_fn done;     /* NULL for a spool replay */
	void *arg;
	size_t line_len;         /* replay: the spool line's length */
};

struct rec_worker {
	struct worker *w;
	struct rdb *rdb;
	char sha[41];            /* "" until SCRIPT LOAD answered */
	ev_timer replay;
	/* Records wait here while a batch is in flight (one call at a time),
	 * and for at most agent.record_wait_ms after the last call left, so
	 * that under load they reach Redis many per script run, and alone,
	 * with no wait, when it is idle. */
	struct commit *head, *tail;
	int queued;              /* records from head to tail */
	int busy;                /* a batch is in flight */
	int closing;
	uint64_t sent_ms;        /* when the last live batch left (clock_mono_ms) */
	ev_timer wait;           /* sends the queue when its wait is over */
	struct record_batch *batch;
};

/* One script call in flight: its records, in order. */
struct call {
	struct rec_worker *rw;
	int n;
	int tried_eval;
	struct commit *c[RECORD_BATCH_MAX];
};

static int rec_module = -1;

static void on_script_loaded(struct rdb *r, redisReply *rep, void *arg)
{
	struct rec_worker *rw = arg;

	if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40)
		memcpy(rw->sha, rep->str, 41);
}

static void on_commit_connect(struct rdb *r, void *arg)
{
	struct rec_worker *rw = arg;
	size_t len;
	const char *script = record_script(&len);

	rw->sha[0] = '\0';
	rdb_command(r, on_script_loaded, rw, "SCRIPT LOAD %b", script, len);
}

static void replay_next(struct rec_worker *rw);
static int send_call(struct call *k);
static void send_queued(struct rec_worker *rw);

/* The usage metrics count a record when Redis counted it, and only then:
 * not a duplicate, not a refusal, not a spool append (its replay counts). */
static void count_recorded(const struct commit *c)
{
	struct realms_config *cfg = state_config();

	umetrics_count(cfg, &c->rec);
	config_unref(cfg);
}

static void commit_end(struct commit *c, int ok)
{
	if (c->done)
		c->done(c->arg, ok);
	free(c);
}

/* A live record Redis did not take: the spool keeps it. */
static void commit_spool(struct commit *c)
{
	commit_end(c, spool_append(&c->rec) == 0);
}

/* A spool replay's answer: rc is RECORD_RC_* when Redis took the line. */
static void replay_done(struct rec_worker *rw, struct commit *c, int took)
{
	pthread_mutex_lock(&spool.lock);
	spool.replaying = 0;
	if (took) {
		spool.replayed += (off_t)c->line_len;
		spool.replayed_n++;
	}
	pthread_mutex_unlock(&spool.lock);
	free(c);
	if (took && !rw->closing)
		replay_next(rw);
}

/* Whether rep is the script's answer for n records: n integers. */
static int script_answer(const redisReply *rep, int n)
{
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)n)
		return 0;
	for (int i = 0; i < n; i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER)
			return 0;
	return 1;
}

/* The configuration's UTC offset, which windows a record settles in. */
static int config_tz_min(void)
{
	struct realms_config *cfg = state_config();
	int tz_min = cfg ? cfg->tz_min : 0;

	config_unref(cfg);
	return tz_min;
}

static void on_call_reply(struct rdb *r, redisReply *rep, void *arg)
{
	struct call *k = arg;
	struct rec_worker *rw = k->rw;
	int live = k->n > 0 && k->c[0]->done;
	int i;

	if (rep && rep->type == REDIS_REPLY_ERROR && !k->tried_eval &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		/* Redis restarted or flushed its scripts: EVAL once, reload. */
		k->tried_eval = 1;
		rw->sha[0] = '\0';
		on_commit_connect(r, rw);
		if (send_call(k) == 0)
			return;
		rep = NULL;
	}
	if (script_answer(rep, k->n)) {
		for (i = 0; i < k->n; i++) {
			const redisReply *e = rep->element[i];
			struct commit *c = k->c[i];

			if (e->integer == RECORD_RC_RECORDED)
				count_recorded(c);
			else if (e->integer == RECORD_RC_TOO_OLD)
				rlog(LOG_LVL_WARN, "usage record %s is older than Redis keeps "
				     "idempotency marks; not counted", c->rec.req_id);
		}
		for (i = 0; i < k->n; i++) {
			if (live)
				commit_end(k->c[i], 1);
			else
				replay_done(rw, k->c[i], 1);
		}
		goto next;
	}
	/* Nothing changed in Redis for any of them. */
	for (i = 0; i < k->n; i++) {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			rlog(LOG_LVL_ERR, "usage record %s: Redis error: %s",
			     k->c[i]->rec.req_id, rep->str);
		if (live)
			commit_spool(k->c[i]);
		else
			replay_done(rw, k->c[i], 0);
	}
next:
	free(k);
	if (live) {
		rw->busy = 0;
		send_queued(rw);
	}
}

/* Sends k's records as one script call: a live batch is the one built in
 * rw->batch (untouched while it is in flight), a replay is one record.
 * Returns 0, or -1 (nothing sent). */
static int send_call(struct call *k)
{
	static _Thread_local struct rargv one;
	struct rec_worker *rw = k->rw;
	const char *sha = k->tried_eval || !rw->sha[0] ? NULL : rw->sha;

	if (k->c[0]->done) {
		if (record_batch_argv(rw->batch, sha) < 0)
			return -1;
		return rdb_command_argv(rw->rdb, on_call_reply, k, rw->batch->argc,
		                        rw->batch->argv, rw->batch->argvlen);
	}
	if (record_redis_argv(&k->c[0]->rec, sha, RECORD_MAX_AGE_MS, config_tz_min(), &one) < 0)
		return -1;
	return rdb_command_argv(rw->rdb, on_call_reply, k, one.argc, one.argv, one.argvlen);
}

/* The queue, every record of it, to the spool, in order. */
static void spool_queued(struct rec_worker *rw)
{
	struct commit *c;

	while ((c = rw->head)) {
		rw->head = c->next;
		commit_spool(c);
	}
	rw->tail = NULL;
	rw->queued = 0;
}

/* Whether the queue waits wait_ms (agent.record_wait_ms) for more records
 * to share its call: until the last call left that long ago, unless it
 * holds a batch's RECORD_BATCH_MAX records (records large enough to fill a
 * batch's buffer first wait like the others, no longer than the wait). The
 * timer then sends it; one already running keeps its deadline across a
 * reload. Timed on the monotonic clock: a step of the wall clock must not
 * hold records (libev's ev_now() follows it). */
static int queue_waits(struct rec_worker *rw, int wait_ms)
{
	struct ev_loop *loop = worker_loop(rw->w);
	uint64_t now, until;

	if (wait_ms <= 0 || rw->queued >= RECORD_BATCH_MAX)
		return 0;
	now = clock_mono_ms();
	until = rw->sent_ms + (uint64_t)wait_ms;
	if (now >= until)
		return 0;
	if (!ev_is_active(&rw->wait)) {
		ev_timer_set(&rw->wait, (until - now) / 1000.0, 0.);
		ev_timer_start(loop, &rw->wait);
	}
	return 1;
}

/* Sends the queued records, as many as one batch takes, unless a batch is
 * in flight or the queue waits for more. With Redis gone, or older records
 * waiting in the spool, they go to the spool instead, in order. */
static void send_queued(struct rec_worker *rw)
{
	struct realms_config *cfg;
	struct call *k;
	struct commit *c;
	int tz_min, wait_ms, r;

	while (!rw->busy && !rw->closing && rw->head) {
		if (spool_pending() || !rdb_up(rw->rdb)) {
			spool_queued(rw);
			return;
		}
		/* the configuration in force: the batch's windows, the wait */
		cfg = state_config();
		tz_min = cfg ? cfg->tz_min : 0;
		wait_ms = cfg ? cfg->agent.record_wait_ms : 0;
		config_unref(cfg);
		if (queue_waits(rw, wait_ms))
			return;
		if (!(k = calloc(1, sizeof(*k)))) {
			spool_queued(rw);
			return;
		}
		k->rw = rw;
		record_batch_init(rw->batch);
		while ((c = rw->head) && k->n < RECORD_BATCH_MAX) {
			r = record_batch_add(rw->batch, &c->rec, RECORD_MAX_AGE_MS, tz_min);
			if (r > 0)
				break;
			rw->head = c->next;
			c->next = NULL;
			rw->queued--;
			if (r < 0)
				commit_spool(c);   /* validated when queued: cannot happen */
			else
				k->c[k->n++] = c;
		}
		if (!rw->head)
			rw->tail = NULL;
		if (k->n > 0 && send_call(k) == 0) {
			rw->busy = 1;
			rw->sent_ms = clock_mono_ms();
			if (ev_is_active(&rw->wait))
				ev_timer_stop(worker_loop(rw->w), &rw->wait);
			return;
		}
		for (int i = 0; i < k->n; i++)
			commit_spool(k->c[i]);
		free(k);
	}
}

/* ---------------------------------------------------------------------- */
/* Replay (worker 0)                                                      */
/* ---------------------------------------------------------------------- */

/* Reads the next line at the replay offset and commits it; empties the file
 * when everything was replayed. */
static void replay_next(struct rec_worker *rw)
{
	char line[RECORD_SPOOL_LINE_MAX];
	struct commit *c;
	struct call *k;
	ssize_t n;
	char *nl;

	for (;;) {
		pthread_mutex_lock(&spool.lock);
		if (spool.replaying || spool.fd < 0 || !rdb_up(rw->rdb)) {
			pthread_mutex_unlock(&spool.lock);
			return;
		}
		if (spool.replayed >= spool.size) {
			if (spool.size) {
				if (ftruncate(spool.fd, 0) == 0) {
					rlog(LOG_LVL_INFO, "spool replayed: %llu records",
					     spool.replayed_n);
					spool.size = spool.replayed = 0;
				}
			}
			pthread_mutex_unlock(&spool.lock);
			return;
		}
		n = pread(spool.fd, line, sizeof(line) - 1, spool.replayed);
		if (n <= 0) {
			pthread_mutex_unlock(&spool.lock);
			return;
		}
		line[n] = '\0';
		nl = memchr(line, '\n', (size_t)n);
		c = calloc(1, sizeof(*c));
		if (!nl || !c || record_spool_decode(line, (size_t)(nl - line), &c->rec) < 0) {
			/* A line we cannot read is skipped, loudly: it would block
			 * every record behind it forever. */
			size_t skip = nl ? (size_t)(nl - line) + 1 : (size_t)n;

			rlog(LOG_LVL_ERR, "spool %s: unreadable line at offset %lld skipped",
			     spool.path, (long long)spool.replayed);
			spool.replayed += (off_t)skip;
			spool.rejected++;
			pthread_mutex_unlock(&spool.lock);
			free(c);
			continue;
		}
		c->line_len = (size_t)(nl - line) + 1;
		spool.replaying = 1;
		pthread_mutex_unlock(&spool.lock);
		k = calloc(1, sizeof(*k));
		if (k) {
			k->rw = rw;
			k->n = 1;
			k->c[0] = c;
		}
		if (!k || send_call(k) < 0) {
			pthread_mutex_lock(&spool.lock);
			spool.replaying = 0;
			pthread_mutex_unlock(&spool.lock);
			free(c);
			free(k);
		}
		return;
	}
}

static void replay_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	replay_next(t->data);
}

static void wait_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	send_queued(t->data);
}

static void *rec_worker_init(struct worker *w, struct ev_loop *loop)
{
	struct rec_worker *rw = calloc(1, sizeof(*rw));
	struct realms_config *cfg = state_config();

	if (!rw || !cfg || !(rw->batch = malloc(sizeof(*rw->batch)))) {
		free(rw);
		config_unref(cfg);
		return NULL;
	}
	rw->w = w;
	rw->rdb = rdb_new(loop, state_redis(cfg), "records", on_commit_connect, rw);
	config_unref(cfg);
	ev_timer_init(&rw->wait, wait_cb, 0., 0.);
	rw->wait.data = rw;
	if (worker_id(w) == 0) {
		ev_timer_init(&rw->replay, replay_cb, SPOOL_REPLAY_EVERY_S, SPOOL_REPLAY_EVERY_S);
		rw->replay.data = rw;
		ev_timer_start(loop, &rw->replay);
	}
	return rw;
}

static void rec_worker_fini(struct worker *w, void *ctx)
{
	struct rec_worker *rw = ctx;

	if (!rw)
		return;
	if (ev_is_active(&rw->replay))
		ev_timer_stop(worker_loop(w), &rw->replay);
	if (ev_is_active(&rw->wait))
		ev_timer_stop(worker_loop(w), &rw->wait);
	/* Commits in flight are answered NULL: they go to the spool, and so
	 * do the ones queued behind them. */
	rw->closing = 1;
	rdb_free(rw->rdb);
	spool_queued(rw);
	free(rw->batch);
	free(rw);
}

static const struct worker_module rec_worker_module = {
	.name = "records",
	.init = rec_worker_init,
	.fini = rec_worker_fini,
};

int commit_init(const char *spool_dir)
{
	if (spool_open(spool_dir) < 0) {
		rlog(LOG_LVL_ERR, "cannot open the usage spool in %s: %s", spool_dir,
		     strerror(errno));
		return -1;
	}
	rec_module = worker_module_register(&rec_worker_module);
	return rec_module < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Commit                                                                 */
/* ---------------------------------------------------------------------- */

/* Answers whose upstream said it used another model than the one asked
 * for (and billed), and when one was last logged. */
static _Atomic unsigned long long mismatches;
static _Atomic uint64_t mismatch_logged_ms;

/* The model billed is the one decided; an upstream that says it served
 * another is counted and logged (at most one line per
 * RECORDS_MISMATCH_LOG_MS), never believed. */
static void check_model(const struct usage_record *rec)
{
	uint64_t now, last;
	unsigned long long n;

	if (usage_model_matches(rec->upstream_model, rec->u.reported_model))
		return;
	n = atomic_fetch_add(&mismatches, 1) + 1;
	now = clock_mono_ms();
	last = atomic_load(&mismatch_logged_ms);
	if ((last && now - last < RECORDS_MISMATCH_LOG_MS) ||
	    !atomic_compare_exchange_strong(&mismatch_logged_ms, &last, now))
		return;
	rlog(LOG_LVL_WARN, "usage record %s: channel %s was asked for %s and says it used %s; "
	     "billed as %s (%llu such answers so far)", rec->req_id, rec->channel,
	     rec->upstream_model, rec->u.reported_model, rec->model, n);
}

/* Fills what the configuration knows: channel, upstream model, cost. */
static void price_record(struct usage_record *rec)
{
	struct realms_config *cfg = state_config();
	const struct cfg_cred *cred;
	const struct cfg_binding *b;

	if (!cfg)
		return;
	cred = config_cred_by_server(cfg, rec->server, strlen(rec->server));
	if (cred) {
		snprintf(rec->channel, sizeof(rec->channel), "%s", cred->channel->name);
		b = cfg_channel_binding(cred->channel, rec->model, strlen(rec->model));
		snprintf(rec->upstream_model, sizeof(rec->upstream_model), "%.*s",
		         b && b->upstream ? (int)b->upstream_len : (int)strlen(rec->model),
		         b && b->upstream ? b->upstream : rec->model);
	}
	rec->cost_nusd = billing_cost_nusd(config_price(cfg, rec->model, strlen(rec->model)),
	                                   &rec->u);
	config_unref(cfg);
	if (cred)
		check_model(rec);
}

void commit_record(struct worker *w, const struct usage_record *rec,
                   commit_done_fn done, void *arg)
{
	struct rec_worker *rw = worker_module_ctx(w, rec_module);
	struct commit *c = calloc(1, sizeof(*c));
	const char *why;

	if (!c) {
		done(arg, 0);
		return;
	}
	c->rec = *rec;
	c->done = done;
	c->arg = arg;
	price_record(&c->rec);
	if (record_validate(&c->rec, &why) < 0) {
		/* Never acknowledge what cannot be kept; but a record that can
		 * never be valid must not come back forever either. */
		rlog(LOG_LVL_ERR, "usage record %s refused: %s", c->rec.req_id, why);
		commit_end(c, 1);
		return;
	}
	if (!rw) {
		commit_spool(c);
		return;
	}
	if (rw->tail)
		rw->tail->next = c;
	else
		rw->head = c;
	rw->tail = c;
	rw->queued++;
	send_queued(rw);
}

void commit_stats_get(struct commit_stats *o)
{
	pthread_mutex_lock(&spool.lock);
	o->appended = spool.appended;
	o->replayed = spool.replayed_n;
	o->rejected = spool.rejected;
	o->spool_bytes = (long long)(spool.size - spool.replayed);
	pthread_mutex_unlock(&spool.lock);
	o->model_mismatch = atomic_load(&mismatches);
}

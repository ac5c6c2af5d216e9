/*
 * Committing usage records: priced, then written to Redis exactly once per
 * request id, or to the on-disk spool while Redis cannot take them (and
 * replayed from it, in order, when it can).
 */
#ifndef REALMS_COMMIT_H
#define REALMS_COMMIT_H

#include <realms/usage-t.h>

struct worker;

/* Called once, on the worker's thread: ok is 1 when the record is durable
 * (committed, already committed, or spooled), 0 when it could not be kept
 * anywhere (the caller must not acknowledge it). */
typedef void (*commit_done_fn)(void *arg, int ok);

/* Prices rec (cost_nusd, channel, upstream model from the configuration in
 * force) and commits it. The record is copied. */
void commit_record(struct worker *w, const struct usage_record *rec,
                   commit_done_fn done, void *arg);

/* Registers the per-worker module (Redis client, replay). Before workers
 * start. spool_dir: where the spool file lives. */
int commit_init(const char *spool_dir);

/* Spool counters, for metrics. */
struct commit_stats {
	unsigned long long appended;    /* records written to the spool */
	unsigned long long replayed;    /* records replayed from it */
	unsigned long long rejected;    /* unreadable lines skipped */
	long long spool_bytes;          /* bytes waiting in it */
	unsigned long long model_mismatch;  /* answers naming another model than
	                                       the one billed */
};
void commit_stats_get(struct commit_stats *out);

#endif /* REALMS_COMMIT_H */

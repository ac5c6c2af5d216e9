/*
 * The response mirror: the agent's end of lua-shim's realms-tap.
 *
 * Frames (text header line, then exactly n payload bytes):
 *     "B <rid> <n>\n" meta lines "key=value\n"   response begins
 *     "D <rid> <n>\n" body bytes                  (any number)
 *     "G <rid> <n>\n" meta "skipped=<bytes>\n"    body bytes left out here
 *     "E <rid> <n>\n" meta lines                  response ended
 *     "S <seq>\n"                                 sync
 * Answers: "A <rid>\n" once the request's record is durable (Redis or the
 * spool), "S <seq>\n" echoing a sync after the acknowledgements written so
 * far. A connection that breaks the framing is closed (the shim resends
 * everything unacknowledged on its next connection).
 */
#ifndef REALMS_MIRROR_H
#define REALMS_MIRROR_H

#include <realms/usage-t.h>

/* Registers the per-worker module and the mirror connection kind with the
 * worker layer (before workers start). Returns 0/-1. */
int mirror_init(void);

/* Counters for metrics. */
struct mirror_stats {
	unsigned long long conns;
	unsigned long long requests;      /* E frames processed */
	unsigned long long bytes;         /* body bytes seen */
	unsigned long long acked;
	unsigned long long proto_errors;
	unsigned long long outcomes;     /* attempt results fed to the breakers */
	unsigned long long gaps;         /* G frames: streams sent head + tail */
	unsigned long long skipped;      /* body bytes the tap left out */
	unsigned long long partial[USAGE_PARTIAL_KINDS];    /* records, by reason */
};
void mirror_stats_get(struct mirror_stats *out);

#endif /* REALMS_MIRROR_H */

/*
 * The response mirror: the agent's end of lua-shim's tap (B, D, G, E
 * frames for billing, X releases) and outcome (O frames for the credential
 * breakers). The wire format, normative, is in realms/mframe.h; mirror.c
 * serves it on the worker threads.
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
	unsigned long long releases;     /* requests ended without an answer */
	unsigned long long gaps;         /* G frames: streams sent head + tail */
	unsigned long long skipped;      /* body bytes the tap left out */
	unsigned long long partial[USAGE_PARTIAL_KINDS];    /* records, by reason */
	unsigned long long estimated;   /* records whose counts are partly the
	                                   gateway's estimate */
};
void mirror_stats_get(struct mirror_stats *out);

#endif /* REALMS_MIRROR_H */

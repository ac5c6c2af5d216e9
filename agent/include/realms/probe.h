/*
 * The key prober: a thread that asks the provider, with one credential's
 * key alone, whether it accepts that key (GET <base_url>/v1/models). It
 * runs the probes health.c says are due: after a request got 401 (is the
 * key refused, or was the request odd?), and every cooldown while a key is
 * revoked. Only this evidence takes a key out of service. I/O: libcurl,
 * blocking, on its own thread.
 */
#ifndef REALMS_PROBE_H
#define REALMS_PROBE_H

#include <stdint.h>

/* Starts the thread and hooks it to health.c. Returns 0 or -1. */
int probe_start(void);

/* Stops it (waits for a probe in flight, at most PROBE_TIMEOUT_S). */
void probe_stop(void);

struct probe_stats {
	uint64_t ok;             /* 2xx: the key works */
	uint64_t refused;        /* 401: the key is refused */
	uint64_t inconclusive;   /* anything else, or no answer */
};
void probe_stats_get(struct probe_stats *s);

#endif /* REALMS_PROBE_H */

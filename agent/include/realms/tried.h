/*
 * Which credentials each request in flight has tried: the memory that lets
 * the agent choose the credential of every attempt, retries included.
 *
 * HAProxy retries a failed attempt by sending the same bytes to the relay
 * again; the relay asks the agent (realms-attempt) which credential this
 * attempt uses. The request id is the only thing that ties the attempts of
 * one request together, so the agent remembers, per request id, the
 * credentials already used, and a retry goes to one not yet tried.
 *
 * A fixed table shared by the worker threads under one mutex (a retry's
 * attempt may reach another worker than the first one). Entries expire;
 * when the probe window is full the oldest entry is replaced, so the table
 * never grows. A forgotten request only loses its exclusions: its next
 * attempt is treated as a first one. Time is passed in.
 */
#ifndef REALMS_TRIED_H
#define REALMS_TRIED_H

#include <stddef.h>
#include <stdint.h>

#include <realms/limits.h>

struct tried {
	size_t n;                       /* credentials tried, oldest first */
	int cred[TRIED_MAX_PER_REQ];    /* their ids in the configuration */
	uint64_t generation;            /* the configuration they index */
};

/* Copies what request `rid` (len bytes) has tried into *out (n = 0 when
 * nothing, or when the entry expired at now_ms). */
void tried_get(const char *rid, size_t len, uint64_t now_ms, struct tried *out);

/* Adds credential `cred` of configuration `generation` to what `rid` has
 * tried, the entry living until now_ms + ttl_ms. A new generation starts
 * the list over (ids of an older configuration mean nothing). Once
 * TRIED_MAX_PER_REQ are kept, the oldest is dropped. */
void tried_add(const char *rid, size_t len, int cred, uint64_t generation,
               uint64_t now_ms, uint64_t ttl_ms);

/* Whether cred is in *t. */
int tried_has(const struct tried *t, int cred);

/* Forgets everything (tests). */
void tried_clear(void);

#endif /* REALMS_TRIED_H */

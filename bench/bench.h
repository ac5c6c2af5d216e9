/*
 * What the load generators share (each bench/ C file is one executable): the
 * clocks, latency samples and their percentiles, and number arguments.
 * Header-only, so that each generator stays one file to build.
 */
#ifndef REALMS_BENCH_H
#define REALMS_BENCH_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

/* Samples kept per series at the most (the rest only count in `max`). */
#define BENCH_MAX_SAMPLES     (32u * 1024u * 1024u)

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This process's CPU time so far, user and system. */
static inline double bench_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Durations in ns, one per event. */
struct bench_series {
	uint64_t *v;
	size_t n, size;
	uint64_t max;
};

static inline void bench_series_add(struct bench_series *s, uint64_t ns)
{
	if (ns > s->max)
		s->max = ns;
	if (s->n == s->size) {
		size_t sz = s->size ? s->size * 2 : 65536;
		uint64_t *p;

		if (sz > BENCH_MAX_SAMPLES || !(p = realloc(s->v, sz * sizeof(*p))))
			return;
		s->v = p;
		s->size = sz;
	}
	s->v[s->n++] = ns;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static inline void bench_series_sort(struct bench_series *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), bench_cmp_u64);
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static inline double bench_pct_us(const struct bench_series *s, double q)
{
	size_t i;

	if (!s->n)
		return 0;
	i = (size_t)(q * s->n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > s->n)
		i = s->n;
	return s->v[i - 1] / 1000.0;
}

/* A whole decimal number in [min, max]. Returns 0, or -1. */
static inline int bench_parse_ulong(const char *s, unsigned long long min,
                                    unsigned long long max, unsigned long long *out)
{
	char *e;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno || e == s || *e || v < min || v > max || *s == '-')
		return -1;
	*out = v;
	return 0;
}

/* A positive number up to max. Returns 0, or -1. */
static inline int bench_parse_pos(const char *s, double max, double *out)
{
	char *e;

	errno = 0;
	*out = strtod(s, &e);
	return errno || e == s || *e || !(*out > 0) || *out > max ? -1 : 0;
}

#endif /* REALMS_BENCH_H */

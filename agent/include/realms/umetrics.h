/*
 * Usage counters for Prometheus: what the committed usage records add up
 * to, by model and channel, by group, and (agent.metrics_tokens) by token.
 *
 * A record is counted when the commit script answers RECORD_RC_RECORDED,
 * the one time Redis counts it too: a duplicate or a replay that changes
 * nothing is not counted again, and a spool replay counts when it commits.
 * So, over the records this agent committed, the counters equal the Redis
 * day hashes (`realmsctl usage --json`), to the nano-dollar.
 *
 * Label values are bounded. A model outside the configuration's catalogue
 * (a pass-through) is "other", a channel or group the configuration does
 * not name is "other", an empty name is "(none)". Each table has a hard cap
 * (UMETRICS_*_MAX, limits.h); a record past it is counted under "other"
 * (one extra series per table) and in realms_usage_series_overflow_total.
 *
 * Threads: umetrics_count() runs on the workers, umetrics_render() on the
 * main loop. Slots are appended under a mutex and published with a release
 * store of the slot count; their labels never change afterwards, and their
 * counters are relaxed atomics, so counting takes no lock once a slot
 * exists.
 */
#ifndef REALMS_UMETRICS_H
#define REALMS_UMETRICS_H

#include <stdbool.h>
#include <stddef.h>

#include <realms/usage-t.h>

struct realms_config;

/* Counts one record just committed (RECORD_RC_RECORDED): cfg decides the
 * label values and whether tokens are tracked (cfg->agent.metrics_tokens);
 * NULL cfg: every name is "other" and no token is tracked. */
void umetrics_count(const struct realms_config *cfg, const struct usage_record *rec);

/* Appends the usage series in the Prometheus text format (HELP and TYPE
 * lines, then one line per series) to out[0..size). The per-token series
 * are written when tokens is true. Returns the bytes written, or -1 when
 * they do not fit (out's content is then undefined). */
int umetrics_render(char *out, size_t size, bool tokens);

/* Forgets every series (tests). Not safe while another thread counts. */
void umetrics_reset(void);

#endif /* REALMS_UMETRICS_H */

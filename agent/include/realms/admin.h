/*
 * The admin HTTP listener: GET /metrics (Prometheus text format) and
 * GET /healthz. Runs on the main thread's loop; answers are small and
 * built from counters the other modules keep.
 */
#ifndef REALMS_ADMIN_H
#define REALMS_ADMIN_H

struct ev_loop;
struct netaddr;

/* Opens the listener. Returns 0, or -1 (errno set). */
int admin_start(struct ev_loop *loop, const struct netaddr *addr);
/* Closes the listener. */
void admin_stop(struct ev_loop *loop);

#endif /* REALMS_ADMIN_H */

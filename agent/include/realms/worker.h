/*
 * Worker threads: each runs its own libev loop and owns the SPOP connections
 * handed to it. Only the worker's thread touches its loop and connections;
 * other threads talk to it through worker_add_fd() / worker_stop(), which
 * queue under a lock and wake the loop with ev_async_send().
 */
#ifndef REALMS_WORKER_H
#define REALMS_WORKER_H

#include <stdint.h>

struct ev_loop;

struct worker;

/* Per-worker hooks for modules that keep per-thread state (a Redis
 * connection, caches). init runs on the worker's thread before its loop
 * starts and returns the module's context; fini runs on the same thread
 * after the loop ends. Register before worker_start(). */
struct worker_module {
	const char *name;
	void *(*init)(struct worker *w, struct ev_loop *loop);
	void (*fini)(struct worker *w, void *ctx);
};
int worker_module_register(const struct worker_module *m);

/* Starts n workers accepting frames up to max_frame bytes. Returns 0 or -1. */
int worker_start_all(int n, uint32_t max_frame);

/* What an accepted socket speaks. */
enum worker_conn_kind {
	WORKER_CONN_SPOP = 0,     /* HAProxy's SPOE engine */
	WORKER_CONN_MIRROR,       /* lua-shim's response tap */
};

/* Hands an accepted, non-blocking socket to the next worker (round-robin).
 * Called from the acceptor thread. The worker owns the fd from then on. */
void worker_dispatch_fd(int fd, enum worker_conn_kind kind);

/* Asks every worker to finish the frames in flight, disconnect cleanly and
 * stop (bounded by SPOA_STOP_GRACE_S), then joins them. */
void worker_stop_all(void);

/* A module's context on this worker (index = registration order). */
void *worker_module_ctx(struct worker *w, int module);
int worker_id(const struct worker *w);
struct ev_loop *worker_loop(struct worker *w);

#endif /* REALMS_WORKER_H */

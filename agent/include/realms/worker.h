/*
 * Worker threads: each runs its own libev loop and owns the connections
 * handed to it. Only the worker's thread touches its loop and connections;
 * other threads talk to it through worker_dispatch_fd() and
 * worker_stop_all(), which queue under a lock and wake the loop with
 * ev_async_send(). The worker layer speaks no protocol: each kind of
 * connection registers the hooks that take its sockets over
 * (worker_kind_register).
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

/* Starts n workers. Register modules and kinds first. Returns 0 or -1. */
int worker_start_all(int n);

/* What an accepted socket speaks: the listener's tag, which picks the
 * kind's hooks. */
enum worker_conn_kind {
	WORKER_CONN_SPOP = 0,     /* HAProxy's SPOE engine (spoa_io.c) */
	WORKER_CONN_MIRROR,       /* lua-shim's response tap (mirror.c) */
	WORKER_CONN_KINDS
};

/* The owner of one kind of connection. Every hook runs on w's thread. */
struct worker_kind {
	const char *name;
	/* Takes over an accepted, non-blocking socket: the kind owns fd from
	 * now on, and closes it itself if it cannot take it. Required. A
	 * connection adopted while the worker is draining must drain too. */
	void (*adopt)(struct worker *w, int fd);
	/* The worker is stopping: finish what was read, then close. A
	 * connection the stop must wait for holds the worker (worker_hold)
	 * until it is gone. Optional. */
	void (*drain)(struct worker *w);
	/* The stop grace period is over: close every connection now.
	 * Optional. */
	void (*abort)(struct worker *w);
};

/* Registers k (not copied) for sockets of this kind, before the workers
 * start. Returns 0, or -1 if the kind is unknown or taken. A socket of a
 * kind nobody registered is closed. */
int worker_kind_register(enum worker_conn_kind kind, const struct worker_kind *k);

/* A stopping worker's loop ends when its last hold is released (or when
 * the grace period is over). Connections that must finish before the
 * agent exits hold their worker from adoption to close. */
void worker_hold(struct worker *w);
void worker_release(struct worker *w);

/* Whether w is stopping (no new work should start on it). */
int worker_draining(const struct worker *w);

/* Hands an accepted, non-blocking socket to the next worker (round-robin).
 * Called from the acceptor thread. The worker owns the fd from then on. */
void worker_dispatch_fd(int fd, enum worker_conn_kind kind);

/* Asks every worker to stop: each kind drains its connections, the loop
 * ends when no hold is left or after SPOA_STOP_GRACE_S; then the modules'
 * fini hooks run and the threads are joined. */
void worker_stop_all(void);

/* A module's context on this worker (index = registration order). */
void *worker_module_ctx(struct worker *w, int module);
int worker_id(const struct worker *w);
struct ev_loop *worker_loop(struct worker *w);

#endif /* REALMS_WORKER_H */

/*
 * Worker threads. I/O: threads, libev loops and the hand-off of accepted
 * sockets; no protocol.
 *
 * Each worker owns a libev loop. Accepted sockets arrive through a locked
 * queue and an ev_async; the worker hands each to the adopt hook of its
 * connection kind (worker_kind_register), and from then on only that
 * worker's thread touches it. Stopping: every kind drains its connections,
 * the loop ends once none holds it (worker_hold) or the grace period is
 * over.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include <ev.h>

#include <realms/limits.h>
#include <realms/log.h>
#include <realms/worker.h>

struct worker {
	int id;
	pthread_t thr;
	struct ev_loop *loop;
	ev_async wake;
	ev_timer grace;

	pthread_mutex_t lock;       /* guards the fields below */
	int *fds;                   /* accepted sockets to adopt */
	unsigned char *kinds;       /* and what each speaks */
	size_t nfds, capfds;
	int stop;

	int draining;               /* loop-thread only from here */
	unsigned int holds;         /* connections a stop waits for */
	void *mod_ctx[WORKER_MAX_MODULES];
};

static struct worker *workers;
static int nb_workers;
static atomic_uint next_worker;
static const struct worker_module *modules[WORKER_MAX_MODULES];
static int nb_modules;
static const struct worker_kind *kinds[WORKER_CONN_KINDS];

int worker_module_register(const struct worker_module *m)
{
	if (nb_modules == WORKER_MAX_MODULES)
		return -1;
	modules[nb_modules] = m;
	return nb_modules++;
}

void *worker_module_ctx(struct worker *w, int module)
{
	return module >= 0 && module < nb_modules ? w->mod_ctx[module] : NULL;
}

int worker_id(const struct worker *w)
{
	return w->id;
}

struct ev_loop *worker_loop(struct worker *w)
{
	return w->loop;
}

int worker_kind_register(enum worker_conn_kind kind, const struct worker_kind *k)
{
	if ((unsigned)kind >= WORKER_CONN_KINDS || kinds[kind] || !k->adopt)
		return -1;
	kinds[kind] = k;
	return 0;
}

void worker_hold(struct worker *w)
{
	w->holds++;
}

void worker_release(struct worker *w)
{
	if (--w->holds == 0 && w->draining)
		ev_break(w->loop, EVBREAK_ONE);
}

int worker_draining(const struct worker *w)
{
	return w->draining;
}

/* ---------------------------------------------------------------------- */
/* Worker loop                                                            */
/* ---------------------------------------------------------------------- */

static void grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	rlog(LOG_LVL_WARN, "worker %d: stop grace period over; closing %s connections",
	     w->id, w->holds ? "remaining" : "no");
	for (int k = 0; k < WORKER_CONN_KINDS; k++)
		if (kinds[k] && kinds[k]->abort)
			kinds[k]->abort(w);
	ev_break(loop, EVBREAK_ONE);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;
	int *fds, stop;
	unsigned char *fkinds;
	size_t n;

	pthread_mutex_lock(&w->lock);
	fds = w->fds;
	fkinds = w->kinds;
	n = w->nfds;
	w->fds = NULL;
	w->kinds = NULL;
	w->nfds = w->capfds = 0;
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);

	for (size_t i = 0; i < n; i++) {
		const struct worker_kind *k = fkinds[i] < WORKER_CONN_KINDS ?
		                              kinds[fkinds[i]] : NULL;

		if (k) {
			k->adopt(w, fds[i]);
		} else {
			rlog(LOG_LVL_ERR, "worker %d: no owner for a connection of kind %u; "
			     "closing it", w->id, fkinds[i]);
			close(fds[i]);
		}
	}
	free(fds);
	free(fkinds);

	if (stop && !w->draining) {
		w->draining = 1;
		ev_timer_init(&w->grace, grace_cb, SPOA_STOP_GRACE_S, 0.);
		w->grace.data = w;
		ev_timer_start(loop, &w->grace);
		for (int k = 0; k < WORKER_CONN_KINDS; k++)
			if (kinds[k] && kinds[k]->drain)
				kinds[k]->drain(w);   /* may release holds */
		if (!w->holds)
			ev_break(loop, EVBREAK_ONE);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < nb_modules; i++)
		w->mod_ctx[i] = modules[i]->init ? modules[i]->init(w, w->loop) : NULL;
	ev_run(w->loop, 0);
	for (int i = nb_modules - 1; i >= 0; i--)
		if (modules[i]->fini)
			modules[i]->fini(w, w->mod_ctx[i]);
	ev_loop_destroy(w->loop);
	return NULL;
}

int worker_start_all(int n)
{
	sigset_t all, old;

	workers = calloc((size_t)n, sizeof(*workers));
	if (!workers)
		return -1;
	/* Signals are for the main thread's loop only. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < n; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
		if (!w->loop)
			goto fail;
		pthread_mutex_init(&w->lock, NULL);
		ev_async_init(&w->wake, wake_cb);
		w->wake.data = w;
		ev_async_start(w->loop, &w->wake);
		if (pthread_create(&w->thr, NULL, worker_main, w) != 0)
			goto fail;
		nb_workers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
fail:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	rlog(LOG_LVL_ERR, "cannot start worker %d", nb_workers);
	return -1;
}

void worker_dispatch_fd(int fd, enum worker_conn_kind kind)
{
	struct worker *w = &workers[atomic_fetch_add(&next_worker, 1) % (unsigned)nb_workers];

	pthread_mutex_lock(&w->lock);
	if (w->nfds == w->capfds) {
		size_t ncap = w->capfds ? w->capfds * 2 : 16;
		int *nf = realloc(w->fds, ncap * sizeof(*nf));
		unsigned char *nk = nf ? realloc(w->kinds, ncap) : NULL;

		if (nf)
			w->fds = nf;
		if (!nk) {
			pthread_mutex_unlock(&w->lock);
			close(fd);
			return;
		}
		w->kinds = nk;
		w->capfds = ncap;
	}
	w->kinds[w->nfds] = (unsigned char)kind;
	w->fds[w->nfds++] = fd;
	pthread_mutex_unlock(&w->lock);
	ev_async_send(w->loop, &w->wake);
}

void worker_stop_all(void)
{
	for (int i = 0; i < nb_workers; i++) {
		pthread_mutex_lock(&workers[i].lock);
		workers[i].stop = 1;
		pthread_mutex_unlock(&workers[i].lock);
		ev_async_send(workers[i].loop, &workers[i].wake);
	}
	for (int i = 0; i < nb_workers; i++) {
		pthread_join(workers[i].thr, NULL);
		pthread_mutex_destroy(&workers[i].lock);
		free(workers[i].fds);
		free(workers[i].kinds);
	}
	free(workers);
	workers = NULL;
	nb_workers = 0;
}

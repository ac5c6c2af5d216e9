/*
 * Worker threads and the socket side of SPOP connections.
 *
 * Each worker owns a libev loop. Accepted sockets arrive through a locked
 * queue and an ev_async; from then on only that worker touches them. The
 * protocol itself lives in spoa.c; here we move bytes, apply flow control
 * (stop reading while too much is in flight or waiting to be written), and
 * enforce time limits (HELLO deadline, idle timeout, closing deadline).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include <realms/limits.h>
#include <realms/log.h>
#include <realms/mirror.h>
#include <realms/spoa.h>
#include <realms/worker.h>

/* A closing connection whose peer does not read is dropped after this. */
#define WORKER_CLOSE_TIMEOUT_S  2.0

/* At most this many reads per readiness event, so one busy connection
 * cannot starve the others on the same loop. */
#define WORKER_READS_PER_EVENT  4

#define WORKER_MAX_MODULES      8

struct io_conn {
	int fd;
	struct worker *w;
	struct spoa_conn *sc;
	ev_io rio;
	ev_io wio;
	ev_timer tmr;
	int closing;                /* final frame queued: flush and close */
	int ready;                  /* HELLO done: the timer is the idle one */
	struct io_conn *prev, *next;
};

struct worker {
	int id;
	pthread_t thr;
	struct ev_loop *loop;
	ev_async wake;
	ev_timer grace;
	uint32_t max_frame;

	pthread_mutex_t lock;       /* guards the fields below */
	int *fds;                   /* accepted sockets to adopt */
	unsigned char *kinds;       /* and what each speaks */
	size_t nfds, capfds;
	int stop;

	int draining;               /* loop-thread only from here */
	struct io_conn *conns;
	void *mod_ctx[WORKER_MAX_MODULES];
};

static struct worker *workers;
static int nb_workers;
static atomic_uint next_worker;
static const struct worker_module *modules[WORKER_MAX_MODULES];
static int nb_modules;
static atomic_ullong conn_seq;

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

/* ---------------------------------------------------------------------- */
/* Connections                                                            */
/* ---------------------------------------------------------------------- */

static void conn_update(struct io_conn *ic);

static void conn_destroy(struct io_conn *ic)
{
	struct worker *w = ic->w;

	ev_io_stop(w->loop, &ic->rio);
	ev_io_stop(w->loop, &ic->wio);
	ev_timer_stop(w->loop, &ic->tmr);
	close(ic->fd);
	if (ic->prev)
		ic->prev->next = ic->next;
	else
		w->conns = ic->next;
	if (ic->next)
		ic->next->prev = ic->prev;
	/* The protocol side may outlive us while requests are in flight;
	 * it must not call back into a freed io_conn. */
	ic->sc->owner = NULL;
	spoa_conn_close(ic->sc);
	free(ic);
	if (w->draining && !w->conns)
		ev_break(w->loop, EVBREAK_ONE);
}

/* Writes what the protocol layer queued. Returns -1 if the socket failed. */
static int conn_flush(struct io_conn *ic)
{
	const uint8_t *data;
	size_t len;
	ssize_t n;

	for (;;) {
		data = spoa_conn_wdata(ic->sc, &len);
		if (len == 0)
			return 0;
		n = send(ic->fd, data, len, MSG_NOSIGNAL);
		if (n > 0) {
			spoa_conn_wconsume(ic->sc, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
}

/* Re-evaluates watchers after anything happened on the connection. May
 * destroy it. */
static void conn_update(struct io_conn *ic)
{
	struct worker *w = ic->w;
	size_t pending;

	if (!ic->closing && spoa_conn_process(ic->sc) == SPOA_IO_CLOSE) {
		ic->closing = 1;
		ev_io_stop(w->loop, &ic->rio);
		ev_timer_stop(w->loop, &ic->tmr);
		ev_timer_set(&ic->tmr, WORKER_CLOSE_TIMEOUT_S, 0.);
		ev_timer_start(w->loop, &ic->tmr);
	} else if (!ic->closing && !ic->ready && ic->sc->state == SPOA_ST_READY) {
		/* HELLO done: from now on the timer measures idleness. */
		ic->ready = 1;
		ev_timer_again(w->loop, &ic->tmr);
	}
	if (conn_flush(ic) < 0) {
		conn_destroy(ic);
		return;
	}
	spoa_conn_wdata(ic->sc, &pending);
	if (ic->closing && pending == 0) {
		conn_destroy(ic);
		return;
	}
	if (pending)
		ev_io_start(w->loop, &ic->wio);
	else
		ev_io_stop(w->loop, &ic->wio);
	if (!ic->closing && spoa_conn_can_read(ic->sc))
		ev_io_start(w->loop, &ic->rio);
	else
		ev_io_stop(w->loop, &ic->rio);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct io_conn *ic = io->data;
	uint8_t *p;
	size_t room;
	ssize_t n;

	for (int i = 0; i < WORKER_READS_PER_EVENT; i++) {
		p = spoa_conn_rspace(ic->sc, &room);
		if (!p)
			break;   /* a whole frame waits for processing */
		n = recv(ic->fd, p, room, 0);
		if (n > 0) {
			spoa_conn_rcommit(ic->sc, (size_t)n);
			if ((size_t)n < room)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EOF or error: HAProxy went away; ACKs in flight have nowhere to
		 * go. Never retry a 0-byte read. */
		if (n < 0)
			rlog(LOG_LVL_DEBUG, "spop conn %llu: read: %s",
			     (unsigned long long)ic->sc->id, strerror(errno));
		conn_destroy(ic);
		return;
	}
	if (ic->ready)
		ev_timer_again(loop, &ic->tmr);   /* idle timeout restarts */
	conn_update(ic);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	conn_update(io->data);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct io_conn *ic = t->data;

	if (ic->closing) {
		rlog(LOG_LVL_DEBUG, "spop conn %llu: peer did not read our last frame; closing",
		     (unsigned long long)ic->sc->id);
	} else if (ic->sc->state == SPOA_ST_HELLO) {
		rlog(LOG_LVL_WARN, "spop conn %llu: no HELLO within %.0f s; closing",
		     (unsigned long long)ic->sc->id, SPOA_HELLO_TIMEOUT_S);
	} else {
		rlog(LOG_LVL_INFO, "spop conn %llu: idle for %.0f s; closing",
		     (unsigned long long)ic->sc->id, SPOA_IDLE_TIMEOUT_S);
		spoa_conn_disconnect(ic->sc, SPOP_ERR_TOUT, "idle timeout");
		conn_update(ic);
		return;
	}
	conn_destroy(ic);
}

/* Called by the protocol layer when an asynchronous handler finished. */
static void conn_want_write(struct spoa_conn *sc)
{
	struct io_conn *ic = sc->owner;

	if (ic)
		conn_update(ic);
}

static const struct spoa_conn_ops conn_ops = {
	.want_write = conn_want_write,
	.released = NULL,
};

static void conn_adopt(struct worker *w, int fd)
{
	struct io_conn *ic = calloc(1, sizeof(*ic));

	if (!ic) {
		close(fd);
		return;
	}
	ic->fd = fd;
	ic->w = w;
	ic->sc = spoa_conn_new(SPOP_MAX_FRAME_SIZE, &conn_ops, ic, w,
	                       atomic_fetch_add(&conn_seq, 1) + 1);
	if (!ic->sc) {
		close(fd);
		free(ic);
		return;
	}
	if (w->max_frame < ic->sc->max_frame)
		ic->sc->max_frame = w->max_frame;
	ev_io_init(&ic->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&ic->wio, conn_write_cb, fd, EV_WRITE);
	ev_init(&ic->tmr, conn_timer_cb);
	ic->rio.data = ic->wio.data = ic->tmr.data = ic;
	/* HELLO deadline first; after HELLO the same timer is the idle one. */
	ev_timer_set(&ic->tmr, SPOA_HELLO_TIMEOUT_S, SPOA_IDLE_TIMEOUT_S);
	ev_timer_start(w->loop, &ic->tmr);
	ic->next = w->conns;
	if (w->conns)
		w->conns->prev = ic;
	w->conns = ic;
	if (w->draining) {
		spoa_conn_drain(ic->sc);
		conn_update(ic);
		return;
	}
	ev_io_start(w->loop, &ic->rio);
}

/* ---------------------------------------------------------------------- */
/* Worker loop                                                            */
/* ---------------------------------------------------------------------- */

static void grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	rlog(LOG_LVL_WARN, "worker %d: stop grace period over; closing %s connections",
	     w->id, w->conns ? "remaining" : "no");
	while (w->conns)
		conn_destroy(w->conns);
	ev_break(loop, EVBREAK_ONE);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;
	int *fds, stop;
	unsigned char *kinds;
	size_t n;

	pthread_mutex_lock(&w->lock);
	fds = w->fds;
	kinds = w->kinds;
	n = w->nfds;
	w->fds = NULL;
	w->kinds = NULL;
	w->nfds = w->capfds = 0;
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);

	for (size_t i = 0; i < n; i++) {
		if (kinds[i] == WORKER_CONN_MIRROR)
			mirror_adopt(w, fds[i]);
		else
			conn_adopt(w, fds[i]);
	}
	free(fds);
	free(kinds);

	if (stop && !w->draining) {
		w->draining = 1;
		ev_timer_init(&w->grace, grace_cb, SPOA_STOP_GRACE_S, 0.);
		w->grace.data = w;
		ev_timer_start(loop, &w->grace);
		for (struct io_conn *ic = w->conns, *nx; ic; ic = nx) {
			nx = ic->next;
			spoa_conn_drain(ic->sc);
			conn_update(ic);   /* may destroy ic */
		}
		if (!w->conns)
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

int worker_start_all(int n, uint32_t max_frame)
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
		w->max_frame = max_frame;
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

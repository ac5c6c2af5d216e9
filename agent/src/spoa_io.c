/*
 * The socket side of SPOP connections. I/O: sockets and libev watchers, on
 * the worker thread that adopted the connection; the protocol itself is
 * spoa.c's (no system call there).
 *
 * Here we move bytes between the socket and the protocol layer's buffers,
 * apply flow control (stop reading while too much is in flight or waiting
 * to be written), and enforce time limits (HELLO deadline, idle timeout,
 * closing deadline). Each worker keeps its SPOP connections in a list, so
 * that a stopping worker can drain them and, after the grace period, close
 * what is left.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include <realms/limits.h>
#include <realms/log.h>
#include <realms/spoa.h>
#include <realms/spoa_io.h>
#include <realms/worker.h>

struct io_conn {
	int fd;
	struct worker *w;
	struct ev_loop *loop;
	struct io_list *list;
	struct spoa_conn *sc;
	ev_io rio;
	ev_io wio;
	ev_timer tmr;
	int closing;                /* final frame queued: flush and close */
	int ready;                  /* HELLO done: the timer is the idle one */
	struct io_conn *prev, *next;
};

/* One worker's SPOP connections (its module context). */
struct io_list {
	struct io_conn *head;
};

static int io_module = -1;
static uint32_t io_max_frame = SPOP_MAX_FRAME_SIZE;
static atomic_ullong conn_seq;

/* ---------------------------------------------------------------------- */
/* Connections                                                            */
/* ---------------------------------------------------------------------- */

static void conn_update(struct io_conn *ic);

static void conn_destroy(struct io_conn *ic)
{
	struct worker *w = ic->w;

	ev_io_stop(ic->loop, &ic->rio);
	ev_io_stop(ic->loop, &ic->wio);
	ev_timer_stop(ic->loop, &ic->tmr);
	close(ic->fd);
	if (ic->prev)
		ic->prev->next = ic->next;
	else
		ic->list->head = ic->next;
	if (ic->next)
		ic->next->prev = ic->prev;
	/* The protocol side may outlive us while requests are in flight;
	 * it must not call back into a freed io_conn. */
	ic->sc->owner = NULL;
	spoa_conn_close(ic->sc);
	free(ic);
	/* Last: a stopping worker's loop may end here. */
	worker_release(w);
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
	size_t pending;

	if (!ic->closing && spoa_conn_process(ic->sc) == SPOA_IO_CLOSE) {
		ic->closing = 1;
		ev_io_stop(ic->loop, &ic->rio);
		ev_timer_stop(ic->loop, &ic->tmr);
		ev_timer_set(&ic->tmr, SPOA_IO_CLOSE_TIMEOUT_S, 0.);
		ev_timer_start(ic->loop, &ic->tmr);
	} else if (!ic->closing && !ic->ready && ic->sc->state == SPOA_ST_READY) {
		/* HELLO done: from now on the timer measures idleness. */
		ic->ready = 1;
		ev_timer_again(ic->loop, &ic->tmr);
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
		ev_io_start(ic->loop, &ic->wio);
	else
		ev_io_stop(ic->loop, &ic->wio);
	if (!ic->closing && spoa_conn_can_read(ic->sc))
		ev_io_start(ic->loop, &ic->rio);
	else
		ev_io_stop(ic->loop, &ic->rio);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct io_conn *ic = io->data;
	uint8_t *p;
	size_t room;
	ssize_t n;

	for (int i = 0; i < SPOA_IO_READS_PER_EVENT; i++) {
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

/* ---------------------------------------------------------------------- */
/* The connection kind                                                    */
/* ---------------------------------------------------------------------- */

static void spoa_io_adopt(struct worker *w, int fd)
{
	struct io_list *l = worker_module_ctx(w, io_module);
	struct io_conn *ic = l ? calloc(1, sizeof(*ic)) : NULL;

	if (!ic) {
		close(fd);
		return;
	}
	ic->fd = fd;
	ic->w = w;
	ic->loop = worker_loop(w);
	ic->list = l;
	ic->sc = spoa_conn_new(SPOP_MAX_FRAME_SIZE, &conn_ops, ic, w,
	                       atomic_fetch_add(&conn_seq, 1) + 1);
	if (!ic->sc) {
		close(fd);
		free(ic);
		return;
	}
	if (io_max_frame < ic->sc->max_frame)
		ic->sc->max_frame = io_max_frame;
	ev_io_init(&ic->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&ic->wio, conn_write_cb, fd, EV_WRITE);
	ev_init(&ic->tmr, conn_timer_cb);
	ic->rio.data = ic->wio.data = ic->tmr.data = ic;
	/* HELLO deadline first; after HELLO the same timer is the idle one. */
	ev_timer_set(&ic->tmr, SPOA_HELLO_TIMEOUT_S, SPOA_IDLE_TIMEOUT_S);
	ev_timer_start(ic->loop, &ic->tmr);
	ic->next = l->head;
	if (l->head)
		l->head->prev = ic;
	l->head = ic;
	/* A stopping worker waits for this connection to end. */
	worker_hold(w);
	if (worker_draining(w)) {
		spoa_conn_drain(ic->sc);
		conn_update(ic);
		return;
	}
	ev_io_start(ic->loop, &ic->rio);
}

/* The worker stops: each connection answers what it has read, then
 * disconnects (status 0) once nothing is in flight. */
static void spoa_io_drain(struct worker *w)
{
	struct io_list *l = worker_module_ctx(w, io_module);

	for (struct io_conn *ic = l ? l->head : NULL, *nx; ic; ic = nx) {
		nx = ic->next;
		spoa_conn_drain(ic->sc);
		conn_update(ic);   /* may destroy ic */
	}
}

/* The stop grace period is over: whatever is left is closed. */
static void spoa_io_abort(struct worker *w)
{
	struct io_list *l = worker_module_ctx(w, io_module);

	while (l && l->head)
		conn_destroy(l->head);
}

static const struct worker_kind spoa_io_kind = {
	.name = "spop",
	.adopt = spoa_io_adopt,
	.drain = spoa_io_drain,
	.abort = spoa_io_abort,
};

static void *spoa_io_worker_init(struct worker *w, struct ev_loop *loop)
{
	return calloc(1, sizeof(struct io_list));
}

/* The loop has ended, so every connection is gone: the stop path drains
 * them or, after the grace period, closes them. */
static void spoa_io_worker_fini(struct worker *w, void *ctx)
{
	free(ctx);
}

static const struct worker_module spoa_io_module = {
	.name = "spop",
	.init = spoa_io_worker_init,
	.fini = spoa_io_worker_fini,
};

int spoa_io_init(uint32_t max_frame)
{
	io_max_frame = max_frame;
	io_module = worker_module_register(&spoa_io_module);
	if (io_module < 0)
		return -1;
	return worker_kind_register(WORKER_CONN_SPOP, &spoa_io_kind);
}

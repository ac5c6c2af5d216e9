/*
 * spop_bench: a SPOP 2.0 load generator that behaves like HAProxy towards
 * realms-agent.
 *
 * It opens C connections, says HAPROXY-HELLO (capabilities "pipelining") on
 * each, then keeps P NOTIFY frames in flight per connection. Every NOTIFY
 * carries one "realms-inspect" message: `body` (binary, a JSON body prefix)
 * and `body_len` (the full body length), as HAProxy's inspect.spoe sends it.
 * Every ACK is checked: its stream-id/frame-id must be one in flight, and it
 * must carry set-var actions. Latency is measured from the moment a NOTIFY is
 * queued for sending to the moment its ACK is parsed.
 *
 * One thread, one epoll loop: the client does little besides memcpy and
 * parsing small ACKs, so the agent is the bottleneck (the report prints the
 * client's own CPU use so that can be checked).
 *
 * Frames are built and parsed with the project's codec (realms/spop.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <realms/limits.h>
#include <realms/netaddr.h>
#include <realms/spop.h>

#include "bench.h"

/* HAProxy's default max-frame-size for tune.bufsize 131072 (bufsize - 4). */
#define BENCH_DEF_MAX_FRAME   131068u
#define BENCH_DEF_PREFIX      65536u
#define BENCH_DEF_CONNS       4
#define BENCH_DEF_PIPELINE    16
#define BENCH_DEF_SECONDS     10.0
#define BENCH_MAX_CONNS       1024
/* The agent stops reading a connection past this many NOTIFYs in flight. */
#define BENCH_MAX_PIPELINE    SPOA_MAX_INFLIGHT
/* HELLO exchange and each pending ACK: no progress for this long is a stall. */
#define BENCH_HELLO_TIMEOUT_MS 5000
#define BENCH_STALL_NS        (5ull * 1000000000ull)
/* epoll_wait timeout: deadlines are checked at least this often. */
#define BENCH_TICK_MS         50

#define BENCH_MSG_NAME        "realms-inspect"
#define BENCH_TINY_BODY       "{\"model\":\"claude-sonnet-4-5\",\"stream\":true}"

/* Exit statuses. */
#define BENCH_EXIT_OK     0
#define BENCH_EXIT_PROTO  1   /* protocol error, stall or lost connection */
#define BENCH_EXIT_USAGE  2   /* bad arguments or setup failure */

struct inflight {
	uint64_t sid;
	uint64_t fid;
	uint64_t t_ns;        /* when the NOTIFY was queued */
	int used;
};

struct conn {
	int fd;
	int id;
	int dead;
	int want_out;                /* EPOLLOUT registered */
	uint32_t max_frame;          /* negotiated */
	uint8_t *rbuf;
	size_t rlen, rsize;
	uint8_t *wbuf;
	size_t woff, wlen, wsize;    /* pending bytes are wbuf[woff, wlen) */
	struct inflight *fl;         /* P slots */
	int nb_fl;
	uint64_t seq;                /* NOTIFYs sent on this connection */
};

static struct {
	struct netaddr addr;
	int nb_conns;
	int pipeline;
	double seconds;              /* 0: no time limit */
	uint64_t requests;           /* 0: no count limit */
	const char *body_file;
	size_t prefix;
	int tiny;
	uint32_t max_frame;
	const char *expect_model;
	int json;
	int verbose;

	/* the body: prefix sent, full length announced */
	char *body;
	size_t body_sent;
	uint64_t body_len;
	size_t notify_max;           /* upper bound of one NOTIFY's size */
} cfg = {
	.nb_conns = BENCH_DEF_CONNS,
	.pipeline = BENCH_DEF_PIPELINE,
	.prefix = BENCH_DEF_PREFIX,
	.max_frame = BENCH_DEF_MAX_FRAME,
};

static struct {
	uint64_t sent;               /* NOTIFYs queued */
	uint64_t acked;              /* ACKs verified, all of them */
	uint64_t acked_window;       /* ACKs inside the measurement window */
	uint64_t errors;
	struct bench_series lat;     /* ns, one per verified ACK */
	uint64_t t_start, t_end;     /* measurement window */
	uint64_t t_progress;         /* last ACK (stall detection) */
} st;

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

/* One error line per event; the count decides the exit status. */
static void bench_err(const struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bench_err(const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	st.errors++;
	/* a broken agent could produce millions: print the first ones only */
	if (st.errors > 20)
		return;
	fprintf(stderr, "spop_bench: conn %d: ", c ? c->id : -1);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(FILE *f)
{
	fprintf(f,
"NAME\n"
"    spop_bench - SPOP 2.0 load generator for realms-agent, acting as HAProxy\n"
"\n"
"SYNOPSIS\n"
"    spop_bench -a ADDR (--body FILE [--prefix N] | --tiny) [OPTIONS]\n"
"    spop_bench -h | --help\n"
"\n"
"DESCRIPTION\n"
"    Opens C connections to the agent, sends HAPROXY-HELLO with\n"
"    capabilities \"pipelining\", then keeps P NOTIFY frames in flight per\n"
"    connection, each with one \"" BENCH_MSG_NAME "\" message (args body,\n"
"    body_len). Checks every ACK (known stream-id/frame-id, set-var\n"
"    actions) and reports NOTIFY/s and send-to-ACK latency.\n"
"\n"
"OPTIONS\n"
"    -a, --addr ADDR        agent address: HOST:PORT, [V6]:PORT, unix:PATH\n"
"    -c, --conns C          connections (default %d, at most %d)\n"
"    -p, --pipeline P       NOTIFYs in flight per connection (default %d,\n"
"                           at most %d)\n"
"    -s, --seconds S        run for S seconds (default %.0f unless -n given)\n"
"    -n, --requests N       stop after N ACKs (with -s: whichever first)\n"
"    -b, --body FILE        body to send: the first --prefix bytes of FILE;\n"
"                           body_len is FILE's full size\n"
"    -x, --prefix N         bytes of FILE sent (default %u)\n"
"    -T, --tiny             send %zu-byte body %s\n"
"    -m, --max-frame N      max-frame-size announced in HAPROXY-HELLO\n"
"                           (default %u, HAProxy's for tune.bufsize 131072)\n"
"    -e, --expect-model M   also require a set-var \"model\" equal to M\n"
"    -j, --json             print the result as one JSON object\n"
"    -v, --verbose          print the negotiation on stderr\n"
"    -h, --help             this text\n"
"\n"
"OUTPUT\n"
"    One line (or JSON object) on stdout: NOTIFY/s over the run, latency\n"
"    p50/p90/p99/max in microseconds, errors, and the client's own CPU use\n"
"    (%% of one core) to check the client is not the bottleneck.\n"
"\n"
"EXIT STATUS\n"
"    0 when every ACK was valid, 1 on any protocol error, stall or lost\n"
"    connection, 2 on a usage or setup error.\n",
	BENCH_DEF_CONNS, BENCH_MAX_CONNS, BENCH_DEF_PIPELINE, BENCH_MAX_PIPELINE,
	BENCH_DEF_SECONDS, BENCH_DEF_PREFIX, sizeof(BENCH_TINY_BODY) - 1,
	BENCH_TINY_BODY, BENCH_DEF_MAX_FRAME);
}

/* ---------------------------------------------------------------------- */
/* Body                                                                   */
/* ---------------------------------------------------------------------- */

/* Loads the body into cfg: allocates cfg.body (freed at exit). */
static int body_load(void)
{
	struct stat sb;
	FILE *f;

	if (cfg.tiny) {
		cfg.body = strdup(BENCH_TINY_BODY);
		if (!cfg.body)
			return -1;
		cfg.body_sent = cfg.body_len = strlen(cfg.body);
		return 0;
	}
	f = fopen(cfg.body_file, "rb");
	if (!f || fstat(fileno(f), &sb) < 0) {
		fprintf(stderr, "spop_bench: %s: %s\n", cfg.body_file, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	cfg.body_len = (uint64_t)sb.st_size;
	cfg.body_sent = cfg.prefix < (size_t)sb.st_size ? cfg.prefix : (size_t)sb.st_size;
	cfg.body = malloc(cfg.body_sent ? cfg.body_sent : 1);
	if (!cfg.body || fread(cfg.body, 1, cfg.body_sent, f) != cfg.body_sent) {
		fprintf(stderr, "spop_bench: %s: short read\n", cfg.body_file);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Frames                                                                 */
/* ---------------------------------------------------------------------- */

/* Writes one NOTIFY into buf. Returns its size, or -1 if it did not fit. */
static ssize_t notify_build(uint8_t *buf, size_t size, uint64_t sid, uint64_t fid)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, size);
	spop_frame_begin(&w, SPOP_FRM_T_HAPROXY_NOTIFY, SPOP_FRM_FL_FIN, sid, fid);
	spop_put_msg(&w, BENCH_MSG_NAME, 2);
	d = spop_bin(cfg.body, cfg.body_sent);
	spop_put_kv(&w, "body", &d);
	/* HAProxy sends req.body_size as a signed 64-bit integer */
	d = spop_sint((int64_t)cfg.body_len);
	spop_put_kv(&w, "body_len", &d);
	return spop_frame_end(&w);
}

/* Reads the AGENT-HELLO payload: max-frame-size and pipelining. Returns 0 or
 * -1 (with a reason on stderr). */
static int agent_hello_check(struct conn *c, const struct spop_frame *f)
{
	const uint8_t *p = f->payload, *end = f->payload + f->payload_len;
	struct spop_kv kv;
	uint64_t max = 0;
	int have_vsn = 0, pipelining = 0, r;

	while ((r = spop_kv_next(&p, end, &kv)) == 1) {
		if (kv.name.len == 7 && !memcmp(kv.name.ptr, "version", 7)) {
			have_vsn = kv.value.type == SPOP_DATA_T_STR &&
			           kv.value.u.str.len >= 2 &&
			           !memcmp(kv.value.u.str.ptr, "2.", 2);
		} else if (kv.name.len == 14 && !memcmp(kv.name.ptr, "max-frame-size", 14)) {
			switch (kv.value.type) {
			case SPOP_DATA_T_UINT32: max = kv.value.u.u32; break;
			case SPOP_DATA_T_INT32:  max = kv.value.u.s32 > 0 ? (uint64_t)kv.value.u.s32 : 0; break;
			case SPOP_DATA_T_UINT64: max = kv.value.u.u64; break;
			case SPOP_DATA_T_INT64:  max = kv.value.u.s64 > 0 ? (uint64_t)kv.value.u.s64 : 0; break;
			default: break;
			}
		} else if (kv.name.len == 12 && !memcmp(kv.name.ptr, "capabilities", 12) &&
		           kv.value.type == SPOP_DATA_T_STR) {
			/* a comma-separated list; a substring test is enough here */
			pipelining = memmem(kv.value.u.str.ptr, kv.value.u.str.len,
			                    "pipelining", 10) != NULL;
		}
	}
	if (r < 0) {
		bench_err(c, "AGENT-HELLO: malformed KV-LIST");
		return -1;
	}
	if (!have_vsn || !max || max > cfg.max_frame) {
		bench_err(c, "AGENT-HELLO: version %s, max-frame-size %" PRIu64
		          " (we announced %u)", have_vsn ? "2.x" : "missing", max,
		          cfg.max_frame);
		return -1;
	}
	if (!pipelining && cfg.pipeline > 1) {
		bench_err(c, "AGENT-HELLO: no \"pipelining\" capability");
		return -1;
	}
	c->max_frame = (uint32_t)max;
	if (cfg.verbose)
		fprintf(stderr, "spop_bench: conn %d: max-frame-size %u, pipelining %d\n",
		        c->id, c->max_frame, pipelining);
	return 0;
}

/* Reads a DISCONNECT and reports it as an error. */
static void disconnect_report(struct conn *c, const struct spop_frame *f)
{
	struct spop_slice msg = { "", 0 };
	uint32_t status = 99;

	if (spop_disconnect_parse(f->payload, f->payload_len, &status, &msg) < 0)
		bench_err(c, "malformed AGENT-DISCONNECT");
	else
		bench_err(c, "AGENT-DISCONNECT status %u (%s): %.*s", status,
		          spop_err_str(status), (int)(msg.len > 200 ? 200 : msg.len),
		          msg.ptr);
}

/* ---------------------------------------------------------------------- */
/* Connections                                                            */
/* ---------------------------------------------------------------------- */

static void conn_free(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->rbuf);
	free(c->wbuf);
	free(c->fl);
	c->rbuf = c->wbuf = NULL;
	c->fl = NULL;
}

/* Connects and completes the HELLO exchange, blocking (bounded by
 * BENCH_HELLO_TIMEOUT_MS). Allocates the connection's buffers. Returns 0, or
 * -1 after reporting the reason. */
static int conn_open(struct conn *c, int id)
{
	struct spop_frame f;
	enum spop_err err;
	uint64_t deadline;
	ssize_t n, fl;
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->id = id;
	c->rsize = (size_t)cfg.max_frame + 4;
	c->wsize = (size_t)cfg.pipeline * cfg.notify_max + 4096;
	c->rbuf = malloc(c->rsize);
	c->wbuf = malloc(c->wsize);
	c->fl = calloc(cfg.pipeline, sizeof(*c->fl));
	c->fd = socket(cfg.addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!c->rbuf || !c->wbuf || !c->fl || c->fd < 0) {
		fprintf(stderr, "spop_bench: conn %d: %s\n", id, strerror(errno));
		return -1;
	}
	if (cfg.addr.family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&cfg.addr.ss, cfg.addr.len) < 0) {
		fprintf(stderr, "spop_bench: conn %d: connect: %s\n", id, strerror(errno));
		return -1;
	}
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0)
		return -1;

	n = spop_build_haproxy_hello(c->wbuf, c->wsize, cfg.max_frame, 0);
	if (n < 0 || send(c->fd, c->wbuf, n, MSG_NOSIGNAL) != n) {
		fprintf(stderr, "spop_bench: conn %d: sending HELLO: %s\n", id, strerror(errno));
		return -1;
	}

	deadline = bench_now_ns() + BENCH_HELLO_TIMEOUT_MS * 1000000ull;
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		uint64_t now = bench_now_ns();

		if (now >= deadline) {
			bench_err(c, "no AGENT-HELLO within %d ms", BENCH_HELLO_TIMEOUT_MS);
			return -1;
		}
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000ull) + 1) < 0 && errno != EINTR)
			return -1;
		n = recv(c->fd, c->rbuf + c->rlen, c->rsize - c->rlen, 0);
		if (n == 0) {
			bench_err(c, "agent closed during HELLO");
			return -1;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			bench_err(c, "recv during HELLO: %s", strerror(errno));
			return -1;
		}
		c->rlen += n;
		fl = spop_frame_parse(c->rbuf, c->rlen, cfg.max_frame, &f, &err);
		if (fl == 0)
			continue;
		if (fl < 0) {
			bench_err(c, "bad frame during HELLO: %s", spop_err_str(err));
			return -1;
		}
		if (f.type == SPOP_FRM_T_AGENT_DISCON) {
			disconnect_report(c, &f);
			return -1;
		}
		if (f.type != SPOP_FRM_T_AGENT_HELLO) {
			bench_err(c, "frame type %u instead of AGENT-HELLO", f.type);
			return -1;
		}
		if (agent_hello_check(c, &f) < 0)
			return -1;
		/* nothing may follow the HELLO before our first NOTIFY */
		if ((size_t)fl != c->rlen) {
			bench_err(c, "%zu unexpected bytes after AGENT-HELLO", c->rlen - fl);
			return -1;
		}
		c->rlen = 0;
		break;
	}
	if (cfg.notify_max > c->max_frame) {
		fprintf(stderr, "spop_bench: a NOTIFY of %zu bytes exceeds the negotiated "
		        "max-frame-size %u: lower --prefix\n", cfg.notify_max, c->max_frame);
		return -1;
	}
	return 0;
}

static int conn_set_out(int ep, struct conn *c, int want)
{
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0),
	                          .data.ptr = c };

	if (c->want_out == want)
		return 0;
	c->want_out = want;
	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_kill(int ep, struct conn *c, const char *why)
{
	if (c->dead)
		return;
	if (c->nb_fl)
		bench_err(c, "%s with %d NOTIFY in flight", why, c->nb_fl);
	else
		bench_err(c, "%s", why);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	c->dead = 1;
	c->nb_fl = 0;
}

/* Writes what is pending; registers EPOLLOUT while something remains. */
static void conn_flush(int ep, struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_kill(ep, c, strerror(errno));
			return;
		}
		c->woff += n;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	conn_set_out(ep, c, c->woff < c->wlen);
}

/* Whether another NOTIFY may be started (limits of the run). */
static int may_send(int stopping)
{
	if (stopping)
		return 0;
	if (cfg.requests && st.sent >= cfg.requests)
		return 0;
	return 1;
}

/* Queues NOTIFYs until P are in flight, then flushes. */
static void conn_fill(int ep, struct conn *c, int stopping)
{
	int queued = 0;

	if (c->dead)
		return;
	while (c->nb_fl < cfg.pipeline && may_send(stopping)) {
		struct inflight *s = NULL;
		ssize_t n;

		for (int i = 0; i < cfg.pipeline; i++) {
			if (!c->fl[i].used) {
				s = &c->fl[i];
				break;
			}
		}
		if (!s)
			break;
		/* make room at the tail: the pending bytes move to the front */
		if (c->wsize - c->wlen < cfg.notify_max) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		c->seq++;
		/* Distinct stream and frame ids, so that an ACK echoing one
		 * with the other's value is caught. */
		s->sid = c->seq + 1000;
		s->fid = c->seq;
		n = notify_build(c->wbuf + c->wlen, c->wsize - c->wlen, s->sid, s->fid);
		if (n < 0) {
			bench_err(c, "NOTIFY does not fit the write buffer");
			conn_kill(ep, c, "client buffer");
			return;
		}
		c->wlen += n;
		s->t_ns = bench_now_ns();
		s->used = 1;
		c->nb_fl++;
		st.sent++;
		queued = 1;
	}
	if (queued)
		conn_flush(ep, c);
}

/* Checks one ACK: known ids, FIN, valid actions, at least one set-var (and the
 * expected model if asked). Frees its in-flight slot. */
static void ack_handle(struct conn *c, const struct spop_frame *f, uint64_t now,
                       int in_window)
{
	const uint8_t *p = f->payload, *end = f->payload + f->payload_len;
	struct inflight *s = NULL;
	struct spop_action a;
	int nb_set = 0, model_ok = 0, r;

	for (int i = 0; i < cfg.pipeline; i++) {
		if (c->fl[i].used && c->fl[i].sid == f->stream_id &&
		    c->fl[i].fid == f->frame_id) {
			s = &c->fl[i];
			break;
		}
	}
	if (!s) {
		bench_err(c, "ACK for stream-id %" PRIu64 " frame-id %" PRIu64
		          ": not in flight", f->stream_id, f->frame_id);
		return;
	}
	s->used = 0;
	c->nb_fl--;

	if (!(f->flags & SPOP_FRM_FL_FIN) || (f->flags & SPOP_FRM_FL_ABRT)) {
		bench_err(c, "ACK %" PRIu64 "/%" PRIu64 " with flags 0x%x",
		          f->stream_id, f->frame_id, f->flags);
		return;
	}
	while ((r = spop_action_next(&p, end, &a)) == 1) {
		if (a.type != SPOP_ACT_T_SET_VAR)
			continue;
		nb_set++;
		if (cfg.expect_model && a.name.len == 5 && !memcmp(a.name.ptr, "model", 5) &&
		    a.value.type == SPOP_DATA_T_STR &&
		    a.value.u.str.len == strlen(cfg.expect_model) &&
		    !memcmp(a.value.u.str.ptr, cfg.expect_model, a.value.u.str.len))
			model_ok = 1;
	}
	if (r < 0) {
		bench_err(c, "ACK %" PRIu64 "/%" PRIu64 ": malformed actions",
		          f->stream_id, f->frame_id);
		return;
	}
	if (!nb_set) {
		bench_err(c, "ACK %" PRIu64 "/%" PRIu64 ": no set-var action",
		          f->stream_id, f->frame_id);
		return;
	}
	if (cfg.expect_model && !model_ok) {
		bench_err(c, "ACK %" PRIu64 "/%" PRIu64 ": no set-var model=%s",
		          f->stream_id, f->frame_id, cfg.expect_model);
		return;
	}
	st.acked++;
	if (in_window)
		st.acked_window++;
	st.t_progress = now;
	bench_series_add(&st.lat, now - s->t_ns);
}

/* Reads and handles every complete frame. */
static void conn_read(int ep, struct conn *c, int in_window)
{
	/* bounded: a few reads per event, so one busy connection cannot
	 * starve the others */
	for (int round = 0; round < 16 && !c->dead; round++) {
		struct spop_frame f;
		enum spop_err err;
		size_t off = 0;
		ssize_t n, fl;
		uint64_t now;

		n = recv(c->fd, c->rbuf + c->rlen, c->rsize - c->rlen, 0);
		if (n == 0) {
			conn_kill(ep, c, "agent closed the connection");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_kill(ep, c, strerror(errno));
			return;
		}
		c->rlen += n;
		now = bench_now_ns();
		while ((fl = spop_frame_parse(c->rbuf + off, c->rlen - off,
		                              c->max_frame, &f, &err)) > 0) {
			if (f.type == SPOP_FRM_T_AGENT_ACK) {
				ack_handle(c, &f, now, in_window);
			} else if (f.type == SPOP_FRM_T_AGENT_DISCON) {
				disconnect_report(c, &f);
				conn_kill(ep, c, "agent disconnected");
				return;
			} else {
				bench_err(c, "unexpected frame type %u", f.type);
			}
			off += fl;
		}
		if (fl < 0) {
			bench_err(c, "bad frame from the agent: %s", spop_err_str(err));
			conn_kill(ep, c, "protocol error");
			return;
		}
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

/* Says goodbye as HAProxy does; best effort, the socket is closed after. */
static void conn_goodbye(struct conn *c)
{
	uint8_t buf[128];
	ssize_t n;

	if (c->dead || c->fd < 0)
		return;
	n = spop_build_haproxy_disconnect(buf, sizeof(buf), SPOP_ERR_NONE, "bench done");
	if (n > 0 && c->woff == c->wlen)
		(void)send(c->fd, buf, n, MSG_NOSIGNAL);
}

/* ---------------------------------------------------------------------- */
/* Report                                                                 */
/* ---------------------------------------------------------------------- */

static void report(double cpu)
{
	double secs = (st.t_end - st.t_start) / 1e9;
	double rate = secs > 0 ? st.acked_window / secs : 0;
	double p50, p90, p99, max = st.lat.max / 1000.0;
	char addr[160];

	bench_series_sort(&st.lat);
	p50 = bench_pct_us(&st.lat, 0.50);
	p90 = bench_pct_us(&st.lat, 0.90);
	p99 = bench_pct_us(&st.lat, 0.99);
	netaddr_str(&cfg.addr, addr, sizeof(addr));

	if (cfg.json) {
		printf("{\"addr\":\"%s\",\"conns\":%d,\"pipeline\":%d,"
		       "\"body_bytes\":%zu,\"body_len\":%" PRIu64 ",\"frame_bytes\":%zu,"
		       "\"seconds\":%.3f,\"notifies\":%" PRIu64 ",\"acks\":%" PRIu64 ","
		       "\"acks_total\":%" PRIu64 ","
		       "\"notify_per_s\":%.1f,"
		       "\"lat_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
		       "\"errors\":%" PRIu64 ",\"client_cpu_pct\":%.1f}\n",
		       addr, cfg.nb_conns, cfg.pipeline, cfg.body_sent, cfg.body_len,
		       cfg.notify_max, secs, st.sent, st.acked_window, st.acked, rate, p50, p90, p99, max,
		       st.errors, secs > 0 ? 100.0 * cpu / secs : 0);
	} else {
		printf("spop_bench: %s conns=%d pipeline=%d body=%zu/%" PRIu64 "B "
		       "acks=%" PRIu64 " in %.2fs rate=%.0f/s "
		       "lat_us p50=%.1f p90=%.1f p99=%.1f max=%.1f errors=%" PRIu64
		       " client_cpu=%.0f%%\n",
		       addr, cfg.nb_conns, cfg.pipeline, cfg.body_sent, cfg.body_len,
		       st.acked_window, secs, rate, p50, p90, p99, max, st.errors,
		       secs > 0 ? 100.0 * cpu / secs : 0);
	}
}

/* ---------------------------------------------------------------------- */
/* Main                                                                   */
/* ---------------------------------------------------------------------- */

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr",         required_argument, NULL, 'a' },
		{ "conns",        required_argument, NULL, 'c' },
		{ "pipeline",     required_argument, NULL, 'p' },
		{ "seconds",      required_argument, NULL, 's' },
		{ "requests",     required_argument, NULL, 'n' },
		{ "body",         required_argument, NULL, 'b' },
		{ "prefix",       required_argument, NULL, 'x' },
		{ "tiny",         no_argument,       NULL, 'T' },
		{ "max-frame",    required_argument, NULL, 'm' },
		{ "expect-model", required_argument, NULL, 'e' },
		{ "json",         no_argument,       NULL, 'j' },
		{ "verbose",      no_argument,       NULL, 'v' },
		{ "help",         no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	char err[128];
	int have_addr = 0, o;
	char *e;

	while ((o = getopt_long(argc, argv, "a:c:p:s:n:b:x:Tm:e:jvh", opts, NULL)) != -1) {
		switch (o) {
		case 'a':
			if (netaddr_parse(optarg, &cfg.addr, err, sizeof(err)) < 0) {
				fprintf(stderr, "spop_bench: --addr %s: %s\n", optarg, err);
				return -1;
			}
			have_addr = 1;
			break;
		case 'c':
			if (bench_parse_ulong(optarg, 1, BENCH_MAX_CONNS, &v) < 0)
				goto bad;
			cfg.nb_conns = (int)v;
			break;
		case 'p':
			if (bench_parse_ulong(optarg, 1, BENCH_MAX_PIPELINE, &v) < 0)
				goto bad;
			cfg.pipeline = (int)v;
			break;
		case 's':
			errno = 0;
			cfg.seconds = strtod(optarg, &e);
			if (errno || e == optarg || *e || cfg.seconds <= 0 || cfg.seconds > 86400)
				goto bad;
			break;
		case 'n':
			if (bench_parse_ulong(optarg, 1, UINT64_MAX, &v) < 0)
				goto bad;
			cfg.requests = v;
			break;
		case 'b':
			cfg.body_file = optarg;
			break;
		case 'x':
			if (bench_parse_ulong(optarg, 0, SPOP_MAX_FRAME_SIZE, &v) < 0)
				goto bad;
			cfg.prefix = (size_t)v;
			break;
		case 'T':
			cfg.tiny = 1;
			break;
		case 'm':
			if (bench_parse_ulong(optarg, SPOP_MIN_FRAME_SIZE, SPOP_MAX_FRAME_SIZE, &v) < 0)
				goto bad;
			cfg.max_frame = (uint32_t)v;
			break;
		case 'e':
			cfg.expect_model = optarg;
			break;
		case 'j':
			cfg.json = 1;
			break;
		case 'v':
			cfg.verbose = 1;
			break;
		case 'h':
			usage(stdout);
			exit(BENCH_EXIT_OK);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc || !have_addr || (!cfg.body_file == !cfg.tiny)) {
		fprintf(stderr, "spop_bench: need -a ADDR and exactly one of --body, --tiny (see -h)\n");
		return -1;
	}
	if (!cfg.seconds && !cfg.requests)
		cfg.seconds = BENCH_DEF_SECONDS;
	return 0;
bad:
	fprintf(stderr, "spop_bench: bad value for -%c: %s\n", o, optarg);
	return -1;
}

int main(int argc, char **argv)
{
	struct epoll_event evs[64];
	struct conn *conns;
	uint64_t deadline = 0, drain_until = 0;
	double cpu0;
	int ep, stopping = 0, live, rc = BENCH_EXIT_OK;

	signal(SIGPIPE, SIG_IGN);
	if (parse_args(argc, argv) < 0 || body_load() < 0)
		return BENCH_EXIT_USAGE;

	/* the largest NOTIFY: header with 10-byte varints, message, args */
	cfg.notify_max = 4 + 1 + 4 + 10 + 10 + 1 + sizeof(BENCH_MSG_NAME) + 1 +
	                 (1 + 4) + 1 + 10 + cfg.body_sent + (1 + 8) + 1 + 10 + 16;
	{
		uint8_t *tmp = malloc(cfg.notify_max);
		ssize_t n = tmp ? notify_build(tmp, cfg.notify_max, 1, 1) : -1;

		free(tmp);
		if (n < 0) {
			fprintf(stderr, "spop_bench: cannot build a NOTIFY\n");
			return BENCH_EXIT_USAGE;
		}
		/* exact size with the largest ids this run will use */
		cfg.notify_max = (size_t)n + 2 * 10;
	}
	if (cfg.notify_max > cfg.max_frame) {
		fprintf(stderr, "spop_bench: a NOTIFY of %zu bytes exceeds --max-frame %u\n",
		        cfg.notify_max, cfg.max_frame);
		return BENCH_EXIT_USAGE;
	}

	conns = calloc(cfg.nb_conns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0) {
		perror("spop_bench");
		return BENCH_EXIT_USAGE;
	}
	for (int i = 0; i < cfg.nb_conns; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &conns[i] };

		if (conn_open(&conns[i], i) < 0) {
			for (int j = 0; j <= i; j++)
				conn_free(&conns[j]);
			return BENCH_EXIT_USAGE;
		}
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) {
			perror("spop_bench: epoll_ctl");
			return BENCH_EXIT_USAGE;
		}
	}

	cpu0 = bench_cpu_seconds();
	st.t_start = st.t_progress = bench_now_ns();
	if (cfg.seconds)
		deadline = st.t_start + (uint64_t)(cfg.seconds * 1e9);
	for (int i = 0; i < cfg.nb_conns; i++)
		conn_fill(ep, &conns[i], 0);

	/* Bounded: ends at the deadline (plus the drain), at the request count,
	 * or when nothing was acknowledged for BENCH_STALL_NS. */
	for (;;) {
		uint64_t now = bench_now_ns();
		int n, inflight = 0;

		live = 0;
		for (int i = 0; i < cfg.nb_conns; i++) {
			if (!conns[i].dead) {
				live++;
				inflight += conns[i].nb_fl;
			}
		}
		if (!stopping && ((deadline && now >= deadline) ||
		                  (cfg.requests && st.acked >= cfg.requests))) {
			stopping = 1;
			st.t_end = deadline && now >= deadline ? deadline : now;
			drain_until = now + BENCH_STALL_NS;
		}
		if (!live)
			break;
		if (stopping && (!inflight || now >= drain_until)) {
			if (inflight)
				bench_err(NULL, "%d NOTIFY not acknowledged after the run", inflight);
			break;
		}
		if (inflight && now - st.t_progress > BENCH_STALL_NS) {
			bench_err(NULL, "stall: no ACK for %.1f s with %d NOTIFY in flight",
			          BENCH_STALL_NS / 1e9, inflight);
			break;
		}

		n = epoll_wait(ep, evs, 64, BENCH_TICK_MS);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("spop_bench: epoll_wait");
			rc = BENCH_EXIT_PROTO;
			break;
		}
		now = bench_now_ns();
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->dead)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_read(ep, c, !stopping && (!deadline || now < deadline));
			if (!c->dead && (evs[i].events & EPOLLOUT))
				conn_flush(ep, c);
		}
		if (!stopping && deadline && now >= deadline)
			continue;   /* stop refilling: the top of the loop stops */
		for (int i = 0; i < n; i++)
			conn_fill(ep, evs[i].data.ptr, stopping);
	}
	if (!st.t_end)
		st.t_end = bench_now_ns();

	for (int i = 0; i < cfg.nb_conns; i++) {
		conn_goodbye(&conns[i]);
		conn_free(&conns[i]);
	}
	close(ep);
	report(bench_cpu_seconds() - cpu0);
	free(st.lat.v);
	free(conns);
	free(cfg.body);
	if (st.errors)
		rc = BENCH_EXIT_PROTO;
	return rc;
}

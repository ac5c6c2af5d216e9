/*
 * Admin HTTP: GET /metrics and GET /healthz, one request per connection;
 * the dashboard's paths are handed to dash.c.
 * A request must arrive whole within ADMIN_TIMEOUT_S and ADMIN_REQ_MAX
 * bytes; anything else is closed. I/O: sockets on the main loop, which
 * never blocks on them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include <realms/admin.h>
#include <realms/clock.h>
#include <realms/commit.h>
#include <realms/config-t.h>
#include <realms/dash.h>
#include <realms/health.h>
#include <realms/stick.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/mirror.h>
#include <realms/netaddr.h>
#include <realms/peers.h>
#include <realms/probe.h>
#include <realms/record.h>
#include <realms/spoa.h>
#include <realms/state.h>
#include <realms/tokcache.h>
#include <realms/umetrics.h>
#include <realms/config.h>

struct admin_conn {
	int fd;
	ev_io io;
	ev_timer tmr;
	char req[ADMIN_REQ_MAX];
	size_t len;
};

static struct admin_lst {
	int fd;
	ev_io io;
} lst = { .fd = -1 };

/* Connections reading a request (the main thread's alone): at most
 * ADMIN_CONNS_MAX, so that idle peers cannot take the agent's descriptors,
 * which its SPOP and mirror listeners share. */
static unsigned int n_open;

static void conn_end(struct ev_loop *loop, struct admin_conn *c)
{
	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->tmr);
	close(c->fd);
	free(c);
	n_open--;
}

struct bstate_ctx {
	char *out;
	size_t size, off;
	int full;
};

static void bstate_line(const char *server, size_t len, enum health_state st, void *arg)
{
	struct bstate_ctx *bc = arg;
	int n;

	if (bc->full)
		return;
	/* Server names are [A-Za-z0-9._-]: nothing to escape in a label. */
	n = snprintf(bc->out + bc->off, bc->size - bc->off,
	             "realms_breaker_state{server=\"%.*s\"} %d\n", (int)len, server, (int)st);
	if (n < 0 || (size_t)n >= bc->size - bc->off)
		bc->full = 1;
	else
		bc->off += (size_t)n;
}

/* The metrics page, Prometheus text exposition format. */
static int metrics(char *out, size_t size)
{
	struct spoa_stats s;
	struct mirror_stats m;
	struct commit_stats r;
	struct health_stats h;
	struct probe_stats p;
	struct realms_config *cfg = state_config();
	size_t off = 0;
	int n;

	spoa_stats_get(&s);
	mirror_stats_get(&m);
	commit_stats_get(&r);
	health_stats_get(&h);
	probe_stats_get(&p);
#define M(type, name, help, val) do { \
		n = snprintf(out + off, size - off, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", \
		             name, help, name, type, name, (unsigned long long)(val)); \
		if (n < 0 || (size_t)n >= size - off) goto full; \
		off += (size_t)n; \
	} while (0)
	M("counter", "realms_spop_connections_total", "SPOP connections accepted", s.conns);
	M("counter", "realms_spop_hellos_total", "SPOP HELLO handshakes completed", s.hellos);
	M("counter", "realms_spop_healthchecks_total", "SPOP health checks answered", s.healthchecks);
	M("counter", "realms_spop_notify_total", "NOTIFY frames received", s.notifies);
	M("counter", "realms_spop_ack_total", "ACK frames sent", s.acks);
	M("counter", "realms_spop_messages_total", "SPOE messages handled", s.messages);
	M("counter", "realms_spop_unknown_messages_total", "SPOE messages without a handler", s.unknown_messages);
	M("counter", "realms_spop_protocol_errors_total", "connections closed for a protocol error", s.proto_errors);
	M("counter", "realms_spop_ack_overflows_total", "variables dropped from an ACK larger than a frame", s.ack_overflows);
	M("counter", "realms_mirror_connections_total", "mirror connections from HAProxy's tap", m.conns);
	M("counter", "realms_mirror_requests_total", "mirrored responses metered", m.requests);
	M("counter", "realms_mirror_bytes_total", "mirrored body bytes", m.bytes);
	M("counter", "realms_mirror_gaps_total", "event streams whose middle the tap left out", m.gaps);
	M("counter", "realms_mirror_skipped_bytes_total", "body bytes the tap left out (content deltas)", m.skipped);
	M("counter", "realms_mirror_acked_total", "mirrored responses acknowledged as durable", m.acked);
	M("counter", "realms_mirror_protocol_errors_total", "mirror connections closed for a framing error", m.proto_errors);
	M("counter", "realms_spool_appended_total", "usage records written to the spool (Redis down)", r.appended);
	M("counter", "realms_spool_replayed_total", "usage records replayed from the spool", r.replayed);
	M("counter", "realms_spool_rejected_total", "unreadable spool lines skipped", r.rejected);
	M("gauge", "realms_spool_bytes", "bytes of usage records waiting in the spool", r.spool_bytes);
	M("counter", "realms_usage_estimated_total", "records whose counts are partly estimated (a cut stream, an unparsed answer)", m.estimated);
	M("counter", "realms_usage_model_mismatch_total", "answers whose upstream says it used another model than the one billed", r.model_mismatch);
	M("gauge", "realms_token_cache_entries", "client tokens in the cache", tokcache_count());
	M("gauge", "realms_config_generation", "configuration loads so far (reloads + 1)", cfg ? cfg->generation : 0);
	M("counter", "realms_attempt_outcomes_total", "upstream attempt results fed to the breakers", m.outcomes);
	M("counter", "realms_admission_releases_total", "admitted requests that ended without an answer, their holds released", m.releases);
	M("counter", "realms_breaker_opened_total", "breakers opened (or opened again after a failed probe)", h.opened);
	M("counter", "realms_breaker_closed_total", "breakers closed after a successful probe", h.closed);
	M("counter", "realms_credential_avoided_total", "avoidances started: a failed attempt made the next choices pass its credential over (failover.avoid)", h.avoided);
	M("counter", "realms_session_moves_total", "sessions moved off their first credential (or on again) and remembered there", stick_moves());
	M("counter", "realms_refused_peers_total", "unix socket connections refused: not an allowed user", peers_refused());
	M("counter", "realms_key_suspected_total", "keys made suspect by a 401 to a request", h.suspected);
	M("counter", "realms_breaker_revoked_total", "keys taken out: a probe with the key alone got 401", h.revoked);
	M("counter", "realms_key_restored_total", "revoked keys back in service after a passing probe", h.restored);
	M("counter", "realms_key_probes_ok_total", "key probes answered 2xx", p.ok);
	M("counter", "realms_key_probes_refused_total", "key probes answered 401", p.refused);
	M("counter", "realms_key_probes_inconclusive_total", "key probes with another answer or none", p.inconclusive);
#undef M
	/* Which file is in use, as `sha256sum` prints it: `realmsctl apply`
	 * waits for this to name the file it checked. */
	if (cfg) {
		n = snprintf(out + off, size - off, "# HELP realms_config_info the configuration "
		             "in use: SHA-256 of its file\n# TYPE realms_config_info gauge\n"
		             "realms_config_info{sha256=\"%s\"} 1\n", cfg->sha256);
		if (n < 0 || (size_t)n >= size - off)
			goto full;
		off += (size_t)n;
	}
	n = snprintf(out + off, size - off, "# HELP realms_usage_partial_total records of "
	             "answers cut short, by reason (tap_overflow: the tap's memory bound)\n"
	             "# TYPE realms_usage_partial_total counter\n");
	if (n < 0 || (size_t)n >= size - off)
		goto full;
	off += (size_t)n;
	for (int i = USAGE_COMPLETE + 1; i < USAGE_PARTIAL_KINDS; i++) {
		n = snprintf(out + off, size - off, "realms_usage_partial_total{reason=\"%s\"} %llu\n",
		             record_partial_name((enum usage_partial)i), m.partial[i]);
		if (n < 0 || (size_t)n >= size - off)
			goto full;
		off += (size_t)n;
	}
	n = snprintf(out + off, size - off, "# HELP realms_breaker_state credential state: "
	             "0 closed, 1 open, 2 half-open, 3 key revoked, 4 key suspect (in service)\n# TYPE realms_breaker_state gauge\n");
	if (n < 0 || (size_t)n >= size - off)
		goto full;
	off += (size_t)n;
	{
		struct bstate_ctx bc = { out, size, off, 0 };

		health_foreach(clock_mono_ms(), bstate_line, &bc);
		if (bc.full)
			goto full;
		off = bc.off;
	}
	n = umetrics_render(out + off, size - off, cfg && cfg->agent.metrics_tokens);
	if (n < 0)
		goto full;
	off += (size_t)n;
	config_unref(cfg);
	return (int)off;
full:
	config_unref(cfg);
	return -1;
}

static void respond(struct admin_conn *c, int status, const char *ctype, const char *body, int blen)
{
	char head[512];
	int hl = snprintf(head, sizeof(head),
	                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
	                  "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n"
	                  "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n"
	                  "Connection: close\r\n\r\n", status,
	                  status == 200 ? "OK" : status == 404 ? "Not Found" :
	                  status == 503 ? "Service Unavailable" : status == 500 ?
	                  "Internal Server Error" : "Bad Request",
	                  ctype, blen);

	/* Small answers on a fresh socket: one write each is the normal case;
	 * a peer that cannot take 16 KB at once gets a cut answer, not a stall. */
	if (send(c->fd, head, (size_t)hl, MSG_NOSIGNAL) == hl && blen > 0)
		(void)!send(c->fd, body, (size_t)blen, MSG_NOSIGNAL);
}

static void read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct admin_conn *c = io->data;
	ssize_t n = recv(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len, 0);
	int blen;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_end(loop, c);
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = '\0';
	if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
		if (c->len == sizeof(c->req) - 1)
			conn_end(loop, c);
		return;
	}
	/* The dashboard and its API (dash.c) take the connection over. */
	if (dash_claim(loop, c->fd, c->req, c->len)) {
		c->fd = -1;
		conn_end(loop, c);
		return;
	}
	if (!strncmp(c->req, "GET /metrics ", 13)) {
		char *body = malloc(ADMIN_BODY_MAX);

		blen = body ? metrics(body, ADMIN_BODY_MAX) : -1;
		if (blen < 0)
			respond(c, 500, "text/plain", "", 0);
		else
			respond(c, 200, "text/plain; version=0.0.4", body, blen);
		free(body);
	} else if (!strncmp(c->req, "GET /healthz ", 13)) {
		struct realms_config *cfg = state_config();

		respond(c, cfg ? 200 : 503, "text/plain", cfg ? "ok\n" : "no configuration\n", cfg ? 3 : 17);
		config_unref(cfg);
	} else {
		respond(c, 404, "text/plain", "not found\n", 10);
	}
	conn_end(loop, c);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	conn_end(loop, t->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct admin_lst *l = io->data;
	int fd;

	while ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct admin_conn *c = n_open < ADMIN_CONNS_MAX ? calloc(1, sizeof(*c)) : NULL;

		if (!c) {
			close(fd);
			continue;
		}
		n_open++;
		c->fd = fd;
		ev_io_init(&c->io, read_cb, fd, EV_READ);
		ev_timer_init(&c->tmr, timeout_cb, ADMIN_TIMEOUT_S, 0.);
		c->io.data = c->tmr.data = c;
		ev_io_start(loop, &c->io);
		ev_timer_start(loop, &c->tmr);
	}
}

static int lst_start(struct ev_loop *loop, struct admin_lst *l, const struct netaddr *addr)
{
	int one = 1;

	l->fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -1;
	if (addr->family != AF_UNIX)
		setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 ||
	    listen(l->fd, ADMIN_BACKLOG) < 0) {
		int e = errno;

		close(l->fd);
		l->fd = -1;
		errno = e;
		return -1;
	}
	ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
	l->io.data = l;
	ev_io_start(loop, &l->io);
	return 0;
}

int admin_start(struct ev_loop *loop, const struct netaddr *addr)
{
	if (lst_start(loop, &lst, addr) < 0)
		return -1;
	dash_start(loop);
	return 0;
}

void admin_stop(struct ev_loop *loop)
{
	if (lst.fd < 0)
		return;
	dash_stop(loop);
	ev_io_stop(loop, &lst.io);
	close(lst.fd);
	lst.fd = -1;
}

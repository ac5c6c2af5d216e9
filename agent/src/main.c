/*
 * realms-agent: the SPOA daemon of Realms.
 *
 * The main thread parses the command line, opens the listeners, starts the
 * workers and then runs the acceptor and signal handling on libev's default
 * loop. Accepted sockets are handed to workers round-robin.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include <realms/admin.h>
#include <realms/commit.h>
#include <realms/config.h>
#include <realms/handlers.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/mirror.h>
#include <realms/netaddr.h>
#include <realms/peers.h>
#include <realms/probe.h>
#include <realms/spoa_io.h>
#include <realms/state.h>
#include <realms/worker.h>

struct listener {
	struct netaddr addr;
	enum worker_conn_kind kind;
	int fd;
	ev_io io;
	ev_timer pause;
};

static struct {
	const char *config;
	int check;
	int foreground;
	int threads;
	int threads_set;
	uint32_t max_frame;
	const char *pidfile;
	const char *spool;
	const char *mirror;
	const char *admin;
	int allow_tcp;
	ev_tstamp refused_logged;
	enum log_level verbosity;
	/* The SPOP listeners, then the mirror's: the mirror does not count
	 * against the SPOP maximum. */
	struct listener lst[CFG_MAX_LISTEN + 1];
	int nb_lst;
	int stopping;
} agent = {
	.threads = CFG_THREADS_DEFAULT,
	.max_frame = SPOP_MAX_FRAME_SIZE,
	.verbosity = LOG_LVL_INFO,
};

/* The help text states the default thread count in words. */
_Static_assert(CFG_THREADS_DEFAULT == 1, "--threads says \"else 1\"");

static void usage(FILE *f)
{
	fprintf(f,
"NAME\n"
"    realms-agent - SPOE agent of the Realms gateway for HAProxy\n"
"\n"
"SYNOPSIS\n"
"    realms-agent [-f] [-c FILE] [-l ADDR]... [-M ADDR] [-s DIR] [-T]\n"
"                 [-t THREADS] [-m BYTES] [-p PIDFILE] [-v | -q]\n"
"    realms-agent -c FILE --check\n"
"    realms-agent -h | --help\n"
"\n"
"DESCRIPTION\n"
"    Answers HAProxy's SPOE messages (SPOP 2.0, pipelining) with the\n"
"    gateway's verdicts, set as transaction variables. HAProxy connects to\n"
"    it as an spoe-agent (see haproxy/ in the Realms sources).\n"
"\n"
"OPTIONS\n"
"    -c, --config FILE   configuration file (JSON, see docs/configuration.md);\n"
"                        without it only the realms-inspect message is served\n"
"        --check         with -c: print every problem in the file and in\n"
"                        REALMS_REDIS*, secrets other users can read\n"
"                        among them (never a secret's value); exit 1 on\n"
"                        any error, 0 otherwise\n"
"    -f, --foreground    stay in the foreground and log to stderr;\n"
"                        without it the agent daemonizes and logs to syslog\n"
"    -l, --listen ADDR   SPOP listener: HOST:PORT, [V6]:PORT, unix:PATH or\n"
"                        /PATH; repeatable (at most %d); replaces the\n"
"                        configuration's agent.listen\n"
"    -t, --threads N     worker threads, 1 to %d (default: agent.threads,\n"
"                        else 1)\n"
"    -m, --max-frame N   largest SPOP frame accepted, %u to %u bytes\n"
"                        (default %u); the AGENT-HELLO announces\n"
"                        min(this, HAProxy's)\n"
"    -p, --pidfile FILE  write the process id there\n"
"    -M, --mirror ADDR   response mirror listener for lua-shim's tap\n"
"                        (default: agent.mirror); needs -c\n"
"    -s, --spool DIR     where usage records wait while Redis is down\n"
"                        (default: agent.spool, else " AGENT_SPOOL_DEFAULT ")\n"
"    -T, --allow-tcp     accept TCP listeners (loopback only), as\n"
"                        agent.allow_tcp; without it only unix sockets are\n"
"                        opened, and only HAProxy's user (agent.peers) may\n"
"                        connect to them\n"
"    -v, --verbose       log debug lines too\n"
"    -q, --quiet         log warnings and errors only\n"
"    -h, --help          this text\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT  stop accepting, answer the frames in flight,\n"
"                     disconnect cleanly, exit (at most %.0f s)\n"
"    SIGHUP           reload the configuration\n"
"\n"
"ENVIRONMENT\n"
"    Each overrides one part of the configuration's \"redis\", as for\n"
"    realmsctl; read at start (a reload keeps them), unset or empty = not\n"
"    given. The password is never logged or printed. Realms does not\n"
"    encrypt Redis traffic: use a unix socket or a TLS tunnel when Redis is\n"
"    on another host (docs/redis.md).\n"
"    REALMS_REDIS     Redis address: HOST:PORT, [V6]:PORT, unix:PATH, /PATH\n"
"    REALMS_REDIS_USER\n"
"                     the ACL user to log in as (AUTH user password)\n"
"    REALMS_REDIS_PASSWORD_FILE\n"
"                     a file holding the Redis password (trailing newline\n"
"                     removed; keep it mode 0600): the preferred way\n"
"    REALMS_REDIS_PASSWORD\n"
"                     the password itself, when a file will not do; every\n"
"                     child of the shell that sets it inherits it\n"
"\n"
"EXIT STATUS\n"
"    0 on a clean stop, 1 on a start-up error, 2 on a usage error.\n",
	CFG_MAX_LISTEN, SPOA_MAX_WORKERS, SPOP_MIN_FRAME_SIZE,
	SPOP_MAX_FRAME_SIZE, SPOP_MAX_FRAME_SIZE, SPOA_STOP_GRACE_S);
}

/* ---------------------------------------------------------------------- */
/* Listeners                                                              */
/* ---------------------------------------------------------------------- */

static int listener_open(struct listener *l)
{
	int one = 1;
	struct stat st;

	l->fd = socket(l->addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -1;
	if (l->addr.family == AF_UNIX) {
		/* A stale socket from a previous run; never remove anything else. */
		if (lstat(l->addr.path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(l->addr.path);
	} else {
		setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(l->fd, (struct sockaddr *)&l->addr.ss, l->addr.len) < 0 ||
	    listen(l->fd, AGENT_BACKLOG) < 0) {
		int e = errno;

		close(l->fd);
		l->fd = -1;
		errno = e;
		return -1;
	}
	return 0;
}

static void accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct listener *l = t->data;

	if (!agent.stopping)
		ev_io_start(loop, &l->io);
}

/* Whether the peer of a unix socket is a user allowed to speak to the
 * agent (realms/peers.h); refusals are logged at most every
 * AGENT_REFUSED_LOG_S. */
static int peer_allowed(struct ev_loop *loop, const struct listener *l, int fd)
{
	char buf[160];
	long uid;

	if (l->addr.family != AF_UNIX || peers_check(fd, &uid))
		return 1;
	if (ev_now(loop) - agent.refused_logged >= AGENT_REFUSED_LOG_S) {
		agent.refused_logged = ev_now(loop);
		rlog(LOG_LVL_WARN, "%s: refused a connection from uid %ld: not an allowed peer "
		     "(agent.peers)", netaddr_str(&l->addr, buf, sizeof(buf)), uid);
	}
	return 0;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct listener *l = io->data;
	int fd;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			if (peer_allowed(loop, l, fd))
				worker_dispatch_fd(fd, l->kind);
			else
				close(fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		rlog(LOG_LVL_ERR, "accept: %s; pausing the listener", strerror(errno));
		ev_io_stop(loop, io);
		ev_timer_set(&l->pause, AGENT_ACCEPT_PAUSE_S, 0.);
		ev_timer_start(loop, &l->pause);
		return;
	}
}

static void listeners_close(struct ev_loop *loop)
{
	for (int i = 0; i < agent.nb_lst; i++) {
		struct listener *l = &agent.lst[i];

		if (l->fd < 0)
			continue;
		ev_io_stop(loop, &l->io);
		ev_timer_stop(loop, &l->pause);
		close(l->fd);
		l->fd = -1;
		if (l->addr.family == AF_UNIX)
			unlink(l->addr.path);
	}
}

/* ---------------------------------------------------------------------- */
/* Signals                                                                */
/* ---------------------------------------------------------------------- */

static void stop_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	if (agent.stopping)
		return;
	agent.stopping = 1;
	rlog(LOG_LVL_INFO, "signal %d: stopping (finishing frames in flight)", s->signum);
	listeners_close(loop);
	admin_stop(loop);
	ev_break(loop, EVBREAK_ALL);
}

/* Logs every problem of a configuration load, one line each. */
static void log_diag(const struct cfg_diag *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	cfg_diag_print(d, f);
	fclose(f);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		rlog(strstr(line, ": error: ") ? LOG_LVL_ERR : LOG_LVL_WARN, "%s", line);
	free(buf);
}

/* Whether two "redis" settings are the same (the password compared, never
 * shown). */
static int redis_same(const struct cfg_redis *a, const struct cfg_redis *b)
{
	if (strcmp(a->address, b->address) != 0)
		return 0;
	if (!a->user != !b->user || (a->user && strcmp(a->user, b->user) != 0))
		return 0;
	if (!a->password != !b->password)
		return 0;
	return !a->password || (a->password_len == b->password_len &&
	                        memcmp(a->password, b->password, a->password_len) == 0);
}

/* SIGHUP: load the file again; a bad file keeps the running configuration.
 * Requests in flight finish on the configuration they started with (they
 * hold a reference). Listeners and the Redis address are read at start
 * only: changing them needs a restart, and the log says so. */
static void reload_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct cfg_diag d;
	struct realms_config *nc, *old;

	if (!agent.config) {
		rlog(LOG_LVL_WARN, "SIGHUP: no configuration file to reload (-c)");
		return;
	}
	cfg_diag_init(&d);
	nc = config_load(agent.config, &d);
	log_diag(&d);
	cfg_diag_free(&d);
	if (!nc) {
		rlog(LOG_LVL_ERR, "reload of %s failed; keeping the running configuration",
		     agent.config);
		return;
	}
	old = state_config();
	if (old && !redis_same(&old->redis, &nc->redis))
		rlog(LOG_LVL_WARN, "reload: the Redis address, user or password changed; "
		     "it takes effect at the next restart");
	config_unref(old);
	state_install(nc);
	rlog(LOG_LVL_INFO, "configuration reloaded from %s (generation %llu)",
	     agent.config, (unsigned long long)nc->generation);
}

/* --check: print every problem, exit 1 on any error. The Redis endpoint is
 * resolved as at start, so REALMS_REDIS_* are checked too. */
static int check_config(void)
{
	struct cfg_diag d;
	struct cfg_redis ep;
	struct realms_config *c;
	int errors;

	cfg_diag_init(&d);
	c = config_load(agent.config, &d);
	if (c && config_redis_env(c, &ep, &d) == 0)
		config_redis_release(&ep);
	cfg_diag_print(&d, stdout);
	errors = cfg_diag_errors(&d);
	cfg_diag_free(&d);
	if (c && !errors)
		printf("%s: configuration is valid (%zu models, %zu channels, %zu credentials)\n",
		       agent.config, c->n_models, c->n_channels, c->n_creds);
	config_unref(c);
	return errors || !c ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Start-up                                                               */
/* ---------------------------------------------------------------------- */

/* Who may connect to the unix listeners: agent.peers, else root, the
 * agent's own user and the "haproxy" user when it exists. Returns 0, or
 * -1 with the error logged. */
static int peers_init(const struct realms_config *c)
{
	uid_t uid;

	peers_allow(0);
	peers_allow(geteuid());
	if (c && c->agent.n_peers) {
		for (size_t i = 0; i < c->agent.n_peers; i++) {
			if (peers_resolve(c->agent.peers[i], &uid) < 0) {
				rlog(LOG_LVL_ERR, "agent.peers: no such user '%s'", c->agent.peers[i]);
				return -1;
			}
			peers_allow(uid);
		}
	} else if (peers_resolve("haproxy", &uid) == 0) {
		peers_allow(uid);
	}
	return 0;
}

/* TCP listeners: anyone on the host can connect to them, so they are
 * refused unless allowed, and never off loopback: the SPOP answers carry
 * upstream keys, which must not cross a network in clear. */
static int listeners_check(void)
{
	char buf[160];

	for (int i = 0; i < agent.nb_lst; i++) {
		const struct netaddr *a = &agent.lst[i].addr;

		if (a->family == AF_UNIX)
			continue;
		netaddr_str(a, buf, sizeof(buf));
		if (!netaddr_is_loopback(a)) {
			rlog(LOG_LVL_ERR, "refusing to listen on %s: it is not a loopback address, "
			     "and the agent's answers carry upstream keys in clear; use a unix "
			     "socket", buf);
			return -1;
		}
		if (!agent.allow_tcp) {
			rlog(LOG_LVL_ERR, "refusing to listen on TCP %s: any local user could "
			     "connect to it; use a unix socket (peers are checked there), or set "
			     "agent.allow_tcp (--allow-tcp) to accept the risk", buf);
			return -1;
		}
		rlog(LOG_LVL_WARN, "listening on TCP %s (allow_tcp): any local user can connect "
		     "to it", buf);
	}
	return 0;
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f);
}

static int daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	if (chdir("/") < 0)
		return -1;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config",     required_argument, NULL, 'c' },
		{ "foreground", no_argument,       NULL, 'f' },
		{ "listen",     required_argument, NULL, 'l' },
		{ "threads",    required_argument, NULL, 't' },
		{ "max-frame",  required_argument, NULL, 'm' },
		{ "pidfile",    required_argument, NULL, 'p' },
		{ "verbose",    no_argument,       NULL, 'v' },
		{ "quiet",      no_argument,       NULL, 'q' },
		{ "help",       no_argument,       NULL, 'h' },
		{ "check",      no_argument,       NULL, 'C' },
		{ "mirror",     required_argument, NULL, 'M' },
		{ "spool",      required_argument, NULL, 's' },
		{ "allow-tcp",  no_argument,       NULL, 'T' },
		{ NULL, 0, NULL, 0 }
	};
	char err[160], *end;
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "c:fl:t:m:p:vqhM:s:T", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			agent.config = optarg;
			break;
		case 'C':
			agent.check = 1;
			break;
		case 'f':
			agent.foreground = 1;
			break;
		case 'l':
			if (agent.nb_lst == CFG_MAX_LISTEN) {
				fprintf(stderr, "realms-agent: at most %d listeners\n", CFG_MAX_LISTEN);
				return -1;
			}
			if (netaddr_parse(optarg, &agent.lst[agent.nb_lst].addr, err, sizeof(err)) < 0) {
				fprintf(stderr, "realms-agent: -l: %s\n", err);
				return -1;
			}
			agent.lst[agent.nb_lst++].fd = -1;
			break;
		case 't':
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > SPOA_MAX_WORKERS) {
				fprintf(stderr, "realms-agent: -t: threads must be 1 to %d\n", SPOA_MAX_WORKERS);
				return -1;
			}
			agent.threads = (int)v;
			agent.threads_set = 1;
			break;
		case 'm':
			v = strtol(optarg, &end, 10);
			if (*end || v < (long)SPOP_MIN_FRAME_SIZE || v > (long)SPOP_MAX_FRAME_SIZE) {
				fprintf(stderr, "realms-agent: -m: max frame must be %u to %u\n",
				        SPOP_MIN_FRAME_SIZE, SPOP_MAX_FRAME_SIZE);
				return -1;
			}
			agent.max_frame = (uint32_t)v;
			break;
		case 'p':
			agent.pidfile = optarg;
			break;
		case 'M':
			agent.mirror = optarg;
			break;
		case 's':
			agent.spool = optarg;
			break;
		case 'T':
			agent.allow_tcp = 1;
			break;
		case 'v':
			agent.verbosity = LOG_LVL_DEBUG;
			break;
		case 'q':
			agent.verbosity = LOG_LVL_WARN;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "realms-agent: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (agent.check && !agent.config) {
		fprintf(stderr, "realms-agent: --check needs -c FILE\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ev_loop *loop;
	ev_signal sig_term, sig_int, sig_hup;
	char buf[160];

	if (parse_args(argc, argv) < 0)
		return 2;
	if (agent.check)
		return check_config();
	log_init("realms-agent", !agent.foreground, agent.verbosity);
	signal(SIGPIPE, SIG_IGN);

	if (agent.config) {
		struct cfg_diag d;
		struct realms_config *c;

		cfg_diag_init(&d);
		c = config_load(agent.config, &d);
		log_diag(&d);
		cfg_diag_free(&d);
		if (!c) {
			rlog(LOG_LVL_ERR, "%s: invalid configuration (see above; "
			     "realms-agent -c FILE --check lists every problem)", agent.config);
			return 1;
		}
		cfg_diag_init(&d);
		if (state_redis_init(c, &d) < 0) {
			log_diag(&d);
			cfg_diag_free(&d);
			config_unref(c);
			rlog(LOG_LVL_ERR, "cannot tell how to reach Redis (see above)");
			return 1;
		}
		log_diag(&d);
		cfg_diag_free(&d);
		/* Listeners and threads from the file unless given on the
		 * command line. */
		if (agent.nb_lst == 0) {
			for (size_t i = 0; i < c->agent.n_listen && i < CFG_MAX_LISTEN; i++) {
				agent.lst[agent.nb_lst].addr = c->agent.listen_addr[i];
				agent.lst[agent.nb_lst++].fd = -1;
			}
		}
		if (!agent.threads_set && c->agent.threads > 0)
			agent.threads = c->agent.threads;
		if (!agent.mirror)
			agent.mirror = c->agent.mirror;
		if (!agent.spool)
			agent.spool = c->agent.spool;
		agent.admin = c->agent.admin;
		if (c->agent.allow_tcp)
			agent.allow_tcp = 1;
		state_install(c);
		if (hdl_request_register() < 0) {
			rlog(LOG_LVL_ERR, "cannot register handlers");
			return 1;
		}
	}
	if (agent.nb_lst == 0) {
		rlog(LOG_LVL_ERR, "no listener: give -l ADDR or agent.listen in the configuration");
		return 2;
	}
	{
		struct realms_config *c = state_config();
		int rc = peers_init(c);

		config_unref(c);
		if (rc < 0)
			return 1;
	}
	if (agent.mirror) {
		/* Usage needs prices and Redis: only with a configuration. */
		if (!agent.config) {
			rlog(LOG_LVL_ERR, "the mirror listener needs a configuration (-c)");
			return 2;
		}
		if (netaddr_parse(agent.mirror, &agent.lst[agent.nb_lst].addr, buf, sizeof(buf)) < 0) {
			rlog(LOG_LVL_ERR, "mirror listener: %s", buf);
			return 2;
		}
		agent.lst[agent.nb_lst].kind = WORKER_CONN_MIRROR;
		agent.lst[agent.nb_lst++].fd = -1;
		if (mirror_init() < 0 || commit_init(agent.spool ? agent.spool : AGENT_SPOOL_DEFAULT) < 0) {
			rlog(LOG_LVL_ERR, "cannot set up usage recording (spool %s)",
			     agent.spool ? agent.spool : AGENT_SPOOL_DEFAULT);
			return 1;
		}
	}
	if (agent.config && probe_start() < 0) {
		rlog(LOG_LVL_ERR, "cannot start the key prober");
		return 1;
	}
	if (hdl_inspect_register() < 0) {
		rlog(LOG_LVL_ERR, "cannot register handlers");
		return 1;
	}
	if (spoa_io_init(agent.max_frame) < 0) {
		rlog(LOG_LVL_ERR, "cannot register the SPOP connections with the workers");
		return 1;
	}

	if (listeners_check() < 0)
		return 1;
	for (int i = 0; i < agent.nb_lst; i++) {
		if (listener_open(&agent.lst[i]) < 0) {
			rlog(LOG_LVL_ERR, "cannot listen on %s: %s",
			     netaddr_str(&agent.lst[i].addr, buf, sizeof(buf)), strerror(errno));
			return 1;
		}
	}
	if (!agent.foreground && daemonize() < 0) {
		rlog(LOG_LVL_ERR, "cannot daemonize: %s", strerror(errno));
		return 1;
	}
	if (agent.pidfile && write_pidfile(agent.pidfile) < 0) {
		rlog(LOG_LVL_ERR, "cannot write %s: %s", agent.pidfile, strerror(errno));
		return 1;
	}

	loop = ev_default_loop(EVFLAG_AUTO);
	if (!loop || worker_start_all(agent.threads) < 0) {
		rlog(LOG_LVL_ERR, "cannot start the event loops");
		return 1;
	}
	for (int i = 0; i < agent.nb_lst; i++) {
		struct listener *l = &agent.lst[i];

		ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
		l->io.data = l;
		ev_init(&l->pause, accept_resume_cb);
		l->pause.data = l;
		ev_io_start(loop, &l->io);
		rlog(LOG_LVL_INFO, "listening on %s", netaddr_str(&l->addr, buf, sizeof(buf)));
	}
	if (agent.admin) {
		struct netaddr a;

		if (netaddr_parse(agent.admin, &a, buf, sizeof(buf)) < 0 || admin_start(loop, &a) < 0) {
			rlog(LOG_LVL_ERR, "cannot serve admin HTTP on %s: %s", agent.admin,
			     strerror(errno));
			return 1;
		}
		rlog(LOG_LVL_INFO, "admin HTTP (/metrics, /healthz) on %s", agent.admin);
		if (!netaddr_is_loopback(&a))
			rlog(LOG_LVL_WARN, "admin HTTP on %s, not a loopback address: /metrics shows "
			     "credential names and states and traffic counts to anyone who can "
			     "reach it", agent.admin);
	}
	ev_signal_init(&sig_term, stop_cb, SIGTERM);
	ev_signal_init(&sig_int, stop_cb, SIGINT);
	ev_signal_init(&sig_hup, reload_cb, SIGHUP);
	ev_signal_start(loop, &sig_term);
	ev_signal_start(loop, &sig_int);
	ev_signal_start(loop, &sig_hup);
	rlog(LOG_LVL_INFO, "started: %d worker threads, max frame %u bytes",
	     agent.threads, agent.max_frame);

	ev_run(loop, 0);

	worker_stop_all();
	probe_stop();
	state_release();
	if (agent.pidfile)
		unlink(agent.pidfile);
	rlog(LOG_LVL_INFO, "stopped");
	ev_loop_destroy(loop);
	return 0;
}

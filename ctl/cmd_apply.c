/*
 * realmsctl apply: after an edit of realms.json, everything that makes the
 * running gateway use it, in an order that stops at the first failure with
 * the running gateway untouched:
 *
 *   1. check the file (config_load, as the agent's reload does);
 *   2. ask HAProxy and the agent whether they can be reloaded at all (the
 *      master CLI answers, the pid is alive, the admin listener answers);
 *   3. render the channel part (and the setup page) to FILE.new, next to
 *      the live FILE;
 *   4. haproxy -c on the operator's -f list, FILE.new in place of FILE;
 *   5. keep the live files as FILE.bak (a hard link: FILE never goes
 *      missing), rename FILE.new over FILE;
 *   6. reload HAProxy and wait for its new worker;
 *   7. reload the agent and wait until its /metrics names the SHA-256 of
 *      the file checked in 1.
 *
 * Up to 5 nothing running has changed. A failure in 6 puts the .bak files
 * back (HAProxy kept its old worker); a failure in 7 also reloads HAProxy
 * on them again. Only when that rollback fails is the gateway left mixed
 * (exit 3).
 *
 * HAProxy first, then the agent: new backends exist before the agent
 * routes to them. A removed channel has the converse problem for the few
 * milliseconds between the two reloads (the agent may still name it); an
 * attempt that fails that way is retried on another credential.
 *
 * Hitless: HAProxy's old worker finishes the streams it holds (and its tap
 * reports their usage to the agent, whose mirror listener a reload does not
 * touch); requests in flight in the agent finish on the configuration they
 * started with.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <realms/config.h>
#include <realms/netaddr.h>
#include <realms/render.h>

#include "ctl.h"

extern char **environ;

/* Debian's haproxy.service starts HAProxy with "-S" on this socket. */
#define APPLY_MASTER_DEFAULT   "/run/haproxy-master.sock"
#define APPLY_HAPROXY_UNIT     "haproxy"
#define APPLY_AGENT_UNIT       "realms-agent"
/* How long each reload may take to be confirmed (--timeout). */
#define APPLY_TIMEOUT_DEFAULT  30
#define APPLY_TIMEOUT_MAX      600
/* Answers kept from a child (haproxy -c, systemctl), the master CLI and the
 * admin listener; the rest is read and dropped. */
#define APPLY_OUT_MAX          (64 * 1024)
#define APPLY_METRICS_MAX      (512 * 1024)
#define APPLY_ENV_MAX          (1024 * 1024)
/* Worker pids remembered from "show proc". */
#define APPLY_WORKERS_MAX      64
/* -f files. */
#define APPLY_FILES_MAX        32
#define APPLY_POLL_MS          100

struct apply_opts {
	const char *channels;
	const char *page;
	const char *files[APPLY_FILES_MAX];
	size_t n_files;
	const char *haproxy_bin;
	const char *master;         /* master CLI socket, or NULL */
	const char *haproxy_unit;   /* systemctl reload, or NULL */
	const char *agent_pidfile;
	const char *agent_unit;
	int timeout_s;
};

/* One rendered file: the live path and its two neighbours. */
struct apply_file {
	const char *live;
	char next[PATH_MAX];        /* FILE.new */
	char bak[PATH_MAX];         /* FILE.bak */
	int had_live;               /* FILE existed: FILE.bak holds it */
	int installed;              /* FILE.new was renamed over FILE */
};

/* What "show proc" says about the master. */
struct proc_state {
	pid_t master;
	long reloads, failed;
	pid_t workers[APPLY_WORKERS_MAX];
	size_t n_workers;
};

/* What the agent's /metrics says about its configuration. */
struct agent_state {
	unsigned long long generation;
	char sha256[65];
};

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Appends up to APPLY_OUT_MAX - 1 bytes read from fd to a NUL-terminated
 * buffer until EOF or the deadline; the rest is read and dropped. Returns
 * 0 at EOF, -1 on error or timeout (errno set). *out is malloc'd (caller
 * frees), also on error. */
static int read_all(int fd, long long deadline, size_t max, char **out)
{
	size_t len = 0;
	char drop[4096];
	char *buf = malloc(max);

	*out = buf;
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	buf[0] = '\0';
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (len < max - 1)
			n = read(fd, buf + len, max - 1 - len);
		else
			n = read(fd, drop, sizeof(drop));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (len < max - 1) {
			len += (size_t)n;
			buf[len] = '\0';
		}
	}
}

/* Runs argv (no shell; PATH searched) in envp (NULL: ours) with stdout and
 * stderr into *out (malloc'd, caller frees, NULL if it could not start).
 * Returns its exit status, or -1 if it could not start, was killed, or
 * outlived timeout_s (then it is killed). */
static int run_env(char *const argv[], char *const envp[], int timeout_s, char **out)
{
	posix_spawn_file_actions_t fa;
	int p[2], st, err, rc = -1;
	pid_t pid;

	*out = NULL;
	if (pipe2(p, O_CLOEXEC) < 0) {
		ctl_errmsg("%s: %s", argv[0], strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (err) {
		ctl_errmsg("cannot run %s: %s", argv[0], strerror(err));
		close(p[0]);
		return -1;
	}
	if (read_all(p[0], now_ms() + (long long)timeout_s * 1000, APPLY_OUT_MAX, out) < 0) {
		ctl_errmsg("%s: %s", argv[0], errno == ETIMEDOUT ?
		           "no answer in time: stopped" : strerror(errno));
		kill(pid, SIGKILL);
	}
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		rc = WEXITSTATUS(st);
	return rc;
}

static int run(char *const argv[], int timeout_s, char **out)
{
	return run_env(argv, NULL, timeout_s, out);
}

/* Prints a child's or a server's answer, indented, on stderr. */
static void print_indented(const char *s)
{
	const char *e;

	for (; s && *s; s = *e ? e + 1 : e) {
		e = strchr(s, '\n');
		if (!e)
			e = s + strlen(s);
		if (e > s)
			fprintf(stderr, "    %.*s\n", (int)(e - s), s);
	}
}

/* Connects a stream socket to addr, blocking, within timeout_ms. Returns the
 * fd or -1 (errno set). */
static int connect_to(const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	/* Linux bounds a blocking connect() by SO_SNDTIMEO. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, sa, len) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Sends req whole, closes our side, reads the answer to EOF into *out
 * (malloc'd, caller frees). Returns 0, or -1 (errno set). */
static int exchange(int fd, const char *req, int timeout_ms, size_t max, char **out)
{
	size_t off = 0, len = strlen(req);

	*out = NULL;
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	/* The master CLI answers a half-closed connection and closes it;
	 * without this it would wait for a next command. */
	shutdown(fd, SHUT_WR);
	return read_all(fd, now_ms() + timeout_ms, max, out);
}

/* The environment of process pid (/proc/PID/environ: its own user or
 * root), without HAPROXY_* (a master's own HAPROXY_MWORKER_WAIT_ONLY and
 * friends would make "haproxy -c" act as a master in wait mode, and the
 * prefix is HAProxy's), as an envp in *envp whose strings live in *buf;
 * both malloc'd, caller frees. Returns 0, or -1 (errno set). */
static int proc_environ(pid_t pid, char ***envp, char **buf)
{
	char path[64];
	size_t len = 0, n = 0;
	int fd;

	*envp = NULL;
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (read_all(fd, now_ms() + 5000, APPLY_ENV_MAX, buf) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	/* read_all keeps a NUL after the bytes: each variable ends in one */
	while (len < APPLY_ENV_MAX && (*buf)[len]) {
		len += strlen(*buf + len) + 1;
		n++;
	}
	*envp = calloc(n + 1, sizeof(**envp));
	if (!*envp) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0, j = 0, off = 0; i < n; i++) {
		if (strncmp(*buf + off, "HAPROXY_", 8) != 0)
			(*envp)[j++] = *buf + off;
		off += strlen(*buf + off) + 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Files                                                                  */
/* ---------------------------------------------------------------------- */

static int file_init(struct apply_file *f, const char *live)
{
	memset(f, 0, sizeof(*f));
	f->live = live;
	if ((size_t)snprintf(f->next, sizeof(f->next), "%s.new", live) >= sizeof(f->next) ||
	    (size_t)snprintf(f->bak, sizeof(f->bak), "%s.bak", live) >= sizeof(f->bak)) {
		ctl_errmsg("%s: path too long", live);
		return -1;
	}
	return 0;
}

/* Renders into f->next, flushed to disk, so that the rename in
 * file_install() publishes whole bytes. Returns 0 or -1. */
static int file_render(struct apply_file *f, int (*fn)(const struct realms_config *, FILE *),
                       const struct realms_config *cfg)
{
	FILE *out = fopen(f->next, "we");
	int rc;

	if (!out) {
		ctl_errmsg("%s: %s", f->next, strerror(errno));
		return -1;
	}
	rc = fn(cfg, out);
	if (fflush(out) != 0 || fsync(fileno(out)) != 0)
		rc = -1;
	if (fclose(out) != 0 || rc < 0) {
		ctl_errmsg("%s: cannot write", f->next);
		unlink(f->next);
		return -1;
	}
	return 0;
}

/* Whether f->next holds the same bytes as f->live (a missing live file
 * differs). */
static int file_unchanged(const struct apply_file *f)
{
	FILE *a = fopen(f->live, "re"), *b = fopen(f->next, "re");
	int same = a && b, ca, cb;

	while (same) {
		ca = getc(a);
		cb = getc(b);
		if (ca != cb)
			same = 0;
		else if (ca == EOF)
			break;
	}
	if (a)
		fclose(a);
	if (b)
		fclose(b);
	return same;
}

/* FILE stays in place until the rename replaces it, so HAProxy finds one
 * at every instant; FILE.bak is a second name for the old bytes. */
static int file_install(struct apply_file *f)
{
	if (access(f->live, F_OK) == 0) {
		if (unlink(f->bak) < 0 && errno != ENOENT) {
			ctl_errmsg("%s: %s", f->bak, strerror(errno));
			return -1;
		}
		if (link(f->live, f->bak) < 0) {
			ctl_errmsg("cannot keep %s as %s: %s", f->live, f->bak, strerror(errno));
			return -1;
		}
		f->had_live = 1;
	}
	if (rename(f->next, f->live) < 0) {
		ctl_errmsg("cannot rename %s to %s: %s", f->next, f->live, strerror(errno));
		return -1;
	}
	f->installed = 1;
	return 0;
}

/* Puts the previous bytes back under FILE. Returns 0 or -1. */
static int file_restore(struct apply_file *f)
{
	if (!f->installed)
		return 0;
	if (f->had_live ? rename(f->bak, f->live) : unlink(f->live)) {
		ctl_errmsg("cannot put %s back: %s", f->live, strerror(errno));
		return -1;
	}
	f->installed = 0;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* systemd                                                                */
/* ---------------------------------------------------------------------- */

/* Whether systemd runs UNIT. Returns 0, or -1 after printing why. */
static int unit_active(const char *unit)
{
	char *argv[] = { "systemctl", "is-active", "--quiet", (char *)unit, NULL };
	char *out;
	int rc = run(argv, 10, &out);

	free(out);
	if (rc != 0)
		ctl_errmsg("systemd unit %s is not active (systemctl is-active)", unit);
	return rc == 0 ? 0 : -1;
}

/* The main pid of UNIT, or 0 when systemd does not say. */
static pid_t unit_pid(const char *unit)
{
	char *argv[] = { "systemctl", "show", "--property", "MainPID", "--value",
	                 (char *)unit, NULL };
	char *out;
	long pid = 0;

	if (run(argv, 10, &out) != 0 || !out || sscanf(out, "%ld", &pid) != 1 || pid < 0)
		pid = 0;
	free(out);
	return (pid_t)pid;
}

/* systemctl reload UNIT. Returns 0 or -1 after printing systemctl's words. */
static int systemctl_reload(const char *unit, int timeout_s)
{
	char *argv[] = { "systemctl", "reload", (char *)unit, NULL };
	char *out;
	int rc = run(argv, timeout_s, &out);

	if (rc != 0) {
		ctl_errmsg("systemctl reload %s failed:", unit);
		print_indented(out);
	}
	free(out);
	return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* HAProxy                                                                */
/* ---------------------------------------------------------------------- */

/* "haproxy -c" on the -f list, the new channel part in place of the
 * live one (appended when the list does not name it), in the environment
 * of HAProxy's master (pid; 0: unknown): the variables realms.cfg reads
 * are those HAProxy has, not this shell's. Returns 0 or -1 after printing
 * HAProxy's words. */
static int haproxy_check(const struct apply_opts *o, const struct apply_file *chan, pid_t pid)
{
	char *argv[2 + 2 * (APPLY_FILES_MAX + 1) + 1];
	struct stat live, st;
	int n = 0, found = 0, has_live = stat(o->channels, &live) == 0, rc;
	char *out, **envp = NULL, *envbuf = NULL;

	if (pid > 0 && proc_environ(pid, &envp, &envbuf) < 0)
		ctl_errmsg("cannot read HAProxy's environment (/proc/%d/environ: %s): haproxy "
		           "-c runs in this one", (int)pid, strerror(errno));

	argv[n++] = (char *)o->haproxy_bin;
	/* Not -q: HAProxy 2.6 then keeps its alerts to itself. */
	argv[n++] = "-c";
	for (size_t i = 0; i < o->n_files; i++) {
		int same = strcmp(o->files[i], o->channels) == 0 ||
		           (has_live && stat(o->files[i], &st) == 0 &&
		            st.st_dev == live.st_dev && st.st_ino == live.st_ino);

		argv[n++] = "-f";
		argv[n++] = same ? (char *)chan->next : (char *)o->files[i];
		found |= same;
	}
	if (!found) {
		argv[n++] = "-f";
		argv[n++] = (char *)chan->next;
	}
	argv[n] = NULL;
	rc = run_env(argv, envp, o->timeout_s, &out);
	if (rc != 0) {
		ctl_errmsg("haproxy -c refused the configuration with the new channel part "
		           "(%s):", chan->next);
		print_indented(out);
	}
	free(out);
	free(envp);
	free(envbuf);
	return rc == 0 ? 0 : -1;
}

/* One command on the master CLI; the answer into *out (caller frees).
 * Returns 0, or -1 after printing why. */
static int mcli(const char *sock, const char *cmd, int timeout_ms, char **out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char req[64];
	int fd, rc;

	*out = NULL;
	if (strlen(sock) >= sizeof(sun.sun_path)) {
		ctl_errmsg("%s: path too long for a unix socket", sock);
		return -1;
	}
	strcpy(sun.sun_path, sock);
	snprintf(req, sizeof(req), "%s\n", cmd);
	fd = connect_to((struct sockaddr *)&sun, sizeof(sun), timeout_ms);
	if (fd < 0)
		return -1;
	rc = exchange(fd, req, timeout_ms, APPLY_OUT_MAX, out);
	close(fd);
	return rc;
}

/* Parses "show proc": the master's reload and failure counts, the pids
 * under "# workers" (not "# old workers"). Returns 0, or -1 when it does
 * not look like "show proc". */
static int parse_show_proc(const char *s, struct proc_state *ps)
{
	int section = 0, have_master = 0;   /* 1: # workers, 2: any other # */
	const char *e;

	memset(ps, 0, sizeof(*ps));
	for (; *s; s = *e ? e + 1 : e) {
		long pid, a, b;
		char type[32];

		e = strchr(s, '\n');
		if (!e)
			e = s + strlen(s);
		if (*s == '#') {
			if (!strncmp(s, "#<PID>", 6))
				continue;
			section = !strncmp(s, "# workers", 9) ? 1 : 2;
			continue;
		}
		if (sscanf(s, "%ld %31s %ld [failed: %ld]", &pid, type, &a, &b) == 4 &&
		    strcmp(type, "master") == 0) {
			ps->master = (pid_t)pid;
			ps->reloads = a;
			ps->failed = b;
			have_master = 1;
		} else if (section == 1 && sscanf(s, "%ld %31s", &pid, type) == 2 &&
		           strcmp(type, "worker") == 0 && ps->n_workers < APPLY_WORKERS_MAX) {
			ps->workers[ps->n_workers++] = (pid_t)pid;
		}
	}
	return have_master ? 0 : -1;
}

/* "show proc" into ps. Returns 0, or -1 (why printed when loud). */
static int master_state(const char *sock, int loud, struct proc_state *ps)
{
	char *out = NULL;
	int rc = mcli(sock, "show proc", 5000, &out);

	if (rc < 0 && loud)
		ctl_errmsg("cannot reach HAProxy's master CLI at %s: %s (is HAProxy started "
		           "with -W -S %s?)", sock, strerror(errno), sock);
	else if (rc == 0 && parse_show_proc(out, ps) < 0) {
		if (loud)
			ctl_errmsg("%s does not answer \"show proc\" as a master CLI does", sock);
		rc = -1;
	}
	free(out);
	return rc;
}

static int has_pid(const struct proc_state *ps, pid_t pid)
{
	for (size_t i = 0; i < ps->n_workers; i++)
		if (ps->workers[i] == pid)
			return 1;
	return 0;
}

/* Reloads through the master CLI and waits for the outcome. HAProxy 2.7
 * and later (3.0 in Debian 13) answer "reload" with "Success=1" or
 * "Success=0" and the startup logs; 2.6 (Debian 12) closes the connection
 * without a word and re-executes. Both are then confirmed the same way:
 * "show proc" counts one more reload, and either one more failure or a
 * worker that was not there before. Returns 0 or -1 after printing why. */
static int master_reload(const struct apply_opts *o, const struct proc_state *before,
                         pid_t *worker)
{
	long long deadline = now_ms() + (long long)o->timeout_s * 1000;
	struct proc_state ps;
	char *out = NULL;
	const char *logs;
	int success = 0;

	if (mcli(o->master, "reload", o->timeout_s * 1000, &out) < 0) {
		ctl_errmsg("HAProxy's master CLI at %s: reload: %s", o->master, strerror(errno));
		free(out);
		return -1;
	}
	if (strstr(out, "Success=0")) {
		logs = strstr(out, "--\n");
		ctl_errmsg("HAProxy refused to reload:");
		print_indented(logs ? logs + 3 : out);
		free(out);
		return -1;
	}
	/* Said in so many words: "show proc" only names the new worker, and
	 * its format may change with versions; give it a moment, no more. */
	if (strstr(out, "Success=1")) {
		if (deadline > now_ms() + 2000)
			deadline = now_ms() + 2000;
		success = 1;
	}
	free(out);
	while (now_ms() < deadline) {
		/* 2.6 re-executes the master: refused connections for a moment */
		if (master_state(o->master, 0, &ps) == 0 && ps.reloads > before->reloads) {
			if (ps.failed > before->failed) {
				ctl_errmsg("HAProxy refused to reload (its log says why; \"show "
				           "startup-logs\" on %s too)", o->master);
				return -1;
			}
			for (size_t i = 0; i < ps.n_workers; i++) {
				if (!has_pid(before, ps.workers[i])) {
					*worker = ps.workers[i];
					return 0;
				}
			}
		}
		sleep_ms(APPLY_POLL_MS);
	}
	if (success)
		return 0;
	ctl_errmsg("HAProxy's master at %s did not report a new worker within %d s",
	           o->master, o->timeout_s);
	return -1;
}

/* Reloads HAProxy as configured; *worker is its new worker when known. */
static int haproxy_reload(const struct apply_opts *o, const struct proc_state *before,
                          pid_t *worker)
{
	*worker = 0;
	if (o->master)
		return master_reload(o, before, worker);
	return systemctl_reload(o->haproxy_unit, o->timeout_s);
}

/* ---------------------------------------------------------------------- */
/* The agent                                                              */
/* ---------------------------------------------------------------------- */

/* The pid in the agent's pid file, alive and ours to signal. Returns it,
 * or -1 after printing why. */
static pid_t agent_pid(const char *path)
{
	char buf[32], *end;
	FILE *f = fopen(path, "re");
	long pid;

	if (!f || !fgets(buf, sizeof(buf), f)) {
		ctl_errmsg("cannot read the agent's pid file %s: %s", path,
		           f ? "empty" : strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || pid <= 1 || pid > INT_MAX) {
		ctl_errmsg("%s does not hold a process id", path);
		return -1;
	}
	if (kill((pid_t)pid, 0) < 0) {
		ctl_errmsg("the agent's pid %ld (from %s): %s", pid, path,
		           errno == ESRCH ? "no such process" : strerror(errno));
		return -1;
	}
	return (pid_t)pid;
}

/* GET /metrics on the agent's admin listener: the configuration generation
 * and SHA-256. Returns 0, or -1 (why printed when loud). */
static int agent_state(const struct realms_config *cfg, int loud, struct agent_state *as)
{
	const struct netaddr *a = &cfg->agent.admin_addr;
	char *out = NULL, *p, *q, where[160];
	int fd, rc = -1;

	memset(as, 0, sizeof(*as));
	netaddr_str(a, where, sizeof(where));
	fd = connect_to((const struct sockaddr *)&a->ss, a->len, 5000);
	if (fd < 0) {
		if (loud)
			ctl_errmsg("cannot reach the agent's admin listener at %s: %s", where,
			           strerror(errno));
		return -1;
	}
	if (exchange(fd, "GET /metrics HTTP/1.0\r\n\r\n", 5000, APPLY_METRICS_MAX, &out) < 0) {
		if (loud)
			ctl_errmsg("the agent's admin listener at %s: %s", where, strerror(errno));
		goto out;
	}
	p = strstr(out, "\nrealms_config_generation ");
	q = strstr(out, "\nrealms_config_info{sha256=\"");
	if (!p || !q || sscanf(p, "\nrealms_config_generation %llu", &as->generation) != 1 ||
	    sscanf(q, "\nrealms_config_info{sha256=\"%64[0-9a-f]\"}", as->sha256) != 1) {
		if (loud)
			ctl_errmsg("the agent at %s does not say which configuration it runs "
			           "(an older realms-agent?)", where);
		goto out;
	}
	rc = 0;
out:
	free(out);
	close(fd);
	return rc;
}

/* SIGHUP or systemctl reload, then, with an admin listener, waits until the
 * agent runs the file checked (its SHA-256) in a new generation. Returns 0,
 * 1 (reloaded, not confirmed: no admin listener) or -1 after printing why. */
static int agent_reload(const struct apply_opts *o, const struct realms_config *cfg,
                        pid_t pid, const struct agent_state *before, struct agent_state *now)
{
	long long deadline = now_ms() + (long long)o->timeout_s * 1000;

	if (pid > 0 && kill(pid, SIGHUP) < 0) {
		ctl_errmsg("cannot signal the agent (pid %d): %s", (int)pid, strerror(errno));
		return -1;
	}
	if (pid <= 0 && systemctl_reload(o->agent_unit, o->timeout_s) < 0)
		return -1;
	if (!cfg->agent.admin)
		return 1;
	while (now_ms() < deadline) {
		if (agent_state(cfg, 0, now) == 0 && now->generation > before->generation) {
			if (strcmp(now->sha256, cfg->sha256) == 0)
				return 0;
			ctl_errmsg("the agent loaded a file whose SHA-256 is %s, not the one "
			           "checked here (%s): does it read %s?", now->sha256, cfg->sha256,
			           cfg->origin);
			return -1;
		}
		sleep_ms(APPLY_POLL_MS);
	}
	ctl_errmsg("the agent did not take the new configuration within %d s: it keeps "
	           "the running one when it refuses a file (its log says why)", o->timeout_s);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* apply                                                                  */
/* ---------------------------------------------------------------------- */

/* Where the reloads go when no option says: Debian's master socket, else
 * systemd's units. Returns 0 or a usage error. */
static int pick_defaults(struct apply_opts *o)
{
	struct stat st;
	int systemd = stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);

	if (o->master && o->haproxy_unit)
		return ctl_usage_err("apply ", "apply: --haproxy-master or --haproxy-unit, not both");
	if (o->agent_pidfile && o->agent_unit)
		return ctl_usage_err("apply ", "apply: --agent-pidfile or --agent-unit, not both");
	if (!o->master && !o->haproxy_unit) {
		if (stat(APPLY_MASTER_DEFAULT, &st) == 0 && S_ISSOCK(st.st_mode))
			o->master = APPLY_MASTER_DEFAULT;
		else if (systemd)
			o->haproxy_unit = APPLY_HAPROXY_UNIT;
		else
			return ctl_usage_err("apply ", "apply: cannot tell how to reload HAProxy: "
			                     "give --haproxy-master SOCKET or --haproxy-unit UNIT");
	}
	if (!o->agent_pidfile && !o->agent_unit) {
		if (systemd)
			o->agent_unit = APPLY_AGENT_UNIT;
		else
			return ctl_usage_err("apply ", "apply: cannot tell how to reload the agent: "
			                     "give --agent-pidfile FILE or --agent-unit UNIT");
	}
	return CTL_OK;
}

static int parse_opts(int argc, char **argv, struct apply_opts *o)
{
	static const struct option longopts[] = {
		{ "haproxy-file", required_argument, NULL, 'f' },
		{ "channels", required_argument, NULL, 'o' },
		{ "setup-page", required_argument, NULL, 's' },
		{ "haproxy", required_argument, NULL, 'H' },
		{ "haproxy-master", required_argument, NULL, 'M' },
		{ "haproxy-unit", required_argument, NULL, 'U' },
		{ "agent-pidfile", required_argument, NULL, 'p' },
		{ "agent-unit", required_argument, NULL, 'u' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long t;
	int opt;

	memset(o, 0, sizeof(*o));
	o->haproxy_bin = "haproxy";
	o->timeout_s = APPLY_TIMEOUT_DEFAULT;
	ctl_getopt_reset();
	while ((opt = getopt_long(argc, argv, "+:f:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (o->n_files == APPLY_FILES_MAX)
				return ctl_usage_err("apply ", "apply: at most %d -f files",
				                     APPLY_FILES_MAX);
			o->files[o->n_files++] = optarg;
			break;
		case 'o': o->channels = optarg; break;
		case 's': o->page = optarg; break;
		case 'H': o->haproxy_bin = optarg; break;
		case 'M': o->master = optarg; break;
		case 'U': o->haproxy_unit = optarg; break;
		case 'p': o->agent_pidfile = optarg; break;
		case 'u': o->agent_unit = optarg; break;
		case 't':
			errno = 0;
			t = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || t < 1 || t > APPLY_TIMEOUT_MAX)
				return ctl_usage_err("apply ", "apply: --timeout: seconds from 1 to %d, "
				                     "not '%s'", APPLY_TIMEOUT_MAX, optarg);
			o->timeout_s = (int)t;
			break;
		case 'h':
			ctl_help(ctl_find_cmd("apply"));
			return -1;
		default:
			return ctl_bad_option("apply ", argc, argv, opt);
		}
	}
	if (optind < argc)
		return ctl_usage_err("apply ", "apply: unexpected argument '%s'", argv[optind]);
	if (!o->channels)
		return ctl_usage_err("apply ", "apply: needs --channels FILE (the channel part "
		                     "HAProxy loads)");
	if (o->n_files == 0)
		return ctl_usage_err("apply ", "apply: needs the files HAProxy loads, each with "
		                     "-f FILE, in its order");
	return pick_defaults(o);
}

/* Undoes file_install() for both files; with reload, makes HAProxy load
 * them again. Returns 0 when the gateway is back as it was, -1 if not. */
static int rollback(const struct apply_opts *o, struct apply_file *f, size_t n,
                    int reload, const struct proc_state *before)
{
	struct proc_state ps = *before;
	pid_t worker;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		rc |= file_restore(&f[i]);
	if (rc < 0)
		return -1;
	if (!reload)
		return 0;
	/* The reload counts moved since "before". */
	if (o->master && master_state(o->master, 1, &ps) < 0)
		return -1;
	if (haproxy_reload(o, &ps, &worker) < 0)
		return -1;
	if (worker)
		printf("rolled back: HAProxy reloaded on the previous files, worker %d\n",
		       (int)worker);
	else
		printf("rolled back: HAProxy reloaded on the previous files\n");
	return 0;
}

int cmd_apply(struct ctl *c, int argc, char **argv)
{
	struct apply_opts o;
	struct apply_file files[2];
	struct proc_state hp_before = { 0 };
	struct agent_state ag_before = { 0 }, ag_now = { 0 };
	size_t n_files = 0, i;
	pid_t agent = 0, worker = 0;
	int rc, haproxy_changes;

	rc = parse_opts(argc, argv, &o);
	if (rc < 0)
		return CTL_OK;      /* --help */
	if (rc != CTL_OK)
		return rc;
	if (!c->config_path)
		return ctl_usage_err("apply ", "apply: needs -c FILE");

	/* 1. the file, as the agent will load it */
	if (ctl_config(c) < 0)
		return CTL_ERR;
	printf("checked %s (sha256 %s)\n", c->config_path, c->cfg->sha256);

	/* 2. can both be reloaded at all? */
	if (o.master && master_state(o.master, 1, &hp_before) < 0)
		return CTL_ERR;
	if (o.haproxy_unit && unit_active(o.haproxy_unit) < 0)
		return CTL_ERR;
	if (o.agent_pidfile && (agent = agent_pid(o.agent_pidfile)) < 0)
		return CTL_ERR;
	if (o.agent_unit && unit_active(o.agent_unit) < 0)
		return CTL_ERR;
	if (c->cfg->agent.admin && agent_state(c->cfg, 1, &ag_before) < 0)
		return CTL_ERR;

	/* 3. render next to the live files */
	if (file_init(&files[n_files++], o.channels) < 0 ||
	    (o.page && file_init(&files[n_files++], o.page) < 0))
		return CTL_ERR;
	if (file_render(&files[0], render_haproxy, c->cfg) < 0)
		return CTL_ERR;
	if (o.page && file_render(&files[1], render_setup_page, c->cfg) < 0)
		goto fail_unlink;
	/* The status line script HAProxy serves next to the page: static, the
	 * same as this realmsctl's, so written in place before the check. */
	if (o.page && ctl_write_statusline(o.page) < 0)
		goto fail_unlink;
	haproxy_changes = 0;
	for (i = 0; i < n_files; i++)
		haproxy_changes |= !file_unchanged(&files[i]);

	if (haproxy_changes) {
		/* 4. the whole HAProxy configuration, with the new part */
		if (haproxy_check(&o, &files[0], o.master ? hp_before.master :
		                                 unit_pid(o.haproxy_unit)) < 0)
			goto fail_unlink;
		printf("haproxy -c: the configuration with the new channel part is valid\n");
		/* 5. swap the files in */
		for (i = 0; i < n_files; i++) {
			if (file_install(&files[i]) < 0) {
				if (rollback(&o, files, n_files, 0, &hp_before) < 0)
					goto mixed;
				goto fail_unlink;
			}
		}
		/* 6. HAProxy */
		if (haproxy_reload(&o, &hp_before, &worker) < 0) {
			if (rollback(&o, files, n_files, 0, &hp_before) < 0)
				goto mixed;
			ctl_errmsg("the previous files are back in place; HAProxy runs its "
			           "previous configuration, the agent was not reloaded");
			return CTL_ERR;
		}
		if (worker)
			printf("HAProxy reloaded: new worker %d; the previous files are kept as "
			       "*.bak\n", (int)worker);
		else
			printf("HAProxy reloaded (%s%s); the previous files are kept as *.bak\n",
			       o.master ? "master CLI: Success=1" : "systemctl reload ",
			       o.master ? "" : o.haproxy_unit);
	} else {
		for (i = 0; i < n_files; i++)
			unlink(files[i].next);
		printf("HAProxy: the channel part%s unchanged, not reloaded\n",
		       o.page ? " and the setup page are" : " is");
	}

	/* 7. the agent */
	rc = agent_reload(&o, c->cfg, agent, &ag_before, &ag_now);
	if (rc < 0) {
		if (!haproxy_changes) {
			ctl_errmsg("HAProxy had nothing to change and was not reloaded");
			return CTL_ERR;
		}
		if (rollback(&o, files, n_files, 1, &hp_before) < 0)
			goto mixed;
		ctl_errmsg("HAProxy is back on its previous configuration; the agent keeps "
		           "its running one");
		return CTL_ERR;
	}
	if (rc == 1)
		printf("agent reloaded (%s), not confirmed: the configuration has no "
		       "agent.admin listener to ask\n", agent ? "SIGHUP" : "systemctl reload");
	else
		printf("agent reloaded: generation %llu runs sha256 %s\n", ag_now.generation,
		       ag_now.sha256);
	return CTL_OK;

fail_unlink:
	for (i = 0; i < n_files; i++)
		unlink(files[i].next);
	ctl_errmsg("nothing was changed");
	return CTL_ERR;
mixed:
	ctl_errmsg("the gateway may be left half-applied: check %s (the previous one is "
	           "%s), reload HAProxy and the agent by hand", o.channels, files[0].bak);
	return CTL_PARTIAL;
}

/*
 * spop_call: one SPOP exchange, or raw bytes to a socket, for tests that
 * play a local attacker (run as an unprivileged user) or HAProxy itself.
 *
 *   spop_call ADDR MESSAGE [NAME=VALUE]...   HELLO, one NOTIFY, print the ACK
 *   spop_call -r ADDR < bytes                write stdin, print what comes back
 *
 * ADDR is host:port, unix:/path or /path. The NOTIFY carries MESSAGE with
 * string arguments; the ACK's set-var actions are printed one per line as
 * "NAME=VALUE" (integers in decimal). With -r, stdin is written and what
 * the peer sends back is copied to stdout until it closes, or stays silent
 * for CALL_IDLE_MS (the write side stays open: a peer that answers only
 * an open connection, like the mirror, still answers).
 *
 * Exit status: 0 an ACK came (or, with -r, the peer answered and closed
 * normally), 1 the peer refused or closed the connection without an
 * answer, 2 a usage error. Every wait is bounded (3 s).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <realms/netaddr.h>
#include <realms/spop.h>

#define CALL_TIMEOUT_MS   3000
#define CALL_IDLE_MS      1000
#define CALL_FRAME_MAX    (256u * 1024u)
#define CALL_MAX_ARGS     32

static int dial(const char *s)
{
	struct netaddr a;
	char err[160];
	int fd;

	if (netaddr_parse(s, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "spop_call: %s\n", err);
		exit(2);
	}
	fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
		fprintf(stderr, "spop_call: connect %s: %s\n", s, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Reads into buf until one whole frame is there; returns its length
 * (header included), or -1 if the peer closed, failed or was silent. */
static ssize_t read_frame(int fd, uint8_t *buf, size_t *have, struct spop_frame *f)
{
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		enum spop_err e;
		ssize_t n = spop_frame_parse(buf, *have, CALL_FRAME_MAX, f, &e);

		if (n > 0)
			return n;
		if (n < 0 || *have == CALL_FRAME_MAX || poll(&p, 1, CALL_TIMEOUT_MS) <= 0)
			return -1;
		n = recv(fd, buf + *have, CALL_FRAME_MAX - *have, 0);
		if (n <= 0)
			return -1;
		*have += (size_t)n;
	}
}

static int raw(const char *addr)
{
	char buf[65536];
	int fd = dial(addr), got = 0;
	ssize_t n;

	while ((n = read(0, buf, sizeof(buf))) > 0)
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
			return 1;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, CALL_IDLE_MS) <= 0)
			break;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		got = 1;
	}
	close(fd);
	return got ? 0 : 1;
}

static void print_action(const struct spop_action *a)
{
	if (a->type != SPOP_ACT_T_SET_VAR)
		return;
	printf("%.*s=", (int)a->name.len, a->name.ptr);
	switch (a->value.type) {
	case SPOP_DATA_T_STR:
	case SPOP_DATA_T_BIN:
		printf("%.*s\n", (int)a->value.u.str.len, a->value.u.str.ptr);
		break;
	case SPOP_DATA_T_INT32:  printf("%d\n", a->value.u.s32); break;
	case SPOP_DATA_T_UINT32: printf("%u\n", a->value.u.u32); break;
	case SPOP_DATA_T_INT64:  printf("%lld\n", (long long)a->value.u.s64); break;
	case SPOP_DATA_T_UINT64: printf("%llu\n", (unsigned long long)a->value.u.u64); break;
	case SPOP_DATA_T_BOOL:   printf("%d\n", a->value.u.boolean); break;
	default:                 printf("(type %d)\n", a->value.type); break;
	}
}

int main(int argc, char **argv)
{
	static uint8_t out[CALL_FRAME_MAX], in[CALL_FRAME_MAX];
	struct spop_wr w;
	struct spop_frame f;
	const uint8_t *p, *end;
	struct spop_action act;
	size_t have = 0;
	ssize_t n;
	int fd, nargs;

	if (argc == 3 && !strcmp(argv[1], "-r"))
		return raw(argv[2]);
	if (argc < 3 || argc - 3 > CALL_MAX_ARGS) {
		fprintf(stderr, "usage: spop_call ADDR MESSAGE [NAME=VALUE]...\n"
		                "       spop_call -r ADDR < bytes\n");
		return 2;
	}
	fd = dial(argv[1]);
	n = spop_build_haproxy_hello(out, sizeof(out), CALL_FRAME_MAX, 0);
	if (n < 0 || send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
		return 1;
	n = read_frame(fd, in, &have, &f);
	if (n < 0 || f.type != SPOP_FRM_T_AGENT_HELLO) {
		fprintf(stderr, "spop_call: no AGENT-HELLO\n");
		return 1;
	}
	memmove(in, in + n, have - (size_t)n);
	have -= (size_t)n;

	nargs = argc - 3;
	spop_wr_init(&w, out, sizeof(out));
	spop_frame_begin(&w, SPOP_FRM_T_HAPROXY_NOTIFY, SPOP_FRM_FL_FIN, 1, 1);
	spop_put_msg(&w, argv[2], (uint8_t)nargs);
	for (int i = 0; i < nargs; i++) {
		const char *eq = strchr(argv[3 + i], '=');
		char name[256];

		if (!eq || (size_t)(eq - argv[3 + i]) >= sizeof(name)) {
			fprintf(stderr, "spop_call: argument '%s' is not NAME=VALUE\n", argv[3 + i]);
			return 2;
		}
		memcpy(name, argv[3 + i], (size_t)(eq - argv[3 + i]));
		name[eq - argv[3 + i]] = '\0';
		{
			struct spop_data d = spop_str(eq + 1, strlen(eq + 1));

			spop_put_kv(&w, name, &d);
		}
	}
	n = spop_frame_end(&w);
	if (n < 0 || send(fd, out, (size_t)n, MSG_NOSIGNAL) != n)
		return 1;
	if (read_frame(fd, in, &have, &f) < 0 || f.type != SPOP_FRM_T_AGENT_ACK) {
		fprintf(stderr, "spop_call: no ACK\n");
		return 1;
	}
	p = f.payload;
	end = f.payload + f.payload_len;
	while (p < end && spop_action_next(&p, end, &act) > 0)
		print_action(&act);
	close(fd);
	return 0;
}

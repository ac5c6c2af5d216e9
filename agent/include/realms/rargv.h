/*
 * A Redis command's argument vector built in one fixed buffer: what
 * hiredis's redisCommandArgv()/rdb_command_argv() take. Pure: no I/O, no
 * allocation. A failure (too many arguments, no room) is sticky: argc
 * becomes -1 and every later add is ignored, so a builder checks once at
 * the end.
 */
#ifndef REALMS_RARGV_H
#define REALMS_RARGV_H

#include <stddef.h>
#include <stdint.h>

#define RARGV_MAX   128
#define RARGV_BUF   32768   /* a usage record with every name at its longest */

struct rargv {
	int argc;                       /* -1 after a failure */
	const char *argv[RARGV_MAX];
	size_t argvlen[RARGV_MAX];
	size_t used;
	char buf[RARGV_BUF];
};

void rargv_init(struct rargv *a);

/* Appends one argument, printf-style, NUL-terminated in a->buf. */
void rargv_add(struct rargv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends a static string by reference (not copied): it must outlive a. */
void rargv_ref(struct rargv *a, const char *s, size_t len);

#endif /* REALMS_RARGV_H */

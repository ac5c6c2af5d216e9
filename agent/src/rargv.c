/*
 * Redis argument vectors (realms/rargv.h). Pure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <realms/rargv.h>

void rargv_init(struct rargv *a)
{
	a->argc = 0;
	a->used = 0;
}

void rargv_add(struct rargv *a, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (a->argc < 0)
		return;
	if (a->argc >= RARGV_MAX) {
		a->argc = -1;
		return;
	}
	room = sizeof(a->buf) - a->used;
	va_start(ap, fmt);
	n = vsnprintf(a->buf + a->used, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		a->argc = -1;
		return;
	}
	a->argv[a->argc] = a->buf + a->used;
	a->argvlen[a->argc] = (size_t)n;
	a->argc++;
	a->used += (size_t)n + 1;
}

void rargv_ref(struct rargv *a, const char *s, size_t len)
{
	if (a->argc < 0)
		return;
	if (a->argc >= RARGV_MAX) {
		a->argc = -1;
		return;
	}
	a->argv[a->argc] = s;
	a->argvlen[a->argc] = len;
	a->argc++;
}

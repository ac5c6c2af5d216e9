/*
 * A bounded text writer into a caller's buffer, its overflow sticky: once
 * a write does not fit, every later one is a no-op and `full` says so, so a
 * builder checks once at the end (rargv's habit). Pure.
 */
#ifndef REALMS_SBUF_H
#define REALMS_SBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sbuf {
	char *p;
	size_t size, off;      /* off: bytes written, NUL not counted */
	bool full;
};

/* Appends printf-style text, NUL-terminated. */
__attribute__((format(printf, 2, 3)))
void sbuf_printf(struct sbuf *b, const char *fmt, ...);

#endif /* REALMS_SBUF_H */

/*
 * The bounded text writer (realms/sbuf.h). Pure.
 */
#include <stdarg.h>
#include <stdio.h>

#include <realms/sbuf.h>

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->off, b->size - b->off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->size - b->off)
		b->full = true;
	else
		b->off += (size_t)n;
}

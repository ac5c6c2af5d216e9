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

/* Writes v in decimal at the end of out[0..*n) (room permitting). */
static int put_u(char *out, size_t room, size_t *n, unsigned long long v, int neg)
{
	char tmp[24];
	size_t k = 0;

	do
		tmp[k++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	if (neg)
		tmp[k++] = '-';
	if (*n + k >= room)
		return -1;
	while (k)
		out[(*n)++] = tmp[--k];
	return 0;
}

/* The formats the builders use, without the C library's printf: literal
 * bytes, %s, and the integer conversions %d %u %ld %lu %lld %llu (what
 * PRId64 and PRIu64 expand to). Returns the length written (NUL added), -1
 * when out is too small, or -2 for any other format (vsnprintf's then). */
static int fast_format(char *out, size_t room, const char *fmt, va_list ap)
{
	size_t n = 0, l;
	const char *f = fmt, *s;
	int lng;

	for (; *f; f++) {
		if (*f != '%') {
			if (n + 1 >= room)
				return -1;
			out[n++] = *f;
			continue;
		}
		f++;
		if (*f == 's') {
			s = va_arg(ap, const char *);
			l = strlen(s);
			if (n + l >= room)
				return -1;
			memcpy(out + n, s, l);
			n += l;
			continue;
		}
		for (lng = 0; *f == 'l' && lng < 2; f++)
			lng++;
		if (*f == 'd') {
			long long v = lng == 2 ? va_arg(ap, long long) :
			              lng == 1 ? va_arg(ap, long) : va_arg(ap, int);

			if (put_u(out, room, &n, v < 0 ? 0ULL - (unsigned long long)v :
			          (unsigned long long)v, v < 0) < 0)
				return -1;
		} else if (*f == 'u') {
			unsigned long long v = lng == 2 ? va_arg(ap, unsigned long long) :
			                       lng == 1 ? va_arg(ap, unsigned long) :
			                       va_arg(ap, unsigned int);

			if (put_u(out, room, &n, v, 0) < 0)
				return -1;
		} else {
			return -2;
		}
	}
	if (n >= room)
		return -1;
	out[n] = '\0';
	return (int)n;
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
	n = fast_format(a->buf + a->used, room, fmt, ap);
	va_end(ap);
	if (n == -2) {
		va_start(ap, fmt);
		n = vsnprintf(a->buf + a->used, room, fmt, ap);
		va_end(ap);
	}
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

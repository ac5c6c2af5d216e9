/*
 * Naive reference helpers shared by the fuzz targets' oracles. Written
 * apart from agent/src on purpose, one byte at a time, so that an oracle
 * never shares the code it checks. Header-only: each target includes it.
 */
#ifndef REALMS_FUZZ_REF_H
#define REALMS_FUZZ_REF_H

#include <stddef.h>
#include <stdint.h>

static inline int ref_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p, or -1. */
static inline long ref_hex4(const char *p)
{
	long v = 0;
	int i, h;

	for (i = 0; i < 4; i++) {
		h = ref_hexval((unsigned char)p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Writes code point cp (up to U+10FFFF, surrogates included as their
 * 3-byte form) as UTF-8 at out; returns the bytes written. */
static inline size_t ref_put_utf8(uint8_t *out, long cp)
{
	if (cp < 0x80) {
		out[0] = cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = 0xc0 | (cp >> 6);
		out[1] = 0x80 | (cp & 0x3f);
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = 0xe0 | (cp >> 12);
		out[1] = 0x80 | ((cp >> 6) & 0x3f);
		out[2] = 0x80 | (cp & 0x3f);
		return 3;
	}
	out[0] = 0xf0 | (cp >> 18);
	out[1] = 0x80 | ((cp >> 12) & 0x3f);
	out[2] = 0x80 | ((cp >> 6) & 0x3f);
	out[3] = 0x80 | (cp & 0x3f);
	return 4;
}

#endif /* REALMS_FUZZ_REF_H */

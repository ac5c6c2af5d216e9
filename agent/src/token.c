/*
 * Client tokens: base62 generation, SHA-256, shape check, expiry parsing.
 * Pure but the OS CSPRNG in token_generate() (contract in realms/token.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <realms/token.h>

static const char b62_digits[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---------------------------------------------------------------------- */
/* Encoding and generation                                                */
/* ---------------------------------------------------------------------- */

/* Schoolbook division of the big-endian number by 62, once per digit: 43
 * passes over 32 bytes, nothing worth a bignum library. */
int token_base62(const uint8_t *in, size_t n, char *out, size_t width)
{
	uint8_t num[64];
	size_t i, pos;

	out[0] = '\0';
	if (n > sizeof(num))
		return -1;
	memcpy(num, in, n);

	out[width] = '\0';
	for (pos = width; pos > 0; pos--) {
		unsigned int rem = 0;

		for (i = 0; i < n; i++) {
			unsigned int cur = rem * 256u + num[i];

			num[i] = (uint8_t)(cur / 62u);
			rem = cur % 62u;
		}
		out[pos - 1] = b62_digits[rem];
	}
	/* What is left must be zero, or width was too small. */
	for (i = 0; i < n; i++) {
		if (num[i]) {
			OPENSSL_cleanse(num, sizeof(num));
			memset(out, 0, width + 1);
			return -1;
		}
	}
	OPENSSL_cleanse(num, sizeof(num));
	return 0;
}

void token_format(const uint8_t rnd[TOKEN_RAND_BYTES], char out[TOKEN_MAX])
{
	memcpy(out, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
	/* cannot fail: 62^43 > 2^256 */
	token_base62(rnd, TOKEN_RAND_BYTES, out + TOKEN_PREFIX_LEN, TOKEN_B62_LEN);
}

/* Fills buf from the kernel CSPRNG. getrandom() may return fewer bytes than
 * asked or fail with EINTR when a signal arrives: loop until done. */
static int fill_random(uint8_t *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(buf + got, n - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int token_generate(char out[TOKEN_MAX])
{
	uint8_t rnd[TOKEN_RAND_BYTES];

	out[0] = '\0';
	if (fill_random(rnd, sizeof(rnd)) < 0) {
		int e = errno;

		OPENSSL_cleanse(rnd, sizeof(rnd));
		errno = e;
		return -1;
	}
	token_format(rnd, out);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return 0;
}

static bool is_b62(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	       (c >= 'a' && c <= 'z');
}

bool token_looks_valid(const char *tok, size_t len)
{
	size_t i;

	if (!tok || len != TOKEN_LEN)
		return false;
	if (memcmp(tok, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
		return false;
	for (i = TOKEN_PREFIX_LEN; i < len; i++)
		if (!is_b62((unsigned char)tok[i]))
			return false;
	return true;
}

/* ---------------------------------------------------------------------- */
/* Hashing                                                                */
/* ---------------------------------------------------------------------- */

/* Every request hashes its token. EVP_Digest() with EVP_sha256() looks the
 * algorithm up in OpenSSL 3's shared store and allocates a context each
 * time, a lock two workers contend for: the algorithm is fetched once (a
 * failed fetch is tried again on the next call), and each thread keeps its
 * context (freed when the thread ends). */
static EVP_MD *_Atomic sha256_md;
static pthread_key_t ctx_key;
static int ctx_key_ok;
static pthread_mutex_t sha256_lock = PTHREAD_MUTEX_INITIALIZER;

static void ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static EVP_MD *sha256_get(void)
{
	EVP_MD *md = atomic_load(&sha256_md);

	if (md)
		return md;
	pthread_mutex_lock(&sha256_lock);
	if (!ctx_key_ok)
		ctx_key_ok = pthread_key_create(&ctx_key, ctx_free) == 0;
	md = atomic_load(&sha256_md);
	if (!md && ctx_key_ok) {
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
		atomic_store(&sha256_md, md);
	}
	pthread_mutex_unlock(&sha256_lock);
	return md;
}

int token_hash(const char *tok, size_t len, uint8_t out[TOKEN_HASH_LEN])
{
	EVP_MD *md = sha256_get();
	unsigned int outlen = 0;
	EVP_MD_CTX *ctx;

	if (!md)
		return -1;
	ctx = pthread_getspecific(ctx_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		if (!ctx || pthread_setspecific(ctx_key, ctx) != 0) {
			EVP_MD_CTX_free(ctx);
			return -1;
		}
	}
	if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, tok, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &outlen) != 1 || outlen != TOKEN_HASH_LEN)
		return -1;
	return 0;
}

void token_hex_encode(const uint8_t h[TOKEN_HASH_LEN],
                      char out[TOKEN_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < TOKEN_HASH_LEN; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 0xf];
	}
	out[TOKEN_HEX_LEN] = '\0';
}

int token_hash_hex(const char *tok, size_t len, char out[TOKEN_HEX_LEN + 1])
{
	uint8_t h[TOKEN_HASH_LEN];

	out[0] = '\0';
	if (token_hash(tok, len, h) < 0)
		return -1;
	token_hex_encode(h, out);
	return 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int token_hex_decode(const char *hex, size_t len, uint8_t out[TOKEN_HASH_LEN])
{
	uint8_t tmp[TOKEN_HASH_LEN];
	size_t i;

	if (len != TOKEN_HEX_LEN)
		return -1;
	for (i = 0; i < TOKEN_HASH_LEN; i++) {
		int hi = hexval((unsigned char)hex[2 * i]);
		int lo = hexval((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		tmp[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, tmp, sizeof(tmp));
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Names and expiries                                                     */
/* ---------------------------------------------------------------------- */

bool token_name_valid(const char *s, size_t len)
{
	size_t i;

	if (!s || len == 0 || len > TOKEN_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!is_b62(c) && c != '.' && c != '_' && c != '@' && c != '-')
			return false;
	}
	return true;
}

/* Exactly n decimal digits at s into *v. */
static int fixed_digits(const char *s, size_t n, int *v)
{
	int r = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		r = r * 10 + (s[i] - '0');
	}
	*v = r;
	return 0;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : mdays[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); no timegm(), so no dependence on the process TZ. */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD" at s (10 bytes) into a day number. */
static int parse_date(const char *s, int64_t *days)
{
	int y, m, d;

	if (fixed_digits(s, 4, &y) < 0 || s[4] != '-' ||
	    fixed_digits(s + 5, 2, &m) < 0 || s[7] != '-' ||
	    fixed_digits(s + 8, 2, &d) < 0)
		return -1;
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > month_days(y, m))
		return -1;
	*days = days_from_civil(y, m, d);
	return 0;
}

static int parse_relative(const char *s, size_t len, int64_t now, int64_t *out)
{
	int64_t n = 0, unit;
	size_t i;

	if (len < 2)
		return -1;
	switch (s[len - 1]) {
	case 'd': unit = 86400; break;
	case 'h': unit = 3600; break;
	case 'm': unit = 60; break;
	default: return -1;
	}
	for (i = 0; i < len - 1; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (s[i] - '0');
		if (n > TOKEN_REL_MAX_S)        /* stops overflow early */
			return -1;
	}
	if (n < 1 || n > TOKEN_REL_MAX_S / unit)
		return -1;
	if (now < 0 || now > INT64_MAX - n * unit)
		return -1;
	*out = now + n * unit;
	return 0;
}

int token_parse_expiry(const char *s, int64_t now, int64_t *out)
{
	size_t len;
	int64_t days;
	int hh, mm, ss;

	if (!s)
		return -1;
	len = strlen(s);
	if (strcmp(s, "never") == 0) {
		*out = 0;
		return 0;
	}
	if (len == 10 && s[4] == '-') {
		if (parse_date(s, &days) < 0)
			return -1;
		*out = (days + 1) * 86400;      /* the next midnight UTC */
		return 0;
	}
	if (len == 20 && s[4] == '-' && s[10] == 'T' && s[19] == 'Z') {
		if (parse_date(s, &days) < 0 ||
		    fixed_digits(s + 11, 2, &hh) < 0 || s[13] != ':' ||
		    fixed_digits(s + 14, 2, &mm) < 0 || s[16] != ':' ||
		    fixed_digits(s + 17, 2, &ss) < 0)
			return -1;
		if (hh > 23 || mm > 59 || ss > 59)
			return -1;
		/* 1970-01-01T00:00:00Z would read as "never": refuse it. */
		if (days == 0 && hh == 0 && mm == 0 && ss == 0)
			return -1;
		*out = days * 86400 + hh * 3600 + mm * 60 + ss;
		return 0;
	}
	return parse_relative(s, len, now, out);
}

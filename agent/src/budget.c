/*
 * Budgets and limits, the pure part (contract in realms/budget.h). Pure:
 * no I/O, no clock. Calendar arithmetic on day numbers (days since
 * 1970-01-01 in local time), with the civil-from-days conversion of the
 * proleptic Gregorian calendar, so no libc time zone state is involved:
 * the configured offset is all there is.
 */
#include <stdio.h>
#include <string.h>

#include <realms/billing.h>
#include <realms/budget.h>
#include <realms/limits.h>
#include <realms/usage.h>

#define MS_PER_MIN   60000LL
#define MS_PER_DAY   86400000LL

static const char *const kind_names[BUDGET_KINDS] = {
	[BUDGET_USD_5H] = "usd/5h",
	[BUDGET_USD_DAY] = "usd/day",
	[BUDGET_USD_WEEK] = "usd/week",
	[BUDGET_USD_MONTH] = "usd/month",
	[BUDGET_RPM] = "rpm",
	[BUDGET_CONCURRENCY] = "concurrency",
};

const char *budget_kind_name(enum budget_kind k)
{
	return (unsigned)k < BUDGET_KINDS ? kind_names[k] : NULL;
}

int budget_kind_parse(const char *s, size_t n, enum budget_kind *k)
{
	for (int i = 0; i < BUDGET_KINDS; i++)
		if (strlen(kind_names[i]) == n && memcmp(kind_names[i], s, n) == 0) {
			*k = (enum budget_kind)i;
			return 0;
		}
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Amounts                                                                */
/* ---------------------------------------------------------------------- */

int budget_usd_parse(const char *s, size_t n, uint64_t *nusd)
{
	uint64_t whole = 0, frac = 0;
	size_t i = 0, digits = 0, decimals = 0;

	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		whole = whole * 10 + (uint64_t)(s[i] - '0');
		if (whole > BUDGET_USD_MAX)
			return -1;
	}
	if (i < n && s[i] == '.') {
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, decimals++) {
			if (decimals == 9)
				return -1;
			frac = frac * 10 + (uint64_t)(s[i] - '0');
		}
		if (decimals == 0)
			return -1;
	}
	if (i != n || digits == 0)
		return -1;
	for (; decimals < 9; decimals++)
		frac *= 10;
	*nusd = whole * 1000000000ULL + frac;
	return 0;
}

size_t budget_usd_str(uint64_t nusd, char *out, size_t size)
{
	uint64_t whole = nusd / 1000000000ULL, frac = nusd % 1000000000ULL;
	char f[10];
	int n, len = 9;

	snprintf(f, sizeof(f), "%09llu", (unsigned long long)frac);
	while (len > 2 && f[len - 1] == '0')
		len--;
	n = snprintf(out, size, "%llu.%.*s", (unsigned long long)whole, len, f);
	return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* ---------------------------------------------------------------------- */
/* Specs and their stored form                                            */
/* ---------------------------------------------------------------------- */

static int count_parse(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	if (x < 1 || x > BUDGET_COUNT_MAX)
		return -1;
	*v = x;
	return 0;
}

int budget_spec_parse(const char *s, size_t n, enum budget_kind *k, uint64_t *v,
                      const char **why)
{
	const char *eq = memchr(s, '=', n);

	if (!eq) {
		*why = "expected NAME=VALUE";
		return -1;
	}
	if (budget_kind_parse(s, (size_t)(eq - s), k) < 0) {
		*why = "unknown limit: use usd/5h, usd/day, usd/week, usd/month, rpm or concurrency";
		return -1;
	}
	if (BUDGET_IS_USD(*k)) {
		if (budget_usd_parse(eq + 1, n - (size_t)(eq - s) - 1, v) < 0) {
			*why = "an amount of US dollars, with at most 9 decimals";
			return -1;
		}
		return 0;
	}
	if (count_parse(eq + 1, n - (size_t)(eq - s) - 1, v) < 0) {
		*why = "a whole number from 1";
		return -1;
	}
	return 0;
}

size_t budget_limits_encode(const struct budget_limits *l, char *out, size_t size)
{
	size_t o = 0;

	if (!size)
		return 0;
	out[0] = '\0';
	for (int k = 0; k < BUDGET_KINDS; k++) {
		int n;

		if (!(l->set & (1u << k)))
			continue;
		n = snprintf(out + o, size - o, "%s%s=%llu", o ? "," : "", kind_names[k],
		             (unsigned long long)l->v[k]);
		if (n < 0 || (size_t)n >= size - o) {
			out[0] = '\0';
			return 0;
		}
		o += (size_t)n;
	}
	return o;
}

int budget_limits_decode(const char *s, size_t n, struct budget_limits *l)
{
	const char *p = s, *end = s + n;

	memset(l, 0, sizeof(*l));
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *ie = comma ? comma : end;
		const char *eq = memchr(p, '=', (size_t)(ie - p));
		enum budget_kind k;
		uint64_t v = 0;

		if (!eq || budget_kind_parse(p, (size_t)(eq - p), &k) < 0 || eq + 1 == ie)
			goto bad;
		for (const char *d = eq + 1; d < ie; d++) {
			if (*d < '0' || *d > '9' || v > (UINT64_MAX - 9) / 10)
				goto bad;
			v = v * 10 + (uint64_t)(*d - '0');
		}
		l->v[k] = v;
		l->set |= 1u << k;
		p = comma ? comma + 1 : end;
	}
	return 0;
bad:
	memset(l, 0, sizeof(*l));
	return -1;
}

void budget_limits_merge(struct budget_limits *eff, const struct budget_limits *token,
                         const struct budget_limits *group)
{
	struct budget_limits r = { { 0 }, 0 };

	for (int k = 0; k < BUDGET_KINDS; k++) {
		if (token && (token->set & (1u << k))) {
			r.v[k] = token->v[k];
			r.set |= 1u << k;
		} else if (group && (group->set & (1u << k))) {
			r.v[k] = group->v[k];
			r.set |= 1u << k;
		}
	}
	*eff = r;
}

/* ---------------------------------------------------------------------- */
/* Time                                                                   */
/* ---------------------------------------------------------------------- */

int budget_tz_parse(const char *s, size_t n, int *minutes)
{
	int h, m;

	if (n == 1 && s[0] == 'Z') {
		*minutes = 0;
		return 0;
	}
	if (n != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':')
		return -1;
	for (int i = 1; i < 6; i++)
		if (i != 3 && (s[i] < '0' || s[i] > '9'))
			return -1;
	h = (s[1] - '0') * 10 + (s[2] - '0');
	m = (s[4] - '0') * 10 + (s[5] - '0');
	if (m > 59 || h * 60 + m > 14 * 60)
		return -1;
	*minutes = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
	return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Its inverse. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

int budget_window(enum budget_kind k, int64_t t_ms, int tz_min, struct budget_window *w)
{
	int64_t off = (int64_t)tz_min * MS_PER_MIN, day, first, next, y;
	int m, d;

	memset(w, 0, sizeof(*w));
	if (t_ms < 0 || t_ms > BUDGET_TIME_MAX_MS)
		return -1;
	day = floor_div(t_ms + off, MS_PER_DAY);
	switch (k) {
	case BUDGET_USD_5H:
		w->start_ms = (budget_bucket(t_ms) + 1 - BUDGET_5H_BUCKETS) * MS_PER_MIN;
		w->end_ms = (budget_bucket(t_ms) + 1) * MS_PER_MIN;
		snprintf(w->id, sizeof(w->id), "5h");
		return 0;
	case BUDGET_USD_DAY:
		first = day;
		next = day + 1;
		civil_from_days(first, &y, &m, &d);
		snprintf(w->id, sizeof(w->id), "d%04lld%02d%02d", (long long)y, m, d);
		break;
	case BUDGET_USD_WEEK:
		/* 1970-01-01 was a Thursday: Monday-based weekday of day. */
		first = day - (int64_t)((day % 7 + 7 + 3) % 7);
		next = first + 7;
		civil_from_days(first, &y, &m, &d);
		snprintf(w->id, sizeof(w->id), "w%04lld%02d%02d", (long long)y, m, d);
		break;
	case BUDGET_USD_MONTH:
		civil_from_days(day, &y, &m, &d);
		first = days_from_civil(y, m, 1);
		next = m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1);
		snprintf(w->id, sizeof(w->id), "m%04lld%02d", (long long)y, m);
		break;
	default:
		return -1;
	}
	w->start_ms = first * MS_PER_DAY - off;
	w->end_ms = next * MS_PER_DAY - off;
	return 0;
}

int64_t budget_bucket(int64_t t_ms)
{
	return floor_div(t_ms, MS_PER_MIN);
}

size_t budget_time_str(int64_t t_ms, int tz_min, char *out, size_t size)
{
	int64_t local = t_ms + (int64_t)tz_min * MS_PER_MIN, day, secs, y;
	int m, d, n, a = tz_min < 0 ? -tz_min : tz_min;
	char zone[16];   /* "+HH:MM"; room for any int, so gcc sees no truncation */

	day = floor_div(local, MS_PER_DAY);
	secs = floor_div(local - day * MS_PER_DAY, 1000);
	civil_from_days(day, &y, &m, &d);
	if (tz_min)
		snprintf(zone, sizeof(zone), "%c%02d:%02d", tz_min < 0 ? '-' : '+', a / 60, a % 60);
	else
		snprintf(zone, sizeof(zone), "Z");
	n = snprintf(out, size, "%04lld-%02d-%02dT%02lld:%02lld:%02lld%s", (long long)y, m, d,
	             (long long)(secs / 3600), (long long)(secs / 60 % 60), (long long)(secs % 60),
	             zone);
	return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* ---------------------------------------------------------------------- */
/* Costs                                                                  */
/* ---------------------------------------------------------------------- */

uint64_t budget_reserve_nusd(const struct price *p, uint64_t body_bytes, uint64_t max_tokens)
{
	uint64_t in = usage_bytes_tokens(body_bytes), best = 0;

	/* The input at its dearest rate: a request may write all of it to
	 * the cache (Claude Code marks most of its prompt), and a cache
	 * write costs more than plain input. */
	for (int rate = 0; rate < 3; rate++) {
		struct usage u;
		uint64_t c;

		usage_init(&u);
		u.output = max_tokens;
		if (rate == 0)
			u.input = in;
		else if (rate == 1)
			u.cache_write_5m = in;
		else
			u.cache_write_1h = in;
		c = billing_cost_nusd(p, &u);
		if (c > best)
			best = c;
	}
	return best;
}

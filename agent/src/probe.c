/*
 * The key prober (contract in realms/probe.h). One thread with blocking
 * libcurl: probes are rare (a 401, then one per cooldown while a key is
 * revoked), and a dedicated thread keeps them off the event loops. The
 * key is copied into a header buffer for the call and wiped right after;
 * nothing here logs it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include <realms/config.h>
#include <realms/health.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/probe.h>
#include <realms/state.h>

/* "Authorization: Bearer " + the longest key + NUL. */
#define PROBE_HDR_MAX  (CFG_SECRET_MAX + 32)

static struct {
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, stop, wake;
} pr = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static struct {
	_Atomic uint64_t ok, refused, inconclusive;
} pstats;

static void wake_hook(void)
{
	pthread_mutex_lock(&pr.mu);
	pr.wake = 1;
	pthread_cond_signal(&pr.cv);
	pthread_mutex_unlock(&pr.mu);
}

/* The answer's bytes are not needed: count them, stop past the bound. */
static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	size_t *seen = arg;

	*seen += size * n;
	return *seen > PROBE_BODY_MAX ? 0 : size * n;
}

/* One GET <base_url>/v1/models with the credential's key and the
 * channel's headers, as the relay sends them. Returns the HTTP status, 0
 * when there was no answer. */
static long probe_one(const struct cfg_cred *cred)
{
	const struct cfg_channel *ch = cred->channel;
	char url[1024], xkey[PROBE_HDR_MAX], bearer[PROBE_HDR_MAX];
	static _Thread_local char extra[CFG_MAX_HEADERS][PROBE_HDR_MAX + CFG_HEADER_NAME_MAX];
	struct curl_slist *h = NULL, *h2;
	size_t seen = 0;
	long status = 0;
	CURL *c;
	int n;

	n = snprintf(url, sizeof(url), "%s/v1/models", ch->base_url);
	if (n < 0 || (size_t)n >= sizeof(url) || !(c = curl_easy_init()))
		return 0;
	snprintf(xkey, sizeof(xkey), "x-api-key: %.*s", (int)cred->key_len, cred->key);
	snprintf(bearer, sizeof(bearer), "authorization: Bearer %.*s", (int)cred->key_len,
	         cred->key);
	if (ch->auth != CFG_AUTH_BEARER)
		h = curl_slist_append(h, xkey);
	if (ch->auth != CFG_AUTH_X_API_KEY)
		h = (h2 = curl_slist_append(h, bearer)) ? h2 : h;
	h = (h2 = curl_slist_append(h, "anthropic-version: 2023-06-01")) ? h2 : h;
	for (size_t i = 0; i < ch->n_headers; i++) {
		snprintf(extra[i], sizeof(extra[i]), "%s: %.*s", ch->headers[i].name,
		         (int)ch->headers[i].value_len, ch->headers[i].value);
		h = (h2 = curl_slist_append(h, extra[i])) ? h2 : h;
	}
	h = (h2 = curl_slist_append(h, "accept: application/json")) ? h2 : h;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "realms-agent key probe");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)PROBE_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen);
	if (curl_easy_perform(c) == CURLE_OK || seen > PROBE_BODY_MAX)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	explicit_bzero(xkey, sizeof(xkey));
	explicit_bzero(bearer, sizeof(bearer));
	explicit_bzero(extra, sizeof(extra));
	return status;
}

static void run_probe(const char *server)
{
	struct realms_config *cfg = state_config();
	const struct cfg_cred *cred = cfg ? config_cred_by_server(cfg, server, strlen(server)) : NULL;
	long status = cred ? probe_one(cred) : 0;

	config_unref(cfg);
	if (status >= 200 && status < 300)
		atomic_fetch_add(&pstats.ok, 1);
	else if (status == 401)
		atomic_fetch_add(&pstats.refused, 1);
	else
		atomic_fetch_add(&pstats.inconclusive, 1);
	health_probe_result(server, strlen(server), (int)status, clock_mono_ms());
}

static void *probe_main(void *arg)
{
	char server[2 * CFG_NAME_MAX + 8];
	struct timespec until;

	for (;;) {
		while (health_probe_next(clock_mono_ms(), server, sizeof(server)))
			run_probe(server);
		pthread_mutex_lock(&pr.mu);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)PROBE_ROUND_S;
		until.tv_nsec += (long)((PROBE_ROUND_S - (double)(time_t)PROBE_ROUND_S) * 1e9);
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!pr.stop && !pr.wake &&
		       pthread_cond_timedwait(&pr.cv, &pr.mu, &until) == 0)
			;
		pr.wake = 0;
		if (pr.stop) {
			pthread_mutex_unlock(&pr.mu);
			return NULL;
		}
		pthread_mutex_unlock(&pr.mu);
	}
}

int probe_start(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	if (pthread_create(&pr.thr, NULL, probe_main, NULL) != 0) {
		curl_global_cleanup();
		return -1;
	}
	pr.started = 1;
	health_set_probe_hook(wake_hook);
	return 0;
}

void probe_stop(void)
{
	if (!pr.started)
		return;
	health_set_probe_hook(NULL);
	pthread_mutex_lock(&pr.mu);
	pr.stop = 1;
	pthread_cond_signal(&pr.cv);
	pthread_mutex_unlock(&pr.mu);
	pthread_join(pr.thr, NULL);
	pr.started = 0;
	curl_global_cleanup();
}

void probe_stats_get(struct probe_stats *s)
{
	s->ok = atomic_load(&pstats.ok);
	s->refused = atomic_load(&pstats.refused);
	s->inconclusive = atomic_load(&pstats.inconclusive);
}

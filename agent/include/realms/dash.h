/*
 * The operator dashboard on the admin listener: the page (/dashboard, its
 * script and style, and Debian's Chart.js) and the read-only JSON admin API
 * it draws from (/api/admin/usage, /api/admin/events). Everything is off
 * unless the configuration has agent.admin_token; the API wants that
 * credential as "Authorization: Bearer". Runs on the admin listener's loop
 * (the main thread) and reads Redis through an rdb of its own, never
 * blocking. See docs/security.md for why the page itself needs no
 * credential.
 */
#ifndef REALMS_DASH_H
#define REALMS_DASH_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;

/* ---- Pure parts (unit-tested) ------------------------------------------ */

/* What dash needs of a request head. Pointers borrow the caller's buffer. */
struct dash_http {
	const char *path;          /* up to '?' or ' ' */
	size_t path_len;
	const char *query;         /* after '?', or NULL */
	size_t query_len;
	const char *bearer;        /* the credential of "Authorization: Bearer", or NULL */
	size_t bearer_len;
	int is_get;                /* method GET (HEAD and the rest are refused) */
	int auth_count;            /* Authorization headers seen */
};

/* Parses the head req[0..len) (request line and headers; a body is never
 * read). Returns 0, or -1 for a request line that is not HTTP/1.x. */
int dash_http_parse(const char *req, size_t len, struct dash_http *h);

/* Whether path[0..len) is the dashboard's or its API's (so dash answers
 * it, whatever the outcome). */
int dash_path_is_ours(const char *path, size_t len);

/* The value of parameter `name` in query q[0..qlen) ("a=1&b=2"): *v and
 * *vlen borrow q. Values are taken as they are (the API's parameters need
 * no percent-decoding). Returns 1 if present once, 0 if absent, -1 if
 * given twice (refused: which one would win is a guess). */
int dash_query_param(const char *q, size_t qlen, const char *name, const char **v,
                     size_t *vlen);

/* Whether the bearer credential equals the configured one, in time that
 * depends on neither (both are hashed with SHA-256 first, and the digests
 * compared with CRYPTO_memcmp). */
int dash_token_ok(const char *got, size_t got_len, const char *want, size_t want_len);

/* Appends s[0..len) as a JSON string (quotes included) to out[0..size) at
 * *off; control bytes, '"', '\\' and also '<', '>', '&' are escaped (the
 * last three so that no name can ever read as markup). Returns 0, or -1
 * if it did not fit (*off unchanged). */
int dash_json_str(char *out, size_t size, size_t *off, const char *s, size_t len);

/* ---- The module --------------------------------------------------------- */

/* Whether the request head req[0..len), complete, on connection fd, is
 * the dashboard's. If so (returns 1), fd now belongs to dash: it answers,
 * perhaps later, and closes it; the caller forgets fd. Returns 0 when the
 * request is not ours (the caller answers it). */
int dash_claim(struct ev_loop *loop, int fd, const char *req, size_t len);

/* At the admin listener's start: connects to Redis now when the dashboard
 * is on, so that the first request finds the connection up. */
void dash_start(struct ev_loop *loop);

/* Closes every connection dash holds and its Redis client. */
void dash_stop(struct ev_loop *loop);

#endif /* REALMS_DASH_H */

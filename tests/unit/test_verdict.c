/*
 * The request verdict: routes and methods, the token's place, every refusal
 * of verdict_decide with its status, type and message, the choice of a
 * credential (groups, tiers, weights, cooldown, stickiness), pass-through,
 * the error and model-list bodies, and the attempt's model rewrite, which
 * must change no byte of a real Claude Code body but the model's token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/config.h>
#include <realms/inspect.h>
#include <realms/tried.h>
#include <realms/verdict.h>

#include "cfg_sq.h"

/* ---- helpers -------------------------------------------------------- */

#define S(lit) ((struct vslice){ (lit), strlen(lit) })

/* xorshift64*: a seeded generator, so every run draws the same numbers. */
static uint64_t xs_next(void *arg)
{
	uint64_t *s = arg;

	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t cooling;   /* bit i: credential i is cooling down */

static int avail(int cred_id, void *arg)
{
	return !(cooling & (1ULL << cred_id));
}

static struct sched_env env_with(uint64_t *seed)
{
	struct sched_env e = { .available = avail, .rand = xs_next, .rand_arg = seed };

	return e;
}


/* Groups: default, research, lonely (no channel).
 * Credential ids: ch1--k1 0, ch1--k2 1, ch2--k 2, ch3--k 3, ch4--k 4. */
static const char MAIN_CFG[] =
	"{'groups': ['default', 'research', 'lonely'],"
	" 'models': ['m-a', 'm-b', {'name': 'm-off', 'enabled': false}, 'm-dead',"
	"            'm-nocred', 'm-research', 'claude@x/y+z[1]'],"
	" 'channels': ["
	"  {'name': 'ch1', 'base_url': 'https://one.example',"
	"   'groups': ['default', 'research'],"
	"   'credentials': [{'name': 'k1', 'key': 'sk-1'}, {'name': 'k2', 'key': 'sk-2'}],"
	"   'models': {'m-a': 'm-a', 'm-b': 'up-b', 'm-off': 'm-off'}},"
	"  {'name': 'ch2', 'base_url': 'https://two.example', 'enabled': false,"
	"   'credentials': [{'name': 'k', 'key': 'sk-3'}], 'models': ['m-dead']},"
	"  {'name': 'ch3', 'base_url': 'https://three.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-4', 'enabled': false}],"
	"   'models': ['m-nocred']},"
	"  {'name': 'ch4', 'base_url': 'https://four.example', 'groups': ['research'],"
	"   'credentials': [{'name': 'k', 'key': 'sk-5'}], 'models': ['m-research']}"
	" ]}";

/* Credential ids: hi--k 0, lo--k 1, w1--k 2, w3--k 3, w0--k 4, s--a..d 5..8. */
static const char SCHED_CFG[] =
	"{'models': ['m-p', 'm-w', 'm-s'],"
	" 'channels': ["
	"  {'name': 'hi', 'base_url': 'https://hi.example', 'priority': 10,"
	"   'credentials': [{'name': 'k', 'key': 'sk-1'}], 'models': ['m-p']},"
	"  {'name': 'lo', 'base_url': 'https://lo.example', 'priority': 0,"
	"   'credentials': [{'name': 'k', 'key': 'sk-2'}], 'models': ['m-p']},"
	"  {'name': 'w1', 'base_url': 'https://w1.example', 'weight': 1,"
	"   'credentials': [{'name': 'k', 'key': 'sk-3'}], 'models': ['m-w']},"
	"  {'name': 'w3', 'base_url': 'https://w3.example', 'weight': 3,"
	"   'credentials': [{'name': 'k', 'key': 'sk-4'}], 'models': ['m-w']},"
	"  {'name': 'w0', 'base_url': 'https://w0.example', 'weight': 0,"
	"   'credentials': [{'name': 'k', 'key': 'sk-5'}], 'models': ['m-w']},"
	"  {'name': 's', 'base_url': 'https://s.example',"
	"   'credentials': [{'name': 'a', 'key': 'sk-6'}, {'name': 'b', 'key': 'sk-7'},"
	"                   {'name': 'c', 'key': 'sk-8'}, {'name': 'd', 'key': 'sk-9'}],"
	"   'models': ['m-s']}"
	" ]}";

/* Pass-through: %s is true or false. */
static const char PASS_CFG[] =
	"{'agent': {'allow_unknown_models': %s},"
	" 'models': ['m-a', {'name': 'm-off', 'enabled': false}],"
	" 'channels': ["
	"  {'name': 'wild', 'base_url': 'https://wild.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-1'}],"
	"   'models': {'*': '*', 'm-a': 'up-a'}}"
	" ]}";

/* The model of messages-1.json under five upstream names, and a channel
 * that does not serve it. The esc upstream is: we"ird\name/é */
static const char REWRITE_CFG[] =
	"{'models': ['claude-sonnet-4-5', 'm-x'],"
	" 'channels': ["
	"  {'name': 'same', 'base_url': 'https://same.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-1'}], 'models': ['claude-sonnet-4-5']},"
	"  {'name': 'long', 'base_url': 'https://long.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-2'}],"
	"   'models': {'claude-sonnet-4-5': 'claude-sonnet-4-5-20250929'}},"
	"  {'name': 'short', 'base_url': 'https://short.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-3'}],"
	"   'models': {'claude-sonnet-4-5': 'sonnet'}},"
	"  {'name': 'equal', 'base_url': 'https://equal.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-4'}],"
	"   'models': {'claude-sonnet-4-5': 'claude-sonnet-4-6'}},"
	"  {'name': 'esc', 'base_url': 'https://esc.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-5'}],"
	"   'models': {'claude-sonnet-4-5': 'we\\'ird\\\\name/\xc3\xa9'}},"
	"  {'name': 'other', 'base_url': 'https://other.example',"
	"   'credentials': [{'name': 'k', 'key': 'sk-6'}], 'models': ['m-x']}"
	" ]}";

static struct realms_config *parse_pass(int allow)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), PASS_CFG, allow ? "true" : "false");
	return cfg_sq_parse(buf);
}

/* A POST /v1/messages with a JSON body and nothing else set. Absent
 * headers are "" as the handler passes them. */
static struct verdict_in msg_in(const char *body)
{
	struct verdict_in in;

	memset(&in, 0, sizeof(in));
	in.method = S("POST");
	in.path = S("/v1/messages");
	in.auth = S("");
	in.apikey = S("");
	in.session = S("");
	in.ctype = S("application/json");
	in.body = body;
	in.body_len = strlen(body);
	in.body_size = in.body_len;
	in.body_size_known = 1;
	in.body_prefix = 65536;
	return in;
}

static struct tok_info tok_of(const char *group)
{
	struct tok_info t;

	memset(&t, 0, sizeof(t));
	t.status = TOK_ACTIVE;
	snprintf(t.name, sizeof(t.name), "alice");
	snprintf(t.group, sizeof(t.group), "%s", group);
	return t;
}

#define NOW 1700000000

/* Route, then decide, as the handler does. */
static void decide(const struct realms_config *cfg, const struct verdict_in *in,
                   const struct tok_info *tok, uint64_t seed, struct verdict *v)
{
	struct sched_env e = env_with(&seed);

	assert_int_not_equal(verdict_route(in, v), ROUTE_NONE);
	verdict_decide(cfg, in, tok, NOW, &e, v);
}

static void decide_body(const struct realms_config *cfg, const char *body,
                        const char *group, struct verdict *v)
{
	struct verdict_in in = msg_in(body);
	struct tok_info t = tok_of(group);

	decide(cfg, &in, &t, 1, v);
}

static void assert_refused(const struct verdict *v, int status, const char *type,
                           const char *msg)
{
	if (v->status != status || !v->err_type || strcmp(v->err_type, type) ||
	    strcmp(v->err_msg, msg))
		print_error("got %d %s \"%s\"\n", v->status,
		            v->err_type ? v->err_type : "(null)", v->err_msg);
	assert_int_equal(v->status, status);
	assert_string_equal(v->err_type, type);
	assert_string_equal(v->err_msg, msg);
}

static void assert_allowed(const struct verdict *v)
{
	if (v->status)
		print_error("refused: %d %s \"%s\"\n", v->status, v->err_type, v->err_msg);
	assert_int_equal(v->status, 0);
	assert_non_null(v->cred);
	assert_non_null(v->binding);
}

static char *read_fixture(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* ---- verdict_route -------------------------------------------------- */

static void route_is(const char *method, const char *path, enum route want)
{
	struct verdict_in in = msg_in("");
	struct verdict v;

	in.method = S(method);
	in.path = S(path);
	memset(&v, 0xa5, sizeof(v));
	assert_int_equal(verdict_route(&in, &v), want);
	assert_int_equal(v.route, want);
	assert_int_equal(v.status, 0);
	assert_null(v.err_type);
	assert_string_equal(v.session, "");
	assert_null(v.cred);
}

static void route_refused(const char *method, const char *path, int status,
                          const char *type, const char *msg)
{
	struct verdict_in in = msg_in("");
	struct verdict v;

	in.method = S(method);
	in.path = S(path);
	assert_int_equal(verdict_route(&in, &v), ROUTE_NONE);
	assert_int_equal(v.route, ROUTE_NONE);
	assert_refused(&v, status, type, msg);
}

static void test_route_allowed(void **state)
{
	route_is("POST", "/v1/messages", ROUTE_MESSAGES);
	route_is("POST", "/v1/messages/count_tokens", ROUTE_COUNT_TOKENS);
	route_is("GET", "/v1/models", ROUTE_MODELS);
	route_is("HEAD", "/api/hello", ROUTE_HELLO);
	route_is("GET", "/api/hello", ROUTE_HELLO);
}

static void test_route_wrong_method(void **state)
{
	static const char *const others[] = { "GET", "PUT", "DELETE", "HEAD", "post", "OPTIONS" };

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		char msg[256];

		snprintf(msg, sizeof(msg), "Method %s is not allowed on /v1/messages; use POST",
		         others[i]);
		route_refused(others[i], "/v1/messages", 405, "invalid_request_error", msg);
		snprintf(msg, sizeof(msg),
		         "Method %s is not allowed on /v1/messages/count_tokens; use POST", others[i]);
		route_refused(others[i], "/v1/messages/count_tokens", 405,
		              "invalid_request_error", msg);
	}
	route_refused("POST", "/v1/models", 405, "invalid_request_error",
	              "Method POST is not allowed on /v1/models; use GET");
	route_refused("HEAD", "/v1/models", 405, "invalid_request_error",
	              "Method HEAD is not allowed on /v1/models; use GET");
	route_refused("POST", "/api/hello", 405, "invalid_request_error",
	              "Method POST is not allowed on /api/hello; use HEAD or GET");
	route_refused("get", "/api/hello", 405, "invalid_request_error",
	              "Method get is not allowed on /api/hello; use HEAD or GET");
	route_refused("", "/api/hello", 405, "invalid_request_error",
	              "Method  is not allowed on /api/hello; use HEAD or GET");
}

static void test_route_long_method_cut(void **state)
{
	char method[201], want[256];

	memset(method, 'X', 200);
	method[200] = '\0';
	snprintf(want, sizeof(want), "Method %.100s is not allowed on /v1/messages; use POST",
	         method);
	route_refused(method, "/v1/messages", 405, "invalid_request_error", want);
	snprintf(want, sizeof(want), "Method %.100s is not allowed on /api/hello; use HEAD or GET",
	         method);
	route_refused(method, "/api/hello", 405, "invalid_request_error", want);
}

static void test_route_not_found(void **state)
{
	route_refused("POST", "/v1/messages/", 404, "not_found_error", "Not found: /v1/messages/");
	route_refused("POST", "/v1/messagesx", 404, "not_found_error", "Not found: /v1/messagesx");
	route_refused("POST", "/V1/MESSAGES", 404, "not_found_error", "Not found: /V1/MESSAGES");
	route_refused("GET", "/v1/models/claude", 404, "not_found_error",
	              "Not found: /v1/models/claude");
	route_refused("GET", "/", 404, "not_found_error", "Not found: /");
	route_refused("GET", "", 404, "not_found_error", "Not found: ");
}

static void test_route_long_path_cut(void **state)
{
	char path[301], want[128];
	struct verdict_in in = msg_in("");
	struct verdict v;

	path[0] = '/';
	for (int i = 1; i < 300; i++)
		path[i] = 'a' + i % 26;
	path[300] = '\0';
	snprintf(want, sizeof(want), "Not found: %.100s", path);
	in.path = S(path);
	assert_int_equal(verdict_route(&in, &v), ROUTE_NONE);
	assert_refused(&v, 404, "not_found_error", want);
	assert_int_equal(strlen(v.err_msg), strlen("Not found: ") + 100);
	/* Only the path's bytes count: no NUL needed after them. */
	in.path.len = 12;
	memcpy(path, "/v1/messages", 12);
	assert_int_equal(verdict_route(&in, &v), ROUTE_MESSAGES);
}

/* ---- verdict_token -------------------------------------------------- */

static const char NEED_BEARER[] = "Authorization header must be \"Bearer <token>\"";
static const char NEED_TOKEN[] =
	"an API token is required: send x-api-key or Authorization: Bearer "
	"(ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN in Claude Code)";

static void token_is(const char *auth, const char *apikey, const char *want)
{
	struct verdict_in in = msg_in("");
	struct verdict v;
	struct vslice t = { NULL, 0 };

	in.auth = S(auth);
	in.apikey = S(apikey);
	memset(&v, 0, sizeof(v));
	assert_int_equal(verdict_token(&in, &t, &v), 0);
	assert_int_equal(v.status, 0);
	assert_int_equal(t.len, strlen(want));
	assert_memory_equal(t.p, want, t.len);
	/* A slice of the header, not a copy. */
	assert_true((t.p >= auth && t.p < auth + strlen(auth)) ||
	            (t.p >= apikey && t.p < apikey + strlen(apikey)));
}

static void token_refused(const char *auth, const char *apikey, const char *msg)
{
	struct verdict_in in = msg_in("");
	struct verdict v;
	struct vslice t;

	in.auth = S(auth);
	in.apikey = S(apikey);
	memset(&v, 0, sizeof(v));
	assert_int_equal(verdict_token(&in, &t, &v), -1);
	assert_refused(&v, 401, "authentication_error", msg);
}

static void test_token_bearer(void **state)
{
	token_is("Bearer tok-1", "", "tok-1");
	token_is("bearer tok-1", "", "tok-1");
	token_is("BEARER tok-1", "", "tok-1");
	token_is("bEaReR tok-1", "", "tok-1");
	token_is("  Bearer   tok-1 \t", "", "tok-1");
	token_is("\tBearer tok-1", "", "tok-1");
	token_is("Bearer a", "", "a");
}

static void test_token_apikey(void **state)
{
	token_is("", "key-1", "key-1");
	token_is("", "  key-1\t ", "key-1");
	token_is("   ", "key-1", "key-1");
}

static void test_token_bearer_preferred(void **state)
{
	token_is("Bearer tok-1", "key-1", "tok-1");
	token_is("bearer  tok-1 ", " key-1", "tok-1");
}

static void test_token_other_scheme(void **state)
{
	token_refused("Basic dXNlcjpwYXNz", "", NEED_BEARER);
	token_refused("Basic dXNlcjpwYXNz", "   ", NEED_BEARER);
	token_refused("tok-1", "", NEED_BEARER);
	token_refused("Bearertok-1", "", NEED_BEARER);
	token_is("Basic dXNlcjpwYXNz", "key-1", "key-1");
	token_is("tok-1", " key-1 ", "key-1");
}

static void test_token_empty_bearer(void **state)
{
	token_is("Bearer ", "key-1", "key-1");
	token_is("Bearer    \t ", "key-1", "key-1");
	token_is("Bearer", "key-1", "key-1");
	token_refused("Bearer ", "", NEED_BEARER);
	token_refused("Bearer  \t  ", "", NEED_BEARER);
	token_refused("Bearer", "", NEED_BEARER);
}

static void test_token_none(void **state)
{
	token_refused("", "", NEED_TOKEN);
	token_refused(" \t ", "  ", NEED_TOKEN);
}

/* ---- verdict_decide: the token -------------------------------------- */

static void test_decide_token_unknown_revoked(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict_in in = msg_in("{\"model\":\"m-a\"}");
	struct tok_info t = tok_of("default");
	struct verdict v;

	t.status = TOK_UNKNOWN;
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 401, "authentication_error", "invalid API token");
	assert_null(v.cred);
	t.status = TOK_REVOKED;
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 401, "authentication_error", "this API token has been revoked");
	/* Revoked wins over expired and unknown groups. */
	t.expires = NOW - 10;
	snprintf(t.group, sizeof(t.group), "nosuch");
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 401, "authentication_error", "this API token has been revoked");
	config_unref(cfg);
}

static void test_decide_token_expired(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict_in in = msg_in("{\"model\":\"m-a\"}");
	struct tok_info t = tok_of("default");
	struct verdict v;

	/* NOW is 2023-11-14T22:13:20Z. */
	t.expires = NOW;
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 401, "authentication_error",
	               "this API token expired on 2023-11-14T22:13:20Z");
	t.expires = NOW - 1;
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 401, "authentication_error",
	               "this API token expired on 2023-11-14T22:13:19Z");
	t.expires = 946684800;   /* 2000-01-01 */
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 401, "authentication_error",
	               "this API token expired on 2000-01-01T00:00:00Z");
	/* Expired also on GET /v1/models. */
	in.method = S("GET");
	in.path = S("/v1/models");
	decide(cfg, &in, &t, 1, &v);
	assert_int_equal(v.status, 401);

	in = msg_in("{\"model\":\"m-a\"}");
	t.expires = NOW + 1;
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	t.expires = 0;   /* never */
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	config_unref(cfg);
}

static void test_decide_unknown_group(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict_in in = msg_in("{\"model\":\"m-a\"}");
	struct tok_info t = tok_of("nosuch");
	struct verdict v;

	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 403, "permission_error",
	               "this API token's group is not configured on this gateway");
	/* Before the body: a bad body does not change the answer. */
	in = msg_in("not json");
	decide(cfg, &in, &t, 1, &v);
	assert_int_equal(v.status, 403);
	snprintf(t.group, sizeof(t.group), "DEFAULT");
	decide(cfg, &in, &t, 1, &v);
	assert_int_equal(v.status, 403);
	config_unref(cfg);
}

static void test_decide_models_and_hello_skip_body(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict_in in = msg_in("");
	struct tok_info t = tok_of("lonely");
	struct verdict v;

	in.method = S("GET");
	in.path = S("/v1/models");
	in.ctype = S("");
	decide(cfg, &in, &t, 1, &v);
	assert_int_equal(v.status, 0);
	assert_int_equal(v.route, ROUTE_MODELS);
	assert_null(v.cred);
	in.method = S("HEAD");
	in.path = S("/api/hello");
	decide(cfg, &in, &t, 1, &v);
	assert_int_equal(v.status, 0);
	assert_int_equal(v.route, ROUTE_HELLO);
	assert_null(v.cred);
	config_unref(cfg);
}

/* ---- verdict_decide: content type and body -------------------------- */

static void ctype_ok(const struct realms_config *cfg, const char *ct, int ok)
{
	struct verdict_in in = msg_in("{\"model\":\"m-a\"}");
	struct tok_info t = tok_of("default");
	struct verdict v;

	in.ctype = S(ct);
	decide(cfg, &in, &t, 1, &v);
	if (ok)
		assert_allowed(&v);
	else
		assert_refused(&v, 400, "invalid_request_error",
		               "Content-Type must be application/json");
}

static void test_decide_content_type(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);

	ctype_ok(cfg, "application/json", 1);
	ctype_ok(cfg, "application/json; charset=utf-8", 1);
	ctype_ok(cfg, "application/json;charset=UTF-8", 1);
	ctype_ok(cfg, "APPLICATION/JSON", 1);
	ctype_ok(cfg, "Application/Json ; charset=utf-8", 1);
	ctype_ok(cfg, " application/json ", 1);
	ctype_ok(cfg, "text/plain", 0);
	ctype_ok(cfg, "", 0);
	ctype_ok(cfg, "application/jsonx", 0);
	ctype_ok(cfg, "application/json-seq", 0);
	ctype_ok(cfg, "application/jso", 0);
	ctype_ok(cfg, "; application/json", 0);
	ctype_ok(cfg, "application/x-www-form-urlencoded", 0);
	config_unref(cfg);
}

static void body_refused(const struct realms_config *cfg, const char *body, const char *msg)
{
	struct verdict v;

	decide_body(cfg, body, "default", &v);
	assert_refused(&v, 400, "invalid_request_error", msg);
	assert_null(v.cred);
}

static void test_decide_body_shape(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);

	body_refused(cfg, "", "request body is empty; expected a JSON object");
	body_refused(cfg, "{\"model\":", "request body is not valid JSON");
	body_refused(cfg, "{\"model\":\"m-a\",}", "request body is not valid JSON");
	body_refused(cfg, "{\"model\":\"m-a\"} x", "request body is not valid JSON");
	body_refused(cfg, "[{\"model\":\"m-a\"}]", "request body must be a JSON object");
	body_refused(cfg, "\"m-a\"", "request body must be a JSON object");
	body_refused(cfg, "{\"model\":\"m-a\",\"model\":\"m-b\"}",
	             "request body has a duplicate top-level key");
	body_refused(cfg, "{\"model\":\"m-a\",\"stream\":true,\"stream\":false}",
	             "request body has a duplicate top-level key");
	config_unref(cfg);
}

static void test_decide_model_missing(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	static const char full[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	                           "\"model\":\"m-a\"}";
	struct verdict_in in = msg_in(full);
	struct tok_info t = tok_of("default");
	struct verdict v;
	char want[VERDICT_MSG_MAX];

	/* Complete body without a model. */
	body_refused(cfg, "{\"max_tokens\":10}", "model: Field required");
	/* A nested "model" is not the model. */
	body_refused(cfg, "{\"metadata\":{\"model\":\"m-a\"}}", "model: Field required");

	/* The same key beyond a truncated prefix: named as such, with the
	 * prefix's length. */
	in.body_len = strlen("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],");
	in.body_size = strlen(full);
	decide(cfg, &in, &t, 1, &v);
	snprintf(want, sizeof(want),
	         "model: not found in the first %zu bytes of the request body; this "
	         "gateway reads only that much before routing (operators: raise "
	         "agent.body_prefix and the SPOE bytes() limit together)", in.body_len);
	assert_refused(&v, 400, "invalid_request_error", want);
	assert_non_null(strstr(v.err_msg, "first 45 bytes"));

	/* Cut inside the model's value: not guessed. */
	in.body_len = strlen(full) - 3;
	decide(cfg, &in, &t, 1, &v);
	snprintf(want, sizeof(want),
	         "model: not found in the first %zu bytes of the request body; this "
	         "gateway reads only that much before routing (operators: raise "
	         "agent.body_prefix and the SPOE bytes() limit together)", in.body_len);
	assert_refused(&v, 400, "invalid_request_error", want);

	/* The whole prefix, the whole body: allowed. */
	in.body_len = strlen(full);
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	config_unref(cfg);
}

static void test_decide_chunked_is_truncated(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict_in in = msg_in("{\"max_tokens\":10}");
	struct tok_info t = tok_of("default");
	struct verdict v;

	in.body_size_known = 0;
	in.body_size = 0;
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 400, "invalid_request_error",
	               "model: not found in the first 17 bytes of the request body; this "
	               "gateway reads only that much before routing (operators: raise "
	               "agent.body_prefix and the SPOE bytes() limit together)");
	assert_int_equal(v.insp.complete, 0);

	/* A chunked prefix that names the model is routed. */
	in = msg_in("{\"model\":\"m-a\",\"messages\":[{\"role\":\"us");
	in.body_size_known = 0;
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	assert_string_equal(v.insp.model, "m-a");
	assert_int_equal(v.insp.complete, 0);

	/* A number touching the end of a chunked prefix is cut off, so the
	 * 'not a string' check cannot fire on it. */
	in = msg_in("{\"model\":12");
	in.body_size_known = 0;
	decide(cfg, &in, &t, 1, &v);
	assert_int_equal(v.status, 400);
	assert_non_null(strstr(v.err_msg, "model: not found in the first 11 bytes"));
	config_unref(cfg);
}

static void test_decide_model_wrong_type(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	char body[INSPECT_MODEL_MAX + 64];
	char name[INSPECT_MODEL_MAX + 2];
	struct verdict v;

	body_refused(cfg, "{\"model\":5}", "model: must be a string naming a model");
	body_refused(cfg, "{\"model\":null}", "model: must be a string naming a model");
	body_refused(cfg, "{\"model\":[\"m-a\"]}", "model: must be a string naming a model");
	body_refused(cfg, "{\"model\":{\"name\":\"m-a\"}}", "model: must be a string naming a model");
	body_refused(cfg, "{\"model\":\"m-a\\u0001\"}", "model: must be a string naming a model");

	memset(name, 'a', INSPECT_MODEL_MAX + 1);
	name[INSPECT_MODEL_MAX + 1] = '\0';
	snprintf(body, sizeof(body), "{\"model\":\"%s\"}", name);
	body_refused(cfg, body, "model: must be at most 256 bytes");

	/* Exactly INSPECT_MODEL_MAX bytes is a name: just not a known one. */
	name[INSPECT_MODEL_MAX] = '\0';
	snprintf(body, sizeof(body), "{\"model\":\"%s\"}", name);
	decide_body(cfg, body, "default", &v);
	assert_int_equal(v.status, 404);
	assert_string_equal(v.err_type, "not_found_error");
	assert_int_equal(strlen(v.err_msg), strlen("model: ") + INSPECT_MODEL_MAX);
	config_unref(cfg);
}

/* A body past the old inspection budget (65536 tokens) is read whole and
 * routed like any other; it used to come back "too complex" and pass. */
static void test_decide_big_body_routed(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	const size_t n = 70000;
	char *body = malloc(2 * n + 64);
	size_t o;
	struct verdict v;

	assert_non_null(body);
	o = (size_t)sprintf(body, "{\"model\":\"m-b\",\"a\":[");
	for (size_t i = 0; i < n; i++) {
		body[o++] = '0';
		body[o++] = ',';
	}
	body[o - 1] = ']';
	body[o++] = '}';
	body[o] = '\0';
	decide_body(cfg, body, "default", &v);
	assert_int_equal(v.insp.status, INSPECT_OK);
	assert_int_equal(v.insp.complete, 1);
	assert_allowed(&v);
	assert_string_equal(v.binding->upstream, "up-b");

	/* The same with a second "model" at the end: refused, not routed by
	 * the first. */
	memcpy(body + o - 1, ",\"model\":\"m-a\"}", 16);
	body[o - 1 + 16] = '\0';
	decide_body(cfg, body, "default", &v);
	assert_int_equal(v.insp.status, INSPECT_DUPLICATE_KEY);
	assert_refused(&v, 400, "invalid_request_error",
	               "request body has a duplicate top-level key");
	free(body);
	config_unref(cfg);
}

/* ---- verdict_decide: model, group, channel -------------------------- */

static void test_decide_unknown_and_disabled_model(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict v;

	decide_body(cfg, "{\"model\":\"claude-nope\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: claude-nope");
	assert_null(v.cred);
	/* Names compare exactly. */
	decide_body(cfg, "{\"model\":\"M-A\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: M-A");
	decide_body(cfg, "{\"model\":\"\"}", "default", &v);
	assert_int_equal(v.status, 400);
	/* The decoded name is what counts. */
	decide_body(cfg, "{\"model\":\"m\\u002da\"}", "default", &v);
	assert_allowed(&v);
	decide_body(cfg, "{\"model\":\"m-off\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: m-off");
	decide_body(cfg, "{\"model\":\"m-off\"}", "research", &v);
	assert_refused(&v, 404, "not_found_error", "model: m-off");
	config_unref(cfg);
}

static void test_decide_no_enabled_binding(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct realms_config *bare;
	struct verdict v;

	/* Its only channel is disabled. */
	decide_body(cfg, "{\"model\":\"m-dead\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: m-dead");
	/* Its only channel has every credential disabled. */
	decide_body(cfg, "{\"model\":\"m-nocred\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: m-nocred");
	/* Bound by no channel at all (also: for a token of any group). */
	decide_body(cfg, "{\"model\":\"claude@x/y+z[1]\"}", "lonely", &v);
	assert_refused(&v, 404, "not_found_error", "model: claude@x/y+z[1]");
	config_unref(cfg);

	/* A config without any channel or credential. */
	bare = cfg_sq_parse("{'models': ['m-a'], 'channels': []}");
	decide_body(bare, "{\"model\":\"m-a\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: m-a");
	config_unref(bare);
}

static void test_decide_group_permission(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict v;

	decide_body(cfg, "{\"model\":\"m-research\"}", "default", &v);
	assert_refused(&v, 403, "permission_error",
	               "model m-research is not available to this API token");
	assert_null(v.cred);
	decide_body(cfg, "{\"model\":\"m-a\"}", "lonely", &v);
	assert_refused(&v, 403, "permission_error",
	               "model m-a is not available to this API token");
	decide_body(cfg, "{\"model\":\"m-research\"}", "research", &v);
	assert_allowed(&v);
	assert_string_equal(v.cred->server, "ch4--k");
	decide_body(cfg, "{\"model\":\"m-a\"}", "research", &v);
	assert_allowed(&v);
	assert_string_equal(v.cred->channel->name, "ch1");
	config_unref(cfg);
}

static void test_decide_all_cooling(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict v;

	cooling = (1ULL << 0) | (1ULL << 1);   /* ch1--k1, ch1--k2 */
	decide_body(cfg, "{\"model\":\"m-a\"}", "default", &v);
	assert_refused(&v, 503, "overloaded_error",
	               "no upstream is available for model m-a right now; retry shortly");
	assert_null(v.cred);
	/* One left: it takes every request. */
	cooling = 1ULL << 0;
	for (uint64_t seed = 1; seed <= 50; seed++) {
		struct verdict_in in = msg_in("{\"model\":\"m-a\"}");
		struct tok_info t = tok_of("default");

		decide(cfg, &in, &t, seed, &v);
		assert_allowed(&v);
		assert_string_equal(v.cred->server, "ch1--k2");
	}
	cooling = 0;
	config_unref(cfg);
}

static void test_decide_allowed_fields(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict v;

	decide_body(cfg, "{\"model\":\"m-b\",\"stream\":true,\"max_tokens\":5}", "default", &v);
	assert_allowed(&v);
	assert_null(v.err_type);
	assert_int_equal(v.route, ROUTE_MESSAGES);
	assert_non_null(v.model);
	assert_string_equal(v.model->name, "m-b");
	assert_ptr_equal(v.model, config_model(cfg, "m-b", 3));
	assert_ptr_equal(v.binding->channel, v.cred->channel);
	assert_string_equal(v.binding->model, "m-b");
	assert_string_equal(v.binding->upstream, "up-b");
	assert_true(v.binding->rewrite);
	assert_true(v.cred->enabled);
	assert_string_equal(v.insp.model, "m-b");
	assert_int_equal(v.insp.model_off, 9);
	assert_int_equal(v.insp.model_tok_len, 5);
	assert_int_equal(v.insp.stream_state, INSPECT_KEY_PRESENT);
	assert_int_equal(v.insp.stream, 1);
	assert_string_equal(v.session, "");

	/* count_tokens takes the same path. */
	{
		struct verdict_in in = msg_in("{\"model\":\"m-a\"}");
		struct tok_info t = tok_of("default");

		in.path = S("/v1/messages/count_tokens");
		decide(cfg, &in, &t, 1, &v);
		assert_allowed(&v);
		assert_int_equal(v.route, ROUTE_COUNT_TOKENS);
		assert_false(v.binding->rewrite);
	}
	config_unref(cfg);
}

/* ---- sessions ------------------------------------------------------- */

static void session_of(const struct realms_config *cfg, const char *hdr, const char *body,
                       const char *want)
{
	struct verdict_in in = msg_in(body);
	struct tok_info t = tok_of("default");
	struct verdict v;

	in.session = S(hdr);
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	assert_string_equal(v.session, want);
}

static void test_decide_session_sources(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	static const char json_form[] =
		"{\"model\":\"m-a\",\"metadata\":{\"user_id\":\"{\\\"device_id\\\":\\\"x\\\","
		"\\\"account_uuid\\\":\\\"\\\",\\\"session_id\\\":\\\"abc-123\\\"}\"}}";
	static const char legacy[] =
		"{\"model\":\"m-a\",\"metadata\":{\"user_id\":\"user_0123abcdef_account_"
		"7b5e2d1c-aaaa-4bbb-8ccc-000000000001_session_"
		"5f0c6a2e-1111-4222-8333-444444444444\"}}";
	char long_hdr[VERDICT_SESSION_MAX + 2];

	session_of(cfg, "hdr-session-1", "{\"model\":\"m-a\"}", "hdr-session-1");
	session_of(cfg, "", json_form, "abc-123");
	session_of(cfg, "", legacy, "5f0c6a2e-1111-4222-8333-444444444444");
	/* The header wins over the body. */
	session_of(cfg, "hdr-session-1", json_form, "hdr-session-1");
	/* A header that is not a plausible id is ignored: the body's is used. */
	session_of(cfg, "bad session", json_form, "abc-123");
	session_of(cfg, "bad\"session", "{\"model\":\"m-a\"}", "");
	memset(long_hdr, 'a', sizeof(long_hdr) - 1);
	long_hdr[sizeof(long_hdr) - 1] = '\0';   /* VERDICT_SESSION_MAX + 1 bytes */
	session_of(cfg, long_hdr, json_form, "abc-123");
	long_hdr[VERDICT_SESSION_MAX] = '\0';
	session_of(cfg, long_hdr, json_form, long_hdr);
	/* metadata without user_id, or user_id without a session. */
	session_of(cfg, "", "{\"model\":\"m-a\",\"metadata\":{}}", "");
	session_of(cfg, "", "{\"model\":\"m-a\",\"metadata\":{\"user_id\":\"u-1\"}}", "");
	config_unref(cfg);
}

static void test_decide_fixture(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(REWRITE_CFG);
	size_t len;
	char *body = read_fixture("messages-1.json", &len);
	struct verdict_in in = msg_in(body);
	struct tok_info t = tok_of("default");
	struct verdict v;

	in.auth = S("Bearer sk-realms-1");
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	assert_string_equal(v.insp.model, "claude-sonnet-4-5");
	assert_string_equal(v.session, "b9bcf3bd-9fde-4a09-aba9-441d0a1b493d");
	assert_int_equal(v.insp.stream, 1);

	/* The gateway reads a 64 KiB prefix of this 85 KB body: the model is
	 * first, so it is still routed. metadata is past the prefix, but the
	 * header carries the same session: the same credential. */
	{
		const struct cfg_cred *first = v.cred;

		in.body_len = 65536;
		in.session = S("b9bcf3bd-9fde-4a09-aba9-441d0a1b493d");
		decide(cfg, &in, &t, 99, &v);
		assert_allowed(&v);
		assert_int_equal(v.insp.complete, 0);
		assert_ptr_equal(v.cred, first);
	}
	free(body);
	config_unref(cfg);
}

static void test_decide_sticky(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(SCHED_CFG);
	static const char body[] = "{\"model\":\"m-s\"}";
	struct tok_info t = tok_of("default");
	struct verdict v;
	const struct cfg_cred *first = NULL;
	int seen[9] = { 0 }, kinds = 0;
	char sid[32];

	cooling = 0;
	for (uint64_t seed = 1; seed <= 100; seed++) {
		struct verdict_in in = msg_in(body);

		in.session = S("5f0c6a2e-1111-4222-8333-444444444444");
		decide(cfg, &in, &t, seed * 0x9e3779b97f4a7c15ULL, &v);
		assert_allowed(&v);
		if (!first)
			first = v.cred;
		assert_ptr_equal(v.cred, first);
	}
	/* Its credential cooling down: the session moves, and stays. */
	cooling = 1ULL << first->id;
	{
		const struct cfg_cred *second = NULL;

		for (uint64_t seed = 1; seed <= 100; seed++) {
			struct verdict_in in = msg_in(body);

			in.session = S("5f0c6a2e-1111-4222-8333-444444444444");
			decide(cfg, &in, &t, seed, &v);
			assert_allowed(&v);
			assert_ptr_not_equal(v.cred, first);
			if (!second)
				second = v.cred;
			assert_ptr_equal(v.cred, second);
		}
	}
	cooling = 0;
	/* Different sessions spread over the credentials. */
	for (int i = 0; i < 64; i++) {
		struct verdict_in in = msg_in(body);

		snprintf(sid, sizeof(sid), "session-%d", i);
		in.session = S(sid);
		decide(cfg, &in, &t, 7, &v);
		assert_allowed(&v);
		assert_in_range(v.cred->id, 5, 8);
		if (!seen[v.cred->id]++)
			kinds++;
	}
	assert_true(kinds >= 3);
	config_unref(cfg);
}

static void test_decide_priority_tiers(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(SCHED_CFG);
	struct tok_info t = tok_of("default");
	struct verdict v;

	cooling = 0;
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct verdict_in in = msg_in("{\"model\":\"m-p\"}");

		decide(cfg, &in, &t, seed, &v);
		assert_allowed(&v);
		assert_string_equal(v.cred->server, "hi--k");
	}
	/* A session does not pull a request down a tier. */
	for (int i = 0; i < 50; i++) {
		struct verdict_in in = msg_in("{\"model\":\"m-p\"}");
		char sid[32];

		snprintf(sid, sizeof(sid), "s%d", i);
		in.session = S(sid);
		decide(cfg, &in, &t, 1, &v);
		assert_string_equal(v.cred->server, "hi--k");
	}
	cooling = 1ULL << 0;   /* hi--k */
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct verdict_in in = msg_in("{\"model\":\"m-p\"}");

		decide(cfg, &in, &t, seed, &v);
		assert_allowed(&v);
		assert_string_equal(v.cred->server, "lo--k");
		assert_string_equal(v.binding->channel->name, "lo");
	}
	cooling = (1ULL << 0) | (1ULL << 1);
	{
		struct verdict_in in = msg_in("{\"model\":\"m-p\"}");

		decide(cfg, &in, &t, 1, &v);
		assert_refused(&v, 503, "overloaded_error",
		               "no upstream is available for model m-p right now; retry shortly");
	}
	cooling = 0;
	config_unref(cfg);
}

static void test_decide_weights(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(SCHED_CFG);
	struct tok_info t = tok_of("default");
	struct sched_env e;
	uint64_t seed = 0x1234567;
	int counts[9] = { 0 };
	const int draws = 10000;

	cooling = 0;
	e = env_with(&seed);
	for (int i = 0; i < draws; i++) {
		struct verdict_in in = msg_in("{\"model\":\"m-w\"}");
		struct verdict v;

		assert_int_equal(verdict_route(&in, &v), ROUTE_MESSAGES);
		verdict_decide(cfg, &in, &t, NOW, &e, &v);
		assert_allowed(&v);
		counts[v.cred->id]++;
	}
	/* w1 : w3 = 25 % : 75 %, +-2 points; w0 (drained) never. */
	assert_in_range(counts[2], 2300, 2700);
	assert_in_range(counts[3], 7300, 7700);
	assert_int_equal(counts[4], 0);
	assert_int_equal(counts[2] + counts[3], draws);
	config_unref(cfg);
}

/* ---- pass-through --------------------------------------------------- */

static void test_decide_passthrough(void **state)
{
	struct realms_config *cfg = parse_pass(1);
	struct verdict v;

	decide_body(cfg, "{\"model\":\"claude-future-9\"}", "default", &v);
	assert_allowed(&v);
	assert_null(v.model);
	assert_string_equal(v.insp.model, "claude-future-9");
	assert_string_equal(v.cred->server, "wild--k");
	assert_string_equal(v.binding->model, "*");
	assert_false(v.binding->rewrite);

	/* A catalogue model still uses its exact binding. */
	decide_body(cfg, "{\"model\":\"m-a\"}", "default", &v);
	assert_allowed(&v);
	assert_non_null(v.model);
	assert_string_equal(v.binding->upstream, "up-a");

	/* A passed-through name obeys the model-name charset: a comma or a
	 * space would be split or trimmed in the internal headers. */
	decide_body(cfg, "{\"model\":\"x,m-off\"}", "default", &v);
	assert_refused(&v, 400, "invalid_request_error",
	               "model: not a valid model name (1 to 256 of A-Z a-z 0-9 . _ - @ / + [ ])");
	decide_body(cfg, "{\"model\":\"m-off \"}", "default", &v);
	assert_int_equal(v.status, 400);
	decide_body(cfg, "{\"model\":\" m-a\"}", "default", &v);
	assert_int_equal(v.status, 400);

	/* A disabled model is not passed through as if unknown, nor under
	 * another spelling: a dated variant, or a channel's name for a
	 * configured model. */
	decide_body(cfg, "{\"model\":\"m-off\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: m-off");
	decide_body(cfg, "{\"model\":\"m-off-20251101\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: m-off-20251101");
	decide_body(cfg, "{\"model\":\"up-a\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: up-a");
	config_unref(cfg);

	/* Strict: the same file with the switch off refuses it. */
	cfg = parse_pass(0);
	decide_body(cfg, "{\"model\":\"claude-future-9\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: claude-future-9");
	decide_body(cfg, "{\"model\":\"m-a\"}", "default", &v);
	assert_allowed(&v);
	config_unref(cfg);

	/* The switch on, but no channel binds "*". */
	cfg = cfg_sq_parse("{'agent': {'allow_unknown_models': true}, 'models': ['m-a'],"
	            " 'channels': [{'name': 'c', 'base_url': 'https://c.example',"
	            "  'credentials': [{'name': 'k', 'key': 'sk'}], 'models': ['m-a']}]}");
	decide_body(cfg, "{\"model\":\"claude-future-9\"}", "default", &v);
	assert_refused(&v, 404, "not_found_error", "model: claude-future-9");
	config_unref(cfg);

	/* "*" channels outside the token's group. */
	cfg = cfg_sq_parse("{'agent': {'allow_unknown_models': true}, 'groups': ['default', 'r'],"
	            " 'channels': [{'name': 'c', 'base_url': 'https://c.example', 'groups': ['r'],"
	            "  'credentials': [{'name': 'k', 'key': 'sk'}], 'models': ['*']}]}");
	decide_body(cfg, "{\"model\":\"x-1\"}", "default", &v);
	assert_refused(&v, 403, "permission_error", "model x-1 is not available to this API token");
	decide_body(cfg, "{\"model\":\"x-1\"}", "r", &v);
	assert_allowed(&v);
	assert_null(v.model);
	config_unref(cfg);
}

/* ---- bodies --------------------------------------------------------- */

static void test_store_down(void **state)
{
	struct verdict v;
	char out[512];

	memset(&v, 0, sizeof(v));
	verdict_store_down(&v);
	assert_refused(&v, 503, "api_error",
	               "the gateway cannot verify API tokens right now (token store "
	               "unreachable); retry in a few seconds");
	assert_true(verdict_error_body(&v, out, sizeof(out)) > 0);
	assert_string_equal(out,
		"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
		"\"the gateway cannot verify API tokens right now (token store "
		"unreachable); retry in a few seconds\"}}");
}

static void test_error_body(void **state)
{
	struct verdict_in in = msg_in("");
	struct verdict v;
	char out[2048];
	static const char want[] =
		"{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\","
		"\"message\":\"Not found: /v2\"}}";
	long n;

	in.path = S("/v2");
	verdict_route(&in, &v);
	n = verdict_error_body(&v, out, sizeof(out));
	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
	/* Exactly enough room (with the NUL), then one byte short. */
	assert_int_equal(verdict_error_body(&v, out, sizeof(want)), n);
	assert_string_equal(out, want);
	assert_int_equal(verdict_error_body(&v, out, sizeof(want) - 1), -1);
	assert_int_equal(verdict_error_body(&v, out, 1), -1);
	assert_int_equal(verdict_error_body(&v, out, 0), -1);

	/* Client bytes in the message are escaped. */
	memset(&v, 0, sizeof(v));
	v.status = 400;
	v.err_type = "invalid_request_error";
	snprintf(v.err_msg, sizeof(v.err_msg), "a\"b\\c\nd\te\x01" "f\x1f/\xc3\xa9");
	n = verdict_error_body(&v, out, sizeof(out));
	assert_string_equal(out,
		"{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
		"\"message\":\"a\\\"b\\\\c\\nd\\te\\u0001f\\u001f/\xc3\xa9\"}}");
	assert_int_equal(n, strlen(out));

	/* A path with quotes and control bytes, through the route refusal. */
	in.path = (struct vslice){ "/\"x\\\r", 5 };
	verdict_route(&in, &v);
	n = verdict_error_body(&v, out, sizeof(out));
	assert_string_equal(out,
		"{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\","
		"\"message\":\"Not found: /\\\"x\\\\\\r\"}}");

	/* No type: api_error. */
	memset(&v, 0, sizeof(v));
	v.status = 500;
	snprintf(v.err_msg, sizeof(v.err_msg), "x");
	assert_true(verdict_error_body(&v, out, sizeof(out)) > 0);
	assert_string_equal(out,
		"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}");

	/* The longest message, every byte escaped, still fits the handler's
	 * 2048-byte buffer. */
	memset(v.err_msg, '"', VERDICT_MSG_MAX - 1);
	v.err_msg[VERDICT_MSG_MAX - 1] = '\0';
	n = verdict_error_body(&v, out, sizeof(out));
	assert_int_equal(n, strlen("{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
	                           "\"message\":\"\"}}") + 2 * (VERDICT_MSG_MAX - 1));
}

static const char *model_entry(const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "{\"type\":\"model\",\"id\":\"%s\",\"display_name\":\"%s\","
	         "\"created_at\":\"1970-01-01T00:00:00Z\"}", name, name);
	return buf;
}

static void models_body_is(const struct realms_config *cfg, const char *group,
                           const char *want)
{
	char out[4096];
	int g = config_group_index(cfg, group, strlen(group));
	long n;

	assert_true(g >= 0);
	n = verdict_models_body(cfg, g, NULL, out, sizeof(out));
	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
	/* Every smaller buffer: -1, never a cut body. */
	for (size_t size = 0; size <= (size_t)n; size++)
		assert_int_equal(verdict_models_body(cfg, g, NULL, out, size), -1);
	assert_int_equal(verdict_models_body(cfg, g, NULL, out, (size_t)n + 1), n);
	assert_string_equal(out, want);
}

static void test_models_body(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	char a[256], b[256], r[256], want[2048];

	model_entry("m-a", a, sizeof(a));
	model_entry("m-b", b, sizeof(b));
	model_entry("m-research", r, sizeof(r));

	/* m-off disabled, m-dead on a disabled channel, m-nocred without an
	 * enabled credential, m-research in another group, claude@... unbound. */
	snprintf(want, sizeof(want), "{\"data\":[%s,%s],\"has_more\":false,"
	         "\"first_id\":\"m-a\",\"last_id\":\"m-b\"}", a, b);
	models_body_is(cfg, "default", want);
	assert_string_equal(want,
		"{\"data\":[{\"type\":\"model\",\"id\":\"m-a\",\"display_name\":\"m-a\","
		"\"created_at\":\"1970-01-01T00:00:00Z\"},{\"type\":\"model\",\"id\":\"m-b\","
		"\"display_name\":\"m-b\",\"created_at\":\"1970-01-01T00:00:00Z\"}],"
		"\"has_more\":false,\"first_id\":\"m-a\",\"last_id\":\"m-b\"}");

	snprintf(want, sizeof(want), "{\"data\":[%s,%s,%s],\"has_more\":false,"
	         "\"first_id\":\"m-a\",\"last_id\":\"m-research\"}", a, b, r);
	models_body_is(cfg, "research", want);

	models_body_is(cfg, "lonely",
	               "{\"data\":[],\"has_more\":false,\"first_id\":null,\"last_id\":null}");
	config_unref(cfg);

	cfg = cfg_sq_parse(SCHED_CFG);
	snprintf(want, sizeof(want), "{\"data\":[%s,%s,%s],\"has_more\":false,"
	         "\"first_id\":\"m-p\",\"last_id\":\"m-s\"}",
	         model_entry("m-p", a, sizeof(a)), model_entry("m-w", b, sizeof(b)),
	         model_entry("m-s", r, sizeof(r)));
	models_body_is(cfg, "default", want);
	config_unref(cfg);

	/* One model: first and last are the same; passed-through names are
	 * not listed. */
	cfg = parse_pass(1);
	snprintf(want, sizeof(want), "{\"data\":[%s],\"has_more\":false,"
	         "\"first_id\":\"m-a\",\"last_id\":\"m-a\"}", model_entry("m-a", a, sizeof(a)));
	models_body_is(cfg, "default", want);
	config_unref(cfg);
}

/* ---- verdict_session_from_user_id ----------------------------------- */

static void uid_session(const char *uid, const char *want)
{
	char out[VERDICT_SESSION_MAX + 1];

	memset(out, 'Z', sizeof(out));
	assert_int_equal(verdict_session_from_user_id(uid, strlen(uid), out, sizeof(out)),
	                 strlen(want));
	assert_string_equal(out, want);
}

static void test_session_from_user_id(void **state)
{
	char uid[512], out[VERDICT_SESSION_MAX + 1], id[VERDICT_SESSION_MAX + 2];

	uid_session("{\"device_id\":\"x\",\"account_uuid\":\"\",\"session_id\":\"abc-123\"}",
	            "abc-123");
	uid_session("{\"session_id\" : \"b9bcf3bd-9fde-4a09-aba9-441d0a1b493d\"}",
	            "b9bcf3bd-9fde-4a09-aba9-441d0a1b493d");
	uid_session("user_0123abcdef_account_7b5e2d1c-aaaa-4bbb-8ccc-000000000001_session_"
	            "5f0c6a2e-1111-4222-8333-444444444444",
	            "5f0c6a2e-1111-4222-8333-444444444444");
	uid_session("user_abc_account__session_s.1:2_x", "s.1:2_x");

	/* No session. */
	uid_session("", "");
	uid_session("{\"device_id\":\"x\",\"account_uuid\":\"\"}", "");
	uid_session("user_0123abcdef_account_7b5e2d1c", "");
	uid_session("user_0123_session_", "");
	uid_session("{\"session_id\":\"\"}", "");
	uid_session("{\"session_id\":42}", "");
	uid_session("{\"session_id\":\"abc", "");
	uid_session("{\"session_id\"", "");

	/* Bad characters. */
	uid_session("{\"session_id\":\"abc def\"}", "");
	uid_session("{\"session_id\":\"abc\\\\x\"}", "");
	uid_session("{\"session_id\":\"a/b\"}", "");
	uid_session("user_1_account_2_session_abc def", "");
	uid_session("user_1_account_2_session_abc\"", "");
	uid_session("user_1_account_2_session_\xc3\xa9", "");

	/* Too long for the buffer: refused, not cut. */
	memset(id, 'a', sizeof(id) - 1);
	id[VERDICT_SESSION_MAX] = '\0';   /* VERDICT_SESSION_MAX bytes: fits */
	snprintf(uid, sizeof(uid), "{\"session_id\":\"%s\"}", id);
	uid_session(uid, id);
	snprintf(uid, sizeof(uid), "user_1_account_2_session_%s", id);
	uid_session(uid, id);
	id[VERDICT_SESSION_MAX] = 'a';
	id[VERDICT_SESSION_MAX + 1] = '\0';
	snprintf(uid, sizeof(uid), "{\"session_id\":\"%s\"}", id);
	uid_session(uid, "");
	snprintf(uid, sizeof(uid), "user_1_account_2_session_%s", id);
	uid_session(uid, "");
	assert_int_equal(verdict_session_from_user_id("user_1_session_abcd", 19, out, 4), 0);
	assert_string_equal(out, "");
	assert_int_equal(verdict_session_from_user_id("user_1_session_abcd", 19, out, 5), 4);
	assert_string_equal(out, "abcd");

	/* Only len bytes are read. */
	assert_int_equal(verdict_session_from_user_id("user_1_session_abcdXYZ", 19, out,
	                                              sizeof(out)), 4);
	assert_string_equal(out, "abcd");
}

/* ---- verdict_attempt ------------------------------------------------ */

/* One attempt: primary is the verdict's credential; tried lists the
 * server names the request already used (NULL-terminated), in order. */
static int attempt_with(const struct realms_config *cfg, const char *primary, const char *model,
                        const char *group, const char *session, int64_t off, int64_t len,
                        int64_t clen, const char *const *tried, struct attempt *a)
{
	static uint64_t seed = 99;
	struct sched_env env = env_with(&seed);
	struct tried t = { 0 };
	struct attempt_in in = {
		.primary = { primary, strlen(primary) },
		.model = { model, strlen(model) },
		.group = { group, strlen(group) },
		.session = { session, strlen(session) },
		.off = off, .len = len, .clen = clen, .tried = &t,
	};

	for (size_t i = 0; tried && tried[i]; i++) {
		const struct cfg_cred *c = config_cred_by_server(cfg, tried[i], strlen(tried[i]));

		assert_non_null(c);
		t.cred[t.n++] = c->id;
	}
	t.generation = cfg->generation;
	return verdict_attempt(cfg, &in, &env, a);
}

#define ATTEMPT(cfg, srv, model, off, len, clen, a) \
	attempt_with((cfg), (srv), (model), "default", "", (off), (len), (clen), NULL, (a))

static void test_attempt_errors(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(REWRITE_CFG);
	struct attempt a;

	/* A primary that does not serve the model is only a hint: the
	 * credential comes from the model's own candidates. */
	assert_int_equal(ATTEMPT(cfg, "long--k", "m-x", 9, 5, 100, &a), 0);
	assert_string_equal(a.cred->server, "other--k");
	/* The model: unknown, or not a model name at all. */
	assert_int_equal(ATTEMPT(cfg, "long--k", "claude-future-9", 9, 17, 100, &a), -1);
	assert_string_equal(a.error, "model not served");
	assert_int_equal(ATTEMPT(cfg, "long--k", "x,claude-sonnet-4-5", 9, 17, 100, &a), -1);
	assert_string_equal(a.error, "invalid model name");
	assert_int_equal(attempt_with(cfg, "long--k", "claude-sonnet-4-5", "nosuch", "",
	                              9, 19, 100, NULL, &a), -1);
	assert_string_equal(a.error, "unknown group");

	/* The position, when a rewrite needs it. */
	assert_int_equal(ATTEMPT(cfg, "long--k", "claude-sonnet-4-5", -1, 19, 100, &a), -1);
	assert_string_equal(a.error, "model position unknown");
	assert_int_equal(a.rewrite, 0);
	assert_int_equal(ATTEMPT(cfg, "long--k", "claude-sonnet-4-5", 9, 1, 100, &a), -1);
	assert_string_equal(a.error, "model position unknown");
	assert_int_equal(ATTEMPT(cfg, "long--k", "claude-sonnet-4-5", 9, 0, 100, &a), -1);
	assert_string_equal(a.error, "model position unknown");
	assert_int_equal(ATTEMPT(cfg, "long--k", "claude-sonnet-4-5", 9, -1, -1, &a), -1);
	assert_string_equal(a.error, "model position unknown");
	assert_int_equal(ATTEMPT(cfg, "long--k", "claude-sonnet-4-5", 9, 19, 27, &a), -1);
	assert_string_equal(a.error, "model position unknown");
	/* The token ending exactly at the body's end is in range. */
	assert_int_equal(ATTEMPT(cfg, "long--k", "claude-sonnet-4-5", 9, 19, 28, &a), 0);
	assert_int_equal(a.rewrite, 1);
	assert_int_equal(a.clen_new, 28 - 19 + 28);

	/* Without a rewrite the position does not matter. */
	assert_int_equal(ATTEMPT(cfg, "same--k", "claude-sonnet-4-5", -1, 0, -1, &a), 0);
	assert_null(a.error);
	assert_int_equal(a.rewrite, 0);
	config_unref(cfg);
}

static void test_attempt_no_rewrite(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(REWRITE_CFG);
	struct attempt a;

	memset(&a, 0x5a, sizeof(a));
	assert_int_equal(ATTEMPT(cfg, "same--k", "claude-sonnet-4-5", 9, 19, 1000, &a), 0);
	assert_null(a.error);
	assert_non_null(a.cred);
	assert_string_equal(a.cred->server, "same--k");
	assert_ptr_equal(a.binding->channel, a.cred->channel);
	assert_string_equal(a.backend, "up_same");
	assert_int_equal(a.rewrite, 0);
	assert_int_equal(a.model_new_len, 0);
	config_unref(cfg);

	/* A "*" binding sends the client's name unchanged. */
	cfg = parse_pass(1);
	assert_int_equal(ATTEMPT(cfg, "wild--k", "claude-future-9", 9, 17, 100, &a), 0);
	assert_string_equal(a.backend, "up_wild");
	assert_string_equal(a.binding->model, "*");
	assert_int_equal(a.rewrite, 0);
	/* Its exact binding of m-a rewrites. */
	assert_int_equal(ATTEMPT(cfg, "wild--k", "m-a", 9, 5, 16, &a), 0);
	assert_int_equal(a.rewrite, 1);
	assert_int_equal(a.model_new_len, 6);
	assert_memory_equal(a.model_new, "\"up-a\"", 6);
	assert_int_equal(a.clen_new, 17);
	/* A disabled model is never served, passed through or not. */
	assert_int_equal(ATTEMPT(cfg, "wild--k", "m-off", 9, 7, 100, &a), -1);
	assert_string_equal(a.error, "model not served");
	config_unref(cfg);
}

/* Retries: every attempt stays in the token's group and in tier order, a
 * tried credential is not tried again while another is available, and a
 * disabled one is never used. */
static void test_attempt_retries(void **state)
{
	/* Credential ids: a--k 0 (staff, priority 10), b--k 1 (staff and
	 * interns, priority 10), c--k 2 (interns, priority 0), d--k 3
	 * (staff, priority 0), e--k 4 (interns, priority 10, disabled). */
	struct realms_config *cfg = cfg_sq_parse(
		"{'groups': ['staff', 'interns'], 'models': ['m'],"
		" 'channels': ["
		"  {'name': 'a', 'base_url': 'https://a.example', 'priority': 10, 'groups': ['staff'],"
		"   'credentials': [{'name': 'k', 'key': 'sk-a'}], 'models': ['m']},"
		"  {'name': 'b', 'base_url': 'https://b.example', 'priority': 10,"
		"   'groups': ['staff', 'interns'],"
		"   'credentials': [{'name': 'k', 'key': 'sk-b'}], 'models': ['m']},"
		"  {'name': 'c', 'base_url': 'https://c.example', 'groups': ['interns'],"
		"   'credentials': [{'name': 'k', 'key': 'sk-c'}], 'models': ['m']},"
		"  {'name': 'd', 'base_url': 'https://d.example', 'groups': ['staff'],"
		"   'credentials': [{'name': 'k', 'key': 'sk-d'}], 'models': ['m']},"
		"  {'name': 'e', 'base_url': 'https://e.example', 'priority': 10, 'groups': ['interns'],"
		"   'credentials': [{'name': 'k', 'key': 'sk-e', 'enabled': false}], 'models': ['m']}"
		" ]}");
	static const char *const t_b[] = { "b--k", NULL };
	static const char *const t_bc[] = { "b--k", "c--k", NULL };
	static const char *const t_ab[] = { "a--k", "b--k", NULL };
	static const char *const t_abd[] = { "a--k", "b--k", "d--k", NULL };
	struct attempt a;

	/* First attempt: the verdict's primary. */
	assert_int_equal(attempt_with(cfg, "b--k", "m", "interns", "", 0, 3, 10, NULL, &a), 0);
	assert_string_equal(a.cred->server, "b--k");
	/* A primary outside the group (a forged or stale header) is not used. */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(attempt_with(cfg, "a--k", "m", "interns", "", 0, 3, 10, NULL, &a), 0);
		assert_string_equal(a.cred->server, "b--k");
	}
	/* interns after b failed: c (the next tier; a and d are staff's, e is
	 * disabled), every time. */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(attempt_with(cfg, "b--k", "m", "interns", "", 0, 3, 10, t_b, &a), 0);
		assert_string_equal(a.cred->server, "c--k");
	}
	/* interns after b and c: nothing new; the available ones again. */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(attempt_with(cfg, "b--k", "m", "interns", "", 0, 3, 10, t_bc, &a), 0);
		assert_true(!strcmp(a.cred->server, "b--k"));
	}
	/* staff after b: a, the rest of the top tier, before d. */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(attempt_with(cfg, "b--k", "m", "staff", "", 0, 3, 10, t_b, &a), 0);
		assert_string_equal(a.cred->server, "a--k");
	}
	/* staff after a and b: the lower tier, d, never c. */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(attempt_with(cfg, "a--k", "m", "staff", "", 0, 3, 10, t_ab, &a), 0);
		assert_string_equal(a.cred->server, "d--k");
	}
	/* Everything tried: the top tier again. */
	assert_int_equal(attempt_with(cfg, "a--k", "m", "staff", "", 0, 3, 10, t_abd, &a), 0);
	assert_true(!strcmp(a.cred->server, "a--k") || !strcmp(a.cred->server, "b--k"));
	/* Cooling down (breakers) counts too: staff with a open after b. */
	cooling = 1ULL << 0;
	assert_int_equal(attempt_with(cfg, "b--k", "m", "staff", "", 0, 3, 10, t_b, &a), 0);
	assert_string_equal(a.cred->server, "d--k");
	/* Everything of the group out: no attempt. */
	cooling = (1ULL << 1) | (1ULL << 2);
	assert_int_equal(attempt_with(cfg, "b--k", "m", "interns", "", 0, 3, 10, t_b, &a), -1);
	assert_string_equal(a.error, "no credential of the token's group is available");
	cooling = 0;
	config_unref(cfg);
}

/* A session's retry goes to its own second choice, the same one every
 * time, so its prompt cache is rebuilt once. */
static void test_attempt_session_second_choice(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(SCHED_CFG);
	struct attempt a;
	char first[64], second[64], sess[32];
	int moved = 0;

	for (int s = 0; s < 40; s++) {
		snprintf(sess, sizeof(sess), "session-%d", s);
		assert_int_equal(attempt_with(cfg, "", "m-s", "default", sess, 0, 5, 10, NULL, &a), 0);
		snprintf(first, sizeof(first), "%s", a.cred->server);
		{
			const char *const t[] = { first, NULL };

			assert_int_equal(attempt_with(cfg, first, "m-s", "default", sess, 0, 5, 10, t,
			                              &a), 0);
			snprintf(second, sizeof(second), "%s", a.cred->server);
			assert_string_not_equal(second, first);
			for (int i = 0; i < 5; i++) {
				assert_int_equal(attempt_with(cfg, first, "m-s", "default", sess, 0, 5,
				                              10, t, &a), 0);
				assert_string_equal(a.cred->server, second);
			}
		}
		moved += strcmp(second, "s--a") != 0;
	}
	/* Not everyone moves to the same credential. */
	assert_true(moved > 0 && moved < 40);
	config_unref(cfg);
}

/* Splices the attempt's token into the body and checks the result. */
static void check_splice(const struct realms_config *cfg, const char *body, size_t len,
                         const char *server, const char *upstream, const char *token)
{
	struct inspect_result r, r2;
	struct attempt a;
	char *nb;
	size_t off, tl, nlen;

	assert_int_equal(inspect_body(body, len, len, &r), INSPECT_OK);
	assert_int_equal(r.model_state, INSPECT_KEY_PRESENT);
	off = r.model_off;
	tl = r.model_tok_len;

	assert_int_equal(ATTEMPT(cfg, server, r.model, (int64_t)off, (int64_t)tl, (int64_t)len,
	                         &a), 0);
	assert_null(a.error);
	assert_string_equal(a.cred->server, server);
	assert_int_equal(a.rewrite, 1);
	assert_int_equal(a.model_new_len, strlen(token));
	assert_memory_equal(a.model_new, token, a.model_new_len);
	assert_int_equal(a.clen_new, (int64_t)len - (int64_t)tl + (int64_t)strlen(token));

	nlen = len - tl + a.model_new_len;
	nb = malloc(nlen + 1);
	assert_non_null(nb);
	memcpy(nb, body, off);
	memcpy(nb + off, a.model_new, a.model_new_len);
	memcpy(nb + off + a.model_new_len, body + off + tl, len - off - tl);
	nb[nlen] = '\0';
	assert_int_equal((int64_t)nlen, a.clen_new);

	assert_int_equal(inspect_body(nb, nlen, nlen, &r2), INSPECT_OK);
	assert_int_equal(r2.complete, 1);
	assert_int_equal(r2.model_state, INSPECT_KEY_PRESENT);
	assert_int_equal(r2.model_len, strlen(upstream));
	assert_string_equal(r2.model, upstream);
	assert_int_equal(r2.model_off, off);
	assert_int_equal(r2.model_tok_len, a.model_new_len);
	/* Nothing else moved: same prefix, same suffix, same metadata. */
	assert_memory_equal(nb, body, off);
	assert_memory_equal(nb + off + a.model_new_len, body + off + tl, len - off - tl);
	assert_int_equal(r2.stream_state, r.stream_state);
	assert_int_equal(r2.stream, r.stream);
	assert_int_equal(r2.user_id_len, r.user_id_len);
	assert_memory_equal(r2.user_id, r.user_id, r.user_id_len);
	free(nb);

	/* Chunked: the same token, no Content-Length. */
	assert_int_equal(ATTEMPT(cfg, server, r.model, (int64_t)off, (int64_t)tl, -1, &a), 0);
	assert_int_equal(a.rewrite, 1);
	assert_int_equal(a.clen_new, -1);
	assert_memory_equal(a.model_new, token, strlen(token));
}

static void test_attempt_rewrite_fixture(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(REWRITE_CFG);
	size_t len;
	char *body = read_fixture("messages-1.json", &len);
	struct attempt a;

	check_splice(cfg, body, len, "long--k", "claude-sonnet-4-5-20250929",
	             "\"claude-sonnet-4-5-20250929\"");
	check_splice(cfg, body, len, "short--k", "sonnet", "\"sonnet\"");
	check_splice(cfg, body, len, "equal--k", "claude-sonnet-4-6", "\"claude-sonnet-4-6\"");
	check_splice(cfg, body, len, "esc--k", "we\"ird\\name/\xc3\xa9",
	             "\"we\\\"ird\\\\name/\xc3\xa9\"");
	assert_int_equal(ATTEMPT(cfg, "equal--k", "claude-sonnet-4-5", 9, 19, (int64_t)len, &a), 0);
	assert_int_equal(a.clen_new, (int64_t)len);
	assert_string_equal(a.backend, "up_equal");
	free(body);
	config_unref(cfg);
}

static void test_attempt_rewrite_small_bodies(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(REWRITE_CFG);
	/* The model last, escaped in the body, with spaces around it. */
	static const char *const bodies[] = {
		"{\"model\":\"claude-sonnet-4-5\"}",
		"{ \"max_tokens\" : 1 , \"model\" : \"claude-sonnet-4-5\" }\n",
		"{\"messages\":[{\"model\":\"x\"}],\"model\":\"claude\\u002dsonnet-4-5\",\"stream\":false}",
		"{\"model\":\"claude-sonnet-4\\u002d5\",\"metadata\":{\"user_id\":\"u\"}}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		check_splice(cfg, bodies[i], strlen(bodies[i]), "long--k",
		             "claude-sonnet-4-5-20250929", "\"claude-sonnet-4-5-20250929\"");
		check_splice(cfg, bodies[i], strlen(bodies[i]), "short--k", "sonnet", "\"sonnet\"");
		check_splice(cfg, bodies[i], strlen(bodies[i]), "esc--k",
		             "we\"ird\\name/\xc3\xa9", "\"we\\\"ird\\\\name/\xc3\xa9\"");
	}
	config_unref(cfg);
}

/* A token restricted to some models: the others are 403 (not 404: they
 * exist), and /v1/models lists only its own. */
static void test_decide_token_models(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict_in in = msg_in("{\"model\":\"m-b\"}");
	struct tok_info t = tok_of("default");
	struct verdict v;
	char out[4096];

	snprintf(t.models, sizeof(t.models), "m-a,claude@x/y+z[1]");
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 403, "permission_error",
	               "model m-b is not enabled for this API token (ask for it to be added "
	               "to the token's models)");
	in = msg_in("{\"model\":\"m-a\"}");
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	/* An unknown model is still 404 for such a token. */
	in = msg_in("{\"model\":\"nope\"}");
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 404, "not_found_error", "model: nope");
	/* Names compare whole: "m-" is not "m-a". */
	assert_false(verdict_token_allows("m-a,m-b", "m-", 2));
	assert_true(verdict_token_allows("m-a,m-b", "m-b", 3));
	assert_true(verdict_token_allows("", "x", 1));
	assert_true(verdict_token_allows(NULL, "x", 1));
	assert_true(verdict_models_body(cfg, 0, t.models, out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "\"id\":\"m-a\""));
	assert_null(strstr(out, "\"id\":\"m-b\""));
	config_unref(cfg);
}

/* Keys a case- or Unicode-folding provider would read as another
 * spelling of a key the agent reads are refused, and so are too many. */
static void test_decide_odd_keys(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	static const char *const odd[] = {
		"{\"model\":\"m-a\",\"Model\":\"m-b\"}",
		"{\"model\":\"m-a\",\"MODEL\":\"m-b\"}",
		"{\"model\":\"m-a\",\"max_to\\u212aens\":99999}",
		"{\"model\":\"m-a\",\"\xc5\xbftream\":true}",
		"{\"model\":\"m-a\",\"mod\\u0065l2\":1}",
		"{\"model\":\"m-a\",\"a-b\":1}",
		"{\"model\":\"m-a\",\"\":1}",
	};
	struct verdict v;
	char big[4096];
	size_t o = 0;

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		decide_body(cfg, odd[i], "default", &v);
		assert_refused(&v, 400, "invalid_request_error",
		               "request body has a top-level key that is not a plain lowercase "
		               "name (a-z 0-9 _, no escape)");
	}
	o += (size_t)snprintf(big + o, sizeof(big) - o, "{\"model\":\"m-a\"");
	for (int i = 0; i < 64; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, ",\"k%d\":0", i);
	snprintf(big + o, sizeof(big) - o, "}");
	decide_body(cfg, big, "default", &v);
	assert_refused(&v, 400, "invalid_request_error",
	               "request body has more than 64 top-level keys");
	/* 64 keys pass. */
	strcpy(strstr(big, ",\"k63\":0"), "}");
	decide_body(cfg, big, "default", &v);
	assert_allowed(&v);
	config_unref(cfg);
}

/* ---- anthropic-beta and the body limit ------------------------------- */

static void test_beta_filter(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "", "" },
		{ "claude-code-20250219,interleaved-thinking-2025-05-14",
		  "claude-code-20250219,interleaved-thinking-2025-05-14" },
		/* The value that turns the injected key into an OAuth token. */
		{ "claude-code-20250219,oauth-2025-04-20", "claude-code-20250219" },
		{ "OAuth-2025-04-20", "" },
		{ " a , ,b,a,  c ", "a,b,c" },
		{ "a b,c\td,e\"f,g", "g" },
		{ "oauth-x,,,", "" },
	};
	char out[VERDICT_BETA_MAX * (VERDICT_BETA_NAME_MAX + 1)], big[8192];
	size_t o = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = verdict_beta(S(cases[i].in), out, sizeof(out));

		assert_string_equal(out, cases[i].out);
		assert_int_equal(n, strlen(cases[i].out));
	}
	/* At most VERDICT_BETA_MAX values; a value longer than the name
	 * limit is dropped. */
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%sb%d", i ? "," : "", i);
	verdict_beta((struct vslice){ big, o }, out, sizeof(out));
	assert_int_equal(strlen(out), strlen("b0,b1,b2,b3,b4,b5,b6,b7,b8,b9") + 22 * 4);
	memset(big, 'x', 65);
	verdict_beta((struct vslice){ big, 65 }, out, sizeof(out));
	assert_string_equal(out, "");
	/* A tiny buffer: whole values only. */
	verdict_beta(S("abc,de"), out, 6);
	assert_string_equal(out, "abc");
}

static void test_decide_beta_and_body_limit(void **state)
{
	struct realms_config *cfg = cfg_sq_parse(MAIN_CFG);
	struct verdict_in in = msg_in("{\"model\":\"m-a\"}");
	struct tok_info t = tok_of("default");
	struct verdict v;

	in.beta = S("claude-code-20250219,oauth-2025-04-20");
	in.beta_count = 1;
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	assert_string_equal(v.beta, "claude-code-20250219");
	/* Two anthropic-beta headers: one list, please. */
	in.beta_count = 2;
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 400, "invalid_request_error",
	               "anthropic-beta: send it once, as a comma-separated list");
	in.beta_count = 0;
	in.beta = S("");
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	assert_string_equal(v.beta, "");

	/* A body larger than agent.max_body, by its Content-Length. */
	in.max_body = 100;
	in.body_size = 101;
	in.body_size_known = 1;
	decide(cfg, &in, &t, 1, &v);
	assert_refused(&v, 413, "request_too_large",
	               "request body is 101 bytes; this gateway accepts at most 100");
	in.body_size = 100;
	in.body_len = 15;
	decide(cfg, &in, &t, 1, &v);
	assert_allowed(&v);
	assert_false(v.insp.complete);     /* only a prefix was read: the guard scans */
	in.body_size = 15;
	decide(cfg, &in, &t, 1, &v);
	assert_true(v.insp.complete);      /* read whole: no scan needed */
	config_unref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_allowed),
		cmocka_unit_test(test_route_wrong_method),
		cmocka_unit_test(test_route_long_method_cut),
		cmocka_unit_test(test_route_not_found),
		cmocka_unit_test(test_route_long_path_cut),
		cmocka_unit_test(test_token_bearer),
		cmocka_unit_test(test_token_apikey),
		cmocka_unit_test(test_token_bearer_preferred),
		cmocka_unit_test(test_token_other_scheme),
		cmocka_unit_test(test_token_empty_bearer),
		cmocka_unit_test(test_token_none),
		cmocka_unit_test(test_decide_token_unknown_revoked),
		cmocka_unit_test(test_decide_token_expired),
		cmocka_unit_test(test_decide_unknown_group),
		cmocka_unit_test(test_decide_models_and_hello_skip_body),
		cmocka_unit_test(test_decide_content_type),
		cmocka_unit_test(test_decide_body_shape),
		cmocka_unit_test(test_decide_model_missing),
		cmocka_unit_test(test_decide_chunked_is_truncated),
		cmocka_unit_test(test_decide_model_wrong_type),
		cmocka_unit_test(test_decide_big_body_routed),
		cmocka_unit_test(test_decide_unknown_and_disabled_model),
		cmocka_unit_test(test_decide_no_enabled_binding),
		cmocka_unit_test(test_decide_group_permission),
		cmocka_unit_test(test_decide_all_cooling),
		cmocka_unit_test(test_decide_allowed_fields),
		cmocka_unit_test(test_decide_session_sources),
		cmocka_unit_test(test_decide_fixture),
		cmocka_unit_test(test_decide_sticky),
		cmocka_unit_test(test_decide_priority_tiers),
		cmocka_unit_test(test_decide_weights),
		cmocka_unit_test(test_decide_passthrough),
		cmocka_unit_test(test_store_down),
		cmocka_unit_test(test_error_body),
		cmocka_unit_test(test_models_body),
		cmocka_unit_test(test_session_from_user_id),
		cmocka_unit_test(test_decide_token_models),
		cmocka_unit_test(test_decide_odd_keys),
		cmocka_unit_test(test_beta_filter),
		cmocka_unit_test(test_decide_beta_and_body_limit),
		cmocka_unit_test(test_attempt_errors),
		cmocka_unit_test(test_attempt_no_rewrite),
		cmocka_unit_test(test_attempt_retries),
		cmocka_unit_test(test_attempt_session_second_choice),
		cmocka_unit_test(test_attempt_rewrite_fixture),
		cmocka_unit_test(test_attempt_rewrite_small_bodies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

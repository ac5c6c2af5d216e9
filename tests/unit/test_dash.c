/*
 * The dashboard's pure parts: request heads (the request line, the
 * Authorization header given once, twice, in any case, without Bearer),
 * query parameters (absent, empty, given twice), the credential check,
 * and JSON strings that can never read as markup. Every head is also cut
 * at every byte and fed as an exact-size heap copy, so ASan sees any read
 * past its end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/dash.h>

static int parse_copy(const char *req, size_t len, struct dash_http *h)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, req, len);
	rc = dash_http_parse(copy, len, h);
	free(copy);
	return rc;
}

static void test_request_line(void **state)
{
	struct dash_http h;
	const char *r = "GET /api/admin/usage?since=2026-12-01 HTTP/1.1\r\nHost: x\r\n\r\n";

	assert_int_equal(dash_http_parse(r, strlen(r), &h), 0);
	assert_true(h.is_get);
	assert_int_equal(h.path_len, strlen("/api/admin/usage"));
	assert_memory_equal(h.path, "/api/admin/usage", h.path_len);
	assert_int_equal(h.query_len, strlen("since=2026-12-01"));
	assert_null(h.bearer);
	assert_int_equal(h.auth_count, 0);

	r = "POST /dashboard HTTP/1.1\r\n\r\n";
	assert_int_equal(dash_http_parse(r, strlen(r), &h), 0);
	assert_false(h.is_get);
	assert_null(h.query);

	/* Not HTTP/1.x, no path, no line end. */
	assert_int_equal(dash_http_parse("GET /x HTTP/2\r\n\r\n", 17, &h), -1);
	assert_int_equal(dash_http_parse("GET x HTTP/1.1\r\n\r\n", 18, &h), -1);
	assert_int_equal(dash_http_parse("GET /x HTTP/1.1", 15, &h), -1);
	assert_int_equal(dash_http_parse("", 0, &h), -1);

	/* Cut anywhere: never a read past the end (ASan), no crash. */
	for (size_t i = 0; i <= strlen(r); i++)
		(void)parse_copy(r, i, &h);
}

static void test_authorization(void **state)
{
	struct dash_http h;
	const char *r = "GET /api/admin/events HTTP/1.1\r\nHost: x\r\n"
	                "authorization:   bearer  s3cret \r\nAccept: */*\r\n\r\n";

	assert_int_equal(parse_copy(r, strlen(r), &h), 0);
	assert_int_equal(h.auth_count, 1);
	assert_non_null(h.bearer);
	assert_int_equal(h.bearer_len, 6);
	assert_memory_equal(h.bearer, "s3cret", 6);

	/* Another scheme: no bearer. */
	r = "GET /api/admin/events HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n";
	assert_int_equal(parse_copy(r, strlen(r), &h), 0);
	assert_int_equal(h.auth_count, 1);
	assert_null(h.bearer);

	/* Twice: counted, so that dash refuses it. */
	r = "GET /api/admin/events HTTP/1.1\nAuthorization: Bearer a\nAuthorization: Bearer b\n\n";
	assert_int_equal(parse_copy(r, strlen(r), &h), 0);
	assert_int_equal(h.auth_count, 2);

	/* A header after the empty line is a body, not a header. */
	r = "GET /api/admin/events HTTP/1.1\r\n\r\nAuthorization: Bearer a\r\n";
	assert_int_equal(parse_copy(r, strlen(r), &h), 0);
	assert_int_equal(h.auth_count, 0);

	/* "Bearer" alone, and a header whose name only starts alike. */
	r = "GET / HTTP/1.1\r\nAuthorization: Bearer\r\nAuthorization-X: Bearer a\r\n\r\n";
	assert_int_equal(parse_copy(r, strlen(r), &h), 0);
	assert_int_equal(h.auth_count, 1);
	assert_null(h.bearer);

	for (size_t i = 0; i <= strlen(r); i++)
		(void)parse_copy(r, i, &h);
}

static void test_paths(void **state)
{
	assert_true(dash_path_is_ours("/dashboard", 10));
	assert_true(dash_path_is_ours("/dashboard/", 11));
	assert_true(dash_path_is_ours("/dashboard/dash.js", 18));
	assert_true(dash_path_is_ours("/api/admin/usage", 16));
	assert_true(dash_path_is_ours("/api/admin", 10));
	assert_false(dash_path_is_ours("/dashboards", 11));
	assert_false(dash_path_is_ours("/api/administrator", 18));
	assert_false(dash_path_is_ours("/metrics", 8));
	assert_false(dash_path_is_ours("/", 1));
}

static void test_query(void **state)
{
	const char *q = "since=2026-12-01&until=&x&count=5";
	const char *v;
	size_t n;

	assert_int_equal(dash_query_param(q, strlen(q), "since", &v, &n), 1);
	assert_int_equal(n, 10);
	assert_memory_equal(v, "2026-12-01", 10);
	assert_int_equal(dash_query_param(q, strlen(q), "until", &v, &n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(dash_query_param(q, strlen(q), "x", &v, &n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(dash_query_param(q, strlen(q), "coun", &v, &n), 0);
	assert_int_equal(dash_query_param(NULL, 0, "since", &v, &n), 0);
	q = "count=1&count=2";
	assert_int_equal(dash_query_param(q, strlen(q), "count", &v, &n), -1);
}

static void test_token(void **state)
{
	const char *want = "0123456789abcdef0123456789abcdef";

	assert_true(dash_token_ok(want, 32, want, 32));
	assert_false(dash_token_ok(want, 31, want, 32));
	assert_false(dash_token_ok("0123456789abcdef0123456789abcdeF", 32, want, 32));
	assert_false(dash_token_ok("", 0, want, 32));
	assert_false(dash_token_ok(NULL, 0, want, 32));
	assert_false(dash_token_ok(want, 32, NULL, 0));
}

static void test_json_str(void **state)
{
	char out[64];
	size_t off = 0;
	const char *s = "a\"b\\<script>&\x01\x7f" "\xc3\xa9";

	assert_int_equal(dash_json_str(out, sizeof(out), &off, s, strlen(s)), 0);
	out[off] = '\0';
	assert_string_equal(out, "\"a\\\"b\\\\\\u003cscript\\u003e\\u0026\\u0001\\u007f\xc3\xa9\"");
	/* Too small: -1, the offset untouched. */
	off = 3;
	assert_int_equal(dash_json_str(out, 8, &off, s, strlen(s)), -1);
	assert_int_equal(off, 3);
	off = 0;
	assert_int_equal(dash_json_str(out, 2, &off, "", 0), 0);
	assert_int_equal(off, 2);
	off = 0;
	assert_int_equal(dash_json_str(out, 1, &off, "", 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_line),
		cmocka_unit_test(test_authorization),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_json_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

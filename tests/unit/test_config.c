/*
 * Configuration: parsing, validation messages (path and line), secrets,
 * base URLs, prices, lookups, reference counting.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <realms/budget.h>
#include <realms/config.h>
#include <realms/limits.h>
#include <realms/prices.h>

/* CMake points FIXTURES_DIR at the Claude Code captures; ours are next to
 * them. Built by hand from the source root, the relative path works. */
#ifdef FIXTURES_DIR
#define CFG_FIXTURES FIXTURES_DIR "/../config"
#else
#define CFG_FIXTURES "tests/fixtures/config"
#endif

#define ENV_SECRET "sk-ant-test-env-7f3a9c"

static struct cfg_diag D;

/* ---- helpers -------------------------------------------------------- */

static char *diag_text(const struct cfg_diag *d)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	assert_non_null(f);
	cfg_diag_print(d, f);
	fclose(f);
	return buf;
}

static void dump(void)
{
	cfg_diag_print(&D, stderr);
}

static struct realms_config *parse(const char *json)
{
	cfg_diag_free(&D);
	cfg_diag_init(&D);
	return config_parse(json, strlen(json), "t.json", &D);
}

/* config_load(path) into a fresh D. */
static struct realms_config *load_path(const char *path)
{
	cfg_diag_free(&D);
	cfg_diag_init(&D);
	return config_load(path, &D);
}

/* Loads a fixture from a private copy, mode 0600: the checkout's umask must
 * not decide whether the "readable by other users" warning shows. */
static struct realms_config *load(const char *name)
{
	char src[512], dir[] = "/tmp/realms-test-fx-XXXXXX", path[512];
	struct realms_config *c;
	char buf[65536];
	size_t n;
	FILE *in, *out;

	snprintf(src, sizeof(src), "%s/%s", CFG_FIXTURES, name);
	in = fopen(src, "rb");
	assert_non_null(in);
	n = fread(buf, 1, sizeof(buf), in);
	assert_true(feof(in));
	fclose(in);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = fopen(path, "wb");
	assert_non_null(out);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(out);
	c = load_path(path);
	unlink(path);
	rmdir(dir);
	return c;
}

/* The first problem of that severity and path whose message holds sub. */
static const struct cfg_problem *find(enum cfg_severity sev, const char *path, const char *sub)
{
	for (size_t i = 0; i < D.n; i++) {
		const struct cfg_problem *p = &D.items[i];

		if (p->severity == sev && (!path || strcmp(p->path, path) == 0) &&
		    strstr(p->msg, sub))
			return p;
	}
	return NULL;
}

static void expect_at(enum cfg_severity sev, const char *path, unsigned line, const char *sub)
{
	const struct cfg_problem *p = find(sev, path, sub);

	if (!p) {
		fprintf(stderr, "missing %s at %s line %u containing \"%s\"; got:\n",
		        sev == CFG_ERROR ? "error" : "warning", path ? path : "*", line, sub);
		dump();
		fail();
	}
	if (line && p->line != line) {
		fprintf(stderr, "%s: \"%s\" on line %u, expected %u\n", path, sub, p->line, line);
		fail();
	}
}

static void expect_error(const char *path, unsigned line, const char *sub)
{
	expect_at(CFG_ERROR, path, line, sub);
}

/* A one-channel config whose channel object ends with `extra`. */
static struct realms_config *parse_channel(const char *extra)
{
	char json[4096];

	snprintf(json, sizeof(json),
	         "{\n"
	         "\"models\": [\"claude-sonnet-4-5\"],\n"
	         "\"channels\": [\n"
	         "{\"name\": \"a\", \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"}],\n"
	         " \"models\": [\"claude-sonnet-4-5\"]%s}\n"
	         "]}\n", extra);
	return parse(json);
}

static struct realms_config *parse_url(const char *url)
{
	char extra[512];

	snprintf(extra, sizeof(extra), ",\n \"base_url\": \"%s\"", url);
	return parse_channel(extra);
}

static char *write_temp(const char *content)
{
	char *path = strdup("/tmp/realms-test-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

static int setup(void **state)
{
	cfg_diag_init(&D);
	setenv("ANTHROPIC_API_KEY", ENV_SECRET, 1);
	return 0;
}

static int teardown(void **state)
{
	cfg_diag_free(&D);
	return 0;
}

/* ---- loading the documented examples -------------------------------- */

static void test_full_example(void **state)
{
	struct realms_config *c = load("full.json");
	const struct cfg_model *sonnet, *haiku;
	const struct cfg_channel *ch;

	if (!c)
		dump();
	assert_non_null(c);
	assert_int_equal(D.errors, 0);
	assert_int_equal(D.warnings, 0);

	assert_string_equal(c->redis.address, "127.0.0.1:6379");
	assert_int_equal(c->redis.addr.port, 6379);
	assert_int_equal(c->agent.n_listen, 2);
	assert_string_equal(c->agent.listen[0], "127.0.0.1:12345");
	assert_int_equal(c->agent.listen_addr[0].port, 12345);
	assert_string_equal(c->agent.listen[1], "unix:/run/realms/spop.sock");
	assert_int_equal(c->agent.listen_addr[1].family, AF_UNIX);
	assert_string_equal(c->agent.mirror, "127.0.0.1:12346");
	assert_string_equal(c->agent.admin, "127.0.0.1:9180");
	assert_int_equal(c->agent.admin_addr.port, 9180);
	assert_int_equal(c->agent.threads, 2);
	assert_int_equal(c->agent.body_prefix, 65536);
	assert_false(c->agent.allow_unknown_models);

	assert_int_equal(c->n_groups, 1);
	assert_string_equal(c->groups[0], "default");

	assert_int_equal(c->n_models, 2);
	sonnet = &c->models[0];
	haiku = &c->models[1];
	assert_string_equal(sonnet->name, "claude-sonnet-4-5");
	assert_int_equal(sonnet->line, 13);
	assert_true(sonnet->enabled);
	assert_true(sonnet->has_price);
	assert_false(sonnet->price_from_config);
	assert_true(sonnet->price.base.input == 3.0);
	assert_true(sonnet->price.long_ctx.output == 22.5);
	assert_int_equal(sonnet->price.long_threshold, 200000);
	assert_true(haiku->price_from_config);
	assert_true(haiku->price.base.output == 5.0);
	assert_true(haiku->price.base.cache_read == 0.1);
	assert_int_equal(haiku->price.long_threshold, 0);
	assert_true(haiku->price.web_search_per_1k == 10.0);
	assert_ptr_equal(config_model(c, "claude-haiku-4-5", 16), haiku);

	assert_int_equal(c->n_channels, 1);
	ch = &c->channels[0];
	assert_string_equal(ch->name, "anthropic");
	assert_string_equal(ch->base_url, "https://api.anthropic.com");
	assert_string_equal(ch->scheme, "https");
	assert_string_equal(ch->host, "api.anthropic.com");
	assert_string_equal(ch->authority, "api.anthropic.com");
	assert_int_equal(ch->port, 443);
	assert_true(ch->tls);
	assert_false(ch->ipv6);
	assert_int_equal(ch->priority, 0);
	assert_int_equal(ch->weight, 1);
	assert_true(ch->enabled);
	assert_int_equal(ch->n_groups, 1);
	assert_int_equal(ch->groups[0], 0);
	assert_true(cfg_channel_in_group(ch, 0));
	assert_false(cfg_channel_in_group(ch, -1));

	assert_int_equal(ch->n_creds, 1);
	assert_string_equal(ch->creds[0].name, "k1");
	assert_string_equal(ch->creds[0].key, ENV_SECRET);
	assert_int_equal(ch->creds[0].key_len, strlen(ENV_SECRET));
	assert_string_equal(ch->creds[0].server, "anthropic--k1");
	assert_int_equal(ch->creds[0].id, 0);
	assert_ptr_equal(ch->creds[0].channel, ch);
	assert_int_equal(c->n_creds, 1);
	assert_ptr_equal(c->creds[0], &ch->creds[0]);

	assert_int_equal(ch->n_bindings, 2);
	assert_string_equal(ch->bindings[0].model, "claude-haiku-4-5");
	assert_false(ch->bindings[0].rewrite);
	assert_string_equal(ch->bindings[1].model, "claude-sonnet-4-5");
	assert_string_equal(ch->bindings[1].upstream, "claude-sonnet-4-5-20250929");
	assert_true(ch->bindings[1].rewrite);
	assert_ptr_equal(ch->bindings[1].m, sonnet);
	assert_false(ch->has_wildcard);
	assert_null(ch->wildcard);
	assert_ptr_equal(cfg_channel_binding(ch, "claude-sonnet-4-5", 17), &ch->bindings[1]);
	assert_null(cfg_channel_binding(ch, "claude-opus-4-5", 15));

	assert_int_equal(sonnet->n_routes, 1);
	assert_ptr_equal(sonnet->routes[0].channel, ch);
	assert_ptr_equal(sonnet->routes[0].binding, &ch->bindings[1]);
	assert_int_equal(c->n_wildcard, 0);
	config_unref(c);
}

static void test_minimal_defaults(void **state)
{
	struct realms_config *c = load("minimal.json");
	const struct cfg_channel *ch;

	assert_non_null(c);
	assert_int_equal(D.warnings, 0);
	assert_string_equal(c->redis.address, "127.0.0.1:6379");
	assert_int_equal(c->agent.n_listen, 0);
	assert_null(c->agent.mirror);
	assert_null(c->agent.admin);
	assert_int_equal(c->agent.threads, 1);
	assert_int_equal(c->agent.body_prefix, CFG_BODY_PREFIX_DEFAULT);
	assert_int_equal(c->agent.record_wait_ms, 0);   /* as documented */
	assert_int_equal(c->failover.attempts, CFG_ATTEMPTS_DEFAULT);
	assert_int_equal(c->failover.failures, CFG_FAILURES_DEFAULT);
	assert_int_equal(c->failover.cooldown_s, CFG_COOLDOWN_DEFAULT_S);
	assert_int_equal(c->failover.timeout_s, CFG_TIMEOUT_DEFAULT_S);
	assert_int_equal(c->failover.max_body, CFG_RETRY_BODY_DEFAULT);
	assert_int_equal(c->failover.avoid_s, CFG_AVOID_DEFAULT_S);
	assert_int_equal(c->n_groups, 1);
	assert_string_equal(c->groups[0], "default");
	ch = &c->channels[0];
	assert_int_equal(ch->n_groups, 1);
	assert_true(cfg_channel_in_group(ch, config_group_index(c, "default", 7)));
	assert_int_equal(ch->priority, 0);
	assert_int_equal(ch->weight, 1);
	assert_true(ch->enabled);
	assert_true(ch->creds[0].enabled);
	assert_string_equal(ch->bindings[0].upstream, "claude-sonnet-4-5");
	assert_false(ch->bindings[0].rewrite);
	config_unref(c);
}

static void test_team_example(void **state)
{
	struct realms_config *c = load("team.json");
	const struct cfg_channel *primary, *backup, *pass;
	const struct cfg_model *sonnet, *house;
	const struct cfg_binding *b;
	const struct cfg_cred *cr;
	int research;

	if (!c)
		dump();
	assert_non_null(c);
	assert_int_equal(D.errors, 0);
	/* the disabled model bound by "passthrough" */
	expect_at(CFG_WARNING, "channels[2].models.claude-3-5-haiku", 34, "is disabled");
	assert_int_equal(D.warnings, 1);

	assert_int_equal(c->redis.addr.family, AF_UNIX);
	assert_int_equal(c->agent.n_listen, 1);
	assert_int_equal(c->agent.threads, 4);
	assert_true(c->agent.allow_unknown_models);

	research = config_group_index(c, "research", 8);
	assert_int_equal(research, 1);
	assert_int_equal(config_group_index(c, "default", 7), 0);
	assert_int_equal(config_group_index(c, "defaul", 6), -1);

	primary = config_channel(c, "primary", 7);
	backup = config_channel(c, "backup", 6);
	pass = config_channel(c, "passthrough", 11);
	assert_non_null(primary);
	assert_non_null(backup);
	assert_non_null(pass);
	assert_null(config_channel(c, "nope", 4));
	assert_int_equal(primary->priority, 10);
	assert_int_equal(primary->weight, 3);
	assert_true(cfg_channel_in_group(primary, 0) && cfg_channel_in_group(primary, research));
	assert_false(cfg_channel_in_group(backup, 0));
	assert_true(cfg_channel_in_group(backup, research));

	assert_string_equal(backup->host, "::1");
	assert_true(backup->ipv6);
	assert_false(backup->tls);
	assert_int_equal(backup->port, 8443);
	assert_string_equal(backup->authority, "[::1]:8443");
	assert_string_equal(backup->base_url, "http://[::1]:8443");
	assert_string_equal(pass->host, "gateway.example.com");
	assert_string_equal(pass->authority, "gateway.example.com:444");
	assert_int_equal(pass->weight, 0);

	/* Wildcard: exact first, then "*" for anything else. */
	assert_true(pass->has_wildcard);
	assert_int_equal(c->n_wildcard, 1);
	assert_ptr_equal(c->wildcard[0], pass);
	b = cfg_channel_binding(pass, "claude-3-5-haiku", 16);
	assert_non_null(b);
	assert_string_equal(b->upstream, "claude-3-5-haiku-20241022");
	b = cfg_channel_binding(pass, "some-new-model", 14);
	assert_ptr_equal(b, pass->wildcard);
	assert_null(b->upstream);
	assert_null(b->m);
	assert_string_equal(b->model, "*");
	assert_null(cfg_channel_binding(primary, "some-new-model", 14));

	/* Routes: every channel that can serve the model, in file order. */
	sonnet = config_model(c, "claude-sonnet-4-5", 17);
	assert_int_equal(sonnet->n_routes, 3);
	assert_ptr_equal(sonnet->routes[0].channel, primary);
	assert_ptr_equal(sonnet->routes[1].channel, backup);
	assert_string_equal(sonnet->routes[1].binding->upstream, "claude-sonnet-4-5@20250929");
	assert_ptr_equal(sonnet->routes[2].channel, pass);
	assert_ptr_equal(sonnet->routes[2].binding, pass->wildcard);

	/* A price from the file: cache prices derived from input. */
	house = config_model(c, "house-model", 11);
	assert_true(house->price_from_config);
	assert_true(house->price.base.cache_write_5m == 2.5);
	assert_true(house->price.base.cache_write_1h == 4.0);
	assert_int_equal(price_nusd_per_mtok(house->price.base.cache_read), 200000000);
	assert_int_equal(house->price.long_threshold, 100000);
	assert_true(house->price.long_ctx.input == 4.0);
	assert_int_equal(price_nusd_per_mtok(house->price.long_ctx.cache_read), 400000000);
	assert_true(house->price.web_search_per_1k == 0.0);
	assert_ptr_equal(price_rates_for(&house->price, 100001), &house->price.long_ctx);
	assert_ptr_equal(price_rates_for(&house->price, 100000), &house->price.base);

	/* Dense credential ids in file order; server names. */
	assert_int_equal(c->n_creds, 4);
	for (size_t i = 0; i < c->n_creds; i++)
		assert_int_equal(c->creds[i]->id, (int)i);
	cr = config_cred_by_server(c, "backup--k", 9);
	assert_non_null(cr);
	assert_int_equal(cr->id, 2);
	assert_ptr_equal(cr->channel, backup);
	cr = config_cred_by_server(c, "primary--team-b", 15);
	assert_non_null(cr);
	assert_false(cr->enabled);
	assert_null(config_cred_by_server(c, "backup--x", 9));
	assert_null(config_cred_by_server(c, "backup--k2", 10));
	assert_null(config_cred_by_server(c, "backup--", 8));
	config_unref(c);
}

/* ---- JSON syntax ------------------------------------------------------ */

static void test_invalid_json_file(void **state)
{
	assert_null(load("invalid-json.json"));
	assert_int_equal(D.errors, 1);
	expect_error("", 5, "trailing comma");
}

static void test_invalid_json_cases(void **state)
{
	static const struct { const char *json; unsigned line; const char *msg; } cases[] = {
		{ "{\n\"a\": 1 2\n}", 2, "expected ',' or '}'" },
		{ "{\n\"a\": [1\n", 3, "'[' on line 2 is not closed" },
		{ "{\"a\": tru}", 1, "invalid literal" },
		{ "{\"a\": 'x'}", 1, "unexpected character" },
		{ "{\n\n\"a\": 01}", 3, "invalid number" },
		{ "{\"a\": 1.}", 1, "invalid number" },
		{ "{\"a\": -}", 1, "invalid number" },
		{ "{\"a\": \"x\ny\"}", 1, "control character" },
		{ "{} {}", 1, "unexpected data after" },
		{ "", 1, "unexpected end of file" },
		{ "  \n ", 2, "unexpected end of file" },
		{ "\n[1]", 2, "must be a JSON object" },
		{ "\"x\"", 1, "must be a JSON object" },
		{ "{\"a\": \"\\x\"}", 1, "invalid escape" },
		{ "{\"a\": \"\\u12\"}", 1, "invalid \\u escape" },
		{ "{\"a\": \"\\ud800\"}", 1, "surrogate" },
		{ "{\"a\": \"\\udc00\"}", 1, "surrogate" },
		{ "{\"a\": \"\xff\"}", 1, "invalid UTF-8" },
		{ "{\"a\": \"\xc0\x80\"}", 1, "invalid UTF-8" },
		{ "{\"a\": \"\xed\xa0\x80\"}", 1, "invalid UTF-8" },
		{ "{\n// comment\n}", 2, "comments are not JSON" },
		{ "{'a': 1}", 1, "expected a key in double quotes" },
		{ "{\"a\" 1}", 1, "expected ':'" },
		{ "{\"a\": [1,]}", 1, "trailing comma before ']'" },
		{ "{\"a\": \"abc", 1, "unterminated string" },
		{ "{\"a\": 1}\0", 1, "unexpected data after" },
	};
	char deep[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].json);

		if (i == sizeof(cases) / sizeof(cases[0]) - 1)
			len++;   /* the NUL byte is part of the input */
		cfg_diag_free(&D);
		cfg_diag_init(&D);
		if (config_parse(cases[i].json, len, "t.json", &D)) {
			fprintf(stderr, "case %zu parsed\n", i);
			fail();
		}
		assert_int_equal(D.errors, 1);
		expect_error("", cases[i].line, cases[i].msg);
	}

	memset(deep, '[', sizeof(deep));
	deep[0] = '{';
	memcpy(deep + 1, "\"a\":", 4);
	assert_null(config_parse(deep, sizeof(deep), "t.json", &D));
	expect_error("", 1, "nested too deeply");
}

/* Every proper prefix of a valid file is refused, without a crash. */
static void test_truncated_prefixes(void **state)
{
	char path[512], *buf;
	FILE *f;
	long n;
	size_t last;

	snprintf(path, sizeof(path), "%s/team.json", CFG_FIXTURES);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	last = (size_t)(strrchr(buf, '}') - buf);
	for (size_t len = 0; len <= last; len++) {
		struct cfg_diag d;
		/* exact-size copy so ASan sees any read past the end */
		char *cp = malloc(len ? len : 1);
		struct realms_config *c;

		memcpy(cp, buf, len);
		cfg_diag_init(&d);
		c = config_parse(cp, len, "t.json", &d);
		assert_null(c);
		assert_true(cfg_diag_errors(&d) >= 1);
		cfg_diag_free(&d);
		free(cp);
	}
	free(buf);
}

static void test_bom_and_comments(void **state)
{
	struct realms_config *c = parse("\xef\xbb\xbf{\"_note\": [1, {\"x\": 2}], "
	                                "\"agent\": {\"_why\": \"\"}, \"models\": "
	                                "[{\"name\": \"claude-haiku-4-5\", \"_n\": 1}]}");

	assert_non_null(c);
	assert_int_equal(D.errors, 0);
	config_unref(c);
}

/* ---- types, required keys, unknown keys ----------------------------- */

static void test_wrong_types(void **state)
{
	assert_null(parse(
		"{\n"
		"\"redis\": 6379,\n"
		"\"agent\": {\"threads\": \"2\", \"allow_unknown_models\": 1, \"listen\": [1]},\n"
		"\"groups\": \"default\",\n"
		"\"models\": [{\"name\": 5, \"enabled\": \"yes\"}, 7, {\"name\": \"m\", \"price\": 3}],\n"
		"\"channels\": {}\n"
		"}\n"));
	expect_error("redis", 2, "must be an address string or an object, not a number");
	expect_error("agent.threads", 3, "must be an integer, not a string");
	expect_error("agent.allow_unknown_models", 3, "must be true or false, not a number");
	expect_error("agent.listen[0]", 3, "must be a string");
	expect_error("groups", 4, "must be an array of group names or objects, not a string");
	expect_error("models[0].name", 5, "must be a string, not a number");
	expect_error("models[0].enabled", 5, "must be true or false, not a string");
	expect_error("models[1]", 5, "must be an object or a model name, not a number");
	expect_error("models[2].price", 5, "must be an object, not a number");
	expect_error("channels", 6, "must be an array, not an object");
}

/* The rest of a configuration whose failover section a test varies: one
 * model, one channel, on the last three lines (the errors a test expects
 * are numbered by the lines before it). */
#define ONE_CHANNEL \
	"\"models\": [\"m\"],\n" \
	"\"channels\": [{\"name\": \"a\", \"base_url\": \"https://a.example\",\n" \
	" \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"}], \"models\": [\"m\"]}]}\n"

static void test_failover_section(void **state)
{
	struct realms_config *c = parse(
		"{\n"
		"\"failover\": {\"attempts\": 5, \"failures\": 4, \"cooldown\": 60, \"timeout\": 120},\n"
		ONE_CHANNEL);

	assert_non_null(c);
	assert_int_equal(c->failover.attempts, 5);
	assert_int_equal(c->failover.failures, 4);
	assert_int_equal(c->failover.cooldown_s, 60);
	assert_int_equal(c->failover.timeout_s, 120);
	config_unref(c);

	assert_null(parse(
		"{\n"
		"\"agent\": {\"check\": \"unix:/run/realms/check.sock\"},\n"
		"\"failover\": {\"attempts\": 11, \"failures\": 0,\n"
		"  \"cooldown\": \"30s\", \"timeout\": 1.5, \"tries\": 2},\n"
		ONE_CHANNEL));
	expect_at(CFG_WARNING, "agent.check", 2, "no longer used");
	expect_error("failover.attempts", 3, "must be an integer from 1 to 10");
	expect_error("failover.failures", 3, "must be an integer from 1 to 1000");
	expect_error("failover.cooldown", 4, "must be an integer, not a string");
	expect_error("failover.timeout", 4, "must be an integer, not a fraction");
	expect_error("failover.tries", 4, "unknown key");

	c = parse(
		"{\n"
		"\"failover\": {\"max_body\": 131072, \"avoid\": 0},\n"
		ONE_CHANNEL);
	assert_non_null(c);
	assert_int_equal(c->failover.max_body, 131072);
	assert_int_equal(c->failover.avoid_s, 0);
	config_unref(c);

	assert_null(parse(
		"{\n"
		"\"failover\": {\"max_body\": 1048577, \"avoid\": -1},\n"
		ONE_CHANNEL));
	expect_error("failover.max_body", 2, "must be an integer from 0 to 1048576");
	expect_error("failover.avoid", 2, "must be an integer from 0 to 3600");
}

static void test_missing_required(void **state)
{
	assert_null(parse(
		"{\n"
		"\"models\": [{\"enabled\": true}],\n"
		"\"channels\": [\n"
		"  {\"weight\": 1},\n"
		"  {\"name\": \"b\", \"base_url\": \"https://x.example\",\n"
		"   \"credentials\": [{\"key\": \"sk-1\"}, {\"name\": \"k\"}]}\n"
		"]}\n"));
	expect_error("models[0]", 2, "missing required key \"name\"");
	expect_error("channels[0]", 4, "missing required key \"name\"");
	expect_error("channels[0]", 4, "missing required key \"base_url\"");
	expect_error("channels[0]", 4, "missing required key \"credentials\"");
	expect_error("channels[1].credentials[0]", 6, "missing required key \"name\"");
	expect_error("channels[1].credentials[1]", 6, "missing required key \"key\"");
}

static void test_unknown_keys(void **state)
{
	assert_null(parse(
		"{\n"
		"\"chanels\": [],\n"
		"\"agent\": {\"treads\": 2},\n"
		"\"models\": [{\"name\": \"m\", \"price\": {\"input\": 1, \"output\": 2, \"inptu\": 3}}],\n"
		"\"channels\": [{\"name\": \"a\", \"base_url\": \"https://x.example\", \"weigth\": 1,\n"
		"  \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\", \"secret\": 1}]}]\n"
		"}\n"));
	expect_error("chanels", 2, "unknown key (expected one of: redis, agent, groups, models, channels, failover, timezone)");
	expect_error("agent.treads", 3, "unknown key");
	expect_error("models[0].price.inptu", 4, "unknown key");
	expect_error("channels[0].weigth", 5, "unknown key");
	expect_error("channels[0].credentials[0].secret", 6, "unknown key");
	assert_int_equal(D.errors, 5);
}

static void test_duplicate_keys(void **state)
{
	assert_null(parse("{\n\"agent\": {\"threads\": 2,\n\"threads\": 3}\n}"));
	expect_error("agent.threads", 3, "duplicate key (first on line 2)");
}

/* ---- names and duplicates ------------------------------------------- */

static void test_duplicates(void **state)
{
	assert_null(parse(
		"{\n"
		"\"groups\": [\"default\", \"team\", \"default\"],\n"
		"\"models\": [\"m1\", {\"name\": \"m2\"},\n"
		"  {\"name\": \"m1\"}],\n"
		"\"channels\": [\n"
		"  {\"name\": \"a\", \"base_url\": \"https://x.example\",\n"
		"   \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"},\n"
		"                     {\"name\": \"k\", \"key\": \"sk-2\"}],\n"
		"   \"models\": {\"m1\": \"x\",\n"
		"              \"m\\u0031\": \"y\"}},\n"
		"  {\"name\": \"a\", \"base_url\": \"https://x.example\",\n"
		"   \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"}], \"models\": [\"m1\"]}\n"
		"]}\n"));
	expect_error("groups[2]", 2, "duplicate group \"default\" (first on line 2)");
	expect_error("models[2].name", 4, "duplicate model \"m1\" (first on line 3)");
	expect_error("channels[0].credentials[1].name", 8, "duplicate credential \"k\" in this "
	             "channel (first on line 7)");
	expect_error("channels[0].models.m1", 10, "model \"m1\" is bound twice (first on line 9)");
	expect_error("channels[1].name", 11, "duplicate channel \"a\" (first on line 6)");
	assert_int_equal(D.errors, 5);
}

static void test_names(void **state)
{
	char json[1024], long_name[CFG_NAME_MAX + 2];

	assert_null(parse(
		"{\n"
		"\"groups\": [\"default\", \"a b\"],\n"
		"\"models\": [\"claude sonnet\", \"*\", \"ok:no\", \"fine-1.0@x/y+[1m]\"],\n"
		"\"channels\": [\n"
		"  {\"name\": \"bad name\", \"base_url\": \"https://x.example\",\n"
		"   \"credentials\": [{\"name\": \"k/1\", \"key\": \"sk-1\"}]}\n"
		"]}\n"));
	expect_error("groups[1]", 2, "invalid group name");
	expect_error("models[0]", 3, "invalid model name");
	expect_error("models[1]", 3, "\"*\" is not a model name");
	expect_error("models[2]", 3, "invalid model name");
	expect_error("channels[0].name", 5, "invalid channel name: use 1 to 64 characters from "
	             "A-Z a-z 0-9 . _ -");
	expect_error("channels[0].credentials[0].name", 6, "invalid credential name");
	assert_int_equal(D.errors, 6);

	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"channels\": [{\"name\": \"%s\", \"base_url\": "
	         "\"https://x.example\", \"credentials\": [{\"name\": \"k\", \"key\": \"s\"}]}]}",
	         long_name);
	assert_null(parse(json));
	expect_error("channels[0].name", 1, "is longer than 64 bytes");

	/* Two different pairs giving the same HAProxy server name. */
	assert_null(parse(
		"{\"models\": [\"m\"], \"channels\": [\n"
		"{\"name\": \"a-\", \"base_url\": \"https://x.example\", \"models\": [\"m\"],\n"
		" \"credentials\": [{\"name\": \"b\", \"key\": \"sk-1\"}]},\n"
		"{\"name\": \"a\", \"base_url\": \"https://x.example\", \"models\": [\"m\"],\n"
		" \"credentials\": [{\"name\": \"-b\", \"key\": \"sk-1\"}]}\n"
		"]}"));
	expect_error("channels[1].credentials[0]", 5, "HAProxy server name \"a---b\"");
}

static void test_nul_in_string(void **state)
{
	assert_null(parse("{\"models\": [\"claude\\u0000x\"]}"));
	expect_error("models[0]", 1, "must not contain a NUL character");
}

/* ---- references ------------------------------------------------------ */

static void test_invalid_refs_file(void **state)
{
	assert_null(load("invalid-refs.json"));
	expect_error("models[1].name", 5, "duplicate model \"claude-sonnet-4-5\"");
	expect_error("channels[0].base_url", 8, "must not end with \"/v1\"");
	expect_error("channels[0].groups[1]", 9, "group \"staff\" is not declared in \"groups\"");
	expect_error("channels[0].credentials", 10, "the channel has no credential");
	expect_error("channels[0].models.claude-opus-4-5", 11,
	             "model \"claude-opus-4-5\" is not defined in \"models\"");
	expect_error("channels[1].name", 12, "duplicate channel \"a\"");
	expect_error("channels[1].base_url", 12, "scheme must be \"https\" or \"http\"");
	expect_error("channels[1].credentials[1].name", 13, "duplicate credential \"k\"");
	expect_error("channels[1].priority", 14, "must be an integer, not a fraction");
	expect_error("channels[1].weight", 14, "must be an integer from 0 to 256");
	expect_error("channels[1].treads", 14, "unknown key");
	assert_int_equal(D.errors, 11);
	/* Problems come out in file order. */
	for (size_t i = 1; i < D.n; i++)
		assert_true(D.items[i - 1].line <= D.items[i].line);
}

static void test_channel_groups(void **state)
{
	assert_null(parse(
		"{\"groups\": [\"team\"], \"models\": [\"m\"], \"channels\": [\n"
		"{\"name\": \"a\", \"base_url\": \"https://x.example\", \"models\": [\"m\"],\n"
		" \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"}]},\n"
		"{\"name\": \"b\", \"base_url\": \"https://x.example\", \"models\": [\"m\"],\n"
		" \"groups\": [], \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"}]},\n"
		"{\"name\": \"c\", \"base_url\": \"https://x.example\", \"models\": [\"m\"],\n"
		" \"groups\": [\"team\", \"team\"], \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"}]}\n"
		"]}"));
	expect_error("channels[0]", 2, "no \"groups\" given, and there is no group \"default\"");
	expect_error("channels[1].groups", 5, "must list at least one group");
	expect_error("channels[2].groups[1]", 7, "group \"team\" is listed twice");
	assert_null(parse("{\"groups\": []}"));
	expect_error("groups", 1, "must list at least one group");
}

/* ---- numbers ---------------------------------------------------------- */

static void test_numbers(void **state)
{
	struct realms_config *c;

	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", \"priority\": \"1\""));
	expect_error("channels[0].priority", 6, "must be an integer, not a string");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", \"priority\": 1e3"));
	expect_error("channels[0].priority", 6, "must be an integer, not a fraction");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", \"priority\": 99999999999999999999"));
	expect_error("channels[0].priority", 6, "must be an integer from -1000000 to 1000000");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", \"weight\": 257"));
	expect_error("channels[0].weight", 6, "must be an integer from 0 to 256");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", \"weight\": 2.5"));
	expect_error("channels[0].weight", 6, "must be an integer");

	c = parse_channel(",\n \"base_url\": \"https://x.example\", \"priority\": -5, \"weight\": 0");
	assert_non_null(c);
	assert_int_equal(c->channels[0].priority, -5);
	assert_int_equal(c->channels[0].weight, 0);
	/* weight 0 drains: the only channel is drained, so the model is unavailable */
	expect_at(CFG_WARNING, "models[0]", 2, "is unavailable");
	config_unref(c);

	assert_null(parse("{\n\"agent\": {\"threads\": 0}}"));
	expect_error("agent.threads", 2, "must be an integer from 1 to 64");
	assert_null(parse("{\n\"agent\": {\"threads\": 65}}"));
	expect_error("agent.threads", 2, "must be an integer from 1 to 64");
	c = parse("{\"agent\": {\"threads\": 64, \"body_prefix\": 1024, \"record_wait_ms\": 1000}}");
	assert_non_null(c);
	assert_int_equal(c->agent.threads, 64);
	assert_int_equal(c->agent.record_wait_ms, 1000);
	config_unref(c);
	assert_null(parse("{\"agent\": {\"body_prefix\": 100}}"));
	expect_error("agent.body_prefix", 1, "must be an integer from 1024 to");
	assert_null(parse("{\"agent\": {\"record_wait_ms\": 1001}}"));
	expect_error("agent.record_wait_ms", 1, "must be an integer from 0 to 1000");
	assert_null(parse("{\"agent\": {\"record_wait_ms\": 2.5}}"));
	expect_error("agent.record_wait_ms", 1, "must be an integer, not a fraction");
}

static void test_addresses(void **state)
{
	struct realms_config *c;

	assert_null(parse("{\"agent\": {\"listen\": [\"127.0.0.1:1\",\n\"127.0.0.1:1\"]}}"));
	expect_error("agent.listen[1]", 2, "listed twice");
	assert_null(parse("{\"agent\": {\"listen\": [\"1.1.1.1:1\", \"1.1.1.1:2\", \"1.1.1.1:3\", "
	                  "\"1.1.1.1:4\", \"1.1.1.1:5\", \"1.1.1.1:6\", \"1.1.1.1:7\", "
	                  "\"1.1.1.1:8\", \"1.1.1.1:9\"]}}"));
	expect_error("agent.listen", 1, "at most 8 listeners");
	assert_null(parse("{\"redis\": \"redis.internal:6379\"}"));
	expect_error("redis", 1, "invalid address");
	assert_null(parse("{\"agent\": {\"admin\": \"127.0.0.1:99999\"}}"));
	expect_error("agent.admin", 1, "bad port");
	c = parse("{\"redis\": \"/run/redis.sock\", \"agent\": {\"listen\": \"[::1]:12345\", "
	          "\"check\": \"127.0.0.1:12347\"}}");
	assert_non_null(c);
	assert_int_equal(c->redis.addr.family, AF_UNIX);
	assert_int_equal(c->agent.n_listen, 1);
	assert_int_equal(c->agent.listen_addr[0].family, AF_INET6);
	config_unref(c);
	/* agent.check is no longer used: a warning, so older files load. */
	expect_at(CFG_WARNING, "agent.check", 1, "no longer used: the agent chooses the credential "
	               "of every attempt, so HAProxy needs no agent-check; remove it");
}

/* ---- base URLs -------------------------------------------------------- */

static void test_base_url_ok(void **state)
{
	static const struct {
		const char *url, *host, *authority, *norm;
		int port, tls, v6;
	} ok[] = {
		{ "https://api.anthropic.com", "api.anthropic.com", "api.anthropic.com",
		  "https://api.anthropic.com", 443, 1, 0 },
		{ "https://api.anthropic.com/", "api.anthropic.com", "api.anthropic.com",
		  "https://api.anthropic.com", 443, 1, 0 },
		{ "http://localhost", "localhost", "localhost", "http://localhost", 80, 0, 0 },
		{ "https://h.example:8443", "h.example", "h.example:8443",
		  "https://h.example:8443", 8443, 1, 0 },
		{ "https://10.0.0.1:443/", "10.0.0.1", "10.0.0.1", "https://10.0.0.1", 443, 1, 0 },
		{ "http://127.0.0.1:443", "127.0.0.1", "127.0.0.1:443", "http://127.0.0.1:443", 443, 0, 0 },
		{ "https://[::1]", "::1", "[::1]", "https://[::1]", 443, 1, 1 },
		{ "http://[::1]:8080/", "::1", "[::1]:8080", "http://[::1]:8080", 8080, 0, 1 },
		{ "https://[2001:db8::1]:8080/", "2001:db8::1", "[2001:db8::1]:8080",
		  "https://[2001:db8::1]:8080", 8080, 1, 1 },
		{ "http://127.1.2.3:8080", "127.1.2.3", "127.1.2.3:8080", "http://127.1.2.3:8080",
		  8080, 0, 0 },
		{ "HTTPS://API.Anthropic.COM", "api.anthropic.com", "api.anthropic.com",
		  "https://api.anthropic.com", 443, 1, 0 },
		/* Providers behind a path: requests follow it. */
		{ "https://api.deepseek.com/anthropic", "api.deepseek.com", "api.deepseek.com",
		  "https://api.deepseek.com/anthropic", 443, 1, 0 },
		{ "https://open.bigmodel.cn/api/anthropic/", "open.bigmodel.cn", "open.bigmodel.cn",
		  "https://open.bigmodel.cn/api/anthropic", 443, 1, 0 },
		{ "https://x.example//", "x.example", "x.example", "https://x.example", 443, 1, 0 },
		{ "https://x.example:8443/a-b_c~d/%41x", "x.example", "x.example:8443",
		  "https://x.example:8443/a-b_c~d/%41x", 8443, 1, 0 },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct realms_config *c = parse_url(ok[i].url);
		const struct cfg_channel *ch;

		if (!c) {
			fprintf(stderr, "refused %s\n", ok[i].url);
			dump();
			fail();
		}
		ch = &c->channels[0];
		assert_string_equal(ch->host, ok[i].host);
		assert_string_equal(ch->authority, ok[i].authority);
		assert_string_equal(ch->base_url, ok[i].norm);
		/* The prefix is what follows the authority. */
		assert_string_equal(ch->path_prefix, strchr(strchr(ok[i].norm, ':') + 3, '/') ?
		                    strchr(strchr(ok[i].norm, ':') + 3, '/') : "");
		assert_string_equal(ch->scheme, ok[i].tls ? "https" : "http");
		assert_int_equal(ch->port, ok[i].port);
		assert_int_equal(ch->tls, ok[i].tls);
		assert_int_equal(ch->ipv6, ok[i].v6);
		config_unref(c);
	}
}

static void test_base_url_refused(void **state)
{
	static const struct { const char *url, *msg; } bad[] = {
		{ "ftp://x.example", "scheme must be \"https\" or \"http\"" },
		{ "api.anthropic.com", "must start with \"https://\" or \"http://\"" },
		{ "https:/x.example", "must start with" },
		{ "https://", "missing host" },
		{ "https://:443", "missing host" },
		{ "https://user:hunter2@x.example", "must not contain user information" },
		{ "https://x.example/v1", "must not end with \"/v1\"" },
		{ "https://x.example/api/v1/", "must not end with \"/v1\"" },
		{ "https://x.example/a//b", "must not have empty" },
		{ "https://x.example/a/../b", "\"..\" segments" },
		{ "https://x.example/a/./b", "\".\" or" },
		{ "https://x.example/a/..", "segments" },
		{ "https://x.example/a%2", "broken %XX escape" },
		{ "https://x.example/a%zz/b", "broken %XX escape" },
		{ "https://x.example/a'b", "path may hold only" },
		{ "https://x.example/a$b", "path may hold only" },
		{ "https://x.example?a=1", "must not have a query string" },
		{ "https://x.example/?a=1", "must not have a query string" },
		{ "https://x.example#f", "must not have a fragment" },
		{ "https://x.example:0", "port must be a number from 1 to 65535" },
		{ "https://x.example:65536", "port must be a number" },
		{ "https://x.example:abc", "port must be a number" },
		{ "https://x.example:", "port must be a number" },
		{ "https://x.example:-1", "port must be a number" },
		{ "https://::1", "IPv6 addresses must be written in brackets" },
		{ "https://[::zz]", "invalid IPv6 address" },
		{ "https://[::1", "missing ']'" },
		{ "https://[::1]x", "unexpected characters after ']'" },
		{ "https://x example", "must not contain spaces" },
		{ "https://x%41.example", "invalid character in the host name" },
		/* Keys in clear across a network. */
		{ "http://api.anthropic.com", "http:// would send the channel's keys across the network" },
		{ "http://10.0.0.1:8080", "use https://, or http:// to this host only" },
		{ "http://[2001:db8::1]", "http:// would send" },
		{ "http://128.0.0.1", "http:// would send" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text;

		if (parse_url(bad[i].url)) {
			fprintf(stderr, "accepted %s\n", bad[i].url);
			fail();
		}
		expect_error("channels[0].base_url", 6, bad[i].msg);
		text = diag_text(&D);
		assert_null(strstr(text, "hunter2"));
		free(text);
	}
}

/* ---- channel auth and headers ----------------------------------------- */

static void test_channel_auth_headers(void **state)
{
	struct realms_config *c;
	const struct cfg_channel *ch;
	char *secret = write_temp("sk-secret-org\n");

	c = parse_channel(",\n \"base_url\": \"https://x.example\", \"auth\": \"x-api-key\"");
	assert_non_null(c);
	assert_int_equal(c->channels[0].auth, CFG_AUTH_X_API_KEY);
	assert_int_equal(c->channels[0].n_headers, 0);
	config_unref(c);
	c = parse_channel(",\n \"base_url\": \"https://x.example\"");
	assert_int_equal(c->channels[0].auth, CFG_AUTH_BOTH);
	config_unref(c);

	{
		char extra[512];

		snprintf(extra, sizeof(extra), ",\n \"base_url\": \"https://x.example\", \"auth\": "
		         "\"bearer\",\n \"headers\": {\"X-Org\": \"file:%s\", \"Anthropic-Beta\": "
		         "\"a,b\"}", secret);
		c = parse_channel(extra);
	}
	assert_non_null(c);
	ch = &c->channels[0];
	assert_int_equal(ch->auth, CFG_AUTH_BEARER);
	assert_int_equal(ch->n_headers, 2);
	assert_string_equal(ch->headers[0].name, "X-Org");
	assert_int_equal(ch->headers[0].value_len, 13);
	assert_memory_equal(ch->headers[0].value, "sk-secret-org", 13);
	assert_string_equal(ch->headers[1].name, "Anthropic-Beta");
	config_unref(c);

	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", \"auth\": \"basic\""));
	expect_error("channels[0].auth", 0, "must be \"both\", \"x-api-key\" or \"bearer\"");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", "
	                          "\"headers\": {\"Authorization\": \"x\"}"));
	expect_error("channels[0].headers.Authorization", 0, "may not set this header");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", "
	                          "\"headers\": {\"X-Realms-Server\": \"x\"}"));
	expect_error(NULL, 0, "may not set this header");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", "
	                          "\"headers\": {\"bad name\": \"x\"}"));
	expect_error(NULL, 0, "not an HTTP header name");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", "
	                          "\"headers\": {\"X-A\": \"x\", \"x-a\": \"y\"}"));
	expect_error(NULL, 0, "given twice");
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\", "
	                          "\"headers\": {\"X-A\": \"a\\nb\"}"));
	expect_error(NULL, 0, "holds spaces, control or non-ASCII characters");
	unlink(secret);
	free(secret);
}

/* ---- budgets: groups as objects, the time zone -------------------------- */

static void test_group_limits_and_timezone(void **state)
{
	struct realms_config *c = parse(
		"{\"timezone\": \"+08:00\",\n"
		"\"groups\": [\"default\", {\"name\": \"interns\", \"limits\": {\"usd/day\": 5,"
		" \"rpm\": 30, \"concurrency\": 2}, \"total\": {\"usd/month\": 500.25}}]}");
	int g;

	assert_non_null(c);
	assert_int_equal(c->tz_min, 480);
	assert_int_equal(c->n_groups, 2);
	assert_int_equal(c->group_limits[0].set, 0);
	g = config_group_index(c, "interns", 7);
	assert_int_equal(g, 1);
	assert_int_equal(c->group_limits[g].set,
	                 1u << BUDGET_USD_DAY | 1u << BUDGET_RPM | 1u << BUDGET_CONCURRENCY);
	assert_int_equal(c->group_limits[g].v[BUDGET_USD_DAY], 5000000000ULL);
	assert_int_equal(c->group_limits[g].v[BUDGET_RPM], 30);
	assert_int_equal(c->group_totals[g].set, 1u << BUDGET_USD_MONTH);
	assert_int_equal(c->group_totals[g].v[BUDGET_USD_MONTH], 500250000000ULL);
	config_unref(c);

	c = parse("{\"models\": []}");
	assert_non_null(c);
	assert_int_equal(c->tz_min, 0);
	assert_int_equal(c->group_limits[0].set, 0);
	config_unref(c);

	assert_null(parse("{\"timezone\": \"Asia/Shanghai\"}"));
	expect_error("timezone", 1, "must be a UTC offset such as \"+08:00\"");
	assert_null(parse("{\"groups\": [{\"name\": \"g\", \"limits\": {\"usd/year\": 5}}]}"));
	expect_error("groups[0].limits[\"usd/year\"]", 1, "unknown limit");
	assert_null(parse("{\"groups\": [{\"name\": \"g\", \"limits\": {\"usd/day\": 1e3}}]}"));
	expect_error("groups[0].limits[\"usd/day\"]", 1, "an amount of US dollars");
	assert_null(parse("{\"groups\": [{\"name\": \"g\", \"limits\": {\"rpm\": 2.5}}]}"));
	expect_error("groups[0].limits.rpm", 1, "a whole number from 1");
	assert_null(parse("{\"groups\": [{\"name\": \"g\", \"total\": {\"rpm\": 5}}]}"));
	expect_error("groups[0].total.rpm", 1, "a group total is an amount");
	assert_null(parse("{\"groups\": [{\"limits\": {}}]}"));
	expect_error("groups[0]", 1, "missing required key \"name\"");
	assert_null(parse("{\"groups\": [{\"name\": \"g\", \"limits\": {\"usd/day\": \"5\"}}]}"));
	expect_error("groups[0].limits[\"usd/day\"]", 1, "must be a number");
}

/* ---- warnings --------------------------------------------------------- */

static void test_warnings_fixture(void **state)
{
	struct realms_config *c = load("warnings.json");
	const struct cfg_model *m;

	assert_non_null(c);
	assert_int_equal(D.errors, 0);
	expect_at(CFG_WARNING, "channels[0].models[1]", 11, "model \"claude-opus-4-5\" is disabled");
	expect_at(CFG_WARNING, "models[2]", 5, "model \"claude-haiku-4-5\" is unavailable");
	expect_at(CFG_WARNING, "models[3]", 6, "no price for model \"in-house\": usage will be "
	          "recorded at cost 0");
	assert_int_equal(D.warnings, 3);
	m = config_model(c, "in-house", 8);
	assert_false(m->has_price);
	assert_null(config_price(c, "in-house", 8));
	/* a disabled model is known, not unavailable */
	m = config_model(c, "claude-opus-4-5", 15);
	assert_false(m->enabled);
	config_unref(c);
}

static void test_wildcard_warnings(void **state)
{
	struct realms_config *c;

	c = parse_channel(",\n \"base_url\": \"https://x.example\", \"enabled\": false,\n"
	                  " \"_x\": 0}, {\"name\": \"b\", \"base_url\": \"https://x.example\",\n"
	                  " \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\", \"enabled\": false}],\n"
	                  " \"models\": {\"*\": \"*\", \"claude-sonnet-4-5\": \"s\"}");
	assert_non_null(c);
	expect_at(CFG_WARNING, "channels[1].models[\"*\"]", 9, "ignored: agent.allow_unknown_models is false");
	expect_at(CFG_WARNING, "channels[1]", 7, "every credential is disabled");
	expect_at(CFG_WARNING, "models[0]", 2, "is unavailable");
	assert_false(c->channels[1].has_wildcard);
	assert_int_equal(c->n_wildcard, 0);
	config_unref(c);

	c = parse("{\"agent\": {\n\"allow_unknown_models\": true}, \"channels\": [\n"
	          "{\"name\": \"a\", \"base_url\": \"https://x.example\",\n"
	          " \"credentials\": [{\"name\": \"k\", \"key\": \"sk-1\"}]}]}");
	assert_non_null(c);
	expect_at(CFG_WARNING, "agent.allow_unknown_models", 2, "has no effect: no channel binds \"*\"");
	expect_at(CFG_WARNING, "channels[0]", 3, "binds no model");
	config_unref(c);

	c = parse("{}");
	assert_non_null(c);
	expect_at(CFG_WARNING, "channels", 1, "no channel is defined");
	config_unref(c);
}

/* ---- secrets ---------------------------------------------------------- */

static void assert_diag_lacks(const char *secret)
{
	char *text = diag_text(&D);

	if (strstr(text, secret)) {
		fprintf(stderr, "secret printed:\n%s", text);
		fail();
	}
	free(text);
}

static void test_env_secret(void **state)
{
	struct realms_config *c;
	const char *cfg = ",\n \"base_url\": \"https://x.example\", \"credentials\": [\n"
	                  " {\"name\": \"k\", \"key\": \"env:REALMS_TEST_KEY\"}]";
	char json[1024];

	/* the helper's own "credentials" is replaced by this one */
	snprintf(json, sizeof(json), "{\n\"models\": [\"m\"],\n\"channels\": [\n"
	         "{\"name\": \"a\", \"models\": [\"m\"]%s}\n]}", cfg);

	setenv("REALMS_TEST_KEY", "sk-ant-env-secret-0042", 1);
	c = parse(json);
	assert_non_null(c);
	assert_string_equal(c->channels[0].creds[0].key, "sk-ant-env-secret-0042");
	config_unref(c);

	unsetenv("REALMS_TEST_KEY");
	assert_null(parse(json));
	expect_error("channels[0].credentials[0].key", 6,
	             "environment variable REALMS_TEST_KEY is not set");

	setenv("REALMS_TEST_KEY", "", 1);
	assert_null(parse(json));
	expect_error("channels[0].credentials[0].key", 6, "environment variable REALMS_TEST_KEY is empty");

	setenv("REALMS_TEST_KEY", "sk-ant-leak leak-0042", 1);
	assert_null(parse(json));
	expect_error("channels[0].credentials[0].key", 6, "which an HTTP header cannot carry");
	assert_diag_lacks("sk-ant-leak");
	unsetenv("REALMS_TEST_KEY");

	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\"}, {\"name\": \"b\", "
	                          "\"base_url\": \"https://x.example\",\n \"credentials\": "
	                          "[{\"name\": \"k\", \"key\": \"env:1X\"}]"));
	expect_error("channels[1].credentials[0].key", 7, "must be followed by a variable name");
}

static void test_file_secret(void **state)
{
	char *good = write_temp("sk-ant-file-secret-0099\r\n\n");
	char *empty = write_temp("\n");
	char *spaced = write_temp("sk-ant-file leak-0099\n");
	char json[2048];
	struct realms_config *c;

	snprintf(json, sizeof(json), "{\n\"models\": [\"m\"],\n\"channels\": [{\"name\": \"a\",\n"
	         "\"base_url\": \"https://x.example\", \"models\": [\"m\"], \"credentials\": [\n"
	         "{\"name\": \"k\", \"key\": \"file:%s\"}]}]}", good);
	c = parse(json);
	assert_non_null(c);
	assert_string_equal(c->channels[0].creds[0].key, "sk-ant-file-secret-0099");
	assert_int_equal(c->channels[0].creds[0].key_len, 23);
	config_unref(c);

	snprintf(json, sizeof(json), "{\n\"models\": [\"m\"],\n\"channels\": [{\"name\": \"a\",\n"
	         "\"base_url\": \"https://x.example\", \"models\": [\"m\"], \"credentials\": [\n"
	         "{\"name\": \"k\", \"key\": \"file:%s\"}]}]}", empty);
	assert_null(parse(json));
	expect_error("channels[0].credentials[0].key", 5, "is empty");

	snprintf(json, sizeof(json), "{\n\"models\": [\"m\"],\n\"channels\": [{\"name\": \"a\",\n"
	         "\"base_url\": \"https://x.example\", \"models\": [\"m\"], \"credentials\": [\n"
	         "{\"name\": \"k\", \"key\": \"file:%s\"}]}]}", spaced);
	assert_null(parse(json));
	expect_error("channels[0].credentials[0].key", 5, "which an HTTP header cannot carry");
	assert_diag_lacks("sk-ant-file");

	unlink(good);
	snprintf(json, sizeof(json), "{\n\"models\": [\"m\"],\n\"channels\": [{\"name\": \"a\",\n"
	         "\"base_url\": \"https://x.example\", \"models\": [\"m\"], \"credentials\": [\n"
	         "{\"name\": \"k\", \"key\": \"file:%s\"}]}]}", good);
	assert_null(parse(json));
	expect_error("channels[0].credentials[0].key", 5, "cannot read file");
	expect_error("channels[0].credentials[0].key", 5, "No such file or directory");

	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\"}, {\"name\": \"b\", "
	                          "\"base_url\": \"https://x.example\",\n \"credentials\": "
	                          "[{\"name\": \"k\", \"key\": \"file:/\"}]"));
	expect_error("channels[1].credentials[0].key", 7, "is not a regular file");

	unlink(empty);
	unlink(spaced);
	free(good);
	free(empty);
	free(spaced);
}

/* config_load reads relative "file:" secrets next to the config file. */
static void test_file_secret_relative(void **state)
{
	char dir[] = "/tmp/realms-test-dir-XXXXXX";
	char keyp[128], cfgp[128];
	const char *json = "{\"models\": [\"m\"], \"channels\": [{\"name\": \"a\", "
	                   "\"base_url\": \"https://x.example\", \"models\": [\"m\"], "
	                   "\"credentials\": [{\"name\": \"k\", \"key\": \"file:key.txt\"}]}]}";
	struct realms_config *c;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(keyp, sizeof(keyp), "%s/key.txt", dir);
	snprintf(cfgp, sizeof(cfgp), "%s/realms.json", dir);
	f = fopen(keyp, "w");
	fputs("sk-ant-relative-0007\n", f);
	fclose(f);
	f = fopen(cfgp, "w");
	fputs(json, f);
	fclose(f);

	c = load_path(cfgp);
	if (!c)
		dump();
	assert_non_null(c);
	assert_string_equal(c->channels[0].creds[0].key, "sk-ant-relative-0007");
	assert_string_equal(c->origin, cfgp);
	config_unref(c);
	unlink(keyp);
	unlink(cfgp);
	rmdir(dir);
}

/* Secrets in the wrong place or shape are never echoed. */
static void test_secret_never_printed(void **state)
{
	assert_null(parse_channel(",\n \"base_url\": \"https://x.example\"}, {\"name\": \"b\", "
	                          "\"base_url\": \"https://x.example\",\n \"credentials\": "
	                          "[{\"name\": \"k\", \"key\": \"sk-ant-inline\\nleak-77\"},\n"
	                          "{\"name\": \"k2\", \"key\": \"\"}, {\"name\": \"k3\", \"key\": "
	                          "[\"sk-ant-array-leak-78\"]}]"));
	expect_error("channels[1].credentials[0].key", 7, "which an HTTP header cannot carry");
	expect_error("channels[1].credentials[1].key", 8, "must not be empty");
	expect_error("channels[1].credentials[2].key", 8, "must be a string, not an array");
	assert_diag_lacks("sk-ant-inline");
	assert_diag_lacks("leak-77");
	assert_diag_lacks("leak-78");
}

/* ---- Redis: the "redis" object, the environment, AUTH ----------------- */

#define REDIS_PW "rp-9c1e-secret-Zq"

static void redis_env_clear(void)
{
	unsetenv("REALMS_REDIS");
	unsetenv("REALMS_REDIS_USER");
	unsetenv("REALMS_REDIS_PASSWORD_FILE");
	unsetenv("REALMS_REDIS_PASSWORD");
}

/* Writes content to path with the given mode (set before the content). */
static void write_mode(const char *path, const char *content, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(chmod(path, mode), 0);
	fputs(content, f);
	fclose(f);
}

/* agent.admin_token: a secret like the others, at least CFG_ADMIN_TOKEN_MIN
 * characters; a short one is an error whose message never holds it. */
static void test_admin_token(void **state)
{
	static const char tok[] = "0123456789abcdef0123456789abcdef";
	struct realms_config *c;
	char *text;

	c = parse("{\"agent\": {}}");
	assert_non_null(c);
	assert_null(c->agent.admin_token);
	config_unref(c);

	setenv("REALMS_TEST_ADMIN", tok, 1);
	c = parse("{\"agent\": {\"admin_token\": \"env:REALMS_TEST_ADMIN\"}}");
	assert_non_null(c);
	assert_int_equal(c->agent.admin_token_len, 32);
	assert_memory_equal(c->agent.admin_token, tok, 32);
	config_unref(c);

	c = parse("{\"agent\": {\"admin_token\": \"short-but-secret-1234567890abcd\"}}");
	assert_null(c);
	assert_non_null(find(CFG_ERROR, "agent.admin_token", "shorter than 32 characters"));
	text = diag_text(&D);
	assert_null(strstr(text, "short-but-secret"));
	free(text);

	setenv("REALMS_TEST_ADMIN", "with space 0123456789abcdef0123456789", 1);
	c = parse("{\"agent\": {\"admin_token\": \"env:REALMS_TEST_ADMIN\"}}");
	assert_null(c);
	assert_non_null(find(CFG_ERROR, "agent.admin_token", "holds spaces"));
	unsetenv("REALMS_TEST_ADMIN");
}

static void test_redis_object(void **state)
{
	struct realms_config *c;
	char json[1024];
	char *pwf = write_temp(REDIS_PW "\n");

	/* The string form still works; the object's address defaults. */
	c = parse("{\"redis\": {}}");
	assert_non_null(c);
	assert_string_equal(c->redis.address, "127.0.0.1:6379");
	assert_null(c->redis.user);
	assert_null(c->redis.password);
	config_unref(c);

	c = parse("{\"redis\": {\"address\": \"unix:/run/redis.sock\", \"user\": \"realms\",\n"
	          "\"password\": \"" REDIS_PW "\"}}");
	assert_non_null(c);
	assert_string_equal(c->redis.address, "unix:/run/redis.sock");
	assert_int_equal(c->redis.addr.family, AF_UNIX);
	assert_string_equal(c->redis.user, "realms");
	assert_string_equal(c->redis.password, REDIS_PW);
	assert_int_equal(c->redis.password_len, strlen(REDIS_PW));
	config_unref(c);

	/* The password is a secret like a key: env: and file: */
	setenv("REALMS_TEST_RPW", REDIS_PW, 1);
	c = parse("{\"redis\": {\"password\": \"env:REALMS_TEST_RPW\"}}");
	assert_non_null(c);
	assert_string_equal(c->redis.password, REDIS_PW);
	assert_null(c->redis.user);
	config_unref(c);
	snprintf(json, sizeof(json), "{\"redis\": {\"password\": \"file:%s\"}}", pwf);
	c = parse(json);
	assert_non_null(c);
	assert_string_equal(c->redis.password, REDIS_PW);
	config_unref(c);

	/* Problems, never with the value. REALMS_TEST_RPW is unset from the
	 * one case that needs it set on. */
	static const struct { const char *rpw, *json, *path, *msg; } bad[] = {
		{ NULL, "{\"redis\": {\"adress\": \"127.0.0.1:1\"}}", "redis.adress",
		  "unknown key (expected one of: address, user, password)" },
		{ NULL, "{\"redis\": {\"address\": \"redis.internal:6379\"}}", "redis.address",
		  "invalid address" },
		{ NULL, "{\"redis\": {\"user\": \"a b\"}}", "redis.user",
		  "visible ASCII characters (no spaces)" },
		{ NULL, "{\"redis\": {\"user\": \"\"}}", "redis.user", "must be 1 to 128" },
		{ NULL, "{\"redis\": {\"password\": \"" REDIS_PW " x\"}}", "redis.password",
		  "which a Redis password may not hold here" },
		{ REDIS_PW "\t", "{\"redis\": {\"password\": \"env:REALMS_TEST_RPW\"}}",
		  "redis.password", "environment variable REALMS_TEST_RPW holds spaces" },
		{ NULL, "{\"redis\": {\"password\": \"env:REALMS_TEST_RPW\"}}", "redis.password",
		  "environment variable REALMS_TEST_RPW is not set" },
		{ NULL, "{\"redis\": {\"password\": 5}}", "redis.password",
		  "must be a string, not a number" },
		{ NULL, "{\"redis\": [\"127.0.0.1:6379\"]}", "redis",
		  "must be an address string or an object, not an array" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i].rpw)
			setenv("REALMS_TEST_RPW", bad[i].rpw, 1);
		else
			unsetenv("REALMS_TEST_RPW");
		assert_null(parse(bad[i].json));
		expect_error(bad[i].path, 1, bad[i].msg);
		assert_diag_lacks(REDIS_PW);
	}
	unsetenv("REALMS_TEST_RPW");
	/* A user alone parses: its password may come from the environment. */
	c = parse("{\"redis\": {\"user\": \"realms\"}}");
	assert_non_null(c);
	config_unref(c);
	unlink(pwf);
	free(pwf);
}

static void test_redis_auth_argv(void **state)
{
	struct cfg_redis r = { .address = "127.0.0.1:6379" };
	const char *argv[3];
	size_t len[3];

	assert_int_equal(cfg_redis_auth_argv(&r, argv, len), 0);
	r.password = "pw-1";
	r.password_len = 4;
	assert_int_equal(cfg_redis_auth_argv(&r, argv, len), 2);
	assert_string_equal(argv[0], "AUTH");
	assert_int_equal(len[0], 4);
	assert_ptr_equal(argv[1], r.password);
	assert_int_equal(len[1], 4);
	r.user = "realms-agent";
	assert_int_equal(cfg_redis_auth_argv(&r, argv, len), 3);
	assert_ptr_equal(argv[1], r.user);
	assert_int_equal(len[1], 12);
	assert_ptr_equal(argv[2], r.password);
}

/* config_redis_env: each variable replaces one part; problems never show
 * the password. */
static void test_redis_env(void **state)
{
	char dir[] = "/tmp/realms-test-renv-XXXXXX", pwf[128], open_pwf[128];
	struct realms_config *c;
	struct cfg_redis ep, cp;

	assert_non_null(mkdtemp(dir));
	snprintf(pwf, sizeof(pwf), "%s/pw", dir);
	snprintf(open_pwf, sizeof(open_pwf), "%s/pw-open", dir);
	write_mode(pwf, "env-file-" REDIS_PW "\n", 0600);
	write_mode(open_pwf, "open-" REDIS_PW "\n", 0644);
	redis_env_clear();

	/* No config, no variable: the default address, no AUTH. */
	cfg_diag_free(&D);
	cfg_diag_init(&D);
	assert_int_equal(config_redis_env(NULL, &ep, &D), 0);
	assert_string_equal(ep.address, "127.0.0.1:6379");
	assert_int_equal(ep.addr.port, 6379);
	assert_null(ep.user);
	assert_null(ep.password);
	config_redis_release(&ep);

	c = parse("{\"redis\": {\"address\": \"127.0.0.1:7000\", \"user\": \"cfg-user\", "
	          "\"password\": \"cfg-" REDIS_PW "\"}}");
	assert_non_null(c);
	cfg_diag_free(&D);      /* "no channel is defined" */
	cfg_diag_init(&D);
	assert_int_equal(config_redis_env(c, &ep, &D), 0);
	assert_string_equal(ep.address, "127.0.0.1:7000");
	assert_string_equal(ep.user, "cfg-user");
	assert_string_equal(ep.password, "cfg-" REDIS_PW);
	assert_ptr_not_equal(ep.password, c->redis.password);     /* a copy */
	assert_int_equal(config_redis_copy(&cp, &ep), 0);
	assert_string_equal(cp.password, "cfg-" REDIS_PW);
	assert_string_equal(cp.user, "cfg-user");
	config_redis_release(&cp);
	assert_null(cp.password);
	config_redis_release(&ep);

	/* Every part overridden; the file's final newline is not the password. */
	setenv("REALMS_REDIS", "unix:/run/r.sock", 1);
	setenv("REALMS_REDIS_USER", "env-user", 1);
	setenv("REALMS_REDIS_PASSWORD_FILE", pwf, 1);
	assert_int_equal(config_redis_env(c, &ep, &D), 0);
	assert_string_equal(ep.address, "unix:/run/r.sock");
	assert_int_equal(ep.addr.family, AF_UNIX);
	assert_string_equal(ep.user, "env-user");
	assert_string_equal(ep.password, "env-file-" REDIS_PW);
	assert_int_equal(ep.password_len, strlen("env-file-" REDIS_PW));
	config_redis_release(&ep);
	assert_int_equal(D.warnings, 0);

	/* The password itself in a variable */
	unsetenv("REALMS_REDIS_PASSWORD_FILE");
	setenv("REALMS_REDIS_PASSWORD", "var-" REDIS_PW, 1);
	assert_int_equal(config_redis_env(c, &ep, &D), 0);
	assert_string_equal(ep.password, "var-" REDIS_PW);
	config_redis_release(&ep);

	/* Empty means not given */
	setenv("REALMS_REDIS", "", 1);
	setenv("REALMS_REDIS_USER", "", 1);
	setenv("REALMS_REDIS_PASSWORD", "", 1);
	assert_int_equal(config_redis_env(c, &ep, &D), 0);
	assert_string_equal(ep.address, "127.0.0.1:7000");
	assert_string_equal(ep.user, "cfg-user");
	assert_string_equal(ep.password, "cfg-" REDIS_PW);
	config_redis_release(&ep);
	redis_env_clear();

	/* A password file other users can read: a warning naming it. */
	setenv("REALMS_REDIS_PASSWORD_FILE", open_pwf, 1);
	assert_int_equal(config_redis_env(c, &ep, &D), 0);
	assert_string_equal(ep.password, "open-" REDIS_PW);
	config_redis_release(&ep);
	expect_at(CFG_WARNING, "", 0, "is readable by other users (mode 0644)");
	expect_at(CFG_WARNING, "", 0, open_pwf);
	assert_string_equal(D.items[D.n - 1].origin, "REALMS_REDIS_PASSWORD_FILE");
	assert_int_equal(D.errors, 0);

	/* Errors: each names its variable, none shows a value. */
	cfg_diag_free(&D);
	cfg_diag_init(&D);
	setenv("REALMS_REDIS_PASSWORD", "var-" REDIS_PW, 1);
	assert_int_equal(config_redis_env(c, &ep, &D), -1);
	assert_null(ep.address);
	assert_null(ep.password);
	expect_error("", 0, "set REALMS_REDIS_PASSWORD_FILE or REALMS_REDIS_PASSWORD, not both");
	unsetenv("REALMS_REDIS_PASSWORD");
	setenv("REALMS_REDIS_PASSWORD_FILE", dir, 1);
	assert_int_equal(config_redis_env(c, &ep, &D), -1);
	expect_error("", 0, "is not a regular file");
	setenv("REALMS_REDIS_PASSWORD_FILE", "/nonexistent/pw", 1);
	assert_int_equal(config_redis_env(c, &ep, &D), -1);
	expect_error("", 0, "cannot read file /nonexistent/pw");
	unsetenv("REALMS_REDIS_PASSWORD_FILE");
	setenv("REALMS_REDIS_PASSWORD", "var " REDIS_PW, 1);
	assert_int_equal(config_redis_env(c, &ep, &D), -1);
	expect_error("", 0, "environment variable REALMS_REDIS_PASSWORD holds spaces");
	unsetenv("REALMS_REDIS_PASSWORD");
	setenv("REALMS_REDIS", "127.0.0.1:99999", 1);
	assert_int_equal(config_redis_env(c, &ep, &D), -1);
	expect_error("", 0, "invalid address");
	unsetenv("REALMS_REDIS");
	setenv("REALMS_REDIS_USER", "a b", 1);
	assert_int_equal(config_redis_env(c, &ep, &D), -1);
	expect_error("", 0, "must be 1 to 128 visible ASCII characters");
	/* A user and no password anywhere */
	assert_int_equal(config_redis_env(NULL, &ep, &D) , -1);
	setenv("REALMS_REDIS_USER", "lonely", 1);
	assert_int_equal(config_redis_env(NULL, &ep, &D), -1);
	expect_error("", 0, "Redis user \"lonely\" has no password");
	redis_env_clear();
	config_unref(c);
	c = parse("{\"redis\": {\"user\": \"cfg-user\"}}");
	assert_non_null(c);
	assert_int_equal(config_redis_env(c, &ep, &D), -1);
	expect_error("redis.user", 0, "Redis user \"cfg-user\" has no password");
	config_unref(c);
	assert_diag_lacks(REDIS_PW);

	unlink(pwf);
	unlink(open_pwf);
	rmdir(dir);
}

/* Loads path into a fresh D; it must load. Returns the warnings' count. */
static int load_warnings(const char *path)
{
	struct realms_config *c = load_path(path);

	if (!c)
		dump();
	assert_non_null(c);
	config_unref(c);
	return D.warnings;
}

/* A configuration file other users can read gets a warning when it holds a
 * secret inline; so does any "file:" secret they can read. */
static void test_exposed_secrets(void **state)
{
	char dir[] = "/tmp/realms-test-perm-XXXXXX", cfgp[128], keyp[128], json[1024];
	struct realms_config *c;
	const struct cfg_problem *pb;
	const char *inline_key =
		"{\"models\": [\"claude-sonnet-4-5\"], \"channels\": [{\"name\": \"a\", \"base_url\": "
		"\"https://x.example\", \"models\": [\"claude-sonnet-4-5\"], \"credentials\": [\n"
		"{\"name\": \"k\", \"key\": \"sk-ant-inline-0001\"},\n"
		"{\"name\": \"k2\", \"key\": \"sk-ant-inline-0002\"}]}]}";
	const char *env_only =
		"{\"redis\": {\"user\": \"u\", \"password\": \"env:ANTHROPIC_API_KEY\"},\n"
		"\"models\": [\"claude-sonnet-4-5\"], \"channels\": [{\"name\": \"a\", \"base_url\": "
		"\"https://x.example\", \"models\": [\"claude-sonnet-4-5\"], \"credentials\": [\n"
		"{\"name\": \"k\", \"key\": \"env:ANTHROPIC_API_KEY\"}]}]}";

	assert_non_null(mkdtemp(dir));
	snprintf(cfgp, sizeof(cfgp), "%s/realms.json", dir);
	snprintf(keyp, sizeof(keyp), "%s/key", dir);

	/* 0644 with two inline keys: one warning about the file, first. */
	write_mode(cfgp, inline_key, 0644);
	assert_int_equal(load_warnings(cfgp), 1);
	pb = find(CFG_WARNING, "", "readable by other users (mode 0644) and holds 2 secrets "
	          "written inline");
	assert_non_null(pb);
	assert_ptr_equal(pb, &D.items[0]);
	assert_string_equal(pb->origin, cfgp);
	assert_int_equal(pb->line, 0);
	assert_true(pb->exposed);
	assert_non_null(strstr(pb->msg, "chmod o-r"));
	assert_diag_lacks("sk-ant-inline");

	/* The same at 0640 or 0600: other users cannot read it. */
	assert_int_equal(chmod(cfgp, 0640), 0);
	assert_int_equal(load_warnings(cfgp), 0);

	/* 0644 holding env: references only: nothing to hide. */
	write_mode(cfgp, env_only, 0644);
	assert_int_equal(load_warnings(cfgp), 0);

	/* An inline Redis password counts; even when the file is refused. */
	write_mode(cfgp, "{\"redis\": {\"password\": \"" REDIS_PW "\"}, \"bogus\": 1}", 0604);
	cfg_diag_free(&D);
	cfg_diag_init(&D);
	assert_null(config_load(cfgp, &D));
	expect_at(CFG_WARNING, "", 0, "(mode 0604) and holds 1 secret written inline: "
	          "chmod o-r");
	assert_diag_lacks(REDIS_PW);

	/* A "file:" secret other users can read: a warning on its line,
	 * naming that file; not once it is 0600. */
	write_mode(keyp, "sk-ant-file-0003\n", 0644);
	snprintf(json, sizeof(json), "{\"models\": [\"claude-sonnet-4-5\"],\n\"channels\": [{\"name\": \"a\", "
	         "\"base_url\": \"https://x.example\", \"models\": [\"claude-sonnet-4-5\"], \"credentials\": [\n"
	         "{\"name\": \"k\", \"key\": \"file:key\"}]}],\n"
	         "\"redis\": {\"password\": \"file:%s\"}}", keyp);
	write_mode(cfgp, json, 0644);
	assert_int_equal(load_warnings(cfgp), 2);
	expect_at(CFG_WARNING, "channels[0].credentials[0].key", 3,
	          "is readable by other users (mode 0644): chmod o-r");
	expect_at(CFG_WARNING, "channels[0].credentials[0].key", 3, keyp);
	expect_at(CFG_WARNING, "redis.password", 4, keyp);
	assert_diag_lacks("sk-ant-file");

	/* realmsctl prints these, and only these, when the file loads. */
	c = parse("{}");                /* "no channel is defined": a plain warning */
	assert_non_null(c);
	config_unref(c);
	assert_int_equal(D.warnings, 1);
	assert_false(D.items[0].exposed);
	c = config_load(cfgp, &D);      /* appends the two about exposed files */
	assert_non_null(c);
	config_unref(c);
	assert_int_equal(D.warnings, 3);
	{
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);

		assert_non_null(f);
		cfg_diag_print_exposed(&D, f);
		fclose(f);
		assert_null(strstr(text, "no channel"));
		assert_non_null(strstr(text, "channels[0].credentials[0].key: file "));
		assert_non_null(strstr(text, "redis.password: file "));
		free(text);
	}
	assert_int_equal(chmod(keyp, 0600), 0);
	assert_int_equal(load_warnings(cfgp), 0);

	unlink(keyp);
	unlink(cfgp);
	rmdir(dir);
}

/* ---- prices ----------------------------------------------------------- */

static void test_price_default(void **state)
{
	static const struct { const char *name; double input; } cases[] = {
		{ "claude-opus-4-5", 5 },
		{ "claude-opus-4-5-20251101", 5 },
		{ "claude-opus-4-1", 15 },
		{ "claude-opus-4-1-20250805", 15 },
		{ "claude-opus-4", 15 },
		{ "claude-opus-4-20250514", 15 },
		{ "claude-sonnet-4-5", 3 },
		{ "claude-sonnet-4-5-20250929", 3 },
		{ "claude-sonnet-4-5@20250929", 3 },
		{ "claude-sonnet-4", 3 },
		{ "claude-sonnet-4-20250514", 3 },
		{ "claude-3-7-sonnet-latest", 3 },
		{ "claude-haiku-4-5", 1 },
		{ "claude-3-5-haiku-20241022", 0.8 },
		{ "claude-3-haiku-20240307", 0.25 },
	};
	static const char *const none[] = {
		"claude-sonnet-4-5-2025", "claude-sonnet-4-5x", "claude-sonnet-4-5-", "claude-opus-4-9",
		"claude-sonnet", "gpt-4o", "", "claude-opus-4-5-2025092a", "xclaude-opus-4-5",
	};
	const struct price *p;
	const struct price_entry *t;
	size_t n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = price_default(cases[i].name, strlen(cases[i].name));
		if (!p || p->base.input != cases[i].input) {
			fprintf(stderr, "%s\n", cases[i].name);
			fail();
		}
		assert_true(p->web_search_per_1k == 10.0);
	}
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
		if (price_default(none[i], strlen(none[i]))) {
			fprintf(stderr, "%s matched\n", none[i]);
			fail();
		}
	/* the length counts, not a NUL */
	p = price_default("claude-haiku-4-5XYZ", 16);
	assert_non_null(p);
	assert_true(p->base.output == 5);

	p = price_default("claude-sonnet-4", 15);
	assert_int_equal(p->long_threshold, 200000);
	assert_ptr_equal(price_rates_for(p, 200000), &p->base);
	assert_ptr_equal(price_rates_for(p, 200001), &p->long_ctx);
	assert_true(p->long_ctx.input == 6 && p->long_ctx.output == 22.5);
	assert_true(p->long_ctx.cache_write_5m == 7.5 && p->long_ctx.cache_write_1h == 12);
	assert_true(p->long_ctx.cache_read == 0.6);
	p = price_default("claude-opus-4-1", 15);
	assert_true(p->base.cache_write_5m == 18.75 && p->base.cache_write_1h == 30);
	assert_true(p->base.cache_read == 1.5 && p->base.output == 75);
	assert_int_equal(p->long_threshold, 0);
	p = price_default("claude-3-haiku", 14);
	assert_true(p->base.output == 1.25 && p->base.cache_write_5m == 0.3);
	assert_true(p->base.cache_write_1h == 0.5 && p->base.cache_read == 0.03);

	t = price_table(&n);
	assert_int_equal(n, 9);
	for (size_t i = 0; i < n; i++)
		assert_ptr_equal(price_default(t[i].model, strlen(t[i].model)), &t[i].price);
}

static void test_price_config(void **state)
{
	struct realms_config *c = parse(
		"{\n"
		"\"models\": [\"claude-sonnet-4-5-20250929\",\n"
		"  {\"name\": \"claude-opus-4-5\", \"price\": {\"input\": 4, \"output\": 20}},\n"
		"  {\"name\": \"x\", \"price\": {\"input\": 1, \"output\": 2, \"cache_read\": 0,\n"
		"    \"long_context\": {\"input\": 2, \"output\": 4, \"cache_write_1h\": 9}}}\n"
		"]}");
	const struct cfg_model *m;

	if (!c)
		dump();
	assert_non_null(c);
	m = config_model(c, "claude-sonnet-4-5-20250929", 26);
	assert_true(m->has_price && !m->price_from_config);
	assert_true(m->price.base.input == 3);
	m = config_model(c, "claude-opus-4-5", 15);
	assert_true(m->price_from_config);
	assert_true(m->price.base.input == 4);
	assert_true(m->price.base.cache_write_5m == 5);
	assert_true(m->price.web_search_per_1k == 10);
	assert_ptr_equal(config_price(c, "claude-opus-4-5", 15), &m->price);
	m = config_model(c, "x", 1);
	assert_true(m->price.base.cache_read == 0);
	assert_int_equal(m->price.long_threshold, 200000);
	assert_true(m->price.long_ctx.cache_write_1h == 9);
	assert_true(m->price.long_ctx.cache_write_5m == 2.5);
	/* a pass-through model not in the catalogue: the default table */
	assert_true(config_price(c, "claude-3-5-haiku-latest", 23)->base.input == 0.8);
	assert_null(config_price(c, "gpt-4o", 6));
	config_unref(c);

	assert_null(parse(
		"{\"models\": [\n"
		"{\"name\": \"a\", \"price\": {\"input\": 1}},\n"
		"{\"name\": \"b\", \"price\": {\"input\": -1, \"output\": 1}},\n"
		"{\"name\": \"c\", \"price\": {\"input\": 1, \"output\": 1e9}},\n"
		"{\"name\": \"d\", \"price\": {\"input\": 1, \"output\": \"2\", \"long_context\": "
		"{\"output\": 1, \"threshold\": 0}}}\n"
		"]}"));
	expect_error("models[0].price", 2, "missing required key \"output\"");
	expect_error("models[1].price.input", 3, "must be a number from 0 to 100000");
	expect_error("models[2].price.output", 4, "must be a number from 0 to 100000");
	expect_error("models[3].price.output", 5, "must be a number, not a string");
	expect_error("models[3].price.long_context", 5, "missing required key \"input\"");
	expect_error("models[3].price.long_context.threshold", 5, "must be an integer from 1");
}

static void test_nusd(void **state)
{
	assert_int_equal(price_nusd_per_mtok(0.3), 300000000ull);
	assert_int_equal(price_nusd_per_mtok(0.08), 80000000ull);
	assert_int_equal(price_nusd_per_mtok(3.75), 3750000000ull);
	assert_int_equal(price_nusd_per_mtok(22.5), 22500000000ull);
	assert_int_equal(price_nusd_per_mtok(0.03), 30000000ull);
	assert_int_equal(price_nusd_per_mtok(18.75), 18750000000ull);
	assert_int_equal(price_nusd_per_mtok(0.000000001), 1ull);
	assert_int_equal(price_nusd_per_mtok(12345.123456789), 12345123456789ull);
	assert_int_equal(price_nusd_per_mtok(0), 0);
	assert_int_equal(price_nusd_per_mtok(-1), 0);
	assert_int_equal(price_nusd_per_mtok(NAN), 0);
	assert_int_equal(price_nusd_per_mtok(1e300), 100000000000000ull);
	/* 0.1 + 0.2 is 0.30000000000000004 in binary: still 0.3 USD */
	assert_int_equal(price_nusd_per_mtok(0.1 + 0.2), 300000000ull);
}

/* ---- lifetime, lookups, scale, printing ------------------------------- */

static void test_refcount(void **state)
{
	struct realms_config *c = load("minimal.json"), *c2;

	assert_non_null(c);
	assert_int_equal(atomic_load(&c->refs), 1);
	config_ref(c);
	config_ref(c);
	config_unref(c);
	config_unref(c);
	/* still ours: reading it is fine (ASan would see a use after free) */
	assert_string_equal(c->channels[0].creds[0].key, "sk-ant-fixture-inline-0001");
	c2 = load("minimal.json");
	assert_true(c2->generation > c->generation);
	config_unref(c);
	config_unref(c2);
	config_unref(NULL);
}

/* The SHA-256 of the file's bytes, BOM included, as sha256sum prints it:
 * what the admin listener shows and `realmsctl apply` compares. */
static void test_sha256(void **state)
{
	static const char json[] = "{\"models\": []}";
	static const char bom[] = "\xef\xbb\xbf{\"models\": []}";
	struct realms_config *c = parse(json), *b;

	assert_non_null(c);
	/* printf '{"models": []}' | sha256sum */
	assert_string_equal(c->sha256,
	                    "96bf1f74db13c5f18f70b523611510113af8d0bfba815584dc6aef505eb0ff06");
	cfg_diag_free(&D);
	cfg_diag_init(&D);
	b = config_parse(bom, strlen(bom), "t.json", &D);
	assert_non_null(b);
	assert_int_equal(strlen(b->sha256), 64);
	assert_string_not_equal(b->sha256, c->sha256);
	config_unref(c);
	config_unref(b);
}

static void test_load_errors(void **state)
{
	char *text;

	cfg_diag_free(&D);
	cfg_diag_init(&D);
	assert_null(config_load("/nonexistent/realms.json", &D));
	assert_int_equal(cfg_diag_errors(&D), 1);
	text = diag_text(&D);
	assert_string_equal(text, "/nonexistent/realms.json: error: cannot open: "
	                          "No such file or directory\n");
	free(text);
	assert_null(config_load("/", &D));
	expect_error("", 0, "not a regular file");
	/* no diag at all */
	assert_null(config_load("/nonexistent/realms.json", NULL));
	assert_null(config_parse("{", 1, NULL, NULL));
}

static void test_print_format(void **state)
{
	char *text;

	assert_null(parse("{\n\"models\": [\"in-house\"],\n\"agent\": {\"threads\": 0}\n}"));
	text = diag_text(&D);
	assert_string_equal(text,
		"t.json:1: warning: channels: no channel is defined: every request will be refused\n"
		"t.json:2: warning: models[0]: model \"in-house\" is unavailable: no enabled "
		"channel with an enabled credential binds it\n"
		"t.json:2: warning: models[0]: no price for model \"in-house\": usage will be "
		"recorded at cost 0 (add a \"price\")\n"
		"t.json:3: error: agent.threads: must be an integer from 1 to 64\n");
	free(text);
}

static void test_problem_cap(void **state)
{
	size_t n = 600, len = 0;
	char *json = malloc(n * 8 + 64);

	len += (size_t)sprintf(json, "{\"groups\": [");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(json + len, "%s\"a b\"", i ? "," : "");
	strcpy(json + len, "]}");
	assert_null(parse(json));
	assert_int_equal(D.errors, 600);
	assert_int_equal(D.n, CFG_MAX_PROBLEMS);
	assert_int_equal(D.dropped, (size_t)(D.errors + D.warnings) - CFG_MAX_PROBLEMS);
	free(json);
}

static void test_big_config(void **state)
{
	size_t cap = 4u << 20, len = 0;
	char *json = malloc(cap);
	struct timespec t0, t1;
	struct realms_config *c;
	double secs;
	char name[64];

	assert_non_null(json);
	len += (size_t)snprintf(json + len, cap - len, "{\"groups\": [\"default\"");
	for (int g = 0; g < 20; g++)
		len += (size_t)snprintf(json + len, cap - len, ", \"g%d\"", g);
	len += (size_t)snprintf(json + len, cap - len, "], \"models\": [");
	for (int m = 0; m < 50; m++)
		len += (size_t)snprintf(json + len, cap - len, "%s{\"name\": \"model-%d\", "
		                        "\"price\": {\"input\": 1, \"output\": 2}}", m ? "," : "", m);
	len += (size_t)snprintf(json + len, cap - len, "], \"channels\": [\n");
	for (int i = 0; i < 1000; i++) {
		len += (size_t)snprintf(json + len, cap - len,
			"%s{\"name\": \"ch-%d\", \"base_url\": \"https://up%d.example.com:8443\", "
			"\"priority\": %d, \"weight\": %d, \"groups\": [\"default\", \"g%d\"], "
			"\"credentials\": [{\"name\": \"k1\", \"key\": \"sk-%d-1\"}, "
			"{\"name\": \"k2\", \"key\": \"sk-%d-2\"}, {\"name\": \"k3\", \"key\": \"sk-%d-3\"}], "
			"\"models\": {\"model-%d\": \"up-%d\", \"model-%d\": \"up-%d\", \"model-%d\": \"x\"}}\n",
			i ? "," : "", i, i, i % 3, 1 + i % 5, i % 20, i, i, i,
			i % 50, i, (i + 1) % 50, i, (i + 2) % 50);
	}
	len += (size_t)snprintf(json + len, cap - len, "]}");
	assert_true(len < cap - 1);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	c = config_parse(json, len, "big.json", &D);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (!c)
		dump();
	assert_non_null(c);
	assert_int_equal(D.errors, 0);
	assert_int_equal(D.warnings, 0);
	assert_int_equal(c->n_channels, 1000);
	assert_int_equal(c->n_creds, 3000);
	/* Generous: sanitizers are on. */
	assert_true(secs < 1.0);

	for (int i = 0; i < 1000; i++) {
		const struct cfg_cred *cr;
		const struct cfg_binding *b;

		snprintf(name, sizeof(name), "ch-%d--k%d", i, 1 + i % 3);
		cr = config_cred_by_server(c, name, strlen(name));
		assert_non_null(cr);
		assert_int_equal(cr->id, i * 3 + i % 3);
		assert_ptr_equal(c->creds[cr->id], cr);
		snprintf(name, sizeof(name), "model-%d", (i + 1) % 50);
		b = cfg_channel_binding(cr->channel, name, strlen(name));
		assert_non_null(b);
		assert_true(cfg_channel_in_group(cr->channel, 1 + i % 20));
	}
	for (size_t m = 0; m < c->n_models; m++) {
		assert_int_equal(c->models[m].n_routes, 60);
		for (size_t r = 1; r < c->models[m].n_routes; r++)
			assert_true(c->models[m].routes[r - 1].channel->id <
			            c->models[m].routes[r].channel->id);
	}
	config_unref(c);
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_minimal_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_team_example, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_json_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_json_cases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_prefixes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bom_and_comments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_in_string, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_refs_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base_url_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base_url_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_auth_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_limits_and_timezone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_warnings_fixture, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wildcard_warnings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_secret, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_secret, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_secret_relative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_never_printed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redis_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redis_auth_argv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redis_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exposed_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_price_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_price_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nusd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refcount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sha256, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_print_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_problem_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_config, setup, teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}

/*
 * For unit tests: a configuration written in C strings with ' for ", so
 * that it stays readable, parsed by the agent's own loader. Include after
 * <cmocka.h> and <realms/config.h>; a configuration the loader refuses
 * prints its problems and fails the test.
 */
#ifndef REALMS_TEST_CFG_SQ_H
#define REALMS_TEST_CFG_SQ_H

static struct realms_config *cfg_sq_parse(const char *sq)
{
	size_t n = strlen(sq);
	char *json = malloc(n + 1);
	struct realms_config *c;
	struct cfg_diag d;

	assert_non_null(json);
	for (size_t i = 0; i <= n; i++)
		json[i] = sq[i] == '\'' ? '"' : sq[i];
	cfg_diag_init(&d);
	c = config_parse(json, n, "t.json", &d);
	if (!c)
		cfg_diag_print(&d, stderr);
	cfg_diag_free(&d);
	free(json);
	assert_non_null(c);
	return c;
}

#endif /* REALMS_TEST_CFG_SQ_H */

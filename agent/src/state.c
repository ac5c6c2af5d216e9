/*
 * The configuration in force. A mutex guards "read the pointer and take a
 * reference" against a concurrent swap; it is held for a few instructions.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include <realms/config.h>
#include <realms/health.h>
#include <realms/netaddr.h>
#include <realms/state.h>

static struct realms_config *current;
static struct netaddr redis_env;
static int have_redis_env;
static pthread_mutex_t slock = PTHREAD_MUTEX_INITIALIZER;

struct realms_config *state_config(void)
{
	struct realms_config *c;

	pthread_mutex_lock(&slock);
	c = current;
	if (c)
		config_ref(c);
	pthread_mutex_unlock(&slock);
	return c;
}

int state_install(struct realms_config *c)
{
	struct realms_config *old;

	health_sync(c);
	pthread_mutex_lock(&slock);
	old = current;
	current = c;
	pthread_mutex_unlock(&slock);
	config_unref(old);
	return 0;
}

void state_release(void)
{
	struct realms_config *old;

	pthread_mutex_lock(&slock);
	old = current;
	current = NULL;
	pthread_mutex_unlock(&slock);
	config_unref(old);
}

int state_redis_init(char *err, size_t errlen)
{
	const char *s = getenv("REALMS_REDIS");

	if (!s || !*s)
		return 0;
	if (netaddr_parse(s, &redis_env, err, errlen) < 0)
		return -1;
	have_redis_env = 1;
	return 0;
}

const struct netaddr *state_redis(const struct realms_config *c)
{
	return have_redis_env ? &redis_env : &c->redis.addr;
}

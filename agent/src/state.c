/*
 * The configuration in force. A mutex guards "read the pointer and take a
 * reference" against a concurrent swap; it is held for a few instructions.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#include <realms/config.h>
#include <realms/health.h>
#include <realms/state.h>

static struct realms_config *current;
/* The Redis endpoint, fixed at start (state_redis_init). */
static struct cfg_redis redis_ep;
static int have_redis_ep;
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
	config_redis_release(&redis_ep);
	have_redis_ep = 0;
}

int state_redis_init(const struct realms_config *c, struct cfg_diag *diag)
{
	config_redis_release(&redis_ep);
	have_redis_ep = config_redis_env(c, &redis_ep, diag) == 0;
	return have_redis_ep ? 0 : -1;
}

const struct cfg_redis *state_redis(const struct realms_config *c)
{
	return have_redis_ep ? &redis_ep : &c->redis;
}

/*
 * Configuration: one JSON file (jsmn) into an immutable, reference-counted
 * struct realms_config, with every problem reported by JSON path and line.
 * The format is described in docs/configuration.md.
 */
#ifndef REALMS_CONFIG_H
#define REALMS_CONFIG_H

#include <stdio.h>
#include <string.h>

#include <realms/config-t.h>

/* ---- Loading -------------------------------------------------------- */

/* Reads and parses the file at `path`. Relative "file:" secrets are read
 * from the file's directory. Returns a config holding one reference, or
 * NULL if there was any error. Every problem (errors and warnings) is
 * appended to diag, which may be NULL. */
struct realms_config *config_load(const char *path, struct cfg_diag *diag);

/* Same over `len` bytes of JSON in memory (not modified, need not be
 * NUL-terminated; the caller keeps it, and should wipe it if it held
 * inline keys). `origin` names the source in messages (NULL: "config").
 * Relative "file:" secrets are read from the working directory. */
struct realms_config *config_parse(const char *json, size_t len,
                                   const char *origin, struct cfg_diag *diag);

/* Takes one more reference. Thread-safe. */
void config_ref(struct realms_config *c);

/* Drops one reference; the last one scrubs the secrets and frees it all.
 * Thread-safe; NULL is ignored. */
void config_unref(struct realms_config *c);

/* ---- Redis ----------------------------------------------------------- */

/* The variables that override the configuration's "redis", read by the
 * agent and realmsctl alike (config_redis_env). */
#define ENV_REDIS               "REALMS_REDIS"
#define ENV_REDIS_USER          "REALMS_REDIS_USER"
#define ENV_REDIS_PASSWORD_FILE "REALMS_REDIS_PASSWORD_FILE"
#define ENV_REDIS_PASSWORD      "REALMS_REDIS_PASSWORD"

/* The Redis endpoint a program uses: c's "redis" (c may be NULL: the
 * default address, no AUTH), each part replaced by the environment when it
 * is set and not empty:
 *   REALMS_REDIS                the address
 *   REALMS_REDIS_USER           the ACL user
 *   REALMS_REDIS_PASSWORD_FILE  the password, read from that file as a
 *                               "file:" secret is (relative to the working
 *                               directory)
 *   REALMS_REDIS_PASSWORD       the password itself (one of the two only)
 * A user without a password is an error. Fills *out with copies it owns:
 * config_redis_release() wipes the password and frees them. Problems go to
 * diag (which may be NULL), the variable's name as their origin, never a
 * value. Returns 0, or -1 on any error (out is then empty). */
int config_redis_env(const struct realms_config *c, struct cfg_redis *out,
                     struct cfg_diag *diag);

/* A deep copy of src into dst, for a holder that outlives src's config.
 * Returns 0, or -1 when out of memory (dst is then empty). */
int config_redis_copy(struct cfg_redis *dst, const struct cfg_redis *src);

/* Wipes the password of a copy made by config_redis_env/_copy and frees
 * its strings; r is left empty. NULL is ignored. */
void config_redis_release(struct cfg_redis *r);

/* The command that logs in as r says: "AUTH user password", or "AUTH
 * password" without a user (requirepass: the "default" user). Fills argv
 * and len (3 slots, pointing into r) and returns the argument count, or 0
 * when r has no password (no AUTH is sent). */
static inline int cfg_redis_auth_argv(const struct cfg_redis *r, const char *argv[3],
                                      size_t len[3])
{
	int n = 0;

	if (!r->password)
		return 0;
	argv[n] = "AUTH";
	len[n++] = 4;
	if (r->user) {
		argv[n] = r->user;
		len[n++] = strlen(r->user);
	}
	argv[n] = r->password;
	len[n++] = r->password_len;
	return n;
}

/* ---- Lookups (per request: binary searches, no allocation) ---------- */

/* The model named `name` (len bytes), or NULL. */
const struct cfg_model *config_model(const struct realms_config *c,
                                     const char *name, size_t len);

/* The channel named `name`, or NULL. */
const struct cfg_channel *config_channel(const struct realms_config *c,
                                         const char *name, size_t len);

/* The credential whose HAProxy server name is `server`, or NULL. */
const struct cfg_cred *config_cred_by_server(const struct realms_config *c,
                                             const char *server, size_t len);

/* The channel's binding for `model`: the exact one, else its "*" binding
 * when it has one in effect (has_wildcard), else NULL. */
const struct cfg_binding *cfg_channel_binding(const struct cfg_channel *ch,
                                              const char *model, size_t len);

/* Index of group `name` in c->groups, or -1. */
int config_group_index(const struct realms_config *c, const char *name,
                       size_t len);

/* Whether the channel is open to group g (an index from
 * config_group_index; a negative g is never a member). */
static inline bool cfg_channel_in_group(const struct cfg_channel *ch, int g)
{
	return g >= 0 && (ch->group_bits[g / 64] >> (g % 64)) & 1;
}

/* Whether `s` (n bytes) may name a model: 1 to INSPECT_MODEL_MAX bytes of
 * [A-Za-z0-9._@/+[]-]. Configured names obey it; a client's name for a
 * passed-through model must too (it travels in HTTP headers and keys). */
int cfg_model_name_ok(const char *s, size_t n);

/* The price of `model` for billing: the model's own (file or defaults) if
 * it is in the catalogue, else the default table's (a passed-through
 * unknown model), else NULL (cost 0). */
const struct price *config_price(const struct realms_config *c,
                                 const char *model, size_t len);

/* ---- Diagnostics ---------------------------------------------------- */

void cfg_diag_init(struct cfg_diag *d);
void cfg_diag_free(struct cfg_diag *d);

/* Number of errors (not warnings) collected. */
int cfg_diag_errors(const struct cfg_diag *d);

/* Appends a problem (for callers that check more, e.g. listeners).
 * origin and path may be NULL; line 0 means "no line". */
void cfg_diag_add(struct cfg_diag *d, enum cfg_severity sev,
                  const char *origin, unsigned line, const char *path,
                  const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* One line per problem: "FILE:LINE: error: PATH: message" (": LINE" and
 * "PATH: " are left out when unknown), then a count of dropped ones. */
void cfg_diag_print(const struct cfg_diag *d, FILE *f);

/* The same lines for the warnings about secrets other users can read
 * (cfg_problem.exposed) only. */
void cfg_diag_print_exposed(const struct cfg_diag *d, FILE *f);

#endif /* REALMS_CONFIG_H */

/*
 * Configuration types: one JSON file parsed into immutable structs.
 *
 * A struct realms_config never changes after config_parse() returns it. A
 * reload builds a new one and swaps the pointer; requests in flight keep the
 * one they started with through its reference count. Every string and array
 * below belongs to the config and lives exactly as long as it.
 */
#ifndef REALMS_CONFIG_T_H
#define REALMS_CONFIG_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <realms/budget-t.h>
#include <realms/netaddr.h>
#include <realms/prices.h>

/* ---------------------------------------------------------------------- */
/* Diagnostics                                                            */
/* ---------------------------------------------------------------------- */

enum cfg_severity {
	CFG_ERROR = 0,          /* the file is refused */
	CFG_WARNING,            /* the file loads; something is likely wrong */
};

/* One problem. Messages never hold a secret value. */
struct cfg_problem {
	enum cfg_severity severity;
	unsigned line;          /* 1-based; 0 when not tied to a place (I/O) */
	char *origin;           /* file name, or the label given to config_parse */
	char *path;             /* JSON path ("channels[1].credentials[0].key"),
	                           "" for the file as a whole */
	char *msg;
	bool exposed;           /* a warning about secrets other users can read:
	                           the one kind realmsctl prints on success */
};

/* Problems collected by config_load/config_parse, in file order per parse.
 * Zero-initialised (or cfg_diag_init) before use; cfg_diag_free after. */
struct cfg_diag {
	struct cfg_problem *items;  /* kept problems, CFG_MAX_PROBLEMS at most */
	size_t n, cap;
	int errors;                 /* every problem counts, kept or not */
	int warnings;
	size_t dropped;             /* counted but not kept */
};

/* ---------------------------------------------------------------------- */
/* Configuration                                                          */
/* ---------------------------------------------------------------------- */

struct cfg_channel;
struct cfg_binding;

/* A channel that can serve a model (through an exact or "*" binding). */
struct cfg_route {
	const struct cfg_channel *channel;
	const struct cfg_binding *binding;
};

/* A model of the catalogue, as clients name it. */
struct cfg_model {
	const char *name;
	size_t name_len;
	int id;                     /* 0..n_models-1, file order */
	unsigned line;              /* where it is defined, for messages */
	bool enabled;
	bool has_price;             /* price is valid (from the file or defaults) */
	bool price_from_config;     /* it came from the file's "price" */
	struct price price;         /* all zero when !has_price */
	/* Every channel that binds this model, exactly or through "*" (when
	 * agent.allow_unknown_models is on), in file order, enabled or not:
	 * callers skip disabled channels, weight 0 and disabled credentials. */
	const struct cfg_route *routes;
	size_t n_routes;
};

/* A channel's name for a model. */
struct cfg_binding {
	const char *model;          /* public name; "*" for the wildcard */
	size_t model_len;
	const char *upstream;       /* name this channel's upstream uses; NULL
	                               for the wildcard: send the client's name */
	size_t upstream_len;
	const struct cfg_model *m;  /* NULL for the wildcard */
	const struct cfg_channel *channel;
	bool rewrite;               /* upstream differs: the body's "model" must
	                               be rewritten */
	unsigned line;
};

/* One upstream key of a channel. */
struct cfg_cred {
	const char *name;
	const char *key;            /* the secret, resolved; never log it */
	size_t key_len;
	const char *server;         /* HAProxy server name "<channel>--<name>" */
	size_t server_len;
	int id;                     /* 0..n_creds-1 over the whole config, in
	                               file order: index per-credential arrays */
	bool enabled;
	const struct cfg_channel *channel;
	unsigned line;
};

/* How the relay gives a channel's upstream its key. */
enum cfg_auth {
	CFG_AUTH_BOTH = 0,          /* x-api-key and Authorization: Bearer */
	CFG_AUTH_X_API_KEY,
	CFG_AUTH_BEARER,
};

/* An extra header a channel's upstream gets on every request, in place
 * of any client header of that name. */
struct cfg_header {
	const char *name;           /* an HTTP field name, as written */
	const char *value;          /* resolved; may be a secret: never log it */
	size_t value_len;
};

/* An upstream provider endpoint with its keys and model names. */
struct cfg_channel {
	const char *name;
	int id;                     /* 0..n_channels-1, file order */
	unsigned line;

	const char *base_url;       /* normalised: "scheme://authority[/prefix]" */
	const char *path_prefix;    /* "" or "/prefix": requests' paths follow it */
	const char *scheme;         /* "https" or "http" */
	const char *host;           /* lowercase; IPv6 without brackets */
	const char *authority;      /* Host header / SNI form: host or [v6],
	                               ":port" only when not the default */
	int port;                   /* explicit, else 443 (https) or 80 (http) */
	bool tls;                   /* scheme is https */
	bool ipv6;                  /* host is an IPv6 literal */

	enum cfg_auth auth;
	struct cfg_header *headers; /* at most CFG_MAX_HEADERS */
	size_t n_headers;

	int priority;               /* a larger number is preferred */
	int weight;                 /* share within its priority; 0 = drained */
	bool enabled;

	const int *groups;          /* indexes into realms_config.groups */
	size_t n_groups;
	const uint64_t *group_bits; /* bit g set: member of group g */

	struct cfg_cred *creds;
	size_t n_creds;

	struct cfg_binding *bindings;   /* exact bindings, sorted by model */
	size_t n_bindings;
	bool has_wildcard;              /* binds "*" and unknown models are on */
	const struct cfg_binding *wildcard;  /* that binding, else NULL */
};

/* The daemon's own settings (the "agent" object). */
struct cfg_agent {
	const char **listen;        /* SPOP listeners as written */
	struct netaddr *listen_addr;
	size_t n_listen;            /* 0: none in the file */
	const char *mirror;         /* response mirror listener, or NULL */
	struct netaddr mirror_addr;
	const char *admin;          /* /metrics and /healthz, or NULL */
	struct netaddr admin_addr;
	const char *admin_token;    /* the dashboard's credential, resolved, or
	                               NULL: dashboard and admin API off. Never
	                               log it. */
	size_t admin_token_len;
	const char *spool;          /* directory of the usage spool, or NULL
	                               (then the agent's -s, else a default) */
	int threads;
	size_t body_prefix;         /* bytes of body HAProxy sends */
	uint64_t max_body;          /* largest request body accepted (bytes) */
	int record_wait_ms;         /* longest a usage record waits to share
	                               its Redis call (commit.c) */
	bool allow_unknown_models;
	bool allow_tcp;             /* TCP listeners (loopback only) permitted */
	bool metrics_tokens;        /* per-token series on /metrics (umetrics.h) */
	const char **peers;         /* users allowed on the unix listeners: names
	                               or decimal uids; NULL: the defaults */
	size_t n_peers;
};

/* Failover and credential breakers ("failover" in the file). */
struct cfg_failover {
	int attempts;               /* tries per request, first one included */
	int failures;               /* consecutive failures that open a breaker */
	int cooldown_s;             /* how long an open breaker stays open */
	int timeout_s;              /* upstream silence that ends an attempt */
	int max_body;               /* largest body retried within the request
	                             * (through the relay); 0: none */
	int avoid_s;                /* a failed credential is passed over this
	                               long by the next choices; 0: never */
};

/* Where Redis is and how to log in to it: the file's "redis", or that with
 * the environment's overrides (config_redis_env). */
struct cfg_redis {
	const char *address;        /* as written, or the default; for messages */
	struct netaddr addr;
	const char *user;           /* ACL user ("AUTH user password"), or NULL:
	                               "AUTH password" (requirepass) */
	const char *password;       /* the secret, resolved; NULL: no AUTH.
	                               Never log it. */
	size_t password_len;
};

struct cfg_arena;

struct realms_config {
	atomic_uint refs;
	uint64_t generation;        /* 1, 2, ... per config parsed in the process */
	const char *origin;         /* file it came from (for logs) */
	/* SHA-256 of the bytes parsed, lowercase hex: what `sha256sum FILE`
	 * prints. The admin listener shows it, so that `realmsctl apply` can
	 * tell the agent took the file it checked. */
	char sha256[65];

	struct cfg_redis redis;

	struct cfg_agent agent;
	struct cfg_failover failover;

	const char **groups;        /* file order; index = group id */
	struct budget_limits *group_limits;   /* per group: its tokens' defaults */
	struct budget_limits *group_totals;   /* per group: shared by its tokens */
	size_t n_groups;

	int tz_min;                 /* "timezone": UTC offset of calendar budgets */

	struct cfg_model *models;   /* file order */
	size_t n_models;

	struct cfg_channel *channels;   /* file order */
	size_t n_channels;

	struct cfg_cred **creds;    /* every credential, creds[i]->id == i */
	size_t n_creds;

	/* Channels serving unknown models (empty unless allow_unknown_models),
	 * file order. */
	const struct cfg_channel **wildcard;
	size_t n_wildcard;

	/* Private: lookup indexes (sorted by name) and the memory. */
	struct cfg_model **model_idx;
	size_t n_model_idx;
	struct cfg_channel **channel_idx;
	size_t n_channel_idx;
	struct cfg_cred **server_idx;
	size_t n_server_idx;
	int *group_idx;
	size_t n_group_idx;
	struct cfg_arena *arena;
};

#endif /* REALMS_CONFIG_T_H */

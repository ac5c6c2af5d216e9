/*
 * Rendering from the agent's configuration, so HAProxy and the agent never
 * disagree: the channel-dependent part of haproxy.cfg, and the Claude Code
 * setup page HAProxy serves at "/".
 */
#ifndef REALMS_RENDER_H
#define REALMS_RENDER_H

#include <stdio.h>

struct realms_config;

/* The CA bundle HTTPS channels verify their upstream with: Debian's
 * (package ca-certificates), as an absolute path. */
#define RENDER_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* The pool backend (the relay as its only server, with the retry settings
 * of "failover") and the upstream backends (one per channel: address, TLS,
 * SNI, Host). Holds no secret. Returns 0, or -1 on a write error. */
int render_haproxy(const struct realms_config *c, FILE *f);

/* A self-contained HTML page (no external assets): what to set in Claude
 * Code, the models offered, how to check. Returns 0 or -1. */
int render_setup_page(const struct realms_config *c, FILE *f);

/* Whether the model is offered at all: enabled, with an enabled channel
 * and credential bound to it. */
int render_model_offered(const struct realms_config *c, size_t model_index);

#endif /* REALMS_RENDER_H */

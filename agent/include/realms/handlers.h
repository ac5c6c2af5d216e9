/*
 * The SPOE message handlers of realms-agent. Each module registers its
 * handlers by name with spoa_register() at start-up.
 */
#ifndef REALMS_HANDLERS_H
#define REALMS_HANDLERS_H

/* "realms-inspect": body inspection alone (args body, body_len); sets
 * txn.<prefix>.body_status, model, model_state, model_off, model_len,
 * stream, stream_state. Used by operators to debug their SPOE setup and by
 * the foundation's integration test. */
int hdl_inspect_register(void);

/* "realms-request" (the verdict: auth, route, model, channel) and
 * "realms-attempt" (upstream backend, key and model rewrite for the
 * credential HAProxy picked). Needs the configuration installed first
 * (state_install) and registers a per-worker module (Redis clients). */
int hdl_request_register(void);

#endif /* REALMS_HANDLERS_H */

#!/usr/bin/env bash
# The gate (test_gate.sh) on the path most requests take: straight from
# fe_realms to the channel's backend, no relay, no retry within the
# request (failover.max_body 0, the default).
GATE_DIRECT=1
. "$(dirname "$0")/test_gate.sh"

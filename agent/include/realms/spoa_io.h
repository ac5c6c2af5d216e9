/*
 * The socket side of SPOP connections: reads and writes, flow control and
 * time limits around the protocol layer (spoa.h), on the worker threads.
 */
#ifndef REALMS_SPOA_IO_H
#define REALMS_SPOA_IO_H

#include <stdint.h>

/* Registers the SPOP connection kind and its per-worker list with the
 * worker layer; connections accept frames up to max_frame bytes (the
 * AGENT-HELLO announces min(this, HAProxy's)). Before the workers start.
 * Returns 0, or -1 if the worker layer is full. */
int spoa_io_init(uint32_t max_frame);

#endif /* REALMS_SPOA_IO_H */

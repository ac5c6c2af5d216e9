/*
 * The agent's clocks: the only places it reads the time. Callers take the
 * time once and pass it down, so the pure layers (health, token cache,
 * verdict) get it as an argument and tests choose it.
 */
#ifndef REALMS_CLOCK_H
#define REALMS_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and durations, never
 * shown to anyone (its origin is arbitrary). */
uint64_t clock_mono_ms(void);

/* Seconds since the epoch: for expiry dates that come from outside. */
int64_t clock_unix_s(void);

#endif /* REALMS_CLOCK_H */

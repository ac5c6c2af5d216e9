/*
 * The agent's clocks: the only places it reads time. Monotonic milliseconds
 * for durations and deadlines, unix seconds for what is compared with the
 * wall clock (token expiry). Pure modules take time as an argument.
 */
#ifndef REALMS_CLOCK_H
#define REALMS_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ms(void);
int64_t clock_unix_s(void);

#endif /* REALMS_CLOCK_H */

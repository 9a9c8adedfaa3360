/*  =========================================================================
    pl_time - the protocol's times, for plugins (part of the plugin kit)

    PROTOCOL.md: times are UTC, ISO 8601 with milliseconds
    ("2026-11-25T02:45:51.123Z"); on the internal wire (proto/STORE.md) they
    are int64 milliseconds since the Unix epoch. Depends on nothing but libc.
    =========================================================================
*/

#ifndef PL_TIME_H_INCLUDED
#define PL_TIME_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Room for one ISO 8601 time with milliseconds and its terminating NUL
#define PL_TIME_ISO8601_SIZE 32

//  Milliseconds since the Unix epoch, from the wall clock
int64_t
    pl_time_now (void);

//  Milliseconds from an arbitrary start that never goes back (for timeouts)
int64_t
    pl_time_mono (void);

//  Writes ms as "2026-11-25T02:45:51.123Z" into text (at least
//  PL_TIME_ISO8601_SIZE bytes). Returns 0, or -1 if ms is out of the years
//  0000 to 9999 (text is then empty).
int
    pl_time_iso8601 (int64_t ms, char *text, size_t size);

//  The length pl_time_iso8601 writes for ms (0 when out of its years), with
//  no formatting: for measuring a reply before it is packed
size_t
    pl_time_iso8601_length (int64_t ms);

#ifdef __cplusplus
}
#endif

#endif

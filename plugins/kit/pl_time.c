/*  =========================================================================
    pl_time - the protocol's times, for the broker, the gateway and plugins
    =========================================================================
*/

#define _POSIX_C_SOURCE 200809L
#include "pl_time.h"
#include <stdbool.h>
#include <string.h>

#include <stdio.h>
#include <time.h>

static int64_t
s_clock (clockid_t clock)
{
    struct timespec now;
    clock_gettime (clock, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t
pl_time_now (void)
{
    return s_clock (CLOCK_REALTIME);
}

int64_t
pl_time_mono (void)
{
    return s_clock (CLOCK_MONOTONIC);
}

//  Years 0000 to 9999 only: four digits is what ISO 8601 promises readers
static bool
s_iso8601_in_range (int64_t ms)
{
    return ms >= -INT64_C (62167219200000) && ms <= INT64_C (253402300799999);
}

size_t
pl_time_iso8601_length (int64_t ms)
{
    return s_iso8601_in_range (ms)? strlen ("0000-00-00T00:00:00.000Z"): 0;
}

int
pl_time_iso8601 (int64_t ms, char *text, size_t size)
{
    if (size == 0)
        return -1;
    text [0] = 0;
    if (!s_iso8601_in_range (ms) || size < PL_TIME_ISO8601_SIZE)
        return -1;
    int64_t seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    unsigned millis = (unsigned) (ms - seconds * 1000);
    time_t whole = (time_t) seconds;
    struct tm parts;
    if (!gmtime_r (&whole, &parts))
        return -1;
    //  Unsigned and reduced so the compiler can see every field fits
    snprintf (text, size, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
              (unsigned) (parts.tm_year + 1900) % 10000u, (unsigned) (parts.tm_mon + 1) % 100u,
              (unsigned) parts.tm_mday % 100u, (unsigned) parts.tm_hour % 100u,
              (unsigned) parts.tm_min % 100u, (unsigned) parts.tm_sec % 100u, millis % 1000u);
    return 0;
}

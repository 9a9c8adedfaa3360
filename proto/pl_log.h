/*  =========================================================================
    pl_log - the one place that writes a process's log lines

    Two formats, chosen once at start (--log-format): "text", czmq's own
    line ("I: 26-12-05 10:39:14 rooms: joined"), as Parley always wrote it;
    or "json", one JSON object per line on stdout for log shippers:
    {"time":"2026-12-05T10:39:14.123Z","level":"info","program":"parley",
     "plugin":"rooms@host:12:1","message":"joined"}.

    Every zsys_info/warning/error/debug call in the process is routed here
    in json (czmq's log stream becomes a stream of this class), so no call
    site changes; code that knows more (the plugin host knows which plugin
    speaks) calls pl_log_write with that field.

    Process-wide state, set before any thread starts; writing is thread-safe.
    =========================================================================
*/

#ifndef PL_LOG_H_INCLUDED
#define PL_LOG_H_INCLUDED

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Chooses the format, "text" or "json", for the program named (the
//  "program" field of json lines). Call once, before threads start.
//  Returns 0, or -1 for an unknown format (nothing changes).
int
    pl_log_setup (const char *program, const char *format);

//  True once pl_log_setup chose json
bool
    pl_log_json (void);

//  Writes one log line at level 'E' (error), 'W' (warning), 'I' (info) or
//  'D' (debug). source, when not NULL, is the part that speaks, under the
//  json field named field: text writes "source: message" as before.
void
    pl_log_write (char level, const char *field, const char *source,
                  const char *format, ...) __attribute__ ((format (printf, 4, 5)));

//  The line a program prints once it serves ("parley: listening on ..."),
//  which scripts and tests wait for: on stdout as it always was in text,
//  an info line in json
void
    pl_log_announce (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif

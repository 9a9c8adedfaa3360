/*  =========================================================================
    pl_log - the one place that writes a process's log lines

    In text, czmq writes the lines as it always did. In json, czmq's log
    stream is a stdio stream of our own (fopencookie) that gathers each of
    its lines and writes it again as a JSON object, so every zsys_* call in
    the process, plugins' included, comes out in the one format.
    =========================================================================
*/

#define _GNU_SOURCE
#include "pl_log.h"

#include <czmq.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

//  Longest message kept whole in a json line; the rest is cut (a log line
//  that long is a bug's dump, not something a shipper should carry)
#define S_MESSAGE_MAX 4096

static bool s_json = false;
static const char *s_program = "parley";        //  borrowed, from main
static pthread_mutex_t s_mutex = PTHREAD_MUTEX_INITIALIZER;
//  czmq's current line, until its newline (written under stdio's own lock)
static char s_pending [S_MESSAGE_MAX + 64];
static size_t s_pending_size = 0;

//  Appends text to out as the inside of a JSON string; returns the new used
static size_t
s_escape (char *out, size_t size, size_t used, const char *text)
{
    for (const unsigned char *next = (const unsigned char *) text; *next; next++) {
        if (used + 8 >= size)
            break;
        if (*next == '"' || *next == '\\') {
            out [used++] = '\\';
            out [used++] = (char) *next;
        }
        else
        if (*next < 0x20)
            used += (size_t) snprintf (out + used, size - used, "\\u%04x", *next);
        else
            out [used++] = (char) *next;
    }
    out [used] = 0;
    return used;
}

static const char *
s_level_name (char level)
{
    switch (level) {
        case 'E': return "error";
        case 'W': return "warning";
        case 'I': return "info";
        case 'N': return "notice";
        default:  return "debug";
    }
}

//  Writes one json line on stdout, in one write so lines never interleave
static void
s_json_line (char level, const char *field, const char *source, const char *message)
{
    struct timeval now;
    gettimeofday (&now, NULL);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    char line [S_MESSAGE_MAX * 2 + 512];
    size_t used = strftime (line, sizeof line, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &utc);
    used += (size_t) snprintf (line + used, sizeof line - used,
                               ".%03dZ\",\"level\":\"%s\",\"program\":\"",
                               (int) (now.tv_usec / 1000), s_level_name (level));
    used = s_escape (line, sizeof line, used, s_program);
    if (field && source) {
        used += (size_t) snprintf (line + used, sizeof line - used, "\",\"%s\":\"", field);
        used = s_escape (line, sizeof line, used, source);
    }
    used += (size_t) snprintf (line + used, sizeof line - used, "\",\"message\":\"");
    used = s_escape (line, sizeof line - 4, used, message);
    used += (size_t) snprintf (line + used, sizeof line - used, "\"}\n");
    pthread_mutex_lock (&s_mutex);
    ssize_t written = write (STDOUT_FILENO, line, used);
    (void) written;     //  a log line that cannot be written has nowhere to say so
    pthread_mutex_unlock (&s_mutex);
}

//  One of czmq's lines, "L: YY-MM-DD HH:MM:SS message": its level and message
static void
s_czmq_line (char *text)
{
    char level = 'I';
    int date_length = 0;
    if (text [0] && text [1] == ':' && text [2] == ' ') {
        level = text [0];
        //  The time is ours in json; czmq's is dropped when it is there
        int year, month, day, hour, minute, second;
        if (sscanf (text + 3, "%2d-%2d-%2d %2d:%2d:%2d %n", &year, &month, &day,
                    &hour, &minute, &second, &date_length) == 6 && date_length)
            text += 3 + date_length;
        else
            text += 3;
    }
    s_json_line (level, NULL, NULL, text);
}

//  The stream czmq logs to in json: lines are gathered to their newline
static ssize_t
s_stream_write (void *cookie, const char *data, size_t size)
{
    (void) cookie;
    for (size_t index = 0; index < size; index++) {
        if (data [index] == '\n' || s_pending_size == sizeof s_pending - 1) {
            s_pending [s_pending_size] = 0;
            s_czmq_line (s_pending);
            s_pending_size = 0;
            if (data [index] == '\n')
                continue;
        }
        s_pending [s_pending_size++] = data [index];
    }
    return (ssize_t) size;
}

int
pl_log_setup (const char *program, const char *format)
{
    if (!format || (!streq (format, "text") && !streq (format, "json")))
        return -1;
    s_program = program ? program : s_program;
    s_json = streq (format, "json");
    if (s_json) {
        cookie_io_functions_t functions = { .write = s_stream_write };
        FILE *stream = fopencookie (NULL, "w", functions);
        if (!stream)
            return -1;
        //  Kept for the life of the process: czmq may log until exit
        setvbuf (stream, NULL, _IOLBF, 0);
        zsys_set_logstream (stream);
    }
    return 0;
}

bool
pl_log_json (void)
{
    return s_json;
}

void
pl_log_write (char level, const char *field, const char *source, const char *format, ...)
{
    char message [S_MESSAGE_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    if (s_json) {
        s_json_line (level, field, source, message);
        return;
    }
    const char *prefix = source ? source : "";
    const char *colon = source ? ": " : "";
    switch (level) {
        case 'E': zsys_error ("%s%s%s", prefix, colon, message);   break;
        case 'W': zsys_warning ("%s%s%s", prefix, colon, message); break;
        case 'I': zsys_info ("%s%s%s", prefix, colon, message);    break;
        default:  zsys_debug ("%s%s%s", prefix, colon, message);   break;
    }
}

void
pl_log_announce (const char *format, ...)
{
    char message [S_MESSAGE_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    if (s_json)
        s_json_line ('I', NULL, NULL, message);
    else {
        printf ("%s\n", message);
        fflush (stdout);
    }
}

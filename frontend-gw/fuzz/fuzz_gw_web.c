/*  =========================================================================
    fuzz_gw_web - gw_web_route on arbitrary request paths; whatever it
    serves must be one of the UI's files, inside the web folder
    =========================================================================
*/

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_web.h"

#define VENDOR "node_modules/bootstrap/dist/"

//  A file the allow-list may name: a plain top-level name, or a file of
//  Bootstrap's dist folder; never a way out of the web folder
static bool
s_ends_with (const char *text, const char *suffix)
{
    size_t length = strlen (text), size = strlen (suffix);
    return length >= size && strcmp (text + length - size, suffix) == 0;
}

static bool
s_file_allowed (const char *file)
{
    size_t length = strnlen (file, GW_WEB_FILE_MAX);
    if (length == 0 || length == GW_WEB_FILE_MAX || file [0] == '/' || file [0] == '.'
    ||  strstr (file, "//") || strchr (file, '\\') || strchr (file, '%')
    ||  s_ends_with (file, ".json") || s_ends_with (file, ".md"))
        return false;
    if (strncmp (file, VENDOR, strlen (VENDOR)) == 0)
        return strstr (file, "..") == NULL;
    return strchr (file, '/') == NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  A copy of exactly size bytes, unterminated: reading past it is a bug
    char *path = (char *) malloc (size? size: 1);
    if (!path)
        return 0;
    if (size)
        memcpy (path, data, size);
    char file [GW_WEB_FILE_MAX];
    memset (file, 'x', sizeof file);
    const char *content_type = NULL;
    gw_web_route_t route = gw_web_route (path, size, file, &content_type);
    switch (route) {
        case GW_WEB_FILE:
            if (!content_type || !s_file_allowed (file) || size == 0 || path [0] != '/')
                abort ();
            break;
        case GW_WEB_HEALTHZ:
            if (size != 8 || memcmp (path, "/healthz", 8))
                abort ();
            break;
        case GW_WEB_METRICS:
            if (size != 8 || memcmp (path, "/metrics", 8))
                abort ();
            break;
        case GW_WEB_SOCKET:
            if (size != 3 || memcmp (path, "/ws", 3))
                abort ();
            break;
        case GW_WEB_NOT_FOUND:
            if (content_type || file [0])
                abort ();
            break;
        default:
            abort ();
    }
    free (path);
    return 0;
}

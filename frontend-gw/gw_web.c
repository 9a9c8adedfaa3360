/*  =========================================================================
    gw_web - which file, if any, an HTTP request path is served from

    An allow-list rather than a deny-list: a file dropped into the web folder
    by a build tool or an editor stays private unless it is one of the kinds
    the UI is made of.
    =========================================================================
*/

#include "gw_web.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

//  Longest top-level file name we serve; real ones are a dozen bytes
#define GW_WEB_NAME_MAX     64

typedef struct {
    const char *extension;      //  with its dot
    const char *content_type;
} s_kind_t;

static const s_kind_t s_kinds [] = {
    { ".html",          "text/html; charset=utf-8" },
    { ".js",            "text/javascript; charset=utf-8" },
    { ".mjs",           "text/javascript; charset=utf-8" },
    { ".css",           "text/css; charset=utf-8" },
    { ".svg",           "image/svg+xml" },
    { ".png",           "image/png" },
    { ".ico",           "image/x-icon" },
    { ".webmanifest",   "application/manifest+json" },
    { ".woff2",         "font/woff2" },
    { NULL, NULL }
};

//  The Bootstrap files index.html uses, and their source maps
static const char *s_vendor [] = {
    "css/bootstrap.min.css",
    "css/bootstrap.min.css.map",
    "js/bootstrap.bundle.min.js",
    "js/bootstrap.bundle.min.js.map",
    NULL
};

#define GW_WEB_VENDOR_PREFIX    "/vendor/bootstrap/"
#define GW_WEB_VENDOR_FOLDER    "node_modules/bootstrap/dist/"

static bool
s_equals (const char *path, size_t length, const char *literal)
{
    return strlen (literal) == length && memcmp (path, literal, length) == 0;
}

static bool
s_ends_with (const char *name, size_t length, const char *suffix)
{
    size_t size = strlen (suffix);
    return length >= size && memcmp (name + length - size, suffix, size) == 0;
}

static const char *
s_content_type (const char *name, size_t length)
{
    for (const s_kind_t *kind = s_kinds; kind->extension; kind++)
        if (s_ends_with (name, length, kind->extension))
            return kind->content_type;
    if (s_ends_with (name, length, ".map"))
        return "application/json";
    return NULL;
}

//  A name of letters, digits, '-', '_' and '.', not starting with '.'
static bool
s_plain_name (const char *name, size_t length)
{
    if (length == 0 || length > GW_WEB_NAME_MAX || name [0] == '.')
        return false;
    for (size_t index = 0; index < length; index++) {
        char c = name [index];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!plain)
            return false;
    }
    return true;
}

static gw_web_route_t
s_vendor_route (const char *rest, size_t length, char *file, const char **content_type)
{
    for (const char **entry = s_vendor; *entry; entry++)
        if (s_equals (rest, length, *entry)) {
            snprintf (file, GW_WEB_FILE_MAX, "%s%s", GW_WEB_VENDOR_FOLDER, *entry);
            *content_type = s_content_type (*entry, strlen (*entry));
            return GW_WEB_FILE;
        }
    return GW_WEB_NOT_FOUND;
}

gw_web_route_t
gw_web_route (const char *path, size_t length, char *file, const char **content_type)
{
    file [0] = 0;
    *content_type = NULL;
    if (!path || length == 0 || path [0] != '/')
        return GW_WEB_NOT_FOUND;
    if (s_equals (path, length, "/healthz"))
        return GW_WEB_HEALTHZ;
    if (s_equals (path, length, "/metrics"))
        return GW_WEB_METRICS;
    if (s_equals (path, length, "/ws"))
        return GW_WEB_SOCKET;
    if (s_equals (path, length, "/")) {
        path = "/index.html";
        length = strlen (path);
    }
    size_t prefix = strlen (GW_WEB_VENDOR_PREFIX);
    if (length > prefix && memcmp (path, GW_WEB_VENDOR_PREFIX, prefix) == 0)
        return s_vendor_route (path + prefix, length - prefix, file, content_type);
    const char *name = path + 1;
    size_t name_length = length - 1;
    if (!s_plain_name (name, name_length))
        return GW_WEB_NOT_FOUND;
    for (const s_kind_t *kind = s_kinds; kind->extension; kind++)
        if (s_ends_with (name, name_length, kind->extension)
        &&  name_length > strlen (kind->extension)) {
            memcpy (file, name, name_length);
            file [name_length] = 0;
            *content_type = kind->content_type;
            return GW_WEB_FILE;
        }
    return GW_WEB_NOT_FOUND;
}

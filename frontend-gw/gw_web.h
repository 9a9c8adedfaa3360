/*  =========================================================================
    gw_web - which file, if any, an HTTP request path is served from

    The gateway serves only the web UI's own files, never whatever else lies
    in its folder (package.json, the lock file, README.md, the rest of
    node_modules). The rules are an allow-list, pure and without sockets so
    that they can be fuzzed (fuzz/fuzz_gw_web.c):

      /                        index.html
      /NAME.EXT                a file directly in the web folder, NAME of
                               letters, digits, '-', '_' and '.', not starting
                               with '.', EXT one of html js mjs css svg png
                               ico webmanifest woff2
      /vendor/bootstrap/css/bootstrap.min.css[.map]
      /vendor/bootstrap/js/bootstrap.bundle.min.js[.map]
                               from node_modules/bootstrap/dist/
      /healthz                 the gateway's health
      /metrics                 its counters (the server says to whom)
      /ws                      the client protocol (WebSocket only)

    Everything else is not found.
    =========================================================================
*/

#ifndef GW_WEB_H_INCLUDED
#define GW_WEB_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Longest file path gw_web_route writes, terminator included
#define GW_WEB_FILE_MAX     128

typedef enum {
    GW_WEB_NOT_FOUND = 0,
    GW_WEB_FILE,                //  a file of the UI: file and content type set
    GW_WEB_HEALTHZ,             //  /healthz
    GW_WEB_METRICS,             //  /metrics
    GW_WEB_SOCKET               //  /ws, the WebSocket endpoint
} gw_web_route_t;

//  Maps a request path (without the query; length bytes, need not be
//  terminated, may hold any bytes) to what serves it. For GW_WEB_FILE
//  writes the file's path relative to the web folder into file (at least
//  GW_WEB_FILE_MAX bytes) and points *content_type at a static string.
//  Never reads outside path, never writes more than GW_WEB_FILE_MAX bytes.
gw_web_route_t
    gw_web_route (const char *path, size_t length, char *file, const char **content_type);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    pl_paths - where a program finds the plugins and the web UI it was built with

    Every program (parley, parley-broker, parley-plugin, parley-gw) runs from
    build/bin/, with plugins in build/plugins/ and the web UI in the source
    tree's web/. These helpers find them from the executable's own path, so
    the programs work from any current folder.
    =========================================================================
*/

#ifndef PL_PATHS_H_INCLUDED
#define PL_PATHS_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

//  The path of a plugin given by name or path: a name without '/' (example)
//  becomes <exe dir>/../plugins/example.so; anything else is returned as is.
//  Caller owns return value (free).
char *
    pl_paths_plugin (const char *name_or_path);

//  The web UI folder: the first that has an index.html of <exe dir>/../../web
//  (a build tree in the sources), <exe dir>/../web (an installed tree), the
//  web/ of the sources it was built from; else ./web. Caller owns return
//  value (free).
char *
    pl_paths_web (void);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    pl_paths - where a program finds the plugins and the web UI it was built with
    =========================================================================
*/

#define _GNU_SOURCE
#include "pl_paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  The folder of the running executable, or "." if /proc does not say
static void
s_exe_dir (char *dir, size_t size)
{
    ssize_t length = readlink ("/proc/self/exe", dir, size - 1);
    if (length <= 0) {
        snprintf (dir, size, ".");
        return;
    }
    dir [length] = 0;
    char *slash = strrchr (dir, '/');
    if (slash)
        *slash = 0;
}

char *
pl_paths_plugin (const char *name_or_path)
{
    if (strchr (name_or_path, '/'))
        return strdup (name_or_path);
    char dir [PATH_MAX];
    s_exe_dir (dir, sizeof dir);
    char *path = NULL;
    if (asprintf (&path, "%s/../plugins/%s.so", dir, name_or_path) < 0)
        return NULL;
    return path;
}

//  The folder of candidate/index.html, resolved, if that file is readable
static char *
s_web_folder (const char *candidate)
{
    char *index = NULL;
    if (asprintf (&index, "%s/index.html", candidate) < 0)
        return NULL;
    char *resolved = access (index, R_OK) == 0? realpath (index, NULL): NULL;
    free (index);
    if (resolved)
        *strrchr (resolved, '/') = 0;
    return resolved;
}

char *
pl_paths_web (void)
{
    char dir [PATH_MAX];
    s_exe_dir (dir, sizeof dir);
    //  A build tree inside the sources, an installed tree (bin/ beside web/),
    //  then the sources this binary was built from
    const char *layouts [] = { "%s/../../web", "%s/../web", NULL };
    for (const char **layout = layouts; *layout; layout++) {
        char candidate [PATH_MAX + 16];
        snprintf (candidate, sizeof candidate, *layout, dir);
        char *found = s_web_folder (candidate);
        if (found)
            return found;
    }
    char *found = s_web_folder (PARLEY_SOURCE_WEB);
    return found? found: strdup ("web");
}

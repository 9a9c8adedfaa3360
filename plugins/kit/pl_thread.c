/*  =========================================================================
    pl_thread - a name for the calling thread (see pl_thread.h)
    =========================================================================
*/

#include "pl_thread.h"

#include <string.h>
#include <sys/prctl.h>

void
pl_thread_name (const char *name)
{
    //  PR_SET_NAME truncates by itself; the copy makes that explicit
    char truncated [PL_THREAD_NAME_MAX + 1];
    strncpy (truncated, name ? name : "", PL_THREAD_NAME_MAX);
    truncated [PL_THREAD_NAME_MAX] = 0;
    prctl (PR_SET_NAME, truncated, 0, 0, 0);
}

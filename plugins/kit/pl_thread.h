/*  =========================================================================
    pl_thread - a name for the calling thread (part of the plugin kit)

    Every thread of a Parley process is otherwise "parley": named after
    what it runs (the broker, each plugin, the store's indexer, auth's
    hashing workers), `top -H`, `perf report --sort comm` and gdb tell
    which part spends the CPU. Linux only (prctl), as the rest of Parley.
    =========================================================================
*/

#ifndef PL_THREAD_H_INCLUDED
#define PL_THREAD_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

//  The kernel keeps at most this many characters of a thread's name
#define PL_THREAD_NAME_MAX  15

//  Names the calling thread: the first PL_THREAD_NAME_MAX characters of
//  name. Does nothing when it cannot (a name is only a help).
void
    pl_thread_name (const char *name);

#ifdef __cplusplus
}
#endif

#endif

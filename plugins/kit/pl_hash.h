/*  =========================================================================
    pl_hash - hash tables keyed by a 64-bit number (a session id), and the
    hash of a name for the kit's own tables

    czmq's zhashx hashes strings by default; a table keyed by a uint64_t
    that lives inside its item (a session's id) sets these two instead:

        zhashx_set_key_hasher (table, pl_hash_u64);
        zhashx_set_key_comparator (table, pl_hash_u64_compare);
        zhashx_set_key_duplicator (table, NULL);    //  the key lives in the item
        zhashx_set_key_destructor (table, NULL);

    Plain functions of their key: no state, no allocation.
    =========================================================================
*/

#ifndef PL_HASH_H_INCLUDED
#define PL_HASH_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The hash of the uint64_t key points to (murmur3's finalizer: session ids
//  that differ in a few bits spread over the whole table)
size_t
    pl_hash_u64 (const void *key);

//  Orders two uint64_t keys: -1, 0 or 1
int
    pl_hash_u64_compare (const void *key1, const void *key2);

//  The hash of a C string (FNV-1a), for the kit's own tables of names
size_t
    pl_hash_name (const char *name);

#ifdef __cplusplus
}
#endif

#endif

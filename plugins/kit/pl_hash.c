/*  =========================================================================
    pl_hash - hash tables keyed by a 64-bit number (a session id)
    =========================================================================
*/

#include "pl_hash.h"

#include <stdint.h>

size_t
pl_hash_u64 (const void *key)
{
    uint64_t value = *(const uint64_t *) key;
    value ^= value >> 33;
    value *= 0xff51afd7ed558ccdULL;
    value ^= value >> 33;
    return (size_t) value;
}

int
pl_hash_u64_compare (const void *key1, const void *key2)
{
    uint64_t value1 = *(const uint64_t *) key1;
    uint64_t value2 = *(const uint64_t *) key2;
    return value1 < value2 ? -1 : value1 > value2 ? 1 : 0;
}

size_t
pl_hash_name (const char *name)
{
    uint64_t hash = 14695981039346656037ULL;
    for (const unsigned char *cursor = (const unsigned char *) name; *cursor; cursor++)
        hash = (hash ^ *cursor) * 1099511628211ULL;
    return (size_t) hash;
}

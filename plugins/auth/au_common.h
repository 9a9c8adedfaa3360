/*  =========================================================================
    au_common - the passwords auth refuses: too short or too long, the same
    as the username, or among the most common ones

    The common passwords are a list, one a line, loaded once at start into a
    hash set of their lower-cased text; a lookup lower-cases the password
    and asks the set, so "PASSWORD1" is as common as "password1". The list
    built into the plugin is data/common-passwords.txt (its header names its
    source and licence); the option auth.common_passwords names another file
    of the same form. Lines starting with '#' and blank lines are skipped, a
    trailing CR is dropped.

        au_common_t *common = au_common_new (NULL, NULL, 0);  //  built-in list
        const char *why = au_common_weak (common, "alice", password, size);
        if (why)
            ... weak_password, why ...
        au_common_destroy (&common);

    Single-threaded: the set is only read after au_common_new.
    =========================================================================
*/

#ifndef AU_COMMON_H_INCLUDED
#define AU_COMMON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _au_common_t au_common_t;

//  Loads the list at path, or the built-in list when path is NULL. Returns
//  NULL when the file cannot be read or holds no password, or on running
//  out of memory; error (error_size bytes, may be NULL) then says why.
//  Caller owns return value: au_common_destroy.
au_common_t *
    au_common_new (const char *path, char *error, size_t error_size);

//  Destroys the set and nulls the pointer
void
    au_common_destroy (au_common_t **self_p);

//  How many distinct passwords the set holds (lower-cased)
size_t
    au_common_size (au_common_t *self);

//  True when password (size bytes, any bytes) is in the set, without
//  regard to ASCII case
bool
    au_common_has (au_common_t *self, const char *password, size_t size);

//  Why password (size bytes) is refused for the account user (a C string,
//  may be NULL: no name to compare with), or NULL when it is acceptable: a
//  sentence for the weak_password error. Checks, in this order, the length
//  (PL_PASSWORD_MIN to PL_PASSWORD_MAX bytes), the username (without regard
//  to case) and the set.
const char *
    au_common_weak (au_common_t *self, const char *user, const char *password, size_t size);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    au_common - the passwords auth refuses: too short or too long, the same
    as the username, or among the most common ones

    The set keeps the list's text in one buffer, lower-cased in place and cut
    into lines; the hash table's keys point into it (no copy per password).
    =========================================================================
*/

#include "au_common.h"
#include "pl_hash.h"
#include "pl_limits.h"

#include <czmq.h>
#include <sodium.h>

//  The list built into the plugin (generated from data/common-passwords.txt
//  by embed.cmake)
extern const unsigned char au_common_list [];
extern const size_t au_common_list_size;

struct _au_common_t {
    char *text;                     //  the list, lower-cased, lines cut by NULs
    zhashx_t *set;                  //  line -> self: keys point into text
    size_t longest;                 //  bytes in the longest password
};

//  zhashx's hasher takes a void pointer: the kit's hash of a name
static size_t
s_hash (const void *key)
{
    return pl_hash_name ((const char *) key);
}

//  The whole file at path, NUL-terminated, or NULL. Caller owns it.
static char *
s_read_file (const char *path, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    char *text = NULL;
    long size = -1;
    if (fseek (file, 0, SEEK_END) == 0 && (size = ftell (file)) >= 0
        && fseek (file, 0, SEEK_SET) == 0)
        text = (char *) malloc ((size_t) size + 1);
    if (text && fread (text, 1, (size_t) size, file) != (size_t) size) {
        free (text);
        text = NULL;
    }
    fclose (file);
    if (text) {
        text [size] = 0;
        *size_p = (size_t) size;
    }
    return text;
}

//  Cuts self->text (size bytes) into lines and adds each password to the
//  set. Returns 0, or -1 when out of memory.
static int
s_load (au_common_t *self, size_t size)
{
    char *line = self->text;
    char *end = self->text + size;
    while (line < end) {
        char *next = (char *) memchr (line, '\n', (size_t) (end - line));
        if (!next)
            next = end;
        *next = 0;
        size_t length = (size_t) (next - line);
        if (length && line [length - 1] == '\r')
            line [--length] = 0;
        if (length && line [0] != '#' && strlen (line) == length) {
            for (size_t index = 0; index < length; index++)
                line [index] = (char) tolower ((unsigned char) line [index]);
            if (!zhashx_lookup (self->set, line) && zhashx_insert (self->set, line, self))
                return -1;
            if (length > self->longest)
                self->longest = length;
        }
        line = next + 1;
    }
    return 0;
}

au_common_t *
au_common_new (const char *path, char *error, size_t error_size)
{
    au_common_t *self = (au_common_t *) calloc (1, sizeof (au_common_t));
    size_t size = 0;
    const char *why = "out of memory";
    if (self && path) {
        self->text = s_read_file (path, &size);
        if (!self->text)
            why = strerror (errno);
    }
    else
    if (self && (self->text = (char *) malloc (au_common_list_size + 1))) {
        memcpy (self->text, au_common_list, au_common_list_size + 1);
        size = au_common_list_size;
    }
    if (self && self->text && (self->set = zhashx_new ())) {
        zhashx_set_key_hasher (self->set, s_hash);
        zhashx_set_key_duplicator (self->set, NULL);
        zhashx_set_key_destructor (self->set, NULL);
        why = s_load (self, size) ? "out of memory"
            : zhashx_size (self->set) == 0 ? "it holds no password" : NULL;
    }
    if (self && self->set && !why)
        return self;
    if (error && error_size)
        snprintf (error, error_size, "%s", why);
    au_common_destroy (&self);
    return NULL;
}

void
au_common_destroy (au_common_t **self_p)
{
    au_common_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->set);
    free (self->text);
    free (self);
    *self_p = NULL;
}

size_t
au_common_size (au_common_t *self)
{
    return zhashx_size (self->set);
}

bool
au_common_has (au_common_t *self, const char *password, size_t size)
{
    //  Longer than every listed one (so also past PL_PASSWORD_MAX), or with
    //  a NUL that no line can hold: not listed
    char lower [PL_PASSWORD_MAX + 1];
    if (size == 0 || size > self->longest || size > PL_PASSWORD_MAX
        || memchr (password, 0, size))
        return false;
    for (size_t index = 0; index < size; index++)
        lower [index] = (char) tolower ((unsigned char) password [index]);
    lower [size] = 0;
    bool found = zhashx_lookup (self->set, lower) != NULL;
    sodium_memzero (lower, size);
    return found;
}

const char *
au_common_weak (au_common_t *self, const char *user, const char *password, size_t size)
{
    if (size < PL_PASSWORD_MIN)
        return "A password has at least 8 bytes.";
    if (size > PL_PASSWORD_MAX)
        return "A password has at most 1024 bytes.";
    if (user && strlen (user) == size && strncasecmp (user, password, size) == 0)
        return "A password must not be the username.";
    if (au_common_has (self, password, size))
        return "This password is one of the most common ones; choose another.";
    return NULL;
}

/*  =========================================================================
    fuzz_gw_filehdr - the files endpoints' parsers of outside input on
    arbitrary bytes: the X-Filename decoding, the id in the path,
    Content-Length, the Bearer token and Content-Type, and the
    Content-Disposition written from what they let through. What a parser
    accepts must keep the rules it promises.
    =========================================================================
*/

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_filehdr.h"

static void
s_check_name (const char *name, int size)
{
    if (size < 1 || size > GW_FILEHDR_NAME_MAX || (int) strlen (name) != size)
        abort ();           //  a NUL inside is a control character
    for (int index = 0; index < size; index++) {
        uint8_t c = (uint8_t) name [index];
        if (c < 0x20 || c == 0x7F || c == '/')
            abort ();
    }
    char out [GW_FILEHDR_DISPOSITION_MAX];
    size_t length = gw_filehdr_disposition ("image/png", name, (size_t) size, out);
    const char *encoded = strstr (out, "''");
    if (length != strlen (out) || length >= GW_FILEHDR_DISPOSITION_MAX || !encoded
    ||  strpbrk (out, "\r\n\"") || strpbrk (encoded + 2, " ;,'"))
        abort ();           //  nothing that could end or split the header
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  A copy of exactly size bytes, unterminated: reading past it is a bug
    char *value = (char *) malloc (size? size: 1);
    if (!value)
        return 0;
    if (size)
        memcpy (value, data, size);
    char name [GW_FILEHDR_NAME_MAX + 1];
    char error [128];
    int length = gw_filehdr_filename (value, size, name, error);
    if (length >= 0)
        s_check_name (name, length);
    char id [GW_FILEHDR_ID_SIZE + 1];
    if (gw_filehdr_file_path (value, size, id)
    && (strlen (id) != GW_FILEHDR_ID_SIZE || memcmp (value + 7, id, GW_FILEHDR_ID_SIZE)))
        abort ();
    uint64_t number = 0;
    if (gw_filehdr_content_length (value, size, &number) == 0 && (size == 0 || size > 19))
        abort ();
    const char *token = NULL;
    int token_size = gw_filehdr_bearer (value, size, &token);
    if (token_size >= 0
    && (token_size == 0 || token_size > GW_FILEHDR_TOKEN_MAX || token < value
        || token + token_size > value + size || memchr (token, ' ', (size_t) token_size)))
        abort ();
    if (gw_filehdr_type_valid (value, size) && (memchr (value, '\r', size)
                                               || memchr (value, '\n', size)))
        abort ();
    free (value);
    return 0;
}

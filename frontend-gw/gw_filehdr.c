/*  =========================================================================
    gw_filehdr - the rules for the files endpoints' headers

    Each parser is strict where a lenient one could be read two ways (a
    Content-Length of "12abc", which lws' atoll takes as 12) and refuses
    rather than guesses.
    =========================================================================
*/

#include "gw_filehdr.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pl_text.h"

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  Percent-decodes value into name; returns the length or -1 (error set)
static int
s_percent_decode (const char *value, size_t length, char *name, char *error)
{
    size_t size = 0;
    for (size_t index = 0; index < length; index++) {
        int byte = (uint8_t) value [index];
        if (byte == '%') {
            int high = index + 2 < length? s_hex (value [index + 1]): -1;
            int low = high >= 0? s_hex (value [index + 2]): -1;
            if (low < 0) {
                snprintf (error, 128, "X-Filename has a '%%' that is not followed by two "
                          "hex digits.");
                return -1;
            }
            byte = high * 16 + low;
            index += 2;
        }
        if (size == GW_FILEHDR_NAME_MAX) {
            snprintf (error, 128, "X-Filename is longer than %d bytes once decoded.",
                      GW_FILEHDR_NAME_MAX);
            return -1;
        }
        name [size++] = (char) byte;
    }
    name [size] = 0;
    return (int) size;
}

int
gw_filehdr_filename (const char *value, size_t length, char *name, char *error)
{
    int size = s_percent_decode (value, length, name, error);
    if (size < 0)
        return -1;
    if (size == 0) {
        snprintf (error, 128, "X-Filename is required: the file's name, percent-encoded "
                  "UTF-8.");
        return -1;
    }
    const uint8_t *bytes = (const uint8_t *) name;
    for (int index = 0; index < size; ) {
        size_t sequence = pl_text_utf8_sequence (bytes + index, (size_t) (size - index));
        if (sequence == 0) {
            snprintf (error, 128, "X-Filename is not valid UTF-8 once decoded.");
            return -1;
        }
        //  C0 and DEL are one byte; C1 (U+0080 to U+009F) is 0xC2 0x80-0x9F
        bool control = bytes [index] < 0x20 || bytes [index] == 0x7F
                    || (bytes [index] == 0xC2 && bytes [index + 1] < 0xA0);
        if (control || bytes [index] == '/') {
            snprintf (error, 128, "X-Filename may hold no control character and no '/'.");
            return -1;
        }
        index += (int) sequence;
    }
    return size;
}

static bool
s_base64url (char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || c == '-' || c == '_';
}

bool
gw_filehdr_file_path (const char *path, size_t length, char *id)
{
    if (length != 7 + GW_FILEHDR_ID_SIZE || memcmp (path, "/files/", 7) != 0)
        return false;
    for (size_t index = 7; index < length; index++)
        if (!s_base64url (path [index]))
            return false;
    memcpy (id, path + 7, GW_FILEHDR_ID_SIZE);
    id [GW_FILEHDR_ID_SIZE] = 0;
    return true;
}

bool
gw_filehdr_files_path (const char *path, size_t length)
{
    return (length == 6 && memcmp (path, "/files", 6) == 0)
        || (length >= 7 && memcmp (path, "/files/", 7) == 0);
}

int
gw_filehdr_content_length (const char *value, size_t length, uint64_t *size_p)
{
    //  19 digits never overflow 64 bits
    if (length == 0 || length > 19)
        return -1;
    uint64_t size = 0;
    for (size_t index = 0; index < length; index++) {
        if (value [index] < '0' || value [index] > '9')
            return -1;
        size = size * 10 + (uint64_t) (value [index] - '0');
    }
    *size_p = size;
    return 0;
}

int
gw_filehdr_bearer (const char *value, size_t length, const char **token_p)
{
    if (length < 7 || strncasecmp (value, "bearer ", 7) != 0)
        return -1;
    size_t start = 7;
    while (start < length && value [start] == ' ')
        start++;
    size_t end = length;
    while (end > start && value [end - 1] == ' ')
        end--;
    if (end == start || end - start > GW_FILEHDR_TOKEN_MAX)
        return -1;
    for (size_t index = start; index < end; index++)
        if (value [index] <= ' ' || value [index] >= 0x7F)
            return -1;
    *token_p = value + start;
    return (int) (end - start);
}

bool
gw_filehdr_type_valid (const char *value, size_t length)
{
    if (length == 0 || length > GW_FILEHDR_TYPE_MAX || !memchr (value, '/', length))
        return false;
    for (size_t index = 0; index < length; index++)
        if (value [index] < ' ' || value [index] >= 0x7F)
            return false;
    return true;
}

bool
gw_filehdr_inline (const char *type)
{
    static const char *images [] = { "image/png", "image/jpeg", "image/gif", "image/webp", NULL };
    for (const char **image = images; *image; image++) {
        size_t size = strlen (*image);
        if (strncasecmp (type, *image, size) == 0
        && (type [size] == 0 || type [size] == ';' || type [size] == ' '))
            return true;
    }
    return false;
}

//  RFC 5987 attr-char: what may stand as itself in filename*
static bool
s_attr_char (uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || (c && strchr ("!#$&+-.^_`|~", c));
}

size_t
gw_filehdr_disposition (const char *type, const char *name, size_t name_size, char *out)
{
    static const char hex [] = "0123456789ABCDEF";
    const char *kind = type && gw_filehdr_inline (type)? "inline": "attachment";
    size_t size = (size_t) snprintf (out, GW_FILEHDR_DISPOSITION_MAX,
                                     "%s; filename*=UTF-8''", kind);
    if (name_size > GW_FILEHDR_NAME_MAX)
        name_size = GW_FILEHDR_NAME_MAX;
    for (size_t index = 0; index < name_size; index++) {
        uint8_t c = (uint8_t) name [index];
        if (s_attr_char (c))
            out [size++] = (char) c;
        else {
            out [size++] = '%';
            out [size++] = hex [c >> 4];
            out [size++] = hex [c & 15];
        }
    }
    out [size] = 0;
    return size;
}

/*  =========================================================================
    gw_filehdr - the rules for what a client puts in the headers of
    POST /files and GET /files/<id>, and for the headers the gateway answers

    Pure functions without sockets, so that each parser of outside input can
    be fuzzed (fuzz/fuzz_gw_filehdr.c): the X-Filename decoding, the file id
    in the path, Content-Length, the Bearer token and the Content-Type; and
    the Content-Disposition the gateway writes from a stored name.
    None allocates; none reads past the length it is given.
    =========================================================================
*/

#ifndef GW_FILEHDR_H_INCLUDED
#define GW_FILEHDR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  PROTOCOL.md 1.1 "Files": a name is at most 255 bytes once decoded
#define GW_FILEHDR_NAME_MAX     255
//  A file id: 16 random bytes in base64url, without padding
#define GW_FILEHDR_ID_SIZE      22
//  The longest Bearer token and Content-Type the gateway passes on
#define GW_FILEHDR_TOKEN_MAX    512
#define GW_FILEHDR_TYPE_MAX     255
//  The longest Content-Disposition gw_filehdr_disposition writes, terminator
//  included: "attachment; filename*=UTF-8''" and 255 bytes as %XX each
#define GW_FILEHDR_DISPOSITION_MAX  (32 + 3 * GW_FILEHDR_NAME_MAX + 1)

//  Decodes an X-Filename value (length bytes, need not be terminated):
//  percent-encoded UTF-8, where '%' must start %XX (either case of hex) and
//  '+' is itself, not a space. Writes the decoded name, terminated, into
//  name (at least GW_FILEHDR_NAME_MAX + 1 bytes) and returns its length,
//  or -1 with a sentence for the client in error (at least 128 bytes) when
//  the name is empty, longer than GW_FILEHDR_NAME_MAX bytes decoded, not
//  valid UTF-8, holds a control character (C0, DEL, C1) or a '/', or a
//  '%' is not followed by two hex digits.
int
    gw_filehdr_filename (const char *value, size_t length, char *name, char *error);

//  True when path (length bytes) is "/files/" and a file id of the right
//  shape: GW_FILEHDR_ID_SIZE characters of the base64url alphabet. Then
//  copies the id, terminated, into id (at least GW_FILEHDR_ID_SIZE + 1).
bool
    gw_filehdr_file_path (const char *path, size_t length, char *id);

//  True for a path the files endpoints own: "/files" or under "/files/"
bool
    gw_filehdr_files_path (const char *path, size_t length);

//  Parses a Content-Length value: one or more decimal digits and nothing
//  else, at most 19 of them. Returns 0 and sets *size_p, or -1.
int
    gw_filehdr_content_length (const char *value, size_t length, uint64_t *size_p);

//  Finds the token of an Authorization value "Bearer <token>" (the scheme
//  in any case, one or more spaces, a token of 1 to GW_FILEHDR_TOKEN_MAX
//  visible ASCII characters, trailing spaces ignored). Returns the token's
//  length and sets *token_p into value, or -1.
int
    gw_filehdr_bearer (const char *value, size_t length, const char **token_p);

//  True for a Content-Type the gateway stores and serves back as given: 1
//  to GW_FILEHDR_TYPE_MAX bytes of visible ASCII and spaces, with a '/'.
bool
    gw_filehdr_type_valid (const char *value, size_t length);

//  True for the types served inline (images a browser shows and never
//  runs): image/png, image/jpeg, image/gif, image/webp, parameters ignored
bool
    gw_filehdr_inline (const char *type);

//  Writes the Content-Disposition for a stored file, terminated, into out
//  (GW_FILEHDR_DISPOSITION_MAX bytes): "inline; filename*=UTF-8''<name>"
//  for the inline types, "attachment; filename*=UTF-8''<name>" otherwise,
//  the name percent-encoded as RFC 5987 says (bytes other than its
//  attr-char). A name longer than GW_FILEHDR_NAME_MAX is cut there.
//  Returns the length written.
size_t
    gw_filehdr_disposition (const char *type, const char *name, size_t name_size, char *out);

#ifdef __cplusplus
}
#endif

#endif

/*  =========================================================================
    pl_transcode - client JSON to internal msgpack and back

    JSON -> msgpack: yajl's SAX callbacks write msgpack as the tokens come.
    A container's count is unknown when it opens, so every map and array is
    written with a map32/array32 header and its count patched in when it
    closes. Semantic errors (not an object, too deep, bad type or id,
    repeated key) stop the output but not the parse: the parse goes on to
    tell bad JSON from a bad request and to find the "id" for the error reply.

    msgpack -> JSON: a recursive writer over the bounded reader of pl_mp.h,
    into one buffer with the caller's headroom in front.
    =========================================================================
*/

#include "pl_transcode.h"
#include "pl_mp.h"
#include "pl_text.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <yajl/yajl_parse.h>

//  The deepest input the parser accepts whatever max_depth says, and the
//  deepest msgpack the JSON writer follows
#define PL_TRANSCODE_DEPTH_LIMIT    64

//  Longest number text converted on the stack
#define PL_NUMBER_TEXT_MAX          64


//  --------------------------------------------------------------------------
//  UTF-8

static bool
s_utf8_valid (const uint8_t *bytes, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        if (bytes [pos] < 0x80) {
            pos++;
            continue;
        }
        size_t length = pl_text_utf8_sequence (bytes + pos, size - pos);
        if (length == 0)
            return false;
        pos += length;
    }
    return true;
}

static int
s_hex_value (const char *text)
{
    int value = 0;
    for (int index = 0; index < 4; index++) {
        char digit = text [index];
        value <<= 4;
        if (digit >= '0' && digit <= '9')
            value |= digit - '0';
        else
        if (digit >= 'a' && digit <= 'f')
            value |= digit - 'a' + 10;
        else
        if (digit >= 'A' && digit <= 'F')
            value |= digit - 'A' + 10;
        else
            return -1;
    }
    return value;
}

//  yajl decodes a high surrogate escape followed by any \u escape as a pair
//  without checking the second half, and turns a lone one into '?'. So the
//  escapes are checked here first: every \uD800-\uDBFF must be followed by
//  \uDC00-\uDFFF and every low surrogate must follow a high one. Outside
//  strings there are no backslashes in valid JSON, so tracking quotes is
//  enough; whatever else is wrong yajl reports.
static bool
s_surrogate_escapes_valid (const char *json, size_t size)
{
    if (!memchr (json, '\\', size))
        return true;
    bool in_string = false;
    for (size_t pos = 0; pos < size; pos++) {
        char byte = json [pos];
        if (!in_string) {
            if (byte == '"')
                in_string = true;
            continue;
        }
        if (byte == '"') {
            in_string = false;
            continue;
        }
        if (byte != '\\')
            continue;
        if (pos + 1 >= size)
            return true;        //  truncated: yajl says so
        if (json [pos + 1] != 'u') {
            pos++;              //  a two-character escape
            continue;
        }
        if (pos + 6 > size)
            return true;
        int unit = s_hex_value (json + pos + 2);
        pos += 5;
        if (unit < 0)
            return true;        //  yajl refuses it
        if (unit >= 0xdc00 && unit <= 0xdfff)
            return false;       //  a low surrogate alone
        if (unit >= 0xd800 && unit <= 0xdbff) {
            if (pos + 7 > size || json [pos + 1] != '\\' || json [pos + 2] != 'u')
                return false;
            int low = s_hex_value (json + pos + 3);
            if (low < 0xdc00 || low > 0xdfff)
                return false;
            pos += 6;
        }
    }
    return true;
}


//  --------------------------------------------------------------------------
//  JSON -> msgpack

//  The role of the next value at the top level of the request object
typedef enum {
    SLOT_BODY,                  //  a field of the body
    SLOT_TYPE,                  //  the value of "type"
    SLOT_ID,                    //  the value of "id"
    SLOT_IGNORE                 //  the value of a repeated "type" or "id"
} s_slot_t;

typedef struct {
    size_t offset;              //  where its header is in the output
    uint32_t count;             //  elements (arrays) or pairs (maps) so far
    bool map;                   //  a map: counted by its keys, not its values
} s_container_t;

//  One top-level key seen, for the duplicate check
typedef struct {
    size_t offset;              //  where its bytes are in the output, 0 = free
    size_t length;              //  its length
} s_key_entry_t;

typedef struct {
    pl_buf_t output;            //  the body being written
    msgpack_packer packer;      //  writes into output
    pl_transcode_status_t status;   //  first error, or OK
    char error [160];           //  its sentence
    int max_depth;              //  deepest allowed nesting
    int depth;                  //  containers open now
    bool object;                //  the top-level value is an object
    s_slot_t slot;              //  role of the next top-level value
    bool type_seen;             //  "type" key seen
    bool id_seen;               //  "id" key seen
    const char *json;           //  the text parsed, for what follows a number
    size_t json_size;
    char *type;                 //  owned: the type, once read
    pl_buf_t id;                //  the id as one msgpack value, once read
    s_container_t stack [PL_TRANSCODE_DEPTH_LIMIT + 1];    //  open containers, 1-based
    s_key_entry_t *keys;        //  owned: hash set of top-level body keys
    size_t keys_capacity;       //  slots, a power of two
    size_t keys_count;          //  slots used
} s_parser_t;

static void
s_error (s_parser_t *self, pl_transcode_status_t status, const char *sentence)
{
    //  The first error wins, except that bad JSON outranks a bad request:
    //  the request's shape means nothing when it is not JSON.
    if (self->status == PL_TRANSCODE_OK
    ||  (self->status == PL_TRANSCODE_BAD_REQUEST && status == PL_TRANSCODE_BAD_JSON)) {
        self->status = status;
        snprintf (self->error, sizeof (self->error), "%s", sentence);
    }
}

static bool
s_writing (s_parser_t *self)
{
    return self->status == PL_TRANSCODE_OK;
}

static uint64_t
s_hash (const uint8_t *bytes, size_t length)
{
    uint64_t hash = 14695981039346656037ULL;
    for (size_t index = 0; index < length; index++)
        hash = (hash ^ bytes [index]) * 1099511628211ULL;
    return hash;
}

//  Remember a top-level key written at offset; false if it was seen before
static bool
s_key_insert (s_parser_t *self, size_t offset, size_t length)
{
    if (self->keys_count * 2 >= self->keys_capacity) {
        size_t capacity = self->keys_capacity ? self->keys_capacity * 2 : 16;
        s_key_entry_t *keys = (s_key_entry_t *) calloc (capacity, sizeof (s_key_entry_t));
        if (!keys) {
            self->output.failed = true;
            return true;
        }
        for (size_t index = 0; index < self->keys_capacity; index++) {
            s_key_entry_t *entry = &self->keys [index];
            if (!entry->offset)
                continue;
            size_t slot = s_hash (self->output.data + entry->offset, entry->length)
                          & (capacity - 1);
            while (keys [slot].offset)
                slot = (slot + 1) & (capacity - 1);
            keys [slot] = *entry;
        }
        free (self->keys);
        self->keys = keys;
        self->keys_capacity = capacity;
    }
    const uint8_t *bytes = self->output.data + offset;
    size_t slot = s_hash (bytes, length) & (self->keys_capacity - 1);
    while (self->keys [slot].offset) {
        s_key_entry_t *entry = &self->keys [slot];
        if (entry->length == length
        &&  memcmp (self->output.data + entry->offset, bytes, length) == 0)
            return false;
        slot = (slot + 1) & (self->keys_capacity - 1);
    }
    self->keys [slot].offset = offset;
    self->keys [slot].length = length;
    self->keys_count++;
    return true;
}

//  Called before every value: says what the value is for, and counts it in
//  its array. At depth 0 the value is the whole frame.
static s_slot_t
s_begin_value (s_parser_t *self)
{
    if (self->depth == 1 && self->object) {
        s_slot_t slot = self->slot;
        self->slot = SLOT_BODY;
        return slot;
    }
    if (self->depth >= 1 && self->depth <= self->max_depth
    &&  !self->stack [self->depth].map)
        self->stack [self->depth].count++;
    return SLOT_BODY;
}

static void
s_type_error (s_parser_t *self)
{
    s_error (self, PL_TRANSCODE_BAD_REQUEST, "The field 'type' is missing or not a string.");
}

static void
s_id_error (s_parser_t *self)
{
    s_error (self, PL_TRANSCODE_BAD_REQUEST,
             "The field 'id' must be an integer or a string of at most 64 bytes.");
}

static void
s_not_object_error (s_parser_t *self)
{
    s_error (self, PL_TRANSCODE_BAD_REQUEST, "The frame is not a JSON object.");
}

//  A scalar at depth 0: the frame is not an object
static bool
s_scalar_slot (s_parser_t *self, s_slot_t *slot_p)
{
    if (self->depth == 0) {
        s_not_object_error (self);
        return false;
    }
    *slot_p = s_begin_value (self);
    return true;
}

static int
s_on_null (void *context)
{
    s_parser_t *self = (s_parser_t *) context;
    s_slot_t slot;
    if (!s_scalar_slot (self, &slot))
        return 1;
    if (slot == SLOT_TYPE)
        s_type_error (self);
    else
    if (slot == SLOT_ID)
        s_id_error (self);
    else
    if (slot == SLOT_BODY && s_writing (self))
        msgpack_pack_nil (&self->packer);
    return 1;
}

static int
s_on_boolean (void *context, int value)
{
    s_parser_t *self = (s_parser_t *) context;
    s_slot_t slot;
    if (!s_scalar_slot (self, &slot))
        return 1;
    if (slot == SLOT_TYPE)
        s_type_error (self);
    else
    if (slot == SLOT_ID)
        s_id_error (self);
    else
    if (slot == SLOT_BODY && s_writing (self)) {
        if (value)
            msgpack_pack_true (&self->packer);
        else
            msgpack_pack_false (&self->packer);
    }
    return 1;
}

typedef struct {
    bool integer;               //  fits int64 or uint64
    bool negative;              //  then sint, else uint
    int64_t sint;               //  the value when negative
    uint64_t uint;              //  the value when not
    double real;                //  the value when not integer
} s_number_t;

static void
s_number_parse (const char *text, size_t length, s_number_t *number)
{
    char stack_copy [PL_NUMBER_TEXT_MAX + 1];
    char *copy = length <= PL_NUMBER_TEXT_MAX ? stack_copy : (char *) malloc (length + 1);
    memset (number, 0, sizeof (*number));
    if (!copy) {
        number->real = NAN;
        return;
    }
    memcpy (copy, text, length);
    copy [length] = 0;
    bool fraction = memchr (copy, '.', length) || memchr (copy, 'e', length)
                    || memchr (copy, 'E', length);
    if (!fraction) {
        char *end;
        errno = 0;
        if (copy [0] == '-') {
            long long value = strtoll (copy, &end, 10);
            if (errno == 0 && *end == 0) {
                number->integer = true;
                number->negative = value < 0;
                number->sint = value;
                number->uint = (uint64_t) (value < 0 ? 0 : value);
            }
        }
        else {
            unsigned long long value = strtoull (copy, &end, 10);
            if (errno == 0 && *end == 0) {
                number->integer = true;
                number->uint = value;
            }
        }
    }
    if (!number->integer)
        number->real = strtod (copy, NULL);
    if (copy != stack_copy)
        free (copy);
}

static void
s_pack_number (msgpack_packer *packer, const s_number_t *number)
{
    if (!number->integer)
        msgpack_pack_double (packer, number->real);
    else
    if (number->negative)
        msgpack_pack_int64 (packer, number->sint);
    else
        msgpack_pack_uint64 (packer, number->uint);
}

//  yajl hands over a number as soon as it ends, before it checks what
//  follows: "051" is 0, then a syntax error. Only whitespace, ',', ']' or
//  '}' (or the end) may follow a number in JSON.
static bool
s_number_ends_well (s_parser_t *self, const char *text, size_t length)
{
    if (!self->json || text < self->json || text + length > self->json + self->json_size)
        return true;            //  not in our text (yajl copied it): nothing to check
    if (text + length == self->json + self->json_size)
        return true;
    char next = text [length];
    return next == ' ' || next == '\t' || next == '\n' || next == '\r'
        || next == ',' || next == ']' || next == '}';
}

static int
s_on_number (void *context, const char *text, size_t length)
{
    s_parser_t *self = (s_parser_t *) context;
    if (!s_number_ends_well (self, text, length)) {
        s_error (self, PL_TRANSCODE_BAD_JSON, "The frame is not valid JSON.");
        return 0;
    }
    s_slot_t slot;
    if (!s_scalar_slot (self, &slot))
        return 1;
    if (slot == SLOT_TYPE) {
        s_type_error (self);
        return 1;
    }
    if (slot == SLOT_IGNORE || (slot == SLOT_BODY && !s_writing (self)))
        return 1;
    s_number_t number;
    s_number_parse (text, length, &number);
    if (slot == SLOT_ID) {
        if (!number.integer) {
            s_id_error (self);
            return 1;
        }
        msgpack_packer id_packer;
        msgpack_packer_init (&id_packer, &self->id, pl_buf_packer_write);
        s_pack_number (&id_packer, &number);
        return 1;
    }
    s_pack_number (&self->packer, &number);
    return 1;
}

static void
s_utf8_error (s_parser_t *self)
{
    s_error (self, PL_TRANSCODE_BAD_JSON, "The frame is not valid UTF-8.");
}

static int
s_on_string (void *context, const unsigned char *bytes, size_t length)
{
    s_parser_t *self = (s_parser_t *) context;
    bool valid = s_utf8_valid (bytes, length);
    if (!valid)
        s_utf8_error (self);
    s_slot_t slot;
    if (!s_scalar_slot (self, &slot))
        return 1;
    if (slot == SLOT_TYPE) {
        //  A NUL would cut the C string the router matches prefixes on
        if (memchr (bytes, 0, length))
            s_type_error (self);
        else
        if (s_writing (self)) {
            free (self->type);
            self->type = (char *) malloc (length + 1);
            if (!self->type)
                self->output.failed = true;
            else {
                memcpy (self->type, bytes, length);
                self->type [length] = 0;
            }
        }
        return 1;
    }
    if (slot == SLOT_ID) {
        if (length > PL_TRANSCODE_MAX_ID)
            s_id_error (self);
        else
        if (valid) {
            msgpack_packer id_packer;
            msgpack_packer_init (&id_packer, &self->id, pl_buf_packer_write);
            msgpack_pack_str (&id_packer, length);
            msgpack_pack_str_body (&id_packer, bytes, length);
        }
        return 1;
    }
    if (slot == SLOT_BODY && s_writing (self)) {
        msgpack_pack_str (&self->packer, length);
        msgpack_pack_str_body (&self->packer, bytes, length);
    }
    return 1;
}

//  Open a container: map32 (0xdf) or array32 (0xdd) with its count to come
static void
s_open (s_parser_t *self, uint8_t marker)
{
    s_slot_t slot = SLOT_BODY;
    if (self->depth == 0) {
        if (marker == 0xdf)
            self->object = true;
        else
            s_not_object_error (self);
    }
    else
        slot = s_begin_value (self);
    if (slot == SLOT_TYPE)
        s_type_error (self);
    else
    if (slot == SLOT_ID)
        s_id_error (self);

    self->depth++;
    if (self->depth > self->max_depth) {
        char sentence [64];
        snprintf (sentence, sizeof (sentence), "The frame nests deeper than %d levels.",
                  self->max_depth);
        s_error (self, PL_TRANSCODE_BAD_REQUEST, sentence);
        return;
    }
    s_container_t *container = &self->stack [self->depth];
    container->offset = self->output.size;
    container->count = 0;
    container->map = marker == 0xdf;
    if (!s_writing (self) || slot != SLOT_BODY)
        return;
    uint8_t header [5] = {marker, 0, 0, 0, 0};
    pl_buf_append (&self->output, header, sizeof (header));
}

static void
s_close (s_parser_t *self)
{
    if (self->depth <= self->max_depth && s_writing (self) && !self->output.failed) {
        s_container_t *container = &self->stack [self->depth];
        pl_put_be32 (self->output.data + container->offset + 1, container->count);
    }
    self->depth--;
}

static int
s_on_start_map (void *context)
{
    s_open ((s_parser_t *) context, 0xdf);
    return 1;
}

static int
s_on_end_map (void *context)
{
    s_close ((s_parser_t *) context);
    return 1;
}

static int
s_on_start_array (void *context)
{
    s_open ((s_parser_t *) context, 0xdd);
    return 1;
}

static int
s_on_end_array (void *context)
{
    s_close ((s_parser_t *) context);
    return 1;
}

static void
s_duplicate_error (s_parser_t *self, const unsigned char *key, size_t length)
{
    //  Name the key when it is short and plain, so the sentence stays readable
    bool plain = length > 0 && length <= 32;
    for (size_t index = 0; plain && index < length; index++)
        plain = key [index] >= 0x20 && key [index] < 0x7f && key [index] != '\'';
    char sentence [96];
    if (plain)
        snprintf (sentence, sizeof (sentence), "The field '%.*s' appears more than once.",
                  (int) length, (const char *) key);
    else
        snprintf (sentence, sizeof (sentence), "A top-level field appears more than once.");
    s_error (self, PL_TRANSCODE_BAD_REQUEST, sentence);
}

static int
s_on_map_key (void *context, const unsigned char *key, size_t length)
{
    s_parser_t *self = (s_parser_t *) context;
    if (!s_utf8_valid (key, length))
        s_utf8_error (self);

    if (self->depth == 1 && self->object) {
        if (length == 4 && memcmp (key, "type", 4) == 0) {
            if (self->type_seen)
                s_duplicate_error (self, key, length);
            self->slot = self->type_seen ? SLOT_IGNORE : SLOT_TYPE;
            self->type_seen = true;
            return 1;
        }
        if (length == 2 && memcmp (key, "id", 2) == 0) {
            if (self->id_seen)
                s_duplicate_error (self, key, length);
            self->slot = self->id_seen ? SLOT_IGNORE : SLOT_ID;
            self->id_seen = true;
            return 1;
        }
        self->slot = SLOT_BODY;
        if (!s_writing (self))
            return 1;
        self->stack [1].count++;
        msgpack_pack_str (&self->packer, length);
        size_t offset = self->output.size;
        msgpack_pack_str_body (&self->packer, key, length);
        if (!self->output.failed && !s_key_insert (self, offset, length))
            s_duplicate_error (self, key, length);
        return 1;
    }
    if (self->depth <= self->max_depth && s_writing (self)) {
        self->stack [self->depth].count++;
        msgpack_pack_str (&self->packer, length);
        msgpack_pack_str_body (&self->packer, key, length);
    }
    return 1;
}

static const yajl_callbacks s_callbacks = {
    s_on_null,
    s_on_boolean,
    NULL,                       //  integers and doubles come as text,
    NULL,                       //  to s_on_number
    s_on_number,
    s_on_string,
    s_on_start_map,
    s_on_map_key,
    s_on_end_map,
    s_on_start_array,
    s_on_end_array
};

//  --------------------------------------------------------------------------
//  Parse one client frame. Returns request->status.

pl_transcode_status_t
pl_transcode_request (const char *json, size_t size, size_t max_size, int max_depth,
                      pl_request_t *request)
{
    assert (request);
    memset (request, 0, sizeof (*request));
    if (size > max_size || size > UINT32_MAX) {
        request->status = PL_TRANSCODE_TOO_LARGE;
        snprintf (request->error, sizeof (request->error),
                  "The frame is larger than %zu bytes.", max_size);
        return request->status;
    }
    s_parser_t *self = (s_parser_t *) calloc (1, sizeof (s_parser_t));
    if (!self) {
        request->status = PL_TRANSCODE_TOO_LARGE;
        snprintf (request->error, sizeof (request->error), "The server is out of memory.");
        return request->status;
    }
    self->max_depth = max_depth < 1 ? 1
                    : max_depth > PL_TRANSCODE_DEPTH_LIMIT ? PL_TRANSCODE_DEPTH_LIMIT
                    : max_depth;
    msgpack_packer_init (&self->packer, &self->output, pl_buf_packer_write);

    if (!json)
        size = 0;
    self->json = json;
    self->json_size = size;
    if (!s_surrogate_escapes_valid (json ? json : "", size))
        s_utf8_error (self);
    yajl_handle parser = yajl_alloc (&s_callbacks, NULL, self);
    yajl_status status = parser ? yajl_parse (parser, (const unsigned char *) (json ? json : ""),
                                              size)
                                : yajl_status_error;
    if (status == yajl_status_ok)
        status = yajl_complete_parse (parser);
    if (parser)
        yajl_free (parser);
    if (status != yajl_status_ok)
        s_error (self, PL_TRANSCODE_BAD_JSON, "The frame is not valid JSON.");
    else
    if (!self->type_seen || (!self->type && self->status == PL_TRANSCODE_OK))
        s_type_error (self);
    if (self->output.failed || self->id.failed) {
        self->status = PL_TRANSCODE_TOO_LARGE;
        snprintf (self->error, sizeof (self->error), "The frame is too large to process.");
    }

    request->status = self->status;
    if (self->id.size && !self->id.failed) {
        request->id = self->id.data;
        request->id_size = self->id.size;
        self->id.data = NULL;
    }
    if (self->status == PL_TRANSCODE_OK) {
        request->type = self->type;
        self->type = NULL;
        request->body = self->output.data;
        request->body_size = self->output.size;
        self->output.data = NULL;
    }
    else
        snprintf (request->error, sizeof (request->error), "%s", self->error);

    free (self->type);
    pl_buf_free (&self->output);
    pl_buf_free (&self->id);
    free (self->keys);
    free (self);
    return request->status;
}


//  --------------------------------------------------------------------------
//  Free what a request owns and reset it; safe to call twice

void
pl_request_reset (pl_request_t *request)
{
    if (!request)
        return;
    free (request->type);
    free (request->id);
    free (request->body);
    memset (request, 0, sizeof (*request));
}


//  --------------------------------------------------------------------------
//  msgpack -> JSON

static void
s_write_string (pl_buf_t *output, const uint8_t *bytes, size_t length)
{
    static const char hex [] = "0123456789abcdef";
    pl_buf_append_byte (output, '"');
    size_t pos = 0;
    while (pos < length) {
        //  Copy the longest run that needs no escaping in one go
        size_t run = pos;
        while (run < length && bytes [run] >= 0x20 && bytes [run] < 0x80
               && bytes [run] != '"' && bytes [run] != '\\')
            run++;
        if (run > pos) {
            pl_buf_append (output, bytes + pos, run - pos);
            pos = run;
            if (pos == length)
                break;
        }
        uint8_t byte = bytes [pos];
        if (byte >= 0x80) {
            size_t sequence = pl_text_utf8_sequence (bytes + pos, length - pos);
            if (sequence) {
                pl_buf_append (output, bytes + pos, sequence);
                pos += sequence;
            }
            else {
                pl_buf_append (output, "\xef\xbf\xbd", 3);      //  U+FFFD
                pos++;
            }
            continue;
        }
        char escape [6] = {'\\', 0, 0, 0, 0, 0};
        size_t escape_size = 2;
        switch (byte) {
            case '"':  escape [1] = '"'; break;
            case '\\': escape [1] = '\\'; break;
            case '\b': escape [1] = 'b'; break;
            case '\f': escape [1] = 'f'; break;
            case '\n': escape [1] = 'n'; break;
            case '\r': escape [1] = 'r'; break;
            case '\t': escape [1] = 't'; break;
            default:
                escape [1] = 'u';
                escape [2] = '0';
                escape [3] = '0';
                escape [4] = hex [byte >> 4];
                escape [5] = hex [byte & 0x0f];
                escape_size = 6;
        }
        pl_buf_append (output, escape, escape_size);
        pos++;
    }
    pl_buf_append_byte (output, '"');
}

//  The shortest text that reads back as the same double, always with a '.'
//  or an exponent so it reads back as a float; null when not finite.
static void
s_write_double (pl_buf_t *output, double value)
{
    if (!isfinite (value)) {
        pl_buf_append (output, "null", 4);
        return;
    }
    char text [40];
    int length = 0;
    for (int precision = 15; precision <= 17; precision++) {
        length = snprintf (text, sizeof (text) - 3, "%.*g", precision, value);
        if (precision == 17 || strtod (text, NULL) == value)
            break;
    }
    bool looks_float = false;
    for (int index = 0; index < length; index++) {
        if (text [index] == ',')
            text [index] = '.';     //  a locale's decimal comma
        if (text [index] == '.' || text [index] == 'e')
            looks_float = true;
    }
    if (!looks_float) {
        memcpy (text + length, ".0", 2);
        length += 2;
    }
    pl_buf_append (output, text, (size_t) length);
}

static void
s_write_uint (pl_buf_t *output, uint64_t value)
{
    char text [24];
    int length = snprintf (text, sizeof (text), "%llu", (unsigned long long) value);
    pl_buf_append (output, text, (size_t) length);
}

static void
s_write_sint (pl_buf_t *output, int64_t value)
{
    char text [24];
    int length = snprintf (text, sizeof (text), "%lld", (long long) value);
    pl_buf_append (output, text, (size_t) length);
}

static int s_write_value (pl_buf_t *output, pl_mp_reader_t *reader, int depth);

//  A map key: strings as they are, anything else as the string of its JSON
static int
s_write_key (pl_buf_t *output, pl_mp_reader_t *reader, int depth)
{
    size_t start = reader->pos;
    pl_mp_item_t item;
    if (pl_mp_next (reader, &item))
        return -1;
    if (item.kind == PL_MP_STR) {
        s_write_string (output, item.bytes, item.length);
        return 0;
    }
    reader->pos = start;
    pl_buf_t text = {0};
    int rc = s_write_value (&text, reader, depth);
    if (rc == 0 && !text.failed)
        s_write_string (output, text.data, text.size);
    else
        rc = -1;
    pl_buf_free (&text);
    return rc;
}

//  Write one msgpack value as JSON. Returns 0, or -1 when malformed or
//  nested deeper than PL_TRANSCODE_DEPTH_LIMIT.
static int
s_write_value (pl_buf_t *output, pl_mp_reader_t *reader, int depth)
{
    pl_mp_item_t item;
    if (pl_mp_next (reader, &item))
        return -1;
    switch (item.kind) {
        case PL_MP_NIL:
        case PL_MP_BIN:
        case PL_MP_EXT:
            pl_buf_append (output, "null", 4);
            return 0;
        case PL_MP_BOOL:
            if (item.boolean)
                pl_buf_append (output, "true", 4);
            else
                pl_buf_append (output, "false", 5);
            return 0;
        case PL_MP_UINT:
            s_write_uint (output, item.uint);
            return 0;
        case PL_MP_INT:
            s_write_sint (output, item.sint);
            return 0;
        case PL_MP_FLOAT:
            s_write_double (output, item.real);
            return 0;
        case PL_MP_STR:
            s_write_string (output, item.bytes, item.length);
            return 0;
        case PL_MP_ARRAY:
            if (depth >= PL_TRANSCODE_DEPTH_LIMIT)
                return -1;
            pl_buf_append_byte (output, '[');
            for (uint32_t index = 0; index < item.length; index++) {
                if (index)
                    pl_buf_append_byte (output, ',');
                if (s_write_value (output, reader, depth + 1))
                    return -1;
            }
            pl_buf_append_byte (output, ']');
            return 0;
        case PL_MP_MAP:
            if (depth >= PL_TRANSCODE_DEPTH_LIMIT)
                return -1;
            pl_buf_append_byte (output, '{');
            for (uint32_t index = 0; index < item.length; index++) {
                if (index)
                    pl_buf_append_byte (output, ',');
                if (s_write_key (output, reader, depth + 1))
                    return -1;
                pl_buf_append_byte (output, ':');
                if (s_write_value (output, reader, depth + 1))
                    return -1;
            }
            pl_buf_append_byte (output, '}');
            return 0;
    }
    return -1;
}

static bool
s_is_key (const pl_mp_item_t *key, const char *name)
{
    size_t length = strlen (name);
    return key->kind == PL_MP_STR && key->length == length
           && memcmp (key->bytes, name, length) == 0;
}

//  Start a buffer with headroom bytes free in front
static void
s_start (pl_buf_t *output, size_t headroom)
{
    if (pl_buf_reserve (output, headroom + 256) == 0) {
        memset (output->data, 0, headroom);
        output->size = headroom;
    }
}

static uint8_t *
s_finish (pl_buf_t *output, size_t headroom, size_t *json_size_p)
{
    if (output->failed) {
        pl_buf_free (output);
        return NULL;
    }
    *json_size_p = output->size - headroom;
    return output->data;
}

//  Write '{', "type" and "id"; returns 0 or -1 if id is not one value
static int
s_write_head (pl_buf_t *output, const char *type, const uint8_t *id, size_t id_size,
              bool *first_p)
{
    pl_buf_append_byte (output, '{');
    *first_p = true;
    if (type) {
        pl_buf_append (output, "\"type\":", 7);
        s_write_string (output, (const uint8_t *) type, strlen (type));
        *first_p = false;
    }
    if (id && id_size) {
        if (!*first_p)
            pl_buf_append_byte (output, ',');
        pl_buf_append (output, "\"id\":", 5);
        pl_mp_reader_t reader;
        pl_mp_reader_init (&reader, id, id_size);
        if (s_write_value (output, &reader, 1) || reader.pos != id_size)
            return -1;
        *first_p = false;
    }
    return 0;
}


//  Writes the fields of the msgpack map body after what output holds,
//  skipping "type" and "id" when skip_head, and "code", "message" and
//  "outcome" too when skip_error. Returns 0, or -1 when body is not one well-formed map.
static int
s_write_fields (pl_buf_t *output, const uint8_t *body, size_t body_size, bool skip_head,
                bool skip_error, bool *first_p)
{
    pl_mp_reader_t reader;
    pl_mp_reader_init (&reader, body, body_size);
    pl_mp_item_t map;
    if (pl_mp_next (&reader, &map) || map.kind != PL_MP_MAP)
        return -1;
    for (uint32_t index = 0; index < map.length; index++) {
        size_t key_start = reader.pos;
        pl_mp_item_t key;
        if (pl_mp_next (&reader, &key))
            return -1;
        if ((skip_head && (s_is_key (&key, "type") || s_is_key (&key, "id")))
        ||  (skip_error && (s_is_key (&key, "code") || s_is_key (&key, "message")
                            || s_is_key (&key, "outcome")))) {
            if (pl_mp_skip (&reader))
                return -1;
            continue;
        }
        reader.pos = key_start;
        if (!*first_p)
            pl_buf_append_byte (output, ',');
        *first_p = false;
        if (s_write_key (output, &reader, 1))
            return -1;
        pl_buf_append_byte (output, ':');
        if (s_write_value (output, &reader, 1))
            return -1;
    }
    return reader.pos == body_size ? 0 : -1;
}


//  --------------------------------------------------------------------------
//  Write one JSON frame into a new buffer with headroom bytes free in front.
//  Caller frees the return value.

uint8_t *
pl_transcode_frame (const char *type, const uint8_t *id, size_t id_size,
                    const uint8_t *body, size_t body_size, size_t headroom,
                    size_t *json_size_p)
{
    assert (json_size_p);
    pl_buf_t output = {0};
    s_start (&output, headroom);
    bool first;
    if (s_write_head (&output, type, id, id_size, &first))
        goto failed;

    if (body && s_write_fields (&output, body, body_size, type != NULL, false, &first))
        goto failed;
    pl_buf_append_byte (&output, '}');
    return s_finish (&output, headroom, json_size_p);

failed:
    pl_buf_free (&output);
    return NULL;
}


//  --------------------------------------------------------------------------
//  A ready error frame. Caller frees.

uint8_t *
pl_transcode_error (const uint8_t *id, size_t id_size, const char *code,
                    const char *message, size_t headroom, size_t *json_size_p)
{
    return pl_transcode_error_outcome (id, id_size, code, message, NULL, headroom, json_size_p);
}

uint8_t *
pl_transcode_error_outcome (const uint8_t *id, size_t id_size, const char *code,
                            const char *message, const char *outcome, size_t headroom,
                            size_t *json_size_p)
{
    assert (json_size_p);
    pl_buf_t output = {0};
    s_start (&output, headroom);
    bool first;
    if (s_write_head (&output, "error", id, id_size, &first)) {
        //  An unreadable id is left out rather than losing the error
        pl_buf_free (&output);
        s_start (&output, headroom);
        s_write_head (&output, "error", NULL, 0, &first);
    }
    if (code) {
        pl_buf_append (&output, ",\"code\":", 8);
        s_write_string (&output, (const uint8_t *) code, strlen (code));
    }
    if (message) {
        pl_buf_append (&output, ",\"message\":", 11);
        s_write_string (&output, (const uint8_t *) message, strlen (message));
    }
    if (outcome) {
        pl_buf_append (&output, ",\"outcome\":", 11);
        s_write_string (&output, (const uint8_t *) outcome, strlen (outcome));
    }
    pl_buf_append_byte (&output, '}');
    return s_finish (&output, headroom, json_size_p);
}


//  --------------------------------------------------------------------------
//  An error frame with more fields. Caller frees.

uint8_t *
pl_transcode_error_body (const uint8_t *id, size_t id_size, const char *code,
                         const char *message, const char *outcome,
                         const uint8_t *body, size_t body_size,
                         size_t headroom, size_t *json_size_p)
{
    uint8_t *frame = pl_transcode_error_outcome (id, id_size, code, message, outcome,
                                                 headroom, json_size_p);
    if (!frame || !body || !body_size)
        return frame;
    //  Reopen the finished object: its closing brace is the last byte
    pl_buf_t output = { .data = frame, .size = headroom + *json_size_p,
                        .capacity = headroom + *json_size_p };
    output.size--;
    bool first = false;
    if (s_write_fields (&output, body, body_size, true, true, &first)) {
        //  A body that is not a map loses its fields, never the error
        pl_buf_free (&output);
        return pl_transcode_error_outcome (id, id_size, code, message, outcome, headroom,
                                           json_size_p);
    }
    pl_buf_append_byte (&output, '}');
    return s_finish (&output, headroom, json_size_p);
}


//  --------------------------------------------------------------------------
//  An error frame that says when to try again. Caller frees.

//  True when body is a map with the key name (whatever its value)
static bool
s_has_key (const uint8_t *body, size_t body_size, const char *name)
{
    if (!body || !body_size)
        return false;
    pl_mp_reader_t reader;
    pl_mp_reader_init (&reader, body, body_size);
    pl_mp_item_t map;
    if (pl_mp_next (&reader, &map) || map.kind != PL_MP_MAP)
        return false;
    for (uint32_t index = 0; index < map.length; index++) {
        pl_mp_item_t key;
        if (pl_mp_next (&reader, &key))
            return false;
        if (s_is_key (&key, name))
            return true;
        if (pl_mp_skip (&reader))
            return false;
    }
    return false;
}

uint8_t *
pl_transcode_error_retry (const uint8_t *id, size_t id_size, const char *code,
                          const char *message, const char *outcome,
                          const uint8_t *body, size_t body_size, int64_t retry_ms,
                          size_t headroom, size_t *json_size_p)
{
    uint8_t *frame = pl_transcode_error_body (id, id_size, code, message, outcome, body,
                                              body_size, headroom, json_size_p);
    //  A JSON object has each key once: a plugin's retry_after_ms is its
    //  own, kept as it is
    if (!frame || retry_ms <= 0 || s_has_key (body, body_size, "retry_after_ms"))
        return frame;
    //  Reopen the finished object: its closing brace is the last byte
    pl_buf_t output = { .data = frame, .size = headroom + *json_size_p,
                        .capacity = headroom + *json_size_p };
    output.size--;
    char field [48];
    int length = snprintf (field, sizeof field, ",\"retry_after_ms\":%lld}",
                           (long long) retry_ms);
    pl_buf_append (&output, field, (size_t) length);
    return s_finish (&output, headroom, json_size_p);
}


//  --------------------------------------------------------------------------
//  The type a client's request travels under (proto/ENVELOPE.md, "Client
//  types"): the broker routes by type and shards by one field, and a typing
//  belongs to the rooms plugin or the pm plugin by the field it has

const char *
pl_transcode_route_type (const char *type, const uint8_t *body, size_t body_size)
{
    if (strcmp (type, "typing") == 0)
        return s_has_key (body, body_size, "to") && !s_has_key (body, body_size, "room")
               ? "pm.typing": "msg.typing";
    if (strcmp (type, "msg.typing") == 0 || strcmp (type, "pm.typing") == 0)
        return NULL;                //  the server's own names, not a client's
    if (strncmp (type, "files.", 6) == 0)
        return NULL;                //  the HTTP side's (POST /files, GET /files/<id>)
    return type;
}

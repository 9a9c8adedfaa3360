/*  =========================================================================
    test_transcode - client JSON to msgpack and back
    =========================================================================
*/

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_transcode.h"

#define MAX_SIZE (64 * 1024)

static pl_transcode_status_t
s_parse (const char *json, pl_request_t *request)
{
    return pl_transcode_request (json, strlen (json), MAX_SIZE, PL_TRANSCODE_MAX_DEPTH, request);
}

//  Parse json and write it back as a frame; caller frees
static char *
s_round_trip (const char *json)
{
    pl_request_t request;
    assert_int_equal (s_parse (json, &request), PL_TRANSCODE_OK);
    size_t size;
    uint8_t *frame = pl_transcode_frame (request.type, request.id, request.id_size,
                                         request.body, request.body_size, 0, &size);
    assert_non_null (frame);
    char *text = (char *) malloc (size + 1);
    memcpy (text, frame, size);
    text [size] = 0;
    free (frame);
    pl_request_reset (&request);
    return text;
}

static void
s_assert_round_trip (const char *json, const char *expected)
{
    char *text = s_round_trip (json);
    assert_string_equal (text, expected);
    free (text);
}

static void
s_assert_status (const char *json, pl_transcode_status_t status)
{
    pl_request_t request;
    assert_int_equal (s_parse (json, &request), status);
    if (status != PL_TRANSCODE_OK) {
        assert_null (request.type);
        assert_null (request.body);
        assert_true (strlen (request.error) > 0);
    }
    pl_request_reset (&request);
}

//  depth levels of objects in all: the request and depth - 1 inside it
static char *
s_nested (int depth)
{
    char *json = (char *) malloc (depth * 8 + 32);
    strcpy (json, "{\"type\":\"x\"");
    if (depth > 1) {
        strcat (json, ",\"a\":");
        for (int level = 2; level < depth; level++)
            strcat (json, "{\"a\":");
        strcat (json, "{}");
        for (int level = 2; level < depth; level++)
            strcat (json, "}");
    }
    strcat (json, "}");
    return json;
}

static void
test_valid_frame_gives_type_id_and_body (void **state)
{
    pl_request_t request;
    assert_int_equal (s_parse ("{\"type\":\"room.join\",\"id\":7,\"room\":\"general\"}", &request),
                      PL_TRANSCODE_OK);
    assert_string_equal (request.type, "room.join");
    //  id 7 is a positive fixint
    assert_int_equal (request.id_size, 1);
    assert_int_equal (request.id [0], 7);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    assert_int_equal (msgpack_unpack_next (&unpacked, (const char *) request.body,
                                           request.body_size, NULL),
                      MSGPACK_UNPACK_SUCCESS);
    msgpack_object body = unpacked.data;
    assert_int_equal (body.type, MSGPACK_OBJECT_MAP);
    assert_int_equal (body.via.map.size, 1);
    msgpack_object_kv *pair = &body.via.map.ptr [0];
    assert_int_equal (pair->key.type, MSGPACK_OBJECT_STR);
    assert_memory_equal (pair->key.via.str.ptr, "room", 4);
    assert_int_equal (pair->val.type, MSGPACK_OBJECT_STR);
    assert_memory_equal (pair->val.via.str.ptr, "general", 7);
    msgpack_unpacked_destroy (&unpacked);
    pl_request_reset (&request);
    pl_request_reset (&request);        //  safe twice
}

static void
test_frame_without_id_has_no_id (void **state)
{
    pl_request_t request;
    assert_int_equal (s_parse ("{\"type\":\"ping\"}", &request), PL_TRANSCODE_OK);
    assert_null (request.id);
    assert_int_equal (request.id_size, 0);
    pl_request_reset (&request);
    s_assert_round_trip ("{\"type\":\"ping\"}", "{\"type\":\"ping\"}");
}

static void
test_invalid_json_is_bad_json (void **state)
{
    s_assert_status ("", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("   ", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{'type':'x'}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\"} {}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\"} garbage", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\" /* comment */}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"n\":01}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"n\":NaN}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\\q\"}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("[1,2", PL_TRANSCODE_BAD_JSON);
    pl_request_t request;
    s_parse ("{\"type\":", &request);
    assert_string_equal (request.error, "The frame is not valid JSON.");
    pl_request_reset (&request);
}

static void
test_id_with_leading_zero_is_bad_json_without_id (void **state)
{
    //  yajl reads "051" as the number 0 and only then fails on "51": the
    //  id was never valid JSON, so the reply must not carry 0
    const char *cases [] = {
        "{\"type\":\"ping\",\"id\":051}",
        "{\"id\":051,\"type\":\"ping\"}",
        "{\"id\":-051,\"type\":\"ping\"}",
        "{\"id\":0x1,\"type\":\"ping\"}",
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        pl_request_t request;
        assert_int_equal (s_parse (cases [index], &request), PL_TRANSCODE_BAD_JSON);
        assert_null (request.id);
        pl_request_reset (&request);
    }
    //  0 itself, and numbers ended by each character JSON allows, are fine
    const char *good [] = {
        "{\"id\":0,\"type\":\"ping\"}",
        "{\"id\":0}", "{\"type\":\"x\",\"id\":0 }", "{\"type\":\"x\",\"n\":[1,2]}",
        "{\"type\":\"x\",\"n\":1\n}", "{\"type\":\"x\",\"n\":-1.5e3\t}",
    };
    for (size_t index = 0; index < sizeof (good) / sizeof (good [0]); index++) {
        pl_request_t request;
        s_parse (good [index], &request);
        assert_int_not_equal (request.status, PL_TRANSCODE_BAD_JSON);
        pl_request_reset (&request);
    }
    pl_request_t request;
    assert_int_equal (s_parse ("{\"id\":7,\"type\":\"x\",\"n\":012}", &request),
                      PL_TRANSCODE_BAD_JSON);
    assert_non_null (request.id);       //  read whole before the fault: carried
    pl_request_reset (&request);
}

static void
test_non_object_is_bad_request (void **state)
{
    s_assert_status ("[]", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("[{\"type\":\"x\"}]", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("\"type\"", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("42", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("null", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("true", PL_TRANSCODE_BAD_REQUEST);
    pl_request_t request;
    s_parse ("[1]", &request);
    assert_string_equal (request.error, "The frame is not a JSON object.");
    pl_request_reset (&request);
}

static void
test_depth_16_accepted_and_17_refused (void **state)
{
    char *json = s_nested (16);
    s_assert_status (json, PL_TRANSCODE_OK);
    free (json);
    json = s_nested (17);
    pl_request_t request;
    assert_int_equal (s_parse (json, &request), PL_TRANSCODE_BAD_REQUEST);
    assert_string_equal (request.error, "The frame nests deeper than 16 levels.");
    pl_request_reset (&request);
    free (json);
    //  Arrays count as levels too
    s_assert_status ("{\"type\":\"x\",\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}", PL_TRANSCODE_OK);
    s_assert_status ("{\"type\":\"x\",\"a\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}",
                     PL_TRANSCODE_BAD_REQUEST);
    //  Very deep input is refused without trouble
    json = (char *) malloc (40000);
    strcpy (json, "{\"type\":\"x\",\"a\":");
    size_t length = strlen (json);
    memset (json + length, '[', 19000);
    memset (json + length + 19000, ']', 19000);
    strcpy (json + length + 38000, "}");
    s_assert_status (json, PL_TRANSCODE_BAD_REQUEST);
    free (json);
}

static void
test_frame_over_max_size_is_too_large (void **state)
{
    const char *json = "{\"type\":\"x\",\"text\":\"0123456789\"}";
    pl_request_t request;
    assert_int_equal (pl_transcode_request (json, strlen (json), 10, 16, &request),
                      PL_TRANSCODE_TOO_LARGE);
    assert_string_equal (request.error, "The frame is larger than 10 bytes.");
    assert_null (request.body);
    pl_request_reset (&request);
    assert_int_equal (pl_transcode_request (json, strlen (json), strlen (json), 16, &request),
                      PL_TRANSCODE_OK);
    pl_request_reset (&request);
}

static void
test_invalid_utf8_in_strings_is_bad_json (void **state)
{
    //  A lone continuation byte, a truncated sequence, overlong '/' and NUL,
    //  an encoded surrogate, a code point over U+10FFFF, 0xff
    const char *cases [] = {
        "{\"type\":\"x\",\"t\":\"\x80\"}",
        "{\"type\":\"x\",\"t\":\"\xc3\"}",
        "{\"type\":\"x\",\"t\":\"\xc0\xaf\"}",
        "{\"type\":\"x\",\"t\":\"\xc0\x80\"}",
        "{\"type\":\"x\",\"t\":\"\xe0\x80\xaf\"}",
        "{\"type\":\"x\",\"t\":\"\xf0\x80\x80\xaf\"}",
        "{\"type\":\"x\",\"t\":\"\xed\xa0\x80\"}",
        "{\"type\":\"x\",\"t\":\"\xed\xbf\xbf\"}",
        "{\"type\":\"x\",\"t\":\"\xf4\x90\x80\x80\"}",
        "{\"type\":\"x\",\"t\":\"\xff\"}",
        "{\"type\":\"\xc0\xaf\"}",
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases [0]); index++) {
        pl_request_t request;
        assert_int_equal (s_parse (cases [index], &request), PL_TRANSCODE_BAD_JSON);
        pl_request_reset (&request);
    }
    //  Valid multibyte text passes: 2, 3 and 4 bytes, and the extremes
    s_assert_status ("{\"type\":\"x\",\"t\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                     "\xef\xbf\xbf\xf4\x8f\xbf\xbf\"}", PL_TRANSCODE_OK);
}

static void
test_invalid_utf8_in_keys_is_bad_json (void **state)
{
    s_assert_status ("{\"type\":\"x\",\"\xc0\xaf\":1}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"\xed\xa0\x80\":1}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"a\":{\"\x80\":1}}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"\xff\":1,\"type\":\"x\"}", PL_TRANSCODE_BAD_JSON);
}

static void
test_lone_surrogate_escapes_are_bad_json (void **state)
{
    s_assert_status ("{\"type\":\"x\",\"t\":\"\\ud800\"}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"t\":\"\\udc00\"}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"t\":\"\\ud800\\u0041\"}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"t\":\"\\ud800x\"}", PL_TRANSCODE_BAD_JSON);
    s_assert_status ("{\"type\":\"x\",\"\\udfff\":1}", PL_TRANSCODE_BAD_JSON);
    //  An escaped backslash before "u" is no escape
    s_assert_status ("{\"type\":\"x\",\"t\":\"\\\\ud800\"}", PL_TRANSCODE_OK);
}

static void
test_unicode_escapes_decode_to_utf8 (void **state)
{
    s_assert_round_trip ("{\"type\":\"x\",\"t\":\"\\u00e9\\u20ac\\ud83d\\ude00\\u0041\"}",
                         "{\"type\":\"x\",\"t\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                         "A\"}");
    //  \u0000 survives as a control character, escaped on the way out
    s_assert_round_trip ("{\"type\":\"x\",\"t\":\"a\\u0000b\\u001f\"}",
                         "{\"type\":\"x\",\"t\":\"a\\u0000b\\u001f\"}");
}

static void
test_id_as_integer_is_kept (void **state)
{
    s_assert_round_trip ("{\"type\":\"x\",\"id\":-42}", "{\"type\":\"x\",\"id\":-42}");
    s_assert_round_trip ("{\"id\":18446744073709551615,\"type\":\"x\"}",
                         "{\"type\":\"x\",\"id\":18446744073709551615}");
    s_assert_round_trip ("{\"type\":\"x\",\"id\":-9223372036854775808}",
                         "{\"type\":\"x\",\"id\":-9223372036854775808}");
}

static void
test_id_as_string_is_kept (void **state)
{
    char json [200];
    char id [65];
    memset (id, 'i', 64);
    id [64] = 0;
    snprintf (json, sizeof (json), "{\"type\":\"x\",\"id\":\"%s\"}", id);
    s_assert_round_trip (json, json);
    s_assert_round_trip ("{\"type\":\"x\",\"id\":\"\"}", "{\"type\":\"x\",\"id\":\"\"}");
}

static void
test_id_of_65_bytes_is_refused (void **state)
{
    char json [200];
    char id [66];
    memset (id, 'i', 65);
    id [65] = 0;
    snprintf (json, sizeof (json), "{\"type\":\"x\",\"id\":\"%s\"}", id);
    pl_request_t request;
    assert_int_equal (s_parse (json, &request), PL_TRANSCODE_BAD_REQUEST);
    assert_string_equal (request.error,
                         "The field 'id' must be an integer or a string of at most 64 bytes.");
    assert_null (request.id);
    pl_request_reset (&request);
}

static void
test_id_of_other_kinds_is_refused (void **state)
{
    s_assert_status ("{\"type\":\"x\",\"id\":{}}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":{\"a\":1}}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":[1]}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":1.5}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":1e3}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":true}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":null}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":18446744073709551616}", PL_TRANSCODE_BAD_REQUEST);
}

static void
test_id_read_before_an_error_is_kept (void **state)
{
    pl_request_t request;
    //  Missing type
    assert_int_equal (s_parse ("{\"id\":5,\"room\":1}", &request), PL_TRANSCODE_BAD_REQUEST);
    assert_non_null (request.id);
    assert_int_equal (request.id [0], 5);
    pl_request_reset (&request);
    //  Bad JSON after the id
    assert_int_equal (s_parse ("{\"id\":\"abc\",\"type\":", &request), PL_TRANSCODE_BAD_JSON);
    assert_int_equal (request.id_size, 4);
    assert_memory_equal (request.id, "\xa3" "abc", 4);
    pl_request_reset (&request);
    //  Too deep before the id: the id is still found
    char *json = s_nested (17);
    char *with_id = (char *) malloc (strlen (json) + 16);
    strcpy (with_id, json);
    strcpy (with_id + strlen (with_id) - 1, ",\"id\":9}");
    assert_int_equal (s_parse (with_id, &request), PL_TRANSCODE_BAD_REQUEST);
    assert_non_null (request.id);
    assert_int_equal (request.id [0], 9);
    pl_request_reset (&request);
    free (with_id);
    free (json);
    //  The error frame carries it back
    assert_int_equal (s_parse ("{\"id\":5}", &request), PL_TRANSCODE_BAD_REQUEST);
    size_t size;
    uint8_t *frame = pl_transcode_error (request.id, request.id_size, "bad_request",
                                         request.error, 0, &size);
    const char *expected = "{\"type\":\"error\",\"id\":5,\"code\":\"bad_request\","
                           "\"message\":\"The field 'type' is missing or not a string.\"}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
    pl_request_reset (&request);
}

static void
test_missing_type_is_bad_request (void **state)
{
    pl_request_t request;
    assert_int_equal (s_parse ("{\"room\":\"general\"}", &request), PL_TRANSCODE_BAD_REQUEST);
    assert_string_equal (request.error, "The field 'type' is missing or not a string.");
    pl_request_reset (&request);
    s_assert_status ("{}", PL_TRANSCODE_BAD_REQUEST);
    //  Nested "type" is not the frame's type
    s_assert_status ("{\"a\":{\"type\":\"x\"}}", PL_TRANSCODE_BAD_REQUEST);
}

static void
test_type_not_a_string_is_bad_request (void **state)
{
    s_assert_status ("{\"type\":1}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":null}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":true}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":[\"x\"]}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":{\"x\":1}}", PL_TRANSCODE_BAD_REQUEST);
    //  An embedded NUL would cut the type short
    s_assert_status ("{\"type\":\"auth.\\u0000x\"}", PL_TRANSCODE_BAD_REQUEST);
}

static void
test_duplicate_top_level_keys_are_bad_request (void **state)
{
    pl_request_t request;
    assert_int_equal (s_parse ("{\"type\":\"x\",\"room\":1,\"room\":2}", &request),
                      PL_TRANSCODE_BAD_REQUEST);
    assert_string_equal (request.error, "The field 'room' appears more than once.");
    pl_request_reset (&request);
    s_assert_status ("{\"type\":\"x\",\"type\":\"y\"}", PL_TRANSCODE_BAD_REQUEST);
    s_assert_status ("{\"type\":\"x\",\"id\":1,\"id\":2}", PL_TRANSCODE_BAD_REQUEST);
    //  The same key in different nested objects, or nested repeats, are fine
    s_assert_status ("{\"type\":\"x\",\"a\":{\"k\":1},\"b\":{\"k\":1}}", PL_TRANSCODE_OK);
    //  Many distinct keys are not mistaken for repeats
    char *json = (char *) malloc (20 * 2000 + 32);
    strcpy (json, "{\"type\":\"x\"");
    size_t length = strlen (json);
    for (int index = 0; index < 2000; index++)
        length += sprintf (json + length, ",\"k%d\":%d", index, index);
    strcpy (json + length, "}");
    s_assert_status (json, PL_TRANSCODE_OK);
    strcpy (json + length, ",\"k1999\":0}");
    s_assert_status (json, PL_TRANSCODE_BAD_REQUEST);
    free (json);
}

static void
test_numbers_keep_their_values (void **state)
{
    s_assert_round_trip ("{\"type\":\"x\",\"a\":0,\"b\":-1,\"c\":9223372036854775807,"
                         "\"d\":18446744073709551615,\"e\":-9223372036854775808}",
                         "{\"type\":\"x\",\"a\":0,\"b\":-1,\"c\":9223372036854775807,"
                         "\"d\":18446744073709551615,\"e\":-9223372036854775808}");
    //  Too big for any integer: a double
    s_assert_round_trip ("{\"type\":\"x\",\"a\":18446744073709551616,"
                         "\"b\":-9223372036854775809}",
                         "{\"type\":\"x\",\"a\":1.8446744073709552e+19,"
                         "\"b\":-9.223372036854776e+18}");
    s_assert_round_trip ("{\"type\":\"x\",\"a\":1.5,\"b\":-0.1,\"c\":1e3,\"d\":2.5E-3,"
                         "\"e\":1.0,\"f\":0.1,\"g\":1e308}",
                         "{\"type\":\"x\",\"a\":1.5,\"b\":-0.1,\"c\":1000.0,\"d\":0.0025,"
                         "\"e\":1.0,\"f\":0.1,\"g\":1e+308}");
    //  Out of range for a double: written back as null, still valid JSON
    s_assert_round_trip ("{\"type\":\"x\",\"a\":1e999}", "{\"type\":\"x\",\"a\":null}");
    //  Round trip keeps every double exactly
    char *text = s_round_trip ("{\"type\":\"x\",\"a\":0.30000000000000004}");
    assert_string_equal (text, "{\"type\":\"x\",\"a\":0.30000000000000004}");
    free (text);
}

static void
test_round_trip_preserves_values (void **state)
{
    const char *json =
        "{\"type\":\"msg.send\",\"id\":\"r-1\",\"room\":\"general\",\"text\":\"h\\\"i\\\\ \\n\","
        "\"tags\":[1,\"two\",3.5,true,false,null,{\"k\":[]},[]],\"meta\":{\"a\":{\"b\":{}}},"
        "\"empty\":\"\",\"unicode\":\"\xc3\xa9t\xc3\xa9\"}";
    s_assert_round_trip (json, json);
    //  Escaped input comes out in the short form
    s_assert_round_trip ("{\"type\":\"x\",\"t\":\"\\/\\b\\f\\r\\t\"}",
                         "{\"type\":\"x\",\"t\":\"/\\b\\f\\r\\t\"}");
    //  Whitespace is not kept
    s_assert_round_trip (" { \"type\" : \"x\" , \"a\" : [ 1 , 2 ] } ",
                         "{\"type\":\"x\",\"a\":[1,2]}");
}

//  Pack helpers for hand-made bodies
static int
s_sbuffer_body (msgpack_sbuffer *buffer, msgpack_packer *packer)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer_init (packer, buffer, msgpack_sbuffer_write);
    return 0;
}

static char *
s_frame_text (const char *type, const void *body, size_t body_size)
{
    size_t size;
    uint8_t *frame = pl_transcode_frame (type, NULL, 0, (const uint8_t *) body, body_size, 16,
                                         &size);
    if (!frame)
        return NULL;
    char *text = (char *) malloc (size + 1);
    memcpy (text, frame + 16, size);
    text [size] = 0;
    free (frame);
    return text;
}

static void
test_frame_escapes_strings_and_replaces_bad_utf8 (void **state)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    s_sbuffer_body (&buffer, &packer);
    msgpack_pack_map (&packer, 2);
    msgpack_pack_str_with_body (&packer, "t", 1);
    msgpack_pack_str_with_body (&packer, "q\"b\\c\x01\x7f\n", 8);
    msgpack_pack_str_with_body (&packer, "u", 1);
    msgpack_pack_str_with_body (&packer, "a\xc0\xaf" "b\xed\xa0\x80" "c\xe2\x82", 10);
    char *text = s_frame_text ("event", buffer.data, buffer.size);
    assert_non_null (text);
    assert_string_equal (text, "{\"type\":\"event\",\"t\":\"q\\\"b\\\\c\\u0001\x7f\\n\","
                               "\"u\":\"a\xef\xbf\xbd\xef\xbf\xbd"
                               "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                               "c\xef\xbf\xbd\xef\xbf\xbd\"}");
    free (text);
    msgpack_sbuffer_destroy (&buffer);
}

static void
test_frame_writes_nan_and_infinity_as_null (void **state)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    s_sbuffer_body (&buffer, &packer);
    msgpack_pack_map (&packer, 3);
    msgpack_pack_str_with_body (&packer, "a", 1);
    msgpack_pack_double (&packer, 0.0 / 0.0);
    msgpack_pack_str_with_body (&packer, "b", 1);
    msgpack_pack_double (&packer, -1.0 / 0.0);
    msgpack_pack_str_with_body (&packer, "c", 1);
    msgpack_pack_float (&packer, 0.5f);
    char *text = s_frame_text (NULL, buffer.data, buffer.size);
    assert_string_equal (text, "{\"a\":null,\"b\":null,\"c\":0.5}");
    free (text);
    msgpack_sbuffer_destroy (&buffer);
}

static void
test_frame_converts_other_keys_to_strings (void **state)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    s_sbuffer_body (&buffer, &packer);
    msgpack_pack_map (&packer, 5);
    msgpack_pack_int (&packer, -3);
    msgpack_pack_bin_with_body (&packer, "x", 1);
    msgpack_pack_true (&packer);
    msgpack_pack_nil (&packer);
    msgpack_pack_nil (&packer);
    msgpack_pack_ext_with_body (&packer, "e", 1, 3);
    msgpack_pack_array (&packer, 2);
    msgpack_pack_int (&packer, 1);
    msgpack_pack_str_with_body (&packer, "s", 1);
    msgpack_pack_int (&packer, 0);
    msgpack_pack_double (&packer, 2.0);
    msgpack_pack_uint64 (&packer, UINT64_MAX);
    char *text = s_frame_text (NULL, buffer.data, buffer.size);
    assert_string_equal (text, "{\"-3\":null,\"true\":null,\"null\":null,"
                               "\"[1,\\\"s\\\"]\":0,\"2.0\":18446744073709551615}");
    free (text);
    msgpack_sbuffer_destroy (&buffer);
}

static void
test_frame_skips_type_and_id_fields_of_the_body (void **state)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    s_sbuffer_body (&buffer, &packer);
    msgpack_pack_map (&packer, 3);
    msgpack_pack_str_with_body (&packer, "type", 4);
    msgpack_pack_str_with_body (&packer, "sneaky", 6);
    msgpack_pack_str_with_body (&packer, "id", 2);
    msgpack_pack_int (&packer, 99);
    msgpack_pack_str_with_body (&packer, "seq", 3);
    msgpack_pack_int (&packer, 4);
    uint8_t id [] = {0x07};
    size_t size;
    uint8_t *frame = pl_transcode_frame ("ok", id, sizeof (id), (const uint8_t *) buffer.data,
                                         buffer.size, 4, &size);
    const char *expected = "{\"type\":\"ok\",\"id\":7,\"seq\":4}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame + 4, expected, size);
    free (frame);
    //  Without a type the body is written as it is (events)
    char *text = s_frame_text (NULL, buffer.data, buffer.size);
    assert_string_equal (text, "{\"type\":\"sneaky\",\"id\":99,\"seq\":4}");
    free (text);
    msgpack_sbuffer_destroy (&buffer);
    //  No body at all
    frame = pl_transcode_frame ("ok", NULL, 0, NULL, 0, 0, &size);
    assert_memory_equal (frame, "{\"type\":\"ok\"}", size);
    free (frame);
}

static void
test_frame_refuses_malformed_msgpack (void **state)
{
    size_t size;
    //  Not a map, truncated, trailing bytes, a huge declared count, 0xc1
    const char *bodies [] = {"\x91\x01", "\x82\xa1" "a", "\x80\x80", "\xdf\xff\xff\xff\xff",
                             "\x81\xa1" "a\xc1", "\x81\xa1" "a\xdd\x7f\xff\xff\xff"};
    size_t sizes [] = {2, 3, 2, 5, 4, 8};
    for (size_t index = 0; index < sizeof (sizes) / sizeof (sizes [0]); index++)
        assert_null (pl_transcode_frame ("x", NULL, 0, (const uint8_t *) bodies [index],
                                         sizes [index], 0, &size));
    //  A bad id is refused too
    assert_null (pl_transcode_frame ("x", (const uint8_t *) "\xa5" "ab", 3, NULL, 0, 0, &size));
}

static void
test_frame_refuses_msgpack_nested_deeper_than_64 (void **state)
{
    uint8_t body [200];
    body [0] = 0x81;
    body [1] = 0xa1;
    body [2] = 'a';
    //  The body map is level 1; 63 more arrays make 64
    for (int index = 0; index < 63; index++)
        body [3 + index] = 0x91;
    body [66] = 0x01;
    size_t size;
    uint8_t *frame = pl_transcode_frame (NULL, NULL, 0, body, 67, 0, &size);
    assert_non_null (frame);
    free (frame);
    for (int index = 0; index < 64; index++)
        body [3 + index] = 0x91;
    body [67] = 0x01;
    assert_null (pl_transcode_frame (NULL, NULL, 0, body, 68, 0, &size));
}

static void
test_error_frame_escapes_its_message (void **state)
{
    size_t size;
    uint8_t *frame = pl_transcode_error ((const uint8_t *) "\xa2" "r1", 3, "bad_json",
                                         "Say \"hi\"\n", 8, &size);
    const char *expected = "{\"type\":\"error\",\"id\":\"r1\",\"code\":\"bad_json\","
                           "\"message\":\"Say \\\"hi\\\"\\n\"}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame + 8, expected, size);
    free (frame);
    frame = pl_transcode_error (NULL, 0, "too_large", "Too large.", 0, &size);
    expected = "{\"type\":\"error\",\"code\":\"too_large\",\"message\":\"Too large.\"}";
    assert_memory_equal (frame, expected, size);
    free (frame);
    //  An error whose request may have taken effect says so
    frame = pl_transcode_error_outcome ((const uint8_t *) "\x07", 1, "internal", "Lost.",
                                        "unknown", 0, &size);
    expected = "{\"type\":\"error\",\"id\":7,\"code\":\"internal\",\"message\":\"Lost.\","
               "\"outcome\":\"unknown\"}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
}

static void
test_error_frame_with_a_body_carries_its_fields (void **state)
{
    //  {"retry_after_ms": 1500, "code": "x", "type": "y"}: the body may not
    //  replace code, type, id or message
    const uint8_t body [] = { 0x83, 0xae, 'r','e','t','r','y','_','a','f','t','e','r','_','m','s',
                              0xcd, 0x05, 0xdc, 0xa4, 'c','o','d','e', 0xa1, 'x',
                              0xa4, 't','y','p','e', 0xa1, 'y' };
    size_t size;
    uint8_t *frame = pl_transcode_error_body ((const uint8_t *) "\x07", 1, "rate_limited",
                                              "Slow down.", NULL, body, sizeof body, 4, &size);
    const char *expected = "{\"type\":\"error\",\"id\":7,\"code\":\"rate_limited\","
                           "\"message\":\"Slow down.\",\"retry_after_ms\":1500}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame + 4, expected, size);
    free (frame);
    //  No body, or one that is not a map: the plain error, never lost
    frame = pl_transcode_error_body (NULL, 0, "internal", "Oops.", NULL, NULL, 0, 0, &size);
    expected = "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"Oops.\"}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
    const uint8_t not_a_map [] = { 0x91, 0x01 };
    frame = pl_transcode_error_body (NULL, 0, "internal", "Oops.", NULL, not_a_map,
                                     sizeof not_a_map, 0, &size);
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
    //  With an outcome: it stays, and a body cannot replace it
    const uint8_t outcome_body [] = { 0x81, 0xa7, 'o','u','t','c','o','m','e', 0xa2, 'n','o' };
    frame = pl_transcode_error_body (NULL, 0, "internal", "Oops.", "unknown", outcome_body,
                                     sizeof outcome_body, 0, &size);
    expected = "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"Oops.\","
               "\"outcome\":\"unknown\"}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
}

//  The gateway's floor: retry_after_ms when the body gives none, the
//  body's own when it does
static void
test_error_frame_with_retry_keeps_a_given_retry_or_adds_one (void **state)
{
    size_t size;
    uint8_t *frame = pl_transcode_error_retry ((const uint8_t *) "\x07", 1, "unavailable",
                                               "Busy.", NULL, NULL, 0, 1000, 0, &size);
    const char *expected = "{\"type\":\"error\",\"id\":7,\"code\":\"unavailable\","
                           "\"message\":\"Busy.\",\"retry_after_ms\":1000}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
    const uint8_t given [] = { 0x82, 0xa1, 'x', 0x01, 0xae, 'r','e','t','r','y','_','a','f','t',
                               'e','r','_','m','s', 0xcd, 0x05, 0xdc };
    frame = pl_transcode_error_retry (NULL, 0, "rate_limited", "Slow.", NULL, given,
                                      sizeof given, 1000, 0, &size);
    expected = "{\"type\":\"error\",\"code\":\"rate_limited\",\"message\":\"Slow.\","
               "\"x\":1,\"retry_after_ms\":1500}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
    //  With an outcome; a body that is not a map still gets ours; 0 adds none
    const uint8_t wrong [] = { 0x91, 0x01 };
    frame = pl_transcode_error_retry (NULL, 0, "unavailable", "Down.", "unknown", wrong,
                                      sizeof wrong, 800, 0, &size);
    expected = "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"Down.\","
               "\"outcome\":\"unknown\",\"retry_after_ms\":800}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
    frame = pl_transcode_error_retry (NULL, 0, "internal", "Oops.", NULL, NULL, 0, 0, 0, &size);
    expected = "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"Oops.\"}";
    assert_int_equal (size, strlen (expected));
    assert_memory_equal (frame, expected, size);
    free (frame);
}

static void
test_body_is_a_msgpack_map_of_the_other_fields (void **state)
{
    pl_request_t request;
    assert_int_equal (s_parse ("{\"a\":[1,{\"b\":2}],\"type\":\"x\",\"id\":1,\"c\":{}}", &request),
                      PL_TRANSCODE_OK);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    size_t offset = 0;
    assert_int_equal (msgpack_unpack_next (&unpacked, (const char *) request.body,
                                           request.body_size, &offset),
                      MSGPACK_UNPACK_SUCCESS);
    assert_int_equal (offset, request.body_size);
    msgpack_object body = unpacked.data;
    assert_int_equal (body.type, MSGPACK_OBJECT_MAP);
    assert_int_equal (body.via.map.size, 2);
    msgpack_object a = body.via.map.ptr [0].val;
    assert_int_equal (a.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal (a.via.array.size, 2);
    assert_int_equal (a.via.array.ptr [1].type, MSGPACK_OBJECT_MAP);
    assert_int_equal (a.via.array.ptr [1].via.map.size, 1);
    assert_int_equal (body.via.map.ptr [1].val.via.map.size, 0);
    msgpack_unpacked_destroy (&unpacked);
    pl_request_reset (&request);
}

//  The route type of a frame's request (NULL: refused)
static const char *
s_route_type (const char *json)
{
    pl_request_t request;
    assert_int_equal (s_parse (json, &request), PL_TRANSCODE_OK);
    const char *type = pl_transcode_route_type (request.type, request.body,
                                                request.body_size);
    //  A literal, or NULL: the request can go
    pl_request_reset (&request);
    return type;
}

static void
test_a_typing_goes_to_the_plugin_of_its_field (void **state)
{
    assert_string_equal (s_route_type ("{\"type\":\"typing\",\"room\":\"general\"}"),
                         "msg.typing");
    assert_string_equal (s_route_type ("{\"type\":\"typing\",\"to\":\"bob\"}"),
                         "pm.typing");
    //  Both or neither: the rooms plugin answers bad_request
    assert_string_equal (s_route_type ("{\"type\":\"typing\",\"to\":\"bob\","
                                       "\"room\":\"general\"}"), "msg.typing");
    assert_string_equal (s_route_type ("{\"type\":\"typing\"}"), "msg.typing");
    assert_string_equal (s_route_type ("{\"type\":\"typing\",\"to\":null}"), "pm.typing");
    //  The server's own names are not a client's
    assert_null (s_route_type ("{\"type\":\"msg.typing\",\"room\":\"general\"}"));
    assert_null (s_route_type ("{\"type\":\"pm.typing\",\"to\":\"bob\"}"));
    //  Nor the files plugin's, which only the gateway's HTTP side sends
    assert_null (s_route_type ("{\"type\":\"files.upload\",\"upload\":\"x\"}"));
    assert_null (s_route_type ("{\"type\":\"files.get\",\"file\":\"x\"}"));
    assert_null (s_route_type ("{\"type\":\"files.\"}"));
    assert_string_equal (pl_transcode_route_type ("filesx", NULL, 0), "filesx");
    //  Anything else goes as it came
    pl_request_t request;
    assert_int_equal (s_parse ("{\"type\":\"msg.send\",\"to\":1}", &request),
                      PL_TRANSCODE_OK);
    assert_ptr_equal (pl_transcode_route_type (request.type, request.body, request.body_size),
                      request.type);
    pl_request_reset (&request);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_valid_frame_gives_type_id_and_body),
        cmocka_unit_test (test_frame_without_id_has_no_id),
        cmocka_unit_test (test_invalid_json_is_bad_json),
        cmocka_unit_test (test_id_with_leading_zero_is_bad_json_without_id),
        cmocka_unit_test (test_non_object_is_bad_request),
        cmocka_unit_test (test_depth_16_accepted_and_17_refused),
        cmocka_unit_test (test_frame_over_max_size_is_too_large),
        cmocka_unit_test (test_invalid_utf8_in_strings_is_bad_json),
        cmocka_unit_test (test_invalid_utf8_in_keys_is_bad_json),
        cmocka_unit_test (test_lone_surrogate_escapes_are_bad_json),
        cmocka_unit_test (test_unicode_escapes_decode_to_utf8),
        cmocka_unit_test (test_id_as_integer_is_kept),
        cmocka_unit_test (test_id_as_string_is_kept),
        cmocka_unit_test (test_id_of_65_bytes_is_refused),
        cmocka_unit_test (test_id_of_other_kinds_is_refused),
        cmocka_unit_test (test_id_read_before_an_error_is_kept),
        cmocka_unit_test (test_missing_type_is_bad_request),
        cmocka_unit_test (test_type_not_a_string_is_bad_request),
        cmocka_unit_test (test_duplicate_top_level_keys_are_bad_request),
        cmocka_unit_test (test_numbers_keep_their_values),
        cmocka_unit_test (test_round_trip_preserves_values),
        cmocka_unit_test (test_frame_escapes_strings_and_replaces_bad_utf8),
        cmocka_unit_test (test_frame_writes_nan_and_infinity_as_null),
        cmocka_unit_test (test_frame_converts_other_keys_to_strings),
        cmocka_unit_test (test_frame_skips_type_and_id_fields_of_the_body),
        cmocka_unit_test (test_frame_refuses_malformed_msgpack),
        cmocka_unit_test (test_frame_refuses_msgpack_nested_deeper_than_64),
        cmocka_unit_test (test_error_frame_escapes_its_message),
        cmocka_unit_test (test_error_frame_with_a_body_carries_its_fields),
        cmocka_unit_test (test_error_frame_with_retry_keeps_a_given_retry_or_adds_one),
        cmocka_unit_test (test_body_is_a_msgpack_map_of_the_other_fields),
        cmocka_unit_test (test_a_typing_goes_to_the_plugin_of_its_field),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}

/*  =========================================================================
    fuzz_transcode - pl_transcode_request on arbitrary bytes; whatever it
    accepts, pl_transcode_frame must write back as JSON that parses again
    and writes back the same
    =========================================================================
*/

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pl_transcode.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    pl_request_t request;
    pl_transcode_request ((const char *) data, size, 64 * 1024, PL_TRANSCODE_MAX_DEPTH, &request);
    if (request.status == PL_TRANSCODE_OK) {
        if (!request.type || !request.body)
            abort ();
        size_t json_size;
        uint8_t *json = pl_transcode_frame (request.type, request.id, request.id_size,
                                            request.body, request.body_size, 16, &json_size);
        if (!json)
            abort ();
        //  What we write must read back as a request, and writing that
        //  again must give the same text: one pass reaches a fixed point
        //  (not the input itself: whitespace, escapes and infinities change)
        pl_request_t again;
        if (pl_transcode_request ((const char *) json + 16, json_size, 1024 * 1024,
                                  PL_TRANSCODE_MAX_DEPTH, &again) != PL_TRANSCODE_OK)
            abort ();
        if (strcmp (again.type, request.type) != 0 || again.id_size != request.id_size
        ||  (request.id && memcmp (again.id, request.id, request.id_size) != 0))
            abort ();
        size_t again_size;
        uint8_t *again_json = pl_transcode_frame (again.type, again.id, again.id_size,
                                                  again.body, again.body_size, 0, &again_size);
        if (!again_json || again_size != json_size
        ||  memcmp (again_json, json + 16, json_size) != 0)
            abort ();
        free (again_json);
        pl_request_reset (&again);
        free (json);
    }
    else {
        if (request.type || request.body || request.error [0] == 0)
            abort ();
        size_t json_size;
        uint8_t *json = pl_transcode_error (request.id, request.id_size, "bad_request",
                                            request.error, 0, &json_size);
        if (!json)
            abort ();
        free (json);
    }
    pl_request_reset (&request);
    return 0;
}

/*  =========================================================================
    fuzz_envelope - pl_envelope_decode on arbitrary bytes; whatever it
    accepts must encode and decode again to the same bytes
    =========================================================================
*/

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pl_envelope.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    pl_envelope_t *envelope = pl_envelope_decode (data, size, NULL, 0);
    if (!envelope)
        return 0;
    size_t encoded_size;
    uint8_t *encoded = pl_envelope_encode (envelope, &encoded_size);
    if (!encoded)
        abort ();
    char reason [128];
    pl_envelope_t *again = pl_envelope_decode (encoded, encoded_size, reason, sizeof (reason));
    if (!again)
        abort ();
    //  Encoding is canonical: the second encoding is the first
    size_t again_size;
    uint8_t *again_encoded = pl_envelope_encode (again, &again_size);
    if (!again_encoded || again_size != encoded_size
    ||  memcmp (again_encoded, encoded, encoded_size) != 0)
        abort ();
    pl_envelope_t *copy = pl_envelope_dup (again);
    pl_envelope_destroy (&copy);
    free (again_encoded);
    free (encoded);
    pl_envelope_destroy (&again);
    pl_envelope_destroy (&envelope);
    return 0;
}

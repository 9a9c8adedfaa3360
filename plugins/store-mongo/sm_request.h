/*  =========================================================================
    sm_request - a typed request of the store front, as store-mongo runs it

    The front (plugins/store) parses and validates every request; its slot
    in store-mongo's batch (sm_pending_t) takes what the runs need of it:
    the names and their lower-cased keys under the names the runs use, the
    conversation's key of a pm request, the first entry or seq of a run.
    =========================================================================
*/

#ifndef SM_REQUEST_H_INCLUDED
#define SM_REQUEST_H_INCLUDED

#include "sm_store.h"

//  Fills pending (all of it) from request, which it borrows for the run.
//  A request refused at validation gets only its type.
void
    sm_request_load (sm_pending_t *pending, st_request_t *request);

#endif

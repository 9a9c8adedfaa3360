/*  =========================================================================
    pl_call - calls to another plugin, each with its own handler and context

    host->call hands one opaque cookie back through the descriptor's
    on_reply. Without help a plugin must tell its answers apart from that
    cookie alone (an enum at the head of each cookie, static addresses for
    the calls nobody waits for). pl_call keeps, for each call, the handler
    to run and the context (arg) to run it with: the plugin's on_reply is
    one line, and the code that sends a request is next to the code that
    reads its answer.

        self->calls = pl_call_new (host, ctx, self);             //  in init
        ...
        pl_call_send (self->calls, "store.user.get", body, size, s_on_user, op);
        ...
        static void
        s_on_user (void *state, void *arg, const pl_call_reply_t *reply)
        {
            if (reply->code) ...        //  an error, or unavailable (timeout:
                                        //  reply->outcome_unknown)
            const msgpack_object *name = pl_body_field (reply->body, "name");
        }
        ...
        //  The descriptor's on_reply
        pl_call_reply (self->calls, cookie, code, message, body, size);

    Every call sent gets exactly one handler run (the host answers a call
    that times out "unavailable"), unless the plugin forgets the arg first
    (pl_call_forget) or destroys the caller. The caller owns the pl_call_t;
    the arg stays the plugin's: pl_call never frees it. One thread, the
    plugin instance's, like every host function.
    =========================================================================
*/

#ifndef PL_CALL_H_INCLUDED
#define PL_CALL_H_INCLUDED

#include "parley_plugin.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _pl_call_t pl_call_t;

//  One answer, borrowed for the handler's run only
typedef struct {
    const char *type;               //  the type that was called ("store.user.get")
    const char *code;               //  NULL for ok, else the error code
    const char *message;            //  the error's sentence, or NULL
    const msgpack_object *body;     //  ok: the result map; NULL on an error, or
                                    //  when the answer had no body or not a map
    bool outcome_unknown;           //  an error after which the call may have
                                    //  taken effect (the callee went silent or
                                    //  died with it): ABI minor 3. An error
                                    //  without it changed nothing.
    int64_t retry_ms;               //  the error's retry_after_ms; 0 if none
} pl_call_reply_t;

//  Runs once per call with the state given to pl_call_new and the call's arg
typedef void (pl_call_fn) (void *state, void *arg, const pl_call_reply_t *reply);

//  A caller for one plugin instance; state is handed to every handler.
//  Returns NULL when out of memory. Caller owns return value.
pl_call_t *
    pl_call_new (const parley_host_t *host, parley_ctx_t *ctx, void *state);

//  Drops the calls still waiting (their handlers never run: call it from
//  the plugin's destroy), destroys the caller, nullifies the reference.
void
    pl_call_destroy (pl_call_t **self_p);

//  Sends type with body (a msgpack map; copied) and runs handler (state,
//  arg, reply) when the answer comes. Returns 0, or -1 when the call could
//  not be sent (out of memory, or host->call refused it): then no handler
//  will run and the caller answers for itself.
int
    pl_call_send (pl_call_t *self, const char *type, const void *body, size_t size,
                  pl_call_fn *handler, void *arg);

//  The same with a deadline: the callee has time_left_ms to answer
//  (host->call_within, ABI minor 3; on an older host the call goes without
//  one). A negative time_left_ms is pl_call_send's rule (a call made while
//  the host hands the plugin a request inherits that request's deadline);
//  0 sends nothing and returns -1: the time is gone.
int
    pl_call_send_within (pl_call_t *self, const char *type, const void *body, size_t size,
                         int64_t time_left_ms, pl_call_fn *handler, void *arg);

//  The descriptor's on_reply: the cookie is the call's record (a plugin
//  that uses pl_call sends every call through it); unpacks the body and
//  runs the call's handler, once. Returns 0, or -1 for a NULL cookie or one
//  whose record is not live (nothing runs).
int
    pl_call_reply (pl_call_t *self, void *cookie, const char *code, const char *message,
                   const uint8_t *body, size_t size);

//  The calls waiting with arg will not run their handlers: for an arg the
//  plugin is about to free. Returns how many calls it silenced.
size_t
    pl_call_forget (pl_call_t *self, const void *arg);

//  Calls sent whose answer has not come yet (silenced ones included)
size_t
    pl_call_waiting (pl_call_t *self);

#ifdef __cplusplus
}
#endif

#endif

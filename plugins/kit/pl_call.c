/*  =========================================================================
    pl_call - calls to another plugin, each with its own handler and context

    The cookie host->call carries is the call's own record. Records sit in a
    doubly linked list so that destroy can free those whose answer never
    came, and forget can silence those of one arg, without a table.
    =========================================================================
*/

#include "pl_call.h"
#include "pl_body.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Marks a live record: a guard, in builds without ASan, against a cookie
//  that is no call of ours (a plugin's bug)
#define S_CALL_LIVE     0x706c63616c6cULL       //  "plcall"
#define S_TYPE_SIZE     64                      //  a type's bytes kept for the reply

typedef struct s_pending_s s_pending_t;
struct s_pending_s {
    uint64_t live;                  //  S_CALL_LIVE while waiting
    pl_call_fn *handler;            //  NULL once forgotten
    void *arg;                      //  the plugin's, never freed here
    char type [S_TYPE_SIZE];        //  what was called, for the handler's logs
    s_pending_t *prev;
    s_pending_t *next;
};

struct _pl_call_t {
    const parley_host_t *host;      //  the host's table, not owned
    parley_ctx_t *ctx;              //  the host's handle, not owned
    void *state;                    //  the plugin's, handed to each handler
    s_pending_t *head;              //  calls waiting, owned
    size_t waiting;
};

static void
s_unlink (pl_call_t *self, s_pending_t *pending)
{
    if (pending->prev)
        pending->prev->next = pending->next;
    else
        self->head = pending->next;
    if (pending->next)
        pending->next->prev = pending->prev;
    self->waiting--;
    pending->live = 0;
}

pl_call_t *
pl_call_new (const parley_host_t *host, parley_ctx_t *ctx, void *state)
{
    assert (host);
    pl_call_t *self = (pl_call_t *) calloc (1, sizeof (pl_call_t));
    if (self) {
        self->host = host;
        self->ctx = ctx;
        self->state = state;
    }
    return self;
}

void
pl_call_destroy (pl_call_t **self_p)
{
    assert (self_p);
    pl_call_t *self = *self_p;
    if (!self)
        return;
    //  The host drops the calls of a destroyed instance: their answers
    //  never come, so their records go now
    while (self->head) {
        s_pending_t *pending = self->head;
        s_unlink (self, pending);
        free (pending);
    }
    free (self);
    *self_p = NULL;
}

//  host->call_within when the host has it (minor 3), else host->call
static int
s_host_call (pl_call_t *self, const char *type, const void *body, size_t size,
             void *cookie, int64_t time_left_ms)
{
    const parley_host_t *host = self->host;
    if (host->abi_minor >= 3 && host->call_within)
        return host->call_within (self->ctx, type, body, size, cookie, time_left_ms);
    return host->call (self->ctx, type, body, size, cookie);
}

int
pl_call_send (pl_call_t *self, const char *type, const void *body, size_t size,
              pl_call_fn *handler, void *arg)
{
    return pl_call_send_within (self, type, body, size, -1, handler, arg);
}

int
pl_call_send_within (pl_call_t *self, const char *type, const void *body, size_t size,
                     int64_t time_left_ms, pl_call_fn *handler, void *arg)
{
    assert (self);
    assert (type && handler);
    if (time_left_ms == 0)
        return -1;              //  the time is gone: nothing is started
    s_pending_t *pending = (s_pending_t *) calloc (1, sizeof (s_pending_t));
    if (!pending)
        return -1;
    pending->live = S_CALL_LIVE;
    pending->handler = handler;
    pending->arg = arg;
    snprintf (pending->type, sizeof pending->type, "%s", type);
    if (s_host_call (self, type, body, size, pending, time_left_ms)) {
        free (pending);         //  never sent: no answer will come
        return -1;
    }
    pending->next = self->head;
    if (self->head)
        self->head->prev = pending;
    self->head = pending;
    self->waiting++;
    return 0;
}

//  An error's fields (ABI minor 3): its outcome and retry_after_ms
static void
s_error_fields (const msgpack_object *fields, pl_call_reply_t *reply)
{
    const char *outcome;
    size_t outcome_size;
    if (pl_body_strn (fields, "outcome", &outcome, &outcome_size) == 1
    &&  outcome_size == 7 && memcmp (outcome, "unknown", 7) == 0)
        reply->outcome_unknown = true;
    uint64_t retry_ms = 0;
    if (pl_body_uint (fields, "retry_after_ms", &retry_ms) == 1 && retry_ms <= INT64_MAX)
        reply->retry_ms = (int64_t) retry_ms;
}

int
pl_call_reply (pl_call_t *self, void *cookie, const char *code, const char *message,
               const uint8_t *body, size_t size)
{
    assert (self);
    s_pending_t *pending = (s_pending_t *) cookie;
    if (!pending || pending->live != S_CALL_LIVE)
        return -1;
    s_unlink (self, pending);

    //  The record leaves the list before the handler runs: the handler may
    //  send new calls, forget others, or free the arg
    pl_call_fn *handler = pending->handler;
    if (handler) {
        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        const msgpack_object *fields = pl_body_unpack (&unpacked, body, size);
        pl_call_reply_t reply = {
            .type = pending->type, .code = code, .message = message,
            .body = code ? NULL : fields
        };
        if (code && fields)
            s_error_fields (fields, &reply);
        handler (self->state, pending->arg, &reply);
        msgpack_unpacked_destroy (&unpacked);
    }
    free (pending);
    return 0;
}

size_t
pl_call_forget (pl_call_t *self, const void *arg)
{
    assert (self);
    size_t forgotten = 0;
    for (s_pending_t *pending = self->head; pending; pending = pending->next)
        if (pending->arg == arg && pending->handler) {
            pending->handler = NULL;
            forgotten++;
        }
    return forgotten;
}

size_t
pl_call_waiting (pl_call_t *self)
{
    assert (self);
    return self->waiting;
}

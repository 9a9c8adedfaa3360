/*  =========================================================================
    presence - who is online: presence.list and the coalesced "presence"
    events (PROTOCOL.md, "Presence")

    The state comes from the broker's session events only: BOUND counts a
    session for its user, CLOSED uncounts it, RESET forgets every session
    (the BOUND snapshot follows). A user is online while the count is above
    zero; going offline records last_seen, written to the store in batches
    (store.user.seen).

    Events are cheap however many sessions there are. Every change of a
    user's published state takes the next position of a change log, and the
    user moves to the log's tail (so the log holds each user once, in the
    order of their last change). A session remembers the position it was
    last sent up to and when it may be sent again; sessions that share both
    form a group, and a group gets one event, encoded once, delivered with
    one deliver_sessions call. After the send the group sits at the log's
    tail, merged with every other group sent in the same pass. A storm of N
    logins thus costs each session one event per second, and costs the
    plugin one encoding per group, not per session.

    Run exactly one instance: every instance hears every session event and
    would send every event again.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_body.h"
#include "pl_call.h"
#include "pl_hash.h"
#include "pl_limits.h"
#include "pl_options.h"
#include "pl_pack.h"
#include "pl_reply.h"
#include "pl_text.h"
#include "pl_time.h"

#include <czmq.h>
#include <inttypes.h>
#include <msgpack.h>
#include <time.h>

//  --------------------------------------------------------------------------
//  Limits and defaults

#define PRESENCE_INTERVAL_MS        1000        //  at most one event per session per this
#define PRESENCE_TICK_MS            100         //  the timer that sends delayed events
#define PRESENCE_GRACE_MS           3000        //  after a RESET, time for users to come back
#define PRESENCE_CHECKPOINT_S       60          //  last_seen of online users written this often
#define PRESENCE_EVENT_USERS_MAX    10000       //  users in one event (bodies stay < 1 MiB)
#define PRESENCE_DELIVER_SIDS_MAX   10000       //  sessions in one deliver_sessions call
#define PRESENCE_WRITES_MAX         8           //  store.user.seen calls in flight
#define PRESENCE_RETRY_MS           2000        //  after a failed write
#define PRESENCE_UNAVAILABLE_RETRY_MS 1000      //  retry_after_ms of presence.list's unavailable
#define PRESENCE_LIST_PAGE          PL_STORE_LIST_MAX   //  store.user.list limit: the largest
#define PRESENCE_LIST_BUDGET_MIN    64          //  bytes: the list_budget option's least
#define PRESENCE_OPTION_MS_MAX      (24LL * 3600 * 1000)    //  the options' largest value


//  --------------------------------------------------------------------------
//  State

typedef struct group_s group_t;

//  A user who has had a bound session since this instance started
typedef struct user_s user_t;
struct user_s {
    char *name;                     //  as bound: as registered
    char *key;                      //  lower-cased name: the users table's key
    size_t sessions;                //  bound sessions now
    bool online;                    //  the state last published
    bool held;                      //  online when the state was RESET, not back yet
    uint64_t change;                //  log position of the last change; 0: none
    user_t *log_prev;               //  neighbours in the change log, oldest first
    user_t *log_next;
    int64_t last_seen;              //  wall-clock ms the user went offline; 0: not here
    bool seen_dirty;                //  seen_value waits to be written
    int64_t seen_value;             //  the last_seen to write
    user_t *seen_next;              //  next in the write queue
};

//  A bound session
typedef struct session_s session_t;
struct session_s {
    uint64_t sid;                   //  the table's key, stored here
    user_t *user;                   //  its user, not owned
    group_t *group;                 //  its group, not owned
    session_t *prev;                //  neighbours in the group
    session_t *next;
};

//  Sessions sent up to the same position that may be sent again at the same time
struct group_s {
    uint64_t position;              //  the change log position they have seen
    int64_t not_before;             //  monotonic ms of their next allowed event
    size_t size;                    //  sessions in it
    session_t *first;               //  the sessions, not owned
    group_t *prev;                  //  neighbours in presence_t.groups
    group_t *next;
};

//  A presence.list in progress: store.user.list pages merged with the state
typedef struct list_s list_t;
struct list_s {
    parley_request_t *request;      //  lent by the host until we reply
    msgpack_sbuffer entries;        //  the users packed so far
    size_t count;                   //  entries packed
    char after [PL_STORE_NAME_MAX + 1];  //  the last name of the last page
    pl_reply_budget_t budget;       //  JSON bytes the users may take in the reply
    bool cut;                       //  the budget is spent: answer with next = after
    list_t *prev;                   //  neighbours in presence_t.lists
    list_t *next;
};

//  A store.user.seen in flight: what to put back if it fails
typedef struct write_s write_t;
struct write_s {
    size_t count;                   //  entries
    user_t *users [PL_STORE_SEEN_MAX];    //  not owned: users live as long as we do
    int64_t values [PL_STORE_SEEN_MAX];   //  the last_seen sent for each
    write_t *prev;                  //  neighbours in presence_t.writes
    write_t *next;
};

typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  store calls in flight, each with its handler
    int64_t interval_ms;            //  least time between two events to a session
    int64_t grace_ms;               //  after a RESET, time for users to come back
    int64_t checkpoint_ms;          //  last_seen of online users written this often; 0 never
    int64_t tick_ms;                //  the timer's interval
    int64_t list_budget;            //  JSON bytes of the users of one presence.list
    int timer;                      //  the tick timer
    zhashx_t *users;                //  key -> user_t *, owned
    zhashx_t *sessions;             //  &sid -> session_t *, owned
    uint64_t position;              //  the change log's last position
    user_t *log_head;               //  the change log: oldest change first
    user_t *log_tail;
    group_t *groups;                //  every group, owned
    group_t *fresh;                 //  where sessions bound since the last flush go
    bool holding;                   //  users are held after a RESET
    int64_t held_until;             //  monotonic ms: when held users go offline
    int64_t next_checkpoint;        //  monotonic ms
    user_t *seen_head;              //  the write queue of last_seen values
    user_t *seen_tail;
    int64_t retry_at;               //  monotonic ms: no writes before, after a failure
    bool store_failing;             //  a write failed and none succeeded since
    size_t writes_in_flight;        //  store.user.seen calls not answered yet
    write_t *writes;                //  those calls, owned
    list_t *lists;                  //  presence.list in progress, owned
    uint64_t events_sent;           //  presence events delivered (calls), for the log
    uint64_t changes;               //  state changes published, for the log
} presence_t;


//  --------------------------------------------------------------------------
//  Users and the change log

static void
s_user_destroy (user_t **self_p)
{
    user_t *self = *self_p;
    if (self) {
        free (self->name);
        free (self->key);
        free (self);
        *self_p = NULL;
    }
}

//  Finds the user, or creates them. Returns NULL only when out of memory.
static user_t *
s_user_require (presence_t *self, const char *name)
{
    char *key = strdup (name);
    if (!key)
        return NULL;
    pl_text_lower (key);
    user_t *user = (user_t *) zhashx_lookup (self->users, key);
    if (user) {
        free (key);
        return user;
    }
    user = (user_t *) calloc (1, sizeof (user_t));
    if (!user || !(user->name = strdup (name))) {
        free (user);
        free (key);
        return NULL;
    }
    user->key = key;
    zhashx_insert (self->users, user->key, user);
    return user;
}

//  Queues user's last_seen for the next store.user.seen
static void
s_seen_queue (presence_t *self, user_t *user, int64_t value)
{
    user->seen_value = value;
    if (user->seen_dirty)
        return;
    user->seen_dirty = true;
    user->seen_next = NULL;
    if (self->seen_tail)
        self->seen_tail->seen_next = user;
    else
        self->seen_head = user;
    self->seen_tail = user;
}

//  Publishes the user's state if it differs from the sessions they have.
//  A user held after a RESET stays online until the grace ends.
static void
s_user_update (presence_t *self, user_t *user)
{
    bool online = user->sessions > 0;
    if (online)
        user->held = false;
    if (online == user->online || (!online && user->held))
        return;

    user->online = online;
    if (!online) {
        user->last_seen = pl_time_now ();
        s_seen_queue (self, user, user->last_seen);
    }
    //  To the tail of the change log
    if (user->change) {
        if (user->log_prev)
            user->log_prev->log_next = user->log_next;
        else
            self->log_head = user->log_next;
        if (user->log_next)
            user->log_next->log_prev = user->log_prev;
        else
            self->log_tail = user->log_prev;
    }
    user->log_prev = self->log_tail;
    user->log_next = NULL;
    if (self->log_tail)
        self->log_tail->log_next = user;
    else
        self->log_head = user;
    self->log_tail = user;
    user->change = ++self->position;
    self->changes++;
    self->host->log (self->ctx, PARLEY_LOG_DEBUG, "'%s' is %s", user->name,
                     online ? "online" : "offline");
}


//  --------------------------------------------------------------------------
//  Groups of sessions

static group_t *
s_group_new (presence_t *self, uint64_t position, int64_t not_before)
{
    group_t *group = (group_t *) calloc (1, sizeof (group_t));
    if (!group)
        return NULL;
    group->position = position;
    group->not_before = not_before;
    group->next = self->groups;
    if (self->groups)
        self->groups->prev = group;
    self->groups = group;
    return group;
}

//  Unlinks an empty group and frees it
static void
s_group_destroy (presence_t *self, group_t **group_p)
{
    group_t *group = *group_p;
    assert (group->size == 0);
    if (group == self->fresh)
        self->fresh = NULL;
    if (group->prev)
        group->prev->next = group->next;
    else
        self->groups = group->next;
    if (group->next)
        group->next->prev = group->prev;
    free (group);
    *group_p = NULL;
}

static void
s_group_add (group_t *group, session_t *session)
{
    session->group = group;
    session->prev = NULL;
    session->next = group->first;
    if (group->first)
        group->first->prev = session;
    group->first = session;
    group->size++;
}

static void
s_group_remove (presence_t *self, session_t *session)
{
    group_t *group = session->group;
    if (session->prev)
        session->prev->next = session->next;
    else
        group->first = session->next;
    if (session->next)
        session->next->prev = session->prev;
    session->group = NULL;
    session->prev = session->next = NULL;
    if (--group->size == 0)
        s_group_destroy (self, &group);
}

//  Moves every session of from into into, and frees from
static void
s_group_merge (presence_t *self, group_t *into, group_t **from_p)
{
    group_t *from = *from_p;
    session_t *last = NULL;
    for (session_t *session = from->first; session; session = session->next) {
        session->group = into;
        last = session;
    }
    if (last) {
        last->next = into->first;
        if (into->first)
            into->first->prev = last;
        into->first = from->first;
        into->size += from->size;
    }
    from->first = NULL;
    from->size = 0;
    s_group_destroy (self, from_p);
}

//  Where a session bound now starts: with the sessions bound since the last
//  flush, or else at the log's tail, free to be sent. Sessions bound in one
//  batch thus share one group and one event, at the price of hearing of the
//  logins of that batch that came before theirs (their own included).
static group_t *
s_group_for_new (presence_t *self, int64_t now)
{
    if (self->fresh)
        return self->fresh;
    for (group_t *group = self->groups; group; group = group->next)
        if (group->position == self->position && group->not_before <= now) {
            self->fresh = group;
            return group;
        }
    self->fresh = s_group_new (self, self->position, 0);
    return self->fresh;
}

//  Packs {"type": "presence", "users": [{user, online}]} for count users
//  of the change log from *user_p on; leaves *user_p after the last
static void
s_event_pack (pl_pack_t *pack, user_t **user_p, size_t count)
{
    pl_pack_map (pack, 2);
    pl_pack_kstr (pack, "type", "presence");
    pl_pack_str (pack, "users");
    msgpack_pack_array (&pack->packer, count);
    user_t *user = *user_p;
    for (size_t index = 0; index < count; index++, user = user->log_next) {
        pl_pack_map (pack, 2);
        pl_pack_kstr (pack, "user", user->name);
        pl_pack_kbool (pack, "online", user->online);
    }
    *user_p = user;
}

//  Delivers one encoded event to the sessions, PRESENCE_DELIVER_SIDS_MAX
//  per call
static void
s_event_deliver (presence_t *self, const uint64_t *sids, size_t sid_count, pl_pack_t *pack)
{
    for (size_t from = 0; from < sid_count; from += PRESENCE_DELIVER_SIDS_MAX) {
        size_t some = sid_count - from < PRESENCE_DELIVER_SIDS_MAX
                    ? sid_count - from : PRESENCE_DELIVER_SIDS_MAX;
        if (self->host->deliver_sessions (self->ctx, sids + from, some,
                                          pack->buffer.data, pack->buffer.size))
            self->host->log (self->ctx, PARLEY_LOG_WARNING,
                             "a presence event to %zu sessions could not be queued", some);
        else
            self->events_sent++;
    }
}

//  Encodes the event for a group at position (every user changed since, with
//  the state now) and delivers it to the group's sessions. Large changes are
//  split into several events, so that each body fits an envelope.
static void
s_group_send (presence_t *self, group_t *group)
{
    //  The users changed since position are the log's tail after it
    user_t *first = NULL;
    size_t count = 0;
    for (user_t *user = self->log_tail; user && user->change > group->position;
         user = user->log_prev) {
        first = user;
        count++;
    }
    if (count == 0)
        return;

    uint64_t *sids = (uint64_t *) malloc (group->size * sizeof (uint64_t));
    if (!sids) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "out of memory: a presence event to %zu sessions was dropped",
                         group->size);
        return;
    }
    size_t sid_count = 0;
    for (session_t *session = group->first; session; session = session->next)
        sids [sid_count++] = session->sid;

    user_t *user = first;
    pl_pack_t pack;
    pl_pack_init (&pack);
    while (count) {
        size_t chunk = count < PRESENCE_EVENT_USERS_MAX ? count : PRESENCE_EVENT_USERS_MAX;
        pl_pack_clear (&pack);
        s_event_pack (&pack, &user, chunk);
        count -= chunk;
        s_event_deliver (self, sids, sid_count, &pack);
    }
    pl_pack_release (&pack);
    free (sids);
}

//  Sends every group that has something new and may be sent now; afterwards
//  they form one group at the log's tail. Idle groups free to be sent merge
//  too, so that the number of groups stays small.
static void
s_groups_flush (presence_t *self)
{
    int64_t now = pl_time_mono ();
    group_t *sent = NULL;
    group_t *idle = NULL;
    group_t *group = self->groups;
    while (group) {
        if (group->not_before > now) {
            group = group->next;
            continue;
        }
        if (group->position == self->position) {
            group_t *next = group->next;
            if (group != sent) {
                if (idle)
                    s_group_merge (self, idle, &group);
                else
                    idle = group;
            }
            group = next;
            continue;
        }
        //  Groups free now at the same position would get the same event
        for (group_t *other = group->next; other; ) {
            group_t *next = other->next;
            if (other->position == group->position && other->not_before <= now)
                s_group_merge (self, group, &other);
            other = next;
        }
        s_group_send (self, group);
        group->position = self->position;
        //  Rounded up to a whole tick, so that groups sent at different
        //  moments of one tick are free again together, get the same event
        //  and merge: the number of groups stays about one per tick
        int64_t free_at = now + self->interval_ms;
        group->not_before = (free_at + self->tick_ms - 1) / self->tick_ms * self->tick_ms;
        group_t *next = group->next;
        if (sent)
            s_group_merge (self, sent, &group);
        else
            sent = group;
        group = next;
    }
    //  Sessions bound from now on start at the log's tail again
    self->fresh = NULL;
}


//  --------------------------------------------------------------------------
//  Sessions

//  The sessions table's destructor
static void
s_session_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static void
s_session_close (presence_t *self, session_t *session)
{
    user_t *user = session->user;
    s_group_remove (self, session);
    zhashx_delete (self->sessions, &session->sid);      //  frees session
    if (user->sessions)
        user->sessions--;
    s_user_update (self, user);
}

static void
s_session_bound (presence_t *self, uint64_t sid, const char *name)
{
    session_t *session = (session_t *) zhashx_lookup (self->sessions, &sid);
    if (session) {
        if (strcmp (session->user->name, name) == 0)
            return;             //  told twice
        s_session_close (self, session);
    }
    user_t *user = s_user_require (self, name);
    session = user ? (session_t *) calloc (1, sizeof (session_t)) : NULL;
    if (!session) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "out of memory: session %" PRIx64 " of '%s' is not counted", sid, name);
        return;
    }
    //  The change first, then the session joins (presence.list gives it the
    //  picture up to now)
    user->sessions++;
    s_user_update (self, user);
    group_t *group = s_group_for_new (self, pl_time_mono ());
    if (!group) {
        free (session);
        user->sessions--;
        s_user_update (self, user);
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "out of memory: session %" PRIx64 " of '%s' is not counted", sid, name);
        return;
    }
    session->sid = sid;
    session->user = user;
    zhashx_insert (self->sessions, &session->sid, session);
    s_group_add (group, session);
}

static void
s_sessions_reset (presence_t *self)
{
    //  Every session goes; the users online now are held until they come
    //  back with the BOUND snapshot, or the grace ends
    while (self->groups) {
        group_t *group = self->groups;
        self->groups = group->next;
        free (group);
    }
    self->fresh = NULL;
    zhashx_purge (self->sessions);
    size_t held = 0;
    for (user_t *user = (user_t *) zhashx_first (self->users); user;
         user = (user_t *) zhashx_next (self->users)) {
        user->sessions = 0;
        if (user->online) {
            user->held = true;
            held++;
        }
    }
    self->holding = held > 0;
    self->held_until = pl_time_mono () + self->grace_ms;
    self->host->log (self->ctx, held ? PARLEY_LOG_INFO : PARLEY_LOG_DEBUG,
                     "session registry reset: %zu users online are held for %lld ms",
                     held, (long long) self->grace_ms);
}

static void
s_release_held (presence_t *self)
{
    size_t gone = 0;
    for (user_t *user = (user_t *) zhashx_first (self->users); user;
         user = (user_t *) zhashx_next (self->users)) {
        if (user->held) {
            user->held = false;
            s_user_update (self, user);
            if (!user->online)
                gone++;
        }
    }
    self->holding = false;
    if (gone)
        self->host->log (self->ctx, PARLEY_LOG_INFO,
                         "%zu users did not come back after the reset: offline", gone);
}


//  --------------------------------------------------------------------------
//  last_seen writes (store.user.seen)

//  A write of the next PL_STORE_SEEN_MAX queued values, taken off the
//  queue; NULL when out of memory (the queue is left as it is)
static write_t *
s_write_take (presence_t *self)
{
    write_t *write = (write_t *) calloc (1, sizeof (write_t));
    if (!write)
        return NULL;
    while (self->seen_head && write->count < PL_STORE_SEEN_MAX) {
        user_t *user = self->seen_head;
        self->seen_head = user->seen_next;
        if (!self->seen_head)
            self->seen_tail = NULL;
        user->seen_dirty = false;
        user->seen_next = NULL;
        write->users [write->count] = user;
        write->values [write->count] = user->seen_value;
        write->count++;
    }
    return write;
}

//  Puts back the values of a write that failed or was never sent, unless a
//  newer value of the same user is queued already, and waits before trying
//  again; frees nothing
static void
s_write_put_back (presence_t *self, write_t *write)
{
    for (size_t index = 0; index < write->count; index++)
        if (!write->users [index]->seen_dirty)
            s_seen_queue (self, write->users [index], write->values [index]);
    self->retry_at = pl_time_mono () + PRESENCE_RETRY_MS;
}

static void s_seen_on_reply (void *state, void *arg, const pl_call_reply_t *reply);

//  Sends store.user.seen {users: [{name, last_seen}]} for write. Returns 0,
//  or -1 when it could not be sent (write is still the caller's).
static int
s_write_send (presence_t *self, write_t *write)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_str (&pack, "users");
    msgpack_pack_array (&pack.packer, write->count);
    for (size_t index = 0; index < write->count; index++) {
        pl_pack_map (&pack, 2);
        pl_pack_kstr (&pack, "name", write->users [index]->name);
        pl_pack_kint (&pack, "last_seen", write->values [index]);
    }
    int rc = pl_call_send (self->calls, "store.user.seen", pack.buffer.data, pack.buffer.size,
                           s_seen_on_reply, write);
    pl_pack_release (&pack);
    return rc;
}

//  Sends the queued last_seen values, PL_STORE_SEEN_MAX per request
static void
s_seen_flush (presence_t *self, bool force)
{
    if (!self->seen_head)
        return;
    if (!force && pl_time_mono () < self->retry_at)
        return;
    while (self->seen_head && (force || self->writes_in_flight < PRESENCE_WRITES_MAX)) {
        write_t *write = s_write_take (self);
        if (!write) {
            self->host->log (self->ctx, PARLEY_LOG_ERROR,
                             "out of memory: last_seen writes postponed");
            return;
        }
        if (s_write_send (self, write)) {
            //  Nothing was sent: back into the queue, tried again later
            s_write_put_back (self, write);
            free (write);
            self->host->log (self->ctx, PARLEY_LOG_WARNING,
                             "store.user.seen could not be sent; retrying in %d ms",
                             PRESENCE_RETRY_MS);
            return;
        }
        write->next = self->writes;
        if (self->writes)
            self->writes->prev = write;
        self->writes = write;
        self->writes_in_flight++;
    }
}

static void
s_seen_on_reply (void *state, void *arg, const pl_call_reply_t *reply)
{
    presence_t *self = (presence_t *) state;
    write_t *write = (write_t *) arg;
    if (write->prev)
        write->prev->next = write->next;
    else
        self->writes = write->next;
    if (write->next)
        write->next->prev = write->prev;
    self->writes_in_flight--;

    if (reply->code) {
        //  Put back what no newer value replaced, and try again later
        s_write_put_back (self, write);
        if (!self->store_failing)
            self->host->log (self->ctx, PARLEY_LOG_WARNING,
                             "last_seen of %zu users not written (%s: %s); retrying every %d ms",
                             write->count, reply->code, reply->message ? reply->message : "",
                             PRESENCE_RETRY_MS);
        self->store_failing = true;
    }
    else
    if (self->store_failing) {
        self->store_failing = false;
        self->host->log (self->ctx, PARLEY_LOG_INFO, "last_seen writes succeed again");
    }
    free (write);
}

//  Queues the last_seen of every user online now (a restart or a crash then
//  loses at most one checkpoint interval)
static void
s_seen_checkpoint (presence_t *self)
{
    int64_t now = pl_time_now ();
    for (user_t *user = (user_t *) zhashx_first (self->users); user;
         user = (user_t *) zhashx_next (self->users))
        if (user->online)
            s_seen_queue (self, user, now);
}


//  --------------------------------------------------------------------------
//  presence.list

static void
s_list_unlink (presence_t *self, list_t *list)
{
    if (list->prev)
        list->prev->next = list->next;
    else
        self->lists = list->next;
    if (list->next)
        list->next->prev = list->prev;
}

static void
s_list_destroy (list_t **list_p)
{
    list_t *list = *list_p;
    if (list) {
        msgpack_sbuffer_destroy (&list->entries);
        free (list);
        *list_p = NULL;
    }
}

//  Fails the request and frees the list
static void
s_list_fail (presence_t *self, list_t *list, const char *code, const char *message)
{
    s_list_unlink (self, list);
    if (strcmp (code, "unavailable") == 0)
        pl_reply_error_retry (self->host, self->ctx, &list->request, code, message,
                              PRESENCE_UNAVAILABLE_RETRY_MS);
    else
        self->host->reply_error (self->ctx, &list->request, code, message);
    s_list_destroy (&list);
}

static void s_list_on_page (void *state, void *arg, const pl_call_reply_t *reply);

//  Asks the store for the page after list->after. Returns 0, or -1 when the
//  call could not be sent (the list is answered and freed then).
static int
s_list_ask (presence_t *self, list_t *list)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    bool first = list->after [0] == 0;
    pl_pack_map (&pack, first ? 1 : 2);
    pl_pack_kuint (&pack, "limit", PRESENCE_LIST_PAGE);
    if (!first)
        pl_pack_kstr (&pack, "after", list->after);
    int rc = pl_call_send (self->calls, "store.user.list", pack.buffer.data, pack.buffer.size,
                           s_list_on_page, list);
    pl_pack_release (&pack);
    if (rc) {
        s_list_fail (self, list, "unavailable",
                     "The user directory cannot be reached now; try again later.");
        return -1;
    }
    return 0;
}

//  Reads the request's cursor, the last name of the previous page, into
//  list->after. Returns 0, or -1 when it is not a name.
static int
s_list_cursor (presence_t *self, list_t *list)
{
    size_t size;
    const uint8_t *body = self->host->request_body (list->request, &size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    const msgpack_object *cursor = pl_body_field (pl_body_unpack (&fields, body, size),
                                                  "cursor");
    int rc = 0;
    if (cursor && cursor->type != MSGPACK_OBJECT_NIL) {
        if (cursor->type != MSGPACK_OBJECT_STR || cursor->via.str.size == 0
        ||  cursor->via.str.size > PL_STORE_NAME_MAX
        ||  memchr (cursor->via.str.ptr, 0, cursor->via.str.size))
            rc = -1;
        else {
            memcpy (list->after, cursor->via.str.ptr, cursor->via.str.size);
            list->after [cursor->via.str.size] = 0;
        }
    }
    msgpack_unpacked_destroy (&fields);
    return rc;
}

//  Adds one packed user to the list if the reply's budget has room; sets
//  list->cut when it has not (the first user always goes in)
static bool
s_list_take (list_t *list, pl_pack_t *entry)
{
    size_t size = pl_reply_json_size_packed (entry->buffer.data, entry->buffer.size);
    if (!pl_reply_budget_take (&list->budget, size) && list->count > 0) {
        list->cut = true;
        return false;
    }
    msgpack_sbuffer_write (&list->entries, entry->buffer.data, entry->buffer.size);
    list->count++;
    return true;
}

static void
s_list_request (presence_t *self, parley_request_t *request)
{
    list_t *list = (list_t *) calloc (1, sizeof (list_t));
    if (!list) {
        self->host->reply_error (self->ctx, &request, "internal",
                                 "The server is out of memory; try again.");
        return;
    }
    list->request = request;
    list->budget = pl_reply_budget ((size_t) self->list_budget);
    msgpack_sbuffer_init (&list->entries);
    if (s_list_cursor (self, list)) {
        self->host->reply_error (self->ctx, &list->request, "bad_request",
                                 "The field 'cursor' must be the 'next' of an earlier "
                                 "presence.list.");
        s_list_destroy (&list);
        return;
    }
    list->next = self->lists;
    if (self->lists)
        self->lists->prev = list;
    self->lists = list;
    s_list_ask (self, list);
}

//  Packs {user, online, last_seen} for one stored user, as this instance
//  knows it now, into entry. Returns false for an entry with no usable name.
static bool
s_list_entry (presence_t *self, const msgpack_object *stored, int64_t now, pl_pack_t *entry)
{
    const char *name;
    size_t name_size;
    if (pl_body_strn (stored, "name", &name, &name_size) != 1 || name_size == 0
    ||  name_size > PL_STORE_NAME_MAX)
        return false;
    char key [PL_STORE_NAME_MAX + 1];
    memcpy (key, name, name_size);
    key [name_size] = 0;
    pl_text_lower (key);
    user_t *user = (user_t *) zhashx_lookup (self->users, key);

    const msgpack_object *seen = pl_body_field (stored, "last_seen");
    int64_t last_seen = 0;
    if (seen && seen->type == MSGPACK_OBJECT_POSITIVE_INTEGER && seen->via.u64 <= INT64_MAX)
        last_seen = (int64_t) seen->via.u64;
    bool online = user && user->online;
    if (online)
        last_seen = now;
    else
    if (user && user->last_seen > last_seen)
        last_seen = user->last_seen;       //  not written yet, or newer

    pl_pack_clear (entry);
    pl_pack_map (entry, 3);
    pl_pack_str (entry, "user");
    pl_pack_strn (entry, name, name_size);
    pl_pack_kbool (entry, "online", online);
    if (last_seen > 0)
        pl_pack_ktime (entry, "last_seen", last_seen);
    else
        pl_pack_kstr (entry, "last_seen", NULL);
    return true;
}

static void s_list_answer (presence_t *self, list_t *list);

//  store.user.list: one page of users, merged with who is online, then the
//  next page or the answer
static void
s_list_on_page (void *state, void *arg, const pl_call_reply_t *reply)
{
    presence_t *self = (presence_t *) state;
    list_t *list = (list_t *) arg;
    if (reply->code || !reply->body) {
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "presence.list failed: store.user.list answered %s (%s)",
                         reply->code ? reply->code : "internal",
                         reply->code ? (reply->message ? reply->message : "") : "not a map");
        s_list_fail (self, list, "unavailable",
                     "The user directory is unavailable now; try again later.");
        return;
    }
    const msgpack_object *users = pl_body_field (reply->body, "users");
    const msgpack_object *more = pl_body_field (reply->body, "more");
    if (!users || users->type != MSGPACK_OBJECT_ARRAY
    ||  (more && more->type != MSGPACK_OBJECT_BOOLEAN)) {
        self->host->log (self->ctx, PARLEY_LOG_ERROR,
                         "store.user.list answered without a users array");
        s_list_fail (self, list, "internal", "The user directory gave a malformed answer.");
        return;
    }
    pl_pack_t entry;
    pl_pack_init (&entry);
    int64_t now = pl_time_now ();
    const msgpack_object *last = NULL;
    for (uint32_t index = 0; index < users->via.array.size && !list->cut; index++) {
        const msgpack_object *stored = &users->via.array.ptr [index];
        if (s_list_entry (self, stored, now, &entry) && s_list_take (list, &entry))
            last = stored;
    }
    pl_pack_release (&entry);
    if (last)
        pl_body_copy (last, "name", list->after, sizeof list->after);
    if (!list->cut && more && more->via.boolean && last) {
        s_list_ask (self, list);
        return;
    }
    s_list_answer (self, list);
}

//  Answers {users, next?}: next, the last name listed, when the reply's
//  budget stopped the list before its end
static void
s_list_answer (presence_t *self, list_t *list)
{
    pl_pack_t reply;
    pl_pack_init (&reply);
    pl_pack_map (&reply, list->cut ? 2 : 1);
    pl_pack_str (&reply, "users");
    msgpack_pack_array (&reply.packer, list->count);
    if (list->entries.size)
        msgpack_sbuffer_write (&reply.buffer, list->entries.data, list->entries.size);
    if (list->cut)
        pl_pack_kstr (&reply, "next", list->after);
    s_list_unlink (self, list);
    self->host->reply (self->ctx, &list->request, reply.buffer.data, reply.buffer.size);
    pl_pack_release (&reply);
    s_list_destroy (&list);
}


//  --------------------------------------------------------------------------
//  The callbacks the host calls, all on this instance's own thread

static void
s_on_tick (void *state)
{
    presence_t *self = (presence_t *) state;
    int64_t now = pl_time_mono ();
    if (self->holding && now >= self->held_until)
        s_release_held (self);
    if (self->checkpoint_ms && now >= self->next_checkpoint) {
        s_seen_checkpoint (self);
        self->next_checkpoint = now + self->checkpoint_ms;
    }
    s_groups_flush (self);
    s_seen_flush (self, false);
}

static void
s_on_batch_end (void *state)
{
    presence_t *self = (presence_t *) state;
    s_groups_flush (self);
    s_seen_flush (self, false);
}

static void
s_on_session (void *state, int event, uint64_t session, const char *user)
{
    presence_t *self = (presence_t *) state;
    if (event == PARLEY_SESSION_RESET)
        s_sessions_reset (self);
    else
    if (event == PARLEY_SESSION_BOUND) {
        if (user && *user)
            s_session_bound (self, session, user);
    }
    else
    if (event == PARLEY_SESSION_CLOSED) {
        session_t *found = (session_t *) zhashx_lookup (self->sessions, &session);
        if (found)
            s_session_close (self, found);
    }
}

static void
s_on_request (void *state, parley_request_t *request)
{
    presence_t *self = (presence_t *) state;
    const char *type = self->host->request_type (request);
    if (type && strcmp (type, "presence.list") == 0)
        s_list_request (self, request);
    else {
        char message [160];
        snprintf (message, sizeof message,
                  "The presence service serves presence.list only, not '%.64s'.",
                  type ? type : "");
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
    }
}

//  Every answer to a store call runs the handler it was sent with
static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    presence_t *self = (presence_t *) state;
    pl_call_reply (self->calls, cookie, code, message, body, size);
}

//  Reads every option into self. Returns 0, or -1 after logging each value
//  refused.
static int
s_options_read (presence_t *self)
{
    pl_options_t options = pl_options (self->host, self->ctx, "presence");
    self->interval_ms = pl_options_int (&options, "interval_ms", PRESENCE_INTERVAL_MS, 1,
                                        PRESENCE_OPTION_MS_MAX);
    self->grace_ms = pl_options_int (&options, "grace_ms", PRESENCE_GRACE_MS, 0,
                                     PRESENCE_OPTION_MS_MAX);
    self->checkpoint_ms = 1000 * pl_options_int (&options, "checkpoint_s",
                                                 PRESENCE_CHECKPOINT_S, 0,
                                                 PRESENCE_OPTION_MS_MAX);
    self->tick_ms = pl_options_int (&options, "tick_ms", PRESENCE_TICK_MS, 10,
                                    PRESENCE_OPTION_MS_MAX);
    //  A reply stays under 1 MiB
    self->list_budget = pl_options_int (&options, "list_budget", PL_REPLY_LIST_BUDGET,
                                        PRESENCE_LIST_BUDGET_MIN, PL_REPLY_LIST_BUDGET);
    return pl_options_refused (&options) ? -1 : 0;
}

//  The tables and the caller. Returns 0, or -1 when out of memory.
static int
s_tables_new (presence_t *self)
{
    self->calls = pl_call_new (self->host, self->ctx, self);
    self->users = zhashx_new ();
    self->sessions = zhashx_new ();
    if (!self->calls || !self->users || !self->sessions)
        return -1;
    zhashx_set_destructor (self->users, (zhashx_destructor_fn *) s_user_destroy);
    zhashx_set_key_duplicator (self->users, NULL);     //  the key lives in the user
    zhashx_set_key_destructor (self->users, NULL);
    zhashx_set_key_hasher (self->sessions, pl_hash_u64);
    zhashx_set_key_comparator (self->sessions, pl_hash_u64_compare);
    zhashx_set_key_duplicator (self->sessions, NULL);  //  the key lives in the session
    zhashx_set_key_destructor (self->sessions, NULL);
    zhashx_set_destructor (self->sessions, s_session_free);
    return 0;
}

static void s_destroy (void **state_p);

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    presence_t *self = (presence_t *) calloc (1, sizeof (presence_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    void *state = self;
    if (s_tables_new (self)) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        s_destroy (&state);
        return -1;
    }
    if (s_options_read (self)) {
        s_destroy (&state);
        return -1;
    }
    self->next_checkpoint = pl_time_mono () + self->checkpoint_ms;
    self->timer = host->timer_add (ctx, (uint32_t) self->tick_ms, s_on_tick);
    if (self->timer < 0) {
        host->log (ctx, PARLEY_LOG_ERROR, "no timer");
        s_destroy (&state);
        return -1;
    }
    host->log (ctx, PARLEY_LOG_INFO,
               "ready: at most one event per %lld ms per session, last_seen of online "
               "users written every %lld s", (long long) self->interval_ms,
               (long long) (self->checkpoint_ms / 1000));
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    presence_t *self = (presence_t *) *state_p;
    if (!self)
        return;
    //  Best effort: whoever is online now was seen now
    if (self->users) {
        s_seen_checkpoint (self);
        size_t queued = 0;
        for (user_t *user = self->seen_head; user; user = user->seen_next)
            queued++;
        if (queued)
            s_seen_flush (self, true);
        self->host->log (self->ctx, PARLEY_LOG_INFO,
                         "stopping: %zu users known, %llu changes, %llu events sent, "
                         "last_seen of %zu users written on the way out", zhashx_size (self->users),
                         (unsigned long long) self->changes,
                         (unsigned long long) self->events_sent, queued);
    }
    //  Requests and calls still waiting are the host's to drop now
    while (self->lists) {
        list_t *list = self->lists;
        self->lists = list->next;
        s_list_destroy (&list);
    }
    while (self->writes) {
        write_t *write = self->writes;
        self->writes = write->next;
        free (write);
    }
    while (self->groups) {
        group_t *group = self->groups;
        self->groups = group->next;
        free (group);
    }
    zhashx_destroy (&self->sessions);
    zhashx_destroy (&self->users);
    pl_call_destroy (&self->calls);
    free (self);
    *state_p = NULL;
}


//  --------------------------------------------------------------------------
//  The descriptor

static const parley_route_t s_routes [] = {
    //  Private: the broker answers unauthenticated before login. One
    //  instance holds all the state, so no sharding.
    { .prefix = "presence.", .flags = 0, .shard = PARLEY_SHARD_NONE },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = PARLEY_PLUGIN_SESSIONS,
    .name = "presence",
    .version = "1.0.0",
    .description = "who is online: presence.list and coalesced presence events",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply,
    .on_batch_end = s_on_batch_end,
    .on_session = s_on_session
};

PARLEY_PLUGIN_DEFINE (s_descriptor)

/*  =========================================================================
    rooms - rooms and group chat: room.* and msg.* (PROTOCOL.md, "Rooms")

    Sharded by room name: the broker sends every request about a room to the
    one instance that owns it (rendezvous hash of the lower-cased name), so
    that instance is the one place the room's seq is assigned. room.list and
    room.directory have no room field; any instance answers them from the
    store (rm_list).

    The rooms are keys of a lane (pl_lane): each room the instance has
    touched is cached (its settings and members, its last seq in the lane),
    loaded from the store on first need, and its requests are served one at
    a time. A write (join, leave, send) takes the next seq and holds the
    room until the store has acknowledged it; only then is the entry
    delivered and the request answered, so a failed write never leaves a
    gap. The sends waiting at the head go to the store as one
    store.msg.append; a conflict or an unknown outcome reloads the room.
    A send's nonce (PROTOCOL.md 1.1) goes with its entry; a repeat is
    answered by the lane (its map, or the store's duplicates), and a send
    refused for its rate or because its sender is not a member is looked up
    first (s_nonce_look_up), so that a repeat is never refused.

    Each request type is a row of s_types: how its fields are read, what is
    checked before the room's queue, and its action on the lane; an action
    is a few small steps, each an answer or one store call.

    Entries go to the room's members with one deliver_users call each,
    encoded once; the broker sends one frame per gateway.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_admin.h"
#include "pl_body.h"
#include "pl_call.h"
#include "pl_entry.h"
#include "pl_change.h"
#include "pl_file.h"
#include "pl_lane.h"
#include "pl_limits.h"
#include "pl_nonce.h"
#include "pl_mention.h"
#include "pl_options.h"
#include "pl_pack.h"
#include "pl_reply.h"
#include "pl_text.h"
#include "pl_throttle.h"
#include "pl_time.h"
#include "pl_timer.h"
#include "rm_list.h"

#include <assert.h>
#include <czmq.h>
#include <ctype.h>
#include <strings.h>
#include <inttypes.h>
#include <msgpack.h>
#include <time.h>

//  --------------------------------------------------------------------------
//  Defaults and bounds of this plugin (the protocol's limits are pl_limits.h)

#define ROOMS_DELIVER_SIDS_MAX      10000       //  sessions in one deliver_sessions call
#define ROOMS_RATE_DEFAULT          20.0        //  msg.send per user per second
#define ROOMS_BURST_DEFAULT         40.0        //  msg.send burst per user
//  PROTOCOL.md 1.1, "Directory and limits": each an option
#define ROOMS_MAX_OWNED_DEFAULT     100         //  rooms a user owns, at most
#define ROOMS_MAX_JOINED_DEFAULT    1000        //  rooms a user belongs to, at most
#define ROOMS_JOIN_MEMBERS_DEFAULT  500         //  members room.join lists, at most
#define ROOMS_MEMBERS_PAGE_DEFAULT  1000        //  members per room.members page
#define ROOMS_LIST_PUBLIC_DEFAULT   200         //  other public rooms room.list gives
#define ROOMS_CURSOR_MAX            64          //  a room.members cursor's bytes
#define ROOMS_NAME_BYTES            260         //  a member's name read from the store
#define ROOMS_TYPING_MS_DEFAULT     2000        //  one typing per user and room this often
#define ROOMS_READ_EVENT_MS_DEFAULT 250         //  one read event per sender and room this
                                                //  often for its own sends


//  --------------------------------------------------------------------------
//  State

//  One client request's fields, read before it enters the room's queue
typedef struct {
    char *room;                     //  the room's name, as asked
    char *argument;                 //  send: the text; invite: the invitee; create:
                                    //  description; members: the cursor's name, lower-cased
    bool text_has_nul;              //  send: the text held a NUL (invalid_text)
    bool is_private;                //  create
    uint32_t max_participants;      //  create
    pl_lane_page_t page;            //  history
    uint64_t seq;                   //  read: the seq read up to
    char **mentions;                //  send: the members the text mentions, as
    size_t mention_count;           //  registered, in order; owned (with the names)
    bool sender_again;              //  send: a later send of its run is its sender's,
                                    //  which tells the sender where its marker is
    bool admin;                     //  the operator's (parleyctl): answered with what
                                    //  was done
    pl_change_t change;             //  send: its reply_to; edit, delete, react: the
                                    //  target and the reaction (the edit's text is
                                    //  argument)
    //  Room administration (PROTOCOL.md 1.1): update's settings given (the
    //  description in argument, has_description), kick's and unban's target
    //  (argument) and ban, and whether the store knows the target
    bool has_description;           //  update
    bool has_private;               //  update: is_private given
    bool ban;                       //  kick
    bool target_known;              //  kick: the target is a user, as registered
} args_t;

//  A room this instance has touched: the lane's state for its key
typedef struct {
    char *name;                     //  as created (as asked until loaded)
    bool exists;                    //  the store has this room (once loaded)
    char *description;              //  may be empty
    bool is_private;
    uint32_t max_participants;
    char *owner;                    //  as registered
    int64_t created_at;             //  wall-clock ms
    uint64_t loading_seq;           //  the last seq store.room.get gave, until the
                                    //  members are loaded too
    zlistx_t *members;              //  char * names as registered, sorted lower-cased
} room_t;

typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  every store call, owned
    pl_lane_t *lane;                //  the rooms, by lower-cased name, owned
    pl_file_check_t *files;         //  sends with a file, looked up first (PROTOCOL.md
                                    //  1.1 "Files"), owned
    zhashx_t *sessions;             //  "sid" -> user name (char *), owned
    zhashx_t *online;               //  lower-cased user -> session count (as a pointer)
    rm_list_t *lists;               //  room.list and room.directory, owned
    double rate;                    //  msg.send and room.invite per user per second
                                    //  (0: no limit), for the lane
    double burst;                   //  a user's sends at once, for the lane
    uint32_t list_public;           //  other public rooms room.list gives, for rm_list
    int64_t idle_ms;                //  idle rooms leave the cache after this
    uint64_t nonce_cache;           //  nonces each room remembers, for the lane
    uint64_t max_owned;             //  rooms a user owns, at most; 0 for no limit
    uint64_t max_joined;            //  rooms a user belongs to, at most; 0 for no limit
    size_t join_members;            //  members room.join lists, at most
    size_t members_page;            //  members per room.members page, at most
    uint64_t messages;              //  messages stored, for the log at exit
    pl_throttle_t *typing;          //  the typings relayed lately, owned
    int64_t typing_ms;              //  one typing per user and room this often
    pl_throttle_t *reads;           //  read events of own sends lately, and the
                                    //  newest seqs held back, owned
    int64_t read_event_ms;          //  one such read event per user and room this often
    int read_timer;                 //  hands the held ones over; 0 when none is held
} rooms_t;

//  --------------------------------------------------------------------------
//  Small helpers (body fields and text rules are proto/pl_body and pl_text)

static bool
s_room_name_valid (const char *name)
{
    size_t length = strlen (name);
    if (length < 1 || length > PL_ROOM_NAME_MAX)
        return false;
    for (const char *cursor = name; *cursor; cursor++)
        if (!isalnum ((unsigned char) *cursor) && *cursor != '_' && *cursor != '-')
            return false;
    return true;
}


//  --------------------------------------------------------------------------
//  Sessions: who is online, and every authenticated session

static bool
s_online (rooms_t *self, const char *user)
{
    char *key = pl_text_lower_dup (user);
    bool online = key && zhashx_lookup (self->online, key) != NULL;
    free (key);
    return online;
}

static void
s_online_add (rooms_t *self, const char *user, int delta)
{
    char *key = pl_text_lower_dup (user);
    if (!key)
        return;
    uintptr_t count = (uintptr_t) zhashx_lookup (self->online, key);
    if (delta > 0)
        count++;
    else
    if (count > 0)
        count--;
    if (count)
        zhashx_update (self->online, key, (void *) count);
    else
        zhashx_delete (self->online, key);
    free (key);
}

static void
s_on_session (void *state, int event, uint64_t session, const char *user)
{
    rooms_t *self = (rooms_t *) state;
    char sid [24];
    snprintf (sid, sizeof sid, "%" PRIu64, session);
    if (event == PARLEY_SESSION_RESET) {
        zhashx_purge (self->sessions);
        zhashx_purge (self->online);
    }
    else
    if (event == PARLEY_SESSION_BOUND && user && *user) {
        char *previous = (char *) zhashx_lookup (self->sessions, sid);
        if (previous)
            s_online_add (self, previous, -1);
        char *copy = strdup (user);
        if (!copy)
            return;
        zhashx_update (self->sessions, sid, copy);
        s_online_add (self, user, +1);
    }
    else
    if (event == PARLEY_SESSION_CLOSED) {
        char *previous = (char *) zhashx_lookup (self->sessions, sid);
        if (previous) {
            s_online_add (self, previous, -1);
            zhashx_delete (self->sessions, sid);
        }
    }
}

//  Delivers an event to every authenticated session (a public room's
//  lifecycle events)
static void
s_deliver_everyone (rooms_t *self, const void *body, size_t size)
{
    size_t count = zhashx_size (self->sessions);
    if (count == 0)
        return;
    uint64_t *sids = (uint64_t *) malloc (count * sizeof (uint64_t));
    if (!sids)
        return;
    size_t used = 0;
    for (void *user = zhashx_first (self->sessions); user && used < count;
         user = zhashx_next (self->sessions))
        sids [used++] = strtoull ((const char *) zhashx_cursor (self->sessions), NULL, 10);
    for (size_t start = 0; start < used; start += ROOMS_DELIVER_SIDS_MAX) {
        size_t chunk = used - start < ROOMS_DELIVER_SIDS_MAX? used - start: ROOMS_DELIVER_SIDS_MAX;
        self->host->deliver_sessions (self->ctx, sids + start, chunk, body, size);
    }
    free (sids);
}


//  --------------------------------------------------------------------------
//  Rooms and their members: the lane's state of a key, and the request's
//  fields it carries

//  Drops what a send found of its mentions (found again on a retry)
static void
s_args_forget_mentions (args_t *args)
{
    for (size_t index = 0; index < args->mention_count; index++)
        free (args->mentions [index]);
    free (args->mentions);
    args->mentions = NULL;
    args->mention_count = 0;
}

static void
s_args_destroy (void **args_p)
{
    args_t *args = (args_t *) *args_p;
    if (args) {
        free (args->room);
        free (args->argument);
        s_args_forget_mentions (args);
        free (args);
        *args_p = NULL;
    }
}

//  Forgets what was loaded: the room is loaded again before it is used
static void
s_room_forget (void *plugin, pl_lane_key_t *key)
{
    (void) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    free (room->description);
    room->description = NULL;
    free (room->owner);
    room->owner = NULL;
    zlistx_purge (room->members);
    room->exists = false;
}

static void
s_room_destroy (void **state_p)
{
    room_t *self = (room_t *) *state_p;
    if (self) {
        free (self->description);
        free (self->owner);
        zlistx_destroy (&self->members);
        free (self->name);
        free (self);
        *state_p = NULL;
    }
}

static int s_member_compare (const void *one, const void *two);

//  A room first touched by a request: its name as asked, nothing loaded
static void *
s_room_new (void *plugin, const char *key, const void *args)
{
    (void) plugin, (void) key;
    room_t *self = (room_t *) calloc (1, sizeof (room_t));
    if (self) {
        self->name = strdup (((const args_t *) args)->room);
        self->members = zlistx_new ();
    }
    if (!self || !self->name || !self->members) {
        s_room_destroy ((void **) &self);
        return NULL;
    }
    zlistx_set_duplicator (self->members, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor (self->members, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator (self->members, s_member_compare);
    return self;
}

//  A room the store does not have is not worth keeping
static bool
s_room_keep (void *plugin, pl_lane_key_t *key)
{
    (void) plugin;
    return ((room_t *) pl_lane_state (key))->exists;
}

static int
s_member_compare (const void *one, const void *two)
{
    return strcasecmp ((const char *) one, (const char *) two);
}

//  The member named user (any case) as registered, or NULL
static const char *
s_member_name (room_t *room, const char *user)
{
    for (const char *name = (const char *) zlistx_first (room->members); name;
         name = (const char *) zlistx_next (room->members))
        if (pl_text_same_name (name, user))
            return name;
    return NULL;
}

static bool
s_is_member (room_t *room, const char *user)
{
    return s_member_name (room, user) != NULL;
}

static void
s_member_remove (room_t *room, const char *user)
{
    for (const char *name = (const char *) zlistx_first (room->members); name;
         name = (const char *) zlistx_next (room->members))
        if (pl_text_same_name (name, user)) {
            zlistx_delete (room->members, zlistx_cursor (room->members));
            return;
        }
}

static void
s_member_add (room_t *room, const char *user)
{
    if (!s_is_member (room, user))
        zlistx_insert (room->members, (void *) user, false);    //  the list copies
}

//  The names of the members, for deliver_users. Caller frees the array.
static const char **
s_member_array (room_t *room, size_t *count_p)
{
    size_t count = zlistx_size (room->members);
    const char **names = (const char **) calloc (count? count: 1, sizeof (char *));
    size_t used = 0;
    if (names)
        for (const char *name = (const char *) zlistx_first (room->members);
             name && used < count; name = (const char *) zlistx_next (room->members))
            names [used++] = name;
    *count_p = used;
    return names;
}

static void
s_deliver_members (rooms_t *self, room_t *room, const void *body, size_t size)
{
    size_t count;
    const char **names = s_member_array (room, &count);
    if (names && count)
        self->host->deliver_users (self->ctx, names, count, body, size);
    free (names);
}

//  Tells every session of user that its read marker of the room moved:
//  {"type": "read", "room", "seq"}, so that its other tabs clear their badges
static void
s_deliver_read (rooms_t *self, const char *room, const char *user, uint64_t seq)
{
    pl_pack_t pack;
    pl_pack_start (&pack, 3, "type", "read");
    pl_pack_kstr (&pack, "room", room);
    pl_pack_kuint (&pack, "seq", seq);
    pl_pack_deliver_user (&pack, self->host, self->ctx, user);
    pl_pack_release (&pack);
}

//  pl_throttle's hand-over: a read event held back is due
static void
s_read_due (void *arg, const char *user, const char *room, uint64_t seq)
{
    s_deliver_read ((rooms_t *) arg, room, user, seq);
}

static void s_read_tick (void *state);

//  Runs the timer while read events are held back, and only then: half the
//  interval, so that a held event waits 1 to 1.5 intervals
static void
s_read_timer_watch (rooms_t *self)
{
    pl_timer_while (self->host, self->ctx, &self->read_timer, pl_throttle_held (self->reads) > 0,
                    (uint32_t) (self->read_event_ms / 2), s_read_tick);
}

static void
s_read_tick (void *state)
{
    rooms_t *self = (rooms_t *) state;
    pl_throttle_due (self->reads, pl_time_mono (), s_read_due, self);
    s_read_timer_watch (self);
}

//  One's own send moved one's marker to seq: the read event goes at once
//  when none went for the room lately, else the newest is held back and
//  goes read_event_ms after the last one (CLIENT-PROTOCOL.md, "Rooms"): a
//  fast sender's sessions hear of each move within that time, at a few
//  events a second instead of one a message
static void
s_read_moved_by_send (rooms_t *self, room_t *room, const char *user, uint64_t seq)
{
    if (pl_throttle_hold (self->reads, user, room->name, seq, pl_time_mono (), s_read_due, self))
        s_deliver_read (self, room->name, user, seq);
    s_read_timer_watch (self);
}

//  Packs one member, {user, online}, into scratch if the budget takes it
static bool
s_member_take (rooms_t *self, msgpack_sbuffer *scratch, pl_reply_budget_t *budget,
               const char *name)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, scratch, msgpack_sbuffer_write);
    size_t start = scratch->size;
    msgpack_pack_map (&packer, 2);
    pl_body_pack_str (&packer, "user");
    pl_body_pack_str (&packer, name);
    pl_body_pack_str (&packer, "online");
    s_online (self, name)? msgpack_pack_true (&packer): msgpack_pack_false (&packer);
    if (pl_reply_budget_take (budget, pl_reply_json_size_packed (scratch->data + start,
                                                                  scratch->size - start)))
        return true;
    scratch->size = start;
    return false;
}

//  Packs room.join's members into buffer: at most join_members of them,
//  the online ones first, then the others, each part by name, while the
//  budget lasts. Returns true when some were left out (more_members).
static bool
s_pack_join_members (rooms_t *self, room_t *room, msgpack_sbuffer *buffer,
                     pl_reply_budget_t *budget)
{
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init (&scratch);
    size_t taken = 0;
    bool cut = false;
    for (int online = 1; online >= 0 && !cut; online--)
        for (const char *name = (const char *) zlistx_first (room->members); name && !cut;
             name = (const char *) zlistx_next (room->members)) {
            if (s_online (self, name) != (online == 1))
                continue;
            if (taken < self->join_members && s_member_take (self, &scratch, budget, name))
                taken++;
            else
                cut = true;
        }
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_array (&packer, (uint32_t) taken);
    msgpack_sbuffer_write (buffer, scratch.data, scratch.size);
    msgpack_sbuffer_destroy (&scratch);
    return cut;
}

//  Answers room.members: a page of members by name, after the cursor's
//  name (args->argument) if given, at most members_page of them and what
//  the budget takes; next ("m.<name>", lower-cased) when more follow
static void
s_members_reply (rooms_t *self, room_t *room, pl_lane_op_t *op)
{
    const args_t *args = (const args_t *) op->args;
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init (&scratch);
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    const char *last = NULL;
    bool more = false;
    for (const char *name = (const char *) zlistx_first (room->members); name;
         name = (const char *) zlistx_next (room->members)) {
        if (args->argument && strcasecmp (name, args->argument) <= 0)
            continue;
        if (budget.items >= self->members_page || !s_member_take (self, &scratch, &budget, name)) {
            more = true;
            break;
        }
        last = name;
    }
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, more && last? 2: 1);
    pl_body_pack_str (&packer, "members");
    msgpack_pack_array (&packer, (uint32_t) budget.items);
    msgpack_sbuffer_write (&buffer, scratch.data, scratch.size);
    if (more && last) {
        char next [ROOMS_CURSOR_MAX];
        snprintf (next, sizeof next, "m.%s", last);
        for (char *cursor = next; *cursor; cursor++)
            *cursor = (char) tolower ((unsigned char) *cursor);
        pl_body_pack_str (&packer, "next");
        pl_body_pack_str (&packer, next);
    }
    self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    msgpack_sbuffer_destroy (&scratch);
}

//  The client's room map: name, description, private, max_participants,
//  owner, created_at, members
static void
s_pack_room (msgpack_packer *packer, room_t *room)
{
    msgpack_pack_map (packer, 7);
    pl_body_pack_str (packer, "name");
    pl_body_pack_str (packer, room->name);
    pl_body_pack_str (packer, "description");
    pl_body_pack_str (packer, room->description? room->description: "");
    pl_body_pack_str (packer, "private");
    room->is_private? msgpack_pack_true (packer): msgpack_pack_false (packer);
    pl_body_pack_str (packer, "max_participants");
    msgpack_pack_uint32 (packer, room->max_participants);
    pl_body_pack_str (packer, "owner");
    pl_body_pack_str (packer, room->owner? room->owner: "");
    pl_body_pack_str (packer, "created_at");
    pl_body_pack_time (packer, room->created_at);
    pl_body_pack_str (packer, "members");
    msgpack_pack_uint64 (packer, zlistx_size (room->members));
}

//  --------------------------------------------------------------------------
//  Timeline entries

//  The JSON size of ,"mentions":[...] (0 when there are none)
static size_t
s_mentions_json_size (const pl_entry_mentions_t *mentions)
{
    if (mentions->count == 0)
        return 0;
    size_t size = 0;
    if (mentions->array)
        size = pl_reply_json_size (mentions->array);
    else {
        size = 2 + mentions->count - 1;
        for (size_t index = 0; index < mentions->count; index++)
            size += pl_reply_json_str_size (mentions->names [index],
                                            strlen (mentions->names [index]));
    }
    return 1 + pl_reply_json_member_size ("mentions", size);
}

//  The JSON size of what an edit, deletion or reaction adds to the members
//  every entry has (pl_entry_pack_change's)
static size_t
s_change_json_size (const char *user, const msgpack_object *entry, const pl_change_t *change)
{
    size_t size = 2 + pl_change_json_size (change)
        + pl_reply_json_member_size ("type", strlen (pl_change_kind_name (change->kind)) + 2)
        + pl_reply_json_member_size ("from", pl_reply_json_str_size (user, strlen (user)));
    if (change->kind == PL_CHANGE_EDIT) {
        size_t text_size;
        const char *text = pl_entry_text (entry, &text_size);
        size += 1 + pl_reply_json_member_size ("text", pl_reply_json_str_size
                                               (text? text: "", text? text_size: 0));
    }
    return size;
}

static size_t s_system_json_size (const char *room, const msgpack_object *entry,
                                  const char *event, const char *user);

//  The JSON size of one of the store's entries as the client will get it
//  (pl_entry_pack's members), added up from its fields: neither packed nor
//  formatted, so that measuring a page costs little next to sending it
static size_t
s_entry_json_size (const char *room, const msgpack_object *entry)
{
    char kind [16], user [260], event [16];
    pl_body_copy (entry, "kind", kind, sizeof kind);
    pl_body_copy (entry, "user", user, sizeof user);
    pl_body_copy (entry, "event", event, sizeof event);
    uint64_t seq = (uint64_t) pl_body_int (entry, "seq");
    size_t size = 2
        + pl_reply_json_member_size ("room", pl_reply_json_str_size (room, strlen (room))) + 1
        + pl_reply_json_member_size ("seq", pl_reply_json_uint_size (seq)) + 1
        + pl_reply_json_member_size ("ts", pl_time_iso8601_length (pl_body_int (entry, "ts")) + 2);
    pl_change_t change;
    if (pl_change_from_entry (&change, entry) && change.kind != PL_CHANGE_MESSAGE)
        return size + s_change_json_size (user, entry, &change);
    if (strcmp (kind, "message") == 0) {
        size_t text_size;
        const char *text = pl_entry_text (entry, &text_size);
        char nonce [PL_NONCE_MAX + 1];
        pl_body_copy (entry, "nonce", nonce, sizeof nonce);
        if (*nonce)         //  a nonce is letters, digits, '_' and '-': no escapes
            size += 1 + pl_reply_json_member_size ("nonce", strlen (nonce) + 2);
        pl_entry_mentions_t mentions = pl_entry_store_mentions (entry);
        return size + 3 + s_mentions_json_size (&mentions)
            + pl_change_json_size (&change) + pl_change_state_json_size (entry)
            + pl_reply_json_member_size ("type", strlen ("\"message\""))
            + pl_reply_json_member_size ("from", pl_reply_json_str_size (user, strlen (user)))
            + pl_reply_json_member_size ("text", pl_reply_json_str_size (text? text: "",
                                                                         text? text_size: 0));
    }
    return size + s_system_json_size (room, entry, event, user);
}

//  The JSON size of a system entry's own members (pl_entry_pack_system's
//  but room, seq and ts), with the commas between them
static size_t
s_system_json_size (const char *room, const msgpack_object *entry, const char *event,
                    const char *user)
{
    char by [260];
    pl_body_copy (entry, "by", by, sizeof by);
    char message [PL_ENTRY_SYSTEM_MESSAGE_SIZE];
    pl_entry_system_message (message, event, user, by, room);
    return 4 + (*by? 1 + pl_reply_json_member_size ("by", pl_reply_json_str_size (by,
                                                                              strlen (by))): 0)
        + pl_reply_json_member_size ("type", strlen ("\"system\""))
        + pl_reply_json_member_size ("event", strlen (pl_entry_system_event (event)) + 2)
        + pl_reply_json_member_size ("user", pl_reply_json_str_size (user, strlen (user)))
        + pl_reply_json_member_size ("message", pl_reply_json_str_size (message,
                                                                       strlen (message)));
}

#ifndef NDEBUG
//  The same size measured the slow way, on the entry as packed: debug builds
//  (the tests') check every page against it
static size_t
s_entry_json_size_packed (const char *room, const msgpack_object *entry)
{
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init (&scratch);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &scratch, msgpack_sbuffer_write);
    pl_entry_pack_room (&packer, room, entry);
    size_t size = pl_reply_json_size_packed (scratch.data, scratch.size);
    msgpack_sbuffer_destroy (&scratch);
    return size;
}
#endif

//  Makes room for bytes more in buffer in one allocation: a page of big
//  entries is packed into it at once rather than grown by doubling (each a
//  copy). Out of memory leaves it to grow as it goes.
static void
s_buffer_reserve (msgpack_sbuffer *buffer, size_t bytes)
{
    size_t need = buffer->size + bytes;
    if (need <= buffer->alloc)
        return;
    char *data = (char *) realloc (buffer->data, need);
    if (data) {
        buffer->data = data;
        buffer->alloc = need;
    }
}

//  Packs the store's entries (an array, oldest first) into buffer as the
//  client's array, oldest first: as many as the budget takes from the
//  cursor's side, the newest ones when newest_side, else the oldest
//  (PROTOCOL.md 1.1: a cut page keeps the entries next to its cursor).
//  Measures first, then packs the entries taken straight into buffer.
//  Returns true when some were left out.
static bool
s_pack_store_entries (msgpack_sbuffer *buffer, const char *room, const msgpack_object *array,
                      pl_reply_budget_t *budget, bool newest_side)
{
    uint32_t count = array && array->type == MSGPACK_OBJECT_ARRAY? array->via.array.size: 0;
    uint32_t taken = 0;
    size_t used = budget->used;
    while (taken < count) {
        const msgpack_object *entry = &array->via.array.ptr [newest_side? count - 1 - taken: taken];
        size_t size = s_entry_json_size (room, entry);
        assert (size == s_entry_json_size_packed (room, entry));
        if (!pl_reply_budget_take (budget, size))
            break;
        taken++;
    }
    //  The JSON size is more than the packed size: room for the page at once
    s_buffer_reserve (buffer, budget->used - used + 16);
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_array (&packer, taken);
    for (uint32_t index = newest_side? count - taken: 0;
         index < (newest_side? count: taken); index++)
        pl_entry_pack_room (&packer, room, &array->via.array.ptr [index]);
    return taken < count;
}

//  Packs the store's entry map for an edit, deletion or reaction op writes:
//  seq, kind, user, ts, the edit's text, and the change's fields
static void
s_pack_store_change (msgpack_packer *packer, pl_lane_op_t *op)
{
    const args_t *args = (const args_t *) op->args;
    bool edit = args->change.kind == PL_CHANGE_EDIT;
    msgpack_pack_map (packer, 4 + edit + pl_change_fields (&args->change));
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, op->seq);
    pl_body_pack_str (packer, "kind");
    pl_body_pack_str (packer, pl_change_kind_name (args->change.kind));
    pl_body_pack_str (packer, "user");
    pl_body_pack_str (packer, op->user);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, op->ts);
    if (edit) {
        pl_body_pack_str (packer, "text");
        pl_body_pack_str (packer, args->argument);
    }
    pl_change_pack (&args->change, packer);
}

//  Packs the store's entry map for the entry op writes (a message, a
//  system entry with event, or a change)
static void
s_pack_store_entry (msgpack_packer *packer, pl_lane_op_t *op, const char *kind,
                    const char *event)
{
    const args_t *args = (const args_t *) op->args;
    if (!event && args->change.kind != PL_CHANGE_MESSAGE) {
        s_pack_store_change (packer, op);
        return;
    }
    bool mentioning = !event && args->mention_count > 0;
    uint32_t reply = event? 0: pl_change_fields (&args->change);
    msgpack_pack_map (packer, 5 + (op->nonce && !event? 1: 0) + (mentioning? 1: 0) + reply);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, op->seq);
    pl_body_pack_str (packer, "kind");
    pl_body_pack_str (packer, kind);
    pl_body_pack_str (packer, "user");
    pl_body_pack_str (packer, op->user);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, op->ts);
    pl_body_pack_str (packer, event? "event": "text");
    pl_body_pack_str (packer, event? event: args->argument);
    if (op->nonce && !event) {
        pl_body_pack_str (packer, "nonce");
        pl_body_pack_str (packer, op->nonce);
    }
    if (mentioning) {
        pl_entry_mentions_t mentions = { NULL, args->mentions, args->mention_count };
        pl_entry_pack_mentions (packer, &mentions);
    }
    if (reply)
        pl_change_pack (&args->change, packer);
}

//  Delivers the entry op wrote (now stored) to the room's members
static void
s_deliver_entry (rooms_t *self, room_t *room, pl_lane_op_t *op, const char *kind,
                 const char *event)
{
    const args_t *args = (const args_t *) op->args;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    pl_entry_mentions_t mentions = { NULL, args->mentions, args->mention_count };
    pl_entry_pack (&packer, room->name, op->seq, kind, op->user, op->ts, args->argument,
                  args->argument? strlen (args->argument): 0, event, event? NULL: op->nonce,
                  &mentions, event? NULL: &args->change, NULL);
    s_deliver_members (self, room, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

static void s_pack_room (msgpack_packer *packer, room_t *room);

//  A lifecycle event of the room by op's user at op->ts, with its notice
//  ("create" and "update" carry the room's map, "delete" its name): to its
//  members when it is private, else to every authenticated session
static void
s_pack_lifecycle (pl_pack_t *pack, room_t *room, pl_lane_op_t *op, const char *event,
                  const char *notice)
{
    pl_pack_start (pack, 6, "type", "system");
    pl_pack_kstr (pack, "event", event);
    pl_pack_str (pack, "room");
    if (strcmp (event, "delete") != 0)      //  create, update: the room's map
        s_pack_room (&pack->packer, room);
    else
        pl_pack_str (pack, room->name);
    //  No user: the operator (parleyctl), packed as nil
    pl_pack_kstr (pack, "user", *op->user? op->user: NULL);
    pl_pack_ktime (pack, "ts", op->ts);
    pl_pack_kstr (pack, "message", notice);
}

static void
s_deliver_lifecycle (rooms_t *self, room_t *room, pl_lane_op_t *op, const char *event,
                     const char *notice)
{
    pl_pack_t pack;
    s_pack_lifecycle (&pack, room, op, event, notice);
    if (room->is_private)
        s_deliver_members (self, room, pack.buffer.data, pack.buffer.size);
    else
        s_deliver_everyone (self, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}


//  --------------------------------------------------------------------------
//  Answers

//  An ok whose body is packed into buffer, which it destroys
static void
s_reply_packed (rooms_t *self, pl_lane_op_t *op, msgpack_sbuffer *buffer)
{
    pl_lane_ok (self->lane, op, buffer->data, buffer->size);
    msgpack_sbuffer_destroy (buffer);
}

static void
s_no_such_room (rooms_t *self, room_t *room, pl_lane_op_t *op)
{
    pl_lane_error (self->lane, op, "no_such_room", "There is no room named '%s'.", room->name);
}

static void
s_not_member (rooms_t *self, room_t *room, pl_lane_op_t *op)
{
    pl_lane_error (self->lane, op, "not_member", "You are not a member of the room '%s'.",
                   room->name);
}

//  The store says the room is gone: forget it, and say so
static void
s_room_gone (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op)
{
    pl_lane_forget (self->lane, key);
    s_no_such_room (self, (room_t *) pl_lane_state (key), op);
}

static void
s_room_full (rooms_t *self, room_t *room, pl_lane_op_t *op)
{
    pl_lane_error (self->lane, op, "room_full", "Room '%s' is full (%zu of %u).", room->name,
                   zlistx_size (room->members), room->max_participants);
}

//  Answers quota_exceeded when the store's code is one of its quotas.
//  Returns true if it answered.
static bool
s_quota_reply (rooms_t *self, pl_lane_op_t *op, const char *code)
{
    if (strcmp (code, "quota_owned") == 0)
        pl_lane_error (self->lane, op, "quota_exceeded", "You own %" PRIu64 " rooms, the most one"
                       " user may; delete one to create another.", self->max_owned);
    else
    if (strcmp (code, "quota_joined") == 0)
        pl_lane_error (self->lane, op, "quota_exceeded", "You belong to %" PRIu64 " rooms, the most"
                       " one user may; leave one first.", self->max_joined);
    else
        return false;
    return true;
}

//  Answers forbidden when the store says the user is banned from the room
//  (room.join, room.invite). Returns true if it answered.
static bool
s_banned_reply (rooms_t *self, pl_lane_op_t *op, const char *code)
{
    if (strcmp (code, "banned") != 0)
        return false;
    const args_t *args = (const args_t *) op->args;
    bool invite = args && args->argument && strcmp (op->user, args->argument) != 0;
    pl_lane_error (self->lane, op, "forbidden", "%s banned from the room '%s'.",
                   invite? "That user is": "You are", args? args->room: "");
    return true;
}


//  Answers op ok: {} to a member; to the operator (parleyctl), the room
//  and the user it removed, or the members the deleted room had
static void
s_done (rooms_t *self, room_t *room, pl_lane_op_t *op, size_t members)
{
    const args_t *args = (const args_t *) op->args;
    if (!args || !args->admin) {
        pl_lane_ok (self->lane, op, NULL, 0);
        return;
    }
    pl_pack_t pack;
    pl_pack_start (&pack, 2, "room", room->name);
    if (*op->user)
        pl_pack_kstr (&pack, "user", op->user);
    else
        pl_pack_kuint (&pack, "members", members);
    if (*op->user)
        self->host->log (self->ctx, PARLEY_LOG_INFO, "the operator removed %s from '%s'",
                         op->user, room->name);
    pl_lane_ok (self->lane, op, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}


//  --------------------------------------------------------------------------
//  Loading a room: its settings and last seq (store.room.get), then its
//  members (store.member.list)

//  Fills the room's fields from the store's room map
static int
s_room_fill (room_t *room, const msgpack_object *map)
{
    char *name = NULL, *description = NULL, *owner = NULL;
    if (pl_body_str (map, "name", &name) != 1
    ||  pl_body_str (map, "owner", &owner) != 1
    ||  pl_body_str (map, "description", &description) < 0) {
        free (name);
        free (owner);
        free (description);
        return -1;
    }
    free (room->name);
    room->name = name;
    free (room->owner);
    room->owner = owner;
    free (room->description);
    room->description = description? description: strdup ("");
    room->is_private = pl_body_bool (map, "private");
    room->max_participants = (uint32_t) pl_body_int (map, "max_participants");
    room->created_at = pl_body_int (map, "created_at");
    room->loading_seq = (uint64_t) pl_body_int (map, "last_seq");
    return 0;
}

//  Adds the names of a store array to the room's members: at the end, in
//  the store's order, into an empty list; else each in its place
static void
s_members_add_from (room_t *room, const msgpack_object *members)
{
    bool empty = zlistx_size (room->members) == 0;
    for (uint32_t index = 0; index < members->via.array.size; index++) {
        const msgpack_object *name = &members->via.array.ptr [index];
        if (name->type == MSGPACK_OBJECT_STR && name->via.str.size < ROOMS_NAME_BYTES) {
            char text [ROOMS_NAME_BYTES];
            memcpy (text, name->via.str.ptr, name->via.str.size);
            text [name->via.str.size] = 0;
            if (empty)
                zlistx_add_end (room->members, text);
            else
                s_member_add (room, text);
        }
    }
}

static void
s_members_loaded (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                  const char *message, const msgpack_object *body)
{
    (void) op, (void) message;
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const msgpack_object *members = pl_body_field (body, "members");
    if (code && strcmp (code, "not_found") == 0)
        pl_lane_loaded (self->lane, key, 0);        //  room->exists stays false
    else
    if (code || !members || members->type != MSGPACK_OBJECT_ARRAY)
        pl_lane_fail_all (self->lane, key, code);
    else {
        zlistx_purge (room->members);
        s_members_add_from (room, members);
        room->exists = true;
        pl_lane_loaded (self->lane, key, room->loading_seq);
    }
}

static void
s_room_loaded (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
               const char *message, const msgpack_object *body)
{
    (void) op, (void) message;
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (code && strcmp (code, "not_found") == 0)
        pl_lane_loaded (self->lane, key, 0);        //  room->exists stays false
    else
    if (code || s_room_fill (room, pl_body_field (body, "room")) != 0)
        pl_lane_fail_all (self->lane, key, code);
    else {
        pl_pack_t pack;
        pl_pack_start (&pack, 1, "room", room->name);
        pl_lane_call (self->lane, key, "store.member.list", &pack, s_members_loaded);
    }
}

//  The lane's class load
static void
s_room_load (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    (void) op;
    room_t *room = (room_t *) pl_lane_state (key);
    pl_pack_t pack;
    pl_pack_start (&pack, 1, "name", room->name);
    pl_lane_call (((rooms_t *) plugin)->lane, key, "store.room.get", &pack, s_room_loaded);
}

//  For an action on an existing room: true when the room is loaded and
//  exists; else it is being loaded (false), or op is answered no_such_room
static bool
s_room_ready (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op)
{
    if (!pl_lane_ready (self->lane, key))
        return false;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!room->exists)
        s_no_such_room (self, room, op);
    return room->exists;
}

//  For an action of a member's: as s_room_ready, and op's user must be a
//  member (else not_member, with the hint after the sentence)
static bool
s_member_ready (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const char *hint)
{
    if (!s_room_ready (self, key, op))
        return false;
    room_t *room = (room_t *) pl_lane_state (key);
    if (s_is_member (room, op->user))
        return true;
    pl_lane_error (self->lane, op, "not_member", "You are not a member of the room '%s'%s.",
                   room->name, hint);
    return false;
}

//  The store refused a write about the room: gone (not_found), or a failure
static void
s_room_refused (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                const char *message)
{
    if (strcmp (code, "not_found") == 0)
        s_room_gone (self, key, op);
    else
        pl_lane_failure (self->lane, key, op, code, message);
}


//  --------------------------------------------------------------------------
//  room.create: the one action that needs no loaded room

//  The room is stored: it is loaded as the store has it, with its owner as
//  its member; the lifecycle event goes out and the creator gets the room
static void
s_create_done (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op)
{
    room_t *room = (room_t *) pl_lane_state (key);
    room->exists = true;
    zlistx_purge (room->members);
    zlistx_add_end (room->members, room->owner);
    pl_lane_loaded (self->lane, key, room->loading_seq);
    self->host->log (self->ctx, PARLEY_LOG_INFO, "%s created the %s room '%s'",
                     op->user, room->is_private? "private": "public", room->name);
    char notice [256];
    snprintf (notice, sizeof notice, "%s has created the room %s.", op->user, room->name);
    s_deliver_lifecycle (self, room, op, "create", notice);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1);
    pl_body_pack_str (&packer, "room");
    s_pack_room (&packer, room);
    s_reply_packed (self, op, &buffer);
}

static void
s_create_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                 const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (code && strcmp (code, "conflict") == 0)
        pl_lane_error (self->lane, op, "room_exists", "A room named '%s' exists already.",
                       room->name);
    else
    if (code && s_quota_reply (self, op, code))
        ;
    else
    if (code)
        pl_lane_failure (self->lane, key, op, code, message);
    else
    if (s_room_fill (room, pl_body_field (body, "room")) != 0)
        pl_lane_failure (self->lane, key, op, "internal", "malformed answer");
    else
        s_create_done (self, key, op);
}

static void
s_create_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const args_t *args = (const args_t *) op->args;
    if (room->exists) {
        pl_lane_error (self->lane, op, "room_exists", "A room named '%s' exists already.",
                       room->name);
        return;
    }
    op->ts = pl_time_now ();
    pl_pack_t pack;
    pl_pack_start (&pack, 8, "name", room->name);
    pl_pack_kstr (&pack, "description", args->argument? args->argument: "");
    pl_pack_kbool (&pack, "private", args->is_private);
    pl_pack_kuint (&pack, "max_participants", args->max_participants);
    pl_pack_kstr (&pack, "owner", op->user);
    pl_pack_kint (&pack, "created_at", op->ts);
    //  The store counts the quotas by index, after the name
    pl_pack_kuint (&pack, "max_owned", self->max_owned);
    pl_pack_kuint (&pack, "max_joined", self->max_joined);
    pl_lane_call (self->lane, key, "store.room.create", &pack, s_create_answer);
}


//  --------------------------------------------------------------------------
//  room.history, and the history room.join answers with

//  Asks the store for the op's page of history; answer gets it (with the
//  op's user's read_seq when with_marker: room.join's)
static void
s_history_call (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op,
                pl_lane_answer_fn *answer, bool with_marker)
{
    room_t *room = (room_t *) pl_lane_state (key);
    const args_t *args = (const args_t *) op->args;
    pl_pack_t pack;
    pl_pack_start (&pack, 1 + pl_lane_page_fields (&args->page) + with_marker, "room",
                   room->name);
    pl_lane_page_pack (&pack, &args->page);
    if (with_marker)
        pl_pack_kstr (&pack, "user", op->user);
    pl_lane_read (self->lane, key, "store.msg.history", &pack, answer);
}

//  Answers room.history: the store's page, cut further if the client's
//  reply would pass its limit (keeping the entries next to the cursor),
//  with more when older (or, with after, newer) entries exist
static void
s_history_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                  const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (code) {
        pl_lane_failure (self->lane, key, op, code, message);
        return;
    }
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    pl_body_pack_str (&packer, "messages");
    bool cut = s_pack_store_entries (&buffer, room->name, pl_body_field (body, "messages"),
                                     &budget, ((const args_t *) op->args)->page.after < 0);
    pl_body_pack_str (&packer, "more");
    cut || pl_body_bool (body, "more")? msgpack_pack_true (&packer)
                                      : msgpack_pack_false (&packer);
    s_reply_packed (self, op, &buffer);
}

static void
s_history_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    if (s_member_ready (self, key, op, ""))
        s_history_call (self, key, op, s_history_answer, false);
}


//  --------------------------------------------------------------------------
//  room.join: the member's entry written, then the room with its members
//  and its newest history

//  Answers room.join: the room, its members (at most join_members, and
//  more_members when there are more) and as many of the newest entries of
//  its history as fit in what the members left of the budget
static void
s_join_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
               const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (code) {
        pl_lane_failure (self->lane, key, op, code, message);
        return;
    }
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    msgpack_sbuffer members;
    msgpack_sbuffer_init (&members);
    bool more_members = s_pack_join_members (self, room, &members, &budget);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, more_members? 5: 4);
    pl_body_pack_str (&packer, "room");
    s_pack_room (&packer, room);
    //  The member's read marker (its own join entry for a newcomer)
    pl_body_pack_str (&packer, "read_seq");
    msgpack_pack_uint64 (&packer, (uint64_t) pl_body_int (body, "read_seq"));
    pl_body_pack_str (&packer, "members");
    msgpack_sbuffer_write (&buffer, members.data, members.size);
    if (more_members) {
        pl_body_pack_str (&packer, "more_members");
        msgpack_pack_true (&packer);
    }
    //  The members and the history share one budget
    pl_body_pack_str (&packer, "history");
    s_pack_store_entries (&buffer, room->name, pl_body_field (body, "messages"), &budget, true);
    s_reply_packed (self, op, &buffer);
    msgpack_sbuffer_destroy (&members);
}

//  The store answered the join's write. Ok leaves the op to run again: a
//  member now, it asks for its history.
static void
s_join_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const char *user = op->user;
    if (!code && pl_body_bool (body, "added")) {
        pl_lane_stored (key, op);
        s_member_add (room, user);
        self->host->log (self->ctx, PARLEY_LOG_DEBUG, "%s joined '%s'", user, room->name);
        s_deliver_entry (self, room, op, "system", "join");
    }
    else
    if (!code)      //  a member already, as the store knows
        s_member_add (room, user);
    else
    if (strcmp (code, "forbidden") == 0)
        pl_lane_error (self->lane, op, "forbidden",
                       "The room '%s' is private: you need an invitation to join it.",
                       room->name);
    else
    if (s_quota_reply (self, op, code) || s_banned_reply (self, op, code))
        ;
    else
    if (strcmp (code, "full") == 0)
        pl_lane_error (self->lane, op, "room_full", "Room '%s' is full (%u of %u).",
                       room->name, room->max_participants, room->max_participants);
    else
        s_room_refused (self, key, op, code, message);
}

static void s_leave_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op,
                             const char *code, const char *message,
                             const msgpack_object *body);

//  Writes op's user in or out of the room with the entry that says so, at
//  the next seq: store.member.add (with the quota) or store.member.remove
static void
s_member_write (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op, bool join)
{
    room_t *room = (room_t *) pl_lane_state (key);
    pl_lane_run (self->lane, key, 1, 0, NULL);      //  the op's seq and ts
    pl_pack_t pack;
    pl_pack_start (&pack, join? 4: 3, "room", room->name);
    pl_pack_kstr (&pack, "user", op->user);
    pl_body_pack_str (&pack.packer, "entry");
    s_pack_store_entry (&pack.packer, op, "system", join? "join": "leave");
    if (join) {
        pl_pack_kuint (&pack, "max_joined", self->max_joined);
    }
    pl_lane_write (self->lane, key, join? "store.member.add": "store.member.remove", &pack, 1,
             join? s_join_written: s_leave_written);
}

static void
s_join_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_room_ready (self, key, op))
        return;
    if (s_is_member (room, op->user)) {
        s_history_call (self, key, op, s_join_answer, true);
        return;
    }
    if (zlistx_size (room->members) >= room->max_participants) {
        s_room_full (self, room, op);
        return;
    }
    s_member_write (self, key, op, true);
}


//  --------------------------------------------------------------------------
//  room.leave

static void
s_leave_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                 const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const char *user = op->user;
    if (!code) {
        pl_lane_stored (key, op);
        //  The leaver hears of it too, on every session
        s_deliver_entry (self, room, op, "system", "leave");
        s_member_remove (room, user);
        self->host->log (self->ctx, PARLEY_LOG_DEBUG, "%s left '%s'", user, room->name);
        s_done (self, room, op, zlistx_size (room->members));
    }
    else
    if (strcmp (code, "not_member") == 0) {
        s_member_remove (room, user);
        s_not_member (self, room, op);
    }
    else
        s_room_refused (self, key, op, code, message);
}

static void
s_leave_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    if (s_member_ready (self, key, op, ""))
        s_member_write (self, key, op, false);
}


//  --------------------------------------------------------------------------
//  room.delete

//  The room is deleted: its members (the store names them, in case the
//  cache missed one) or everyone hear of it; the room is known not to exist
static void
s_delete_done (rooms_t *self, pl_lane_key_t *key, pl_lane_op_t *op,
               const msgpack_object *body)
{
    room_t *room = (room_t *) pl_lane_state (key);
    self->host->log (self->ctx, PARLEY_LOG_INFO, "%s deleted the room '%s'",
                     *op->user ? op->user : "the operator", room->name);
    const msgpack_object *members = pl_body_field (body, "members");
    if (members && members->type == MSGPACK_OBJECT_ARRAY)
        s_members_add_from (room, members);
    char notice [256];
    snprintf (notice, sizeof notice, "The room %s has been deleted.", room->name);
    s_deliver_lifecycle (self, room, op, "delete", notice);
    s_done (self, room, op, members && members->type == MSGPACK_OBJECT_ARRAY
                            ? members->via.array.size : 0);
    pl_lane_forget (self->lane, key);
    pl_lane_loaded (self->lane, key, 0);            //  known not to exist
}

static void
s_delete_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                  const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    if (!code)
        s_delete_done (self, key, op, body);
    else
        s_room_refused (self, key, op, code, message);
}

//  The room's deletion, stored; room.delete and admin.rooms.delete once
//  they have checked who asks
static void
s_delete_write (rooms_t *self, pl_lane_key_t *key, room_t *room, pl_lane_op_t *op)
{
    op->ts = pl_time_now ();
    pl_pack_t pack;
    pl_pack_start (&pack, 1, "name", room->name);
    //  A write of the room's state: an unknown outcome reloads it
    pl_lane_write (self->lane, key, "store.room.delete", &pack, 1, s_delete_written);
}

static void
s_delete_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_room_ready (self, key, op))
        return;
    if (!room->owner || !pl_text_same_name (room->owner, op->user)) {
        pl_lane_error (self->lane, op, "forbidden", "Only the owner of the room '%s' (%s) can"
                       " delete it.", room->name, room->owner? room->owner: "");
        return;
    }
    s_delete_write (self, key, room, op);
}



static bool s_read_create (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake);

//  --------------------------------------------------------------------------
//  Room administration (PROTOCOL.md 1.1): room.update, room.kick (with ban),
//  room.unban; the owner's alone, never against the owner

//  Answers forbidden unless op's user owns the room. Returns true if it may.
static bool
s_owner_only (rooms_t *self, room_t *room, pl_lane_op_t *op, const char *what)
{
    if (room->owner && pl_text_same_name (room->owner, op->user))
        return true;
    pl_lane_error (self->lane, op, "forbidden", "Only the owner of the room '%s' (%s) can %s.",
                   room->name, room->owner? room->owner: "", what);
    return false;
}

//  Packs the store's system entry op writes: event about user, by whom
static void
s_pack_admin_entry (msgpack_packer *packer, pl_lane_op_t *op, const char *event,
                    const char *user, const char *by)
{
    msgpack_pack_map (packer, by? 6: 5);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, op->seq);
    pl_body_pack_str (packer, "kind");
    pl_body_pack_str (packer, "system");
    pl_body_pack_str (packer, "user");
    pl_body_pack_str (packer, user);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, op->ts);
    pl_body_pack_str (packer, "event");
    pl_body_pack_str (packer, event);
    if (by) {
        pl_body_pack_str (packer, "by");
        pl_body_pack_str (packer, by);
    }
}

//  Delivers the system entry op stored to the room's members
static void
s_deliver_admin_entry (rooms_t *self, room_t *room, pl_lane_op_t *op, const char *event,
                       const char *user, const char *by)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_entry_pack_system (&pack.packer, room->name, op->seq, event, user, by, op->ts);
    s_deliver_members (self, room, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}

//  Answers op ok with {room}
static void
s_room_reply (rooms_t *self, room_t *room, pl_lane_op_t *op)
{
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_str (&pack, "room");
    s_pack_room (&pack.packer, room);
    s_reply_packed (self, op, &pack.buffer);
}

//  The settings op's room.update changes: its fields that differ from the
//  room's (an update to the same values changes nothing)
typedef struct {
    const char *description;        //  NULL: unchanged
    int is_private;                 //  -1: unchanged
    uint32_t max_participants;      //  0: unchanged
} changes_t;

static changes_t
s_update_changes (room_t *room, const args_t *args)
{
    changes_t changes = { NULL, -1, 0 };
    if (args->has_description && strcmp (args->argument, room->description? room->description
                                                                          : "") != 0)
        changes.description = args->argument;
    if (args->has_private && args->is_private != room->is_private)
        changes.is_private = args->is_private;
    if (args->max_participants && args->max_participants != room->max_participants)
        changes.max_participants = args->max_participants;
    return changes;
}

//  The room.update lifecycle event, with the room's map as it is now: to
//  every session that could see the room before or can see it after
//  (everyone unless it was private and still is)
static void
s_deliver_update_event (rooms_t *self, room_t *room, pl_lane_op_t *op, bool was_private)
{
    char notice [PL_ENTRY_SYSTEM_MESSAGE_SIZE];
    pl_entry_system_message (notice, "update", op->user, NULL, room->name);
    pl_pack_t pack;
    s_pack_lifecycle (&pack, room, op, "update", notice);
    if (was_private && room->is_private)
        s_deliver_members (self, room, pack.buffer.data, pack.buffer.size);
    else
        s_deliver_everyone (self, pack.buffer.data, pack.buffer.size);
    pl_pack_release (&pack);
}

static void
s_update_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                  const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    bool was_private = room->is_private;
    if (code)
        s_room_refused (self, key, op, code, message);
    else
    if (s_room_fill (room, pl_body_field (body, "room")) != 0)
        pl_lane_failure (self->lane, key, op, "internal", "malformed answer");
    else {
        pl_lane_stored (key, op);
        self->host->log (self->ctx, PARLEY_LOG_INFO, "%s changed the settings of '%s'",
                         op->user, room->name);
        s_deliver_admin_entry (self, room, op, "update", op->user, NULL);
        s_deliver_update_event (self, room, op, was_private);
        s_room_reply (self, room, op);
    }
}

//  room.update: the owner's; what changes goes to the store with its
//  notice, at the next seq. Nothing to change answers the room as it is.
static void
s_update_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_room_ready (self, key, op) || !s_owner_only (self, room, op, "change its settings"))
        return;
    changes_t changes = s_update_changes (room, (const args_t *) op->args);
    if (!changes.description && changes.is_private < 0 && !changes.max_participants) {
        s_room_reply (self, room, op);
        return;
    }
    pl_lane_run (self->lane, key, 1, 0, NULL);      //  the op's seq and ts
    pl_pack_t pack;
    pl_pack_start (&pack, 2 + (changes.description != NULL) + (changes.is_private >= 0)
                          + (changes.max_participants > 0), "name", room->name);
    if (changes.description)
        pl_pack_kstr (&pack, "description", changes.description);
    if (changes.is_private >= 0)
        pl_pack_kbool (&pack, "private", changes.is_private == 1);
    if (changes.max_participants)
        pl_pack_kuint (&pack, "max_participants", changes.max_participants);
    pl_body_pack_str (&pack.packer, "entry");
    s_pack_admin_entry (&pack.packer, op, "update", op->user, NULL);
    pl_lane_write (self->lane, key, "store.room.update", &pack, 1, s_update_written);
}

//  The store answered the kick: the removed member's sessions get its
//  entry too, then nothing more of the room
static void
s_kick_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const args_t *args = (const args_t *) op->args;
    const msgpack_object *removed = pl_body_field (body, "removed");
    if (code && strcmp (code, "not_member") == 0) {
        s_member_remove (room, args->argument);     //  the store knows better
        pl_lane_error (self->lane, op, "not_member", "%s is not a member of the room '%s'.",
                       args->argument, room->name);
    }
    else
    if (code)
        s_room_refused (self, key, op, code, message);
    else {
        const char *member = s_member_name (room, args->argument);
        if (op->seq && member && (!removed || pl_body_bool (body, "removed"))) {
            pl_lane_stored (key, op);
            s_deliver_admin_entry (self, room, op, "kick", member, op->user);
        }
        s_member_remove (room, args->argument);
        self->host->log (self->ctx, PARLEY_LOG_INFO, "%s removed %s from '%s'%s", op->user,
                         args->argument, room->name, args->ban? " and banned them": "");
        pl_lane_ok (self->lane, op, NULL, 0);
    }
}

//  Writes the kick: a member leaves with the kick's notice at the next seq;
//  a non-member (ban only) is banned without one
static void
s_kick_write (rooms_t *self, pl_lane_key_t *key, room_t *room, pl_lane_op_t *op,
              const char *member)
{
    const args_t *args = (const args_t *) op->args;
    if (member)
        pl_lane_run (self->lane, key, 1, 0, NULL);  //  the op's seq and ts
    pl_pack_t pack;
    pl_pack_start (&pack, 2 + args->ban + (member != NULL), "room", room->name);
    pl_pack_kstr (&pack, "user", args->argument);
    if (args->ban)
        pl_pack_kbool (&pack, "ban", true);
    if (member) {
        pl_body_pack_str (&pack.packer, "entry");
        s_pack_admin_entry (&pack.packer, op, "kick", member, op->user);
    }
    pl_lane_write (self->lane, key, "store.member.remove", &pack, 1, s_kick_written);
}

//  The store looked the kick's target up (it is not a member): its name as
//  registered, and the kick runs again; no such user answers so
static void
s_kick_target_found (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                     const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    args_t *args = (args_t *) op->args;
    char *name = NULL;
    if (code && strcmp (code, "not_found") == 0)
        pl_lane_error (self->lane, op, "no_such_user", "There is no user named '%s'.",
                       args->argument);
    else
    if (code)
        pl_lane_failure (self->lane, key, op, code, message);
    else
    if (pl_body_str (body, "name", &name) != 1)
        pl_lane_failure (self->lane, key, op, "internal", "malformed answer");
    else {
        free (args->argument);
        args->argument = name;
        name = NULL;
        args->target_known = true;
    }
    free (name);
}

//  room.kick: the owner's, never against the owner; a member is removed
//  (and banned with ban); a user who is not a member can only be banned
static void
s_kick_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const args_t *args = (const args_t *) op->args;
    if (!s_room_ready (self, key, op) || !s_owner_only (self, room, op, "remove members"))
        return;
    const char *member = s_member_name (room, args->argument);
    if (pl_text_same_name (room->owner, args->argument))
        pl_lane_error (self->lane, op, "forbidden", "The owner of the room '%s' cannot be"
                       " removed from it.", room->name);
    else
    if (member || (args->target_known && args->ban))
        s_kick_write (self, key, room, op, member);
    else
    if (args->target_known)
        pl_lane_error (self->lane, op, "not_member", "%s is not a member of the room '%s'.",
                       args->argument, room->name);
    else {
        pl_pack_t pack;
        pl_pack_start (&pack, 1, "name", args->argument);
        pl_lane_read (self->lane, key, "store.user.get", &pack, s_kick_target_found);
    }
}

static void
s_unban_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                const char *message, const msgpack_object *body)
{
    (void) body;
    rooms_t *self = (rooms_t *) plugin;
    const args_t *args = (const args_t *) op->args;
    //  The room is loaded: not_found is the user
    if (code && strcmp (code, "not_found") == 0)
        pl_lane_error (self->lane, op, "no_such_user", "There is no user named '%s'.",
                       args->argument);
    else
    if (code)
        pl_lane_failure (self->lane, key, op, code, message);
    else {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "%s lifted the ban of %s from '%s'",
                         op->user, args->argument, ((room_t *) pl_lane_state (key))->name);
        pl_lane_ok (self->lane, op, NULL, 0);
    }
}

//  room.unban: the owner's; no entry (an unban is not news to the room)
static void
s_unban_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_room_ready (self, key, op) || !s_owner_only (self, room, op, "lift a ban"))
        return;
    pl_pack_t pack;
    pl_pack_start (&pack, 2, "room", room->name);
    pl_pack_kstr (&pack, "user", ((const args_t *) op->args)->argument);
    pl_lane_call (self->lane, key, "store.room.unban", &pack, s_unban_answer);
}

//  room.update's fields: description, private and max_participants, each
//  optional and checked as room.create's
static bool
s_read_update (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (!s_read_create (args, map, intake))
        return false;
    args->has_description = args->argument != NULL;
    const msgpack_object *value = pl_body_field (map, "private");
    args->has_private = value && value->type == MSGPACK_OBJECT_BOOLEAN;
    uint64_t max;
    if (pl_body_uint (map, "max_participants", &max) != 1)
        args->max_participants = 0;
    return true;
}

//  room.kick's and room.unban's target ('user'), and kick's ban
static bool
s_read_target (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (pl_body_str (map, "user", &args->argument) != 1)
        return pl_lane_refuse (intake, "bad_request",
                               "The field 'user' must be a string: the user's name.");
    const msgpack_object *ban = pl_body_field (map, "ban");
    if (ban && ban->type != MSGPACK_OBJECT_BOOLEAN && ban->type != MSGPACK_OBJECT_NIL)
        return pl_lane_refuse (intake, "bad_request", "The field 'ban' must be true or false.");
    args->ban = ban && ban->type == MSGPACK_OBJECT_BOOLEAN && ban->via.boolean;
    return true;
}

//  --------------------------------------------------------------------------
//  room.invite

//  The invitation is stored: the invitee hears of it, unless a member
static void
s_invite_done (rooms_t *self, room_t *room, pl_lane_op_t *op, const msgpack_object *body)
{
    const args_t *args = (const args_t *) op->args;
    char invitee [ROOMS_NAME_BYTES];
    pl_body_copy (body, "user", invitee, sizeof invitee);
    if (!*invitee)
        snprintf (invitee, sizeof invitee, "%s", args->argument);
    if (!pl_body_bool (body, "already_member")) {
        pl_pack_t pack;
        pl_pack_start (&pack, 3, "type", "invite");
        pl_pack_kstr (&pack, "room", room->name);
        pl_pack_kstr (&pack, "from", op->user);
        pl_pack_deliver_user (&pack, self->host, self->ctx, invitee);
        pl_pack_release (&pack);
        self->host->log (self->ctx, PARLEY_LOG_DEBUG, "%s invited %s to '%s'",
                         op->user, invitee, room->name);
    }
    pl_lane_ok (self->lane, op, NULL, 0);
}

static void
s_invite_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                 const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    if (code && strcmp (code, "not_found") == 0)
        pl_lane_error (self->lane, op, "no_such_user", "There is no user named '%s'.",
                       ((const args_t *) op->args)->argument);
    else
    if (code && s_banned_reply (self, op, code))
        ;
    else
    if (code)
        pl_lane_failure (self->lane, key, op, code, message);
    else
        s_invite_done (self, (room_t *) pl_lane_state (key), op, body);
}

static void
s_invite_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const args_t *args = (const args_t *) op->args;
    if (!s_room_ready (self, key, op))
        return;
    if (room->is_private && !s_is_member (room, op->user))
        pl_lane_error (self->lane, op, "forbidden",
                       "Only members of the private room '%s' can invite to it.", room->name);
    else
    if (s_is_member (room, args->argument))
        //  Nothing to record or tell: the invitee is in the room
        pl_lane_ok (self->lane, op, NULL, 0);
    else
    if (zlistx_size (room->members) >= room->max_participants)
        s_room_full (self, room, op);
    else {
        pl_pack_t pack;
        pl_pack_start (&pack, 3, "room", room->name);
        pl_pack_kstr (&pack, "user", args->argument);
        pl_pack_kstr (&pack, "from", op->user);
        pl_lane_call (self->lane, key, "store.invite.add", &pack, s_invite_answer);
    }
}


//  --------------------------------------------------------------------------
//  room.members: from the cache

static void
s_members_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    if (s_member_ready (self, key, op, ""))
        s_members_reply (self, (room_t *) pl_lane_state (key), op);
}


//  --------------------------------------------------------------------------
//  room.read: the member's read marker, forward only, never past the newest
//  entry (the store holds both rules); the user's sessions hear of a move

static void
s_read_answer (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
               const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (code && strcmp (code, "not_member") == 0) {
        s_member_remove (room, op->user);       //  the store knows better
        s_not_member (self, room, op);
        return;
    }
    if (code) {
        s_room_refused (self, key, op, code, message);
        return;
    }
    uint64_t read_seq = (uint64_t) pl_body_int (body, "read_seq");
    if (pl_body_bool (body, "moved")) {
        s_deliver_read (self, room->name, op->user, read_seq);
        //  A send's event held back says no more than this one
        pl_throttle_settle (self->reads, op->user, room->name, read_seq);
        s_read_timer_watch (self);
    }
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, 1);
    pl_pack_kuint (&pack, "read_seq", read_seq);
    s_reply_packed (self, op, &pack.buffer);
}

static void
s_read_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_member_ready (self, key, op, ""))
        return;
    pl_pack_t pack;
    pl_pack_start (&pack, 3, "room", room->name);
    pl_pack_kstr (&pack, "user", op->user);
    pl_pack_kuint (&pack, "seq", ((const args_t *) op->args)->seq);
    pl_lane_call (self->lane, key, "store.member.read", &pack, s_read_answer);
}


//  --------------------------------------------------------------------------
//  msg.send: the sends at the head of the room, one store.msg.append

//  The store answered the run's write, for one send (or edit, deletion,
//  reaction: they share the run) of it
static void
s_send_written (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code,
                const char *message, const msgpack_object *body)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    const args_t *args = (const args_t *) op->args;
    if (code)
        s_room_refused (self, key, op, code, message);
    else {
        pl_lane_stored (key, op);
        bool sent = args->change.kind == PL_CHANGE_MESSAGE;
        self->messages += sent;
        s_deliver_entry (self, room, op, pl_change_kind_name (args->change.kind), NULL);
        //  The sender's marker moved to its message, in the same store write:
        //  one read event a sender a run at most, at its last message of the
        //  run (a change moves no marker)
        if (sent && !args->sender_again)
            s_read_moved_by_send (self, room, op->user, op->seq);
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 2);
        pl_body_pack_str (&packer, "seq");
        msgpack_pack_uint64 (&packer, op->seq);
        pl_body_pack_str (&packer, "ts");
        pl_body_pack_time (&packer, op->ts);
        s_reply_packed (self, op, &buffer);
    }
}

//  The run's members by lower-cased name, for its mentions: the values are
//  the strings of the room's list, borrowed for the run. NULL when out of
//  memory (then nobody is mentioned).
static zhashx_t *
s_member_index (room_t *room)
{
    zhashx_t *index = zhashx_new ();
    for (const char *name = (const char *) zlistx_first (room->members); name && index;
         name = (const char *) zlistx_next (room->members)) {
        char key [ROOMS_NAME_BYTES];
        snprintf (key, sizeof key, "%s", name);
        pl_text_lower (key);
        zhashx_insert (index, key, (void *) name);
    }
    return index;
}

//  pl_mention's look-up: a candidate name in the run's index
static const char *
s_mention_find (void *arg, const char *name, size_t size)
{
    char key [PL_USERNAME_MAX + 1];
    if (size > PL_USERNAME_MAX)
        return NULL;
    memcpy (key, name, size);
    key [size] = 0;
    pl_text_lower (key);
    return (const char *) zhashx_lookup ((zhashx_t *) arg, key);
}

//  Finds the members each send of the run (count ops from op) mentions,
//  against the room's members now (PROTOCOL.md 1.1): only texts with an
//  '@' pay for the index, built once for the run
static void
s_find_mentions (room_t *room, pl_lane_op_t *op, size_t count)
{
    zhashx_t *index = NULL;
    for (size_t taken = 0; taken < count; taken++, op = op->next) {
        args_t *args = (args_t *) op->args;
        s_args_forget_mentions (args);
        //  Mentions are a send's: an edit changes none (PROTOCOL.md 1.1)
        if (args->change.kind != PL_CHANGE_MESSAGE || !strchr (args->argument, '@')
        ||  (!index && !(index = s_member_index (room))))
            continue;
        size_t found;
        const char **names = pl_mention_scan (args->argument, strlen (args->argument),
                                              s_mention_find, index, &found);
        args->mentions = names? (char **) calloc (found, sizeof (char *)): NULL;
        for (size_t which = 0; args->mentions && which < found; which++) {
            if (!(args->mentions [which] = strdup (names [which])))
                break;
            args->mention_count++;
        }
        free ((void *) names);
    }
    zhashx_destroy (&index);
}

//  Marks each send of the run (count ops from op) whose sender has a later
//  send in the run: the run is stored whole in one transaction, so its
//  sender's marker moves once, to the last, and one read event says so.
//  Only messages move markers: an edit later in the run does not count.
static void
s_mark_senders (pl_lane_op_t *op, size_t count)
{
    for (size_t taken = 0; taken < count; taken++, op = op->next) {
        args_t *args = (args_t *) op->args;
        args->sender_again = false;
        pl_lane_op_t *later = op->next;
        for (size_t rest = taken + 1; rest < count && !args->sender_again;
             rest++, later = later->next)
            args->sender_again = strcmp (later->user, op->user) == 0
                && ((const args_t *) later->args)->change.kind == PL_CHANGE_MESSAGE;
    }
}

//  The lane's class refused: the store refused op, an element of a run
//  (a reply to, or a change of, a message that is not there; an edit by
//  another than its author; a reaction that changes nothing)
static void
s_change_refused (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op, const char *code)
{
    rooms_t *self = (rooms_t *) plugin;
    char where [ROOMS_NAME_BYTES];
    snprintf (where, sizeof where, "the room '%s'", ((room_t *) pl_lane_state (key))->name);
    pl_change_refused (self->lane, key, op, &((const args_t *) op->args)->change, code, where,
                       "its author or the owner of the room");
}

//  A send queued behind the head joins its run when it is a member's
static bool
s_send_joins (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    (void) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    return s_is_member (room, op->user);
}

//  The lane's class look_up: is op's nonce stored in the room already?
static void
s_nonce_look_up (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    pl_pack_t pack;
    pl_pack_start (&pack, 3, "room", ((room_t *) pl_lane_state (key))->name);
    pl_pack_kstr (&pack, "user", op->user);
    pl_pack_kstr (&pack, "nonce", op->nonce);
    pl_lane_read (self->lane, key, "store.msg.nonce", &pack, pl_lane_looked_up);
}

static void
s_send_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_room_ready (self, key, op))
        return;
    //  One who left may still repeat a send: a repeat is answered as one
    if (!s_is_member (room, op->user)) {
        pl_lane_deny (self->lane, key, op, "not_member", 0, "You are not a member of the room"
                      " '%s'; join it first.", room->name);
        return;
    }
    //  A run stays under PL_LANE_RUN_BYTES of text (the envelope's frame limit)
    size_t count = pl_lane_run (self->lane, key, PL_STORE_APPEND_MAX, PL_LANE_RUN_BYTES,
                                s_send_joins);
    pl_pack_t pack;
    pl_pack_start (&pack, 2, "room", room->name);
    if (count == 1)
        pl_body_pack_str (&pack.packer, "entry");
    else {
        pl_body_pack_str (&pack.packer, "entries");
        msgpack_pack_array (&pack.packer, (uint32_t) count);
    }
    s_find_mentions (room, op, count);
    s_mark_senders (op, count);
    pl_lane_op_t *next = op;
    for (size_t index = 0; index < count; index++, next = next->next)
        s_pack_store_entry (&pack.packer, next, "message", NULL);
    pl_lane_write (self->lane, key, "store.msg.append", &pack, count, s_send_written);
}


//  --------------------------------------------------------------------------
//  typing with a room (msg.typing: the gateway's name for it, proto/ENVELOPE.md
//  "Client types"): relayed to the other members' sessions, at most one per
//  user and room every typing_ms (the others answered ok); never stored.
//  Membership is the cached one, which follows what the store acknowledged:
//  in a loaded room a typing is answered as it comes in (at_once), without
//  waiting behind the room's writes; else at its turn, once loaded.

//  {"type": "typing", "user", "room"} to every member but the sender
static void
s_typing_deliver (rooms_t *self, room_t *room, const char *sender)
{
    size_t count, others = 0;
    const char **names = s_member_array (room, &count);
    for (size_t index = 0; names && index < count; index++)
        if (!pl_text_same_name (names [index], sender))
            names [others++] = names [index];
    if (others) {
        pl_pack_t pack;
        pl_pack_start (&pack, 3, "type", "typing");
        pl_pack_kstr (&pack, "user", sender);
        pl_pack_kstr (&pack, "room", room->name);
        self->host->deliver_users (self->ctx, names, others, pack.buffer.data,
                                   pack.buffer.size);
        pl_pack_release (&pack);
    }
    free (names);
}

static void
s_typing_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    if (!s_member_ready (self, key, op, ""))
        return;
    room_t *room = (room_t *) pl_lane_state (key);
    if (pl_throttle_pass (self->typing, op->user, room->name, pl_time_mono ()))
        s_typing_deliver (self, room, op->user);
    pl_lane_ok (self->lane, op, NULL, 0);
}

//  The lane's class at_once (for typings only): a loaded room answers from
//  its cached members
static void
s_typing_at_once (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    if (pl_lane_is_loaded (key))
        s_typing_start (plugin, key, op);
}

//  A typing names a room or a user ('to', the pm plugin's), never both; it
//  may be answered as it comes in
static bool
s_read_typing (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    (void) args;
    if (pl_body_field (map, "to"))
        return pl_lane_refuse (intake, "bad_request",
                               "A typing names a 'room' or a user 'to', not both.");
    intake->at_once = true;
    return true;
}


//  --------------------------------------------------------------------------
//  Requests: each type's fields and checks, then the room's queue (the
//  lane's intake)

static bool
s_read_create (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    const msgpack_object *value = pl_body_field (map, "private");
    if (value && value->type != MSGPACK_OBJECT_NIL) {
        if (value->type != MSGPACK_OBJECT_BOOLEAN)
            return pl_lane_refuse (intake, "bad_request",
                                   "The field 'private' must be true or false.");
        args->is_private = value->via.boolean;
    }
    uint64_t max;
    int found = pl_body_uint (map, "max_participants", &max);
    if (found < 0 || (found == 1 && (max < PL_PARTICIPANTS_MIN
                                  || max > PL_PARTICIPANTS_MAX)))
        return pl_lane_refuse (intake, "bad_request", "The field 'max_participants' must be"
                               " a whole number from %d to %d.", PL_PARTICIPANTS_MIN,
                               PL_PARTICIPANTS_MAX);
    if (found == 1)
        args->max_participants = (uint32_t) max;
    if (pl_body_str (map, "description", &args->argument) < 0
    ||  (args->argument && pl_text_utf8_length (args->argument) > PL_DESCRIPTION_MAX))
        return pl_lane_refuse (intake, "bad_request", "The field 'description' must be a"
                               " text of at most %d characters.", PL_DESCRIPTION_MAX);
    return true;
}

//  room.read's seq: a whole number, 1 or more
static bool
s_read_read (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (pl_body_uint (map, "seq", &args->seq) != 1 || args->seq < 1 || args->seq > INT64_MAX)
        return pl_lane_refuse (intake, "bad_request", "The field 'seq' must be a whole number,"
                               " 1 or more: the seq of the newest entry read.");
    return true;
}

static bool
s_read_invite (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (pl_body_str (map, "user", &args->argument) != 1)
        return pl_lane_refuse (intake, "bad_request",
                               "The field 'user' must be a string: who to invite.");
    return true;
}

static bool
s_read_history (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    return pl_lane_page_read (map, PL_HISTORY_DEFAULT, PL_HISTORY_MAX, &args->page,
                              intake);
}

//  A send's and an edit's text, into args->argument
static bool
s_read_text (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    int found = pl_body_text (map, "text", &args->argument);
    if (found == -2)
        args->text_has_nul = true;      //  a value the server refuses: invalid_text
    else
    if (found != 1)
        return pl_lane_refuse (intake, "bad_request", "The field 'text' must be a string.");
    return true;
}

static bool
s_read_send (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (pl_nonce_read (map, &intake->nonce) < 0)
        return pl_lane_refuse (intake, "bad_request", "The field 'nonce' must be 1 to %d"
                               " letters, digits, '_' or '-'.", PL_NONCE_MAX);
    //  With a file (PROTOCOL.md 1.1, "Files") the text may be left out
    if (args->change.file.id [0] && !pl_body_field (map, "text"))
        return (args->argument = strdup ("")) != NULL
            || pl_lane_refuse (intake, "internal", "The server ran out of memory.");
    return s_read_text (args, map, intake);
}

//  room.members' cursor: "m." and a user name, lower-cased, into
//  args->argument; absent is the first page
static bool
s_read_members (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake)
{
    char *cursor = NULL;
    int found = pl_body_str (map, "cursor", &cursor);
    bool valid = found == 0;
    if (found == 1) {
        valid = strncmp (cursor, "m.", 2) == 0 && pl_text_username_valid (cursor + 2);
        for (char *c = cursor + 2; valid && *c; c++)
            valid = !isupper ((unsigned char) *c);
        if (valid)
            valid = (args->argument = strdup (cursor + 2)) != NULL;
    }
    free (cursor);
    if (!valid)
        return pl_lane_refuse (intake, "bad_request",
                               "The field 'cursor' must be a 'next' this server gave.");
    return true;
}

static bool
s_check_send (args_t *args, pl_lane_intake_t *intake)
{
    size_t length = args->text_has_nul? 0: pl_text_utf8_length (args->argument);
    //  A message with a file may have no text (PROTOCOL.md 1.1, "Files")
    if (length == 0 && !args->text_has_nul && args->change.file.id [0])
        return true;
    if (length < 1 || length > PL_TEXT_MAX || !pl_text_has_content (args->argument))
        return pl_lane_refuse (intake, "invalid_text", "A message is 1 to %d characters and"
                               " not only white space.", PL_TEXT_MAX);
    return true;
}

static bool
s_check_invite (args_t *args, pl_lane_intake_t *intake)
{
    if (!pl_text_username_valid (args->argument))
        return pl_lane_refuse (intake, "no_such_user", "There is no user named '%.40s'.",
                               args->argument);
    return true;
}

//  How a request type's fields are read (their shape: first the timeline
//  change's, pl_change, for a type that makes one) and checked (their
//  values, after the room's name); NULL for none
typedef struct {
    bool (*read) (args_t *args, const msgpack_object *map, pl_lane_intake_t *intake);
    bool (*check) (args_t *args, pl_lane_intake_t *intake);
    bool changes;                   //  appends to the timeline: a change of kind
    pl_change_kind_t kind;
} fields_t;

static const fields_t s_create_fields = { .read = s_read_create };
static const fields_t s_invite_fields = { .read = s_read_invite, .check = s_check_invite };
static const fields_t s_members_fields = { .read = s_read_members };
static const fields_t s_history_fields = { .read = s_read_history };
static const fields_t s_send_fields = { .read = s_read_send, .check = s_check_send,
    .changes = true, .kind = PL_CHANGE_MESSAGE };
static const fields_t s_read_fields = { .read = s_read_read };
static const fields_t s_edit_fields = { .read = s_read_text, .check = s_check_send,
    .changes = true, .kind = PL_CHANGE_EDIT };
static const fields_t s_delete_fields = { .changes = true, .kind = PL_CHANGE_DELETE };
static const fields_t s_react_fields = { .changes = true, .kind = PL_CHANGE_REACTION };
static const fields_t s_typing_fields = { .read = s_read_typing };
static const fields_t s_update_fields = { .read = s_read_update };
static const fields_t s_target_fields = { .read = s_read_target, .check = s_check_invite };

//  The request types about one room. Sends, changes and invitations count
//  against the user's message rate (PROTOCOL.md 1.1).
static const pl_lane_type_t s_types [] = {
    { "room.create",  s_create_start,  NULL, &s_create_fields },
    { "room.join",    s_join_start,    NULL, NULL },
    { "room.leave",   s_leave_start,   NULL, NULL },
    { "room.delete",  s_delete_start,  NULL, NULL },
    { "room.invite",  s_invite_start,
      "You are sending invitations too fast; wait a moment and try again.", &s_invite_fields },
    { "room.members", s_members_start, NULL, &s_members_fields },
    { "room.history", s_history_start, NULL, &s_history_fields },
    { "room.read",    s_read_start,    NULL, &s_read_fields },
    { "room.update",  s_update_start,  NULL, &s_update_fields },
    { "room.kick",    s_kick_start,    NULL, &s_target_fields },
    { "room.unban",   s_unban_start,   NULL, &s_target_fields },
    { "msg.send",     s_send_start,
      "You are sending messages too fast; wait a moment and try again.", &s_send_fields },
    { "msg.typing",   s_typing_start,
      "You are sending messages and typing notices too fast; wait a moment and try again.",
      &s_typing_fields },
    //  Timeline changes are appended as sends are, in the same runs, and
    //  count against the same rate (PROTOCOL.md 1.1)
    { "msg.edit",     s_send_start,
      "You are changing messages too fast; wait a moment and try again.", &s_edit_fields },
    { "msg.delete",   s_send_start,
      "You are changing messages too fast; wait a moment and try again.", &s_delete_fields },
    { "msg.react",    s_send_start,
      "You are reacting too fast; wait a moment and try again.", &s_react_fields },
    { .type = NULL }
};

static args_t *
s_args_new (void)
{
    args_t *args = (args_t *) calloc (1, sizeof (args_t));
    if (args) {
        args->max_participants = PL_PARTICIPANTS_DEFAULT;
        //  room.join's history: the newest page
        args->page = (pl_lane_page_t) { PL_HISTORY_DEFAULT, -1, -1 };
    }
    return args;
}

//  The lane's class read: the room's name, the type's fields, then the
//  name's value; the key is the name lower-cased
static bool
s_read (void *plugin, const pl_lane_type_t *type, const char *user,
        const msgpack_object *map, pl_lane_intake_t *intake)
{
    (void) plugin, (void) user;
    const fields_t *fields = (const fields_t *) type->extra;
    args_t *args = s_args_new ();
    intake->args = args;
    if (!args)
        return pl_lane_refuse (intake, "internal", "Out of memory; try again.");
    if (pl_body_str (map, "room", &args->room) != 1)
        return pl_lane_refuse (intake, "bad_request",
                               "The field 'room' must be a string: the room's name.");
    if (fields && fields->changes && !pl_change_read (&args->change, fields->kind, map, intake))
        return false;
    if (fields && fields->read && !fields->read (args, map, intake))
        return false;
    if (!s_room_name_valid (args->room)) {
        if (type->start == s_create_start)
            return pl_lane_refuse (intake, "invalid_room",
                                   "A room name is 1 to 64 letters, digits, '_' or '-'.");
        return pl_lane_refuse (intake, "no_such_room", "There is no room with that name.");
    }
    if (fields && fields->check && !fields->check (args, intake))
        return false;
    intake->key = pl_text_lower_dup (args->room);
    intake->bytes = args->argument? strlen (args->argument): 0;
    return intake->key || pl_lane_refuse (intake, "internal", "Out of memory; try again.");
}

//  The lane's class busy: the room's queue is full
static void
s_busy (void *plugin, pl_lane_key_t *key, const void *args, pl_lane_intake_t *intake)
{
    (void) plugin, (void) args;
    pl_lane_refuse (intake, "unavailable", "The room '%s' is too busy now; try again shortly.",
                    ((room_t *) pl_lane_state (key))->name);
}

//  --------------------------------------------------------------------------
//  The operator's: admin.rooms.* from parleyctl (an admin peer; README.md,
//  "Operators"): every room listed, a room deleted, a member removed

//  admin.rooms.delete: as room.delete, whoever owns the room
static void
s_admin_delete_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_room_ready (self, key, op))
        return;
    s_delete_write (self, key, room, op);
}

//  admin.rooms.kick: the op's user leaves, with the leave in the timeline
static void
s_admin_kick_start (void *plugin, pl_lane_key_t *key, pl_lane_op_t *op)
{
    rooms_t *self = (rooms_t *) plugin;
    room_t *room = (room_t *) pl_lane_state (key);
    if (!s_room_ready (self, key, op))
        return;
    if (!s_is_member (room, op->user))
        pl_lane_error (self->lane, op, "not_member", "%s is not a member of the room '%s'.",
                       op->user, room->name);
    else
        s_member_write (self, key, op, false);
}

static void
s_admin_on_listed (void *state, void *arg, const pl_call_reply_t *reply)
{
    rooms_t *self = (rooms_t *) state;
    parley_request_t *request = (parley_request_t *) arg;
    if (reply->code) {
        pl_reply_store_failed (self->host, self->ctx, &request, "unavailable", reply->message
                               ? reply->message : "The room service cannot reach its storage.",
                               reply->retry_ms, 0);
        return;
    }
    pl_reply_object (self->host, self->ctx, &request, reply->body);
}

//  admin.rooms.list {after?}: the store's page of every room
static void
s_admin_list (rooms_t *self, parley_request_t *request, const msgpack_object *map)
{
    char *after = NULL;
    pl_body_str (map, "after", &after);
    pl_pack_t pack;
    pl_pack_init (&pack);
    pl_pack_map (&pack, after ? 2 : 1);
    pl_pack_kuint (&pack, "limit", 1000);
    if (after)
        pl_pack_kstr (&pack, "after", after);
    free (after);
    if (pl_call_send (self->calls, "store.room.all", pack.buffer.data, pack.buffer.size,
                      s_admin_on_listed, request))
        self->host->reply_error (self->ctx, &request, "unavailable",
                                 "The room service cannot reach its storage.");
    pl_pack_release (&pack);
}

//  Queues the operator's delete or kick on the room's lane
static void
s_admin_submit (rooms_t *self, parley_request_t **request_p, args_t *args, const char *user,
                pl_lane_action_fn *start)
{
    char *name = pl_text_lower_dup (args->room);
    pl_lane_key_t *key = name ? pl_lane_key (self->lane, name, args) : NULL;
    free (name);
    if (!key || pl_lane_full (self->lane, key))
        self->host->reply_error (self->ctx, request_p, "unavailable",
                                 "The room is too busy now; try again shortly.");
    else
    if (pl_lane_submit (self->lane, key, request_p, user, start, args, 0) == 0)
        return;                     //  the lane owns args now
    else
        self->host->reply_error (self->ctx, request_p, "internal", "Out of memory.");
    s_args_destroy ((void **) &args);
}

static void
s_admin (rooms_t *self, parley_request_t *request, const char *type)
{
    if (!pl_admin_check (self->host, self->ctx, &request))
        return;
    size_t size;
    const uint8_t *body = self->host->request_body (request, &size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    const msgpack_object *map = pl_body_unpack (&fields, body, size);
    bool kick = strcmp (type, "admin.rooms.kick") == 0;
    args_t *args = s_args_new ();
    if (args)
        args->admin = true;
    if (strcmp (type, "admin.rooms.list") == 0)
        s_admin_list (self, request, map);
    else
    if (!kick && strcmp (type, "admin.rooms.delete") != 0)
        self->host->reply_error (self->ctx, &request, "unknown_type",
                                 "rooms serves admin.rooms.list, delete and kick.");
    else
    if (!args || !map || pl_body_str (map, "room", &args->room) != 1
    ||  !s_room_name_valid (args->room))
        self->host->reply_error (self->ctx, &request, "no_such_room",
                                 "There is no room with that name.");
    else
    if (kick && (pl_body_str (map, "user", &args->argument) != 1
             ||  !pl_text_username_valid (args->argument)))
        self->host->reply_error (self->ctx, &request, "no_such_user",
                                 "There is no user with that name.");
    else {
        s_admin_submit (self, &request, args, kick ? args->argument : "",
                        kick ? s_admin_kick_start : s_admin_delete_start);
        args = NULL;
    }
    s_args_destroy ((void **) &args);
    msgpack_unpacked_destroy (&fields);
}

//  A send whose file was checked (pl_file) goes to the lane as any other
static void
s_submit (void *plugin, parley_request_t **request_p)
{
    rooms_t *self = (rooms_t *) plugin;
    if (pl_lane_request (self->lane, request_p) != 0)
        self->host->reply_error (self->ctx, request_p, "internal", "The room service failed.");
}

static void
s_on_request (void *state, parley_request_t *request)
{
    rooms_t *self = (rooms_t *) state;
    const char *type = self->host->request_type (request);
    type = type? type: "";
    //  A send with a file: the store looks the file up before the lane
    if (strcmp (type, "msg.send") == 0 && pl_file_check_request (self->files, &request) == 0)
        return;
    if (strncmp (type, "admin.rooms.", 12) == 0)
        s_admin (self, request, type);
    else
    if (strcmp (type, "room.list") == 0 || strcmp (type, "room.directory") == 0)
        rm_list_request (self->lists, request, type);
    else
    if (pl_lane_request (self->lane, &request) != 0) {
        char message [160];
        snprintf (message, sizeof message, "There is no request '%.64s'.", type);
        self->host->reply_error (self->ctx, &request, "unknown_type", message);
    }
}

//  Every store call, the lane's and the room lists', goes through pl_call
static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    rooms_t *self = (rooms_t *) state;
    pl_call_reply (self->calls, cookie, code, message, body, size);
}


//  --------------------------------------------------------------------------
//  Init and destroy

static const pl_lane_class_t s_room_class = {
    .types = s_types,
    .read = s_read,
    .busy = s_busy,
    .state_new = s_room_new,
    .state_destroy = s_room_destroy,
    .args_destroy = s_args_destroy,
    .load = s_room_load,
    .forget = s_room_forget,
    .keep = s_room_keep,
    .service = "room",
    .look_up = s_nonce_look_up,
    .at_once = s_typing_at_once,
    .refused = s_change_refused
};

//  The options (README.md, "Options"), each in its range. Returns false
//  when one was refused (each refusal is logged).
static bool
s_options (rooms_t *self)
{
    pl_options_t options = pl_options (self->host, self->ctx, "rooms");
    self->rate = pl_options_number (&options, "msg_rate", ROOMS_RATE_DEFAULT, 0, 1e9);
    self->burst = pl_options_number (&options, "msg_burst", ROOMS_BURST_DEFAULT, 0, 1e9);
    self->idle_ms = pl_options_int (&options, "idle_ms", PL_LANE_IDLE_MS, 0, INT64_MAX);
    self->nonce_cache = pl_options_uint (&options, "nonce_cache", PL_NONCE_CACHE_DEFAULT,
                                         0, 1000000);
    self->max_owned = pl_options_uint (&options, "max_owned", ROOMS_MAX_OWNED_DEFAULT,
                                       0, UINT64_MAX);
    self->max_joined = pl_options_uint (&options, "max_joined", ROOMS_MAX_JOINED_DEFAULT,
                                        0, UINT64_MAX);
    self->join_members = pl_options_uint (&options, "join_members",
                                          ROOMS_JOIN_MEMBERS_DEFAULT, 0, SIZE_MAX);
    self->members_page = pl_options_uint (&options, "members_page",
                                          ROOMS_MEMBERS_PAGE_DEFAULT, 0, SIZE_MAX);
    if (self->members_page < 1)
        self->members_page = 1;
    self->list_public = pl_options_uint (&options, "list_public", ROOMS_LIST_PUBLIC_DEFAULT,
                                         0, UINT32_MAX);
    self->typing_ms = pl_options_int (&options, "typing_interval_ms", ROOMS_TYPING_MS_DEFAULT,
                                      0, 3600000);
    self->read_event_ms = pl_options_int (&options, "read_event_ms", ROOMS_READ_EVENT_MS_DEFAULT,
                                          0, 60000);
    return pl_options_refused (&options) == 0;
}

static void s_destroy (void **state_p);

static int
s_init (parley_ctx_t *ctx, const parley_host_t *host, void **state_p)
{
    rooms_t *self = (rooms_t *) calloc (1, sizeof (rooms_t));
    if (!self) {
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    self->ctx = ctx;
    self->host = host;
    if (!s_options (self)) {
        s_destroy ((void **) &self);
        return -1;
    }
    self->calls = pl_call_new (host, ctx, self);
    self->lane = self->calls? pl_lane_new (ctx, host, self->calls, &s_room_class, self,
                                           PL_LANE_QUEUE_MAX): NULL;
    self->files = self->calls? pl_file_check_new (host, ctx, self->calls, s_submit, self): NULL;
    self->sessions = zhashx_new ();
    self->online = zhashx_new ();
    self->lists = rm_list_new (ctx, host, self->calls, self->list_public);
    self->typing = pl_throttle_new (self->typing_ms, PL_THROTTLE_MAX);
    self->reads = pl_throttle_new (self->read_event_ms, PL_THROTTLE_MAX);
    if (!self->lane || !self->files || !self->sessions || !self->online || !self->lists
    ||  !self->typing || !self->reads) {
        s_destroy ((void **) &self);
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    zhashx_set_destructor (self->sessions, (zhashx_destructor_fn *) zstr_free);
    pl_lane_set_rate (self->lane, self->rate, self->burst);
    pl_lane_set_idle (self->lane, self->idle_ms);
    pl_lane_set_nonces (self->lane, (size_t) self->nonce_cache);
    host->log (ctx, PARLEY_LOG_INFO, "ready: msg.send, typing and room.invite limited to %g a second"
               " (burst %g) per user; a user owns at most %" PRIu64 " rooms and belongs to at"
               " most %" PRIu64 " (0: no limit)", self->rate, self->burst < 1? 1: self->burst,
               self->max_owned, self->max_joined);
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    rooms_t *self = (rooms_t *) *state_p;
    if (self) {
        if (self->lane)
            self->host->log (self->ctx, PARLEY_LOG_INFO, "stopping after %" PRIu64 " messages",
                             self->messages);
        pl_file_check_destroy (&self->files);
        pl_lane_destroy (&self->lane);
        rm_list_destroy (&self->lists);
        pl_throttle_destroy (&self->typing);
        pl_throttle_destroy (&self->reads);
        pl_call_destroy (&self->calls);
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->online);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The descriptor

static const parley_route_t s_routes [] = {
    { .prefix = "room.", .flags = 0, .shard = PARLEY_SHARD_FIELD, .shard_field = "room" },
    { .prefix = "msg.", .flags = 0, .shard = PARLEY_SHARD_FIELD, .shard_field = "room" },
    //  The operator's (parleyctl); list has no room: any instance answers it
    { .prefix = "admin.rooms.", .flags = PARLEY_ROUTE_INTERNAL | PARLEY_ROUTE_ADMIN,
      .shard = PARLEY_SHARD_FIELD, .shard_field = "room" },
    { .prefix = NULL }
};

static const parley_plugin_t s_descriptor = {
    .abi_major = PARLEY_ABI_MAJOR,
    .abi_minor = PARLEY_ABI_MINOR,
    .size = sizeof (parley_plugin_t),
    .flags = PARLEY_PLUGIN_SESSIONS,
    .name = "rooms",
    .version = "1.0.0",
    .description = "rooms and group chat: room.* and msg.*, sharded by room",
    .routes = s_routes,
    .init = s_init,
    .destroy = s_destroy,
    .on_request = s_on_request,
    .on_reply = s_on_reply,
    .on_batch_end = NULL,
    .on_session = s_on_session
};

PARLEY_PLUGIN_DEFINE (s_descriptor)

/*  =========================================================================
    rooms - rooms and group chat: room.* and msg.* (PROTOCOL.md, "Rooms")

    Sharded by room name: the broker sends every request about a room to the
    one instance that owns it (rendezvous hash of the lower-cased name), so
    that instance is the one place the room's seq is assigned. room.list has
    no room field; any instance answers it from the store.

    Each room the instance has touched is cached: its settings, its last seq
    and its members, loaded from the store on first touch. Requests about a
    room go through the room's queue and are served one at a time; a request
    that writes (join, leave, send) holds the queue until the store has
    acknowledged it, and only then is the entry delivered and the request
    answered. So seq N+1 is handed out only after N is stored: a failed
    write can never leave a gap. The sends waiting at the head of the queue
    go to the store together, as one store.msg.append of their entries that
    is stored whole or not at all: a busy room stores a run of messages per
    round trip, not one. A write whose outcome is unknown (unavailable,
    a timeout) or refused for its seq (conflict) makes the room reload its
    last seq from the store before the next write.

    Entries go to the room's members with one deliver_users call each,
    encoded once; the broker sends one frame per gateway.
    =========================================================================
*/

#include "parley_plugin.h"
#include "pl_body.h"
#include "pl_bucket.h"
#include "pl_reply.h"
#include "pl_text.h"
#include "pl_time.h"
#include "rm_list.h"

#include <assert.h>
#include <czmq.h>
#include <ctype.h>
#include <strings.h>
#include <inttypes.h>
#include <msgpack.h>
#include <time.h>

//  --------------------------------------------------------------------------
//  Limits and defaults (PROTOCOL.md, "Names, limits, times")

#define ROOMS_NAME_MAX              64          //  room name, characters (ASCII)
#define ROOMS_DESCRIPTION_MAX       500         //  characters
#define ROOMS_TEXT_MAX              4000        //  characters
#define ROOMS_MAX_PARTICIPANTS_MIN  2
#define ROOMS_MAX_PARTICIPANTS_MAX  10000
#define ROOMS_MAX_PARTICIPANTS_DEF  50
#define ROOMS_HISTORY_DEFAULT       50
#define ROOMS_HISTORY_MAX           200
#define ROOMS_JOIN_HISTORY          50
#define ROOMS_QUEUE_MAX             10000       //  requests waiting for one room
#define ROOMS_APPEND_MAX            256         //  entries in one store.msg.append (STORE.md)
#define ROOMS_APPEND_BYTES          (512 * 1024) //  text bytes in one store.msg.append
#define ROOMS_DELIVER_SIDS_MAX      10000       //  sessions in one deliver_sessions call
#define ROOMS_TICK_MS               5000        //  the housekeeping timer
#define ROOMS_IDLE_MS_DEFAULT       60000       //  an idle room leaves the cache after this
#define ROOMS_RATE_DEFAULT          20.0        //  msg.send per user per second
#define ROOMS_BURST_DEFAULT         40.0        //  msg.send burst per user
//  PROTOCOL.md 1.1, "Directory and limits": each an option
#define ROOMS_MAX_OWNED_DEFAULT     100         //  rooms a user owns, at most
#define ROOMS_MAX_JOINED_DEFAULT    1000        //  rooms a user belongs to, at most
#define ROOMS_JOIN_MEMBERS_DEFAULT  500         //  members room.join lists, at most
#define ROOMS_MEMBERS_PAGE_DEFAULT  1000        //  members per room.members page
#define ROOMS_LIST_PUBLIC_DEFAULT   200         //  other public rooms room.list gives
#define ROOMS_CURSOR_MAX            64          //  a room.members cursor's bytes


//  --------------------------------------------------------------------------
//  State

typedef enum {
    OP_CREATE, OP_JOIN, OP_LEAVE, OP_DELETE, OP_INVITE, OP_MEMBERS, OP_HISTORY, OP_SEND
} op_kind_t;

//  Which store answer an operation waits for
typedef enum {
    STAGE_NONE, STAGE_LOAD_ROOM, STAGE_LOAD_MEMBERS, STAGE_WRITE, STAGE_HISTORY
} stage_t;

typedef enum { COOKIE_ROOM = 1, COOKIE_LIST = RM_LIST_COOKIE } cookie_kind_t;

//  One client request about a room, waiting in the room's queue
typedef struct op_s op_t;
struct op_s {
    op_kind_t kind;                 //  what was asked
    parley_request_t *request;      //  lent by the host until we reply
    char *user;                     //  the stamped user, as registered
    char *argument;                 //  send: the text; invite: the invitee; create:
                                    //  description; members: the cursor's name, lower-cased
    bool is_private;                //  create
    uint32_t max_participants;      //  create
    int64_t before;                 //  history: seq cursor, -1 for none
    int64_t after;                  //  history: seq cursor, -1 for none
    uint32_t limit;                 //  history
    uint64_t seq;                   //  the seq of the entry being written
    int64_t ts;                     //  its time, wall-clock ms
    bool retried;                   //  resent once after a reload already
    op_t *next;                     //  next in the room's queue
};

//  A room this instance has touched
typedef struct {
    cookie_kind_t cookie;           //  COOKIE_ROOM: the room is the cookie of its calls
    char *key;                      //  lower-cased name: the rooms table's key
    char *name;                     //  as created (as asked until loaded)
    bool loaded;                    //  the fields below come from the store
    bool exists;                    //  the store has this room (when loaded)
    char *description;              //  may be empty
    bool is_private;
    uint32_t max_participants;
    char *owner;                    //  as registered
    int64_t created_at;             //  wall-clock ms
    uint64_t last_seq;              //  the newest stored entry's seq
    zlistx_t *members;              //  char * names as registered, sorted lower-cased
    stage_t stage;                  //  the store answer the head op waits for
    size_t writing;                 //  sends at the head in the store write, when > 1
    op_t *head;                     //  queued requests, owned; head is being served
    op_t *tail;
    size_t queued;                  //  requests in the queue
    int64_t touched;                //  monotonic ms of the last request
} room_t;

//  A user's msg.send allowance

typedef struct {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    zhashx_t *rooms;                //  key -> room_t *, owned
    zhashx_t *sessions;             //  "sid" -> user name (char *), owned
    zhashx_t *online;               //  lower-cased user -> session count (as a pointer)
    zhashx_t *buckets;              //  lower-cased user -> pl_bucket_t *, owned
    rm_list_t *lists;               //  room.list and room.directory, owned
    double rate;                    //  msg.send and room.invite per user per second;
                                    //  0 turns limits off
    double burst;                   //  msg.send burst per user
    int64_t idle_ms;                //  idle rooms leave the cache after this
    uint64_t max_owned;             //  rooms a user owns, at most; 0 for no limit
    uint64_t max_joined;            //  rooms a user belongs to, at most; 0 for no limit
    size_t join_members;            //  members room.join lists, at most
    size_t members_page;            //  members per room.members page, at most
    int timer;                      //  the housekeeping timer
    uint64_t messages;              //  messages stored, for the log at exit
} rooms_t;


//  --------------------------------------------------------------------------
//  Small helpers (body fields and text rules are proto/pl_body and pl_text)

static bool
s_room_name_valid (const char *name)
{
    size_t length = strlen (name);
    if (length < 1 || length > ROOMS_NAME_MAX)
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
//  Rooms and their members

static void
s_op_destroy (op_t **self_p)
{
    op_t *self = *self_p;
    if (self) {
        free (self->user);
        free (self->argument);
        free (self);
        *self_p = NULL;
    }
}

static void
s_room_forget_fields (room_t *room)
{
    free (room->description);
    room->description = NULL;
    free (room->owner);
    room->owner = NULL;
    zlistx_purge (room->members);
    room->loaded = false;
    room->exists = false;
    room->last_seq = 0;
}

static void
s_room_destroy (room_t **self_p)
{
    room_t *self = *self_p;
    if (self) {
        //  Requests still queued belong to the host after destroy
        op_t *op = self->head;
        while (op) {
            op_t *next = op->next;
            s_op_destroy (&op);
            op = next;
        }
        s_room_forget_fields (self);
        zlistx_destroy (&self->members);
        free (self->key);
        free (self->name);
        free (self);
        *self_p = NULL;
    }
}

static int
s_member_compare (const void *one, const void *two)
{
    return strcasecmp ((const char *) one, (const char *) two);
}

static bool
s_is_member (room_t *room, const char *user)
{
    for (const char *name = (const char *) zlistx_first (room->members); name;
         name = (const char *) zlistx_next (room->members))
        if (pl_text_same_name (name, user))
            return true;
    return false;
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
//  name (op->argument) if given, at most members_page of them and what
//  the budget takes; next ("m.<name>", lower-cased) when more follow
static void
s_members_reply (rooms_t *self, room_t *room, op_t *op)
{
    msgpack_sbuffer scratch;
    msgpack_sbuffer_init (&scratch);
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    const char *last = NULL;
    bool more = false;
    for (const char *name = (const char *) zlistx_first (room->members); name;
         name = (const char *) zlistx_next (room->members)) {
        if (op->argument && strcasecmp (name, op->argument) <= 0)
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
    room->last_seq = (uint64_t) pl_body_int (map, "last_seq");
    return 0;
}


//  --------------------------------------------------------------------------
//  Timeline entries

//  The text of a join or leave entry, "ann has joined the room lobby."
//  (names are at most 64 bytes: the buffer holds any two)
#define S_SYSTEM_MESSAGE_SIZE 600
static void
s_system_message (char *message, const char *user, const char *room, bool join)
{
    snprintf (message, S_SYSTEM_MESSAGE_SIZE, join? "%.260s has joined the room %.260s."
                                                   : "%.260s has left the room %.260s.",
              user, room);
}

//  Packs an entry as clients see it, from its parts
static void
s_pack_entry (msgpack_packer *packer, const char *room, uint64_t seq, const char *kind,
              const char *user, int64_t ts, const char *text, size_t text_size,
              const char *event)
{
    if (strcmp (kind, "message") == 0) {
        msgpack_pack_map (packer, 6);
        pl_body_pack_str (packer, "type");
        pl_body_pack_str (packer, "message");
        pl_body_pack_str (packer, "room");
        pl_body_pack_str (packer, room);
        pl_body_pack_str (packer, "seq");
        msgpack_pack_uint64 (packer, seq);
        pl_body_pack_str (packer, "from");
        pl_body_pack_str (packer, user);
        pl_body_pack_str (packer, "text");
        msgpack_pack_str_with_body (packer, text? text: "", text? text_size: 0);
        pl_body_pack_str (packer, "ts");
        pl_body_pack_time (packer, ts);
    }
    else {
        bool join = event && strcmp (event, "join") == 0;
        char message [S_SYSTEM_MESSAGE_SIZE];
        s_system_message (message, user, room, join);
        msgpack_pack_map (packer, 7);
        pl_body_pack_str (packer, "type");
        pl_body_pack_str (packer, "system");
        pl_body_pack_str (packer, "event");
        pl_body_pack_str (packer, join? "join": "leave");
        pl_body_pack_str (packer, "room");
        pl_body_pack_str (packer, room);
        pl_body_pack_str (packer, "seq");
        msgpack_pack_uint64 (packer, seq);
        pl_body_pack_str (packer, "user");
        pl_body_pack_str (packer, user);
        pl_body_pack_str (packer, "ts");
        pl_body_pack_time (packer, ts);
        pl_body_pack_str (packer, "message");
        pl_body_pack_str (packer, message);
    }
}

//  The text of one of the store's entries, in place (NULL for none)
static const char *
s_entry_text (const msgpack_object *entry, size_t *size_p)
{
    const msgpack_object *text = pl_body_field (entry, "text");
    if (!text || text->type != MSGPACK_OBJECT_STR) {
        *size_p = 0;
        return NULL;
    }
    *size_p = text->via.str.size;
    return text->via.str.ptr;
}

//  Packs one of the store's entries as the client's entry
static void
s_pack_store_entry_as_client (msgpack_packer *packer, const char *room,
                              const msgpack_object *entry)
{
    char kind [16], user [260], event [16];
    pl_body_copy (entry, "kind", kind, sizeof kind);
    pl_body_copy (entry, "user", user, sizeof user);
    pl_body_copy (entry, "event", event, sizeof event);
    size_t text_size;
    const char *text = s_entry_text (entry, &text_size);
    s_pack_entry (packer, room, (uint64_t) pl_body_int (entry, "seq"), kind, user,
                  pl_body_int (entry, "ts"), text, text_size, event);
}

//  The JSON size of one of the store's entries as the client will get it
//  (s_pack_entry's members), added up from its fields: neither packed nor
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
    if (strcmp (kind, "message") == 0) {
        size_t text_size;
        const char *text = s_entry_text (entry, &text_size);
        return size + 3
            + pl_reply_json_member_size ("type", strlen ("\"message\""))
            + pl_reply_json_member_size ("from", pl_reply_json_str_size (user, strlen (user)))
            + pl_reply_json_member_size ("text", pl_reply_json_str_size (text? text: "",
                                                                         text? text_size: 0));
    }
    bool join = strcmp (event, "join") == 0;
    char message [S_SYSTEM_MESSAGE_SIZE];
    s_system_message (message, user, room, join);
    return size + 4
        + pl_reply_json_member_size ("type", strlen ("\"system\""))
        + pl_reply_json_member_size ("event", strlen (join? "\"join\"": "\"leave\""))
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
    s_pack_store_entry_as_client (&packer, room, entry);
    size_t size = pl_reply_json_size_packed (scratch.data, scratch.size);
    msgpack_sbuffer_destroy (&scratch);
    return size;
}
#endif

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
    while (taken < count) {
        const msgpack_object *entry = &array->via.array.ptr [newest_side? count - 1 - taken: taken];
        size_t size = s_entry_json_size (room, entry);
        assert (size == s_entry_json_size_packed (room, entry));
        if (!pl_reply_budget_take (budget, size))
            break;
        taken++;
    }
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_array (&packer, taken);
    for (uint32_t index = newest_side? count - taken: 0;
         index < (newest_side? count: taken); index++)
        s_pack_store_entry_as_client (&packer, room, &array->via.array.ptr [index]);
    return taken < count;
}

//  Packs the store's entry map for an op's entry
static void
s_pack_store_entry (msgpack_packer *packer, op_t *op, const char *kind, const char *event)
{
    msgpack_pack_map (packer, 5);
    pl_body_pack_str (packer, "seq");
    msgpack_pack_uint64 (packer, op->seq);
    pl_body_pack_str (packer, "kind");
    pl_body_pack_str (packer, kind);
    pl_body_pack_str (packer, "user");
    pl_body_pack_str (packer, op->user);
    pl_body_pack_str (packer, "ts");
    msgpack_pack_int64 (packer, op->ts);
    pl_body_pack_str (packer, event? "event": "text");
    pl_body_pack_str (packer, event? event: op->argument);
}

//  Delivers the op's entry (now stored) to the room's members
static void
s_deliver_entry (rooms_t *self, room_t *room, op_t *op, const char *kind, const char *event)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    s_pack_entry (&packer, room->name, op->seq, kind, op->user, op->ts, op->argument,
                  op->argument? strlen (op->argument): 0, event);
    s_deliver_members (self, room, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}


//  --------------------------------------------------------------------------
//  The room's queue

static void s_room_kick (rooms_t *self, room_t *room);

static void
s_reply_error (rooms_t *self, op_t *op, const char *code, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_reply_error (rooms_t *self, op_t *op, const char *code, const char *format, ...)
{
    char message [512];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    self->host->reply_error (self->ctx, &op->request, code, message);
}

//  Takes the head op off the queue and destroys it (it has been answered)
static void
s_room_pop (room_t *room)
{
    op_t *op = room->head;
    if (!op)
        return;
    room->head = op->next;
    if (!room->head)
        room->tail = NULL;
    room->queued--;
    room->stage = STAGE_NONE;
    s_op_destroy (&op);
}

//  Sends a store call for the room's head op. Returns 0, or -1 when nothing
//  was sent (the head has been answered unavailable and popped).
static int
s_room_call (rooms_t *self, room_t *room, stage_t stage, const char *type,
             msgpack_sbuffer *buffer)
{
    room->stage = stage;
    int rc = self->host->call (self->ctx, type, buffer->data, buffer->size, room);
    msgpack_sbuffer_destroy (buffer);
    if (rc != 0) {
        room->stage = STAGE_NONE;
        if (stage == STAGE_LOAD_ROOM || stage == STAGE_LOAD_MEMBERS)
            room->loaded = false;
        size_t count = room->writing? room->writing: 1;
        room->writing = 0;
        while (count-- && room->head) {
            s_reply_error (self, room->head, "unavailable",
                           "The room service could not reach its store; try again later.");
            s_room_pop (room);
        }
    }
    return rc;
}

//  Starts a map with n fields and the room's name
static void
s_call_begin (msgpack_sbuffer *buffer, msgpack_packer *packer, size_t fields,
              const char *field, const char *room)
{
    msgpack_sbuffer_init (buffer);
    msgpack_packer_init (packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (packer, fields);
    pl_body_pack_str (packer, field);
    pl_body_pack_str (packer, room);
}

static void
s_history_call (rooms_t *self, room_t *room, op_t *op)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    size_t fields = 2 + (op->before >= 0) + (op->after >= 0);
    s_call_begin (&buffer, &packer, fields, "room", room->name);
    pl_body_pack_str (&packer, "limit");
    msgpack_pack_uint32 (&packer, op->limit);
    if (op->before >= 0) {
        pl_body_pack_str (&packer, "before");
        msgpack_pack_int64 (&packer, op->before);
    }
    if (op->after >= 0) {
        pl_body_pack_str (&packer, "after");
        msgpack_pack_int64 (&packer, op->after);
    }
    s_room_call (self, room, STAGE_HISTORY, "store.msg.history", &buffer);
}

//  Starts serving the head op of a loaded, existing room (or a create).
//  Either answers it at once (and pops it) or sends one store call.
static void
s_op_start (rooms_t *self, room_t *room, op_t *op)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    switch (op->kind) {
        case OP_CREATE:
            if (room->loaded && room->exists) {
                s_reply_error (self, op, "room_exists", "A room named '%s' exists already.",
                               room->name);
                s_room_pop (room);
                return;
            }
            op->ts = pl_time_now ();
            s_call_begin (&buffer, &packer, 8, "name", room->name);
            pl_body_pack_str (&packer, "description");
            pl_body_pack_str (&packer, op->argument? op->argument: "");
            pl_body_pack_str (&packer, "private");
            op->is_private? msgpack_pack_true (&packer): msgpack_pack_false (&packer);
            pl_body_pack_str (&packer, "max_participants");
            msgpack_pack_uint32 (&packer, op->max_participants);
            pl_body_pack_str (&packer, "owner");
            pl_body_pack_str (&packer, op->user);
            pl_body_pack_str (&packer, "created_at");
            msgpack_pack_int64 (&packer, op->ts);
            //  The store counts the quotas by index, after the name
            pl_body_pack_str (&packer, "max_owned");
            msgpack_pack_uint64 (&packer, self->max_owned);
            pl_body_pack_str (&packer, "max_joined");
            msgpack_pack_uint64 (&packer, self->max_joined);
            s_room_call (self, room, STAGE_WRITE, "store.room.create", &buffer);
            return;

        case OP_JOIN:
            if (s_is_member (room, op->user)) {
                s_history_call (self, room, op);
                return;
            }
            if (zlistx_size (room->members) >= room->max_participants) {
                s_reply_error (self, op, "room_full", "Room '%s' is full (%zu of %u).",
                               room->name, zlistx_size (room->members),
                               room->max_participants);
                s_room_pop (room);
                return;
            }
            op->seq = room->last_seq + 1;
            op->ts = pl_time_now ();
            s_call_begin (&buffer, &packer, 4, "room", room->name);
            pl_body_pack_str (&packer, "user");
            pl_body_pack_str (&packer, op->user);
            pl_body_pack_str (&packer, "entry");
            s_pack_store_entry (&packer, op, "system", "join");
            pl_body_pack_str (&packer, "max_joined");
            msgpack_pack_uint64 (&packer, self->max_joined);
            s_room_call (self, room, STAGE_WRITE, "store.member.add", &buffer);
            return;

        case OP_LEAVE:
            if (!s_is_member (room, op->user)) {
                s_reply_error (self, op, "not_member", "You are not a member of the room '%s'.",
                               room->name);
                s_room_pop (room);
                return;
            }
            op->seq = room->last_seq + 1;
            op->ts = pl_time_now ();
            s_call_begin (&buffer, &packer, 3, "room", room->name);
            pl_body_pack_str (&packer, "user");
            pl_body_pack_str (&packer, op->user);
            pl_body_pack_str (&packer, "entry");
            s_pack_store_entry (&packer, op, "system", "leave");
            s_room_call (self, room, STAGE_WRITE, "store.member.remove", &buffer);
            return;

        case OP_DELETE:
            if (!room->owner || !pl_text_same_name (room->owner, op->user)) {
                s_reply_error (self, op, "forbidden",
                               "Only the owner of the room '%s' (%s) can delete it.",
                               room->name, room->owner? room->owner: "");
                s_room_pop (room);
                return;
            }
            op->ts = pl_time_now ();
            s_call_begin (&buffer, &packer, 1, "name", room->name);
            s_room_call (self, room, STAGE_WRITE, "store.room.delete", &buffer);
            return;

        case OP_INVITE:
            if (room->is_private && !s_is_member (room, op->user)) {
                s_reply_error (self, op, "forbidden",
                               "Only members of the private room '%s' can invite to it.",
                               room->name);
                s_room_pop (room);
                return;
            }
            if (s_is_member (room, op->argument)) {
                //  Nothing to record or tell: the invitee is in the room
                self->host->reply (self->ctx, &op->request, NULL, 0);
                s_room_pop (room);
                return;
            }
            if (zlistx_size (room->members) >= room->max_participants) {
                s_reply_error (self, op, "room_full", "Room '%s' is full (%zu of %u).",
                               room->name, zlistx_size (room->members),
                               room->max_participants);
                s_room_pop (room);
                return;
            }
            s_call_begin (&buffer, &packer, 3, "room", room->name);
            pl_body_pack_str (&packer, "user");
            pl_body_pack_str (&packer, op->argument);
            pl_body_pack_str (&packer, "from");
            pl_body_pack_str (&packer, op->user);
            s_room_call (self, room, STAGE_WRITE, "store.invite.add", &buffer);
            return;

        case OP_MEMBERS:
            if (!s_is_member (room, op->user)) {
                s_reply_error (self, op, "not_member", "You are not a member of the room '%s'.",
                               room->name);
                s_room_pop (room);
                return;
            }
            s_members_reply (self, room, op);
            s_room_pop (room);
            return;

        case OP_HISTORY:
            if (!s_is_member (room, op->user)) {
                s_reply_error (self, op, "not_member", "You are not a member of the room '%s'.",
                               room->name);
                s_room_pop (room);
                return;
            }
            s_history_call (self, room, op);
            return;

        case OP_SEND:
            if (!s_is_member (room, op->user)) {
                s_reply_error (self, op, "not_member",
                               "You are not a member of the room '%s'; join it first.",
                               room->name);
                s_room_pop (room);
                return;
            }
            {
                //  The sends queued behind this one, up to the first that
                //  is not a member's, are stored with it. A run also stays
                //  under ROOMS_APPEND_BYTES of text: 256 messages of 4,000
                //  emoji would pass the envelope's frame limit and cut the
                //  store's link
                size_t count = 0;
                size_t bytes = 0;
                for (op_t *next = op; next && next->kind == OP_SEND && count < ROOMS_APPEND_MAX
                                      && (next == op || s_is_member (room, next->user));
                     next = next->next) {
                    bytes += strlen (next->argument);
                    if (count && bytes > ROOMS_APPEND_BYTES)
                        break;
                    next->seq = room->last_seq + 1 + count;
                    next->ts = pl_time_now ();
                    count++;
                }
                s_call_begin (&buffer, &packer, 2, "room", room->name);
                if (count == 1)
                    pl_body_pack_str (&packer, "entry");
                else {
                    pl_body_pack_str (&packer, "entries");
                    msgpack_pack_array (&packer, (uint32_t) count);
                }
                op_t *next = op;
                for (size_t index = 0; index < count; index++, next = next->next)
                    s_pack_store_entry (&packer, next, "message", NULL);
                room->writing = count;
            }
            s_room_call (self, room, STAGE_WRITE, "store.msg.append", &buffer);
            return;
    }
}

//  Serves the room's queue until an op waits for the store or it is empty
static void
s_room_kick (rooms_t *self, room_t *room)
{
    while (room->head && room->stage == STAGE_NONE) {
        op_t *op = room->head;
        if (op->kind == OP_CREATE) {
            s_op_start (self, room, op);
            continue;
        }
        if (!room->loaded) {
            msgpack_sbuffer buffer;
            msgpack_packer packer;
            s_call_begin (&buffer, &packer, 1, "name", room->name);
            s_room_call (self, room, STAGE_LOAD_ROOM, "store.room.get", &buffer);
            continue;
        }
        if (!room->exists) {
            s_reply_error (self, op, "no_such_room", "There is no room named '%s'.", room->name);
            s_room_pop (room);
            continue;
        }
        s_op_start (self, room, op);
    }
    //  A room the store does not have is not worth keeping
    if (!room->head && room->loaded && !room->exists)
        zhashx_delete (self->rooms, room->key);
}

//  Answers every queued op with the error (the store could not load the room)
static void
s_room_fail_all (rooms_t *self, room_t *room, const char *code, const char *message)
{
    while (room->head) {
        self->host->reply_error (self->ctx, &room->head->request, code, message);
        s_room_pop (room);
    }
}

//  Maps a store error to the client's code for an unexpected failure
static const char *
s_failure_code (const char *code)
{
    return strcmp (code, "unavailable") == 0? "unavailable": "internal";
}

static void
s_failure (rooms_t *self, op_t *op, const char *code, const char *message)
{
    self->host->log (self->ctx, PARLEY_LOG_WARNING, "store refused a request of '%s': %s (%s)",
                     op->user, code, message? message: "");
    if (strcmp (code, "unavailable") == 0)
        s_reply_error (self, op, "unavailable",
                       "The room service cannot reach its storage now; try again later.");
    else
        s_reply_error (self, op, "internal", "The room service failed; try again.");
}

//  Answers quota_exceeded when the store's code is one of its quotas.
//  Returns true if it answered.
static bool
s_quota_reply (rooms_t *self, op_t *op, const char *code)
{
    if (strcmp (code, "quota_owned") == 0)
        s_reply_error (self, op, "quota_exceeded", "You own %" PRIu64 " rooms, the most one"
                       " user may; delete one to create another.", self->max_owned);
    else
    if (strcmp (code, "quota_joined") == 0)
        s_reply_error (self, op, "quota_exceeded", "You belong to %" PRIu64 " rooms, the most"
                       " one user may; leave one first.", self->max_joined);
    else
        return false;
    return true;
}

//  The store answered the write of a send
static void
s_send_reply (rooms_t *self, room_t *room, op_t *op, const char *code, const char *message)
{
    if (!code) {
        room->last_seq = op->seq;
        self->messages++;
        s_deliver_entry (self, room, op, "message", NULL);
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_map (&packer, 2);
        pl_body_pack_str (&packer, "seq");
        msgpack_pack_uint64 (&packer, op->seq);
        pl_body_pack_str (&packer, "ts");
        pl_body_pack_time (&packer, op->ts);
        self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
    }
    else
    if (strcmp (code, "not_found") == 0) {
        s_room_forget_fields (room);
        s_reply_error (self, op, "no_such_room", "There is no room named '%s'.",
                       room->name);
    }
    else
        s_failure (self, op, code, message);
}

//  A reply buffer sized for about hint bytes at once: a page of big entries
//  grows it in one allocation rather than by doubling (each a copy)
static void
s_buffer_init (msgpack_sbuffer *buffer, size_t hint)
{
    msgpack_sbuffer_init (buffer);
    size_t alloc = hint + 4096;
    buffer->data = (char *) malloc (alloc);
    if (buffer->data)
        buffer->alloc = alloc;
}

//  Answers room.join: the room, its members (at most join_members, and
//  more_members when there are more) and as many of the newest entries of
//  its history as fit in what the members left of the budget
static void
s_join_reply (rooms_t *self, room_t *room, op_t *op, const msgpack_object *body,
              size_t body_size)
{
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    msgpack_sbuffer members;
    msgpack_sbuffer_init (&members);
    bool more_members = s_pack_join_members (self, room, &members, &budget);
    msgpack_sbuffer buffer;
    s_buffer_init (&buffer, body_size + members.size);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, more_members? 4: 3);
    pl_body_pack_str (&packer, "room");
    s_pack_room (&packer, room);
    pl_body_pack_str (&packer, "members");
    msgpack_sbuffer_write (&buffer, members.data, members.size);
    if (more_members) {
        pl_body_pack_str (&packer, "more_members");
        msgpack_pack_true (&packer);
    }
    //  The members and the history share one budget
    pl_body_pack_str (&packer, "history");
    s_pack_store_entries (&buffer, room->name, pl_body_field (body, "messages"), &budget, true);
    self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    msgpack_sbuffer_destroy (&members);
}

//  Answers room.history: the store's page, cut further if the client's
//  reply would pass its limit (keeping the entries next to the cursor),
//  with more when older (or, with after, newer) entries exist
static void
s_history_reply (rooms_t *self, room_t *room, op_t *op, const msgpack_object *body,
                 size_t body_size)
{
    pl_reply_budget_t budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);
    msgpack_sbuffer buffer;
    s_buffer_init (&buffer, body_size);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    pl_body_pack_str (&packer, "messages");
    bool cut = s_pack_store_entries (&buffer, room->name, pl_body_field (body, "messages"),
                                     &budget, op->after < 0);
    pl_body_pack_str (&packer, "more");
    cut || pl_body_bool (body, "more")? msgpack_pack_true (&packer)
                                      : msgpack_pack_false (&packer);
    self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
}

//  The store answered a call of the room's head op
static void
s_room_reply (rooms_t *self, room_t *room, const char *code, const char *message,
              const msgpack_object *body, size_t body_size)
{
    stage_t stage = room->stage;
    room->stage = STAGE_NONE;
    op_t *op = room->head;
    if (!op)
        return;

    if (stage == STAGE_LOAD_ROOM) {
        if (code && strcmp (code, "not_found") == 0) {
            room->loaded = true;
            room->exists = false;
        }
        else
        if (code || s_room_fill (room, pl_body_field (body, "room")) != 0) {
            self->host->log (self->ctx, PARLEY_LOG_WARNING, "could not load room '%s': %s",
                             room->name, code? code: "malformed answer");
            s_room_fail_all (self, room, code? s_failure_code (code): "internal",
                             "The room service cannot reach its storage now; try again later.");
        }
        else {
            msgpack_sbuffer buffer;
            msgpack_packer packer;
            s_call_begin (&buffer, &packer, 1, "room", room->name);
            s_room_call (self, room, STAGE_LOAD_MEMBERS, "store.member.list", &buffer);
        }
        s_room_kick (self, room);
        return;
    }
    if (stage == STAGE_LOAD_MEMBERS) {
        const msgpack_object *members = pl_body_field (body, "members");
        if (code && strcmp (code, "not_found") == 0) {
            room->loaded = true;
            room->exists = false;
        }
        else
        if (code || !members || members->type != MSGPACK_OBJECT_ARRAY)
            s_room_fail_all (self, room, code? s_failure_code (code): "internal",
                             "The room service cannot reach its storage now; try again later.");
        else {
            zlistx_purge (room->members);
            for (uint32_t index = 0; index < members->via.array.size; index++) {
                const msgpack_object *name = &members->via.array.ptr [index];
                if (name->type == MSGPACK_OBJECT_STR && name->via.str.size < 260) {
                    char text [260];
                    memcpy (text, name->via.str.ptr, name->via.str.size);
                    text [name->via.str.size] = 0;
                    zlistx_add_end (room->members, text);
                }
            }
            room->loaded = true;
            room->exists = true;
        }
        s_room_kick (self, room);
        return;
    }

    //  A write or a history read of the head op, or a write of the sends
    //  at the head
    size_t writing = room->writing? room->writing: 1;
    room->writing = 0;
    if (code && strcmp (code, "conflict") == 0 && op->kind != OP_CREATE) {
        //  Our seq was taken: the store knows better. Reload, then try once
        //  more. Those tried once already come first in the run.
        self->host->log (self->ctx, PARLEY_LOG_WARNING,
                         "seq %" PRIu64 " of room '%s' is taken; reloading the room",
                         op->seq, room->name);
        s_room_forget_fields (room);
        while (writing && room->head && room->head->retried) {
            s_failure (self, room->head, code, message);
            s_room_pop (room);
            writing--;
        }
        for (op_t *next = room->head; writing && next; next = next->next, writing--)
            next->retried = true;
        s_room_kick (self, room);
        return;
    }
    if (code && strcmp (code, "unavailable") == 0 && stage == STAGE_WRITE
    &&  op->kind != OP_CREATE && op->kind != OP_INVITE)
        //  The write may have happened: learn the last seq again before the next
        s_room_forget_fields (room);

    switch (op->kind) {
        case OP_CREATE:
            if (code && strcmp (code, "conflict") == 0)
                s_reply_error (self, op, "room_exists", "A room named '%s' exists already.",
                               room->name);
            else
            if (code && s_quota_reply (self, op, code))
                ;
            else
            if (code)
                s_failure (self, op, code, message);
            else
            if (s_room_fill (room, pl_body_field (body, "room")) != 0)
                s_failure (self, op, "internal", "malformed answer");
            else {
                room->loaded = true;
                room->exists = true;
                zlistx_purge (room->members);
                zlistx_add_end (room->members, room->owner);
                self->host->log (self->ctx, PARLEY_LOG_INFO, "%s created the %s room '%s'",
                                 op->user, room->is_private? "private": "public", room->name);
                msgpack_sbuffer buffer;
                msgpack_sbuffer_init (&buffer);
                msgpack_packer packer;
                msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
                char notice [256];
                snprintf (notice, sizeof notice, "%s has created the room %s.",
                          op->user, room->name);
                msgpack_pack_map (&packer, 6);
                pl_body_pack_str (&packer, "type");
                pl_body_pack_str (&packer, "system");
                pl_body_pack_str (&packer, "event");
                pl_body_pack_str (&packer, "create");
                pl_body_pack_str (&packer, "room");
                s_pack_room (&packer, room);
                pl_body_pack_str (&packer, "user");
                pl_body_pack_str (&packer, op->user);
                pl_body_pack_str (&packer, "ts");
                pl_body_pack_time (&packer, op->ts);
                pl_body_pack_str (&packer, "message");
                pl_body_pack_str (&packer, notice);
                if (room->is_private)
                    s_deliver_members (self, room, buffer.data, buffer.size);
                else
                    s_deliver_everyone (self, buffer.data, buffer.size);
                msgpack_sbuffer_clear (&buffer);
                msgpack_pack_map (&packer, 1);
                pl_body_pack_str (&packer, "room");
                s_pack_room (&packer, room);
                self->host->reply (self->ctx, &op->request, buffer.data, buffer.size);
                msgpack_sbuffer_destroy (&buffer);
            }
            break;

        case OP_JOIN:
            if (stage == STAGE_WRITE) {
                if (!code) {
                    if (pl_body_bool (body, "added")) {
                        room->last_seq = op->seq;
                        s_member_add (room, op->user);
                        self->host->log (self->ctx, PARLEY_LOG_DEBUG, "%s joined '%s'",
                                         op->user, room->name);
                        s_deliver_entry (self, room, op, "system", "join");
                    }
                    else    //  a member already, as the store knows
                        s_member_add (room, op->user);
                    s_history_call (self, room, op);
                    s_room_kick (self, room);   //  in case the call could not be sent
                    return;     //  the op waits for its history
                }
                if (strcmp (code, "forbidden") == 0)
                    s_reply_error (self, op, "forbidden",
                                   "The room '%s' is private: you need an invitation to join it.",
                                   room->name);
                else
                if (s_quota_reply (self, op, code))
                    ;
                else
                if (strcmp (code, "full") == 0)
                    s_reply_error (self, op, "room_full", "Room '%s' is full (%u of %u).",
                                   room->name, room->max_participants, room->max_participants);
                else
                if (strcmp (code, "not_found") == 0) {
                    s_room_forget_fields (room);
                    s_reply_error (self, op, "no_such_room", "There is no room named '%s'.",
                                   room->name);
                }
                else
                    s_failure (self, op, code, message);
                break;
            }
            //  STAGE_HISTORY
            if (code)
                s_failure (self, op, code, message);
            else
                s_join_reply (self, room, op, body, body_size);
            break;

        case OP_LEAVE:
            if (!code) {
                room->last_seq = op->seq;
                //  The leaver hears of it too, on every session
                s_deliver_entry (self, room, op, "system", "leave");
                s_member_remove (room, op->user);
                self->host->log (self->ctx, PARLEY_LOG_DEBUG, "%s left '%s'",
                                 op->user, room->name);
                self->host->reply (self->ctx, &op->request, NULL, 0);
            }
            else
            if (strcmp (code, "not_member") == 0) {
                s_member_remove (room, op->user);
                s_reply_error (self, op, "not_member", "You are not a member of the room '%s'.",
                               room->name);
            }
            else
            if (strcmp (code, "not_found") == 0) {
                s_room_forget_fields (room);
                s_reply_error (self, op, "no_such_room", "There is no room named '%s'.",
                               room->name);
            }
            else
                s_failure (self, op, code, message);
            break;

        case OP_DELETE:
            if (!code) {
                self->host->log (self->ctx, PARLEY_LOG_INFO, "%s deleted the room '%s'",
                                 op->user, room->name);
                //  The members the store names, in case the cache missed one
                const msgpack_object *members = pl_body_field (body, "members");
                if (members && members->type == MSGPACK_OBJECT_ARRAY)
                    for (uint32_t index = 0; index < members->via.array.size; index++) {
                        const msgpack_object *name = &members->via.array.ptr [index];
                        if (name->type == MSGPACK_OBJECT_STR && name->via.str.size < 260) {
                            char text [260];
                            memcpy (text, name->via.str.ptr, name->via.str.size);
                            text [name->via.str.size] = 0;
                            s_member_add (room, text);
                        }
                    }
                msgpack_sbuffer buffer;
                msgpack_sbuffer_init (&buffer);
                msgpack_packer packer;
                msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
                char notice [256];
                snprintf (notice, sizeof notice, "The room %s has been deleted.", room->name);
                msgpack_pack_map (&packer, 6);
                pl_body_pack_str (&packer, "type");
                pl_body_pack_str (&packer, "system");
                pl_body_pack_str (&packer, "event");
                pl_body_pack_str (&packer, "delete");
                pl_body_pack_str (&packer, "room");
                pl_body_pack_str (&packer, room->name);
                pl_body_pack_str (&packer, "user");
                pl_body_pack_str (&packer, op->user);
                pl_body_pack_str (&packer, "ts");
                pl_body_pack_time (&packer, op->ts);
                pl_body_pack_str (&packer, "message");
                pl_body_pack_str (&packer, notice);
                if (room->is_private)
                    s_deliver_members (self, room, buffer.data, buffer.size);
                else
                    s_deliver_everyone (self, buffer.data, buffer.size);
                msgpack_sbuffer_destroy (&buffer);
                s_room_forget_fields (room);
                room->loaded = true;        //  known not to exist
                self->host->reply (self->ctx, &op->request, NULL, 0);
            }
            else
            if (strcmp (code, "not_found") == 0) {
                s_room_forget_fields (room);
                s_reply_error (self, op, "no_such_room", "There is no room named '%s'.",
                               room->name);
            }
            else
                s_failure (self, op, code, message);
            break;

        case OP_INVITE:
            if (!code) {
                char invitee [260];
                pl_body_copy (body, "user", invitee, sizeof invitee);
                if (!*invitee)
                    snprintf (invitee, sizeof invitee, "%s", op->argument);
                if (!pl_body_bool (body, "already_member")) {
                    msgpack_sbuffer buffer;
                    msgpack_sbuffer_init (&buffer);
                    msgpack_packer packer;
                    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
                    msgpack_pack_map (&packer, 3);
                    pl_body_pack_str (&packer, "type");
                    pl_body_pack_str (&packer, "invite");
                    pl_body_pack_str (&packer, "room");
                    pl_body_pack_str (&packer, room->name);
                    pl_body_pack_str (&packer, "from");
                    pl_body_pack_str (&packer, op->user);
                    const char *users [1] = { invitee };
                    self->host->deliver_users (self->ctx, users, 1, buffer.data, buffer.size);
                    msgpack_sbuffer_destroy (&buffer);
                    self->host->log (self->ctx, PARLEY_LOG_DEBUG, "%s invited %s to '%s'",
                                     op->user, invitee, room->name);
                }
                self->host->reply (self->ctx, &op->request, NULL, 0);
            }
            else
            if (strcmp (code, "not_found") == 0)
                s_reply_error (self, op, "no_such_user", "There is no user named '%s'.",
                               op->argument);
            else
                s_failure (self, op, code, message);
            break;

        case OP_HISTORY:
            if (code)
                s_failure (self, op, code, message);
            else
                s_history_reply (self, room, op, body, body_size);
            break;

        case OP_SEND:
            while (writing-- && room->head) {
                s_send_reply (self, room, room->head, code, message);
                s_room_pop (room);
            }
            s_room_kick (self, room);
            return;

        case OP_MEMBERS:
            break;      //  answered without the store
    }
    s_room_pop (room);
    s_room_kick (self, room);
}


//  --------------------------------------------------------------------------
//  Requests: shape and values first, then the room's queue

//  A user's allowance of sends (and invitations): 0 when one more may go
//  now, else the milliseconds until it may (retry_after_ms)
static int64_t
s_rate_wait (rooms_t *self, const char *user)
{
    if (self->rate <= 0)
        return 0;
    char *key = pl_text_lower_dup (user);
    if (!key)
        return 0;
    int64_t now = pl_time_mono ();
    pl_bucket_t *bucket = (pl_bucket_t *) zhashx_lookup (self->buckets, key);
    if (!bucket) {
        bucket = (pl_bucket_t *) malloc (sizeof (pl_bucket_t));
        if (!bucket) {
            free (key);
            return 0;
        }
        *bucket = pl_bucket_full (self->burst, now);
        zhashx_insert (self->buckets, key, bucket);
    }
    free (key);
    return pl_bucket_take (bucket, self->rate, self->burst, now);
}

//  room.members' cursor: "m." and a user name, lower-cased, into *name_p
//  (caller owns it; NULL when absent). Returns 0, or -1 when the cursor is
//  not one this plugin gives.
static int
s_members_cursor (const msgpack_object *map, char **name_p)
{
    char *cursor = NULL;
    int found = pl_body_str (map, "cursor", &cursor);
    int rc = found < 0? -1: 0;
    if (found == 1) {
        bool valid = strncmp (cursor, "m.", 2) == 0 && pl_text_username_valid (cursor + 2);
        for (char *c = cursor + 2; valid && *c; c++)
            valid = !isupper ((unsigned char) *c);
        if (valid)
            *name_p = strdup (cursor + 2);
        rc = valid && *name_p? 0: -1;
    }
    free (cursor);
    return rc;
}

static void
s_on_request (void *state, parley_request_t *request)
{
    rooms_t *self = (rooms_t *) state;
    const parley_host_t *host = self->host;
    const char *type = host->request_type (request);
    const char *user = host->request_user (request);
    type = type? type: "";

    op_kind_t kind;
    if (strcmp (type, "room.list") == 0 || strcmp (type, "room.directory") == 0) {
        rm_list_request (self->lists, request, type);
        return;
    }
    else if (strcmp (type, "room.create") == 0)  kind = OP_CREATE;
    else if (strcmp (type, "room.join") == 0)    kind = OP_JOIN;
    else if (strcmp (type, "room.leave") == 0)   kind = OP_LEAVE;
    else if (strcmp (type, "room.delete") == 0)  kind = OP_DELETE;
    else if (strcmp (type, "room.invite") == 0)  kind = OP_INVITE;
    else if (strcmp (type, "room.members") == 0) kind = OP_MEMBERS;
    else if (strcmp (type, "room.history") == 0) kind = OP_HISTORY;
    else if (strcmp (type, "msg.send") == 0)     kind = OP_SEND;
    else {
        char message [160];
        snprintf (message, sizeof message, "There is no request '%.64s'.", type);
        host->reply_error (self->ctx, &request, "unknown_type", message);
        return;
    }
    if (!user) {
        host->reply_error (self->ctx, &request, "unauthenticated", "Log in first.");
        return;
    }

    size_t body_size;
    const uint8_t *body = host->request_body (request, &body_size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    size_t offset = 0;
    if (msgpack_unpack_next (&fields, (const char *) body, body_size, &offset)
            != MSGPACK_UNPACK_SUCCESS || fields.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy (&fields);
        host->reply_error (self->ctx, &request, "bad_request", "The request's fields are not a map.");
        return;
    }
    const msgpack_object *map = &fields.data;
    const char *code = NULL;
    int64_t retry_ms = 0;           //  with rate_limited: when to try again
    char message [256] = "";
    char *room_name = NULL;
    bool text_has_nul = false;
    op_t *op = (op_t *) calloc (1, sizeof (op_t));
    if (!op || !(op->user = strdup (user))) {
        code = "internal";
        snprintf (message, sizeof message, "Out of memory; try again.");
        goto done;
    }
    op->kind = kind;
    op->before = -1;
    op->after = -1;
    op->limit = ROOMS_HISTORY_DEFAULT;
    op->max_participants = ROOMS_MAX_PARTICIPANTS_DEF;

    //  Shape: every field present and of its type
    if (pl_body_str (map, "room", &room_name) != 1) {
        code = "bad_request";
        snprintf (message, sizeof message, "The field 'room' must be a string: the room's name.");
        goto done;
    }
    if (kind == OP_CREATE) {
        const msgpack_object *value = pl_body_field (map, "private");
        if (value && value->type != MSGPACK_OBJECT_NIL) {
            if (value->type != MSGPACK_OBJECT_BOOLEAN) {
                code = "bad_request";
                snprintf (message, sizeof message, "The field 'private' must be true or false.");
                goto done;
            }
            op->is_private = value->via.boolean;
        }
        uint64_t max;
        int found = pl_body_uint (map, "max_participants", &max);
        if (found < 0 || (found == 1 && (max < ROOMS_MAX_PARTICIPANTS_MIN
                                      || max > ROOMS_MAX_PARTICIPANTS_MAX))) {
            code = "bad_request";
            snprintf (message, sizeof message,
                      "The field 'max_participants' must be a whole number from %d to %d.",
                      ROOMS_MAX_PARTICIPANTS_MIN, ROOMS_MAX_PARTICIPANTS_MAX);
            goto done;
        }
        if (found == 1)
            op->max_participants = (uint32_t) max;
        if (pl_body_str (map, "description", &op->argument) < 0
        ||  (op->argument && pl_text_utf8_length (op->argument) > ROOMS_DESCRIPTION_MAX)) {
            code = "bad_request";
            snprintf (message, sizeof message,
                      "The field 'description' must be a text of at most %d characters.",
                      ROOMS_DESCRIPTION_MAX);
            goto done;
        }
    }
    else
    if (kind == OP_INVITE) {
        if (pl_body_str (map, "user", &op->argument) != 1) {
            code = "bad_request";
            snprintf (message, sizeof message, "The field 'user' must be a string: who to invite.");
            goto done;
        }
    }
    else
    if (kind == OP_HISTORY) {
        uint64_t value;
        int found = pl_body_uint (map, "limit", &value);
        if (found < 0 || (found == 1 && (value < 1 || value > ROOMS_HISTORY_MAX))) {
            code = "bad_request";
            snprintf (message, sizeof message,
                      "The field 'limit' must be a whole number from 1 to %d.", ROOMS_HISTORY_MAX);
            goto done;
        }
        if (found == 1)
            op->limit = (uint32_t) value;
        found = pl_body_uint (map, "before", &value);
        if (found < 0 || value > INT64_MAX) {
            code = "bad_request";
            snprintf (message, sizeof message, "The field 'before' must be a seq (a whole number).");
            goto done;
        }
        if (found == 1)
            op->before = (int64_t) value;
        found = pl_body_uint (map, "after", &value);
        if (found < 0 || value > INT64_MAX) {
            code = "bad_request";
            snprintf (message, sizeof message, "The field 'after' must be a seq (a whole number).");
            goto done;
        }
        if (found == 1)
            op->after = (int64_t) value;
        if (op->before >= 0 && op->after >= 0) {
            code = "bad_request";
            snprintf (message, sizeof message, "Give 'before' or 'after', not both.");
            goto done;
        }
    }
    else
    if (kind == OP_SEND) {
        int found = pl_body_text (map, "text", &op->argument);
        if (found == -2)
            text_has_nul = true;        //  a value the server refuses: invalid_text below
        else
        if (found != 1) {
            code = "bad_request";
            snprintf (message, sizeof message, "The field 'text' must be a string.");
            goto done;
        }
    }
    else
    if (kind == OP_MEMBERS && s_members_cursor (map, &op->argument) != 0) {
        code = "bad_request";
        snprintf (message, sizeof message, "The field 'cursor' must be a 'next' this server gave.");
        goto done;
    }

    //  Values
    if (!s_room_name_valid (room_name)) {
        if (kind == OP_CREATE) {
            code = "invalid_room";
            snprintf (message, sizeof message,
                      "A room name is 1 to 64 letters, digits, '_' or '-'.");
        }
        else {
            code = "no_such_room";
            snprintf (message, sizeof message, "There is no room with that name.");
        }
        goto done;
    }
    if (kind == OP_SEND) {
        size_t length = text_has_nul? 0: pl_text_utf8_length (op->argument);
        if (length < 1 || length > ROOMS_TEXT_MAX || !pl_text_has_content (op->argument)) {
            code = "invalid_text";
            snprintf (message, sizeof message,
                      "A message is 1 to %d characters and not only white space.", ROOMS_TEXT_MAX);
            goto done;
        }
        if ((retry_ms = s_rate_wait (self, user)) > 0) {
            code = "rate_limited";
            snprintf (message, sizeof message,
                      "You are sending messages too fast; wait a moment and try again.");
            goto done;
        }
    }
    if (kind == OP_INVITE && !pl_text_username_valid (op->argument)) {
        code = "no_such_user";
        snprintf (message, sizeof message, "There is no user named '%.40s'.", op->argument);
        goto done;
    }
    //  Invitations count against the message rate (PROTOCOL.md 1.1)
    if (kind == OP_INVITE && (retry_ms = s_rate_wait (self, user)) > 0) {
        code = "rate_limited";
        snprintf (message, sizeof message,
                  "You are sending invitations too fast; wait a moment and try again.");
        goto done;
    }

    //  Into the room's queue
    {
        char *key = pl_text_lower_dup (room_name);
        room_t *room = key? (room_t *) zhashx_lookup (self->rooms, key): NULL;
        if (key && !room) {
            room = (room_t *) calloc (1, sizeof (room_t));
            if (room) {
                room->cookie = COOKIE_ROOM;
                room->key = key;
                key = NULL;
                room->name = strdup (room_name);
                room->members = zlistx_new ();
                if (!room->name || !room->members)
                    s_room_destroy (&room);
                else {
                    zlistx_set_duplicator (room->members, (zlistx_duplicator_fn *) strdup);
                    zlistx_set_destructor (room->members, (zlistx_destructor_fn *) zstr_free);
                    zlistx_set_comparator (room->members, s_member_compare);
                    zhashx_insert (self->rooms, room->key, room);
                }
            }
        }
        free (key);
        if (!room) {
            code = "internal";
            snprintf (message, sizeof message, "Out of memory; try again.");
            goto done;
        }
        if (room->queued >= ROOMS_QUEUE_MAX) {
            code = "unavailable";
            snprintf (message, sizeof message,
                      "The room '%s' is too busy now; try again shortly.", room->name);
            goto done;
        }
        op->request = request;
        request = NULL;
        if (room->tail)
            room->tail->next = op;
        else
            room->head = op;
        room->tail = op;
        room->queued++;
        room->touched = pl_time_mono ();
        op = NULL;
        s_room_kick (self, room);
    }

done:
    if (code && retry_ms > 0)
        pl_reply_error_retry (host, self->ctx, &request, code, message, retry_ms);
    else
    if (code)
        host->reply_error (self->ctx, &request, code, message);
    s_op_destroy (&op);
    free (room_name);
    msgpack_unpacked_destroy (&fields);
}

static void
s_on_reply (void *state, void *cookie, const char *code, const char *message,
            const uint8_t *body, size_t size)
{
    rooms_t *self = (rooms_t *) state;
    msgpack_unpacked answer;
    msgpack_unpacked_init (&answer);
    size_t offset = 0;
    const msgpack_object *map = NULL;
    if (body && size
    &&  msgpack_unpack_next (&answer, (const char *) body, size, &offset) == MSGPACK_UNPACK_SUCCESS
    &&  answer.data.type == MSGPACK_OBJECT_MAP)
        map = &answer.data;
    if (!code && !map)
        code = "internal", message = "the store's answer is not a map";

    if (*(cookie_kind_t *) cookie == COOKIE_LIST)
        rm_list_reply (self->lists, cookie, code, map);
    else
        s_room_reply (self, (room_t *) cookie, code, message, map, size);
    msgpack_unpacked_destroy (&answer);
}


//  --------------------------------------------------------------------------
//  Housekeeping: idle rooms leave the cache, so that a room that moved to
//  another instance and back is loaded fresh

static void
s_tick (void *state)
{
    rooms_t *self = (rooms_t *) state;
    int64_t now = pl_time_mono ();
    zlistx_t *idle = zlistx_new ();
    if (!idle)
        return;
    for (room_t *room = (room_t *) zhashx_first (self->rooms); room;
         room = (room_t *) zhashx_next (self->rooms))
        if (!room->head && room->stage == STAGE_NONE && now - room->touched >= self->idle_ms)
            zlistx_add_end (idle, room->key);
    for (char *key = (char *) zlistx_first (idle); key; key = (char *) zlistx_next (idle))
        zhashx_delete (self->rooms, key);
    zlistx_destroy (&idle);
}


//  --------------------------------------------------------------------------
//  Init and destroy

static double
s_option_number (parley_ctx_t *ctx, const parley_host_t *host, const char *name, double fallback)
{
    const char *value = host->option (ctx, name);
    if (!value)
        return fallback;
    char *end;
    double number = strtod (value, &end);
    if (end == value || *end || number < 0) {
        host->log (ctx, PARLEY_LOG_WARNING, "option %s=%s is not a number; using %g",
                   name, value, fallback);
        return fallback;
    }
    return number;
}

static void
s_room_free (void **item_p)
{
    s_room_destroy ((room_t **) item_p);
}

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
    self->rooms = zhashx_new ();
    self->sessions = zhashx_new ();
    self->online = zhashx_new ();
    self->buckets = zhashx_new ();
    self->lists = rm_list_new (ctx, host, (uint32_t) s_option_number (ctx, host, "list_public",
                                                                      ROOMS_LIST_PUBLIC_DEFAULT));
    if (!self->rooms || !self->sessions || !self->online || !self->buckets || !self->lists) {
        rm_list_destroy (&self->lists);
        zhashx_destroy (&self->rooms);
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->online);
        zhashx_destroy (&self->buckets);
        free (self);
        host->log (ctx, PARLEY_LOG_ERROR, "out of memory");
        return -1;
    }
    zhashx_set_destructor (self->rooms, s_room_free);
    zhashx_set_key_duplicator (self->rooms, NULL);      //  the key lives in the room
    zhashx_set_key_destructor (self->rooms, NULL);
    zhashx_set_destructor (self->sessions, (zhashx_destructor_fn *) zstr_free);
    zhashx_set_destructor (self->buckets, (zhashx_destructor_fn *) zstr_free);

    self->rate = s_option_number (ctx, host, "msg_rate", ROOMS_RATE_DEFAULT);
    self->burst = s_option_number (ctx, host, "msg_burst", ROOMS_BURST_DEFAULT);
    if (self->burst < 1)
        self->burst = 1;
    self->idle_ms = (int64_t) s_option_number (ctx, host, "idle_ms", ROOMS_IDLE_MS_DEFAULT);
    self->max_owned = (uint64_t) s_option_number (ctx, host, "max_owned",
                                                  ROOMS_MAX_OWNED_DEFAULT);
    self->max_joined = (uint64_t) s_option_number (ctx, host, "max_joined",
                                                   ROOMS_MAX_JOINED_DEFAULT);
    self->join_members = (size_t) s_option_number (ctx, host, "join_members",
                                                   ROOMS_JOIN_MEMBERS_DEFAULT);
    self->members_page = (size_t) s_option_number (ctx, host, "members_page",
                                                   ROOMS_MEMBERS_PAGE_DEFAULT);
    if (self->members_page < 1)
        self->members_page = 1;
    self->timer = host->timer_add (ctx, ROOMS_TICK_MS, s_tick);
    host->log (ctx, PARLEY_LOG_INFO, "ready: msg.send and room.invite limited to %g a second"
               " (burst %g) per user; a user owns at most %" PRIu64 " rooms and belongs to at"
               " most %" PRIu64 " (0: no limit)", self->rate, self->burst, self->max_owned,
               self->max_joined);
    *state_p = self;
    return 0;
}

static void
s_destroy (void **state_p)
{
    rooms_t *self = (rooms_t *) *state_p;
    if (self) {
        self->host->log (self->ctx, PARLEY_LOG_INFO, "stopping after %" PRIu64 " messages",
                         self->messages);
        if (self->timer > 0)
            self->host->timer_cancel (self->ctx, self->timer);
        zhashx_destroy (&self->rooms);
        zhashx_destroy (&self->sessions);
        zhashx_destroy (&self->online);
        zhashx_destroy (&self->buckets);
        rm_list_destroy (&self->lists);
        free (self);
        *state_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  The descriptor

static const parley_route_t s_routes [] = {
    { .prefix = "room.", .flags = 0, .shard = PARLEY_SHARD_FIELD, .shard_field = "room" },
    { .prefix = "msg.", .flags = 0, .shard = PARLEY_SHARD_FIELD, .shard_field = "room" },
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

/*  =========================================================================
    rm_list - room.list and room.directory: pages of rooms from the store

    room.list goes through phases, each a list of the store's:

        PHASE_JOINED    the rooms the user is a member of, by lower-cased
                        name (store.room.joined), each with its read
                        marker and the counts after it
        PHASE_INVITED   then the private rooms the user is invited to,
                        by lower-cased name (store.room.invited), each
                        with "invited": true
        PHASE_PUBLIC    then the other public rooms, most recently active
                        first, at most public_max of them over all pages
                        (store.room.public); "more_public": true when the
                        store has more beyond them; a room the user is
                        banned from with "banned": true

    room.directory is one phase, PHASE_DIRECTORY: public
    rooms by lower-cased name from a prefix (store.room.directory), a room
    the user is banned from with "banned": true.

    A page takes the store's rooms while its byte budget lasts; the store
    asked again (its own answer cut, or the next phase) until the page is
    full or the list ends. The cursor says where the next page starts:

        j.<room>                    after this room of the user's
        i.<room>                    after this room the user is invited to
        p.<given>.<active>.<room>   public rooms, <given> of them given,
                                    after (<active> ms, <room>)
        d.<room>                    the directory after this room

    where <room> is a lower-cased room name. Anything else is bad_request.
    =========================================================================
*/

#include "rm_list.h"
#include "pl_body.h"
#include "pl_limits.h"
#include "pl_reply.h"
#include "pl_service.h"
#include "pl_text.h"
#include "pl_time.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RM_CURSOR_MAX           128         //  our cursors' bytes, at most

typedef enum { PHASE_JOINED, PHASE_INVITED, PHASE_PUBLIC, PHASE_DIRECTORY } phase_t;

//  One room.list or room.directory in progress
typedef struct _page_t page_t;
struct _page_t {
    rm_list_t *pager;               //  the pager it is in: its calls' context
    parley_request_t *request;      //  lent by the host until we reply
    char *user;                     //  the stamped user
    phase_t phase;                  //  which store list is being read
    char after [PL_ROOM_NAME_MAX + 1];   //  the cursor's room, lower-cased; "" for none
    bool has_active;                //  PHASE_PUBLIC: the cursor's activity is set
    int64_t active;                 //  ms
    uint32_t given;                 //  PHASE_PUBLIC: public rooms given, earlier pages too
    uint32_t asked;                 //  rooms asked of the store in the call out
    int64_t called;                 //  pl_time_mono when the call went out
    char prefix [PL_ROOM_NAME_MAX + 1];  //  PHASE_DIRECTORY: lower-cased; "" for none
    uint32_t limit;                 //  PHASE_DIRECTORY: rooms per page
    msgpack_sbuffer rooms;          //  the client's room maps, packed
    pl_reply_budget_t budget;       //  of rooms, in JSON bytes
    bool full;                      //  a room did not fit: the page ends with next
    bool more_public;               //  room.list: public rooms beyond public_max
    page_t *prev;                   //  neighbours in the pager's list
    page_t *next;
};

struct _rm_list_t {
    parley_ctx_t *ctx;              //  the host's handle
    const parley_host_t *host;      //  the host's function table
    pl_call_t *calls;               //  the plugin's, borrowed: every store call
    uint32_t public_max;            //  room.list's other public rooms, at most
    page_t *pages;                  //  in flight, owned
    pl_service_t calls_time;        //  the store calls' measured time: the
                                    //  retry_after_ms of a failed page
};


//  --------------------------------------------------------------------------
//  Pages

static void
s_page_destroy (page_t **self_p)
{
    page_t *self = *self_p;
    if (self) {
        free (self->user);
        msgpack_sbuffer_destroy (&self->rooms);
        free (self);
        *self_p = NULL;
    }
}

static void
s_page_unlink (rm_list_t *self, page_t *page)
{
    if (page->prev)
        page->prev->next = page->next;
    else
    if (self->pages == page)
        self->pages = page->next;
    if (page->next)
        page->next->prev = page->prev;
    page->prev = page->next = NULL;
}

//  Answers the page's request as its store call failed with code (the
//  store's retry_after_ms told_ms, 0: none) and ends the page
static void
s_page_fail (rm_list_t *self, page_t *page, const char *code, int64_t told_ms)
{
    s_page_unlink (self, page);
    pl_reply_store_failed (self->host, self->ctx, &page->request, code,
                           "The room service cannot reach its storage now; try again later.",
                           told_ms, pl_service_ms (&self->calls_time));
    s_page_destroy (&page);
}

rm_list_t *
rm_list_new (parley_ctx_t *ctx, const parley_host_t *host, pl_call_t *calls,
             uint32_t public_max)
{
    rm_list_t *self = (rm_list_t *) calloc (1, sizeof (rm_list_t));
    if (self) {
        self->ctx = ctx;
        self->host = host;
        self->calls = calls;
        self->public_max = public_max;
    }
    return self;
}

void
rm_list_destroy (rm_list_t **self_p)
{
    rm_list_t *self = *self_p;
    if (self) {
        while (self->pages) {
            page_t *page = self->pages;
            self->pages = page->next;
            s_page_destroy (&page);
        }
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Cursors

//  A lower-cased room name of 1 to 64 letters, digits, '_' or '-', copied
//  into room (PL_ROOM_NAME_MAX + 1 bytes)
static bool
s_room_key (const char *text, char *room)
{
    size_t length = strlen (text);
    if (length < 1 || length > PL_ROOM_NAME_MAX)
        return false;
    for (size_t index = 0; index < length; index++) {
        char c = text [index];
        if (!(islower ((unsigned char) c) || isdigit ((unsigned char) c) || c == '_' || c == '-'))
            return false;
    }
    memcpy (room, text, length + 1);
    return true;
}

//  A decimal of at most 18 digits (so that it fits int64), up to the next
//  '.'; moves *text_p past it and the '.'
static bool
s_cursor_number (const char **text_p, int64_t *value_p)
{
    const char *text = *text_p;
    size_t digits = 0;
    int64_t value = 0;
    while (isdigit ((unsigned char) text [digits]) && digits < 18)
        value = value * 10 + (text [digits++] - '0');
    if (digits == 0 || text [digits] != '.')
        return false;
    *value_p = value;
    *text_p = text + digits + 1;
    return true;
}

//  Reads a cursor this pager gave into the page. Returns 0, or -1 when the
//  cursor is not one of ours for this request.
static int
s_cursor_read (rm_list_t *self, page_t *page, const char *cursor, bool directory)
{
    if (directory)
        return strncmp (cursor, "d.", 2) == 0 && s_room_key (cursor + 2, page->after)? 0: -1;
    if (strncmp (cursor, "j.", 2) == 0)
        return s_room_key (cursor + 2, page->after)? 0: -1;
    if (strncmp (cursor, "i.", 2) == 0) {
        page->phase = PHASE_INVITED;
        return s_room_key (cursor + 2, page->after)? 0: -1;
    }
    if (strcmp (cursor, "p.0") == 0) {
        page->phase = PHASE_PUBLIC;         //  the public rooms from their start
        return 0;
    }
    if (strncmp (cursor, "p.", 2) != 0)
        return -1;
    const char *text = cursor + 2;
    int64_t given, active;
    if (!s_cursor_number (&text, &given) || !s_cursor_number (&text, &active)
    ||  given > self->public_max || !s_room_key (text, page->after))
        return -1;
    page->phase = PHASE_PUBLIC;
    page->given = (uint32_t) given;
    page->has_active = true;
    page->active = active;
    return 0;
}


//  --------------------------------------------------------------------------
//  Store calls

static void
s_pack_kstr (msgpack_packer *packer, const char *key, const char *value)
{
    pl_body_pack_str (packer, key);
    pl_body_pack_str (packer, value);
}

//  Asks the store for the page's phase from its cursor. Returns 0, or -1
//  after answering the request unavailable (the page is gone).
static void s_page_answer (rm_list_t *self, page_t *page, bool follows);
static void s_page_answered (void *state, void *arg, const pl_call_reply_t *reply);

static int
s_page_call (rm_list_t *self, page_t *page)
{
    if (page->phase == PHASE_PUBLIC && page->given >= self->public_max) {
        s_page_answer (self, page, false);      //  no other public room to give
        return 0;
    }
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    bool after = page->after [0] != 0;
    bool prefix = page->phase == PHASE_DIRECTORY && page->prefix [0];
    bool active = page->phase == PHASE_PUBLIC && page->has_active;
    page->asked = page->phase == PHASE_JOINED || page->phase == PHASE_INVITED? PL_STORE_LIST_MAX
                : page->phase == PHASE_PUBLIC? self->public_max - page->given
                : page->limit - (uint32_t) page->budget.items;
    msgpack_pack_map (&packer, 2 + after + prefix + active);
    s_pack_kstr (&packer, "user", page->user);
    pl_body_pack_str (&packer, "limit");
    msgpack_pack_uint32 (&packer, page->asked);
    if (after)
        s_pack_kstr (&packer, "after", page->after);
    if (prefix)
        s_pack_kstr (&packer, "prefix", page->prefix);
    if (active) {
        pl_body_pack_str (&packer, "after_active");
        msgpack_pack_int64 (&packer, page->active);
    }
    const char *type = page->phase == PHASE_JOINED? "store.room.joined"
                     : page->phase == PHASE_INVITED? "store.room.invited"
                     : page->phase == PHASE_PUBLIC? "store.room.public": "store.room.directory";
    page->called = pl_time_mono ();
    int rc = pl_call_send (self->calls, type, buffer.data, buffer.size, s_page_answered, page);
    msgpack_sbuffer_destroy (&buffer);
    if (rc != 0)
        s_page_fail (self, page, "unavailable", 0);
    return rc;
}


//  --------------------------------------------------------------------------
//  Requests

//  Reads room.directory's query and limit into the page; 0, or -1 with a
//  sentence in message
static int
s_directory_read (page_t *page, const msgpack_object *map, char *message, size_t size)
{
    char *query = NULL;
    int found = pl_body_str (map, "query", &query);
    if (query)
        for (char *cursor = query; *cursor; cursor++)
            *cursor = (char) tolower ((unsigned char) *cursor);
    bool valid = found >= 0 && (!query || !*query || s_room_key (query, page->prefix));
    free (query);
    if (!valid) {
        snprintf (message, size, "The field 'query' must be the start of a room name:"
                  " up to %d letters, digits, '_' or '-'.", PL_ROOM_NAME_MAX);
        return -1;
    }
    uint64_t limit = PL_DIRECTORY_DEFAULT;
    found = pl_body_uint (map, "limit", &limit);
    if (found < 0 || limit < 1 || limit > PL_DIRECTORY_MAX) {
        snprintf (message, size, "The field 'limit' must be a whole number from 1 to %d.",
                  PL_DIRECTORY_MAX);
        return -1;
    }
    page->limit = (uint32_t) limit;
    return 0;
}

//  Reads the request's fields into the page; 0, or -1 with a sentence
static int
s_page_read (rm_list_t *self, page_t *page, const msgpack_object *map, bool directory,
             char *message, size_t size)
{
    if (directory && s_directory_read (page, map, message, size))
        return -1;
    char *cursor = NULL;
    int found = pl_body_str (map, "cursor", &cursor);
    int rc = found < 0 || (found == 1 && s_cursor_read (self, page, cursor, directory))? -1: 0;
    free (cursor);
    if (rc)
        snprintf (message, size, "The field 'cursor' must be a 'next' this server gave.");
    return rc;
}

//  A new page for the request, its fields read; NULL with a code and a
//  sentence when the request is refused
static page_t *
s_page_new (rm_list_t *self, parley_request_t *request, bool directory,
            const char **code_p, char *message, size_t size)
{
    *code_p = "internal";
    snprintf (message, size, "Out of memory; try again.");
    const char *user = self->host->request_user (request);
    page_t *page = (page_t *) calloc (1, sizeof (page_t));
    if (!page || !user || !(page->user = strdup (user))) {
        if (!user) {
            *code_p = "unauthenticated";
            snprintf (message, size, "Log in first.");
        }
        s_page_destroy (&page);
        return NULL;
    }
    page->pager = self;
    page->phase = directory? PHASE_DIRECTORY: PHASE_JOINED;
    msgpack_sbuffer_init (&page->rooms);
    page->budget = pl_reply_budget (PL_REPLY_LIST_BUDGET);

    size_t body_size;
    const uint8_t *body = self->host->request_body (request, &body_size);
    msgpack_unpacked fields;
    msgpack_unpacked_init (&fields);
    int rc = -1;
    const msgpack_object *map = pl_body_unpack (&fields, body, body_size);
    if (!map)
        snprintf (message, size, "The request's fields are not a map.");
    else
        rc = s_page_read (self, page, map, directory, message, size);
    msgpack_unpacked_destroy (&fields);
    if (rc) {
        *code_p = "bad_request";
        s_page_destroy (&page);
    }
    return page;
}

void
rm_list_request (rm_list_t *self, parley_request_t *request, const char *type)
{
    const char *code;
    char message [200];
    page_t *page = s_page_new (self, request, strcmp (type, "room.directory") == 0,
                               &code, message, sizeof message);
    if (!page) {
        self->host->reply_error (self->ctx, &request, code, message);
        return;
    }
    page->request = request;
    page->next = self->pages;
    if (self->pages)
        self->pages->prev = page;
    self->pages = page;
    s_page_call (self, page);
}


//  --------------------------------------------------------------------------
//  Answers

//  Packs a joined room's read marker and counts (PROTOCOL.md 1.1, "Read
//  markers, unread counts and mentions") as the next members of a map
static void
s_pack_marker (msgpack_packer *packer, const msgpack_object *room)
{
    const char *keys [] = { "last_seq", "read_seq", "unread", "mentions" };
    for (size_t index = 0; index < sizeof keys / sizeof keys [0]; index++) {
        pl_body_pack_str (packer, keys [index]);
        int64_t value = pl_body_int (room, keys [index]);
        msgpack_pack_uint64 (packer, value > 0? (uint64_t) value: 0);
    }
}

//  Packs the client's room map (PROTOCOL.md, Rooms, with joined) from the
//  store's: a joined room with its marker (the store gives read_seq), an
//  invited one with invited, a public one the user is banned from with
//  banned (proto/CLIENT-PROTOCOL.md, "Rooms")
static void
s_pack_room (msgpack_packer *packer, const msgpack_object *room)
{
    char name [PL_ROOM_NAME_MAX + 1], description [2048], owner [260];
    pl_body_copy (room, "name", name, sizeof name);
    pl_body_copy (room, "description", description, sizeof description);
    pl_body_copy (room, "owner", owner, sizeof owner);
    bool marker = pl_body_field (room, "read_seq") != NULL;
    bool invited = pl_body_bool (room, "invited");
    bool joined = pl_body_bool (room, "joined");
    bool banned = !joined && pl_body_bool (room, "banned");
    msgpack_pack_map (packer, 8 + (marker? 4: 0) + invited + banned);
    s_pack_kstr (packer, "name", name);
    s_pack_kstr (packer, "description", description);
    pl_body_pack_str (packer, "private");
    pl_body_bool (room, "private")? msgpack_pack_true (packer): msgpack_pack_false (packer);
    pl_body_pack_str (packer, "max_participants");
    msgpack_pack_int64 (packer, pl_body_int (room, "max_participants"));
    s_pack_kstr (packer, "owner", owner);
    pl_body_pack_str (packer, "created_at");
    pl_body_pack_time (packer, pl_body_int (room, "created_at"));
    pl_body_pack_str (packer, "members");
    msgpack_pack_int64 (packer, pl_body_int (room, "members"));
    pl_body_pack_str (packer, "joined");
    joined? msgpack_pack_true (packer): msgpack_pack_false (packer);
    if (marker)
        s_pack_marker (packer, room);
    if (invited) {
        pl_body_pack_str (packer, "invited");
        msgpack_pack_true (packer);
    }
    if (banned) {
        pl_body_pack_str (packer, "banned");
        msgpack_pack_true (packer);
    }
}

//  Takes the store's rooms into the page while its budget lasts; the last
//  room taken becomes the cursor. Returns how many were taken.
static uint32_t
s_page_take (page_t *page, const msgpack_object *rooms)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, &page->rooms, msgpack_sbuffer_write);
    uint32_t taken = 0;
    for (; taken < rooms->via.array.size; taken++) {
        const msgpack_object *room = &rooms->via.array.ptr [taken];
        size_t start = page->rooms.size;
        s_pack_room (&packer, room);
        if (!pl_reply_budget_take (&page->budget, pl_reply_json_size_packed (
                page->rooms.data + start, page->rooms.size - start))) {
            page->rooms.size = start;
            page->full = true;
            break;
        }
        char name [PL_ROOM_NAME_MAX + 1];
        pl_body_copy (room, "name", name, sizeof name);
        for (char *cursor = name; *cursor; cursor++)
            *cursor = (char) tolower ((unsigned char) *cursor);
        snprintf (page->after, sizeof page->after, "%s", name);
        page->active = pl_body_int (room, "active_at");
        page->has_active = true;
        if (page->phase == PHASE_PUBLIC)
            page->given++;
    }
    return taken;
}

//  Answers the page: its rooms, next when a page follows, more_public
static void
s_page_answer (rm_list_t *self, page_t *page, bool follows)
{
    char next [RM_CURSOR_MAX];
    if (page->phase == PHASE_PUBLIC && !page->has_active)
        snprintf (next, sizeof next, "p.0");
    else
    if (page->phase == PHASE_PUBLIC)
        snprintf (next, sizeof next, "p.%" PRIu32 ".%" PRId64 ".%s", page->given, page->active,
                  page->after);
    else
        snprintf (next, sizeof next, "%c.%s", page->phase == PHASE_JOINED? 'j'
                                            : page->phase == PHASE_INVITED? 'i': 'd',
                  page->after);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 1 + follows + page->more_public);
    pl_body_pack_str (&packer, "rooms");
    msgpack_pack_array (&packer, (uint32_t) page->budget.items);
    msgpack_sbuffer_write (&buffer, page->rooms.data, page->rooms.size);
    if (follows)
        s_pack_kstr (&packer, "next", next);
    if (page->more_public) {
        pl_body_pack_str (&packer, "more_public");
        msgpack_pack_true (&packer);
    }
    s_page_unlink (self, page);
    self->host->reply (self->ctx, &page->request, buffer.data, buffer.size);
    msgpack_sbuffer_destroy (&buffer);
    s_page_destroy (&page);
}

//  The page's phase is read to its end: the next phase, or the answer
static void
s_page_phase_done (rm_list_t *self, page_t *page)
{
    if (page->phase == PHASE_JOINED) {
        page->phase = PHASE_INVITED;
        page->after [0] = 0;
        s_page_call (self, page);
    }
    else
    if (page->phase == PHASE_INVITED && self->public_max > 0) {
        page->phase = PHASE_PUBLIC;
        page->after [0] = 0;
        page->has_active = false;
        page->given = 0;
        s_page_call (self, page);
    }
    else
        s_page_answer (self, page, false);
}

//  The store answered the page's call (pl_call's handler; arg is the page):
//  serves the page on (another call, or the reply)
static void
s_page_answered (void *state, void *arg, const pl_call_reply_t *reply)
{
    (void) state;
    page_t *page = (page_t *) arg;
    rm_list_t *self = page->pager;
    const char *code = reply->code;
    const msgpack_object *body = reply->body;
    const msgpack_object *rooms = pl_body_field (body, "rooms");
    pl_service_add (&self->calls_time, pl_time_mono () - page->called);
    if (code || !rooms || rooms->type != MSGPACK_OBJECT_ARRAY) {
        self->host->log (self->ctx, PARLEY_LOG_WARNING, "could not list rooms for '%s': %s",
                         page->user, code? code: "malformed answer");
        s_page_fail (self, page, code, reply->retry_ms);
        return;
    }
    uint32_t taken = s_page_take (page, rooms);
    bool more = pl_body_bool (body, "more");
    if (page->full)
        s_page_answer (self, page, true);
    else
    if (!more || taken == 0)            //  the phase's end (none taken: never loop)
        s_page_phase_done (self, page);
    else
    if (page->phase == PHASE_DIRECTORY && page->budget.items >= page->limit)
        s_page_answer (self, page, true);
    else
    if (page->phase == PHASE_PUBLIC && page->given >= self->public_max) {
        page->more_public = true;
        s_page_phase_done (self, page);
    }
    else
        //  The store's own answer was cut for its bytes, or its limit
        //  reached: on from the last room taken
        s_page_call (self, page);
}

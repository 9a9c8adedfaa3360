/*  =========================================================================
    ss_rooms - store-sqlite's rooms, members, invitations and timelines

    The rooms plugin owns each room's seq (proto/STORE.md): a taken seq is
    the primary key's constraint error, answered conflict, and the
    request's savepoint (store_sqlite.c) undoes whatever it wrote before.
    =========================================================================
*/

#include "ss_rooms.h"
#include "ss_timeline.h"
#include "st_list.h"
#include "st_reply.h"
#include "pl_body.h"
#include "pl_time.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum {
    S_SQL_ROOM_INSERT,
    S_SQL_ROOM_GET,
    S_SQL_ROOM_ID,
    S_SQL_ROOM_LIST,
    S_SQL_ROOM_JOINED,
    S_SQL_ROOM_PUBLIC,
    S_SQL_ROOM_DIRECTORY,
    S_SQL_ROOM_ACTIVE,
    S_SQL_OWNED_COUNT,
    S_SQL_JOINED_COUNT,
    S_SQL_ROOM_DELETE,
    S_SQL_MEMBER_NAMES,
    S_SQL_MEMBER_IS,
    S_SQL_MEMBER_INSERT,
    S_SQL_MEMBER_DELETE,
    S_SQL_MEMBER_COUNT,
    S_SQL_INVITE_IS,
    S_SQL_INVITE_PUT,
    S_SQL_INVITE_DELETE,
    S_SQL_ENTRY_INSERT,
    S_SQL_HISTORY_BEFORE,
    S_SQL_HISTORY_AFTER,
    S_SQL_NONCE_GET,
    S_SQL_NONCE_BY_NAME,
    S_SQL_ROOM_INVITED,
    S_SQL_MARKER_GET,
    S_SQL_MARKER_MOVE,
    S_SQL_MARKER_SEND,
    S_SQL_MENTION_PUT,
    S_SQL_ROOM_ALL,
    S_SQL_ROOM_OWNER,
    S_SQL_BAN_IS,
    S_SQL_BAN_PUT,
    S_SQL_BAN_DELETE,
    S_SQL_ROOM_UPDATE,
    S_SQL_ENTRY_FOUND,
    S_SQL_COUNT
} s_sql_t;

static const char *s_sql_text [S_SQL_COUNT] = {
    //  The room map's columns, in the order s_pack_room reads them; the
    //  counts are lookups on the primary keys of members and entries
#define S_ROOM_COLUMNS \
    "SELECT rooms.id, rooms.name, rooms.description, rooms.private, rooms.max_participants," \
    " users.name, rooms.created_at," \
    " (SELECT count (*) FROM members WHERE members.room_id = rooms.id)," \
    " (SELECT COALESCE (MAX (seq), 0) FROM entries WHERE entries.room_id = rooms.id)," \
    " rooms.owner_id, rooms.active_at"
    //  Column 12 of the lists of public rooms: the user ?1 is banned from
    //  the room, one search of the bans' primary key (room_id, user_id)
#define S_BANNED_COLUMN \
    "EXISTS (SELECT 1 FROM bans WHERE bans.room_id = rooms.id" \
    " AND bans.user_id = (SELECT id FROM users WHERE name_key = ?1))"
    [S_SQL_ROOM_INSERT]  = "INSERT INTO rooms (name, name_key, description, private,"
                           " max_participants, owner_id, created_at, active_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    [S_SQL_ROOM_GET]     = S_ROOM_COLUMNS
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " WHERE rooms.name_key = ?1",
    //  The id alone: ROOM_GET's counts read every member and a sent
    //  message needs none of them
    [S_SQL_ROOM_ID]      = "SELECT id FROM rooms WHERE name_key = ?1",
    [S_SQL_ROOM_LIST]    = S_ROOM_COLUMNS ", mine.user_id IS NOT NULL, " S_BANNED_COLUMN
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " LEFT JOIN members AS mine ON mine.room_id = rooms.id"
                           " AND mine.user_id = (SELECT id FROM users WHERE name_key = ?1)"
                           " WHERE rooms.private = 0 OR mine.user_id IS NOT NULL"
                           " ORDER BY rooms.name_key",
    //  The user's rooms: members_by_user, then a sort of at most the
    //  user's quota of rooms; with each, the read marker and its counts,
    //  ranges of entries' primary key and of mentions' (never a scan of
    //  the timeline)
    [S_SQL_ROOM_JOINED]  = S_ROOM_COLUMNS ", 1"
                           ", mine.read_seq, (SELECT count (*) FROM entries"
                           " WHERE entries.room_id = rooms.id AND entries.seq > mine.read_seq"
                           " AND entries.kind = 'message' AND entries.deleted = 0"
                           " AND entries.user <> ?1 COLLATE NOCASE),"
                           " (SELECT count (*) FROM mentions JOIN entries AS e"
                           " ON e.room_id = mentions.room_id AND e.seq = mentions.seq"
                           " WHERE mentions.room_id = rooms.id AND mentions.user_id = mine.user_id"
                           " AND mentions.seq > mine.read_seq AND e.deleted = 0)"
                           " FROM members AS mine JOIN rooms ON rooms.id = mine.room_id"
                           " JOIN users ON users.id = rooms.owner_id"
                           " WHERE mine.user_id = (SELECT id FROM users WHERE name_key = ?1)"
                           " AND rooms.name_key > ?2 ORDER BY rooms.name_key LIMIT ?3",
    //  Public rooms, most recently active first: a walk of
    //  rooms_public_by_active from the cursor (?2, ?3), skipping the user's
    //  own rooms (a primary-key search each), with the user's bans (another)
    [S_SQL_ROOM_PUBLIC]  = S_ROOM_COLUMNS ", 0, " S_BANNED_COLUMN
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " WHERE rooms.private = 0 AND (rooms.active_at < ?2"
                           " OR (rooms.active_at = ?2 AND rooms.name_key > ?3))"
                           " AND NOT EXISTS (SELECT 1 FROM members WHERE members.room_id = rooms.id"
                           " AND members.user_id = (SELECT id FROM users WHERE name_key = ?1))"
                           " ORDER BY rooms.active_at DESC, rooms.name_key LIMIT ?4",
    //  Public rooms by name, from a prefix: one range of rooms_public_by_name,
    //  with the user's membership and ban (a primary-key search each)
    [S_SQL_ROOM_DIRECTORY]
                         = S_ROOM_COLUMNS ", mine.user_id IS NOT NULL, " S_BANNED_COLUMN
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " LEFT JOIN members AS mine ON mine.room_id = rooms.id"
                           " AND mine.user_id = (SELECT id FROM users WHERE name_key = ?1)"
                           " WHERE rooms.private = 0 AND rooms.name_key > ?2"
                           " AND rooms.name_key >= ?3 AND rooms.name_key < ?4"
                           " ORDER BY rooms.name_key LIMIT ?5",
    [S_SQL_ROOM_ACTIVE]  = "UPDATE rooms SET active_at = MAX (active_at, ?2) WHERE id = ?1",
    //  The quotas: ranges of rooms_by_owner and members_by_user
    [S_SQL_OWNED_COUNT]  = "SELECT count (*) FROM rooms WHERE owner_id = ?1",
    [S_SQL_JOINED_COUNT] = "SELECT count (*) FROM members WHERE user_id = ?1",
    [S_SQL_ROOM_DELETE]  = "DELETE FROM rooms WHERE id = ?1",
    [S_SQL_MEMBER_NAMES] = "SELECT users.name FROM members JOIN users ON users.id = members.user_id"
                           " WHERE members.room_id = ?1 ORDER BY users.name_key",
    [S_SQL_MEMBER_IS]    = "SELECT 1 FROM members WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_MEMBER_INSERT]
                         = "INSERT INTO members (room_id, user_id, joined_at, read_seq)"
                           " VALUES (?1, ?2, ?3, ?4)",
    [S_SQL_MEMBER_DELETE]
                         = "DELETE FROM members WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_MEMBER_COUNT] = "SELECT count (*) FROM members WHERE room_id = ?1",
    [S_SQL_INVITE_IS]    = "SELECT 1 FROM invitations WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_INVITE_PUT]   = "INSERT INTO invitations (room_id, user_id, invited_by, invited_at)"
                           " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (room_id, user_id)"
                           " DO UPDATE SET invited_by = excluded.invited_by,"
                           " invited_at = excluded.invited_at",
    [S_SQL_INVITE_DELETE]
                         = "DELETE FROM invitations WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_ENTRY_INSERT] = "INSERT INTO entries (room_id, seq, kind, user, ts, text, event,"
                           " nonce, mentions, reply_to, target, emoji, on_, by_name, file_id,"
                           " file_name, file_size, file_type)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
                           " ?15, ?16, ?17, ?18)",
    //  Both walk the primary key (room_id, seq) from the cursor: one more
    //  row than asked tells whether more remain. The columns s_entry_of_row
    //  reads: a message as it is now, a change's fields (schema version 9)
#define S_ENTRY_COLUMNS \
    "SELECT seq, kind, user, ts, text, event, nonce, mentions, by_name, " SS_TIMELINE_COLUMNS
    [S_SQL_HISTORY_BEFORE]
                         = S_ENTRY_COLUMNS " FROM entries"
                           " WHERE room_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [S_SQL_HISTORY_AFTER]
                         = S_ENTRY_COLUMNS " FROM entries"
                           " WHERE room_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
    //  A sender's nonce in the room: one search of entries_by_nonce
    [S_SQL_NONCE_GET]    = "SELECT seq, ts FROM entries WHERE room_id = ?1"
                           " AND user = ?2 COLLATE NOCASE AND nonce = ?3",
    //  The same by the room's name: a room that does not exist has none
    [S_SQL_NONCE_BY_NAME]
                         = "SELECT entries.seq, entries.ts FROM rooms JOIN entries"
                           " ON entries.room_id = rooms.id WHERE rooms.name_key = ?1"
                           " AND entries.user = ?2 COLLATE NOCASE AND entries.nonce = ?3",
    //  The private rooms the user is invited to: invitations_by_user, then a
    //  sort of those rooms (an invitation is used up by joining)
    [S_SQL_ROOM_INVITED] = S_ROOM_COLUMNS ", 0"
                           " FROM invitations AS mine JOIN rooms ON rooms.id = mine.room_id"
                           " JOIN users ON users.id = rooms.owner_id"
                           " WHERE mine.user_id = (SELECT id FROM users WHERE name_key = ?1)"
                           " AND rooms.private = 1 AND rooms.name_key > ?2"
                           " AND NOT EXISTS (SELECT 1 FROM members WHERE members.room_id = rooms.id"
                           " AND members.user_id = mine.user_id)"
                           " ORDER BY rooms.name_key LIMIT ?3",
    [S_SQL_MARKER_GET]   = "SELECT read_seq FROM members WHERE room_id = ?1 AND user_id = ?2",
    //  Forward only, and never past the newest entry (one key read)
    [S_SQL_MARKER_MOVE]  = "UPDATE members SET read_seq = ?3 WHERE room_id = ?1 AND user_id = ?2"
                           " AND read_seq < ?3",
    //  A member's own message moves its marker, in msg.append's transaction
    [S_SQL_MARKER_SEND]  = "UPDATE members SET read_seq = ?3 WHERE room_id = ?1"
                           " AND user_id = (SELECT id FROM users WHERE name_key = lower (?2))"
                           " AND read_seq < ?3",
    [S_SQL_MENTION_PUT]  = "INSERT OR IGNORE INTO mentions (room_id, user_id, seq)"
                           " SELECT ?1, id, ?3 FROM users WHERE name_key = lower (?2)",
    //  Every room, public and private, by name (the operator's list): a walk
    //  of the unique index on name_key; -1 leaves 'joined' out
    [S_SQL_ROOM_ALL]     = S_ROOM_COLUMNS ", -1"
                           " FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " WHERE rooms.name_key > ?1 ORDER BY rooms.name_key LIMIT ?2",
    //  Who may delete others' messages (msg.append's deletions)
    [S_SQL_ROOM_OWNER]   = "SELECT users.name_key FROM rooms JOIN users ON users.id = rooms.owner_id"
                           " WHERE rooms.id = ?1",
    //  Bans (schema version 10): one search of the primary key each
    [S_SQL_BAN_IS]       = "SELECT 1 FROM bans WHERE room_id = ?1 AND user_id = ?2",
    [S_SQL_BAN_PUT]      = "INSERT INTO bans (room_id, user_id, banned_by, banned_at)"
                           " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (room_id, user_id) DO NOTHING",
    [S_SQL_BAN_DELETE]   = "DELETE FROM bans WHERE room_id = ?1 AND user_id = ?2",
    //  A setting left NULL stays as it is
    [S_SQL_ROOM_UPDATE]  = "UPDATE rooms SET description = COALESCE (?2, description),"
                           " private = COALESCE (?3, private),"
                           " max_participants = COALESCE (?4, max_participants) WHERE id = ?1",
    //  A search's result (schema version 12): one entry and its room's name
    [S_SQL_ENTRY_FOUND]  = S_ENTRY_COLUMNS ", rooms.name FROM entries JOIN rooms"
                           " ON rooms.id = entries.room_id WHERE room_id = ?1 AND seq = ?2",
};

struct ss_rooms_s {
    ss_db_t *db;                    //  borrowed
    ss_users_t *users;              //  borrowed: looks users up
    ss_indexer_t *indexer;          //  borrowed: told of each append (schema version 15)
    ss_timeline_t *timeline;        //  the rooms' changes (schema version 9)
    sqlite3_stmt *sql [S_SQL_COUNT];
};

//  The rooms' timeline tables, for ss_timeline
static const ss_timeline_tables_t s_tables = {
    .entries = "entries", .reactions = "reactions", .key = "room_id", .author = "lower (user)"
};

ss_rooms_t *
ss_rooms_new (ss_db_t *db, ss_users_t *users, ss_indexer_t *indexer)
{
    ss_rooms_t *self = (ss_rooms_t *) calloc (1, sizeof (ss_rooms_t));
    if (!self)
        return NULL;
    self->db = db;
    self->users = users;
    self->indexer = indexer;
    self->timeline = ss_timeline_new (db, &s_tables);
    if (!self->timeline || ss_db_prepare (db, s_sql_text, S_SQL_COUNT, self->sql))
        ss_rooms_destroy (&self);
    return self;
}

void
ss_rooms_destroy (ss_rooms_t **self_p)
{
    ss_rooms_t *self = *self_p;
    if (!self)
        return;
    ss_db_finalize (self->sql, S_SQL_COUNT);
    ss_timeline_destroy (&self->timeline);
    free (self);
    *self_p = NULL;
}


//  Room administration's (schema version 10), at the end of the file
static int s_refuse_banned (ss_rooms_t *self, st_request_t *request, int64_t room_id,
                            int64_t user_id, const st_name_t *room, const st_name_t *user);
static int s_member_ban (ss_rooms_t *self, st_request_t *request);
static int s_room_update (ss_rooms_t *self, st_request_t *request);
static int s_room_unban (ss_rooms_t *self, st_request_t *request);


//  --------------------------------------------------------------------------
//  Helpers

//  The room map of a row of S_ROOM_COLUMNS, with 'joined' (column 11) if asked
static st_room_t
s_room_of_row (sqlite3_stmt *stmt, bool with_joined)
{
    return (st_room_t) {
        .name = ss_db_column_text (stmt, 1),
        .description = ss_db_column_text (stmt, 2),
        .is_private = sqlite3_column_int (stmt, 3) != 0,
        .max_participants = (uint64_t) sqlite3_column_int64 (stmt, 4),
        .owner = ss_db_column_text (stmt, 5),
        .created_at = sqlite3_column_int64 (stmt, 6),
        .members = (uint64_t) sqlite3_column_int64 (stmt, 7),
        .last_seq = (uint64_t) sqlite3_column_int64 (stmt, 8),
        .active_at = sqlite3_column_int64 (stmt, 10),
        .joined = with_joined && sqlite3_column_int (stmt, 11) >= 0
                ? sqlite3_column_int (stmt, 11) != 0 : -1
    };
}

//  A row of S_SQL_ROOM_JOINED: the room map with the user's marker and its
//  counts (columns 12 to 14)
static st_room_t
s_joined_room_of_row (sqlite3_stmt *stmt)
{
    st_room_t room = s_room_of_row (stmt, true);
    room.has_marker = true;
    room.read_seq = (uint64_t) sqlite3_column_int64 (stmt, 12);
    room.unread = (uint64_t) sqlite3_column_int64 (stmt, 13);
    room.mentions = (uint64_t) sqlite3_column_int64 (stmt, 14);
    return room;
}

//  Looks the room up with the statement which (S_SQL_ROOM_GET, its row;
//  S_SQL_ROOM_ID, its id alone): the row stays on it for the caller, who
//  must finish it. Returns SQLITE_ROW, or SQLITE_DONE after failing the
//  request with not_found, or a fatal code.
static int
s_room_find (ss_rooms_t *self, st_request_t *request, const st_name_t *room, s_sql_t which)
{
    sqlite3_stmt *stmt = self->sql [which];
    ss_db_bind_key (stmt, 1, room);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_DONE)
        st_reply_no_room (request, room->text);
    return rc;
}

//  The room's id, or 0 after failing the request with not_found; *rc_p
//  gets a fatal code
static int64_t
s_room_id (ss_rooms_t *self, st_request_t *request, const st_name_t *room, int *rc_p)
{
    int rc = s_room_find (self, request, room, S_SQL_ROOM_ID);
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_ID];
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64 (stmt, 0) : 0;
    ss_db_finish (stmt);
    *rc_p = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
    return id;
}

//  The user's id, or 0 after failing the request with not_found (sentence
//  followed by why, e.g. " to own the room"); *rc_p gets a fatal code
static int64_t
s_user_id (ss_rooms_t *self, st_request_t *request, const st_name_t *user, const char *why,
           char *registered, int *rc_p)
{
    int64_t id = ss_users_find (self->users, user, registered, rc_p);
    if (!id && *rc_p == SQLITE_OK)
        st_request_fail (request, "not_found", "No user is named '%.*s'%s.",
                         (int) user->text.size, user->text.data, why);
    return id;
}

//  Runs a statement with (room_id, user_id) and says whether it gave a row
static int
s_pair_exists (ss_rooms_t *self, s_sql_t sql, int64_t room_id, int64_t user_id, bool *exists_p)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, user_id);
    int rc = sqlite3_step (stmt);
    *exists_p = rc == SQLITE_ROW;
    ss_db_finish (stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

static int
s_pair_run (ss_rooms_t *self, s_sql_t sql, int64_t room_id, int64_t user_id)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, user_id);
    return ss_db_step_done (stmt);
}

//  Counts with a statement bound to one id
static int
s_count_by_id (ss_rooms_t *self, s_sql_t sql, int64_t id, int64_t *count_p)
{
    sqlite3_stmt *stmt = self->sql [sql];
    sqlite3_bind_int64 (stmt, 1, id);
    return ss_db_count (stmt, count_p);
}

//  Binds the columns an entry's kind has: a system entry's event and by,
//  a message's or an edit's text, a change's target, emoji and on, a reply's
//  reply_to; the others stay NULL
static void
s_bind_kind_fields (sqlite3_stmt *stmt, const st_entry_t *entry)
{
    const st_change_t *change = &entry->change;
    if (change->kind == ST_KIND_SYSTEM) {
        ss_db_bind_text (stmt, 7, entry->event);
        if (entry->by.data)
            ss_db_bind_text (stmt, 14, entry->by);
        return;
    }
    if (entry->text.data)
        ss_db_bind_text (stmt, 6, entry->text);
    if (change->reply_to)
        sqlite3_bind_int64 (stmt, 10, (int64_t) change->reply_to);
    if (change->target)
        sqlite3_bind_int64 (stmt, 11, (int64_t) change->target);
    if (change->kind == ST_KIND_REACTION) {
        ss_db_bind_text (stmt, 12, change->emoji);
        sqlite3_bind_int (stmt, 13, change->on ? 1 : 0);
    }
}

//  Appends an entry to the room; a taken seq fails the request with conflict
static int
s_entry_insert (ss_rooms_t *self, st_request_t *request, const st_name_t *room,
                int64_t room_id, const st_entry_t *entry)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ENTRY_INSERT];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, (int64_t) entry->seq);
    sqlite3_bind_text (stmt, 3, st_kind_name (entry->change.kind), -1, SQLITE_STATIC);
    ss_db_bind_text (stmt, 4, entry->user);
    sqlite3_bind_int64 (stmt, 5, entry->ts);
    msgpack_sbuffer mentions;
    msgpack_sbuffer_init (&mentions);
    s_bind_kind_fields (stmt, entry);
    ss_timeline_bind_file (stmt, 15, &entry->change);
    if (entry->nonce.data)
        ss_db_bind_text (stmt, 8, entry->nonce);
    if (entry->mentions) {
        //  Kept as the msgpack array it came with, answered as it is
        msgpack_packer packer;
        msgpack_packer_init (&packer, &mentions, msgpack_sbuffer_write);
        msgpack_pack_object (&packer, *entry->mentions);
        sqlite3_bind_blob (stmt, 9, mentions.data, (int) mentions.size, SQLITE_STATIC);
    }
    int rc = ss_db_step_done (stmt);
    msgpack_sbuffer_destroy (&mentions);
    //  Not the timeline's key: the nonce index (the caller names the repeats)
    if (rc == SQLITE_CONSTRAINT_UNIQUE && entry->nonce.data)
        return rc;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        st_request_fail (request, "conflict", "The room '%.*s' has an entry with seq %" PRIu64
                         " already.", (int) room->text.size, room->text.data, entry->seq);
        return SQLITE_OK;
    }
    return rc;
}

//  Packs 'room' (the room map, as it is now) as the next key of an open map
static int
s_pack_room_field (ss_rooms_t *self, st_request_t *request, const st_name_t *room)
{
    int rc = s_room_find (self, request, room, S_SQL_ROOM_GET);
    if (rc == SQLITE_ROW) {
        st_room_t map = s_room_of_row (self->sql [S_SQL_ROOM_GET], false);
        pl_body_pack_str (st_request_packer (request), "room");
        st_reply_room (st_request_packer (request), &map);
    }
    ss_db_finish (self->sql [S_SQL_ROOM_GET]);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

//  Fails the request with quota_owned or quota_joined when the user has
//  reached a quota (0 for none): owns max_owned rooms, or belongs to
//  max_joined. Counted by index, before the new room or membership.
static int
s_check_quotas (ss_rooms_t *self, st_request_t *request, const st_name_t *user,
                int64_t user_id, uint64_t max_owned, uint64_t max_joined)
{
    int64_t count = 0;
    int rc;
    if (max_owned) {
        if ((rc = s_count_by_id (self, S_SQL_OWNED_COUNT, user_id, &count)) != SQLITE_OK)
            return rc;
        if (count >= (int64_t) max_owned) {
            st_request_fail (request, "quota_owned", "'%.*s' owns %" PRId64 " rooms, the most"
                             " allowed.", (int) user->text.size, user->text.data, count);
            return SQLITE_OK;
        }
    }
    if (max_joined) {
        if ((rc = s_count_by_id (self, S_SQL_JOINED_COUNT, user_id, &count)) != SQLITE_OK)
            return rc;
        if (count >= (int64_t) max_joined)
            st_request_fail (request, "quota_joined", "'%.*s' belongs to %" PRId64 " rooms, the"
                             " most allowed.", (int) user->text.size, user->text.data, count);
    }
    return SQLITE_OK;
}


//  --------------------------------------------------------------------------
//  store.room.*

//  Whether a room of this name exists: a taken name answers conflict
//  before any quota (a repeated create is recognised first)
static int
s_room_taken (ss_rooms_t *self, const st_name_t *room, bool *taken_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_GET];
    ss_db_bind_key (stmt, 1, room);
    int rc = sqlite3_step (stmt);
    ss_db_finish (stmt);
    *taken_p = rc == SQLITE_ROW;
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

//  Inserts the room and its owner as its first member
static int
s_room_insert (ss_rooms_t *self, st_request_t *request, int64_t owner_id)
{
    const st_room_create_t *create = &request->as.room_create;
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_INSERT];
    ss_db_bind_text (stmt, 1, create->name.text);
    ss_db_bind_key (stmt, 2, &create->name);
    ss_db_bind_text (stmt, 3, create->description);
    sqlite3_bind_int (stmt, 4, create->is_private ? 1 : 0);
    sqlite3_bind_int64 (stmt, 5, (int64_t) create->max_participants);
    sqlite3_bind_int64 (stmt, 6, owner_id);
    sqlite3_bind_int64 (stmt, 7, create->created_at);
    int rc = ss_db_step_done (stmt);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        st_request_fail (request, "conflict", "A room named '%.*s' exists (room names ignore"
                         " case).", (int) create->name.text.size, create->name.text.data);
        return SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *member = self->sql [S_SQL_MEMBER_INSERT];
    sqlite3_bind_int64 (member, 1, sqlite3_last_insert_rowid (ss_db_handle (self->db)));
    sqlite3_bind_int64 (member, 2, owner_id);
    sqlite3_bind_int64 (member, 3, create->created_at);
    sqlite3_bind_int64 (member, 4, 0);          //  a new room has no entry to read
    return ss_db_step_done (member);
}

static int
s_room_create (ss_rooms_t *self, st_request_t *request)
{
    const st_room_create_t *create = &request->as.room_create;
    int rc;
    int64_t owner_id = s_user_id (self, request, &create->owner, " to own the room", NULL, &rc);
    if (!owner_id)
        return rc;
    if (create->max_owned || create->max_joined) {
        bool taken = false;
        if ((rc = s_room_taken (self, &create->name, &taken)) != SQLITE_OK)
            return rc;
        if (!taken && ((rc = s_check_quotas (self, request, &create->owner, owner_id,
                                             create->max_owned, create->max_joined))
                       != SQLITE_OK || !st_request_live (request)))
            return rc;
    }
    if ((rc = s_room_insert (self, request, owner_id)) != SQLITE_OK || !st_request_live (request))
        return rc;
    msgpack_pack_map (st_request_packer (request), 1);
    return s_pack_room_field (self, request, &create->name);
}

static int
s_room_get (ss_rooms_t *self, st_request_t *request)
{
    msgpack_pack_map (st_request_packer (request), 1);
    return s_pack_room_field (self, request, &request->as.room_get.name);
}

//  Answers {rooms, more} from a bound statement: at most limit rooms, and
//  fewer, with more, at a whole room before the answer would pass its
//  bytes. A statement that yields a room past limit says more too.
typedef st_room_t (s_room_row_fn) (sqlite3_stmt *stmt);

static st_room_t
s_listed_room_of_row (sqlite3_stmt *stmt)
{
    return s_room_of_row (stmt, true);
}

//  A row of the lists of public rooms (S_SQL_ROOM_PUBLIC, _DIRECTORY,
//  _LIST): the room map with joined, and banned (column 12) for a room the
//  user is not a member of
static st_room_t
s_public_room_of_row (sqlite3_stmt *stmt)
{
    st_room_t room = s_room_of_row (stmt, true);
    room.banned = room.joined == 0 && sqlite3_column_int (stmt, 12) != 0;
    return room;
}

static st_room_t
s_invited_room_of_row (sqlite3_stmt *stmt)
{
    st_room_t room = s_room_of_row (stmt, true);
    room.invited = true;
    return room;
}

static int
s_answer_rooms_by (st_request_t *request, sqlite3_stmt *stmt, uint32_t limit,
                   s_room_row_fn *row_of)
{
    st_list_t *rooms = st_list_new (limit, false);
    if (!rooms) {
        ss_db_finish (stmt);
        return SQLITE_NOMEM;
    }
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        st_room_t room = row_of (stmt);
        st_reply_room (st_list_packer (rooms), &room);
        if (!st_list_push (rooms))
            break;
    }
    ss_db_finish (stmt);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        st_list_answer (rooms, request, "rooms");
        rc = SQLITE_OK;
    }
    st_list_destroy (&rooms);
    return rc;
}

static int
s_room_list (ss_rooms_t *self, st_request_t *request)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_LIST];
    ss_db_bind_key (stmt, 1, &request->as.room_list.user);
    return s_answer_rooms_by (request, stmt, UINT32_MAX, s_public_room_of_row);
}

//  A page of rooms from a statement bound but for its LIMIT, the parameter
//  limit_param (bound here to one more room than asked, to tell whether
//  more remain)
static int
s_answer_room_page_by (st_request_t *request, sqlite3_stmt *stmt, int limit_param,
                       s_room_row_fn *row_of)
{
    uint32_t limit = request->as.room_joined.limit;
    sqlite3_bind_int64 (stmt, limit_param, (int64_t) limit + 1);
    return s_answer_rooms_by (request, stmt, limit, row_of);
}

static int
s_answer_room_page (st_request_t *request, sqlite3_stmt *stmt, int limit_param)
{
    return s_answer_room_page_by (request, stmt, limit_param, s_listed_room_of_row);
}

static int
s_room_joined (ss_rooms_t *self, st_request_t *request)
{
    const st_room_page_t *page = &request->as.room_joined;
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_JOINED];
    ss_db_bind_key (stmt, 1, &page->user);
    ss_db_bind_key (stmt, 2, &page->after);
    return s_answer_room_page_by (request, stmt, 3, s_joined_room_of_row);
}

static int
s_room_invited (ss_rooms_t *self, st_request_t *request)
{
    const st_room_page_t *page = &request->as.room_invited;
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_INVITED];
    ss_db_bind_key (stmt, 1, &page->user);
    ss_db_bind_key (stmt, 2, &page->after);
    return s_answer_room_page_by (request, stmt, 3, s_invited_room_of_row);
}

static int
s_room_public (ss_rooms_t *self, st_request_t *request)
{
    const st_room_page_t *page = &request->as.room_public;
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_PUBLIC];
    ss_db_bind_key (stmt, 1, &page->user);
    sqlite3_bind_int64 (stmt, 2, page->has_after_active ? page->after_active : INT64_MAX);
    ss_db_bind_key (stmt, 3, &page->after);
    return s_answer_room_page_by (request, stmt, 4, s_public_room_of_row);
}

static int
s_room_directory (ss_rooms_t *self, st_request_t *request)
{
    const st_room_page_t *page = &request->as.room_directory;
    //  Room names are ASCII (the prefix is checked so): every name that
    //  starts with the prefix sorts below the prefix followed by DEL
    char end [ST_ROOM_MAX + 2];
    size_t size = strlen (page->prefix.key);
    memcpy (end, page->prefix.key, size);
    end [size] = 0x7f;
    end [size + 1] = 0;
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_DIRECTORY];
    ss_db_bind_key (stmt, 1, &page->user);
    ss_db_bind_key (stmt, 2, &page->after);
    ss_db_bind_key (stmt, 3, &page->prefix);
    sqlite3_bind_text (stmt, 4, end, (int) size + 1, SQLITE_TRANSIENT);
    return s_answer_room_page_by (request, stmt, 5, s_public_room_of_row);
}

//  store.room.all {after?, limit?}: the operator's list of every room
static int
s_room_all (ss_rooms_t *self, st_request_t *request)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_ALL];
    ss_db_bind_key (stmt, 1, &request->as.room_all.after);
    return s_answer_room_page (request, stmt, 2);
}

//  Packs 'members': the member names of a room, sorted, every one at once
//  (proto/STORE.md bounds them by max_participants: never cut)
static int
s_pack_member_names (ss_rooms_t *self, st_request_t *request, int64_t room_id)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_MEMBER_NAMES];
    sqlite3_bind_int64 (stmt, 1, room_id);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init (&rows);
    msgpack_packer row_packer;
    msgpack_packer_init (&row_packer, &rows, msgpack_sbuffer_write);
    uint32_t count = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        st_reply_text (&row_packer, ss_db_column_text (stmt, 0));
        count++;
    }
    ss_db_finish (stmt);
    if (rc == SQLITE_DONE) {
        msgpack_packer *packer = st_request_packer (request);
        pl_body_pack_str (packer, "members");
        msgpack_pack_array (packer, count);
        packer->callback (packer->data, rows.data, rows.size);
        rc = SQLITE_OK;
    }
    msgpack_sbuffer_destroy (&rows);
    return rc;
}

//  Deletes the room of the bound statement (ss_timeline_drop_fn)
static int
s_room_drop (void *stmt)
{
    return ss_db_step_done ((sqlite3_stmt *) stmt);
}

static int
s_room_delete (ss_rooms_t *self, st_request_t *request)
{
    const st_name_t *name = &request->as.room_delete.name;
    int rc = s_room_find (self, request, name, S_SQL_ROOM_GET);
    sqlite3_stmt *room = self->sql [S_SQL_ROOM_GET];
    int64_t room_id = rc == SQLITE_ROW ? sqlite3_column_int64 (room, 0) : 0;
    if (rc == SQLITE_ROW) {
        msgpack_packer *packer = st_request_packer (request);
        msgpack_pack_map (packer, 2);
        pl_body_pack_str (packer, "name");
        st_reply_text (packer, ss_db_column_text (room, 1));
    }
    ss_db_finish (room);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    if ((rc = s_pack_member_names (self, request, room_id)) != SQLITE_OK)
        return rc;
    //  Members, invitations and the timeline go by ON DELETE CASCADE, and
    //  the files no other room or conversation refers to with them
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_DELETE];
    sqlite3_bind_int64 (stmt, 1, room_id);
    return ss_timeline_drop_files (self->timeline, room_id, s_room_drop, stmt);
}


//  --------------------------------------------------------------------------
//  store.member.* and store.invite.add

//  What member.add reads of the room before its checks
typedef struct {
    int64_t id;
    bool is_private;
    int64_t max_participants;
    int64_t members;                //  the count
    int64_t owner_id;
    int64_t last_seq;               //  the newest entry's seq, 0 for none
} s_room_row_t;

static int
s_room_row (ss_rooms_t *self, st_request_t *request, const st_name_t *name, s_room_row_t *row)
{
    int rc = s_room_find (self, request, name, S_SQL_ROOM_GET);
    sqlite3_stmt *room = self->sql [S_SQL_ROOM_GET];
    if (rc == SQLITE_ROW)
        *row = (s_room_row_t) {
            .id = sqlite3_column_int64 (room, 0),
            .is_private = sqlite3_column_int (room, 3) != 0,
            .max_participants = sqlite3_column_int64 (room, 4),
            .members = sqlite3_column_int64 (room, 7),
            .owner_id = sqlite3_column_int64 (room, 9),
            .last_seq = sqlite3_column_int64 (room, 8)
        };
    ss_db_finish (room);
    return rc;
}

//  The checks of a join, in the order of proto/STORE.md after the room,
//  the user and the membership: invited (private rooms; the owner, who may
//  have left, is always let back in), full, the quota. Sets *invited_p.
static int
s_member_may_join (ss_rooms_t *self, st_request_t *request, const s_room_row_t *room,
                   int64_t user_id, bool *invited_p)
{
    const st_member_t *add = &request->as.member_add;
    int rc;
    *invited_p = false;
    if (room->is_private && (rc = s_pair_exists (self, S_SQL_INVITE_IS, room->id, user_id,
                                                 invited_p)) != SQLITE_OK)
        return rc;
    if (room->is_private && !*invited_p && user_id != room->owner_id) {
        st_request_fail (request, "forbidden", "The room '%.*s' is private and '%.*s' is not"
                         " invited.", (int) add->room.text.size, add->room.text.data,
                         (int) add->user.text.size, add->user.text.data);
        return SQLITE_OK;
    }
    if (room->members >= room->max_participants) {
        st_request_fail (request, "full", "The room '%.*s' is full (%" PRId64 " members).",
                         (int) add->room.text.size, add->room.text.data,
                         room->max_participants);
        return SQLITE_OK;
    }
    return s_check_quotas (self, request, &add->user, user_id, 0, add->max_joined);
}

//  Adds the member, its read marker on its own join notice (or the newest
//  entry without one), consumes the invitation, appends the join notice
static int
s_member_join (ss_rooms_t *self, st_request_t *request, const s_room_row_t *room,
               int64_t user_id, bool invited)
{
    const st_member_t *add = &request->as.member_add;
    int64_t room_id = room->id;
    sqlite3_stmt *insert = self->sql [S_SQL_MEMBER_INSERT];
    sqlite3_bind_int64 (insert, 1, room_id);
    sqlite3_bind_int64 (insert, 2, user_id);
    sqlite3_bind_int64 (insert, 3, add->has_entry ? add->entry.ts : pl_time_now ());
    sqlite3_bind_int64 (insert, 4, add->has_entry ? (int64_t) add->entry.seq : room->last_seq);
    int rc = ss_db_step_done (insert);
    if (rc == SQLITE_OK && invited)
        rc = s_pair_run (self, S_SQL_INVITE_DELETE, room_id, user_id);
    if (rc == SQLITE_OK && add->has_entry)
        rc = s_entry_insert (self, request, &add->room, room_id, &add->entry);
    return rc;
}

static int
s_member_add (ss_rooms_t *self, st_request_t *request)
{
    const st_member_t *add = &request->as.member_add;
    s_room_row_t room;
    int rc = s_room_row (self, request, &add->room, &room);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    int64_t user_id = s_user_id (self, request, &add->user, "", NULL, &rc);
    if (!user_id)
        return rc;
    bool member, invited;
    if ((rc = s_pair_exists (self, S_SQL_MEMBER_IS, room.id, user_id, &member)) != SQLITE_OK)
        return rc;
    if (!member) {
        if ((rc = s_refuse_banned (self, request, room.id, user_id, &add->room, &add->user))
            != SQLITE_OK || !st_request_live (request)
        ||  (rc = s_member_may_join (self, request, &room, user_id, &invited)) != SQLITE_OK
        ||  !st_request_live (request)
        ||  (rc = s_member_join (self, request, &room, user_id, invited)) != SQLITE_OK
        ||  !st_request_live (request))
            return rc;
        room.members++;
    }
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 3);
    pl_body_pack_str (packer, "added");
    st_reply_bool (packer, !member);
    pl_body_pack_str (packer, "members");
    msgpack_pack_uint64 (packer, (uint64_t) room.members);
    return s_pack_room_field (self, request, &add->room);
}

static int
s_member_remove (ss_rooms_t *self, st_request_t *request)
{
    const st_member_t *remove = &request->as.member_remove;
    if (remove->ban)
        return s_member_ban (self, request);
    int rc;
    int64_t room_id = s_room_id (self, request, &remove->room, &rc);
    if (!room_id)
        return rc;
    int64_t user_id = ss_users_find (self->users, &remove->user, NULL, &rc);
    if (rc == SQLITE_OK && user_id)
        rc = s_pair_run (self, S_SQL_MEMBER_DELETE, room_id, user_id);
    if (rc != SQLITE_OK)
        return rc;
    if (!user_id || sqlite3_changes (ss_db_handle (self->db)) == 0) {
        st_request_fail (request, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                         (int) remove->user.text.size, remove->user.text.data,
                         (int) remove->room.text.size, remove->room.text.data);
        return SQLITE_OK;
    }
    if (remove->has_entry
    &&  ((rc = s_entry_insert (self, request, &remove->room, room_id, &remove->entry))
         != SQLITE_OK || !st_request_live (request)))
        return rc;
    int64_t members = 0;
    if ((rc = s_count_by_id (self, S_SQL_MEMBER_COUNT, room_id, &members)) == SQLITE_OK)
        st_reply_uint (request, "members", (uint64_t) members);
    return rc;
}

static int
s_member_list (ss_rooms_t *self, st_request_t *request)
{
    int rc;
    int64_t room_id = s_room_id (self, request, &request->as.member_list.name, &rc);
    if (!room_id)
        return rc;
    msgpack_pack_map (st_request_packer (request), 1);
    return s_pack_member_names (self, request, room_id);
}

//  The member's read marker: 0 and *found_p true, or not found
static int
s_marker_get (ss_rooms_t *self, int64_t room_id, int64_t user_id, int64_t *seq_p,
              bool *found_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_MARKER_GET];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, user_id);
    int rc = sqlite3_step (stmt);
    *found_p = rc == SQLITE_ROW;
    *seq_p = *found_p ? sqlite3_column_int64 (stmt, 0) : 0;
    ss_db_finish (stmt);
    return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
}

//  Moves the marker forward to seq, at most to the newest entry; answers
//  {read_seq, moved}
static int
s_member_read (ss_rooms_t *self, st_request_t *request)
{
    const st_member_read_t *read = &request->as.member_read;
    s_room_row_t room;
    int rc = s_room_row (self, request, &read->room, &room);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    int64_t user_id = ss_users_find (self->users, &read->user, NULL, &rc);
    int64_t marker = 0;
    bool found = false;
    if (rc == SQLITE_OK && user_id)
        rc = s_marker_get (self, room.id, user_id, &marker, &found);
    if (rc != SQLITE_OK)
        return rc;
    if (!found) {
        st_request_fail (request, "not_member", "'%.*s' is not a member of the room '%.*s'.",
                         (int) read->user.text.size, read->user.text.data,
                         (int) read->room.text.size, read->room.text.data);
        return SQLITE_OK;
    }
    int64_t target = (int64_t) read->seq < room.last_seq ? (int64_t) read->seq : room.last_seq;
    bool moved = target > marker;
    if (moved) {
        sqlite3_stmt *stmt = self->sql [S_SQL_MARKER_MOVE];
        sqlite3_bind_int64 (stmt, 1, room.id);
        sqlite3_bind_int64 (stmt, 2, user_id);
        sqlite3_bind_int64 (stmt, 3, target);
        if ((rc = ss_db_step_done (stmt)) != SQLITE_OK)
            return rc;
        marker = target;
    }
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 2);
    pl_body_pack_str (packer, "read_seq");
    msgpack_pack_uint64 (packer, (uint64_t) marker);
    pl_body_pack_str (packer, "moved");
    st_reply_bool (packer, moved);
    return SQLITE_OK;
}

static int
s_invite_add (ss_rooms_t *self, st_request_t *request)
{
    const st_invite_add_t *invite = &request->as.invite_add;
    int rc;
    int64_t room_id = s_room_id (self, request, &invite->room, &rc);
    if (!room_id)
        return rc;
    char registered [ST_NAME_MAX + 1];
    int64_t user_id = s_user_id (self, request, &invite->user, "", registered, &rc);
    if (!user_id)
        return rc;
    bool member;
    if ((rc = s_refuse_banned (self, request, room_id, user_id, &invite->room, &invite->user))
        != SQLITE_OK || !st_request_live (request))
        return rc;
    if ((rc = s_pair_exists (self, S_SQL_MEMBER_IS, room_id, user_id, &member)) != SQLITE_OK)
        return rc;
    if (!member) {
        sqlite3_stmt *stmt = self->sql [S_SQL_INVITE_PUT];
        sqlite3_bind_int64 (stmt, 1, room_id);
        sqlite3_bind_int64 (stmt, 2, user_id);
        ss_db_bind_text (stmt, 3, invite->from.text);
        sqlite3_bind_int64 (stmt, 4, pl_time_now ());
        if ((rc = ss_db_step_done (stmt)) != SQLITE_OK)
            return rc;
    }
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 2);
    pl_body_pack_str (packer, "user");
    pl_body_pack_str (packer, registered);
    pl_body_pack_str (packer, "already_member");
    st_reply_bool (packer, member);
    return SQLITE_OK;
}


//  --------------------------------------------------------------------------
//  store.msg.*

//  What binds the nonce look-ups of a msg.append's run
typedef struct {
    const st_msg_append_t *append;
    int64_t room_id;
} s_run_nonces_t;

static bool
s_bind_entry_nonce (void *arg, uint32_t index, sqlite3_stmt *stmt)
{
    s_run_nonces_t *run = (s_run_nonces_t *) arg;
    const st_entry_t *entry = &run->append->entries [index];
    if (!entry->nonce.data)
        return false;
    sqlite3_bind_int64 (stmt, 1, run->room_id);
    ss_db_bind_text (stmt, 2, entry->user);
    ss_db_bind_text (stmt, 3, entry->nonce);
    return true;
}

static int
s_msg_nonce (ss_rooms_t *self, st_request_t *request)
{
    const st_msg_nonce_t *lookup = &request->as.msg_nonce;
    sqlite3_stmt *stmt = self->sql [S_SQL_NONCE_BY_NAME];
    ss_db_bind_key (stmt, 1, &lookup->room);
    ss_db_bind_text (stmt, 2, lookup->user.text);
    ss_db_bind_text (stmt, 3, lookup->nonce);
    bool found = false;
    st_duplicate_t first = { 0, 0, 0 };
    int rc = ss_db_nonce_find (stmt, &found, &first);
    if (rc == SQLITE_OK)
        st_reply_nonce (request, found, first.seq, first.ts);
    return rc;
}

//  Whether a later message of the run has the same sender: then its marker
//  moves there, and this message need not move it first (the run is one
//  transaction, so nobody sees the step between)
static bool
s_sender_again (const st_msg_append_t *append, uint32_t index)
{
    const st_text_t *user = &append->entries [index].user;
    for (uint32_t later = index + 1; later < append->count; later++) {
        const st_entry_t *entry = &append->entries [later];
        if (entry->change.kind == ST_KIND_MESSAGE && entry->user.size == user->size
        &&  strncasecmp (entry->user.data, user->data, user->size) == 0)
            return true;
    }
    return false;
}

//  What a message of the run marks, in its transaction: its sender's read
//  marker moves to it (unless a later message of the run is the sender's
//  too: one UPDATE a sender), and each member it mentions (but its sender)
//  gets a row of mentions. Names that are no user's are skipped.
static int
s_entry_marks (ss_rooms_t *self, int64_t room_id, const st_msg_append_t *append,
               uint32_t index)
{
    const st_entry_t *entry = &append->entries [index];
    if (entry->change.kind != ST_KIND_MESSAGE)
        return SQLITE_OK;
    int rc = SQLITE_OK;
    if (!s_sender_again (append, index)) {
        sqlite3_stmt *stmt = self->sql [S_SQL_MARKER_SEND];
        sqlite3_bind_int64 (stmt, 1, room_id);
        ss_db_bind_text (stmt, 2, entry->user);
        sqlite3_bind_int64 (stmt, 3, (int64_t) entry->seq);
        rc = ss_db_step_done (stmt);
    }
    for (uint32_t index = 0; rc == SQLITE_OK && entry->mentions
                             && index < entry->mentions->via.array.size; index++) {
        const msgpack_object *name = &entry->mentions->via.array.ptr [index];
        st_text_t text = { name->via.str.ptr, name->via.str.size };
        if (text.size == entry->user.size
        &&  strncasecmp (text.data, entry->user.data, text.size) == 0)
            continue;
        sqlite3_stmt *stmt = self->sql [S_SQL_MENTION_PUT];
        sqlite3_bind_int64 (stmt, 1, room_id);
        ss_db_bind_text (stmt, 2, text);
        sqlite3_bind_int64 (stmt, 3, (int64_t) entry->seq);
        rc = ss_db_step_done (stmt);
    }
    return rc;
}

//  A msg.append's run, as its elements need it
typedef struct {
    ss_rooms_t *self;
    st_request_t *request;
    const st_msg_append_t *append;
    int64_t room_id;
    char owner [ST_NAME_MAX + 1];   //  the room's owner, lower-cased; "" until asked
} s_append_t;

//  The room's owner, asked once a run (only a deletion needs it)
static int
s_append_owner (s_append_t *run)
{
    if (*run->owner)
        return SQLITE_OK;
    sqlite3_stmt *stmt = run->self->sql [S_SQL_ROOM_OWNER];
    sqlite3_bind_int64 (stmt, 1, run->room_id);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const char *key = (const char *) sqlite3_column_text (stmt, 0);
        snprintf (run->owner, sizeof run->owner, "%s", key ? key : "");
        rc = SQLITE_DONE;
    }
    ss_db_finish (stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

//  One element of the run (ss_run_t's element): a change or a reply is
//  checked first and applied once its entry is in; a plain message is
//  only inserted, as before schema version 9
static int
s_append_element (void *arg, uint32_t index, const char **code_p)
{
    s_append_t *run = (s_append_t *) arg;
    const st_entry_t *entry = &run->append->entries [index];
    bool changes = ss_timeline_changes (&entry->change);
    char actor [ST_NAME_MAX + 1] = "";
    if (changes)
        st_text_lower (entry->user, actor);
    ss_change_t element = {
        .key = run->room_id, .owner_key = run->owner, .actor_key = actor,
        .actor = entry->user, .seq = entry->seq, .ts = entry->ts, .text = entry->text,
        .change = &entry->change
    };
    int rc = SQLITE_OK;
    if (changes && entry->change.kind == ST_KIND_DELETE)
        rc = s_append_owner (run);
    if (rc == SQLITE_OK && changes)
        rc = ss_timeline_check (run->self->timeline, &element, code_p);
    if (rc != SQLITE_OK || *code_p)
        return rc;
    rc = s_entry_insert (run->self, run->request, &run->append->room, run->room_id, entry);
    if (rc == SQLITE_OK && st_request_live (run->request) && changes)
        rc = ss_timeline_apply (run->self->timeline, &element);
    if (rc == SQLITE_OK && st_request_live (run->request))
        rc = s_entry_marks (run->self, run->room_id, run->append, index);
    return rc;
}

//  The run's last message moves the room's activity (a change does not)
static const st_entry_t *
s_last_message (const st_msg_append_t *append)
{
    for (uint32_t index = append->count; index > 0; index--)
        if (append->entries [index - 1].change.kind == ST_KIND_MESSAGE)
            return &append->entries [index - 1];
    return NULL;
}

static int
s_msg_append (ss_rooms_t *self, st_request_t *request)
{
    const st_msg_append_t *append = &request->as.msg_append;
    int rc;
    int64_t room_id = s_room_id (self, request, &append->room, &rc);
    if (!room_id)
        return rc;
    //  Every entry of the run inside the request's savepoint: a taken seq
    //  fails the request, and the batch then rolls the savepoint back, so
    //  that none of the run stays (proto/STORE.md, Atomicity). A refused
    //  change or a repeated nonce appends nothing: the answer names them.
    s_append_t run = { self, request, append, room_id, "" };
    s_run_nonces_t nonces = { append, room_id };
    ss_run_t steps = {
        .count = append->count, .element = s_append_element, .arg = &run,
        .bind_nonce = s_bind_entry_nonce, .nonce_arg = &nonces,
        .nonce_stmt = self->sql [S_SQL_NONCE_GET], .where = "The room"
    };
    bool stored;
    rc = ss_timeline_run (self->timeline, request, &steps, &stored);
    if (rc != SQLITE_OK || !stored)
        return rc;
    //  The search index reads the new entries after the commit
    ss_indexer_touch (self->indexer, SS_INDEXER_ROOM, room_id, append->entries [0].seq);
    //  The room's activity, for the public rooms' order: one row, in the
    //  same transaction (no round trip of its own)
    const st_entry_t *message = s_last_message (append);
    if (message) {
        sqlite3_stmt *active = self->sql [S_SQL_ROOM_ACTIVE];
        sqlite3_bind_int64 (active, 1, room_id);
        sqlite3_bind_int64 (active, 2, message->ts);
        rc = ss_db_step_done (active);
    }
    if (rc == SQLITE_OK)
        st_reply_uint (request, "seq", append->entries [append->count - 1].seq);
    return rc;
}

//  A text column, or data NULL for a NULL one (a field the entry has not)
static st_text_t
s_column_or_none (sqlite3_stmt *stmt, int column)
{
    return sqlite3_column_type (stmt, column) == SQLITE_NULL ? (st_text_t) { NULL, 0 }
                                                             : ss_db_column_text (stmt, column);
}

//  A timeline row of S_ENTRY_COLUMNS: seq, kind, user, ts, text, event,
//  nonce, mentions, by_name, then the change's columns
static st_entry_t
s_entry_of_row (sqlite3_stmt *stmt)
{
    st_text_t mentions = { NULL, 0 };
    if (sqlite3_column_type (stmt, 7) == SQLITE_BLOB) {
        mentions.data = (const char *) sqlite3_column_blob (stmt, 7);
        mentions.size = (uint32_t) sqlite3_column_bytes (stmt, 7);
    }
    st_entry_t entry = {
        .mentions_packed = mentions,
        .seq = (uint64_t) sqlite3_column_int64 (stmt, 0),
        .user = ss_db_column_text (stmt, 2),
        .ts = sqlite3_column_int64 (stmt, 3)
    };
    entry.change.kind = ss_timeline_kind (stmt, 1);
    ss_timeline_change_of_row (stmt, 9, &entry.change);
    entry.text = s_column_or_none (stmt, 4);
    entry.event = s_column_or_none (stmt, 5);
    entry.nonce = s_column_or_none (stmt, 6);
    entry.by = s_column_or_none (stmt, 8);
    return entry;
}

//  Answers {messages, more} and, when the request names a user, that
//  user's read_seq in the room (0 for one that is not a member)
static int
s_answer_history (ss_rooms_t *self, st_request_t *request, int64_t room_id,
                  st_list_t *entries)
{
    const st_name_t *user = &request->as.msg_history.user;
    if (!user->text.data) {
        st_list_answer (entries, request, "messages");
        return SQLITE_OK;
    }
    int rc;
    int64_t user_id = ss_users_find (self->users, user, NULL, &rc);
    int64_t marker = 0;
    bool found;
    if (rc == SQLITE_OK && user_id)
        rc = s_marker_get (self, room_id, user_id, &marker, &found);
    if (rc != SQLITE_OK)
        return rc;
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 3);
    st_list_finish (entries, packer, "messages");
    pl_body_pack_str (packer, "more");
    st_reply_bool (packer, st_list_more (entries));
    pl_body_pack_str (packer, "read_seq");
    msgpack_pack_uint64 (packer, (uint64_t) marker);
    return SQLITE_OK;
}

static int
s_msg_history (ss_rooms_t *self, st_request_t *request)
{
    const st_msg_history_t *history = &request->as.msg_history;
    int rc;
    int64_t room_id = s_room_id (self, request, &history->room, &rc);
    if (!room_id)
        return rc;
    bool forward = history->page.cursor == ST_CURSOR_AFTER;
    sqlite3_stmt *stmt = self->sql [forward ? S_SQL_HISTORY_AFTER : S_SQL_HISTORY_BEFORE];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, history->page.cursor != ST_CURSOR_NONE
                                 ? (int64_t) history->page.seq : INT64_MAX);
    sqlite3_bind_int64 (stmt, 3, (int64_t) history->page.limit + 1);
    //  Rows come from the cursor's side, so a page cut for its bytes keeps
    //  the entries next to the cursor; backward pages are written out
    //  reversed, oldest first
    st_list_t *entries = st_list_new (history->page.limit, !forward);
    if (!entries) {
        ss_db_finish (stmt);
        return SQLITE_NOMEM;
    }
    //  The page's reactions: one range of reactions, walked beside the
    //  entries from the same cursor
    st_reactions_t *reactions = ss_timeline_walk (self->timeline, room_id, forward,
        history->page.cursor != ST_CURSOR_NONE ? history->page.seq : INT64_MAX);
    while (reactions && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        st_entry_t entry = s_entry_of_row (stmt);
        if (entry.change.kind == ST_KIND_MESSAGE && !entry.change.deleted) {
            if (st_reactions_load (reactions, entry.seq)) {
                rc = SQLITE_NOMEM;  //  or the walk's failure, below
                break;
            }
            entry.change.reactions = reactions;
        }
        st_reply_entry (st_list_packer (entries), &entry);
        if (!st_list_push (entries))
            break;
    }
    ss_db_finish (stmt);
    int walked = reactions ? ss_timeline_walk_end (self->timeline, &reactions) : SQLITE_NOMEM;
    if (walked != SQLITE_OK)
        rc = walked;
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        rc = s_answer_history (self, request, room_id, entries);
    st_list_destroy (&entries);
    return rc;
}


//  --------------------------------------------------------------------------
//  Room administration (schema version 10): settings, bans

//  Fails the request with banned when the user is banned from the room
static int
s_refuse_banned (ss_rooms_t *self, st_request_t *request, int64_t room_id, int64_t user_id,
                 const st_name_t *room, const st_name_t *user)
{
    bool banned;
    int rc = s_pair_exists (self, S_SQL_BAN_IS, room_id, user_id, &banned);
    if (rc == SQLITE_OK && banned)
        st_request_fail (request, "banned", "'%.*s' is banned from the room '%.*s'.",
                         (int) user->text.size, user->text.data,
                         (int) room->text.size, room->text.data);
    return rc;
}

//  Records the ban (its author is the entry's 'by', if any) and drops any
//  invitation: an unbanned user is invited anew
static int
s_ban_put (ss_rooms_t *self, const st_member_t *remove, int64_t room_id, int64_t user_id)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_BAN_PUT];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, user_id);
    if (remove->has_entry && remove->entry.by.data)
        ss_db_bind_text (stmt, 3, remove->entry.by);
    sqlite3_bind_int64 (stmt, 4, pl_time_now ());
    int rc = ss_db_step_done (stmt);
    return rc == SQLITE_OK ? s_pair_run (self, S_SQL_INVITE_DELETE, room_id, user_id) : rc;
}

//  member.remove with ban: the user leaves if a member (with the notice),
//  and is banned either way; a non-member's ban appends nothing.
//  Answers {members, removed}.
static int
s_member_ban (ss_rooms_t *self, st_request_t *request)
{
    const st_member_t *remove = &request->as.member_remove;
    int rc;
    int64_t room_id = s_room_id (self, request, &remove->room, &rc);
    if (!room_id)
        return rc;
    int64_t user_id = s_user_id (self, request, &remove->user, "", NULL, &rc);
    if (!user_id)
        return rc;
    if ((rc = s_pair_run (self, S_SQL_MEMBER_DELETE, room_id, user_id)) != SQLITE_OK)
        return rc;
    bool removed = sqlite3_changes (ss_db_handle (self->db)) > 0;
    if (removed && remove->has_entry
    &&  ((rc = s_entry_insert (self, request, &remove->room, room_id, &remove->entry))
         != SQLITE_OK || !st_request_live (request)))
        return rc;
    int64_t members = 0;
    if ((rc = s_ban_put (self, remove, room_id, user_id)) != SQLITE_OK
    ||  (rc = s_count_by_id (self, S_SQL_MEMBER_COUNT, room_id, &members)) != SQLITE_OK)
        return rc;
    msgpack_packer *packer = st_request_packer (request);
    msgpack_pack_map (packer, 2);
    pl_body_pack_str (packer, "members");
    msgpack_pack_uint64 (packer, (uint64_t) members);
    pl_body_pack_str (packer, "removed");
    st_reply_bool (packer, removed);
    return SQLITE_OK;
}

//  Changes the settings given and appends the notice in the same
//  transaction; answers {room} as it is after
static int
s_room_update (ss_rooms_t *self, st_request_t *request)
{
    const st_room_update_t *update = &request->as.room_update;
    int rc;
    int64_t room_id = s_room_id (self, request, &update->name, &rc);
    if (!room_id)
        return rc;
    sqlite3_stmt *stmt = self->sql [S_SQL_ROOM_UPDATE];
    sqlite3_bind_int64 (stmt, 1, room_id);
    if (update->description.data)
        ss_db_bind_text (stmt, 2, update->description);
    if (update->has_private)
        sqlite3_bind_int (stmt, 3, update->is_private ? 1 : 0);
    if (update->max_participants)
        sqlite3_bind_int64 (stmt, 4, (int64_t) update->max_participants);
    if ((rc = ss_db_step_done (stmt)) != SQLITE_OK)
        return rc;
    if (update->has_entry
    &&  ((rc = s_entry_insert (self, request, &update->name, room_id, &update->entry))
         != SQLITE_OK || !st_request_live (request)))
        return rc;
    msgpack_pack_map (st_request_packer (request), 1);
    return s_pack_room_field (self, request, &update->name);
}

//  Lifts the user's ban; answers {unbanned: whether there was one}
static int
s_room_unban (ss_rooms_t *self, st_request_t *request)
{
    const st_room_unban_t *unban = &request->as.room_unban;
    int rc;
    int64_t room_id = s_room_id (self, request, &unban->room, &rc);
    if (!room_id)
        return rc;
    int64_t user_id = s_user_id (self, request, &unban->user, "", NULL, &rc);
    if (!user_id)
        return rc;
    if ((rc = s_pair_run (self, S_SQL_BAN_DELETE, room_id, user_id)) != SQLITE_OK)
        return rc;
    msgpack_pack_map (st_request_packer (request), 1);
    pl_body_pack_str (st_request_packer (request), "unbanned");
    st_reply_bool (st_request_packer (request), sqlite3_changes (ss_db_handle (self->db)) > 0);
    return SQLITE_OK;
}


//  --------------------------------------------------------------------------
//  Dispatch

typedef int (s_run_fn) (ss_rooms_t *self, st_request_t *request);

static s_run_fn *s_runs [ST_TYPE_COUNT] = {
    [ST_ROOM_CREATE]    = s_room_create,
    [ST_ROOM_GET]       = s_room_get,
    [ST_ROOM_LIST]      = s_room_list,
    [ST_ROOM_JOINED]    = s_room_joined,
    [ST_ROOM_PUBLIC]    = s_room_public,
    [ST_ROOM_DIRECTORY] = s_room_directory,
    [ST_ROOM_INVITED]   = s_room_invited,
    [ST_ROOM_DELETE]    = s_room_delete,
    [ST_MEMBER_ADD]     = s_member_add,
    [ST_MEMBER_REMOVE]  = s_member_remove,
    [ST_MEMBER_LIST]    = s_member_list,
    [ST_MEMBER_READ]    = s_member_read,
    [ST_INVITE_ADD]     = s_invite_add,
    [ST_MSG_APPEND]     = s_msg_append,
    [ST_MSG_HISTORY]    = s_msg_history,
    [ST_MSG_NONCE]      = s_msg_nonce,
    [ST_ROOM_ALL]       = s_room_all,
    [ST_ROOM_UPDATE]    = s_room_update,
    [ST_ROOM_UNBAN]     = s_room_unban
};

bool
ss_rooms_serves (st_type_t type)
{
    return type < ST_TYPE_COUNT && s_runs [type] != NULL;
}

int
ss_rooms_run (ss_rooms_t *self, st_request_t *request)
{
    return ss_rooms_serves (request->type) ? s_runs [request->type] (self, request)
                                           : SQLITE_INTERNAL;
}


//  --------------------------------------------------------------------------
//  A search's result (schema version 12)

int
ss_rooms_pack_found (ss_rooms_t *self, msgpack_packer *packer, int64_t room_id, uint64_t seq,
                     bool *found_p)
{
    sqlite3_stmt *stmt = self->sql [S_SQL_ENTRY_FOUND];
    sqlite3_bind_int64 (stmt, 1, room_id);
    sqlite3_bind_int64 (stmt, 2, (int64_t) seq);
    int rc = sqlite3_step (stmt);
    *found_p = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW) {
        ss_db_finish (stmt);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    st_entry_t entry = s_entry_of_row (stmt);
    st_reactions_t *reactions = ss_timeline_walk_one (self->timeline, room_id, seq);
    rc = reactions ? SQLITE_OK : SQLITE_NOMEM;
    if (reactions && st_reactions_load (reactions, seq))
        rc = SQLITE_NOMEM;          //  or the walk's failure, below
    if (rc == SQLITE_OK) {
        entry.change.reactions = reactions;
        msgpack_pack_map (packer, 2);
        pl_body_pack_str (packer, "room");
        //  The room's name is the last column, after S_ENTRY_COLUMNS'
        st_reply_text (packer, ss_db_column_text (stmt, sqlite3_column_count (stmt) - 1));
        pl_body_pack_str (packer, "entry");
        st_reply_entry (packer, &entry);
    }
    int walked = reactions ? ss_timeline_walk_end (self->timeline, &reactions) : SQLITE_OK;
    ss_db_finish (stmt);
    return rc == SQLITE_OK ? walked : rc;
}

/*  =========================================================================
    pl_change - a timeline's changes: replies, edits, deletions, reactions
    =========================================================================
*/

#include "pl_change.h"
#include "pl_body.h"
#include "pl_reply.h"
#include "pl_text.h"
#include "pl_time.h"

#include <inttypes.h>
#include <string.h>

static const char *s_kind_names [] = { "message", "edit", "delete", "reaction" };

const char *
pl_change_kind_name (pl_change_kind_t kind)
{
    return s_kind_names [kind <= PL_CHANGE_REACTION? kind: PL_CHANGE_MESSAGE];
}

//  A seq field: a whole number from 1 (a seq fits int64 on the wire).
//  Returns 1, 0 when absent, -1 when it is not one.
static int
s_seq (const msgpack_object *map, const char *name, uint64_t *seq_p)
{
    int found = pl_body_uint (map, name, seq_p);
    if (found == 1 && (*seq_p < 1 || *seq_p > INT64_MAX))
        return -1;
    return found;
}

//  A reaction's emoji and on (true when absent or nil)
static bool
s_read_reaction (pl_change_t *self, const msgpack_object *map, pl_lane_intake_t *intake)
{
    const char *emoji;
    size_t size;
    if (pl_body_strn (map, "emoji", &emoji, &size) != 1 || !pl_text_emoji_valid (emoji, size))
        return pl_lane_refuse (intake, "bad_request", "The field 'emoji' must be 1 to %d bytes"
                               " without white space or control characters.", PL_EMOJI_MAX);
    memcpy (self->emoji, emoji, size);
    self->emoji [size] = 0;
    const msgpack_object *on = pl_body_field (map, "on");
    if (on && on->type != MSGPACK_OBJECT_NIL && on->type != MSGPACK_OBJECT_BOOLEAN)
        return pl_lane_refuse (intake, "bad_request", "The field 'on' must be true or false.");
    self->on = !on || on->type == MSGPACK_OBJECT_NIL || on->via.boolean;
    return true;
}

//  A send's file: the one pl_file checked for this request (a 'file' that
//  did not go through pl_file is not one of the sender's uploads)
static bool
s_read_file (pl_change_t *self, const msgpack_object *map, pl_lane_intake_t *intake)
{
    if (!pl_file_named (map))
        return true;
    const pl_file_t *checked = pl_file_checked ();
    const char *id = NULL;
    size_t size = 0;
    if (!checked || pl_body_strn (map, "file", &id, &size) != 1 || size != strlen (checked->id)
    ||  memcmp (id, checked->id, size) != 0)
        return pl_lane_refuse (intake, "bad_request",
                               "The field 'file' is not one of your uploads.");
    self->file = *checked;
    return true;
}

bool
pl_change_read (pl_change_t *self, pl_change_kind_t kind, const msgpack_object *map,
                pl_lane_intake_t *intake)
{
    memset (self, 0, sizeof *self);
    self->kind = kind;
    if (kind == PL_CHANGE_MESSAGE) {
        if (s_seq (map, "reply_to", &self->reply_to) < 0)
            return pl_lane_refuse (intake, "bad_request", "The field 'reply_to' must be a"
                                   " seq (a whole number from 1): the message replied to.");
        return s_read_file (self, map, intake);
    }
    if (s_seq (map, "seq", &self->target) != 1)
        return pl_lane_refuse (intake, "bad_request", "The field 'seq' must be a seq (a whole"
                               " number from 1): the message to %s.", kind == PL_CHANGE_EDIT
                               ? "edit": kind == PL_CHANGE_DELETE? "delete": "react to");
    return kind != PL_CHANGE_REACTION || s_read_reaction (self, map, intake);
}

bool
pl_change_from_entry (pl_change_t *self, const msgpack_object *entry)
{
    memset (self, 0, sizeof *self);
    char kind [16];
    pl_body_copy (entry, "kind", kind, sizeof kind);
    size_t which = 0;
    while (which <= PL_CHANGE_REACTION && strcmp (kind, s_kind_names [which]) != 0)
        which++;
    //  A pm entry from before schema 9 has no kind: a message
    if (!*kind)
        which = PL_CHANGE_MESSAGE;
    if (which > PL_CHANGE_REACTION)
        return false;
    self->kind = (pl_change_kind_t) which;
    int64_t value = pl_body_int (entry, "target");
    self->target = value > 0? (uint64_t) value: 0;
    value = pl_body_int (entry, "reply_to");
    self->reply_to = value > 0? (uint64_t) value: 0;
    pl_body_copy (entry, "emoji", self->emoji, sizeof self->emoji);
    self->on = pl_body_bool (entry, "on");
    return true;
}

uint32_t
pl_change_fields (const pl_change_t *self)
{
    if (self->kind == PL_CHANGE_MESSAGE)
        return (self->reply_to? 1: 0) + (self->file.id [0]? 1: 0);
    return self->kind == PL_CHANGE_REACTION? 3: 1;
}

void
pl_change_pack (const pl_change_t *self, msgpack_packer *packer)
{
    if (self->kind == PL_CHANGE_MESSAGE) {
        if (self->reply_to) {
            pl_body_pack_str (packer, "reply_to");
            msgpack_pack_uint64 (packer, self->reply_to);
        }
        if (self->file.id [0]) {
            pl_body_pack_str (packer, "file");
            pl_file_pack (&self->file, packer);
        }
        return;
    }
    pl_body_pack_str (packer, "target");
    msgpack_pack_uint64 (packer, self->target);
    if (self->kind == PL_CHANGE_REACTION) {
        pl_body_pack_str (packer, "emoji");
        pl_body_pack_str (packer, self->emoji);
        pl_body_pack_str (packer, "on");
        self->on? msgpack_pack_true (packer): msgpack_pack_false (packer);
    }
}

size_t
pl_change_json_size (const pl_change_t *self)
{
    if (self->kind == PL_CHANGE_MESSAGE)
        return (self->reply_to? 1 + pl_reply_json_member_size
                                    ("reply_to", pl_reply_json_uint_size (self->reply_to)): 0)
             + (self->file.id [0]? 1 + pl_reply_json_member_size
                                       ("file", pl_file_json_size (&self->file)): 0);
    size_t size = 1 + pl_reply_json_member_size ("target", pl_reply_json_uint_size (self->target));
    if (self->kind == PL_CHANGE_REACTION)
        size += 2 + pl_reply_json_member_size ("emoji", pl_reply_json_str_size
                                               (self->emoji, strlen (self->emoji)))
                  + pl_reply_json_member_size ("on", self->on? 4: 5);
    return size;
}

//  The store's edited time (ms), 0 when never edited
static int64_t
s_edited (const msgpack_object *entry)
{
    return pl_body_int (entry, "edited");
}

//  The store's reactions, when the message has any
static const msgpack_object *
s_reactions (const msgpack_object *entry)
{
    const msgpack_object *reactions = pl_body_field (entry, "reactions");
    return reactions && reactions->type == MSGPACK_OBJECT_ARRAY
        && reactions->via.array.size? reactions: NULL;
}

//  A message's file as the store answers it (schema version 13): a map
static const msgpack_object *
s_file (const msgpack_object *entry)
{
    const msgpack_object *file = pl_body_field (entry, "file");
    return file && file->type == MSGPACK_OBJECT_MAP? file: NULL;
}

uint32_t
pl_change_state_fields (const msgpack_object *entry)
{
    return (s_edited (entry) > 0) + pl_body_bool (entry, "deleted")
         + (s_reactions (entry) != NULL) + (s_file (entry) != NULL);
}

void
pl_change_pack_state (const msgpack_object *entry, msgpack_packer *packer)
{
    int64_t edited = s_edited (entry);
    if (edited > 0) {
        pl_body_pack_str (packer, "edited");
        pl_body_pack_time (packer, edited);
    }
    if (pl_body_bool (entry, "deleted")) {
        pl_body_pack_str (packer, "deleted");
        msgpack_pack_true (packer);
    }
    const msgpack_object *reactions = s_reactions (entry);
    if (reactions) {
        pl_body_pack_str (packer, "reactions");
        msgpack_pack_object (packer, *reactions);
    }
    const msgpack_object *file = s_file (entry);
    if (file) {
        pl_body_pack_str (packer, "file");
        msgpack_pack_object (packer, *file);
    }
}

size_t
pl_change_state_json_size (const msgpack_object *entry)
{
    size_t size = 0;
    int64_t edited = s_edited (entry);
    if (edited > 0)
        size += 1 + pl_reply_json_member_size ("edited", pl_time_iso8601_length (edited) + 2);
    if (pl_body_bool (entry, "deleted"))
        size += 1 + pl_reply_json_member_size ("deleted", 4);
    const msgpack_object *reactions = s_reactions (entry);
    if (reactions)
        size += 1 + pl_reply_json_member_size ("reactions", pl_reply_json_size (reactions));
    const msgpack_object *file = s_file (entry);
    if (file)
        size += 1 + pl_reply_json_member_size ("file", pl_reply_json_size (file));
    return size;
}

//  What a change does, for its refusals: "edit", "delete", "react to",
//  "reply to"
static const char *
s_verb (pl_change_kind_t kind)
{
    return kind == PL_CHANGE_EDIT? "edit": kind == PL_CHANGE_DELETE? "delete"
         : kind == PL_CHANGE_REACTION? "react to": "reply to";
}

void
pl_change_refused (pl_lane_t *lane, pl_lane_key_t *key, pl_lane_op_t *op,
                   const pl_change_t *change, const char *code, const char *where,
                   const char *deleters)
{
    uint64_t seq = change->kind == PL_CHANGE_MESSAGE? change->reply_to: change->target;
    if (strcmp (code, "no_such_message") == 0)
        pl_lane_error (lane, op, "no_such_message", "There is no message %" PRIu64 " in %s to"
                       " %s: no message has that seq, or it was deleted.", seq, where,
                       s_verb (change->kind));
    else
    if (strcmp (code, "forbidden") == 0)
        pl_lane_error (lane, op, "forbidden", "Only %s can %s message %" PRIu64 " in %s.",
                       change->kind == PL_CHANGE_DELETE? deleters: "its author",
                       s_verb (change->kind), seq, where);
    else
    if (strcmp (code, "unchanged") == 0)
        pl_lane_ok (lane, op, NULL, 0);     //  nothing stored: no seq, no entry
    else
    if (strcmp (code, "too_many_reactions") == 0)
        pl_lane_error (lane, op, "bad_request", "Message %" PRIu64 " in %s has %d different"
                       " reactions already, the most one message holds.", seq, where,
                       PL_REACTIONS_MAX);
    else
        pl_lane_failure (lane, key, op, "internal", code);
}

/*  =========================================================================
    sm_changes - store-mongo's timeline changes (see sm_changes.h)

    Without transactions, the order of the writes is what keeps a failure
    part way safe (proto/STORE.md, "store-mongo without transactions"):
    the checks read everything first, the entries go in, then the effects
    in run order, each an update that may be repeated; a deletion blanks
    its edits' texts before the message, so that no failure leaves an
    edit holding a deleted text once the message reads as deleted.
    =========================================================================
*/

#include "sm_changes.h"
#include "sm_append.h"
#include "sm_common.h"
#include "st_reactions.h"
#include "pl_text.h"
#include "sm_words.h"
#include "sm_files.h"
#include "sm_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A reaction on a target, as its document keeps it
typedef struct {
    char emoji [ST_EMOJI_MAX + 1];
    char user [ST_NAME_MAX + 1];    //  as the entry gave it
    char key [ST_NAME_MAX + 1];     //  lower-cased
    int64_t at;                     //  the reaction entry's seq
    int64_t since;                  //  its emoji's 0-to-1 seq
} s_row_t;

//  A message a change of the run names, as the run has left it so far
typedef struct {
    uint64_t seq;
    bool message;                   //  a message entry, not deleted
    char author [ST_NAME_MAX + 1];  //  lower-cased
    sm_file_id_t file;              //  the file it refers to, "" for none (schema 13)
    s_row_t *rows;
    uint32_t count;
    uint32_t capacity;
} s_target_t;

//  The effects of one request, queued until its entries are stored
typedef struct {
    mongoc_bulk_operation_t *bulk;  //  on its timeline's collection, ordered
    uint32_t queued;                //  how many (an empty bulk is not run)
    uint64_t deleted [ST_RUN_MAX];  //  a conversation's deleted messages, whose
    uint32_t deleted_count;         //  copy as the conversation's last is blanked first
    sm_file_id_t referenced [ST_RUN_MAX];   //  the files its messages refer to
    uint32_t referenced_count;
    sm_file_id_t released [ST_RUN_MAX];     //  the files of the messages it deletes
    uint32_t released_count;
} s_effects_t;

//  One request's check
typedef struct {
    sm_pending_t *pending;
    s_target_t *targets;            //  at most 2 per element: its own and its target
    uint32_t count;
    uint32_t capacity;
    char owner [ST_NAME_MAX + 1];   //  the room's owner, lower-cased ("" for pm)
    s_effects_t *effects;           //  queued
    st_refusal_t refused [ST_RUN_MAX];
    uint32_t refused_count;
    sm_file_state_t *files;         //  the files the run's messages name (schema 13)
    uint32_t file_count;
} s_check_t;

//  An element of the run, whatever its request
typedef struct {
    const st_change_t *change;
    st_text_t actor;                //  who makes it, as given
    uint64_t seq;
    int64_t ts;
    st_text_t text;
} s_element_t;

static bool
s_pm (const sm_pending_t *pending)
{
    return pending->op == ST_PM_APPEND;
}

static s_element_t
s_element_at (const sm_pending_t *pending, uint32_t index)
{
    if (s_pm (pending)) {
        const st_pm_message_t *message = &pending->messages [index];
        const char *actor = message->from_peer ? pending->to_name : pending->from_name;
        return (s_element_t) { &message->change, { actor, (uint32_t) strlen (actor) },
                               message->seq, message->ts, message->text };
    }
    const st_entry_t *entry = &pending->entries [index];
    return (s_element_t) { &entry->change, entry->user, entry->seq, entry->ts, entry->text };
}

static bool
s_checked (const st_change_t *change)
{
    return change->kind == ST_KIND_EDIT || change->kind == ST_KIND_DELETE
        || change->kind == ST_KIND_REACTION
        || (change->kind == ST_KIND_MESSAGE && (change->reply_to || change->file.id.data));
}

bool
sm_changes (const sm_pending_t *pending)
{
    if (pending->op != ST_MSG_APPEND && pending->op != ST_PM_APPEND)
        return false;
    for (uint32_t index = 0; index < pending->entry_count; index++)
        if (s_checked (s_element_at (pending, index).change))
            return true;
    return false;
}

static mongoc_collection_t *
s_collection (sm_store_t *self, const sm_pending_t *pending)
{
    return s_pm (pending) ? self->pm_messages : self->messages;
}


//  --------------------------------------------------------------------------
//  The targets

static s_target_t *
s_target_find (s_check_t *check, uint64_t seq)
{
    for (uint32_t index = 0; index < check->count; index++)
        if (check->targets [index].seq == seq)
            return &check->targets [index];
    return NULL;
}

static s_target_t *
s_target_add (s_check_t *check, uint64_t seq, bool message, st_text_t author)
{
    if (check->count == check->capacity)
        return NULL;
    s_target_t *target = &check->targets [check->count++];
    memset (target, 0, sizeof *target);
    target->seq = seq;
    target->message = message;
    snprintf (target->author, sizeof target->author, "%.*s", (int) author.size,
              author.data ? author.data : "");
    pl_text_lower (target->author);
    return target;
}

static s_row_t *
s_row_add (s_target_t *target)
{
    if (target->count == target->capacity) {
        uint32_t capacity = target->capacity ? target->capacity * 2 : 8;
        s_row_t *rows = (s_row_t *) realloc (target->rows, capacity * sizeof (s_row_t));
        if (!rows)
            return NULL;
        target->rows = rows;
        target->capacity = capacity;
    }
    s_row_t *row = &target->rows [target->count++];
    memset (row, 0, sizeof *row);
    return row;
}

//  Copies a document's reaction rows into target
static void
s_read_rows (const bson_t *document, s_target_t *target)
{
    bson_iter_t iter, rows;
    if (!bson_iter_init_find (&iter, document, "reactions") || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &rows))
        return;
    while (bson_iter_next (&rows)) {
        uint32_t size;
        const uint8_t *data;
        if (!BSON_ITER_HOLDS_DOCUMENT (&rows))
            continue;
        bson_iter_document (&rows, &size, &data);
        bson_t one;
        s_row_t *row = bson_init_static (&one, data, size) ? s_row_add (target) : NULL;
        if (!row)
            continue;
        sm_copy_bson_str (&one, "emoji", row->emoji, sizeof row->emoji);
        sm_copy_bson_str (&one, "user", row->user, sizeof row->user);
        sm_copy_bson_str (&one, "key", row->key, sizeof row->key);
        row->at = sm_bson_int (&one, "at", 0);
        row->since = sm_bson_int (&one, "since", 0);
    }
}

static void
s_on_target (void *arg, const bson_t *document)
{
    s_check_t *check = (s_check_t *) arg;
    st_text_t kind = sm_bson_st_text (document, "kind");
    bool message = (kind.size == 0 || st_text_is (kind, "message"))
                && !sm_bson_bool (document, "deleted");
    st_text_t author = sm_bson_st_text (document, s_pm (check->pending) ? "from" : "user");
    s_target_t *target = s_target_add (check, (uint64_t) sm_bson_int (document, "seq", 0),
                                       message, author);
    if (target) {
        s_read_rows (document, target);
        sm_copy_bson_str (document, "file.id", target->file, sizeof target->file);
    }
}

//  The targets the run names, in one find of its timeline
static int
s_find_targets (sm_store_t *self, s_check_t *check, bson_error_t *error)
{
    const sm_pending_t *pending = check->pending;
    bson_t filter = BSON_INITIALIZER, condition, array;
    BSON_APPEND_UTF8 (&filter, sm_timeline_field (pending), sm_timeline_key (pending));
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "seq", &condition);
    BSON_APPEND_ARRAY_BEGIN (&condition, "$in", &array);
    uint32_t count = 0;
    for (uint32_t index = 0; index < pending->entry_count; index++) {
        const st_change_t *change = s_element_at (pending, index).change;
        uint64_t seq = change->kind == ST_KIND_MESSAGE ? change->reply_to : change->target;
        if (seq) {
            char key [16];
            const char *name;
            size_t size = bson_uint32_to_string (count++, &name, key, sizeof key);
            bson_append_int64 (&array, name, (int) size, (int64_t) seq);
        }
    }
    bson_append_array_end (&condition, &array);
    bson_append_document_end (&filter, &condition);
    bson_t *opts = BCON_NEW ("projection", "{", "seq", BCON_INT32 (1), "kind", BCON_INT32 (1),
                             "user", BCON_INT32 (1), "from", BCON_INT32 (1),
                             "deleted", BCON_INT32 (1), "reactions", BCON_INT32 (1),
                             "file.id", BCON_INT32 (1), "}");
    int rc = count == 0 ? 0 : sm_find (self, s_collection (self, pending), &filter, opts,
                                       s_on_target, check, error);
    bson_destroy (opts);
    bson_destroy (&filter);
    return rc;
}

//  The files the run's messages name, in one find (schema version 13)
static int
s_find_files (sm_store_t *self, s_check_t *check, bson_error_t *error)
{
    const sm_pending_t *pending = check->pending;
    sm_file_id_t ids [ST_RUN_MAX];
    uint32_t count = 0;
    for (uint32_t index = 0; index < pending->entry_count && count < ST_RUN_MAX; index++) {
        const st_change_t *change = s_element_at (pending, index).change;
        if (change->kind == ST_KIND_MESSAGE && change->file.id.data)
            snprintf (ids [count++], sizeof (sm_file_id_t), "%.*s", (int) change->file.id.size,
                      change->file.id.data);
    }
    if (count == 0)
        return 0;
    check->files = (sm_file_state_t *) calloc (count, sizeof (sm_file_state_t));
    if (!check->files) {
        sm_fail (check->pending, "internal", "The store ran out of memory.");
        return 0;
    }
    return sm_files_states (self, ids, count, check->files, &check->file_count, error);
}

//  The room's owner, lower-cased, for a run that deletes
static int
s_find_owner (sm_store_t *self, s_check_t *check, bson_error_t *error)
{
    bson_t *filter = BCON_NEW ("name_lower", BCON_UTF8 (check->pending->room_key));
    bson_t *projection = BCON_NEW ("owner", BCON_INT32 (1));
    bson_t found = BSON_INITIALIZER;
    int rc = sm_find_one (self, self->rooms, filter, projection, &found, error);
    sm_copy_bson_str (&found, "owner", check->owner, sizeof check->owner);
    pl_text_lower (check->owner);
    bson_destroy (&found);
    bson_destroy (projection);
    bson_destroy (filter);
    return rc < 0 ? -1 : 0;
}


//  --------------------------------------------------------------------------
//  The checks, in run order, and the effects they queue

//  {field: key, seq: seq}, the start of every effect's selector
static bson_t *
s_selector (const sm_pending_t *pending, uint64_t seq, bool not_deleted)
{
    bson_t *selector = BCON_NEW (sm_timeline_field (pending), BCON_UTF8 (sm_timeline_key (pending)),
                                 "seq", BCON_INT64 ((int64_t) seq));
    if (not_deleted)
        BCON_APPEND (selector, "deleted", "{", "$ne", BCON_BOOL (true), "}");
    return selector;
}

//  An edit: the text and the time of the last edit, unless deleted meanwhile
static void
s_queue_edit (s_check_t *check, const s_element_t *element)
{
    bson_t *selector = s_selector (check->pending, element->change->target, true);
    bson_t update = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN (&update, "$set", &set);
    bson_append_utf8 (&set, "text", 4, element->text.data, (int) element->text.size);
    BSON_APPEND_DATE_TIME (&set, "edited", element->ts);
    //  Searched by its text as it is now (schema version 12)
    sm_words_append (&set, "words", element->text.data, element->text.size);
    bson_append_document_end (&update, &set);
    mongoc_bulk_operation_update_one_with_opts (check->effects->bulk, selector, &update, NULL, NULL);
    check->effects->queued++;
    bson_destroy (&update);
    bson_destroy (selector);
}

//  A deletion: its edits' texts first, then the message's text, its
//  reactions and its mentions (no longer counted)
static void
s_queue_delete (s_check_t *check, uint64_t target)
{
    const sm_pending_t *pending = check->pending;
    bson_t *edits = BCON_NEW (sm_timeline_field (pending), BCON_UTF8 (sm_timeline_key (pending)),
                              "target", BCON_INT64 ((int64_t) target), "kind", BCON_UTF8 ("edit"));
    bson_t *blank = BCON_NEW ("$set", "{", "text", BCON_UTF8 (""), "}");
    mongoc_bulk_operation_update_many_with_opts (check->effects->bulk, edits, blank, NULL, NULL);
    bson_t *selector = s_selector (pending, target, false);
    bson_t *update = BCON_NEW ("$set", "{", "text", BCON_UTF8 (""), "deleted", BCON_BOOL (true), "}",
                               "$unset", "{", "reactions", BCON_UTF8 (""),
                                              "mentioned", BCON_UTF8 (""),
                                              "words", BCON_UTF8 (""),
                                              "file", BCON_UTF8 (""), "}");
    mongoc_bulk_operation_update_one_with_opts (check->effects->bulk, selector, update, NULL, NULL);
    check->effects->queued += 2;
    if (s_pm (pending) && check->effects->deleted_count < ST_RUN_MAX)
        check->effects->deleted [check->effects->deleted_count++] = target;
    bson_destroy (update);
    bson_destroy (selector);
    bson_destroy (blank);
    bson_destroy (edits);
}

//  A reaction: the target's rows as they are after it
static void
s_queue_rows (s_check_t *check, const s_target_t *target)
{
    bson_t *selector = s_selector (check->pending, target->seq, true);
    bson_t update = BSON_INITIALIZER, set, rows;
    BSON_APPEND_DOCUMENT_BEGIN (&update, "$set", &set);
    BSON_APPEND_ARRAY_BEGIN (&set, "reactions", &rows);
    for (uint32_t index = 0; index < target->count; index++) {
        const s_row_t *row = &target->rows [index];
        char key [16];
        const char *name;
        bson_uint32_to_string (index, &name, key, sizeof key);
        bson_t one;
        BSON_APPEND_DOCUMENT_BEGIN (&rows, name, &one);
        BSON_APPEND_UTF8 (&one, "emoji", row->emoji);
        BSON_APPEND_UTF8 (&one, "user", row->user);
        BSON_APPEND_UTF8 (&one, "key", row->key);
        BSON_APPEND_INT64 (&one, "at", row->at);
        BSON_APPEND_INT64 (&one, "since", row->since);
        bson_append_document_end (&rows, &one);
    }
    bson_append_array_end (&set, &rows);
    bson_append_document_end (&update, &set);
    mongoc_bulk_operation_update_one_with_opts (check->effects->bulk, selector, &update, NULL, NULL);
    check->effects->queued++;
    bson_destroy (&update);
    bson_destroy (selector);
}

//  A reaction's check: the user's row of this emoji, the emoji's since,
//  how many emoji the target has. Returns the refusal's code, or NULL.
static const char *
s_check_reaction (const s_target_t *target, const char *emoji, const char *key, bool on,
                  int64_t *since_p)
{
    int64_t mine = -1;
    uint32_t distinct = 0;
    *since_p = 0;
    for (uint32_t index = 0; index < target->count; index++) {
        const s_row_t *row = &target->rows [index];
        bool first = true;
        for (uint32_t earlier = 0; earlier < index && first; earlier++)
            first = strcmp (target->rows [earlier].emoji, row->emoji) != 0;
        distinct += first;
        if (strcmp (row->emoji, emoji) == 0) {
            *since_p = row->since;
            if (strcmp (row->key, key) == 0)
                mine = index;
        }
    }
    if ((mine >= 0) == on)
        return ST_UNCHANGED;
    if (on && *since_p == 0 && distinct >= ST_REACTIONS_MAX)
        return ST_TOO_MANY_REACTIONS;
    return NULL;
}

//  A reaction's effect on the target's rows, then queued
static void
s_apply_reaction (s_check_t *check, s_target_t *target, const s_element_t *element,
                  const char *key, int64_t since)
{
    char emoji [ST_EMOJI_MAX + 1];
    snprintf (emoji, sizeof emoji, "%.*s", (int) element->change->emoji.size,
              element->change->emoji.data);
    if (element->change->on) {
        s_row_t *row = s_row_add (target);
        if (row) {
            snprintf (row->emoji, sizeof row->emoji, "%s", emoji);
            snprintf (row->user, sizeof row->user, "%.*s", (int) element->actor.size,
                      element->actor.data);
            snprintf (row->key, sizeof row->key, "%s", key);
            row->at = (int64_t) element->seq;
            row->since = since ? since : (int64_t) element->seq;
        }
    }
    else
        for (uint32_t index = 0; index < target->count; index++)
            if (strcmp (target->rows [index].emoji, emoji) == 0
            &&  strcmp (target->rows [index].key, key) == 0) {
                target->rows [index] = target->rows [--target->count];
                break;
            }
    s_queue_rows (check, target);
}

//  Checks one element against the targets; NULL when it passes
//  A message's file: it exists, is complete and is its sender's (key,
//  lower-cased). Returns no_such_file, or NULL when it is or none is named.
static const char *
s_check_file (const s_check_t *check, const st_file_ref_t *file, const char *key)
{
    if (!file->id.data)
        return NULL;
    for (uint32_t index = 0; index < check->file_count; index++) {
        const sm_file_state_t *state = &check->files [index];
        if (strlen (state->id) == file->id.size
        &&  memcmp (state->id, file->id.data, file->id.size) == 0)
            return state->complete && strcmp (state->user_key, key) == 0
                   ? NULL : ST_NO_SUCH_FILE;
    }
    return ST_NO_SUCH_FILE;
}

//  A message of the run, stored: a target for the elements after it, and
//  its file referred to
static void
s_add_message (s_check_t *check, const s_element_t *element)
{
    s_target_t *target = s_target_add (check, element->seq, true, element->actor);
    const st_file_ref_t *file = &element->change->file;
    if (!file->id.data)
        return;
    s_effects_t *effects = check->effects;
    if (target)
        snprintf (target->file, sizeof target->file, "%.*s", (int) file->id.size, file->id.data);
    if (effects->referenced_count < ST_RUN_MAX)
        snprintf (effects->referenced [effects->referenced_count++], sizeof (sm_file_id_t),
                  "%.*s", (int) file->id.size, file->id.data);
}

//  A deleted message's file: released once the deletion is applied
static void
s_release_file (s_check_t *check, s_target_t *target)
{
    s_effects_t *effects = check->effects;
    if (target->file [0] && effects->released_count < ST_RUN_MAX)
        memcpy (effects->released [effects->released_count++], target->file,
                sizeof (sm_file_id_t));
    target->file [0] = 0;
}

static const char *
s_judge (s_check_t *check, const s_element_t *element, const char *key, s_target_t **target_p,
         int64_t *since_p)
{
    const st_change_t *change = element->change;
    uint64_t seq = change->kind == ST_KIND_MESSAGE ? change->reply_to : change->target;
    s_target_t *target = *target_p = seq ? s_target_find (check, seq) : NULL;
    if (change->kind == ST_KIND_MESSAGE && !seq)
        return s_check_file (check, &change->file, key);
    if (!target || !target->message)
        return ST_NO_SUCH_MESSAGE;
    if (change->kind == ST_KIND_MESSAGE)
        return s_check_file (check, &change->file, key);
    if (change->kind == ST_KIND_EDIT && strcmp (target->author, key) != 0)
        return ST_FORBIDDEN;
    if (change->kind == ST_KIND_DELETE && strcmp (target->author, key) != 0
    &&  (s_pm (check->pending) || strcmp (check->owner, key) != 0))
        return ST_FORBIDDEN;
    if (change->kind != ST_KIND_REACTION)
        return NULL;
    char emoji [ST_EMOJI_MAX + 1];
    snprintf (emoji, sizeof emoji, "%.*s", (int) change->emoji.size, change->emoji.data);
    return s_check_reaction (target, emoji, key, change->on, since_p);
}

//  One element: judged, then applied to the targets and queued
static void
s_check_element (s_check_t *check, uint32_t index)
{
    s_element_t element = s_element_at (check->pending, index);
    const st_change_t *change = element.change;
    char key [ST_NAME_MAX + 1];
    st_text_lower (element.actor, key);
    s_target_t *target = NULL;
    int64_t since = 0;
    const char *code = s_checked (change) ? s_judge (check, &element, key, &target, &since)
                                          : NULL;
    if (code) {
        check->refused [check->refused_count++] = (st_refusal_t) { index, code };
        return;
    }
    if (change->kind == ST_KIND_MESSAGE)
        s_add_message (check, &element);
    else
    if (change->kind == ST_KIND_EDIT)
        s_queue_edit (check, &element);
    else
    if (change->kind == ST_KIND_DELETE) {
        target->message = false;
        target->count = 0;
        s_queue_delete (check, target->seq);
        s_release_file (check, target);
    }
    else
    if (change->kind == ST_KIND_REACTION)
        s_apply_reaction (check, target, &element, key, since);
}

//  Whether element index repeats a stored nonce (not checked: the run
//  goes again without it)
static bool
s_repeated_at (const sm_pending_t *pending, uint32_t index)
{
    for (uint32_t item = 0; item < pending->duplicate_count; item++)
        if (pending->duplicates [item].index == index)
            return true;
    return false;
}

//  Answers a request with refusals or repeats: nothing of it is written
static void
s_answer_refused (s_check_t *check)
{
    sm_pending_t *pending = check->pending;
    st_reply_refused (pending->request, check->refused, check->refused_count,
                      pending->duplicates, pending->duplicate_count);
    pending->repeated = true;
}

//  The run's elements in order, their effects queued
static void
s_check_run (sm_store_t *self, s_check_t *check)
{
    sm_pending_t *pending = check->pending;
    check->effects = (s_effects_t *) calloc (1, sizeof (s_effects_t));
    if (!check->effects) {
        sm_fail (pending, "internal", "The store ran out of memory.");
        return;
    }
    bson_t *opts = BCON_NEW ("ordered", BCON_BOOL (true));
    check->effects->bulk = mongoc_collection_create_bulk_operation_with_opts (
        s_collection (self, pending), opts);
    bson_destroy (opts);
    for (uint32_t index = 0; index < pending->entry_count; index++)
        if (!s_repeated_at (pending, index))
            s_check_element (check, index);
    if (check->refused_count || pending->duplicate_count)
        s_answer_refused (check);
    pending->changes = check->effects;
    if ((!check->effects->queued && !check->effects->referenced_count)
    ||  !sm_is_live (pending))
        sm_changes_drop (pending);
}

static void
s_check_free (s_check_t *check)
{
    for (uint32_t index = 0; index < check->count; index++)
        free (check->targets [index].rows);
    free (check->targets);
    free (check->files);
}

int
sm_changes_check (sm_store_t *self, sm_pending_t *pending, bson_error_t *error)
{
    s_check_t check = { .pending = pending, .capacity = 2 * pending->entry_count };
    check.targets = (s_target_t *) calloc (check.capacity, sizeof (s_target_t));
    int rc = check.targets ? s_find_targets (self, &check, error) : 0;
    if (!check.targets)
        sm_fail (pending, "internal", "The store ran out of memory.");
    if (rc == 0 && check.targets && !s_pm (pending))
        rc = s_find_owner (self, &check, error);
    if (rc == 0 && check.targets)
        rc = s_find_files (self, &check, error);
    if (rc == 0 && sm_is_live (pending))
        s_check_run (self, &check);
    s_check_free (&check);
    free (pending->duplicates);
    pending->duplicates = NULL;
    pending->duplicate_count = 0;
    return rc;
}

//  A conversation's copy of a deleted message as its last: blanked
//  before the message, so that a failure between leaves no copy behind
//  once the message reads as deleted
static int
s_blank_last (sm_store_t *self, const sm_pending_t *pending, const s_effects_t *effects,
              bson_error_t *error)
{
    if (!effects->deleted_count)
        return 0;
    bson_t filter = BSON_INITIALIZER, condition, array;
    BSON_APPEND_UTF8 (&filter, "conv", pending->conv);
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "last.seq", &condition);
    BSON_APPEND_ARRAY_BEGIN (&condition, "$in", &array);
    for (uint32_t index = 0; index < effects->deleted_count; index++) {
        char key [16];
        const char *name;
        size_t size = bson_uint32_to_string (index, &name, key, sizeof key);
        bson_append_int64 (&array, name, (int) size, (int64_t) effects->deleted [index]);
    }
    bson_append_array_end (&condition, &array);
    bson_append_document_end (&filter, &condition);
    bson_t *update = BCON_NEW ("$set", "{", "last.text", BCON_UTF8 (""), "}");
    self->round_trips++;
    bool ok = mongoc_collection_update_many (self->conversations, &filter, update, NULL, NULL,
                                             error);
    bson_destroy (update);
    bson_destroy (&filter);
    return ok ? 0 : -1;
}

int
sm_changes_apply (sm_store_t *self, sm_pending_t *pending, bson_error_t *error)
{
    s_effects_t *effects = (s_effects_t *) pending->changes;
    if (!effects)
        return 0;
    int rc = s_blank_last (self, pending, effects, error);
    if (rc == 0 && effects->queued) {
        bson_t reply;
        self->round_trips++;
        if (!mongoc_bulk_operation_execute (effects->bulk, &reply, error))
            rc = -1;
        bson_destroy (&reply);
    }
    //  The files: those referred to now marked, those released deleted
    //  when nothing refers to them any longer. A failure here leaves
    //  them to store.file.sweep; the messages' ok stands.
    bson_error_t files_error;
    if (rc == 0
    &&  (sm_files_mark_referenced (self, effects->referenced, effects->referenced_count,
                                   &files_error)
    ||   sm_files_release (self, effects->released, effects->released_count, &files_error)))
        sm_note_failure (self, "settling the files of timeline changes", &files_error);
    sm_changes_drop (pending);
    return rc;
}

void
sm_changes_drop (sm_pending_t *pending)
{
    s_effects_t *effects = (s_effects_t *) pending->changes;
    if (effects) {
        mongoc_bulk_operation_destroy (effects->bulk);
        free (effects);
    }
    pending->changes = NULL;
}


//  --------------------------------------------------------------------------
//  Documents

void
sm_changes_build (const st_change_t *change, bson_t *document)
{
    if (change->kind == ST_KIND_MESSAGE)
        sm_file_ref_build (&change->file, document);
    if (change->reply_to)
        BSON_APPEND_INT64 (document, "reply_to", (int64_t) change->reply_to);
    if (change->target)
        BSON_APPEND_INT64 (document, "target", (int64_t) change->target);
    if (change->kind == ST_KIND_REACTION) {
        bson_append_utf8 (document, "emoji", 5, change->emoji.data, (int) change->emoji.size);
        BSON_APPEND_BOOL (document, "on", change->on);
    }
}

//  The walk of a document's reaction rows (st_reactions_next_fn)
typedef struct {
    bson_iter_t rows;
    uint64_t seq;                   //  the message's
} s_rows_t;

static int
s_next_row (void *cursor, st_reaction_t *row)
{
    s_rows_t *walk = (s_rows_t *) cursor;
    while (bson_iter_next (&walk->rows)) {
        uint32_t size;
        const uint8_t *data;
        bson_t one;
        if (!BSON_ITER_HOLDS_DOCUMENT (&walk->rows))
            continue;
        bson_iter_document (&walk->rows, &size, &data);
        if (!bson_init_static (&one, data, size))
            continue;
        row->seq = walk->seq;
        row->emoji = sm_bson_st_text (&one, "emoji");
        row->user = sm_bson_st_text (&one, "user");
        row->at = (uint64_t) sm_bson_int (&one, "at", 0);
        row->since = (uint64_t) sm_bson_int (&one, "since", 0);
        return 1;
    }
    return 0;
}

//  A new object holding the document's reactions (loaded for seq), or NULL
static st_reactions_t *
s_reactions_of (const bson_t *document, uint64_t seq)
{
    s_rows_t walk = { .seq = seq };
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, document, "reactions") || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &walk.rows))
        return NULL;
    st_reactions_t *reactions = st_reactions_new (s_next_row, &walk, false);
    //  Loaded at once: the walk lives on this stack only
    if (reactions && st_reactions_load (reactions, seq))
        st_reactions_destroy (&reactions);
    return reactions;
}

void
sm_changes_read (const bson_t *document, uint64_t seq, st_change_t *change,
                 st_reactions_t **reactions_p)
{
    st_text_t kind = sm_bson_st_text (document, "kind");
    change->kind = ST_KIND_MESSAGE;
    for (int index = 0; index <= ST_KIND_REACTION; index++)
        if (st_text_is (kind, st_kind_name ((st_kind_t) index)))
            change->kind = (st_kind_t) index;
    change->reply_to = (uint64_t) sm_bson_int (document, "reply_to", 0);
    change->target = (uint64_t) sm_bson_int (document, "target", 0);
    change->edited_at = sm_bson_int (document, "edited", -1);
    change->edited = change->edited_at >= 0;
    change->deleted = sm_bson_bool (document, "deleted");
    if (change->kind == ST_KIND_MESSAGE && !change->deleted)
        sm_file_ref_read (document, &change->file);
    if (change->kind == ST_KIND_REACTION) {
        change->emoji = sm_bson_st_text (document, "emoji");
        change->on = sm_bson_bool (document, "on");
    }
    *reactions_p = change->kind == ST_KIND_MESSAGE && !change->deleted
                 ? s_reactions_of (document, seq) : NULL;
    change->reactions = *reactions_p;
}

/*  =========================================================================
    sm_request - a typed request of the store front, as store-mongo runs it

    The front (plugins/store) has parsed and validated every request; this
    copies what a run needs into the request's slot of the batch: the names
    and their lower-cased keys under the names the runs use, the
    conversation's key of a pm request, the first seq of a run.
    =========================================================================
*/

#include "sm_store.h"
#include "sm_request.h"

#include <stdio.h>
#include <string.h>

//  Copies a key, NUL-terminated, into size bytes (validation bounded it)
static void
s_copy_key (char *key, size_t size, const char *from)
{
    size_t length = strnlen (from, size - 1);
    memcpy (key, from, length);
    key [length] = 0;
}

//  Copies a validated name and its key
static void
s_name (const st_name_t *name, st_text_t *text, char *key, size_t size)
{
    *text = name->text;
    s_copy_key (key, size, name->key);
}

//  The user a request is about: name and key
static void
s_user (sm_pending_t *pending, const st_name_t *name)
{
    s_name (name, &pending->name, pending->key, sizeof pending->key);
}

static void
s_room (sm_pending_t *pending, const st_name_t *room)
{
    s_name (room, &pending->room, pending->room_key, sizeof pending->room_key);
}

//  The two sides of a pm request, and the conversation's key: the two
//  lower-cased names, the smaller first
static void
s_pair (sm_pending_t *pending, const st_name_t *me, const st_name_t *other)
{
    s_user (pending, me);
    s_name (other, &pending->peer, pending->peer_key, sizeof pending->peer_key);
    bool me_first = strcmp (pending->key, pending->peer_key) < 0;
    snprintf (pending->conv, sizeof pending->conv, "%s\n%s",
              me_first ? pending->key : pending->peer_key,
              me_first ? pending->peer_key : pending->key);
}

static void
s_page (sm_pending_t *pending, const st_page_t *page)
{
    pending->cursor = page->cursor;
    pending->cursor_seq = page->seq;
    pending->limit = page->limit;
}

static void
s_load_users (sm_pending_t *pending, const st_request_t *request)
{
    switch (request->type) {
        case ST_USER_CREATE:
            s_user (pending, &request->as.user_create.name);
            pending->hash = request->as.user_create.password_hash;
            pending->created_at = request->as.user_create.created_at;
            break;
        case ST_USER_GET:
            s_user (pending, &request->as.user_get.name);
            break;
        case ST_USER_LIST:
            s_user (pending, &request->as.user_list.after);
            pending->limit = request->as.user_list.limit;
            break;
        case ST_USER_SEEN:
            pending->users = request->as.user_seen.users;
            pending->user_count = request->as.user_seen.count;
            break;
        case ST_USER_SET_STATE:
            s_user (pending, &request->as.user_set_state.name);
            pending->hash = request->as.user_set_state.state;
            break;
        case ST_USER_SET_PASSWORD:
            s_user (pending, &request->as.user_set_password.name);
            pending->hash = request->as.user_set_password.password_hash;
            pending->keep_hash = request->as.user_set_password.keep_token;
            break;
        default:
            break;
    }
}

static void
s_load_tokens (sm_pending_t *pending, const st_request_t *request)
{
    switch (request->type) {
        case ST_TOKEN_PUT:
            pending->hash = request->as.token_put.token_hash;
            s_user (pending, &request->as.token_put.user);
            pending->created_at = request->as.token_put.created_at;
            pending->expires_at = request->as.token_put.expires_at;
            break;
        case ST_TOKEN_GET:
        case ST_TOKEN_DELETE:
            pending->hash = request->as.token_get.token_hash;
            break;
        case ST_TOKEN_DELETE_USER:
            s_user (pending, &request->as.token_delete_user.user);
            break;
        case ST_TOKEN_PURGE:
            pending->before = request->as.token_purge.before;
            break;
        case ST_TOKEN_TOUCH:
            pending->hash = request->as.token_touch.token_hash;
            pending->before = request->as.token_touch.at;
            pending->expires_at = request->as.token_touch.expires_at;
            break;
        case ST_TOKEN_TRIM:
            s_user (pending, &request->as.token_trim.user);
            pending->keep = request->as.token_trim.keep;
            break;
        default:
            break;
    }
}

static void
s_load_room_create (sm_pending_t *pending, const st_room_create_t *create)
{
    s_room (pending, &create->name);
    pending->description = create->description;
    pending->is_private = create->is_private;
    pending->max_participants = create->max_participants;
    s_user (pending, &create->owner);
    pending->created_at = create->created_at;
    pending->max_owned = create->max_owned;
    pending->max_joined = create->max_joined;
}

//  room.joined, room.public, room.directory
static void
s_load_room_page (sm_pending_t *pending, const st_room_page_t *page)
{
    s_user (pending, &page->user);
    s_copy_key (pending->after_key, sizeof pending->after_key, page->after.key);
    pending->limit = page->limit;
    pending->has_after_active = page->has_after_active;
    pending->after_active = page->after_active;
    s_copy_key (pending->prefix_key, sizeof pending->prefix_key, page->prefix.key);
}

static void
s_load_member (sm_pending_t *pending, const st_member_t *member)
{
    s_room (pending, &member->room);
    s_user (pending, &member->user);
    pending->has_entry = member->has_entry;
    pending->entry = member->entry;
    pending->max_joined = member->max_joined;
}

static void
s_load_rooms (sm_pending_t *pending, const st_request_t *request)
{
    switch (request->type) {
        case ST_ROOM_CREATE:
            s_load_room_create (pending, &request->as.room_create);
            break;
        case ST_ROOM_GET:
        case ST_ROOM_DELETE:
        case ST_MEMBER_LIST:
            s_room (pending, &request->as.room_get.name);
            break;
        case ST_ROOM_LIST:
            s_user (pending, &request->as.room_list.user);
            break;
        case ST_ROOM_JOINED:
        case ST_ROOM_PUBLIC:
        case ST_ROOM_DIRECTORY:
        case ST_ROOM_INVITED:
        case ST_ROOM_ALL:
            s_load_room_page (pending, &request->as.room_joined);
            break;
        case ST_MEMBER_ADD:
        case ST_MEMBER_REMOVE:
            s_load_member (pending, &request->as.member_add);
            break;
        case ST_MEMBER_READ:
            s_room (pending, &request->as.member_read.room);
            s_user (pending, &request->as.member_read.user);
            pending->seq = request->as.member_read.seq;
            break;
        case ST_INVITE_ADD:
            s_room (pending, &request->as.invite_add.room);
            s_user (pending, &request->as.invite_add.user);
            break;
        case ST_ROOM_UPDATE:
            s_room (pending, &request->as.room_update.name);
            pending->has_entry = request->as.room_update.has_entry;
            pending->entry = request->as.room_update.entry;
            break;
        case ST_ROOM_UNBAN:
            s_room (pending, &request->as.room_unban.room);
            s_user (pending, &request->as.room_unban.user);
            break;
        default:
            break;
    }
}

static void
s_load_timelines (sm_pending_t *pending, const st_request_t *request)
{
    switch (request->type) {
        case ST_MSG_APPEND:
            s_room (pending, &request->as.msg_append.room);
            pending->entries = request->as.msg_append.entries;
            pending->entry_count = request->as.msg_append.count;
            pending->has_entry = true;
            pending->entry = pending->entries [0];
            break;
        case ST_MSG_HISTORY:
            s_room (pending, &request->as.msg_history.room);
            s_page (pending, &request->as.msg_history.page);
            if (request->as.msg_history.user.text.data) {
                s_user (pending, &request->as.msg_history.user);
                pending->with_read_seq = true;
            }
            break;
        case ST_MSG_NONCE:
            s_room (pending, &request->as.msg_nonce.room);
            s_user (pending, &request->as.msg_nonce.user);
            pending->nonce = request->as.msg_nonce.nonce;
            break;
        case ST_PM_NONCE:
            s_pair (pending, &request->as.pm_nonce.from, &request->as.pm_nonce.to);
            pending->nonce = request->as.pm_nonce.nonce;
            break;
        case ST_PM_APPEND:
            s_pair (pending, &request->as.pm_append.from, &request->as.pm_append.to);
            pending->messages = request->as.pm_append.messages;
            pending->entry_count = request->as.pm_append.count;
            pending->seq = pending->messages [0].seq;
            break;
        case ST_PM_LAST_SEQ:
        case ST_PM_HISTORY:
        case ST_PM_READ:
            s_pair (pending, &request->as.pm_history.user, &request->as.pm_history.with);
            s_page (pending, &request->as.pm_history.page);
            pending->seq = request->as.pm_history.seq;
            break;
        case ST_PM_CONVERSATIONS:
            s_user (pending, &request->as.pm_conversations.user);
            pending->limit = request->as.pm_conversations.limit;
            break;
        default:
            break;
    }
}

void
sm_request_load (sm_pending_t *pending, st_request_t *request)
{
    memset (pending, 0, sizeof *pending);
    pending->request = request;
    pending->op = request->type;
    if (!st_request_live (request))
        return;             //  refused at validation: its fields are not read
    s_load_users (pending, request);
    s_load_tokens (pending, request);
    s_load_rooms (pending, request);
    s_load_timelines (pending, request);
}

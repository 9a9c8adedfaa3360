/*  =========================================================================
    br_admin - the answers the broker gives an admin peer itself
    =========================================================================
*/

#include "br_admin.h"

#include <msgpack.h>
#include <strings.h>

static void
s_pack_str (msgpack_packer *packer, const char *text)
{
    size_t length = text ? strlen (text) : 0;
    msgpack_pack_str (packer, length);
    msgpack_pack_str_body (packer, text ? text : "", length);
}

//  Case-insensitive first, so that Alice and alice sit together
static int
s_name_compare (const char *one, const char *two)
{
    int order = strcasecmp (one ? one : "", two ? two : "");
    return order ? order : strcmp (one ? one : "", two ? two : "");
}

static int
s_user_compare (const void *one, const void *two)
{
    return s_name_compare (((const br_admin_user_t *) one)->name,
                           ((const br_admin_user_t *) two)->name);
}

static int
s_peer_compare (const void *one, const void *two)
{
    const br_admin_peer_t *first = (const br_admin_peer_t *) one;
    const br_admin_peer_t *second = (const br_admin_peer_t *) two;
    int order = strcmp (first->kind, second->kind);
    if (!order)
        order = s_name_compare (first->name, second->name);
    return order ? order : s_name_compare (first->instance, second->instance);
}

//  Reads {after?, limit?}: returns 0, or -1 with the sentence
static int
s_online_request (const void *request, size_t size, char *after, size_t after_size,
                  uint64_t *limit_p, char *message, size_t message_size)
{
    *after = 0;
    *limit_p = BR_ADMIN_ONLINE_MAX;
    if (!request || size == 0)
        return 0;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init (&unpacked);
    int rc = 0;
    if (msgpack_unpack_next (&unpacked, (const char *) request, size, NULL)
            != MSGPACK_UNPACK_SUCCESS || unpacked.data.type != MSGPACK_OBJECT_MAP) {
        snprintf (message, message_size, "The request's fields are not a map.");
        rc = -1;
    }
    for (uint32_t index = 0; rc == 0 && index < unpacked.data.via.map.size; index++) {
        const msgpack_object_kv *pair = &unpacked.data.via.map.ptr [index];
        if (pair->key.type != MSGPACK_OBJECT_STR)
            continue;
        const msgpack_object_str *key = &pair->key.via.str;
        if (key->size == 5 && memcmp (key->ptr, "after", 5) == 0) {
            if (pair->val.type != MSGPACK_OBJECT_STR || pair->val.via.str.size >= after_size) {
                snprintf (message, message_size, "The field 'after' must be a user name.");
                rc = -1;
            }
            else {
                memcpy (after, pair->val.via.str.ptr, pair->val.via.str.size);
                after [pair->val.via.str.size] = 0;
            }
        }
        else
        if (key->size == 5 && memcmp (key->ptr, "limit", 5) == 0) {
            if (pair->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER || pair->val.via.u64 < 1
            ||  pair->val.via.u64 > BR_ADMIN_ONLINE_MAX) {
                snprintf (message, message_size, "The field 'limit' must be a whole number"
                          " from 1 to %d.", BR_ADMIN_ONLINE_MAX);
                rc = -1;
            }
            else
                *limit_p = pair->val.via.u64;
        }
    }
    msgpack_unpacked_destroy (&unpacked);
    return rc;
}

//  The packed items (count of them) in a map {key: [items], more}
static zframe_t *
s_answer (const char *key, msgpack_sbuffer *items, size_t count, bool more)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init (&buffer);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, 2);
    s_pack_str (&packer, key);
    msgpack_pack_array (&packer, count);
    msgpack_sbuffer_write (&buffer, items->data, items->size);
    s_pack_str (&packer, "more");
    more ? msgpack_pack_true (&packer) : msgpack_pack_false (&packer);
    zframe_t *frame = buffer.data ? zframe_new (buffer.data, buffer.size) : NULL;
    msgpack_sbuffer_destroy (&buffer);
    return frame;
}

int
br_admin_online (br_admin_user_t *users, size_t count, const void *request, size_t size,
                 zframe_t **answer_p, char *message, size_t message_size)
{
    char after [512];
    uint64_t limit;
    if (s_online_request (request, size, after, sizeof after, &limit, message, message_size))
        return -1;
    qsort (users, count, sizeof (br_admin_user_t), s_user_compare);
    msgpack_sbuffer items;
    msgpack_sbuffer_init (&items);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &items, msgpack_sbuffer_write);
    size_t taken = 0;
    bool more = false;
    for (size_t index = 0; index < count; index++) {
        if (*after && s_name_compare (users [index].name, after) <= 0)
            continue;
        if (taken == limit || items.size > BR_ADMIN_ANSWER_BYTES) {
            more = true;
            break;
        }
        msgpack_pack_map (&packer, 2);
        s_pack_str (&packer, "name");
        s_pack_str (&packer, users [index].name);
        s_pack_str (&packer, "sessions");
        msgpack_pack_uint64 (&packer, users [index].sessions);
        taken++;
    }
    *answer_p = s_answer ("users", &items, taken, more);
    msgpack_sbuffer_destroy (&items);
    if (!*answer_p)
        snprintf (message, message_size, "The broker ran out of memory.");
    return *answer_p ? 0 : -1;
}

int
br_admin_peers (br_admin_peer_t *peers, size_t count, zframe_t **answer_p)
{
    qsort (peers, count, sizeof (br_admin_peer_t), s_peer_compare);
    msgpack_sbuffer items;
    msgpack_sbuffer_init (&items);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &items, msgpack_sbuffer_write);
    size_t taken = 0;
    for (; taken < count && items.size <= BR_ADMIN_ANSWER_BYTES; taken++) {
        const br_admin_peer_t *peer = &peers [taken];
        msgpack_pack_map (&packer, 5);
        s_pack_str (&packer, "kind");
        s_pack_str (&packer, peer->kind);
        s_pack_str (&packer, "name");
        s_pack_str (&packer, peer->name);
        s_pack_str (&packer, "instance");
        s_pack_str (&packer, peer->instance);
        s_pack_str (&packer, "routes");
        msgpack_pack_array (&packer, peer->route_count);
        for (size_t route = 0; route < peer->route_count; route++)
            s_pack_str (&packer, peer->routes [route]);
        s_pack_str (&packer, "sessions");
        msgpack_pack_uint64 (&packer, peer->sessions);
    }
    *answer_p = s_answer ("peers", &items, taken, taken < count);
    msgpack_sbuffer_destroy (&items);
    return *answer_p ? 0 : -1;
}

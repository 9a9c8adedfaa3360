/*  =========================================================================
    parleyctl - the operator's tool: users, rooms, who is online, the
    plugins that serve, and backups, asked of a running broker

    parleyctl --broker ENDPOINT [--curve-cert FILE --curve-broker FILE]
              [--json] [--timeout MS] COMMAND [ARGUMENTS]

    It is an admin peer of the broker (proto/ENVELOPE.md, "Admin peers"):
    over tcp:// it proves who it is with its own CURVE certificate, which
    the operator allows like any peer's (parley-keygen --allow); over
    ipc:// the socket file's mode 0600 is the credential. It says hello
    with kind "admin", sends admin.* requests (which the broker takes from
    no gateway and no plugin), prints the answers, and says bye.

    Exit codes: 0 done; 1 the server refused (no such user, a bad value);
    2 a usage error; 3 the broker or a service could not be reached, or
    did not answer in time.
    =========================================================================
*/

#include "pl_curve.h"
#include "pl_envelope.h"
#include "pl_transcode.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CTL_EXIT_OK             0
#define CTL_EXIT_REFUSED        1
#define CTL_EXIT_USAGE          2
#define CTL_EXIT_UNREACHABLE    3

#define CTL_TIMEOUT_DEFAULT     10000   //  ms for the broker to welcome us, and per answer
#define CTL_PAGE                1000    //  entries asked per page of a list
#define CTL_POLL_MS             200     //  between two questions about a running backup

typedef struct {
    const char *endpoint;           //  the broker's
    const char *curve_cert;         //  ours, with FILE_secret beside it
    const char *curve_broker;       //  the broker's public certificate
    bool json;                      //  answers as JSON, one document
    int timeout_ms;
} ctl_options_t;

typedef struct {
    ctl_options_t options;
    zsock_t *dealer;                //  our one socket to the broker
    pl_curve_t *curve;              //  our keys, for tcp://
    uint64_t next_rid;
} ctl_t;

//  One answer: the error (code, message) or the body, unpacked
typedef struct {
    char *code;                     //  NULL for ok
    char *message;
    msgpack_unpacked body;          //  a map for ok (empty map when none came)
    bool has_body;
    zframe_t *frame;                //  the bytes body points into
} ctl_answer_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: parleyctl --broker ENDPOINT [--curve-cert FILE --curve-broker FILE]\n"
        "                 [--json] [--timeout MS] COMMAND [ARGUMENTS]\n"
        "Asks a running Parley broker, as an operator (an admin peer).\n"
        "\n"
        "Commands:\n"
        "  users list                       every account, with its state\n"
        "  users disable USER               no more logins or resumes; its sessions logged out\n"
        "  users enable USER                a disabled account may log in again\n"
        "  users delete USER                account gone, tokens revoked, sessions logged\n"
        "                                   out; the name stays reserved\n"
        "  users reset-password USER [--password PASSWORD]\n"
        "                                   sets the password given, or a generated one\n"
        "                                   (printed), and revokes every token\n"
        "  rooms list                       every room, public and private\n"
        "  rooms delete ROOM                deletes it; its members are told\n"
        "  rooms kick ROOM USER             removes USER from ROOM (a leave in its timeline)\n"
        "  who                              users online and their sessions\n"
        "  plugins                          plugins serving (instances, routes), gateways\n"
        "  backup FILE                      a consistent copy of the SQLite store, made while\n"
        "                                   it serves; FILE is a path on the store's machine\n"
        "\n"
        "  --broker ENDPOINT    tcp://HOST:PORT (with keys) or ipc://PATH; default\n"
        "                       $PARLEY_BROKER\n"
        "  --curve-cert FILE    this tool's certificate (parley-keygen FILE, allowed in the\n"
        "                       broker's --curve-allow folder)\n"
        "  --curve-broker FILE  the broker's public certificate\n"
        "  --json               print the answer as one JSON document\n"
        "  --timeout MS         how long to wait for the broker and each answer (%d)\n"
        "  --help               this text\n"
        "\n"
        "Exit codes: 0 done, 1 refused by the server, 2 usage, 3 broker or service\n"
        "unreachable or silent.\n", CTL_TIMEOUT_DEFAULT);
}


//  --------------------------------------------------------------------------
//  Answers

static void
s_answer_free (ctl_answer_t *answer)
{
    free (answer->code);
    free (answer->message);
    if (answer->has_body)
        msgpack_unpacked_destroy (&answer->body);
    zframe_destroy (&answer->frame);
    memset (answer, 0, sizeof *answer);
}

//  Takes the reply envelope's error or body into answer
static void
s_answer_take (ctl_answer_t *answer, pl_envelope_t *reply)
{
    memset (answer, 0, sizeof *answer);
    if (pl_envelope_code (reply)) {
        answer->code = strdup (pl_envelope_code (reply));
        answer->message = strdup (pl_envelope_message (reply) ? pl_envelope_message (reply)
                                                               : "");
        return;
    }
    zframe_t *body = pl_envelope_body (reply);
    answer->frame = body ? zframe_dup (body) : zframe_new ("\x80", 1);
    msgpack_unpacked_init (&answer->body);
    answer->has_body = true;
    if (msgpack_unpack_next (&answer->body, (const char *) zframe_data (answer->frame),
                             zframe_size (answer->frame), NULL) != MSGPACK_UNPACK_SUCCESS
    ||  answer->body.data.type != MSGPACK_OBJECT_MAP) {
        answer->code = strdup ("internal");
        answer->message = strdup ("The answer's fields are not a map.");
    }
}

//  A field of an ok answer's map, or NULL
static const msgpack_object *
s_field (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t length = strlen (key);
    for (uint32_t index = 0; index < map->via.map.size; index++) {
        const msgpack_object *name = &map->via.map.ptr [index].key;
        if (name->type == MSGPACK_OBJECT_STR && name->via.str.size == length
        &&  memcmp (name->via.str.ptr, key, length) == 0)
            return &map->via.map.ptr [index].val;
    }
    return NULL;
}

//  A string field into text (bounded), "" when absent or not a string
static const char *
s_text (const msgpack_object *map, const char *key, char *text, size_t size)
{
    const msgpack_object *value = s_field (map, key);
    if (value && value->type == MSGPACK_OBJECT_STR)
        snprintf (text, size, "%.*s", (int) value->via.str.size, value->via.str.ptr);
    else
        *text = 0;
    return text;
}

static int64_t
s_int (const msgpack_object *map, const char *key)
{
    const msgpack_object *value = s_field (map, key);
    if (value && value->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t) value->via.u64;
    if (value && value->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return value->via.i64;
    return 0;
}

static bool
s_bool (const msgpack_object *map, const char *key)
{
    const msgpack_object *value = s_field (map, key);
    return value && value->type == MSGPACK_OBJECT_BOOLEAN && value->via.boolean;
}

//  A time field (ms since 1970) as "2026-12-05 13:50", or "-" for none
static const char *
s_time (const msgpack_object *map, const char *key, char *text, size_t size)
{
    const msgpack_object *value = s_field (map, key);
    if (!value || value->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf (text, size, "-");
        return text;
    }
    time_t seconds = (time_t) (value->via.u64 / 1000);
    struct tm when;
    gmtime_r (&seconds, &when);
    strftime (text, size, "%Y-%m-%d %H:%M", &when);
    return text;
}

//  Prints the msgpack map in buffer as JSON on stdout
static int
s_print_json (const char *data, size_t size)
{
    size_t json_size = 0;
    uint8_t *json = pl_transcode_frame (NULL, NULL, 0, (const uint8_t *) data, size, 0,
                                        &json_size);
    if (!json)
        return -1;
    fwrite (json, 1, json_size, stdout);
    fputc ('\n', stdout);
    free (json);
    return 0;
}

//  An error answer: on stderr (and as JSON with --json); the exit code
static int
s_refused (ctl_t *self, const ctl_answer_t *answer)
{
    if (self->options.json) {
        size_t size = 0;
        uint8_t *json = pl_transcode_error (NULL, 0, answer->code, answer->message, 0, &size);
        if (json)
            printf ("%.*s\n", (int) size, (const char *) json);
        free (json);
    }
    fprintf (stderr, "parleyctl: %s (%s)\n", answer->message, answer->code);
    bool unreachable = strcmp (answer->code, "unavailable") == 0
                    || strcmp (answer->code, "internal") == 0;
    return unreachable ? CTL_EXIT_UNREACHABLE : CTL_EXIT_REFUSED;
}


//  --------------------------------------------------------------------------
//  The broker

static int
s_send (ctl_t *self, pl_envelope_t **envelope_p)
{
    int rc = pl_envelope_send (envelope_p, zsock_resolve (self->dealer));
    pl_envelope_destroy (envelope_p);
    return rc;
}

//  Waits for the next envelope of op (or a refusal, or WHO) within the
//  timeout; heartbeats are skipped. Returns it (caller owns it) or NULL.
static pl_envelope_t *
s_wait (ctl_t *self, pl_op_t op, uint64_t rid)
{
    int64_t deadline = zclock_mono () + self->options.timeout_ms;
    zpoller_t *poller = zpoller_new (self->dealer, NULL);
    pl_envelope_t *found = NULL;
    while (poller && !found && zclock_mono () < deadline) {
        if (!zpoller_wait (poller, (int) (deadline - zclock_mono ())))
            break;
        pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (self->dealer));
        pl_op_t got = envelope ? pl_envelope_op (envelope) : PL_OP_INVALID;
        if (got == PL_OP_HEARTBEAT) {
            pl_envelope_t *beat = pl_envelope_new (PL_OP_HEARTBEAT);
            if (beat)
                s_send (self, &beat);
        }
        if ((got == op && (op != PL_OP_REPLY || pl_envelope_rid (envelope) == rid))
        ||  got == PL_OP_REFUSE || got == PL_OP_WHO)
            found = envelope;
        else
            pl_envelope_destroy (&envelope);
    }
    zpoller_destroy (&poller);
    return found;
}

//  Connects and says hello. Returns 0, or an exit code after saying why.
static int
s_connect (ctl_t *self)
{
    char error [256] = "";
    if (self->options.curve_cert || self->options.curve_broker) {
        self->curve = pl_curve_peer_new (self->options.curve_cert, self->options.curve_broker,
                                         error, sizeof error);
        if (!self->curve) {
            fprintf (stderr, "parleyctl: %s\n", error);
            return CTL_EXIT_USAGE;
        }
    }
    else
    if (pl_curve_endpoint_needs_keys (self->options.endpoint))
        fprintf (stderr, "parleyctl: no --curve-cert: a broker with keys will not answer\n");
    self->dealer = zsock_new (ZMQ_DEALER);
    if (!self->dealer)
        return CTL_EXIT_UNREACHABLE;
    zsock_set_linger (self->dealer, 200);
    pl_curve_apply (self->curve, self->dealer, self->options.endpoint);
    if (zsock_connect (self->dealer, "%s", self->options.endpoint)) {
        fprintf (stderr, "parleyctl: cannot connect to %s\n", self->options.endpoint);
        return CTL_EXIT_USAGE;
    }
    char host [HOST_NAME_MAX + 1] = "localhost";
    gethostname (host, sizeof host);
    host [HOST_NAME_MAX] = 0;
    char instance [HOST_NAME_MAX + 64];
    snprintf (instance, sizeof instance, "parleyctl@%s:%d", host, (int) getpid ());
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    if (!hello)
        return CTL_EXIT_UNREACHABLE;
    pl_envelope_set_kind (hello, "admin");
    pl_envelope_set_name (hello, "parleyctl");
    pl_envelope_set_instance (hello, instance);
    pl_envelope_set_heartbeat (hello, (uint32_t) self->options.timeout_ms);
    s_send (self, &hello);
    pl_envelope_t *welcome = s_wait (self, PL_OP_WELCOME, 0);
    int rc = CTL_EXIT_OK;
    if (!welcome) {
        fprintf (stderr, "parleyctl: the broker at %s did not answer within %d ms (is it "
                 "running? over tcp://, is this tool's key in its --curve-allow folder?)\n",
                 self->options.endpoint, self->options.timeout_ms);
        rc = CTL_EXIT_UNREACHABLE;
    }
    else
    if (pl_envelope_op (welcome) != PL_OP_WELCOME) {
        fprintf (stderr, "parleyctl: the broker refused us: %s\n",
                 pl_envelope_message (welcome) ? pl_envelope_message (welcome) : "(no reason)");
        rc = CTL_EXIT_UNREACHABLE;
    }
    pl_envelope_destroy (&welcome);
    return rc;
}

//  Sends one request and waits for its answer. Returns 0 with answer set
//  (ok or error), or an exit code after saying why there is none.
static int
s_call (ctl_t *self, const char *type, msgpack_sbuffer *body, ctl_answer_t *answer)
{
    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    if (!request)
        return CTL_EXIT_UNREACHABLE;
    uint64_t rid = ++self->next_rid;
    pl_envelope_set_rid (request, rid);
    pl_envelope_set_type (request, type);
    if (body && body->size)
        pl_envelope_set_body_copy (request, body->data, body->size);
    else
        pl_envelope_set_body_copy (request, "\x80", 1);
    if (s_send (self, &request))
        return CTL_EXIT_UNREACHABLE;
    pl_envelope_t *reply = s_wait (self, PL_OP_REPLY, rid);
    if (!reply || pl_envelope_op (reply) != PL_OP_REPLY) {
        fprintf (stderr, "parleyctl: %s: %s\n", type,
                 reply ? "the broker restarted meanwhile; try again"
                       : "no answer in time (the broker's request timeout passed?)");
        pl_envelope_destroy (&reply);
        return CTL_EXIT_UNREACHABLE;
    }
    s_answer_take (answer, reply);
    pl_envelope_destroy (&reply);
    return 0;
}

static void
s_disconnect (ctl_t *self)
{
    if (self->dealer) {
        pl_envelope_t *bye = pl_envelope_new (PL_OP_BYE);
        if (bye)
            s_send (self, &bye);
    }
    zsock_destroy (&self->dealer);
    pl_curve_destroy (&self->curve);
}


//  --------------------------------------------------------------------------
//  Requests' bodies

//  A map of string fields: key, value pairs ending with a NULL key; a NULL
//  value leaves its key out
static void
s_body (msgpack_sbuffer *buffer, ...)
{
    const char *pairs [16];
    size_t count = 0;
    va_list args;
    va_start (args, buffer);
    const char *key;
    while ((key = va_arg (args, const char *)) && count < 16) {
        const char *value = va_arg (args, const char *);
        if (value) {
            pairs [count++] = key;
            pairs [count++] = value;
        }
    }
    va_end (args);
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    msgpack_pack_map (&packer, count / 2);
    for (size_t index = 0; index < count; index++) {
        msgpack_pack_str (&packer, strlen (pairs [index]));
        msgpack_pack_str_body (&packer, pairs [index], strlen (pairs [index]));
    }
}


//  --------------------------------------------------------------------------
//  Printing

typedef void (ctl_print_fn) (const msgpack_object *answer);

static const msgpack_object *
s_items (const msgpack_object *answer, const char *key, uint32_t *count_p)
{
    const msgpack_object *items = s_field (answer, key);
    *count_p = items && items->type == MSGPACK_OBJECT_ARRAY ? items->via.array.size : 0;
    return *count_p ? items->via.array.ptr : NULL;
}

static void
s_print_users (const msgpack_object *answer)
{
    uint32_t count;
    const msgpack_object *users = s_items (answer, "users", &count);
    printf ("%-32s %-9s %-17s %s\n", "USER", "STATE", "CREATED", "LAST SEEN");
    for (uint32_t index = 0; index < count; index++) {
        char name [300], state [32], created [32], seen [32];
        printf ("%-32s %-9s %-17s %s\n", s_text (&users [index], "name", name, sizeof name),
                *s_text (&users [index], "state", state, sizeof state) ? state : "active",
                s_time (&users [index], "created_at", created, sizeof created),
                s_time (&users [index], "last_seen", seen, sizeof seen));
    }
    printf ("%u user%s\n", count, count == 1 ? "" : "s");
}

static void
s_print_rooms (const msgpack_object *answer)
{
    uint32_t count;
    const msgpack_object *rooms = s_items (answer, "rooms", &count);
    printf ("%-24s %-8s %7s %7s %-20s %s\n", "ROOM", "ACCESS", "MEMBERS", "LAST", "OWNER",
            "CREATED");
    for (uint32_t index = 0; index < count; index++) {
        char name [128], owner [300], created [32];
        printf ("%-24s %-8s %7" PRId64 " %7" PRId64 " %-20s %s\n",
                s_text (&rooms [index], "name", name, sizeof name),
                s_bool (&rooms [index], "private") ? "private" : "public",
                s_int (&rooms [index], "members"), s_int (&rooms [index], "last_seq"),
                s_text (&rooms [index], "owner", owner, sizeof owner),
                s_time (&rooms [index], "created_at", created, sizeof created));
    }
    printf ("%u room%s\n", count, count == 1 ? "" : "s");
}

static void
s_print_online (const msgpack_object *answer)
{
    uint32_t count;
    const msgpack_object *users = s_items (answer, "users", &count);
    int64_t sessions = 0;
    printf ("%-32s %s\n", "USER", "SESSIONS");
    for (uint32_t index = 0; index < count; index++) {
        char name [300];
        printf ("%-32s %" PRId64 "\n", s_text (&users [index], "name", name, sizeof name),
                s_int (&users [index], "sessions"));
        sessions += s_int (&users [index], "sessions");
    }
    printf ("%u user%s online, %" PRId64 " session%s\n", count, count == 1 ? "" : "s",
            sessions, sessions == 1 ? "" : "s");
}

//  One peer's routes, space separated, into text
static const char *
s_routes (const msgpack_object *peer, char *text, size_t size)
{
    const msgpack_object *routes = s_field (peer, "routes");
    size_t used = 0;
    *text = 0;
    for (uint32_t index = 0; routes && routes->type == MSGPACK_OBJECT_ARRAY
                             && index < routes->via.array.size && used < size; index++) {
        const msgpack_object *route = &routes->via.array.ptr [index];
        if (route->type == MSGPACK_OBJECT_STR)
            used += (size_t) snprintf (text + used, size - used, "%s%.*s", used ? " " : "",
                                       (int) route->via.str.size, route->via.str.ptr);
    }
    return text;
}

//  Plugins by name (the broker sorts peers by kind, name, instance), then
//  gateways and admin peers
static void
s_print_plugins (const msgpack_object *answer)
{
    uint32_t count;
    const msgpack_object *peers = s_items (answer, "peers", &count);
    printf ("%-8s %-16s %-9s %s\n", "KIND", "NAME", "INSTANCES", "ROUTES / SESSIONS");
    for (uint32_t index = 0; index < count; ) {
        char kind [32], name [300], next [300], routes [512];
        s_text (&peers [index], "kind", kind, sizeof kind);
        s_text (&peers [index], "name", name, sizeof name);
        uint32_t same = index + 1;
        int64_t sessions = s_int (&peers [index], "sessions");
        while (same < count && strcmp (s_text (&peers [same], "name", next, sizeof next),
                                       name) == 0) {
            sessions += s_int (&peers [same], "sessions");
            same++;
        }
        if (strcmp (kind, "plugin") == 0)
            printf ("%-8s %-16s %-9u %s\n", kind, name, same - index,
                    s_routes (&peers [index], routes, sizeof routes));
        else
            printf ("%-8s %-16s %-9u %" PRId64 " session%s\n", kind, name, same - index,
                    sessions, sessions == 1 ? "" : "s");
        index = same;
    }
}

//  An ok answer: JSON, or the printer's text
static void
s_print (ctl_t *self, const msgpack_object *answer, const char *data, size_t size,
         ctl_print_fn *print)
{
    if (self->options.json)
        s_print_json (data, size);
    else
        print (answer);
}


//  --------------------------------------------------------------------------
//  Commands

//  One request, its answer printed. Returns the exit code.
static int
s_one (ctl_t *self, const char *type, msgpack_sbuffer *body, ctl_print_fn *print)
{
    ctl_answer_t answer;
    int rc = s_call (self, type, body, &answer);
    if (rc)
        return rc;
    if (answer.code)
        rc = s_refused (self, &answer);
    else
        s_print (self, &answer.body.data, (const char *) zframe_data (answer.frame),
                 zframe_size (answer.frame), print);
    s_answer_free (&answer);
    return rc;
}

//  Appends the page's items (packed) to items; sets *last to the last one's
//  name. Returns how many.
static uint32_t
s_page_take (const msgpack_object *answer, const char *key, msgpack_packer *items,
             char *last, size_t last_size)
{
    uint32_t count;
    const msgpack_object *page = s_items (answer, key, &count);
    for (uint32_t index = 0; index < count; index++) {
        msgpack_pack_object (items, page [index]);
        s_text (&page [index], "name", last, last_size);
    }
    return count;
}

//  A paged list: asks with after = the last name until more is false,
//  then prints every item as one answer {key: [...]}
static int
s_list (ctl_t *self, const char *type, const char *key, ctl_print_fn *print)
{
    msgpack_sbuffer items;
    msgpack_sbuffer_init (&items);
    msgpack_packer packer;
    msgpack_packer_init (&packer, &items, msgpack_sbuffer_write);
    char last [512] = "";
    uint32_t total = 0;
    bool more = true;
    int rc = 0;
    while (more && rc == 0) {
        msgpack_sbuffer body;
        msgpack_sbuffer_init (&body);
        s_body (&body, "after", *last ? last : NULL, NULL);
        ctl_answer_t answer;
        rc = s_call (self, type, &body, &answer);
        msgpack_sbuffer_destroy (&body);
        if (rc)
            break;
        if (answer.code)
            rc = s_refused (self, &answer);
        else {
            uint32_t taken = s_page_take (&answer.body.data, key, &packer, last, sizeof last);
            total += taken;
            more = s_bool (&answer.body.data, "more") && taken > 0;
        }
        s_answer_free (&answer);
    }
    if (rc == 0) {
        msgpack_sbuffer whole;
        msgpack_sbuffer_init (&whole);
        msgpack_packer outer;
        msgpack_packer_init (&outer, &whole, msgpack_sbuffer_write);
        msgpack_pack_map (&outer, 1);
        msgpack_pack_str (&outer, strlen (key));
        msgpack_pack_str_body (&outer, key, strlen (key));
        msgpack_pack_array (&outer, total);
        msgpack_sbuffer_write (&whole, items.data, items.size);
        msgpack_unpacked unpacked;
        msgpack_unpacked_init (&unpacked);
        if (msgpack_unpack_next (&unpacked, whole.data, whole.size, NULL)
                == MSGPACK_UNPACK_SUCCESS)
            s_print (self, &unpacked.data, whole.data, whole.size, print);
        msgpack_unpacked_destroy (&unpacked);
        msgpack_sbuffer_destroy (&whole);
    }
    msgpack_sbuffer_destroy (&items);
    return rc;
}

static void
s_print_user_action (const msgpack_object *answer)
{
    char user [300], state [32], password [256];
    s_text (answer, "user", user, sizeof user);
    s_text (answer, "state", state, sizeof state);
    int64_t sessions = s_int (answer, "sessions"), tokens = s_int (answer, "tokens");
    if (*s_text (answer, "password", password, sizeof password))
        printf ("new password of %s: %s\n", user, password);
    printf ("%s: %s; %" PRId64 " session%s logged out, %" PRId64 " token%s revoked\n", user,
            *state ? state : "password reset", sessions, sessions == 1 ? "" : "s", tokens,
            tokens == 1 ? "" : "s");
}

static void
s_print_room_action (const msgpack_object *answer)
{
    char room [128], user [300];
    s_text (answer, "room", room, sizeof room);
    if (*s_text (answer, "user", user, sizeof user))
        printf ("%s removed from the room %s\n", user, room);
    else
        printf ("room %s deleted; %" PRId64 " member%s told\n", room, s_int (answer, "members"),
                s_int (answer, "members") == 1 ? "" : "s");
}

static void
s_print_backup (const msgpack_object *answer)
{
    char path [4096], integrity [64];
    printf ("backup written to %s: %" PRId64 " bytes, %" PRId64 " pages, integrity_check %s\n",
            s_text (answer, "path", path, sizeof path), s_int (answer, "bytes"),
            s_int (answer, "pages"), s_text (answer, "integrity", integrity, sizeof integrity));
}

//  Asks how the backup goes until it is done or failed; prints the end
static int
s_backup_wait (ctl_t *self)
{
    while (true) {
        ctl_answer_t answer;
        int rc = s_call (self, "admin.store.backup_status", NULL, &answer);
        if (rc)
            return rc;
        char state [32];
        s_text (&answer.body.data, "state", state, sizeof state);
        if (!answer.code && strcmp (state, "running") == 0) {
            s_answer_free (&answer);
            zclock_sleep (CTL_POLL_MS);
            continue;
        }
        if (answer.code)
            rc = s_refused (self, &answer);
        else
        if (strcmp (state, "done") == 0)
            s_print (self, &answer.body.data, (const char *) zframe_data (answer.frame),
                     zframe_size (answer.frame), s_print_backup);
        else {
            char error [512];
            if (self->options.json)
                s_print_json ((const char *) zframe_data (answer.frame),
                              zframe_size (answer.frame));
            fprintf (stderr, "parleyctl: the backup failed: %s\n",
                     s_text (&answer.body.data, "error", error, sizeof error));
            rc = CTL_EXIT_REFUSED;
        }
        s_answer_free (&answer);
        return rc;
    }
}

//  backup FILE: FILE made absolute here (the store resolves nothing)
static int
s_backup (ctl_t *self, const char *file)
{
    char *path = NULL;
    if (*file == '/')
        path = strdup (file);
    else {
        char folder [PATH_MAX];
        if (getcwd (folder, sizeof folder))
            path = zsys_sprintf ("%s/%s", folder, file);
    }
    if (!path)
        return CTL_EXIT_USAGE;
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    s_body (&body, "path", path, NULL);
    ctl_answer_t answer;
    int rc = s_call (self, "admin.store.backup", &body, &answer);
    msgpack_sbuffer_destroy (&body);
    free (path);
    if (rc)
        return rc;
    rc = answer.code ? s_refused (self, &answer) : 0;
    s_answer_free (&answer);
    return rc ? rc : s_backup_wait (self);
}

//  One request of string fields (key, value pairs, NULL-ended), printed
static int
s_action (ctl_t *self, const char *type, ctl_print_fn *print, const char *key1,
          const char *value1, const char *key2, const char *value2)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    s_body (&body, key1, value1, key2, value2, NULL);
    int rc = s_one (self, type, &body, print);
    msgpack_sbuffer_destroy (&body);
    return rc;
}

static int
s_users (ctl_t *self, int argc, char **argv)
{
    const char *verb = argc > 0 ? argv [0] : "";
    const char *user = argc > 1 ? argv [1] : NULL;
    if (streq (verb, "list") && argc == 1)
        return s_list (self, "admin.users.list", "users", s_print_users);
    if ((streq (verb, "disable") || streq (verb, "enable") || streq (verb, "delete"))
    &&  argc == 2) {
        char type [64];
        snprintf (type, sizeof type, "admin.users.%s", verb);
        return s_action (self, type, s_print_user_action, "user", user, NULL, NULL);
    }
    if (streq (verb, "reset-password") && (argc == 2
    ||  (argc == 4 && streq (argv [2], "--password"))))
        return s_action (self, "admin.users.reset_password", s_print_user_action,
                         "user", user, "password", argc == 4 ? argv [3] : NULL);
    return -1;
}

static int
s_rooms (ctl_t *self, int argc, char **argv)
{
    const char *verb = argc > 0 ? argv [0] : "";
    if (streq (verb, "list") && argc == 1)
        return s_list (self, "admin.rooms.list", "rooms", s_print_rooms);
    if (streq (verb, "delete") && argc == 2)
        return s_action (self, "admin.rooms.delete", s_print_room_action,
                         "room", argv [1], NULL, NULL);
    if (streq (verb, "kick") && argc == 3)
        return s_action (self, "admin.rooms.kick", s_print_room_action,
                         "room", argv [1], "user", argv [2]);
    return -1;
}

//  Runs the command; -1 when it is not one
static int
s_command (ctl_t *self, int argc, char **argv)
{
    const char *command = argv [0];
    if (streq (command, "users"))
        return s_users (self, argc - 1, argv + 1);
    if (streq (command, "rooms"))
        return s_rooms (self, argc - 1, argv + 1);
    if (streq (command, "who") && argc == 1)
        return s_list (self, "admin.online", "users", s_print_online);
    if (streq (command, "plugins") && argc == 1)
        return s_one (self, "admin.plugins", NULL, s_print_plugins);
    if (streq (command, "backup") && argc == 2)
        return s_backup (self, argv [1]);
    return -1;
}

//  True when argv holds a command s_command knows, by its shape alone, so
//  that a usage error never needs the broker
static bool
s_command_known (int argc, char **argv)
{
    static const char *const shapes [] = {
        "users list", "users disable ?", "users enable ?", "users delete ?",
        "users reset-password ?", "users reset-password ? --password ?", "rooms list",
        "rooms delete ?", "rooms kick ? ?", "who", "plugins", "backup ?", NULL
    };
    for (int shape = 0; shapes [shape]; shape++) {
        char words [64];
        snprintf (words, sizeof words, "%s", shapes [shape]);
        int index = 0;
        bool match = true;
        for (char *word = strtok (words, " "); word && match; word = strtok (NULL, " ")) {
            match = index < argc && (streq (word, "?") || streq (word, argv [index]));
            index++;
        }
        if (match && index == argc)
            return true;
    }
    return false;
}

static int
s_parse (int argc, char **argv, ctl_options_t *options)
{
    static const struct option longs [] = {
        { "broker", required_argument, NULL, 'b' },
        { "curve-cert", required_argument, NULL, 'c' },
        { "curve-broker", required_argument, NULL, 'k' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    *options = (ctl_options_t) { .endpoint = getenv ("PARLEY_BROKER"),
                                 .timeout_ms = CTL_TIMEOUT_DEFAULT };
    int option;
    //  '+': options stop at the command, so that its own (--password) stay
    while ((option = getopt_long (argc, argv, "+", longs, NULL)) != -1) {
        if (option == 'b') options->endpoint = optarg;
        else if (option == 'c') options->curve_cert = optarg;
        else if (option == 'k') options->curve_broker = optarg;
        else if (option == 'j') options->json = true;
        else if (option == 't') options->timeout_ms = atoi (optarg);
        else if (option == 'h') { s_usage (stdout); exit (CTL_EXIT_OK); }
        else return -1;
    }
    if (!options->endpoint || !*options->endpoint) {
        fprintf (stderr, "parleyctl: give the broker's endpoint: --broker ENDPOINT\n");
        return -1;
    }
    if (options->timeout_ms < 1 || options->timeout_ms > 3600000) {
        fprintf (stderr, "parleyctl: --timeout is 1 to 3600000 ms\n");
        return -1;
    }
    if (optind >= argc || !s_command_known (argc - optind, argv + optind)) {
        fprintf (stderr, "parleyctl: %s%s\n", optind < argc ? "not a command: " : "no command",
                 optind < argc ? argv [optind] : "");
        return -1;
    }
    return 0;
}

int
main (int argc, char **argv)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    ctl_t self = { .next_rid = 0 };
    if (s_parse (argc, argv, &self.options)) {
        fprintf (stderr, "Try parleyctl --help.\n");
        return CTL_EXIT_USAGE;
    }
    int rc = s_connect (&self);
    if (rc == CTL_EXIT_OK)
        rc = s_command (&self, argc - optind, argv + optind);
    s_disconnect (&self);
    return rc < 0 ? CTL_EXIT_USAGE : rc;
}

/*  =========================================================================
    br_host - runs one plugin instance: loads the .so, connects to a broker

    One actor per plugin instance. Everything the plugin sees happens on the
    actor's thread: its init, every callback, every host function it calls,
    its timers and its destroy. The plugin never sees ZeroMQ; the actor owns
    one DEALER connected to the broker and speaks proto/ENVELOPE.md on it.

    The actor's loop is a plain zmq_poll over the pipe, the DEALER and the
    wake pipe (host->wake, the one function the plugin's own threads call),
    whose timeout is the nearest of: the next plugin timer, the next
    heartbeat to send, the moment the broker counts as silent, and the next
    call deadline.
    =========================================================================
*/

#include "br_host.h"
#include "br_broker.h"
#include "pl_brokers.h"
#include "pl_envelope.h"
#include "pl_lag.h"
#include "pl_log.h"
#include "pl_stats.h"
#include "pl_thread.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const parley_abi_t br_host_supported_abi [] = {
    { 1, PARLEY_ABI_MINOR }
};
const size_t br_host_supported_abi_count
    = sizeof br_host_supported_abi / sizeof br_host_supported_abi [0];

//  The fields of a 1.0 descriptor, through on_session: a smaller one was
//  built against a header this host never knew
#define S_DESCRIPTOR_MIN_SIZE \
    (offsetof (parley_plugin_t, on_session) + sizeof (((parley_plugin_t *) 0)->on_session))

//  A broker that says nothing for this many heartbeats is dead
#define S_LIVENESS              3
//  Most messages handled before looking at the pipe and timers again
#define S_BATCH_MAX             1024
//  Bounded queues both ways: a stuck broker costs memory up to here, no more
#define S_SOCKET_HWM            10000
//  Time ZeroMQ keeps trying to deliver our BYE after the socket is closed
#define S_LINGER_MS             100
//  How soon a hello that found no connection is tried again
#define S_HELLO_RETRY_MS        100
//  The shortest timer interval: a 0 would spin the actor
#define S_TIMER_MIN_MS          1
//  retry_after_ms of a request whose time was gone when it came: at least
//  this, else the time it waited for us (we are that far behind), at most
//  the ceiling
#define S_EXPIRED_RETRY_MIN_MS  100
#define S_EXPIRED_RETRY_MAX_MS  10000
//  Types whose oversized replies or events were logged, at most: past that
//  every one is logged again (a bug that varied that much deserves it)
#define S_OVERSIZED_TYPES_MAX   256

//  Instances in this process, for unique instance names
static atomic_uint s_instance_count;

//  A plugin's request, lent to it until it replies
struct parley_request_s {
    pl_envelope_t *envelope;        //  owned: the REQUEST as received
    void *handle;                   //  in the host's outstanding list
    uint64_t epoch;                 //  the registration it came through
    int64_t expires;                //  zclock_mono when its time is gone; 0 = no deadline
};

//  A host->call waiting for its REPLY
typedef struct {
    uint64_t rid;                   //  the rid we sent
    void *cookie;                   //  the plugin's, given back in on_reply
    int64_t deadline;               //  zclock_mono; answered unavailable after
    void *handle;                   //  in the host's call list
} s_call_t;

//  A plugin timer
typedef struct {
    int id;                         //  > 0, as returned by timer_add
    uint32_t interval;              //  msecs
    int64_t due;                    //  zclock_mono of the next run
    void (*handler) (void *state);  //  the plugin's
} s_timer_t;

//  Values the caller of br_host_start hands the actor and reads back.
//  Lives on the caller's stack until the actor has signalled.
typedef struct {
    const br_host_config_t *config; //  the caller's, read before signalling
    char *error;                    //  the caller's buffer, written on failure
    size_t error_size;
    bool started;                   //  true once the plugin is initialized
} s_start_t;

//  One plugin instance: the opaque parley_ctx_t the plugin is handed
struct parley_ctx_s {
    zsock_t *pipe;                  //  actor's pipe
    zsock_t *dealer;                //  to the broker
    char *plugin_path;              //  the .so we loaded
    pl_brokers_t *brokers;          //  the brokers we know (a standby pair: two)
    const char *endpoint;           //  the one we talk to now (in brokers)
    uint64_t epoch;                 //  counts our hellos: a request of an older
                                    //  registration is answered to nobody
    int64_t arrived;                //  zclock_mono when we moved to endpoint
    void *library;                  //  dlopen handle
    const parley_plugin_t *plugin;  //  the plugin's descriptor (its memory)
    parley_host_t host;             //  the table the plugin is given
    void *state;                    //  the plugin's state
    bool initialized;               //  init succeeded, destroy is owed
    char *instance;                 //  "name@hostname:pid:n"
    zhash_t *options;               //  KEY -> VALUE for this plugin's name
    zhashx_t *asked;                //  the KEYs the plugin asked host->option for
    bool options_refused;           //  an option it never asked for: not started
    uint32_t heartbeat;             //  msecs between our heartbeats
    uint32_t broker_heartbeat;      //  msecs, as the broker's welcome said
    uint32_t call_timeout;          //  msecs a call may wait for its reply
    bool verbose;                   //  debug lines are logged, not dropped
    bool welcomed;                  //  the broker accepted our hello
    bool refused;                   //  the broker refused us: serve no more
    bool terminated;                //  $TERM received
    int64_t last_sent;              //  zclock_mono of our last message out
    int64_t last_heard;             //  zclock_mono of the broker's last message
    pl_lag_t lag;                   //  how long the broker's messages waited for us
    int64_t handling_expires;       //  while on_request runs: its request's expires,
                                    //  which the calls it makes inherit
    int64_t next_hello;             //  zclock_mono of the next hello retry
    bool hello_unsent;              //  the last hello found no connection
    zlistx_t *requests;             //  parley_request_t * the plugin holds
    zlistx_t *calls;                //  s_call_t *, in deadline order
    zhashx_t *calls_by_rid;         //  "rid" -> s_call_t *
    uint64_t next_rid;              //  last rid used by a call
    zlistx_t *timers;               //  s_timer_t *
    int next_timer_id;              //  last id handed out
    zhashx_t *oversized;            //  types already logged for a body over the
                                    //  limit, and metric names refused
    int wake_pipe [2];              //  host->wake writes a byte, the loop reads
    atomic_bool wake_pending;       //  a byte is on its way: later wakes write none
    void (*on_wake) (void *state);  //  the descriptor's, when its minor has it
    void (*on_metrics) (void *state);   //  the descriptor's, when its minor has it
    pl_stats_t *stats;              //  while on_metrics runs: what host->metric
                                    //  collects; NULL otherwise
};

static void s_host_table_fill (parley_host_t *host);
static bool s_oversized (parley_ctx_t *self, const char *what, const char *type, size_t size,
                         const char *consequence);

//  A pipe whose two ends never block and are not inherited by a child.
//  Returns 0, or -1 (errno set; both ends closed).
static int
s_wake_pipe_open (int *ends)
{
    if (pipe (ends))
        return -1;
    for (int end = 0; end < 2; end++)
        if (fcntl (ends [end], F_SETFL, O_NONBLOCK) || fcntl (ends [end], F_SETFD, FD_CLOEXEC)) {
            int saved = errno;
            close (ends [0]);
            close (ends [1]);
            ends [0] = ends [1] = -1;
            errno = saved;
            return -1;
        }
    return 0;
}


//  --------------------------------------------------------------------------
//  Small helpers

static void
s_request_destroy (parley_request_t **self_p)
{
    assert (self_p);
    parley_request_t *self = *self_p;
    if (self) {
        pl_envelope_destroy (&self->envelope);
        free (self);
        *self_p = NULL;
    }
}

static void
s_call_destroy (s_call_t **self_p)
{
    assert (self_p);
    free (*self_p);
    *self_p = NULL;
}

//  Formats the ABI versions this host supports, "1 (1.0)", for messages
static void
s_format_supported (char *buffer, size_t size)
{
    size_t used = 0;
    buffer [0] = 0;
    for (size_t index = 0; index < br_host_supported_abi_count && used < size; index++) {
        int written = snprintf (buffer + used, size - used, "%s%" PRIu32 " (%" PRIu32 ".%" PRIu32 ")",
                                index ? ", " : "",
                                br_host_supported_abi [index].major,
                                br_host_supported_abi [index].major,
                                br_host_supported_abi [index].minor);
        if (written < 0)
            break;
        used += (size_t) written;
    }
}

static bool
s_abi_major_supported (uint32_t major)
{
    for (size_t index = 0; index < br_host_supported_abi_count; index++)
        if (br_host_supported_abi [index].major == major)
            return true;
    return false;
}

//  Sends and destroys the envelope, and remembers that we spoke
static int
s_send (parley_ctx_t *self, pl_envelope_t **envelope_p)
{
    int rc = pl_envelope_send (envelope_p, zsock_resolve (self->dealer));
    if (rc == 0)
        self->last_sent = zclock_mono ();
    return rc;
}


//  --------------------------------------------------------------------------
//  Loading: everything that can refuse a plugin, before the actor signals

//  Loads the .so and checks its descriptor. Returns 0, or -1 with a sentence
//  in error.
static int
s_host_load (parley_ctx_t *self, char *error, size_t error_size)
{
    //  RTLD_LOCAL: two plugins may carry the same symbol names (or different
    //  versions of one library) without one binding to the other's.
    //  RTLD_NOW: an unresolved symbol fails here, not at the first request.
    self->library = dlopen (self->plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (!self->library) {
        const char *reason = dlerror ();
        //  dlerror names the file already
        if (reason)
            snprintf (error, error_size, "cannot load plugin: %s", reason);
        else
            snprintf (error, error_size, "cannot load plugin %s", self->plugin_path);
        return -1;
    }
    dlerror ();
    parley_plugin_describe_fn *describe
        = (parley_plugin_describe_fn *) dlsym (self->library, PARLEY_PLUGIN_DESCRIBE_SYMBOL);
    if (!describe) {
        const char *reason = dlerror ();
        snprintf (error, error_size, "%s is not a Parley plugin: %s",
                  self->plugin_path, reason ? reason : "no " PARLEY_PLUGIN_DESCRIBE_SYMBOL);
        return -1;
    }
    const parley_plugin_t *plugin = describe (br_host_supported_abi, br_host_supported_abi_count);
    if (!plugin) {
        snprintf (error, error_size, "plugin %s returned no descriptor", self->plugin_path);
        return -1;
    }
    //  abi_major, abi_minor and size lead every descriptor of every ABI; the
    //  name follows them in ABI 1, and we read it only if it is there
    const char *name = "?";
    if (plugin->size >= offsetof (parley_plugin_t, name) + sizeof plugin->name && plugin->name)
        name = plugin->name;
    if (!s_abi_major_supported (plugin->abi_major)) {
        char supported [128];
        s_format_supported (supported, sizeof supported);
        snprintf (error, error_size,
                  "plugin '%s' (%s) was built for plugin ABI %" PRIu32 ".%" PRIu32
                  "; this host supports plugin ABI %s",
                  name, self->plugin_path, plugin->abi_major, plugin->abi_minor, supported);
        return -1;
    }
    if (plugin->size < S_DESCRIPTOR_MIN_SIZE) {
        snprintf (error, error_size,
                  "plugin '%s' (%s) has a descriptor of %" PRIu32 " bytes; ABI 1 needs at least %zu",
                  name, self->plugin_path, plugin->size, (size_t) S_DESCRIPTOR_MIN_SIZE);
        return -1;
    }
    const char *missing = !plugin->name? "name"
                        : !plugin->routes? "routes"
                        : !plugin->init? "init"
                        : !plugin->on_request? "on_request": NULL;
    if (missing) {
        snprintf (error, error_size, "plugin '%s' (%s) has no %s in its descriptor",
                  name, self->plugin_path, missing);
        return -1;
    }
    if (!plugin->routes [0].prefix) {
        snprintf (error, error_size, "plugin '%s' (%s) serves no routes", name, self->plugin_path);
        return -1;
    }
    self->plugin = plugin;
    //  A slot the plugin's minor did not have is reserved: NULL, or past
    //  its size
    if (plugin->abi_minor >= 2
    &&  plugin->size >= offsetof (parley_plugin_t, on_wake) + sizeof plugin->on_wake)
        self->on_wake = plugin->on_wake;
    if (plugin->abi_minor >= 4
    &&  plugin->size >= offsetof (parley_plugin_t, on_metrics) + sizeof plugin->on_metrics)
        self->on_metrics = plugin->on_metrics;
    return 0;
}

//  Keeps the options meant for this plugin: "NAME.KEY=VALUE" -> KEY, VALUE
static void
s_host_take_options (parley_ctx_t *self, const br_host_config_t *config)
{
    size_t name_length = strlen (self->plugin->name);
    for (size_t index = 0; index < config->option_count; index++) {
        const char *option = config->options [index];
        if (!option
        ||  strncmp (option, self->plugin->name, name_length) != 0
        ||  option [name_length] != '.')
            continue;
        const char *key = option + name_length + 1;
        const char *equals = strchr (key, '=');
        if (config->options_taken)
            config->options_taken [index] = true;
        if (!equals || equals == key)
            continue;
        char *key_copy = strndup (key, (size_t) (equals - key));
        if (key_copy) {
            //  autofree: the hash keeps its own copy of the value
            zhash_update (self->options, key_copy, (void *) (equals + 1));
            free (key_copy);
        }
    }
}

//  zlistx comparator for the sorted list of known keys
static int
s_compare_keys (const void *item1, const void *item2)
{
    return strcmp ((const char *) item1, (const char *) item2);
}

//  Every option given to this plugin must be one it asked for in its init:
//  a misspelt key would otherwise be ignored in silence. Returns 0, or -1
//  with a sentence naming the key and the keys the plugin knows.
static int
s_host_check_options (parley_ctx_t *self, char *error, size_t error_size)
{
    const char *unknown = NULL;
    for (const char *value = (const char *) zhash_first (self->options); value && !unknown;
         value = (const char *) zhash_next (self->options))
        if (!zhashx_lookup (self->asked, zhash_cursor (self->options)))
            unknown = zhash_cursor (self->options);
    if (!unknown)
        return 0;
    zlistx_t *keys = zhashx_keys (self->asked);
    assert (keys);
    zlistx_set_comparator (keys, s_compare_keys);
    zlistx_sort (keys);
    char known [768] = "";
    size_t used = 0;
    for (const char *key = (const char *) zlistx_first (keys); key && used < sizeof known;
         key = (const char *) zlistx_next (keys)) {
        int written = snprintf (known + used, sizeof known - used, "%s%s",
                                used ? ", " : "", key);
        if (written < 0)
            break;
        used += (size_t) written;
    }
    snprintf (error, error_size, "plugin '%s' (%s) has no option '%s' (--option %s.%s=...);"
              " %s%s", self->plugin->name, self->plugin_path, unknown, self->plugin->name,
              unknown, zlistx_size (keys) ? "its options are: " : "it takes no options",
              known);
    zlistx_destroy (&keys);
    return -1;
}

//  Creates the instance, loads the plugin and initializes it. Returns the
//  instance, or NULL with a sentence in error.
static parley_ctx_t *
s_host_new (zsock_t *pipe, const br_host_config_t *config, char *error, size_t error_size)
{
    parley_ctx_t *self = (parley_ctx_t *) zmalloc (sizeof (parley_ctx_t));
    assert (self);
    self->pipe = pipe;
    self->plugin_path = strdup (config->plugin_path);
    self->heartbeat = config->heartbeat_ms ? config->heartbeat_ms : BR_BROKER_HEARTBEAT_DEFAULT;
    self->verbose = config->verbose;
    self->broker_heartbeat = self->heartbeat;
    self->call_timeout = config->call_timeout_ms
                       ? config->call_timeout_ms : 2 * BR_BROKER_REQUEST_TIMEOUT_DEFAULT;
    self->options = zhash_new ();
    zhash_autofree (self->options);
    self->requests = zlistx_new ();
    self->calls = zlistx_new ();
    self->calls_by_rid = zhashx_new ();
    self->timers = zlistx_new ();
    self->oversized = zhashx_new ();
    self->asked = zhashx_new ();
    assert (self->asked);
    assert (self->plugin_path && self->options && self->requests
            && self->calls && self->calls_by_rid && self->timers && self->oversized);
    s_host_table_fill (&self->host);
    //  Before init: a plugin may start its threads there
    self->wake_pipe [0] = self->wake_pipe [1] = -1;
    if (s_wake_pipe_open (self->wake_pipe)) {
        snprintf (error, error_size, "plugin %s: cannot make its wake pipe: %s",
                  self->plugin_path, strerror (errno));
        return self;
    }
    char broker_error [256] = "";
    self->brokers = pl_brokers_new (config->endpoint, broker_error, sizeof broker_error);
    self->endpoint = self->brokers ? pl_brokers_current (self->brokers) : NULL;
    if (!self->brokers) {
        snprintf (error, error_size, "plugin %s: %s", config->plugin_path, broker_error);
        return self;
    }

    if (s_host_load (self, error, error_size))
        return self;            //  caller destroys: self->initialized is false

    s_host_take_options (self, config);
    char hostname [256] = "localhost";
    gethostname (hostname, sizeof hostname - 1);
    hostname [sizeof hostname - 1] = 0;
    self->instance = zsys_sprintf ("%s@%s:%d:%u", self->plugin->name, hostname,
                                   (int) getpid (), atomic_fetch_add (&s_instance_count, 1) + 1);
    assert (self->instance);

    self->dealer = zsock_new (ZMQ_DEALER);
    assert (self->dealer);
    zsock_set_sndhwm (self->dealer, S_SOCKET_HWM);
    zsock_set_rcvhwm (self->dealer, S_SOCKET_HWM);
    zsock_set_maxmsgsize (self->dealer, PL_ENVELOPE_MAX_HEADER + PL_ENVELOPE_MAX_BODY);
    zsock_set_linger (self->dealer, S_LINGER_MS);
    //  Queue only on a live connection: what we would send a broker that is
    //  down (hellos, heartbeats, replies to its forgotten rids) is worthless
    //  to the broker that comes back, and would arrive as a burst of stale
    //  registrations
    zsock_set_immediate (self->dealer, 1);
    pl_curve_apply (config->curve, self->dealer, self->endpoint);
    if (pl_brokers_connect (self->brokers, self->dealer)) {
        snprintf (error, error_size, "plugin '%s' (%s): cannot connect to broker at %s: %s",
                  self->plugin->name, self->plugin_path, self->endpoint, zmq_strerror (zmq_errno ()));
        return self;
    }
    if (self->plugin->init (self, &self->host, &self->state)) {
        snprintf (error, error_size, "plugin '%s' (%s) refused to start (see its log)",
                  self->plugin->name, self->plugin_path);
        return self;
    }
    self->initialized = true;
    if (s_host_check_options (self, error, error_size)) {
        self->options_refused = true;
        self->refused = true;   //  the broker never heard of us: no bye
    }
    return self;
}

//  Destroys the instance: the plugin first, then what it left us holding,
//  then the library and the socket
static void
s_host_destroy (parley_ctx_t **self_p)
{
    assert (self_p);
    parley_ctx_t *self = *self_p;
    if (!self)
        return;
    if (self->initialized && self->plugin->destroy)
        self->plugin->destroy (&self->state);

    //  The plugin may not touch requests after its destroy; those it still
    //  held are freed here, and the broker answers them unavailable
    parley_request_t *request = (parley_request_t *) zlistx_first (self->requests);
    while (request) {
        s_request_destroy (&request);
        request = (parley_request_t *) zlistx_next (self->requests);
    }
    zlistx_destroy (&self->requests);
    //  Calls still waiting are dropped: the plugin that made them is gone
    s_call_t *call = (s_call_t *) zlistx_first (self->calls);
    while (call) {
        s_call_destroy (&call);
        call = (s_call_t *) zlistx_next (self->calls);
    }
    zlistx_destroy (&self->calls);
    zhashx_destroy (&self->calls_by_rid);
    s_timer_t *timer = (s_timer_t *) zlistx_first (self->timers);
    while (timer) {
        free (timer);
        timer = (s_timer_t *) zlistx_next (self->timers);
    }
    zlistx_destroy (&self->timers);
    zhash_destroy (&self->options);
    zhashx_destroy (&self->oversized);
    zhashx_destroy (&self->asked);

    if (self->dealer && self->initialized && !self->refused) {
        //  Lets the broker drop our routes now rather than after 3 heartbeats
        pl_envelope_t *bye = pl_envelope_new (PL_OP_BYE);
        if (bye)
            s_send (self, &bye);
    }
    zsock_destroy (&self->dealer);
    //  The plugin's destroy has stopped its threads: nobody wakes us now
    for (int end = 0; end < 2; end++)
        if (self->wake_pipe [end] >= 0)
            close (self->wake_pipe [end]);
    if (self->library)
        dlclose (self->library);
    free (self->instance);
    free (self->plugin_path);
    pl_brokers_destroy (&self->brokers);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Talking to the broker

//  Answers a call that the broker took and never answered: unavailable,
//  and for a plugin of minor 3 or later {"outcome": "unknown"}, since the
//  call may have reached the callee, which may have done it
static void
s_call_lost (parley_ctx_t *self, void *cookie, const char *message)
{
    static const uint8_t unknown [] = { 0x81, 0xa7, 'o', 'u', 't', 'c', 'o', 'm', 'e',
                                        0xa7, 'u', 'n', 'k', 'n', 'o', 'w', 'n' };
    bool fields = self->plugin->abi_minor >= 3;
    if (self->plugin->on_reply)
        self->plugin->on_reply (self->state, cookie, "unavailable", message,
                                fields ? unknown : NULL, fields ? sizeof unknown : 0);
}

//  A new hello starts a new registration: the broker, or the other one of a
//  standby pair, answers nothing sent before it. Every call still waiting
//  gets unavailable now rather than at its deadline.
static void
s_host_new_epoch (parley_ctx_t *self)
{
    self->epoch++;
    //  Taken out first, answered after: an answer may make new calls
    zlistx_t *stale = zlistx_new ();
    assert (stale);
    s_call_t *call;
    while ((call = (s_call_t *) zlistx_first (self->calls))) {
        char key [24];
        snprintf (key, sizeof key, "%" PRIu64, call->rid);
        zhashx_delete (self->calls_by_rid, key);
        zlistx_delete (self->calls, call->handle);
        zlistx_add_end (stale, call);
    }
    bool answered = zlistx_size (stale) > 0;
    while ((call = (s_call_t *) zlistx_first (stale))) {
        zlistx_detach_cur (stale);
        void *cookie = call->cookie;
        s_call_destroy (&call);
        s_call_lost (self, cookie, "The broker was lost; the call may or may not have"
                                   " taken effect.");
    }
    zlistx_destroy (&stale);
    if (answered && self->plugin->on_batch_end)
        self->plugin->on_batch_end (self->state);
}

static void
s_host_send_hello (parley_ctx_t *self)
{
    pl_envelope_t *hello = pl_envelope_new (PL_OP_HELLO);
    if (!hello)
        return;
    s_host_new_epoch (self);
    pl_envelope_set_kind (hello, "plugin");
    pl_envelope_set_name (hello, self->plugin->name);
    pl_envelope_set_instance (hello, self->instance);
    pl_envelope_set_abi (hello, self->plugin->abi_major, self->plugin->abi_minor);
    pl_envelope_set_flags (hello, self->plugin->flags);
    pl_envelope_set_heartbeat (hello, self->heartbeat);
    for (const parley_route_t *route = self->plugin->routes; route->prefix; route++)
        pl_envelope_add_route (hello, route->prefix, route->flags, route->shard,
                               route->shard_field);
    //  With ZMQ_IMMEDIATE a hello finds no queue while the connection is
    //  down; we retry it soon rather than wait out the broker's silence
    self->hello_unsent = s_send (self, &hello) != 0;
    self->next_hello = zclock_mono ()
                     + (self->hello_unsent && self->heartbeat > S_HELLO_RETRY_MS
                        ? S_HELLO_RETRY_MS : self->heartbeat);
}

//  The broker counts as silent after this long without a word from it
static int64_t
s_host_silence_limit (parley_ctx_t *self)
{
    uint32_t heartbeat = self->broker_heartbeat > self->heartbeat
                       ? self->broker_heartbeat : self->heartbeat;
    return (int64_t) S_LIVENESS * heartbeat;
}

//  Our heartbeat interval: never slower than the broker's, so that it never
//  thinks us dead while we think ourselves punctual
static uint32_t
s_host_heartbeat_interval (parley_ctx_t *self)
{
    return self->broker_heartbeat && self->broker_heartbeat < self->heartbeat
         ? self->broker_heartbeat : self->heartbeat;
}

static void
s_host_on_welcome (parley_ctx_t *self, pl_envelope_t *envelope)
{
    uint32_t heartbeat = pl_envelope_heartbeat (envelope);
    self->broker_heartbeat = heartbeat ? heartbeat : self->heartbeat;
    if (!self->welcomed)
        zsys_info ("%s: registered with broker at %s", self->instance, self->endpoint);
    self->welcomed = true;
}

static void
s_host_on_refuse (parley_ctx_t *self, pl_envelope_t *envelope)
{
    const char *code = pl_envelope_code (envelope);
    const char *message = pl_envelope_message (envelope);
    if (code && streq (code, "duplicate_instance")) {
        //  Our name holds our pid: the broker still holds the connection we
        //  left (we moved away from it and back within its liveness). It
        //  drops that one within 3 heartbeats; we say hello again meanwhile.
        zsys_warning ("%s: broker at %s still holds this instance's previous connection;"
                      " saying hello again", self->instance, self->endpoint);
        self->welcomed = false;
        self->hello_unsent = true;
        self->next_hello = zclock_mono () + self->heartbeat;
        self->arrived = zclock_mono ();
        return;
    }
    zsys_error ("%s: broker at %s refused this plugin (%s): %s; it serves nothing until restarted",
                self->instance, self->endpoint, code ? code : "no code",
                message ? message : "no reason given");
    self->welcomed = false;
    self->refused = true;
}

//  A request whose time was gone when it came: its caller has been told, or
//  is about to be, so the plugin never starts it (ENVELOPE.md, "dl")
static void
s_host_answer_expired (parley_ctx_t *self, pl_envelope_t *envelope, int64_t waited)
{
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    if (!reply)
        return;
    pl_envelope_set_rid (reply, pl_envelope_rid (envelope));
    pl_envelope_set_sid (reply, pl_envelope_sid (envelope));
    int64_t retry_ms = waited < S_EXPIRED_RETRY_MIN_MS ? S_EXPIRED_RETRY_MIN_MS
                     : waited > S_EXPIRED_RETRY_MAX_MS ? S_EXPIRED_RETRY_MAX_MS : waited;
    pl_envelope_set_error_retry (reply, "unavailable", "The service is too busy to answer in"
                                 " time; try again shortly.", retry_ms);
    s_send (self, &reply);
    zsys_debug ("%s: '%s' came after its time was gone (it waited %" PRId64 " ms);"
                " answered unavailable", self->instance, pl_envelope_type (envelope), waited);
}

//  waited: how long the request waited on its way beyond the quickest trip
//  (pl_lag), taken off the time it came with
static void
s_host_on_request (parley_ctx_t *self, pl_envelope_t **envelope_p, int64_t waited)
{
    int64_t time_left = pl_envelope_deadline (*envelope_p);
    if (time_left >= 0 && time_left - waited <= 0) {
        s_host_answer_expired (self, *envelope_p, waited);
        return;
    }
    parley_request_t *request = (parley_request_t *) zmalloc (sizeof (parley_request_t));
    assert (request);
    request->envelope = *envelope_p;
    request->epoch = self->epoch;
    *envelope_p = NULL;
    request->expires = time_left >= 0 ? zclock_mono () + time_left - waited : 0;
    request->handle = zlistx_add_end (self->requests, request);
    assert (request->handle);
    //  The calls it makes while it has the request carry its deadline; the
    //  request itself may be answered (and freed) before on_request returns
    self->handling_expires = request->expires;
    self->plugin->on_request (self->state, request);
    self->handling_expires = 0;
}

static bool
s_key_is (const msgpack_object *key, const char *name)
{
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == strlen (name)
        && memcmp (key->via.str.ptr, name, key->via.str.size) == 0;
}

//  Minor 3: an error's fields as on_reply hands them over, a map: the pairs
//  of the error's body (retry_after_ms), and outcome when it has one
static void
s_error_fields (pl_envelope_t *envelope, msgpack_sbuffer *buffer)
{
    msgpack_packer packer;
    msgpack_packer_init (&packer, buffer, msgpack_sbuffer_write);
    zframe_t *body = pl_envelope_body (envelope);
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    size_t offset = 0;
    const msgpack_object_map *map = NULL;
    if (body && msgpack_unpack_next (&result, (const char *) zframe_data (body),
                                     zframe_size (body), &offset) == MSGPACK_UNPACK_SUCCESS
    &&  result.data.type == MSGPACK_OBJECT_MAP)
        map = &result.data.via.map;
    const char *outcome = pl_envelope_outcome (envelope);
    uint32_t pairs = 0;
    for (uint32_t index = 0; map && index < map->size; index++)
        pairs += !s_key_is (&map->ptr [index].key, "outcome");
    msgpack_pack_map (&packer, pairs + (outcome != NULL));
    for (uint32_t index = 0; map && index < map->size; index++)
        if (!s_key_is (&map->ptr [index].key, "outcome")) {
            msgpack_pack_object (&packer, map->ptr [index].key);
            msgpack_pack_object (&packer, map->ptr [index].val);
        }
    if (outcome) {
        msgpack_pack_str_with_body (&packer, "outcome", 7);
        msgpack_pack_str_with_body (&packer, outcome, strlen (outcome));
    }
    msgpack_unpacked_destroy (&result);
}

static void
s_host_on_reply (parley_ctx_t *self, pl_envelope_t *envelope)
{
    char key [24];
    snprintf (key, sizeof key, "%" PRIu64, pl_envelope_rid (envelope));
    s_call_t *call = (s_call_t *) zhashx_lookup (self->calls_by_rid, key);
    if (!call)
        return;                 //  answered unavailable already; too late now
    zhashx_delete (self->calls_by_rid, key);
    zlistx_delete (self->calls, call->handle);
    void *cookie = call->cookie;
    s_call_destroy (&call);

    const char *code = pl_envelope_code (envelope);
    if (!self->plugin->on_reply)
        return;
    if (code && self->plugin->abi_minor >= 3) {
        msgpack_sbuffer fields;
        msgpack_sbuffer_init (&fields);
        s_error_fields (envelope, &fields);
        self->plugin->on_reply (self->state, cookie, code, pl_envelope_message (envelope),
                                (const uint8_t *) fields.data, fields.size);
        msgpack_sbuffer_destroy (&fields);
        return;
    }
    zframe_t *body = pl_envelope_body (envelope);
    static const uint8_t empty_map [] = { 0x80 };
    const uint8_t *data = body ? zframe_data (body) : empty_map;
    size_t size = body ? zframe_size (body) : sizeof empty_map;
    self->plugin->on_reply (self->state, cookie, code,
                            code ? pl_envelope_message (envelope) : NULL,
                            code ? NULL : data, code ? 0 : size);
}

static void
s_host_on_session (parley_ctx_t *self, pl_envelope_t *envelope)
{
    int event = (int) pl_envelope_event (envelope);
    //  RESET came with minor 1: a plugin built for 1.0 never heard of it
    if (event == PARLEY_SESSION_RESET && self->plugin->abi_minor < 1)
        return;
    if (self->plugin->on_session)
        self->plugin->on_session (self->state, event, pl_envelope_sid (envelope),
                                  pl_envelope_user (envelope));
}

//  The wake pipe is readable: one on_wake for every wake since the last.
//  The pipe is emptied first and the flag dropped after, then on_wake runs:
//  a wake that comes after the flag drops writes a byte for the next round,
//  and one that came before it is seen by this on_wake. (Dropping the flag
//  first lost wakes: a byte written between the drop and the read was read
//  here, and the wakes after it, finding the flag up, wrote none.)
static void
s_host_on_wake (parley_ctx_t *self)
{
    char bytes [64];
    while (read (self->wake_pipe [0], bytes, sizeof bytes) > 0)
        ;
    atomic_store (&self->wake_pending, false);
    if (self->on_wake && !self->refused) {
        self->on_wake (self->state);
        if (self->plugin->on_batch_end)
            self->plugin->on_batch_end (self->state);
    }
}

//  STATS from the broker: the plugin's figures, gathered now through
//  on_metrics, go back as a STATS of our own (proto/ENVELOPE.md, "Stats").
//  A plugin without on_metrics (minor 3 or before) answers nothing.
static void
s_host_on_stats (parley_ctx_t *self)
{
    if (!self->on_metrics || !self->initialized)
        return;
    self->stats = pl_stats_new ();
    if (!self->stats)
        return;
    self->on_metrics (self->state);
    size_t size = 0;
    uint8_t *body = pl_stats_body (self->stats, &size);
    pl_stats_destroy (&self->stats);
    pl_envelope_t *envelope = body && !s_oversized (self, "metrics", "stats", size,
                                                    "its figures are left off /metrics")
                            ? pl_envelope_new (PL_OP_STATS) : NULL;
    if (envelope) {
        pl_envelope_set_body_copy (envelope, body, size);
        s_send (self, &envelope);
    }
    free (body);
}

//  Handles one message from the broker. Returns true if it reached the
//  plugin (so that on_batch_end is owed).
static bool
s_host_handle_broker (parley_ctx_t *self, pl_envelope_t **envelope_p)
{
    pl_envelope_t *envelope = *envelope_p;
    self->last_heard = zclock_mono ();
    if (self->refused)
        return false;
    //  A welcome may come from a broker that restarted, elsewhere: its clock
    //  is another, and its first message is the new quickest trip
    if (pl_envelope_op (envelope) == PL_OP_WELCOME)
        pl_lag_reset (&self->lag);
    int64_t waited = pl_lag_observe (&self->lag, pl_envelope_sent_at (envelope),
                                     self->last_heard);

    bool reached_plugin = false;
    switch (pl_envelope_op (envelope)) {
        case PL_OP_WELCOME:
            s_host_on_welcome (self, envelope);
            break;
        case PL_OP_REFUSE:
            s_host_on_refuse (self, envelope);
            break;
        case PL_OP_WHO:
            //  The broker restarted or forgot us: register again
            self->welcomed = false;
            s_host_send_hello (self);
            break;
        case PL_OP_HEARTBEAT:
            break;
        case PL_OP_REQUEST:
            if (pl_envelope_type (envelope)) {
                s_host_on_request (self, envelope_p, waited);
                reached_plugin = true;
            }
            else {
                //  Plugins may rely on a request having a type
                pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
                if (reply) {
                    pl_envelope_set_rid (reply, pl_envelope_rid (envelope));
                    pl_envelope_set_error (reply, "bad_request", "The request has no type.");
                    s_send (self, &reply);
                }
            }
            break;
        case PL_OP_REPLY:
            s_host_on_reply (self, envelope);
            reached_plugin = true;
            break;
        case PL_OP_SESSION_EVENT:
            s_host_on_session (self, envelope);
            reached_plugin = true;
            break;
        case PL_OP_STATS:
            s_host_on_stats (self);
            break;
        default:
            zsys_debug ("%s: ignored '%s' from broker", self->instance,
                        pl_op_name (pl_envelope_op (envelope)));
            break;
    }
    return reached_plugin;
}

//  Handles what is waiting on the DEALER, at most S_BATCH_MAX messages, then
//  lets the plugin commit the batch
static void
s_host_drain_broker (parley_ctx_t *self)
{
    bool batch_handled = false;
    for (int count = 0; count < S_BATCH_MAX; count++) {
        if (!(zsock_events (self->dealer) & ZMQ_POLLIN))
            break;
        pl_envelope_t *envelope = pl_envelope_recv (zsock_resolve (self->dealer));
        if (!envelope)
            continue;           //  malformed, dropped by the codec
        if (s_host_handle_broker (self, &envelope))
            batch_handled = true;
        pl_envelope_destroy (&envelope);
    }
    if (batch_handled && self->plugin->on_batch_end)
        self->plugin->on_batch_end (self->state);
}


//  --------------------------------------------------------------------------
//  Time: heartbeats, broker liveness, call deadlines, plugin timers

static void
s_host_expire_calls (parley_ctx_t *self, int64_t now)
{
    bool answered = false;
    s_call_t *call = (s_call_t *) zlistx_first (self->calls);
    //  Calls all have the same timeout, so the list is in deadline order
    while (call && call->deadline <= now) {
        char key [24];
        snprintf (key, sizeof key, "%" PRIu64, call->rid);
        zhashx_delete (self->calls_by_rid, key);
        zlistx_delete (self->calls, call->handle);
        void *cookie = call->cookie;
        s_call_destroy (&call);
        //  The broker took the call and never answered: it may have reached
        //  the callee, which may have done it
        s_call_lost (self, cookie, "The service did not answer in time.");
        answered = true;
        call = (s_call_t *) zlistx_first (self->calls);
    }
    if (answered && self->plugin->on_batch_end)
        self->plugin->on_batch_end (self->state);
}

static void
s_host_run_timers (parley_ctx_t *self, int64_t now)
{
    //  A handler may add or cancel timers, itself included, so we look the
    //  next due timer up afresh each time; each runs at most once per pass
    //  because running it moves its due time past now.
    while (true) {
        s_timer_t *due = NULL;
        s_timer_t *timer = (s_timer_t *) zlistx_first (self->timers);
        while (timer) {
            if (timer->due <= now && (!due || timer->due < due->due))
                due = timer;
            timer = (s_timer_t *) zlistx_next (self->timers);
        }
        if (!due)
            break;
        due->due = now + due->interval;
        due->handler (self->state);
    }
}

//  To the next broker of a standby pair (nothing to do with one broker:
//  ZeroMQ reconnects to a broker that restarts on its endpoint)
static void
s_host_move (parley_ctx_t *self, int64_t now)
{
    self->arrived = now;
    if (pl_brokers_move (self->brokers, self->dealer) == 1) {
        self->endpoint = pl_brokers_current (self->brokers);
        zsys_warning ("%s: moving to the broker at %s", self->instance, self->endpoint);
    }
}

static void
s_host_keep_alive (parley_ctx_t *self, int64_t now)
{
    if (self->refused)
        return;
    if (now - self->last_heard >= s_host_silence_limit (self)) {
        if (self->welcomed) {
            zsys_warning ("%s: broker at %s silent for %" PRId64 " ms; saying hello again",
                          self->instance, self->endpoint, now - self->last_heard);
            self->welcomed = false;
            self->broker_heartbeat = self->heartbeat;
            s_host_move (self, now);
            s_host_send_hello (self);
        }
        else
        if (now >= self->next_hello) {
            //  Not welcomed here in as long: a passive broker ignores us
            if (now - self->arrived >= s_host_silence_limit (self))
                s_host_move (self, now);
            s_host_send_hello (self);
        }
    }
    else
    if (!self->welcomed && self->hello_unsent && now >= self->next_hello)
        s_host_send_hello (self);
    if (self->welcomed && now - self->last_sent >= s_host_heartbeat_interval (self)) {
        pl_envelope_t *heartbeat = pl_envelope_new (PL_OP_HEARTBEAT);
        //  A full queue means the broker is not reading: we try again next
        //  interval rather than at once, and liveness decides its fate
        if (!heartbeat || s_send (self, &heartbeat))
            self->last_sent = now;
    }
}

//  Msecs until the next thing the loop must do on time
static long
s_host_poll_timeout (parley_ctx_t *self, int64_t now)
{
    int64_t next = now + 60 * 1000;
    if (!self->refused) {
        int64_t silent_at = self->last_heard + s_host_silence_limit (self);
        if (self->welcomed) {
            if (silent_at < next)
                next = silent_at;
            int64_t heartbeat_at = self->last_sent + s_host_heartbeat_interval (self);
            if (heartbeat_at < next)
                next = heartbeat_at;
        }
        else {
            int64_t hello_at = self->hello_unsent || silent_at < self->next_hello
                             ? self->next_hello : silent_at;
            if (hello_at < next)
                next = hello_at;
        }
    }
    s_call_t *call = (s_call_t *) zlistx_first (self->calls);
    if (call && call->deadline < next)
        next = call->deadline;
    s_timer_t *timer = (s_timer_t *) zlistx_first (self->timers);
    while (timer) {
        if (timer->due < next)
            next = timer->due;
        timer = (s_timer_t *) zlistx_next (self->timers);
    }
    return next > now ? (long) (next - now) : 0;
}


//  --------------------------------------------------------------------------
//  The actor

static void
s_host_actor (zsock_t *pipe, void *args)
{
    s_start_t *start = (s_start_t *) args;
    parley_ctx_t *self = s_host_new (pipe, start->config, start->error, start->error_size);
    if (!self->initialized || self->options_refused) {
        s_host_destroy (&self);
        zsock_signal (pipe, 1);
        return;
    }
    start->started = true;
    pl_thread_name (self->instance);
    zsys_info ("%s: plugin '%s' %s loaded from %s, connecting to broker at %s",
               self->instance, self->plugin->name,
               self->plugin->version ? self->plugin->version : "",
               self->plugin_path, self->endpoint);
    self->last_heard = zclock_mono ();
    self->arrived = self->last_heard;
    s_host_send_hello (self);
    start = NULL;               //  the caller's stack frame is gone after this
    zsock_signal (pipe, 0);

    zmq_pollitem_t items [] = {
        { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->dealer), 0, ZMQ_POLLIN, 0 },
        { NULL, self->wake_pipe [0], ZMQ_POLLIN, 0 }
    };
    while (!self->terminated) {
        long timeout = s_host_poll_timeout (self, zclock_mono ());
        if (zmq_poll (items, 3, timeout) == -1) {
            if (zmq_errno () == EINTR)
                continue;       //  a signal for the process, not for us
            break;              //  context terminated
        }
        if (items [0].revents & ZMQ_POLLIN) {
            zmsg_t *message = zmsg_recv (pipe);
            char *command = message ? zmsg_popstr (message) : NULL;
            if (!command || streq (command, "$TERM"))
                self->terminated = true;
            zstr_free (&command);
            zmsg_destroy (&message);
            if (self->terminated)
                break;
        }
        if (items [2].revents & ZMQ_POLLIN)
            s_host_on_wake (self);
        //  ZMQ_FD is edge-like: drain by events, not by the poll's revents
        s_host_drain_broker (self);
        int64_t now = zclock_mono ();
        s_host_expire_calls (self, now);
        s_host_run_timers (self, now);
        s_host_keep_alive (self, zclock_mono ());
    }
    s_host_destroy (&self);
}

int
br_host_check_options_taken (const char *const *options, const bool *taken,
                             size_t count, char *error, size_t error_size)
{
    assert (error && error_size);
    for (size_t index = 0; index < count; index++) {
        if (taken [index] || !options [index])
            continue;
        const char *dot = strchr (options [index], '.');
        int name_length = dot ? (int) (dot - options [index]) : (int) strlen (options [index]);
        snprintf (error, error_size, "--option %s: no plugin named '%.*s' is loaded here",
                  options [index], name_length, options [index]);
        return -1;
    }
    return 0;
}

zactor_t *
br_host_start (const br_host_config_t *config, char *error, size_t error_size)
{
    assert (config);
    assert (error && error_size > 0);
    error [0] = 0;
    if (!config->plugin_path || !config->endpoint) {
        snprintf (error, error_size, "a plugin needs a plugin path and a broker endpoint");
        return NULL;
    }
    s_start_t start = { .config = config, .error = error, .error_size = error_size };
    //  zactor_new returns after the actor's first signal: the plugin is
    //  loaded and initialized by then, or refused with the reason in error
    zactor_t *actor = zactor_new (s_host_actor, &start);
    if (actor && !start.started) {
        zactor_destroy (&actor);
        if (!error [0])
            snprintf (error, error_size, "plugin %s could not be started", config->plugin_path);
    }
    else
    if (!actor)
        snprintf (error, error_size, "plugin %s: cannot start its thread", config->plugin_path);
    return actor;
}


//  --------------------------------------------------------------------------
//  The host function table

static const char *
s_request_type (const parley_request_t *request)
{
    return pl_envelope_type (request->envelope);
}

static const char *
s_request_user (const parley_request_t *request)
{
    return pl_envelope_user (request->envelope);
}

static uint64_t
s_request_session (const parley_request_t *request)
{
    return pl_envelope_sid (request->envelope);
}

static const char *
s_request_address (const parley_request_t *request)
{
    return pl_envelope_addr (request->envelope);
}

static const uint8_t *
s_request_body (const parley_request_t *request, size_t *size_p)
{
    static const uint8_t empty_map [] = { 0x80 };
    zframe_t *body = pl_envelope_body (request->envelope);
    if (!body || zframe_size (body) == 0) {
        if (size_p)
            *size_p = sizeof empty_map;
        return empty_map;
    }
    if (size_p)
        *size_p = zframe_size (body);
    return zframe_data (body);
}

//  A body past PL_ENVELOPE_MAX_BODY would be dropped on the way (the
//  broker's codec, or ZeroMQ's ZMQ_MAXMSGSIZE that cuts the connection): it
//  is a bug of the plugin, logged once per type with what it was
static bool
s_oversized (parley_ctx_t *self, const char *what, const char *type, size_t size,
             const char *consequence)
{
    if (size <= PL_ENVELOPE_MAX_BODY)
        return false;
    char key [300];
    snprintf (key, sizeof key, "%s %s", what, type ? type : "?");
    if (!zhashx_lookup (self->oversized, key)) {
        zsys_error ("%s: plugin '%s' made %s '%s' of %zu bytes, over the %d-byte limit of"
                    " a body: a bug of the plugin; %s (logged once per type)",
                    self->instance, self->plugin->name, what, type ? type : "?", size,
                    PL_ENVELOPE_MAX_BODY, consequence);
        if (zhashx_size (self->oversized) < S_OVERSIZED_TYPES_MAX)
            zhashx_insert (self->oversized, key, (void *) "logged");
    }
    return true;
}

//  The "type" of an event body, for the log; "?" when it has none
static void
s_event_type (const void *body, size_t size, char *type, size_t type_size)
{
    snprintf (type, type_size, "?");
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    size_t offset = 0;
    if (msgpack_unpack_next (&result, (const char *) body, size, &offset)
        == MSGPACK_UNPACK_SUCCESS && result.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t index = 0; index < result.data.via.map.size; index++) {
            msgpack_object *key = &result.data.via.map.ptr [index].key;
            msgpack_object *value = &result.data.via.map.ptr [index].val;
            if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == 4
            &&  memcmp (key->via.str.ptr, "type", 4) == 0 && value->type == MSGPACK_OBJECT_STR) {
                snprintf (type, type_size, "%.*s", (int) value->via.str.size, value->via.str.ptr);
                break;
            }
        }
    }
    msgpack_unpacked_destroy (&result);
}

//  Refuses an event too large to send. Returns true if it is.
static bool
s_event_oversized (parley_ctx_t *self, const void *body, size_t size)
{
    if (size <= PL_ENVELOPE_MAX_BODY)
        return false;
    char type [128];
    s_event_type (body, size, type, sizeof type);
    return s_oversized (self, "an event", type, size, "not sent");
}

//  True when body is a map with "outcome": "unknown"
static bool
s_body_outcome_unknown (const void *body, size_t size)
{
    msgpack_unpacked result;
    msgpack_unpacked_init (&result);
    bool unknown = false;
    if (msgpack_unpack_next (&result, (const char *) body, size, NULL) == MSGPACK_UNPACK_SUCCESS
    &&  result.data.type == MSGPACK_OBJECT_MAP)
        for (uint32_t index = 0; index < result.data.via.map.size; index++) {
            msgpack_object_kv *pair = &result.data.via.map.ptr [index];
            if (s_key_is (&pair->key, "outcome") && s_key_is (&pair->val, "unknown"))
                unknown = true;
        }
    msgpack_unpacked_destroy (&result);
    return unknown;
}

//  Sends the reply to request, then takes the request back
static int
s_reply_send (parley_ctx_t *self, parley_request_t **request_p, const char *code,
              const char *message, const char *bind, bool unbind,
              const void *body, size_t size)
{
    assert (self);
    assert (request_p);
    parley_request_t *request = *request_p;
    if (!request)
        return -1;
    if (request->epoch != self->epoch) {
        //  Its broker forgot it (it restarted, or we moved to the other of a
        //  standby pair): its rid may name another request there now
        zlistx_delete (self->requests, request->handle);
        s_request_destroy (request_p);
        return -1;
    }
    pl_envelope_t *reply = pl_envelope_new (PL_OP_REPLY);
    int rc = -1;
    if (reply) {
        pl_envelope_set_rid (reply, pl_envelope_rid (request->envelope));
        pl_envelope_set_sid (reply, pl_envelope_sid (request->envelope));
        if (body && s_oversized (self, "a reply to", pl_envelope_type (request->envelope), size,
                                 "answered internal, outcome unknown")) {
            //  Never left to time out: the client learns at once that the
            //  request failed, and that it may have taken effect
            pl_envelope_set_error (reply, "internal", "The reply was too large to send; the"
                                   " request may or may not have taken effect.");
            pl_envelope_set_outcome (reply, "unknown");
        }
        else {
            if (code)
                pl_envelope_set_error (reply, code, message ? message : code);
            //  Minor 3: an error's "outcome": "unknown" goes in the header,
            //  where the broker and the gateway look for it
            if (code && body && size && s_body_outcome_unknown (body, size))
                pl_envelope_set_outcome (reply, "unknown");
            if (bind)
                pl_envelope_set_bind (reply, bind);
            if (unbind)
                pl_envelope_set_unbind (reply, true);
            if (body && size)
                pl_envelope_set_body_copy (reply, body, size);
        }
        rc = s_send (self, &reply);
        if (rc)
            zsys_warning ("%s: reply to '%s' dropped: the broker's queue is full",
                          self->instance, pl_envelope_type (request->envelope));
    }
    zlistx_delete (self->requests, request->handle);
    s_request_destroy (request_p);
    return rc;
}

static int
s_reply (parley_ctx_t *self, parley_request_t **request_p, const void *body, size_t size)
{
    return s_reply_send (self, request_p, NULL, NULL, NULL, false, body, size);
}

static int
s_reply_error (parley_ctx_t *self, parley_request_t **request_p,
               const char *code, const char *message)
{
    return s_reply_send (self, request_p, code ? code : "internal", message,
                         NULL, false, NULL, 0);
}

static int
s_reply_error_body (parley_ctx_t *self, parley_request_t **request_p,
                    const char *code, const char *message, const void *body, size_t size)
{
    return s_reply_send (self, request_p, code ? code : "internal", message,
                         NULL, false, body, size);
}

static int
s_reply_bind (parley_ctx_t *self, parley_request_t **request_p,
              const char *user, const void *body, size_t size)
{
    return s_reply_send (self, request_p, NULL, NULL, user, user == NULL, body, size);
}

//  A call with time_left_ms to answer it (< 0: no deadline)
static int
s_call_send (parley_ctx_t *self, const char *type, const void *body, size_t size,
             void *cookie, int64_t time_left_ms)
{
    assert (self);
    if (!type || time_left_ms == 0)
        return -1;
    if (body && s_oversized (self, "a call of", type, size, "not sent"))
        return -1;              //  never sent: no answer will come
    pl_envelope_t *request = pl_envelope_new (PL_OP_REQUEST);
    if (!request)
        return -1;
    uint64_t rid = ++self->next_rid;
    pl_envelope_set_rid (request, rid);
    pl_envelope_set_type (request, type);
    pl_envelope_set_deadline (request, time_left_ms);
    if (body && size)
        pl_envelope_set_body_copy (request, body, size);
    if (s_send (self, &request))
        return -1;              //  never sent: no answer will come

    s_call_t *call = (s_call_t *) zmalloc (sizeof (s_call_t));
    assert (call);
    call->rid = rid;
    call->cookie = cookie;
    call->deadline = zclock_mono () + self->call_timeout;
    call->handle = zlistx_add_end (self->calls, call);
    char key [24];
    snprintf (key, sizeof key, "%" PRIu64, rid);
    zhashx_insert (self->calls_by_rid, key, call);
    return 0;
}

//  The deadline of the request on_request has now, as time left: a call
//  made there inherits it; -1 elsewhere. A request whose time ran out while
//  on_request runs gets 1 ms rather than none: the plugin was given it.
static int64_t
s_inherited (parley_ctx_t *self)
{
    if (!self->handling_expires)
        return -1;
    int64_t left = self->handling_expires - zclock_mono ();
    return left > 0 ? left : 1;
}

static int
s_call (parley_ctx_t *self, const char *type, const void *body, size_t size, void *cookie)
{
    return s_call_send (self, type, body, size, cookie, s_inherited (self));
}

static int
s_call_within (parley_ctx_t *self, const char *type, const void *body, size_t size,
               void *cookie, int64_t time_left_ms)
{
    assert (self);
    return s_call_send (self, type, body, size, cookie,
                        time_left_ms < 0 ? s_inherited (self) : time_left_ms);
}

//  One series for the STATS being gathered; a series the ABI refuses is
//  the plugin's bug, logged once per name
static int
s_metric (parley_ctx_t *self, const parley_metric_t *metric)
{
    assert (self);
    char error [256];
    if (!self->stats)
        snprintf (error, sizeof error, "host->metric was called outside on_metrics");
    else
    if (pl_stats_add (self->stats, metric, error, sizeof error) == 0)
        return 0;
    char key [300];
    snprintf (key, sizeof key, "metric %s", metric && metric->name ? metric->name : "?");
    if (!zhashx_lookup (self->oversized, key)) {
        zsys_error ("%s: plugin '%s': %s; left off /metrics (logged once per name)",
                    self->instance, self->plugin->name, error);
        if (zhashx_size (self->oversized) < S_OVERSIZED_TYPES_MAX)
            zhashx_insert (self->oversized, key, (void *) "logged");
    }
    return -1;
}

static int64_t
s_request_time_left (const parley_request_t *request)
{
    if (!request->expires)
        return -1;
    int64_t left = request->expires - zclock_mono ();
    return left > 0 ? left : 0;
}

static int
s_deliver_users (parley_ctx_t *self, const char *const *users, size_t count,
                 const void *body, size_t size)
{
    assert (self);
    if (!users || count == 0 || !body || size == 0 || s_event_oversized (self, body, size))
        return -1;
    pl_envelope_t *deliver = pl_envelope_new (PL_OP_DELIVER);
    if (!deliver)
        return -1;
    pl_envelope_set_users (deliver, users, count);
    pl_envelope_set_body_copy (deliver, body, size);
    return s_send (self, &deliver);
}

static int
s_deliver_sessions (parley_ctx_t *self, const uint64_t *sessions, size_t count,
                    const void *body, size_t size)
{
    assert (self);
    if (!sessions || count == 0 || !body || size == 0 || s_event_oversized (self, body, size))
        return -1;
    pl_envelope_t *deliver = pl_envelope_new (PL_OP_DELIVER);
    if (!deliver)
        return -1;
    pl_envelope_set_sids (deliver, sessions, count);
    pl_envelope_set_body_copy (deliver, body, size);
    return s_send (self, &deliver);
}

static int
s_unbind_sessions (parley_ctx_t *self, const uint64_t *sessions, size_t count)
{
    assert (self);
    if (!sessions || count == 0)
        return -1;
    pl_envelope_t *close = pl_envelope_new (PL_OP_SESSION_CLOSE);
    if (!close)
        return -1;
    pl_envelope_set_sids (close, sessions, count);
    return s_send (self, &close);
}

//  Any thread: ctx's wake pipe and on_wake never change while the plugin
//  runs, and the flag is atomic
static int
s_wake (parley_ctx_t *self)
{
    assert (self);
    if (!self->on_wake)
        return -1;
    if (atomic_exchange (&self->wake_pending, true))
        return 0;               //  a byte is on its way already
    //  A full pipe (EAGAIN) holds a wake already; nothing else can fail here
    //  while the pipe is open
    ssize_t written = write (self->wake_pipe [1], "w", 1);
    (void) written;
    return 0;
}

static const char *
s_option (parley_ctx_t *self, const char *name)
{
    assert (self);
    if (!name)
        return NULL;
    //  Remembered for s_host_check_options (keys, not values: nothing grows)
    if (!zhashx_lookup (self->asked, name))
        zhashx_insert (self->asked, name, (void *) "asked");
    return (const char *) zhash_lookup (self->options, name);
}

static void
s_log (parley_ctx_t *self, int level, const char *format, ...)
{
    assert (self);
    //  czmq logs every level: a storm of 10,000 logins would write a line each
    if (level == PARLEY_LOG_DEBUG && !self->verbose)
        return;
    char line [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    const char *instance = self->instance ? self->instance : self->plugin->name;
    char letter = level == PARLEY_LOG_ERROR ? 'E' : level == PARLEY_LOG_WARNING ? 'W'
                : level == PARLEY_LOG_INFO ? 'I' : 'D';
    pl_log_write (letter, "plugin", instance, "%s", line);
}

static int
s_timer_add (parley_ctx_t *self, uint32_t interval_ms, void (*handler) (void *state))
{
    assert (self);
    if (!handler || self->next_timer_id == INT_MAX)
        return -1;
    s_timer_t *timer = (s_timer_t *) zmalloc (sizeof (s_timer_t));
    assert (timer);
    timer->id = ++self->next_timer_id;
    timer->interval = interval_ms < S_TIMER_MIN_MS ? S_TIMER_MIN_MS : interval_ms;
    timer->due = zclock_mono () + timer->interval;
    timer->handler = handler;
    zlistx_add_end (self->timers, timer);
    return timer->id;
}

static int
s_timer_cancel (parley_ctx_t *self, int timer_id)
{
    assert (self);
    s_timer_t *timer = (s_timer_t *) zlistx_first (self->timers);
    while (timer) {
        if (timer->id == timer_id) {
            zlistx_delete (self->timers, zlistx_cursor (self->timers));
            free (timer);
            return 0;
        }
        timer = (s_timer_t *) zlistx_next (self->timers);
    }
    return -1;
}

static void
s_host_table_fill (parley_host_t *host)
{
    memset (host, 0, sizeof *host);
    host->abi_major = br_host_supported_abi [0].major;
    host->abi_minor = br_host_supported_abi [0].minor;
    host->size = sizeof (parley_host_t);
    host->request_type = s_request_type;
    host->request_user = s_request_user;
    host->request_session = s_request_session;
    host->request_address = s_request_address;
    host->request_body = s_request_body;
    host->reply = s_reply;
    host->reply_error = s_reply_error;
    host->reply_bind = s_reply_bind;
    host->call = s_call;
    host->deliver_users = s_deliver_users;
    host->deliver_sessions = s_deliver_sessions;
    host->option = s_option;
    host->log = s_log;
    host->timer_add = s_timer_add;
    host->timer_cancel = s_timer_cancel;
    host->unbind_sessions = s_unbind_sessions;
    host->reply_error_body = s_reply_error_body;
    host->wake = s_wake;
    host->request_time_left = s_request_time_left;
    host->call_within = s_call_within;
    host->metric = s_metric;
}

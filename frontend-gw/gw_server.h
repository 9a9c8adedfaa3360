/*  =========================================================================
    gw_server - parley-gw: the WebSocket and HTTP front end

    One libwebsockets context on one service thread: serves the web UI from
    web_root over HTTP, /healthz, and the client protocol (PROTOCOL.md) on
    /ws on the same port. Each WebSocket is one session. Client JSON is
    transcoded to msgpack once (pl_transcode) and sent to the broker in an
    envelope over one DEALER socket whose ZMQ_FD is adopted into the lws loop;
    replies and deliveries come back the same way and are queued, bounded,
    on their sessions. Connections are limited in all and per address
    (gw_limits), a session not signed in is closed after auth_timeout_ms,
    and HTTP serves only what gw_web's allow-list names.

        gw_config_t config = { .listen_host = "127.0.0.1", .port = 8080,
                               .broker_endpoint = "tcp://127.0.0.1:7700",
                               .web_root = "web" };
        gw_server_t *server = gw_server_new (&config);
        if (server)
            gw_server_run (server);     //  until SIGINT/SIGTERM
        gw_server_destroy (&server);

    With tls_cert and tls_key it serves https and wss on that port, and
    only those: a plain client gets no answer. SIGHUP reloads both files
    for new connections; open ones keep the certificate they began with.
    SIGTERM or SIGINT stops gracefully: new connections are refused, the
    requests in flight get their replies (or 'unavailable' when the bound
    comes), then every session is closed with 1001 and gw_server_run
    returns, all within stop_timeout_ms. A second signal stops at once.
    =========================================================================
*/

#ifndef GW_SERVER_H_INCLUDED
#define GW_SERVER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pl_curve.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GW_MAX_FRAME_DEFAULT        (64 * 1024)     //  PROTOCOL.md default
#define GW_HEARTBEAT_DEFAULT        1000            //  ms, as the broker's
#define GW_REQUEST_TIMEOUT_DEFAULT  10000           //  ms, a backstop behind
                                                    //  the broker's own timeout
#define GW_MAX_PER_ADDRESS_DEFAULT  1000            //  connections from one address
#define GW_MAX_UNAUTH_DEFAULT       64              //  sessions not signed in, per address
#define GW_AUTH_TIMEOUT_DEFAULT     30000           //  ms: PROTOCOL.md 1.1 Transport
#define GW_FD_RESERVE               128             //  descriptors kept beyond the cap
#define GW_STOP_TIMEOUT_DEFAULT     5000            //  ms from SIGTERM to exit

typedef struct {
    const char *listen_host;        //  "127.0.0.1"; NULL = all interfaces
    int port;                       //  0 = any free port (see gw_server_port)
    const char *broker_endpoint;    //  "inproc://parley-broker", "tcp://..."
    const char *web_root;           //  folder served over HTTP
    size_t max_frame;               //  0 = GW_MAX_FRAME_DEFAULT
    size_t send_buffer;             //  SO_SNDBUF of each client socket; 0 = the kernel's
    uint32_t heartbeat_ms;          //  0 = GW_HEARTBEAT_DEFAULT
    uint32_t request_timeout_ms;    //  0 = GW_REQUEST_TIMEOUT_DEFAULT
    const pl_curve_t *curve;        //  keys for a tcp:// broker (borrowed; read in
                                    //  gw_server_new only); NULL = none
    size_t max_per_address;         //  0 = GW_MAX_PER_ADDRESS_DEFAULT
    size_t max_unauthenticated;     //  per address; 0 = GW_MAX_UNAUTH_DEFAULT
    uint32_t auth_timeout_ms;       //  0 = GW_AUTH_TIMEOUT_DEFAULT
    size_t max_connections;         //  client connections in all; 0 = the
                                    //  descriptor limit less those open at
                                    //  start and GW_FD_RESERVE
    const char *tls_cert;           //  PEM certificate chain; NULL = plain HTTP
    const char *tls_key;            //  PEM private key, with tls_cert
    uint32_t stop_timeout_ms;       //  0 = GW_STOP_TIMEOUT_DEFAULT
    const char *metrics;            //  who may read /metrics: "local" (NULL),
                                    //  "off", "any", or IP addresses a,b,...
    size_t file_chunk;              //  bytes per files.upload/files.get piece;
                                    //  0 = GW_FILE_CHUNK_DEFAULT (gw_files.h)
} gw_config_t;

typedef struct _gw_server_t gw_server_t;

//  The connection limits' command-line options, the same in parley-gw and
//  parley: --max-connections, --max-per-address,
//  --max-unauthenticated-per-address, --auth-timeout
#define GW_LIMIT_OPTIONS_HELP \
    "  --max-connections N     client connections in all; past them 503 (default:\n" \
    "                          the descriptor limit less those open and a reserve)\n" \
    "  --max-per-address N     connections from one address; past them 429\n" \
    "                          (default 1000)\n" \
    "  --max-unauthenticated-per-address N\n" \
    "                          WebSocket sessions not signed in from one address;\n" \
    "                          past them the upgrade gets 429 (default 64)\n" \
    "  --auth-timeout MS       a session not signed in this long is closed with\n" \
    "                          1008 'authenticate first' (default 30000)\n"

//  TLS, stopping, metrics and files, the same in parley-gw and parley:
//  --tls-cert, --tls-key, --stop-timeout, --metrics, --file-chunk
#define GW_OPS_OPTIONS_HELP \
    "  --tls-cert FILE         serve https and wss (only) with this PEM certificate\n" \
    "                          chain; SIGHUP reloads it for new connections\n" \
    "  --tls-key FILE          the certificate's PEM private key (with --tls-cert)\n" \
    "  --stop-timeout MS       on SIGTERM, at most this long to answer the requests\n" \
    "                          in flight and close sessions with 1001 (default 5000)\n" \
    "  --metrics WHO           who may read /metrics: local (loopback, the default),\n" \
    "                          off, any, or IP addresses separated by commas\n" \
    "  --file-chunk BYTES      bytes of an upload or download passed to the files\n" \
    "                          plugin at a time (4096 to 983040, default 262144)\n"

//  Sets the option name (one of GW_OPS_OPTIONS_HELP's, without "--") from
//  its value, which must outlive config. Returns 0, or -1 with a sentence
//  for the user in error.
int
    gw_config_set_ops (gw_config_t *config, const char *name, const char *value,
                       char *error, size_t error_size);

//  Checks what the options set together: a certificate and its key, both
//  readable and matching. Returns 0, or -1 with a sentence in error.
int
    gw_config_check (const gw_config_t *config, char *error, size_t error_size);

//  Sets the limit option name (one of those above, without "--")
//  from its value. Returns 0, or -1 with a sentence for the user in error.
int
    gw_config_set_limit (gw_config_t *config, const char *name, const char *value,
                         char *error, size_t error_size);

//  Creates the server: listens, connects to the broker. Returns NULL (after
//  logging why) if it cannot listen. Caller owns return value. The config's
//  strings are copied.
gw_server_t *
    gw_server_new (const gw_config_t *config);

//  Destroys the server, closing every session; nullifies the reference.
void
    gw_server_destroy (gw_server_t **self_p);

//  The port it listens on (the real one when config.port was 0)
int
    gw_server_port (gw_server_t *self);

//  True when it serves https and wss
bool
    gw_server_tls (gw_server_t *self);

//  Serves until SIGINT or SIGTERM, or gw_server_stop, and the graceful stop
//  they begin. Returns 0.
int
    gw_server_run (gw_server_t *self);

//  Begins the graceful stop, after which gw_server_run returns (within
//  stop_timeout_ms); a second call makes it return at once. Safe from a
//  signal handler or another thread.
void
    gw_server_stop (gw_server_t *self);

#ifdef __cplusplus
}
#endif

#endif

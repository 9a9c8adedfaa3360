/*  =========================================================================
    gw_server - parley-gw: the WebSocket and HTTP front end

    One libwebsockets context on one service thread: serves the web UI from
    web_root over HTTP, /healthz, and the client protocol (PROTOCOL.md) on
    /ws on the same port. Each WebSocket is one session. Client JSON is
    transcoded to msgpack once (pl_transcode) and sent to the broker in an
    envelope over one DEALER socket whose ZMQ_FD is adopted into the lws loop;
    replies and deliveries come back the same way and are queued, bounded,
    on their sessions.

        gw_config_t config = { .listen_host = "127.0.0.1", .port = 8080,
                               .broker_endpoint = "tcp://127.0.0.1:7700",
                               .web_root = "web" };
        gw_server_t *server = gw_server_new (&config);
        if (server)
            gw_server_run (server);     //  until SIGINT/SIGTERM
        gw_server_destroy (&server);
    =========================================================================
*/

#ifndef GW_SERVER_H_INCLUDED
#define GW_SERVER_H_INCLUDED

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
} gw_config_t;

typedef struct _gw_server_t gw_server_t;

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

//  Serves until SIGINT or SIGTERM, or gw_server_stop. Returns 0.
int
    gw_server_run (gw_server_t *self);

//  Makes gw_server_run return soon; safe from a signal handler or another thread.
void
    gw_server_stop (gw_server_t *self);

#ifdef __cplusplus
}
#endif

#endif

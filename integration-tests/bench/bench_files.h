/*  =========================================================================
    bench_files - parley-bench's `files` scenario: POST /files and
    GET /files/<id> on the gateway's port, plain HTTP

    Registers one user over the protocol for a token, then measures
    - upload: one file of `size` bytes at a time, `repeat` times (MB/s);
    - download: the last of them `repeat` times, every byte checked (MB/s);
    - concurrent: `uploads` files of `size` bytes at once, one thread each,
      while the gateway's RSS (gateway_pid, when known) is read every 10 ms:
      its peak against its RSS before, and the throughput of them all.
    Every answer is checked: a status other than 201/200, a short body or a
    byte that differs is an error and fails the scenario.
    =========================================================================
*/

#ifndef BENCH_FILES_H_INCLUDED
#define BENCH_FILES_H_INCLUDED

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *host;               //  numeric address of the gateway
    int port;                       //  its port
    const char *ws_path;            //  its WebSocket path, for the token
    size_t size;                    //  bytes of each file
    int repeat;                     //  uploads and downloads measured one by one
    int uploads;                    //  uploads at once in the concurrent part
    int gateway_pid;                //  the gateway's process, 0 unknown
    FILE *json;                     //  the JSON output, or NULL
    int *json_count;                //  scenarios written to it so far
} bench_files_t;

//  Runs the scenario and prints its summary line. Returns 0, or -1 when
//  anything failed (said on stderr).
int
    bench_files_run (const bench_files_t *options);

#endif

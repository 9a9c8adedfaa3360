/*  =========================================================================
    bench_files - parley-bench's `files` scenario

    Blocking sockets and a thread per concurrent upload: the figures are the
    server's, and 20 threads writing as fast as the kernel takes their bytes
    are no bottleneck next to it.
    =========================================================================
*/

#define _GNU_SOURCE
#include "bench_files.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MiB         (1024.0 * 1024.0)
#define HEAD_MAX    8192

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

static int
s_connect (const bench_files_t *self)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) self->port) };
    int one = 1;
    if (fd < 0 || inet_pton (AF_INET, self->host, &address.sin_addr) != 1
    ||  connect (fd, (struct sockaddr *) &address, sizeof address)) {
        fprintf (stderr, "parley-bench: files: cannot connect to %s:%d: %s\n", self->host,
                 self->port, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int
s_write_all (int fd, const void *data, size_t size)
{
    const char *cursor = (const char *) data;
    while (size > 0) {
        ssize_t sent = send (fd, cursor, size, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0)
            return -1;
        cursor += sent;
        size -= (size_t) sent;
    }
    return 0;
}

//  Reads an HTTP answer's head into head (HEAD_MAX); returns the bytes of
//  the body read past it (left at the start of head + head_size + 4) or -1
static ssize_t
s_read_head (int fd, char *head, size_t *head_size)
{
    size_t size = 0;
    while (size < HEAD_MAX - 1) {
        ssize_t got = recv (fd, head + size, HEAD_MAX - 1 - size, 0);
        if (got <= 0)
            return -1;
        size += (size_t) got;
        head [size] = 0;
        char *end = strstr (head, "\r\n\r\n");
        if (end) {
            *head_size = (size_t) (end - head);
            return (ssize_t) (size - *head_size - 4);
        }
    }
    return -1;
}

static long long
s_content_length (const char *head)
{
    const char *field = strcasestr (head, "\r\ncontent-length:");
    return field? atoll (field + 17): -1;
}

//  A text field "name":"value" of a JSON answer into value (size bytes)
static bool
s_json_string (const char *json, const char *name, char *value, size_t size)
{
    char key [64];
    snprintf (key, sizeof key, "\"%s\":\"", name);
    const char *start = strstr (json, key);
    const char *end = start? strchr (start + strlen (key), '"'): NULL;
    if (!end || (size_t) (end - start - strlen (key)) >= size)
        return false;
    start += strlen (key);
    memcpy (value, start, (size_t) (end - start));
    value [end - start] = 0;
    return true;
}

//  A token for a new user, over one WebSocket: auth.register
static bool
s_token (const bench_files_t *self, char *token, size_t size)
{
    int fd = s_connect (self);
    if (fd < 0)
        return false;
    char text [1024];
    int length = snprintf (text, sizeof text, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n", self->ws_path, self->host);
    char head [HEAD_MAX];
    size_t head_size = 0;
    bool done = false;
    if (s_write_all (fd, text, (size_t) length) == 0 && s_read_head (fd, head, &head_size) == 0
    &&  strstr (head, " 101 ")) {
        char json [256];
        int json_size = snprintf (json, sizeof json, "{\"type\":\"auth.register\",\"id\":1,"
                                  "\"username\":\"pbfile%08x\",\"password\":\"bench-password\"}",
                                  (unsigned) (rand () ^ getpid ()));
        //  One masked text frame (mask 0: the bytes stay as they are)
        uint8_t frame [4 + 4 + 256] = { 0x81, (uint8_t) (0x80 | json_size), 0, 0, 0, 0 };
        memcpy (frame + 6, json, (size_t) json_size);
        char reply [2048];
        size_t got = 0;
        bool sent = s_write_all (fd, frame, 6 + (size_t) json_size) == 0;
        //  The reply frame, read until its token is whole
        while (sent && !done && got < sizeof reply - 1) {
            ssize_t more = recv (fd, reply + got, sizeof reply - 1 - got, 0);
            if (more <= 0)
                break;
            got += (size_t) more;
            reply [got] = 0;
            done = got > 2 && s_json_string (reply + 2, "token", token, size);
        }
    }
    close (fd);
    if (!done)
        fprintf (stderr, "parley-bench: files: could not register a user for a token\n");
    return done;
}

//  POST /files of size bytes of data; the new file's id into id (32).
//  Returns the seconds it took, or -1.
static double
s_upload (const bench_files_t *self, const char *token, const uint8_t *data, const char *name,
          char *id)
{
    int fd = s_connect (self);
    if (fd < 0)
        return -1;
    double start = s_now ();
    char text [1024];
    int length = snprintf (text, sizeof text, "POST /files HTTP/1.1\r\nHost: %s\r\nAuthorization: "
                           "Bearer %s\r\nX-Filename: %s\r\nContent-Type: application/octet-stream\r\n"
                           "Content-Length: %zu\r\n\r\n", self->host, token, name, self->size);
    char head [HEAD_MAX];
    size_t head_size = 0;
    ssize_t extra = -1;
    if (s_write_all (fd, text, (size_t) length) == 0 && s_write_all (fd, data, self->size) == 0)
        extra = s_read_head (fd, head, &head_size);
    long long body = extra >= 0? s_content_length (head): -1;
    while (extra >= 0 && body >= 0 && extra < body && head_size + 4 + (size_t) body < HEAD_MAX) {
        ssize_t got = recv (fd, head + head_size + 4 + extra, (size_t) (body - extra), 0);
        if (got <= 0)
            break;
        extra += got;
        head [head_size + 4 + extra] = 0;
    }
    double seconds = s_now () - start;
    close (fd);
    if (extra < 0 || strncmp (head, "HTTP/1.1 201", 12) || !s_json_string (head, "id", id, 32)) {
        fprintf (stderr, "parley-bench: files: upload %s failed: %.200s\n", name,
                 extra < 0? "no answer": head);
        return -1;
    }
    return seconds;
}

//  GET /files/<id>, every byte compared with data. Returns seconds, or -1.
static double
s_download (const bench_files_t *self, const char *id, const uint8_t *data)
{
    int fd = s_connect (self);
    if (fd < 0)
        return -1;
    double start = s_now ();
    char text [256];
    int length = snprintf (text, sizeof text, "GET /files/%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                           id, self->host);
    char head [HEAD_MAX];
    size_t head_size = 0;
    ssize_t extra = s_write_all (fd, text, (size_t) length) == 0?
                    s_read_head (fd, head, &head_size): -1;
    bool good = extra >= 0 && strncmp (head, "HTTP/1.1 200", 12) == 0
             && s_content_length (head) == (long long) self->size
             && memcmp (head + head_size + 4, data, (size_t) extra) == 0;
    size_t offset = good? (size_t) extra: self->size;
    static __thread uint8_t buffer [256 * 1024];
    while (offset < self->size) {
        ssize_t got = recv (fd, buffer, sizeof buffer, 0);
        if (got <= 0 || offset + (size_t) got > self->size
        ||  memcmp (buffer, data + offset, (size_t) got)) {
            good = false;
            break;
        }
        offset += (size_t) got;
    }
    double seconds = s_now () - start;
    close (fd);
    if (!good) {
        fprintf (stderr, "parley-bench: files: download %s failed or differed\n", id);
        return -1;
    }
    return seconds;
}

static long
s_rss_kb (int pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", pid);
    FILE *file = pid? fopen (path, "r"): NULL;
    long kb = -1;
    while (file && fgets (line, sizeof line, file))
        if (strncmp (line, "VmRSS:", 6) == 0)
            kb = strtol (line + 6, NULL, 10);
    if (file)
        fclose (file);
    return kb;
}

typedef struct {
    const bench_files_t *self;
    const char *token;
    const uint8_t *data;
    int index;
    double seconds;
} upload_job_t;

static void *
s_upload_thread (void *arg)
{
    upload_job_t *job = (upload_job_t *) arg;
    char name [32], id [32];
    snprintf (name, sizeof name, "concurrent-%d.bin", job->index);
    job->seconds = s_upload (job->self, job->token, job->data, name, id);
    return NULL;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

//  One by one: upload then download, repeat times; the median of each
static int
s_sequential (const bench_files_t *self, const char *token, const uint8_t *data,
              double *up_median, double *down_median)
{
    double up [64], down [64];
    char id [32];
    for (int index = 0; index < self->repeat; index++) {
        char name [32];
        snprintf (name, sizeof name, "bench-%d.bin", index);
        up [index] = s_upload (self, token, data, name, id);
        down [index] = up [index] < 0? -1: s_download (self, id, data);
        if (up [index] < 0 || down [index] < 0)
            return -1;
    }
    qsort (up, (size_t) self->repeat, sizeof (double), s_compare);
    qsort (down, (size_t) self->repeat, sizeof (double), s_compare);
    *up_median = up [self->repeat / 2];
    *down_median = down [self->repeat / 2];
    return 0;
}

//  uploads at once, the gateway's RSS sampled meanwhile
static int
s_concurrent (const bench_files_t *self, const char *token, const uint8_t *data,
              double *seconds, long *rss_before, long *rss_peak)
{
    upload_job_t jobs [256];
    pthread_t threads [256];
    *rss_before = *rss_peak = s_rss_kb (self->gateway_pid);
    double start = s_now ();
    for (int index = 0; index < self->uploads; index++) {
        jobs [index] = (upload_job_t) { .self = self, .token = token, .data = data, .index = index };
        pthread_create (&threads [index], NULL, s_upload_thread, &jobs [index]);
    }
    //  Sample until the last upload is answered
    int failed = 0;
    for (int index = 0; index < self->uploads; index++) {
        while (pthread_tryjoin_np (threads [index], NULL) == EBUSY) {
            long rss = s_rss_kb (self->gateway_pid);
            if (rss > *rss_peak)
                *rss_peak = rss;
            usleep (10000);
        }
        failed += jobs [index].seconds < 0;
    }
    *seconds = s_now () - start;
    return failed? -1: 0;
}

int
bench_files_run (const bench_files_t *self)
{
    if (self->repeat < 1 || self->repeat > 64 || self->uploads < 1 || self->uploads > 256) {
        fprintf (stderr, "parley-bench: files: --repeat 1..64 and --uploads 1..256\n");
        return -1;
    }
    char token [256];
    uint8_t *data = (uint8_t *) malloc (self->size? self->size: 1);
    if (!data || !s_token (self, token, sizeof token)) {
        free (data);
        return -1;
    }
    for (size_t index = 0; index < self->size; index++)
        data [index] = (uint8_t) (index * 2654435761u >> 13);
    double up = 0, down = 0, together = 0;
    long before = -1, peak = -1;
    int rc = s_sequential (self, token, data, &up, &down);
    if (rc == 0)
        rc = s_concurrent (self, token, data, &together, &before, &peak);
    free (data);
    double mib = (double) self->size / MiB;
    printf ("files: %.1f MiB, upload median %.1f MiB/s (%.3f s), download median %.1f MiB/s "
            "(%.3f s) of %d each; %d uploads at once %.1f MiB/s (%.2f s)",
            mib, up > 0? mib / up: 0, up, down > 0? mib / down: 0, down, self->repeat,
            self->uploads, together > 0? mib * self->uploads / together: 0, together);
    if (before >= 0)
        printf (", gateway RSS %.1f MiB before, peak %.1f MiB (+%.1f)", before / 1024.0,
                peak / 1024.0, (peak - before) / 1024.0);
    printf ("%s\n", rc? ", FAILED": "");
    if (self->json) {
        fprintf (self->json, "%s\n    {\"scenario\": \"files\", \"file_bytes\": %zu, \"repeat\": %d,"
                 " \"upload_s_median\": %.4f, \"download_s_median\": %.4f, \"uploads\": %d,"
                 " \"concurrent_s\": %.3f, \"gateway_rss_kb_before\": %ld,"
                 " \"gateway_rss_kb_peak\": %ld, \"failed\": %s}",
                 (*self->json_count)++? ",": "", self->size, self->repeat, up, down,
                 self->uploads, together, before, peak, rc? "true": "false");
    }
    return rc;
}

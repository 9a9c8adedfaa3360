/*  =========================================================================
    gw_limits - how many connections the gateway holds, in all and per address

    One record per source address while it has connections, dropped with its
    last one, so that a scan of the address space costs nothing lasting.
    =========================================================================
*/

#include "gw_limits.h"

#include <czmq.h>

typedef struct {
    char *address;              //  the table's key
    size_t connections;         //  open connections from it
    size_t unauthenticated;     //  of those, sessions not signed in
} s_address_t;

struct _gw_limits_conn_t {
    s_address_t *address;       //  counted on it
    bool health_only;           //  admitted past the global cap
    bool unauthenticated;       //  a session not signed in
};

struct _gw_limits_t {
    size_t max_connections;
    size_t max_per_address;
    size_t max_unauthenticated;
    size_t connections;         //  admitted as OK
    size_t health_connections;  //  admitted as HEALTH_ONLY
    zhashx_t *addresses;        //  address -> s_address_t * (owned)
};

static void
s_address_destroy (void **item)
{
    s_address_t *address = (s_address_t *) *item;
    if (address) {
        free (address->address);
        free (address);
        *item = NULL;
    }
}

gw_limits_t *
gw_limits_new (size_t max_connections, size_t max_per_address, size_t max_unauthenticated)
{
    gw_limits_t *self = (gw_limits_t *) zmalloc (sizeof (gw_limits_t));
    self->max_connections = max_connections;
    self->max_per_address = max_per_address;
    self->max_unauthenticated = max_unauthenticated;
    self->addresses = zhashx_new ();
    assert (self->addresses);
    zhashx_set_destructor (self->addresses, s_address_destroy);
    return self;
}

void
gw_limits_destroy (gw_limits_t **self_p)
{
    assert (self_p);
    gw_limits_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->addresses);
        free (self);
        *self_p = NULL;
    }
}

gw_limits_conn_t *
gw_limits_admit (gw_limits_t *self, const char *address, gw_admit_t *verdict_p)
{
    assert (self);
    assert (address);
    bool health_only = false;
    if (self->connections >= self->max_connections) {
        if (self->health_connections >= GW_LIMITS_HEALTH_SLOTS) {
            *verdict_p = GW_ADMIT_FULL;
            return NULL;
        }
        health_only = true;
    }
    s_address_t *record = (s_address_t *) zhashx_lookup (self->addresses, address);
    if (record && record->connections >= self->max_per_address) {
        *verdict_p = GW_ADMIT_ADDRESS;
        return NULL;
    }
    if (!record) {
        record = (s_address_t *) zmalloc (sizeof (s_address_t));
        record->address = strdup (address);
        assert (record->address);
        zhashx_insert (self->addresses, record->address, record);
    }
    record->connections++;
    if (health_only)
        self->health_connections++;
    else
        self->connections++;
    gw_limits_conn_t *conn = (gw_limits_conn_t *) zmalloc (sizeof (gw_limits_conn_t));
    conn->address = record;
    conn->health_only = health_only;
    *verdict_p = health_only? GW_ADMIT_HEALTH_ONLY: GW_ADMIT_OK;
    return conn;
}

void
gw_limits_release (gw_limits_t *self, gw_limits_conn_t **conn_p)
{
    assert (self);
    assert (conn_p);
    gw_limits_conn_t *conn = *conn_p;
    if (!conn)
        return;
    gw_limits_set_unauthenticated (self, conn, false);
    if (conn->health_only)
        self->health_connections--;
    else
        self->connections--;
    s_address_t *record = conn->address;
    if (--record->connections == 0)
        zhashx_delete (self->addresses, record->address);
    free (conn);
    *conn_p = NULL;
}

bool
gw_limits_health_only (gw_limits_conn_t *conn)
{
    return conn && conn->health_only;
}

bool
gw_limits_session_allowed (gw_limits_t *self, gw_limits_conn_t *conn)
{
    assert (self);
    return !conn || conn->address->unauthenticated < self->max_unauthenticated;
}

void
gw_limits_set_unauthenticated (gw_limits_t *self, gw_limits_conn_t *conn, bool unauthenticated)
{
    assert (self);
    if (!conn || conn->unauthenticated == unauthenticated)
        return;
    conn->unauthenticated = unauthenticated;
    if (unauthenticated)
        conn->address->unauthenticated++;
    else
        conn->address->unauthenticated--;
}

size_t
gw_limits_connections (gw_limits_t *self)
{
    assert (self);
    return self->connections;
}

size_t
gw_limits_address_connections (gw_limits_t *self, const char *address)
{
    assert (self);
    s_address_t *record = (s_address_t *) zhashx_lookup (self->addresses, address);
    return record? record->connections: 0;
}

size_t
gw_limits_max_connections (gw_limits_t *self)
{
    assert (self);
    return self->max_connections;
}

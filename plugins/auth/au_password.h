/*  =========================================================================
    au_password - auth.password {password, new_password} -> {token}
    (PROTOCOL.md, "Accounts (1.1)")

    Changes the password of the session's user: the current password is
    verified on the pool (a wrong one counts against the login limits), the
    new one is checked (au_common) and hashed on the pool, a fresh token is
    stored, then store.user.set_password replaces the hash and deletes every
    other token of the user. Every other session of the user hears
    logged_out and is unbound, as parleyctl's reset-password does
    (auth_logout_user); this session stays and gets the fresh token.

    Part of the auth plugin: works on its state (au_plugin.h), holds none.
    =========================================================================
*/

#ifndef AU_PASSWORD_H_INCLUDED
#define AU_PASSWORD_H_INCLUDED

#include "au_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Serves an auth.password request (lent until it is answered)
void
    au_password_request (auth_t *self, parley_request_t *request);

//  The pool finished op's job (op->kind is OP_PASSWORD): the current
//  password checked, or the new one hashed. The caller destroys job.
void
    au_password_on_job (auth_t *self, op_t *op, au_job_t *job);

#ifdef __cplusplus
}
#endif

#endif

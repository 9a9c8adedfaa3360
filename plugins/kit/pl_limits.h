/*  =========================================================================
    pl_limits - the protocol's limits, in one place

    The numbers that PROTOCOL.md (the client contract) and proto/STORE.md
    (the store contract) fix, so that every plugin checks the same ones and
    a change of the contract is a change of one line. A deployment's own
    limits (rates, quotas, queue bounds) are options of the plugin that
    enforces them, not here. Lengths are as the contract counts them:
    "characters" are Unicode characters (pl_text_utf8_length), "bytes" are
    bytes of UTF-8. A header only: no dependency.
    =========================================================================
*/

#ifndef PL_LIMITS_H_INCLUDED
#define PL_LIMITS_H_INCLUDED

//  --------------------------------------------------------------------------
//  PROTOCOL.md, "Names, limits, times" and "Frames"

#define PL_USERNAME_MIN             3           //  ^[A-Za-z0-9_.-]{3,32}$
#define PL_USERNAME_MAX             32
#define PL_ROOM_NAME_MAX            64          //  ^[A-Za-z0-9_-]{1,64}$
#define PL_PASSWORD_MIN             8           //  bytes
#define PL_PASSWORD_MAX             1024        //  bytes
#define PL_TEXT_MAX                 4000        //  characters of a message, at least 1
#define PL_DESCRIPTION_MAX          500         //  characters of a room's description
#define PL_PARTICIPANTS_MIN         2           //  a room's max_participants
#define PL_PARTICIPANTS_MAX         10000
#define PL_PARTICIPANTS_DEFAULT     50
#define PL_ID_MAX                   64          //  bytes of a request's string id
#define PL_NONCE_MAX                64          //  characters of [A-Za-z0-9_-], at least 1
#define PL_EMOJI_MAX                32          //  bytes of a reaction's emoji, at least 1
#define PL_REACTIONS_MAX            20          //  different emoji on one message

//  Pages: a history, the room directory
#define PL_HISTORY_DEFAULT          50          //  room.history, pm.history: limit
#define PL_HISTORY_MAX              200
#define PL_DIRECTORY_DEFAULT        50          //  room.directory: limit
#define PL_DIRECTORY_MAX            200

//  --------------------------------------------------------------------------
//  proto/STORE.md: what a store accepts in one request

#define PL_STORE_NAME_MAX           256         //  bytes of a stored name
#define PL_STORE_HASH_MAX           1024        //  bytes of a password or token hash
#define PL_STORE_SEEN_MAX           1024        //  users in one store.user.seen
#define PL_STORE_LIST_MAX           1000        //  the largest page of a store list
#define PL_STORE_APPEND_MAX         256         //  entries in one store.msg/pm.append
#define PL_STORE_DESCRIPTION_MAX    2000        //  bytes of a stored description
#define PL_STORE_TEXT_MAX           16000       //  bytes of a stored message text
//  Files (schema version 13)
#define PL_FILE_ID_MAX              64          //  characters of [A-Za-z0-9_-] of a file's id
#define PL_FILE_NAME_MAX            255         //  bytes of a file's name
#define PL_FILE_TYPE_MAX            255         //  bytes of a file's type
#define PL_FILE_CHUNK_MAX           (1024 * 1024 - 64 * 1024)   //  bytes of one piece

#endif

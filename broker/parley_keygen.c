/*  =========================================================================
    parley-keygen - makes the CURVE key pairs that peers and the broker use

    parley-keygen [--name NAME] [--allow DIR] [--force] FILE
        writes a new key pair in zcert's format: FILE (the public
        certificate, safe to copy) and FILE_secret (both keys, mode 0600);
        with --allow, also copies the public certificate into the broker's
        folder of allowed peers (DIR/NAME.cert, DIR made 0700 if missing)
    parley-keygen --allow DIR --add FILE
        copies an existing public certificate into DIR
    --admin ADMIN_DIR (with --allow) also copies it into the broker's
        folder of operators (--curve-admin): over tcp:// only those keys
        may say hello as parleyctl, and they must be allowed peers too

    A broker is given its own FILE with --curve-cert and DIR with
    --curve-allow; a peer its own FILE with --curve-cert and the broker's
    public FILE with --curve-broker. See broker/README.md.
    =========================================================================
*/

#include <czmq.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: parley-keygen [--name NAME] [--allow DIR [--admin DIR]] [--force] FILE\n"
        "       parley-keygen --allow DIR [--admin DIR] --add FILE\n"
        "Makes a CURVE key pair for a Parley broker or peer: FILE is the public\n"
        "certificate, FILE_secret holds the secret key too (mode 0600).\n"
        "\n"
        "  --name NAME   the name written into the certificate (default: FILE's\n"
        "                base name); also the file's name in --allow's folder\n"
        "  --allow DIR   also put the public certificate into DIR, the broker's\n"
        "                --curve-allow folder (created, mode 0700, if missing)\n"
        "  --admin DIR   with --allow, also put it into DIR, the broker's\n"
        "                --curve-admin folder: an operator's key (parleyctl)\n"
        "  --add FILE    put the existing public certificate FILE into --allow's\n"
        "                folder instead of making a new pair\n"
        "  --force       overwrite FILE and FILE_secret if they exist\n"
        "  --help        this text\n");
}

//  The last component of a path, without a ".cert" or "_secret" ending
static char *
s_base_name (const char *path)
{
    const char *slash = strrchr (path, '/');
    char *name = strdup (slash ? slash + 1 : path);
    if (!name)
        return NULL;
    size_t length = strlen (name);
    if (length > 7 && streq (name + length - 7, "_secret"))
        name [length -= 7] = 0;
    if (length > 5 && streq (name + length - 5, ".cert"))
        name [length - 5] = 0;
    return name;
}

//  Puts cert's public part into dir as NAME.cert. Returns 0 or -1 (logged).
static int
s_allow_one (zcert_t *cert, const char *dir, const char *name)
{
    if (mkdir (dir, 0700) && errno != EEXIST) {
        fprintf (stderr, "parley-keygen: cannot create %s: %s\n", dir, strerror (errno));
        return -1;
    }
    char *path = zsys_sprintf ("%s/%s.cert", dir, name);
    int rc = path ? zcert_save_public (cert, path) : -1;
    if (rc)
        fprintf (stderr, "parley-keygen: cannot write %s/%s.cert\n", dir, name);
    else
        printf ("allowed %s (public key %s)\n", path, zcert_public_txt (cert));
    zstr_free (&path);
    return rc;
}

//  Puts cert's public part into the allowed folder, and into the operators'
//  folder when admin is set (an operator's key must pass the handshake too)
static int
s_allow (zcert_t *cert, const char *dir, const char *admin, const char *name)
{
    if (s_allow_one (cert, dir, name))
        return -1;
    return admin ? s_allow_one (cert, admin, name) : 0;
}

//  Adds an existing public certificate to the folder
static int
s_add (const char *file, const char *dir, const char *admin, const char *name)
{
    if (!zsys_file_exists (file)) {
        fprintf (stderr, "parley-keygen: %s does not exist\n", file);
        return 1;
    }
    zcert_t *cert = zcert_load (file);
    if (!cert) {
        fprintf (stderr, "parley-keygen: %s is not a certificate parley-keygen wrote\n", file);
        return 1;
    }
    int rc = s_allow (cert, dir, admin, name) ? 1 : 0;
    zcert_destroy (&cert);
    return rc;
}

//  Makes and writes a new pair. Returns the exit status.
static int
s_make (const char *file, const char *dir, const char *admin, const char *name,
        bool force)
{
    char *secret = zsys_sprintf ("%s_secret", file);
    assert (secret);
    if (!force && (zsys_file_exists (file) || zsys_file_exists (secret))) {
        fprintf (stderr, "parley-keygen: %s or %s exists already (--force replaces it)\n",
                 file, secret);
        zstr_free (&secret);
        return 1;
    }
    //  A missing folder for the pair is made owner-only
    char *folder = strdup (file);
    assert (folder);
    char *slash = strrchr (folder, '/');
    if (slash && slash != folder) {
        *slash = 0;
        if (mkdir (folder, 0700) && errno != EEXIST)
            fprintf (stderr, "parley-keygen: cannot create %s: %s\n", folder, strerror (errno));
    }
    free (folder);
    zcert_t *cert = zcert_new ();
    assert (cert);
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "made-by", "parley-keygen");
    int rc = 0;
    //  The secret file is made owner-only before the key is written in it
    FILE *guard = fopen (secret, "w");
    if (!guard || fchmod (fileno (guard), 0600) || fclose (guard)) {
        fprintf (stderr, "parley-keygen: cannot write %s: %s\n", secret, strerror (errno));
        rc = 1;
    }
    else
    if (zcert_save (cert, file)) {
        fprintf (stderr, "parley-keygen: cannot write %s\n", file);
        rc = 1;
    }
    else
        printf ("wrote %s and %s (public key %s)\n", file, secret, zcert_public_txt (cert));
    if (rc == 0 && dir && s_allow (cert, dir, admin, name))
        rc = 1;
    zcert_destroy (&cert);
    zstr_free (&secret);
    return rc;
}

int
main (int argc, char *argv [])
{
    enum { OPT_NAME = 1, OPT_ALLOW, OPT_ADMIN, OPT_ADD, OPT_FORCE, OPT_HELP };
    static const struct option options [] = {
        { "name",  required_argument, NULL, OPT_NAME },
        { "allow", required_argument, NULL, OPT_ALLOW },
        { "admin", required_argument, NULL, OPT_ADMIN },
        { "add",   required_argument, NULL, OPT_ADD },
        { "force", no_argument,       NULL, OPT_FORCE },
        { "help",  no_argument,       NULL, OPT_HELP },
        { NULL, 0, NULL, 0 }
    };
    const char *name = NULL, *allow = NULL, *admin = NULL, *add = NULL;
    bool force = false;
    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        switch (option) {
            case OPT_NAME:  name = optarg;  break;
            case OPT_ALLOW: allow = optarg; break;
            case OPT_ADMIN: admin = optarg; break;
            case OPT_ADD:   add = optarg;   break;
            case OPT_FORCE: force = true;   break;
            case OPT_HELP:
                s_usage (stdout);
                return 0;
            default:
                s_usage (stderr);
                return 2;
        }
    }
    const char *file = add ? add : optind < argc ? argv [optind] : NULL;
    if (!file || argc - optind != (add ? 0 : 1) || (add && !allow)) {
        s_usage (stderr);
        return 2;
    }
    if (admin && !allow) {
        fprintf (stderr, "parley-keygen: --admin goes with --allow: an operator's key must"
                 " also be an allowed peer key to pass the broker's handshake\n");
        return 2;
    }
    if (name && (!*name || strchr (name, '/'))) {
        fprintf (stderr, "parley-keygen: --name '%s' cannot be a file name\n", name);
        return 2;
    }
    zsys_init ();
    char *base = s_base_name (file);
    assert (base);
    int rc = add ? s_add (file, allow, admin, name ? name : base)
                 : s_make (file, allow, admin, name ? name : base, force);
    free (base);
    return rc;
}

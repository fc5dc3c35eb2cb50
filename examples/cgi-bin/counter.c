/* The demo capsule's visit counter as a C CGI program.
 *
 * This example demonstrates a CGI program sharing a record with the capsule's
 * own routes through the bridge: it counts in the very record the in-process
 * /counter route keeps (games/counter.py, slab "visits", layout "<QQ": count
 * then ever, two little-endian 64-bit integers), under the same per-player
 * turn, so a visit here and a visit there never lose each other's count. It
 * also shows the fallback for a write that met a conflict: redo the change on
 * the record the server sent back and write it with compare-and-set.
 *
 * Build it, from this directory, into a capsule's CGI directory:
 *   cc -O2 -o counter.cgi counter.c ../../clients/c/sesh_bridge.c -I../../clients/c
 *   mkdir -p capsule/cgi-bin && mv counter.cgi capsule/cgi-bin/
 * serve it with
 *   jetforce-sesh --dir capsule --bridge-socket /run/capsule/sesh.sock
 * and open gemini://localhost/cgi-bin/counter.cgi. The server tells its CGI
 * programs the socket in SESH_BRIDGE_SOCKET; SOCKET below is for running the
 * program by hand.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sesh_bridge.h"

#define SOCKET "/run/capsule/sesh.sock"
#define RECORD_SIZE 16 /* "<QQ" */
#define MAX_TRIES 10

/* Bytes, not a struct of uint64_t: the layout says little-endian whatever
 * this machine's byte order is. */
static unsigned long long get_le64(const unsigned char *p) {
    unsigned long long value = 0;
    int i;
    for (i = 7; i >= 0; i--) value = value << 8 | p[i];
    return value;
}

static void put_le64(unsigned char *p, unsigned long long value) {
    int i;
    for (i = 0; i < 8; i++) {
        p[i] = (unsigned char)(value & 0xFF);
        value >>= 8;
    }
}

static void visit(unsigned char *record) {
    put_le64(record, get_le64(record) + 1);         /* count */
    put_le64(record + 8, get_le64(record + 8) + 1); /* ever */
}

/* A short reason for the player; the details go to stderr, the server's log. */
static int failed(int code) {
    fprintf(stderr, "counter.cgi: %s\n", sesh_error());
    switch (code) {
    case SESH_NOT_VALID: /* expired: what the capsule's /counter answers too */
        printf("62 %s\r\n", sesh_error());
        break;
    case SESH_UNAVAILABLE:
        fputs("41 The session store is unavailable\r\n", stdout);
        break;
    case SESH_REFUSED:
        fputs("40 The session store refused the visit: try again\r\n", stdout);
        break;
    case SESH_CONFLICT:
        fputs("40 Too many visits at once: try again\r\n", stdout);
        break;
    default:
        fputs("40 The session store is misconfigured\r\n", stdout);
        break;
    }
    return 0; /* not a crash: the status line has told the player */
}

int main(void) {
    const char *hash = getenv("TLS_CLIENT_HASH");
    unsigned char record[RECORD_SIZE];
    int rc, tries;
    if (hash == NULL || hash[0] == '\0') {
        fputs("60 Attach a client certificate\r\n", stdout);
        return 0;
    }
    rc = sesh_init(RECORD_SIZE, SOCKET);
    if (rc == SESH_OK) rc = sesh_select("visits");
    /* Holds the player's turn: the capsule's /counter waits till the update. */
    if (rc == SESH_OK) rc = sesh_lookup(hash, record);
    if (rc == SESH_OK) {
        visit(record);
        rc = sesh_update(record);
    }
    /* Only when the turn ran out (this program stalled for 10 s) or another
     * program wrote with compare-and-set: record holds what is there now. */
    for (tries = 0; rc == SESH_CONFLICT && tries < MAX_TRIES; tries++) {
        visit(record);
        rc = sesh_compare_and_set(record);
    }
    sesh_close();
    if (rc != SESH_OK) return failed(rc);
    printf("20 text/gemini\r\n"
           "# Visit counter (C CGI)\n\n"
           "Visit number %llu.\n\n"
           "=> /cgi-bin/counter.cgi Visit again\n"
           "=> /counter The same count, in-process\n",
           get_le64(record));
    return 0;
}

/* sesh_bridge: the C client of jetforce-sesh's bridge. Contract: sesh_bridge.h;
 * protocol: docs/reference/bridge.md. */
/* POSIX.1-2008 (sockets, poll, MSG_NOSIGNAL) under a plain cc -std=c99 too,
 * which would hide it. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "sesh_bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* The longest certificate date this client passes on (Jetforce writes 20
 * characters), and the room for a player on the wire: the fingerprint, and for
 * the requesting player's own the certificate's two dates, each after a space. */
#define MAX_DATE 32
#define WHO_ROOM (SESH_MAX_FINGERPRINT + 2 * (1 + MAX_DATE))
/* The largest message this client builds (a COMPARE-AND-SET with the longest
 * player it sends), within the server's limit of SESH_MAX_RECORD + 512. */
#define MAX_REQUEST 65792
/* The reference bounds the client's messages only. A reply with a record is at
 * most 1 + 8 + SESH_MAX_RECORD; a message reply is trusted up to the client's
 * own limit, and anything longer is taken for a broken stream. */
#define MAX_REPLY 65792
#define ERROR_SIZE 256

/* Fails to compile if a COMPARE-AND-SET or a reply with a record could pass
 * the limits above: the buffers below are sized by them. */
typedef char sesh_request_fits[
    10 + WHO_ROOM + SESH_MAX_RECORD <= MAX_REQUEST && WHO_ROOM <= 255 &&
    5 + SESH_MAX_SLAB <= MAX_REQUEST && 9 + SESH_MAX_RECORD <= MAX_REPLY ? 1 : -1];

#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

struct state {
    int fd; /* -1: not connected */
    int ready; /* sesh_init succeeded */
    int init_code; /* what every call returns while not ready */
    size_t record_size;
    char path[SUN_PATH_SIZE];
    char slab[SESH_MAX_SLAB + 1];
    char who[WHO_ROOM + 1]; /* the player looked up last, as sent */
    size_t who_size; /* 0: no player looked up */
    int looked_up; /* this connection sent a LOOKUP that succeeded */
    unsigned long long version;
    char error[ERROR_SIZE];
};

static struct state st = {
    -1, 0, SESH_PROTOCOL, 0, "", "", "", 0, 0, 0,
    "sesh_init has not been called"};

/* A new connection's SELECT, waiting to go out with its first request. */
#define SELECT_ROOM (4 + 5 + SESH_MAX_SLAB)
static unsigned char select_frame[SELECT_ROOM];
static size_t select_size; /* 0: nothing waiting */

/* Four bytes of length prefix, then the request: sent with one write, after
 * the SELECT waiting, if any, copied into the room before it. */
static unsigned char frame[SELECT_ROOM + 4 + MAX_REQUEST];
static unsigned char *const out = frame + SELECT_ROOM;
static unsigned char in[MAX_REPLY];

static int fail(int code, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(st.error, sizeof st.error, format, args);
    va_end(args);
    return code;
}

/* The server's message as one line: a CGI program may put it in a status line,
 * where a CR or LF would end the header early. */
static void take_message(const unsigned char *text, size_t size) {
    size_t i;
    if (size > ERROR_SIZE - 1) {
        size = ERROR_SIZE - 1;
        /* Cut before the character the limit splits, not inside it. */
        while (size > 0 && (text[size] & 0xC0) == 0x80) size--;
    }
    for (i = 0; i < size; i++) {
        unsigned char c = text[i];
        st.error[i] = (char)(c < 0x20 || c == 0x7F ? ' ' : c);
    }
    st.error[size] = '\0';
    if (size == 0) fail(0, "the bridge gave no reason");
}

static void put_u32(unsigned char *p, unsigned long v) {
    p[0] = (unsigned char)(v >> 24 & 0xFF);
    p[1] = (unsigned char)(v >> 16 & 0xFF);
    p[2] = (unsigned char)(v >> 8 & 0xFF);
    p[3] = (unsigned char)(v & 0xFF);
}

static unsigned long get_u32(const unsigned char *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 |
           (unsigned long)p[2] << 8 | (unsigned long)p[3];
}

static void put_u64(unsigned char *p, unsigned long long v) {
    int i;
    for (i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xFF);
        v >>= 8;
    }
}

static unsigned long long get_u64(const unsigned char *p) {
    unsigned long long v = 0;
    int i;
    for (i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static void disconnect(void) {
    if (st.fd >= 0) {
        /* Not retried on EINTR: on Linux the descriptor is gone either way,
         * and a retry could close one another thread just opened. */
        close(st.fd);
        st.fd = -1;
    }
    st.looked_up = 0;
    select_size = 0;
}

static int unavailable(const char *what, int error) {
    disconnect();
    if (error == EAGAIN || error == EWOULDBLOCK)
        return fail(SESH_UNAVAILABLE, "the bridge did not answer in %d s",
                    SESH_REPLY_TIMEOUT_SECONDS);
    return fail(SESH_UNAVAILABLE, "%s %s: %s", what, st.path, strerror(error));
}

/* 0, or the errno that stopped the write. */
static int write_all(const unsigned char *data, size_t size) {
    /* A server gone away must give an error, not the SIGPIPE that would kill
     * the CGI program before it prints a status line. */
#ifdef MSG_NOSIGNAL
    const int flags = MSG_NOSIGNAL;
#else
    const int flags = 0; /* SO_NOSIGPIPE was set on the socket instead */
#endif
    while (size > 0) {
        ssize_t sent = send(st.fd, data, size, flags);
        if (sent < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        data += sent;
        size -= (size_t)sent;
    }
    return 0;
}

static int read_all(unsigned char *data, size_t size) {
    while (size > 0) {
        ssize_t got = read(st.fd, data, size);
        if (got < 0) {
            if (errno == EINTR) continue;
            return unavailable("cannot read from", errno);
        }
        if (got == 0) {
            disconnect();
            return fail(SESH_UNAVAILABLE, "the bridge closed the connection");
        }
        data += got;
        size -= (size_t)got;
    }
    return SESH_OK;
}

static int broken(const char *format, ...) {
    va_list args;
    /* The stream can no longer be trusted to be in step with the requests. */
    disconnect();
    va_start(args, format);
    vsnprintf(st.error, sizeof st.error, format, args);
    va_end(args);
    return SESH_PROTOCOL;
}

/* Send the request of `size` bytes in out[4..], read the reply into in[].
 * SESH_OK: K of exactly `ok_size` bytes. SESH_CONFLICT (only when
 * `may_conflict`): X of the current version and record, checked for size. */
static int read_reply(unsigned long *reply_size) {
    unsigned char prefix[4];
    int rc = read_all(prefix, 4);
    if (rc != SESH_OK) return rc;
    *reply_size = get_u32(prefix);
    if (*reply_size == 0 || *reply_size > MAX_REPLY)
        return broken("the bridge sent a reply of %lu bytes (at most %lu)",
                      *reply_size, (unsigned long)MAX_REPLY);
    return read_all(in, *reply_size);
}

static int exchange(size_t size, size_t ok_size, int may_conflict) {
    unsigned long reply_size;
    size_t selecting = select_size;
    int rc, write_error;
    put_u32(out, (unsigned long)size);
    /* The SELECT goes in the same write: the server answers it at once, so it
     * costs no round trip of its own. */
    memcpy(out - selecting, select_frame, selecting);
    select_size = 0;
    write_error = write_all(out - selecting, selecting + 4 + size);
    /* A server that turned the connection away (too many open) answered its
     * SELECT and closed: that answer says why, where the write says only
     * "broken pipe". */
    if (write_error != 0 &&
        (selecting == 0 || (write_error != EPIPE && write_error != ECONNRESET)))
        return unavailable("cannot write to", write_error);
    if (selecting > 0) {
        rc = read_reply(&reply_size);
        if (rc != SESH_OK)
            return write_error ? unavailable("cannot write to", write_error) : rc;
        if (in[0] == 'E' || in[0] == 'N') {
            /* Either way the server has closed its end: it will not answer
             * the request sent with the SELECT as if the SELECT had worked. */
            take_message(in + 1, reply_size - 1);
            disconnect();
            return in[0] == 'E' ? SESH_PROTOCOL : SESH_REFUSED;
        }
        if (in[0] != 'K' || reply_size != 1)
            return broken("the bridge's reply to SELECT has code %lu and %lu"
                          " bytes, not K and 1", (unsigned long)in[0],
                          reply_size);
        if (write_error != 0) return unavailable("cannot write to", write_error);
    }
    rc = read_reply(&reply_size);
    if (rc != SESH_OK) return rc;
    switch (in[0]) {
    case 'K':
        if (reply_size != ok_size)
            return broken("the bridge's K reply has %lu bytes, not %lu",
                          reply_size, (unsigned long)ok_size);
        return SESH_OK;
    case 'X':
        if (!may_conflict)
            return broken("the bridge sent X (%lu bytes) to a request that"
                          " cannot conflict", reply_size);
        if (reply_size != 9 + st.record_size)
            return broken("the bridge's X reply has %lu bytes, not %lu",
                          reply_size, (unsigned long)(9 + st.record_size));
        return SESH_CONFLICT; /* the caller says so in sesh_error() */
    case 'N':
        take_message(in + 1, reply_size - 1);
        return SESH_REFUSED;
    case 'V':
        take_message(in + 1, reply_size - 1);
        return SESH_NOT_VALID;
    case 'E':
        take_message(in + 1, reply_size - 1);
        disconnect(); /* the server has closed its end */
        return SESH_PROTOCOL;
    default:
        return broken("the bridge sent an unknown reply code %lu (%lu bytes)",
                      (unsigned long)in[0], reply_size);
    }
}

/* connect(), finishing one that a signal interrupted: it carries on in the
 * background and must be waited for, not started again. */
static int connect_socket(const struct sockaddr_un *address) {
    struct pollfd wait_for;
    int error = 0;
    socklen_t error_size = sizeof error;
    if (connect(st.fd, (const struct sockaddr *)address, sizeof *address) == 0)
        return 0;
    if (errno != EINTR) return errno;
    wait_for.fd = st.fd;
    wait_for.events = POLLOUT;
    for (;;) {
        int ready = poll(&wait_for, 1, SESH_REPLY_TIMEOUT_SECONDS * 1000);
        if (ready > 0) break;
        if (ready == 0) return ETIMEDOUT;
        if (errno != EINTR) return errno;
    }
    if (getsockopt(st.fd, SOL_SOCKET, SO_ERROR, &error, &error_size) != 0)
        return errno;
    return error;
}

static int ensure_connected(void) {
    struct sockaddr_un address;
    struct timeval timeout;
    size_t name_size;
    int error;
    if (!st.ready) return st.init_code; /* its message stays */
    if (st.fd >= 0) return SESH_OK;
    st.fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (st.fd < 0) return unavailable("cannot make a socket for", errno);
    /* A program the CGI starts must not keep the connection, and with it the
     * player's turn, open after the CGI exits. */
    (void)fcntl(st.fd, F_SETFD, FD_CLOEXEC);
    timeout.tv_sec = SESH_REPLY_TIMEOUT_SECONDS;
    timeout.tv_usec = 0;
    /* A hung server must not hang the CGI program, and its player, for good. */
    (void)setsockopt(st.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    (void)setsockopt(st.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    {
        int on = 1;
        (void)setsockopt(st.fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
    }
#endif
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    memcpy(address.sun_path, st.path, strlen(st.path) + 1);
    error = connect_socket(&address);
    if (error != 0) return unavailable("cannot connect to", error);
    name_size = strlen(st.slab);
    put_u32(select_frame, (unsigned long)(5 + name_size));
    select_frame[4] = 'S';
    put_u32(select_frame + 5, (unsigned long)st.record_size);
    memcpy(select_frame + 9, st.slab, name_size);
    select_size = 9 + name_size;
    return SESH_OK;
}

int sesh_init(int record_size, const char *socket_path) {
    const char *path = getenv("SESH_BRIDGE_SOCKET");
    disconnect();
    st.ready = 0;
    st.record_size = 0;
    st.path[0] = '\0';
    st.slab[0] = '\0';
    st.who_size = 0;
    st.version = 0;
    if (path == NULL || path[0] == '\0') path = socket_path;
    if (record_size < 1 || record_size > SESH_MAX_RECORD)
        return st.init_code = fail(SESH_PROTOCOL,
                                   "record size %d is not 1 to %d bytes",
                                   record_size, SESH_MAX_RECORD);
    if (path == NULL || path[0] == '\0')
        return st.init_code = fail(SESH_UNAVAILABLE,
                                   "no socket path: SESH_BRIDGE_SOCKET is not"
                                   " set and sesh_init was given none");
    if (strlen(path) >= sizeof st.path)
        return st.init_code = fail(SESH_UNAVAILABLE,
                                   "socket path is longer than %lu bytes: %.100s",
                                   (unsigned long)sizeof st.path - 1, path);
    memcpy(st.path, path, strlen(path) + 1);
    st.record_size = (size_t)record_size;
    st.ready = 1;
    st.init_code = SESH_OK;
    st.error[0] = '\0';
    return SESH_OK;
}

int sesh_select(const char *slab) {
    size_t size;
    if (!st.ready) return st.init_code; /* its message stays */
    if (slab == NULL) slab = "";
    size = strlen(slab);
    if (size > SESH_MAX_SLAB)
        return fail(SESH_PROTOCOL, "slab name is longer than %d bytes",
                    SESH_MAX_SLAB);
    disconnect();
    memcpy(st.slab, slab, size + 1);
    return ensure_connected();
}

/* The player on the wire, into st.who: the fingerprint, and when it is the
 * requesting player's own (TLS_CLIENT_HASH) the certificate's dates from the
 * CGI environment ("-" for one not set), so that the server refuses an
 * expired certificate as the capsule's routes do (SESH_NOT_VALID). */
static int make_who(const char *sha256, size_t size) {
    static const char *const names[2] = {"TLS_CLIENT_NOT_BEFORE",
                                         "TLS_CLIENT_NOT_AFTER"};
    const char *own = getenv("TLS_CLIENT_HASH");
    const char *dates[2];
    size_t at = size, length;
    int i;
    memcpy(st.who, sha256, size);
    st.who[at] = '\0';
    if (own == NULL || strcmp(own, sha256) != 0) return SESH_OK;
    for (i = 0; i < 2; i++) {
        dates[i] = getenv(names[i]);
        if (dates[i] == NULL || dates[i][0] == '\0') dates[i] = "-";
    }
    if (strcmp(dates[0], "-") == 0 && strcmp(dates[1], "-") == 0) return SESH_OK;
    for (i = 0; i < 2; i++) {
        length = strlen(dates[i]);
        if (length > MAX_DATE)
            return fail(SESH_PROTOCOL, "%s is longer than %d characters: not a"
                        " date", names[i], MAX_DATE);
        st.who[at++] = ' ';
        memcpy(st.who + at, dates[i], length);
        at += length;
    }
    st.who[at] = '\0';
    return SESH_OK;
}

/* LOOKUP ('L', taking the turn) or PEEK ('P'). */
static int read_record(char code, const char *sha256, void *buf) {
    size_t size;
    int rc;
    /* Whatever happens below, no later write may go to the previous player. */
    st.who_size = 0;
    st.version = 0;
    if (!st.ready) return st.init_code; /* its message stays */
    if (sha256 == NULL || sha256[0] == '\0')
        return fail(SESH_PROTOCOL, "no fingerprint: is TLS_CLIENT_HASH set?");
    if (buf == NULL) return fail(SESH_PROTOCOL, "no buffer for the record");
    size = strlen(sha256);
    if (size > SESH_MAX_FINGERPRINT)
        return fail(SESH_PROTOCOL, "fingerprint is longer than %d characters",
                    SESH_MAX_FINGERPRINT);
    rc = make_who(sha256, size);
    if (rc != SESH_OK) return rc;
    size = strlen(st.who);
    rc = ensure_connected();
    if (rc != SESH_OK) return rc;
    /* A LOOKUP ends the turn an earlier one held; after a PEEK, sesh_update
     * must not write to the player peeked at as if under the turn. */
    st.looked_up = 0;
    out[4] = (unsigned char)code;
    memcpy(out + 5, st.who, size);
    rc = exchange(1 + size, 9 + st.record_size, 0);
    if (rc != SESH_OK) return rc;
    st.who_size = size;
    st.version = get_u64(in + 1);
    if (code == 'L') st.looked_up = 1;
    memcpy(buf, in + 9, st.record_size);
    return SESH_OK;
}

int sesh_lookup(const char *sha256, void *buf) {
    return read_record('L', sha256, buf);
}

int sesh_peek(const char *sha256, void *buf) {
    return read_record('P', sha256, buf);
}

/* After a write: the new version, or on X the current record and version.
 * Whatever the answer, the write ended the turn. */
static int written(int rc, void *buf, const char *conflict) {
    st.looked_up = 0;
    if (rc == SESH_OK) {
        st.version = get_u64(in + 1);
    } else if (rc == SESH_CONFLICT) {
        st.version = get_u64(in + 1);
        memcpy(buf, in + 9, st.record_size);
        fail(SESH_CONFLICT, "%s", conflict);
    }
    return rc;
}

int sesh_update(void *buf) {
    int rc;
    if (!st.ready) return st.init_code; /* its message stays */
    if (buf == NULL) return fail(SESH_PROTOCOL, "no buffer for the record");
    if (st.who_size == 0)
        return fail(SESH_PROTOCOL, "sesh_update before a sesh_lookup");
    if (!st.looked_up)
        return fail(SESH_PROTOCOL,
                    "sesh_update needs the turn of a sesh_lookup on this"
                    " connection: use sesh_compare_and_set");
    out[4] = 'U';
    memcpy(out + 5, buf, st.record_size);
    rc = exchange(1 + st.record_size, 9, 1);
    return written(rc, buf, "the turn ran out before the update: the buffer"
                   " holds the record stored now");
}

int sesh_compare_and_set(void *buf) {
    size_t size = st.who_size;
    int rc;
    if (!st.ready) return st.init_code; /* its message stays */
    if (buf == NULL) return fail(SESH_PROTOCOL, "no buffer for the record");
    if (size == 0)
        return fail(SESH_PROTOCOL, "sesh_compare_and_set before a sesh_lookup");
    rc = ensure_connected();
    if (rc != SESH_OK) return rc;
    out[4] = 'C';
    put_u64(out + 5, st.version);
    out[13] = (unsigned char)size;
    memcpy(out + 14, st.who, size);
    memcpy(out + 14 + size, buf, st.record_size);
    rc = exchange(10 + size + st.record_size, 9, 1);
    return written(rc, buf, "the record moved: the buffer holds the one stored"
                   " now");
}

int sesh_delete(void) {
    size_t size = st.who_size;
    int rc;
    if (!st.ready) return st.init_code; /* its message stays */
    if (size == 0) return fail(SESH_PROTOCOL, "sesh_delete before a sesh_lookup");
    rc = ensure_connected();
    if (rc != SESH_OK) return rc;
    out[4] = 'D';
    put_u64(out + 5, st.version);
    memcpy(out + 13, st.who, size);
    rc = exchange(9 + size, 2, 1);
    st.looked_up = 0;
    if (rc == SESH_CONFLICT) {
        st.version = get_u64(in + 1);
        return fail(SESH_CONFLICT, "the record moved: sesh_version() is the"
                    " one stored now");
    }
    if (rc != SESH_OK) return rc;
    if (in[1] > 1)
        return broken("the bridge's DELETE reply says %u, not 0 or 1",
                      (unsigned)in[1]);
    st.version = 0;
    return SESH_OK;
}

int sesh_release(void) {
    if (!st.ready) return st.init_code; /* its message stays */
    if (st.fd < 0) return SESH_OK;
    st.looked_up = 0;
    out[4] = 'R';
    return exchange(1, 1, 0);
}

unsigned long long sesh_version(void) { return st.version; }

const char *sesh_error(void) { return st.error; }

void sesh_close(void) { disconnect(); }

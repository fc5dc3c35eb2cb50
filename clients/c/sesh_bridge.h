/* sesh_bridge: a CGI program's client for jetforce-sesh's bridge socket.
 *
 * The successor of cgisesh's client: the same three calls (sesh_init,
 * sesh_lookup, sesh_update) keep their shape, so a cgisesh program moves over
 * by renaming them. The records are the ones the capsule's own routes use: a
 * record is exactly the slab's record size, the bytes of its `layout=`
 * (Python's struct.pack), so a C program finds each field at its offset in
 * the layout's byte order ("<": little-endian, whatever this machine's).
 * Protocol: docs/reference/bridge.md.
 *
 * One connection per process, in static storage, as a CGI program serves one
 * request: the calls are not thread-safe, and a child of fork() calls
 * sesh_close before any other call (the two would share one connection). The
 * connection is made lazily, by sesh_select or by the first call that needs
 * the server, and it is closed when the process exits (or by sesh_close),
 * which ends any turn it holds.
 *
 * Every call that returns int returns SESH_OK (0) or one of the negative codes
 * below, and then sesh_error() says what happened. No call prints or exits,
 * and a write to a closed socket gives SESH_UNAVAILABLE, not SIGPIPE (on a
 * system with neither MSG_NOSIGNAL nor SO_NOSIGPIPE, ignore SIGPIPE instead).
 *
 * Build: compile sesh_bridge.c with the program; C99 and POSIX.1-2008 only.
 */
#ifndef SESH_BRIDGE_H
#define SESH_BRIDGE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Done. */
#define SESH_OK 0
/* The record moved since this process last read or wrote it: the buffer given
 * now holds the current record and sesh_version() its version. Redo the
 * change on it and call sesh_compare_and_set. */
#define SESH_CONFLICT (-1)
/* The server refused, and nothing changed: store full, record invalid (the
 * message names the field), player busy (their turn held, their queue full,
 * or this user's programs past the time they may hold it), store
 * unavailable, shutting down, too many connections. The connection stays
 * open, except when the refusal answered its first request (the server turned
 * the connection away, or could not serve the slab): then it is closed, and
 * the next call connects again. */
#define SESH_REFUSED (-2)
/* The server said the request was wrong (wrong record size, unknown slab, a
 * fingerprint it cannot read, a malformed or out-of-order message), or it
 * answered something this client does not understand, or the call was used
 * wrongly (see each call). When the server said it, the message is in
 * sesh_error() and the connection is closed; the next call connects again. */
#define SESH_PROTOCOL (-3)
/* The socket cannot be reached, or the server closed the connection or did
 * not answer in time. The next call connects again. */
#define SESH_UNAVAILABLE (-4)
/* The player's certificate cannot be used now: it has expired, or is not
 * valid yet, by the dates the server gave this CGI program
 * (TLS_CLIENT_NOT_BEFORE, TLS_CLIENT_NOT_AFTER). The capsule's routes answer
 * such a request 62: answer it "62 " and sesh_error() too. Nothing changed;
 * the connection stays open. */
#define SESH_NOT_VALID (-5)

/* The largest record the bridge serves, in bytes. */
#define SESH_MAX_RECORD 65536
/* The longest slab name sesh_select takes, in bytes of UTF-8. */
#define SESH_MAX_SLAB 255
/* The longest fingerprint sesh_lookup takes, in characters. The longest form
 * the server parses, "SHA256:" and 32 colon-separated hex pairs, is 102. */
#define SESH_MAX_FINGERPRINT 128
/* How long a call waits for a reply before SESH_UNAVAILABLE, and for a place
 * in the server's queue of connections (its listen backlog) when it is full.
 * A LOOKUP waits for the player's turn up to 10 s on the server, which then
 * refuses. */
#define SESH_REPLY_TIMEOUT_SECONDS 30

/* Set up the client: records of record_size bytes (1 to SESH_MAX_RECORD, the
 * slab's record size), on the socket named by the environment variable
 * SESH_BRIDGE_SOCKET when it is set and not empty, else socket_path. Does not
 * connect. Closes any earlier connection and forgets the slab, player and
 * version of an earlier sesh_init. Returns SESH_PROTOCOL for a bad record
 * size, SESH_UNAVAILABLE for no path or a path too long for a UNIX socket;
 * after a failure every other call returns the same code and message. */
int sesh_init(int record_size, const char *socket_path);

/* Choose the slab by name (NULL or "": the capsule's only slab with a layout;
 * that is also the choice when sesh_select is never called), and connect at
 * once (SESH_UNAVAILABLE shows here). The SELECT itself goes out with the
 * first request, in the same write, saving a round trip per CGI request: a
 * wrong record size or an unknown slab shows at that request, as SESH_PROTOCOL
 * with the server's message. A connection serves one slab: an open one is
 * closed first, ending any turn it held. */
int sesh_select(const char *slab);

/* Read the player's record into buf (record_size bytes) and take the player's
 * turn: until this connection's next write, sesh_release or sesh_lookup, until
 * sesh_close or exit, or for at most 10 s, the player's other requests wait.
 * sha256 is TLS_CLIENT_HASH as given ("SHA256:" and 64 hex digits) or the 64
 * hex digits alone; the server parses it. When it is TLS_CLIENT_HASH itself,
 * the certificate's dates from TLS_CLIENT_NOT_BEFORE and TLS_CLIENT_NOT_AFTER
 * go with it, and an expired certificate gets SESH_NOT_VALID. A player the
 * slab does not know yet reads version 0 and the layout's defaults (zeros for
 * numbers). Remembers the player and the version for the calls below; a
 * failed lookup forgets them, so no later call writes to an earlier player.
 * Returns SESH_REFUSED when the turn did not come in 10 s, too many of the
 * player's requests wait, or this user's programs have held the player's turn
 * as long as the server allows (--bridge-hold-budget); buf is written only on
 * SESH_OK. */
int sesh_lookup(const char *sha256, void *buf);

/* Read the player's record into buf, as sesh_lookup does, without taking the
 * turn: for a program that only shows the record, or one that writes with
 * sesh_compare_and_set. Remembers the player and version for
 * sesh_compare_and_set and sesh_delete (not for sesh_update, which needs the
 * turn). */
int sesh_peek(const char *sha256, void *buf);

/* Store buf (record_size bytes) for the player this connection looked up
 * last, under the turn that sesh_lookup took, and end the turn; sesh_version()
 * is then the record's new version. Under the turn nothing else writes the
 * record, so this conflicts only when the turn ran out (10 s): then
 * SESH_CONFLICT, nothing is written, and the current record is copied into
 * buf (which is why buf is not const): redo the change on it and call
 * sesh_compare_and_set. SESH_PROTOCOL, without asking the server, when this
 * connection holds no turn of a sesh_lookup: none was made, or a write or
 * sesh_release ended it (a connection lost after the lookup loses the turn
 * with it: use sesh_compare_and_set). */
int sesh_update(void *buf);

/* Store buf (record_size bytes) for the player last looked up, if the record's
 * version is still sesh_version() (0: the player has no record); works on a
 * new connection too. It takes the player's turn for the write (waiting, as
 * sesh_lookup waits, while a route or another program holds it), or writes
 * under the turn this connection holds, and ends it. On SESH_OK sesh_version()
 * is the new version; on SESH_CONFLICT buf holds the current record and
 * sesh_version() its version, so a loop can redo the change and call again.
 * SESH_PROTOCOL, without asking the server, when no player has been looked
 * up. */
int sesh_compare_and_set(void *buf);

/* Forget the player's record if its version is still sesh_version(), under
 * the player's turn as sesh_compare_and_set writes, and end the turn. On SESH_OK (whether or not there was a record) sesh_version() is
 * 0. On SESH_CONFLICT sesh_version() is the current version: call
 * sesh_lookup to see the record, or sesh_delete again to delete it anyway.
 * SESH_PROTOCOL, without asking the server, when no player has been looked
 * up. */
int sesh_delete(void);

/* End the turn without writing. SESH_OK at once when there is no connection,
 * as then no turn is held. */
int sesh_release(void);

/* The version this process last read or wrote for the player (0: no record);
 * sesh_compare_and_set and sesh_delete send it as the version expected. */
unsigned long long sesh_version(void);

/* What the last failing call met: the server's message, or this client's
 * account. One line of at most 255 bytes with control characters replaced by
 * spaces, so it can go into a status line. Never NULL; valid until the next
 * call. */
const char *sesh_error(void);

/* Close the connection, ending any turn it holds. Keeps the settings, the
 * player and the version: a later call connects again, and
 * sesh_compare_and_set works on the new connection. */
void sesh_close(void);

#ifdef __cplusplus
}
#endif

#endif

/* The cgisesh model's visit counter as a C CGI program.
 *
 * The harness compiles this with gcc at run time, giving the daemon's socket as
 * -DKV_SOCKET='"/path"'. Per request it does what a cgisesh client does:
 * connect, look the player's record up by fingerprint (the 64 hex digits after
 * "SHA256:" in TLS_CLIENT_HASH), add one, write it back, print the page.
 * Protocol: see benchmarks/kvdaemon.py.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef KV_SOCKET
#define KV_SOCKET "/tmp/cgisesh.sock"
#endif
#define RECORD_SIZE 64
#define KEY_SIZE 64

static int send_all(int fd, const char *data, size_t size) {
    while (size > 0) {
        ssize_t sent = write(fd, data, size);
        if (sent <= 0) return -1;
        data += sent;
        size -= (size_t)sent;
    }
    return 0;
}

static int recv_exactly(int fd, char *data, size_t size) {
    while (size > 0) {
        ssize_t got = read(fd, data, size);
        if (got <= 0) return -1;
        data += got;
        size -= (size_t)got;
    }
    return 0;
}

int main(void) {
    const char *hash = getenv("TLS_CLIENT_HASH");
    if (hash == NULL || strncmp(hash, "SHA256:", 7) != 0 ||
        strlen(hash + 7) != KEY_SIZE) {
        fputs("60 Attach a client certificate\r\n", stdout);
        return 0;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, KV_SOCKET, sizeof addr.sun_path - 1);

    char frame[1 + RECORD_SIZE];
    char record[RECORD_SIZE];
    char reply = 0;
    frame[0] = 'L';
    memcpy(frame + 1, hash + 7, KEY_SIZE);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        send_all(fd, frame, 1 + KEY_SIZE) != 0 ||
        recv_exactly(fd, record, RECORD_SIZE) != 0) {
        fputs("42 Session store unavailable\r\n", stdout);
        return 0;
    }
    uint64_t count;
    memcpy(&count, record, sizeof count); /* little-endian, as the Python CGI */
    count += 1;
    memcpy(record, &count, sizeof count);
    frame[0] = 'U';
    memcpy(frame + 1, record, RECORD_SIZE);
    if (send_all(fd, frame, 1 + RECORD_SIZE) != 0 ||
        recv_exactly(fd, &reply, 1) != 0 || reply != 'K') {
        fputs("42 Session store full\r\n", stdout);
        return 0;
    }
    close(fd);
    printf("20 text/gemini\r\n# Visit counter\n\nVisit number %llu.\n",
           (unsigned long long)count);
    return 0;
}

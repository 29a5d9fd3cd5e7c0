/* The baseline of benchmarks/probe_capacity.py: getaddrinfo(name) N times in a C loop, as the
 * probe does it (AF_UNSPEC, any socket type), timed with CLOCK_MONOTONIC around the loop only. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME COUNT\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    long count = atol(argv[2]);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    long failed = 0;
    struct timespec began, ended;
    clock_gettime(CLOCK_MONOTONIC, &began);
    for (long i = 0; i < count; i++) {
        struct addrinfo *res = NULL;
        if (getaddrinfo(name, NULL, &hints, &res) != 0)
            failed++;
        else
            freeaddrinfo(res);
    }
    clock_gettime(CLOCK_MONOTONIC, &ended);
    long long ns = (ended.tv_sec - began.tv_sec) * 1000000000LL + (ended.tv_nsec - began.tv_nsec);
    printf("{\"lookups\": %ld, \"failed\": %ld, \"elapsed_ns\": %lld}\n", count, failed, ns);
    return 0;
}

/* dpf-server: main() only; the program lives in server.c. */
#include <errno.h>
#include <stdio.h>

#include "dpf-server/server.h"

/* jemalloc's settings, read at its start when the release build links it
 * (MALLOC_CONF in the environment still wins): two arenas as with glibc
 * (arenas per core kept each worker thread's freed buffers apart), a
 * background thread returning freed pages after about a second instead
 * of on the next allocation. Without jemalloc this is an unused string. */
const char *malloc_conf = "narenas:2,background_thread:true,"
                          "dirty_decay_ms:1000,muzzy_decay_ms:0";

int
main(int argc, char **argv)
{
    struct server_options opt;
    server_options_init(&opt);
    int r = server_options_parse(&opt, argc, argv, stdout, stderr);
    if (r != 0) {
        server_options_free(&opt);
        return r > 0 ? 0 : 2;
    }
    int code = server_run(&opt);
    server_options_free(&opt);
    return code;
}

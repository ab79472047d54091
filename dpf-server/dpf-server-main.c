/* dpf-server: main() only; the program lives in server.c. */
#include <errno.h>
#include <stdio.h>

#include "dpf-server/server.h"

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

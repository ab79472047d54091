/* dts-dump: print dts binary data files as JSON lines. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "lib/telemetry/datafile.h"

static void
usage(FILE *f)
{
    fprintf(f, "Usage: dts-dump [--schema] FILE...\n"
               "Print the records of dts binary data files (*.dtsd) as JSON\n"
               "lines: {\"time_ns\": N, [\"type\": NAME,] \"record\": {...}}.\n"
               "\n"
               "  --schema    print each file's header schema first\n"
               "  --help      this text\n"
               "  --version   program version\n"
               "\n"
               "Exit status: 0 ok, 1 a file is missing or corrupt, 2 usage.\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"schema", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int schema = 0, c;
    while ((c = getopt_long(argc, argv, "shV", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            schema = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("dts-dump %s\n", DPF_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    int status = 0;
    for (int i = optind; i < argc; i++) {
        struct dpf_error err = {0};
        if (schema) {
            struct datafile_reader *r = datafile_reader_open(argv[i], &err);
            if (!r) {
                fprintf(stderr, "dts-dump: %s\n", err.message);
                status = 1;
                continue;
            }
            printf("%s\n", datafile_reader_schema(r));
            datafile_reader_close(r);
        }
        if (datafile_dump_json(argv[i], stdout, &err) < 0) {
            fprintf(stderr, "dts-dump: %s\n", err.message);
            status = 1;
        }
    }
    return status;
}

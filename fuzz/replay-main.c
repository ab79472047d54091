/* Corpus replay runner: calls a fuzz target's LLVMFuzzerTestOneInput on
 * every file of the directories (or files) given on the command line, so
 * the normal test command (under ASan+UBSan) re-checks every input that
 * ever crashed or widened coverage. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
    char *data;
    size_t len;
    if (file_read_all(path, &data, &len) < 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *) data, len);
    free(data);
    return 0;
}

int
main(int argc, char **argv)
{
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]) < 0) {
                return 1;
            }
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') {
                continue;
            }
            char *p = xasprintf("%s/%s", argv[i], de->d_name);
            int rc = replay_file(p);
            free(p);
            if (rc < 0) {
                closedir(d);
                return 1;
            }
            n++;
        }
        if (d) {
            closedir(d);
        }
    }
    if (n == 0) {
        fprintf(stderr, "replay: empty corpus\n");
        return 1;
    }
    printf("replay: %zu inputs, no crash\n", n);
    return 0;
}

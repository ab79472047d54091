/* Unit tests for lib/datafile: write/read round trip, rotation by size and
 * by time, strict reader, JSON dump with schema-decoded events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/telemetry/datafile.h"
#include "lib/telemetry/dts-ipc.h"
#include "lib/base/util.h"

static char *
make_dir(void)
{
    char tmpl[] = "/tmp/test-datafile-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void
remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] != '.') {
            char *p = xasprintf("%s/%s", dir, de->d_name);
            unlink(p);
            free(p);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static int
count_files(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        n += str_has_suffix(de->d_name, ".dtsd");
    }
    closedir(d);
    return n;
}

static void
test_roundtrip(void **state)
{
    char *dir = make_dir();
    struct datafile_writer_config cfg = {.dir = dir, .schema = "{\"x\":1}"};
    struct dpf_error err = {0};
    struct datafile_writer *w = datafile_writer_open(&cfg, &err);
    assert_non_null(w);
    for (int i = 0; i < 100; i++) {
        char rec[64];
        int n = snprintf(rec, sizeof rec, "{\"i\":%d}", i);
        assert_int_equal(
            datafile_writer_append(w, DATAFILE_JSON, i * 10, rec, (size_t) n),
            0);
    }
    char *path = xstrdup(datafile_writer_path(w));
    datafile_writer_close(w);

    struct datafile_reader *r = datafile_reader_open(path, &err);
    assert_non_null(r);
    assert_string_equal(datafile_reader_schema(r), "{\"x\":1}");
    struct datafile_record rec;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(datafile_reader_next(r, &rec, &err), 1);
        assert_int_equal(rec.kind, DATAFILE_JSON);
        assert_int_equal(rec.time_ns, i * 10);
        char want[64];
        snprintf(want, sizeof want, "{\"i\":%d}", i);
        assert_int_equal(rec.len, strlen(want));
        assert_memory_equal(rec.payload, want, rec.len);
    }
    assert_int_equal(datafile_reader_next(r, &rec, &err), 0);
    datafile_reader_close(r);

    /* truncate the file in the middle of the last record */
    char *data;
    size_t len;
    assert_int_equal(file_read_all(path, &data, &len), 0);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len - 3, f);
    fclose(f);
    r = datafile_reader_open(path, &err);
    int rc, n = 0;
    while ((rc = datafile_reader_next(r, &rec, &err)) == 1) {
        n++;
    }
    assert_int_equal(rc, -EBADMSG);
    assert_int_equal(n, 99);
    assert_non_null(strstr(err.message, "offset"));
    datafile_reader_close(r);
    /* bad magic */
    data[0] = 'X';
    f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    assert_null(datafile_reader_open(path, &err));
    assert_non_null(strstr(err.message, "magic"));
    /* schema length past the end */
    data[0] = 'D';
    data[14] = (char) 0xff;
    f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    assert_null(datafile_reader_open(path, &err));
    free(data);
    free(path);
    remove_dir(dir);
}

static void
test_rotation(void **state)
{
    char *dir = make_dir();
    /* 10 records of 100 + 16 bytes per 1 KiB file (header 18 bytes) */
    struct datafile_writer_config cfg = {
        .dir = dir, .size_limit = 1200, .time_limit = 1};
    struct datafile_writer *w = datafile_writer_open(&cfg, NULL);
    assert_non_null(w);
    char payload[100];
    memset(payload, 'a', sizeof payload);
    for (int i = 0; i < 35; i++) {
        assert_int_equal(datafile_writer_append(w, DATAFILE_JSON, 0, payload,
                                                sizeof payload),
                         0);
    }
    assert_int_equal(count_files(dir), 4);
    struct datafile_writer_stats st;
    datafile_writer_get_stats(w, &st);
    assert_int_equal(st.files, 4);
    assert_int_equal(st.records, 35);
    /* time limit: the next record after 1 s goes to a new file */
    poll(NULL, 0, 1100);
    assert_int_equal(
        datafile_writer_append(w, DATAFILE_JSON, 0, payload, sizeof payload),
        0);
    assert_int_equal(count_files(dir), 5);
    /* bad kind */
    assert_int_equal(datafile_writer_append(w, 9, 0, payload, 1), -EINVAL);
    datafile_writer_close(w);
    remove_dir(dir);
}

static void
test_dump_events(void **state)
{
    char *dir = make_dir();
    struct dts_ipc_schema *s = dts_ipc_schema_create("app");
    static const struct dts_ipc_field_decl f[] = {
        {"port", DTS_IPC_FIELD_U16, 1},
        {"name", DTS_IPC_FIELD_STRING, 4},
    };
    assert_int_equal(dts_ipc_schema_add_type(s, "conn", f, 2, NULL), 0);
    json_t *sj = dts_ipc_schema_to_json(s);
    char *schema = json_dumps(sj, JSON_COMPACT);
    json_decref(sj);
    dts_ipc_schema_free(s);
    struct datafile_writer_config cfg = {.dir = dir, .schema = schema};
    struct datafile_writer *w = datafile_writer_open(&cfg, NULL);
    uint8_t ev[2 + 6] = {0, 0, 0xbb, 0x01, 'e', 't', 'h', '0'};
    assert_int_equal(
        datafile_writer_append(w, DATAFILE_EVENT, 7, ev, sizeof ev), 0);
    assert_int_equal(
        datafile_writer_append(w, DATAFILE_JSON, 8, "{\"a\":1}", 7), 0);
    char *path = xstrdup(datafile_writer_path(w));
    datafile_writer_close(w);
    char *out = NULL;
    size_t outlen = 0;
    FILE *mem = open_memstream(&out, &outlen);
    struct dpf_error err = {0};
    assert_int_equal(datafile_dump_json(path, mem, &err), 2);
    fclose(mem);
    assert_string_equal(out, "{\"time_ns\":7,\"type\":\"conn\",\"record\":"
                             "{\"port\":443,\"name\":\"eth0\"}}\n"
                             "{\"time_ns\":8,\"record\":{\"a\":1}}\n");
    free(out);
    free(path);
    free(schema);
    remove_dir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_dump_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

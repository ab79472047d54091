/* Unit tests for dpf-emu/emu-bfcfg: what an emulated DPU takes from a
 * bf.cfg (hostname, write_files, the join line) and the errors that name
 * the write_files entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpf-emu/emu-bfcfg.h"
#include "lib/base/util.h"

static const char dpf_like[] =
    "UPDATE_DPU_OS=yes\n"
    "bfb_modify_os()\n"
    "{\n"
    "  cat << 'EOF' > /mnt/var/lib/cloud/seed/nocloud-net/user-data\n"
    "#cloud-config\n"
    "write_files:\n"
    "  - path: /etc/a.conf\n"
    "    permissions: '0600'\n"
    "    content: |\n"
    "      line one\n"
    "  - path: /etc/b.bin\n"
    "    encoding: b64\n"
    "    content: aGVsbG8=\n"
    "  - path: /opt/dpf/join_k8s_cluster.sh\n"
    "    content: |\n"
    "      while true; do\n"
    "        if kubeadm join 10.0.0.1:6443 --token ab.cd "
    "--discovery-token-ca-cert-hash sha256:ff --v=5; then break; fi\n"
    "      done\n"
    "runcmd:\n"
    "  - [ hostnamectl, set-hostname, dpu-1 ]\n"
    "EOF\n"
    "}\n";

static void
test_dpf_like(void **state)
{
    (void) state;
    struct emu_bfcfg c;
    struct dpf_error err = {0};
    assert_int_equal(emu_bfcfg_parse(dpf_like, strlen(dpf_like), &c, &err), 0);
    assert_string_equal(c.hostname, "dpu-1");
    assert_int_equal(c.n_files, 3);
    assert_string_equal(c.files[0].path, "/etc/a.conf");
    assert_int_equal(c.files[0].mode, 0600);
    assert_string_equal(c.files[0].data, "line one\n");
    assert_int_equal(c.files[1].len, 5);
    assert_memory_equal(c.files[1].data, "hello", 5);
    assert_int_equal(c.files[1].mode, 0644);
    assert_string_equal(c.join_endpoint, "10.0.0.1:6443");
    assert_string_equal(c.join_token, "ab.cd");
    assert_string_equal(c.join_ca_hash, "sha256:ff");
    assert_string_equal(c.join_line, "kubeadm join 10.0.0.1:6443 --token "
                                     "ab.cd --discovery-token-ca-cert-hash "
                                     "sha256:ff --v=5");

    /* the files land under a root directory with their modes */
    char tmpl[] = "/tmp/test-emu-bfcfg-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    assert_int_equal(emu_bfcfg_write_files(&c, tmpl, &err), 0);
    char *p = xasprintf("%s/etc/a.conf", tmpl);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *data;
    size_t len;
    assert_int_equal(file_read_all(p, &data, &len), 0);
    assert_string_equal(data, "line one\n");
    free(data);
    unlink(p);
    free(p);
    p = xasprintf("rm -rf '%s'", tmpl);
    assert_int_equal(system(p), 0);
    free(p);
    emu_bfcfg_free(&c);
}

static void
test_hostname_key_and_no_cloud_config(void **state)
{
    (void) state;
    struct emu_bfcfg c;
    struct dpf_error err = {0};
    const char *t = "x <<-END\n#cloud-config\nhostname: h9\nEND\n";
    assert_int_equal(emu_bfcfg_parse(t, strlen(t), &c, &err), 0);
    assert_string_equal(c.hostname, "h9");
    assert_null(c.join_line);
    emu_bfcfg_free(&c);
    /* the short bf.cfg of the DMS tests: nothing to apply */
    t = "UPDATE_DPU_OS=yes\nbfb_modify_os() {\n  :\n}\n";
    assert_int_equal(emu_bfcfg_parse(t, strlen(t), &c, &err), 0);
    assert_null(c.hostname);
    assert_int_equal(c.n_files, 0);
    emu_bfcfg_free(&c);
}

static void
expect_error(const char *t, const char *part)
{
    struct emu_bfcfg c;
    struct dpf_error err = {0};
    assert_int_equal(emu_bfcfg_parse(t, strlen(t), &c, &err), -EINVAL);
    if (!strstr(err.message, part)) {
        fail_msg("\"%s\" not in \"%s\"", part, err.message);
    }
    emu_bfcfg_free(&c);
}

static void
test_errors(void **state)
{
    (void) state;
    expect_error("cat <<EOF\n#cloud-config\nwrite_files:\n"
                 "  - path: /etc/../x\nEOF\n",
                 "write_files[0].path");
    expect_error("cat <<EOF\n#cloud-config\nwrite_files:\n"
                 "  - path: /a\n    content: hi\n"
                 "  - path: /b\n    encoding: b64\n    content: '@@'\nEOF\n",
                 "write_files[1] (/b).content: not valid base64");
    expect_error("cat <<EOF\n#cloud-config\nwrite_files:\n"
                 "  - path: /a\n    permissions: rw\nEOF\n",
                 "write_files[0] (/a).permissions");
    expect_error("cat <<EOF\n#cloud-config\nwrite_files: [\nEOF\n",
                 "bf.cfg cloud-config:");
    expect_error("cat <<EOF\n#cloud-config\nwrite_files: 3\nEOF\n",
                 "write_files: expected a list");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dpf_like),
        cmocka_unit_test(test_hostname_key_and_no_cloud_config),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

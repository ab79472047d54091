/* Unit tests for controllers/bfcfg: the bf.cfg of DPF's HBN flavor, parsed
 * back with libyaml's own document loader (not our YAML codec, which wrote
 * it), every write_files entry and runcmd checked; bash runs the generated
 * bfb_modify_os() into a scratch /mnt, and hostile flavor strings come out
 * byte for byte with nothing executed; refusals and the 128 KiB limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "controllers/bfcfg.h"
#include "dpf-emu/emu-bfcfg.h"
#include "lib/base/util.h"

static const char join[] =
    "kubeadm join 10.0.110.2:6443 --token abcdef.0123456789abcdef "
    "--discovery-token-ca-cert-hash sha256:"
    "0b5f1c1d4b6f9d9b2d6a8c1f0e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5 --v=5";

static const char hbn_flavor[] =
    "{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\","
    "\"kind\":\"DPUFlavor\",\"metadata\":{\"name\":\"dpf-provisioning-hbn\","
    "\"namespace\":\"dpf-operator-system\"},\"spec\":{"
    "\"bfcfgParameters\":[\"UPDATE_ATF_UEFI=yes\",\"UPDATE_DPU_OS=yes\","
    "\"ubuntu_PASSWORD='$1$abc$hash'\",\"WITH_NIC_FW_UPDATE=yes\"],"
    "\"configFiles\":[{\"operation\":\"override\",\"path\":"
    "\"/etc/mellanox/mlnx-bf.conf\",\"permissions\":\"0644\",\"raw\":"
    "\"ALLOW_SHARED_RQ=\\\"no\\\"\\nIPSEC_FULL_OFFLOAD=\\\"no\\\"\\n\"},"
    "{\"operation\":\"append\",\"path\":\"/etc/"
    "extra.conf\",\"raw\":\"a=1\\n\"},"
    "{\"operation\":\"override\",\"path\":\"/etc/mellanox/mlnx-sf.conf\","
    "\"permissions\":\"0644\",\"raw\":\"\"}],"
    "\"grub\":{\"kernelParameters\":[\"console=hvc0\",\"console=ttyAMA0\","
    "\"hugepages=3072\"]},"
    "\"nvconfig\":[{\"device\":\"*\",\"parameters\":[\"PF_BAR2_ENABLE=0\","
    "\"PF_TOTAL_SF=20\",\"NUM_OF_VFS=46\"]}],"
    "\"ovs\":{\"rawConfigScript\":\"ovs-vsctl set Open_vSwitch . "
    "other_config:hw-offload=true\\n\"},"
    "\"sysctl\":{\"parameters\":[\"net.ipv4.conf.all.arp_announce=2\"]},"
    "\"containerdConfig\":{\"registryEndpoint\":\"http://10.0.0.5:5000\"}}}";

/* --- libyaml document -> jansson (scalars as strings) ---------------- */

static json_t *
node_json(yaml_document_t *doc, yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return json_stringn((const char *) n->data.scalar.value,
                            n->data.scalar.length);
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *i = n->data.sequence.items.start;
             i < n->data.sequence.items.top; i++) {
            json_array_append_new(
                a, node_json(doc, yaml_document_get_node(doc, *i)));
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            assert_int_equal(k->type, YAML_SCALAR_NODE);
            char *key = xstrndup((const char *) k->data.scalar.value,
                                 k->data.scalar.length);
            assert_null(json_object_get(o, key)); /* no duplicate keys */
            json_object_set_new(
                o, key, node_json(doc, yaml_document_get_node(doc, p->value)));
            free(key);
        }
        return o;
    }
    default:
        fail_msg("empty YAML node");
        return NULL;
    }
}

static json_t *
libyaml_load(const char *text, size_t len)
{
    yaml_parser_t p;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *) text, len);
    if (!yaml_parser_load(&p, &doc)) {
        fail_msg("libyaml: %s at line %zu", p.problem, p.problem_mark.line + 1);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    assert_non_null(root);
    json_t *j = node_json(&doc, root);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return j;
}

/* --- helpers ---------------------------------------------------------- */

static json_t *
flavor_load(const char *text)
{
    json_error_t je;
    json_t *f = json_loads(text, 0, &je);
    if (!f) {
        fail_msg("flavor JSON: %s", je.text);
    }
    return f;
}

static char *
render_ok(const json_t *flavor, bool reboot, size_t *len)
{
    char *out;
    struct dpf_error err = {0};
    int rc = bfcfg_render(flavor, "worker1-0000-4b-00", join, reboot, &out, len,
                          &err);
    if (rc != 0) {
        fail_msg("bfcfg_render: %d %s", rc, err.message);
    }
    assert_int_equal(strlen(out), *len);
    return out;
}

static json_t *
user_data(const char *cfg, size_t len)
{
    char *yaml;
    size_t ylen;
    assert_int_equal(bfcfg_user_data(cfg, len, &yaml, &ylen), 0);
    assert_true(str_has_prefix(yaml, "#cloud-config\n"));
    json_t *ud = libyaml_load(yaml, ylen);
    free(yaml);
    return ud;
}

static const json_t *
file_entry(const json_t *ud, const char *path)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(ud, "write_files"), i, f)
    {
        if (!strcmp(json_string_value(json_object_get(f, "path")), path)) {
            return f;
        }
    }
    return NULL;
}

static const char *
file_content(const json_t *ud, const char *path)
{
    const json_t *f = file_entry(ud, path);
    if (!f) {
        char *dump = json_dumps(ud, JSON_COMPACT);
        print_message("%s\n", dump);
        free(dump);
        fail_msg("no write_files entry for %s", path);
    }
    return json_string_value(json_object_get(f, "content"));
}

static const char *
file_field(const json_t *ud, const char *path, const char *key)
{
    return json_string_value(json_object_get(file_entry(ud, path), key));
}

/* Run bfb_modify_os() of cfg with /mnt moved to a scratch directory and
 * return that directory (the test removes it). */
static char *
run_modify_os(const char *cfg)
{
    char tmpl[] = "/tmp/test-bfcfg-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    dir = xstrdup(dir);
    struct dbuf b;
    dbuf_init(&b);
    for (const char *p = cfg; *p;) {
        const char *m = strstr(p, "/mnt/");
        const char *m2 = strstr(p, "/mnt\n");
        if (m2 && (!m || m2 < m)) {
            m = m2;
        }
        if (!m) {
            dbuf_puts(&b, p);
            break;
        }
        dbuf_append(&b, p, (size_t) (m - p));
        dbuf_printf(&b, "%s/mnt", dir);
        p = m + 4;
    }
    char *script = xasprintf("%s/bf.cfg", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    dbuf_free(&b);
    char *cmd = xasprintf("cd %s && bash -c '. ./bf.cfg && bfb_modify_os' "
                          ">%s/out 2>&1",
                          dir, dir);
    int rc = system(cmd);
    if (rc != 0) {
        char *o = xasprintf("cat %s/out", dir);
        assert_int_equal(system(o), 0);
        free(o);
        fail_msg("bfb_modify_os failed: %d", rc);
    }
    free(cmd);
    free(script);
    return dir;
}

static void
rm_rf(char *dir)
{
    char *cmd = xasprintf("rm -rf -- '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(dir);
}

/* --- tests ------------------------------------------------------------ */

static void
test_hbn_flavor(void **state)
{
    (void) state;
    json_t *fl = flavor_load(hbn_flavor);
    size_t len;
    char *cfg = render_ok(fl, false, &len);
    /* the parameters first, verbatim, without ubuntu_PASSWORD */
    const char *body = strchr(cfg, '\n') + 1; /* after our comment line */
    assert_true(str_has_prefix(body, "UPDATE_ATF_UEFI=yes\n"
                                     "UPDATE_DPU_OS=yes\n"
                                     "WITH_NIC_FW_UPDATE=yes\n"));
    assert_null(strstr(cfg, "ubuntu_PASSWORD"));
    assert_non_null(strstr(cfg, "\nbfb_modify_os()\n{\n"));

    json_t *ud = user_data(cfg, len);
    assert_string_equal(json_string_value(json_object_get(ud, "hostname")),
                        "worker1-0000-4b-00");
    /* the user, with the flavor's hash without its quotes */
    const json_t *u = json_array_get(json_object_get(ud, "users"), 0);
    assert_string_equal(json_string_value(json_object_get(u, "name")),
                        "ubuntu");
    assert_string_equal(json_string_value(json_object_get(u, "passwd")),
                        "$1$abc$hash");
    assert_string_equal(json_string_value(json_object_get(u, "sudo")),
                        "ALL=(ALL) NOPASSWD:ALL");
    assert_non_null(
        strstr(json_string_value(json_object_get(u, "groups")), "sudo"));
    assert_null(json_object_get(ud, "chpasswd"));

    /* every file */
    assert_string_equal(file_content(ud, "/etc/netplan/60-mlnx.yaml"), "");
    const char *cc = file_content(ud, "/etc/netplan/99-dpf-comm-ch.yaml");
    json_t *np = libyaml_load(cc, strlen(cc));
    json_t *br = json_object_get(
        json_object_get(json_object_get(np, "network"), "bridges"),
        "br-comm-ch");
    assert_string_equal(json_string_value(json_object_get(br, "dhcp4")),
                        "true");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(br, "interfaces"), 0)),
        "pf0vf0");
    json_decref(np);
    const char *oob = file_content(ud, "/etc/netplan/98-oob-tmfifo.yaml");
    assert_non_null(strstr(oob, "tmfifo_net0:"));
    assert_non_null(strstr(oob, "192.168.100.2/30"));
    assert_non_null(strstr(oob, "oob_net0:\n      dhcp4: false"));
    assert_string_equal(
        file_content(ud, "/etc/modules-load.d/br_netfilter.conf"),
        "br_netfilter\n");
    assert_string_equal(file_field(ud, "/etc/sysctl.conf", "append"), "true");
    assert_non_null(strstr(file_content(ud, "/etc/sysctl.conf"),
                           "net.bridge.bridge-nf-call-iptables=1\n"));
    const char *sfs = file_content(ud, "/opt/dpf/configure-sfs.sh");
    assert_non_null(strstr(sfs, "PF_TOTAL_SF=20\n"));
    assert_non_null(strstr(sfs, "mlnx-sf --action create --device "
                                "0000:03:00.0 --sfnum"));
    assert_string_equal(
        file_field(ud, "/opt/dpf/configure-sfs.sh", "permissions"), "0755");
    assert_non_null(strstr(
        file_content(ud,
                     "/usr/lib/systemd/system/kubelet.service.d/10-bf.conf"),
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf"));
    /* the join line, verbatim, on a line of its own */
    const char *js = file_content(ud, "/opt/dpf/join_k8s_cluster.sh");
    char *line = xasprintf("\n%s\n", join);
    assert_non_null(strstr(js, line));
    free(line);
    assert_non_null(strstr(js, "joined_cluster_successfully"));
    assert_non_null(strstr(js, "br-comm-ch"));
    assert_non_null(
        strstr(file_content(ud, "/etc/systemd/system/kubeadm-join.service"),
               "ExecStart=/opt/dpf/join_k8s_cluster.sh\n"));
    assert_non_null(
        strstr(file_content(ud, "/etc/systemd/system/bootstrap-dpf.service"),
               "ExecStart=/opt/dpf/configure-sfs.sh\n"));
    assert_string_equal(
        file_content(ud, "/etc/systemd/resolved.conf.d/10-dpf.conf"),
        "[Resolve]\nDNSStubListener=no\n");
    assert_string_equal(
        file_content(ud, "/etc/NetworkManager/conf.d/10-dpf-dns.conf"),
        "[main]\ndns=none\n");
    assert_non_null(strstr(file_content(ud, "/opt/dpf/cleanup-dns.sh"),
                           "ln -s /run/systemd/resolve/resolv.conf"));
    assert_non_null(strstr(file_content(ud, "/opt/dpf/set-nvconfig-params.sh"),
                           "mlxconfig -d \"$dev\" -y set 'PF_BAR2_ENABLE=0' "
                           "'PF_TOTAL_SF=20' 'NUM_OF_VFS=46'\n"));
    assert_string_equal(file_content(ud, "/etc/sysctl.d/99-dpf.conf"),
                        "net.ipv4.conf.all.arp_announce=2\n");
    assert_string_equal(file_content(ud, "/etc/default/grub.d/99-dpf.cfg"),
                        "GRUB_CMDLINE_LINUX='console=hvc0 console=ttyAMA0 "
                        "hugepages=3072'\n");
    assert_string_equal(file_content(ud, "/etc/mellanox/mlnx-bf.conf"),
                        "ALLOW_SHARED_RQ=\"no\"\nIPSEC_FULL_OFFLOAD=\"no\"\n");
    assert_string_equal(
        file_field(ud, "/etc/mellanox/mlnx-bf.conf", "permissions"), "0644");
    assert_null(file_field(ud, "/etc/mellanox/mlnx-bf.conf", "append"));
    assert_string_equal(file_content(ud, "/etc/extra.conf"), "a=1\n");
    assert_string_equal(file_field(ud, "/etc/extra.conf", "append"), "true");
    assert_string_equal(file_content(ud, "/etc/mellanox/mlnx-sf.conf"), "");
    assert_string_equal(file_content(ud, "/opt/dpf/ovs.sh"),
                        "#!/bin/bash\nset -e\novs-vsctl set Open_vSwitch . "
                        "other_config:hw-offload=true\n");
    const char *rs = file_content(ud, "/opt/dpf/restart.sh");
    assert_non_null(strstr(rs, "update-grub\n"));
    assert_null(strstr(rs, "reboot\n")); /* no additional reboot */
    const char *ctrd = file_content(ud, "/opt/dpf/config_containerd.sh");
    assert_non_null(strstr(ctrd, "endpoint='http://10.0.0.5:5000'\n"));
    assert_non_null(strstr(ctrd, "host='10.0.0.5:5000'\n"));
    assert_non_null(strstr(ctrd, "registry.mirrors.\\\"nvcr.io\\\"") ||
                    strstr(ctrd, "registry.mirrors.\"nvcr.io\""));
    assert_non_null(
        strstr(file_content(ud, "/opt/dpf/remove-90-kubelet-bluefield.sh"),
               "90-kubelet-bluefield.conf"));
    assert_int_equal(json_array_size(json_object_get(ud, "write_files")), 23);

    /* runcmd in DPF's order */
    static const char *const want[] = {
        "modprobe br_netfilter",
        "sysctl -p",
        "systemctl stop kubelet",
        "/opt/dpf/remove-90-kubelet-bluefield.sh",
        "/opt/dpf/cleanup-dns.sh",
        "systemctl daemon-reload",
        "systemctl enable containerd",
        "systemctl start containerd",
        "systemctl enable bootstrap-dpf.service",
        "systemctl enable kubeadm-join.service",
        "systemctl enable mlnx_bf_configure_sync.service",
        "/opt/dpf/set-nvconfig-params.sh",
        "/opt/dpf/ovs.sh",
        "/opt/dpf/config_containerd.sh",
        "systemctl restart containerd",
        "/opt/dpf/restart.sh",
        "systemctl start --no-block bootstrap-dpf.service "
        "kubeadm-join.service",
    };
    const json_t *rc = json_object_get(ud, "runcmd");
    assert_int_equal(json_array_size(rc), ARRAY_SIZE(want) + 1);
    const json_t *h = json_array_get(rc, 0);
    assert_string_equal(json_string_value(json_array_get(h, 0)), "hostnamectl");
    assert_string_equal(json_string_value(json_array_get(h, 2)),
                        "worker1-0000-4b-00");
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        assert_string_equal(json_string_value(json_array_get(rc, i + 1)),
                            want[i]);
    }
    assert_int_equal(bfcfg_nvconfig_int(fl, "NUM_OF_VFS", 16), 46);
    assert_int_equal(bfcfg_nvconfig_int(fl, "NOPE", 16), 16);
    json_decref(ud);
    free(cfg);

    /* additional reboot: restart.sh reboots */
    cfg = render_ok(fl, true, &len);
    ud = user_data(cfg, len);
    assert_non_null(
        strstr(file_content(ud, "/opt/dpf/restart.sh"), "\nreboot\n"));
    json_decref(ud);
    free(cfg);
    json_decref(fl);
}

static void
test_empty_flavor_defaults(void **state)
{
    (void) state;
    json_t *fl = flavor_load("{\"metadata\":{\"name\":\"plain\"},"
                             "\"spec\":{}}");
    size_t len;
    char *cfg = render_ok(fl, false, &len);
    json_t *ud = user_data(cfg, len);
    /* ubuntu:ubuntu, to be changed at the first login */
    const json_t *cp = json_object_get(ud, "chpasswd");
    assert_string_equal(json_string_value(json_object_get(cp, "list")),
                        "ubuntu:ubuntu\n");
    assert_string_equal(json_string_value(json_object_get(cp, "expire")),
                        "true");
    assert_null(json_object_get(json_array_get(json_object_get(ud, "users"), 0),
                                "passwd"));
    /* no optional files, no optional steps */
    assert_null(file_entry(ud, "/opt/dpf/ovs.sh"));
    assert_null(file_entry(ud, "/opt/dpf/restart.sh"));
    assert_null(file_entry(ud, "/opt/dpf/set-nvconfig-params.sh"));
    assert_null(file_entry(ud, "/etc/default/grub.d/99-dpf.cfg"));
    assert_null(file_entry(ud, "/opt/dpf/config_containerd.sh"));
    assert_non_null(strstr(file_content(ud, "/opt/dpf/configure-sfs.sh"),
                           "PF_TOTAL_SF=0\n"));
    assert_int_equal(json_array_size(json_object_get(ud, "runcmd")), 13);
    json_decref(ud);
    free(cfg);
    /* NULL flavor is an empty one */
    char *out;
    struct dpf_error err = {0};
    assert_int_equal(bfcfg_render(NULL, "dpu-a", join, false, &out, &len, &err),
                     0);
    free(out);
    json_decref(fl);
}

/* Strings that break naive quoting, in every field a user controls. */
static const char *const hostile[] = {
    "it's \"quoted\" and \\back\\slashed",
    "$(touch MARKER) `touch MARKER` ${HOME}",
    "line one\nDPF_USER_DATA_END\n$(touch MARKER)\n",
    "- not: a list\n# not a comment\n---\n...\n",
    "key: value\n  indented: {flow: [1, 2]}\n",
    "\ttab and trailing space \n",
    "'single' \"double\" ' \"",
    "unicode \xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80",
    "yes",
    "0755",
    "null",
    "",
};

static void
test_hostile_strings_stay_data(void **state)
{
    (void) state;
    for (size_t i = 0; i < ARRAY_SIZE(hostile); i++) {
        const char *h = hostile[i];
        print_message("hostile string %zu\n", i);
        json_t *fl = json_pack(
            "{s:{s:s,s:s},s:{s:[s,s],s:[{s:s,s:s,s:s},{s:s,s:s,s:s}],"
            "s:{s:[s,s]},s:[{s:[s,s]}],s:{s:s}}}",
            "metadata", "name", "evil", "namespace", "tenant", "spec",
            "bfcfgParameters", "UPDATE_DPU_OS=yes", "ubuntu_PASSWORD=$6$x$y",
            "configFiles", "path", "/etc/evil file.conf", "operation",
            "override", "raw", h, "path", "/etc/evil2", "operation", "append",
            "raw", h, "grub", "kernelParameters", "console=hvc0",
            strpbrk(h, "\r\n") ? "x" : h, "nvconfig", "parameters",
            "PF_TOTAL_SF=2", strpbrk(h, "\r\n") ? "y" : h, "ovs",
            "rawConfigScript", "echo ovs");
        assert_non_null(fl);
        size_t len;
        char *cfg = render_ok(fl, false, &len);
        /* what bash writes is exactly what the user-data holds */
        char *dir = run_modify_os(cfg);
        char *udp =
            xasprintf("%s/mnt/var/lib/cloud/seed/nocloud-net/user-data", dir);
        char *written;
        size_t wlen;
        assert_int_equal(file_read_all(udp, &written, &wlen), 0);
        char *yaml;
        size_t ylen;
        assert_int_equal(bfcfg_user_data(cfg, len, &yaml, &ylen), 0);
        assert_int_equal(wlen, ylen);
        assert_memory_equal(written, yaml, ylen);
        char *marker = xasprintf("%s/MARKER", dir);
        assert_int_not_equal(access(marker, F_OK), 0);
        assert_int_not_equal(access("MARKER", F_OK), 0);
        char *md =
            xasprintf("%s/mnt/var/lib/cloud/seed/nocloud-net/meta-data", dir);
        char *mdtext;
        size_t mdlen;
        assert_int_equal(file_read_all(md, &mdtext, &mdlen), 0);
        assert_string_equal(mdtext, "instance-id: worker1-0000-4b-00\n"
                                    "local-hostname: worker1-0000-4b-00\n");
        /* the strings come back byte for byte */
        json_t *ud = libyaml_load(written, wlen);
        assert_string_equal(file_content(ud, "/etc/evil file.conf"), h);
        assert_string_equal(file_content(ud, "/etc/evil2"), h);
        if (!strpbrk(h, "\r\n")) {
            /* kernel parameters: one shell word, whatever they hold */
            char *sh = xasprintf(
                "bash -c '. \"$0\"; printf %%s \"$GRUB_CMDLINE_LINUX\"' "
                "%s/grub > %s/grub.out",
                dir, dir);
            char *gp = xasprintf("%s/grub", dir);
            const char *g = file_content(ud, "/etc/default/grub.d/99-dpf.cfg");
            assert_int_equal(file_write_atomic(gp, g, strlen(g), 0644), 0);
            assert_int_equal(system(sh), 0);
            char *go = xasprintf("%s/grub.out", dir), *gtext;
            size_t glen;
            assert_int_equal(file_read_all(go, &gtext, &glen), 0);
            char *want = xasprintf("console=hvc0 %s", h);
            assert_string_equal(gtext, want);
            assert_int_not_equal(access(marker, F_OK), 0);
            free(want);
            free(gtext);
            free(go);
            free(gp);
            free(sh);
        }
        json_decref(ud);
        free(mdtext);
        free(md);
        free(marker);
        free(yaml);
        free(written);
        free(udp);
        rm_rf(dir);
        free(cfg);
        json_decref(fl);
    }
}

static void
expect_refused(const char *flavor_json, int want, const char *field,
               const char *text)
{
    json_t *fl = flavor_load(flavor_json);
    char *out = (char *) 1;
    size_t len = 1;
    struct dpf_error err = {0};
    int rc = bfcfg_render(fl, "dpu-a", join, false, &out, &len, &err);
    assert_int_equal(rc, want);
    assert_null(out);
    assert_int_equal(len, 0);
    if (!strstr(err.message, text)) {
        fail_msg("message \"%s\" lacks \"%s\"", err.message, text);
    }
    if (field) {
        assert_true(err.n_causes >= 1);
        assert_string_equal(err.causes[0].field, field);
    }
    json_decref(fl);
}

static void
test_refusals(void **state)
{
    (void) state;
    expect_refused("{\"metadata\":{\"name\":\"f\",\"namespace\":\"ns\"},"
                   "\"spec\":{\"bfcfgParameters\":[\"A=1\\nB=$(id)\"]}}",
                   -EINVAL, "spec.bfcfgParameters[0]", "DPUFlavor ns/f");
    expect_refused("{\"metadata\":{\"name\":\"f\"},"
                   "\"spec\":{\"bfcfgParameters\":[\"ok=1\",\"$(id)=2\"]}}",
                   -EINVAL, "spec.bfcfgParameters[1]", "NAME=value");
    expect_refused("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"sysctl\":"
                   "{\"parameters\":[\"a=1\\nkernel.x=2\"]}}}",
                   -EINVAL, "spec.sysctl.parameters[0]", "one line");
    expect_refused("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"grub\":"
                   "{\"kernelParameters\":[\"a\\nb\"]}}}",
                   -EINVAL, "spec.grub.kernelParameters[0]", "one line");
    expect_refused("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"configFiles\":"
                   "[{\"path\":\"relative\",\"raw\":\"x\"}]}}",
                   -EINVAL, "spec.configFiles[0]", "absolute");
    expect_refused("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"configFiles\":"
                   "[{\"path\":\"/a\",\"raw\":\"x\",\"permissions\":\"rw\"}]}}",
                   -EINVAL, "spec.configFiles[0]", "octal");
    expect_refused("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"containerdConfig"
                   "\":{\"registryEndpoint\":\"http://x\\\"]; $(id)\"}}}",
                   -EINVAL, "spec.containerdConfig.registryEndpoint", "URL");
    expect_refused("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"nvconfig\":"
                   "[{\"parameters\":[\"PF_TOTAL_SF=lots\"]}]}}",
                   -EINVAL, NULL, "PF_TOTAL_SF");
    expect_refused("{\"metadata\":{\"name\":\"f\"},\"spec\":{\"nvconfig\":"
                   "[{\"parameters\":\"A=1\"}]}}",
                   -EINVAL, "spec.nvconfig[0].parameters", "list of strings");
    /* the join command and the DPU name are ours, but checked too */
    char *out;
    size_t len;
    struct dpf_error err = {0};
    assert_int_equal(bfcfg_render(NULL, "dpu-a", "kubeadm join x; reboot",
                                  false, &out, &len, &err),
                     -EINVAL);
    assert_non_null(strstr(err.message, "join command"));
    assert_int_equal(
        bfcfg_render(NULL, "Bad_Name", join, false, &out, &len, &err), -EINVAL);
    assert_non_null(strstr(err.message, "Bad_Name"));
}

static void
test_size_limit(void **state)
{
    (void) state;
    /* just under: fine; over: refused naming the flavor */
    json_t *fl = flavor_load("{\"metadata\":{\"name\":\"big\",\"namespace\":"
                             "\"tenant\"},\"spec\":{\"configFiles\":[]}}");
    size_t base_len;
    char *base = render_ok(fl, false, &base_len);
    free(base);
    json_t *files = json_object_get(json_object_get(fl, "spec"), "configFiles");
    size_t fill = BFCFG_MAX_SIZE - base_len - 200;
    char *raw = xmalloc(fill + 1);
    memset(raw, 'x', fill);
    raw[fill] = '\0';
    json_array_append_new(files,
                          json_pack("{s:s,s:s}", "path", "/a", "raw", raw));
    size_t len;
    char *cfg = render_ok(fl, false, &len);
    assert_true(len <= BFCFG_MAX_SIZE);
    free(cfg);
    json_array_append_new(files, json_pack("{s:s,s:s}", "path", "/b", "raw",
                                           "more than 200 bytes "
                                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
    char *out = (char *) 1;
    struct dpf_error err = {0};
    assert_int_equal(bfcfg_render(fl, "dpu-a", join, false, &out, &len, &err),
                     -EFBIG);
    assert_null(out);
    assert_non_null(strstr(err.message, "DPUFlavor tenant/big"));
    assert_non_null(strstr(err.message, "131072"));
    free(raw);
    json_decref(fl);
}

/* The emulated DPU (dpf-emu) reads what we write: the contract between
 * the two sides of a bf.cfg. */
static void
test_emulator_reads_it(void **state)
{
    (void) state;
    json_t *fl = flavor_load(hbn_flavor);
    size_t len;
    char *cfg = render_ok(fl, false, &len);
    struct emu_bfcfg e;
    struct dpf_error err = {0};
    if (emu_bfcfg_parse(cfg, len, &e, &err) != 0) {
        fail_msg("emu_bfcfg_parse: %s", err.message);
    }
    assert_string_equal(e.hostname, "worker1-0000-4b-00");
    assert_string_equal(e.join_line, join);
    assert_string_equal(e.join_endpoint, "10.0.110.2:6443");
    assert_string_equal(e.join_token, "abcdef.0123456789abcdef");
    assert_int_equal(e.n_files, 23);
    bool found = false;
    for (size_t i = 0; i < e.n_files; i++) {
        if (!strcmp(e.files[i].path, "/etc/extra.conf")) {
            found = e.files[i].append && e.files[i].len == 4 &&
                    !memcmp(e.files[i].data, "a=1\n", 4);
        }
    }
    assert_true(found);
    emu_bfcfg_free(&e);
    free(cfg);
    json_decref(fl);
}

static void
test_user_data_extraction(void **state)
{
    (void) state;
    char *y;
    size_t n;
    const char none[] = "A=1\n";
    assert_int_equal(bfcfg_user_data(none, strlen(none), &y, &n), -ENOENT);
    const char open[] = "cat > x <<'DPF_USER_DATA_END'\n#cloud-config\n";
    assert_int_equal(bfcfg_user_data(open, strlen(open), &y, &n), -EINVAL);
    const char empty[] = "cat > x <<'DPF_USER_DATA_END'\nDPF_USER_DATA_END\n";
    assert_int_equal(bfcfg_user_data(empty, strlen(empty), &y, &n), 0);
    assert_int_equal(n, 0);
    free(y);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hbn_flavor),
        cmocka_unit_test(test_empty_flavor_defaults),
        cmocka_unit_test(test_hostile_strings_stay_data),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_emulator_reads_it),
        cmocka_unit_test(test_user_data_extraction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

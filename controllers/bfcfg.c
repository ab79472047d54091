/* bfcfg: the bf.cfg a DPU is installed with. See bfcfg.h.
 *
 * The file has three parts: the flavor's bfcfgParameters, the fixed shell
 * of bfb_modify_os() (the part before the user-data and the part after
 * it, below), and between them the cloud-config built as a JSON tree and
 * written by lib/codecs/yamljson, which quotes every scalar that needs it
 * and puts multi-line text in indented literal blocks. Every line of the
 * YAML that starts in column 0 is one of our own top-level keys, so the
 * heredoc's end marker cannot occur inside it, and the heredoc is quoted,
 * so the installer's shell expands nothing in it.
 *
 * Text that ends up in a shell script we write (nvconfig parameters,
 * kernel parameters, the registry endpoint) is single-quoted for the
 * shell; text that ends up in a line-based file (sysctl, paths) must not
 * hold a line break. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/bfcfg.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

#define USER_DATA_END "DPF_USER_DATA_END"
#define SEED_DIR "/mnt/var/lib/cloud/seed/nocloud-net"

/* The shell of bfb_modify_os() up to the user-data heredoc. */
static const char modify_os_head[] =
    "\n"
    "# Called by the BFB installer with the new root file system at /mnt.\n"
    "bfb_modify_os()\n"
    "{\n"
    "    mkdir -p /mnt/opt/dpf\n"
    "    # the network comes from our netplan files, not from cloud-init\n"
    "    mkdir -p /mnt/etc/cloud/cloud.cfg.d\n"
    "    echo 'network: {config: disabled}' >"
    " /mnt/etc/cloud/cloud.cfg.d/99-dpf-no-network.cfg\n"
    "    if [ -f /mnt/opt/mellanox/sfc-hbn/mlnx_bf_configure_sync.service ];"
    " then\n"
    "        cp /mnt/opt/mellanox/sfc-hbn/mlnx_bf_configure_sync.service"
    " /mnt/etc/systemd/system/\n"
    "    fi\n"
    "    mkdir -p " SEED_DIR "\n"
    "    cat > " SEED_DIR "/user-data <<'" USER_DATA_END "'\n";

/* Files whose content is fixed. */
static const char netplan_comm_ch[] = "network:\n"
                                      "  version: 2\n"
                                      "  renderer: networkd\n"
                                      "  ethernets:\n"
                                      "    pf0vf0:\n"
                                      "      dhcp4: false\n"
                                      "  bridges:\n"
                                      "    br-comm-ch:\n"
                                      "      dhcp4: true\n"
                                      "      interfaces:\n"
                                      "        - pf0vf0\n";

static const char netplan_oob_tmfifo[] = "network:\n"
                                         "  version: 2\n"
                                         "  renderer: networkd\n"
                                         "  ethernets:\n"
                                         "    oob_net0:\n"
                                         "      dhcp4: false\n"
                                         "    tmfifo_net0:\n"
                                         "      dhcp4: false\n"
                                         "      addresses:\n"
                                         "        - 192.168.100.2/30\n";

static const char sysctl_k8s[] = "net.ipv4.ip_forward=1\n"
                                 "net.bridge.bridge-nf-call-iptables=1\n"
                                 "net.bridge.bridge-nf-call-ip6tables=1\n";

static const char kubelet_dropin[] =
    "# kubeadm's kubelet drop-in\n"
    "[Service]\n"
    "Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/"
    "kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/"
    "kubelet.conf\"\n"
    "Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/"
    "config.yaml\"\n"
    "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n"
    "EnvironmentFile=-/etc/default/kubelet\n"
    "ExecStart=\n"
    "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS"
    " $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n";

static const char join_head[] =
    "#!/bin/bash\n"
    "# Join this DPU to its DPU cluster (once), over br-comm-ch.\n"
    "set -u\n"
    "until ip -4 addr show dev br-comm-ch 2>/dev/null | grep -q 'inet ';"
    " do\n"
    "    sleep 2\n"
    "done\n"
    "systemctl enable kubelet\n"
    "if [ -f /opt/dpf/joined_cluster_successfully ]; then\n"
    "    echo 'already joined'\n"
    "    exit 0\n"
    "fi\n"
    "join_cluster() {\n";
static const char join_tail[] =
    "}\n"
    "until join_cluster; do\n"
    "    # a failed join leaves files the next attempt must not find\n"
    "    rm -f /etc/kubernetes/pki/ca.crt"
    " /etc/kubernetes/bootstrap-kubelet.conf\n"
    "    sleep 5\n"
    "done\n"
    "touch /opt/dpf/joined_cluster_successfully\n";

static const char join_unit[] =
    "[Unit]\n"
    "Description=Join the DPU cluster (DPF)\n"
    "Wants=network-online.target\n"
    "After=network-online.target containerd.service\n"
    "\n"
    "[Service]\n"
    "Type=oneshot\n"
    "RemainAfterExit=yes\n"
    "ExecStart=/opt/dpf/join_k8s_cluster.sh\n"
    "\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n";

static const char bootstrap_unit[] =
    "[Unit]\n"
    "Description=Create the DPU's scalable functions (DPF)\n"
    "Before=kubelet.service\n"
    "After=mlnx_bf_configure.service\n"
    "\n"
    "[Service]\n"
    "Type=oneshot\n"
    "RemainAfterExit=yes\n"
    "ExecStart=/opt/dpf/configure-sfs.sh\n"
    "\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n";

static const char cleanup_dns[] =
    "#!/bin/bash\n"
    "# resolv.conf from systemd-resolved, without its stub listener (the\n"
    "# cluster DNS would otherwise loop back to 127.0.0.53)\n"
    "rm -f /etc/resolv.conf\n"
    "ln -s /run/systemd/resolve/resolv.conf /etc/resolv.conf\n"
    "systemctl mask dnsmasq.service 2>/dev/null || true\n"
    "systemctl restart systemd-resolved || true\n";

static const char remove_90_kubelet[] =
    "#!/bin/bash\n"
    "# the BFB's own kubelet drop-in conflicts with kubeadm's\n"
    "f=/usr/lib/systemd/system/kubelet.service.d/90-kubelet-bluefield.conf\n"
    "if [ -f \"$f\" ]; then\n"
    "    mkdir -p /opt/dpf/backup\n"
    "    cp \"$f\" /opt/dpf/backup/\n"
    "    rm -f \"$f\"\n"
    "fi\n";

static const char containerd_script[] =
    "# containerd 2 keeps the CRI image settings under another plugin\n"
    "major=$(containerd --version 2>/dev/null |"
    " sed -n 's/.* v\\{0,1\\}\\([0-9][0-9]*\\)\\..*/\\1/p')\n"
    "plugin=io.containerd.grpc.v1.cri\n"
    "if [ \"${major:-1}\" -ge 2 ]; then\n"
    "    plugin=io.containerd.cri.v1.images\n"
    "fi\n"
    "mkdir -p /etc/containerd\n"
    "touch /etc/containerd/config.toml\n"
    "cat >> /etc/containerd/config.toml <<EOF\n"
    "[plugins.\"$plugin\".registry.mirrors.\"nvcr.io\"]\n"
    "  endpoint = [\"$endpoint\"]\n"
    "[plugins.\"$plugin\".registry.configs.\"$host\".tls]\n"
    "  insecure_skip_verify = true\n"
    "EOF\n";

/* --- helpers --------------------------------------------------------- */

struct ctx {
    const char *flavor; /* "namespace/name" for messages */
    struct dpf_error *err;
};

static int bad(struct ctx *x, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
bad(struct ctx *x, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dpf_error_set(x->err, 422, "Invalid",
                  "DPUFlavor %s: %s: %s; the bf.cfg cannot be generated",
                  x->flavor, field, msg);
    dpf_error_add_cause(x->err, DPF_CAUSE_INVALID, field, "%s", msg);
    return -EINVAL;
}

/* s as one shell word: single quotes, each ' written as '\''. */
static void
shell_quote(struct dbuf *b, const char *s)
{
    dbuf_puts(b, "'");
    for (; *s; s++) {
        if (*s == '\'') {
            dbuf_puts(b, "'\\''");
        } else {
            dbuf_append(b, s, 1);
        }
    }
    dbuf_puts(b, "'");
}

static bool
has_line_break(const char *s)
{
    return strpbrk(s, "\n\r") != NULL;
}

/* A string array at spec.<a>.<b> (b may be NULL), each element a string:
 * NULL (absent) or the array; -EINVAL through bad() otherwise. */
static int
string_list(struct ctx *x, const json_t *obj, const char *field,
            const json_t **out)
{
    *out = NULL;
    if (!obj || json_is_null(obj)) {
        return 0;
    }
    if (!json_is_array(obj)) {
        return bad(x, field, "must be a list of strings");
    }
    size_t i;
    const json_t *v;
    json_array_foreach(obj, i, v)
    {
        if (!json_is_string(v)) {
            char f[128];
            snprintf(f, sizeof f, "%s[%zu]", field, i);
            return bad(x, f, "must be a string");
        }
    }
    *out = obj;
    return 0;
}

static const char *
str_at(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void
add_file(json_t *files, const char *path, const char *content,
         const char *perms, bool append)
{
    json_t *f = json_object();
    json_object_set_new(f, "path", json_string(path));
    json_object_set_new(f, "content", json_string(content));
    if (perms) {
        json_object_set_new(f, "permissions", json_string(perms));
    }
    if (append) {
        json_object_set_new(f, "append", json_true());
    }
    json_array_append_new(files, f);
}

static void
add_cmd(json_t *runcmd, const char *cmd)
{
    json_array_append_new(runcmd, json_string(cmd));
}

static bool
dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(islower((unsigned char) c) || isdigit((unsigned char) c) ||
              c == '-' || c == '.')) {
            return false;
        }
    }
    return isalnum((unsigned char) s[0]) && isalnum((unsigned char) s[n - 1]);
}

/* The join command goes into a script as a line of its own: only what a
 * kubeadm join line holds (host, port, token, hash, flags). */
static bool
join_ok(const char *s)
{
    if (!str_has_prefix(s, "kubeadm join ") || strlen(s) > 1024) {
        return false;
    }
    for (; *s; s++) {
        if (!isalnum((unsigned char) *s) && !strchr(" .:_=/-[]", *s)) {
            return false;
        }
    }
    return true;
}

static bool
param_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char) s[0]) || s[0] == '_')) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        if (!isalnum((unsigned char) s[i]) && s[i] != '_') {
            return false;
        }
    }
    return true;
}

/* Value of NAME=value in the flavor's nvconfig parameters (NULL if none). */
static const char *
nvconfig_value(const json_t *spec, const char *name)
{
    const json_t *nv = json_object_get(spec, "nvconfig");
    size_t i, j;
    const json_t *e, *p;
    size_t n = strlen(name);
    json_array_foreach(nv, i, e)
    {
        json_array_foreach(json_object_get(e, "parameters"), j, p)
        {
            const char *s = json_string_value(p);
            if (s && !strncmp(s, name, n) && s[n] == '=') {
                return s + n + 1;
            }
        }
    }
    return NULL;
}

int
bfcfg_nvconfig_int(const json_t *flavor, const char *name, int dflt)
{
    const char *v = nvconfig_value(json_object_get(flavor, "spec"), name);
    if (!v || !*v) {
        return dflt;
    }
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > 100000) {
        return -EINVAL;
    }
    return (int) n;
}

/* --- the parts ------------------------------------------------------- */

/* bfcfgParameters, minus ubuntu_PASSWORD (*password, borrowed). */
static int
render_params(struct ctx *x, const json_t *spec, struct dbuf *out,
              const char **password)
{
    const json_t *list;
    int rc = string_list(x, json_object_get(spec, "bfcfgParameters"),
                         "spec.bfcfgParameters", &list);
    if (rc < 0) {
        return rc;
    }
    *password = NULL;
    dbuf_puts(out, "# bf.cfg generated by dpf for this DPU\n");
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        char field[64];
        snprintf(field, sizeof field, "spec.bfcfgParameters[%zu]", i);
        if (has_line_break(s) || strlen(s) != json_string_length(v)) {
            return bad(x, field, "must be one line (NAME=value)");
        }
        if (*s == '\0' || *s == '#') {
            dbuf_printf(out, "%s\n", s);
            continue;
        }
        const char *eq = strchr(s, '=');
        if (!eq || !param_name_ok(s, (size_t) (eq - s))) {
            return bad(x, field,
                       "must be NAME=value with NAME of letters, digits "
                       "and _ (a bf.cfg variable)");
        }
        if (str_has_prefix(s, "ubuntu_PASSWORD=")) {
            *password = eq + 1;
            continue;
        }
        dbuf_printf(out, "%s\n", s);
    }
    return 0;
}

/* The ubuntu user: the flavor's password hash, or ubuntu:ubuntu that
 * must be changed at the first login. */
static void
render_user(json_t *cc, const char *password)
{
    json_t *u = json_object();
    json_object_set_new(u, "name", json_string("ubuntu"));
    json_object_set_new(u, "lock_passwd", json_false());
    json_object_set_new(u, "groups",
                        json_string("adm, audio, cdrom, dialout, dip, "
                                    "floppy, lxd, netdev, plugdev, sudo, "
                                    "video"));
    json_object_set_new(u, "sudo", json_string("ALL=(ALL) NOPASSWD:ALL"));
    json_object_set_new(u, "shell", json_string("/bin/bash"));
    if (password) {
        /* DPF accepts the hash with or without single quotes around it */
        size_t n = strlen(password);
        char *p = n >= 2 && password[0] == '\'' && password[n - 1] == '\''
                      ? xstrndup(password + 1, n - 2)
                      : xstrdup(password);
        json_object_set_new(u, "passwd", json_string(p));
        free(p);
    }
    json_t *users = json_array();
    json_array_append_new(users, u);
    json_object_set_new(cc, "users", users);
    if (!password) {
        json_t *cp = json_object();
        json_object_set_new(cp, "list", json_string("ubuntu:ubuntu\n"));
        json_object_set_new(cp, "expire", json_true());
        json_object_set_new(cc, "chpasswd", cp);
    }
}

static int
render_files(struct ctx *x, const json_t *spec, const char *join,
             bool additional_reboot, json_t *files, json_t *runcmd_tail)
{
    int rc;
    add_file(files, "/etc/netplan/60-mlnx.yaml", "", "0600", false);
    add_file(files, "/etc/netplan/99-dpf-comm-ch.yaml", netplan_comm_ch, "0600",
             false);
    add_file(files, "/etc/netplan/98-oob-tmfifo.yaml", netplan_oob_tmfifo,
             "0600", false);
    add_file(files, "/etc/modules-load.d/br_netfilter.conf", "br_netfilter\n",
             "0644", false);
    add_file(files, "/etc/sysctl.conf", sysctl_k8s, NULL, true);

    /* scalable functions: PF_TOTAL_SF of the nvconfig parameters */
    const char *sfs = nvconfig_value(spec, "PF_TOTAL_SF");
    long nsf = 0;
    if (sfs) {
        char *end;
        nsf = strtol(sfs, &end, 10);
        if (!*sfs || *end || nsf < 0 || nsf > 4096) {
            return bad(x, "spec.nvconfig[0].parameters",
                       "PF_TOTAL_SF must be a number from 0 to 4096");
        }
    }
    char *sf = xasprintf(
        "#!/bin/bash\n"
        "# scalable functions on the DPU's PF0 (PF_TOTAL_SF of the "
        "flavor)\n"
        "PF_TOTAL_SF=%ld\n"
        "for i in $(seq 0 $((PF_TOTAL_SF - 1))); do\n"
        "    mlnx-sf --action create --device 0000:03:00.0 --sfnum \"$i\"\n"
        "done\n",
        nsf);
    add_file(files, "/opt/dpf/configure-sfs.sh", sf, "0755", false);
    free(sf);
    add_file(files, "/usr/lib/systemd/system/kubelet.service.d/10-bf.conf",
             kubelet_dropin, "0644", false);

    struct dbuf js;
    dbuf_init(&js);
    dbuf_puts(&js, join_head);
    dbuf_printf(&js, "%s\n", join); /* checked by join_ok() */
    dbuf_puts(&js, join_tail);
    add_file(files, "/opt/dpf/join_k8s_cluster.sh", js.data, "0755", false);
    dbuf_free(&js);
    add_file(files, "/etc/systemd/system/kubeadm-join.service", join_unit,
             "0644", false);
    add_file(files, "/etc/systemd/system/bootstrap-dpf.service", bootstrap_unit,
             "0644", false);
    add_file(files, "/etc/systemd/resolved.conf.d/10-dpf.conf",
             "[Resolve]\nDNSStubListener=no\n", "0644", false);
    add_file(files, "/etc/NetworkManager/conf.d/10-dpf-dns.conf",
             "[main]\ndns=none\n", "0644", false);
    add_file(files, "/opt/dpf/cleanup-dns.sh", cleanup_dns, "0755", false);

    /* nvconfig: mlxconfig on every MST device */
    const json_t *nv = json_object_get(spec, "nvconfig");
    if (nv && !json_is_null(nv) && !json_is_array(nv)) {
        return bad(x, "spec.nvconfig", "must be a list");
    }
    struct dbuf nvs;
    dbuf_init(&nvs);
    size_t i;
    const json_t *e;
    json_array_foreach(nv, i, e)
    {
        char field[64];
        snprintf(field, sizeof field, "spec.nvconfig[%zu].parameters", i);
        const json_t *params;
        if ((rc = string_list(x, json_object_get(e, "parameters"), field,
                              &params)) < 0) {
            dbuf_free(&nvs);
            return rc;
        }
        size_t j;
        const json_t *p;
        json_array_foreach(params, j, p)
        {
            const char *s = json_string_value(p);
            if (has_line_break(s) || strlen(s) != json_string_length(p)) {
                dbuf_free(&nvs);
                return bad(x, field, "a parameter must be one line");
            }
            if (nvs.len == 0) {
                dbuf_puts(&nvs, "#!/bin/bash\n"
                                "# the flavor's NVConfig, on every MST "
                                "device\n"
                                "mst start >/dev/null 2>&1 || true\n"
                                "for dev in /dev/mst/*; do\n"
                                "    [ -e \"$dev\" ] || continue\n"
                                "    mlxconfig -d \"$dev\" -y set");
            }
            dbuf_puts(&nvs, " ");
            shell_quote(&nvs, s);
        }
    }
    bool have_nv = nvs.len > 0;
    if (have_nv) {
        dbuf_puts(&nvs, "\ndone\n");
        add_file(files, "/opt/dpf/set-nvconfig-params.sh", nvs.data, "0755",
                 false);
    }
    dbuf_free(&nvs);

    /* sysctl */
    const json_t *sysctl;
    if ((rc = string_list(
             x, json_object_get(json_object_get(spec, "sysctl"), "parameters"),
             "spec.sysctl.parameters", &sysctl)) < 0) {
        return rc;
    }
    bool have_sysctl = json_array_size(sysctl) > 0;
    if (have_sysctl) {
        struct dbuf b;
        dbuf_init(&b);
        const json_t *p;
        json_array_foreach(sysctl, i, p)
        {
            const char *s = json_string_value(p);
            if (has_line_break(s) || strlen(s) != json_string_length(p)) {
                dbuf_free(&b);
                char field[64];
                snprintf(field, sizeof field, "spec.sysctl.parameters[%zu]", i);
                return bad(x, field, "must be one line (key=value)");
            }
            dbuf_printf(&b, "%s\n", s);
        }
        add_file(files, "/etc/sysctl.d/99-dpf.conf", b.data, "0644", false);
        dbuf_free(&b);
    }

    /* grub: the default file is sourced by update-grub's shell */
    const json_t *kp;
    if ((rc = string_list(
             x,
             json_object_get(json_object_get(spec, "grub"), "kernelParameters"),
             "spec.grub.kernelParameters", &kp)) < 0) {
        return rc;
    }
    bool have_grub = json_array_size(kp) > 0;
    if (have_grub) {
        struct dbuf line;
        dbuf_init(&line);
        const json_t *p;
        json_array_foreach(kp, i, p)
        {
            const char *s = json_string_value(p);
            if (has_line_break(s) || strlen(s) != json_string_length(p)) {
                dbuf_free(&line);
                char field[64];
                snprintf(field, sizeof field, "spec.grub.kernelParameters[%zu]",
                         i);
                return bad(x, field, "must be one line");
            }
            dbuf_printf(&line, "%s%s", i ? " " : "", s);
        }
        struct dbuf b;
        dbuf_init(&b);
        dbuf_puts(&b, "GRUB_CMDLINE_LINUX=");
        shell_quote(&b, line.data);
        dbuf_puts(&b, "\n");
        add_file(files, "/etc/default/grub.d/99-dpf.cfg", b.data, "0644",
                 false);
        dbuf_free(&b);
        dbuf_free(&line);
    }

    /* the flavor's own files */
    const json_t *cf = json_object_get(spec, "configFiles");
    if (cf && !json_is_null(cf) && !json_is_array(cf)) {
        return bad(x, "spec.configFiles", "must be a list");
    }
    json_array_foreach(cf, i, e)
    {
        char field[64];
        snprintf(field, sizeof field, "spec.configFiles[%zu]", i);
        const char *path = str_at(e, "path");
        const char *op = str_at(e, "operation");
        const char *raw = str_at(e, "raw");
        const char *perms = str_at(e, "permissions");
        if (!json_is_object(e) || !path || path[0] != '/' ||
            has_line_break(path) ||
            strlen(path) != json_string_length(json_object_get(e, "path"))) {
            return bad(x, field, "path must be an absolute path on one line");
        }
        if (op && strcmp(op, "override") != 0 && strcmp(op, "append") != 0) {
            return bad(x, field, "operation must be override or append");
        }
        if (perms) {
            size_t n = strlen(perms);
            bool ok = n >= 3 && n <= 4;
            for (size_t k = 0; ok && k < n; k++) {
                ok = perms[k] >= '0' && perms[k] <= '7';
            }
            if (!ok) {
                return bad(x, field, "permissions must be octal (\"0644\")");
            }
        }
        add_file(files, path, raw ? raw : "", perms,
                 op && !strcmp(op, "append"));
    }

    /* OVS: the flavor's script, run once at first boot */
    const char *ovs = str_at(json_object_get(spec, "ovs"), "rawConfigScript");
    if (ovs && *ovs) {
        char *s = xasprintf("#!/bin/bash\nset -e\n%s", ovs);
        add_file(files, "/opt/dpf/ovs.sh", s, "0755", false);
        free(s);
    }

    /* containerd mirror for nvcr.io */
    const char *ep =
        str_at(json_object_get(spec, "containerdConfig"), "registryEndpoint");
    bool have_ctrd = ep && *ep;
    if (have_ctrd) {
        for (const char *p = ep; *p; p++) {
            if (!isalnum((unsigned char) *p) && !strchr(".:/_-[]", *p)) {
                return bad(x, "spec.containerdConfig.registryEndpoint",
                           "must be a URL (letters, digits and .:/_-[])");
            }
        }
        const char *h = strstr(ep, "://");
        h = h ? h + 3 : ep;
        size_t hl = strcspn(h, "/");
        char *host = xstrndup(h, hl);
        struct dbuf b;
        dbuf_init(&b);
        dbuf_puts(&b, "#!/bin/bash\nset -e\nendpoint=");
        shell_quote(&b, ep);
        dbuf_puts(&b, "\nhost=");
        shell_quote(&b, host);
        dbuf_puts(&b, "\n");
        dbuf_puts(&b, containerd_script);
        add_file(files, "/opt/dpf/config_containerd.sh", b.data, "0755", false);
        dbuf_free(&b);
        free(host);
    }

    /* applied at the end of the first boot */
    if (have_grub || have_sysctl) {
        struct dbuf b;
        dbuf_init(&b);
        dbuf_puts(&b, "#!/bin/bash\n");
        if (have_sysctl) {
            dbuf_puts(&b, "sysctl -p /etc/sysctl.d/99-dpf.conf || true\n");
        }
        if (have_grub) {
            dbuf_puts(&b, "update-grub\n");
        }
        if (additional_reboot) {
            dbuf_puts(&b, "# the host is not rebooted for us: the kernel "
                          "parameters need this reboot\nreboot\n");
        }
        add_file(files, "/opt/dpf/restart.sh", b.data, "0755", false);
        dbuf_free(&b);
    }
    add_file(files, "/opt/dpf/remove-90-kubelet-bluefield.sh",
             remove_90_kubelet, "0755", false);

    /* the optional steps of runcmd, in DPF's order */
    if (have_nv) {
        add_cmd(runcmd_tail, "/opt/dpf/set-nvconfig-params.sh");
    }
    if (ovs && *ovs) {
        add_cmd(runcmd_tail, "/opt/dpf/ovs.sh");
    }
    if (have_ctrd) {
        add_cmd(runcmd_tail, "/opt/dpf/config_containerd.sh");
        add_cmd(runcmd_tail, "systemctl restart containerd");
    }
    if (have_grub || have_sysctl) {
        add_cmd(runcmd_tail, "/opt/dpf/restart.sh");
    }
    return 0;
}

int
bfcfg_render(const json_t *flavor, const char *dpu_name,
             const char *join_command, bool additional_reboot, char **out,
             size_t *len, struct dpf_error *err)
{
    *out = NULL;
    *len = 0;
    const json_t *md = json_object_get(flavor, "metadata");
    char fname[300];
    snprintf(fname, sizeof fname, "%s/%s",
             str_at(md, "namespace") ? str_at(md, "namespace") : "",
             str_at(md, "name") ? str_at(md, "name") : "(none)");
    struct ctx x = {.flavor = fname, .err = err};
    if (!dpu_name || !dns_name_ok(dpu_name)) {
        dpf_error_set(err, 422, "Invalid",
                      "bf.cfg: the DPU name \"%s\" is not a DNS name",
                      dpu_name ? dpu_name : "");
        return -EINVAL;
    }
    if (!join_command || !join_ok(join_command)) {
        dpf_error_set(err, 422, "Invalid",
                      "bf.cfg for DPU %s: the join command must be one "
                      "`kubeadm join HOST:PORT --token ...` line",
                      dpu_name);
        return -EINVAL;
    }
    const json_t *spec = json_object_get(flavor, "spec");
    if (spec && !json_is_object(spec)) {
        return bad(&x, "spec", "must be an object");
    }
    struct dbuf b;
    dbuf_init(&b);
    const char *password = NULL;
    int rc = render_params(&x, spec, &b, &password);
    if (rc < 0) {
        dbuf_free(&b);
        return rc;
    }

    json_t *cc = json_object();
    json_object_set_new(cc, "hostname", json_string(dpu_name));
    json_object_set_new(cc, "preserve_hostname", json_false());
    render_user(cc, password);
    json_t *files = json_array(), *tail = json_array();
    rc = render_files(&x, spec, join_command, additional_reboot, files, tail);
    if (rc < 0) {
        json_decref(files);
        json_decref(tail);
        json_decref(cc);
        dbuf_free(&b);
        return rc;
    }
    json_object_set_new(cc, "write_files", files);
    json_t *runcmd = json_array();
    json_t *host = json_array();
    json_array_append_new(host, json_string("hostnamectl"));
    json_array_append_new(host, json_string("set-hostname"));
    json_array_append_new(host, json_string(dpu_name));
    json_array_append_new(runcmd, host);
    static const char *const fixed[] = {
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
    };
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
        add_cmd(runcmd, fixed[i]);
    }
    json_array_extend(runcmd, tail);
    json_decref(tail);
    add_cmd(runcmd, "systemctl start --no-block bootstrap-dpf.service "
                    "kubeadm-join.service");
    json_object_set_new(cc, "runcmd", runcmd);

    char *yaml = yamljson_emit(cc);
    json_decref(cc);
    dbuf_puts(&b, modify_os_head);
    dbuf_puts(&b, "#cloud-config\n");
    dbuf_puts(&b, yaml);
    free(yaml);
    dbuf_puts(&b, USER_DATA_END "\n");
    dbuf_printf(
        &b,
        "    printf 'instance-id: %s\\nlocal-hostname: %s\\n' > " SEED_DIR
        "/meta-data\n"
        "}\n",
        dpu_name, dpu_name);
    if (b.len > BFCFG_MAX_SIZE) {
        dpf_error_set(err, 422, "Invalid",
                      "DPUFlavor %s: the bf.cfg for DPU %s would be %zu "
                      "bytes, more than the %d DMS accepts; make the "
                      "flavor's configFiles or scripts smaller",
                      fname, dpu_name, b.len, BFCFG_MAX_SIZE);
        dpf_error_add_cause(err, DPF_CAUSE_TOO_LONG, "spec",
                            "the bf.cfg would be %zu bytes (at most %d)", b.len,
                            BFCFG_MAX_SIZE);
        dbuf_free(&b);
        return -EFBIG;
    }
    *out = dbuf_steal(&b, len);
    return 0;
}

int
bfcfg_user_data(const char *bfcfg, size_t len, char **yaml, size_t *ylen)
{
    static const char open_mark[] = "<<'" USER_DATA_END "'\n";
    static const char close_mark[] = "\n" USER_DATA_END "\n";
    *yaml = NULL;
    *ylen = 0;
    const char *s = memmem(bfcfg, len, open_mark, sizeof open_mark - 1);
    if (!s) {
        return -ENOENT;
    }
    s += sizeof open_mark - 1;
    size_t rest = len - (size_t) (s - bfcfg);
    /* the body may be empty: the close mark then starts at s - 1 */
    const char *e = memmem(s - 1, rest + 1, close_mark, sizeof close_mark - 1);
    if (!e) {
        return -EINVAL;
    }
    size_t n = (size_t) (e - s) + 1; /* keep the body's last line break */
    if (e < s) {
        n = 0;
    }
    *yaml = xstrndup(s, n);
    *ylen = n;
    return 0;
}

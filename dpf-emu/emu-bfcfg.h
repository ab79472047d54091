/* emu-bfcfg: what the emulated DPU's OS takes from a bf.cfg.
 *
 * A bf.cfg (dpf-spec §2.7.3) is a bash file for the BFB installer. DPF's
 * writes, inside bfb_modify_os(), a NoCloud cloud-config `user-data` as a
 * here-document. The emulator does not run bash: it finds that document
 * (the "#cloud-config" line after a "<<WORD" opener, up to the line
 * "WORD"), parses it as YAML (libyaml through lib/codecs/yamljson) and
 * takes:
 *   - the hostname: the cloud-config `hostname:` key, else a runcmd entry
 *     `hostnamectl set-hostname NAME` (DPF's way);
 *   - the write_files entries (path, content, encoding b64|base64|text,
 *     permissions in octal, append);
 *   - the join command: the first `kubeadm join ...` line in a written
 *     file (DPF's /opt/dpf/join_k8s_cluster.sh) or in a runcmd entry,
 *     split into endpoint, --token and --discovery-token-ca-cert-hash.
 * A bf.cfg without a cloud-config (the short ones the DMS tests push) is
 * valid and yields nothing.
 *
 * Memory: everything in struct emu_bfcfg is owned by it; release with
 * emu_bfcfg_free(). Threads: none of its own. */
#ifndef DPF_EMU_BFCFG_H
#define DPF_EMU_BFCFG_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"

struct emu_bfcfg_file {
    char *path; /* absolute path on the DPU, no ".." component */
    char *data;
    size_t len;
    unsigned mode; /* permissions; 0644 when not given */
    bool append;
};

struct emu_bfcfg {
    char *hostname;      /* NULL if the file names none */
    char *join_line;     /* the whole "kubeadm join ..." line, or NULL */
    char *join_endpoint; /* HOST:PORT */
    char *join_token;    /* ID.SECRET: a secret, never log it */
    char *join_ca_hash;  /* sha256:HEX */
    struct emu_bfcfg_file *files;
    size_t n_files;
};

/* Parse text[0..len). 0, or -EINVAL with err naming what is wrong (the
 * YAML position, the write_files entry and field). out is zeroed first;
 * free it with emu_bfcfg_free() whatever the result. */
int emu_bfcfg_parse(const char *text, size_t len, struct emu_bfcfg *out,
                    struct dpf_error *err);
void emu_bfcfg_free(struct emu_bfcfg *c);

/* Write the files under root (root + path), creating directories, with
 * their modes; append entries append. 0, or a negative errno with err
 * naming the file. */
int emu_bfcfg_write_files(const struct emu_bfcfg *c, const char *root,
                          struct dpf_error *err);

#endif

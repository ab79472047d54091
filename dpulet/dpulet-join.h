/* dpulet-join: the `dpulet join` subcommand (kubeadm join's TLS
 * bootstrap, through lib/kube/kube-bootstrap.h). */
#ifndef DPF_DPULET_JOIN_H
#define DPF_DPULET_JOIN_H

/* argv[0] is "join". Returns the exit code: 0 joined, 1 failed (the
 * reason on stderr), 2 usage error. */
int dpulet_join_main(int argc, char **argv);

#endif
